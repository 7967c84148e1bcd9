//! The control routes under `/_sim/`: the same levers as [`DigicertControl`], over HTTP, for
//! tests that drive the simulator from another process. They need no key, are not rate
//! limited, not delayed and not counted.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::api::Reply;
use super::{ControlError, DigicertControl, UserSpec};
use crate::sim::faults::FaultRule;
use crate::sim::ratelimit::RateWindow;

/// The control routes, to be given the control handle as state.
pub(super) fn routes() -> Router<DigicertControl> {
    Router::new()
        .route("/_sim/revoke", post(revoke))
        .route("/_sim/restore", post(restore))
        .route("/_sim/latency", post(latency))
        .route("/_sim/rate_limits", post(rate_limits))
        .route("/_sim/fail_next", post(fail_next))
        .route(
            "/_sim/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_sim/stats", get(stats).delete(reset_stats))
        .route("/_sim/users", get(list_users).post(add_user))
        .route("/_sim/users/{id}", get(get_user).delete(remove_user))
        .route("/_sim/users/{id}/status", post(set_status))
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(bytes).map_err(|error| {
        Reply::error(
            400,
            "bad_request_format",
            &format!("The request body is not valid here: {error}"),
        )
    })
}

fn refused(error: ControlError) -> Response {
    match error {
        ControlError::UnknownUser(id) => {
            Reply::error(404, "not_found", &format!("No user with id {id}.")).into_response()
        }
        ControlError::Invalid(errors) => Reply::errors(400, &errors).into_response(),
    }
}

fn done(what: &'static str) -> Response {
    tracing::debug!(action = what, "DigiCert simulator control.");
    StatusCode::NO_CONTENT.into_response()
}

async fn revoke(State(control): State<DigicertControl>) -> Response {
    control.revoke_key();
    done("revoke")
}

async fn restore(State(control): State<DigicertControl>) -> Response {
    control.restore_key();
    done("restore")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyBody {
    ms: u64,
}

async fn latency(State(control): State<DigicertControl>, bytes: Bytes) -> Response {
    match body::<LatencyBody>(&bytes) {
        Ok(latency) => {
            control.set_latency(Duration::from_millis(latency.ms));
            done("latency")
        }
        Err(reply) => reply.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowBody {
    requests: u32,
    per_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitsBody {
    windows: Vec<WindowBody>,
}

async fn rate_limits(State(control): State<DigicertControl>, bytes: Bytes) -> Response {
    match body::<RateLimitsBody>(&bytes) {
        Ok(limits) => {
            let windows = limits
                .windows
                .iter()
                .map(|w| RateWindow::new(w.requests, Duration::from_millis(w.per_ms)))
                .collect();
            control.set_rate_limits(windows);
            done("rate_limits")
        }
        Err(reply) => reply.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailNextBody {
    count: u32,
    status: u16,
}

async fn fail_next(State(control): State<DigicertControl>, bytes: Bytes) -> Response {
    let request = match body::<FailNextBody>(&bytes) {
        Ok(request) => request,
        Err(reply) => return reply.into_response(),
    };
    match control.fail_next(request.count, request.status) {
        Ok(()) => done("fail_next"),
        Err(error) => refused(error),
    }
}

async fn add_fault(State(control): State<DigicertControl>, bytes: Bytes) -> Response {
    let rule = match body::<FaultRule>(&bytes) {
        Ok(rule) => rule,
        Err(reply) => return reply.into_response(),
    };
    match control.fail_when(rule) {
        Ok(()) => done("add_fault"),
        Err(error) => refused(error),
    }
}

async fn list_faults(State(control): State<DigicertControl>) -> Response {
    Json(control.faults()).into_response()
}

async fn clear_faults(State(control): State<DigicertControl>) -> Response {
    control.clear_faults();
    done("clear_faults")
}

async fn stats(State(control): State<DigicertControl>) -> Response {
    Json(control.stats()).into_response()
}

async fn reset_stats(State(control): State<DigicertControl>) -> Response {
    control.reset_stats();
    done("reset_stats")
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
        None => refused(ControlError::UnknownUser(id)),
    }
}

async fn add_user(State(control): State<DigicertControl>, bytes: Bytes) -> Response {
    let spec = match body::<UserSpec>(&bytes) {
        Ok(spec) => spec,
        Err(reply) => return reply.into_response(),
    };
    match control.add_user(spec) {
        Ok(id) => {
            tracing::debug!(action = "add_user", id, "DigiCert simulator control.");
            (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response()
        }
        Err(error) => refused(error),
    }
}

async fn remove_user(State(control): State<DigicertControl>, Path(id): Path<u64>) -> Response {
    if control.remove_user(id) {
        done("remove_user")
    } else {
        refused(ControlError::UnknownUser(id))
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
    let request = match body::<StatusBody>(&bytes) {
        Ok(request) => request,
        Err(reply) => return reply.into_response(),
    };
    match control.set_user_status(id, &request.status) {
        Ok(()) => done("set_status"),
        Err(error) => refused(error),
    }
}
