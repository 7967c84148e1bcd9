//! The control routes under `/_sim/`: the same levers as [`DuckCreekControl`], over HTTP,
//! for tests and scripts that drive the simulator from another process. They need no
//! credentials, are not rate limited, not delayed and not counted. The levers every
//! simulator has come from [`crate::control`]; the response-fault, user, role and
//! entity routes are here. The SOAP API has no JSON error body, so errors are
//! `{"error":"…"}`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{DcUserSpec, DcUserStatus, DuckCreekControl, DuckCreekControlError, ResponseFaultRule};
use crate::control::{self, body, done, SimLevers};

/// The control routes, to be given the control handle as state.
pub(super) fn routes() -> Router<DuckCreekControl> {
    control::routes::<DuckCreekControl>()
        .route(
            "/_sim/response_faults",
            post(add_response_fault)
                .get(list_response_faults)
                .delete(clear_response_faults),
        )
        .route("/_sim/users", get(list_users).post(add_user))
        .route("/_sim/users/{id}", get(get_user).delete(remove_user))
        .route("/_sim/users/{id}/status", post(set_status))
        .route("/_sim/users/{id}/roles", post(grant_role))
        .route("/_sim/users/{id}/roles/{name}", delete(revoke_role))
        .route("/_sim/users/{id}/entities", post(add_membership))
        .route(
            "/_sim/users/{id}/entities/{name}",
            delete(remove_membership),
        )
        .route("/_sim/roles", get(list_roles))
        .route("/_sim/entities", get(list_entities))
        .route("/_sim/privileges", get(list_privileges))
}

/// A refused control call: `{"error":"…"}` with a 4xx status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl SimLevers for DuckCreekControl {
    type Refusal = Refusal;
    const NAME: &'static str = "duckcreek";

    fn revoke(&self) {
        self.revoke_credentials();
    }

    fn restore(&self) {
        self.restore_credentials();
    }

    fn refusal(error: DuckCreekControlError) -> Refusal {
        refused(error)
    }

    fn bad_request(message: &str) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.to_owned(),
        }
    }
}

fn refused(error: DuckCreekControlError) -> Refusal {
    let status = match error {
        DuckCreekControlError::UnknownUser(_)
        | DuckCreekControlError::UnknownRole(_)
        | DuckCreekControlError::UnknownEntity(_) => StatusCode::NOT_FOUND,
        DuckCreekControlError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    Refusal {
        status,
        message: error.to_string(),
    }
}

async fn add_response_fault(State(control): State<DuckCreekControl>, bytes: Bytes) -> Response {
    let rule = match body::<DuckCreekControl, ResponseFaultRule>(&bytes) {
        Ok(rule) => rule,
        Err(refusal) => return refusal.into_response(),
    };
    match control.add_response_fault(rule) {
        Ok(()) => done::<DuckCreekControl>("add_response_fault"),
        Err(error) => refused(error).into_response(),
    }
}

async fn list_response_faults(State(control): State<DuckCreekControl>) -> Response {
    Json(control.response_faults()).into_response()
}

async fn clear_response_faults(State(control): State<DuckCreekControl>) -> Response {
    control.clear_response_faults();
    done::<DuckCreekControl>("clear_response_faults")
}

#[derive(Deserialize)]
struct UsersQuery {
    name: Option<String>,
}

async fn list_users(
    State(control): State<DuckCreekControl>,
    Query(query): Query<UsersQuery>,
) -> Response {
    match query.name {
        Some(name) => Json(control.find_user(&name).into_iter().collect::<Vec<_>>()),
        None => Json(control.users()),
    }
    .into_response()
}

async fn get_user(State(control): State<DuckCreekControl>, Path(id): Path<u64>) -> Response {
    match control.user(id) {
        Some(user) => Json(user).into_response(),
        None => refused(DuckCreekControlError::UnknownUser(id)).into_response(),
    }
}

async fn add_user(State(control): State<DuckCreekControl>, bytes: Bytes) -> Response {
    let spec = match body::<DuckCreekControl, DcUserSpec>(&bytes) {
        Ok(spec) => spec,
        Err(refusal) => return refusal.into_response(),
    };
    match control.add_user(spec) {
        Ok(id) => {
            tracing::debug!(action = "add_user", id, "Duck Creek simulator control.");
            (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response()
        }
        Err(error) => refused(error).into_response(),
    }
}

async fn remove_user(State(control): State<DuckCreekControl>, Path(id): Path<u64>) -> Response {
    if control.remove_user(id) {
        done::<DuckCreekControl>("remove_user")
    } else {
        refused(DuckCreekControlError::UnknownUser(id)).into_response()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: DcUserStatus,
}

async fn set_status(
    State(control): State<DuckCreekControl>,
    Path(id): Path<u64>,
    bytes: Bytes,
) -> Response {
    let request = match body::<DuckCreekControl, StatusBody>(&bytes) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    match control.set_status(id, request.status) {
        Ok(()) => done::<DuckCreekControl>("set_status"),
        Err(error) => refused(error).into_response(),
    }
}

async fn list_roles(State(control): State<DuckCreekControl>) -> Response {
    Json(control.roles()).into_response()
}

async fn list_entities(State(control): State<DuckCreekControl>) -> Response {
    Json(control.entities()).into_response()
}

async fn list_privileges(State(control): State<DuckCreekControl>) -> Response {
    Json(control.privileges()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

async fn grant_role(
    State(control): State<DuckCreekControl>,
    Path(id): Path<u64>,
    bytes: Bytes,
) -> Response {
    let request = match body::<DuckCreekControl, RoleBody>(&bytes) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    match control.grant_role(id, &request.role) {
        Ok(_) => done::<DuckCreekControl>("grant_role"),
        Err(error) => refused(error).into_response(),
    }
}

async fn revoke_role(
    State(control): State<DuckCreekControl>,
    Path((id, name)): Path<(u64, String)>,
) -> Response {
    match control.revoke_role(id, &name) {
        Ok(_) => done::<DuckCreekControl>("revoke_role"),
        Err(error) => refused(error).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityBody {
    entity: String,
}

async fn add_membership(
    State(control): State<DuckCreekControl>,
    Path(id): Path<u64>,
    bytes: Bytes,
) -> Response {
    let request = match body::<DuckCreekControl, EntityBody>(&bytes) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    match control.add_membership(id, &request.entity) {
        Ok(_) => done::<DuckCreekControl>("add_membership"),
        Err(error) => refused(error).into_response(),
    }
}

async fn remove_membership(
    State(control): State<DuckCreekControl>,
    Path((id, name)): Path<(u64, String)>,
) -> Response {
    match control.remove_membership(id, &name) {
        Ok(_) => done::<DuckCreekControl>("remove_membership"),
        Err(error) => refused(error).into_response(),
    }
}
