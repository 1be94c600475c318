//! The per-account login throttle. Failures for one account name (from any address) do not lock
//! the account: after `FREE_FAILURES` each further failure makes the next attempt wait longer
//! (1 s, 2 s, 4 s … capped at `MAX_DELAY`), and attempts that come earlier are refused with 429
//! without hashing anything. An address that logged in to this account successfully before
//! (remembered for `KNOWN_FOR`, a few per account — the "device cookie" idea of OWASP keyed by
//! address) is never throttled by failures from other addresses, so a stranger cannot lock the
//! owner out. The per-address lockout (`Lockout`) still applies to every address on its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures before the delay starts.
pub const FREE_FAILURES: u32 = 5;
/// Longest delay between two attempts on one account from unknown addresses.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A successful address is remembered this long after its last success.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 86_400);
/// Failures are forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered per account (the oldest goes first).
const KNOWN_PER_ACCOUNT: usize = 16;
/// Accounts tracked at most; beyond it, accounts nobody ever logged in to are dropped first, so
/// cycling made-up names cannot grow memory.
const MAX_ACCOUNTS: usize = 10_000;

#[derive(Default)]
struct Account {
    failures: u32,
    last_failure: Option<Instant>,
    next_allowed: Option<Instant>,
    /// Address → last success.
    known: Vec<(IpAddr, Instant)>,
}

#[derive(Default)]
pub struct Throttle {
    accounts: Mutex<HashMap<String, Account>>,
}

impl Throttle {
    /// `Err(wait)` if an attempt on `account` from `ip` must wait.
    pub fn check(&self, account: &str, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(account, ip, Instant::now())
    }

    fn check_at(&self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(a) = map.get(account) else {
            return Ok(());
        };
        if a.known
            .iter()
            .any(|(k, at)| *k == ip && now - *at < KNOWN_FOR)
        {
            return Ok(());
        }
        match a.next_allowed {
            Some(t) if t > now && !forgotten(a, now) => Err(t - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the delay now in force (zero while still free).
    pub fn fail(&self, account: &str) -> Duration {
        self.fail_at(account, Instant::now())
    }

    fn fail_at(&self, account: &str, now: Instant) -> Duration {
        let mut map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ACCOUNTS && !map.contains_key(account) {
            map.retain(|_, a| !a.known.is_empty());
            if map.len() >= MAX_ACCOUNTS {
                return MAX_DELAY; // only real users' accounts left: do not track another
            }
        }
        let a = map.entry(account.to_owned()).or_default();
        if forgotten(a, now) {
            a.failures = 0;
        }
        a.failures = a.failures.saturating_add(1);
        a.last_failure = Some(now);
        let over = a.failures.saturating_sub(FREE_FAILURES);
        let delay = if over == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1u64 << (over - 1).min(16)).min(MAX_DELAY)
        };
        a.next_allowed = Some(now + delay);
        delay
    }

    /// A successful login of `account` from `ip`: failures reset, the address is remembered.
    pub fn succeed(&self, account: &str, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let a = map.entry(account.to_owned()).or_default();
        a.failures = 0;
        a.next_allowed = None;
        a.known.retain(|(k, at)| *k != ip && now - *at < KNOWN_FOR);
        if a.known.len() >= KNOWN_PER_ACCOUNT {
            a.known.remove(0);
        }
        a.known.push((ip, now));
    }
}

fn forgotten(a: &Account, now: Instant) -> bool {
    a.last_failure.is_none_or(|t| now - t > FORGET_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    /// Five free failures, then a doubling delay that refuses earlier attempts; a known address
    /// is never throttled; a success resets.
    #[test]
    fn growing_delay_and_known_addresses() {
        let t = Throttle::default();
        let now = Instant::now();
        t.succeed("admin", ip(1));
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.fail_at("admin", now), Duration::ZERO);
        }
        assert!(t.check_at("admin", ip(2), now).is_ok());
        assert_eq!(t.fail_at("admin", now), Duration::from_secs(1));
        assert_eq!(t.fail_at("admin", now), Duration::from_secs(2));
        assert!(t.check_at("admin", ip(2), now).is_err(), "a stranger waits");
        assert!(
            t.check_at("admin", ip(1), now).is_ok(),
            "the owner's address does not"
        );
        assert!(
            t.check_at("admin", ip(2), now + Duration::from_secs(3))
                .is_ok()
        );
        for _ in 0..40 {
            t.fail_at("admin", now);
        }
        assert_eq!(t.fail_at("admin", now), MAX_DELAY, "capped");
        t.succeed("admin", ip(1));
        assert!(t.check_at("admin", ip(2), now).is_ok(), "a success resets");
    }
}
