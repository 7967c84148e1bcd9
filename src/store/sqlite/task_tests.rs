//! Tests of the task queue of the SQLite store, each on a fresh file.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tempfile::TempDir;

use super::SqliteStore;
use crate::model::{
    AccountRecord, AccountStatus, AttemptOutcome, Attributes, EntitlementRecord, GrantRecord,
    GrantStatus, ImportMode, ObjectKind, Operation, Task, TaskEntitlement, TaskStatus,
};
use crate::store::{
    ApplyOptions, AttemptResult, Claim, GrantFilter, NewTask, SnapshotId, Store, StoreEffect,
    Submitted, TaskFilter, TaskGauge, TaskNext, TaskStateError,
};

const TARGET: &str = "digicert";
const LEASE: Duration = Duration::from_secs(60);

async fn open(dir: &TempDir) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("idsync.db").display());
    SqliteStore::open(&url, Duration::from_secs(10))
        .await
        .unwrap()
}

async fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    (dir, store)
}

/// Minute `m` of a fixed hour.
fn at(m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 10, m, 0).unwrap()
}

fn new_task(operation: Operation, account: &str, account_id: Option<&str>) -> NewTask {
    NewTask {
        target: TARGET.to_string(),
        operation,
        account: account.to_string(),
        account_id: account_id.map(str::to_string),
        entitlement: None,
        attributes: Attributes::new(),
        owner: Some("E100".to_string()),
        max_attempts: 5,
        actor: "cli:alice".to_string(),
        request_id: None,
        idempotency_key: None,
        depends_on: None,
        created_at: at(0),
    }
}

fn with_entitlement(mut task: NewTask, kind: &str, id: &str, name: &str) -> NewTask {
    task.entitlement = Some(TaskEntitlement {
        entitlement_type: kind.to_string(),
        id: id.to_string(),
        name: name.to_string(),
    });
    task
}

async fn submit(store: &SqliteStore, task: &NewTask) -> Task {
    match store.insert_task(task).await.unwrap() {
        Submitted::Created(task) => task,
        Submitted::Existing(task) => panic!("expected a new task, got {}", task.id),
    }
}

fn claim_at(now: DateTime<Utc>) -> Claim {
    Claim {
        target: Some(TARGET.to_string()),
        now,
        lease: LEASE,
        limit: 10,
    }
}

