//! Rolling-window request limits, enforced the way a target API enforces them.
//!
//! Each window remembers the instants of the most recent `requests` requests (a ring, so the
//! memory is bounded by the limit, not by the traffic). A request is over a window when the
//! oldest of those instants is still inside the window, i.e. `requests` requests already
//! arrived in the last `per`. Requests that are refused still count: a client that keeps
//! hammering stays locked out until it backs off for a whole window, which is the harsher and
//! safer reading of "over either limit, every request gets 429".

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// One rolling window: at most `requests` requests in any span of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// Requests allowed in any span of `per`; `0` refuses every request.
    pub requests: u32,
    /// The window length.
    pub per: Duration,
}

impl RateWindow {
    /// A window of `requests` per `per`.
    pub const fn new(requests: u32, per: Duration) -> Self {
        Self { requests, per }
    }
}

/// The enforced windows and the recent history of each.
#[derive(Debug, Default)]
pub(crate) struct RollingLimiter {
    windows: Vec<WindowState>,
}

#[derive(Debug)]
struct WindowState {
    window: RateWindow,
    /// Instants of the most recent `window.requests` requests, oldest first.
    recent: VecDeque<Instant>,
}

/// The most history preallocated per window; a larger ring grows on demand.
const PREALLOCATE: usize = 1024;

impl RollingLimiter {
    /// A limiter enforcing every window in `windows` (none: no limit).
    pub(crate) fn new(windows: &[RateWindow]) -> Self {
        let windows = windows
            .iter()
            .map(|window| WindowState {
                window: *window,
                recent: VecDeque::with_capacity(limit_of(window).min(PREALLOCATE)),
            })
            .collect();
        Self { windows }
    }

    /// The windows being enforced.
    pub(crate) fn windows(&self) -> Vec<RateWindow> {
        self.windows.iter().map(|state| state.window).collect()
    }

    /// Records a request arriving at `now` and says whether it is within every window.
    /// The request is counted either way.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        let mut within = true;
        for state in &mut self.windows {
            if state.is_full(now) {
                within = false;
            }
            state.record(now);
        }
        within
    }
}

impl WindowState {
    fn is_full(&self, now: Instant) -> bool {
        let limit = limit_of(&self.window);
        if limit == 0 {
            return true;
        }
        if self.recent.len() < limit {
            return false;
        }
        self.recent
            .front()
            .is_some_and(|oldest| now.saturating_duration_since(*oldest) < self.window.per)
    }

    fn record(&mut self, now: Instant) {
        let limit = limit_of(&self.window);
        self.recent.push_back(now);
        while self.recent.len() > limit {
            self.recent.pop_front();
        }
    }
}

fn limit_of(window: &RateWindow) -> usize {
    usize::try_from(window.requests).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_windows_admits_everything() {
        let mut limiter = RollingLimiter::new(&[]);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limiter.admit(t0)));
    }

    #[test]
    fn window_refuses_the_request_after_the_limit_and_rolls() {
        let mut limiter = RollingLimiter::new(&[RateWindow::new(3, ms(1000))]);
        let t0 = Instant::now();
        assert!(limiter.admit(t0));
        assert!(limiter.admit(t0 + ms(100)));
        assert!(limiter.admit(t0 + ms(200)));
        assert!(!limiter.admit(t0 + ms(300)), "4th request inside 1s");
        // Rolling, not fixed: at t0+1000 the first request left the window, but the refused
        // one at +300 still counts, so +100, +200, +300 are the last three.
        assert!(!limiter.admit(t0 + ms(1000)));
        // After a quiet full window everything is forgotten.
        assert!(limiter.admit(t0 + ms(2100)));
    }

    #[test]
    fn refused_requests_count() {
        let mut limiter = RollingLimiter::new(&[RateWindow::new(2, ms(1000))]);
        let t0 = Instant::now();
        assert!(limiter.admit(t0));
        assert!(limiter.admit(t0));
        for i in 1..10 {
            assert!(!limiter.admit(t0 + ms(i * 100)));
        }
        // 1000 ms after the first two, the refused ones at +800 and +900 still fill the window.
        assert!(!limiter.admit(t0 + ms(1050)));
        assert!(limiter.admit(t0 + ms(2100)));
    }

    #[test]
    fn every_window_is_enforced() {
        let mut limiter =
            RollingLimiter::new(&[RateWindow::new(5, ms(100)), RateWindow::new(8, ms(10_000))]);
        let t0 = Instant::now();
        // 5 per 100 ms: bursts of five, spaced 200 ms, pass the short window...
        let mut admitted = 0;
        for burst in 0..2 {
            for _ in 0..5 {
                if limiter.admit(t0 + ms(burst * 200)) {
                    admitted += 1;
                }
            }
        }
        // ...but the long window only lets 8 of the 10 through.
        assert_eq!(admitted, 8);
        assert_eq!(limiter.windows().len(), 2);
    }

    #[test]
    fn zero_window_refuses_everything() {
        let mut limiter = RollingLimiter::new(&[RateWindow::new(0, ms(1000))]);
        assert!(!limiter.admit(Instant::now()));
    }
}
