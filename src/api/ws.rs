//! `GET /ws`: live events for authenticated clients. Auth is the `Authorization` header or a
//! first message `{"type":"auth","token":..}` within 5 s; nothing is sent before it. Then
//! `{"type":"ready"}` and every hub event, written in batches. A client that falls `ws_queue`
//! events behind, or whose send stalls for 10 s, is dropped (never slowing ingest or other
//! clients); server pings find dead peers; the socket is closed when the token expires or its
//! session ends (password change, user removed, logout: checked every `SESSION_CHECK`, also
//! catching changes made by the CLI in another process) with 1008, and at shutdown (1001).

use super::Shared;
use super::auth_filter::{self, Principal};
use super::error::ApiError;
use super::routes::{Endpoints, Table, finish};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use warp::http::{HeaderMap, Method, header};
use warp::reply::Response;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Reply};

/// Time a client has to authenticate by its first message.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// A send that takes longer means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a close frame before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Clients only send the auth message: anything bigger is refused by the codec.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// Events written per flush: a burst costs one write, not one per event.
const MAX_BATCH: usize = 64;
/// How often a blocked write re-checks how far behind its client is.
const BEHIND_CHECK: Duration = Duration::from_millis(100);
/// Server pings find dead peers (no FIN) that would otherwise linger until a send stalls.
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client silent (not even a pong) for this long is gone.
const IDLE_LIMIT: Duration = Duration::from_secs(75);
/// How often an open socket re-checks that its session still stands.
pub const SESSION_CHECK: Duration = Duration::from_millis(500);
const SLOW: &str = "Too slow to keep up; reconnect.";
/// Cap on a token's remaining lifetime for the expiry timer (ten years; avoids overflow).
const MAX_TOKEN_SECS: u64 = 10 * 365 * 86_400;
const READY: &str = r#"{"type":"ready"}"#;

const POLICY: u16 = 1008;
const GOING_AWAY: u16 = 1001;

type Tx = SplitSink<WebSocket, Message>;
type Rx = SplitStream<WebSocket>;

#[derive(Deserialize)]
struct AuthMessage {
    #[serde(rename = "type")]
    kind: String,
    token: String,
}

pub fn routes(t: &Table) -> Endpoints {
    finish(
        t.public(Method::GET, "ws")
            .and(warp::ws())
            .and(warp::header::headers_cloned())
            .and(t.state())
            .then(upgrade),
    )
}

/// Checks `Origin` and a header token before upgrading; 403/401 answers are plain JSON.
async fn upgrade(ws: Ws, headers: HeaderMap, state: Shared) -> Response {
    if !origin_allowed(&headers, &state.ctx.config.allowed_origins) {
        return ApiError::Forbidden("This origin may not open a WebSocket here.").to_response();
    }
    let principal = match auth_filter::bearer_token(&headers) {
        Ok(None) => None,
        Ok(Some(token)) => match auth_filter::authenticate(&state, token).await {
            Ok(p) => Some(p),
            Err(e) => return e.to_response(),
        },
        Err(e) => return e.to_response(),
    };
    let tracker = state.ws_tasks.clone();
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| tracker.track_future(session(socket, state, principal)))
        .into_response()
}

/// A browser's `Origin` must be this server (`http(s)://<Host>`) or a configured origin; a
/// client without `Origin` (a script) is judged by its token alone.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    ["http://", "https://"].iter().any(|scheme| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    })
}

async fn session(socket: WebSocket, state: Shared, principal: Option<Principal>) {
    let (mut tx, mut rx) = socket.split();
    let principal = match principal {
        Some(p) => p,
        None => match first_message_auth(&mut rx, &state).await {
            Some(p) => p,
            None if state.ctx.shutdown.is_cancelled() => {
                close(&mut tx, GOING_AWAY, "Server shutting down.").await;
                return;
            }
            None => {
                close(&mut tx, POLICY, "Authentication required.").await;
                return;
            }
        },
    };
    let user = principal.username.as_str();
    let mut events = state.ctx.hub.subscribe();
    if send(&mut tx, READY.to_owned()).await.is_err() {
        return;
    }
    tracing::debug!(user, "WebSocket client ready");
    let expired = tokio::time::sleep_until(token_deadline(principal.exp));
    let mut expired = std::pin::pin!(expired);
    let queue = state.ctx.config.ws_queue.max(1);
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_seen = Instant::now();
    let mut session_check = tokio::time::interval_at(Instant::now() + SESSION_CHECK, SESSION_CHECK);
    loop {
        tokio::select! {
            () = state.ctx.shutdown.cancelled() => {
                close(&mut tx, GOING_AWAY, "Server shutting down.").await;
                return;
            }
            () = &mut expired => {
                close(&mut tx, POLICY, "Access token expired; log in again.").await;
                return;
            }
            _ = session_check.tick() => {
                // A store error is not proof the session ended: keep the socket, ask again.
                if matches!(auth_filter::session_stands(&state, &principal).await, Ok(false)) {
                    tracing::info!(user, "closing WebSocket: its session ended");
                    close(&mut tx, POLICY, "Session ended; log in again.").await;
                    return;
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > IDLE_LIMIT {
                    tracing::debug!(user, "WebSocket client stopped answering pings");
                    return;
                }
                if tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::ping(Vec::new()))).await.is_err() {
                    drop_slow(&state, user, "a ping did not go out in time");
                    return;
                }
            }
            incoming = rx.next() => match incoming {
                Some(Ok(m)) if !m.is_close() => last_seen = Instant::now(),
                _ => return,
            },
            event = events.recv() => {
                let first = match event {
                    Ok(text) => text,
                    Err(RecvError::Lagged(_)) => {
                        drop_slow(&state, user, "it fell behind the live events");
                        close(&mut tx, POLICY, SLOW).await;
                        return;
                    }
                    Err(RecvError::Closed) => {
                        close(&mut tx, GOING_AWAY, "Server shutting down.").await;
                        return;
                    }
                };
                match forward(&mut tx, first, &mut events, queue).await {
                    Forward::Sent => {}
                    Forward::Behind => {
                        drop_slow(&state, user, "it fell behind the live events");
                        close(&mut tx, POLICY, SLOW).await;
                        return;
                    }
                    Forward::Stalled => {
                        drop_slow(&state, user, "a send did not complete in time");
                        return;
                    }
                    Forward::Gone => return,
                }
            }
        }
    }
}

