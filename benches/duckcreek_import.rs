//! Duck Creek import benchmark: full imports from the Duck Creek SOAP simulator into a fresh
//! SQLite store, and whether memory stays flat while the one, never-paged user list grows.
//!
//! Duck Creek's `OnlineData.listEntityUsersRq` returns every user in ONE response. The
//! adapter reads that response as a stream (quick-xml over the HTTP body) and hands
//! `page_size` users at a time to the store, so the importer's memory should not grow with
//! the document as a whole-tree parse would (~10× for a 10× document).
//!
//! For each size N (default 5,000 and 50,000 users) it:
//! 1. starts the simulator as a **separate process** (`idsync sim duckcreek --port 0
//!    --users N`), so the simulator's data and the document it builds are not counted in the
//!    importer's memory, and reads the `[targets.duckcreek]` fragment it prints;
//! 2. writes a config (fresh SQLite store in a temp dir, `log.level = "warn"`, the fragment's
//!    `base_url`, `username` and `password`, the default `page_size`) and re-executes this
//!    bench binary as `--child size N <config>`, so each size's peak RSS is its own process's;
//! 3. the child builds the app with `app::load_config_str` + `App::build`, runs a full
//!    import (`ImportParts::Both`), then a second full import with nothing changed, reads its
//!    peak RSS (`VmHWM` from `/proc/self/status`) and only then measures the size of the
//!    single users response: it POSTs the batch the adapter sends (SOAP 1.1 envelope,
//!    `SOAPAction: ""`, login + `listEntityUsersRq entityID="1"` + close) and counts the bytes
//!    as they stream, keeping none. It prints one JSON line: wall time and records/s of the
//!    account import (users/s) and of the access import (from the run records), the whole
//!    import's wall time, records read, the re-import's rows written, VmHWM after the build
//!    and after the import, and the response's size.
//!
//! A third, **bomb** scenario (skip it with `IDSYNC_BENCH_DC_BOMB=0`): against a 5,000-user
//! simulator with an `entity_bomb` response fault installed over HTTP
//! (`POST /_sim/response_faults` on `OnlineData.listEntityUsersRq`: a "billion laughs" DOCTYPE,
//! gigabytes once expanded), a child runs the account import, which must fail with an error
//! naming the `DOCTYPE`; it reports the wall time to the failure and its peak RSS.
//!
//! The parent prints a table, one JSON line per scenario and the checks, and exits non-zero
//! if one fails:
//! * peak RSS at the largest size / peak RSS at the smallest ≤ 1.5 (the output also says how
//!   much the document grew);
//! * every re-import wrote zero rows;
//! * the bomb import failed with `DOCTYPE` in its error, and its peak RSS is within 1.5× of
//!   the 5,000-user import's (the smallest size's, when 5,000 is not among the sizes).
//!
//! Run it (release build; the first build takes a few minutes on 2 cores, the run itself about
//! ten seconds for all three scenarios):
//!
//! ```text
//! cargo bench --bench duckcreek_import
//! IDSYNC_BENCH_DC_SIZES=2k,20_000 cargo bench --bench duckcreek_import  # other sizes
//! cargo bench --bench duckcreek_import -- 2000 20000                    # the same, as arguments
//! IDSYNC_BENCH_DC_BOMB=0 cargo bench --bench duckcreek_import           # no bomb scenario
//! ```
//!
//! Per-part times come from the run records (millisecond timestamps); the whole is the wall
//! time of the `ImportParts::Both` call. The password is never printed. Linux only (reads
//! `/proc/self/status`).

mod common;
use common::{
    config_head, mib, part, per_sec, ratio, rows_written, run_child, run_import, run_secs, sizes,
    succeeded, toml_string, verdict, vm_hwm_kib, Result, Simulator,
};

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use idsync::app::App;
use idsync::config::TargetKind;
use idsync::connector::duckcreek::{CLOSE, DEFAULT_ENTITY_ID, LIST_USERS, LOGIN};
use idsync::connector::soap::{envelope, SoapVersion};
use idsync::connector::xml::escape;
use idsync::model::{JobKind, RunOutcome};
use idsync::sync::ImportParts;
use idsync_sim::SimStats;

