//! The SQLite implementation of [`Store`].
//!
//! * One file, created `0600`, in WAL mode with `synchronous=NORMAL`, foreign keys on and a
//!   busy timeout, so a CLI and the daemon can share it.
//! * **One writer**: every write goes through a pool of exactly one connection and starts
//!   with `BEGIN IMMEDIATE`, so write transactions never deadlock on a lock upgrade; reads
//!   use a separate pool whose connections are `query_only`.
//! * The schema is the embedded migrations of `migrations/`; they run forward at open, after
//!   an automatic backup when the store already holds data. A store written by a newer
//!   binary is refused ([`StoreError::SchemaTooNew`]).
//! * Import snapshots are staged in TEMP tables of the write connection, classified as they
//!   are staged, and diffed and applied with set-based SQL, so memory stays flat however
//!   large a target is and an unchanged record costs a read, not a write (see
//!   `sqlite/snapshot.rs`).

mod queries;
mod rows;
mod snapshot;
#[cfg(test)]
mod task_tests;
mod tasks;
#[cfg(test)]
mod tests;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::{
    AccountFilter, ApplyOptions, DiffEntry, EntitlementFilter, GrantFilter, LockOutcome, NewRun,
    RunFilter, RunFinish, SnapshotDiff, SnapshotId, Store, StoreError, StoreResult,
};
use crate::clock;
use crate::model::{
    Account, AccountRecord, AuditEvent, ChangeCounts, Entitlement, EntitlementRecord, Grant,
    GrantRecord, ImportMode, JobKind, RunRecord,
};

/// The schema, embedded from `migrations/` at build time.
static MIGRATOR: Migrator = sqlx::migrate!();

/// How many connections the read pool keeps at most.
const READ_CONNECTIONS: u32 = 4;

/// The size, in bytes, the WAL file is cut back to after a checkpoint.
const WAL_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

/// The URL scheme prefix this store accepts.
const URL_PREFIX: &str = "sqlite://";

