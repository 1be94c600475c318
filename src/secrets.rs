//! Secrets of the installation: the JWT signing key file, random passwords, and the keyed hash
//! of device MQTT passwords. Everything random comes from the operating system's RNG.

use anyhow::Context;
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the generated JWT secret inside the data directory.
pub const JWT_SECRET_FILE: &str = "jwt_secret";
/// Random bytes of a generated JWT secret (256 bits, the HS256 key size).
const JWT_SECRET_BYTES: usize = crate::auth::policy::MIN_SECRET_LEN;
/// Length of generated passwords: 24 alphanumerics ≈ 142 bits (users), 32 ≈ 190 bits (devices).
pub const USER_PASSWORD_LEN: usize = 24;
pub const DEVICE_PASSWORD_LEN: usize = 32;

/// `n` random bytes from the OS.
pub fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    OsRng
        .try_fill_bytes(&mut buf)
        .context("the operating system's random number generator failed")?;
    Ok(buf)
}

/// A random password of `len` characters from `A-Z a-z 0-9` (rejection sampling, no bias).
pub fn random_password(len: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes(len * 2)? {
            // 248 = 4 * 62: bytes above it would bias the first characters.
            if b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// Reads the JWT secret from `<data_dir>/jwt_secret`, creating it (mode 0600, 256 random bits,
/// hex) if it does not exist. Refuses a file that is too short.
pub fn load_or_create_jwt_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(JWT_SECRET_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim().as_bytes().to_vec();
            anyhow::ensure!(
                secret.len() >= 2 * JWT_SECRET_BYTES,
                "{} is shorter than 64 hex characters; delete it to generate a new one",
                path.display()
            );
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = hex::encode(random_bytes(JWT_SECRET_BYTES)?);
            write_private(&path, secret.as_bytes())?;
            Ok(secret.into_bytes())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// File in the data directory that holds the generated first-start password of `admin` until
/// that password has been used or changed (the Jenkins convention): it never goes to a log.
pub const INITIAL_ADMIN_PASSWORD_FILE: &str = "initial_admin_password";

/// Keeps the generated admin password in `<data_dir>/initial_admin_password` (0600).
pub fn keep_initial_admin_password(data_dir: &Path, password: &str) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(INITIAL_ADMIN_PASSWORD_FILE);
    // A file left by an earlier first start on a database that was deleted since is stale.
    let _ = fs::remove_file(&path);
    write_private(&path, format!("{password}\n").as_bytes())?;
    Ok(path)
}

/// Deletes the first-start password file once `admin` signed in or got another password.
/// Called with every user name; only `admin` counts. A missing file is the normal case.
pub fn forget_initial_admin_password(data_dir: &Path, username: &str) {
    if username != "admin" {
        return;
    }
    let path = data_dir.join(INITIAL_ADMIN_PASSWORD_FILE);
    match fs::remove_file(&path) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "deleted the first-start admin password file")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot delete the first-start admin password file")
        }
    }
}

/// Creates `path` with mode 0600 (fails if it exists) and writes `data`.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

type HmacSha256 = Hmac<Sha256>;

/// Keyed hash of a device password: `hmac-sha256$<salt hex>$<mac hex>`. Device passwords are
/// long random tokens, so a fast hash is enough (no argon2 on every MQTT connect).
pub fn hash_device_secret(password: &str) -> anyhow::Result<String> {
    let salt = random_bytes(16)?;
    let mac = device_mac(&salt, password.as_bytes());
    Ok(format!(
        "hmac-sha256${}${}",
        hex::encode(&salt),
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Iterations Mosquitto 2's `mosquitto_passwd` uses for `$7$` (PBKDF2-SHA512) hashes.
const MOSQUITTO_ITERATIONS: u32 = 101;

/// A device password in Mosquitto's password-file form, `$7$101$<salt b64>$<hash b64>`
/// (PBKDF2-SHA512, 12-byte salt, 64-byte hash), for `rzmon broker-config mosquitto`. Kept
/// because device passwords are shown only once.
pub fn mosquitto_hash(password: &str) -> anyhow::Result<String> {
    let salt = random_bytes(12)?;
    Ok(mosquitto_hash_with(password, &salt, MOSQUITTO_ITERATIONS))
}

fn mosquitto_hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, iterations, &mut out);
    format!(
        "$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(out)
    )
}

/// Constant-time check of a device password against `hash_device_secret`'s output.
pub fn verify_device_secret(password: &[u8], stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("hmac-sha256"), Some(salt), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(salt), Ok(expected)) = (hex::decode(salt), hex::decode(mac)) else {
        return false;
    };
    device_mac(&salt, password).verify_slice(&expected).is_ok()
}

fn device_mac(salt: &[u8], password: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(salt).unwrap_or_else(|_| unreachable!());
    mac.update(password);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_secret_round_trip_and_mismatch() {
        let h = hash_device_secret("s3cret-token").unwrap();
        assert!(verify_device_secret(b"s3cret-token", &h));
        assert!(!verify_device_secret(b"s3cret-tokem", &h));
        assert!(!verify_device_secret(b"s3cret-token", "garbage"));
        assert_ne!(h, hash_device_secret("s3cret-token").unwrap(), "salted");
    }

    #[test]
    fn passwords_are_random_alphanumerics() {
        let a = random_password(32).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_password(32).unwrap());
    }

    #[test]
    fn jwt_secret_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_jwt_secret(dir.path()).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(a, load_or_create_jwt_secret(dir.path()).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(JWT_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// Same bytes as `mosquitto_passwd` (2.0.11) wrote for alice / secret123.
    #[test]
    fn mosquitto_hash_matches_mosquitto_passwd() {
        use base64::Engine;
        let line = "$7$101$r1p9j3hsxV8kjTP6$Cv8dA7N3NzE+xUMLiPrWZPkJGuqsp13+mXCS5M2qm/slJqRqQN3DYG2jR/es+7fFH3vePHLSAP5CCEN3w56qXg==";
        let salt = base64::engine::general_purpose::STANDARD
            .decode("r1p9j3hsxV8kjTP6")
            .unwrap();
        assert_eq!(mosquitto_hash_with("secret123", &salt, 101), line);
        assert!(mosquitto_hash("x").unwrap().starts_with("$7$101$"));
    }
}
