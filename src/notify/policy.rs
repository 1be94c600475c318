//! A channel's delivery policy — which severities it takes, how long the first alert waits for
//! company, the storm cap, quiet hours — and the pure time arithmetic behind it (quiet-hour
//! windows in a time zone, retry back-off).

use super::Severity;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Longest group wait a channel may ask for.
pub const MAX_GROUP_WAIT_S: u32 = 600;
/// Longest pause between two tries of one message (the back-off stops doubling there).
pub const MAX_BACKOFF_MS: i64 = 10 * 60 * 1000;
/// How long a message is retried on network errors, 429 and 5xx before it is reported failed.
pub const GIVE_UP_AFTER_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// The lowest severity this channel takes.
    pub min_severity: Severity,
    /// The first alert waits at most this long for others to go out with it.
    pub group_wait_s: u32,
    /// At most this many messages per `storm_window_s`; what comes beyond goes out as one
    /// summary when the window allows again.
    pub storm_cap: u32,
    pub storm_window_s: u32,
    pub quiet_hours: Option<QuietHours>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_severity: Severity::Warning,
            group_wait_s: 10,
            storm_cap: 20,
            storm_window_s: 3600,
            quiet_hours: None,
        }
    }
}

/// A daily window (`"23:00"`–`"07:00"`, local time) in which non-critical messages are held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    /// Hold critical messages too (by default they pass).
    #[serde(default)]
    pub hold_critical: bool,
}

impl Policy {
    /// Checks the ranges; the sentence names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.group_wait_s > MAX_GROUP_WAIT_S {
            return Err(format!("group_wait_s must be 0-{MAX_GROUP_WAIT_S} seconds"));
        }
        if !(1..=10_000).contains(&self.storm_cap) {
            return Err("storm_cap must be 1-10000 messages".into());
        }
        if !(1..=86_400).contains(&self.storm_window_s) {
            return Err("storm_window_s must be 1-86400 seconds".into());
        }
        if let Some(q) = &self.quiet_hours {
            let start = minutes("quiet_hours.start", &q.start)?;
            let end = minutes("quiet_hours.end", &q.end)?;
            if start == end {
                return Err("quiet_hours.start and quiet_hours.end must differ".into());
            }
        }
        Ok(())
    }

    /// Whether a message of `severity` passes the quiet hours.
    pub fn passes_quiet(&self, severity: Severity) -> bool {
        match &self.quiet_hours {
            None => true,
            Some(q) => severity == Severity::Critical && !q.hold_critical,
        }
    }
}

/// `"HH:MM"` → minutes after midnight.
fn minutes(field: &str, s: &str) -> Result<i32, String> {
    let bad = || format!("{field} must be a time like 23:00");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if (0..24).contains(&h) && (0..60).contains(&m) && s.trim().len() <= 5 {
        Ok(h * 60 + m)
    } else {
        Err(bad())
    }
}

/// If `now_ms` lies inside the quiet hours (in `tz`), when they end (epoch ms).
pub fn quiet_until(q: &QuietHours, tz: &TimeZone, now_ms: i64) -> Option<i64> {
    let (start, end) = (minutes("", &q.start).ok()?, minutes("", &q.end).ok()?);
    let now = jiff::Timestamp::from_millisecond(now_ms)
        .ok()?
        .to_zoned_datetime(tz.clone());
    let m = i32::from(now.hour()) * 60 + i32::from(now.minute());
    let inside = if start < end {
        (start..end).contains(&m)
    } else {
        m >= start || m < end
    };
    if !inside {
        return None;
    }
    let at = |date: jiff::civil::Date| {
        let (h, min) = (i8::try_from(end / 60).ok()?, i8::try_from(end % 60).ok()?);
        let z = date.at(h, min, 0, 0).to_zoned_datetime(tz.clone()).ok()?;
        Some(z.timestamp().as_millisecond())
    };
    let today = at(now.date())?;
    if today > now_ms {
        Some(today)
    } else {
        at(now.date().tomorrow().ok()?)
    }
}

/// The pause before try `attempts + 1`: `base`, doubling, at most [`MAX_BACKOFF_MS`].
pub fn backoff_ms(base_ms: i64, attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base_ms
        .saturating_mul(1_i64 << doublings)
        .min(MAX_BACKOFF_MS)
}

/// The configured zone (`RZMON_TIMEZONE`, an IANA name) or the server's own.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None | Some("") => Ok(TimeZone::system()),
        Some(n) => TimeZone::get(n).map_err(|_| {
            format!("RZMON_TIMEZONE: unknown time zone {n:?} (use a name like Europe/Berlin)")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str, tz: &TimeZone) -> i64 {
        let dt: jiff::civil::DateTime = s.parse().unwrap();
        dt.to_zoned_datetime(tz.clone())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn quiet_hours_across_midnight() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let q = QuietHours {
            start: "23:00".into(),
            end: "07:00".into(),
            hold_critical: false,
        };
        assert_eq!(quiet_until(&q, &tz, ms("2026-12-01T22:59", &tz)), None);
        assert_eq!(
            quiet_until(&q, &tz, ms("2026-12-01T23:30", &tz)),
            Some(ms("2026-12-02T07:00", &tz))
        );
        assert_eq!(
            quiet_until(&q, &tz, ms("2026-12-02T03:00", &tz)),
            Some(ms("2026-12-02T07:00", &tz))
        );
        assert_eq!(quiet_until(&q, &tz, ms("2026-12-02T07:00", &tz)), None);
        let day = QuietHours {
            start: "09:00".into(),
            end: "17:30".into(),
            hold_critical: false,
        };
        assert_eq!(
            quiet_until(&day, &tz, ms("2026-12-02T12:00", &tz)),
            Some(ms("2026-12-02T17:30", &tz))
        );
        assert_eq!(quiet_until(&day, &tz, ms("2026-12-02T18:00", &tz)), None);
    }

    #[test]
    fn backoff_doubles_to_ten_minutes() {
        let b: Vec<i64> = (1..=10).map(|a| backoff_ms(5_000, a)).collect();
        assert_eq!(&b[..5], &[5_000, 10_000, 20_000, 40_000, 80_000]);
        assert_eq!(b[9], MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(5_000, 1_000), MAX_BACKOFF_MS);
    }

    #[test]
    fn policy_ranges_name_the_field() {
        let mut p = Policy {
            group_wait_s: 601,
            ..Policy::default()
        };
        assert!(p.validate().unwrap_err().contains("group_wait_s"));
        p.group_wait_s = 0;
        p.quiet_hours = Some(QuietHours {
            start: "25:00".into(),
            end: "07:00".into(),
            hold_critical: false,
        });
        assert!(p.validate().unwrap_err().contains("quiet_hours.start"));
        assert!(
            time_zone(Some("Mars/Olympus"))
                .unwrap_err()
                .contains("RZMON_TIMEZONE")
        );
    }
}
