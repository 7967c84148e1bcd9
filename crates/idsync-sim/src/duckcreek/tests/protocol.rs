//! The batch protocol: the login, the user list, faults for bad credentials and bad XML,
//! envelope prefixes and wrappers.

use super::*;

#[tokio::test]
async fn a_login_first_batch_lists_every_user_with_their_roles_and_entities() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let answer = client
        .call("<OnlineData.listEntityUsersRq entityID=\"1\"/>")
        .await;
    assert!(answer.body.starts_with(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope \
         xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
         <processRequestsAsDOMResponse xmlns=\"http://tempuri.org/\"><result><server><responses>"
    ));
    let responses = answer.responses();
    let names: Vec<&str> = responses.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Session.loginRs",
            "OnlineData.listEntityUsersRs",
            "Session.closeRs"
        ]
    );
    assert!(responses.iter().all(|r| r.outcome().is_ok()));
    let users = responses[1].child("Users").children.clone();
    assert_eq!(users.len(), 60);
    let listed: Vec<DcUser> = users.iter().map(listed).collect();
    assert_eq!(listed, control.users());
    assert_eq!(
        listed
            .iter()
            .filter(|u| u.status == DcUserStatus::Locked)
            .count(),
        6
    );
    assert!(listed
        .iter()
        .any(|u| u.roles.len() == 2 && !u.entities.is_empty()));
    // Users without roles come both with an empty <Roles/> and without one.
    let roleless: Vec<&Node> = users
        .iter()
        .filter(|u| u.find("Roles").is_none_or(|r| r.children.is_empty()))
        .collect();
    assert!(
        roleless.iter().any(|u| u.find("Roles").is_some()),
        "an empty <Roles/>"
    );
    assert!(
        roleless.iter().any(|u| u.find("Roles").is_none()),
        "no <Roles>"
    );

    // Another entity lists its members; an unknown one fails.
    let labs = control
        .entities()
        .into_iter()
        .find(|e| e.name == "R&D <Labs>")
        .unwrap();
    let members = client.users(labs.id).await;
    let expected: Vec<u64> = control
        .users()
        .iter()
        .filter(|u| u.entities.contains(&labs.name))
        .map(|u| u.id)
        .collect();
    assert!(!expected.is_empty());
    let ids: Vec<u64> = members
        .iter()
        .map(|u| u.attr("id").parse().unwrap())
        .collect();
    assert_eq!(ids, expected);
    let failures = client
        .batch(
            "<OnlineData.listEntityUsersRq entityID=\"999\"/>\
             <OnlineData.listEntityUsersRq entityID=\"one\"/>\
             <OnlineData.listEntityUsersRq/>",
        )
        .await;
    assert_eq!(failures[0].failure_code(), "EntityNotFound");
    assert_eq!(failures[1].failure_code(), "InvalidRequest");
    let (code, text) = failures[2].outcome().unwrap_err();
    assert_eq!(code, "InvalidRequest");
    assert!(text.contains("entityID"), "{text}");
    assert!(failures[0].find("Users").is_none());
}

#[tokio::test]
async fn bad_credentials_are_a_client_fault_that_never_shows_the_password() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let wrong = "not-the-Pa55word";
    for requests in [
        login(&client.username, wrong),
        login("someone-else", &client.password),
        format!("<Session.loginRq userName=\"{}\"/>", client.username),
        format!(
            "{}<Security.listRolesRq/>{}",
            client.login(),
            login(&client.username, wrong)
        ),
    ] {
        let answer = client.post(envelope("soapenv", &requests)).await;
        assert_eq!(answer.status, 500, "{requests}");
        let (code, message) = answer.fault();
        assert_eq!(code, "soap:Client");
        assert!(message.starts_with("Login failed: invalid user name or password"));
        assert!(!answer.body.contains(wrong) && !answer.body.contains(&client.password));
        assert!(answer.body.contains("code=\"LoginFailed\""));
    }
    assert_eq!(control.stats().login_failures, 4);
    assert_eq!(control.stats().responses_401, 0);

    control.revoke_credentials();
    let revoked = client.call("").await;
    assert_eq!(
        (revoked.status, revoked.fault().0.as_str()),
        (500, "soap:Client")
    );
    assert!(!revoked.body.contains(&client.password));
    control.restore_credentials();
    assert!(!control.credentials_revoked());
    assert_eq!(client.call("").await.status, 200);
}

