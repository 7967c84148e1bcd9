//! Import benchmark: a full import of N simulated DigiCert users into a fresh SQLite store.
//!
//! For each size N (default 10,000 and 100,000) it:
//! 1. starts the DigiCert simulator as a **separate process** (`idsync sim digicert --port 0
//!    --users N --no-rate-limit`), so the simulator's data is not counted in the importer's
//!    memory, and reads the `[targets.digicert]` fragment it prints;
//! 2. writes a config (fresh SQLite store in a temp dir, `rate_limit = []` so the client does
//!    not pace, `log.level = "warn"`) and re-executes this bench binary as
//!    `--child N <config>`, so that each size's peak RSS is measured in its own process;
//! 3. the child builds the app with `app::load_config_str` + `App::build`, runs a full
//!    import (`ImportParts::Both`), then a second full import with no changes in between, and
//!    prints one JSON line: wall time and records/s of the account import, the access import
//!    (entitlements + grants) and the whole, the re-import's time and rows written, and the
//!    process's peak RSS (`VmHWM` from `/proc/self/status`).
//!
//! The parent prints a table and two checks, and exits non-zero if either fails:
//! * peak RSS grows from the smallest to the largest size by at most 0.2 KiB per extra user
//!   (at least 8 MiB is allowed, for noise): memory does not grow with N, because the import
//!   streams pages instead of holding the tenant (one user's records held in memory take
//!   about 1 KiB, so holding them would exceed the allowance several times over);
//! * the re-import wrote zero rows.
//!
//! Run it (release build; ~a few minutes for both sizes on 2 cores):
//!
//! ```text
//! cargo bench --bench import
//! IDSYNC_BENCH_SIZES=1000,5000 cargo bench --bench import   # a quick run
//! cargo bench --bench import -- 1000 5000                    # the same, as arguments
//! ```
//!
//! Per-part times come from the run records (millisecond timestamps); the whole is the wall
//! time of the `ImportParts::Both` call. Linux only (reads `/proc/self/status`).

mod common;
use common::{
    config_head, import_both, part, per_sec, rows_written, run_child, run_secs, sizes, toml_string,
    verdict, vm_hwm_kib, Result, Simulator,
};

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use idsync::app::App;
use idsync::config::TargetKind;
use idsync::model::JobKind;

/// The sizes run when neither `IDSYNC_BENCH_SIZES` nor arguments name any.
const DEFAULT_SIZES: &[u64] = &[10_000, 100_000];
/// How much the peak RSS may grow per user added between the smallest and the largest size.
const MAX_RSS_GROWTH_KIB_PER_USER: f64 = 0.2;
/// The least growth allowed, whatever the sizes (run-to-run noise is a few MiB).
const MIN_RSS_ALLOWANCE_KIB: f64 = 8.0 * 1024.0;
/// The target name in the generated config.
/// How long the simulator may take to build its tenant and print its fragment.
const SIM_START_TIMEOUT: Duration = Duration::from_secs(300);
/// The target's name in the simulator's fragment.
const TARGET: &str = "digicert";

fn main() -> ExitCode {
    common::bench_main("import bench", parent, child)
}

// ---------------------------------------------------------------------------------------
// Parent: simulators, child processes, the table and the checks.
// ---------------------------------------------------------------------------------------

/// One child's result line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Measurement {
    n: u64,
    account_records: u64,
    account_secs: f64,
    account_records_per_sec: f64,
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
    vm_hwm_kib: u64,
    store_bytes: u64,
}

