//! The requests: lock/unlock, grants and memberships, unknown requests, the catalogues,
//! escaping, a large list and deterministic data.

use std::collections::HashSet;

use super::*;

#[tokio::test]
async fn lock_and_unlock_round_trip_and_repeat_harmlessly() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let user = control
        .users()
        .into_iter()
        .find(|u| u.status == DcUserStatus::Active)
        .unwrap();
    let other = control
        .users()
        .into_iter()
        .find(|u| u.id != user.id)
        .unwrap();
    let lock_by_name = format!(
        "<Security.lockUserAccountRq userName=\"{}\"/>",
        user.name.to_uppercase()
    );
    for _ in 0..2 {
        let rs = client.one(&lock_by_name).await;
        assert_eq!(
            (rs.name.as_str(), rs.outcome()),
            ("Security.lockUserAccountRs", Ok(()))
        );
        assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Locked);
    }
    let listed = client.users(1).await;
    let node = listed.iter().find(|u| u.attr("name") == user.name).unwrap();
    assert_eq!(node.attr("status"), "Locked");
    let unlock = format!("<Security.unlockUserAccountRq userName=\"{}\"/>", user.name);
    for _ in 0..2 {
        assert_eq!(client.one(&unlock).await.outcome(), Ok(()));
        assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Active);
    }
    let by_both = format!(
        "<Security.lockUserAccountRq userID=\"{}\" userName=\"{}\"/>",
        user.id, user.name
    );
    assert_eq!(client.one(&by_both).await.outcome(), Ok(()));
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Locked);
    let by_id = format!("<Security.unlockUserAccountRq userID=\"{}\"/>", user.id);
    assert_eq!(client.one(&by_id).await.outcome(), Ok(()));
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Active);

    let refused = client
        .batch(&format!(
            "<Security.lockUserAccountRq userID=\"{}\" userName=\"{}\"/>\
             <Security.lockUserAccountRq userName=\"nobody\"/>\
             <Security.lockUserAccountRq userID=\"999999\"/>\
             <Security.lockUserAccountRq/>\
             <Security.unlockUserAccountRq userName=\"\"/>\
             <Security.lockUserAccountRq userID=\"x\"/>",
            other.id, user.name
        ))
        .await;
    let codes: Vec<String> = refused.iter().map(Node::failure_code).collect();
    assert_eq!(
        codes,
        [
            "InvalidRequest",
            "UserNotFound",
            "UserNotFound",
            "InvalidRequest",
            "InvalidRequest",
            "InvalidRequest"
        ]
    );
    assert_eq!(control.user(user.id).unwrap().status, DcUserStatus::Active);
    assert_eq!(control.user(other.id).unwrap().status, other.status);
}

#[tokio::test]
async fn roles_and_memberships_are_granted_and_revoked_by_name() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let user = control
        .users()
        .into_iter()
        .find(|u| {
            !u.roles.contains(&"Auditor".to_owned())
                && !u.entities.contains(&"R&D <Labs>".to_owned())
        })
        .unwrap();
    let name = &user.name;
    let role = |request: &str, role: &str| {
        format!(
            "<Security.{request}Rq userName=\"{name}\" roleName=\"{}\"/>",
            escape(role)
        )
    };
    let responses = client
        .batch(
            &[
                role("addUserRole", "auditor"),
                role("addUserRole", "AUDITOR"),
                role("removeUserRole", "Auditor"),
                role("removeUserRole", "Auditor"),
                role("addUserRole", "No Such Role"),
                "<Security.addUserRoleRq userName=\"ghost\" roleName=\"Auditor\"/>".to_owned(),
                format!("<Security.addUserRoleRq userName=\"{name}\"/>"),
            ]
            .concat(),
        )
        .await;
    assert_eq!(responses[0].name, "Security.addUserRoleRs");
    assert_eq!(responses[0].outcome(), Ok(()));
    assert_eq!(responses[2].outcome(), Ok(()));
    let codes: Vec<String> = [1, 3, 4, 5, 6]
        .iter()
        .map(|i| responses[*i].failure_code())
        .collect();
    assert_eq!(
        codes,
        [
            "AlreadyAssigned",
            "NotAssigned",
            "RoleNotFound",
            "UserNotFound",
            "InvalidRequest"
        ]
    );
    assert!(responses[6].outcome().unwrap_err().1.contains("roleName"));
    assert_eq!(control.user(user.id).unwrap().roles, user.roles);

    let entity = "R&D <Labs>";
    let membership = |request: &str, entity: &str| {
        format!(
            "<OnlineData.{request}Rq userName=\"{name}\" entityName=\"{}\"/>",
            escape(entity)
        )
    };
    let responses = client
        .batch(&[
            membership("addEntityMembership", &entity.to_lowercase()),
            membership("addEntityMembership", entity),
            membership("removeEntityMembership", entity),
            membership("removeEntityMembership", entity),
            membership("addEntityMembership", "Atlantis"),
            "<OnlineData.removeEntityMembershipRq userName=\"ghost\" entityName=\"Claims Center\"/>".to_owned(),
        ]
        .concat())
        .await;
    assert_eq!(responses[0].name, "OnlineData.addEntityMembershipRs");
    assert_eq!(responses[0].outcome(), Ok(()));
    assert_eq!(responses[2].outcome(), Ok(()));
    let codes: Vec<String> = [1, 3, 4, 5]
        .iter()
        .map(|i| responses[*i].failure_code())
        .collect();
    assert_eq!(
        codes,
        [
            "AlreadyAssigned",
            "NotAssigned",
            "EntityNotFound",
            "UserNotFound"
        ]
    );
    assert_eq!(control.user(user.id).unwrap().entities, user.entities);
    let joined = client.one(&membership("addEntityMembership", entity)).await;
    assert_eq!(joined.outcome(), Ok(()));
    assert!(control
        .user(user.id)
        .unwrap()
        .entities
        .contains(&entity.to_owned()));
}

