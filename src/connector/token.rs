//! The token-refresh cache: OAuth client-credentials bearer tokens for any target that needs
//! one (Jama today), plugged into the shared [`HttpClient`] as its [`Credential`].
//!
//! * One [`TokenCache`] per target caches the current token with its expiry (`expires_in`)
//!   and refreshes it ahead of expiry by `token_refresh_skew` (a token that lives less than
//!   the skew is refreshed at half its lifetime).
//! * Single flight: the state sits behind one async mutex that is held across the refresh,
//!   so however many calls are in flight, one token request is made and the others wait for
//!   it and share its outcome (the token, or the error).
//! * After a 401 from the API, [`Credential::on_unauthorized`] drops the token and says
//!   "try again"; [`HttpClient`] then repeats the call once, with a fresh token, and a second
//!   401 is returned as an `Auth` error. When the token request itself was just rejected,
//!   it says no, so a wrong secret costs one token request per call, not two.
//! * The token endpoint (`POST {base_url}/rest/oauth/token` for Jama) is called through an
//!   [`HttpClient`] of its own (same TLS, timeouts, origin and redirect rules) whose
//!   credential, [`ClientCredentialsGrant`], adds HTTP Basic `client_id:client_secret` and the
//!   form body `grant_type=client_credentials`. 401/400/403 there mean the client credentials
//!   were rejected (`Auth`, "client_id or client_secret rejected by target NAME"); 5xx,
//!   timeouts and 429s are retried with the target's `read_retry` backoff.
//! * Neither the token nor the client secret appears in a log line, an error, `Debug`, a
//!   metric or the store; `redact` strips both from anything the target echoes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::http::{ClientDefaults, Credential, HttpClient, ReadErrorFn};
use super::retry::ReadRetry;
use super::ConnectorError;
use crate::config::TargetConfig;
use crate::telemetry::TOKEN_REFRESHES_TOTAL;

/// The lifetime assumed for a token whose response gives no `expires_in` (a 401 refreshes
/// it sooner if the target disagrees).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A 401 that arrives this soon after a token was fetched *because of* an earlier 401 is
/// taken to answer a request sent with the previous token: the new token is kept (the call
/// is still repeated once with it), so a burst of concurrent 401s costs one refresh.
const REJECTION_GRACE: Duration = Duration::from_secs(5);

/// Tokens remembered for redaction (the current one and the one before).
const REMEMBERED_TOKENS: usize = 2;

/// The form body of a client-credentials token request.
const GRANT_BODY: &str = "grant_type=client_credentials";

/// OAuth client credentials of one target: the client id and its secret.
#[derive(Clone)]
pub struct ClientCredentials {
    client_id: String,
    client_secret: SecretString,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish()
    }
}

impl ClientCredentials {
    /// Credentials from their parts.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
        }
    }

    /// Reads `client_id` and resolves `client_secret` from a target's config. Fails (class
    /// `Permanent`, naming the key and never the value) when either is missing or the secret
    /// cannot be resolved.
    pub fn from_config(target: &str, config: &TargetConfig) -> Result<Self, ConnectorError> {
        let client_id = config
            .client_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| {
                ConnectorError::config(
                    target,
                    format!(
                        "client_id is not set (a {} target needs an OAuth client id)",
                        config.kind.as_str()
                    ),
                )
            })?;
        let spec = config.client_secret.as_ref().ok_or_else(|| {
            ConnectorError::config(
                target,
                "client_secret is not set (write e.g. client_secret = { env = \
                 \"JAMA_CLIENT_SECRET\" })",
            )
        })?;
        let client_secret = spec
            .resolve()
            .map_err(|err| ConnectorError::config(target, format!("client_secret: {err}")))?;
        Ok(Self::new(client_id, client_secret))
    }

    /// The client id (not a secret).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// The credential of the token endpoint itself: HTTP Basic `client_id:client_secret` (marked
/// sensitive), `Content-Type: application/x-www-form-urlencoded` and the form body
/// `grant_type=client_credentials` (the shared client sends JSON bodies only, so the grant
/// supplies its own). `Debug` shows the client id only.
pub struct ClientCredentialsGrant {
    target: String,
    client_id: String,
    client_secret: SecretString,
    /// `base64(client_id:client_secret)`: what a target echoing the header would show.
    basic: SecretString,
}

