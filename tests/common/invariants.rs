//! The checks every fault scenario ends with, written once (tests/faults):
//!
//! * every task is final, or pending with a next attempt (retrying); none is left `running`;
//! * no side effect happened twice at the simulator (writes that took effect, per route, and
//!   login names unique there);
//! * nothing was suspended, inactivated or removed on an incomplete read (the store's rows
//!   are unchanged since a snapshot, or every row an import took away is really gone at the
//!   target);
//! * no secret appears in any output (logs, stdout and stderr, metrics, the store files);
//! * the audit trail is complete: an event for each submit, attempt and final state of every
//!   task, and for every record an import wrote.
//!
//! It reads the SQLite store directly (read only, a connection of its own), so it sees what
//! the processes wrote, whichever process that was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use super::secrets::Exposed;

/// A read-only view of a store file, for the checks.
pub struct StoreView {
    pool: SqlitePool,
    path: PathBuf,
}

/// One task as the store holds it.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: i64,
    pub target: String,
    pub operation: String,
    pub account: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub lease_until: Option<String>,
    pub last_error: Option<String>,
}

/// Every account, entitlement and grant row of one target, each as one line of text, for
/// before/after comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    pub accounts: Vec<String>,
    pub entitlements: Vec<String>,
    pub grants: Vec<String>,
}

impl Records {
    /// Rows in all three kinds.
    pub fn len(&self) -> usize {
        self.accounts.len() + self.entitlements.len() + self.grants.len()
    }

    /// Rows that differ from `before` (added, removed or changed), all kinds together.
    pub fn changed_since(&self, before: &Records) -> usize {
        let diff = |a: &[String], b: &[String]| {
            let a: BTreeSet<&String> = a.iter().collect();
            let b: BTreeSet<&String> = b.iter().collect();
            a.symmetric_difference(&b).count()
        };
        diff(&self.accounts, &before.accounts)
            + diff(&self.entitlements, &before.entitlements)
            + diff(&self.grants, &before.grants)
    }
}

impl StoreView {
    /// Opens the store at `db` (which must exist).
    pub async fn open(db: &Path) -> Self {
        assert!(db.exists(), "no store at {}", db.display());
        let options = SqliteConnectOptions::new()
            .filename(db)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap_or_else(|err| panic!("cannot open {}: {err}", db.display()));
        Self {
            pool,
            path: db.to_path_buf(),
        }
    }

