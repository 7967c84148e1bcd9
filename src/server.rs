//! The HTTP server: `/healthz`, `/readyz`, `/metrics`, and the `/api/v1` API behind a bearer
//! token (compared in constant time; the API answers 404 when no token is configured).
//! Every API answer, errors included, is JSON; [`limits`] holds the edges (body limit,
//! refused query strings and paths, unknown routes, list paging).

pub mod limits;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
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
use limits::{error, json_rejection, page, parse_id, ApiPath, ApiQuery, BODY_LIMIT_BYTES};

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
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .method_not_allowed_fallback(limits::method_not_allowed)
        .fallback(limits::unknown_route)
        .layer(middleware::from_fn(limits::limit_body))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
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

/// The page size of a `?limit=` query, or the 400 answer (`serde(flatten)` cannot carry
/// numbers through a query string, so each query struct has its own `limit` and `after`).
fn page_limit(limit: Option<&str>) -> Result<u32, limits::BadRequest> {
    limits::page_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)
}

/// The 400 answer for an `after` cursor that is not of the list's form.
fn bad_cursor(cursor: &str, form: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!(
            "bad query string: `after` must be {form} (the `{}` header of the previous page), \
             not `{cursor}`",
            limits::NEXT_AFTER_HEADER
        ),
    )
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
#[serde(deny_unknown_fields)]
struct AccountQuery {
    status: Option<String>,
    owner: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

async fn list_target_accounts(
    State(state): State<ServerState>,
    ApiPath(target): ApiPath<String>,
    ApiQuery(query): ApiQuery<AccountQuery>,
) -> Response {
    if let Some(response) = unknown_target(&state, &target) {
        return response;
    }
    accounts(&state, Some(target), query).await
}

async fn list_accounts(
    State(state): State<ServerState>,
    ApiQuery(query): ApiQuery<AccountQuery>,
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
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad query string: `status`: {err}"),
            )
        }
    };
    let limit = match page_limit(query.limit.as_deref()) {
        Ok(limit) => limit,
        Err(err) => return err.into_response(),
    };
    // Cursor: `id` within one target, `target/id` across targets.
    let after = match (query.after.as_deref(), &target) {
        (None, _) => None,
        (Some(cursor), Some(t)) => Some((t.clone(), cursor.to_string())),
        (Some(cursor), None) => match cursor.split_once('/') {
            Some((t, id)) => Some((t.to_string(), id.to_string())),
            None => return bad_cursor(cursor, "`TARGET/ID` of the last account seen"),
        },
    };
    let across_targets = target.is_none();
    let filter = AccountFilter {
        target,
        status,
        owner: query.owner,
        after,
        limit: limit + 1,
    };
    match state.store.list_accounts(&filter).await {
        Ok(rows) => page(rows, limit, |a| {
            if across_targets {
                format!("{}/{}", a.target, a.id)
            } else {
                a.id.clone()
            }
        }),
        Err(err) => store_error(err),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntitlementQuery {
    #[serde(rename = "type")]
    entitlement_type: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

async fn list_target_entitlements(
    State(state): State<ServerState>,
    ApiPath(target): ApiPath<String>,
    ApiQuery(query): ApiQuery<EntitlementQuery>,
) -> Response {
    if let Some(response) = unknown_target(&state, &target) {
        return response;
    }
    let limit = match page_limit(query.limit.as_deref()) {
        Ok(limit) => limit,
        Err(err) => return err.into_response(),
    };
    // Cursor: `type:id` of the last row.
    let after = match query.after.as_deref() {
        None => None,
        Some(cursor) => match cursor.split_once(':') {
            Some((kind, id)) => Some((kind.to_string(), id.to_string())),
            None => return bad_cursor(cursor, "`TYPE:ID` of the last entitlement seen"),
        },
    };
    let filter = EntitlementFilter {
        target,
        entitlement_type: query.entitlement_type,
        after,
        limit: limit + 1,
    };
    match state.store.list_entitlements(&filter).await {
        Ok(rows) => page(rows, limit, |e| format!("{}:{}", e.entitlement_type, e.id)),
        Err(err) => store_error(err),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessQuery {
    account: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

async fn list_target_access(
    State(state): State<ServerState>,
    ApiPath(target): ApiPath<String>,
    ApiQuery(query): ApiQuery<AccessQuery>,
) -> Response {
    if let Some(response) = unknown_target(&state, &target) {
        return response;
    }
    let limit = match page_limit(query.limit.as_deref()) {
        Ok(limit) => limit,
        Err(err) => return err.into_response(),
    };
    // Cursor: `account_id|type|entitlement_id` of the last row.
    let after = match query.after.as_deref() {
        None => None,
        Some(cursor) => {
            let mut parts = cursor.splitn(3, '|');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(account), Some(kind), Some(id)) => {
                    Some((account.to_string(), kind.to_string(), id.to_string()))
                }
                _ => {
                    return bad_cursor(
                        cursor,
                        "`ACCOUNT_ID|TYPE|ENTITLEMENT_ID` of the last grant seen",
                    )
                }
            }
        }
    };
    let filter = GrantFilter {
        target,
        account: query.account,
        after,
        limit: limit + 1,
    };
    match state.store.list_grants(&filter).await {
        Ok(rows) => page(rows, limit, |g| {
            format!(
                "{}|{}|{}",
                g.account_id, g.entitlement_type, g.entitlement_id
            )
        }),
        Err(err) => store_error(err),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunQuery {
    job: Option<String>,
    target: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

async fn list_runs(
    State(state): State<ServerState>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> Response {
    let limit = match page_limit(query.limit.as_deref()) {
        Ok(limit) => limit,
        Err(err) => return err.into_response(),
    };
    // Runs are newest first; `after` is the id of the last run seen, so the next page
    // holds older runs.
    let before_id = match query.after.as_deref().map(|raw| parse_id(raw, "run id")) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(err)) => return err.into_response(),
    };
    let filter = RunFilter {
        job: query.job,
        target: query.target,
        before_id,
        limit: limit + 1,
    };
    match state.store.list_runs(&filter).await {
        Ok(rows) => page(rows, limit, |r| r.id.to_string()),
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
    ApiPath(name): ApiPath<String>,
    body: Result<Option<Json<RunJobBody>>, JsonRejection>,
) -> Response {
    let allow_deletions = match body {
        Ok(body) => body.is_some_and(|Json(body)| body.allow_deletions),
        Err(rejection) => return json_rejection(rejection, "job run body"),
    };
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
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return json_rejection(rejection, "task"),
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
#[serde(deny_unknown_fields)]
struct TaskQuery {
    status: Option<String>,
    target: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

async fn list_tasks(
    State(state): State<ServerState>,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> Response {
    let status = match query
        .status
        .as_deref()
        .map(str::parse::<TaskStatus>)
        .transpose()
    {
        Ok(status) => status,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad query string: `status`: {err}"),
            )
        }
    };
    let limit = match page_limit(query.limit.as_deref()) {
        Ok(limit) => limit,
        Err(err) => return err.into_response(),
    };
    // Tasks are oldest first; `after` is the id of the last task seen.
    let after_id = match query.after.as_deref().map(|raw| parse_id(raw, "task id")) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(err)) => return err.into_response(),
    };
    let filter = TaskFilter {
        target: query.target,
        status,
        after_id,
        limit: limit + 1,
    };
    match state.store.list_tasks(&filter).await {
        Ok(rows) => page(rows, limit, |t| t.id.to_string()),
        Err(err) => store_error(err),
    }
}

async fn get_task(State(state): State<ServerState>, ApiPath(id): ApiPath<String>) -> Response {
    let id = match parse_id(&id, "task id") {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    match state.store.get_task(id).await {
        Ok(Some(task)) => Json(task).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no task {id}")),
        Err(err) => store_error(err),
    }
}

async fn retry_task(State(state): State<ServerState>, ApiPath(id): ApiPath<String>) -> Response {
    let id = match parse_id(&id, "task id") {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
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

async fn cancel_task(State(state): State<ServerState>, ApiPath(id): ApiPath<String>) -> Response {
    let id = match parse_id(&id, "task id") {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
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
