//! The Backups section and the "Download CSV" buttons in a real headless Chromium, on a server
//! with two days of back-dated telemetry and incidents of two racks: an admin backs up now, the
//! new backup shows up verified with its size and time, and its Download button saves a real
//! SQLite file; the history and incidents pages save CSV files of exactly what they show
//! (device, date range), also when the filter was changed but not yet applied, RFC 4180 with
//! CRLF. A viewer is offered no backup control and is refused a backup's download. Screenshots
//! at 1280×800 and 390×844, English and German, light and dark, stay in
//! `target/browser-screenshots/` (`ok-backups-<lang>-<scheme>-<width>.png`, the section alone in
//! `section-backups-….png`).

use crate::util::browser::{Browser, ColorScheme, VIEWPORTS, open_at, sign_in, step};
use crate::util::*;
use serde_json::{Value, json};
use std::time::Duration;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// Reading intervals of the two racks.
const RACKS: [(&str, i64); 2] = [("rack-a", 5 * MINUTE), ("rack-b", 10 * MINUTE)];
/// A backup of a small database takes well under a second; the check runs `integrity_check`.
const BACKUP_WAIT: Duration = Duration::from_secs(30);

/// Receive times (epoch ms) of the seeded readings of each rack.
type Seeded = Vec<(&'static str, Vec<i64>)>;

/// Two days of readings per rack (each half a minute off the whole minutes a filter's bound
/// is typed in) and incidents of both racks, one with a comma, quotes and a newline.
fn seed(app: &TestApp, now: i64) -> Seeded {
    let base = now - now.rem_euclid(MINUTE) - MINUTE / 2;
    let mut seeded = Vec::new();
    for (rack, every) in RACKS {
        app.add_device(rack);
        let times: Vec<i64> = (1..=48 * HOUR / every).map(|i| base - i * every).collect();
        let readings = times
            .iter()
            .enumerate()
            .map(|(i, &ts)| {
                let tmp = 21.0 + (i % 40) as f64 / 10.0;
                (ts, json!({"tmp": tmp, "lf": 45.0, "locked": i % 30 != 0}))
            })
            .collect();
        write_readings(&app.db_path(), rack, readings);
        seeded.push((rack, times));
    }
    let incident = |h: i64, kind: &str, message: &str| {
        (
            now - h * HOUR - 4_321,
            json!({"type": kind, "message": message}),
        )
    };
    let incidents = [
        (
            "rack-a",
            vec![
                incident(50, "tamper", "lid open"),
                incident(30, "door_forced", "pried open, \"hard\"\nat the hinge"),
                incident(25, "temperature_high", "31 °C"),
                incident(3, "door_open_too_long", "open 5 min"),
            ],
        ),
        (
            "rack-b",
            vec![
                incident(26, "tamper", "cover"),
                incident(2, "tamper", "cover"),
            ],
        ),
    ];
    for (rack, list) in incidents {
        write_incidents(&app.db_path(), rack, list);
    }
    seeded
}

/// The records of a CSV file, header first, after checking what RFC 4180 with CRLF demands:
/// every record (header too) ends in CRLF, also the last one; a line break inside a quoted
/// field is data, not a record end.
fn records(bytes: &[u8], header: &str) -> Result<Vec<csv::StringRecord>, String> {
    let mut quoted = false;
    for (i, &c) in bytes.iter().enumerate() {
        let bare_lf = c == b'\n' && (i == 0 || bytes[i - 1] != b'\r');
        let bare_cr = c == b'\r' && bytes.get(i + 1) != Some(&b'\n');
        match c {
            b'"' => quoted = !quoted, // a doubled quote toggles twice
            _ if !quoted && (bare_lf || bare_cr) => {
                return Err(format!("a line ends without CRLF at byte {i}"));
            }
            _ => {}
        }
    }
    if !bytes.ends_with(b"\r\n") {
        return Err("the last line does not end in CRLF".into());
    }
    let out = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not CSV: {e}"))?;
    match out.first() {
        Some(h) if h.iter().collect::<Vec<_>>().join(",") == header => Ok(out),
        h => Err(format!("header row {h:?}, wanted {header:?}")),
    }
}

/// Epoch ms of a CSV timestamp (`2026-11-28T15:04:05.123Z`).
fn epoch_ms(ts: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| format!("timestamp {ts:?}: {e}"))
}

