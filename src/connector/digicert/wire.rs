//! DigiCert's JSON: the response types the adapter reads, their mapping to records, the
//! body of Edit user (`PUT /user/{id}`), a user's role ids, and the error body. Pure
//! functions, tested on recorded fixtures.

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CONTAINER, ROLE};
use crate::connector::http::ErrorReading;
use crate::connector::mapping::{code_and_text, display_name, non_empty, parse, put, NativeId};
use crate::connector::ConnectorError;
use crate::model::{AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord};

/// The fields Edit user (`PUT /user/{id}`) documents, carried over as read: `job_title`
/// and `telephone` left out would be erased. Roles are not among them (they change through
/// `PUT /user/{id}/role`), nor is `container` (no documented call moves a user).
const EDIT_USER_FIELDS: [&str; 7] = [
    "username",
    "first_name",
    "last_name",
    "email",
    "job_title",
    "telephone",
    "is_saml_sso_only",
];

/// How the shared client reads a DigiCert error response: the target's own message (see
/// [`error_message`]), the status deciding the class.
pub fn read_error(_target: &str, _status: StatusCode, body: &[u8]) -> ErrorReading {
    match error_message(body) {
        Some(message) => ErrorReading::Message(message),
        None => ErrorReading::Unknown,
    }
}

/// The target's own message from a DigiCert error body
/// (`{"errors":[{"code":"…","message":"…"}]}` → `"code: message"`, several joined by `; `).
pub fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = parsed
        .errors
        .into_iter()
        .filter_map(|item| code_and_text(item.code.as_deref(), item.message.as_deref()))
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The 201 of `POST /user`: `{"id": N}`.
#[derive(Deserialize)]
pub(super) struct Created {
    pub(super) id: NativeId,
}

/// The Edit-user body (`PUT /user/{id}`) that changes nothing: the documented fields of
/// `user` as read (nulls left out), and nothing else.
pub(super) fn replacement(user: &Map<String, Value>) -> Map<String, Value> {
    let mut body = Map::new();
    for field in EDIT_USER_FIELDS {
        if let Some(value) = user.get(field).filter(|value| !value.is_null()) {
            body.insert(field.to_string(), value.clone());
        }
    }
    body
}

/// The ids of a user's `access_roles`, every one of them, as the whole numbers `PUT
/// /user/{id}/role` takes (a number or digits). Since that call replaces the whole list, a
/// role left out would be removed: so an entry without a readable id, or a user without an
/// `access_roles` list, is an error saying what was found (`holds access role …`).
pub(super) fn role_ids(user: &Map<String, Value>) -> Result<Vec<u64>, String> {
    let roles = match user.get("access_roles") {
        Some(Value::Array(roles)) => roles,
        Some(other) => return Err(format!("has access_roles {other}, not a list of roles")),
        None => return Err("has no access_roles list".to_string()),
    };
    roles
        .iter()
        .map(|role| {
            role.get("id")
                .and_then(numeric)
                .ok_or_else(|| format!("holds access role {role} whose id is not a whole number"))
        })
        .collect()
}

/// The id of a user's `container`, if it has a readable one.
pub(super) fn user_container_id(user: &Map<String, Value>) -> Option<u64> {
    user.get("container")
        .and_then(|container| container.get("id"))
        .and_then(numeric)
}

