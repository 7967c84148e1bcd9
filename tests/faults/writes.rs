//! Faults while the daemon (the real binary) imports and provisions: a storm of bare 429s,
//! 5xx bursts on creates, and a connection reset after a create took effect. Every task must
//! end `succeeded`, with exactly one create per user at the target.

use std::time::Instant;

use idsync_sim::{FaultEffect, FaultRule};

use super::common::daemon::Daemon;
use super::common::eventually;
use super::common::invariants::{assert_tasks_succeeded, assert_writes_once};
use super::kit::{
    daemon_tables, digicert, jama, runs_of, submit_create, until_all_final, until_run_finished,
    Case, Target, API_TOKEN,
};

/// Quick task retries, so a retried attempt costs a second at most.
const TASK_RETRY: &str = r#"retry = { max_attempts = 8, initial_backoff = "200ms", max_backoff = "1s", give_up_after = "5m" }"#;

/// How many users each scenario creates.
const CREATES: usize = 8;

/// The names the scenario creates.
fn names(prefix: &str) -> Vec<String> {
    (1..=CREATES).map(|n| format!("{prefix}{n:02}")).collect()
}

/// Waits for the daemon's start-up import (the catch-up of job `import`) to finish; the run.
async fn startup_import(daemon: &Daemon) -> serde_json::Value {
    let id = eventually("the start-up import", || async {
        runs_of(daemon, "import")
            .await
            .last()
            .and_then(|run| run["id"].as_i64())
    })
    .await;
    until_run_finished(daemon, "import", id).await
}

/// Bare 429s (DigiCert sends no Retry-After) in a row: the import's reads meet the first
/// storm, the creates the second.
const IMPORT_STORM: u32 = 8;
const PROVISIONING_STORM: u32 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_bare_429s_slows_import_and_provisioning_but_both_finish() {
    // Every request answered 429 until the storm is spent, whatever the rate: what a tenant
    // whose limit other clients exhaust looks like. (A rate window that counts refused
    // requests, with idsync unpaced and retries this quick, is a storm that never ends: the
    // tasks' own retries keep it going until their attempts run out, as the contract says.
    // Pacing, on by default, is the defence there.)
    let sim = digicert(60, |_| {}).await;
    sim.fault(FaultRule::new(429).with_times(IMPORT_STORM));
    let extra = format!(
        "page_size = 10\nmax_concurrency = 2\n{TASK_RETRY}\n\
         read_retry = {{ max_attempts = 12, initial_backoff = \"20ms\", max_backoff = \"200ms\" }}"
    );
    let rest = format!("{}\n{}", sim.table(&extra), daemon_tables("digicert"));
    let mut case = Case::new("storm of bare 429s (DigiCert)", &rest, vec![API_TOKEN]);
    let started = Instant::now();
    let daemon = case.daemon("storm").await;
    let run = startup_import(&daemon).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let import_ms = started.elapsed().as_millis();
    let after_import = sim.stats();
    case.figure("import through the storm (ms)", import_ms);
    case.figure("import: requests", after_import.requests);
    case.figure(
        "import: 429 answers (requests retried)",
        after_import.responses_429,
    );
    assert_eq!(after_import.responses_429, u64::from(IMPORT_STORM));

    sim.fault(FaultRule::new(429).with_times(PROVISIONING_STORM));
    let created = Instant::now();
    for name in names("storm.user") {
        submit_create(&daemon, "digicert", &name).await;
    }
    let tasks = until_all_final(&daemon).await;
    let stats = sim.stats();
    case.figure(
        "provisioning 8 creates through the storm (ms)",
        created.elapsed().as_millis(),
    );
    case.figure(
        "provisioning: requests",
        stats.requests - after_import.requests,
    );
    case.figure(
        "provisioning: 429 answers",
        stats.responses_429 - after_import.responses_429,
    );
    let attempts: i64 = tasks.iter().filter_map(|t| t["attempts"].as_i64()).sum();
    case.figure("provisioning: task attempts for 8 tasks", attempts);
    case.stop(daemon).await;

    let view = case.view().await;
    assert_tasks_succeeded(&view.tasks().await);
    view.close().await;
    assert_eq!(
        stats.responses_429 - after_import.responses_429,
        u64::from(PROVISIONING_STORM)
    );
    assert_writes_once(&stats, "POST /user", CREATES as u64, &sim.usernames());
    case.finish(&sim).await;
}

/// The creates of one Jama scenario: `fault` installed, `CREATES` users submitted, the
/// daemon left to finish them; then exactly one effective create each, `not_ok` creates
/// answered otherwise than 2xx (the injected statuses; a create sent again would be refused
/// as a duplicate and counted here), and the end checks.
async fn creates_through(name: &'static str, fault: FaultRule, prefix: &str, not_ok: u64) {
    let sim = jama(20, |_| {}).await;
    let extra = format!("max_concurrency = 2\n{TASK_RETRY}");
    let rest = format!("{}\n{}", sim.table(&extra), daemon_tables("jama"));
    let mut case = Case::new(name, &rest, vec![API_TOKEN]);
    let daemon = case.daemon("creates").await;
    let run = startup_import(&daemon).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let before = sim.stats();
    sim.fault(fault);
    let started = Instant::now();
    for name in names(prefix) {
        submit_create(&daemon, "jama", &name).await;
    }
    let tasks = until_all_final(&daemon).await;
    case.figure("8 creates, all final (ms)", started.elapsed().as_millis());
    let attempts: i64 = tasks.iter().filter_map(|t| t["attempts"].as_i64()).sum();
    case.figure("task attempts for 8 tasks", attempts);
    let stats = sim.stats();
    case.figure("requests for 8 creates", stats.requests - before.requests);
    case.stop(daemon).await;

    let view = case.view().await;
    assert_tasks_succeeded(&view.tasks().await);
    view.close().await;
    let mut creates = stats.clone();
    // Only this scenario's creates: the start-up import made none.
    creates.ok_by_route.insert(
        "POST /users".into(),
        stats.route_ok("POST /users") - before.route_ok("POST /users"),
    );
    assert_writes_once(&creates, "POST /users", CREATES as u64, &sim.usernames());
    let refused = stats.route("POST /users") - stats.route_ok("POST /users");
    case.figure(
        "creates refused as duplicates or failed by the fault",
        refused,
    );
    case.finish(&sim).await;
    assert_eq!(
        refused, not_ok,
        "{name}: creates answered otherwise than 2xx: {:?}",
        stats.by_status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_burst_on_creates_is_retried_and_each_user_is_created_once() {
    creates_through(
        "5xx burst on creates (Jama)",
        FaultRule::new(503)
            .with_method("POST")
            .with_path_prefix("/users")
            .with_times(4),
        "burst.user",
        4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_a_create_took_effect_does_not_create_twice() {
    // The target creates the user, then the connection is reset mid-answer: the attempt's
    // outcome is unknown, and the next one must find the user instead of sending the create
    // again (DESIGN: "when an attempt's outcome is unknown (timeout after sending …), the
    // next attempt reads the target first").
    // (Found by this scenario: the retry used to send the create again, which Jama refused
    // as a duplicate.)
    creates_through(
        "connection reset after a create (Jama)",
        FaultRule::breaking(FaultEffect::Reset)
            .with_method("POST")
            .with_path_prefix("/users")
            .with_times(2),
        "reset.user",
        0,
    )
    .await;
}
