//! Response mapping helpers shared by the adapters: reading target JSON into typed objects
//! with a clear error, native ids, and the small rules that turn fields into record values.
//!
//! Everything here is pure; the adapters' `map_*` functions build on it.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::ConnectorError;
use crate::model::Attributes;

/// A native id as a target sends it: a number (DigiCert, Jama) or, accepted too, a string.
/// Displayed as the record id (`125038`, `abc`).
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum NativeId {
    /// A numeric id.
    Number(i64),
    /// A text id.
    Text(String),
}

impl NativeId {
    /// The id as the JSON value it arrived as (a number stays a number), for attributes.
    pub fn as_json(&self) -> Value {
        match self {
            NativeId::Number(n) => Value::from(*n),
            NativeId::Text(s) => Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for NativeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NativeId::Number(n) => write!(f, "{n}"),
            NativeId::Text(s) => f.write_str(s),
        }
    }
}

/// Reads one object of `what` (`user`, `container`, `user group`, …) from `value`. A value
/// that does not fit is a malformed response (class `Permanent`) naming `what`, the object's
/// `id` when it has one, and serde's reason: `cannot read a user (id 9): missing field …`.
pub fn parse<'a, T: Deserialize<'a>>(
    target: &str,
    what: &str,
    value: &'a Value,
) -> Result<T, ConnectorError> {
    T::deserialize(value).map_err(|err| {
        let id = value
            .get("id")
            .map(|id| format!(" (id {id})"))
            .unwrap_or_default();
        ConnectorError::malformed(target, format!("cannot read a {what}{id}: {err}"))
    })
}

/// The text trimmed, or `None` when it is absent or blank.
pub fn non_empty(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// A display name from a first and a last name: both trimmed and joined by a space, or the
/// one that is set; `None` when both are absent or blank.
pub fn display_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    non_empty(Some(&format!(
        "{} {}",
        first.unwrap_or("").trim(),
        last.unwrap_or("").trim()
    )))
}

/// Inserts `value` under `key` when it is present (as it is: no trimming, `null` included).
pub fn put(attributes: &mut Attributes, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        attributes.insert(key.to_string(), value);
    }
}

/// The paging key of a page of records: the first record's `id` as JSON text (`125038`,
/// `"abc"`), or `None` for an empty page or a first record without an id.
pub fn first_id(records: &[Value]) -> Option<String> {
    records
        .first()
        .and_then(|record| record.get("id"))
        .map(Value::to_string)
}

/// The text of an error with a code and a description: `"code: description"`, either one
/// alone, or `None` when neither is set.
pub fn code_and_text(code: Option<&str>, text: Option<&str>) -> Option<String> {
    match (code, text) {
        (Some(code), Some(text)) => Some(format!("{code}: {text}")),
        (Some(text), None) | (None, Some(text)) => Some(text.to_string()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::connector::ErrorClass;

    #[test]
    fn native_ids_read_numbers_and_strings() {
        let number: NativeId = serde_json::from_value(json!(125038)).unwrap();
        let text: NativeId = serde_json::from_value(json!("abc")).unwrap();
        assert_eq!(number, NativeId::Number(125038));
        assert_eq!(text, NativeId::Text("abc".into()));
        assert_eq!(number.to_string(), "125038");
        assert_eq!(text.to_string(), "abc");
        assert_eq!(number.as_json(), json!(125038));
        assert_eq!(text.as_json(), json!("abc"));
        assert!(serde_json::from_value::<NativeId>(json!(1.5)).is_err());
        assert!(serde_json::from_value::<NativeId>(json!(null)).is_err());
    }

    #[derive(Debug, Deserialize)]
    struct Thing {
        id: NativeId,
        name: String,
    }

    #[test]
    fn parse_reads_an_object_or_names_it_in_a_malformed_error() {
        let thing: Thing = parse("t", "thing", &json!({ "id": 7, "name": "x" })).unwrap();
        assert_eq!((thing.id, thing.name.as_str()), (NativeId::Number(7), "x"));

        let err = parse::<Thing>("t", "thing", &json!({ "id": 9 })).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let text = err.to_string();
        assert!(
            text.contains("malformed response")
                && text.contains("cannot read a thing (id 9): missing field `name`"),
            "{text}"
        );
        let text = parse::<Thing>("t", "thing", &json!({ "name": "x" }))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("cannot read a thing: missing field `id`"),
            "{text}"
        );
        let text = parse::<Thing>("t", "thing", &json!({ "id": "a b", "name": 1 }))
            .unwrap_err()
            .to_string();
        assert!(text.contains("cannot read a thing (id \"a b\")"), "{text}");
    }

    #[test]
    fn non_empty_trims_and_drops_blanks() {
        assert_eq!(non_empty(Some("  Ann ")).as_deref(), Some("Ann"));
        assert_eq!(non_empty(Some(" \t")), None);
        assert_eq!(non_empty(Some("")), None);
        assert_eq!(non_empty(None), None);
    }

    #[test]
    fn display_names_join_what_is_set() {
        assert_eq!(
            display_name(Some(" Jane "), Some("Doe")).as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(display_name(Some("Ann"), None).as_deref(), Some("Ann"));
        assert_eq!(
            display_name(Some(" "), Some(" Doe")).as_deref(),
            Some("Doe")
        );
        assert_eq!(display_name(None, Some("")), None);
        assert_eq!(display_name(None, None), None);
    }

    #[test]
    fn put_inserts_present_values_as_they_are() {
        let mut attributes = Attributes::new();
        put(&mut attributes, "a", Some(json!(" x ")));
        put(&mut attributes, "b", None);
        put(&mut attributes, "c", Some(Value::Null));
        assert_eq!(Value::Object(attributes), json!({ "a": " x ", "c": null }));
    }

    #[test]
    fn first_id_is_the_first_records_id_as_json_text() {
        assert_eq!(
            first_id(&[json!({ "id": 5 }), json!({ "id": 6 })]).as_deref(),
            Some("5")
        );
        assert_eq!(first_id(&[json!({ "id": "a" })]).as_deref(), Some("\"a\""));
        assert_eq!(
            first_id(&[json!({ "name": "x" }), json!({ "id": 6 })]),
            None
        );
        assert_eq!(first_id(&[]), None);
    }

    #[test]
    fn code_and_text_joins_what_is_set() {
        assert_eq!(
            code_and_text(Some("not_found"), Some("No user.")).as_deref(),
            Some("not_found: No user.")
        );
        assert_eq!(code_and_text(Some("x"), None).as_deref(), Some("x"));
        assert_eq!(code_and_text(None, Some("y")).as_deref(), Some("y"));
        assert_eq!(code_and_text(None, None), None);
    }
}
