//! The only module that knows every part: opens the store, prepares first-start secrets, binds
//! the ports, starts broker, gate, ingest, writer and API, and shuts them down in order.

use crate::api::{self, ApiConfig};
use crate::broker::{self, Broker, BrokerConfig, GateConfig, Sessions};
use crate::commands::{Commands, access_sync};
use crate::config::{Common, ServeSettings};
use crate::device_auth::DeviceAuth;
use crate::health::{self, Health};
use crate::hub::{self, Hub};
use crate::ingest::Sinks;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::Store;
use crate::{auth, ingest, lifecycle, secrets};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::store::DB_FILE;
/// How often `/health`'s broker check is refreshed.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Longest wait for ingest to drain the broker after devices were disconnected on shutdown.
const INGEST_DRAIN: Duration = Duration::from_secs(2);

/// Creates the data directory (mode 0700) and opens the database in it.
pub fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    create_private_dir(data_dir)?;
    let path = data_dir.join(DB_FILE);
    Store::open(&path).with_context(|| format!("cannot open the database {}", path.display()))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// Binds a TCP listener, naming the setting in the error (a port in use must stop startup).
async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({var}); is another program using it?"))
}

/// Runs the appliance until `shutdown` is cancelled, then stops in order: HTTP and WebSockets,
/// device connections, ingest (drained), writer (last batch committed).
pub async fn serve(
    common: &Common,
    settings: ServeSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    create_private_dir(&common.data_dir)?;
    // Held until `serve` returns: `rzmon restore` and a second server can tell we run.
    let _lock = lifecycle::ServerLock::try_acquire(&common.data_dir)
        .with_context(|| format!("cannot lock {}", common.data_dir.display()))?
        .with_context(|| {
            format!(
                "another rzmon is already running on the data directory {}",
                common.data_dir.display()
            )
        })?;
    let dir = common.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || open_store(&dir)).await??;
    let jwt_secret = match &settings.jwt_secret {
        Some(s) => s.expose().as_bytes().to_vec(),
        None => secrets::load_or_create_jwt_secret(&common.data_dir)?,
    };
    // Printed at once, so a later startup failure cannot swallow the one-time password.
    let first_start = first_start(&store, &settings).await?;
    print_first_start(&first_start);

    let http = bind(settings.http_addr, "RZMON_HTTP_ADDR").await?;
    let mqtt = bind(settings.mqtt_addr, "RZMON_MQTT_ADDR").await?;
    let (http_addr, mqtt_addr) = (http.local_addr()?, mqtt.local_addr()?);

    let metrics = Arc::new(Metrics::default());
    let health = Health::new();
    health.set_ok(health::DATABASE);
    health.set_ok(health::BROKER);
    let hub = Hub::new(hub::DEFAULT_CAPACITY.max(settings.ws_queue as usize));
    let writer = store.spawn_writer(metrics.clone(), health.clone())?;
    let device_auth = DeviceAuth::new(store.clone());
    let verifier = device_auth.verifier();
    let max_packet = settings.mqtt_max_packet as usize;
    let mut broker = Broker::start(BrokerConfig {
        max_packet,
        max_connections: settings.mqtt_max_connections as usize,
        verifier: verifier.clone(),
    })
    .context("the embedded MQTT broker did not start")?;
    let link = broker.link.take().context("broker link already taken")?;
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.reset_presence()).await??;
    let presence = Arc::new(Presence::default());
    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let (commands, online_rx) = Commands::new(settings.topic_prefix.clone(), outbound_tx, presence);
    let sinks = Sinks {
        writer: writer.sender(),
        hub: hub.clone(),
        metrics: metrics.clone(),
        commands: commands.clone(),
    };

    let tasks = TaskTracker::new();
    let failed = CancellationToken::new();
    let gate_stop = CancellationToken::new();
    let ingest_stop = CancellationToken::new();
    let http_stop = shutdown.child_token();
    let (sessions, ended_rx) = Sessions::with_end_reports();

    let ingest_exited = CancellationToken::new();
    let ingest_run = report(
        "ingest",
        failed.clone(),
        ingest::run(
            link,
            settings.topic_prefix.clone(),
            sinks.clone(),
            outbound_rx,
            ingest_stop.clone(),
        ),
    );
    let exited = ingest_exited.clone();
    let ingest_done = tasks.spawn(async move {
        ingest_run.await;
        exited.cancel();
    });
    let gate_cfg = GateConfig {
        prefix: settings.topic_prefix.clone(),
        max_packet,
        connect_timeout: Duration::from_secs(10),
        rate_per_device: settings.mqtt_rate,
        max_connections: settings.mqtt_max_connections as usize,
        login_failures: 10,
        login_lock: Duration::from_secs(300),
    };
    let gate_done = tasks.spawn(report(
        "mqtt gate",
        failed.clone(),
        broker::run_gate(
            mqtt,
            broker.internal_addr,
            gate_cfg,
            verifier,
            sessions.clone(),
            metrics.clone(),
            gate_stop.clone(),
        ),
    ));
    tasks.spawn(device_auth.watch(sessions, gate_stop.clone()));
    tasks.spawn(report(
        "liveness",
        failed.clone(),
        ingest::liveness::run(
            sinks,
            ended_rx,
            Duration::from_secs(settings.stale_after),
            ingest_stop.clone(),
        ),
    ));
    tasks.spawn(access_sync::run(
        commands.clone(),
        store.clone(),
        online_rx,
        Duration::from_secs(settings.command_timeout),
        ingest_stop.clone(),
    ));
    let broker = Arc::new(broker);
    tasks.spawn(watch_broker(
        broker.clone(),
        ingest_exited,
        health.clone(),
        gate_stop.clone(),
    ));
    // The data lifecycle: pruning and backups never run at once.
    let exclusive = Arc::new(tokio::sync::Mutex::new(()));
    let backups = Arc::new(lifecycle::Backups::new(
        store.clone(),
        &common.data_dir,
        settings.lifecycle.backup_keep,
        exclusive.clone(),
        health.clone(),
        metrics.clone(),
    ));
    tasks.spawn(report(
        "retention",
        failed.clone(),
        lifecycle::retention::run(
            store.clone(),
            settings.lifecycle.clone(),
            exclusive,
            metrics.clone(),
            ingest_stop.clone(),
        ),
    ));
    tasks.spawn(report(
        "backups",
        failed.clone(),
        lifecycle::backups::run(
            backups.clone(),
            settings.lifecycle.backup_every,
            ingest_stop.clone(),
        ),
    ));
    let ctx = api::Context {
        backups,
        store: store.clone(),
        hub,
        commands: commands.clone(),
        jwt_secret: Arc::new(jwt_secret),
        metrics: metrics.clone(),
        health,
        config: ApiConfig {
            allowed_origins: settings.allowed_origins.clone(),
            token_ttl: settings.token_ttl(),
            body_limit: settings.body_limit,
            ws_queue: settings.ws_queue as usize,
            command_timeout: Duration::from_secs(settings.command_timeout),
            enrol_timeout: Duration::from_secs(settings.enrol_timeout),
        },
        shutdown: http_stop.clone(),
    };
    let http_done = tasks.spawn(report("http", failed.clone(), api::serve(http, ctx)));
    tasks.close();

    print_banner(http_addr, mqtt_addr);
    tracing::info!(%http_addr, %mqtt_addr, "rzmon is running");

    tokio::select! {
        () = shutdown.cancelled() => tracing::info!("shutting down"),
        () = failed.cancelled() => tracing::error!("a part of rzmon failed; shutting down"),
    }
    // 1. HTTP: stop accepting, close WebSockets.
    http_stop.cancel();
    let _ = http_done.await;
    // 2. Devices: close their connections so nothing new arrives.
    gate_stop.cancel();
    let _ = gate_done.await;
    // 3. Ingest: drains what the broker already acknowledged, then stops.
    ingest_stop.cancel();
    if tokio::time::timeout(INGEST_DRAIN, ingest_done)
        .await
        .is_err()
    {
        tracing::warn!("ingest did not stop in time");
    }
    commands.fail_all();
    // 4. Writer: commit the last batch.
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .context("writer thread panicked")?
        .context("the last batch could not be committed")?;
    tasks.wait().await;
    tracing::info!(committed = metrics.store_committed.get(), "stopped cleanly");
    if failed.is_cancelled() {
        anyhow::bail!("stopped after a failure (see the log above)");
    }
    Ok(())
}

