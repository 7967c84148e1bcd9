//! The simulators' time: the one place they read the clock, so that time is a parameter.
//!
//! Every answer that depends on time — a rolling rate window, a token's expiry, an answer's
//! latency, Jama's `meta.timestamp` — reads the simulator's [`SimClock`]. By default it is
//! real time (tokio's clock, so a test on paused tokio time pauses it too). A test that
//! starts a simulator on [`SimClock::manual`] decides when time passes: it advances the clock
//! to expire a token or roll a window at once, and sees which answers wait on it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

/// The most a clock can be advanced in all (a hundred years): far beyond any test, and
/// small enough that every instant stays representable.
pub const MAX_ADVANCE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The clock a simulator reads to decide its answers. Cheap to clone; every clone is the
/// same clock, so one clock can drive several simulators.
///
/// * [`SimClock::real`] (the default) runs with real time; [`advance`](Self::advance) jumps
///   it ahead on top of that (to expire tokens now rather than in an hour).
/// * [`SimClock::manual`] stands still until [`advance`](Self::advance)d. Answers delayed by
///   a latency wait until the clock has been advanced past it; [`sleeping`](Self::sleeping)
///   and [`until_sleeping`](Self::until_sleeping) show a test which answers are waiting.
#[derive(Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where a manual clock stands still (plus `advanced`); `None`: real time.
    frozen: Option<Origin>,
    /// How far the clock has been advanced; every change wakes the sleeps in progress.
    advanced: watch::Sender<Duration>,
    /// The deadline of every sleep in progress, by ticket.
    sleeps: watch::Sender<BTreeMap<u64, Instant>>,
    /// The next sleep's ticket.
    tickets: AtomicU64,
}

/// The instant and the wall-clock time a manual clock was created at.
#[derive(Clone, Copy)]
struct Origin {
    instant: Instant,
    utc: DateTime<Utc>,
}

impl SimClock {
    /// A clock that runs with real time (tokio's clock, for the instants).
    pub fn real() -> Self {
        Self::with_origin(None)
    }

    /// A clock that stands at the current time until it is advanced.
    pub fn manual() -> Self {
        Self::with_origin(Some(Origin {
            instant: Instant::now(),
            utc: Utc::now(),
        }))
    }

    fn with_origin(frozen: Option<Origin>) -> Self {
        Self {
            inner: Arc::new(Inner {
                frozen,
                advanced: watch::Sender::new(Duration::ZERO),
                sleeps: watch::Sender::new(BTreeMap::new()),
                tickets: AtomicU64::new(0),
            }),
        }
    }

    /// True for a clock that moves only when advanced.
    pub fn is_manual(&self) -> bool {
        self.inner.frozen.is_some()
    }

    /// How far the clock has been advanced since it was made.
    pub fn advanced(&self) -> Duration {
        *self.inner.advanced.borrow()
    }

    /// The simulator's current instant, for rate windows and token lifetimes.
    pub fn now(&self) -> Instant {
        let base = match self.inner.frozen {
            Some(origin) => origin.instant,
            None => Instant::now(),
        };
        let advanced = self.advanced();
        // `advance` keeps `advanced` at or below MAX_ADVANCE, which an instant can carry.
        base.checked_add(advanced).unwrap_or(base)
    }

    /// The simulator's current wall-clock time, for timestamps in answers.
    pub fn now_utc(&self) -> DateTime<Utc> {
        let base = match self.inner.frozen {
            Some(origin) => origin.utc,
            None => Utc::now(),
        };
        TimeDelta::from_std(self.advanced())
            .ok()
            .and_then(|advanced| base.checked_add_signed(advanced))
            .unwrap_or(base)
    }

    /// Moves the clock forward by `by` (in all at most [`MAX_ADVANCE`]), and lets every
    /// delayed answer whose time has come go.
    pub fn advance(&self, by: Duration) {
        self.inner.advanced.send_modify(|advanced| {
            *advanced = advanced.saturating_add(by).min(MAX_ADVANCE);
        });
    }

    /// How long each sleep in progress (an answer waiting out its latency) still has to
    /// wait, soonest first.
    pub fn sleeping(&self) -> Vec<Duration> {
        let now = self.now();
        let mut left: Vec<Duration> = self
            .inner
            .sleeps
            .borrow()
            .values()
            .map(|deadline| deadline.saturating_duration_since(now))
            .collect();
        left.sort();
        left
    }

    /// Waits until at least `count` sleeps are in progress (answers waiting out their
    /// latency), so a test knows they arrived before it advances the clock.
    pub async fn until_sleeping(&self, count: usize) {
        let mut sleeps = self.inner.sleeps.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = sleeps.wait_for(|sleeps| sleeps.len() >= count).await;
    }

