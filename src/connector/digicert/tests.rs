//! Unit tests of the DigiCert adapter: mapping on recorded fixtures, paging and
//! provisioning against wiremock and the simulator.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use serde_json::{json, Value};

use super::wire::{
    error_message, is_top_level, map_container, map_roles, map_user, map_user_grants,
};
use super::*;
use crate::connector::kit::testing::{
    access, account_summary, already_done, assert_error, assert_update_is_idempotent, done, grant,
    kind_id_name, pacing, provisioned, queries, read_all, read_error, refused, request,
    target_config,
};
use crate::connector::{Connector, ErrorClass, ProvisionOutcome, ProvisionRequest};
use crate::model::{AccountRecord, AccountStatus, Operation};

pub(super) const KEY: &str = "dc-key-UNMISTAKABLE-4b1d";

/// The user object of the target's API documentation, as recorded.
pub(super) fn sheet_user() -> Value {
    json!({ "id": 125038, "username": "jane.doe", "account_id": 1234,
      "first_name": "Jane", "last_name": "Doe", "email": "jane.doe@example.com",
      "job_title": "Engineer", "telephone": "555-0100", "status": "active",
      "container": { "id": 5, "public_id": "abc", "name": "Company", "parent_id": 0,
                     "template_id": 4, "ekey": "xyz", "is_active": true },
      "access_roles": [ { "id": 1, "name": "Administrator" } ],
      "type": "standard", "has_container_assignments": false })
}

#[test]
fn maps_the_sheets_user() {
    let record = map_user("dc", &sheet_user()).unwrap();
    assert_eq!(
        account_summary(&record),
        (
            "125038",
            "jane.doe",
            Some("Jane Doe"),
            Some("jane.doe@example.com"),
            AccountStatus::Active
        )
    );
    assert_eq!(
        Value::Object(record.attributes),
        json!({
            "first_name": "Jane", "last_name": "Doe", "job_title": "Engineer",
            "telephone": "555-0100", "container_id": 5, "container_name": "Company",
            "access_roles": [{ "id": 1, "name": "Administrator" }], "type": "standard"
        })
    );
}

#[test]
fn maps_a_user_with_only_the_required_fields() {
    let record = map_user(
        "dc",
        &json!({ "id": 7, "username": "svc", "status": "inactive" }),
    )
    .unwrap();
    assert_eq!(record.id, "7");
    assert_eq!(record.status, AccountStatus::Inactive);
    assert_eq!(record.display_name, None);
    assert_eq!(record.email, None);
    assert!(record.attributes.is_empty(), "{:?}", record.attributes);
    assert!(
        map_user_grants("dc", &json!({ "id": 7, "username": "svc" }))
            .unwrap()
            .is_empty()
    );

    let record = map_user(
        "dc",
        &json!({ "id": 8, "username": "x", "status": "active", "first_name": " Ann ",
                 "last_name": null, "email": "", "access_roles": null }),
    )
    .unwrap();
    assert_eq!(record.display_name.as_deref(), Some("Ann"));
    assert_eq!(record.email, None);
}

#[test]
fn a_bad_or_missing_status_is_malformed_and_named() {
    let mut user = sheet_user();
    user["status"] = json!("pending");
    let err = map_user("dc", &user).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    let text = err.to_string();
    assert!(
        text.contains("malformed response")
            && text.contains("`pending`")
            && text.contains("125038"),
        "{text}"
    );
    user.as_object_mut().unwrap().remove("status");
    assert!(map_user("dc", &user)
        .unwrap_err()
        .to_string()
        .contains("status missing"));
}

#[test]
fn a_user_without_a_username_is_malformed_and_named() {
    let err = map_user("dc", &json!({ "id": 9, "status": "active" })).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot read a user (id 9)") && text.contains("username"),
        "{text}"
    );
}

#[test]
fn maps_the_sheets_user_to_grants() {
    let grants = map_user_grants("dc", &sheet_user()).unwrap();
    assert_eq!(
        grants,
        vec![
            grant("125038", "role", "1", "Administrator"),
            grant("125038", "container", "5", "Company"),
        ]
    );
}

