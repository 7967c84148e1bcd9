//! Response mapping helpers shared by the adapters: reading target JSON into typed objects
//! with a clear error, native ids, tolerant field-by-field reading of records
//! ([`Fields`]), the [`Anomaly`] notes that tolerance leaves, and the small rules that turn
//! fields into record values.
//!
//! **Tolerance.** One odd record must not fail a whole import: a status the adapter does not
//! know becomes `inactive` with the raw value under [`RAW_STATUS`], and a field of an
//! unexpected type is left out. Each is noted as an [`Anomaly`], which the import engine
//! counts and logs. A record's **identity** (its id, and for accounts its login) is strict:
//! a record that cannot be told apart cannot be skipped, since leaving it out of a full
//! snapshot would read as a removal (a suspended account).
//!
//! Everything here is pure; the adapters' `map_*` functions build on it.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::ConnectorError;
use crate::model::{AccountStatus, AnomalyKind, Attributes};

/// The `attributes` key that keeps the raw status of an account whose status the adapter
/// does not know (the same for every target): the value as the target sent it, `null` when
/// it sent none.
pub const RAW_STATUS: &str = "raw_status";

/// Maps one page of a JSON listing (the target's name, the records as sent) to records,
/// noting what it tolerates.
pub type PageMapper<T> = fn(&str, &[Value], &mut Vec<Anomaly>) -> Result<Vec<T>, ConnectorError>;

/// How many characters of a raw status an [`Anomaly`] quotes.
const QUOTED_STATUS_CHARS: usize = 40;

/// Something odd in one record that the mapping tolerated instead of failing the read. The
/// import engine logs each at DEBUG, one summary per kind at WARN, and counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// What kind of oddity.
    pub kind: AnomalyKind,
    /// The record's native id.
    pub record: String,
    /// Where in the record: `status`, `first_name`, `container.id`, `access_roles[2]`,
    /// `Roles/Role/@name`.
    pub field: String,
    /// What was found: the raw status (quoted, at most 40 characters) or `missing`; for a
    /// bad field, what was expected and the type found (never the value).
    pub detail: String,
}

impl Anomaly {
    /// A status the adapter does not know in `field` of record `record`: `raw` as the target
    /// sent it, `None` when absent.
    pub fn unknown_status(record: &str, field: &str, raw: Option<&str>) -> Self {
        let detail = match raw {
            Some(raw) => {
                let quoted: String = raw.chars().take(QUOTED_STATUS_CHARS).collect();
                let more = if raw.chars().count() > QUOTED_STATUS_CHARS {
                    "…"
                } else {
                    ""
                };
                format!("`{quoted}{more}`")
            }
            None => "missing".to_string(),
        };
        Self {
            kind: AnomalyKind::UnknownStatus,
            record: record.to_string(),
            field: field.to_string(),
            detail,
        }
    }

    /// A field of record `record` that did not hold what the mapping expected: `found`
    /// describes what was there (`a number`, `missing`, `blank`), never the value.
    pub fn bad_field(record: &str, field: &str, expected: &str, found: &str) -> Self {
        Self {
            kind: AnomalyKind::BadField,
            record: record.to_string(),
            field: field.to_string(),
            detail: format!("expected {expected}, found {found}"),
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}: {})", self.record, self.field, self.detail)
    }
}

/// What kind of JSON value `value` is, for messages: `a number`, `text`, `a list`, ….
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads one JSON record of a target field by field. The identity is strict (see
/// [`record`](Self::record) and [`login`](Self::login)); every other field is tolerant: a
/// value of an unexpected type is noted as a `bad_field` [`Anomaly`] and read as absent.
/// Absent and `null` fields are simply absent.
pub struct Fields<'a> {
    target: &'a str,
    what: &'static str,
    object: &'a Map<String, Value>,
    /// The record's native id, for notes and messages.
    record: String,
    /// The path of this object inside the record (`""`, or `container.` for a nested one).
    path: String,
    anomalies: &'a mut Vec<Anomaly>,
}

