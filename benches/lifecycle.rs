//! Data-lifecycle benchmark on a real database file: bulk insert of back-dated telemetry through
//! the store's own writer (rollups maintained as in production), then bytes per row, the
//! 30-day `/data/summary` query (rollups), `/data?limit=100`, and a backup while 1,000 msg/s
//! keep arriving (its duration and the commit delay of those messages meanwhile).
//!
//! Run: `cargo bench --bench lifecycle -- <rows> [devices]` (default 2,592,000 rows, 10
//! devices; 25,920,000 = 10 devices × 30 days × 1 Hz). Set `KEEP_DB=dir` to reuse a database.

use rzmon::health::Health;
use rzmon::metrics::Metrics;
use rzmon::model::{Body, DeviceId, Message, Telemetry};
use rzmon::store::{RangeQuery, Store, SummarySource};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;

fn reading(device: &DeviceId, ts_ms: i64, seq: i64) -> Message {
    let tmp = 18.0 + (seq % 113) as f64 * 0.07;
    let lf = 35.0 + (seq % 17) as f64 * 0.5;
    let locked = seq % 9 != 0;
    let payload = json!({"tmp": tmp, "lf": lf, "locked": locked, "seq": seq});
    Message {
        device: device.clone(),
        ts_ms,
        body: Body::Telemetry(Telemetry {
            tmp: Some(tmp),
            lf: Some(lf),
            locked: Some(locked),
            seq: Some(seq),
            payload: payload.as_object().cloned().unwrap(),
        }),
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<i64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(2_592_000);
    let devices = args.get(1).copied().unwrap_or(10);
    let keep = std::env::var("KEEP_DB").ok();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = keep
        .as_deref()
        .map_or_else(|| tmp.path().to_owned(), std::path::PathBuf::from);
    let store = Store::open_in(&dir).expect("open");
    let ids: Vec<DeviceId> = (1..=devices)
        .map(|i| DeviceId::parse(&format!("esp32-{i}")).unwrap())
        .collect();
    let now = rzmon::model::now_ms();
    let start = now - 30 * DAY_MS;
    let existing = store.space().expect("space").used_bytes();
    if existing < 1 << 20 {
        // Rows spread evenly over 30 days, devices interleaved as they would arrive.
        let step = (30 * DAY_MS) / (rows / devices).max(1);
        let t = Instant::now();
        let metrics = Arc::new(Metrics::default());
        let writer = store
            .spawn_writer(metrics.clone(), Health::new())
            .expect("writer");
        let tx = writer.sender();
        for i in 0..rows {
            let d = (i % devices) as usize;
            let n = i / devices;
            tx.blocking_send(reading(&ids[d], start + n * step + d as i64, n), None)
                .unwrap();
            while i % 100_000 == 0 && i > 0 && metrics.store_committed.get() + 200_000 < i as u64 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        drop(tx);
        writer.close().expect("committed");
        let s = t.elapsed().as_secs_f64();
        println!(
            "insert: {rows} rows in {s:.1} s ({:.0} rows/s, rollups included)",
            rows as f64 / s
        );
    }
    let space = store.space().expect("space");
    println!(
        "storage: {} bytes in use for {rows} rows = {:.1} bytes/row (indexes and rollups included)",
        space.used_bytes(),
        space.used_bytes() as f64 / rows as f64
    );

    // /data/summary: 30 days, one device, 200 buckets (what the dashboard asks).
    let mut ms = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let width = (30 * DAY_MS) / 200 + 1;
        let s = store
            .telemetry_summary(
                Some("esp32-1"),
                now - 30 * DAY_MS,
                now,
                width,
                SummarySource::Auto,
            )
            .expect("summary");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(!s.buckets.is_empty());
    }
    let p50 = percentile(&mut ms, 0.5);
    println!(
        "/data/summary 30 d, 1 device (rollups): p50 {p50:.2} ms, max {:.2} ms",
        ms[ms.len() - 1]
    );

    let mut ms = Vec::new();
    for i in 0..100 {
        let q = RangeQuery {
            limit: 100,
            device: (i % 2 == 0).then(|| ids[0].clone()),
            ..RangeQuery::default()
        };
        let t = Instant::now();
        let r = store.telemetry(&q).expect("data");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.len(), 100);
    }
    let p50 = percentile(&mut ms, 0.5);
    println!(
        "/data?limit=100 (all devices and one device): p50 {p50:.3} ms, max {:.3} ms",
        ms[ms.len() - 1]
    );

    backup_while_ingesting(&store, &dir, &ids[0]);
}

/// A backup (`VACUUM INTO` + verification as the service does it) while one message per
/// millisecond goes to the writer; the delay from send to commit of each of those.
fn backup_while_ingesting(store: &Store, dir: &std::path::Path, device: &DeviceId) {
    let metrics = Arc::new(Metrics::default());
    let writer = store
        .spawn_writer(metrics.clone(), Health::new())
        .expect("writer");
    let tx = writer.sender();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, m2) = (stop.clone(), metrics.clone());
    let dev = device.clone();
    let feeder = std::thread::spawn(move || {
        let mut sent: Vec<Instant> = Vec::new();
        let mut delays = Vec::new();
        let t0 = Instant::now();
        let mut seq = 10_000_000_000i64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let due = t0 + Duration::from_millis(sent.len() as u64);
            while Instant::now() < due {
                let done = m2.store_committed.get() as usize;
                while delays.len() < done.min(sent.len()) {
                    delays.push(sent[delays.len()].elapsed().as_secs_f64() * 1000.0);
                }
                std::hint::spin_loop();
            }
            seq += 1;
            sent.push(Instant::now());
            tx.blocking_send(reading(&dev, rzmon::model::now_ms(), seq), None)
                .unwrap();
        }
        while delays.len() < sent.len() {
            let done = m2.store_committed.get() as usize;
            while delays.len() < done.min(sent.len()) {
                delays.push(sent[delays.len()].elapsed().as_secs_f64() * 1000.0);
            }
        }
        delays
    });
    std::thread::sleep(Duration::from_secs(2));
    let backups = dir.join("bench-backups");
    let _ = std::fs::create_dir_all(&backups);
    let file = backups.join(format!("bench-{}.db", rzmon::model::now_ms()));
    let t = Instant::now();
    let before = store.backup_bounds().unwrap();
    store.backup(&file).expect("backup");
    let written = t.elapsed();
    let after = store.backup_bounds().unwrap();
    let check =
        Store::verify_backup(&file, store.schema_version().ok(), before, after).expect("verified");
    let total = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut delays = feeder.join().unwrap();
    writer.close().expect("writer closed");
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let n = delays.len();
    let p50 = percentile(&mut delays, 0.5);
    let p99 = percentile(&mut delays, 0.99);
    println!(
        "backup of {:.0} MiB: written in {:.1} s, verified (integrity_check, {} telemetry rows) after {:.1} s",
        size as f64 / (1 << 20) as f64,
        written.as_secs_f64(),
        check.rows["telemetry"],
        total.as_secs_f64()
    );
    println!(
        "ingest at 1,000 msg/s meanwhile: {n} messages, commit delay p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
        delays[n - 1]
    );
    let _ = std::fs::remove_file(&file);
}
