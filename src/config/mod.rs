//! The typed config file (TOML + `IDSYNC__` environment overrides), secrets, and the
//! validation pass behind `idsync check-config`.
//!
//! Every struct here rejects unknown keys and documents each field: these comments are the
//! user's reference (README "Configuration reference" mirrors them).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

mod de;
mod duration;
mod env;
mod load;
mod secret;
#[cfg(test)]
pub(crate) mod testing;
mod validate;

pub use duration::ConfigDuration;
pub use load::{load, load_from_str, ConfigError, LoadedConfig};
pub use secret::{SecretError, SecretSpec};
pub use validate::{parse_schedule, validate, ConfigProblem, ConfigWarning, TargetRules};

use crate::model::{ImportMode, JobKind};

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the store lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// The HTTP server (health, metrics, API).
    #[serde(default)]
    pub server: ServerConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The applications idsync talks to, by name (`[a-z][a-z0-9_-]*`).
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// Scheduled jobs, by name (`[a-z][a-z0-9_-]*`).
    #[serde(default)]
    pub jobs: BTreeMap<String, JobConfig>,
}

/// `[store]`: the local identity store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (relative paths are relative to the working / state directory).
    #[serde(default = "default_store_url")]
    pub url: String,
    /// How long a write waits for another writer (another idsync process) before failing.
    #[serde(default = "default_busy_timeout")]
    pub busy_timeout: ConfigDuration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: default_store_url(),
            busy_timeout: default_busy_timeout(),
        }
    }
}

impl Config {
    /// Every secret the config sets, by dotted key (e.g. `targets.digicert.api_key`): what
    /// validation resolves and what the literal-secret warning looks at.
    pub fn secrets(&self) -> Vec<(String, &SecretSpec)> {
        let server = self
            .server
            .api_token
            .iter()
            .map(|spec| ("server.api_token".to_string(), spec));
        let targets = self.targets.iter().flat_map(|(name, target)| {
            target
                .secrets()
                .into_iter()
                .map(move |(field, spec)| (format!("targets.{name}.{field}"), spec))
        });
        server.chain(targets).collect()
    }
}

fn default_store_url() -> String {
    "sqlite://idsync.db".to_string()
}

fn default_busy_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

/// `[server]`: health, metrics and the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The bearer token for `/api/v1` (every scope). Unset: the API is off (404).
    #[serde(default)]
    pub api_token: Option<SecretSpec>,
    /// How long shutdown waits for running jobs before abandoning them.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: ConfigDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            api_token: None,
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

fn default_shutdown_grace() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}

/// `[log]`: logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A level (`info`) or a tracing filter (`idsync=debug,info`). `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `json` (one object per line) or `text`.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::default(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_string()
}

/// The log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// The kinds of target idsync has an adapter for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// DigiCert CertCentral Services API v2.
    Digicert,
    /// Jama Connect REST API v1 (OAuth client credentials).
    Jama,
    /// Duck Creek's XML server-request protocol over SOAP (credentials in every body).
    Duckcreek,
}

impl TargetKind {
    /// Every kind, in the order the config documents them.
    pub const ALL: [TargetKind; 3] = [
        TargetKind::Digicert,
        TargetKind::Jama,
        TargetKind::Duckcreek,
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Digicert => "digicert",
            TargetKind::Jama => "jama",
            TargetKind::Duckcreek => "duckcreek",
        }
    }
}

