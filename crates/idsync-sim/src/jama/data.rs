//! The simulated tenant's data: users, user groups and memberships, stored compactly and
//! serialized per response in the API's shapes.
//!
//! Users are sorted by id and a group's members are a sorted `Vec<u32>` of user ids, so a
//! page of users or members is a slice plus one binary search per member: 20 000 users in
//! 40 groups with 200 000 memberships take a few megabytes and no page clones a list.

use std::borrow::Cow;

use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::sorted::{self, ById};

/// Text that is usually one of the seed tables (no allocation) but may be anything.
pub(crate) type Text = Cow<'static, str>;

/// A Jama license type (the `licenseType` field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LicenseType {
    /// Named creator license.
    #[default]
    Named,
    /// Floating creator license.
    Floating,
    /// Stakeholder license.
    Stakeholder,
    /// Floating collaborator license.
    FloatingCollaborator,
    /// Reserved collaborator license.
    ReservedCollaborator,
    /// Floating reviewer license.
    FloatingReviewer,
    /// Reserved reviewer license.
    ReservedReviewer,
    /// Named reviewer license.
    NamedReviewer,
    /// Test runner license.
    TestRunner,
    /// Expiring trial license.
    ExpiringTrial,
    /// No license.
    Inactive,
}

impl LicenseType {
    /// Every license type, in the order Jama's documentation lists them.
    pub const ALL: [LicenseType; 11] = [
        LicenseType::Named,
        LicenseType::Floating,
        LicenseType::Stakeholder,
        LicenseType::FloatingCollaborator,
        LicenseType::ReservedCollaborator,
        LicenseType::FloatingReviewer,
        LicenseType::ReservedReviewer,
        LicenseType::NamedReviewer,
        LicenseType::TestRunner,
        LicenseType::ExpiringTrial,
        LicenseType::Inactive,
    ];

    /// The API spelling, e.g. `FLOATING_COLLABORATOR`.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseType::Named => "NAMED",
            LicenseType::Floating => "FLOATING",
            LicenseType::Stakeholder => "STAKEHOLDER",
            LicenseType::FloatingCollaborator => "FLOATING_COLLABORATOR",
            LicenseType::ReservedCollaborator => "RESERVED_COLLABORATOR",
            LicenseType::FloatingReviewer => "FLOATING_REVIEWER",
            LicenseType::ReservedReviewer => "RESERVED_REVIEWER",
            LicenseType::NamedReviewer => "NAMED_REVIEWER",
            LicenseType::TestRunner => "TEST_RUNNER",
            LicenseType::ExpiringTrial => "EXPIRING_TRIAL",
            LicenseType::Inactive => "INACTIVE",
        }
    }

    /// Parses the API spelling (exact, as Jama's enum is).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|license| license.as_str() == text)
    }
}

/// The authentication types a user can have, by id *(assumed names; Jama's documentation
/// gives only the `{id,name}` shape)*.
pub(crate) const AUTH_TYPES: [(u8, &str); 3] = [(1, "BASIC"), (2, "SAML"), (3, "LDAP")];

/// The authentication type new users get.
pub(crate) const DEFAULT_AUTH_TYPE: u8 = 1;

/// The name of authentication type `id`.
pub(crate) fn auth_type_name(id: u8) -> Option<&'static str> {
    AUTH_TYPES
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, name)| *name)
}

/// One user, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRecord {
    pub(crate) id: u32,
    pub(crate) username: Box<str>,
    pub(crate) first_name: Text,
    pub(crate) last_name: Text,
    pub(crate) email: Box<str>,
    pub(crate) phone: Option<Box<str>>,
    pub(crate) title: Option<Text>,
    pub(crate) location: Option<Text>,
    pub(crate) license: LicenseType,
    pub(crate) active: bool,
    pub(crate) avatar_url: Option<Box<str>>,
    pub(crate) auth_type: u8,
    /// `customData` entries: name and value (`None`: JSON null).
    pub(crate) custom_data: Vec<(Box<str>, Option<Box<str>>)>,
}

/// The validated fields of a create or full-replace request. `license` and `auth_type` are
/// `None` when the body left them out (create: the defaults; replace: unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserFields {
    pub(crate) username: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: String,
    pub(crate) phone: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) license: Option<LicenseType>,
    pub(crate) auth_type: Option<u8>,
    pub(crate) avatar_url: Option<String>,
    pub(crate) custom_data: Vec<(String, Option<String>)>,
}

