//! The only module that knows every part. `start` wires store, broker, gate, ingest, writer,
//! API and the background services onto listeners it is given and returns a [`Running`] app;
//! `Running::shutdown` stops the parts in order with real time limits; `serve` is bind + start
//! + wait for a signal or a failure + shutdown. Every task is a service of [`Services`].

mod devices;
mod services;

pub use services::{Services, Stage};

use crate::alerts::{self, Alerts};
use crate::api::server::{HttpListeners, Plain};
use crate::api::{self, ApiConfig};
use crate::broker::MqttListeners;
use crate::commands::{self, Commands, access_sync};
use crate::config::{Common, ServeSettings};
use crate::health::{self, Health};
use crate::hub::{self, Hub};
use crate::ingest::Sinks;
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::presence::Presence;
use crate::store::{Store, Writer};
use crate::tls::{PlainMode, Tls};
use crate::{auth, bridge, ha, ingest, lifecycle, secrets, tls};
use anyhow::Context;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest wait for the store writer to commit its last batch once every sender is gone.
const WRITER_CLOSE: Duration = Duration::from_secs(10);

/// The public ports, bound before `start` (port 0 = any free port): the plain ones unless
/// `RZMON_PLAIN=off`, the TLS ones when TLS is on; no MQTT port with an external broker
/// (`RZMON_BROKER`).
pub struct Listeners {
    pub http: Option<TcpListener>,
    pub mqtt: Option<TcpListener>,
    pub https: Option<TcpListener>,
    pub mqtts: Option<TcpListener>,
}

impl Listeners {
    /// Binds `RZMON_HTTP_ADDR`, `RZMON_MQTT_ADDR`, `RZMON_HTTPS_ADDR` and `RZMON_MQTTS_ADDR` as
    /// the TLS and broker settings ask; a port in use names its setting.
    pub async fn bind(settings: &ServeSettings) -> anyhow::Result<Self> {
        let plain = settings.tls.plain() != PlainMode::Off;
        let tls = settings.tls.enabled();
        let embedded = settings.integrations.broker.is_none();
        Ok(Self {
            http: bind_if(plain, settings.http_addr, "RZMON_HTTP_ADDR").await?,
            mqtt: bind_if(plain && embedded, settings.mqtt_addr, "RZMON_MQTT_ADDR").await?,
            https: bind_if(tls, settings.tls.https_addr, "RZMON_HTTPS_ADDR").await?,
            mqtts: bind_if(tls && embedded, settings.tls.mqtts_addr, "RZMON_MQTTS_ADDR").await?,
        })
    }
}

async fn bind_if(yes: bool, addr: SocketAddr, var: &str) -> anyhow::Result<Option<TcpListener>> {
    Ok(if yes {
        Some(bind(addr, var).await?)
    } else {
        None
    })
}

async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({var}); is another program using it?"))
}

/// The shared handles of a running app: where services take their dependencies from, and what
/// in-process tests look at. Cheap to clone; holds no sender of the store writer (so the
/// writer can close while a clone is alive).
#[derive(Clone)]
pub struct Parts {
    pub settings: Arc<ServeSettings>,
    pub store: Store,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    /// The named checks `/health` shows; register yours with `set_ok`/`set_failed`.
    pub health: Health,
    /// Requests to devices and their presence.
    pub commands: Commands,
    /// The backups of the data directory (scheduled, on demand, listed, downloaded).
    pub backups: Arc<lifecycle::Backups>,
    /// Notification delivery: the rule engine submits notices here.
    pub notifier: Notifier,
    /// The rule engine's handle: tell it that rules or acknowledgements changed.
    pub alerts: Alerts,
}

/// A started app: its bound addresses (`None`: not served; no MQTT ports with an external
/// broker), its parts, and the handle that stops it.
pub struct Running {
    pub http_addr: Option<SocketAddr>,
    pub mqtt_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    pub mqtts_addr: Option<SocketAddr>,
    pub parts: Parts,
    services: Services,
    writer: Writer,
    /// Held while running, so `rzmon restore` (and a second server) can tell.
    _lock: lifecycle::ServerLock,
}

/// Runs the appliance until `shutdown` is cancelled or a part fails, then stops it in order.
pub async fn serve(
    common: &Common,
    settings: ServeSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let dir = common.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open_in(&dir)).await??;
    let listeners = Listeners::bind(&settings).await?;
    let running = start(listeners, settings, store).await?;
    print_banner(&running);
    tokio::select! {
        () = shutdown.cancelled() => tracing::info!("shutting down"),
        () = running.failed() => tracing::error!("a part of rzmon failed; shutting down"),
    }
    running.shutdown().await
}