async fn claim_ids(store: &SqliteStore, now: DateTime<Utc>) -> Vec<i64> {
    store
        .claim_tasks(&claim_at(now))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

fn result(
    task: &Task,
    outcome: AttemptOutcome,
    next: TaskNext,
    now: DateTime<Utc>,
) -> AttemptResult {
    AttemptResult {
        task_id: task.id,
        attempt: task.attempts,
        outcome,
        error: match outcome {
            AttemptOutcome::Succeeded | AttemptOutcome::AlreadyDone => None,
            other => Some(format!("{other} error")),
        },
        finished_at: now,
        next,
    }
}

fn succeeded(effect: StoreEffect) -> TaskNext {
    TaskNext::Succeeded {
        account_id: None,
        effect,
    }
}

/// Claims exactly `task` and finishes it with `next`.
async fn run_once(
    store: &SqliteStore,
    task: &Task,
    outcome: AttemptOutcome,
    next: TaskNext,
) -> Task {
    let claimed = store.claim_tasks(&claim_at(at(1))).await.unwrap();
    let claimed = claimed
        .into_iter()
        .find(|t| t.id == task.id)
        .expect("task claimed");
    store
        .finish_attempt(&result(&claimed, outcome, next, at(2)))
        .await
        .unwrap()
}

async fn import_accounts(store: &SqliteStore, run_id: i64, records: &[AccountRecord]) {
    let snapshot = SnapshotId {
        run_id,
        target: TARGET.to_string(),
        object: ObjectKind::Account,
    };
    store.begin_snapshot(&snapshot).await.unwrap();
    store.stage_accounts(&snapshot, records).await.unwrap();
    store.apply_snapshot(&snapshot, &options()).await.unwrap();
}

async fn import_access(
    store: &SqliteStore,
    run_id: i64,
    entitlements: &[EntitlementRecord],
    grants: &[GrantRecord],
) {
    let snapshot = SnapshotId {
        run_id,
        target: TARGET.to_string(),
        object: ObjectKind::Entitlement,
    };
    store.begin_snapshot(&snapshot).await.unwrap();
    store
        .stage_entitlements(&snapshot, entitlements)
        .await
        .unwrap();
    store.apply_snapshot(&snapshot, &options()).await.unwrap();
    let snapshot = SnapshotId {
        object: ObjectKind::Grant,
        ..snapshot
    };
    store.begin_snapshot(&snapshot).await.unwrap();
    store.stage_grants(&snapshot, grants).await.unwrap();
    store.apply_snapshot(&snapshot, &options()).await.unwrap();
}

fn options() -> ApplyOptions {
    ApplyOptions {
        mode: ImportMode::Full,
        run_started_at: Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap(),
        actor: "scheduler".to_string(),
    }
}

fn account(id: &str, name: &str) -> AccountRecord {
    AccountRecord {
        id: id.to_string(),
        name: name.to_string(),
        display_name: None,
        email: Some(format!("{name}@example.com")),
        status: AccountStatus::Active,
        attributes: Attributes::new(),
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

async fn grants_of(store: &SqliteStore, account_id: &str) -> Vec<(String, GrantStatus)> {
    store
        .list_grants(&GrantFilter {
            target: TARGET.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|g| g.account_id == account_id)
        .map(|g| (g.entitlement_id, g.status))
        .collect()
}

async fn audit_actions(store: &SqliteStore) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(&store.read)
        .await
        .unwrap()
}

async fn attempt_rows(store: &SqliteStore, task_id: i64) -> Vec<(i64, Option<String>)> {
    sqlx::query_as("SELECT attempt, outcome FROM task_attempts WHERE task_id = ?1 ORDER BY attempt")
        .bind(task_id)
        .fetch_all(&store.read)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_task() {
    let (_dir, store) = fresh().await;
    let mut new = new_task(Operation::DisableAccount, "bob", Some("7"));
    new.idempotency_key = Some("req-1".to_string());
    let first = submit(&store, &new).await;
    assert_eq!(first.status, TaskStatus::Pending);
    assert_eq!(
        first.request_id.as_deref(),
        Some(first.id.to_string().as_str())
    );
    assert_eq!(first.next_attempt_at, Some(at(0)));
    assert_eq!(first.attempts, 0);
    assert!(!first.uncertain);
    match store.insert_task(&new).await.unwrap() {
        Submitted::Existing(task) => assert_eq!(task, first),
        Submitted::Created(task) => panic!("queued a duplicate {}", task.id),
    }
    let all = store.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(audit_actions(&store).await, vec!["task_submitted"]);
    // A caller's request id is kept.
    let mut other = new_task(Operation::EnableAccount, "bob", Some("7"));
    other.request_id = Some("abc".to_string());
    assert_eq!(
        submit(&store, &other).await.request_id.as_deref(),
        Some("abc")
    );
}

#[tokio::test]
async fn entitlement_and_attributes_round_trip() {
    let (_dir, store) = fresh().await;
    let mut new = with_entitlement(
        new_task(Operation::AddAccess, "bob", Some("7")),
        "role",
        "r1",
        "Admin",
    );
    new.attributes = serde_json::json!({"z": 1, "a": {"y": 2, "b": 3}})
        .as_object()
        .unwrap()
        .clone();
    let task = submit(&store, &new).await;
    let again = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(again, task);
    assert_eq!(task.entitlement.as_ref().unwrap().name, "Admin");
    assert_eq!(task.attributes, new.attributes);
    let stored: String = sqlx::query_scalar("SELECT attributes FROM tasks")
        .fetch_one(&store.read)
        .await
        .unwrap();
    assert_eq!(stored, r#"{"a":{"b":3,"y":2},"z":1}"#);
}

#[tokio::test]
async fn claim_respects_the_due_time() {
    let (_dir, store) = fresh().await;
    let mut new = new_task(Operation::DisableAccount, "bob", Some("7"));
    new.created_at = at(5);
    let task = submit(&store, &new).await;
    assert!(claim_ids(&store, at(4)).await.is_empty());
    let claimed = store.claim_tasks(&claim_at(at(5))).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let claimed = &claimed[0];
    assert_eq!(claimed.id, task.id);
    assert_eq!(claimed.status, TaskStatus::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.first_attempt_at, Some(at(5)));
    assert_eq!(attempt_rows(&store, task.id).await, vec![(1, None)]);
    // A retry is due when it says.
    let after = store
        .finish_attempt(&result(
            claimed,
            AttemptOutcome::Transient,
            TaskNext::Retry { at: at(9) },
            at(6),
        ))
        .await
        .unwrap();
    assert_eq!(after.status, TaskStatus::Pending);
    assert_eq!(after.next_attempt_at, Some(at(9)));
    assert_eq!(after.last_error.as_deref(), Some("transient error"));
    assert!(claim_ids(&store, at(8)).await.is_empty());
    let again = store.claim_tasks(&claim_at(at(9))).await.unwrap();
    assert_eq!(again[0].attempts, 2);
    assert_eq!(
        again[0].first_attempt_at,
        Some(at(5)),
        "kept from the first attempt"
    );
    // Another target's claim does not see it.
    let mut other = claim_at(at(30));
    other.target = Some("jama".to_string());
    assert!(store.claim_tasks(&other).await.unwrap().is_empty());
}

#[tokio::test]
async fn tasks_of_one_account_run_one_at_a_time_in_order() {
    let (_dir, store) = fresh().await;
    let disable = submit(
        &store,
        &new_task(Operation::DisableAccount, "bob", Some("7")),
    )
    .await;
    let enable = submit(
        &store,
        &new_task(Operation::EnableAccount, "bob", Some("7")),
    )
    .await;
    let other = submit(
        &store,
        &new_task(Operation::DisableAccount, "carol", Some("8")),
    )
    .await;
    // By name, when no id is known.
    let by_name_1 = submit(&store, &new_task(Operation::CreateAccount, "dave", None)).await;
    let by_name_2 = submit(&store, &new_task(Operation::UpdateAccount, "dave", None)).await;

    assert_eq!(
        claim_ids(&store, at(1)).await,
        vec![disable.id, other.id, by_name_1.id]
    );
    // The running disable still blocks the enable.
    assert!(claim_ids(&store, at(1)).await.is_empty());
    let disable = store.get_task(disable.id).await.unwrap().unwrap();
    store
        .finish_attempt(&result(
            &disable,
            AttemptOutcome::Transient,
            TaskNext::Retry { at: at(1) },
            at(1),
        ))
        .await
        .unwrap();
    // Pending again: still the head, the enable still waits.
    assert_eq!(claim_ids(&store, at(1)).await, vec![disable.id]);
    let disable = store.get_task(disable.id).await.unwrap().unwrap();
    store
        .finish_attempt(&result(
            &disable,
            AttemptOutcome::Succeeded,
            succeeded(StoreEffect::None),
            at(2),
        ))
        .await
        .unwrap();
    assert_eq!(claim_ids(&store, at(2)).await, vec![enable.id]);
    let first = store.get_task(by_name_1.id).await.unwrap().unwrap();
    store
        .finish_attempt(&result(
            &first,
            AttemptOutcome::Permanent,
            TaskNext::Failed,
            at(2),
        ))
        .await
        .unwrap();
    assert_eq!(claim_ids(&store, at(2)).await, vec![by_name_2.id]);
}

#[tokio::test]
async fn a_dependent_waits_for_its_create_and_takes_its_account_id() {
    let (_dir, store) = fresh().await;
    let create = submit(&store, &new_task(Operation::CreateAccount, "bob", None)).await;
    let mut grant = with_entitlement(
        new_task(Operation::AddAccess, "bob", None),
        "role",
        "r1",
        "Admin",
    );
    grant.depends_on = Some(create.id);
    let grant = submit(&store, &grant).await;
    let create = run_once(
        &store,
        &create,
        AttemptOutcome::Transient,
        TaskNext::Retry { at: at(1) },
    )
    .await;
    assert_eq!(
        claim_ids(&store, at(3)).await,
        vec![create.id],
        "the dependent waits"
    );
    let create = store.get_task(create.id).await.unwrap().unwrap();
    store
        .finish_attempt(&result(
            &create,
            AttemptOutcome::Succeeded,
            TaskNext::Succeeded {
                account_id: Some("42".to_string()),
                effect: StoreEffect::AccountCreated {
                    account_id: "42".to_string(),
                    name: "bob".to_string(),
                    display_name: None,
                    email: None,
                },
            },
            at(3),
        ))
        .await
        .unwrap();
    let claimed = store.claim_tasks(&claim_at(at(4))).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, grant.id);
    assert_eq!(claimed[0].account_id.as_deref(), Some("42"));
    assert_eq!(store.fail_orphaned_dependents(at(4)).await.unwrap(), 0);
}

#[tokio::test]
async fn a_dependent_of_a_failed_or_cancelled_create_fails() {
    let (_dir, store) = fresh().await;
    let create = submit(&store, &new_task(Operation::CreateAccount, "bob", None)).await;
    let mut dependent = new_task(Operation::DisableAccount, "bob", None);
    dependent.depends_on = Some(create.id);
    let dependent = submit(&store, &dependent).await;
    let cancelled = submit(&store, &new_task(Operation::CreateAccount, "carol", None)).await;
    let mut second = new_task(Operation::DisableAccount, "carol", None);
    second.depends_on = Some(cancelled.id);
    let second = submit(&store, &second).await;

    assert_eq!(store.fail_orphaned_dependents(at(1)).await.unwrap(), 0);
    store
        .cancel_task(cancelled.id, "cli:alice", at(1))
        .await
        .unwrap()
        .unwrap();
    run_once(&store, &create, AttemptOutcome::Permanent, TaskNext::Failed).await;
    assert_eq!(store.fail_orphaned_dependents(at(3)).await.unwrap(), 2);
    let dependent = store.get_task(dependent.id).await.unwrap().unwrap();
    assert_eq!(dependent.status, TaskStatus::Failed);
    assert_eq!(
        dependent.last_error,
        Some(format!("depends on task {}, which failed", create.id))
    );
    let second = store.get_task(second.id).await.unwrap().unwrap();
    assert_eq!(
        second.last_error,
        Some(format!("depends on task {}, which cancelled", cancelled.id))
    );
    assert!(claim_ids(&store, at(5)).await.is_empty());
}

#[tokio::test]
async fn a_renewed_lease_keeps_the_task_running_past_its_first_expiry() {
    let (_dir, store) = fresh().await;
    let task = submit(
        &store,
        &new_task(Operation::DisableAccount, "bob", Some("7")),
    )
    .await;
    assert_eq!(store.next_lease_expiry().await.unwrap(), None);
    let claimed = store.claim_tasks(&claim_at(at(1))).await.unwrap().remove(0);
    // The lease lasts a minute from 10:01.
    assert_eq!(store.next_lease_expiry().await.unwrap(), Some(at(2)));
    assert!(store
        .renew_task_lease(task.id, claimed.attempts, at(5))
        .await
        .unwrap());
    assert_eq!(store.next_lease_expiry().await.unwrap(), Some(at(5)));
    assert_eq!(store.release_expired_leases(at(4)).await.unwrap(), 0);
    let running = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(running.status, TaskStatus::Running);
}

#[tokio::test]
async fn a_lease_taken_back_cannot_be_renewed_by_its_old_worker() {
    let (_dir, store) = fresh().await;
    let task = submit(
        &store,
        &new_task(Operation::DisableAccount, "bob", Some("7")),
    )
    .await;
    let first = store.claim_tasks(&claim_at(at(1))).await.unwrap().remove(0);
    assert_eq!(store.release_expired_leases(at(3)).await.unwrap(), 1);
    // Back in the queue: the old worker's heartbeat is refused.
    assert!(!store
        .renew_task_lease(task.id, first.attempts, at(9))
        .await
        .unwrap());
    // Another worker claims it: still refused, the attempt number moved on.
    let second = store.claim_tasks(&claim_at(at(3))).await.unwrap().remove(0);
    assert!(!store
        .renew_task_lease(task.id, first.attempts, at(9))
        .await
        .unwrap());
    assert!(store
        .renew_task_lease(task.id, second.attempts, at(9))
        .await
        .unwrap());
    assert_eq!(store.next_lease_expiry().await.unwrap(), Some(at(9)));
}

#[tokio::test]
async fn an_expired_lease_returns_the_task_as_uncertain() {
    let (_dir, store) = fresh().await;
    let task = submit(
        &store,
        &new_task(Operation::DisableAccount, "bob", Some("7")),
    )
    .await;
    let first = store.claim_tasks(&claim_at(at(1))).await.unwrap().remove(0);
    assert_eq!(store.release_expired_leases(at(1)).await.unwrap(), 0);
    // The lease lasts until 10:02 included.
    assert_eq!(store.release_expired_leases(at(2)).await.unwrap(), 0);
    assert_eq!(store.release_expired_leases(at(3)).await.unwrap(), 1);
    let released = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(released.status, TaskStatus::Pending);
    assert!(released.uncertain);
    assert_eq!(released.next_attempt_at, Some(at(3)));
    assert_eq!(
        attempt_rows(&store, task.id).await,
        vec![(1, Some("unknown".to_string()))]
    );
    assert!(audit_actions(&store)
        .await
        .contains(&"lease_expired".to_string()));
    // Claimable again; the new attempt still knows the outcome is uncertain.
    let second = store.claim_tasks(&claim_at(at(3))).await.unwrap().remove(0);
    assert_eq!(second.attempts, 2);
    assert!(second.uncertain);
    // The first worker's late finish changes nothing.
    let stale = store
        .finish_attempt(&result(
            &first,
            AttemptOutcome::Succeeded,
            succeeded(StoreEffect::AccountStatus(AccountStatus::Inactive)),
            at(4),
        ))
        .await
        .unwrap();
    assert_eq!(stale.status, TaskStatus::Running);
    assert_eq!(stale.attempts, 2);
    // A transient failure keeps the uncertainty; success clears it.
    let retried = store
        .finish_attempt(&result(
            &second,
            AttemptOutcome::Transient,
            TaskNext::Retry { at: at(4) },
            at(4),
        ))
        .await
        .unwrap();
    assert!(retried.uncertain);
    let third = store.claim_tasks(&claim_at(at(4))).await.unwrap().remove(0);
    let done = store
        .finish_attempt(&result(
            &third,
            AttemptOutcome::AlreadyDone,
            succeeded(StoreEffect::None),
            at(5),
        ))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert!(!done.uncertain);
    assert_eq!(attempt_rows(&store, task.id).await.len(), 3);
}

#[tokio::test]
async fn a_requeue_does_not_count_the_attempt() {
    let (_dir, store) = fresh().await;
    let task = submit(
        &store,
        &new_task(Operation::DisableAccount, "bob", Some("7")),
    )
    .await;
    let after = run_once(
        &store,
        &task,
        AttemptOutcome::Auth,
        TaskNext::Requeue { at: at(5) },
    )
    .await;
    assert_eq!(after.status, TaskStatus::Pending);
    assert_eq!(after.attempts, 0);
    assert_eq!(after.next_attempt_at, Some(at(5)));
    let again = store.claim_tasks(&claim_at(at(5))).await.unwrap().remove(0);
    assert_eq!(again.attempts, 1);
    let rows = attempt_rows(&store, task.id).await;
    assert_eq!(rows, vec![(1, Some("auth".to_string())), (2, None)]);
    let actions = audit_actions(&store).await;
    assert!(actions.contains(&"task_attempt".to_string()), "{actions:?}");
}

#[tokio::test]
async fn a_created_account_is_active_locally() {
    let (_dir, store) = fresh().await;
    let task = submit(&store, &new_task(Operation::CreateAccount, "bob", None)).await;
    let done = run_once(
        &store,
        &task,
        AttemptOutcome::Succeeded,
        TaskNext::Succeeded {
            account_id: Some("42".to_string()),
            effect: StoreEffect::AccountCreated {
                account_id: "42".to_string(),
                name: "bob".to_string(),
                display_name: Some("Bob B".to_string()),
                email: Some("bob@example.com".to_string()),
            },
        },
    )
    .await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.account_id.as_deref(), Some("42"));
    let account = store.get_account(TARGET, "42").await.unwrap().unwrap();
    assert_eq!(account.status, AccountStatus::Active);
    assert_eq!(account.status_reason, Some(format!("task:{}", task.id)));
    assert_eq!(account.owner.as_deref(), Some("E100"));
    assert_eq!(account.display_name.as_deref(), Some("Bob B"));
    assert!(account.attributes.is_empty());
    let found = store.find_accounts_by_name(TARGET, "bob").await.unwrap();
    assert_eq!(found.len(), 1);
    let (actor, object, action): (String, Option<String>, String) =
        sqlx::query_as("SELECT actor, object, action FROM audit_events WHERE object = 'account'")
            .fetch_one(&store.read)
            .await
            .unwrap();
    assert_eq!(
        (actor.as_str(), object.as_deref(), action.as_str()),
        ("cli:alice", Some("account"), "created")
    );
    let changed: Option<String> =
        sqlx::query_scalar("SELECT task_changed_at FROM accounts WHERE id = '42'")
            .fetch_one(&store.read)
            .await
            .unwrap();
    assert!(changed.is_some());
    let actions = audit_actions(&store).await;
    assert_eq!(actions.last().map(String::as_str), Some("task_succeeded"));
}

#[tokio::test]
async fn status_effects_disable_and_remove_accounts() {
    let (_dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("7", "bob"), account("8", "carol")]).await;
    import_access(
        &store,
        2,
        &[
            entitlement("role", "r1", "Admin"),
            entitlement("role", "r2", "User"),
        ],
        &[
            grant("8", "role", "r1"),
            grant("8", "role", "r2"),
            grant("7", "role", "r1"),
        ],
    )
    .await;

    let disable = submit(
        &store,
        &new_task(Operation::DisableAccount, "bob", Some("7")),
    )
    .await;
    run_once(
        &store,
        &disable,
        AttemptOutcome::Succeeded,
        succeeded(StoreEffect::AccountStatus(AccountStatus::Inactive)),
    )
    .await;
    let bob = store.get_account(TARGET, "7").await.unwrap().unwrap();
    assert_eq!(bob.status, AccountStatus::Inactive);
    assert_eq!(bob.status_reason, Some(format!("task:{}", disable.id)));
    assert_eq!(
        grants_of(&store, "7").await,
        vec![("r1".to_string(), GrantStatus::Active)]
    );

    let remove = submit(
        &store,
        &new_task(Operation::RemoveAccount, "carol", Some("8")),
    )
    .await;
    run_once(
        &store,
        &remove,
        AttemptOutcome::Succeeded,
        succeeded(StoreEffect::AccountStatus(AccountStatus::Suspended)),
    )
    .await;
    let carol = store.get_account(TARGET, "8").await.unwrap().unwrap();
    assert_eq!(carol.status, AccountStatus::Suspended);
    assert_eq!(carol.status_reason, Some(format!("task:{}", remove.id)));
    assert_eq!(
        grants_of(&store, "8").await,
        vec![
            ("r1".to_string(), GrantStatus::Removed),
            ("r2".to_string(), GrantStatus::Removed)
        ]
    );
    assert!(store
        .find_accounts_by_name(TARGET, "carol")
        .await
        .unwrap()
        .is_empty());

    let update = submit(
        &store,
        &new_task(Operation::UpdateAccount, "bob", Some("7")),
    )
    .await;
    run_once(
        &store,
        &update,
        AttemptOutcome::Succeeded,
        succeeded(StoreEffect::AccountUpdated {
            display_name: Some("Robert".to_string()),
            email: None,
        }),
    )
    .await;
    let bob = store.get_account(TARGET, "7").await.unwrap().unwrap();
    assert_eq!(bob.display_name.as_deref(), Some("Robert"));
    assert_eq!(bob.email.as_deref(), Some("bob@example.com"));
}

#[tokio::test]
async fn grant_effects_add_remove_and_move() {
    let (_dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("7", "bob")]).await;
    import_access(
        &store,
        2,
        &[entitlement("container", "c1", "Sales")],
        &[grant("7", "container", "c1")],
    )
    .await;

    // A role the store has never seen: created along with the grant.
    let add = with_entitlement(
        new_task(Operation::AddAccess, "bob", Some("7")),
        "role",
        "r9",
        "Auditor",
    );
    let add = submit(&store, &add).await;
    run_once(
        &store,
        &add,
        AttemptOutcome::Succeeded,
        succeeded(StoreEffect::GrantActive),
    )
    .await;
    let roles = store
        .find_entitlements(TARGET, "ROLE", "auditor")
        .await
        .unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].attributes["discovered_from"], "task");
    assert!(grants_of(&store, "7")
        .await
        .contains(&("r9".to_string(), GrantStatus::Active)));

    let remove = with_entitlement(
        new_task(Operation::RemoveAccess, "bob", Some("7")),
        "role",
        "r9",
        "Auditor",
    );
    let remove = submit(&store, &remove).await;
    run_once(
        &store,
        &remove,
        AttemptOutcome::Succeeded,
        succeeded(StoreEffect::GrantRemoved),
    )
    .await;
    assert!(grants_of(&store, "7")
        .await
        .contains(&("r9".to_string(), GrantStatus::Removed)));
    // Removing a grant the store does not have is no error.
    let absent = with_entitlement(
        new_task(Operation::RemoveAccess, "bob", Some("7")),
        "role",
        "r5",
        "Nobody",
    );
    let absent = submit(&store, &absent).await;
    let done = run_once(
        &store,
        &absent,
        AttemptOutcome::AlreadyDone,
        succeeded(StoreEffect::GrantRemoved),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Succeeded);

    let moved = with_entitlement(
        new_task(Operation::AddAccess, "bob", Some("7")),
        "container",
        "c2",
        "Support",
    );
    let moved = submit(&store, &moved).await;
    run_once(
        &store,
        &moved,
        AttemptOutcome::Succeeded,
        succeeded(StoreEffect::GrantMoved),
    )
    .await;
    let grants = grants_of(&store, "7").await;
    assert!(
        grants.contains(&("c1".to_string(), GrantStatus::Removed)),
        "{grants:?}"
    );
    assert!(
        grants.contains(&("c2".to_string(), GrantStatus::Active)),
        "{grants:?}"
    );
    assert!(
        grants.contains(&("r9".to_string(), GrantStatus::Removed)),
        "{grants:?}"
    );
}

