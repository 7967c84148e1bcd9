//! What the scenarios share: the simulators behind one [`Target`] trait, the [`Case`] (a
//! scenario's directory, config, processes' output and end checks), and the daemon's API.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use super::common::daemon::Daemon;
use super::common::invariants::{self, StoreView};
use super::common::secrets::Exposed;
use super::common::{
    eventually, idsync_env, text, write_cli_config, DC_PASSWORD, DC_USER, JAMA_SECRET, SIM_KEY,
};
use idsync_sim::{
    DcUserSpec, DigicertControl, DigicertSeed, DigicertServer, DigicertSim, DigicertSimConfig,
    DuckCreekControl, DuckCreekSeed, DuckCreekServer, DuckCreekSim, DuckCreekSimConfig, FaultRule,
    JamaControl, JamaSeed, JamaServer, JamaSim, JamaSimConfig, JamaUserSpec, SimControl, SimStats,
    UserSpec,
};
use secrecy::SecretString;
use serde_json::{json, Value};

/// The read retries of every target in the suite: quick, so a retried read costs
/// milliseconds.
const READ_RETRY: &str =
    r#"read_retry = { max_attempts = 4, initial_backoff = "20ms", max_backoff = "200ms" }"#;

/// A simulator the suite drives, whatever its target.
pub trait Target {
    /// The target's name in the configs.
    const NAME: &'static str;

    /// The `[targets.NAME]` table pointing at the simulator, unpaced, with the suite's read
    /// retries (unless `extra` sets its own) and `extra` appended.
    fn table(&self, extra: &str) -> String;

    /// The simulator's control handle.
    type Control: SimControl;

    /// A control handle of the simulator.
    fn levers(&self) -> Self::Control;

    /// Installs a fault rule.
    fn fault(&self, rule: FaultRule) {
        let shown = format!("{rule:?}");
        if self.levers().fail_when(rule).is_err() {
            panic!("the simulator refused the fault rule {shown}");
        }
    }

    /// Removes every fault rule.
    fn clear_faults(&self) {
        self.levers().clear_faults();
    }

    /// The simulator's counters.
    fn stats(&self) -> SimStats {
        self.levers().stats()
    }

    /// The ids of the users the target has.
    fn live_ids(&self) -> Vec<String>;

    /// The login names of the users the target has.
    fn usernames(&self) -> Vec<String>;

    /// Changes the target between imports: the first user leaves, a new one (`churn.user`)
    /// arrives.
    fn churn(&self);

    /// The secrets the target's credentials are made of.
    fn secrets(&self) -> Vec<&'static str>;
}

/// `extra`, with the suite's read retries and no pacing unless it sets them.
fn with_defaults(extra: &str) -> String {
    let mut lines = String::new();
    if !extra.contains("read_retry") {
        lines.push_str(READ_RETRY);
        lines.push('\n');
    }
    if !extra.contains("rate_limit") {
        lines.push_str("rate_limit = []\n");
    }
    lines.push_str(extra);
    lines
}

impl Target for DigicertServer {
    const NAME: &'static str = "digicert";

    fn table(&self, extra: &str) -> String {
        format!(
            "[targets.digicert]\nkind = \"digicert\"\nbase_url = \"{}\"\napi_key = \"{SIM_KEY}\"\n{}\n",
            self.base_url(),
            with_defaults(extra)
        )
    }

    type Control = DigicertControl;

    fn levers(&self) -> DigicertControl {
        self.control()
    }

    fn live_ids(&self) -> Vec<String> {
        let users = self.control().users();
        users.iter().map(|user| user.id.to_string()).collect()
    }

    fn usernames(&self) -> Vec<String> {
        let users = self.control().users();
        users.into_iter().map(|user| user.username).collect()
    }

    fn churn(&self) {
        let control = self.control();
        let first = control.users()[0].id;
        assert!(control.remove_user(first));
        let name = "churn.user".to_string();
        control
            .add_user(UserSpec::new(
                &name,
                "Churn",
                "User",
                format!("{name}@example.com"),
            ))
            .unwrap();
    }

