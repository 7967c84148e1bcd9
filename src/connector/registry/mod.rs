//! The closed list of target kinds: how each is checked and built. A `match` on
//! [`TargetKind`], so a new kind of target is a compile error here until its adapter is wired
//! in (see `ARCHITECTURE.md`, "Adding a target").

use std::collections::BTreeMap;
use std::sync::Arc;

use super::digicert::DigicertConnector;
use super::duckcreek::DuckCreekConnector;
use super::jama::JamaConnector;
use super::kit::{Adapter, Settings};
use super::{Connector, ConnectorError};
use crate::config::{Config, ConfigProblem, TargetConfig, TargetKind, TargetRules};

/// The kind-specific rules of every target, as the adapters state them: what `check-config`
/// and every config load apply (see [`TargetRules`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdapterRules;

impl TargetRules for AdapterRules {
    fn check(&self, name: &str, target: &TargetConfig) -> Vec<ConfigProblem> {
        let mut problems = foreign_settings(target);
        problems.extend(match target.kind {
            TargetKind::Digicert => DigicertConnector::check_config(name, target),
            TargetKind::Jama => JamaConnector::check_config(name, target),
            TargetKind::Duckcreek => DuckCreekConnector::check_config(name, target),
        });
        problems
    }
}

/// The kind-specific keys each kind reads, by kind.
fn settings_of(kind: TargetKind) -> &'static [&'static str] {
    match kind {
        TargetKind::Digicert => <DigicertConnector as Adapter>::Settings::KEYS,
        TargetKind::Jama => <JamaConnector as Adapter>::Settings::KEYS,
        TargetKind::Duckcreek => <DuckCreekConnector as Adapter>::Settings::KEYS,
    }
}

/// Keys of other kinds set on `target`: each is refused, naming the kind it belongs to.
fn foreign_settings(target: &TargetConfig) -> Vec<ConfigProblem> {
    let own = settings_of(target.kind);
    target
        .kind_specific_keys()
        .into_iter()
        .filter(|(key, set)| *set && !own.contains(key))
        .map(|(key, _)| {
            let owners: Vec<String> = TargetKind::ALL
                .into_iter()
                .filter(|kind| settings_of(*kind).contains(&key))
                .map(|kind| format!("kind = \"{}\"", kind.as_str()))
                .collect();
            ConfigProblem::new(
                key,
                format!(
                    "does not apply to kind = \"{}\" (remove it; it is a setting of {})",
                    target.kind.as_str(),
                    owners.join(" and ")
                ),
            )
        })
        .collect()
}

/// Builds the connector of target `name` (resolving its secrets and setting up its HTTP
/// client; for Jama, also its token cache, which fetches no token until the first call).
/// Fails with a `Permanent` error that names the target and every problem.
pub fn build_connector(
    name: &str,
    target: &TargetConfig,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(match target.kind {
        TargetKind::Digicert => Arc::new(DigicertConnector::build(name, target)?),
        TargetKind::Jama => Arc::new(JamaConnector::build(name, target)?),
        TargetKind::Duckcreek => Arc::new(DuckCreekConnector::build(name, target)?),
    })
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
mod tests;