#[tokio::test]
async fn a_batch_starts_with_a_login_and_a_closed_session_refuses_work() {
    let server = start(config()).await;
    let client = Client::new(&server);
    let missing = client
        .post(envelope("soapenv", "<Security.listRolesRq/>"))
        .await;
    assert_eq!(missing.status, 500);
    let (code, message) = missing.fault();
    assert_eq!(code, "soap:Client");
    assert!(message.contains("Session.loginRq"), "{message}");

    let empty = client.post(envelope("soapenv", "")).await;
    assert!(
        empty.responses().is_empty(),
        "an empty batch needs no login"
    );

    let after_close = client
        .post(envelope(
            "soapenv",
            &format!(
                "{0}<Session.closeRq/><Security.listRolesRq/>{0}<Security.listRolesRq/>",
                client.login()
            ),
        ))
        .await
        .responses();
    assert_eq!(after_close[2].failure_code(), "NotLoggedIn");
    assert_eq!(after_close[4].outcome(), Ok(()));
}

#[tokio::test]
async fn malformed_or_foreign_requests_are_refused_without_echoing_them() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let login = client.login();
    for body in [
        envelope(
            "soapenv",
            &format!("{login}<OnlineData.listEntitiesRq></OnlineData.listRolesRq>"),
        ),
        envelope("soapenv", &format!("{login}<OnlineData.listEntitiesRq>")),
        envelope("soapenv", &login.replace("password=", "password")),
        format!(
            "<!DOCTYPE soapenv:Envelope [<!ENTITY pw \"x\">]>{}",
            envelope("soapenv", &login)
        ),
        envelope(
            "soapenv",
            &format!("{login}<OnlineData.listEntitiesRq name=\"&pw;\"/>"),
        ),
    ] {
        let answer = client.post(body.clone()).await;
        assert_eq!(answer.status, 500, "{body}");
        let (code, message) = answer.fault();
        assert_eq!(code, "soap:Client");
        assert!(
            message.starts_with("The request XML is malformed"),
            "{message}"
        );
        assert!(!answer.body.contains(&client.password), "{}", answer.body);
        assert!(answer.body.contains("code=\"MalformedXml\""));
    }
    let doctype = client
        .post(format!("<!DOCTYPE x>{}", envelope("s", &login)))
        .await;
    assert!(doctype.fault().1.contains("DOCTYPE"));

    let not_soap = client
        .post(format!("<server><requests>{login}</requests></server>"))
        .await;
    assert_eq!(
        (not_soap.status, not_soap.fault().0.as_str()),
        (500, "soap:Client")
    );
    let soap12 = client
        .post(envelope("e", &login).replace(
            "http://schemas.xmlsoap.org/soap/envelope/",
            "http://www.w3.org/2003/05/soap-envelope",
        ))
        .await;
    assert_eq!(
        (soap12.status, soap12.fault().0.as_str()),
        (500, "soap:VersionMismatch")
    );
    // Saviynt's published package sends Content-Type only: no SOAPAction is needed.
    for action in [None, Some("\"\""), Some(""), Some("\"urn:anything\"")] {
        let mut headers = vec![("content-type", "text/xml")];
        headers.extend(action.map(|value| ("soapaction", value)));
        let answer = client.post_with(envelope("s", &login), &headers).await;
        assert_eq!(answer.status, 200, "SOAPAction {action:?}: {}", answer.body);
    }
    for content_type in ["application/soap+xml; charset=utf-8", "application/json"] {
        let answer = client
            .post_with(
                envelope("s", &login),
                &[("content-type", content_type), ("soapaction", "")],
            )
            .await;
        assert_eq!(answer.status, 415, "{content_type}");
    }
    let get = client.http.get(&client.url).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let elsewhere = client
        .http
        .post(format!("{}/Server/Other.asmx", client.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status().as_u16(), 404);
    // IIS paths ignore letter case.
    let lower = client
        .http
        .post(format!("{}/server/server.asmx", client.origin))
        .header("content-type", "text/xml")
        .header("soapaction", "")
        .body(envelope("s", &login))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    let stats = control.stats();
    assert_eq!(stats.route(api::ROUTE), 15);
    assert_eq!(stats.route("unmatched"), 1, "the GET");
}

