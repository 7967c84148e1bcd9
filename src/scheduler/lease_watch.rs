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
use crate::model::JobKind;
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
    /// target the daemon provisions (a `provisioning` job or `instant_provisioning`), so
    /// tasks that came due while idsync was down do not wait for the next scheduled pass.
    /// Then, whenever the earliest task lease runs out, it runs another (which returns the
    /// expired tasks to the queue and runs them: the next attempt of each reads the target
    /// first); and every look it closes runs left open by a dead process.
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

/// Starts a provisioning pass, in the background, of every target the daemon provisions.
fn provision_all(runner: &JobRunner) {
    for target in provisioned_targets(runner) {
        runner.provision_now(&target);
    }
}

/// The targets whose tasks this daemon runs: those a `provisioning` job covers (one without
/// a target covers all), and those with `instant_provisioning`. Tasks of the others wait for
/// `idsync provision`, as configured.
fn provisioned_targets(runner: &JobRunner) -> Vec<String> {
    let config = runner.provisioning().config();
    let every = runner
        .jobs()
        .values()
        .any(|job| job.kind == JobKind::Provisioning && job.target.is_none());
    config
        .targets
        .iter()
        .filter(|(name, target)| {
            every
                || target.instant_provisioning
                || runner.jobs().values().any(|job| {
                    job.kind == JobKind::Provisioning && job.target.as_deref() == Some(name)
                })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::sync::testing::{connectors, store, FakeConnector};
    use crate::sync::ImportRunner;

    /// A runner over targets `a`, `b` and `c` (fakes) with `extra` config appended.
    async fn runner(extra: &str) -> (tempfile::TempDir, JobRunner) {
        let mut text = String::new();
        for name in ["a", "b", "c"] {
            text.push_str(&format!(
                "[targets.{name}]\nkind = \"jama\"\nbase_url = \"https://{name}.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
            ));
            if name == "c" {
                text.push_str("instant_provisioning = true\n");
            }
        }
        text.push_str(extra);
        let config: Config = toml::from_str(&text).unwrap();
        let (dir, store) = store().await;
        let fakes: Vec<Arc<FakeConnector>> = ["a", "b", "c"]
            .iter()
            .map(|name| Arc::new(FakeConnector::new(name)))
            .collect();
        let imports = ImportRunner::new(store, connectors(&fakes), Arc::new(config.clone()));
        (dir, JobRunner::new(&config, imports))
    }

    #[tokio::test]
    async fn only_targets_the_daemon_provisions_are_passed_over() {
        let (_dir, none) = runner("").await;
        assert_eq!(
            provisioned_targets(&none),
            ["c"],
            "instant provisioning only"
        );
        let (_dir, one) = runner(
            "[jobs.p]\ntype = \"provisioning\"\ntarget = \"a\"\nschedule = \"0 * * * * *\"\n",
        )
        .await;
        assert_eq!(provisioned_targets(&one), ["a", "c"]);
        let (_dir, all) =
            runner("[jobs.p]\ntype = \"provisioning\"\nschedule = \"0 * * * * *\"\n").await;
        assert_eq!(provisioned_targets(&all), ["a", "b", "c"]);
    }
}
