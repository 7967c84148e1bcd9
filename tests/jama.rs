//! Jama Connect end to end: the real adapter, token cache and HTTP client against the Jama
//! simulator on loopback, into a real SQLite file.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::secrets::Exposed;
use common::{
    accounts_of, assert_same, grants_of, import_target, jama_target, jama_with, store_snapshot_of,
    Env, Opts, JAMA_SECRET,
};
use futures::StreamExt;
use idsync::connector::{
    Connector, ConnectorError, ErrorClass, ProvisionOutcome, ProvisionRequest,
};
use idsync::model::{AccountStatus, Attributes, GrantStatus, Operation, RunOutcome};
use idsync::sync::ImportParts;
use idsync_sim::{JamaSeed, SimControl};

fn seed(users: u32, inactive: u32, groups: u32) -> JamaSeed {
    JamaSeed {
        users,
        inactive_users: inactive,
        groups,
        ..JamaSeed::default()
    }
}

async fn env_for(sim: &idsync_sim::JamaServer, target_extra: &str) -> (Env, idsync::app::App) {
    let env = Env::with_targets(&jama_target(sim, target_extra), "");
    let app = env.app().await;
    (env, app)
}

#[tokio::test]
async fn imports_137_users_with_page_size_100_against_the_50_clamp() {
    let sim = jama_with(seed(137, 12, 6), |_| {}).await;
    let (_env, app) = env_for(&sim, "page_size = 100").await;
    let summary = import_target(&app, "jama", Opts::default()).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");

    let stored = accounts_of(&app, "jama").await;
    assert_eq!(stored.len(), 137, "no user skipped by the silent clamp");
    let inactive: Vec<_> = stored
        .iter()
        .filter(|a| a.status == AccountStatus::Inactive)
        .collect();
    assert_eq!(
        inactive.len(),
        12,
        "deactivated users are inactive, not missing"
    );
    let control = sim.control();
    for user in control.users() {
        let account = stored.iter().find(|a| a.id == user.id.to_string()).unwrap();
        assert_eq!(account.name, user.username);
        assert_eq!(account.email.as_deref(), Some(user.email.as_str()));
        let status = if user.active {
            AccountStatus::Active
        } else {
            AccountStatus::Inactive
        };
        assert_eq!(account.status, status);
    }

    // Memberships exactly as the simulator holds them.
    let mut expected = BTreeSet::new();
    for group in control.groups() {
        for member in control.members(group.id).unwrap() {
            expected.insert((member.to_string(), group.id.to_string()));
        }
    }
    let stored_grants: BTreeSet<_> = grants_of(&app, "jama")
        .await
        .into_iter()
        .filter(|g| g.status == GrantStatus::Active)
        .map(|g| {
            assert_eq!(g.entitlement_type, "usergroup");
            (g.account_id, g.entitlement_id)
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(stored_grants, expected);
    let groups = common::entitlements_of(&app, "jama").await;
    assert_eq!(groups.len(), 6);
    assert!(groups.iter().all(|g| g.entitlement_type == "usergroup"));
}

/// Reads every page an import of `connector` reads, one page at a time as the import does:
/// accounts, then entitlements and grants. Returns the number of accounts.
async fn read_everything(connector: &dyn Connector) -> usize {
    let mut accounts = 0;
    let mut pages = connector.accounts();
    while let Some(page) = pages.next().await {
        accounts += page.unwrap().records.len();
    }
    let mut pages = connector.entitlements();
    while let Some(page) = pages.next().await {
        page.unwrap();
    }
    let mut pages = connector.grants();
    while let Some(page) = pages.next().await {
        page.unwrap();
    }
    accounts
}

// On paused tokio time, which the simulator's clock and the client's token cache both read,
// so time passes for both alike without waiting. These tests leave the store out: SQLite
// cannot run on paused time (its pool's timeouts would fire while tokio waits on SQLite's
// thread).

#[tokio::test(start_paused = true)]
async fn one_full_read_outlives_several_tokens() {
    // Every answer takes 1 s and a token lives 5 s (refreshed at half-life: it lives less
    // than the 60 s skew): everything an import reads takes several tokens.
    let sim = jama_with(seed(300, 10, 8), |config| {
        config.token_lifetime = Duration::from_secs(5);
        config.latency = Duration::from_secs(1);
    })
    .await;
    let env = Env::with_targets(&jama_target(&sim, ""), "");
    let connectors = env.connectors();
    assert_eq!(read_everything(connectors["jama"].as_ref()).await, 300);
    let stats = sim.control().stats();
    assert!(
        stats.requests - stats.token_requests > 10,
        "more answers than one token outlives: {stats:?}"
    );
    assert!(
        stats.token_requests >= 3,
        "the token was refreshed during the read: {stats:?}"
    );
    assert_eq!(
        stats.responses_401, 0,
        "refreshed ahead of expiry, not after a 401: {stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn twenty_concurrent_calls_with_an_expired_token_make_one_token_request() {
    // A 4 s token refreshed 2 s before expiry: after 2.1 s the cached token is due for
    // refresh, and the fresh one stays good for 2 s, ample for 20 calls.
    let sim = jama_with(seed(5, 0, 1), |config| {
        config.token_lifetime = Duration::from_secs(4)
    })
    .await;
    // No pacing, so the 20 calls are really in flight together.
    let env = Env::with_targets(&jama_target(&sim, "token_refresh_skew = \"2s\""), "");
    let connector = env.connectors()["jama"].clone();
    connector.test_connection().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = sim.control().stats().token_requests;
    let calls = (0..20).map(|_| {
        let connector = connector.clone();
        tokio::spawn(async move { connector.test_connection().await })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    assert_eq!(sim.control().stats().token_requests - before, 1);
}

#[tokio::test]
async fn a_token_revoked_server_side_is_refreshed_once_and_the_call_retried() {
    let sim = jama_with(seed(5, 0, 1), |_| {}).await;
    let (_env, app) = env_for(&sim, "").await;
    let connector = app.connectors["jama"].clone();
    connector.test_connection().await.unwrap();
    sim.control().expire_tokens();
    connector.test_connection().await.unwrap();
    let stats = sim.control().stats();
    assert_eq!(stats.token_requests, 2, "{stats:?}");
    assert_eq!(stats.responses_401, 1, "{stats:?}");
}

#[tokio::test]
async fn a_wrong_client_secret_fails_fast_with_a_clear_message() {
    let sim = jama_with(seed(5, 0, 1), |_| {}).await;
    let target = jama_target(&sim, "").replace(JAMA_SECRET, "not-the-secret-Zx81");
    let env = Env::with_targets(&target, "");
    let app = env.app().await;
    let summary = import_target(&app, "jama", Opts::default()).await;
    assert_eq!(summary.exit_code(), 1);
    let error = summary.runs[0].error.clone().unwrap();
    assert!(
        error.contains("client_id or client_secret rejected by target jama"),
        "{error}"
    );
    let stats = sim.control().stats();
    assert!(
        stats.token_requests <= 2,
        "an auth failure is not retried: {stats:?}"
    );
    assert_eq!(
        stats.requests - stats.token_requests,
        0,
        "no API call without a token: {stats:?}"
    );
    let err = app.connectors["jama"].test_connection().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    Exposed::new()
        .text("the run's error", error)
        .text("test-connection's error", format!("{err} {err:?}"))
        .assert_free_of(&["not-the-secret-Zx81", JAMA_SECRET]);
}

#[tokio::test]
async fn deletion_detection_and_the_threshold_work_for_jama() {
    let sim = jama_with(seed(100, 5, 4), |_| {}).await;
    let (_env, app) = env_for(&sim, "deletion_threshold = { percent = 20, count = 1000 }").await;
    import_target(&app, "jama", Opts::default()).await;
    let control = sim.control();
    let users = control.users();
    let gone = users[7].clone();
    assert!(control.hide_user(gone.id));

    let summary = import_target(&app, "jama", Opts::default()).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(summary.runs[0].counts.account.suspended, 1);
    let suspended = accounts_of(&app, "jama")
        .await
        .into_iter()
        .find(|a| a.id == gone.id.to_string())
        .unwrap();
    assert_eq!(suspended.status, AccountStatus::Suspended);

    control.unhide_user(gone.id);
    let summary = import_target(&app, "jama", Opts::default()).await;
    assert_eq!(summary.runs[0].counts.account.reactivated, 1);

    // A quarter of the users gone: held, nothing changed.
    let before = store_snapshot_of(&app, "jama").await;
    for user in users.iter().skip(10).take(25) {
        control.hide_user(user.id);
    }
    let held = import_target(
        &app,
        "jama",
        Opts {
            parts: ImportParts::Accounts,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(held.runs[0].outcome, RunOutcome::Held);
    assert_eq!(held.exit_code(), 3);
    assert_same(
        &store_snapshot_of(&app, "jama").await,
        &before,
        "held run changes nothing",
    );
}

#[tokio::test]
async fn a_failing_page_leaves_the_jama_store_untouched() {
    let sim = jama_with(seed(120, 5, 3), |_| {}).await;
    let (_env, app) = env_for(&sim, "").await;
    import_target(&app, "jama", Opts::default()).await;
    let before = store_snapshot_of(&app, "jama").await;
    let control = sim.control();
    control.hide_user(control.users()[3].id);
    control
        .fail_when(
            idsync_sim::FaultRule::new(500)
                .with_path_prefix("/rest/v1/users")
                .with_query("startAt=50")
                .with_times(50),
        )
        .unwrap();
    let summary = import_target(&app, "jama", Opts::default()).await;
    assert_eq!(summary.runs[0].outcome, RunOutcome::Failed, "{summary:?}");
    assert_same(
        &store_snapshot_of(&app, "jama").await,
        &before,
        "nothing marked",
    );
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect()
}

fn request(
    operation: Operation,
    account: &str,
    id: Option<String>,
    entitlement: Option<u64>,
    attributes: Attributes,
) -> ProvisionRequest {
    ProvisionRequest {
        operation,
        account_id: id,
        account_name: account.to_string(),
        entitlement: entitlement.map(|group| ("usergroup".to_string(), group.to_string())),
        attributes,
        entitlement_name: None,
        task_id: None,
        request_id: None,
    }
}

#[tokio::test]
async fn provisioning_operations_against_the_simulator() {
    let sim = jama_with(seed(10, 1, 2), |_| {}).await;
    let (_env, app) = env_for(&sim, "").await;
    let jama = app.connectors["jama"].clone();
    let control = sim.control();

    // Capabilities: everything but remove_account.
    let caps = jama.capabilities();
    for op in [
        Operation::CreateAccount,
        Operation::UpdateAccount,
        Operation::EnableAccount,
        Operation::DisableAccount,
        Operation::AddAccess,
        Operation::RemoveAccess,
    ] {
        assert!(
            caps.operations.iter().any(|c| c.operation == op),
            "{op} missing"
        );
    }
    assert!(!caps
        .operations
        .iter()
        .any(|c| c.operation == Operation::RemoveAccount));
    let refused = jama
        .provision(&request(
            Operation::RemoveAccount,
            "x",
            Some("1".into()),
            None,
            Attributes::new(),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ConnectorError::Unsupported { .. }),
        "{refused}"
    );

    // create_account: a new user, with the id from meta.id.
    let new_user = attrs(&[
        ("firstname", "Ada"),
        ("lastname", "Lovelace"),
        ("email", "ada@example.com"),
        ("title", "Analyst"),
    ]);
    let created = jama
        .provision(&request(
            Operation::CreateAccount,
            "ada.l",
            None,
            None,
            new_user.clone(),
        ))
        .await
        .unwrap();
    let ProvisionOutcome::Done {
        account_id: Some(id),
    } = created
    else {
        panic!("{created:?}")
    };
    let user = control.find_user("ada.l").unwrap();
    assert_eq!(user.id.to_string(), id);
    assert_eq!(user.title.as_deref(), Some("Analyst"));

    // The same create again (same email): already done, with the existing id.
    let again = jama
        .provision(&request(
            Operation::CreateAccount,
            "ada.l",
            None,
            None,
            new_user,
        ))
        .await
        .unwrap();
    assert_eq!(
        again,
        ProvisionOutcome::AlreadyDone {
            account_id: Some(id.clone())
        }
    );
    // Someone else's username: refused, naming the holder.
    let other = attrs(&[
        ("firstname", "A"),
        ("lastname", "B"),
        ("email", "someone.else@example.com"),
    ]);
    let taken = jama
        .provision(&request(
            Operation::CreateAccount,
            "ada.l",
            None,
            None,
            other,
        ))
        .await
        .unwrap_err();
    assert_eq!(taken.class(), ErrorClass::Permanent);
    assert!(taken.to_string().contains(&id), "{taken}");

    // update_account: read, then full PUT; fields not changed are kept.
    jama.provision(&request(
        Operation::UpdateAccount,
        "ada.l",
        Some(id.clone()),
        None,
        attrs(&[("lastname", "King")]),
    ))
    .await
    .unwrap();
    let user = control.user(id.parse().unwrap()).unwrap();
    assert_eq!(user.last_name, "King");
    assert_eq!(
        user.title.as_deref(),
        Some("Analyst"),
        "a full PUT must carry the fields it did not change"
    );
    assert_eq!(user.email, "ada@example.com");

    // disable / enable, idempotent.
    for _ in 0..2 {
        jama.provision(&request(
            Operation::DisableAccount,
            "ada.l",
            Some(id.clone()),
            None,
            Attributes::new(),
        ))
        .await
        .unwrap();
        assert!(!control.user(id.parse().unwrap()).unwrap().active);
    }
    jama.provision(&request(
        Operation::EnableAccount,
        "ada.l",
        Some(id.clone()),
        None,
        Attributes::new(),
    ))
    .await
    .unwrap();
    assert!(control.user(id.parse().unwrap()).unwrap().active);

    // add / remove membership, each twice: the second is already done.
    let group = control.groups()[0].id;
    let uid: u64 = id.parse().unwrap();
    let add = request(
        Operation::AddAccess,
        "ada.l",
        Some(id.clone()),
        Some(group),
        Attributes::new(),
    );
    assert!(matches!(
        jama.provision(&add).await.unwrap(),
        ProvisionOutcome::Done { .. }
    ));
    assert!(control.members(group).unwrap().contains(&uid));
    assert!(matches!(
        jama.provision(&add).await.unwrap(),
        ProvisionOutcome::AlreadyDone { .. }
    ));
    let remove = request(
        Operation::RemoveAccess,
        "ada.l",
        Some(id.clone()),
        Some(group),
        Attributes::new(),
    );
    assert!(matches!(
        jama.provision(&remove).await.unwrap(),
        ProvisionOutcome::Done { .. }
    ));
    assert!(!control.members(group).unwrap().contains(&uid));
    assert!(matches!(
        jama.provision(&remove).await.unwrap(),
        ProvisionOutcome::AlreadyDone { .. }
    ));

    // An unknown group is a clear permanent error, not a success.
    let bad = request(
        Operation::AddAccess,
        "ada.l",
        Some(id),
        Some(999_999),
        Attributes::new(),
    );
    assert_eq!(
        jama.provision(&bad).await.unwrap_err().class(),
        ErrorClass::Permanent
    );
}

#[tokio::test]
async fn pacing_keeps_jama_under_its_tenant_limit() {
    let sim = jama_with(seed(200, 0, 3), |config| {
        config.rate_limits = idsync_sim::jama::jama_rate_limits()
    })
    .await;
    let env = Env::with_targets(
        &common::jama_target_with_default_pacing(&sim, "page_size = 50"),
        "",
    );
    let app = env.app().await;
    let summary = import_target(&app, "jama", Opts::default()).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    let stats = sim.control().stats();
    assert!(stats.requests > 10, "{stats:?}");
    assert!(stats.responses_429 <= 1, "{stats:?}");
}
