//! Real receivers on loopback for notification tests: an HTTP server that records every
//! request and answers from a script (status codes in order, then 200), and a minimal SMTP
//! server that records envelopes and messages. They can be stopped and started again on the
//! same port, so "the receiver is down for a while" is a real refused connection.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use warp::Filter;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// Answers to give, in order: (status, body). Empty: 200 `{}`.
    script: Mutex<VecDeque<(u16, String)>>,
    /// Answer only GET (404 "Cannot POST ..." otherwise), as Uptime Kuma 1.x does on push URLs.
    get_only: std::sync::atomic::AtomicBool,
    arrived: Notify,
}

/// An HTTP receiver on 127.0.0.1.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on `addr` (a port used before: the receiver comes back).
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::serve(
            TcpListener::bind(addr).await.expect("bind receiver"),
            Arc::default(),
        )
    }

    fn serve(listener: TcpListener, shared: Arc<Shared>) -> Self {
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let s = shared.clone();
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(
                move |m: warp::http::Method,
                      p: warp::path::FullPath,
                      q: String,
                      h: warp::http::HeaderMap,
                      b: bytes::Bytes| {
                    let path = if q.is_empty() {
                        p.as_str().to_owned()
                    } else {
                        format!("{}?{q}", p.as_str())
                    };
                    let headers = h
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    let refused = s.get_only.load(std::sync::atomic::Ordering::Relaxed)
                        && m != warp::http::Method::GET;
                    let (status, body) = if refused {
                        (404, format!("Cannot {m} {}", p.as_str()))
                    } else {
                        s.script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or((200, "{}".into()))
                    };
                    s.requests.lock().unwrap().push(Recorded {
                        method: m.to_string(),
                        path,
                        headers,
                        body: b.to_vec(),
                        at: std::time::Instant::now(),
                    });
                    s.arrived.notify_waiters();
                    warp::reply::with_status(
                        warp::reply::with_header(body, "content-type", "application/json"),
                        warp::http::StatusCode::from_u16(status).unwrap(),
                    )
                },
            );
        let token = stop.clone();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(token.cancelled_owned())
                .run(),
        );
        Self { addr, shared, stop }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next answers, in order (then 200 again).
    pub fn answer(&self, status: u16, body: &str) {
        self.shared
            .script
            .lock()
            .unwrap()
            .push_back((status, body.to_owned()));
    }

    /// From now on only GET is answered (other methods: 404), like an Uptime Kuma 1.x push URL.
    pub fn only_get(&self) {
        (self.shared.get_only).store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests arrived; all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {n} requests at {}, got {}: {:?}",
                    self.addr,
                    got.len(),
                    got
                );
            }
        }
    }

    /// Stops listening: connections are refused from now on.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A free loopback port with nothing listening on it (connection refused).
pub async fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A listener that accepts connections and never answers (a hung server).
pub async fn black_hole() -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                Ok((sock, _)) = listener.accept() => held.push(sock),
            }
        }
    });
    (addr, stop)
}

/// One mail as the SMTP server received it.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message (headers and body) as sent after DATA.
    pub data: String,
    /// The decoded `AUTH PLAIN` credentials, if the client logged in.
    pub auth: Option<String>,
    /// Whether the mail arrived over TLS (STARTTLS or implicit).
    pub tls: bool,
}

/// How the SMTP server offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    Plain,
    /// Plain greeting, `STARTTLS` offered in EHLO (RFC 3207).
    Starttls,
    /// TLS from the first byte (RFC 8314, port 465 style).
    Implicit,
}

/// A minimal SMTP server (RFC 5321 subset: EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT)
/// on 127.0.0.1; with TLS it serves a certificate for 127.0.0.1 from its own CA (`ca_pem`).
pub struct SmtpServer {
    pub addr: SocketAddr,
    /// The PEM of the CA that signed the server's certificate (with TLS).
    pub ca_pem: String,
    mails: Arc<Mutex<Vec<Mail>>>,
    arrived: Arc<Notify>,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A CA and a server certificate for 127.0.0.1 signed by it: (CA PEM, acceptor).
fn tls_acceptor() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_tls(SmtpTls::Plain).await
    }

    pub async fn start_tls(mode: SmtpTls) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca_pem, acceptor) = tls_acceptor();
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (m, a) = (mails.clone(), arrived.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (m, a, acceptor) = (m.clone(), a.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let session = match mode {
                        SmtpTls::Plain => smtp_session(Box::new(sock), None, false).await,
                        SmtpTls::Starttls => {
                            smtp_session(Box::new(sock), Some(acceptor), false).await
                        }
                        SmtpTls::Implicit => match acceptor.accept(sock).await {
                            Ok(tls) => smtp_session(Box::new(tls), None, true).await,
                            Err(_) => None,
                        },
                    };
                    if let Some(mail) = session {
                        m.lock().unwrap().push(mail);
                        a.notify_waiters();
                    }
                });
            }
        });
        Self {
            addr,
            ca_pem,
            mails,
            arrived,
        }
    }

    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.arrived.notified();
            let got = self.mails.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("expected {n} mails, got {}", got.len());
            }
        }
    }
}

/// One SMTP conversation. With `starttls`, EHLO offers STARTTLS and the session goes on over
/// TLS after it (the client greets again); mail is only taken once TLS is up.
async fn smtp_session(
    sock: Box<dyn Io>,
    starttls: Option<tokio_rustls::TlsAcceptor>,
    tls: bool,
) -> Option<Mail> {
    use base64::Engine as _;
    let mut io = BufReader::new(sock);
    let mut mail = Mail {
        tls,
        ..Mail::default()
    };
    let mut starttls = starttls;
    io.write_all(b"220 receiver.test ESMTP\r\n").await.ok()?;
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await.ok()? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if starttls.is_some() {
                b"250-receiver.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
            } else {
                b"250-receiver.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
            }
        } else if upper == "STARTTLS" {
            let acceptor = starttls.take()?;
            io.write_all(b"220 2.0.0 go ahead\r\n").await.ok()?;
            io.flush().await.ok()?;
            let tls = acceptor.accept(io.into_inner()).await.ok()?;
            io = BufReader::new(Box::new(tls));
            mail.tls = true;
            continue;
        } else if starttls.is_some() && !upper.starts_with("QUIT") {
            // RFC 3207: this server requires TLS before anything else.
            b"530 5.7.0 must issue a STARTTLS command first\r\n"
        } else if let Some(cred) = upper.strip_prefix("AUTH PLAIN ").map(|_| &line[11..]) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(cred.trim())
                .ok()?;
            mail.auth = Some(
                String::from_utf8_lossy(&raw)
                    .replace('\0', " ")
                    .trim()
                    .to_owned(),
            );
            b"235 2.7.0 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line[10..].trim().to_owned();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].trim().to_owned());
            b"250 ok\r\n"
        } else if upper == "DATA" {
            io.write_all(b"354 go on\r\n").await.ok()?;
            let mut l = String::new();
            loop {
                l.clear();
                if io.read_line(&mut l).await.ok()? == 0 {
                    return None;
                }
                let l = l.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                mail.data.push_str(l);
                mail.data.push('\n');
            }
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            io.write_all(b"221 bye\r\n").await.ok()?;
            return Some(mail);
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 ok\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        io.write_all(reply).await.ok()?;
    }
    (!mail.data.is_empty()).then_some(mail)
}
