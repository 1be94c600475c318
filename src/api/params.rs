//! Query parameters of `/data` and `/incidents`: dates (ISO-8601 date or date-time, with or
//! without offset, or epoch seconds), `limit` and `device`. Routes deserialize them into
//! [`RangeParams`] (unknown parameters are ignored, empty values count as absent); the checks
//! here are pure functions whose `Err` sentences name the parameter and become 400 answers.

use crate::model::{DEVICE_ID_RULE, DeviceId};
use crate::store::RangeQuery;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// Rows returned when `limit` is absent (the seed's default).
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest `limit` accepted: bounds the work and the size of one answer.
pub const MAX_LIMIT: u32 = 10_000;
/// Longest incident `type` filter accepted.
const MAX_TYPE_LEN: usize = 128;
/// Latest instant accepted (9999-12-31T23:59:59Z), so epoch seconds cannot overflow.
const MAX_EPOCH_SECS: i64 = 253_402_300_799;

/// Real time zones are within ±14 h of UTC.
const MAX_OFFSET_HOURS: i8 = 14;

const DATE_HELP: &str = "use a date (2026-11-28), a date-time (2026-11-28T10:00:00, UTC unless \
it ends in Z or an offset such as +01:00) or epoch seconds";

/// Which end of a range a date names: a date alone means the start or the end of that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Start,
    End,
}

/// The filters shared by `/data`, `/data/summary`, `/incidents` and `/access`.
#[derive(Debug, Default, Deserialize)]
pub struct RangeParams {
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub limit: Option<String>,
    pub device: Option<String>,
}

impl RangeParams {
    /// The checked range; the error names the parameter.
    pub fn parse(&self) -> Result<RangeQuery, String> {
        let start_ms = present(&self.start_date)
            .map(|v| parse_instant(v, Bound::Start).map_err(|e| format!("start_date: {e}")))
            .transpose()?;
        let end_ms = present(&self.end_date)
            .map(|v| parse_instant(v, Bound::End).map_err(|e| format!("end_date: {e}")))
            .transpose()?;
        if let (Some(s), Some(e)) = (start_ms, end_ms)
            && s > e
        {
            return Err("start_date must not be after end_date.".into());
        }
        Ok(RangeQuery {
            start_ms,
            end_ms,
            limit: parse_limit(present(&self.limit))?,
            device: present(&self.device).map(parse_device).transpose()?,
        })
    }
}

/// A parameter's value, trimmed; empty counts as absent.
pub fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The optional incident `type` filter.
pub fn incident_type(v: Option<&str>) -> Result<Option<String>, String> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        Some(t) if t.chars().count() > MAX_TYPE_LEN => {
            Err(format!("type must be at most {MAX_TYPE_LEN} characters."))
        }
        t => Ok(t.map(str::to_owned)),
    }
}

/// `limit`: absent → 100; otherwise a whole number from 1 to 10000.
pub fn parse_limit(v: Option<&str>) -> Result<u32, String> {
    let Some(v) = v else {
        return Ok(DEFAULT_LIMIT);
    };
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT}."
        )),
    }
}

/// The `device` parameter's rule, in the sentence every route uses.
pub fn parse_device(v: &str) -> Result<DeviceId, String> {
    DeviceId::parse(v).ok_or_else(|| format!("`device` must be {DEVICE_ID_RULE}."))
}

/// Epoch milliseconds named by `v`. A date alone is midnight UTC for `Start` and the last
/// millisecond of that day for `End`.
pub fn parse_instant(v: &str, bound: Bound) -> Result<i64, String> {
    let v = v.trim();
    let bad = || format!("{v:?} is not a date or time; {DATE_HELP}.");
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = v.parse().map_err(|_| bad())?;
        if secs > MAX_EPOCH_SECS {
            return Err(bad());
        }
        return Ok(secs * 1000);
    }
    if let Ok(d) = Date::parse(v, format_description!("[year]-[month]-[day]")) {
        let start = ms(PrimitiveDateTime::new(d, time::Time::MIDNIGHT).assume_utc());
        return Ok(match bound {
            Bound::Start => start,
            Bound::End => start + 86_400_000 - 1,
        });
    }
    parse_date_time(&normalize(v))
        .filter(|t| t.offset().whole_hours().abs() <= MAX_OFFSET_HOURS)
        .map(ms)
        .ok_or_else(bad)
}

