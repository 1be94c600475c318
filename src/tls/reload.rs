//! The reload service, always running: SIGHUP reloads the TLS certificate (`RZMON_TLS_CERT` +
//! `RZMON_TLS_KEY` read again; the generated pair renewed if it ends soon, then read again), or,
//! with TLS off, is logged as having nothing to reload: SIGHUP never ends the process. With TLS,
//! the certificate files are also reloaded when they change (checked every `RZMON_TLS_WATCH`;
//! certbot replaces both within a moment, so a change is loaded once both have settled), and the
//! generated server certificate is renewed once a day when it ends soon. A failed reload is
//! logged and the old certificate stays in use.

use super::Tls;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the generated certificate's end is checked.
const RENEW_CHECK: Duration = Duration::from_secs(24 * 3600);

type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Runs until `stop`. `watch`: how often the certificate files are looked at (`None`: never,
/// only SIGHUP reloads them).
pub async fn run(
    tls: Option<Tls>,
    watch: Option<Duration>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let files = match (&tls, watch) {
        (Some(t), Some(_)) => t.watched(),
        _ => Vec::new(),
    };
    let every = watch.unwrap_or(RENEW_CHECK);
    let mut seen = stamp(&files);
    let mut poll = tokio::time::interval(every);
    let mut renew = tokio::time::interval(RENEW_CHECK);
    renew.tick().await; // checked at start already
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
        .ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = hangup => match &tls {
                Some(t) => {
                    renew_generated(t).await?;
                    reload(t, "SIGHUP");
                }
                None => tracing::info!("SIGHUP: TLS is off (RZMON_TLS=off), nothing to reload"),
            },
            _ = renew.tick(), if tls.is_some() => {
                if let Some(t) = &tls {
                    renew_generated(t).await?;
                }
            }
            _ = poll.tick(), if !files.is_empty() => {
                let now = stamp(&files);
                if now != seen {
                    // Load only once the files stopped changing for one poll.
                    tokio::time::sleep(every).await;
                    let settled = stamp(&files);
                    if settled == now {
                        seen = now;
                        if let Some(t) = &tls {
                            reload(t, "the certificate files changed");
                        }
                    }
                }
            }
        }
    }
}

/// Renews the generated server certificate if it ends soon (nothing with own files).
async fn renew_generated(tls: &Tls) -> anyhow::Result<()> {
    let t = tls.clone();
    match tokio::task::spawn_blocking(move || t.renew()).await? {
        Ok(true) => tracing::info!("renewed the generated server certificate"),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot renew the server certificate")
        }
    }
    Ok(())
}

fn reload(tls: &Tls, why: &str) {
    match tls.reload() {
        Ok(()) => tracing::info!(why, "TLS certificate reloaded"),
        Err(e) => {
            tracing::error!(why, error = %format!("{e:#}"), "TLS certificate not reloaded; the old one stays in use")
        }
    }
}
