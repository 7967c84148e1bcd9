//! Strict task attributes through the real `idsync` binary and daemon, against the Jama
//! simulator on loopback: an attribute no template of the operation reads is refused (CLI
//! exit 2, HTTP 400 with a JSON error) with the keys that are read and a hint, nothing is
//! queued or audited; a custom key an operator's template reads passes `check-config` and
//! reaches the target's body; a real template error still fails `check-config`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::daemon::Daemon;
use common::{idsync_env, jama_target, jama_with, text, write_cli_config};
use idsync_sim::{JamaSeed, JamaServer};
use serde_json::{json, Value};

const API_TOKEN: &str = "api-token-Attr5-never-print-me";

/// What Jama's built-in `create_account` template reads, as the refusal lists it.
const JAMA_CREATE_READS: &str = "The attributes jama create_account reads are: email, \
    firstname, lastname, license_type, location, phonenumber, title.";

/// An operator's Jama `create_account` that sends the custom attribute `costcenter` as the
/// user's location, and no phone.
const COSTCENTER_CREATE: &str = r#"
[targets.jama.templates]
create_account = '''{"username": "${ account.name }", "password": "${ password }",
  "firstName": "${ user.firstname }", "lastName": "${ user.lastname }",
  "email": "${ user.email }", "location": "${ user.costcenter }", "licenseType": "NAMED"}'''
"#;

async fn sim() -> JamaServer {
    jama_with(JamaSeed::with_users(3), |_| {}).await
}

/// `idsync --config CONFIG ARGS…`.
async fn idsync(config: &Path, args: &[&str]) -> Output {
    idsync_env(config, args, Vec::new()).await
}

/// `task submit` of a Jama `create_account` for `account` with `attrs` (`KEY=VALUE`).
async fn submit_create(config: &Path, account: &str, attrs: &[&str], extra: &[&str]) -> Output {
    let mut args = vec![
        "--output",
        "json",
        "task",
        "submit",
        "--target",
        "jama",
        "--operation",
        "create_account",
        "--account",
        account,
    ];
    for attr in attrs {
        args.extend(["--attr", attr]);
    }
    args.extend_from_slice(extra);
    idsync(config, &args).await
}

