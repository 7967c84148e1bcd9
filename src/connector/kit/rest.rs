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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::connector::kit::testing::{assert_error, request};
    use crate::connector::template::{Escape, TemplateCatalog, TemplateSet};
    use crate::connector::{Capabilities, ErrorClass};
    use crate::model::Operation;

    fn core() -> Core {
        let templates = TemplateSet::from_catalog(
            "t",
            &TemplateCatalog {
                defaults: &[(
                    "update_account",
                    r#"{% if user.title %}{"title": "${ user.title }"}{% else %}{}{% endif %}"#,
                )],
                optional: &[],
                escape: Escape::Json,
            },
            &Default::default(),
        )
        .unwrap();
        Core::new::<crate::connector::jama::JamaConnector>(
            "t",
            50,
            Capabilities::default(),
            templates,
        )
    }

    #[test]
    fn a_create_needs_a_username_and_every_required_attribute() {
        let core = core();
        let mut create = request(
            Operation::CreateAccount,
            None,
            json!({ "firstname": "Jane", "lastname": " ", "email": null, "title": ["x"] }),
        );
        let err = check_create(
            &core,
            &create,
            &["firstname", "lastname", "email", "title"],
            "why",
        )
        .unwrap_err();
        assert_error(
            &err,
            ErrorClass::Permanent,
            "create_account needs the attribute(s) lastname, email (why)",
        );
        create.account_name = " ".into();
        let err = check_create(&core, &create, &[], "why").unwrap_err();
        assert_error(&err, ErrorClass::Permanent, "needs a username");
        create.account_name = "jane".into();
        assert!(check_create(&core, &create, &["firstname", "title"], "why").is_ok());
    }

    #[test]
    fn an_update_is_refused_when_the_template_changes_nothing() {
        let core = core();
        let update = request(
            Operation::UpdateAccount,
            Some("1"),
            json!({ "title": "Lead" }),
        );
        let changes = update_changes(&core, &update, "title on T").unwrap();
        assert_eq!(changes.get("title"), Some(&json!("Lead")));
        let nothing = request(
            Operation::UpdateAccount,
            Some("1"),
            json!({ "department": "x" }),
        );
        let err = update_changes(&core, &nothing, "title on T").unwrap_err();
        assert_error(
            &err,
            ErrorClass::Permanent,
            "update_account changes title on T; the task sets none of them",
        );
    }

    #[tokio::test]
    async fn replace_sends_only_when_a_value_differs() {
        let puts = AtomicUsize::new(0);
        let put = |body: Map<String, Value>| {
            puts.fetch_add(1, Ordering::SeqCst);
            let seen = body.get("title").cloned();
            async move {
                assert_eq!(seen, Some(json!("Lead")));
                Ok(())
            }
        };
        let current = Map::from_iter([("title".to_string(), json!("Engineer"))]);
        let changes = Map::from_iter([("title".to_string(), json!("Lead"))]);
        assert!(replace(current.clone(), changes, put).await.unwrap());
        assert_eq!(puts.load(Ordering::SeqCst), 1);
        let same = Map::from_iter([("title".to_string(), json!("Engineer"))]);
        let never = |_| async { panic!("nothing to send") };
        assert!(!replace(current, same, never).await.unwrap());
    }
}