#[tokio::test]
async fn an_unknown_request_fails_alone_and_is_counted_as_unknown() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let responses = client
        .batch("<Security.dropTablesRq/><Security.listRolesRq/><Odd/>")
        .await;
    assert_eq!(responses[0].name, "Security.dropTablesRs");
    let (code, text) = responses[0].outcome().unwrap_err();
    assert_eq!(code, "UnknownRequest");
    assert!(text.contains("Security.dropTablesRq"));
    assert_eq!(responses[1].outcome(), Ok(()));
    assert_eq!(
        (
            responses[2].name.as_str(),
            responses[2].failure_code().as_str()
        ),
        ("OddRs", "UnknownRequest")
    );
    let stats = control.stats();
    assert_eq!(stats.requests, 1);
    assert_eq!(stats.route(api::ROUTE), 1);
    assert_eq!(stats.inner_request("unknown"), 2);
    assert_eq!(stats.inner_request("Security.listRolesRq"), 1);
    assert_eq!(stats.inner_request(batch::LOGIN), 1);
    assert_eq!(stats.inner_request(batch::CLOSE), 1);
}

#[tokio::test]
async fn catalogues_list_roles_with_privileges_entities_and_privileges() {
    let server = start(config()).await;
    let control = server.control();
    let client = Client::new(&server);
    let responses = client
        .batch(
            "<Security.listRolesRq includePrivileges=\"false\"/>\
             <Security.listRolesRq includePrivileges=\"true\"/>\
             <Security.listRolesRq includePrivileges=\"maybe\"/>\
             <OnlineData.listEntitiesRq/>\
             <Security.listPrivilegesRq/>",
        )
        .await;
    let roles = control.roles();
    let plain = responses[0].child("Roles");
    let full = responses[1].child("Roles");
    assert_eq!(plain.children.len(), roles.len());
    for ((role, bare), rich) in roles.iter().zip(&plain.children).zip(&full.children) {
        for node in [bare, rich] {
            assert_eq!(node.attr("id"), role.id.to_string());
            assert_eq!(node.attr("name"), role.name);
            assert_eq!(node.attr("description"), role.description);
        }
        assert!(bare.children.is_empty());
        let ids: Vec<u64> = rich
            .child("Privileges")
            .all("Privilege")
            .map(|p| p.attr("id").parse().unwrap())
            .collect();
        assert_eq!(ids, role.privileges);
    }
    assert_eq!(responses[2].failure_code(), "InvalidRequest");

    let entities: Vec<DcEntity> = responses[3]
        .child("Entities")
        .children
        .iter()
        .map(|e| DcEntity {
            id: e.attr("id").parse().unwrap(),
            name: e.attr("name").to_owned(),
            element: e.name.clone(),
        })
        .collect();
    assert_eq!(entities, control.entities());
    let elements: HashSet<&str> = entities.iter().map(|e| e.element.as_str()).collect();
    assert_eq!(elements, HashSet::from(["Entity", "Agency"]));

    let privileges: Vec<DcPrivilege> = responses[4]
        .child("Privileges")
        .all("Privilege")
        .map(|p| DcPrivilege {
            id: p.attr("id").parse().unwrap(),
            name: p.attr("name").to_owned(),
            description: p.attr("description").to_owned(),
            kind: p.attr("type").to_owned(),
        })
        .collect();
    assert_eq!(privileges, control.privileges());
    assert_eq!(privileges.len(), 20);
}

