//! Jama import benchmark: full imports from the Jama simulator into a fresh SQLite store,
//! with the simulator's request counters.
//!
//! Two scenarios, each against its own simulator **process** (`idsync sim jama --port 0
//! --users U --groups G --memberships-per-user M [--no-rate-limit]`, so the simulator's data
//! is not counted in the importer's memory) and each imported by a fresh **child process**
//! (this bench binary re-executed as `--child …`, so peak RSS is the import's own):
//!
//! 1. **limits off** (default 20,000 users, 40 groups, ~10 groups per user ≈ 200,000
//!    memberships): simulator `--no-rate-limit`, client `rate_limit = []`, `page_size = 50`.
//! 2. **limited** (default 600 users, 6 groups, ~3 groups per user): the simulator's default
//!    10 requests/s tenant limit and the client's default pacing (10/s), `page_size = 50`.
//!
//! The child builds the app (`app::load_config_str` + `App::build`), reads the simulator's
//! `GET /_sim/stats`, runs a full import (`ImportParts::Both`: accounts, then entitlements +
//! grants), reads the stats again, then runs a second full import with nothing changed in
//! between. It prints one JSON line with: wall time per part (from the run records) and in
//! total, records read and records/s, requests (token requests included) and requests per
//! record, requests per route, 429s, the share of the 10/s budget used (API requests ÷ (10 ×
//! seconds); the token endpoint is not rate limited), the re-import's rows written, the
//! child's CPU time and peak RSS (`VmHWM`), and the simulator's CPU time during the import.
//!
//! The parent prints a table, one JSON line per scenario and the checks, and exits non-zero
//! if one fails: a re-import wrote rows; more than one 429 in the limited scenario; the
//! limited scenario used more than 100% of the rate budget.
//!
//! Run it (release build; about a minute and a half for both scenarios on 2 cores):
//!
//! ```text
//! cargo bench --bench jama_import
//! IDSYNC_BENCH_JAMA=2000,10,5 cargo bench --bench jama_import        # smaller limits-off set
//! IDSYNC_BENCH_JAMA_LIMITED=300,4,2 cargo bench --bench jama_import  # smaller limited set
//! IDSYNC_BENCH_JAMA_ONLY=off cargo bench --bench jama_import         # one scenario: off|limited
//! ```
//!
//! Sizes are `users,groups,memberships_per_user`. Linux only (reads `/proc`).

mod common;
use common::{
    config_head, cpu_secs, import_both, mib, part, per_sec, ratio, rows_written, run_child,
    run_secs, toml_string, verdict, vm_hwm_kib, Result, Simulator,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use idsync::app::App;
use idsync::config::TargetKind;
use idsync::model::JobKind;
use idsync_sim::SimStats;

/// How long the simulator may take to build its tenant and print its fragment.
const SIM_START_TIMEOUT: Duration = Duration::from_secs(300);
/// The target name in the generated config (and in the simulator's fragment).
const TARGET: &str = "jama";
/// Records per page asked for (Jama's own maximum).
const PAGE_SIZE: u32 = 50;
/// The tenant-wide limit the limited scenario runs under, per second.
const RATE_PER_SEC: f64 = 10.0;
/// The most 429s the limited scenario may receive.
const MAX_429S: u64 = 1;
/// One scenario: a tenant's size and whether the limits are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scenario {
    name: &'static str,
    users: u32,
    groups: u32,
    memberships_per_user: u32,
    limited: bool,
}

const LIMITS_OFF: Scenario = Scenario {
    name: "limits-off",
    users: 20_000,
    groups: 40,
    memberships_per_user: 10,
    limited: false,
};

const LIMITED: Scenario = Scenario {
    name: "limited",
    users: 600,
    groups: 6,
    memberships_per_user: 3,
    limited: true,
};

fn main() -> ExitCode {
    common::bench_main("jama import bench", |_| parent(), child)
}

// ---------------------------------------------------------------------------------------
// Parent: simulators, child processes, the table and the checks.
// ---------------------------------------------------------------------------------------

/// One child's result line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Measurement {
    scenario: String,
    users: u32,
    groups: u32,
    memberships_per_user: u32,
    limited: bool,
    page_size: u32,
    /// Memberships the simulator holds (sum of its groups' member counts).
    memberships: u64,
    sim_start_secs: f64,
    account_records: u64,
    account_secs: f64,
    account_records_per_sec: f64,
    access_records: u64,
    access_secs: f64,
    access_records_per_sec: f64,
    records: u64,
    total_secs: f64,
    records_per_sec: f64,
    /// Requests of the first import, token requests included.
    requests: u64,
    token_requests: u64,
    requests_per_record: f64,
    responses_429: u64,
    /// API requests (token requests excluded) ÷ (10 × `total_secs`); limited scenario only.
    rate_budget_share: Option<f64>,
    requests_by_route: BTreeMap<String, u64>,
    reimport_secs: f64,
    reimport_rows_written: u64,
    reimport_requests: u64,
    reimport_responses_429: u64,
    /// CPU time (user + system) of the importing process during the first import.
    child_cpu_secs: f64,
    /// CPU time of the simulator process during the first import.
    sim_cpu_secs: f64,
    vm_hwm_after_build_kib: u64,
    vm_hwm_kib: u64,
    store_bytes: u64,
}

