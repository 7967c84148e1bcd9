//! A fault rule: which requests it picks (method, path, query, SOAP request) and what they
//! get ([`FaultEffect`]), with its JSON form for `POST /_sim/faults` and its checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RequestFacts;

/// What a matching request gets (see [`FaultRule`]).
///
/// Every effect but `Status` breaks an answer the simulator gave successfully (2xx); the
/// request still runs, so a write still happens at the target. An effect that cannot apply
/// to an answer (`RepeatPage` with no earlier answer, `TotalDrift` on a body without a total)
/// lets it through and is not spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEffect {
    /// Answer with this status (400–599) and the target's usual error body, instead of
    /// running the request.
    Status(u16),
    /// Send the status, the headers (no `Content-Length`: chunked) and the first half of the
    /// body, then reset the connection (TCP RST).
    Reset,
    /// Declare the whole body's `Content-Length`, send its first half, then close the
    /// connection.
    Truncate,
    /// The whole answer, with garbage spliced into the middle of its body at a point where
    /// neither JSON nor XML allows it.
    Malformed,
    /// The answer with its body sent `chunk_bytes` at a time, one chunk per `interval` on the
    /// simulator's clock (a manual clock sends the next chunk only when advanced).
    Drip {
        /// The wait before each chunk after the first.
        interval: Duration,
        /// Bytes per chunk (at least 1).
        chunk_bytes: usize,
    },
    /// The body of the previous successful answer to the same method and path: a target
    /// that ignores the offset serves the same page again.
    RepeatPage,
    /// The answer with the listing's total (`page.total`, or `meta.pageInfo.totalResults`)
    /// moved by `delta`: the listing seems to change while it is read.
    TotalDrift {
        /// Added to the total (not 0; a total never goes below 0).
        delta: i64,
    },
    /// The answer with every occurrence of `find` in its body replaced by `replace`: a
    /// record the target sends in a shape it does not document (`"status":"active"` →
    /// `"status":"pending"`, `"email":"a@b"` → `"email":42`). Applies only to a body that
    /// holds `find`.
    Rewrite {
        /// The text to replace (not empty).
        find: String,
        /// What goes in its place.
        replace: String,
    },
}

impl FaultEffect {
    /// The effect's name in the JSON form and in [`SimStats::faults_applied`](crate::SimStats).
    pub fn name(&self) -> &'static str {
        match self {
            FaultEffect::Status(_) => "status",
            FaultEffect::Reset => "reset",
            FaultEffect::Truncate => "truncate",
            FaultEffect::Malformed => "malformed",
            FaultEffect::Drip { .. } => "drip",
            FaultEffect::RepeatPage => "repeat_page",
            FaultEffect::TotalDrift { .. } => "total_drift",
            FaultEffect::Rewrite { .. } => "rewrite",
        }
    }

    /// Whether the request gets an error status (not a broken answer).
    pub(crate) fn is_status(&self) -> bool {
        matches!(self, FaultEffect::Status(_))
    }
}

/// The effects the JSON form knows, for messages.
const EFFECTS: &str =
    "status, reset, truncate, malformed, drip, repeat_page, total_drift or rewrite";

/// Makes matching API requests fail: with an error status (the body is the target's usual
/// error body), or with a broken answer ([`FaultEffect`]). Every matcher that is set must
/// match; an unset matcher matches everything.
///
/// JSON form (for `POST /_sim/faults`):
/// `{"method":"GET","path_prefix":"/user","query_contains":"offset=1000","status":503,"times":1}`;
/// a broken answer names its `effect`: `{"effect":"reset","path_prefix":"/user","times":1}`,
/// `{"effect":"drip","interval_ms":500,"chunk_bytes":64}`, `{"effect":"total_drift","delta":3}`,
/// `{"effect":"rewrite","find":"\"status\":\"inactive\"","replace":"\"status\":\"locked\""}`
/// (`effect` defaults to `status`, the only effect that takes a `status`). At a SOAP
/// endpoint (Duck Creek), where every call is the same `POST`,
/// `{"request":"OnlineData.listEntityUsersRq","status":503}` picks calls by what they carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RuleBody", into = "RuleBody")]
pub struct FaultRule {
    /// HTTP method to match (any letter case); unset: every method.
    pub method: Option<String>,
    /// Path prefix to match: relative to the API root (`/user`), or absolute when it starts
    /// with the API root (`/services/v2/user`); unset: every path. A plain string prefix, so
    /// `/user` also matches `/user/5/role`. An endpoint outside the API root (Jama's
    /// `/rest/oauth/token`) is matched by its whole path, and only by rules that set a prefix.
    pub path_prefix: Option<String>,
    /// Query parameters that must all be present, written `k=v&k2=v2`. Each pair is compared
    /// whole and decoded, so `offset=1000` matches `?limit=1000&offset=1000` but not
    /// `?offset=10000`. Unset: any query.
    pub query_contains: Option<String>,
    /// The local name of a request element the call must carry (a SOAP batch holding
    /// `<OnlineData.listEntityUsersRq …/>` matches `OnlineData.listEntityUsersRq`; compared
    /// exactly, as XML names are). Unset: any call. Only simulators that read request names
    /// (Duck Creek) can match a rule that sets it; elsewhere such a rule never fires.
    pub request: Option<String>,
    /// What a matching request gets.
    pub effect: FaultEffect,
    /// How many matching requests fail before the rule retires; unset: until cleared.
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule that fails every API request with `status` until cleared; narrow it with the
    /// `with_*` methods.
    pub fn new(status: u16) -> Self {
        Self::breaking(FaultEffect::Status(status))
    }

