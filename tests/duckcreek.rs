//! Duck Creek end to end: the real adapter, SOAP client and HTTP client against the Duck Creek
//! simulator on loopback, into a real SQLite file, and through the provisioning queue.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::secrets::Exposed;
use common::{
    accounts_of, assert_same, drain, duckcreek_target, duckcreek_with, entitlements_of, grants_of,
    import_target, store_snapshot_of, task_request, Env, Opts, DC_PASSWORD,
};
use idsync::app::App;
use idsync::connector::ErrorClass;
use idsync::model::{
    AccountStatus, EntitlementStatus, GrantStatus, Operation, RunOutcome, TaskStatus,
};
use idsync::store::{Store, Submitted};
use idsync::sync::tasks;
use idsync::sync::ImportParts;
use idsync_sim::{
    DcUserStatus, DuckCreekSeed, DuckCreekServer, FaultRule, ResponseFault, SimControl,
};

const TARGET: &str = "duckcreek";
const LIST_USERS: &str = "OnlineData.listEntityUsersRq";

fn seed(users: u32, locked: u32) -> DuckCreekSeed {
    DuckCreekSeed {
        locked_users: locked,
        ..DuckCreekSeed::with_users(users)
    }
}

async fn env_for(sim: &DuckCreekServer, target_extra: &str) -> (Env, App) {
    let env = Env::with_targets(&duckcreek_target(sim, target_extra), "");
    let app = env.app().await;
    (env, app)
}

async fn import(app: &App) -> idsync::sync::ImportSummary {
    import_target(app, TARGET, Opts::default()).await
}

#[tokio::test]
async fn imports_300_users_with_roles_entities_and_privileges_exactly() {
    let sim = duckcreek_with(seed(300, 15), |_| {}).await;
    let (_env, app) = env_for(&sim, "page_size = 64").await;
    let summary = import(&app).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    let control = sim.control();

    // Accounts: every user, Locked ones inactive.
    let stored = accounts_of(&app, TARGET).await;
    let users = control.users();
    assert_eq!(users.len(), 300);
    assert_eq!(stored.len(), 300);
    for user in &users {
        let account = stored.iter().find(|a| a.id == user.id.to_string()).unwrap();
        assert_eq!(account.name, user.name);
        assert_eq!(account.email.as_deref(), Some(user.email.as_str()));
        assert_eq!(
            account.display_name.as_deref(),
            Some(user.full_name.as_str())
        );
        let status = match user.status {
            DcUserStatus::Active => AccountStatus::Active,
            DcUserStatus::Locked => AccountStatus::Inactive,
        };
        assert_eq!(account.status, status, "{}", user.name);
    }
    let inactive = stored
        .iter()
        .filter(|a| a.status == AccountStatus::Inactive)
        .count();
    assert_eq!(inactive, 15, "Locked users are inactive");

    // Entitlements: roles, entities (whatever their element) and privileges, exactly.
    let mut expected = BTreeSet::new();
    for role in control.roles() {
        expected.insert(("Role".to_string(), role.id.to_string(), role.name));
    }
    for entity in control.entities() {
        expected.insert(("Entity".to_string(), entity.id.to_string(), entity.name));
    }
    for privilege in control.privileges() {
        expected.insert((
            "Privilege".to_string(),
            privilege.id.to_string(),
            privilege.name,
        ));
    }
    let entitlements = entitlements_of(&app, TARGET).await;
    let found: BTreeSet<_> = entitlements
        .iter()
        .map(|e| (e.entitlement_type.clone(), e.id.clone(), e.name.clone()))
        .collect();
    assert_eq!(found, expected);
    assert!(
        entitlements
            .iter()
            .all(|e| !e.attributes.contains_key("discovered_from")),
        "every granted name is in the catalogue"
    );
    assert!(
        entitlements.iter().any(|e| e.name.contains('&')),
        "names with XML's special characters round-trip"
    );

    // Grants: each user's roles and entity memberships, by id.
    let role_ids: BTreeMap<String, String> = control
        .roles()
        .into_iter()
        .map(|r| (r.name.to_lowercase(), r.id.to_string()))
        .collect();
    let entity_ids: BTreeMap<String, String> = control
        .entities()
        .into_iter()
        .map(|e| (e.name.to_lowercase(), e.id.to_string()))
        .collect();
    let mut expected = BTreeSet::new();
    for user in &users {
        for role in &user.roles {
            expected.insert((
                user.id.to_string(),
                "Role",
                role_ids[&role.to_lowercase()].clone(),
            ));
        }
        for entity in &user.entities {
            expected.insert((
                user.id.to_string(),
                "Entity",
                entity_ids[&entity.to_lowercase()].clone(),
            ));
        }
    }
    let grants: BTreeSet<_> = grants_of(&app, TARGET)
        .await
        .into_iter()
        .map(|g| {
            assert_eq!(g.status, GrantStatus::Active);
            let kind = if g.entitlement_type == "Role" {
                "Role"
            } else {
                "Entity"
            };
            (g.account_id, kind, g.entitlement_id)
        })
        .collect();
    assert!(expected.len() > 300, "{}", expected.len());
    assert_eq!(grants, expected);

    // A re-import with no change writes nothing.
    let again = import(&app).await;
    for run in &again.runs {
        assert_eq!(
            run.counts.account.written()
                + run.counts.entitlement.written()
                + run.counts.grant.written(),
            0,
            "{run:?}"
        );
    }
}