impl fmt::Debug for ClientCredentialsGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsGrant")
            .field("target", &self.target)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientCredentialsGrant {
    /// The grant of target `target`.
    pub fn new(target: &str, credentials: &ClientCredentials) -> Self {
        let pair = format!(
            "{}:{}",
            credentials.client_id,
            credentials.client_secret.expose_secret()
        );
        Self {
            target: target.to_string(),
            client_id: credentials.client_id.clone(),
            client_secret: credentials.client_secret.clone(),
            basic: SecretString::from(base64(pair.as_bytes())),
        }
    }
}

#[async_trait]
impl Credential for ClientCredentialsGrant {
    async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        // Base64 is plain ASCII, so this does not fail; map rather than unwrap all the same.
        let mut value = HeaderValue::from_str(&format!("Basic {}", self.basic.expose_secret()))
            .map_err(|_| {
                ConnectorError::config(&self.target, "the client credentials cannot be sent")
            })?;
        value.set_sensitive(true);
        Ok(request
            .header(AUTHORIZATION, value)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(GRANT_BODY))
    }

    fn redact(&self, text: &str) -> String {
        redact_all(
            text,
            [
                self.client_secret.expose_secret(),
                self.basic.expose_secret(),
            ],
        )
    }
}

/// A cached token.
struct CachedToken {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    /// When to fetch a new one.
    refresh_at: Instant,
    /// When it was fetched.
    fetched_at: Instant,
    /// Whether it was fetched because the previous one got a 401.
    after_rejection: bool,
}

/// What the single-flight mutex guards.
#[derive(Default)]
struct State {
    token: Option<CachedToken>,
    /// The error of the last refresh, shared with the callers that waited for it.
    last_error: Option<ConnectorError>,
    /// A 401 dropped the token: the next one is fetched "after rejection".
    rejected: bool,
}

/// A token the endpoint handed out.
struct FreshToken {
    header: HeaderValue,
    secret: SecretString,
    lifetime: Duration,
}

