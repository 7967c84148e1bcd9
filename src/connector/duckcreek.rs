//! Duck Creek adapter: Duck Creek's XML "server request" protocol in a SOAP envelope, import
//! and provisioning.
//!
//! * Every call is one self-contained batch posted to the SOAP endpoint (`base_url`):
//!   `<server><requests>` holding `Session.loginRq userName password`, the work, and
//!   `Session.closeRq`. The answer holds one `…Rs` per request, in order, each with
//!   `status="Success"` or `status="Failure"` and `Errors/Error/@code @text`. No session
//!   survives between calls. The login is added by the adapter, never by a template, and the
//!   password (raw and XML-escaped) is redacted from every message ([`BodySecret`]).
//! * Accounts: `OnlineData.listEntityUsersRq entityID` (`entity_id`, default `1`) →
//!   `Users/User` (`@id`, `@name` = login, `@email`, `@fullName`, `@status`: `Locked` is
//!   `inactive`). The list is not paged: it is read as a stream and handed on `page_size`
//!   users at a time, so memory holds one batch, never the document.
//! * Entitlements: one batch with `Security.listRolesRq` (type `Role`),
//!   `OnlineData.listEntitiesRq` (`Entities/*`, type `Entity`) and `Security.listPrivilegesRq`
//!   (type `Privilege`, a catalogue only: privileges attach to roles, not users).
//! * Grants: roles and entities first (to turn the names that user records carry into ids),
//!   then the user list again: `Roles/Role/@name` → `Role` grants,
//!   `UserEntityMemberships/UserEntityMembership/@entityName` → `Entity` grants. A name the
//!   catalogue lacks becomes an entitlement with the name as its id (the store marks it
//!   `discovered_from = "grant"`).
//! * Provisioning, through XML templates ([`TEMPLATES`], each overridable per target):
//!   `disable_account` (`Security.lockUserAccountRq`), `enable_account`
//!   (`Security.unlockUserAccountRq`), and `add_access` / `remove_access` on `Role` and
//!   `Entity` (the sheet's placeholder requests). `create_account`, `update_account` and
//!   `remove_account` have no known request: they are supported only when the target
//!   configures a template for them ([`OPTIONAL_TEMPLATES`]). Success is judged by each
//!   answer's `status`; `AlreadyAssigned` on add, `NotAssigned` on remove and `UserNotFound`
//!   on `remove_account` count as already done, unless the target's `already_done_codes`
//!   says otherwise.
//! * Faults: a `Client` fault that names the login or the credentials is an auth error,
//!   other `Client` faults are permanent, `Server` faults transient (see [`soap`]).
//!
//! Mapping from elements to records is done by pure functions (`map_user`, `map_role`,
//! `map_entity`, `map_privilege`, `map_user_grants`) tested on recorded fixtures.
//!
//! [`soap`]: super::soap

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::http::{BodyReader, ClientDefaults, HttpClient};
use super::password::generate_password;
use super::soap::{
    classify_fault_body, BodySecret, CallKind, Fault, SoapClient, SoapResponse, SoapSettings,
};
use super::template::{
    template_key, Escape, TemplateCatalog, TemplateContext, TemplateError, TemplateSet,
};
use super::xml::{escape, forbidden_char, is_local_name, Element, XmlReader, DEFAULT_MAX_DEPTH};
use super::{
    Capabilities, Capability, Connector, ConnectorError, PageStream, ProvisionOutcome,
    ProvisionRequest,
};
use crate::config::{RequestWrapper, TargetConfig};
use crate::model::{
    AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord, Operation,
};

/// Records handed to the store at a time when the target's `page_size` is unset.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// The entity whose users are imported when `entity_id` is unset.
pub const DEFAULT_ENTITY_ID: &str = "1";

/// Entitlement type of a role (users hold roles).
pub const ROLE: &str = "Role";
/// Entitlement type of an entity (users hold memberships).
pub const ENTITY: &str = "Entity";
/// Entitlement type of a privilege (a catalogue: privileges attach to roles).
pub const PRIVILEGE: &str = "Privilege";

/// The login request that opens every batch.
pub const LOGIN: &str = "Session.loginRq";
/// The request that closes every batch.
pub const CLOSE: &str = "Session.closeRq";
/// Lists the users of an entity.
pub const LIST_USERS: &str = "OnlineData.listEntityUsersRq";
/// Lists the roles.
pub const LIST_ROLES: &str = "Security.listRolesRq";
/// Lists the entities.
pub const LIST_ENTITIES: &str = "OnlineData.listEntitiesRq";
/// Lists the privileges.
pub const LIST_PRIVILEGES: &str = "Security.listPrivilegesRq";

/// The error code of an add whose grant is already in place (counts as done).
pub const ALREADY_ASSIGNED: &str = "AlreadyAssigned";
/// The error code of a remove whose grant is not there (counts as done).
pub const NOT_ASSIGNED: &str = "NotAssigned";
/// The error code of a request naming an unknown user (`remove_account`: counts as done).
pub const USER_NOT_FOUND: &str = "UserNotFound";

/// The operations whose failure codes may mean the change is already in place
/// (`already_done_codes` keys). A create is not among them: a duplicate create is judged by
/// looking the account up.
pub const ALREADY_DONE_OPERATIONS: &[&str] = &[
    "add_access",
    "remove_access",
    "disable_account",
    "enable_account",
    "remove_account",
];

/// Whether `key` may be an `already_done_codes` key (an operation, spelled exactly).
pub fn is_already_done_key(key: &str) -> bool {
    ALREADY_DONE_OPERATIONS.contains(&key)
}

/// The "already done" codes of every operation that has some; fails on an
/// `already_done_codes` key that is not such an operation.
fn already_done_table(
    target: &str,
    config: &TargetConfig,
) -> Result<HashMap<Operation, Vec<String>>, ConnectorError> {
    if let Some(key) = config
        .already_done_codes
        .keys()
        .find(|key| !is_already_done_key(key))
    {
        return Err(ConnectorError::config(
            target,
            format!(
                "already_done_codes.{key} is not one of {}",
                ALREADY_DONE_OPERATIONS.join(", ")
            ),
        ));
    }
    Ok(Operation::ALL
        .iter()
        .map(|operation| (*operation, already_done_codes(config, *operation)))
        .filter(|(_, codes)| !codes.is_empty())
        .collect())
}

/// The codes that count as "already done" for `operation`: the target's `already_done_codes`
/// entry, else the built-in list.
fn already_done_codes(config: &TargetConfig, operation: Operation) -> Vec<String> {
    if let Some(codes) = config.already_done_codes.get(operation.as_str()) {
        return codes.clone();
    }
    let built_in: &[&str] = match operation {
        Operation::AddAccess => &[ALREADY_ASSIGNED],
        Operation::RemoveAccess => &[NOT_ASSIGNED],
        Operation::RemoveAccount => &[USER_NOT_FOUND],
        _ => &[],
    };
    built_in.iter().map(|code| (*code).to_string()).collect()
}

/// The built-in `disable_account` request.
pub const DISABLE_ACCOUNT_TEMPLATE: &str =
    r#"<Security.lockUserAccountRq userID="${ account.accountID }" userName="${ account.name }"/>"#;

/// The built-in `enable_account` request.
pub const ENABLE_ACCOUNT_TEMPLATE: &str =
    r#"<Security.unlockUserAccountRq userName="${ account.name }"/>"#;

/// The built-in `add_access` request for a `Role` (a placeholder name: override it with the
/// request your deployment uses).
pub const ADD_ROLE_TEMPLATE: &str = r#"<Security.addUserRoleRq userName="${ account.name }" roleName="${ entitlementValue.entitlement_value }"/>"#;

/// The built-in `remove_access` request for a `Role` (a placeholder name).
pub const REMOVE_ROLE_TEMPLATE: &str = r#"<Security.removeUserRoleRq userName="${ account.name }" roleName="${ entitlementValue.entitlement_value }"/>"#;

/// The built-in `add_access` request for an `Entity` (a placeholder name).
pub const ADD_ENTITY_TEMPLATE: &str = r#"<OnlineData.addEntityMembershipRq userName="${ account.name }" entityName="${ entitlementValue.entitlement_value }"/>"#;

/// The built-in `remove_access` request for an `Entity` (a placeholder name).
pub const REMOVE_ENTITY_TEMPLATE: &str = r#"<OnlineData.removeEntityMembershipRq userName="${ account.name }" entityName="${ entitlementValue.entitlement_value }"/>"#;

