//! Talking to targets: the [`Connector`] trait the jobs call, its classified
//! [`ConnectorError`], the shared building blocks every adapter is made of, and the adapters.
//!
//! * **The contract**: [`Connector`] streams accounts, entitlements and grants page by page,
//!   applies one provisioning operation, and declares its [`Capabilities`] up front. The jobs
//!   know nothing target-specific.
//! * **Building blocks** (generic, no target in them): [`http`] (the client: timeouts, TLS,
//!   pacing, body caps, error classification), [`retry`] (the read backoff), [`token`]
//!   (OAuth client credentials), [`paging`] (pagination guards), [`mapping`] (JSON helpers),
//!   [`template`] (request bodies), [`password`], [`soap`] and [`xml`].
//! * **The adapter kit** ([`kit`]): what every adapter has in common: the [`kit::Adapter`]
//!   trait the [`registry`] builds and checks targets through, the shared [`kit::Core`], the
//!   one provisioning dispatch ([`kit::Operations`]), and duplicate and "already done"
//!   judging.
//! * **Adapters**, one folder each with the same files: [`digicert`], [`jama`],
//!   [`duckcreek`]. `ARCHITECTURE.md` says how to add one.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::model::{AccountRecord, EntitlementRecord, GrantRecord, Operation};
use template::AttributeReads;

pub mod digicert;
pub mod duckcreek;
mod error;
pub mod http;
pub mod jama;
pub mod kit;
pub mod mapping;
pub mod paging;
pub mod password;
pub mod registry;
pub mod retry;
pub mod soap;
pub mod template;
pub mod token;
pub mod xml;

pub use error::{ConnectorError, ErrorClass};

/// A page of records, as one item of a connector stream.
pub type PageResult<T> = Result<Vec<T>, ConnectorError>;

/// A stream of pages. Each item is one page as the target returned it; an `Err` item ends
/// the stream and fails the whole run.
pub type PageStream<'a, T> = BoxStream<'a, PageResult<T>>;

/// One operation an adapter supports, optionally limited to one entitlement type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Capability {
    /// The operation.
    pub operation: Operation,
    /// For `add_access` / `remove_access`: the entitlement type it applies to.
    pub entitlement_type: Option<String>,
}

/// What an adapter can do, declared up front so unsupported operations are refused at submit.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// The entitlement types an import produces.
    pub entitlement_types: Vec<String>,
    /// The supported provisioning operations.
    pub operations: BTreeSet<Capability>,
}

impl Capabilities {
    /// The capabilities of an adapter whose imports produce `entitlement_types`, that runs the
    /// `account` operations, and the `access` operations on the entitlement types they name.
    pub fn new<'a>(
        entitlement_types: &[&str],
        account: impl IntoIterator<Item = Operation>,
        access: impl IntoIterator<Item = (Operation, &'a str)>,
    ) -> Self {
        let account = account.into_iter().map(|operation| Capability {
            operation,
            entitlement_type: None,
        });
        let access = access.into_iter().map(|(operation, kind)| Capability {
            operation,
            entitlement_type: Some(kind.to_string()),
        });
        Self {
            entitlement_types: entitlement_types
                .iter()
                .map(|kind| kind.to_string())
                .collect(),
            operations: account.chain(access).collect(),
        }
    }

    /// Whether `operation` is declared, for entitlement type `entitlement_type` (access
    /// operations; compared without letter case) or for the account (`None`).
    pub fn supports(&self, operation: Operation, entitlement_type: Option<&str>) -> bool {
        self.operations.iter().any(|capability| {
            capability.operation == operation
                && match (&capability.entitlement_type, entitlement_type) {
                    (None, None) => true,
                    (Some(declared), Some(wanted)) => declared.eq_ignore_ascii_case(wanted),
                    _ => false,
                }
        })
    }
}

/// The task attributes one operation of a target reads: what its request templates read of
/// `user.*`, and which templates those are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationAttributes {
    /// The `user.*` keys read.
    pub reads: AttributeReads,
    /// The config keys of the templates the operation renders
    /// (`targets.NAME.templates.KEY`); empty when it sends no template body.
    pub templates: Vec<String>,
}

