//! Shared set-up for integration tests: a DigiCert simulator on loopback and an idsync app
//! built from a real TOML config against it, with a SQLite file in a temp directory.
// Each test binary uses some of these helpers.
#![allow(dead_code)]

pub mod daemon;
pub mod invariants;
pub mod secrets;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use idsync::app::App;
use idsync::connector::Connector;

use idsync::model::{Account, Attributes, Entitlement, Grant, ImportMode, Operation, Trigger};
use idsync::store::{AccountFilter, EntitlementFilter, GrantFilter, Store, Submitted, TaskFilter};
use idsync::sync::provision::ProvisionRunner;
use idsync::sync::tasks::{self, EntitlementRef, SubmitRequest};
use idsync::sync::{ImportParts, ImportRequest, ImportSummary};
use idsync_sim::{
    DigicertSeed, DigicertServer, DigicertSim, DigicertSimConfig, DuckCreekSeed, DuckCreekServer,
    DuckCreekSim, DuckCreekSimConfig, JamaSeed, JamaServer, JamaSim, JamaSimConfig, SimClock,
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// The API key the test simulators accept. Distinctive, so leak checks can grep for it.
pub const SIM_KEY: &str = "sim-key-Zq8vX1-never-print-me";

/// A DigiCert simulator with `users` users and no rate limit.
pub async fn digicert(users: u32) -> DigicertServer {
    digicert_with(users, |_| {}).await
}

/// A DigiCert simulator with `users` users, adjusted by `tweak`.
pub async fn digicert_with(
    users: u32,
    tweak: impl FnOnce(&mut DigicertSimConfig),
) -> DigicertServer {
    let mut config = DigicertSimConfig {
        api_key: SIM_KEY.to_string(),
        seed: DigicertSeed::with_users(users),
        rate_limits: Vec::new(),
        ..DigicertSimConfig::default()
    };
    tweak(&mut config);
    DigicertSim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// The Jama client secret the test simulators accept. Distinctive, for leak checks.
pub const JAMA_SECRET: &str = "jama-secret-Hq3w7-never-print-me";

/// A Jama simulator with `seed` and no rate limit, adjusted by `tweak`.
pub async fn jama_with(seed: JamaSeed, tweak: impl FnOnce(&mut JamaSimConfig)) -> JamaServer {
    let mut config = JamaSimConfig {
        client_id: "idsync-test".to_string(),
        client_secret: SecretString::from(JAMA_SECRET),
        seed,
        rate_limits: Vec::new(),
        ..JamaSimConfig::default()
    };
    tweak(&mut config);
    JamaSim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// `rate_limit = []` unless `extra` sets `rate_limit`: the test simulators enforce no rate
/// limit unless told to, so pacing against one only makes a test wait (Jama's default
/// pacing is 10 requests a second). A test of pacing sets its windows, or uses the
/// adapter's default through [`jama_target_with_default_pacing`].
fn unpaced_unless_set(extra: &str) -> &'static str {
    if extra.contains("rate_limit") {
        ""
    } else {
        "rate_limit = []\n"
    }
}

/// The `[targets.jama]` table for `sim`, with `extra` lines appended; unpaced unless
/// `extra` sets `rate_limit`.
pub fn jama_target(sim: &JamaServer, extra: &str) -> String {
    jama_table(sim, &format!("{}{extra}", unpaced_unless_set(extra)))
}

/// [`jama_target`] paced as the adapter paces by default (no `rate_limit` line).
pub fn jama_target_with_default_pacing(sim: &JamaServer, extra: &str) -> String {
    jama_table(sim, extra)
}

fn jama_table(sim: &JamaServer, extra: &str) -> String {
    format!(
        r#"[targets.jama]
kind = "jama"
base_url = "{base}"
client_id = "idsync-test"
client_secret = "{JAMA_SECRET}"
read_retry = {{ max_attempts = 3, initial_backoff = "10ms", max_backoff = "50ms" }}
{extra}
"#,
        base = sim.base_url(),
    )
}

/// The Duck Creek password the test simulators accept. Distinctive, for leak checks, and
/// holding XML's special characters, so it is escaped in every request body.
pub const DC_PASSWORD: &str = "dc-pw&<Kq9>'never-print-me";

/// The Duck Creek service account of the test simulators.
pub const DC_USER: &str = "svc_idsync";

/// A Duck Creek simulator with `seed`, adjusted by `tweak`.
pub async fn duckcreek_with(
    seed: DuckCreekSeed,
    tweak: impl FnOnce(&mut DuckCreekSimConfig),
) -> DuckCreekServer {
    let mut config = DuckCreekSimConfig {
        username: DC_USER.to_string(),
        password: SecretString::from(DC_PASSWORD),
        seed,
        ..DuckCreekSimConfig::default()
    };
    tweak(&mut config);
    DuckCreekSim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// The `[targets.duckcreek]` table for `sim`, with `extra` lines appended.
pub fn duckcreek_target(sim: &DuckCreekServer, extra: &str) -> String {
    format!(
        r#"[targets.duckcreek]
kind = "duckcreek"
base_url = "{base}"
username = "{DC_USER}"
password = "{DC_PASSWORD}"
read_retry = {{ max_attempts = 3, initial_backoff = "10ms", max_backoff = "50ms" }}
{extra}
"#,
        base = sim.base_url(),
    )
}

/// A test environment: a temp dir holding the store, and the config text.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: String,
}

impl Env {
    /// A config with target `digicert` pointing at `sim`; `target_extra` is appended to the
    /// target table (e.g. `page_size = 100`), `extra` to the file. Unpaced unless
    /// `target_extra` sets `rate_limit`.
    pub fn new(sim: &DigicertServer, target_extra: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("idsync.db");
        let config = format!(
            r#"[store]
url = "sqlite://{store}"

[log]
level = "warn"
format = "text"

[targets.digicert]
kind = "digicert"
base_url = "{base}"
api_key = "{key}"
read_retry = {{ max_attempts = 3, initial_backoff = "10ms", max_backoff = "50ms" }}
{unpaced}{target_extra}

{extra}
"#,
            store = store.display(),
            base = sim.base_url(),
            key = SIM_KEY,
            unpaced = unpaced_unless_set(target_extra),
        );
        Self { dir, config }
    }

    /// A config with the given target tables (and `extra`) only.
    pub fn with_targets(targets: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("idsync.db");
        let config = format!(
            "[store]\nurl = \"sqlite://{store}\"\n\n[log]\nlevel = \"warn\"\nformat = \"text\"\n\n{targets}\n{extra}\n",
            store = store.display(),
        );
        Self { dir, config }
    }

    /// The SQLite file.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("idsync.db")
    }

    /// Builds the app from the config.
    pub async fn app(&self) -> App {
        App::build(self.loaded()).await.unwrap()
    }

    /// The connectors of the config's targets alone, without the store: for a test on
    /// paused tokio time, which must not open the SQLite store (the pool's timeouts would
    /// fire while tokio waits on SQLite's thread, which it cannot see).
    pub fn connectors(&self) -> BTreeMap<String, Arc<dyn Connector>> {
        idsync::connector::registry::build_connectors(&self.loaded()).unwrap()
    }

    fn loaded(&self) -> idsync::config::Config {
        idsync::app::load_config_str(&self.config, "test config", &[])
            .unwrap_or_else(|err| panic!("config problems: {:?}", err.problems))
            .config
    }
}

/// Options of one import.
#[derive(Clone, Copy)]
pub struct Opts {
    pub parts: ImportParts,
    pub mode: ImportMode,
    pub dry_run: bool,
    pub allow_deletions: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            parts: ImportParts::Both,
            mode: ImportMode::Full,
            dry_run: false,
            allow_deletions: false,
        }
    }
}

