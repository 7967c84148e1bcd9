//! Task submission, shared by the CLI (`idsync task submit`) and the API
//! (`POST /api/v1/tasks`): everything is validated before anything is queued.
//!
//! * every name and value given is plain text within its length limit, and is taken in NFC
//!   (see [`names`](super::names)); this runs first, so no later refusal quotes a raw value;
//! * the target exists and supports the operation for the entitlement type (else the
//!   refusal names the operation, the target and why);
//! * a `password` attribute is refused (idsync generates initial passwords itself);
//! * attribute keys are lower-cased (as templates see them); two keys that differ only in
//!   letter case are refused;
//! * an attribute that no template of the operation reads is refused, naming the keys that
//!   are read (see [`attributes`](super::attributes));
//! * `create_account` needs `email`, `firstname` and `lastname`; `username` defaults to the
//!   account;
//! * other operations need the account in the store (one non-suspended account of that
//!   login), or an unfinished `create_account` task for it, which the new task then waits for;
//! * `add_access` / `remove_access` need `entitlement` (`TYPE:ID_OR_NAME`), resolved to one
//!   active entitlement of the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::attributes::{KnownAttributes, UnknownAttributes};
use super::names::{self, Field, NameError};
use crate::clock;
use crate::config::Config;
use crate::connector::Connector;
use crate::model::{Attributes, Operation, TaskEntitlement};
use crate::store::{NewTask, Store, StoreError, Submitted};

/// Attributes `create_account` requires.
pub const CREATE_REQUIRED: &[&str] = &["email", "firstname", "lastname"];

/// The entitlement of a submit: `"TYPE:ID_OR_NAME"`, or `{ "type": …, "id": … }` /
/// `{ "type": …, "name": … }` in the API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EntitlementRef {
    /// `TYPE:ID_OR_NAME`.
    Text(String),
    /// An object with the type and the id or the name.
    Object {
        /// The entitlement type.
        #[serde(rename = "type")]
        entitlement_type: String,
        /// The native id.
        #[serde(default)]
        id: Option<String>,
        /// The name (used when `id` is unset).
        #[serde(default)]
        name: Option<String>,
    },
}

impl EntitlementRef {
    /// The type and the id-or-name, or why the reference is malformed.
    pub fn parts(&self) -> Result<(String, String), SubmitError> {
        let (kind, value) = match self {
            EntitlementRef::Text(text) => match text.split_once(':') {
                Some((kind, value)) => (kind.to_string(), value.to_string()),
                None => (String::new(), String::new()),
            },
            EntitlementRef::Object {
                entitlement_type,
                id,
                name,
            } => (
                entitlement_type.clone(),
                id.clone().or_else(|| name.clone()).unwrap_or_default(),
            ),
        };
        if kind.is_empty() || value.is_empty() {
            return Err(SubmitError::Invalid(format!(
                "entitlement {}: expected TYPE:ID_OR_NAME (e.g. role:101 or usergroup:Reviewers)",
                self.display()
            )));
        }
        Ok((kind, value))
    }

    /// The reference with each part checked ([`names::clean`]) and in NFC. In the text form
    /// the type and the id or name are checked on their own too: `role: 101` is refused for
    /// the space after the colon, as `" 101"` is not the id `101`.
    fn cleaned(self) -> Result<EntitlementRef, NameError> {
        let part = |value: String| names::clean(Field::Entitlement, &value);
        Ok(match self {
            EntitlementRef::Text(text) => {
                let text = part(text)?;
                if let Some((kind, value)) = text.split_once(':') {
                    part(kind.to_string())?;
                    part(value.to_string())?;
                }
                EntitlementRef::Text(text)
            }
            EntitlementRef::Object {
                entitlement_type,
                id,
                name,
            } => EntitlementRef::Object {
                entitlement_type: part(entitlement_type)?,
                id: id.map(part).transpose()?,
                name: name.map(part).transpose()?,
            },
        })
    }

    fn display(&self) -> String {
        match self {
            EntitlementRef::Text(text) => format!("`{text}`"),
            EntitlementRef::Object {
                entitlement_type,
                id,
                name,
            } => format!(
                "`{entitlement_type}:{}`",
                id.as_deref().or(name.as_deref()).unwrap_or_default()
            ),
        }
    }
}

