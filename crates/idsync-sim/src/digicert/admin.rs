//! The control routes under `/_sim/`: the same levers as [`DigicertControl`], over HTTP, for
//! tests that drive the simulator from another process. They need no key, are not rate
//! limited, not delayed and not counted. The levers every simulator has (key, latency, rate
//! windows, faults, counters) come from [`crate::control`]; the user routes are here.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::api::Reply;
use super::{ControlError, DigicertControl, UserSpec};
use crate::control::{self, body, done, SimLevers};

/// The control routes, to be given the control handle as state.
pub(super) fn routes() -> Router<DigicertControl> {
    control::routes::<DigicertControl>()
        .route("/_sim/users", get(list_users).post(add_user))
        .route("/_sim/users/{id}", get(get_user).delete(remove_user))
        .route("/_sim/users/{id}/status", post(set_status))
}

impl SimLevers for DigicertControl {
    type Refusal = Reply;
    const NAME: &'static str = "digicert";

    fn revoke(&self) {
        self.revoke_key();
    }

    fn restore(&self) {
        self.restore_key();
    }

    fn refusal(error: ControlError) -> Reply {
        refused(error)
    }

    fn bad_request(message: &str) -> Reply {
        Reply::error(400, "bad_request_format", message)
    }
}

fn refused(error: ControlError) -> Reply {
    match error {
        ControlError::UnknownUser(id) => {
            Reply::error(404, "not_found", &format!("No user with id {id}."))
        }
        ControlError::Invalid(errors) => Reply::errors(400, &errors),
    }
}

#[derive(Deserialize)]
struct UsersQuery {
    username: Option<String>,
}

async fn list_users(
    State(control): State<DigicertControl>,
    Query(query): Query<UsersQuery>,
) -> Response {
    match query.username {
        Some(username) => Json(control.find_user(&username).into_iter().collect::<Vec<_>>()),
        None => Json(control.users()),
    }
    .into_response()
}

async fn get_user(State(control): State<DigicertControl>, Path(id): Path<u64>) -> Response {
    match control.user(id) {
        Some(user) => Json(user).into_response(),
        None => refused(ControlError::UnknownUser(id)).into_response(),
    }
}

async fn add_user(State(control): State<DigicertControl>, bytes: Bytes) -> Response {
    let spec = match body::<DigicertControl, UserSpec>(&bytes) {
        Ok(spec) => spec,
        Err(refusal) => return refusal.into_response(),
    };
    match control.add_user(spec) {
        Ok(id) => {
            tracing::debug!(action = "add_user", id, "DigiCert simulator control.");
            (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response()
        }
        Err(error) => refused(error).into_response(),
    }
}

async fn remove_user(State(control): State<DigicertControl>, Path(id): Path<u64>) -> Response {
    if control.remove_user(id) {
        done::<DigicertControl>("remove_user")
    } else {
        refused(ControlError::UnknownUser(id)).into_response()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

async fn set_status(
    State(control): State<DigicertControl>,
    Path(id): Path<u64>,
    bytes: Bytes,
) -> Response {
    let request = match body::<DigicertControl, StatusBody>(&bytes) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    match control.set_user_status(id, &request.status) {
        Ok(()) => done::<DigicertControl>("set_status"),
        Err(error) => refused(error).into_response(),
    }
}