impl OperationAttributes {
    /// Any key, as far as anyone can tell: a connector with no templates to look at.
    pub fn any() -> Self {
        Self {
            reads: AttributeReads::Any,
            templates: Vec::new(),
        }
    }
}

/// One provisioning operation as a connector receives it: a task of the queue, resolved
/// against the store (account id, entitlement name).
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The operation.
    pub operation: Operation,
    /// The account's native id, when known.
    pub account_id: Option<String>,
    /// The account's login name.
    pub account_name: String,
    /// The entitlement type and native id, for access operations.
    pub entitlement: Option<(String, String)>,
    /// The identity attributes given with the task.
    pub attributes: crate::model::Attributes,
    /// The entitlement's display name (bound as `entitlementValue.entitlement_value`).
    pub entitlement_name: Option<String>,
    /// The task this request carries out (bound as `task.id`), when it comes from the queue.
    pub task_id: Option<i64>,
    /// The caller's request id (bound as `requestid`).
    pub request_id: Option<String>,
}

/// What a successful provisioning call did.
#[derive(Debug, Clone, PartialEq)]
pub enum ProvisionOutcome {
    /// The change was made; for `create_account`, the new native id.
    Done {
        /// The native id of a created account.
        account_id: Option<String>,
    },
    /// The change was already in place; for `create_account`, the native id of the existing
    /// account that matched the task (when the target told it).
    AlreadyDone {
        /// The native id of the account that already existed.
        account_id: Option<String>,
    },
}

impl ProvisionOutcome {
    /// `Done` when the call changed something, else `AlreadyDone`; either with `account_id`.
    pub fn changed(changed: bool, account_id: Option<String>) -> Self {
        if changed {
            ProvisionOutcome::Done { account_id }
        } else {
            ProvisionOutcome::AlreadyDone { account_id }
        }
    }
}

/// The contract every adapter implements.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The target's config name.
    fn target(&self) -> &str;

    /// What this target supports.
    fn capabilities(&self) -> &Capabilities;

    /// Authenticates and makes one cheap read.
    async fn test_connection(&self) -> Result<(), ConnectorError>;

    /// Every account of the target, page by page.
    fn accounts(&self) -> PageStream<'_, AccountRecord>;

    /// Every entitlement of the target, page by page.
    fn entitlements(&self) -> PageStream<'_, EntitlementRecord>;

    /// Every grant of the target, page by page.
    fn grants(&self) -> PageStream<'_, GrantRecord>;

    /// Applies one provisioning operation.
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError>;

    /// Why this target refuses `operation` (on entitlement type `entitlement_type`, for
    /// access operations) when [`capabilities`](Self::capabilities) does not declare it: the
    /// message shown when such a task is refused at submit. Adapters say why and what to do
    /// instead.
    fn unsupported_reason(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        match entitlement_type {
            Some(kind) => format!(
                "target {} does not support {operation} on entitlement type {kind}",
                self.target()
            ),
            None => format!("target {} does not support {operation}", self.target()),
        }
    }

    /// The task attributes `operation` (on entitlement type `entitlement_type`, for access
    /// operations) reads on this target: the `user.*` keys its request templates read, so
    /// that a submit naming another key is refused instead of the key being dropped. The
    /// default, for a connector without templates to look at, takes any key.
    fn attribute_keys(
        &self,
        operation: Operation,
        entitlement_type: Option<&str>,
    ) -> OperationAttributes {
        let _ = (operation, entitlement_type);
        OperationAttributes::any()
    }

    /// Reads one account by login name, to check the target before repeating an attempt
    /// whose outcome is unknown (did the create go through?). Adapters without a lookup
    /// say so; the engine then relies on the target's duplicate handling.
    async fn lookup_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            target: self.target().to_string(),
            operation: "lookup_account".to_string(),
            reason: format!("cannot look up account {name} by login name"),
        })
    }
}
