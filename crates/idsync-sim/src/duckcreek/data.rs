//! The simulated Duck Creek tenant: users, roles, entities and privileges, stored compactly
//! and looked up the way the server does (names without letter case).
//!
//! Users are sorted by id, with an index from the folded login name to the id, so a request
//! naming a user costs one hash lookup even with 50 000 users. A user's roles and entity
//! memberships are sorted id lists; role and entity names are resolved when a response is
//! written.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::soap::{is_ncname, Xml};

use crate::sorted::{self, ById};

/// The id of the root organisation: listing its users lists every user.
pub(crate) const ROOT_ENTITY: u64 = 1;

/// A user's account status (the `status` attribute).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DcUserStatus {
    /// The user can log in.
    #[default]
    Active,
    /// The account is locked: a disabled account.
    Locked,
}

impl DcUserStatus {
    /// The wire spelling, `Active` or `Locked`.
    pub fn as_str(self) -> &'static str {
        match self {
            DcUserStatus::Active => "Active",
            DcUserStatus::Locked => "Locked",
        }
    }
}

/// One user, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRecord {
    pub(crate) id: u64,
    /// The login (`@name`), unique without letter case.
    pub(crate) name: Box<str>,
    pub(crate) email: Box<str>,
    pub(crate) full_name: Box<str>,
    pub(crate) status: DcUserStatus,
    /// Role ids, ascending.
    pub(crate) roles: Vec<u64>,
    /// Entity ids the user is a member of, ascending.
    pub(crate) entities: Vec<u64>,
}

impl ById for UserRecord {
    type Id = u64;

    fn id(&self) -> u64 {
        self.id
    }
}

/// A role and the privileges attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleRecord {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) description: String,
    /// Privilege ids, ascending.
    pub(crate) privileges: Vec<u64>,
}

/// An entity (organisation unit) of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntityRecord {
    pub(crate) id: u64,
    pub(crate) name: String,
    /// The element it is listed under in `OnlineData.listEntitiesRs/Entities`.
    pub(crate) element: String,
}

/// A privilege of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrivilegeRecord {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) kind: String,
}

/// A user to insert: checked fields and resolved role and entity ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewUser {
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) full_name: String,
    pub(crate) status: DcUserStatus,
    pub(crate) roles: Vec<u64>,
    pub(crate) entities: Vec<u64>,
}

/// Why a grant or membership change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssignError {
    /// There is no such user.
    UnknownUser,
    /// The user already holds it.
    AlreadyAssigned,
    /// The user does not hold it.
    NotAssigned,
}

/// Everything in the simulated tenant. Users, roles, entities and privileges are sorted by
/// id (new ids only grow).
#[derive(Debug, Clone, Default)]
pub(crate) struct Directory {
    pub(crate) users: Vec<UserRecord>,
    /// Folded login name → user id.
    names: HashMap<String, u64>,
    pub(crate) roles: Vec<RoleRecord>,
    pub(crate) entities: Vec<EntityRecord>,
    pub(crate) privileges: Vec<PrivilegeRecord>,
    next_user_id: u64,
    next_role_id: u64,
}

/// `name` as the name indexes hold it: lower case, Unicode-aware.
fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// True if `a` and `b` are the same name without letter case.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        fold(a) == fold(b)
    }
}

/// Inserts `id` into an ascending list; false if it was there.
fn insert_sorted(list: &mut Vec<u64>, id: u64) -> bool {
    match list.binary_search(&id) {
        Ok(_) => false,
        Err(at) => {
            list.insert(at, id);
            true
        }
    }
}

/// Removes `id` from an ascending list; false if it was not there.
fn remove_sorted(list: &mut Vec<u64>, id: u64) -> bool {
    match list.binary_search(&id) {
        Ok(at) => {
            list.remove(at);
            true
        }
        Err(_) => false,
    }
}

impl Directory {
    /// A tenant holding these records (each list sorted by id); later ids count up from
    /// `next_user_id` and `next_role_id` or past the last record, whichever is larger.
    pub(crate) fn new(
        users: Vec<UserRecord>,
        roles: Vec<RoleRecord>,
        entities: Vec<EntityRecord>,
        privileges: Vec<PrivilegeRecord>,
        next_user_id: u64,
        next_role_id: u64,
    ) -> Self {
        let names = users
            .iter()
            .map(|user| (fold(&user.name), user.id))
            .collect();
        Self {
            users,
            names,
            roles,
            entities,
            privileges,
            next_user_id,
            next_role_id,
        }
    }

