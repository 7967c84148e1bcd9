//! Tolerant mapping, end to end: a record with a status the adapter does not know, or a field
//! of an unexpected type, imports (the status as `inactive`, the raw value kept; the field
//! left out), is logged once per run with the count, counted in the run record and in
//! `idsync_import_anomalies_total`; a record whose identity cannot be read still fails the
//! import and suspends no one.
//!
//! The real adapters, HTTP client, import engine and SQLite store run against wiremock on
//! loopback: the simulators model only the documented statuses and field types, so they
//! cannot serve these records.

mod common;

use std::path::Path;
use std::process::Output;

use common::{
    accounts_of, grants_of, idsync_env, import_target, text, write_cli_config, Env, Opts,
};
use idsync::model::{AccountStatus, AnomalyCounts, GrantStatus, RunOutcome};
use idsync::store::{RunFilter, Store};
use idsync::sync::ImportParts;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DC_KEY: &str = "odd-key-never-print-me";

/// A DigiCert user as the API documents it.
fn dc_user(id: u64) -> Value {
    json!({ "id": id, "username": format!("user{id}"), "first_name": "U",
            "last_name": format!("{id}"), "email": format!("user{id}@example.com"),
            "status": "active", "container": { "id": 5, "name": "Company" },
            "access_roles": [{ "id": 1, "name": "Administrator" }], "type": "standard" })
}

/// A DigiCert API serving `users` as one page, and one container with one role.
async fn digicert_serving(users: &[Value]) -> MockServer {
    let server = MockServer::start().await;
    mount_users(&server, users).await;
    Mock::given(method("GET"))
        .and(path("/services/v2/container"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "containers": [{ "id": 5, "name": "Company", "parent_id": 0 }] }),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/v2/container/5/role"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "access_roles": [{ "id": 1, "name": "Administrator" }] })),
        )
        .mount(&server)
        .await;
    server
}

/// Makes `server`'s `GET /user` answer `users` as one page.
async fn mount_users(server: &MockServer, users: &[Value]) {
    Mock::given(method("GET"))
        .and(path("/services/v2/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "users": users,
            "page": { "total": users.len(), "limit": 1000, "offset": 0 }
        })))
        .mount(server)
        .await;
}

/// A `[targets.NAME]` table of kind digicert at `server`.
fn digicert_target(name: &str, server: &MockServer) -> String {
    format!(
        r#"[targets.{name}]
kind = "digicert"
base_url = "{}/services/v2"
api_key = "{DC_KEY}"
rate_limit = []
read_retry = {{ max_attempts = 2, initial_backoff = "10ms", max_backoff = "20ms" }}
"#,
        server.uri()
    )
}

