//! Tests of the SQLite store, each on a fresh file in a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tempfile::TempDir;

use super::SqliteStore;
use crate::model::{
    AccountRecord, AccountStatus, Attributes, Change, ChangeCounts, EntitlementRecord,
    EntitlementStatus, GrantRecord, GrantStatus, ImportMode, JobKind, ObjectKind, RunOutcome,
    Trigger,
};
use crate::store::{
    AccountFilter, ApplyOptions, EntitlementFilter, GrantFilter, LockOutcome, NewRun, RunFilter,
    RunFinish, SnapshotId, Store, StoreError,
};

const TARGET: &str = "digicert";

async fn open(dir: &TempDir) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("idsync.db").display());
    SqliteStore::open(&url, Duration::from_secs(5))
        .await
        .unwrap()
}

async fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    (dir, store)
}

/// `.cargo/config.toml` builds SQLite without ENABLE_MEMORY_MANAGEMENT: with it, all
/// connections share one page-cache LRU and evict each other's pages, which made a large
/// import diff re-read the file page by page (see the comment there).
#[tokio::test]
async fn sqlite_keeps_a_page_cache_per_connection() {
    let (_dir, store) = fresh().await;
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(&store.read)
        .await
        .unwrap();
    assert!(
        options.iter().any(|o| o.starts_with("THREADSAFE")),
        "{options:?}"
    );
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "SQLite was built with ENABLE_MEMORY_MANAGEMENT (unified page cache); build through \
         this checkout so .cargo/config.toml sets LIBSQLITE3_FLAGS: {options:?}"
    );
}

/// Hour `h` of a fixed day: run start times.
fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap()
}

fn attrs(value: serde_json::Value) -> Attributes {
    value.as_object().unwrap().clone()
}

fn account(id: &str, name: &str) -> AccountRecord {
    AccountRecord {
        id: id.to_string(),
        name: name.to_string(),
        display_name: Some(format!("{name} display")),
        email: Some(format!("{name}@example.com")),
        status: AccountStatus::Active,
        attributes: attrs(json!({"title": "engineer", "nested": {"b": 1, "a": [1, 2]}})),
    }
}

fn entitlement(kind: &str, id: &str, name: &str) -> EntitlementRecord {
    EntitlementRecord {
        entitlement_type: kind.to_string(),
        id: id.to_string(),
        name: name.to_string(),
        attributes: Attributes::new(),
    }
}

fn grant(account_id: &str, kind: &str, entitlement_id: &str) -> GrantRecord {
    GrantRecord {
        account_id: account_id.to_string(),
        entitlement_type: kind.to_string(),
        entitlement_id: entitlement_id.to_string(),
        entitlement_name: None,
    }
}

fn snap(run_id: i64, object: ObjectKind) -> SnapshotId {
    SnapshotId {
        run_id,
        target: TARGET.to_string(),
        object,
    }
}

fn options(mode: ImportMode, started: DateTime<Utc>) -> ApplyOptions {
    ApplyOptions {
        mode,
        run_started_at: started,
        actor: "scheduler".to_string(),
    }
}

async fn import_accounts(
    store: &SqliteStore,
    run_id: i64,
    records: &[AccountRecord],
    mode: ImportMode,
    started: DateTime<Utc>,
) -> ChangeCounts {
    let snapshot = snap(run_id, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store.stage_accounts(&snapshot, records).await.unwrap();
    store
        .apply_snapshot(&snapshot, &options(mode, started))
        .await
        .unwrap()
}

async fn import_entitlements(
    store: &SqliteStore,
    run_id: i64,
    records: &[EntitlementRecord],
    mode: ImportMode,
) -> ChangeCounts {
    let snapshot = snap(run_id, ObjectKind::Entitlement);
    store.begin_snapshot(&snapshot).await.unwrap();
    store.stage_entitlements(&snapshot, records).await.unwrap();
    store
        .apply_snapshot(&snapshot, &options(mode, at(run_id as u32)))
        .await
        .unwrap()
}

async fn import_grants(
    store: &SqliteStore,
    run_id: i64,
    records: &[GrantRecord],
    mode: ImportMode,
) -> ChangeCounts {
    let snapshot = snap(run_id, ObjectKind::Grant);
    store.begin_snapshot(&snapshot).await.unwrap();
    store.stage_grants(&snapshot, records).await.unwrap();
    store
        .apply_snapshot(&snapshot, &options(mode, at(run_id as u32)))
        .await
        .unwrap()
}

async fn accounts(store: &SqliteStore) -> Vec<crate::model::Account> {
    store
        .list_accounts(&AccountFilter::default())
        .await
        .unwrap()
}

async fn audit_count(store: &SqliteStore) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&store.read)
        .await
        .unwrap()
}

async fn updated_at(store: &SqliteStore) -> Vec<(String, String)> {
    sqlx::query_as("SELECT id, updated_at FROM accounts ORDER BY id")
        .fetch_all(&store.read)
        .await
        .unwrap()
}

