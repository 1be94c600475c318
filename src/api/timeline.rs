//! `GET /timeline?at=&window=&device=`: what happened around one moment, in one answer — card
//! swipes (with the person's name), door lock changes, incidents, each device's reading in
//! force at the moment and the temperature/humidity course (min/avg/max buckets) around it.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::params::{Bound, parse_device, parse_instant, present};
use super::routes::{Endpoints, Table, finish, query};
use super::{Shared, blocking};
use crate::model::format_ts;
use crate::store::{RangeQuery, SummarySource};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

/// Seconds either side of `at` when `window` is absent, and the bounds accepted.
const DEFAULT_WINDOW_S: i64 = 900;
const MIN_WINDOW_S: i64 = 60;
const MAX_WINDOW_S: i64 = 6 * 3600;
/// Events of each kind in one answer at most (`truncated` says when more existed).
const MAX_EVENTS: u32 = 1000;
/// Buckets of the temperature/humidity course per device.
const BUCKETS: i64 = 60;

#[derive(Deserialize)]
struct TimelineParams {
    at: Option<String>,
    window: Option<String>,
    device: Option<String>,
}

pub fn routes(t: &Table) -> Endpoints {
    finish(
        t.get("timeline")
            .and(query::<TimelineParams>())
            .and(t.state())
            .then(timeline),
    )
}

/// `window`: seconds either side of `at`.
fn parse_window(v: Option<&str>) -> Result<i64, String> {
    let Some(v) = v else {
        return Ok(DEFAULT_WINDOW_S);
    };
    v.parse::<i64>()
        .ok()
        .filter(|n| (MIN_WINDOW_S..=MAX_WINDOW_S).contains(n))
        .ok_or_else(|| {
            format!(
                "window must be a whole number of seconds from {MIN_WINDOW_S} to {MAX_WINDOW_S}."
            )
        })
}

async fn timeline(
    _user: Principal,
    q: TimelineParams,
    state: Shared,
) -> Result<Response, ApiError> {
    let at = present(&q.at).ok_or_else(|| {
        ApiError::bad_request(
            "at is required: the moment to look at (a date-time or epoch seconds).",
        )
    })?;
    let at =
        parse_instant(at, Bound::Start).map_err(|e| ApiError::BadRequest(format!("at: {e}")))?;
    let window = parse_window(present(&q.window)).map_err(ApiError::BadRequest)? * 1000;
    let device = present(&q.device)
        .map(parse_device)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let (start, end) = (at.saturating_sub(window), at.saturating_add(window));
    let range = RangeQuery {
        start_ms: Some(start),
        end_ms: Some(end),
        limit: MAX_EVENTS,
        device: device.clone(),
    };
    let dev = device.as_ref().map(|d| d.as_str().to_owned());
    let width = (end - start) / BUCKETS + 1;
    let (access, incidents, doors, readings, known, course) =
        blocking(&state.ctx.store, move |s| {
            let d = dev.as_deref();
            let readings = s.readings_at(d, start, at)?;
            let mut course = Vec::new();
            // The devices with readings in the window, also those silent before `at`.
            let mut devices: Vec<String> = s
                .readings_at(d, start, end)?
                .into_iter()
                .map(|r| r.device.as_str().to_owned())
                .collect();
            devices.dedup();
            for id in devices {
                // Raw rows: the window is short, and `bucket_ms` stays exactly `width`.
                let summary =
                    s.telemetry_summary(Some(&id), start, end, width, SummarySource::Raw)?;
                course.push((id, summary.buckets));
            }
            Ok((
                s.access_events(&range, None)?,
                s.incidents(&range, None)?,
                s.door_changes(d, start, end, MAX_EVENTS)?,
                readings,
                s.access_ids()?,
                course,
            ))
        })
        .await?;
    let truncated = access.len() >= MAX_EVENTS as usize
        || incidents.len() >= MAX_EVENTS as usize
        || doors.len() >= MAX_EVENTS as usize;
    let names: HashMap<String, String> = known.into_iter().map(|k| (k.access_id, k.name)).collect();
    let mut events: Vec<(i64, Value)> = Vec::new();
    for r in access {
        let name = names.get(&r.access_id);
        events.push((r.ts_ms, json!({
            "timestamp": format_ts(r.ts_ms), "device": r.device, "kind": "access",
            "access_id": r.access_id, "granted": r.granted, "known": name.is_some(), "name": name,
        })));
    }
    for r in incidents {
        events.push((
            r.ts_ms,
            json!({
                "timestamp": format_ts(r.ts_ms), "device": r.device, "kind": "incident",
                "type": r.kind, "data": r.data,
            }),
        ));
    }
    for r in doors {
        events.push((
            r.ts_ms,
            json!({
                "timestamp": format_ts(r.ts_ms), "device": r.device, "kind": "door",
                "locked": r.locked, "changed": r.changed,
            }),
        ));
    }
    events.sort_by_key(|(ts, _)| *ts);
    let readings: Vec<Value> = readings
        .into_iter()
        .map(|r| {
            json!({
                "timestamp": format_ts(r.ts_ms), "device": r.device,
                "tmp": r.tmp, "lf": r.lf, "locked": r.locked,
            })
        })
        .collect();
    let course: serde_json::Map<String, Value> = course
        .into_iter()
        .map(|(id, b)| (id, b.into_iter().map(super::data::bucket_json).collect()))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "at": format_ts(at), "start": format_ts(start), "end": format_ts(end),
            "device": device, "events": events.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
            "readings_at": readings, "bucket_ms": width, "course": course, "truncated": truncated,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds() {
        assert_eq!(parse_window(None), Ok(DEFAULT_WINDOW_S));
        assert_eq!(parse_window(Some("60")), Ok(60));
        assert_eq!(parse_window(Some("21600")), Ok(21600));
        for bad in ["59", "21601", "abc", "-5", "1.5"] {
            let err = parse_window(Some(bad)).expect_err(bad);
            assert!(err.starts_with("window"), "{err}");
        }
    }
}
