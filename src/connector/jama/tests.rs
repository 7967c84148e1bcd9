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
use super::wire::{error_message, map_group, map_members, map_user, map_user_ref, GroupRef};
use super::*;
use crate::connector::kit::testing::{
    access, account_summary, already_done, any_json, assert_error, assert_update_is_idempotent,
    done, grant, kind_id_name, noted, pacing, provisioned, queries, read_all, read_error,
    read_noted, refused, request, target_config,
};
use crate::connector::mapping::RAW_STATUS;
use crate::connector::password::PASSWORD_LENGTH;
use crate::connector::ErrorClass;
use crate::connector::{Anomaly, Connector, Page, ProvisionRequest};
use crate::model::{AccountRecord, AccountStatus, AnomalyKind, GrantRecord};

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

/// `value` mapped to an account, with what the mapping noted.
fn mapped_user(value: &Value) -> (AccountRecord, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let record = map_user("jama", value, &mut anomalies).unwrap();
    (record, anomalies)
}

#[test]
fn maps_the_sheets_user() {
    let (record, anomalies) = mapped_user(&sheet_user());
    assert!(anomalies.is_empty(), "{anomalies:?}");
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
    let (record, anomalies) = mapped_user(
        &json!({ "id": 9, "username": "svc", "active": false, "email": "",
                 "customData": [], "authenticationType": null, "phone": null }),
    );
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert_eq!(record.status, AccountStatus::Inactive);
    assert_eq!(record.display_name, None);
    assert_eq!(record.email, None);
    assert!(record.attributes.is_empty(), "{:?}", record.attributes);
}

#[test]
fn an_active_flag_that_is_absent_or_not_a_boolean_reads_as_inactive() {
    for (raw, detail) in [
        (None, "missing"),
        (Some(Value::Null), "missing"),
        (Some(json!("true")), "`true`"),
        (Some(json!(1)), "`1`"),
        (Some(json!("ACTIVE")), "`ACTIVE`"),
        (Some(json!({ "value": true })), r#"`{"value":true}`"#),
    ] {
        let mut value = sheet_user();
        match &raw {
            Some(raw) => value["active"] = raw.clone(),
            None => {
                value.as_object_mut().unwrap().remove("active");
            }
        }
        let (record, anomalies) = mapped_user(&value);
        assert_eq!(record.status, AccountStatus::Inactive, "{raw:?}");
        assert_eq!(
            record.attributes[RAW_STATUS],
            raw.clone().unwrap_or(Value::Null)
        );
        assert_eq!(record.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(noted(&anomalies), [(AnomalyKind::UnknownStatus, "active")]);
        assert_eq!(
            (anomalies[0].record.as_str(), anomalies[0].detail.as_str()),
            ("123", detail)
        );
    }
}

#[test]
fn each_field_of_an_unexpected_type_is_left_out_and_noted() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("email", json!([]), "email", "expected text, found a list"),
        (
            "firstName",
            json!(1),
            "firstName",
            "expected text, found a number",
        ),
        (
            "lastName",
            json!({}),
            "lastName",
            "expected text, found an object",
        ),
        (
            "phone",
            json!(5550100),
            "phone",
            "expected text, found a number",
        ),
        (
            "title",
            json!(false),
            "title",
            "expected text, found a boolean",
        ),
        (
            "location",
            json!(["Berlin"]),
            "location",
            "expected text, found a list",
        ),
        (
            "licenseType",
            json!(3),
            "licenseType",
            "expected text, found a number",
        ),
        (
            "customData",
            json!(5),
            "customData",
            "expected a list, found a number",
        ),
        (
            "customData",
            json!({ "costCenter": "42" }),
            "customData",
            "expected a list, found an object",
        ),
        (
            "authenticationType",
            json!("BASIC"),
            "authenticationType",
            "expected an object, found text",
        ),
        (
            "authenticationType",
            json!({ "name": 1 }),
            "authenticationType.name",
            "expected text, found a number",
        ),
    ];
    for (field, bad, path, detail) in cases {
        let mut value = sheet_user();
        value[field] = bad.clone();
        let (record, anomalies) = mapped_user(&value);
        assert_eq!(
            noted(&anomalies),
            [(AnomalyKind::BadField, path)],
            "{field}: {bad}"
        );
        assert_eq!(anomalies[0].detail, detail);
        assert_eq!(anomalies[0].record, "123");
        assert!(!record.attributes.contains_key(field), "{field}");
        assert_eq!(
            (record.id.as_str(), record.name.as_str()),
            ("123", "jane.doe")
        );
        assert_eq!(record.status, AccountStatus::Active);
        if field != "title" {
            assert_eq!(
                record.attributes["title"], "Engineer",
                "{field}: the rest is read"
            );
        }
    }
    let mut value = sheet_user();
    value["email"] = json!([]);
    assert_eq!(mapped_user(&value).0.email, None);
}