/// Takes the data directory's lock. A holder that lets go within a second (a previous server
/// of this process that just stopped, whose descriptor a child process forked meanwhile still
/// holds until its exec) is waited for; then the answer is "already running".
async fn server_lock(data_dir: &Path) -> anyhow::Result<lifecycle::ServerLock> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let lock = lifecycle::ServerLock::try_acquire(data_dir)
            .with_context(|| format!("cannot lock {}", data_dir.display()))?;
        if let Some(lock) = lock {
            return Ok(lock);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "another rzmon is already running on the data directory {}",
                data_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts every part on `listeners`: creates `admin` on first start (a generated password is
/// printed at once), takes the JWT secret from the settings or the data directory (created
/// 0600 next to the database), and starts the services.
pub async fn start(
    listeners: Listeners,
    settings: ServeSettings,
    store: Store,
) -> anyhow::Result<Running> {
    let data_dir = store.path().parent().unwrap_or(Path::new(".")).to_owned();
    let lock = server_lock(&data_dir).await?;
    let jwt_secret = match &settings.jwt_secret {
        Some(s) => s.expose().as_bytes().to_vec(),
        None => {
            secrets::load_or_create_jwt_secret(store.path().parent().unwrap_or(Path::new(".")))?
        }
    };
    // Reported at once, so a later startup failure cannot swallow the one-time password.
    print_first_start(&first_start(&store, &settings).await?);
    let external = settings.integrations.broker().map_err(anyhow::Error::msg)?;
    let addr = |l: &Option<TcpListener>| l.as_ref().map(TcpListener::local_addr).transpose();
    let (http_addr, mqtt_addr) = (addr(&listeners.http)?, addr(&listeners.mqtt)?);
    let (https_addr, mqtts_addr) = (addr(&listeners.https)?, addr(&listeners.mqtts)?);
    // With an external broker devices connect there: its host, and its port as plain MQTT or
    // as MQTT over TLS (`mqtts://`).
    let mqtt_port = match (&mqtt_addr, &external) {
        (Some(a), _) => Some(a.port()),
        (None, Some(url)) if !url.tls => Some(url.port),
        (None, _) => None,
    };
    let mqtts_port = match (&mqtts_addr, &external) {
        (Some(a), _) => Some(a.port()),
        (None, Some(url)) if url.tls => Some(url.port),
        (None, _) => None,
    };
    anyhow::ensure!(
        mqtt_addr.is_some() || mqtts_addr.is_some() || external.is_some(),
        "no MQTT listener and no RZMON_BROKER"
    );
    let tls = {
        let (args, dir) = (settings.tls.clone(), data_dir.clone());
        tokio::task::spawn_blocking(move || Tls::setup(&args, &dir))
            .await?
            .context("TLS setup")?
    };
    anyhow::ensure!(
        tls.is_none() || listeners.https.is_some(),
        "TLS is on but the HTTPS listener was not bound"
    );
    let ca = tls.as_ref().and_then(Tls::ca).cloned();
    let settings = Arc::new(settings);
    let metrics = Arc::new(Metrics::default());
    let health = Health::new();
    health.set_ok(health::DATABASE);
    health.set_ok(health::BROKER);
    health.set_ok(health::INTEGRITY);
    let store = store.with_health(health.clone());
    let dashboard = notify::link::default_url(http_addr, https_addr);
    match &settings.notify.public_url {
        Some(u) => {
            tracing::info!(url = %u, "notifications link to the dashboard (RZMON_PUBLIC_URL)")
        }
        None => tracing::info!(
            url = dashboard.as_deref().unwrap_or("none"),
            "notifications link to the dashboard (a guess: set RZMON_PUBLIC_URL to change it)"
        ),
    }
    let notifier = {
        let (s, args, m) = (store.clone(), settings.notify.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || notify::setup(&s, &args, dashboard, m)).await??
    };
    let hub = Hub::new(hub::DEFAULT_CAPACITY.max(settings.ws_queue as usize));
    let writer = store.spawn_writer(metrics.clone(), health.clone())?;
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.reset_presence()).await??;
    let presence = Arc::new(Presence::default());
    let (outbound_tx, outbound_rx) = commands::outbound_queue();
    let (commands, sync_due) = Commands::new(settings.topic_prefix.clone(), outbound_tx, presence);
    // The data lifecycle: pruning and backups never run at once.
    let exclusive = Arc::new(tokio::sync::Mutex::new(()));
    let backups = Arc::new(lifecycle::Backups::new(
        store.clone(),
        &data_dir,
        settings.lifecycle.backup_keep,
        exclusive.clone(),
        health.clone(),
        metrics.clone(),
    ));
    let parts = Parts {
        backups,
        settings: settings.clone(),
        store: store.clone(),
        hub: hub.clone(),
        metrics: metrics.clone(),
        health,
        commands: commands.clone(),
        notifier,
        alerts: Alerts::new(),
    };
    let sinks = Sinks {
        writer: writer.sender(),
        hub,
        metrics,
        commands,
    };
    let api_ctx = |shutdown| api::Context {
        notifier: parts.notifier.clone(),
        store: parts.store.clone(),
        hub: parts.hub.clone(),
        alerts: parts.alerts.clone(),
        commands: parts.commands.clone(),
        jwt_secret: Arc::new(jwt_secret),
        metrics: parts.metrics.clone(),
        health: parts.health.clone(),
        backups: parts.backups.clone(),
        config: ApiConfig {
            allowed_origins: settings.allowed_origins.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            token_ttl: settings.token_ttl(),
            remember_ttl: settings.remember_ttl(),
            body_limit: settings.body_limit,
            ws_queue: settings.ws_queue as usize,
            command_timeout: Duration::from_secs(settings.command_timeout),
            enrol_timeout: Duration::from_secs(settings.enrol_timeout),
            metrics_token: settings.metrics_token.clone(),
            device: api::DeviceSettings {
                mqtt_host: external.as_ref().map(|u| u.host.clone()),
                external_broker: external.is_some(),
                mqtt_port,
                mqtts_port,
                https_port: https_addr.map(|a| a.port()),
                ca_url: ca.as_ref().map(|_| api::CA_URL.to_owned()),
                topic_prefix: settings.topic_prefix.clone(),
                mqtt_max_packet: settings.mqtt_max_packet,
            },
            ca_pem: ca.as_ref().map(|c| Arc::new(c.pem.clone())),
        },
        shutdown,
    };

    // Every service, in one place: a name, a stage (when it stops) and its future.
    let mut s = Services::new();
    let p = &parts;
    let plain = match (settings.tls.plain(), https_addr) {
        (PlainMode::Redirect, Some(a)) => Plain::Redirect(a.port()),
        _ => Plain::Serve,
    };
    let http = HttpListeners {
        plain: listeners.http.map(|l| (l, plain)),
        tls: listeners.https.zip(tls.clone()),
    };
    s.spawn("http", Stage::Front, |stop| api::serve(http, api_ctx(stop)));
    let mqtt = MqttListeners {
        plain: listeners.mqtt,
        tls: listeners.mqtts.zip(tls.clone()),
    };
    // Always running: SIGHUP reloads TLS, or is logged as having nothing to reload.
    let watch = settings.tls.watch();
    s.spawn("reload", Stage::Front, |stop| {
        tls::reload::run(tls, watch, stop)
    });
    // Device publishes: gate or external client → ingest (bounded; a full queue stops the
    // gate reading sockets, or the client reading from the external broker).
    let (inbound_tx, inbound_rx) = mpsc::channel(ingest::QUEUE);
    let side = match external {
        Some(url) => devices::external(&mut s, p, url, inbound_tx, outbound_rx),
        None => devices::embedded(&mut s, p, mqtt, inbound_tx, outbound_rx)?,
    };
    let exited = side.ingest_exited;
    let (link, outbound) = (side.link, side.outbound);
    let ingest_sinks = sinks.clone();
    s.spawn("ingest", Stage::Ingest, |stop| async move {
        let r = ingest::run(inbound_rx, link, ingest_sinks, outbound, stop).await;
        exited.cancel();
        r
    });
    let ended_rx = side.ended;
    s.spawn("liveness", Stage::Ingest, |stop| {
        let stale = Duration::from_secs(settings.stale_after);
        ingest::liveness::run(sinks, ended_rx, stale, stop)
    });
    s.spawn("access sync", Stage::Ingest, |stop| {
        let timeout = Duration::from_secs(settings.command_timeout);
        access_sync::run(p.commands.clone(), p.store.clone(), sync_due, timeout, stop)
    });
    s.spawn("retention", Stage::Front, |stop| {
        let (store, lifecycle, metrics) = (
            p.store.clone(),
            settings.lifecycle.clone(),
            p.metrics.clone(),
        );
        lifecycle::retention::run(store, lifecycle, exclusive, metrics, stop)
    });
    s.spawn("backups", Stage::Front, |stop| {
        lifecycle::backups::run(p.backups.clone(), settings.lifecycle.backup_every, stop)
    });
    if let Some(deps) = ha_deps(&settings, p) {
        s.spawn("home assistant", Stage::Events, |stop| ha::run(deps, stop));
    }
    if let Ok(Some(broker)) = settings.integrations.bridge_url() {
        let i = &settings.integrations;
        let deps = bridge::BridgeDeps {
            settings: bridge::BridgeSettings {
                broker,
                prefix: i.bridge_prefix.clone(),
                rate: i.bridge_rate,
                client_id: format!("rzmon-bridge-{}", i.bridge_prefix.replace('/', "-")),
            },
            store: p.store.clone(),
            metrics: p.metrics.clone(),
            health: p.health.clone(),
        };
        s.spawn("upstream bridge", Stage::Events, |stop| {
            bridge::run(deps, stop)
        });
    }
    s.spawn("notify", Stage::Delivery, |stop| {
        notify::run(p.notifier.clone(), stop)
    });
    if let Some(url) = &settings.notify.heartbeat_url {
        let url = reqwest::Url::parse(url.expose()).context("RZMON_HEARTBEAT_URL")?;
        let every = Duration::from_secs(settings.notify.heartbeat_interval);
        let (client, health) = (p.notifier.http().clone(), p.health.clone());
        s.spawn("heartbeat", Stage::Front, |stop| {
            notify::heartbeat::run(client, url, every, health, stop)
        });
    }

    s.spawn("alerts", Stage::Events, |stop| {
        let deps = alerts::Deps {
            store: p.store.clone(),
            hub: p.hub.clone(),
            alerts: p.alerts.clone(),
            health: p.health.clone(),
            notifier: p.notifier.clone(),
        };
        alerts::run(deps, stop)
    });

    tracing::info!(
        ?http_addr,
        ?mqtt_addr,
        ?https_addr,
        ?mqtts_addr,
        data_dir = %absolute_data_dir(&parts.store).display(),
        "rzmon is running"
    );
    Ok(Running {
        http_addr,
        mqtt_addr,
        https_addr,
        mqtts_addr,
        parts,
        services: s,
        writer,
        _lock: lock,
    })
}

/// What the Home Assistant bridge needs, when `RZMON_HA_BROKER` is set.
fn ha_deps(settings: &ServeSettings, p: &Parts) -> Option<ha::HaDeps> {
    let i = &settings.integrations;
    Some(ha::HaDeps {
        settings: ha::HaSettings {
            broker: i.ha_broker().ok().flatten()?,
            topics: ha::discovery::Topics {
                discovery: i.ha_discovery_prefix.clone(),
                base: i.ha_base_topic.clone(),
            },
            access_ids: i.ha_access_ids,
            client_id: format!("rzmon-ha-{}", i.ha_base_topic),
        },
        store: p.store.clone(),
        hub: p.hub.clone(),
        commands: p.commands.clone(),
        metrics: p.metrics.clone(),
    })
}

impl Running {
    /// Resolves as soon as a part failed (it was logged); `shutdown` then returns an error.
    pub async fn failed(&self) {
        self.services.failed().cancelled().await;
    }

    /// Stops the stages in order — HTTP and WebSockets, devices, ingest (drained), event
    /// consumers, delivery — each within its limit, then commits the writer's last batch.
    /// `Err` if any part failed, now or earlier.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Running {
            parts,
            mut services,
            writer,
            ..
        } = self;
        // Requests waiting for a device answer now (and new ones at once), so HTTP handlers
        // finish within their stage.
        parts.commands.close();
        let mut ok = !services.failed().is_cancelled();
        for stage in Stage::ALL {
            ok &= services.stop(stage).await;
        }
        // Every writer sender lived in a stopped (or aborted) service, so the channel is closed.
        let closing = tokio::task::spawn_blocking(move || writer.close());
        match tokio::time::timeout(WRITER_CLOSE, closing).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "the last batch could not be committed");
                ok = false;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the store writer task failed");
                ok = false;
            }
            Err(_) => {
                tracing::error!(
                    limit_s = WRITER_CLOSE.as_secs(),
                    "the store writer did not finish in time"
                );
                ok = false;
            }
        }
        let committed = parts.metrics.store_committed.get();
        anyhow::ensure!(ok, "stopped after a failure (see the log above)");
        tracing::info!(committed, "stopped cleanly");
        Ok(())
    }
}

