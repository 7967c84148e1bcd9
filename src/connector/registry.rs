//! Builds the connector of each configured target: a closed `match` on [`TargetKind`], so a
//! new kind of target is a compile error here until its adapter is wired in.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::digicert::DigicertConnector;
use super::duckcreek::DuckCreekConnector;
use super::jama::JamaConnector;
use super::template::{self, Escape, TemplateCatalog, TemplateError};
use super::{Connector, ConnectorError};
use crate::config::{Config, TargetConfig, TargetKind};

/// Builds the connector of target `name` (resolving its secrets and setting up its HTTP
/// client; for Jama, also its token cache, which fetches no token until the first call). Fails with a `Permanent` error that names the target and what is wrong.
pub fn build_connector(
    name: &str,
    target: &TargetConfig,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    match target.kind {
        TargetKind::Digicert => Ok(Arc::new(DigicertConnector::new(name, target)?)),
        TargetKind::Jama => Ok(Arc::new(JamaConnector::new(name, target)?)),
        TargetKind::Duckcreek => Ok(Arc::new(DuckCreekConnector::new(name, target)?)),
    }
}

/// The request-body templates an adapter of `kind` has (key → built-in default, keys without
/// one), and how their values are escaped.
pub fn template_catalog(kind: TargetKind) -> TemplateCatalog {
    match kind {
        TargetKind::Digicert => TemplateCatalog {
            defaults: &super::digicert::TEMPLATES,
            optional: &[],
            escape: Escape::Json,
        },
        TargetKind::Jama => TemplateCatalog {
            defaults: &super::jama::TEMPLATES,
            optional: &[],
            escape: Escape::Json,
        },
        TargetKind::Duckcreek => super::duckcreek::TEMPLATE_CATALOG,
    }
}

/// Compiles the templates of target `name` (its `templates` over the adapter's defaults) and
/// renders each against the sample context: every problem, keyed
/// `targets.NAME.templates.OPERATION` (the `check-config` pass).
pub fn check_templates(name: &str, target: &TargetConfig) -> Vec<TemplateError> {
    match target.kind {
        TargetKind::Duckcreek => super::duckcreek::check_templates(name, target),
        kind => template::check_catalog(name, &template_catalog(kind), &target.templates),
    }
}

/// Builds the connectors of every target in `config`, by target name. Stops at the first
/// target that cannot be built.
pub fn build_connectors(
    config: &Config,
) -> Result<BTreeMap<String, Arc<dyn Connector>>, ConnectorError> {
    config
        .targets
        .iter()
        .map(|(name, target)| Ok((name.clone(), build_connector(name, target)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_every_configured_target_and_names_a_broken_one() {
        let config: Config = toml::from_str(
            r#"
            [targets.dc-eu]
            kind = "digicert"
            base_url = "https://certcentral.digicert.eu/services/v2"
            api_key = "k"

            [targets.dc]
            kind = "digicert"
            base_url = "https://www.digicert.com/services/v2"
            api_key = "k"

            [targets.jama]
            kind = "jama"
            base_url = "https://example.jamacloud.com"
            client_id = "c"
            client_secret = "s"
            "#,
        )
        .unwrap();
        let connectors = build_connectors(&config).unwrap();
        assert_eq!(
            connectors.keys().collect::<Vec<_>>(),
            ["dc", "dc-eu", "jama"]
        );
        assert_eq!(connectors["dc-eu"].target(), "dc-eu");
        assert_eq!(
            connectors["jama"].capabilities().entitlement_types,
            ["usergroup"]
        );

        let broken: Config = toml::from_str(
            "[targets.dc]\nkind = \"digicert\"\nbase_url = \"https://www.digicert.com/services/v2\"",
        )
        .unwrap();
        let Err(err) = build_connectors(&broken) else {
            panic!("built without an api_key")
        };
        assert!(
            err.to_string().contains("target dc") && err.to_string().contains("api_key"),
            "{err}"
        );

        let broken: Config = toml::from_str(
            "[targets.jama]\nkind = \"jama\"\nbase_url = \"https://example.jamacloud.com\"\nclient_id = \"c\"",
        )
        .unwrap();
        let Err(err) = build_connectors(&broken) else {
            panic!("built without a client_secret")
        };
        assert!(
            err.to_string().contains("target jama") && err.to_string().contains("client_secret"),
            "{err}"
        );
    }
}
