//! The classified error every adapter returns: its class decides retries and the circuit
//! breaker, its text carries the target's own words and never a credential.

use std::time::Duration;

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
