//! The certificate watcher (a service): reloads `RZMON_TLS_CERT` + `RZMON_TLS_KEY` when either
//! file changes (checked every `POLL`; certbot replaces both within a moment, so a change is
//! loaded once both have settled) and on SIGHUP; renews the generated server certificate once a
//! day when it ends soon. A failed reload is logged and the old certificate stays in use.

use super::Tls;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the certificate files are looked at.
const POLL: Duration = Duration::from_secs(1);
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

/// Runs until `stop`.
pub async fn run(tls: Tls, stop: CancellationToken) -> anyhow::Result<()> {
    let files = tls.watched();
    let mut seen = stamp(&files);
    let mut poll = tokio::time::interval(POLL);
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
            _ = hangup => reload(&tls, "SIGHUP"),
            _ = renew.tick() => {
                let t = tls.clone();
                match tokio::task::spawn_blocking(move || t.renew()).await? {
                    Ok(true) => tracing::info!("renewed the generated server certificate"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot renew the server certificate"),
                }
            }
            _ = poll.tick(), if !files.is_empty() => {
                let now = stamp(&files);
                if now != seen {
                    // Load only once the files stopped changing for one poll.
                    tokio::time::sleep(POLL).await;
                    let settled = stamp(&files);
                    if settled == now {
                        seen = now;
                        reload(&tls, "the certificate files changed");
                    }
                }
            }
        }
    }
}

fn reload(tls: &Tls, why: &str) {
    match tls.reload() {
        Ok(()) => tracing::info!(why, "TLS certificate reloaded"),
        Err(e) => {
            tracing::error!(why, error = %format!("{e:#}"), "TLS certificate not reloaded; the old one stays in use")
        }
    }
}
