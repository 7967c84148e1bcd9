//! Every fuzz target runs its committed seed corpus and one second of fuzzing cleanly, and
//! a harness that finds something says so with a non-zero exit (the part of the harness
//! `cargo test` runs; CI runs each target for 30 s, README "Fuzzing").

use std::process::Command;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_idsync-fuzz"))
}

#[test]
fn every_target_runs_its_corpus_and_one_second_cleanly() {
    let crashes = tempfile::tempdir().unwrap();
    let output = harness()
        // A debug build is many times slower than the release build CI fuzzes with.
        .args([
            "all",
            "--seconds",
            "1",
            "--seed",
            "16",
            "--per-input-ms",
            "30000",
        ])
        .arg("--crashes")
        .arg(crashes.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for target in [
        "digicert",
        "jama",
        "duckcreek",
        "templates",
        "config",
        "api",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(target))
            .unwrap_or_else(|| panic!("no report line for {target}:\n{stdout}"));
        assert!(line.contains("findings: 0"), "{line}");
        let execs: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert!(execs >= 2, "{target} ran {execs} inputs: {line}");
    }
    assert_eq!(
        std::fs::read_dir(crashes.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

/// Runs the `selftest` target over a corpus holding `entry`.
fn selftest(entry: &str) -> (std::process::Output, Vec<Vec<u8>>) {
    let corpus = tempfile::tempdir().unwrap();
    let crashes = tempfile::tempdir().unwrap();
    std::fs::create_dir(corpus.path().join("selftest")).unwrap();
    std::fs::write(corpus.path().join("selftest/seed"), entry).unwrap();
    let output = harness()
        .args([
            "selftest",
            "--seconds",
            "0.2",
            "--per-input-ms",
            "300",
            "--corpus",
        ])
        .arg(corpus.path())
        .arg("--crashes")
        .arg(crashes.path())
        .output()
        .unwrap();
    let saved = std::fs::read_dir(crashes.path())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    (output, saved)
}

#[test]
fn a_panic_fails_the_run_and_saves_the_input() {
    let (output, saved) = selftest("PANIC");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("selftest panic"));
    assert!(saved.iter().any(|s| s == b"PANIC"), "{saved:?}");
}

#[test]
fn a_wrong_output_fails_the_run() {
    let (output, saved) = selftest("WRONG");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("selftest wrong output"));
    assert!(!saved.is_empty());
}

#[test]
fn a_hang_ends_the_run_and_saves_the_input() {
    let (output, saved) = selftest("HANG");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("hang"));
    assert!(saved.iter().any(|s| s == b"HANG"), "{saved:?}");
}

#[test]
fn an_unknown_target_is_a_usage_error() {
    let output = harness().args(["nonsense"]).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown target `nonsense`"));
}

#[test]
fn a_replayed_clean_input_reports_clean() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.toml");
    std::fs::write(&input, "[targets.x]\nkind = \"digicert\"\n").unwrap();
    let output = harness()
        .args(["config", "--replay"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("runs cleanly"));
}
