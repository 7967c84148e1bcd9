//! Import snapshots: staging, diff and apply, all set-based so memory stays flat.
//!
//! A snapshot is registered in `snapshots` by `begin_snapshot`; its pages go to one of the
//! `staged_*` tables. Every change is decided by one SQL `CASE` per object kind (the
//! `*_change!` macros below), which the diff counts, the diff listing and the apply share,
//! so a dry run says exactly what an apply does. Apply runs in one `BEGIN IMMEDIATE`
//! transaction: it writes each staged row's change into the staging table, audits every
//! change, then updates and inserts only the rows that changed.
//!
//! All statements take the same numbered parameters (see [`Ctx`]):
//! `?1` run id, `?2` target, `?3` the cut-off (rows a task changed after it are left alone),
//! `?4` now, `?5` actor, `?6` the target's previous full account import time.

use std::time::Duration;

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::rows::{self, ts};
use super::{query_err, SqliteStore};
use crate::clock;
use crate::model::{
    AccountRecord, Change, ChangeCounts, EntitlementRecord, GrantRecord, ImportMode, ObjectKind,
};
use crate::store::{ApplyOptions, DiffEntry, SnapshotDiff, SnapshotId, StoreError, StoreResult};

/// Staged rows of a snapshot begun this long ago are dropped by the next `begin_snapshot`
/// (a process that died mid-read leaves them behind).
const STALE_SNAPSHOT_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Snapshots of one object kind (`?2`) begun before `?1` or whose run has finished.
const STALE_SNAPSHOTS: &str = "SELECT sn.run_id, sn.target FROM snapshots sn \
     WHERE sn.object = ?2 AND (sn.begun_at < ?1 OR EXISTS \
         (SELECT 1 FROM runs r WHERE r.id = sn.run_id AND r.finished_at IS NOT NULL))";

/// Rows per multi-row `INSERT` when staging (well under SQLite's parameter limit).
const STAGE_CHUNK: usize = 500;

/// The change a staged account makes (`s` staged row, `a` stored row or NULLs).
macro_rules! account_change {
    () => {
        "CASE \
            WHEN a.id IS NULL THEN 'created' \
            WHEN a.task_changed_at > ?3 THEN 'unchanged' \
            WHEN a.status = 'suspended' THEN 'reactivated' \
            WHEN a.name IS NOT s.name THEN 'renamed' \
            WHEN a.display_name IS NOT s.display_name OR a.email IS NOT s.email \
              OR a.status IS NOT s.status OR a.attributes IS NOT s.attributes THEN 'updated' \
            ELSE 'unchanged' \
        END"
    };
}

/// Staged accounts of the snapshot joined to the stored ones.
macro_rules! account_staged {
    () => {
        "staged_accounts s LEFT JOIN accounts a ON a.target = s.target AND a.id = s.id \
         WHERE s.run_id = ?1 AND s.target = ?2"
    };
}

/// Stored accounts (alias `a`) a full import suspends: not suspended, not staged, and not
/// changed by a task after the cut-off.
macro_rules! account_missing {
    () => {
        "a.target = ?2 AND a.status <> 'suspended' \
         AND (a.task_changed_at IS NULL OR a.task_changed_at <= ?3) \
         AND NOT EXISTS (SELECT 1 FROM staged_accounts s \
                         WHERE s.run_id = ?1 AND s.target = a.target AND s.id = a.id)"
    };
}

/// A stored grant (alias `g`) not changed by a task after the cut-off.
macro_rules! grant_free {
    () => {
        "(g.task_changed_at IS NULL OR g.task_changed_at <= ?3)"
    };
}

/// Active grants (alias `g`) of accounts (alias `a`) a full import suspends. `CROSS JOIN`
/// makes SQLite find the (few) missing accounts first and then their grants by key, rather
/// than visit every grant of the target.
macro_rules! grants_of_missing_accounts {
    () => {
        concat!(
            "accounts a CROSS JOIN grants g ON g.target = a.target AND g.account_id = a.id \
             WHERE g.target = ?2 AND g.status = 'active' AND ",
            grant_free!(),
            " AND ",
            account_missing!()
        )
    };
}

/// The change a staged entitlement makes (`s` staged row, `e` stored row or NULLs).
macro_rules! entitlement_change {
    () => {
        "CASE \
            WHEN e.id IS NULL THEN 'created' \
            WHEN e.task_changed_at > ?3 THEN 'unchanged' \
            WHEN e.status = 'inactive' THEN 'reactivated' \
            WHEN e.name IS NOT s.name OR e.attributes IS NOT s.attributes THEN 'updated' \
            ELSE 'unchanged' \
        END"
    };
}

/// Staged entitlements of the snapshot joined to the stored ones.
macro_rules! entitlement_staged {
    () => {
        "staged_entitlements s LEFT JOIN entitlements e \
             ON e.target = s.target AND e.type = s.type AND e.id = s.id \
         WHERE s.run_id = ?1 AND s.target = ?2"
    };
}

/// Stored entitlements (alias `e`) a full import inactivates.
macro_rules! entitlement_missing {
    () => {
        "e.target = ?2 AND e.status = 'active' \
         AND (e.task_changed_at IS NULL OR e.task_changed_at <= ?3) \
         AND NOT EXISTS (SELECT 1 FROM staged_entitlements s \
                         WHERE s.run_id = ?1 AND s.target = e.target AND s.type = e.type \
                           AND s.id = e.id)"
    };
}

