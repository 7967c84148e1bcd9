//! Jama's JSON: the envelope and the objects the adapter reads, their mapping to records,
//! and the error body (of the API and of the OAuth token endpoint). Pure functions, tested on
//! recorded fixtures.

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::USERGROUP;
use crate::connector::http::ErrorReading;
use crate::connector::mapping::{code_and_text, display_name, non_empty, parse, put, NativeId};
use crate::connector::ConnectorError;
use crate::model::{AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord};

/// How the shared client (and the token cache) reads a Jama error response: the target's
/// own message (see [`error_message`]), the status deciding the class.
pub fn read_error(_target: &str, _status: StatusCode, body: &[u8]) -> ErrorReading {
    match error_message(body) {
        Some(message) => ErrorReading::Message(message),
        None => ErrorReading::Unknown,
    }
}

/// The target's own message from a Jama error body (`{"meta":{"message":"…"}}`), or from an
/// OAuth error of the token endpoint (`{"error":"…","error_description":"…"}` →
/// `"error: description"`).
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
    };
    if let Some(message) = text("/meta/message") {
        return Some(message.to_string());
    }
    code_and_text(text("/error"), text("/error_description"))
}

/// A list response: `{"meta":{"pageInfo":{…}},"data":[…]}`.
#[derive(Deserialize)]
pub(super) struct ListBody {
    pub(super) meta: Option<Meta>,
    pub(super) data: Option<Vec<Value>>,
}

/// A single-object or create response: `{"meta":{…},"data":{…}}` (a 201 has no `data`).
#[derive(Deserialize)]
pub(super) struct ItemBody {
    pub(super) meta: Option<Meta>,
    pub(super) data: Option<Value>,
}

/// The `meta` of a response, as far as the adapter reads it.
#[derive(Deserialize, Default)]
pub(super) struct Meta {
    #[serde(rename = "pageInfo")]
    pub(super) page_info: Option<PageInfoBody>,
    pub(super) id: Option<NativeId>,
    pub(super) location: Option<String>,
}

/// `meta.pageInfo`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageInfoBody {
    pub(super) start_index: Option<u64>,
    pub(super) result_count: Option<u64>,
    pub(super) total_results: Option<u64>,
}

/// The user object, as far as the adapter reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: NativeId,
    username: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    title: Option<String>,
    location: Option<String>,
    license_type: Option<String>,
    active: Option<bool>,
    authentication_type: Option<AuthenticationType>,
    custom_data: Option<Value>,
}

/// A user's `authenticationType {id, name}`.
#[derive(Deserialize)]
struct AuthenticationType {
    name: Option<String>,
}

/// A user found by name: its id and email.
#[derive(Deserialize)]
pub(super) struct UserRef {
    pub(super) id: NativeId,
    pub(super) username: String,
    pub(super) email: Option<String>,
}

/// A group member: only its id is read.
#[derive(Deserialize)]
struct Member {
    id: NativeId,
}

/// A user group of `GET /usergroups`.
#[derive(Deserialize)]
struct Group {
    id: NativeId,
    name: String,
    description: Option<String>,
    project: Option<Value>,
}

/// A group whose members the grant stream reads.
pub(super) struct GroupRef {
    pub(super) id: String,
    pub(super) name: String,
}

/// Inserts a non-empty text under `key`.
fn put_text(attributes: &mut Attributes, key: &str, text: Option<&str>) {
    put(attributes, key, non_empty(text).map(Value::from));
}

/// A Jama user → an account record.
pub(super) fn map_user(target: &str, value: &Value) -> Result<AccountRecord, ConnectorError> {
    let user: User = parse(target, "user", value)?;
    let status = match user.active {
        Some(true) => AccountStatus::Active,
        Some(false) => AccountStatus::Inactive,
        None => {
            return Err(ConnectorError::malformed(
                target,
                format!(
                    "user {} ({}) has no `active` flag (expected true or false)",
                    user.id, user.username
                ),
            ))
        }
    };
    let display_name = display_name(user.first_name.as_deref(), user.last_name.as_deref());
    let mut attributes = Attributes::new();
    put_text(&mut attributes, "firstName", user.first_name.as_deref());
    put_text(&mut attributes, "lastName", user.last_name.as_deref());
    put_text(&mut attributes, "phone", user.phone.as_deref());
    put_text(&mut attributes, "title", user.title.as_deref());
    put_text(&mut attributes, "location", user.location.as_deref());
    put_text(&mut attributes, "licenseType", user.license_type.as_deref());
    put_text(
        &mut attributes,
        "authenticationType",
        user.authentication_type
            .as_ref()
            .and_then(|kind| kind.name.as_deref()),
    );
    match user.custom_data {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.is_empty() => {}
        Some(custom) => {
            attributes.insert("customData".to_string(), custom);
        }
    }
    Ok(AccountRecord {
        id: user.id.to_string(),
        name: user.username,
        display_name,
        email: non_empty(user.email.as_deref()),
        status,
        attributes,
    })
}

/// A user group → a `usergroup` entitlement.
pub(super) fn map_group(target: &str, value: &Value) -> Result<EntitlementRecord, ConnectorError> {
    let group: Group = parse(target, "user group", value)?;
    let mut attributes = Attributes::new();
    put_text(&mut attributes, "description", group.description.as_deref());
    if let Some(project) = group.project.filter(|project| !project.is_null()) {
        attributes.insert("project".to_string(), project);
    }
    Ok(EntitlementRecord {
        entitlement_type: USERGROUP.to_string(),
        id: group.id.to_string(),
        name: group.name,
        attributes,
    })
}

/// The users of `GET /usergroups/{id}/users` → one grant each.
pub(super) fn map_members(
    target: &str,
    group: &GroupRef,
    users: &[Value],
) -> Result<Vec<GrantRecord>, ConnectorError> {
    users
        .iter()
        .map(|value| {
            let member: Member = parse(target, "group member", value)?;
            Ok(GrantRecord {
                account_id: member.id.to_string(),
                entitlement_type: USERGROUP.to_string(),
                entitlement_id: group.id.clone(),
                entitlement_name: Some(group.name.clone()),
            })
        })
        .collect()
}
