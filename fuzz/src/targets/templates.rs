//! The template renderer with hostile values: every built-in template of every adapter,
//! rendered with attribute, account, entitlement, password and request-id values taken from
//! the input. It must never panic, a JSON template must render JSON that parses, and an XML
//! template a well-formed fragment, whatever the values.
//!
//! An input is a JSON object `{"attributes": {…}, "account_name", "account_id",
//! "entitlement": [kind, id], "entitlement_name", "password", "request_id"}`; an input that
//! is not such an object is used, as lossy text, for every value.

use std::collections::BTreeMap;

use idsync::connector::template::{Escape, TemplateCatalog, TemplateContext, TemplateSet};
use idsync::connector::ProvisionRequest;
use idsync::model::{Attributes, Operation};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use secrecy::SecretString;
use serde_json::{json, Map, Value};

use crate::generate::{draw, hostile_text, json_value};
use crate::runner::Target;

/// The adapters' built-in template catalogs, by target kind.
const CATALOGS: [(&str, TemplateCatalog); 3] = [
    ("digicert", idsync::connector::digicert::TEMPLATES),
    ("jama", idsync::connector::jama::TEMPLATES),
    ("duckcreek", idsync::connector::duckcreek::TEMPLATES),
];

/// The templates target: the compiled built-in sets.
pub struct Templates {
    sets: Vec<(TemplateSet, Escape, Vec<&'static str>)>,
}

impl Templates {
    /// Compiles every built-in template set.
    pub fn new() -> Templates {
        let sets = CATALOGS
            .iter()
            .map(|(kind, catalog)| {
                let set = TemplateSet::from_catalog(kind, catalog, &BTreeMap::new())
                    .unwrap_or_else(|errs| panic!("built-in {kind} templates: {errs:?}"));
                let operations = catalog.defaults.iter().map(|(op, _)| *op).collect();
                (set, catalog.escape, operations)
            })
            .collect();
        Templates { sets }
    }
}

/// The values of one input.
struct Values {
    attributes: Map<String, Value>,
    account_name: String,
    account_id: String,
    entitlement: (String, String),
    entitlement_name: String,
    password: String,
    request_id: String,
}

impl Values {
    /// Reads `input` as the documented object, or uses it as text for every value.
    fn from_input(input: &[u8]) -> Values {
        let object = serde_json::from_slice::<Value>(input)
            .ok()
            .and_then(|v| v.as_object().cloned());
        let Some(object) = object else {
            let text = String::from_utf8_lossy(input).into_owned();
            let attributes = idsync::connector::template::SAMPLE_USER
                .iter()
                .map(|(key, _)| ((*key).to_string(), Value::from(text.clone())))
                .collect();
            return Values {
                attributes,
                account_name: text.clone(),
                account_id: text.clone(),
                entitlement: (text.clone(), text.clone()),
                entitlement_name: text.clone(),
                password: text.clone(),
                request_id: text,
            };
        };
        let text = |key: &str| match object.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let entitlement = match object.get("entitlement") {
            Some(Value::Array(pair)) => (
                pair.first().map(Value::to_string).unwrap_or_default(),
                pair.get(1).map(Value::to_string).unwrap_or_default(),
            ),
            _ => ("role".into(), text("entitlement")),
        };
        Values {
            attributes: object
                .get("attributes")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            account_name: text("account_name"),
            account_id: text("account_id"),
            entitlement,
            entitlement_name: text("entitlement_name"),
            password: text("password"),
            request_id: text("request_id"),
        }
    }
}

/// The number the digits of `text` make, or `5` when it has none.
fn digits(text: &str) -> String {
    let digits: String = text.chars().filter(char::is_ascii_digit).take(9).collect();
    // As the adapter binds it: the number it parses to.
    digits.parse::<u64>().unwrap_or(5).to_string()
}

/// The provisioning request of `values`.
fn request(
    values: &Values,
    entitlement: &(String, String),
    attributes: &Attributes,
) -> ProvisionRequest {
    ProvisionRequest {
        operation: Operation::ALL[0],
        account_id: Some(values.account_id.clone()),
        account_name: values.account_name.clone(),
        entitlement: Some(entitlement.clone()),
        attributes: attributes.clone(),
        entitlement_name: Some(values.entitlement_name.clone()),
        task_id: Some(1),
        request_id: Some(values.request_id.clone()),
    }
}

/// The template context of `request`, with the password and account id of `values`.
fn context(set: &TemplateSet, values: &Values, request: &ProvisionRequest) -> TemplateContext {
    TemplateContext::from_request(set.target(), request)
        // Passwords are generated (long); a one-character password would be redacted from
        // every error message wherever that character occurs (fuzz-findings.md).
        .with_password(&SecretString::from(format!(
            "Generated-{}",
            values.password
        )))
        .with_account_value("id", Value::from(values.account_id.clone()))
}

/// Whether every user attribute is text (then no render may fail at all).
fn all_text(attributes: &Map<String, Value>) -> bool {
    attributes.values().all(|v| v.is_string() || v.is_null())
}

impl Target for Templates {
    fn name(&self) -> &'static str {
        "templates"
    }

