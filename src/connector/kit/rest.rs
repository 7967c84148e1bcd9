//! What the REST adapters (JSON bodies) share: the checks before a create, and updates made
//! by reading an object, merging the template's changes and `PUT`ting it whole (DigiCert's
//! and Jama's `PUT` replace the object).

use std::future::Future;

use serde_json::{Map, Value};

use super::core::Core;
use crate::connector::template::{expect_object, TemplateContext};
use crate::connector::{ConnectorError, ProvisionRequest};

/// Refuses a create without a username, or without one of the `required` attributes (null
/// or blank counts as missing); `why` says what the target requires.
pub fn check_create(
    core: &Core,
    request: &ProvisionRequest,
    required: &[&str],
    why: &str,
) -> Result<(), ConnectorError> {
    if request.account_name.trim().is_empty() {
        return Err(core.refused("create_account needs a username"));
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|key| match request.attributes.get(*key) {
            None | Some(Value::Null) => true,
            Some(Value::String(text)) => text.trim().is_empty(),
            Some(_) => false,
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(core.refused(format!(
            "create_account needs the attribute(s) {} ({why})",
            missing.join(", ")
        )))
    }
}

/// The text at `key` of a rendered JSON body (the `email` a duplicate is judged by).
pub fn body_text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The changes the `update_account` template renders for `request` (field → value). None is
/// refused: `fields` lists what the template can change on `product`.
pub fn update_changes(
    core: &Core,
    request: &ProvisionRequest,
    fields: &str,
) -> Result<Map<String, Value>, ConnectorError> {
    let context = TemplateContext::from_request(core.target(), request);
    let changes = core
        .templates()
        .render("update_account", &context)
        .and_then(|body| expect_object(core.target(), "update_account", body))
        .map_err(|err| core.template_failed(err))?;
    if changes.is_empty() {
        return Err(core.refused(format!(
            "update_account changes {fields}; the task sets none of them"
        )));
    }
    Ok(changes)
}

/// Applies `changes` to `current` (the whole object as read) and, when any value differs,
/// sends the result with `put`. Whether it was sent: `false` when every value is already in
/// place (no request is made).
pub async fn replace<F, Fut>(
    mut current: Map<String, Value>,
    changes: Map<String, Value>,
    put: F,
) -> Result<bool, ConnectorError>
where
    F: FnOnce(Map<String, Value>) -> Fut,
    Fut: Future<Output = Result<(), ConnectorError>>,
{
    let mut changed = false;
    for (field, value) in changes {
        if current.get(&field) != Some(&value) {
            changed = true;
            current.insert(field, value);
        }
    }
    if changed {
        put(current).await?;
    }
    Ok(changed)
}