    /// The user with `id`.
    pub(crate) fn user(&self, id: u64) -> Option<&UserRecord> {
        sorted::find(&self.users, id)
    }

    /// The user with `id`, to change.
    pub(crate) fn user_mut(&mut self, id: u64) -> Option<&mut UserRecord> {
        sorted::find_mut(&mut self.users, id)
    }

    /// The id of the user whose login is `name` (any letter case).
    pub(crate) fn user_id_named(&self, name: &str) -> Option<u64> {
        self.names.get(&fold(name)).copied()
    }

    /// The role with `id`.
    pub(crate) fn role(&self, id: u64) -> Option<&RoleRecord> {
        let index = self.roles.binary_search_by_key(&id, |role| role.id).ok()?;
        self.roles.get(index)
    }

    /// The role named `name` (any letter case).
    pub(crate) fn role_named(&self, name: &str) -> Option<&RoleRecord> {
        self.roles.iter().find(|role| same_name(&role.name, name))
    }

    /// The entity with `id`.
    pub(crate) fn entity(&self, id: u64) -> Option<&EntityRecord> {
        let index = self
            .entities
            .binary_search_by_key(&id, |entity| entity.id)
            .ok()?;
        self.entities.get(index)
    }

    /// The entity named `name` (any letter case).
    pub(crate) fn entity_named(&self, name: &str) -> Option<&EntityRecord> {
        self.entities
            .iter()
            .find(|entity| same_name(&entity.name, name))
    }

    /// The privilege with `id`.
    pub(crate) fn privilege(&self, id: u64) -> Option<&PrivilegeRecord> {
        let index = self
            .privileges
            .binary_search_by_key(&id, |privilege| privilege.id)
            .ok()?;
        self.privileges.get(index)
    }

    /// The users `OnlineData.listEntityUsersRq` lists for entity `id`: every user for the
    /// root organisation, the members otherwise.
    pub(crate) fn members(&self, id: u64) -> impl Iterator<Item = &UserRecord> {
        self.users
            .iter()
            .filter(move |user| id == ROOT_ENTITY || user.entities.binary_search(&id).is_ok())
    }

    /// Adds a user with the next id (the caller checked the name is free and the ids exist)
    /// and returns the id.
    pub(crate) fn insert_user(&mut self, user: NewUser) -> u64 {
        let after_last = self
            .users
            .last()
            .map_or(1, |last| last.id.saturating_add(1));
        let id = self.next_user_id.max(after_last);
        self.next_user_id = id.saturating_add(1);
        let mut roles = user.roles;
        roles.sort_unstable();
        roles.dedup();
        let mut entities = user.entities;
        entities.sort_unstable();
        entities.dedup();
        self.names.insert(fold(&user.name), id);
        self.users.push(UserRecord {
            id,
            name: user.name.into_boxed_str(),
            email: user.email.into_boxed_str(),
            full_name: user.full_name.into_boxed_str(),
            status: user.status,
            roles,
            entities,
        });
        id
    }

    /// Deletes user `id`; false if there is none.
    pub(crate) fn remove_user(&mut self, id: u64) -> bool {
        let Ok(index) = sorted::position(&self.users, id) else {
            return false;
        };
        let user = self.users.remove(index);
        self.names.remove(&fold(&user.name));
        true
    }

    /// Adds a role with the next id (the caller checked the name is free and the privileges
    /// exist) and returns the id.
    pub(crate) fn insert_role(
        &mut self,
        name: String,
        description: String,
        mut privileges: Vec<u64>,
    ) -> u64 {
        let after_last = self
            .roles
            .last()
            .map_or(1, |last| last.id.saturating_add(1));
        let id = self.next_role_id.max(after_last);
        self.next_role_id = id.saturating_add(1);
        privileges.sort_unstable();
        privileges.dedup();
        self.roles.push(RoleRecord {
            id,
            name,
            description,
            privileges,
        });
        id
    }

