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
    access, account_summary, already_done, any_json, assert_error, assert_update_is_idempotent,
    done, grant, kind_id_name, noted, pacing, provisioned, queries, read_all, read_error,
    read_noted, refused, request, target_config,
};
use crate::connector::mapping::RAW_STATUS;
use crate::connector::{
    Anomaly, Connector, ConnectorError, ErrorClass, Page, ProvisionOutcome, ProvisionRequest,
};
use crate::model::{AccountRecord, AccountStatus, AnomalyKind, GrantRecord, Operation};

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

/// `value` mapped to an account, with what the mapping noted.
fn mapped_user(value: &Value) -> (AccountRecord, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let record = map_user("dc", value, &mut anomalies).unwrap();
    (record, anomalies)
}

/// `value` mapped to grants, with what the mapping noted.
fn mapped_grants(value: &Value) -> (Vec<GrantRecord>, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let grants = map_user_grants("dc", value, &mut anomalies).unwrap();
    (grants, anomalies)
}

/// The error of mapping `value`, which must fail.
fn unreadable_user(value: &Value) -> ConnectorError {
    let mut anomalies = Vec::new();
    let err = map_user("dc", value, &mut anomalies).unwrap_err();
    assert!(anomalies.is_empty(), "{anomalies:?}");
    err
}

#[test]
fn maps_the_sheets_user() {
    let (record, anomalies) = mapped_user(&sheet_user());
    assert!(anomalies.is_empty(), "{anomalies:?}");
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
    let (record, anomalies) =
        mapped_user(&json!({ "id": 7, "username": "svc", "status": "inactive" }));
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert_eq!(record.id, "7");
    assert_eq!(record.status, AccountStatus::Inactive);
    assert_eq!(record.display_name, None);
    assert_eq!(record.email, None);
    assert!(record.attributes.is_empty(), "{:?}", record.attributes);
    let (grants, anomalies) = mapped_grants(&json!({ "id": 7, "username": "svc" }));
    assert!(grants.is_empty() && anomalies.is_empty());

    let (record, anomalies) = mapped_user(
        &json!({ "id": 8, "username": "x", "status": "ACTIVE", "first_name": " Ann ",
                 "last_name": null, "email": "", "access_roles": null, "container": null }),
    );
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert_eq!(record.status, AccountStatus::Active);
    assert_eq!(record.display_name.as_deref(), Some("Ann"));
    assert_eq!(record.email, None);
}

