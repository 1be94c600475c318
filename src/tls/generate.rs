//! The generated pair of `RZMON_TLS=auto`: a private CA (kept for years, so devices flashed with
//! it keep working) and a server certificate signed by it for the configured names. Everything
//! lives in `<data dir>/tls/`, every file 0600. On start (and once a day while running) the
//! server certificate is made anew, by the same CA, when its names changed or it ends within
//! `RENEW_BEFORE`.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Sub-directory of the data directory.
pub const DIR: &str = "tls";
/// The CA is valid this long.
const CA_DAYS: i64 = 3650;
/// The server certificate: Apple devices refuse server certificates valid for longer than 825
/// days, also from a private CA.
const SERVER_DAYS: i64 = 825;
/// A server certificate that ends sooner than this is renewed.
pub const RENEW_BEFORE: Duration = Duration::days(30);

/// Where the generated files are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub ca_cert: PathBuf,
    ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The server certificate's names (line 1) and end (line 2, Unix seconds).
    meta: PathBuf,
}

impl Paths {
    pub fn in_dir(data_dir: &Path) -> Self {
        let d = data_dir.join(DIR);
        Self {
            ca_cert: d.join("ca.pem"),
            ca_key: d.join("ca-key.pem"),
            cert: d.join("server.pem"),
            key: d.join("server-key.pem"),
            meta: d.join("server.names"),
        }
    }
}

impl Paths {
    /// The current server certificate's names, comma-separated.
    pub fn names(&self) -> Option<String> {
        fs::read_to_string(&self.meta)
            .ok()
            .and_then(|m| m.lines().next().map(str::to_owned))
    }
}

/// The names of `RZMON_TLS_NAMES`, or the defaults: the host name, `localhost`, the loopback
/// addresses and every address of this machine's interfaces (ESP32s often dial an IP).
pub fn names(configured: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !n.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&n)) {
            out.push(n);
        }
    };
    if !configured.is_empty() {
        configured.iter().map(|n| n.trim().to_owned()).for_each(add);
        return out;
    }
    if let Some(h) = hostname::get().ok().and_then(|h| h.into_string().ok())
        && valid_name(&h)
    {
        add(h.to_ascii_lowercase());
    }
    add("localhost".into());
    add("127.0.0.1".into());
    add("::1".into());
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        add(iface.ip().to_string());
    }
    out
}