/// A task to submit, as the CLI or the API received it (the API body, field for field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The target's config name.
    pub target: String,
    /// The operation.
    pub operation: Operation,
    /// The account's login name.
    pub account: String,
    /// The entitlement, for `add_access` / `remove_access`.
    #[serde(default)]
    pub entitlement: Option<EntitlementRef>,
    /// Identity attributes (`user.*` in templates).
    #[serde(default)]
    pub attributes: Attributes,
    /// The owning identity's key upstream.
    #[serde(default)]
    pub owner: Option<String>,
    /// The caller's request id.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Makes a repeated submit return the existing task.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Why a submit was refused (exit 2 / HTTP 400), or could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// No such target.
    #[error("unknown target `{target}` (configured: {configured})")]
    UnknownTarget {
        /// The target asked for.
        target: String,
        /// The configured targets.
        configured: String,
    },
    /// The target cannot do this operation.
    #[error("operation {operation} is not supported by target {target}: {reason}")]
    Unsupported {
        /// The operation.
        operation: Operation,
        /// The target.
        target: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// An attribute that no template of the operation reads.
    #[error(transparent)]
    UnknownAttributes(#[from] UnknownAttributes),
    /// A name or value that is not plain text, or is too long.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Anything else wrong with the request (missing attribute, unknown account…).
    #[error("{0}")]
    Invalid(String),
    /// The store failed: nothing was queued.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// Whether the request itself was refused (exit 2 / HTTP 400) rather than the store
    /// failing (exit 1 / HTTP 500).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, SubmitError::Store(_))
    }
}

