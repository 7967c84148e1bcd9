//! The validation pass behind `idsync check-config`: every rule the types cannot express,
//! checked on a deserialized config, with every problem collected before anything starts.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::RangeInclusive;

use chrono::{DateTime, Months, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::{
    Config, JobConfig, LogConfig, RateLimit, RateLimits, ServerConfig, StoreConfig, TargetConfig,
    TargetKind,
};
use crate::model::{ImportMode, JobKind};

/// One problem with the config: which key, its value (unless secret), and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigProblem {
    /// The dotted key, e.g. `jobs.digicert-accounts.schedule`.
    pub key: String,
    /// The offending value, unless it is a secret.
    pub value: Option<String>,
    /// Why it is wrong and what to do.
    pub message: String,
}

impl ConfigProblem {
    /// A problem with `key` and no value shown.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
            message: message.into(),
        }
    }

    /// The same problem showing the offending value (never use this for a secret).
    pub fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} = {}: {}", self.key, value, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Something worth telling the operator that does not stop idsync.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigWarning {
    /// The dotted key, or `(file)`.
    pub key: String,
    /// What to do about it.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// How far ahead a schedule must fire at least once.
const SCHEDULE_HORIZON: Months = Months::new(5 * 12);

const SCHEDULE_HINT: &str = "write six fields, seconds first, e.g. \"0 */30 * * * *\"";

/// Parses a job's `schedule`: a six-field cron expression, seconds first, evaluated in UTC,
/// that fires at least once in the next five years. The error says what to write instead.
///
/// The scheduler uses the returned [`Cron`] to compute next fire times (in UTC).
pub fn parse_schedule(expr: &str) -> Result<Cron, String> {
    parse_schedule_at(expr, crate::clock::now())
}

/// [`parse_schedule`] with "now" as a parameter.
fn parse_schedule_at(expr: &str, now: DateTime<Utc>) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        return Err(format!("has {fields} field(s); {SCHEDULE_HINT}"));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        // The same reading as tokio-cron-scheduler's trigger: day-of-month AND day-of-week.
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|err| format!("is not a valid cron expression ({err}); {SCHEDULE_HINT}"))?;
    let horizon = now
        .checked_add_months(SCHEDULE_HORIZON)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    match cron.find_next_occurrence(&now, false) {
        Ok(next) if next <= horizon => Ok(cron),
        _ => Err(
            "never fires: no time matches it in the next five years (is the day valid \
                  for the month, e.g. not 30 February?)"
                .to_string(),
        ),
    }
}

/// Checks a deserialized config and returns every problem found (empty: the config is
/// usable). [`load`](super::load) runs the same pass; this is for configs built in code.
pub fn validate(config: &Config) -> Vec<ConfigProblem> {
    let declared = Declared {
        targets: config.targets.keys().cloned().collect(),
        jobs: config.jobs.keys().cloned().collect(),
    };
    let mut problems = Vec::new();
    validate_with(config, &declared, crate::clock::now(), &mut problems);
    problems
}

/// The names the file declares, including entries that failed to deserialize (so that a job
/// naming a broken target is not also told the target does not exist).
#[derive(Debug, Default)]
pub(super) struct Declared {
    /// Every `[targets.NAME]`.
    pub targets: BTreeSet<String>,
    /// Every `[jobs.NAME]`.
    pub jobs: BTreeSet<String>,
}

/// The validation pass, with the declared names and "now" as parameters.
pub(super) fn validate_with(
    config: &Config,
    declared: &Declared,
    now: DateTime<Utc>,
    problems: &mut Vec<ConfigProblem>,
) {
    for (section, names) in [("targets", &declared.targets), ("jobs", &declared.jobs)] {
        for name in names.iter().filter(|name| !is_valid_name(name)) {
            problems.push(ConfigProblem::new(
                format!("{section}.{name}"),
                "names must match [a-z][a-z0-9_-]* (lower-case letter first, then lower-case \
                 letters, digits, `_` or `-`)",
            ));
        }
    }
    validate_store(&config.store, problems);
    validate_server(&config.server, problems);
    validate_log(&config.log, problems);
    for (name, target) in &config.targets {
        validate_target(name, target, problems);
    }
    for (name, job) in &config.jobs {
        validate_job(name, job, &declared.targets, now, problems);
    }
}