    /// A rule that gives every API request `effect` until cleared; narrow it with the
    /// `with_*` methods.
    pub fn breaking(effect: FaultEffect) -> Self {
        Self {
            method: None,
            path_prefix: None,
            query_contains: None,
            request: None,
            effect,
            times: None,
        }
    }

    /// Only requests with this method.
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Only requests whose path starts with `prefix`.
    pub fn with_path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only requests whose query carries every `k=v` pair of `query`.
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query_contains = Some(query.into());
        self
    }

    /// Only calls that carry a request element with this local name (SOAP batches).
    pub fn with_request(mut self, request: impl Into<String>) -> Self {
        self.request = Some(request.into());
        self
    }

    /// Retire the rule after `times` failures.
    pub fn with_times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    /// The status of a `Status` rule; `None` for a broken answer.
    pub fn status(&self) -> Option<u16> {
        match self.effect {
            FaultEffect::Status(status) => Some(status),
            _ => None,
        }
    }

    /// Checks the rule can be installed; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        match &self.effect {
            FaultEffect::Status(status) if !(400..=599).contains(status) => {
                return Err(format!("status must be between 400 and 599, not {status}."));
            }
            FaultEffect::Drip {
                interval,
                chunk_bytes,
            } => {
                if interval.is_zero() {
                    return Err("effect \"drip\" needs interval_ms of at least 1.".to_owned());
                }
                if *chunk_bytes == 0 {
                    return Err("effect \"drip\" needs chunk_bytes of at least 1.".to_owned());
                }
            }
            FaultEffect::TotalDrift { delta: 0 } => {
                return Err("effect \"total_drift\" needs a delta other than 0.".to_owned());
            }
            FaultEffect::Rewrite { find, .. } if find.is_empty() => {
                return Err("effect \"rewrite\" needs a find text that is not empty.".to_owned());
            }
            _ => {}
        }
        if self.method.as_deref().is_some_and(str::is_empty) {
            return Err("method must not be empty.".to_owned());
        }
        if self.request.as_deref().is_some_and(str::is_empty) {
            return Err("request must not be empty.".to_owned());
        }
        Ok(())
    }

    /// Whether `request` is picked by every matcher that is set.
    pub(crate) fn matches(&self, request: &RequestFacts<'_>) -> bool {
        self.matches_but_query(request)
            && self.query_contains.as_deref().is_none_or(|wanted| {
                let have: Vec<(String, String)> = pairs(request.query.unwrap_or(""));
                pairs(wanted).iter().all(|pair| have.contains(pair))
            })
    }

    /// Every matcher but the query: the requests whose answers a `RepeatPage` rule may serve
    /// again.
    pub(crate) fn matches_but_query(&self, request: &RequestFacts<'_>) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|method| method.eq_ignore_ascii_case(request.method));
        let path_ok = self.path_prefix.as_deref().is_none_or(|prefix| {
            if prefix.starts_with(request.api_root) && !request.api_root.is_empty() {
                request.full_path.starts_with(prefix)
            } else {
                request.api_path.starts_with(prefix)
            }
        });
        let request_ok = self
            .request
            .as_deref()
            .is_none_or(|wanted| request.requests.contains(&wanted));
        method_ok && path_ok && request_ok
    }
}

