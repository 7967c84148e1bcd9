//! Unit tests of the Jama adapter: mapping on recorded fixtures, paging, tokens and
//! provisioning against wiremock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use futures::{StreamExt, TryStreamExt};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use std::sync::Arc;

use serde_json::{json, Value};
use url::Url;

use super::config::api_root;
use super::wire::{error_message, map_group, map_members, map_user, GroupRef};
use super::*;
use crate::connector::kit::testing::{
    access, account_summary, already_done, assert_error, assert_update_is_idempotent, done, grant,
    kind_id_name, pacing, provisioned, queries, read_all, read_error, refused, request,
    target_config,
};
use crate::connector::password::PASSWORD_LENGTH;
use crate::connector::ErrorClass;
use crate::connector::{Connector, ProvisionRequest};
use crate::model::{AccountRecord, AccountStatus, GrantRecord};

const SECRET: &str = "jama-SECRET-unmistakable-5c2e";
const TOKEN: &str = "tok-UNMISTAKABLE-8812";

/// The user object of the target's API documentation, as recorded.
fn sheet_user() -> Value {
    json!({ "id": 123, "username": "jane.doe", "firstName": "Jane", "lastName": "Doe",
      "email": "jane.doe@example.com", "phone": "555-0100", "title": "Engineer",
      "location": "Berlin", "licenseType": "NAMED", "active": true,
      "avatarUrl": "https://jama.example/avatar/123.png",
      "authenticationType": { "id": 1, "name": "BASIC" },
      "customData": [{ "name": "costCenter", "value": "42" }], "type": "users" })
}

/// A group object of the API documentation.
fn sheet_group() -> Value {
    json!({ "id": 7, "name": "Reviewers", "description": "Can review", "project": null,
            "type": "usergroups" })
}

/// The list envelope of the API documentation around `data`.
fn envelope(data: Vec<Value>, start: u64, total: u64) -> Value {
    json!({ "meta": { "status": "OK", "timestamp": "2026-05-26T16:11:23.071+0000",
              "pageInfo": { "startIndex": start, "resultCount": data.len(), "totalResults": total } },
            "links": {}, "linked": {}, "data": data })
}

#[test]
fn maps_the_sheets_user() {
    let record = map_user("jama", &sheet_user()).unwrap();
    assert_eq!(
        account_summary(&record),
        (
            "123",
            "jane.doe",
            Some("Jane Doe"),
            Some("jane.doe@example.com"),
            AccountStatus::Active
        )
    );
    assert_eq!(
        Value::Object(record.attributes),
        json!({
            "firstName": "Jane", "lastName": "Doe", "phone": "555-0100", "title": "Engineer",
            "location": "Berlin", "licenseType": "NAMED", "authenticationType": "BASIC",
            "customData": [{ "name": "costCenter", "value": "42" }]
        })
    );
}

#[test]
fn maps_an_inactive_user_with_only_the_required_fields() {
    let record = map_user(
        "jama",
        &json!({ "id": 9, "username": "svc", "active": false, "email": "",
                 "customData": [], "authenticationType": null, "phone": null }),
    )
    .unwrap();
    assert_eq!(record.status, AccountStatus::Inactive);
    assert_eq!(record.display_name, None);
    assert_eq!(record.email, None);
    assert!(record.attributes.is_empty(), "{:?}", record.attributes);
}

#[test]
fn a_user_without_active_or_username_is_malformed_and_named() {
    let mut user = sheet_user();
    user.as_object_mut().unwrap().remove("active");
    let err = map_user("jama", &user).unwrap_err();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "user 123 (jane.doe) has no `active` flag",
    );
    let err = map_user("jama", &json!({ "id": 5, "active": true })).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot read a user (id 5)") && text.contains("username"),
        "{text}"
    );
}

