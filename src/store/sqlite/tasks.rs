//! Provisioning tasks: the lookups a submit needs, the queue (submit, claim, lease expiry,
//! finish, cancel, retry) and the store effects of a successful task.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction on the one write connection, so two
//! workers (or a CLI and the daemon, on two handles to one file) never lease a task twice.
//! A claim leases its whole set with one statement each (lease, attempt rows); a batch of
//! finishes runs each finish in its own savepoint, so one that fails is undone alone.
//!
//! Tasks of one (target, account) run one at a time in submission order. The account key is
//! `id:<account_id>` when the id is known, else `name:<account>` ([`account_key!`]); the
//! partial index `tasks_unfinished_by_account` (migration 0002) holds exactly the unfinished
//! tasks under that key, so the "oldest unfinished task of its account" rule costs one index
//! probe per candidate.
//!
//! Attempt rows (`task_attempts`) are numbered in the order they were made; a task's
//! `attempts` counts only those that count toward `max_attempts` (a requeue gives one back,
//! a manual retry resets it), so [`AttemptResult::attempt`] is matched against `attempts`,
//! not against the row number: a finish whose task is no longer running that attempt (its
//! lease ran out and another worker took it) changes nothing.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::rows::{self, get, get_attributes, get_enum, get_opt_ts, get_ts, ts};
use super::{query_err, SqliteStore};
use crate::model::{
    Account, AccountStatus, AttemptOutcome, Entitlement, ObjectKind, Operation, Task,
    TaskEntitlement, TaskStatus,
};
use crate::store::{
    AttemptResult, Claim, NewTask, StoreEffect, StoreError, StoreResult, Submitted, TaskFilter,
    TaskGauge, TaskNext, TaskStateError,
};

/// The account key of a task row alias (`id:<account_id>`, else `name:<account>`). Must be
/// spelled exactly like the expression of the `tasks_unfinished_by_account` index.
macro_rules! account_key {
    ($t:literal) => {
        concat!(
            "COALESCE('id:' || ",
            $t,
            ".account_id, 'name:' || ",
            $t,
            ".account)"
        )
    };
}

/// The columns [`task`] reads, from `tasks`.
const TASK_COLUMNS: &str = "id, target, operation, account, account_id, entitlement_type, \
    entitlement_id, entitlement_name, attributes, owner, status, attempts, max_attempts, \
    next_attempt_at, last_error, actor, request_id, depends_on, uncertain, first_attempt_at, \
    created_at, updated_at";

/// How many tasks a listing returns when the caller gives no limit.
const DEFAULT_TASK_LIMIT: u32 = 100;

/// The actor of decisions the queue makes on its own (lease expiry, orphaned dependents).
const SYSTEM_ACTOR: &str = "scheduler";

/// Due tasks (alias `t`) that may run now: pending, due (`?1`), whose dependency (if any)
/// has succeeded, and that are the oldest unfinished task of their (target, account).
pub(super) const CLAIMABLE: &str = concat!(
    "SELECT t.id FROM tasks t \
     WHERE t.status = 'pending' AND t.next_attempt_at <= ?1 \
       AND (t.depends_on IS NULL OR EXISTS (SELECT 1 FROM tasks d \
            WHERE d.id = t.depends_on AND d.status = 'succeeded')) \
       AND NOT EXISTS (SELECT 1 FROM tasks t2 \
            WHERE t2.status IN ('pending', 'running') AND t2.target = t.target \
              AND ",
    account_key!("t2"),
    " = ",
    account_key!("t"),
    " AND t2.id < t.id)"
);

/// Leases the tasks whose ids are the JSON array `?1` (those still pending) until `?2` at
/// `?3`, each taking its dependency's account id if it has none yet; returns the leased rows
/// (in no particular order).
const CLAIM_SET: &str = "UPDATE tasks SET status = 'running', lease_until = ?2, \
        attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?3), \
        account_id = COALESCE(account_id, \
            (SELECT d.account_id FROM tasks d WHERE d.id = tasks.depends_on)), \
        updated_at = ?3 \
     WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'pending' \
     RETURNING ";

/// Opens the next attempt row, started at `?2`, of each task whose id is in the JSON array
/// `?1`.
const OPEN_ATTEMPTS: &str = "INSERT INTO task_attempts (task_id, attempt, started_at) \
     SELECT j.value, COALESCE((SELECT MAX(a.attempt) FROM task_attempts a \
            WHERE a.task_id = j.value), 0) + 1, ?2 \
     FROM json_each(?1) j";

/// Running tasks (alias `t`) whose lease ran out before `?1`.
const EXPIRED: &str = "t.status = 'running' AND t.lease_until < ?1";

/// Pending tasks (alias `t`) whose dependency (alias `d`) failed or was cancelled.
const ORPHANED: &str = "t.status = 'pending' AND t.depends_on IS NOT NULL \
     AND d.id = t.depends_on AND d.status IN ('failed', 'cancelled')";

/// The error of a task failed because its dependency did not succeed (`d` the dependency).
const ORPHAN_ERROR: &str = "'depends on task ' || d.id || ', which ' || d.status";

/// The attributes of an entitlement created because a task granted it.
const TASK_DISCOVERED_ATTRIBUTES: &str = r#"{"discovered_from":"task"}"#;

