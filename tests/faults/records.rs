//! Records in shapes the targets do not document: a status the adapter does not know, a
//! field of an unexpected type. The daemon's import must succeed; an unknown status becomes
//! `inactive` with the raw value kept in `attributes`; a bad field is skipped in that record
//! only; both are counted in `idsync_import_anomalies_total{target,object,anomaly}`.
//!
//! Found by this suite: before tolerant mapping, one such record failed the whole import.

use idsync_sim::{FaultEffect, FaultRule};
use serde_json::Value;

use super::kit::{
    daemon_tables, digicert, duckcreek, jama, runs_of, until_run_finished, Case, Target, API_TOKEN,
};

/// Replaces `find` by `replace` in every successful answer.
fn rewrite(find: &str, replace: &str) -> FaultRule {
    FaultRule::breaking(FaultEffect::Rewrite {
        find: find.into(),
        replace: replace.into(),
    })
}

/// The sum of the samples of `name` whose labels hold every `needle`.
fn metric(metrics: &str, name: &str, needles: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Starts a daemon on `target` with the rewrites in place, waits for its start-up import and
/// returns the run, the metrics text, and every account as the CLI lists it (JSON).
async fn import_odd_records<T: Target>(
    case: &mut Case,
    _target: &T,
) -> (Value, String, Vec<Value>) {
    let daemon = case.daemon("odd-records").await;
    let id = runs_of(&daemon, "import")
        .await
        .last()
        .and_then(|run| run["id"].as_i64())
        .unwrap_or(1);
    let run = until_run_finished(&daemon, "import", id).await;
    let (_, metrics) = daemon.get("/metrics", None).await;
    case.stop(daemon).await;
    let list = case
        .idsync(&["--output", "json", "accounts", "list", "--target", T::NAME])
        .await;
    assert_eq!(list.status.code(), Some(0));
    let accounts: Vec<Value> = serde_json::from_slice(&list.stdout).unwrap();
    (run, metrics, accounts)
}

/// The account with native id `id`.
fn account<'a>(accounts: &'a [Value], id: &str) -> &'a Value {
    accounts
        .iter()
        .find(|account| account["id"] == id)
        .unwrap_or_else(|| panic!("account {id} was not imported"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_status_and_a_bad_field_do_not_fail_a_digicert_import() {
    let sim = digicert(30, |_| {}).await;
    let control = sim.control();
    let users = control.users();
    let (odd, typed) = (&users[3], &users[7]);
    control.set_user_status(odd.id, "inactive").unwrap();
    sim.fault(rewrite(
        r#""status":"inactive""#,
        r#""status":"pending_activation""#,
    ));
    sim.fault(rewrite(
        &format!(r#""email":"{}""#, typed.email),
        r#""email":12345"#,
    ));
    // Pages of 5: the two users come on different pages (a broken answer gets one rule).
    let rest = format!(
        "{}\n{}",
        sim.table("page_size = 5"),
        daemon_tables("digicert")
    );
    let mut case = Case::new(
        "unknown status and bad field type (DigiCert)",
        &rest,
        vec![API_TOKEN],
    );
    let (run, metrics, accounts) = import_odd_records(&mut case, &sim).await;
    // Once a finding: the import failed on "has status `pending_activation`".
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(accounts.len(), 30);
    let odd = account(&accounts, &odd.id.to_string());
    assert_eq!(odd["status"], "inactive", "{odd}");
    assert_eq!(
        odd["attributes"]["raw_status"], "pending_activation",
        "{odd}"
    );
    let typed = account(&accounts, &typed.id.to_string());
    assert!(
        typed["email"].is_null(),
        "the bad email is skipped: {typed}"
    );
    let anomalies = |anomaly: &str| {
        metric(
            &metrics,
            "idsync_import_anomalies_total",
            &[
                "target=\"digicert\"",
                "object=\"account\"",
                &format!("anomaly=\"{anomaly}\""),
            ],
        )
    };
    case.figure(
        "anomalies counted: unknown_status",
        anomalies("unknown_status"),
    );
    case.figure("anomalies counted: bad_field", anomalies("bad_field"));
    assert_eq!(anomalies("unknown_status"), 1.0, "{metrics}");
    assert_eq!(anomalies("bad_field"), 1.0, "{metrics}");
    case.finish(&sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_field_does_not_fail_a_jama_import() {
    let sim = jama(20, |_| {}).await;
    let control = sim.control();
    let typed = control.users()[5].clone();
    sim.fault(rewrite(
        &format!(r#""email":"{}""#, typed.email),
        r#""email":["not","a","string"]"#,
    ));
    let rest = format!("{}\n{}", sim.table(""), daemon_tables("jama"));
    let mut case = Case::new("bad field type (Jama)", &rest, vec![API_TOKEN]);
    let (run, metrics, accounts) = import_odd_records(&mut case, &sim).await;
    // Once a finding: one record's email of the wrong type failed the read.
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(accounts.len(), 20);
    let typed = account(&accounts, &typed.id.to_string());
    assert!(
        typed["email"].is_null(),
        "the bad email is skipped: {typed}"
    );
    let bad_fields = metric(
        &metrics,
        "idsync_import_anomalies_total",
        &["target=\"jama\"", "anomaly=\"bad_field\""],
    );
    case.figure("anomalies counted: bad_field", bad_fields);
    assert_eq!(bad_fields, 1.0, "{metrics}");
    case.finish(&sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_status_does_not_fail_a_duck_creek_import() {
    let sim = duckcreek(30).await;
    let control = sim.control();
    // The seed locks a tenth of the users; every one of them comes back `Disabled`.
    let locked: Vec<String> = control
        .users()
        .iter()
        .filter(|user| user.status.as_str() == "Locked")
        .map(|user| user.id.to_string())
        .collect();
    assert!(!locked.is_empty());
    sim.fault(rewrite(r#"status="Locked""#, r#"status="Disabled""#));
    let rest = format!("{}\n{}", sim.table(""), daemon_tables("duckcreek"));
    let mut case = Case::new("unknown status (Duck Creek)", &rest, vec![API_TOKEN]);
    let (run, metrics, accounts) = import_odd_records(&mut case, &sim).await;
    // Once a finding: the import failed on "idsync knows Active and Locked".
    assert_eq!(run["outcome"], "succeeded", "{run}");
    for id in &locked {
        let user = account(&accounts, id);
        assert_eq!(user["status"], "inactive", "{user}");
        assert_eq!(user["attributes"]["raw_status"], "Disabled", "{user}");
    }
    let unknown = metric(
        &metrics,
        "idsync_import_anomalies_total",
        &["target=\"duckcreek\"", "anomaly=\"unknown_status\""],
    );
    case.figure("anomalies counted: unknown_status", unknown);
    assert_eq!(unknown, locked.len() as f64, "{metrics}");
    case.finish(&sim).await;
}
