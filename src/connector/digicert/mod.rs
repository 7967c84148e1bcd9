//! DigiCert CertCentral Services API v2: API key, offset/limit paging, full-replace `PUT`s.
//!
//! * **Accounts**: `GET /user?offset=N&limit=M`, one stream item per page.
//! * **Entitlements**: `GET /container` (type `container`), then `GET /container/{id}/role`
//!   for each top-level container (type `role`, de-duplicated by id).
//! * **Grants**: the user pages again: each access role and the user's one container.
//! * **Auth**: the API key in `X-DC-DEVKEY` (`api_key_header`).
//! * **Pacing**: 90 requests per 5 s and 900 per 3 min by default (90 % of the documented
//!   per-key limits, which answer with bare 429s and no `Retry-After`).
//! * **Provisioning**: create, update and remove accounts; add and remove `role`s (the whole
//!   role list goes to `PUT /user/{id}/role`, a user's last role is never removed, and a
//!   held role whose id cannot be read stops the change). Updates send only Edit user's
//!   documented fields. Moving a user to another `container` is refused unless
//!   `container_move = "put_user"` (no documented call does it). CertCentral has no
//!   enable/disable: `disable_strategy = "delete"` deletes the user on `disable_account`. A
//!   duplicate create counts as done only for the same person (same email).
//!
//! Files: [`config`] (settings), `import` (reads), `provision` (changes), `wire` (JSON and
//! mapping), `tests`, `documented_api_tests` (the adapter held to the documented calls).

use std::sync::Arc;

use crate::config::TargetConfig;
use crate::connector::http::{ClientDefaults, HttpClient, StaticHeader};
use crate::connector::kit::{Adapter, Core};
use crate::connector::template::{TemplateCatalog, TemplateSet};
use crate::connector::{Capabilities, ConnectorError};
use crate::model::Operation;

pub mod config;
mod import;
mod provision;
mod wire;

#[cfg(test)]
mod documented_api_tests;
#[cfg(test)]
mod tests;

pub use self::config::DEFAULT_PAGE_SIZE;
pub use self::provision::{capabilities, unsupported_reason, TEMPLATES};
pub use self::wire::{error_message, read_error};

/// Entitlement type of an access role.
pub const ROLE: &str = "role";

/// Entitlement type of a container (division).
pub const CONTAINER: &str = "container";

/// The DigiCert CertCentral connector of one target.
#[derive(Debug)]
pub struct DigicertConnector {
    core: Core,
    http: HttpClient,
    default_role: String,
    container_move: Option<config::ContainerMove>,
}

impl Adapter for DigicertConnector {
    const NAME: &'static str = "DigiCert";
    const TEMPLATES: TemplateCatalog = TEMPLATES;
    type Settings = config::Settings;

    fn capabilities(settings: &config::Settings, _: &TemplateSet) -> Capabilities {
        capabilities(settings.disable_strategy, settings.container_move)
    }

    fn assemble(
        core: Core,
        target: &TargetConfig,
        settings: config::Settings,
    ) -> Result<Self, ConnectorError> {
        let name = core.target();
        let credential = StaticHeader::new(name, &settings.api_key_header, settings.api_key)?;
        let defaults = ClientDefaults {
            rate_limits: config::default_rate_limits(),
            read_error,
        };
        let http = HttpClient::new(name, target, defaults, Arc::new(credential))?;
        Ok(Self {
            core,
            http,
            default_role: settings.default_role,
            container_move: settings.container_move,
        })
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn why_unsupported(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        unsupported_reason(operation, entitlement_type)
    }
}
