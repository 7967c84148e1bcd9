//! Import snapshots: staging, diff and apply, all set-based so memory stays flat.
//!
//! A snapshot is registered in `temp.snapshots` by `begin_snapshot`; its pages go to one of
//! the `temp.staged_*` tables. These are TEMP tables of the store's one write connection
//! ([`SCRATCH_SCHEMA`], created on every new write connection): staged rows never reach the
//! WAL or the store file, staging takes no write lock on the store, and a process that dies
//! takes its staged rows with it.
//!
//! Each staged row is classified **as it is staged**, against the stored row it joins
//! (`created`, `updated`, `renamed`, `reactivated` or `unchanged`), and an unchanged row
//! keeps only its key: a re-import that finds nothing new costs one indexed read per
//! record, and the apply touches only what changed. Every staged key stays, so a full
//! import still knows which stored rows the target no longer returned.
//!
//! The one rule that can change a staged row's verdict between staging and apply is the
//! task cut-off: a row a provisioning task changed after the run started is left alone
//! (`guarded_*` below). Diff counts, diff listings and apply all apply it the same way, so
//! a dry run says exactly what an apply does. Apply runs in one `BEGIN IMMEDIATE`
//! transaction: it settles the cut-off, audits every change, then updates and inserts only
//! the rows that changed.
//!
//! All statements take the same numbered parameters (see [`Ctx`]):
//! `?1` run id, `?2` target, `?3` the cut-off (rows a task changed after it are left alone),
//! `?4` now, `?5` actor, `?6` the target's previous full account import time.

use std::time::Duration;

use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::rows::{self, ts};
use super::{query_err, SqliteStore};
use crate::clock;
use crate::model::{
    AccountRecord, ChangeCounts, EntitlementRecord, GrantRecord, ImportMode, ObjectKind,
};
use crate::store::{ApplyOptions, DiffEntry, SnapshotDiff, SnapshotId, StoreError, StoreResult};

/// The scratch tables import snapshots are staged in: TEMP tables, created on every new
/// connection of the write pool. `change` is decided when a row is staged; the payload
/// columns of an `unchanged` row are NULL.
pub(super) const SCRATCH_SCHEMA: &str = "\
    CREATE TEMP TABLE IF NOT EXISTS snapshots ( \
        run_id   INTEGER NOT NULL, \
        target   TEXT NOT NULL, \
        object   TEXT NOT NULL, \
        begun_at TEXT NOT NULL, \
        cutoff   TEXT NOT NULL, \
        PRIMARY KEY (run_id, target, object)) WITHOUT ROWID; \
    CREATE TEMP TABLE IF NOT EXISTS staged_accounts ( \
        run_id       INTEGER NOT NULL, \
        target       TEXT NOT NULL, \
        id           TEXT NOT NULL, \
        name         TEXT, \
        display_name TEXT, \
        email        TEXT, \
        status       TEXT, \
        attributes   TEXT, \
        change       TEXT NOT NULL, \
        PRIMARY KEY (run_id, target, id)) WITHOUT ROWID; \
    CREATE TEMP TABLE IF NOT EXISTS staged_entitlements ( \
        run_id     INTEGER NOT NULL, \
        target     TEXT NOT NULL, \
        type       TEXT NOT NULL, \
        id         TEXT NOT NULL, \
        name       TEXT, \
        attributes TEXT, \
        change     TEXT NOT NULL, \
        PRIMARY KEY (run_id, target, type, id)) WITHOUT ROWID; \
    CREATE TEMP TABLE IF NOT EXISTS staged_grants ( \
        run_id           INTEGER NOT NULL, \
        target           TEXT NOT NULL, \
        account_id       TEXT NOT NULL, \
        type             TEXT NOT NULL, \
        entitlement_id   TEXT NOT NULL, \
        entitlement_name TEXT, \
        change           TEXT NOT NULL, \
        PRIMARY KEY (run_id, target, account_id, type, entitlement_id)) WITHOUT ROWID; \
    CREATE TEMP TABLE IF NOT EXISTS missing_accounts ( \
        run_id INTEGER NOT NULL, \
        target TEXT NOT NULL, \
        id     TEXT NOT NULL, \
        PRIMARY KEY (run_id, target, id)) WITHOUT ROWID;";

/// Staged rows of a snapshot begun this long ago are dropped by the next `begin_snapshot`
/// (a run that ended without applying or discarding leaves them behind).
const STALE_SNAPSHOT_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Snapshots of one object kind (`?2`) begun before `?1` or whose run has finished.
const STALE_SNAPSHOTS: &str = "SELECT sn.run_id, sn.target FROM temp.snapshots sn \
     WHERE sn.object = ?2 AND (sn.begun_at < ?1 OR EXISTS \
         (SELECT 1 FROM main.runs r WHERE r.id = sn.run_id AND r.finished_at IS NOT NULL))";

/// Rows per multi-row `INSERT` when staging (well under SQLite's parameter limit).
const STAGE_CHUNK: usize = 500;

/// Counts of a `change` column (`$c`) by verdict, without sorting: one row of sums.
macro_rules! change_sums {
    ($c:literal) => {
        concat!(
            "SUM(",
            $c,
            " = 'created') AS created, ",
            "SUM(",
            $c,
            " = 'updated') AS updated, ",
            "SUM(",
            $c,
            " = 'unchanged') AS unchanged, ",
            "SUM(",
            $c,
            " = 'reactivated') AS reactivated, ",
            "SUM(",
            $c,
            " = 'renamed') AS renamed"
        )
    };
}

