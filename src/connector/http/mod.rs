//! The shared HTTP client: one [`HttpClient`] per target, used by every adapter.
//!
//! It owns everything about talking to a target that is not target-specific:
//! * timeouts, rustls with the system roots plus `tls.ca_file`, and a body cap
//!   (`max_response_bytes`, enforced while streaming);
//! * the security rules: redirects are never followed, requests go only to the scheme, host
//!   and port of `base_url`, path values are percent-encoded single segments;
//! * credentials, injected by a [`Credential`] (a static API-key header, the OAuth
//!   [`TokenCache`](super::token::TokenCache), or a secret carried in the body),
//!   with header values marked sensitive and secrets redacted from anything the target echoes;
//! * error classification into [`ConnectorError`] classes, carrying the target's own message;
//! * retries of idempotent reads ([`HttpClient::get_json`]) with backoff and jitter, honouring
//!   `Retry-After`; writes ([`HttpClient::send`]) are never retried;
//! * bodies that are not JSON ([`RawBody`], e.g. SOAP envelopes) and responses read as a
//!   stream ([`HttpClient::send_streaming`]), still under the body cap;
//! * pacing (every configured window, see [`pacing_quota`]) and a concurrency cap;
//! * the `idsync_target_request*` metrics and one debug log line per request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use governor::{Jitter, RateLimiter};
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use super::retry::ReadRetry;
use super::ConnectorError;

mod body;
mod credential;
mod pacing;

use self::body::{read_capped, BodyError, BodyNetworkError, BodyTooLarge};
pub use self::body::{BodyReader, RawBody, StreamingResponse};
pub use self::credential::{Credential, NoCredential, StaticHeader};
pub use self::pacing::pacing_quota;
use self::pacing::Pacer;
use crate::config::{RateLimit, TargetConfig};
use crate::telemetry::{TARGET_REQUESTS_TOTAL, TARGET_REQUEST_DURATION_SECONDS};

/// The `User-Agent` idsync sends to every target.
pub const USER_AGENT: &str = concat!("idsync/", env!("CARGO_PKG_VERSION"));

/// The longest excerpt of a response body quoted in an error when the adapter found no
/// message of the target's own in it.
const EXCERPT_CHARS: usize = 200;

/// Error bodies are read up to this size at most (only a message is needed from them).
const ERROR_BODY_CAP: u64 = 64 * 1024;

/// What an adapter reads from one error response of its target.
#[derive(Debug, Clone)]
pub enum ErrorReading {
    /// The target's own message (DigiCert `{"errors":[{"code","message"}]}` → `"code:
    /// message"`); the status decides the class.
    Message(String),
    /// The body decides the class, whatever the status says (a SOAP `Client` fault comes
    /// with HTTP 500 and is not worth retrying). The client redacts the credential's secrets
    /// from it.
    Classified(ConnectorError),
    /// Nothing in the target's shape: the client quotes a short excerpt of the body.
    Unknown,
}

/// How an adapter reads its target's error responses: the target's config name, the status
/// and the body (read up to a small cap). The one hook every adapter gives the shared client
/// (and the token cache) for errors.
pub type ReadErrorFn = fn(&str, StatusCode, &[u8]) -> ErrorReading;

/// The [`ReadErrorFn`] of a target without an error format of its own.
pub fn plain_errors(_target: &str, _status: StatusCode, _body: &[u8]) -> ErrorReading {
    ErrorReading::Unknown
}

/// What an adapter supplies to the shared client besides the target's config.
#[derive(Debug, Clone)]
pub struct ClientDefaults {
    /// The pacing windows used when the target's config leaves `rate_limit` unset.
    pub rate_limits: Vec<RateLimit>,
    /// How to read the target's error responses.
    pub read_error: ReadErrorFn,
}

impl Default for ClientDefaults {
    /// No pacing, and no target-specific error format.
    fn default() -> Self {
        Self {
            rate_limits: Vec::new(),
            read_error: plain_errors,
        }
    }
}

/// A successful response to [`HttpClient::send`]: its status and its whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// The HTTP status (always 2xx).
    pub status: StatusCode,
    /// The body, at most `max_response_bytes` long.
    pub body: Bytes,
}

