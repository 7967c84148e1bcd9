//! The provisioning queue end to end, in process: submission, the engine, the real adapters
//! and HTTP client against the simulators on loopback, into a real SQLite file.

mod common;

use std::time::Duration;

use common::secrets::Exposed;
use common::{
    accounts_of, drain, eventually, grants_of, import_target, jama_target, jama_with,
    releasing_answers, submit, task_request, Env, Opts,
};
use idsync::app::App;
use idsync::model::{AccountStatus, Attributes, GrantStatus, Operation, Task, TaskStatus};
use idsync::store::{Store, Submitted, TaskFilter};
use idsync::sync::provision::ProvisionRunner;
use idsync::sync::tasks::SubmitRequest;
use idsync_sim::{FaultRule, JamaSeed, JamaServer, SimClock, SimControl};
use tokio_util::sync::CancellationToken;

const FAST_RETRY: &str = r#"retry = { max_attempts = 4, initial_backoff = "20ms", max_backoff = "50ms", give_up_after = "1m" }"#;

fn seed(users: u32, groups: u32) -> JamaSeed {
    JamaSeed {
        users,
        inactive_users: 0,
        groups,
        ..JamaSeed::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect()
}

fn create(target: &str, name: &str) -> SubmitRequest {
    SubmitRequest {
        target: target.into(),
        operation: Operation::CreateAccount,
        account: name.into(),
        entitlement: None,
        attributes: attrs(&[
            ("firstname", "Grace"),
            ("lastname", "Hopper"),
            ("email", &format!("{name}@example.com")),
        ]),
        owner: Some("hr:1234".into()),
        request_id: None,
        idempotency_key: None,
    }
}

async fn submitted(app: &App, request: SubmitRequest) -> Task {
    match submit(app, request).await.unwrap() {
        Submitted::Created(task) | Submitted::Existing(task) => task,
    }
}

async fn task(app: &App, id: i64) -> Task {
    app.store.get_task(id).await.unwrap().unwrap()
}

async fn jama_app(sim: &JamaServer, extra: &str) -> (Env, App) {
    let env = Env::with_targets(
        &jama_target(sim, &format!("{FAST_RETRY}\nrate_limit = []\n{extra}")),
        "",
    );
    let app = env.app().await;
    (env, app)
}

#[tokio::test]
async fn transient_failures_are_retried_and_the_user_is_created_exactly_once() {
    let sim = jama_with(seed(5, 2), |_| {}).await;
    let (_env, app) = jama_app(&sim, "").await;
    sim.control()
        .fail_when(
            FaultRule::new(503)
                .with_method("POST")
                .with_path_prefix("/rest/v1/users")
                .with_times(2),
        )
        .unwrap();
    let queued = submitted(&app, create("jama", "grace.h")).await;
    drain(&app, None).await;

    let done = task(&app, queued.id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 3);
    let created: Vec<_> = sim
        .control()
        .users()
        .into_iter()
        .filter(|u| u.username == "grace.h")
        .collect();
    assert_eq!(created.len(), 1, "exactly one user created");
    assert_eq!(done.account_id, Some(created[0].id.to_string()));

    // The store follows success: the account exists, active, owned, reason task:<id>.
    let account = accounts_of(&app, "jama")
        .await
        .into_iter()
        .find(|a| a.name == "grace.h")
        .unwrap();
    assert_eq!(account.status, AccountStatus::Active);
    assert_eq!(account.status_reason, Some(format!("task:{}", done.id)));
    assert_eq!(account.owner.as_deref(), Some("hr:1234"));
}

#[tokio::test]
async fn a_permanent_error_fails_at_once_with_the_targets_message() {
    let sim = jama_with(seed(5, 2), |_| {}).await;
    let (_env, app) = jama_app(&sim, "").await;
    let mut bad = create("jama", "bad.license");
    bad.attributes
        .insert("license_type".into(), serde_json::json!("NOT_A_LICENSE"));
    let queued = submitted(&app, bad).await;
    drain(&app, None).await;
    let failed = task(&app, queued.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.attempts, 1, "permanent errors are not retried");
    let error = failed.last_error.unwrap();
    assert!(
        error.contains("licenseType") || error.contains("NOT_A_LICENSE"),
        "the target's own message: {error}"
    );
    assert!(sim.control().find_user("bad.license").is_none());
}

#[tokio::test]
async fn exhausted_attempts_fail_and_never_succeed() {
    let sim = jama_with(seed(5, 2), |_| {}).await;
    let (_env, app) = jama_app(&sim, "").await;
    sim.control()
        .fail_when(
            FaultRule::new(500)
                .with_method("POST")
                .with_path_prefix("/rest/v1/users")
                .with_times(100),
        )
        .unwrap();
    let queued = submitted(&app, create("jama", "never.made")).await;
    drain(&app, None).await;
    let failed = task(&app, queued.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.attempts, 4);
    assert!(accounts_of(&app, "jama")
        .await
        .iter()
        .all(|a| a.name != "never.made"));
}

#[tokio::test]
async fn unsupported_and_invalid_submissions_queue_nothing() {
    let sim = jama_with(seed(5, 2), |_| {}).await;
    let (_env, app) = jama_app(&sim, "").await;
    import_target(&app, "jama", Opts::default()).await;
    let user = sim.control().users()[1].username.clone();

    let refused = submit(
        &app,
        task_request("jama", Operation::RemoveAccount, &user, None),
    )
    .await
    .unwrap_err();
    let text = refused.to_string();
    assert!(refused.is_refusal());
    assert!(
        text.contains("remove_account") && text.contains("jama"),
        "{text}"
    );
    let missing = submit(
        &app,
        task_request("jama", Operation::DisableAccount, "nobody.here", None),
    )
    .await
    .unwrap_err();
    assert!(missing.to_string().contains("nobody.here"), "{missing}");
    let bad_group = submit(
        &app,
        task_request(
            "jama",
            Operation::AddAccess,
            &user,
            Some("usergroup:No Such Group"),
        ),
    )
    .await
    .unwrap_err();
    assert!(bad_group.is_refusal(), "{bad_group}");
    let mut with_password = create("jama", "pw.user");
    with_password
        .attributes
        .insert("password".into(), serde_json::json!("hunter2"));
    let pw = submit(&app, with_password).await.unwrap_err();
    assert!(pw.to_string().contains("password"), "{pw}");
    Exposed::new()
        .text("the refusal", format!("{pw} {pw:?}"))
        .assert_free_of(&["hunter2"]);

    let queued = app
        .store
        .list_tasks(&TaskFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(queued.is_empty(), "nothing queued: {queued:?}");
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_task() {
    let sim = jama_with(seed(5, 2), |_| {}).await;
    let (_env, app) = jama_app(&sim, "").await;
    let mut first = create("jama", "idem.user");
    first.idempotency_key = Some("hr-req-77".into());
    let Submitted::Created(one) = submit(&app, first.clone()).await.unwrap() else {
        panic!("first submit")
    };
    let Submitted::Existing(two) = submit(&app, first).await.unwrap() else {
        panic!("second submit")
    };
    assert_eq!(one.id, two.id);
    assert_eq!(
        app.store
            .list_tasks(&TaskFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn cancel_and_retry() {
    let sim = jama_with(seed(5, 2), |_| {}).await;
    let (_env, app) = jama_app(&sim, "").await;
    let queued = submitted(&app, create("jama", "cancel.me")).await;
    let cancelled = app
        .store
        .cancel_task(queued.id, "cli:test", idsync::clock::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    drain(&app, None).await;
    assert!(
        sim.control().find_user("cancel.me").is_none(),
        "a cancelled task never runs"
    );
    assert!(app
        .store
        .cancel_task(queued.id, "cli:test", idsync::clock::now())
        .await
        .unwrap()
        .is_err());

    let retried = app
        .store
        .retry_task(queued.id, "cli:test", idsync::clock::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.status, TaskStatus::Pending);
    assert_eq!(retried.attempts, 0);
    drain(&app, None).await;
    assert_eq!(task(&app, queued.id).await.status, TaskStatus::Succeeded);
    assert!(sim.control().find_user("cancel.me").is_some());
}

#[tokio::test]
async fn tasks_of_one_account_run_in_order_and_the_store_follows() {
    let sim = jama_with(seed(5, 2), |_| {}).await;
    let (_env, app) = jama_app(&sim, "").await;
    import_target(&app, "jama", Opts::default()).await;
    let group = sim.control().groups()[0].clone();

    // A create, then access and a disable for the not-yet-created account: they wait for it.
    let create_task = submitted(&app, create("jama", "order.user")).await;
    let add = submitted(
        &app,
        task_request(
            "jama",
            Operation::AddAccess,
            "order.user",
            Some(&format!("usergroup:{}", group.name)),
        ),
    )
    .await;
    assert_eq!(add.depends_on, Some(create_task.id));
    let disable = submitted(
        &app,
        task_request("jama", Operation::DisableAccount, "order.user", None),
    )
    .await;
    drain(&app, None).await;

    for id in [create_task.id, add.id, disable.id] {
        assert_eq!(
            task(&app, id).await.status,
            TaskStatus::Succeeded,
            "task {id}"
        );
    }
    let user = sim.control().find_user("order.user").unwrap();
    assert!(!user.active);
    assert!(sim.control().members(group.id).unwrap().contains(&user.id));
    // The store agrees, and so does the next import.
    let account = accounts_of(&app, "jama")
        .await
        .into_iter()
        .find(|a| a.name == "order.user")
        .unwrap();
    assert_eq!(account.status, AccountStatus::Inactive);
    let grant = grants_of(&app, "jama")
        .await
        .into_iter()
        .find(|g| g.account_id == user.id.to_string())
        .unwrap();
    assert_eq!(grant.status, GrantStatus::Active);
    let summary = import_target(&app, "jama", Opts::default()).await;
    assert_eq!(summary.exit_code(), 0);
    let account = accounts_of(&app, "jama")
        .await
        .into_iter()
        .find(|a| a.name == "order.user")
        .unwrap();
    assert_eq!(account.status, AccountStatus::Inactive);
    assert_eq!(summary.runs[1].counts.grant.removed, 0);
}

#[tokio::test]
async fn a_slow_target_does_not_delay_another() {
    let healthy = jama_with(seed(3, 1), |_| {}).await;
    // The slow target answers 3 s late on a clock that stands still until the test moves
    // it: nothing it answers can come back before the test says so.
    let clock = SimClock::manual();
    let latency = Duration::from_secs(3);
    let slow = jama_with(seed(3, 1), |config| {
        config.latency = latency;
        config.clock = clock.clone();
    })
    .await;
    // Named so that the slow target comes first: a pass that served the targets one after
    // the other would wait for it.
    let targets = format!(
        "{}\n{}",
        jama_target(&slow, FAST_RETRY).replace("[targets.jama]", "[targets.a-slow]"),
        jama_target(&healthy, FAST_RETRY).replace("[targets.jama]", "[targets.b-healthy]"),
    );
    let env = Env::with_targets(&targets, "");
    let app = env.app().await;
    let slow_task = submitted(&app, create("a-slow", "slow.user")).await;
    let fast_task = submitted(&app, create("b-healthy", "fast.user")).await;

    let runner = ProvisionRunner::new(app.store(), app.connectors.clone(), app.config.clone());
    let pass = tokio::spawn(async move { runner.run_pass(None, &CancellationToken::new()).await });
    // The healthy target's task finishes while the slow target's first request waits for
    // its answer.
    eventually("the healthy target's task to succeed", || async {
        (task(&app, fast_task.id).await.status == TaskStatus::Succeeded).then_some(())
    })
    .await;
    assert_eq!(clock.sleeping(), [latency], "one slow answer waiting");
    assert_eq!(
        slow.control().stats().requests,
        0,
        "the slow target answered nothing"
    );
    assert_eq!(task(&app, slow_task.id).await.status, TaskStatus::Running);

    // Once its answers come, the slow target's task succeeds in the same pass.
    let report = releasing_answers(&clock, latency, pass)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.succeeded, 2, "{report:?}");
    assert_eq!(task(&app, slow_task.id).await.status, TaskStatus::Succeeded);
    assert!(slow.control().find_user("slow.user").is_some());
}

async fn digicert_app(sim: &idsync_sim::DigicertServer) -> (Env, App) {
    let env = Env::new(sim, &format!("{FAST_RETRY}\nrate_limit = []"), "");
    let app = env.app().await;
    (env, app)
}

#[tokio::test]
async fn digicert_503_twice_then_success_creates_exactly_one_user() {
    let sim = common::digicert(5).await;
    let (_env, app) = digicert_app(&sim).await;
    sim.control()
        .fail_when(
            FaultRule::new(503)
                .with_method("POST")
                .with_path_prefix("/user")
                .with_times(2),
        )
        .unwrap();
    let queued = submitted(&app, create("digicert", "grace.h")).await;
    drain(&app, None).await;
    let done = task(&app, queued.id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 3);
    let users: Vec<_> = sim
        .control()
        .users()
        .into_iter()
        .filter(|u| u.username == "grace.h")
        .collect();
    assert_eq!(users.len(), 1, "exactly one user created");
    assert_eq!(users[0].access_roles, vec![5], "the default role");
}

#[tokio::test]
async fn digicert_invalid_username_fails_after_one_attempt_with_digicerts_message() {
    let sim = common::digicert(5).await;
    let (_env, app) = digicert_app(&sim).await;
    let queued = submitted(&app, create("digicert", "bad name!")).await;
    drain(&app, None).await;
    let failed = task(&app, queued.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.attempts, 1);
    let error = failed.last_error.unwrap();
    assert!(
        error.contains("username"),
        "DigiCert's own message: {error}"
    );
}

#[tokio::test]
async fn digicert_refuses_disable_at_submit_by_default() {
    let sim = common::digicert(5).await;
    let (_env, app) = digicert_app(&sim).await;
    import_target(&app, "digicert", Opts::default()).await;
    let user = sim.control().users()[0].username.clone();
    let err = submit(
        &app,
        task_request("digicert", Operation::DisableAccount, &user, None),
    )
    .await
    .unwrap_err();
    assert!(err.is_refusal());
    assert!(err.to_string().contains("disable_strategy"), "{err}");
    assert!(app
        .store
        .list_tasks(&TaskFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
}

/// A user of the DigiCert simulator who is not in division `container`, by name.
fn someone_outside(sim: &idsync_sim::DigicertServer, container: u32) -> idsync_sim::SimUser {
    sim.control()
        .users()
        .into_iter()
        .find(|user| user.container_id != container)
        .unwrap()
}

#[tokio::test]
async fn digicert_refuses_a_container_move_at_submit_unless_container_move_is_set() {
    let sim = common::digicert_with(5, |config| config.edit_user_moves_container = true).await;
    let (_env, app) = digicert_app(&sim).await;
    import_target(&app, "digicert", Opts::default()).await;
    let user = someone_outside(&sim, 2);
    let err = submit(
        &app,
        task_request(
            "digicert",
            Operation::AddAccess,
            &user.username,
            Some("container:2"),
        ),
    )
    .await
    .unwrap_err();
    assert!(err.is_refusal(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("documents no call that moves a user")
            && text.contains("container_move = \"put_user\""),
        "{text}"
    );
    let queued = app
        .store
        .list_tasks(&TaskFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(queued.is_empty(), "nothing queued");

    // Opted in: the move goes through Edit user and is read back.
    let env = Env::new(
        &sim,
        &format!("{FAST_RETRY}\nrate_limit = []\ncontainer_move = \"put_user\""),
        "",
    );
    let app = env.app().await;
    import_target(&app, "digicert", Opts::default()).await;
    let queued = submitted(
        &app,
        task_request(
            "digicert",
            Operation::AddAccess,
            &user.username,
            Some("container:2"),
        ),
    )
    .await;
    drain(&app, None).await;
    let moved = task(&app, queued.id).await;
    assert_eq!(moved.status, TaskStatus::Succeeded, "{moved:?}");
    let after = sim.control().user(user.id).unwrap();
    assert_eq!(after.container_id, 2);
    assert_eq!(after.access_roles, user.access_roles, "roles untouched");
}

#[tokio::test]
async fn digicert_container_move_fails_once_where_edit_user_refuses_the_field() {
    let sim = common::digicert(5).await;
    let env = Env::new(
        &sim,
        &format!("{FAST_RETRY}\nrate_limit = []\ncontainer_move = \"put_user\""),
        "",
    );
    let app = env.app().await;
    import_target(&app, "digicert", Opts::default()).await;
    let user = someone_outside(&sim, 2);
    let queued = submitted(
        &app,
        task_request(
            "digicert",
            Operation::AddAccess,
            &user.username,
            Some("container:2"),
        ),
    )
    .await;
    drain(&app, None).await;
    let failed = task(&app, queued.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.attempts, 1, "a permanent error is not retried");
    let error = failed.last_error.unwrap();
    assert!(error.contains("invalid_field|container"), "{error}");
    assert_eq!(
        sim.control().user(user.id).unwrap().container_id,
        user.container_id
    );
}

#[tokio::test]
async fn an_unknown_container_move_fails_check_config_naming_the_key() {
    let sim = common::digicert(1).await;
    let env = Env::new(&sim, "container_move = \"move\"", "");
    let err = idsync::app::load_config_str(&env.config, "test", &[]).unwrap_err();
    let text = err
        .problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("targets.digicert.container_move") && text.contains("\"put_user\""),
        "{text}"
    );
    let jama = jama_with(seed(1, 1), |_| {}).await;
    let err = idsync::app::load_config_str(
        &jama_target(&jama, "container_move = \"put_user\""),
        "test",
        &[],
    )
    .unwrap_err();
    let text = err.problems[0].to_string();
    assert!(
        text.contains("targets.jama.container_move") && text.contains("kind = \"digicert\""),
        "{text}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/v2/user"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "3")
                .set_body_json(serde_json::json!({"errors":[{"code":"request_limit_exceeded","message":"slow down"}]})),
        )
        .mount(&server)
        .await;
    let target = format!(
        "[targets.digicert]\nkind = \"digicert\"\nbase_url = \"{}/services/v2\"\napi_key = \"k-123\"\nrate_limit = []\n{FAST_RETRY}\n",
        server.uri()
    );
    let env = Env::with_targets(&target, "");
    let app = env.app().await;
    let queued = submitted(&app, create("digicert", "paced.user")).await;
    let before = idsync::clock::now();
    let runner = ProvisionRunner::new(app.store(), app.connectors.clone(), app.config.clone());
    runner
        .run_pass(None, &CancellationToken::new())
        .await
        .unwrap();
    let waiting = task(&app, queued.id).await;
    assert_eq!(waiting.status, TaskStatus::Pending, "{waiting:?}");
    assert_eq!(waiting.attempts, 1);
    let due = waiting.next_attempt_at.unwrap();
    assert!(
        due >= before + chrono::Duration::milliseconds(2900),
        "next attempt at {due}, sooner than Retry-After: 3 s after {before}"
    );
}

#[tokio::test]
async fn a_template_with_a_missing_variable_fails_check_config() {
    let sim = jama_with(seed(1, 1), |_| {}).await;
    // A custom attribute is rendered with a sample value: the operator's key, not an error.
    let custom = jama_target(&sim, "[targets.jama.templates]\ncreate_account = '''{\"username\": \"${ user.no_such_field }\"}'''\n");
    assert!(idsync::app::load_config_str(&custom, "test", &[]).is_ok());
    let target = jama_target(&sim, "[targets.jama.templates]\ncreate_account = '''{\"username\": \"${ account.no_such_field }\"}'''\n");
    let err = idsync::app::load_config_str(&target, "test", &[]).unwrap_err();
    let text = err
        .problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("templates.create_account") && text.contains("no_such_field"),
        "{text}"
    );
}
