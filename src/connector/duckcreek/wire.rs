//! Duck Creek's XML: the elements the adapter reads and their mapping to records (names in
//! user records resolved to ids through the catalogue), and how a SOAP fault is classified.
//! Pure functions, tested on recorded elements.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;

use super::batch::Item;
use super::{ENTITY, PRIVILEGE, ROLE};
use crate::connector::http::ErrorReading;
use crate::connector::mapping::{cannot_skip, RAW_STATUS};
use crate::connector::soap::{classify_fault_body, Fault};
use crate::connector::xml::Element;
use crate::connector::{Anomaly, ConnectorError};
use crate::model::{AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord};

/// How the shared client reads a Duck Creek error response: a SOAP fault decides the class
/// (a `Client` fault that names the login is `Auth`, other `Client` faults `Permanent`,
/// `Server` faults `Transient`, whatever the HTTP status); anything else is quoted.
pub fn read_error(target: &str, status: StatusCode, body: &[u8]) -> ErrorReading {
    match classify_fault_body(target, status, body, is_login_fault) {
        Some(err) => ErrorReading::Classified(err),
        None => ErrorReading::Unknown,
    }
}

/// Whether a `Client` fault means the login was refused: it names the login, the password,
/// the credentials or authentication.
pub fn is_login_fault(fault: &Fault) -> bool {
    let text = format!(
        "{} {} {} {}",
        fault.code,
        fault.subcode.as_deref().unwrap_or(""),
        fault.reason,
        fault.detail.as_deref().unwrap_or("")
    )
    .to_ascii_lowercase();
    [
        "login",
        "logon",
        "password",
        "credential",
        "authenticat",
        "unauthori",
    ]
    .iter()
    .any(|word| text.contains(word))
}

/// Names → ids of one entitlement type: exact first, then without letter case.
#[derive(Debug, Default)]
pub(super) struct NameIndex {
    exact: HashMap<String, String>,
    /// Lower-cased name → id; `None` when two ids share it.
    folded: HashMap<String, Option<String>>,
}

impl NameIndex {
    /// Adds a record; two records with the same exact name are an error (grants name them
    /// only by name, so they cannot be told apart).
    pub(super) fn insert(
        &mut self,
        target: &str,
        record: &EntitlementRecord,
    ) -> Result<(), ConnectorError> {
        if let Some(other) = self.exact.get(&record.name) {
            if *other != record.id {
                return Err(ConnectorError::malformed(
                    target,
                    format!(
                        "{} name `{}` is used by ids {other} and {}; user records name {}s \
                         only by name, so their grants cannot be told apart",
                        record.entitlement_type, record.name, record.id, record.entitlement_type
                    ),
                ));
            }
        }
        self.exact.insert(record.name.clone(), record.id.clone());
        self.folded
            .entry(record.name.to_lowercase())
            .and_modify(|id| {
                if id.as_deref() != Some(record.id.as_str()) {
                    *id = None;
                }
            })
            .or_insert_with(|| Some(record.id.clone()));
        Ok(())
    }

    /// The id of `name`; the name itself when the catalogue lacks it.
    fn resolve(&self, name: &str) -> String {
        if let Some(id) = self.exact.get(name) {
            return id.clone();
        }
        match self.folded.get(&name.to_lowercase()) {
            Some(Some(id)) => id.clone(),
            _ => name.to_string(),
        }
    }
}

/// The catalogue the grant stream resolves names with.
#[derive(Debug, Default)]
pub(super) struct Catalogue {
    pub(super) roles: NameIndex,
    pub(super) entities: NameIndex,
}

/// A required, non-blank attribute of `element` (its identity), or a malformed-response
/// error naming it: such a record cannot be skipped.
fn required<'e>(
    target: &str,
    element: &'e Element,
    what: &str,
    attribute: &str,
) -> Result<&'e str, ConnectorError> {
    element
        .attr(attribute)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            let id = element
                .attr("id")
                .map(|id| format!(" (id {id})"))
                .unwrap_or_default();
            cannot_skip(
                target,
                &format!("a {what}{id} has no `{attribute}` attribute"),
            )
        })
}

/// A text attribute, trimmed, or `None` when absent or blank.
fn optional(element: &Element, attribute: &str) -> Option<String> {
    element
        .attr(attribute)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_string)
}

