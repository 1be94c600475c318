//! Memory benchmarks of the release binary, by its RSS (`/proc/<pid>/status`):
//!
//! - `idle [SECONDS]` (default 30): a fresh server with nothing connected, RSS every second,
//!   then where it is (`/proc/<pid>/smaps` by kind, see `smaps::table`).
//! - `sessions [N]` (default 28,000): battery-device wake-ups (CONNECT, one QoS 1 telemetry,
//!   its PUBACK, DISCONNECT; 4 at a time from 127.0.0.1, within the gate's pending budget of 4
//!   per address) after a warm-up of 1,000; RSS every 4,000 sessions; the target is the end
//!   within 2 MiB of the start.
//! - `steady [DEVICES] [SECONDS]` (default 1,000 devices for 600 s): every device connected at
//!   once (connects staggered: the gate admits 4 pending logins per address) publishes one
//!   QoS 1 telemetry per second; RSS every second, reported per minute, with the least-squares
//!   slope of the last 5 minutes (of the second half of a shorter run). At the end every
//!   PUBACKed message must be in the database, exactly once.
//!
//! Run: `cargo bench --bench memory -- idle`, `cargo bench --bench memory -- sessions 28000`, `cargo bench --bench memory -- steady
//! 1000 600` (or `-- steady 1000 60` to try it quickly). `RZMON_BENCH_BIN` runs another rzmon
//! binary (see `common::bin`).

mod common;
#[path = "../tests/util/sleepy.rs"]
mod sleepy;
mod smaps;

use common::{RssSampler, mib};
use rumqttc::QoS;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Sessions between two RSS readings.
const CHUNK: u64 = 4_000;
/// Sessions before the first reading (allocator and caches warm).
const WARM_UP: u64 = 1_000;
/// The window whose trend `steady` reports.
const TREND_WINDOW: Duration = Duration::from_secs(300);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if args.iter().any(|a| a == "idle") {
        idle(numbers.first().copied().unwrap_or(30));
    } else if args.iter().any(|a| a == "steady") {
        let devices = numbers.first().copied().unwrap_or(1_000) as usize;
        let secs = numbers.get(1).copied().unwrap_or(600);
        rt.block_on(steady(devices, secs));
    } else {
        rt.block_on(sessions(numbers.first().copied().unwrap_or(28_000)));
    }
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

fn idle(secs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(dir.path(), &[]);
    let pid = server.child.id();
    let sampler = RssSampler::start(pid, Duration::from_secs(1));
    std::thread::sleep(Duration::from_secs(secs) + Duration::from_millis(500));
    let curve: Vec<String> = sampler.stop().iter().map(|s| mib(s.1)).collect();
    println!(
        "rzmon memory benchmark: idle server ({} bench binary), RSS every second for {secs} s (MiB):",
        profile()
    );
    println!("{}", curve.join(" "));
    print_where(pid);
}

/// `/proc/<pid>/status`'s split and the smaps table.
fn print_where(pid: u32) {
    let kib = |f| common::status_kib(pid, f);
    println!(
        "VmRSS {} KiB = RssAnon {} + RssFile {} + RssShmem {}; threads {}",
        kib("VmRSS"),
        kib("RssAnon"),
        kib("RssFile"),
        kib("RssShmem"),
        kib("Threads")
    );
    print!("{}", smaps::table(pid));
}

async fn sessions(n: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    // 8 devices for 4 workers: worker w uses devices w and w + 4 only, so no session takes
    // over another one of the same device.
    let devices = common::register(dir.path(), "sleepy", 8);
    // Every wake-up logs a warning (the access-list sync finds the device gone again).
    let server = common::start(dir.path(), &[("RZMON_LOG", "error")]);
    let pid = server.child.id();
    let mqtt = mqtt_addr(&server);
    let db = dir.path().join("rzmon.db");
    let idle = common::status_kib(pid, "VmRSS");
    sleepy::sessions(mqtt, &devices, 0, WARM_UP).await;
    let start = common::status_kib(pid, "VmRSS");
    println!(
        "rzmon memory benchmark: {n} connect-publish-disconnect sessions ({} bench binary, 4 at a time, 8 devices)",
        profile()
    );
    println!(
        "idle RSS {} MiB, after {WARM_UP} warm-up sessions {} MiB",
        mib(idle),
        mib(start)
    );
    println!("| sessions | RSS | change from the start |");
    println!("|---|---|---|");
    let t0 = Instant::now();
    let mut done = 0;
    let mut end = start;
    while done < n {
        let chunk = CHUNK.min(n - done);
        sleepy::sessions(mqtt, &devices, WARM_UP + done, chunk).await;
        done += chunk;
        end = common::status_kib(pid, "VmRSS");
        println!(
            "| {done} | {} MiB | {:+} KiB |",
            mib(end),
            end as i64 - start as i64
        );
    }
    let el = t0.elapsed().as_secs_f64();
    let stored = common::count(&db, "telemetry");
    println!(
        "{n} sessions in {el:.1} s ({:.0}/s); {stored} of {} rows stored",
        n as f64 / el,
        WARM_UP + n
    );
    let verdict = if end <= start + 2 * 1024 {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "RSS {} MiB → {} MiB ({:+} KiB): within 2 MiB of the start {verdict}",
        mib(start),
        mib(end),
        end as i64 - start as i64
    );
    print_where(pid);
    assert_eq!(stored, WARM_UP + n, "every PUBACKed session is stored");
}

