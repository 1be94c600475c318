//! `POST /logout`: ends the token it was called with; `POST /logout/all` ("sign out
//! everywhere"): ends every token of the user. Both take effect at once on every route and on
//! open WebSockets (see `auth_filter`).

use super::auth_filter::Principal;
use super::error::{json_response, respond};
use super::{Shared, blocking};
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn logout(user: Principal, state: Shared) -> Response {
    let (jti, exp, name) = (user.jti.clone(), user.exp, user.username.clone());
    respond(
        blocking(&state.ctx.store, move |s| {
            s.revoke_token(&jti, exp, jsonwebtoken::get_current_timestamp())?;
            s.audit(&name, "logout", &name, &serde_json::json!({}))
        })
        .await
        .map(|()| {
            tracing::info!(username = %user.username, "logged out");
            json_response(StatusCode::OK, &serde_json::json!({ "ended": 1 }))
        }),
    )
}

pub async fn logout_all(user: Principal, state: Shared) -> Response {
    let name = user.username.clone();
    respond(
        blocking(&state.ctx.store, move |s| {
            s.end_sessions(&name)?;
            s.audit(&name, "logoutEverywhere", &name, &serde_json::json!({}))
        })
        .await
        .map(|()| {
            tracing::info!(username = %user.username, "signed out everywhere");
            json_response(StatusCode::OK, &serde_json::json!({ "ended": "all" }))
        }),
    )
}
