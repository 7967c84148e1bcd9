//! Faults at the store: the SQLite file locked by another process, and the disk full while
//! an import writes (a file-size limit on the process, `RLIMIT_FSIZE`). Either way the
//! command fails with a clear error, nothing is lost or half-written, and the next run
//! succeeds once the cause is gone.

use std::time::Instant;

use idsync_sim::UserSpec;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::common::invariants::assert_records_unchanged;
use super::common::{text, BIN};
use super::kit::{digicert, Case, Target};

/// How long idsync waits for another process's write lock in these scenarios.
const BUSY: &str = "[store]\nbusy_timeout = \"1s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_locked_by_another_process() {
    let sim = digicert(30, |_| {}).await;
    let mut case = Case::new("SQLite store locked by another process", "", Vec::new());
    // A config with a short busy timeout (the store table is written by the case).
    let config = std::fs::read_to_string(&case.config)
        .unwrap()
        .replace("[store]\n", BUSY);
    std::fs::write(&case.config, format!("{config}\n{}", sim.table(""))).unwrap();
    case.import("digicert", 0).await;
    let view = case.view().await;
    let baseline = view.records("digicert").await;
    view.close().await;
    sim.churn();

    // Another process (this test) takes the write lock and holds it.
    let mut holder = SqliteConnectOptions::new()
        .filename(case.db())
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .unwrap();
    let locked_at = Instant::now();
    let import = case.idsync(&["import", "digicert"]).await;
    assert_eq!(import.status.code(), Some(1), "{}", text(&import));
    let says = text(&import);
    assert!(
        says.contains("locked") && says.contains("busy_timeout"),
        "the error names the lock and what to do:\n{says}"
    );
    let submit = case
        .idsync(&[
            "task",
            "submit",
            "--target",
            "digicert",
            "--operation",
            "create_account",
            "--account",
            "locked.user",
            "--attr",
            "firstname=Locked",
            "--attr",
            "lastname=User",
            "--attr",
            "email=locked.user@example.com",
        ])
        .await;
    assert_ne!(submit.status.code(), Some(0), "{}", text(&submit));
    assert!(text(&submit).contains("locked"), "{}", text(&submit));
    // Reads go on (WAL): the store is readable while another process writes.
    let list = case
        .idsync(&[
            "--output", "json", "accounts", "list", "--target", "digicert",
        ])
        .await;
    assert_eq!(list.status.code(), Some(0), "{}", text(&list));
    case.figure(
        "time until the refused import and submit returned (ms)",
        locked_at.elapsed().as_millis(),
    );

    // Released: nothing was lost, and the import runs.
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    holder.close().await.unwrap();
    let view = case.view().await;
    assert_records_unchanged(&view.records("digicert").await, &baseline, case.name);
    assert!(
        view.tasks().await.is_empty(),
        "the refused submit queued nothing"
    );
    view.close().await;
    let released = Instant::now();
    case.import("digicert", 0).await;
    case.figure(
        "time to recover once released: one import (ms)",
        released.elapsed().as_millis(),
    );
    let view = case.view().await;
    let after = view.records("digicert").await;
    view.close().await;
    case.figure(
        "rows changed by the import after release",
        after.changed_since(&baseline),
    );
    case.finish(&sim).await;
}

/// `idsync --config CONFIG ARGS…` with files limited to `bytes` (`RLIMIT_FSIZE`, through
/// `prlimit`), as a process on a nearly full disk meets it.
async fn idsync_with_file_limit(
    case: &mut Case,
    bytes: u64,
    args: &[&str],
) -> std::process::Output {
    let mut all = vec![
        format!("--fsize={bytes}"),
        BIN.to_string(),
        "--config".to_string(),
        case.config.display().to_string(),
    ];
    all.extend(args.iter().map(|arg| arg.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("prlimit")
            .args(&all)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run prlimit (util-linux): {err}"))
    })
    .await
    .unwrap();
    case.exposed.output("import under a file-size limit", &out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_full_while_an_import_writes() {
    let sim = digicert(20, |_| {}).await;
    let mut case = Case::new(
        "disk full while writing (RLIMIT_FSIZE)",
        &sim.table(""),
        Vec::new(),
    );
    case.import("digicert", 0).await;
    let view = case.view().await;
    let baseline = view.records("digicert").await;
    view.close().await;
    // The target grows by 1,500 users: the next import stages far more than the limit
    // leaves room for.
    let control = sim.control();
    for n in 0..1500 {
        let name = format!("grown.user{n:04}");
        control
            .add_user(UserSpec::new(
                &name,
                "Grown",
                "User",
                format!("{name}@example.com"),
            ))
            .unwrap();
    }
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", case.db().display()))
            .map(|meta| meta.len())
            .unwrap_or(0)
    };
    let limit = size("").max(size("-wal")) + 64 * 1024;
    case.figure("file-size limit (bytes)", limit);
    let full = idsync_with_file_limit(&mut case, limit, &["import", "digicert"]).await;
    // FINDING (fixed): the process used to die of SIGXFSZ with no word; it now ignores
    // the signal, so the write fails and the import reports it.
    assert_eq!(
        full.status.code(),
        Some(1),
        "the import must fail with exit 1, not die ({:?}):\n{}",
        full.status,
        text(&full)
    );
    let says = text(&full);
    assert!(
        says.contains("the disk may be full") && says.contains("free space"),
        "the error says the disk may be full and what to do:\n{says}"
    );

    // Nothing half-written: the file is sound and holds the old import. The failed run is
    // recorded as failed (FINDING, fixed: the store's one write connection was left in a
    // transaction SQLite had already rolled back, so every later write of the process
    // failed, the run's end included).
    let view = case.view().await;
    assert_eq!(view.integrity().await, "ok");
    assert_records_unchanged(&view.records("digicert").await, &baseline, case.name);
    let runs = view.runs("digicert").await;
    view.close().await;
    let (_, outcome, error) = runs.last().unwrap();
    assert_eq!(outcome.as_deref(), Some("failed"), "{runs:?}");
    assert!(
        error.as_deref().unwrap_or_default().contains("disk"),
        "{runs:?}"
    );

    // With room again, the next run imports everyone.
    let recovered = Instant::now();
    case.import("digicert", 0).await;
    case.figure(
        "time to recover once there is room: one import (ms)",
        recovered.elapsed().as_millis(),
    );
    let view = case.view().await;
    let after = view.records("digicert").await;
    view.close().await;
    assert_eq!(after.accounts.len(), 1520);
    case.figure(
        "rows changed by the import with room",
        after.changed_since(&baseline),
    );
    case.finish(&sim).await;
}