/// The HTTP client of one target. Cheap to share behind an `Arc`; `Debug` shows the target and
/// base URL only.
pub struct HttpClient {
    target: String,
    base_url: Url,
    client: reqwest::Client,
    credential: Arc<dyn Credential>,
    pacers: Vec<Pacer>,
    in_flight: Arc<Semaphore>,
    max_response_bytes: u64,
    read_retry: ReadRetry,
    read_error: ReadErrorFn,
    timeout: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("target", &self.target)
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// How one attempt failed before or without a status (for metrics and messages).
enum NetworkFailure {
    Timeout,
    Connect,
}

impl HttpClient {
    /// Builds the client of target `target` from its config and the adapter's defaults.
    ///
    /// Fails (class `Permanent`) when `base_url` is not an `http(s)` URL with a host, when
    /// `tls.ca_file` cannot be read or holds no PEM certificate, or when a pacing window is
    /// unusable.
    pub fn new(
        target: &str,
        config: &TargetConfig,
        defaults: ClientDefaults,
        credential: Arc<dyn Credential>,
    ) -> Result<Self, ConnectorError> {
        let mut base_url = config.base_url.clone();
        if !matches!(base_url.scheme(), "http" | "https")
            || base_url.host_str().is_none()
            || base_url.cannot_be_a_base()
        {
            return Err(ConnectorError::config(
                target,
                format!("base_url `{base_url}` must be an http:// or https:// URL with a host"),
            ));
        }
        base_url.set_query(None);
        base_url.set_fragment(None);

        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout.get())
            .timeout(config.timeout.get())
            .use_rustls_tls();
        if let Some(path) = &config.tls.ca_file {
            for certificate in read_ca_file(target, path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|err| {
            let hint = match &config.tls.ca_file {
                Some(path) => format!(
                    " (check the certificates in tls.ca_file {})",
                    path.display()
                ),
                None => String::new(),
            };
            ConnectorError::config(
                target,
                format!("cannot set up the HTTP client: {}{hint}", error_chain(&err)),
            )
        })?;

        let windows = match &config.rate_limit {
            Some(configured) => configured.windows(),
            None => defaults.rate_limits,
        };
        let mut pacers = Vec::with_capacity(windows.len());
        for window in windows {
            let quota = pacing_quota(&window).ok_or_else(|| {
                ConnectorError::config(
                    target,
                    format!(
                        "rate_limit {{ requests = {}, per = \"{}\" }} allows no request; use \
                         positive values, or rate_limit = [] to turn pacing off",
                        window.requests, window.per
                    ),
                )
            })?;
            let jitter = (quota.replenish_interval() / 10).min(Duration::from_millis(50));
            pacers.push(Pacer {
                window,
                limiter: RateLimiter::direct(quota),
                jitter,
            });
        }

        Ok(Self {
            target: target.to_string(),
            base_url,
            client,
            credential,
            pacers,
            in_flight: Arc::new(Semaphore::new(
                usize::try_from(config.max_concurrency.max(1)).unwrap_or(1),
            )),
            max_response_bytes: config.max_response_bytes,
            read_retry: ReadRetry::new(config.read_retry),
            read_error: defaults.read_error,
            timeout: config.timeout.get(),
        })
    }

    /// The target's config name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// `text` with every secret the credential knows replaced by `[REDACTED]` (for messages
    /// an adapter builds from what the target sent back).
    pub fn redact(&self, text: &str) -> String {
        self.credential.redact(text)
    }

    /// The target's API root (without query or fragment).
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The pacing windows in force (empty: no pacing).
    pub fn rate_limits(&self) -> Vec<RateLimit> {
        self.pacers.iter().map(|pacer| pacer.window).collect()
    }

    /// A URL under the base: each of `segments` is appended to the base path as one
    /// percent-encoded segment (`/` inside a value becomes `%2F`), then `query` is added.
    /// Base `https://host/services/v2` + `["user", "123"]` → `https://host/services/v2/user/123`.
    ///
    /// Refuses (class `Permanent`) an empty segment and the segments `.` and `..`, which a URL
    /// cannot carry as data: they would address another resource.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, ConnectorError> {
        if let Some(bad) = segments
            .iter()
            .find(|s| s.is_empty() || **s == "." || **s == "..")
        {
            return Err(ConnectorError::Permanent {
                target: self.target.clone(),
                status: None,
                message: format!("`{bad}` cannot be used as a value in a URL path"),
            });
        }
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| ConnectorError::config(&self.target, "base_url cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(key, value)| (*key, value.as_str())));
        }
        Ok(url)
    }

