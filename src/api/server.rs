//! The HTTP and HTTPS accept loops: our own hyper server around the warp filter (warp 0.4 has no
//! TLS and no connection limits). Per connection: the address budget (`budget::HTTP`, trusted
//! proxies exempt), the TLS handshake within its limit, then HTTP/1.1 with a header read
//! timeout and a header size limit (431). The peer address is attached to every request as a
//! [`Peer`] extension (what `warp::addr::remote()` gives under warp's own server). HTTPS answers
//! carry HSTS; plain HTTP in redirect mode answers every request with a redirect to HTTPS.

use crate::budget::{self, Budget};
use crate::cidr::Cidr;
use crate::metrics::Metrics;
use crate::tls::Tls;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Request, StatusCode, header};
use warp::reply::Response;

/// A request's TCP peer.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A client must send a request's headers within this time. hyper counts the wait for the
/// next request on a kept-alive connection too, so this is also the idle limit: 30 s (hyper's
/// default) keeps clients that reuse a connection every few seconds clear of the race with our
/// close; a slow client is bounded by the per-address budget meanwhile.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Request line plus headers; larger is answered with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Browsers keep using HTTPS for this long once they saw it (one year).
const HSTS: &str = "max-age=31536000";
/// Open requests get this long to finish at shutdown (then WebSockets get theirs: both stay
/// within the HTTP stage's limit).
const DRAIN: Duration = Duration::from_secs(2);
/// A limit hit by an address is logged at most once per this period.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What plain HTTP does.
#[derive(Debug, Clone, Copy)]
pub enum Plain {
    Serve,
    /// Redirect to HTTPS on this port.
    Redirect(u16),
}

/// The HTTP side's listeners: plain (served or redirecting) and TLS, each optional.
pub struct HttpListeners {
    pub plain: Option<(TcpListener, Plain)>,
    pub tls: Option<(TcpListener, Tls)>,
}

/// Shared by both loops.
struct Server {
    filter: BoxedFilter<(Response,)>,
    budget: Budget,
    trusted: Vec<Cidr>,
    metrics: Arc<Metrics>,
    logged: Mutex<HashMap<IpAddr, Instant>>,
    conns: TaskTracker,
}

/// Serves until `shutdown`, then lets open requests finish (bounded) and returns.
pub(super) async fn run(
    listeners: HttpListeners,
    filter: BoxedFilter<(Response,)>,
    trusted: Vec<Cidr>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let server = Arc::new(Server {
        filter,
        budget: Budget::new(budget::HTTP),
        trusted,
        metrics,
        logged: Mutex::default(),
        conns: TaskTracker::new(),
    });
    let mut loops = tokio::task::JoinSet::new();
    if let Some((l, plain)) = listeners.plain {
        loops.spawn(server.clone().accept(l, None, plain, shutdown.clone()));
    }
    if let Some((l, tls)) = listeners.tls {
        loops.spawn(
            server
                .clone()
                .accept(l, Some(tls), Plain::Serve, shutdown.clone()),
        );
    }
    while loops.join_next().await.is_some() {}
    server.conns.close();
    if tokio::time::timeout(DRAIN, server.conns.wait())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish in time");
    }
}

