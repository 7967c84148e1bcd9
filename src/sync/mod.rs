//! The jobs: import (accounts, then access) and provisioning (the task queue), with task
//! submission and the per-target circuit breaker.

mod anomalies;
pub mod attributes;
pub mod breaker;
pub mod heartbeat;
pub mod import;
pub mod names;
pub mod provision;
pub mod tasks;
#[cfg(test)]
pub(crate) mod testing;

pub use import::{ImportError, ImportParts, ImportRequest, ImportRunner, ImportSummary, RunReport};
pub use provision::{PassReport, ProvisionError, ProvisionRunner};
pub use tasks::{submit, SubmitError, SubmitRequest};

/// The connectors of every target, by target name, shared by the runners.
pub type Connectors = std::sync::Arc<
    std::collections::BTreeMap<String, std::sync::Arc<dyn crate::connector::Connector>>,
>;