/// `[a-z][a-z0-9_-]*`.
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A string value as the file would spell it (quoted).
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn validate_store(store: &StoreConfig, problems: &mut Vec<ConfigProblem>) {
    let url = store.url.as_str();
    if url.starts_with("sqlite://") {
        return;
    }
    let message = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        "PostgreSQL is not available yet; use sqlite://PATH"
    } else {
        "must start with sqlite:// (e.g. \"sqlite://idsync.db\")"
    };
    problems.push(ConfigProblem::new("store.url", message).with_value(quoted(url)));
}

fn validate_server(server: &ServerConfig, problems: &mut Vec<ConfigProblem>) {
    if let Some(Err(err)) = server.api_token.as_ref().map(|spec| spec.resolve()) {
        problems.push(ConfigProblem::new("server.api_token", err.to_string()));
    }
}

fn validate_log(log: &LogConfig, problems: &mut Vec<ConfigProblem>) {
    if let Err(err) = tracing_subscriber::EnvFilter::builder().parse(&log.level) {
        problems.push(
            ConfigProblem::new(
                "log.level",
                format!(
                    "is not a level or tracing filter ({err}); write e.g. \"info\" or \
                     \"idsync=debug,info\""
                ),
            )
            .with_value(quoted(&log.level)),
        );
    }
}

/// The page sizes an adapter accepts.
fn page_size_range(kind: TargetKind) -> RangeInclusive<u32> {
    match kind {
        TargetKind::Digicert => 1..=1000,
        // Jama serves at most 50 per page whatever is asked; the adapter follows what it
        // serves, so a larger request is harmless.
        TargetKind::Jama => 1..=1000,
        // Duck Creek lists come whole; this is only the batch handed to the store.
        TargetKind::Duckcreek => 1..=10_000,
    }
}

/// Collects the problems of one `[section.NAME]` entry, keyed under its prefix.
struct EntryProblems<'a> {
    prefix: String,
    out: &'a mut Vec<ConfigProblem>,
}

impl EntryProblems<'_> {
    fn add(&mut self, field: &str, value: Option<String>, message: impl Into<String>) {
        self.out.push(ConfigProblem {
            key: format!("{}.{field}", self.prefix),
            value,
            message: message.into(),
        });
    }
}

