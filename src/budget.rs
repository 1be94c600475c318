//! Connection budgets of the public ports, so connections that cost an attacker nothing cannot
//! crowd out real clients: at most `per_address` open connections per IP address, of which at
//! most `pending_per_address` may still be pending (MQTT: no accepted CONNECT yet; HTTPS: TLS
//! handshake not done), and at most `pending_total` pending connections overall. Pending
//! connections are counted per source: an IPv4 address, or the /64 of an IPv6 address (one host
//! holds a whole /64, so counting its addresses one by one would be no limit). When the pending
//! budget is full, a newcomer whose source has fewer pending connections than the busiest source
//! takes the place of that source's oldest pending connection, which is told to close
//! (`Ticket::evicted`): many addresses that connect and stay silent only crowd out each other,
//! and a device (one pending connection for a moment) always gets in. A connection over budget
//! is closed at once, counted by the caller, and logged once per source per `LOG_EVERY`, not
//! once per connection. `Ticket::authenticated` moves a connection from the pending budget to
//! the address's open budget, so established clients always find a slot.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The three limits of one port.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_address: usize,
    pub pending_per_address: usize,
    pub pending_total: usize,
}

/// The MQTT port's defaults: 16 connections per address (`RZMON_MQTT_PER_ADDRESS`), 4 of them
/// before CONNECT, 64 pending overall (the gate uses a quarter of `RZMON_MQTT_MAX_CONNECTIONS`).
pub const MQTT: Limits = Limits {
    per_address: 16,
    pending_per_address: 4,
    pending_total: 64,
};

/// The HTTP(S) ports': a browser opens ~6 connections plus one per WebSocket; 16 may be in
/// their TLS handshake at once.
pub const HTTP: Limits = Limits {
    per_address: 64,
    pending_per_address: 16,
    pending_total: 256,
};

const LOG_EVERY: Duration = Duration::from_secs(60);
/// Log times kept beyond this many are pruned to the recent ones.
const LOGGED_MAX: usize = 4096;

/// The source a pending connection counts against: the address itself (IPv4), or its /64.
fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// Tells a pending connection to close; `log`: its close is the first of its source in a while.
#[derive(Default)]
struct Evict {
    token: CancellationToken,
    log: AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// Authenticated connections per address.
    open: HashMap<IpAddr, usize>,
    /// Pending connections per source, oldest first.
    pending: HashMap<IpAddr, VecDeque<(u64, Arc<Evict>)>>,
    pending_total: usize,
    next_id: u64,
    logged: HashMap<IpAddr, Instant>,
}

impl Inner {
    fn pending_of(&self, source: IpAddr) -> usize {
        self.pending.get(&source).map_or(0, VecDeque::len)
    }

    /// Whether a refusal or eviction for `source` is logged now (once per `LOG_EVERY`).
    fn should_log(&mut self, source: IpAddr) -> bool {
        let now = Instant::now();
        if self.logged.len() > LOGGED_MAX {
            self.logged.retain(|_, t| now - *t < LOG_EVERY);
        }
        if self
            .logged
            .get(&source)
            .is_some_and(|t| now - *t < LOG_EVERY)
        {
            return false;
        }
        self.logged.insert(source, now);
        true
    }

    /// Takes pending connection `id` of `source` off the books; false if it was evicted.
    fn unpend(&mut self, source: IpAddr, id: u64) -> bool {
        let Some(q) = self.pending.get_mut(&source) else {
            return false;
        };
        let Some(i) = q.iter().position(|(x, _)| *x == id) else {
            return false;
        };
        q.remove(i);
        if q.is_empty() {
            self.pending.remove(&source);
        }
        self.pending_total -= 1;
        true
    }

