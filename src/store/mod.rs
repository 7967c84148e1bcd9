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
    Account, AccountRecord, AccountStatus, AuditEvent, ChangeCounts, Entitlement,
    EntitlementRecord, Grant, GrantRecord, ImportMode, JobKind, ObjectKind, RunOutcome, RunRecord,
    Trigger,
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
    /// The newest successful run of this kind for this target.
    async fn last_success(&self, target: &str, kind: JobKind) -> StoreResult<Option<RunRecord>>;

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
}
