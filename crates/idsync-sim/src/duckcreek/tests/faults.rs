//! Injected trouble: broken responses, HTTP faults, latency, rate windows.

use std::time::Duration;

use super::*;

const LIST_USERS: &str = "<OnlineData.listEntityUsersRq entityID=\"1\"/>";
const LIST_ROLES: &str = "<Security.listRolesRq/>";

#[tokio::test]
async fn truncate_cuts_the_body_in_half_for_the_named_request_only() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let whole = client.call(LIST_USERS).await;
    control
        .break_response(
            ResponseFault::Truncate,
            Some("OnlineData.listEntityUsersRq".into()),
            Some(1),
        )
        .unwrap();
    assert_eq!(client.call(LIST_ROLES).await.status, 200);
    assert!(parse_xml(&client.call(LIST_ROLES).await.body).is_ok());
    let cut = client.call(LIST_USERS).await;
    assert_eq!(cut.status, 200);
    assert_eq!(cut.content_type, "text/xml; charset=utf-8");
    let half = whole.body.len() / 2;
    assert!(
        (half - 3..=half).contains(&cut.body.len()),
        "{} of {}",
        cut.body.len(),
        whole.body.len()
    );
    assert!(whole.body.starts_with(&cut.body));
    assert!(parse_xml(&cut.body).is_err());
    assert!(control.response_faults().is_empty(), "spent");
    assert_eq!(client.call(LIST_USERS).await.body, whole.body);
}

#[tokio::test]
async fn an_entity_bomb_is_a_doctype_referenced_in_the_user_list() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let normal = client.call(LIST_USERS).await.body;
    control
        .break_response(ResponseFault::EntityBomb, None, Some(2))
        .unwrap();
    let bomb = client.call(LIST_USERS).await;
    assert_eq!(bomb.status, 200);
    assert!(bomb
        .body
        .contains("<!DOCTYPE soap:Envelope [<!ENTITY lol \"lol\">"));
    assert!(bomb.body.contains("<!ENTITY lol9 \"&lol8;&lol8;"));
    assert!(bomb.body.contains("<Users><User id=\"0\" name=\"&lol9;\""));
    assert!(
        bomb.body.len() < normal.len() + 1_000,
        "small until expanded"
    );
    assert_eq!(parse_xml(&bomb.body).unwrap_err(), "DOCTYPE refused");
    // Without a user list, the reference sits in responses.
    let other = client.call(LIST_ROLES).await;
    assert!(other.body.contains("<responses>&lol9;"));
    assert!(
        parse_xml(&client.call(LIST_ROLES).await.body).is_ok(),
        "times = 2"
    );
}

#[tokio::test]
async fn malformed_puts_a_mismatched_tag_in_the_middle_of_the_users() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    control
        .break_response(
            ResponseFault::Malformed,
            Some("OnlineData.listEntityUsersRq".into()),
            None,
        )
        .unwrap();
    for _ in 0..2 {
        let broken = client.call(LIST_USERS).await;
        assert_eq!(broken.status, 200);
        let at = broken.body.find("</Role>").unwrap();
        let users_before = broken.body[..at].matches("<User ").count();
        assert!(
            (25..=35).contains(&users_before),
            "{users_before} users before it"
        );
        let error = parse_xml(&broken.body).unwrap_err();
        assert!(error.contains("Role"), "{error}");
    }
    assert_eq!(control.response_faults().len(), 1, "until cleared");
    control.clear_response_faults();
    assert!(parse_xml(&client.call(LIST_USERS).await.body).is_ok());
}

#[tokio::test]
async fn html_is_an_error_page_with_status_200() {
    let server = start(config()).await;
    let client = Client::new(&server);
    server
        .control()
        .break_response(ResponseFault::Html, None, Some(1))
        .unwrap();
    let page = client.call(LIST_ROLES).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert!(page.body.starts_with("<!DOCTYPE html>"));
    assert!(page.body.contains("Service Unavailable"));
    assert_eq!(
        client.call(LIST_ROLES).await.content_type,
        "text/xml; charset=utf-8"
    );
}

