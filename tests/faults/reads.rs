//! Faults while an import reads the target, through `idsync import` (the real binary): 5xx
//! bursts, a connection reset mid-body, truncated bodies, malformed JSON and XML, a paging
//! loop, a total that changes mid-read, a slow drip into the read timeout, and a token that
//! expires between pages.
//!
//! Each runs the same story ([`faulted_import`]): a clean import, a change at the target (a
//! user leaves, one arrives), the import with the fault in place, and, when that one failed,
//! the next import. A fault the read retries absorb must leave a run that succeeds with the
//! target's changes; any other must fail the run with a clear error and change nothing (no
//! one suspended on a partial read), and the next run must apply the changes.

use std::time::{Duration, Instant};

use idsync_sim::{FaultEffect, FaultRule, SimControl};

use super::common::invariants::assert_records_unchanged;
use super::common::text;
use super::kit::{digicert, duckcreek, jama, Case, Target};

/// What the faulted import must do.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Retry past the fault and succeed, with the target's changes.
    Recovers,
    /// Fail with an error saying `says`, changing nothing; the next run succeeds.
    FailsCleanly { says: &'static str },
}

/// The story of every read fault (see the module doc). `install` puts the fault in place
/// after the clean import and the change at the target. Returns the case, ended.
async fn faulted_import<T: Target>(
    name: &'static str,
    target: &T,
    extra: &str,
    install: impl FnOnce(&T),
    outcome: Outcome,
) {
    let mut case = Case::new(name, &target.table(extra), Vec::new());
    let before_clean = target.stats().requests;
    let clean_started = Instant::now();
    case.import(T::NAME, 0).await;
    let clean_ms = clean_started.elapsed().as_millis();
    let clean_requests = target.stats().requests - before_clean;
    let view = case.view().await;
    let baseline = view.records(T::NAME).await;
    view.close().await;

    target.churn();
    install(target);
    let before_fault = target.stats().requests;
    let faulted_started = Instant::now();
    let code = match outcome {
        Outcome::Recovers => 0,
        Outcome::FailsCleanly { .. } => 1,
    };
    let faulted = case.import(T::NAME, code).await;
    let faulted_ms = faulted_started.elapsed().as_millis();
    let faulted_requests = target.stats().requests - before_fault;
    let view = case.view().await;
    let after_fault = view.records(T::NAME).await;
    view.close().await;

    match outcome {
        Outcome::Recovers => {
            case.figure("clean import (ms)", clean_ms);
            case.figure("faulted import, recovered in the run (ms)", faulted_ms);
            case.figure(
                "requests retried",
                faulted_requests.saturating_sub(clean_requests),
            );
        }
        Outcome::FailsCleanly { says } => {
            let output = text(&faulted);
            assert!(
                output.contains(says),
                "{name}: the failed import should say {says:?}:\n{output}"
            );
            assert_records_unchanged(&after_fault, &baseline, name);
            target.clear_faults();
            let recovery_started = Instant::now();
            case.import(T::NAME, 0).await;
            case.figure("clean import (ms)", clean_ms);
            case.figure("faulted import, failed (ms)", faulted_ms);
            case.figure(
                "time to recover: the next import (ms)",
                recovery_started.elapsed().as_millis(),
            );
            case.figure("rows changed by the failed import", 0);
        }
    }
    // Either way the store now holds the target's change: the user who left is suspended
    // (and only that one), the one who arrived is active.
    let view = case.view().await;
    let statuses = view.account_statuses(T::NAME).await;
    let suspended = statuses.iter().filter(|(_, s, _)| s == "suspended").count();
    assert_eq!(
        suspended, 1,
        "{name}: one user left the target: {statuses:?}"
    );
    let recovered = view.records(T::NAME).await;
    view.close().await;
    case.figure(
        "rows changed once recovered",
        recovered.changed_since(&baseline),
    );
    case.finish(target).await;
}

/// A page request of a DigiCert listing at `offset`.
fn digicert_page(offset: u32) -> FaultRule {
    FaultRule::new(503)
        .with_method("GET")
        .with_path_prefix("/user")
        .with_query(format!("offset={offset}"))
}

/// `effect` on the DigiCert user page at `offset`, once.
fn on_digicert_page(effect: FaultEffect, offset: u32) -> FaultRule {
    let mut rule = digicert_page(offset).with_times(1);
    rule.effect = effect;
    rule
}

/// `effect` on the Jama user page starting at `start`, once.
fn on_jama_page(effect: FaultEffect, start: u32) -> FaultRule {
    FaultRule::breaking(effect)
        .with_method("GET")
        .with_path_prefix("/users")
        .with_query(format!("startAt={start}"))
        .with_times(1)
}

