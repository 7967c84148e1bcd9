//! Honest limits, against the real daemon and CLI: every API error is the JSON error shape
//! (an oversized body, a bad query string, a bad path, an unknown route or method), API
//! lists page with `after=` and report the next cursor, and a CLI listing cut short by its
//! limit says so on stderr while `--all` prints every row.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::daemon::Daemon;
use common::{idsync_env, jama_target, jama_with};
use futures::StreamExt;
use idsync_sim::{JamaSeed, JamaServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const API_TOKEN: &str = "api-token-Lm2x8-never-print-me";

/// How many tasks the paging tests queue: more than two CLI pages of 1,000.
const TASKS: usize = 2_002;

/// A config with target `jama` (no jobs: queued tasks stay pending) and the API on.
async fn setup(dir: &Path) -> (JamaServer, PathBuf) {
    let seed = JamaSeed {
        users: 1,
        inactive_users: 0,
        groups: 1,
        ..Default::default()
    };
    let jama = jama_with(seed, |_| {}).await;
    let config = common::write_cli_config(
        dir,
        "info",
        &format!(
            "{}\n[server]\napi_token = {{ env = \"IDSYNC_TEST_API_TOKEN\" }}\n",
            jama_target(&jama, "")
        ),
    );
    // The Jama secret is written into the config: keep it private, as the CLI asks.
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (jama, config)
}

/// The environment the CLI needs for the config (the API token it references).
fn cli_env() -> Vec<(&'static str, String)> {
    vec![("IDSYNC_TEST_API_TOKEN", API_TOKEN.to_string())]
}

async fn start(dir: &Path, config: &Path) -> Daemon {
    Daemon::start(
        config,
        dir,
        "daemon",
        &[("IDSYNC_TEST_API_TOKEN", API_TOKEN)],
    )
    .await
}

/// One API answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    /// The `error` of a JSON error answer with `status`; fails on any other shape.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.headers[reqwest::header::CONTENT_TYPE],
            "application/json",
            "{}",
            self.body
        );
        let value: Value = serde_json::from_str(&self.body).expect("a JSON body");
        let object = value.as_object().expect("a JSON object");
        assert_eq!(object.len(), 1, "only `error`: {}", self.body);
        object["error"].as_str().expect("`error` text").to_string()
    }
}