/// The bearer-token cache of one target; the [`Credential`] of its API client.
pub struct TokenCache {
    target: String,
    endpoint: HttpClient,
    token_url: Url,
    client_secret: SecretString,
    skew: Duration,
    retry: ReadRetry,
    state: Mutex<State>,
    /// Refreshes finished (success or failure); read before waiting on `state` to tell
    /// whether a refresh completed while waiting.
    refreshes: AtomicU64,
    /// Recent tokens, for `redact` (which cannot wait on `state`).
    recent: StdMutex<Vec<SecretString>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("target", &self.target)
            .field("token_url", &self.token_url.as_str())
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// The token cache of target `target`: tokens come from `POST {base_url}/{token_path…}`
    /// (Jama: `["rest", "oauth", "token"]`), requested with `credentials`. The token endpoint
    /// gets a client of its own built from `config` (timeouts, TLS, `read_retry`; no pacing
    /// unless `rate_limit` is set), reading error bodies with `read_error`. Tokens are
    /// refreshed `config.token_refresh_skew` before they expire.
    ///
    /// Fails (class `Permanent`) when the client cannot be built or the path is unusable.
    pub fn new(
        target: &str,
        config: &TargetConfig,
        token_path: &[&str],
        credentials: &ClientCredentials,
        read_error: ReadErrorFn,
    ) -> Result<Self, ConnectorError> {
        let grant = ClientCredentialsGrant::new(target, credentials);
        let endpoint = HttpClient::new(
            target,
            config,
            ClientDefaults {
                rate_limits: Vec::new(),
                read_error,
            },
            Arc::new(grant),
        )?;
        let token_url = endpoint.url(token_path, &[])?;
        Ok(Self {
            target: target.to_string(),
            endpoint,
            token_url,
            client_secret: credentials.client_secret.clone(),
            skew: config.token_refresh_skew.get(),
            retry: ReadRetry::new(config.read_retry),
            state: Mutex::new(State::default()),
            refreshes: AtomicU64::new(0),
            recent: StdMutex::new(Vec::new()),
        })
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// The `Authorization` header value of a valid token: the cached one, or a fresh one
    /// (one request, however many callers are waiting).
    pub async fn bearer(&self) -> Result<HeaderValue, ConnectorError> {
        let seen = self.refreshes.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        if let Some(token) = &state.token {
            if Instant::now() < token.refresh_at {
                return Ok(token.header.clone());
            }
        }
        // A refresh finished while this caller waited, and failed: share its outcome rather
        // than ask again at once.
        if self.refreshes.load(Ordering::Acquire) != seen {
            if let Some(err) = &state.last_error {
                return Err(err.clone());
            }
        }
        let started = Instant::now();
        let result = self.fetch().await;
        self.refreshes.fetch_add(1, Ordering::AcqRel);
        let after_rejection = std::mem::take(&mut state.rejected);
        match result {
            Ok(fresh) => {
                self.remember(fresh.secret);
                let header = fresh.header.clone();
                state.token = Some(CachedToken {
                    header: fresh.header,
                    refresh_at: started + refresh_after(fresh.lifetime, self.skew),
                    fetched_at: Instant::now(),
                    after_rejection,
                });
                state.last_error = None;
                Ok(header)
            }
            Err(err) => {
                state.token = None;
                state.last_error = Some(err.clone());
                Err(err)
            }
        }
    }

    /// Drops the cached token after a 401 and says whether one more try is worth it.
    async fn invalidate(&self) -> bool {
        let mut state = self.state.lock().await;
        match &state.token {
            // Fetched because of a 401 a moment ago: this 401 most likely answered a request
            // sent with the previous token. Keep it; the call is repeated with it.
            Some(token)
                if token.after_rejection && token.fetched_at.elapsed() < REJECTION_GRACE =>
            {
                true
            }
            Some(_) => {
                state.token = None;
                state.rejected = true;
                true
            }
            // The 401 came from the token endpoint itself: asking again will not help.
            None if matches!(state.last_error, Some(ConnectorError::Auth { .. })) => false,
            None => {
                state.rejected = true;
                true
            }
        }
    }

    /// Requests a token, retrying transient failures with the target's read backoff, and
    /// counts the outcome.
    async fn fetch(&self) -> Result<FreshToken, ConnectorError> {
        let result = self
            .retry
            .run(&self.target, "token request", || self.request_token())
            .await;
        let outcome = match &result {
            Ok(fresh) => {
                tracing::debug!(
                    target = %self.target,
                    lifetime_secs = fresh.lifetime.as_secs(),
                    "Token refreshed."
                );
                "success"
            }
            Err(err) => {
                tracing::warn!(target = %self.target, error = %err, "Token refresh failed.");
                refresh_outcome(err)
            }
        };
        metrics::counter!(
            TOKEN_REFRESHES_TOTAL,
            "target" => self.target.clone(),
            "outcome" => outcome
        )
        .increment(1);
        result
    }

    /// One token request, classified.
    async fn request_token(&self) -> Result<FreshToken, ConnectorError> {
        let response = self
            .endpoint
            .send(Method::POST, self.token_url.clone(), None)
            .await
            .map_err(|err| self.token_error(err))?;
        parse_token_response(&self.target, &response.body)
    }

    /// Puts an error of the token endpoint in terms of the token request.
    fn token_error(&self, err: ConnectorError) -> ConnectorError {
        let target = self.target.clone();
        let rejected = |status: u16, message: &str| ConnectorError::Auth {
            message: format!(
                "client_id or client_secret rejected by target {target} (token endpoint \
                 answered HTTP {status}: {message})"
            ),
            target: target.clone(),
        };
        match err {
            ConnectorError::Auth { message, .. } => rejected(401, &message),
            ConnectorError::Forbidden { message, .. } => rejected(403, &message),
            ConnectorError::Permanent {
                status: Some(400),
                message,
                ..
            } => rejected(400, &message),
            ConnectorError::Permanent {
                status: Some(status),
                message,
                ..
            } => ConnectorError::Permanent {
                target: target.clone(),
                status: Some(status),
                message: format!(
                    "token request to {} failed: {message} (check base_url)",
                    self.token_url.path()
                ),
            },
            ConnectorError::Transient { message, .. } => ConnectorError::Transient {
                target: target.clone(),
                message: format!("token request failed: {message}"),
            },
            other => other,
        }
    }

    /// Keeps `token` for redaction, with the one before it.
    fn remember(&self, token: SecretString) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push(token);
        let excess = recent.len().saturating_sub(REMEMBERED_TOKENS);
        recent.drain(..excess);
    }