#[tokio::test]
async fn only_pending_tasks_can_be_cancelled() {
    let (_dir, store) = fresh().await;
    let pending = submit(
        &store,
        &new_task(Operation::DisableAccount, "bob", Some("7")),
    )
    .await;
    let running = submit(
        &store,
        &new_task(Operation::DisableAccount, "carol", Some("8")),
    )
    .await;
    let cancelled = store
        .cancel_task(pending.id, "token:ops", at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(claim_ids(&store, at(1)).await, vec![running.id]);
    match store
        .cancel_task(running.id, "token:ops", at(1))
        .await
        .unwrap()
    {
        Err(TaskStateError::WrongState { id, status, what }) => {
            assert_eq!(id, running.id);
            assert_eq!(status, TaskStatus::Running);
            assert_eq!(what, "only pending tasks can be cancelled");
        }
        other => panic!("expected WrongState, got {other:?}"),
    }
    assert!(matches!(
        store
            .cancel_task(pending.id, "token:ops", at(1))
            .await
            .unwrap(),
        Err(TaskStateError::WrongState {
            status: TaskStatus::Cancelled,
            ..
        })
    ));
    assert_eq!(
        store.cancel_task(999, "token:ops", at(1)).await.unwrap(),
        Err(TaskStateError::NotFound(999))
    );
    let actor: String =
        sqlx::query_scalar("SELECT actor FROM audit_events WHERE action = 'task_cancelled'")
            .fetch_one(&store.read)
            .await
            .unwrap();
    assert_eq!(actor, "token:ops");
}

#[tokio::test]
async fn retry_resets_the_attempts_of_a_failed_task() {
    let (_dir, store) = fresh().await;
    let task = submit(
        &store,
        &new_task(Operation::DisableAccount, "bob", Some("7")),
    )
    .await;
    run_once(
        &store,
        &task,
        AttemptOutcome::Transient,
        TaskNext::Retry { at: at(1) },
    )
    .await;
    let failed = run_once(&store, &task, AttemptOutcome::Permanent, TaskNext::Failed).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.attempts, 2);
    assert!(matches!(
        store.retry_task(12345, "cli:bob", at(3)).await.unwrap(),
        Err(TaskStateError::NotFound(12345))
    ));
    let retried = store
        .retry_task(task.id, "cli:bob", at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.status, TaskStatus::Pending);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.first_attempt_at, None);
    assert_eq!(retried.next_attempt_at, Some(at(3)));
    assert_eq!(retried.last_error.as_deref(), Some("permanent error"));
    assert!(matches!(
        store.retry_task(task.id, "cli:bob", at(3)).await.unwrap(),
        Err(TaskStateError::WrongState {
            status: TaskStatus::Pending,
            ..
        })
    ));
    let again = store.claim_tasks(&claim_at(at(3))).await.unwrap().remove(0);
    assert_eq!(again.attempts, 1);
    assert_eq!(attempt_rows(&store, task.id).await.len(), 3);
}

