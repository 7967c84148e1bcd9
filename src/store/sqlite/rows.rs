//! Reading stored rows back into model records, and writing values the way the schema
//! expects them (timestamps as fixed-width text, JSON as canonical text).

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::clock;
use crate::model::{Account, Attributes, AuditEvent, Entitlement, Grant, RunRecord};
use crate::store::{StoreError, StoreResult};

/// A timestamp as stored.
pub(super) fn ts(at: DateTime<Utc>) -> String {
    clock::format(at)
}

/// Canonical JSON text of a value: object keys sorted at every level, no whitespace, so
/// that equal values are equal text whatever order they were built in.
pub(super) fn canonical_json(value: &serde_json::Value) -> String {
    // Serializing a `Value` into a `String` cannot fail (all keys are strings).
    serde_json::to_string(&Canonical(value)).unwrap_or_else(|_| "{}".to_string())
}

/// Canonical JSON text of attributes.
pub(super) fn canonical_attributes(attributes: &Attributes) -> String {
    let sorted: BTreeMap<&str, Canonical<'_>> = attributes
        .iter()
        .map(|(key, value)| (key.as_str(), Canonical(value)))
        .collect();
    serde_json::to_string(&sorted).unwrap_or_else(|_| "{}".to_string())
}

/// Serializes a JSON value with sorted object keys (whatever `serde_json`'s map order).
struct Canonical<'a>(&'a serde_json::Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<&str, Canonical<'_>> = map
                    .iter()
                    .map(|(key, value)| (key.as_str(), Canonical(value)))
                    .collect();
                sorted.serialize(serializer)
            }
            serde_json::Value::Array(items) => serializer.collect_seq(items.iter().map(Canonical)),
            other => other.serialize(serializer),
        }
    }
}

/// A column's value, or [`StoreError::Corrupt`].
pub(super) fn get<'r, T>(row: &'r SqliteRow, column: &'static str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(|err| StoreError::Corrupt {
        context: column,
        message: err.to_string(),
    })
}

/// A stored timestamp.
pub(super) fn get_ts(row: &SqliteRow, column: &'static str) -> StoreResult<DateTime<Utc>> {
    let text: String = get(row, column)?;
    parse_ts(column, &text)
}

/// A stored, nullable timestamp.
pub(super) fn get_opt_ts(
    row: &SqliteRow,
    column: &'static str,
) -> StoreResult<Option<DateTime<Utc>>> {
    let text: Option<String> = get(row, column)?;
    text.map(|text| parse_ts(column, &text)).transpose()
}

/// Parses a stored timestamp.
pub(super) fn parse_ts(context: &'static str, text: &str) -> StoreResult<DateTime<Utc>> {
    clock::parse(text).ok_or_else(|| StoreError::Corrupt {
        context,
        message: format!("`{text}` is not an RFC 3339 timestamp"),
    })
}

/// A stored enum value.
pub(super) fn get_enum<T>(row: &SqliteRow, column: &'static str) -> StoreResult<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = get(row, column)?;
    text.parse().map_err(|err: T::Err| StoreError::Corrupt {
        context: column,
        message: err.to_string(),
    })
}

/// A stored, nullable enum value.
pub(super) fn get_opt_enum<T>(row: &SqliteRow, column: &'static str) -> StoreResult<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: Option<String> = get(row, column)?;
    text.map(|text| {
        text.parse().map_err(|err: T::Err| StoreError::Corrupt {
            context: column,
            message: err.to_string(),
        })
    })
    .transpose()
}

/// A stored JSON value.
pub(super) fn get_json(row: &SqliteRow, column: &'static str) -> StoreResult<serde_json::Value> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
        context: column,
        message: err.to_string(),
    })
}

/// A stored JSON object (attributes).
pub(super) fn get_attributes(row: &SqliteRow, column: &'static str) -> StoreResult<Attributes> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
        context: column,
        message: err.to_string(),
    })
}

