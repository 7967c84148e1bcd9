//! The static side of an adapter (how a target of its kind is checked and built) and the
//! one `Connector` implementation every adapter gets from the kit.

use async_trait::async_trait;

use super::core::Core;
use super::operations::{provision, Operations};
use super::reads::Reads;
use crate::config::{ConfigProblem, TargetConfig};
use crate::connector::template::TemplateCatalog;
use crate::connector::{
    Capabilities, Connector, ConnectorError, PageStream, ProvisionOutcome, ProvisionRequest,
};
use crate::model::{AccountRecord, EntitlementRecord, GrantRecord, Operation};

/// One kind of target: its name in messages, the settings it owns, its request-body
/// templates, how its connector is built from a target's config, and what it refuses.
///
/// Reading the settings is one function ([`settings`](Adapter::settings)) used by both
/// `check-config` ([`check_config`]) and the constructor ([`build`]), so the rules cannot
/// drift apart. An adapter that also implements [`Reads`] and [`Operations`] is a
/// [`Connector`].
pub trait Adapter: Send + Sync + Sized + 'static {
    /// The target's product name, as messages spell it (`"DigiCert"`).
    const NAME: &'static str;

    /// The kind-specific keys of `[targets.NAME]` this adapter reads (see
    /// [`TargetConfig::kind_specific_keys`]); the registry refuses the others on its targets.
    const SETTINGS: &'static [&'static str];

    /// The request-body templates: built-in bodies by key, keys without one, and the format.
    const TEMPLATES: TemplateCatalog;

    /// The kind's settings of one target, read and checked (secrets resolved, templates
    /// compiled).
    type Settings;

    /// Reads and checks the kind-specific settings and the templates of target `name`:
    /// every problem at once, keyed relative to the target (`api_key`,
    /// `templates.create_account`). Resolves secrets; a problem never shows a secret.
    fn settings(name: &str, target: &TargetConfig) -> Result<Self::Settings, Vec<ConfigProblem>>;

    /// Builds the connector of target `name` from settings that passed the check (sets up
    /// its HTTP client; makes no request).
    fn with_settings(
        name: &str,
        target: &TargetConfig,
        settings: Self::Settings,
    ) -> Result<Self, ConnectorError>;

    /// The connector's shared core.
    fn core(&self) -> &Core;

    /// Why the target refuses `operation` (on entitlement type `entitlement_type`, for
    /// access operations) when its capabilities do not declare it: what is missing and what
    /// to do instead.
    fn why_unsupported(&self, operation: Operation, entitlement_type: Option<&str>) -> String;
}

/// Every problem with the kind-specific settings of target `name` (the `check-config` pass),
/// keyed relative to the target.
pub fn check_config<A: Adapter>(name: &str, target: &TargetConfig) -> Vec<ConfigProblem> {
    A::settings(name, target).err().unwrap_or_default()
}

/// Builds the connector of target `name`. Fails (class `Permanent`) with every problem
/// [`check_config`] would report, or when the client cannot be set up.
pub fn build<A: Adapter>(name: &str, target: &TargetConfig) -> Result<A, ConnectorError> {
    let settings = A::settings(name, target).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        ConnectorError::config(name, text.join("; "))
    })?;
    A::with_settings(name, target, settings)
}

/// Every adapter is a connector: reads through [`Reads`], changes through the one dispatch
/// ([`provision`]), target and capabilities from its [`Core`].
#[async_trait]
impl<A: Reads + Operations> Connector for A {
    fn target(&self) -> &str {
        self.core().target()
    }

    fn capabilities(&self) -> &Capabilities {
        self.core().capabilities()
    }

    async fn test_connection(&self) -> Result<(), ConnectorError> {
        self.probe().await
    }

    fn accounts(&self) -> PageStream<'_, AccountRecord> {
        self.account_pages()
    }

    fn entitlements(&self) -> PageStream<'_, EntitlementRecord> {
        self.entitlement_pages()
    }

    fn grants(&self) -> PageStream<'_, GrantRecord> {
        self.grant_pages()
    }

    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        provision(self, request).await
    }

    fn unsupported_reason(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        self.why_unsupported(operation, entitlement_type)
    }

    async fn lookup_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        self.find_account(name).await
    }
}