/// A task row (see [`TASK_COLUMNS`]).
fn task(row: &SqliteRow) -> StoreResult<Task> {
    let entitlement_type: Option<String> = get(row, "entitlement_type")?;
    let entitlement_id: Option<String> = get(row, "entitlement_id")?;
    let entitlement_name: Option<String> = get(row, "entitlement_name")?;
    let entitlement = match (entitlement_type, entitlement_id) {
        (Some(entitlement_type), Some(id)) => Some(TaskEntitlement {
            entitlement_type,
            name: entitlement_name.unwrap_or_else(|| id.clone()),
            id,
        }),
        _ => None,
    };
    let uncertain: i64 = get(row, "uncertain")?;
    Ok(Task {
        id: get(row, "id")?,
        target: get(row, "target")?,
        operation: get_enum(row, "operation")?,
        account: get(row, "account")?,
        account_id: get(row, "account_id")?,
        entitlement,
        attributes: get_attributes(row, "attributes")?,
        owner: get(row, "owner")?,
        status: get_enum(row, "status")?,
        attempts: get_count(row, "attempts")?,
        max_attempts: get_count(row, "max_attempts")?,
        next_attempt_at: get_opt_ts(row, "next_attempt_at")?,
        last_error: get(row, "last_error")?,
        actor: get(row, "actor")?,
        request_id: get(row, "request_id")?,
        depends_on: get(row, "depends_on")?,
        uncertain: uncertain != 0,
        first_attempt_at: get_opt_ts(row, "first_attempt_at")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

/// A stored non-negative count.
fn get_count(row: &SqliteRow, column: &'static str) -> StoreResult<u32> {
    let value: i64 = get(row, column)?;
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        context: column,
        message: format!("{value} is not a valid count"),
    })
}

/// The task `id`, read inside a transaction.
async fn load_task(conn: &mut SqliteConnection, id: i64) -> StoreResult<Option<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(query_err("reading a task"))?;
    row.as_ref().map(task).transpose()
}

/// The task `id`, which must exist (it was just written or locked by this transaction).
async fn require_task(conn: &mut SqliteConnection, id: i64) -> StoreResult<Task> {
    load_task(conn, id).await?.ok_or_else(|| StoreError::Query {
        context: "reading a task",
        message: format!("no task {id}"),
    })
}

/// Who and when, for the audit events of one transaction.
struct AuditCtx<'a> {
    /// When (stored form).
    at: &'a str,
    /// Who.
    actor: &'a str,
    /// The target.
    target: &'a str,
    /// The task that caused the events (in every event's details).
    task_id: i64,
}

/// The audit key of a task (task events have no object kind).
fn task_key(id: i64) -> String {
    format!("task:{id}")
}

/// The audit key of a grant (`account_id|type:entitlement_id`, as imports write it).
fn grant_key(account_id: &str, entitlement: &TaskEntitlement) -> String {
    format!(
        "{account_id}|{}:{}",
        entitlement.entitlement_type, entitlement.id
    )
}

/// Records one audit event; `details` gets the task id.
async fn audit(
    conn: &mut SqliteConnection,
    ctx: &AuditCtx<'_>,
    object: Option<ObjectKind>,
    key: &str,
    action: &str,
    mut details: Value,
) -> StoreResult<()> {
    if let Value::Object(map) = &mut details {
        map.insert("task_id".to_string(), json!(ctx.task_id));
    }
    sqlx::query(
        "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
    )
    .bind(ctx.at)
    .bind(ctx.actor)
    .bind(ctx.target)
    .bind(object.map(|object| object.as_str()))
    .bind(key)
    .bind(action)
    .bind(rows::canonical_json(&details))
    .execute(&mut *conn)
    .await
    .map_err(query_err("recording an audit event"))
    .map(drop)
}

/// The store-change error of a task that lacks what its effect needs.
fn effect_err(task: &Task, what: &str) -> StoreError {
    StoreError::Query {
        context: "applying a task's store effect",
        message: format!("task {} has no {what}", task.id),
    }
}

impl SqliteStore {
    pub(super) async fn find_accounts_by_name_impl(
        &self,
        target: &str,
        name: &str,
    ) -> StoreResult<Vec<Account>> {
        let sql = format!(
            "SELECT {} FROM accounts a LEFT JOIN target_state t ON t.target = a.target \
             WHERE a.target = ?1 AND a.name = ?2 AND a.status <> 'suspended' ORDER BY a.id",
            rows::ACCOUNT_COLUMNS
        );
        let found = sqlx::query(&sql)
            .bind(target)
            .bind(name)
            .fetch_all(&self.read)
            .await
            .map_err(query_err("looking up accounts by name"))?;
        found.iter().map(rows::account).collect()
    }

    pub(super) async fn get_account_impl(
        &self,
        target: &str,
        id: &str,
    ) -> StoreResult<Option<Account>> {
        let sql = format!(
            "SELECT {} FROM accounts a LEFT JOIN target_state t ON t.target = a.target \
             WHERE a.target = ?1 AND a.id = ?2",
            rows::ACCOUNT_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(target)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(query_err("reading an account"))?;
        row.as_ref().map(rows::account).transpose()
    }

    pub(super) async fn find_entitlements_impl(
        &self,
        target: &str,
        entitlement_type: &str,
        id_or_name: &str,
    ) -> StoreResult<Vec<Entitlement>> {
        let context = "looking up entitlements";
        let mut tx = self.read_tx(context).await?;
        let by = |column: &str| {
            format!(
                "SELECT {} FROM entitlements e \
                 WHERE e.target = ?1 AND e.type = ?2 COLLATE NOCASE AND e.status = 'active' \
                   AND {column} ORDER BY e.type, e.id",
                rows::ENTITLEMENT_COLUMNS
            )
        };
        let mut found = Vec::new();
        for column in ["e.id = ?3", "e.name = ?3 COLLATE NOCASE"] {
            found = sqlx::query(&by(column))
                .bind(target)
                .bind(entitlement_type)
                .bind(id_or_name)
                .fetch_all(&mut *tx)
                .await
                .map_err(query_err(context))?;
            if !found.is_empty() {
                break;
            }
        }
        tx.commit().await.map_err(query_err(context))?;
        found.iter().map(rows::entitlement).collect()
    }

    pub(super) async fn unfinished_create_impl(
        &self,
        target: &str,
        name: &str,
    ) -> StoreResult<Option<Task>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks \
             WHERE target = ?1 AND status IN ('pending', 'running') AND operation = ?2 \
               AND account = ?3 \
             ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(target)
            .bind(Operation::CreateAccount.as_str())
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(query_err("looking up an unfinished create task"))?;
        row.as_ref().map(task).transpose()
    }