#[test]
fn an_unknown_status_reads_as_inactive_with_the_raw_value_kept() {
    for (raw, detail) in [
        (json!("pending"), "`pending`"),
        (json!("Suspended "), "`Suspended `"),
        (json!(""), "``"),
        (json!(5), "`5`"),
        (json!(true), "`true`"),
        (json!({ "state": "x" }), r#"`{"state":"x"}`"#),
    ] {
        let mut value = sheet_user();
        value["status"] = raw.clone();
        let (record, anomalies) = mapped_user(&value);
        assert_eq!(record.status, AccountStatus::Inactive, "{raw}");
        assert_eq!(record.attributes[RAW_STATUS], raw);
        assert_eq!(record.name, "jane.doe");
        assert_eq!(record.attributes["first_name"], "Jane", "the rest is read");
        assert_eq!(
            anomalies,
            vec![Anomaly::unknown_status(
                "125038",
                "status",
                Some(&detail[1..detail.len() - 1])
            )]
        );
        assert_eq!(anomalies[0].detail, detail);
    }
}

#[test]
fn a_missing_status_reads_as_inactive_with_a_null_raw_value() {
    for value in [
        json!({ "id": 3, "username": "a" }),
        json!({ "id": 3, "username": "a", "status": null }),
    ] {
        let (record, anomalies) = mapped_user(&value);
        assert_eq!(record.status, AccountStatus::Inactive);
        assert_eq!(record.attributes[RAW_STATUS], Value::Null);
        assert_eq!(noted(&anomalies), [(AnomalyKind::UnknownStatus, "status")]);
        assert_eq!(anomalies[0].detail, "missing");
    }
}

#[test]
fn a_long_raw_status_is_quoted_short_but_kept_whole() {
    let long = "x".repeat(100);
    let (record, anomalies) = mapped_user(&json!({ "id": 3, "username": "a", "status": long }));
    assert_eq!(record.attributes[RAW_STATUS], json!(long));
    assert_eq!(anomalies[0].detail, format!("`{}…`", "x".repeat(40)));
}

#[test]
fn each_field_of_an_unexpected_type_is_left_out_and_noted() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "first_name",
            json!(42),
            "first_name",
            "expected text, found a number",
        ),
        (
            "last_name",
            json!(["Doe"]),
            "last_name",
            "expected text, found a list",
        ),
        (
            "email",
            json!({}),
            "email",
            "expected text, found an object",
        ),
        (
            "job_title",
            json!(true),
            "job_title",
            "expected text, found a boolean",
        ),
        (
            "telephone",
            json!(5550100),
            "telephone",
            "expected text, found a number",
        ),
        ("type", json!(1), "type", "expected text, found a number"),
        (
            "container",
            json!("x"),
            "container",
            "expected an object, found text",
        ),
        (
            "container",
            json!({}),
            "container.id",
            "expected an id, found missing",
        ),
        (
            "container",
            json!({ "id": [5] }),
            "container.id",
            "expected an id, found a list",
        ),
        (
            "container",
            json!({ "id": 1.5 }),
            "container.id",
            "expected an id, found a number that is not a whole number",
        ),
        (
            "access_roles",
            json!({}),
            "access_roles",
            "expected a list, found an object",
        ),
        (
            "access_roles",
            json!("Administrator"),
            "access_roles",
            "expected a list, found text",
        ),
    ];
    for (field, bad, path, detail) in cases {
        let mut value = sheet_user();
        value[field] = bad.clone();
        let (record, anomalies) = mapped_user(&value);
        assert_eq!(
            anomalies,
            vec![Anomaly::bad_field("125038", path, "", "")]
                .into_iter()
                .map(|a| Anomaly {
                    detail: detail.to_string(),
                    ..a
                })
                .collect::<Vec<_>>(),
            "{field}: {bad}"
        );
        assert_eq!(record.id, "125038");
        assert_eq!(record.name, "jane.doe");
        assert_eq!(record.status, AccountStatus::Active);
        let kept: Vec<&str> = record.attributes.keys().map(String::as_str).collect();
        let left_out: &[&str] = match field {
            "container" => &["container_id", "container_name"],
            other => &[other][..],
        };
        for key in left_out {
            assert!(!kept.contains(key), "{field}: {kept:?}");
        }
        if field != "job_title" {
            assert_eq!(record.attributes["job_title"], "Engineer", "{field}");
        }
    }
    let mut value = sheet_user();
    value["email"] = json!([]);
    assert_eq!(mapped_user(&value).0.email, None);
    value["first_name"] = json!(42);
    assert_eq!(mapped_user(&value).0.display_name.as_deref(), Some("Doe"));
}