    fn secrets(&self) -> Vec<&'static str> {
        vec![SIM_KEY]
    }
}

impl Target for JamaServer {
    const NAME: &'static str = "jama";

    fn table(&self, extra: &str) -> String {
        format!(
            "[targets.jama]\nkind = \"jama\"\nbase_url = \"{}\"\nclient_id = \"idsync-test\"\nclient_secret = \"{JAMA_SECRET}\"\n{}\n",
            self.base_url(),
            with_defaults(extra)
        )
    }

    type Control = JamaControl;

    fn levers(&self) -> JamaControl {
        self.control()
    }

    fn live_ids(&self) -> Vec<String> {
        let users = self.control().users();
        users.iter().map(|user| user.id.to_string()).collect()
    }

    fn usernames(&self) -> Vec<String> {
        let users = self.control().users();
        users.into_iter().map(|user| user.username).collect()
    }

    fn churn(&self) {
        let control = self.control();
        let first = control.users()[0].id;
        assert!(control.remove_user(first));
        let name = "churn.user".to_string();
        control
            .add_user(JamaUserSpec {
                username: name.clone(),
                first_name: "Churn".into(),
                last_name: "User".into(),
                email: format!("{name}@example.com"),
                phone: None,
                title: None,
                location: None,
                license_type: Default::default(),
                active: true,
            })
            .unwrap();
    }

    fn secrets(&self) -> Vec<&'static str> {
        vec![JAMA_SECRET]
    }
}

impl Target for DuckCreekServer {
    const NAME: &'static str = "duckcreek";

    fn table(&self, extra: &str) -> String {
        format!(
            "[targets.duckcreek]\nkind = \"duckcreek\"\nbase_url = \"{}\"\nusername = \"{DC_USER}\"\npassword = \"{}\"\n{}\n",
            self.base_url(),
            DC_PASSWORD.replace('\\', "\\\\").replace('"', "\\\""),
            with_defaults(extra)
        )
    }

    type Control = DuckCreekControl;

    fn levers(&self) -> DuckCreekControl {
        self.control()
    }

    fn live_ids(&self) -> Vec<String> {
        let users = self.control().users();
        users.iter().map(|user| user.id.to_string()).collect()
    }

    fn usernames(&self) -> Vec<String> {
        let users = self.control().users();
        users.into_iter().map(|user| user.name).collect()
    }

    fn churn(&self) {
        let control = self.control();
        let first = control.users()[0].id;
        assert!(control.remove_user(first));
        let name = "churn.user".to_string();
        control
            .add_user(DcUserSpec::new(
                &name,
                format!("{name}@example.com"),
                "Churn User",
            ))
            .unwrap();
    }

    fn secrets(&self) -> Vec<&'static str> {
        // The password is XML-escaped into every request body: both forms are secrets.
        vec![DC_PASSWORD, "dc-pw&amp;&lt;Kq9&gt;&apos;never-print-me"]
    }
}