#[test]
fn maps_groups_and_members() {
    let record = map_group("jama", &sheet_group()).unwrap();
    assert_eq!(kind_id_name(&record), ("usergroup", "7", "Reviewers"));
    assert_eq!(
        Value::Object(record.attributes),
        json!({ "description": "Can review" })
    );
    let scoped = map_group("jama", &json!({ "id": 8, "name": "P", "project": 20 })).unwrap();
    assert_eq!(Value::Object(scoped.attributes), json!({ "project": 20 }));
    assert!(map_group("jama", &json!({ "id": 9 }))
        .unwrap_err()
        .to_string()
        .contains("cannot read a user group (id 9)"));

    let group = GroupRef {
        id: "7".into(),
        name: "Reviewers".into(),
    };
    let grants = map_members("jama", &group, &[sheet_user(), json!({ "id": 124 })]).unwrap();
    assert_eq!(
        grants,
        vec![
            grant("123", "usergroup", "7", "Reviewers"),
            grant("124", "usergroup", "7", "Reviewers"),
        ]
    );
}

#[test]
fn reads_jama_and_oauth_error_bodies() {
    let body =
        br#"{"meta":{"status":"Bad Request","timestamp":"x","message":"Username already exists"}}"#;
    assert_eq!(
        error_message(body).as_deref(),
        Some("Username already exists")
    );
    assert_eq!(
        error_message(
            br#"{"error":"invalid_client","error_description":"Bad client credentials"}"#
        )
        .as_deref(),
        Some("invalid_client: Bad client credentials")
    );
    assert_eq!(
        error_message(br#"{"meta":{"status":"Too Many Requests"}}"#),
        None
    );
    assert_eq!(error_message(b"<html>"), None);
}

#[test]
fn the_api_root_is_appended_to_the_tenant_url() {
    for base in [
        "https://jama.example",
        "https://jama.example/",
        "https://jama.example/?x=1",
    ] {
        let root = api_root("jama", &Url::parse(base).unwrap()).unwrap();
        assert_eq!(root.as_str(), "https://jama.example/rest/v1");
    }
    let root = api_root("jama", &Url::parse("https://host/jama/").unwrap()).unwrap();
    assert_eq!(root.as_str(), "https://host/jama/rest/v1");
}

/// A target config pointing at `base`.
fn config(base: &str, extra: &str) -> TargetConfig {
    let credentials = format!("client_id = \"idsync\"\nclient_secret = \"{SECRET}\"\n{extra}");
    target_config("jama", base, &credentials)
}

/// A mock server with the token endpoint answering [`TOKEN`].
async fn jama() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600 }),
        ))
        .mount(&server)
        .await;
    server
}

fn connector(server: &MockServer, extra: &str) -> JamaConnector {
    JamaConnector::build("jama", &config(&server.uri(), extra)).unwrap()
}

fn user(id: u64) -> Value {
    json!({ "id": id, "username": format!("user{id}"), "firstName": "U", "lastName": format!("{id}"),
            "email": format!("user{id}@example.com"), "active": id % 3 != 0, "licenseType": "NAMED",
            "type": "users" })
}

/// A paged listing of `total` records made by `record`, clamped at 50 per page like Jama,
/// computed from `startAt` / `maxResults`.
struct Listing {
    total: u64,
    record: fn(u64) -> Value,
    /// Serve a `resultCount` one less than the data held.
    miscount: bool,
    served: AtomicU64,
}

impl Listing {
    fn new(total: u64, record: fn(u64) -> Value) -> Self {
        Self {
            total,
            record,
            miscount: false,
            served: AtomicU64::new(0),
        }
    }
}

fn query(request: &Request, name: &str) -> Option<u64> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.parse().unwrap())
}

impl wiremock::Respond for Listing {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.served.fetch_add(1, Ordering::SeqCst);
        let start = query(request, "startAt").unwrap_or(0);
        let max = query(request, "maxResults").unwrap_or(20).min(50);
        let data: Vec<Value> = (start..(start + max).min(self.total))
            .map(|i| (self.record)(i + 1))
            .collect();
        let mut body = envelope(data, start, self.total);
        if self.miscount {
            let count = body["meta"]["pageInfo"]["resultCount"].as_u64().unwrap();
            body["meta"]["pageInfo"]["resultCount"] = json!(count.saturating_sub(1));
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

#[tokio::test]
async fn pages_all_users_when_asking_for_more_than_jama_serves() {
    let server = jama().await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/users"))
        .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("includeInactive", "true"))
        .respond_with(Listing::new(137, user))
        .mount(&server)
        .await;
    let connector = connector(&server, "page_size = 100");
    let pages: Vec<Vec<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [50, 50, 37]);
    let ids: HashSet<String> = pages.iter().flatten().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), 137, "no record skipped");
    assert_eq!(pages[2][36].name, "user137");
    assert_eq!(pages[0][2].status, AccountStatus::Inactive);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        queries(&requests, "/rest/v1/users"),
        [
            "startAt=0&maxResults=100&includeInactive=true",
            "startAt=50&maxResults=100&includeInactive=true",
            "startAt=100&maxResults=100&includeInactive=true",
        ]
    );
    assert_eq!(queries(&requests, "/rest/oauth/token").len(), 1);
}

