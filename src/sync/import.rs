//! The import job: reads every account (account import) or every entitlement and grant
//! (access import) of one target and brings the store in step:
//!
//! * all-or-nothing: pages are staged as they are read; if any page fails, or shutdown
//!   interrupts the read, the staged rows are dropped and nothing is marked missing;
//! * deletion safety: removals above the target's threshold hold the run (nothing written
//!   but the run record and its pending diff) unless deletions are explicitly allowed;
//! * `--dry-run` prints the diff and records nothing; incremental mode infers no deletions;
//! * the import jobs of one target never overlap (a lease lock in the store).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::anomalies::{AnomalyTally, ObjectTally};
use crate::clock;
use crate::config::{Config, DeletionThreshold};
use crate::connector::{Connector, ConnectorError, PageStream};
use crate::model::{
    AnomalyKind, AuditEvent, Change, ChangeCounts, ImportMode, JobKind, ObjectKind, RunCounts,
    RunOutcome, Trigger,
};
use crate::store::{
    ApplyOptions, DiffEntry, LockOutcome, NewRun, RunFinish, SnapshotDiff, SnapshotId, Store,
    StoreError,
};
use crate::sync::heartbeat::{self, Heartbeat};
use crate::telemetry;

/// How long an import's target lock lasts without renewal: a heartbeat renews it every
/// third of that while the run lives, so a killed run frees its target within this.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How many records a run gathers from small pages before it stages them in one go.
const STAGE_BATCH: usize = 1000;
/// How often a running import also renews its target lock between pages.
const LOCK_RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often a run waiting for its target's lock asks again.
const LOCK_POLL: Duration = Duration::from_secs(1);
/// How many diff lines a held run keeps as its pending diff.
const PENDING_DIFF_LIMIT: u32 = 200;
/// How many diff lines a dry run prints per object kind.
const DRY_RUN_DIFF_LIMIT: u32 = 1000;

/// Which import runs to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportParts {
    /// Account import only.
    Accounts,
    /// Access import only (entitlements and grants).
    Access,
    /// Account import, then access import.
    Both,
}

impl ImportParts {
    fn kinds(self) -> &'static [JobKind] {
        match self {
            ImportParts::Accounts => &[JobKind::AccountImport],
            ImportParts::Access => &[JobKind::AccessImport],
            ImportParts::Both => &[JobKind::AccountImport, JobKind::AccessImport],
        }
    }
}

/// One request to import a target.
#[derive(Debug)]
pub struct ImportRequest {
    /// The target's config name.
    pub target: String,
    /// The config job name, or `manual`.
    pub job: String,
    /// Which runs.
    pub parts: ImportParts,
    /// Full or incremental.
    pub mode: ImportMode,
    /// Compute and report the diff, record nothing.
    pub dry_run: bool,
    /// Let this run through the deletion threshold.
    pub allow_deletions: bool,
    /// What started it.
    pub trigger: Trigger,
    /// Who started it (`scheduler`, `cli:<user>`, `token:<name>`).
    pub actor: String,
    /// Told the id of the first run as soon as it is recorded (API triggers answer with it).
    pub started: Option<oneshot::Sender<i64>>,
}

/// What one run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// The run record's id (none for a dry run, which records nothing).
    pub run_id: Option<i64>,
    /// Account or access import.
    pub kind: JobKind,
    /// How it ended. A dry run that read everything is `succeeded`.
    pub outcome: RunOutcome,
    /// What was (or, for a dry run or a held run, would be) changed.
    pub counts: RunCounts,
    /// Why it failed or was held.
    pub error: Option<String>,
    /// The diff lines of a dry run, or the pending diff of a held run.
    pub diff: Vec<DiffEntry>,
}

/// What an import request did: one report per run, in order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportSummary {
    /// The target.
    pub target: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The runs, account import first.
    pub runs: Vec<RunReport>,
    /// Runs that were not started, with why (e.g. access import after a held account import).
    pub skipped: Vec<String>,
}