/// The templates with a built-in request, by key.
pub const TEMPLATES: [(&str, &str); 6] = [
    ("disable_account", DISABLE_ACCOUNT_TEMPLATE),
    ("enable_account", ENABLE_ACCOUNT_TEMPLATE),
    ("add_access_role", ADD_ROLE_TEMPLATE),
    ("remove_access_role", REMOVE_ROLE_TEMPLATE),
    ("add_access_entity", ADD_ENTITY_TEMPLATE),
    ("remove_access_entity", REMOVE_ENTITY_TEMPLATE),
];

/// The templates with no built-in request: the operation is supported only when the target
/// configures one.
pub const OPTIONAL_TEMPLATES: [&str; 3] = ["create_account", "update_account", "remove_account"];

/// The Duck Creek template catalogue: XML fragments holding the inner requests of a batch.
pub const TEMPLATE_CATALOG: TemplateCatalog = TemplateCatalog {
    defaults: &TEMPLATES,
    optional: &OPTIONAL_TEMPLATES,
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
    let account = |operation| Capability {
        operation,
        entitlement_type: None,
    };
    let access = |operation, kind: &str| Capability {
        operation,
        entitlement_type: Some(kind.to_string()),
    };
    let mut operations = BTreeSet::from([
        account(Operation::EnableAccount),
        account(Operation::DisableAccount),
        access(Operation::AddAccess, ROLE),
        access(Operation::RemoveAccess, ROLE),
        access(Operation::AddAccess, ENTITY),
        access(Operation::RemoveAccess, ENTITY),
    ]);
    for operation in [
        Operation::CreateAccount,
        Operation::UpdateAccount,
        Operation::RemoveAccount,
    ] {
        if templates.has(operation.as_str()) {
            operations.insert(account(operation));
        }
    }
    Capabilities {
        entitlement_types: vec![ROLE.to_string(), ENTITY.to_string(), PRIVILEGE.to_string()],
        operations,
    }
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
        (Operation::AddAccess | Operation::RemoveAccess, Some(kind)) => {
            format!("Duck Creek grants types {ROLE} and {ENTITY} only, not `{kind}`")
        }
        (Operation::AddAccess | Operation::RemoveAccess, None) => {
            format!("{operation} needs an entitlement ({ROLE}:NAME or {ENTITY}:NAME)")
        }
        _ => format!("Duck Creek does not support {operation}"),
    }
}

/// Whether a `Client` fault means the login was refused: it names the login, the password,
/// the credentials or authentication.
pub fn is_login_fault(fault: &Fault) -> bool {
    let text = format!(
        "{} {} {} {}",
        fault.code,
        fault.subcode.as_deref().unwrap_or(""),
        fault.reason,
        fault.detail.as_deref().unwrap_or("")
    )
    .to_ascii_lowercase();
    [
        "login",
        "logon",
        "password",
        "credential",
        "authenticat",
        "unauthori",
    ]
    .iter()
    .any(|word| text.contains(word))
}

/// What the Duck Creek adapter hands the shared HTTP client: no pacing (the sheet names no
/// limit) and SOAP faults classified by their code.
pub fn client_defaults() -> ClientDefaults {
    ClientDefaults {
        rate_limits: Vec::new(),
        error_message: |_| None,
        classify_error: Some(classify_error),
    }
}

fn classify_error(target: &str, status: StatusCode, body: &[u8]) -> Option<ConnectorError> {
    classify_fault_body(target, status, body, is_login_fault)
}

/// Compiles the templates of target `name` (its `templates` over the built-in ones), renders
/// each against the sample context, and checks that none logs in or closes the session
/// itself (the adapter adds both): every problem, keyed `targets.NAME.templates.KEY`.
pub fn check_templates(name: &str, target: &TargetConfig) -> Vec<TemplateError> {
    match TemplateSet::from_catalog(name, &TEMPLATE_CATALOG, &target.templates) {
        Ok(set) => check_set(&set),
        Err(errors) => errors,
    }
}

