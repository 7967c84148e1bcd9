//! The settings a Duck Creek target reads, and their checks (the same for `check-config` and
//! the constructor).

use std::collections::HashMap;
use std::ops::RangeInclusive;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigProblem, RequestWrapper, SoapVersion, TargetConfig};
use crate::connector::kit::settings::{self, Problems};
use crate::connector::xml::{escape, forbidden_char, is_local_name};
use crate::model::Operation;

/// Records handed to the store at a time when the target's `page_size` is unset.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// The entity whose users are imported when `entity_id` is unset.
pub const DEFAULT_ENTITY_ID: &str = "1";

/// The error code of an add whose grant is already in place (counts as done).
pub const ALREADY_ASSIGNED: &str = "AlreadyAssigned";
/// The error code of a remove whose grant is not there (counts as done).
pub const NOT_ASSIGNED: &str = "NotAssigned";
/// The error code of a request naming an unknown user (`remove_account`: counts as done).
pub const USER_NOT_FOUND: &str = "UserNotFound";

/// The operations whose failure codes may mean the change is already in place
/// (`already_done_codes` keys). A create is not among them: a duplicate create is judged by
/// looking the account up.
pub const ALREADY_DONE_OPERATIONS: &[&str] = &[
    "add_access",
    "remove_access",
    "disable_account",
    "enable_account",
    "remove_account",
];

/// A Duck Creek target's settings, read and checked.
#[derive(Debug)]
pub struct Settings {
    /// The service account's user name (sent in every batch's login).
    pub username: String,
    /// Its password (sent in every batch's login, never logged).
    pub password: SecretString,
    /// The entity whose users are imported.
    pub entity_id: String,
    /// The SOAP version.
    pub soap_version: SoapVersion,
    /// The `SOAPAction` (1.1) or `action` parameter (1.2); `None` (unset): no `SOAPAction`
    /// header, as Saviynt's published Duck Creek package sends (Content-Type only);
    /// `Some("")`: `SOAPAction: ""`.
    pub soap_action: Option<String>,
    /// The request content type; `None`: the version's default.
    pub content_type: Option<String>,
    /// The opening and closing tags `<server>` is wrapped in (both empty when unwrapped).
    pub wrapper: (String, String),
    /// Per operation, the failure codes that mean the change is already in place.
    pub already_done: HashMap<Operation, Vec<String>>,
}

impl settings::Settings for Settings {
    const KEYS: &'static [&'static str] = &[
        "username",
        "password",
        "entity_id",
        "soap_action",
        "soap_version",
        "content_type",
        "request_wrapper",
        "already_done_codes",
    ];
    // Duck Creek lists come whole; this is only the batch handed to the store.
    const PAGE_SIZES: RangeInclusive<u32> = 1..=10_000;
    const DEFAULT_PAGE_SIZE: u32 = DEFAULT_PAGE_SIZE;

    fn read(target: &TargetConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let username = match target.username.as_deref() {
            None => {
                problems.push(settings::required(
                    target,
                    "username",
                    "write the service account's user name, e.g. username = \"svc_idsync\"",
                ));
                None
            }
            Some(name) if name.trim().is_empty() => {
                problems.add("username", Some(name), "must not be empty");
                None
            }
            Some(name) if forbidden_char(name).is_some() => {
                problems.add(
                    "username",
                    Some(name),
                    "holds a control character, which XML cannot carry",
                );
                None
            }
            Some(name) => Some(name.to_string()),
        };
        let password = problems
            .take(settings::required_secret(
                target,
                "password",
                target.password.as_ref(),
                "write password = { file = \"/run/credentials/idsync/duckcreek\" } (or { env = \
                 \"DUCKCREEK_PASSWORD\" })",
            ))
            .filter(|password| {
                let usable = forbidden_char(password.expose_secret()).is_none();
                if !usable {
                    problems.add(
                        "password",
                        None,
                        "holds a control character, which XML cannot carry (a stray newline in \
                         the file is trimmed; other control characters are not)",
                    );
                }
                usable
            });
        let entity_id = target
            .entity_id
            .clone()
            .unwrap_or_else(|| DEFAULT_ENTITY_ID.to_string());
        if entity_id.trim().is_empty() || forbidden_char(&entity_id).is_some() {
            problems.add(
                "entity_id",
                Some(&entity_id),
                "must be a Duck Creek entity id, e.g. \"1\"",
            );
        }
        if let Some(action) = &target.soap_action {
            if reqwest::header::HeaderValue::from_str(action).is_err() || action.contains('"') {
                problems.add(
                    "soap_action",
                    Some(action),
                    "must be printable text without quotes (it is sent in the SOAPAction header)",
                );
            }
        }
        if let Some(content_type) = &target.content_type {
            if reqwest::header::HeaderValue::from_str(content_type).is_err()
                || !content_type.to_ascii_lowercase().contains("xml")
            {
                problems.add(
                    "content_type",
                    Some(content_type),
                    "must be an XML media type, e.g. \"text/xml; charset=utf-8\"",
                );
            }
        }
        check_already_done_codes(target, &mut problems);
        let wrapper = wrapper_tags(target.request_wrapper.as_ref(), &mut problems);
        let read = username.zip(password).map(|(username, password)| Self {
            username,
            password,
            entity_id,
            soap_version: target.soap_version.unwrap_or_default(),
            soap_action: target.soap_action.clone(),
            content_type: target.content_type.clone(),
            wrapper,
            already_done: already_done_table(target),
        });
        problems.finish(read)
    }
}

