//! Cron triggers, job coordination and shutdown.
//!
//! tokio-cron-scheduler is used narrowly, as a UTC trigger: each tick only asks the
//! [`JobRunner`] to start a job. Everything else is ours, because the trigger library does
//! not provide it: a job never overlaps itself (a tick that finds it running is skipped and
//! counted), the import jobs of one target run one at a time (a tick blocked by another job
//! of the same target waits, and at most one waits), runs missed while the daemon was down
//! are caught up once at start, and shutdown stops triggering, lets running jobs finish up to
//! a deadline, then interrupts them between pages (an interrupted import marks nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use tokio::sync::oneshot;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

mod lease_watch;

pub use lease_watch::{LeaseWatch, DEAD_RUN_REASON};

use crate::clock;
use crate::config::{Config, JobConfig};
use crate::model::{JobKind, Trigger};
use crate::store::Store;
use crate::sync::{ImportParts, ImportRequest, ImportRunner, ProvisionRunner};
use crate::telemetry;

/// Why a job could not be started now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// No job of that name in the config.
    #[error("unknown job `{0}` (see [jobs] in the config)")]
    UnknownJob(String),
    /// The job is running already.
    #[error("job `{0}` is already running")]
    AlreadyRunning(String),
    /// Another job of the same target runs and another one already waits for it.
    #[error("job `{job}` skipped: target {target} is busy and another job already waits for it")]
    TargetBusy {
        /// The job.
        job: String,
        /// Its target.
        target: String,
    },
    /// The daemon is shutting down.
    #[error("idsync is shutting down")]
    ShuttingDown,
    /// The job type cannot run in this version.
    #[error("job `{job}` has type {kind}, which this version cannot run")]
    NotRunnable {
        /// The job.
        job: String,
        /// Its type.
        kind: JobKind,
    },
}

/// Per-target coordination: one import at a time, at most one waiting.
#[derive(Default)]
struct TargetGate {
    lock: Arc<tokio::sync::Mutex<()>>,
    waiting: AtomicUsize,
}