/// The admin password to print when this start created the admin user with a random one.
enum FirstStart {
    Existing,
    FromSettings,
    /// Kept in `file` until admin signs in; shown on the console only when a person reads it.
    Generated {
        password: String,
        file: std::path::PathBuf,
    },
}

/// Creates `admin` on an empty user table, with the configured or a random password.
async fn first_start(store: &Store, settings: &ServeSettings) -> anyhow::Result<FirstStart> {
    let s = store.clone();
    if tokio::task::spawn_blocking(move || s.user_count()).await?? > 0 {
        if settings.admin_password.is_some() {
            tracing::warn!(
                "RZMON_ADMIN_PASSWORD is ignored: it only applies to the first start, and users \
                 exist already (change a password with: rzmon user passwd admin)"
            );
        }
        return Ok(FirstStart::Existing);
    }
    let (password, outcome) = match &settings.admin_password {
        Some(p) => (p.expose().to_owned(), FirstStart::FromSettings),
        None => {
            let p = secrets::random_password(secrets::USER_PASSWORD_LEN)?;
            let dir = store.path().parent().unwrap_or(Path::new("."));
            let file = secrets::keep_initial_admin_password(dir, &p)?;
            (p.clone(), FirstStart::Generated { password: p, file })
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

fn print_banner(r: &Running) {
    let settings = &r.parts.settings;
    println!("rzmon {} is running", env!("CARGO_PKG_VERSION"));
    println!(
        "  Data:      {}",
        absolute_data_dir(&r.parts.store).display()
    );
    if let Some(a) = r.https_addr {
        println!("  Dashboard: https://{a}/");
    }
    match (r.http_addr, r.https_addr) {
        (Some(a), Some(_)) if settings.tls.plain() == PlainMode::Redirect => {
            println!("  HTTP:      {a}   (redirects to HTTPS)")
        }
        (Some(a), _) => println!("  Dashboard: http://{a}/"),
        (None, _) => {}
    }
    if let Some(a) = r.mqtts_addr {
        println!("  MQTT/TLS:  {a}   (register a device: rzmon device add <id>)");
    }
    match (r.mqtt_addr, settings.integrations.broker()) {
        (Some(mqtt), _) => {
            println!("  MQTT:      {mqtt}   (register a device: rzmon device add <id>)")
        }
        (None, Ok(Some(url))) => println!(
            "  MQTT:      external broker {}   (register a device: rzmon device add <id> --broker-config mosquitto)",
            url.address()
        ),
        (None, _) => {}
    }
    if r.https_addr.is_some()
        && let Ok(Some(ca)) = tls::CaInfo::read(&data_dir(&r.parts.store))
    {
        println!("  TLS CA:    {}", ca.path.display());
        println!("  CA SHA-256 fingerprint: {}", ca.fingerprint);
    }
}

/// The data directory as people should read it (absolute, so it can be pasted anywhere).
fn absolute_data_dir(store: &Store) -> std::path::PathBuf {
    let dir = data_dir(store);
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The data directory: where the database lives.
fn data_dir(store: &Store) -> std::path::PathBuf {
    store.path().parent().unwrap_or(Path::new(".")).to_owned()
}

fn print_first_start(first: &FirstStart) {
    match first {
        FirstStart::Generated { password, file } => {
            println!(
                "  Admin login: admin, password in {} (deleted at admin's first sign-in)",
                std::path::absolute(file)
                    .unwrap_or_else(|_| file.clone())
                    .display()
            );
            // Never into a log or the journal: only to a terminal.
            if std::io::stderr().is_terminal() {
                eprintln!(
                    "  Admin password: {password}  (change it with: rzmon user passwd admin)"
                );
            }
        }
        FirstStart::FromSettings => {
            println!("  Created user admin with the password from RZMON_ADMIN_PASSWORD.")
        }
        FirstStart::Existing => {}
    }
}