impl<'a> Fields<'a> {
    /// Starts reading `value`, a `what` (`user`, `container`, …) whose id is under `id_key`:
    /// the id, and a reader of the rest that notes into `anomalies`. A value that is not an
    /// object, or whose id is absent or unreadable, is a malformed response naming the
    /// record: it cannot be skipped.
    pub fn record(
        target: &'a str,
        what: &'static str,
        value: &'a Value,
        id_key: &str,
        anomalies: &'a mut Vec<Anomaly>,
    ) -> Result<(NativeId, Self), ConnectorError> {
        let one = format!("{} {what}", article(what));
        let Value::Object(object) = value else {
            let problem = format!("{one} is {}, not an object", json_kind(value));
            return Err(cannot_skip(target, &problem));
        };
        let id = match object.get(id_key) {
            Some(raw) => NativeId::from_json(raw).ok_or_else(|| {
                unreadable_identity(target, &one, id_key, &describe_unusable(raw))
            })?,
            None => return Err(unreadable_identity(target, &one, id_key, "missing")),
        };
        let fields = Self {
            target,
            what,
            object,
            record: id.to_string(),
            path: String::new(),
            anomalies,
        };
        Ok((id, fields))
    }

    /// The record's login name under `key`: non-blank text, as sent. Anything else is a
    /// malformed response naming the record (an account without a usable login cannot be
    /// skipped either).
    pub fn login(&self, key: &str) -> Result<String, ConnectorError> {
        match self.object.get(key) {
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
            other => Err(unreadable_identity(
                self.target,
                &format!("{} {}", self.what, self.record),
                key,
                &other.map_or_else(|| "missing".to_string(), describe_unusable),
            )),
        }
    }

    /// The value under `key`, unless absent or `null`.
    pub fn value(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|value| !value.is_null())
    }

    /// Optional text under `key`, as sent.
    pub fn text(&mut self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::String(text) => Some(text.clone()),
            other => self.bad(key, "text", json_kind(other)),
        }
    }

    /// An optional boolean under `key`.
    pub fn flag(&mut self, key: &str) -> Option<bool> {
        match self.value(key)? {
            Value::Bool(flag) => Some(*flag),
            other => self.bad(key, "true or false", json_kind(other)),
        }
    }

    /// An optional id under `key` (a whole number or non-blank text).
    pub fn optional_id(&mut self, key: &str) -> Option<NativeId> {
        let value = self.value(key)?;
        match NativeId::from_json(value) {
            Some(id) => Some(id),
            None => self.bad(key, "an id", &describe_unusable(value)),
        }
    }

    /// The id under `key` that the object being read (a nested entry) cannot do without:
    /// absent is noted too, and the caller leaves the entry out.
    pub fn needed_id(&mut self, key: &str) -> Option<NativeId> {
        match self.value(key) {
            Some(_) => self.optional_id(key),
            None => self.bad(key, "an id", "missing"),
        }
    }

    /// Text under `key` that the record should have: absent is noted too, and the caller
    /// puts something in its place.
    pub fn needed_text(&mut self, key: &str) -> Option<String> {
        match self.value(key) {
            Some(_) => self.text(key),
            None => self.bad(key, "text", "missing"),
        }
    }

    /// An optional list under `key`.
    pub fn list(&mut self, key: &str) -> Option<&'a Vec<Value>> {
        match self.value(key)? {
            Value::Array(items) => Some(items),
            other => self.bad(key, "a list", json_kind(other)),
        }
    }

    /// Reads the object under `key` with `read` (which notes into the same record); `None`
    /// when absent, `null` or not an object (noted).
    pub fn nested<R>(
        &mut self,
        key: &str,
        read: impl FnOnce(&mut Fields<'_>) -> Option<R>,
    ) -> Option<R> {
        let value = self.value(key)?;
        let Value::Object(object) = value else {
            return self.bad(key, "an object", json_kind(value));
        };
        let mut nested = Fields {
            target: self.target,
            what: self.what,
            object,
            record: self.record.clone(),
            path: format!("{}{key}.", self.path),
            anomalies: &mut *self.anomalies,
        };
        read(&mut nested)
    }

    /// Reads each object of the list under `key` with `read`, leaving out the entries it
    /// gives `None` for and those that are not objects (noted); `None` when the list is
    /// absent, `null` or not a list (noted).
    pub fn each<R>(
        &mut self,
        key: &str,
        mut read: impl FnMut(&mut Fields<'_>) -> Option<R>,
    ) -> Option<Vec<R>> {
        let items = self.list(key)?;
        let mut read_items = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let entry = format!("{key}[{index}]");
            let Value::Object(object) = item else {
                self.bad::<()>(&entry, "an object", json_kind(item));
                continue;
            };
            let mut nested = Fields {
                target: self.target,
                what: self.what,
                object,
                record: self.record.clone(),
                path: format!("{}{entry}.", self.path),
                anomalies: &mut *self.anomalies,
            };
            read_items.extend(read(&mut nested));
        }
        Some(read_items)
    }

    /// Notes that the record's status under `key` is one the adapter does not know (`raw`,
    /// `None` when absent or `null`), keeps the raw value under [`RAW_STATUS`] in
    /// `attributes`, and gives the status such an account is read as: `inactive`.
    pub fn unknown_status(
        &mut self,
        key: &str,
        raw: Option<&Value>,
        attributes: &mut Attributes,
    ) -> AccountStatus {
        let shown = raw.map(|raw| match raw {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        });
        let field = format!("{}{key}", self.path);
        self.anomalies.push(Anomaly::unknown_status(
            &self.record,
            &field,
            shown.as_deref(),
        ));
        attributes.insert(RAW_STATUS.to_string(), raw.cloned().unwrap_or(Value::Null));
        AccountStatus::Inactive
    }

    /// Notes a bad field `key` and gives `None`, the value it is read as.
    fn bad<T>(&mut self, key: &str, expected: &str, found: &str) -> Option<T> {
        let field = format!("{}{key}", self.path);
        self.anomalies
            .push(Anomaly::bad_field(&self.record, &field, expected, found));
        None
    }
}