/// The admin password to print when this start created the admin user with a random one.
enum FirstStart {
    Existing,
    FromSettings,
    Generated(String),
}

/// Creates `admin` on an empty user table, with the configured or a random password.
async fn first_start(store: &Store, settings: &ServeSettings) -> anyhow::Result<FirstStart> {
    let s = store.clone();
    if tokio::task::spawn_blocking(move || s.user_count()).await?? > 0 {
        return Ok(FirstStart::Existing);
    }
    let (password, outcome) = match &settings.admin_password {
        Some(p) => (p.expose().to_owned(), FirstStart::FromSettings),
        None => {
            let p = secrets::random_password(secrets::USER_PASSWORD_LEN)?;
            (p.clone(), FirstStart::Generated(p))
        }
    };
    let s = store.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let hash = auth::hash_password(&password)?;
        s.create_user("admin", &hash)?;
        Ok(())
    })
    .await??;
    Ok(outcome)
}

fn print_banner(http: SocketAddr, mqtt: SocketAddr) {
    println!("rzmon {} is running", env!("CARGO_PKG_VERSION"));
    println!("  Dashboard: http://{http}/");
    println!("  MQTT:      {mqtt}   (register a device: rzmon device add <id>)");
}

fn print_first_start(first: &FirstStart) {
    match first {
        FirstStart::Generated(p) => println!(
            "  Admin login: admin / {p}  (shown once; change it with: rzmon user passwd admin)"
        ),
        FirstStart::FromSettings => {
            println!("  Created user admin with the password from RZMON_ADMIN_PASSWORD.")
        }
        FirstStart::Existing => {}
    }
}

/// Awaits a part; an error is logged with its name and stops the whole process.
async fn report(
    name: &'static str,
    failed: CancellationToken,
    part: impl Future<Output = anyhow::Result<()>>,
) {
    if let Err(e) = part.await {
        tracing::error!(
            part = name,
            error = format!("{e:#}"),
            "stopped with an error"
        );
        failed.cancel();
    }
}

/// Keeps the broker check ok only while the internal listener answers and ingest runs.
async fn watch_broker(
    broker: Arc<Broker>,
    ingest_exited: CancellationToken,
    health: Health,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(BROKER_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if ingest_exited.is_cancelled() {
            health.set_failed(health::BROKER, "the ingest link to the broker stopped");
        } else if broker.is_up().await {
            health.set_ok(health::BROKER);
        } else {
            health.set_failed(
                health::BROKER,
                "the internal MQTT broker does not accept connections",
            );
        }
    }
}