    fn run(&mut self, input: &[u8]) -> Result<(), String> {
        let values = Values::from_input(input);
        for (set, escape, operations) in &self.sets {
            for operation in operations {
                // Every key the template reads is bound (to the sample value unless the input
                // gives one), so an undefined-variable error is not a finding.
                let mut attributes: Attributes = Attributes::new();
                if let Some(keys) = set.reads(operation).and_then(|r| r.keys()) {
                    for key in keys {
                        attributes.insert(key.clone(), Value::from("sample"));
                    }
                }
                for (key, _) in idsync::connector::template::SAMPLE_USER {
                    attributes.insert(key.to_string(), Value::from("sample"));
                }
                for (key, value) in &values.attributes {
                    attributes.insert(key.to_lowercase(), value.clone());
                }
                let mut entitlement = values.entitlement.clone();
                // Hostile everywhere, first: no panic; an error is allowed (a value in a
                // number's place cannot render valid JSON).
                let hostile = request(&values, &entitlement, &attributes);
                let hostile = context(set, &values, &hostile);
                let _ = set
                    .render_text(operation, &hostile)
                    .map_err(|e| e.to_string());
                // Then as the adapter lets them through: DigiCert refuses a role or a
                // container_id that is not a number before it renders (`role_number`,
                // `numeric`), so those slots get numbers; the rest stays hostile and must
                // render valid JSON or well-formed XML.
                if set.target() == "digicert" {
                    entitlement.1 = digits(&entitlement.1);
                    if let Some(container) = attributes.get_mut("container_id") {
                        *container =
                            Value::from(digits(&container.to_string()).parse::<u64>().unwrap_or(5));
                    }
                }
                let allowed = request(&values, &entitlement, &attributes);
                let context = context(set, &values, &allowed);
                match set.render_text(operation, &context) {
                    Ok(text) => check_format(*escape, &text)
                        .map_err(|why| format!("{} {operation}: {why}", set.target()))?,
                    Err(err) => {
                        let message = err.to_string();
                        let malformed = message.contains("not valid JSON")
                            || message.contains("not well-formed");
                        // Refusing a character XML 1.0 cannot carry is the documented answer.
                        let refused = message.contains("which XML cannot carry");
                        if malformed || (all_text(&attributes) && !refused) {
                            return Err(format!(
                                "{} {operation} failed to render text values: {message}",
                                set.target()
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn generate(&mut self, runner: &mut TestRunner) -> Vec<u8> {
        let keys: &'static [&'static str] = &[
            "username",
            "email",
            "first_name",
            "last_name",
            "firstname",
            "lastname",
            "title",
            "phone",
            "fullname",
            "displayname",
            "password",
            "license_type",
        ];
        let text_only = draw(any::<bool>(), runner);
        let attributes: Map<String, Value> = if text_only {
            draw(
                prop::collection::vec((prop::sample::select(keys.to_vec()), hostile_text()), 0..10),
                runner,
            )
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect()
        } else {
            draw(
                prop::collection::vec(
                    (prop::sample::select(keys.to_vec()), json_value(keys, 2)),
                    0..10,
                ),
                runner,
            )
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        };
        let text = hostile_text();
        let body = json!({
            "attributes": attributes,
            "account_name": draw(text.clone(), runner),
            "account_id": draw(text.clone(), runner),
            "entitlement": [draw(text.clone(), runner), draw(text.clone(), runner)],
            "entitlement_name": draw(text.clone(), runner),
            "password": draw(text.clone(), runner),
            "request_id": draw(text, runner),
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// Checks `text` against the set's format with parsers of its own.
fn check_format(escape: Escape, text: &str) -> Result<(), String> {
    match escape {
        Escape::Json => serde_json::from_str::<Value>(text)
            .map(|_| ())
            .map_err(|err| format!("rendered invalid JSON ({err})")),
        Escape::Xml => well_formed_fragment(text),
    }
}

/// Whether `text` is a well-formed XML fragment, read by quick-xml with end-name checks
/// (independent of idsync's own check), with no character XML 1.0 forbids.
fn well_formed_fragment(text: &str) -> Result<(), String> {
    if let Some(c) = idsync::connector::xml::forbidden_char(text) {
        return Err(format!("rendered a character XML forbids: {:?}", c));
    }
    let wrapped = format!("<fragment>{text}</fragment>");
    let mut reader = quick_xml::Reader::from_str(&wrapped);
    reader.config_mut().check_end_names = true;
    let mut depth = 0i64;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Text(t)) => {
                t.decode()
                    .map_err(|err| format!("rendered undecodable text ({err})"))?;
            }
            Ok(_) => {}
            Err(err) => return Err(format!("rendered malformed XML ({err})")),
        }
    }
    if depth != 0 {
        return Err("rendered unclosed XML".into());
    }
    Ok(())
}
