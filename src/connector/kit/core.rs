//! What every connector holds besides its client, and the refusals built from it.

use super::adapter::Adapter;
use super::operations::AccountId;
use crate::connector::template::{template_key, AttributeReads, TemplateError, TemplateSet};
use crate::connector::{Capabilities, ConnectorError, OperationAttributes, ProvisionRequest};
use crate::model::Operation;

/// The part of a connector that is the same for every kind: the target's config name, the
/// adapter's product name (for messages), the page size, the declared capabilities and the
/// compiled request-body templates.
#[derive(Debug)]
pub struct Core {
    target: String,
    product: &'static str,
    page_size: u32,
    capabilities: Capabilities,
    templates: TemplateSet,
}

impl Core {
    /// The core of target `target` of adapter `A`.
    pub fn new<A: Adapter>(
        target: &str,
        page_size: u32,
        capabilities: Capabilities,
        templates: TemplateSet,
    ) -> Self {
        Self {
            target: target.to_string(),
            product: A::NAME,
            page_size: page_size.max(1),
            capabilities,
            templates,
        }
    }

    /// The target's config name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Records per page (at least 1).
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// What the target supports.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The compiled request-body templates.
    pub fn templates(&self) -> &TemplateSet {
        &self.templates
    }

    /// The task attributes read by the templates `keys` (those the target has; an
    /// operation's templates, see [`Adapter::template_keys`]).
    pub fn attribute_keys(&self, keys: &[&str]) -> OperationAttributes {
        let present: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|key| self.templates.has(key))
            .collect();
        let reads = present
            .iter()
            .filter_map(|key| self.templates.reads(key))
            .fold(AttributeReads::none(), AttributeReads::union);
        OperationAttributes {
            reads,
            templates: present
                .iter()
                .map(|key| template_key(&self.target, key))
                .collect(),
        }
    }

    /// A `Permanent` error about the task itself: bad input, or a decision of ours (nothing
    /// was sent, or what the target answered is judged final).
    pub fn refused(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Permanent {
            target: self.target.clone(),
            status: None,
            message: message.into(),
        }
    }

    /// A template that failed to render: `Permanent`, naming the template.
    pub fn template_failed(&self, err: TemplateError) -> ConnectorError {
        self.refused(err.to_string())
    }

    /// A response the adapter could not make sense of: `Permanent`.
    pub fn malformed(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::malformed(&self.target, message)
    }

    /// `Unsupported` for `operation`, with the adapter's `reason`.
    pub fn unsupported(&self, operation: Operation, reason: String) -> ConnectorError {
        ConnectorError::Unsupported {
            target: self.target.clone(),
            operation: operation.to_string(),
            reason,
        }
    }

    /// The target-native account id `request` carries, or a refusal saying how to get one.
    pub fn account_id<'r>(
        &self,
        request: &'r ProvisionRequest,
    ) -> Result<AccountId<'r>, ConnectorError> {
        AccountId::of(request).ok_or_else(|| {
            self.refused(format!(
                "{} of {} needs the account's {} id, which is not known (import the accounts, \
                 or wait for its create_account task)",
                request.operation, request.account_name, self.product
            ))
        })
    }
}