/// The change a staged grant makes (`s` staged row, `g` stored row or NULLs).
macro_rules! grant_change {
    () => {
        "CASE \
            WHEN g.account_id IS NULL THEN 'created' \
            WHEN g.task_changed_at > ?3 THEN 'unchanged' \
            WHEN g.status = 'removed' THEN 'reactivated' \
            ELSE 'unchanged' \
        END"
    };
}

/// Staged grants of the snapshot joined to the stored ones.
macro_rules! grant_staged {
    () => {
        "staged_grants s LEFT JOIN grants g \
             ON g.target = s.target AND g.account_id = s.account_id AND g.type = s.type \
            AND g.entitlement_id = s.entitlement_id \
         WHERE s.run_id = ?1 AND s.target = ?2"
    };
}

/// Stored grants (alias `g`) a full import removes.
macro_rules! grant_missing {
    () => {
        concat!(
            "g.target = ?2 AND g.status = 'active' AND ",
            grant_free!(),
            " AND NOT EXISTS (SELECT 1 FROM staged_grants s \
                             WHERE s.run_id = ?1 AND s.target = g.target \
                               AND s.account_id = g.account_id AND s.type = g.type \
                               AND s.entitlement_id = g.entitlement_id)"
        )
    };
}

/// The audit key of a grant row with alias `$t`.
macro_rules! grant_key {
    ($t:literal) => {
        concat!(
            $t,
            ".account_id || '|' || ",
            $t,
            ".type || ':' || ",
            $t,
            ".entitlement_id"
        )
    };
}

/// `json_remove` paths that drop the account fields `a` and `s` agree on (`$._` is a
/// path that never exists: `json_remove` with a NULL path would return NULL).
macro_rules! account_same_paths {
    () => {
        "CASE WHEN a.name IS s.name THEN '$.name' ELSE '$._' END, \
         CASE WHEN a.display_name IS s.display_name THEN '$.display_name' ELSE '$._' END, \
         CASE WHEN a.email IS s.email THEN '$.email' ELSE '$._' END, \
         CASE WHEN a.status IS s.status THEN '$.status' ELSE '$._' END, \
         CASE WHEN a.attributes IS s.attributes THEN '$.attributes' ELSE '$._' END"
    };
}

/// `json_remove` paths that drop the entitlement fields `e` and `s` agree on.
macro_rules! entitlement_same_paths {
    () => {
        "CASE WHEN e.name IS s.name THEN '$.name' ELSE '$._' END, \
         CASE WHEN e.status = 'active' THEN '$.status' ELSE '$._' END, \
         CASE WHEN e.attributes IS s.attributes THEN '$.attributes' ELSE '$._' END"
    };
}

// ---- accounts ----

const ACCOUNT_DIFF_COUNTS: &str = concat!(
    "SELECT change, COUNT(*) AS n FROM (SELECT ",
    account_change!(),
    " AS change FROM ",
    account_staged!(),
    ") GROUP BY change"
);

const ACCOUNT_MISSING_COUNT: &str =
    concat!("SELECT COUNT(*) FROM accounts a WHERE ", account_missing!());

const ACCOUNT_GRANTS_REMOVED_COUNT: &str =
    concat!("SELECT COUNT(*) FROM ", grants_of_missing_accounts!());

const ACCOUNT_EXISTING: &str =
    "SELECT COUNT(*) FROM accounts WHERE target = ?2 AND status <> 'suspended'";

const ACCOUNT_DIFF_ENTRIES: &str = concat!(
    "SELECT key, label, change FROM (",
    "SELECT s.id AS key, \
         CASE WHEN a.name IS NOT NULL AND a.name IS NOT s.name \
              THEN a.name || ' -> ' || s.name ELSE s.name END AS label, ",
    account_change!(),
    " AS change FROM ",
    account_staged!(),
    " UNION ALL SELECT a.id, a.name, 'suspended' FROM accounts a WHERE ?4 = 1 AND ",
    account_missing!(),
    ") WHERE change <> 'unchanged' ORDER BY key LIMIT ?5"
);

const ACCOUNT_CLASSIFY: &str = concat!(
    "UPDATE staged_accounts AS s SET change = COALESCE((SELECT ",
    account_change!(),
    " FROM accounts a WHERE a.target = s.target AND a.id = s.id), 'created') \
     WHERE s.run_id = ?1 AND s.target = ?2"
);

const ACCOUNT_AUDIT: &str = concat!(
    "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, s.target, 'account', s.id, s.change, ?1, \
        CASE WHEN a.id IS NULL THEN json_object('new', json_object( \
                 'name', s.name, 'display_name', s.display_name, 'email', s.email, \
                 'status', s.status, 'attributes', json(s.attributes))) \
        ELSE json_object( \
            'old', json_remove(json_object('name', a.name, 'display_name', a.display_name, \
                'email', a.email, 'status', a.status, 'attributes', json(a.attributes)), ",
    account_same_paths!(),
    "), 'new', json_remove(json_object('name', s.name, 'display_name', s.display_name, \
                'email', s.email, 'status', s.status, 'attributes', json(s.attributes)), ",
    account_same_paths!(),
    ")) END \
     FROM ",
    account_staged!(),
    " AND s.change <> 'unchanged' ORDER BY s.id"
);