/// `an` before a word that starts with `a`, `e`, `i` or `o`, else `a` (the record names in
/// use: an access role, a user, a user group).
fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o') => "an",
        _ => "a",
    }
}

/// How an identity value fails to be usable: `blank`, `a list`, `a number that is not a
/// whole number`.
fn describe_unusable(value: &Value) -> String {
    match value {
        Value::String(_) => "blank".to_string(),
        Value::Number(_) => "a number that is not a whole number".to_string(),
        other => json_kind(other).to_string(),
    }
}

/// The error for a record whose identity (`key`) is `found` instead of usable.
fn unreadable_identity(target: &str, record: &str, key: &str, found: &str) -> ConnectorError {
    cannot_skip(target, &format!("{record} has no usable `{key}` ({found})"))
}

/// The error for a record that cannot be told apart because of `problem` (`a user has no
/// usable `id` (missing)`): a malformed response that says why the read fails rather than
/// skip it, and what to do.
pub fn cannot_skip(target: &str, problem: &str) -> ConnectorError {
    ConnectorError::malformed(
        target,
        format!(
            "{problem}. A record that cannot be told apart cannot be skipped, because a full \
             import would take it for a removal, so the read fails and nothing is changed; \
             fix the record in the target and import again"
        ),
    )
}

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
    /// The id a JSON value holds: a whole number, or non-blank text (as sent); `None` for
    /// anything else.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n.as_i64().map(NativeId::Number),
            Value::String(text) if !text.trim().is_empty() => Some(NativeId::Text(text.clone())),
            _ => None,
        }
    }

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
    fn native_ids_from_json_take_whole_numbers_and_non_blank_text() {
        assert_eq!(NativeId::from_json(&json!(7)), Some(NativeId::Number(7)));
        assert_eq!(NativeId::from_json(&json!(-7)), Some(NativeId::Number(-7)));
        assert_eq!(
            NativeId::from_json(&json!(" a ")),
            Some(NativeId::Text(" a ".into()))
        );
        for bad in [
            json!(1.5),
            json!(u64::MAX),
            json!(""),
            json!("  "),
            json!(null),
            json!([1]),
            json!({}),
            json!(true),
        ] {
            assert_eq!(NativeId::from_json(&bad), None, "{bad}");
        }
    }

    #[test]
    fn fields_read_what_fits_and_note_what_does_not() {
        let value = json!({
            "id": 3, "name": "n", "flag": true, "count": 4, "list": [1], "none": null,
            "nested": { "id": "x", "label": 5 },
            "entries": [{ "id": 1 }, 2, {}, { "id": 3 }],
        });
        let mut anomalies = Vec::new();
        let (id, mut fields) = Fields::record("t", "thing", &value, "id", &mut anomalies).unwrap();
        assert_eq!(id, NativeId::Number(3));
        assert_eq!(fields.login("name").unwrap(), "n");
        assert_eq!(fields.text("name").as_deref(), Some("n"));
        assert_eq!(fields.text("absent"), None);
        assert_eq!(fields.text("none"), None);
        assert_eq!(fields.flag("flag"), Some(true));
        assert_eq!(fields.optional_id("count"), Some(NativeId::Number(4)));
        assert_eq!(fields.list("list").map(Vec::len), Some(1));
        assert_eq!(fields.value("none"), None);
        // Nothing so far was odd.
        assert_eq!(fields.text("count"), None);
        assert_eq!(fields.flag("name"), None);
        assert_eq!(fields.optional_id("list"), None);
        assert_eq!(fields.list("flag"), None);
        assert_eq!(fields.needed_id("absent"), None);
        assert_eq!(fields.needed_text("absent"), None);
        let nested = fields.nested("nested", |nested| {
            Some((nested.needed_id("id")?, nested.text("label")))
        });
        assert_eq!(nested, Some((NativeId::Text("x".into()), None)));
        assert_eq!(fields.nested("name", |_| Some(())), None);
        let entries = fields.each("entries", |entry| entry.needed_id("id"));
        assert_eq!(
            entries,
            Some(vec![NativeId::Number(1), NativeId::Number(3)])
        );
        let mut attributes = Attributes::new();
        let status = fields.unknown_status("state", Some(&json!("odd")), &mut attributes);
        assert_eq!(status, AccountStatus::Inactive);
        assert_eq!(Value::Object(attributes), json!({ RAW_STATUS: "odd" }));
        let noted: Vec<String> = anomalies.iter().map(ToString::to_string).collect();
        assert_eq!(
            noted,
            [
                "3 (count: expected text, found a number)",
                "3 (name: expected true or false, found text)",
                "3 (list: expected an id, found a list)",
                "3 (flag: expected a list, found a boolean)",
                "3 (absent: expected an id, found missing)",
                "3 (absent: expected text, found missing)",
                "3 (nested.label: expected text, found a number)",
                "3 (name: expected an object, found text)",
                "3 (entries[1]: expected an object, found a number)",
                "3 (entries[2].id: expected an id, found missing)",
                "3 (state: `odd`)",
            ]
        );
        assert!(anomalies[..10]
            .iter()
            .all(|anomaly| anomaly.kind == AnomalyKind::BadField));
        assert_eq!(anomalies[10].kind, AnomalyKind::UnknownStatus);
    }

    #[test]
    fn a_record_without_a_usable_identity_is_a_malformed_response() {
        let mut anomalies = Vec::new();
        let err = Fields::record("t", "thing", &json!({ "id": "" }), "id", &mut anomalies)
            .err()
            .unwrap();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let text = err.to_string();
        assert!(
            text.contains("malformed response: a thing has no usable `id` (blank)")
                && text.contains("cannot be skipped")
                && text.contains("fix the record in the target"),
            "{text}"
        );
        let item = json!({ "id": 1, "login": 2 });
        let (_, fields) = Fields::record("t", "item", &item, "id", &mut anomalies).unwrap();
        let text = fields.login("login").unwrap_err().to_string();
        assert!(text.contains("item 1 has no usable `login`"), "{text}");
        let text = Fields::record("t", "item", &json!([]), "id", &mut anomalies)
            .err()
            .unwrap()
            .to_string();
        assert!(text.contains("an item is a list, not an object"), "{text}");
        assert!(anomalies.is_empty());
    }

    #[test]
    fn an_unknown_status_is_quoted_short_and_a_missing_one_said() {
        let long = "y".repeat(41);
        assert_eq!(
            Anomaly::unknown_status("1", "status", Some(&long)).detail,
            format!("`{}…`", "y".repeat(40))
        );
        assert_eq!(
            Anomaly::unknown_status("1", "status", Some("ok")).detail,
            "`ok`"
        );
        assert_eq!(
            Anomaly::unknown_status("1", "status", None).detail,
            "missing"
        );
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
