//! The provisioning engine: the job that carries queued tasks to the targets and retries
//! them until they succeed or are judged failed (what Saviynt calls the WSRETRY job).
//!
//! A *pass* returns expired leases to the queue, fails tasks whose dependency failed, then
//! claims due tasks and runs them until none is due, one dispatcher per target so that one
//! target's slowness never delays another's. Within a target at most `max_concurrency`
//! attempts are in flight (shared by concurrent passes); the store hands out the tasks of
//! one account one at a time, in submission order. A dispatcher claims as many tasks as it
//! has free slots in one store transaction, runs each attempt on its own tokio task, and
//! writes the results of attempts that ended close together in one transaction
//! ([`Store::finish_attempts`]); each attempt's heartbeat keeps its lease until its result is
//! written, and a result that cannot be written leaves its task to its lease.
//!
//! Each attempt: the target's circuit breaker is asked first (an open circuit puts the task
//! back without counting the attempt); a `create_account` whose last attempt had an unknown
//! outcome looks the account up first; then the connector is called and its answer
//! classified — done / already done succeed (and update the store in the same transaction),
//! transient errors and 429s retry with exponential backoff and jitter (at least the
//! target's `Retry-After`) until `max_attempts` or `retry.give_up_after`, refusals fail at
//! once with the target's message, and a 401 opens the target's circuit and requeues.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::clock;
use crate::config::{Config, TargetKind, TaskRetryConfig};
use crate::connector::{Connector, ConnectorError, ErrorClass, ProvisionOutcome, ProvisionRequest};
use crate::model::{
    AccountStatus, AttemptOutcome, JobKind, Operation, RunOutcome, Task, TaskStatus, Trigger,
};
use crate::store::{
    AttemptResult, Claim, NewRun, RunFinish, Store, StoreEffect, StoreError, TaskNext,
};
use crate::sync::breaker::{BreakerSettings, Breakers, Gate, OpenReason};
use crate::sync::heartbeat::{self, Heartbeat};
use crate::telemetry;

/// How long a claimed task stays leased to this process without a heartbeat. The worker
/// renews it every third of it while the attempt runs, so a long attempt keeps its task; a
/// task whose worker died (no renewal) goes back to the queue as `uncertain` within one
/// lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// At most this many attempt results are written in one store transaction.
const FINISH_BATCH: usize = 64;

/// How long the results of attempts that ended wait for others before they are written.
const FINISH_WAIT: Duration = Duration::from_millis(2);

/// Why a pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The target is not configured.
    #[error("unknown target `{0}` (see [targets] in the config)")]
    UnknownTarget(String),
    /// The store failed before any task ran.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PassReport {
    /// Tasks claimed (attempts started, including those refused by an open circuit).
    pub claimed: u64,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Of those, tasks whose change was already in place.
    pub already_done: u64,
    /// Tasks that will be retried after a transient error or a 429.
    pub retried: u64,
    /// Tasks put back without counting the attempt (open circuit, 401).
    pub requeued: u64,
    /// Tasks that failed in this pass (including dependents of a failed create).
    pub failed: u64,
    /// The ids of the tasks that failed in this pass after an attempt.
    pub failed_tasks: Vec<i64>,
    /// Running tasks of a dead process returned to the queue at the start of the pass.
    pub released_leases: u64,
    /// Store errors that stopped a worker (the leases of its tasks protect them).
    pub errors: Vec<String>,
    /// Whether shutdown stopped the pass before the queue was drained.
    pub interrupted: bool,
}

impl PassReport {
    fn merge(&mut self, other: PassReport) {
        self.claimed += other.claimed;
        self.succeeded += other.succeeded;
        self.already_done += other.already_done;
        self.retried += other.retried;
        self.requeued += other.requeued;
        self.failed += other.failed;
        self.failed_tasks.extend(other.failed_tasks);
        self.released_leases += other.released_leases;
        self.errors.extend(other.errors);
        self.interrupted |= other.interrupted;
    }

    fn count(&mut self, step: &Step, task_id: i64) {
        self.claimed += 1;
        match step {
            Step::Succeeded { already_done } => {
                self.succeeded += 1;
                if *already_done {
                    self.already_done += 1;
                }
            }
            Step::Retried => self.retried += 1,
            Step::Requeued => self.requeued += 1,
            Step::Failed => {
                self.failed += 1;
                self.failed_tasks.push(task_id);
            }
        }
    }

    /// The contract exit code of `idsync provision`: 1 when a task of this pass ended
    /// `failed` or the pass hit a store error, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.failed > 0 || !self.errors.is_empty() {
            1
        } else {
            0
        }
    }
}

/// How one attempt left its task.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Succeeded { already_done: bool },
    Retried,
    Requeued,
    Failed,
}

/// Why a connector call (and the look-ups around it) did not come to a [`Called`].
enum Failure {
    /// The call failed; the error's class decides what happens next.
    Call(ConnectorError),
    /// The create went through but reading the new account's id failed: the outcome is
    /// uncertain (the next attempt reads the target first), the error's class decides
    /// when that attempt comes.
    IdUnread(ConnectorError),
}

/// What a connector call (and the look-up before it) came to.
enum Called {
    /// The change is in place; for creates, the account's id when known.
    Done {
        account_id: Option<String>,
        already_done: bool,
    },
    /// The login exists at the target but belongs to someone else.
    Taken(String),
}

/// Runs provisioning passes against the configured targets. Cheap to clone; clones share
/// the circuit breakers and the per-target concurrency limits.
#[derive(Clone)]
pub struct ProvisionRunner {
    store: Arc<dyn Store>,
    connectors: Arc<BTreeMap<String, Arc<dyn Connector>>>,
    config: Arc<Config>,
    breakers: Arc<Breakers>,
    permits: Arc<BTreeMap<String, Arc<Semaphore>>>,
    lease: Duration,
}

impl ProvisionRunner {
    /// A runner over the given store and connectors, with the default lease and breaker.
    pub fn new(
        store: Arc<dyn Store>,
        connectors: Arc<BTreeMap<String, Arc<dyn Connector>>>,
        config: Arc<Config>,
    ) -> Self {
        let permits = config
            .targets
            .iter()
            .map(|(name, target)| {
                let permits = usize::try_from(target.max_concurrency.max(1)).unwrap_or(1);
                (name.clone(), Arc::new(Semaphore::new(permits)))
            })
            .collect();
        Self {
            store,
            connectors,
            config,
            breakers: Arc::new(Breakers::new(BreakerSettings::default())),
            permits: Arc::new(permits),
            lease: DEFAULT_LEASE,
        }
    }

    /// The same runner with another lease length for targets that set no `task_lease` (tests
    /// of crash recovery).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The same runner with other breaker settings (fresh circuits).
    pub fn with_breaker_settings(mut self, settings: BreakerSettings) -> Self {
        self.breakers = Arc::new(Breakers::new(settings));
        self
    }

