//! The provisioning queue through the real `idsync` binary, against the Jama simulator served
//! by the test on loopback: a daemon killed with SIGKILL mid-queue and restarted finishes
//! every task exactly once; no password, client secret or bearer token reaches a log line or
//! the store file, even at trace level; and `task submit|cancel` refuse what they must with
//! exit 2.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use common::daemon::Daemon;
use common::secrets::Exposed;
use common::{
    eventually, idsync_env, jama_target, jama_with, text, write_cli_config, HANG_GUARD, JAMA_SECRET,
};
use idsync_sim::{FaultRule, JamaSeed, JamaSim, JamaSimConfig, SimControl};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::watch;

const API_TOKEN: &str = "api-token-Rt5y2-never-print-me";

/// `idsync --config CONFIG ARGS…`.
async fn idsync(config: &Path, args: &[&str]) -> Output {
    idsync_env(config, args, Vec::new()).await
}

fn write_config(dir: &Path, rest: &str) -> PathBuf {
    write_cli_config(dir, "info", rest)
}

/// Every task, oldest first (`task list --output json`).
async fn tasks(config: &Path) -> Vec<Value> {
    let out = idsync(
        config,
        &["--output", "json", "task", "list", "--limit", "1000"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "task list: {}", text(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap_or_else(|err| panic!("task list is not JSON ({err}): {}", text(&out)))
}

fn count(tasks: &[Value], status: &str) -> usize {
    tasks.iter().filter(|t| t["status"] == status).count()
}

fn summary(tasks: &[Value]) -> String {
    tasks
        .iter()
        .map(|t| {
            format!(
                "#{} {} {} attempts={} error={}",
                t["id"], t["account"], t["status"], t["attempts"], t["last_error"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Submits a Jama `create_account` for `account` and returns the task JSON.
async fn submit_create(config: &Path, account: &str, extra: &[&str]) -> Value {
    let email = format!("email={account}@example.com");
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
        "firstname=Crash",
        "--attr",
        "lastname=Test",
        "--attr",
        &email,
    ];
    args.extend_from_slice(extra);
    let out = idsync(config, &args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "submit {account}: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("submit output is not JSON ({err}): {}", text(&out)))
}

const ACCOUNTS: usize = 20;

/// Creates the target answers before it starts holding its answers.
const ANSWERED_BEFORE_THE_KILL: usize = 3;

/// Attempts in flight at once (`max_concurrency`): both are held at the kill.
const IN_FLIGHT: usize = 2;

/// The task lease of the crash test, in seconds.
const LEASE_SECS: i64 = 60;

/// Triggers the provisioning job through the daemon's API.
async fn provision_now(daemon: &Daemon) {
    let (status, body) = daemon
        .post(
            "/api/v1/jobs/provision/run",
            Some(API_TOKEN),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Every task, oldest first, from the daemon's API.
async fn api_tasks(daemon: &Daemon) -> Vec<Value> {
    let (status, body) = daemon
        .get("/api/v1/tasks?limit=1000", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The stored lease of each running task, by id.
async fn leases(db: &sqlx::SqlitePool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT id, lease_until FROM tasks WHERE status = 'running' ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_queue_and_restarted_finishes_every_task_exactly_once() {
    // The target answers the first three creates, then holds its answers: the users are
    // created, but the daemon never hears so.
    let proxy = JamaProxy::start(Some(ANSWERED_BEFORE_THE_KILL)).await;
    let control = proxy.control.clone();
    let dir = tempfile::tempdir().unwrap();
    // The provisioning job runs when the API says (its schedule, yearly, never fires during
    // the test). The timeout and lease are long enough that no attempt ends and no lease
    // runs out by itself during the test: the kill ends the attempts, and the test moves
    // the leases into the past rather than waiting them out.
    let config = write_config(
        dir.path(),
        &format!(
            "{}\n[server]\napi_token = \"{API_TOKEN}\"\n\n[jobs.provision]\ntype = \"provisioning\"\nschedule = \"0 0 0 1 1 *\"\n",
            proxy.target(&format!(
                r#"max_concurrency = {IN_FLIGHT}
timeout = "30s"
task_lease = "{LEASE_SECS}s"
retry = {{ max_attempts = 5, initial_backoff = "1s", max_backoff = "2s", give_up_after = "5m" }}"#,
            ))
        ),
    );
    let names: Vec<String> = (1..=ACCOUNTS)
        .map(|n| format!("crash.user{n:02}"))
        .collect();

    // The first daemon queues the creates, works until both its workers wait on a held
    // answer, and is killed with SIGKILL. Each worker records an attempt before it claims
    // the next task, so by then the three answered creates are recorded as succeeded.
    let first = Daemon::start(&config, dir.path(), "first", &[]).await;
    for name in &names {
        let (status, body) = first
            .post(
                "/api/v1/tasks",
                Some(API_TOKEN),
                &serde_json::json!({
                    "target": "jama", "operation": "create_account", "account": name,
                    "attributes": {
                        "firstname": "Crash", "lastname": "Test",
                        "email": format!("{name}@example.com"),
                    },
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(count(&api_tasks(&first).await, "pending"), ACCOUNTS);
    provision_now(&first).await;
    let mut held = proxy.held.subscribe();
    tokio::time::timeout(HANG_GUARD, held.wait_for(|held| *held == IN_FLIGHT))
        .await
        .unwrap_or_else(|_| panic!("no create held; log:\n{}", first.log()))
        .unwrap();
    let killed = first.kill().await;
    assert_eq!(killed.signal(), Some(9), "{killed:?}");
    let at_kill = tasks(&config).await;
    assert_eq!(
        (
            count(&at_kill, "succeeded"),
            count(&at_kill, "running"),
            count(&at_kill, "pending")
        ),
        (
            ANSWERED_BEFORE_THE_KILL,
            IN_FLIGHT,
            ACCOUNTS - ANSWERED_BEFORE_THE_KILL - IN_FLIGHT
        ),
        "{}",
        summary(&at_kill)
    );
    // The tasks in flight at the kill: the target created their users, unheard.
    let left_running: Vec<&str> = at_kill
        .iter()
        .filter(|t| t["status"] == "running")
        .filter_map(|t| t["account"].as_str())
        .collect();
    assert!(
        left_running
            .iter()
            .all(|account| control.find_user(account).is_some()),
        "{left_running:?} not all created at the target"
    );

    // Their leases, which still protect them, run out: moved back by the whole lease (the
    // daemon reads the wall clock; this stands for waiting it out).
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("idsync.db").display()
    ))
    .await
    .unwrap();
    let now = idsync::clock::now();
    for (id, lease_until) in leases(&db).await {
        let until = idsync::clock::parse(&lease_until).unwrap();
        assert!(
            until > now,
            "task {id}'s lease ran out by itself: {lease_until}"
        );
        let ran_out = until - chrono::Duration::seconds(LEASE_SECS);
        sqlx::query("UPDATE tasks SET lease_until = ?1 WHERE id = ?2")
            .bind(idsync::clock::format(ran_out))
            .bind(id)
            .execute(&db)
            .await
            .unwrap();
    }
    db.close().await;

    // A second daemon returns the dead one's tasks to the queue at start, and its pass
    // finishes the queue; the target answers at once now.
    proxy.open();
    let second = Daemon::start(&config, dir.path(), "second", &[]).await;
    let second_log = second.log();
    assert!(
        second_log.contains("returned to the queue") && second_log.contains("\"tasks\":2"),
        "the tasks left running ({left_running:?}) were not returned at start; log:\n{second_log}"
    );
    provision_now(&second).await;
    let rows = eventually("every task final", || async {
        let rows = api_tasks(&second).await;
        rows.iter()
            .all(|t| {
                ["succeeded", "failed", "cancelled"].contains(&t["status"].as_str().unwrap_or(""))
            })
            .then_some(rows)
    })
    .await;
    let exited = second.terminate().await;
    assert_eq!(exited.status.code(), Some(0), "{exited:?}");
    assert_eq!(
        count(&rows, "succeeded"),
        ACCOUNTS,
        "every task succeeds:\n{}\nlog:\n{}",
        summary(&rows),
        exited.log
    );
    assert!(
        rows.iter()
            .all(|t| !t["last_error"].as_str().unwrap_or("").contains("taken")),
        "a task met its own account as someone else's:\n{}",
        summary(&rows)
    );
    // The attempt after the crash read the target first and found the user in place.
    for account in &left_running {
        let task = rows.iter().find(|t| t["account"] == *account).unwrap();
        assert_eq!(task["attempts"], 2, "{}", summary(&rows));
    }

    // At the target: each username exactly once, with the task's email.
    let users: Vec<_> = control
        .users()
        .into_iter()
        .filter(|u| u.username.starts_with("crash.user"))
        .collect();
    let usernames: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    let distinct: BTreeSet<&str> = usernames.iter().copied().collect();
    assert_eq!(
        usernames.len(),
        ACCOUNTS,
        "users at the target: {usernames:?}"
    );
    assert_eq!(
        distinct,
        names.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    for user in &users {
        assert_eq!(user.email, format!("{}@example.com", user.username));
    }
    // One create per task: the creates the dead process sent were not sent again.
    let stats = control.stats();
    let posts = stats.by_route.get("POST /users").copied().unwrap_or(0);
    assert_eq!(
        posts, ACCOUNTS as u64,
        "POST /users per task: once; {left_running:?} were created unheard at the kill: {:?}",
        stats.by_route
    );
    let refused = stats.by_status.get(&400).copied().unwrap_or(0)
        + stats.by_status.get(&409).copied().unwrap_or(0);
    assert_eq!(refused, 0, "duplicate creates were refused: {stats:?}");
}

/// A Jama simulator behind a layer that records every `password` sent to `POST /users` (so
/// a test knows the generated passwords it must never find) and can hold answers: the
/// simulator handles each create at once (to completion, even if the client goes away), and
/// past a budget of answered creates, the answer waits until the proxy is opened, so a
/// process killed while waiting has changed the target without knowing it.
struct JamaProxy {
    control: idsync_sim::JamaControl,
    base: String,
    passwords: Arc<Mutex<Vec<String>>>,
    /// Answers held so far.
    held: Arc<watch::Sender<usize>>,
    /// Whether held (and later) answers go out.
    opened: Arc<watch::Sender<bool>>,
}

impl JamaProxy {
    /// A proxy that answers `budget` creates, then holds the answers until [`open`]ed
    /// (`None`: it never holds one).
    ///
    /// [`open`]: JamaProxy::open
    async fn start(budget: Option<usize>) -> Self {
        let sim = JamaSim::new(JamaSimConfig {
            client_id: "idsync-test".to_string(),
            client_secret: SecretString::from(JAMA_SECRET),
            seed: JamaSeed::with_users(5),
            rate_limits: Vec::new(),
            ..JamaSimConfig::default()
        });
        let control = sim.control();
        let passwords = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(watch::Sender::new(0usize));
        let opened = Arc::new(watch::Sender::new(budget.is_none()));
        let answered = Arc::new(Mutex::new(0usize));
        let (recorded, layer_held, layer_opened) =
            (passwords.clone(), held.clone(), opened.clone());
        let router = sim.router().layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let recorded = recorded.clone();
                let (held, opened, answered) =
                    (layer_held.clone(), layer_opened.clone(), answered.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                    let create = parts.method == axum::http::Method::POST
                        && parts.uri.path().ends_with("/users");
                    if create {
                        if let Ok(json) = serde_json::from_slice::<Value>(&bytes) {
                            if let Some(password) = json["password"].as_str() {
                                recorded.lock().unwrap().push(password.to_string());
                            }
                        }
                    }
                    let request =
                        axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
                    let response = tokio::spawn(next.run(request)).await.unwrap();
                    if create {
                        let over_budget = {
                            let mut answered = answered.lock().unwrap();
                            *answered += 1;
                            budget.is_some_and(|budget| *answered > budget)
                        };
                        if over_budget && !*opened.borrow() {
                            held.send_modify(|held| *held += 1);
                            let _ = opened.subscribe().wait_for(|open| *open).await;
                        }
                    }
                    response
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            control,
            base,
            passwords,
            held,
            opened,
        }
    }

    /// Lets the held answers, and every later one, go out.
    fn open(&self) {
        self.opened.send_replace(true);
    }

    /// The `[targets.jama]` table for this proxy, with `extra` lines appended.
    fn target(&self, extra: &str) -> String {
        format!(
            r#"[targets.jama]
kind = "jama"
base_url = "{base}"
client_id = "idsync-test"
client_secret = "{JAMA_SECRET}"
rate_limit = []
read_retry = {{ max_attempts = 3, initial_backoff = "10ms", max_backoff = "50ms" }}
{extra}
"#,
            base = self.base
        )
    }
}

/// Submits a Jama `create_account` of `name` (at trace level) through the CLI, adding its
/// output to `transcript`.
async fn submit_leak_create(config: &Path, name: &str, transcript: &mut String) {
    let email = format!("email={name}@leak.example.com");
    let out = idsync_env(
        config,
        &[
            "task",
            "submit",
            "--target",
            "jama",
            "--operation",
            "create_account",
            "--account",
            name,
            "--attr",
            "firstname=Leak",
            "--attr",
            "lastname=Check",
            "--attr",
            &email,
        ],
        vec![("RUST_LOG", "trace".to_string())],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    transcript.push_str(&text(&out));
}

/// Runs `idsync provision --target jama` (at trace level) until every task is final, adding
/// each pass's output to `transcript`; returns the tasks.
async fn provision_until_final(config: &Path, transcript: &mut String) -> Vec<Value> {
    let mut passes = 0;
    loop {
        passes += 1;
        let out = idsync_env(
            config,
            &["provision", "--target", "jama"],
            vec![("RUST_LOG", "trace".to_string())],
        )
        .await;
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "provision: {}",
            text(&out)
        );
        transcript.push_str(&text(&out));
        let rows = tasks(config).await;
        if count(&rows, "succeeded") + count(&rows, "failed") == rows.len() {
            return rows;
        }
        assert!(
            passes < 10,
            "tasks not final after {passes} passes:\n{}",
            summary(&rows)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_secret_or_token_reaches_logs_or_the_store_at_trace_level() {
    let proxy = JamaProxy::start(None).await;
    let control = proxy.control.clone();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &proxy.target(
            r#"retry = { max_attempts = 5, initial_backoff = "10ms", max_backoff = "20ms" }"#,
        ),
    );
    let trace = || vec![("RUST_LOG", "trace".to_string())];
    let mut transcript = String::new();

    // Three creates first; one meets a 503 below and is retried.
    for name in ["leak.one", "leak.two", "leak.three"] {
        submit_leak_create(&config, name, &mut transcript).await;
    }
    // One create meets a 503 (sent with a password, answered with an error) and is retried.
    // Only a create: the engine claims several tasks at once, so "the next request" could
    // be another task's look-up, which carries no password.
    control
        .fail_when(
            FaultRule::new(503)
                .with_method("POST")
                .with_path_prefix("/rest/v1/users")
                .with_times(1),
        )
        .unwrap();
    // Passes until every task is final: the retry is due 10-20 ms after the 503, so by the
    // next pass.
    provision_until_final(&config, &mut transcript).await;
    // Then the seeded jama.user00001, which has another email: that create fails as taken
    // (an error answer to a body with a password). Submitted after the 503 was spent, so
    // the 503 cannot land on it (an uncertain retry reads the target and sends nothing).
    submit_leak_create(&config, "jama.user00001", &mut transcript).await;
    let rows = provision_until_final(&config, &mut transcript).await;
    assert_eq!(count(&rows, "succeeded"), 3, "{}", summary(&rows));
    let taken = rows
        .iter()
        .find(|t| t["account"] == "jama.user00001")
        .unwrap();
    assert_eq!(taken["status"], "failed");
    assert!(
        taken["last_error"].as_str().unwrap_or("").contains("taken"),
        "{}",
        summary(&rows)
    );
    let shown = idsync_env(
        &config,
        &["--output", "json", "task", "show", &taken["id"].to_string()],
        trace(),
    )
    .await;
    transcript.push_str(&text(&shown));
    transcript.push_str(&serde_json::to_string(&rows).unwrap());

    let passwords = proxy.passwords.lock().unwrap().clone();
    // 3 creates, one repeated after the 503, and the taken one.
    assert!(
        passwords.len() >= 5,
        "passwords seen by the target: {}",
        passwords.len()
    );
    assert!(
        passwords.iter().all(|p| p.len() >= 12),
        "generated passwords are strong"
    );
    assert_eq!(
        passwords.iter().collect::<BTreeSet<_>>().len(),
        passwords.len(),
        "each attempt gets a fresh password"
    );
    assert!(
        transcript.contains("TRACE") || transcript.contains("\"level\":\"TRACE\""),
        "trace logging is on"
    );
    assert!(
        !has_password_value(&transcript),
        "a password field with a value reached the output"
    );
    let passwords: Vec<&str> = passwords.iter().map(String::as_str).collect();
    let mut output = Exposed::new();
    output.text("output", &transcript);
    output.assert_free_of(&[&passwords[..], &[JAMA_SECRET, "Bearer "]].concat());
    let mut stored = Exposed::new();
    stored.store(&dir.path().join("idsync.db"));
    stored.assert_free_of(&[&passwords[..], &[JAMA_SECRET, "\"password\"", "Bearer"]].concat());
}

/// Whether `text` holds `"password"`, optional whitespace, `:`, optional whitespace, `"`
/// (a JSON password key with a string value), also when the JSON is itself escaped in a
/// log field (`\"password\":\"`).
fn has_password_value(text: &str) -> bool {
    let unescaped = text.replace("\\\"", "\"");
    unescaped.match_indices("\"password\"").any(|(at, key)| {
        let rest = unescaped[at + key.len()..].trim_start();
        rest.strip_prefix(':')
            .is_some_and(|rest| rest.trim_start().starts_with('"'))
    })
}

#[test]
fn password_values_are_recognised() {
    assert!(has_password_value(r#"{"password": "x"}"#));
    assert!(has_password_value(r#"body="{\"password\":\"x\"}""#));
    assert!(!has_password_value(
        r#"{"password": null} password must be a string"#
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_cancel_refusals_exit_2_and_queue_nothing() {
    let sim = jama_with(JamaSeed::with_users(5), |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &jama_target(&sim, ""));
    let imported = idsync(&config, &["import", "jama"]).await;
    assert_eq!(imported.status.code(), Some(0), "{}", text(&imported));

    // An operation the target does not offer: refused, naming operation, target and why.
    let out = idsync(
        &config,
        &[
            "task",
            "submit",
            "--target",
            "jama",
            "--operation",
            "remove_account",
            "--account",
            "jama.user00002",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let message = text(&out);
    for needle in ["remove_account", "jama", "no user delete"] {
        assert!(message.contains(needle), "missing `{needle}`: {message}");
    }
    // A password on submit: refused, and its value not echoed.
    let out = idsync(
        &config,
        &[
            "task",
            "submit",
            "--target",
            "jama",
            "--operation",
            "create_account",
            "--account",
            "pw.user",
            "--attr",
            "firstname=P",
            "--attr",
            "lastname=W",
            "--attr",
            "email=pw.user@example.com",
            "--attr",
            "password=Chosen-Pa55-Zx9",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("password"), "{}", text(&out));
    Exposed::new()
        .output("submit", &out)
        .assert_free_of(&["Chosen-Pa55-Zx9"]);
    assert!(
        tasks(&config).await.is_empty(),
        "a refused submit queued something"
    );

    // A repeated idempotency key returns the same task.
    let key = ["--idempotency-key", "ticket-4711"];
    let first = submit_create(&config, "idem.user", &key).await;
    let again = submit_create(&config, "idem.user", &key).await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(tasks(&config).await.len(), 1);

    // Cancel applies to pending tasks only.
    let provisioned = idsync(&config, &["provision", "--target", "jama"]).await;
    assert_eq!(provisioned.status.code(), Some(0), "{}", text(&provisioned));
    let rows = tasks(&config).await;
    assert_eq!(rows[0]["status"], "succeeded", "{}", summary(&rows));
    let id = first["id"].to_string();
    let out = idsync(&config, &["task", "cancel", &id]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&id), "{}", text(&out));
    assert_eq!(tasks(&config).await[0]["status"], "succeeded");
    assert!(sim.control().find_user("idem.user").is_some());
}