/// The sizes run when neither `IDSYNC_BENCH_DC_SIZES` nor arguments name any.
const DEFAULT_SIZES: &[u64] = &[5_000, 50_000];
/// Users in the bomb scenario's simulator.
const BOMB_USERS: u64 = 5_000;
/// The most the peak RSS may grow from the smallest to the largest size.
const MAX_RSS_RATIO: f64 = 1.5;
/// The most the bomb import's peak RSS may be, as a multiple of the 5,000-user import's.
const MAX_BOMB_RSS_RATIO: f64 = 1.5;
/// What the bomb import's error must name.
const BOMB_ERROR_NEEDLE: &str = "DOCTYPE";
/// How long the simulator may take to build its tenant and print its fragment.
const SIM_START_TIMEOUT: Duration = Duration::from_secs(300);
/// The target's name in the simulator's fragment and in the generated config.
const TARGET: &str = "duckcreek";
/// The most characters of the bomb import's error shown in the table.
const ERROR_CHARS: usize = 240;

fn main() -> ExitCode {
    common::bench_main("duckcreek import bench", parent, child)
}

// ---------------------------------------------------------------------------------------
// Parent: simulators, child processes, the table and the checks.
// ---------------------------------------------------------------------------------------

/// One size's result line (the child's, plus what the parent adds).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Measurement {
    n: u64,
    /// Set by the parent: how long the simulator took to print its fragment.
    #[serde(default)]
    sim_start_secs: f64,
    account_records: u64,
    account_secs: f64,
    users_per_sec: f64,
    access_records: u64,
    access_secs: f64,
    access_records_per_sec: f64,
    records: u64,
    total_secs: f64,
    records_per_sec: f64,
    reimport_secs: f64,
    reimport_rows_written: u64,
    vm_hwm_after_build_kib: u64,
    vm_hwm_after_import_kib: u64,
    /// Peak RSS of the whole child (both imports), read before the response is measured.
    vm_hwm_kib: u64,
    /// Bytes of the single `listEntityUsersRq` response body.
    response_bytes: u64,
    /// How long streaming that response took (no parsing, nothing kept).
    response_secs: f64,
    /// Set by the parent: `listEntityUsersRq` requests the simulator answered (both imports
    /// and the size measurement).
    #[serde(default)]
    sim_users_requests: u64,
}

/// The bomb scenario's result line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct BombMeasurement {
    scenario: String,
    n: u64,
    #[serde(default)]
    sim_start_secs: f64,
    outcome: String,
    error: String,
    error_names_doctype: bool,
    /// Wall time of the `ImportParts::Accounts` call, to its failure.
    fail_secs: f64,
    /// The run record's duration.
    run_secs: f64,
    records_read: u64,
    rows_written: u64,
    vm_hwm_after_build_kib: u64,
    vm_hwm_kib: u64,
    /// Set by the parent: `listEntityUsersRq` requests the simulator answered (1 = not
    /// retried).
    #[serde(default)]
    sim_users_requests: u64,
}