/// Types `ms` into the date input `css` as `yyyy-mm-dd hh:mm` in the browser's time zone (a
/// format every language's input reads); the typed minute as epoch ms.
async fn type_date(b: &Browser, css: &str, ms: i64) -> Result<i64, String> {
    let v = b
        .js(&format!(
            "const d = new Date({ms}); d.setSeconds(0, 0); const p = (n) => String(n).padStart(2, '0'); \
             return [`${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}} ${{p(d.getHours())}}:${{p(d.getMinutes())}}`, d.getTime()];"
        ))
        .await?;
    b.fill(css, v[0].as_str().unwrap_or_default()).await?;
    v[1].as_i64()
        .ok_or_else(|| format!("no time for {ms}: {v}"))
}

/// History page, both racks, a custom range of two hours a day ago shown with "Show": the
/// chart's reading count and one CSV file per rack with exactly the seeded readings of that
/// range. Then the range's end is moved an hour earlier without "Show": Download CSV draws
/// that range first, and the files hold it.
async fn history_csv(b: &Browser, seeded: &Seeded, now: i64) -> Result<(), String> {
    b.js("location.hash = '#/history?device=rack-a,rack-b'")
        .await?;
    b.wait("#history-dev-rack-b:checked", SOON).await?;
    b.click("#range-custom").await?;
    let from = type_date(b, "#history-from", now - 26 * HOUR).await?;
    for (to_hours, show) in [(24, true), (25, false)] {
        let to = type_date(b, "#history-to", now - to_hours * HOUR).await?;
        b.js("document.getElementById('chart-tmp').removeAttribute('data-readings')")
            .await?;
        b.clear_downloads();
        if show {
            b.click("#history-apply").await?;
            b.wait("#chart-tmp[data-readings]", SOON).await?;
        }
        b.click("#history-csv").await?;
        let mut total = 0;
        for (rack, times) in seeded {
            let mut want: Vec<i64> = times
                .iter()
                .copied()
                .filter(|t| (from..=to).contains(t))
                .collect();
            want.sort_unstable();
            let file = b.downloaded(&format!("{rack}.csv"), SOON).await?;
            let rows = records(&file, "timestamp,device,tmp,lf,locked,seq,other")?;
            let got: Vec<i64> = rows[1..]
                .iter()
                .map(|r| epoch_ms(&r[0]))
                .collect::<Result<_, _>>()?;
            if got != want || rows[1..].iter().any(|r| &r[1] != *rack) {
                return Err(format!(
                    "{rack}.csv holds {} rows at {got:?}, the range {from}..{to} has {} at {want:?}",
                    got.len(),
                    want.len()
                ));
            }
            total += got.len();
        }
        let shown: usize = b
            .attr("#chart-tmp[data-readings]", "data-readings")
            .await?
            .parse()
            .map_err(|e| format!("data-readings: {e}"))?;
        if total != shown || total == 0 {
            return Err(format!(
                "the chart shows {shown} readings, the CSV files hold {total} (Show pressed: {show})"
            ));
        }
    }
    Ok(())
}

/// Incidents page, since 36 hours ago: filtered to rack-a with "Filter", the CSV holds exactly
/// the rows the table shows, the message with comma, quotes and newline intact; then rack-b
/// picked without "Filter": Download CSV applies it first, and the file holds what the table
/// then shows.
async fn incidents_csv(b: &Browser, now: i64) -> Result<(), String> {
    b.js("location.hash = '#/incidents'").await?;
    type_date(b, "#inc-from", now - 36 * HOUR).await?;
    for (rack, rows_shown, filter) in [("rack-a", 3, true), ("rack-b", 2, false)] {
        b.click(&format!("#inc-device option[value=\"{rack}\"]"))
            .await?;
        b.clear_downloads();
        if filter {
            b.click("#inc-apply").await?;
            wait_table(b, rack, rows_shown).await?;
        }
        b.click("#inc-csv").await?;
        let file = b.downloaded("incidents.csv", SOON).await?;
        let shown = wait_table(b, rack, rows_shown).await?;
        let rows = records(&file, "timestamp,device,type,message,other")?;
        let mut got: Vec<Value> = rows[1..]
            .iter()
            .map(|r| json!([&r[0], &r[1], &r[2]]))
            .collect();
        got.reverse(); // the file is oldest first, the table newest first
        if Value::Array(got.clone()) != shown {
            return Err(format!(
                "incidents.csv rows {got:?}, the table shows {shown}"
            ));
        }
        if rack == "rack-a" {
            let forced = rows
                .iter()
                .find(|r| &r[2] == "door_forced")
                .map(|r| r[3].to_owned());
            if forced.as_deref() != Some("pried open, \"hard\"\nat the hinge") {
                return Err(format!("the quoted message came back as {forced:?}"));
            }
        }
    }
    Ok(())
}

