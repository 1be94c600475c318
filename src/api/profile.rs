//! `GET /user/profile`: the logged-in user → `{"username","role","created"}`;
//! `POST /user/password`: change the own password (the current one is required). Every token of
//! the user ends; the answer carries a fresh one for the session that made the change.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::routes::{Endpoints, Table, finish};
use super::{Shared, blocking, login};
use crate::auth::policy;
use crate::model::{AuditAction, format_ts};
use serde::Deserialize;
use std::time::Duration;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

const EXPECTED_PASSWORD_BODY: &str = r#"Send {"current_password": "...", "new_password": "..."}."#;

pub fn routes(t: &Table) -> Endpoints {
    let profile = t.get("user/profile").then(profile);
    let password = t
        .signed_in(Method::POST, "user/password")
        .and(t.json::<PasswordChange>(EXPECTED_PASSWORD_BODY))
        .and(t.state())
        .then(change);
    finish(profile.or(password))
}

async fn profile(user: Principal) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "username": user.username,
            "role": user.role,
            "created": format_ts(user.created_ms),
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn change(user: Principal, req: PasswordChange, state: Shared) -> Result<Response, ApiError> {
    let state = &state;
    if let Err(rule) = policy::check_password(&req.new_password) {
        return Err(ApiError::bad_request(format!("The new password {rule}.")));
    }
    if let Some(left) = state.account_lockout.locked(&user.username) {
        return Err(login::locked(
            "This account is locked after too many failed attempts.",
            left,
        ));
    }
    if !login::password_matches(state, user.username.clone(), req.current_password).await? {
        state.account_lockout.fail(&user.username);
        // 403, not 401: the session is fine, only the confirmation was wrong.
        return Err(ApiError::Forbidden("The current password is wrong."));
    }
    let new = req.new_password;
    let hash = state
        .hasher
        .run(move |_| crate::auth::hash_password(&new))
        .await
        .map_err(|_| login::busy())?
        .map_err(ApiError::internal)?;
    let name = user.username.clone();
    let row = blocking(&state.ctx.store, move |s| {
        s.set_user_password(&name, &hash)?;
        s.audit(
            &name,
            AuditAction::PasswordChange,
            &name,
            &serde_json::json!({}),
        )?;
        s.user(&name)
    })
    .await?
    .ok_or(ApiError::Unauthorized("The account no longer exists."))?;
    tracing::info!(username = %user.username, "password changed; all sessions ended");
    if let Some(dir) = state.ctx.store.path().parent() {
        crate::secrets::forget_initial_admin_password(dir, &user.username);
    }
    // The new token lives as long as the session that asked would have (a "keep me signed in"
    // session stays one), at least a normal session, at most a remembered one.
    let left = user
        .exp
        .saturating_sub(jsonwebtoken::get_current_timestamp());
    let ttl = Duration::from_secs(left).clamp(
        state.keys.ttl(),
        state.ctx.config.remember_ttl.max(state.keys.ttl()),
    );
    let token = login::issue(state, &row, ttl)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "changed": true,
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs().max(1),
        }),
    ))
}