    /// GETs `url` and parses the JSON body as `T`.
    ///
    /// An idempotent read, so it is retried under the target's `read_retry` policy
    /// ([`ReadRetry`]). A body that is not the expected JSON is `Permanent`, naming what
    /// failed to parse.
    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, ConnectorError> {
        let body = self
            .retrying_read(&url, || self.execute(Method::GET, &url, Payload::None))
            .await?
            .body;
        self.parse_json(url.path(), &body)
    }

    /// Runs `read` (an idempotent request to `url`) and repeats it under the target's
    /// `read_retry` policy ([`ReadRetry`]).
    pub async fn retrying_read<T, F, Fut>(&self, url: &Url, read: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ConnectorError>>,
    {
        self.read_retry.run(&self.target, url.path(), read).await
    }

    /// Sends one request with an optional JSON body and returns the 2xx response. Never
    /// retried (the caller decides, knowing whether the change may have been made); a 401
    /// is repeated once only when the credential says fresh credentials may help.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<HttpResponse, ConnectorError> {
        let payload = body.map_or(Payload::None, Payload::Json);
        self.execute(method, &url, payload).await
    }

    /// Sends one request with `body` (any content type) and returns the 2xx response with its
    /// body unread, to be consumed as a stream ([`StreamingResponse::body`]); the body cap
    /// applies while it is read. Like [`send`](Self::send), never retried here: wrap it in
    /// [`retrying_read`](Self::retrying_read) when the request is an idempotent read. The
    /// concurrency slot is held until the response is dropped.
    pub async fn send_streaming(
        &self,
        method: Method,
        url: &Url,
        body: &RawBody,
    ) -> Result<StreamingResponse, ConnectorError> {
        self.check_origin(url)?;
        let permit = self.acquire().await?;
        let mut response = self
            .with_fresh_credentials(|| self.attempt_streaming(&method, url, body))
            .await?;
        response.permit = Some(permit);
        Ok(response)
    }

    /// The error for a body that failed while being streamed ([`StreamingResponse::body`]):
    /// over `max_response_bytes` is `Permanent`, a broken connection or a timeout
    /// `Transient`; `None` when `err` did not come from the body stream (e.g. a parse error).
    pub fn body_error(&self, err: &std::io::Error, what: &str) -> Option<ConnectorError> {
        let inner = err.get_ref()?;
        if let Some(too_large) = inner.downcast_ref::<BodyTooLarge>() {
            return Some(ConnectorError::Permanent {
                target: self.target.clone(),
                status: None,
                message: format!(
                    "the response to {what} is larger than max_response_bytes ({} bytes); raise \
                     max_response_bytes",
                    too_large.cap
                ),
            });
        }
        let network = inner.downcast_ref::<BodyNetworkError>()?;
        let message = if network.timeout {
            format!(
                "reading the response to {what} timed out (timeout {})",
                humantime::format_duration(self.timeout)
            )
        } else {
            format!(
                "the connection broke while reading the response to {what}: {}",
                network.detail
            )
        };
        Some(ConnectorError::Transient {
            target: self.target.clone(),
            message: self.credential.redact(&message),
        })
    }

    /// Parses a response body as JSON, naming `what` (e.g. the path) when it fails.
    pub fn parse_json<T: DeserializeOwned>(
        &self,
        what: &str,
        body: &[u8],
    ) -> Result<T, ConnectorError> {
        serde_json::from_slice(body).map_err(|err| {
            ConnectorError::malformed(
                &self.target,
                format!(
                    "cannot read the response to {what} as {}: {err}",
                    short_type_name::<T>()
                ),
            )
        })
    }

    /// One request, through the origin check, the concurrency cap, pacing and credentials,
    /// classified. Repeats once after a 401 if the credential asks for it.
    async fn execute(
        &self,
        method: Method,
        url: &Url,
        payload: Payload<'_>,
    ) -> Result<HttpResponse, ConnectorError> {
        self.check_origin(url)?;
        let _permit = self.acquire().await?;
        self.with_fresh_credentials(|| self.attempt(&method, url, payload))
            .await
    }