/// DigiCert pages of 10 users: 60 users are six pages.
const DIGICERT_PAGING: &str = "page_size = 10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_burst_mid_read_is_retried_within_the_run() {
    let sim = digicert(60, |_| {}).await;
    faulted_import(
        "5xx burst (DigiCert import)",
        &sim,
        DIGICERT_PAGING,
        |sim| sim.fault(digicert_page(20).with_times(3)),
        Outcome::Recovers,
    )
    .await;
    assert_eq!(sim.stats().responses_5xx, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_body_is_retried_within_the_run() {
    let sim = digicert(60, |_| {}).await;
    faulted_import(
        "connection reset mid-body (DigiCert import)",
        &sim,
        DIGICERT_PAGING,
        |sim| sim.fault(on_digicert_page(FaultEffect::Reset, 30)),
        Outcome::Recovers,
    )
    .await;
    assert_eq!(sim.stats().faults_applied("reset"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_json_body_is_retried_within_the_run() {
    let sim = jama(120, |_| {}).await;
    faulted_import(
        "truncated body (Jama import)",
        &sim,
        "",
        |sim| sim.fault(on_jama_page(FaultEffect::Truncate, 50)),
        Outcome::Recovers,
    )
    .await;
    assert_eq!(sim.stats().faults_applied("truncate"), 1);
}

/// Duck Creek's user list is one streamed answer: records are staged as they arrive, so a
/// break mid-stream is not retried inside the run (the read would start over); the run fails
/// clean and the next one recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_xml_stream_fails_the_run_cleanly() {
    let sim = duckcreek(80).await;
    faulted_import(
        "truncated body (Duck Creek import)",
        &sim,
        "",
        |sim| {
            sim.fault(
                FaultRule::breaking(FaultEffect::Truncate)
                    .with_request("OnlineData.listEntityUsersRq")
                    .with_times(1),
            )
        },
        Outcome::FailsCleanly {
            says: "the connection broke while reading the response to users",
        },
    )
    .await;
    assert_eq!(sim.stats().faults_applied("truncate"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_fails_the_run_cleanly() {
    let sim = digicert(60, |_| {}).await;
    faulted_import(
        "malformed JSON (DigiCert import)",
        &sim,
        DIGICERT_PAGING,
        |sim| sim.fault(on_digicert_page(FaultEffect::Malformed, 20)),
        Outcome::FailsCleanly {
            says: "malformed response",
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_xml_fails_the_run_cleanly() {
    let sim = duckcreek(80).await;
    faulted_import(
        "malformed XML (Duck Creek import)",
        &sim,
        "",
        |sim| {
            sim.fault(
                FaultRule::breaking(FaultEffect::Malformed)
                    .with_request("OnlineData.listEntityUsersRq")
                    .with_times(1),
            )
        },
        Outcome::FailsCleanly {
            says: "malformed response",
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paging_loop_fails_the_run_cleanly() {
    let sim = digicert(60, |_| {}).await;
    faulted_import(
        "paging loop: the same page twice (DigiCert import)",
        &sim,
        DIGICERT_PAGING,
        |sim| sim.fault(on_digicert_page(FaultEffect::RepeatPage, 20)),
        Outcome::FailsCleanly {
            says: "inconsistent paging",
        },
    )
    .await;
    assert_eq!(sim.stats().faults_applied("repeat_page"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paging_loop_under_start_index_paging_fails_the_run_cleanly() {
    let sim = jama(120, |_| {}).await;
    faulted_import(
        "paging loop: the same page twice (Jama import)",
        &sim,
        "",
        |sim| sim.fault(on_jama_page(FaultEffect::RepeatPage, 50)),
        Outcome::FailsCleanly {
            says: "inconsistent paging",
        },
    )
    .await;
    assert_eq!(sim.stats().faults_applied("repeat_page"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_that_changes_mid_read_fails_the_run_cleanly() {
    let sim = digicert(60, |_| {}).await;
    faulted_import(
        "total changes mid-read (DigiCert import)",
        &sim,
        DIGICERT_PAGING,
        |sim| sim.fault(on_digicert_page(FaultEffect::TotalDrift { delta: 1 }, 30)),
        Outcome::FailsCleanly {
            says: "the total changed",
        },
    )
    .await;
    assert_eq!(sim.stats().faults_applied("total_drift"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_hits_the_read_timeout_and_is_retried() {
    let sim = digicert(60, |_| {}).await;
    // A page of ten users is about 4 kB: 64 bytes every 300 ms takes about 20 s, far past
    // the 1 s timeout.
    let drip = FaultEffect::Drip {
        interval: Duration::from_millis(300),
        chunk_bytes: 64,
    };
    faulted_import(
        "slow drip into the read timeout (DigiCert import)",
        &sim,
        &format!("{DIGICERT_PAGING}\ntimeout = \"1s\""),
        |sim| sim.fault(on_digicert_page(drip, 20)),
        Outcome::Recovers,
    )
    .await;
    assert_eq!(sim.stats().faults_applied("drip"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_between_pages_is_refreshed_once() {
    let sim = jama(150, |config| {
        // Each answer waits a little, so the test expires the token while page 2 is on
        // its way.
        config.latency = Duration::from_millis(150);
    })
    .await;
    let control = sim.control();
    let mut tokens_before = 0;
    let mut pages_before = 0;
    faulted_import(
        "token expiry mid-import (Jama)",
        &sim,
        "",
        |sim| {
            let stats = sim.stats();
            tokens_before = stats.token_requests;
            pages_before = stats.route("GET /users");
            let control = sim.control();
            // Once page 1 of the next import is answered, every token issued so far dies.
            tokio::spawn(async move {
                loop {
                    if control.stats().route("GET /users") > pages_before {
                        control.expire_tokens();
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        },
        Outcome::Recovers,
    )
    .await;
    let stats = control.stats();
    let tokens = stats.token_requests - tokens_before;
    super::figure(
        "token expiry mid-import (Jama)",
        "token requests in the faulted import",
        tokens,
    );
    // The faulted import: one token at its start (a new process) and one refresh.
    assert_eq!(tokens, 2, "{stats:?}");
    assert_eq!(
        stats.responses_401, 1,
        "one page met the dead token: {stats:?}"
    );
}