fn parent(args: &[String]) -> Result<ExitCode> {
    let sizes = sizes("IDSYNC_BENCH_SIZES", args, DEFAULT_SIZES)?;
    let started = Instant::now();
    println!("idsync import bench: sizes {sizes:?}, simulator rate limit off, client pacing off");
    let mut rows = Vec::new();
    for &n in &sizes {
        let row = run_size(n)?;
        println!(
            "  n={n}: import {:.2}s ({:.0} rec/s), re-import {:.2}s, peak RSS {} KiB",
            row.total_secs, row.records_per_sec, row.reimport_secs, row.vm_hwm_kib
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

/// Starts a simulator with `n` users, runs one child against it, stops the simulator.
fn run_size(n: u64) -> Result<Measurement> {
    let dir = tempfile::tempdir()?;
    let sim_started = Instant::now();
    let args = [
        "--no-rate-limit".to_string(),
        "--users".to_string(),
        n.to_string(),
    ];
    let sim = Simulator::start(
        &[TargetKind::Digicert],
        &args,
        dir.path(),
        SIM_START_TIMEOUT,
    )?;
    let base_url = sim.field(TARGET, "base_url")?;
    let api_key = sim.field(TARGET, "api_key")?;
    eprintln!(
        "  n={n}: simulator up in {:.1}s at {}",
        sim_started.elapsed().as_secs_f64(),
        base_url
    );
    let store = dir.path().join("idsync.db");
    let config_path = dir.path().join("idsync.toml");
    std::fs::write(&config_path, config_text(&store, &base_url, &api_key))?;

    let (row, _) = run_child(
        &format!("n={n}"),
        vec![n.to_string().into(), config_path.into()],
    )?;
    drop(sim);
    Ok(row)
}

fn config_text(store: &Path, base_url: &str, api_key: &str) -> String {
    format!(
        r#"{head}
[targets.{TARGET}]
kind = "digicert"
base_url = {base_url}
api_key = {api_key}
rate_limit = []
"#,
        head = config_head(store, "warn"),
        base_url = toml_string(base_url),
        api_key = toml_string(api_key),
    )
}

fn print_table(rows: &[Measurement]) {
    println!();
    println!(
        "{:>9} | {:>9} {:>10} | {:>9} {:>10} | {:>9} {:>9} {:>10} | {:>9} {:>8} | {:>9} {:>9}",
        "users",
        "acct s",
        "acct r/s",
        "access s",
        "access r/s",
        "records",
        "total s",
        "total r/s",
        "reimp s",
        "reimp w",
        "RSS MiB",
        "store MiB",
    );
    println!("{}", "-".repeat(139));
    for row in rows {
        println!(
            "{:>9} | {:>9.2} {:>10.0} | {:>9.2} {:>10.0} | {:>9} {:>9.2} {:>10.0} | {:>9.2} {:>8} | {:>9.1} {:>9.1}",
            row.n,
            row.account_secs,
            row.account_records_per_sec,
            row.access_secs,
            row.access_records_per_sec,
            row.records,
            row.total_secs,
            row.records_per_sec,
            row.reimport_secs,
            row.reimport_rows_written,
            row.vm_hwm_kib as f64 / 1024.0,
            row.store_bytes as f64 / (1024.0 * 1024.0),
        );
    }
    println!(
        "(records = accounts + entitlements + grants read; RSS = VmHWM of the importing process)"
    );
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
    let smallest = rows.iter().min_by_key(|row| row.n);
    let largest = rows.iter().max_by_key(|row| row.n);
    match (smallest, largest) {
        (Some(small), Some(large)) if large.n > small.n => {
            let growth = large.vm_hwm_kib as f64 - small.vm_hwm_kib as f64;
            let added = (large.n - small.n) as f64;
            let allowance = (added * MAX_RSS_GROWTH_KIB_PER_USER).max(MIN_RSS_ALLOWANCE_KIB);
            let pass = growth <= allowance;
            ok &= pass;
            println!(
                "{}: peak RSS grew {growth:.0} KiB from {} to {} users ({} KiB -> {} KiB, {:.3} KiB \
                 per added user; allowance {allowance:.0} KiB, {MAX_RSS_GROWTH_KIB_PER_USER} KiB \
                 per user)",
                verdict(pass),
                small.n,
                large.n,
                small.vm_hwm_kib,
                large.vm_hwm_kib,
                growth / added
            );
        }
        _ => println!("SKIP: RSS growth needs two different sizes"),
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
    ok
}

// ---------------------------------------------------------------------------------------
// Child: one size's import, in its own process.
// ---------------------------------------------------------------------------------------

fn child(args: &[String]) -> Result<ExitCode> {
    let (Some(n), Some(config_path)) = (args.first(), args.get(1)) else {
        return Err("usage: --child N CONFIG".into());
    };
    let n: u64 = n.parse()?;
    let config_path = PathBuf::from(config_path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let measurement = runtime.block_on(child_import(n, &config_path))?;
    println!("{}", serde_json::to_string(&measurement)?);
    Ok(ExitCode::SUCCESS)
}

async fn child_import(n: u64, config_path: &Path) -> Result<Measurement> {
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

    let started = Instant::now();
    let first = import_both(&app, TARGET).await?;
    let total_secs = started.elapsed().as_secs_f64();
    let vm_hwm_after_import_kib = vm_hwm_kib()?;
    let account = part(&first, JobKind::AccountImport)?;
    let access = part(&first, JobKind::AccessImport)?;
    let account_secs = run_secs(&app, TARGET, account).await?;
    let access_secs = run_secs(&app, TARGET, access).await?;

    let started = Instant::now();
    let second = import_both(&app, TARGET).await?;
    let reimport_secs = started.elapsed().as_secs_f64();
    let reimport_rows_written = rows_written(&second);

    let records = account.counts.read + access.counts.read;
    let store_bytes = store_path
        .and_then(|path| std::fs::metadata(path).ok())
        .map_or(0, |meta| meta.len());
    Ok(Measurement {
        n,
        account_records: account.counts.read,
        account_secs,
        account_records_per_sec: per_sec(account.counts.read, account_secs),
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
        vm_hwm_kib: vm_hwm_kib()?,
        store_bytes,
    })
}