    /// Runs `attempt`, and once more after a 401 when the credential says fresh credentials
    /// may help (a token cache refreshes; a static key does not).
    async fn with_fresh_credentials<T, F, Fut>(&self, mut attempt: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ConnectorError>>,
    {
        let mut refreshed = false;
        loop {
            match attempt().await {
                Err(ConnectorError::Auth { .. })
                    if !refreshed && self.credential.on_unauthorized().await =>
                {
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    /// Refuses a URL outside the origin of `base_url`.
    fn check_origin(&self, url: &Url) -> Result<(), ConnectorError> {
        if url.origin() == self.base_url.origin() {
            return Ok(());
        }
        Err(ConnectorError::Permanent {
            target: self.target.clone(),
            status: None,
            message: format!(
                "refusing to send a request to {} (only {} is allowed)",
                url.origin().ascii_serialization(),
                self.base_url.origin().ascii_serialization()
            ),
        })
    }

    /// A slot under `max_concurrency`.
    async fn acquire(&self) -> Result<OwnedSemaphorePermit, ConnectorError> {
        self.in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ConnectorError::Transient {
                target: self.target.clone(),
                message: "the HTTP client is shutting down".to_string(),
            })
    }

    /// One paced attempt whose body is read whole, with metrics and the per-request debug log.
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        payload: Payload<'_>,
    ) -> Result<HttpResponse, ConnectorError> {
        let request = self.prepare(method, url, payload).await?;
        let started = tokio::time::Instant::now();
        let (result, status_class, status) = match self.transmit(method, url, request).await {
            Err((error, class)) => (Err(error), class, None),
            Ok(response) => {
                let status = response.status();
                (
                    self.read_response(method, url, response).await,
                    status_class(status),
                    Some(status.as_u16()),
                )
            }
        };
        self.observe(method, url, status_class, status, started.elapsed());
        result
    }

    /// One paced attempt whose 2xx body is left to stream; the metrics and the debug log
    /// time it up to the response headers.
    async fn attempt_streaming(
        &self,
        method: &Method,
        url: &Url,
        body: &RawBody,
    ) -> Result<StreamingResponse, ConnectorError> {
        let request = self.prepare(method, url, Payload::Raw(body)).await?;
        let started = tokio::time::Instant::now();
        let (result, status_class, status) = match self.transmit(method, url, request).await {
            Err((error, class)) => (Err(error), class, None),
            Ok(response) => {
                let status = response.status();
                let result = if status.is_success() {
                    Ok(StreamingResponse::new(response, self.max_response_bytes))
                } else {
                    Err(self.error_response(url, response).await)
                };
                (result, status_class(status), Some(status.as_u16()))
            }
        };
        self.observe(method, url, status_class, status, started.elapsed());
        result
    }

    /// Waits for pacing, then builds the request with its body and credentials. A credential
    /// that cannot be had (a token endpoint refusing) fails here: no request was sent, so
    /// none is counted.
    async fn prepare(
        &self,
        method: &Method,
        url: &Url,
        payload: Payload<'_>,
    ) -> Result<RequestBuilder, ConnectorError> {
        for pacer in &self.pacers {
            pacer
                .limiter
                .until_ready_with_jitter(Jitter::up_to(pacer.jitter))
                .await;
        }
        let mut request = self.client.request(method.clone(), url.clone());
        match payload {
            Payload::None => {}
            Payload::Json(json) => request = request.json(json),
            Payload::Raw(raw) => {
                request = request
                    .header(CONTENT_TYPE, raw.content_type.clone())
                    .body(raw.bytes.clone());
                for (name, value) in &raw.headers {
                    request = request.header(name.clone(), value.clone());
                }
            }
        }
        self.credential.apply(request).await
    }

    /// Sends a prepared request; one that got no response is a `Transient` error with its
    /// `status_class` label (`timeout` or `connect`).
    async fn transmit(
        &self,
        method: &Method,
        url: &Url,
        request: RequestBuilder,
    ) -> Result<reqwest::Response, (ConnectorError, &'static str)> {
        request.send().await.map_err(|err| {
            let (failure, error) = self.network_error(method, url, &err);
            let class = match failure {
                NetworkFailure::Timeout => "timeout",
                NetworkFailure::Connect => "connect",
            };
            (error, class)
        })
    }

    /// Counts and times one request, and writes its debug log line (never headers or bodies).
    fn observe(
        &self,
        method: &Method,
        url: &Url,
        status_class: &'static str,
        status: Option<u16>,
        elapsed: Duration,
    ) {
        metrics::counter!(
            TARGET_REQUESTS_TOTAL,
            "target" => self.target.clone(),
            "status_class" => status_class
        )
        .increment(1);
        metrics::histogram!(TARGET_REQUEST_DURATION_SECONDS, "target" => self.target.clone())
            .record(elapsed.as_secs_f64());
        tracing::debug!(
            target = %self.target,
            method = %method,
            path = url.path(),
            status = status.map(u64::from),
            status_class,
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "Target request."
        );
    }

    /// Turns a response into the 2xx body or a classified error.
    async fn read_response(
        &self,
        method: &Method,
        url: &Url,
        response: reqwest::Response,
    ) -> Result<HttpResponse, ConnectorError> {
        let status = response.status();
        if status.is_success() {
            let body = self
                .read_body(method, url, response, self.max_response_bytes)
                .await?;
            return Ok(HttpResponse { status, body });
        }
        Err(self.error_response(url, response).await)
    }

    /// The classified error of a non-2xx response (its body read up to a small cap).
    async fn error_response(&self, url: &Url, response: reqwest::Response) -> ConnectorError {
        let status = response.status();
        if status.is_redirection() {
            return self.redirect_error(status, url, response.headers());
        }
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS {
            parse_retry_after(response.headers(), crate::clock::now())
        } else {
            None
        };
        let cap = self.max_response_bytes.min(ERROR_BODY_CAP);
        // An error body that cannot be read in full still tells the status.
        let body = match read_capped(response, cap, true).await {
            Ok(body) => body,
            Err(_) => Bytes::new(),
        };
        let message = match (self.read_error)(&self.target, status, &body) {
            ErrorReading::Classified(err) => {
                return err.map_text(|text| self.credential.redact(&text))
            }
            ErrorReading::Message(message) => Some(message),
            ErrorReading::Unknown => None,
        };
        self.status_error(status, retry_after, &body, message)
    }

    /// Reads a success body up to `cap` bytes.
    async fn read_body(
        &self,
        method: &Method,
        url: &Url,
        response: reqwest::Response,
        cap: u64,
    ) -> Result<Bytes, ConnectorError> {
        match read_capped(response, cap, false).await {
            Ok(body) => Ok(body),
            Err(BodyError::TooLarge) => Err(ConnectorError::Permanent {
                target: self.target.clone(),
                status: None,
                message: format!(
                    "the response to {method} {} is larger than max_response_bytes ({cap} \
                     bytes); raise max_response_bytes or lower page_size",
                    url.path()
                ),
            }),
            Err(BodyError::Network(err)) => Err(self.network_error(method, url, &err).1),
        }
    }

    /// The error for a non-2xx, non-3xx status, with the target's own message (`message`,
    /// as the adapter read it from `body`).
    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        message: Option<String>,
    ) -> ConnectorError {
        let message = self.target_message(status, body, message);
        let target = self.target.clone();
        match status.as_u16() {
            401 => ConnectorError::Auth { target, message },
            403 => ConnectorError::Forbidden { target, message },
            429 => ConnectorError::RateLimited {
                target,
                retry_after,
                message,
            },
            500..=599 => ConnectorError::Transient {
                target,
                message: format!("HTTP {}: {message}", status.as_u16()),
            },
            code => ConnectorError::Permanent {
                target,
                status: Some(code),
                message,
            },
        }
    }

    /// The target's own message from an error body, else a short excerpt, else the status
    /// reason; secrets the credential knows are redacted.
    fn target_message(&self, status: StatusCode, body: &[u8], message: Option<String>) -> String {
        let message = message
            .filter(|message| !message.trim().is_empty())
            .or_else(|| body_excerpt(body))
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_string()
            });
        self.credential.redact(&message)
    }

