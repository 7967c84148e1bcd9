//! Jama Connect REST API v1: OAuth client credentials, `startAt`/`maxResults` paging.
//!
//! * **Accounts**: `GET /users?includeInactive=true`, one stream item per page.
//! * **Entitlements**: `GET /usergroups` (type `usergroup`).
//! * **Grants**: `GET /usergroups/{id}/users` for each group.
//! * **Paging**: Jama clamps `maxResults` at 50 silently, so the pager advances by what a page
//!   holds and stops at `totalResults`, never on a short page.
//! * **Auth**: a [`TokenCache`] is the API client's credential: it fetches `POST
//!   {base_url}/rest/oauth/token`, refreshes ahead of expiry, and after a 401 refreshes once
//!   and the call is repeated once. The API root is `{base_url}/rest/v1`.
//! * **Pacing**: 10 requests per second by default (Jama's limit for the whole tenant,
//!   answered with bare 429s and no `Retry-After`).
//! * **Provisioning**: create, update, enable, disable, and add / remove `usergroup`
//!   membership. Jama has no user delete: `remove_account` is refused unless
//!   `remove_strategy = "disable"` deactivates the user. A duplicate create counts as done
//!   only for the same person (same email); "already exists" on add and 404 on remove count
//!   as done.
//!
//! Files: [`config`] (settings), `import` (reads), `provision` (changes), `wire` (JSON and
//! mapping), `tests`.

use std::sync::Arc;

use crate::config::TargetConfig;
use crate::connector::http::{ClientDefaults, HttpClient};
use crate::connector::kit::{Adapter, Core};
use crate::connector::template::{TemplateCatalog, TemplateSet};
use crate::connector::token::{ClientCredentials, TokenCache};
use crate::connector::{Capabilities, ConnectorError};
use crate::model::Operation;

pub mod config;
mod import;
mod provision;
mod wire;

#[cfg(test)]
mod tests;

pub use self::config::DEFAULT_PAGE_SIZE;
pub use self::provision::{capabilities, unsupported_reason, DEFAULT_LICENSE_TYPE, TEMPLATES};
pub use self::wire::{error_message, read_error};

/// Entitlement type of a user group.
pub const USERGROUP: &str = "usergroup";

/// The Jama Connect connector of one target.
#[derive(Debug)]
pub struct JamaConnector {
    core: Core,
    http: HttpClient,
}

impl Adapter for JamaConnector {
    const NAME: &'static str = "Jama";
    const TEMPLATES: TemplateCatalog = TEMPLATES;
    type Settings = config::Settings;

    fn capabilities(settings: &config::Settings, _: &TemplateSet) -> Capabilities {
        capabilities(settings.remove_strategy)
    }

    fn assemble(
        core: Core,
        target: &TargetConfig,
        settings: config::Settings,
    ) -> Result<Self, ConnectorError> {
        let name = core.target();
        let credentials = ClientCredentials::new(settings.client_id, settings.client_secret);
        let tokens = TokenCache::new(name, target, &config::TOKEN_PATH, &credentials, read_error)?;
        let mut api = target.clone();
        api.base_url = config::api_root(name, &target.base_url)?;
        let defaults = ClientDefaults {
            rate_limits: config::default_rate_limits(),
            read_error,
        };
        let http = HttpClient::new(name, &api, defaults, Arc::new(tokens))?;
        Ok(Self { core, http })
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn why_unsupported(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        unsupported_reason(operation, entitlement_type)
    }
}