/// Every task (`task list --output json`).
async fn tasks(config: &Path) -> Vec<Value> {
    let out = idsync(config, &["--output", "json", "task", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "task list: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// How many `task_submitted` audit events the store in `dir` holds.
async fn submitted_events(dir: &Path) -> i64 {
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("idsync.db").display()))
        .await
        .unwrap();
    let (count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_events WHERE action = 'task_submitted'")
            .fetch_one(&db)
            .await
            .unwrap();
    db.close().await;
    count
}

fn config(dir: &Path, sim: &JamaServer, extra: &str) -> PathBuf {
    write_cli_config(dir, "info", &jama_target(sim, extra))
}

#[tokio::test]
async fn the_cli_refuses_an_alias_with_a_hint_and_a_typo_by_name_and_queues_nothing() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &sim, "");
    let person = ["firstname=Pat", "lastname=Phone", "email=pat@example.com"];

    let phone = [&person[..], &["phone=+44 20 7946 0000"]].concat();
    let out = submit_create(&config, "pat.phone", &phone, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "unknown attribute \"phone\" for jama create_account: did you mean \
             \"phonenumber\"? {JAMA_CREATE_READS}"
        )),
        "{said}"
    );
    assert!(
        said.contains("targets.jama.templates.create_account"),
        "says where another key would be read: {said}"
    );

    // A typo of a required key is named as a typo, not as the key it misses.
    let out = submit_create(
        &config,
        "pat.typo",
        &["firstname=Pat", "lastname=Typo", "emial=pat@example.com"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(
            "unknown attribute \"emial\" for jama create_account: did you mean \"email\"?"
        ) && !said.contains("missing"),
        "{said}"
    );

    // Nothing was queued, audited or sent.
    assert_eq!(tasks(&config).await, Vec::<Value>::new());
    assert_eq!(submitted_events(dir.path()).await, 0);
    assert!(sim.control().find_user("pat.phone").is_none());

    // The same person with the key Jama's template reads is queued.
    let right = [&person[..], &["phonenumber=+44 20 7946 0000"]].concat();
    let out = submit_create(&config, "pat.phone", &right, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task["attributes"]["phonenumber"], "+44 20 7946 0000");
    assert_eq!(tasks(&config).await.len(), 1);
    assert_eq!(submitted_events(dir.path()).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_with_400_and_a_json_error_and_queues_nothing() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &sim,
        &format!("\n[server]\napi_token = \"{API_TOKEN}\"\n"),
    );
    let daemon = Daemon::start(&config, dir.path(), "attrs", &[]).await;
    let create = |attributes: Value| {
        json!({
            "target": "jama", "operation": "create_account", "account": "api.hire",
            "attributes": attributes,
        })
    };

    let (status, body) = daemon
        .post(
            "/api/v1/tasks",
            Some(API_TOKEN),
            &create(json!({
                "firstname": "Api", "lastname": "Hire", "email": "api.hire@example.com",
                "phone": "+44 20 7946 0000", "costcenter": "CC-42",
            })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "unknown attributes for jama create_account: \"costcenter\", \"phone\" (did you \
             mean \"phonenumber\"?). {JAMA_CREATE_READS}"
        )),
        "{message}"
    );
    assert_eq!(error.as_object().unwrap().len(), 1, "{body}");

    let (status, body) = daemon.get("/api/v1/tasks", Some(API_TOKEN)).await;
    assert_eq!((status, body.trim()), (200, "[]"));
    assert_eq!(submitted_events(dir.path()).await, 0);

    let (status, body) = daemon
        .post(
            "/api/v1/tasks",
            Some(API_TOKEN),
            &create(json!({
                "firstname": "Api", "lastname": "Hire", "email": "api.hire@example.com",
                "phonenumber": "+44 20 7946 0000",
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(submitted_events(dir.path()).await, 1);
    daemon.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_key_an_operator_template_reads_passes_check_config_and_reaches_the_target() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &sim,
        &format!("instant_provisioning = true\n{COSTCENTER_CREATE}"),
    );

    let out = idsync(&config, &["check-config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("  jama create_account: costcenter, email, firstname, lastname\n"),
        "check-config lists what each operation reads: {}",
        text(&out)
    );
    let out = idsync(&config, &["--output", "json", "check-config"]).await;
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
    let create = checked["task_attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["target"] == "jama" && line["operation"] == "create_account")
        .unwrap();
    assert_eq!(
        create["reads"],
        json!(["costcenter", "email", "firstname", "lastname"])
    );

    // This template sends no phone, so `phonenumber` is now the unknown key, with no hint.
    let person = [
        "firstname=Cora",
        "lastname=Center",
        "email=cora@example.com",
    ];
    let with_phone = [&person[..], &["phonenumber=555-0100"]].concat();
    let out = submit_create(&config, "cora.center", &with_phone, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "unknown attribute \"phonenumber\" for jama create_account: no template of this \
             operation reads it. The attributes jama create_account reads are: costcenter, \
             email, firstname, lastname."
        ),
        "{}",
        text(&out)
    );

    let with_costcenter = [&person[..], &["CostCenter=CC-42"]].concat();
    let out = submit_create(&config, "cora.center", &with_costcenter, &["--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task["status"], "succeeded", "{task}");
    let created = sim.control().find_user("cora.center").unwrap();
    assert_eq!(created.location.as_deref(), Some("CC-42"));
    assert_eq!(created.phone, None);
}

#[tokio::test]
async fn check_config_still_fails_on_a_real_template_error() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    for (broken, named) in [
        // Not a binding.
        ("${ usr.costcenter }", "usr"),
        // A binding without that attribute.
        ("${ account.costcenter }", "account.costcenter"),
        // A custom key read with a capital letter can never match an attribute.
        ("${ user.costCenter }", "user.costCenter"),
    ] {
        let template = COSTCENTER_CREATE.replace("${ user.costcenter }", broken);
        let config = config(dir.path(), &sim, &template);
        let out = idsync(&config, &["check-config"]).await;
        assert_eq!(out.status.code(), Some(2), "{broken}: {}", text(&out));
        assert!(
            text(&out).contains("targets.jama.templates.create_account")
                && text(&out).contains(named),
            "{broken}: {}",
            text(&out)
        );
    }
}