#[tokio::test]
async fn a_failure_answers_the_named_request_and_skips_its_work() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let user = control.users()[3].clone();
    control
        .break_response(
            ResponseFault::Failure {
                code: "Busy".into(),
                text: "Try <later> & again".into(),
            },
            Some("Security.lockUserAccountRq".into()),
            Some(2),
        )
        .unwrap();
    let lock = format!("<Security.lockUserAccountRq userName=\"{}\"/>", user.name);
    let responses = client
        .batch(&format!("{LIST_ROLES}{lock}{lock}{lock}"))
        .await;
    assert_eq!(responses[0].outcome(), Ok(()));
    for failed in &responses[1..3] {
        assert_eq!(
            failed.outcome(),
            Err(("Busy".into(), "Try <later> & again".into()))
        );
    }
    assert_eq!(responses[3].outcome(), Ok(()), "times = 2");
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Locked);

    // Unnamed: every request but the session ones, until cleared.
    control.set_status(user.id, DcUserStatus::Active).unwrap();
    let (status, _) = client
        .admin(
            reqwest::Method::POST,
            "/_sim/response_faults",
            Some(serde_json::json!({"kind": "failure", "code": "Down"})),
        )
        .await;
    assert_eq!(status, 204);
    let responses = client.batch(&format!("{LIST_ROLES}{lock}")).await;
    assert!(responses.iter().all(|r| r.failure_code() == "Down"));
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Active);
    // A failed login leaves the session closed.
    control.clear_response_faults();
    control
        .break_response(
            ResponseFault::Failure {
                code: "SessionLimit".into(),
                text: "Too many sessions.".into(),
            },
            Some(batch::LOGIN.into()),
            Some(1),
        )
        .unwrap();
    let responses = client.call(LIST_ROLES).await.responses();
    assert_eq!(responses[0].failure_code(), "SessionLimit");
    assert_eq!(responses[1].failure_code(), "NotLoggedIn");
    assert!(control
        .break_response(
            ResponseFault::Failure {
                code: String::new(),
                text: String::new()
            },
            None,
            None
        )
        .is_err());
}