/// A `User` → an account record. `@id` and `@name` must be present and non-blank (a user
/// that cannot be told apart fails the read). `@status` `Active` is active and `Locked`
/// inactive (any letter case); any other value, or none, reads as `inactive` with the raw
/// value in `attributes.raw_status` and is noted in `anomalies`. Attributes other than
/// `id`, `name`, `email` and `fullName` (the raw `status` among them) are kept in
/// `attributes`.
pub(super) fn map_user(
    target: &str,
    item: &Item,
    anomalies: &mut Vec<Anomaly>,
) -> Result<AccountRecord, ConnectorError> {
    let user = &item.element;
    let id = required(target, user, "user", "id")?;
    let name = required(target, user, "user", "name")?;
    let mut attributes = Attributes::new();
    for (key, value) in &user.attributes {
        if !matches!(key.as_str(), "id" | "name" | "email" | "fullName") {
            attributes.insert(key.clone(), Value::from(value.as_str()));
        }
    }
    let raw_status = user.attr("status");
    let status = match raw_status.map(str::trim) {
        Some(status) if status.eq_ignore_ascii_case("Active") => AccountStatus::Active,
        Some(status) if status.eq_ignore_ascii_case("Locked") => AccountStatus::Inactive,
        _ => {
            anomalies.push(Anomaly::unknown_status(id, "@status", raw_status));
            attributes.insert(
                RAW_STATUS.to_string(),
                raw_status.map_or(Value::Null, Value::from),
            );
            AccountStatus::Inactive
        }
    };
    Ok(AccountRecord {
        id: id.to_string(),
        name: name.to_string(),
        display_name: optional(user, "fullName"),
        email: optional(user, "email"),
        status,
        attributes,
    })
}

/// A `Role` → a `Role` entitlement (`description` in its attributes).
pub(super) fn map_role(target: &str, role: &Element) -> Result<EntitlementRecord, ConnectorError> {
    let mut attributes = Attributes::new();
    if let Some(description) = optional(role, "description") {
        attributes.insert("description".into(), description.into());
    }
    Ok(EntitlementRecord {
        entitlement_type: ROLE.to_string(),
        id: required(target, role, "role", "id")?.to_string(),
        name: required(target, role, "role", "name")?.to_string(),
        attributes,
    })
}

/// Any child of `Entities` → an `Entity` entitlement (its element name in `attributes.element`
/// when it is not `Entity`).
pub(super) fn map_entity(
    target: &str,
    entity: &Element,
) -> Result<EntitlementRecord, ConnectorError> {
    let mut attributes = Attributes::new();
    if entity.local != ENTITY {
        attributes.insert("element".into(), entity.local.clone().into());
    }
    Ok(EntitlementRecord {
        entitlement_type: ENTITY.to_string(),
        id: required(target, entity, "entity", "id")?.to_string(),
        name: required(target, entity, "entity", "name")?.to_string(),
        attributes,
    })
}

/// A `Privilege` → a `Privilege` entitlement (`description` and `type` in its attributes).
pub(super) fn map_privilege(
    target: &str,
    privilege: &Element,
) -> Result<EntitlementRecord, ConnectorError> {
    let mut attributes = Attributes::new();
    for key in ["description", "type"] {
        if let Some(value) = optional(privilege, key) {
            attributes.insert(key.into(), value.into());
        }
    }
    Ok(EntitlementRecord {
        entitlement_type: PRIVILEGE.to_string(),
        id: required(target, privilege, "privilege", "id")?.to_string(),
        name: required(target, privilege, "privilege", "name")?.to_string(),
        attributes,
    })
}

/// A user's roles and entity memberships → grants, names resolved through `catalogue`.
/// `@id` must be present; a `Role` or `UserEntityMembership` without its name is left out
/// and noted in `anomalies` (its grant reads as removed until the target sends it right).
pub(super) fn map_user_grants(
    target: &str,
    catalogue: &Catalogue,
    item: &Item,
    anomalies: &mut Vec<Anomaly>,
) -> Result<Vec<GrantRecord>, ConnectorError> {
    let account_id = required(target, &item.element, "user", "id")?;
    anomalies.extend(
        item.unnamed
            .iter()
            .map(|field| Anomaly::bad_field(account_id, field, "a name", "none")),
    );
    let roles = item.roles.iter().map(|name| (ROLE, &catalogue.roles, name));
    let entities = item
        .entities
        .iter()
        .map(|name| (ENTITY, &catalogue.entities, name));
    Ok(roles
        .chain(entities)
        .map(|(kind, index, name)| GrantRecord {
            account_id: account_id.to_string(),
            entitlement_type: kind.to_string(),
            entitlement_id: index.resolve(name),
            entitlement_name: Some(name.clone()),
        })
        .collect())
}