fn parent() -> Result<ExitCode> {
    let scenarios = scenarios()?;
    let started = Instant::now();
    println!("idsync Jama import bench: page_size {PAGE_SIZE}");
    let mut rows = Vec::new();
    for scenario in &scenarios {
        println!(
            "  {}: {} users, {} groups, ~{} groups per user, limits {}",
            scenario.name,
            scenario.users,
            scenario.groups,
            scenario.memberships_per_user,
            if scenario.limited {
                "on (sim 10/s, client 10/s)"
            } else {
                "off"
            }
        );
        let row = run_scenario(scenario)?;
        println!(
            "  {}: import {:.2}s ({:.0} rec/s), {} requests ({:.4}/record), {} 429s, re-import {:.2}s, peak RSS {:.1} MiB",
            row.scenario,
            row.total_secs,
            row.records_per_sec,
            row.requests,
            row.requests_per_record,
            row.responses_429,
            row.reimport_secs,
            mib(row.vm_hwm_kib),
        );
        rows.push(row);
    }
    let took = started.elapsed();
    print_table(&rows);
    let ok = print_checks(&rows);
    println!("\nbench run time: {:.1}s", took.as_secs_f64());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The scenarios to run, with sizes from `IDSYNC_BENCH_JAMA` / `IDSYNC_BENCH_JAMA_LIMITED`
/// and the choice from `IDSYNC_BENCH_JAMA_ONLY` (`off` or `limited`).
fn scenarios() -> Result<Vec<Scenario>> {
    let off = sized(LIMITS_OFF, "IDSYNC_BENCH_JAMA")?;
    let limited = sized(LIMITED, "IDSYNC_BENCH_JAMA_LIMITED")?;
    let only = std::env::var("IDSYNC_BENCH_JAMA_ONLY").unwrap_or_default();
    match only.trim() {
        "" => Ok(vec![off, limited]),
        "off" | "limits-off" | "1" => Ok(vec![off]),
        "limited" | "on" | "2" => Ok(vec![limited]),
        other => Err(format!("IDSYNC_BENCH_JAMA_ONLY: `{other}` is not `off` or `limited`").into()),
    }
}

/// `scenario` with the sizes from env var `var` (`users,groups,per_user`), if set.
fn sized(scenario: Scenario, var: &str) -> Result<Scenario> {
    let text = std::env::var(var).unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(scenario);
    }
    let numbers: Vec<u32> = text
        .split(',')
        .map(|part| parse_number(part.trim()))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{var}: `{text}` is not users,groups,per_user"))?;
    let [users, groups, memberships_per_user] = numbers.as_slice() else {
        return Err(format!("{var}: `{text}` is not users,groups,per_user").into());
    };
    if *users == 0 || *groups == 0 {
        return Err(format!("{var}: users and groups must be positive").into());
    }
    Ok(Scenario {
        users: *users,
        groups: *groups,
        memberships_per_user: *memberships_per_user,
        ..scenario
    })
}

/// `20000`, `20_000` or `20k`.
fn parse_number(text: &str) -> Option<u32> {
    let text = text.replace('_', "");
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(digits) => (digits, 1000),
        None => (text.as_str(), 1),
    };
    digits.parse::<u32>().ok()?.checked_mul(scale)
}

/// Starts the scenario's simulator, runs one child against it, stops the simulator.
fn run_scenario(scenario: &Scenario) -> Result<Measurement> {
    let dir = tempfile::tempdir()?;
    let sim_started = Instant::now();
    let mut args = vec![
        "--users".to_string(),
        scenario.users.to_string(),
        "--groups".to_string(),
        scenario.groups.to_string(),
        "--memberships-per-user".to_string(),
        scenario.memberships_per_user.to_string(),
    ];
    if !scenario.limited {
        args.push("--no-rate-limit".to_string());
    }
    let sim = Simulator::start(&[TargetKind::Jama], &args, dir.path(), SIM_START_TIMEOUT)?;
    let base_url = sim.field(TARGET, "base_url")?;
    let sim_start_secs = sim_started.elapsed().as_secs_f64();
    eprintln!(
        "  {}: simulator up in {sim_start_secs:.1}s at {}",
        scenario.name, base_url
    );
    let store = dir.path().join("idsync.db");
    let config_path = dir.path().join("idsync.toml");
    std::fs::write(&config_path, config_text(scenario, &store, &sim)?)?;

    let args = vec![
        scenario.name.into(),
        config_path.into(),
        base_url.into(),
        sim.pid().to_string().into(),
    ];
    let (mut row, _): (Measurement, _) = run_child(scenario.name, args)?;
    drop(sim);
    if !scenario.limited {
        row.rate_budget_share = None;
    }
    row.users = scenario.users;
    row.groups = scenario.groups;
    row.memberships_per_user = scenario.memberships_per_user;
    row.limited = scenario.limited;
    row.sim_start_secs = sim_start_secs;
    Ok(row)
}

