//! TLS on both ports, tested with real rustls clients: the generated CA verifies (by IP address,
//! so the IP SAN is there) and another CA does not; login, `/data` and `/ws` over HTTPS; the
//! whole device round trip over MQTT/TLS with the simulator; stalled handshakes do not delay
//! others; plain HTTP redirects; replaced certificate files are used by the next handshake.

use crate::util::*;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn connector(ca_pem: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

use rustls::pki_types::pem::PemObject as _;

/// A TLS handshake to `addr` by IP address (so it needs an IP SAN).
pub async fn handshake(ca_pem: &[u8], addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(SOON, connector(ca_pem).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// A CA and a server certificate for 127.0.0.1, made here (not by rzmon).
pub fn foreign_pair() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params
        .signed_by(&key, &rcgen::Issuer::new(ca, &ca_key))
        .unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

pub fn ca_of(app: &TestApp) -> Vec<u8> {
    std::fs::read(app.dir.path().join("tls/ca.pem")).expect("generated CA")
}

fn https_client(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(SOON)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_mqtts_with_the_generated_ca() {
    let app = TestApp::start_with(&[("RZMON_TLS", "auto")]).await;
    let (https, mqtts) = (app.https.expect("https"), app.mqtts.expect("mqtts"));
    let ca = ca_of(&app);
    // Both ports verify against the generated CA, by IP address; another CA fails.
    for addr in [https, mqtts] {
        handshake(&ca, addr)
            .await
            .expect("the generated CA verifies");
        let (other, _, _) = foreign_pair();
        let Err(e) = handshake(other.as_bytes(), addr).await else {
            panic!("another CA must fail on {addr}");
        };
        assert!(
            e.to_string().contains("certificate"),
            "a certificate error: {e}"
        );
    }
    // Login, /data, /settings and the CA download over HTTPS; HSTS only there.
    let client = https_client(&ca);
    let base = format!("https://{https}");
    let res = client
        .post(format!("{base}/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
    };
    let settings: Value = get("/settings").await.unwrap().json().await.unwrap();
    assert_eq!(settings["https_port"], https.port());
    assert_eq!(settings["mqtts_port"], mqtts.port());
    assert_eq!(settings["mqtt_port"], app.mqtt.port());
    assert_eq!(settings["ca_url"], "/tls/ca.pem");
    let pem = client
        .get(format!("{base}/tls/ca.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(pem.status(), 200, "public: no token needed");
    assert_eq!(pem.bytes().await.unwrap(), ca);

    // A device over MQTT/TLS (the simulator): telemetry stored, getConfig answered.
    let stop = app.simulator_tls("sim-tls", 0.2);
    let stored = wait_until(SOON, || async {
        let v: Value = get("/data?device=sim-tls")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert!(stored, "telemetry over MQTT/TLS is stored");
    let answered = wait_until(SOON, || async {
        let r = get("/getConfig?device=sim-tls").await.unwrap();
        r.status() == 200 && r.json::<Value>().await.unwrap()["config"]["tmp_max"] == 30.0
    })
    .await;
    assert!(answered, "getConfig answered over MQTT/TLS");

    // /ws over HTTPS receives the device's telemetry.
    let tls = handshake(&ca, https).await.unwrap();
    let req = format!("wss://{https}/ws").into_client_request().unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls)
        .await
        .expect("wss");
    ws.send(WsMessage::text(
        json!({"type": "auth", "token": token}).to_string(),
    ))
    .await
    .unwrap();
    let mut kinds = Vec::new();
    let deadline = Instant::now() + SOON;
    while !kinds.iter().any(|k| k == "telemetry") && Instant::now() < deadline {
        match tokio::time::timeout(SOON, ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                kinds.push(v["type"].as_str().unwrap_or("").to_owned());
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("wss ended: {other:?}"),
        }
    }
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("ready"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "telemetry"), "{kinds:?}");
    stop.cancel();

    // Plain HTTP redirects (RZMON_PLAIN=redirect is the default), without HSTS.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = plain.get(app.url("/data?limit=5")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("https://127.0.0.1:{}/data?limit=5", https.port()).as_str()
    );
    assert!(res.headers().get("strict-transport-security").is_none());
}

/// 20 clients that open TCP and never handshake (each from its own address) do not delay
/// another client's handshake on either port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_do_not_delay_others() {
    let app = TestApp::start_with(&[("RZMON_TLS", "auto")]).await;
    let ca = ca_of(&app);
    for addr in [app.https.unwrap(), app.mqtts.unwrap()] {
        let mut stalled = Vec::new();
        for i in 1..=20u8 {
            let s = TcpSocket::new_v4().unwrap();
            s.bind(format!("127.0.3.{i}:0").parse().unwrap()).unwrap();
            stalled.push(s.connect(addr).await.unwrap());
        }
        let t0 = Instant::now();
        handshake(&ca, addr).await.expect("handshake");
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "a handshake behind 20 stalled ones took {took:?} (the limit for the stalled is 10 s)"
        );
        // The stalled ones are still open: the handshake did not wait for them to time out.
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(100), stalled[0].read(&mut buf)).await;
        assert!(r.is_err(), "stalled connection still open, got {r:?}");
    }
}

/// `RZMON_TLS=on` with certificate files: replaced files are used by the next handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificate_files_are_used_by_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ca1, cert1, key1) = foreign_pair();
    std::fs::write(&cert, cert1).unwrap();
    std::fs::write(&key, key1).unwrap();
    let app = TestApp::start_with(&[
        ("RZMON_TLS", "on"),
        ("RZMON_TLS_CERT", cert.to_str().unwrap()),
        ("RZMON_TLS_KEY", key.to_str().unwrap()),
        ("RZMON_PLAIN", "off"),
    ])
    .await;
    let (https, mqtts) = (app.https.unwrap(), app.mqtts.unwrap());
    assert_eq!(app.http, https, "no plain HTTP with RZMON_PLAIN=off");
    for addr in [https, mqtts] {
        handshake(ca1.as_bytes(), addr).await.expect("first pair");
    }
    let client = https_client(ca1.as_bytes());
    let res = client
        .get(format!("https://{https}/tls/ca.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "no generated CA to offer with own files");
    let token = {
        let r = client
            .post(format!("https://{https}/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let s: Value = client
        .get(format!("https://{https}/settings"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["mqtt_port"], Value::Null, "plain MQTT is off");
    assert_eq!(s["ca_url"], Value::Null);

    let (ca2, cert2, key2) = foreign_pair();
    std::fs::write(&key, key2).unwrap();
    std::fs::write(&cert, cert2).unwrap();
    for addr in [https, mqtts] {
        let switched = wait_until(SOON, || async {
            handshake(ca2.as_bytes(), addr).await.is_ok()
        })
        .await;
        assert!(switched, "the new certificate is served on {addr}");
        assert!(
            handshake(ca1.as_bytes(), addr).await.is_err(),
            "the old one is gone"
        );
    }
}

/// The console and `rzmon tls show` print the CA's path and SHA-256 fingerprint; the files are
/// 0600 and the fingerprint is the certificate's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_tls_show_print_the_ca_fingerprint() {
    let mut app = TestApp::process_with(&[("RZMON_TLS", "auto")]).await;
    let ca = ca_of(&app);
    let der = CertificateDer::from_pem_slice(&ca).unwrap();
    let fp = sha256_colon(&der);
    let console = app.stdout.lock().unwrap().join("\n");
    assert!(console.contains(&fp), "{console}");
    assert!(console.contains("tls/ca.pem"), "{console}");
    let out = app.cli(&["tls", "show"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&fp) && text.contains("ca.pem"), "{text}");
    #[cfg(unix)]
    for f in ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(app.dir.path().join("tls").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // A restart keeps the CA (devices flashed with it keep working).
    assert!(app.sigterm().success());
    let app = app.restart().await;
    assert_eq!(ca_of(&app), ca);
    handshake(&ca, app.https.unwrap())
        .await
        .expect("same CA after restart");
}

fn sha256_colon(der: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Headers over 16 KiB get 431; the connection budget closes the 65th connection from one
/// address at once while another address is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_header_limit_and_connection_budget() {
    let app = TestApp::start().await;
    let mut s = TcpStream::connect(app.http).await.unwrap();
    let big = "a".repeat(100 * 1024);
    let req = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may stop reading after 16 KiB: write what it takes, then read the answer.
    let _ = tokio::time::timeout(SOON, s.write_all(req.as_bytes())).await;
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(SOON, s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let ok = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(ok.status(), 200, "a normal request still works");

    let mut held = Vec::new();
    for _ in 0..64 {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind("127.0.4.1:0".parse().unwrap()).unwrap();
        held.push(sock.connect(app.http).await.unwrap());
    }
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.4.1:0".parse().unwrap()).unwrap();
    let mut over = sock.connect(app.http).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(SOON, over.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "the 65th connection is closed: {r:?}"
    );
    let ok = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(ok.status(), 200, "another address is served");
    let m = &app.running().parts.metrics;
    assert!(m.http_over_budget.get() >= 1);
    assert!(m.http_headers_too_large.get() >= 1);
}
