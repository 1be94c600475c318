//! Failure counting with a lock-out: after `max_failures` failures for one key (an IP, an
//! account, a device name) the key is locked for `lock_for`, whatever it presents. A success
//! resets the key. governor's keyed limiter cannot say "locked until" (FACTS.md), so this is a
//! small bounded map on the monotonic clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; beyond it, entries that are neither locked nor recent are evicted
/// first, so an attacker cycling keys cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// A failure counter per key. Shared by reference (`Arc<Lockout<K>>`).
#[derive(Debug)]
pub struct Lockout<K> {
    max_failures: u32,
    lock_for: Duration,
    /// Failures older than this are forgotten.
    window: Duration,
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq + Clone> Lockout<K> {
    pub fn new(max_failures: u32, lock_for: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            lock_for,
            window: lock_for,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(remaining)` while `key` is locked out.
    pub fn locked(&self, key: &K) -> Option<Duration> {
        self.locked_at(key, Instant::now())
    }

    fn locked_at(&self, key: &K, now: Instant) -> Option<Duration> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let until = map.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failure; returns `Some(lock duration)` if this failure locked the key.
    pub fn fail(&self, key: &K) -> Option<Duration> {
        self.fail_at(key, Instant::now())
    }

    fn fail_at(&self, key: &K, now: Instant) -> Option<Duration> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let (window, lock_for) = (self.window, self.lock_for);
            map.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now) || now - e.last < window.min(lock_for)
            });
            if map.len() >= MAX_KEYS {
                // Still full of live entries: forget the oldest one.
                if let Some(k) = map
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&k);
                }
            }
        }
        let e = map.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last: now,
            locked_until: None,
        });
        if e.locked_until.is_some_and(|u| u <= now) || now - e.last > self.window {
            e.failures = 0;
            e.locked_until = None;
        }
        e.failures += 1;
        e.last = now;
        if e.failures >= self.max_failures && e.locked_until.is_none() {
            e.locked_until = Some(now + self.lock_for);
            return Some(self.lock_for);
        }
        None
    }

    /// A success forgets the key's failures.
    pub fn succeed(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenth_failure_locks_for_the_period_and_success_resets() {
        let l = Lockout::new(10, Duration::from_secs(300));
        let t0 = Instant::now();
        for _ in 0..9 {
            assert!(l.fail_at(&"ip", t0).is_none());
        }
        assert!(l.locked_at(&"ip", t0).is_none());
        assert_eq!(l.fail_at(&"ip", t0), Some(Duration::from_secs(300)));
        assert_eq!(
            l.locked_at(&"ip", t0 + Duration::from_secs(100)),
            Some(Duration::from_secs(200))
        );
        assert!(l.locked_at(&"other", t0).is_none());
        assert!(l.locked_at(&"ip", t0 + Duration::from_secs(301)).is_none());
        l.succeed(&"ip");
        assert!(l.fail_at(&"ip", t0).is_none());
    }
}