/// A DigiCert simulator with `users` users (no rate windows), adjusted by `tweak`.
pub async fn digicert(users: u32, tweak: impl FnOnce(&mut DigicertSimConfig)) -> DigicertServer {
    let mut config = DigicertSimConfig {
        api_key: SIM_KEY.to_string(),
        seed: DigicertSeed::with_users(users),
        rate_limits: Vec::new(),
        ..DigicertSimConfig::default()
    };
    tweak(&mut config);
    DigicertSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A Jama simulator with `users` users in 3 groups (no rate windows), adjusted by `tweak`.
pub async fn jama(users: u32, tweak: impl FnOnce(&mut JamaSimConfig)) -> JamaServer {
    let mut config = JamaSimConfig {
        client_id: "idsync-test".to_string(),
        client_secret: SecretString::from(JAMA_SECRET),
        seed: JamaSeed {
            users,
            groups: 3,
            ..JamaSeed::default()
        },
        rate_limits: Vec::new(),
        ..JamaSimConfig::default()
    };
    tweak(&mut config);
    JamaSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A Duck Creek simulator with `users` users.
pub async fn duckcreek(users: u32) -> DuckCreekServer {
    let config = DuckCreekSimConfig {
        username: DC_USER.to_string(),
        password: SecretString::from(DC_PASSWORD),
        seed: DuckCreekSeed {
            users,
            locked_users: users / 10,
            ..DuckCreekSeed::default()
        },
        ..DuckCreekSimConfig::default()
    };
    DuckCreekSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// One scenario's working directory, config and everything its processes printed.
pub struct Case {
    /// The scenario's name in figures and messages.
    pub name: &'static str,
    dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// Everything the processes printed, scanned for secrets at the end.
    pub exposed: Exposed,
    /// Secrets beyond the target's (an API token).
    pub secrets: Vec<&'static str>,
    started: Instant,
}

impl Case {
    /// A case whose config holds `rest` (target tables, jobs, server), with JSON logs at
    /// `info` and a store in a temp directory.
    pub fn new(name: &'static str, rest: &str, secrets: Vec<&'static str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = write_cli_config(dir.path(), "info", rest);
        Self {
            name,
            dir,
            config,
            exposed: Exposed::new(),
            secrets,
            started: Instant::now(),
        }
    }

    /// The SQLite store.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("idsync.db")
    }

    /// `idsync --config CONFIG ARGS…` to completion; its output joins what is scanned for
    /// secrets.
    pub async fn idsync(&mut self, args: &[&str]) -> Output {
        self.idsync_env(args, Vec::new()).await
    }

    /// [`idsync`](Self::idsync) with `envs`.
    pub async fn idsync_env(&mut self, args: &[&str], envs: Vec<(&'static str, String)>) -> Output {
        let out = idsync_env(&self.config, args, envs).await;
        self.exposed.output(&args.join(" "), &out);
        out
    }

    /// `idsync import TARGET`, which must exit `code`; its output.
    pub async fn import(&mut self, target: &str, code: i32) -> Output {
        let out = self.idsync(&["import", target]).await;
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}: import {target}: {}",
            self.name,
            text(&out)
        );
        out
    }

    /// The store, read only.
    pub async fn view(&self) -> StoreView {
        StoreView::open(&self.db()).await
    }

    /// Prints a figure of this scenario.
    pub fn figure(&self, what: &str, value: impl std::fmt::Display) {
        super::figure(self.name, what, value);
    }

    /// The end checks of every scenario, against `target`: tasks settled, every suspension
    /// real, the audit trail complete, no secret anywhere; then the scenario's duration.
    pub async fn finish<T: Target>(mut self, target: &T) {
        let view = self.view().await;
        assert_eq!(view.integrity().await, "ok", "{}", self.name);
        invariants::assert_tasks_settled(&view.tasks().await);
        invariants::assert_suspensions_real(
            &view.account_statuses(T::NAME).await,
            &target.live_ids(),
        );
        view.assert_audit_complete().await;
        view.close().await;
        let mut secrets = self.secrets.clone();
        secrets.extend(target.secrets());
        let db = self.db();
        invariants::assert_no_secret(&mut self.exposed, &db, &secrets);
        self.figure(
            "scenario wall time (ms)",
            self.started.elapsed().as_millis(),
        );
    }

    /// The directory of the case.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The bearer token of the suite's daemons (a secret the scans look for).
pub const API_TOKEN: &str = "api-token-Fz7c2-never-print-me";

/// The tables of a daemon over `target`: the API on, an account import job `import`
/// (scheduled yearly, so it runs at start as a catch-up and otherwise when triggered), and a
/// provisioning job `provision` every second.
pub fn daemon_tables(target: &str) -> String {
    format!(
        r#"[server]
api_token = "{API_TOKEN}"

[jobs.import]
type = "account_import"
target = "{target}"
schedule = "0 0 0 1 1 *"

[jobs.provision]
type = "provisioning"
schedule = "*/1 * * * * *"
"#
    )
}

impl Case {
    /// Starts `idsync run` on the case's config; ready when it returns.
    pub async fn daemon(&self, name: &str) -> Daemon {
        Daemon::start(&self.config, self.path(), name, &[]).await
    }

    /// Stops `daemon` with SIGTERM (it must exit 0), keeping its metrics, logs and output
    /// for the secret scan.
    pub async fn stop(&mut self, daemon: Daemon) {
        let (_, metrics) = daemon.get("/metrics", None).await;
        self.exposed.text("metrics", metrics);
        let exited = daemon.terminate().await;
        self.exposed.text("daemon log", exited.log.clone());
        self.exposed.text("daemon stdout", exited.stdout.clone());
        assert_eq!(exited.status.code(), Some(0), "{}: {exited:?}", self.name);
    }

    /// Kills `daemon` with SIGKILL, keeping its logs and output for the secret scan.
    pub async fn kill(&mut self, daemon: Daemon) {
        let (_, metrics) = daemon.get("/metrics", None).await;
        self.exposed.text("metrics", metrics);
        let exited = daemon.kill().await;
        assert_eq!(exited.signal(), Some(9), "{}: {exited:?}", self.name);
        self.exposed.text("killed daemon log", exited.log);
        self.exposed.text("killed daemon stdout", exited.stdout);
    }
}

/// Queues a `create_account` of `account` at `target` through the daemon's API.
pub async fn submit_create(daemon: &Daemon, target: &str, account: &str) -> Value {
    let (status, body) = daemon
        .post(
            "/api/v1/tasks",
            Some(API_TOKEN),
            &json!({
                "target": target, "operation": "create_account", "account": account,
                "attributes": {
                    "firstname": "Fault", "lastname": "Suite",
                    "email": format!("{account}@example.com"),
                },
            }),
        )
        .await;
    assert_eq!(status, 201, "submit {account}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Every task, from the daemon's API.
pub async fn api_tasks(daemon: &Daemon) -> Vec<Value> {
    let (status, body) = daemon
        .get("/api/v1/tasks?limit=10000", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Whether every task in `tasks` is `succeeded`, `failed` or `cancelled`.
pub fn all_final(tasks: &[Value]) -> bool {
    tasks.iter().all(|task| {
        ["succeeded", "failed", "cancelled"].contains(&task["status"].as_str().unwrap_or(""))
    })
}

/// Waits until every task is final; the tasks then.
pub async fn until_all_final(daemon: &Daemon) -> Vec<Value> {
    eventually("every task final", || async {
        let tasks = api_tasks(daemon).await;
        all_final(&tasks).then_some(tasks)
    })
    .await
}

/// Triggers job `job` through the API; the run id.
pub async fn trigger(daemon: &Daemon, job: &str) -> i64 {
    let (status, body) = daemon
        .post(
            &format!("/api/v1/jobs/{job}/run"),
            Some(API_TOKEN),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "trigger {job}: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["run_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no run id: {body}"))
}

/// Waits for run `id` of job `job` to finish; the run then. (The API lists runs; it has no
/// `GET /api/v1/runs/{id}` yet.)
pub async fn until_run_finished(daemon: &Daemon, job: &str, id: i64) -> Value {
    eventually("the run finished", || async {
        let run = runs_of(daemon, job)
            .await
            .into_iter()
            .find(|run| run["id"].as_i64() == Some(id))?;
        (!run["outcome"].is_null()).then_some(run)
    })
    .await
}

/// The runs of `job`, newest first, from the API.
pub async fn runs_of(daemon: &Daemon, job: &str) -> Vec<Value> {
    let (status, body) = daemon
        .get(
            &format!("/api/v1/runs?job={job}&limit=1000"),
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}
