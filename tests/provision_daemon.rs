//! The provisioning queue through the real `idsync` binary, against the Jama simulator served
//! by the test on loopback: a daemon killed with SIGKILL mid-queue and restarted finishes
//! every task exactly once; no password, client secret or bearer token reaches a log line or
//! the store file, even at trace level; and `task submit|cancel` refuse what they must with
//! exit 2.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    free_port, idsync_env, jama_target, jama_with, text, write_cli_config, BIN, JAMA_SECRET,
};
use idsync_sim::{JamaSeed, JamaSim, JamaSimConfig, SimControl};
use secrecy::SecretString;
use serde_json::Value;

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

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, dir: &Path, name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "run"])
            .env(
                "IDSYNC__SERVER__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Waits (bounded) for the process to end and returns how it ended.
    async fn wait_exit(&mut self, within: Duration, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "daemon did not stop within {within:?} of {what}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ACCOUNTS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_queue_and_restarted_finishes_every_task_exactly_once() {
    // Every answer leaves 300 ms after the simulator acted on the request, so a task in
    // flight at the kill has usually created its user without hearing so.
    let proxy = JamaProxy::start(Duration::from_millis(300)).await;
    let control = proxy.control.clone();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "{}\n[jobs.provision]\ntype = \"provisioning\"\nschedule = \"* * * * * *\"\n",
            proxy.target(
                r#"max_concurrency = 2
timeout = "2s"
task_lease = "3s"
retry = { max_attempts = 5, initial_backoff = "1s", max_backoff = "2s", give_up_after = "5m" }"#,
            )
        ),
    );
    let names: Vec<String> = (1..=ACCOUNTS)
        .map(|n| format!("crash.user{n:02}"))
        .collect();
    for name in &names {
        submit_create(&config, name, &[]).await;
    }
    assert_eq!(count(&tasks(&config).await, "pending"), ACCOUNTS);

    // Kill the first daemon with SIGKILL once some tasks are done and some are in flight.
    let mut first = Daemon::start(&config, dir.path(), "first");
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let rows = tasks(&config).await;
        let done = count(&rows, "succeeded");
        if (3..ACCOUNTS).contains(&done) && count(&rows, "running") >= 1 {
            break;
        }
        assert!(
            done < ACCOUNTS,
            "every task finished before the kill; slow the simulator down:\n{}",
            summary(&rows)
        );
        assert!(
            Instant::now() < deadline,
            "the daemon did not get going within 25 s:\n{}\nlog:\n{}",
            summary(&rows),
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.signal("-KILL");
    let status = first.wait_exit(Duration::from_secs(10), "SIGKILL").await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let at_kill = tasks(&config).await;
    let left_running: Vec<i64> = at_kill
        .iter()
        .filter(|t| t["status"] == "running")
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    let done_at_kill = count(&at_kill, "succeeded");
    assert!(
        (3..ACCOUNTS).contains(&done_at_kill),
        "{}",
        summary(&at_kill)
    );
    assert!(
        !left_running.is_empty(),
        "no task was in flight at the kill (the test proves less):\n{}",
        summary(&at_kill)
    );
    // The tasks in flight whose user the target created although the dead process never
    // heard so (the simulator finishes a request whose client went away).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let created_unheard: Vec<&str> = at_kill
        .iter()
        .filter(|t| t["status"] == "running")
        .filter_map(|t| t["account"].as_str())
        .filter(|account| control.find_user(account).is_some())
        .collect();
    assert!(
        !created_unheard.is_empty(),
        "no in-flight create had reached the target at the kill (the test proves less):\n{}",
        summary(&at_kill)
    );

    // A second daemon returns the dead one's tasks once their lease expires and finishes
    // the queue.
    let second = Daemon::start(&config, dir.path(), "second");
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = tasks(&config).await;
        if rows.iter().all(|t| {
            ["succeeded", "failed", "cancelled"].contains(&t["status"].as_str().unwrap_or(""))
        }) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "tasks not final within 30 s of the restart:\n{}\nlog:\n{}",
            summary(&rows),
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let second_log = second.log();
    assert_eq!(
        count(&rows, "succeeded"),
        ACCOUNTS,
        "every task succeeds:\n{}\nlog:\n{second_log}",
        summary(&rows)
    );
    assert!(
        rows.iter()
            .all(|t| !t["last_error"].as_str().unwrap_or("").contains("taken")),
        "a task met its own account as someone else's:\n{}",
        summary(&rows)
    );
    assert!(
        second_log.contains("returned to the queue"),
        "the tasks left running ({left_running:?}) were not returned by lease expiry; log:\n{second_log}"
    );

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
    // One create per task: the attempt after the crash reads the target first, and finds
    // the users the dead process created without hearing so.
    let stats = control.stats();
    let posts = stats.by_route.get("POST /users").copied().unwrap_or(0);
    eprintln!(
        "killed with {done_at_kill} done and tasks {left_running:?} running \
         ({created_unheard:?} created unheard); {posts} POST /users"
    );
    assert_eq!(
        posts,
        ACCOUNTS as u64,
        "POST /users per task: once; {} were in flight at the kill ({created_unheard:?} \
         already created): {:?}",
        left_running.len(),
        stats.by_route
    );
    let refused = stats.by_status.get(&400).copied().unwrap_or(0)
        + stats.by_status.get(&409).copied().unwrap_or(0);
    assert_eq!(refused, 0, "duplicate creates were refused: {stats:?}");

    // SIGTERM stops the second daemon cleanly.
    let mut second = second;
    second.signal("-TERM");
    let status = second.wait_exit(Duration::from_secs(20), "SIGTERM").await;
    assert_eq!(status.code(), Some(0), "log:\n{}", second.log());
}

