//! Unit tests of the Duck Creek adapter: mapping on recorded elements, batches, faults and
//! provisioning against wiremock.

use futures::TryStreamExt;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::batch::Item;
use super::wire::{map_entity, map_privilege, map_role, map_user, map_user_grants, Catalogue};
use super::*;
use crate::connector::kit::testing::{
    already_done, assert_error, done, provisioned, read_error, refused, target_config,
};
use crate::connector::soap::SOAP_1_1;
use crate::connector::xml::{escape, Element};
use crate::connector::{Connector, ErrorClass, ProvisionRequest};
use crate::model::{AccountRecord, AccountStatus, EntitlementRecord, GrantRecord};

const PASSWORD: &str = "dc-PASS&<word>-UNMISTAKABLE";

/// A Duck Creek answer around `responses` (login and close answered), with the
/// envelope prefix `s:` and the ASMX default namespace on the wrapper.
fn answer(responses: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_1_1}"><s:Body>
        <processRequestsAsDOMResponse xmlns="http://tempuri.org/"><result><server><responses>
        <Session.loginRs status="Success"/>{responses}<Session.closeRs status="Success"/>
        </responses></server></result></processRequestsAsDOMResponse></s:Body></s:Envelope>"#
    )
}

fn xml(status: u16, body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), "text/xml; charset=utf-8")
}

fn user_xml(id: u32, status: &str) -> String {
    format!(
        r#"<User id="{id}" name="user{id}" email="user{id}@example.com" fullName="User &apos;{id}&apos;" status="{status}" department="R&amp;D">
          <UserEntityMemberships><UserEntityMembership entityName="Branch {id}"/></UserEntityMemberships>
          <Roles><Role name="Underwriter"/><Role name="underwriter admin"/></Roles></User>"#
    )
}

fn users_answer(count: u32) -> String {
    let users: String = (1..=count)
        .map(|id| user_xml(id, if id % 3 == 0 { "Locked" } else { "Active" }))
        .collect();
    answer(&format!(
        r#"<OnlineData.listEntityUsersRs status="Success"><Users>{users}</Users></OnlineData.listEntityUsersRs>"#
    ))
}

fn catalogue_answer() -> String {
    answer(
        r#"<Security.listRolesRs status="Success"><Roles>
             <Role id="10" name="Underwriter" description="Writes &quot;policies&quot;"><Privileges><Privilege id="1" name="x"/></Privileges></Role>
             <Role id="11" name="Underwriter Admin"/></Roles></Security.listRolesRs>
           <OnlineData.listEntitiesRs status="Success"><Entities>
             <Entity id="1" name="Home"/><Agency id="2" name="Branch 1"/><Entity id="3" name="Branch 2"/>
           </Entities></OnlineData.listEntitiesRs>
           <Security.listPrivilegesRs status="Success"><Privileges>
             <Privilege id="100" name="Quote" description="Create quotes" type="Action"/>
           </Privileges></Security.listPrivilegesRs>"#,
    )
}

fn config(base: &str, extra: &str) -> TargetConfig {
    let base_url = format!("{base}/Server/Server.asmx");
    let password = PASSWORD.replace('\\', "\\\\");
    let login = format!("username = \"svc_idsync\"\npassword = \"{password}\"\n{extra}");
    target_config("duckcreek", &base_url, &login)
}

fn connector(server: &MockServer, extra: &str) -> DuckCreekConnector {
    DuckCreekConnector::build("dc", &config(&server.uri(), extra)).unwrap()
}

fn body_of(request: &Request) -> String {
    String::from_utf8_lossy(&request.body).into_owned()
}

fn assert_no_password(text: &str) {
    assert!(
        !text.contains("UNMISTAKABLE"),
        "the password leaked: {text}"
    );
}

fn element(local: &str, attributes: &[(&str, &str)]) -> Element {
    Element {
        local: local.into(),
        namespace: None,
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        empty: true,
    }
}