/// The columns [`account`] reads, from `accounts a LEFT JOIN target_state t`.
pub(super) const ACCOUNT_COLUMNS: &str = "a.target AS target, a.id AS id, a.name AS name, \
    a.display_name AS display_name, a.email AS email, a.status AS status, \
    a.status_reason AS status_reason, a.owner AS owner, a.attributes AS attributes, \
    a.first_seen AS first_seen, \
    CASE \
        WHEN a.status = 'suspended' THEN a.last_seen \
        WHEN t.last_account_import_at IS NULL THEN NULL \
        WHEN t.last_account_import_at < a.first_seen THEN a.first_seen \
        ELSE t.last_account_import_at \
    END AS last_seen";

/// An account row (see [`ACCOUNT_COLUMNS`]).
pub(super) fn account(row: &SqliteRow) -> StoreResult<Account> {
    Ok(Account {
        target: get(row, "target")?,
        id: get(row, "id")?,
        name: get(row, "name")?,
        display_name: get(row, "display_name")?,
        email: get(row, "email")?,
        status: get_enum(row, "status")?,
        status_reason: get(row, "status_reason")?,
        owner: get(row, "owner")?,
        attributes: get_attributes(row, "attributes")?,
        first_seen: get_ts(row, "first_seen")?,
        last_seen: get_opt_ts(row, "last_seen")?,
    })
}

/// The columns [`entitlement`] reads, from `entitlements e`.
pub(super) const ENTITLEMENT_COLUMNS: &str = "e.target AS target, e.type AS type, \
    e.id AS id, e.name AS name, e.status AS status, e.attributes AS attributes";

/// An entitlement row (see [`ENTITLEMENT_COLUMNS`]).
pub(super) fn entitlement(row: &SqliteRow) -> StoreResult<Entitlement> {
    Ok(Entitlement {
        target: get(row, "target")?,
        entitlement_type: get(row, "type")?,
        id: get(row, "id")?,
        name: get(row, "name")?,
        status: get_enum(row, "status")?,
        attributes: get_attributes(row, "attributes")?,
    })
}

/// The columns [`grant`] reads, from `grants g LEFT JOIN accounts a LEFT JOIN entitlements e`.
pub(super) const GRANT_COLUMNS: &str = "g.target AS target, a.name AS account, \
    g.account_id AS account_id, g.type AS type, g.entitlement_id AS entitlement_id, \
    e.name AS entitlement_name, g.status AS status";

/// A grant row (see [`GRANT_COLUMNS`]).
pub(super) fn grant(row: &SqliteRow) -> StoreResult<Grant> {
    Ok(Grant {
        target: get(row, "target")?,
        account: get(row, "account")?,
        account_id: get(row, "account_id")?,
        entitlement_type: get(row, "type")?,
        entitlement_id: get(row, "entitlement_id")?,
        entitlement_name: get(row, "entitlement_name")?,
        status: get_enum(row, "status")?,
    })
}

/// The columns [`run`] reads, from `runs`.
pub(super) const RUN_COLUMNS: &str =
    "id, job, target, kind, trigger, actor, started_at, finished_at, outcome, counts, error";

/// A run row (see [`RUN_COLUMNS`]).
pub(super) fn run(row: &SqliteRow) -> StoreResult<RunRecord> {
    Ok(RunRecord {
        id: get(row, "id")?,
        job: get(row, "job")?,
        target: get(row, "target")?,
        kind: get_enum(row, "kind")?,
        trigger: get_enum(row, "trigger")?,
        actor: get(row, "actor")?,
        started_at: get_ts(row, "started_at")?,
        finished_at: get_opt_ts(row, "finished_at")?,
        outcome: get_opt_enum(row, "outcome")?,
        counts: get_json(row, "counts")?,
        error: get(row, "error")?,
    })
}

/// The columns [`audit_event`] reads, from `audit_events`.
pub(super) const AUDIT_COLUMNS: &str =
    "id, at, actor, target, object, object_key, action, run_id, details";

/// An audit event row (see [`AUDIT_COLUMNS`]).
pub(super) fn audit_event(row: &SqliteRow) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: get(row, "id")?,
        at: get_ts(row, "at")?,
        actor: get(row, "actor")?,
        target: get(row, "target")?,
        object: get_opt_enum(row, "object")?,
        object_key: get(row, "object_key")?,
        action: get(row, "action")?,
        run_id: get(row, "run_id")?,
        details: get_json(row, "details")?,
    })
}
