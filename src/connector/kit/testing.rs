//! What the adapters' unit tests share: target configs, provisioning requests and outcomes.

use futures::TryStreamExt;
use serde_json::Value;

use crate::config::TargetConfig;
use crate::connector::http::HttpClient;
use crate::connector::{
    Anomaly, Connector, ConnectorError, ErrorClass, Page, PageStream, ProvisionOutcome,
    ProvisionRequest,
};
use crate::model::{
    AccountRecord, AccountStatus, AnomalyKind, EntitlementRecord, GrantRecord, Operation,
};

/// A target of `kind` at `base_url` with `settings` (TOML lines), no pacing unless the settings
/// set some, and read retries of a few milliseconds.
pub fn target_config(kind: &str, base_url: &str, settings: &str) -> TargetConfig {
    let pacing = if settings.contains("rate_limit") {
        ""
    } else {
        "rate_limit = []\n"
    };
    let text = format!(
        "kind = \"{kind}\"\nbase_url = \"{base_url}\"\n{pacing}\
         read_retry = {{ max_attempts = 2, initial_backoff = \"1ms\", max_backoff = \"5ms\" }}\n\
         {settings}"
    );
    match toml::from_str(&text) {
        Ok(config) => config,
        Err(err) => panic!("test config does not parse: {err}\n{text}"),
    }
}

/// A request for `operation` on account `jane.doe` (target id `account_id`, when known) with
/// `attributes` (a JSON object), as task 9.
pub fn request(
    operation: Operation,
    account_id: Option<&str>,
    attributes: Value,
) -> ProvisionRequest {
    ProvisionRequest {
        operation,
        account_id: account_id.map(str::to_string),
        account_name: "jane.doe".into(),
        entitlement: None,
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        entitlement_name: None,
        task_id: Some(9),
        request_id: None,
    }
}

/// An access request for `operation` of entitlement `kind:id` on account `account_id`.
pub fn access(operation: Operation, account_id: &str, kind: &str, id: &str) -> ProvisionRequest {
    ProvisionRequest {
        entitlement: Some((kind.into(), id.into())),
        ..request(operation, Some(account_id), Value::Null)
    }
}

/// `Done`, naming `account_id`.
pub fn done(account_id: Option<&str>) -> ProvisionOutcome {
    ProvisionOutcome::Done {
        account_id: account_id.map(str::to_string),
    }
}

/// `AlreadyDone`, naming `account_id`.
pub fn already_done(account_id: Option<&str>) -> ProvisionOutcome {
    ProvisionOutcome::AlreadyDone {
        account_id: account_id.map(str::to_string),
    }
}

/// The outcome of `request` through `connector`, which must succeed.
pub async fn provisioned(
    connector: &impl Connector,
    request: &ProvisionRequest,
) -> ProvisionOutcome {
    match connector.provision(request).await {
        Ok(outcome) => outcome,
        Err(err) => panic!("{} failed: {err}", request.operation),
    }
}

/// The error of `request` through `connector`, which must fail.
pub async fn refused(connector: &impl Connector, request: &ProvisionRequest) -> ConnectorError {
    match connector.provision(request).await {
        Ok(outcome) => panic!("{} succeeded: {outcome:?}", request.operation),
        Err(err) => err,
    }
}

/// Every record of `stream`, pages flattened (panics on an error).
pub async fn read_all<T>(stream: PageStream<'_, T>) -> Vec<T> {
    read_noted(stream).await.0
}

/// Every record of `stream` and every anomaly its pages noted, pages flattened (panics on
/// an error).
pub async fn read_noted<T>(stream: PageStream<'_, T>) -> (Vec<T>, Vec<Anomaly>) {
    match stream.try_collect::<Vec<Page<T>>>().await {
        Ok(pages) => {
            let mut records = Vec::new();
            let mut anomalies = Vec::new();
            for mut page in pages {
                records.append(&mut page.records);
                anomalies.append(&mut page.anomalies);
            }
            (records, anomalies)
        }
        Err(err) => panic!("the stream failed: {err}"),
    }
}

/// The error that ends `stream` (panics when it succeeds).
pub async fn read_error<T>(stream: PageStream<'_, T>) -> ConnectorError {
    match stream.try_collect::<Vec<Page<T>>>().await {
        Ok(pages) => panic!("the stream succeeded with {} pages", pages.len()),
        Err(err) => err,
    }
}

/// The query strings of the `requests` made to `path`, in order.
pub fn queries(requests: &[wiremock::Request], path: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|request| request.url.path() == path)
        .map(|request| request.url.query().unwrap_or("").to_string())
        .collect()
}

/// A client's pacing windows as (requests, seconds).
pub fn pacing(http: &HttpClient) -> Vec<(u32, u64)> {
    http.rate_limits()
        .iter()
        .map(|window| (window.requests, window.per.get().as_secs()))
        .collect()
}

/// The grant of entitlement `kind:id` (named `name`) to account `account_id`.
pub fn grant(account_id: &str, kind: &str, id: &str, name: &str) -> GrantRecord {
    GrantRecord {
        account_id: account_id.into(),
        entitlement_type: kind.into(),
        entitlement_id: id.into(),
        entitlement_name: Some(name.into()),
    }
}

/// An entitlement's type, id and name.
pub fn kind_id_name(record: &EntitlementRecord) -> (&str, &str, &str) {
    (&record.entitlement_type, &record.id, &record.name)
}

/// Asserts that `err` is of `class` and that its text holds `needle`.
pub fn assert_error(err: &ConnectorError, class: ErrorClass, needle: &str) {
    assert_eq!(err.class(), class, "{err}");
    assert!(err.to_string().contains(needle), "{needle:?} not in: {err}");
}

/// An account's id, login name, display name, email and status.
pub fn account_summary(
    record: &AccountRecord,
) -> (&str, &str, Option<&str>, Option<&str>, AccountStatus) {
    (
        &record.id,
        &record.name,
        record.display_name.as_deref(),
        record.email.as_deref(),
        record.status,
    )
}

/// Asserts what every full-replace update does: setting only values the target already
/// holds (`unchanged`, on account `account_id`) is `AlreadyDone` naming the account, and
/// setting no field the template changes is refused.
pub async fn assert_update_is_idempotent(
    connector: &impl Connector,
    account_id: &str,
    unchanged: Value,
) {
    let update = |attributes| request(Operation::UpdateAccount, Some(account_id), attributes);
    let outcome = provisioned(connector, &update(unchanged)).await;
    assert_eq!(outcome, already_done(Some(account_id)));
    let err = refused(connector, &update(serde_json::json!({ "department": "x" }))).await;
    assert_error(&err, ErrorClass::Permanent, "the task sets none of them");
}

/// The kind and field of each anomaly, in order, for assertions.
pub fn noted(anomalies: &[Anomaly]) -> Vec<(AnomalyKind, &str)> {
    anomalies
        .iter()
        .map(|anomaly| (anomaly.kind, anomaly.field.as_str()))
        .collect()
}

/// Any JSON value, nested a few levels: what a target might send in a field the adapter
/// does not treat as identity.
pub fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}