async fn grant_status(store: &SqliteStore, account_id: &str) -> Vec<GrantStatus> {
    let grants = store
        .list_grants(&GrantFilter {
            target: TARGET.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    grants
        .into_iter()
        .filter(|g| g.account_id == account_id)
        .map(|g| g.status)
        .collect()
}

#[tokio::test]
async fn the_file_is_created_private() {
    let (dir, store) = fresh().await;
    let mode = std::fs::metadata(dir.path().join("idsync.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert_eq!(store.path(), dir.path().join("idsync.db"));
    store.ping().await.unwrap();
}

#[tokio::test]
async fn a_url_without_the_scheme_is_refused() {
    let err = SqliteStore::open("/tmp/x.db", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', 1, x'00', 0)",
    )
    .execute(&store.write)
    .await
    .unwrap();
    store.close().await;
    let url = format!("sqlite://{}", dir.path().join("idsync.db").display());
    let err = SqliteStore::open(&url, Duration::from_secs(1))
        .await
        .unwrap_err();
    match err {
        StoreError::SchemaTooNew { found, known, .. } => {
            assert_eq!(found, 99990101000000);
            assert_eq!(known, 3);
        }
        other => panic!("expected SchemaTooNew, got {other}"),
    }
}

#[tokio::test]
async fn reopening_an_up_to_date_store_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    import_accounts(&store, 1, &[account("1", "alice")], ImportMode::Full, at(1)).await;
    store.close().await;
    let store = open(&dir).await;
    assert_eq!(accounts(&store).await.len(), 1);
    // No pre-migration backup was taken: nothing to migrate.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !files.iter().any(|f| f.to_string_lossy().ends_with(".bak")),
        "{files:?}"
    );
}

#[tokio::test]
async fn stage_and_apply_creates_accounts_with_audit() {
    let (_dir, store) = fresh().await;
    let counts = import_accounts(
        &store,
        1,
        &[account("1", "alice"), account("2", "bob")],
        ImportMode::Full,
        at(1),
    )
    .await;
    assert_eq!(
        counts,
        ChangeCounts {
            created: 2,
            ..Default::default()
        }
    );

    let found = accounts(&store).await;
    assert_eq!(found.len(), 2);
    let alice = &found[0];
    assert_eq!(alice.target, TARGET);
    assert_eq!(alice.id, "1");
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.display_name.as_deref(), Some("alice display"));
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.status, AccountStatus::Active);
    assert_eq!(alice.status_reason.as_deref(), Some("import"));
    assert_eq!(alice.owner, None);
    assert_eq!(alice.attributes, account("1", "alice").attributes);
    assert_eq!(alice.first_seen, at(1));
    assert_eq!(alice.last_seen, Some(at(1)));

    let audit = store.list_audit(Some(TARGET), 0).await.unwrap();
    assert_eq!(audit.len(), 2);
    // Newest first.
    let bob = &audit[0];
    assert_eq!(bob.action, "created");
    assert_eq!(bob.object, Some(ObjectKind::Account));
    assert_eq!(bob.object_key.as_deref(), Some("2"));
    assert_eq!(bob.run_id, Some(1));
    assert_eq!(bob.actor, "scheduler");
    assert_eq!(bob.details["new"]["name"], "bob");
    assert_eq!(bob.details["new"]["attributes"]["nested"]["b"], 1);

    // The staged rows are gone.
    let staged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM temp.staged_accounts")
        .fetch_one(&store.write)
        .await
        .unwrap();
    assert_eq!(staged, 0);
}

#[tokio::test]
async fn reapplying_identical_data_writes_nothing() {
    let (_dir, store) = fresh().await;
    let records = vec![
        account("1", "alice"),
        account("2", "bob"),
        account("3", "carol"),
    ];
    import_accounts(&store, 1, &records, ImportMode::Full, at(1)).await;
    import_entitlements(
        &store,
        1,
        &[entitlement("role", "r1", "Admin")],
        ImportMode::Full,
    )
    .await;
    import_grants(&store, 1, &[grant("1", "role", "r1")], ImportMode::Full).await;
    let before = updated_at(&store).await;
    let events = audit_count(&store).await;
    tokio::time::sleep(Duration::from_millis(5)).await;

    // The same data with attribute keys built in another order.
    let mut again = records.clone();
    let mut reordered = Attributes::new();
    reordered.insert("nested".into(), json!({"a": [1, 2], "b": 1}));
    reordered.insert("title".into(), json!("engineer"));
    again[0].attributes = reordered;
    let counts = import_accounts(&store, 2, &again, ImportMode::Full, at(2)).await;
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 3,
            ..Default::default()
        }
    );
    let counts = import_entitlements(
        &store,
        2,
        &[entitlement("role", "r1", "Admin")],
        ImportMode::Full,
    )
    .await;
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 1,
            ..Default::default()
        }
    );
    let counts = import_grants(&store, 2, &[grant("1", "role", "r1")], ImportMode::Full).await;
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 1,
            ..Default::default()
        }
    );

    assert_eq!(updated_at(&store).await, before);
    assert_eq!(audit_count(&store).await, events);
    // Only the target's last import time moved: last_seen follows it.
    assert!(accounts(&store)
        .await
        .iter()
        .all(|a| a.last_seen == Some(at(2))));
}

