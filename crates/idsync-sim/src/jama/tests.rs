//! The simulator over real HTTP on 127.0.0.1:0, driven with reqwest.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::Method;
use serde_json::{json, Value};

use super::*;
use crate::clock::until_waiting;
use crate::{FaultRule, SimClock, SimControl, SimStats};

/// 137 users, 12 of them inactive, 12 groups; no rate limit.
fn config() -> JamaSimConfig {
    JamaSimConfig {
        seed: JamaSeed {
            users: 137,
            inactive_users: 12,
            ..JamaSeed::default()
        },
        rate_limits: Vec::new(),
        ..JamaSimConfig::default()
    }
}

async fn start(config: JamaSimConfig) -> JamaServer {
    JamaSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

struct Api {
    http: reqwest::Client,
    origin: String,
    client_id: String,
    secret: String,
    token: String,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn message(&self) -> &str {
        self.body["meta"]["message"].as_str().unwrap_or("")
    }

    fn data(&self) -> &Vec<Value> {
        self.body["data"].as_array().unwrap()
    }

    fn page_info(&self) -> (u64, u64, u64) {
        let info = &self.body["meta"]["pageInfo"];
        (
            info["startIndex"].as_u64().unwrap(),
            info["resultCount"].as_u64().unwrap(),
            info["totalResults"].as_u64().unwrap(),
        )
    }
}

async fn answer(response: reqwest::Response) -> Answer {
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

impl Api {
    async fn new(server: &JamaServer) -> Self {
        let control = server.control();
        let mut api = Self {
            http: reqwest::Client::new(),
            origin: server.base_url(),
            client_id: control.client_id(),
            secret: control.client_secret().expose_secret().to_owned(),
            token: String::new(),
        };
        api.refresh().await;
        api
    }

    async fn token_with(&self, id: &str, secret: &str, form: &str) -> Answer {
        let response = self
            .http
            .post(format!("{}/rest/oauth/token", self.origin))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn refresh(&mut self) {
        let issued = self
            .token_with(
                &self.client_id,
                &self.secret,
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(issued.status, 200, "{:?}", issued.body);
        self.token = issued.body["access_token"].as_str().unwrap().to_owned();
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}/rest/v1{path}", self.origin));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.unwrap()).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, Some(&self.token), body).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.origin));
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.unwrap()).await
    }

    /// Every page of a list, by the sheet's rule: advance by `resultCount`.
    async fn all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let separator = if path.contains('?') { '&' } else { '?' };
        loop {
            let page = self
                .get(&format!(
                    "{path}{separator}startAt={}&maxResults=50",
                    items.len()
                ))
                .await;
            assert_eq!(page.status, 200, "{:?}", page.body);
            let (_, count, total) = page.page_info();
            items.extend(page.data().iter().cloned());
            if count == 0 || items.len() as u64 >= total {
                return items;
            }
        }
    }
}

fn new_user(username: &str) -> Value {
    json!({
        "username": username,
        "password": "Initial-Pa55word",
        "firstName": "Jane",
        "lastName": "Doe",
        "email": "jane.doe@example.com",
        "phone": "+1-503-555-0100",
        "title": "Systems Engineer",
        "location": "Portland",
        "licenseType": "FLOATING",
        "customData": [{"name": "department", "value": "Quality"}],
    })
}

fn keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn the_token_endpoint_takes_basic_client_credentials() {
    let server = start(config()).await;
    let control = server.control();
    let api = Api::new(&server).await;

    let issued = api
        .token_with(&api.client_id, &api.secret, "grant_type=client_credentials")
        .await;
    assert_eq!(issued.status, 200);
    assert_eq!(
        keys(&issued.body),
        [
            "access_token",
            "application_data",
            "expires_in",
            "jti",
            "scope",
            "tenant",
            "token_type"
        ]
    );
    assert_eq!(issued.body["token_type"], "bearer");
    assert_eq!(issued.body["expires_in"], 3600);
    assert_eq!(issued.headers["cache-control"], "no-store");
    assert_ne!(issued.body["access_token"].as_str().unwrap(), api.token);

    let wrong = api
        .token_with(
            &api.client_id,
            "not-the-secret",
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(
        (wrong.status, &wrong.body["error"]),
        (401, &json!("invalid_client"))
    );
    assert!(wrong.headers.contains_key(WWW_AUTHENTICATE));
    let unknown_id = api
        .token_with("someone", &api.secret, "grant_type=client_credentials")
        .await;
    assert_eq!(unknown_id.status, 401);
    let missing = answer(
        api.http
            .post(format!("{}/rest/oauth/token", api.origin))
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, 401);
    let no_grant = api.token_with(&api.client_id, &api.secret, "scope=x").await;
    assert_eq!(
        (no_grant.status, &no_grant.body["error"]),
        (400, &json!("invalid_request"))
    );
    let password_grant = api
        .token_with(&api.client_id, &api.secret, "grant_type=password")
        .await;
    assert_eq!(
        (password_grant.status, &password_grant.body["error"]),
        (400, &json!("unsupported_grant_type"))
    );
    let get = answer(
        api.http
            .get(format!("{}/rest/oauth/token", api.origin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(get.status, 405);

    // The API wants a bearer token it issued.
    assert_eq!(api.get("/users").await.status, 200);
    let none = api.call_with(Method::GET, "/users", None, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.body["meta"]["status"], "Unauthorized");
    assert!(!none.message().is_empty());
    let forged = api
        .call_with(Method::GET, "/users", Some("0123456789abcdef"), None)
        .await;
    assert_eq!(forged.status, 401);
    assert!(forged.message().contains("invalid"), "{}", forged.message());

    // Revoking rejects the secret and every token; restoring accepts the secret again.
    control.revoke_credentials();
    assert!(control.credentials_revoked());
    assert_eq!(api.get("/users").await.status, 401);
    let revoked = api
        .token_with(&api.client_id, &api.secret, "grant_type=client_credentials")
        .await;
    assert_eq!(revoked.status, 401);
    control.restore_credentials();
    assert_eq!(api.get("/users").await.status, 401, "old tokens stay dead");
    let mut api = api;
    api.refresh().await;
    assert_eq!(api.get("/users").await.status, 200);

    let stats = control.stats();
    // Api::new, the 200 above, wrong, unknown id, missing, no grant, password, GET,
    // revoked, refresh.
    assert_eq!(stats.token_requests, 10);
    assert_eq!(stats.route("POST /rest/oauth/token"), 9);
    assert_eq!(stats.route("unmatched"), 1);
    assert_eq!(stats.route("GET /users"), 6);
    assert_eq!(stats.responses_401, 4 + 4);
}

#[tokio::test]
async fn tokens_expire_after_their_lifetime() {
    let clock = SimClock::manual();
    let server = start(JamaSimConfig {
        token_lifetime: Duration::from_secs(1),
        clock: clock.clone(),
        ..config()
    })
    .await;
    let control = server.control();
    let mut api = Api::new(&server).await;
    let issued = api
        .token_with(&api.client_id, &api.secret, "grant_type=client_credentials")
        .await;
    assert_eq!(issued.body["expires_in"], 1);
    assert_eq!(api.get("/users/current").await.status, 200);
    // Valid to the last millisecond of its lifetime, expired from its end on.
    clock.advance(Duration::from_millis(999));
    assert_eq!(api.get("/users/current").await.status, 200);
    assert_eq!(
        control.live_tokens(),
        2,
        "both tokens issued at the same instant"
    );
    clock.advance(Duration::from_millis(1));
    let expired = api.get("/users/current").await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.message().contains("expired"),
        "{}",
        expired.message()
    );
    assert_eq!(control.live_tokens(), 0);

    // A fresh token works; the lifetime can change mid-run; expiry can be forced.
    control.set_token_lifetime(Duration::from_secs(3600));
    api.refresh().await;
    assert_eq!(api.get("/users/current").await.status, 200);
    assert_eq!(control.live_tokens(), 1);
    control.expire_tokens();
    let forced = api.get("/users/current").await;
    assert!((forced.status == 401) && forced.message().contains("expired"));
    api.refresh().await;
    assert_eq!(api.get("/users/current").await.status, 200);
    // An hour on, that token has expired too.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(api.get("/users/current").await.status, 401);
    assert_eq!(control.live_tokens(), 0);
}

#[tokio::test]
async fn meta_timestamps_come_from_the_simulators_clock() {
    let clock = SimClock::manual();
    let server = start(JamaSimConfig {
        clock: clock.clone(),
        ..config()
    })
    .await;
    let api = Api::new(&server).await;
    let stamp = |answer: &Answer| {
        answer.body["meta"]["timestamp"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let expected = || {
        clock
            .now_utc()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string()
    };
    assert_eq!(stamp(&api.get("/users?maxResults=1").await), expected());
    clock.advance(Duration::from_millis(1500));
    // API answers, errors and control-route refusals alike.
    assert_eq!(stamp(&api.get("/users/current").await), expected());
    assert_eq!(stamp(&api.get("/nowhere").await), expected());
    let refused = api
        .admin(Method::POST, "/_sim/faults", Some(json!({"status": 200})))
        .await;
    assert_eq!((refused.status, stamp(&refused)), (400, expected()));
    let elsewhere = api.admin(Method::GET, "/elsewhere", None).await;
    assert_eq!((elsewhere.status, stamp(&elsewhere)), (404, expected()));
}

#[tokio::test]
async fn lists_use_the_envelope_and_clamp_max_results_at_50() {
    let server = start(config()).await;
    let api = Api::new(&server).await;

    let first = api.get("/users").await;
    assert_eq!(first.status, 200);
    assert_eq!(keys(&first.body), ["data", "linked", "links", "meta"]);
    assert_eq!(first.body["links"], json!({}));
    assert_eq!(first.body["linked"], json!({}));
    assert_eq!(first.body["meta"]["status"], "OK");
    let timestamp = first.body["meta"]["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.3f%z").is_ok(),
        "{timestamp}"
    );
    assert!(timestamp.ends_with("+0000"));
    // Default page 20; 137 users, 12 inactive.
    assert_eq!(first.page_info(), (0, 20, 125));
    assert_eq!(first.data()[0]["username"], "jama.user00001");

    let clamped = api.get("/users?maxResults=100").await;
    assert_eq!(clamped.page_info(), (0, 50, 125));
    assert_eq!(clamped.data().len(), 50);
    let last = api.get("/users?startAt=120&maxResults=50").await;
    assert_eq!(last.page_info(), (120, 5, 125));
    let beyond = api.get("/users?startAt=500").await;
    assert_eq!(beyond.page_info(), (500, 0, 125));
    assert!(beyond.data().is_empty());
    let bad = api.get("/users?startAt=-1").await;
    assert_eq!(
        (bad.status, &bad.body["meta"]["status"]),
        (400, &json!("Bad Request"))
    );
    assert!(bad.message().contains("startAt"));

    // Advancing by resultCount reads everyone exactly once.
    let all = api.all("/users?includeInactive=true").await;
    assert_eq!(all.len(), 137);
    let mut ids: Vec<u64> = all.iter().map(|u| u["id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 137);

    // The user object has exactly the sheet's fields.
    let user = &first.data()[0];
    assert_eq!(
        keys(user),
        [
            "active",
            "authenticationType",
            "avatarUrl",
            "customData",
            "email",
            "firstName",
            "id",
            "lastName",
            "licenseType",
            "location",
            "phone",
            "title",
            "type",
            "username"
        ]
    );
    assert_eq!(user["type"], "users");
    assert_eq!(keys(&user["authenticationType"]), ["id", "name"]);
    assert!(user["customData"].is_array());
    assert!(all
        .iter()
        .any(|u| u["customData"].as_array().unwrap().len() == 1));

    // A single object is in `data`, without pageInfo.
    let id = user["id"].as_u64().unwrap();
    let one = api.get(&format!("/users/{id}")).await;
    assert_eq!(one.body["data"], *user);
    assert!(one.body["meta"].get("pageInfo").is_none());
    let current = api.get("/users/current").await;
    assert_eq!(current.body["data"]["username"], "jama.user00001");
    let missing = api.get("/users/999999").await;
    assert_eq!(
        (missing.status, &missing.body["meta"]["status"]),
        (404, &json!("Not Found"))
    );

    // Groups page the same way; `project` is null for organisation-wide groups.
    let groups = api.get("/usergroups?maxResults=5").await;
    assert_eq!(groups.page_info(), (0, 5, 12));
    let group = &groups.data()[0];
    assert_eq!(
        keys(group),
        ["description", "id", "name", "project", "type"]
    );
    let all_groups = api.all("/usergroups").await;
    assert!(all_groups.iter().any(|g| g["project"].is_null()));
    assert!(all_groups.iter().any(|g| g["project"].is_u64()));
    let gid = group["id"].as_u64().unwrap();
    assert_eq!(
        api.get(&format!("/usergroups/{gid}")).await.body["data"],
        *group
    );
}

#[tokio::test]
async fn include_inactive_and_filters() {
    let server = start(config()).await;
    let control = server.control();
    let api = Api::new(&server).await;

    let active = api.all("/users").await;
    assert_eq!(active.len(), 125);
    assert!(active.iter().all(|u| u["active"] == true));
    let everyone = api.all("/users?includeInactive=true").await;
    assert_eq!(everyone.len(), 137);
    let inactive: Vec<&Value> = everyone.iter().filter(|u| u["active"] == false).collect();
    assert_eq!(inactive.len(), 12);
    assert_eq!(
        control.users().iter().filter(|u| !u.active).count(),
        12,
        "the control view agrees"
    );

    let name = inactive[0]["username"]
        .as_str()
        .unwrap()
        .to_ascii_uppercase();
    let hidden = api.get(&format!("/users?username={name}")).await;
    assert_eq!(
        hidden.page_info().2,
        0,
        "inactive users need includeInactive"
    );
    let found = api
        .get(&format!("/users?username={name}&includeInactive=true"))
        .await;
    assert_eq!(found.page_info().2, 1);
    assert_eq!(found.data()[0]["id"], inactive[0]["id"]);
    let email = active[3]["email"].as_str().unwrap();
    let by_email = api.get(&format!("/users?email={email}")).await;
    assert_eq!(by_email.data()[0]["id"], active[3]["id"]);
}

#[tokio::test]
async fn create_answers_201_with_meta_id_and_validates() {
    let server = start(config()).await;
    let control = server.control();
    let api = Api::new(&server).await;

    let created = api
        .call(Method::POST, "/users", Some(new_user("new.person")))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(keys(&created.body), ["meta"], "no data");
    assert_eq!(created.body["meta"]["status"], "Created");
    let id = created.body["meta"]["id"].as_u64().unwrap();
    let location = created.body["meta"]["location"].as_str().unwrap();
    assert_eq!(location, format!("{}/rest/v1/users/{id}", api.origin));

    let read = api.get(&format!("/users/{id}")).await.body["data"].clone();
    assert_eq!(read["username"], "new.person");
    assert_eq!(read["licenseType"], "FLOATING");
    assert_eq!(read["active"], true);
    assert_eq!(
        read["customData"],
        json!([{"name": "department", "value": "Quality"}])
    );
    assert_eq!(
        read["authenticationType"],
        json!({"id": 1, "name": "BASIC"})
    );
    assert!(read.get("password").is_none());
    assert_eq!(control.user(id).unwrap().username, "new.person");

    // Duplicates (any letter case) are 400 "already exists".
    let dup = api
        .call(Method::POST, "/users/", Some(new_user("NEW.Person")))
        .await;
    assert_eq!(dup.status, 400);
    assert!(
        dup.message().contains("already exists"),
        "{}",
        dup.message()
    );

    // Every problem is named.
    let empty = api
        .call(Method::POST, "/users", Some(json!({"licenseType": "GOLD"})))
        .await;
    assert_eq!(empty.status, 400);
    for field in ["username", "firstName", "lastName", "email", "licenseType"] {
        assert!(
            empty.message().contains(field),
            "{field}: {}",
            empty.message()
        );
    }
    let not_json = answer(
        api.http
            .post(format!("{}/rest/v1/users", api.origin))
            .header(AUTHORIZATION, format!("Bearer {}", api.token))
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(not_json.status, 400);
    // Without licenseType a user is NAMED.
    let mut plain = new_user("plain.person");
    plain.as_object_mut().unwrap().remove("licenseType");
    let plain = api.call(Method::POST, "/users", Some(plain)).await;
    let plain_id = plain.body["meta"]["id"].as_u64().unwrap();
    assert_eq!(plain_id, id + 1);
    assert_eq!(
        control.user(plain_id).unwrap().license_type,
        LicenseType::Named
    );
}

#[tokio::test]
async fn put_is_a_full_replace_that_tolerates_a_null_password() {
    let server = start(config()).await;
    let control = server.control();
    let api = Api::new(&server).await;
    let id = api
        .call(Method::POST, "/users", Some(new_user("replace.me")))
        .await
        .body["meta"]["id"]
        .as_u64()
        .unwrap();

    // What the official client sends: no licenseType, password null, nulls to clear.
    let put = api
        .call(
            Method::PUT,
            &format!("/users/{id}"),
            Some(json!({
                "username": "replace.me",
                "password": null,
                "firstName": "Janet",
                "lastName": "Doe",
                "email": "janet.doe@example.com",
                "phone": null,
                "title": "Quality Manager",
                "location": null,
            })),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(put.body["meta"]["status"], "OK");
    let read = api.get(&format!("/users/{id}")).await.body["data"].clone();
    assert_eq!(read["firstName"], "Janet");
    assert_eq!(read["email"], "janet.doe@example.com");
    assert_eq!(read["title"], "Quality Manager");
    assert!(read["phone"].is_null() && read["location"].is_null());
    assert_eq!(read["customData"], json!([]), "left out: cleared");
    assert_eq!(read["licenseType"], "FLOATING", "left out: kept");
    assert_eq!(read["active"], true);

    // Fields left out entirely are cleared too; a trailing slash works.
    let minimal = json!({"username": "replace.me", "firstName": "J", "lastName": "D",
                         "email": "j@d.example", "title": null});
    let put = api
        .call(Method::PUT, &format!("/users/{id}/"), Some(minimal))
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(control.user(id).unwrap().title, None);

    // A password on update is refused; required fields are still required.
    let with_password = api
        .call(
            Method::PUT,
            &format!("/users/{id}"),
            Some(
                json!({"username": "replace.me", "password": "x", "firstName": "J",
                        "lastName": "D", "email": "j@d.example"}),
            ),
        )
        .await;
    assert_eq!(with_password.status, 400);
    assert!(with_password.message().contains("password"));
    let no_email = api
        .call(
            Method::PUT,
            &format!("/users/{id}"),
            Some(json!({"username": "replace.me", "firstName": "J", "lastName": "D"})),
        )
        .await;
    assert_eq!(no_email.status, 400);
    assert!(no_email.message().contains("email"));
    // Renaming onto another user is a duplicate; renaming onto itself is not.
    let clash = api
        .call(
            Method::PUT,
            &format!("/users/{id}"),
            Some(
                json!({"username": "JAMA.USER00002", "firstName": "J", "lastName": "D",
                        "email": "j@d.example"}),
            ),
        )
        .await;
    assert!(clash.status == 400 && clash.message().contains("already exists"));
    let unknown = api
        .call(Method::PUT, "/users/999999", Some(new_user("x.y")))
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn active_toggles_and_drops_the_user_from_the_default_list() {
    let server = start(config()).await;
    let control = server.control();
    let api = Api::new(&server).await;
    let id = control.users()[5].id;

    let off = api
        .call(
            Method::PUT,
            &format!("/users/{id}/active"),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(
        (off.status, &off.body["meta"]["status"]),
        (200, &json!("OK"))
    );
    assert!(!control.user(id).unwrap().active);
    assert_eq!(
        api.get(&format!("/users/{id}")).await.body["data"]["active"],
        false
    );
    let listed = api.all("/users").await;
    assert_eq!(listed.len(), 124);
    assert!(listed.iter().all(|u| u["id"] != id));

    let on = api
        .call(
            Method::PUT,
            &format!("/users/{id}/active/"),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(on.status, 200);
    assert_eq!(api.all("/users").await.len(), 125);

    let bad = api
        .call(
            Method::PUT,
            &format!("/users/{id}/active"),
            Some(json!({"active": "no"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let unknown = api
        .call(
            Method::PUT,
            "/users/999999/active",
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn membership_add_and_remove_with_idempotency_errors() {
    let server = start(config()).await;
    let control = server.control();
    let api = Api::new(&server).await;
    let group = control.groups()[0].clone();
    let members = control.members(group.id).unwrap();
    assert_eq!(members.len(), group.members);
    let outsider = control
        .users()
        .iter()
        .map(|u| u.id)
        .find(|id| !members.contains(id))
        .unwrap();

    let listed = api.all(&format!("/usergroups/{}/users", group.id)).await;
    let listed_ids: Vec<u64> = listed.iter().map(|u| u["id"].as_u64().unwrap()).collect();
    assert_eq!(
        listed_ids, members,
        "members in id order, inactive included"
    );
    assert!(listed.iter().all(|u| u["type"] == "users"));
    let page = api
        .get(&format!("/usergroups/{}/users?maxResults=3", group.id))
        .await;
    assert_eq!(page.page_info(), (0, 3, members.len() as u64));

    let path = format!("/usergroups/{}/users", group.id);
    let added = api
        .call(Method::POST, &path, Some(json!({"user": outsider})))
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(added.body["meta"]["status"], "Created");
    assert!(control.members(group.id).unwrap().contains(&outsider));
    let again = api
        .call(
            Method::POST,
            &format!("{path}/"),
            Some(json!({"user": outsider})),
        )
        .await;
    assert_eq!(again.status, 400);
    assert!(
        again.message().contains("already exists"),
        "{}",
        again.message()
    );

    let removed = api
        .call(Method::DELETE, &format!("{path}/{outsider}"), None)
        .await;
    assert_eq!(removed.status, 200);
    assert_eq!(removed.body["meta"]["status"], "OK");
    assert!(!control.members(group.id).unwrap().contains(&outsider));
    let not_member = api
        .call(Method::DELETE, &format!("{path}/{outsider}/"), None)
        .await;
    assert_eq!(not_member.status, 404);
    assert!(!not_member.message().is_empty());

    let unknown_user = api
        .call(Method::POST, &path, Some(json!({"user": 999_999})))
        .await;
    assert_eq!(unknown_user.status, 404);
    let unknown_group = api
        .call(
            Method::POST,
            "/usergroups/999999/users",
            Some(json!({"user": outsider})),
        )
        .await;
    assert_eq!(unknown_group.status, 404);
    assert_eq!(api.get("/usergroups/999999/users").await.status, 404);
    let no_user = api.call(Method::POST, &path, Some(json!({"id": 1}))).await;
    assert_eq!(no_user.status, 400);

    // The control handle reports idempotent outcomes.
    assert_eq!(control.add_member(group.id, outsider), Ok(true));
    assert_eq!(control.add_member(group.id, outsider), Ok(false));
    assert_eq!(control.remove_member(group.id, outsider), Ok(true));
    assert_eq!(control.remove_member(group.id, outsider), Ok(false));
    assert_eq!(
        control.add_member(999_999, outsider),
        Err(JamaControlError::UnknownGroup(999_999))
    );
}

#[tokio::test]
async fn every_route_accepts_a_trailing_slash_and_unknown_routes_get_a_meta_body() {
    let server = start(config()).await;
    let control = server.control();
    let api = Api::new(&server).await;
    let user = control.users()[0].id;
    let group = control.groups()[0].id;
    for path in [
        "/users/".to_owned(),
        "/users/current/".to_owned(),
        format!("/users/{user}/"),
        "/usergroups/".to_owned(),
        format!("/usergroups/{group}/"),
        format!("/usergroups/{group}/users/"),
    ] {
        let answer = api.get(&path).await;
        assert_eq!(answer.status, 200, "{path}");
    }
    let token = api
        .http
        .post(format!("{}/rest/oauth/token/", api.origin))
        .basic_auth(&api.client_id, Some(&api.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);

    let unknown = api.get("/projects").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["meta"]["status"], "Not Found");
    let wrong_method = api
        .call(Method::DELETE, &format!("/users/{user}"), None)
        .await;
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.body["meta"]["message"].is_string());
    let outside = api.admin(Method::GET, "/elsewhere", None).await;
    assert_eq!(outside.status, 404);
    assert!(outside.body["meta"].is_object());
}

#[tokio::test]
async fn the_tenant_window_answers_bare_429s_and_skips_the_token_endpoint() {
    let clock = SimClock::manual();
    let server = start(JamaSimConfig {
        rate_limits: vec![RateWindow::new(3, Duration::from_millis(400))],
        clock: clock.clone(),
        ..config()
    })
    .await;
    let control = server.control();
    let api = Api::new(&server).await;
    for _ in 0..3 {
        assert_eq!(api.get("/users").await.status, 200);
    }
    let limited = api.get("/usergroups").await;
    assert_eq!(limited.status, 429);
    assert!(!limited.headers.contains_key(RETRY_AFTER));
    assert_eq!(limited.body["meta"]["status"], "Too Many Requests");
    assert!(!limited.message().is_empty());
    // Tokens are not rate limited.
    let token = api
        .token_with(&api.client_id, &api.secret, "grant_type=client_credentials")
        .await;
    assert_eq!(token.status, 200);
    clock.advance(Duration::from_millis(400));
    assert_eq!(api.get("/users").await.status, 200);
    assert_eq!(control.stats().responses_429, 1);
    // The default is Jama's 10 per second.
    assert_eq!(JamaSimConfig::default().rate_limits, jama_rate_limits());
    assert_eq!(
        jama_rate_limits(),
        [RateWindow::new(10, Duration::from_secs(1))]
    );
}

#[tokio::test]
async fn the_default_limit_refuses_the_eleventh_request_in_a_second() {
    let clock = SimClock::manual();
    let server = start(JamaSimConfig {
        rate_limits: jama_rate_limits(),
        clock: clock.clone(),
        ..config()
    })
    .await;
    let api = Api::new(&server).await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(api.get("/users/current").await.status);
        // Ten requests spread over 900 ms, the eleventh in the same second.
        clock.advance(Duration::from_millis(90));
    }
    assert_eq!(statuses[..10], [200; 10]);
    assert_eq!(statuses[10], 429);
}

#[tokio::test]
async fn a_fault_rule_hits_exactly_the_matching_page() {
    let server = start(config()).await;
    let control = server.control();
    let mut api = Api::new(&server).await;
    control
        .fail_when(
            FaultRule::new(503)
                .with_method("GET")
                .with_path_prefix("/users")
                .with_query("startAt=40")
                .with_times(1),
        )
        .unwrap();
    assert_eq!(api.get("/users?startAt=20").await.status, 200);
    assert_eq!(api.get("/usergroups?startAt=40").await.status, 200);
    let failed = api.get("/users/?startAt=40&maxResults=20").await;
    assert_eq!(failed.status, 503);
    assert_eq!(failed.body["meta"]["status"], "Service Unavailable");
    assert_eq!(api.get("/users?startAt=40").await.status, 200, "spent");
    assert!(control.faults().is_empty());

    // fail_next hits API requests only; a rule naming the token path hits tokens only.
    control.fail_next(1, 500).unwrap();
    control
        .fail_when(
            FaultRule::new(502)
                .with_path_prefix("/rest/oauth/token")
                .with_times(1),
        )
        .unwrap();
    let token = api
        .token_with(&api.client_id, &api.secret, "grant_type=client_credentials")
        .await;
    assert_eq!(token.status, 502);
    api.refresh().await;
    assert_eq!(api.get("/users").await.status, 500);
    assert_eq!(api.get("/users").await.status, 200);
    assert_eq!(control.stats().responses_5xx, 3);
    assert!(control.fail_next(1, 200).is_err());
}

#[tokio::test]
async fn latency_delays_token_and_api_answers() {
    let clock = SimClock::manual();
    let server = start(JamaSimConfig {
        clock: clock.clone(),
        ..config()
    })
    .await;
    let control = server.control();
    let api = std::sync::Arc::new(Api::new(&server).await);
    control.set_latency(Duration::from_millis(200));
    assert_eq!(control.latency(), Duration::from_millis(200));
    let mut user = tokio::spawn({
        let api = api.clone();
        async move { api.get("/users/current").await.status }
    });
    // Both wait on the simulator's clock for exactly the latency, unanswered...
    until_waiting(&clock, 1, &mut user).await;
    let mut token = tokio::spawn({
        let api = api.clone();
        async move {
            api.token_with(&api.client_id, &api.secret, "grant_type=client_credentials")
                .await
                .status
        }
    });
    until_waiting(&clock, 2, &mut token).await;
    let before = control.stats();
    assert_eq!(
        clock.sleeping(),
        [Duration::from_millis(200), Duration::from_millis(200)]
    );
    // ...and both are answered once it has moved that far.
    clock.advance(Duration::from_millis(200));
    assert_eq!((user.await.unwrap(), token.await.unwrap()), (200, 200));
    let after = control.stats();
    assert_eq!(after.requests - before.requests, 2);
    assert_eq!(after.token_requests - before.token_requests, 1);
}

#[tokio::test]
async fn control_routes_drive_the_simulator() {
    let server = start(config()).await;
    let control = server.control();
    let mut api = Api::new(&server).await;

    assert_eq!(
        api.admin(Method::POST, "/_sim/revoke", None).await.status,
        204
    );
    assert_eq!(api.get("/users").await.status, 401);
    assert_eq!(
        api.admin(Method::POST, "/_sim/restore", None).await.status,
        204
    );
    api.refresh().await;

    let lifetime = api
        .admin(
            Method::POST,
            "/_sim/token_lifetime",
            Some(json!({"secs": 5})),
        )
        .await;
    assert_eq!(lifetime.status, 204);
    assert_eq!(control.token_lifetime(), Duration::from_secs(5));
    assert_eq!(
        api.admin(Method::POST, "/_sim/expire_tokens", None)
            .await
            .status,
        204
    );
    assert_eq!(api.get("/users").await.status, 401);
    api.refresh().await;
    // Moving the simulator's clock past the lifetime ages tokens as time would.
    let advance = json!({"ms": 5_000});
    assert_eq!(
        api.admin(Method::POST, "/_sim/advance_clock", Some(advance))
            .await
            .status,
        204
    );
    let aged = api.get("/users").await;
    assert!(
        aged.status == 401 && aged.message().contains("expired"),
        "{aged:?}"
    );
    api.refresh().await;

    let added = api
        .admin(
            Method::POST,
            "/_sim/users",
            Some(
                json!({"username": "ops.added", "firstName": "Ops", "lastName": "Added",
                        "email": "ops@example.com", "licenseType": "STAKEHOLDER",
                        "active": false}),
            ),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    let id = added.body["id"].as_u64().unwrap();
    let read = api.get(&format!("/users/{id}")).await.body["data"].clone();
    assert_eq!(
        (read["licenseType"].as_str(), read["active"].as_bool()),
        (Some("STAKEHOLDER"), Some(false))
    );
    let dup = api
        .admin(
            Method::POST,
            "/_sim/users",
            Some(
                json!({"username": "OPS.ADDED", "firstName": "A", "lastName": "B",
                        "email": "a@b.c"}),
            ),
        )
        .await;
    assert_eq!(dup.status, 400);
    assert!(dup.message().contains("already exists"));
    let found = api
        .admin(Method::GET, "/_sim/users?username=ops.added", None)
        .await;
    assert_eq!(found.body[0]["id"], id);
    assert_eq!(
        api.admin(
            Method::POST,
            &format!("/_sim/users/{id}/active"),
            Some(json!({"active": true}))
        )
        .await
        .status,
        204
    );
    assert!(control.user(id).unwrap().active);

    let group = control.groups()[1].id;
    let add = api
        .admin(
            Method::POST,
            &format!("/_sim/groups/{group}/members"),
            Some(json!({"user": id})),
        )
        .await;
    assert_eq!(add.status, 204);
    let members = api
        .admin(Method::GET, &format!("/_sim/groups/{group}/members"), None)
        .await;
    assert!(members.body.as_array().unwrap().contains(&json!(id)));

    // Hide: gone from reads, lists and groups; unhide: back with the same id and groups.
    assert_eq!(
        api.admin(Method::POST, &format!("/_sim/users/{id}/hide"), None)
            .await
            .status,
        204
    );
    assert_eq!(api.get(&format!("/users/{id}")).await.status, 404);
    assert!(!control.members(group).unwrap().contains(&id));
    assert_eq!(
        api.admin(Method::POST, &format!("/_sim/users/{id}/unhide"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.get(&format!("/users/{id}")).await.body["data"]["username"],
        "ops.added"
    );
    assert!(control.members(group).unwrap().contains(&id));

    assert_eq!(
        api.admin(
            Method::DELETE,
            &format!("/_sim/groups/{group}/members/{id}"),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        api.admin(Method::DELETE, &format!("/_sim/users/{id}"), None)
            .await
            .status,
        204
    );
    let gone = api
        .admin(Method::DELETE, &format!("/_sim/users/{id}"), None)
        .await;
    assert_eq!(gone.status, 404);
    assert!(gone.body["meta"]["message"].is_string());
    let groups = api.admin(Method::GET, "/_sim/groups", None).await;
    assert_eq!(groups.body.as_array().unwrap().len(), 12);

    // The shared levers.
    let fault = json!({"method": "GET", "path_prefix": "/usergroups", "status": 503, "times": 1});
    assert_eq!(
        api.admin(Method::POST, "/_sim/faults", Some(fault))
            .await
            .status,
        204
    );
    assert_eq!(api.get("/usergroups").await.status, 503);
    let bad_fault = api
        .admin(Method::POST, "/_sim/faults", Some(json!({"status": 200})))
        .await;
    assert_eq!(bad_fault.status, 400);
    assert!(bad_fault.body["meta"]["message"].is_string());
    let limits = json!({"windows": [{"requests": 1, "per_ms": 60000}]});
    assert_eq!(
        api.admin(Method::POST, "/_sim/rate_limits", Some(limits))
            .await
            .status,
        204
    );
    assert_eq!(api.get("/usergroups").await.status, 200);
    assert_eq!(api.get("/usergroups").await.status, 429);
    assert_eq!(
        api.admin(Method::POST, "/_sim/latency", Some(json!({"ms": 5})))
            .await
            .status,
        204
    );
    assert_eq!(control.latency(), Duration::from_millis(5));

    let stats = api.admin(Method::GET, "/_sim/stats", None).await;
    assert_eq!(stats.body["requests"], control.stats().requests);
    assert_eq!(stats.body["token_requests"], 4);
    assert_eq!(stats.body["responses_429"], 1);
    assert_eq!(
        api.admin(Method::DELETE, "/_sim/stats", None).await.status,
        204
    );
    assert_eq!(control.stats(), SimStats::default());
}

#[tokio::test]
async fn twenty_thousand_users_in_forty_groups_serve_every_member_page() {
    let server = start(JamaSimConfig {
        seed: JamaSeed {
            users: 20_000,
            inactive_users: 1_000,
            groups: 40,
            memberships_per_user: 10,
            ..JamaSeed::default()
        },
        rate_limits: Vec::new(),
        ..JamaSimConfig::default()
    })
    .await;
    let control = server.control();
    let api = Api::new(&server).await;
    assert_eq!(control.user_count(), 20_000);
    assert_eq!(control.groups().len(), 40);
    let total = control.membership_count();
    assert!((190_000..210_000).contains(&total), "{total}");

    let first = api.get("/users?maxResults=50").await;
    assert_eq!(first.page_info(), (0, 50, 19_000));
    let last = api.get("/users?includeInactive=true&startAt=19990").await;
    assert_eq!(last.page_info(), (19_990, 10, 20_000));
    assert_eq!(last.data()[9]["username"], "jama.user20000");

    // One whole group, page by page.
    let group = control.groups()[3].clone();
    let members = api.all(&format!("/usergroups/{}/users", group.id)).await;
    assert_eq!(members.len(), group.members);
    let ids: Vec<u64> = members.iter().map(|u| u["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, control.members(group.id).unwrap());
}

#[tokio::test]
async fn the_toml_fragment_is_a_jama_target_and_secrets_stay_out_of_debug() {
    let server = start(config()).await;
    let fragment = server.toml_fragment("jama");
    let table: toml::Table = fragment.parse().unwrap();
    let target = &table["targets"]["jama"];
    assert_eq!(target["kind"].as_str(), Some("jama"));
    assert_eq!(
        target["base_url"].as_str(),
        Some(server.base_url().as_str())
    );
    assert!(!server.base_url().ends_with('/'));
    assert_eq!(target["client_id"].as_str(), Some(DEFAULT_CLIENT_ID));
    assert_eq!(
        target["client_secret"].as_str(),
        Some(DEFAULT_CLIENT_SECRET)
    );
    let quoted: toml::Table = server.toml_fragment("my jama").parse().unwrap();
    assert!(quoted["targets"].get("my jama").is_some());

    let api = Api::new(&server).await;
    let debug = format!("{:?} {:?}", JamaSimConfig::default(), server.control());
    assert!(!debug.contains(DEFAULT_CLIENT_SECRET), "{debug}");
    assert!(!debug.contains(&api.token));
    server.shutdown().await.unwrap();
}
