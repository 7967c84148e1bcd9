//! The one provisioning dispatch every adapter goes through.

use std::fmt;

use async_trait::async_trait;

use super::adapter::Adapter;
use crate::connector::{ConnectorError, ProvisionOutcome, ProvisionRequest};
use crate::model::Operation;

/// What a provisioning operation returns.
pub type Outcome = Result<ProvisionOutcome, ConnectorError>;

/// A target-native account id (never a login name, never an entitlement id), as a task
/// carries it once the account is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountId<'r>(&'r str);

impl<'r> AccountId<'r> {
    /// The non-blank account id of `request`, if it has one.
    pub fn of(request: &'r ProvisionRequest) -> Option<Self> {
        request
            .account_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .map(AccountId)
    }

    /// The id as the target spells it.
    pub fn as_str(self) -> &'r str {
        self.0
    }
}

impl fmt::Display for AccountId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The entitlement an access operation grants or revokes: its type as the task gave it, its
/// target-native id, and its display name when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entitlement<'r> {
    /// The entitlement type (`role`, `usergroup`, `Role`, …), as the task spelled it.
    pub kind: &'r str,
    /// The target-native id.
    pub id: &'r str,
    /// The display name, when the store knows it.
    pub name: Option<&'r str>,
}

impl Entitlement<'_> {
    /// Whether the type is `kind` (types match without letter case).
    pub fn is(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }
}

/// The provisioning operations of an adapter, one method each. [`provision`] calls them only
/// for what the adapter's capabilities declare; an operation the adapter never supports
/// keeps the default, which refuses it.
#[async_trait]
pub trait Operations: Adapter {
    /// `create_account`.
    async fn create_account(&self, request: &ProvisionRequest) -> Outcome {
        Err(not_implemented(self, request))
    }

    /// `update_account`.
    async fn update_account(&self, request: &ProvisionRequest) -> Outcome {
        Err(not_implemented(self, request))
    }

    /// `enable_account`.
    async fn enable_account(&self, request: &ProvisionRequest) -> Outcome {
        Err(not_implemented(self, request))
    }

    /// `disable_account`.
    async fn disable_account(&self, request: &ProvisionRequest) -> Outcome {
        Err(not_implemented(self, request))
    }

    /// `remove_account`.
    async fn remove_account(&self, request: &ProvisionRequest) -> Outcome {
        Err(not_implemented(self, request))
    }

    /// `add_access` of `entitlement` (of a type the adapter declares for it).
    async fn add_access(
        &self,
        request: &ProvisionRequest,
        entitlement: Entitlement<'_>,
    ) -> Outcome {
        let _ = entitlement;
        Err(not_implemented(self, request))
    }

    /// `remove_access` of `entitlement` (of a type the adapter declares for it).
    async fn remove_access(
        &self,
        request: &ProvisionRequest,
        entitlement: Entitlement<'_>,
    ) -> Outcome {
        let _ = entitlement;
        Err(not_implemented(self, request))
    }
}

/// Applies `request` through `adapter`: an access operation without an entitlement is
/// refused (`Permanent`), an operation (on an entitlement type) the capabilities do not
/// declare is `Unsupported` with the adapter's reason, and anything else goes to the
/// adapter's method for the operation.
pub async fn provision<A: Operations>(adapter: &A, request: &ProvisionRequest) -> Outcome {
    let core = adapter.core();
    let operation = request.operation;
    let entitlement = request.entitlement.as_ref().map(|(kind, id)| Entitlement {
        kind,
        id,
        name: request.entitlement_name.as_deref(),
    });
    let kind = entitlement.map(|entitlement| entitlement.kind);
    if operation.is_access() && entitlement.is_none() {
        return Err(core.refused(adapter.why_unsupported(operation, None)));
    }
    // Account operations are declared without a type (a create may still carry one).
    let declared_for = if operation.is_access() { kind } else { None };
    if !core.capabilities().supports(operation, declared_for) {
        return Err(core.unsupported(operation, adapter.why_unsupported(operation, kind)));
    }
    match (operation, entitlement) {
        (Operation::CreateAccount, _) => adapter.create_account(request).await,
        (Operation::UpdateAccount, _) => adapter.update_account(request).await,
        (Operation::EnableAccount, _) => adapter.enable_account(request).await,
        (Operation::DisableAccount, _) => adapter.disable_account(request).await,
        (Operation::RemoveAccount, _) => adapter.remove_account(request).await,
        (Operation::AddAccess, Some(entitlement)) => adapter.add_access(request, entitlement).await,
        (Operation::RemoveAccess, Some(entitlement)) => {
            adapter.remove_access(request, entitlement).await
        }
        (Operation::AddAccess | Operation::RemoveAccess, None) => {
            Err(core.refused(adapter.why_unsupported(operation, None)))
        }
    }
}

/// The reason an adapter gives for what no target of its kind supports: an access operation
/// without an entitlement, an entitlement type it does not grant (`grantable` lists those it
/// does, `id` says what names one: `ID` or `NAME`), or any other operation.
pub fn refusal(
    product: &str,
    operation: Operation,
    entitlement_type: Option<&str>,
    grantable: &[&str],
    id: &str,
) -> String {
    match (operation.is_access(), entitlement_type) {
        (true, None) => {
            let forms: Vec<String> = grantable
                .iter()
                .map(|kind| format!("{kind}:{id}"))
                .collect();
            format!("{operation} needs an entitlement ({})", forms.join(" or "))
        }
        (true, Some(kind)) => format!(
            "{product} grants only {} entitlements, not `{kind}`",
            grantable.join(" and ")
        ),
        (false, _) => format!("{product} does not support {operation}"),
    }
}

/// The error of an operation the adapter declared but did not implement.
fn not_implemented<A: Operations>(adapter: &A, request: &ProvisionRequest) -> ConnectorError {
    let kind = request.entitlement.as_ref().map(|(kind, _)| kind.as_str());
    adapter.core().unsupported(
        request.operation,
        adapter.why_unsupported(request.operation, kind),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_missing_entitlement_the_grantable_types_or_the_operation() {
        let reason = |operation, kind| refusal("Acme", operation, kind, &["role", "group"], "ID");
        assert_eq!(
            reason(Operation::AddAccess, None),
            "add_access needs an entitlement (role:ID or group:ID)"
        );
        assert_eq!(
            reason(Operation::RemoveAccess, Some("badge")),
            "Acme grants only role and group entitlements, not `badge`"
        );
        assert_eq!(
            reason(Operation::EnableAccount, None),
            "Acme does not support enable_account"
        );
    }

    #[test]
    fn an_account_id_must_be_there_and_not_blank() {
        let mut request = crate::connector::kit::testing::request(
            Operation::UpdateAccount,
            Some("  "),
            serde_json::Value::Null,
        );
        assert_eq!(AccountId::of(&request), None);
        request.account_id = Some("42".into());
        assert_eq!(AccountId::of(&request).map(AccountId::as_str), Some("42"));
        request.account_id = None;
        assert_eq!(AccountId::of(&request), None);
    }
}
