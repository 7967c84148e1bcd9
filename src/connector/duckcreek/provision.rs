//! Changing Duck Creek: the request templates (XML fragments the adapter puts between the
//! login and the close of one batch), what the target supports, and one method per
//! operation. Success is judged by each answer's `status`; failure codes listed in
//! `already_done_codes` (built in: `AlreadyAssigned` on add, `NotAssigned` on remove,
//! `UserNotFound` on `remove_account`) count as already done.

use async_trait::async_trait;
use secrecy::ExposeSecret;

use super::batch::{Answer, RequestFailure};
use super::{DuckCreekConnector, CLOSE, ENTITY, LOGIN, PRIVILEGE, ROLE};
use crate::connector::kit::{refusal, Adapter, Entitlement, Operations, Outcome};
use crate::connector::password::generate_password;
use crate::connector::soap::{redact_secret, CallKind};
use crate::connector::template::{
    template_key, Escape, TemplateCatalog, TemplateContext, TemplateError, TemplateSet,
};
use crate::connector::{Capabilities, ProvisionOutcome, ProvisionRequest};
use crate::model::Operation;

/// The templates with a built-in request (`templates/`), by key: lock and unlock, and the
/// placeholder requests for roles and entities (override them with the requests your
/// deployment uses).
const BUILT_IN: [(&str, &str); 6] = [
    (
        "disable_account",
        include_str!("templates/disable_account.xml.jinja"),
    ),
    (
        "enable_account",
        include_str!("templates/enable_account.xml.jinja"),
    ),
    (
        "add_access_role",
        include_str!("templates/add_access_role.xml.jinja"),
    ),
    (
        "remove_access_role",
        include_str!("templates/remove_access_role.xml.jinja"),
    ),
    (
        "add_access_entity",
        include_str!("templates/add_access_entity.xml.jinja"),
    ),
    (
        "remove_access_entity",
        include_str!("templates/remove_access_entity.xml.jinja"),
    ),
];

/// The templates with no built-in request: the operation is supported only when the target
/// configures one.
const OPTIONAL: [&str; 3] = ["create_account", "update_account", "remove_account"];

/// The request templates: XML fragments holding the inner requests of a batch (the adapter
/// adds the login and the close), six built in, three only when configured.
pub const TEMPLATES: TemplateCatalog = TemplateCatalog {
    defaults: &BUILT_IN,
    optional: &OPTIONAL,
    escape: Escape::Xml,
};

/// The template key of `operation` on entitlement type `kind` (access operations), if the
/// adapter has one.
pub fn template_for(operation: Operation, kind: Option<&str>) -> Option<&'static str> {
    let is = |wanted: &str| kind.is_some_and(|kind| kind.eq_ignore_ascii_case(wanted));
    match operation {
        Operation::DisableAccount => Some("disable_account"),
        Operation::EnableAccount => Some("enable_account"),
        Operation::CreateAccount => Some("create_account"),
        Operation::UpdateAccount => Some("update_account"),
        Operation::RemoveAccount => Some("remove_account"),
        Operation::AddAccess if is(ROLE) => Some("add_access_role"),
        Operation::RemoveAccess if is(ROLE) => Some("remove_access_role"),
        Operation::AddAccess if is(ENTITY) => Some("add_access_entity"),
        Operation::RemoveAccess if is(ENTITY) => Some("remove_access_entity"),
        Operation::AddAccess | Operation::RemoveAccess => None,
    }
}

/// What a Duck Creek target supports: enable and disable, add and remove `Role` and `Entity`,
/// and create, update and remove accounts only where `templates` has one configured.
pub fn capabilities(templates: &TemplateSet) -> Capabilities {
    let mut account = vec![Operation::EnableAccount, Operation::DisableAccount];
    account.extend(
        [
            Operation::CreateAccount,
            Operation::UpdateAccount,
            Operation::RemoveAccount,
        ]
        .into_iter()
        .filter(|operation| templates.has(operation.as_str())),
    );
    let access = [
        (Operation::AddAccess, ROLE),
        (Operation::RemoveAccess, ROLE),
        (Operation::AddAccess, ENTITY),
        (Operation::RemoveAccess, ENTITY),
    ];
    Capabilities::new(&[ROLE, ENTITY, PRIVILEGE], account, access)
}

/// Why a Duck Creek target refuses `operation` on `entitlement_type` (see [`capabilities`]).
pub fn unsupported_reason(
    target: &str,
    operation: Operation,
    entitlement_type: Option<&str>,
) -> String {
    match (operation, entitlement_type) {
        (Operation::CreateAccount | Operation::UpdateAccount | Operation::RemoveAccount, _) => {
            format!(
                "Duck Creek has no known {operation} request; configure the request your \
                 deployment uses as {}",
                template_key(target, operation.as_str())
            )
        }
        (Operation::AddAccess | Operation::RemoveAccess, Some(kind))
            if kind.eq_ignore_ascii_case(PRIVILEGE) =>
        {
            "Duck Creek privileges are a catalogue: they attach to roles, not to users; grant \
             a role that carries the privilege"
                .to_string()
        }
        _ => refusal(
            DuckCreekConnector::NAME,
            operation,
            entitlement_type,
            &[ROLE, ENTITY],
            "NAME",
        ),
    }
}

/// The templates' problems beyond rendering: a template that holds the login or the close
/// (the adapter adds both, so credentials are never template bindings).
pub fn check_requests(set: &TemplateSet) -> Vec<TemplateError> {
    BUILT_IN
        .iter()
        .map(|(key, _)| *key)
        .chain(OPTIONAL)
        .filter(|key| set.has(key))
        .filter_map(|key| {
            let sample = set.sample(key);
            rendered_requests(set, key, &sample).err()
        })
        .collect()
}