#[tokio::test]
async fn gauges_oldest_pending_and_listing() {
    let (_dir, store) = fresh().await;
    let mut first = new_task(Operation::DisableAccount, "bob", Some("7"));
    first.created_at = at(3);
    let first = submit(&store, &first).await;
    let mut second = new_task(Operation::DisableAccount, "carol", Some("8"));
    second.created_at = at(4);
    submit(&store, &second).await;
    let mut jama = new_task(Operation::DisableAccount, "dave", Some("9"));
    jama.target = "jama".to_string();
    jama.created_at = at(1);
    submit(&store, &jama).await;
    store
        .cancel_task(first.id, "cli:x", at(5))
        .await
        .unwrap()
        .unwrap();

    let gauges = store.task_gauges().await.unwrap();
    let gauge = |target: &str, status, count| TaskGauge {
        target: target.to_string(),
        status,
        count,
    };
    assert_eq!(
        gauges,
        vec![
            gauge(TARGET, TaskStatus::Cancelled, 1),
            gauge(TARGET, TaskStatus::Pending, 1),
            gauge("jama", TaskStatus::Pending, 1),
        ]
    );
    assert_eq!(
        store.oldest_pending().await.unwrap(),
        vec![(TARGET.to_string(), at(4)), ("jama".to_string(), at(1))]
    );
    let pending = store
        .list_tasks(&TaskFilter {
            target: Some(TARGET.to_string()),
            status: Some(TaskStatus::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].account, "carol");
    let paged = store
        .list_tasks(&TaskFilter {
            after_id: Some(first.id),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(paged.len(), 1);
    assert_eq!(paged[0].id, first.id + 1);
    // Counting follows the target and status, and ignores the cursor and the limit.
    let store = &store;
    let count = |target: Option<&str>, status| {
        let filter = TaskFilter {
            target: target.map(str::to_string),
            status,
            after_id: Some(first.id),
            limit: 1,
        };
        async move { store.count_tasks(&filter).await.unwrap() }
    };
    assert_eq!(count(None, None).await, 3);
    assert_eq!(count(Some(TARGET), None).await, 2);
    assert_eq!(count(Some(TARGET), Some(TaskStatus::Pending)).await, 1);
    assert_eq!(count(Some("jama"), Some(TaskStatus::Cancelled)).await, 0);
}

#[tokio::test]
async fn submission_lookups() {
    let (_dir, store) = fresh().await;
    import_accounts(&store, 1, &[account("7", "bob"), account("8", "carol")]).await;
    import_access(
        &store,
        2,
        &[
            entitlement("Role", "r1", "Admin"),
            entitlement("role", "Admin", "Other"),
            entitlement("role", "r2", "USER"),
            entitlement("role", "r3", "user"),
        ],
        &[],
    )
    .await;
    assert_eq!(
        store.find_accounts_by_name(TARGET, "bob").await.unwrap()[0].id,
        "7"
    );
    assert!(store
        .find_accounts_by_name(TARGET, "Bob")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.get_account(TARGET, "8").await.unwrap().unwrap().name,
        "carol"
    );
    assert!(store.get_account(TARGET, "9").await.unwrap().is_none());
    // An id match wins over a name match.
    let by_id = store
        .find_entitlements(TARGET, "role", "Admin")
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].name, "Other");
    let by_name = store
        .find_entitlements(TARGET, "ROLE", "admin")
        .await
        .unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].id, "r1");
    assert_eq!(
        store
            .find_entitlements(TARGET, "role", "User")
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(store
        .find_entitlements(TARGET, "group", "r1")
        .await
        .unwrap()
        .is_empty());

    assert!(store
        .unfinished_create(TARGET, "dave")
        .await
        .unwrap()
        .is_none());
    let create = submit(&store, &new_task(Operation::CreateAccount, "dave", None)).await;
    assert_eq!(
        store
            .unfinished_create(TARGET, "dave")
            .await
            .unwrap()
            .map(|t| t.id),
        Some(create.id)
    );
    run_once(&store, &create, AttemptOutcome::Permanent, TaskNext::Failed).await;
    assert!(store
        .unfinished_create(TARGET, "dave")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_never_lease_a_task_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir).await;
    let second = open(&dir).await;
    for n in 0..60 {
        let name = format!("user{n}");
        let id = n.to_string();
        submit(
            &first,
            &new_task(Operation::DisableAccount, &name, Some(&id)),
        )
        .await;
    }
    let worker = |store: SqliteStore| {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let mut claim = claim_at(at(1));
                claim.limit = 3;
                let claimed = store.claim_tasks(&claim).await.unwrap();
                if claimed.is_empty() {
                    return seen;
                }
                seen.extend(claimed.into_iter().map(|t| t.id));
                tokio::task::yield_now().await;
            }
        })
    };
    let a = worker(first.clone());
    let b = worker(second.clone());
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let all: Vec<i64> = a.iter().chain(b.iter()).copied().collect();
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 60, "a: {}, b: {}", a.len(), b.len());
    assert_eq!(unique.len(), 60);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM task_attempts")
        .fetch_one(&first.read)
        .await
        .unwrap();
    assert_eq!(rows, 60);
}