    /// Evicts the oldest pending connection of the source with the most pending ones (of equal
    /// ones, the source whose oldest is oldest), if that is more than `than`.
    fn evict_busiest(&mut self, than: usize) -> bool {
        let victim = self
            .pending
            .iter()
            .filter(|(_, q)| q.len() > than)
            .max_by(|(_, a), (_, b)| {
                let oldest = |q: &VecDeque<(u64, Arc<Evict>)>| q.front().map_or(u64::MAX, |e| e.0);
                a.len().cmp(&b.len()).then(oldest(b).cmp(&oldest(a)))
            })
            .map(|(k, _)| *k);
        let Some(victim) = victim else {
            return false;
        };
        let Some((_, evict)) = self.pending.get_mut(&victim).and_then(VecDeque::pop_front) else {
            return false;
        };
        if self.pending_of(victim) == 0 {
            self.pending.remove(&victim);
        }
        self.pending_total -= 1;
        let log = self.should_log(victim);
        evict.log.store(log, Ordering::Relaxed);
        evict.token.cancel();
        true
    }
}

/// Shared by a port's accept loop and its connection tasks.
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Mutex<Inner>>,
    limits: Limits,
}

/// A connection's place in the budget; freed when dropped.
pub struct Ticket {
    budget: Budget,
    ip: IpAddr,
    source: IpAddr,
    id: u64,
    evict: Arc<Evict>,
    pending: bool,
}

impl Budget {
    /// A budget with `limits` (at least 1 of each).
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Arc::default(),
            limits: Limits {
                per_address: limits.per_address.max(1),
                pending_per_address: limits.pending_per_address.max(1),
                pending_total: limits.pending_total.max(1),
            },
        }
    }

    /// A ticket for a new connection from `ip` (pending), or `Err(log)` when it is over budget
    /// (`log`: this refusal should be logged, the first for this source in a while). A full
    /// pending budget evicts the oldest pending connection of a busier source, if there is one.
    pub fn admit(&self, ip: IpAddr) -> Result<Ticket, bool> {
        let ip = ip.to_canonical();
        let source = source(ip);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let open = inner.open.get(&ip).copied().unwrap_or(0);
        let mine = inner.pending_of(source);
        let l = self.limits;
        if open + mine >= l.per_address
            || mine >= l.pending_per_address
            || (inner.pending_total >= l.pending_total && !inner.evict_busiest(mine))
        {
            return Err(inner.should_log(source));
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let evict = Arc::new(Evict::default());
        inner
            .pending
            .entry(source)
            .or_default()
            .push_back((id, evict.clone()));
        inner.pending_total += 1;
        Ok(Ticket {
            budget: self.clone(),
            ip,
            source,
            id,
            evict,
            pending: true,
        })
    }
}

impl Ticket {
    /// The CONNECT was accepted (HTTPS: the handshake is done): from now on the connection
    /// counts as open, not pending, and is never evicted.
    pub fn authenticated(&mut self) {
        if !self.pending {
            return;
        }
        self.pending = false;
        let mut inner = self.budget.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.unpend(self.source, self.id);
        *inner.open.entry(self.ip).or_default() += 1;
    }