    /// The circuit breakers (for the API's target states).
    pub fn breakers(&self) -> &Arc<Breakers> {
        &self.breakers
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The connectors.
    pub fn connectors(&self) -> &Arc<BTreeMap<String, Arc<dyn Connector>>> {
        &self.connectors
    }

    /// The config.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// One pass over the due tasks of `target` (every target when `None`): returns expired
    /// leases, fails orphaned dependents, then claims and runs due tasks until none is due.
    /// `cancel` stops the pass between attempts (an attempt in flight finishes).
    pub async fn run_pass(
        &self,
        target: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<PassReport, ProvisionError> {
        let targets: Vec<(String, Arc<dyn Connector>)> = match target {
            Some(name) => {
                let connector = self
                    .connectors
                    .get(name)
                    .cloned()
                    .ok_or_else(|| ProvisionError::UnknownTarget(name.to_string()))?;
                vec![(name.to_string(), connector)]
            }
            None => self
                .connectors
                .iter()
                .map(|(name, connector)| (name.clone(), connector.clone()))
                .collect(),
        };
        let now = clock::now();
        let mut report = PassReport {
            released_leases: self.store.release_expired_leases(now).await?,
            ..PassReport::default()
        };
        if report.released_leases > 0 {
            warn!(
                tasks = report.released_leases,
                "Tasks left running by a stopped process were returned to the queue; their next attempt checks the target first."
            );
        }
        let orphans = self.store.fail_orphaned_dependents(now).await?;
        report.failed += orphans;
        if orphans > 0 {
            warn!(
                tasks = orphans,
                "Tasks waiting for a failed or cancelled create were failed."
            );
        }
        let groups = targets.iter().map(|(name, connector)| {
            let span = tracing::info_span!("provision_target", target = %name);
            self.run_target(name, connector.clone(), cancel)
                .instrument(span)
        });
        for group in join_all(groups).await {
            report.merge(group);
        }
        self.refresh_gauges().await;
        Ok(report)
    }

    /// Records a provisioning run around one pass (the run record's `counts` is the
    /// [`PassReport`]). A pass whose tasks failed is still a succeeded run; a store error or
    /// shutdown makes it a failed one.
    pub async fn run_recorded(
        &self,
        job: &str,
        target: Option<&str>,
        trigger: Trigger,
        actor: &str,
        started: Option<oneshot::Sender<i64>>,
        cancel: &CancellationToken,
    ) -> Result<(i64, PassReport), ProvisionError> {
        if let Some(name) = target {
            if !self.connectors.contains_key(name) {
                return Err(ProvisionError::UnknownTarget(name.to_string()));
            }
        }
        let clock_start = Instant::now();
        let run_id = self
            .store
            .start_run(&NewRun {
                job: job.to_string(),
                target: target.map(str::to_string),
                kind: JobKind::Provisioning,
                trigger,
                actor: actor.to_string(),
                started_at: clock::now(),
            })
            .await?;
        if let Some(tx) = started {
            let _ = tx.send(run_id);
        }
        let alive = heartbeat::run_alive(self.store.clone(), run_id).await;
        let span = tracing::info_span!(
            "job_run",
            run_id,
            job = %job,
            target = target.unwrap_or("all"),
            kind = %JobKind::Provisioning,
        );
        let result = self.run_pass(target, cancel).instrument(span).await;
        let (outcome, error, report) = match result {
            Ok(report) if report.interrupted => (
                RunOutcome::Failed,
                Some("interrupted by shutdown".to_string()),
                report,
            ),
            Ok(report) if !report.errors.is_empty() => {
                (RunOutcome::Failed, Some(report.errors.join("; ")), report)
            }
            Ok(report) => (RunOutcome::Succeeded, None, report),
            Err(err) => (
                RunOutcome::Failed,
                Some(err.to_string()),
                PassReport::default(),
            ),
        };
        let finish = RunFinish {
            outcome,
            finished_at: clock::now(),
            counts: serde_json::to_value(&report).unwrap_or_default(),
            error,
        };
        let finished = self.store.finish_run(run_id, &finish).await;
        alive.release().await;
        finished?;
        record_run_metrics(job, target, outcome, clock_start.elapsed());
        info!(
            run_id,
            job = %job,
            outcome = %outcome,
            succeeded = report.succeeded,
            retried = report.retried,
            requeued = report.requeued,
            failed = report.failed,
            "Provisioning pass finished."
        );
        Ok((run_id, report))
    }

    /// Runs the due tasks of one target, at most `max_concurrency` attempts at a time: claims
    /// as many due tasks as there are free slots in one transaction, runs each attempt on its
    /// own tokio task, and records the attempts that ended in batches (see [`Finished`]).
    async fn run_target(
        &self,
        target: &str,
        connector: Arc<dyn Connector>,
        cancel: &CancellationToken,
    ) -> PassReport {
        let permits = match self.permits.get(target) {
            Some(permits) => permits.clone(),
            None => Arc::new(Semaphore::new(1)),
        };
        let slots = self
            .config
            .targets
            .get(target)
            .map(|t| usize::try_from(t.max_concurrency.max(1)).unwrap_or(1))
            .unwrap_or(1);
        let lease = self
            .config
            .targets
            .get(target)
            .and_then(|config| config.task_lease)
            .map_or(self.lease, |lease| lease.get());
        let mut report = PassReport::default();
        let mut running: JoinSet<Finished> = JoinSet::new();
        let mut ended: Vec<Finished> = Vec::new();
        let mut claiming = true;
        loop {
            if claiming && cancel.is_cancelled() {
                report.interrupted = true;
                claiming = false;
            }
            if claiming {
                let held = tokio::select! {
                    held = free_slots(&permits, slots, running.is_empty()) => held,
                    _ = cancel.cancelled() => {
                        report.interrupted = true;
                        claiming = false;
                        Vec::new()
                    }
                };
                if held.is_empty() && running.is_empty() {
                    // No slot will come free (the semaphore was closed).
                    claiming = false;
                } else if !held.is_empty() {
                    let claim = Claim {
                        target: Some(target.to_string()),
                        now: clock::now(),
                        lease,
                        limit: u32::try_from(held.len()).unwrap_or(1),
                    };
                    match self.store.claim_tasks(&claim).await {
                        Ok(tasks) if tasks.is_empty() && running.is_empty() => claiming = false,
                        Ok(tasks) => {
                            for (task, permit) in tasks.into_iter().zip(held) {
                                let runner = self.clone();
                                let connector = connector.clone();
                                running.spawn(
                                    async move {
                                        let mut finished =
                                            runner.attempt(connector.as_ref(), task, lease).await;
                                        finished.slot = Some(permit);
                                        finished
                                    }
                                    .instrument(tracing::Span::current()),
                                );
                            }
                        }
                        Err(err) => {
                            warn!(target = %target, error = %err, "Cannot claim tasks; no more tasks of this target start in this pass.");
                            report.errors.push(err.to_string());
                            claiming = false;
                        }
                    }
                }
            }
            if running.is_empty() && !claiming {
                break;
            }
            collect_ended(&mut running, &mut ended, slots, &mut report).await;
            self.record_ended(target, &mut ended, &mut report).await;
        }
        self.record_ended(target, &mut ended, &mut report).await;
        report
    }

    /// Records attempts that ended, [`FINISH_BATCH`] at a time, and counts them. A finish
    /// that could not be written is reported; its task keeps its lease until the lease runs
    /// out, and then comes back `uncertain` (its next attempt reads the target first).
    async fn record_ended(&self, target: &str, ended: &mut Vec<Finished>, report: &mut PassReport) {
        while !ended.is_empty() {
            let batch: Vec<Finished> = ended.drain(..ended.len().min(FINISH_BATCH)).collect();
            let results: Vec<AttemptResult> = batch
                .iter()
                .map(|finished| finished.result.clone())
                .collect();
            // Each finish's own answer; a transaction that failed as a whole fails them all.
            let written: Vec<Result<(), String>> = match self.store.finish_attempts(&results).await
            {
                Ok(written) => written
                    .into_iter()
                    .map(|one| one.map(drop).map_err(|err| err.to_string()))
                    .collect(),
                Err(err) => vec![Err(err.to_string()); batch.len()],
            };
            for (finished, one) in batch.iter().zip(written) {
                let id = finished.result.task_id;
                match one {
                    Ok(()) => report.count(&finished.step, id),
                    Err(error) => {
                        warn!(task_id = id, target = %target, error = %error, "Cannot record the attempt; the task's lease returns it to the queue.");
                        report.errors.push(error);
                    }
                }
            }
            // The heartbeats of the batch stop here, once their finishes are written (or not).
            drop(batch);
        }
    }

    /// Renews the lease of a claimed task while its attempt runs.
    fn heartbeat(&self, task: &Task, lease: Duration) -> Heartbeat {
        let store = self.store.clone();
        let (id, attempt) = (task.id, task.attempts);
        Heartbeat::start(
            format!("task {id}"),
            heartbeat::renew_every(lease),
            move || {
                let store = store.clone();
                async move {
                    store
                        .renew_task_lease(id, attempt, clock::after(clock::now(), lease))
                        .await
                }
            },
        )
    }

    /// One attempt of one claimed task, ready to be recorded. The task's lease is renewed
    /// until the [`Finished`] is dropped, after its result is written.
    async fn attempt(&self, connector: &dyn Connector, task: Task, lease: Duration) -> Finished {
        let heartbeat = self.heartbeat(&task, lease);
        let target = task.target.clone();
        let now = clock::now();
        let mut trial = false;
        match self.breakers.check(&target, now) {
            Gate::Closed => {}
            Gate::Open { reason, until } => return refused(&task, reason, until, heartbeat),
            Gate::HalfOpen {
                reason: OpenReason::Transient,
            } => trial = true,
            Gate::HalfOpen {
                reason: OpenReason::AuthFailed,
            } => match connector.test_connection().await {
                Ok(()) => {
                    self.breakers.probe_result(&target, true, clock::now());
                    info!(target = %target, "Probe succeeded; the target's circuit is closed.");
                }
                Err(err) => {
                    let at = clock::now();
                    let until = self
                        .breakers
                        .probe_result(&target, false, at)
                        .unwrap_or(at + chrono::Duration::seconds(30));
                    warn!(target = %target, error = %err, until = %clock::format(until), "Probe failed; the target's circuit stays open.");
                    return refused(&task, OpenReason::AuthFailed, until, heartbeat);
                }
            },
        }

        let called = self.call(connector, &task).await;
        let finished_at = clock::now();
        let retry = self.retry_config(&target);
        let (outcome, error, next) = match called {
            Ok(Called::Done {
                account_id,
                already_done,
            }) => {
                self.breakers.record_success(&target);
                let (account_id, effect) = self.effect(&task, account_id);
                let outcome = if already_done {
                    AttemptOutcome::AlreadyDone
                } else {
                    AttemptOutcome::Succeeded
                };
                (outcome, None, TaskNext::Succeeded { account_id, effect })
            }
            Ok(Called::Taken(id)) => {
                self.breakers.record_success(&target);
                (
                    AttemptOutcome::Permanent,
                    Some(format!("username taken by account id {id}")),
                    TaskNext::Failed,
                )
            }
            Err(failure) => {
                let (err, id_unread) = match failure {
                    Failure::Call(err) => (err, false),
                    Failure::IdUnread(err) => (err, true),
                };
                // A create that failed in transit (a timeout, a reset, a 5xx from a proxy)
                // may have taken effect: its next attempt must read the target first. A 429
                // was refused before any work.
                let maybe_created = task.operation == Operation::CreateAccount
                    && err.class() == ErrorClass::Transient;
                let message = if id_unread {
                    format!(
                        "the account was created, but reading its id failed: {err}; the next attempt reads the target first"
                    )
                } else if maybe_created {
                    format!(
                        "{err}; the create may have taken effect, so the next attempt reads the target first"
                    )
                } else {
                    err.to_string()
                };
                let (outcome, error, next) = match err.class() {
                    ErrorClass::Transient | ErrorClass::RateLimited => {
                        let retry_after = match &err {
                            ConnectorError::RateLimited { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        let outcome = if err.class() == ErrorClass::RateLimited {
                            AttemptOutcome::RateLimited
                        } else {
                            if self.breakers.record_transient(&target, finished_at) {
                                warn!(target = %target, "Too many consecutive transient failures; the target's circuit is open.");
                            }
                            AttemptOutcome::Transient
                        };
                        if outcome == AttemptOutcome::RateLimited && trial {
                            self.breakers.release_trial(&target);
                        }
                        let next = match retry_at(
                            &retry,
                            task.attempts,
                            task.max_attempts,
                            task.first_attempt_at,
                            finished_at,
                            retry_after,
                            rand::random::<f64>(),
                        ) {
                            Some(at) => TaskNext::Retry { at },
                            None => TaskNext::Failed,
                        };
                        (outcome, Some(message), next)
                    }
                    ErrorClass::Auth => {
                        let until = self.breakers.record_auth_failure(&target, finished_at);
                        warn!(target = %target, error = %message, until = %clock::format(until), "The target rejected the credentials; its circuit is open until a probe succeeds.");
                        (
                            AttemptOutcome::Auth,
                            Some(message),
                            TaskNext::Requeue { at: until },
                        )
                    }
                    ErrorClass::AlreadyDone => {
                        // Handled in `call`; kept for completeness.
                        self.breakers.record_success(&target);
                        let (account_id, effect) = self.effect(&task, None);
                        (
                            AttemptOutcome::AlreadyDone,
                            None,
                            TaskNext::Succeeded { account_id, effect },
                        )
                    }
                    ErrorClass::Unsupported => {
                        if trial {
                            self.breakers.release_trial(&target);
                        }
                        (AttemptOutcome::Permanent, Some(message), TaskNext::Failed)
                    }
                    ErrorClass::Permanent | ErrorClass::Forbidden => {
                        self.breakers.record_success(&target);
                        (AttemptOutcome::Permanent, Some(message), TaskNext::Failed)
                    }
                };
                if id_unread {
                    // The change happened: whatever comes next must check the target first.
                    warn!(task_id = task.id, target = %target, error = %err, "The account was created, but reading its id failed; the task stays uncertain and its next attempt reads the target first.");
                    (AttemptOutcome::Unknown, error, next)
                } else if maybe_created {
                    (AttemptOutcome::Unknown, error, next)
                } else {
                    (outcome, error, next)
                }
            }
        };
        metrics::counter!(
            telemetry::TASK_ATTEMPTS_TOTAL,
            "target" => target.clone(),
            "operation" => task.operation.to_string(),
            "outcome" => outcome.to_string()
        )
        .increment(1);
        let step = match &next {
            TaskNext::Succeeded { .. } => Step::Succeeded {
                already_done: outcome == AttemptOutcome::AlreadyDone,
            },
            TaskNext::Retry { .. } => Step::Retried,
            TaskNext::Requeue { .. } => Step::Requeued,
            TaskNext::Failed => Step::Failed,
        };
        log_attempt(&task, outcome, &next, error.as_deref());
        Finished {
            step,
            result: AttemptResult {
                task_id: task.id,
                attempt: task.attempts,
                outcome,
                error,
                finished_at,
                next,
            },
            _heartbeat: heartbeat,
            slot: None,
        }
    }

    /// Calls the target: for a create whose last outcome is unknown, reads the target first.
    async fn call(&self, connector: &dyn Connector, task: &Task) -> Result<Called, Failure> {
        if task.uncertain && task.operation == Operation::CreateAccount {
            match connector.lookup_account(&task.account).await {
                Ok(Some(found)) => {
                    return Ok(if same_email(task, found.email.as_deref()) {
                        info!(task_id = task.id, target = %task.target, "The account of an uncertain create exists and matches; counting it as done.");
                        Called::Done {
                            account_id: Some(found.id),
                            already_done: true,
                        }
                    } else {
                        Called::Taken(found.id)
                    });
                }
                Ok(None) => {}
                Err(err) if err.class() == ErrorClass::Unsupported => {}
                Err(err) => return Err(Failure::Call(err)),
            }
        }
        let request = self.request(task).await;
        let (account_id, already_done) = match connector.provision(&request).await {
            Ok(ProvisionOutcome::Done { account_id }) => (account_id, false),
            Ok(ProvisionOutcome::AlreadyDone { account_id }) => (account_id, true),
            Err(err) if err.class() == ErrorClass::AlreadyDone => (None, true),
            Err(err) => return Err(Failure::Call(err)),
        };
        // A create must leave the new account's id; ask the target when it did not say.
        let account_id = match (task.operation, account_id) {
            (Operation::CreateAccount, None) => {
                match connector.lookup_account(&task.account).await {
                    Ok(Some(found)) => Some(found.id),
                    Ok(None) => {
                        return Err(Failure::IdUnread(ConnectorError::Transient {
                            target: task.target.clone(),
                            message: format!("the target does not list `{}` yet", task.account),
                        }))
                    }
                    Err(err) if err.class() == ErrorClass::Unsupported => {
                        info!(task_id = task.id, target = %task.target, "The target cannot look accounts up; the new account's id arrives with the next account import.");
                        None
                    }
                    Err(err) => return Err(Failure::IdUnread(err)),
                }
            }
            (_, id) => id,
        };
        Ok(Called::Done {
            account_id,
            already_done,
        })
    }

    /// The connector request of a task. Templates see the account's login as the store
    /// knows it now (a rename since submit is followed by id).
    async fn request(&self, task: &Task) -> ProvisionRequest {
        let mut account_name = task.account.clone();
        if let Some(id) = &task.account_id {
            match self.store.get_account(&task.target, id).await {
                Ok(Some(account)) => account_name = account.name,
                Ok(None) => {}
                Err(err) => {
                    warn!(task_id = task.id, error = %err, "Cannot read the account's current name; using the name given at submit.")
                }
            }
        }
        ProvisionRequest {
            operation: task.operation,
            account_id: task.account_id.clone(),
            account_name,
            entitlement: task
                .entitlement
                .as_ref()
                .map(|e| (e.entitlement_type.clone(), e.id.clone())),
            attributes: task.attributes.clone(),
            entitlement_name: task.entitlement.as_ref().map(|e| e.name.clone()),
            task_id: Some(task.id),
            request_id: Some(
                task.request_id
                    .clone()
                    .unwrap_or_else(|| task.id.to_string()),
            ),
        }
    }

    /// The store change of a succeeded task.
    fn effect(&self, task: &Task, created_id: Option<String>) -> (Option<String>, StoreEffect) {
        let kind = self.config.targets.get(&task.target).map(|t| t.kind);
        let effect = match task.operation {
            Operation::CreateAccount => match &created_id {
                Some(id) => StoreEffect::AccountCreated {
                    account_id: id.clone(),
                    name: task.account.clone(),
                    display_name: display_name(&task.attributes),
                    email: attribute(&task.attributes, "email"),
                },
                None => StoreEffect::None,
            },
            Operation::UpdateAccount => StoreEffect::AccountUpdated {
                display_name: display_name(&task.attributes),
                email: attribute(&task.attributes, "email"),
            },
            Operation::EnableAccount => StoreEffect::AccountStatus(AccountStatus::Active),
            Operation::DisableAccount => StoreEffect::AccountStatus(AccountStatus::Inactive),
            Operation::RemoveAccount => StoreEffect::AccountStatus(AccountStatus::Suspended),
            Operation::AddAccess => {
                let is_container = task
                    .entitlement
                    .as_ref()
                    .is_some_and(|e| e.entitlement_type.eq_ignore_ascii_case("container"));
                if kind == Some(TargetKind::Digicert) && is_container {
                    StoreEffect::GrantMoved
                } else {
                    StoreEffect::GrantActive
                }
            }
            Operation::RemoveAccess => StoreEffect::GrantRemoved,
        };
        let account_id = created_id.or_else(|| task.account_id.clone());
        (account_id, effect)
    }

    fn retry_config(&self, target: &str) -> TaskRetryConfig {
        self.config
            .targets
            .get(target)
            .map(|t| t.retry)
            .unwrap_or_default()
    }

    /// Sets `idsync_tasks`, `idsync_task_oldest_pending_age_seconds` and
    /// `idsync_target_circuit_open` from the store and the breakers.
    pub async fn refresh_gauges(&self) {
        let gauges = match self.store.task_gauges().await {
            Ok(gauges) => gauges,
            Err(err) => {
                warn!(error = %err, "Cannot read task counts for the metrics.");
                return;
            }
        };
        for target in self.config.targets.keys() {
            for status in TaskStatus::ALL {
                let count = gauges
                    .iter()
                    .find(|g| &g.target == target && g.status == *status)
                    .map_or(0, |g| g.count);
                metrics::gauge!(
                    telemetry::TASKS,
                    "target" => target.clone(),
                    "status" => status.to_string()
                )
                .set(count as f64);
            }
            self.breakers.publish(target);
        }
        let oldest = match self.store.oldest_pending().await {
            Ok(oldest) => oldest,
            Err(err) => {
                warn!(error = %err, "Cannot read the oldest pending task for the metrics.");
                return;
            }
        };
        let now = clock::now();
        for target in self.config.targets.keys() {
            let age = oldest
                .iter()
                .find(|(name, _)| name == target)
                .map_or(0.0, |(_, at)| {
                    now.signed_duration_since(*at).num_milliseconds().max(0) as f64 / 1000.0
                });
            metrics::gauge!(telemetry::TASK_OLDEST_PENDING_AGE_SECONDS, "target" => target.clone())
                .set(age);
        }
    }
}

/// An attempt that ended, waiting to be recorded with others in one transaction. It keeps
/// its task's lease renewed (its heartbeat) until it is dropped after the write.
struct Finished {
    /// How the attempt left its task (counted once the result is written).
    step: Step,
    /// What the store records.
    result: AttemptResult,
    /// Renews the task's lease while the result waits.
    _heartbeat: Heartbeat,
    /// The target slot of the attempt: it is not reused before the result is written, so
    /// a task's end is recorded before another task takes its place.
    slot: Option<OwnedSemaphorePermit>,
}

/// The task put back without calling the target (its circuit is open).
fn refused(
    task: &Task,
    reason: OpenReason,
    until: DateTime<Utc>,
    heartbeat: Heartbeat,
) -> Finished {
    let outcome = match reason {
        OpenReason::AuthFailed => AttemptOutcome::Auth,
        OpenReason::Transient => AttemptOutcome::Transient,
    };
    let error = format!(
        "not attempted: the circuit of target {} is open ({}) until {}",
        task.target,
        reason.as_str(),
        clock::format(until)
    );
    let next = TaskNext::Requeue { at: until };
    log_attempt(task, outcome, &next, Some(&error));
    Finished {
        step: Step::Requeued,
        result: AttemptResult {
            task_id: task.id,
            attempt: task.attempts,
            outcome,
            error: Some(error),
            finished_at: clock::now(),
            next,
        },
        _heartbeat: heartbeat,
        slot: None,
    }
}

/// Free attempt slots of a target, at most `slots`. When `wait` (nothing of this pass is in
/// flight), waits for the first one (another pass may hold them all); otherwise takes only
/// those free now.
async fn free_slots(
    permits: &Arc<Semaphore>,
    slots: usize,
    wait: bool,
) -> Vec<OwnedSemaphorePermit> {
    let mut held = Vec::with_capacity(slots);
    if wait {
        match permits.clone().acquire_owned().await {
            Ok(permit) => held.push(permit),
            Err(_) => return held,
        }
    }
    while held.len() < slots {
        match permits.clone().try_acquire_owned() {
            Ok(permit) => held.push(permit),
            Err(_) => break,
        }
    }
    held
}

/// Waits for the attempts in flight to end, up to [`FINISH_BATCH`] of them and at most
/// [`FINISH_WAIT`] after the first one (so finishes are written together, not one by one),
/// and moves them to `ended`. An attempt that panicked is reported; its task's lease
/// returns it to the queue.
async fn collect_ended(
    running: &mut JoinSet<Finished>,
    ended: &mut Vec<Finished>,
    slots: usize,
    report: &mut PassReport,
) {
    // Half the slots: the other half keeps the target busy while the batch is written.
    let enough = (slots / 2).clamp(1, FINISH_BATCH);
    let mut deadline = None;
    while ended.len() < enough {
        let joined = match deadline {
            None => running.join_next().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, running.join_next()).await {
                Ok(joined) => joined,
                Err(_) => break,
            },
        };
        match joined {
            None => break,
            Some(Ok(finished)) => ended.push(finished),
            Some(Err(err)) => {
                warn!(error = %err, "A task attempt stopped unexpectedly; the task's lease returns it to the queue.");
                report
                    .errors
                    .push(format!("a task attempt stopped unexpectedly: {err}"));
            }
        }
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + FINISH_WAIT);
    }
}

/// The backoff after `attempts` failed attempts: `initial_backoff` doubled per attempt, at
/// most `max_backoff`, less up to 20 % of jitter (`jitter` in `[0, 1)`), so retries of many
/// tasks that failed together spread out.
pub fn backoff(retry: &TaskRetryConfig, attempts: u32, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(32);
    let base = retry
        .initial_backoff
        .get()
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(retry.max_backoff.get());
    let jitter = jitter.clamp(0.0, 1.0);
    base.mul_f64(1.0 - 0.2 * jitter)
}

/// When to retry a task after a transient failure, or `None` to give up: gives up when the
/// attempts are used up or `give_up_after` has passed since the first attempt; waits at least
/// `retry_after` (giving up when that lands past the deadline); otherwise the backoff,
/// clamped to the deadline so that a last attempt happens right at it.
pub fn retry_at(
    retry: &TaskRetryConfig,
    attempts: u32,
    max_attempts: u32,
    first_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<DateTime<Utc>> {
    if attempts >= max_attempts {
        return None;
    }
    let first = first_attempt_at.unwrap_or(now);
    let deadline = first + to_chrono(retry.give_up_after.get());
    if now >= deadline {
        return None;
    }
    let wait = backoff(retry, attempts, jitter).max(retry_after.unwrap_or_default());
    let at = now + to_chrono(wait);
    if at <= deadline {
        return Some(at);
    }
    match retry_after {
        Some(after) if now + to_chrono(after) > deadline => None,
        _ => Some(deadline),
    }
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn attribute(attributes: &crate::model::Attributes, key: &str) -> Option<String> {
    match attributes.get(key)? {
        serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
        serde_json::Value::Null => None,
        serde_json::Value::String(_) => None,
        other => Some(other.to_string()),
    }
}

/// `firstname lastname` from the task's attributes, when either is given.
fn display_name(attributes: &crate::model::Attributes) -> Option<String> {
    let parts: Vec<String> = ["firstname", "lastname"]
        .iter()
        .filter_map(|key| attribute(attributes, key))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Whether the task's e-mail equals `found` (case-insensitively).
fn same_email(task: &Task, found: Option<&str>) -> bool {
    match (attribute(&task.attributes, "email"), found) {
        (Some(ours), Some(theirs)) => ours.trim().eq_ignore_ascii_case(theirs.trim()),
        _ => false,
    }
}

/// Logs one attempt: task id, target, operation, outcome — never attributes or bodies.
fn log_attempt(task: &Task, outcome: AttemptOutcome, next: &TaskNext, error: Option<&str>) {
    let next_text = match next {
        TaskNext::Succeeded { .. } => "succeeded".to_string(),
        TaskNext::Retry { at } => format!("retry at {}", clock::format(*at)),
        TaskNext::Requeue { at } => format!("requeued until {}", clock::format(*at)),
        TaskNext::Failed => "failed".to_string(),
    };
    match next {
        TaskNext::Succeeded { .. } => info!(
            task_id = task.id,
            target = %task.target,
            operation = %task.operation,
            attempt = task.attempts,
            outcome = %outcome,
            "Task attempt succeeded."
        ),
        _ => warn!(
            task_id = task.id,
            target = %task.target,
            operation = %task.operation,
            attempt = task.attempts,
            outcome = %outcome,
            next = %next_text,
            error = error.unwrap_or_default(),
            "Task attempt did not succeed."
        ),
    }
}

fn record_run_metrics(job: &str, target: Option<&str>, outcome: RunOutcome, took: Duration) {
    let target = target.unwrap_or("all").to_string();
    let kind = JobKind::Provisioning.to_string();
    metrics::counter!(
        telemetry::JOB_RUNS_TOTAL,
        "job" => job.to_string(),
        "target" => target.clone(),
        "kind" => kind.clone(),
        "outcome" => outcome.to_string()
    )
    .increment(1);
    metrics::histogram!(
        telemetry::JOB_DURATION_SECONDS,
        "job" => job.to_string(),
        "target" => target.clone(),
        "kind" => kind
    )
    .record(took.as_secs_f64());
    if outcome == RunOutcome::Succeeded {
        metrics::gauge!(
            telemetry::JOB_LAST_SUCCESS,
            "job" => job.to_string(),
            "target" => target
        )
        .set(clock::now().timestamp() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDuration;

    fn retry() -> TaskRetryConfig {
        TaskRetryConfig {
            max_attempts: 8,
            initial_backoff: ConfigDuration::from_secs(10),
            max_backoff: ConfigDuration::from_secs(3600),
            give_up_after: ConfigDuration::from_secs(24 * 3600),
        }
    }

    fn t0() -> DateTime<Utc> {
        clock::parse("2026-11-25T10:00:00Z").unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let retry = retry();
        let secs: Vec<u64> = (1..=11)
            .map(|n| backoff(&retry, n, 0.0).as_secs())
            .collect();
        assert_eq!(
            secs,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff(&retry, 1, 0.5), Duration::from_secs(9));
        assert_eq!(backoff(&retry, 1, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&retry, 200, 0.0), Duration::from_secs(3600));
    }

    #[test]
    fn retry_gives_up_at_max_attempts() {
        let retry = retry();
        assert_eq!(
            retry_at(&retry, 1, 8, Some(t0()), t0(), None, 0.0),
            Some(t0() + chrono::Duration::seconds(10))
        );
        assert_eq!(retry_at(&retry, 8, 8, Some(t0()), t0(), None, 0.0), None);
        assert_eq!(retry_at(&retry, 1, 1, Some(t0()), t0(), None, 0.0), None);
    }

    #[test]
    fn retry_honours_retry_after() {
        let retry = retry();
        let at = retry_at(
            &retry,
            1,
            8,
            Some(t0()),
            t0(),
            Some(Duration::from_secs(120)),
            0.0,
        );
        assert_eq!(at, Some(t0() + chrono::Duration::seconds(120)));
        // A shorter Retry-After does not shorten the backoff.
        let at = retry_at(
            &retry,
            3,
            8,
            Some(t0()),
            t0(),
            Some(Duration::from_secs(1)),
            0.0,
        );
        assert_eq!(at, Some(t0() + chrono::Duration::seconds(40)));
    }

    #[test]
    fn retry_gives_up_after_the_deadline_and_clamps_to_it() {
        let retry = retry();
        let day = chrono::Duration::hours(24);
        assert_eq!(
            retry_at(&retry, 2, 8, Some(t0()), t0() + day, None, 0.0),
            None
        );
        // The backoff would pass the deadline: one last attempt right at it.
        let now = t0() + day - chrono::Duration::seconds(5);
        assert_eq!(
            retry_at(&retry, 2, 8, Some(t0()), now, None, 0.0),
            Some(t0() + day)
        );
        // A Retry-After past the deadline gives up.
        assert_eq!(
            retry_at(
                &retry,
                2,
                8,
                Some(t0()),
                now,
                Some(Duration::from_secs(60)),
                0.0
            ),
            None
        );
    }

    #[test]
    fn display_name_joins_first_and_last() {
        let attrs: crate::model::Attributes =
            serde_json::from_str(r#"{"firstname":"Jane","lastname":"Doe","email":""}"#).unwrap();
        assert_eq!(display_name(&attrs).as_deref(), Some("Jane Doe"));
        assert_eq!(attribute(&attrs, "email"), None);
        assert_eq!(display_name(&Default::default()), None);
    }

    #[test]
    fn exit_code_reflects_failed_tasks() {
        let mut report = PassReport::default();
        assert_eq!(report.exit_code(), 0);
        report.count(&Step::Failed, 7);
        assert_eq!(report.failed_tasks, [7]);
        assert_eq!(report.exit_code(), 1);
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use crate::model::Attributes;
    use crate::store::{Submitted, TaskFilter};
    use crate::sync::tasks::{submit, EntitlementRef, SubmitRequest};
    use crate::sync::testing::{config, connectors, seed, store, FakeConnector};
    use serde_json::json;

    fn request(target: &str, operation: Operation, account: &str) -> SubmitRequest {
        SubmitRequest {
            target: target.into(),
            operation,
            account: account.into(),
            entitlement: None,
            attributes:
                json!({"email": "jane@example.com", "firstname": "Jane", "lastname": "Doe"})
                    .as_object()
                    .cloned()
                    .filter(|_| operation == Operation::CreateAccount)
                    .unwrap_or_else(Attributes::new),
            owner: None,
            request_id: None,
            idempotency_key: None,
        }
    }

    struct Rig {
        _dir: tempfile::TempDir,
        store: Arc<crate::store::SqliteStore>,
        a: Arc<FakeConnector>,
        b: Arc<FakeConnector>,
        runner: ProvisionRunner,
    }

    async fn rig(max_attempts: u32) -> Rig {
        let (dir, store) = store().await;
        let a = Arc::new(FakeConnector::new("a"));
        let b = Arc::new(FakeConnector::new("b"));
        let runner = ProvisionRunner::new(
            store.clone(),
            connectors(&[a.clone(), b.clone()]),
            config(max_attempts),
        );
        Rig {
            _dir: dir,
            store,
            a,
            b,
            runner,
        }
    }

    async fn queue(rig: &Rig, request: SubmitRequest) -> Task {
        match submit(
            rig.store.as_ref(),
            rig.runner.connectors(),
            rig.runner.config(),
            request,
            "test",
        )
        .await
        .unwrap()
        {
            Submitted::Created(task) | Submitted::Existing(task) => task,
        }
    }

    async fn task(rig: &Rig, id: i64) -> Task {
        rig.store.get_task(id).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn create_then_access_succeed_and_update_the_store() {
        let rig = rig(3).await;
        seed(rig.store.as_ref(), "a", &[], &[("7", "Reviewers")]).await;
        let create = queue(&rig, request("a", Operation::CreateAccount, "jane")).await;
        let mut add = request("a", Operation::AddAccess, "jane");
        add.entitlement = Some(EntitlementRef::Text("usergroup:7".into()));
        let add = queue(&rig, add).await;
        assert_eq!(add.depends_on, Some(create.id));

        let report = rig
            .runner
            .run_pass(None, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.succeeded, 2, "{report:?}");
        assert_eq!(report.exit_code(), 0);
        let created = task(&rig, create.id).await;
        assert_eq!(created.status, TaskStatus::Succeeded);
        assert_eq!(created.account_id.as_deref(), Some("new-jane"));
        let account = rig
            .store
            .get_account("a", "new-jane")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(account.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(task(&rig, add.id).await.status, TaskStatus::Succeeded);
        let sent = rig.a.requests.lock().unwrap().clone();
        assert_eq!(sent[1].account_id.as_deref(), Some("new-jane"));
        assert_eq!(sent[1].entitlement, Some(("usergroup".into(), "7".into())));
        assert_eq!(sent[1].request_id, Some(add.id.to_string()));
    }

    #[tokio::test]
    async fn transient_retries_then_fails_and_permanent_fails_at_once() {
        let rig = rig(1).await;
        seed(
            rig.store.as_ref(),
            "a",
            &[("11", "jane"), ("12", "bob")],
            &[],
        )
        .await;
        rig.a.then(Err(rig.a.transient()));
        let t1 = queue(&rig, request("a", Operation::DisableAccount, "jane")).await;
        let report = rig
            .runner
            .run_pass(Some("a"), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.failed_tasks, [t1.id]);
        assert_eq!(report.exit_code(), 1);
        let t1 = task(&rig, t1.id).await;
        assert_eq!(t1.status, TaskStatus::Failed);
        assert!(t1.last_error.unwrap().contains("HTTP 503"));

        rig.a.then(Err(ConnectorError::Permanent {
            target: "a".into(),
            status: Some(400),
            message: "email invalid".into(),
        }));
        let t2 = queue(&rig, request("a", Operation::DisableAccount, "bob")).await;
        rig.runner
            .run_pass(Some("a"), &CancellationToken::new())
            .await
            .unwrap();
        let t2 = task(&rig, t2.id).await;
        assert_eq!(t2.status, TaskStatus::Failed);
        assert!(t2.last_error.unwrap().contains("email invalid"));
    }

    #[tokio::test]
    async fn retry_is_scheduled_with_backoff() {
        let rig = rig(3).await;
        seed(rig.store.as_ref(), "a", &[("11", "jane")], &[]).await;
        rig.a.then(Err(ConnectorError::RateLimited {
            target: "a".into(),
            retry_after: Some(Duration::from_secs(600)),
            message: "slow down".into(),
        }));
        let t = queue(&rig, request("a", Operation::EnableAccount, "jane")).await;
        let before = clock::now();
        let report = rig
            .runner
            .run_pass(None, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.retried, 1, "{report:?}");
        let t = task(&rig, t.id).await;
        assert_eq!((t.status, t.attempts), (TaskStatus::Pending, 1));
        assert!(t.next_attempt_at.unwrap() >= before + chrono::Duration::seconds(600));
        assert_eq!(rig.a.calls(), 1);
    }

    #[tokio::test]
    async fn auth_opens_the_circuit_of_that_target_only() {
        let rig = rig(3).await;
        seed(
            rig.store.as_ref(),
            "a",
            &[("11", "jane"), ("12", "bob")],
            &[],
        )
        .await;
        seed(rig.store.as_ref(), "b", &[("21", "carl")], &[]).await;
        rig.a.then(Err(ConnectorError::Auth {
            target: "a".into(),
            message: "bad key".into(),
        }));
        let t1 = queue(&rig, request("a", Operation::EnableAccount, "jane")).await;
        let report = rig
            .runner
            .run_pass(Some("a"), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.requeued, 1, "{report:?}");
        assert_eq!(rig.runner.breakers().state("a", clock::now()).state, "open");
        let t1 = task(&rig, t1.id).await;
        assert_eq!(t1.status, TaskStatus::Pending);
        assert_eq!(t1.attempts, 0, "an auth failure does not count");

        let t3 = queue(&rig, request("b", Operation::EnableAccount, "carl")).await;
        let report = rig
            .runner
            .run_pass(None, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.succeeded, 1, "{report:?}");
        assert_eq!(task(&rig, t3.id).await.status, TaskStatus::Succeeded);
        assert_eq!(rig.a.calls(), 1);
        assert_eq!(rig.b.calls(), 1);
        let listed = rig
            .store
            .list_tasks(&TaskFilter {
                status: Some(TaskStatus::Pending),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
    }

    /// A runner whose target `a` answers every call after `delay`.
    async fn slow_rig(delay: Duration) -> Rig {
        let (dir, store) = store().await;
        let mut slow = FakeConnector::new("a");
        slow.delay = delay;
        let a = Arc::new(slow);
        let b = Arc::new(FakeConnector::new("b"));
        let runner = ProvisionRunner::new(
            store.clone(),
            connectors(&[a.clone(), b.clone()]),
            config(3),
        );
        Rig {
            _dir: dir,
            store,
            a,
            b,
            runner,
        }
    }

    #[tokio::test]
    async fn a_long_attempt_keeps_its_task_past_the_lease() {
        // The lease is renewed every 500 ms while a 1.6 s call runs.
        let rig = slow_rig(Duration::from_millis(1600)).await;
        let runner = rig.runner.clone().with_lease(Duration::from_millis(900));
        seed(rig.store.as_ref(), "a", &[("11", "jane")], &[]).await;
        let t = queue(&rig, request("a", Operation::EnableAccount, "jane")).await;
        let pass = tokio::spawn(async move {
            runner
                .run_pass(Some("a"), &CancellationToken::new())
                .await
                .unwrap()
        });
        // Another process looks for abandoned tasks well past the first lease.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert_eq!(
                rig.store
                    .release_expired_leases(clock::now())
                    .await
                    .unwrap(),
                0,
                "a live attempt's task was taken back"
            );
        }
        let report = pass.await.unwrap();
        assert_eq!(report.succeeded, 1, "{report:?}");
        assert_eq!(rig.a.calls(), 1);
        let t = task(&rig, t.id).await;
        assert_eq!((t.status, t.attempts), (TaskStatus::Succeeded, 1));
    }

    #[tokio::test]
    async fn a_running_provisioning_run_is_not_closed_as_abandoned() {
        let rig = slow_rig(Duration::from_millis(800)).await;
        seed(rig.store.as_ref(), "a", &[("11", "jane")], &[]).await;
        queue(&rig, request("a", Operation::EnableAccount, "jane")).await;
        let runner = rig.runner.clone();
        let pass = tokio::spawn(async move {
            runner
                .run_recorded(
                    "prov",
                    Some("a"),
                    Trigger::Schedule,
                    "scheduler",
                    None,
                    &CancellationToken::new(),
                )
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Another process (or the lease watch) closes runs whose process died.
        assert_eq!(
            rig.store
                .fail_open_runs("interrupted", clock::now())
                .await
                .unwrap(),
            0,
            "a live run was closed"
        );
        let (run_id, _) = pass.await.unwrap();
        let run = rig.store.get_run(run_id).await.unwrap().unwrap();
        assert_eq!(run.outcome, Some(RunOutcome::Succeeded), "{run:?}");
        // Its lock is gone with it: a run left open now would be closed.
        assert_eq!(
            rig.store
                .try_lock(&format!("run:{run_id}"), "someone", Duration::from_secs(1))
                .await
                .unwrap(),
            crate::store::LockOutcome::Acquired
        );
    }

    #[tokio::test]
    async fn a_dead_workers_task_comes_back_after_one_short_lease() {
        let rig = rig(3).await;
        seed(rig.store.as_ref(), "a", &[("11", "jane")], &[]).await;
        let t = queue(&rig, request("a", Operation::EnableAccount, "jane")).await;
        // A worker claims the task with a short lease and dies (no heartbeat).
        rig.store
            .claim_tasks(&Claim {
                target: Some("a".into()),
                now: clock::now(),
                lease: Duration::from_millis(200),
                limit: 1,
            })
            .await
            .unwrap();
        let expiry = rig.store.next_lease_expiry().await.unwrap().unwrap();
        assert!(expiry <= clock::now() + chrono::Duration::milliseconds(200));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let report = rig
            .runner
            .run_pass(None, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.released_leases, 1);
        assert_eq!(report.succeeded, 1, "{report:?}");
        assert_eq!(task(&rig, t.id).await.status, TaskStatus::Succeeded);
    }

    /// Queues a create whose call succeeds without an id, with look-ups failing with
    /// `lookup` (or finding nothing when `None`), and runs one pass.
    async fn create_with_unread_id(lookup: Option<ConnectorError>) -> (Rig, Task) {
        let rig = rig(3).await;
        rig.a.then(Ok(ProvisionOutcome::Done { account_id: None }));
        *rig.a.lookup_error.lock().unwrap() = lookup;
        let t = queue(&rig, request("a", Operation::CreateAccount, "jane")).await;
        rig.runner
            .run_pass(Some("a"), &CancellationToken::new())
            .await
            .unwrap();
        let t = task(&rig, t.id).await;
        (rig, t)
    }

    #[tokio::test]
    async fn a_create_whose_id_cannot_be_read_stays_uncertain_and_retries() {
        let transient = ConnectorError::Transient {
            target: "a".into(),
            message: "HTTP 503".into(),
        };
        let (rig, t) = create_with_unread_id(Some(transient)).await;
        assert_eq!(rig.a.calls(), 1);
        assert_eq!(t.status, TaskStatus::Pending, "{t:?}");
        assert!(t.uncertain, "the next attempt must read the target first");
        assert!(t.next_attempt_at.is_some());
        let error = t.last_error.unwrap_or_default();
        assert!(
            error.contains("created, but reading its id failed"),
            "{error}"
        );
        let events = rig.store.list_audit(Some("a"), 100).await.unwrap();
        let attempt = events
            .iter()
            .find(|event| event.action == "task_attempt")
            .expect("an audited attempt");
        assert_eq!(attempt.details["outcome"], "unknown", "{attempt:?}");
    }

    #[tokio::test]
    async fn a_create_lost_in_transit_is_retried_as_uncertain() {
        let rig = rig(3).await;
        rig.a.then(Err(rig.a.transient()));
        let t = queue(&rig, request("a", Operation::CreateAccount, "jane")).await;
        rig.runner
            .run_pass(Some("a"), &CancellationToken::new())
            .await
            .unwrap();
        let t = task(&rig, t.id).await;
        assert_eq!(t.status, TaskStatus::Pending, "{t:?}");
        assert!(
            t.uncertain,
            "the create may have happened: read the target first"
        );
        assert!(t
            .last_error
            .unwrap_or_default()
            .contains("may have taken effect"),);
        // A disable lost in transit is simply retried: repeating it is harmless.
        seed(rig.store.as_ref(), "a", &[("11", "carl")], &[]).await;
        rig.a.then(Err(rig.a.transient()));
        let d = queue(&rig, request("a", Operation::DisableAccount, "carl")).await;
        rig.runner
            .run_pass(Some("a"), &CancellationToken::new())
            .await
            .unwrap();
        let d = task(&rig, d.id).await;
        assert_eq!(d.status, TaskStatus::Pending, "{d:?}");
        assert!(!d.uncertain);
    }

    #[tokio::test]
    async fn a_create_the_target_does_not_list_yet_stays_uncertain() {
        let (rig, t) = create_with_unread_id(None).await;
        assert_eq!(rig.a.calls(), 1);
        assert_eq!(t.status, TaskStatus::Pending, "{t:?}");
        assert!(t.uncertain);
        assert!(t.last_error.unwrap_or_default().contains("does not list"));
    }

    #[tokio::test]
    async fn a_permanent_failure_to_read_the_new_id_fails_the_task_as_uncertain() {
        let permanent = ConnectorError::Permanent {
            target: "a".into(),
            status: Some(400),
            message: "bad filter".into(),
        };
        let (rig, t) = create_with_unread_id(Some(permanent)).await;
        assert_eq!(rig.a.calls(), 1);
        assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
        assert!(t.uncertain, "a retry by hand reads the target first");
        assert!(t.last_error.unwrap_or_default().contains("bad filter"));
    }

    #[tokio::test]
    async fn a_target_that_cannot_look_up_leaves_the_id_to_the_next_import() {
        let unsupported = ConnectorError::Unsupported {
            target: "a".into(),
            operation: "lookup".into(),
            reason: "no look-up".into(),
        };
        let (_rig, t) = create_with_unread_id(Some(unsupported)).await;
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        assert_eq!(t.account_id, None);
    }

    #[tokio::test]
    async fn uncertain_create_reads_the_target_first() {
        let rig = rig(3).await;
        let runner = rig.runner.clone().with_lease(Duration::from_millis(1));
        let t = queue(&rig, request("a", Operation::CreateAccount, "jane")).await;
        // A worker claims the task and dies.
        let claimed = rig
            .store
            .claim_tasks(&Claim {
                target: Some("a".into()),
                now: clock::now(),
                lease: Duration::from_millis(1),
                limit: 1,
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        *rig.a.lookup.lock().unwrap() = Some(crate::model::AccountRecord {
            id: "99".into(),
            name: "jane".into(),
            display_name: None,
            email: Some("JANE@example.com".into()),
            status: AccountStatus::Active,
            attributes: Attributes::new(),
        });
        let report = runner
            .run_pass(None, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.released_leases, 1);
        assert_eq!(
            (report.succeeded, report.already_done),
            (1, 1),
            "{report:?}"
        );
        assert_eq!(rig.a.calls(), 0, "no second create");
        assert_eq!(task(&rig, t.id).await.account_id.as_deref(), Some("99"));
    }

    /// A raw connection to the rig's store file, for making its writes fail.
    async fn raw(rig: &Rig) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        let url = format!("sqlite://{}", rig._dir.path().join("idsync.db").display());
        sqlx::SqliteConnection::connect(&url).await.unwrap()
    }

    #[tokio::test]
    async fn many_tasks_are_claimed_and_finished_in_batches_each_exactly_once() {
        let rig = rig(3).await;
        let accounts: Vec<(String, String)> = (0..40)
            .map(|n| (n.to_string(), format!("user{n}")))
            .collect();
        let pairs: Vec<(&str, &str)> = accounts
            .iter()
            .map(|(id, name)| (id.as_str(), name.as_str()))
            .collect();
        seed(rig.store.as_ref(), "a", &pairs, &[]).await;
        let mut ids = Vec::new();
        for (_, name) in &accounts {
            // Two tasks per account: they must still run one after the other.
            ids.push(
                queue(&rig, request("a", Operation::DisableAccount, name))
                    .await
                    .id,
            );
            ids.push(
                queue(&rig, request("a", Operation::EnableAccount, name))
                    .await
                    .id,
            );
        }
        let report = rig
            .runner
            .run_pass(Some("a"), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!((report.claimed, report.succeeded), (80, 80), "{report:?}");
        assert!(report.errors.is_empty(), "{report:?}");
        assert_eq!(rig.a.calls(), 80, "one call per task");
        for id in ids {
            let done = task(&rig, id).await;
            assert_eq!((done.status, done.attempts), (TaskStatus::Succeeded, 1));
        }
        // Per account, the disable was sent before the enable.
        let requests = rig.a.requests.lock().unwrap().clone();
        for (_, name) in &accounts {
            let order: Vec<Operation> = requests
                .iter()
                .filter(|r| &r.account_name == name)
                .map(|r| r.operation)
                .collect();
            assert_eq!(order, [Operation::DisableAccount, Operation::EnableAccount]);
        }
    }

    #[tokio::test]
    async fn a_finish_that_cannot_be_written_comes_back_uncertain_and_is_not_done_twice() {
        let rig = rig(3).await;
        let runner = rig.runner.clone().with_lease(Duration::from_millis(300));
        seed(rig.store.as_ref(), "a", &[("11", "joe")], &[]).await;
        let jane = queue(&rig, request("a", Operation::CreateAccount, "jane")).await;
        let joe = queue(&rig, request("a", Operation::DisableAccount, "joe")).await;
        let mut raw = raw(&rig).await;
        sqlx::query(
            "CREATE TRIGGER boom BEFORE UPDATE OF status ON tasks \
             WHEN NEW.status = 'succeeded' AND OLD.account = 'jane' \
             BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
        )
        .execute(&mut raw)
        .await
        .unwrap();
        let report = runner
            .run_pass(None, &CancellationToken::new())
            .await
            .unwrap();
        // Joe's finish, written with Jane's, is kept; Jane's is reported and left leased.
        assert_eq!(report.succeeded, 1, "{report:?}");
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert!(report.errors[0].contains("disk says no"), "{report:?}");
        assert_eq!(report.exit_code(), 1);
        assert_eq!(task(&rig, joe.id).await.status, TaskStatus::Succeeded);
        assert_eq!(task(&rig, jane.id).await.status, TaskStatus::Running);
        assert_eq!(rig.a.calls(), 2);

        // The lease runs out; the next pass reads the target first and finds Jane's account.
        sqlx::query("DROP TRIGGER boom")
            .execute(&mut raw)
            .await
            .unwrap();
        *rig.a.lookup.lock().unwrap() = Some(crate::model::AccountRecord {
            id: "99".into(),
            name: "jane".into(),
            display_name: None,
            email: Some("jane@example.com".into()),
            status: AccountStatus::Active,
            attributes: Attributes::new(),
        });
        tokio::time::sleep(Duration::from_millis(350)).await;
        let report = runner
            .run_pass(None, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.released_leases, 1, "{report:?}");
        assert_eq!(
            (report.succeeded, report.already_done),
            (1, 1),
            "{report:?}"
        );
        assert_eq!(rig.a.calls(), 2, "no second create");
        let jane = task(&rig, jane.id).await;
        assert_eq!(jane.status, TaskStatus::Succeeded);
        assert_eq!(jane.account_id.as_deref(), Some("99"));
    }
}