enum Forward {
    Sent,
    /// More than `ws_queue` events wait for this client.
    Behind,
    /// The socket did not take the batch within `SEND_TIMEOUT`.
    Stalled,
    Gone,
}

/// Writes `first` and whatever else is already queued (up to `MAX_BATCH`) with one flush.
async fn forward(
    tx: &mut Tx,
    first: Arc<str>,
    events: &mut Receiver<Arc<str>>,
    queue: usize,
) -> Forward {
    if events.len() >= queue {
        return Forward::Behind;
    }
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match events.try_recv() {
            Ok(text) => batch.push(text),
            Err(TryRecvError::Lagged(_)) => return Forward::Behind,
            Err(_) => break,
        }
    }
    let write = async {
        for text in batch {
            tx.feed(Message::text(text.to_string())).await?;
        }
        tx.flush().await
    };
    let mut write = std::pin::pin!(write);
    let stalled = tokio::time::sleep(SEND_TIMEOUT);
    let mut stalled = std::pin::pin!(stalled);
    // While the socket is full, keep watching the queue: a client that stopped reading is
    // dropped as soon as it is `ws_queue` behind, not only after `SEND_TIMEOUT`.
    let mut check = tokio::time::interval(BEHIND_CHECK);
    loop {
        tokio::select! {
            done = &mut write => return if done.is_ok() { Forward::Sent } else { Forward::Gone },
            () = &mut stalled => return Forward::Stalled,
            _ = check.tick() => if events.len() >= queue {
                return Forward::Behind;
            },
        }
    }
}

/// Waits up to 5 s for `{"type":"auth","token":..}` (pings are skipped).
async fn first_message_auth(rx: &mut Rx, state: &Shared) -> Option<Principal> {
    let deadline = Instant::now() + AUTH_TIMEOUT;
    loop {
        let next = tokio::select! {
            () = state.ctx.shutdown.cancelled() => return None,
            next = tokio::time::timeout_at(deadline, rx.next()) => next.ok()??.ok()?,
        };
        if next.is_ping() || next.is_pong() {
            continue;
        }
        let auth: AuthMessage = serde_json::from_str(next.to_str().ok()?).ok()?;
        if auth.kind != "auth" {
            return None;
        }
        return auth_filter::authenticate(state, &auth.token).await.ok();
    }
}

fn drop_slow(state: &Shared, user: &str, why: &str) {
    state.ctx.metrics.ws_dropped_slow.inc();
    tracing::warn!(user, "dropping WebSocket client: {why}");
}

/// Sends one text frame; `Err` if it fails or stalls beyond `SEND_TIMEOUT`.
async fn send(tx: &mut Tx, text: String) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn close(tx: &mut Tx, code: u16, reason: &'static str) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = tx.send(Message::close_with(code, reason)).await;
        let _ = tx.close().await;
    })
    .await;
}

/// The instant a token with expiry `exp` (epoch seconds) runs out.
fn token_deadline(exp: u64) -> Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Instant::now() + Duration::from_secs(exp.saturating_sub(now).min(MAX_TOKEN_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().expect("origin"));
        }
        h
    }

    /// No Origin (a script) passes; this server's origin and configured ones pass; others fail.
    #[test]
    fn origin_check() {
        let allowed = vec!["https://dash.example".to_owned()];
        assert!(origin_allowed(&headers(None, "h:8080"), &[]));
        assert!(origin_allowed(
            &headers(Some("http://h:8080"), "h:8080"),
            &[]
        ));
        assert!(origin_allowed(
            &headers(Some("https://H:8080"), "h:8080"),
            &[]
        ));
        assert!(origin_allowed(
            &headers(Some("https://dash.example"), "h:8080"),
            &allowed
        ));
        for bad in [
            "http://evil.example",
            "http://h:8081",
            "null",
            "http://h:8080.evil",
        ] {
            assert!(
                !origin_allowed(&headers(Some(bad), "h:8080"), &allowed),
                "{bad}"
            );
        }
    }

    /// A token's deadline is its remaining lifetime from now; expired tokens are due at once.
    #[test]
    fn token_deadline_from_exp() {
        let before = Instant::now();
        assert!(token_deadline(0) <= Instant::now());
        let far = token_deadline(u64::MAX / 2);
        assert!(far > before + Duration::from_secs(3600));
    }
}
