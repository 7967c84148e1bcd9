//! The lease watch: brings back, promptly, work that a dead process held. A task left
//! `running` by a killed daemon returns to the queue as soon as its lease runs out (not at
//! the next scheduled provisioning pass), and runs left open by it are closed as failed
//! once their lock lapses.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::JobRunner;
use crate::clock;
use crate::store::Store;

/// How long the watch sleeps at most between two looks, when no lease is due sooner.
const LOOK_EVERY: Duration = Duration::from_secs(15);

/// A grace after a lease's end before it is taken back, so a heartbeat in flight wins.
const GRACE: Duration = Duration::from_millis(500);

/// The failure reason of a run whose process died.
pub const DEAD_RUN_REASON: &str = "interrupted: idsync stopped before the run finished";

/// The running lease watch; [`stop`](Self::stop) ends it.
pub struct LeaseWatch {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl LeaseWatch {
    /// Starts watching the store of `runner`. At once, it runs a provisioning pass of every
    /// target, so tasks that came due while idsync was down do not wait for the next
    /// scheduled pass. Then, whenever the earliest task lease runs out, it runs another (which
    /// returns the expired tasks to the queue and runs them: the next attempt of each reads
    /// the target first); and every look it closes runs left open by a dead process.
    pub fn start(runner: JobRunner) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let handle = tokio::spawn(async move {
            let store = runner.provisioning().store().clone();
            provision_all(&runner);
            loop {
                let now = clock::now();
                let next = look(&runner, store.as_ref(), now).await;
                let wait = next
                    .and_then(|at| (at - now).to_std().ok())
                    .map_or(LOOK_EVERY, |until| (until + GRACE).min(LOOK_EVERY));
                tokio::select! {
                    () = stopped.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
        Self { stop, handle }
    }

    /// Stops watching.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(err) = self.handle.await {
            warn!(error = %err, "The lease watch ended abnormally.");
        }
    }
}

/// One look: starts a pass when a task lease has run out, closes dead runs, and returns
/// when the next lease runs out (if a task is running).
async fn look(runner: &JobRunner, store: &dyn Store, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match store.fail_open_runs(DEAD_RUN_REASON, now).await {
        Ok(0) => {}
        Ok(runs) => warn!(
            runs,
            "Runs left open by a stopped process were marked failed (their lock ran out)."
        ),
        Err(err) => warn!(error = %err, "Cannot close runs left open; trying again later."),
    }
    let next = match store.next_lease_expiry().await {
        Ok(next) => next,
        Err(err) => {
            warn!(error = %err, "Cannot read task leases; trying again later.");
            return None;
        }
    };
    match next {
        Some(at) if at < now => {
            provision_all(runner);
            None
        }
        other => other,
    }
}

/// Starts a provisioning pass of every target in the background.
fn provision_all(runner: &JobRunner) {
    for target in runner.provisioning().connectors().keys() {
        runner.provision_now(target);
    }
}