const ACCOUNT_UPDATE: &str = "UPDATE accounts AS a SET \
        name = s.name, display_name = s.display_name, email = s.email, status = s.status, \
        status_reason = CASE WHEN a.status IS s.status THEN a.status_reason ELSE 'import' END, \
        attributes = s.attributes, last_seen = NULL, updated_at = ?4 \
     FROM staged_accounts s \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change IN ('renamed', 'updated', 'reactivated') \
       AND a.target = s.target AND a.id = s.id";

const ACCOUNT_INSERT: &str = "INSERT INTO accounts (target, id, name, display_name, email, \
        status, status_reason, owner, attributes, first_seen, last_seen, updated_at) \
     SELECT s.target, s.id, s.name, s.display_name, s.email, s.status, 'import', NULL, \
        s.attributes, ?3, NULL, ?4 \
     FROM staged_accounts s WHERE s.run_id = ?1 AND s.target = ?2 AND s.change = 'created'";

const ACCOUNT_AUDIT_SUSPENDED: &str = concat!(
    "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, a.target, 'account', a.id, 'suspended', ?1, \
        json_object('old', json_object('status', a.status), \
                    'new', json_object('status', 'suspended'), \
                    'reason', 'not returned by target') \
     FROM accounts a WHERE ",
    account_missing!(),
    " ORDER BY a.id"
);

const ACCOUNT_AUDIT_GRANTS_REMOVED: &str = concat!(
    "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, g.target, 'grant', ",
    grant_key!("g"),
    ", 'removed', ?1, json_object('reason', 'account suspended') FROM ",
    grants_of_missing_accounts!(),
    " ORDER BY g.account_id, g.type, g.entitlement_id"
);

const ACCOUNT_REMOVE_GRANTS: &str = concat!(
    "UPDATE grants AS g SET status = 'removed', updated_at = ?4 \
     WHERE g.target = ?2 AND g.status = 'active' AND ",
    grant_free!(),
    " AND g.account_id IN (SELECT a.id FROM accounts a WHERE ",
    account_missing!(),
    ")"
);

const ACCOUNT_SUSPEND: &str = concat!(
    "UPDATE accounts AS a SET status = 'suspended', status_reason = 'import', \
        last_seen = ?6, updated_at = ?4 WHERE ",
    account_missing!()
);

const TARGET_STATE_PREVIOUS: &str =
    "SELECT last_account_import_at FROM target_state WHERE target = ?2";

const TARGET_STATE_RECORD: &str = "INSERT INTO target_state (target, last_account_import_at) \
     VALUES (?2, ?3) \
     ON CONFLICT (target) DO UPDATE SET last_account_import_at = excluded.last_account_import_at";

// ---- entitlements ----

const ENTITLEMENT_DIFF_COUNTS: &str = concat!(
    "SELECT change, COUNT(*) AS n FROM (SELECT ",
    entitlement_change!(),
    " AS change FROM ",
    entitlement_staged!(),
    ") GROUP BY change"
);

const ENTITLEMENT_MISSING_COUNT: &str = concat!(
    "SELECT COUNT(*) FROM entitlements e WHERE ",
    entitlement_missing!()
);

const ENTITLEMENT_EXISTING: &str =
    "SELECT COUNT(*) FROM entitlements WHERE target = ?2 AND status = 'active'";

const ENTITLEMENT_DIFF_ENTRIES: &str = concat!(
    "SELECT key, label, change FROM (",
    "SELECT s.type || ':' || s.id AS key, s.name AS label, ",
    entitlement_change!(),
    " AS change FROM ",
    entitlement_staged!(),
    " UNION ALL SELECT e.type || ':' || e.id, e.name, 'inactivated' FROM entitlements e \
      WHERE ?4 = 1 AND ",
    entitlement_missing!(),
    ") WHERE change <> 'unchanged' ORDER BY key LIMIT ?5"
);

const ENTITLEMENT_CLASSIFY: &str = concat!(
    "UPDATE staged_entitlements AS s SET change = COALESCE((SELECT ",
    entitlement_change!(),
    " FROM entitlements e WHERE e.target = s.target AND e.type = s.type AND e.id = s.id), \
        'created') \
     WHERE s.run_id = ?1 AND s.target = ?2"
);

const ENTITLEMENT_AUDIT: &str = concat!(
    "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, s.target, 'entitlement', s.type || ':' || s.id, s.change, ?1, \
        CASE WHEN e.id IS NULL THEN json_object('new', json_object( \
                 'name', s.name, 'attributes', json(s.attributes))) \
        ELSE json_object( \
            'old', json_remove(json_object('name', e.name, 'status', e.status, \
                'attributes', json(e.attributes)), ",
    entitlement_same_paths!(),
    "), 'new', json_remove(json_object('name', s.name, 'status', 'active', \
                'attributes', json(s.attributes)), ",
    entitlement_same_paths!(),
    ")) END \
     FROM ",
    entitlement_staged!(),
    " AND s.change <> 'unchanged' ORDER BY s.type, s.id"
);

const ENTITLEMENT_UPDATE: &str = "UPDATE entitlements AS e SET \
        name = s.name, status = 'active', attributes = s.attributes, updated_at = ?4 \
     FROM staged_entitlements s \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change IN ('updated', 'reactivated') \
       AND e.target = s.target AND e.type = s.type AND e.id = s.id";

