//! Duck Creek: its XML "server request" protocol in a SOAP envelope, with the login in every
//! body.
//!
//! * **Every call is one batch** (see [`batch`]): `<server><requests>` holding
//!   `Session.loginRq userName password`, the work, and `Session.closeRq`, answered by one
//!   `…Rs` per request. The login is added by the adapter, never by a template, and the
//!   password (raw and XML-escaped) is redacted from every message.
//! * **Accounts**: `OnlineData.listEntityUsersRq entityID` (`entity_id`, default `1`) →
//!   `Users/User` (`@status` `Locked` is `inactive`). Unpaged: read as a stream and handed
//!   on `page_size` users at a time.
//! * **Entitlements**: roles (`Role`), entities (`Entity`) and privileges (`Privilege`, a
//!   catalogue only), in one batch.
//! * **Grants**: each user's `Roles/Role/@name` and entity memberships, the names resolved
//!   to ids through the catalogue.
//! * **Provisioning**, through XML request templates: lock and unlock, and add / remove
//!   `Role` and `Entity` (placeholder request names: override them with your deployment's);
//!   create, update and remove accounts only with a configured template.
//! * **Faults**: a `Client` fault that names the login or the credentials is an auth error,
//!   other `Client` faults are permanent, `Server` faults transient.
//!
//! Files: [`config`] (settings), `import` (reads), `provision` (changes), `wire` (XML and
//! mapping), `batch` (the batch protocol), `tests`.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;

use crate::config::TargetConfig;
use crate::connector::http::{ClientDefaults, HttpClient};
use crate::connector::kit::{Adapter, Core};
use crate::connector::soap::{BodySecret, SoapClient, SoapSettings};
use crate::connector::template::{TemplateCatalog, TemplateError, TemplateSet};
use crate::connector::xml::DEFAULT_MAX_DEPTH;
use crate::connector::{Capabilities, ConnectorError};
use crate::model::Operation;

pub mod batch;
pub mod config;
mod import;
mod provision;
mod wire;

#[cfg(test)]
mod tests;

pub use self::config::{DEFAULT_ENTITY_ID, DEFAULT_PAGE_SIZE};
use self::provision::check_requests;
pub use self::provision::{capabilities, template_for, unsupported_reason, TEMPLATES};
pub use self::wire::{is_login_fault, read_error};

/// Entitlement type of a role (users hold roles).
pub const ROLE: &str = "Role";
/// Entitlement type of an entity (users hold memberships).
pub const ENTITY: &str = "Entity";
/// Entitlement type of a privilege (a catalogue: privileges attach to roles).
pub const PRIVILEGE: &str = "Privilege";

/// The login request that opens every batch.
pub const LOGIN: &str = "Session.loginRq";
/// The request that closes every batch.
pub const CLOSE: &str = "Session.closeRq";
/// Lists the users of an entity.
pub const LIST_USERS: &str = "OnlineData.listEntityUsersRq";
/// Lists the roles.
pub const LIST_ROLES: &str = "Security.listRolesRq";
/// Lists the entities.
pub const LIST_ENTITIES: &str = "OnlineData.listEntitiesRq";
/// Lists the privileges.
pub const LIST_PRIVILEGES: &str = "Security.listPrivilegesRq";

/// The Duck Creek connector of one target.
#[derive(Debug)]
pub struct DuckCreekConnector {
    core: Core,
    soap: SoapClient,
    username: String,
    password: SecretString,
    entity_id: String,
    /// The opening and closing tags `<server>` is wrapped in (both empty when unwrapped).
    wrapper: (String, String),
    /// Per operation, the failure codes that mean the change is already in place.
    already_done: HashMap<Operation, Vec<String>>,
}

impl Adapter for DuckCreekConnector {
    const NAME: &'static str = "Duck Creek";
    const TEMPLATES: TemplateCatalog = TEMPLATES;
    type Settings = config::Settings;

    fn capabilities(_: &config::Settings, templates: &TemplateSet) -> Capabilities {
        capabilities(templates)
    }

    fn assemble(
        core: Core,
        target: &TargetConfig,
        settings: config::Settings,
    ) -> Result<Self, ConnectorError> {
        // No pacing by default: the target names no limit.
        let defaults = ClientDefaults {
            rate_limits: Vec::new(),
            read_error,
        };
        let credential = Arc::new(BodySecret::new(settings.password.clone()));
        let http = HttpClient::new(core.target(), target, defaults, credential)?;
        let soap_settings = SoapSettings {
            version: settings.soap_version,
            action: settings.soap_action,
            content_type: settings.content_type,
            max_depth: DEFAULT_MAX_DEPTH,
        };
        let soap = SoapClient::new(http, &soap_settings, is_login_fault)?;
        Ok(Self {
            core,
            soap,
            username: settings.username,
            password: settings.password,
            entity_id: settings.entity_id,
            wrapper: settings.wrapper,
            already_done: settings.already_done,
        })
    }

    fn template_keys(operation: Operation, entitlement_type: Option<&str>) -> Vec<&'static str> {
        template_for(operation, entitlement_type)
            .into_iter()
            .collect()
    }

    fn check_templates(templates: &TemplateSet) -> Vec<TemplateError> {
        check_requests(templates)
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn why_unsupported(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        unsupported_reason(self.core.target(), operation, entitlement_type)
    }
}