    pub(super) async fn insert_task_impl(&self, new: &NewTask) -> StoreResult<Submitted> {
        let context = "queueing a task";
        let mut tx = self.write_tx(context).await?;
        if let Some(key) = &new.idempotency_key {
            let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE idempotency_key = ?1");
            let row = sqlx::query(&sql)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err(context))?;
            if let Some(row) = row {
                let existing = task(&row)?;
                tx.rollback().await.map_err(query_err(context))?;
                return Ok(Submitted::Existing(existing));
            }
        }
        let created = ts(new.created_at);
        let entitlement = new.entitlement.as_ref();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tasks (target, operation, account, account_id, entitlement_type, \
                entitlement_id, entitlement_name, attributes, owner, status, attempts, \
                max_attempts, next_attempt_at, actor, request_id, idempotency_key, depends_on, \
                uncertain, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', 0, ?10, ?11, ?12, ?13, ?14, \
                ?15, 0, ?11, ?11) \
             RETURNING id",
        )
        .bind(&new.target)
        .bind(new.operation.as_str())
        .bind(&new.account)
        .bind(&new.account_id)
        .bind(entitlement.map(|e| e.entitlement_type.as_str()))
        .bind(entitlement.map(|e| e.id.as_str()))
        .bind(entitlement.map(|e| e.name.as_str()))
        .bind(rows::canonical_attributes(&new.attributes))
        .bind(&new.owner)
        .bind(i64::from(new.max_attempts))
        .bind(&created)
        .bind(&new.actor)
        .bind(&new.request_id)
        .bind(&new.idempotency_key)
        .bind(new.depends_on)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_err(context))?;
        if new.request_id.is_none() {
            sqlx::query("UPDATE tasks SET request_id = CAST(id AS TEXT) WHERE id = ?1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query_err(context))?;
        }
        let ctx = AuditCtx {
            at: &created,
            actor: &new.actor,
            target: &new.target,
            task_id: id,
        };
        let mut details = json!({
            "operation": new.operation.as_str(),
            "account": new.account,
        });
        if let (Value::Object(map), Some(entitlement)) = (&mut details, entitlement) {
            map.insert(
                "entitlement".to_string(),
                json!(format!(
                    "{}:{}",
                    entitlement.entitlement_type, entitlement.id
                )),
            );
        }
        audit(
            &mut tx,
            &ctx,
            None,
            &task_key(id),
            "task_submitted",
            details,
        )
        .await?;
        let queued = require_task(&mut tx, id).await?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(Submitted::Created(queued))
    }

    pub(super) async fn get_task_impl(&self, id: i64) -> StoreResult<Option<Task>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(query_err("reading a task"))?;
        row.as_ref().map(task).transpose()
    }

    pub(super) async fn list_tasks_impl(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
        let mut query =
            QueryBuilder::<Sqlite>::new(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE 1 = 1"));
        push_task_filter(&mut query, filter);
        if let Some(after) = filter.after_id {
            query.push(" AND id > ").push_bind(after);
        }
        let limit = if filter.limit == 0 {
            DEFAULT_TASK_LIMIT
        } else {
            filter.limit
        };
        query
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(limit));
        let found = query
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(query_err("listing tasks"))?;
        found.iter().map(task).collect()
    }

    pub(super) async fn count_tasks_impl(&self, filter: &TaskFilter) -> StoreResult<u64> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM tasks WHERE 1 = 1");
        push_task_filter(&mut query, filter);
        let count: i64 = query
            .build_query_scalar()
            .fetch_one(&self.read)
            .await
            .map_err(query_err("counting tasks"))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    pub(super) async fn claim_tasks_impl(&self, claim: &Claim) -> StoreResult<Vec<Task>> {
        let context = "claiming tasks";
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        let now = ts(claim.now);
        let lease_until = ts(crate::clock::after(claim.now, claim.lease));
        let mut tx = self.write_tx(context).await?;
        // `CLAIMABLE` has one parameter (`?1`, now), bound where it appears.
        let (head, tail) = CLAIMABLE.split_once("?1").unwrap_or((CLAIMABLE, ""));
        // For one target, walk (target, status, id) in id order: the first claimable rows
        // end the scan, instead of sorting every due row of a long queue per claim.
        let head = match claim.target {
            Some(_) => head.replacen(
                "FROM tasks t ",
                "FROM tasks t INDEXED BY tasks_by_target_status ",
                1,
            ),
            None => head.to_string(),
        };
        let mut query = QueryBuilder::<Sqlite>::new(head);
        query.push_bind(&now).push(tail);
        if let Some(target) = &claim.target {
            query.push(" AND t.target = ").push_bind(target);
        }
        query
            .push(" ORDER BY t.id LIMIT ")
            .push_bind(i64::from(claim.limit));
        let ids: Vec<i64> = query
            .build_query_scalar()
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err(context))?;
        if ids.is_empty() {
            tx.rollback().await.map_err(query_err(context))?;
            return Ok(Vec::new());
        }
        // One statement each for the whole set: lease them, read them back, open attempts.
        let ids = json!(ids).to_string();
        let rows = sqlx::query(&format!("{CLAIM_SET}{TASK_COLUMNS}"))
            .bind(&ids)
            .bind(&lease_until)
            .bind(&now)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err(context))?;
        let mut claimed = rows.iter().map(task).collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|task| task.id);
        let leased = json!(claimed.iter().map(|task| task.id).collect::<Vec<_>>()).to_string();
        sqlx::query(OPEN_ATTEMPTS)
            .bind(&leased)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(claimed)
    }

    pub(super) async fn release_expired_leases_impl(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let context = "releasing expired task leases";
        let now = ts(now);
        let mut tx = self.write_tx(context).await?;
        let audit_sql = format!(
            "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, \
                details) \
             SELECT ?1, ?2, t.target, NULL, 'task:' || t.id, 'lease_expired', NULL, \
                json_object('task_id', t.id, 'attempt', t.attempts, 'lease_until', t.lease_until) \
             FROM tasks t WHERE {EXPIRED} ORDER BY t.id"
        );
        sqlx::query(&audit_sql)
            .bind(&now)
            .bind(SYSTEM_ACTOR)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        let attempts_sql = format!(
            "UPDATE task_attempts SET finished_at = ?1, outcome = ?2, error = 'lease expired' \
             WHERE finished_at IS NULL \
               AND task_id IN (SELECT t.id FROM tasks t WHERE {EXPIRED})"
        );
        sqlx::query(&attempts_sql)
            .bind(&now)
            .bind(AttemptOutcome::Unknown.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        let tasks_sql = format!(
            "UPDATE tasks AS t SET status = 'pending', next_attempt_at = ?1, uncertain = 1, \
                lease_until = NULL, updated_at = ?1 \
             WHERE {EXPIRED}"
        );
        let done = sqlx::query(&tasks_sql)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(done.rows_affected())
    }

    pub(super) async fn renew_task_lease_impl(
        &self,
        id: i64,
        attempt: u32,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let context = "renewing a task lease";
        let mut tx = self.write_tx(context).await?;
        let done = sqlx::query(
            "UPDATE tasks SET lease_until = ?3 \
             WHERE id = ?1 AND status = 'running' AND attempts = ?2",
        )
        .bind(id)
        .bind(i64::from(attempt))
        .bind(ts(until))
        .execute(&mut *tx)
        .await
        .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn next_lease_expiry_impl(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let context = "reading the next task lease expiry";
        let next: Option<String> =
            sqlx::query_scalar("SELECT MIN(lease_until) FROM tasks WHERE status = 'running'")
                .fetch_one(&self.read)
                .await
                .map_err(query_err(context))?;
        next.map(|text| rows::parse_ts(context, &text)).transpose()
    }

    pub(super) async fn fail_orphaned_dependents_impl(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let context = "failing tasks whose dependency did not succeed";
        let now = ts(now);
        let mut tx = self.write_tx(context).await?;
        let audit_sql = format!(
            "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, \
                details) \
             SELECT ?1, ?2, t.target, NULL, 'task:' || t.id, 'task_failed', NULL, \
                json_object('task_id', t.id, 'error', {ORPHAN_ERROR}) \
             FROM tasks t, tasks d WHERE {ORPHANED} ORDER BY t.id"
        );
        sqlx::query(&audit_sql)
            .bind(&now)
            .bind(SYSTEM_ACTOR)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        let update_sql = format!(
            "UPDATE tasks AS t SET status = 'failed', last_error = {ORPHAN_ERROR}, \
                next_attempt_at = NULL, updated_at = ?1 \
             FROM tasks d WHERE {ORPHANED}"
        );
        let done = sqlx::query(&update_sql)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(done.rows_affected())
    }

    pub(super) async fn finish_attempt_impl(&self, result: &AttemptResult) -> StoreResult<Task> {
        let mut tx = self.write_tx(FINISH_CONTEXT).await?;
        let finished = finish_in(&mut tx, result).await?;
        tx.commit().await.map_err(query_err(FINISH_CONTEXT))?;
        Ok(finished)
    }

    pub(super) async fn finish_attempts_impl(
        &self,
        results: &[AttemptResult],
    ) -> StoreResult<Vec<StoreResult<Task>>> {
        let context = FINISH_BATCH_CONTEXT;
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx(context).await?;
        let mut finished = Vec::with_capacity(results.len());
        for result in results {
            // Each finish in its own savepoint: one that fails is undone alone.
            savepoint(&mut tx, "SAVEPOINT finish_one").await?;
            let one = finish_in(&mut tx, result).await;
            if one.is_err() {
                savepoint(&mut tx, "ROLLBACK TO finish_one").await?;
            }
            savepoint(&mut tx, "RELEASE finish_one").await?;
            finished.push(one);
        }
        tx.commit().await.map_err(query_err(context))?;
        Ok(finished)
    }

    pub(super) async fn cancel_task_impl(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Result<Task, TaskStateError>> {
        self.move_task(id, actor, at, TaskMove::Cancel).await
    }

    pub(super) async fn retry_task_impl(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Result<Task, TaskStateError>> {
        self.move_task(id, actor, at, TaskMove::Retry).await
    }

    /// Cancels or retries a task by hand, when its state allows.
    async fn move_task(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
        how: TaskMove,
    ) -> StoreResult<Result<Task, TaskStateError>> {
        let context = how.context();
        let now = ts(at);
        let mut tx = self.write_tx(context).await?;
        let Some(current) = load_task(&mut tx, id).await? else {
            tx.rollback().await.map_err(query_err(context))?;
            return Ok(Err(TaskStateError::NotFound(id)));
        };
        if !how.allowed(current.status) {
            tx.rollback().await.map_err(query_err(context))?;
            return Ok(Err(TaskStateError::WrongState {
                id,
                status: current.status,
                what: how.what(),
            }));
        }
        sqlx::query(how.sql())
            .bind(id)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        let ctx = AuditCtx {
            at: &now,
            actor,
            target: &current.target,
            task_id: id,
        };
        audit(
            &mut tx,
            &ctx,
            None,
            &task_key(id),
            how.action(),
            json!({ "old": { "status": current.status.as_str() } }),
        )
        .await?;
        let moved = require_task(&mut tx, id).await?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(Ok(moved))
    }

    pub(super) async fn task_gauges_impl(&self) -> StoreResult<Vec<TaskGauge>> {
        let found: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT target, status, COUNT(*) FROM tasks GROUP BY target, status \
             ORDER BY target, status",
        )
        .fetch_all(&self.read)
        .await
        .map_err(query_err("counting tasks"))?;
        found
            .into_iter()
            .map(|(target, status, count)| {
                Ok(TaskGauge {
                    target,
                    status: status.parse().map_err(|err| StoreError::Corrupt {
                        context: "status",
                        message: format!("{err}"),
                    })?,
                    count: u64::try_from(count).unwrap_or(0),
                })
            })
            .collect()
    }

    pub(super) async fn oldest_pending_impl(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        let found: Vec<(String, String)> = sqlx::query_as(
            "SELECT target, MIN(created_at) FROM tasks WHERE status = 'pending' \
             GROUP BY target ORDER BY target",
        )
        .fetch_all(&self.read)
        .await
        .map_err(query_err("reading the oldest pending tasks"))?;
        found
            .into_iter()
            .map(|(target, at)| Ok((target, rows::parse_ts("created_at", &at)?)))
            .collect()
    }
}

/// What the store is doing while it records the end of an attempt (for errors).
const FINISH_CONTEXT: &str = "recording the end of a task attempt";

/// What the store is doing while it records the ends of a batch of attempts (for errors).
const FINISH_BATCH_CONTEXT: &str = "recording the end of several task attempts";

/// Runs one savepoint statement of a batch of finishes.
async fn savepoint(conn: &mut SqliteConnection, sql: &str) -> StoreResult<()> {
    sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .map_err(query_err(FINISH_BATCH_CONTEXT))
        .map(drop)
}

/// Records the end of one attempt inside the caller's write transaction (see
/// [`crate::store::Store::finish_attempt`]): a stale attempt is audited and changes nothing.
async fn finish_in(tx: &mut SqliteConnection, result: &AttemptResult) -> StoreResult<Task> {
    let context = FINISH_CONTEXT;
    let now = ts(result.finished_at);
    let current = load_task(tx, result.task_id)
        .await?
        .ok_or_else(|| StoreError::Query {
            context,
            message: format!("no task {}", result.task_id),
        })?;
    let ctx = AuditCtx {
        at: &now,
        actor: &current.actor,
        target: &current.target,
        task_id: current.id,
    };
    let key = task_key(current.id);
    if current.status != TaskStatus::Running || current.attempts != result.attempt {
        // A worker whose lease ran out: the task went back to the queue (and maybe to
        // another worker), which reads the target first. Record what it saw, change
        // nothing.
        audit(
            &mut *tx,
            &ctx,
            None,
            &key,
            "task_attempt_stale",
            json!({
                "attempt": result.attempt,
                "outcome": result.outcome.as_str(),
                "error": result.error,
                "status": current.status.as_str(),
            }),
        )
        .await?;
        return Ok(current);
    }
    sqlx::query(
        "UPDATE task_attempts SET finished_at = ?2, outcome = ?3, error = ?4 \
         WHERE task_id = ?1 AND finished_at IS NULL",
    )
    .bind(current.id)
    .bind(&now)
    .bind(result.outcome.as_str())
    .bind(&result.error)
    .execute(&mut *tx)
    .await
    .map_err(query_err(context))?;
    audit(
        &mut *tx,
        &ctx,
        None,
        &key,
        "task_attempt",
        json!({
            "attempt": result.attempt,
            "outcome": result.outcome.as_str(),
            "error": result.error,
        }),
    )
    .await?;
    let unknown = result.outcome == AttemptOutcome::Unknown;
    match &result.next {
        TaskNext::Succeeded { account_id, effect } => {
            let account_id = account_id.clone().or_else(|| current.account_id.clone());
            sqlx::query(
                "UPDATE tasks SET status = 'succeeded', account_id = ?2, uncertain = 0, \
                    lease_until = NULL, next_attempt_at = NULL, updated_at = ?3 \
                 WHERE id = ?1",
            )
            .bind(current.id)
            .bind(&account_id)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
            if let Some(account_id) = &account_id {
                // Tasks waiting for this create follow the new account from now on.
                sqlx::query(
                    "UPDATE tasks SET account_id = ?2, updated_at = ?3 \
                     WHERE depends_on = ?1 AND status = 'pending' AND account_id IS NULL",
                )
                .bind(current.id)
                .bind(account_id)
                .bind(&now)
                .execute(&mut *tx)
                .await
                .map_err(query_err(context))?;
            }
            let mut done = current.clone();
            done.account_id = account_id;
            apply_effect(tx, &ctx, &done, effect).await?;
            audit(
                &mut *tx,
                &ctx,
                None,
                &key,
                "task_succeeded",
                json!({ "attempt": result.attempt }),
            )
            .await?;
        }
        TaskNext::Retry { at } | TaskNext::Requeue { at } => {
            let give_back = i64::from(matches!(result.next, TaskNext::Requeue { .. }));
            sqlx::query(
                "UPDATE tasks SET status = 'pending', next_attempt_at = ?2, \
                    attempts = MAX(attempts - ?3, 0), \
                    last_error = COALESCE(?4, last_error), \
                    uncertain = MAX(uncertain, ?5), lease_until = NULL, updated_at = ?6 \
                 WHERE id = ?1",
            )
            .bind(current.id)
            .bind(ts(*at))
            .bind(give_back)
            .bind(&result.error)
            .bind(i64::from(unknown))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
        }
        TaskNext::Failed => {
            sqlx::query(
                "UPDATE tasks SET status = 'failed', last_error = COALESCE(?2, last_error), \
                    uncertain = MAX(uncertain, ?3), lease_until = NULL, \
                    next_attempt_at = NULL, updated_at = ?4 \
                 WHERE id = ?1",
            )
            .bind(current.id)
            .bind(&result.error)
            .bind(i64::from(unknown))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(query_err(context))?;
            audit(
                &mut *tx,
                &ctx,
                None,
                &key,
                "task_failed",
                json!({ "attempt": result.attempt, "error": result.error }),
            )
            .await?;
        }
    }
    require_task(tx, current.id).await
}

/// A manual move of a task: cancel or retry.
#[derive(Debug, Clone, Copy)]
enum TaskMove {
    /// `pending` → `cancelled`.
    Cancel,
    /// `failed`/`cancelled` → `pending`, due now, attempts reset.
    Retry,
}

impl TaskMove {
    /// What the store is doing (for errors).
    fn context(self) -> &'static str {
        match self {
            TaskMove::Cancel => "cancelling a task",
            TaskMove::Retry => "retrying a task",
        }
    }

    /// Whether a task in `status` may be moved.
    fn allowed(self, status: TaskStatus) -> bool {
        match self {
            TaskMove::Cancel => status == TaskStatus::Pending,
            TaskMove::Retry => matches!(status, TaskStatus::Failed | TaskStatus::Cancelled),
        }
    }

    /// What is allowed, for [`TaskStateError::WrongState`].
    fn what(self) -> &'static str {
        match self {
            TaskMove::Cancel => "only pending tasks can be cancelled",
            TaskMove::Retry => "only failed or cancelled tasks can be retried",
        }
    }

    /// The audit action.
    fn action(self) -> &'static str {
        match self {
            TaskMove::Cancel => "task_cancelled",
            TaskMove::Retry => "task_retried",
        }
    }

    /// The update (`?1` task id, `?2` now).
    fn sql(self) -> &'static str {
        match self {
            TaskMove::Cancel => {
                "UPDATE tasks SET status = 'cancelled', next_attempt_at = NULL, \
                    lease_until = NULL, updated_at = ?2 WHERE id = ?1"
            }
            TaskMove::Retry => {
                "UPDATE tasks SET status = 'pending', next_attempt_at = ?2, attempts = 0, \
                    first_attempt_at = NULL, uncertain = 0, lease_until = NULL, \
                    updated_at = ?2 WHERE id = ?1"
            }
        }
    }
}