#[tokio::test]
async fn xml_special_characters_round_trip_everywhere() {
    let password = "p&ss<w>rd'\"";
    let server = start(DuckCreekSimConfig {
        password: SecretString::from(password),
        ..config()
    })
    .await;
    let control = server.control();
    let client = Client::new(&server);
    assert_eq!(client.password, password);
    let role = control
        .add_role(
            "Q&A <Lead>",
            "Signs off \"final\" & 'draft' <forms>",
            vec![501, 502],
        )
        .unwrap();
    let mut spec = DcUserSpec::new(
        "o'brien&co<x>\"q\"",
        "a&b@example.com",
        "Zoë \"Z\" O'Brien & <Sons>",
    );
    spec.roles = vec!["q&a <lead>".into()];
    spec.entities = vec!["R&D <Labs>".into(), "Midwest \"Heartland\" Agency".into()];
    let id = control.add_user(spec).unwrap();

    let listed: Vec<DcUser> = client.users(1).await.iter().map(listed).collect();
    assert_eq!(listed, control.users());
    let special = listed.iter().find(|u| u.id == id).unwrap();
    assert_eq!(special.name, "o'brien&co<x>\"q\"");
    assert_eq!(special.roles, ["Q&A <Lead>"]);
    assert!(
        listed
            .iter()
            .any(|u| u.full_name.contains('\'') && u.id != id),
        "seeded apostrophes"
    );

    let responses = client
        .batch(&format!(
            "<Security.listRolesRq/><OnlineData.listEntitiesRq/>\
             <Security.lockUserAccountRq userName=\"{}\"/>",
            escape(&special.name)
        ))
        .await;
    let rich = responses[0]
        .child("Roles")
        .all("Role")
        .find(|r| r.attr("id") == role.to_string())
        .unwrap();
    assert_eq!(rich.attr("name"), "Q&A <Lead>");
    assert_eq!(
        rich.attr("description"),
        "Signs off \"final\" & 'draft' <forms>"
    );
    let names: Vec<&str> = responses[1]
        .child("Entities")
        .children
        .iter()
        .map(|e| e.attr("name"))
        .collect();
    assert!(names.contains(&"R&D <Labs>") && names.contains(&"O'Hare Field Office"));
    assert_eq!(responses[2].outcome(), Ok(()));
    assert_eq!(control.user(id).unwrap().status, DcUserStatus::Locked);
}

#[tokio::test]
async fn fifty_thousand_users_come_back_in_one_response() {
    let server = start(DuckCreekSimConfig {
        seed: DuckCreekSeed::with_users(50_000),
        ..DuckCreekSimConfig::default()
    })
    .await;
    let client = Client::new(&server);
    let answer = client
        .call("<OnlineData.listEntityUsersRq entityID=\"1\"/>")
        .await;
    assert_eq!(answer.status, 200);
    // Stream it, as a client must: count User elements, keep nothing.
    let mut reader = NsReader::from_str(&answer.body);
    let mut users = 0usize;
    let mut last = String::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"User" => {
                users += 1;
                if users == 50_000 {
                    last = element(&e).unwrap().attr("name").to_owned();
                }
            }
            Event::DocType(_) => panic!("DOCTYPE"),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(users, 50_000);
    assert_eq!(last, "dc.user50000");
    assert_eq!(server.control().stats().requests, 1, "one call, no paging");
}

#[tokio::test]
async fn the_same_seed_answers_the_same_bytes() {
    let lists = "<OnlineData.listEntityUsersRq entityID=\"1\"/><Security.listRolesRq includePrivileges=\"true\"/>\
                 <OnlineData.listEntitiesRq/><Security.listPrivilegesRq/>";
    let mut bodies = Vec::new();
    for seed in [
        DuckCreekSeed::default(),
        DuckCreekSeed::default(),
        DuckCreekSeed {
            seed: 7,
            ..DuckCreekSeed::default()
        },
    ] {
        let server = start(DuckCreekSimConfig {
            seed,
            ..DuckCreekSimConfig::default()
        })
        .await;
        let answer = Client::new(&server).call(lists).await;
        assert_eq!(answer.responses().len(), 6);
        assert_eq!(server.control().user_count(), 300);
        bodies.push(answer.body);
    }
    assert_eq!(bodies[0], bodies[1], "same seed, same data");
    assert_ne!(bodies[0], bodies[2], "another seed, other data");
}