#[tokio::test]
async fn claim_stays_cheap_with_a_deep_queue() {
    let (_dir, store) = fresh().await;
    // 10,000 queued tasks over 100 accounts, plus 2,000 finished ones.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000) \
         INSERT INTO tasks (target, operation, account, account_id, status, max_attempts, \
            next_attempt_at, actor, created_at, updated_at) \
         SELECT 'digicert', 'disable_account', 'user' || (i % 100), CAST(i % 100 AS TEXT), \
            CASE WHEN i <= 2000 THEN 'succeeded' ELSE 'pending' END, 5, \
            '2026-03-01T10:00:00.000Z', 'scheduler', '2026-03-01T10:00:00.000Z', \
            '2026-03-01T10:00:00.000Z' FROM n",
    )
    .execute(&store.write)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&store.write).await.unwrap();

    let plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", super::tasks::CLAIMABLE))
            .bind("2026-03-01T10:01:00.000Z")
            .fetch_all(&store.read)
            .await
            .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
    assert!(
        plan.iter()
            .any(|step| step.contains("tasks_unfinished_by_account")),
        "{plan:#?}"
    );
    assert!(
        !plan.iter().any(|step| step.starts_with("SCAN t2")),
        "{plan:#?}"
    );

    let started = std::time::Instant::now();
    let mut claim = claim_at(at(1));
    claim.limit = 200;
    let claimed = store.claim_tasks(&claim).await.unwrap();
    let took = started.elapsed();
    assert_eq!(claimed.len(), 100, "one head per account");
    let mut accounts: Vec<_> = claimed.iter().map(|t| t.account_id.clone()).collect();
    accounts.sort();
    accounts.dedup();
    assert_eq!(accounts.len(), 100);
    assert!(took < Duration::from_secs(2), "claim took {took:?}");
}

