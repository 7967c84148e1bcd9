//! What the adapters' unit tests share: target configs, provisioning requests and outcomes.

use serde_json::Value;

use crate::config::TargetConfig;
use crate::connector::{Connector, ConnectorError, ProvisionOutcome, ProvisionRequest};
use crate::model::Operation;

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