#[tokio::test]
async fn any_envelope_prefix_and_the_process_requests_wrapper_work() {
    let server = start(DuckCreekSimConfig {
        envelope_prefix: "SOAP-ENV".into(),
        ..config()
    })
    .await;
    let client = Client::new(&server);
    let requests = format!(
        "{}<Security.listRolesRq/><Session.closeRq/>",
        client.login()
    );
    let bodies = [
        envelope("s", &requests),
        format!(
            "<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\"><Body><server>\
             <requests>{requests}</requests></server></Body></Envelope>"
        ),
        format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header/>\
             <soap:Body><processRequestsAsDOM xmlns=\"http://tempuri.org/\"><server><requests>\
             {requests}</requests></server></processRequestsAsDOM></soap:Body></soap:Envelope>"
        ),
        format!(
            "<a:Envelope xmlns:a=\"http://schemas.xmlsoap.org/soap/envelope/\"><a:Body>\
             <b:processRequestsAsDOM xmlns:b=\"urn:b\"><b:server><b:requests>{}\
             <b:Security.listRolesRq/></b:requests></b:server></b:processRequestsAsDOM></a:Body></a:Envelope>",
            client.login()
        ),
    ];
    for body in bodies {
        let answer = client.post(body.clone()).await;
        assert!(
            answer.body.contains("<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Body>"),
            "{}",
            answer.body
        );
        let responses = answer.responses();
        assert_eq!(responses[1].name, "Security.listRolesRs", "{body}");
        assert_eq!(responses[1].child("Roles").children.len(), 12);
    }
    let fault = client.post(envelope("s", "<Security.listRolesRq/>")).await;
    assert_eq!(fault.fault().0, "SOAP-ENV:Client");
    assert_eq!(server.control().envelope_prefix(), "SOAP-ENV");
    let fallback = DuckCreekSim::new(DuckCreekSimConfig {
        envelope_prefix: "no good".into(),
        ..config()
    });
    assert_eq!(fallback.control().envelope_prefix(), "soap");
}

#[tokio::test]
async fn a_server_that_requires_the_wrapper_faults_on_a_bare_server_document() {
    let server = start(DuckCreekSimConfig {
        require_wrapper: true,
        ..config()
    })
    .await;
    let client = Client::new(&server);
    let requests = format!(
        "{}<Security.listRolesRq/><Session.closeRq/>",
        client.login()
    );
    let bare = client.post(envelope("soap", &requests)).await;
    assert_eq!(bare.status, 500);
    let (code, text) = bare.fault();
    assert_eq!(code, "soap:Client");
    assert!(text.contains("processRequestsAsDOM"), "{text}");
    let wrapped = client
        .post(format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
             <w:processRequestsAsDOM xmlns:w=\"http://tempuri.org/\"><server><requests>\
             {requests}</requests></server></w:processRequestsAsDOM></soap:Body></soap:Envelope>"
        ))
        .await;
    assert_eq!(wrapped.status, 200, "{}", wrapped.body);
    assert_eq!(wrapped.responses()[1].name, "Security.listRolesRs");
}

#[tokio::test]
async fn a_server_that_requires_soap_action_faults_without_one() {
    let server = start(DuckCreekSimConfig {
        require_soap_action: true,
        ..config()
    })
    .await;
    let client = Client::new(&server);
    let login = format!("{}<Session.closeRq/>", client.login());
    let missing = client
        .post_with(envelope("s", &login), &[("content-type", "text/xml")])
        .await;
    assert_eq!(
        (missing.status, missing.fault().0.as_str()),
        (500, "soap:Client")
    );
    assert!(missing.fault().1.contains("SOAPAction"), "{}", missing.body);
    for action in ["\"\"", ""] {
        let sent = client
            .post_with(
                envelope("s", &login),
                &[("content-type", "text/xml"), ("soapaction", action)],
            )
            .await;
        assert_eq!(sent.status, 200, "SOAPAction {action:?}: {}", sent.body);
    }
}