const ENTITLEMENT_INSERT: &str = "INSERT INTO entitlements (target, type, id, name, status, \
        attributes, first_seen, updated_at) \
     SELECT s.target, s.type, s.id, s.name, 'active', s.attributes, ?3, ?4 \
     FROM staged_entitlements s WHERE s.run_id = ?1 AND s.target = ?2 AND s.change = 'created'";

const ENTITLEMENT_AUDIT_INACTIVATED: &str = concat!(
    "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, e.target, 'entitlement', e.type || ':' || e.id, 'inactivated', ?1, \
        json_object('old', json_object('status', 'active'), \
                    'new', json_object('status', 'inactive'), \
                    'reason', 'not returned by target') \
     FROM entitlements e WHERE ",
    entitlement_missing!(),
    " ORDER BY e.type, e.id"
);

const ENTITLEMENT_INACTIVATE: &str = concat!(
    "UPDATE entitlements AS e SET status = 'inactive', updated_at = ?4 WHERE ",
    entitlement_missing!()
);

// ---- grants ----

const GRANT_DIFF_COUNTS: &str = concat!(
    "SELECT change, COUNT(*) AS n FROM (SELECT ",
    grant_change!(),
    " AS change FROM ",
    grant_staged!(),
    ") GROUP BY change"
);

const GRANT_MISSING_COUNT: &str = concat!("SELECT COUNT(*) FROM grants g WHERE ", grant_missing!());

const GRANT_EXISTING: &str = "SELECT COUNT(*) FROM grants WHERE target = ?2 AND status = 'active'";

const GRANT_DIFF_ENTRIES: &str = concat!(
    "SELECT key, label, change FROM (",
    "SELECT ",
    grant_key!("s"),
    " AS key, COALESCE(sa.name, s.account_id) || ': ' \
         || COALESCE(se.name, s.entitlement_name, s.entitlement_id) AS label, ",
    grant_change!(),
    " AS change FROM staged_grants s \
        LEFT JOIN grants g ON g.target = s.target AND g.account_id = s.account_id \
            AND g.type = s.type AND g.entitlement_id = s.entitlement_id \
        LEFT JOIN accounts sa ON sa.target = s.target AND sa.id = s.account_id \
        LEFT JOIN entitlements se ON se.target = s.target AND se.type = s.type \
            AND se.id = s.entitlement_id \
      WHERE s.run_id = ?1 AND s.target = ?2 \
      UNION ALL SELECT ",
    grant_key!("g"),
    ", COALESCE(ga.name, g.account_id) || ': ' || COALESCE(ge.name, g.entitlement_id), \
        'removed' \
      FROM grants g \
        LEFT JOIN accounts ga ON ga.target = g.target AND ga.id = g.account_id \
        LEFT JOIN entitlements ge ON ge.target = g.target AND ge.type = g.type \
            AND ge.id = g.entitlement_id \
      WHERE ?4 = 1 AND ",
    grant_missing!(),
    ") WHERE change <> 'unchanged' ORDER BY key LIMIT ?5"
);

const GRANT_CLASSIFY: &str = concat!(
    "UPDATE staged_grants AS s SET change = COALESCE((SELECT ",
    grant_change!(),
    " FROM grants g WHERE g.target = s.target AND g.account_id = s.account_id \
         AND g.type = s.type AND g.entitlement_id = s.entitlement_id), 'created') \
     WHERE s.run_id = ?1 AND s.target = ?2"
);

/// Entitlements named by staged grants but missing from the catalogue, one row each.
macro_rules! discovered_entitlements {
    () => {
        "SELECT s.target AS target, s.type AS type, s.entitlement_id AS id, \
            COALESCE(MAX(s.entitlement_name), s.entitlement_id) AS name \
         FROM staged_grants s \
         WHERE s.run_id = ?1 AND s.target = ?2 \
           AND NOT EXISTS (SELECT 1 FROM entitlements e WHERE e.target = s.target \
                           AND e.type = s.type AND e.id = s.entitlement_id) \
         GROUP BY s.target, s.type, s.entitlement_id"
    };
}

/// The attributes of an entitlement created because a grant named it.
const DISCOVERED_ATTRIBUTES: &str = r#"{"discovered_from":"grant"}"#;

const GRANT_AUDIT_DISCOVERED: &str = concat!(
    "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, d.target, 'entitlement', d.type || ':' || d.id, 'created', ?1, \
        json_object('new', json_object('name', d.name, 'attributes', json(?7))) \
     FROM (",
    discovered_entitlements!(),
    ") d ORDER BY d.type, d.id"
);

const GRANT_INSERT_DISCOVERED: &str = concat!(
    "INSERT INTO entitlements (target, type, id, name, status, attributes, first_seen, \
        updated_at) \
     SELECT d.target, d.type, d.id, d.name, 'active', ?7, ?3, ?4 FROM (",
    discovered_entitlements!(),
    ") d"
);

const GRANT_AUDIT: &str = concat!(
    "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, s.target, 'grant', ",
    grant_key!("s"),
    ", s.change, ?1, \
        CASE WHEN s.change = 'created' THEN json_object('new', json_object('status', 'active')) \
        ELSE json_object('old', json_object('status', g.status), \
                         'new', json_object('status', 'active')) END \
     FROM ",
    grant_staged!(),
    " AND s.change <> 'unchanged' ORDER BY s.account_id, s.type, s.entitlement_id"
);