/// The config: a fresh store, the simulator as target `jama`, pacing off unless limited.
fn config_text(scenario: &Scenario, store: &Path, sim: &Simulator) -> Result<String> {
    // No `rate_limit` key: the adapter's default pacing (10/s).
    let pacing = if scenario.limited {
        ""
    } else {
        "rate_limit = []\n"
    };
    Ok(format!(
        r#"{head}
[targets.{TARGET}]
kind = "jama"
base_url = {base_url}
client_id = {client_id}
client_secret = {client_secret}
page_size = {PAGE_SIZE}
{pacing}"#,
        head = config_head(store, "warn"),
        base_url = toml_string(&sim.field(TARGET, "base_url")?),
        client_id = toml_string(&sim.field(TARGET, "client_id")?),
        client_secret = toml_string(&sim.field(TARGET, "client_secret")?),
    ))
}

fn print_table(rows: &[Measurement]) {
    println!();
    println!(
        "{:>10} | {:>6} {:>4} {:>7} | {:>7} {:>7} {:>8} {:>8} {:>8} | {:>6} {:>5} {:>7} {:>4} {:>7} | {:>7} {:>6} | {:>7} {:>7} | {:>7}",
        "scenario",
        "users",
        "grps",
        "members",
        "acct s",
        "acces s",
        "total s",
        "records",
        "rec/s",
        "reqs",
        "token",
        "req/rec",
        "429",
        "budget",
        "reimp s",
        "reimp w",
        "cpu s",
        "sim cpu",
        "RSS MiB",
    );
    println!("{}", "-".repeat(160));
    for row in rows {
        let budget = row
            .rate_budget_share
            .map_or_else(|| "-".to_owned(), |share| format!("{:.1}%", share * 100.0));
        println!(
            "{:>10} | {:>6} {:>4} {:>7} | {:>7.2} {:>7.2} {:>8.2} {:>8} {:>8.0} | {:>6} {:>5} {:>7.4} {:>4} {:>7} | {:>7.2} {:>6} | {:>7.2} {:>7.2} | {:>7.1}",
            row.scenario,
            row.users,
            row.groups,
            row.memberships,
            row.account_secs,
            row.access_secs,
            row.total_secs,
            row.records,
            row.records_per_sec,
            row.requests,
            row.token_requests,
            row.requests_per_record,
            row.responses_429,
            budget,
            row.reimport_secs,
            row.reimport_rows_written,
            row.child_cpu_secs,
            row.sim_cpu_secs,
            mib(row.vm_hwm_kib),
        );
    }
    println!(
        "(records = accounts + entitlements + grants read; reqs = first import's requests incl. \
         token requests; budget = API requests / (10/s x total s); cpu s = importer CPU, sim cpu \
         = simulator CPU, both during the first import; RSS = VmHWM of the importing process)"
    );
    for row in rows {
        let routes: Vec<String> = row
            .requests_by_route
            .iter()
            .map(|(route, count)| format!("{route}: {count}"))
            .collect();
        println!(
            "  {} requests by route: {}",
            row.scenario,
            routes.join(", ")
        );
    }
    for row in rows {
        if let Ok(json) = serde_json::to_string(row) {
            println!("{json}");
        }
    }
}

/// Prints the PASS/FAIL lines; true if all pass.
fn print_checks(rows: &[Measurement]) -> bool {
    let mut ok = true;
    println!();
    for row in rows {
        let pass = row.reimport_rows_written == 0;
        ok &= pass;
        println!(
            "{}: {}: re-import with no changes wrote {} rows ({} requests, {:.2}s)",
            verdict(pass),
            row.scenario,
            row.reimport_rows_written,
            row.reimport_requests,
            row.reimport_secs,
        );
        if row.limited {
            let received = row.responses_429 + row.reimport_responses_429;
            let pass = received <= MAX_429S;
            ok &= pass;
            println!(
                "{}: {}: 429s received: {received} (first import {}, re-import {}; limit {MAX_429S})",
                verdict(pass),
                row.scenario,
                row.responses_429,
                row.reimport_responses_429,
            );
            let share = row.rate_budget_share.unwrap_or_default();
            let pass = share <= 1.0;
            ok &= pass;
            println!(
                "{}: {}: rate budget used: {:.1}% ({} API requests in {:.2}s at 10/s; at most 100%)",
                verdict(pass),
                row.scenario,
                share * 100.0,
                row.requests.saturating_sub(row.token_requests),
                row.total_secs,
            );
        }
    }
    ok
}