#[test]
fn a_user_that_cannot_be_told_apart_fails_the_read_naming_it() {
    for (value, needle) in [
        (
            json!({ "username": "a", "active": true }),
            "a user has no usable `id` (missing)",
        ),
        (
            json!({ "id": {}, "username": "a" }),
            "a user has no usable `id` (an object)",
        ),
        (
            json!({ "id": "", "username": "a" }),
            "a user has no usable `id` (blank)",
        ),
        (
            json!({ "id": 5, "active": true }),
            "user 5 has no usable `username` (missing)",
        ),
        (
            json!({ "id": 5, "username": null }),
            "user 5 has no usable `username` (null)",
        ),
        (
            json!({ "id": 5, "username": true }),
            "user 5 has no usable `username` (a boolean)",
        ),
        (json!(5), "a user is a number, not an object"),
    ] {
        let mut anomalies = Vec::new();
        let err = map_user("jama", &value, &mut anomalies).unwrap_err();
        assert_error(&err, ErrorClass::Permanent, needle);
        assert!(anomalies.is_empty());
    }
}

#[test]
fn maps_groups_and_members() {
    let mut anomalies = Vec::new();
    let record = map_group("jama", &sheet_group(), &mut anomalies).unwrap();
    assert_eq!(kind_id_name(&record), ("usergroup", "7", "Reviewers"));
    assert_eq!(
        Value::Object(record.attributes),
        json!({ "description": "Can review" })
    );
    let scoped = map_group(
        "jama",
        &json!({ "id": 8, "name": "P", "project": 20 }),
        &mut anomalies,
    )
    .unwrap();
    assert_eq!(Value::Object(scoped.attributes), json!({ "project": 20 }));
    assert!(anomalies.is_empty(), "{anomalies:?}");

    let group = GroupRef {
        id: "7".into(),
        name: "Reviewers".into(),
    };
    let grants = map_members(
        "jama",
        &group,
        &[sheet_user(), json!({ "id": 124, "email": [] })],
        &mut anomalies,
    )
    .unwrap();
    assert!(anomalies.is_empty(), "members are read for their id only");
    assert_eq!(
        grants,
        vec![
            grant("123", "usergroup", "7", "Reviewers"),
            grant("124", "usergroup", "7", "Reviewers"),
        ]
    );
}

#[test]
fn a_user_found_by_name_reads_a_bad_email_as_none_but_needs_its_identity() {
    let mut value = sheet_user();
    value["email"] = json!([]);
    value["active"] = json!("odd");
    let found = map_user_ref("jama", &value).unwrap();
    assert_eq!(
        (found.id.to_string(), found.username.as_str(), found.email),
        ("123".to_string(), "jane.doe", None)
    );
    let err = map_user_ref("jama", &json!({ "id": 5 })).err().unwrap();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "user 5 has no usable `username`",
    );
}

#[test]
fn groups_tolerate_bad_fields_but_not_a_missing_id() {
    let mut anomalies = Vec::new();
    let nameless = map_group(
        "jama",
        &json!({ "id": 9, "description": 4 }),
        &mut anomalies,
    )
    .unwrap();
    assert_eq!(kind_id_name(&nameless), ("usergroup", "9", "9"));
    assert!(nameless.attributes.is_empty());
    assert_eq!(
        noted(&anomalies),
        [
            (AnomalyKind::BadField, "name"),
            (AnomalyKind::BadField, "description")
        ]
    );
    let err = map_group("jama", &json!({ "name": "G" }), &mut anomalies).unwrap_err();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "a user group has no usable `id` (missing)",
    );

    let group = GroupRef {
        id: "7".into(),
        name: "Reviewers".into(),
    };
    let err = map_members(
        "jama",
        &group,
        &[json!({ "username": "x" })],
        &mut anomalies,
    )
    .unwrap_err();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "a group member has no usable `id` (missing)",
    );
}

/// The fields of a Jama user other than its identity (`id`, `username`), and some the
/// adapter does not read.
const USER_FIELDS: [&str; 13] = [
    "firstName",
    "lastName",
    "email",
    "phone",
    "title",
    "location",
    "licenseType",
    "active",
    "authenticationType",
    "customData",
    "avatarUrl",
    "type",
    "raw_status",
];