#[tokio::test]
async fn a_missing_account_is_suspended_with_its_grants_and_reactivated_when_it_returns() {
    let (_dir, store) = fresh().await;
    import_accounts(
        &store,
        1,
        &[account("1", "alice"), account("2", "bob")],
        ImportMode::Full,
        at(1),
    )
    .await;
    import_entitlements(
        &store,
        1,
        &[entitlement("role", "r1", "Admin")],
        ImportMode::Full,
    )
    .await;
    import_grants(
        &store,
        1,
        &[grant("1", "role", "r1"), grant("2", "role", "r1")],
        ImportMode::Full,
    )
    .await;

    let counts =
        import_accounts(&store, 2, &[account("1", "alice")], ImportMode::Full, at(2)).await;
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 1,
            suspended: 1,
            removed: 1,
            ..Default::default()
        }
    );
    let bob = accounts(&store)
        .await
        .into_iter()
        .find(|a| a.id == "2")
        .unwrap();
    assert_eq!(bob.status, AccountStatus::Suspended);
    assert_eq!(bob.status_reason.as_deref(), Some("import"));
    // Last seen by the import before this one.
    assert_eq!(bob.last_seen, Some(at(1)));
    assert_eq!(grant_status(&store, "2").await, vec![GrantStatus::Removed]);
    assert_eq!(grant_status(&store, "1").await, vec![GrantStatus::Active]);
    let audit = store.list_audit(Some(TARGET), 10).await.unwrap();
    let removed = audit
        .iter()
        .find(|e| e.object == Some(ObjectKind::Grant))
        .unwrap();
    assert_eq!(removed.action, "removed");
    assert_eq!(removed.object_key.as_deref(), Some("2|role:r1"));
    assert_eq!(removed.details, json!({"reason": "account suspended"}));
    assert!(audit
        .iter()
        .any(|e| e.action == "suspended" && e.object_key.as_deref() == Some("2")));

    // The next access import does not count bob's grant as a removal again.
    let snapshot = snap(3, ObjectKind::Grant);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_grants(&snapshot, &[grant("1", "role", "r1")])
        .await
        .unwrap();
    let diff = store
        .diff_snapshot(&snapshot, ImportMode::Full)
        .await
        .unwrap();
    assert_eq!(diff.removals, 0);
    assert_eq!(diff.existing, 1);
    store.discard_snapshot(&snapshot).await.unwrap();

    // Bob comes back, disabled in the target.
    let mut bob_back = account("2", "bob");
    bob_back.status = AccountStatus::Inactive;
    let counts = import_accounts(
        &store,
        4,
        &[account("1", "alice"), bob_back],
        ImportMode::Full,
        at(4),
    )
    .await;
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 1,
            reactivated: 1,
            ..Default::default()
        }
    );
    let bob = accounts(&store)
        .await
        .into_iter()
        .find(|a| a.id == "2")
        .unwrap();
    assert_eq!(bob.status, AccountStatus::Inactive);
    assert_eq!(bob.status_reason.as_deref(), Some("import"));
    assert_eq!(bob.last_seen, Some(at(4)));
    let counts = import_grants(
        &store,
        5,
        &[grant("1", "role", "r1"), grant("2", "role", "r1")],
        ImportMode::Full,
    )
    .await;
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 1,
            reactivated: 1,
            ..Default::default()
        }
    );
    assert_eq!(grant_status(&store, "2").await, vec![GrantStatus::Active]);
}

#[tokio::test]
async fn a_rename_is_audited_with_old_and_new_names() {
    let (_dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("1", "alice")], ImportMode::Full, at(1)).await;
    let mut renamed = account("1", "alice");
    renamed.name = "alice.smith".to_string();
    let counts = import_accounts(&store, 2, &[renamed], ImportMode::Full, at(2)).await;
    assert_eq!(
        counts,
        ChangeCounts {
            renamed: 1,
            ..Default::default()
        }
    );
    assert_eq!(accounts(&store).await[0].name, "alice.smith");
    let event = &store.list_audit(Some(TARGET), 1).await.unwrap()[0];
    assert_eq!(event.action, "renamed");
    assert_eq!(event.object_key.as_deref(), Some("1"));
    assert_eq!(
        event.details,
        json!({"old": {"name": "alice"}, "new": {"name": "alice.smith"}})
    );
}

#[tokio::test]
async fn an_update_is_audited_with_the_changed_fields_only() {
    let (_dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("1", "alice")], ImportMode::Full, at(1)).await;
    let mut changed = account("1", "alice");
    changed.email = None;
    changed.status = AccountStatus::Inactive;
    let counts = import_accounts(&store, 2, &[changed], ImportMode::Full, at(2)).await;
    assert_eq!(
        counts,
        ChangeCounts {
            updated: 1,
            ..Default::default()
        }
    );
    let event = &store.list_audit(Some(TARGET), 1).await.unwrap()[0];
    assert_eq!(event.action, "updated");
    assert_eq!(
        event.details,
        json!({
            "old": {"email": "alice@example.com", "status": "active"},
            "new": {"email": null, "status": "inactive"}
        })
    );
    let alice = &accounts(&store).await[0];
    assert_eq!(
        (alice.status, alice.email.clone()),
        (AccountStatus::Inactive, None)
    );
}