impl ImportSummary {
    /// The contract exit code: 3 if a run was held, 1 if one failed, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.runs.iter().any(|run| run.outcome == RunOutcome::Held) {
            3
        } else if self
            .runs
            .iter()
            .any(|run| run.outcome == RunOutcome::Failed)
        {
            1
        } else {
            0
        }
    }
}

/// Why an import could not even start.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The target is not configured.
    #[error("unknown target `{0}` (see [targets] in the config)")]
    UnknownTarget(String),
    /// The store failed before a run record existed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why one run failed (written to the run record's `error`).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0}")]
    Connector(#[from] ConnectorError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("interrupted by shutdown")]
    Interrupted,
    #[error("target {target} is being imported by {holder}; try again when it finishes (the lock of a process that was killed lapses within 30s)")]
    LockHeld { target: String, holder: String },
    #[error("no account import of target {0} has succeeded yet; run `idsync import {0} --accounts` first")]
    NoAccountImport(String),
}

/// Runs imports against the configured targets.
#[derive(Clone)]
pub struct ImportRunner {
    store: Arc<dyn Store>,
    connectors: Arc<BTreeMap<String, Arc<dyn Connector>>>,
    config: Arc<Config>,
}

/// The target lock an import holds while it runs.
struct Lease<'a> {
    /// The lock's name (`import:<target>`).
    name: String,
    /// Who holds it (`run <id>`).
    holder: String,
    /// The target, for messages.
    target: &'a str,
}

/// The staged snapshots of one run, and their diffs.
struct Staged {
    snapshots: Vec<SnapshotId>,
    diffs: Vec<(ObjectKind, SnapshotDiff)>,
    read: u64,
}

