//! The control routes every simulator shares under `/_sim/`: revoke/restore the credential,
//! latency, rate windows, faults and counters. Each simulator adds its own data routes and
//! answers errors in its target's body shape.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::faults::FaultRule;
use super::ratelimit::RateWindow;
use super::stats::SimStats;

/// The levers a simulator's control handle offers to the shared control routes.
pub(crate) trait SimLevers: Clone + Send + Sync + 'static {
    /// The simulator's name in logs, e.g. `digicert`.
    const NAME: &'static str;
    /// A refusal in the target's error body shape.
    type Refusal: IntoResponse;

    /// Revokes the credential (`POST /_sim/revoke`).
    fn revoke(&self);
    /// Accepts the credential again (`POST /_sim/restore`).
    fn restore(&self);
    /// Delays every API answer (`POST /_sim/latency`).
    fn set_latency(&self, latency: Duration);
    /// Replaces the rate windows (`POST /_sim/rate_limits`).
    fn set_rate_limits(&self, windows: Vec<RateWindow>);
    /// Installs a fault rule; a refusal is the simulator's own 400 answer.
    fn fail_when(&self, rule: FaultRule) -> Result<(), Self::Refusal>;
    /// The fault rules still installed.
    fn faults(&self) -> Vec<FaultRule>;
    /// Removes every fault rule.
    fn clear_faults(&self);
    /// The counters.
    fn stats(&self) -> SimStats;
    /// Zeroes the counters.
    fn reset_stats(&self);
    /// A 400 answer in the target's error shape, for a control body that does not parse.
    fn bad_request(message: &str) -> Self::Refusal;
}

/// The shared control routes, to be merged with the simulator's own.
pub(crate) fn routes<C: SimLevers>() -> Router<C> {
    Router::new()
        .route("/_sim/revoke", post(revoke::<C>))
        .route("/_sim/restore", post(restore::<C>))
        .route("/_sim/latency", post(latency::<C>))
        .route("/_sim/rate_limits", post(rate_limits::<C>))
        .route("/_sim/fail_next", post(fail_next::<C>))
        .route(
            "/_sim/faults",
            post(add_fault::<C>)
                .get(list_faults::<C>)
                .delete(clear_faults::<C>),
        )
        .route("/_sim/stats", get(stats::<C>).delete(reset_stats::<C>))
}

/// Parses a control body, answering the simulator's 400 when it does not fit.
pub(crate) fn body<C: SimLevers, T: DeserializeOwned>(bytes: &[u8]) -> Result<T, C::Refusal> {
    serde_json::from_slice(bytes)
        .map_err(|error| C::bad_request(&format!("The request body is not valid here: {error}")))
}

/// Logs a control action and answers 204.
pub(crate) fn done<C: SimLevers>(action: &'static str) -> Response {
    tracing::debug!(simulator = C::NAME, action, "Simulator control.");
    StatusCode::NO_CONTENT.into_response()
}

async fn revoke<C: SimLevers>(State(control): State<C>) -> Response {
    control.revoke();
    done::<C>("revoke")
}

async fn restore<C: SimLevers>(State(control): State<C>) -> Response {
    control.restore();
    done::<C>("restore")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyBody {
    ms: u64,
}

async fn latency<C: SimLevers>(State(control): State<C>, bytes: Bytes) -> Response {
    match body::<C, LatencyBody>(&bytes) {
        Ok(latency) => {
            control.set_latency(Duration::from_millis(latency.ms));
            done::<C>("latency")
        }
        Err(refusal) => refusal.into_response(),
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

async fn rate_limits<C: SimLevers>(State(control): State<C>, bytes: Bytes) -> Response {
    match body::<C, RateLimitsBody>(&bytes) {
        Ok(limits) => {
            let windows = limits
                .windows
                .iter()
                .map(|w| RateWindow::new(w.requests, Duration::from_millis(w.per_ms)))
                .collect();
            control.set_rate_limits(windows);
            done::<C>("rate_limits")
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailNextBody {
    count: u32,
    status: u16,
}

async fn fail_next<C: SimLevers>(State(control): State<C>, bytes: Bytes) -> Response {
    let request = match body::<C, FailNextBody>(&bytes) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let rule = FaultRule::new(request.status).with_times(request.count);
    match control.fail_when(rule) {
        Ok(()) => done::<C>("fail_next"),
        Err(refusal) => refusal.into_response(),
    }
}

async fn add_fault<C: SimLevers>(State(control): State<C>, bytes: Bytes) -> Response {
    let rule = match body::<C, FaultRule>(&bytes) {
        Ok(rule) => rule,
        Err(refusal) => return refusal.into_response(),
    };
    match control.fail_when(rule) {
        Ok(()) => done::<C>("add_fault"),
        Err(refusal) => refusal.into_response(),
    }
}

async fn list_faults<C: SimLevers>(State(control): State<C>) -> Response {
    Json(control.faults()).into_response()
}

async fn clear_faults<C: SimLevers>(State(control): State<C>) -> Response {
    control.clear_faults();
    done::<C>("clear_faults")
}

async fn stats<C: SimLevers>(State(control): State<C>) -> Response {
    Json(control.stats()).into_response()
}

async fn reset_stats<C: SimLevers>(State(control): State<C>) -> Response {
    control.reset_stats();
    done::<C>("reset_stats")
}
