//! Request-body templates: minijinja with Saviynt-style `${ … }` variable delimiters,
//! `{% … %}` blocks for conditionals and loops, strict undefined and an escaping formatter.
//!
//! * **Delimiters**: `${ user.firstname }` prints a value; `{% if user.title %}…{% endif %}`
//!   tests one (a missing value is false there).
//! * **Strict undefined**: printing a missing variable (or a missing attribute of one) is an
//!   error naming the template and the line, never an empty string.
//! * **Escaping** ([`Escape::Json`]): a printed string is written as JSON string *content*
//!   (quotes, backslashes and control characters escaped), so a template writes
//!   `{"username": "${ user.username }"}`. Numbers and booleans are printed as they are, none
//!   as `null`, lists and maps as their JSON text (escaped like a string). A value marked safe
//!   (`${ user.groups | tojson }`) is written raw.
//! * **Escaping** ([`Escape::Xml`]): a printed string is written as XML attribute/text
//!   content (`&`, `<`, `>`, `"`, `'` as entities; tab, newline and carriage return as
//!   character references), numbers and booleans as they are, none as nothing; a list or map
//!   cannot be printed, nor a character XML 1.0 cannot carry. A value marked safe is raw.
//! * **Output**: a rendered JSON body must parse as JSON, a rendered XML fragment must be
//!   well-formed (one or more elements; [`fragment_elements`]), else the error names the
//!   template. Rendered bodies are never logged, and a password bound to a context is
//!   redacted from every error.
//! * **Optional templates**: an adapter may name operations that have no built-in body and
//!   are supported only when the operator configures one (Duck Creek's `create_account`).
//!
//! Bindings (Saviynt names), built by [`TemplateContext`]:
//!
//! | binding | value |
//! |---|---|
//! | `user.*` | the task's attributes, keys lower-cased, nulls left out (`username` defaults to the account name) |
//! | `account.name`, `account.accountID`, `account.*` | the account's login name, its native id when known, and what the adapter adds |
//! | `entitlementValue.entitlementID`, `entitlementValue.entitlement_value`, `entitlementValue.entitlement_type` | the task's entitlement: id, display name (else the id), type |
//! | `password` | a generated initial password (create on targets that need one) |
//! | `requestid` | the caller's request id, else the task id |
//! | `task.id`, `task.operation`, `task.target` | the task |
//!
//! `check-config` renders every template against [`TemplateSet::sample`], where every
//! binding above is set (`user.*` with [`SAMPLE_USER`], and every other key the template
//! reads with [`SAMPLE_CUSTOM_VALUE`]): a template that prints anything else unconditionally
//! fails at load, not at 2 a.m. So does one that reads a `user.*` key with a capital letter,
//! which no task attribute can match (their keys are lower-cased).
//!
//! [`TemplateSet::reads`] says which `user.*` keys each template reads (see [`reads`]): a
//! submit naming a key that no template of its operation reads is refused.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, ValueKind};
use minijinja::{Environment, Output, State, UndefinedBehavior, Value};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Map;

use super::xml::{forbidden_char, fragment_elements, write_escaped};
use super::ProvisionRequest;
use crate::model::Attributes;

pub mod reads;

pub use self::reads::{AttributeReads, SAMPLE_CUSTOM_VALUE};

/// How printed values are escaped: the format of the body being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// JSON string content: `"`, `\` and control characters escaped.
    Json,
    /// XML attribute or text content; the output must be a well-formed XML fragment.
    Xml,
}

/// The request-body templates an adapter kind has: built-in defaults by operation key,
/// keys an operator may configure that have no built-in body, and the body format.
#[derive(Debug, Clone, Copy)]
pub struct TemplateCatalog {
    /// `(key, built-in source)` of each template with a default.
    pub defaults: &'static [(&'static str, &'static str)],
    /// Keys with no built-in body: the operation is supported only when one is configured.
    pub optional: &'static [&'static str],
    /// How printed values are escaped, and what the output must be.
    pub escape: Escape,
}

/// A template that failed to compile or render: its config key and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {key}: {message}")]
pub struct TemplateError {
    /// The dotted config key, e.g. `targets.digicert.templates.create_account`.
    pub key: String,
    /// minijinja's message (with the line), or why the output is not a body.
    pub message: String,
}

/// The sample `user.*` attributes `check-config` renders templates with.
pub const SAMPLE_USER: [(&str, &str); 13] = [
    ("username", "jane.doe"),
    ("firstname", "Jane"),
    ("lastname", "O'Doe \"Sample\""),
    ("displayname", "Jane Doe"),
    ("email", "jane.doe@example.com"),
    ("phonenumber", "555-0100"),
    ("title", "Engineer"),
    ("department", "R&D"),
    ("location", "Berlin"),
    ("employeeid", "E1234"),
    ("manager", "john.roe"),
    ("license_type", "NAMED"),
    ("container_id", "1"),
];