    /// Waits until the clock has moved `duration` past now: real time or advances, whichever
    /// comes first for a real clock; advances only for a manual one.
    pub(crate) async fn sleep(&self, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        // Subscribed before the deadline is read, so no advance is missed.
        let mut advances = self.inner.advanced.subscribe();
        let deadline = self
            .now()
            .checked_add(duration)
            .unwrap_or_else(|| self.now());
        let _sleeping = Sleeping::start(self, deadline);
        loop {
            let left = deadline.saturating_duration_since(self.now());
            if left.is_zero() {
                return;
            }
            if self.is_manual() {
                if advances.changed().await.is_err() {
                    return;
                }
            } else if let Ok(Err(_)) = tokio::time::timeout(left, advances.changed()).await {
                // No more advances can come: real time alone ends the sleep.
                tokio::time::sleep(left).await;
            }
        }
    }
}

impl Default for SimClock {
    /// Real time.
    fn default() -> Self {
        Self::real()
    }
}

impl fmt::Debug for SimClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimClock")
            .field("manual", &self.is_manual())
            .field("advanced", &self.advanced())
            .field("sleeping", &self.inner.sleeps.borrow().len())
            .finish()
    }
}

/// A sleep in progress, listed in the clock until it ends or is cancelled.
struct Sleeping<'a> {
    clock: &'a SimClock,
    ticket: u64,
}

impl<'a> Sleeping<'a> {
    fn start(clock: &'a SimClock, deadline: Instant) -> Self {
        let ticket = clock.inner.tickets.fetch_add(1, Ordering::Relaxed);
        clock.inner.sleeps.send_modify(|sleeps| {
            sleeps.insert(ticket, deadline);
        });
        Self { clock, ticket }
    }
}

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        self.clock.inner.sleeps.send_modify(|sleeps| {
            sleeps.remove(&self.ticket);
        });
    }
}

/// Test support: waits until `count` sleeps are in progress on `clock` (answers waiting out
/// their latency), failing the test if `answer` finishes first.
#[cfg(test)]
pub(crate) async fn until_waiting<T: fmt::Debug>(
    clock: &SimClock,
    count: usize,
    answer: &mut tokio::task::JoinHandle<T>,
) {
    tokio::select! {
        () = clock.until_sleeping(count) => {}
        done = answer => panic!("answered without waiting on the clock: {done:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = SimClock::manual();
        assert!(clock.is_manual());
        let (t0, wall0) = (clock.now(), clock.now_utc());
        std::thread::sleep(5 * MS);
        assert_eq!(clock.now(), t0, "real time does not move it");
        assert_eq!(clock.now_utc(), wall0);
        clock.advance(1500 * MS);
        assert_eq!(clock.now() - t0, 1500 * MS);
        assert_eq!(clock.now_utc() - wall0, TimeDelta::milliseconds(1500));
        assert_eq!(clock.advanced(), 1500 * MS);
        // A clone is the same clock.
        clock.clone().advance(500 * MS);
        assert_eq!(clock.now() - t0, 2000 * MS);
    }

    #[test]
    fn advances_are_capped() {
        let clock = SimClock::manual();
        let t0 = clock.now();
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.advanced(), MAX_ADVANCE);
        assert_eq!(clock.now() - t0, MAX_ADVANCE);
        assert!(clock.now_utc().timestamp() > Utc::now().timestamp());
    }

    #[tokio::test(start_paused = true)]
    async fn a_real_clock_follows_tokio_time_and_can_jump_ahead() {
        let clock = SimClock::default();
        assert!(!clock.is_manual());
        let t0 = clock.now();
        tokio::time::sleep(250 * MS).await;
        assert_eq!(clock.now() - t0, 250 * MS);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(clock.now() - t0, Duration::from_secs(3600) + 250 * MS);
        // A sleep ends with real (here: paused tokio) time.
        let started = Instant::now();
        clock.sleep(100 * MS).await;
        assert_eq!(started.elapsed(), 100 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn an_advance_ends_a_real_clock_sleep_early() {
        let clock = SimClock::real();
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(Duration::from_secs(60)).await }
        });
        clock.until_sleeping(1).await;
        let started = Instant::now();
        clock.advance(Duration::from_secs(60));
        sleeper.await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "no tokio time passed");
        assert!(clock.sleeping().is_empty());
    }

    #[tokio::test]
    async fn a_manual_sleep_waits_for_the_advance_that_reaches_it() {
        let clock = SimClock::manual();
        clock.sleep(Duration::ZERO).await;
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(250 * MS).await }
        });
        clock.until_sleeping(1).await;
        assert_eq!(clock.sleeping(), [250 * MS]);
        clock.advance(249 * MS);
        // On this single-threaded runtime, yielding lets the woken sleeper look at the clock.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(!sleeper.is_finished());
        assert_eq!(clock.sleeping(), [MS], "still waiting");
        clock.advance(MS);
        sleeper.await.unwrap();
        assert!(
            clock.sleeping().is_empty(),
            "a finished sleep is no longer listed"
        );
    }

    #[tokio::test]
    async fn a_cancelled_sleep_is_no_longer_listed() {
        let clock = SimClock::manual();
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(Duration::from_secs(1)).await }
        });
        clock.until_sleeping(1).await;
        sleeper.abort();
        assert!(sleeper.await.unwrap_err().is_cancelled());
        assert!(clock.sleeping().is_empty());
        assert_eq!(
            format!("{clock:?}"),
            "SimClock { manual: true, advanced: 0ns, sleeping: 0 }"
        );
    }
}