    /// Deletes role `id` and every grant of it; false if there is none.
    pub(crate) fn remove_role(&mut self, id: u64) -> bool {
        let Ok(index) = self.roles.binary_search_by_key(&id, |role| role.id) else {
            return false;
        };
        self.roles.remove(index);
        for user in &mut self.users {
            remove_sorted(&mut user.roles, id);
        }
        true
    }

    /// Gives role `role` to user `user` (the caller checked the role exists).
    pub(crate) fn grant(&mut self, user: u64, role: u64) -> Result<(), AssignError> {
        let user = self.user_mut(user).ok_or(AssignError::UnknownUser)?;
        if insert_sorted(&mut user.roles, role) {
            Ok(())
        } else {
            Err(AssignError::AlreadyAssigned)
        }
    }

    /// Takes role `role` from user `user`.
    pub(crate) fn revoke(&mut self, user: u64, role: u64) -> Result<(), AssignError> {
        let user = self.user_mut(user).ok_or(AssignError::UnknownUser)?;
        if remove_sorted(&mut user.roles, role) {
            Ok(())
        } else {
            Err(AssignError::NotAssigned)
        }
    }

    /// Makes user `user` a member of entity `entity` (the caller checked the entity exists).
    pub(crate) fn join(&mut self, user: u64, entity: u64) -> Result<(), AssignError> {
        let user = self.user_mut(user).ok_or(AssignError::UnknownUser)?;
        if insert_sorted(&mut user.entities, entity) {
            Ok(())
        } else {
            Err(AssignError::AlreadyAssigned)
        }
    }

    /// Ends the membership of user `user` in entity `entity`.
    pub(crate) fn leave(&mut self, user: u64, entity: u64) -> Result<(), AssignError> {
        let user = self.user_mut(user).ok_or(AssignError::UnknownUser)?;
        if remove_sorted(&mut user.entities, entity) {
            Ok(())
        } else {
            Err(AssignError::NotAssigned)
        }
    }
}

// ---- response shapes ------------------------------------------------------------------------

impl Directory {
    /// `<Users><User id name email fullName status>…</User>…</Users>` for the users listed
    /// under entity `entity`. A user's `UserEntityMemberships` and `Roles` are written when
    /// it holds some; when it holds none they are written empty for even ids and left out
    /// for odd ones, so a client meets both shapes.
    pub(crate) fn write_users(&self, xml: &mut Xml, entity: u64) {
        xml.raw("<Users>");
        for user in self.members(entity) {
            self.write_user(xml, user);
        }
        xml.raw("</Users>");
    }

    fn write_user(&self, xml: &mut Xml, user: &UserRecord) {
        xml.open("User")
            .attr_id("id", user.id)
            .attr("name", &user.name)
            .attr("email", &user.email)
            .attr("fullName", &user.full_name)
            .attr("status", user.status.as_str());
        let empty_containers = user.id % 2 == 0;
        if user.entities.is_empty() && user.roles.is_empty() && !empty_containers {
            xml.end_empty();
            return;
        }
        xml.end();
        if !user.entities.is_empty() {
            xml.raw("<UserEntityMemberships>");
            for entity in user.entities.iter().filter_map(|id| self.entity(*id)) {
                xml.open("UserEntityMembership")
                    .attr("entityName", &entity.name)
                    .end_empty();
            }
            xml.raw("</UserEntityMemberships>");
        } else if empty_containers {
            xml.raw("<UserEntityMemberships/>");
        }
        if !user.roles.is_empty() {
            xml.raw("<Roles>");
            for role in user.roles.iter().filter_map(|id| self.role(*id)) {
                xml.open("Role").attr("name", &role.name).end_empty();
            }
            xml.raw("</Roles>");
        } else if empty_containers {
            xml.raw("<Roles/>");
        }
        xml.close("User");
    }

