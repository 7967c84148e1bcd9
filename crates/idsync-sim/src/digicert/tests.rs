//! The simulator over real HTTP on 127.0.0.1:0, driven with reqwest.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::Method;
use serde_json::{json, Value};

use super::*;
use crate::clock::until_waiting;
use crate::{FaultRule, SimClock, SimControl, SimStats};

fn config(users: u32) -> DigicertSimConfig {
    DigicertSimConfig {
        seed: DigicertSeed::with_users(users),
        rate_limits: Vec::new(),
        ..DigicertSimConfig::default()
    }
}

async fn start(config: DigicertSimConfig) -> DigicertServer {
    DigicertSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

struct Api {
    http: reqwest::Client,
    base: String,
    origin: String,
    key: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    fn new(server: &DigicertServer) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.base_url(),
            origin: server.origin(),
            key: server.control().api_key(),
        }
    }

    async fn send_with(
        &self,
        method: Method,
        url: String,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut request = self.http.request(method, url);
        if let Some(key) = key {
            request = request.header("X-DC-DEVKEY", key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.send_with(
            method,
            format!("{}{path}", self.base),
            Some(&self.key),
            body,
        )
        .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.send_with(method, format!("{}{path}", self.origin), None, body)
            .await
    }
}

fn new_user(username: &str) -> Value {
    json!({
        "username": username,
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "jane.doe@example.com",
        "job_title": "Engineer",
        "telephone": "555-0100",
        "container": {"id": 2},
        "access_roles": [{"id": 4}],
    })
}

#[tokio::test]
async fn paging_follows_offset_limit_and_the_cap() {
    let server = start(config(2_500)).await;
    let api = Api::new(&server);

    let first = api.get("/user").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.body["page"],
        json!({"total": 2500, "limit": 1000, "offset": 0})
    );
    let users = first.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1000);
    assert_eq!(users[0]["username"], "user00001");

    // Over the cap: cut to 1000, and the page object says so.
    let over = api.get("/user?offset=2000&limit=5000").await;
    assert_eq!(
        over.body["page"],
        json!({"total": 2500, "limit": 1000, "offset": 2000})
    );
    let last = over.body["users"].as_array().unwrap();
    assert_eq!(last.len(), 500);
    assert_eq!(last[499]["username"], "user02500");

    let small = api.get("/user?offset=10&limit=3").await;
    let ids: Vec<u64> = small.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [100_011, 100_012, 100_013]);

    let beyond = api.get("/user?offset=9999&limit=10").await;
    assert_eq!(beyond.status, 200);
    assert!(beyond.body["users"].as_array().unwrap().is_empty());
    assert_eq!(beyond.body["page"]["total"], 2500);

    let bad = api.get("/user?offset=-1").await;
    assert_eq!((bad.status, bad.code()), (400, "bad_request_format"));

    // Every user object has exactly the sheet's fields (this seed user has them all).
    let user = users
        .iter()
        .find(|u| u.get("job_title").is_some() && u.get("telephone").is_some())
        .unwrap();
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_roles",
            "account_id",
            "container",
            "email",
            "first_name",
            "has_container_assignments",
            "id",
            "job_title",
            "last_name",
            "status",
            "telephone",
            "type",
            "username"
        ]
    );
    let mut container_keys: Vec<&str> = user["container"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    container_keys.sort_unstable();
    assert_eq!(
        container_keys,
        [
            "ekey",
            "id",
            "is_active",
            "name",
            "parent_id",
            "public_id",
            "template_id"
        ]
    );
    assert_eq!(user["account_id"], 1234);
    assert_eq!(user["type"], "standard");
    assert!(user["access_roles"][0]["name"].is_string());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_smaller_cap_is_applied_and_echoed() {
    let server = start(DigicertSimConfig {
        limit_cap: 100,
        ..config(250)
    })
    .await;
    let api = Api::new(&server);
    let page = api.get("/user?limit=1000").await;
    assert_eq!(page.body["page"]["limit"], 100);
    assert_eq!(page.body["users"].as_array().unwrap().len(), 100);
    let default = api.get("/user").await;
    assert_eq!(default.body["page"]["limit"], 100);
}

#[tokio::test]
async fn filters_narrow_the_list_and_its_total() {
    let server = start(config(500)).await;
    let api = Api::new(&server);
    let in_division = api.get("/user?container_id=2&limit=1000").await;
    let users = in_division.body["users"].as_array().unwrap();
    assert!(!users.is_empty());
    assert!(users.iter().all(|u| u["container"]["id"] == 2));
    assert_eq!(
        in_division.body["page"]["total"].as_u64().unwrap(),
        users.len() as u64
    );

    let admins = api.get("/user?access_role_id=1&limit=2").await;
    let users = admins.body["users"].as_array().unwrap();
    assert!(users.len() <= 2);
    assert!(users.iter().all(|u| u["access_roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == 1)));

    let search = api.get("/user?filters%5Bsearch%5D=USER00042").await;
    assert_eq!(search.body["page"]["total"], 1);
}

fn named(username: &str, first: &str, email: &str) -> UserSpec {
    UserSpec::new(username, first, "Tester", email)
}

#[tokio::test]
async fn search_is_exact_unless_the_value_starts_with_percent_25() {
    let server = start(DigicertSimConfig {
        seed: DigicertSeed::empty(),
        ..config(0)
    })
    .await;
    let control = server.control();
    let jo = control
        .add_user(named("jo", "Joanne", "jo@example.com"))
        .unwrap();
    let john = control
        .add_user(named("john", "John", "john@example.org"))
        .unwrap();
    let ann = control
        .add_user(named("ann", "Jo", "ann@example.com"))
        .unwrap();
    let api = Api::new(&server);
    let found = |query: &'static str| {
        let api = &api;
        async move {
            let answer = api.get(&format!("/user?{query}")).await;
            assert_eq!(answer.status, 200, "{query}");
            let ids: Vec<u64> = answer.body["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|user| user["id"].as_u64().unwrap())
                .collect();
            assert_eq!(answer.body["page"]["total"], ids.len(), "{query}");
            ids
        }
    };
    // No prefix: a field equal to the value (any letter case), never a longer one.
    assert_eq!(
        found("filters%5Bsearch%5D=jo").await,
        [jo, ann],
        "username or first name"
    );
    assert_eq!(found("filters%5Bsearch%5D=JO").await, [jo, ann]);
    assert_eq!(
        found("filters%5Bsearch%5D=john%40example.org").await,
        [john]
    );
    assert!(found("filters%5Bsearch%5D=example").await.is_empty());
    assert!(found("filters%5Bsearch%5D=joh").await.is_empty());
    // `%25` (a `%` once decoded): every field that contains the rest.
    assert_eq!(found("filters%5Bsearch%5D=%25jo").await, [jo, john, ann]);
    assert_eq!(found("filters[search]=%25JOHN").await, [john]);
    assert_eq!(found("filters%5Bsearch%5D=%25example.com").await, [jo, ann]);
    assert_eq!(found("filters%5Bsearch%5D=%25").await, [jo, john, ann]);
    assert!(found("filters%5Bsearch%5D=%25zz").await.is_empty());
    // Empty: no filter.
    assert_eq!(found("filters%5Bsearch%5D=").await, [jo, john, ann]);
}

#[tokio::test]
async fn user_me_is_the_user_the_key_belongs_to() {
    let server = start(config(3)).await;
    let api = Api::new(&server);
    let control = server.control();
    assert_eq!(control.api_user_id(), Some(100_001));

    let me = api.get("/user/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body, api.get("/user/100001").await.body);
    assert_eq!(me.body["username"], "user00001");
    assert_eq!(me.body["status"], "active");
    assert_eq!(
        me.body["access_roles"],
        json!([{"id": 1, "name": "Administrator"}])
    );
    assert_eq!(me.body["container"]["id"], 1);
    assert_eq!(control.stats().route("GET /user/me"), 1);

    // Add user: no container given, the key owner's container.
    let mut body = new_user("placed");
    body.as_object_mut().unwrap().remove("container");
    let created = api.call(Method::POST, "/user", Some(body.clone())).await;
    let id = created.body["id"].as_u64().unwrap();
    assert_eq!(control.user(id).unwrap().container_id, 1);
    control.set_user_roles(100_001, &[1]).unwrap();
    control.set_edit_user_moves_container(true);
    let moved = api
        .call(
            Method::PUT,
            "/user/100001",
            Some(json!({"email": "owner@example.com", "container": {"id": 3}})),
        )
        .await;
    assert_eq!(moved.status, 204);
    body["username"] = json!("placed.too");
    let created = api.call(Method::POST, "/user", Some(body)).await;
    let id = created.body["id"].as_u64().unwrap();
    assert_eq!(control.user(id).unwrap().container_id, 3);

    // The key still works without its owner (a test may delete anyone), but `me` is gone.
    assert!(control.remove_user(100_001));
    let gone = api.get("/user/me").await;
    assert_eq!((gone.status, gone.code()), (404, "not_found"));
    let empty = start(DigicertSimConfig {
        seed: DigicertSeed::empty(),
        ..config(0)
    })
    .await;
    assert_eq!(empty.control().api_user_id(), None);
    let none = Api::new(&empty).get("/user/me").await;
    assert_eq!((none.status, none.code()), (404, "not_found"));
}

#[tokio::test]
async fn edit_user_takes_the_documented_fields_only() {
    let server = start(config(3)).await;
    let api = Api::new(&server);
    let control = server.control();
    let put = |body: Value| api.call(Method::PUT, "/user/100002", Some(body));

    let all = put(json!({
        "username": "renamed", "first_name": "Ada", "last_name": "Lovelace",
        "email": "ada@example.com", "job_title": "Analyst", "telephone": "555-0199",
        "is_saml_sso_only": false,
    }))
    .await;
    assert_eq!(all.status, 204);
    let before = control.user(100_002).unwrap();
    assert_eq!(
        (
            before.username.as_str(),
            before.first_name.as_str(),
            before.job_title.as_deref()
        ),
        ("renamed", "Ada", Some("Analyst"))
    );

    // Only email is required: the names are kept, job_title and telephone erased, roles,
    // container and status untouched.
    let email_only = put(json!({"email": "new@example.com"})).await;
    assert_eq!((email_only.status, &email_only.body), (204, &Value::Null));
    let after = control.user(100_002).unwrap();
    assert_eq!(after.email, "new@example.com");
    assert_eq!(
        (&after.username, &after.first_name, &after.last_name),
        (&before.username, &before.first_name, &before.last_name)
    );
    assert_eq!((after.job_title, after.telephone), (None, None));
    assert_eq!(
        (after.access_roles, after.container_id, after.status),
        (
            before.access_roles.clone(),
            before.container_id,
            before.status
        )
    );
    assert_eq!(
        put(json!({"email": "a@b.c", "is_saml_sso_only": "true"}))
            .await
            .status,
        204
    );

    // Undocumented fields are refused, each named; nothing changes.
    let snapshot = control.user(100_002).unwrap();
    let refused = put(json!({
        "email": "other@example.com",
        "access_roles": [{"id": 1}],
        "container": {"id": 3},
        "status": "inactive",
    }))
    .await;
    assert_eq!(refused.status, 400);
    let errors = refused.body["errors"].as_array().unwrap();
    let codes: Vec<&str> = errors.iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "invalid_field|access_roles",
            "invalid_field|container",
            "invalid_field|status"
        ]
    );
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("PUT /user/{id}/role"));
    assert_eq!(control.user(100_002).unwrap(), snapshot);

    let no_email = put(json!({"first_name": "X"})).await;
    assert_eq!(
        (no_email.status, no_email.code()),
        (400, "missing_field|email")
    );
    let blank_name = put(json!({"email": "a@b.c", "last_name": " "})).await;
    assert_eq!(
        (blank_name.status, blank_name.code()),
        (400, "missing_field|last_name")
    );
    let bad_sso = put(json!({"email": "a@b.c", "is_saml_sso_only": 1})).await;
    assert_eq!(
        (bad_sso.status, bad_sso.code()),
        (400, "invalid_field|is_saml_sso_only")
    );
    assert_eq!(control.user(100_002).unwrap(), snapshot);

    // The undocumented move, when the simulator is told to honour it.
    control.set_edit_user_moves_container(true);
    let moved = put(json!({"email": "a@b.c", "container": {"id": 3}})).await;
    assert_eq!(moved.status, 204);
    assert_eq!(control.user(100_002).unwrap().container_id, 3);
    let nowhere = put(json!({"email": "a@b.c", "container": {"id": 99}})).await;
    assert_eq!((nowhere.status, nowhere.code()), (400, "invalid_container"));
    let roles_still = put(json!({"email": "a@b.c", "access_roles": [{"id": 1}]})).await;
    assert_eq!(
        (roles_still.status, roles_still.code()),
        (400, "invalid_field|access_roles")
    );
    assert_eq!(control.user(100_002).unwrap().container_id, 3);
}

#[tokio::test]
async fn the_key_is_checked_on_every_request() {
    let server = start(config(3)).await;
    let api = Api::new(&server);
    let url = format!("{}/user", api.base);
    let expected = json!({"errors":[{"code":"invalid_api_key","message":"The specified API key is invalid."}]});

    let none = api.send_with(Method::GET, url.clone(), None, None).await;
    assert_eq!((none.status, &none.body), (401, &expected));
    let wrong = api
        .send_with(Method::GET, url.clone(), Some("not-the-key"), None)
        .await;
    assert_eq!((wrong.status, &wrong.body), (401, &expected));
    // Even for a route that does not exist.
    let nowhere = api
        .send_with(Method::GET, format!("{}/nowhere", api.base), None, None)
        .await;
    assert_eq!(nowhere.status, 401);

    assert_eq!(api.get("/user").await.status, 200);
    server.control().revoke_key();
    let revoked = api.get("/user").await;
    assert_eq!((revoked.status, &revoked.body), (401, &expected));
    server.control().restore_key();
    assert_eq!(api.get("/user").await.status, 200);
    assert_eq!(server.control().stats().responses_401, 4);
}

#[tokio::test]
async fn create_update_roles_and_delete_use_the_sheet_status_codes() {
    let server = start(config(3)).await;
    let api = Api::new(&server);

    let created = api
        .call(Method::POST, "/user", Some(new_user("jane.doe")))
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_u64().unwrap();
    assert_eq!(created.body, json!({ "id": id }));
    assert_eq!(id, 100_004);

    let read = api.get(&format!("/user/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["job_title"], "Engineer");
    assert_eq!(read.body["telephone"], "555-0100");
    assert_eq!(read.body["status"], "active");
    assert_eq!(read.body["container"]["id"], 2);
    assert_eq!(read.body["container"]["parent_id"], 1);
    assert_eq!(
        read.body["access_roles"],
        json!([{"id":4,"name":"Manager"}])
    );

    // Edit user: job_title and telephone left out are erased; roles and container stay.
    let replaced = api
        .call(
            Method::PUT,
            &format!("/user/{id}"),
            Some(json!({
                "username": "jane.doe",
                "first_name": "Janet",
                "last_name": "Doe",
                "email": "janet.doe@example.com",
            })),
        )
        .await;
    assert_eq!((replaced.status, &replaced.body), (204, &Value::Null));
    let after = api.get(&format!("/user/{id}")).await;
    assert_eq!(after.body["first_name"], "Janet");
    assert!(after.body.get("job_title").is_none(), "{}", after.body);
    assert!(after.body.get("telephone").is_none());
    assert_eq!(
        after.body["container"]["id"], 2,
        "an edit keeps the container"
    );
    let held = server.control().user(id).unwrap();
    assert_eq!((held.job_title, held.telephone), (None, None));
    assert_eq!(held.access_roles, [4], "an edit keeps the roles");

    let roles = api
        .call(
            Method::PUT,
            &format!("/user/{id}/role"),
            Some(json!({"access_roles": [{"id": 1}, {"id": 3}]})),
        )
        .await;
    assert_eq!(roles.status, 204);
    assert_eq!(server.control().user(id).unwrap().access_roles, [1, 3]);
    let unknown_role = api
        .call(
            Method::PUT,
            &format!("/user/{id}/role"),
            Some(json!({"access_roles": [{"id": 9}]})),
        )
        .await;
    assert_eq!(
        (unknown_role.status, unknown_role.code()),
        (400, "invalid_access_role")
    );
    assert_eq!(server.control().user(id).unwrap().access_roles, [1, 3]);

    let deleted = api.call(Method::DELETE, &format!("/user/{id}"), None).await;
    assert_eq!((deleted.status, &deleted.body), (204, &Value::Null));
    assert_eq!(server.control().user_count(), 3);
    let again = api.call(Method::DELETE, &format!("/user/{id}"), None).await;
    assert_eq!((again.status, again.code()), (404, "not_found"));
}

#[tokio::test]
async fn invalid_and_duplicate_users_get_400_naming_the_field() {
    let server = start(config(3)).await;
    let api = Api::new(&server);

    let duplicate = api
        .call(Method::POST, "/user", Some(new_user("USER00001")))
        .await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (400, "duplicate_username")
    );
    assert_eq!(server.control().user_count(), 3);

    let mut bad = new_user("bad name!");
    bad["first_name"] = json!("x".repeat(129));
    bad.as_object_mut().unwrap().remove("email");
    bad["access_roles"] = json!([{"id": 42}]);
    let invalid = api.call(Method::POST, "/user", Some(bad)).await;
    assert_eq!(invalid.status, 400);
    let codes: Vec<&str> = invalid.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_field|username",
            "invalid_length|first_name",
            "missing_field|email",
            "invalid_access_role"
        ]
    );

    // What Saviynt's package sends to disable a user is an invalid add-user call.
    let saviynt = api
        .call(
            Method::POST,
            "/user",
            Some(json!({"id": 100001, "status": "Inactive"})),
        )
        .await;
    assert_eq!(saviynt.status, 400);
    assert_eq!(
        server.control().user(100_001).unwrap().status,
        UserStatus::Active
    );

    // A PUT may keep its own username but not take another's.
    let edit = |username: &str| json!({"username": username, "email": "x@example.com"});
    let put = api
        .call(Method::PUT, "/user/100002", Some(edit("user00001")))
        .await;
    assert_eq!((put.status, put.code()), (400, "duplicate_username"));
    let own = api
        .call(Method::PUT, "/user/100002", Some(edit("user00002")))
        .await;
    assert_eq!(own.status, 204);

    let malformed = api
        .send_with(
            Method::POST,
            format!("{}/user", api.base),
            Some(&api.key),
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "bad_request_format")
    );
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404() {
    let server = start(config(3)).await;
    let api = Api::new(&server);
    for path in ["/user/999", "/container/77", "/container/77/role"] {
        let answer = api.get(path).await;
        assert_eq!((answer.status, answer.code()), (404, "not_found"), "{path}");
    }
    let put = api
        .call(
            Method::PUT,
            "/user/999",
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    assert_eq!((put.status, put.code()), (404, "not_found"));
    let role = api
        .call(
            Method::PUT,
            "/user/999/role",
            Some(json!({"access_roles":[{"id":1}]})),
        )
        .await;
    assert_eq!((role.status, role.code()), (404, "not_found"));

    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/user/abc"),
        (Method::PATCH, "/user/100001"),
        (Method::GET, "/user/1/role/x"),
        // `me` is documented for User info only.
        (Method::PUT, "/user/me"),
        (Method::DELETE, "/user/me"),
        (Method::PUT, "/user/me/role"),
    ] {
        let answer = api.call(method, path, None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (404, "not_found|route"),
            "{path}"
        );
    }
    let outside = api.admin(Method::GET, "/elsewhere", None).await;
    assert_eq!((outside.status, outside.code()), (404, "not_found|route"));
    assert_eq!(server.control().stats().route("unmatched"), 7);
}

#[tokio::test]
async fn containers_and_roles() {
    let server = start(config(3)).await;
    let api = Api::new(&server);
    let containers = api.get("/container").await;
    let list = containers.body["containers"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    assert_eq!(list[0]["name"], "Company");
    assert_eq!(list[0]["parent_id"], 0);
    assert!(list[1..].iter().all(|c| c["parent_id"] == 1));
    assert!(list[0]["description"].is_string());

    let roles = api.get("/container/1/role").await;
    assert_eq!(
        roles.body,
        json!({"access_roles": [
            {"id":1,"name":"Administrator"},{"id":2,"name":"Limited User"},
            {"id":3,"name":"Finance Manager"},{"id":4,"name":"Manager"},
            {"id":5,"name":"Standard User"}]})
    );
}

#[tokio::test]
async fn rolling_windows_answer_bare_429s_and_recover() {
    let clock = SimClock::manual();
    let server = start(DigicertSimConfig {
        rate_limits: vec![RateWindow::new(10, Duration::from_millis(2000))],
        clock: clock.clone(),
        ..config(3)
    })
    .await;
    let api = Api::new(&server);
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let answer = api.get("/user/100001").await;
        if answer.status == 429 {
            assert!(answer.headers.get(RETRY_AFTER).is_none(), "no Retry-After");
            assert_eq!(
                answer.body["errors"][0]["code"], "request_limit_exceeded",
                "{}",
                answer.body
            );
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses[..10], [200; 10]);
    assert_eq!(statuses[10..], [429; 5]);
    assert_eq!(server.control().stats().responses_429, 5);

    // Still refused to the last millisecond of the window...
    clock.advance(Duration::from_millis(1999));
    assert_eq!(api.get("/user/100001").await.status, 429);
    // ...and served again once a whole window has passed since the tenth-last request.
    clock.advance(Duration::from_millis(1));
    assert_eq!(api.get("/user/100001").await.status, 200);
    assert_eq!(server.control().stats().responses_429, 6);
}

#[tokio::test]
async fn both_windows_are_enforced() {
    // A short window that recovers quickly, and a long one that does not.
    let clock = SimClock::manual();
    let server = start(DigicertSimConfig {
        rate_limits: vec![
            RateWindow::new(5, Duration::from_millis(1000)),
            RateWindow::new(8, Duration::from_secs(60)),
        ],
        clock: clock.clone(),
        ..config(3)
    })
    .await;
    let api = Api::new(&server);
    let mut ok = 0;
    for _ in 0..5 {
        ok += u32::from(api.get("/container").await.status == 200);
    }
    assert_eq!(ok, 5);
    assert_eq!(api.get("/container").await.status, 429, "short window");
    clock.advance(Duration::from_millis(1000));
    // Short window clear again; the long one has 6 counted and allows 2 more.
    assert_eq!(api.get("/container").await.status, 200);
    assert_eq!(api.get("/container").await.status, 200);
    clock.advance(Duration::from_millis(1000));
    assert_eq!(api.get("/container").await.status, 429, "long window");
    // The long window rolls too, a minute after the first requests.
    clock.advance(Duration::from_secs(58));
    assert_eq!(api.get("/container").await.status, 200);

    // Switching the limits off (as the demo may do) lets everything through.
    server.control().set_rate_limits(Vec::new());
    assert_eq!(api.get("/container").await.status, 200);
}

#[tokio::test]
async fn a_fault_rule_hits_exactly_the_matching_page() {
    let server = start(config(3_000)).await;
    let api = Api::new(&server);
    let control = server.control();
    control
        .fail_when(
            FaultRule::new(503)
                .with_method("GET")
                .with_path_prefix("/user")
                .with_query("offset=1000")
                .with_times(1),
        )
        .unwrap();
    let page0 = api.get("/user?offset=0&limit=1000").await;
    assert_eq!(page0.status, 200);
    let page1 = api.get("/user?offset=1000&limit=1000").await;
    assert_eq!((page1.status, page1.code()), (503, "service_unavailable"));
    let page1_again = api.get("/user?offset=1000&limit=1000").await;
    assert_eq!(page1_again.status, 200);
    assert_eq!(page1_again.body["users"][0]["username"], "user01001");
    assert_eq!(api.get("/user?offset=2000&limit=1000").await.status, 200);
    assert!(control.faults().is_empty());

    control.fail_next(2, 500).unwrap();
    assert_eq!(api.get("/container").await.status, 500);
    assert_eq!(api.get("/user/100001").await.status, 500);
    assert_eq!(api.get("/user/100001").await.status, 200);
    assert!(control.fail_next(1, 200).is_err());

    control.fail_when(FaultRule::new(502)).unwrap();
    assert_eq!(api.get("/container").await.status, 502);
    control.clear_faults();
    assert_eq!(api.get("/container").await.status, 200);
    let stats = control.stats();
    assert_eq!(stats.responses_5xx, 4);
    assert_eq!(stats.route("GET /user"), 4);
}

#[tokio::test]
async fn latency_is_applied_to_api_requests() {
    let clock = SimClock::manual();
    let server = start(DigicertSimConfig {
        latency: Duration::from_millis(250),
        clock: clock.clone(),
        ..config(3)
    })
    .await;
    let control = server.control();
    let api = std::sync::Arc::new(Api::new(&server));
    for (answered, (path, latency)) in [("/user/100001", 250), ("/container", 400)]
        .into_iter()
        .enumerate()
    {
        control.set_latency(Duration::from_millis(latency));
        let mut answer = tokio::spawn({
            let api = api.clone();
            async move { api.get(path).await.status }
        });
        // The request waits on the simulator's clock for exactly the latency, unanswered...
        until_waiting(&clock, 1, &mut answer).await;
        assert_eq!(clock.sleeping(), [Duration::from_millis(latency)], "{path}");
        assert_eq!(control.stats().requests, answered as u64);
        // ...and is answered once the clock has moved that far.
        clock.advance(Duration::from_millis(latency));
        assert_eq!(answer.await.unwrap(), 200, "{path}");
        assert!(clock.sleeping().is_empty());
    }
    assert_eq!(control.stats().requests, 2);
    control.set_latency(Duration::ZERO);
    assert_eq!(control.latency(), Duration::ZERO);
    assert_eq!(
        api.get("/container").await.status,
        200,
        "no clock advance needed"
    );
}

#[tokio::test]
async fn a_hundred_thousand_users_page_through() {
    let server = start(config(100_000)).await;
    let api = Api::new(&server);
    assert_eq!(server.control().user_count(), 100_000);
    let last = api.get("/user?offset=99000&limit=1000").await;
    assert_eq!(last.body["page"]["total"], 100_000);
    let users = last.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1000);
    assert_eq!(users[999]["username"], "user100000");
    assert_eq!(users[999]["id"], 200_000);
}

#[tokio::test]
async fn control_routes_drive_the_simulator() {
    let server = start(config(3)).await;
    let api = Api::new(&server);

    assert_eq!(
        api.admin(Method::POST, "/_sim/revoke", None).await.status,
        204
    );
    assert_eq!(api.get("/user").await.status, 401);
    assert_eq!(
        api.admin(Method::POST, "/_sim/restore", None).await.status,
        204
    );
    assert_eq!(api.get("/user").await.status, 200);

    let fault = json!({"method":"GET","path_prefix":"/user","query_contains":"offset=2","status":503,"times":1});
    assert_eq!(
        api.admin(Method::POST, "/_sim/faults", Some(fault))
            .await
            .status,
        204
    );
    assert_eq!(
        api.admin(Method::GET, "/_sim/faults", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(api.get("/user?offset=2").await.status, 503);
    let bad_fault = api
        .admin(Method::POST, "/_sim/faults", Some(json!({"status": 200})))
        .await;
    assert_eq!((bad_fault.status, bad_fault.code()), (400, "invalid_fault"));
    let unknown_key = api
        .admin(
            Method::POST,
            "/_sim/faults",
            Some(json!({"status": 503, "bogus": 1})),
        )
        .await;
    assert_eq!(unknown_key.status, 400);

    assert_eq!(
        api.admin(
            Method::POST,
            "/_sim/fail_next",
            Some(json!({"count":1,"status":500}))
        )
        .await
        .status,
        204
    );
    assert_eq!(
        api.admin(Method::DELETE, "/_sim/faults", None).await.status,
        204
    );
    assert_eq!(api.get("/user").await.status, 200);

    assert_eq!(
        api.admin(Method::POST, "/_sim/latency", Some(json!({"ms": 150})))
            .await
            .status,
        204
    );
    assert_eq!(server.control().latency(), Duration::from_millis(150));
    api.admin(Method::POST, "/_sim/latency", Some(json!({"ms": 0})))
        .await;

    let limits = json!({"windows":[{"requests":1,"per_ms":60000}]});
    assert_eq!(
        api.admin(Method::POST, "/_sim/rate_limits", Some(limits))
            .await
            .status,
        204
    );
    assert_eq!(api.get("/container").await.status, 200);
    assert_eq!(api.get("/container").await.status, 429);
    // Moving the simulator's clock a whole window ahead lets the next request through.
    let advance = json!({"ms": 60_000});
    assert_eq!(
        api.admin(Method::POST, "/_sim/advance_clock", Some(advance))
            .await
            .status,
        204
    );
    assert_eq!(server.control().clock().advanced(), Duration::from_secs(60));
    assert_eq!(api.get("/container").await.status, 200);
    assert_eq!(api.get("/container").await.status, 429);
    let bad = json!({"ms": -1});
    let refused = api
        .admin(Method::POST, "/_sim/advance_clock", Some(bad))
        .await;
    assert_eq!(refused.status, 400);
    // Control routes are never limited.
    let added = api
        .admin(
            Method::POST,
            "/_sim/users",
            Some(
                json!({"username":"new.user","first_name":"New","last_name":"User",
                        "email":"new.user@example.com","access_roles":[2,3]}),
            ),
        )
        .await;
    assert_eq!(added.status, 201);
    let id = added.body["id"].as_u64().unwrap();
    api.admin(
        Method::POST,
        "/_sim/rate_limits",
        Some(json!({"windows": []})),
    )
    .await;
    let read = api.get(&format!("/user/{id}")).await;
    assert_eq!(read.body["username"], "new.user");
    assert_eq!(read.body["access_roles"].as_array().unwrap().len(), 2);

    let dup = api
        .admin(
            Method::POST,
            "/_sim/users",
            Some(json!({"username":"NEW.USER","first_name":"A","last_name":"B","email":"a@b.c"})),
        )
        .await;
    assert_eq!((dup.status, dup.code()), (400, "duplicate_username"));

    let found = api
        .admin(Method::GET, "/_sim/users?username=new.user", None)
        .await;
    assert_eq!(found.body[0]["id"], id);
    assert_eq!(
        api.admin(Method::GET, "/_sim/users", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let status = api
        .admin(
            Method::POST,
            &format!("/_sim/users/{id}/status"),
            Some(json!({"status":"inactive"})),
        )
        .await;
    assert_eq!(status.status, 204);
    assert_eq!(
        api.get(&format!("/user/{id}")).await.body["status"],
        "inactive"
    );
    let one = api
        .admin(Method::GET, &format!("/_sim/users/{id}"), None)
        .await;
    assert_eq!(one.body["status"], "inactive");

    assert_eq!(
        api.admin(Method::DELETE, &format!("/_sim/users/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(api.get(&format!("/user/{id}")).await.status, 404);
    let gone = api
        .admin(Method::DELETE, &format!("/_sim/users/{id}"), None)
        .await;
    assert_eq!((gone.status, gone.code()), (404, "not_found"));

    let stats = api.admin(Method::GET, "/_sim/stats", None).await;
    assert_eq!(stats.status, 200);
    let counted = server.control().stats();
    assert_eq!(stats.body["requests"], counted.requests);
    assert_eq!(counted.requests, 11, "control routes are not counted");
    assert_eq!(stats.body["responses_429"], 2);
    assert_eq!(stats.body["by_route"]["GET /user/{id}"], 3);
    assert_eq!(
        api.admin(Method::DELETE, "/_sim/stats", None).await.status,
        204
    );
    assert_eq!(server.control().stats(), SimStats::default());
}

#[tokio::test]
async fn control_user_helpers() {
    let server = start(config(2)).await;
    let control = server.control();
    let id = control
        .add_user(UserSpec {
            job_title: Some("Engineer".into()),
            container_id: Some(3),
            ..UserSpec::new("a.b", "A", "B", "a.b@example.com")
        })
        .unwrap();
    assert_eq!(control.user_count(), 3);
    assert_eq!(control.find_user("A.B").unwrap().id, id);
    assert_eq!(control.user(id).unwrap().container_id, 3);
    assert!(matches!(
        control.add_user(UserSpec::new("a.b", "A", "B", "x@example.com")),
        Err(ControlError::Invalid(_))
    ));
    assert!(matches!(
        control.add_user(UserSpec {
            container_id: Some(99),
            ..UserSpec::new("c", "C", "D", "c@example.com")
        }),
        Err(ControlError::Invalid(_))
    ));
    control.set_user_status(id, "inactive").unwrap();
    assert_eq!(control.user(id).unwrap().status, UserStatus::Inactive);
    assert!(control.set_user_status(id, "locked").is_err());
    assert_eq!(
        control.set_user_status(1, "active"),
        Err(ControlError::UnknownUser(1))
    );
    control.set_user_roles(id, &[1, 2]).unwrap();
    assert!(control.set_user_roles(id, &[]).is_err());
    assert_eq!(control.users().last().unwrap().access_roles, [1, 2]);
    assert!(control.remove_user(id));
    assert!(!control.remove_user(id));
    // Ids are never reused.
    let next = control
        .add_user(UserSpec::new("e", "E", "F", "e@example.com"))
        .unwrap();
    assert_eq!(next, id + 1);
}

#[tokio::test]
async fn toml_fragment_is_a_valid_target_table() {
    let server = start(config(1)).await;
    let fragment = server.toml_fragment("digicert");
    let table: toml::Table = toml::from_str(&fragment).unwrap();
    let target = &table["targets"]["digicert"];
    assert_eq!(target["kind"].as_str(), Some("digicert"));
    assert_eq!(
        target["base_url"].as_str(),
        Some(server.base_url().as_str())
    );
    assert_eq!(target["api_key"].as_str(), Some(DEFAULT_API_KEY));
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    assert!(server.base_url().ends_with("/services/v2"));

    let quoted: toml::Table = toml::from_str(&server.toml_fragment("my target")).unwrap();
    assert!(quoted["targets"].get("my target").is_some());
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_server() {
    let server = start(config(1)).await;
    let url = format!("{}/container", server.base_url());
    let key = server.control().api_key();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(&url)
            .header(DEVKEY_HEADER, &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.shutdown().await.unwrap();
    assert!(reqwest::Client::new().get(&url).send().await.is_err());

    let dropped = start(config(1)).await;
    let url = format!("{}/container", dropped.base_url());
    drop(dropped);
    let mut stopped = false;
    for _ in 0..50 {
        if reqwest::Client::new().get(&url).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped);
}