#[tokio::test]
async fn locks_removals_and_the_threshold_follow_the_import_rules() {
    let sim = duckcreek_with(seed(100, 0), |_| {}).await;
    let (_env, app) = env_for(&sim, "deletion_threshold = { percent = 20, count = 1000 }").await;
    import(&app).await;
    let control = sim.control();
    let users = control.users();

    control
        .set_status(users[1].id, DcUserStatus::Locked)
        .unwrap();
    let gone = &users[2];
    assert!(control.remove_user(gone.id));
    let summary = import(&app).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    let counts = &summary.runs[0].counts.account;
    assert_eq!((counts.updated, counts.suspended), (1, 1), "{counts:?}");
    let stored = accounts_of(&app, TARGET).await;
    let find = |id: u64| stored.iter().find(|a| a.id == id.to_string()).unwrap();
    assert_eq!(find(users[1].id).status, AccountStatus::Inactive);
    assert_eq!(find(gone.id).status, AccountStatus::Suspended);
    let grants = grants_of(&app, TARGET).await;
    assert!(grants
        .iter()
        .filter(|g| g.account_id == gone.id.to_string())
        .all(|g| g.status == GrantStatus::Removed));

    // A dry run computes the diff and records nothing.
    let before = store_snapshot_of(&app, TARGET).await;
    control
        .set_status(users[3].id, DcUserStatus::Locked)
        .unwrap();
    let dry = import_target(
        &app,
        TARGET,
        Opts {
            dry_run: true,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(dry.runs[0].counts.account.updated, 1, "{dry:?}");
    assert_same(
        &store_snapshot_of(&app, TARGET).await,
        &before,
        "a dry run changes nothing",
    );

    // A quarter of the users gone: held, nothing changed.
    for user in users.iter().skip(10).take(25) {
        control.remove_user(user.id);
    }
    let held = import_target(
        &app,
        TARGET,
        Opts {
            parts: ImportParts::Accounts,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(held.runs[0].outcome, RunOutcome::Held);
    assert_eq!(held.exit_code(), 3);
    assert_same(
        &store_snapshot_of(&app, TARGET).await,
        &before,
        "a held run changes nothing",
    );
}

#[tokio::test]
async fn bad_credentials_are_a_clear_auth_error_and_change_nothing() {
    let sim = duckcreek_with(seed(50, 2), |_| {}).await;
    let (_env, app) = env_for(&sim, "").await;
    import(&app).await;
    let before = store_snapshot_of(&app, TARGET).await;
    let control = sim.control();
    control.remove_user(control.users()[0].id);
    control.revoke_credentials();
    control.reset_stats();

    let summary = import(&app).await;
    assert_eq!(summary.exit_code(), 1, "{summary:?}");
    let error = summary.runs[0].error.clone().unwrap();
    assert!(
        error.contains("target duckcreek rejected the credentials") && error.contains("Login"),
        "{error}"
    );
    assert_eq!(
        control.stats().requests,
        1,
        "an auth failure is not retried"
    );
    assert_same(
        &store_snapshot_of(&app, TARGET).await,
        &before,
        "nothing changed",
    );
    let err = app.connectors[TARGET].test_connection().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    Exposed::new()
        .text("the run's error", error)
        .text("test-connection's error", format!("{err} {err:?}"))
        .assert_free_of(&[DC_PASSWORD, "never-print-me"]);

    control.restore_credentials();
    app.connectors[TARGET].test_connection().await.unwrap();
}

#[tokio::test]
async fn broken_responses_fail_the_run_and_change_nothing() {
    let sim = duckcreek_with(seed(200, 5), |_| {}).await;
    let (_env, app) = env_for(&sim, "page_size = 16").await;
    import(&app).await;
    let control = sim.control();
    // Had a broken read been trusted, this user would be suspended.
    control.remove_user(control.users()[0].id);
    let before = store_snapshot_of(&app, TARGET).await;
    let cases = [
        (ResponseFault::Truncate, "ends early"),
        (ResponseFault::Malformed, "not well-formed"),
        (ResponseFault::Html, "`text/html`, not a SOAP envelope"),
        (
            ResponseFault::Failure {
                code: "EntityLocked".into(),
                text: "entity busy".into(),
            },
            "OnlineData.listEntityUsersRq failed: EntityLocked: entity busy",
        ),
    ];
    for (fault, wanted) in cases {
        control
            .break_response(fault.clone(), Some(LIST_USERS.into()), Some(1))
            .unwrap();
        let summary = import(&app).await;
        let run = &summary.runs[0];
        assert_eq!(run.outcome, RunOutcome::Failed, "{fault:?}: {summary:?}");
        let error = run.error.clone().unwrap();
        assert!(error.contains(wanted), "{fault:?}: {error}");
        assert_same(
            &store_snapshot_of(&app, TARGET).await,
            &before,
            &format!("{fault:?}"),
        );
        assert!(summary.skipped.iter().any(|s| s.contains("access")) || summary.runs.len() == 1);
    }
    // A server fault on every attempt: retried, then failed; still nothing marked.
    control
        .fail_when(FaultRule::new(500).with_request(LIST_USERS).with_times(3))
        .unwrap();
    control.reset_stats();
    let summary = import(&app).await;
    assert_eq!(summary.runs[0].outcome, RunOutcome::Failed);
    let error = summary.runs[0].error.clone().unwrap();
    assert!(
        error.contains("transient") && error.contains("SOAP fault Server"),
        "{error}"
    );
    assert_eq!(control.stats().requests, 3, "read_retry.max_attempts = 3");
    assert_same(
        &store_snapshot_of(&app, TARGET).await,
        &before,
        "server faults",
    );

    // The next clean read goes through.
    let summary = import(&app).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(summary.runs[0].counts.account.suspended, 1);
}

#[tokio::test]
async fn a_server_that_takes_only_process_requests_as_dom_needs_request_wrapper() {
    let sim = duckcreek_with(seed(40, 2), |config| config.require_wrapper = true).await;
    let (_env, bare) = env_for(&sim, "").await;
    let before = store_snapshot_of(&bare, TARGET).await;
    let summary = import(&bare).await;
    assert_eq!(summary.exit_code(), 1, "{summary:?}");
    let error = summary.runs[0].error.clone().unwrap();
    assert!(
        error.contains("SOAP fault Client") && error.contains("processRequestsAsDOM"),
        "{error}"
    );
    Exposed::new()
        .text("the run's error", error)
        .assert_free_of(&[DC_PASSWORD]);
    assert_same(
        &store_snapshot_of(&bare, TARGET).await,
        &before,
        "a refused batch changes nothing",
    );

    let (_env, wrapped) = env_for(
        &sim,
        r#"request_wrapper = { element = "processRequestsAsDOM" }"#,
    )
    .await;
    let summary = import(&wrapped).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(accounts_of(&wrapped, TARGET).await.len(), 40);
    wrapped.connectors[TARGET].test_connection().await.unwrap();
}

/// The process's peak resident memory in KiB (Linux), if it can be read.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn an_entity_expansion_bomb_fails_fast_with_memory_bounded() {
    let sim = duckcreek_with(seed(20, 0), |_| {}).await;
    let (_env, app) = env_for(&sim, "").await;
    import(&app).await;
    let before = store_snapshot_of(&app, TARGET).await;
    let control = sim.control();
    control
        .break_response(ResponseFault::EntityBomb, Some(LIST_USERS.into()), None)
        .unwrap();
    control.reset_stats();
    let peak_before = peak_rss_kib();
    let summary = import(&app).await;
    let error = summary.runs[0].error.clone().unwrap();
    assert_eq!(summary.runs[0].outcome, RunOutcome::Failed);
    assert!(
        error.contains("DOCTYPE") && error.contains("no entity is ever expanded"),
        "{error}"
    );
    // Refused, not retried: the same document would come back.
    assert_eq!(control.stats().requests, 1);
    // Expanded, the document is gigabytes; refused at its DOCTYPE, the peak barely moves.
    if let (Some(before), Some(after)) = (peak_before, peak_rss_kib()) {
        assert!(
            after.saturating_sub(before) < 64 * 1024,
            "peak RSS grew by {} KiB",
            after - before
        );
    }
    assert_same(
        &store_snapshot_of(&app, TARGET).await,
        &before,
        "a bomb changes nothing",
    );
}

/// Submits a task on the Duck Creek target; its id.
async fn submit(
    app: &App,
    operation: Operation,
    account: &str,
    entitlement: Option<&str>,
) -> Result<i64, tasks::SubmitError> {
    let request = task_request(TARGET, operation, account, entitlement);
    match common::submit(app, request).await? {
        Submitted::Created(task) | Submitted::Existing(task) => Ok(task.id),
    }
}

async fn status_of(app: &App, id: i64) -> (TaskStatus, Option<String>) {
    let task = app.store.get_task(id).await.unwrap().unwrap();
    (task.status, task.last_error)
}

#[tokio::test]
async fn lock_and_unlock_round_trip_through_the_queue() {
    let sim = duckcreek_with(seed(30, 0), |_| {}).await;
    let (_env, app) = env_for(&sim, "").await;
    import(&app).await;
    let control = sim.control();
    let user = control.users()[4].clone();

    let lock = submit(&app, Operation::DisableAccount, &user.name, None)
        .await
        .unwrap();
    drain(&app, Some(TARGET)).await;
    assert_eq!(status_of(&app, lock).await.0, TaskStatus::Succeeded);
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Locked);
    let account = accounts_of(&app, TARGET)
        .await
        .into_iter()
        .find(|a| a.id == user.id.to_string())
        .unwrap();
    assert_eq!(account.status, AccountStatus::Inactive);
    assert_eq!(
        account.status_reason.as_deref(),
        Some(format!("task:{lock}").as_str())
    );

    // Locking again is already done; then unlock.
    let again = submit(&app, Operation::DisableAccount, &user.name, None)
        .await
        .unwrap();
    let unlock = submit(&app, Operation::EnableAccount, &user.name, None)
        .await
        .unwrap();
    drain(&app, Some(TARGET)).await;
    assert_eq!(status_of(&app, again).await.0, TaskStatus::Succeeded);
    assert_eq!(status_of(&app, unlock).await.0, TaskStatus::Succeeded);
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Active);
    // The next import agrees with what the tasks did.
    let summary = import(&app).await;
    assert_eq!(summary.runs[0].counts.account.written(), 0, "{summary:?}");

    // A user the target no longer knows: the target's own message, failed at once.
    let ghost = control.users()[5].clone();
    control.remove_user(ghost.id);
    let failed = submit(&app, Operation::DisableAccount, &ghost.name, None)
        .await
        .unwrap();
    drain(&app, Some(TARGET)).await;
    let (status, error) = status_of(&app, failed).await;
    assert_eq!(status, TaskStatus::Failed);
    assert!(
        error.unwrap_or_default().contains("UserNotFound"),
        "the target's own code is kept"
    );
}

/// Queues an access task that must be accepted at submit; its id.
async fn queue_access(app: &App, operation: Operation, account: &str, entitlement: &str) -> i64 {
    submit(app, operation, account, Some(entitlement))
        .await
        .unwrap_or_else(|err| panic!("{operation:?} {account} {entitlement}: {err}"))
}

/// Whether `names` holds `name`, without letter case (Duck Creek names are case-insensitive).
fn holds(names: &[String], name: &str) -> bool {
    names.iter().any(|held| held.eq_ignore_ascii_case(name))
}

#[tokio::test]
async fn role_and_entity_grants_and_revokes_go_through_the_templates() {
    let sim = duckcreek_with(seed(30, 0), |_| {}).await;
    let (_env, app) = env_for(&sim, "").await;
    import(&app).await;
    let control = sim.control();
    let user = control.users()[7].clone();
    let role = control
        .roles()
        .into_iter()
        .find(|role| !holds(&user.roles, &role.name))
        .unwrap();
    let entity = control
        .entities()
        .into_iter()
        .find(|entity| entity.id != 1 && !holds(&user.entities, &entity.name))
        .unwrap();
    let active = |grants: &[idsync::model::Grant], kind: &str, id: u64| {
        grants.iter().any(|g| {
            g.account_id == user.id.to_string()
                && g.entitlement_type == kind
                && g.entitlement_id == id.to_string()
                && g.status == GrantStatus::Active
        })
    };
    let (add, remove) = (Operation::AddAccess, Operation::RemoveAccess);

    // Types match without letter case; names or ids both resolve.
    let grant = queue_access(&app, add, &user.name, &format!("role:{}", role.name)).await;
    let join = queue_access(&app, add, &user.name, &format!("Entity:{}", entity.id)).await;
    drain(&app, Some(TARGET)).await;
    assert_eq!(status_of(&app, grant).await.0, TaskStatus::Succeeded);
    assert_eq!(status_of(&app, join).await.0, TaskStatus::Succeeded);
    let now = control.user(user.id).unwrap();
    assert!(holds(&now.roles, &role.name), "{now:?}");
    assert!(holds(&now.entities, &entity.name), "{now:?}");
    let grants = grants_of(&app, TARGET).await;
    assert!(active(&grants, "Role", role.id) && active(&grants, "Entity", entity.id));
    let summary = import(&app).await;
    assert_eq!(
        summary.runs[1].counts.grant.written(),
        0,
        "the import agrees: {summary:?}"
    );

    // Granting again is already done; then revoke both.
    let again = queue_access(&app, add, &user.name, &format!("Role:{}", role.id)).await;
    let revoke = queue_access(&app, remove, &user.name, &format!("Role:{}", role.name)).await;
    let leave = queue_access(&app, remove, &user.name, &format!("Entity:{}", entity.name)).await;
    drain(&app, Some(TARGET)).await;
    for id in [again, revoke, leave] {
        assert_eq!(
            status_of(&app, id).await.0,
            TaskStatus::Succeeded,
            "task {id}"
        );
    }
    let now = control.user(user.id).unwrap();
    assert!(!holds(&now.roles, &role.name), "{now:?}");
    assert!(!holds(&now.entities, &entity.name), "{now:?}");
    let grants = grants_of(&app, TARGET).await;
    assert!(!active(&grants, "Role", role.id) && !active(&grants, "Entity", entity.id));
    let summary = import(&app).await;
    assert_eq!(
        summary.runs[1].counts.grant.written(),
        0,
        "the import agrees: {summary:?}"
    );
    assert!(entitlements_of(&app, TARGET)
        .await
        .iter()
        .all(|e| e.status == EntitlementStatus::Active));
}

#[tokio::test]
async fn already_done_codes_decide_whether_a_failure_is_already_in_place() {
    let sim = duckcreek_with(seed(10, 0), |_| {}).await;
    let (_env, strict) = env_for(&sim, "already_done_codes = { add_access = [] }").await;
    import(&strict).await;
    let control = sim.control();
    let user = control.users()[3].clone();
    let held = user.roles[0].clone();
    let entitlement = format!("Role:{held}");
    let add = Operation::AddAccess;

    // The server answers AlreadyAssigned; with the list emptied, that is a failure.
    let id = queue_access(&strict, add, &user.name, &entitlement).await;
    drain(&strict, Some(TARGET)).await;
    let (status, error) = status_of(&strict, id).await;
    assert_eq!(status, TaskStatus::Failed);
    assert!(error.unwrap().contains("AlreadyAssigned"));

    // With the built-in list, the same answer is "already done".
    let (_env, lenient) = env_for(&sim, "").await;
    import(&lenient).await;
    let id = queue_access(&lenient, add, &user.name, &entitlement).await;
    drain(&lenient, Some(TARGET)).await;
    assert_eq!(status_of(&lenient, id).await.0, TaskStatus::Succeeded);
    assert!(holds(&control.user(user.id).unwrap().roles, &held));
}

#[tokio::test]
async fn unsupported_operations_are_refused_at_submit_with_the_reason() {
    let sim = duckcreek_with(seed(10, 0), |_| {}).await;
    let (_env, app) = env_for(&sim, "").await;
    import(&app).await;
    let control = sim.control();
    let user = control.users()[0].clone();
    let privilege = control.privileges()[0].clone();
    let privilege = format!("Privilege:{}", privilege.name);
    let err = submit(&app, Operation::AddAccess, &user.name, Some(&privilege))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("attach to roles"), "{err}");
    for operation in [Operation::RemoveAccount, Operation::UpdateAccount] {
        let err = submit(&app, operation, &user.name, None).await.unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "targets.duckcreek.templates.{}",
                operation.as_str()
            )),
            "{err}"
        );
    }
    assert_eq!(control.stats().inner_request("Security.addUserRoleRq"), 0);

    // With a configured template, remove_account is supported (here: lock the user).
    let (_env, app) = env_for(
        &sim,
        "[targets.duckcreek.templates]\nremove_account = '<Security.lockUserAccountRq userName=\"${ account.name }\"/>'",
    )
    .await;
    import(&app).await;
    let id = submit(&app, Operation::RemoveAccount, &user.name, None)
        .await
        .unwrap();
    drain(&app, Some(TARGET)).await;
    assert_eq!(status_of(&app, id).await.0, TaskStatus::Succeeded);
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Locked);
    let account = accounts_of(&app, TARGET)
        .await
        .into_iter()
        .find(|a| a.id == user.id.to_string())
        .unwrap();
    assert_eq!(account.status, AccountStatus::Suspended);
}