fn validate_target(name: &str, target: &TargetConfig, problems: &mut Vec<ConfigProblem>) {
    let mut problems = EntryProblems {
        prefix: format!("targets.{name}"),
        out: problems,
    };

    let url = &target.base_url;
    if !matches!(url.scheme(), "http" | "https") {
        problems.add(
            "base_url",
            Some(quoted(url.as_str())),
            format!("the scheme must be http or https, not {}", url.scheme()),
        );
    } else if url.host_str().is_none_or(str::is_empty) {
        problems.add("base_url", Some(quoted(url.as_str())), "has no host");
    }

    match target.kind {
        TargetKind::Digicert => {
            if target.api_key.is_none() {
                problems.add(
                    "api_key",
                    None,
                    "is required for kind = \"digicert\"; write api_key = { env = \
                     \"DIGICERT_API_KEY\" } (or { file = \"PATH\" })",
                );
            }
        }
        TargetKind::Jama => validate_jama(target, &mut problems),
        TargetKind::Duckcreek => validate_duckcreek(target, &mut problems),
    }
    validate_provisioning(name, target, &mut problems);
    for field in inapplicable_keys(target) {
        problems.add(
            field,
            None,
            format!(
                "does not apply to kind = \"{}\" (remove it; {})",
                target.kind.as_str(),
                match target.kind {
                    TargetKind::Digicert => "DigiCert authenticates with api_key",
                    TargetKind::Jama => "Jama authenticates with client_id and client_secret",
                    TargetKind::Duckcreek =>
                        "Duck Creek authenticates with username and password in every request",
                }
            ),
        );
    }
    // Never the value: the error names the variable or the path.
    for (field, spec) in target.secrets() {
        if let Err(err) = spec.resolve() {
            problems.add(field, None, err.to_string());
        }
    }
    if let Some(header) = &target.api_key_header {
        if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
            problems.add(
                "api_key_header",
                Some(quoted(header)),
                "is not a valid HTTP header name",
            );
        }
    }

    for (field, value) in [
        ("timeout", target.timeout),
        ("connect_timeout", target.connect_timeout),
    ] {
        if value.get().is_zero() {
            problems.add(
                field,
                Some(quoted(&value.to_string())),
                "must be longer than 0s",
            );
        }
    }
    if let Some(size) = target.page_size {
        let range = page_size_range(target.kind);
        if !range.contains(&size) {
            problems.add(
                "page_size",
                Some(size.to_string()),
                format!(
                    "must be between {} and {} for kind = \"{}\" (or unset for the adapter's \
                     default)",
                    range.start(),
                    range.end(),
                    target.kind.as_str()
                ),
            );
        }
    }
    if target.max_concurrency < 1 {
        problems.add(
            "max_concurrency",
            Some(target.max_concurrency.to_string()),
            "must be at least 1",
        );
    }
    if target.max_response_bytes < 1 {
        problems.add(
            "max_response_bytes",
            Some(target.max_response_bytes.to_string()),
            "must be at least 1",
        );
    }
    match &target.rate_limit {
        None => {}
        Some(RateLimits::One(window)) => validate_window("rate_limit", window, &mut problems),
        Some(RateLimits::Many(windows)) => {
            for (index, window) in windows.iter().enumerate() {
                validate_window(&format!("rate_limit[{index}]"), window, &mut problems);
            }
        }
    }

    let percent = target.deletion_threshold.percent;
    if !(0.0..=100.0).contains(&percent) {
        problems.add(
            "deletion_threshold.percent",
            Some(percent.to_string()),
            "must be between 0 and 100",
        );
    }

    let retry = &target.read_retry;
    if retry.max_attempts < 1 {
        problems.add(
            "read_retry.max_attempts",
            Some(retry.max_attempts.to_string()),
            "must be at least 1 (1 = no retry)",
        );
    }
    for (field, value) in [
        ("read_retry.initial_backoff", retry.initial_backoff),
        ("read_retry.max_backoff", retry.max_backoff),
    ] {
        if value.get().is_zero() {
            problems.add(
                field,
                Some(quoted(&value.to_string())),
                "must be longer than 0s",
            );
        }
    }
    if retry.initial_backoff > retry.max_backoff {
        problems.add(
            "read_retry.initial_backoff",
            Some(quoted(&retry.initial_backoff.to_string())),
            format!(
                "must not be longer than read_retry.max_backoff ({})",
                retry.max_backoff
            ),
        );
    }

    let task_retry = &target.retry;
    if task_retry.max_attempts < 1 {
        problems.add(
            "retry.max_attempts",
            Some(task_retry.max_attempts.to_string()),
            "must be at least 1 (1 = no retry)",
        );
    }
    for (field, value) in [
        ("retry.initial_backoff", task_retry.initial_backoff),
        ("retry.max_backoff", task_retry.max_backoff),
        ("retry.give_up_after", task_retry.give_up_after),
    ] {
        if value.get().is_zero() {
            problems.add(
                field,
                Some(quoted(&value.to_string())),
                "must be longer than 0s",
            );
        }
    }
    if task_retry.initial_backoff > task_retry.max_backoff {
        problems.add(
            "retry.initial_backoff",
            Some(quoted(&task_retry.initial_backoff.to_string())),
            format!(
                "must not be longer than retry.max_backoff ({})",
                task_retry.max_backoff
            ),
        );
    }
    if let Some(lease) = target.task_lease {
        if lease <= target.timeout {
            problems.add(
                "task_lease",
                Some(quoted(&lease.to_string())),
                format!(
                    "must be longer than timeout ({}): a task whose attempt outlives its lease may run twice",
                    target.timeout
                ),
            );
        }
    }

    if let Some(path) = &target.tls.ca_file {
        let message = match std::fs::read(path) {
            Err(err) => Some(format!("cannot read the CA file: {err}")),
            Ok(pem) if !contains(&pem, b"-----BEGIN CERTIFICATE-----") => Some(
                "is not a PEM file with a certificate (no -----BEGIN CERTIFICATE----- line)"
                    .to_string(),
            ),
            Ok(_) => None,
        };
        if let Some(message) = message {
            problems.add(
                "tls.ca_file",
                Some(quoted(&path.display().to_string())),
                message,
            );
        }
    }
}