#[tokio::test]
async fn a_store_of_schema_1_gains_the_task_columns() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // Back to schema 1, with a task queued by the previous binary.
    for sql in [
        "DROP INDEX tasks_unfinished_by_account",
        "ALTER TABLE tasks DROP COLUMN uncertain",
        "ALTER TABLE tasks DROP COLUMN first_attempt_at",
        "ALTER TABLE tasks DROP COLUMN entitlement_name",
        "DELETE FROM _sqlx_migrations WHERE version >= 2",
        "INSERT INTO tasks (target, operation, account, account_id, entitlement_type, \
            entitlement_id, status, max_attempts, next_attempt_at, actor, created_at, \
            updated_at) \
         VALUES ('digicert', 'add_access', 'bob', '7', 'role', 'r1', 'pending', 5, \
            '2026-03-01T10:00:00.000Z', 'scheduler', '2026-03-01T10:00:00.000Z', \
            '2026-03-01T10:00:00.000Z')",
    ] {
        sqlx::query(sql).execute(&store.write).await.unwrap();
    }
    store.close().await;
    let store = open(&dir).await;
    let task = store.get_task(1).await.unwrap().unwrap();
    assert!(!task.uncertain);
    assert_eq!(task.first_attempt_at, None);
    let entitlement = task.entitlement.unwrap();
    assert_eq!(
        (entitlement.id.as_str(), entitlement.name.as_str()),
        ("r1", "r1")
    );
    assert_eq!(claim_ids(&store, at(1)).await, vec![1]);
    let backups = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".schema-1.")
        })
        .count();
    assert_eq!(backups, 1);
}