/// A Jama simulator behind a layer that records every `password` sent to `POST /users` (so
/// a test knows the generated passwords it must never find) and can answer late: the
/// simulator handles each request at once (to completion, even if the client goes away) and
/// the answer leaves `answer_delay` later, so a process killed while waiting has changed
/// the target without knowing it.
struct JamaProxy {
    control: idsync_sim::JamaControl,
    base: String,
    passwords: Arc<Mutex<Vec<String>>>,
}

impl JamaProxy {
    async fn start(answer_delay: Duration) -> Self {
        let sim = JamaSim::new(JamaSimConfig {
            client_id: "idsync-test".to_string(),
            client_secret: SecretString::from(JAMA_SECRET),
            seed: JamaSeed::with_users(5),
            rate_limits: Vec::new(),
            ..JamaSimConfig::default()
        });
        let control = sim.control();
        let passwords = Arc::new(Mutex::new(Vec::new()));
        let recorded = passwords.clone();
        let router = sim.router().layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let recorded = recorded.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                    if parts.method == axum::http::Method::POST
                        && parts.uri.path().ends_with("/users")
                    {
                        if let Ok(json) = serde_json::from_slice::<Value>(&bytes) {
                            if let Some(password) = json["password"].as_str() {
                                recorded.lock().unwrap().push(password.to_string());
                            }
                        }
                    }
                    let request =
                        axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
                    let response = tokio::spawn(next.run(request)).await.unwrap();
                    tokio::time::sleep(answer_delay).await;
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
        }
    }

    /// The `[targets.jama]` table for this proxy, with `extra` lines appended.
    fn target(&self, extra: &str) -> String {
        format!(
            r#"[targets.jama]
kind = "jama"
base_url = "{base}"
client_id = "idsync-test"
client_secret = "{JAMA_SECRET}"
read_retry = {{ max_attempts = 3, initial_backoff = "10ms", max_backoff = "50ms" }}
{extra}
"#,
            base = self.base
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_secret_or_token_reaches_logs_or_the_store_at_trace_level() {
    let proxy = JamaProxy::start(Duration::ZERO).await;
    let control = proxy.control.clone();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &proxy.target(
            r#"retry = { max_attempts = 5, initial_backoff = "200ms", max_backoff = "300ms" }"#,
        ),
    );
    let trace = || vec![("RUST_LOG", "trace".to_string())];
    let mut transcript = String::new();

    // The seeded jama.user00001 has another email: that create fails as taken (an error
    // answer to a body with a password).
    for name in ["leak.one", "leak.two", "leak.three", "jama.user00001"] {
        let out = idsync_env(
            &config,
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
                &format!("email={name}@leak.example.com"),
            ],
            trace(),
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        transcript.push_str(&text(&out));
    }
    // One create meets a 503 (sent with a password, answered with an error) and is retried.
    control.fail_next(1, 503).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let out = idsync_env(&config, &["provision", "--target", "jama"], trace()).await;
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "provision: {}",
            text(&out)
        );
        transcript.push_str(&text(&out));
        let rows = tasks(&config).await;
        if count(&rows, "succeeded") + count(&rows, "failed") == rows.len() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "tasks not final within 20 s:\n{}",
            summary(&rows)
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    };
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
    for password in &passwords {
        assert!(
            !transcript.contains(password.as_str()),
            "a generated password reached the output"
        );
    }
    assert!(
        !transcript.contains(JAMA_SECRET),
        "the client secret reached the output"
    );
    assert!(
        !transcript.contains("Bearer "),
        "a bearer token reached the output"
    );
    for file in ["idsync.db", "idsync.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            let haystack = String::from_utf8_lossy(&bytes);
            assert!(!haystack.contains(JAMA_SECRET), "client secret in {file}");
            assert!(
                !haystack.contains("\"password\""),
                "a password key in {file}"
            );
            assert!(!haystack.contains("Bearer"), "a bearer token in {file}");
            for password in &passwords {
                assert!(
                    !haystack.contains(password.as_str()),
                    "a generated password in {file}"
                );
            }
        }
    }
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
    assert!(!text(&out).contains("Chosen-Pa55-Zx9"), "{}", text(&out));
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