#[test]
fn maps_users_with_locked_as_inactive_and_refuses_unknown_statuses() {
    let item = Item {
        element: element(
            "User",
            &[
                ("id", "7"),
                ("name", "jdoe"),
                ("email", "j@example.com"),
                ("fullName", "Jane Doe"),
                ("status", "Locked"),
                ("branch", "East"),
            ],
        ),
        ..Item::default()
    };
    let record = map_user("dc", &item).unwrap();
    assert_eq!(
        (record.id.as_str(), record.name.as_str(), record.status),
        ("7", "jdoe", AccountStatus::Inactive)
    );
    assert_eq!(record.display_name.as_deref(), Some("Jane Doe"));
    assert_eq!(record.email.as_deref(), Some("j@example.com"));
    assert_eq!(
        Value::Object(record.attributes),
        json!({ "status": "Locked", "branch": "East" })
    );
    let active = Item {
        element: element("User", &[("id", "8"), ("name", "a"), ("status", "active")]),
        ..Item::default()
    };
    assert_eq!(
        map_user("dc", &active).unwrap().status,
        AccountStatus::Active
    );
    for (attributes, wanted) in [
        (
            vec![("id", "9"), ("name", "b"), ("status", "Disabled")],
            "status \"Disabled\"",
        ),
        (vec![("id", "9"), ("name", "b")], "has no status"),
        (vec![("name", "b"), ("status", "Active")], "no `id`"),
        (
            vec![("id", "9"), ("name", " "), ("status", "Active")],
            "no `name`",
        ),
    ] {
        let item = Item {
            element: element("User", &attributes),
            ..Item::default()
        };
        let err = map_user("dc", &item).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(err.to_string().contains(wanted), "{err}");
    }
}

#[test]
fn maps_the_catalogue_and_resolves_grant_names() {
    let role = map_role(
        "dc",
        &element(
            "Role",
            &[("id", "10"), ("name", "Underwriter"), ("description", "d")],
        ),
    )
    .unwrap();
    assert_eq!(
        (role.entitlement_type.as_str(), role.id.as_str()),
        ("Role", "10")
    );
    assert_eq!(
        Value::Object(role.attributes.clone()),
        json!({ "description": "d" })
    );
    let agency = map_entity("dc", &element("Agency", &[("id", "2"), ("name", "B")])).unwrap();
    assert_eq!(
        Value::Object(agency.attributes),
        json!({ "element": "Agency" })
    );
    let privilege = map_privilege(
        "dc",
        &element(
            "Privilege",
            &[("id", "1"), ("name", "Q"), ("type", "Action")],
        ),
    )
    .unwrap();
    assert_eq!(privilege.entitlement_type, "Privilege");
    assert_eq!(
        Value::Object(privilege.attributes),
        json!({ "type": "Action" })
    );

    let mut catalogue = Catalogue::default();
    catalogue.roles.insert("dc", &role).unwrap();
    let item = Item {
        element: element("User", &[("id", "7")]),
        roles: vec!["Underwriter".into(), "UNDERWRITER".into(), "Ghost".into()],
        entities: vec!["Home".into()],
    };
    let grants = map_user_grants("dc", &catalogue, &item).unwrap();
    let ids: Vec<(&str, &str)> = grants
        .iter()
        .map(|g| (g.entitlement_type.as_str(), g.entitlement_id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("Role", "10"),
            ("Role", "10"),
            ("Role", "Ghost"),
            ("Entity", "Home")
        ]
    );
    let twin = EntitlementRecord {
        id: "12".into(),
        ..role.clone()
    };
    let err = catalogue.roles.insert("dc", &twin).unwrap_err();
    assert!(err.to_string().contains("used by ids 10 and 12"), "{err}");
}

#[tokio::test]
async fn streams_users_in_pages_from_one_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/Server/Server.asmx"))
        .and(header("Content-Type", "text/xml; charset=utf-8"))
        .and(body_string_contains(
            "<OnlineData.listEntityUsersRq entityID=\"1\"/>",
        ))
        .respond_with(xml(200, users_answer(7)))
        .expect(1)
        .mount(&server)
        .await;
    let connector = connector(&server, "page_size = 3");
    let pages: Vec<Vec<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let third = &pages[0][2];
    assert_eq!(
        (third.name.as_str(), third.status),
        ("user3", AccountStatus::Inactive)
    );
    assert_eq!(third.display_name.as_deref(), Some("User '3'"));
    assert_eq!(third.attributes["department"], "R&D");
    let requests = server.received_requests().await.unwrap();
    let body = body_of(&requests[0]);
    // Login first, escaped; close last.
    let login = format!(
        "<Session.loginRq userName=\"svc_idsync\" password=\"{}\"/>",
        escape(PASSWORD)
    );
    assert!(
        body.contains(&format!("<server><requests>{login}")),
        "{body}"
    );
    assert!(
        body.ends_with("<Session.closeRq/></requests></server></soapenv:Body></soapenv:Envelope>")
    );
}