/// Waits until the incidents table shows `n` rows, all of `rack`; `[timestamp, device, type]`
/// of each, newest first.
async fn wait_table(b: &Browser, rack: &str, n: usize) -> Result<Value, String> {
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let rows = b
            .js("return [...document.querySelectorAll('#incidents-table tbody tr')].map((r) => [r.dataset.timestamp, r.dataset.device, r.dataset.type])")
            .await?;
        let list = rows.as_array().cloned().unwrap_or_default();
        if list.len() == n && list.iter().all(|r| r[1] == rack) {
            return Ok(rows);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("the table shows {rows}, wanted {n} rows of {rack}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Devices page: "Back up now" → the new backup in the list, verified, with its size and
/// time; its Download button saves exactly the file the API lists, a complete SQLite database
/// holding every reading. The backup's name.
async fn backup_now(b: &Browser, app: &TestApp, token: &str) -> Result<String, String> {
    b.js("location.hash = '#/devices'").await?;
    b.wait_text("#backups-status", SOON, |t| t.contains("No backups yet"))
        .await?;
    b.click("#backup-now").await?;
    b.wait_text("#backups-table tbody", BACKUP_WAIT, |t| {
        t.contains("verified")
    })
    .await?;
    let (_, list) = app.get("/backups", Some(token)).await;
    let backup = &list["backups"][0];
    let (Some(name), Some(size)) = (backup["name"].as_str(), backup["size"].as_u64()) else {
        return Err(format!("GET /backups: {list}"));
    };
    if list["backups"].as_array().map(Vec::len) != Some(1) || backup["verified"] != true {
        return Err(format!("one verified backup expected: {list}"));
    }
    b.wait_text("#backups-status", SOON, |t| {
        t.contains(name) && t.contains("verified")
    })
    .await?;
    let row = format!("#backups-table tr[data-name=\"{name}\"]");
    let time = b.attr(&format!("{row} time"), "datetime").await?;
    if backup["time"] != time.as_str() {
        return Err(format!(
            "the row's time {time:?}, the API's {}",
            backup["time"]
        ));
    }
    let cells = b
        .js(&format!(
            "return [...document.querySelectorAll('{row} td')].map((c) => c.textContent.trim())"
        ))
        .await?;
    let kib = size.div_ceil(1024).max(1);
    let shown_size = cells[1].as_str().unwrap_or_default();
    let size_ok = shown_size == format!("{kib} KiB")
        || shown_size == format!("{} KiB", size / 1024)
        || shown_size.ends_with(" MiB");
    if !size_ok || cells[2] != "verified" || cells[0].as_str().is_none_or(|t| !t.contains(':')) {
        return Err(format!("the row shows {cells} for {size} bytes"));
    }
    b.clear_downloads();
    b.click(&format!("button[data-backup=\"{name}\"]")).await?;
    let file = b.downloaded(name, BACKUP_WAIT).await?;
    // "Downloading …" while the file came; nothing (no error) once it is saved.
    b.wait_text("#backups-status", SOON, |t| t.trim().is_empty())
        .await?;
    if !file.starts_with(b"SQLite format 3\0") || file.len() as u64 != size {
        return Err(format!(
            "the download is {} bytes starting {:?}; the API lists {size} bytes",
            file.len(),
            &file[..file.len().min(16)]
        ));
    }
    let copy = app.dir.path().join("downloaded.db");
    std::fs::write(&copy, &file).map_err(|e| e.to_string())?;
    let db = rusqlite::Connection::open(&copy).map_err(|e| e.to_string())?;
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let rows: i64 = db
        .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if check != "ok" || rows != app.count("telemetry") {
        return Err(format!(
            "the downloaded backup: integrity {check}, {rows} readings of {}",
            app.count("telemetry")
        ));
    }
    Ok(name.to_owned())
}

/// The Backups section at one language, viewport and colour scheme: nothing sticks out of
/// the window, every control of the section lies inside it. Scrolled into view for the
/// step's screenshot; the whole section saved as `section-backups-<tag>.png`.
async fn backups_look(b: &Browser, name: &str, tag: &str) -> Result<(), String> {
    b.wait(&format!("#backups-table tr[data-name=\"{name}\"]"), SOON)
        .await?;
    b.no_sideways_scroll().await?;
    let outside = b
        .js("const s = document.getElementById('backups'); s.scrollIntoView(); \
             return [...s.querySelectorAll('button, td, th, h2, p')].filter((e) => e.getClientRects().length > 0) \
               .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > innerWidth + 0.5; }) \
               .map((e) => e.outerHTML.slice(0, 80));")
        .await?;
    if outside.as_array().is_none_or(|a| !a.is_empty()) {
        return Err(format!("parts of the Backups section stick out: {outside}"));
    }
    let png = b
        .wait("#backups", SOON)
        .await?
        .screenshot()
        .await
        .map_err(|e| e.to_string())?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("section-backups-{tag}.png")), png);
    Ok(())
}

/// The CSV buttons at a phone's width: shown and inside the window.
async fn csv_buttons_on_a_phone(b: &Browser) -> Result<(), String> {
    for (hash, button) in [("#/history", "#history-csv"), ("#/incidents", "#inc-csv")] {
        open_at(b, "en", VIEWPORTS[1], hash).await?;
        b.wait(button, SOON).await?;
        b.no_sideways_scroll().await?;
        let inside = b
            .js(&format!(
                "const r = document.querySelector('{button}').getBoundingClientRect(); \
                 return r.width > 0 && r.left >= 0 && r.right <= innerWidth;"
            ))
            .await?;
        if inside != true {
            return Err(format!("{button} is not inside the phone's window"));
        }
        b.screenshot(&format!("ok-csv-button-{}-390", &hash[2..]))
            .await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_and_csv_downloads_in_the_dashboard() {
    let app = TestApp::start_with(&[("RZMON_BACKUP_EVERY", "off")]).await;
    let now = rzmon::model::now_ms();
    let seeded = seed(&app, now);
    let wall_pw = crate::roles::add_user(&app, "wall", Some("viewer"));
    let admin = app.login().await;
    // One reading and one incident the real way, over MQTT.
    let live = app.device("rack-live").await;
    live.publish("telemetry", r#"{"tmp":22.5,"lf":40.0,"locked":true}"#)
        .await;
    live.publish("incident", r#"{"type":"tamper","message":"live"}"#)
        .await;
    let stored = wait_until(SOON, || async {
        let (_, list) = app.get("/incidents?device=rack-live", Some(&admin)).await;
        list["incidents"].as_array().is_some_and(|l| !l.is_empty())
    });
    assert!(stored.await, "the live incident was not stored");
    assert!(app.wait_rows(&admin, "rack-live", 1).await);

    let b = Browser::start().await;
    step(&b, "backups-admin-login", async {
        b.c().goto(&app.url("/")).await.map_err(|e| e.to_string())?;
        sign_in(&b, "admin", ADMIN_PASSWORD, false).await?;
        open_at(&b, "en", VIEWPORTS[0], "#/devices").await
    })
    .await;
    let mut name = String::new();
    step(&b, "backups-now-en-1280", async {
        name = backup_now(&b, &app, &admin).await?;
        Ok(())
    })
    .await;
    for scheme in ["light", "dark"] {
        b.c()
            .issue_cmd(ColorScheme(scheme))
            .await
            .expect("colour scheme");
        for lang in ["en", "de"] {
            for vp in VIEWPORTS {
                let tag = format!("{lang}-{scheme}-{}", vp.0);
                step(&b, &format!("backups-{tag}"), async {
                    open_at(&b, lang, vp, "#/devices").await?;
                    backups_look(&b, &name, &tag).await
                })
                .await;
            }
        }
    }
    b.c()
        .issue_cmd(ColorScheme("light"))
        .await
        .expect("back to light");
    step(&b, "history-csv-en-1280", async {
        open_at(&b, "en", VIEWPORTS[0], "#/overview").await?;
        history_csv(&b, &seeded, now).await
    })
    .await;
    step(&b, "incidents-csv-en-1280", incidents_csv(&b, now)).await;
    step(&b, "csv-buttons-390", csv_buttons_on_a_phone(&b)).await;

    step(&b, "backups-viewer-390", async {
        open_at(&b, "en", VIEWPORTS[1], "#/account").await?;
        b.click("#logout").await?;
        sign_in(&b, "wall", &wall_pw, false).await?;
        open_at(&b, "en", VIEWPORTS[1], "#/devices").await?;
        b.wait(&format!("#backups-table tr[data-name=\"{name}\"]"), SOON)
            .await?;
        for css in ["#backup-now", "button[data-backup]"] {
            if b.shown(css).await? {
                return Err(format!("a viewer is offered {css}"));
            }
        }
        b.no_sideways_scroll().await?;
        b.js("document.getElementById('backups').scrollIntoView()")
            .await?;
        Ok(())
    })
    .await;
    let viewer = crate::roles::login_as(&app, "wall", &wall_pw).await["access_token"]
        .as_str()
        .expect("viewer token")
        .to_owned();
    let (status, body) = app.get(&format!("/backups/{name}"), Some(&viewer)).await;
    assert_eq!(status, 403, "a viewer downloads a backup: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("admin")),
        "{body}"
    );
    let (status, body) = app.post("/backups", Some(&viewer), json!({})).await;
    assert_eq!(status, 403, "a viewer makes a backup: {body}");
    let (status, _) = app.get(&format!("/backups/{name}"), None).await;
    assert_eq!(status, 401, "a backup without a token");
    b.close().await;
}