impl ImportRunner {
    /// A runner over the given store and connectors.
    pub fn new(
        store: Arc<dyn Store>,
        connectors: Arc<BTreeMap<String, Arc<dyn Connector>>>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            store,
            connectors,
            config,
        }
    }

    /// The store, connectors and config this runner uses (to build the other jobs' runners
    /// over the same parts).
    pub fn parts(&self) -> (Arc<dyn Store>, super::Connectors, Arc<Config>) {
        (
            self.store.clone(),
            self.connectors.clone(),
            self.config.clone(),
        )
    }

    /// Runs the requested imports in order. An account import that is held or fails stops
    /// the access import after it. `cancel` interrupts a run between pages: nothing is
    /// marked and the run is recorded as failed with `interrupted by shutdown`.
    pub async fn run(
        &self,
        mut request: ImportRequest,
        cancel: &CancellationToken,
    ) -> Result<ImportSummary, ImportError> {
        let connector = self
            .connectors
            .get(&request.target)
            .cloned()
            .ok_or_else(|| ImportError::UnknownTarget(request.target.clone()))?;
        let threshold = self
            .config
            .targets
            .get(&request.target)
            .map(|target| target.deletion_threshold)
            .unwrap_or_default();
        let mut summary = ImportSummary {
            target: request.target.clone(),
            dry_run: request.dry_run,
            runs: Vec::new(),
            skipped: Vec::new(),
        };
        for &kind in request.parts.kinds() {
            if let Some(previous) = summary.runs.last() {
                if previous.outcome != RunOutcome::Succeeded {
                    summary.skipped.push(format!(
                        "{kind} skipped: the {} before it was {}",
                        previous.kind, previous.outcome
                    ));
                    continue;
                }
            }
            let started = request.started.take();
            let report = self
                .run_one(
                    &request,
                    kind,
                    connector.as_ref(),
                    threshold,
                    started,
                    cancel,
                )
                .await?;
            summary.runs.push(report);
        }
        Ok(summary)
    }

    async fn run_one(
        &self,
        request: &ImportRequest,
        kind: JobKind,
        connector: &dyn Connector,
        threshold: DeletionThreshold,
        started: Option<oneshot::Sender<i64>>,
        cancel: &CancellationToken,
    ) -> Result<RunReport, ImportError> {
        let started_at = clock::now();
        let clock_start = Instant::now();
        let run_id = if request.dry_run {
            None
        } else {
            Some(
                self.store
                    .start_run(&NewRun {
                        job: request.job.clone(),
                        target: Some(request.target.clone()),
                        kind,
                        trigger: request.trigger,
                        actor: request.actor.clone(),
                        started_at,
                    })
                    .await?,
            )
        };
        if let (Some(id), Some(tx)) = (run_id, started) {
            let _ = tx.send(id);
        }
        let alive = match run_id {
            Some(id) => Some(heartbeat::run_alive(self.store.clone(), id).await),
            None => None,
        };
        // A dry run stages under a run id no real run can have.
        let stage_id = run_id.unwrap_or_else(|| -i64::from(rand::random::<u32>()) - 1);
        let span = tracing::info_span!(
            "job_run",
            run_id = stage_id,
            job = %request.job,
            target = %request.target,
            kind = %kind,
            dry_run = request.dry_run,
        );
        let report = self
            .execute(
                request, kind, connector, threshold, stage_id, run_id, started_at, cancel,
            )
            .instrument(span)
            .await;
        if let Some(id) = run_id {
            let finish = RunFinish {
                outcome: report.outcome,
                finished_at: clock::now(),
                counts: run_counts_json(&report),
                error: report.error.clone(),
            };
            let finished = self.store.finish_run(id, &finish).await;
            if let Some(alive) = alive {
                alive.release().await;
            }
            finished?;
            self.record_metrics(request, kind, &report, clock_start.elapsed());
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        request: &ImportRequest,
        kind: JobKind,
        connector: &dyn Connector,
        threshold: DeletionThreshold,
        stage_id: i64,
        run_id: Option<i64>,
        started_at: chrono::DateTime<chrono::Utc>,
        cancel: &CancellationToken,
    ) -> RunReport {
        let mut report = RunReport {
            run_id,
            kind,
            outcome: RunOutcome::Failed,
            counts: RunCounts::default(),
            error: None,
            diff: Vec::new(),
        };
        let lease = Lease {
            name: format!("import:{}", request.target),
            holder: match run_id {
                Some(id) => format!("run {id}"),
                None => format!("dry run in process {}", std::process::id()),
            },
            target: &request.target,
        };
        info!(mode = %request.mode, "Import started.");
        let mut anomalies = AnomalyTally::default();
        let mut heartbeat = None;
        let result = async {
            self.acquire(&lease, request.trigger != Trigger::Cli, cancel)
                .await?;
            heartbeat = Some(self.lock_heartbeat(&lease));
            if kind == JobKind::AccessImport
                && self
                    .store
                    .last_success(&request.target, JobKind::AccountImport)
                    .await?
                    .is_none()
            {
                return Err(RunError::NoAccountImport(request.target.clone()));
            }
            if kind == JobKind::AccessImport {
                if let Some(held) = self.held_account_import(&request.target).await? {
                    report.error = Some(format!(
                        "not run: the account import before it (run {held}) is held by the deletion threshold, so the target's data is in question; review that run, then release it with `idsync import {} --accounts --allow-deletions` or let a later account import succeed",
                        request.target
                    ));
                    return Ok(RunOutcome::Held);
                }
            }
            let staged = self
                .stage(
                    request,
                    kind,
                    connector,
                    stage_id,
                    &lease,
                    cancel,
                    &mut anomalies,
                )
                .await;
            anomalies.warn();
            report.counts.anomalies = anomalies.counts();
            let staged = match staged {
                Ok(staged) => staged,
                Err((snapshots, err)) => {
                    self.discard(&snapshots).await;
                    return Err(err);
                }
            };
            report.counts.read = staged.read;
            // Still ours? (A run that lost its lock must not apply what it read.)
            if let Err(err) = self.lock(&lease).await {
                self.discard(&staged.snapshots).await;
                return Err(err);
            }
            let outcome = self
                .decide_and_apply(
                    request,
                    &staged,
                    threshold,
                    run_id,
                    started_at,
                    &mut report,
                    cancel,
                )
                .await;
            self.discard(&staged.snapshots).await;
            outcome
        }
        .await;
        drop(heartbeat);
        if let Err(err) = self.store.unlock(&lease.name, &lease.holder).await {
            warn!(error = %err, "Could not release the import lock; it expires on its own.");
        }
        match result {
            Ok(outcome) => {
                report.outcome = outcome;
                match outcome {
                    RunOutcome::Succeeded => info!(
                        read = report.counts.read,
                        written = report.counts.account.written()
                            + report.counts.entitlement.written()
                            + report.counts.grant.written(),
                        "Import finished."
                    ),
                    RunOutcome::Held => warn!(
                        reason = report.error.as_deref().unwrap_or_default(),
                        "Import held by the deletion threshold; nothing was changed."
                    ),
                    RunOutcome::Failed => {}
                }
            }
            Err(err) => {
                warn!(error = %err, "Import failed; nothing was marked missing.");
                report.outcome = RunOutcome::Failed;
                report.error = Some(err.to_string());
            }
        }
        report
    }

    /// The id of the target's newest finished account import when it was held (the access
    /// import waits for a person to decide on it).
    async fn held_account_import(&self, target: &str) -> Result<Option<i64>, RunError> {
        let last = self
            .store
            .last_finished(target, JobKind::AccountImport)
            .await?;
        Ok(last
            .filter(|run| run.outcome == Some(RunOutcome::Held))
            .map(|run| run.id))
    }

    /// Takes the target lock. A `patient` run (the daemon's: scheduled, caught up at start,
    /// triggered through the API) waits up to one lock lifetime for another holder, since a
    /// run of a process that died holds it until then (a live holder renews it, and the
    /// wait ends with [`RunError::LockHeld`]). A run from the command line fails at once, so
    /// a person is told right away.
    async fn acquire(
        &self,
        lease: &Lease<'_>,
        patient: bool,
        cancel: &CancellationToken,
    ) -> Result<(), RunError> {
        let started = Instant::now();
        let mut told = false;
        loop {
            match self.lock(lease).await {
                Err(RunError::LockHeld { holder, .. })
                    if patient && started.elapsed() < LOCK_TTL + LOCK_POLL =>
                {
                    if !told {
                        info!(holder = %holder, wait = ?LOCK_TTL, "Target is locked by another run; waiting for it (a lock of a stopped process lapses within the wait).");
                        told = true;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return Err(RunError::Interrupted),
                        () = tokio::time::sleep(LOCK_POLL) => {}
                    }
                }
                other => return other,
            }
        }
    }

    /// Renews the target lock in the background while the run holds it.
    fn lock_heartbeat(&self, lease: &Lease<'_>) -> Heartbeat {
        heartbeat::renew_lock(
            self.store.clone(),
            lease.name.clone(),
            lease.holder.clone(),
            LOCK_TTL,
        )
    }

    /// Takes or renews the target lock.
    async fn lock(&self, lease: &Lease<'_>) -> Result<(), RunError> {
        match self
            .store
            .try_lock(&lease.name, &lease.holder, LOCK_TTL)
            .await?
        {
            LockOutcome::Acquired => Ok(()),
            LockOutcome::HeldBy(other) => Err(RunError::LockHeld {
                target: lease.target.to_string(),
                holder: other,
            }),
        }
    }

    /// Reads every page of the run's object kinds into staged snapshots, tallying what the
    /// mapping tolerated in `anomalies`. On error, returns the snapshots begun so far so the
    /// caller can drop them.
    #[allow(clippy::too_many_arguments)]
    async fn stage(
        &self,
        request: &ImportRequest,
        kind: JobKind,
        connector: &dyn Connector,
        stage_id: i64,
        lease: &Lease<'_>,
        cancel: &CancellationToken,
        anomalies: &mut AnomalyTally,
    ) -> Result<Staged, (Vec<SnapshotId>, RunError)> {
        let objects: &[ObjectKind] = match kind {
            JobKind::AccountImport => &[ObjectKind::Account],
            _ => &[ObjectKind::Entitlement, ObjectKind::Grant],
        };
        let mut staged = Staged {
            snapshots: Vec::new(),
            diffs: Vec::new(),
            read: 0,
        };
        let mut renewed = Instant::now();
        for &object in objects {
            let snapshot = SnapshotId {
                run_id: stage_id,
                target: request.target.clone(),
                object,
            };
            staged.snapshots.push(snapshot.clone());
            let snapshot_ref = &snapshot;
            let result = async {
                self.store.begin_snapshot(snapshot_ref).await?;
                let read =
                        match object {
                            ObjectKind::Account => {
                                self.stage_stream(
                                    connector.accounts(),
                                    anomalies.of(object),
                                    cancel,
                                    lease,
                                    &mut renewed,
                                    |page| async move {
                                        self.store.stage_accounts(snapshot_ref, &page).await
                                    },
                                )
                                .await?
                            }
                            ObjectKind::Entitlement => {
                                self.stage_stream(
                                    connector.entitlements(),
                                    anomalies.of(object),
                                    cancel,
                                    lease,
                                    &mut renewed,
                                    |page| async move {
                                        self.store.stage_entitlements(snapshot_ref, &page).await
                                    },
                                )
                                .await?
                            }
                            ObjectKind::Grant => {
                                self.stage_stream(
                                    connector.grants(),
                                    anomalies.of(object),
                                    cancel,
                                    lease,
                                    &mut renewed,
                                    |page| async move {
                                        self.store.stage_grants(snapshot_ref, &page).await
                                    },
                                )
                                .await?
                            }
                        };
                let diff = self.store.diff_snapshot(snapshot_ref, request.mode).await?;
                Ok::<_, RunError>((read, diff))
            }
            .await;
            match result {
                Ok((read, diff)) => {
                    staged.read += read;
                    staged.diffs.push((object, diff));
                }
                Err(err) => return Err((staged.snapshots, err)),
            }
        }
        Ok(staged)
    }

    /// Drains one page stream into the store, tallying each page's anomalies, checking for
    /// shutdown between pages and renewing the target lock as it goes. Returns the number of
    /// records read.
    async fn stage_stream<'s, T, F, Fut>(
        &self,
        mut pages: PageStream<'s, T>,
        mut anomalies: ObjectTally<'_>,
        cancel: &CancellationToken,
        lease: &Lease<'_>,
        renewed: &mut Instant,
        mut stage_page: F,
    ) -> Result<u64, RunError>
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>>,
    {
        let mut read = 0u64;
        // Small pages (Jama clamps member pages to 50) are gathered into one batch, so the
        // store stages about STAGE_BATCH records per transaction whatever the page size.
        let mut batch: Vec<T> = Vec::new();
        let mut next = unless_cancelled(cancel, pages.next()).await?;
        while let Some(page) = next {
            let page = page?;
            anomalies.note(&page.anomalies);
            read += page.records.len() as u64;
            if batch.is_empty() {
                batch = page.records;
            } else {
                batch.extend(page.records);
            }
            if batch.len() < STAGE_BATCH {
                next = unless_cancelled(cancel, pages.next()).await?;
                continue;
            }
            // The next page is fetched and mapped while this batch is written: the network
            // and the mapping overlap the store's work instead of waiting for it.
            let staging = stage_page(std::mem::take(&mut batch));
            let (staged, following) =
                unless_cancelled(cancel, futures::future::join(staging, pages.next())).await?;
            staged?;
            next = following;
            if renewed.elapsed() >= LOCK_RENEW_EVERY {
                self.lock(lease).await?;
                *renewed = Instant::now();
            }
        }
        if !batch.is_empty() {
            stage_page(batch).await?;
        }
        Ok(read)
    }

    /// Checks the threshold, then applies (or, for a dry run, lists) the staged diffs.
    #[allow(clippy::too_many_arguments)]
    async fn decide_and_apply(
        &self,
        request: &ImportRequest,
        staged: &Staged,
        threshold: DeletionThreshold,
        run_id: Option<i64>,
        started_at: chrono::DateTime<chrono::Utc>,
        report: &mut RunReport,
        cancel: &CancellationToken,
    ) -> Result<RunOutcome, RunError> {
        for (object, diff) in &staged.diffs {
            set_counts(&mut report.counts, *object, diff.counts);
        }
        let over: Vec<String> = if request.mode == ImportMode::Full {
            staged
                .diffs
                .iter()
                .filter_map(|(object, diff)| threshold_breach(*object, diff, threshold))
                .collect()
        } else {
            Vec::new()
        };
        if request.dry_run {
            for snapshot in &staged.snapshots {
                let mut lines = self
                    .store
                    .diff_entries(snapshot, request.mode, DRY_RUN_DIFF_LIMIT)
                    .await?;
                report.diff.append(&mut lines);
            }
            if !over.is_empty() {
                report.error = Some(format!(
                    "a real run would be held: {} (use --allow-deletions to let it through)",
                    over.join("; ")
                ));
            }
            return Ok(RunOutcome::Succeeded);
        }
        if !over.is_empty() && !request.allow_deletions {
            for snapshot in &staged.snapshots {
                let mut lines = self
                    .store
                    .diff_entries(snapshot, request.mode, PENDING_DIFF_LIMIT)
                    .await?;
                report.diff.append(&mut lines);
            }
            report.error = Some(format!(
                "held by the deletion threshold: {}; nothing was changed. If these removals are real, run again with --allow-deletions (CLI) or {{\"allow_deletions\": true}} (API)",
                over.join("; ")
            ));
            return Ok(RunOutcome::Held);
        }
        if cancel.is_cancelled() {
            return Err(RunError::Interrupted);
        }
        if !over.is_empty() {
            warn!(actor = %request.actor, "Deletion threshold exceeded; allowed for this run.");
            self.store
                .record_audit(&AuditEvent {
                    id: 0,
                    at: clock::now(),
                    actor: request.actor.clone(),
                    target: request.target.clone(),
                    object: None,
                    object_key: None,
                    action: "deletions_allowed".to_string(),
                    run_id,
                    details: serde_json::json!({ "exceeded": over }),
                })
                .await?;
        }
        let options = ApplyOptions {
            mode: request.mode,
            run_started_at: started_at,
            actor: request.actor.clone(),
        };
        for snapshot in &staged.snapshots {
            let applied = self.store.apply_snapshot(snapshot, &options).await?;
            set_counts(&mut report.counts, snapshot.object, applied);
        }
        Ok(RunOutcome::Succeeded)
    }

    async fn discard(&self, snapshots: &[SnapshotId]) {
        for snapshot in snapshots {
            if let Err(err) = self.store.discard_snapshot(snapshot).await {
                warn!(error = %err, "Could not drop staged import rows; the next run clears them.");
            }
        }
    }

    fn record_metrics(
        &self,
        request: &ImportRequest,
        kind: JobKind,
        report: &RunReport,
        took: Duration,
    ) {
        let labels = [
            ("job", request.job.clone()),
            ("target", request.target.clone()),
            ("kind", kind.to_string()),
        ];
        metrics::counter!(
            telemetry::JOB_RUNS_TOTAL,
            "job" => request.job.clone(),
            "target" => request.target.clone(),
            "kind" => kind.to_string(),
            "outcome" => report.outcome.to_string()
        )
        .increment(1);
        metrics::histogram!(telemetry::JOB_DURATION_SECONDS, &labels).record(took.as_secs_f64());
        // What was read was read, whatever the outcome: anomalies count for every run.
        for object in ObjectKind::ALL {
            for anomaly in AnomalyKind::ALL {
                let n = report.counts.anomalies.of(*object).get(*anomaly);
                if n > 0 {
                    metrics::counter!(
                        telemetry::IMPORT_ANOMALIES_TOTAL,
                        "target" => request.target.clone(),
                        "object" => object.to_string(),
                        "anomaly" => anomaly.to_string()
                    )
                    .increment(n);
                }
            }
        }
        if report.outcome != RunOutcome::Succeeded {
            return;
        }
        metrics::gauge!(
            telemetry::JOB_LAST_SUCCESS,
            "job" => request.job.clone(),
            "target" => request.target.clone()
        )
        .set(clock::now().timestamp() as f64);
        for object in ObjectKind::ALL {
            let counts = report.counts.of(*object);
            for change in Change::ALL {
                let n = counts.get(*change);
                if n > 0 {
                    metrics::counter!(
                        telemetry::IMPORT_OBJECTS_TOTAL,
                        "target" => request.target.clone(),
                        "object" => object.to_string(),
                        "change" => change.to_string()
                    )
                    .increment(n);
                }
            }
        }
    }
}