/// Applies the store effect of a successful task (`task` carries its final account id).
async fn apply_effect(
    conn: &mut SqliteConnection,
    ctx: &AuditCtx<'_>,
    task: &Task,
    effect: &StoreEffect,
) -> StoreResult<()> {
    match effect {
        StoreEffect::None => Ok(()),
        StoreEffect::AccountCreated {
            account_id,
            name,
            display_name,
            email,
        } => {
            account_created(
                conn,
                ctx,
                task,
                account_id,
                name,
                display_name.as_deref(),
                email.as_deref(),
            )
            .await
        }
        StoreEffect::AccountStatus(status) => {
            let account_id = task
                .account_id
                .as_deref()
                .ok_or_else(|| effect_err(task, "account id"))?;
            account_status(conn, ctx, account_id, *status).await
        }
        StoreEffect::AccountUpdated {
            display_name,
            email,
        } => {
            let account_id = task
                .account_id
                .as_deref()
                .ok_or_else(|| effect_err(task, "account id"))?;
            account_updated(
                conn,
                ctx,
                account_id,
                display_name.as_deref(),
                email.as_deref(),
            )
            .await
        }
        StoreEffect::GrantActive | StoreEffect::GrantRemoved | StoreEffect::GrantMoved => {
            let account_id = task
                .account_id
                .as_deref()
                .ok_or_else(|| effect_err(task, "account id"))?;
            let entitlement = task
                .entitlement
                .as_ref()
                .ok_or_else(|| effect_err(task, "entitlement"))?;
            match effect {
                StoreEffect::GrantRemoved => {
                    grant_removed(conn, ctx, account_id, entitlement, "task").await
                }
                StoreEffect::GrantMoved => {
                    grant_active(conn, ctx, account_id, entitlement).await?;
                    let others: Vec<String> = sqlx::query_scalar(
                        "SELECT entitlement_id FROM grants \
                         WHERE target = ?1 AND account_id = ?2 AND type = ?3 \
                           AND entitlement_id <> ?4 AND status = 'active' \
                         ORDER BY entitlement_id",
                    )
                    .bind(ctx.target)
                    .bind(account_id)
                    .bind(&entitlement.entitlement_type)
                    .bind(&entitlement.id)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(query_err("reading an account's grants"))?;
                    for other in others {
                        let other = TaskEntitlement {
                            entitlement_type: entitlement.entitlement_type.clone(),
                            id: other,
                            name: String::new(),
                        };
                        grant_removed(conn, ctx, account_id, &other, "moved").await?;
                    }
                    Ok(())
                }
                _ => grant_active(conn, ctx, account_id, entitlement).await,
            }
        }
    }
}

