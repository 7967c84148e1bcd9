//! Provisioning queue benchmark: submits N tasks through `sync::tasks::submit` and runs
//! `ProvisionRunner::run_pass` until every task is final, against the simulators with 5 %
//! injected transient failures, then checks that nothing was left behind or done twice.
//!
//! Pattern as in `benches/jama_import.rs`: the simulators run in their own **process**
//! (`idsync sim all|jama|digicert --port 0 --users U --groups G --no-rate-limit`, latency off),
//! and the measurement runs in a fresh **child process** (this bench binary re-executed as
//! `--child …`), so its peak RSS (`VmHWM`) is the engine's own.
//!
//! The child:
//!
//! 1. builds the app (`app::load_config_str` + `App::build`; every target with
//!    `rate_limit = []`, `max_concurrency = 8`, `retry = { max_attempts = 8, initial_backoff =
//!    "10ms", max_backoff = "50ms" }`) and runs a full import of each target, so that
//!    `add_access` can name existing accounts and entitlements (setup, timed apart);
//! 2. submits the tasks, split evenly over the targets, one `tasks::submit` call at a time:
//!    90 % `create_account` of new users (`bench.<target>.<n>`), 10 % `add_access` of an
//!    existing active account to an existing entitlement (Jama `usergroup`, DigiCert `role`),
//!    every (account, entitlement) pair distinct;
//! 3. starts one fault injector per target and loops `run_pass(None)` until no task is
//!    pending or running (sleeping 2 ms after a pass that claimed nothing; a pass itself
//!    waits out short backoffs, so one pass usually drains the queue).
//!
//! **Fault injection.** The simulators have no failure probability; their fault rules fail
//! the next `times` matching requests. To spread 5 % of the task count evenly over the run,
//! each injector polls the simulator's `GET /_sim/stats` every 2 ms and installs a one-shot
//! rule (`POST /_sim/faults {"method":"POST","path_prefix":"/users"|"/user","status":503,
//! "times":1}`) each time another `creates ÷ budget` create requests have been answered, until
//! its budget (5 % of its target's tasks) is installed. So each target's create endpoint
//! answers about every 18th create request with a 503 (rejected before the simulator changes
//! anything). The faults actually served are counted from the simulator's 5xx counter.
//!
//! Reported: submission rate; processing wall time, tasks/s and passes; attempts per task;
//! requests per route; child and simulator CPU; peak RSS. Checks (PASS/FAIL, non-zero exit on
//! a FAIL): every task final; no task failed; no store error in a pass; every injected fault
//! served; per target, each succeeded create's username exists at the simulator exactly once,
//! no other new user appeared.
//!
//! Run it (release build). On 2 cores the full 10,000 tasks take about 25 s plus the build
//! (submission ~8 s, passes ~14 s, about 1 ms of engine CPU per task):
//!
//! ```text
//! cargo bench --bench provision
//! IDSYNC_BENCH_TASKS=1000 cargo bench --bench provision          # quick run
//! IDSYNC_BENCH_TARGETS=jama cargo bench --bench provision        # jama | digicert | jama,digicert
//! IDSYNC_BENCH_CONCURRENCY=16 cargo bench --bench provision      # max_concurrency per target
//! IDSYNC_BENCH_FAULT_PERCENT=0 cargo bench --bench provision     # a plain run, no faults
//! ```
//!
//! Linux only (reads `/proc`).