fn parent(args: &[String]) -> Result<ExitCode> {
    let sizes = sizes("IDSYNC_BENCH_DC_SIZES", args, DEFAULT_SIZES)?;
    let bomb = bomb_enabled();
    let started = Instant::now();
    println!(
        "idsync Duck Creek import bench: sizes {sizes:?}, default page_size, bomb scenario {}",
        if bomb { "on" } else { "off" }
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for &n in &sizes {
        let row = run_size(&runtime, n)?;
        println!(
            "  n={n}: import {:.2}s ({:.0} rec/s), re-import {:.2}s, users response {:.1} MiB, peak RSS {:.1} MiB",
            row.total_secs,
            row.records_per_sec,
            row.reimport_secs,
            bytes_mib(row.response_bytes),
            mib(row.vm_hwm_kib)
        );
        rows.push(row);
    }
    let bomb = if bomb {
        let row = run_bomb(&runtime, BOMB_USERS)?;
        println!(
            "  bomb n={}: account import {} after {:.2}s, peak RSS {:.1} MiB",
            row.n,
            row.outcome,
            row.fail_secs,
            mib(row.vm_hwm_kib)
        );
        Some(row)
    } else {
        None
    };
    let took = started.elapsed();
    print_table(&rows, bomb.as_ref());
    let ok = print_checks(&rows, bomb.as_ref());
    println!("\nbench run time: {:.1}s", took.as_secs_f64());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether the bomb scenario runs (`IDSYNC_BENCH_DC_BOMB=0`, `false`, `no` or `off` skips
/// it).
fn bomb_enabled() -> bool {
    let value = std::env::var("IDSYNC_BENCH_DC_BOMB").unwrap_or_default();
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

/// A simulator with `n` users and the config that points a fresh store at it.
struct Setup {
    sim: Simulator,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    base_url: String,
    sim_start_secs: f64,
}

fn setup(label: &str, n: u64) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let sim_started = Instant::now();
    let args = ["--users".to_string(), n.to_string()];
    let sim = Simulator::start(
        &[TargetKind::Duckcreek],
        &args,
        dir.path(),
        SIM_START_TIMEOUT,
    )?;
    let sim_start_secs = sim_started.elapsed().as_secs_f64();
    let base_url = sim.field(TARGET, "base_url")?;
    eprintln!("  {label}: simulator up in {sim_start_secs:.1}s at {base_url}");
    let store = dir.path().join("idsync.db");
    let config_path = dir.path().join("idsync.toml");
    std::fs::write(&config_path, config_text(&store, &sim)?)?;
    Ok(Setup {
        sim,
        dir,
        config_path,
        base_url,
        sim_start_secs,
    })
}

/// Runs this binary as `--child KIND N CONFIG` and parses the JSON line it prints last.
fn run_kind<T: serde::de::DeserializeOwned>(kind: &str, n: u64, config_path: &Path) -> Result<T> {
    let args = vec![kind.into(), n.to_string().into(), config_path.into()];
    Ok(run_child(&format!("{kind} n={n}"), args)?.0)
}

/// Starts a simulator with `n` users, runs one child against it, stops the simulator.
fn run_size(runtime: &tokio::runtime::Runtime, n: u64) -> Result<Measurement> {
    let setup = setup(&format!("n={n}"), n)?;
    let control = SimControl::new(&setup.base_url)?;
    let mut row: Measurement = run_kind("size", n, &setup.config_path)?;
    let stats = runtime.block_on(control.stats())?;
    drop(setup.sim);
    drop(setup.dir);
    row.sim_start_secs = setup.sim_start_secs;
    row.sim_users_requests = stats.by_inner_request.get(LIST_USERS).copied().unwrap_or(0);
    Ok(row)
}

/// Starts a simulator with `n` users, installs the entity bomb on its users request, runs
/// the bomb child against it, stops the simulator.
fn run_bomb(runtime: &tokio::runtime::Runtime, n: u64) -> Result<BombMeasurement> {
    let setup = setup(&format!("bomb n={n}"), n)?;
    let control = SimControl::new(&setup.base_url)?;
    runtime.block_on(control.install_bomb())?;
    let mut row: BombMeasurement = run_kind("bomb", n, &setup.config_path)?;
    let stats = runtime.block_on(control.stats())?;
    drop(setup.sim);
    drop(setup.dir);
    row.sim_start_secs = setup.sim_start_secs;
    row.sim_users_requests = stats.by_inner_request.get(LIST_USERS).copied().unwrap_or(0);
    Ok(row)
}

/// The simulator's control routes under `/_sim/` (its origin: `base_url` without the path).
struct SimControl {
    http: reqwest::Client,
    origin: url::Url,
}

impl SimControl {
    fn new(base_url: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::new(),
            origin: url::Url::parse(base_url)?.join("/")?,
        })
    }

    async fn stats(&self) -> Result<SimStats> {
        let url = self.origin.join("/_sim/stats")?;
        let response = self.http.get(url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    /// `POST /_sim/response_faults`: every users response carries a "billion laughs".
    async fn install_bomb(&self) -> Result<()> {
        let url = self.origin.join("/_sim/response_faults")?;
        let rule = serde_json::json!({ "kind": "entity_bomb", "request": LIST_USERS });
        let response = self.http.post(url).json(&rule).send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!("installing the entity bomb: {status}: {body}").into());
        }
        Ok(())
    }
}

/// The config: a fresh store and the simulator as target `duckcreek`, default page size.
fn config_text(store: &Path, sim: &Simulator) -> Result<String> {
    Ok(format!(
        r#"{head}
[targets.{TARGET}]
kind = "duckcreek"
base_url = {base_url}
username = {username}
password = {password}
"#,
        head = config_head(store, "warn"),
        base_url = toml_string(&sim.field(TARGET, "base_url")?),
        username = toml_string(&sim.field(TARGET, "username")?),
        password = toml_string(&sim.field(TARGET, "password")?),
    ))
}

/// Bytes as MiB.
fn bytes_mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Peak RSS per byte of the users response.
fn rss_per_response(row: &Measurement) -> f64 {
    ratio(row.vm_hwm_kib as f64 * 1024.0, row.response_bytes as f64)
}

fn print_table(rows: &[Measurement], bomb: Option<&BombMeasurement>) {
    println!();
    println!(
        "{:>7} | {:>8} | {:>7} {:>8} | {:>8} {:>9} | {:>8} {:>7} | {:>7} | {:>8} {:>9} | {:>9}",
        "users",
        "resp MiB",
        "acct s",
        "users/s",
        "access s",
        "access r/s",
        "total s",
        "records",
        "reimp w",
        "peak MiB",
        "build MiB",
        "peak/resp",
    );
    println!("{}", "-".repeat(126));
    for row in rows {
        println!(
            "{:>7} | {:>8.1} | {:>7.2} {:>8.0} | {:>8.2} {:>10.0} | {:>8.2} {:>7} | {:>7} | {:>8.1} {:>9.1} | {:>9.2}",
            row.n,
            bytes_mib(row.response_bytes),
            row.account_secs,
            row.users_per_sec,
            row.access_secs,
            row.access_records_per_sec,
            row.total_secs,
            row.records,
            row.reimport_rows_written,
            mib(row.vm_hwm_kib),
            mib(row.vm_hwm_after_build_kib),
            rss_per_response(row),
        );
    }
    println!(
        "(resp = the single listEntityUsersRq response body; records = accounts + entitlements \
         + grants read by the first import; peak = VmHWM of the importing process after both \
         imports, build = VmHWM after App::build; peak/resp = peak RSS / response size)"
    );
    if let Some(bomb) = bomb {
        println!(
            "bomb: {} users, entity_bomb on {LIST_USERS}: account import {} after {:.2}s \
             (run record {:.2}s), {} users request(s) answered, peak RSS {:.1} MiB (build {:.1} \
             MiB), error: {}",
            bomb.n,
            bomb.outcome,
            bomb.fail_secs,
            bomb.run_secs,
            bomb.sim_users_requests,
            mib(bomb.vm_hwm_kib),
            mib(bomb.vm_hwm_after_build_kib),
            shorten(&bomb.error, ERROR_CHARS),
        );
    }
    for row in rows {
        if let Ok(json) = serde_json::to_string(row) {
            println!("{json}");
        }
    }
    if let Some(bomb) = bomb {
        if let Ok(json) = serde_json::to_string(bomb) {
            println!("{json}");
        }
    }
}

/// At most `chars` characters of `text`, with `…` when cut.
fn shorten(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().nth(chars).is_some() {
        out.push('…');
    }
    out
}

/// Prints the PASS/FAIL lines; true if all pass.
fn print_checks(rows: &[Measurement], bomb: Option<&BombMeasurement>) -> bool {
    let mut ok = true;
    println!();
    let smallest = rows.iter().min_by_key(|row| row.n);
    let largest = rows.iter().max_by_key(|row| row.n);
    match (smallest, largest) {
        (Some(small), Some(large)) if large.n > small.n => {
            let rss = ratio(large.vm_hwm_kib as f64, small.vm_hwm_kib as f64);
            let document = ratio(large.response_bytes as f64, small.response_bytes as f64);
            let pass = rss <= MAX_RSS_RATIO;
            ok &= pass;
            println!(
                "{}: peak RSS at {} / peak RSS at {} = {:.1} MiB / {:.1} MiB = {rss:.3} (limit \
                 {MAX_RSS_RATIO}) while the users response grew {document:.2}x ({:.1} MiB -> \
                 {:.1} MiB); a whole-tree parse would grow with the document",
                verdict(pass),
                large.n,
                small.n,
                mib(large.vm_hwm_kib),
                mib(small.vm_hwm_kib),
                bytes_mib(small.response_bytes),
                bytes_mib(large.response_bytes),
            );
        }
        _ => println!("SKIP: RSS ratio needs two different sizes"),
    }
    let written: u64 = rows.iter().map(|row| row.reimport_rows_written).sum();
    let pass = written == 0;
    ok &= pass;
    println!(
        "{}: re-import wrote zero rows (rows written: {})",
        verdict(pass),
        rows.iter()
            .map(|row| format!("{} at n={}", row.reimport_rows_written, row.n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match bomb {
        None => println!("SKIP: bomb scenario (IDSYNC_BENCH_DC_BOMB=0)"),
        Some(bomb) => {
            let pass = bomb.outcome == RunOutcome::Failed.as_str() && bomb.error_names_doctype;
            ok &= pass;
            println!(
                "{}: bomb account import failed with {BOMB_ERROR_NEEDLE} in its error (outcome \
                 {}, after {:.2}s, {} rows written)",
                verdict(pass),
                bomb.outcome,
                bomb.fail_secs,
                bomb.rows_written,
            );
            let reference = rows
                .iter()
                .find(|row| row.n == bomb.n)
                .or(smallest)
                .map(|row| (row.n, row.vm_hwm_kib));
            match reference {
                Some((n, reference_kib)) => {
                    let rss = ratio(bomb.vm_hwm_kib as f64, reference_kib as f64);
                    let pass = rss <= MAX_BOMB_RSS_RATIO;
                    ok &= pass;
                    println!(
                        "{}: bomb peak RSS / peak RSS of the n={n} import = {:.1} MiB / {:.1} MiB \
                         = {rss:.3} (limit {MAX_BOMB_RSS_RATIO})",
                        verdict(pass),
                        mib(bomb.vm_hwm_kib),
                        mib(reference_kib),
                    );
                }
                None => println!("SKIP: bomb RSS needs a size run to compare with"),
            }
        }
    }
    ok
}

// ---------------------------------------------------------------------------------------
// Child: one scenario's imports, in its own process.
// ---------------------------------------------------------------------------------------

fn child(args: &[String]) -> Result<ExitCode> {
    let [kind, n, config_path] = args else {
        return Err("usage: --child size|bomb N CONFIG".into());
    };
    let n: u64 = n.parse()?;
    let config_path = Path::new(config_path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let line = match kind.as_str() {
        "size" => serde_json::to_string(&runtime.block_on(child_size(n, config_path))?)?,
        "bomb" => serde_json::to_string(&runtime.block_on(child_bomb(n, config_path))?)?,
        other => return Err(format!("unknown child kind `{other}`").into()),
    };
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

/// The app of the config at `config_path`, and the target's fields as the file has them.
async fn build_app(config_path: &Path) -> Result<(App, TargetFields)> {
    let text = std::fs::read_to_string(config_path)?;
    let fields = TargetFields::from_config(&text)?;
    let loaded = idsync::app::load_config_str(&text, &config_path.display().to_string(), &[])
        .map_err(|err| format!("{err}: {:?}", err.problems))?;
    idsync::telemetry::init_logging(&loaded.config.log)?;
    let app = App::build(loaded.config).await?;
    Ok((app, fields))
}

async fn child_size(n: u64, config_path: &Path) -> Result<Measurement> {
    let (app, fields) = build_app(config_path).await?;
    let vm_hwm_after_build_kib = vm_hwm_kib()?;

    let started = Instant::now();
    let first = run_import(&app, TARGET, ImportParts::Both).await?;
    let total_secs = started.elapsed().as_secs_f64();
    let vm_hwm_after_import_kib = vm_hwm_kib()?;
    succeeded(&first, 2)?;
    let account = part(&first, JobKind::AccountImport)?;
    let access = part(&first, JobKind::AccessImport)?;
    let account_secs = run_secs(&app, TARGET, account).await?;
    let access_secs = run_secs(&app, TARGET, access).await?;

    let started = Instant::now();
    let second = run_import(&app, TARGET, ImportParts::Both).await?;
    let reimport_secs = started.elapsed().as_secs_f64();
    succeeded(&second, 2)?;
    let reimport_rows_written = rows_written(&second);
    let vm_hwm = vm_hwm_kib()?;

    // Only now, with the RSS figures read: the size of the one users response.
    let started = Instant::now();
    let response_bytes = users_response_bytes(&fields).await?;
    let response_secs = started.elapsed().as_secs_f64();

    let records = account.counts.read + access.counts.read;
    Ok(Measurement {
        n,
        sim_start_secs: 0.0,
        account_records: account.counts.read,
        account_secs,
        users_per_sec: per_sec(account.counts.read, account_secs),
        access_records: access.counts.read,
        access_secs,
        access_records_per_sec: per_sec(access.counts.read, access_secs),
        records,
        total_secs,
        records_per_sec: per_sec(records, total_secs),
        reimport_secs,
        reimport_rows_written,
        vm_hwm_after_build_kib,
        vm_hwm_after_import_kib,
        vm_hwm_kib: vm_hwm,
        response_bytes,
        response_secs,
        sim_users_requests: 0,
    })
}

async fn child_bomb(n: u64, config_path: &Path) -> Result<BombMeasurement> {
    let (app, fields) = build_app(config_path).await?;
    let vm_hwm_after_build_kib = vm_hwm_kib()?;

    let started = Instant::now();
    let summary = run_import(&app, TARGET, ImportParts::Accounts).await?;
    let fail_secs = started.elapsed().as_secs_f64();
    let vm_hwm = vm_hwm_kib()?;
    let run = part(&summary, JobKind::AccountImport)?;
    let run_secs = run_secs(&app, TARGET, run).await.unwrap_or(0.0);
    // The adapter redacts the password from its errors; this keeps it out of the output
    // even if one did not.
    let error = fields.redact(run.error.as_deref().unwrap_or(""));
    Ok(BombMeasurement {
        scenario: "entity_bomb".to_owned(),
        n,
        sim_start_secs: 0.0,
        outcome: run.outcome.as_str().to_owned(),
        error_names_doctype: error.contains(BOMB_ERROR_NEEDLE),
        error,
        fail_secs,
        run_secs,
        records_read: run.counts.read,
        rows_written: rows_written(&summary),
        vm_hwm_after_build_kib,
        vm_hwm_kib: vm_hwm,
        sim_users_requests: 0,
    })
}

/// The Duck Creek target's connection fields, read from the generated config.
struct TargetFields {
    base_url: String,
    username: String,
    password: String,
}

impl TargetFields {
    fn from_config(text: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        let target = table
            .get("targets")
            .and_then(|targets| targets.get(TARGET))
            .ok_or_else(|| format!("no [targets.{TARGET}] in the config"))?;
        let field = |key: &str| -> Result<String> {
            target
                .get(key)
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("no {key} in [targets.{TARGET}]").into())
        };
        Ok(Self {
            base_url: field("base_url")?,
            username: field("username")?,
            password: field("password")?,
        })
    }

    /// `text` with the password (raw and XML-escaped) replaced.
    fn redact(&self, text: &str) -> String {
        if self.password.is_empty() {
            return text.to_owned();
        }
        text.replace(&self.password, "[redacted]")
            .replace(escape(&self.password).as_ref(), "[redacted]")
    }
}

/// The size in bytes of the body answering the batch the adapter sends for the user list,
/// counted chunk by chunk as it streams (nothing is kept).
async fn users_response_bytes(fields: &TargetFields) -> Result<u64> {
    let batch = format!(
        "<server><requests><{LOGIN} userName=\"{}\" password=\"{}\"/><{LIST_USERS} \
         entityID=\"{}\"/><{CLOSE}/></requests></server>",
        escape(&fields.username),
        escape(&fields.password),
        escape(DEFAULT_ENTITY_ID),
    );
    let body = envelope(SoapVersion::V1_1, &batch);
    drop(batch);
    let mut response = reqwest::Client::new()
        .post(&fields.base_url)
        .header("SOAPAction", "\"\"")
        .header(
            reqwest::header::CONTENT_TYPE,
            SoapVersion::V1_1.default_content_type(),
        )
        .body(body)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the users request answered {status}").into());
    }
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
    }
    Ok(bytes)
}
