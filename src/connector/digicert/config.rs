//! The settings a DigiCert target reads, and their checks (the same for `check-config` and
//! the constructor).

use secrecy::SecretString;

use std::ops::RangeInclusive;

use crate::config::{ConfigDuration, ConfigProblem, DisableStrategy, RateLimit, TargetConfig};
use crate::connector::kit::settings::{self, Problems};

/// Users per page when the target's `page_size` is unset.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// The header that carries the API key when `api_key_header` is unset.
pub const DEFAULT_API_KEY_HEADER: &str = "X-DC-DEVKEY";

/// The role given to a created user when the task names none and `default_role` is unset
/// (Standard User).
pub const DEFAULT_ROLE: &str = "5";

/// The pacing DigiCert needs: its documented per-key limits (100 per 5 s, 1000 per 3 min, on
/// rolling windows), kept at 90 %.
pub fn default_rate_limits() -> Vec<RateLimit> {
    vec![
        RateLimit {
            requests: 90,
            per: ConfigDuration::from_secs(5),
        },
        RateLimit {
            requests: 900,
            per: ConfigDuration::from_secs(180),
        },
    ]
}

/// `container_move`: how `add_access` on a `container` moves a user. CertCentral documents
/// no call that moves a user between divisions, so there is no default: unset, container
/// moves are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerMove {
    /// `"put_user"`: send `container: {id}` in Edit user (`PUT /user/{id}`) with the
    /// user's other Edit-user fields as read (undocumented; Saviynt's package does it), then
    /// read the user back to check it moved.
    PutUser,
}

impl ContainerMove {
    /// The config spellings, in the order the refusal lists them.
    pub const VALUES: [&'static str; 1] = ["put_user"];

    /// The value of `container_move = "…"`, or `None` if it is not one of [`Self::VALUES`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "put_user" => Some(ContainerMove::PutUser),
            _ => None,
        }
    }
}

/// A DigiCert target's settings, read and checked.
#[derive(Debug)]
pub struct Settings {
    /// The API key.
    pub api_key: SecretString,
    /// The header that carries it.
    pub api_key_header: String,
    /// The role of a created user whose task names none.
    pub default_role: String,
    /// What `disable_account` does.
    pub disable_strategy: DisableStrategy,
    /// How `add_access` on a container moves the user; `None`: refused.
    pub container_move: Option<ContainerMove>,
}

impl settings::Settings for Settings {
    const KEYS: &'static [&'static str] = &[
        "api_key",
        "api_key_header",
        "default_role",
        "disable_strategy",
        "container_move",
    ];
    const PAGE_SIZES: RangeInclusive<u32> = 1..=1000;
    const DEFAULT_PAGE_SIZE: u32 = DEFAULT_PAGE_SIZE;

    fn read(target: &TargetConfig) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let api_key = problems.take(settings::required_secret(
            target,
            "api_key",
            target.api_key.as_ref(),
            "write api_key = { env = \"DIGICERT_API_KEY\" } (or { file = \"PATH\" })",
        ));
        let api_key_header = target
            .api_key_header
            .clone()
            .unwrap_or_else(|| DEFAULT_API_KEY_HEADER.to_string());
        if reqwest::header::HeaderName::from_bytes(api_key_header.as_bytes()).is_err() {
            problems.add(
                "api_key_header",
                Some(&api_key_header),
                "is not a valid HTTP header name",
            );
        }
        let default_role = target
            .default_role
            .clone()
            .unwrap_or_else(|| DEFAULT_ROLE.to_string());
        if default_role.trim().parse::<u32>().is_err() {
            problems.add(
                "default_role",
                Some(&default_role),
                "must be a DigiCert access role id, e.g. \"5\" (Standard User)",
            );
        }
        let container_move = target.container_move.as_deref().and_then(|text| {
            let parsed = ContainerMove::parse(text);
            if parsed.is_none() {
                problems.add(
                    "container_move",
                    Some(text),
                    format!(
                        "is not a container move idsync knows; write container_move = \
                         \"put_user\" to move users by sending the container in Edit user \
                         (PUT /user/{{id}}, undocumented by DigiCert), or remove the key to \
                         keep container moves refused (known values: {})",
                        ContainerMove::VALUES.join(", ")
                    ),
                );
            }
            parsed
        });
        let read = api_key.map(|api_key| Self {
            api_key,
            api_key_header,
            default_role,
            disable_strategy: target.disable_strategy.unwrap_or_default(),
            container_move,
        });
        problems.finish(read)
    }
}