/// The problems of a compiled set: templates that do not render against the sample context
/// and, once all do, templates that hold the login or the close.
fn check_set(set: &TemplateSet) -> Vec<TemplateError> {
    let mut errors = set.check();
    if !errors.is_empty() {
        return errors;
    }
    for key in TEMPLATES
        .iter()
        .map(|(key, _)| *key)
        .chain(OPTIONAL_TEMPLATES)
        .filter(|key| set.has(key))
    {
        let sample = TemplateContext::sample(set.target(), key);
        if let Err(err) = rendered_requests(set, key, &sample) {
            errors.push(err);
        }
    }
    errors
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

/// The opening and closing tags of `request_wrapper` (a prefixed element, so the `<server>`
/// document inside stays in no namespace); two empty strings when there is none.
fn wrapper_tags(
    target: &str,
    wrapper: Option<&RequestWrapper>,
) -> Result<(String, String), ConnectorError> {
    let Some(wrapper) = wrapper else {
        return Ok((String::new(), String::new()));
    };
    if !is_local_name(&wrapper.element) || forbidden_char(&wrapper.namespace).is_some() {
        return Err(ConnectorError::config(
            target,
            "request_wrapper needs an element name without a prefix and a namespace without \
             control characters",
        ));
    }
    let element = &wrapper.element;
    Ok(if wrapper.namespace.is_empty() {
        (format!("<{element}>"), format!("</{element}>"))
    } else {
        (
            format!("<w:{element} xmlns:w=\"{}\">", escape(&wrapper.namespace)),
            format!("</w:{element}>"),
        )
    })
}

/// The Duck Creek connector of one target.
pub struct DuckCreekConnector {
    target: String,
    soap: SoapClient,
    username: String,
    password: SecretString,
    entity_id: String,
    /// The opening and closing tags `<server>` is wrapped in (both empty when unwrapped).
    wrapper: (String, String),
    /// Per operation, the failure codes that mean the change is already in place.
    already_done: HashMap<Operation, Vec<String>>,
    page_size: usize,
    capabilities: Capabilities,
    templates: TemplateSet,
}

impl fmt::Debug for DuckCreekConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuckCreekConnector")
            .field("target", &self.target)
            .field("soap", &self.soap)
            .field("username", &self.username)
            .field("entity_id", &self.entity_id)
            .field("wrapper", &self.wrapper.0)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl DuckCreekConnector {
    /// Builds the connector of target `name`: resolves `password` now, compiles the
    /// templates and sets up the SOAP client. No request is made until the first call. Fails
    /// (class `Permanent`) when `username` or `password` is missing or unusable, a template
    /// is broken, or a client cannot be built.
    pub fn new(name: &str, config: &TargetConfig) -> Result<Self, ConnectorError> {
        let username = config
            .username
            .clone()
            .filter(|user| !user.trim().is_empty())
            .ok_or_else(|| {
                ConnectorError::config(name, "username is required for kind = \"duckcreek\"")
            })?;
        let spec = config.password.as_ref().ok_or_else(|| {
            ConnectorError::config(name, "password is required for kind = \"duckcreek\"")
        })?;
        let password = spec
            .resolve()
            .map_err(|err| ConnectorError::config(name, format!("password: {err}")))?;
        if forbidden_char(password.expose_secret()).is_some() || forbidden_char(&username).is_some()
        {
            return Err(ConnectorError::config(
                name,
                "username or password holds a control character, which XML cannot carry",
            ));
        }
        let http = HttpClient::new(
            name,
            config,
            client_defaults(),
            Arc::new(BodySecret::new(password.clone())),
        )?;
        let settings = SoapSettings {
            version: config.soap_version.unwrap_or_default(),
            action: config.soap_action.clone().unwrap_or_default(),
            content_type: config.content_type.clone(),
            max_depth: DEFAULT_MAX_DEPTH,
        };
        let soap = SoapClient::new(http, &settings, is_login_fault)?;
        let templates = TemplateSet::from_catalog(name, &TEMPLATE_CATALOG, &config.templates)
            .and_then(|set| {
                let errors = check_set(&set);
                if errors.is_empty() {
                    Ok(set)
                } else {
                    Err(errors)
                }
            })
            .map_err(|errors| {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                ConnectorError::config(name, text.join("; "))
            })?;
        let page_size = config.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
        Ok(Self {
            target: name.to_string(),
            soap,
            username,
            password,
            entity_id: config
                .entity_id
                .clone()
                .unwrap_or_else(|| DEFAULT_ENTITY_ID.to_string()),
            wrapper: wrapper_tags(name, config.request_wrapper.as_ref())?,
            already_done: already_done_table(name, config)?,
            page_size: usize::try_from(page_size).unwrap_or(1000),
            capabilities: capabilities(&templates),
            templates,
        })
    }

    /// The `<server>` document of one batch — login, `requests`, close — in the configured
    /// wrapper, if any.
    fn batch_body(&self, requests: &str) -> String {
        let (open, close) = &self.wrapper;
        format!(
            "{open}<server><requests><{LOGIN} userName=\"{}\" password=\"{}\"/>{requests}\
             <{CLOSE}/></requests></server>{close}",
            escape(&self.username),
            escape(self.password.expose_secret()),
        )
    }

    /// Posts one batch holding `requests` and reads the answer up to the login's (which must
    /// succeed).
    async fn open_batch(
        &self,
        what: &str,
        requests: &str,
        kind: CallKind,
    ) -> Result<Batch<'_>, ConnectorError> {
        let response = self
            .soap
            .call(what, &self.batch_body(requests), kind)
            .await?;
        let mut batch = Batch {
            connector: self,
            response,
        };
        batch.enter_responses().await?;
        match batch.next_answer(LOGIN).await? {
            Answer::Success(element) => batch.leave(&element).await?,
            Answer::Failure(failure) => {
                return Err(ConnectorError::Auth {
                    target: self.target.clone(),
                    message: self.soap.http().redact(&format!(
                        "Duck Creek refused the login of user {}: {}",
                        self.username,
                        failure.describe()
                    )),
                })
            }
        }
        Ok(batch)
    }

    /// A reader of the lists `specs` asks for, in one batch.
    async fn open_lists(
        &self,
        what: &'static str,
        specs: Vec<ListSpec>,
    ) -> Result<ListReader<'_>, ConnectorError> {
        let requests: String = specs.iter().map(|spec| spec.xml.as_str()).collect();
        let batch = self.open_batch(what, &requests, CallKind::Read).await?;
        Ok(ListReader {
            batch,
            specs,
            index: 0,
            inside: false,
            finished: false,
        })
    }

    /// The users list of `entity_id`.
    fn users_spec(&self) -> ListSpec {
        ListSpec {
            request: LIST_USERS,
            xml: format!("<{LIST_USERS} entityID=\"{}\"/>", escape(&self.entity_id)),
            container: "Users",
        }
    }

    /// Streams pages of the records `map` makes of the items of the lists `specs`, after
    /// `context` (read first) is ready. The stream ends at the first error, and only after
    /// the whole answer has been read and found complete.
    fn item_pages<'a, C, T>(
        &'a self,
        what: &'static str,
        specs: Vec<ListSpec>,
        context: BoxFuture<'a, Result<C, ConnectorError>>,
        map: ItemMapper<C, T>,
    ) -> PageStream<'a, T>
    where
        C: Send + Sync + 'a,
        T: Send + 'a,
    {
        let start = PagesState::Start { context, specs };
        futures::stream::try_unfold(start, move |state| async move {
            let (mut reader, context) = match state {
                PagesState::Done => return Ok(None),
                PagesState::Start { context, specs } => {
                    let context = context.await?;
                    (self.open_lists(what, specs).await?, context)
                }
                PagesState::Reading { reader, context } => (*reader, context),
            };
            let mut page = Vec::new();
            while page.len() < self.page_size {
                match reader.next_item().await? {
                    Some((list, item)) => page.extend(map(&self.target, &context, list, &item)?),
                    None => {
                        return Ok((!page.is_empty()).then_some((page, PagesState::Done)));
                    }
                }
            }
            Ok(Some((
                page,
                PagesState::Reading {
                    reader: Box::new(reader),
                    context,
                },
            )))
        })
        .boxed()
    }

    /// The role and entity catalogue, to turn the names in user records into ids.
    async fn catalogue(&self) -> Result<Catalogue, ConnectorError> {
        let mut reader = self
            .open_lists("roles and entities", vec![roles_spec(), entities_spec()])
            .await?;
        let mut catalogue = Catalogue::default();
        while let Some((list, item)) = reader.next_item().await? {
            let (record, index) = match list {
                0 => (map_role(&self.target, &item.element)?, &mut catalogue.roles),
                _ => (
                    map_entity(&self.target, &item.element)?,
                    &mut catalogue.entities,
                ),
            };
            index.insert(&self.target, &record)?;
        }
        Ok(catalogue)
    }

    /// Runs the template of `request`'s operation: one batch with the rendered requests,
    /// success judged by each answer's status; failures whose codes are all in `already`
    /// count as done.
    async fn run_template(
        &self,
        request: &ProvisionRequest,
        key: &str,
        already: &[String],
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let password = (request.operation == Operation::CreateAccount).then(generate_password);
        let mut context = TemplateContext::from_request(&self.target, request);
        if let Some(password) = &password {
            context = context.with_password(password);
        }
        let rendered = rendered_requests(&self.templates, key, &context);
        drop(context);
        let (fragment, names) = rendered.map_err(|err| self.refused(err.to_string()))?;
        let generated = password
            .as_ref()
            .map(|p| p.expose_secret().to_string())
            .unwrap_or_default();
        let result = self
            .send_requests(request, &fragment, &names, already)
            .await;
        drop(fragment);
        result.map_err(|err| err.map_text(|text| super::soap::redact_secret(&text, &generated)))
    }

    /// Sends `fragment` (requests `names`) in one batch and judges the answers.
    async fn send_requests(
        &self,
        request: &ProvisionRequest,
        fragment: &str,
        names: &[String],
        already: &[String],
    ) -> Result<ProvisionOutcome, ConnectorError> {
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
            return Err(ConnectorError::Permanent {
                target: self.target.clone(),
                status: None,
                message: self.soap.http().redact(&text.join("; ")),
            });
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

    /// A `Permanent` error about the task itself.
    fn refused(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Permanent {
            target: self.target.clone(),
            status: None,
            message: message.into(),
        }
    }
}

/// Turns an item of list N into records, with a context read before the lists (the
/// catalogue, for grants).
type ItemMapper<C, T> = fn(&str, &C, usize, &Item) -> Result<Vec<T>, ConnectorError>;

/// One list in a batch: the request, its XML, and the element its items sit in.
struct ListSpec {
    request: &'static str,
    xml: String,
    container: &'static str,
}

fn roles_spec() -> ListSpec {
    ListSpec {
        request: LIST_ROLES,
        xml: format!("<{LIST_ROLES} includePrivileges=\"false\"/>"),
        container: "Roles",
    }
}

fn entities_spec() -> ListSpec {
    ListSpec {
        request: LIST_ENTITIES,
        xml: format!("<{LIST_ENTITIES}/>"),
        container: "Entities",
    }
}

fn privileges_spec() -> ListSpec {
    ListSpec {
        request: LIST_PRIVILEGES,
        xml: format!("<{LIST_PRIVILEGES}/>"),
        container: "Privileges",
    }
}

/// Where a page stream is.
enum PagesState<'a, C> {
    Start {
        context: BoxFuture<'a, Result<C, ConnectorError>>,
        specs: Vec<ListSpec>,
    },
    Reading {
        reader: Box<ListReader<'a>>,
        context: C,
    },
    Done,
}

/// An item of a list: its element and, for users, the role and entity names it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Item {
    element: Element,
    roles: Vec<String>,
    entities: Vec<String>,
}

/// The answer to one request of a batch.
enum Answer {
    /// `status="Success"`: the `…Rs` element, entered unless empty.
    Success(Element),
    /// `status="Failure"`, read whole.
    Failure(RequestFailure),
}

/// A request answered `status="Failure"`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestFailure {
    request: String,
    errors: Vec<(String, String)>,
}

impl RequestFailure {
    /// Whether every error code is one of `codes` (and there is at least one).
    fn only(&self, codes: &[impl AsRef<str>]) -> bool {
        !self.errors.is_empty()
            && self
                .errors
                .iter()
                .all(|(code, _)| codes.iter().any(|c| c.as_ref().eq_ignore_ascii_case(code)))
    }

    /// `Security.addUserRoleRq failed: code: text; code: text`.
    fn describe(&self) -> String {
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(code, text)| match (code.is_empty(), text.is_empty()) {
                (false, false) => format!("{code}: {text}"),
                (true, false) => text.clone(),
                (false, true) => code.clone(),
                (true, true) => "no detail".to_string(),
            })
            .collect();
        if errors.is_empty() {
            format!("{} failed (no Errors given)", self.request)
        } else {
            format!("{} failed: {}", self.request, errors.join("; "))
        }
    }
}

/// One batch's answer being read.
struct Batch<'a> {
    connector: &'a DuckCreekConnector,
    response: SoapResponse,
}

