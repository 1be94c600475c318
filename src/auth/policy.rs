//! The password, lockout and secret rules, each defined once: the CLI, the API, the MQTT gate
//! and the settings parser all read them from here.

use std::time::Duration;

/// Shortest password accepted for a dashboard user (CLI, API, `RZMON_ADMIN_PASSWORD`).
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (argon2 hashes anything, but a megabyte password is an attack).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Shortest JWT secret accepted: 32 bytes = 256 bits, the HMAC-SHA256 output size. Generated
/// secrets have exactly this many random bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Failed logins from one IP address (HTTP and MQTT alike) before it is locked out...
pub const IP_MAX_FAILURES: u32 = 10;
/// ...for this long.
pub const IP_LOCK: Duration = Duration::from_secs(5 * 60);
/// Wrong current passwords in `POST /user/password` for one user before its password changes
/// are locked (logins are throttled per account instead, see `auth::throttle`)...
pub const ACCOUNT_MAX_FAILURES: u32 = 10;
/// ...for this long.
pub const ACCOUNT_LOCK: Duration = Duration::from_secs(15 * 60);

/// `Err(predicate)` unless `password` has an acceptable length; the caller names the subject:
/// "The new password {predicate}.".
pub fn check_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err(format!(
            "must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"
        ))
    }
}

/// The user-name rule as a sentence fragment.
pub const USERNAME_RULE: &str = "1-64 characters of A-Z a-z 0-9 . _ - @";

/// Whether `name` is a valid dashboard user name (`USERNAME_RULE`).
pub fn username_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_length_bounds_are_inclusive() {
        assert!(check_password(&"x".repeat(MIN_PASSWORD_LEN - 1)).is_err());
        assert!(check_password(&"x".repeat(MIN_PASSWORD_LEN)).is_ok());
        assert!(check_password(&"ü".repeat(MAX_PASSWORD_LEN)).is_ok());
        let e = check_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).unwrap_err();
        assert!(e.contains("8 to 1024"), "{e}");
    }
}