/// The verdict of a staged account (`s`) once the cut-off is applied: a row a task changed
/// after `?3` is left alone.
macro_rules! guarded_account {
    () => {
        "CASE WHEN s.change <> 'unchanged' AND EXISTS (SELECT 1 FROM main.accounts a \
              WHERE a.target = s.target AND a.id = s.id AND a.task_changed_at > ?3) \
         THEN 'unchanged' ELSE s.change END"
    };
}

/// Stored accounts (alias `a`) a full import suspends: not suspended, not staged, and not
/// changed by a task after the cut-off.
macro_rules! account_missing {
    () => {
        "a.target = ?2 AND a.status <> 'suspended' \
         AND (a.task_changed_at IS NULL OR a.task_changed_at <= ?3) \
         AND NOT EXISTS (SELECT 1 FROM temp.staged_accounts s \
                         WHERE s.run_id = ?1 AND s.target = a.target AND s.id = a.id)"
    };
}

/// A stored grant (alias `g`) not changed by a task after the cut-off.
macro_rules! grant_free {
    () => {
        "(g.task_changed_at IS NULL OR g.task_changed_at <= ?3)"
    };
}

/// The verdict of a staged entitlement (`s`) once the cut-off is applied.
macro_rules! guarded_entitlement {
    () => {
        "CASE WHEN s.change <> 'unchanged' AND EXISTS (SELECT 1 FROM main.entitlements e \
              WHERE e.target = s.target AND e.type = s.type AND e.id = s.id \
                AND e.task_changed_at > ?3) \
         THEN 'unchanged' ELSE s.change END"
    };
}

/// Stored entitlements (alias `e`) a full import inactivates.
macro_rules! entitlement_missing {
    () => {
        "e.target = ?2 AND e.status = 'active' \
         AND (e.task_changed_at IS NULL OR e.task_changed_at <= ?3) \
         AND NOT EXISTS (SELECT 1 FROM temp.staged_entitlements s \
                         WHERE s.run_id = ?1 AND s.target = e.target AND s.type = e.type \
                           AND s.id = e.id)"
    };
}

/// The verdict of a staged grant (`s`) once the cut-off is applied.
macro_rules! guarded_grant {
    () => {
        "CASE WHEN s.change <> 'unchanged' AND EXISTS (SELECT 1 FROM main.grants g \
              WHERE g.target = s.target AND g.account_id = s.account_id AND g.type = s.type \
                AND g.entitlement_id = s.entitlement_id AND g.task_changed_at > ?3) \
         THEN 'unchanged' ELSE s.change END"
    };
}

