//! Bearer authentication for protected routes: the `Authorization: Bearer <jwt>` header is
//! verified (HS256 only, `exp` required) and the token must still stand for a session: its user
//! exists with the same id (never reused), the same token generation (a password change or
//! "sign out everywhere" bumps it), and the token was not ended by logout. Checked on every
//! request, so all of these take effect at once. Failures are 401 rejections with `WWW-Authenticate: Bearer`.
//! A bearer value starting `rzm_` is a long-lived API token instead (`auth::api_token`): it
//! stands while its row exists and its owner does; it acts with the weaker of its own role and
//! the owner's current one. The role is read from the database on every request, so a demotion
//! takes effect at once.

use super::error::ApiError;
use super::{Shared, blocking, with_state};
use crate::auth::api_token;
use crate::auth::jwt::{JwtKeys, TokenError};
use crate::model::Role;
use warp::http::{HeaderMap, header};
use warp::{Filter, Rejection};

const MISSING: &str = "Log in first: send the header Authorization: Bearer <access_token>.";
const MISSING_SERVICE: &str =
    "Send the header Authorization: Bearer <RZMON_METRICS_TOKEN> (or a login token).";
const MALFORMED: &str = "The Authorization header must look like: Bearer <access_token>.";
const INVALID: &str = "The access token is invalid; log in again.";
const EXPIRED: &str = "The access token has expired; log in again.";
const GONE: &str = "The account of this access token no longer exists.";
const ENDED: &str = "This session has ended (password change or sign-out); log in again.";
const UNKNOWN_API_TOKEN: &str = "The API token is unknown or was revoked.";

/// The logged-in user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub created_ms: i64,
    /// Token expiry, seconds since the Unix epoch (a WebSocket is closed then).
    pub exp: u64,
    pub uid: i64,
    pub tgen: i64,
    /// The token's id (what logout ends).
    pub jti: String,
    /// What the caller may do (`routes::Access`).
    pub role: Role,
    /// The id of the API token the request came with; `None` for a login session.
    pub api_token: Option<i64>,
}

/// Extracts the `Principal` or rejects with 401.
pub fn authenticated(
    state: Shared,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(with_state(state))
        .and_then(|headers: HeaderMap, state: Shared| async move {
            let token = bearer_token(&headers)?.ok_or(ApiError::Unauthorized(MISSING))?;
            authenticate(&state, token)
                .await
                .map_err(warp::reject::custom)
        })
}

/// Accepts the fixed `service` token (compared as SHA-256 digests, so the time taken says
/// nothing about the token) or a login token, else rejects with 401.
pub fn service_or_session(
    state: Shared,
    service: Option<crate::config::Secret>,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    use sha2::{Digest, Sha256};
    let service = service.map(|s| Sha256::digest(s.expose().as_bytes()));
    warp::header::headers_cloned()
        .and(with_state(state))
        .and_then(move |headers: HeaderMap, state: Shared| async move {
            let token = bearer_token(&headers)?.ok_or(ApiError::Unauthorized(MISSING_SERVICE))?;
            if service.is_some_and(|digest| Sha256::digest(token.as_bytes()) == digest) {
                return Ok(());
            }
            authenticate(&state, token)
                .await
                .map(drop)
                .map_err(warp::reject::custom)
        })
        .untuple_one()
}

/// The token of an `Authorization: Bearer` header; `Ok(None)` when there is no header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized(MALFORMED))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(ApiError::Unauthorized(MALFORMED))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthorized(MALFORMED));
    }
    Ok(Some(token))
}

/// Checks the token's signature and expiry only.
pub fn check_token(keys: &JwtKeys, token: &str) -> Result<crate::auth::jwt::Claims, ApiError> {
    keys.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::Unauthorized(EXPIRED),
        TokenError::Invalid => ApiError::Unauthorized(INVALID),
    })
}

/// A valid token whose session has not ended, or a stored API token.
pub async fn authenticate(state: &Shared, token: &str) -> Result<Principal, ApiError> {
    if api_token::is_api_token(token) {
        return api_principal(state, token).await;
    }
    let claims = check_token(&state.keys, token)?;
    let (user, revoked) = lookup(state, &claims.sub, &claims.jti).await?;
    let user = user.ok_or(ApiError::Unauthorized(GONE))?;
    if user.uid != claims.uid {
        return Err(ApiError::Unauthorized(GONE));
    }
    if user.token_gen != claims.tgen || revoked {
        return Err(ApiError::Unauthorized(ENDED));
    }
    Ok(Principal {
        username: user.username,
        created_ms: user.created_ms,
        exp: claims.exp,
        uid: claims.uid,
        tgen: claims.tgen,
        jti: claims.jti,
        role: user.role,
        api_token: None,
    })
}

async fn api_principal(state: &Shared, token: &str) -> Result<Principal, ApiError> {
    let hash = api_token::hash(token);
    let (token, user) = blocking(&state.ctx.store, move |s| s.api_token_by_hash(&hash))
        .await?
        .ok_or(ApiError::Unauthorized(UNKNOWN_API_TOKEN))?;
    Ok(Principal {
        username: user.username,
        created_ms: user.created_ms,
        exp: u64::MAX,
        uid: user.uid,
        tgen: user.token_gen,
        jti: format!("api-token-{}", token.id),
        role: token.role.min(user.role),
        api_token: Some(token.id),
    })
}

/// The token's user (if any) and whether the token was logged out: one blocking call.
async fn lookup(
    state: &Shared,
    username: &str,
    jti: &str,
) -> Result<(Option<crate::store::UserRow>, bool), ApiError> {
    let (username, jti) = (username.to_owned(), jti.to_owned());
    blocking(&state.ctx.store, move |s| {
        Ok((s.user(&username)?, s.token_revoked(&jti)?))
    })
    .await
}

/// True while the session of `p` stands (the user, its id and generation unchanged, the token
/// not logged out). Open WebSockets ask this every `ws::SESSION_CHECK`.
pub async fn session_stands(state: &Shared, p: &Principal) -> Result<bool, ApiError> {
    if let Some(id) = p.api_token {
        let uid = p.uid;
        return blocking(&state.ctx.store, move |s| s.api_token_exists(id, uid)).await;
    }
    let (user, revoked) = lookup(state, &p.username, &p.jti).await?;
    Ok(!revoked && user.is_some_and(|u| u.uid == p.uid && u.token_gen == p.tgen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header value"));
        h
    }

    /// The bearer scheme is case-insensitive; other schemes and empty tokens are refused.
    #[test]
    fn bearer_extraction() {
        assert_eq!(bearer_token(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(bearer_token(&headers("Bearer abc")).ok(), Some(Some("abc")));
        assert_eq!(
            bearer_token(&headers("bearer  abc ")).ok(),
            Some(Some("abc"))
        );
        for bad in ["Basic YWRtaW46eA==", "Bearer", "Bearer ", "abc"] {
            assert!(bearer_token(&headers(bad)).is_err(), "{bad:?}");
        }
    }

    /// Expired and invalid tokens get different sentences, both 401.
    #[test]
    fn token_errors_are_401() {
        let keys = JwtKeys::new(&[7; 32], Duration::from_secs(60)).expect("keys");
        let (token, claims) = keys.issue("admin", 1, 0).expect("issue");
        assert_eq!(check_token(&keys, &token).ok(), Some(claims));
        match check_token(&keys, "garbage") {
            Err(e @ ApiError::Unauthorized(INVALID)) => assert_eq!(e.status().as_u16(), 401),
            other => panic!("{other:?}"),
        }
    }
}
