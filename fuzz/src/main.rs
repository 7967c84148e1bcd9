//! `idsync-fuzz`: the fuzz harness of idsync's parsers of outside input, on the stable
//! toolchain (README "Fuzzing").
//!
//! ```text
//! idsync-fuzz all --seconds 30          # every target, 30 s each (what CI runs)
//! idsync-fuzz jama --seconds 600        # one target, longer
//! idsync-fuzz jama --replay FILE        # run one saved input again
//! idsync-fuzz seed-corpus               # rewrite the committed seed corpora
//! ```
//!
//! Exit status: 0 when no target found anything, 1 on a finding (a panic or a wrong
//! output), 2 on a hang (the watchdog ends the process), 64 on a usage error.

mod generate;
mod mock;
mod mutate;
mod runner;
mod seed;
mod targets;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::runner::{Limits, Report};

/// Fuzzes idsync's parsers of outside input for a bounded time.
#[derive(Parser, Debug)]
#[command(name = "idsync-fuzz")]
struct Args {
    /// A target (digicert, jama, duckcreek, templates, config, api), `all`, or
    /// `seed-corpus` to rewrite the seed corpora from the simulators.
    target: String,
    /// Seconds to fuzz each target (after its seed corpus has run once).
    #[arg(long, default_value_t = 30.0, env = "IDSYNC_FUZZ_SECONDS")]
    seconds: f64,
    /// Longest one input may run, in milliseconds, before it counts as a hang.
    #[arg(long, default_value_t = 2000)]
    per_input_ms: u64,
    /// Largest growth of peak RSS over a target's run, in MiB.
    #[arg(long, default_value_t = 512)]
    max_rss_mib: u64,
    /// Seed of the mutations and generated inputs (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The corpora (one directory per target).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))]
    corpus: PathBuf,
    /// Where inputs that found something are saved.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/crashes"))]
    crashes: PathBuf,
    /// Runs this one input against the target, once, and says what happened.
    #[arg(long)]
    replay: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.target == "seed-corpus" {
        let repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        return match seed::write_all(&args.corpus, &repo) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: cannot write the seed corpora: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let names: Vec<&str> = if args.target == "all" {
        targets::NAMES.to_vec()
    } else if targets::NAMES.contains(&args.target.as_str()) || args.target == "selftest" {
        vec![args.target.as_str()]
    } else {
        eprintln!(
            "error: unknown target `{}`; use one of {}, `all` or `seed-corpus`",
            args.target,
            targets::NAMES.join(", ")
        );
        return ExitCode::from(64);
    };
    runner::install_panic_hook();
    if let Some(path) = &args.replay {
        return replay(names[0], path);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("idsync-fuzz: seed {seed} (repeat with --seed {seed})");
    let limits = Limits {
        duration: Duration::from_secs_f64(args.seconds.max(0.0)),
        per_input: Duration::from_millis(args.per_input_ms),
        max_rss_growth: args.max_rss_mib << 20,
    };
    let mut reports = Vec::new();
    for name in names {
        let Some(mut target) = targets::build(name) else {
            continue;
        };
        let report = runner::fuzz(
            target.as_mut(),
            &args.corpus.join(name),
            &args.crashes,
            &limits,
            seed,
        );
        print_report(&report);
        reports.push(report);
    }
    if reports.iter().any(|r| !r.findings.is_empty()) {
        eprintln!(
            "idsync-fuzz: findings; the inputs are in {}",
            args.crashes.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn print_report(report: &Report) {
    println!(
        "{:<10} {:>10.0} exec/s {:>10} execs in {:>5.1} s  peak RSS +{} MiB  findings: {}",
        report.target,
        report.per_second(),
        report.executions,
        report.elapsed.as_secs_f64(),
        report.rss_growth >> 20,
        report.findings.len()
    );
    for finding in &report.findings {
        println!("    {finding}");
    }
}

fn replay(name: &str, path: &PathBuf) -> ExitCode {
    let input = match std::fs::read(path) {
        Ok(input) => input,
        Err(err) => {
            eprintln!("error: cannot read {}: {err}", path.display());
            return ExitCode::from(64);
        }
    };
    let Some(mut target) = targets::build(name) else {
        return ExitCode::from(64);
    };
    match runner::replay(target.as_mut(), &input) {
        Some(finding) => {
            println!("{name}: {finding}");
            ExitCode::FAILURE
        }
        None => {
            println!("{name}: the input runs cleanly");
            ExitCode::SUCCESS
        }
    }
}