    fn redirect_error(&self, status: StatusCode, url: &Url, headers: &HeaderMap) -> ConnectorError {
        let location = headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(|text| match url.join(text) {
                Ok(resolved) => resolved.host_str().unwrap_or("(no host)").to_string(),
                Err(_) => "(an unreadable location)".to_string(),
            })
            .unwrap_or_else(|| "(no Location header)".to_string());
        ConnectorError::Permanent {
            target: self.target.clone(),
            status: Some(status.as_u16()),
            message: format!(
                "the target redirected {} to host {location}; idsync never follows redirects \
                 (check base_url)",
                url.path()
            ),
        }
    }

    /// A `Transient` error for a request that got no response (or lost it), without the URL's
    /// query or anything header-related.
    fn network_error(
        &self,
        method: &Method,
        url: &Url,
        err: &reqwest::Error,
    ) -> (NetworkFailure, ConnectorError) {
        let what = format!("{method} {}", url.path());
        let (failure, message) = if err.is_timeout() {
            (
                NetworkFailure::Timeout,
                format!(
                    "{what} timed out (timeout {})",
                    humantime::format_duration(self.timeout)
                ),
            )
        } else if err.is_connect() {
            let host = self.base_url.host_str().unwrap_or("");
            let port = self.base_url.port_or_known_default().unwrap_or(0);
            (
                NetworkFailure::Connect,
                format!(
                    "cannot connect to {host}:{port} for {what}: {}",
                    source_chain(err)
                ),
            )
        } else {
            (
                NetworkFailure::Connect,
                format!("{what} failed: {}", source_chain(err)),
            )
        };
        let message = self.credential.redact(&message);
        (
            failure,
            ConnectorError::Transient {
                target: self.target.clone(),
                message,
            },
        )
    }
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Payload<'a> {
    None,
    Json(&'a serde_json::Value),
    Raw(&'a RawBody),
}

/// Reads `tls.ca_file` as PEM certificates; a file that holds none is an error.
fn read_ca_file(
    target: &str,
    path: &std::path::Path,
) -> Result<Vec<reqwest::Certificate>, ConnectorError> {
    let pem = std::fs::read(path).map_err(|err| {
        ConnectorError::config(
            target,
            format!("cannot read tls.ca_file {}: {err}", path.display()),
        )
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
        ConnectorError::config(
            target,
            format!(
                "tls.ca_file {} is not a PEM certificate bundle: {}",
                path.display(),
                error_chain(&err)
            ),
        )
    })?;
    if certificates.is_empty() {
        return Err(ConnectorError::config(
            target,
            format!(
                "tls.ca_file {} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- \
                 blocks)",
                path.display()
            ),
        ));
    }
    Ok(certificates)
}

/// The `status_class` label of a response status.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "429",
        200..=299 => "2xx",
        300..=399 => "3xx",
        500..=599 => "5xx",
        _ => "4xx",
    }
}