proptest::proptest! {
    #[test]
    fn any_values_outside_the_identity_never_fail_the_mapping(
        values in proptest::collection::vec(any_json(), USER_FIELDS.len()),
        present in proptest::collection::vec(proptest::bool::ANY, USER_FIELDS.len()),
    ) {
        let mut value = json!({ "id": 41, "username": "prop.user" });
        for ((field, field_value), present) in USER_FIELDS.iter().zip(values).zip(present) {
            if present {
                value[*field] = field_value;
            }
        }
        let mut anomalies = Vec::new();
        let record = map_user("jama", &value, &mut anomalies).unwrap();
        proptest::prop_assert_eq!(record.id.as_str(), "41");
        proptest::prop_assert_eq!(record.name.as_str(), "prop.user");
        proptest::prop_assert!(anomalies.iter().all(|anomaly| anomaly.record == "41"));
        let known = value.get("active").is_some_and(Value::is_boolean);
        proptest::prop_assert_eq!(record.attributes.contains_key(RAW_STATUS), !known);
        proptest::prop_assert_eq!(
            anomalies.iter().filter(|a| a.kind == AnomalyKind::UnknownStatus).count(),
            usize::from(!known)
        );
    }
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
    let pages: Vec<Page<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
    assert_eq!(
        pages
            .iter()
            .map(|page| page.records.len())
            .collect::<Vec<_>>(),
        [50, 50, 37]
    );
    assert!(pages.iter().all(|page| page.anomalies.is_empty()));
    let ids: HashSet<String> = pages
        .iter()
        .flat_map(|page| &page.records)
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(ids.len(), 137, "no record skipped");
    assert_eq!(pages[2].records[36].name, "user137");
    assert_eq!(pages[0].records[2].status, AccountStatus::Inactive);
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

/// A user whose `active` flag is text, and whose `email` is a list.
fn odd_user(id: u64) -> Value {
    let mut value = user(id);
    if id == 2 {
        value["active"] = json!("yes");
        value["email"] = json!([]);
    }
    value
}

#[tokio::test]
async fn the_account_stream_carries_what_the_mapping_tolerated() {
    let server = jama().await;
    Mock::given(path("/rest/v1/users"))
        .respond_with(Listing::new(3, odd_user))
        .mount(&server)
        .await;
    let (accounts, anomalies) = read_noted(connector(&server, "").accounts()).await;
    assert_eq!(accounts.len(), 3);
    assert_eq!(accounts[1].status, AccountStatus::Inactive);
    assert_eq!(accounts[1].attributes[RAW_STATUS], "yes");
    assert_eq!(accounts[1].email, None);
    assert_eq!(
        noted(&anomalies),
        [
            (AnomalyKind::UnknownStatus, "active"),
            (AnomalyKind::BadField, "email")
        ]
    );
}

#[tokio::test]
async fn a_user_without_a_username_fails_the_stream() {
    let server = jama().await;
    Mock::given(path("/rest/v1/users"))
        .respond_with(Listing::new(3, |id| {
            let mut value = user(id);
            if id == 3 {
                value["username"] = json!(null);
            }
            value
        }))
        .mount(&server)
        .await;
    let err = read_error(connector(&server, "").accounts()).await;
    assert_error(
        &err,
        ErrorClass::Permanent,
        "user 3 has no usable `username` (null)",
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
    let pages: Vec<Page<GrantRecord>> = connector.grants().try_collect().await.unwrap();
    // Groups are read side by side: pages of different groups may come in any order, a
    // group's own pages in order.
    let sizes = |group: &str| -> Vec<usize> {
        pages
            .iter()
            .filter(|page| page.records[0].entitlement_id == group)
            .map(|page| page.records.len())
            .collect()
    };
    assert_eq!(pages.len(), 3);
    assert_eq!(sizes("1"), [50, 20]);
    assert_eq!(sizes("3"), [2]);
    let last = pages
        .iter()
        .flat_map(|page| &page.records)
        .find(|grant| grant.entitlement_id == "3" && grant.account_id == "2")
        .unwrap();
    assert_eq!(last.entitlement_name.as_deref(), Some("group3"));
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
    Mock::given(path("/rest/v1/usergroups/2/users"))
        .respond_with(Listing::new(0, user))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let mut stream = connector.grants();
    let err = stream.try_next().await.unwrap_err();
    assert_error(&err, ErrorClass::Forbidden, "Not allowed.");
    // Nothing after an error, though group 2's members (read side by side) are fine.
    assert!(stream.next().await.is_none(), "nothing after an error");
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
