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
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::io::StreamReader;
use url::Url;

use super::retry::ReadRetry;
use super::ConnectorError;
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

/// A successful response to [`HttpClient::send`]: its status and its whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// The HTTP status (always 2xx).
    pub status: StatusCode,
    /// The body, at most `max_response_bytes` long.
    pub body: Bytes,
}

/// One pacing window and the limiter that enforces it.
struct Pacer {
    window: RateLimit,
    limiter: DefaultDirectRateLimiter,
    jitter: Duration,
}

/// The governor quota that keeps a client within `window` on *every* rolling window: at most
/// `window.requests` requests in any interval of length `window.per`.
///
/// A plain GCRA quota with burst L and period W/L lets ~2L through in one W (a full burst,
/// then a full refill). Here the burst is `b = max(1, L/10)` and one request is replenished
/// every `W / (L - b)` (plus a nanosecond, so that the boundary itself stays inside): the
/// burst plus what refills within W is then `b + (L - b) = L`, and the sustained rate is
/// `(L - b)` per W. `None` for a window that allows nothing (`requests = 0` or `per = 0`).
pub fn pacing_quota(window: &RateLimit) -> Option<Quota> {
    let limit = window.requests;
    let per = window.per.get();
    if limit == 0 || per.is_zero() {
        return None;
    }
    let burst = pacing_burst(limit);
    let period = if limit > burst {
        per / (limit - burst)
    } else {
        // L = 1: the burst is the whole window; the next request comes just after it.
        per + Duration::from_nanos(1)
    };
    Some(Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?))
}

/// The burst allowed within a window of `limit` requests: a tenth of it, at least 1.
fn pacing_burst(limit: u32) -> u32 {
    (limit / 10).max(1)
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

/// A request body that is not JSON (a SOAP envelope): its bytes, content type and extra
/// headers (`SOAPAction`). `Debug` shows the sizes only: a body may carry a credential.
#[derive(Clone)]
pub struct RawBody {
    /// The `Content-Type` header.
    pub content_type: HeaderValue,
    /// Further headers, e.g. `SOAPAction`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub bytes: Bytes,
}

impl fmt::Debug for RawBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RawBody({} bytes of {:?}, {} extra headers)",
            self.bytes.len(),
            self.content_type,
            self.headers.len()
        )
    }
}

/// The body of a successful response as an async buffered reader, failing with an
/// `io::Error` that [`HttpClient::body_error`] classifies once more than `max_response_bytes`
/// arrive or the connection breaks.
pub type BodyReader = StreamReader<BoxStream<'static, std::io::Result<Bytes>>, Bytes>;

/// A 2xx response whose body has not been read yet ([`HttpClient::send_streaming`]).
pub struct StreamingResponse {
    /// The HTTP status (always 2xx).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    body: Option<BodyReader>,
    permit: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl StreamingResponse {
    fn new(response: reqwest::Response, cap: u64) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let mut seen: u64 = 0;
        let stream = response
            .bytes_stream()
            .map(move |chunk| match chunk {
                Ok(bytes) => {
                    seen = seen.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
                    if seen > cap {
                        Err(std::io::Error::other(BodyTooLarge { cap }))
                    } else {
                        Ok(bytes)
                    }
                }
                Err(err) => Err(std::io::Error::other(BodyNetworkError {
                    timeout: err.is_timeout(),
                    detail: source_chain(&err),
                })),
            })
            .boxed();
        Self {
            status,
            headers,
            body: Some(StreamReader::new(stream)),
            permit: None,
        }
    }

    /// The body, to be read once (later calls get `None`). Dropping it unread closes the
    /// connection.
    pub fn body(&mut self) -> Option<BodyReader> {
        self.body.take()
    }

    /// The `Content-Type` header's media type, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        let value = self.headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let media = value.split(';').next()?.trim().to_ascii_lowercase();
        (!media.is_empty()).then_some(media)
    }
}