#[tokio::test]
async fn reads_roles_entities_and_privileges_then_grants_by_name() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains(LIST_ROLES))
        .respond_with(xml(200, catalogue_answer()))
        .mount(&server)
        .await;
    Mock::given(body_string_contains(LIST_USERS))
        .respond_with(xml(200, users_answer(2)))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let records: Vec<EntitlementRecord> = connector
        .entitlements()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .concat();
    let keys: Vec<String> = records
        .iter()
        .map(|r| format!("{}:{}:{}", r.entitlement_type, r.id, r.name))
        .collect();
    assert_eq!(
        keys,
        [
            "Role:10:Underwriter",
            "Role:11:Underwriter Admin",
            "Entity:1:Home",
            "Entity:2:Branch 1",
            "Entity:3:Branch 2",
            "Privilege:100:Quote"
        ]
    );
    assert_eq!(records[0].attributes["description"], "Writes \"policies\"");

    let grants: Vec<GrantRecord> = connector
        .grants()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .concat();
    let keys: Vec<String> = grants
        .iter()
        .map(|g| {
            format!(
                "{}:{}:{}",
                g.account_id, g.entitlement_type, g.entitlement_id
            )
        })
        .collect();
    // Roles before entities; "underwriter admin" matches role 11 without letter case.
    assert_eq!(
        keys,
        [
            "1:Role:10",
            "1:Role:11",
            "1:Entity:2",
            "2:Role:10",
            "2:Role:11",
            "2:Entity:3"
        ]
    );
    assert_eq!(grants[2].entitlement_name.as_deref(), Some("Branch 1"));
}

