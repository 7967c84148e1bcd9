//! The real `idsync` binary, spawned as a user would run it, against the DigiCert simulator
//! served by the test on loopback: the daemon's schedule, metrics, API and signals; the
//! CLI's exit codes; and that no secret reaches a log line or the store file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    digicert, free_port, jama_target, jama_with, run_cli, text, BIN, JAMA_SECRET, SIM_KEY,
};
use idsync_sim::{DigicertServer, SimControl};

const API_TOKEN: &str = "api-token-Kp4w9-never-print-me";

/// Writes a config for target `digicert` at `sim` into `dir`, with `extra` appended.
fn write_config(dir: &Path, sim: &DigicertServer, extra: &str) -> PathBuf {
    let path = dir.join("idsync.toml");
    let key_file = dir.join("digicert.key");
    std::fs::write(&key_file, format!("{SIM_KEY}\n")).unwrap();
    let text = format!(
        r#"[store]
url = "sqlite://{store}"

[log]
level = "info"
format = "json"

[targets.digicert]
kind = "digicert"
base_url = "{base}"
api_key = {{ file = "{key_file}" }}
read_retry = {{ max_attempts = 2, initial_backoff = "10ms", max_backoff = "20ms" }}

{extra}
"#,
        store = dir.join("idsync.db").display(),
        base = sim.base_url(),
        key_file = key_file.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// Sum of the samples of one metric whose labels contain every `needle`.
fn metric_value(metrics: &str, name: &str, needles: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Daemon {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, dir: &Path, port: u16) -> Self {
        let log = dir.join("daemon.log");
        let child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "run"])
            .env("IDSYNC__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("IDSYNC_TEST_API_TOKEN", API_TOKEN)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("daemon.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if get(&format!("{}/readyz", self.base), None).await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "daemon not ready; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Sends SIGTERM and returns how the process ended and how long it took.
    async fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daemon did not stop within 20 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_fires_scheduled_jobs_counts_them_guards_the_api_and_stops_on_sigterm() {
    let sim = digicert(300).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim,
        r#"[server]
api_token = { env = "IDSYNC_TEST_API_TOKEN" }

[jobs.digicert-accounts]
type = "account_import"
target = "digicert"
schedule = "* * * * * *"

[jobs.digicert-access]
type = "access_import"
target = "digicert"
schedule = "*/2 * * * * *"
"#,
    );
    let daemon = Daemon::start(&config, dir.path(), free_port());
    daemon.wait_ready().await;
    assert_eq!(get(&format!("{}/healthz", daemon.base), None).await.0, 200);

    // Scheduled runs happen and /metrics counts them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (_, metrics) = get(&format!("{}/metrics", daemon.base), None).await;
        let scheduled_ok = metric_value(
            &metrics,
            "idsync_job_runs_total",
            &[
                r#"job="digicert-accounts""#,
                r#"kind="account_import""#,
                r#"outcome="succeeded""#,
            ],
        );
        let access_ok = metric_value(
            &metrics,
            "idsync_job_runs_total",
            &[r#"job="digicert-access""#, r#"outcome="succeeded""#],
        );
        if scheduled_ok >= 3.0 && access_ok >= 1.0 {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled runs counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        metrics.contains("idsync_import_objects_total{"),
        "{metrics}"
    );
    assert!(
        metric_value(
            &metrics,
            "idsync_import_objects_total",
            &[r#"object="account""#, r#"change="created""#]
        ) >= 300.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("idsync_target_requests_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("idsync_job_last_success_timestamp_seconds{"),
        "{metrics}"
    );
    assert!(metrics.contains("idsync_build_info{"), "{metrics}");
    assert!(!metrics.contains(SIM_KEY) && !metrics.contains(API_TOKEN));

    // The API refuses a missing or wrong token, and answers the right one.
    let targets = format!("{}/api/v1/targets", daemon.base);
    assert_eq!(get(&targets, None).await.0, 401);
    assert_eq!(get(&targets, Some("wrong-token")).await.0, 401);
    let (status, body) = get(&targets, Some(API_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"digicert\""), "{body}");
    let (status, body) = get(
        &format!("{}/api/v1/runs?job=digicert-accounts&limit=5", daemon.base),
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(
        runs.iter()
            .any(|run| run["trigger"] == "schedule" && run["outcome"] == "succeeded"),
        "{body}"
    );
    let (status, body) = get(
        &format!("{}/api/v1/targets/digicert/accounts?limit=2", daemon.base),
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .len(),
        2
    );

    // A job can be triggered through the API.
    let client = reqwest::Client::new();
    let trigger = client
        .post(format!("{}/api/v1/jobs/digicert-access/run", daemon.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(trigger.status().as_u16(), 202 | 409),
        "{}",
        trigger.status()
    );
    let unknown = client
        .post(format!("{}/api/v1/jobs/nope/run", daemon.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    // SIGTERM: a prompt, clean exit.
    let log = daemon.log.clone();
    let (status, took) = daemon.terminate().await;
    let log = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        log.contains("\"run_id\""),
        "runs are logged with their run id"
    );
    assert!(!log.contains(SIM_KEY) && !log.contains(API_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_is_off_without_a_token() {
    let sim = digicert(5).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, "");
    let daemon = Daemon::start(&config, dir.path(), free_port());
    daemon.wait_ready().await;
    assert_eq!(
        get(&format!("{}/api/v1/targets", daemon.base), Some(API_TOKEN))
            .await
            .0,
        404
    );
    assert_eq!(get(&format!("{}/metrics", daemon.base), None).await.0, 200);
    let (status, _) = daemon.terminate().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_import_exit_codes_follow_the_contract() {
    let sim = digicert(50).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, "");
    let cfg = config.to_str().unwrap().to_string();
    let args = |rest: &[&str]| {
        let mut all = vec!["--config".to_string(), cfg.clone()];
        all.extend(rest.iter().map(|s| s.to_string()));
        all
    };

    let ok = run_cli(args(&["import", "digicert"]), vec![]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    // 20 of 50 gone: over the default 20 % threshold → held, exit 3.
    let control = sim.control();
    for user in control.users().iter().take(20) {
        control.remove_user(user.id);
    }
    let held = run_cli(args(&["import", "digicert", "--accounts"]), vec![]).await;
    assert_eq!(held.status.code(), Some(3), "{}", text(&held));
    assert!(text(&held).contains("--allow-deletions"));
    let allowed = run_cli(
        args(&["import", "digicert", "--accounts", "--allow-deletions"]),
        vec![],
    )
    .await;
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));

    // JSON listings are one array with the contract's fields.
    let listed = run_cli(
        args(&[
            "--output",
            "json",
            "accounts",
            "list",
            "--status",
            "suspended",
        ]),
        vec![],
    )
    .await;
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.len(), 20);
    for field in [
        "target",
        "id",
        "name",
        "display_name",
        "email",
        "status",
        "status_reason",
        "owner",
        "attributes",
        "first_seen",
        "last_seen",
    ] {
        assert!(rows[0].get(field).is_some(), "missing {field}");
    }
    let runs = run_cli(args(&["--output", "json", "runs", "list"]), vec![]).await;
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    assert!(runs.iter().any(|run| run["outcome"] == "held"));

    // A revoked key: exit 1 with a clear message; test-connection says the same.
    control.revoke_key();
    let failed = run_cli(args(&["import", "digicert"]), vec![]).await;
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(
        text(&failed).contains("rejected the credentials"),
        "{}",
        text(&failed)
    );
    let probe = run_cli(args(&["test-connection", "digicert"]), vec![]).await;
    assert_eq!(probe.status.code(), Some(1));
    assert!(text(&probe).contains("rejected the credentials"));

    // Usage errors are exit 2.
    let unknown = run_cli(args(&["import", "nope"]), vec![]).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reports_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!(
            r#"[targets.digicert]
kind = "digicert"
base_url = "ftp://example.com"
api_key = {{ env = "IDSYNC_TEST_UNSET_VAR_41" }}

[targets.other]
kind = "digicert"
base_url = "https://example.com/services/v2"
api_key = "{SIM_KEY}"
page_sise = 10

[jobs.nightly]
type = "account_import"
target = "digicert"
schedule = "0 0 * * *"

[jobs.never]
type = "account_import"
target = "missing"
schedule = "0 0 0 30 2 *"
"#
        ),
    )
    .unwrap();
    let output = run_cli(
        vec![
            "--config".into(),
            path.display().to_string(),
            "check-config".into(),
        ],
        vec![],
    )
    .await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    for expected in [
        "targets.digicert.base_url",
        "IDSYNC_TEST_UNSET_VAR_41",
        "page_sise",
        "jobs.nightly.schedule",
        "six fields",
        "jobs.never.target",
        "never fires",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(!out.contains(SIM_KEY), "a secret was printed:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_output_or_the_store_even_at_trace_level() {
    let sim = digicert(120).await;
    let jama_seed = idsync_sim::JamaSeed {
        users: 60,
        inactive_users: 3,
        groups: 3,
        ..Default::default()
    };
    let jama = jama_with(jama_seed, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}\n[server]\napi_token = \"{API_TOKEN}\"\n",
        jama_target(&jama, "")
    );
    let config = write_config(dir.path(), &sim, &extra);
    let cfg = config.to_str().unwrap().to_string();
    let trace = vec![("RUST_LOG", "trace".to_string())];

    let mut transcript = String::new();
    let ok = run_cli(
        vec![
            "--config".into(),
            cfg.clone(),
            "import".into(),
            "digicert".into(),
        ],
        trace.clone(),
    )
    .await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    transcript.push_str(&text(&ok));
    assert!(
        transcript.contains("TRACE") || transcript.contains("\"level\":\"TRACE\""),
        "trace logging is on"
    );

    // Error paths: a rejected key and a server error.
    sim.control().revoke_key();
    let denied = run_cli(
        vec![
            "--config".into(),
            cfg.clone(),
            "import".into(),
            "digicert".into(),
        ],
        trace.clone(),
    )
    .await;
    transcript.push_str(&text(&denied));
    sim.control().restore_key();
    sim.control().fail_next(10, 500).unwrap();
    let broken = run_cli(
        vec![
            "--config".into(),
            cfg.clone(),
            "test-connection".into(),
            "digicert".into(),
        ],
        trace.clone(),
    )
    .await;
    transcript.push_str(&text(&broken));
    let checked = run_cli(
        vec!["--config".into(), cfg.clone(), "check-config".into()],
        trace.clone(),
    )
    .await;
    transcript.push_str(&text(&checked));
    // Jama: a client secret and bearer tokens, on the happy path and when the secret is
    // rejected.
    let import_jama = || {
        vec![
            "--config".to_string(),
            cfg.clone(),
            "import".into(),
            "jama".into(),
        ]
    };
    let jama_ok = run_cli(import_jama(), trace.clone()).await;
    assert_eq!(jama_ok.status.code(), Some(0), "{}", text(&jama_ok));
    transcript.push_str(&text(&jama_ok));
    jama.control().revoke_credentials();
    let jama_denied = run_cli(import_jama(), trace).await;
    assert_eq!(jama_denied.status.code(), Some(1));
    assert!(text(&jama_denied).contains("client_id or client_secret rejected by target jama"));
    transcript.push_str(&text(&jama_denied));

    assert!(!transcript.contains(SIM_KEY), "API key leaked into output");
    assert!(
        !transcript.contains(JAMA_SECRET),
        "Jama client secret leaked into output"
    );
    assert!(
        !transcript.contains("Bearer "),
        "a bearer token leaked into output"
    );
    assert!(
        !transcript.contains(API_TOKEN),
        "API token leaked into output"
    );
    for file in ["idsync.db", "idsync.db-wal"] {
        let path = dir.path().join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            let haystack = String::from_utf8_lossy(&bytes);
            assert!(!haystack.contains(SIM_KEY), "API key stored in {file}");
            assert!(!haystack.contains(API_TOKEN), "API token stored in {file}");
            assert!(
                !haystack.contains(JAMA_SECRET),
                "Jama secret stored in {file}"
            );
            assert!(
                !haystack.contains("Bearer"),
                "a bearer token stored in {file}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "sim"),
    ignore = "the binary has `idsync demo` only with feature `sim`"
)]
async fn demo_once_imports_every_simulated_target() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo.db");
    let args = vec![
        "demo".to_string(),
        "--once".to_string(),
        "--users".to_string(),
        "300".to_string(),
        "--listen".to_string(),
        format!("127.0.0.1:{}", free_port()),
        "--store".to_string(),
        store.display().to_string(),
    ];
    let output = run_cli(args, vec![]).await;
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    for line in [
        "account_import of digicert: succeeded (300 read)",
        "access_import of digicert: succeeded",
        "account_import of jama: succeeded (500 read)",
        "access_import of jama: succeeded",
        "account_import of duckcreek: succeeded (300 read)",
        "access_import of duckcreek: succeeded",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    // The demo's tasks: all succeeded, the DigiCert hire after a retried 503.
    let hire = out
        .lines()
        .find(|line| line.contains("demo.hire") && line.contains("create_account"))
        .unwrap_or_default();
    assert!(hire.contains("succeeded") && hire.contains("2/5"), "{out}");
    for account in ["demo.jama.hire", "user00001"] {
        assert!(
            out.lines()
                .any(|line| line.contains(account) && line.contains("succeeded")),
            "{out}"
        );
    }
    // Duck Creek: a lock and a role grant, through the templates.
    for operation in ["disable_account", "add_access"] {
        assert!(
            out.lines().any(|line| line.contains("duckcreek")
                && line.contains(operation)
                && line.contains("succeeded")),
            "{out}"
        );
    }
    assert!(store.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tasks_with_instant_provisioning_run_at_once_and_are_counted() {
    let sim = digicert(5).await;
    let jama_seed = idsync_sim::JamaSeed {
        users: 5,
        inactive_users: 0,
        groups: 2,
        ..Default::default()
    };
    let jama = jama_with(jama_seed, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    // No provisioning job: only instant provisioning can run the task.
    let extra = format!(
        "{}\n[server]\napi_token = {{ env = \"IDSYNC_TEST_API_TOKEN\" }}\n",
        jama_target(&jama, "instant_provisioning = true\nrate_limit = []")
    );
    let config = write_config(dir.path(), &sim, &extra);
    let daemon = Daemon::start(&config, dir.path(), free_port());
    daemon.wait_ready().await;
    let client = reqwest::Client::new();
    let body = serde_json::json!({
        "target": "jama", "operation": "create_account", "account": "api.hire",
        "attributes": {"firstname": "Api", "lastname": "Hire", "email": "api.hire@example.com"},
        "idempotency_key": "hr-1"
    });
    let created = client
        .post(format!("{}/api/v1/tasks", daemon.base))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let task: serde_json::Value = created.json().await.unwrap();
    let again = client
        .post(format!("{}/api/v1/tasks", daemon.base))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status().as_u16(),
        200,
        "a repeated idempotency key returns the task"
    );
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["id"],
        task["id"]
    );
    let refused = client
        .post(format!("{}/api/v1/tasks", daemon.base))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({"target": "jama", "operation": "remove_account", "account": "api.hire"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.text().await.unwrap().contains("remove_account"));
    assert_eq!(
        client
            .post(format!("{}/api/v1/tasks", daemon.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    let url = format!("{}/api/v1/tasks/{}", daemon.base, task["id"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get(&url, Some(API_TOKEN)).await;
        let now: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if now["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "instant task not done: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(jama.control().find_user("api.hire").is_some());
    let (_, metrics) = get(&format!("{}/metrics", daemon.base), None).await;
    assert!(
        metric_value(
            &metrics,
            "idsync_task_attempts_total",
            &[
                r#"target="jama""#,
                r#"operation="create_account""#,
                r#"outcome="succeeded""#
            ]
        ) >= 1.0,
        "{metrics}"
    );
    assert!(metrics.contains("idsync_tasks{"), "{metrics}");
    let (status, _) = daemon.terminate().await;
    assert!(status.success());
}
