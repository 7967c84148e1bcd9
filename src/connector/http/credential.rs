//! Credentials the client applies to every request.

use std::fmt;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};

use crate::connector::ConnectorError;

/// A source of credentials that the client applies to every request.
///
/// Implementations: [`StaticHeader`] (an API key in a header) and [`NoCredential`]. A bearer
/// token cache plugs in the same way: `apply` adds the current token (refreshing it when
/// needed), and `on_unauthorized` invalidates it and returns `true` so that the client refreshes
/// and retries the call once after a 401.
#[async_trait]
pub trait Credential: Send + Sync {
    /// Adds the credentials to a request about to be sent.
    async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ConnectorError>;

    /// Called after a 401. Returns `true` when fresh credentials are worth one more try (the
    /// client then repeats the request once); a static credential returns `false`.
    async fn on_unauthorized(&self) -> bool {
        false
    }

    /// Removes any secret value from text that came back from the target (an error body may
    /// echo request headers). The default returns the text unchanged.
    fn redact(&self, text: &str) -> String {
        text.to_string()
    }
}

/// No credentials at all (simulators, tests, open endpoints).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredential;

#[async_trait]
impl Credential for NoCredential {
    async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        Ok(request)
    }
}

/// A static secret sent in one header on every request (DigiCert: `X-DC-DEVKEY: <key>`).
/// The header value is marked sensitive; `Debug` shows the header name only.
pub struct StaticHeader {
    target: String,
    name: HeaderName,
    value: SecretString,
}

impl StaticHeader {
    /// Checks that `name` is a valid header name and that the secret can be sent as a header
    /// value (no control characters such as a stray newline). Errors never quote the secret.
    pub fn new(target: &str, name: &str, value: SecretString) -> Result<Self, ConnectorError> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConnectorError::config(target, format!("`{name}` is not a valid HTTP header name"))
        })?;
        if HeaderValue::from_str(value.expose_secret()).is_err() {
            return Err(ConnectorError::config(
                target,
                format!(
                    "the secret for header {name} contains characters that cannot be sent in an \
                     HTTP header (a stray newline or control character?)"
                ),
            ));
        }
        Ok(Self {
            target: target.to_string(),
            name: header,
            value,
        })
    }
}

impl fmt::Debug for StaticHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticHeader({}: [REDACTED])", self.name)
    }
}

#[async_trait]
impl Credential for StaticHeader {
    async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        // Checked in `new`, so this does not fail; map rather than unwrap all the same.
        let mut value = HeaderValue::from_str(self.value.expose_secret()).map_err(|_| {
            ConnectorError::config(&self.target, "the credential header value is invalid")
        })?;
        value.set_sensitive(true);
        Ok(request.header(self.name.clone(), value))
    }

    fn redact(&self, text: &str) -> String {
        let secret = self.value.expose_secret();
        if secret.is_empty() {
            text.to_string()
        } else {
            text.replace(secret, "[REDACTED]")
        }
    }
}
