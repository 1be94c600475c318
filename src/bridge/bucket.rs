//! The bridge's rate limit: a token bucket refilled continuously at `RZMON_BRIDGE_RATE`
//! tokens/s with fractional credit, holding at most 50 ms worth (at least one token), so every
//! rate in 1..=100000 is honoured — the lowest ones too — and an idle pause saves up no more than
//! one short burst. Pure: the caller passes the time, so the tests need no clock.

use std::time::{Duration, Instant};

/// Most credit kept, as a share of one second's rate (50 ms).
const BURST_SHARE: f64 = 0.05;

#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket for `rate` messages/s (0 is taken as 1).
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        let burst = (rate * BURST_SHARE).max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    fn credit(&self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + dt * self.rate).min(self.burst)
    }

    /// Takes up to `want` whole tokens at `now`; returns how many it took.
    pub fn take(&mut self, want: usize, now: Instant) -> usize {
        self.tokens = self.credit(now);
        self.at = now;
        // `tokens` is at most the burst (≤ 5,000), so the cast is exact.
        let n = (self.tokens.floor() as usize).min(want);
        self.tokens -= n as f64;
        n
    }

    /// How long after `now` one whole token is there (zero if it already is).
    pub fn wait(&self, now: Instant) -> Duration {
        let missing = 1.0 - self.credit(now);
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a bucket for `secs` seconds, asking for `want` tokens whenever it says one is
    /// there (as the bridge does); returns how many it handed out.
    fn sent_in(rate: u32, secs: f64, want: usize) -> usize {
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let mut b = Bucket::new(rate, start);
        let (mut now, mut sent) = (start, 0);
        while now < end {
            sent += b.take(want, now);
            // Wake when the next token is due, at least 100 µs later (a timer's granularity).
            now += b.wait(now).max(Duration::from_micros(100));
        }
        sent
    }

    /// 5/s gives 5/s (the old per-tick budget sent 20/s for anything below 20): 50 in 10 s
    /// plus the one token a full bucket starts with.
    #[test]
    fn low_rates_are_honoured() {
        let n = sent_in(5, 10.0, 100);
        assert!((50..=51).contains(&n), "{n} messages in 10 s at 5/s");
        let n = sent_in(1, 10.0, 100);
        assert!((10..=11).contains(&n), "{n} messages in 10 s at 1/s");
    }

    /// 10,000/s and 100,000/s are reached (the old budget capped near 2,000/s), never passed by
    /// more than the 50 ms burst.
    #[test]
    fn high_rates_are_reached_and_capped() {
        for rate in [10_000u32, 100_000] {
            let n = sent_in(rate, 2.0, usize::MAX);
            let (want, burst) = (2 * rate as usize, rate as usize / 20);
            assert!(
                n >= want - 1 && n <= want + burst,
                "{n} messages in 2 s at {rate}/s"
            );
        }
    }

    /// A long pause saves up one burst, not the whole pause's worth.
    #[test]
    fn an_idle_pause_saves_up_one_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1_000, t0);
        assert_eq!(b.take(usize::MAX, t0), 50);
        assert_eq!(b.take(usize::MAX, t0), 0);
        let wait = b.wait(t0).as_secs_f64();
        assert!((wait - 0.001).abs() < 1e-6, "next token after {wait} s");
        assert_eq!(b.take(usize::MAX, t0 + Duration::from_secs(60)), 50);
        assert_eq!(
            b.take(3, t0 + Duration::from_secs(61)),
            3,
            "want caps the take"
        );
    }
}