/// Checks `already_done_codes`: keys are operations of [`ALREADY_DONE_OPERATIONS`], codes
/// are non-empty words.
fn check_already_done_codes(target: &TargetConfig, problems: &mut Problems) {
    for (operation, codes) in &target.already_done_codes {
        let key = format!("already_done_codes.{operation}");
        if !ALREADY_DONE_OPERATIONS.contains(&operation.as_str()) {
            problems.add(
                &key,
                None,
                format!(
                    "is not an operation whose failure can mean \"already done\"; use one of {}",
                    ALREADY_DONE_OPERATIONS.join(", ")
                ),
            );
        }
        if let Some(bad) = codes.iter().find(|code| {
            code.trim().is_empty() || code.trim() != code.as_str() || forbidden_char(code).is_some()
        }) {
            problems.add(
                &key,
                Some(bad),
                "codes must be non-empty, without surrounding spaces or control characters, \
                 e.g. \"AlreadyAssigned\"",
            );
        }
    }
}

/// The "already done" codes of every operation that has some: the target's
/// `already_done_codes` entry, else the built-in list.
fn already_done_table(target: &TargetConfig) -> HashMap<Operation, Vec<String>> {
    Operation::ALL
        .iter()
        .map(|operation| {
            let codes = match target.already_done_codes.get(operation.as_str()) {
                Some(codes) => codes.clone(),
                None => built_in_already_done(*operation)
                    .iter()
                    .map(|code| (*code).to_string())
                    .collect(),
            };
            (*operation, codes)
        })
        .filter(|(_, codes)| !codes.is_empty())
        .collect()
}

/// The codes that count as "already done" for `operation` unless the target says otherwise.
fn built_in_already_done(operation: Operation) -> &'static [&'static str] {
    match operation {
        Operation::AddAccess => &[ALREADY_ASSIGNED],
        Operation::RemoveAccess => &[NOT_ASSIGNED],
        Operation::RemoveAccount => &[USER_NOT_FOUND],
        _ => &[],
    }
}

/// The opening and closing tags of `request_wrapper` (a prefixed element, so the `<server>`
/// document inside stays in no namespace); two empty strings when there is none or it is
/// unusable (its problems recorded).
fn wrapper_tags(wrapper: Option<&RequestWrapper>, problems: &mut Problems) -> (String, String) {
    let Some(wrapper) = wrapper else {
        return (String::new(), String::new());
    };
    let mut usable = true;
    if !is_local_name(&wrapper.element) {
        usable = false;
        problems.add(
            "request_wrapper.element",
            Some(&wrapper.element),
            "must be an XML element name without a prefix, e.g. \"processRequestsAsDOM\"",
        );
    }
    if forbidden_char(&wrapper.namespace).is_some() || wrapper.namespace.trim() != wrapper.namespace
    {
        usable = false;
        problems.add(
            "request_wrapper.namespace",
            Some(&wrapper.namespace),
            "must be a namespace URI without control characters or surrounding spaces, e.g. \
             \"http://tempuri.org/\" (or \"\" for none)",
        );
    }
    let element = &wrapper.element;
    match (usable, wrapper.namespace.is_empty()) {
        (false, _) => (String::new(), String::new()),
        (true, true) => (format!("<{element}>"), format!("</{element}>")),
        (true, false) => (
            format!("<w:{element} xmlns:w=\"{}\">", escape(&wrapper.namespace)),
            format!("</w:{element}>"),
        ),
    }
}