    #[cfg(test)]
    async fn expire_now(&self) {
        if let Some(token) = self.state.lock().await.token.as_mut() {
            token.refresh_at = Instant::now();
        }
    }
}

#[async_trait]
impl Credential for TokenCache {
    async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        Ok(request.header(AUTHORIZATION, self.bearer().await?))
    }

    async fn on_unauthorized(&self) -> bool {
        self.invalidate().await
    }

    fn redact(&self, text: &str) -> String {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let tokens = recent.iter().map(|token| token.expose_secret());
        redact_all(
            text,
            tokens.chain(std::iter::once(self.client_secret.expose_secret())),
        )
    }
}

/// When to refresh a token that lives `lifetime`: `skew` before it expires, or at half its
/// lifetime when it lives no longer than the skew.
pub fn refresh_after(lifetime: Duration, skew: Duration) -> Duration {
    if lifetime > skew {
        lifetime.saturating_sub(skew)
    } else {
        lifetime / 2
    }
}

/// The `outcome` label of a failed refresh.
fn refresh_outcome(err: &ConnectorError) -> &'static str {
    match err {
        ConnectorError::Auth { .. } => "auth",
        ConnectorError::Transient { .. } | ConnectorError::RateLimited { .. } => "transient",
        ConnectorError::Permanent {
            status: None,
            message,
            ..
        } if message.starts_with("malformed response") => "malformed",
        _ => "permanent",
    }
}

/// Reads a token response: `access_token` (required), `token_type` (required, `Bearer` in any
/// case), `expires_in` (seconds, a number or a numeric string; default
/// [`DEFAULT_TOKEN_LIFETIME`]); other fields are ignored. Errors never quote the body (it may
/// hold a token).
fn parse_token_response(target: &str, body: &[u8]) -> Result<FreshToken, ConnectorError> {
    let malformed =
        |what: &str| ConnectorError::malformed(target, format!("the token response {what}"));
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| malformed("is not JSON (expected {\"access_token\": …})"))?;
    let Value::Object(fields) = value else {
        return Err(malformed("is not a JSON object"));
    };
    let token = match fields.get("access_token") {
        Some(Value::String(token)) if !token.trim().is_empty() => token.trim(),
        Some(_) => {
            return Err(malformed(
                "has an access_token that is not a non-empty string",
            ))
        }
        None => return Err(malformed("has no access_token")),
    };
    match fields.get("token_type") {
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(kind)) => {
            let shown: String = kind.chars().take(40).collect();
            return Err(malformed(&format!(
                "has token_type `{shown}` (only Bearer tokens are supported)"
            )));
        }
        Some(_) => return Err(malformed("has a token_type that is not a string")),
        None => return Err(malformed("has no token_type")),
    }
    let lifetime = match fields.get("expires_in") {
        None | Some(Value::Null) => DEFAULT_TOKEN_LIFETIME,
        Some(value) => {
            let seconds = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match seconds {
                Some(secs) if secs.is_finite() && secs >= 1.0 => {
                    Duration::try_from_secs_f64(secs).unwrap_or(DEFAULT_TOKEN_LIFETIME)
                }
                _ => return Err(malformed("has an expires_in that is not a positive number")),
            }
        }
    };
    let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        malformed("has an access_token with characters that cannot be sent in a header")
    })?;
    header.set_sensitive(true);
    Ok(FreshToken {
        header,
        secret: SecretString::from(token.to_string()),
        lifetime,
    })
}

/// `text` with every non-empty secret replaced by `[REDACTED]`.
fn redact_all<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    secrets
        .into_iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_string(), |text, secret| {
            text.replace(secret, "[REDACTED]")
        })
}

