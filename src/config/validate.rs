//! The validation pass behind `idsync check-config`: every rule the types cannot express,
//! checked on a deserialized config, with every problem collected before anything starts.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Months, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::{
    Config, JobConfig, LogConfig, RateLimit, RateLimits, ServerConfig, StoreConfig, TargetConfig,
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

    /// The same problem showing a text value as the file would spell it, quoted (never use
    /// this for a secret).
    pub fn with_quoted(self, text: &str) -> Self {
        self.with_value(quoted(text))
    }

    /// The same problem with its key placed under `prefix` (`api_key` under `targets.dc`
    /// becomes `targets.dc.api_key`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.key = format!("{prefix}.{}", self.key);
        self
    }
}

/// The rules of each kind of target. The adapters own them (see
/// `connector::registry::AdapterRules`); the config layer knows no kind's settings, so every
/// validation pass is handed the rules to apply.
pub trait TargetRules {
    /// Every problem with the kind-specific settings (and templates) of target `name`, keyed
    /// relative to the target (`api_key`, `templates.create_account`).
    fn check(&self, name: &str, target: &TargetConfig) -> Vec<ConfigProblem>;
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
/// The shortest `task_lease`: long enough for three heartbeats to a busy store.
const MIN_TASK_LEASE: std::time::Duration = std::time::Duration::from_secs(5);

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

/// Checks a deserialized config with the kind-specific `rules` and returns every problem
/// found (empty: the config is usable). [`load`](super::load) runs the same pass; this is for
/// configs built in code.
pub fn validate(config: &Config, rules: &dyn TargetRules) -> Vec<ConfigProblem> {
    let declared = Declared {
        targets: config.targets.keys().cloned().collect(),
        jobs: config.jobs.keys().cloned().collect(),
    };
    let mut problems = Vec::new();
    validate_with(config, &declared, rules, crate::clock::now(), &mut problems);
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
    rules: &dyn TargetRules,
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
        let prefix = format!("targets.{name}");
        problems.extend(
            rules
                .check(name, target)
                .into_iter()
                .map(|problem| problem.under(&prefix)),
        );
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
        if lease.get() < MIN_TASK_LEASE {
            problems.add(
                "task_lease",
                Some(quoted(&lease.to_string())),
                format!(
                    "must be at least {}s: a running attempt renews its lease every third of it, and a shorter lease lets a busy store make a live task look abandoned",
                    MIN_TASK_LEASE.as_secs()
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
}
