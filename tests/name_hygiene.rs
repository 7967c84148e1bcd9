//! Name hygiene at submit through the real `idsync` binary and daemon, against the Jama
//! simulator on loopback: a name with a control or bidi character is refused (CLI exit 2,
//! HTTP 400 with the JSON error shape) with the character named and the value shown only
//! escaped, and nothing is queued, audited or sent; a non-ASCII name is taken, stored in NFC
//! and reaches the target.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::daemon::Daemon;
use common::{idsync_env, jama_target, jama_with, text, write_cli_config};
use idsync_sim::{JamaSeed, JamaServer};
use serde_json::{json, Value};

const API_TOKEN: &str = "api-token-Names7-never-print-me";

/// Whether `text` holds a control or bidi character (raw, not escaped).
fn has_raw_hostile(text: &str) -> bool {
    text.chars().any(|c| {
        c.is_control() && c != '\n'
            || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}')
    })
}

async fn sim() -> JamaServer {
    jama_with(JamaSeed::with_users(2), |_| {}).await
}

fn config(dir: &Path, sim: &JamaServer, extra: &str) -> PathBuf {
    write_cli_config(dir, "info", &jama_target(sim, extra))
}

async fn idsync(config: &Path, args: &[&str]) -> Output {
    idsync_env(config, args, Vec::new()).await
}

/// `task submit` of a Jama `create_account` for `account`, then `extra` arguments.
async fn submit_create(config: &Path, account: &str, extra: &[&str]) -> Output {
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
        "--attr",
        "firstname=Zoe\u{308}",
        "--attr",
        "lastname=Li",
        "--attr",
        "email=zoe@example.com",
    ];
    args.extend_from_slice(extra);
    idsync(config, &args).await
}

/// Every task (`task list --output json`).
async fn tasks(config: &Path) -> Vec<Value> {
    let out = idsync(config, &["--output", "json", "task", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "task list: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// How many audit events the store in `dir` holds.
async fn audit_events(dir: &Path) -> i64 {
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("idsync.db").display()))
        .await
        .unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_events")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    count
}

#[tokio::test]
async fn the_cli_refuses_an_escape_in_the_account_with_exit_2_and_queues_nothing() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &sim, "");

    let out = submit_create(&config, "\u{1b}[2J\u{1b}[31mevil", &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        said.contains(
            "error: account contains a control character U+001B at position 1 (value \
             \"\\u{1b}[2J\\u{1b}[31mevil\"); names and values must be plain text: remove it \
             and submit again"
        ),
        "{said:?}"
    );
    assert!(!has_raw_hostile(&said), "{said:?}");
    assert!(out.stdout.is_empty(), "{}", text(&out));

    // A bidi override in an attribute value and a request id with trailing space, likewise.
    let out = submit_create(&config, "zoe", &["--attr", "title=\u{202e}reganaM"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out)
            .contains("attribute `title` contains a bidi control character U+202E at position 1"),
        "{}",
        text(&out)
    );
    let out = submit_create(&config, "zoe", &["--request-id", "req-1 "]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("request_id (--request-id) has trailing whitespace U+0020"),
        "{}",
        text(&out)
    );

    assert_eq!(tasks(&config).await, Vec::<Value>::new());
    assert_eq!(audit_events(dir.path()).await, 0);
}

#[tokio::test]
async fn a_non_ascii_name_is_taken_in_nfc_and_reaches_the_target() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &sim, "instant_provisioning = true\n");

    // Typed decomposed (e + U+0308): stored, compared and sent composed.
    let out = submit_create(&config, "zoe\u{308}", &["--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["account"], "zo\u{eb}");
    assert_eq!(task["attributes"]["firstname"], "Zo\u{eb}");
    let created = sim.control().find_user("zo\u{eb}").unwrap();
    assert_eq!(created.first_name, "Zo\u{eb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_a_nul_and_an_override_with_400_json_and_takes_a_cjk_name() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &sim,
        &format!("\n[server]\napi_token = \"{API_TOKEN}\"\n"),
    );
    let daemon = Daemon::start(&config, dir.path(), "names", &[]).await;
    let create = |account: &str| {
        json!({
            "target": "jama", "operation": "create_account", "account": account,
            "attributes": { "firstname": "Li", "lastname": "Wei", "email": "li@example.com" },
        })
    };

    let (status, body) = daemon
        .post("/api/v1/tasks", Some(API_TOKEN), &create("a\u{0}b\u{202e}"))
        .await;
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error.as_object().unwrap().len(), 1, "{body}");
    let message = error["error"].as_str().unwrap();
    assert_eq!(
        message,
        "account contains a control character U+0000 at position 2 (value \
         \"a\\u{0}b\\u{202e}\"); names and values must be plain text: remove it and submit again"
    );
    assert!(!has_raw_hostile(message), "{message:?}");

    // Over a limit: the field, the length and the limit.
    let (status, body) = daemon
        .post("/api/v1/tasks", Some(API_TOKEN), &create(&"x".repeat(257)))
        .await;
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("account is 257 characters long, over the limit of 256"),
        "{body}"
    );

    let (status, body) = daemon.get("/api/v1/tasks", Some(API_TOKEN)).await;
    assert_eq!((status, body.trim()), (200, "[]"));
    assert_eq!(audit_events(dir.path()).await, 0);

    let (status, body) = daemon
        .post("/api/v1/tasks", Some(API_TOKEN), &create("李"))
        .await;
    assert_eq!(status, 201, "{body}");
    let task: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(task["account"], "李");
    daemon.terminate().await;
}
