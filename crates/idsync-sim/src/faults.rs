//! Injected failures: rules that make chosen API requests fail with a chosen status.

use serde::{Deserialize, Serialize};

/// Makes matching API requests fail with `status` (the body is the target's usual error
/// body). Every matcher that is set must match; an unset matcher matches everything.
///
/// JSON form (for `POST /_sim/faults`):
/// `{"method":"GET","path_prefix":"/user","query_contains":"offset=1000","status":503,"times":1}`;
/// at a SOAP endpoint (Duck Creek), where every call is the same `POST`,
/// `{"request":"OnlineData.listEntityUsersRq","status":503}` picks calls by what they carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method to match (any letter case); unset: every method.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match: relative to the API root (`/user`), or absolute when it starts
    /// with the API root (`/services/v2/user`); unset: every path. A plain string prefix, so
    /// `/user` also matches `/user/5/role`. An endpoint outside the API root (Jama's
    /// `/rest/oauth/token`) is matched by its whole path, and only by rules that set a prefix.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Query parameters that must all be present, written `k=v&k2=v2`. Each pair is compared
    /// whole and decoded, so `offset=1000` matches `?limit=1000&offset=1000` but not
    /// `?offset=10000`. Unset: any query.
    #[serde(default)]
    pub query_contains: Option<String>,
    /// The local name of a request element the call must carry (a SOAP batch holding
    /// `<OnlineData.listEntityUsersRq …/>` matches `OnlineData.listEntityUsersRq`; compared
    /// exactly, as XML names are). Unset: any call. Only simulators that read request names
    /// (Duck Creek) can match a rule that sets it; elsewhere such a rule never fires.
    #[serde(default)]
    pub request: Option<String>,
    /// The status to answer with (400–599).
    pub status: u16,
    /// How many matching requests fail before the rule retires; unset: until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule that fails every API request with `status` until cleared; narrow it with the
    /// `with_*` methods.
    pub fn new(status: u16) -> Self {
        Self {
            method: None,
            path_prefix: None,
            query_contains: None,
            request: None,
            status,
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

    /// Checks the rule can be installed; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if !(400..=599).contains(&self.status) {
            return Err(format!(
                "status must be between 400 and 599, not {}.",
                self.status
            ));
        }
        if self.method.as_deref().is_some_and(str::is_empty) {
            return Err("method must not be empty.".to_owned());
        }
        if self.request.as_deref().is_some_and(str::is_empty) {
            return Err("request must not be empty.".to_owned());
        }
        Ok(())
    }

    fn matches(&self, request: &RequestFacts<'_>) -> bool {
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
        let query_ok = self.query_contains.as_deref().is_none_or(|wanted| {
            let have: Vec<(String, String)> = pairs(request.query.unwrap_or(""));
            pairs(wanted).iter().all(|pair| have.contains(pair))
        });
        let request_ok = self
            .request
            .as_deref()
            .is_none_or(|wanted| request.requests.contains(&wanted));
        method_ok && path_ok && query_ok && request_ok
    }
}

fn pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// What a fault rule looks at in a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts<'a> {
    /// The method, e.g. `GET`.
    pub(crate) method: &'a str,
    /// The API root the simulator serves under, e.g. `/services/v2`.
    pub(crate) api_root: &'a str,
    /// The whole request path.
    pub(crate) full_path: &'a str,
    /// The path below the API root, starting with `/`.
    pub(crate) api_path: &'a str,
    /// The raw query string, if any.
    pub(crate) query: Option<&'a str>,
    /// The local names of the request elements the call carries (a SOAP batch's inner
    /// requests); empty where the simulator does not read them.
    pub(crate) requests: &'a [&'a str],
}

/// The installed rules, checked in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Vec<FaultRule>,
}

impl FaultSet {
    /// Installs a rule (call [`FaultRule::validate`] first). A rule with `times = 0` is a no-op.
    pub(crate) fn push(&mut self, rule: FaultRule) {
        if rule.times != Some(0) {
            self.rules.push(rule);
        }
    }