/// Stored grants (alias `g`) a full import removes.
macro_rules! grant_missing {
    () => {
        concat!(
            "g.target = ?2 AND g.status = 'active' AND ",
            grant_free!(),
            " AND NOT EXISTS (SELECT 1 FROM temp.staged_grants s \
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

// ---- staging: each row classified against the stored one as it is staged ----
//
// Built with `QueryBuilder` ([`STAGE_HEAD`] and the parameters `p`: run id, target, cut-off;
// then `STAGE_*_BODY`, one `VALUES` row per record, and `STAGE_*_TAIL`). Unnumbered parameters
// only, bound in the order they appear. `WHERE true` tells SQLite's parser that `ON
// CONFLICT` is the upsert, not a join constraint.

/// The start of every staging statement: the snapshot's parameters as the CTE `p`.
const STAGE_HEAD: &str = "WITH p(run_id, target, cutoff) AS (SELECT ";

const STAGE_ACCOUNTS_BODY: &str = "), \
    v(id, name, display_name, email, status, attributes) AS (";

const STAGE_ACCOUNTS_TAIL: &str = ") \
    INSERT INTO temp.staged_accounts \
        (run_id, target, id, name, display_name, email, status, attributes, change) \
    SELECT run_id, target, id, \
        IIF(change = 'unchanged', NULL, name), IIF(change = 'unchanged', NULL, display_name), \
        IIF(change = 'unchanged', NULL, email), IIF(change = 'unchanged', NULL, status), \
        IIF(change = 'unchanged', NULL, attributes), change \
    FROM (SELECT p.run_id, p.target, v.id, v.name, v.display_name, v.email, v.status, \
            v.attributes, \
            CASE \
                WHEN a.id IS NULL THEN 'created' \
                WHEN a.task_changed_at > p.cutoff THEN 'unchanged' \
                WHEN a.status = 'suspended' THEN 'reactivated' \
                WHEN a.name IS NOT v.name THEN 'renamed' \
                WHEN a.display_name IS NOT v.display_name OR a.email IS NOT v.email \
                  OR a.status IS NOT v.status OR a.attributes IS NOT v.attributes \
                  THEN 'updated' \
                ELSE 'unchanged' \
            END AS change \
          FROM p CROSS JOIN v LEFT JOIN main.accounts a \
              ON a.target = p.target AND a.id = v.id) \
    WHERE true \
    ON CONFLICT (run_id, target, id) DO UPDATE SET name = excluded.name, \
        display_name = excluded.display_name, email = excluded.email, \
        status = excluded.status, attributes = excluded.attributes, change = excluded.change";

const STAGE_ENTITLEMENTS_BODY: &str = "), v(type, id, name, attributes) AS (";

const STAGE_ENTITLEMENTS_TAIL: &str = ") \
    INSERT INTO temp.staged_entitlements (run_id, target, type, id, name, attributes, change) \
    SELECT run_id, target, type, id, IIF(change = 'unchanged', NULL, name), \
        IIF(change = 'unchanged', NULL, attributes), change \
    FROM (SELECT p.run_id, p.target, v.type, v.id, v.name, v.attributes, \
            CASE \
                WHEN e.id IS NULL THEN 'created' \
                WHEN e.task_changed_at > p.cutoff THEN 'unchanged' \
                WHEN e.status = 'inactive' THEN 'reactivated' \
                WHEN e.name IS NOT v.name OR e.attributes IS NOT v.attributes THEN 'updated' \
                ELSE 'unchanged' \
            END AS change \
          FROM p CROSS JOIN v LEFT JOIN main.entitlements e \
              ON e.target = p.target AND e.type = v.type AND e.id = v.id) \
    WHERE true \
    ON CONFLICT (run_id, target, type, id) DO UPDATE SET name = excluded.name, \
        attributes = excluded.attributes, change = excluded.change";

const STAGE_GRANTS_BODY: &str = "), v(account_id, type, entitlement_id, entitlement_name) AS (";

const STAGE_GRANTS_TAIL: &str = ") \
    INSERT INTO temp.staged_grants \
        (run_id, target, account_id, type, entitlement_id, entitlement_name, change) \
    SELECT p.run_id, p.target, v.account_id, v.type, v.entitlement_id, v.entitlement_name, \
        CASE \
            WHEN g.account_id IS NULL THEN 'created' \
            WHEN g.task_changed_at > p.cutoff THEN 'unchanged' \
            WHEN g.status = 'removed' THEN 'reactivated' \
            ELSE 'unchanged' \
        END \
    FROM p CROSS JOIN v LEFT JOIN main.grants g \
        ON g.target = p.target AND g.account_id = v.account_id AND g.type = v.type \
       AND g.entitlement_id = v.entitlement_id \
    WHERE true \
    ON CONFLICT (run_id, target, account_id, type, entitlement_id) DO UPDATE SET \
        entitlement_name = excluded.entitlement_name, change = excluded.change";

// ---- accounts ----

const ACCOUNT_DIFF_COUNTS: &str = concat!(
    "SELECT ",
    change_sums!("change"),
    " FROM (SELECT ",
    guarded_account!(),
    " AS change FROM temp.staged_accounts s WHERE s.run_id = ?1 AND s.target = ?2)"
);

const ACCOUNT_EXISTING: &str =
    "SELECT COUNT(*) FROM main.accounts WHERE target = ?2 AND status <> 'suspended'";

const ACCOUNT_DIFF_ENTRIES: &str = concat!(
    "SELECT key, label, change FROM (",
    "SELECT s.id AS key, \
         CASE WHEN a.name IS NOT NULL AND a.name IS NOT s.name \
              THEN a.name || ' -> ' || s.name ELSE s.name END AS label, \
         CASE WHEN a.task_changed_at > ?3 THEN 'unchanged' ELSE s.change END AS change \
     FROM temp.staged_accounts s LEFT JOIN main.accounts a ON a.target = s.target AND a.id = s.id \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' \
     UNION ALL SELECT a.id, a.name, 'suspended' FROM main.accounts a WHERE ?4 = 1 AND ",
    account_missing!(),
    ") WHERE change <> 'unchanged' ORDER BY key LIMIT ?5"
);

/// Settles the cut-off at apply time: a staged change to a row a task changed since is
/// dropped.
const ACCOUNT_GUARD: &str = "UPDATE temp.staged_accounts AS s SET change = 'unchanged' \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' \
       AND EXISTS (SELECT 1 FROM main.accounts a \
                   WHERE a.target = s.target AND a.id = s.id AND a.task_changed_at > ?3)";

const ACCOUNT_COUNTS: &str = concat!(
    "SELECT ",
    change_sums!("change"),
    " FROM temp.staged_accounts WHERE run_id = ?1 AND target = ?2"
);

/// A created account's audit details, `{"new": {…}}`, put together as text: the staged
/// attributes are already canonical JSON, so they are not parsed again.
macro_rules! account_created_details {
    () => {
        "'{\"new\":{\"name\":' || json_quote(s.name) \
         || ',\"display_name\":' || json_quote(s.display_name) \
         || ',\"email\":' || json_quote(s.email) \
         || ',\"status\":' || json_quote(s.status) \
         || ',\"attributes\":' || s.attributes || '}}'"
    };
}

const ACCOUNT_AUDIT: &str = concat!(
    "INSERT INTO main.audit_events \
        (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, s.target, 'account', s.id, s.change, ?1, \
        CASE WHEN s.change = 'created' THEN ",
    account_created_details!(),
    " ELSE json_object( \
            'old', json_remove(json_object('name', a.name, 'display_name', a.display_name, \
                'email', a.email, 'status', a.status, 'attributes', json(a.attributes)), ",
    account_same_paths!(),
    "), 'new', json_remove(json_object('name', s.name, 'display_name', s.display_name, \
                'email', s.email, 'status', s.status, 'attributes', json(s.attributes)), ",
    account_same_paths!(),
    ")) END \
     FROM temp.staged_accounts s LEFT JOIN main.accounts a ON a.target = s.target AND a.id = s.id \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' ORDER BY s.id"
);

const ACCOUNT_UPDATE: &str = "UPDATE main.accounts AS a SET \
        name = s.name, display_name = s.display_name, email = s.email, status = s.status, \
        status_reason = CASE WHEN a.status IS s.status THEN a.status_reason ELSE 'import' END, \
        attributes = s.attributes, last_seen = NULL, updated_at = ?4 \
     FROM temp.staged_accounts s \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change IN ('renamed', 'updated', 'reactivated') \
       AND a.target = s.target AND a.id = s.id";

const ACCOUNT_INSERT: &str = "INSERT INTO main.accounts (target, id, name, display_name, email, \
        status, status_reason, owner, attributes, first_seen, last_seen, updated_at) \
     SELECT s.target, s.id, s.name, s.display_name, s.email, s.status, 'import', NULL, \
        s.attributes, ?3, NULL, ?4 \
     FROM temp.staged_accounts s WHERE s.run_id = ?1 AND s.target = ?2 AND s.change = 'created'";

/// Lists the stored accounts the full import suspends (run after
/// [`ACCOUNT_CLEAR_MISSING`], see [`list_missing_accounts`]).
const ACCOUNT_FIND_MISSING: &str = concat!(
    "INSERT INTO temp.missing_accounts (run_id, target, id) \
     SELECT ?1, a.target, a.id FROM main.accounts a WHERE ",
    account_missing!()
);

/// The accounts listed by [`ACCOUNT_FIND_MISSING`] for this run (alias `m`), as the
/// subject of `IN`.
macro_rules! listed_missing {
    () => {
        "SELECT m.id FROM temp.missing_accounts m WHERE m.run_id = ?1 AND m.target = ?2"
    };
}

const ACCOUNT_AUDIT_SUSPENDED: &str = concat!(
    "INSERT INTO main.audit_events \
        (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, a.target, 'account', a.id, 'suspended', ?1, \
        json_object('old', json_object('status', a.status), \
                    'new', json_object('status', 'suspended'), \
                    'reason', 'not returned by target') \
     FROM main.accounts a WHERE a.target = ?2 AND a.id IN (",
    listed_missing!(),
    ") ORDER BY a.id"
);

/// Active grants (alias `g`) of the listed missing accounts: the condition.
macro_rules! grants_of_listed_missing {
    () => {
        concat!(
            "g.target = ?2 AND g.status = 'active' AND ",
            grant_free!(),
            " AND g.account_id IN (",
            listed_missing!(),
            ")"
        )
    };
}

const ACCOUNT_GRANTS_REMOVED_COUNT: &str = concat!(
    "SELECT COUNT(*) FROM main.grants g WHERE ",
    grants_of_listed_missing!()
);

const ACCOUNT_AUDIT_GRANTS_REMOVED: &str = concat!(
    "INSERT INTO main.audit_events \
        (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, g.target, 'grant', ",
    grant_key!("g"),
    ", 'removed', ?1, json_object('reason', 'account suspended') FROM main.grants g WHERE ",
    grants_of_listed_missing!(),
    " ORDER BY g.account_id, g.type, g.entitlement_id"
);

const ACCOUNT_REMOVE_GRANTS: &str = concat!(
    "UPDATE main.grants AS g SET status = 'removed', updated_at = ?4 WHERE ",
    grants_of_listed_missing!()
);

const ACCOUNT_SUSPEND: &str = concat!(
    "UPDATE main.accounts AS a SET status = 'suspended', status_reason = 'import', \
        last_seen = ?6, updated_at = ?4 \
     WHERE a.target = ?2 AND a.id IN (",
    listed_missing!(),
    ")"
);

const ACCOUNT_CLEAR_MISSING: &str =
    "DELETE FROM temp.missing_accounts WHERE run_id = ?1 AND target = ?2";

const TARGET_STATE_PREVIOUS: &str =
    "SELECT last_account_import_at FROM main.target_state WHERE target = ?2";

const TARGET_STATE_RECORD: &str = "INSERT INTO main.target_state (target, last_account_import_at) \
     VALUES (?2, ?3) \
     ON CONFLICT (target) DO UPDATE SET last_account_import_at = excluded.last_account_import_at";

// ---- entitlements ----

const ENTITLEMENT_DIFF_COUNTS: &str = concat!(
    "SELECT ",
    change_sums!("change"),
    " FROM (SELECT ",
    guarded_entitlement!(),
    " AS change FROM temp.staged_entitlements s WHERE s.run_id = ?1 AND s.target = ?2)"
);

const ENTITLEMENT_MISSING_COUNT: &str = concat!(
    "SELECT COUNT(*) FROM main.entitlements e WHERE ",
    entitlement_missing!()
);

const ENTITLEMENT_EXISTING: &str =
    "SELECT COUNT(*) FROM main.entitlements WHERE target = ?2 AND status = 'active'";

const ENTITLEMENT_DIFF_ENTRIES: &str = concat!(
    "SELECT key, label, change FROM (",
    "SELECT s.type || ':' || s.id AS key, s.name AS label, ",
    "CASE WHEN e.task_changed_at > ?3 THEN 'unchanged' ELSE s.change END AS change \
     FROM temp.staged_entitlements s LEFT JOIN main.entitlements e \
         ON e.target = s.target AND e.type = s.type AND e.id = s.id \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' \
     UNION ALL SELECT e.type || ':' || e.id, e.name, 'inactivated' FROM main.entitlements e \
      WHERE ?4 = 1 AND ",
    entitlement_missing!(),
    ") WHERE change <> 'unchanged' ORDER BY key LIMIT ?5"
);

const ENTITLEMENT_GUARD: &str = "UPDATE temp.staged_entitlements AS s SET change = 'unchanged' \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' \
       AND EXISTS (SELECT 1 FROM main.entitlements e WHERE e.target = s.target \
                   AND e.type = s.type AND e.id = s.id AND e.task_changed_at > ?3)";

const ENTITLEMENT_COUNTS: &str = concat!(
    "SELECT ",
    change_sums!("change"),
    " FROM temp.staged_entitlements WHERE run_id = ?1 AND target = ?2"
);

const ENTITLEMENT_AUDIT: &str = concat!(
    "INSERT INTO main.audit_events \
        (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, s.target, 'entitlement', s.type || ':' || s.id, s.change, ?1, \
        CASE WHEN s.change = 'created' THEN \
            '{\"new\":{\"name\":' || json_quote(s.name) || ',\"attributes\":' || s.attributes \
            || '}}' \
        ELSE json_object( \
            'old', json_remove(json_object('name', e.name, 'status', e.status, \
                'attributes', json(e.attributes)), ",
    entitlement_same_paths!(),
    "), 'new', json_remove(json_object('name', s.name, 'status', 'active', \
                'attributes', json(s.attributes)), ",
    entitlement_same_paths!(),
    ")) END \
     FROM temp.staged_entitlements s LEFT JOIN main.entitlements e \
         ON e.target = s.target AND e.type = s.type AND e.id = s.id \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' ORDER BY s.type, s.id"
);

const ENTITLEMENT_UPDATE: &str = "UPDATE main.entitlements AS e SET \
        name = s.name, status = 'active', attributes = s.attributes, updated_at = ?4 \
     FROM temp.staged_entitlements s \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change IN ('updated', 'reactivated') \
       AND e.target = s.target AND e.type = s.type AND e.id = s.id";

const ENTITLEMENT_INSERT: &str = "INSERT INTO main.entitlements (target, type, id, name, status, \
        attributes, first_seen, updated_at) \
     SELECT s.target, s.type, s.id, s.name, 'active', s.attributes, ?3, ?4 \
     FROM temp.staged_entitlements s \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change = 'created'";

const ENTITLEMENT_AUDIT_INACTIVATED: &str = concat!(
    "INSERT INTO main.audit_events \
        (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, e.target, 'entitlement', e.type || ':' || e.id, 'inactivated', ?1, \
        json_object('old', json_object('status', 'active'), \
                    'new', json_object('status', 'inactive'), \
                    'reason', 'not returned by target') \
     FROM main.entitlements e WHERE ",
    entitlement_missing!(),
    " ORDER BY e.type, e.id"
);

const ENTITLEMENT_INACTIVATE: &str = concat!(
    "UPDATE main.entitlements AS e SET status = 'inactive', updated_at = ?4 WHERE ",
    entitlement_missing!()
);

// ---- grants ----

const GRANT_DIFF_COUNTS: &str = concat!(
    "SELECT ",
    change_sums!("change"),
    " FROM (SELECT ",
    guarded_grant!(),
    " AS change FROM temp.staged_grants s WHERE s.run_id = ?1 AND s.target = ?2)"
);

const GRANT_MISSING_COUNT: &str = concat!(
    "SELECT COUNT(*) FROM main.grants g WHERE ",
    grant_missing!()
);

const GRANT_EXISTING: &str =
    "SELECT COUNT(*) FROM main.grants WHERE target = ?2 AND status = 'active'";

const GRANT_DIFF_ENTRIES: &str = concat!(
    "SELECT key, label, change FROM (",
    "SELECT ",
    grant_key!("s"),
    " AS key, COALESCE(sa.name, s.account_id) || ': ' \
         || COALESCE(se.name, s.entitlement_name, s.entitlement_id) AS label, \
         CASE WHEN g.task_changed_at > ?3 THEN 'unchanged' ELSE s.change END AS change \
      FROM temp.staged_grants s \
        LEFT JOIN main.grants g ON g.target = s.target AND g.account_id = s.account_id \
            AND g.type = s.type AND g.entitlement_id = s.entitlement_id \
        LEFT JOIN main.accounts sa ON sa.target = s.target AND sa.id = s.account_id \
        LEFT JOIN main.entitlements se ON se.target = s.target AND se.type = s.type \
            AND se.id = s.entitlement_id \
      WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' \
      UNION ALL SELECT ",
    grant_key!("g"),
    ", COALESCE(ga.name, g.account_id) || ': ' || COALESCE(ge.name, g.entitlement_id), \
        'removed' \
      FROM main.grants g \
        LEFT JOIN main.accounts ga ON ga.target = g.target AND ga.id = g.account_id \
        LEFT JOIN main.entitlements ge ON ge.target = g.target AND ge.type = g.type \
            AND ge.id = g.entitlement_id \
      WHERE ?4 = 1 AND ",
    grant_missing!(),
    ") WHERE change <> 'unchanged' ORDER BY key LIMIT ?5"
);

const GRANT_GUARD: &str = "UPDATE temp.staged_grants AS s SET change = 'unchanged' \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' \
       AND EXISTS (SELECT 1 FROM main.grants g WHERE g.target = s.target \
                   AND g.account_id = s.account_id AND g.type = s.type \
                   AND g.entitlement_id = s.entitlement_id AND g.task_changed_at > ?3)";

const GRANT_COUNTS: &str = concat!(
    "SELECT ",
    change_sums!("change"),
    " FROM temp.staged_grants WHERE run_id = ?1 AND target = ?2"
);

/// Entitlements named by staged grants but missing from the catalogue, one row each.
macro_rules! discovered_entitlements {
    () => {
        "SELECT s.target AS target, s.type AS type, s.entitlement_id AS id, \
            COALESCE(MAX(s.entitlement_name), s.entitlement_id) AS name \
         FROM temp.staged_grants s \
         WHERE s.run_id = ?1 AND s.target = ?2 \
           AND NOT EXISTS (SELECT 1 FROM main.entitlements e WHERE e.target = s.target \
                           AND e.type = s.type AND e.id = s.entitlement_id) \
         GROUP BY s.target, s.type, s.entitlement_id"
    };
}

/// The attributes of an entitlement created because a grant named it.
const DISCOVERED_ATTRIBUTES: &str = r#"{"discovered_from":"grant"}"#;

const GRANT_AUDIT_DISCOVERED: &str = concat!(
    "INSERT INTO main.audit_events \
        (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, d.target, 'entitlement', d.type || ':' || d.id, 'created', ?1, \
        json_object('new', json_object('name', d.name, 'attributes', json(?7))) \
     FROM (",
    discovered_entitlements!(),
    ") d ORDER BY d.type, d.id"
);

const GRANT_INSERT_DISCOVERED: &str = concat!(
    "INSERT INTO main.entitlements (target, type, id, name, status, attributes, first_seen, \
        updated_at) \
     SELECT d.target, d.type, d.id, d.name, 'active', ?7, ?3, ?4 FROM (",
    discovered_entitlements!(),
    ") d"
);

const GRANT_AUDIT: &str = concat!(
    "INSERT INTO main.audit_events \
        (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, s.target, 'grant', ",
    grant_key!("s"),
    ", s.change, ?1, \
        CASE WHEN s.change = 'created' THEN '{\"new\":{\"status\":\"active\"}}' \
        ELSE '{\"old\":{\"status\":\"removed\"},\"new\":{\"status\":\"active\"}}' END \
     FROM temp.staged_grants s \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change <> 'unchanged' \
     ORDER BY s.account_id, s.type, s.entitlement_id"
);

const GRANT_UPDATE: &str = "UPDATE main.grants AS g SET status = 'active', updated_at = ?4 \
     FROM temp.staged_grants s \
     WHERE s.run_id = ?1 AND s.target = ?2 AND s.change = 'reactivated' \
       AND g.target = s.target AND g.account_id = s.account_id AND g.type = s.type \
       AND g.entitlement_id = s.entitlement_id";

const GRANT_INSERT: &str = "INSERT INTO main.grants (target, account_id, type, entitlement_id, \
        status, first_seen, updated_at) \
     SELECT s.target, s.account_id, s.type, s.entitlement_id, 'active', ?3, ?4 \
     FROM temp.staged_grants s WHERE s.run_id = ?1 AND s.target = ?2 AND s.change = 'created'";

const GRANT_AUDIT_REMOVED: &str = concat!(
    "INSERT INTO main.audit_events \
        (at, actor, target, object, object_key, action, run_id, details) \
     SELECT ?4, ?5, g.target, 'grant', ",
    grant_key!("g"),
    ", 'removed', ?1, \
        json_object('old', json_object('status', 'active'), \
                    'new', json_object('status', 'removed'), \
                    'reason', 'not returned by target') \
     FROM main.grants g WHERE ",
    grant_missing!(),
    " ORDER BY g.account_id, g.type, g.entitlement_id"
);

const GRANT_REMOVE: &str = concat!(
    "UPDATE main.grants AS g SET status = 'removed', updated_at = ?4 WHERE ",
    grant_missing!()
);

/// The staging table of an object kind.
fn staged_table(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Account => "temp.staged_accounts",
        ObjectKind::Entitlement => "temp.staged_entitlements",
        ObjectKind::Grant => "temp.staged_grants",
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

    /// Runs a `SELECT` of [`change_sums!`] into counts.
    async fn change_counts(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
        context: &'static str,
    ) -> StoreResult<ChangeCounts> {
        let row = self
            .query(sql)
            .fetch_one(conn)
            .await
            .map_err(query_err(context))?;
        let sum = |column: &'static str| -> StoreResult<u64> {
            let n: Option<i64> = rows::get(&row, column)?;
            Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
        };
        Ok(ChangeCounts {
            created: sum("created")?,
            updated: sum("updated")?,
            unchanged: sum("unchanged")?,
            reactivated: sum("reactivated")?,
            renamed: sum("renamed")?,
            ..ChangeCounts::default()
        })
    }
}

/// The error for a snapshot that was never begun, or was already applied or discarded.
fn no_such_snapshot(context: &'static str, snapshot: &SnapshotId) -> StoreError {
    StoreError::Query {
        context,
        message: format!(
            "no staged {} snapshot for run {} of target {} (never begun, already applied or \
             discarded, or lost when the store's write connection was reset); run the import again",
            snapshot.object, snapshot.run_id, snapshot.target
        ),
    }
}

/// The snapshot's cut-off: the run's start (or, for a dry run without a run record, when
/// the snapshot was begun). `None` when the snapshot does not exist.
async fn snapshot_cutoff(
    conn: &mut SqliteConnection,
    snapshot: &SnapshotId,
    context: &'static str,
) -> StoreResult<Option<String>> {
    sqlx::query_scalar(
        "SELECT cutoff FROM temp.snapshots WHERE run_id = ?1 AND target = ?2 AND object = ?3",
    )
    .bind(snapshot.run_id)
    .bind(&snapshot.target)
    .bind(snapshot.object.as_str())
    .fetch_optional(conn)
    .await
    .map_err(query_err(context))
}

/// The cut-off of a snapshot that must exist.
async fn require_cutoff(
    conn: &mut SqliteConnection,
    snapshot: &SnapshotId,
    context: &'static str,
) -> StoreResult<String> {
    snapshot_cutoff(conn, snapshot, context)
        .await?
        .ok_or_else(|| no_such_snapshot(context, snapshot))
}

impl SqliteStore {
    pub(super) async fn begin_snapshot_impl(&self, snapshot: &SnapshotId) -> StoreResult<()> {
        let context = "beginning an import snapshot";
        let now = clock::now();
        let stale_before = chrono::Duration::from_std(STALE_SNAPSHOT_AFTER)
            .ok()
            .and_then(|age| now.checked_sub_signed(age))
            .unwrap_or(now);
        // Scratch tables only: no write lock on the store.
        let mut tx = self.write.begin().await.map_err(query_err(context))?;
        // Drop what finished (or very old) runs left behind.
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
            "DELETE FROM temp.snapshots WHERE begun_at < ?1 OR EXISTS \
             (SELECT 1 FROM main.runs r WHERE r.id = snapshots.run_id \
                AND r.finished_at IS NOT NULL)",
        )
        .bind(ts(stale_before))
        .execute(&mut *tx)
        .await
        .map_err(query_err(context))?;
        clear_staged(&mut tx, snapshot, context).await?;
        sqlx::query(
            "INSERT OR REPLACE INTO temp.snapshots (run_id, target, object, begun_at, cutoff) \
             VALUES (?1, ?2, ?3, ?4, \
                     COALESCE((SELECT started_at FROM main.runs WHERE id = ?1), ?4))",
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
        let statement = (STAGE_ACCOUNTS_BODY, STAGE_ACCOUNTS_TAIL);
        self.stage_rows(
            snapshot,
            page,
            statement,
            "staging accounts",
            |mut row, record| {
                row.push_bind(&record.id)
                    .push_bind(&record.name)
                    .push_bind(&record.display_name)
                    .push_bind(&record.email)
                    .push_bind(record.status.as_str())
                    .push_bind(rows::canonical_attributes(&record.attributes));
            },
        )
        .await
    }

    pub(super) async fn stage_entitlements_impl(
        &self,
        snapshot: &SnapshotId,
        page: &[EntitlementRecord],
    ) -> StoreResult<()> {
        let statement = (STAGE_ENTITLEMENTS_BODY, STAGE_ENTITLEMENTS_TAIL);
        self.stage_rows(
            snapshot,
            page,
            statement,
            "staging entitlements",
            |mut row, record| {
                row.push_bind(&record.entitlement_type)
                    .push_bind(&record.id)
                    .push_bind(&record.name)
                    .push_bind(rows::canonical_attributes(&record.attributes));
            },
        )
        .await
    }

    pub(super) async fn stage_grants_impl(
        &self,
        snapshot: &SnapshotId,
        page: &[GrantRecord],
    ) -> StoreResult<()> {
        let statement = (STAGE_GRANTS_BODY, STAGE_GRANTS_TAIL);
        self.stage_rows(
            snapshot,
            page,
            statement,
            "staging grants",
            |mut row, record| {
                row.push_bind(&record.account_id)
                    .push_bind(&record.entitlement_type)
                    .push_bind(&record.entitlement_id)
                    .push_bind(&record.entitlement_name);
            },
        )
        .await
    }

    /// Stages a page in one transaction, [`STAGE_CHUNK`] rows per statement: [`STAGE_HEAD`]
    /// with the snapshot's parameters, then the `(body, tail)` of the object kind around one
    /// `VALUES` row per record, whose columns `push_row` binds. A record read twice in one
    /// snapshot: the last read wins (the tails upsert).
    async fn stage_rows<'a, R>(
        &self,
        snapshot: &'a SnapshotId,
        page: &'a [R],
        (body, tail): (&str, &str),
        context: &'static str,
        push_row: impl Fn(Separated<'_, 'a, Sqlite, &'static str>, &'a R),
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(query_err(context))?;
        let cutoff = require_cutoff(&mut tx, snapshot, context).await?;
        for chunk in page.chunks(STAGE_CHUNK) {
            let mut query = QueryBuilder::<Sqlite>::new(STAGE_HEAD);
            query
                .push_bind(snapshot.run_id)
                .push(", ")
                .push_bind(&snapshot.target)
                .push(", ")
                .push_bind(cutoff.clone())
                .push(body);
            query.push_values(chunk, &push_row);
            query.push(tail);
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
        // One read transaction on the connection that holds the staged rows: one consistent
        // view for all the counts.
        let mut tx = self.write.begin().await.map_err(query_err(context))?;
        let cutoff = require_cutoff(&mut tx, snapshot, context).await?;
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
                    // Listed in the scratch table like the apply does; the rollback below
                    // drops the list.
                    diff.counts.suspended = list_missing_accounts(&mut tx, &ctx, context).await?;
                    if diff.counts.suspended > 0 {
                        diff.counts.removed = ctx
                            .count(&mut tx, ACCOUNT_GRANTS_REMOVED_COUNT, context)
                            .await?;
                    }
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
        let mut tx = self.write.begin().await.map_err(query_err(context))?;
        let cutoff = require_cutoff(&mut tx, snapshot, context).await?;
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
        if snapshot_cutoff(&mut tx, snapshot, context).await?.is_none() {
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
        let mut tx = self.write.begin().await.map_err(query_err(context))?;
        clear_staged(&mut tx, snapshot, context).await?;
        delete_snapshot_row(&mut tx, snapshot, context).await?;
        tx.commit().await.map_err(query_err(context))
    }
}

/// Deletes the staged rows of a snapshot. When no other snapshot of its object kind is
/// staged, the whole table is emptied, which SQLite does without visiting each row.
async fn clear_staged(
    conn: &mut SqliteConnection,
    snapshot: &SnapshotId,
    context: &'static str,
) -> StoreResult<()> {
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM temp.snapshots \
         WHERE object = ?3 AND NOT (run_id = ?1 AND target = ?2)",
    )
    .bind(snapshot.run_id)
    .bind(&snapshot.target)
    .bind(snapshot.object.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(query_err(context))?;
    let table = staged_table(snapshot.object);
    let done = if others == 0 {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(conn)
            .await
    } else {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE run_id = ?1 AND target = ?2"
        ))
        .bind(snapshot.run_id)
        .bind(&snapshot.target)
        .execute(conn)
        .await
    };
    done.map(drop).map_err(query_err(context))
}

/// Forgets a snapshot.
async fn delete_snapshot_row(
    conn: &mut SqliteConnection,
    snapshot: &SnapshotId,
    context: &'static str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM temp.snapshots WHERE run_id = ?1 AND target = ?2 AND object = ?3")
        .bind(snapshot.run_id)
        .bind(&snapshot.target)
        .bind(snapshot.object.as_str())
        .execute(conn)
        .await
        .map(drop)
        .map_err(query_err(context))
}

/// Lists, in `temp.missing_accounts`, the stored accounts a full import of the snapshot
/// suspends (one scan); returns how many.
async fn list_missing_accounts(
    conn: &mut SqliteConnection,
    ctx: &Ctx<'_>,
    context: &'static str,
) -> StoreResult<u64> {
    ctx.execute(conn, ACCOUNT_CLEAR_MISSING, context).await?;
    ctx.execute(conn, ACCOUNT_FIND_MISSING, context).await
}

/// Applies an account snapshot inside the caller's transaction.
async fn apply_accounts(
    conn: &mut SqliteConnection,
    ctx: &mut Ctx<'_>,
    full: bool,
    context: &'static str,
) -> StoreResult<ChangeCounts> {
    ctx.execute(conn, ACCOUNT_GUARD, context).await?;
    let mut counts = ctx.change_counts(conn, ACCOUNT_COUNTS, context).await?;
    // One scan finds the missing accounts, before the new ones are added (a staged account
    // is never missing, so the scan need not visit them); the statements after it visit
    // only the missing ones, and none at all when the target returned every account.
    let missing = if full {
        list_missing_accounts(conn, ctx, context).await?
    } else {
        0
    };
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
        if missing > 0 {
            ctx.execute(conn, ACCOUNT_AUDIT_SUSPENDED, context).await?;
            ctx.execute(conn, ACCOUNT_AUDIT_GRANTS_REMOVED, context)
                .await?;
            counts.removed = ctx.execute(conn, ACCOUNT_REMOVE_GRANTS, context).await?;
            counts.suspended = ctx.execute(conn, ACCOUNT_SUSPEND, context).await?;
            ctx.execute(conn, ACCOUNT_CLEAR_MISSING, context).await?;
        }
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
    ctx.execute(conn, ENTITLEMENT_GUARD, context).await?;
    let mut counts = ctx.change_counts(conn, ENTITLEMENT_COUNTS, context).await?;
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
    ctx.execute(conn, GRANT_GUARD, context).await?;
    let mut counts = ctx.change_counts(conn, GRANT_COUNTS, context).await?;
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
