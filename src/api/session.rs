//! `POST /logout`: ends the token it was called with; `POST /logout/all` ("sign out
//! everywhere"): ends every token of the user. Both take effect at once on every route and on
//! open WebSockets (see `auth_filter`). Both are open to every signed-in user (viewers too).
//! Called with an API token, `/logout` revokes that token.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::routes::{Endpoints, Table, finish};
use super::{Shared, blocking};
use crate::model::AuditAction;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

pub fn routes(t: &Table) -> Endpoints {
    let logout = t
        .signed_in(Method::POST, "logout")
        .and(t.state())
        .then(logout);
    let all = t
        .signed_in(Method::POST, "logout/all")
        .and(t.state())
        .then(logout_all);
    finish(logout.or(all))
}

async fn logout(user: Principal, state: Shared) -> Result<Response, ApiError> {
    let (jti, exp, name) = (user.jti.clone(), user.exp, user.username.clone());
    let (api_token, uid) = (user.api_token, user.uid);
    blocking(&state.ctx.store, move |s| {
        match api_token {
            Some(id) => {
                s.remove_api_token(id, uid)?;
            }
            None => s.revoke_token(&jti, exp, jsonwebtoken::get_current_timestamp())?,
        }
        s.audit(&name, AuditAction::Logout, &name, &serde_json::json!({}))
    })
    .await?;
    tracing::info!(username = %user.username, "logged out");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "ended": 1 }),
    ))
}

async fn logout_all(user: Principal, state: Shared) -> Result<Response, ApiError> {
    let name = user.username.clone();
    blocking(&state.ctx.store, move |s| {
        s.end_sessions(&name)?;
        s.audit(
            &name,
            AuditAction::LogoutEverywhere,
            &name,
            &serde_json::json!({}),
        )
    })
    .await?;
    tracing::info!(username = %user.username, "signed out everywhere");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "ended": "all" }),
    ))
}
