//! Heartbeats: keep a lease (a task's, a target lock's) alive while the work it guards runs,
//! so leases can be short and work held by a dead process comes back quickly.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::warn;

use crate::store::{LockOutcome, Store, StoreError};

/// How often a lease of length `lease` is renewed: a third of it, so two renewals in a row
/// can fail (a busy store) before the lease runs out. Never more often than every 500 ms.
pub fn renew_every(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(500))
}

/// A running heartbeat. It renews in the background until dropped (or [`stop`](Self::stop)ped);
/// [`lost`](Self::lost) tells whether a renewal found the lease taken by someone else.
pub struct Heartbeat {
    handle: JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl Heartbeat {
    /// Starts renewing every `every` with `renew`, which answers `Ok(true)` when the lease
    /// is still ours and renewed, `Ok(false)` when it is not ours any more (the heartbeat
    /// then stops), and `Err` when the store could not be asked (logged; the next beat
    /// tries again). `what` names the lease in logs (`task 12`, `import lock of jama`).
    pub fn start<F, Fut>(what: String, every: Duration, mut renew: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<bool, StoreError>> + Send,
    {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        let handle = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match renew().await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!(lease = %what, "Lease lost: another process took it over after it ran out; this process stops renewing it.");
                        flag.store(true, Ordering::SeqCst);
                        break;
                    }
                    Err(err) => {
                        warn!(lease = %what, error = %err, "Cannot renew the lease; trying again at the next beat.");
                    }
                }
            }
        });
        Self { handle, lost }
    }

    /// Whether a renewal found the lease held by someone else.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops renewing (the lease then runs out on its own unless released).
    pub fn stop(self) {}
}

/// Renews the named store lock, held by `holder`, every third of `ttl` while the returned
/// heartbeat lives.
pub fn renew_lock(store: Arc<dyn Store>, name: String, holder: String, ttl: Duration) -> Heartbeat {
    Heartbeat::start(format!("lock {name}"), renew_every(ttl), move || {
        let store = store.clone();
        let (name, holder) = (name.clone(), holder.clone());
        async move { Ok(store.try_lock(&name, &holder, ttl).await? == LockOutcome::Acquired) }
    })
}

/// How long a run's own lock lasts without its heartbeat.
pub const RUN_LOCK_TTL: Duration = Duration::from_secs(30);

/// The lock that marks run `run_id` as alive, taken at its start and renewed while the
/// returned guard lives: every process then knows the run is not one a dead process left
/// open. Dropping the guard stops the heartbeat; [`RunAlive::release`] also frees the lock.
pub async fn run_alive(store: Arc<dyn Store>, run_id: i64) -> RunAlive {
    let (name, holder) = (format!("run:{run_id}"), format!("run {run_id}"));
    if let Err(err) = store.try_lock(&name, &holder, RUN_LOCK_TTL).await {
        warn!(run_id, error = %err, "Cannot take the run's lock; another process may close the run as abandoned.");
    }
    let heartbeat = renew_lock(store.clone(), name.clone(), holder.clone(), RUN_LOCK_TTL);
    RunAlive {
        store,
        name,
        holder,
        heartbeat,
    }
}

/// A run's liveness lock; see [`run_alive`].
pub struct RunAlive {
    store: Arc<dyn Store>,
    name: String,
    holder: String,
    heartbeat: Heartbeat,
}

impl RunAlive {
    /// Stops the heartbeat and frees the lock (once the run is recorded as finished).
    pub async fn release(self) {
        drop(self.heartbeat);
        if let Err(err) = self.store.unlock(&self.name, &self.holder).await {
            warn!(lock = %self.name, error = %err, "Cannot release the run's lock; it lapses on its own.");
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[test]
    fn renewals_come_three_times_per_lease_and_not_too_often() {
        assert_eq!(
            renew_every(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            renew_every(Duration::from_millis(600)),
            Duration::from_millis(500)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_renews_until_dropped() {
        let beats = Arc::new(AtomicU32::new(0));
        let counted = beats.clone();
        let heartbeat = Heartbeat::start("test".into(), Duration::from_secs(10), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(true)
            }
        });
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(beats.load(Ordering::SeqCst), 3);
        assert!(!heartbeat.lost());
        drop(heartbeat);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(beats.load(Ordering::SeqCst), 3, "no beat after the drop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lease_is_reported_and_stops_the_beats() {
        let beats = Arc::new(AtomicU32::new(0));
        let counted = beats.clone();
        let heartbeat = Heartbeat::start("test".into(), Duration::from_secs(1), move || {
            let counted = counted.clone();
            async move { Ok(counted.fetch_add(1, Ordering::SeqCst) < 1) }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(heartbeat.lost());
        assert_eq!(beats.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_error_is_retried_at_the_next_beat() {
        let beats = Arc::new(AtomicU32::new(0));
        let counted = beats.clone();
        let heartbeat = Heartbeat::start("test".into(), Duration::from_secs(1), move || {
            let counted = counted.clone();
            async move {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(StoreError::Corrupt {
                        context: "renewing",
                        message: "busy".into(),
                    })
                } else {
                    Ok(true)
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!heartbeat.lost());
        assert_eq!(beats.load(Ordering::SeqCst), 3);
    }
}