/// `[targets.NAME]`: one application. Keys that only some kinds use say so.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Which adapter: `digicert`, `jama` or `duckcreek`.
    pub kind: TargetKind,
    /// DigiCert: the API root, e.g. `https://www.digicert.com/services/v2`. Jama: the
    /// tenant's root, e.g. `https://example.jamacloud.com` (`/rest/oauth/token` and
    /// `/rest/v1/…` are appended). Duck Creek: the SOAP endpoint itself, e.g.
    /// `https://dc.example.com/Server/Server.asmx`.
    pub base_url: url::Url,
    /// DigiCert: the API key (string, `{ env = "VAR" }` or `{ file = "PATH" }`).
    #[serde(default)]
    pub api_key: Option<SecretSpec>,
    /// DigiCert: the header that carries the API key.
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// Jama: the OAuth client id (sent with the secret as HTTP Basic to the token endpoint).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Jama: the OAuth client secret (string, `{ env = "VAR" }` or `{ file = "PATH" }`).
    #[serde(default)]
    pub client_secret: Option<SecretSpec>,
    /// Duck Creek: the service account's user name, sent in the login element of every
    /// request.
    #[serde(default)]
    pub username: Option<String>,
    /// Duck Creek: the service account's password (string, `{ env = "VAR" }` or
    /// `{ file = "PATH" }`). It travels inside every request body and is never logged.
    #[serde(default)]
    pub password: Option<SecretSpec>,
    /// Duck Creek: the entity whose users are imported (`OnlineData.listEntityUsersRq
    /// entityID`). Unset: `"1"`.
    #[serde(default)]
    pub entity_id: Option<String>,
    /// SOAP targets (Duck Creek): the `SOAPAction` header (SOAP 1.1, sent quoted; `""` sends
    /// `SOAPAction: ""`) or `action` parameter (SOAP 1.2). Unset: no `SOAPAction` header and
    /// no `action` parameter, as Saviynt's published Duck Creek package sends.
    #[serde(default)]
    pub soap_action: Option<String>,
    /// SOAP targets (Duck Creek): `"1.1"` (default) or `"1.2"`.
    #[serde(default)]
    pub soap_version: Option<SoapVersion>,
    /// SOAP targets (Duck Creek): the request `Content-Type`. Unset: `text/xml;
    /// charset=utf-8` (SOAP 1.1) or `application/soap+xml; charset=utf-8` (SOAP 1.2).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Duck Creek: an element the `<server>` document is wrapped in inside the SOAP `Body`,
    /// for servers that take it only through an operation such as `processRequestsAsDOM`.
    /// Unset: `<server>` is the `Body`'s child.
    #[serde(default)]
    pub request_wrapper: Option<RequestWrapper>,
    /// Targets with OAuth tokens (Jama): a token is refreshed this long before it expires
    /// (a token that lives less than this is refreshed at half its lifetime).
    #[serde(default = "default_token_refresh_skew")]
    pub token_refresh_skew: ConfigDuration,
    /// Whole-request timeout (connect + send + read).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// Records per page; unset: the adapter's default (DigiCert 1000, Jama 50; Jama serves at
    /// most 50 whatever is asked, and idsync follows what it serves). Duck Creek lists are not
    /// paged: this is how many records are handed to the store at a time (default 1000).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Requests in flight at once against this target.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// Client-side pacing: one window or a list of windows; `[]` turns pacing off.
    /// Unset: the adapter's default (DigiCert: 100 per 5s and 1000 per 3m, kept at 90%;
    /// Jama: 10 per 1s, its tenant-wide limit).
    #[serde(default)]
    pub rate_limit: Option<RateLimits>,
    /// Retries of idempotent reads.
    #[serde(default)]
    pub read_retry: ReadRetryConfig,
    /// Largest response body accepted, in bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// When an import would remove more than this, it is held.
    #[serde(default)]
    pub deletion_threshold: DeletionThreshold,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
    /// How provisioning tasks of this target are retried.
    #[serde(default)]
    pub retry: TaskRetryConfig,
    /// How long a claimed provisioning task stays leased to the process running it: a task
    /// left `running` by a process that died (SIGKILL, power loss) returns to the queue this
    /// long after its attempt started, and its next attempt reads the target first. Must be
    /// longer than `timeout` (a lease is not renewed, so it must outlast a whole attempt).
    /// Unset: `"5m"`.
    #[serde(default)]
    pub task_lease: Option<ConfigDuration>,
    /// Run a submitted task at once (still through the queue) instead of at the next
    /// provisioning tick.
    #[serde(default)]
    pub instant_provisioning: bool,
    /// Request-body templates by operation (`[targets.NAME.templates]`), overriding the
    /// adapter's built-in ones: `${ … }` prints a value (escaped for the body's format),
    /// `{% if … %}` tests one; a missing variable is an error. Keys: the operations the
    /// adapter builds a body for (DigiCert and Jama: `create_account`, `update_account`;
    /// Duck Creek: `disable_account`, `enable_account`, `add_access_role`,
    /// `remove_access_role`, `add_access_entity`, `remove_access_entity`, and
    /// `create_account`, `update_account`, `remove_account`, which have no built-in body).
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// Duck Creek: per operation, the per-request error codes that mean the change is already
    /// in place, so the task counts as done (`{ add_access = ["AlreadyAssigned"] }`). An
    /// operation named here replaces its built-in list; `[]` makes every failure fail. Keys:
    /// `add_access`, `remove_access`, `disable_account`, `enable_account`, `remove_account`.
    /// Built-in: `AlreadyAssigned` (add), `NotAssigned` (remove), `UserNotFound`
    /// (remove_account). Codes match without letter case.
    #[serde(default)]
    pub already_done_codes: BTreeMap<String, Vec<String>>,
    /// DigiCert: the access role id given to a created user when the task names no role
    /// entitlement. Unset: `"5"` (Standard User).
    #[serde(default)]
    pub default_role: Option<String>,
    /// DigiCert: what `disable_account` does. CertCentral has no enable/disable call, so by
    /// default (`unsupported`) it is refused at submit; `delete` deletes the user.
    #[serde(default)]
    pub disable_strategy: Option<DisableStrategy>,
    /// DigiCert: how `add_access` on a `container` moves a user to another division.
    /// CertCentral documents no call that does (Edit user lists no `container`), so by
    /// default it is refused at submit; `"put_user"` sends `container: {id}` in Edit user
    /// (`PUT /user/{id}`), as Saviynt's package does, and checks that the user moved.
    #[serde(default)]
    pub container_move: Option<String>,
    /// Jama: what `remove_account` does. Jama has no user delete, so by default
    /// (`unsupported`) it is refused at submit; `disable` deactivates the user.
    #[serde(default)]
    pub remove_strategy: Option<RemoveStrategy>,
}