/// A user group and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) description: String,
    /// The project it belongs to; `None`: organisation-wide.
    pub(crate) project: Option<u32>,
    /// Member user ids, ascending.
    pub(crate) members: Vec<u32>,
}

impl ById for UserRecord {
    type Id = u32;

    fn id(&self) -> u32 {
        self.id
    }
}

impl ById for Group {
    type Id = u32;

    fn id(&self) -> u32 {
        self.id
    }
}

/// A user the API does not return for now, with the groups it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HiddenUser {
    pub(crate) user: UserRecord,
    pub(crate) groups: Vec<u32>,
}

/// Why a membership change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MembershipError {
    UnknownGroup,
    UnknownUser,
    AlreadyMember,
    NotMember,
}

/// Everything in the simulated tenant. Users and groups are sorted by id (new ids only grow).
#[derive(Debug, Clone, Default)]
pub(crate) struct Directory {
    pub(crate) users: Vec<UserRecord>,
    pub(crate) groups: Vec<Group>,
    pub(crate) next_user_id: u32,
    pub(crate) next_group_id: u32,
    /// The user the OAuth client belongs to (`GET /users/current`).
    pub(crate) api_user_id: Option<u32>,
    /// Users hidden from the API (see `JamaControl::hide_user`).
    pub(crate) hidden: Vec<HiddenUser>,
}

impl Directory {
    /// The user with `id`.
    pub(crate) fn user(&self, id: u32) -> Option<&UserRecord> {
        sorted::find(&self.users, id)
    }

    /// The user with `id`, to change.
    pub(crate) fn user_mut(&mut self, id: u32) -> Option<&mut UserRecord> {
        sorted::find_mut(&mut self.users, id)
    }

    /// The group with `id`.
    pub(crate) fn group(&self, id: u32) -> Option<&Group> {
        sorted::find(&self.groups, id)
    }

    fn group_mut(&mut self, id: u32) -> Option<&mut Group> {
        sorted::find_mut(&mut self.groups, id)
    }

    /// True if another user (not `except`), visible or hidden, has `username`, compared
    /// without letter case.
    pub(crate) fn username_taken(&self, username: &str, except: Option<u32>) -> bool {
        let taken = |user: &UserRecord| {
            Some(user.id) != except && user.username.eq_ignore_ascii_case(username)
        };
        self.users.iter().any(taken) || self.hidden.iter().any(|hidden| taken(&hidden.user))
    }

    /// Adds a user with the next id and returns the id.
    pub(crate) fn insert(&mut self, fields: UserFields, active: bool) -> u32 {
        let after_last = self
            .users
            .last()
            .map_or(1, |user| user.id.saturating_add(1));
        let id = self.next_user_id.max(after_last);
        self.next_user_id = id.saturating_add(1);
        let record = UserRecord {
            id,
            username: fields.username.into_boxed_str(),
            first_name: Cow::Owned(fields.first_name),
            last_name: Cow::Owned(fields.last_name),
            email: fields.email.into_boxed_str(),
            phone: fields.phone.map(String::into_boxed_str),
            title: fields.title.map(Cow::Owned),
            location: fields.location.map(Cow::Owned),
            license: fields.license.unwrap_or_default(),
            active,
            avatar_url: fields.avatar_url.map(String::into_boxed_str),
            auth_type: fields.auth_type.unwrap_or(DEFAULT_AUTH_TYPE),
            custom_data: boxed_custom_data(fields.custom_data),
        };
        self.users.push(record);
        id
    }

    /// Replaces user `id` with `fields` (a full replace: what the body left out is cleared,
    /// except the license and authentication type, which stay, and `active`, which only
    /// `/active` changes); false if there is no such user.
    pub(crate) fn replace(&mut self, id: u32, fields: UserFields) -> bool {
        let Some(user) = self.user_mut(id) else {
            return false;
        };
        user.username = fields.username.into_boxed_str();
        user.first_name = Cow::Owned(fields.first_name);
        user.last_name = Cow::Owned(fields.last_name);
        user.email = fields.email.into_boxed_str();
        user.phone = fields.phone.map(String::into_boxed_str);
        user.title = fields.title.map(Cow::Owned);
        user.location = fields.location.map(Cow::Owned);
        if let Some(license) = fields.license {
            user.license = license;
        }
        if let Some(auth_type) = fields.auth_type {
            user.auth_type = auth_type;
        }
        user.avatar_url = fields.avatar_url.map(String::into_boxed_str);
        user.custom_data = boxed_custom_data(fields.custom_data);
        true
    }

