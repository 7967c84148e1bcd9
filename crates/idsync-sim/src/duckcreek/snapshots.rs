//! The public records the control handle takes and hands out: [`DcUserSpec`] in, snapshots
//! ([`DcUser`], [`DcRole`], [`DcEntity`], [`DcPrivilege`]) out, and
//! [`DuckCreekControlError`] when a call is refused. Snapshots are copies: changing one
//! changes nothing in the simulator.

use serde::{Deserialize, Serialize};

use super::data::{
    DcUserStatus, Directory, EntityRecord, NewUser, PrivilegeRecord, RoleRecord, UserRecord,
};
use super::soap;

/// A user to add through [`DuckCreekControl::add_user`](super::DuckCreekControl::add_user) or `POST /_sim/users` (camelCase
/// keys, as the attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DcUserSpec {
    /// Login name, unique without letter case.
    pub name: String,
    /// Email (may be empty).
    #[serde(default)]
    pub email: String,
    /// Full name (may be empty).
    #[serde(default)]
    pub full_name: String,
    /// Status; default `Active`.
    #[serde(default)]
    pub status: DcUserStatus,
    /// Names of roles to hold (any letter case).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Names of entities to be a member of (any letter case).
    #[serde(default)]
    pub entities: Vec<String>,
}

impl DcUserSpec {
    /// An active user with no roles or memberships.
    pub fn new(
        name: impl Into<String>,
        email: impl Into<String>,
        full_name: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            email: email.into(),
            full_name: full_name.into(),
            status: DcUserStatus::Active,
            roles: Vec::new(),
            entities: Vec::new(),
        }
    }

    /// Checks the spec against the tenant and resolves role and entity names.
    pub(crate) fn validate(self, dir: &Directory) -> Result<NewUser, DuckCreekControlError> {
        if self.name.trim().is_empty() {
            return Err(DuckCreekControlError::Invalid("name is required.".into()));
        }
        for (field, value) in [
            ("name", &self.name),
            ("email", &self.email),
            ("fullName", &self.full_name),
        ] {
            check_text(field, value)?;
        }
        if dir.user_id_named(&self.name).is_some() {
            return Err(DuckCreekControlError::Invalid(format!(
                "a user named {:?} already exists.",
                self.name
            )));
        }
        let roles = self
            .roles
            .iter()
            .map(|name| {
                dir.role_named(name)
                    .map(|role| role.id)
                    .ok_or_else(|| DuckCreekControlError::UnknownRole(name.clone()))
            })
            .collect::<Result<_, _>>()?;
        let entities = self
            .entities
            .iter()
            .map(|name| {
                dir.entity_named(name)
                    .map(|entity| entity.id)
                    .ok_or_else(|| DuckCreekControlError::UnknownEntity(name.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(NewUser {
            name: self.name,
            email: self.email,
            full_name: self.full_name,
            status: self.status,
            roles,
            entities,
        })
    }
}

/// Refuses control characters (an attribute value cannot carry most of them, and the ones it
/// can would be normalized away by a careless reader).
pub(crate) fn check_text(field: &str, value: &str) -> Result<(), DuckCreekControlError> {
    if value.chars().any(char::is_control) || !value.chars().all(soap::is_xml_char) {
        return Err(DuckCreekControlError::Invalid(format!(
            "{field} must not contain control characters."
        )));
    }
    Ok(())
}

/// A user as the simulator holds it (a snapshot, camelCase like the attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DcUser {
    /// User id.
    pub id: u64,
    /// Login name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// `Active` or `Locked`.
    pub status: DcUserStatus,
    /// Names of the roles it holds, by role id.
    pub roles: Vec<String>,
    /// Names of the entities it is a member of, by entity id.
    pub entities: Vec<String>,
}

impl DcUser {
    /// The snapshot of `user`, names resolved in `dir`.
    pub(crate) fn new(user: &UserRecord, dir: &Directory) -> Self {
        DcUser {
            id: user.id,
            name: user.name.to_string(),
            email: user.email.to_string(),
            full_name: user.full_name.to_string(),
            status: user.status,
            roles: user
                .roles
                .iter()
                .filter_map(|id| dir.role(*id))
                .map(|role| role.name.clone())
                .collect(),
            entities: user
                .entities
                .iter()
                .filter_map(|id| dir.entity(*id))
                .map(|entity| entity.name.clone())
                .collect(),
        }
    }
}

/// A role (a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcRole {
    /// Role id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Ids of the privileges attached to it, ascending.
    pub privileges: Vec<u64>,
}

impl From<&RoleRecord> for DcRole {
    fn from(role: &RoleRecord) -> Self {
        DcRole {
            id: role.id,
            name: role.name.clone(),
            description: role.description.clone(),
            privileges: role.privileges.clone(),
        }
    }
}

/// An entity (a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcEntity {
    /// Entity id (1 is the root organisation).
    pub id: u64,
    /// Name.
    pub name: String,
    /// The element it is listed under in `OnlineData.listEntitiesRs/Entities`, e.g.
    /// `Entity` or `Agency`.
    pub element: String,
}

impl From<&EntityRecord> for DcEntity {
    fn from(entity: &EntityRecord) -> Self {
        DcEntity {
            id: entity.id,
            name: entity.name.clone(),
            element: entity.element.clone(),
        }
    }
}

/// A privilege (a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcPrivilege {
    /// Privilege id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The `type` attribute, e.g. `Application`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl From<&PrivilegeRecord> for DcPrivilege {
    fn from(privilege: &PrivilegeRecord) -> Self {
        DcPrivilege {
            id: privilege.id,
            name: privilege.name.clone(),
            description: privilege.description.clone(),
            kind: privilege.kind.clone(),
        }
    }
}

/// Why a control call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuckCreekControlError {
    /// No user has this id.
    #[error("no user with id {0}")]
    UnknownUser(u64),
    /// No role has this name.
    #[error("no role named {0:?}")]
    UnknownRole(String),
    /// No entity has this name.
    #[error("no entity named {0:?}")]
    UnknownEntity(String),
    /// The input is not acceptable.
    #[error("invalid input: {0}")]
    Invalid(String),
}