/// The SQLite implementation of [`super::Store`].
///
/// Cloning is cheap: clones share the two connection pools.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The URL the store was opened with (for messages).
    url: String,
    /// The database file.
    path: PathBuf,
    /// The one writer: a pool of exactly one connection.
    write: SqlitePool,
    /// Readers (`query_only` connections).
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it `0600` if missing) the store at `url` (`sqlite://PATH`; a relative
    /// path is relative to the working directory), and brings its schema up to date.
    ///
    /// `busy_timeout` is how long a statement waits for another process's write lock.
    /// Fails with [`StoreError::SchemaTooNew`] when the file was written by a newer idsync.
    pub async fn open(url: &str, busy_timeout: Duration) -> StoreResult<Self> {
        let path = path_from_url(url)?;
        create_private_file(&path).map_err(|err| StoreError::Open {
            url: url.to_string(),
            message: err.to_string(),
        })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            // A large import's apply grows the WAL to its size; once checkpointed, the WAL
            // is cut back to this instead of keeping that size on disk for good.
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        let open_err = |err: sqlx::Error| StoreError::Open {
            url: url.to_string(),
            message: db_message(&err),
        };
        // The pool's own wait for its single connection must outlast a long apply.
        let acquire_timeout = busy_timeout.max(Duration::from_secs(60));
        // The write connection also holds the scratch tables imports stage in, so it is
        // never recycled (a replacement starts with empty scratch tables, and a snapshot
        // staged on the old one is refused at apply rather than applied half-empty).
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(acquire_timeout)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, snapshot::SCRATCH_SCHEMA)
                        .await
                        .map(drop)
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        migrate(&write, url, &path).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(acquire_timeout)
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .map_err(open_err)?;
        Ok(SqliteStore {
            url: url.to_string(),
            path,
            write,
            read,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes a consistent copy of the store to `path` (`VACUUM INTO`) while it stays in
    /// use. The copy is created `0600`; an existing file at `path` is never overwritten.
    pub async fn backup_to(&self, path: &Path) -> StoreResult<()> {
        backup(&self.read, path).await
    }

    /// Closes both pools, waiting for connections in use to be returned (a clean WAL
    /// checkpoint on the last close).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Starts a write transaction with `BEGIN IMMEDIATE` on the one write connection.
    /// Dropping the transaction without committing rolls it back.
    ///
    /// After a write failed mid-transaction (a full disk, an I/O error), SQLite has already
    /// rolled the transaction back on its own; sqlx's rollback then fails and sqlx goes on
    /// counting a transaction that is gone, so every later `BEGIN` on that connection is
    /// refused ([`sqlx::Error::InvalidSavePointStatement`]). That connection is replaced
    /// here, so one failed write does not disable the store for the life of the process.
    async fn write_tx(&self, context: &'static str) -> StoreResult<Transaction<'static, Sqlite>> {
        match self.write.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                tracing::warn!(
                    context,
                    "The store's write connection was left in a failed transaction; reconnecting."
                );
                let mut stuck = self.write.acquire().await.map_err(query_err(context))?;
                stuck.close_on_drop();
                drop(stuck);
                self.write
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(query_err(context))
            }
            begun => begun.map_err(query_err(context)),
        }
    }

    /// Starts a read transaction (one consistent view for several queries).
    async fn read_tx(&self, context: &'static str) -> StoreResult<Transaction<'static, Sqlite>> {
        self.read.begin().await.map_err(query_err(context))
    }
}

/// The file path of a `sqlite://PATH` URL.
fn path_from_url(url: &str) -> StoreResult<PathBuf> {
    let path = url
        .strip_prefix(URL_PREFIX)
        .ok_or_else(|| StoreError::Open {
            url: url.to_string(),
            message: format!("expected a URL of the form {URL_PREFIX}PATH"),
        })?;
    if path.is_empty() || path.contains('?') {
        return Err(StoreError::Open {
            url: url.to_string(),
            message: format!(
                "expected a URL of the form {URL_PREFIX}PATH (a file path, no query string)"
            ),
        });
    }
    Ok(PathBuf::from(path))
}

/// Creates the database file with mode `0600` if it does not exist (an existing file keeps
/// its mode). SQLite gives the `-wal` and `-shm` files the database file's mode.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
}

/// Runs the embedded migrations, refusing a schema newer than this binary and backing up a
/// store that holds data before changing its schema.
async fn migrate(pool: &SqlitePool, url: &str, path: &Path) -> StoreResult<()> {
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let found = applied_version(pool).await?;
    if let Some(found) = found {
        if found > known {
            return Err(StoreError::SchemaTooNew {
                url: url.to_string(),
                found,
                known,
            });
        }
        if found < known {
            let backup_path = pre_migration_backup_path(path, found, clock::now());
            backup(pool, &backup_path).await.map_err(|err| {
                StoreError::Migrate(format!(
                    "could not back up the store to {} before migrating: {err}",
                    backup_path.display()
                ))
            })?;
            tracing::info!(
                backup = %backup_path.display(),
                from = found,
                to = known,
                "Store backed up before schema migration."
            );
        }
    }
    MIGRATOR
        .run(pool)
        .await
        .map_err(|err| StoreError::Migrate(err.to_string()))
}

/// Where the automatic backup before a migration goes: next to the store, named after the
/// schema it holds and the time.
fn pre_migration_backup_path(path: &Path, schema: i64, at: DateTime<Utc>) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".schema-{schema}.{}.bak",
        at.format("%Y%m%dT%H%M%SZ")
    ));
    PathBuf::from(name)
}

/// The newest migration recorded in the database, or `None` for a fresh file.
async fn applied_version(pool: &SqlitePool) -> StoreResult<Option<i64>> {
    let context = "reading the schema version";
    let has_table: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await
    .map_err(query_err(context))?;
    if has_table == 0 {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map_err(query_err(context))
}

/// `VACUUM INTO` a new `0600` file at `path`.
async fn backup(pool: &SqlitePool, path: &Path) -> StoreResult<()> {
    let context = "backing up the store";
    let target = path.to_str().ok_or_else(|| StoreError::Query {
        context,
        message: format!("backup path {} is not valid UTF-8", path.display()),
    })?;
    // Create the (empty) file first so it gets mode 0600; VACUUM INTO accepts an empty file.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| StoreError::Query {
            context,
            message: format!("cannot create {}: {err}", path.display()),
        })?;
    let result = vacuum_into(pool, target).await;
    if let Err(err) = result {
        // Leave nothing half-written behind.
        let _ = std::fs::remove_file(path);
        return Err(query_err(context)(err));
    }
    Ok(())
}