#[test]
fn maps_containers_and_roles() {
    let record = map_container(
        "dc",
        &json!({ "id": 5, "public_id": "abc", "name": "Company", "description": "HQ",
                 "parent_id": 0, "template_id": 4, "is_active": true, "ekey": "x" }),
    )
    .unwrap();
    assert_eq!(kind_id_name(&record), ("container", "5", "Company"));
    assert_eq!(
        Value::Object(record.attributes.clone()),
        json!({ "public_id": "abc", "description": "HQ", "parent_id": 0, "template_id": 4, "is_active": true })
    );
    assert!(is_top_level(&record.attributes));
    let child = map_container("dc", &json!({ "id": 6, "name": "Sub", "parent_id": 5 })).unwrap();
    assert!(!is_top_level(&child.attributes));
    assert!(is_top_level(
        &map_container("dc", &json!({ "id": 7, "name": "Bare" }))
            .unwrap()
            .attributes
    ));
    assert!(map_container("dc", &json!({ "id": 8 }))
        .unwrap_err()
        .to_string()
        .contains("cannot read a container (id 8)"));

    let roles = map_roles(
        "dc",
        &[
            json!({ "id": 1, "name": "Administrator" }),
            json!({ "id": 5 }),
        ],
    )
    .unwrap();
    assert_eq!(roles.len(), 2);
    assert_eq!(
        (
            roles[0].entitlement_type.as_str(),
            roles[0].id.as_str(),
            roles[0].name.as_str()
        ),
        ("role", "1", "Administrator")
    );
    assert_eq!(roles[1].name, "5");
}

#[test]
fn reads_digicert_error_bodies() {
    let body = br#"{"errors":[{"code":"not_found","message":"User not found."},{"code":"x"}]}"#;
    assert_eq!(
        error_message(body).as_deref(),
        Some("not_found: User not found.; x")
    );
    assert_eq!(error_message(b"<html>"), None);
    assert_eq!(error_message(br#"{"errors":[]}"#), None);
}

/// A target config pointing at `base`.
pub(super) fn config(base: &str, extra: &str) -> TargetConfig {
    let base_url = format!("{base}/services/v2");
    target_config(
        "digicert",
        &base_url,
        &format!("api_key = \"{KEY}\"\n{extra}"),
    )
}

fn user(id: u64) -> Value {
    json!({ "id": id, "username": format!("user{id}"), "first_name": "U", "last_name": format!("{id}"),
            "email": format!("user{id}@example.com"), "status": if id % 2 == 0 { "active" } else { "inactive" },
            "container": { "id": 5, "name": "Company" },
            "access_roles": [{ "id": 1 + id % 2, "name": if id % 2 == 0 { "Administrator" } else { "Limited User" } }] })
}

/// `GET /user` over `total` users, computing each page from the query.
struct Users {
    total: u64,
    /// The server's own page-size cap (echoed in `page.limit`).
    cap: u64,
    /// Ignore the offset (always serve the first page, echoing offset 0).
    stuck: bool,
    /// Add a user after each request.
    growing: bool,
    served: AtomicU64,
}

impl Users {
    fn new(total: u64) -> Self {
        Self {
            total,
            cap: 1000,
            stuck: false,
            growing: false,
            served: AtomicU64::new(0),
        }
    }
}

impl wiremock::Respond for Users {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query = |name: &str| -> u64 {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.parse().unwrap())
                .unwrap()
        };
        let served = self.served.fetch_add(1, Ordering::SeqCst);
        let total = if self.growing {
            self.total + served
        } else {
            self.total
        };
        let offset = if self.stuck { 0 } else { query("offset") };
        let limit = query("limit").min(self.cap);
        let users: Vec<Value> = (offset..(offset + limit).min(total))
            .map(|i| user(i + 1))
            .collect();
        ResponseTemplate::new(200).set_body_json(
            json!({ "users": users, "page": { "total": total, "limit": limit, "offset": offset } }),
        )
    }
}