    /// `<Roles><Role id name description/>…</Roles>`, each role with
    /// `<Privileges><Privilege id name/>…</Privileges>` when `privileges` is set.
    pub(crate) fn write_roles(&self, xml: &mut Xml, privileges: bool) {
        xml.raw("<Roles>");
        for role in &self.roles {
            xml.open("Role")
                .attr_id("id", role.id)
                .attr("name", &role.name)
                .attr("description", &role.description);
            if !privileges {
                xml.end_empty();
                continue;
            }
            xml.raw("><Privileges>");
            for privilege in role.privileges.iter().filter_map(|id| self.privilege(*id)) {
                xml.open("Privilege")
                    .attr_id("id", privilege.id)
                    .attr("name", &privilege.name)
                    .end_empty();
            }
            xml.raw("</Privileges></Role>");
        }
        xml.raw("</Roles>");
    }

    /// `<Entities>` with one `<Entity id name/>` (or the entity's own element) per entity.
    pub(crate) fn write_entities(&self, xml: &mut Xml) {
        xml.raw("<Entities>");
        for entity in &self.entities {
            let element = if is_ncname(&entity.element) {
                entity.element.as_str()
            } else {
                "Entity"
            };
            xml.open(element)
                .attr_id("id", entity.id)
                .attr("name", &entity.name)
                .end_empty();
        }
        xml.raw("</Entities>");
    }

    /// `<Privileges><Privilege id name description type/>…</Privileges>`.
    pub(crate) fn write_privileges(&self, xml: &mut Xml) {
        xml.raw("<Privileges>");
        for privilege in &self.privileges {
            xml.open("Privilege")
                .attr_id("id", privilege.id)
                .attr("name", &privilege.name)
                .attr("description", &privilege.description)
                .attr("type", &privilege.kind)
                .end_empty();
        }
        xml.raw("</Privileges>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(name: &str) -> NewUser {
        NewUser {
            name: name.into(),
            email: format!("{name}@example.com"),
            full_name: "A B".into(),
            status: DcUserStatus::Active,
            roles: vec![7, 3, 7],
            entities: Vec::new(),
        }
    }

    fn entity(id: u64, name: &str) -> EntityRecord {
        EntityRecord {
            id,
            name: name.into(),
            element: "Entity".into(),
        }
    }

    #[test]
    fn names_match_without_case_and_ids_only_grow() {
        let mut dir = Directory::new(
            Vec::new(),
            Vec::new(),
            vec![entity(1, "Root"), entity(2, "Straße")],
            Vec::new(),
            1001,
            101,
        );
        let a = dir.insert_user(new_user("Ada"));
        let b = dir.insert_user(new_user("ben"));
        assert_eq!((a, b), (1001, 1002));
        assert_eq!(dir.user(a).unwrap().roles, [3, 7], "sorted, deduplicated");
        assert_eq!(dir.user_id_named("ADA"), Some(a));
        assert_eq!(dir.entity_named("STRASSE"), None, "no full case folding");
        assert_eq!(dir.entity_named("straße").map(|e| e.id), Some(2));
        assert!(dir.remove_user(a));
        assert!(!dir.remove_user(a));
        assert_eq!(dir.user_id_named("ada"), None);
        assert_eq!(dir.insert_user(new_user("cy")), 1003);

        assert_eq!(dir.join(b, 2), Ok(()));
        assert_eq!(dir.join(b, 2), Err(AssignError::AlreadyAssigned));
        assert_eq!(dir.members(2).count(), 1);
        assert_eq!(dir.members(ROOT_ENTITY).count(), 2);
        assert_eq!(dir.leave(b, 2), Ok(()));
        assert_eq!(dir.leave(b, 2), Err(AssignError::NotAssigned));
        assert_eq!(dir.leave(9, 2), Err(AssignError::UnknownUser));

        let role = dir.insert_role("R".into(), "".into(), vec![2, 1, 2]);
        assert_eq!(role, 101);
        assert_eq!(dir.role(role).unwrap().privileges, [1, 2]);
        assert_eq!(dir.grant(b, role), Ok(()));
        assert_eq!(dir.grant(b, role), Err(AssignError::AlreadyAssigned));
        assert!(dir.remove_role(role));
        assert_eq!(dir.user(b).unwrap().roles, [3, 7], "the grant went with it");
        assert_eq!(dir.revoke(b, role), Err(AssignError::NotAssigned));
        assert_eq!(dir.insert_role("S".into(), "".into(), Vec::new()), 102);
    }
}