#[tokio::test]
async fn incremental_mode_never_suspends() {
    let (_dir, store) = fresh().await;
    import_accounts(
        &store,
        1,
        &[account("1", "alice"), account("2", "bob")],
        ImportMode::Full,
        at(1),
    )
    .await;
    let snapshot = snap(2, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_accounts(&snapshot, &[account("1", "alice"), account("3", "carol")])
        .await
        .unwrap();
    let diff = store
        .diff_snapshot(&snapshot, ImportMode::Incremental)
        .await
        .unwrap();
    assert_eq!(
        diff.counts,
        ChangeCounts {
            created: 1,
            unchanged: 1,
            ..Default::default()
        }
    );
    assert_eq!(diff.removals, 0);
    let entries = store
        .diff_entries(&snapshot, ImportMode::Incremental, 0)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    let counts = store
        .apply_snapshot(&snapshot, &options(ImportMode::Incremental, at(2)))
        .await
        .unwrap();
    assert_eq!(counts, diff.counts);
    assert!(accounts(&store)
        .await
        .iter()
        .all(|a| a.status == AccountStatus::Active));
    // The last full import time did not move.
    let bob = accounts(&store)
        .await
        .into_iter()
        .find(|a| a.id == "2")
        .unwrap();
    assert_eq!(bob.last_seen, Some(at(1)));
}

#[tokio::test]
async fn the_diff_counts_what_apply_then_does() {
    let (_dir, store) = fresh().await;
    let first = vec![
        account("1", "alice"),
        account("2", "bob"),
        account("3", "carol"),
        account("4", "dave"),
        account("5", "erin"),
    ];
    import_accounts(&store, 1, &first, ImportMode::Full, at(1)).await;
    import_entitlements(
        &store,
        1,
        &[entitlement("role", "r1", "Admin")],
        ImportMode::Full,
    )
    .await;
    import_grants(
        &store,
        1,
        &[grant("4", "role", "r1"), grant("5", "role", "r1")],
        ImportMode::Full,
    )
    .await;
    // erin goes away first, so she can come back.
    import_accounts(&store, 2, &first[..4], ImportMode::Full, at(2)).await;

    let mut bob = account("2", "bob");
    bob.name = "robert".to_string();
    let mut carol = account("3", "carol");
    carol.display_name = Some("Carol C.".to_string());
    // alice unchanged, bob renamed, carol updated, dave missing, erin back, frank new.
    let next = [
        account("1", "alice"),
        bob,
        carol,
        account("5", "erin"),
        account("6", "frank"),
    ];
    let snapshot = snap(3, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store.stage_accounts(&snapshot, &next[..2]).await.unwrap();
    store.stage_accounts(&snapshot, &next[2..]).await.unwrap();
    let diff = store
        .diff_snapshot(&snapshot, ImportMode::Full)
        .await
        .unwrap();
    let expected = ChangeCounts {
        created: 1,
        updated: 1,
        unchanged: 1,
        suspended: 1,
        removed: 1,
        reactivated: 1,
        renamed: 1,
        inactivated: 0,
    };
    assert_eq!(diff.counts, expected);
    assert_eq!(diff.existing, 4);
    assert_eq!(diff.removals, 1);

    let entries = store
        .diff_entries(&snapshot, ImportMode::Full, 0)
        .await
        .unwrap();
    let lines: Vec<(String, Option<String>, Change)> = entries
        .into_iter()
        .map(|e| (e.key, e.label, e.change))
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "2".to_string(),
                Some("bob -> robert".to_string()),
                Change::Renamed
            ),
            ("3".to_string(), Some("carol".to_string()), Change::Updated),
            ("4".to_string(), Some("dave".to_string()), Change::Suspended),
            (
                "5".to_string(),
                Some("erin".to_string()),
                Change::Reactivated
            ),
            ("6".to_string(), Some("frank".to_string()), Change::Created),
        ]
    );
    assert_eq!(
        store
            .diff_entries(&snapshot, ImportMode::Full, 2)
            .await
            .unwrap()
            .len(),
        2
    );

    let events = audit_count(&store).await;
    let applied = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(3)))
        .await
        .unwrap();
    assert_eq!(applied, diff.counts);
    // One audit event per change: 5 account changes and dave's grant.
    assert_eq!(audit_count(&store).await - events, 6);
}

#[tokio::test]
async fn a_discarded_snapshot_changes_nothing() {
    let (_dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("1", "alice")], ImportMode::Full, at(1)).await;
    let before = accounts(&store).await;
    let events = audit_count(&store).await;
    let snapshot = snap(2, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_accounts(&snapshot, &[account("2", "bob")])
        .await
        .unwrap();
    store.discard_snapshot(&snapshot).await.unwrap();
    // Applying it now is refused rather than "suspending" everyone.
    let err = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(2)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no staged account snapshot"),
        "{err}"
    );
    assert!(store
        .diff_snapshot(&snapshot, ImportMode::Full)
        .await
        .is_err());
    assert_eq!(accounts(&store).await, before);
    assert_eq!(audit_count(&store).await, events);
    let staged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM temp.staged_accounts")
        .fetch_one(&store.write)
        .await
        .unwrap();
    assert_eq!(staged, 0);
}

