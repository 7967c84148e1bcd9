//! The local identity store: the `Store` trait the jobs and the API use, and its SQLite
//! implementation. A PostgreSQL backend can follow by implementing the same trait.
//!
//! Imports go through a *snapshot*: pages are staged as they are read (batched writes to a
//! scratch area, memory stays flat), then the store computes the diff against what it holds,
//! and only after the whole read succeeded and the deletion threshold allows it is the diff
//! applied, in one transaction, with an audit event per change.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{
    Account, AccountRecord, AccountStatus, AttemptOutcome, AuditEvent, ChangeCounts, Entitlement,
    EntitlementRecord, Grant, GrantRecord, ImportMode, JobKind, ObjectKind, Operation, RunOutcome,
    RunRecord, Task, TaskEntitlement, TaskStatus, Trigger,
};

pub mod sqlite;

pub use sqlite::SqliteStore;

/// A store error. Messages name the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open store {url}: {message}")]
    Open {
        /// The store URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The database schema is newer than this binary.
    #[error("store {url} was written by a newer idsync (schema {found}, this binary knows up to {known}); upgrade idsync or restore a backup")]
    SchemaTooNew {
        /// The store URL.
        url: String,
        /// The newest migration in the database.
        found: i64,
        /// The newest migration this binary has.
        known: i64,
    },
    /// A migration failed.
    #[error("store migration failed: {0}")]
    Migrate(String),
    /// A query failed.
    #[error("store error while {context}: {message}")]
    Query {
        /// What the store was doing.
        context: &'static str,
        /// The database's message.
        message: String,
    },
    /// A stored value could not be read back.
    #[error("corrupt value in store ({context}): {message}")]
    Corrupt {
        /// Where.
        context: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// A new run, as recorded when it starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The config job name, or `manual`.
    pub job: String,
    /// The target, when the job has one.
    pub target: Option<String>,
    /// What the run does.
    pub kind: JobKind,
    /// What started it.
    pub trigger: Trigger,
    /// Who started it.
    pub actor: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct RunFinish {
    /// How it ended.
    pub outcome: RunOutcome,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Counts (a `RunCounts`, plus the pending diff when held).
    pub counts: serde_json::Value,
    /// Why it failed or was held.
    pub error: Option<String>,
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this job.
    pub job: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Only runs with an id below this (paging, newest first).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Filters for listing accounts.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// Only this target.
    pub target: Option<String>,
    /// Only this status.
    pub status: Option<AccountStatus>,
    /// Only this owner.
    pub owner: Option<String>,
    /// Only accounts with a native id above this (paging, ordered by target then id).
    pub after: Option<(String, String)>,
    /// At most this many (0 = no limit).
    pub limit: u32,
}

/// Filters for listing entitlements.
#[derive(Debug, Clone, Default)]
pub struct EntitlementFilter {
    /// The target.
    pub target: String,
    /// Only this type (matched case-insensitively).
    pub entitlement_type: Option<String>,
    /// Only rows after this `(type, id)` (paging).
    pub after: Option<(String, String)>,
    /// At most this many (0 = no limit).
    pub limit: u32,
}

/// Filters for listing grants.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    /// The target.
    pub target: String,
    /// Only this account (login name).
    pub account: Option<String>,
    /// Only rows after this `(account_id, type, entitlement_id)` (paging).
    pub after: Option<(String, String, String)>,
    /// At most this many (0 = no limit).
    pub limit: u32,
}

/// Whether a lease lock was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// The lock is ours until the lease runs out.
    Acquired,
    /// Someone else holds it; the string is the holder's description (e.g. `run 42`).
    HeldBy(String),
}

/// One staged snapshot: the records of one object kind read by one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotId {
    /// The run that reads it.
    pub run_id: i64,
    /// The target.
    pub target: String,
    /// The object kind.
    pub object: ObjectKind,
}

/// What applying a snapshot would do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// Counts per change (in incremental mode no deletions are counted).
    pub counts: ChangeCounts,
    /// Rows of this kind that are not suspended / inactive / removed now: the base of the
    /// percent threshold.
    pub existing: u64,
    /// Removals that count toward the deletion threshold (suspended accounts, inactivated
    /// entitlements, removed grants — not grants removed along with a suspended account).
    pub removals: u64,
}

/// One line of a diff, for `--dry-run` output and a held run's pending diff.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiffEntry {
    /// The object kind.
    pub object: ObjectKind,
    /// The record key (`id`, `type:id`, `account_id|type:id`).
    pub key: String,
    /// A readable label (login name, entitlement name).
    pub label: Option<String>,
    /// What would happen.
    pub change: crate::model::Change,
}