/// Runs `work` unless shutdown comes first (checked first whenever both are ready):
/// [`RunError::Interrupted`] then, and `work` is dropped.
async fn unless_cancelled<F: std::future::Future>(
    cancel: &CancellationToken,
    work: F,
) -> Result<F::Output, RunError> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(RunError::Interrupted),
        done = work => Ok(done),
    }
}

/// Records one object kind's counts in the run counts. The store reports the grants removed
/// along with suspended accounts in the account counts; they are grants, so they are
/// counted (and labelled in metrics) as grant removals.
fn set_counts(counts: &mut RunCounts, object: ObjectKind, mut changes: ChangeCounts) {
    if object == ObjectKind::Account {
        counts.grant.removed = changes.removed;
        changes.removed = 0;
    }
    *counts.of_mut(object) = changes;
}

/// Says why a diff breaches the threshold, or `None` if it does not. Removals exceeding
/// `count` OR `percent` of the existing rows hold the run.
fn threshold_breach(
    object: ObjectKind,
    diff: &SnapshotDiff,
    threshold: DeletionThreshold,
) -> Option<String> {
    if diff.removals == 0 {
        return None;
    }
    let percent = if diff.existing == 0 {
        100.0
    } else {
        diff.removals as f64 * 100.0 / diff.existing as f64
    };
    let by_count = diff.removals > threshold.count;
    let by_percent = percent > threshold.percent;
    (by_count || by_percent).then(|| {
        format!(
            "{} {object}s would be removed out of {} ({percent:.1}%; threshold {} or {}%)",
            diff.removals, diff.existing, threshold.count, threshold.percent
        )
    })
}