async fn server_with(users: Users) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/services/v2/user"))
        .and(header("X-DC-DEVKEY", KEY))
        .respond_with(users)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn pages_through_2500_users() {
    let server = server_with(Users::new(2500)).await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let pages: Vec<Vec<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    let ids: HashSet<String> = pages.iter().flatten().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), 2500);
    assert_eq!(pages[2][499].name, "user2500");
    assert_eq!(
        queries(
            &server.received_requests().await.unwrap(),
            "/services/v2/user"
        ),
        [
            "offset=0&limit=1000",
            "offset=1000&limit=1000",
            "offset=2000&limit=1000"
        ]
    );
}

#[tokio::test]
async fn follows_a_server_that_clamps_the_page_size() {
    let server = server_with(Users {
        cap: 400,
        ..Users::new(2500)
    })
    .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let pages: Vec<Vec<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
    assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), 2500);
    assert_eq!(pages.len(), 7);
    let requests = queries(
        &server.received_requests().await.unwrap(),
        "/services/v2/user",
    );
    assert_eq!(requests[1], "offset=400&limit=1000");
}

#[tokio::test]
async fn a_page_that_ignores_the_offset_fails_rather_than_loops() {
    let server = server_with(Users {
        stuck: true,
        ..Users::new(2500)
    })
    .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let err = read_error(connector.accounts()).await;
    assert_error(
        &err,
        ErrorClass::Permanent,
        "asked for offset 1000 but the target returned offset 0",
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_total_that_changes_mid_read_fails() {
    let server = server_with(Users {
        growing: true,
        ..Users::new(2500)
    })
    .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let mut stream = connector.grants();
    let first = stream.try_next().await.unwrap().unwrap();
    assert_eq!(first.len(), 2000, "a role and a container per user");
    let err = stream.try_next().await.unwrap_err();
    assert!(
        err.to_string().contains("total changed from 2500 to 2501"),
        "{err}"
    );
    assert!(
        stream.try_next().await.unwrap().is_none(),
        "the stream ends after an error"
    );
}

#[tokio::test]
async fn a_bad_user_fails_its_page() {
    let server = MockServer::start().await;
    let mut bad = user(2);
    bad["status"] = json!("locked");
    Mock::given(path("/services/v2/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "users": [user(1), bad], "page": { "total": 4, "limit": 2, "offset": 0 } }),
        ))
        .mount(&server)
        .await;
    // Two pages of two: the first is bad, and nothing is read after it.
    let connector =
        DigicertConnector::build("dc", &config(&server.uri(), "page_size = 2")).unwrap();
    let mut stream = connector.accounts();
    let err = stream.try_next().await.unwrap_err();
    assert!(err.to_string().contains("`locked`"), "{err}");
    assert!(
        stream.next().await.is_none(),
        "the stream ends after an error"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn reads_containers_and_deduplicated_roles() {
    let server = MockServer::start().await;
    Mock::given(path("/services/v2/container"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "containers": [
                { "id": 5, "name": "Company", "parent_id": 0, "is_active": true },
                { "id": 6, "name": "Division", "parent_id": 5, "is_active": true },
                { "id": 9, "name": "Other company", "is_active": false },
            ]})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/services/v2/container/5/role"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "access_roles": [
            { "id": 1, "name": "Administrator" }, { "id": 2, "name": "Limited User" } ]})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/services/v2/container/9/role"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "access_roles": [
            { "id": 2, "name": "Limited User" }, { "id": 7, "name": "Custom" } ]})),
        )
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let records = read_all(connector.entitlements()).await;
    let keys: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.entitlement_type.clone(), r.id.clone()))
        .collect();
    let want: Vec<(String, String)> = [
        ("container", "5"),
        ("container", "6"),
        ("container", "9"),
        ("role", "1"),
        ("role", "2"),
        ("role", "7"),
    ]
    .iter()
    .map(|(t, i)| (t.to_string(), i.to_string()))
    .collect();
    assert_eq!(keys, want);
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert!(
        !paths.contains(&"/services/v2/container/6/role".to_string()),
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_failing_role_read_fails_the_entitlement_stream() {
    let server = MockServer::start().await;
    Mock::given(path("/services/v2/container"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "containers": [{ "id": 5, "name": "C" }] })),
        )
        .mount(&server)
        .await;
    Mock::given(path("/services/v2/container/5/role"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({ "errors": [{ "code": "access_denied|missing_permission", "message": "No." }] }),
        ))
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let err = read_error(connector.entitlements()).await;
    assert_error(
        &err,
        ErrorClass::Forbidden,
        "access_denied|missing_permission: No.",
    );
}