/// Validates `request` and queues it (or returns the task an earlier submit with the same
/// idempotency key queued). Nothing is queued when any check fails.
pub async fn submit(
    store: &dyn Store,
    connectors: &BTreeMap<String, Arc<dyn Connector>>,
    config: &Config,
    request: SubmitRequest,
    actor: &str,
) -> Result<Submitted, SubmitError> {
    let request = cleaned(request)?;
    let target = request.target.as_str();
    let (Some(target_config), Some(connector)) =
        (config.targets.get(target), connectors.get(target))
    else {
        return Err(SubmitError::UnknownTarget {
            target: target.to_string(),
            configured: config
                .targets
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let operation = request.operation;
    let account = request.account.clone();
    if account.is_empty() {
        return Err(SubmitError::Invalid("account: must not be empty".into()));
    }
    let attributes = request.attributes;
    if attributes
        .keys()
        .any(|key| key.eq_ignore_ascii_case("password"))
    {
        return Err(SubmitError::Invalid(
            "attribute `password` is refused: idsync generates a strong initial password for \
             each create and never stores one; users set theirs through the target's own \
             reset flow"
                .into(),
        ));
    }
    for (key, value) in &attributes {
        if value.is_object() || value.is_array() {
            return Err(SubmitError::Invalid(format!(
                "attribute `{key}`: must be a string, number or boolean"
            )));
        }
    }

    // The entitlement: required for access operations, meaningless for the others.
    let is_access = matches!(operation, Operation::AddAccess | Operation::RemoveAccess);
    let entitlement_ref = match (&request.entitlement, is_access) {
        (Some(reference), true) => Some(reference.parts()?),
        (None, true) => {
            return Err(SubmitError::Invalid(format!(
                "{operation} needs an entitlement (TYPE:ID_OR_NAME; types of target {target}: {})",
                connector.capabilities().entitlement_types.join(", ")
            )))
        }
        (Some(_), false) => {
            return Err(SubmitError::Invalid(format!(
                "entitlement applies to add_access and remove_access only, not {operation}"
            )))
        }
        (None, false) => None,
    };
    let entitlement_type = entitlement_ref.as_ref().map(|(kind, _)| kind.as_str());
    check_capability(connector.as_ref(), operation, entitlement_type)?;
    KnownAttributes::of(connector.as_ref(), operation, entitlement_type)
        .check(&attributes, &account)?;
    let mut attributes = lower_case_keys(attributes)?;

    if operation == Operation::CreateAccount {
        let missing: Vec<&str> = CREATE_REQUIRED
            .iter()
            .copied()
            .filter(|key| {
                attributes
                    .get(*key)
                    .is_none_or(|value| value.is_null() || value.as_str() == Some(""))
            })
            .collect();
        if !missing.is_empty() {
            return Err(SubmitError::Invalid(format!(
                "create_account needs the attributes {} (missing: {})",
                CREATE_REQUIRED.join(", "),
                missing.join(", ")
            )));
        }
    }
    attributes
        .entry("username")
        .or_insert_with(|| serde_json::Value::String(account.clone()));

    // The account: resolved to its id now, so the task follows the id.
    let (account_id, depends_on) = if operation == Operation::CreateAccount {
        (None, None)
    } else {
        let found = store.find_accounts_by_name(target, &account).await?;
        match found.as_slice() {
            [one] => (Some(one.id.clone()), None),
            [] => match store.unfinished_create(target, &account).await? {
                Some(create) => (None, Some(create.id)),
                None => {
                    return Err(SubmitError::Invalid(format!(
                        "account {account} not found in target {target}; run an import or \
                         create it first"
                    )))
                }
            },
            many => {
                let ids: Vec<&str> = many.iter().map(|a| a.id.as_str()).collect();
                return Err(SubmitError::Invalid(format!(
                    "account {account} is ambiguous in target {target}: accounts {} have that \
                     login",
                    ids.join(", ")
                )));
            }
        }
    };

    let entitlement = match entitlement_ref {
        None => None,
        Some((kind, value)) => {
            let found = store.find_entitlements(target, &kind, &value).await?;
            match found.as_slice() {
                [one] => Some(TaskEntitlement {
                    entitlement_type: one.entitlement_type.clone(),
                    id: one.id.clone(),
                    name: one.name.clone(),
                }),
                [] => {
                    return Err(SubmitError::Invalid(format!(
                        "entitlement {kind}:{value} not found in target {target} (no active \
                         {kind} with that id or name; run an access import first)"
                    )))
                }
                many => {
                    let ids: Vec<&str> = many.iter().map(|e| e.id.as_str()).collect();
                    return Err(SubmitError::Invalid(format!(
                        "entitlement {kind}:{value} is ambiguous in target {target}: ids {} \
                         have that name; give the id instead",
                        ids.join(", ")
                    )));
                }
            }
        }
    };

    let new_task = NewTask {
        target: target.to_string(),
        operation,
        account,
        account_id,
        entitlement,
        attributes,
        owner: request.owner.filter(|owner| !owner.is_empty()),
        max_attempts: target_config.retry.max_attempts.max(1),
        actor: actor.to_string(),
        request_id: request.request_id.filter(|id| !id.is_empty()),
        idempotency_key: request.idempotency_key.filter(|key| !key.is_empty()),
        depends_on,
        created_at: clock::now(),
    };
    Ok(store.insert_task(&new_task).await?)
}

/// `request` with every name and value checked ([`names::clean`]) and in NFC; empty optional
/// strings stay empty (they mean "not given").
fn cleaned(request: SubmitRequest) -> Result<SubmitRequest, SubmitError> {
    let optional = |field: Field, value: Option<String>| match value {
        Some(value) if !value.is_empty() => names::clean(field, &value).map(Some),
        other => Ok(other),
    };
    let target = names::clean(Field::Target, &request.target)?;
    let account = names::clean(Field::Account, &request.account)?;
    let entitlement = request
        .entitlement
        .map(EntitlementRef::cleaned)
        .transpose()?;
    names::check_count(request.attributes.len())?;
    let mut attributes = Attributes::new();
    for (key, value) in request.attributes {
        let key = names::clean(Field::AttributeKey, &key)?;
        let value = match value {
            serde_json::Value::String(text) => {
                serde_json::Value::String(names::clean(Field::AttributeValue(key.clone()), &text)?)
            }
            other => other,
        };
        if attributes.insert(key.clone(), value).is_some() {
            return Err(SubmitError::Invalid(format!(
                "attribute `{key}` is given twice, in different Unicode forms; keys are \
                 compared in NFC, so give it once"
            )));
        }
    }
    Ok(SubmitRequest {
        target,
        operation: request.operation,
        account,
        entitlement,
        attributes,
        owner: optional(Field::Owner, request.owner)?,
        request_id: optional(Field::RequestId, request.request_id)?,
        idempotency_key: optional(Field::IdempotencyKey, request.idempotency_key)?,
    })
}

/// `attributes` with lower-case keys, as templates see them; two keys that differ only in
/// letter case are refused (which one would the target get?).
fn lower_case_keys(attributes: Attributes) -> Result<Attributes, SubmitError> {
    let mut lowered = Attributes::new();
    for (key, value) in attributes {
        let lower = key.to_lowercase();
        if lowered.insert(lower.clone(), value).is_some() {
            return Err(SubmitError::Invalid(format!(
                "attribute `{lower}` is given twice, in different letter case (`{key}` is one); \
                 keys are compared without letter case, so give it once"
            )));
        }
    }
    Ok(lowered)
}

/// Whether submitted tasks of `target` run at once (`instant_provisioning = true`).
pub fn is_instant(config: &Config, target: &str) -> bool {
    config
        .targets
        .get(target)
        .is_some_and(|target| target.instant_provisioning)
}

/// Refuses an operation the target does not declare, with the adapter's reason (which
/// names the policy that could map it, where there is one).
pub fn check_capability(
    connector: &dyn Connector,
    operation: Operation,
    entitlement_type: Option<&str>,
) -> Result<(), SubmitError> {
    if connector
        .capabilities()
        .supports(operation, entitlement_type)
    {
        return Ok(());
    }
    Err(SubmitError::Unsupported {
        operation,
        target: connector.target().to_string(),
        reason: connector.unsupported_reason(operation, entitlement_type),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_check_uses_the_adapters_capabilities_and_reasons() {
        let text = "[targets.jama]\nkind = \"jama\"\nbase_url = \"http://127.0.0.1:9\"\n\
                    client_id = \"c\"\nclient_secret = \"s\"\n";
        let config = crate::app::load_config_str(text, "test", &[])
            .unwrap()
            .config;
        let jama =
            crate::connector::registry::build_connector("jama", &config.targets["jama"]).unwrap();
        let check = |op, kind| check_capability(jama.as_ref(), op, kind);
        assert!(check(Operation::CreateAccount, None).is_ok());
        assert!(check(Operation::AddAccess, Some("UserGroup")).is_ok());
        assert!(check(Operation::AddAccess, Some("role")).is_err());
        let err = check(Operation::RemoveAccount, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("operation remove_account is not supported by target jama:")
                && text.contains("remove_strategy"),
            "{text}"
        );
        assert!(err.is_refusal());
    }

    #[test]
    fn entitlement_references_parse() {
        let text = EntitlementRef::Text("role:101".into());
        assert_eq!(text.parts().unwrap(), ("role".into(), "101".into()));
        let text = EntitlementRef::Text("usergroup:QA:Leads".into());
        assert_eq!(text.parts().unwrap().1, "QA:Leads");
        assert!(EntitlementRef::Text("role".into()).parts().is_err());
        let object: EntitlementRef =
            serde_json::from_str(r#"{"type":"usergroup","name":"Reviewers"}"#).unwrap();
        assert_eq!(
            object.parts().unwrap(),
            ("usergroup".into(), "Reviewers".into())
        );
    }

    #[test]
    fn api_body_rejects_unknown_fields() {
        let body = r#"{"target":"jama","operation":"create_account","account":"a","colour":1}"#;
        assert!(serde_json::from_str::<SubmitRequest>(body).is_err());
        let body = r#"{"target":"jama","operation":"add_access","account":"a","entitlement":"usergroup:7"}"#;
        let request: SubmitRequest = serde_json::from_str(body).unwrap();
        assert_eq!(
            request.entitlement,
            Some(EntitlementRef::Text("usergroup:7".into()))
        );
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::sync::testing::{config, connectors, seed, store, FakeConnector};
    use serde_json::json;

    fn request(operation: Operation, account: &str) -> SubmitRequest {
        SubmitRequest {
            target: "a".into(),
            operation,
            account: account.into(),
            entitlement: None,
            attributes: Attributes::new(),
            owner: None,
            request_id: None,
            idempotency_key: None,
        }
    }

    fn person() -> Attributes {
        json!({"email": "jane@example.com", "firstname": "Jane", "lastname": "Doe"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[tokio::test]
    async fn create_needs_identity_attributes_and_no_password() {
        let (_dir, store) = store().await;
        let fakes = connectors(&[Arc::new(FakeConnector::new("a"))]);
        let config = config(3);
        let err = submit(
            store.as_ref(),
            &fakes,
            &config,
            request(Operation::CreateAccount, "jane"),
            "cli:t",
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("missing: email, firstname, lastname"),
            "{err}"
        );
        let mut with_password = request(Operation::CreateAccount, "jane");
        with_password.attributes = person();
        with_password
            .attributes
            .insert("Password".into(), json!("x"));
        let err = submit(store.as_ref(), &fakes, &config, with_password, "cli:t")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("`password` is refused"), "{err}");

        let mut ok = request(Operation::CreateAccount, "jane");
        ok.attributes = person();
        ok.idempotency_key = Some("k1".into());
        let Submitted::Created(task) = submit(store.as_ref(), &fakes, &config, ok.clone(), "cli:t")
            .await
            .unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(task.attributes["username"], json!("jane"));
        assert_eq!(task.max_attempts, 3);
        assert_eq!(task.account_id, None);
        let again = submit(store.as_ref(), &fakes, &config, ok, "cli:t")
            .await
            .unwrap();
        assert_eq!(again, Submitted::Existing(task.clone()));

        // A disable of the account being created waits for the create.
        let Submitted::Created(disable) = submit(
            store.as_ref(),
            &fakes,
            &config,
            request(Operation::DisableAccount, "jane"),
            "cli:t",
        )
        .await
        .unwrap() else {
            panic!("not created")
        };
        assert_eq!(disable.depends_on, Some(task.id));
    }

    #[tokio::test]
    async fn attributes_no_template_reads_are_refused_and_nothing_is_queued() {
        use crate::store::TaskFilter;
        let (_dir, store) = store().await;
        let config = config(3);
        let jama = crate::connector::registry::build_connector("a", &config.targets["a"]).unwrap();
        let connectors = BTreeMap::from([("a".to_string(), jama)]);
        let submit_with = |attributes: serde_json::Value| {
            let mut create = request(Operation::CreateAccount, "jane");
            create.attributes = attributes.as_object().cloned().unwrap();
            submit(store.as_ref(), &connectors, &config, create, "cli:t")
        };

        let err = submit_with(json!({
            "email": "jane@example.com", "firstname": "Jane", "lastname": "Doe", "phone": "+44 1"
        }))
        .await
        .unwrap_err();
        assert!(err.is_refusal());
        assert!(matches!(err, SubmitError::UnknownAttributes(_)), "{err:?}");
        assert!(
            err.to_string().starts_with(
                "unknown attribute \"phone\" for a create_account: did you mean \"phonenumber\"? \
                 The attributes a create_account reads are: email, firstname, lastname, \
                 license_type, location, phonenumber, title."
            ),
            "{err}"
        );
        // A typo is named as such, not reported as the key it missed.
        let err =
            submit_with(json!({ "emial": "jane@example.com", "firstname": "J", "lastname": "D" }))
                .await
                .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"emial\" for a create_account: did you mean \"email\"?")
                && !text.contains("missing"),
            "{text}"
        );
        // A key given twice in different letter case.
        let err = submit_with(json!({
            "email": "a@example.com", "Email": "b@example.com", "firstname": "J", "lastname": "D"
        }))
        .await
        .unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
        // Enable reads nothing on Jama: any attribute is refused.
        seed(store.as_ref(), "a", &[("11", "bob")], &[]).await;
        let mut enable = request(Operation::EnableAccount, "bob");
        enable.attributes = json!({ "title": "Lead" }).as_object().cloned().unwrap();
        let err = submit(store.as_ref(), &connectors, &config, enable, "cli:t")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("a enable_account sends no attributes"),
            "{err}"
        );
        let queued = TaskFilter {
            limit: 100,
            ..Default::default()
        };
        assert_eq!(store.list_tasks(&queued).await.unwrap(), []);
        let submitted = |events: Vec<crate::model::AuditEvent>| {
            events
                .iter()
                .filter(|event| event.action == "task_submitted")
                .count()
        };
        assert_eq!(
            submitted(store.list_audit(Some("a"), 100).await.unwrap()),
            0
        );

        // Known keys in any letter case are taken, and stored lower-cased.
        let Submitted::Created(task) = submit_with(json!({
            "Email": "jane@example.com", "FirstName": "Jane", "LastName": "Doe",
            "PhoneNumber": "+44 1", "username": "jane"
        }))
        .await
        .unwrap() else {
            panic!("not created")
        };
        assert_eq!(
            task.attributes.keys().collect::<Vec<_>>(),
            ["email", "firstname", "lastname", "phonenumber", "username"]
        );
        assert_eq!(store.list_tasks(&queued).await.unwrap().len(), 1);
        assert_eq!(
            submitted(store.list_audit(Some("a"), 100).await.unwrap()),
            1
        );
    }

    #[tokio::test]
    async fn accounts_and_entitlements_are_resolved_at_submit() {
        let (_dir, store) = store().await;
        seed(
            store.as_ref(),
            "a",
            &[("11", "jane")],
            &[("7", "Reviewers"), ("8", "QA"), ("9", "QA")],
        )
        .await;
        let fakes = connectors(&[Arc::new(FakeConnector::new("a"))]);
        let config = config(3);
        let err = submit(
            store.as_ref(),
            &fakes,
            &config,
            request(Operation::DisableAccount, "bob"),
            "t",
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "account bob not found in target a; run an import or create it first"
        );
        assert!(err.is_refusal());

        let mut add = request(Operation::AddAccess, "jane");
        let err = submit(store.as_ref(), &fakes, &config, add.clone(), "t")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("needs an entitlement"), "{err}");
        add.entitlement = Some(EntitlementRef::Text("usergroup:QA".into()));
        let err = submit(store.as_ref(), &fakes, &config, add.clone(), "t")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("ambiguous") && err.to_string().contains("8, 9"),
            "{err}"
        );
        add.entitlement = Some(EntitlementRef::Text("usergroup:Nope".into()));
        let err = submit(store.as_ref(), &fakes, &config, add.clone(), "t")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
        add.entitlement = Some(EntitlementRef::Text("UserGroup:reviewers".into()));
        let Submitted::Created(task) = submit(store.as_ref(), &fakes, &config, add, "t")
            .await
            .unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(task.account_id.as_deref(), Some("11"));
        let entitlement = task.entitlement.unwrap();
        assert_eq!(
            (entitlement.id.as_str(), entitlement.name.as_str()),
            ("7", "Reviewers")
        );

        let err = submit(
            store.as_ref(),
            &fakes,
            &config,
            request(Operation::RemoveAccount, "jane"),
            "t",
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SubmitError::Unsupported { .. }), "{err}");
        let mut unknown = request(Operation::EnableAccount, "jane");
        unknown.target = "zzz".into();
        let err = submit(store.as_ref(), &fakes, &config, unknown, "t")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unknown target `zzz`"), "{err}");
    }

    #[tokio::test]
    async fn names_are_checked_before_anything_else_and_nothing_is_queued() {
        use crate::store::TaskFilter;
        let (_dir, store) = store().await;
        let fakes = connectors(&[Arc::new(FakeConnector::new("a"))]);
        let config = config(3);
        let create = |account: &str| {
            let mut create = request(Operation::CreateAccount, account);
            create.attributes = person();
            create
        };
        let refuse = |request: SubmitRequest| {
            let store = store.clone();
            let fakes = fakes.clone();
            let config = config.clone();
            async move {
                let err = submit(store.as_ref(), &fakes, &config, request, "t")
                    .await
                    .unwrap_err();
                assert!(err.is_refusal(), "{err}");
                let text = err.to_string();
                assert!(
                    text.chars()
                        .all(|c| crate::sync::names::Forbidden::of(c).is_none()),
                    "{text:?}"
                );
                text
            }
        };

        let text = refuse(create("a\u{0}b\u{202e}")).await;
        assert!(
            text.starts_with(
                "account contains a control character U+0000 at position 2 (value \
                 \"a\\u{0}b\\u{202e}\")"
            ),
            "{text}"
        );
        // The target is checked before it is looked up (and quoted in "unknown target").
        let mut bad_target = create("jane");
        bad_target.target = "\u{1b}[2Ja".into();
        assert!(refuse(bad_target)
            .await
            .starts_with("target contains a control character U+001B at position 1"));
        // A newline in a value, named by its key.
        let mut multi_line = create("jane");
        multi_line
            .attributes
            .insert("title".into(), json!("Lead\nEngineer"));
        assert!(refuse(multi_line)
            .await
            .starts_with("attribute `title` contains a control character U+000A at position 5"));
        let mut bidi_key = create("jane");
        bidi_key
            .attributes
            .insert("ti\u{2066}tle".into(), json!("x"));
        assert!(refuse(bidi_key).await.starts_with(
            "an attribute key contains a bidi control character U+2066 at position 3"
        ));
        // Whitespace is refused, not trimmed, around the account and each part of an
        // entitlement reference.
        assert!(refuse(create("jane "))
            .await
            .starts_with("account has trailing whitespace U+0020"));
        let mut add = request(Operation::AddAccess, "jane");
        add.entitlement = Some(EntitlementRef::Text("usergroup: QA".into()));
        assert!(refuse(add)
            .await
            .starts_with("entitlement has leading whitespace U+0020 (value \" QA\")"));
        let mut request_id = create("jane");
        request_id.request_id = Some("r\u{9b}1".into());
        assert!(refuse(request_id)
            .await
            .starts_with("request_id (--request-id) contains a control character U+009B"));
        let mut key = create("jane");
        key.idempotency_key = Some("k".repeat(129));
        assert!(refuse(key).await.starts_with(
            "idempotency_key (--idempotency-key) is 129 characters long, over the limit of 128"
        ));
        let mut owner = create("jane");
        owner.owner = Some("\u{200f}E100".into());
        assert!(refuse(owner)
            .await
            .starts_with("owner contains a bidi control"));
        let mut many = create("jane");
        for n in 0..62 {
            many.attributes.insert(format!("k{n}"), json!("v"));
        }
        assert!(refuse(many)
            .await
            .starts_with("65 attributes given, over the limit of 64"));
        let mut twice = create("jane");
        twice.attributes.insert("zoe\u{308}".into(), json!("1"));
        twice.attributes.insert("zo\u{eb}".into(), json!("2"));
        assert!(refuse(twice)
            .await
            .starts_with("attribute `zo\u{eb}` is given twice, in different Unicode forms"));

        let queued = TaskFilter {
            limit: 100,
            ..Default::default()
        };
        assert_eq!(store.list_tasks(&queued).await.unwrap(), []);
        assert_eq!(store.list_audit(Some("a"), 100).await.unwrap(), []);
    }

    #[tokio::test]
    async fn names_are_stored_and_compared_in_nfc() {
        let (_dir, store) = store().await;
        seed(store.as_ref(), "a", &[("11", "李")], &[("7", "Révision")]).await;
        let fakes = connectors(&[Arc::new(FakeConnector::new("a"))]);
        let config = config(3);

        // Typed decomposed (e + U+0308), stored composed.
        let mut create = request(Operation::CreateAccount, "zoe\u{308}");
        create.attributes = person();
        create
            .attributes
            .insert("firstname".into(), json!("Zoe\u{308}"));
        let Submitted::Created(created) = submit(store.as_ref(), &fakes, &config, create, "t")
            .await
            .unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(created.account, "zo\u{eb}");
        assert_eq!(created.attributes["firstname"], json!("Zo\u{eb}"));
        assert_eq!(created.attributes["username"], json!("zo\u{eb}"));
        // The composed spelling finds the same pending create.
        let Submitted::Created(disable) = submit(
            store.as_ref(),
            &fakes,
            &config,
            request(Operation::DisableAccount, "zo\u{eb}"),
            "t",
        )
        .await
        .unwrap() else {
            panic!("not created")
        };
        assert_eq!(disable.depends_on, Some(created.id));

        // Non-ASCII names and entitlements resolve, a decomposed entitlement name too.
        let mut add = request(Operation::AddAccess, "李");
        add.entitlement = Some(EntitlementRef::Text("usergroup:Re\u{301}vision".into()));
        let Submitted::Created(task) = submit(store.as_ref(), &fakes, &config, add, "t")
            .await
            .unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(task.account_id.as_deref(), Some("11"));
        assert_eq!(task.entitlement.unwrap().id, "7");
    }
}