fn mqtt_addr(server: &common::Server) -> SocketAddr {
    SocketAddr::from((
        [127, 0, 0, 1],
        server.mqtt_port.expect("embedded MQTT port"),
    ))
}

async fn steady(devices: usize, secs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = common::register(dir.path(), "steady", devices);
    let max = (devices + 16).to_string();
    let server = common::start(dir.path(), &[("RZMON_MQTT_MAX_CONNECTIONS", &max)]);
    let pid = server.child.id();
    let mqtt = mqtt_addr(&server);
    let db = dir.path().join("rzmon.db");
    let idle = common::status_kib(pid, "VmRSS");
    let t_connect = Instant::now();
    let (go_tx, go) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (i, (id, pw)) in creds.into_iter().enumerate() {
        let (connected, up) = tokio::sync::oneshot::channel();
        // Phases spread over the second, so the load is 1 msg/s per device, not bursts.
        let phase = Duration::from_micros((i as u64 * 1_000_000 / devices as u64) % 1_000_000);
        let go = go.clone();
        tasks.push(tokio::spawn(device(
            mqtt, id, pw, secs, phase, connected, go,
        )));
        // One pending login at a time (the gate admits 4 per address).
        up.await.expect("device connected");
    }
    let connected = common::status_kib(pid, "VmRSS");
    println!(
        "rzmon memory benchmark: {devices} devices at 1 msg/s (QoS 1) for {secs} s ({} bench binary)",
        profile()
    );
    println!(
        "idle RSS {} MiB; {devices} devices connected in {:.1} s, RSS {} MiB",
        mib(idle),
        t_connect.elapsed().as_secs_f64(),
        mib(connected)
    );
    let sampler = RssSampler::start(pid, Duration::from_secs(1));
    let _ = go_tx.send(true);
    let mut acked = 0;
    for t in tasks {
        acked += t.await.expect("device task");
    }
    let samples = sampler.stop();
    report(&samples, secs);
    let stored = common::count(&db, "telemetry");
    let distinct = distinct_seqs(&db);
    println!(
        "PUBACKs {acked} of {} sent; rows stored {stored}, distinct (device, seq) {distinct}",
        devices as u64 * secs
    );
    print_where(pid);
    assert_eq!(
        acked,
        devices as u64 * secs,
        "every message was acknowledged"
    );
    assert_eq!(stored, acked, "every acknowledged message is stored once");
    assert_eq!(distinct, acked, "no duplicate and no missing seq");
}

/// Rows with a distinct (device, seq).
fn distinct_seqs(db: &std::path::Path) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    conn.query_row(
        "SELECT count(*) FROM (SELECT DISTINCT device_key, seq FROM telemetry)",
        [],
        |r| r.get::<_, i64>(0),
    )
    .expect("distinct") as u64
}

/// RSS per minute (per 10 s in runs under 3 minutes), the peak, and the trend of the last 5
/// minutes (of the second half, if shorter).
fn report(samples: &[(Duration, u64)], secs: u64) {
    let step = if secs >= 180 { 60 } else { 10 };
    println!("| time | RSS |");
    println!("|---|---|");
    let mut next = 0;
    for (t, kib) in samples {
        if t.as_secs() >= next {
            println!("| {} s | {} MiB |", t.as_secs(), mib(*kib));
            next = t.as_secs() / step * step + step;
        }
    }
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let end = samples.last().map_or(Duration::ZERO, |s| s.0);
    let window = TREND_WINDOW.min(end / 2);
    let tail: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.0 + window >= end)
        .map(|s| (s.0.as_secs_f64() / 60.0, s.1 as f64))
        .collect();
    let slope = slope(&tail);
    let rise = slope * window.as_secs_f64() / 60.0;
    println!(
        "peak {} MiB (target ≤ 64 MiB: {}); last {} s: slope {slope:+.1} KiB/min, fitted change {rise:+.0} KiB",
        mib(peak),
        if peak <= 64 * 1024 { "met" } else { "NOT met" },
        window.as_secs()
    );
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0 / n, b + p.1 / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), p| {
        (a + (p.0 - mx) * (p.1 - my), b + (p.0 - mx) * (p.0 - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

/// One device: connects, waits for `go`, then publishes `n` QoS 1 messages one second apart
/// (starting at `phase`); the number of PUBACKs, all of them awaited.
async fn device(
    mqtt: SocketAddr,
    id: String,
    pw: String,
    n: u64,
    phase: Duration,
    connected: tokio::sync::oneshot::Sender<()>,
    mut go: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let (client, mut eventloop) = common::connect(mqtt.port(), &id, &pw, 10).await;
    let _ = connected.send(());
    let topic = format!("rz/{id}/telemetry");
    let sender = tokio::spawn(async move {
        let _ = go.wait_for(|g| *g).await;
        tokio::time::sleep(phase).await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for seq in 0..n as usize {
            tick.tick().await;
            client
                .publish(&topic, QoS::AtLeastOnce, false, common::telemetry(seq))
                .await
                .expect("publish");
        }
        client
    });
    // Bounded: a server that stops acknowledging fails the bench instead of hanging it.
    let limit = Duration::from_secs(n + 120);
    let acks = tokio::time::timeout(limit, common::await_acks(&mut eventloop, &id, n as usize));
    let acked = acks
        .await
        .unwrap_or_else(|_| panic!("{id}: not every PUBACK within {limit:?}"));
    let client = sender.await.expect("sender");
    let _ = client.disconnect().await;
    // Let the DISCONNECT go out.
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
    acked as u64
}
