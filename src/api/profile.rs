//! `GET /user/profile`: the logged-in user → `{"username","created"}`;
//! `POST /user/password`: change the own password (the current one is required).

use super::auth_filter::Principal;
use super::error::{ApiError, json_response, respond};
use super::{Shared, blocking, login};
use crate::auth::policy;
use crate::model::format_ts;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

pub const EXPECTED_PASSWORD_BODY: &str =
    r#"Send {"current_password": "...", "new_password": "..."}."#;

pub async fn handle(user: Principal) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "username": user.username,
            "created": format_ts(user.created_ms),
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub async fn change_password(user: Principal, req: PasswordChange, state: Shared) -> Response {
    respond(change(user, req, &state).await)
}

async fn change(
    user: Principal,
    req: PasswordChange,
    state: &Shared,
) -> Result<Response, ApiError> {
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
    let (name, new) = (user.username.clone(), req.new_password);
    blocking(&state.ctx.store, move |s| {
        let hash = crate::auth::hash_password(&new)
            .map_err(|e| crate::store::StoreError::Task(e.to_string()))?;
        s.set_user_password(&name, &hash)?;
        s.audit(&name, "passwordChange", &name, &serde_json::json!({}))
    })
    .await?;
    tracing::info!(username = %user.username, "password changed");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "changed": true }),
    ))
}
