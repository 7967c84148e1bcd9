//! The real `idsync` binary, spawned as a user would run it, against the DigiCert simulator
//! served by the test on loopback: the daemon's schedule, metrics, API and signals; the
//! CLI's exit codes; and that no secret reaches a log line or the store file.

mod common;

use std::path::{Path, PathBuf};

use common::daemon::Daemon;
use common::secrets::Exposed;
use common::{
    digicert, eventually, free_port, jama_target, jama_with, run_cli, text, JAMA_SECRET, SIM_KEY,
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

/// Sum of the samples of one metric whose labels contain every `needle`.
fn metric_value(metrics: &str, name: &str, needles: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every row of an API list, by following its `X-Next-After` cursor from `first` (which
/// ends in a query string), and how many pages that took.
async fn follow_pages(daemon: &Daemon, first: &str) -> (Vec<serde_json::Value>, usize) {
    let client = reqwest::Client::new();
    let (mut rows, mut pages, mut path) = (Vec::new(), 0, first.to_string());
    loop {
        let answer = client
            .get(daemon.url(&path))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        let next = answer.headers().get("x-next-after").cloned();
        let page: Vec<serde_json::Value> = answer.json().await.unwrap();
        pages += 1;
        rows.extend(page);
        match next {
            Some(next) => path = format!("{first}&after={}", next.to_str().unwrap()),
            None => return (rows, pages),
        }
    }
}

/// The runs of `job`, newest first, from the API.
async fn runs_of(daemon: &Daemon, job: &str) -> Vec<serde_json::Value> {
    let (status, body) = daemon
        .get(
            &format!("/api/v1/runs?job={job}&limit=100"),
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn count_runs(runs: &[serde_json::Value], trigger: &str, outcome: &str) -> usize {
    runs.iter()
        .filter(|run| run["trigger"] == trigger && run["outcome"] == outcome)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_fires_scheduled_jobs_counts_them_guards_the_api_and_stops_on_sigterm() {
    let sim = digicert(300).await;
    let dir = tempfile::tempdir().unwrap();
    // The account import fires every second: one tick proves the schedule. The access
    // import's schedule (yearly) never fires during the test: it runs at start (caught up,
    // having never run) and through the API only, so its runs can be counted exactly.
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
schedule = "0 0 0 1 1 *"
"#,
    );
    let daemon = Daemon::start(
        &config,
        dir.path(),
        "daemon",
        &[("IDSYNC_TEST_API_TOKEN", API_TOKEN)],
    )
    .await;
    assert_eq!(daemon.get("/healthz", None).await.0, 200);

    // A cron tick starts the account import (after the catch-up run at start), and the
    // access import is caught up at start.
    let accounts = eventually("a scheduled account import", || async {
        let runs = runs_of(&daemon, "digicert-accounts").await;
        (count_runs(&runs, "schedule", "succeeded") >= 1).then_some(runs)
    })
    .await;
    assert_eq!(
        count_runs(&accounts, "startup", "succeeded"),
        1,
        "{accounts:?}"
    );
    let access = eventually("the access import caught up at start", || async {
        let runs = runs_of(&daemon, "digicert-access").await;
        (count_runs(&runs, "startup", "succeeded") == 1).then_some(runs)
    })
    .await;
    assert_eq!(access.len(), 1, "{access:?}");

    // /metrics counts every run the API lists (and those finished since).
    let (_, metrics) = daemon.get("/metrics", None).await;
    let accounts_ok = metric_value(
        &metrics,
        "idsync_job_runs_total",
        &[
            r#"job="digicert-accounts""#,
            r#"kind="account_import""#,
            r#"outcome="succeeded""#,
        ],
    );
    assert!(
        accounts_ok >= accounts.len() as f64 && accounts_ok >= 2.0,
        "{} runs listed:\n{metrics}",
        accounts.len()
    );
    let access_ok = metric_value(
        &metrics,
        "idsync_job_runs_total",
        &[r#"job="digicert-access""#, r#"outcome="succeeded""#],
    );
    assert_eq!(access_ok, 1.0, "{metrics}");
    assert_eq!(
        metric_value(
            &metrics,
            "idsync_import_objects_total",
            &[r#"object="account""#, r#"change="created""#]
        ),
        300.0,
        "{metrics}"
    );
    for family in [
        "idsync_target_requests_total{",
        "idsync_job_last_success_timestamp_seconds{",
        "idsync_build_info{",
    ] {
        assert!(metrics.contains(family), "no {family}:\n{metrics}");
    }

    // The API refuses a missing or wrong token, and answers the right one.
    assert_eq!(daemon.get("/api/v1/targets", None).await.0, 401);
    assert_eq!(
        daemon.get("/api/v1/targets", Some("wrong-token")).await.0,
        401
    );
    let (status, targets) = daemon.get("/api/v1/targets", Some(API_TOKEN)).await;
    assert_eq!(status, 200, "{targets}");
    assert!(targets.contains("\"digicert\""), "{targets}");
    let (status, listed) = daemon
        .get("/api/v1/targets/digicert/accounts?limit=2", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&listed)
            .unwrap()
            .len(),
        2
    );
    // Every list pages by its cursor: following `X-Next-After` by pages of 2 gives the
    // whole list, each row once, in the list's order.
    let key_of = |fields: &'static [&'static str]| {
        move |row: &serde_json::Value| {
            fields
                .iter()
                .map(|field| row[field].to_string())
                .collect::<Vec<_>>()
                .join("|")
        }
    };
    for (list, fields) in [
        ("/api/v1/targets/digicert/accounts?", &["id"][..]),
        ("/api/v1/accounts?status=active&", &["target", "id"][..]),
        (
            "/api/v1/targets/digicert/entitlements?",
            &["type", "id"][..],
        ),
        (
            "/api/v1/targets/digicert/access?",
            &["account_id", "entitlement_type", "entitlement_id"][..],
        ),
    ] {
        let key = key_of(fields);
        let (whole, pages) = follow_pages(&daemon, &format!("{list}limit=10000")).await;
        assert_eq!(pages, 1, "{list}");
        assert!(whole.len() > 2, "{list}: {}", whole.len());
        let (paged, pages) = follow_pages(&daemon, &format!("{list}limit=2")).await;
        assert_eq!(pages, whole.len().div_ceil(2), "{list}");
        assert_eq!(
            paged.iter().map(&key).collect::<Vec<_>>(),
            whole.iter().map(&key).collect::<Vec<_>>(),
            "{list}"
        );
    }
    // Runs, newest first: runs started while paging only come before the first page.
    let (before, _) = follow_pages(&daemon, "/api/v1/runs?limit=10000").await;
    let (paged, _) = follow_pages(&daemon, "/api/v1/runs?limit=1").await;
    let ids: Vec<i64> = paged
        .iter()
        .map(|run| run["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert!(before.len() >= 2);
    assert!(
        before
            .iter()
            .all(|run| ids.contains(&run["id"].as_i64().unwrap())),
        "{ids:?}"
    );

    // A job triggered through the API runs once more (the access import is idle, so it is
    // accepted, not refused as running).
    let (status, triggered) = daemon
        .post(
            "/api/v1/jobs/digicert-access/run",
            Some(API_TOKEN),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 202, "{triggered}");
    let access = eventually("the access import run through the API", || async {
        let runs = runs_of(&daemon, "digicert-access").await;
        (count_runs(&runs, "api", "succeeded") == 1).then_some(runs)
    })
    .await;
    assert_eq!(access.len(), 2, "{access:?}");
    let (status, _) = daemon
        .post(
            "/api/v1/jobs/nope/run",
            Some(API_TOKEN),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 404);

    // SIGTERM: a clean exit that cut no run short and left none open.
    let exited = daemon.terminate().await;
    assert!(exited.status.success(), "{exited:?}");
    assert!(exited.log.contains("Stopped."), "{}", exited.log);
    assert!(!exited.log.contains("interrupting"), "{}", exited.log);
    let runs = run_cli(
        vec![
            "--config".into(),
            config.display().to_string(),
            "--output".into(),
            "json".into(),
            "runs".into(),
            "list".into(),
        ],
        vec![("IDSYNC_TEST_API_TOKEN", API_TOKEN.to_string())],
    )
    .await;
    assert_eq!(runs.status.code(), Some(0), "{}", text(&runs));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    assert!(
        runs.iter().all(|run| run["outcome"] == "succeeded"),
        "{runs:?}"
    );
    assert!(
        exited.log.contains("\"run_id\""),
        "runs are logged with their run id"
    );

    let mut exposed = Exposed::new();
    exposed
        .text("log", &exited.log)
        .text("stdout", &exited.stdout)
        .text("metrics", metrics)
        .text("targets", targets)
        .text("runs", serde_json::to_string(&runs).unwrap())
        .store(&dir.path().join("idsync.db"));
    exposed.assert_free_of(&[SIM_KEY, API_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_is_off_without_a_token() {
    let sim = digicert(5).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, "");
    let daemon = Daemon::start(&config, dir.path(), "daemon", &[]).await;
    assert_eq!(daemon.get("/api/v1/targets", Some(API_TOKEN)).await.0, 404);
    assert_eq!(daemon.get("/metrics", None).await.0, 200);
    let exited = daemon.terminate().await;
    assert!(exited.status.success(), "{exited:?}");
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
    Exposed::new()
        .output("check-config", &output)
        .assert_free_of(&[SIM_KEY]);
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

    let mut exposed = Exposed::new();
    exposed.text("output", &transcript);
    exposed.assert_free_of(&[SIM_KEY, JAMA_SECRET, API_TOKEN, "Bearer "]);
    let mut stored = Exposed::new();
    stored.store(&dir.path().join("idsync.db"));
    stored.assert_free_of(&[SIM_KEY, JAMA_SECRET, API_TOKEN, "Bearer"]);
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
    let daemon = Daemon::start(
        &config,
        dir.path(),
        "daemon",
        &[("IDSYNC_TEST_API_TOKEN", API_TOKEN)],
    )
    .await;
    let body = serde_json::json!({
        "target": "jama", "operation": "create_account", "account": "api.hire",
        "attributes": {"firstname": "Api", "lastname": "Hire", "email": "api.hire@example.com"},
        "idempotency_key": "hr-1"
    });
    let (status, created) = daemon.post("/api/v1/tasks", Some(API_TOKEN), &body).await;
    assert_eq!(status, 201, "{created}");
    let task: serde_json::Value = serde_json::from_str(&created).unwrap();
    let (status, again) = daemon.post("/api/v1/tasks", Some(API_TOKEN), &body).await;
    assert_eq!(status, 200, "a repeated idempotency key returns the task");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&again).unwrap()["id"],
        task["id"]
    );
    let (status, refused) = daemon
        .post(
            "/api/v1/tasks",
            Some(API_TOKEN),
            &serde_json::json!({"target": "jama", "operation": "remove_account", "account": "api.hire"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(refused.contains("remove_account"), "{refused}");
    assert_eq!(daemon.post("/api/v1/tasks", None, &body).await.0, 401);

    // No provisioning job is configured: only instant provisioning can run the task.
    let path = format!("/api/v1/tasks/{}", task["id"]);
    let done = eventually("the instant task to succeed", || async {
        let (_, body) = daemon.get(&path, Some(API_TOKEN)).await;
        let now: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        (now["status"] == "succeeded").then_some(now)
    })
    .await;
    assert_eq!(done["attempts"], 1, "{done}");
    assert!(jama.control().find_user("api.hire").is_some());
    let (_, metrics) = daemon.get("/metrics", None).await;
    assert_eq!(
        metric_value(
            &metrics,
            "idsync_task_attempts_total",
            &[
                r#"target="jama""#,
                r#"operation="create_account""#,
                r#"outcome="succeeded""#
            ]
        ),
        1.0,
        "{metrics}"
    );
    assert!(metrics.contains("idsync_tasks{"), "{metrics}");
    let exited = daemon.terminate().await;
    assert!(exited.status.success(), "{exited:?}");
}