/// Runs `VACUUM INTO` on a pooled connection. Read connections are `query_only`, which
/// also forbids writing the copy, so that is lifted for the statement and restored after
/// (a connection that cannot be restored is closed, not returned to the pool). The write
/// pool (used for the pre-migration backup) is not `query_only` and is left as it is.
async fn vacuum_into(pool: &SqlitePool, target: &str) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let query_only: i64 = sqlx::query_scalar("PRAGMA query_only")
        .fetch_one(&mut *conn)
        .await?;
    if query_only == 0 {
        return sqlx::query("VACUUM INTO ?1")
            .bind(target)
            .execute(&mut *conn)
            .await
            .map(drop);
    }
    sqlx::query("PRAGMA query_only = OFF")
        .execute(&mut *conn)
        .await?;
    let result = sqlx::query("VACUUM INTO ?1")
        .bind(target)
        .execute(&mut *conn)
        .await;
    if sqlx::query("PRAGMA query_only = ON")
        .execute(&mut *conn)
        .await
        .is_err()
    {
        conn.close_on_drop();
    }
    result.map(drop)
}

/// SQLite's primary result codes an operator can act on.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;

/// The database's own message for an error (never a bound value), with what to do when the
/// cause is outside idsync: another process holding the store's lock, a full disk.
fn db_message(err: &sqlx::Error) -> String {
    let sqlx::Error::Database(db) = err else {
        return err.to_string();
    };
    let message = db.message();
    // The extended result code; its low byte is the primary code.
    let primary = db
        .code()
        .and_then(|code| code.parse::<i64>().ok())
        .map(|code| code & 0xff);
    match primary {
        Some(SQLITE_BUSY | SQLITE_LOCKED) => format!(
            "{message} (another process held the store's write lock longer than \
             store.busy_timeout: run again when it is done, or raise store.busy_timeout)"
        ),
        Some(SQLITE_FULL) => {
            format!("{message} (the disk that holds the store is full: free space, then run again)")
        }
        Some(SQLITE_IOERR) => format!(
            "{message} (writing the store failed: the disk may be full, a file-size limit \
             reached, or the device failing; free space or check the disk, then run again)"
        ),
        _ => message.to_string(),
    }
}

/// Maps a sqlx error to [`StoreError::Query`] with what the store was doing.
fn query_err(context: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |err| StoreError::Query {
        context,
        message: db_message(&err),
    }
}