/// The dotted config key of template `operation` of target `target`.
pub fn template_key(target: &str, operation: &str) -> String {
    format!("targets.{target}.templates.{operation}")
}

/// The values a template sees. Built from a [`ProvisionRequest`]; the adapter adds what only
/// it knows (a generated password, a default entitlement, `account.*` extras).
#[derive(Clone)]
pub struct TemplateContext {
    user: Attributes,
    account: Attributes,
    entitlement: Option<Attributes>,
    password: Option<SecretString>,
    request_id: Option<String>,
    task: Attributes,
}

impl fmt::Debug for TemplateContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateContext")
            .field("account", &self.account)
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl TemplateContext {
    /// The bindings of `request` on target `target`: `user.*` from its attributes (keys
    /// lower-cased, nulls left out, `username` defaulting to the account name), `account.name`
    /// and `account.accountID`, `entitlementValue.*` when it names an entitlement,
    /// `requestid` (the request id, else the task id) and `task.*`.
    pub fn from_request(target: &str, request: &ProvisionRequest) -> Self {
        let mut user = Attributes::new();
        for (key, value) in &request.attributes {
            if !value.is_null() {
                user.insert(key.to_lowercase(), value.clone());
            }
        }
        user.entry("username")
            .or_insert_with(|| request.account_name.clone().into());
        let mut account = Attributes::new();
        account.insert("name".into(), request.account_name.clone().into());
        if let Some(id) = &request.account_id {
            account.insert("accountID".into(), id.clone().into());
            account.insert("id".into(), id.clone().into());
        }
        let entitlement = request
            .entitlement
            .as_ref()
            .map(|(kind, id)| entitlement_binding(kind, id, request.entitlement_name.as_deref()));
        let mut task = Attributes::new();
        if let Some(id) = request.task_id {
            task.insert("id".into(), id.into());
        }
        task.insert("operation".into(), request.operation.to_string().into());
        task.insert("target".into(), target.into());
        Self {
            user,
            account,
            entitlement,
            password: None,
            request_id: request
                .request_id
                .clone()
                .or_else(|| request.task_id.map(|id| id.to_string())),
            task,
        }
    }

    /// A context where every binding is set, to render templates at load (`check-config`):
    /// `user.*` from [`SAMPLE_USER`], an account with an id, role `5` "Standard User", a
    /// password, a request id and task 1 of `operation`.
    pub fn sample(target: &str, operation: &str) -> Self {
        let user = SAMPLE_USER
            .iter()
            .map(|(key, value)| ((*key).to_string(), (*value).into()))
            .collect();
        let mut account = Attributes::new();
        account.insert("name".into(), "jane.doe".into());
        account.insert("accountID".into(), "1001".into());
        account.insert("id".into(), "1001".into());
        let mut task = Attributes::new();
        task.insert("id".into(), 1.into());
        task.insert("operation".into(), operation.into());
        task.insert("target".into(), target.into());
        Self {
            user,
            account,
            entitlement: Some(entitlement_binding("role", "5", Some("Standard User"))),
            password: Some(SecretString::from("Sample-Passw0rd!")),
            request_id: Some("sample-request".into()),
            task,
        }
    }

    /// Binds `password` (a generated initial password). It is redacted from render errors.
    pub fn with_password(mut self, password: &SecretString) -> Self {
        self.password = Some(password.clone());
        self
    }

    /// Binds `entitlementValue.*` to entitlement `id` of `kind` (e.g. a default role the task
    /// did not name), replacing the request's.
    pub fn with_entitlement(mut self, kind: &str, id: &str, name: Option<&str>) -> Self {
        self.entitlement = Some(entitlement_binding(kind, id, name));
        self
    }

    /// Sets `account.KEY`.
    pub fn with_account_value(mut self, key: &str, value: serde_json::Value) -> Self {
        self.account.insert(key.to_string(), value);
        self
    }

    /// Sets every `user.KEY` of `reads` that is not set yet to its sample value
    /// ([`SAMPLE_CUSTOM_VALUE`] for a key [`SAMPLE_USER`] does not hold).
    fn with_sample_reads(mut self, reads: &AttributeReads) -> Self {
        for key in reads.keys().into_iter().flatten() {
            self.user
                .entry(key.clone())
                .or_insert_with(|| reads::sample_value(key).into());
        }
        self
    }

    /// The minijinja root value.
    fn root(&self) -> Value {
        self.root_with_user(Value::from(Serde(&self.user)))
    }

    /// The minijinja root value, with `user` bound to `user` instead of the attributes.
    fn root_with_user(&self, user: Value) -> Value {
        let mut root = BTreeMap::new();
        root.insert("user", user);
        root.insert("account", Value::from(Serde(&self.account)));
        if let Some(entitlement) = &self.entitlement {
            root.insert("entitlementValue", Value::from(Serde(entitlement)));
        }
        if let Some(password) = &self.password {
            root.insert("password", Value::from(password.expose_secret()));
        }
        if let Some(id) = &self.request_id {
            root.insert("requestid", Value::from(id.as_str()));
        }
        root.insert("task", Value::from(Serde(&self.task)));
        Value::from(root)
    }

    /// `text` with the bound password (if any) replaced by `[REDACTED]`.
    fn redact(&self, text: String) -> String {
        match &self.password {
            Some(password) if !password.expose_secret().is_empty() => {
                text.replace(password.expose_secret(), "[REDACTED]")
            }
            _ => text,
        }
    }
}