/// `Retry-After` as a wait: whole seconds, or an HTTP date (a date in the past is no wait).
pub fn parse_retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(text).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A short, single-line excerpt of a body, or `None` when it is empty.
fn body_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return None;
    }
    if collapsed.chars().count() > EXCERPT_CHARS {
        let cut: String = collapsed.chars().take(EXCERPT_CHARS).collect();
        Some(format!("{cut}…"))
    } else {
        Some(collapsed)
    }
}

/// An error and its sources on one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    push_sources(&mut parts, err.source());
    parts.join(": ")
}

/// The sources of an error on one line, leaving out the error's own text (a reqwest error's
/// own text names the URL).
fn source_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    push_sources(&mut parts, err.source());
    if parts.is_empty() {
        "no further detail".to_string()
    } else {
        parts.join(": ")
    }
}

fn push_sources(parts: &mut Vec<String>, first: Option<&(dyn std::error::Error + 'static)>) {
    let mut source = first;
    while let Some(next) = source {
        let text = next.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = next.source();
    }
}

/// The last path element of a type's name (`Vec<idsync::…::UsersPage>` → `Vec<UsersPage>`).
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    for ch in full.chars() {
        if ch.is_alphanumeric() || matches!(ch, '_' | ':' | '{' | '}') {
            word.push(ch);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or(&word));
            word.clear();
            out.push(ch);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or(&word));
    out
}

#[cfg(test)]
mod tests;