/// The run record's `counts`: the run counts, plus the pending diff of a held run.
fn run_counts_json(report: &RunReport) -> serde_json::Value {
    let mut value = serde_json::to_value(report.counts).unwrap_or_default();
    if report.outcome == RunOutcome::Held {
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "pending".to_string(),
                serde_json::to_value(&report.diff).unwrap_or_default(),
            );
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChangeCounts;

    fn diff(existing: u64, removals: u64) -> SnapshotDiff {
        SnapshotDiff {
            counts: ChangeCounts::default(),
            existing,
            removals,
        }
    }

    #[test]
    fn threshold_holds_on_percent_or_count() {
        let threshold = DeletionThreshold {
            percent: 20.0,
            count: 1000,
        };
        assert!(threshold_breach(ObjectKind::Account, &diff(100, 20), threshold).is_none());
        assert!(threshold_breach(ObjectKind::Account, &diff(100, 21), threshold).is_some());
        assert!(threshold_breach(ObjectKind::Account, &diff(100_000, 1001), threshold).is_some());
        assert!(threshold_breach(ObjectKind::Account, &diff(100_000, 1000), threshold).is_none());
        assert!(threshold_breach(ObjectKind::Grant, &diff(0, 0), threshold).is_none());
    }

    #[test]
    fn breach_message_names_the_numbers() {
        let threshold = DeletionThreshold {
            percent: 20.0,
            count: 1000,
        };
        let text = threshold_breach(ObjectKind::Account, &diff(10, 5), threshold).unwrap();
        assert!(
            text.contains("5 accounts would be removed out of 10"),
            "{text}"
        );
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        let run = |outcome| RunReport {
            run_id: Some(1),
            kind: JobKind::AccountImport,
            outcome,
            counts: RunCounts::default(),
            error: None,
            diff: Vec::new(),
        };
        let summary = |runs| ImportSummary {
            target: "t".into(),
            dry_run: false,
            runs,
            skipped: vec![],
        };
        assert_eq!(summary(vec![run(RunOutcome::Succeeded)]).exit_code(), 0);
        assert_eq!(summary(vec![run(RunOutcome::Failed)]).exit_code(), 1);
        assert_eq!(summary(vec![run(RunOutcome::Held)]).exit_code(), 3);
    }
}