/// Runs one import of target `digicert`.
pub async fn import(app: &App, opts: Opts) -> ImportSummary {
    import_target(app, "digicert", opts).await
}

/// Runs one import of `target`.
pub async fn import_target(app: &App, target: &str, opts: Opts) -> ImportSummary {
    let request = ImportRequest {
        target: target.into(),
        job: "manual".into(),
        parts: opts.parts,
        mode: opts.mode,
        dry_run: opts.dry_run,
        allow_deletions: opts.allow_deletions,
        trigger: Trigger::Cli,
        actor: "cli:test".into(),
        started: None,
    };
    app.imports
        .run(request, &CancellationToken::new())
        .await
        .unwrap()
}

/// Every account of target `digicert`.
pub async fn accounts(app: &App) -> Vec<Account> {
    accounts_of(app, "digicert").await
}

/// Every account of `target`.
pub async fn accounts_of(app: &App, target: &str) -> Vec<Account> {
    let filter = AccountFilter {
        target: Some(target.into()),
        ..Default::default()
    };
    app.store.list_accounts(&filter).await.unwrap()
}

/// Every entitlement of target `digicert`.
pub async fn entitlements(app: &App) -> Vec<Entitlement> {
    entitlements_of(app, "digicert").await
}

/// Every entitlement of `target`.
pub async fn entitlements_of(app: &App, target: &str) -> Vec<Entitlement> {
    let filter = EntitlementFilter {
        target: target.into(),
        ..Default::default()
    };
    app.store.list_entitlements(&filter).await.unwrap()
}

/// Every grant of target `digicert`.
pub async fn grants(app: &App) -> Vec<Grant> {
    grants_of(app, "digicert").await
}

/// Every grant of `target`.
pub async fn grants_of(app: &App, target: &str) -> Vec<Grant> {
    let filter = GrantFilter {
        target: target.into(),
        ..Default::default()
    };
    app.store.list_grants(&filter).await.unwrap()
}

/// Everything the store holds about target `digicert`, as JSON, for before/after checks.
/// `last_seen` of live accounts is left out: it is derived from the last successful import,
/// not stored per row.
pub async fn store_snapshot(app: &App) -> Snapshot {
    store_snapshot_of(app, "digicert").await
}