/// How to apply a snapshot.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Full (mark what is missing) or incremental (write the delta only).
    pub mode: ImportMode,
    /// When the run started: rows a provisioning task changed after this are left alone.
    pub run_started_at: DateTime<Utc>,
    /// Who ran the import (for audit events).
    pub actor: String,
}

/// A task to queue, validated by the caller.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The target.
    pub target: String,
    /// The operation.
    pub operation: Operation,
    /// The account's login name.
    pub account: String,
    /// The account's native id, when the account exists locally.
    pub account_id: Option<String>,
    /// The resolved entitlement, for access operations.
    pub entitlement: Option<TaskEntitlement>,
    /// Identity attributes.
    pub attributes: crate::model::Attributes,
    /// The owning identity's key upstream.
    pub owner: Option<String>,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Who submitted it.
    pub actor: String,
    /// The caller's request id (the store defaults it to the task id).
    pub request_id: Option<String>,
    /// A key that makes a repeated submit return the existing task.
    pub idempotency_key: Option<String>,
    /// The unfinished create task this one waits for.
    pub depends_on: Option<i64>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
}

/// What a submit did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A new task was queued.
    Created(Task),
    /// The idempotency key was seen before: this is the existing task, nothing queued.
    Existing(Task),
}

/// Filters for listing tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this target.
    pub target: Option<String>,
    /// Only this status.
    pub status: Option<TaskStatus>,
    /// Only tasks with an id above this (paging, oldest first).
    pub after_id: Option<i64>,
    /// At most this many (0 = 100).
    pub limit: u32,
}

/// A request to lease due tasks to a worker.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Only this target (all when unset).
    pub target: Option<String>,
    /// Now: tasks with `next_attempt_at` at or before it are due.
    pub now: DateTime<Utc>,
    /// How long the lease lasts; a task still `running` after it goes back to `pending`.
    pub lease: Duration,
    /// At most this many tasks.
    pub limit: u32,
}

/// What the store must change when a task succeeds, in the same transaction as the task.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEffect {
    /// Nothing to record beyond the task.
    None,
    /// A created account: it exists locally as `active` (owner from the task).
    AccountCreated {
        /// The new native id.
        account_id: String,
        /// The login name.
        name: String,
        /// Display name from the task's attributes.
        display_name: Option<String>,
        /// E-mail from the task's attributes.
        email: Option<String>,
    },
    /// The account's status changed (`inactive` after disable, `active` after enable,
    /// `suspended` after remove).
    AccountStatus(AccountStatus),
    /// The account's attributes changed (update): the merged display name and e-mail.
    AccountUpdated {
        /// New display name, when it changed.
        display_name: Option<String>,
        /// New e-mail, when it changed.
        email: Option<String>,
    },
    /// The grant is active.
    GrantActive,
    /// The grant is removed.
    GrantRemoved,
    /// The account moved: the grant of this type now points at the task's entitlement and
    /// every other grant of the type is removed (DigiCert containers).
    GrantMoved,
}

/// What happens to a task after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskNext {
    /// Done: the task succeeds and `effect` is applied to the store (with status_reason
    /// `task:<id>`, `task_changed_at`, and audit events).
    Succeeded {
        /// The account's native id (set on create).
        account_id: Option<String>,
        /// The store change.
        effect: StoreEffect,
    },
    /// Retry later: back to `pending` with this due time.
    Retry {
        /// When the next attempt is due.
        at: DateTime<Utc>,
    },
    /// Back to `pending` without counting the attempt (e.g. the target's circuit was open).
    Requeue {
        /// When the next attempt is due.
        at: DateTime<Utc>,
    },
    /// Given up.
    Failed,
}

/// The end of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The task.
    pub task_id: i64,
    /// The attempt number (the task's `attempts` when it was claimed).
    pub attempt: u32,
    /// How the attempt ended.
    pub outcome: AttemptOutcome,
    /// The error, in the target's words (never a secret).
    pub error: Option<String>,
    /// When the attempt ended.
    pub finished_at: DateTime<Utc>,
    /// What happens next.
    pub next: TaskNext,
}

/// Why a task could not be cancelled or retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskStateError {
    /// No such task.
    #[error("no task {0}")]
    NotFound(i64),
    /// Cancel of a task that is not pending, or retry of one that is not failed/cancelled.
    #[error("task {id} is {status}; {what}")]
    WrongState {
        /// The task.
        id: i64,
        /// Its status.
        status: TaskStatus,
        /// What is allowed.
        what: &'static str,
    },
}