/// The rendered fragment of template `key` and the names of its top-level requests; a
/// template that holds the login or the close is an error.
fn rendered_requests(
    set: &TemplateSet,
    key: &str,
    context: &TemplateContext,
) -> Result<(String, Vec<String>), TemplateError> {
    let (fragment, names) = set.render_xml(key, context)?;
    if let Some(bad) = names.iter().find(|name| *name == LOGIN || *name == CLOSE) {
        return Err(TemplateError {
            key: template_key(set.target(), key),
            message: format!(
                "must not contain <{bad}>: idsync adds the login and the close to every batch \
                 itself, so credentials are never template bindings"
            ),
        });
    }
    Ok((fragment, names))
}

#[async_trait]
impl Operations for DuckCreekConnector {
    /// The configured `create_account` request (there is no built-in one), with a generated
    /// initial password bound as `password` and redacted from every error.
    async fn create_account(&self, request: &ProvisionRequest) -> Outcome {
        self.run(request, None).await
    }

    /// The configured `update_account` request (there is no built-in one).
    async fn update_account(&self, request: &ProvisionRequest) -> Outcome {
        self.run(request, None).await
    }

    /// `Security.unlockUserAccountRq` (built in).
    async fn enable_account(&self, request: &ProvisionRequest) -> Outcome {
        self.run(request, None).await
    }

    /// `Security.lockUserAccountRq` (built in).
    async fn disable_account(&self, request: &ProvisionRequest) -> Outcome {
        self.run(request, None).await
    }

    /// The configured `remove_account` request (there is no built-in one).
    async fn remove_account(&self, request: &ProvisionRequest) -> Outcome {
        self.run(request, None).await
    }

    /// The `add_access_role` or `add_access_entity` request.
    async fn add_access(
        &self,
        request: &ProvisionRequest,
        entitlement: Entitlement<'_>,
    ) -> Outcome {
        self.run(request, Some(entitlement)).await
    }

    /// The `remove_access_role` or `remove_access_entity` request.
    async fn remove_access(
        &self,
        request: &ProvisionRequest,
        entitlement: Entitlement<'_>,
    ) -> Outcome {
        self.run(request, Some(entitlement)).await
    }
}

impl DuckCreekConnector {
    /// Runs the template of `request`'s operation (on `entitlement`'s type, for access
    /// operations) with the operation's "already done" codes.
    async fn run(
        &self,
        request: &ProvisionRequest,
        entitlement: Option<Entitlement<'_>>,
    ) -> Outcome {
        let operation = request.operation;
        let kind = entitlement.map(|entitlement| entitlement.kind);
        let key = template_for(operation, kind).filter(|key| self.core.templates().has(key));
        let Some(key) = key else {
            return Err(self.core.unsupported(
                operation,
                unsupported_reason(self.core.target(), operation, kind),
            ));
        };
        let already = self
            .already_done
            .get(&operation)
            .map_or(&[][..], Vec::as_slice);
        self.run_template(request, key, already).await
    }

    /// Runs the template of `request`'s operation: one batch with the rendered requests,
    /// success judged by each answer's status; failures whose codes are all in `already`
    /// count as done.
    async fn run_template(
        &self,
        request: &ProvisionRequest,
        key: &str,
        already: &[String],
    ) -> Outcome {
        let password = (request.operation == Operation::CreateAccount).then(generate_password);
        let mut context = TemplateContext::from_request(self.core.target(), request);
        if let Some(password) = &password {
            context = context.with_password(password);
        }
        let rendered = rendered_requests(self.core.templates(), key, &context);
        drop(context);
        let (fragment, names) = rendered.map_err(|err| self.core.template_failed(err))?;
        let generated = password
            .as_ref()
            .map(|p| p.expose_secret().to_string())
            .unwrap_or_default();
        let result = self
            .send_requests(request, &fragment, &names, already)
            .await;
        drop(fragment);
        result.map_err(|err| err.map_text(|text| redact_secret(&text, &generated)))
    }

    /// Sends `fragment` (requests `names`) in one batch and judges the answers.
    async fn send_requests(
        &self,
        request: &ProvisionRequest,
        fragment: &str,
        names: &[String],
        already: &[String],
    ) -> Outcome {
        let what = names.join(", ");
        let mut batch = self.open_batch(&what, fragment, CallKind::Write).await?;
        let mut failures = Vec::new();
        let mut done = 0usize;
        let mut created_id = None;
        for name in names {
            match batch.next_answer(name).await? {
                Answer::Success(element) => {
                    done += 1;
                    if request.operation == Operation::CreateAccount && created_id.is_none() {
                        created_id = element
                            .attr("userID")
                            .or_else(|| element.attr("id"))
                            .map(str::to_string);
                    }
                    batch.leave(&element).await?;
                }
                Answer::Failure(failure) => failures.push(failure),
            }
        }
        batch.finish().await?;
        let unexplained: Vec<&RequestFailure> = failures
            .iter()
            .filter(|failure| !failure.only(already))
            .collect();
        if !unexplained.is_empty() {
            let text: Vec<String> = unexplained.iter().map(|f| f.describe()).collect();
            return Err(self.core.refused(self.soap.http().redact(&text.join("; "))));
        }
        let account_id = match request.operation {
            Operation::CreateAccount => created_id,
            _ => None,
        };
        if done == 0 && !failures.is_empty() {
            Ok(ProvisionOutcome::AlreadyDone { account_id })
        } else {
            Ok(ProvisionOutcome::Done { account_id })
        }
    }
}
