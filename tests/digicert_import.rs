//! Import of DigiCert accounts and access, end to end: the real adapter and HTTP client
//! against the DigiCert simulator on loopback, into a real SQLite file.

mod common;

use common::secrets::Exposed;
use common::{
    accounts, assert_same, digicert, digicert_with, entitlements, grants, import, store_snapshot,
    Env, Opts,
};
use idsync::model::{AccountStatus, GrantStatus, ImportMode, JobKind, RunOutcome};
use idsync::store::{RunFilter, Store};
use idsync::sync::ImportParts;
use idsync_sim::{
    DigicertSeed, DigicertSim, DigicertSimConfig, FaultRule, RateWindow, SimClock, SimControl,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn imports_2500_users_across_pages_with_exact_fields() {
    let sim = digicert(2500).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;

    let summary = import(&app, Opts::default()).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    let account_run = &summary.runs[0];
    assert_eq!(account_run.counts.account.created, 2500);
    // Default page size 1000: three pages of users.
    assert_eq!(
        sim.control().stats().route("GET /user"),
        3 + 3,
        "account + access import pages"
    );

    let stored = accounts(&app).await;
    assert_eq!(stored.len(), 2500);
    let control = sim.control();
    let expected_users = control.users();
    for user in &expected_users {
        let account = stored
            .iter()
            .find(|a| a.id == user.id.to_string())
            .expect("every user imported");
        assert_eq!(account.name, user.username);
        assert_eq!(account.email.as_deref(), Some(user.email.as_str()));
        assert_eq!(
            account.display_name.as_deref(),
            Some(format!("{} {}", user.first_name, user.last_name).as_str())
        );
        let status = if user.status.as_str() == "active" {
            AccountStatus::Active
        } else {
            AccountStatus::Inactive
        };
        assert_eq!(account.status, status, "user {}", user.username);
        assert_eq!(
            account.attributes["container_id"],
            serde_json::json!(user.container_id)
        );
        assert_eq!(
            account.attributes.get("job_title").and_then(|v| v.as_str()),
            user.job_title.as_deref()
        );
        assert_eq!(account.status_reason.as_deref(), Some("import"));
        assert!(account.last_seen.is_some());
    }
    assert!(
        stored.iter().any(|a| a.status == AccountStatus::Inactive),
        "the seed has inactive users"
    );

    // Entitlements: five built-in roles and the containers.
    let ents = entitlements(&app).await;
    assert_eq!(
        ents.iter().filter(|e| e.entitlement_type == "role").count(),
        5
    );
    assert_eq!(
        ents.iter()
            .filter(|e| e.entitlement_type == "container")
            .count(),
        5
    );
    assert!(ents
        .iter()
        .any(|e| e.entitlement_type == "role" && e.id == "1" && e.name == "Administrator"));

    // Grants: one per role held plus one container per user.
    let expected_grants: usize = expected_users
        .iter()
        .map(|u| u.access_roles.len() + 1)
        .sum();
    let stored_grants = grants(&app).await;
    assert_eq!(stored_grants.len(), expected_grants);
    let sample = &expected_users[1234];
    let mine: Vec<_> = stored_grants
        .iter()
        .filter(|g| g.account_id == sample.id.to_string())
        .collect();
    assert_eq!(mine.len(), sample.access_roles.len() + 1);
    for role in &sample.access_roles {
        assert!(mine
            .iter()
            .any(|g| g.entitlement_type == "role" && g.entitlement_id == role.to_string()));
    }
    assert!(mine
        .iter()
        .all(|g| g.account.as_deref() == Some(sample.username.as_str())));
}

#[tokio::test]
async fn reimport_without_changes_writes_nothing() {
    let sim = digicert(300).await;
    let env = Env::new(&sim, "page_size = 50", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let before = store_snapshot(&app).await;

    let summary = import(&app, Opts::default()).await;
    for run in &summary.runs {
        assert_eq!(run.outcome, RunOutcome::Succeeded);
        assert_eq!(
            run.counts.account.written()
                + run.counts.entitlement.written()
                + run.counts.grant.written(),
            0
        );
    }
    assert_eq!(summary.runs[0].counts.account.unchanged, 300);
    assert_same(
        &store_snapshot(&app).await,
        &before,
        "no row and no audit event written",
    );
}

#[tokio::test]
async fn missing_users_are_suspended_and_returning_users_reactivated() {
    let sim = digicert(200).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let control = sim.control();
    let users = control.users();
    let (gone, renamed, disabled) = (&users[10], &users[20], &users[30]);
    assert!(control.hide_user(gone.id));
    control.set_user_status(disabled.id, "inactive").unwrap();
    let _ = renamed;

    let summary = import(&app, Opts::default()).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(summary.runs[0].counts.account.suspended, 1);
    // The suspended account's grants are reported as grant removals of the account run.
    assert_eq!(summary.runs[0].counts.account.removed, 0);
    assert_eq!(
        summary.runs[0].counts.grant.removed as usize,
        gone.access_roles.len() + 1
    );
    let stored = accounts(&app).await;
    let suspended = stored.iter().find(|a| a.id == gone.id.to_string()).unwrap();
    assert_eq!(suspended.status, AccountStatus::Suspended);
    assert_eq!(suspended.status_reason.as_deref(), Some("import"));
    let now_disabled = stored
        .iter()
        .find(|a| a.id == disabled.id.to_string())
        .unwrap();
    if disabled.status.as_str() == "active" {
        assert_eq!(now_disabled.status, AccountStatus::Inactive);
    }
    // A suspended account's grants are removed, and are not counted again as removals.
    let its_grants: Vec<_> = grants(&app)
        .await
        .into_iter()
        .filter(|g| g.account_id == gone.id.to_string())
        .collect();
    assert!(!its_grants.is_empty());
    assert!(its_grants.iter().all(|g| g.status == GrantStatus::Removed));
    assert_eq!(
        summary.runs[1].counts.grant.removed, 0,
        "{:?}",
        summary.runs[1].counts
    );

    // The user comes back with the same id: reactivated, grants active again.
    assert!(control.unhide_user(gone.id));
    let summary = import(&app, Opts::default()).await;
    assert_eq!(summary.runs[0].counts.account.reactivated, 1);
    assert!(summary.runs[1].counts.grant.reactivated >= 1);
    let back = accounts(&app)
        .await
        .into_iter()
        .find(|a| a.id == gone.id.to_string())
        .unwrap();
    assert_ne!(back.status, AccountStatus::Suspended);
    let its_grants: Vec<_> = grants(&app)
        .await
        .into_iter()
        .filter(|g| g.account_id == gone.id.to_string())
        .collect();
    assert!(its_grants.iter().all(|g| g.status == GrantStatus::Active));
}

#[tokio::test]
async fn removed_role_grant_is_marked_removed() {
    let sim = digicert(50).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let control = sim.control();
    let user = control.users()[5].clone();
    let new_role = if user.access_roles.contains(&1) { 2 } else { 1 };
    control.set_user_roles(user.id, &[new_role]).unwrap();

    let summary = import(
        &app,
        Opts {
            parts: ImportParts::Access,
            ..Opts::default()
        },
    )
    .await;
    let counts = summary.runs[0].counts.grant;
    let had_new = user.access_roles.contains(&new_role);
    let expected_removed = user.access_roles.len() - usize::from(had_new);
    assert_eq!(counts.removed as usize, expected_removed, "{counts:?}");
    assert_eq!(
        counts.created + counts.reactivated,
        u64::from(!had_new),
        "{counts:?}"
    );
    let mine: Vec<_> = grants(&app)
        .await
        .into_iter()
        .filter(|g| g.account_id == user.id.to_string() && g.entitlement_type == "role")
        .collect();
    for grant in mine {
        let expected = if grant.entitlement_id == new_role.to_string() {
            GrantStatus::Active
        } else {
            GrantStatus::Removed
        };
        assert_eq!(grant.status, expected, "{grant:?}");
    }
}

#[tokio::test]
async fn deletion_threshold_holds_the_run_until_deletions_are_allowed() {
    let sim = digicert(100).await;
    let env = Env::new(
        &sim,
        "deletion_threshold = { percent = 20, count = 1000 }",
        "",
    );
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let before = store_snapshot(&app).await;
    let control = sim.control();
    for user in control.users().iter().take(30) {
        assert!(control.remove_user(user.id));
    }

    let held = import(&app, Opts::default()).await;
    assert_eq!(held.exit_code(), 3, "{held:?}");
    assert_eq!(held.runs[0].outcome, RunOutcome::Held);
    assert!(held.runs[0]
        .error
        .as_deref()
        .unwrap()
        .contains("30 accounts would be removed out of 100"));
    assert_eq!(
        held.runs.len(),
        1,
        "the access import after a held account import is skipped"
    );
    assert_eq!(held.skipped.len(), 1);
    assert_same(
        &store_snapshot(&app).await,
        &before,
        "a held run changes nothing",
    );
    // The run record keeps the pending diff.
    let run = app
        .store
        .get_run(held.runs[0].run_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.outcome, Some(RunOutcome::Held));
    assert_eq!(run.counts["pending"].as_array().unwrap().len(), 30);

    let allowed = import(
        &app,
        Opts {
            allow_deletions: true,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(allowed.exit_code(), 0, "{allowed:?}");
    assert_eq!(allowed.runs[0].counts.account.suspended, 30);
    let audit = app
        .store
        .list_audit(Some("digicert"), 10_000)
        .await
        .unwrap();
    let allowed_event = audit
        .iter()
        .find(|e| e.action == "deletions_allowed")
        .expect("audited");
    assert_eq!(allowed_event.actor, "cli:test");
    assert_eq!(allowed_event.run_id, allowed.runs[0].run_id);
}

#[tokio::test]
async fn count_threshold_holds_even_under_the_percent() {
    let sim = digicert(400).await;
    let env = Env::new(&sim, "deletion_threshold = { percent = 50, count = 5 }", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let control = sim.control();
    for user in control.users().iter().take(6) {
        control.remove_user(user.id);
    }
    let held = import(
        &app,
        Opts {
            parts: ImportParts::Accounts,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(held.runs[0].outcome, RunOutcome::Held);
}

#[tokio::test]
async fn a_page_failing_mid_import_leaves_the_store_exactly_as_before() {
    let sim = digicert(2500).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let before = store_snapshot(&app).await;
    let runs_before = app
        .store
        .list_runs(&RunFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();

    // Changes that a successful import would write, then the second page fails every time.
    let control = sim.control();
    let users = control.users();
    for user in users.iter().take(5) {
        control.remove_user(user.id);
    }
    control.set_user_status(users[2000].id, "inactive").ok();
    control
        .fail_when(
            FaultRule::new(500)
                .with_method("GET")
                .with_path_prefix("/user")
                .with_query("offset=1000")
                .with_times(100),
        )
        .unwrap();

    let summary = import(&app, Opts::default()).await;
    assert_eq!(summary.exit_code(), 1, "{summary:?}");
    assert_eq!(summary.runs[0].outcome, RunOutcome::Failed);
    let error = summary.runs[0].error.as_deref().unwrap();
    assert!(
        error.contains("digicert") && error.contains("500"),
        "{error}"
    );
    assert_same(
        &store_snapshot(&app).await,
        &before,
        "nothing marked, nothing written",
    );
    let runs = app
        .store
        .list_runs(&RunFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), runs_before + 1, "only the failed run record");
    assert_eq!(runs[0].outcome, Some(RunOutcome::Failed));

    // Once the fault clears, the same changes go through.
    control.clear_faults();
    let summary = import(&app, Opts::default()).await;
    assert_eq!(summary.runs[0].counts.account.suspended, 5);
}

#[tokio::test]
async fn a_failing_grant_page_fails_the_access_import_without_marking() {
    let sim = digicert(1500).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let before = store_snapshot(&app).await;
    let control = sim.control();
    let user = control.users()[3].clone();
    control.set_user_roles(user.id, &[3]).unwrap();
    control
        .fail_when(
            FaultRule::new(503)
                .with_path_prefix("/user")
                .with_query("offset=1000")
                .with_times(100),
        )
        .unwrap();
    let summary = import(
        &app,
        Opts {
            parts: ImportParts::Access,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(summary.runs[0].outcome, RunOutcome::Failed);
    assert_same(&store_snapshot(&app).await, &before, "store unchanged");
}

#[tokio::test]
async fn transient_errors_are_retried_and_the_import_succeeds() {
    let sim = digicert(300).await;
    let env = Env::new(&sim, "page_size = 100", "");
    let app = env.app().await;
    sim.control().fail_next(2, 503).unwrap();
    let summary = import(
        &app,
        Opts {
            parts: ImportParts::Accounts,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(accounts(&app).await.len(), 300);
    assert_eq!(sim.control().stats().responses_5xx, 2);
}

#[tokio::test]
async fn a_revoked_key_gives_a_clear_auth_error_and_changes_nothing() {
    let sim = digicert(100).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let before = store_snapshot(&app).await;
    sim.control().revoke_key();
    sim.control().reset_stats();

    let summary = import(&app, Opts::default()).await;
    assert_eq!(summary.exit_code(), 1);
    let error = summary.runs[0].error.clone().unwrap();
    assert!(
        error.contains("target digicert rejected the credentials"),
        "{error}"
    );
    Exposed::new()
        .text("the run's error", &error)
        .assert_free_of(&[common::SIM_KEY]);
    assert_eq!(
        sim.control().stats().responses_401,
        1,
        "an auth error is not retried"
    );
    assert_same(&store_snapshot(&app).await, &before, "store unchanged");
    // test-connection says the same.
    let err = app.connectors["digicert"]
        .test_connection()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rejected the credentials"));
}

/// Serves `sim` behind a layer that notes when each API request arrives (on tokio's clock,
/// which the simulator's default clock follows). Returns the API root URL and the arrivals.
async fn serve_noting_arrivals(sim: DigicertSim) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let noted = arrivals.clone();
    let router = sim.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            noted.lock().unwrap().push(Instant::now());
            next.run(request)
        },
    ));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}/services/v2", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, arrivals)
}

/// The most arrivals within any span of `per`.
fn busiest(arrivals: &[Instant], per: Duration) -> usize {
    arrivals
        .iter()
        .enumerate()
        .map(|(i, from)| {
            arrivals[i..]
                .iter()
                .take_while(|at| at.duration_since(*from) < per)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn pacing_keeps_429s_at_zero_against_the_rate_limits() {
    // Two small windows, the client told the same: 2 per 20 ms and 30 per 800 ms. Each
    // binds: a client paced by the long window alone would send its burst of 3 at once
    // (over the short window), and one paced by the short window alone would send 41 in
    // 800 ms (over the long window) once the import's 34 requests (16 account pages, 16
    // access pages, roles and containers) pass 30. The import reads one page at a time, so
    // paced requests cannot arrive closer together than they were sent: none is refused.
    let windows = [
        RateWindow::new(2, Duration::from_millis(20)),
        RateWindow::new(30, Duration::from_millis(800)),
    ];
    let sim = DigicertSim::new(DigicertSimConfig {
        api_key: common::SIM_KEY.to_string(),
        seed: DigicertSeed::with_users(160),
        rate_limits: windows.to_vec(),
        ..DigicertSimConfig::default()
    });
    let control = sim.control();
    let (base, arrivals) = serve_noting_arrivals(sim).await;
    let env = Env::with_targets(
        &format!(
            r#"[targets.digicert]
kind = "digicert"
base_url = "{base}"
api_key = "{key}"
page_size = 10
rate_limit = [{{ requests = 2, per = "20ms" }}, {{ requests = 30, per = "800ms" }}]
"#,
            key = common::SIM_KEY
        ),
        "",
    );
    let app = env.app().await;
    let summary = import(&app, Opts::default()).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(accounts(&app).await.len(), 160);

    let stats = control.stats();
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len() as u64, stats.requests, "{stats:?}");
    assert_eq!(stats.requests, 34, "{stats:?}");
    assert_eq!(stats.responses_429, 0, "{stats:?}");
    // Counted at the simulator: no window ever held more requests than it allows.
    for window in windows {
        let most = busiest(&arrivals, window.per);
        assert!(
            most <= window.requests as usize,
            "{most} requests within {:?}, over {}",
            window.per,
            window.requests
        );
    }
}

#[tokio::test]
async fn without_pacing_the_same_import_hits_the_limits() {
    // The counterpart of the pacing test: it shows the limits bite when pacing is off. The
    // simulator's clock stands still, so its window never rolls: after 20 requests, every
    // request is refused, however slowly the client goes.
    let sim = digicert_with(600, |config| {
        config.rate_limits = vec![RateWindow::new(20, Duration::from_secs(1))];
        config.clock = SimClock::manual();
    })
    .await;
    let env = Env::new(&sim, "page_size = 20\nrate_limit = []", "");
    let app = env.app().await;
    let summary = import(
        &app,
        Opts {
            parts: ImportParts::Accounts,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(summary.exit_code(), 1, "{summary:?}");
    let stats = sim.control().stats();
    assert!(stats.requests > 20, "{stats:?}");
    assert_eq!(stats.responses_429, stats.requests - 20, "{stats:?}");
}

#[tokio::test]
async fn dry_run_prints_the_diff_and_records_nothing() {
    let sim = digicert(100).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let before = store_snapshot(&app).await;
    let runs_before = app
        .store
        .list_runs(&RunFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let control = sim.control();
    let users = control.users();
    control.remove_user(users[0].id);
    control
        .set_user_status(
            users[1].id,
            if users[1].status.as_str() == "active" {
                "inactive"
            } else {
                "active"
            },
        )
        .unwrap();

    let summary = import(
        &app,
        Opts {
            dry_run: true,
            ..Opts::default()
        },
    )
    .await;
    assert!(summary.dry_run);
    assert!(summary.runs.iter().all(|run| run.run_id.is_none()));
    let diff = &summary.runs[0].diff;
    assert!(
        diff.iter()
            .any(|d| d.key == users[0].id.to_string() && d.change.as_str() == "suspended"),
        "{diff:?}"
    );
    assert!(
        diff.iter()
            .any(|d| d.key == users[1].id.to_string() && d.change.as_str() == "updated"),
        "{diff:?}"
    );
    assert_same(&store_snapshot(&app).await, &before, "store unchanged");
    let runs_after = app
        .store
        .list_runs(&RunFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        runs_after.len(),
        runs_before.len(),
        "a dry run records no run"
    );
}

#[tokio::test]
async fn incremental_import_writes_the_delta_and_never_suspends() {
    let sim = digicert(100).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    import(&app, Opts::default()).await;
    let control = sim.control();
    let users = control.users();
    control.remove_user(users[0].id);
    let summary = import(
        &app,
        Opts {
            mode: ImportMode::Incremental,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(summary.exit_code(), 0);
    assert_eq!(summary.runs[0].counts.account.suspended, 0);
    let gone = accounts(&app)
        .await
        .into_iter()
        .find(|a| a.id == users[0].id.to_string())
        .unwrap();
    assert_ne!(gone.status, AccountStatus::Suspended);
}

#[tokio::test]
async fn access_import_refuses_to_run_before_an_account_import() {
    let sim = digicert(10).await;
    let env = Env::new(&sim, "", "");
    let app = env.app().await;
    let summary = import(
        &app,
        Opts {
            parts: ImportParts::Access,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(summary.exit_code(), 1);
    let error = summary.runs[0].error.as_deref().unwrap();
    assert!(
        error.contains("idsync import digicert --accounts"),
        "{error}"
    );
    assert!(grants(&app).await.is_empty());
    assert_eq!(summary.runs[0].kind, JobKind::AccessImport);
}
