//! SIGKILL of the daemon (the real binary) mid-import and mid-provisioning, then a restart:
//! the work a dead process held comes back within a bound, nothing is marked missing, and
//! every side effect happens exactly once.

use std::time::{Duration, Instant};

use idsync_sim::{FaultEffect, FaultRule, SimControl};

use super::common::invariants::{
    assert_records_unchanged, assert_tasks_succeeded, assert_writes_once,
};
use super::kit::{
    all_final, api_tasks, daemon_tables, digicert, jama, runs_of, submit_create, trigger,
    until_run_finished, Case, Target, API_TOKEN,
};

/// How soon after a restart the work of a killed daemon must be done (issue 11: "within 60 s
/// of the restart, with the default config").
const RECOVERY_BOUND: Duration = Duration::from_secs(60);

/// How often the scenarios look again.
const POLL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_import_then_restart() {
    // 80 users in pages of 10: eight pages, each slowed to 300 ms once the kill is near.
    let sim = digicert(80, |_| {}).await;
    let control = sim.control();
    let rest = format!(
        "{}\n{}",
        sim.table("page_size = 10"),
        daemon_tables("digicert")
    );
    let mut case = Case::new(
        "SIGKILL mid-import, then restart (DigiCert)",
        &rest,
        vec![API_TOKEN],
    );

    // The first daemon imports at start (catch-up), then the target changes and a second
    // import is killed after three pages.
    let first = case.daemon("first").await;
    let baseline_run = eventually_run(&first).await;
    let baseline_run = until_run_finished(&first, "import", baseline_run).await;
    assert_eq!(baseline_run["outcome"], "succeeded", "{baseline_run}");
    let view = case.view().await;
    let baseline = view.records("digicert").await;
    view.close().await;
    sim.churn();
    control.set_latency(Duration::from_millis(300));
    let pages_before = control.stats().route("GET /user");
    let killed_run = trigger(&first, "import").await;
    wait_for(|| control.stats().route("GET /user") >= pages_before + 3).await;
    case.kill(first).await;
    control.set_latency(Duration::ZERO);

    // Nothing was marked missing by the half-read run; it is left open.
    let view = case.view().await;
    assert_records_unchanged(&view.records("digicert").await, &baseline, case.name);
    let runs = view.runs("digicert").await;
    view.close().await;
    let open = runs.iter().find(|(id, _, _)| *id == killed_run).unwrap();
    assert_eq!(open.1, None, "the killed run is still open: {runs:?}");

    // A second daemon starts at once; its import runs as soon as the dead run's target lock
    // lets it. Triggered every second until one succeeds.
    let restarted = Instant::now();
    let second = case.daemon("second").await;
    let mut refused = 0;
    let recovered = loop {
        let id = trigger(&second, "import").await;
        let run = until_run_finished(&second, "import", id).await;
        if run["outcome"] == "succeeded" {
            break run;
        }
        refused += 1;
        let error = run["error"].as_str().unwrap_or_default().to_string();
        assert!(
            error.contains("being imported by run"),
            "only the dead run's lock may refuse the import: {run}"
        );
        // Target locks are short and renewed by a heartbeat, so a dead run's lock lapses
        // within the bound (it lasted 120 s before issue 11).
        assert!(
            restarted.elapsed() < RECOVERY_BOUND,
            "the import was refused for {:?} after the restart: {error}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        restarted.elapsed() < RECOVERY_BOUND,
        "the import succeeded only {:?} after the restart",
        restarted.elapsed()
    );
    case.figure(
        "time from restart to a successful import (ms)",
        restarted.elapsed().as_millis(),
    );
    case.figure("imports refused by the dead run's lock", refused);
    assert_eq!(
        recovered["counts"]["account"]["suspended"], 1,
        "{recovered}"
    );

    let view = case.view().await;
    let recovered_records = view.records("digicert").await;
    view.close().await;
    case.figure(
        "rows changed by the recovering import",
        recovered_records.changed_since(&baseline),
    );

    // The dead run does not stay open: the daemon closes it as failed once its lock lapsed
    // (a run left open by a killed process used to be closed only by a later start that
    // found its lock already expired).
    loop {
        let view = case.view().await;
        let runs = view.runs("digicert").await;
        view.close().await;
        let dead = runs.iter().find(|(id, _, _)| *id == killed_run).unwrap();
        if let Some(outcome) = &dead.1 {
            assert_eq!(outcome, "failed", "{runs:?}");
            break;
        }
        assert!(
            restarted.elapsed() < RECOVERY_BOUND,
            "the killed run is still open {:?} after the restart: {runs:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(POLL).await;
    }
    case.figure(
        "time from restart until the dead run is closed as failed (ms)",
        restarted.elapsed().as_millis(),
    );
    case.stop(second).await;
    case.finish(&sim).await;
}

/// The id of the first run of job `import` (the start-up catch-up), once it exists.
async fn eventually_run(daemon: &super::common::daemon::Daemon) -> i64 {
    super::common::eventually("the start-up import", || async {
        runs_of(daemon, "import")
            .await
            .last()
            .and_then(|run| run["id"].as_i64())
    })
    .await
}

/// Polls `done` until it holds (the hang guard fails a test that waits forever).
async fn wait_for(mut done: impl FnMut() -> bool) {
    super::common::eventually("the condition", || {
        let ok = done();
        async move { ok.then_some(()) }
    })
    .await;
}

/// Creates in the provisioning scenario.
const CREATES: usize = 20;

/// Creates in flight at the kill (`max_concurrency`).
const IN_FLIGHT: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_provisioning_then_restart_finishes_within_60s() {
    // 20 Jama creates, two at a time, each answer 500 ms late. The config is the default
    // (no task_lease, timeout or retry set): what a user runs.
    let sim = jama(10, |config| config.latency = Duration::from_millis(500)).await;
    let control = sim.control();
    let rest = format!(
        "{}\n{}",
        sim.table("max_concurrency = 2"),
        daemon_tables("jama")
    );
    let mut case = Case::new(
        "SIGKILL mid-provisioning, then restart (Jama, default config)",
        &rest,
        vec![API_TOKEN],
    );
    let first = case.daemon("first").await;
    let names: Vec<String> = (1..=CREATES).map(|n| format!("crash.user{n:02}")).collect();
    for name in &names {
        submit_create(&first, "jama", name).await;
    }
    // After four creates, the next two are made at the target but their answers drip,
    // a byte a minute: the daemon never hears of them, and is killed while it waits.
    wait_for(|| control.stats().route_ok("POST /users") >= 4).await;
    sim.fault(
        FaultRule::breaking(FaultEffect::Drip {
            interval: Duration::from_secs(60),
            chunk_bytes: 1,
        })
        .with_method("POST")
        .with_path_prefix("/users")
        .with_times(IN_FLIGHT as u32),
    );
    wait_for(|| control.stats().faults_applied("drip") == IN_FLIGHT).await;
    let at_kill = api_tasks(&first).await;
    case.kill(first).await;
    let count = |tasks: &[serde_json::Value], status: &str| {
        tasks.iter().filter(|t| t["status"] == status).count()
    };
    let running = count(&at_kill, "running");
    case.figure(
        "tasks succeeded before the kill",
        count(&at_kill, "succeeded"),
    );
    case.figure("tasks running at the kill", running);
    assert!(
        running >= 1,
        "nothing was in flight at the kill: {at_kill:?}"
    );

    // The restart: every task final within the bound.
    let restarted = Instant::now();
    let second = case.daemon("second").await;
    let tasks = loop {
        let tasks = api_tasks(&second).await;
        if all_final(&tasks) {
            break tasks;
        }
        // Task leases are short by default and renewed by a heartbeat, and the restarted
        // daemon takes back expired ones at once (before issue 11 the default lease was
        // 5 min and the two tasks in flight stayed `running` that long).
        assert!(
            restarted.elapsed() < RECOVERY_BOUND,
            "not every task is final {:?} after the restart: {} running, {} pending",
            restarted.elapsed(),
            count(&tasks, "running"),
            count(&tasks, "pending")
        );
        tokio::time::sleep(POLL).await;
    };
    case.figure(
        "time from restart to every task final (ms)",
        restarted.elapsed().as_millis(),
    );
    let attempts: i64 = tasks.iter().filter_map(|t| t["attempts"].as_i64()).sum();
    case.figure("task attempts for 20 tasks", attempts);
    case.stop(second).await;

    let view = case.view().await;
    assert_tasks_succeeded(&view.tasks().await);
    view.close().await;
    // Exactly one create each at the target, none refused as a duplicate.
    let stats = control.stats();
    assert_writes_once(&stats, "POST /users", CREATES as u64, &sim.usernames());
    assert_eq!(
        stats.route("POST /users"),
        CREATES as u64,
        "a create was sent twice: {:?}",
        stats.by_status
    );
    for name in &names {
        assert!(
            control.find_user(name).is_some(),
            "{name} is missing at the target"
        );
    }
    case.finish(&sim).await;
}