/// The stored columns of an account a task effect reads before changing it.
type AccountState = (String, Option<String>, Option<String>, String);

/// An account's name, display name, e-mail and status, if the store has it.
async fn account_state(
    conn: &mut SqliteConnection,
    target: &str,
    id: &str,
) -> StoreResult<Option<AccountState>> {
    sqlx::query_as(
        "SELECT name, display_name, email, status FROM accounts WHERE target = ?1 AND id = ?2",
    )
    .bind(target)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err("reading an account"))
}

/// `AccountCreated`: the account exists locally as `active`.
async fn account_created(
    conn: &mut SqliteConnection,
    ctx: &AuditCtx<'_>,
    task: &Task,
    account_id: &str,
    name: &str,
    display_name: Option<&str>,
    email: Option<&str>,
) -> StoreResult<()> {
    let context = "recording a created account";
    let reason = task_key(ctx.task_id);
    let Some((old_name, old_display, old_email, old_status)) =
        account_state(conn, ctx.target, account_id).await?
    else {
        sqlx::query(
            "INSERT INTO accounts (target, id, name, display_name, email, status, \
                status_reason, owner, attributes, first_seen, last_seen, updated_at, \
                task_changed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, '{}', ?8, NULL, ?8, ?8)",
        )
        .bind(ctx.target)
        .bind(account_id)
        .bind(name)
        .bind(display_name)
        .bind(email)
        .bind(&reason)
        .bind(&task.owner)
        .bind(ctx.at)
        .execute(&mut *conn)
        .await
        .map_err(query_err(context))?;
        return audit(
            conn,
            ctx,
            Some(ObjectKind::Account),
            account_id,
            "created",
            json!({ "new": {
                "name": name, "display_name": display_name, "email": email,
                "status": "active", "owner": task.owner,
            }}),
        )
        .await;
    };
    sqlx::query(
        "UPDATE accounts SET name = ?3, display_name = COALESCE(?4, display_name), \
            email = COALESCE(?5, email), \
            status_reason = CASE WHEN status = 'active' THEN status_reason ELSE ?6 END, \
            status = 'active', owner = COALESCE(?7, owner), last_seen = NULL, \
            updated_at = ?8, task_changed_at = ?8 \
         WHERE target = ?1 AND id = ?2",
    )
    .bind(ctx.target)
    .bind(account_id)
    .bind(name)
    .bind(display_name)
    .bind(email)
    .bind(&reason)
    .bind(&task.owner)
    .bind(ctx.at)
    .execute(&mut *conn)
    .await
    .map_err(query_err(context))?;
    let new_display = display_name.map(str::to_string).or(old_display.clone());
    let new_email = email.map(str::to_string).or(old_email.clone());
    if old_name == name
        && old_display == new_display
        && old_email == new_email
        && old_status == "active"
    {
        return Ok(());
    }
    let action = if old_status == "suspended" {
        "reactivated"
    } else {
        "updated"
    };
    audit(
        conn,
        ctx,
        Some(ObjectKind::Account),
        account_id,
        action,
        json!({
            "old": { "name": old_name, "display_name": old_display, "email": old_email,
                     "status": old_status },
            "new": { "name": name, "display_name": new_display, "email": new_email,
                     "status": "active" },
        }),
    )
    .await
}

