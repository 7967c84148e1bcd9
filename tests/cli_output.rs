//! Command output through the real `idsync` binary: a reader that closes the pipe early
//! (`idsync accounts list | head -1`) ends the command quietly, as with other Unix tools,
//! never with a panic.

mod common;

use std::process::{Command, Stdio};

use common::{digicert, idsync_env, text, write_cli_config, BIN, SIM_KEY};

/// Runs `idsync --config CONFIG ARGS…` with its stdout a pipe whose reader is already gone.
fn run_with_closed_stdout(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("DIGICERT_API_KEY", SIM_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the command writes: its first write meets a broken pipe.
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_early_ends_listings_quietly() {
    let sim = digicert(30).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_cli_config(
        dir.path(),
        "warn",
        &format!(
            "[targets.digicert]\nkind = \"digicert\"\nbase_url = \"{}\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\n",
            sim.base_url()
        ),
    );
    let envs = vec![("DIGICERT_API_KEY", SIM_KEY.to_string())];
    let imported = idsync_env(&config, &["import", "digicert", "--accounts"], envs).await;
    assert!(imported.status.success(), "{}", text(&imported));

    for args in [
        &["accounts", "list"][..],
        &["--output", "json", "accounts", "list"][..],
        &["runs", "list"][..],
    ] {
        let config = config.clone();
        let args: Vec<&str> = args.to_vec();
        let output = tokio::task::spawn_blocking(move || run_with_closed_stdout(&config, &args))
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("Broken pipe"), "{stderr}");
        assert_eq!(output.status.code(), Some(141), "{stderr}");
    }
}
