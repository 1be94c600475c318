//! TLS for the public ports (HTTPS and MQTT over TLS), terminated here with rustls and the
//! `ring` provider, chosen explicitly (no process-wide default is needed). One [`Tls`] is shared
//! by the HTTPS server and the MQTT gate; its certificate comes from the generated pair
//! (`generate`) or from `RZMON_TLS_CERT` + `RZMON_TLS_KEY`, and `reload` swaps it while running
//! (file change, SIGHUP, renewal). Every handshake has a time limit, so a stalled client only
//! costs its own task.

pub mod generate;
pub mod reload;

use crate::config::Choice;
use anyhow::Context;
use clap::Args;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A client must finish its TLS handshake within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether TLS is on, and where its certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// Plain ports only.
    Off,
    /// TLS with `RZMON_TLS_CERT` + `RZMON_TLS_KEY` if given, else with a generated private CA.
    Auto,
    /// TLS with `RZMON_TLS_CERT` + `RZMON_TLS_KEY` (both required).
    On,
}

/// What the plain ports do while TLS is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlainMode {
    /// Neither plain HTTP nor plain MQTT is served.
    Off,
    /// Plain HTTP answers with a redirect to HTTPS; plain MQTT stays open.
    Redirect,
    /// Both plain ports serve as without TLS.
    On,
}

/// The TLS settings of `rzmon serve`.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// TLS on the HTTPS and MQTTS ports: off, auto (a generated private CA unless
    /// RZMON_TLS_CERT/KEY are given) or on (RZMON_TLS_CERT/KEY required).
    #[arg(long, env = "RZMON_TLS", default_value = "off",
          value_parser = Choice::<TlsMode>::new("RZMON_TLS"))]
    pub tls: TlsMode,

    /// Names of the generated server certificate (comma-separated DNS names and IP addresses);
    /// default: the host name, localhost, 127.0.0.1, ::1 and every local address.
    #[arg(long, env = "RZMON_TLS_NAMES", value_delimiter = ',', value_parser = tls_name)]
    pub tls_names: Vec<String>,

    /// PEM certificate chain to serve instead of the generated one (reloaded when it changes).
    #[arg(long, env = "RZMON_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of RZMON_TLS_CERT.
    #[arg(long, env = "RZMON_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// How often RZMON_TLS_CERT/KEY are checked for a change, in seconds; 0: only on SIGHUP.
    #[arg(long, env = "RZMON_TLS_WATCH", default_value_t = 1,
          value_parser = crate::config::int::<u64>("RZMON_TLS_WATCH", 0, 86_400))]
    pub tls_watch: u64,

    /// Address of HTTPS (dashboard, API, WebSocket) when TLS is on.
    #[arg(long, env = "RZMON_HTTPS_ADDR", default_value = "0.0.0.0:8443",
          value_parser = addr("RZMON_HTTPS_ADDR"))]
    pub https_addr: SocketAddr,

    /// Address of MQTT over TLS when TLS is on.
    #[arg(long, env = "RZMON_MQTTS_ADDR", default_value = "0.0.0.0:8883",
          value_parser = addr("RZMON_MQTTS_ADDR"))]
    pub mqtts_addr: SocketAddr,

    /// The plain ports while TLS is on: off, redirect (plain HTTP redirects to HTTPS, plain
    /// MQTT stays open) or on.
    #[arg(long, env = "RZMON_PLAIN", default_value = "redirect",
          value_parser = Choice::<PlainMode>::new("RZMON_PLAIN"))]
    pub plain: PlainMode,
}

impl TlsArgs {
    /// Combinations the parsers cannot see; the error names the variables.
    pub fn check(&self) -> Result<(), String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err("RZMON_TLS_CERT and RZMON_TLS_KEY must be given together".into());
            }
            (Some(_), Some(_)) if self.tls == TlsMode::Off => {
                return Err("RZMON_TLS_CERT/RZMON_TLS_KEY need RZMON_TLS=on (or auto)".into());
            }
            (None, None) if self.tls == TlsMode::On => {
                return Err(
                    "RZMON_TLS=on needs RZMON_TLS_CERT and RZMON_TLS_KEY (or use RZMON_TLS=auto)"
                        .into(),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// The file-change check interval; `None`: only SIGHUP reloads.
    pub fn watch(&self) -> Option<Duration> {
        (self.tls_watch > 0).then(|| Duration::from_secs(self.tls_watch))
    }

    pub fn enabled(&self) -> bool {
        self.tls != TlsMode::Off
    }

    /// The plain mode in force: always `On` without TLS.
    pub fn plain(&self) -> PlainMode {
        if self.enabled() {
            self.plain
        } else {
            PlainMode::On
        }
    }
}

fn tls_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    if generate::valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "RZMON_TLS_NAMES entries must be DNS names or IP addresses, got {s:?}"
        ))
    }
}