/// `AccountStatus`: the account gets `status`; a suspension also removes its active grants.
async fn account_status(
    conn: &mut SqliteConnection,
    ctx: &AuditCtx<'_>,
    account_id: &str,
    status: AccountStatus,
) -> StoreResult<()> {
    let context = "recording an account's new status";
    let Some((_, _, _, old_status)) = account_state(conn, ctx.target, account_id).await? else {
        // Not in the store: the next import brings it.
        return Ok(());
    };
    let changed = old_status != status.as_str();
    // A suspended account keeps the `last_seen` it showed while it was not suspended.
    sqlx::query(
        "UPDATE accounts AS a SET \
            status_reason = CASE WHEN a.status = ?3 THEN a.status_reason ELSE ?4 END, \
            last_seen = CASE \
                WHEN ?3 <> 'suspended' THEN NULL \
                WHEN a.status = 'suspended' THEN a.last_seen \
                ELSE (SELECT CASE \
                        WHEN t.last_account_import_at < a.first_seen THEN a.first_seen \
                        ELSE t.last_account_import_at END \
                      FROM target_state t WHERE t.target = a.target) \
            END, \
            status = ?3, updated_at = ?5, task_changed_at = ?5 \
         WHERE a.target = ?1 AND a.id = ?2",
    )
    .bind(ctx.target)
    .bind(account_id)
    .bind(status.as_str())
    .bind(task_key(ctx.task_id))
    .bind(ctx.at)
    .execute(&mut *conn)
    .await
    .map_err(query_err(context))?;
    if changed {
        let action = match (old_status.as_str(), status) {
            (_, AccountStatus::Suspended) => "suspended",
            ("suspended", _) => "reactivated",
            _ => "updated",
        };
        audit(
            conn,
            ctx,
            Some(ObjectKind::Account),
            account_id,
            action,
            json!({
                "old": { "status": old_status },
                "new": { "status": status.as_str() },
            }),
        )
        .await?;
    }
    if status == AccountStatus::Suspended {
        let grants: Vec<(String, String)> = sqlx::query_as(
            "SELECT type, entitlement_id FROM grants \
             WHERE target = ?1 AND account_id = ?2 AND status = 'active' \
             ORDER BY type, entitlement_id",
        )
        .bind(ctx.target)
        .bind(account_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_err(context))?;
        for (entitlement_type, id) in grants {
            let entitlement = TaskEntitlement {
                entitlement_type,
                id,
                name: String::new(),
            };
            grant_removed(conn, ctx, account_id, &entitlement, "account suspended").await?;
        }
    }
    Ok(())
}