impl Batch<'_> {
    fn reader(&mut self) -> &mut XmlReader<BodyReader> {
        self.response.reader()
    }

    fn fail(&self, err: super::xml::XmlError) -> ConnectorError {
        self.connector.soap.read_error(self.response.what(), err)
    }

    fn malformed(&self, message: String) -> ConnectorError {
        ConnectorError::malformed(
            &self.connector.target,
            format!("the answer to {}: {message}", self.response.what()),
        )
    }

    /// Walks from the first element in `Body` down to `responses` (through
    /// `processRequestsAsDOMResponse`, `result` and `server`, whichever are there).
    async fn enter_responses(&mut self) -> Result<(), ConnectorError> {
        let Some(mut current) = self.response.payload() else {
            return Err(self.malformed("the SOAP Body is empty".to_string()));
        };
        for _ in 0..6 {
            if current.local == "responses" && !current.empty {
                return Ok(());
            }
            if current.empty {
                break;
            }
            match self.reader().next_child().await {
                Ok(Some(child)) => current = child,
                Ok(None) => break,
                Err(err) => return Err(self.fail(err)),
            }
        }
        Err(self.malformed(
            "it holds no <responses> element (expected \
             processRequestsAsDOMResponse/result/server/responses)"
                .to_string(),
        ))
    }

    /// Reads the answer to `request` (`X.yRq` is answered by `X.yRs`).
    async fn next_answer(&mut self, request: &str) -> Result<Answer, ConnectorError> {
        let expected = answer_name(request);
        let element = match self.reader().next_child().await {
            Ok(Some(element)) => element,
            Ok(None) => {
                return Err(self.malformed(format!("it has no <{expected}> (answers ended)")))
            }
            Err(err) => return Err(self.fail(err)),
        };
        if element.local != expected {
            return Err(self.malformed(format!("expected <{expected}>, found <{}>", element.local)));
        }
        match element.attr_ignore_case("status") {
            Some(status) if status.eq_ignore_ascii_case("Success") => Ok(Answer::Success(element)),
            Some(status) if status.eq_ignore_ascii_case("Failure") => {
                let errors = self.read_errors(&element).await?;
                Ok(Answer::Failure(RequestFailure {
                    request: request.to_string(),
                    errors,
                }))
            }
            Some(other) => Err(self.malformed(format!(
                "<{expected}> has status=\"{other}\" (expected Success or Failure)"
            ))),
            None => Err(self.malformed(format!("<{expected}> has no status"))),
        }
    }

    /// The `(code, text)` of each `Errors/Error` of a failed answer, which is read whole.
    async fn read_errors(
        &mut self,
        answer: &Element,
    ) -> Result<Vec<(String, String)>, ConnectorError> {
        let mut errors = Vec::new();
        if answer.empty {
            return Ok(errors);
        }
        while let Some(child) = self.reader().next_child().await.map_err(|e| self.fail(e))? {
            if child.local != "Errors" || child.empty {
                self.leave(&child).await?;
                continue;
            }
            while let Some(error) = self.reader().next_child().await.map_err(|e| self.fail(e))? {
                let code = error
                    .attr_ignore_case("code")
                    .unwrap_or_default()
                    .to_string();
                let mut text = error
                    .attr_ignore_case("text")
                    .unwrap_or_default()
                    .to_string();
                let content = self.reader().text(&error).await.map_err(|e| self.fail(e))?;
                if text.is_empty() {
                    text = content.trim().to_string();
                }
                errors.push((code, text));
            }
        }
        Ok(errors)
    }

    /// Skips the rest of `element`.
    async fn leave(&mut self, element: &Element) -> Result<(), ConnectorError> {
        let result = self.reader().skip(element).await;
        result.map_err(|err| self.fail(err))
    }

    /// Reads the rest of the answer (remaining answers, the close's among them, are not
    /// judged) and checks the document is complete.
    async fn finish(&mut self) -> Result<(), ConnectorError> {
        loop {
            let next = self.reader().next_child().await;
            match next {
                Ok(Some(element)) => self.leave(&element).await?,
                Ok(None) => break,
                Err(err) => return Err(self.fail(err)),
            }
        }
        let connector = self.connector;
        self.response.finish(&connector.soap).await
    }
}

/// `X.yRs` for `X.yRq`.
fn answer_name(request: &str) -> String {
    match request.strip_suffix("Rq") {
        Some(stem) => format!("{stem}Rs"),
        None => format!("{request}Rs"),
    }
}

/// Reads the items of several lists of one batch in order.
struct ListReader<'a> {
    batch: Batch<'a>,
    specs: Vec<ListSpec>,
    /// The list being read (or next to open).
    index: usize,
    /// Whether the reader stands inside the current list's container.
    inside: bool,
    finished: bool,
}

impl ListReader<'_> {
    /// The next item and the index of its list; `None` once every list has been read and
    /// the answer found complete.
    async fn next_item(&mut self) -> Result<Option<(usize, Item)>, ConnectorError> {
        loop {
            if self.inside {
                let next = self.batch.reader().next_child().await;
                match next.map_err(|err| self.batch.fail(err))? {
                    Some(element) => return Ok(Some((self.index, self.read_item(element).await?))),
                    None => {
                        // The container ended; leave the rest of its answer.
                        self.leave_answer().await?;
                        self.inside = false;
                        self.index += 1;
                        continue;
                    }
                }
            }
            let Some(spec) = self.specs.get(self.index) else {
                if !self.finished {
                    self.batch.finish().await?;
                    self.finished = true;
                }
                return Ok(None);
            };
            let (request, container) = (spec.request, spec.container);
            match self.batch.next_answer(request).await? {
                Answer::Failure(failure) => {
                    let hint = if request == LIST_USERS && failure.only(&["EntityNotFound"]) {
                        " (check entity_id)"
                    } else {
                        ""
                    };
                    return Err(ConnectorError::Permanent {
                        target: self.batch.connector.target.clone(),
                        status: None,
                        message: format!("{}{hint}", failure.describe()),
                    });
                }
                Answer::Success(answer) => {
                    if answer.empty {
                        return Err(self.batch.malformed(format!(
                            "<{}> holds no <{container}>",
                            answer_name(request)
                        )));
                    }
                    self.enter_container(request, container).await?;
                }
            }
        }
    }

    /// Finds `container` among the answer's children and enters it (an empty one is a list
    /// of nothing: the answer is left at once).
    async fn enter_container(
        &mut self,
        request: &str,
        container: &str,
    ) -> Result<(), ConnectorError> {
        loop {
            let next = self.batch.reader().next_child().await;
            match next.map_err(|err| self.batch.fail(err))? {
                Some(element) if element.local == container => {
                    if element.empty {
                        self.leave_answer().await?;
                        self.index += 1;
                    } else {
                        self.inside = true;
                    }
                    return Ok(());
                }
                Some(other) => self.batch.leave(&other).await?,
                None => {
                    return Err(self
                        .batch
                        .malformed(format!("<{}> holds no <{container}>", answer_name(request))))
                }
            }
        }
    }

    /// Skips what remains of the current answer after its container.
    async fn leave_answer(&mut self) -> Result<(), ConnectorError> {
        loop {
            let next = self.batch.reader().next_child().await;
            match next.map_err(|err| self.batch.fail(err))? {
                Some(element) => self.batch.leave(&element).await?,
                None => return Ok(()),
            }
        }
    }

    /// An item with the role and entity names of its `Roles` and `UserEntityMemberships`.
    async fn read_item(&mut self, element: Element) -> Result<Item, ConnectorError> {
        let mut item = Item {
            element,
            ..Item::default()
        };
        if item.element.empty {
            return Ok(item);
        }
        while let Some(child) = self
            .batch
            .reader()
            .next_child()
            .await
            .map_err(|err| self.batch.fail(err))?
        {
            let (member, attribute, names) = match child.local.as_str() {
                "Roles" => ("Role", "name", &mut item.roles),
                "UserEntityMemberships" => {
                    ("UserEntityMembership", "entityName", &mut item.entities)
                }
                _ => {
                    self.batch.leave(&child).await?;
                    continue;
                }
            };
            if child.empty {
                continue;
            }
            while let Some(grant) = self
                .batch
                .reader()
                .next_child()
                .await
                .map_err(|err| self.batch.fail(err))?
            {
                if grant.local == member {
                    match grant
                        .attr(attribute)
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                    {
                        Some(name) => names.push(name.to_string()),
                        None => {
                            let who = item.element.attr("name").unwrap_or("?").to_string();
                            return Err(self.batch.malformed(format!(
                                "user {who} has a <{member}> without {attribute}"
                            )));
                        }
                    }
                }
                self.batch.leave(&grant).await?;
            }
        }
        Ok(item)
    }
}

/// Names → ids of one entitlement type: exact first, then without letter case.
#[derive(Debug, Default)]
struct NameIndex {
    exact: HashMap<String, String>,
    /// Lower-cased name → id; `None` when two ids share it.
    folded: HashMap<String, Option<String>>,
}