fn pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// The flat JSON shape of a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path_prefix: Option<String>,
    #[serde(default)]
    query_contains: Option<String>,
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delta: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    find: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replace: Option<String>,
    #[serde(default)]
    times: Option<u32>,
}

impl RuleBody {
    /// The effect the body names, refusing parameters that belong to another effect.
    fn effect(&self) -> Result<FaultEffect, String> {
        let name = self.effect.as_deref().unwrap_or("status");
        let only = |field: &str, set: bool, owner: &str| -> Result<(), String> {
            if set {
                Err(format!(
                    "{field} is only read with effect \"{owner}\", not \"{name}\"."
                ))
            } else {
                Ok(())
            }
        };
        if name != "status" {
            only("status", self.status.is_some(), "status")?;
        }
        if name != "drip" {
            only("interval_ms", self.interval_ms.is_some(), "drip")?;
            only("chunk_bytes", self.chunk_bytes.is_some(), "drip")?;
        }
        if name != "total_drift" {
            only("delta", self.delta.is_some(), "total_drift")?;
        }
        if name != "rewrite" {
            only("find", self.find.is_some(), "rewrite")?;
            only("replace", self.replace.is_some(), "rewrite")?;
        }
        Ok(match name {
            "status" => FaultEffect::Status(
                self.status
                    .ok_or_else(|| "effect \"status\" needs a status (400–599).".to_owned())?,
            ),
            "reset" => FaultEffect::Reset,
            "truncate" => FaultEffect::Truncate,
            "malformed" => FaultEffect::Malformed,
            "drip" => FaultEffect::Drip {
                interval: Duration::from_millis(self.interval_ms.ok_or_else(|| {
                    "effect \"drip\" needs interval_ms (the wait between chunks).".to_owned()
                })?),
                chunk_bytes: self.chunk_bytes.unwrap_or(DEFAULT_DRIP_CHUNK),
            },
            "repeat_page" => FaultEffect::RepeatPage,
            "total_drift" => FaultEffect::TotalDrift {
                delta: self.delta.ok_or_else(|| {
                    "effect \"total_drift\" needs a delta (added to the total).".to_owned()
                })?,
            },
            "rewrite" => FaultEffect::Rewrite {
                find: self.find.clone().ok_or_else(|| {
                    "effect \"rewrite\" needs find (the text to replace).".to_owned()
                })?,
                replace: self.replace.clone().ok_or_else(|| {
                    "effect \"rewrite\" needs replace (\"\" removes the text).".to_owned()
                })?,
            },
            other => return Err(format!("unknown effect {other:?}: expected {EFFECTS}.")),
        })
    }
}

/// Bytes per chunk of a `drip` rule that names none.
pub(super) const DEFAULT_DRIP_CHUNK: usize = 16;

impl TryFrom<RuleBody> for FaultRule {
    type Error = String;

    fn try_from(body: RuleBody) -> Result<Self, String> {
        let rule = FaultRule {
            effect: body.effect()?,
            method: body.method,
            path_prefix: body.path_prefix,
            query_contains: body.query_contains,
            request: body.request,
            times: body.times,
        };
        // Values (a status out of range, a zero interval) are left to `validate`, which
        // every installation runs: the simulator answers them as an invalid fault.
        Ok(rule)
    }
}

impl From<FaultRule> for RuleBody {
    fn from(rule: FaultRule) -> Self {
        let mut body = RuleBody {
            method: rule.method,
            path_prefix: rule.path_prefix,
            query_contains: rule.query_contains,
            request: rule.request,
            effect: Some(rule.effect.name().to_owned()),
            status: None,
            interval_ms: None,
            chunk_bytes: None,
            delta: None,
            find: None,
            replace: None,
            times: rule.times,
        };
        match rule.effect {
            FaultEffect::Status(status) => body.status = Some(status),
            FaultEffect::Drip {
                interval,
                chunk_bytes,
            } => {
                body.interval_ms = Some(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX));
                body.chunk_bytes = Some(chunk_bytes);
            }
            FaultEffect::TotalDrift { delta } => body.delta = Some(delta),
            FaultEffect::Rewrite { find, replace } => {
                body.find = Some(find);
                body.replace = Some(replace);
            }
            FaultEffect::Reset
            | FaultEffect::Truncate
            | FaultEffect::Malformed
            | FaultEffect::RepeatPage => {}
        }
        body
    }
}