/// `soap_version`: the SOAP version a target speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SoapVersion {
    /// SOAP 1.1: `text/xml`, a `SOAPAction` header, `faultcode` `Client`/`Server`.
    #[default]
    #[serde(rename = "1.1")]
    V1_1,
    /// SOAP 1.2: `application/soap+xml` with an `action` parameter, `Sender`/`Receiver`.
    #[serde(rename = "1.2")]
    V1_2,
}

impl SoapVersion {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SoapVersion::V1_1 => "1.1",
            SoapVersion::V1_2 => "1.2",
        }
    }
}

/// `disable_strategy` (DigiCert): what `disable_account` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisableStrategy {
    /// Refused at submit (CertCentral has no enable/disable call).
    #[default]
    Unsupported,
    /// Delete the user (`DELETE /user/{id}`).
    Delete,
}

/// `remove_strategy` (Jama): what `remove_account` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoveStrategy {
    /// Refused at submit (Jama has no user delete).
    #[default]
    Unsupported,
    /// Deactivate the user (`PUT /users/{id}/active` with `false`).
    Disable,
}

impl TargetConfig {
    /// The secret fields this target sets, by key (e.g. `api_key`). Add new secret fields here
    /// so that they are resolved at load and never shown in a config problem.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretSpec)> {
        let api_key = self.api_key.iter().map(|spec| ("api_key", spec));
        let client_secret = self
            .client_secret
            .iter()
            .map(|spec| ("client_secret", spec));
        let password = self.password.iter().map(|spec| ("password", spec));
        api_key.chain(client_secret).chain(password).collect()
    }

    /// Each key that only some kinds of target read, and whether this target sets it. The
    /// adapters say which of them they read; the registry refuses the others.
    pub fn kind_specific_keys(&self) -> [(&'static str, bool); 16] {
        [
            ("api_key", self.api_key.is_some()),
            ("api_key_header", self.api_key_header.is_some()),
            ("default_role", self.default_role.is_some()),
            ("disable_strategy", self.disable_strategy.is_some()),
            ("container_move", self.container_move.is_some()),
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("remove_strategy", self.remove_strategy.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("entity_id", self.entity_id.is_some()),
            ("soap_action", self.soap_action.is_some()),
            ("soap_version", self.soap_version.is_some()),
            ("content_type", self.content_type.is_some()),
            ("request_wrapper", self.request_wrapper.is_some()),
            ("already_done_codes", !self.already_done_codes.is_empty()),
        ]
    }
}

fn default_token_refresh_skew() -> ConfigDuration {
    ConfigDuration::from_secs(60)
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

fn default_max_concurrency() -> u32 {
    4
}

fn default_max_response_bytes() -> u64 {
    64 * 1024 * 1024
}

/// One pacing window: at most `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed in the window.
    pub requests: u32,
    /// The window length.
    pub per: ConfigDuration,
}

/// `rate_limit`: one window (`{ requests = 100, per = "5s" }`) or several.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RateLimits {
    /// A single window.
    One(RateLimit),
    /// Several windows, all enforced; empty = no pacing.
    Many(Vec<RateLimit>),
}