    /// Closes the connection (so a test can remove or lock the file after).
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Every task, oldest first.
    pub async fn tasks(&self) -> Vec<TaskRow> {
        sqlx::query(
            "SELECT id, target, operation, account, status, attempts, next_attempt_at, \
                    lease_until, last_error FROM tasks ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| TaskRow {
            id: row.get("id"),
            target: row.get("target"),
            operation: row.get("operation"),
            account: row.get("account"),
            status: row.get("status"),
            attempts: row.get("attempts"),
            next_attempt_at: row.get("next_attempt_at"),
            lease_until: row.get("lease_until"),
            last_error: row.get("last_error"),
        })
        .collect()
    }

    /// Every record of `target`, each row as one line of every column.
    pub async fn records(&self, target: &str) -> Records {
        let lines = |sql: &'static str| {
            let pool = self.pool.clone();
            let target = target.to_string();
            async move {
                sqlx::query_scalar::<_, String>(sql)
                    .bind(target)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
        };
        Records {
            accounts: lines(
                "SELECT json_array(id, name, display_name, email, status, status_reason, owner, \
                        attributes, first_seen, last_seen, updated_at, task_changed_at) \
                 FROM accounts WHERE target = ?1 ORDER BY id",
            )
            .await,
            entitlements: lines(
                "SELECT json_array(type, id, name, status, attributes, first_seen, updated_at) \
                 FROM entitlements WHERE target = ?1 ORDER BY type, id",
            )
            .await,
            grants: lines(
                "SELECT json_array(account_id, type, entitlement_id, status, first_seen, \
                        updated_at) \
                 FROM grants WHERE target = ?1 ORDER BY account_id, type, entitlement_id",
            )
            .await,
        }
    }

    /// `(id, status, status_reason)` of every account of `target`.
    pub async fn account_statuses(&self, target: &str) -> Vec<(String, String, Option<String>)> {
        sqlx::query_as("SELECT id, status, status_reason FROM accounts WHERE target = ?1")
            .bind(target)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// `(outcome, error)` of every run of `target`, oldest first (`outcome` is `None` while
    /// a run is open).
    pub async fn runs(&self, target: &str) -> Vec<(i64, Option<String>, Option<String>)> {
        sqlx::query_as("SELECT id, outcome, error FROM runs WHERE target = ?1 ORDER BY id")
            .bind(target)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// How many audit events there are with `action`.
    pub async fn audit_count(&self, action: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = ?1")
            .bind(action)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// `PRAGMA integrity_check`: `"ok"` for a sound file.
    pub async fn integrity(&self) -> String {
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The audit trail is complete: every task has its `task_submitted`; every finished
    /// attempt its `task_attempt` (or `lease_expired`, when the attempt's process died);
    /// every final task its `task_succeeded` / `task_failed` / `task_cancelled`; and every
    /// account, entitlement and grant row at least one event under its key, with a removal
    /// event for each row that is suspended, inactive or removed.
    pub async fn assert_audit_complete(&self) {
        let events: Vec<(Option<String>, Option<String>, String)> =
            sqlx::query_as("SELECT object, object_key, action FROM audit_events")
                .fetch_all(&self.pool)
                .await
                .unwrap();
        let mut by_key: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (object, key, action) in events {
            let object = object.unwrap_or_else(|| "task".into());
            by_key
                .entry((object, key.unwrap_or_default()))
                .or_default()
                .push(action);
        }
        let actions = |object: &str, key: &str| -> Vec<String> {
            by_key
                .get(&(object.to_string(), key.to_string()))
                .cloned()
                .unwrap_or_default()
        };
        let count = |list: &[String], wanted: &[&str]| {
            list.iter()
                .filter(|action| wanted.contains(&action.as_str()))
                .count() as i64
        };

        for task in self.tasks().await {
            let key = format!("task:{}", task.id);
            let list = actions("task", &key);
            assert_eq!(
                count(&list, &["task_submitted"]),
                1,
                "task {} has no single task_submitted event: {list:?}",
                task.id
            );
            let finished: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM task_attempts WHERE task_id = ?1 AND finished_at IS NOT NULL",
            )
            .bind(task.id)
            .fetch_one(&self.pool)
            .await
            .unwrap();
            assert_eq!(
                count(&list, &["task_attempt", "lease_expired"]),
                finished,
                "task {}: {finished} finished attempts but these events: {list:?}",
                task.id
            );
            let final_action = match task.status.as_str() {
                "succeeded" => Some("task_succeeded"),
                "failed" => Some("task_failed"),
                "cancelled" => Some("task_cancelled"),
                _ => None,
            };
            if let Some(final_action) = final_action {
                assert_eq!(
                    count(&list, &[final_action]),
                    1,
                    "task {} is {} without one {final_action} event: {list:?}",
                    task.id,
                    task.status
                );
            }
        }

        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT 'account', id, status, status_reason FROM accounts \
             UNION ALL SELECT 'entitlement', type || ':' || id, status, NULL FROM entitlements \
             UNION ALL SELECT 'grant', account_id || '|' || type || ':' || entitlement_id, \
                              status, NULL FROM grants",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap();
        for (object, key, status, reason) in rows {
            let list = actions(&object, &key);
            assert!(
                !list.is_empty(),
                "{object} {key} is in the store without an audit event"
            );
            let removal = match (object.as_str(), status.as_str()) {
                ("account", "suspended") => Some("suspended"),
                ("entitlement", "inactive") => Some("inactivated"),
                ("grant", "removed") => Some("removed"),
                _ => None,
            };
            // A task's removal is audited as that task's effect, in its own words.
            let by_task = reason.is_some_and(|r| r.starts_with("task:"));
            if let (Some(removal), false) = (removal, by_task) {
                assert!(
                    list.iter().any(|action| action == removal),
                    "{object} {key} is {status} without a {removal} event: {list:?}"
                );
            }
        }
    }

    /// The store file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every task is final (`succeeded`, `failed`, `cancelled`) or retrying as it should:
/// `pending` with a next attempt set and no lease. None is left `running` (the processes have
/// stopped or are idle when a scenario ends).
pub fn assert_tasks_settled(tasks: &[TaskRow]) {
    for task in tasks {
        match task.status.as_str() {
            "succeeded" | "failed" | "cancelled" => {}
            "pending" => assert!(
                task.next_attempt_at.is_some() && task.lease_until.is_none(),
                "task {} is pending without a next attempt (or with a lease): {task:?}",
                task.id
            ),
            _ => panic!("task {} is left {}: {task:?}", task.id, task.status),
        }
    }
}

/// Every task is final and `succeeded`.
pub fn assert_tasks_succeeded(tasks: &[TaskRow]) {
    assert_tasks_settled(tasks);
    let not: Vec<&TaskRow> = tasks.iter().filter(|t| t.status != "succeeded").collect();
    assert!(not.is_empty(), "tasks that did not succeed: {not:#?}");
}

/// No side effect happened twice: `writes` 2xx answers at `route` (e.g. one `POST /users`
/// per create task), and every login name at the target is there once.
pub fn assert_writes_once(
    stats: &idsync_sim::SimStats,
    route: &str,
    writes: u64,
    usernames: &[String],
) {
    assert_eq!(
        stats.route_ok(route),
        writes,
        "{route} took effect {} times, expected {writes}: {:?}",
        stats.route_ok(route),
        stats.ok_by_route
    );
    let mut seen = BTreeSet::new();
    for name in usernames {
        assert!(
            seen.insert(name.to_lowercase()),
            "{name} exists twice at the target"
        );
    }
}

/// Nothing was taken away on an incomplete read: the records of the target are exactly
/// `before`.
pub fn assert_records_unchanged(after: &Records, before: &Records, what: &str) {
    for (kind, a, b) in [
        ("accounts", &after.accounts, &before.accounts),
        ("entitlements", &after.entitlements, &before.entitlements),
        ("grants", &after.grants, &before.grants),
    ] {
        if a == b {
            continue;
        }
        let b_set: BTreeSet<&String> = b.iter().collect();
        let a_set: BTreeSet<&String> = a.iter().collect();
        let new: Vec<&&String> = a_set.difference(&b_set).take(3).collect();
        let gone: Vec<&&String> = b_set.difference(&a_set).take(3).collect();
        panic!("{what}: {kind} changed; now {new:?}, before {gone:?}");
    }
}

/// Every account an import suspended is really gone from the target (`live` holds the ids
/// the target has).
pub fn assert_suspensions_real(accounts: &[(String, String, Option<String>)], live: &[String]) {
    let live: BTreeSet<&String> = live.iter().collect();
    for (id, status, reason) in accounts {
        if status == "suspended" && reason.as_deref() == Some("import") {
            assert!(
                !live.contains(id),
                "account {id} was suspended by an import but the target still has it"
            );
        }
    }
}

/// No secret in anything collected, nor in the store files at `db`.
pub fn assert_no_secret(exposed: &mut Exposed, db: &Path, secrets: &[&str]) {
    exposed.store(db);
    exposed.assert_free_of(secrets);
}