/// The kind-specific keys set on a target of another kind.
fn inapplicable_keys(target: &TargetConfig) -> Vec<&'static str> {
    let set = [
        ("api_key", target.api_key.is_some()),
        ("api_key_header", target.api_key_header.is_some()),
        ("client_id", target.client_id.is_some()),
        ("client_secret", target.client_secret.is_some()),
        ("username", target.username.is_some()),
        ("password", target.password.is_some()),
        ("entity_id", target.entity_id.is_some()),
        ("soap_action", target.soap_action.is_some()),
        ("soap_version", target.soap_version.is_some()),
        ("content_type", target.content_type.is_some()),
        ("request_wrapper", target.request_wrapper.is_some()),
        ("already_done_codes", !target.already_done_codes.is_empty()),
    ];
    let applies: &[&str] = match target.kind {
        TargetKind::Digicert => &["api_key", "api_key_header"],
        TargetKind::Jama => &["client_id", "client_secret"],
        TargetKind::Duckcreek => &[
            "username",
            "password",
            "entity_id",
            "soap_action",
            "soap_version",
            "content_type",
            "request_wrapper",
            "already_done_codes",
        ],
    };
    set.iter()
        .filter(|(field, is_set)| *is_set && !applies.contains(field))
        .map(|(field, _)| *field)
        .collect()
}

/// The provisioning keys of a target: the policies of its kind only (`default_role` and
/// `disable_strategy` for DigiCert, `remove_strategy` for Jama), and templates that exist for
/// its kind and render to a body against the sample context.
fn validate_provisioning(name: &str, target: &TargetConfig, problems: &mut EntryProblems<'_>) {
    let policies = [
        (
            "default_role",
            TargetKind::Digicert,
            target.default_role.is_some(),
        ),
        (
            "disable_strategy",
            TargetKind::Digicert,
            target.disable_strategy.is_some(),
        ),
        (
            "remove_strategy",
            TargetKind::Jama,
            target.remove_strategy.is_some(),
        ),
    ];
    for (field, kind, is_set) in policies {
        if is_set && kind != target.kind {
            problems.add(
                field,
                None,
                format!(
                    "does not apply to kind = \"{}\" (remove it; it is a setting of kind = \
                     \"{}\")",
                    target.kind.as_str(),
                    kind.as_str()
                ),
            );
        }
    }
    if let Some(role) = &target.default_role {
        if role.trim().parse::<u32>().is_err() {
            problems.add(
                "default_role",
                Some(quoted(role)),
                "must be a DigiCert access role id, e.g. \"5\" (Standard User)",
            );
        }
    }
    let prefix = format!("{}.", problems.prefix);
    for err in crate::connector::registry::check_templates(name, target) {
        let field = err
            .key
            .strip_prefix(&prefix)
            .unwrap_or(&err.key)
            .to_string();
        problems.add(&field, None, err.message);
    }
}