/// `AccountUpdated`: new display name and e-mail, where given.
async fn account_updated(
    conn: &mut SqliteConnection,
    ctx: &AuditCtx<'_>,
    account_id: &str,
    display_name: Option<&str>,
    email: Option<&str>,
) -> StoreResult<()> {
    let Some((_, old_display, old_email, _)) = account_state(conn, ctx.target, account_id).await?
    else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE accounts SET display_name = COALESCE(?3, display_name), \
            email = COALESCE(?4, email), updated_at = ?5, task_changed_at = ?5 \
         WHERE target = ?1 AND id = ?2",
    )
    .bind(ctx.target)
    .bind(account_id)
    .bind(display_name)
    .bind(email)
    .bind(ctx.at)
    .execute(&mut *conn)
    .await
    .map_err(query_err("recording an account update"))?;
    let mut old = serde_json::Map::new();
    let mut new = serde_json::Map::new();
    if let Some(display) = display_name {
        if old_display.as_deref() != Some(display) {
            old.insert("display_name".into(), json!(old_display));
            new.insert("display_name".into(), json!(display));
        }
    }
    if let Some(email) = email {
        if old_email.as_deref() != Some(email) {
            old.insert("email".into(), json!(old_email));
            new.insert("email".into(), json!(email));
        }
    }
    if new.is_empty() {
        return Ok(());
    }
    audit(
        conn,
        ctx,
        Some(ObjectKind::Account),
        account_id,
        "updated",
        json!({ "old": old, "new": new }),
    )
    .await
}

