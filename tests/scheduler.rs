//! Job coordination: no overlap of a job with itself, one import per target at a time with at
//! most one waiting, catch-up at start, graceful shutdown that marks nothing, and the store's
//! lease lock against a second process.

mod common;

use std::time::Duration;

use common::{
    assert_same, digicert, digicert_with, eventually, import, releasing_answers, store_snapshot,
    Env, Opts,
};
use idsync::model::{JobKind, RunOutcome, Trigger};
use idsync::scheduler::{catch_up, JobRunner, TriggerError};
use idsync::store::{LockOutcome, RunFilter, Store};
use idsync_sim::{DigicertControl, SimClock, SimControl};

const JOBS: &str = r#"
[jobs.accounts]
type = "account_import"
target = "digicert"
schedule = "0 0 * * * *"

[jobs.access]
type = "access_import"
target = "digicert"
schedule = "0 5 * * * *"

[jobs.access-again]
type = "access_import"
target = "digicert"
schedule = "0 10 * * * *"
"#;

async fn wait_idle(runner: &JobRunner, jobs: &[&str]) {
    eventually("the jobs to finish", || async {
        jobs.iter().all(|job| !runner.is_running(job)).then_some(())
    })
    .await;
}

/// The latency of the simulators on a manual clock: every page waits for the test to move
/// the clock on.
const LATENCY: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_never_overlaps_itself_and_one_target_runs_one_import_at_a_time() {
    // Every page waits on a clock that stands still: no job can finish before the test
    // lets the answers go.
    let clock = SimClock::manual();
    let sim = digicert_with(200, |config| config.clock = clock.clone()).await;
    let env = Env::new(&sim, "page_size = 20", JOBS);
    let app = env.app().await;
    let runner = JobRunner::new(&app.config, app.imports.clone());
    sim.control().set_latency(LATENCY);

    let first = runner
        .trigger("accounts", Trigger::Schedule, "scheduler".into(), false)
        .unwrap();
    assert_eq!(
        runner
            .trigger("accounts", Trigger::Schedule, "scheduler".into(), false)
            .unwrap_err(),
        TriggerError::AlreadyRunning("accounts".into())
    );
    // Another job of the same target waits for the running one…
    let waiting = runner
        .trigger("access", Trigger::Schedule, "scheduler".into(), false)
        .unwrap();
    // …and only one may wait.
    assert!(matches!(
        runner.trigger("access-again", Trigger::Schedule, "scheduler".into(), false),
        Err(TriggerError::TargetBusy { .. })
    ));
    let (account_run, access_run) = releasing_answers(&clock, LATENCY, async {
        let runs = (first.await.unwrap(), waiting.await.unwrap());
        wait_idle(&runner, &["accounts", "access"]).await;
        runs
    })
    .await;

    let account = app.store.get_run(account_run).await.unwrap().unwrap();
    let access = app.store.get_run(access_run).await.unwrap().unwrap();
    assert_eq!(account.outcome, Some(RunOutcome::Succeeded));
    assert_eq!(access.outcome, Some(RunOutcome::Succeeded), "{access:?}");
    assert!(
        access.started_at >= account.finished_at.unwrap(),
        "the access import waited for the account import"
    );
    assert!(runner
        .trigger("nope", Trigger::Api, "t".into(), false)
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_runs_missed_imports_at_start_accounts_first() {
    let sim = digicert(50).await;
    let env = Env::new(
        &sim,
        "",
        JOBS.replace("[jobs.access-again]", "[jobs.unused]")
            .replace(
                "type = \"access_import\"\ntarget = \"digicert\"\nschedule = \"0 10 * * * *\"",
                "type = \"account_import\"\ntarget = \"digicert\"\nschedule = \"0 0 0 1 1 *\"",
            )
            .as_str(),
    );
    let app = env.app().await;
    let runner = JobRunner::new(&app.config, app.imports.clone());
    catch_up(&runner, app.store.as_ref()).await;
    wait_idle(&runner, &["accounts", "access", "unused"]).await;
    let runs = app
        .store
        .list_runs(&RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(runs.iter().all(|run| run.trigger == Trigger::Startup));
    let access = runs
        .iter()
        .find(|run| run.kind == JobKind::AccessImport)
        .expect("access import caught up");
    assert_eq!(access.outcome, Some(RunOutcome::Succeeded), "{access:?}");

    // One run per (target, kind): the second account-import job of the target is not doubled.
    assert_eq!(runs.len(), 2, "{runs:?}");

    // Right after a success nothing is missed: no new runs.
    let before = runs.len();
    catch_up(&runner, app.store.as_ref()).await;
    wait_idle(&runner, &["accounts", "access", "unused"]).await;
    let after = app
        .store
        .list_runs(&RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(after.len(), before);
}

/// Waits until the simulator on `clock` has answered `answered` user pages and holds the
/// next one.
async fn until_holding_page(clock: &SimClock, control: &DigicertControl, answered: u64) {
    eventually("the next page held", || async {
        (control.stats().route("GET /user") == answered && clock.sleeping().len() == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_a_long_import_and_marks_nothing() {
    let clock = SimClock::manual();
    let sim = digicert_with(1000, |config| config.clock = clock.clone()).await;
    let env = Env::new(&sim, "page_size = 50", JOBS);
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let before = store_snapshot(&app).await;
    let control = sim.control();
    for user in control.users().iter().take(3) {
        control.remove_user(user.id);
    }
    // Every page now waits for the test to move the clock on: the import (20 pages) reads
    // two, then waits on the third while shutdown comes.
    control.set_latency(LATENCY);
    control.reset_stats();
    let runner = JobRunner::new(&app.config, app.imports.clone());
    let run_id = runner
        .trigger("accounts", Trigger::Schedule, "scheduler".into(), false)
        .unwrap()
        .await
        .unwrap();
    for answered in 0..2 {
        until_holding_page(&clock, &control, answered).await;
        clock.advance(LATENCY);
    }
    until_holding_page(&clock, &control, 2).await;

    // No grace: the held page cannot arrive, so the job is still running at the deadline.
    runner.shutdown(Duration::ZERO).await;
    let run = app.store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.outcome, Some(RunOutcome::Failed));
    assert_eq!(run.error.as_deref(), Some("interrupted by shutdown"));
    assert_eq!(
        control.stats().route("GET /user"),
        2,
        "the import read two of its 20 pages"
    );
    assert_same(
        &store_snapshot(&app).await,
        &before,
        "an interrupted import marks nothing",
    );
    assert_eq!(
        runner
            .trigger("accounts", Trigger::Schedule, "scheduler".into(), false)
            .unwrap_err(),
        TriggerError::ShuttingDown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_locked_by_another_process_fails_the_run_naming_the_holder() {
    let sim = digicert(20).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    let lock = app
        .store
        .try_lock("import:digicert", "run 999", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lock, LockOutcome::Acquired);

    let summary = import(&app, Opts::default()).await;
    assert_eq!(summary.exit_code(), 1);
    let error = summary.runs[0].error.as_deref().unwrap();
    assert!(error.contains("being imported by run 999"), "{error}");
    assert!(common::accounts(&app).await.is_empty());

    app.store
        .unlock("import:digicert", "run 999")
        .await
        .unwrap();
    assert_eq!(import(&app, Opts::default()).await.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_account_import_holds_the_scheduled_access_import_after_it() {
    let sim = digicert(100).await;
    let env = Env::new(
        &sim,
        "deletion_threshold = { percent = 20, count = 1000 }",
        JOBS,
    );
    let app = env.app().await;
    assert_eq!(import(&app, Opts::default()).await.exit_code(), 0);
    let before = store_snapshot(&app).await;
    let control = sim.control();
    for user in control.users().iter().take(30) {
        assert!(control.remove_user(user.id));
    }

    // The scheduler fires the account import, then the access import.
    let runner = JobRunner::new(&app.config, app.imports.clone());
    let accounts = runner
        .trigger("accounts", Trigger::Schedule, "scheduler".into(), false)
        .unwrap();
    let access = runner
        .trigger("access", Trigger::Schedule, "scheduler".into(), false)
        .unwrap();
    let (account_run, access_run) = (accounts.await.unwrap(), access.await.unwrap());
    wait_idle(&runner, &["accounts", "access"]).await;
    let account = app.store.get_run(account_run).await.unwrap().unwrap();
    let access = app.store.get_run(access_run).await.unwrap().unwrap();
    assert_eq!(account.outcome, Some(RunOutcome::Held));
    assert_eq!(access.outcome, Some(RunOutcome::Held), "{access:?}");
    let error = access.error.unwrap_or_default();
    assert!(
        error.contains(&format!(
            "account import before it (run {account_run}) is held"
        )),
        "{error}"
    );
    assert!(error.contains("--allow-deletions"), "{error}");
    assert_same(
        &store_snapshot(&app).await,
        &before,
        "nothing changes while the account import is held",
    );

    // Released by a person: the next access import runs.
    let released = import(
        &app,
        Opts {
            parts: idsync::sync::ImportParts::Accounts,
            allow_deletions: true,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(released.exit_code(), 0, "{released:?}");
    let access = runner
        .trigger("access", Trigger::Schedule, "scheduler".into(), false)
        .unwrap()
        .await
        .unwrap();
    wait_idle(&runner, &["access"]).await;
    let access = app.store.get_run(access).await.unwrap().unwrap();
    assert_eq!(access.outcome, Some(RunOutcome::Succeeded), "{access:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_import_waits_out_the_lock_of_a_dead_process() {
    let sim = digicert(20).await;
    let env = Env::new(&sim, "", JOBS);
    let app = env.app().await;
    // A killed process's run left its lock behind; nobody renews it.
    let lock = app
        .store
        .try_lock("import:digicert", "run 999", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(lock, LockOutcome::Acquired);

    let runner = JobRunner::new(&app.config, app.imports.clone());
    let run = runner
        .trigger("accounts", Trigger::Startup, "scheduler".into(), false)
        .unwrap()
        .await
        .unwrap();
    // While it waits, its run is alive: closing abandoned runs leaves it alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(runner.is_running("accounts"));
    assert_eq!(
        app.store
            .fail_open_runs("interrupted", idsync::clock::now())
            .await
            .unwrap(),
        0
    );
    wait_idle(&runner, &["accounts"]).await;
    let run = app.store.get_run(run).await.unwrap().unwrap();
    assert_eq!(run.outcome, Some(RunOutcome::Succeeded), "{run:?}");
    assert_eq!(common::accounts(&app).await.len(), 20);
}