/// The rules of a `kind = "duckcreek"` target: the login's user name and password, and
/// values that can be sent in an XML attribute or an HTTP header.
fn validate_duckcreek(target: &TargetConfig, problems: &mut EntryProblems<'_>) {
    match target.username.as_deref() {
        None => problems.add(
            "username",
            None,
            "is required for kind = \"duckcreek\"; write the service account's user name, e.g. \
             username = \"svc_idsync\"",
        ),
        Some(name) if name.trim().is_empty() => {
            problems.add("username", Some(quoted(name)), "must not be empty");
        }
        Some(name) if crate::connector::xml::forbidden_char(name).is_some() => problems.add(
            "username",
            Some(quoted(name)),
            "holds a control character, which XML cannot carry",
        ),
        Some(_) => {}
    }
    match &target.password {
        None => problems.add(
            "password",
            None,
            "is required for kind = \"duckcreek\"; write password = { file = \
             \"/run/credentials/idsync/duckcreek\" } (or { env = \"DUCKCREEK_PASSWORD\" })",
        ),
        Some(spec) => {
            if let Ok(secret) = spec.resolve() {
                use secrecy::ExposeSecret;
                if crate::connector::xml::forbidden_char(secret.expose_secret()).is_some() {
                    problems.add(
                        "password",
                        None,
                        "holds a control character, which XML cannot carry (a stray newline \
                         in the file is trimmed; other control characters are not)",
                    );
                }
            }
        }
    }
    if let Some(entity) = &target.entity_id {
        if entity.trim().is_empty() || crate::connector::xml::forbidden_char(entity).is_some() {
            problems.add(
                "entity_id",
                Some(quoted(entity)),
                "must be a Duck Creek entity id, e.g. \"1\"",
            );
        }
    }
    if let Some(action) = &target.soap_action {
        if reqwest::header::HeaderValue::from_str(action).is_err() || action.contains('"') {
            problems.add(
                "soap_action",
                Some(quoted(action)),
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
                Some(quoted(content_type)),
                "must be an XML media type, e.g. \"text/xml; charset=utf-8\"",
            );
        }
    }
    for (operation, codes) in &target.already_done_codes {
        if !crate::connector::duckcreek::is_already_done_key(operation) {
            problems.add(
                &format!("already_done_codes.{operation}"),
                None,
                format!(
                    "is not an operation whose failure can mean \"already done\"; use one of {}",
                    crate::connector::duckcreek::ALREADY_DONE_OPERATIONS.join(", ")
                ),
            );
        }
        if let Some(bad) = codes.iter().find(|code| {
            code.trim().is_empty()
                || code.trim() != code.as_str()
                || crate::connector::xml::forbidden_char(code).is_some()
        }) {
            problems.add(
                &format!("already_done_codes.{operation}"),
                Some(quoted(bad)),
                "codes must be non-empty, without surrounding spaces or control characters, \
                 e.g. \"AlreadyAssigned\"",
            );
        }
    }
    if let Some(wrapper) = &target.request_wrapper {
        if !crate::connector::xml::is_local_name(&wrapper.element) {
            problems.add(
                "request_wrapper.element",
                Some(quoted(&wrapper.element)),
                "must be an XML element name without a prefix, e.g. \"processRequestsAsDOM\"",
            );
        }
        if crate::connector::xml::forbidden_char(&wrapper.namespace).is_some()
            || wrapper.namespace.trim() != wrapper.namespace
        {
            problems.add(
                "request_wrapper.namespace",
                Some(quoted(&wrapper.namespace)),
                "must be a namespace URI without control characters or surrounding spaces, \
                 e.g. \"http://tempuri.org/\" (or \"\" for none)",
            );
        }
    }
}