const GRANT_UPDATE: &str = "UPDATE grants AS g SET status = 'active', updated_at = ?4 \
     FROM staged_grants s \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change = 'reactivated' \
       AND g.target = s.target AND g.account_id = s.account_id AND g.type = s.type \
       AND g.entitlement_id = s.entitlement_id";

const GRANT_INSERT: &str = "INSERT INTO grants (target, account_id, type, entitlement_id, \
        status, first_seen, updated_at) \
     SELECT s.target, s.account_id, s.type, s.entitlement_id, 'active', ?3, ?4 \
     FROM staged_grants s WHERE s.run_id = ?1 AND s.target = ?2 AND s.change = 'created'";

const GRANT_AUDIT_REMOVED: &str = concat!(
    "INSERT INTO audit_events (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, g.target, 'grant', ",
    grant_key!("g"),
    ", 'removed', ?1, \
        json_object('old', json_object('status', 'active'), \
                    'new', json_object('status', 'removed'), \
                    'reason', 'not returned by target') \
     FROM grants g WHERE ",
    grant_missing!(),
    " ORDER BY g.account_id, g.type, g.entitlement_id"
);

const GRANT_REMOVE: &str = concat!(
    "UPDATE grants AS g SET status = 'removed', updated_at = ?4 WHERE ",
    grant_missing!()
);

/// The staging table of an object kind.
fn staged_table(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Account => "staged_accounts",
        ObjectKind::Entitlement => "staged_entitlements",
        ObjectKind::Grant => "staged_grants",
    }
}

/// The parameters every snapshot statement is bound to (`?1`…`?7`; a statement uses the
/// ones it names).
struct Ctx<'a> {
    run_id: i64,
    target: &'a str,
    cutoff: String,
    now: String,
    actor: &'a str,
    previous_import: Option<String>,
}