#[tokio::test]
async fn a_large_list_comes_back_in_one_response_and_is_read_as_a_stream() {
    let sim = duckcreek_with(seed(5000, 100), |_| {}).await;
    let (_env, app) = env_for(&sim, "page_size = 500").await;
    let summary = import_target(
        &app,
        TARGET,
        Opts {
            parts: ImportParts::Accounts,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(summary.runs[0].counts.account.created, 5000);
    let stats = sim.control().stats();
    assert_eq!(
        stats.inner_request(LIST_USERS),
        1,
        "one request for 5,000 users"
    );
    Exposed::new()
        .text("the simulator's counters", format!("{stats:?}"))
        .assert_free_of(&[DC_PASSWORD]);
}

#[tokio::test]
async fn soap_action_unset_sends_none_and_an_empty_one_sends_two_quotes() {
    // A server that routes on SOAPAction: the default (none, as Saviynt's package sends)
    // is refused, `soap_action = ""` is taken.
    let strict = duckcreek_with(seed(30, 0), |config| config.require_soap_action = true).await;
    let (_env, unset) = env_for(&strict, "").await;
    let before = store_snapshot_of(&unset, TARGET).await;
    let summary = import(&unset).await;
    assert_eq!(summary.exit_code(), 1, "{summary:?}");
    let error = summary.runs[0].error.clone().unwrap();
    assert!(
        error.contains("SOAP fault Client") && error.contains("SOAPAction"),
        "{error}"
    );
    assert_same(
        &store_snapshot_of(&unset, TARGET).await,
        &before,
        "a refused batch changes nothing",
    );
    let (_env, empty) = env_for(&strict, "soap_action = \"\"").await;
    assert_eq!(import(&empty).await.exit_code(), 0);
    assert_eq!(accounts_of(&empty, TARGET).await.len(), 30);

    // The default simulator, like the servers Saviynt's package talks to, takes both.
    let lenient = duckcreek_with(seed(30, 0), |_| {}).await;
    for extra in ["", "soap_action = \"\""] {
        let (_env, app) = env_for(&lenient, extra).await;
        assert_eq!(import(&app).await.exit_code(), 0, "{extra:?}");
        app.connectors[TARGET].test_connection().await.unwrap();
    }
}
