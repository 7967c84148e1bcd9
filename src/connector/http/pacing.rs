//! Client-side pacing: one rate limiter per configured window.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};

use crate::config::RateLimit;

/// One pacing window and the limiter that enforces it.
pub(super) struct Pacer {
    pub(super) window: RateLimit,
    pub(super) limiter: DefaultDirectRateLimiter,
    pub(super) jitter: Duration,
}

/// The governor quota that keeps a client within `window` on *every* rolling window: at most
/// `window.requests` requests in any interval of length `window.per`.
///
/// A plain GCRA quota with burst L and period W/L lets ~2L through in one W (a full burst,
/// then a full refill). Here the burst is `b = max(1, L/10)` and one request is replenished
/// every `W / (L - b)` (plus a nanosecond, so that the boundary itself stays inside): the
/// burst plus what refills within W is then `b + (L - b) = L`, and the sustained rate is
/// `(L - b)` per W. `None` for a window that allows nothing (`requests = 0` or `per = 0`).
pub fn pacing_quota(window: &RateLimit) -> Option<Quota> {
    let limit = window.requests;
    let per = window.per.get();
    if limit == 0 || per.is_zero() {
        return None;
    }
    let burst = pacing_burst(limit);
    let period = if limit > burst {
        per / (limit - burst)
    } else {
        // L = 1: the burst is the whole window; the next request comes just after it.
        per + Duration::from_nanos(1)
    };
    Some(Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?))
}

/// The burst allowed within a window of `limit` requests: a tenth of it, at least 1.
pub(super) fn pacing_burst(limit: u32) -> u32 {
    (limit / 10).max(1)
}