impl Ctx<'_> {
    /// A statement bound to the context.
    fn query<'q>(&'q self, sql: &'q str) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
        sqlx::query(sql)
            .bind(self.run_id)
            .bind(self.target)
            .bind(self.cutoff.as_str())
            .bind(self.now.as_str())
            .bind(self.actor)
            .bind(self.previous_import.as_deref())
            .bind(DISCOVERED_ATTRIBUTES)
    }

    /// Runs a statement; returns the rows it changed.
    async fn execute(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
        context: &'static str,
    ) -> StoreResult<u64> {
        self.query(sql)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
            .map_err(query_err(context))
    }

    /// Runs a `SELECT COUNT(*)`.
    async fn count(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
        context: &'static str,
    ) -> StoreResult<u64> {
        let row = self
            .query(sql)
            .fetch_one(conn)
            .await
            .map_err(query_err(context))?;
        let n: i64 = row.try_get(0).map_err(query_err(context))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Runs a `SELECT change, COUNT(*) … GROUP BY change` into counts.
    async fn change_counts(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
        context: &'static str,
    ) -> StoreResult<ChangeCounts> {
        let found = self
            .query(sql)
            .fetch_all(conn)
            .await
            .map_err(query_err(context))?;
        let mut counts = ChangeCounts::default();
        for row in &found {
            let change: Change = rows::get_enum(row, "change")?;
            let n: i64 = rows::get(row, "n")?;
            add(&mut counts, change, u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
    }
}

/// Adds `n` to the count of `change`.
fn add(counts: &mut ChangeCounts, change: Change, n: u64) {
    let slot = match change {
        Change::Created => &mut counts.created,
        Change::Updated => &mut counts.updated,
        Change::Unchanged => &mut counts.unchanged,
        Change::Suspended => &mut counts.suspended,
        Change::Inactivated => &mut counts.inactivated,
        Change::Removed => &mut counts.removed,
        Change::Reactivated => &mut counts.reactivated,
        Change::Renamed => &mut counts.renamed,
    };
    *slot += n;
}

/// The error for a snapshot that was never begun, or was already applied or discarded.
fn no_such_snapshot(context: &'static str, snapshot: &SnapshotId) -> StoreError {
    StoreError::Query {
        context,
        message: format!(
            "no staged {} snapshot for run {} of target {} (never begun, or already applied or discarded)",
            snapshot.object, snapshot.run_id, snapshot.target
        ),
    }
}

/// The cut-off a diff uses: the run's start (or, for a dry run without a run record, when
/// the snapshot was begun). `None` when the snapshot does not exist.
async fn diff_cutoff(
    conn: &mut SqliteConnection,
    snapshot: &SnapshotId,
    context: &'static str,
) -> StoreResult<Option<String>> {
    let row: Option<(Option<String>, String)> = sqlx::query_as(
        "SELECT (SELECT started_at FROM runs WHERE id = ?1), begun_at FROM snapshots \
         WHERE run_id = ?1 AND target = ?2 AND object = ?3",
    )
    .bind(snapshot.run_id)
    .bind(&snapshot.target)
    .bind(snapshot.object.as_str())
    .fetch_optional(conn)
    .await
    .map_err(query_err(context))?;
    Ok(row.map(|(started, begun)| started.unwrap_or(begun)))
}

impl SqliteStore {
    pub(super) async fn begin_snapshot_impl(&self, snapshot: &SnapshotId) -> StoreResult<()> {
        let context = "beginning an import snapshot";
        let now = clock::now();
        let stale_before = chrono::Duration::from_std(STALE_SNAPSHOT_AFTER)
            .ok()
            .and_then(|age| now.checked_sub_signed(age))
            .unwrap_or(now);
        let mut tx = self.write_tx(context).await?;
        // Drop what dead or finished runs left behind.
        for object in ObjectKind::ALL {
            let sql = format!(
                "DELETE FROM {} WHERE (run_id, target) IN ({STALE_SNAPSHOTS})",
                staged_table(*object)
            );
            sqlx::query(&sql)
                .bind(ts(stale_before))
                .bind(object.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_err(context))?;
        }
        sqlx::query(
            "DELETE FROM snapshots WHERE begun_at < ?1 OR EXISTS \
             (SELECT 1 FROM runs r WHERE r.id = snapshots.run_id AND r.finished_at IS NOT NULL)",
        )
        .bind(ts(stale_before))
        .execute(&mut *tx)
        .await
        .map_err(query_err(context))?;
        clear_staged(&mut tx, snapshot, context).await?;
        sqlx::query(
            "INSERT OR REPLACE INTO snapshots (run_id, target, object, begun_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(snapshot.run_id)
        .bind(&snapshot.target)
        .bind(snapshot.object.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(query_err(context))?;
        tx.commit().await.map_err(query_err(context))
    }

    pub(super) async fn stage_accounts_impl(
        &self,
        snapshot: &SnapshotId,
        page: &[AccountRecord],
    ) -> StoreResult<()> {
        let context = "staging accounts";
        let mut tx = self.write_tx(context).await?;
        for chunk in page.chunks(STAGE_CHUNK) {
            let attributes: Vec<String> = chunk
                .iter()
                .map(|record| rows::canonical_attributes(&record.attributes))
                .collect();
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO staged_accounts \
                 (run_id, target, id, name, display_name, email, status, attributes) ",
            );
            query.push_values(
                chunk.iter().zip(&attributes),
                |mut row, (record, attributes)| {
                    row.push_bind(snapshot.run_id)
                        .push_bind(&snapshot.target)
                        .push_bind(&record.id)
                        .push_bind(&record.name)
                        .push_bind(&record.display_name)
                        .push_bind(&record.email)
                        .push_bind(record.status.as_str())
                        .push_bind(attributes);
                },
            );
            // A record read twice in one snapshot: the last read wins.
            query.push(
                " ON CONFLICT (run_id, target, id) DO UPDATE SET name = excluded.name, \
                 display_name = excluded.display_name, email = excluded.email, \
                 status = excluded.status, attributes = excluded.attributes",
            );
            query
                .build()
                .execute(&mut *tx)
                .await
                .map_err(query_err(context))?;
        }
        tx.commit().await.map_err(query_err(context))
    }

    pub(super) async fn stage_entitlements_impl(
        &self,
        snapshot: &SnapshotId,
        page: &[EntitlementRecord],
    ) -> StoreResult<()> {
        let context = "staging entitlements";
        let mut tx = self.write_tx(context).await?;
        for chunk in page.chunks(STAGE_CHUNK) {
            let attributes: Vec<String> = chunk
                .iter()
                .map(|record| rows::canonical_attributes(&record.attributes))
                .collect();
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO staged_entitlements (run_id, target, type, id, name, attributes) ",
            );
            query.push_values(
                chunk.iter().zip(&attributes),
                |mut row, (record, attributes)| {
                    row.push_bind(snapshot.run_id)
                        .push_bind(&snapshot.target)
                        .push_bind(&record.entitlement_type)
                        .push_bind(&record.id)
                        .push_bind(&record.name)
                        .push_bind(attributes);
                },
            );
            query.push(
                " ON CONFLICT (run_id, target, type, id) DO UPDATE SET name = excluded.name, \
                 attributes = excluded.attributes",
            );
            query
                .build()
                .execute(&mut *tx)
                .await
                .map_err(query_err(context))?;
        }
        tx.commit().await.map_err(query_err(context))
    }

    pub(super) async fn stage_grants_impl(
        &self,
        snapshot: &SnapshotId,
        page: &[GrantRecord],
    ) -> StoreResult<()> {
        let context = "staging grants";
        let mut tx = self.write_tx(context).await?;
        for chunk in page.chunks(STAGE_CHUNK) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO staged_grants \
                 (run_id, target, account_id, type, entitlement_id, entitlement_name) ",
            );
            query.push_values(chunk, |mut row, record| {
                row.push_bind(snapshot.run_id)
                    .push_bind(&snapshot.target)
                    .push_bind(&record.account_id)
                    .push_bind(&record.entitlement_type)
                    .push_bind(&record.entitlement_id)
                    .push_bind(&record.entitlement_name);
            });
            query.push(
                " ON CONFLICT (run_id, target, account_id, type, entitlement_id) \
                 DO UPDATE SET entitlement_name = excluded.entitlement_name",
            );
            query
                .build()
                .execute(&mut *tx)
                .await
                .map_err(query_err(context))?;
        }
        tx.commit().await.map_err(query_err(context))
    }

    pub(super) async fn diff_snapshot_impl(
        &self,
        snapshot: &SnapshotId,
        mode: ImportMode,
    ) -> StoreResult<SnapshotDiff> {
        let context = "computing an import diff";
        // One read transaction: one consistent view for all the counts.
        let mut tx = self.read_tx(context).await?;
        let cutoff = diff_cutoff(&mut tx, snapshot, context)
            .await?
            .ok_or_else(|| no_such_snapshot(context, snapshot))?;
        let ctx = Ctx {
            run_id: snapshot.run_id,
            target: &snapshot.target,
            cutoff,
            now: String::new(),
            actor: "",
            previous_import: None,
        };
        let full = mode == ImportMode::Full;
        let mut diff = SnapshotDiff::default();
        match snapshot.object {
            ObjectKind::Account => {
                diff.counts = ctx
                    .change_counts(&mut tx, ACCOUNT_DIFF_COUNTS, context)
                    .await?;
                diff.existing = ctx.count(&mut tx, ACCOUNT_EXISTING, context).await?;
                if full {
                    diff.counts.suspended =
                        ctx.count(&mut tx, ACCOUNT_MISSING_COUNT, context).await?;
                    diff.counts.removed = ctx
                        .count(&mut tx, ACCOUNT_GRANTS_REMOVED_COUNT, context)
                        .await?;
                    diff.removals = diff.counts.suspended;
                }
            }
            ObjectKind::Entitlement => {
                diff.counts = ctx
                    .change_counts(&mut tx, ENTITLEMENT_DIFF_COUNTS, context)
                    .await?;
                diff.existing = ctx.count(&mut tx, ENTITLEMENT_EXISTING, context).await?;
                if full {
                    diff.counts.inactivated = ctx
                        .count(&mut tx, ENTITLEMENT_MISSING_COUNT, context)
                        .await?;
                    diff.removals = diff.counts.inactivated;
                }
            }
            ObjectKind::Grant => {
                diff.counts = ctx
                    .change_counts(&mut tx, GRANT_DIFF_COUNTS, context)
                    .await?;
                diff.existing = ctx.count(&mut tx, GRANT_EXISTING, context).await?;
                if full {
                    diff.counts.removed = ctx.count(&mut tx, GRANT_MISSING_COUNT, context).await?;
                    diff.removals = diff.counts.removed;
                }
            }
        }
        tx.rollback().await.map_err(query_err(context))?;
        Ok(diff)
    }

    pub(super) async fn diff_entries_impl(
        &self,
        snapshot: &SnapshotId,
        mode: ImportMode,
        limit: u32,
    ) -> StoreResult<Vec<DiffEntry>> {
        let context = "listing an import diff";
        let mut tx = self.read_tx(context).await?;
        let cutoff = diff_cutoff(&mut tx, snapshot, context)
            .await?
            .ok_or_else(|| no_such_snapshot(context, snapshot))?;
        let sql = match snapshot.object {
            ObjectKind::Account => ACCOUNT_DIFF_ENTRIES,
            ObjectKind::Entitlement => ENTITLEMENT_DIFF_ENTRIES,
            ObjectKind::Grant => GRANT_DIFF_ENTRIES,
        };
        let found: Vec<SqliteRow> = sqlx::query(sql)
            .bind(snapshot.run_id)
            .bind(&snapshot.target)
            .bind(cutoff)
            .bind(i64::from(mode == ImportMode::Full))
            .bind(if limit == 0 { -1 } else { i64::from(limit) })
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err(context))?;
        tx.rollback().await.map_err(query_err(context))?;
        found
            .iter()
            .map(|row| {
                Ok(DiffEntry {
                    object: snapshot.object,
                    key: rows::get(row, "key")?,
                    label: rows::get(row, "label")?,
                    change: rows::get_enum(row, "change")?,
                })
            })
            .collect()
    }

    pub(super) async fn apply_snapshot_impl(
        &self,
        snapshot: &SnapshotId,
        options: &ApplyOptions,
    ) -> StoreResult<ChangeCounts> {
        let context = "applying an import snapshot";
        let mut tx = self.write_tx(context).await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM snapshots WHERE run_id = ?1 AND target = ?2 AND object = ?3",
        )
        .bind(snapshot.run_id)
        .bind(&snapshot.target)
        .bind(snapshot.object.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_err(context))?;
        if exists.is_none() {
            // Applying a snapshot that is not there would "suspend" everything.
            return Err(no_such_snapshot(context, snapshot));
        }
        let mut ctx = Ctx {
            run_id: snapshot.run_id,
            target: &snapshot.target,
            cutoff: ts(options.run_started_at),
            now: ts(clock::now()),
            actor: &options.actor,
            previous_import: None,
        };
        let full = options.mode == ImportMode::Full;
        let counts = match snapshot.object {
            ObjectKind::Account => apply_accounts(&mut tx, &mut ctx, full, context).await?,
            ObjectKind::Entitlement => apply_entitlements(&mut tx, &ctx, full, context).await?,
            ObjectKind::Grant => apply_grants(&mut tx, &ctx, full, context).await?,
        };
        clear_staged(&mut tx, snapshot, context).await?;
        delete_snapshot_row(&mut tx, snapshot, context).await?;
        tx.commit().await.map_err(query_err(context))?;
        Ok(counts)
    }

    pub(super) async fn discard_snapshot_impl(&self, snapshot: &SnapshotId) -> StoreResult<()> {
        let context = "discarding an import snapshot";
        let mut tx = self.write_tx(context).await?;
        clear_staged(&mut tx, snapshot, context).await?;
        delete_snapshot_row(&mut tx, snapshot, context).await?;
        tx.commit().await.map_err(query_err(context))
    }
}