impl NameIndex {
    /// Adds a record; two records with the same exact name are an error (grants name them
    /// only by name, so they cannot be told apart).
    fn insert(&mut self, target: &str, record: &EntitlementRecord) -> Result<(), ConnectorError> {
        if let Some(other) = self.exact.get(&record.name) {
            if *other != record.id {
                return Err(ConnectorError::malformed(
                    target,
                    format!(
                        "{} name `{}` is used by ids {other} and {}; user records name {}s \
                         only by name, so their grants cannot be told apart",
                        record.entitlement_type, record.name, record.id, record.entitlement_type
                    ),
                ));
            }
        }
        self.exact.insert(record.name.clone(), record.id.clone());
        self.folded
            .entry(record.name.to_lowercase())
            .and_modify(|id| {
                if id.as_deref() != Some(record.id.as_str()) {
                    *id = None;
                }
            })
            .or_insert_with(|| Some(record.id.clone()));
        Ok(())
    }

    /// The id of `name`; the name itself when the catalogue lacks it.
    fn resolve(&self, name: &str) -> String {
        if let Some(id) = self.exact.get(name) {
            return id.clone();
        }
        match self.folded.get(&name.to_lowercase()) {
            Some(Some(id)) => id.clone(),
            _ => name.to_string(),
        }
    }
}

/// The catalogue the grant stream resolves names with.
#[derive(Debug, Default)]
struct Catalogue {
    roles: NameIndex,
    entities: NameIndex,
}

/// A required, non-blank attribute of `element`, or a malformed-response error naming it.
fn required<'e>(
    target: &str,
    element: &'e Element,
    what: &str,
    attribute: &str,
) -> Result<&'e str, ConnectorError> {
    element
        .attr(attribute)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            let id = element
                .attr("id")
                .map(|id| format!(" (id {id})"))
                .unwrap_or_default();
            ConnectorError::malformed(
                target,
                format!("a {what}{id} has no `{attribute}` attribute"),
            )
        })
}

/// A text attribute, trimmed, or `None` when absent or blank.
fn optional(element: &Element, attribute: &str) -> Option<String> {
    element
        .attr(attribute)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_string)
}

/// A `User` → an account record. `@status` `Active` is active and `Locked` inactive (any
/// letter case); any other value is refused rather than guessed. Attributes other than
/// `id`, `name`, `email` and `fullName` (the raw `status` among them) are kept in
/// `attributes`.
fn map_user(target: &str, item: &Item) -> Result<AccountRecord, ConnectorError> {
    let user = &item.element;
    let id = required(target, user, "user", "id")?;
    let name = required(target, user, "user", "name")?;
    let status = match user.attr("status").map(str::trim) {
        Some(status) if status.eq_ignore_ascii_case("Active") => AccountStatus::Active,
        Some(status) if status.eq_ignore_ascii_case("Locked") => AccountStatus::Inactive,
        Some(other) => {
            return Err(ConnectorError::malformed(
                target,
                format!(
                    "user {id} ({name}) has status \"{other}\"; idsync knows Active and Locked \
                     and does not guess"
                ),
            ))
        }
        None => {
            return Err(ConnectorError::malformed(
                target,
                format!("user {id} ({name}) has no status (expected Active or Locked)"),
            ))
        }
    };
    let mut attributes = Attributes::new();
    for (key, value) in &user.attributes {
        if !matches!(key.as_str(), "id" | "name" | "email" | "fullName") {
            attributes.insert(key.clone(), Value::from(value.as_str()));
        }
    }
    Ok(AccountRecord {
        id: id.to_string(),
        name: name.to_string(),
        display_name: optional(user, "fullName"),
        email: optional(user, "email"),
        status,
        attributes,
    })
}

/// A `Role` → a `Role` entitlement (`description` in its attributes).
fn map_role(target: &str, role: &Element) -> Result<EntitlementRecord, ConnectorError> {
    let mut attributes = Attributes::new();
    if let Some(description) = optional(role, "description") {
        attributes.insert("description".into(), description.into());
    }
    Ok(EntitlementRecord {
        entitlement_type: ROLE.to_string(),
        id: required(target, role, "role", "id")?.to_string(),
        name: required(target, role, "role", "name")?.to_string(),
        attributes,
    })
}

/// Any child of `Entities` → an `Entity` entitlement (its element name in `attributes.element`
/// when it is not `Entity`).
fn map_entity(target: &str, entity: &Element) -> Result<EntitlementRecord, ConnectorError> {
    let mut attributes = Attributes::new();
    if entity.local != ENTITY {
        attributes.insert("element".into(), entity.local.clone().into());
    }
    Ok(EntitlementRecord {
        entitlement_type: ENTITY.to_string(),
        id: required(target, entity, "entity", "id")?.to_string(),
        name: required(target, entity, "entity", "name")?.to_string(),
        attributes,
    })
}

/// A `Privilege` → a `Privilege` entitlement (`description` and `type` in its attributes).
fn map_privilege(target: &str, privilege: &Element) -> Result<EntitlementRecord, ConnectorError> {
    let mut attributes = Attributes::new();
    for key in ["description", "type"] {
        if let Some(value) = optional(privilege, key) {
            attributes.insert(key.into(), value.into());
        }
    }
    Ok(EntitlementRecord {
        entitlement_type: PRIVILEGE.to_string(),
        id: required(target, privilege, "privilege", "id")?.to_string(),
        name: required(target, privilege, "privilege", "name")?.to_string(),
        attributes,
    })
}

/// A user's roles and entity memberships → grants, names resolved through `catalogue`.
fn map_user_grants(
    target: &str,
    catalogue: &Catalogue,
    item: &Item,
) -> Result<Vec<GrantRecord>, ConnectorError> {
    let account_id = required(target, &item.element, "user", "id")?;
    let roles = item.roles.iter().map(|name| (ROLE, &catalogue.roles, name));
    let entities = item
        .entities
        .iter()
        .map(|name| (ENTITY, &catalogue.entities, name));
    Ok(roles
        .chain(entities)
        .map(|(kind, index, name)| GrantRecord {
            account_id: account_id.to_string(),
            entitlement_type: kind.to_string(),
            entitlement_id: index.resolve(name),
            entitlement_name: Some(name.clone()),
        })
        .collect())
}

#[async_trait]
impl Connector for DuckCreekConnector {
    fn target(&self) -> &str {
        &self.target
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn test_connection(&self) -> Result<(), ConnectorError> {
        let mut batch = self.open_batch("login", "", CallKind::Read).await?;
        batch.finish().await
    }

    fn accounts(&self) -> PageStream<'_, AccountRecord> {
        self.item_pages(
            "users",
            vec![self.users_spec()],
            futures::future::ready(Ok(())).boxed(),
            |target, _: &(), _, item| Ok(vec![map_user(target, item)?]),
        )
    }

