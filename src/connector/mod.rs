//! The `Connector` trait every adapter implements, its classified error, and the shared
//! building blocks (HTTP client, pacing, paging guards, response mapping, templates, token
//! cache, SOAP envelopes and faults, the streaming XML reader). Adapters: [`digicert`],
//! [`jama`], [`duckcreek`].
//!
//! The jobs know nothing target-specific: they consume paged streams of records and call one
//! provisioning entry point. Retries, pacing and pagination guards live in the shared blocks.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::model::{AccountRecord, EntitlementRecord, GrantRecord, Operation};

pub mod digicert;
pub mod duckcreek;
pub mod http;
pub mod jama;
pub mod mapping;
pub mod paging;
pub mod password;
pub mod registry;
pub mod soap;
pub mod template;
pub mod token;
pub mod xml;

/// A page of records, as one item of a connector stream.
pub type PageResult<T> = Result<Vec<T>, ConnectorError>;

/// A stream of pages. Each item is one page as the target returned it; an `Err` item ends
/// the stream and fails the whole run.
pub type PageStream<'a, T> = BoxStream<'a, PageResult<T>>;

/// How a connector error should be treated by retry logic and by the circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The target rejected our credentials (401).
    Auth,
    /// This request is not allowed (403).
    Forbidden,
    /// The target asked us to slow down (429).
    RateLimited,
    /// Worth retrying: timeouts, connection errors, 5xx.
    Transient,
    /// Retrying will not help: validation errors, other 4xx, malformed responses.
    Permanent,
    /// The change was already in place.
    AlreadyDone,
    /// The target cannot do this operation.
    Unsupported,
}

impl ErrorClass {
    /// The lower-case name used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Auth => "auth",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::AlreadyDone => "already_done",
            ErrorClass::Unsupported => "unsupported",
        }
    }
}

/// An error from a target, classified for retry decisions. Messages carry the target's own
/// words but never a credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// 401: the target rejected our credentials.
    #[error("target {target} rejected the credentials: {message} (check the target's api key, client secret or password)")]
    Auth {
        /// The target's config name.
        target: String,
        /// The target's own message.
        message: String,
    },
    /// 403: this request is not allowed for our credentials.
    #[error("target {target} refused the request (permission denied): {message}")]
    Forbidden {
        /// The target's config name.
        target: String,
        /// The target's own message.
        message: String,
    },
    /// 429: the target's rate limit was hit.
    #[error("target {target} rate-limited the request: {message}")]
    RateLimited {
        /// The target's config name.
        target: String,
        /// The wait the target asked for (`Retry-After`), when it said one.
        retry_after: Option<Duration>,
        /// The target's own message.
        message: String,
    },
    /// Timeouts, connection errors and 5xx: worth retrying.
    #[error("transient error from target {target}: {message}")]
    Transient {
        /// The target's config name.
        target: String,
        /// What happened, with the target's own message when it sent one.
        message: String,
    },
    /// Validation errors, other 4xx, malformed responses: retrying will not help.
    #[error("{}", permanent_text(target, *status, message))]
    Permanent {
        /// The target's config name.
        target: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// The target's own message, or what was wrong with its response.
        message: String,
    },
    /// The change was already in place (e.g. "already a member").
    #[error("already done at target {target}: {message}")]
    AlreadyDone {
        /// The target's config name.
        target: String,
        /// What was already in place.
        message: String,
    },
    /// The target cannot do this operation.
    #[error("operation {operation} is not supported by target {target}: {reason}")]
    Unsupported {
        /// The target's config name.
        target: String,
        /// The refused operation.
        operation: String,
        /// Why, and what to do instead.
        reason: String,
    },
}

/// The text of a `Permanent` error: a refusal when the target answered with a status, or
/// plainly the problem (a malformed response, a bad setting) when it did not.
fn permanent_text(target: &str, status: Option<u16>, message: &str) -> String {
    match status {
        Some(status) => format!("target {target} rejected the request (HTTP {status}): {message}"),
        None => format!("target {target}: {message}"),
    }
}

