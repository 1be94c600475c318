//! Strict MQTT: our malformed-packet corpus (tests/data/mqtt-corpus.txt) replayed over real TCP
//! against the gate, each case with the outcome written beside it; violating packets close the
//! connection and nothing of them is stored.

use crate::util::*;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CORPUS: &str = include_str!("data/mqtt-corpus.txt");
const DEVICE: &str = "corpus-1";

struct Case {
    line: usize,
    stage: String,
    expect: String,
    rule: String,
    what: String,
    frame: Vec<u8>,
}

/// Parses the corpus; panics on a malformed line (the corpus is ours).
fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, line) in CORPUS.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(f.len(), 6, "line {}: six fields expected", i + 1);
        let body = tokens(f[5]);
        let frame = if f[4] == "raw" {
            body
        } else {
            let first = u8::from_str_radix(f[4], 16).expect("first byte");
            encode(first, &body)
        };
        cases.push(Case {
            line: i + 1,
            stage: f[0].into(),
            expect: f[1].into(),
            rule: f[2].into(),
            what: f[3].into(),
            frame,
        });
    }
    cases
}

fn tokens(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for t in s.split_whitespace() {
        if let Some(text) = t.strip_prefix("s:") {
            out.extend((text.len() as u16).to_be_bytes());
            out.extend(text.as_bytes());
        } else if let Some(text) = t.strip_prefix("r:") {
            out.extend(text.as_bytes());
        } else {
            out.push(u8::from_str_radix(t, 16).unwrap_or_else(|_| panic!("token {t:?}")));
        }
    }
    out
}

/// Fixed header with the remaining length computed from `body`.
fn encode(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend(body);
    out
}

fn connect_packet(password: &str) -> Vec<u8> {
    let mut body = tokens(&format!("s:MQTT 04 c2 00 3c s:{DEVICE} s:{DEVICE}"));
    body.extend((password.len() as u16).to_be_bytes());
    body.extend(password.as_bytes());
    encode(0x10, &body)
}

async fn dial(server: SocketAddr, from: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind((from, 0).into()).expect("bind source address");
    socket.connect(server).await.expect("connect")
}

/// Reads until the server closes or sends a packet of type `want` (first-byte high nibble);
/// returns the bytes of that packet's first four bytes, or `None` on close.
async fn read_until(s: &mut TcpStream, want: u8) -> Result<Option<Vec<u8>>, &'static str> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        // Whole packets at the front of `buf`.
        while buf.len() >= 2 {
            let len = 2 + usize::from(buf[1] & 0x7f); // answers we expect are short
            if buf.len() < len {
                break;
            }
            if buf[0] >> 4 == want {
                return Ok(Some(buf[..len].to_vec()));
            }
            buf.drain(..len);
        }
        match tokio::time::timeout(SOON, s.read(&mut chunk)).await {
            Err(_) => return Err("timeout: neither closed nor answered"),
            Ok(Ok(0) | Err(_)) => return Ok(None),
            Ok(Ok(n)) => buf.extend(&chunk[..n]),
        }
    }
}

/// The outcome of one case in the corpus' vocabulary.
async fn replay(app: &TestApp, case: &Case, from: Ipv4Addr, password: &str) -> String {
    let mut s = dial(app.mqtt, from).await;
    if case.stage == "session" {
        s.write_all(&connect_packet(password)).await.unwrap();
        let ack = read_until(&mut s, 2).await.unwrap().expect("CONNACK");
        assert_eq!(ack[3], 0, "device {DEVICE} logs in");
    }
    if s.write_all(&case.frame).await.is_err() {
        return "closed".into();
    }
    if case.stage == "connect" {
        return match read_until(&mut s, 2).await {
            Ok(Some(ack)) => format!("connack {}", ack[3]),
            Ok(None) => "closed".into(),
            Err(e) => e.into(),
        };
    }
    if s.write_all(&[0xc0, 0x00]).await.is_err() {
        return "closed".into();
    }
    match read_until(&mut s, 13).await {
        Ok(Some(_)) => "open".into(),
        Ok(None) => "closed".into(),
        Err(e) => e.into(),
    }
}

/// Every case of the corpus ends as written beside it; the violating PUBLISH packets stored
/// nothing; the server still serves the device afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packet_corpus() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let password = app.add_device(DEVICE);
    let cases = corpus();
    assert!(cases.len() >= 90, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        // A source address per connect case, so the refused logins of the controls never add up
        // to the per-address lockout.
        let from = if case.stage == "connect" {
            Ipv4Addr::new(127, 0, 1, (i % 250) as u8 + 1)
        } else {
            Ipv4Addr::LOCALHOST
        };
        let got = replay(&app, case, from, &password).await;
        if got != case.expect {
            wrong.push(format!(
                "line {} [{}] {}: expected {}, got {got}",
                case.line, case.rule, case.what, case.expect
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "cases that ended otherwise:\n{}",
        wrong.join("\n")
    );

    // A last good reading through a fresh session; once it is stored, no {"tmp":99} is.
    let d = Device::connect(app.mqtt, DEVICE, Some((DEVICE, &password))).await;
    d.wait_connack().await.unwrap();
    d.publish("telemetry", r#"{"tmp":22}"#).await;
    assert!(
        app.wait_rows(&token, DEVICE, 3).await,
        "the two controls and the last reading"
    );
    let (_, body) = app
        .get(&format!("/data?device={DEVICE}&limit=1000"), Some(&token))
        .await;
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{body}");
    assert!(rows.iter().all(|r| r["data"]["tmp"] != 99), "{body}");
}
