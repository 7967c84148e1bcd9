//! The control routes under `/_sim/`: the same levers as [`JamaControl`], over HTTP, for
//! tests and scripts that drive the simulator from another process. They need no token, are
//! not rate limited, not delayed and not counted. The levers every simulator has come from
//! [`crate::control`]; the token, user and group routes are here. Errors use the API's
//! `meta` body.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::api::Reply;
use super::{JamaControl, JamaControlError, JamaUserSpec};
use crate::control::{self, body, done, SimLevers};

/// The control routes, to be given the control handle as state.
pub(super) fn routes() -> Router<JamaControl> {
    control::routes::<JamaControl>()
        .route("/_sim/token_lifetime", post(token_lifetime))
        .route("/_sim/expire_tokens", post(expire_tokens))
        .route("/_sim/users", get(list_users).post(add_user))
        .route("/_sim/users/{id}", get(get_user).delete(remove_user))
        .route("/_sim/users/{id}/active", post(set_active))
        .route("/_sim/users/{id}/hide", post(hide_user))
        .route("/_sim/users/{id}/unhide", post(unhide_user))
        .route("/_sim/groups", get(list_groups))
        .route(
            "/_sim/groups/{id}/members",
            get(list_members).post(add_member),
        )
        .route("/_sim/groups/{id}/members/{user}", delete(remove_member))
}

impl SimLevers for JamaControl {
    type Refusal = Reply;
    const NAME: &'static str = "jama";

    fn revoke(&self) {
        self.revoke_credentials();
    }

    fn restore(&self) {
        self.restore_credentials();
    }

    fn refusal(error: JamaControlError) -> Reply {
        refused(error)
    }

    fn bad_request(message: &str) -> Reply {
        Reply::error(400, message)
    }
}

fn refused(error: JamaControlError) -> Reply {
    let status = match error {
        JamaControlError::UnknownUser(_) | JamaControlError::UnknownGroup(_) => 404,
        JamaControlError::Invalid(_) => 400,
    };
    Reply::error(status, &error.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LifetimeBody {
    secs: u64,
}

async fn token_lifetime(State(control): State<JamaControl>, bytes: Bytes) -> Response {
    match body::<JamaControl, LifetimeBody>(&bytes) {
        Ok(lifetime) => {
            control.set_token_lifetime(Duration::from_secs(lifetime.secs));
            done::<JamaControl>("token_lifetime")
        }
        Err(refusal) => refusal.into_response(),
    }
}

async fn expire_tokens(State(control): State<JamaControl>) -> Response {
    control.expire_tokens();
    done::<JamaControl>("expire_tokens")
}

#[derive(Deserialize)]
struct UsersQuery {
    username: Option<String>,
}

async fn list_users(
    State(control): State<JamaControl>,
    Query(query): Query<UsersQuery>,
) -> Response {
    match query.username {
        Some(username) => Json(control.find_user(&username).into_iter().collect::<Vec<_>>()),
        None => Json(control.users()),
    }
    .into_response()
}

async fn get_user(State(control): State<JamaControl>, Path(id): Path<u64>) -> Response {
    match control.user(id) {
        Some(user) => Json(user).into_response(),
        None => refused(JamaControlError::UnknownUser(id)).into_response(),
    }
}

async fn add_user(State(control): State<JamaControl>, bytes: Bytes) -> Response {
    let spec = match body::<JamaControl, JamaUserSpec>(&bytes) {
        Ok(spec) => spec,
        Err(refusal) => return refusal.into_response(),
    };
    match control.add_user(spec) {
        Ok(id) => {
            tracing::debug!(action = "add_user", id, "Jama simulator control.");
            (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response()
        }
        Err(error) => refused(error).into_response(),
    }
}

async fn remove_user(State(control): State<JamaControl>, Path(id): Path<u64>) -> Response {
    if control.remove_user(id) {
        done::<JamaControl>("remove_user")
    } else {
        refused(JamaControlError::UnknownUser(id)).into_response()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActiveBody {
    active: bool,
}

async fn set_active(
    State(control): State<JamaControl>,
    Path(id): Path<u64>,
    bytes: Bytes,
) -> Response {
    let request = match body::<JamaControl, ActiveBody>(&bytes) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    match control.set_active(id, request.active) {
        Ok(()) => done::<JamaControl>("set_active"),
        Err(error) => refused(error).into_response(),
    }
}

async fn hide_user(State(control): State<JamaControl>, Path(id): Path<u64>) -> Response {
    if control.hide_user(id) {
        done::<JamaControl>("hide_user")
    } else {
        refused(JamaControlError::UnknownUser(id)).into_response()
    }
}

async fn unhide_user(State(control): State<JamaControl>, Path(id): Path<u64>) -> Response {
    if control.unhide_user(id) {
        done::<JamaControl>("unhide_user")
    } else {
        refused(JamaControlError::UnknownUser(id)).into_response()
    }
}

async fn list_groups(State(control): State<JamaControl>) -> Response {
    Json(control.groups()).into_response()
}

async fn list_members(State(control): State<JamaControl>, Path(id): Path<u64>) -> Response {
    match control.members(id) {
        Some(members) => Json(members).into_response(),
        None => refused(JamaControlError::UnknownGroup(id)).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    user: u64,
}

async fn add_member(
    State(control): State<JamaControl>,
    Path(group): Path<u64>,
    bytes: Bytes,
) -> Response {
    let request = match body::<JamaControl, MemberBody>(&bytes) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    match control.add_member(group, request.user) {
        Ok(_) => done::<JamaControl>("add_member"),
        Err(error) => refused(error).into_response(),
    }
}

async fn remove_member(
    State(control): State<JamaControl>,
    Path((group, user)): Path<(u64, u64)>,
) -> Response {
    match control.remove_member(group, user) {
        Ok(_) => done::<JamaControl>("remove_member"),
        Err(error) => refused(error).into_response(),
    }
}