/// Counts of tasks for the `idsync_tasks` gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskGauge {
    /// The target.
    pub target: String,
    /// The status.
    pub status: TaskStatus,
    /// How many tasks.
    pub count: u64,
}

/// The store contract used by jobs, the CLI and the API.
#[async_trait]
pub trait Store: Send + Sync {
    /// Succeeds when the store answers a trivial query (`/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    // ---- runs ----

    /// Records the start of a run and returns its id.
    async fn start_run(&self, run: &NewRun) -> StoreResult<i64>;
    /// Records the end of a run.
    async fn finish_run(&self, run_id: i64, finish: &RunFinish) -> StoreResult<()>;
    /// Marks runs left open by a dead process as failed with `reason`; returns how many.
    async fn fail_open_runs(&self, reason: &str, at: DateTime<Utc>) -> StoreResult<u64>;
    /// One run.
    async fn get_run(&self, run_id: i64) -> StoreResult<Option<RunRecord>>;
    /// Runs, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>>;
    /// How many runs match the filter's `job` and `target` (its cursor and limit are
    /// ignored): the total a truncated listing reports.
    async fn count_runs(&self, filter: &RunFilter) -> StoreResult<u64>;
    /// The newest successful run of this kind for this target.
    async fn last_success(&self, target: &str, kind: JobKind) -> StoreResult<Option<RunRecord>>;
    /// The newest finished run (any outcome) of this kind for this target.
    async fn last_finished(&self, target: &str, kind: JobKind) -> StoreResult<Option<RunRecord>>;

    // ---- leases ----

    /// Takes (or renews, if `holder` already has it) the named lock until `ttl` from now.
    async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<LockOutcome>;
    /// Releases the named lock if `holder` has it.
    async fn unlock(&self, name: &str, holder: &str) -> StoreResult<()>;

    // ---- import snapshots ----

    /// Clears any staged rows of this snapshot (a fresh start).
    async fn begin_snapshot(&self, snapshot: &SnapshotId) -> StoreResult<()>;
    /// Stages one page of accounts (one transaction).
    async fn stage_accounts(
        &self,
        snapshot: &SnapshotId,
        page: &[AccountRecord],
    ) -> StoreResult<()>;
    /// Stages one page of entitlements (one transaction).
    async fn stage_entitlements(
        &self,
        snapshot: &SnapshotId,
        page: &[EntitlementRecord],
    ) -> StoreResult<()>;
    /// Stages one page of grants (one transaction).
    async fn stage_grants(&self, snapshot: &SnapshotId, page: &[GrantRecord]) -> StoreResult<()>;
    /// Computes what applying the snapshot would do, without writing anything.
    async fn diff_snapshot(
        &self,
        snapshot: &SnapshotId,
        mode: ImportMode,
    ) -> StoreResult<SnapshotDiff>;
    /// Lists the changes applying the snapshot would make (not `unchanged`), at most `limit`.
    async fn diff_entries(
        &self,
        snapshot: &SnapshotId,
        mode: ImportMode,
        limit: u32,
    ) -> StoreResult<Vec<DiffEntry>>;
    /// Applies the snapshot in one transaction, with an audit event per change, and
    /// discards it. Returns what was done. For accounts in full mode this also records the
    /// target's last full import time (the source of `last_seen`).
    async fn apply_snapshot(
        &self,
        snapshot: &SnapshotId,
        options: &ApplyOptions,
    ) -> StoreResult<ChangeCounts>;
    /// Drops the staged rows of a snapshot.
    async fn discard_snapshot(&self, snapshot: &SnapshotId) -> StoreResult<()>;

    // ---- audit ----

    /// Records a run-level audit event (e.g. `deletions_allowed`).
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Audit events, newest first, optionally for one target, at most `limit`.
    async fn list_audit(&self, target: Option<&str>, limit: u32) -> StoreResult<Vec<AuditEvent>>;

    // ---- queries ----

    /// Accounts matching the filter, ordered by target then id.
    async fn list_accounts(&self, filter: &AccountFilter) -> StoreResult<Vec<Account>>;
    /// Entitlements matching the filter, ordered by type then id.
    async fn list_entitlements(&self, filter: &EntitlementFilter) -> StoreResult<Vec<Entitlement>>;
    /// Grants matching the filter, ordered by account id, type, entitlement id.
    async fn list_grants(&self, filter: &GrantFilter) -> StoreResult<Vec<Grant>>;

    // ---- lookups for task submission ----

