//! E-mail over SMTP (lettre, rustls with `ring`): STARTTLS (required, never silently plain),
//! implicit TLS, or plain for a local relay; the SMTP reply decides retry or failure.

use super::channel::{Email, Security};
use super::render::Batch;
use super::send::{Failure, Outcome};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Limit for each SMTP command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn send(e: &Email, batch: &Batch<'_>) -> Outcome {
    let host = format!("{}:{}", e.host, e.port());
    let fatal = |what: &str| Failure::Fatal(format!("{what} ({host})"));
    let builder = match e.security {
        Security::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host),
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host),
        Security::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &e.host,
        )),
    }
    .map_err(|_| fatal("the SMTP host cannot be used for TLS"))?;
    let mut builder = builder.port(e.port()).timeout(Some(SMTP_TIMEOUT));
    if let Some(pem) = &e.ca {
        let ca = Certificate::from_pem(pem.as_bytes())
            .map_err(|_| fatal("settings.ca is not a PEM certificate"))?;
        let params = TlsParameters::builder(e.host.clone())
            .add_root_certificate(ca)
            .build_rustls()
            .map_err(|_| fatal("the TLS settings cannot be built"))?;
        builder = builder.tls(match e.security {
            Security::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let (Some(user), Some(pw)) = (&e.username, &e.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pw.expose().to_owned()));
    }
    let transport = builder.build();
    let from: Mailbox = e
        .from
        .parse()
        .map_err(|_| fatal("settings.from is not an address"))?;
    let mut msg = Message::builder().from(from).subject(batch.title());
    for to in &e.to {
        let to: Mailbox = to
            .parse()
            .map_err(|_| fatal("settings.to holds a bad address"))?;
        msg = msg.to(to);
    }
    let msg = msg
        .header(ContentType::TEXT_PLAIN)
        .body(batch.text())
        .map_err(|_| fatal("the message cannot be built"))?;
    match transport.send(msg).await {
        Ok(r) => Ok(format!("accepted by {host} (SMTP {})", r.code())),
        Err(err) => Err(judge(&err, &host)),
    }
}

/// 4xx replies and network trouble are retried; 5xx replies fail.
fn judge(err: &lettre::transport::smtp::Error, host: &str) -> Failure {
    let code = err.status().map(|c| c.to_string());
    let chain = {
        let mut s = Vec::new();
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(err);
        while let Some(e) = src {
            s.push(e.to_string());
            src = e.source();
        }
        s.join(": ")
    };
    if err.is_permanent() {
        let code = code.unwrap_or_default();
        let what = if code.starts_with("535") || code.starts_with("530") {
            "the SMTP server refused the login"
        } else {
            "the SMTP server refused the message"
        };
        return Failure::Fatal(format!("{what} (SMTP {code}) at {host}"));
    }
    if err.is_client() {
        return Failure::Fatal(format!("SMTP with {host} failed: {chain}"));
    }
    let low = chain.to_lowercase();
    let reason = if err.is_timeout() {
        format!("timed out talking to {host}")
    } else if err.is_tls() || low.contains("certificate") || low.contains("tls") {
        format!("TLS with {host} failed: {chain}")
    } else if low.contains("connection refused") {
        format!("connection refused by {host}: is the server running?")
    } else if low.contains("lookup") || low.contains("resolve") || low.contains("name or service") {
        format!("DNS: cannot resolve {host}")
    } else if err.is_transient() {
        format!(
            "the SMTP server deferred the message (SMTP {}) at {host}",
            code.unwrap_or_default()
        )
    } else {
        format!("SMTP with {host} failed: {chain}")
    };
    Failure::Retry {
        reason,
        after_ms: None,
    }
}
