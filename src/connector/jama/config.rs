//! The settings a Jama target reads, and their checks (the same for `check-config` and the
//! constructor).

use std::ops::RangeInclusive;

use secrecy::SecretString;
use url::Url;

use crate::config::{ConfigDuration, ConfigProblem, RateLimit, RemoveStrategy, TargetConfig};
use crate::connector::kit::settings::{self, Problems};
use crate::connector::ConnectorError;

/// Records per page when the target's `page_size` is unset (Jama's own maximum).
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// The token endpoint, under `base_url`.
pub const TOKEN_PATH: [&str; 3] = ["rest", "oauth", "token"];

/// The API root, under `base_url`.
pub const API_PATH: [&str; 2] = ["rest", "v1"];

/// The pacing Jama needs: 10 calls per second for the whole tenant.
pub fn default_rate_limits() -> Vec<RateLimit> {
    vec![RateLimit {
        requests: 10,
        per: ConfigDuration::from_secs(1),
    }]
}

/// A Jama target's settings, read and checked.
#[derive(Debug)]
pub struct Settings {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: SecretString,
    /// What `remove_account` does.
    pub remove_strategy: RemoveStrategy,
}

impl settings::Settings for Settings {
    const KEYS: &'static [&'static str] = &["client_id", "client_secret", "remove_strategy"];
    // Jama serves at most 50 per page whatever is asked; the adapter follows what it serves,
    // so a larger request is harmless.
    const PAGE_SIZES: RangeInclusive<u32> = 1..=1000;
    const DEFAULT_PAGE_SIZE: u32 = DEFAULT_PAGE_SIZE;

    fn read(target: &TargetConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let client_id = match target.client_id.as_deref() {
            None => {
                problems.push(settings::required(
                    target,
                    "client_id",
                    "write the OAuth client id from Jama's API credentials page, e.g. \
                     client_id = \"idsync-client\"",
                ));
                None
            }
            Some(id) if id.trim().is_empty() => {
                problems.add("client_id", Some(id), "must not be empty");
                None
            }
            // HTTP Basic cannot carry a user id with a colon (RFC 7617).
            Some(id) if id.contains(':') || id.chars().any(char::is_control) => {
                problems.add(
                    "client_id",
                    Some(id),
                    "must not contain `:` or control characters (it is sent as HTTP Basic user \
                     id)",
                );
                None
            }
            Some(id) => Some(id.to_string()),
        };
        let client_secret = problems.take(settings::required_secret(
            target,
            "client_secret",
            target.client_secret.as_ref(),
            "write client_secret = { env = \"JAMA_CLIENT_SECRET\" } (or { file = \"PATH\" })",
        ));
        let path = target.base_url.path().trim_end_matches('/');
        if path.ends_with("/rest") || path.ends_with("/rest/v1") || path.ends_with("/rest/latest") {
            problems.add(
                "base_url",
                Some(target.base_url.as_str()),
                "must be the tenant's root URL (e.g. \"https://example.jamacloud.com\"): idsync \
                 appends /rest/v1/… and /rest/oauth/token itself",
            );
        }
        if target.token_refresh_skew.get().is_zero() {
            problems.add(
                "token_refresh_skew",
                Some(&target.token_refresh_skew.to_string()),
                "must be longer than 0s (a token is refreshed this long before it expires)",
            );
        }
        let read = client_id
            .zip(client_secret)
            .map(|(client_id, client_secret)| Self {
                client_id,
                client_secret,
                remove_strategy: target.remove_strategy.unwrap_or_default(),
            });
        problems.finish(read)
    }
}

/// `{base_url}/rest/v1`.
pub fn api_root(target: &str, base_url: &Url) -> Result<Url, ConnectorError> {
    let mut url = base_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| {
            ConnectorError::config(
                target,
                format!("base_url `{base_url}` must be an http:// or https:// URL with a host"),
            )
        })?
        .pop_if_empty()
        .extend(API_PATH);
    Ok(url)
}