#[tokio::test]
async fn asks_for_fifty_by_default_and_fails_on_a_miscounted_page() {
    let server = jama().await;
    Mock::given(path("/rest/v1/users"))
        .respond_with(Listing {
            miscount: true,
            ..Listing::new(120, user)
        })
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let err = read_error(connector.accounts()).await;
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(
        err.to_string().contains(
            "inconsistent paging of users: the page at startAt 0 says resultCount 49 but holds 50"
        ),
        "{err}"
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        queries(&requests, "/rest/v1/users"),
        ["startAt=0&maxResults=50&includeInactive=true"]
    );
}

fn group(id: u64) -> Value {
    json!({ "id": id, "name": format!("group{id}"), "description": "d", "project": null })
}

#[tokio::test]
async fn reads_groups_as_entitlements() {
    let server = jama().await;
    Mock::given(path("/rest/v1/usergroups"))
        .respond_with(Listing::new(60, group))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let records = read_all(connector.entitlements()).await;
    assert_eq!(records.len(), 60);
    assert!(records.iter().all(|r| r.entitlement_type == "usergroup"));
    assert_eq!(records[59].name, "group60");
}

#[tokio::test]
async fn reads_the_members_of_every_group_as_grants() {
    let server = jama().await;
    Mock::given(path("/rest/v1/usergroups"))
        .respond_with(Listing::new(3, group))
        .mount(&server)
        .await;
    // Group 1: 70 members (two pages), group 2: none, group 3: two.
    Mock::given(path("/rest/v1/usergroups/1/users"))
        .respond_with(Listing::new(70, user))
        .mount(&server)
        .await;
    Mock::given(path("/rest/v1/usergroups/2/users"))
        .respond_with(Listing::new(0, user))
        .mount(&server)
        .await;
    Mock::given(path("/rest/v1/usergroups/3/users"))
        .respond_with(Listing::new(2, user))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let pages: Vec<Vec<GrantRecord>> = connector.grants().try_collect().await.unwrap();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [50, 20, 2]);
    let last = &pages[2][1];
    assert_eq!(
        (
            last.account_id.as_str(),
            last.entitlement_id.as_str(),
            last.entitlement_name.as_deref()
        ),
        ("2", "3", Some("group3"))
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        queries(&requests, "/rest/v1/usergroups/1/users"),
        ["startAt=0&maxResults=50", "startAt=50&maxResults=50"]
    );
    assert_eq!(queries(&requests, "/rest/v1/usergroups/2/users").len(), 1);
}

#[tokio::test]
async fn a_failing_member_read_ends_the_grant_stream() {
    let server = jama().await;
    Mock::given(path("/rest/v1/usergroups"))
        .respond_with(Listing::new(2, group))
        .mount(&server)
        .await;
    Mock::given(path("/rest/v1/usergroups/1/users"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(
                json!({ "meta": { "status": "Forbidden", "message": "Not allowed." } }),
            ),
        )
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let mut stream = connector.grants();
    let err = stream.try_next().await.unwrap_err();
    assert_error(&err, ErrorClass::Forbidden, "Not allowed.");
    assert!(stream.next().await.is_none(), "nothing after an error");
    let requests = server.received_requests().await.unwrap();
    assert!(queries(&requests, "/rest/v1/usergroups/2/users").is_empty());
}

#[tokio::test]
async fn test_connection_fetches_a_token_and_reads_one_user() {
    let server = jama().await;
    Mock::given(path("/rest/v1/users"))
        .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(Listing::new(3, user))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    connector.test_connection().await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        queries(&requests, "/rest/v1/users"),
        ["startAt=0&maxResults=1"]
    );
    assert_eq!(queries(&requests, "/rest/oauth/token").len(), 1);
}

