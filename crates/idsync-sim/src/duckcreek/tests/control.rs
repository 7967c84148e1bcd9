//! The control routes under `/_sim/`, the control handle and the TOML fragment.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::*;

#[tokio::test]
async fn control_routes_drive_the_simulator() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);

    assert_eq!(
        client.admin(Method::POST, "/_sim/revoke", None).await.0,
        204
    );
    assert_eq!(client.call("").await.status, 500);
    assert_eq!(
        client.admin(Method::POST, "/_sim/restore", None).await.0,
        204
    );
    assert_eq!(client.call("").await.status, 200);

    let (status, added) = client
        .admin(
            Method::POST,
            "/_sim/users",
            Some(
                json!({"name": "ops.added", "email": "ops@example.com", "fullName": "Ops Added",
                        "status": "Locked", "roles": ["auditor"], "entities": ["Claims Center"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_u64().unwrap();
    assert_eq!(id, 1061, "ids continue after the seed");
    let (status, user) = client
        .admin(Method::GET, &format!("/_sim/users/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        user,
        json!({"id": id, "name": "ops.added", "email": "ops@example.com", "fullName": "Ops Added",
               "status": "Locked", "roles": ["Auditor"], "entities": ["Claims Center"]})
    );
    let listed = client.users(1).await;
    assert_eq!(listed.last().unwrap().attr("name"), "ops.added");
    let (_, found) = client
        .admin(Method::GET, "/_sim/users?name=OPS.ADDED", None)
        .await;
    assert_eq!(found[0]["id"], id);
    let (_, everyone) = client.admin(Method::GET, "/_sim/users", None).await;
    assert_eq!(everyone.as_array().unwrap().len(), 61);
    for (body, status) in [
        (json!({"name": "Ops.Added"}), 400),
        (json!({"name": ""}), 400),
        (json!({"name": "x", "roles": ["Pilot"]}), 404),
        (json!({"name": "x", "entities": ["Mars"]}), 404),
        (json!({"name": "x\u{7}"}), 400),
        (json!({"name": "x", "nickname": "y"}), 400),
    ] {
        let (got, error) = client
            .admin(Method::POST, "/_sim/users", Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body}");
        assert!(error["error"].is_string(), "{error}");
    }

    let status_body = json!({"status": "Active"});
    assert_eq!(
        client
            .admin(
                Method::POST,
                &format!("/_sim/users/{id}/status"),
                Some(status_body)
            )
            .await
            .0,
        204
    );
    assert_eq!(control.user(id).unwrap().status, DcUserStatus::Active);
    let grant = json!({"role": "Underwriter"});
    for _ in 0..2 {
        let path = format!("/_sim/users/{id}/roles");
        assert_eq!(
            client
                .admin(Method::POST, &path, Some(grant.clone()))
                .await
                .0,
            204
        );
    }
    assert_eq!(control.user(id).unwrap().roles, ["Underwriter", "Auditor"]);
    let revoke = format!("/_sim/users/{id}/roles/auditor");
    assert_eq!(client.admin(Method::DELETE, &revoke, None).await.0, 204);
    let bad_role = client
        .admin(
            Method::POST,
            &format!("/_sim/users/{id}/roles"),
            Some(json!({"role": "Pilot"})),
        )
        .await;
    assert_eq!(bad_role.0, 404);
    let join = json!({"entity": "R&D <Labs>"});
    let path = format!("/_sim/users/{id}/entities");
    assert_eq!(client.admin(Method::POST, &path, Some(join)).await.0, 204);
    let leave = format!("/_sim/users/{id}/entities/claims%20center");
    assert_eq!(client.admin(Method::DELETE, &leave, None).await.0, 204);
    let now = control.user(id).unwrap();
    assert_eq!(
        (now.roles, now.entities),
        (
            vec!["Underwriter".to_owned()],
            vec!["R&D <Labs>".to_owned()]
        )
    );

    let (_, roles) = client.admin(Method::GET, "/_sim/roles", None).await;
    assert_eq!(roles, serde_json::to_value(control.roles()).unwrap());
    assert_eq!(roles.as_array().unwrap().len(), 12);
    let (_, entities) = client.admin(Method::GET, "/_sim/entities", None).await;
    assert_eq!(
        entities[0],
        json!({"id": 1, "name": "Duck Creek Mutual", "element": "Entity"})
    );
    let (_, privileges) = client.admin(Method::GET, "/_sim/privileges", None).await;
    assert_eq!(privileges[0]["type"], "Application");

    assert_eq!(
        client
            .admin(Method::DELETE, &format!("/_sim/users/{id}"), None)
            .await
            .0,
        204
    );
    let (status, gone) = client
        .admin(Method::DELETE, &format!("/_sim/users/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert!(gone["error"].as_str().unwrap().contains(&id.to_string()));
    assert_eq!(
        client.admin(Method::GET, "/_sim/users/1", None).await.0,
        404
    );

    // The shared levers.
    let limits = json!({"windows": [{"requests": 1, "per_ms": 60000}]});
    assert_eq!(
        client
            .admin(Method::POST, "/_sim/rate_limits", Some(limits))
            .await
            .0,
        204
    );
    assert_eq!(client.call("").await.status, 200);
    assert_eq!(client.call("").await.status, 429);
    assert_eq!(
        client
            .admin(
                Method::POST,
                "/_sim/rate_limits",
                Some(json!({"windows": []}))
            )
            .await
            .0,
        204
    );
    let latency = json!({"ms": 5});
    assert_eq!(
        client
            .admin(Method::POST, "/_sim/latency", Some(latency))
            .await
            .0,
        204
    );
    assert_eq!(control.latency(), Duration::from_millis(5));
    let fail = json!({"count": 1, "status": 503});
    assert_eq!(
        client
            .admin(Method::POST, "/_sim/fail_next", Some(fail))
            .await
            .0,
        204
    );
    assert_eq!(client.call("").await.status, 503);
    let (status, bad) = client
        .admin(Method::POST, "/_sim/faults", Some(json!({"status": 200})))
        .await;
    assert_eq!(status, 400);
    assert!(bad["error"].is_string());
    let (_, stats) = client.admin(Method::GET, "/_sim/stats", None).await;
    assert_eq!(stats["requests"], control.stats().requests);
    assert_eq!(stats["login_failures"], 1);
    assert_eq!(stats["by_inner_request"]["OnlineData.listEntityUsersRq"], 1);
    assert_eq!(stats["by_route"][api::ROUTE], control.stats().requests);
    assert_eq!(
        client.admin(Method::DELETE, "/_sim/stats", None).await.0,
        204
    );
    assert_eq!(control.stats(), SimStats::default());
}

#[tokio::test]
async fn the_control_handle_edits_roles_users_and_memberships() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let role = control.add_role("Reviewer", "Reviews.", vec![503]).unwrap();
    assert!(control.add_role("REVIEWER", "", Vec::new()).is_err());
    assert!(control.add_role("Other", "", vec![9]).is_err());
    assert!(control.add_role(" ", "", Vec::new()).is_err());
    let user = control
        .add_user(DcUserSpec::new("new.user", "", ""))
        .unwrap();
    assert_eq!(control.grant_role(user, "reviewer"), Ok(true));
    assert_eq!(control.grant_role(user, "Reviewer"), Ok(false));
    assert_eq!(
        control.grant_role(user, "Nope"),
        Err(DuckCreekControlError::UnknownRole("Nope".into()))
    );
    assert_eq!(
        control.grant_role(42, "Reviewer"),
        Err(DuckCreekControlError::UnknownUser(42))
    );
    assert_eq!(control.add_membership(user, "claims center"), Ok(true));
    assert_eq!(control.add_membership(user, "Claims Center"), Ok(false));
    let users = client.users(1).await;
    let node = users.iter().find(|u| u.attr("name") == "new.user").unwrap();
    assert_eq!(listed(node).roles, ["Reviewer"]);
    assert_eq!(node.attr("email"), "");
    assert!(control.remove_role(role));
    assert!(!control.remove_role(role));
    assert_eq!(control.user(user).unwrap().roles, Vec::<String>::new());
    assert_eq!(control.revoke_role(user, "Auditor"), Ok(false));
    assert_eq!(control.remove_membership(user, "Claims Center"), Ok(true));
    assert_eq!(control.remove_membership(user, "Claims Center"), Ok(false));
    assert_eq!(
        control.remove_membership(user, "Mars"),
        Err(DuckCreekControlError::UnknownEntity("Mars".into()))
    );
    assert!(control.set_status(42, DcUserStatus::Locked).is_err());
    assert_eq!(control.find_user("NEW.USER").unwrap().id, user);
    assert_eq!(control.user_count(), 61);
    assert!(control.remove_user(user));
    assert!(control.find_user("new.user").is_none());
    assert_eq!(control.user_count(), 60);
}

#[tokio::test]
async fn the_toml_fragment_is_a_duckcreek_target_and_secrets_stay_out_of_debug() {
    let server = start(config()).await;
    let fragment = server.toml_fragment("duckcreek");
    let table: toml::Table = fragment.parse().unwrap();
    let target = &table["targets"]["duckcreek"];
    assert_eq!(target["kind"].as_str(), Some("duckcreek"));
    assert_eq!(
        target["base_url"].as_str(),
        Some(server.base_url().as_str())
    );
    assert!(server.base_url().ends_with("/Server/Server.asmx"));
    assert_eq!(target["username"].as_str(), Some(DEFAULT_USERNAME));
    assert_eq!(target["password"].as_str(), Some(DEFAULT_PASSWORD));
    let quoted: toml::Table = server.toml_fragment("dc east").parse().unwrap();
    assert!(quoted["targets"].get("dc east").is_some());

    let debug = format!("{:?} {:?}", DuckCreekSimConfig::default(), server.control());
    assert!(!debug.contains(DEFAULT_PASSWORD), "{debug}");
    server.shutdown().await.unwrap();
}
