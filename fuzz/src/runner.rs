//! The fuzzing loop: feeds a target its seed corpus, then mutations of corpus entries and
//! generated inputs until the time is up, and turns a panic, a hang or a memory blow-up
//! into a finding whose input is saved under the crashes directory.
//!
//! Not coverage-guided: the corpus never grows. Each input runs in the harness's thread
//! under `catch_unwind`; a panic anywhere (in a task the target spawned too) is seen through
//! the panic hook. A watchdog thread ends the process when one input runs past the per-input
//! limit, since a hung input cannot be interrupted.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::mutate::mutate;

/// One parser under test.
pub trait Target {
    /// The target's name (its corpus directory and its `TARGET` argument).
    fn name(&self) -> &'static str;

    /// Runs one input. `Err` is a finding that is not a panic: an output the parser must
    /// never produce (e.g. a JSON template that rendered invalid JSON).
    fn run(&mut self, input: &[u8]) -> Result<(), String>;

    /// One generated structured input.
    fn generate(&mut self, runner: &mut TestRunner) -> Vec<u8>;
}

/// The bounds of one target's run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall time for the whole target.
    pub duration: Duration,
    /// Longest one input may run before it counts as a hang.
    pub per_input: Duration,
    /// Largest growth of the process's peak RSS over the run, in bytes.
    pub max_rss_growth: u64,
}

/// What one target's run did.
#[derive(Debug)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Inputs run.
    pub executions: u64,
    /// Wall time taken.
    pub elapsed: Duration,
    /// Panics and wrong outputs, each with the file its input was saved to.
    pub findings: Vec<String>,
    /// Growth of peak RSS over the run, in bytes.
    pub rss_growth: u64,
}

impl Report {
    /// Inputs per second.
    pub fn per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The last panic message, set by the hook (any thread).
fn last_panic() -> &'static Mutex<Option<String>> {
    static LAST: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    LAST.get_or_init(|| Mutex::new(None))
}

/// Replaces the panic hook with one that records the message (with its location) instead of
/// printing it, so a panic in any thread is seen and the output stays readable.
pub fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(text) => (*text).to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "(non-text panic payload)".into()),
        };
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        if let Ok(mut last) = last_panic().lock() {
            last.get_or_insert(format!("panic in thread {thread}{location}: {message}"));
        }
    }));
}

/// The process's peak resident set size, in bytes.
pub fn peak_rss() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    // Linux reports kilobytes.
    u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024
}

/// Saves `input` under `dir` as `<target>-<kind>-<hash>.bin` and returns the path.
fn save(dir: &Path, target: &str, kind: &str, input: &[u8]) -> PathBuf {
    let _ = fs::create_dir_all(dir);
    // FNV-1a: a stable name, so the same input found twice is saved once.
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{kind}-{hash:016x}.bin"));
    if let Err(err) = fs::write(&path, input) {
        eprintln!("cannot save the input to {}: {err}", path.display());
    }
    path
}

/// Every file of `dir`, sorted by name (empty when the directory is missing).
pub fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| fs::read(p).ok())
        .collect()
}

/// The input being run and when it started (ns since the run began; 0 = idle), for the
/// watchdog.
struct InFlight {
    started_ns: AtomicU64,
    input: Mutex<Vec<u8>>,
}

/// Starts the watchdog: when an input runs past `limit`, saves it, reports the hang and ends
/// the process with status 2.
fn watchdog(
    target: &'static str,
    epoch: Instant,
    in_flight: Arc<InFlight>,
    limit: Duration,
    crashes: PathBuf,
) -> Arc<std::sync::atomic::AtomicBool> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let started = in_flight.started_ns.load(Ordering::Acquire);
                if started == 0 {
                    continue;
                }
                let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                if now.saturating_sub(started) > u64::try_from(limit.as_nanos()).unwrap_or(0) {
                    let input = in_flight
                        .input
                        .lock()
                        .map(|i| i.clone())
                        .unwrap_or_default();
                    let path = save(&crashes, target, "hang", &input);
                    eprintln!(
                        "FINDING {target}: hang: one input ran longer than {limit:?}; input saved \
                         to {} (replay: idsync-fuzz {target} --replay {})",
                        path.display(),
                        path.display()
                    );
                    std::process::exit(2);
                }
            }
        })
        .expect("start the watchdog thread");
    stop
}

