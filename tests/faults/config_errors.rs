//! A bad config at start, and "at reload". idsync has no live reload (a later issue adds it):
//! a changed config takes effect at the next start, so "a bad config at reload" is a daemon
//! restarted with an edited, broken config. Either way the process refuses to start (exit
//! 2), names every bad key, and leaves the store exactly as it was; the previous good
//! daemon's data is intact when the config is fixed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::common::{run_cli, text};
use super::kit::{daemon_tables, digicert, runs_of, until_run_finished, Case, Target, API_TOKEN};

/// Every file in `dir` with its bytes: the store and its `-wal`/`-shm`, backups, anything.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

/// `idsync --config CONFIG run`, expected to refuse to start; its output.
async fn refused_run(case: &mut Case) -> std::process::Output {
    let out = run_cli(
        vec![
            "--config".into(),
            case.config.display().to_string(),
            "run".into(),
        ],
        vec![("IDSYNC__SERVER__LISTEN", "127.0.0.1:0".into())],
    )
    .await;
    case.exposed.output("run with a bad config", &out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad config must stop idsync at start with exit 2:\n{}",
        text(&out)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_at_start_and_after_an_edit_changes_nothing() {
    let sim = digicert(30, |_| {}).await;
    let good = format!("{}\n{}", sim.table(""), daemon_tables("digicert"));
    // Two mistakes at once: a duration that is not one, and a schedule that never fires.
    let bad = good
        .replace("rate_limit = []", "rate_limit = []\ntimeout = \"soon\"")
        .replace("0 0 0 1 1 *", "0 0 0 30 2 *");
    assert_ne!(good, bad);
    let mut case = Case::new(
        "bad config at start and after an edit",
        &bad,
        vec![API_TOKEN],
    );

    // At first start: refused, and no store is created.
    let started = Instant::now();
    let out = refused_run(&mut case).await;
    case.figure(
        "time to refuse a bad config (ms)",
        started.elapsed().as_millis(),
    );
    let says = text(&out);
    for key in ["targets.digicert.timeout", "jobs.import.schedule"] {
        assert!(says.contains(key), "the refusal names {key}:\n{says}");
    }
    assert!(!case.db().exists(), "a refused start created the store");

    // A good daemon imports and stops.
    let bad_text = std::fs::read_to_string(&case.config).unwrap();
    std::fs::write(&case.config, bad_text.replace(&bad, &good)).unwrap();
    let daemon = case.daemon("good").await;
    let run = runs_of(&daemon, "import").await;
    let id = run.last().and_then(|run| run["id"].as_i64()).unwrap_or(1);
    let run = until_run_finished(&daemon, "import", id).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    case.stop(daemon).await;
    // Taken before this test opens the store itself (a reader's close may checkpoint and
    // remove the -wal file a moment later).
    let before = files(case.path());

    // "Reload": the config is edited into a bad one and the daemon restarted. It refuses,
    // and not a byte of the store (or anything beside it) changes.
    std::fs::write(&case.config, bad_text).unwrap();
    sim.churn();
    let out = refused_run(&mut case).await;
    let says = text(&out);
    assert!(says.contains("targets.digicert.timeout"), "{says}");
    assert_eq!(
        files(case.path()).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "files appeared or vanished beside the store"
    );
    for (name, bytes) in files(case.path()) {
        if name.ends_with(".log") || name.ends_with(".out") || name.ends_with(".toml") {
            continue;
        }
        assert!(
            before[&name] == bytes,
            "{name} changed under a refused start"
        );
    }

    // Fixed again: the good daemon's data is all there (the bytes above say it is the
    // same; the records say it is whole).
    std::fs::write(
        &case.config,
        std::fs::read_to_string(&case.config)
            .unwrap()
            .replace(&bad, &good),
    )
    .unwrap();
    let view = case.view().await;
    let imported = view.records("digicert").await;
    view.close().await;
    assert_eq!(imported.accounts.len(), 30);
    let check = case.idsync(&["check-config"]).await;
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    case.figure("rows changed by the refused starts", 0);
    case.finish(&sim).await;
}