#[tokio::test]
async fn a_rejected_secret_fails_test_connection_clearly() {
    let server = MockServer::start().await;
    Mock::given(path("/rest/oauth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({ "error": "unauthorized", "error_description": format!("bad secret {SECRET}") }),
        ))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let err = connector.test_connection().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    let text = format!("{err} {err:?} {connector:?}");
    assert!(
        text.contains("client_id or client_secret rejected by target jama"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
}

#[test]
fn defaults_pace_at_ten_per_second_and_declare_the_operations() {
    let connector =
        JamaConnector::build("jama", &config_with_pacing("https://jama.example")).unwrap();
    let windows = pacing(&connector.http);
    assert_eq!(windows, [(10, 1)]);
    assert_eq!(connector.core.page_size(), 50);
    assert_eq!(connector.capabilities().entitlement_types, ["usergroup"]);
    let declared: Vec<(String, Option<String>)> = connector
        .capabilities()
        .operations
        .iter()
        .map(|c| (c.operation.to_string(), c.entitlement_type.clone()))
        .collect();
    let group = Some("usergroup".to_string());
    assert_eq!(
        declared,
        [
            ("create_account".to_string(), None),
            ("update_account".to_string(), None),
            ("enable_account".to_string(), None),
            ("disable_account".to_string(), None),
            ("add_access".to_string(), group.clone()),
            ("remove_access".to_string(), group),
        ]
    );
    assert!(!connector
        .capabilities()
        .operations
        .iter()
        .any(|c| c.operation == Operation::RemoveAccount));
}

fn config_with_pacing(base: &str) -> TargetConfig {
    toml::from_str(&format!(
        "kind = \"jama\"\nbase_url = \"{base}\"\nclient_id = \"c\"\nclient_secret = \"s\""
    ))
    .unwrap()
}

#[test]
fn missing_credentials_are_clear_build_errors() {
    let config: TargetConfig =
        toml::from_str("kind = \"jama\"\nbase_url = \"https://jama.example\"").unwrap();
    let err = JamaConnector::build("jama", &config).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("client_id: is required for kind = \"jama\""),
        "{text}"
    );
    assert!(
        text.contains("client_secret: is required"),
        "every problem at once: {text}"
    );
}

fn jane() -> Value {
    json!({ "firstname": "Jane", "lastname": "Doe", "email": "Jane.Doe@example.com",
            "phonenumber": "555-0100", "title": "Engineer", "username": "jane.doe",
            "department": "R&D" })
}

/// Records the bodies of `POST /rest/v1/users` and answers `status` with `body`.
struct Recorder {
    bodies: Arc<Mutex<Vec<Value>>>,
    status: u16,
    body: Value,
}

impl wiremock::Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.bodies
            .lock()
            .unwrap()
            .push(request.body_json().unwrap());
        ResponseTemplate::new(self.status).set_body_json(self.body.clone())
    }
}

async fn users_post(server: &MockServer, status: u16, body: Value) -> Arc<Mutex<Vec<Value>>> {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/rest/v1/users"))
        .respond_with(Recorder {
            bodies: bodies.clone(),
            status,
            body,
        })
        .mount(server)
        .await;
    bodies
}

fn created(id: u64) -> Value {
    json!({ "meta": { "status": "Created", "timestamp": "2026-05-26T16:11:23.071+0000",
                      "location": format!("https://jama.example/rest/v1/users/{id}"), "id": id } })
}