    /// Non-suspended accounts of `target` with login `name` (more than one = ambiguous).
    async fn find_accounts_by_name(&self, target: &str, name: &str) -> StoreResult<Vec<Account>>;
    /// One account by native id.
    async fn get_account(&self, target: &str, id: &str) -> StoreResult<Option<Account>>;
    /// Active entitlements of `target` and type (case-insensitive) whose id equals
    /// `id_or_name`, or, when none does, whose name equals it (case-insensitive).
    async fn find_entitlements(
        &self,
        target: &str,
        entitlement_type: &str,
        id_or_name: &str,
    ) -> StoreResult<Vec<Entitlement>>;
    /// The newest unfinished (`pending`/`running`) `create_account` task of `target` for
    /// login `name`.
    async fn unfinished_create(&self, target: &str, name: &str) -> StoreResult<Option<Task>>;

    // ---- tasks ----

    /// Queues a task, or returns the existing one for a repeated idempotency key (one
    /// transaction: two concurrent submits with one key queue one task). Records an audit
    /// event `task_submitted`.
    async fn insert_task(&self, task: &NewTask) -> StoreResult<Submitted>;
    /// One task.
    async fn get_task(&self, id: i64) -> StoreResult<Option<Task>>;
    /// Tasks matching the filter, oldest first.
    async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>>;
    /// How many tasks match the filter's `target` and `status` (its cursor and limit are
    /// ignored): the total a truncated listing reports.
    async fn count_tasks(&self, filter: &TaskFilter) -> StoreResult<u64>;
    /// Leases due tasks: `pending`, due, whose dependency (if any) has succeeded (its
    /// `account_id` is copied to the dependent task), and that are the **oldest unfinished
    /// task of their (target, account)** — tasks of one account run one at a time in
    /// submission order (the account is keyed by `account_id` when known, else by name).
    /// Each claimed task becomes `running` with `lease_until = now + lease`, `attempts + 1`,
    /// `first_attempt_at` set if unset, and an attempt row. Oldest first, at most `limit`.
    async fn claim_tasks(&self, claim: &Claim) -> StoreResult<Vec<Task>>;
    /// Returns `running` tasks whose lease ran out to `pending` (due now), marking them
    /// `uncertain` and their open attempt `unknown`. Returns how many.
    async fn release_expired_leases(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Extends the lease of task `id` to `until`, if it is still `running` in attempt
    /// `attempt` (a worker's heartbeat). `false`: the lease ran out and the task went back to
    /// the queue (or on to another worker); the worker's result will be recorded as stale.
    async fn renew_task_lease(
        &self,
        id: i64,
        attempt: u32,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// When the first lease of a `running` task runs out, if any task is running: the
    /// moment its work comes back to the queue when its worker has died.
    async fn next_lease_expiry(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// Fails `pending` tasks whose dependency failed or was cancelled, with
    /// `depends on task N`. Returns how many.
    async fn fail_orphaned_dependents(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Records the end of an attempt and moves the task on, applying the store effect of a
    /// success in the same transaction (audit events for the attempt and each change).
    /// Success clears `uncertain`; an attempt with outcome `unknown` sets it; otherwise it
    /// is kept (an attempt that never reached the target resolves nothing). `attempt` must
    /// be the task's `attempts` as claimed and the task still `running`: a late finish from
    /// a worker whose lease ran out changes nothing (audited `task_attempt_stale`) and
    /// returns the task as it is. Returns the updated task.
    async fn finish_attempt(&self, result: &AttemptResult) -> StoreResult<Task>;
    /// Records the ends of several attempts in one write transaction, each with exactly the
    /// checks and effects of [`Store::finish_attempt`], in the order given. One finish that
    /// fails (its effect cannot be applied, its task is gone) is undone alone and answers its
    /// error in its place; the others are kept. `Err` when the transaction itself failed:
    /// then nothing was recorded, and the tasks stay `running` until their leases run out
    /// (the next attempt of each is `uncertain`, as after a crash).
    async fn finish_attempts(
        &self,
        results: &[AttemptResult],
    ) -> StoreResult<Vec<StoreResult<Task>>>;
    /// Cancels a `pending` task.
    async fn cancel_task(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Result<Task, TaskStateError>>;
    /// Puts a `failed` or `cancelled` task back to `pending`, due now, with `attempts = 0`.
    async fn retry_task(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Result<Task, TaskStateError>>;
    /// Task counts per target and status.
    async fn task_gauges(&self) -> StoreResult<Vec<TaskGauge>>;
    /// The oldest pending task's `created_at` per target.
    async fn oldest_pending(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>>;
}
