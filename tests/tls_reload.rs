//! SIGHUP on the real binary: with TLS off it is logged and the server keeps running; with
//! certificate files (`RZMON_TLS_WATCH=0`, so only the signal can trigger it) the next handshake
//! uses the replaced files; with the generated pair a server certificate that ends soon is
//! renewed by the same CA and the next handshake shows the new serial.

use crate::tls::{ca_of, foreign_pair, handshake};
use crate::util::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::net::SocketAddr;

/// One DER TLV: (tag, content, what follows). Short and long length forms.
fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
    let (len, head) = if b[1] < 0x80 {
        (usize::from(b[1]), 2)
    } else {
        let n = usize::from(b[1] & 0x7f);
        let len = b[2..2 + n]
            .iter()
            .fold(0usize, |a, x| (a << 8) | usize::from(*x));
        (len, 2 + n)
    };
    (b[0], &b[head..head + len], &b[head + len..])
}

/// The serial number of a DER certificate: Certificate → tbsCertificate → ([0] version) → serial.
fn serial(der: &[u8]) -> Vec<u8> {
    let (_, cert, _) = tlv(der);
    let (_, tbs, _) = tlv(cert);
    let (tag, _, after_version) = tlv(tbs);
    let rest = if tag == 0xa0 { after_version } else { tbs };
    let (tag, serial, _) = tlv(rest);
    assert_eq!(tag, 0x02, "serialNumber is an INTEGER");
    serial.to_vec()
}

/// The serial of the certificate `addr` serves (verified against `ca`).
async fn served_serial(ca: &[u8], addr: SocketAddr) -> Option<Vec<u8>> {
    let tls = handshake(ca, addr).await.ok()?;
    let chain = tls.get_ref().1.peer_certificates()?;
    Some(serial(chain.first()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_tls_keeps_the_server_running() {
    let mut app = TestApp::process().await;
    for n in 1..=2 {
        app.sighup();
        let logged = wait_until(SOON, || async {
            app.stderr().matches("nothing to reload").count() >= n
        })
        .await;
        assert!(logged, "SIGHUP {n} is logged; stderr:\n{}", app.stderr());
        assert!(app.alive(), "SIGHUP {n} did not end rzmon");
        let health = app.client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    assert!(app.sigterm().success(), "SIGTERM still ends it cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_replaced_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ca1, cert1, key1) = foreign_pair();
    std::fs::write(&cert, cert1).unwrap();
    std::fs::write(&key, key1).unwrap();
    let mut app = TestApp::process_with(&[
        ("RZMON_TLS", "on"),
        ("RZMON_TLS_CERT", cert.to_str().unwrap()),
        ("RZMON_TLS_KEY", key.to_str().unwrap()),
        ("RZMON_TLS_WATCH", "0"),
    ])
    .await;
    let (https, mqtts) = (app.https.unwrap(), app.mqtts.unwrap());
    let (ca2, cert2, key2) = foreign_pair();
    std::fs::write(&key, key2).unwrap();
    std::fs::write(&cert, cert2).unwrap();
    for addr in [https, mqtts] {
        handshake(ca1.as_bytes(), addr)
            .await
            .expect("no file watch: still the first pair until SIGHUP");
    }
    app.sighup();
    for addr in [https, mqtts] {
        let switched = wait_until(SOON, || async {
            handshake(ca2.as_bytes(), addr).await.is_ok()
        })
        .await;
        assert!(switched, "SIGHUP: the new certificate is served on {addr}");
        assert!(
            handshake(ca1.as_bytes(), addr).await.is_err(),
            "old one gone"
        );
    }
    let log = app.stderr();
    assert!(
        log.contains("TLS certificate reloaded") && log.contains("SIGHUP"),
        "{log}"
    );
    assert!(!log.contains("certificate files changed"), "{log}");
    assert!(app.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_renews_a_generated_certificate_that_ends_soon() {
    let mut app = TestApp::process_with(&[("RZMON_TLS", "auto")]).await;
    let ca = ca_of(&app);
    let (https, mqtts) = (app.https.unwrap(), app.mqtts.unwrap());
    let first = served_serial(&ca, mqtts).await.expect("handshake");
    // Not due yet: SIGHUP keeps the certificate.
    app.sighup();
    let reloaded = wait_until(SOON, || async {
        app.stderr().contains("TLS certificate reloaded")
    })
    .await;
    assert!(reloaded, "{}", app.stderr());
    assert_eq!(served_serial(&ca, mqtts).await.as_ref(), Some(&first));

    // The server certificate "ends" in 10 days (its record says so): the next check renews it.
    let meta = app.dir.path().join("tls/server.names");
    let names = std::fs::read_to_string(&meta).unwrap();
    let names = names.lines().next().unwrap().to_owned();
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 10 * 86_400;
    std::fs::write(&meta, format!("{names}\n{soon}\n")).unwrap();
    app.sighup();
    for addr in [mqtts, https] {
        let renewed = wait_until(SOON, || async {
            served_serial(&ca, addr).await.is_some_and(|s| s != first)
        })
        .await;
        assert!(renewed, "a new serial on {addr}; stderr:\n{}", app.stderr());
    }
    assert!(
        app.stderr()
            .contains("renewed the generated server certificate")
    );
    assert_eq!(ca_of(&app), ca, "the same CA signs it");
    let on_disk = CertificateDer::from_pem_file(app.dir.path().join("tls/server.pem")).unwrap();
    assert_eq!(served_serial(&ca, https).await, Some(serial(&on_disk)));
    let meta = std::fs::read_to_string(&meta).unwrap();
    let end: u64 = meta.lines().nth(1).unwrap().parse().unwrap();
    assert!(
        end > soon + 700 * 86_400,
        "valid for 825 days again: {meta}"
    );
}