    /// Removes every rule.
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The rules still installed, with `times` counting what is left.
    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        self.rules.clone()
    }

    /// The status of the first rule matching `request`, spending one of its `times`.
    pub(crate) fn take_match(&mut self, request: &RequestFacts<'_>) -> Option<u16> {
        self.take_first(request, |_| true)
    }

    /// Like [`take_match`](Self::take_match), but only rules that name a path prefix are
    /// considered: for endpoints outside the API root (an OAuth token endpoint), which a
    /// catch-all rule such as `fail_next` should not hit.
    pub(crate) fn take_path_match(&mut self, request: &RequestFacts<'_>) -> Option<u16> {
        self.take_first(request, |rule| rule.path_prefix.is_some())
    }

    fn take_first(
        &mut self,
        request: &RequestFacts<'_>,
        eligible: impl Fn(&FaultRule) -> bool,
    ) -> Option<u16> {
        let index = self
            .rules
            .iter()
            .position(|rule| eligible(rule) && rule.matches(request))?;
        let rule = self.rules.get_mut(index)?;
        let status = rule.status;
        if let Some(left) = rule.times.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.rules.remove(index);
            }
        }
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(api_path: &str, query: Option<&'static str>) -> RequestFacts<'static> {
        let api_path: &'static str = Box::leak(api_path.to_owned().into_boxed_str());
        let full: &'static str = Box::leak(format!("/services/v2{api_path}").into_boxed_str());
        RequestFacts {
            method: "GET",
            api_root: "/services/v2",
            full_path: full,
            api_path,
            query,
            requests: &[],
        }
    }

    #[test]
    fn query_pairs_match_whole() {
        let mut set = FaultSet::default();
        set.push(
            FaultRule::new(503)
                .with_method("get")
                .with_path_prefix("/user")
                .with_query("offset=1000")
                .with_times(1),
        );
        assert_eq!(
            set.take_match(&get("/user", Some("offset=10000&limit=1000"))),
            None
        );
        assert_eq!(set.take_match(&get("/user", Some("offset=0"))), None);
        assert_eq!(
            set.take_match(&get("/container", Some("offset=1000"))),
            None
        );
        assert_eq!(
            set.take_match(&get("/user", Some("limit=1000&offset=1000"))),
            Some(503)
        );
        // times = 1: spent.
        assert_eq!(
            set.take_match(&get("/user", Some("limit=1000&offset=1000"))),
            None
        );
        assert!(set.rules().is_empty());
    }

    #[test]
    fn absolute_prefix_and_method() {
        let mut set = FaultSet::default();
        set.push(FaultRule::new(500).with_path_prefix("/services/v2/container"));
        set.push(FaultRule::new(502).with_method("PUT"));
        assert_eq!(set.take_match(&get("/container/1/role", None)), Some(500));
        assert_eq!(set.take_match(&get("/user", None)), None);
        let mut put = get("/user/5", None);
        put.method = "put";
        assert_eq!(set.take_match(&put), Some(502));
        // Unlimited rules stay.
        assert_eq!(set.rules().len(), 2);
        set.clear();
        assert_eq!(set.take_match(&put), None);
    }

    #[test]
    fn counted_rule_and_validation() {
        let mut set = FaultSet::default();
        set.push(FaultRule::new(503).with_times(2));
        set.push(FaultRule::new(500).with_times(0));
        assert_eq!(set.take_match(&get("/user", None)), Some(503));
        assert_eq!(set.take_match(&get("/user/1", None)), Some(503));
        assert_eq!(set.take_match(&get("/user", None)), None);
        assert!(FaultRule::new(200).validate().is_err());
        assert!(FaultRule::new(503).validate().is_ok());
        // Outside the API root only rules naming a path apply.
        let token = RequestFacts {
            method: "POST",
            api_root: "/services/v2",
            full_path: "/oauth/token",
            api_path: "/oauth/token",
            query: None,
            requests: &[],
        };
        set.push(FaultRule::new(500));
        set.push(
            FaultRule::new(502)
                .with_path_prefix("/oauth/token")
                .with_times(1),
        );
        assert_eq!(set.take_path_match(&token), Some(502));
        assert_eq!(set.take_path_match(&token), None);
        assert_eq!(set.take_match(&token), Some(500));
        let json: FaultRule =
            serde_json::from_str(r#"{"path_prefix":"/user","status":503,"times":1}"#).unwrap();
        assert_eq!(
            json,
            FaultRule::new(503).with_path_prefix("/user").with_times(1)
        );
    }

    #[test]
    fn a_request_matcher_needs_a_call_carrying_that_request() {
        let mut set = FaultSet::default();
        set.push(
            FaultRule::new(503)
                .with_request("OnlineData.listEntityUsersRq")
                .with_times(1),
        );
        // Simulators that read no request names never fire such a rule.
        assert_eq!(set.take_match(&get("/", None)), None);
        let mut soap = get("", None);
        soap.method = "POST";
        let lock = ["Session.loginRq", "Security.lockUserAccountRq"];
        soap.requests = &lock;
        assert_eq!(set.take_match(&soap), None);
        let list = ["Session.loginRq", "OnlineData.listEntityUsersRq"];
        soap.requests = &list;
        assert_eq!(set.take_match(&soap), Some(503));
        assert_eq!(set.take_match(&soap), None, "spent");
        assert!(FaultRule::new(500).with_request("").validate().is_err());
        let json: FaultRule =
            serde_json::from_str(r#"{"request":"Security.listRolesRq","status":500}"#).unwrap();
        assert_eq!(
            json,
            FaultRule::new(500).with_request("Security.listRolesRq")
        );
    }
}
