//! Jama's JSON: the envelope and the objects the adapter reads, their mapping to records,
//! and the error body (of the API and of the OAuth token endpoint). Pure functions, tested on
//! recorded fixtures.

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::USERGROUP;
use crate::connector::http::ErrorReading;
use crate::connector::mapping::{code_and_text, display_name, non_empty, put, Fields, NativeId};
use crate::connector::{Anomaly, ConnectorError};
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

/// A user found by name: its login, id and email, as far as judging a duplicate create
/// needs them.
pub(super) struct UserRef {
    pub(super) id: NativeId,
    pub(super) username: String,
    pub(super) email: Option<String>,
}

/// A user found by name → a [`UserRef`]. `id` and `username` must be readable; an `email`
/// that is not text is read as none (a lookup counts nothing).
pub(super) fn map_user_ref(target: &str, value: &Value) -> Result<UserRef, ConnectorError> {
    let mut ignored = Vec::new();
    let (id, mut user) = Fields::record(target, "user", value, "id", &mut ignored)?;
    Ok(UserRef {
        id,
        username: user.login("username")?,
        email: user.text("email"),
    })
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

/// A Jama user → an account record. `id` and `username` must be readable (a user that
/// cannot be told apart fails the read). Tolerated, and noted in `anomalies`: an `active`
/// flag that is absent or not `true`/`false` reads as `inactive` with the raw value in
/// `attributes.raw_status`; a field of an unexpected type (`email: []`, `customData: 5`,
/// `authenticationType: "x"`) is left out.
pub(super) fn map_user(
    target: &str,
    value: &Value,
    anomalies: &mut Vec<Anomaly>,
) -> Result<AccountRecord, ConnectorError> {
    let (id, mut user) = Fields::record(target, "user", value, "id", anomalies)?;
    let username = user.login("username")?;
    let mut attributes = Attributes::new();
    let status = match user.value("active") {
        Some(Value::Bool(true)) => AccountStatus::Active,
        Some(Value::Bool(false)) => AccountStatus::Inactive,
        raw => user.unknown_status("active", raw, &mut attributes),
    };
    let first_name = user.text("firstName");
    let last_name = user.text("lastName");
    let email = user.text("email");
    let display_name = display_name(first_name.as_deref(), last_name.as_deref());
    put_text(&mut attributes, "firstName", first_name.as_deref());
    put_text(&mut attributes, "lastName", last_name.as_deref());
    for key in ["phone", "title", "location", "licenseType"] {
        put_text(&mut attributes, key, user.text(key).as_deref());
    }
    let authentication = user.nested("authenticationType", |kind| kind.text("name"));
    put_text(
        &mut attributes,
        "authenticationType",
        authentication.as_deref(),
    );
    if let Some(custom) = user.list("customData").filter(|items| !items.is_empty()) {
        attributes.insert("customData".to_string(), Value::Array(custom.clone()));
    }
    Ok(AccountRecord {
        id: id.to_string(),
        name: username,
        display_name,
        email: non_empty(email.as_deref()),
        status,
        attributes,
    })
}

/// A user group → a `usergroup` entitlement. `id` must be readable; a `name` that is absent
/// or not text is noted and the id stands in for it; a `description` that is not text is
/// left out and noted. `project` is kept as sent.
pub(super) fn map_group(
    target: &str,
    value: &Value,
    anomalies: &mut Vec<Anomaly>,
) -> Result<EntitlementRecord, ConnectorError> {
    let (id, mut group) = Fields::record(target, "user group", value, "id", anomalies)?;
    let id = id.to_string();
    let name = group.needed_text("name").unwrap_or_else(|| id.clone());
    let mut attributes = Attributes::new();
    put_text(
        &mut attributes,
        "description",
        group.text("description").as_deref(),
    );
    if let Some(project) = group.value("project") {
        attributes.insert("project".to_string(), project.clone());
    }
    Ok(EntitlementRecord {
        entitlement_type: USERGROUP.to_string(),
        id,
        name,
        attributes,
    })
}

/// The users of `GET /usergroups/{id}/users` → one grant each. Each member's `id` must be
/// readable (a grant left out would read as removed); nothing else is read.
pub(super) fn map_members(
    target: &str,
    group: &GroupRef,
    users: &[Value],
    anomalies: &mut Vec<Anomaly>,
) -> Result<Vec<GrantRecord>, ConnectorError> {
    users
        .iter()
        .map(|value| {
            let (member, _) = Fields::record(target, "group member", value, "id", anomalies)?;
            Ok(GrantRecord {
                account_id: member.to_string(),
                entitlement_type: USERGROUP.to_string(),
                entitlement_id: group.id.clone(),
                entitlement_name: Some(group.name.clone()),
            })
        })
        .collect()
}