#[tokio::test]
async fn a_failed_apply_leaves_the_store_as_it_was() {
    let (_dir, store) = fresh().await;
    import_accounts(
        &store,
        1,
        &[account("1", "alice"), account("2", "bob")],
        ImportMode::Full,
        at(1),
    )
    .await;
    let before = accounts(&store).await;
    let events = audit_count(&store).await;
    // Make the insert of new accounts (after the updates and suspensions' audit) fail.
    sqlx::query(
        "CREATE TRIGGER boom BEFORE INSERT ON accounts BEGIN SELECT RAISE(ABORT, 'boom'); END",
    )
    .execute(&store.write)
    .await
    .unwrap();
    let mut alice = account("1", "alice");
    alice.name = "alice2".to_string();
    let snapshot = snap(2, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_accounts(&snapshot, &[alice, account("3", "carol")])
        .await
        .unwrap();
    let err = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(2)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert_eq!(accounts(&store).await, before);
    assert_eq!(audit_count(&store).await, events);

    // The writer is usable again and the snapshot is still staged.
    sqlx::query("DROP TRIGGER boom")
        .execute(&store.write)
        .await
        .unwrap();
    let counts = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(2)))
        .await
        .unwrap();
    assert_eq!(
        counts,
        ChangeCounts {
            created: 1,
            renamed: 1,
            suspended: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn a_grant_naming_an_unknown_entitlement_creates_it() {
    let (_dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("1", "alice")], ImportMode::Full, at(1)).await;
    import_entitlements(
        &store,
        1,
        &[entitlement("role", "r1", "Admin")],
        ImportMode::Full,
    )
    .await;
    let mut named = grant("1", "container", "c9");
    named.entitlement_name = Some("Sales".to_string());
    let counts = import_grants(
        &store,
        2,
        &[grant("1", "role", "r1"), named, grant("1", "role", "r7")],
        ImportMode::Full,
    )
    .await;
    assert_eq!(
        counts,
        ChangeCounts {
            created: 3,
            ..Default::default()
        }
    );

    let found = store
        .list_entitlements(&EntitlementFilter {
            target: TARGET.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|e| (e.entitlement_type.as_str(), e.id.as_str(), e.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("container", "c9", "Sales"),
            ("role", "r1", "Admin"),
            ("role", "r7", "r7")
        ]
    );
    let sales = &found[0];
    assert_eq!(sales.status, EntitlementStatus::Active);
    assert_eq!(sales.attributes, attrs(json!({"discovered_from": "grant"})));
    let audit = store.list_audit(Some(TARGET), 0).await.unwrap();
    let created = audit
        .iter()
        .find(|e| {
            e.object == Some(ObjectKind::Entitlement)
                && e.object_key.as_deref() == Some("container:c9")
        })
        .unwrap();
    assert_eq!(created.action, "created");
    assert_eq!(
        created.details["new"]["attributes"]["discovered_from"],
        "grant"
    );

    // Grants list with the login name and entitlement name joined in.
    let grants = store
        .list_grants(&GrantFilter {
            target: TARGET.to_string(),
            account: Some("alice".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(grants.len(), 3);
    assert_eq!(grants[0].account.as_deref(), Some("alice"));
    assert_eq!(grants[0].entitlement_name.as_deref(), Some("Sales"));
}

#[tokio::test]
async fn full_access_imports_inactivate_entitlements_and_remove_grants() {
    let (_dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("1", "alice")], ImportMode::Full, at(1)).await;
    import_entitlements(
        &store,
        1,
        &[
            entitlement("Role", "r1", "Admin"),
            entitlement("Role", "r2", "User"),
        ],
        ImportMode::Full,
    )
    .await;
    import_grants(
        &store,
        1,
        &[grant("1", "Role", "r1"), grant("1", "Role", "r2")],
        ImportMode::Full,
    )
    .await;

    let counts = import_entitlements(
        &store,
        2,
        &[entitlement("Role", "r1", "Administrator")],
        ImportMode::Full,
    )
    .await;
    assert_eq!(
        counts,
        ChangeCounts {
            updated: 1,
            inactivated: 1,
            ..Default::default()
        }
    );
    let counts = import_grants(&store, 2, &[grant("1", "Role", "r1")], ImportMode::Full).await;
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 1,
            removed: 1,
            ..Default::default()
        }
    );

    let found = store
        .list_entitlements(&EntitlementFilter {
            target: TARGET.to_string(),
            entitlement_type: Some("role".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "type matches case-insensitively");
    assert_eq!(
        (found[0].name.as_str(), found[0].status),
        ("Administrator", EntitlementStatus::Active)
    );
    assert_eq!(found[1].status, EntitlementStatus::Inactive);

    let counts = import_entitlements(
        &store,
        3,
        &[
            entitlement("Role", "r1", "Administrator"),
            entitlement("Role", "r2", "User"),
        ],
        ImportMode::Full,
    )
    .await;
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 1,
            reactivated: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn a_row_changed_by_a_task_after_the_run_started_is_left_alone() {
    let (_dir, store) = fresh().await;
    import_accounts(
        &store,
        1,
        &[
            account("1", "alice"),
            account("2", "bob"),
            account("3", "carol"),
        ],
        ImportMode::Full,
        at(1),
    )
    .await;
    // A task created bob and renamed carol while run 2 (started at hour 2) was reading.
    sqlx::query("UPDATE accounts SET task_changed_at = ?1 WHERE id IN ('2', '3')")
        .bind(crate::clock::format(at(2) + chrono::Duration::minutes(5)))
        .execute(&store.write)
        .await
        .unwrap();
    let mut carol = account("3", "carol");
    carol.name = "carol.old".to_string();
    let snapshot = snap(2, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_accounts(&snapshot, &[account("1", "alice"), carol])
        .await
        .unwrap();
    let counts = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(2)))
        .await
        .unwrap();
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 2,
            ..Default::default()
        }
    );
    let found = accounts(&store).await;
    assert!(found.iter().all(|a| a.status == AccountStatus::Active));
    assert_eq!(found[2].name, "carol");

    // A later run, started after the task, does suspend bob.
    let counts = import_accounts(
        &store,
        3,
        &[account("1", "alice"), account("3", "carol")],
        ImportMode::Full,
        at(3),
    )
    .await;
    assert_eq!(counts.suspended, 1);
}

#[tokio::test]
async fn the_last_page_wins_for_a_record_staged_twice() {
    let (_dir, store) = fresh().await;
    let mut later = account("1", "alice");
    later.email = Some("new@example.com".to_string());
    let snapshot = snap(1, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_accounts(&snapshot, &[account("1", "alice"), account("2", "bob")])
        .await
        .unwrap();
    store.stage_accounts(&snapshot, &[later]).await.unwrap();
    let counts = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(1)))
        .await
        .unwrap();
    assert_eq!(counts.created, 2);
    assert_eq!(
        accounts(&store).await[0].email.as_deref(),
        Some("new@example.com")
    );
}

#[tokio::test]
async fn locks_are_exclusive_until_they_expire() {
    let (_dir, store) = fresh().await;
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store
            .try_lock("import:digicert", "run 1", ttl)
            .await
            .unwrap(),
        LockOutcome::Acquired
    );
    assert_eq!(
        store
            .try_lock("import:digicert", "run 2", ttl)
            .await
            .unwrap(),
        LockOutcome::HeldBy("run 1".to_string())
    );
    // Renewal by the holder.
    assert_eq!(
        store
            .try_lock("import:digicert", "run 1", ttl)
            .await
            .unwrap(),
        LockOutcome::Acquired
    );
    // Another name is independent.
    assert_eq!(
        store.try_lock("provision", "run 2", ttl).await.unwrap(),
        LockOutcome::Acquired
    );
    // Unlock by someone else does nothing.
    store.unlock("import:digicert", "run 2").await.unwrap();
    assert!(matches!(
        store
            .try_lock("import:digicert", "run 3", ttl)
            .await
            .unwrap(),
        LockOutcome::HeldBy(_)
    ));
    store.unlock("import:digicert", "run 1").await.unwrap();
    assert_eq!(
        store
            .try_lock("import:digicert", "run 3", Duration::from_millis(1))
            .await
            .unwrap(),
        LockOutcome::Acquired
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Expired: free for the taking.
    assert_eq!(
        store
            .try_lock("import:digicert", "run 4", ttl)
            .await
            .unwrap(),
        LockOutcome::Acquired
    );
}

fn new_run(kind: JobKind, started: DateTime<Utc>) -> NewRun {
    NewRun {
        job: "digicert-accounts".to_string(),
        target: Some(TARGET.to_string()),
        kind,
        trigger: Trigger::Schedule,
        actor: "scheduler".to_string(),
        started_at: started,
    }
}

#[tokio::test]
async fn failing_open_runs_skips_a_run_whose_lock_is_live() {
    let (_dir, store) = fresh().await;
    let live = store
        .start_run(&new_run(JobKind::AccountImport, at(1)))
        .await
        .unwrap();
    let dead = store
        .start_run(&new_run(JobKind::AccountImport, at(2)))
        .await
        .unwrap();
    let done = store
        .start_run(&new_run(JobKind::AccountImport, at(3)))
        .await
        .unwrap();
    store
        .finish_run(
            done,
            &RunFinish {
                outcome: RunOutcome::Succeeded,
                finished_at: at(4),
                counts: json!({"read": 3}),
                error: None,
            },
        )
        .await
        .unwrap();
    store
        .try_lock(
            "import:digicert",
            &format!("run {live}"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    store
        .try_lock(
            "import:other",
            &format!("run {dead}"),
            Duration::from_millis(1),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;

    let failed = store
        .fail_open_runs("interrupted by shutdown", crate::clock::now())
        .await
        .unwrap();
    assert_eq!(failed, 1);
    let dead = store.get_run(dead).await.unwrap().unwrap();
    assert_eq!(dead.outcome, Some(RunOutcome::Failed));
    assert_eq!(dead.error.as_deref(), Some("interrupted by shutdown"));
    assert!(dead.finished_at.is_some());
    let live = store.get_run(live).await.unwrap().unwrap();
    assert_eq!(live.outcome, None);
    assert_eq!(
        store.get_run(done).await.unwrap().unwrap().outcome,
        Some(RunOutcome::Succeeded)
    );
}

#[tokio::test]
async fn runs_are_listed_newest_first_with_filters() {
    let (_dir, store) = fresh().await;
    let first = store
        .start_run(&new_run(JobKind::AccountImport, at(1)))
        .await
        .unwrap();
    let mut access = new_run(JobKind::AccessImport, at(2));
    access.job = "digicert-access".to_string();
    let second = store.start_run(&access).await.unwrap();
    let third = store
        .start_run(&new_run(JobKind::AccountImport, at(3)))
        .await
        .unwrap();
    let finish = RunFinish {
        outcome: RunOutcome::Succeeded,
        finished_at: at(4),
        counts: json!({"read": 1}),
        error: None,
    };
    store.finish_run(first, &finish).await.unwrap();
    store.finish_run(second, &finish).await.unwrap();
    store
        .finish_run(
            third,
            &RunFinish {
                outcome: RunOutcome::Held,
                error: Some("held".to_string()),
                ..finish.clone()
            },
        )
        .await
        .unwrap();

    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![third, second, first]
    );
    let accounts_only = store
        .list_runs(&RunFilter {
            job: Some("digicert-accounts".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(accounts_only.len(), 2);
    let page = store
        .list_runs(&RunFilter {
            before_id: Some(third),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![second]);
    // Counting follows the job and target, and ignores the cursor and the limit.
    let count = |job: Option<&str>, target: Option<&str>| RunFilter {
        job: job.map(str::to_string),
        target: target.map(str::to_string),
        before_id: Some(first),
        limit: 1,
    };
    assert_eq!(store.count_runs(&count(None, None)).await.unwrap(), 3);
    let accounts_job = count(Some("digicert-accounts"), Some(TARGET));
    assert_eq!(store.count_runs(&accounts_job).await.unwrap(), 2);
    let elsewhere = count(None, Some("jama"));
    assert_eq!(store.count_runs(&elsewhere).await.unwrap(), 0);

    let last = store
        .last_success(TARGET, JobKind::AccountImport)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.id, first);
    assert_eq!(last.counts, json!({"read": 1}));
    assert_eq!(last.trigger, Trigger::Schedule);
    assert!(store
        .last_success("other", JobKind::AccountImport)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn accounts_are_filtered_and_paged() {
    let (_dir, store) = fresh().await;
    let mut records: Vec<AccountRecord> = (1..=5)
        .map(|i| account(&format!("{i}"), &format!("user{i}")))
        .collect();
    records[1].status = AccountStatus::Inactive;
    import_accounts(&store, 1, &records, ImportMode::Full, at(1)).await;
    sqlx::query("UPDATE accounts SET owner = 'emp-7' WHERE id = '3'")
        .execute(&store.write)
        .await
        .unwrap();

    let inactive = store
        .list_accounts(&AccountFilter {
            status: Some(AccountStatus::Inactive),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        inactive.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["2"]
    );
    let owned = store
        .list_accounts(&AccountFilter {
            owner: Some("emp-7".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        owned.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["3"]
    );
    let page = store
        .list_accounts(&AccountFilter {
            target: Some(TARGET.to_string()),
            after: Some((TARGET.to_string(), "2".to_string())),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["3", "4"]
    );
    let none = store
        .list_accounts(&AccountFilter {
            target: Some("other".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn run_level_audit_events_round_trip() {
    let (_dir, store) = fresh().await;
    let event = crate::model::AuditEvent {
        id: 0,
        at: at(5),
        actor: "cli:alice".to_string(),
        target: TARGET.to_string(),
        object: None,
        object_key: None,
        action: "deletions_allowed".to_string(),
        run_id: Some(7),
        details: json!({"exceeded": ["account"]}),
    };
    store.record_audit(&event).await.unwrap();
    store
        .record_audit(&crate::model::AuditEvent {
            target: "other".to_string(),
            ..event.clone()
        })
        .await
        .unwrap();
    let found = store.list_audit(Some(TARGET), 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].id > 0);
    assert_eq!(
        found[0],
        crate::model::AuditEvent {
            id: found[0].id,
            ..event
        }
    );
    assert_eq!(store.list_audit(None, 10).await.unwrap().len(), 2);
    assert_eq!(store.list_audit(None, 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_backup_is_a_private_usable_copy() {
    let (dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("1", "alice")], ImportMode::Full, at(1)).await;
    let copy = dir.path().join("copy.db");
    store.backup_to(&copy).await.unwrap();
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    // Never overwrites.
    assert!(store.backup_to(&copy).await.is_err());
    let restored = SqliteStore::open(
        &format!("sqlite://{}", copy.display()),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(accounts(&restored).await, accounts(&store).await);
}

#[tokio::test]
async fn stale_staged_rows_of_finished_runs_are_cleared() {
    let (_dir, store) = fresh().await;
    let run = store
        .start_run(&new_run(JobKind::AccountImport, at(1)))
        .await
        .unwrap();
    let snapshot = snap(run, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_accounts(&snapshot, &[account("1", "alice")])
        .await
        .unwrap();
    // The process dies; the run gets failed at the next start.
    store
        .fail_open_runs("interrupted", crate::clock::now())
        .await
        .unwrap();
    store
        .begin_snapshot(&snap(run + 100, ObjectKind::Account))
        .await
        .unwrap();
    let staged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM temp.staged_accounts")
        .fetch_one(&store.write)
        .await
        .unwrap();
    assert_eq!(staged, 0);
}

#[tokio::test]
async fn twenty_thousand_accounts_stage_and_apply() {
    let (_dir, store) = fresh().await;
    let records: Vec<AccountRecord> = (0..20_000)
        .map(|i| account(&format!("{i:06}"), &format!("user{i}")))
        .collect();
    let snapshot = snap(1, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    for page in records.chunks(1000) {
        store.stage_accounts(&snapshot, page).await.unwrap();
    }
    let diff = store
        .diff_snapshot(&snapshot, ImportMode::Full)
        .await
        .unwrap();
    assert_eq!(diff.counts.created, 20_000);
    let counts = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(1)))
        .await
        .unwrap();
    assert_eq!(counts.created, 20_000);

    // Unchanged again, minus the last 500: they are suspended.
    let snapshot = snap(2, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    for page in records[..19_500].chunks(1000) {
        store.stage_accounts(&snapshot, page).await.unwrap();
    }
    let counts = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(2)))
        .await
        .unwrap();
    assert_eq!(
        counts,
        ChangeCounts {
            unchanged: 19_500,
            suspended: 500,
            ..Default::default()
        }
    );
    let suspended = store
        .list_accounts(&AccountFilter {
            status: Some(AccountStatus::Suspended),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(suspended.len(), 500);
}

#[test]
fn the_pre_migration_backup_sits_next_to_the_store() {
    let path = super::pre_migration_backup_path(
        std::path::Path::new("/var/lib/idsync/idsync.db"),
        3,
        at(7),
    );
    assert_eq!(
        path,
        std::path::Path::new("/var/lib/idsync/idsync.db.schema-3.20260301T070000Z.bak")
    );
}

#[tokio::test]
async fn an_unchanged_record_is_staged_as_its_key_only_and_nothing_reaches_the_file() {
    let (_dir, store) = fresh().await;
    import_accounts(
        &store,
        1,
        &[account("1", "alice"), account("2", "bob")],
        ImportMode::Full,
        at(1),
    )
    .await;
    let mut bob = account("2", "bob");
    bob.email = Some("bob@new.example.com".to_string());
    let snapshot = snap(2, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_accounts(
            &snapshot,
            &[account("1", "alice"), bob, account("3", "carol")],
        )
        .await
        .unwrap();
    let staged: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT id, name, change FROM temp.staged_accounts WHERE run_id = 2 ORDER BY id",
    )
    .fetch_all(&store.write)
    .await
    .unwrap();
    assert_eq!(
        staged,
        vec![
            ("1".to_string(), None, "unchanged".to_string()),
            (
                "2".to_string(),
                Some("bob".to_string()),
                "updated".to_string()
            ),
            (
                "3".to_string(),
                Some("carol".to_string()),
                "created".to_string()
            ),
        ]
    );
    // The store file has no staging tables; its readers see no staged row.
    let in_file: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM main.sqlite_master WHERE name LIKE 'staged%' OR name = 'snapshots'",
    )
    .fetch_one(&store.read)
    .await
    .unwrap();
    assert_eq!(in_file, 0);
    let counts = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(2)))
        .await
        .unwrap();
    assert_eq!(
        (counts.unchanged, counts.updated, counts.created),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn staging_leaves_the_write_lock_free_for_other_writers() {
    let (dir, store) = fresh().await;
    let snapshot = snap(1, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    // Another process's writer, with no patience for a held lock.
    let url = format!("sqlite://{}", dir.path().join("idsync.db").display());
    let other = SqliteStore::open(&url, Duration::from_millis(50))
        .await
        .unwrap();
    let mut held = store.write.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO temp.staged_accounts (run_id, target, id, change) \
         VALUES (1, 'digicert', 'x', 'created')",
    )
    .execute(&mut *held)
    .await
    .unwrap();
    // Mid-staging transaction: the other process can still write the store.
    other
        .start_run(&new_run(JobKind::AccountImport, at(1)))
        .await
        .unwrap();
    held.rollback().await.unwrap();
}

#[tokio::test]
async fn a_snapshot_lost_with_the_write_connection_is_refused_not_applied() {
    let (_dir, store) = fresh().await;
    import_accounts(
        &store,
        1,
        &[account("1", "alice"), account("2", "bob")],
        ImportMode::Full,
        at(1),
    )
    .await;
    let snapshot = snap(2, ObjectKind::Account);
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_accounts(&snapshot, &[account("1", "alice"), account("2", "bob")])
        .await
        .unwrap();
    // The write connection is replaced (as after a failed write): its scratch tables go.
    let mut conn = store.write.acquire().await.unwrap();
    conn.close_on_drop();
    drop(conn);
    let err = store
        .stage_accounts(&snapshot, &[account("3", "carol")])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("lost when the store's write connection was reset"),
        "{err}"
    );
    let err = store
        .apply_snapshot(&snapshot, &options(ImportMode::Full, at(2)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("run the import again"), "{err}");
    // Nobody was suspended for lack of staged rows.
    assert!(accounts(&store)
        .await
        .iter()
        .all(|a| a.status == AccountStatus::Active));
}