mod common;
use common::{
    config_head, cpu_secs, import_both, mib, ratio, run_child, vm_hwm_kib, Result, Simulator,
};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idsync::app::App;
use idsync::config::TargetKind;
use idsync::model::{AccountStatus, Attributes, Operation, TaskStatus};
use idsync::store::{AccountFilter, EntitlementFilter, Store, TaskFilter};
use idsync::sync::tasks::EntitlementRef;
use idsync::sync::{tasks, SubmitRequest};
use idsync_sim::SimStats;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Tasks in all, unless `IDSYNC_BENCH_TASKS` says otherwise.
const DEFAULT_TASKS: u32 = 10_000;
/// `max_concurrency` of every target, unless `IDSYNC_BENCH_CONCURRENCY` says otherwise.
const DEFAULT_CONCURRENCY: u32 = 8;
/// Users seeded in each simulated tenant (the accounts `add_access` uses).
const SEED_USERS: u32 = 500;
/// Jama user groups seeded.
const SEED_GROUPS: u32 = 10;
/// Share of the tasks that are `add_access`, in percent (the rest are `create_account`).
const ACCESS_PERCENT: u32 = 10;
/// Injected transient failures, in percent of the task count, unless
/// `IDSYNC_BENCH_FAULT_PERCENT` says otherwise (0: a plain run, no faults).
const FAULT_PERCENT: u32 = 5;
/// The status of an injected failure.
const FAULT_STATUS: u16 = 503;
/// How often the fault injectors look at the simulator's counters.
const INJECT_POLL: Duration = Duration::from_millis(2);
/// How long to wait after a pass that claimed nothing (retries waiting out their backoff).
const IDLE_WAIT: Duration = Duration::from_millis(2);
/// Give up when the queue has not drained in this time.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(1800);
/// Prefix of every username the bench creates.
/// How long the simulators may take to print their fragment.
const SIM_START_TIMEOUT: Duration = Duration::from_secs(120);
/// Prefix of the users the bench creates.
const USER_PREFIX: &str = "bench.";

fn main() -> ExitCode {
    common::bench_main("provision bench", |_| parent(), child)
}

// ---------------------------------------------------------------------------------------
// Parent: simulator, child process, the table and the checks.
// ---------------------------------------------------------------------------------------

/// What the child measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Measurement {
    tasks: u64,
    creates: u64,
    accesses: u64,
    max_concurrency: u32,
    /// Faults the injectors were to install (5 % of the tasks).
    fault_budget: u64,
    /// Full imports of every target before the tasks (setup).
    import_secs: f64,
    submit_secs: f64,
    submits_per_sec: f64,
    process_secs: f64,
    tasks_per_sec: f64,
    passes: u64,
    /// Passes that claimed nothing (the queue only held tasks waiting for their backoff).
    idle_passes: u64,
    /// Attempts recorded on the tasks (`tasks.attempts`), in all and per task.
    attempts: u64,
    attempts_per_task: f64,
    max_attempts_seen: u32,
    /// Claims over all passes (attempts plus circuit-breaker requeues).
    claimed: u64,
    retried: u64,
    requeued: u64,
    already_done: u64,
    /// Final task counts by status.
    by_status: BTreeMap<String, u64>,
    pass_errors: Vec<String>,
    targets: Vec<TargetResult>,
    /// CPU time (user + system) of the child / the simulator while the passes ran.
    child_cpu_secs: f64,
    sim_cpu_secs: f64,
    /// CPU time of the child during submission.
    submit_cpu_secs: f64,
    vm_hwm_after_build_kib: u64,
    vm_hwm_after_submit_kib: u64,
    vm_hwm_kib: u64,
    store_bytes: u64,
}

/// One target's results.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TargetResult {
    target: String,
    tasks: u64,
    creates: u64,
    accesses: u64,
    succeeded: u64,
    failed: u64,
    creates_succeeded: u64,
    faults_planned: u64,
    /// 5xx answers of the simulator while the passes ran (the injected faults served).
    faults_served: u64,
    /// Faults still installed at the end (not served).
    faults_left: u64,
    /// Users at the simulator before / after.
    sim_users_before: u64,
    sim_users_after: u64,
    /// Bench users (`bench.` prefix) at the simulator, and how many distinct usernames.
    sim_bench_users: u64,
    sim_bench_distinct: u64,
    /// Succeeded creates whose username is missing at the simulator.
    missing: u64,
    requests: u64,
    requests_by_route: BTreeMap<String, u64>,
}

/// The bench's settings, from the environment.
#[derive(Debug, Clone)]
struct Settings {
    tasks: u32,
    targets: Vec<TargetKind>,
    concurrency: u32,
}