/// Deletes the staged rows of a snapshot.
async fn clear_staged(
    conn: &mut SqliteConnection,
    snapshot: &SnapshotId,
    context: &'static str,
) -> StoreResult<()> {
    let sql = format!(
        "DELETE FROM {} WHERE run_id = ?1 AND target = ?2",
        staged_table(snapshot.object)
    );
    sqlx::query(&sql)
        .bind(snapshot.run_id)
        .bind(&snapshot.target)
        .execute(conn)
        .await
        .map(drop)
        .map_err(query_err(context))
}

/// Forgets a snapshot.
async fn delete_snapshot_row(
    conn: &mut SqliteConnection,
    snapshot: &SnapshotId,
    context: &'static str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM snapshots WHERE run_id = ?1 AND target = ?2 AND object = ?3")
        .bind(snapshot.run_id)
        .bind(&snapshot.target)
        .bind(snapshot.object.as_str())
        .execute(conn)
        .await
        .map(drop)
        .map_err(query_err(context))
}

/// Applies an account snapshot inside the caller's transaction.
async fn apply_accounts(
    conn: &mut SqliteConnection,
    ctx: &mut Ctx<'_>,
    full: bool,
    context: &'static str,
) -> StoreResult<ChangeCounts> {
    ctx.execute(conn, ACCOUNT_CLASSIFY, context).await?;
    let mut counts = ctx
        .change_counts(
            conn,
            "SELECT change, COUNT(*) AS n FROM staged_accounts \
             WHERE run_id = ?1 AND target = ?2 GROUP BY change",
            context,
        )
        .await?;
    ctx.execute(conn, ACCOUNT_AUDIT, context).await?;
    ctx.execute(conn, ACCOUNT_UPDATE, context).await?;
    ctx.execute(conn, ACCOUNT_INSERT, context).await?;
    if full {
        ctx.previous_import = ctx
            .query(TARGET_STATE_PREVIOUS)
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_err(context))?
            .map(|row| rows::get::<Option<String>>(&row, "last_account_import_at"))
            .transpose()?
            .flatten();
        ctx.execute(conn, ACCOUNT_AUDIT_SUSPENDED, context).await?;
        ctx.execute(conn, ACCOUNT_AUDIT_GRANTS_REMOVED, context)
            .await?;
        // Grants first: the suspension below changes which accounts count as missing.
        counts.removed = ctx.execute(conn, ACCOUNT_REMOVE_GRANTS, context).await?;
        counts.suspended = ctx.execute(conn, ACCOUNT_SUSPEND, context).await?;
        ctx.execute(conn, TARGET_STATE_RECORD, context).await?;
    }
    Ok(counts)
}