#[test]
fn unreadable_entries_of_a_users_references_are_left_out_one_by_one() {
    let mut value = sheet_user();
    value["access_roles"] = json!([
        { "id": 1, "name": "Administrator" },
        "Limited User",
        { "name": "no id" },
        { "id": 4, "name": 4 },
    ]);
    value["container"] = json!({ "id": 5, "name": ["Company"] });
    let (record, anomalies) = mapped_user(&value);
    assert_eq!(
        noted(&anomalies),
        [
            (AnomalyKind::BadField, "container.name"),
            (AnomalyKind::BadField, "access_roles[1]"),
            (AnomalyKind::BadField, "access_roles[2].id"),
            (AnomalyKind::BadField, "access_roles[3].name"),
        ]
    );
    assert_eq!(record.attributes["container_id"], 5);
    assert!(!record.attributes.contains_key("container_name"));
    assert_eq!(
        record.attributes["access_roles"],
        json!([{ "id": 1, "name": "Administrator" }, { "id": 4, "name": null }])
    );

    let (grants, anomalies) = mapped_grants(&value);
    assert_eq!(
        grants,
        vec![
            grant("125038", "role", "1", "Administrator"),
            GrantRecord {
                entitlement_name: None,
                ..grant("125038", "role", "4", "")
            },
            GrantRecord {
                entitlement_name: None,
                ..grant("125038", "container", "5", "")
            },
        ]
    );
    assert_eq!(anomalies.len(), 4, "{anomalies:?}");
}

#[test]
fn grants_read_only_the_fields_they_need_and_skip_bad_ones() {
    let mut value = sheet_user();
    value["first_name"] = json!(42);
    value["status"] = json!("odd");
    value["container"] = json!("x");
    let (grants, anomalies) = mapped_grants(&value);
    assert_eq!(grants, vec![grant("125038", "role", "1", "Administrator")]);
    assert_eq!(noted(&anomalies), [(AnomalyKind::BadField, "container")]);

    let err = map_user_grants("dc", &json!({ "username": "x" }), &mut Vec::new()).unwrap_err();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "a user has no usable `id` (missing)",
    );
}

#[test]
fn a_user_that_cannot_be_told_apart_fails_the_read_naming_it() {
    let cases = [
        (
            json!({ "username": "a", "status": "active" }),
            "a user has no usable `id` (missing)",
        ),
        (
            json!({ "id": null, "username": "a" }),
            "a user has no usable `id` (null)",
        ),
        (
            json!({ "id": [1], "username": "a" }),
            "a user has no usable `id` (a list)",
        ),
        (
            json!({ "id": 1.5, "username": "a" }),
            "a user has no usable `id` (a number that is not a whole number)",
        ),
        (
            json!({ "id": " ", "username": "a" }),
            "a user has no usable `id` (blank)",
        ),
        (
            json!({ "id": 9, "status": "active" }),
            "user 9 has no usable `username` (missing)",
        ),
        (
            json!({ "id": 9, "username": 7 }),
            "user 9 has no usable `username` (a number that is not a whole number)",
        ),
        (
            json!({ "id": 9, "username": ["a"] }),
            "user 9 has no usable `username` (a list)",
        ),
        (
            json!({ "id": 9, "username": "  " }),
            "user 9 has no usable `username` (blank)",
        ),
        (json!("jane.doe"), "a user is text, not an object"),
        (json!([1, 2]), "a user is a list, not an object"),
    ];
    for (value, needle) in cases {
        let err = unreadable_user(&value);
        assert_error(&err, ErrorClass::Permanent, needle);
        assert_error(&err, ErrorClass::Permanent, "malformed response");
    }
    let err = unreadable_user(&json!({ "id": 9 }));
    assert_error(&err, ErrorClass::Permanent, "fix the record in the target");
}