/// The share of injected failures, in percent (parent and child read the same environment).
fn fault_percent() -> Result<u32> {
    match env_text("IDSYNC_BENCH_FAULT_PERCENT") {
        None => Ok(FAULT_PERCENT),
        Some(text) => Ok(parse_number(&text)
            .filter(|percent| *percent <= 100)
            .ok_or_else(|| {
                format!("IDSYNC_BENCH_FAULT_PERCENT: `{text}` is not a number from 0 to 100")
            })?),
    }
}

fn settings() -> Result<Settings> {
    let tasks = match env_text("IDSYNC_BENCH_TASKS") {
        None => DEFAULT_TASKS,
        Some(text) => parse_number(&text)
            .filter(|count| *count > 0)
            .ok_or_else(|| format!("IDSYNC_BENCH_TASKS: `{text}` is not a positive number"))?,
    };
    let concurrency = match env_text("IDSYNC_BENCH_CONCURRENCY") {
        None => DEFAULT_CONCURRENCY,
        Some(text) => parse_number(&text)
            .filter(|count| *count > 0)
            .ok_or_else(|| format!("IDSYNC_BENCH_CONCURRENCY: `{text}` is not positive"))?,
    };
    let targets = match env_text("IDSYNC_BENCH_TARGETS") {
        None => vec![TargetKind::Digicert, TargetKind::Jama],
        Some(text) => {
            let mut kinds = Vec::new();
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let kind = match name {
                    "jama" => TargetKind::Jama,
                    "digicert" => TargetKind::Digicert,
                    other => {
                        return Err(format!(
                            "IDSYNC_BENCH_TARGETS: `{other}` is not jama or digicert"
                        )
                        .into())
                    }
                };
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            if kinds.is_empty() {
                return Err("IDSYNC_BENCH_TARGETS names no target".into());
            }
            kinds
        }
    };
    Ok(Settings {
        tasks,
        targets,
        concurrency,
    })
}

fn env_text(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// `10000`, `10_000` or `10k`.
fn parse_number(text: &str) -> Option<u32> {
    let text = text.replace('_', "");
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(digits) => (digits, 1000),
        None => (text.as_str(), 1),
    };
    digits.parse::<u32>().ok()?.checked_mul(scale)
}