    fn entitlements(&self) -> PageStream<'_, EntitlementRecord> {
        self.item_pages(
            "roles, entities and privileges",
            vec![roles_spec(), entities_spec(), privileges_spec()],
            futures::future::ready(Ok(())).boxed(),
            |target, _: &(), list, item| {
                let record = match list {
                    0 => map_role(target, &item.element)?,
                    1 => map_entity(target, &item.element)?,
                    _ => map_privilege(target, &item.element)?,
                };
                Ok(vec![record])
            },
        )
    }

    fn grants(&self) -> PageStream<'_, GrantRecord> {
        self.item_pages(
            "users",
            vec![self.users_spec()],
            self.catalogue().boxed(),
            |target, catalogue, _, item| map_user_grants(target, catalogue, item),
        )
    }

    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let kind = request.entitlement.as_ref().map(|(kind, _)| kind.as_str());
        let key = template_for(request.operation, kind).filter(|key| self.templates.has(key));
        let Some(key) = key else {
            return Err(ConnectorError::Unsupported {
                target: self.target.clone(),
                operation: request.operation.to_string(),
                reason: unsupported_reason(&self.target, request.operation, kind),
            });
        };
        let already = self
            .already_done
            .get(&request.operation)
            .map_or(&[][..], Vec::as_slice);
        self.run_template(request, key, already).await
    }

    fn unsupported_reason(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        unsupported_reason(&self.target, operation, entitlement_type)
    }

    async fn lookup_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        let mut reader = self.open_lists("users", vec![self.users_spec()]).await?;
        while let Some((_, item)) = reader.next_item().await? {
            if item
                .element
                .attr("name")
                .is_some_and(|found| found.trim().eq_ignore_ascii_case(name.trim()))
            {
                return Ok(Some(map_user(&self.target, &item)?));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use serde_json::json;
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::connector::soap::SOAP_1_1;
    use crate::connector::ErrorClass;

    const PASSWORD: &str = "dc-PASS&<word>-UNMISTAKABLE";

    /// A Duck Creek answer around `responses` (login and close answered), with the
    /// envelope prefix `s:` and the ASMX default namespace on the wrapper.
    fn answer(responses: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_1_1}"><s:Body>
            <processRequestsAsDOMResponse xmlns="http://tempuri.org/"><result><server><responses>
            <Session.loginRs status="Success"/>{responses}<Session.closeRs status="Success"/>
            </responses></server></result></processRequestsAsDOMResponse></s:Body></s:Envelope>"#
        )
    }

    fn xml(status: u16, body: impl Into<String>) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_raw(body.into(), "text/xml; charset=utf-8")
    }

    fn user_xml(id: u32, status: &str) -> String {
        format!(
            r#"<User id="{id}" name="user{id}" email="user{id}@example.com" fullName="User &apos;{id}&apos;" status="{status}" department="R&amp;D">
              <UserEntityMemberships><UserEntityMembership entityName="Branch {id}"/></UserEntityMemberships>
              <Roles><Role name="Underwriter"/><Role name="underwriter admin"/></Roles></User>"#
        )
    }

    fn users_answer(count: u32) -> String {
        let users: String = (1..=count)
            .map(|id| user_xml(id, if id % 3 == 0 { "Locked" } else { "Active" }))
            .collect();
        answer(&format!(
            r#"<OnlineData.listEntityUsersRs status="Success"><Users>{users}</Users></OnlineData.listEntityUsersRs>"#
        ))
    }

    fn catalogue_answer() -> String {
        answer(
            r#"<Security.listRolesRs status="Success"><Roles>
                 <Role id="10" name="Underwriter" description="Writes &quot;policies&quot;"><Privileges><Privilege id="1" name="x"/></Privileges></Role>
                 <Role id="11" name="Underwriter Admin"/></Roles></Security.listRolesRs>
               <OnlineData.listEntitiesRs status="Success"><Entities>
                 <Entity id="1" name="Home"/><Agency id="2" name="Branch 1"/><Entity id="3" name="Branch 2"/>
               </Entities></OnlineData.listEntitiesRs>
               <Security.listPrivilegesRs status="Success"><Privileges>
                 <Privilege id="100" name="Quote" description="Create quotes" type="Action"/>
               </Privileges></Security.listPrivilegesRs>"#,
        )
    }

    fn config(base: &str, extra: &str) -> TargetConfig {
        toml::from_str(&format!(
            "kind = \"duckcreek\"\nbase_url = \"{base}/Server/Server.asmx\"\nusername = \"svc_idsync\"\n\
             password = \"{}\"\n\
             read_retry = {{ max_attempts = 2, initial_backoff = \"1ms\", max_backoff = \"5ms\" }}\n{extra}",
            PASSWORD.replace('\\', "\\\\")
        ))
        .unwrap()
    }

    fn connector(server: &MockServer, extra: &str) -> DuckCreekConnector {
        DuckCreekConnector::new("dc", &config(&server.uri(), extra)).unwrap()
    }

    fn body_of(request: &Request) -> String {
        String::from_utf8_lossy(&request.body).into_owned()
    }

    fn assert_no_password(text: &str) {
        assert!(
            !text.contains("UNMISTAKABLE"),
            "the password leaked: {text}"
        );
    }

    fn element(local: &str, attributes: &[(&str, &str)]) -> Element {
        Element {
            local: local.into(),
            namespace: None,
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            empty: true,
        }
    }

    #[test]
    fn maps_users_with_locked_as_inactive_and_refuses_unknown_statuses() {
        let item = Item {
            element: element(
                "User",
                &[
                    ("id", "7"),
                    ("name", "jdoe"),
                    ("email", "j@example.com"),
                    ("fullName", "Jane Doe"),
                    ("status", "Locked"),
                    ("branch", "East"),
                ],
            ),
            ..Item::default()
        };
        let record = map_user("dc", &item).unwrap();
        assert_eq!(
            (record.id.as_str(), record.name.as_str(), record.status),
            ("7", "jdoe", AccountStatus::Inactive)
        );
        assert_eq!(record.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(record.email.as_deref(), Some("j@example.com"));
        assert_eq!(
            Value::Object(record.attributes),
            json!({ "status": "Locked", "branch": "East" })
        );
        let active = Item {
            element: element("User", &[("id", "8"), ("name", "a"), ("status", "active")]),
            ..Item::default()
        };
        assert_eq!(
            map_user("dc", &active).unwrap().status,
            AccountStatus::Active
        );
        for (attributes, wanted) in [
            (
                vec![("id", "9"), ("name", "b"), ("status", "Disabled")],
                "status \"Disabled\"",
            ),
            (vec![("id", "9"), ("name", "b")], "has no status"),
            (vec![("name", "b"), ("status", "Active")], "no `id`"),
            (
                vec![("id", "9"), ("name", " "), ("status", "Active")],
                "no `name`",
            ),
        ] {
            let item = Item {
                element: element("User", &attributes),
                ..Item::default()
            };
            let err = map_user("dc", &item).unwrap_err();
            assert_eq!(err.class(), ErrorClass::Permanent);
            assert!(err.to_string().contains(wanted), "{err}");
        }
    }

    #[test]
    fn maps_the_catalogue_and_resolves_grant_names() {
        let role = map_role(
            "dc",
            &element(
                "Role",
                &[("id", "10"), ("name", "Underwriter"), ("description", "d")],
            ),
        )
        .unwrap();
        assert_eq!(
            (role.entitlement_type.as_str(), role.id.as_str()),
            ("Role", "10")
        );
        assert_eq!(
            Value::Object(role.attributes.clone()),
            json!({ "description": "d" })
        );
        let agency = map_entity("dc", &element("Agency", &[("id", "2"), ("name", "B")])).unwrap();
        assert_eq!(
            Value::Object(agency.attributes),
            json!({ "element": "Agency" })
        );
        let privilege = map_privilege(
            "dc",
            &element(
                "Privilege",
                &[("id", "1"), ("name", "Q"), ("type", "Action")],
            ),
        )
        .unwrap();
        assert_eq!(privilege.entitlement_type, "Privilege");
        assert_eq!(
            Value::Object(privilege.attributes),
            json!({ "type": "Action" })
        );

        let mut catalogue = Catalogue::default();
        catalogue.roles.insert("dc", &role).unwrap();
        let item = Item {
            element: element("User", &[("id", "7")]),
            roles: vec!["Underwriter".into(), "UNDERWRITER".into(), "Ghost".into()],
            entities: vec!["Home".into()],
        };
        let grants = map_user_grants("dc", &catalogue, &item).unwrap();
        let ids: Vec<(&str, &str)> = grants
            .iter()
            .map(|g| (g.entitlement_type.as_str(), g.entitlement_id.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("Role", "10"),
                ("Role", "10"),
                ("Role", "Ghost"),
                ("Entity", "Home")
            ]
        );
        let twin = EntitlementRecord {
            id: "12".into(),
            ..role.clone()
        };
        let err = catalogue.roles.insert("dc", &twin).unwrap_err();
        assert!(err.to_string().contains("used by ids 10 and 12"), "{err}");
    }

    #[tokio::test]
    async fn streams_users_in_pages_from_one_response() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/Server/Server.asmx"))
            .and(header("SOAPAction", "\"\""))
            .and(body_string_contains(
                "<OnlineData.listEntityUsersRq entityID=\"1\"/>",
            ))
            .respond_with(xml(200, users_answer(7)))
            .expect(1)
            .mount(&server)
            .await;
        let connector = connector(&server, "page_size = 3");
        let pages: Vec<Vec<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
        let third = &pages[0][2];
        assert_eq!(
            (third.name.as_str(), third.status),
            ("user3", AccountStatus::Inactive)
        );
        assert_eq!(third.display_name.as_deref(), Some("User '3'"));
        assert_eq!(third.attributes["department"], "R&D");
        let requests = server.received_requests().await.unwrap();
        let body = body_of(&requests[0]);
        // Login first, escaped; close last.
        let login = format!(
            "<Session.loginRq userName=\"svc_idsync\" password=\"{}\"/>",
            escape(PASSWORD)
        );
        assert!(
            body.contains(&format!("<server><requests>{login}")),
            "{body}"
        );
        assert!(body
            .ends_with("<Session.closeRq/></requests></server></soapenv:Body></soapenv:Envelope>"));
    }

    #[tokio::test]
    async fn reads_roles_entities_and_privileges_then_grants_by_name() {
        let server = MockServer::start().await;
        Mock::given(body_string_contains(LIST_ROLES))
            .respond_with(xml(200, catalogue_answer()))
            .mount(&server)
            .await;
        Mock::given(body_string_contains(LIST_USERS))
            .respond_with(xml(200, users_answer(2)))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let records: Vec<EntitlementRecord> = connector
            .entitlements()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .concat();
        let keys: Vec<String> = records
            .iter()
            .map(|r| format!("{}:{}:{}", r.entitlement_type, r.id, r.name))
            .collect();
        assert_eq!(
            keys,
            [
                "Role:10:Underwriter",
                "Role:11:Underwriter Admin",
                "Entity:1:Home",
                "Entity:2:Branch 1",
                "Entity:3:Branch 2",
                "Privilege:100:Quote"
            ]
        );
        assert_eq!(records[0].attributes["description"], "Writes \"policies\"");

        let grants: Vec<GrantRecord> = connector
            .grants()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .concat();
        let keys: Vec<String> = grants
            .iter()
            .map(|g| {
                format!(
                    "{}:{}:{}",
                    g.account_id, g.entitlement_type, g.entitlement_id
                )
            })
            .collect();
        // Roles before entities; "underwriter admin" matches role 11 without letter case.
        assert_eq!(
            keys,
            [
                "1:Role:10",
                "1:Role:11",
                "1:Entity:2",
                "2:Role:10",
                "2:Role:11",
                "2:Entity:3"
            ]
        );
        assert_eq!(grants[2].entitlement_name.as_deref(), Some("Branch 1"));
    }

    #[tokio::test]
    async fn a_refused_login_is_an_auth_error_without_the_password() {
        for response in [
            xml(
                500,
                format!(
                    r#"<soapenv:Envelope xmlns:soapenv="{SOAP_1_1}"><soapenv:Body><soapenv:Fault>
                    <faultcode>soapenv:Client</faultcode><faultstring>Login failed for svc_idsync / {}</faultstring>
                    </soapenv:Fault></soapenv:Body></soapenv:Envelope>"#,
                    escape(PASSWORD)
                ),
            ),
            xml(
                200,
                answer("").replace(
                    r#"<Session.loginRs status="Success"/>"#,
                    r#"<Session.loginRs status="Failure"><Errors><Error code="InvalidLogin" text="bad password"/></Errors></Session.loginRs>"#,
                ),
            ),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST")).respond_with(response).mount(&server).await;
            let connector = connector(&server, "");
            let err = connector
                .accounts()
                .try_collect::<Vec<_>>()
                .await
                .unwrap_err();
            assert_eq!(err.class(), ErrorClass::Auth, "{err}");
            assert!(err.to_string().contains("svc_idsync"), "{err}");
            assert_no_password(&format!("{err} {err:?} {connector:?}"));
            // Not retried: an auth failure does not go away.
            assert_eq!(server.received_requests().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_failed_list_a_truncated_answer_and_a_bomb_are_clear_errors() {
        let failed = answer(
            r#"<OnlineData.listEntityUsersRs status="Failure"><Errors><Error code="EntityNotFound" text="No entity 9"/></Errors></OnlineData.listEntityUsersRs>"#,
        );
        let full = users_answer(40);
        let truncated = full[..full.len() / 2].to_string();
        let mismatched = full.replacen("</Roles></User>", "</Role></User>", 1);
        let bomb = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>{}",
            full.replacen("<?xml version=\"1.0\" encoding=\"utf-8\"?>", "", 1)
        );
        let wrong_answer =
            answer(r#"<Security.listRolesRs status="Success"><Roles/></Security.listRolesRs>"#);
        let no_users = answer(r#"<OnlineData.listEntityUsersRs status="Success"/>"#);
        for (body, wanted) in [
            (failed, "OnlineData.listEntityUsersRq failed: EntityNotFound: No entity 9 (check entity_id)"),
            (truncated, "ends early"),
            (mismatched, "not well-formed"),
            (bomb, "DOCTYPE"),
            (wrong_answer, "expected <OnlineData.listEntityUsersRs>, found <Security.listRolesRs>"),
            (no_users, "holds no <Users>"),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST")).respond_with(xml(200, body)).mount(&server).await;
            let connector = connector(&server, "page_size = 5");
            let err = connector
                .accounts()
                .try_collect::<Vec<_>>()
                .await
                .unwrap_err();
            assert_eq!(err.class(), ErrorClass::Permanent, "{wanted}: {err}");
            assert!(err.to_string().contains(wanted), "{wanted}: {err}");
        }
    }

    #[tokio::test]
    async fn an_empty_user_list_is_no_pages() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(
                200,
                answer(r#"<OnlineData.listEntityUsersRs status="Success"><Users/></OnlineData.listEntityUsersRs>"#),
            ))
            .mount(&server)
            .await;
        let pages: Vec<Vec<AccountRecord>> = connector(&server, "")
            .accounts()
            .try_collect()
            .await
            .unwrap();
        assert!(pages.is_empty());
    }

    fn request(
        operation: Operation,
        entitlement: Option<(&str, &str, &str)>,
        attributes: Value,
    ) -> ProvisionRequest {
        ProvisionRequest {
            operation,
            account_id: Some("1001".into()),
            account_name: "o'brien & co".into(),
            entitlement: entitlement.map(|(kind, id, _)| (kind.to_string(), id.to_string())),
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            entitlement_name: entitlement.map(|(_, _, name)| name.to_string()),
            task_id: Some(5),
            request_id: None,
        }
    }

    #[tokio::test]
    async fn lock_and_unlock_send_the_templates_and_judge_the_status() {
        let server = MockServer::start().await;
        Mock::given(body_string_contains("Security.lockUserAccountRq"))
            .respond_with(xml(
                200,
                answer(r#"<Security.lockUserAccountRs status="Success"/>"#),
            ))
            .mount(&server)
            .await;
        Mock::given(body_string_contains("Security.unlockUserAccountRq"))
            .respond_with(xml(
                200,
                answer(r#"<Security.unlockUserAccountRs status="Failure"><Errors><Error code="UserNotFound" text="No such user"/></Errors></Security.unlockUserAccountRs>"#),
            ))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let done = connector
            .provision(&request(Operation::DisableAccount, None, json!({})))
            .await
            .unwrap();
        assert_eq!(done, ProvisionOutcome::Done { account_id: None });
        let body = body_of(&server.received_requests().await.unwrap()[0]);
        assert!(
            body.contains(r#"<Security.lockUserAccountRq userID="1001" userName="o&apos;brien &amp; co"/><Session.closeRq/>"#),
            "{body}"
        );
        let err = connector
            .provision(&request(Operation::EnableAccount, None, json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.to_string()
                .contains("Security.unlockUserAccountRq failed: UserNotFound: No such user"),
            "{err}"
        );
        // A write is sent once, whatever comes back.
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn grants_and_revokes_count_already_in_place_as_done() {
        let server = MockServer::start().await;
        Mock::given(body_string_contains("Security.addUserRoleRq"))
            .respond_with(xml(
                200,
                answer(r#"<Security.addUserRoleRs status="Failure"><Errors><Error code="AlreadyAssigned" text="has it"/></Errors></Security.addUserRoleRs>"#),
            ))
            .mount(&server)
            .await;
        Mock::given(body_string_contains("OnlineData.removeEntityMembershipRq"))
            .respond_with(xml(
                200,
                answer(r#"<OnlineData.removeEntityMembershipRs status="Success"/>"#),
            ))
            .mount(&server)
            .await;
        Mock::given(body_string_contains("OnlineData.addEntityMembershipRq"))
            .respond_with(xml(
                200,
                answer(r#"<OnlineData.addEntityMembershipRs status="Failure"><Errors><Error code="NotAssigned" text="?"/></Errors></OnlineData.addEntityMembershipRs>"#),
            ))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let role = Some(("role", "10", "Underwriter <Senior>"));
        assert_eq!(
            connector
                .provision(&request(Operation::AddAccess, role, json!({})))
                .await
                .unwrap(),
            ProvisionOutcome::AlreadyDone { account_id: None }
        );
        let body = body_of(&server.received_requests().await.unwrap()[0]);
        assert!(
            body.contains(r#"roleName="Underwriter &lt;Senior&gt;""#),
            "{body}"
        );
        let entity = Some(("Entity", "3", "Branch 2"));
        assert_eq!(
            connector
                .provision(&request(Operation::RemoveAccess, entity, json!({})))
                .await
                .unwrap(),
            ProvisionOutcome::Done { account_id: None }
        );
        // NotAssigned on an add is not "already done": it fails.
        let err = connector
            .provision(&request(Operation::AddAccess, entity, json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    }

    #[tokio::test]
    async fn configured_already_done_codes_replace_the_built_in_ones() {
        let server = MockServer::start().await;
        let failure = |name: &str, code: &str| {
            xml(
                200,
                answer(&format!(
                    r#"<{name} status="Failure"><Errors><Error code="{code}" text="no"/></Errors></{name}>"#
                )),
            )
        };
        Mock::given(body_string_contains("Security.addUserRoleRq"))
            .respond_with(failure("Security.addUserRoleRs", "AlreadyAssigned"))
            .mount(&server)
            .await;
        Mock::given(body_string_contains("Security.removeUserRoleRq"))
            .respond_with(failure("Security.removeUserRoleRs", "NotAssigned"))
            .mount(&server)
            .await;
        Mock::given(body_string_contains("Security.lockUserAccountRq"))
            .respond_with(failure("Security.lockUserAccountRs", "alreadylocked"))
            .mount(&server)
            .await;
        let configured = connector(
            &server,
            r#"already_done_codes = { add_access = ["RoleAlreadyGranted"], disable_account = ["AlreadyLocked"] }"#,
        );
        let role = Some(("Role", "10", "Underwriter"));
        // add_access: the configured list replaced AlreadyAssigned.
        let err = configured
            .provision(&request(Operation::AddAccess, role, json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
        assert!(err.to_string().contains("AlreadyAssigned: no"), "{err}");
        // remove_access: not configured, so the built-in NotAssigned still counts.
        let outcome = configured
            .provision(&request(Operation::RemoveAccess, role, json!({})))
            .await
            .unwrap();
        assert_eq!(outcome, ProvisionOutcome::AlreadyDone { account_id: None });
        // disable_account: a configured code, matched without letter case.
        let outcome = configured
            .provision(&request(Operation::DisableAccount, None, json!({})))
            .await
            .unwrap();
        assert_eq!(outcome, ProvisionOutcome::AlreadyDone { account_id: None });
        // Without the setting, the same lock failure fails the task.
        let err = connector(&server, "")
            .provision(&request(Operation::DisableAccount, None, json!({})))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("alreadylocked: no"), "{err}");

        for bad in [
            r#"already_done_codes = { create_account = ["UserExists"] }"#,
            r#"already_done_codes = { grant = ["X"] }"#,
        ] {
            let err = DuckCreekConnector::new("dc", &config(&server.uri(), bad)).unwrap_err();
            assert!(
                err.to_string().contains("already_done_codes."),
                "{bad}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn privileges_and_unconfigured_account_operations_are_unsupported() {
        let server = MockServer::start().await;
        let connector = connector(&server, "");
        let caps = connector.capabilities();
        assert!(caps.supports(Operation::AddAccess, Some("role")));
        assert!(caps.supports(Operation::RemoveAccess, Some("ENTITY")));
        assert!(!caps.supports(Operation::AddAccess, Some("Privilege")));
        for op in [
            Operation::CreateAccount,
            Operation::UpdateAccount,
            Operation::RemoveAccount,
        ] {
            assert!(!caps.supports(op, None), "{op}");
            let err = connector
                .provision(&request(op, None, json!({})))
                .await
                .unwrap_err();
            assert_eq!(err.class(), ErrorClass::Unsupported);
            assert!(
                err.to_string()
                    .contains(&format!("targets.dc.templates.{}", op.as_str())),
                "{err}"
            );
        }
        let reason = connector.unsupported_reason(Operation::AddAccess, Some("Privilege"));
        assert!(reason.contains("attach to roles"), "{reason}");
        let err = connector
            .provision(&request(
                Operation::AddAccess,
                Some(("Privilege", "1", "Q")),
                json!({}),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unsupported);
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_configured_create_template_is_supported_and_its_password_redacted() {
        let server = MockServer::start().await;
        Mock::given(body_string_contains("Security.createUserRq"))
            .respond_with(|request: &Request| {
                // Echo the generated password back in the failure text, as a careless
                // server might.
                let body = String::from_utf8_lossy(&request.body).into_owned();
                let start = body.find("initial=\"").unwrap() + 9;
                let end = start + body[start..].find('"').unwrap();
                let echoed = &body[start..end];
                xml(
                    200,
                    answer(&format!(
                        r#"<Security.createUserRs status="Failure"><Errors><Error code="Weak" text="password {echoed} rejected"/></Errors></Security.createUserRs>"#
                    )),
                )
            })
            .mount(&server)
            .await;
        let extra = r#"
[templates]
create_account = '<Security.createUserRq userName="${ user.username }" email="${ user.email }" initial="${ password }"/>'
"#;
        let connector = connector(&server, extra);
        assert!(connector
            .capabilities()
            .supports(Operation::CreateAccount, None));
        let err = connector
            .provision(&request(
                Operation::CreateAccount,
                None,
                json!({ "email": "o@example.com" }),
            ))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("password [REDACTED] rejected"), "{text}");
        let body = body_of(&server.received_requests().await.unwrap()[0]);
        let start = body.find("initial=\"").unwrap() + 9;
        let sent = &body[start..start + 10];
        assert!(!text.contains(sent), "{text}");
    }

    #[test]
    fn templates_that_log_in_or_are_malformed_fail_the_check() {
        let mut config = config("http://dc.example", "");
        // Saviynt's published enable template: closed with the lock request's name.
        config.templates.insert(
            "enable_account".into(),
            r#"<Security.unlockUserAccountRq userName="${ account.name }"></Security.lockUserAccountRq>"#
                .into(),
        );
        config.templates.insert(
            "add_access_role".into(),
            r#"<Session.loginRq userName="x" password="y"/><Security.addUserRoleRq userName="${ account.name }"/>"#
                .into(),
        );
        let errors = check_templates("dc", &config);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{text:?}");
        assert!(
            text[0].contains("targets.dc.templates.enable_account"),
            "{text:?}"
        );
        assert!(text[0].contains("not well-formed"), "{text:?}");
        config.templates.remove("enable_account");
        let errors = check_templates("dc", &config);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "targets.dc.templates.add_access_role");
        assert!(errors[0]
            .message
            .contains("must not contain <Session.loginRq>"));
        let err = DuckCreekConnector::new("dc", &config).unwrap_err();
        assert!(err.to_string().contains("add_access_role"), "{err}");
        config.templates.clear();
        assert!(check_templates("dc", &config).is_empty());
    }

    #[tokio::test]
    async fn test_connection_logs_in_and_closes() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(200, answer("")))
            .expect(1)
            .mount(&server)
            .await;
        connector(&server, "").test_connection().await.unwrap();
        let body = body_of(&server.received_requests().await.unwrap()[0]);
        assert!(body.contains("/><Session.closeRq/></requests>"), "{body}");
    }

    #[tokio::test]
    async fn the_configured_soap_action_and_content_type_are_sent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header(
                "SOAPAction",
                "\"http://tempuri.org/processRequestsAsDOM\"",
            ))
            .and(header("Content-Type", "application/xml; charset=utf-8"))
            .respond_with(xml(200, answer("")))
            .expect(1)
            .mount(&server)
            .await;
        let extra = "soap_action = \"http://tempuri.org/processRequestsAsDOM\"\n\
                     content_type = \"application/xml; charset=utf-8\"";
        connector(&server, extra).test_connection().await.unwrap();
    }

    #[tokio::test]
    async fn a_configured_wrapper_holds_the_server_document() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(200, answer("")))
            .mount(&server)
            .await;
        for (extra, open, close) in [
            (
                r#"request_wrapper = { element = "processRequestsAsDOM" }"#,
                r#"<soapenv:Body><w:processRequestsAsDOM xmlns:w="http://tempuri.org/"><server>"#,
                "</server></w:processRequestsAsDOM></soapenv:Body>",
            ),
            (
                r#"request_wrapper = { element = "Run", namespace = "urn:a&b" }"#,
                r#"<soapenv:Body><w:Run xmlns:w="urn:a&amp;b"><server>"#,
                "</server></w:Run></soapenv:Body>",
            ),
            (
                r#"request_wrapper = { element = "Run", namespace = "" }"#,
                "<soapenv:Body><Run><server>",
                "</server></Run></soapenv:Body>",
            ),
            ("", "<soapenv:Body><server>", "</server></soapenv:Body>"),
        ] {
            connector(&server, extra).test_connection().await.unwrap();
            let requests = server.received_requests().await.unwrap();
            let body = body_of(requests.last().unwrap());
            assert!(
                body.contains(open) && body.contains(close),
                "{extra}: {body}"
            );
        }
        for bad in [
            r#"request_wrapper = { element = "w:Run" }"#,
            r#"request_wrapper = { element = "Run", namespace = "urn:\u0001" }"#,
        ] {
            let err = DuckCreekConnector::new("dc", &config(&server.uri(), bad)).unwrap_err();
            assert!(err.to_string().contains("request_wrapper"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn lookup_finds_a_user_by_name_without_letter_case() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(200, users_answer(30)))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let found = connector.lookup_account("USER17").await.unwrap().unwrap();
        assert_eq!(found.id, "17");
        assert_eq!(connector.lookup_account("nobody").await.unwrap(), None);
    }
}