impl RateLimits {
    /// The windows as a list.
    pub fn windows(&self) -> Vec<RateLimit> {
        match self {
            RateLimits::One(one) => vec![*one],
            RateLimits::Many(many) => many.clone(),
        }
    }
}

/// `read_retry`: how idempotent reads are retried on transient errors and 429s.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRetryConfig {
    /// Attempts in all, including the first.
    #[serde(default = "default_read_attempts")]
    pub max_attempts: u32,
    /// The first backoff (doubles each time, with jitter).
    #[serde(default = "default_read_initial_backoff")]
    pub initial_backoff: ConfigDuration,
    /// The longest backoff. A `Retry-After` longer than this ends the retries.
    #[serde(default = "default_read_max_backoff")]
    pub max_backoff: ConfigDuration,
}

impl Default for ReadRetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_read_attempts(),
            initial_backoff: default_read_initial_backoff(),
            max_backoff: default_read_max_backoff(),
        }
    }
}

fn default_read_attempts() -> u32 {
    5
}

fn default_read_initial_backoff() -> ConfigDuration {
    ConfigDuration::from_millis(500)
}

fn default_read_max_backoff() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}

/// `retry`: how provisioning tasks are retried after transient errors and 429s
/// (exponential backoff with jitter, at least the target's `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRetryConfig {
    /// Attempts in all, including the first (attempts refused by an open circuit do not
    /// count).
    #[serde(default = "default_task_attempts")]
    pub max_attempts: u32,
    /// The backoff after the first failed attempt (doubles each time, with jitter).
    #[serde(default = "default_task_initial_backoff")]
    pub initial_backoff: ConfigDuration,
    /// The longest backoff.
    #[serde(default = "default_task_max_backoff")]
    pub max_backoff: ConfigDuration,
    /// A task still failing this long after its first attempt is failed.
    #[serde(default = "default_task_give_up_after")]
    pub give_up_after: ConfigDuration,
}

impl Default for TaskRetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_task_attempts(),
            initial_backoff: default_task_initial_backoff(),
            max_backoff: default_task_max_backoff(),
            give_up_after: default_task_give_up_after(),
        }
    }
}

fn default_task_attempts() -> u32 {
    8
}

fn default_task_initial_backoff() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

fn default_task_max_backoff() -> ConfigDuration {
    ConfigDuration::from_secs(3600)
}

fn default_task_give_up_after() -> ConfigDuration {
    ConfigDuration::from_secs(24 * 3600)
}

/// `deletion_threshold`: an import is held when removals of one object kind exceed `count`
/// OR `percent` of that kind's non-suspended rows.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionThreshold {
    /// Percent of existing rows (0–100).
    #[serde(default = "default_threshold_percent")]
    pub percent: f64,
    /// Absolute number of rows.
    #[serde(default = "default_threshold_count")]
    pub count: u64,
}

impl Default for DeletionThreshold {
    fn default() -> Self {
        Self {
            percent: default_threshold_percent(),
            count: default_threshold_count(),
        }
    }
}

fn default_threshold_percent() -> f64 {
    20.0
}

fn default_threshold_count() -> u64 {
    1000
}

/// `tls`: TLS settings of a target.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of extra CA certificates to trust (added to the system roots).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// `request_wrapper`: the SOAP operation element that wraps a Duck Creek `<server>` document,
/// e.g. `{ element = "processRequestsAsDOM" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestWrapper {
    /// The element's local name, e.g. `processRequestsAsDOM`.
    pub element: String,
    /// The element's namespace; `""`: none. Unset: `http://tempuri.org/` (the namespace an
    /// ASMX service has unless its author chose one). The `<server>` document inside stays
    /// in no namespace.
    #[serde(default = "default_wrapper_namespace")]
    pub namespace: String,
}

/// ASMX's default service namespace.
fn default_wrapper_namespace() -> String {
    "http://tempuri.org/".to_string()
}

/// `[jobs.NAME]`: one scheduled job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// `account_import` | `access_import` | `provisioning`.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// The target (imports: required; provisioning: omit for every target).
    #[serde(default)]
    pub target: Option<String>,
    /// Six-field cron expression, seconds first, evaluated in UTC.
    pub schedule: String,
    /// Imports: `full` (default) or `incremental`.
    #[serde(default = "default_mode")]
    pub mode: ImportMode,
}

fn default_mode() -> ImportMode {
    ImportMode::Full
}
