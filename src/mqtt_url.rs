//! Addresses of other MQTT brokers rzmon connects to as a client (Home Assistant's broker, the
//! upstream bridge, an external clustered broker): `mqtt://user:pass@host:1883` or `mqtts://`
//! (TLS via rustls with the `ring` provider; the system-independent Mozilla roots, or the CA
//! file named by `?ca=/path/ca.pem`). The password is redacted in `Debug`.

use crate::config::Secret;
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM file with the CA that signed the broker's certificate (`?ca=`), else Mozilla's roots.
    pub ca_file: Option<PathBuf>,
}

impl BrokerUrl {
    /// Parses `mqtt(s)://[user[:pass]@]host[:port][?ca=FILE]`; `var` names the setting in errors.
    pub fn parse(s: &str, var: &str) -> Result<Self, String> {
        let bad =
            |why: &str| format!("{var} {why}; expected mqtt://user:pass@host:1883 or mqtts://...");
        let url = url::Url::parse(s.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => return Err(bad(&format!("has the scheme {other:?}"))),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(url.path(), "" | "/") {
            return Err(bad("must not have a path"));
        }
        let decode = |v: &str| {
            percent_decode(v).ok_or_else(|| bad("has a malformed %-escape in the user or password"))
        };
        let username = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?.map(Secret::new);
        let mut ca_file = None;
        for (k, v) in url.query_pairs() {
            match &*k {
                "ca" => ca_file = Some(PathBuf::from(&*v)),
                other => return Err(bad(&format!("has the unknown option {other:?}"))),
            }
        }
        if ca_file.is_some() && !tls {
            return Err(bad("sets ca= without mqtts://"));
        }
        Ok(Self {
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            host,
            username,
            password,
            ca_file,
        })
    }

    /// `host:port` for logs (no credentials).
    pub fn address(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "mqtts" } else { "mqtt" },
            self.host,
            self.port
        )
    }

    /// Client options for this broker with `client_id`; TLS set up when `mqtts`.
    pub fn options(&self, client_id: &str) -> anyhow::Result<MqttOptions> {
        let mut opts = MqttOptions::new(client_id, &self.host, self.port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1 << 20, 1 << 20);
        if let Some(user) = &self.username {
            let pw = self.password.as_ref().map_or("", |p| p.expose());
            opts.set_credentials(user, pw);
        }
        if self.tls {
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(self.tls_config()?),
            )));
        }
        Ok(opts)
    }

    fn tls_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        use anyhow::Context;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("cannot read the CA file {}", path.display()))?
                {
                    let cert = cert.with_context(|| format!("bad PEM in {}", path.display()))?;
                    roots
                        .add(cert)
                        .with_context(|| format!("bad CA certificate in {}", path.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("rustls has no usable protocol version")?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// `%XX` decoding of a URL's user or password; `None` on a malformed escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credentials_ports_and_tls() {
        let u = BrokerUrl::parse("mqtt://ha:p%40ss@homeassistant.local:1884", "X").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (false, "homeassistant.local", 1884)
        );
        assert_eq!(u.username.as_deref(), Some("ha"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert!(!format!("{u:?}").contains("p@ss"), "password redacted");
        let u = BrokerUrl::parse("mqtts://broker.example?ca=/etc/ca.pem", "X").unwrap();
        assert_eq!((u.tls, u.port), (true, 8883));
        assert_eq!(u.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(BrokerUrl::parse("mqtt://[::1]", "X").unwrap().host, "::1");
    }

    #[test]
    fn bad_urls_name_the_variable() {
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h/path",
            "mqtt://h?ca=/x",
            "mqtts://h?foo=1",
            "nonsense",
        ] {
            let e = BrokerUrl::parse(bad, "RZMON_HA_BROKER").unwrap_err();
            assert!(e.contains("RZMON_HA_BROKER"), "{bad}: {e}");
        }
    }
}