#[tokio::test]
async fn test_connection_reads_one_user_with_the_key() {
    let server = server_with(Users::new(3)).await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    connector.test_connection().await.unwrap();
    assert_eq!(
        queries(
            &server.received_requests().await.unwrap(),
            "/services/v2/user"
        ),
        ["offset=0&limit=1"]
    );
}

#[tokio::test]
async fn a_rejected_key_is_an_auth_error_that_never_shows_the_key() {
    let server = MockServer::start().await;
    Mock::given(path("/services/v2/user"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({ "errors": [{ "code": "invalid_api_key", "message": format!("The API key {KEY} is invalid.") }] }),
        ))
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let err = connector.test_connection().await.unwrap_err();
    assert_error(&err, ErrorClass::Auth, "invalid_api_key");
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{connector:?}"),
    ] {
        assert!(!text.contains(KEY), "{text}");
    }
}

#[tokio::test]
async fn the_key_header_name_is_configurable() {
    let server = MockServer::start().await;
    Mock::given(path("/services/v2/user"))
        .and(header("x-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "users": [] })))
        .mount(&server)
        .await;
    let connector = DigicertConnector::build(
        "dc",
        &config(&server.uri(), "api_key_header = \"x-api-key\""),
    )
    .unwrap();
    connector.test_connection().await.unwrap();
}

fn declared(connector: &DigicertConnector) -> Vec<(String, Option<String>)> {
    connector
        .capabilities()
        .operations
        .iter()
        .map(|c| (c.operation.to_string(), c.entitlement_type.clone()))
        .collect()
}

#[test]
fn capabilities_follow_the_disable_strategy_and_container_move() {
    let connector = DigicertConnector::build("dc", &config("https://dc.example", "")).unwrap();
    assert_eq!(
        connector.capabilities().entitlement_types,
        ["role", "container"]
    );
    let role = Some("role".to_string());
    let container = Some("container".to_string());
    let mut want = vec![
        ("create_account".to_string(), None),
        ("update_account".to_string(), None),
        ("remove_account".to_string(), None),
        ("add_access".to_string(), role.clone()),
        ("remove_access".to_string(), role.clone()),
    ];
    assert_eq!(declared(&connector), want);
    let caps = connector.capabilities();
    assert!(!caps.supports(Operation::AddAccess, Some("Container")));
    assert!(connector
        .unsupported_reason(Operation::AddAccess, Some("container"))
        .contains("documents no call that moves a user"));
    assert!(!caps.supports(Operation::RemoveAccess, Some("container")));
    assert!(!caps.supports(Operation::DisableAccount, None));
    assert!(!caps.supports(Operation::EnableAccount, None));
    assert!(connector
        .unsupported_reason(Operation::DisableAccount, None)
        .contains("CertCentral has no enable/disable call"));
    assert!(connector
        .unsupported_reason(Operation::RemoveAccess, Some("container"))
        .contains("exactly one container"));

    let deleting = DigicertConnector::build(
        "dc",
        &config("https://dc.example", "disable_strategy = \"delete\""),
    )
    .unwrap();
    want.insert(2, ("disable_account".to_string(), None));
    assert_eq!(declared(&deleting), want);
    assert!(!deleting
        .capabilities()
        .supports(Operation::EnableAccount, None));

    let moving = DigicertConnector::build(
        "dc",
        &config(
            "https://dc.example",
            "disable_strategy = \"delete\"\ncontainer_move = \"put_user\"",
        ),
    )
    .unwrap();
    want.insert(4, ("add_access".to_string(), container.clone()));
    assert_eq!(declared(&moving), want);
}

pub(super) fn jane() -> Value {
    json!({ "firstname": "Jane", "lastname": "Doe", "email": "Jane.Doe@example.com",
            "title": "Engineer", "phonenumber": "555-0100", "department": "R&D" })
}

#[tokio::test]
async fn create_posts_the_templated_body_and_reads_the_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/v2/user"))
        .and(header("X-DC-DEVKEY", KEY))
        .and(body_json(json!({
            "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
            "email": "Jane.Doe@example.com", "job_title": "Engineer", "telephone": "555-0100",
            "access_roles": [{ "id": 5 }]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 1538858 })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/services/v2/user"))
        .and(body_json(json!({
            "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
            "email": "j@example.com", "container": { "id": 7 }, "access_roles": [{ "id": 3 }]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 2 })))
        .expect(1)
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let outcome = provisioned(&connector, &request(Operation::CreateAccount, None, jane())).await;
    assert_eq!(outcome, done(Some("1538858")));
    let with_role = ProvisionRequest {
        entitlement: Some(("role".into(), "3".into())),
        ..request(
            Operation::CreateAccount,
            None,
            json!({ "firstname": "Jane", "lastname": "Doe", "email": "j@example.com", "container_id": 7 }),
        )
    };
    assert_eq!(provisioned(&connector, &with_role).await, done(Some("2")));
}

#[tokio::test]
async fn create_refuses_bad_input_before_sending() {
    let server = MockServer::start().await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let err = refused(
        &connector,
        &request(
            Operation::CreateAccount,
            None,
            json!({ "firstname": "Jane" }),
        ),
    )
    .await;
    assert!(
        err.to_string()
            .contains("create_account needs the attribute(s) lastname, email"),
        "{err}"
    );
    let mut attributes = jane();
    attributes["container_id"] = json!("top");
    let err = refused(
        &connector,
        &request(Operation::CreateAccount, None, attributes),
    )
    .await;
    assert!(err.to_string().contains("container_id"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_template_override_shapes_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/v2/user"))
        .and(body_json(json!({
            "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
            "email": "Jane.Doe@example.com", "job_title": "R&D / 9",
            "access_roles": [{ "id": 5 }]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 3 })))
        .expect(1)
        .mount(&server)
        .await;
    let template = r#"templates.create_account = '''
{"username": "${ account.name }", "first_name": "${ user.firstname }", "last_name": "${ user.lastname }",
 "email": "${ user.email }", "job_title": "${ user.department } / ${ task.id }",
 "access_roles": [{"id": ${ entitlementValue.entitlementID }}]}'''"#;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), template)).unwrap();
    provisioned(&connector, &request(Operation::CreateAccount, None, jane())).await;
    let broken = DigicertConnector::build(
        "dc",
        &config(
            &server.uri(),
            "templates.create_account = '{\"u\": \"${ user.x'",
        ),
    )
    .unwrap_err();
    assert!(
        broken
            .to_string()
            .contains("targets.dc.templates.create_account"),
        "{broken}"
    );
}

#[tokio::test]
async fn remove_deletes_and_counts_404_as_done() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/services/v2/user/11"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/services/v2/user/12"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({ "errors": [{ "code": "not_found", "message": "User not found." }] }),
        ))
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    assert_eq!(
        provisioned(
            &connector,
            &request(Operation::RemoveAccount, Some("11"), json!({}))
        )
        .await,
        done(None)
    );
    assert_eq!(
        provisioned(
            &connector,
            &request(Operation::RemoveAccount, Some("12"), json!({}))
        )
        .await,
        already_done(None)
    );
}

#[tokio::test]
async fn update_puts_the_whole_user_with_the_changes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/services/v2/user/125038"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sheet_user()))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/services/v2/user/125038"))
        // Edit user's documented fields only: no roles, no container.
        .and(body_json(json!({
            "username": "jane.doe", "first_name": "Jane", "last_name": "Smith",
            "email": "jane.doe@example.com", "job_title": "Engineer", "telephone": "555-0100"
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let outcome = provisioned(
        &connector,
        &request(
            Operation::UpdateAccount,
            Some("125038"),
            json!({ "lastname": "Smith", "department": "ignored" }),
        ),
    )
    .await;
    assert_eq!(outcome, done(Some("125038")));
    assert_update_is_idempotent(&connector, "125038", json!({ "title": "Engineer" })).await;
}

#[tokio::test]
async fn enable_and_disable_are_refused_unless_disable_deletes() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/services/v2/user/11"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    for operation in [Operation::EnableAccount, Operation::DisableAccount] {
        let err = refused(&connector, &request(operation, Some("11"), json!({}))).await;
        assert_error(
            &err,
            ErrorClass::Unsupported,
            "CertCentral has no enable/disable call",
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    let deleting = DigicertConnector::build(
        "dc",
        &config(&server.uri(), "disable_strategy = \"delete\""),
    )
    .unwrap();
    assert_eq!(
        provisioned(
            &deleting,
            &request(Operation::DisableAccount, Some("11"), json!({}))
        )
        .await,
        done(None)
    );
    let err = refused(
        &deleting,
        &request(Operation::EnableAccount, Some("11"), json!({})),
    )
    .await;
    assert_eq!(err.class(), ErrorClass::Unsupported);
}

// --- Against the DigiCert simulator. ---

async fn sim() -> (idsync_sim::DigicertServer, DigicertConnector) {
    let server = idsync_sim::DigicertSim::start(
        idsync_sim::DigicertSimConfig {
            seed: idsync_sim::DigicertSeed::empty(),
            rate_limits: Vec::new(),
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let config: TargetConfig = toml::from_str(&format!(
        "kind = \"digicert\"\nbase_url = \"{}\"\napi_key = \"{}\"\nrate_limit = []\n\
         read_retry = {{ max_attempts = 1 }}\ndisable_strategy = \"delete\"",
        server.base_url(),
        server.control().api_key()
    ))
    .unwrap();
    let connector = DigicertConnector::build("dc", &config).unwrap();
    (server, connector)
}

pub(super) fn sim_user(
    server: &idsync_sim::DigicertServer,
    id: &str,
) -> Option<idsync_sim::SimUser> {
    server
        .control()
        .users()
        .into_iter()
        .find(|user| user.id.to_string() == id)
}

pub(super) fn created_id(outcome: ProvisionOutcome) -> String {
    match outcome {
        ProvisionOutcome::Done {
            account_id: Some(id),
        } => id,
        other => panic!("not created: {other:?}"),
    }
}

#[tokio::test]
async fn sim_create_duplicates_and_lookup() {
    let (server, connector) = sim().await;
    let with_role = ProvisionRequest {
        entitlement: Some(("role".into(), "4".into())),
        ..request(Operation::CreateAccount, None, jane())
    };
    let id = created_id(provisioned(&connector, &with_role).await);
    let user = sim_user(&server, &id).unwrap();
    assert_eq!(
        (
            user.username.as_str(),
            user.email.as_str(),
            user.access_roles.clone()
        ),
        ("jane.doe", "Jane.Doe@example.com", vec![4])
    );
    assert_eq!(user.job_title.as_deref(), Some("Engineer"));

    // Again, same email: the same person.
    let mut same = jane();
    same["email"] = json!("jane.doe@EXAMPLE.com");
    assert_eq!(
        provisioned(&connector, &request(Operation::CreateAccount, None, same)).await,
        ProvisionOutcome::AlreadyDone {
            account_id: Some(id.clone())
        }
    );
    // Someone else with that name.
    let mut other = jane();
    other["email"] = json!("other.jane@example.com");
    let err = refused(&connector, &request(Operation::CreateAccount, None, other)).await;
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(
        err.to_string()
            .contains(&format!("username jane.doe taken by account id {id}")),
        "{err}"
    );
    // DigiCert's own words for a username it does not accept.
    let bad = ProvisionRequest {
        account_name: "jane doe!".into(),
        ..request(Operation::CreateAccount, None, jane())
    };
    let err = refused(&connector, &bad).await;
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(
        err.to_string().contains("invalid_field|username") && err.to_string().contains("HTTP 400"),
        "{err}"
    );

    let found = connector.lookup_account("JANE.DOE").await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), found.name.as_str()),
        (id.as_str(), "jane.doe")
    );
    assert_eq!(connector.lookup_account("jane").await.unwrap(), None);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn sim_update_roles_and_remove() {
    let (server, connector) = sim().await;
    let id =
        created_id(provisioned(&connector, &request(Operation::CreateAccount, None, jane())).await);
    assert_eq!(sim_user(&server, &id).unwrap().access_roles, [5]);

    // Update: Edit user with every documented field, so the title and phone stay.
    provisioned(
        &connector,
        &request(
            Operation::UpdateAccount,
            Some(&id),
            json!({ "lastname": "Smith" }),
        ),
    )
    .await;
    let user = sim_user(&server, &id).unwrap();
    assert_eq!(user.last_name, "Smith");
    assert_eq!(user.job_title.as_deref(), Some("Engineer"));
    assert_eq!(user.telephone.as_deref(), Some("555-0100"));

    // Roles: add, add again, remove, remove again, the last one refused.
    let add = access(Operation::AddAccess, &id, "role", "2");
    assert_eq!(provisioned(&connector, &add).await, done(None));
    assert_eq!(sim_user(&server, &id).unwrap().access_roles, [2, 5]);
    assert_eq!(provisioned(&connector, &add).await, already_done(None));
    let remove = access(Operation::RemoveAccess, &id, "Role", "5");
    assert_eq!(provisioned(&connector, &remove).await, done(None));
    assert_eq!(provisioned(&connector, &remove).await, already_done(None));
    let err = refused(
        &connector,
        &access(Operation::RemoveAccess, &id, "role", "2"),
    )
    .await;
    assert_error(&err, ErrorClass::Permanent, "last role");
    assert_eq!(sim_user(&server, &id).unwrap().access_roles, [2]);

    // Container: no move without container_move (see documented_api_tests); removal is not
    // supported.
    let err = refused(
        &connector,
        &access(Operation::AddAccess, &id, "container", "2"),
    )
    .await;
    assert_eq!(err.class(), ErrorClass::Unsupported);
    assert_eq!(sim_user(&server, &id).unwrap().container_id, 1);
    let err = refused(
        &connector,
        &access(Operation::RemoveAccess, &id, "container", "2"),
    )
    .await;
    assert_eq!(err.class(), ErrorClass::Unsupported);

    // Disable with the delete strategy, then remove: already gone.
    assert_eq!(
        provisioned(
            &connector,
            &request(Operation::DisableAccount, Some(&id), json!({}))
        )
        .await,
        done(None)
    );
    assert!(sim_user(&server, &id).is_none());
    assert_eq!(
        provisioned(
            &connector,
            &request(Operation::RemoveAccount, Some(&id), json!({}))
        )
        .await,
        already_done(None)
    );
    server.shutdown().await.unwrap();
}

#[test]
fn a_missing_key_is_a_clear_build_error() {
    let config: TargetConfig =
        toml::from_str("kind = \"digicert\"\nbase_url = \"https://dc.example/services/v2\"")
            .unwrap();
    let err = DigicertConnector::build("dc", &config).unwrap_err();
    assert!(
        err.to_string()
            .contains("api_key: is required for kind = \"digicert\""),
        "{err}"
    );
    let config: TargetConfig = toml::from_str(
        "kind = \"digicert\"\nbase_url = \"https://dc.example\"\napi_key = { env = \"IDSYNC_TEST_NO_SUCH_VAR_4B1D\" }",
    )
    .unwrap();
    let err = DigicertConnector::build("dc", &config).unwrap_err();
    assert!(
        err.to_string().contains("IDSYNC_TEST_NO_SUCH_VAR_4B1D"),
        "{err}"
    );
}

#[test]
fn paces_at_ninety_percent_of_the_documented_limits_by_default() {
    let config: TargetConfig = toml::from_str(&format!(
        "kind = \"digicert\"\nbase_url = \"https://dc.example\"\napi_key = \"{KEY}\""
    ))
    .unwrap();
    let connector = DigicertConnector::build("dc", &config).unwrap();
    let windows = pacing(&connector.http);
    assert_eq!(windows, [(90, 5), (900, 180)]);
}