// Types of the task-store methods below.
use super::{AttemptResult, Claim, NewTask, Submitted, TaskFilter, TaskGauge, TaskStateError};
use crate::model::Task;

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map(drop)
            .map_err(query_err("pinging the store"))
    }

    async fn start_run(&self, run: &NewRun) -> StoreResult<i64> {
        self.start_run_impl(run).await
    }

    async fn finish_run(&self, run_id: i64, finish: &RunFinish) -> StoreResult<()> {
        self.finish_run_impl(run_id, finish).await
    }

    async fn fail_open_runs(&self, reason: &str, at: DateTime<Utc>) -> StoreResult<u64> {
        self.fail_open_runs_impl(reason, at).await
    }

    async fn get_run(&self, run_id: i64) -> StoreResult<Option<RunRecord>> {
        self.get_run_impl(run_id).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        self.list_runs_impl(filter).await
    }

    async fn count_runs(&self, filter: &RunFilter) -> StoreResult<u64> {
        self.count_runs_impl(filter).await
    }

    async fn last_success(&self, target: &str, kind: JobKind) -> StoreResult<Option<RunRecord>> {
        self.last_success_impl(target, kind).await
    }

    async fn last_finished(&self, target: &str, kind: JobKind) -> StoreResult<Option<RunRecord>> {
        self.last_finished_impl(target, kind).await
    }

    async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<LockOutcome> {
        self.try_lock_impl(name, holder, ttl).await
    }

    async fn unlock(&self, name: &str, holder: &str) -> StoreResult<()> {
        self.unlock_impl(name, holder).await
    }

    async fn begin_snapshot(&self, snapshot: &SnapshotId) -> StoreResult<()> {
        self.begin_snapshot_impl(snapshot).await
    }

    async fn stage_accounts(
        &self,
        snapshot: &SnapshotId,
        page: &[AccountRecord],
    ) -> StoreResult<()> {
        self.stage_accounts_impl(snapshot, page).await
    }

    async fn stage_entitlements(
        &self,
        snapshot: &SnapshotId,
        page: &[EntitlementRecord],
    ) -> StoreResult<()> {
        self.stage_entitlements_impl(snapshot, page).await
    }

    async fn stage_grants(&self, snapshot: &SnapshotId, page: &[GrantRecord]) -> StoreResult<()> {
        self.stage_grants_impl(snapshot, page).await
    }

    async fn diff_snapshot(
        &self,
        snapshot: &SnapshotId,
        mode: ImportMode,
    ) -> StoreResult<SnapshotDiff> {
        self.diff_snapshot_impl(snapshot, mode).await
    }

    async fn diff_entries(
        &self,
        snapshot: &SnapshotId,
        mode: ImportMode,
        limit: u32,
    ) -> StoreResult<Vec<DiffEntry>> {
        self.diff_entries_impl(snapshot, mode, limit).await
    }

    async fn apply_snapshot(
        &self,
        snapshot: &SnapshotId,
        options: &ApplyOptions,
    ) -> StoreResult<ChangeCounts> {
        self.apply_snapshot_impl(snapshot, options).await
    }

    async fn discard_snapshot(&self, snapshot: &SnapshotId) -> StoreResult<()> {
        self.discard_snapshot_impl(snapshot).await
    }

    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.record_audit_impl(event).await
    }

    async fn list_audit(&self, target: Option<&str>, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        self.list_audit_impl(target, limit).await
    }

    async fn list_accounts(&self, filter: &AccountFilter) -> StoreResult<Vec<Account>> {
        self.list_accounts_impl(filter).await
    }

    async fn list_entitlements(&self, filter: &EntitlementFilter) -> StoreResult<Vec<Entitlement>> {
        self.list_entitlements_impl(filter).await
    }

    async fn list_grants(&self, filter: &GrantFilter) -> StoreResult<Vec<Grant>> {
        self.list_grants_impl(filter).await
    }

    async fn find_accounts_by_name(&self, target: &str, name: &str) -> StoreResult<Vec<Account>> {
        self.find_accounts_by_name_impl(target, name).await
    }

    async fn get_account(&self, target: &str, id: &str) -> StoreResult<Option<Account>> {
        self.get_account_impl(target, id).await
    }

    async fn find_entitlements(
        &self,
        target: &str,
        entitlement_type: &str,
        id_or_name: &str,
    ) -> StoreResult<Vec<Entitlement>> {
        self.find_entitlements_impl(target, entitlement_type, id_or_name)
            .await
    }

    async fn unfinished_create(&self, target: &str, name: &str) -> StoreResult<Option<Task>> {
        self.unfinished_create_impl(target, name).await
    }

    async fn insert_task(&self, task: &NewTask) -> StoreResult<Submitted> {
        self.insert_task_impl(task).await
    }

    async fn get_task(&self, id: i64) -> StoreResult<Option<Task>> {
        self.get_task_impl(id).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
        self.list_tasks_impl(filter).await
    }

    async fn count_tasks(&self, filter: &TaskFilter) -> StoreResult<u64> {
        self.count_tasks_impl(filter).await
    }

    async fn claim_tasks(&self, claim: &Claim) -> StoreResult<Vec<Task>> {
        self.claim_tasks_impl(claim).await
    }

    async fn release_expired_leases(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.release_expired_leases_impl(now).await
    }

    async fn renew_task_lease(
        &self,
        id: i64,
        attempt: u32,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.renew_task_lease_impl(id, attempt, until).await
    }

    async fn next_lease_expiry(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.next_lease_expiry_impl().await
    }

    async fn fail_orphaned_dependents(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.fail_orphaned_dependents_impl(now).await
    }

    async fn finish_attempt(&self, result: &AttemptResult) -> StoreResult<Task> {
        self.finish_attempt_impl(result).await
    }

    async fn finish_attempts(
        &self,
        results: &[AttemptResult],
    ) -> StoreResult<Vec<StoreResult<Task>>> {
        self.finish_attempts_impl(results).await
    }

    async fn cancel_task(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Result<Task, TaskStateError>> {
        self.cancel_task_impl(id, actor, at).await
    }

    async fn retry_task(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Result<Task, TaskStateError>> {
        self.retry_task_impl(id, actor, at).await
    }

    async fn task_gauges(&self) -> StoreResult<Vec<TaskGauge>> {
        self.task_gauges_impl().await
    }

    async fn oldest_pending(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        self.oldest_pending_impl().await
    }
}
