//! Connection budgets of the public ports, so connections that cost an attacker nothing cannot
//! crowd out real clients: at most `per_address` open connections per IP address, of which at
//! most `pending_per_address` may still be pending (MQTT: no accepted CONNECT yet; HTTP: TLS
//! handshake not done), and at most `pending_total` pending connections overall. A connection
//! over budget is closed at once, counted by the caller, and logged once per address per
//! `LOG_EVERY`, not once per connection. `Ticket::authenticated` moves a connection from the
//! pending budget to the address's open budget, so established clients always find a slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The three limits of one port.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_address: usize,
    pub pending_per_address: usize,
    pub pending_total: usize,
}

/// The MQTT port's defaults: 16 connections per address (`RZMON_MQTT_PER_ADDRESS`), 4 of them
/// before CONNECT, 64 pending overall.
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

#[derive(Default)]
struct Counts {
    open: usize,
    pending: usize,
    logged: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    by_ip: HashMap<IpAddr, Counts>,
    pending: usize,
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
    pending: bool,
}

impl Budget {
    /// A budget with `limits` (at least 1 connection per address).
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Arc::default(),
            limits: Limits {
                per_address: limits.per_address.max(1),
                ..limits
            },
        }
    }

    /// A ticket for a new connection from `ip`, or `Err(log)` when it is over budget (`log`:
    /// this refusal should be logged, the first for this address in a while).
    pub fn admit(&self, ip: IpAddr) -> Result<Ticket, bool> {
        let ip = ip.to_canonical();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let total_pending = inner.pending;
        let c = inner.by_ip.entry(ip).or_default();
        let l = self.limits;
        if c.open + c.pending >= l.per_address
            || c.pending >= l.pending_per_address
            || total_pending >= l.pending_total
        {
            let now = Instant::now();
            let log = c.logged.is_none_or(|t| now - t > LOG_EVERY);
            if log {
                c.logged = Some(now);
            }
            if c.open + c.pending == 0 && !log {
                inner.by_ip.remove(&ip);
            }
            return Err(log);
        }
        c.pending += 1;
        inner.pending += 1;
        Ok(Ticket {
            budget: self.clone(),
            ip,
            pending: true,
        })
    }
}

impl Ticket {
    /// The CONNECT was accepted: from now on the connection counts as open, not pending.
    pub fn authenticated(&mut self) {
        if !self.pending {
            return;
        }
        self.pending = false;
        let mut inner = self.budget.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.pending -= 1;
        if let Some(c) = inner.by_ip.get_mut(&self.ip) {
            c.pending -= 1;
            c.open += 1;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.budget.inner.lock().unwrap_or_else(|e| e.into_inner());
        if self.pending {
            inner.pending -= 1;
        }
        let Some(c) = inner.by_ip.get_mut(&self.ip) else {
            return;
        };
        if self.pending {
            c.pending -= 1;
        } else {
            c.open -= 1;
        }
        if c.open + c.pending == 0 && c.logged.is_none_or(|t| t.elapsed() > LOG_EVERY) {
            inner.by_ip.remove(&self.ip);
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
}