/// [`store_snapshot`] of `target`.
pub async fn store_snapshot_of(app: &App, target: &str) -> Snapshot {
    let mut accounts = serde_json::to_value(accounts_of(app, target).await).unwrap();
    for account in accounts.as_array_mut().unwrap() {
        if account["status"] != "suspended" {
            account.as_object_mut().unwrap().remove("last_seen");
        }
    }
    Snapshot(serde_json::json!({
        "accounts": accounts,
        "entitlements": entitlements_of(app, target).await,
        "grants": grants_of(app, target).await,
        "audit": app.store.list_audit(Some(target), 100_000).await.unwrap(),
    }))
}

/// A store snapshot whose mismatch report names the first difference instead of dumping
/// thousands of rows.
#[derive(PartialEq)]
pub struct Snapshot(pub serde_json::Value);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts: Vec<String> = self
            .0
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_array().map_or(0, Vec::len)))
            .collect();
        write!(f, "Snapshot({})", counts.join(", "))
    }
}

/// Asserts two snapshots are equal, naming the first differing record.
pub fn assert_same(after: &Snapshot, before: &Snapshot, what: &str) {
    if after == before {
        return;
    }
    for key in ["accounts", "entitlements", "grants", "audit"] {
        let (a, b) = (
            after.0[key].as_array().unwrap(),
            before.0[key].as_array().unwrap(),
        );
        if a.len() != b.len() {
            panic!("{what}: {key} count {} != {}", a.len(), b.len());
        }
        if let Some((x, y)) = a.iter().zip(b).find(|(x, y)| x != y) {
            panic!("{what}: {key} differ:\n now    {x}\n before {y}");
        }
    }
}

/// A task request on `target` with no attributes, owner or keys; `entitlement` as the CLI
/// takes it (`TYPE:ID` or `TYPE:NAME`).
pub fn task_request(
    target: &str,
    operation: Operation,
    account: &str,
    entitlement: Option<&str>,
) -> SubmitRequest {
    SubmitRequest {
        target: target.into(),
        operation,
        account: account.into(),
        entitlement: entitlement.map(|e| EntitlementRef::Text(e.to_string())),
        attributes: Attributes::new(),
        owner: None,
        request_id: None,
        idempotency_key: None,
    }
}

/// Submits `request` as the CLI would (actor `cli:test`).
pub async fn submit(app: &App, request: SubmitRequest) -> Result<Submitted, tasks::SubmitError> {
    tasks::submit(
        app.store.as_ref(),
        &app.connectors,
        &app.config,
        request,
        "cli:test",
    )
    .await
}

/// Runs provisioning passes (over `target`, or every target) until every task is final;
/// panics after 200 passes.
pub async fn drain(app: &App, target: Option<&str>) {
    let runner = ProvisionRunner::new(app.store(), app.connectors.clone(), app.config.clone());
    for _ in 0..200 {
        runner
            .run_pass(target, &CancellationToken::new())
            .await
            .unwrap();
        let open = app
            .store
            .list_tasks(&TaskFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .any(|task| !task.status.is_final());
        if !open {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("tasks still open after 200 passes");
}

/// The `idsync` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_idsync");

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `DIR/idsync.toml`: a store in `dir`, JSON logs at `level`, then `rest`.
pub fn write_cli_config(dir: &Path, level: &str, rest: &str) -> PathBuf {
    let path = dir.join("idsync.toml");
    let text = format!(
        "[store]\nurl = \"sqlite://{store}\"\n\n[log]\nlevel = \"{level}\"\nformat = \"json\"\n\n{rest}\n",
        store = dir.join("idsync.db").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the binary with `args` and `envs` to completion, off the async runtime (which keeps
/// serving the simulators).
pub async fn run_cli(args: Vec<String>, envs: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .envs(envs)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `idsync --config CONFIG ARGS…` with `envs`, run to completion.
pub async fn idsync_env(config: &Path, args: &[&str], envs: Vec<(&'static str, String)>) -> Output {
    let mut all = vec!["--config".to_string(), config.display().to_string()];
    all.extend(args.iter().map(|arg| arg.to_string()));
    run_cli(all, envs).await
}

/// stdout then stderr of a finished command, as text.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// How long a test waits for something another process or task brings about (a daemon
/// coming up or exiting, a job finishing) before it fails as hung. A guard against hanging
/// forever, not a performance bound: nothing a test proves depends on it.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// Polls `check` (every 20 ms) until it gives a value, failing the test as hung after
/// [`HANG_GUARD`]. For waiting on an event another process or task brings about; the guard
/// only stops a test that would otherwise hang, it proves nothing.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "still waiting after {HANG_GUARD:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `until` while answering for the simulators on `clock` (a manual one): whenever an
/// answer waits on the clock, moves it on by `step`. What real time would do for answers
/// delayed by a latency of `step`, without the wait.
pub async fn releasing_answers<F: Future>(clock: &SimClock, step: Duration, until: F) -> F::Output {
    tokio::pin!(until);
    loop {
        tokio::select! {
            biased;
            done = &mut until => return done,
            () = clock.until_sleeping(1) => {
                clock.advance(step);
                // Let the released answer leave before looking again.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}
