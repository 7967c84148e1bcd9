//! What the benchmarks share: the simulator run as its own process (so its memory, which
//! grows with the tenant, is not counted in the importer's peak RSS), and small readings of
//! `/proc` and ratios. Each bench uses a part of it.
#![allow(dead_code)]

pub mod score_table;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use idsync::app::App;
use idsync::config::TargetKind;
use idsync::model::{ImportMode, JobKind, ObjectKind, RunOutcome, Trigger};
use idsync::store::{RunFilter, Store};
use idsync::sync::{ImportParts, ImportRequest, ImportSummary, RunReport};
use tokio_util::sync::CancellationToken;

/// Any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A result with a boxed error.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// A bench binary's `main`: `--child ARGS…` runs `child` with the arguments after the flag
/// (the measured process, see [`run_child`]); anything else runs `parent` with every
/// argument. An error is printed under the bench's `name` and fails the exit code.
pub fn bench_main(
    name: &str,
    parent: impl FnOnce(&[String]) -> Result<ExitCode>,
    child: impl FnOnce(&[String]) -> Result<ExitCode>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().position(|arg| arg == "--child") {
        Some(at) => child(args.get(at + 1..).unwrap_or_default()),
        None => parent(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{name}: error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// An `idsync sim` process, killed when dropped (also on error paths).
pub struct Simulator {
    process: Child,
    log_path: PathBuf,
    /// The config fragment's tables: target name → (key → value).
    pub targets: BTreeMap<String, toml::Table>,
}

impl Simulator {
    /// Starts `idsync sim` for `kinds` on free ports, with `args` (e.g. `--users N`), and
    /// waits up to `timeout` for its config fragment. Its logs go to `sim.log` in `dir`
    /// (shown if it fails to start).
    pub fn start(
        kinds: &[TargetKind],
        args: &[String],
        dir: &Path,
        timeout: Duration,
    ) -> Result<Self> {
        let which = match kinds {
            [one] => one.as_str(),
            _ => "all",
        };
        let log_path = dir.join("sim.log");
        let log = std::fs::File::create(&log_path)?;
        let mut process = Command::new(env!("CARGO_BIN_EXE_idsync"))
            .args(["sim", which, "--port", "0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let Some(stdout) = process.stdout.take() else {
            let _ = process.kill();
            let _ = process.wait();
            return Err("the simulator has no stdout".into());
        };
        // The simulator owns its data from here; the guard kills it on any early return.
        let mut sim = Simulator {
            process,
            log_path,
            targets: BTreeMap::new(),
        };
        let (tx, rx) = mpsc::channel::<String>();
        // Drains stdout until the simulator exits (so it never writes into a closed pipe).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + timeout;
        let mut fragment = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(sim.failure("did not print its config fragment in time"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(sim.failure("exited before printing its config fragment"))
                }
            };
            fragment.push_str(&line);
            fragment.push('\n');
            // Done once every simulator's table has its last key (the credential).
            let Ok(table) = toml::from_str::<toml::Table>(&fragment) else {
                continue;
            };
            let Some(targets) = table.get("targets").and_then(toml::Value::as_table) else {
                continue;
            };
            let complete = kinds.iter().all(|kind| {
                let secret = match kind {
                    TargetKind::Digicert => "api_key",
                    TargetKind::Jama => "client_secret",
                    TargetKind::Duckcreek => "password",
                };
                targets
                    .get(kind.as_str())
                    .and_then(|target| target.get(secret))
                    .is_some()
            });
            if complete {
                for (name, fields) in targets {
                    let fields = fields
                        .as_table()
                        .ok_or_else(|| format!("[targets.{name}] is not a table"))?;
                    sim.targets.insert(name.clone(), fields.clone());
                }
                return Ok(sim);
            }
        }
    }

    /// A string field of a target's table (e.g. `base_url`, `api_key`).
    pub fn field(&self, target: &str, key: &str) -> Result<String> {
        self.targets
            .get(target)
            .and_then(|fields| fields.get(key))
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                format!("no {key} in [targets.{target}] of the simulator's fragment").into()
            })
    }

    /// The simulator's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// An error naming why the simulator failed, with its log.
    fn failure(&mut self, why: &str) -> BoxError {
        let _ = self.process.kill();
        let status = self
            .process
            .wait()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        format!("the simulator {why} ({status}); its log:\n{log}").into()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A TOML string literal.
pub fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The `[store]` and `[log]` tables of a bench config: a fresh SQLite file at `store`, logs
/// at `level` as text (so the child's stdout stays the result line).
pub fn config_head(store: &Path, level: &str) -> String {
    let store_url = format!("sqlite://{}", store.display());
    format!(
        "[store]\nurl = {}\n\n[log]\nlevel = {}\nformat = \"text\"\n",
        toml_string(&store_url),
        toml_string(level)
    )
}

/// Runs this bench binary again as `--child ARGS…`, so the child's peak RSS is its own, and
/// returns the JSON line it printed last, parsed and as printed. `label` names the run in
/// errors.
pub fn run_child<T: serde::de::DeserializeOwned>(
    label: &str,
    args: Vec<OsString>,
) -> Result<(T, String)> {
    let output = Command::new(std::env::current_exe()?)
        .arg("--child")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("{label}: the child failed ({}):\n{stdout}", output.status).into());
    }
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .ok_or_else(|| format!("{label}: the child printed no result:\n{stdout}"))?;
    Ok((serde_json::from_str(line)?, line.to_string()))
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `a / b`, or 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Records per second.
pub fn per_sec(records: u64, secs: f64) -> f64 {
    ratio(records as f64, secs)
}

/// `PASS` or `FAIL`.
pub fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

/// This process's peak resident set size, in KiB.
pub fn vm_hwm_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".into())
}

/// CPU time (user + system) of process `pid` (`self` for this one) so far, in seconds.
pub fn cpu_secs(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: utime is field 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |at: usize| -> Result<f64> {
        Ok(fields
            .get(at)
            .ok_or("short /proc/PID/stat")?
            .parse::<u64>()? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// The sizes a bench runs: the comma-separated list in environment variable `var`, else the
/// numeric arguments, else `defaults`. Other arguments (`--bench`, which `cargo bench`
/// passes) are ignored.
pub fn sizes(var: &str, args: &[String], defaults: &[u64]) -> Result<Vec<u64>> {
    let from_env = std::env::var(var).unwrap_or_default();
    let mut sizes = Vec::new();
    for part in from_env.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n =
            parse_size(part).ok_or_else(|| format!("{var}: `{part}` is not a positive number"))?;
        sizes.push(n);
    }
    if sizes.is_empty() {
        sizes = args.iter().filter_map(|arg| parse_size(arg)).collect();
    }
    if sizes.is_empty() {
        sizes = defaults.to_vec();
    }
    Ok(sizes)
}

/// `10000`, `10_000` or `10k`; `None` for anything else, zero, or an overflow.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.replace('_', "");
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(digits) => (digits, 1000),
        None => (text.as_str(), 1),
    };
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(scale)
        .filter(|&n| n > 0)
}

/// The run of one kind in a summary.
pub fn part(summary: &ImportSummary, kind: JobKind) -> Result<&RunReport> {
    summary
        .runs
        .iter()
        .find(|run| run.kind == kind)
        .ok_or_else(|| format!("no {kind} run in the summary").into())
}

/// Rows written by every run of `summary`, all object kinds.
pub fn rows_written(summary: &ImportSummary) -> u64 {
    summary
        .runs
        .iter()
        .flat_map(|run| {
            ObjectKind::ALL
                .iter()
                .map(|object| run.counts.of(*object).written())
        })
        .sum()
}

/// A run's duration from its record in the store (started_at → finished_at, millisecond
/// timestamps); `target` is the run's target.
pub async fn run_secs(app: &App, target: &str, run: &RunReport) -> Result<f64> {
    let id = run.run_id.ok_or("the run has no id")?;
    let runs = app
        .store
        .list_runs(&RunFilter {
            target: Some(target.into()),
            limit: 10,
            ..Default::default()
        })
        .await?;
    let record = runs
        .iter()
        .find(|record| record.id == id)
        .ok_or_else(|| format!("run {id} not in the store"))?;
    let finished = record
        .finished_at
        .ok_or_else(|| format!("run {id} has no finish time"))?;
    Ok((finished - record.started_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64())
}

/// One full import of `parts` of `target`, as `idsync import` runs it; an error only if the
/// import could not run at all (check the runs with [`succeeded`]).
pub async fn run_import(app: &App, target: &str, parts: ImportParts) -> Result<ImportSummary> {
    let request = ImportRequest {
        target: target.into(),
        job: "manual".into(),
        parts,
        mode: ImportMode::Full,
        dry_run: false,
        allow_deletions: false,
        trigger: Trigger::Cli,
        actor: "cli:bench".into(),
        started: None,
    };
    Ok(app.imports.run(request, &CancellationToken::new()).await?)
}

/// An error unless `summary` holds `runs` runs, all succeeded.
pub fn succeeded(summary: &ImportSummary, runs: usize) -> Result<()> {
    for run in &summary.runs {
        if run.outcome != RunOutcome::Succeeded {
            return Err(format!(
                "import {}: {} {}: {}",
                summary.target,
                run.kind,
                run.outcome,
                run.error.as_deref().unwrap_or("")
            )
            .into());
        }
    }
    if summary.runs.len() != runs {
        return Err(format!(
            "expected {runs} runs, got {} (skipped: {:?})",
            summary.runs.len(),
            summary.skipped
        )
        .into());
    }
    Ok(())
}

/// One full account + access import of `target`; an error unless both runs succeeded.
pub async fn import_both(app: &App, target: &str) -> Result<ImportSummary> {
    let summary = run_import(app, target, ImportParts::Both).await?;
    succeeded(&summary, 2)?;
    Ok(summary)
}

/// What a measured child process printed and how much memory it took.
pub struct Measured {
    /// Its standard output.
    pub stdout: String,
    /// Its peak resident set size (`ru_maxrss` from `wait4`), in KiB.
    pub peak_rss_kib: u64,
}

/// Runs `command` to its end (stdout captured, stderr passed through) and reads its peak RSS
/// from `wait4`, so that it works for any program (the naive Python script as well as this
/// bench's own children). That figure is at least this process's RSS when it spawned the
/// child (std spawns through a vfork that shares this process's memory until the exec), so it
/// is the child's own only if this process is the smaller; a child of this bench binary reads
/// its own `VmHWM` instead. An error names `label` and shows the output if it failed.
pub fn run_measured(label: &str, command: &mut Command) -> Result<Measured> {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| format!("{label}: could not start: {err}"))?;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout)?;
    }
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; an all-zero value is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers to locals; `child` is not waited
    // for again (std's `Child` does not reap on drop).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(format!("{label}: wait4 failed: {}", std::io::Error::last_os_error()).into());
    }
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !exited_ok {
        return Err(
            format!("{label}: the process failed (wait status {status}):\n{stdout}").into(),
        );
    }
    Ok(Measured {
        stdout,
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

/// The last line of `stdout` that is a JSON object, parsed; `label` names the run in errors.
pub fn last_json_line<T: serde::de::DeserializeOwned>(label: &str, stdout: &str) -> Result<T> {
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .ok_or_else(|| format!("{label}: printed no result:\n{stdout}"))?;
    Ok(serde_json::from_str(line)?)
}

/// Bytes of the SQLite database at `path` and its write-ahead log (0 for what is missing).
pub fn sqlite_bytes(path: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    [path.to_path_buf(), wal]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum()
}

/// The machine a bench ran on, for its results history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// Cores this process may use.
    pub cores: usize,
    /// `MemTotal` from `/proc/meminfo`, in KiB (0 if unreadable).
    pub memory_kib: u64,
    /// The first `model name` of `/proc/cpuinfo` (empty if unreadable).
    pub cpu_model: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_kib,
            cpu_model,
        }
    }
}

/// `git rev-parse --short HEAD` in the package's directory, or `unknown`.
pub fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|commit| !commit.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
