//! Delivery of alert notices to the outside world (ntfy, Gotify, webhook, SMTP, Telegram,
//! Discord/Slack): a persisted outbox, one worker per channel, retries, grouping, storm cap and
//! quiet hours. `alerts` hands it [`Notice`]s through [`Notifier::submit`]; nothing below
//! `alerts` imports this module.
//!
//! ```text
//! alerts ──submit──▶ outbox (SQLite: notices + one delivery row per channel) ──wake──▶
//!     worker per channel ──▶ send (HTTP / SMTP) ──▶ delivery record (sent/failed/held/...)
//! ```

pub mod apprise;
pub mod channel;
pub mod edit;
mod email;
pub mod heartbeat;
pub mod link;
pub mod notice;
pub mod policy;
pub mod render;
pub mod send;
mod worker;

pub use notice::{Notice, NoticeKind, Severity};

use crate::metrics::Metrics;
use crate::model::now_ms;
use crate::store::{ChannelSpec, NewNotice, Store, StoreError};
use channel::{Kind, Target};
use policy::Policy;
use render::Batch;
use send::{Failure, Sender};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why a notice could not be filed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the notification outbox failed: {0}")]
    Store(#[from] StoreError),
    #[error("the notice cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the outbox task failed: {0}")]
    Task(String),
}

/// How delivery behaves (from `RZMON_*` settings).
#[derive(Clone)]
pub struct Settings {
    /// The dashboard's public base URL, used for links in messages.
    pub public_url: Option<String>,
    /// The zone quiet hours are read in.
    pub time_zone: jiff::tz::TimeZone,
    /// First pause before a retry; doubles up to ten minutes.
    pub retry_base_ms: i64,
}

/// The handle `alerts`, `api` and `app` use: files notices, wakes workers, sends tests.
/// Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sender: Sender,
    settings: Settings,
    metrics: Arc<Metrics>,
    wakers: Mutex<HashMap<i64, Arc<Notify>>>,
    /// The set of channels changed (created, deleted): the supervisor reconciles workers.
    changed: Notify,
}

impl Notifier {
    pub fn new(store: Store, settings: Settings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                sender: Sender::new()?,
                settings,
                metrics,
                wakers: Mutex::new(HashMap::new()),
                changed: Notify::new(),
            }),
        })
    }

    /// Files `notice` into the outbox — the notice and one delivery row per enabled channel
    /// that takes its severity, in one transaction — and wakes those channels' workers.
    /// Blocking (a local commit, never the network): call it from `spawn_blocking` or a
    /// blocking thread, or use [`Notifier::submit_async`].
    pub fn submit(&self, notice: Notice) -> Result<(), Error> {
        let body = serde_json::to_string(&notice)?;
        let now = now_ms();
        let routed = self.inner.store.enqueue_notice(
            &NewNotice {
                alert_id: notice.alert_id,
                kind: render::kind_name(notice.kind),
                severity: render::severity_name(notice.severity),
                at_ms: notice.at_ms,
                body: &body,
            },
            |ch| {
                let p: Policy = serde_json::from_value(ch.policy.clone()).unwrap_or_default();
                (ch.enabled && notice.severity >= p.min_severity)
                    .then(|| now + i64::from(p.group_wait_s) * 1000)
            },
        )?;
        for id in routed {
            self.wake(id);
        }
        Ok(())
    }

    /// [`Notifier::submit`] for async callers.
    pub async fn submit_async(&self, notice: Notice) -> Result<(), Error> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.submit(notice))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Tells the workers that channels were created, changed, muted or deleted.
    pub fn channels_changed(&self, id: Option<i64>) {
        self.inner.changed.notify_one();
        if let Some(id) = id {
            self.wake(id);
        }
    }

    fn waker(&self, id: i64) -> Arc<Notify> {
        self.inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_default()
            .clone()
    }

    fn wake(&self, id: i64) {
        self.waker(id).notify_one();
    }

    /// Sends a test message on `spec`'s channel now; the sentence on success, or the one naming
    /// what failed (DNS, TLS, connection refused, HTTP status, timeout).
    pub async fn test(&self, id: i64, spec: &ChannelSpec) -> Result<String, String> {
        let kind = Kind::parse(&spec.kind).ok_or("unknown channel kind")?;
        let target = Target::parse(kind, &spec.settings)?;
        let notice = test_notice(&spec.name);
        let batch = Batch {
            notices: std::slice::from_ref(&notice),
            summary: false,
            channel_id: id,
            channel_name: &spec.name,
            public_url: self.inner.settings.public_url.as_deref(),
            time_zone: &self.inner.settings.time_zone,
        };
        let outcome = self.inner.sender.send(&target, &batch).await;
        let (state, detail) = match &outcome {
            Ok(d) => ("sent", format!("test: {d}")),
            Err(f) => ("failed", format!("test: {}", f.reason())),
        };
        tracing::info!(channel = id, kind = %spec.kind, state, detail = %detail, "notification test");
        let store = self.inner.store.clone();
        let _ =
            tokio::task::spawn_blocking(move || store.set_channel_last(id, state, Some(&detail)))
                .await;
        outcome.map_err(|f: Failure| f.reason().to_owned())
    }

    /// The shared HTTP client (the heartbeat uses it too).
    pub fn http(&self) -> &reqwest::Client {
        self.inner.sender.client()
    }
}