    /// Takes user `id` out of the API's view (and out of its groups), keeping both to bring
    /// back; false if there is no such visible user.
    pub(crate) fn hide(&mut self, id: u32) -> bool {
        let Ok(index) = sorted::position(&self.users, id) else {
            return false;
        };
        let user = self.users.remove(index);
        let groups = self.leave_all_groups(id);
        self.hidden.push(HiddenUser { user, groups });
        true
    }

    /// Brings a hidden user back with its id, fields and groups; false if it is not hidden.
    pub(crate) fn unhide(&mut self, id: u32) -> bool {
        let Some(at) = self.hidden.iter().position(|hidden| hidden.user.id == id) else {
            return false;
        };
        let HiddenUser { user, groups } = self.hidden.swap_remove(at);
        if let Err(index) = sorted::position(&self.users, id) {
            self.users.insert(index, user);
        }
        for group_id in groups {
            if let Some(group) = self.group_mut(group_id) {
                if let Err(at) = group.members.binary_search(&id) {
                    group.members.insert(at, id);
                }
            }
        }
        true
    }

    /// Deletes user `id` and its memberships (the API cannot; the control handle can);
    /// false if there is no such visible user.
    pub(crate) fn remove(&mut self, id: u32) -> bool {
        match sorted::position(&self.users, id) {
            Ok(index) => {
                self.users.remove(index);
                self.leave_all_groups(id);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes `user` from every group; returns the groups it was in.
    fn leave_all_groups(&mut self, user: u32) -> Vec<u32> {
        let mut left = Vec::new();
        for group in &mut self.groups {
            if let Ok(at) = group.members.binary_search(&user) {
                group.members.remove(at);
                left.push(group.id);
            }
        }
        left
    }

    /// Adds `user` to `group`.
    pub(crate) fn add_member(&mut self, group: u32, user: u32) -> Result<(), MembershipError> {
        if self.user(user).is_none() {
            return Err(if self.group(group).is_none() {
                MembershipError::UnknownGroup
            } else {
                MembershipError::UnknownUser
            });
        }
        let group = self.group_mut(group).ok_or(MembershipError::UnknownGroup)?;
        match group.members.binary_search(&user) {
            Ok(_) => Err(MembershipError::AlreadyMember),
            Err(at) => {
                group.members.insert(at, user);
                Ok(())
            }
        }
    }

    /// Removes `user` from `group`.
    pub(crate) fn remove_member(&mut self, group: u32, user: u32) -> Result<(), MembershipError> {
        let group = self.group_mut(group).ok_or(MembershipError::UnknownGroup)?;
        match group.members.binary_search(&user) {
            Ok(at) => {
                group.members.remove(at);
                Ok(())
            }
            Err(_) => Err(MembershipError::NotMember),
        }
    }

    /// Adds a group with the next id and returns the id.
    pub(crate) fn add_group(
        &mut self,
        name: String,
        description: String,
        project: Option<u32>,
    ) -> u32 {
        let after_last = self
            .groups
            .last()
            .map_or(1, |group| group.id.saturating_add(1));
        let id = self.next_group_id.max(after_last);
        self.next_group_id = id.saturating_add(1);
        self.groups.push(Group {
            id,
            name,
            description,
            project,
            members: Vec::new(),
        });
        id
    }

    /// Deletes group `id`; false if there is none.
    pub(crate) fn remove_group(&mut self, id: u32) -> bool {
        match sorted::position(&self.groups, id) {
            Ok(index) => {
                self.groups.remove(index);
                for hidden in &mut self.hidden {
                    hidden.groups.retain(|group| *group != id);
                }
                true
            }
            Err(_) => false,
        }
    }
}

fn boxed_custom_data(entries: Vec<(String, Option<String>)>) -> Vec<(Box<str>, Option<Box<str>>)> {
    entries
        .into_iter()
        .map(|(name, value)| (name.into_boxed_str(), value.map(String::into_boxed_str)))
        .collect()
}

// ---- response shapes ------------------------------------------------------------------------

/// `{"id":…,"name":…}` of an authentication type.
#[derive(Debug, Serialize)]
pub(crate) struct AuthTypeView {
    id: u8,
    name: &'static str,
}

/// `{"name":…,"value":…}` of a custom data entry.
#[derive(Debug, Serialize)]
struct CustomDataView<'a> {
    name: &'a str,
    value: Option<&'a str>,
}

/// The `customData` list.
#[derive(Debug)]
struct CustomDataList<'a>(&'a [(Box<str>, Option<Box<str>>)]);

impl Serialize for CustomDataList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (name, value) in self.0 {
            seq.serialize_element(&CustomDataView {
                name,
                value: value.as_deref(),
            })?;
        }
        seq.end()
    }
}