/// Starts configured jobs on request (cron ticks, the API, startup catch-up) and tracks
/// them until shutdown.
#[derive(Clone)]
pub struct JobRunner {
    jobs: Arc<BTreeMap<String, JobConfig>>,
    imports: ImportRunner,
    provisioning: ProvisionRunner,
    running: Arc<Mutex<BTreeSet<String>>>,
    gates: Arc<BTreeMap<String, TargetGate>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl JobRunner {
    /// A runner for the config's jobs. Provisioning jobs run on a [`ProvisionRunner`] over
    /// the import runner's store and connectors.
    pub fn new(config: &Config, imports: ImportRunner) -> Self {
        let (store, connectors, shared_config) = imports.parts();
        let provisioning = ProvisionRunner::new(store, connectors, shared_config);
        Self::with_provisioning(config, imports, provisioning)
    }

    /// A runner for the config's jobs with the given provisioning engine (whose circuit
    /// breakers it then shares).
    pub fn with_provisioning(
        config: &Config,
        imports: ImportRunner,
        provisioning: ProvisionRunner,
    ) -> Self {
        let gates = config
            .targets
            .keys()
            .map(|name| (name.clone(), TargetGate::default()))
            .collect();
        Self {
            jobs: Arc::new(config.jobs.clone()),
            imports,
            provisioning,
            running: Arc::new(Mutex::new(BTreeSet::new())),
            gates: Arc::new(gates),
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// The configured jobs.
    pub fn jobs(&self) -> &BTreeMap<String, JobConfig> {
        &self.jobs
    }

    /// The provisioning engine.
    pub fn provisioning(&self) -> &ProvisionRunner {
        &self.provisioning
    }

    /// Runs one provisioning pass over `target` in the background, now (instant
    /// provisioning after a submit). Passes may overlap: task leases keep each task to one
    /// worker and the per-target concurrency limit is shared. Does nothing while shutting
    /// down (the next tick runs the task).
    pub fn provision_now(&self, target: &str) {
        if self.tracker.is_closed() {
            return;
        }
        let engine = self.provisioning.clone();
        let cancel = self.cancel.clone();
        let target = target.to_string();
        self.tracker.spawn(async move {
            match engine.run_pass(Some(&target), &cancel).await {
                Ok(report) => info!(
                    target = %target,
                    succeeded = report.succeeded,
                    retried = report.retried,
                    failed = report.failed,
                    "Instant provisioning pass finished."
                ),
                Err(err) => {
                    warn!(target = %target, error = %err, "Instant provisioning pass failed.")
                }
            }
        });
    }

    /// Whether a job is running now.
    pub fn is_running(&self, job: &str) -> bool {
        self.running_set().contains(job)
    }

    fn running_set(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a job in the background. The returned receiver yields the id of its run
    /// record once it is written (it is dropped without a value if the run could not start).
    pub fn trigger(
        &self,
        name: &str,
        trigger: Trigger,
        actor: String,
        allow_deletions: bool,
    ) -> Result<oneshot::Receiver<i64>, TriggerError> {
        if self.tracker.is_closed() {
            return Err(TriggerError::ShuttingDown);
        }
        let job = self
            .jobs
            .get(name)
            .cloned()
            .ok_or_else(|| TriggerError::UnknownJob(name.to_string()))?;
        let parts = match job.kind {
            JobKind::AccountImport => ImportParts::Accounts,
            JobKind::AccessImport => ImportParts::Access,
            JobKind::Provisioning => return self.trigger_provisioning(name, &job, trigger, actor),
        };
        let target = job.target.clone().unwrap_or_default();
        if !self.running_set().insert(name.to_string()) {
            self.count_skip(name, &target);
            return Err(TriggerError::AlreadyRunning(name.to_string()));
        }
        // Take the target's place in line now, synchronously, so that jobs triggered in
        // order (account import, then access import) run in that order.
        let gate = self.gates.get(&target);
        let guard = match gate.map(|gate| gate.lock.clone().try_lock_owned()) {
            Some(Ok(guard)) => Some(guard),
            Some(Err(_)) => None,
            None => None,
        };
        let must_wait = guard.is_none() && gate.is_some();
        if must_wait {
            if let Some(gate) = gate {
                if gate.waiting.fetch_add(1, Ordering::SeqCst) >= 1 {
                    gate.waiting.fetch_sub(1, Ordering::SeqCst);
                    self.running_set().remove(name);
                    self.count_skip(name, &target);
                    return Err(TriggerError::TargetBusy {
                        job: name.to_string(),
                        target,
                    });
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        let runner = self.clone();
        let name = name.to_string();
        self.tracker.spawn(async move {
            let _guard = match guard {
                Some(guard) => Some(guard),
                None => match runner.gates.get(&target) {
                    Some(gate) => {
                        info!(job = %name, target = %target, "Waiting for another job of the same target to finish.");
                        let guard = gate.lock.clone().lock_owned().await;
                        gate.waiting.fetch_sub(1, Ordering::SeqCst);
                        Some(guard)
                    }
                    None => None,
                },
            };
            let request = ImportRequest {
                target: target.clone(),
                job: name.clone(),
                parts,
                mode: job.mode,
                dry_run: false,
                allow_deletions,
                trigger,
                actor,
                started: Some(tx),
            };
            if !runner.cancel.is_cancelled() {
                if let Err(err) = runner.imports.run(request, &runner.cancel).await {
                    warn!(job = %name, target = %target, error = %err, "Job could not run.");
                }
            }
            runner.running_set().remove(&name);
        });
        Ok(rx)
    }

    /// Starts a provisioning job: one recorded pass over its target (or every target). It
    /// never overlaps itself and does not wait for imports (tasks carry their own leases).
    fn trigger_provisioning(
        &self,
        name: &str,
        job: &JobConfig,
        trigger: Trigger,
        actor: String,
    ) -> Result<oneshot::Receiver<i64>, TriggerError> {
        let label = job.target.clone().unwrap_or_else(|| "all".to_string());
        if !self.running_set().insert(name.to_string()) {
            self.count_skip(name, &label);
            return Err(TriggerError::AlreadyRunning(name.to_string()));
        }
        let (tx, rx) = oneshot::channel();
        let runner = self.clone();
        let name = name.to_string();
        let target = job.target.clone();
        self.tracker.spawn(async move {
            if !runner.cancel.is_cancelled() {
                if let Err(err) = runner
                    .provisioning
                    .run_recorded(
                        &name,
                        target.as_deref(),
                        trigger,
                        &actor,
                        Some(tx),
                        &runner.cancel,
                    )
                    .await
                {
                    warn!(job = %name, error = %err, "Job could not run.");
                }
            }
            runner.running_set().remove(&name);
        });
        Ok(rx)
    }

    fn count_skip(&self, job: &str, target: &str) {
        info!(job = %job, target = %target, "Tick skipped: the job is still running.");
        metrics::counter!(
            telemetry::JOB_SKIPPED_TOTAL,
            "job" => job.to_string(),
            "target" => target.to_string()
        )
        .increment(1);
    }

    /// Stops accepting work, waits up to `grace` for running jobs, then interrupts them
    /// (between pages: nothing is marked) and waits a little more for them to record it.
    pub async fn shutdown(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(grace = ?grace, "Jobs still running at the shutdown deadline; interrupting them.");
            self.cancel.cancel();
            if tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
                .await
                .is_err()
            {
                warn!("Jobs did not stop in time; their runs are marked failed at next start.");
            }
        }
    }
}

/// The cron trigger: fires configured jobs on their schedules, in UTC.
pub struct Scheduler {
    inner: JobScheduler,
}

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
#[error("scheduler error for {what}: {message}")]
pub struct SchedulerError {
    what: String,
    message: String,
}

impl Scheduler {
    /// Registers every configured job and starts triggering.
    pub async fn start(runner: &JobRunner) -> Result<Self, SchedulerError> {
        let inner = JobScheduler::new().await.map_err(|err| SchedulerError {
            what: "start".into(),
            message: err.to_string(),
        })?;
        for (name, job) in runner.jobs().iter() {
            let tick_runner = runner.clone();
            let tick_name = name.clone();
            let cron_job = Job::new_async_tz(job.schedule.as_str(), Utc, move |_id, _lock| {
                let runner = tick_runner.clone();
                let name = tick_name.clone();
                Box::pin(async move {
                    match runner.trigger(&name, Trigger::Schedule, "scheduler".into(), false) {
                        Ok(_)
                        | Err(TriggerError::AlreadyRunning(_))
                        | Err(TriggerError::TargetBusy { .. }) => {}
                        Err(err) => {
                            warn!(job = %name, error = %err, "Scheduled job did not start.")
                        }
                    }
                })
            })
            .map_err(|err| SchedulerError {
                what: format!("job {name}"),
                message: err.to_string(),
            })?;
            inner.add(cron_job).await.map_err(|err| SchedulerError {
                what: format!("job {name}"),
                message: err.to_string(),
            })?;
        }
        inner.start().await.map_err(|err| SchedulerError {
            what: "start".into(),
            message: err.to_string(),
        })?;
        Ok(Self { inner })
    }

    /// Stops triggering.
    pub async fn stop(mut self) {
        if let Err(err) = self.inner.shutdown().await {
            warn!(error = %err, "Scheduler did not stop cleanly.");
        }
    }
}

/// Runs once, at start, every import job whose last success is older than one interval of
/// its schedule (or that never succeeded), account imports first.
pub async fn catch_up(runner: &JobRunner, store: &dyn Store) {
    let now = clock::now();
    let mut due: Vec<(&String, &JobConfig)> = Vec::new();
    for (name, job) in runner.jobs().iter() {
        let Some(target) = job.target.as_deref() else {
            continue;
        };
        if job.kind == JobKind::Provisioning {
            continue;
        }
        let Some(interval) = schedule_interval(&job.schedule, now) else {
            continue;
        };
        let last = match store.last_success(target, job.kind).await {
            Ok(last) => last.and_then(|run| run.finished_at),
            Err(err) => {
                warn!(job = %name, error = %err, "Cannot read the last run; not catching up.");
                continue;
            }
        };
        let missed = last.is_none_or(|at| now.signed_duration_since(at) > interval);
        if missed {
            due.push((name, job));
        }
    }
    // Account imports first; one job per (target, kind): running the same import twice at
    // start is redundant, and only one job may wait for a busy target.
    due.sort_by_key(|(_, job)| job.kind != JobKind::AccountImport);
    let mut seen = BTreeSet::new();
    due.retain(|(_, job)| seen.insert((job.target.clone(), job.kind)));
    for (name, _) in due {
        info!(job = %name, "Catching up a run missed while idsync was down.");
        if let Err(err) = runner.trigger(name, Trigger::Startup, "scheduler".into(), false) {
            warn!(job = %name, error = %err, "Catch-up run did not start.");
        }
    }
}

/// The gap between the next two fire times of a schedule.
pub fn schedule_interval(schedule: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
    let cron = crate::config::parse_schedule(schedule).ok()?;
    // croner keeps the sub-seconds of its starting point; fire times are whole seconds.
    let now = now.with_nanosecond(0).unwrap_or(now);
    let mut upcoming = cron.iter_after(now);
    let first = upcoming.next()?;
    let second = upcoming.next()?;
    Some(second.signed_duration_since(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_a_half_hourly_schedule() {
        let now = clock::parse("2026-11-25T10:07:00Z").unwrap();
        assert_eq!(
            schedule_interval("0 */30 * * * *", now),
            Some(chrono::Duration::minutes(30))
        );
        assert_eq!(schedule_interval("not a cron", now), None);
    }
}
