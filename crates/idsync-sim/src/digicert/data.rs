//! The simulated account's data: users, containers and access roles, stored compactly and
//! serialized per response in the API's shapes.

use std::borrow::Cow;

use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::sorted::{self, ById};

/// The built-in access roles, by id.
pub(crate) const ACCESS_ROLES: [(u32, &str); 5] = [
    (1, "Administrator"),
    (2, "Limited User"),
    (3, "Finance Manager"),
    (4, "Manager"),
    (5, "Standard User"),
];

/// The top-level container every account has.
pub(crate) const TOP_CONTAINER_ID: u32 = 1;

/// Text that is usually one of the seed tables (no allocation) but may be anything.
pub(crate) type Text = Cow<'static, str>;

/// A user's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    /// The user can sign in.
    #[default]
    Active,
    /// The user is deactivated.
    Inactive,
}

impl UserStatus {
    /// The API spelling: `active` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
        }
    }

    /// Parses `active` / `inactive` in any letter case.
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("active") {
            Some(UserStatus::Active)
        } else if text.eq_ignore_ascii_case("inactive") {
            Some(UserStatus::Inactive)
        } else {
            None
        }
    }
}

/// A set of the built-in access roles, one bit per role id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RoleSet(u8);

impl RoleSet {
    fn bit(id: u64) -> Option<u8> {
        ACCESS_ROLES
            .iter()
            .position(|(role, _)| u64::from(*role) == id)
            .and_then(|index| 1u8.checked_shl(u32::try_from(index).ok()?))
    }

    /// Adds role `id`; false if no such role exists.
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        match Self::bit(id) {
            Some(bit) => {
                self.0 |= bit;
                true
            }
            None => false,
        }
    }

    /// The set of the given role ids; `None` if one is unknown.
    pub(crate) fn from_ids(ids: impl IntoIterator<Item = u64>) -> Option<Self> {
        let mut set = RoleSet::default();
        for id in ids {
            if !set.insert(id) {
                return None;
            }
        }
        Some(set)
    }

    /// True if role `id` is in the set.
    pub(crate) fn contains(self, id: u64) -> bool {
        Self::bit(id).is_some_and(|bit| self.0 & bit != 0)
    }

    /// True if no role is in the set.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles in the set, by id.
    pub(crate) fn iter(self) -> impl Iterator<Item = (u32, &'static str)> {
        ACCESS_ROLES
            .iter()
            .copied()
            .filter(move |(id, _)| self.contains(u64::from(*id)))
    }
}

/// A container (division).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Container {
    pub(crate) id: u32,
    pub(crate) public_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) parent_id: u32,
    pub(crate) template_id: u32,
    pub(crate) ekey: String,
    pub(crate) is_active: bool,
}

/// One user, as stored (about 150 bytes plus the short strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRecord {
    pub(crate) id: u64,
    pub(crate) username: Box<str>,
    pub(crate) first_name: Text,
    pub(crate) last_name: Text,
    pub(crate) email: Box<str>,
    pub(crate) job_title: Option<Text>,
    pub(crate) telephone: Option<Box<str>>,
    pub(crate) status: UserStatus,
    pub(crate) container_id: u32,
    pub(crate) roles: RoleSet,
}

impl ById for UserRecord {
    type Id = u64;

    fn id(&self) -> u64 {
        self.id
    }
}

/// The validated fields of a create or full-replace request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserFields {
    pub(crate) username: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: String,
    pub(crate) job_title: Option<String>,
    pub(crate) telephone: Option<String>,
    pub(crate) container_id: u32,
    pub(crate) roles: RoleSet,
}

/// Everything in the simulated account. Users are kept sorted by id (new ids only grow), so
/// a page is a slice.
#[derive(Debug, Clone, Default)]
pub(crate) struct Directory {
    pub(crate) account_id: u64,
    pub(crate) containers: Vec<Container>,
    pub(crate) users: Vec<UserRecord>,
    pub(crate) next_user_id: u64,
    /// The user the API key belongs to (`GET /user/me`; the container a create without one
    /// lands in). `None` in an account seeded without users.
    pub(crate) api_user_id: Option<u64>,
    /// Users the API does not return for now (see `DigicertControl::hide_user`).
    pub(crate) hidden: Vec<UserRecord>,
}

impl Directory {
    /// The user with `id`.
    pub(crate) fn user(&self, id: u64) -> Option<&UserRecord> {
        sorted::find(&self.users, id)
    }

    /// The user with `id`, to change.
    pub(crate) fn user_mut(&mut self, id: u64) -> Option<&mut UserRecord> {
        sorted::find_mut(&mut self.users, id)
    }

    /// The container with `id`.
    pub(crate) fn container(&self, id: u32) -> Option<&Container> {
        self.containers.iter().find(|container| container.id == id)
    }

    /// The container of the user the API key belongs to, where a create that names none
    /// lands (Add user: "the same container as the user associated with the API key"); the
    /// top-level container once that user is gone.
    pub(crate) fn default_container(&self) -> u32 {
        self.api_user_id
            .and_then(|id| self.user(id))
            .map_or(TOP_CONTAINER_ID, |user| user.container_id)
    }

    /// True if another user (not `except`) has `username`, compared without letter case.
    pub(crate) fn username_taken(&self, username: &str, except: Option<u64>) -> bool {
        self.users
            .iter()
            .any(|user| Some(user.id) != except && user.username.eq_ignore_ascii_case(username))
    }

    /// Adds a user with the next id and returns the id.
    pub(crate) fn insert(&mut self, fields: UserFields, status: UserStatus) -> u64 {
        let id = self
            .next_user_id
            .max(self.users.last().map_or(1, |user| user.id + 1));
        self.next_user_id = id + 1;
        self.users.push(record(id, fields, status));
        id
    }

