//! An adapter's kind (how a target of its kind is checked and built) and the one `Connector`
//! implementation every adapter gets from the kit.

use async_trait::async_trait;

use super::core::Core;
use super::operations::{provision, Operations};
use super::reads::Reads;
use super::settings::{self, Settings};
use crate::config::{ConfigProblem, TargetConfig};
use crate::connector::template::{TemplateCatalog, TemplateError, TemplateSet};
use crate::connector::{
    Capabilities, Connector, ConnectorError, OperationAttributes, PageStream, ProvisionOutcome,
    ProvisionRequest,
};
use crate::model::{AccountRecord, EntitlementRecord, GrantRecord, Operation};

/// One kind of target: its name in messages, its settings, its request-body templates, what
/// it supports, and how its connector is put together.
///
/// Reading the settings is one pass ([`Settings::read`] plus the page size and templates
/// every kind has) used by both `check-config` ([`check_config`](Adapter::check_config)) and
/// the constructor ([`build`](Adapter::build)), so the rules cannot drift apart. An adapter
/// that also implements [`Reads`] and [`Operations`] is a [`Connector`].
pub trait Adapter: Send + Sync + Sized + 'static {
    /// The target's product name, as messages spell it (`"DigiCert"`).
    const NAME: &'static str;

    /// The request-body templates: built-in bodies by key, keys without one, and the format.
    const TEMPLATES: TemplateCatalog;

    /// The kind's own settings of one target, read and checked.
    type Settings: Settings;

    /// What a target with these settings and templates supports.
    fn capabilities(settings: &Self::Settings, templates: &TemplateSet) -> Capabilities;

    /// Puts the connector together from its core and its checked settings (sets up its HTTP
    /// client; makes no request).
    fn assemble(
        core: Core,
        target: &TargetConfig,
        settings: Self::Settings,
    ) -> Result<Self, ConnectorError>;

    /// The connector's shared core.
    fn core(&self) -> &Core;

    /// Why the target refuses `operation` (on entitlement type `entitlement_type`, for
    /// access operations) when its capabilities do not declare it: what is missing and what
    /// to do instead.
    fn why_unsupported(&self, operation: Operation, entitlement_type: Option<&str>) -> String;

    /// The keys of the templates `operation` (on entitlement type `entitlement_type`, for
    /// access operations) renders: by default the one named after the operation. Only
    /// those the target has count, so an operation that sends no template body reads no
    /// attribute.
    fn template_keys(operation: Operation, entitlement_type: Option<&str>) -> Vec<&'static str> {
        let _ = entitlement_type;
        vec![operation.as_str()]
    }

    /// Problems of the compiled templates beyond rendering against the sample context
    /// (none by default).
    fn check_templates(templates: &TemplateSet) -> Vec<TemplateError> {
        let _ = templates;
        Vec::new()
    }

    /// Every problem with the kind-specific settings of target `name` (the `check-config`
    /// pass), keyed relative to the target. Resolves secrets; a problem never shows one.
    fn check_config(name: &str, target: &TargetConfig) -> Vec<ConfigProblem> {
        settings::read::<Self>(name, target)
            .err()
            .unwrap_or_default()
    }

    /// Builds the connector of target `name`. Fails (class `Permanent`) with every problem
    /// [`check_config`](Adapter::check_config) would report, or when the client cannot be
    /// set up.
    fn build(name: &str, target: &TargetConfig) -> Result<Self, ConnectorError> {
        let (own, common) = settings::read::<Self>(name, target).map_err(|problems| {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            ConnectorError::config(name, text.join("; "))
        })?;
        let capabilities = Self::capabilities(&own, &common.templates);
        let core = Core::new::<Self>(name, common.page_size, capabilities, common.templates);
        Self::assemble(core, target, own)
    }
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

    fn attribute_keys(
        &self,
        operation: Operation,
        entitlement_type: Option<&str>,
    ) -> OperationAttributes {
        self.core()
            .attribute_keys(&A::template_keys(operation, entitlement_type))
    }

    async fn lookup_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        self.find_account(name).await
    }
}