/// Standard base64 with padding (RFC 4648), for the HTTP Basic header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let symbol =
        |index: u32| char::from(ALPHABET.get((index & 63) as usize).copied().unwrap_or(b'='));
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let (b0, b1, b2) = match *chunk {
            [a] => (a, 0, 0),
            [a, b] => (a, b, 0),
            [a, b, c] => (a, b, c),
            _ => continue,
        };
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        out.push(symbol(n >> 18));
        out.push(symbol(n >> 12));
        out.push(if chunk.len() > 1 { symbol(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { symbol(n) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use wiremock::matchers::{body_string, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::connector::http::ErrorReading;
    use crate::connector::kit::testing::assert_error;
    use crate::connector::ErrorClass;

    const SECRET: &str = "cl13nt-SECRET-unmistakable-93e1";
    const TOKEN_PATH: &str = "/rest/oauth/token";

    /// A jama target config for `base`, no pacing, tiny backoffs, plus `extra` lines.
    fn config(base: &str, extra: &str) -> TargetConfig {
        toml::from_str(&format!(
            "kind = \"jama\"\nbase_url = \"{base}\"\nclient_id = \"idsync\"\n\
             client_secret = \"{SECRET}\"\nrate_limit = []\nmax_concurrency = 32\n\
             read_retry = {{ max_attempts = 3, initial_backoff = \"1ms\", max_backoff = \"5ms\" }}\n\
             {extra}"
        ))
        .unwrap()
    }

    fn meta_message(_: &str, _: reqwest::StatusCode, body: &[u8]) -> ErrorReading {
        let value: Option<Value> = serde_json::from_slice(body).ok();
        match value
            .as_ref()
            .and_then(|value| value.pointer("/meta/message"))
            .and_then(Value::as_str)
        {
            Some(message) => ErrorReading::Message(message.to_string()),
            None => ErrorReading::Unknown,
        }
    }

    fn new_cache(base: &str, extra: &str) -> Arc<TokenCache> {
        let config = config(base, extra);
        let credentials = ClientCredentials::from_config("jama", &config).unwrap();
        Arc::new(
            TokenCache::new(
                "jama",
                &config,
                &["rest", "oauth", "token"],
                &credentials,
                meta_message,
            )
            .unwrap(),
        )
    }

    /// The API client of the target, using `cache` as its credential.
    fn api(base: &str, cache: Arc<TokenCache>) -> HttpClient {
        HttpClient::new(
            "jama",
            &config(base, ""),
            ClientDefaults {
                rate_limits: Vec::new(),
                read_error: meta_message,
            },
            cache,
        )
        .unwrap()
    }

    /// Hands out `t1`, `t2`, … with `expires_in`, after `delay`.
    struct Tokens {
        issued: AtomicUsize,
        expires_in: Value,
        delay: Duration,
    }

    impl Tokens {
        fn new(expires_in: u64) -> Self {
            Self {
                issued: AtomicUsize::new(0),
                expires_in: Value::from(expires_in),
                delay: Duration::ZERO,
            }
        }
    }

    impl wiremock::Respond for Tokens {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({
                    "access_token": format!("t{n}"), "token_type": "bearer",
                    "expires_in": self.expires_in, "scope": "read write", "tenant": "x",
                    "jti": "abc", "application_data": {}
                }))
                .set_delay(self.delay)
        }
    }

    async fn token_endpoint(server: &MockServer, tokens: Tokens) {
        let basic = format!("Basic {}", base64(format!("idsync:{SECRET}").as_bytes()));
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .and(header("Authorization", basic.as_str()))
            .and(header("Content-Type", "application/x-www-form-urlencoded"))
            .and(body_string(GRANT_BODY))
            .respond_with(tokens)
            .mount(server)
            .await;
    }

    /// `GET /api` answers 200 to `Bearer {good}` and 401 (echoing the header) otherwise.
    async fn api_accepting(server: &MockServer, good: &str) {
        Mock::given(path("/api"))
            .and(header("Authorization", format!("Bearer {good}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .with_priority(1)
            .mount(server)
            .await;
        Mock::given(path("/api"))
            .respond_with(|request: &Request| {
                let sent = request
                    .headers
                    .get("Authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                ResponseTemplate::new(401).set_body_json(serde_json::json!({
                    "meta": { "status": "Unauthorized", "message": format!("token rejected: {sent}") }
                }))
            })
            .with_priority(2)
            .mount(server)
            .await;
    }

    async fn count(server: &MockServer, wanted: &str) -> usize {
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == wanted)
            .count()
    }

    async fn get(client: &HttpClient) -> Result<(), ConnectorError> {
        client
            .send(Method::GET, client.url(&["api"], &[]).unwrap(), None)
            .await
            .map(|_| ())
    }

    fn assert_no_secrets(text: &str) {
        let basic = base64(format!("idsync:{SECRET}").as_bytes());
        for secret in [SECRET, basic.as_str(), "Bearer t1", "Bearer t2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn refreshes_skew_before_expiry_or_at_half_life() {
        let s = Duration::from_secs;
        for (lifetime, skew, want) in [
            (s(3600), s(60), s(3540)),
            (s(61), s(60), s(1)),
            (s(60), s(60), s(30)),
            (s(1), s(60), Duration::from_millis(500)),
            (s(10), s(0), s(10)),
        ] {
            assert_eq!(refresh_after(lifetime, skew), want, "{lifetime:?} {skew:?}");
        }
    }

    #[test]
    fn reads_token_responses_old_and_new() {
        let ok = |body: &str| parse_token_response("jama", body.as_bytes());
        let fresh =
            ok(r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#).unwrap();
        assert_eq!(fresh.lifetime, Duration::from_secs(3600));
        assert_eq!(fresh.secret.expose_secret(), "abc");
        assert!(fresh.header.is_sensitive());
        let old = ok(
            r#"{"access_token":"abc","token_type":"bearer","expires_in":"120",
                       "scope":"read","tenant":"t","jti":"j","application_data":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(old.lifetime, Duration::from_secs(120));
        let no_expiry = ok(r#"{"access_token":"abc","token_type":"BEARER"}"#).unwrap();
        assert_eq!(no_expiry.lifetime, DEFAULT_TOKEN_LIFETIME);

        for (body, words) in [
            ("<html>", "is not JSON"),
            ("[1]", "is not a JSON object"),
            (
                r#"{"token_type":"Bearer","expires_in":1}"#,
                "has no access_token",
            ),
            (
                r#"{"access_token":"","token_type":"Bearer"}"#,
                "access_token that is not",
            ),
            (
                r#"{"access_token":"abc","expires_in":1}"#,
                "has no token_type",
            ),
            (
                r#"{"access_token":"abc","token_type":"mac"}"#,
                "token_type `mac`",
            ),
            (
                r#"{"access_token":"abc","token_type":"Bearer","expires_in":0}"#,
                "expires_in that is not a positive number",
            ),
            (
                r#"{"access_token":"a\nb","token_type":"Bearer"}"#,
                "cannot be sent in a header",
            ),
        ] {
            let Err(err) = ok(body) else {
                panic!("{body} was accepted")
            };
            assert_eq!(err.class(), ErrorClass::Permanent);
            let text = err.to_string();
            assert!(
                text.contains("malformed response: the token response") && text.contains(words),
                "{body}: {text}"
            );
            assert_eq!(refresh_outcome(&err), "malformed");
        }
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("id:s3cr\u{e9}t?>", "aWQ6czNjcsOpdD8+"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[tokio::test]
    async fn caches_the_token_across_calls() {
        let server = MockServer::start().await;
        token_endpoint(&server, Tokens::new(3600)).await;
        api_accepting(&server, "t1").await;
        let cache = new_cache(&server.uri(), "");
        let client = api(&server.uri(), cache.clone());
        get(&client).await.unwrap();
        get(&client).await.unwrap();
        assert_eq!(count(&server, TOKEN_PATH).await, 1);
        assert_eq!(count(&server, "/api").await, 2);
        assert_eq!(cache.token_url().path(), TOKEN_PATH);
    }

    #[tokio::test]
    async fn an_expiring_token_is_refreshed_ahead_of_expiry() {
        let server = MockServer::start().await;
        // Lives 1s, shorter than the 60s skew: refreshed at half-life.
        token_endpoint(&server, Tokens::new(1)).await;
        Mock::given(path("/api"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let cache = new_cache(&server.uri(), "");
        let client = api(&server.uri(), cache);
        get(&client).await.unwrap();
        get(&client).await.unwrap();
        assert_eq!(count(&server, TOKEN_PATH).await, 1, "still fresh");
        tokio::time::sleep(Duration::from_millis(600)).await;
        get(&client).await.unwrap();
        assert_eq!(
            count(&server, TOKEN_PATH).await,
            2,
            "refreshed after half-life"
        );
        let sent: Vec<String> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/api")
            .map(|r| r.headers["authorization"].to_str().unwrap().to_string())
            .collect();
        assert_eq!(sent, ["Bearer t1", "Bearer t1", "Bearer t2"]);
    }

    #[tokio::test]
    async fn twenty_concurrent_calls_with_an_expired_token_make_one_token_request() {
        let server = MockServer::start().await;
        token_endpoint(
            &server,
            Tokens {
                delay: Duration::from_millis(100),
                ..Tokens::new(3600)
            },
        )
        .await;
        api_accepting(&server, "t2").await;
        let cache = new_cache(&server.uri(), "");
        cache.bearer().await.unwrap();
        cache.expire_now().await;
        let client = api(&server.uri(), cache);
        let calls = (0..20).map(|_| get(&client));
        for result in futures::future::join_all(calls).await {
            result.unwrap();
        }
        assert_eq!(
            count(&server, TOKEN_PATH).await,
            2,
            "the first, then one refresh"
        );
        assert_eq!(count(&server, "/api").await, 20, "no call needed a retry");
    }

    #[tokio::test]
    async fn a_401_refreshes_once_and_repeats_the_call_once() {
        let server = MockServer::start().await;
        token_endpoint(&server, Tokens::new(3600)).await;
        // The target revoked t1 early; t2 works.
        api_accepting(&server, "t2").await;
        let client = api(&server.uri(), new_cache(&server.uri(), ""));
        get(&client).await.unwrap();
        assert_eq!(count(&server, TOKEN_PATH).await, 2);
        assert_eq!(count(&server, "/api").await, 2);
        get(&client).await.unwrap();
        assert_eq!(count(&server, TOKEN_PATH).await, 2, "t2 is cached");
    }

    #[tokio::test]
    async fn a_second_401_is_an_auth_error_without_a_loop() {
        let server = MockServer::start().await;
        token_endpoint(&server, Tokens::new(3600)).await;
        api_accepting(&server, "never").await;
        let client = api(&server.uri(), new_cache(&server.uri(), ""));
        let err = get(&client).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert_eq!(count(&server, TOKEN_PATH).await, 2, "one refresh");
        assert_eq!(count(&server, "/api").await, 2, "one retry");
        // The target echoed the bearer header: the token is not in the error.
        let text = format!("{err} {err:?}");
        assert!(text.contains("token rejected: Bearer [REDACTED]"), "{text}");
        assert_no_secrets(&text);
    }

    #[tokio::test]
    async fn concurrent_401s_cost_one_refresh() {
        let server = MockServer::start().await;
        token_endpoint(&server, Tokens::new(3600)).await;
        Mock::given(path("/api"))
            .and(header("Authorization", "Bearer t1"))
            .respond_with(ResponseTemplate::new(401).set_delay(Duration::from_millis(50)))
            .mount(&server)
            .await;
        Mock::given(path("/api"))
            .and(header("Authorization", "Bearer t2"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let cache = new_cache(&server.uri(), "");
        cache.bearer().await.unwrap();
        let client = api(&server.uri(), cache);
        let calls = (0..8).map(|_| get(&client));
        for result in futures::future::join_all(calls).await {
            result.unwrap();
        }
        assert_eq!(count(&server, TOKEN_PATH).await, 2);
        assert_eq!(count(&server, "/api").await, 16);
    }

    #[tokio::test]
    async fn a_rejected_secret_is_a_clear_auth_error_that_never_shows_it() {
        let server = MockServer::start().await;
        // The endpoint echoes what it got, secret and header included.
        Mock::given(path(TOKEN_PATH))
            .respond_with(|request: &Request| {
                let sent = request
                    .headers
                    .get("Authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                ResponseTemplate::new(401).set_body_json(serde_json::json!({
                    "meta": { "message": format!("bad credentials {sent} ({SECRET})") }
                }))
            })
            .mount(&server)
            .await;
        Mock::given(path("/api"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let cache = new_cache(&server.uri(), "");
        let client = api(&server.uri(), cache.clone());
        let err = get(&client).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth);
        let text = err.to_string();
        assert!(
            text.contains("client_id or client_secret rejected by target jama"),
            "{text}"
        );
        assert!(text.contains("HTTP 401"), "{text}");
        assert_no_secrets(&format!("{text} {err:?} {cache:?} {client:?}"));
        assert_eq!(count(&server, TOKEN_PATH).await, 1, "not asked twice");
        assert_eq!(count(&server, "/api").await, 0);

        // A 400 (Spring's invalid_client) means the same.
        let server = MockServer::start().await;
        Mock::given(path(TOKEN_PATH))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                serde_json::json!({ "error": "invalid_client", "error_description": "Bad client credentials" }),
            ))
            .mount(&server)
            .await;
        let err = new_cache(&server.uri(), "").bearer().await.unwrap_err();
        assert_error(
            &err,
            ErrorClass::Auth,
            "client_id or client_secret rejected by target jama (token endpoint answered HTTP 400",
        );
    }

    #[tokio::test]
    async fn waiting_callers_share_a_failed_refresh() {
        let server = MockServer::start().await;
        Mock::given(path(TOKEN_PATH))
            .respond_with(ResponseTemplate::new(401).set_delay(Duration::from_millis(100)))
            .mount(&server)
            .await;
        let cache = new_cache(&server.uri(), "");
        let calls = (0..10).map(|_| cache.bearer());
        for result in futures::future::join_all(calls).await {
            assert_eq!(result.unwrap_err().class(), ErrorClass::Auth);
        }
        assert_eq!(count(&server, TOKEN_PATH).await, 1);
        // A later call asks again.
        assert!(cache.bearer().await.is_err());
        assert_eq!(count(&server, TOKEN_PATH).await, 2);
    }

    #[tokio::test]
    async fn a_failing_token_endpoint_is_retried_then_succeeds() {
        let server = MockServer::start().await;
        Mock::given(path(TOKEN_PATH))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&server)
            .await;
        token_endpoint(&server, Tokens::new(3600)).await;
        api_accepting(&server, "t1").await;
        let client = api(&server.uri(), new_cache(&server.uri(), ""));
        // `send` is never retried itself: the token request is.
        get(&client).await.unwrap();
        assert_eq!(count(&server, TOKEN_PATH).await, 3);
        assert_eq!(count(&server, "/api").await, 1);
    }

    #[tokio::test]
    async fn a_token_endpoint_that_stays_down_is_transient() {
        let server = MockServer::start().await;
        Mock::given(path(TOKEN_PATH))
            .respond_with(ResponseTemplate::new(502))
            .mount(&server)
            .await;
        let err = new_cache(&server.uri(), "").bearer().await.unwrap_err();
        assert_error(
            &err,
            ErrorClass::Transient,
            "token request failed: HTTP 502",
        );
        assert_eq!(
            count(&server, TOKEN_PATH).await,
            3,
            "read_retry.max_attempts"
        );

        let server = MockServer::start().await;
        let err = new_cache(&format!("{}/wrong", server.uri()), "")
            .bearer()
            .await
            .unwrap_err();
        assert_error(
            &err,
            ErrorClass::Permanent,
            "token request to /wrong/rest/oauth/token failed",
        );
    }

    #[tokio::test]
    async fn refreshes_are_counted_by_outcome() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let server = MockServer::start().await;
        token_endpoint(&server, Tokens::new(3600)).await;
        let good = new_cache(&server.uri(), "");
        good.bearer().await.unwrap();
        good.expire_now().await;
        good.bearer().await.unwrap();
        let down = MockServer::start().await;
        Mock::given(path(TOKEN_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
            .mount(&down)
            .await;
        new_cache(&down.uri(), "").bearer().await.unwrap_err();
        let text = handle.render();
        for line in [
            "idsync_token_refreshes_total{target=\"jama\",outcome=\"success\"} 2",
            "idsync_token_refreshes_total{target=\"jama\",outcome=\"malformed\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert_no_secrets(&text);
    }

    #[test]
    fn missing_credentials_are_clear_build_errors() {
        let bare: TargetConfig =
            toml::from_str("kind = \"jama\"\nbase_url = \"https://jama.example\"").unwrap();
        let err = ClientCredentials::from_config("jama", &bare).unwrap_err();
        assert!(err.to_string().contains("client_id is not set"), "{err}");
        let no_secret: TargetConfig = toml::from_str(
            "kind = \"jama\"\nbase_url = \"https://jama.example\"\nclient_id = \"c\"",
        )
        .unwrap();
        let err = ClientCredentials::from_config("jama", &no_secret).unwrap_err();
        assert!(
            err.to_string().contains("client_secret is not set"),
            "{err}"
        );
        let credentials =
            ClientCredentials::from_config("jama", &config("https://j.example", "")).unwrap();
        assert_eq!(credentials.client_id(), "idsync");
        let grant = ClientCredentialsGrant::new("jama", &credentials);
        assert_no_secrets(&format!("{credentials:?} {grant:?}"));
        assert_eq!(grant.redact(&format!("x {SECRET} y")), "x [REDACTED] y");
    }
}