#[tokio::test]
async fn a_refused_login_is_an_auth_error_without_the_password() {
    for response in [
        xml(
            500,
            format!(
                r#"<soapenv:Envelope xmlns:soapenv="{SOAP_1_1}"><soapenv:Body><soapenv:Fault>
                <faultcode>soapenv:Client</faultcode><faultstring>Login failed for svc_idsync / {}</faultstring>
                </soapenv:Fault></soapenv:Body></soapenv:Envelope>"#,
                escape(PASSWORD)
            ),
        ),
        xml(
            200,
            answer("").replace(
                r#"<Session.loginRs status="Success"/>"#,
                r#"<Session.loginRs status="Failure"><Errors><Error code="InvalidLogin" text="bad password"/></Errors></Session.loginRs>"#,
            ),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(response).mount(&server).await;
        let connector = connector(&server, "");
        let err = read_error(connector.accounts()).await;
        assert_eq!(err.class(), ErrorClass::Auth, "{err}");
        assert!(err.to_string().contains("svc_idsync"), "{err}");
        assert_no_password(&format!("{err} {err:?} {connector:?}"));
        // Not retried: an auth failure does not go away.
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_failed_list_a_truncated_answer_and_a_bomb_are_clear_errors() {
    let failed = answer(
        r#"<OnlineData.listEntityUsersRs status="Failure"><Errors><Error code="EntityNotFound" text="No entity 9"/></Errors></OnlineData.listEntityUsersRs>"#,
    );
    let full = users_answer(40);
    let truncated = full[..full.len() / 2].to_string();
    let mismatched = full.replacen("</Roles></User>", "</Role></User>", 1);
    let bomb = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>{}",
        full.replacen("<?xml version=\"1.0\" encoding=\"utf-8\"?>", "", 1)
    );
    let wrong_answer =
        answer(r#"<Security.listRolesRs status="Success"><Roles/></Security.listRolesRs>"#);
    let no_users = answer(r#"<OnlineData.listEntityUsersRs status="Success"/>"#);
    for (body, wanted) in [
        (
            failed,
            "OnlineData.listEntityUsersRq failed: EntityNotFound: No entity 9 (check entity_id)",
        ),
        (truncated, "ends early"),
        (mismatched, "not well-formed"),
        (bomb, "DOCTYPE"),
        (
            wrong_answer,
            "expected <OnlineData.listEntityUsersRs>, found <Security.listRolesRs>",
        ),
        (no_users, "holds no <Users>"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(200, body))
            .mount(&server)
            .await;
        let connector = connector(&server, "page_size = 5");
        let err = read_error(connector.accounts()).await;
        assert_eq!(err.class(), ErrorClass::Permanent, "{wanted}: {err}");
        assert!(err.to_string().contains(wanted), "{wanted}: {err}");
    }
}

#[tokio::test]
async fn an_empty_user_list_is_no_pages() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml(
            200,
            answer(r#"<OnlineData.listEntityUsersRs status="Success"><Users/></OnlineData.listEntityUsersRs>"#),
        ))
        .mount(&server)
        .await;
    let pages: Vec<Vec<AccountRecord>> = connector(&server, "")
        .accounts()
        .try_collect()
        .await
        .unwrap();
    assert!(pages.is_empty());
}

fn request(
    operation: Operation,
    entitlement: Option<(&str, &str, &str)>,
    attributes: Value,
) -> ProvisionRequest {
    ProvisionRequest {
        operation,
        account_id: Some("1001".into()),
        account_name: "o'brien & co".into(),
        entitlement: entitlement.map(|(kind, id, _)| (kind.to_string(), id.to_string())),
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        entitlement_name: entitlement.map(|(_, _, name)| name.to_string()),
        task_id: Some(5),
        request_id: None,
    }
}

#[tokio::test]
async fn lock_and_unlock_send_the_templates_and_judge_the_status() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains("Security.lockUserAccountRq"))
        .respond_with(xml(
            200,
            answer(r#"<Security.lockUserAccountRs status="Success"/>"#),
        ))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("Security.unlockUserAccountRq"))
        .respond_with(xml(
            200,
            answer(r#"<Security.unlockUserAccountRs status="Failure"><Errors><Error code="UserNotFound" text="No such user"/></Errors></Security.unlockUserAccountRs>"#),
        ))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let outcome = provisioned(
        &connector,
        &request(Operation::DisableAccount, None, json!({})),
    )
    .await;
    assert_eq!(outcome, done(None));
    let body = body_of(&server.received_requests().await.unwrap()[0]);
    assert!(
        body.contains(r#"<Security.lockUserAccountRq userID="1001" userName="o&apos;brien &amp; co"/><Session.closeRq/>"#),
        "{body}"
    );
    let err = refused(
        &connector,
        &request(Operation::EnableAccount, None, json!({})),
    )
    .await;
    assert_error(
        &err,
        ErrorClass::Permanent,
        "Security.unlockUserAccountRq failed: UserNotFound: No such user",
    );
    // A write is sent once, whatever comes back.
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn grants_and_revokes_count_already_in_place_as_done() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains("Security.addUserRoleRq"))
        .respond_with(xml(
            200,
            answer(r#"<Security.addUserRoleRs status="Failure"><Errors><Error code="AlreadyAssigned" text="has it"/></Errors></Security.addUserRoleRs>"#),
        ))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("OnlineData.removeEntityMembershipRq"))
        .respond_with(xml(
            200,
            answer(r#"<OnlineData.removeEntityMembershipRs status="Success"/>"#),
        ))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("OnlineData.addEntityMembershipRq"))
        .respond_with(xml(
            200,
            answer(r#"<OnlineData.addEntityMembershipRs status="Failure"><Errors><Error code="NotAssigned" text="?"/></Errors></OnlineData.addEntityMembershipRs>"#),
        ))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let role = Some(("role", "10", "Underwriter <Senior>"));
    assert_eq!(
        provisioned(&connector, &request(Operation::AddAccess, role, json!({}))).await,
        already_done(None)
    );
    let body = body_of(&server.received_requests().await.unwrap()[0]);
    assert!(
        body.contains(r#"roleName="Underwriter &lt;Senior&gt;""#),
        "{body}"
    );
    let entity = Some(("Entity", "3", "Branch 2"));
    assert_eq!(
        provisioned(
            &connector,
            &request(Operation::RemoveAccess, entity, json!({}))
        )
        .await,
        done(None)
    );
    // NotAssigned on an add is not "already done": it fails.
    let err = refused(
        &connector,
        &request(Operation::AddAccess, entity, json!({})),
    )
    .await;
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
}

#[tokio::test]
async fn configured_already_done_codes_replace_the_built_in_ones() {
    let server = MockServer::start().await;
    let failure = |name: &str, code: &str| {
        xml(
            200,
            answer(&format!(
                r#"<{name} status="Failure"><Errors><Error code="{code}" text="no"/></Errors></{name}>"#
            )),
        )
    };
    Mock::given(body_string_contains("Security.addUserRoleRq"))
        .respond_with(failure("Security.addUserRoleRs", "AlreadyAssigned"))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("Security.removeUserRoleRq"))
        .respond_with(failure("Security.removeUserRoleRs", "NotAssigned"))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("Security.lockUserAccountRq"))
        .respond_with(failure("Security.lockUserAccountRs", "alreadylocked"))
        .mount(&server)
        .await;
    let configured = connector(
        &server,
        r#"already_done_codes = { add_access = ["RoleAlreadyGranted"], disable_account = ["AlreadyLocked"] }"#,
    );
    let role = Some(("Role", "10", "Underwriter"));
    // add_access: the configured list replaced AlreadyAssigned.
    let err = refused(&configured, &request(Operation::AddAccess, role, json!({}))).await;
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("AlreadyAssigned: no"), "{err}");
    // remove_access: not configured, so the built-in NotAssigned still counts.
    let outcome = provisioned(
        &configured,
        &request(Operation::RemoveAccess, role, json!({})),
    )
    .await;
    assert_eq!(outcome, already_done(None));
    // disable_account: a configured code, matched without letter case.
    let outcome = provisioned(
        &configured,
        &request(Operation::DisableAccount, None, json!({})),
    )
    .await;
    assert_eq!(outcome, already_done(None));
    // Without the setting, the same lock failure fails the task.
    let err = connector(&server, "")
        .provision(&request(Operation::DisableAccount, None, json!({})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("alreadylocked: no"), "{err}");

    for bad in [
        r#"already_done_codes = { create_account = ["UserExists"] }"#,
        r#"already_done_codes = { grant = ["X"] }"#,
    ] {
        let err = DuckCreekConnector::build("dc", &config(&server.uri(), bad)).unwrap_err();
        assert!(
            err.to_string().contains("already_done_codes."),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn privileges_and_unconfigured_account_operations_are_unsupported() {
    let server = MockServer::start().await;
    let connector = connector(&server, "");
    let caps = connector.capabilities();
    assert!(caps.supports(Operation::AddAccess, Some("role")));
    assert!(caps.supports(Operation::RemoveAccess, Some("ENTITY")));
    assert!(!caps.supports(Operation::AddAccess, Some("Privilege")));
    for op in [
        Operation::CreateAccount,
        Operation::UpdateAccount,
        Operation::RemoveAccount,
    ] {
        assert!(!caps.supports(op, None), "{op}");
        let err = refused(&connector, &request(op, None, json!({}))).await;
        assert_eq!(err.class(), ErrorClass::Unsupported);
        assert!(
            err.to_string()
                .contains(&format!("targets.dc.templates.{}", op.as_str())),
            "{err}"
        );
    }
    let reason = connector.unsupported_reason(Operation::AddAccess, Some("Privilege"));
    assert!(reason.contains("attach to roles"), "{reason}");
    let err = refused(
        &connector,
        &request(
            Operation::AddAccess,
            Some(("Privilege", "1", "Q")),
            json!({}),
        ),
    )
    .await;
    assert_eq!(err.class(), ErrorClass::Unsupported);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_configured_create_template_is_supported_and_its_password_redacted() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains("Security.createUserRq"))
        .respond_with(|request: &Request| {
            // Echo the generated password back in the failure text, as a careless
            // server might.
            let body = String::from_utf8_lossy(&request.body).into_owned();
            let start = body.find("initial=\"").unwrap() + 9;
            let end = start + body[start..].find('"').unwrap();
            let echoed = &body[start..end];
            xml(
                200,
                answer(&format!(
                    r#"<Security.createUserRs status="Failure"><Errors><Error code="Weak" text="password {echoed} rejected"/></Errors></Security.createUserRs>"#
                )),
            )
        })
        .mount(&server)
        .await;
    let extra = r#"
[templates]
create_account = '<Security.createUserRq userName="${ user.username }" email="${ user.email }" initial="${ password }"/>'
"#;
    let connector = connector(&server, extra);
    assert!(connector
        .capabilities()
        .supports(Operation::CreateAccount, None));
    let err = refused(
        &connector,
        &request(
            Operation::CreateAccount,
            None,
            json!({ "email": "o@example.com" }),
        ),
    )
    .await;
    let text = err.to_string();
    assert!(text.contains("password [REDACTED] rejected"), "{text}");
    let body = body_of(&server.received_requests().await.unwrap()[0]);
    let start = body.find("initial=\"").unwrap() + 9;
    let sent = &body[start..start + 10];
    assert!(!text.contains(sent), "{text}");
}

#[test]
fn templates_that_log_in_or_are_malformed_fail_the_check() {
    let mut config = config("http://dc.example", "");
    // Saviynt's published enable template: closed with the lock request's name.
    config.templates.insert(
        "enable_account".into(),
        r#"<Security.unlockUserAccountRq userName="${ account.name }"></Security.lockUserAccountRq>"#
            .into(),
    );
    config.templates.insert(
        "add_access_role".into(),
        r#"<Session.loginRq userName="x" password="y"/><Security.addUserRoleRq userName="${ account.name }"/>"#
            .into(),
    );
    let errors = DuckCreekConnector::check_config("dc", &config);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{text:?}");
    assert!(text[0].starts_with("templates.enable_account"), "{text:?}");
    assert!(text[0].contains("not well-formed"), "{text:?}");
    config.templates.remove("enable_account");
    let errors = DuckCreekConnector::check_config("dc", &config);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "templates.add_access_role");
    assert!(errors[0]
        .message
        .contains("must not contain <Session.loginRq>"));
    let err = DuckCreekConnector::build("dc", &config).unwrap_err();
    assert!(err.to_string().contains("add_access_role"), "{err}");
    config.templates.clear();
    assert!(DuckCreekConnector::check_config("dc", &config).is_empty());
}

#[tokio::test]
async fn test_connection_logs_in_and_closes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml(200, answer("")))
        .expect(1)
        .mount(&server)
        .await;
    connector(&server, "").test_connection().await.unwrap();
    let received = server.received_requests().await.unwrap();
    assert!(
        !received[0].headers.contains_key("soapaction"),
        "soap_action unset: no SOAPAction, as Saviynt's package sends"
    );
    let body = body_of(&received[0]);
    assert!(body.contains("/><Session.closeRq/></requests>"), "{body}");
}

#[tokio::test]
async fn the_configured_soap_action_and_content_type_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header(
            "SOAPAction",
            "\"http://tempuri.org/processRequestsAsDOM\"",
        ))
        .and(header("Content-Type", "application/xml; charset=utf-8"))
        .respond_with(xml(200, answer("")))
        .expect(1)
        .mount(&server)
        .await;
    let extra = "soap_action = \"http://tempuri.org/processRequestsAsDOM\"\n\
                 content_type = \"application/xml; charset=utf-8\"";
    connector(&server, extra).test_connection().await.unwrap();
}