#[test]
fn maps_the_sheets_user_to_grants() {
    let (grants, anomalies) = mapped_grants(&sheet_user());
    assert!(anomalies.is_empty(), "{anomalies:?}");
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
    let mut anomalies = Vec::new();
    let record = map_container(
        "dc",
        &json!({ "id": 5, "public_id": "abc", "name": "Company", "description": "HQ",
                 "parent_id": 0, "template_id": 4, "is_active": true, "ekey": "x" }),
        &mut anomalies,
    )
    .unwrap();
    assert_eq!(kind_id_name(&record), ("container", "5", "Company"));
    assert_eq!(
        Value::Object(record.attributes.clone()),
        json!({ "public_id": "abc", "description": "HQ", "parent_id": 0, "template_id": 4, "is_active": true })
    );
    assert!(is_top_level(&record.attributes));
    let child = map_container(
        "dc",
        &json!({ "id": 6, "name": "Sub", "parent_id": 5 }),
        &mut anomalies,
    )
    .unwrap();
    assert!(!is_top_level(&child.attributes));
    let bare = map_container("dc", &json!({ "id": 7, "name": "Bare" }), &mut anomalies).unwrap();
    assert!(is_top_level(&bare.attributes));
    assert!(anomalies.is_empty(), "{anomalies:?}");

    let roles = map_roles(
        "dc",
        &[
            json!({ "id": 1, "name": "Administrator" }),
            json!({ "id": 5 }),
        ],
        &mut anomalies,
    )
    .unwrap();
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert_eq!(roles.len(), 2);
    assert_eq!(kind_id_name(&roles[0]), ("role", "1", "Administrator"));
    assert_eq!(roles[1].name, "5");
}

#[test]
fn containers_and_roles_tolerate_bad_fields_but_not_a_missing_id() {
    let mut anomalies = Vec::new();
    let record = map_container(
        "dc",
        &json!({ "id": 8, "name": 8, "public_id": 1, "description": [], "parent_id": {},
                 "template_id": "t", "is_active": "yes" }),
        &mut anomalies,
    )
    .unwrap();
    assert_eq!(kind_id_name(&record), ("container", "8", "8"));
    assert_eq!(
        Value::Object(record.attributes.clone()),
        json!({ "template_id": "t" })
    );
    assert_eq!(
        noted(&anomalies),
        [
            (AnomalyKind::BadField, "name"),
            (AnomalyKind::BadField, "public_id"),
            (AnomalyKind::BadField, "description"),
            (AnomalyKind::BadField, "parent_id"),
            (AnomalyKind::BadField, "is_active"),
        ]
    );
    anomalies.clear();
    let nameless = map_container("dc", &json!({ "id": 9 }), &mut anomalies).unwrap();
    assert_eq!(nameless.name, "9");
    assert_eq!(noted(&anomalies), [(AnomalyKind::BadField, "name")]);
    assert_eq!(anomalies[0].detail, "expected text, found missing");

    let err = map_container("dc", &json!({ "name": "Lost" }), &mut anomalies).unwrap_err();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "a container has no usable `id`",
    );

    anomalies.clear();
    let roles = map_roles("dc", &[json!({ "id": 2, "name": {} })], &mut anomalies).unwrap();
    assert_eq!(roles[0].name, "2");
    assert_eq!(noted(&anomalies), [(AnomalyKind::BadField, "name")]);
    let err = map_roles("dc", &[json!({ "name": "Admin" })], &mut anomalies).unwrap_err();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "an access role has no usable `id`",
    );
}