#[tokio::test]
async fn create_account_posts_the_user_with_a_fresh_password_and_reads_meta_id() {
    let server = jama().await;
    let bodies = users_post(&server, 201, created(321)).await;
    let connector = connector(&server, "");
    let task = request(Operation::CreateAccount, None, jane());
    for _ in 0..2 {
        let outcome = provisioned(&connector, &task).await;
        assert_eq!(outcome, done(Some("321")));
    }
    let bodies = bodies.lock().unwrap().clone();
    let mut first = bodies[0].clone();
    let password = first["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), PASSWORD_LENGTH);
    assert_ne!(bodies[1]["password"], first["password"], "one per attempt");
    first.as_object_mut().unwrap().remove("password");
    assert_eq!(
        first,
        json!({ "username": "jane.doe", "firstName": "Jane", "lastName": "Doe",
                "email": "Jane.Doe@example.com", "phone": "555-0100", "title": "Engineer",
                "licenseType": "NAMED" })
    );
}

#[tokio::test]
async fn create_account_takes_the_license_type_and_falls_back_to_location() {
    let server = jama().await;
    let bodies = users_post(
        &server,
        201,
        json!({ "meta": { "status": "Created", "location": "https://jama.example/rest/v1/users/77" } }),
    )
    .await;
    let connector = connector(&server, "");
    let mut attributes = jane();
    attributes["license_type"] = json!("STAKEHOLDER");
    let outcome = provisioned(
        &connector,
        &request(Operation::CreateAccount, None, attributes),
    )
    .await;
    assert_eq!(outcome, done(Some("77")));
    assert_eq!(bodies.lock().unwrap()[0]["licenseType"], "STAKEHOLDER");
}

#[tokio::test]
async fn create_account_needs_names_and_email_and_sends_nothing_without_them() {
    let server = jama().await;
    let connector = connector(&server, "");
    let task = request(
        Operation::CreateAccount,
        None,
        json!({ "firstname": "Jane", "lastname": " " }),
    );
    let err = refused(&connector, &task).await;
    assert_error(
        &err,
        ErrorClass::Permanent,
        "create_account needs the attribute(s) lastname, email",
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_rejected_create_never_shows_the_password() {
    let server = jama().await;
    Mock::given(method("POST"))
        .and(path("/rest/v1/users"))
        .respond_with(|request: &Request| {
            let body: Value = request.body_json().unwrap();
            let password = body["password"].as_str().unwrap().to_string();
            ResponseTemplate::new(400).set_body_json(json!({
                "meta": { "status": "Bad Request", "message": format!("password {password} violates policy") }
            }))
        })
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let err = refused(&connector, &request(Operation::CreateAccount, None, jane())).await;
    assert_eq!(err.class(), ErrorClass::Permanent);
    let text = err.to_string();
    assert!(
        text.contains("password [REDACTED] violates policy"),
        "{text}"
    );
}

/// `GET /rest/v1/users?username=…` answering with `users` (the filter applied by the mock).
async fn users_named(server: &MockServer, users: Vec<Value>) {
    let total = users.len() as u64;
    Mock::given(method("GET"))
        .and(path("/rest/v1/users"))
        .and(query_param("username", "jane.doe"))
        .and(query_param("includeInactive", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(users, 0, total)))
        .mount(server)
        .await;
}

fn duplicate() -> Value {
    json!({ "meta": { "status": "Bad Request", "message": "Username 'jane.doe' already exists." } })
}

#[tokio::test]
async fn a_duplicate_with_the_tasks_email_is_already_done_with_its_id() {
    let server = jama().await;
    users_post(&server, 400, duplicate()).await;
    let mut existing = user(55);
    existing["username"] = json!("Jane.Doe");
    existing["email"] = json!("jane.doe@EXAMPLE.com");
    users_named(&server, vec![user(54), existing]).await;
    let connector = connector(&server, "");
    let outcome = provisioned(&connector, &request(Operation::CreateAccount, None, jane())).await;
    assert_eq!(outcome, already_done(Some("55")));
}

#[tokio::test]
async fn a_duplicate_held_by_someone_else_is_permanent() {
    let server = jama().await;
    users_post(&server, 400, duplicate()).await;
    let mut existing = user(56);
    existing["username"] = json!("jane.doe");
    existing["email"] = json!("other.jane@example.com");
    users_named(&server, vec![existing]).await;
    let connector = connector(&server, "");
    let err = refused(&connector, &request(Operation::CreateAccount, None, jane())).await;
    assert_error(
        &err,
        ErrorClass::Permanent,
        "username jane.doe taken by account id 56",
    );
}

#[tokio::test]
async fn a_duplicate_with_no_user_of_that_name_keeps_jamas_message() {
    let server = jama().await;
    users_post(&server, 400, duplicate()).await;
    users_named(&server, vec![user(57)]).await;
    let connector = connector(&server, "");
    let err = refused(&connector, &request(Operation::CreateAccount, None, jane())).await;
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test]
async fn update_account_puts_the_whole_user_with_the_changes() {
    let server = jama().await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/users/123"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "meta": { "status": "OK" }, "data": sheet_user() })),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/rest/v1/users/123"))
        .and(body_json(json!({
            "username": "jane.doe", "firstName": "Jane", "lastName": "Smith",
            "email": "jane.smith@example.com", "phone": "555-0100", "title": "Lead",
            "location": "Berlin", "licenseType": "NAMED"
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "meta": { "status": "OK" } })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let task = request(
        Operation::UpdateAccount,
        Some("123"),
        json!({ "lastname": "Smith", "email": "jane.smith@example.com", "title": "Lead",
                "firstname": "Jane", "department": "ignored" }),
    );
    let outcome = provisioned(&connector, &task).await;
    assert_eq!(outcome, done(Some("123")));
}

#[tokio::test]
async fn an_update_with_nothing_new_is_already_done_without_a_put() {
    let server = jama().await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/users/123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": sheet_user() })))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    assert_update_is_idempotent(&connector, "123", json!({ "title": "Engineer" })).await;
    let requests = server.received_requests().await.unwrap();
    assert!(!requests.iter().any(|r| r.method.as_str() == "PUT"));
    let err = refused(
        &connector,
        &request(Operation::UpdateAccount, None, json!({ "title": "x" })),
    )
    .await;
    assert!(
        err.to_string().contains("needs the account's Jama id"),
        "{err}"
    );
}

#[tokio::test]
async fn enable_and_disable_put_the_active_flag() {
    let server = jama().await;
    for active in [true, false] {
        Mock::given(method("PUT"))
            .and(path("/rest/v1/users/123/active"))
            .and(body_json(json!({ "active": active })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "meta": { "status": "OK" } })),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    let connector = connector(&server, "");
    for operation in [Operation::EnableAccount, Operation::DisableAccount] {
        let outcome = provisioned(&connector, &request(operation, Some("123"), json!({}))).await;
        assert_eq!(outcome, done(None));
    }
}

#[tokio::test]
async fn add_access_posts_the_user_and_counts_a_member_as_done() {
    let server = jama().await;
    Mock::given(method("POST"))
        .and(path("/rest/v1/usergroups/7/users"))
        .and(body_json(json!({ "user": 123 })))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({ "meta": { "status": "Created" } })),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/v1/usergroups/8/users"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({ "meta": { "status": "Bad Request", "message": "User already exists in group" } }),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/v1/usergroups/9/users"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({ "meta": { "status": "Bad Request", "message": "Invalid user" } }),
        ))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    assert_eq!(
        provisioned(
            &connector,
            &access(Operation::AddAccess, "123", "usergroup", "7")
        )
        .await,
        done(None)
    );
    assert_eq!(
        provisioned(
            &connector,
            &access(Operation::AddAccess, "123", "UserGroup", "8")
        )
        .await,
        already_done(None)
    );
    let err = refused(
        &connector,
        &access(Operation::AddAccess, "123", "usergroup", "9"),
    )
    .await;
    assert_error(&err, ErrorClass::Permanent, "Invalid user");
    let err = refused(
        &connector,
        &access(Operation::AddAccess, "123", "role", "7"),
    )
    .await;
    assert_eq!(err.class(), ErrorClass::Unsupported);
    let err = refused(
        &connector,
        &ProvisionRequest {
            account_id: Some("not-a-number".into()),
            ..access(Operation::AddAccess, "123", "usergroup", "7")
        },
    )
    .await;
    assert!(err.to_string().contains("is not a Jama user id"), "{err}");
}