fn addr(var: &'static str) -> impl Fn(&str) -> Result<SocketAddr, String> + Clone {
    move |s: &str| {
        s.trim()
            .parse()
            .map_err(|_| format!("{var} must be an address like 0.0.0.0:8443, got {s:?}"))
    }
}

/// The generated CA, as the console, `rzmon tls show` and the download route show it.
#[derive(Debug, Clone)]
pub struct CaInfo {
    pub path: PathBuf,
    /// SHA-256 of its DER, `AB:CD:...`.
    pub fingerprint: String,
    pub pem: String,
}

impl CaInfo {
    /// The generated CA of `data_dir`, if there is one.
    pub fn read(data_dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = generate::Paths::in_dir(data_dir).ca_cert;
        let pem = match std::fs::read_to_string(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .with_context(|| format!("{} holds no certificate", path.display()))?;
        Ok(Some(Self {
            fingerprint: generate::fingerprint(&der),
            path,
            pem,
        }))
    }
}

/// Where the served certificate comes from.
#[derive(Debug, Clone)]
enum Source {
    Generated {
        paths: generate::Paths,
        names: Vec<String>,
    },
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
}

/// The TLS side of the public ports: one acceptor whose certificate can be swapped.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    source: Arc<Source>,
    ca: Option<Arc<CaInfo>>,
}

impl Tls {
    /// `None` when TLS is off; else the generated pair (made or renewed now) or the given
    /// files, loaded and checked (a key that does not match its certificate is an error).
    pub fn setup(args: &TlsArgs, data_dir: &Path) -> anyhow::Result<Option<Self>> {
        if !args.enabled() {
            return Ok(None);
        }
        let source = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => {
                let paths = generate::Paths::in_dir(data_dir);
                let names = generate::names(&args.tls_names);
                generate::ensure(&paths, &names)?;
                Source::Generated { paths, names }
            }
        };
        let ca = match &source {
            Source::Generated { .. } => CaInfo::read(data_dir)?.map(Arc::new),
            Source::Files { .. } => None,
        };
        let key = load(&source)?;
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(key))));
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("the TLS provider offers no protocol version")?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            source: Arc::new(source),
            ca,
        }))
    }

    /// The server side of a TLS handshake on `io`, within `HANDSHAKE_TIMEOUT`.
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(io)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no TLS handshake within the time limit",
            )),
        }
    }

    /// The generated CA (`None` with certificate files of your own).
    pub fn ca(&self) -> Option<&CaInfo> {
        self.ca.as_deref()
    }

    /// Loads the certificate again (files changed, SIGHUP, renewal); the next handshake uses
    /// it. On error the old certificate stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = load(&self.source)?;
        *self.resolver.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// Renews the generated server certificate when it ends soon or its names changed;
    /// `Ok(true)` when it was renewed (and loaded).
    pub fn renew(&self) -> anyhow::Result<bool> {
        let Source::Generated { paths, names } = &*self.source else {
            return Ok(false);
        };
        let renewed = generate::ensure(paths, names)?;
        if renewed {
            self.reload()?;
        }
        Ok(renewed)
    }

    /// The files whose change triggers a reload (given files only).
    fn watched(&self) -> Vec<PathBuf> {
        match &*self.source {
            Source::Files { cert, key } => vec![cert.clone(), key.clone()],
            Source::Generated { .. } => Vec::new(),
        }
    }
}

/// A client configuration (ring provider) that trusts exactly the CA certificates in `ca_pem`:
/// what `rzmon simulate --tls --ca FILE` uses.
pub fn client_config(ca_pem: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.context("the CA file is not valid PEM")?)
            .context("the CA file holds an unusable certificate")?;
    }
    anyhow::ensure!(!roots.is_empty(), "the CA file holds no certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("the TLS provider offers no protocol version")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

fn load(source: &Source) -> anyhow::Result<CertifiedKey> {
    let (cert, key) = match source {
        Source::Generated { paths, .. } => (&paths.cert, &paths.key),
        Source::Files { cert, key } => (cert, key),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificate chain {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the private key {}", key.display()))?;
    CertifiedKey::from_der(chain, der, &rustls::crypto::ring::default_provider()).with_context(
        || {
            format!(
                "{} does not fit the certificate {}",
                key.display(),
                cert.display()
            )
        },
    )
}

/// Hands every handshake the current certificate.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}