/// The fields of a DigiCert user other than its identity (`id`, `username`), and some the
/// adapter does not read.
const USER_FIELDS: [&str; 12] = [
    "first_name",
    "last_name",
    "email",
    "job_title",
    "telephone",
    "status",
    "container",
    "access_roles",
    "type",
    "account_id",
    "has_container_assignments",
    "is_saml_sso_only",
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
        let record = map_user("dc", &value, &mut anomalies).unwrap();
        proptest::prop_assert_eq!(record.id.as_str(), "41");
        proptest::prop_assert_eq!(record.name.as_str(), "prop.user");
        let grants = map_user_grants("dc", &value, &mut anomalies).unwrap();
        proptest::prop_assert!(grants.iter().all(|grant| grant.account_id == "41"));
        proptest::prop_assert!(anomalies.iter().all(|anomaly| anomaly.record == "41"));
        let known = matches!(value.get("status").and_then(Value::as_str),
            Some(status) if status.eq_ignore_ascii_case("active")
                || status.eq_ignore_ascii_case("inactive"));
        proptest::prop_assert_eq!(record.attributes.contains_key(RAW_STATUS), !known);
    }
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
    let pages: Vec<Page<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
    assert_eq!(
        pages
            .iter()
            .map(|page| page.records.len())
            .collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    assert!(pages.iter().all(|page| page.anomalies.is_empty()));
    let ids: HashSet<String> = pages
        .iter()
        .flat_map(|page| &page.records)
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(ids.len(), 2500);
    assert_eq!(pages[2].records[499].name, "user2500");
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

/// A server whose `GET /user` answers one page of `users`.
async fn server_listing(users: Vec<Value>) -> MockServer {
    let server = MockServer::start().await;
    let total = users.len();
    Mock::given(method("GET"))
        .and(path("/services/v2/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "users": users, "page": { "total": total, "limit": 1000, "offset": 0 } }),
        ))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn the_streams_carry_what_the_mapping_tolerated() {
    let mut odd = user(2);
    odd["status"] = json!("pending");
    odd["first_name"] = json!(42);
    let mut bad_container = user(3);
    bad_container["container"] = json!("x");
    let server = server_listing(vec![user(1), odd, bad_container]).await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();

    let (accounts, anomalies) = read_noted(connector.accounts()).await;
    assert_eq!(accounts.len(), 3);
    assert_eq!(accounts[1].status, AccountStatus::Inactive);
    assert_eq!(accounts[1].attributes[RAW_STATUS], "pending");
    assert_eq!(
        anomalies
            .iter()
            .map(|a| (a.record.as_str(), a.kind, a.field.as_str()))
            .collect::<Vec<_>>(),
        [
            ("2", AnomalyKind::UnknownStatus, "status"),
            ("2", AnomalyKind::BadField, "first_name"),
            ("3", AnomalyKind::BadField, "container"),
        ]
    );

    let (grants, anomalies) = read_noted(connector.grants()).await;
    assert_eq!(grants.len(), 5, "user 3 keeps its role, not its container");
    assert_eq!(noted(&anomalies), [(AnomalyKind::BadField, "container")]);
}

#[tokio::test]
async fn a_user_without_an_id_fails_the_stream() {
    let mut nameless = user(2);
    nameless.as_object_mut().unwrap().remove("id");
    let server = server_listing(vec![user(1), nameless]).await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let err = read_error(connector.accounts()).await;
    assert_error(
        &err,
        ErrorClass::Permanent,
        "a user has no usable `id` (missing)",
    );
    let err = read_error(connector.grants()).await;
    assert_error(
        &err,
        ErrorClass::Permanent,
        "a user has no usable `id` (missing)",
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
    let pages: Vec<Page<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
    assert_eq!(
        pages.iter().map(|page| page.records.len()).sum::<usize>(),
        2500
    );
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
    assert_eq!(first.records.len(), 2000, "a role and a container per user");
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
    bad["id"] = json!([2]);
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
    assert!(err.to_string().contains("no usable `id` (a list)"), "{err}");
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

/// Once a finding of the templates fuzz target: a role id or container_id that parses as a
/// number but is not written as JSON writes one (`+3`, `007`, ` 7 `) was put in the body as
/// given, which then failed as "not valid JSON" blaming the template's quotes.
#[tokio::test]
async fn create_sends_ids_that_parse_as_numbers_written_as_json_numbers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/v2/user"))
        .and(body_json(json!({
            "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
            "email": "j@example.com", "container": { "id": 7 }, "access_roles": [{ "id": 3 }]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 2 })))
        .expect(2)
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    for (role, container) in [("+3", json!("007")), (" 003 ", json!(" +7 "))] {
        let request = ProvisionRequest {
            entitlement: Some(("role".into(), role.into())),
            ..request(
                Operation::CreateAccount,
                None,
                json!({ "firstname": "Jane", "lastname": "Doe", "email": "j@example.com",
                        "container_id": container }),
            )
        };
        assert_eq!(
            provisioned(&connector, &request).await,
            done(Some("2")),
            "{role}"
        );
    }
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
