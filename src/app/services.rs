//! The one mechanism for everything that runs in the background: a service is a future
//! `run(deps…, stop) -> anyhow::Result<()>` registered with a name and a [`Stage`]. The stages
//! stop in order, each with a real time limit; a service that returns an error or panics is
//! logged at once and marks the app failed; one that overstays its limit is aborted and counted
//! as a failure. (The model is mini-redis's `server::run(listener, shutdown)`.)

use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// When a service is stopped, in this order. Within a stage all services stop together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Stopped first: HTTP and WebSockets, and services on their own schedule that must not
    /// start new work during shutdown (pruner, backup scheduler, heartbeat).
    Front,
    /// Device connections (the MQTT gate) and what watches them.
    Devices,
    /// Ingest and what feeds on the broker link or delivers through ingest's sinks (liveness,
    /// access-list sync). Stopped once devices are gone; ingest drains what the broker holds.
    Ingest,
    /// Consumers of what ingest produced (alert engine, Home Assistant and upstream bridges):
    /// stopped after ingest drained, so they see the last events.
    Events,
    /// Delivery of what `Events` produced (notifier): stopped last, before the store writer
    /// commits its last batch.
    Delivery,
}

impl Stage {
    /// Every stage in stop order.
    pub const ALL: [Stage; 5] = [
        Stage::Front,
        Stage::Devices,
        Stage::Ingest,
        Stage::Events,
        Stage::Delivery,
    ];

    /// How long the stage's services get to return after their stop signal.
    pub fn limit(self) -> Duration {
        match self {
            // api::serve itself gives WebSockets 5 s to close.
            Stage::Front => Duration::from_secs(8),
            Stage::Devices => Duration::from_secs(3),
            // Ingest drains until the broker has been quiet for 100 ms.
            Stage::Ingest => Duration::from_secs(2),
            Stage::Events => Duration::from_secs(3),
            Stage::Delivery => Duration::from_secs(5),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How long an aborted task may take to be dropped (it may be stuck in blocking code).
const ABORT_WAIT: Duration = Duration::from_secs(1);

struct Task {
    name: &'static str,
    /// `false` when the service failed (already logged).
    handle: JoinHandle<bool>,
}

/// The running services, by stage.
pub struct Services {
    stops: [CancellationToken; Stage::ALL.len()],
    tasks: [Vec<Task>; Stage::ALL.len()],
    limits: [Duration; Stage::ALL.len()],
    failed: CancellationToken,
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}

impl Services {
    pub fn new() -> Self {
        Self {
            stops: Default::default(),
            tasks: Default::default(),
            limits: Stage::ALL.map(Stage::limit),
            failed: CancellationToken::new(),
        }
    }

    /// Starts the service `name`: `run` gets the stop signal of `stage` and returns the
    /// service's future, which is spawned at once. Call from within the runtime.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, stage: Stage, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let fut = run(self.stops[stage.index()].clone());
        let failed = self.failed.clone();
        let handle = tokio::spawn(async move {
            let outcome = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(())) => return true,
                Ok(Err(e)) => format!("{e:#}"),
                Err(panic) => panic_message(&*panic),
            };
            tracing::error!(service = name, error = outcome, "stopped with an error");
            failed.cancel();
            false
        });
        self.tasks[stage.index()].push(Task { name, handle });
    }

    /// Cancelled as soon as any service fails.
    pub fn failed(&self) -> CancellationToken {
        self.failed.clone()
    }

    /// Stops `stage`: sends its stop signal, waits up to its limit, aborts the stragglers.
    /// `false` if one of its services failed or had to be aborted.
    pub async fn stop(&mut self, stage: Stage) -> bool {
        self.stops[stage.index()].cancel();
        let limit = self.limits[stage.index()];
        let deadline = tokio::time::Instant::now() + limit;
        let mut ok = true;
        for mut task in std::mem::take(&mut self.tasks[stage.index()]) {
            match tokio::time::timeout_at(deadline, &mut task.handle).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => ok = false,
                Ok(Err(e)) => {
                    tracing::error!(service = task.name, error = %e, "task ended abnormally");
                    ok = false;
                }
                Err(_) => {
                    tracing::error!(
                        service = task.name,
                        limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                        "did not stop in time; aborted"
                    );
                    task.handle.abort();
                    if tokio::time::timeout(ABORT_WAIT, task.handle).await.is_err() {
                        tracing::error!(service = task.name, "aborted task is stuck");
                    }
                    ok = false;
                }
            }
        }
        if !ok {
            self.failed.cancel();
        }
        ok
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stages_stop_in_order_and_failures_are_reported() {
        let mut s = Services::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (name, stage) in [("late", Stage::Events), ("early", Stage::Front)] {
            let tx = tx.clone();
            s.spawn(name, stage, move |stop| async move {
                stop.cancelled().await;
                tx.send(name)?;
                Ok(())
            });
        }
        s.spawn("bad", Stage::Devices, |stop| async move {
            stop.cancelled().await;
            anyhow::bail!("broken")
        });
        assert!(!s.failed().is_cancelled());
        for stage in Stage::ALL {
            let ok = s.stop(stage).await;
            assert_eq!(ok, stage != Stage::Devices, "{stage:?}");
        }
        assert_eq!(rx.recv().await, Some("early"));
        assert_eq!(rx.recv().await, Some("late"));
        assert!(s.failed().is_cancelled());
    }

    #[tokio::test]
    async fn a_panic_marks_the_app_failed_at_once() {
        let mut s = Services::new();
        s.spawn("panicky", Stage::Events, |_| async { panic!("boom") });
        tokio::time::timeout(Duration::from_secs(5), s.failed().cancelled())
            .await
            .expect("failure seen while running");
        assert!(!s.stop(Stage::Events).await);
    }

    #[tokio::test]
    async fn a_service_that_ignores_its_stop_is_aborted_after_the_limit() {
        let mut s = Services::new();
        s.limits[Stage::Ingest.index()] = Duration::from_millis(50);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        s.spawn("stubborn", Stage::Ingest, |_| async move {
            let _dropped_when_aborted = tx;
            std::future::pending().await
        });
        let t0 = std::time::Instant::now();
        assert!(!s.stop(Stage::Ingest).await);
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert!(rx.await.is_err(), "the aborted future was dropped");
        assert!(s.failed().is_cancelled());
    }
}