#[tokio::test]
async fn one_claim_leases_a_set_and_opens_one_attempt_each() {
    let (_dir, store) = fresh().await;
    let a = submit(&store, &new_task(Operation::DisableAccount, "a", Some("1"))).await;
    let b = submit(&store, &new_task(Operation::DisableAccount, "b", Some("2"))).await;
    // Second task of account 1: not claimable while `a` is unfinished.
    let a2 = submit(&store, &new_task(Operation::EnableAccount, "a", Some("1"))).await;
    let claimed = store.claim_tasks(&claim_at(at(1))).await.unwrap();
    let ids: Vec<i64> = claimed.iter().map(|t| t.id).collect();
    assert_eq!(ids, [a.id, b.id]);
    for task in &claimed {
        assert_eq!((task.status, task.attempts), (TaskStatus::Running, 1));
        assert_eq!(task.first_attempt_at, Some(at(1)));
        assert_eq!(attempt_rows(&store, task.id).await, [(1, None)]);
    }
    assert!(attempt_rows(&store, a2.id).await.is_empty());
    assert!(
        claim_ids(&store, at(1)).await.is_empty(),
        "nothing leased twice"
    );
}

#[tokio::test]
async fn a_batch_of_finishes_applies_each_and_a_stale_one_changes_nothing() {
    let (_dir, store) = fresh().await;
    let create = submit(&store, &new_task(Operation::CreateAccount, "jane", None)).await;
    let retry = submit(&store, &new_task(Operation::DisableAccount, "b", Some("2"))).await;
    let stale = submit(&store, &new_task(Operation::DisableAccount, "c", Some("3"))).await;
    let claimed = store.claim_tasks(&claim_at(at(1))).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let mut stale_result = result(
        &claimed[2],
        AttemptOutcome::Succeeded,
        succeeded(StoreEffect::None),
        at(2),
    );
    stale_result.attempt = 7; // not the attempt the task is running
    let created = StoreEffect::AccountCreated {
        account_id: "55".into(),
        name: "jane".into(),
        display_name: None,
        email: Some("jane@example.com".into()),
    };
    let results = [
        result(
            &claimed[0],
            AttemptOutcome::Succeeded,
            TaskNext::Succeeded {
                account_id: Some("55".into()),
                effect: created,
            },
            at(2),
        ),
        stale_result,
        result(
            &claimed[1],
            AttemptOutcome::Transient,
            TaskNext::Retry { at: at(5) },
            at(2),
        ),
    ];
    let finished = store.finish_attempts(&results).await.unwrap();
    let finished: Vec<Task> = finished.into_iter().map(Result::unwrap).collect();
    assert_eq!(finished[0].status, TaskStatus::Succeeded);
    assert_eq!(finished[1].status, TaskStatus::Running, "stale: unchanged");
    assert_eq!(finished[2].status, TaskStatus::Pending);
    assert_eq!(
        store
            .get_task(create.id)
            .await
            .unwrap()
            .unwrap()
            .account_id
            .as_deref(),
        Some("55")
    );
    assert!(store.get_account(TARGET, "55").await.unwrap().is_some());
    assert_eq!(
        store
            .get_task(retry.id)
            .await
            .unwrap()
            .unwrap()
            .next_attempt_at,
        Some(at(5))
    );
    assert_eq!(attempt_rows(&store, stale.id).await, [(1, None)]);
    let actions = audit_actions(&store).await;
    assert!(
        actions.contains(&"task_attempt_stale".to_string()),
        "{actions:?}"
    );
    assert_eq!(actions.iter().filter(|a| *a == "task_succeeded").count(), 1);
    assert_eq!(actions.iter().filter(|a| *a == "task_attempt").count(), 2);
    assert!(store.finish_attempts(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_finish_that_fails_inside_a_batch_is_undone_alone() {
    let (_dir, store) = fresh().await;
    let first = submit(&store, &new_task(Operation::DisableAccount, "a", Some("1"))).await;
    // No account id: its `AccountStatus` effect cannot be applied.
    let broken = submit(&store, &new_task(Operation::DisableAccount, "b", None)).await;
    let last = submit(&store, &new_task(Operation::DisableAccount, "c", Some("3"))).await;
    let claimed = store.claim_tasks(&claim_at(at(1))).await.unwrap();
    let status = || succeeded(StoreEffect::AccountStatus(AccountStatus::Inactive));
    let events_before = audit_actions(&store).await.len();
    let finished = store
        .finish_attempts(&[
            result(&claimed[0], AttemptOutcome::Succeeded, status(), at(2)),
            result(&claimed[1], AttemptOutcome::Succeeded, status(), at(2)),
            result(&claimed[2], AttemptOutcome::Succeeded, status(), at(2)),
        ])
        .await
        .unwrap();
    assert!(finished[0].is_ok() && finished[2].is_ok(), "{finished:?}");
    let err = finished[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains(&format!("task {} has no account id", broken.id)),
        "{err}"
    );
    for id in [first.id, last.id] {
        assert_eq!(
            store.get_task(id).await.unwrap().unwrap().status,
            TaskStatus::Succeeded
        );
    }
    // The broken one is exactly as a lost finish leaves it: running, its attempt open, no
    // audit event of its own; its lease returns it as uncertain.
    let left = store.get_task(broken.id).await.unwrap().unwrap();
    assert_eq!(left.status, TaskStatus::Running);
    assert_eq!(attempt_rows(&store, broken.id).await, [(1, None)]);
    let events = audit_actions(&store).await;
    assert_eq!(events.len() - events_before, 4, "{events:?}");
    assert_eq!(store.release_expired_leases(at(5)).await.unwrap(), 1);
    let back = store.get_task(broken.id).await.unwrap().unwrap();
    assert_eq!((back.status, back.uncertain), (TaskStatus::Pending, true));
}

#[tokio::test]
async fn a_batch_whose_every_finish_fails_records_nothing() {
    let (_dir, store) = fresh().await;
    submit(&store, &new_task(Operation::DisableAccount, "a", Some("1"))).await;
    submit(&store, &new_task(Operation::DisableAccount, "b", Some("2"))).await;
    let claimed = store.claim_tasks(&claim_at(at(1))).await.unwrap();
    let events_before = audit_actions(&store).await.len();
    // Every audit insert fails: each finish of the batch fails, and none leaves a trace.
    sqlx::query(
        "CREATE TRIGGER boom BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'boom'); END",
    )
    .execute(&store.write)
    .await
    .unwrap();
    let finished = store
        .finish_attempts(&[
            result(
                &claimed[0],
                AttemptOutcome::Succeeded,
                succeeded(StoreEffect::None),
                at(2),
            ),
            result(
                &claimed[1],
                AttemptOutcome::Succeeded,
                succeeded(StoreEffect::None),
                at(2),
            ),
        ])
        .await
        .unwrap();
    assert!(finished.iter().all(Result::is_err), "{finished:?}");
    for task in &claimed {
        let left = store.get_task(task.id).await.unwrap().unwrap();
        assert_eq!((left.status, left.attempts), (TaskStatus::Running, 1));
        assert_eq!(attempt_rows(&store, task.id).await, [(1, None)]);
    }
    assert_eq!(audit_actions(&store).await.len(), events_before);
}
