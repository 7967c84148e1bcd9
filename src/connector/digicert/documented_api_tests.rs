//! The adapter held to DigiCert's documented calls (`docs/targets/digicert.md`, "Findings
//! checked against public documentation"): Edit-user bodies, role lists that never lose a
//! role, container moves only on request, and the exact-match user search. Against the
//! simulator where it shows the behaviour, against wiremock where a server must misbehave.

use serde_json::{json, Value};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::tests::{config, created_id, jane, sheet_user, sim_user, KEY};
use super::wire::role_ids;
use super::*;
use crate::connector::kit::testing::{
    access, already_done, assert_error, done, provisioned, queries, refused, request,
};
use crate::connector::{Connector, ErrorClass};
use crate::model::Operation;
use idsync_sim::SimControl;

/// A simulator with an empty account (or one that honours the undocumented container move),
/// and a connector to it with `extra` settings.
async fn sim_with(
    moves_container: bool,
    extra: &str,
) -> (idsync_sim::DigicertServer, DigicertConnector) {
    let server = idsync_sim::DigicertSim::start(
        idsync_sim::DigicertSimConfig {
            seed: idsync_sim::DigicertSeed::empty(),
            rate_limits: Vec::new(),
            edit_user_moves_container: moves_container,
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let config: TargetConfig = toml::from_str(&format!(
        "kind = \"digicert\"\nbase_url = \"{}\"\napi_key = \"{}\"\nrate_limit = []\n\
         read_retry = {{ max_attempts = 1 }}\n{extra}",
        server.base_url(),
        server.control().api_key()
    ))
    .unwrap();
    let connector = DigicertConnector::build("dc", &config).unwrap();
    (server, connector)
}

/// Creates Jane (title, phone, role 5, top-level container) and returns her id.
async fn create_jane(connector: &DigicertConnector) -> String {
    created_id(provisioned(connector, &request(Operation::CreateAccount, None, jane())).await)
}

fn puts(server: &idsync_sim::DigicertServer) -> u64 {
    server.control().stats().route("PUT /user/{id}")
}

// --- Roles: the whole list goes back, so every held role must be read. ---

#[test]
fn role_ids_reads_numbers_and_digits_and_names_what_it_cannot() {
    let user = |roles: Value| match json!({ "id": 7, "access_roles": roles }) {
        Value::Object(user) => user,
        _ => unreachable!(),
    };
    assert_eq!(
        role_ids(&user(
            json!([{ "id": 1 }, { "id": "4", "name": "Manager" }])
        )),
        Ok(vec![1, 4])
    );
    assert_eq!(role_ids(&user(json!([]))), Ok(vec![]));
    for (roles, named) in [
        (
            json!([{ "id": 1 }, { "id": "custom-7" }]),
            r#"{"id":"custom-7"}"#,
        ),
        (json!([{ "id": 1.5 }]), r#"{"id":1.5}"#),
        (json!([{ "id": -2 }]), r#"{"id":-2}"#),
        (
            json!([{ "name": "Administrator" }]),
            r#"{"name":"Administrator"}"#,
        ),
        (json!([null]), "null"),
    ] {
        let problem = role_ids(&user(roles)).unwrap_err();
        assert!(
            problem.contains(named) && problem.contains("not a whole number"),
            "{problem}"
        );
    }
    assert_eq!(
        role_ids(&user(json!({ "id": 1 }))).unwrap_err(),
        r#"has access_roles {"id":1}, not a list of roles"#
    );
    let mut none = user(json!([]));
    none.remove("access_roles");
    assert_eq!(role_ids(&none).unwrap_err(), "has no access_roles list");
}

#[tokio::test]
async fn an_unreadable_role_id_fails_the_role_change_and_sends_nothing() {
    let server = MockServer::start().await;
    let mut odd = sheet_user();
    odd["access_roles"] = json!([
        { "id": 1, "name": "Administrator" },
        { "id": "custom-7", "name": "Custom" }
    ]);
    Mock::given(method("GET"))
        .and(path("/services/v2/user/125038"))
        .respond_with(ResponseTemplate::new(200).set_body_json(odd))
        .mount(&server)
        .await;
    let mut roleless = sheet_user();
    roleless.as_object_mut().unwrap().remove("access_roles");
    Mock::given(method("GET"))
        .and(path("/services/v2/user/125039"))
        .respond_with(ResponseTemplate::new(200).set_body_json(roleless))
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();

    for operation in [Operation::AddAccess, Operation::RemoveAccess] {
        let err = refused(&connector, &access(operation, "125038", "role", "1")).await;
        assert_error(&err, ErrorClass::Permanent, "user 125038 (jane.doe)");
        let text = err.to_string();
        assert!(
            text.contains(r#"{"id":"custom-7","name":"Custom"}"#)
                && text.contains("nothing was sent")
                && text.contains("PUT /user/{id}/role"),
            "{text}"
        );
    }
    let err = refused(
        &connector,
        &access(Operation::AddAccess, "125039", "role", "2"),
    )
    .await;
    assert_error(&err, ErrorClass::Permanent, "has no access_roles list");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|r| r.method.as_str() == "GET"),
        "only the reads went out"
    );
}

#[tokio::test]
async fn role_changes_go_to_the_role_call_with_every_held_role() {
    let server = MockServer::start().await;
    let mut two = sheet_user();
    two["access_roles"] = json!([{ "id": 1 }, { "id": "4" }]);
    Mock::given(method("GET"))
        .and(path("/services/v2/user/125038"))
        .respond_with(ResponseTemplate::new(200).set_body_json(two))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/services/v2/user/125038/role"))
        .and(body_json(
            json!({ "access_roles": [{ "id": 1 }, { "id": 4 }, { "id": 2 }] }),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    let add = access(Operation::AddAccess, "125038", "role", "2");
    assert_eq!(provisioned(&connector, &add).await, done(None));
    let held = access(Operation::AddAccess, "125038", "role", " 4 ");
    assert_eq!(provisioned(&connector, &held).await, already_done(None));
    let bad = access(Operation::RemoveAccess, "125038", "role", "admin");
    assert_error(
        &refused(&connector, &bad).await,
        ErrorClass::Permanent,
        "role id `admin` is not a DigiCert access role id",
    );
}

// --- Container moves: no documented call; opt-in only, and checked. ---

#[tokio::test]
async fn a_container_move_is_refused_by_default_and_sends_nothing() {
    let (server, connector) = sim_with(true, "").await;
    let id = create_jane(&connector).await;
    let err = refused(
        &connector,
        &access(Operation::AddAccess, &id, "container", "2"),
    )
    .await;
    assert_error(
        &err,
        ErrorClass::Unsupported,
        "set container_move = \"put_user\" on this target",
    );
    assert!(
        err.to_string().contains("lists no container field"),
        "{err}"
    );
    assert_eq!(puts(&server), 0);
    assert_eq!(sim_user(&server, &id).unwrap().container_id, 1);
}

#[tokio::test]
async fn container_move_put_user_moves_through_edit_user() {
    let (server, connector) = sim_with(true, "container_move = \"put_user\"").await;
    let id = create_jane(&connector).await;
    let to_two = access(Operation::AddAccess, &id, "container", "2");
    assert_eq!(provisioned(&connector, &to_two).await, done(None));
    let moved = sim_user(&server, &id).unwrap();
    assert_eq!(moved.container_id, 2);
    assert_eq!(moved.access_roles, [5], "roles are not touched");
    assert_eq!(
        (moved.job_title.as_deref(), moved.telephone.as_deref()),
        (Some("Engineer"), Some("555-0100")),
        "every Edit-user field is carried over"
    );
    assert_eq!(puts(&server), 1);
    assert_eq!(provisioned(&connector, &to_two).await, already_done(None));
    assert_eq!(puts(&server), 1, "already there: nothing sent");
    let err = refused(
        &connector,
        &access(Operation::AddAccess, &id, "container", "top"),
    )
    .await;
    assert_error(&err, ErrorClass::Permanent, "not a DigiCert container id");
}

#[tokio::test]
async fn container_move_against_a_server_that_refuses_the_field_fails_permanently() {
    let (server, connector) = sim_with(false, "container_move = \"put_user\"").await;
    let id = create_jane(&connector).await;
    let err = refused(
        &connector,
        &access(Operation::AddAccess, &id, "container", "2"),
    )
    .await;
    assert_error(&err, ErrorClass::Permanent, "invalid_field|container");
    assert!(err.to_string().contains("HTTP 400"), "{err}");
    assert_eq!(sim_user(&server, &id).unwrap().container_id, 1);
}

#[tokio::test]
async fn container_move_that_the_server_ignores_is_caught_by_reading_back() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/services/v2/user/125038"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sheet_user()))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/services/v2/user/125038"))
        .and(body_json(json!({
            "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
            "email": "jane.doe@example.com", "job_title": "Engineer", "telephone": "555-0100",
            "container": { "id": 9 }
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let connector = DigicertConnector::build(
        "dc",
        &config(&server.uri(), "container_move = \"put_user\""),
    )
    .unwrap();
    let err = refused(
        &connector,
        &access(Operation::AddAccess, "125038", "container", "9"),
    )
    .await;
    assert_error(
        &err,
        ErrorClass::Permanent,
        "the user is still in container 5, not 9",
    );
    assert!(err.to_string().contains("Remove container_move"), "{err}");
}

#[test]
fn container_move_takes_put_user_only() {
    let err = DigicertConnector::build(
        "dc",
        &config("https://dc.example", "container_move = \"assignments\""),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("container_move = \"assignments\": is not a container move")
            && err.contains("container_move = \"put_user\"")
            && err.contains("remove the key"),
        "{err}"
    );
}

// --- The user search: exact unless `%25`, so a name never finds a longer one. ---

#[tokio::test]
async fn find_account_sends_the_exact_form_and_keeps_only_that_username() {
    let server = MockServer::start().await;
    // A server that answers as if the search were "contains".
    let john = json!({ "id": 2, "username": "john", "first_name": "John", "status": "active" });
    let ann = json!({ "id": 3, "username": "ann", "first_name": "Jo", "status": "active" });
    Mock::given(method("GET"))
        .and(path("/services/v2/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "users": [john, ann], "page": { "total": 2, "limit": 1000, "offset": 0 } }),
        ))
        .mount(&server)
        .await;
    let connector = DigicertConnector::build("dc", &config(&server.uri(), "")).unwrap();
    assert_eq!(connector.lookup_account("jo").await.unwrap(), None);
    let found = connector.lookup_account("JOHN").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.name.as_str()), ("2", "john"));
    // No username starts with `%` (CertCentral would read it as "contains") or is blank.
    for name in ["%jo", "", "  "] {
        assert_eq!(
            connector.lookup_account(name).await.unwrap(),
            None,
            "{name:?}"
        );
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        queries(&requests, "/services/v2/user"),
        [
            "filters%5Bsearch%5D=jo&offset=0&limit=1000",
            "filters%5Bsearch%5D=JOHN&offset=0&limit=1000",
        ]
    );
    assert!(requests
        .iter()
        .all(|r| r.headers.get("x-dc-devkey").is_some_and(|k| k == KEY)));
}

#[tokio::test]
async fn find_account_against_the_simulator_never_picks_a_longer_name() {
    let (server, connector) = sim_with(false, "").await;
    let control = server.control();
    let john = control
        .add_user(idsync_sim::UserSpec::new(
            "john",
            "John",
            "Smith",
            "john@example.com",
        ))
        .unwrap();
    assert_eq!(connector.lookup_account("jo").await.unwrap(), None);
    assert_eq!(connector.lookup_account("joh").await.unwrap(), None);
    // Someone whose first name is exactly "jo" is found by the search but is not "jo".
    control
        .add_user(idsync_sim::UserSpec::new(
            "ann",
            "Jo",
            "Smith",
            "ann@example.com",
        ))
        .unwrap();
    assert_eq!(connector.lookup_account("jo").await.unwrap(), None);
    let jo = control
        .add_user(idsync_sim::UserSpec::new(
            "jo",
            "Joanne",
            "Smith",
            "jo@example.com",
        ))
        .unwrap();
    let found = connector.lookup_account("JO").await.unwrap().unwrap();
    assert_eq!((found.id, found.name), (jo.to_string(), "jo".to_string()));
    let found = connector.lookup_account("john").await.unwrap().unwrap();
    assert_eq!(found.id, john.to_string());
}

// --- Edit user: only its documented fields. ---

#[tokio::test]
async fn updates_send_edit_user_fields_the_simulator_accepts() {
    let (server, connector) = sim_with(false, "").await;
    let id = create_jane(&connector).await;
    let update = request(
        Operation::UpdateAccount,
        Some(&id),
        json!({ "firstname": "Janet", "phonenumber": "555-0199" }),
    );
    assert_eq!(provisioned(&connector, &update).await, done(Some(&id)));
    let user = sim_user(&server, &id).unwrap();
    assert_eq!(
        (
            user.first_name.as_str(),
            user.telephone.as_deref(),
            user.job_title.as_deref()
        ),
        ("Janet", Some("555-0199"), Some("Engineer"))
    );
    assert_eq!((user.access_roles, user.container_id), (vec![5], 1));
    // An operator's template that sets a field Edit user does not take gets DigiCert's own
    // refusal, and changes nothing.
    let (server, connector) = sim_with(
        false,
        "[templates]\nupdate_account = '{\"access_roles\": [{\"id\": 1}], \"email\": \"${ user.email }\"}'",
    )
    .await;
    let id = create_jane(&connector).await;
    let err = refused(
        &connector,
        &request(Operation::UpdateAccount, Some(&id), jane()),
    )
    .await;
    assert_error(&err, ErrorClass::Permanent, "invalid_field|access_roles");
    assert_eq!(sim_user(&server, &id).unwrap().access_roles, [5]);
}