// ---------------------------------------------------------------------------------------
// Child: one scenario's imports, in its own process.
// ---------------------------------------------------------------------------------------

fn child(args: &[String]) -> Result<ExitCode> {
    let [scenario, config_path, sim_url, sim_pid] = args else {
        return Err("usage: --child SCENARIO CONFIG SIM_URL SIM_PID".into());
    };
    let sim_pid: u32 = sim_pid.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let measurement = runtime.block_on(child_import(
        scenario,
        Path::new(config_path),
        sim_url,
        sim_pid,
    ))?;
    println!("{}", serde_json::to_string(&measurement)?);
    Ok(ExitCode::SUCCESS)
}

/// The simulator's control routes.
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

    async fn stats(&self) -> Result<SimStats> {
        self.get("/_sim/stats").await
    }

    /// Memberships across all groups.
    async fn memberships(&self) -> Result<u64> {
        let groups: Vec<serde_json::Value> = self.get("/_sim/groups").await?;
        Ok(groups
            .iter()
            .filter_map(|group| group.get("members").and_then(serde_json::Value::as_u64))
            .sum())
    }
}

async fn child_import(
    scenario: &str,
    config_path: &Path,
    sim_url: &str,
    sim_pid: u32,
) -> Result<Measurement> {
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
    let sim = SimClient {
        http: reqwest::Client::new(),
        origin: url::Url::parse(sim_url)?,
    };
    let memberships = sim.memberships().await?;
    let app = App::build(loaded.config).await?;
    let vm_hwm_after_build_kib = vm_hwm_kib()?;

    let before = sim.stats().await?;
    let cpu_before = cpu_secs("self")?;
    let sim_cpu_before = cpu_secs(&sim_pid.to_string())?;
    let started = Instant::now();
    let first = import_both(&app, TARGET).await?;
    let total_secs = started.elapsed().as_secs_f64();
    let child_cpu_secs = cpu_secs("self")? - cpu_before;
    let sim_cpu_secs = cpu_secs(&sim_pid.to_string())? - sim_cpu_before;
    let after = sim.stats().await?;
    let account = part(&first, JobKind::AccountImport)?;
    let access = part(&first, JobKind::AccessImport)?;
    let account_secs = run_secs(&app, TARGET, account).await?;
    let access_secs = run_secs(&app, TARGET, access).await?;

    let started = Instant::now();
    let second = import_both(&app, TARGET).await?;
    let reimport_secs = started.elapsed().as_secs_f64();
    let after_reimport = sim.stats().await?;
    let reimport_rows_written = rows_written(&second);

    let records = account.counts.read + access.counts.read;
    let requests = after.requests.saturating_sub(before.requests);
    let token_requests = after.token_requests.saturating_sub(before.token_requests);
    let api_requests = requests.saturating_sub(token_requests);
    let requests_by_route = after
        .by_route
        .iter()
        .map(|(route, count)| {
            let earlier = before.by_route.get(route).copied().unwrap_or(0);
            (route.clone(), count.saturating_sub(earlier))
        })
        .filter(|(_, count)| *count > 0)
        .collect();
    // The database file and its write-ahead log.
    let store_bytes = store_path.map_or(0, |path| {
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        [path, wal]
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum()
    });
    Ok(Measurement {
        scenario: scenario.to_owned(),
        users: 0,
        groups: 0,
        memberships_per_user: 0,
        limited: false,
        page_size: PAGE_SIZE,
        memberships,
        sim_start_secs: 0.0,
        account_records: account.counts.read,
        account_secs,
        account_records_per_sec: per_sec(account.counts.read, account_secs),
        access_records: access.counts.read,
        access_secs,
        access_records_per_sec: per_sec(access.counts.read, access_secs),
        records,
        total_secs,
        records_per_sec: per_sec(records, total_secs),
        requests,
        token_requests,
        requests_per_record: ratio(requests as f64, records as f64),
        responses_429: after.responses_429.saturating_sub(before.responses_429),
        rate_budget_share: Some(ratio(api_requests as f64, RATE_PER_SEC * total_secs)),
        requests_by_route,
        reimport_secs,
        reimport_rows_written,
        reimport_requests: after_reimport.requests.saturating_sub(after.requests),
        reimport_responses_429: after_reimport
            .responses_429
            .saturating_sub(after.responses_429),
        child_cpu_secs,
        sim_cpu_secs,
        vm_hwm_after_build_kib,
        vm_hwm_kib: vm_hwm_kib()?,
        store_bytes,
    })
}