    /// Takes user `id` out of the API's view, keeping it to bring back; false if absent.
    pub(crate) fn hide(&mut self, id: u64) -> bool {
        match sorted::position(&self.users, id) {
            Ok(index) => {
                let user = self.users.remove(index);
                self.hidden.push(user);
                true
            }
            Err(_) => false,
        }
    }

    /// Brings a hidden user back with its id and fields; false if it is not hidden.
    pub(crate) fn unhide(&mut self, id: u64) -> bool {
        let Some(at) = self.hidden.iter().position(|user| user.id == id) else {
            return false;
        };
        let user = self.hidden.swap_remove(at);
        if let Err(index) = sorted::position(&self.users, id) {
            self.users.insert(index, user);
        }
        true
    }

    /// Deletes user `id`; false if there is no such user.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        match sorted::position(&self.users, id) {
            Ok(index) => {
                self.users.remove(index);
                true
            }
            Err(_) => false,
        }
    }
}

fn record(id: u64, fields: UserFields, status: UserStatus) -> UserRecord {
    UserRecord {
        id,
        username: fields.username.into_boxed_str(),
        first_name: Cow::Owned(fields.first_name),
        last_name: Cow::Owned(fields.last_name),
        email: fields.email.into_boxed_str(),
        job_title: fields.job_title.map(Cow::Owned),
        telephone: fields.telephone.map(String::into_boxed_str),
        status,
        container_id: fields.container_id,
        roles: fields.roles,
    }
}

// ---- response shapes ------------------------------------------------------------------------

/// `{"id":…,"name":…}` of an access role.
#[derive(Debug, Serialize)]
pub(crate) struct RoleView {
    pub(crate) id: u32,
    pub(crate) name: &'static str,
}

/// A role set serialized as `[{"id":…,"name":…}, …]`, by id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RolesView(pub(crate) RoleSet);

impl Serialize for RolesView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for (id, name) in self.0.iter() {
            seq.serialize_element(&RoleView { id, name })?;
        }
        seq.end()
    }
}

/// The `container` object inside a user.
#[derive(Debug, Serialize)]
pub(crate) struct UserContainerView<'a> {
    id: u32,
    public_id: &'a str,
    name: &'a str,
    parent_id: u32,
    template_id: u32,
    ekey: &'a str,
    is_active: bool,
}

/// A user object, as `GET /user` and `GET /user/{id}` return it. Unset optional fields
/// (`job_title`, `telephone`) are left out.
#[derive(Debug, Serialize)]
pub(crate) struct UserView<'a> {
    id: u64,
    username: &'a str,
    account_id: u64,
    first_name: &'a str,
    last_name: &'a str,
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    telephone: Option<&'a str>,
    status: &'static str,
    container: UserContainerView<'a>,
    access_roles: RolesView,
    #[serde(rename = "type")]
    kind: &'static str,
    has_container_assignments: bool,
}

impl<'a> UserView<'a> {
    /// The view of `user` in `dir`.
    pub(crate) fn new(user: &'a UserRecord, dir: &'a Directory) -> Self {
        let container = dir.container(user.container_id);
        UserView {
            id: user.id,
            username: &user.username,
            account_id: dir.account_id,
            first_name: &user.first_name,
            last_name: &user.last_name,
            email: &user.email,
            job_title: user.job_title.as_deref(),
            telephone: user.telephone.as_deref(),
            status: user.status.as_str(),
            container: UserContainerView {
                id: user.container_id,
                public_id: container.map_or("", |c| c.public_id.as_str()),
                name: container.map_or("", |c| c.name.as_str()),
                parent_id: container.map_or(0, |c| c.parent_id),
                template_id: container.map_or(0, |c| c.template_id),
                ekey: container.map_or("", |c| c.ekey.as_str()),
                is_active: container.is_some_and(|c| c.is_active),
            },
            access_roles: RolesView(user.roles),
            kind: "standard",
            has_container_assignments: false,
        }
    }
}

/// A container object, as `GET /container` and `GET /container/{id}` return it.
#[derive(Debug, Serialize)]
pub(crate) struct ContainerView<'a> {
    id: u32,
    public_id: &'a str,
    name: &'a str,
    description: &'a str,
    parent_id: u32,
    template_id: u32,
    ekey: &'a str,
    is_active: bool,
}

impl<'a> From<&'a Container> for ContainerView<'a> {
    fn from(container: &'a Container) -> Self {
        ContainerView {
            id: container.id,
            public_id: &container.public_id,
            name: &container.name,
            description: &container.description,
            parent_id: container.parent_id,
            template_id: container.template_id,
            ekey: &container.ekey,
            is_active: container.is_active,
        }
    }
}

/// All built-in roles, as `GET /container/{id}/role` returns them.
pub(crate) fn all_roles() -> RolesView {
    RolesView(RoleSet(u8::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_set_keeps_known_ids_only() {
        let set = RoleSet::from_ids([5, 1, 5]).unwrap();
        assert_eq!(set.iter().map(|(id, _)| id).collect::<Vec<_>>(), [1, 5]);
        assert!(RoleSet::from_ids([6]).is_none());
        assert!(RoleSet::from_ids([0]).is_none());
        assert!(RoleSet::default().is_empty());
        assert_eq!(
            serde_json::to_value(all_roles()).unwrap(),
            serde_json::json!([
                {"id":1,"name":"Administrator"},{"id":2,"name":"Limited User"},
                {"id":3,"name":"Finance Manager"},{"id":4,"name":"Manager"},
                {"id":5,"name":"Standard User"}
            ])
        );
    }
}