/// A DNS name (letters, digits, `-`, `.`, an optional leading `*.`) or an IP address.
pub fn valid_name(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let s = s.strip_prefix("*.").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Makes the CA on first use and a server certificate for `names` when there is none, its names
/// differ, or it ends within `RENEW_BEFORE`. `Ok(true)` when the server certificate was made.
pub fn ensure(paths: &Paths, names: &[String]) -> anyhow::Result<bool> {
    let dir = paths.ca_cert.parent().context("tls directory")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    let ca_key = match fs::read_to_string(&paths.ca_key) {
        Ok(pem) => KeyPair::from_pem(&pem)
            .with_context(|| format!("{} is not a private key", paths.ca_key.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate().context("cannot generate the CA key")?;
            let cert = ca_params(&key)?
                .self_signed(&key)
                .context("cannot sign the CA")?;
            replace_private(&paths.ca_key, key.serialize_pem().as_bytes())?;
            replace_private(&paths.ca_cert, cert.pem().as_bytes())?;
            // A new CA: whatever server certificate was there is not signed by it.
            let _ = fs::remove_file(&paths.meta);
            tracing::info!(path = %paths.ca_cert.display(), "generated a private CA");
            key
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", paths.ca_key.display())),
    };
    if current(paths, names) {
        return Ok(false);
    }
    let key = KeyPair::generate().context("cannot generate the server key")?;
    let mut params = CertificateParams::new(names.to_vec())
        .context("RZMON_TLS_NAMES holds a name that cannot go into a certificate")?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().map_or("rzmon", String::as_str),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(SERVER_DAYS);
    params.serial_number = Some(serial()?);
    let issuer = Issuer::new(ca_params(&ca_key)?, &ca_key);
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the server certificate")?;
    replace_private(&paths.key, key.serialize_pem().as_bytes())?;
    replace_private(&paths.cert, cert.pem().as_bytes())?;
    let meta = format!(
        "{}\n{}\n",
        names.join(","),
        params.not_after.unix_timestamp()
    );
    replace_private(&paths.meta, meta.as_bytes())?;
    tracing::info!(names = %names.join(","), "generated the server certificate");
    Ok(true)
}

/// True when the server certificate exists for exactly `names` and does not end soon.
fn current(paths: &Paths, names: &[String]) -> bool {
    let Ok(meta) = fs::read_to_string(&paths.meta) else {
        return false;
    };
    let mut lines = meta.lines();
    let same = lines.next() == Some(names.join(",").as_str());
    let end = lines
        .next()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
    same && end.is_some_and(|e| e - OffsetDateTime::now_utc() > RENEW_BEFORE)
        && paths.cert.exists()
        && paths.key.exists()
}

/// The CA's parameters; its name derives from its key, so the same key gives the same issuer
/// name when a server certificate is signed in a later run.
fn ca_params(key: &KeyPair) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let id = hex::encode(&Sha256::digest(key.public_key_raw())[..4]);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "rzmon");
    dn.push(DnType::CommonName, format!("rzmon private CA {id}"));
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(CA_DAYS);
    p.serial_number = Some(serial()?);
    Ok(p)
}

fn serial() -> anyhow::Result<SerialNumber> {
    let mut b = crate::secrets::random_bytes(16)?;
    b[0] &= 0x7f; // a positive number
    Ok(SerialNumber::from_slice(&b))
}

/// Writes `path` (0600) through a temporary file and a rename, so a reader never sees half.
fn replace_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    crate::secrets::write_private(&tmp, data)?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// `AB:CD:...`: SHA-256 of a certificate's DER, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in [
            "rz.local",
            "localhost",
            "10.0.0.7",
            "::1",
            "*.example.org",
            "a-b",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a..b", "-a", "a_b", "a b", "http://x"] {
            assert!(!valid_name(bad), "{bad}");
        }
        let n = names(&[]);
        assert!(n.contains(&"localhost".to_owned()) && n.contains(&"127.0.0.1".to_owned()));
        assert_eq!(
            names(&["a.example".into(), "A.example".into()]),
            ["a.example"]
        );
    }

    #[test]
    fn a_certificate_that_ends_soon_is_renewed_by_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(dir.path());
        let names = vec!["localhost".to_owned()];
        assert!(ensure(&paths, &names).unwrap());
        let (ca, cert) = (
            fs::read(&paths.ca_cert).unwrap(),
            fs::read(&paths.cert).unwrap(),
        );
        let ends_in = |days: i64| {
            let end = OffsetDateTime::now_utc() + Duration::days(days);
            fs::write(
                &paths.meta,
                format!("localhost\n{}\n", end.unix_timestamp()),
            )
            .unwrap();
        };
        ends_in(40);
        assert!(!ensure(&paths, &names).unwrap(), "40 days left: kept");
        assert_eq!(fs::read(&paths.cert).unwrap(), cert);
        ends_in(10);
        assert!(ensure(&paths, &names).unwrap(), "10 days left: renewed");
        assert_ne!(fs::read(&paths.cert).unwrap(), cert);
        assert_eq!(fs::read(&paths.ca_cert).unwrap(), ca, "the CA stays");
        let meta = fs::read_to_string(&paths.meta).unwrap();
        let end: i64 = meta.lines().nth(1).unwrap().parse().unwrap();
        let left = end - OffsetDateTime::now_utc().unix_timestamp();
        assert!(left > (SERVER_DAYS - 1) * 86_400, "825 days again: {meta}");
        // A damaged record is not trusted: made anew, no panic.
        fs::write(&paths.meta, "localhost\nnot a time\n").unwrap();
        assert!(ensure(&paths, &names).unwrap());
        fs::write(&paths.meta, "").unwrap();
        assert!(ensure(&paths, &names).unwrap());
        assert_eq!(fs::read(&paths.ca_cert).unwrap(), ca);
    }

    #[test]
    fn files_are_made_once_and_renewed_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(dir.path());
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        assert!(
            ensure(&paths, &names).unwrap(),
            "first start makes a certificate"
        );
        let ca = fs::read(&paths.ca_cert).unwrap();
        let cert = fs::read(&paths.cert).unwrap();
        assert!(!ensure(&paths, &names).unwrap(), "kept on the next start");
        assert_eq!(fs::read(&paths.cert).unwrap(), cert);
        assert!(
            ensure(&paths, &["rz.local".to_owned()]).unwrap(),
            "new names"
        );
        assert_ne!(fs::read(&paths.cert).unwrap(), cert);
        assert_eq!(fs::read(&paths.ca_cert).unwrap(), ca, "the CA stays");
        #[cfg(unix)]
        for p in [&paths.ca_cert, &paths.ca_key, &paths.cert, &paths.key] {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
}