    /// Resolves when this pending connection was evicted for a newcomer: the caller closes it.
    /// `true`: log it (the first eviction of its source in a while). Never resolves once
    /// authenticated.
    pub async fn evicted(&self) -> bool {
        if !self.pending {
            return std::future::pending().await;
        }
        self.evict.token.cancelled().await;
        self.evict.log.load(Ordering::Relaxed)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.budget.inner.lock().unwrap_or_else(|e| e.into_inner());
        if self.pending {
            inner.unpend(self.source, self.id);
        } else if let Some(n) = inner.open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                inner.open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_open_budgets() {
        let b = Budget::new(MQTT);
        let (per, pending) = (MQTT.per_address, MQTT.pending_per_address);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut held: Vec<Ticket> = (0..pending).map(|_| b.admit(a).unwrap()).collect();
        assert_eq!(b.admit(a).err(), Some(true), "first refusal is logged");
        assert_eq!(b.admit(a).err(), Some(false), "later ones are not");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(b.admit(other).is_ok(), "another address has its own budget");
        for t in &mut held {
            t.authenticated();
        }
        for _ in pending..per {
            let mut t = b.admit(a).unwrap();
            t.authenticated();
            held.push(t);
        }
        assert!(b.admit(a).is_err(), "{per} open connections per address");
        held.clear();
        let wide = Budget::new(Limits {
            per_address: 40,
            ..MQTT
        });
        let held: Vec<Ticket> = (0..40)
            .map(|_| {
                let mut t = wide.admit(a).unwrap();
                t.authenticated();
                t
            })
            .collect();
        assert!(wide.admit(a).is_err(), "a configured limit is kept too");
        drop(held);
        assert!(b.admit(a).is_ok(), "freed on drop");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn evicted(t: &Ticket) -> bool {
        t.evict.token.is_cancelled()
    }

    #[test]
    fn a_full_pending_budget_evicts_the_oldest_of_the_busiest_source() {
        let b = Budget::new(Limits {
            per_address: 16,
            pending_per_address: 4,
            pending_total: 8,
        });
        let xs: Vec<Ticket> = (0..4).map(|_| b.admit(ip("192.0.2.1")).unwrap()).collect();
        let ys: Vec<Ticket> = (0..4).map(|_| b.admit(ip("192.0.2.2")).unwrap()).collect();
        // Full: a newcomer takes the place of the oldest pending connection of the busiest
        // source (both have 4: the one whose oldest is older).
        let mut device = b.admit(ip("192.0.2.3")).expect("a newcomer gets in");
        assert!(evicted(&xs[0]) && !xs[1..].iter().any(evicted) && !ys.iter().any(evicted));
        let _d2 = b.admit(ip("192.0.2.4")).expect("and the next");
        assert!(evicted(&ys[0]), "now the other source is the busiest");
        device.authenticated();
        let _d3 = b
            .admit(ip("192.0.2.5"))
            .expect("the device's place went to the open budget");
        assert!(
            !xs.iter().skip(1).any(evicted),
            "there was room: nobody evicted"
        );
        // x: 3, y: 3, two others 1 each: a source as busy as the busiest is refused instead.
        assert!(b.admit(ip("192.0.2.2")).is_err());
        assert!(!ys[1..].iter().any(evicted));
        assert!(
            b.admit(ip("192.0.2.4")).is_ok(),
            "1 < 3: evicts x's oldest (older than y's)"
        );
        assert!(evicted(&xs[1]) && !evicted(&xs[2]));
        // Evicted tickets free nothing twice; live ones free their places.
        drop(xs);
        let total = b.inner.lock().unwrap().pending_total;
        assert_eq!(
            total,
            3 + 1 + 1,
            "y's three and the two newcomers still pending"
        );
        assert!(futures_util::FutureExt::now_or_never(device.evicted()).is_none());
    }

    #[test]
    fn ipv6_pending_counts_per_64_and_open_per_address() {
        let b = Budget::new(MQTT);
        let mut held: Vec<Ticket> = (1..=MQTT.pending_per_address)
            .map(|i| b.admit(ip(&format!("2001:db8::{i}"))).unwrap())
            .collect();
        assert!(b.admit(ip("2001:db8::ffff:1")).is_err(), "same /64");
        assert!(b.admit(ip("2001:db8:0:1::1")).is_ok(), "another /64");
        // Devices of one LAN share its /64: once connected, each address has its own budget.
        for t in &mut held {
            t.authenticated();
        }
        assert!(b.admit(ip("2001:db8::ffff:1")).is_ok());
        // IPv4-mapped addresses count as the IPv4 address.
        let _v4: Vec<Ticket> = (0..MQTT.pending_per_address)
            .map(|_| b.admit(ip("192.0.2.9")).unwrap())
            .collect();
        assert!(b.admit(ip("::ffff:192.0.2.9")).is_err());
    }
}
