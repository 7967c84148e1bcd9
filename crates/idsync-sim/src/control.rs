//! What every simulator shares for being steered while it runs: the [`SimCore`] state
//! (clock, latency, rate windows, fault rules, counters) each one embeds, the [`SimControl`]
//! levers over it that every control handle has, and the control routes under `/_sim/` that
//! drive them (revoke/restore the credential included). Each simulator adds its own data routes
//! and answers errors in its target's body shape.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::clock::SimClock;
use super::faults::{FaultRule, FaultSet};
use super::ratelimit::{RateWindow, RollingLimiter};
use super::stats::SimStats;

/// The state every simulator keeps the same way, embedded in its own state as `core` (behind
/// the same lock, so one request checks the windows, spends a fault and counts itself at
/// once).
#[derive(Debug)]
pub struct SimCore {
    /// The time every answer is decided at: rate windows, token lifetimes, latency.
    pub(crate) clock: SimClock,
    /// Delay before every API answer.
    pub(crate) latency: Duration,
    /// The enforced rate windows and their recent history.
    pub(crate) limiter: RollingLimiter,
    /// The injected failures, checked in the order they were added.
    pub(crate) faults: FaultSet,
    /// The counters over answered API requests.
    pub(crate) stats: SimStats,
}

impl SimCore {
    /// A core on `clock` that delays every answer by `latency` and enforces `rate_limits`,
    /// with no fault rules and zeroed counters.
    pub(crate) fn new(clock: SimClock, latency: Duration, rate_limits: &[RateWindow]) -> Self {
        Self {
            clock,
            latency,
            limiter: RollingLimiter::new(rate_limits),
            faults: FaultSet::default(),
            stats: SimStats::default(),
        }
    }
}

/// How [`SimControl`] reaches a simulator: its [`SimCore`] and its error type. Every control
/// handle implements it; it cannot be named outside the crate, which seals [`SimControl`].
pub trait CoreAccess {
    /// Why a control call was refused: the simulator's own error type.
    type Error;

    /// Runs `f` on the simulator's core, under the simulator's lock.
    fn with_core<R>(&self, f: impl FnOnce(&mut SimCore) -> R) -> R;

    /// The simulator's error for a fault rule that does not validate (`message` names the
    /// bad field).
    fn invalid_fault(message: String) -> Self::Error;
}

/// The levers every simulator's control handle has ([`DigicertControl`](super::DigicertControl),
/// [`JamaControl`](super::JamaControl), [`DuckCreekControl`](super::DuckCreekControl)):
/// the clock, latency, rate windows, fault rules and counters. Bring it into scope to pull them
/// (`use idsync_sim::SimControl;`); each handle's own docs say which requests they apply to.
pub trait SimControl: CoreAccess {
    /// The clock the simulator decides its answers by (the one its config gave it).
    fn clock(&self) -> SimClock {
        self.with_core(|core| core.clock.clone())
    }

    /// Moves the simulator's clock forward by `by`: tokens expire, rate windows roll and
    /// delayed answers go as if that much time had passed ([`SimClock::advance`]). A real
    /// clock jumps ahead and keeps running.
    fn advance_clock(&self, by: Duration) {
        self.clock().advance(by);
    }

    /// Delays every API answer by `latency` (zero: none), measured on the simulator's clock.
    fn set_latency(&self, latency: Duration) {
        self.with_core(|core| core.latency = latency);
    }

    /// The current delay.
    fn latency(&self) -> Duration {
        self.with_core(|core| core.latency)
    }

    /// Replaces the rate windows (empty: no limit) and forgets past requests.
    fn set_rate_limits(&self, windows: Vec<RateWindow>) {
        self.with_core(|core| core.limiter = RollingLimiter::new(&windows));
    }

    /// The rate windows being enforced.
    fn rate_limits(&self) -> Vec<RateWindow> {
        self.with_core(|core| core.limiter.windows())
    }

    /// Fails the next `count` API requests that pass the credential and rate checks with
    /// `status` (400–599).
    fn fail_next(&self, count: u32, status: u16) -> Result<(), Self::Error> {
        self.fail_when(FaultRule::new(status).with_times(count))
    }

    /// Installs a fault rule; rules are checked in the order they were added.
    fn fail_when(&self, rule: FaultRule) -> Result<(), Self::Error> {
        rule.validate().map_err(Self::invalid_fault)?;
        self.with_core(|core| core.faults.push(rule));
        Ok(())
    }

    /// The fault rules still installed (`times` counts what is left).
    fn faults(&self) -> Vec<FaultRule> {
        self.with_core(|core| core.faults.rules())
    }

    /// Removes every fault rule.
    fn clear_faults(&self) {
        self.with_core(|core| core.faults.clear());
    }

    /// The counters since start (or the last reset).
    fn stats(&self) -> SimStats {
        self.with_core(|core| core.stats.clone())
    }

    /// Zeroes the counters.
    fn reset_stats(&self) {
        self.with_core(|core| core.stats = SimStats::default());
    }
}

impl<C: CoreAccess> SimControl for C {}

/// Sleeps the simulator's latency on its clock; every API answer waits for it first.
pub(crate) async fn delay<C: SimControl>(control: &C) {
    let (clock, latency) = control.with_core(|core| (core.clock.clone(), core.latency));
    clock.sleep(latency).await;
}

/// What the shared control routes need beyond [`SimControl`]: the simulator's name, its
/// credential switch and its refusals.
pub(crate) trait SimLevers: SimControl + Clone + Send + Sync + 'static {
    /// The simulator's name in logs, e.g. `digicert`.
    const NAME: &'static str;
    /// A refusal in the target's error body shape.
    type Refusal: IntoResponse;

    /// Revokes the credential (`POST /_sim/revoke`).
    fn revoke(&self);
    /// Accepts the credential again (`POST /_sim/restore`).
    fn restore(&self);
    /// The answer to a control call the simulator refused.
    fn refusal(error: Self::Error) -> Self::Refusal;
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
        .route("/_sim/advance_clock", post(advance_clock::<C>))
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

/// `{"ms":250}`: a duration in milliseconds (latency, a clock advance).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MillisBody {
    ms: u64,
}

async fn latency<C: SimLevers>(State(control): State<C>, bytes: Bytes) -> Response {
    match body::<C, MillisBody>(&bytes) {
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
        Err(error) => C::refusal(error).into_response(),
    }
}

async fn add_fault<C: SimLevers>(State(control): State<C>, bytes: Bytes) -> Response {
    let rule = match body::<C, FaultRule>(&bytes) {
        Ok(rule) => rule,
        Err(refusal) => return refusal.into_response(),
    };
    match control.fail_when(rule) {
        Ok(()) => done::<C>("add_fault"),
        Err(error) => C::refusal(error).into_response(),
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

async fn advance_clock<C: SimLevers>(State(control): State<C>, bytes: Bytes) -> Response {
    match body::<C, MillisBody>(&bytes) {
        Ok(by) => {
            control.advance_clock(Duration::from_millis(by.ms));
            done::<C>("advance_clock")
        }
        Err(refusal) => refusal.into_response(),
    }
}
