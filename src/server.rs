//! The HTTP server: `/healthz`, `/readyz`, `/metrics`, and the `/api/v1` API behind a bearer
//! token (compared in constant time; the API answers 404 when no token is configured).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::model::{AccountStatus, JobKind, TaskStatus, Trigger};
use crate::scheduler::{JobRunner, TriggerError};
use crate::store::{
    AccountFilter, EntitlementFilter, GrantFilter, RunFilter, Store, Submitted, TaskFilter,
    TaskStateError,
};
use crate::sync::tasks::{self, SubmitRequest};
use crate::telemetry;

/// The page size of API lists when `limit` is not given.
const DEFAULT_LIMIT: u32 = 100;
/// The largest page an API list returns.
const MAX_LIMIT: u32 = 10_000;

/// What the handlers share.
#[derive(Clone)]
pub struct ServerState {
    /// The config.
    pub config: Arc<Config>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Starts jobs on request.
    pub runner: JobRunner,
    /// The API token, when the API is on.
    pub api_token: Option<Arc<SecretString>>,
}

/// Builds the router.
pub fn router(state: ServerState) -> Router {
    let api = Router::new()
        .route("/targets", get(list_targets))
        .route("/targets/{target}/accounts", get(list_target_accounts))
        .route(
            "/targets/{target}/entitlements",
            get(list_target_entitlements),
        )
        .route("/targets/{target}/access", get(list_target_access))
        .route("/accounts", get(list_accounts))
        .route("/runs", get(list_runs))
        .route("/tasks", get(list_tasks).post(submit_task))
        .route("/tasks/{id}", get(get_task))
        .route("/tasks/{id}/retry", post(retry_task))
        .route("/tasks/{id}/cancel", post(cancel_task))
        .route("/jobs/{name}/run", post(run_job))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A JSON error answer.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn require_token(
    State(state): State<ServerState>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let Some(expected) = state.api_token.as_ref() else {
        return error(
            StatusCode::NOT_FOUND,
            "the API is off: set server.api_token to enable it",
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let matches: bool = presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into();
    if presented.is_empty() || !matches {
        let mut response = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    next.run(request).await
}

async fn readyz(State(state): State<ServerState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(5), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store not ready: {err}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store not ready: timed out\n",
        )
            .into_response(),
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::metrics_handle().render(),
    )
        .into_response()
}

/// The page size of a `?limit=` query (`serde(flatten)` cannot carry numbers through a
/// query string, so each query struct has its own `limit` and `after`).
fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn store_error(err: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
}

/// A 404 answer when the target is not configured.
fn unknown_target(state: &ServerState, target: &str) -> Option<Response> {
    (!state.config.targets.contains_key(target))
        .then(|| error(StatusCode::NOT_FOUND, format!("unknown target `{target}`")))
}

async fn list_targets(State(state): State<ServerState>) -> Response {
    let mut out = Vec::new();
    for (name, target) in &state.config.targets {
        let filter = RunFilter {
            target: Some(name.clone()),
            limit: 50,
            ..Default::default()
        };
        let runs = match state.store.list_runs(&filter).await {
            Ok(runs) => runs,
            Err(err) => return store_error(err),
        };
        let mut last_runs = BTreeMap::new();
        for kind in [JobKind::AccountImport, JobKind::AccessImport] {
            let last = runs.iter().find(|run| run.kind == kind);
            let last_success = match state.store.last_success(name, kind).await {
                Ok(run) => run,
                Err(err) => return store_error(err),
            };
            last_runs.insert(
                kind.as_str(),
                json!({ "last": last, "last_success": last_success }),
            );
        }
        out.push(json!({
            "name": name,
            "kind": target.kind.as_str(),
            "base_url": target.base_url.as_str(),
            "runs": last_runs,
            "circuit": state.runner.provisioning().breakers().state(name, crate::clock::now()),
        }));
    }
    Json(out).into_response()
}

#[derive(Debug, Deserialize)]
struct AccountQuery {
    status: Option<String>,
    owner: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

async fn list_target_accounts(
    State(state): State<ServerState>,
    Path(target): Path<String>,
    Query(query): Query<AccountQuery>,
) -> Response {
    if let Some(response) = unknown_target(&state, &target) {
        return response;
    }
    accounts(&state, Some(target), query).await
}

async fn list_accounts(
    State(state): State<ServerState>,
    Query(query): Query<AccountQuery>,
) -> Response {
    accounts(&state, None, query).await
}

async fn accounts(state: &ServerState, target: Option<String>, query: AccountQuery) -> Response {
    let status = match query
        .status
        .as_deref()
        .map(str::parse::<AccountStatus>)
        .transpose()
    {
        Ok(status) => status,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    // Cursor: `id` within one target, `target/id` across targets.
    let after = query
        .after
        .as_deref()
        .map(|cursor| match (&target, cursor.split_once('/')) {
            (Some(t), _) => (t.clone(), cursor.to_string()),
            (None, Some((t, id))) => (t.to_string(), id.to_string()),
            (None, None) => (String::new(), cursor.to_string()),
        });
    let filter = AccountFilter {
        target,
        status,
        owner: query.owner,
        after,
        limit: page_limit(query.limit),
    };
    match state.store.list_accounts(&filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(err) => store_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct EntitlementQuery {
    #[serde(rename = "type")]
    entitlement_type: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

async fn list_target_entitlements(
    State(state): State<ServerState>,
    Path(target): Path<String>,
    Query(query): Query<EntitlementQuery>,
) -> Response {
    if let Some(response) = unknown_target(&state, &target) {
        return response;
    }
    // Cursor: `type:id` of the last row.
    let after = query
        .after
        .as_deref()
        .and_then(|cursor| cursor.split_once(':'))
        .map(|(kind, id)| (kind.to_string(), id.to_string()));
    let filter = EntitlementFilter {
        target,
        entitlement_type: query.entitlement_type,
        after,
        limit: page_limit(query.limit),
    };
    match state.store.list_entitlements(&filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(err) => store_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct AccessQuery {
    account: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

async fn list_target_access(
    State(state): State<ServerState>,
    Path(target): Path<String>,
    Query(query): Query<AccessQuery>,
) -> Response {
    if let Some(response) = unknown_target(&state, &target) {
        return response;
    }
    // Cursor: `account_id|type|entitlement_id` of the last row.
    let after = query.after.as_deref().and_then(|cursor| {
        let mut parts = cursor.splitn(3, '|');
        Some((
            parts.next()?.to_string(),
            parts.next()?.to_string(),
            parts.next()?.to_string(),
        ))
    });
    let filter = GrantFilter {
        target,
        account: query.account,
        after,
        limit: page_limit(query.limit),
    };
    match state.store.list_grants(&filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(err) => store_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct RunQuery {
    job: Option<String>,
    target: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

async fn list_runs(State(state): State<ServerState>, Query(query): Query<RunQuery>) -> Response {
    // Runs are newest first; `after` is the id of the last run seen, so the next page
    // holds older runs.
    let before_id = match query.after.as_deref().map(str::parse::<i64>).transpose() {
        Ok(id) => id,
        Err(_) => return error(StatusCode::BAD_REQUEST, "`after` must be a run id"),
    };
    let filter = RunFilter {
        job: query.job,
        target: query.target,
        before_id,
        limit: page_limit(query.limit),
    };
    match state.store.list_runs(&filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(err) => store_error(err),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunJobBody {
    #[serde(default)]
    allow_deletions: bool,
}

async fn run_job(
    State(state): State<ServerState>,
    Path(name): Path<String>,
    body: Option<Json<RunJobBody>>,
) -> Response {
    let allow_deletions = body.map(|Json(body)| body.allow_deletions).unwrap_or(false);
    // One configured token with every scope; named tokens arrive with scopes.
    let actor = "token:api".to_string();
    let receiver = match state
        .runner
        .trigger(&name, Trigger::Api, actor, allow_deletions)
    {
        Ok(receiver) => receiver,
        Err(err @ TriggerError::UnknownJob(_)) => {
            return error(StatusCode::NOT_FOUND, err.to_string())
        }
        Err(err @ TriggerError::ShuttingDown) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
        }
        Err(err @ TriggerError::NotRunnable { .. }) => {
            return error(StatusCode::BAD_REQUEST, err.to_string())
        }
        Err(err) => return error(StatusCode::CONFLICT, err.to_string()),
    };
    // The run id exists as soon as the run starts; a job waiting behind another job of the
    // same target answers without one.
    let run_id = tokio::time::timeout(Duration::from_secs(5), receiver)
        .await
        .ok()
        .and_then(Result::ok);
    let status = if run_id.is_some() {
        "started"
    } else {
        "queued"
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({ "job": name, "run_id": run_id, "status": status })),
    )
        .into_response()
}

/// The actor of API calls (one configured token with every scope).
const API_ACTOR: &str = "token:api";

async fn submit_task(
    State(state): State<ServerState>,
    body: Result<Json<SubmitRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid task: {}", rejection.body_text()),
            )
        }
    };
    let engine = state.runner.provisioning();
    let target = request.target.clone();
    let submitted = tasks::submit(
        state.store.as_ref(),
        engine.connectors(),
        &state.config,
        request,
        API_ACTOR,
    )
    .await;
    match submitted {
        Ok(Submitted::Created(task)) => {
            if tasks::is_instant(&state.config, &target) {
                state.runner.provision_now(&target);
            }
            (StatusCode::CREATED, Json(task)).into_response()
        }
        Ok(Submitted::Existing(task)) => (StatusCode::OK, Json(task)).into_response(),
        Err(err) if err.is_refusal() => error(StatusCode::BAD_REQUEST, err.to_string()),
        Err(err) => store_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct TaskQuery {
    status: Option<String>,
    target: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

async fn list_tasks(State(state): State<ServerState>, Query(query): Query<TaskQuery>) -> Response {
    let status = match query
        .status
        .as_deref()
        .map(str::parse::<TaskStatus>)
        .transpose()
    {
        Ok(status) => status,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    // Tasks are oldest first; `after` is the id of the last task seen.
    let after_id = match query.after.as_deref().map(str::parse::<i64>).transpose() {
        Ok(id) => id,
        Err(_) => return error(StatusCode::BAD_REQUEST, "`after` must be a task id"),
    };
    let filter = TaskFilter {
        target: query.target,
        status,
        after_id,
        limit: page_limit(query.limit),
    };
    match state.store.list_tasks(&filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(err) => store_error(err),
    }
}

async fn get_task(State(state): State<ServerState>, Path(id): Path<i64>) -> Response {
    match state.store.get_task(id).await {
        Ok(Some(task)) => Json(task).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no task {id}")),
        Err(err) => store_error(err),
    }
}

async fn retry_task(State(state): State<ServerState>, Path(id): Path<i64>) -> Response {
    match state
        .store
        .retry_task(id, API_ACTOR, crate::clock::now())
        .await
    {
        Ok(Ok(task)) => {
            if tasks::is_instant(&state.config, &task.target) {
                state.runner.provision_now(&task.target);
            }
            Json(task).into_response()
        }
        Ok(Err(err)) => task_state_error(err),
        Err(err) => store_error(err),
    }
}

async fn cancel_task(State(state): State<ServerState>, Path(id): Path<i64>) -> Response {
    match state
        .store
        .cancel_task(id, API_ACTOR, crate::clock::now())
        .await
    {
        Ok(Ok(task)) => Json(task).into_response(),
        Ok(Err(err)) => task_state_error(err),
        Err(err) => store_error(err),
    }
}

/// 404 for an unknown task, 409 for a task in the wrong state.
fn task_state_error(err: TaskStateError) -> Response {
    match err {
        TaskStateError::NotFound(_) => error(StatusCode::NOT_FOUND, err.to_string()),
        TaskStateError::WrongState { .. } => error(StatusCode::CONFLICT, err.to_string()),
    }
}
