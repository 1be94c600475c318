//! `RZMON_BACKUP_EVERY`: `daily@HH:MM` (local time), `hourly`, a number of seconds, `off`;
//! and when the next backup is due. Local time comes from SQLite's `localtime` modifier (the
//! C library's `localtime_r`, which follows `TZ` and `/etc/localtime`, daylight saving
//! included), so no time-zone database is bundled.

use std::fmt;

/// When scheduled backups run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupEvery {
    Off,
    /// At the start of every hour (UTC and local hours coincide but for odd offsets).
    Hourly,
    /// Every day at this local time.
    Daily {
        hour: u8,
        minute: u8,
    },
    /// Every this many seconds after the previous one.
    Seconds(u64),
}

impl BackupEvery {
    pub fn parse(s: &str) -> Result<Self, String> {
        let v = s.trim().to_ascii_lowercase();
        let bad = || {
            format!(
                "RZMON_BACKUP_EVERY must be daily@HH:MM, hourly, a number of seconds or off, got {s:?}"
            )
        };
        match v.as_str() {
            "off" => return Ok(Self::Off),
            "hourly" => return Ok(Self::Hourly),
            _ => {}
        }
        if let Some(at) = v.strip_prefix("daily@") {
            let (h, m) = at.split_once(':').ok_or_else(bad)?;
            let hour: u8 = h.parse().ok().filter(|h| *h < 24).ok_or_else(bad)?;
            let minute: u8 = m.parse().ok().filter(|m| *m < 60).ok_or_else(bad)?;
            return Ok(Self::Daily { hour, minute });
        }
        match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Self::Seconds(n)),
            _ => Err(bad()),
        }
    }

    /// Milliseconds from `now_ms` to the next backup (`None` when off).
    pub fn next_in_ms(&self, now_ms: i64) -> Option<i64> {
        match *self {
            Self::Off => None,
            Self::Seconds(n) => Some(i64::try_from(n.saturating_mul(1000)).unwrap_or(i64::MAX)),
            Self::Hourly => Some(3_600_000 - now_ms.rem_euclid(3_600_000)),
            Self::Daily { hour, minute } => {
                let at = next_local(now_ms, hour, minute).unwrap_or(now_ms + 86_400_000);
                Some((at - now_ms).max(1))
            }
        }
    }
}

impl fmt::Display for BackupEvery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Hourly => f.write_str("hourly"),
            Self::Daily { hour, minute } => write!(f, "daily@{hour:02}:{minute:02}"),
            Self::Seconds(n) => write!(f, "{n}"),
        }
    }
}

/// The first instant after `now_ms` whose local wall clock reads `hour:minute`, in epoch ms.
fn next_local(now_ms: i64, hour: u8, minute: u8) -> Option<i64> {
    let c = rusqlite::Connection::open_in_memory().ok()?;
    let now_s = now_ms.div_euclid(1000);
    (0..3).find_map(|day| {
        let at: i64 = c
            .query_row(
                "SELECT CAST(strftime('%s', date(?1, 'unixepoch', 'localtime', ?2) || ?3, 'utc')
                        AS INTEGER)",
                (
                    now_s,
                    format!("+{day} day"),
                    format!(" {hour:02}:{minute:02}:00"),
                ),
                |r| r.get(0),
            )
            .ok()?;
        (at * 1000 > now_ms).then_some(at * 1000)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_names_the_variable() {
        assert_eq!(BackupEvery::parse("off"), Ok(BackupEvery::Off));
        assert_eq!(BackupEvery::parse("Hourly"), Ok(BackupEvery::Hourly));
        assert_eq!(BackupEvery::parse("30"), Ok(BackupEvery::Seconds(30)));
        assert_eq!(
            BackupEvery::parse("daily@03:30"),
            Ok(BackupEvery::Daily {
                hour: 3,
                minute: 30
            })
        );
        for bad in ["daily@24:00", "daily@3", "0", "-5", "weekly", ""] {
            assert!(
                BackupEvery::parse(bad)
                    .unwrap_err()
                    .contains("RZMON_BACKUP_EVERY")
            );
        }
    }

    /// The next daily run is within a day, and lands on the asked local minute.
    #[test]
    fn next_daily_run_is_within_a_day() {
        let now = 1_795_860_000_000; // 2026-11-28T10:00:00Z
        let every = BackupEvery::Daily {
            hour: 3,
            minute: 30,
        };
        let wait = every.next_in_ms(now).unwrap();
        assert!(wait > 0 && wait <= 86_400_000, "{wait}");
        assert_eq!((now + wait) % 60_000, 0);
        assert_eq!(BackupEvery::Hourly.next_in_ms(now), Some(3_600_000));
        assert_eq!(BackupEvery::Off.next_in_ms(now), None);
    }
}