/// The value of `idsync_import_anomalies_total` for one series (0 when it does not exist).
fn anomaly_counter(target: &str, object: &str, anomaly: &str) -> u64 {
    let rendered = idsync::telemetry::metrics_handle().render();
    let labels = [
        format!("target=\"{target}\""),
        format!("object=\"{object}\""),
        format!("anomaly=\"{anomaly}\""),
    ];
    rendered
        .lines()
        .filter(|line| line.starts_with("idsync_import_anomalies_total{"))
        .filter(|line| labels.iter().all(|label| line.contains(label.as_str())))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// Anomaly counts.
fn counts(unknown_status: u64, bad_field: u64) -> AnomalyCounts {
    AnomalyCounts {
        unknown_status,
        bad_field,
    }
}

#[tokio::test]
async fn digicert_odd_records_import_and_are_counted_per_run() {
    let target = "dc_odd";
    let mut pending = dc_user(2);
    pending["status"] = json!("pending");
    let mut statusless = dc_user(3);
    statusless.as_object_mut().unwrap().remove("status");
    let mut bad_fields = dc_user(4);
    bad_fields["first_name"] = json!(42);
    bad_fields["container"] = json!("x");
    let server = digicert_serving(&[dc_user(1), pending, statusless, bad_fields]).await;
    let env = Env::with_targets(&digicert_target(target, &server), "");
    let app = env.app().await;
    assert_eq!(anomaly_counter(target, "account", "unknown_status"), 0);

    let summary = import_target(&app, target, Opts::default()).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    let (account_run, access_run) = (&summary.runs[0], &summary.runs[1]);
    assert_eq!(account_run.counts.account.created, 4);
    assert_eq!(account_run.counts.anomalies.account, counts(2, 2));
    // The access import reads the same users for grants: only the container is bad there.
    assert_eq!(access_run.counts.anomalies.grant, counts(0, 1));
    assert_eq!(access_run.counts.anomalies.entitlement, counts(0, 0));

    let stored = accounts_of(&app, target).await;
    let by_id = |id: &str| stored.iter().find(|a| a.id == id).unwrap().clone();
    assert_eq!(by_id("1").status, AccountStatus::Active);
    assert!(!by_id("1").attributes.contains_key("raw_status"));
    assert_eq!(by_id("2").status, AccountStatus::Inactive);
    assert_eq!(by_id("2").attributes["raw_status"], "pending");
    assert_eq!(by_id("3").status, AccountStatus::Inactive);
    assert_eq!(by_id("3").attributes["raw_status"], Value::Null);
    let odd = by_id("4");
    assert_eq!(
        (odd.status, odd.name.as_str()),
        (AccountStatus::Active, "user4")
    );
    assert!(!odd.attributes.contains_key("first_name"));
    assert!(!odd.attributes.contains_key("container_id"));
    assert_eq!(odd.display_name.as_deref(), Some("4"));
    let grants = grants_of(&app, target).await;
    let of_4: Vec<&str> = grants
        .iter()
        .filter(|g| g.account_id == "4" && g.status == GrantStatus::Active)
        .map(|g| g.entitlement_type.as_str())
        .collect();
    assert_eq!(of_4, ["role"], "the unreadable container is left out");

    // The run records carry the counts, as `idsync runs list --output json` shows them.
    let runs = app
        .store
        .list_runs(&RunFilter {
            target: Some(target.into()),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let account_record = runs
        .iter()
        .find(|run| Some(run.id) == account_run.run_id)
        .unwrap();
    assert_eq!(
        account_record.counts["anomalies"]["account"],
        json!({ "unknown_status": 2, "bad_field": 2 })
    );

    assert_eq!(anomaly_counter(target, "account", "unknown_status"), 2);
    assert_eq!(anomaly_counter(target, "account", "bad_field"), 2);
    assert_eq!(anomaly_counter(target, "grant", "bad_field"), 1);
    let rendered = idsync::telemetry::metrics_handle().render();
    assert!(
        rendered.contains("# HELP idsync_import_anomalies_total"),
        "{rendered}"
    );

    // Each run counts what it read: the same records again, the same counts again.
    let again = import_target(&app, target, Opts::default()).await;
    assert_eq!(again.exit_code(), 0, "{again:?}");
    assert_eq!(again.runs[0].counts.anomalies.account, counts(2, 2));
    assert_eq!(
        again.runs[0].counts.account.unchanged, 4,
        "an odd record reads the same every time"
    );
    assert_eq!(anomaly_counter(target, "account", "unknown_status"), 4);

    // A dry run reports them but records nothing, metrics included.
    let dry = import_target(
        &app,
        target,
        Opts {
            parts: ImportParts::Accounts,
            dry_run: true,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(dry.runs[0].counts.anomalies.account, counts(2, 2));
    assert_eq!(anomaly_counter(target, "account", "unknown_status"), 4);
}

#[tokio::test]
async fn a_record_without_a_usable_identity_fails_the_import_and_suspends_no_one() {
    let target = "dc_noid";
    let users: Vec<Value> = (1..=3).map(dc_user).collect();
    let server = digicert_serving(&users).await;
    let env = Env::with_targets(&digicert_target(target, &server), "");
    let app = env.app().await;
    let accounts_only = Opts {
        parts: ImportParts::Accounts,
        ..Opts::default()
    };
    assert_eq!(
        import_target(&app, target, accounts_only).await.exit_code(),
        0
    );

    for broken in [
        json!({ "username": "user3", "status": "active" }),
        json!({ "id": 3, "username": 3, "status": "active" }),
        json!({ "id": [3], "username": "user3" }),
        json!("user3"),
    ] {
        server.reset().await;
        mount_users(&server, &[dc_user(1), dc_user(2), broken.clone()]).await;
        let summary = import_target(&app, target, accounts_only).await;
        assert_eq!(summary.exit_code(), 1, "{broken}: {summary:?}");
        let run = &summary.runs[0];
        assert_eq!(run.outcome, RunOutcome::Failed);
        let error = run.error.as_deref().unwrap();
        assert!(
            error.contains("malformed response") && error.contains("cannot be skipped"),
            "{error}"
        );
        let stored = accounts_of(&app, target).await;
        assert_eq!(stored.len(), 3);
        assert!(
            stored.iter().all(|a| a.status == AccountStatus::Active),
            "no one suspended: {stored:?}"
        );
    }
}

/// A Jama server with a token endpoint and `GET /users` answering `users` as one page.
async fn jama_serving(users: &[Value]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "access_token": "tok-odd", "token_type": "Bearer", "expires_in": 3600 }),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meta": { "status": "OK", "pageInfo": {
                "startIndex": 0, "resultCount": users.len(), "totalResults": users.len() } },
            "links": {}, "linked": {}, "data": users
        })))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn jama_odd_records_import_and_are_counted() {
    let target = "jama_odd";
    let user = |id: u64| {
        json!({ "id": id, "username": format!("user{id}"), "firstName": "U",
                "lastName": format!("{id}"), "email": format!("user{id}@example.com"),
                "active": true, "licenseType": "NAMED", "type": "users" })
    };
    let mut text_flag = user(2);
    text_flag["active"] = json!("yes");
    let mut no_flag = user(3);
    no_flag.as_object_mut().unwrap().remove("active");
    let mut bad_fields = user(4);
    bad_fields["email"] = json!([]);
    bad_fields["customData"] = json!(5);
    let server = jama_serving(&[user(1), text_flag, no_flag, bad_fields]).await;
    let env = Env::with_targets(
        &format!(
            r#"[targets.{target}]
kind = "jama"
base_url = "{}"
client_id = "idsync"
client_secret = "odd-secret-never-print-me"
rate_limit = []
"#,
            server.uri()
        ),
        "",
    );
    let app = env.app().await;
    let summary = import_target(
        &app,
        target,
        Opts {
            parts: ImportParts::Accounts,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(summary.runs[0].counts.anomalies.account, counts(2, 2));
    let stored = accounts_of(&app, target).await;
    let by_id = |id: &str| stored.iter().find(|a| a.id == id).unwrap().clone();
    assert_eq!(by_id("2").status, AccountStatus::Inactive);
    assert_eq!(by_id("2").attributes["raw_status"], "yes");
    assert_eq!(by_id("3").attributes["raw_status"], Value::Null);
    assert_eq!(by_id("4").status, AccountStatus::Active);
    assert_eq!(by_id("4").email, None);
    assert!(!by_id("4").attributes.contains_key("customData"));
    assert_eq!(anomaly_counter(target, "account", "unknown_status"), 2);
    assert_eq!(anomaly_counter(target, "account", "bad_field"), 2);
}

#[tokio::test]
async fn duckcreek_odd_records_import_and_are_counted() {
    let target = "duckcreek_odd";
    let users = r#"<User id="1" name="ann" email="ann@example.com" status="Active"><Roles><Role name="Underwriter"/></Roles></User>
        <User id="2" name="bob" status="Suspended"/>
        <User id="3" name="cy"><Roles><Role/><Role name="Underwriter"/></Roles></User>"#;
    let answer = |inner: &str| {
        format!(
            r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
            <server><responses><Session.loginRs status="Success"/>{inner}<Session.closeRs status="Success"/></responses></server>
            </soap:Body></soap:Envelope>"#
        )
    };
    let server = MockServer::start().await;
    let xml =
        |body: String| ResponseTemplate::new(200).set_body_raw(body, "text/xml; charset=utf-8");
    Mock::given(method("POST"))
        .and(body_string_contains("Security.listRolesRq"))
        .respond_with(xml(answer(
            r#"<Security.listRolesRs status="Success"><Roles><Role id="10" name="Underwriter"/></Roles></Security.listRolesRs>
               <OnlineData.listEntitiesRs status="Success"><Entities/></OnlineData.listEntitiesRs>
               <Security.listPrivilegesRs status="Success"><Privileges/></Security.listPrivilegesRs>"#,
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("OnlineData.listEntityUsersRq"))
        .respond_with(xml(answer(&format!(
            r#"<OnlineData.listEntityUsersRs status="Success"><Users>{users}</Users></OnlineData.listEntityUsersRs>"#
        ))))
        .mount(&server)
        .await;
    let env = Env::with_targets(
        &format!(
            r#"[targets.{target}]
kind = "duckcreek"
base_url = "{}/Server/Server.asmx"
username = "svc_idsync"
password = "odd-password-never-print-me"
rate_limit = []
"#,
            server.uri()
        ),
        "",
    );
    let app = env.app().await;
    let summary = import_target(&app, target, Opts::default()).await;
    assert_eq!(summary.exit_code(), 0, "{summary:?}");
    assert_eq!(summary.runs[0].counts.anomalies.account, counts(2, 0));
    assert_eq!(summary.runs[1].counts.anomalies.grant, counts(0, 1));
    let stored = accounts_of(&app, target).await;
    let by_id = |id: &str| stored.iter().find(|a| a.id == id).unwrap().clone();
    assert_eq!(by_id("2").status, AccountStatus::Inactive);
    assert_eq!(by_id("2").attributes["raw_status"], "Suspended");
    assert_eq!(by_id("3").attributes["raw_status"], Value::Null);
    let grants_of_cy: Vec<String> = grants_of(&app, target)
        .await
        .into_iter()
        .filter(|g| g.account_id == "3")
        .map(|g| g.entitlement_id)
        .collect();
    assert_eq!(grants_of_cy, ["10"]);
    assert_eq!(anomaly_counter(target, "account", "unknown_status"), 2);
    assert_eq!(anomaly_counter(target, "grant", "bad_field"), 1);
}

/// `idsync --config CONFIG ARGS…` with `envs`, run off the async runtime (which keeps
/// serving wiremock).
async fn idsync(config: &Path, args: &[&str], envs: &[(&'static str, &str)]) -> Output {
    let envs = envs.iter().map(|(k, v)| (*k, v.to_string())).collect();
    idsync_env(config, args, envs).await
}

/// The JSON WARN lines of `output` (stderr) whose `anomaly` field is `kind`.
fn anomaly_warnings(output: &Output, kind: &str) -> Vec<Value> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["level"] == "WARN" && line["anomaly"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_warns_once_per_run_with_the_count_and_shows_the_counts() {
    let mut users: Vec<Value> = (1..=40).map(dc_user).collect();
    for user in users.iter_mut().skip(10) {
        user["status"] = json!("pending_approval");
    }
    for user in users.iter_mut().take(3) {
        user["telephone"] = json!(5550100);
    }
    let server = digicert_serving(&users).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_cli_config(dir.path(), "warn", &digicert_target("dc", &server));

    for run in 1..=2 {
        let out = idsync(
            &config,
            &["import", "dc", "--accounts"],
            &[("RUST_LOG", "")],
        )
        .await;
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shown}");
        assert!(
            shown.contains("tolerated: unknown status 30 (read as inactive), bad field 3"),
            "{shown}"
        );
        let unknown = anomaly_warnings(&out, "unknown_status");
        assert_eq!(unknown.len(), 1, "run {run}: one warning: {shown}");
        let warning = &unknown[0];
        assert_eq!(warning["count"], 30);
        assert_eq!(warning["object"], "account");
        let examples = warning["examples"].as_str().unwrap();
        assert_eq!(
            examples.matches("(status: `pending_approval`)").count(),
            5,
            "{examples}"
        );
        assert!(examples.starts_with("11 (status"), "{examples}");
        assert!(warning["message"].as_str().unwrap().contains("raw_status"));
        let bad = anomaly_warnings(&out, "bad_field");
        assert_eq!(bad.len(), 1, "{shown}");
        assert_eq!(bad[0]["count"], 3);
        assert!(
            bad[0]["examples"]
                .as_str()
                .unwrap()
                .contains("1 (telephone: expected text, found a number)"),
            "{}",
            bad[0]
        );
    }

    // The per-record detail is at DEBUG, one line per anomaly.
    let out = idsync(
        &config,
        &["import", "dc", "--accounts"],
        &[("RUST_LOG", "warn,idsync::sync::anomalies=debug")],
    )
    .await;
    let per_record = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|line| line.contains("Record read with an anomaly."))
        .count();
    assert_eq!(per_record, 33, "{}", text(&out));

    // Each run's record carries the counts.
    let out = idsync(&config, &["runs", "list", "--output", "json"], &[]).await;
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for run in runs {
        assert_eq!(
            run["counts"]["anomalies"]["account"],
            json!({ "unknown_status": 30, "bad_field": 3 }),
            "{run}"
        );
    }
    let out = idsync(&config, &["accounts", "list", "--output", "json"], &[]).await;
    let stored: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pending: Vec<&Value> = stored
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["attributes"]["raw_status"] == "pending_approval")
        .collect();
    assert_eq!(pending.len(), 30);
    assert!(pending.iter().all(|a| a["status"] == "inactive"));
}