fn test_notice(channel: &str) -> Notice {
    let now = now_ms();
    Notice {
        alert_id: 0,
        kind: NoticeKind::Firing,
        rule_id: 0,
        rule_name: "Test message".into(),
        device: None,
        severity: Severity::Warning,
        summary: format!("rzmon test: the channel \"{channel}\" works."),
        value: None,
        threshold: None,
        started_ms: now,
        at_ms: now,
        labels: BTreeMap::from([("test".to_owned(), "true".to_owned())]),
    }
}

/// Builds the notifier from the settings: time zone, retry base, the dashboard link
/// (`RZMON_PUBLIC_URL`, else `default_url`), and the channels of `RZMON_NOTIFY_URLS` (parsed
/// and put into the store; a bad entry stops startup).
pub fn setup(
    store: &Store,
    args: &crate::config::NotifyArgs,
    default_url: Option<String>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Notifier> {
    let time_zone = policy::time_zone(args.timezone.as_deref()).map_err(anyhow::Error::msg)?;
    let urls = match &args.notify_urls {
        Some(list) => apprise::parse_list(list.expose()).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    sync_env_channels(store, &urls)?;
    let settings = Settings {
        public_url: args.public_url.clone().or(default_url),
        time_zone,
        retry_base_ms: i64::try_from(args.notify_retry_base_ms).unwrap_or(5000),
    };
    Notifier::new(store.clone(), settings, metrics)
}

/// Replaces the channels from `RZMON_NOTIFY_URLS` (already parsed) in the store.
pub fn sync_env_channels(store: &Store, urls: &[apprise::Parsed]) -> Result<(), StoreError> {
    let policy = serde_json::to_value(Policy::default()).unwrap_or_default();
    let specs: Vec<(String, ChannelSpec)> = urls
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let key = format!("RZMON_NOTIFY_URLS#{}:{}", i + 1, p.kind.as_str());
            let spec = ChannelSpec {
                name: format!("{} (RZMON_NOTIFY_URLS {})", p.kind.as_str(), i + 1),
                kind: p.kind.as_str().to_owned(),
                settings: p.settings.clone(),
                policy: policy.clone(),
                enabled: true,
            };
            (key, spec)
        })
        .collect();
    store.sync_env_channels(&specs)
}

/// The delivery service: one worker per channel, started and stopped as channels come and
/// go, until `stop`. Open deliveries left by a previous run are picked up at once.
pub async fn run(notifier: Notifier, stop: CancellationToken) -> anyhow::Result<()> {
    let tasks = TaskTracker::new();
    let mut workers: HashMap<i64, CancellationToken> = HashMap::new();
    loop {
        let store = notifier.inner.store.clone();
        let ids: Vec<i64> = tokio::task::spawn_blocking(move || store.channels())
            .await??
            .into_iter()
            .map(|c| c.id)
            .collect();
        workers.retain(|id, token| {
            let keep = ids.contains(id);
            if !keep {
                token.cancel();
            }
            keep
        });
        for id in ids {
            workers.entry(id).or_insert_with(|| {
                let token = stop.child_token();
                tasks.spawn(worker::run(notifier.clone(), id, token.clone()));
                token
            });
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = notifier.inner.changed.notified() => {}
        }
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}