/// The task's grant is active (the entitlement is created if the store lacks it).
async fn grant_active(
    conn: &mut SqliteConnection,
    ctx: &AuditCtx<'_>,
    account_id: &str,
    entitlement: &TaskEntitlement,
) -> StoreResult<()> {
    let context = "recording a granted entitlement";
    let created = sqlx::query(
        "INSERT INTO entitlements (target, type, id, name, status, attributes, first_seen, \
            updated_at, task_changed_at) \
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?6, ?6) \
         ON CONFLICT (target, type, id) DO NOTHING",
    )
    .bind(ctx.target)
    .bind(&entitlement.entitlement_type)
    .bind(&entitlement.id)
    .bind(&entitlement.name)
    .bind(TASK_DISCOVERED_ATTRIBUTES)
    .bind(ctx.at)
    .execute(&mut *conn)
    .await
    .map_err(query_err(context))?;
    if created.rows_affected() > 0 {
        audit(
            conn,
            ctx,
            Some(ObjectKind::Entitlement),
            &format!("{}:{}", entitlement.entitlement_type, entitlement.id),
            "created",
            json!({ "new": { "name": entitlement.name, "attributes": { "discovered_from": "task" } } }),
        )
        .await?;
    }
    let old: Option<String> = sqlx::query_scalar(
        "SELECT status FROM grants \
         WHERE target = ?1 AND account_id = ?2 AND type = ?3 AND entitlement_id = ?4",
    )
    .bind(ctx.target)
    .bind(account_id)
    .bind(&entitlement.entitlement_type)
    .bind(&entitlement.id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err(context))?;
    sqlx::query(
        "INSERT INTO grants (target, account_id, type, entitlement_id, status, first_seen, \
            updated_at, task_changed_at) \
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5, ?5) \
         ON CONFLICT (target, account_id, type, entitlement_id) DO UPDATE SET \
            status = 'active', updated_at = excluded.updated_at, \
            task_changed_at = excluded.task_changed_at",
    )
    .bind(ctx.target)
    .bind(account_id)
    .bind(&entitlement.entitlement_type)
    .bind(&entitlement.id)
    .bind(ctx.at)
    .execute(&mut *conn)
    .await
    .map_err(query_err(context))?;
    let (action, details) = match old.as_deref() {
        None => ("created", json!({ "new": { "status": "active" } })),
        Some("active") => return Ok(()),
        Some(old) => (
            "reactivated",
            json!({ "old": { "status": old }, "new": { "status": "active" } }),
        ),
    };
    audit(
        conn,
        ctx,
        Some(ObjectKind::Grant),
        &grant_key(account_id, entitlement),
        action,
        details,
    )
    .await
}

/// A grant is removed (nothing to do when the store does not have it active).
async fn grant_removed(
    conn: &mut SqliteConnection,
    ctx: &AuditCtx<'_>,
    account_id: &str,
    entitlement: &TaskEntitlement,
    reason: &str,
) -> StoreResult<()> {
    let context = "recording a removed grant";
    let old: Option<String> = sqlx::query_scalar(
        "SELECT status FROM grants \
         WHERE target = ?1 AND account_id = ?2 AND type = ?3 AND entitlement_id = ?4",
    )
    .bind(ctx.target)
    .bind(account_id)
    .bind(&entitlement.entitlement_type)
    .bind(&entitlement.id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err(context))?;
    let Some(old) = old else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE grants SET status = 'removed', updated_at = ?5, task_changed_at = ?5 \
         WHERE target = ?1 AND account_id = ?2 AND type = ?3 AND entitlement_id = ?4",
    )
    .bind(ctx.target)
    .bind(account_id)
    .bind(&entitlement.entitlement_type)
    .bind(&entitlement.id)
    .bind(ctx.at)
    .execute(&mut *conn)
    .await
    .map_err(query_err(context))?;
    if old != "active" {
        return Ok(());
    }
    audit(
        conn,
        ctx,
        Some(ObjectKind::Grant),
        &grant_key(account_id, entitlement),
        "removed",
        json!({
            "old": { "status": "active" },
            "new": { "status": "removed" },
            "reason": reason,
        }),
    )
    .await
}

/// The `target` and `status` conditions of a task listing (not its cursor or limit).
fn push_task_filter(query: &mut QueryBuilder<'_, Sqlite>, filter: &TaskFilter) {
    if let Some(target) = &filter.target {
        query.push(" AND target = ").push_bind(target.clone());
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
}
