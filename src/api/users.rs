//! User management for admins: `GET /users`, `POST /users`, `DELETE /users/{name}`,
//! `PUT /users/{name}/role`, `POST /users/{name}/password` (reset). Reads are open to every
//! signed-in user like every GET; the changes need `admin` (the route table's default). The last
//! admin can be neither removed nor demoted (409). Removing a user ends its sessions and API
//! tokens at once; a password reset ends its sessions. A generated password is in the answer
//! once and never stored in clear.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::routes::{Endpoints, Table, finish};
use super::{Shared, blocking, login};
use crate::auth::policy;
use crate::model::{AuditAction, Role, format_ts};
use crate::store::{StoreError, UserRow};
use serde::Deserialize;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

const EXPECTED_NEW: &str =
    r#"Send {"username": "...", "role": "admin" or "viewer", "password": "..." (optional)}."#;
const EXPECTED_ROLE: &str = r#"Send {"role": "admin"} or {"role": "viewer"}."#;
const EXPECTED_RESET: &str = r#"Send {} for a generated password or {"password": "..."}."#;

pub fn routes(t: &Table) -> Endpoints {
    let list = t.get("users").and(t.state()).then(list);
    let add = t
        .post("users")
        .and(t.json::<NewUser>(EXPECTED_NEW))
        .and(t.state())
        .then(add);
    let remove = t
        .protected_param(Method::DELETE, "users/{name}")
        .and(t.state())
        .then(remove);
    let role = t
        .protected_param(Method::PUT, "users/{name}/role")
        .and(t.json::<RoleChange>(EXPECTED_ROLE))
        .and(t.state())
        .then(set_role);
    let reset = t
        .protected_param(Method::POST, "users/{name}/password")
        .and(t.json::<Reset>(EXPECTED_RESET))
        .and(t.state())
        .then(reset);
    finish(list.or(add).or(remove).or(role).or(reset))
}

fn user_json(u: &UserRow) -> serde_json::Value {
    serde_json::json!({
        "username": u.username,
        "role": u.role,
        "created": format_ts(u.created_ms),
    })
}

async fn list(_user: Principal, state: Shared) -> Result<Response, ApiError> {
    let users = blocking(&state.ctx.store, |s| s.users()).await?;
    let users: Vec<_> = users.iter().map(user_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "users": users }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    role: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    password: Option<String>,
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    Role::parse(role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role must be \"admin\" or \"viewer\", not {role:?}."
        ))
    })
}

fn last_admin(name: &str, what: &str) -> ApiError {
    ApiError::Conflict(format!(
        "{name} is the last admin and cannot be {what}; make another user admin first."
    ))
}

/// The password to set: the one sent (checked against the policy) or a generated one, which
/// then goes into the answer (`Some`).
fn choose_password(sent: Option<String>) -> Result<(String, Option<String>), ApiError> {
    match sent {
        Some(p) => {
            policy::check_password(&p)
                .map_err(|rule| ApiError::bad_request(format!("The password {rule}.")))?;
            Ok((p, None))
        }
        None => {
            let p = crate::secrets::random_password(crate::secrets::USER_PASSWORD_LEN)
                .map_err(ApiError::internal)?;
            Ok((p.clone(), Some(p)))
        }
    }
}

async fn hash(state: &Shared, password: String) -> Result<String, ApiError> {
    state
        .hasher
        .run(move |_| crate::auth::hash_password(&password))
        .await
        .map_err(|_| login::busy())?
        .map_err(ApiError::internal)
}

async fn add(admin: Principal, req: NewUser, state: Shared) -> Result<Response, ApiError> {
    if !policy::username_ok(&req.username) {
        return Err(ApiError::bad_request(format!(
            "username must be {}.",
            policy::USERNAME_RULE
        )));
    }
    let role = parse_role(req.role.as_deref().unwrap_or("admin"))?;
    let (password, shown) = choose_password(req.password)?;
    let hash = hash(&state, password).await?;
    let name = req.username;
    let row = blocking(&state.ctx.store, move |s| {
        match s.create_user_as(&name, &hash, role) {
            Err(StoreError::Exists(_)) => return Ok(None),
            r => r?,
        }
        let detail = serde_json::json!({ "role": role });
        s.audit(&admin.username, AuditAction::UserAdd, &name, &detail)?;
        s.user(&name)
    })
    .await?
    .ok_or_else(|| ApiError::Conflict("A user with this name exists already.".into()))?;
    tracing::info!(username = %row.username, %role, "user added");
    let mut body = user_json(&row);
    if let Some(p) = shown {
        body["password"] = p.into();
    }
    Ok(json_response(StatusCode::CREATED, &body))
}

async fn remove(name: String, admin: Principal, state: Shared) -> Result<Response, ApiError> {
    let who = name.clone();
    let removed = blocking(&state.ctx.store, move |s| {
        let removed = match s.remove_user(&who) {
            Err(StoreError::LastAdmin(_)) => return Ok(Err(())),
            r => r?,
        };
        if removed {
            s.audit(
                &admin.username,
                AuditAction::UserRemove,
                &who,
                &serde_json::json!({}),
            )?;
        }
        Ok(Ok(removed))
    })
    .await?
    .map_err(|()| last_admin(&name, "removed"))?;
    if !removed {
        return Err(missing(&name));
    }
    tracing::info!(username = %name, "user removed; its sessions and API tokens ended");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "deleted": name }),
    ))
}

fn missing(name: &str) -> ApiError {
    ApiError::Missing(format!("There is no user {name:?}."))
}

async fn set_role(
    name: String,
    admin: Principal,
    req: RoleChange,
    state: Shared,
) -> Result<Response, ApiError> {
    let role = parse_role(&req.role)?;
    let who = name.clone();
    let row = blocking(&state.ctx.store, move |s| {
        match s.set_user_role(&who, role) {
            Err(StoreError::LastAdmin(_)) => return Ok(Err(())),
            Ok(false) => return Ok(Ok(None)),
            r => r?,
        };
        let detail = serde_json::json!({ "role": role });
        s.audit(&admin.username, AuditAction::UserRole, &who, &detail)?;
        Ok(Ok(s.user(&who)?))
    })
    .await?
    .map_err(|()| last_admin(&name, "demoted"))?
    .ok_or_else(|| missing(&name))?;
    tracing::info!(username = %name, %role, "role changed");
    Ok(json_response(StatusCode::OK, &user_json(&row)))
}

async fn reset(
    name: String,
    admin: Principal,
    req: Reset,
    state: Shared,
) -> Result<Response, ApiError> {
    let (password, shown) = choose_password(req.password)?;
    let hash = hash(&state, password).await?;
    let who = name.clone();
    let done = blocking(&state.ctx.store, move |s| {
        if !s.set_user_password(&who, &hash)? {
            return Ok(false);
        }
        s.audit(
            &admin.username,
            AuditAction::UserPasswordReset,
            &who,
            &serde_json::json!({}),
        )?;
        Ok(true)
    })
    .await?;
    if !done {
        return Err(missing(&name));
    }
    if let Some(dir) = state.ctx.store.path().parent() {
        crate::secrets::forget_initial_admin_password(dir, &name);
    }
    tracing::info!(username = %name, "password reset; the user's sessions ended");
    let mut body = serde_json::json!({ "username": name, "reset": true });
    if let Some(p) = shown {
        body["password"] = p.into();
    }
    Ok(json_response(StatusCode::OK, &body))
}