/// A whole number, given as a number or as digits.
pub(super) fn numeric(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// `GET /user`: `{"users":[…],"page":{"total":T,"limit":M,"offset":N}}`.
#[derive(Deserialize)]
pub(super) struct UsersPage {
    pub(super) users: Vec<Value>,
    pub(super) page: Option<PageMeta>,
}

/// The `page` object of a DigiCert listing.
#[derive(Deserialize, Default)]
pub(super) struct PageMeta {
    pub(super) total: Option<u64>,
    pub(super) limit: Option<u64>,
    pub(super) offset: Option<u64>,
}

/// `GET /container`: `{"containers":[…]}`.
#[derive(Deserialize)]
pub(super) struct ContainersBody {
    pub(super) containers: Vec<Value>,
}

/// `GET /container/{id}/role`: `{"access_roles":[{id,name}]}`.
#[derive(Deserialize)]
pub(super) struct RolesBody {
    #[serde(default)]
    pub(super) access_roles: Vec<Value>,
}

/// The user object, as far as the adapter reads it.
#[derive(Deserialize)]
struct User {
    id: NativeId,
    username: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    job_title: Option<String>,
    telephone: Option<String>,
    status: Option<String>,
    container: Option<ContainerRef>,
    access_roles: Option<Vec<Role>>,
    #[serde(rename = "type")]
    user_type: Option<String>,
}

/// A user's `container`.
#[derive(Deserialize)]
struct ContainerRef {
    id: NativeId,
    name: Option<String>,
}

/// An access role `{id, name}`.
#[derive(Deserialize)]
struct Role {
    id: NativeId,
    name: Option<String>,
}

/// A container of `GET /container`.
#[derive(Deserialize)]
struct Container {
    id: NativeId,
    name: String,
    public_id: Option<String>,
    description: Option<String>,
    parent_id: Option<NativeId>,
    template_id: Option<NativeId>,
    is_active: Option<bool>,
}

/// A DigiCert user → an account record.
pub(super) fn map_user(target: &str, value: &Value) -> Result<AccountRecord, ConnectorError> {
    let user: User = parse(target, "user", value)?;
    let status = match user.status.as_deref() {
        Some(text) if text.eq_ignore_ascii_case("active") => AccountStatus::Active,
        Some(text) if text.eq_ignore_ascii_case("inactive") => AccountStatus::Inactive,
        other => {
            return Err(ConnectorError::malformed(
                target,
                format!(
                    "user {} ({}) has status {} (expected active or inactive)",
                    user.id,
                    user.username,
                    other
                        .map(|text| format!("`{text}`"))
                        .unwrap_or_else(|| "missing".to_string())
                ),
            ))
        }
    };
    let display_name = display_name(user.first_name.as_deref(), user.last_name.as_deref());
    let mut attributes = Attributes::new();
    put(
        &mut attributes,
        "first_name",
        user.first_name.map(Value::from),
    );
    put(
        &mut attributes,
        "last_name",
        user.last_name.map(Value::from),
    );
    put(
        &mut attributes,
        "job_title",
        user.job_title.map(Value::from),
    );
    put(
        &mut attributes,
        "telephone",
        user.telephone.map(Value::from),
    );
    if let Some(container) = &user.container {
        put(
            &mut attributes,
            "container_id",
            Some(container.id.as_json()),
        );
        put(
            &mut attributes,
            "container_name",
            container.name.clone().map(Value::from),
        );
    }
    if let Some(roles) = &user.access_roles {
        let roles: Vec<Value> = roles
            .iter()
            .map(|role| json!({ "id": role.id.as_json(), "name": role.name }))
            .collect();
        put(&mut attributes, "access_roles", Some(Value::Array(roles)));
    }
    put(&mut attributes, "type", user.user_type.map(Value::from));
    Ok(AccountRecord {
        id: user.id.to_string(),
        name: user.username,
        display_name,
        email: non_empty(user.email.as_deref()),
        status,
        attributes,
    })
}

/// A DigiCert user → its grants: one `role` grant per access role, one `container` grant.
pub(super) fn map_user_grants(
    target: &str,
    value: &Value,
) -> Result<Vec<GrantRecord>, ConnectorError> {
    let user: User = parse(target, "user", value)?;
    let account_id = user.id.to_string();
    let mut grants: Vec<GrantRecord> = user
        .access_roles
        .unwrap_or_default()
        .into_iter()
        .map(|role| GrantRecord {
            account_id: account_id.clone(),
            entitlement_type: ROLE.to_string(),
            entitlement_id: role.id.to_string(),
            entitlement_name: role.name,
        })
        .collect();
    if let Some(container) = user.container {
        grants.push(GrantRecord {
            account_id,
            entitlement_type: CONTAINER.to_string(),
            entitlement_id: container.id.to_string(),
            entitlement_name: container.name,
        });
    }
    Ok(grants)
}

/// A container of `GET /container` → a `container` entitlement.
pub(super) fn map_container(
    target: &str,
    value: &Value,
) -> Result<EntitlementRecord, ConnectorError> {
    let container: Container = parse(target, "container", value)?;
    let mut attributes = Attributes::new();
    put(
        &mut attributes,
        "public_id",
        container.public_id.map(Value::from),
    );
    put(
        &mut attributes,
        "description",
        container.description.map(Value::from),
    );
    put(
        &mut attributes,
        "parent_id",
        container.parent_id.as_ref().map(NativeId::as_json),
    );
    put(
        &mut attributes,
        "template_id",
        container.template_id.as_ref().map(NativeId::as_json),
    );
    put(
        &mut attributes,
        "is_active",
        container.is_active.map(Value::from),
    );
    Ok(EntitlementRecord {
        entitlement_type: CONTAINER.to_string(),
        id: container.id.to_string(),
        name: container.name,
        attributes,
    })
}

/// Whether a container record is top-level (`parent_id` 0 or absent).
pub(super) fn is_top_level(attributes: &Attributes) -> bool {
    match attributes.get("parent_id") {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => s.is_empty() || s == "0",
        Some(_) => false,
    }
}

/// The `access_roles` of `GET /container/{id}/role` → `role` entitlements.
pub(super) fn map_roles(
    target: &str,
    roles: &[Value],
) -> Result<Vec<EntitlementRecord>, ConnectorError> {
    roles
        .iter()
        .map(|value| {
            let role: Role = parse(target, "access role", value)?;
            let id = role.id.to_string();
            Ok(EntitlementRecord {
                entitlement_type: ROLE.to_string(),
                name: role.name.unwrap_or_else(|| id.clone()),
                id,
                attributes: Attributes::new(),
            })
        })
        .collect()
}
