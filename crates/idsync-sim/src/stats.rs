//! What a simulator counts about the API requests it answered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters over the API requests a simulator answered (control requests under `/_sim/` are
/// not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// API requests answered (token requests included).
    pub requests: u64,
    /// Requests to an OAuth token endpoint (Jama), whatever the answer; also in `requests`.
    #[serde(default)]
    pub token_requests: u64,
    /// Answered 401 (bad, missing or revoked key).
    pub responses_401: u64,
    /// Answered 429 (over a rate window).
    pub responses_429: u64,
    /// Answered with any 5xx (injected faults).
    pub responses_5xx: u64,
    /// Answers per status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests per route, e.g. `GET /user/{id}`; requests to no route count as `unmatched`.
    pub by_route: BTreeMap<String, u64>,
    /// Requests per route that the simulator answered 2xx: for a write, the times it took
    /// effect (a broken answer after the write still counts; an injected status does not).
    #[serde(default)]
    pub ok_by_route: BTreeMap<String, u64>,
    /// Calls refused because the credentials in the body were wrong or revoked (Duck Creek's
    /// `Session.loginRq`, answered with a SOAP fault, not a 401); also in `requests`.
    #[serde(default)]
    pub login_failures: u64,
    /// Requests inside SOAP batches by element name, e.g. `OnlineData.listEntityUsersRq`
    /// (names the simulator does not know count as `unknown`): every request of every
    /// well-formed batch, whatever the answer. Empty for REST simulators.
    #[serde(default)]
    pub by_inner_request: BTreeMap<String, u64>,
    /// Answers broken by a fault rule, by effect (`reset`, `truncate`, `malformed`, `drip`,
    /// `repeat_page`, `total_drift`); also in `requests`, under the status the simulator
    /// answered.
    #[serde(default)]
    pub faults_applied: BTreeMap<String, u64>,
}

impl SimStats {
    /// Counts one answered request.
    pub(crate) fn record(&mut self, route: &'static str, status: u16) {
        self.requests += 1;
        match status {
            401 => self.responses_401 += 1,
            429 => self.responses_429 += 1,
            500..=599 => self.responses_5xx += 1,
            _ => {}
        }
        *self.by_status.entry(status).or_insert(0) += 1;
        count(&mut self.by_route, route);
        if (200..300).contains(&status) {
            count(&mut self.ok_by_route, route);
        }
    }

    /// Counts one answered request to the token endpoint (`route` names it).
    pub(crate) fn record_token(&mut self, route: &'static str, status: u16) {
        self.token_requests += 1;
        self.record(route, status);
    }

    /// Counts one request inside a SOAP batch.
    pub(crate) fn record_inner(&mut self, name: &'static str) {
        count(&mut self.by_inner_request, name);
    }

    /// Counts one answer broken by a fault rule with effect `effect`.
    pub(crate) fn record_fault(&mut self, effect: &'static str) {
        count(&mut self.faults_applied, effect);
    }

    /// Answers broken with `effect` (e.g. `reset`).
    pub fn faults_applied(&self, effect: &str) -> u64 {
        self.faults_applied.get(effect).copied().unwrap_or(0)
    }

    /// Inner requests counted under `name` (e.g. `Security.lockUserAccountRq`).
    pub fn inner_request(&self, name: &str) -> u64 {
        self.by_inner_request.get(name).copied().unwrap_or(0)
    }

    /// Requests counted for `route` (e.g. `GET /user`).
    pub fn route(&self, route: &str) -> u64 {
        self.by_route.get(route).copied().unwrap_or(0)
    }

    /// Requests for `route` answered 2xx (e.g. creates that took effect at `POST /user`).
    pub fn route_ok(&self, route: &str) -> u64 {
        self.ok_by_route.get(route).copied().unwrap_or(0)
    }
}

/// Adds one to `key`'s counter in `counts`.
fn count(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_classes_and_routes() {
        let mut stats = SimStats::default();
        stats.record("GET /user", 200);
        stats.record("GET /user", 429);
        stats.record("GET /user", 401);
        stats.record("unmatched", 503);
        assert_eq!(stats.requests, 4);
        assert_eq!(
            (
                stats.responses_401,
                stats.responses_429,
                stats.responses_5xx
            ),
            (1, 1, 1)
        );
        assert_eq!(stats.route("GET /user"), 3);
        assert_eq!(
            stats.route_ok("GET /user"),
            1,
            "the 429 and the 401 took no effect"
        );
        assert_eq!(stats.route("PUT /user/{id}"), 0);
        assert_eq!(stats.by_status.get(&200), Some(&1));
        stats.record_token("POST /rest/oauth/token", 401);
        assert_eq!((stats.requests, stats.token_requests), (5, 1));
        assert_eq!(stats.responses_401, 2);
        stats.record_inner("Session.loginRq");
        stats.record_inner("Session.loginRq");
        assert_eq!(stats.inner_request("Session.loginRq"), 2);
        assert_eq!(stats.inner_request("unknown"), 0);
        assert_eq!(stats.requests, 5, "inner requests are not HTTP requests");
        // Counters saved before these fields existed still load.
        let old: SimStats = serde_json::from_str(
            r#"{"requests":1,"responses_401":0,"responses_429":0,"responses_5xx":0,
                "by_status":{},"by_route":{}}"#,
        )
        .unwrap();
        assert_eq!((old.login_failures, old.by_inner_request.len()), (0, 0));
        assert!(old.faults_applied.is_empty());
        stats.record_fault("reset");
        stats.record_fault("reset");
        assert_eq!(
            (stats.faults_applied("reset"), stats.faults_applied("drip")),
            (2, 0)
        );
    }
}