/// Runs one input under `catch_unwind`; a finding's description when it panicked or the
/// target rejected its output.
fn run_one(target: &mut dyn Target, input: &[u8]) -> Option<String> {
    if let Ok(mut last) = last_panic().lock() {
        *last = None;
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| target.run(input)));
    let hooked = last_panic().lock().ok().and_then(|mut last| last.take());
    match (outcome, hooked) {
        (_, Some(message)) => Some(message),
        (Err(_), None) => Some("panic".into()),
        (Ok(Err(wrong)), None) => Some(wrong),
        (Ok(Ok(())), None) => None,
    }
}

/// Fuzzes `target` from the corpus in `corpus_dir` within `limits`, saving findings under
/// `crashes_dir`. `seed` makes the mutations and generated inputs repeatable.
pub fn fuzz(
    target: &mut dyn Target,
    corpus_dir: &Path,
    crashes_dir: &Path,
    limits: &Limits,
    seed: u64,
) -> Report {
    let name = target.name();
    let corpus = load_corpus(corpus_dir);
    if corpus.is_empty() {
        eprintln!(
            "warning: no seed corpus in {} (run `idsync-fuzz seed-corpus`)",
            corpus_dir.display()
        );
    }
    let epoch = Instant::now();
    let in_flight = Arc::new(InFlight {
        started_ns: AtomicU64::new(0),
        input: Mutex::new(Vec::new()),
    });
    let stop = watchdog(
        name,
        epoch,
        in_flight.clone(),
        limits.per_input,
        crashes_dir.to_path_buf(),
    );
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let baseline = peak_rss();
    let mut report = Report {
        target: name,
        executions: 0,
        elapsed: Duration::ZERO,
        findings: Vec::new(),
        rss_growth: 0,
    };
    let mut next_seed = 0usize;
    while next_seed < corpus.len() || epoch.elapsed() < limits.duration {
        // (a) every seed once, then (b) mutated seeds and (c) generated inputs, 3 to 1.
        let input = if let Some(entry) = corpus.get(next_seed) {
            next_seed += 1;
            entry.clone()
        } else if corpus.is_empty() || report.executions % 4 == 3 {
            target.generate(&mut runner)
        } else {
            mutate(&corpus, &mut rng)
        };
        if let Ok(mut current) = in_flight.input.lock() {
            current.clear();
            current.extend_from_slice(&input);
        }
        let started = u64::try_from(epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        in_flight.started_ns.store(started, Ordering::Release);
        let finding = run_one(target, &input);
        in_flight.started_ns.store(0, Ordering::Release);
        report.executions += 1;
        if let Some(finding) = finding {
            let path = save(crashes_dir, name, "crash", &input);
            eprintln!(
                "FINDING {name}: {finding}; input saved to {}",
                path.display()
            );
            report
                .findings
                .push(format!("{finding} (input: {})", path.display()));
            if report.findings.len() >= 20 {
                eprintln!("{name}: 20 findings, stopping early");
                break;
            }
        }
        let growth = peak_rss().saturating_sub(baseline);
        if growth > limits.max_rss_growth {
            let path = save(crashes_dir, name, "memory", &input);
            let finding = format!(
                "memory blow-up: peak RSS grew by {} MiB (limit {} MiB); the last input is saved \
                 to {}",
                growth >> 20,
                limits.max_rss_growth >> 20,
                path.display()
            );
            eprintln!("FINDING {name}: {finding}");
            report.findings.push(finding);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    report.elapsed = epoch.elapsed();
    report.rss_growth = peak_rss().saturating_sub(baseline);
    report
}

/// Runs one saved input once and describes the outcome (to reproduce a finding).
pub fn replay(target: &mut dyn Target, input: &[u8]) -> Option<String> {
    run_one(target, input)
}