/// A streamed body went over the cap.
#[derive(Debug)]
struct BodyTooLarge {
    cap: u64,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the response is larger than {} bytes", self.cap)
    }
}

impl std::error::Error for BodyTooLarge {}

/// A streamed body broke off (reset, timeout).
#[derive(Debug)]
struct BodyNetworkError {
    timeout: bool,
    detail: String,
}

impl fmt::Display for BodyNetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timeout {
            write!(f, "timed out reading the response")
        } else {
            write!(f, "the connection broke: {}", self.detail)
        }
    }
}

impl std::error::Error for BodyNetworkError {}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Network(reqwest::Error),
}

/// Reads a body chunk by chunk and stops at `cap` bytes: with `truncate`, keeps the first
/// `cap` bytes; otherwise fails with `TooLarge`.
async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
    truncate: bool,
) -> Result<Bytes, BodyError> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Network)? {
        if body.len().saturating_add(chunk.len()) > cap {
            if truncate {
                let room = cap.saturating_sub(body.len());
                body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                break;
            }
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
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
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    use governor::clock::{Clock, FakeRelativeClock};
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::connector::kit::testing::assert_error;
    use crate::connector::ErrorClass;

    const KEY: &str = "k3y-DISTINCTIVE-7f3a9c51e0";

    /// A target config for tests: no pacing, tiny backoffs, plus `extra` TOML lines.
    fn config(base: &str, extra: &str) -> TargetConfig {
        let text = format!(
            "kind = \"digicert\"\nbase_url = \"{base}\"\n{}{}{extra}",
            if extra.contains("rate_limit") {
                ""
            } else {
                "rate_limit = []\n"
            },
            if extra.contains("read_retry") {
                ""
            } else {
                "read_retry = { max_attempts = 3, initial_backoff = \"1ms\", max_backoff = \"20ms\" }\n"
            },
        );
        toml::from_str(&text).unwrap()
    }

    fn client_with(base: &str, extra: &str, credential: Arc<dyn Credential>) -> HttpClient {
        let defaults = ClientDefaults {
            rate_limits: Vec::new(),
            read_error: crate::connector::digicert::read_error,
        };
        HttpClient::new("dc", &config(base, extra), defaults, credential).unwrap()
    }

    fn keyed_client(base: &str, extra: &str) -> HttpClient {
        let credential = StaticHeader::new("dc", "X-DC-DEVKEY", SecretString::from(KEY)).unwrap();
        client_with(base, extra, Arc::new(credential))
    }

    fn error_body(code: &str, message: &str) -> serde_json::Value {
        serde_json::json!({ "errors": [{ "code": code, "message": message }] })
    }

    fn assert_no_key(err: &ConnectorError) {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(KEY), "the key leaked: {text}");
        }
    }

    #[test]
    fn url_appends_encoded_single_segments() {
        for base in [
            "https://dc.example/services/v2",
            "https://dc.example/services/v2/",
        ] {
            let client = keyed_client(base, "");
            let url = client.url(&["user", "123"], &[]).unwrap();
            assert_eq!(url.as_str(), "https://dc.example/services/v2/user/123");
        }
        let client = keyed_client("https://dc.example/services/v2?x=1#frag", "");
        let url = client
            .url(
                &["user", "a/b c?d#e"],
                &[("offset", "10".into()), ("filters[search]", "a&b".into())],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://dc.example/services/v2/user/a%2Fb%20c%3Fd%23e?offset=10&filters%5Bsearch%5D=a%26b"
        );
        for bad in ["..", ".", ""] {
            let err = client.url(&["user", bad], &[]).unwrap_err();
            assert_eq!(err.class(), ErrorClass::Permanent, "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_target_and_base_only() {
        let client = keyed_client("https://dc.example/services/v2", "");
        let text = format!("{client:?}");
        assert!(
            text.contains("dc") && text.contains("https://dc.example/services/v2"),
            "{text}"
        );
        assert!(!text.contains(KEY), "{text}");
        let header = StaticHeader::new("dc", "X-DC-DEVKEY", SecretString::from(KEY)).unwrap();
        assert!(!format!("{header:?}").contains(KEY));
    }

    #[test]
    fn bad_header_names_and_values_are_refused_without_quoting_the_secret() {
        let err = StaticHeader::new("dc", "bad header", SecretString::from(KEY)).unwrap_err();
        assert!(err.to_string().contains("`bad header`"), "{err}");
        let err = StaticHeader::new("dc", "X-DC-DEVKEY", SecretString::from(format!("{KEY}\n")))
            .unwrap_err();
        assert!(err.to_string().contains("stray newline"), "{err}");
        assert_no_key(&err);
    }

    #[tokio::test]
    async fn statuses_are_classified_with_the_targets_message() {
        let server = MockServer::start().await;
        let cases = [
            (401, "invalid_api_key", ErrorClass::Auth),
            (
                403,
                "access_denied|missing_permission",
                ErrorClass::Forbidden,
            ),
            (404, "not_found", ErrorClass::Permanent),
            (400, "bad_request_format", ErrorClass::Permanent),
            (429, "request_limit_exceeded", ErrorClass::RateLimited),
            (500, "server_error", ErrorClass::Transient),
            (503, "unavailable", ErrorClass::Transient),
        ];
        for (status, code, _) in cases {
            Mock::given(path(format!("/services/v2/s{status}")))
                .respond_with(
                    ResponseTemplate::new(status)
                        .set_body_json(error_body(code, &format!("the words of {status}"))),
                )
                .mount(&server)
                .await;
        }
        let client = keyed_client(&format!("{}/services/v2", server.uri()), "");
        for (status, code, class) in cases {
            let url = client.url(&[&format!("s{status}")], &[]).unwrap();
            let err = client.send(Method::GET, url, None).await.unwrap_err();
            assert_eq!(err.class(), class, "{status}: {err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("{code}: the words of {status}")),
                "{status}: {text}"
            );
            if let ConnectorError::Permanent { status: got, .. } = &err {
                assert_eq!(*got, Some(status), "{text}");
            }
            if let ConnectorError::RateLimited { retry_after, .. } = &err {
                assert_eq!(*retry_after, None, "DigiCert sends no Retry-After");
            }
        }
        // Each was sent once: `send` never retries.
        assert_eq!(server.received_requests().await.unwrap().len(), cases.len());
    }

    #[tokio::test]
    async fn a_body_without_the_targets_shape_is_quoted_short() {
        let server = MockServer::start().await;
        let long = format!("<html>  gateway\n\n broke {}</html>", "x".repeat(1000));
        Mock::given(path("/html"))
            .respond_with(ResponseTemplate::new(404).set_body_string(long))
            .mount(&server)
            .await;
        Mock::given(path("/empty"))
            .respond_with(ResponseTemplate::new(418))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        let err = client
            .send(Method::GET, client.url(&["html"], &[]).unwrap(), None)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("<html> gateway broke xxx") && text.ends_with('…'),
            "{text}"
        );
        assert!(text.len() < 400, "{text}");
        let err = client
            .send(Method::GET, client.url(&["empty"], &[]).unwrap(), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("I'm a teapot"), "{err}");
    }

    #[tokio::test]
    async fn timeouts_are_transient() {
        let server = MockServer::start().await;
        Mock::given(path("/slow"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "timeout = \"100ms\"\n");
        let err = client
            .send(Method::GET, client.url(&["slow"], &[]).unwrap(), None)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        assert!(err.to_string().contains("GET /slow timed out"), "{err}");
        assert_no_key(&err);
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = keyed_client(&format!("http://127.0.0.1:{port}/services/v2"), "");
        let err = client
            .send(Method::GET, client.url(&["user"], &[]).unwrap(), None)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("cannot connect to 127.0.0.1:{port}")),
            "{text}"
        );
        assert!(!text.contains("http://"), "no URL in the message: {text}");
        assert_no_key(&err);
    }

    #[tokio::test]
    async fn get_is_retried_on_503_then_succeeds() {
        let server = MockServer::start().await;
        Mock::given(path("/user"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(path("/user"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        let body: serde_json::Value = client
            .get_json(client.url(&["user"], &[]).unwrap())
            .await
            .unwrap();
        assert_eq!(body, serde_json::json!({"ok": true}));
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn get_gives_up_after_max_attempts_and_does_not_retry_permanent_errors() {
        let server = MockServer::start().await;
        Mock::given(path("/down"))
            .respond_with(ResponseTemplate::new(502))
            .mount(&server)
            .await;
        Mock::given(path("/gone"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        let err = client
            .get_json::<serde_json::Value>(client.url(&["down"], &[]).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
        let err = client
            .get_json::<serde_json::Value>(client.url(&["gone"], &[]).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            requests.iter().filter(|r| r.url.path() == "/down").count(),
            3
        );
        assert_eq!(
            requests.iter().filter(|r| r.url.path() == "/gone").count(),
            1
        );
    }

    #[tokio::test]
    async fn post_is_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/user"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        let body = serde_json::json!({"username": "jane"});
        let err = client
            .send(
                Method::POST,
                client.url(&["user"], &[]).unwrap(),
                Some(&body),
            )
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].body_json::<serde_json::Value>().unwrap(), body);
    }

    #[tokio::test]
    async fn send_returns_status_and_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 7})))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        let response = client
            .send(Method::POST, client.url(&["user"], &[]).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::CREATED);
        let parsed: serde_json::Value = client.parse_json("POST /user", &response.body).unwrap();
        assert_eq!(parsed["id"], 7);
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let retry =
            "read_retry = { max_attempts = 3, initial_backoff = \"1ms\", max_backoff = \"2s\" }\n";
        let server = MockServer::start().await;
        Mock::given(path("/user"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(path("/user"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), retry);
        let started = Instant::now();
        let _: serde_json::Value = client
            .get_json(client.url(&["user"], &[]).unwrap())
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "waited {:?}",
            started.elapsed()
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_max_backoff_ends_the_retries() {
        let server = MockServer::start().await;
        Mock::given(path("/user"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        let err = client
            .get_json::<serde_json::Value>(client.url(&["user"], &[]).unwrap())
            .await
            .unwrap_err();
        match err {
            ConnectorError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(120)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            parse_retry_after(&headers, now)
        };
        assert_eq!(with("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            with("Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(with("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_name_the_host() {
        let server = MockServer::start().await;
        Mock::given(path("/user"))
            .respond_with(
                ResponseTemplate::new(302).insert_header("Location", "https://evil.example/steal"),
            )
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        let err = client
            .get_json::<serde_json::Value>(client.url(&["user"], &[]).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let text = err.to_string();
        assert!(
            text.contains("evil.example") && text.contains("HTTP 302"),
            "{text}"
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn requests_go_only_to_the_base_origin() {
        let server = MockServer::start().await;
        let client = keyed_client(&format!("{}/services/v2", server.uri()), "");
        let elsewhere = Url::parse("http://127.0.0.1:9/services/v2/user").unwrap();
        let err = client.send(Method::GET, elsewhere, None).await.unwrap_err();
        assert_error(
            &err,
            ErrorClass::Permanent,
            "refusing to send a request to http://127.0.0.1:9",
        );
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused() {
        let server = MockServer::start().await;
        Mock::given(path("/big"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(5000)))
            .mount(&server)
            .await;
        Mock::given(path("/small"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(1000)))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "max_response_bytes = 1000\n");
        let err = client
            .send(Method::GET, client.url(&["big"], &[]).unwrap(), None)
            .await
            .unwrap_err();
        assert_error(
            &err,
            ErrorClass::Permanent,
            "larger than max_response_bytes (1000 bytes)",
        );
        let ok = client
            .send(Method::GET, client.url(&["small"], &[]).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(ok.body.len(), 1000);
    }

    #[tokio::test]
    async fn malformed_json_is_permanent_and_names_what_failed() {
        let server = MockServer::start().await;
        Mock::given(path("/user"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"users\": [1, 2"))
            .mount(&server)
            .await;
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct UsersPage {
            users: Vec<u32>,
        }
        let client = keyed_client(&server.uri(), "");
        let err = client
            .get_json::<UsersPage>(client.url(&["user"], &[]).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let text = err.to_string();
        assert!(
            text.contains("malformed response: cannot read the response to /user as UsersPage"),
            "{text}"
        );
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "not retried"
        );
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_a_clear_build_error() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let missing = dir.path().join("missing.pem");
        for (file, words) in [
            (&not_pem, "holds no PEM certificate"),
            (&broken, "broken.pem"),
            (&missing, "cannot read tls.ca_file"),
        ] {
            let extra = format!("tls = {{ ca_file = \"{}\" }}\n", file.display());
            let err = HttpClient::new(
                "dc",
                &config("https://dc.example", &extra),
                ClientDefaults::default(),
                Arc::new(NoCredential),
            )
            .unwrap_err();
            let text = err.to_string();
            assert_eq!(err.class(), ErrorClass::Permanent);
            assert!(
                text.contains("configuration error") && text.contains(words),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn the_api_key_is_sent_but_never_shown() {
        let server = MockServer::start().await;
        // A target that echoes the request headers in its error body.
        Mock::given(path("/user"))
            .and(header("X-DC-DEVKEY", KEY))
            .respond_with(ResponseTemplate::new(401).set_body_json(error_body(
                "invalid_api_key",
                &format!("key {KEY} is revoked"),
            )))
            .mount(&server)
            .await;
        Mock::given(path("/echo"))
            .respond_with(ResponseTemplate::new(400).set_body_string(format!("X-DC-DEVKEY: {KEY}")))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        let err = client
            .get_json::<serde_json::Value>(client.url(&["user"], &[]).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "the key was sent: {err}");
        assert!(
            err.to_string()
                .contains("invalid_api_key: key [REDACTED] is revoked"),
            "{err}"
        );
        assert_no_key(&err);
        let err = client
            .send(Method::GET, client.url(&["echo"], &[]).unwrap(), None)
            .await
            .unwrap_err();
        assert_no_key(&err);
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            2,
            "a 401 is not retried"
        );
        assert!(!format!("{client:?}").contains(KEY));
    }

    /// A bearer-token source: the token changes after a 401.
    struct Rotating {
        refreshed: AtomicBool,
        refreshes: AtomicUsize,
    }

    #[async_trait]
    impl Credential for Rotating {
        async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
            let token = if self.refreshed.load(Ordering::SeqCst) {
                "new"
            } else {
                "old"
            };
            Ok(request.bearer_auth(token))
        }

        async fn on_unauthorized(&self) -> bool {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            self.refreshed.store(true, Ordering::SeqCst);
            true
        }
    }

    #[tokio::test]
    async fn a_refreshable_credential_gets_one_retry_after_401() {
        let server = MockServer::start().await;
        Mock::given(path("/ok"))
            .and(header("Authorization", "Bearer new"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .mount(&server)
            .await;
        Mock::given(path("/ok"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        Mock::given(path("/never"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;

        let credential = Arc::new(Rotating {
            refreshed: AtomicBool::new(false),
            refreshes: AtomicUsize::new(0),
        });
        let client = client_with(&server.uri(), "", credential.clone());
        // A POST too: a 401 means the request was not carried out.
        client
            .send(Method::POST, client.url(&["ok"], &[]).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(credential.refreshes.load(Ordering::SeqCst), 1);

        let err = client
            .send(Method::GET, client.url(&["never"], &[]).unwrap(), None)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth);
        assert_eq!(
            credential.refreshes.load(Ordering::SeqCst),
            2,
            "refreshed once, retried once"
        );
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            requests.iter().filter(|r| r.url.path() == "/never").count(),
            2
        );
    }

    #[tokio::test]
    async fn max_concurrency_caps_requests_in_flight() {
        let server = MockServer::start().await;
        Mock::given(path("/slow"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(150)))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "max_concurrency = 1\n");
        let url = client.url(&["slow"], &[]).unwrap();
        let started = Instant::now();
        let (a, b) = tokio::join!(
            client.send(Method::GET, url.clone(), None),
            client.send(Method::GET, url.clone(), None)
        );
        a.unwrap();
        b.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn requests_are_counted_by_status_class() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let server = MockServer::start().await;
        Mock::given(path("/ok"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        Mock::given(path("/busy"))
            .respond_with(ResponseTemplate::new(429))
            .mount(&server)
            .await;
        Mock::given(path("/boom"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        let client = keyed_client(&server.uri(), "");
        for segment in ["ok", "ok", "busy", "boom"] {
            let _ = client
                .send(Method::GET, client.url(&[segment], &[]).unwrap(), None)
                .await;
        }
        let text = handle.render();
        for line in [
            "idsync_target_requests_total{target=\"dc\",status_class=\"2xx\"} 2",
            "idsync_target_requests_total{target=\"dc\",status_class=\"429\"} 1",
            "idsync_target_requests_total{target=\"dc\",status_class=\"5xx\"} 1",
            "idsync_target_request_duration_seconds_count{target=\"dc\"} 4",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    /// A credential that can never be had (a token endpoint refusing the client).
    struct Unobtainable;

    #[async_trait]
    impl Credential for Unobtainable {
        async fn apply(&self, _: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
            Err(ConnectorError::Auth {
                target: "dc".into(),
                message: "client_id or client_secret rejected".into(),
            })
        }
    }

    #[tokio::test]
    async fn a_credential_that_cannot_be_had_sends_and_counts_nothing() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let server = MockServer::start().await;
        let client = client_with(&server.uri(), "", Arc::new(Unobtainable));
        let url = client.url(&["ok"], &[]).unwrap();
        let err = client
            .send(Method::GET, url.clone(), None)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth);
        let raw = RawBody {
            content_type: HeaderValue::from_static("text/xml"),
            headers: Vec::new(),
            bytes: Bytes::from_static(b"<x/>"),
        };
        let err = client
            .send_streaming(Method::POST, &url, &raw)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth);
        assert!(server.received_requests().await.unwrap().is_empty());
        let text = handle.render();
        assert!(!text.contains("idsync_target_requests_total"), "{text}");
    }

    #[test]
    fn pacing_uses_the_default_unless_configured() {
        let defaults = || ClientDefaults {
            rate_limits: vec![RateLimit {
                requests: 90,
                per: crate::config::ConfigDuration::from_secs(5),
            }],
            read_error: plain_errors,
        };
        let build = |extra: &str| {
            let text = format!("kind = \"digicert\"\nbase_url = \"https://dc.example\"\n{extra}");
            let config: TargetConfig = toml::from_str(&text).unwrap();
            HttpClient::new("dc", &config, defaults(), Arc::new(NoCredential))
                .unwrap()
                .rate_limits()
        };
        assert_eq!(build("").len(), 1);
        assert_eq!(build("rate_limit = []").len(), 0);
        let configured =
            build("rate_limit = [{ requests = 3, per = \"1s\" }, { requests = 10, per = \"1m\" }]");
        assert_eq!(
            configured.iter().map(|w| w.requests).collect::<Vec<_>>(),
            [3, 10]
        );
        let one = build("rate_limit = { requests = 7, per = \"1s\" }");
        assert_eq!(one.iter().map(|w| w.requests).collect::<Vec<_>>(), [7]);
        let text = String::from("kind = \"digicert\"\nbase_url = \"https://dc.example\"\nrate_limit = { requests = 0, per = \"1s\" }");
        let config: TargetConfig = toml::from_str(&text).unwrap();
        let err = HttpClient::new("dc", &config, defaults(), Arc::new(NoCredential)).unwrap_err();
        assert!(err.to_string().contains("allows no request"), "{err}");
    }

    /// The times (ns from start) at which a greedy caller gets through `quota` within `horizon`.
    fn greedy_schedule(quota: Quota, horizon: Duration) -> Vec<u64> {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        let start = clock.now();
        let horizon = u64::try_from(horizon.as_nanos()).unwrap();
        let mut times = Vec::new();
        loop {
            let elapsed = clock.now().saturating_sub(start).as_u64();
            if elapsed > horizon {
                return times;
            }
            match limiter.check() {
                Ok(()) => times.push(elapsed),
                Err(not_until) => clock.advance(not_until.wait_time_from(clock.now())),
            }
        }
    }

    /// The most requests in any closed interval of length `window`.
    fn busiest_window(times: &[u64], window: Duration) -> usize {
        let window = u64::try_from(window.as_nanos()).unwrap();
        let mut best = 0;
        let mut first = 0;
        for (last, &t) in times.iter().enumerate() {
            while t - times[first] > window {
                first += 1;
            }
            best = best.max(last - first + 1);
        }
        best
    }

    #[test]
    fn a_plain_quota_would_let_twice_the_limit_through() {
        // The check below can fail: a naive quota (burst L, L per W) breaks the window.
        let naive = Quota::with_period(Duration::from_secs(5) / 100)
            .unwrap()
            .allow_burst(NonZeroU32::new(100).unwrap());
        let times = greedy_schedule(naive, Duration::from_secs(30));
        assert!(busiest_window(&times, Duration::from_secs(5)) > 190);
    }

    #[test]
    fn pacing_keeps_every_rolling_window_within_its_limit() {
        let windows = [
            (90, 5),
            (900, 180),
            (100, 5),
            (1000, 180),
            (1, 1),
            (2, 1),
            (10, 1),
            (15, 60),
            (3, 7),
        ];
        for (requests, secs) in windows {
            let window = RateLimit {
                requests,
                per: crate::config::ConfigDuration::from_secs(secs),
            };
            let quota = pacing_quota(&window).unwrap();
            let horizon = Duration::from_secs(secs * 6);
            let times = greedy_schedule(quota, horizon);
            let busiest = busiest_window(&times, window.per.get());
            assert!(
                busiest <= requests as usize,
                "{requests}/{secs}s: {busiest} in one window"
            );
            // And it is not needlessly slow: the burst, then L - burst per window.
            let burst = pacing_burst(requests);
            let expected = if requests > burst {
                burst + (requests - burst) * 6
            } else {
                6
            } as usize;
            assert!(
                times.len() >= expected,
                "{requests}/{secs}s: only {} of {expected}",
                times.len()
            );
        }
        assert!(pacing_quota(&RateLimit {
            requests: 0,
            per: crate::config::ConfigDuration::from_secs(1)
        })
        .is_none());
        assert!(pacing_quota(&RateLimit {
            requests: 5,
            per: crate::config::ConfigDuration::from_secs(0)
        })
        .is_none());
    }

    #[tokio::test]
    async fn a_paced_client_waits_between_requests() {
        let server = MockServer::start().await;
        Mock::given(query_param("n", "1"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        // 2 per 200 ms: burst 1, then one every 200 ms.
        let client = keyed_client(
            &server.uri(),
            "rate_limit = { requests = 2, per = \"200ms\" }\n",
        );
        let started = Instant::now();
        for _ in 0..3 {
            client
                .send(
                    Method::GET,
                    client.url(&["x"], &[("n", "1".into())]).unwrap(),
                    None,
                )
                .await
                .unwrap();
        }
        assert!(
            started.elapsed() >= Duration::from_millis(380),
            "{:?}",
            started.elapsed()
        );
    }
}
