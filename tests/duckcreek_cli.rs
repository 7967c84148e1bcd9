//! Duck Creek through the real `idsync` binary: `check-config` refuses a malformed request
//! template, the password (in every request body) reaches neither the output nor the store
//! even at trace level, and `idsync sim duckcreek` serves a tenant a config can use.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::secrets::Exposed;
use common::{
    duckcreek_target, duckcreek_with, idsync_env, text, write_cli_config, BIN, DC_PASSWORD,
};
use idsync_sim::{DcUserStatus, DuckCreekSeed, ResponseFault, SimControl};

/// `idsync --config CONFIG ARGS…` with `envs`, run off the async runtime (which keeps
/// serving the simulator).
async fn idsync(config: &Path, args: &[&str], envs: &[(&'static str, &str)]) -> Output {
    let envs = envs.iter().map(|(k, v)| (*k, v.to_string())).collect();
    idsync_env(config, args, envs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_template_override_fails_check_config() {
    let sim = duckcreek_with(DuckCreekSeed::with_users(5), |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    // Saviynt's published enable template: it closes the unlock with the lock's name.
    let saviynt = r#"[targets.duckcreek.templates]
enable_account = '''<Security.unlockUserAccountRq userName="${ account.name }"></Security.lockUserAccountRq>'''
"#;
    let config = write_cli_config(dir.path(), "info", &duckcreek_target(&sim, saviynt));
    let out = idsync(&config, &["check-config"], &[]).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("targets.duckcreek.templates.enable_account")
            && shown.contains("not well-formed XML"),
        "{shown}"
    );
    Exposed::new()
        .output("check-config", &out)
        .assert_free_of(&[DC_PASSWORD, "never-print-me"]);
    // Nothing starts with a broken template: an import refuses too, and the target saw nothing.
    let out = idsync(&config, &["import", "duckcreek"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(sim.control().stats().requests, 0);

    // The fixed template passes.
    let fixed = saviynt.replace("></Security.lockUserAccountRq>", "/>");
    let config = write_cli_config(dir.path(), "info", &duckcreek_target(&sim, &fixed));
    let out = idsync(&config, &["check-config"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_appears_in_output_or_the_store_at_trace_level() {
    let sim = duckcreek_with(DuckCreekSeed::with_users(40), |_| {}).await;
    let control = sim.control();
    let dir = tempfile::tempdir().unwrap();
    let config = write_cli_config(
        dir.path(),
        "trace",
        &duckcreek_target(
            &sim,
            r#"retry = { max_attempts = 2, initial_backoff = "10ms", max_backoff = "20ms" }"#,
        ),
    );
    let trace = [("RUST_LOG", "trace")];
    let mut transcript = String::new();
    let mut run = |out: Output| {
        transcript.push_str(&text(&out));
        out
    };

    let out = run(idsync(&config, &["test-connection", "duckcreek"], &trace).await);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(idsync(&config, &["import", "duckcreek"], &trace).await);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A lock that succeeds, and one whose answer is a failure.
    let users = control.users();
    let active: Vec<_> = users
        .iter()
        .filter(|u| u.status == DcUserStatus::Active)
        .collect();
    for user in [active[0], active[1]] {
        let out = run(idsync(
            &config,
            &[
                "task",
                "submit",
                "--target",
                "duckcreek",
                "--operation",
                "disable_account",
                "--account",
                &user.name,
            ],
            &trace,
        )
        .await);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    control.remove_user(active[1].id);
    let out = run(idsync(&config, &["provision", "--target", "duckcreek"], &trace).await);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one task failed: {}",
        text(&out)
    );
    assert_eq!(
        control.user(active[0].id).unwrap().status,
        DcUserStatus::Locked
    );

    // Broken answers and a refused login: errors built from what came back.
    control
        .break_response(ResponseFault::Truncate, None, Some(1))
        .unwrap();
    let out = run(idsync(&config, &["import", "duckcreek"], &trace).await);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    control.revoke_credentials();
    let out = run(idsync(&config, &["import", "duckcreek"], &trace).await);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("rejected the credentials"),
        "{}",
        text(&out)
    );
    let out = run(idsync(&config, &["--output", "json", "task", "list"], &trace).await);
    assert_eq!(out.status.code(), Some(0));
    let out = run(idsync(&config, &["--output", "json", "runs", "list"], &trace).await);
    assert_eq!(out.status.code(), Some(0));

    assert!(
        transcript.contains("\"level\":\"TRACE\""),
        "trace logging is on"
    );
    let escaped = DC_PASSWORD
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;");
    let mut exposed = Exposed::new();
    exposed
        .text("output", transcript)
        .store(&dir.path().join("idsync.db"));
    exposed.assert_free_of(&[DC_PASSWORD, &escaped, "never-print-me"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "sim"),
    ignore = "the binary has `idsync sim` only with feature `sim`"
)]
async fn sim_duckcreek_prints_a_fragment_a_config_can_use() {
    for extra in [None, Some("--require-wrapper")] {
        let mut args = vec!["sim", "duckcreek", "--port", "0", "--users", "25"];
        args.extend(extra);
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let fragment = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut fragment = String::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                fragment.push_str(&line);
                fragment.push('\n');
                if line.starts_with("password") || Instant::now() > deadline {
                    break;
                }
            }
            fragment
        })
        .await
        .unwrap();
        assert!(fragment.contains("[targets.duckcreek]"), "{fragment}");
        assert!(fragment.contains("kind = \"duckcreek\""), "{fragment}");
        assert_eq!(
            fragment.contains("request_wrapper = { element = \"processRequestsAsDOM\" }"),
            extra.is_some(),
            "{fragment}"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = write_cli_config(dir.path(), "warn", &fragment);
        let out = idsync(&config, &["import", "duckcreek"], &[]).await;
        // The simulator requires what the fragment says: without the wrapper, it refuses.
        let unwrapped = fragment
            .lines()
            .filter(|line| !line.starts_with("request_wrapper"))
            .collect::<Vec<_>>()
            .join("\n");
        let bare_config = write_cli_config(dir.path(), "warn", &unwrapped);
        let bare = idsync(&bare_config, &["test-connection", "duckcreek"], &[]).await;
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(out.status.code(), Some(0), "{extra:?}: {}", text(&out));
        assert!(
            text(&out).contains("account_import of duckcreek: succeeded (25 read)"),
            "{}",
            text(&out)
        );
        assert_eq!(
            bare.status.code() == Some(0),
            extra.is_none(),
            "{extra:?}: {}",
            text(&bare)
        );
    }
}