#[tokio::test]
async fn response_faults_over_http_are_listed_and_cleared() {
    let server = start(config()).await;
    let client = Client::new(&server);
    let rule =
        serde_json::json!({"kind": "truncate", "request": "Security.listRolesRq", "times": 3});
    let (status, _) = client
        .admin(
            reqwest::Method::POST,
            "/_sim/response_faults",
            Some(rule.clone()),
        )
        .await;
    assert_eq!(status, 204);
    let (status, listed) = client
        .admin(reqwest::Method::GET, "/_sim/response_faults", None)
        .await;
    assert_eq!((status, listed), (200, serde_json::json!([rule])));
    let (status, error) = client
        .admin(
            reqwest::Method::POST,
            "/_sim/response_faults",
            Some(serde_json::json!({"kind": "explode"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("explode"));
    let (status, _) = client
        .admin(reqwest::Method::DELETE, "/_sim/response_faults", None)
        .await;
    assert_eq!(status, 204);
    assert!(server.control().response_faults().is_empty());
}

#[tokio::test]
async fn fault_rules_pick_batches_by_request_and_5xx_is_a_server_fault() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let user = control.users()[5].clone();
    let lock = format!("<Security.lockUserAccountRq userName=\"{}\"/>", user.name);
    control
        .fail_when(
            FaultRule::new(503)
                .with_request("Security.lockUserAccountRq")
                .with_times(1),
        )
        .unwrap();
    assert_eq!(client.call(LIST_USERS).await.status, 200);
    let failed = client.call(&lock).await;
    assert_eq!(failed.status, 503);
    let (code, message) = failed.fault();
    assert_eq!(code, "soap:Server");
    assert!(!message.is_empty());
    assert_eq!(
        control.user(user.id).unwrap().status,
        user.status,
        "not run"
    );
    assert_eq!(client.call(&lock).await.status, 200, "spent");
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Locked);

    control.fail_next(1, 400).unwrap();
    let client_fault = client.call(LIST_ROLES).await;
    assert_eq!(
        (client_fault.status, client_fault.fault().0.as_str()),
        (400, "soap:Client")
    );
    control.fail_next(1, 500).unwrap();
    let server_fault = client.call(LIST_ROLES).await;
    assert_eq!(
        (server_fault.status, server_fault.fault().0.as_str()),
        (500, "soap:Server")
    );
    // fail_next hits every call, even one the simulator could not read.
    control.fail_next(1, 502).unwrap();
    assert_eq!(client.post("<broken".into()).await.status, 502);
    assert_eq!(client.post("<broken".into()).await.status, 500);

    let (status, _) = client
        .admin(
            reqwest::Method::POST,
            "/_sim/faults",
            Some(serde_json::json!({"request": "Security.listRolesRq", "status": 504, "times": 1})),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(client.call(LIST_USERS).await.status, 200);
    assert_eq!(client.call(LIST_ROLES).await.status, 504);
    assert!(control.faults().is_empty());
    let stats = control.stats();
    assert_eq!(stats.responses_5xx, 5);
    assert_eq!(stats.by_status.get(&503), Some(&1));
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let clock = SimClock::manual();
    let server = start(DuckCreekSimConfig {
        latency: Duration::from_millis(120),
        clock: clock.clone(),
        ..config()
    })
    .await;
    let control = server.control();
    let client = std::sync::Arc::new(Client::new(&server));
    let roles = envelope(
        "soapenv",
        &format!("{}{LIST_ROLES}<Session.closeRq/>", client.login()),
    );
    // A good call and a broken one: each waits on the simulator's clock for exactly the
    // latency, unanswered, and is answered once the clock has moved that far.
    for (answered, (body, status)) in [(roles, 200), ("<broken".to_owned(), 500)]
        .into_iter()
        .enumerate()
    {
        let mut answer = tokio::spawn({
            let client = client.clone();
            async move { client.post(body).await.status }
        });
        until_waiting(&clock, 1, &mut answer).await;
        assert_eq!(clock.sleeping(), [Duration::from_millis(120)]);
        assert_eq!(control.stats().requests, answered as u64);
        clock.advance(Duration::from_millis(120));
        assert_eq!(answer.await.unwrap(), status);
    }
    control.set_latency(Duration::ZERO);
    assert_eq!(control.latency(), Duration::ZERO);
    assert_eq!(
        client.call(LIST_ROLES).await.status,
        200,
        "no clock advance needed"
    );
}

#[tokio::test]
async fn rate_windows_answer_bare_429s() {
    let clock = SimClock::manual();
    let server = start(DuckCreekSimConfig {
        rate_limits: vec![RateWindow::new(2, Duration::from_millis(400))],
        clock: clock.clone(),
        ..config()
    })
    .await;
    let control = server.control();
    let client = Client::new(&server);
    assert_eq!(client.call(LIST_ROLES).await.status, 200);
    assert_eq!(client.call(LIST_ROLES).await.status, 200);
    let limited = client.call(LIST_ROLES).await;
    assert_eq!(limited.status, 429);
    assert!(limited.body.is_empty());
    clock.advance(Duration::from_millis(399));
    assert_eq!(
        client.call(LIST_ROLES).await.status,
        429,
        "still inside the window"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(client.call(LIST_ROLES).await.status, 200);
    assert_eq!(control.stats().responses_429, 2);
    assert_eq!(
        control.rate_limits(),
        [RateWindow::new(2, Duration::from_millis(400))]
    );
    control.set_rate_limits(Vec::new());
    assert!(
        DuckCreekSimConfig::default().rate_limits.is_empty(),
        "the sheet names none"
    );
}