#[tokio::test]
async fn an_empty_soap_action_is_sent_as_two_quotes_and_an_unset_one_not_at_all() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml(200, answer("")))
        .mount(&server)
        .await;
    connector(&server, "soap_action = \"\"")
        .test_connection()
        .await
        .unwrap();
    connector(&server, "").test_connection().await.unwrap();
    let received = server.received_requests().await.unwrap();
    assert_eq!(received[0].headers["soapaction"], "\"\"");
    assert!(!received[1].headers.contains_key("soapaction"));
}

#[tokio::test]
async fn a_configured_wrapper_holds_the_server_document() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml(200, answer("")))
        .mount(&server)
        .await;
    for (extra, open, close) in [
        (
            r#"request_wrapper = { element = "processRequestsAsDOM" }"#,
            r#"<soapenv:Body><w:processRequestsAsDOM xmlns:w="http://tempuri.org/"><server>"#,
            "</server></w:processRequestsAsDOM></soapenv:Body>",
        ),
        (
            r#"request_wrapper = { element = "Run", namespace = "urn:a&b" }"#,
            r#"<soapenv:Body><w:Run xmlns:w="urn:a&amp;b"><server>"#,
            "</server></w:Run></soapenv:Body>",
        ),
        (
            r#"request_wrapper = { element = "Run", namespace = "" }"#,
            "<soapenv:Body><Run><server>",
            "</server></Run></soapenv:Body>",
        ),
        ("", "<soapenv:Body><server>", "</server></soapenv:Body>"),
    ] {
        connector(&server, extra).test_connection().await.unwrap();
        let requests = server.received_requests().await.unwrap();
        let body = body_of(requests.last().unwrap());
        assert!(
            body.contains(open) && body.contains(close),
            "{extra}: {body}"
        );
    }
    for bad in [
        r#"request_wrapper = { element = "w:Run" }"#,
        r#"request_wrapper = { element = "Run", namespace = "urn:\u0001" }"#,
    ] {
        let err = DuckCreekConnector::build("dc", &config(&server.uri(), bad)).unwrap_err();
        assert!(err.to_string().contains("request_wrapper"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn lookup_finds_a_user_by_name_without_letter_case() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml(200, users_answer(30)))
        .mount(&server)
        .await;
    let connector = connector(&server, "");
    let found = connector.lookup_account("USER17").await.unwrap().unwrap();
    assert_eq!(found.id, "17");
    assert_eq!(connector.lookup_account("nobody").await.unwrap(), None);
}