/// Accepts a space or `t` between date and time, a lowercase `z`, and an offset whose `+` was
/// decoded to a space by the query string (`...T10:00:00 02:00` was `...T10:00:00+02:00`).
fn normalize(v: &str) -> String {
    let mut s: Vec<u8> = v.bytes().collect();
    if let Some(b) = s.get_mut(10)
        && (*b == b' ' || *b == b't')
    {
        *b = b'T';
    }
    for b in s.iter_mut().skip(11) {
        match *b {
            b' ' => *b = b'+',
            b'z' => *b = b'Z',
            _ => {}
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn parse_date_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let naive = format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(s, naive) {
        return Some(t.assume_utc());
    }
    // ISO-8601 offsets RFC 3339 does not allow: +0100, +01.
    let with_offset = format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]]\
         [offset_hour sign:mandatory][optional [[optional [:]][offset_minute]]]"
    );
    OffsetDateTime::parse(s, with_offset).ok()
}

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T10: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z
    const DAY: i64 = 1_795_824_000_000; // 2026-11-28T00:00:00Z

    fn q(pairs: &[(&str, &str)]) -> RangeParams {
        let raw = serde_urlencoded::to_string(pairs).expect("encode");
        serde_urlencoded::from_str(&raw).expect("decode")
    }

    fn range_query(p: &RangeParams) -> Result<RangeQuery, String> {
        p.parse()
    }

    /// Every accepted date format names the instant it should.
    #[test]
    fn every_date_format() {
        let cases = [
            ("2026-11-28T10:00:00", T10),
            ("2026-11-28T10:00", T10),
            ("2026-11-28 10:00:00", T10),
            ("2026-11-28T10:00:00Z", T10),
            ("2026-11-28t10:00:00z", T10),
            ("2026-11-28T10:00:00.250Z", T10 + 250),
            ("2026-11-28T10:00:00.123456", T10 + 123),
            ("2026-11-28T11:00:00+01:00", T10),
            ("2026-11-28T11:00:00 01:00", T10),
            ("2026-11-28T08:30:00-01:30", T10),
            ("2026-11-28T11:00:00+0100", T10),
            ("2026-11-28T11:00:00+01", T10),
            ("1795860000", T10),
            ("0", 0),
        ];
        for (input, want) in cases {
            assert_eq!(parse_instant(input, Bound::Start), Ok(want), "{input}");
        }
    }

    /// A date alone is the start of the day as a start, and its last millisecond as an end.
    #[test]
    fn date_only_covers_the_whole_day() {
        assert_eq!(parse_instant("2026-11-28", Bound::Start), Ok(DAY));
        assert_eq!(
            parse_instant("2026-11-28", Bound::End),
            Ok(DAY + 86_400_000 - 1)
        );
        // A date-time end is exact, not stretched to the end of the day.
        assert_eq!(parse_instant("2026-11-28T10:00:00", Bound::End), Ok(T10));
    }

    /// Malformed dates are refused with a sentence that shows the accepted formats.
    #[test]
    fn bad_dates_are_refused() {
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-28T25:00:00",
            "28.11.2026",
            "1795860000.5",
            "-5",
            "99999999999999999999",
            "253402300800",
            "2026-11-28T10:00:00+25:00",
            "2026-11-28T",
        ] {
            let err = parse_instant(bad, Bound::Start).expect_err(bad);
            assert!(err.contains("epoch seconds"), "{err}");
        }
    }

    /// The range query takes defaults, ignores unknown and empty parameters, and checks order.
    #[test]
    fn range_query_defaults_and_order() {
        let r = range_query(&q(&[("foo", "bar"), ("device", "")])).expect("ok");
        assert_eq!((r.start_ms, r.end_ms, r.limit), (None, None, 100));
        assert!(r.device.is_none());

        let r = range_query(&q(&[
            ("start_date", "2026-11-28"),
            ("end_date", "2026-11-28"),
            ("device", "esp32-1"),
            ("limit", "5"),
        ]))
        .expect("ok");
        assert_eq!(r.start_ms, Some(DAY));
        assert_eq!(r.end_ms, Some(DAY + 86_399_999));
        assert_eq!(r.limit, 5);
        assert_eq!(r.device.as_ref().map(DeviceId::as_str), Some("esp32-1"));

        let err = range_query(&q(&[
            ("start_date", "2026-11-29"),
            ("end_date", "2026-11-28"),
        ]))
        .expect_err("reversed");
        assert!(err.contains("start_date"), "{err}");
        assert!(range_query(&q(&[("device", "a/b")])).is_err());
        assert!(range_query(&q(&[("start_date", "x")])).is_err());
    }

    /// limit: default 100, 1..=10000 accepted, everything else refused.
    #[test]
    fn limit_validation() {
        assert_eq!(parse_limit(None), Ok(100));
        assert_eq!(parse_limit(Some("1")), Ok(1));
        assert_eq!(parse_limit(Some("10000")), Ok(10_000));
        for bad in ["0", "10001", "-1", "abc", "1.5", "99999999999"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    /// The incident type filter is optional and bounded.
    #[test]
    fn incident_type_filter() {
        assert_eq!(incident_type(None), Ok(None));
        assert_eq!(incident_type(Some(" ")), Ok(None));
        assert_eq!(
            incident_type(Some("door_forced")),
            Ok(Some("door_forced".into()))
        );
        assert!(incident_type(Some(&"x".repeat(129))).is_err());
    }
}