/// Applies an entitlement snapshot inside the caller's transaction.
async fn apply_entitlements(
    conn: &mut SqliteConnection,
    ctx: &Ctx<'_>,
    full: bool,
    context: &'static str,
) -> StoreResult<ChangeCounts> {
    ctx.execute(conn, ENTITLEMENT_CLASSIFY, context).await?;
    let mut counts = ctx
        .change_counts(
            conn,
            "SELECT change, COUNT(*) AS n FROM staged_entitlements \
             WHERE run_id = ?1 AND target = ?2 GROUP BY change",
            context,
        )
        .await?;
    ctx.execute(conn, ENTITLEMENT_AUDIT, context).await?;
    ctx.execute(conn, ENTITLEMENT_UPDATE, context).await?;
    ctx.execute(conn, ENTITLEMENT_INSERT, context).await?;
    if full {
        ctx.execute(conn, ENTITLEMENT_AUDIT_INACTIVATED, context)
            .await?;
        counts.inactivated = ctx.execute(conn, ENTITLEMENT_INACTIVATE, context).await?;
    }
    Ok(counts)
}

/// Applies a grant snapshot inside the caller's transaction. Entitlements the grants name
/// but the catalogue lacks are created first (`attributes.discovered_from = "grant"`);
/// they are audited but not counted (the counts are the grants').
async fn apply_grants(
    conn: &mut SqliteConnection,
    ctx: &Ctx<'_>,
    full: bool,
    context: &'static str,
) -> StoreResult<ChangeCounts> {
    ctx.execute(conn, GRANT_CLASSIFY, context).await?;
    let mut counts = ctx
        .change_counts(
            conn,
            "SELECT change, COUNT(*) AS n FROM staged_grants \
             WHERE run_id = ?1 AND target = ?2 GROUP BY change",
            context,
        )
        .await?;
    ctx.execute(conn, GRANT_AUDIT_DISCOVERED, context).await?;
    ctx.execute(conn, GRANT_INSERT_DISCOVERED, context).await?;
    ctx.execute(conn, GRANT_AUDIT, context).await?;
    ctx.execute(conn, GRANT_UPDATE, context).await?;
    ctx.execute(conn, GRANT_INSERT, context).await?;
    if full {
        ctx.execute(conn, GRANT_AUDIT_REMOVED, context).await?;
        counts.removed = ctx.execute(conn, GRANT_REMOVE, context).await?;
    }
    Ok(counts)
}
