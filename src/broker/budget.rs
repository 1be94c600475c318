//! Connection budgets of the MQTT port, so connections that cost an attacker nothing cannot
//! crowd out devices: at most `PER_ADDRESS` (`RZMON_MQTT_PER_ADDRESS`) open connections per IP
//! address, of which at most
//! `PENDING_PER_ADDRESS` may still be waiting for their CONNECT to be accepted, and at most
//! `PENDING_TOTAL` such unauthenticated connections overall. A connection over budget is closed
//! at once (before it takes one of the gate's slots), counted, and logged once per address per
//! `LOG_EVERY`, not once per connection. An accepted CONNECT moves the connection from the
//! pending budget to the address's open budget, so logged-in devices always find a slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PER_ADDRESS: usize = 16;
pub const PENDING_PER_ADDRESS: usize = 4;
pub const PENDING_TOTAL: usize = 64;
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

/// Shared by the gate's accept loop and its connection tasks.
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Mutex<Inner>>,
    per_address: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(PER_ADDRESS)
    }
}

/// A connection's place in the budget; freed when dropped.
pub struct Ticket {
    budget: Budget,
    ip: IpAddr,
    pending: bool,
}

impl Budget {
    /// At most `per_address` open connections per address (at least 1).
    pub fn new(per_address: usize) -> Self {
        Self {
            inner: Arc::default(),
            per_address: per_address.max(1),
        }
    }

    /// A ticket for a new connection from `ip`, or `Err(log)` when it is over budget (`log`:
    /// this refusal should be logged, the first for this address in a while).
    pub fn admit(&self, ip: IpAddr) -> Result<Ticket, bool> {
        let ip = ip.to_canonical();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let total_pending = inner.pending;
        let c = inner.by_ip.entry(ip).or_default();
        if c.open + c.pending >= self.per_address
            || c.pending >= PENDING_PER_ADDRESS
            || total_pending >= PENDING_TOTAL
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
        let b = Budget::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut held: Vec<Ticket> = (0..PENDING_PER_ADDRESS)
            .map(|_| b.admit(a).unwrap())
            .collect();
        assert_eq!(b.admit(a).err(), Some(true), "first refusal is logged");
        assert_eq!(b.admit(a).err(), Some(false), "later ones are not");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(b.admit(other).is_ok(), "another address has its own budget");
        for t in &mut held {
            t.authenticated();
        }
        for _ in PENDING_PER_ADDRESS..PER_ADDRESS {
            let mut t = b.admit(a).unwrap();
            t.authenticated();
            held.push(t);
        }
        assert!(
            b.admit(a).is_err(),
            "{PER_ADDRESS} open connections per address"
        );
        held.clear();
        let wide = Budget::new(40);
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
