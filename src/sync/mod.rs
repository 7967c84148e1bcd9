//! The jobs: import (accounts, then access) and, in a later version, provisioning.

pub mod import;

pub use import::{ImportError, ImportParts, ImportRequest, ImportRunner, ImportSummary, RunReport};