fn parent() -> Result<ExitCode> {
    let settings = settings()?;
    let started = Instant::now();
    let names: Vec<&str> = settings.targets.iter().map(|kind| kind.as_str()).collect();
    println!(
        "idsync provisioning bench: {} tasks over {} ({ACCESS_PERCENT}% add_access), \
         max_concurrency {}, {}% injected {FAULT_STATUS}s, limits and latency off",
        settings.tasks,
        names.join(" + "),
        settings.concurrency,
        fault_percent()?,
    );
    let dir = tempfile::tempdir()?;
    let args = [
        "--no-rate-limit".to_string(),
        "--users".to_string(),
        SEED_USERS.to_string(),
        "--groups".to_string(),
        SEED_GROUPS.to_string(),
    ];
    let sim = Simulator::start(&settings.targets, &args, dir.path(), SIM_START_TIMEOUT)?;
    let store = dir.path().join("idsync.db");
    let config_path = dir.path().join("idsync.toml");
    std::fs::write(&config_path, config_text(&settings, &store, &sim))?;

    let args = vec![
        config_path.into(),
        sim.pid().to_string().into(),
        settings.tasks.to_string().into(),
    ];
    let (row, line): (Measurement, _) = run_child("provision", args)?;
    drop(sim);
    let took = started.elapsed();
    print_table(&row);
    println!("{line}");
    let ok = print_checks(&row);
    println!("\nbench run time: {:.1}s", took.as_secs_f64());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The config: a fresh store, each simulated target with pacing off and tiny backoffs.
fn config_text(settings: &Settings, store: &Path, sim: &Simulator) -> String {
    let mut text = config_head(store, "error");
    for (name, fields) in &sim.targets {
        text.push_str(&format!("\n[targets.{name}]\n"));
        for (key, value) in fields {
            text.push_str(&format!("{key} = {value}\n"));
        }
        text.push_str(&format!(
            "rate_limit = []\nmax_concurrency = {}\n\
             retry = {{ max_attempts = 8, initial_backoff = \"10ms\", max_backoff = \"50ms\" }}\n",
            settings.concurrency
        ));
    }
    text
}

fn print_table(row: &Measurement) {
    println!();
    println!(
        "tasks {} ({} create_account, {} add_access), max_concurrency {}, import (setup) {:.2}s",
        row.tasks, row.creates, row.accesses, row.max_concurrency, row.import_secs
    );
    println!(
        "submit:   {:>8.2}s  {:>8.0} tasks/s  (child CPU {:.2}s)",
        row.submit_secs, row.submits_per_sec, row.submit_cpu_secs
    );
    println!(
        "process:  {:>8.2}s  {:>8.0} tasks/s  {} passes ({} idle)  child CPU {:.2}s  sim CPU {:.2}s",
        row.process_secs,
        row.tasks_per_sec,
        row.passes,
        row.idle_passes,
        row.child_cpu_secs,
        row.sim_cpu_secs
    );
    println!(
        "attempts: {} ({:.4}/task, max {}), claims {}, retried {}, requeued {}, already done {}",
        row.attempts,
        row.attempts_per_task,
        row.max_attempts_seen,
        row.claimed,
        row.retried,
        row.requeued,
        row.already_done
    );
    let statuses: Vec<String> = row
        .by_status
        .iter()
        .map(|(status, count)| format!("{status} {count}"))
        .collect();
    println!("final:    {}", statuses.join(", "));
    println!(
        "peak RSS: {:.1} MiB (after build {:.1}, after submit {:.1}); store {:.1} MiB",
        mib(row.vm_hwm_kib),
        mib(row.vm_hwm_after_build_kib),
        mib(row.vm_hwm_after_submit_kib),
        row.store_bytes as f64 / (1024.0 * 1024.0)
    );
    println!();
    println!(
        "{:>9} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>7} | {:>6} {:>6} {:>5} | {:>7} {:>7} {:>7} {:>7} {:>7}",
        "target",
        "tasks",
        "create",
        "access",
        "succ",
        "failed",
        "created",
        "faults",
        "served",
        "left",
        "users<",
        "users>",
        "bench",
        "distinct",
        "missing",
    );
    println!("{}", "-".repeat(120));
    for target in &row.targets {
        println!(
            "{:>9} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>7} | {:>6} {:>6} {:>5} | {:>7} {:>7} {:>7} {:>7} {:>7}",
            target.target,
            target.tasks,
            target.creates,
            target.accesses,
            target.succeeded,
            target.failed,
            target.creates_succeeded,
            target.faults_planned,
            target.faults_served,
            target.faults_left,
            target.sim_users_before,
            target.sim_users_after,
            target.sim_bench_users,
            target.sim_bench_distinct,
            target.missing,
        );
    }
    println!(
        "(created = succeeded create_account tasks; faults = planned / served (simulator 5xx) / \
         still installed; users< / users> = simulator users before / after; bench = users with \
         the bench prefix at the simulator, distinct = distinct usernames among them)"
    );
    for target in &row.targets {
        let routes: Vec<String> = target
            .requests_by_route
            .iter()
            .map(|(route, count)| format!("{route}: {count}"))
            .collect();
        println!(
            "  {} requests during the passes: {} ({})",
            target.target,
            target.requests,
            routes.join(", ")
        );
    }
}

/// Prints the PASS/FAIL lines; true if all pass.
fn print_checks(row: &Measurement) -> bool {
    let mut ok = true;
    let mut check = |pass: bool, text: String| {
        ok &= pass;
        println!("{}: {text}", if pass { "PASS" } else { "FAIL" });
    };
    println!();
    let count = |status: &str| row.by_status.get(status).copied().unwrap_or(0);
    let unfinished = row
        .tasks
        .saturating_sub(count("succeeded") + count("failed"))
        + count("pending")
        + count("running");
    check(
        unfinished == 0 && row.by_status.values().sum::<u64>() == row.tasks,
        format!(
            "every task final: {} of {} (pending {}, running {}, cancelled {})",
            count("succeeded") + count("failed"),
            row.tasks,
            count("pending"),
            count("running"),
            count("cancelled")
        ),
    );
    check(
        count("failed") == 0,
        format!(
            "no task failed: {} succeeded, {} failed (8 attempts each, faults spread)",
            count("succeeded"),
            count("failed")
        ),
    );
    check(
        row.pass_errors.is_empty(),
        format!("no store error in a pass: {:?}", row.pass_errors),
    );
    for target in &row.targets {
        check(
            target.faults_served >= target.faults_planned && target.faults_left == 0,
            format!(
                "{}: injected faults served: {} of {} planned ({} left installed)",
                target.target, target.faults_served, target.faults_planned, target.faults_left
            ),
        );
        let new_users = target
            .sim_users_after
            .saturating_sub(target.sim_users_before);
        check(
            target.sim_bench_users == target.creates_succeeded
                && target.sim_bench_distinct == target.sim_bench_users
                && target.missing == 0
                && new_users == target.creates_succeeded
                && target.sim_users_after >= target.sim_users_before,
            format!(
                "{}: no duplicate at the simulator: {} succeeded creates, {} bench users ({} \
                 distinct usernames, {} missing), {} new users in all",
                target.target,
                target.creates_succeeded,
                target.sim_bench_users,
                target.sim_bench_distinct,
                target.missing,
                new_users
            ),
        );
    }
    ok
}

// ---------------------------------------------------------------------------------------
// Child: setup, submission, passes and the checks' data, in its own process.
// ---------------------------------------------------------------------------------------

fn child(args: &[String]) -> Result<ExitCode> {
    let [config_path, sim_pid, tasks] = args else {
        return Err("usage: --child CONFIG SIM_PID TASKS".into());
    };
    let sim_pid: u32 = sim_pid.parse()?;
    let tasks: u32 = tasks.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let measurement = runtime.block_on(child_run(Path::new(config_path), sim_pid, tasks))?;
    println!("{}", serde_json::to_string(&measurement)?);
    Ok(ExitCode::SUCCESS)
}

/// A simulator's control routes.
#[derive(Clone)]
struct SimClient {
    http: reqwest::Client,
    origin: url::Url,
}

impl SimClient {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.origin.join(path)?;
        let response = self.http.get(url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<()> {
        let url = self.origin.join(path)?;
        self.http
            .post(url)
            .json(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let url = self.origin.join(path)?;
        self.http.delete(url).send().await?.error_for_status()?;
        Ok(())
    }

    async fn stats(&self) -> Result<SimStats> {
        self.get("/_sim/stats").await
    }

    /// The usernames of every user the simulator holds.
    async fn usernames(&self) -> Result<Vec<String>> {
        let users: Vec<Value> = self.get("/_sim/users").await?;
        Ok(users
            .iter()
            .filter_map(|user| user.get("username").and_then(Value::as_str))
            .map(str::to_owned)
            .collect())
    }
}

/// What the bench does with one target.
struct Plan {
    name: String,
    kind: TargetKind,
    sim: SimClient,
    tasks: u32,
    creates: u32,
    /// (account, entitlement) of each `add_access`.
    accesses: Vec<(String, String)>,
    faults: u32,
}

impl Plan {
    /// The route label and fault-rule prefix of the target's create endpoint.
    fn create_route(&self) -> (&'static str, &'static str) {
        match self.kind {
            TargetKind::Jama => ("POST /users", "/users"),
            TargetKind::Digicert => ("POST /user", "/user"),
            // Never planned: Duck Creek has no create request (see `targets`).
            TargetKind::Duckcreek => ("POST /Server/Server.asmx", "/Server/Server.asmx"),
        }
    }

    fn entitlement_type(&self) -> &'static str {
        match self.kind {
            TargetKind::Jama => "usergroup",
            TargetKind::Digicert => "role",
            TargetKind::Duckcreek => "Role",
        }
    }

    fn username(&self, n: u32) -> String {
        format!("{USER_PREFIX}{}.{n:06}", self.name)
    }

    fn request(&self, n: u32) -> SubmitRequest {
        let access = n
            .checked_sub(self.creates)
            .and_then(|at| self.accesses.get(usize::try_from(at).ok()?));
        let (operation, account, entitlement, attributes) = match access {
            Some((account, entitlement)) => (
                Operation::AddAccess,
                account.clone(),
                Some(EntitlementRef::Text(format!(
                    "{}:{entitlement}",
                    self.entitlement_type()
                ))),
                Attributes::new(),
            ),
            None => {
                let username = self.username(n);
                let mut attributes = Attributes::new();
                attributes.insert("firstname".into(), json!("Bench"));
                attributes.insert("lastname".into(), json!(format!("User {n}")));
                attributes.insert(
                    "email".into(),
                    json!(format!("{username}@bench.example.com")),
                );
                (Operation::CreateAccount, username, None, attributes)
            }
        };
        SubmitRequest {
            target: self.name.clone(),
            operation,
            account,
            entitlement,
            attributes,
            owner: None,
            request_id: None,
            idempotency_key: None,
        }
    }
}

async fn child_run(config_path: &Path, sim_pid: u32, total: u32) -> Result<Measurement> {
    let text = std::fs::read_to_string(config_path)?;
    let loaded = idsync::app::load_config_str(&text, &config_path.display().to_string(), &[])
        .map_err(|err| format!("{err}: {:?}", err.problems))?;
    idsync::telemetry::init_logging(&loaded.config.log)?;
    let store_path = loaded
        .config
        .store
        .url
        .strip_prefix("sqlite://")
        .map(PathBuf::from);
    let app = App::build(loaded.config).await?;
    let vm_hwm_after_build_kib = vm_hwm_kib()?;
    let store: Arc<dyn Store> = app.store();
    let http = reqwest::Client::new();

    // Setup: import every target so add_access finds accounts and entitlements.
    let started = Instant::now();
    let names: Vec<String> = app.config.targets.keys().cloned().collect();
    for name in &names {
        import_both(&app, name).await?;
    }
    let import_secs = started.elapsed().as_secs_f64();

    let mut plans = Vec::new();
    let share = total / u32::try_from(names.len()).unwrap_or(1).max(1);
    let mut left = total;
    for (at, name) in names.iter().enumerate() {
        let target = app
            .config
            .targets
            .get(name)
            .ok_or_else(|| format!("no target {name}"))?;
        let tasks = if at + 1 == names.len() { left } else { share };
        left = left.saturating_sub(tasks);
        let mut origin = target.base_url.clone();
        origin.set_path("/");
        let mut plan = Plan {
            name: name.clone(),
            kind: target.kind,
            sim: SimClient {
                http: http.clone(),
                origin,
            },
            tasks,
            creates: tasks,
            accesses: Vec::new(),
            faults: (tasks * fault_percent()?).div_ceil(100),
        };
        let wanted = tasks * ACCESS_PERCENT / 100;
        plan.accesses = access_pairs(store.as_ref(), &plan, wanted).await?;
        plan.creates = tasks - u32::try_from(plan.accesses.len())?;
        plans.push(plan);
    }

    // Submission, interleaved over the targets.
    let cpu_before = cpu_secs("self")?;
    let started = Instant::now();
    let most = plans.iter().map(|plan| plan.tasks).max().unwrap_or(0);
    let mut submitted = 0_u64;
    for n in 0..most {
        for plan in plans.iter().filter(|plan| n < plan.tasks) {
            let request = plan.request(n);
            tasks::submit(
                store.as_ref(),
                &app.connectors,
                &app.config,
                request,
                "cli:bench",
            )
            .await
            .map_err(|err| format!("submit {} #{n}: {err}", plan.name))?;
            submitted += 1;
        }
    }
    let submit_secs = started.elapsed().as_secs_f64();
    let submit_cpu_secs = cpu_secs("self")? - cpu_before;
    let vm_hwm_after_submit_kib = vm_hwm_kib()?;

    // Before the passes: simulator users and counters.
    let mut users_before = Vec::new();
    let mut stats_before = Vec::new();
    for plan in &plans {
        plan.sim.delete("/_sim/faults").await?;
        users_before.push(plan.sim.usernames().await?.len() as u64);
        stats_before.push(plan.sim.stats().await?);
    }

    // The passes, with the fault injectors running.
    let stop = Arc::new(AtomicBool::new(false));
    let injectors: Vec<_> = plans
        .iter()
        .map(|plan| {
            let (route, prefix) = plan.create_route();
            tokio::spawn(inject(
                plan.sim.clone(),
                route,
                prefix,
                plan.creates,
                plan.faults,
                stop.clone(),
            ))
        })
        .collect();
    let cancel = CancellationToken::new();
    let cpu_before = cpu_secs("self")?;
    let sim_cpu_before = cpu_secs(&sim_pid.to_string())?;
    let started = Instant::now();
    let mut passes = 0_u64;
    let mut idle_passes = 0_u64;
    let (mut claimed, mut retried, mut requeued, mut already_done) = (0, 0, 0, 0);
    let mut pass_errors = Vec::new();
    loop {
        let report = app.provisioning.run_pass(None, &cancel).await?;
        passes += 1;
        claimed += report.claimed;
        retried += report.retried;
        requeued += report.requeued;
        already_done += report.already_done;
        pass_errors.extend(report.errors);
        let open: u64 = store
            .task_gauges()
            .await?
            .iter()
            .filter(|gauge| !gauge.status.is_final())
            .map(|gauge| gauge.count)
            .sum();
        if open == 0 {
            break;
        }
        if started.elapsed() > PROCESS_TIMEOUT {
            return Err(format!("{open} tasks still open after {PROCESS_TIMEOUT:?}").into());
        }
        if report.claimed == 0 {
            idle_passes += 1;
            tokio::time::sleep(IDLE_WAIT).await;
        }
    }
    let process_secs = started.elapsed().as_secs_f64();
    let child_cpu_secs = cpu_secs("self")? - cpu_before;
    let sim_cpu_secs = cpu_secs(&sim_pid.to_string())? - sim_cpu_before;
    stop.store(true, Ordering::Relaxed);
    for injector in injectors {
        injector.await??;
    }

    // The tasks as the store has them.
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut attempts = 0_u64;
    let mut max_attempts_seen = 0_u32;
    let mut per_target: BTreeMap<String, (u64, u64, BTreeSet<String>)> = BTreeMap::new();
    let mut after_id = None;
    loop {
        let page = store
            .list_tasks(&TaskFilter {
                after_id,
                limit: 1000,
                ..TaskFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after_id = Some(last.id);
        for task in &page {
            *by_status.entry(task.status.to_string()).or_insert(0) += 1;
            attempts += u64::from(task.attempts);
            max_attempts_seen = max_attempts_seen.max(task.attempts);
            let entry = per_target.entry(task.target.clone()).or_default();
            match task.status {
                TaskStatus::Succeeded => {
                    entry.0 += 1;
                    if task.operation == Operation::CreateAccount {
                        entry.2.insert(task.account.clone());
                    }
                }
                TaskStatus::Failed => entry.1 += 1,
                _ => {}
            }
        }
    }

    // The simulators' side.
    let mut targets = Vec::new();
    for ((plan, users_before), before) in plans.iter().zip(users_before).zip(stats_before) {
        let after = plan.sim.stats().await?;
        let left: Vec<Value> = plan.sim.get("/_sim/faults").await?;
        let usernames = plan.sim.usernames().await?;
        let bench: Vec<&String> = usernames
            .iter()
            .filter(|name| name.starts_with(USER_PREFIX))
            .collect();
        let distinct: BTreeSet<&String> = bench.iter().copied().collect();
        let (succeeded, failed, created) = per_target.remove(&plan.name).unwrap_or_default();
        let missing = created
            .iter()
            .filter(|name| !distinct.contains(name))
            .count() as u64;
        let faults_left = left
            .iter()
            .map(|rule| rule.get("times").and_then(Value::as_u64).unwrap_or(1))
            .sum();
        targets.push(TargetResult {
            target: plan.name.clone(),
            tasks: u64::from(plan.tasks),
            creates: u64::from(plan.creates),
            accesses: plan.accesses.len() as u64,
            succeeded,
            failed,
            creates_succeeded: created.len() as u64,
            faults_planned: u64::from(plan.faults),
            faults_served: after.responses_5xx.saturating_sub(before.responses_5xx),
            faults_left,
            sim_users_before: users_before,
            sim_users_after: usernames.len() as u64,
            sim_bench_users: bench.len() as u64,
            sim_bench_distinct: distinct.len() as u64,
            missing,
            requests: after.requests.saturating_sub(before.requests),
            requests_by_route: after
                .by_route
                .iter()
                .map(|(route, count)| {
                    let earlier = before.by_route.get(route).copied().unwrap_or(0);
                    (route.clone(), count.saturating_sub(earlier))
                })
                .filter(|(_, count)| *count > 0)
                .collect(),
        });
    }

    let store_bytes = store_path.map_or(0, |path| {
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        [path, wal]
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum()
    });
    let creates: u64 = plans.iter().map(|plan| u64::from(plan.creates)).sum();
    Ok(Measurement {
        tasks: submitted,
        creates,
        accesses: submitted.saturating_sub(creates),
        max_concurrency: app
            .config
            .targets
            .values()
            .map(|target| target.max_concurrency)
            .max()
            .unwrap_or(0),
        fault_budget: plans.iter().map(|plan| u64::from(plan.faults)).sum(),
        import_secs,
        submit_secs,
        submits_per_sec: ratio(submitted as f64, submit_secs),
        process_secs,
        tasks_per_sec: ratio(submitted as f64, process_secs),
        passes,
        idle_passes,
        attempts,
        attempts_per_task: ratio(attempts as f64, submitted as f64),
        max_attempts_seen,
        claimed,
        retried,
        requeued,
        already_done,
        by_status,
        pass_errors,
        targets,
        child_cpu_secs,
        sim_cpu_secs,
        submit_cpu_secs,
        vm_hwm_after_build_kib,
        vm_hwm_after_submit_kib,
        vm_hwm_kib: vm_hwm_kib()?,
        store_bytes,
    })
}

/// `wanted` distinct (active account name, entitlement id) pairs of the plan's target.
async fn access_pairs(
    store: &dyn Store,
    plan: &Plan,
    wanted: u32,
) -> Result<Vec<(String, String)>> {
    let accounts: Vec<String> = store
        .list_accounts(&AccountFilter {
            target: Some(plan.name.clone()),
            status: Some(AccountStatus::Active),
            ..AccountFilter::default()
        })
        .await?
        .into_iter()
        .map(|account| account.name)
        .collect();
    let entitlements: Vec<String> = store
        .list_entitlements(&EntitlementFilter {
            target: plan.name.clone(),
            entitlement_type: Some(plan.entitlement_type().into()),
            ..EntitlementFilter::default()
        })
        .await?
        .into_iter()
        .map(|entitlement| entitlement.id)
        .collect();
    let pairs = accounts.len() * entitlements.len();
    let wanted = usize::try_from(wanted)?.min(pairs);
    // i = q·A + r → account r, entitlement (q + r) mod E: distinct for i < A·E.
    Ok((0..wanted)
        .filter_map(|i| {
            let account = accounts.get(i % accounts.len())?;
            let entitlement =
                entitlements.get((i / accounts.len() + i % accounts.len()) % entitlements.len())?;
            Some((account.clone(), entitlement.clone()))
        })
        .collect())
}

/// Installs `budget` one-shot 503 rules on the create endpoint, one each time another
/// `creates ÷ budget` create requests have been answered, until `stop`.
async fn inject(
    sim: SimClient,
    route: &'static str,
    prefix: &'static str,
    creates: u32,
    budget: u32,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let every = u64::from((creates / budget.max(1)).max(1));
    let start = sim.stats().await?.route(route);
    let rule = json!({
        "method": "POST",
        "path_prefix": prefix,
        "status": FAULT_STATUS,
        "times": 1,
    });
    let mut installed = 0_u32;
    while installed < budget && !stop.load(Ordering::Relaxed) {
        let seen = sim.stats().await?.route(route).saturating_sub(start);
        while installed < budget && u64::from(installed) * every <= seen {
            sim.post("/_sim/faults", &rule).await?;
            installed += 1;
        }
        tokio::time::sleep(INJECT_POLL).await;
    }
    Ok(())
}