impl Server {
    async fn accept(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Tls>,
        plain: Plain,
        shutdown: CancellationToken,
    ) {
        loop {
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving the others.
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let ip = peer.ip().to_canonical();
            let ticket = if self.trusted.iter().any(|c| c.contains(ip)) {
                None
            } else {
                match self.budget.admit(ip) {
                    Ok(mut t) => {
                        // Plain HTTP has no handshake: open at once (TLS: after the handshake).
                        if tls.is_none() {
                            t.authenticated();
                        }
                        Some(t)
                    }
                    Err(log) => {
                        self.metrics.http_over_budget.inc();
                        if log {
                            tracing::warn!(%ip, "HTTP connections from this address over budget: new ones are closed (logged once a minute)");
                        }
                        continue;
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            let (server, tls, stop) = (self.clone(), tls.clone(), shutdown.clone());
            self.conns.spawn(async move {
                let mut ticket = ticket;
                let Some(tls) = tls else {
                    return server.serve(stream, peer, plain, false, stop).await;
                };
                let evicted = async {
                    match &ticket {
                        Some(t) => t.evicted().await,
                        None => std::future::pending().await,
                    }
                };
                let handshake = tokio::select! {
                    log = evicted => {
                        // Budget full: made room for a newcomer.
                        server.metrics.http_over_budget.inc();
                        if log {
                            tracing::warn!(ip = %peer.ip(), "HTTPS connections from this address still in their TLS handshake are closed to make room for others (pending budget full; logged once a minute)");
                        }
                        return;
                    }
                    s = tls.accept(stream) => s,
                };
                match handshake {
                    Ok(s) => {
                        if let Some(t) = &mut ticket {
                            t.authenticated();
                        }
                        server.serve(s, peer, Plain::Serve, true, stop).await
                    }
                    Err(e) => {
                        server.metrics.tls_handshake_failures.inc();
                        tracing::debug!(%peer, error = %e, "TLS handshake failed (HTTPS)");
                    }
                }
            });
        }
    }

    /// HTTP/1.1 on one connection until it ends; at shutdown, the request in progress finishes.
    async fn serve<IO>(
        &self,
        io: IO,
        peer: SocketAddr,
        plain: Plain,
        https: bool,
        stop: CancellationToken,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_header_size(MAX_HEADER_BYTES);
        let svc = Service {
            filter: self.filter.clone(),
            peer,
            plain,
            https,
        };
        let conn = b.serve_connection(TokioIo::new(io), svc).with_upgrades();
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        let Err(e) = result else { return };
        if e.is_parse_too_large() {
            self.metrics.http_headers_too_large.inc();
            self.log_once(peer.ip(), "HTTP request headers over 16 KiB answered with 431 (logged once a minute per address)");
        } else if e.is_timeout() {
            self.metrics.http_header_timeouts.inc();
            self.log_once(peer.ip(), "HTTP connection closed: no complete request headers within 30 s (logged once a minute per address)");
        } else {
            tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
        }
    }

    fn log_once(&self, ip: IpAddr, msg: &str) {
        let ip = ip.to_canonical();
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() > 4096 {
            logged.retain(|_, t| now - *t < LOG_EVERY);
        }
        if logged.get(&ip).is_none_or(|t| now - *t >= LOG_EVERY) {
            logged.insert(ip, now);
            tracing::warn!(%ip, "{msg}");
        }
    }
}

/// One connection's request handler.
#[derive(Clone)]
struct Service {
    filter: BoxedFilter<(Response,)>,
    peer: SocketAddr,
    plain: Plain,
    https: bool,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut req: Request<Incoming>) -> Answer {
        if let Plain::Redirect(port) = self.plain {
            let res = redirect(&req, port, self.peer);
            return Box::pin(async move { Ok(res) });
        }
        req.extensions_mut().insert(Peer(self.peer));
        let mut svc = warp::service(self.filter.clone());
        let answer = tower_service::Service::call(&mut svc, req);
        let https = self.https;
        Box::pin(async move {
            let mut res = answer.await?;
            if https {
                res.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static(HSTS),
                );
            }
            Ok(res)
        })
    }
}

/// `308` to the same path on HTTPS; the host is the one the client asked for (without its port).
fn redirect<B>(req: &Request<B>, port: u16, peer: SocketAddr) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_without_port)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| match peer {
            // No Host header (HTTP/1.0): loopback is the best guess for a local client.
            SocketAddr::V4(_) => "127.0.0.1".into(),
            SocketAddr::V6(_) => "[::1]".into(),
        });
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    let mut res = Response::new(Default::default());
    *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `rz.local:8080` → `rz.local`, `[::1]:8080` → `[::1]`, `10.0.0.2` → `10.0.0.2`.
fn host_without_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.split_once(']').map_or(h, |(a, _)| &h[..a.len() + 1]);
    }
    h.split(':').next().unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keeps_host_and_path() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let req = Request::builder()
            .uri("/data?limit=5")
            .header("host", "rz.local:8080")
            .body(())
            .unwrap();
        let res = redirect(&req, 8443, peer);
        assert_eq!(res.status(), 308);
        assert_eq!(
            res.headers()["location"],
            "https://rz.local:8443/data?limit=5"
        );
        let req = Request::builder()
            .uri("/")
            .header("host", "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(
            redirect(&req, 443, peer).headers()["location"],
            "https://[::1]/"
        );
        let req = Request::builder()
            .uri("/")
            .header("host", "a\"b")
            .body(())
            .unwrap();
        assert_eq!(
            redirect(&req, 443, peer).headers()["location"],
            "https://127.0.0.1/"
        );
    }
}