#[tokio::test]
async fn remove_access_deletes_the_membership_and_counts_404_as_done() {
    let server = jama().await;
    Mock::given(method("DELETE"))
        .and(path("/rest/v1/usergroups/7/users/123"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "meta": { "status": "OK" } })),
        )
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/rest/v1/usergroups/8/users/123"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/rest/v1/usergroups/9/users/123"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({ "meta": { "status": "Not Found", "message": "User is not in group" } }),
        ))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    for (group, want) in [
        ("7", done(None)),
        ("8", done(None)),
        ("9", already_done(None)),
    ] {
        let outcome = provisioned(
            &connector,
            &access(Operation::RemoveAccess, "123", "usergroup", group),
        )
        .await;
        assert_eq!(outcome, want, "group {group}");
    }
}

#[tokio::test]
async fn remove_account_is_refused_with_the_reason() {
    let server = jama().await;
    let connector = connector(&server, "");
    let err = refused(
        &connector,
        &request(Operation::RemoveAccount, Some("123"), json!({})),
    )
    .await;
    assert_error(
        &err,
        ErrorClass::Unsupported,
        "Jama has no user delete; disable the account instead",
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn remove_with_the_disable_strategy_deactivates_the_user() {
    let server = jama().await;
    Mock::given(method("PUT"))
        .and(path("/rest/v1/users/123/active"))
        .and(body_json(json!({ "active": false })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "meta": { "status": "OK" } })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let connector = connector(&server, "remove_strategy = \"disable\"");
    assert!(connector
        .capabilities()
        .supports(Operation::RemoveAccount, None));
    let outcome = provisioned(
        &connector,
        &request(Operation::RemoveAccount, Some("123"), json!({})),
    )
    .await;
    assert_eq!(outcome, done(None));
    let default = connector_default_reason(&server);
    assert!(default.contains("remove_strategy"), "{default}");
}

fn connector_default_reason(server: &MockServer) -> String {
    connector(server, "").unsupported_reason(Operation::RemoveAccount, None)
}

#[tokio::test]
async fn lookup_finds_the_user_by_name_including_inactive_ones() {
    let server = jama().await;
    let mut existing = user(55);
    existing["username"] = json!("Jane.Doe");
    existing["active"] = json!(false);
    users_named(&server, vec![user(54), existing]).await;
    let connector = connector(&server, "");
    let found = connector.lookup_account("jane.doe").await.unwrap().unwrap();
    assert_eq!(found.id, "55");
    assert_eq!(found.status, AccountStatus::Inactive);
}

#[tokio::test]
async fn a_template_override_shapes_the_create_body_and_the_password_stays_secret() {
    let server = jama().await;
    let bodies = users_post(&server, 201, created(9)).await;
    let template = "templates.create_account = '''{\"username\": \"${ account.name }\", \
        \"password\": \"${ password }\", \"firstName\": \"${ user.firstname }\", \
        \"lastName\": \"${ user.lastname }\", \"email\": \"${ user.email }\", \
        \"licenseType\": \"STAKEHOLDER\", \"location\": \"${ user.department }\"}'''";
    let connector = connector(&server, template);
    provisioned(&connector, &request(Operation::CreateAccount, None, jane())).await;
    let mut body = bodies.lock().unwrap()[0].clone();
    assert_eq!(body["password"].as_str().unwrap().len(), PASSWORD_LENGTH);
    body.as_object_mut().unwrap().remove("password");
    assert_eq!(
        body,
        json!({ "username": "jane.doe", "firstName": "Jane", "lastName": "Doe",
                "email": "Jane.Doe@example.com", "licenseType": "STAKEHOLDER",
                "location": "R&D" })
    );
}

#[tokio::test]
async fn an_expired_token_mid_provisioning_is_refreshed_and_the_call_repeated() {
    let server = MockServer::start().await;
    let issued = Arc::new(AtomicU64::new(0));
    let counter = issued.clone();
    Mock::given(path("/rest/oauth/token"))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(
                json!({ "access_token": format!("t{n}"), "token_type": "bearer", "expires_in": 3600 }),
            )
        })
        .mount(&server)
        .await;
    Mock::given(path("/rest/v1/users/123/active"))
        .and(header("Authorization", "Bearer t2"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/rest/v1/users/123/active"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({ "meta": { "status": "Unauthorized", "message": "token expired" } }),
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let outcome = provisioned(
        &connector,
        &request(Operation::DisableAccount, Some("123"), json!({})),
    )
    .await;
    assert_eq!(outcome, done(None));
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}