async fn call(
    client: &reqwest::Client,
    daemon: &Daemon,
    method: Method,
    path: &str,
    body: Option<reqwest::Body>,
) -> Answer {
    let mut request = client
        .request(method, daemon.url(path))
        .bearer_auth(API_TOKEN)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request
        .send()
        .await
        .expect("an answer, not a reset connection");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

fn create(n: usize) -> Value {
    json!({
        "target": "jama", "operation": "create_account", "account": format!("user{n:05}"),
        "attributes": {"firstname": "U", "lastname": format!("{n}"), "email": format!("u{n}@example.com")},
    })
}

/// Queues `count` tasks through the API, 16 at a time.
async fn submit_many(client: &reqwest::Client, daemon: &Daemon, count: usize) {
    let statuses: Vec<StatusCode> = futures::stream::iter(0..count)
        .map(|n| async move {
            let body = reqwest::Body::from(create(n).to_string());
            call(client, daemon, Method::POST, "/api/v1/tasks", Some(body))
                .await
                .status
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_json_and_the_daemon_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_jama, config) = setup(dir.path()).await;
    let daemon = start(dir.path(), &config).await;
    let client = reqwest::Client::new();

    // 20 MB, declared up front.
    let huge = format!("{{\"account\": \"{}\"}}", "a".repeat(20 * 1024 * 1024));
    let answer = call(
        &client,
        &daemon,
        Method::POST,
        "/api/v1/tasks",
        Some(huge.clone().into()),
    )
    .await;
    let message = answer.error(413);
    assert!(message.contains("1 MiB (1048576 bytes)"), "{message}");
    // 20 MB streamed in chunks, with no length declared.
    let chunks = futures::stream::iter(
        huge.into_bytes()
            .chunks(64 * 1024)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let answer = call(
        &client,
        &daemon,
        Method::POST,
        "/api/v1/tasks",
        Some(reqwest::Body::wrap_stream(chunks)),
    )
    .await;
    assert!(answer.error(413).contains("1 MiB"));
    // A body just under the limit is read and judged on its content.
    let padded = json!({"target": "jama", "operation": "create_account", "account": "x", "pad": "p".repeat(1000 * 1024)});
    let answer = call(
        &client,
        &daemon,
        Method::POST,
        "/api/v1/tasks",
        Some(padded.to_string().into()),
    )
    .await;
    assert!(
        answer.error(400).contains("unknown field `pad`"),
        "{}",
        answer.body
    );
    let answer = call(
        &client,
        &daemon,
        Method::POST,
        "/api/v1/tasks",
        Some("{".into()),
    )
    .await;
    assert!(answer.error(400).starts_with("invalid task:"));

    // Query strings.
    for (query, needle) in [
        (
            "limit=abc",
            "`limit` must be a whole number from 1 to 10000",
        ),
        ("limit=-1", "not `-1`"),
        ("limit=0", "not `0`"),
        (
            "status=paused",
            "`status`: unknown TaskStatus `paused` (expected one of: pending,",
        ),
        ("limt=5", "unknown field `limt`"),
        ("after=abc", "`abc` is not a task id"),
    ] {
        let answer = call(
            &client,
            &daemon,
            Method::GET,
            &format!("/api/v1/tasks?{query}"),
            None,
        )
        .await;
        let message = answer.error(400);
        assert!(message.contains(needle), "{query}: {message}");
    }
    for (path, needle) in [
        (
            "/api/v1/targets/jama/entitlements?after=nocolon",
            "`TYPE:ID`",
        ),
        (
            "/api/v1/targets/jama/access?after=one|two",
            "`ACCOUNT_ID|TYPE|ENTITLEMENT_ID`",
        ),
        ("/api/v1/accounts?after=noslash", "`TARGET/ID`"),
        ("/api/v1/runs?after=-3", "`-3` is not a run id"),
        (
            "/api/v1/targets/jama/accounts?status=gone",
            "`status`: unknown AccountStatus `gone` (expected one of",
        ),
    ] {
        let message = call(&client, &daemon, Method::GET, path, None)
            .await
            .error(400);
        assert!(message.contains(needle), "{path}: {message}");
    }

    // Paths.
    for path in [
        "/api/v1/tasks/999999999999999999999",
        "/api/v1/tasks/abc",
        "/api/v1/tasks/-1",
    ] {
        let message = call(&client, &daemon, Method::GET, path, None)
            .await
            .error(400);
        assert!(
            message.contains("is not a task id: give a whole number"),
            "{message}"
        );
    }
    let answer = call(
        &client,
        &daemon,
        Method::POST,
        "/api/v1/tasks/abc/cancel",
        None,
    )
    .await;
    assert!(answer.error(400).contains("`abc` is not a task id"));
    let answer = call(
        &client,
        &daemon,
        Method::GET,
        "/api/v1/targets/%FF/accounts",
        None,
    )
    .await;
    assert!(
        answer.error(400).starts_with("bad path:"),
        "{}",
        answer.body
    );
    assert!(call(&client, &daemon, Method::GET, "/api/v1/tasks/7", None)
        .await
        .error(404)
        .contains("no task 7"));

    // Routes and methods.
    let answer = call(&client, &daemon, Method::GET, "/api/v1/nope", None).await;
    let message = answer.error(404);
    assert!(
        message.contains("no API route GET /api/v1/nope"),
        "{message}"
    );
    let answer = call(&client, &daemon, Method::DELETE, "/api/v1/tasks", None).await;
    let message = answer.error(405);
    assert!(
        message.contains("DELETE is not allowed on /api/v1/tasks"),
        "{message}"
    );

    // Still up, still working.
    let (status, _) = daemon.get("/readyz", None).await;
    assert_eq!(status, 200);
    let answer = call(
        &client,
        &daemon,
        Method::POST,
        "/api/v1/tasks",
        Some(create(1).to_string().into()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    daemon.terminate().await;
}

/// Follows `X-Next-After` from `first` to the last page: every row's `id`, in order, and
/// the number of pages.
async fn follow(client: &reqwest::Client, daemon: &Daemon, first: &str) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut path = first.to_string();
    loop {
        let answer = call(client, daemon, Method::GET, &path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let rows: Vec<Value> = serde_json::from_str(&answer.body).unwrap();
        pages += 1;
        ids.extend(rows.iter().map(|row| row["id"].as_i64().unwrap()));
        match answer.headers.get("x-next-after") {
            Some(next) => {
                assert!(!rows.is_empty(), "a cursor comes with rows");
                path = format!("{first}&after={}", next.to_str().unwrap());
            }
            None => return (ids, pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_by_cursor_and_cli_listings_announce_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (_jama, config) = setup(dir.path()).await;
    let daemon = start(dir.path(), &config).await;
    let client = reqwest::Client::new();
    submit_many(&client, &daemon, TASKS).await;

    // The API: pages of 500 by the cursor, then of the default 100.
    let (ids, pages) = follow(&client, &daemon, "/api/v1/tasks?limit=500").await;
    assert_eq!(pages, 5);
    assert_eq!(ids.len(), TASKS);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "oldest first, each once"
    );
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), TASKS);
    let (by_default, pages) = follow(&client, &daemon, "/api/v1/tasks?status=pending").await;
    assert_eq!((by_default, pages), (ids.clone(), 21));
    // An exact last page says nothing more follows.
    let answer = call(
        &client,
        &daemon,
        Method::GET,
        "/api/v1/tasks?limit=2002",
        None,
    )
    .await;
    assert!(answer.headers.get("x-next-after").is_none());
    // A page of one: its cursor is its own row.
    let answer = call(&client, &daemon, Method::GET, "/api/v1/tasks?limit=1", None).await;
    assert_eq!(answer.headers["x-next-after"], ids[0].to_string().as_str());
    daemon.terminate().await;

    // The CLI: the default limit of 1,000 is announced on stderr, exit 0.
    let listed = idsync_env(&config, &["task", "list"], cli_env()).await;
    assert_eq!(listed.status.code(), Some(0));
    let stdout = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1 + 1000, "header and 1,000 rows");
    let stderr = String::from_utf8(listed.stderr).unwrap();
    assert_eq!(
        stderr.trim_end(),
        "1,000 of 2,002 tasks shown; use --limit N or --all"
    );
    // A limit that holds everything: no notice.
    let listed = idsync_env(&config, &["task", "list", "--limit", "2002"], cli_env()).await;
    assert_eq!(String::from_utf8(listed.stderr).unwrap(), "");
    assert_eq!(
        String::from_utf8(listed.stdout).unwrap().lines().count(),
        1 + TASKS
    );
    let listed = idsync_env(
        &config,
        &["--output", "json", "task", "list", "--limit", "5"],
        cli_env(),
    )
    .await;
    let rows: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.len(), 5);
    assert!(String::from_utf8(listed.stderr)
        .unwrap()
        .starts_with("5 of 2,002 tasks shown"));

    // --all: every row, once, in order; JSON is one valid array.
    let listed = idsync_env(
        &config,
        &["--output", "json", "task", "list", "--all"],
        cli_env(),
    )
    .await;
    assert_eq!(listed.status.code(), Some(0));
    assert_eq!(String::from_utf8(listed.stderr).unwrap(), "");
    let rows: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let all: Vec<i64> = rows.iter().map(|row| row["id"].as_i64().unwrap()).collect();
    assert_eq!(all, ids);
    let listed = idsync_env(&config, &["task", "list", "--all"], cli_env()).await;
    let stdout = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1 + TASKS, "one header, every row");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ID ")).count(), 1);
    let listed = idsync_env(
        &config,
        &[
            "--output", "json", "task", "list", "--all", "--status", "failed",
        ],
        cli_env(),
    )
    .await;
    assert_eq!(String::from_utf8(listed.stdout).unwrap(), "[]\n");

    // Refused: a zero limit, and --limit with --all.
    for args in [
        &["task", "list", "--limit", "0"][..],
        &["task", "list", "--limit", "5", "--all"][..],
        &["runs", "list", "--limit", "0"][..],
    ] {
        let refused = idsync_env(&config, args, cli_env()).await;
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
    }
}