/// `entitlementValue`: `entitlementID`, `entitlement_value` (the name, else the id) and
/// `entitlement_type`.
fn entitlement_binding(kind: &str, id: &str, name: Option<&str>) -> Attributes {
    let mut binding = Attributes::new();
    binding.insert("entitlementID".into(), id.into());
    binding.insert("entitlement_value".into(), name.unwrap_or(id).into());
    binding.insert("entitlement_type".into(), kind.into());
    binding
}

/// The compiled request-body templates of one target: the adapter's built-in defaults with
/// the target's `templates` overrides applied.
pub struct TemplateSet {
    target: String,
    escape: Escape,
    env: Environment<'static>,
    /// The operations with a template, and whether the template is built in.
    operations: BTreeMap<String, bool>,
    /// The task attributes each template reads.
    reads: BTreeMap<String, AttributeReads>,
}

impl fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateSet")
            .field("target", &self.target)
            .field("operations", &self.operations)
            .field("reads", &self.reads)
            .finish_non_exhaustive()
    }
}

impl TemplateSet {
    /// Compiles the templates of target `target`: each of `defaults` (operation → source),
    /// replaced by `overrides` where the target sets one. An override for an operation without
    /// a default, or a template that does not compile, is an error; every error is returned.
    pub fn new(
        target: &str,
        escape: Escape,
        defaults: &'static [(&'static str, &'static str)],
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, Vec<TemplateError>> {
        let catalog = TemplateCatalog {
            defaults,
            optional: &[],
            escape,
        };
        Self::from_catalog(target, &catalog, overrides)
    }

    /// Compiles the templates of `catalog` for target `target`: each default, replaced by
    /// `overrides` where the target sets one, plus each optional key the target sets. An
    /// override for any other key, or a template that does not compile, is an error; every
    /// error is returned.
    pub fn from_catalog(
        target: &str,
        catalog: &TemplateCatalog,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, Vec<TemplateError>> {
        let (defaults, escape) = (catalog.defaults, catalog.escape);
        let mut env = Environment::new();
        // Debug mode makes an undefined-variable error name the expression (`user.title` is
        // undefined). It also attaches a dump of the context's values (a password included),
        // shown only by `{:#}` and `{:?}` of the error: `describe` uses plain `Display`, and
        // the error is dropped there.
        env.set_debug(true);
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        match escape {
            Escape::Json => env.set_formatter(json_formatter),
            Escape::Xml => env.set_formatter(xml_formatter),
        }
        let mut errors = Vec::new();
        let syntax = syntax();
        match &syntax {
            Ok(syntax) => env.set_syntax(syntax.clone()),
            Err(err) => errors.push(TemplateError {
                key: format!("targets.{target}.templates"),
                message: format!("cannot configure the template syntax: {err}"),
            }),
        }
        let known: Vec<&str> = defaults
            .iter()
            .map(|(operation, _)| *operation)
            .chain(catalog.optional.iter().copied())
            .collect();
        for operation in overrides.keys() {
            if !known.contains(&operation.as_str()) {
                errors.push(TemplateError {
                    key: template_key(target, operation),
                    message: format!(
                        "is not a template this kind of target has; the templates are {}",
                        known.join(", ")
                    ),
                });
            }
        }
        // (operation, source, built in): each default or its override, then each optional
        // template the target sets.
        let sources = defaults
            .iter()
            .map(|(operation, default)| match overrides.get(*operation) {
                Some(source) => (*operation, source.clone(), false),
                None => (*operation, (*default).to_string(), true),
            })
            .chain(catalog.optional.iter().filter_map(|operation| {
                overrides
                    .get(*operation)
                    .map(|source| (*operation, source.clone(), false))
            }));
        let mut operations = BTreeMap::new();
        let mut reads = BTreeMap::new();
        for (operation, source, built_in) in sources {
            let key = template_key(target, operation);
            match env.add_template_owned(key.clone(), source.clone()) {
                Ok(()) => {
                    operations.insert(operation.to_string(), built_in);
                    if let Ok(syntax) = &syntax {
                        let sample = TemplateContext::sample(target, operation);
                        let read = reads::attribute_reads(&source, syntax, |user| {
                            sample.root_with_user(user)
                        });
                        reads.insert(operation.to_string(), read);
                    }
                }
                Err(err) => errors.push(TemplateError {
                    key,
                    message: describe(&err),
                }),
            }
        }
        if errors.is_empty() {
            Ok(Self {
                target: target.to_string(),
                escape,
                env,
                operations,
                reads,
            })
        } else {
            Err(errors)
        }
    }

    /// The target the set was built for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether `operation` has a template.
    pub fn has(&self, operation: &str) -> bool {
        self.operations.contains_key(operation)
    }

    /// The task attributes (`user.*` keys) template `operation` reads; `None` when there is
    /// no such template.
    pub fn reads(&self, operation: &str) -> Option<&AttributeReads> {
        self.reads.get(operation)
    }

    /// The context `check-config` renders template `operation` with:
    /// [`TemplateContext::sample`], plus a sample value for every other `user.*` key the
    /// template reads (an operator's custom attribute is not an error).
    pub fn sample(&self, operation: &str) -> TemplateContext {
        let sample = TemplateContext::sample(&self.target, operation);
        match self.reads(operation) {
            Some(reads) => sample.with_sample_reads(reads),
            None => sample,
        }
    }

    /// Renders template `operation` with `context` and parses the result as JSON. Errors name
    /// the template's key and never carry the rendered body or the bound password.
    pub fn render(
        &self,
        operation: &str,
        context: &TemplateContext,
    ) -> Result<serde_json::Value, TemplateError> {
        let text = self.render_raw(operation, context)?;
        self.parse_json(operation, context, &text)
    }

    /// Renders XML template `operation` with `context` into a well-formed fragment, with the
    /// names of its top-level elements (the requests it holds). Errors name the template's
    /// key and never carry the rendered body or the bound password.
    pub fn render_xml(
        &self,
        operation: &str,
        context: &TemplateContext,
    ) -> Result<(String, Vec<String>), TemplateError> {
        let text = self.render_raw(operation, context)?;
        let names = fragment_elements(&text).map_err(|err| {
            self.failure(
                operation,
                context,
                format!(
                    "the rendered body is not well-formed XML: {err}; check that every element \
                     is closed with its own name and every attribute is quoted"
                ),
            )
        })?;
        Ok((text, names))
    }

    /// Renders template `operation` with `context` as text checked for the set's format: JSON
    /// that parses, or a well-formed XML fragment. Errors name the template's key and never
    /// carry the rendered body or the bound password.
    pub fn render_text(
        &self,
        operation: &str,
        context: &TemplateContext,
    ) -> Result<String, TemplateError> {
        match self.escape {
            Escape::Json => {
                let text = self.render_raw(operation, context)?;
                self.parse_json(operation, context, &text)?;
                Ok(text)
            }
            Escape::Xml => Ok(self.render_xml(operation, context)?.0),
        }
    }

    /// Renders template `operation` with `context`, unchecked.
    fn render_raw(
        &self,
        operation: &str,
        context: &TemplateContext,
    ) -> Result<String, TemplateError> {
        let key = template_key(&self.target, operation);
        let template = self.env.get_template(&key).map_err(|_| {
            self.failure(
                operation,
                context,
                format!(
                    "there is no template for {operation} (the templates are {})",
                    self.operations
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        template
            .render(context.root())
            .map_err(|err| self.failure(operation, context, describe(&err)))
    }

    /// `text`, rendered by template `operation`, parsed as JSON.
    fn parse_json(
        &self,
        operation: &str,
        context: &TemplateContext,
        text: &str,
    ) -> Result<serde_json::Value, TemplateError> {
        serde_json::from_str(text).map_err(|err| {
            self.failure(
                operation,
                context,
                format!(
                    "the rendered body is not valid JSON ({err}); check the quotes and commas \
                     around each ${{ … }} and {{% … %}}"
                ),
            )
        })
    }

    /// A render error of template `operation`, with the bound password redacted.
    fn failure(
        &self,
        operation: &str,
        context: &TemplateContext,
        message: String,
    ) -> TemplateError {
        TemplateError {
            key: template_key(&self.target, operation),
            message: context.redact(message),
        }
    }

    /// Renders every template against its [`sample`](Self::sample) context: the errors of
    /// the ones that fail (empty: all render to a well-formed body), and of the ones that
    /// read a `user.*` key with a capital letter.
    pub fn check(&self) -> Vec<TemplateError> {
        self.operations
            .keys()
            .filter_map(|operation| {
                self.check_read_keys(operation)
                    .err()
                    .or_else(|| self.render_text(operation, &self.sample(operation)).err())
            })
            .collect()
    }

    /// Refuses template `operation` when it reads a `user.*` key with a capital letter:
    /// task attribute keys are lower-cased, so it could never match one.
    fn check_read_keys(&self, operation: &str) -> Result<(), TemplateError> {
        let keys = self.reads(operation).and_then(AttributeReads::keys);
        let capitalised: Vec<&str> = keys
            .into_iter()
            .flatten()
            .filter(|key| key.chars().any(char::is_uppercase))
            .map(String::as_str)
            .collect();
        if capitalised.is_empty() {
            return Ok(());
        }
        let lower: Vec<String> = capitalised
            .iter()
            .map(|key| format!("user.{}", key.to_lowercase()))
            .collect();
        Err(TemplateError {
            key: template_key(&self.target, operation),
            message: format!(
                "reads {}, but task attribute keys are lower-cased, so no attribute can \
                 match; write {}",
                capitalised
                    .iter()
                    .map(|key| format!("user.{key}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                lower.join(", ")
            ),
        })
    }
}

/// The template syntax: `${ … }` variables, `{% … %}` blocks, `{# … #}` comments.
fn syntax() -> Result<SyntaxConfig, minijinja::Error> {
    SyntaxConfig::builder()
        .variable_delimiters("${", "}")
        .block_delimiters("{%", "%}")
        .comment_delimiters("{#", "#}")
        .build()
}

/// Compiles the templates of `catalog` for `target` (with the target's overrides) and
/// renders each against the sample context: every problem found.
pub fn check_catalog(
    target: &str,
    catalog: &TemplateCatalog,
    overrides: &BTreeMap<String, String>,
) -> Vec<TemplateError> {
    match TemplateSet::from_catalog(target, catalog, overrides) {
        Ok(set) => set.check(),
        Err(errors) => errors,
    }
}

/// minijinja's message, with the template line it names.
fn describe(err: &minijinja::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// The error of a formatter that could not write its output.
fn write_failure(_: fmt::Error) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::WriteFailure,
        "cannot write the output",
    )
}

/// The [`Escape::Json`] formatter: strings as JSON string content, numbers and booleans as
/// they are, none as `null`, lists and maps as escaped JSON text, safe values raw.
fn json_formatter(
    out: &mut Output,
    _state: &mut State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let io = write_failure;
    if value.is_safe() {
        return out
            .write_str(value.as_str().unwrap_or_default())
            .map_err(io);
    }
    match value.kind() {
        ValueKind::Undefined => Ok(()),
        ValueKind::None => out.write_str("null").map_err(io),
        ValueKind::Bool => out
            .write_str(if value.is_true() { "true" } else { "false" })
            .map_err(io),
        ValueKind::Number => write!(out, "{value}").map_err(io),
        ValueKind::String => {
            write_json_content(out, value.as_str().unwrap_or_default()).map_err(io)
        }
        _ => {
            let text = serde_json::to_string(value).map_err(|err| {
                minijinja::Error::new(
                    minijinja::ErrorKind::BadSerialization,
                    format!("cannot print a {} value as JSON: {err}", value.kind()),
                )
            })?;
            write_json_content(out, &text).map_err(io)
        }
    }
}

/// The [`Escape::Xml`] formatter: strings escaped as XML content, numbers and booleans as
/// they are, none as nothing, safe values raw; lists, maps and characters XML cannot carry
/// are errors.
fn xml_formatter(
    out: &mut Output,
    _state: &mut State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let io = write_failure;
    if value.is_safe() {
        return out
            .write_str(value.as_str().unwrap_or_default())
            .map_err(io);
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Ok(()),
        ValueKind::Bool => out
            .write_str(if value.is_true() { "true" } else { "false" })
            .map_err(io),
        ValueKind::Number => write!(out, "{value}").map_err(io),
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            if let Some(c) = forbidden_char(text) {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::BadSerialization,
                    format!(
                        "a value holds the character U+{:04X}, which XML cannot carry",
                        u32::from(c)
                    ),
                ));
            }
            write_escaped(out, text).map_err(io)
        }
        kind => Err(minijinja::Error::new(
            minijinja::ErrorKind::BadSerialization,
            format!("cannot print a {kind} value into XML; print its items one by one"),
        )),
    }
}

/// Writes `text` escaped as the content of a JSON string (without the quotes).
pub fn write_json_content(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{08}' => out.write_str("\\b")?,
            '\u{0c}' => out.write_str("\\f")?,
            c if u32::from(c) < 0x20 => write!(out, "\\u{:04x}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// The text of a JSON object body, for adapters that merge rendered changes: the object, or
/// an error naming the template when the body is not an object.
pub fn expect_object(
    target: &str,
    operation: &str,
    body: serde_json::Value,
) -> Result<Map<String, serde_json::Value>, TemplateError> {
    match body {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(TemplateError {
            key: template_key(target, operation),
            message: format!(
                "must render to a JSON object, not {}",
                match other {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Array(_) => "a list",
                    serde_json::Value::Object(_) => "an object",
                }
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::model::Operation;

    fn request(attributes: serde_json::Value) -> ProvisionRequest {
        ProvisionRequest {
            operation: Operation::CreateAccount,
            account_id: Some("42".into()),
            account_name: "jane.doe".into(),
            entitlement: Some(("role".into(), "3".into())),
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            entitlement_name: Some("Finance Manager".into()),
            task_id: Some(7),
            request_id: None,
        }
    }

    fn set(source: &str) -> TemplateSet {
        let overrides = BTreeMap::from([("create_account".to_string(), source.to_string())]);
        TemplateSet::new("dc", Escape::Json, &[("create_account", "{}")], &overrides).unwrap()
    }

    fn render(
        source: &str,
        attributes: serde_json::Value,
    ) -> Result<serde_json::Value, TemplateError> {
        let context = TemplateContext::from_request("dc", &request(attributes));
        set(source).render("create_account", &context)
    }

    #[test]
    fn prints_bindings_with_dollar_delimiters() {
        let body = render(
            r#"{"first": "${ user.firstname }", "name": "${ account.name }", "id": "${ account.accountID }",
                "role": ${ entitlementValue.entitlementID }, "role_name": "${ entitlementValue.entitlement_value }",
                "req": "${ requestid }", "task": ${ task.id }, "op": "${ task.operation }", "target": "${ task.target }",
                "n": ${ user.count }, "flag": ${ user.flag }, "curly": "{{ not a variable }}"}"#,
            json!({ "FirstName": "Jane", "count": 3, "flag": true, "gone": null }),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({ "first": "Jane", "name": "jane.doe", "id": "42", "role": 3,
                    "role_name": "Finance Manager", "req": "7", "task": 7, "op": "create_account",
                    "target": "dc", "n": 3, "flag": true, "curly": "{{ not a variable }}" })
        );
    }

    #[test]
    fn conditionals_test_missing_values_as_false() {
        let source = r#"{"a": 1{% if user.title %}, "title": "${ user.title }"{% endif %}}"#;
        assert_eq!(
            render(source, json!({ "title": "Lead" })).unwrap(),
            json!({ "a": 1, "title": "Lead" })
        );
        assert_eq!(render(source, json!({})).unwrap(), json!({ "a": 1 }));
        assert_eq!(
            render(source, json!({ "title": null })).unwrap(),
            json!({ "a": 1 })
        );
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it_and_the_template() {
        let err = render(r#"{"t": "${ user.title }"}"#, json!({})).unwrap_err();
        assert_eq!(err.key, "targets.dc.templates.create_account");
        let text = err.to_string();
        assert!(
            text.contains("targets.dc.templates.create_account")
                && text.contains("undefined")
                && text.contains("user.title")
                && text.contains(":1"),
            "{text}"
        );
        let err = render("{\n\"t\": \"${ usr.name }\"}", json!({})).unwrap_err();
        assert!(err.to_string().contains("usr"), "{err}");
        assert!(err.to_string().contains(":2"), "{err}");
    }

    #[test]
    fn escapes_values_as_json_string_content() {
        let nasty = "say \"hi\"\\ \n\ttab \u{1} end";
        let body = render(r#"{"v": "${ user.v }"}"#, json!({ "v": nasty })).unwrap();
        assert_eq!(body["v"], nasty);
        let body = render(
            r#"{"list": "${ user.l }", "raw": ${ user.l | tojson }}"#,
            json!({ "l": ["a\"b", 1] }),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({ "list": "[\"a\\\"b\",1]", "raw": ["a\"b", 1] })
        );
    }

    #[test]
    fn output_that_is_not_json_is_an_error_without_the_body() {
        let err = render(
            r#"{"v": ${ user.secret }}"#,
            json!({ "secret": "hunter2 x" }),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("not valid JSON") && text.contains("create_account"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn the_password_is_bound_and_redacted_from_errors() {
        let context = TemplateContext::from_request("dc", &request(json!({})))
            .with_password(&SecretString::from("S3cret-pw"));
        let body = set(r#"{"p": "${ password }"}"#)
            .render("create_account", &context)
            .unwrap();
        assert_eq!(body["p"], "S3cret-pw");
        let err = set(r#"{"p": "${ password }" "#)
            .render("create_account", &context)
            .unwrap_err();
        assert!(!err.to_string().contains("S3cret-pw"), "{err}");
        assert!(!format!("{context:?}").contains("S3cret-pw"));
    }

    #[test]
    fn check_finds_syntax_errors_unknown_keys_and_missing_variables() {
        let catalog = TemplateCatalog {
            defaults: &[
                ("create_account", r#"{"u": "${ user.username }"}"#),
                ("update_account", "{}"),
            ],
            optional: &[],
            escape: Escape::Json,
        };
        assert!(check_catalog("dc", &catalog, &BTreeMap::new()).is_empty());
        let overrides = BTreeMap::from([
            (
                "create_account".to_string(),
                r#"{"u": "${ user.username "#.to_string(),
            ),
            (
                "update_account".to_string(),
                r#"{"c": "${ user.costcenter }"}"#.to_string(),
            ),
            ("delete_everything".to_string(), "{}".to_string()),
        ]);
        let errors = check_catalog("dc", &catalog, &overrides);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "targets.dc.templates.delete_everything",
                "targets.dc.templates.create_account"
            ],
            "{errors:?}"
        );
        assert!(
            errors[0].message.contains("create_account, update_account"),
            "{errors:?}"
        );
        assert!(errors[1].message.contains("syntax error"), "{errors:?}");
        // A variable that is not a binding is an error; so is a printed binding that is
        // missing (`account.*` has no costcenter).
        for (source, named) in [
            (r#"{"c": "${ usr.costcenter }"}"#, "usr"),
            (r#"{"c": "${ account.costcenter }"}"#, "account.costcenter"),
        ] {
            let overrides = BTreeMap::from([("update_account".to_string(), source.to_string())]);
            let errors = check_catalog("dc", &catalog, &overrides);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].key, "targets.dc.templates.update_account");
            assert!(
                errors[0].message.contains(named) && errors[0].message.contains("undefined"),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn check_renders_custom_attributes_with_a_sample_value() {
        let catalog = TemplateCatalog {
            defaults: &[("update_account", "{}")],
            optional: &[],
            escape: Escape::Json,
        };
        // Quoted, unquoted (a number in JSON), through a subscript and a filter.
        let source = r#"{"c": "${ user.costcenter }", "n": ${ user.badge_number },
                        "r": "${ user["region"] | upper }", "t": "${ user.title }"}"#;
        let overrides = BTreeMap::from([("update_account".to_string(), source.to_string())]);
        assert_eq!(check_catalog("dc", &catalog, &overrides), []);
        let set = TemplateSet::from_catalog("dc", &catalog, &overrides).unwrap();
        let body = set
            .render("update_account", &set.sample("update_account"))
            .unwrap();
        assert_eq!(
            body,
            json!({ "c": SAMPLE_CUSTOM_VALUE, "n": 1, "r": SAMPLE_CUSTOM_VALUE, "t": "Engineer" })
        );
        // Still an error: the body a custom key renders into is not JSON.
        let overrides = BTreeMap::from([(
            "update_account".to_string(),
            r#"{"c": ${ user.costcenter }"#.to_string(),
        )]);
        let errors = check_catalog("dc", &catalog, &overrides);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("not valid JSON"), "{errors:?}");
    }

    #[test]
    fn check_refuses_a_capitalised_attribute_key() {
        let catalog = TemplateCatalog {
            defaults: &[("update_account", "{}")],
            optional: &[],
            escape: Escape::Json,
        };
        let overrides = BTreeMap::from([(
            "update_account".to_string(),
            r#"{"c": "${ user.costCenter }"}"#.to_string(),
        )]);
        let errors = check_catalog("dc", &catalog, &overrides);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "targets.dc.templates.update_account");
        assert!(
            errors[0].message.contains("user.costCenter")
                && errors[0].message.contains("write user.costcenter"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_set_knows_what_each_template_reads() {
        let catalog = TemplateCatalog {
            defaults: &[("create_account", r#"{"e": "${ user.email }"}"#)],
            optional: &["remove_account"],
            escape: Escape::Json,
        };
        let set = TemplateSet::from_catalog("dc", &catalog, &BTreeMap::new()).unwrap();
        assert_eq!(
            set.reads("create_account"),
            Some(&AttributeReads::Keys(["email".to_string()].into()))
        );
        assert_eq!(set.reads("remove_account"), None);
        let overrides = BTreeMap::from([(
            "create_account".to_string(),
            r#"${ user | tojson }"#.to_string(),
        )]);
        let set = TemplateSet::from_catalog("dc", &catalog, &overrides).unwrap();
        assert_eq!(set.reads("create_account"), Some(&AttributeReads::Any));
    }

    fn xml_set(source: &str) -> TemplateSet {
        let catalog = TemplateCatalog {
            defaults: &[("disable_account", "<A.lockRq/>")],
            optional: &["create_account"],
            escape: Escape::Xml,
        };
        let overrides = BTreeMap::from([("create_account".to_string(), source.to_string())]);
        TemplateSet::from_catalog("dc", &catalog, &overrides).unwrap()
    }

    fn render_xml(source: &str, attributes: serde_json::Value) -> Result<String, TemplateError> {
        let context = TemplateContext::from_request("dc", &request(attributes));
        xml_set(source).render_text("create_account", &context)
    }

    #[test]
    fn xml_templates_escape_values_and_must_be_well_formed() {
        let text = render_xml(
            r#"<X.addRq userName="${ account.name }" full='${ user.full }' n="${ user.n }">${ user.full }</X.addRq>"#,
            json!({ "full": "O'Brien & \"Sons\" <x>", "n": 3 }),
        )
        .unwrap();
        assert_eq!(
            text,
            r#"<X.addRq userName="jane.doe" full='O&apos;Brien &amp; &quot;Sons&quot; &lt;x&gt;' n="3">O&apos;Brien &amp; &quot;Sons&quot; &lt;x&gt;</X.addRq>"#
        );
        // Saviynt's published enable template: the wrong closing tag.
        let err = render_xml(
            r#"<Security.unlockUserAccountRq userName="${ account.name }"></Security.lockUserAccountRq>"#,
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err.key, "targets.dc.templates.create_account");
        assert!(err.to_string().contains("not well-formed XML"), "{err}");
        let err = render_xml(r#"<X n="${ user.list }"/>"#, json!({ "list": [1, 2] })).unwrap_err();
        assert!(err.to_string().contains("cannot print a seq"), "{err}");
        let err = render_xml(r#"<X n="${ user.v }"/>"#, json!({ "v": "a\u{1}b" })).unwrap_err();
        assert!(err.to_string().contains("U+0001"), "{err}");
        let err = render_xml(r#"<X n="${ user.missing }"/>"#, json!({})).unwrap_err();
        assert!(err.to_string().contains("user.missing"), "{err}");
    }

    #[test]
    fn optional_templates_exist_only_when_configured() {
        let catalog = TemplateCatalog {
            defaults: &[("disable_account", "<A.lockRq/>")],
            optional: &["create_account", "remove_account"],
            escape: Escape::Xml,
        };
        let set = TemplateSet::from_catalog("dc", &catalog, &BTreeMap::new()).unwrap();
        assert!(set.has("disable_account") && !set.has("create_account"));
        let overrides = BTreeMap::from([
            ("create_account".to_string(), "<A.createRq/>".to_string()),
            ("delete_all".to_string(), "<A/>".to_string()),
        ]);
        let errors = TemplateSet::from_catalog("dc", &catalog, &overrides).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "targets.dc.templates.delete_all");
        assert!(errors[0]
            .message
            .contains("disable_account, create_account, remove_account"));
        let overrides =
            BTreeMap::from([("create_account".to_string(), "<A.createRq>".to_string())]);
        let errors = check_catalog("dc", &catalog, &overrides);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("never closed"), "{errors:?}");
    }

    proptest! {
        #[test]
        fn any_xml_text_round_trips(value in "\\PC*") {
            prop_assume!(crate::connector::xml::forbidden_char(&value).is_none());
            let text = render_xml(r#"<X v="${ user.v }"/>"#, json!({ "v": value.clone() })).unwrap();
            let element = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(async {
                    let mut reader = crate::connector::xml::XmlReader::new(text.as_bytes(), 4);
                    reader.next_child().await
                })
                .unwrap()
                .unwrap();
            prop_assert_eq!(element.attr("v"), Some(value.as_str()));
        }

        #[test]
        fn any_attribute_text_round_trips(value in any::<String>()) {
            let body = render(r#"{"v": "${ user.v }"}"#, json!({ "v": value.clone() })).unwrap();
            prop_assert_eq!(body["v"].as_str(), Some(value.as_str()));
        }
    }
}
