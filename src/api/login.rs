//! `POST /login`: username and password → a bearer token. Unknown users and wrong passwords
//! answer alike (same sentence, same argon2 cost). Failures are counted per client IP (10 →
//! locked 5 minutes, even with the right password) and per account name, where they throttle
//! with a growing delay instead of locking, and never for an address that logged in to that
//! account before (`auth::throttle`). Hashing runs on the bounded `auth::hasher` threads; when
//! they are saturated the answer is 429 at once.

use super::error::{ApiError, json_response, retry_secs};
use super::routes::{Endpoints, Table, finish};
use super::{Shared, blocking};
use crate::auth::password::{DUMMY_PHC, verify_password_in};
use crate::auth::policy::IP_LOCK;
use crate::model::AuditAction;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

/// Account names longer than this are cut for the lockout key and the log.
const MAX_NAME_KEY: usize = 128;

pub const EXPECTED_BODY: &str = r#"Send a JSON object {"username": "...", "password": "..."}."#;
const BAD_LOGIN: &str = "Invalid username or password.";

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
    /// "Keep me signed in on this device": a token for `RZMON_REMEMBER_TTL`.
    #[serde(default)]
    remember: bool,
}

pub fn routes(t: &Table) -> Endpoints {
    finish(
        t.public(Method::POST, "login")
            .and(super::client_ip::peer())
            .and(warp::header::headers_cloned())
            .and(t.json::<LoginRequest>(EXPECTED_BODY))
            .and(t.state())
            .then(login),
    )
}

async fn login(
    remote: Option<SocketAddr>,
    headers: warp::http::HeaderMap,
    req: LoginRequest,
    state: Shared,
) -> Result<Response, ApiError> {
    let state = &state;
    // The lockout, audit and log address: the peer, or what a trusted proxy says.
    let client = super::client_ip::client_ip(remote, &headers, &state.ctx.config.trusted_proxies)
        .map(|ip| SocketAddr::new(ip, 0));
    let ip = client_key(client);
    let account: String = req.username.chars().take(MAX_NAME_KEY).collect();
    if let Some(left) = state.ip_lockout.locked(&ip) {
        return Err(locked("Too many failed logins from your address.", left));
    }
    if let Err(wait) = state.account_throttle.check(&account, ip) {
        return Err(locked("Too many failed logins for this account.", wait));
    }

    if !password_matches(state, req.username.clone(), req.password).await? {
        state.ctx.metrics.http_logins_failed.inc();
        tracing::warn!(%ip, username = ?account, "HTTP login failed");
        if state.ip_lockout.fail(&ip).is_some() {
            tracing::warn!(%ip, minutes = IP_LOCK.as_secs() / 60, "address locked out after failed logins");
        }
        let delay = state.account_throttle.fail(&account);
        if delay == Duration::from_secs(1) {
            tracing::warn!(username = ?account, "account throttled after failed logins (known addresses are not)");
        }
        return Err(ApiError::Unauthorized(BAD_LOGIN));
    }

    state.ip_lockout.succeed(&ip);
    state.account_throttle.succeed(&account, ip);
    tracing::info!(%ip, username = ?account, "HTTP login");
    if let Some(dir) = state.ctx.store.path().parent() {
        crate::secrets::forget_initial_admin_password(dir, &req.username);
    }
    let (user, detail) = (
        req.username.clone(),
        serde_json::json!({ "ip": ip.to_string() }),
    );
    let row = super::blocking(&state.ctx.store, move |s| {
        s.audit(&user, AuditAction::Login, &user, &detail)?;
        s.user(&user)
    })
    .await?
    .ok_or(ApiError::Unauthorized(BAD_LOGIN))?;
    let ttl = if req.remember {
        state.ctx.config.remember_ttl
    } else {
        state.keys.ttl()
    };
    let token = issue(state, &row, ttl)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs().max(1),
            "remember": req.remember,
            "username": row.username,
            "role": row.role,
        }),
    ))
}

/// A new token for `user` under its current token generation, valid for `ttl`.
pub(super) fn issue(
    state: &Shared,
    user: &crate::store::UserRow,
    ttl: Duration,
) -> Result<String, ApiError> {
    let (token, _) = state
        .keys
        .issue_for(&user.username, user.uid, user.token_gen, ttl)
        .map_err(ApiError::internal)?;
    Ok(token)
}

/// Checks the password on the hashing threads; 429 at once when they are saturated. An unknown
/// user is verified against a dummy hash so the answer takes as long as a wrong password.
pub(super) async fn password_matches(
    state: &Shared,
    username: String,
    password: String,
) -> Result<bool, ApiError> {
    let hash = blocking(&state.ctx.store, move |store| {
        Ok(store.user(&username)?.map(|u| u.password_hash))
    })
    .await?;
    state
        .hasher
        .run(move |memory| match hash {
            Some(phc) => verify_password_in(&password, &phc, memory),
            None => {
                verify_password_in(&password, DUMMY_PHC, memory);
                false
            }
        })
        .await
        .map_err(|_| busy())
}

/// The answer when the hashing queue is full.
pub(super) fn busy() -> ApiError {
    ApiError::TooManyRequests {
        message: "Too many logins at once; try again in a second.".into(),
        retry_after: Duration::from_secs(1),
    }
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
