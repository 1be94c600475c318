//! `POST /login`: username and password → a bearer token. Unknown users and wrong passwords
//! answer alike (same sentence, same argon2 cost). Failures are counted per client IP (10 →
//! locked 5 minutes) and per account name (100 → locked 15 minutes, so many IPs cannot guess one
//! password); a locked key is refused even with the right password; a success resets both.

use super::error::{ApiError, json_response, respond, retry_secs};
use super::{Shared, blocking};
use crate::auth::password::{DUMMY_PHC, verify_password};
use crate::auth::policy::{ACCOUNT_LOCK, IP_LOCK};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use warp::http::StatusCode;
use warp::reply::Response;

/// Account names longer than this are cut for the lockout key and the log.
const MAX_NAME_KEY: usize = 128;

pub const EXPECTED_BODY: &str = r#"Send a JSON object {"username": "...", "password": "..."}."#;
const BAD_LOGIN: &str = "Invalid username or password.";

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
}

pub async fn handle(remote: Option<SocketAddr>, req: LoginRequest, state: Shared) -> Response {
    respond(login(remote, req, &state).await)
}

async fn login(
    remote: Option<SocketAddr>,
    req: LoginRequest,
    state: &Shared,
) -> Result<Response, ApiError> {
    let ip = client_key(remote);
    let account: String = req.username.chars().take(MAX_NAME_KEY).collect();
    if let Some(left) = state.ip_lockout.locked(&ip) {
        return Err(locked("Too many failed logins from your address.", left));
    }
    if let Some(left) = state.account_lockout.locked(&account) {
        return Err(locked("Too many failed logins for this account.", left));
    }

    if !password_matches(state, req.username.clone(), req.password).await? {
        state.ctx.metrics.http_logins_failed.inc();
        tracing::warn!(%ip, username = ?account, "HTTP login failed");
        if state.ip_lockout.fail(&ip).is_some() {
            tracing::warn!(%ip, minutes = IP_LOCK.as_secs() / 60, "address locked out after failed logins");
        }
        if state.account_lockout.fail(&account).is_some() {
            tracing::warn!(username = ?account, minutes = ACCOUNT_LOCK.as_secs() / 60, "account locked out after failed logins");
        }
        return Err(ApiError::Unauthorized(BAD_LOGIN));
    }

    state.ip_lockout.succeed(&ip);
    state.account_lockout.succeed(&account);
    let (token, _) = state
        .keys
        .issue(&req.username)
        .map_err(ApiError::internal)?;
    tracing::info!(%ip, username = ?account, "HTTP login");
    let (user, detail) = (
        req.username.clone(),
        serde_json::json!({ "ip": ip.to_string() }),
    );
    super::blocking(&state.ctx.store, move |s| {
        s.audit(&user, "login", &user, &detail)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": state.keys.ttl().as_secs().max(1),
        }),
    ))
}

/// Checks the password in the blocking pool, at most `MAX_PASSWORD_CHECKS` at a time. An
/// unknown user is verified against a dummy hash so the answer takes as long as a wrong password.
pub(super) async fn password_matches(
    state: &Shared,
    username: String,
    password: String,
) -> Result<bool, ApiError> {
    let _permit = state
        .password_checks
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    blocking(&state.ctx.store, move |store| {
        Ok(match store.user(&username)? {
            Some(user) => verify_password(&password, &user.password_hash),
            None => {
                verify_password(&password, DUMMY_PHC);
                false
            }
        })
    })
    .await
}

pub(super) fn locked(why: &str, left: Duration) -> ApiError {
    let secs = retry_secs(left);
    let when = if secs > 90 {
        format!("{} minutes", secs.div_ceil(60))
    } else {
        format!("{secs} seconds")
    };
    ApiError::TooManyRequests {
        message: format!("{why} Try again in {when}."),
        retry_after: left,
    }
}

/// The lockout key of a client: its IP, with IPv4-mapped IPv6 unwrapped and other IPv6
/// addresses reduced to their /64 (one host usually owns a whole /64).
pub fn client_key(remote: Option<SocketAddr>) -> IpAddr {
    match remote.map(|a| a.ip().to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        Some(v4) => v4,
        None => IpAddr::from([0, 0, 0, 0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 keys are exact; mapped IPv6 becomes IPv4; IPv6 hosts share their /64.
    #[test]
    fn lockout_keys() {
        let v4: SocketAddr = "192.0.2.7:5000".parse().expect("addr");
        assert_eq!(
            client_key(Some(v4)),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:5000".parse().expect("addr");
        assert_eq!(
            client_key(Some(mapped)),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:1".parse().expect("addr");
        let b: SocketAddr = "[2001:db8:1:2:bbbb::2]:1".parse().expect("addr");
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
    }

    /// The lockout sentence says when to retry, in minutes for long waits.
    #[test]
    fn lockout_sentence() {
        let e = locked("Too many failed logins from your address.", IP_LOCK);
        assert_eq!(
            e.to_string(),
            "Too many failed logins from your address. Try again in 5 minutes."
        );
        assert_eq!(e.status().as_u16(), 429);
        assert!(
            locked("x", Duration::from_secs(30))
                .to_string()
                .ends_with("30 seconds.")
        );
    }

    /// The seed's rule wired through `Lockout`: the 10th failure locks, the right password
    /// would then be refused until the lock ends, and a success resets the count.
    #[test]
    fn ip_lockout_wiring() {
        use crate::auth::policy::IP_MAX_FAILURES;
        let l = crate::lockout::Lockout::new(IP_MAX_FAILURES, IP_LOCK);
        let ip = client_key(Some("192.0.2.7:1".parse().expect("addr")));
        let other = client_key(Some("192.0.2.8:1".parse().expect("addr")));
        for _ in 0..IP_MAX_FAILURES - 1 {
            assert!(l.fail(&ip).is_none());
        }
        assert!(l.locked(&ip).is_none());
        assert_eq!(l.fail(&ip), Some(IP_LOCK));
        assert!(l.locked(&ip).is_some());
        assert!(l.locked(&other).is_none());
    }
}