/// The rules of a `kind = "jama"` target: OAuth client credentials, and a tenant root URL.
fn validate_jama(target: &TargetConfig, problems: &mut EntryProblems<'_>) {
    match target.client_id.as_deref() {
        None => problems.add(
            "client_id",
            None,
            "is required for kind = \"jama\"; write the OAuth client id from Jama's API \
             credentials page, e.g. client_id = \"idsync-client\"",
        ),
        Some(id) if id.trim().is_empty() => {
            problems.add("client_id", Some(quoted(id)), "must not be empty");
        }
        // HTTP Basic cannot carry a user id with a colon (RFC 7617).
        Some(id) if id.contains(':') || id.chars().any(char::is_control) => problems.add(
            "client_id",
            Some(quoted(id)),
            "must not contain `:` or control characters (it is sent as HTTP Basic user id)",
        ),
        Some(_) => {}
    }
    if target.client_secret.is_none() {
        problems.add(
            "client_secret",
            None,
            "is required for kind = \"jama\"; write client_secret = { env = \
             \"JAMA_CLIENT_SECRET\" } (or { file = \"PATH\" })",
        );
    }
    let path = target.base_url.path().trim_end_matches('/');
    if path.ends_with("/rest") || path.ends_with("/rest/v1") || path.ends_with("/rest/latest") {
        problems.add(
            "base_url",
            Some(quoted(target.base_url.as_str())),
            "must be the tenant's root URL (e.g. \"https://example.jamacloud.com\"): idsync \
             appends /rest/v1/… and /rest/oauth/token itself",
        );
    }
    if target.token_refresh_skew.get().is_zero() {
        problems.add(
            "token_refresh_skew",
            Some(quoted(&target.token_refresh_skew.to_string())),
            "must be longer than 0s (a token is refreshed this long before it expires)",
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn validate_window(field: &str, window: &RateLimit, problems: &mut EntryProblems<'_>) {
    if window.requests < 1 {
        problems.add(
            &format!("{field}.requests"),
            Some(window.requests.to_string()),
            "must be at least 1 (to turn pacing off, write rate_limit = [])",
        );
    }
    if window.per.get().is_zero() {
        problems.add(
            &format!("{field}.per"),
            Some(quoted(&window.per.to_string())),
            "must be longer than 0s",
        );
    }
}

fn validate_job(
    name: &str,
    job: &JobConfig,
    targets: &BTreeSet<String>,
    now: DateTime<Utc>,
    problems: &mut Vec<ConfigProblem>,
) {
    let mut problems = EntryProblems {
        prefix: format!("jobs.{name}"),
        out: problems,
    };
    let is_import = matches!(job.kind, JobKind::AccountImport | JobKind::AccessImport);
    let configured = || {
        if targets.is_empty() {
            "no targets are configured".to_string()
        } else {
            let names: Vec<&str> = targets.iter().map(String::as_str).collect();
            format!("configured targets: {}", names.join(", "))
        }
    };

    match &job.target {
        Some(target) if !targets.contains(target) => problems.add(
            "target",
            Some(quoted(target)),
            format!("names no configured target ({})", configured()),
        ),
        None if is_import => problems.add(
            "target",
            None,
            format!(
                "is required for type = \"{}\" ({})",
                job.kind.as_str(),
                configured()
            ),
        ),
        _ => {}
    }
    if let Err(message) = parse_schedule_at(&job.schedule, now) {
        problems.add("schedule", Some(quoted(&job.schedule)), message);
    }
    if job.mode == ImportMode::Incremental && !is_import {
        problems.add(
            "mode",
            Some(quoted(job.mode.as_str())),
            "incremental applies to account_import and access_import jobs only",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(year: i32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, 6, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn six_field_schedules_parse() {
        let cron = parse_schedule_at("0 */30 * * * *", at(2030)).unwrap();
        let next = cron.find_next_occurrence(&at(2030), false).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2030, 6, 1, 12, 30, 0).unwrap());
        assert!(parse_schedule("0 5,35 * * * *").is_ok());
    }

    #[test]
    fn five_field_schedule_is_refused_with_a_hint() {
        let err = parse_schedule("*/30 * * * *").unwrap_err();
        assert!(
            err.contains("six fields, seconds first, e.g. \"0 */30 * * * *\""),
            "{err}"
        );
        let err = parse_schedule("0 0 0 * * * 2030").unwrap_err();
        assert!(err.contains("six fields"), "{err}");
        assert!(parse_schedule("@hourly")
            .unwrap_err()
            .contains("six fields"));
    }

    #[test]
    fn invalid_field_is_refused() {
        let err = parse_schedule("61 * * * * *").unwrap_err();
        assert!(err.contains("not a valid cron expression"), "{err}");
    }

    #[test]
    fn never_firing_schedule_is_refused() {
        for expr in ["0 0 0 30 2 *", "0 0 0 31 4 *"] {
            let err = parse_schedule_at(expr, at(2030)).unwrap_err();
            assert!(err.contains("never fires"), "{expr}: {err}");
        }
        // Rare but real: 29 February fires within five years.
        assert!(parse_schedule_at("0 0 0 29 2 *", at(2029)).is_ok());
    }

    #[test]
    fn names_follow_the_pattern() {
        for good in ["digicert", "digicert-accounts", "a", "a_1-b"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "Digicert", "1st", "-x", "a.b", "a b", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn problem_display_shows_value_when_given() {
        let with = ConfigProblem::new("a.b", "why").with_value("\"x\"");
        assert_eq!(with.to_string(), "a.b = \"x\": why");
        assert_eq!(ConfigProblem::new("a.b", "why").to_string(), "a.b: why");
        let warning = ConfigWarning {
            key: "k".into(),
            message: "m".into(),
        };
        assert_eq!(warning.to_string(), "k: m");
    }

    /// The problems `check-config` reports for a file with `targets` (and nothing else).
    fn target_problems(targets: &str) -> Vec<ConfigProblem> {
        match crate::config::load_from_str(targets, "test.toml", &[]) {
            Ok(_) => Vec::new(),
            Err(err) => err.problems,
        }
    }

    const DIGICERT: &str = "[targets.dc]\nkind = \"digicert\"\n\
        base_url = \"https://dc.example/services/v2\"\napi_key = \"k\"\n";
    const JAMA: &str = "[targets.jama]\nkind = \"jama\"\nbase_url = \"https://jama.example\"\n\
        client_id = \"c\"\nclient_secret = \"s\"\n";

    #[test]
    fn built_in_templates_and_good_overrides_pass() {
        assert_eq!(target_problems(&format!("{DIGICERT}{JAMA}")), []);
        let text = format!(
            "{DIGICERT}default_role = \"3\"\ndisable_strategy = \"delete\"\n\
             [targets.dc.templates]\n\
             update_account = '''{{\"job_title\": \"${{ user.title }}\"}}'''\n\
             {JAMA}remove_strategy = \"disable\"\n"
        );
        assert_eq!(target_problems(&text), []);
    }

    #[test]
    fn a_task_lease_must_outlast_a_request() {
        let problems = target_problems(&format!("{JAMA}task_lease = \"10s\"\n"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "targets.jama.task_lease");
        assert!(
            problems[0].message.contains("timeout (30s)"),
            "{problems:?}"
        );
        let text = format!("{JAMA}timeout = \"5s\"\ntask_lease = \"10s\"\n");
        assert_eq!(target_problems(&text), []);
    }

    #[test]
    fn a_broken_template_fails_check_config_with_its_key() {
        let text = format!(
            "{DIGICERT}[targets.dc.templates]\n\
             create_account = '''{{\"u\": \"${{ user.username \"}}'''\n"
        );
        let problems = target_problems(&text);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "targets.dc.templates.create_account");
        assert!(problems[0].message.contains("syntax error"), "{problems:?}");
        assert!(problems[0].message.contains(":1"), "{problems:?}");
    }

    #[test]
    fn a_template_using_an_unknown_variable_fails_check_config() {
        let text = format!(
            "{JAMA}[targets.jama.templates]\n\
             update_account = '''\n{{\n\"title\": \"${{ user.costcenter }}\"}}'''\n"
        );
        let problems = target_problems(&text);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "targets.jama.templates.update_account");
        assert!(
            problems[0].message.contains("user.costcenter")
                && problems[0].message.contains("undefined")
                && problems[0].message.contains(":2"),
            "{problems:?}"
        );
        let text = format!(
            "{JAMA}[targets.jama.templates]\n\
             update_account = '''{{\"title\": ${{ user.title }}}}'''\n"
        );
        let problems = target_problems(&text);
        assert!(
            problems[0].message.contains("not valid JSON"),
            "{problems:?}"
        );
    }

    #[test]
    fn template_keys_and_policies_must_fit_the_kind() {
        let text = format!(
            "{DIGICERT}remove_strategy = \"disable\"\ndefault_role = \"admin\"\n\
             [targets.dc.templates]\nenable_account = '{{}}'\n\
             {JAMA}disable_strategy = \"delete\"\ndefault_role = \"5\"\n"
        );
        let keys: Vec<String> = target_problems(&text)
            .into_iter()
            .map(|problem| problem.key)
            .collect();
        assert_eq!(
            keys,
            [
                "targets.dc.default_role",
                "targets.dc.remove_strategy",
                "targets.dc.templates.enable_account",
                "targets.jama.default_role",
                "targets.jama.disable_strategy",
            ]
        );
        let problems = target_problems(&format!("{DIGICERT}disable_strategy = \"lock\"\n"));
        assert_eq!(
            problems[0].key, "targets.dc.disable_strategy",
            "{problems:?}"
        );
    }
}
