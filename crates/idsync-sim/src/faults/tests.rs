//! Unit tests of the fault rules: matching, spending, the JSON form, and the broken answers
//! over real HTTP.

use std::time::Duration;

use axum::body::Bytes;

use super::rule::DEFAULT_DRIP_CHUNK;
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

#[test]
fn the_json_form_reads_old_rules_and_names_each_effect() {
    let old: FaultRule = serde_json::from_str(r#"{"status":503,"times":2}"#).unwrap();
    assert_eq!(old, FaultRule::new(503).with_times(2));
    let json = serde_json::to_value(&old).unwrap();
    assert_eq!(json["effect"], "status");
    assert_eq!(json["status"], 503);
    assert!(
        json["method"].is_null(),
        "matchers are listed even when unset"
    );

    let cases = [
        (r#"{"effect":"reset"}"#, FaultEffect::Reset),
        (r#"{"effect":"truncate"}"#, FaultEffect::Truncate),
        (r#"{"effect":"malformed"}"#, FaultEffect::Malformed),
        (r#"{"effect":"repeat_page"}"#, FaultEffect::RepeatPage),
        (
            r#"{"effect":"drip","interval_ms":250,"chunk_bytes":8}"#,
            FaultEffect::Drip {
                interval: Duration::from_millis(250),
                chunk_bytes: 8,
            },
        ),
        (
            r#"{"effect":"drip","interval_ms":5}"#,
            FaultEffect::Drip {
                interval: Duration::from_millis(5),
                chunk_bytes: DEFAULT_DRIP_CHUNK,
            },
        ),
        (
            r#"{"effect":"total_drift","delta":-2}"#,
            FaultEffect::TotalDrift { delta: -2 },
        ),
        (
            r#"{"effect":"rewrite","find":"a","replace":""}"#,
            FaultEffect::Rewrite {
                find: "a".into(),
                replace: String::new(),
            },
        ),
    ];
    for (text, effect) in cases {
        let rule: FaultRule = serde_json::from_str(text).unwrap();
        assert_eq!(rule.effect, effect, "{text}");
        assert_eq!(rule.status(), None);
        // Listed (GET /_sim/faults) as it was given.
        let again: FaultRule =
            serde_json::from_value(serde_json::to_value(&rule).unwrap()).unwrap();
        assert_eq!(again, rule);
    }
}

#[test]
fn a_bad_rule_is_refused_naming_the_field() {
    // As `POST /_sim/faults` does: parse, then validate.
    let refused = |text: &str| -> String {
        serde_json::from_str::<FaultRule>(text)
            .map_err(|error| error.to_string())
            .and_then(|rule| rule.validate().map(|()| rule))
            .map(|rule| panic!("accepted {text}: {rule:?}"))
            .unwrap_err()
    };
    for (text, says) in [
        ("{}", "needs a status"),
        (r#"{"status":200}"#, "between 400 and 599"),
        (
            r#"{"effect":"explode"}"#,
            "unknown effect \"explode\": expected status, reset",
        ),
        (
            r#"{"effect":"reset","status":503}"#,
            "status is only read with effect \"status\"",
        ),
        (r#"{"effect":"drip"}"#, "needs interval_ms"),
        (
            r#"{"effect":"drip","interval_ms":0}"#,
            "interval_ms of at least 1",
        ),
        (
            r#"{"effect":"drip","interval_ms":5,"chunk_bytes":0}"#,
            "chunk_bytes of at least 1",
        ),
        (
            r#"{"effect":"truncate","interval_ms":5}"#,
            "interval_ms is only read with effect \"drip\"",
        ),
        (r#"{"effect":"total_drift"}"#, "needs a delta"),
        (
            r#"{"effect":"total_drift","delta":0}"#,
            "delta other than 0",
        ),
        (
            r#"{"effect":"reset","delta":1}"#,
            "delta is only read with effect \"total_drift\"",
        ),
        (
            r#"{"effect":"reset","method":""}"#,
            "method must not be empty",
        ),
        (
            r#"{"effect":"reset","colour":"red"}"#,
            "unknown field `colour`",
        ),
    ] {
        let message = refused(text);
        assert!(message.contains(says), "{text}: {message}");
    }
    // The Rust form is checked the same way before it is installed.
    assert!(FaultRule::breaking(FaultEffect::TotalDrift { delta: 0 })
        .validate()
        .is_err());
}

#[test]
fn status_rules_and_broken_answers_are_separate() {
    let mut set = FaultSet::default();
    set.push(FaultRule::breaking(FaultEffect::Reset).with_times(1));
    set.push(FaultRule::new(503).with_times(1));
    assert!(set.breaks_answers());
    // The simulator's own status check skips the reset rule.
    assert_eq!(set.take_match(&get("/user", None)), Some(503));
    assert_eq!(set.take_match(&get("/user", None)), None);
    let body = Bytes::from_static(br#"{"users":[]}"#);
    let broken = set.break_answer(&get("/user", None), false, &body, "application/json");
    assert_eq!(broken, Some(("reset", Breakage::Reset)));
    assert!(set.rules().is_empty(), "both spent");
    assert!(!set.breaks_answers());
}

#[test]
fn broken_answers_outside_the_root_need_a_path_prefix() {
    let mut set = FaultSet::default();
    set.push(FaultRule::breaking(FaultEffect::Truncate));
    let token = RequestFacts {
        method: "POST",
        api_root: "/rest/v1",
        full_path: "/rest/oauth/token",
        api_path: "/rest/oauth/token",
        query: None,
        requests: &[],
    };
    let body = Bytes::from_static(b"{}");
    assert_eq!(
        set.break_answer(&token, true, &body, "application/json"),
        None
    );
    set.push(FaultRule::breaking(FaultEffect::Truncate).with_path_prefix("/rest/oauth"));
    assert_eq!(
        set.break_answer(&token, true, &body, "application/json"),
        Some(("truncate", Breakage::Truncate))
    );
}

#[test]
fn a_repeat_needs_an_earlier_page_and_a_drift_needs_a_total() {
    let mut set = FaultSet::default();
    set.push(
        FaultRule::breaking(FaultEffect::RepeatPage)
            .with_path_prefix("/user")
            .with_query("offset=2")
            .with_times(1),
    );
    set.push(FaultRule::breaking(FaultEffect::TotalDrift { delta: 1 }).with_times(1));
    let json = "application/json";
    let no_total = Bytes::from_static(br#"{"users":[3]}"#);
    // No earlier page of /user yet, and no total: nothing applies, nothing is spent.
    assert_eq!(
        set.break_answer(&get("/user", Some("offset=2")), false, &no_total, json),
        None
    );
    assert_eq!(set.rules().len(), 2);
    let first = Bytes::from_static(br#"{"users":[1,2],"page":{"total":4}}"#);
    // Offset 0 is no repeat, but its total drifts.
    let drifted = set.break_answer(&get("/user", Some("offset=0")), false, &first, json);
    let Some(("total_drift", Breakage::Replace(body))) = drifted else {
        panic!("{drifted:?}");
    };
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["page"]["total"], 5);
    // Offset 2 gets offset 0's page (as the simulator answered it) again.
    let second = Bytes::from_static(br#"{"users":[3,4],"page":{"total":4}}"#);
    assert_eq!(
        set.break_answer(&get("/user", Some("offset=2")), false, &second, json),
        Some(("repeat_page", Breakage::Replace(first)))
    );
    assert!(set.rules().is_empty());
    assert!(
        set.pages.is_empty(),
        "pages are forgotten with the last repeat rule"
    );
}

/// Broken answers over real HTTP, from the DigiCert simulator (JSON) through reqwest.
mod over_http {
    use std::time::Duration;

    use serde_json::Value;

    use crate::{
        DigicertSeed, DigicertServer, DigicertSim, DigicertSimConfig, DuckCreekSeed, DuckCreekSim,
        DuckCreekSimConfig, FaultEffect, FaultRule, JamaSim, JamaSimConfig, SimClock, SimControl,
    };

    async fn digicert(clock: SimClock) -> DigicertServer {
        let config = DigicertSimConfig {
            seed: DigicertSeed::with_users(40),
            rate_limits: Vec::new(),
            clock,
            ..DigicertSimConfig::default()
        };
        DigicertSim::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    fn users(server: &DigicertServer, query: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(format!("{}/user?{query}", server.base_url()))
            .header("X-DC-DEVKEY", server.control().api_key())
    }

    async fn body_of(request: reqwest::RequestBuilder) -> (u16, Result<Vec<u8>, reqwest::Error>) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.map(|bytes| bytes.to_vec()))
    }

    #[tokio::test]
    async fn reset_sends_headers_and_half_a_body_then_resets_the_connection() {
        let server = digicert(SimClock::real()).await;
        let control = server.control();
        let (_, whole) = body_of(users(&server, "limit=40")).await;
        let whole = whole.unwrap();
        control
            .fail_when(FaultRule::breaking(FaultEffect::Reset).with_times(1))
            .unwrap();
        let response = users(&server, "limit=40").send().await.unwrap();
        assert_eq!(response.status(), 200, "the status and headers arrive");
        assert!(response.content_length().is_none(), "chunked");
        let error = response.bytes().await.unwrap_err();
        let chain = error_chain(&error);
        assert!(
            chain.contains("reset") || chain.contains("closed") || chain.contains("incomplete"),
            "{chain}"
        );
        assert_eq!(control.stats().faults_applied("reset"), 1);
        // Spent: the next answer is whole.
        assert_eq!(body_of(users(&server, "limit=40")).await.1.unwrap(), whole);
    }

    #[tokio::test]
    async fn truncate_declares_the_whole_length_and_sends_half() {
        let server = digicert(SimClock::real()).await;
        let control = server.control();
        let whole = body_of(users(&server, "limit=40")).await.1.unwrap();
        control
            .fail_when(
                FaultRule::breaking(FaultEffect::Truncate)
                    .with_path_prefix("/user")
                    .with_times(1),
            )
            .unwrap();
        let response = users(&server, "limit=40").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.content_length(), Some(whole.len() as u64));
        assert!(response.bytes().await.is_err(), "fewer bytes than declared");
        assert_eq!(control.stats().faults_applied("truncate"), 1);
        assert!(control.faults().is_empty());
    }

    #[tokio::test]
    async fn malformed_answers_200_with_a_body_that_is_not_json() {
        let server = digicert(SimClock::real()).await;
        let control = server.control();
        control
            .fail_when(FaultRule::breaking(FaultEffect::Malformed).with_times(1))
            .unwrap();
        let (status, body) = body_of(users(&server, "limit=5")).await;
        assert_eq!(status, 200);
        let body = body.unwrap();
        assert!(serde_json::from_slice::<Value>(&body).is_err());
        assert!(String::from_utf8_lossy(&body).contains("</malformed-by-idsync-sim>"));
        // Error answers are never broken: a 404 stays the target's error body.
        control
            .fail_when(FaultRule::breaking(FaultEffect::Malformed))
            .unwrap();
        let missing = reqwest::Client::new()
            .get(format!("{}/user/999999", server.base_url()))
            .header("X-DC-DEVKEY", control.api_key());
        let (status, body) = body_of(missing).await;
        assert_eq!(status, 404);
        assert!(serde_json::from_slice::<Value>(&body.unwrap()).is_ok());
    }

    #[tokio::test]
    async fn drip_sends_the_body_a_chunk_per_interval_of_the_simulator_clock() {
        let clock = SimClock::manual();
        let server = digicert(clock.clone()).await;
        let control = server.control();
        let whole = body_of(users(&server, "limit=3")).await.1.unwrap();
        let chunk = whole.len().div_ceil(4);
        control
            .fail_when(
                FaultRule::breaking(FaultEffect::Drip {
                    interval: Duration::from_secs(10),
                    chunk_bytes: chunk,
                })
                .with_times(1),
            )
            .unwrap();
        let mut response = users(&server, "limit=3").send().await.unwrap();
        assert_eq!(response.content_length(), Some(whole.len() as u64));
        let first = response.chunk().await.unwrap().unwrap();
        assert_eq!(first.len(), chunk, "the first chunk goes at once");
        // The rest waits on the manual clock: three more intervals.
        let mut got = first.to_vec();
        for _ in 0..3 {
            clock.until_sleeping(1).await;
            assert!(
                tokio::time::timeout(Duration::from_millis(50), response.chunk())
                    .await
                    .is_err(),
                "nothing before the clock moves"
            );
            clock.advance(Duration::from_secs(10));
            got.extend_from_slice(&response.chunk().await.unwrap().unwrap());
        }
        assert!(response.chunk().await.unwrap().is_none());
        assert_eq!(got, whole);
    }

    #[tokio::test]
    async fn repeat_page_serves_the_previous_page_and_total_drift_moves_the_total() {
        let server = digicert(SimClock::real()).await;
        let control = server.control();
        // Installed over HTTP, as a test in another process would.
        let http = reqwest::Client::new();
        let install = |rule: Value| {
            http.post(format!("{}/_sim/faults", server.origin()))
                .json(&rule)
                .send()
        };
        let rule = serde_json::json!({
            "effect": "repeat_page", "path_prefix": "/user", "query_contains": "offset=10",
            "times": 1,
        });
        assert_eq!(install(rule).await.unwrap().status(), 204);
        let drift = serde_json::json!({"effect": "total_drift", "delta": 7, "query_contains": "offset=20", "times": 1});
        assert_eq!(install(drift).await.unwrap().status(), 204);
        let bad = serde_json::json!({"effect": "drip"});
        let refused = install(bad).await.unwrap();
        assert_eq!(refused.status(), 400);
        assert!(refused.text().await.unwrap().contains("interval_ms"));
        let listed: Vec<Value> = http
            .get(format!("{}/_sim/faults", server.origin()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["effect"], "repeat_page");

        let page = |offset: u32| {
            let request = users(&server, &format!("limit=10&offset={offset}"));
            async move { serde_json::from_slice::<Value>(&body_of(request).await.1.unwrap()).unwrap() }
        };
        let first = page(0).await;
        let again = page(10).await;
        assert_eq!(again, first, "offset 10 answered with offset 0's page");
        let third = page(20).await;
        assert_eq!(third["page"]["total"], 47, "40 users, drifted by 7");
        assert_eq!(third["page"]["offset"], 20);
        assert_eq!(page(10).await["page"]["offset"], 10, "spent");
        let stats = control.stats();
        assert_eq!(
            (
                stats.faults_applied("repeat_page"),
                stats.faults_applied("total_drift")
            ),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn rewrite_sends_a_record_in_a_shape_the_target_does_not_document() {
        let server = digicert(SimClock::real()).await;
        let control = server.control();
        let id = control.users()[3].id;
        control.set_user_status(id, "inactive").unwrap();
        control
            .fail_when(
                FaultRule::breaking(FaultEffect::Rewrite {
                    find: r#""status":"inactive""#.into(),
                    replace: r#""status":"pending_review""#.into(),
                })
                .with_times(1),
            )
            .unwrap();
        let (_, body) = body_of(users(&server, "limit=40")).await;
        let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        let statuses: Vec<&str> = body["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|user| user["status"].as_str())
            .filter(|status| *status != "active")
            .collect();
        assert_eq!(statuses, ["pending_review"]);
        assert_eq!(control.stats().faults_applied("rewrite"), 1);
    }

    #[tokio::test]
    async fn the_token_endpoint_is_broken_only_by_rules_naming_its_path() {
        let server = JamaSim::start(
            JamaSimConfig {
                rate_limits: Vec::new(),
                ..JamaSimConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let control = server.control();
        let token = || {
            reqwest::Client::new()
                .post(format!("{}/rest/oauth/token", server.origin()))
                .basic_auth(
                    control.client_id(),
                    Some(secrecy::ExposeSecret::expose_secret(
                        &control.client_secret(),
                    )),
                )
                .form(&[("grant_type", "client_credentials")])
        };
        control
            .fail_when(FaultRule::breaking(FaultEffect::Malformed))
            .unwrap();
        let (status, body) = body_of(token()).await;
        assert_eq!(status, 200);
        assert!(serde_json::from_slice::<Value>(&body.unwrap()).is_ok());
        control.clear_faults();
        control
            .fail_when(
                FaultRule::breaking(FaultEffect::Malformed)
                    .with_path_prefix("/rest/oauth/token")
                    .with_times(1),
            )
            .unwrap();
        let (status, body) = body_of(token()).await;
        assert_eq!(status, 200);
        assert!(serde_json::from_slice::<Value>(&body.unwrap()).is_err());
    }

    #[tokio::test]
    async fn a_soap_call_is_picked_by_the_request_it_carries() {
        let server = DuckCreekSim::start(
            DuckCreekSimConfig {
                seed: DuckCreekSeed {
                    users: 20,
                    ..DuckCreekSeed::default()
                },
                ..DuckCreekSimConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let control = server.control();
        let call = |request: &str| {
            let body = format!(
                "<?xml version=\"1.0\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
                 <soapenv:Body><server><requests><Session.loginRq userName=\"{}\" password=\"{}\"/>{request}\
                 <Session.closeRq/></requests></server></soapenv:Body></soapenv:Envelope>",
                control.username(),
                secrecy::ExposeSecret::expose_secret(&control.password()),
            );
            reqwest::Client::new()
                .post(server.base_url())
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", "\"\"")
                .body(body)
        };
        control
            .fail_when(
                FaultRule::breaking(FaultEffect::Malformed)
                    .with_request("OnlineData.listEntityUsersRq")
                    .with_times(1),
            )
            .unwrap();
        let (status, roles) = body_of(call("<Security.listRolesRq/>")).await;
        assert_eq!(status, 200);
        assert!(!String::from_utf8_lossy(&roles.unwrap()).contains("malformed"));
        let (status, users) = body_of(call("<OnlineData.listEntityUsersRq entityID=\"1\"/>")).await;
        assert_eq!(status, 200);
        let users = String::from_utf8(users.unwrap()).unwrap();
        assert!(users.contains("</malformed-by-idsync-sim><"), "{users}");
        assert_eq!(control.stats().faults_applied("malformed"), 1);
    }

    fn error_chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text.to_lowercase()
    }
}