/// A user object, as every user route returns it. Unset optional fields are `null`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserView<'a> {
    id: u32,
    username: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    email: &'a str,
    phone: Option<&'a str>,
    title: Option<&'a str>,
    location: Option<&'a str>,
    license_type: &'static str,
    active: bool,
    avatar_url: Option<&'a str>,
    authentication_type: AuthTypeView,
    custom_data: CustomDataList<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> From<&'a UserRecord> for UserView<'a> {
    fn from(user: &'a UserRecord) -> Self {
        UserView {
            id: user.id,
            username: &user.username,
            first_name: &user.first_name,
            last_name: &user.last_name,
            email: &user.email,
            phone: user.phone.as_deref(),
            title: user.title.as_deref(),
            location: user.location.as_deref(),
            license_type: user.license.as_str(),
            active: user.active,
            avatar_url: user.avatar_url.as_deref(),
            authentication_type: AuthTypeView {
                id: user.auth_type,
                name: auth_type_name(user.auth_type).unwrap_or("BASIC"),
            },
            custom_data: CustomDataList(&user.custom_data),
            kind: "users",
        }
    }
}

/// A user group object, as `GET /usergroups` and `GET /usergroups/{id}` return it.
#[derive(Debug, Serialize)]
pub(crate) struct GroupView<'a> {
    id: u32,
    name: &'a str,
    description: &'a str,
    project: Option<u32>,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> From<&'a Group> for GroupView<'a> {
    fn from(group: &'a Group) -> Self {
        GroupView {
            id: group.id,
            name: &group.name,
            description: &group.description,
            project: group.project,
            kind: "usergroups",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(username: &str) -> UserFields {
        UserFields {
            username: username.into(),
            first_name: "A".into(),
            last_name: "B".into(),
            email: "a@b.c".into(),
            phone: None,
            title: None,
            location: None,
            license: None,
            auth_type: None,
            avatar_url: None,
            custom_data: Vec::new(),
        }
    }

    #[test]
    fn license_types_round_trip() {
        for license in LicenseType::ALL {
            assert_eq!(LicenseType::parse(license.as_str()), Some(license));
            assert_eq!(
                serde_json::to_value(license).unwrap(),
                serde_json::json!(license.as_str())
            );
        }
        assert_eq!(LicenseType::parse("named"), None);
    }

    #[test]
    fn hiding_keeps_id_and_groups_and_removing_drops_memberships() {
        let mut dir = Directory::default();
        let group = dir.add_group("G".into(), "".into(), None);
        let a = dir.insert(fields("a"), true);
        let b = dir.insert(fields("b"), true);
        assert_eq!((a, b), (1, 2));
        dir.add_member(group, b).unwrap();
        dir.add_member(group, a).unwrap();
        assert_eq!(dir.group(group).unwrap().members, [a, b]);
        assert_eq!(
            dir.add_member(group, a),
            Err(MembershipError::AlreadyMember)
        );
        assert_eq!(dir.add_member(group, 99), Err(MembershipError::UnknownUser));
        assert_eq!(dir.add_member(99, a), Err(MembershipError::UnknownGroup));

        assert!(dir.hide(a));
        assert!(dir.user(a).is_none());
        assert_eq!(dir.group(group).unwrap().members, [b]);
        assert!(dir.username_taken("A", None), "hidden names stay taken");
        assert!(dir.unhide(a));
        assert_eq!(dir.group(group).unwrap().members, [a, b]);
        assert!(!dir.unhide(a));

        assert!(dir.remove(b));
        assert_eq!(dir.group(group).unwrap().members, [a]);
        assert_eq!(dir.remove_member(group, b), Err(MembershipError::NotMember));
        // Ids only grow.
        assert_eq!(dir.insert(fields("c"), true), 3);
    }
}