impl ConnectorError {
    /// The class that retry logic keys off.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectorError::Auth { .. } => ErrorClass::Auth,
            ConnectorError::Forbidden { .. } => ErrorClass::Forbidden,
            ConnectorError::RateLimited { .. } => ErrorClass::RateLimited,
            ConnectorError::Transient { .. } => ErrorClass::Transient,
            ConnectorError::Permanent { .. } => ErrorClass::Permanent,
            ConnectorError::AlreadyDone { .. } => ErrorClass::AlreadyDone,
            ConnectorError::Unsupported { .. } => ErrorClass::Unsupported,
        }
    }

    /// Whether a read that failed this way may be retried.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Transient | ErrorClass::RateLimited
        )
    }

    /// Builds a `Permanent` error for a response the adapter could not make sense of.
    pub fn malformed(target: &str, message: impl Into<String>) -> Self {
        ConnectorError::Permanent {
            target: target.to_string(),
            status: None,
            message: format!("malformed response: {}", message.into()),
        }
    }

    /// The same error with every occurrence of `secret` in its text replaced by `[REDACTED]`
    /// (e.g. a generated password a target echoed back in its message). An empty `secret`
    /// changes nothing.
    pub fn redact(self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        self.map_text(|text| text.replace(secret, "[REDACTED]"))
    }

    /// The same error with `clean` applied to its free text (the target's message, or the
    /// reason of an `Unsupported`): for removing secrets the target may have echoed.
    pub fn map_text(self, clean: impl Fn(String) -> String) -> Self {
        match self {
            ConnectorError::Auth { target, message } => ConnectorError::Auth {
                target,
                message: clean(message),
            },
            ConnectorError::Forbidden { target, message } => ConnectorError::Forbidden {
                target,
                message: clean(message),
            },
            ConnectorError::RateLimited {
                target,
                retry_after,
                message,
            } => ConnectorError::RateLimited {
                target,
                retry_after,
                message: clean(message),
            },
            ConnectorError::Transient { target, message } => ConnectorError::Transient {
                target,
                message: clean(message),
            },
            ConnectorError::Permanent {
                target,
                status,
                message,
            } => ConnectorError::Permanent {
                target,
                status,
                message: clean(message),
            },
            ConnectorError::AlreadyDone { target, message } => ConnectorError::AlreadyDone {
                target,
                message: clean(message),
            },
            ConnectorError::Unsupported {
                target,
                operation,
                reason,
            } => ConnectorError::Unsupported {
                target,
                operation,
                reason: clean(reason),
            },
        }
    }

    /// Builds a `Permanent` error for a target whose settings cannot work (a missing API key,
    /// an unreadable `tls.ca_file`, …), found while building its connector.
    pub fn config(target: &str, message: impl Into<String>) -> Self {
        ConnectorError::Permanent {
            target: target.to_string(),
            status: None,
            message: format!("configuration error: {}", message.into()),
        }
    }
}

/// One operation an adapter supports, optionally limited to one entitlement type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Capability {
    /// The operation.
    pub operation: Operation,
    /// For `add_access` / `remove_access`: the entitlement type it applies to.
    pub entitlement_type: Option<String>,
}

/// What an adapter can do, declared up front so unsupported operations are refused at submit.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// The entitlement types an import produces.
    pub entitlement_types: Vec<String>,
    /// The supported provisioning operations.
    pub operations: BTreeSet<Capability>,
}

impl Capabilities {
    /// Whether `operation` is declared, for entitlement type `entitlement_type` (access
    /// operations; compared without letter case) or for the account (`None`).
    pub fn supports(&self, operation: Operation, entitlement_type: Option<&str>) -> bool {
        self.operations.iter().any(|capability| {
            capability.operation == operation
                && match (&capability.entitlement_type, entitlement_type) {
                    (None, None) => true,
                    (Some(declared), Some(wanted)) => declared.eq_ignore_ascii_case(wanted),
                    _ => false,
                }
        })
    }
}

/// A provisioning request handed to a connector (filled by the provisioning issue).
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The operation.
    pub operation: Operation,
    /// The account's native id, when known.
    pub account_id: Option<String>,
    /// The account's login name.
    pub account_name: String,
    /// The entitlement type and native id, for access operations.
    pub entitlement: Option<(String, String)>,
    /// The identity attributes given with the task.
    pub attributes: crate::model::Attributes,
    /// The entitlement's display name (bound as `entitlementValue.entitlement_value`).
    pub entitlement_name: Option<String>,
    /// The task this request carries out (bound as `task.id`), when it comes from the queue.
    pub task_id: Option<i64>,
    /// The caller's request id (bound as `requestid`).
    pub request_id: Option<String>,
}

/// What a successful provisioning call did.
#[derive(Debug, Clone, PartialEq)]
pub enum ProvisionOutcome {
    /// The change was made; for `create_account`, the new native id.
    Done {
        /// The native id of a created account.
        account_id: Option<String>,
    },
    /// The change was already in place; for `create_account`, the native id of the existing
    /// account that matched the task (when the target told it).
    AlreadyDone {
        /// The native id of the account that already existed.
        account_id: Option<String>,
    },
}

/// The contract every adapter implements.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The target's config name.
    fn target(&self) -> &str;

    /// What this target supports.
    fn capabilities(&self) -> &Capabilities;

    /// Authenticates and makes one cheap read.
    async fn test_connection(&self) -> Result<(), ConnectorError>;

    /// Every account of the target, page by page.
    fn accounts(&self) -> PageStream<'_, AccountRecord>;

    /// Every entitlement of the target, page by page.
    fn entitlements(&self) -> PageStream<'_, EntitlementRecord>;

    /// Every grant of the target, page by page.
    fn grants(&self) -> PageStream<'_, GrantRecord>;

    /// Applies one provisioning operation.
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError>;

    /// Why this target refuses `operation` (on entitlement type `entitlement_type`, for
    /// access operations) when [`capabilities`](Self::capabilities) does not declare it: the
    /// message shown when such a task is refused at submit. Adapters say why and what to do
    /// instead.
    fn unsupported_reason(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        match entitlement_type {
            Some(kind) => format!(
                "target {} does not support {operation} on entitlement type {kind}",
                self.target()
            ),
            None => format!("target {} does not support {operation}", self.target()),
        }
    }

    /// Reads one account by login name, to check the target before repeating an attempt
    /// whose outcome is unknown (did the create go through?). Adapters without a lookup
    /// say so; the engine then relies on the target's duplicate handling.
    async fn lookup_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            target: self.target().to_string(),
            operation: "lookup_account".to_string(),
            reason: format!("cannot look up account {name} by login name"),
        })
    }
}
