//! DigiCert CertCentral Services API v2 adapter (import side).
//!
//! * Accounts: `GET /user?offset=N&limit=M`, one stream item per page, guarded by
//!   [`OffsetPager`].
//! * Entitlements: `GET /container` (type `container`), then `GET /container/{id}/role` for
//!   each top-level container, roles de-duplicated by id (type `role`).
//! * Grants: the user pages again; per user one `role` grant per access role and one
//!   `container` grant for the user's container.
//! * Auth: the API key in `X-DC-DEVKEY` (header name configurable with `api_key_header`).
//! * Pacing: 90 requests per 5 s and 900 per 3 min by default (90 % of the documented
//!   per-key limits, which answer with bare 429s and no `Retry-After`).
//!
//! * Provisioning (declared per operation and entitlement type, see [`capabilities`]):
//!   - `create_account`: `POST /user` with the `create_account` template (201 `{"id"}`); the
//!     role is the task's `role` entitlement, else `default_role` (`5`). A duplicate username
//!     is `AlreadyDone` when the existing user has the task's email, else `Permanent`.
//!   - `update_account`: `GET /user/{id}`, the `update_account` template's changes merged
//!     in, then a full `PUT /user/{id}` (PUT replaces: every field read is sent back).
//!   - `remove_account`: `DELETE /user/{id}` (404: already done).
//!   - `add_access` / `remove_access` on `role`: the whole list through
//!     `PUT /user/{id}/role`; removing the last role is refused. `add_access` on `container`
//!     moves the user (full PUT); a user has exactly one container, so `remove_access` on one
//!     is not supported.
//!   - `enable_account` / `disable_account`: CertCentral has none; with
//!     `disable_strategy = "delete"`, `disable_account` deletes the user.
//!   - [`Connector::lookup_account`]: `GET /user?filters[search]=NAME`, exact username.
//!
//! Mapping from JSON to records is done by pure functions (`map_user`, `map_user_grants`,
//! `map_container`, `map_roles`) tested on recorded fixtures.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::{ClientDefaults, HttpClient, StaticHeader};
use super::mapping::{code_and_text, display_name, first_id, non_empty, parse, put, NativeId};
use super::paging::{OffsetPager, PageInfo};
use super::template::{expect_object, Escape, TemplateContext, TemplateError, TemplateSet};
use super::{
    Capabilities, Capability, Connector, ConnectorError, PageStream, ProvisionOutcome,
    ProvisionRequest,
};
use crate::config::{ConfigDuration, DisableStrategy, RateLimit, TargetConfig};
use crate::model::{
    AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord, Operation,
};

/// Users per page when the target's `page_size` is unset.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// The header that carries the API key when `api_key_header` is unset.
pub const DEFAULT_API_KEY_HEADER: &str = "X-DC-DEVKEY";

/// Entitlement type of an access role.
pub const ROLE: &str = "role";

/// Entitlement type of a container (division).
pub const CONTAINER: &str = "container";

/// The role given to a created user when the task names none and `default_role` is unset
/// (Standard User).
pub const DEFAULT_ROLE: &str = "5";

/// Why `enable_account` / `disable_account` are refused.
pub const NO_ENABLE_DISABLE: &str = "CertCentral has no enable/disable call";

/// Why `remove_access` on a container is refused.
pub const ONE_CONTAINER: &str = "a DigiCert user has exactly one container; move the user \
                                 with add_access on another container instead";

/// The built-in `create_account` body (`POST /user`): the task's names, email, title and
/// phone, its `container_id` attribute when set, and the role.
pub const CREATE_ACCOUNT_TEMPLATE: &str = r#"{
  "username": "${ account.name }",
  "first_name": "${ user.firstname }",
  "last_name": "${ user.lastname }",
  "email": "${ user.email }",
{%- if user.title %}
  "job_title": "${ user.title }",
{%- endif %}
{%- if user.phonenumber %}
  "telephone": "${ user.phonenumber }",
{%- endif %}
{%- if user.container_id %}
  "container": { "id": ${ user.container_id } },
{%- endif %}
  "access_roles": [{ "id": ${ entitlementValue.entitlementID } }]
}"#;

/// The built-in `update_account` changes: each of the task's `firstname`, `lastname`,
/// `email`, `title` and `phonenumber` that is set, as the user field it changes. They are
/// merged into the user as read, and the whole user is `PUT` back.
pub const UPDATE_ACCOUNT_TEMPLATE: &str = r#"
{%- set fields = {"firstname": "first_name", "lastname": "last_name", "email": "email",
                  "title": "job_title", "phonenumber": "telephone"} -%}
{
{%- for key, field in fields|items if user[key] is defined %}
  "${ field }": "${ user[key] }"{% if not loop.last %},{% endif %}
{%- endfor %}
}"#;

/// The operations with a request-body template, and their built-in defaults.
pub const TEMPLATES: [(&str, &str); 2] = [
    ("create_account", CREATE_ACCOUNT_TEMPLATE),
    ("update_account", UPDATE_ACCOUNT_TEMPLATE),
];

/// The attributes a create needs (DigiCert requires a first name, a last name and an email).
const REQUIRED_ON_CREATE: [&str; 3] = ["firstname", "lastname", "email"];

/// The user fields a full `PUT /user/{id}` carries over as read (besides `container` and
/// `access_roles`, which are sent as `{id}` objects).
const REPLACED_FIELDS: [&str; 8] = [
    "username",
    "first_name",
    "last_name",
    "email",
    "job_title",
    "telephone",
    "is_saml_sso_only",
    "container_id_assignments",
];

/// What a DigiCert target supports with `disable_strategy`: create, update and remove
/// accounts, add and remove `role`s, add (move to) a `container`, and `disable_account` only
/// with the `delete` strategy.
pub fn capabilities(disable: DisableStrategy) -> Capabilities {
    let account = |operation| Capability {
        operation,
        entitlement_type: None,
    };
    let access = |operation, kind: &str| Capability {
        operation,
        entitlement_type: Some(kind.to_string()),
    };
    let mut operations = BTreeSet::from([
        account(Operation::CreateAccount),
        account(Operation::UpdateAccount),
        account(Operation::RemoveAccount),
        access(Operation::AddAccess, ROLE),
        access(Operation::RemoveAccess, ROLE),
        access(Operation::AddAccess, CONTAINER),
    ]);
    if disable == DisableStrategy::Delete {
        operations.insert(account(Operation::DisableAccount));
    }
    Capabilities {
        entitlement_types: vec![ROLE.to_string(), CONTAINER.to_string()],
        operations,
    }
}

/// Why a DigiCert target refuses `operation` on `entitlement_type` (see [`capabilities`]).
pub fn unsupported_reason(operation: Operation, entitlement_type: Option<&str>) -> String {
    match (operation, entitlement_type) {
        (Operation::DisableAccount, _) => format!(
            "{NO_ENABLE_DISABLE} (set disable_strategy = \"delete\" to delete the user instead)"
        ),
        (Operation::EnableAccount, _) => NO_ENABLE_DISABLE.to_string(),
        (Operation::RemoveAccess, Some(kind)) if kind.eq_ignore_ascii_case(CONTAINER) => {
            ONE_CONTAINER.to_string()
        }
        (Operation::AddAccess | Operation::RemoveAccess, Some(kind)) => {
            format!("DigiCert grants entitlement types {ROLE} and {CONTAINER}, not `{kind}`")
        }
        (Operation::AddAccess | Operation::RemoveAccess, None) => {
            format!("{operation} needs an entitlement ({ROLE}:ID or {CONTAINER}:ID)")
        }
        _ => format!("DigiCert does not support {operation}"),
    }
}

/// The pacing DigiCert needs: its documented per-key limits (100 per 5 s, 1000 per 3 min, on
/// rolling windows), kept at 90 %.
pub fn default_rate_limits() -> Vec<RateLimit> {
    vec![
        RateLimit {
            requests: 90,
            per: ConfigDuration::from_secs(5),
        },
        RateLimit {
            requests: 900,
            per: ConfigDuration::from_secs(180),
        },
    ]
}

/// What the DigiCert adapter hands the shared HTTP client: pacing and the error format.
pub fn client_defaults() -> ClientDefaults {
    ClientDefaults {
        rate_limits: default_rate_limits(),
        error_message,
        classify_error: None,
    }
}

/// The target's own message from a DigiCert error body
/// (`{"errors":[{"code":"…","message":"…"}]}` → `"code: message"`, several joined by `; `).
pub fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = parsed
        .errors
        .into_iter()
        .filter_map(|item| code_and_text(item.code.as_deref(), item.message.as_deref()))
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The DigiCert CertCentral connector of one target.
pub struct DigicertConnector {
    target: String,
    http: HttpClient,
    page_size: u32,
    capabilities: Capabilities,
    templates: TemplateSet,
    default_role: String,
    disable_strategy: DisableStrategy,
}

impl fmt::Debug for DigicertConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigicertConnector")
            .field("target", &self.target)
            .field("http", &self.http)
            .field("page_size", &self.page_size)
            .field("default_role", &self.default_role)
            .field("disable_strategy", &self.disable_strategy)
            .finish_non_exhaustive()
    }
}

impl DigicertConnector {
    /// Builds the connector of target `name`: resolves `api_key` now, and sets up the HTTP
    /// client. Fails (class `Permanent`) when the key is missing or unresolvable, or the client
    /// cannot be built.
    pub fn new(name: &str, config: &TargetConfig) -> Result<Self, ConnectorError> {
        let spec = config.api_key.as_ref().ok_or_else(|| {
            ConnectorError::config(
                name,
                "api_key is not set (a digicert target needs one, e.g. api_key = { env = \
                 \"DIGICERT_API_KEY\" })",
            )
        })?;
        let key = spec
            .resolve()
            .map_err(|err| ConnectorError::config(name, format!("api_key: {err}")))?;
        let header = config
            .api_key_header
            .as_deref()
            .unwrap_or(DEFAULT_API_KEY_HEADER);
        let credential = Arc::new(StaticHeader::new(name, header, key)?);
        let http = HttpClient::new(name, config, client_defaults(), credential)?;
        let templates = TemplateSet::new(name, Escape::Json, &TEMPLATES, &config.templates)
            .map_err(|errors| {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                ConnectorError::config(name, text.join("; "))
            })?;
        let default_role = config
            .default_role
            .clone()
            .unwrap_or_else(|| DEFAULT_ROLE.to_string());
        let disable_strategy = config.disable_strategy.unwrap_or_default();
        Ok(Self {
            target: name.to_string(),
            http,
            page_size: config.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1),
            capabilities: capabilities(disable_strategy),
            templates,
            default_role,
            disable_strategy,
        })
    }

    /// Creates the user of `request` (`POST /user`, body from the `create_account`
    /// template). Needs the attributes `firstname`, `lastname` and `email`; the role is the
    /// request's `role` entitlement, else `default_role`; `container_id` (an attribute) places
    /// the user in that container.
    ///
    /// Returns `Done` with the new id (the 201's `id`). When DigiCert answers that the
    /// username is a duplicate, the existing user is looked up: `AlreadyDone` with its id if
    /// its email is the task's (case-insensitive), else `Permanent` "username X taken by
    /// account id N".
    pub async fn create_account(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        if request.account_name.trim().is_empty() {
            return Err(self.refused(None, "create_account needs a username"));
        }
        let missing: Vec<&str> = REQUIRED_ON_CREATE
            .into_iter()
            .filter(|key| match request.attributes.get(*key) {
                None | Some(Value::Null) => true,
                Some(Value::String(text)) => text.trim().is_empty(),
                Some(_) => false,
            })
            .collect();
        if !missing.is_empty() {
            return Err(self.refused(
                None,
                format!(
                    "create_account needs the attribute(s) {} (DigiCert requires a first \
                     name, a last name and an email)",
                    missing.join(", ")
                ),
            ));
        }
        if let Some(container) = request.attributes.get("container_id") {
            if !container.is_null() && numeric(container).is_none() {
                return Err(self.refused(
                    None,
                    format!("attribute container_id must be a DigiCert container id (a number), not {container}"),
                ));
            }
        }
        let (role, role_name) = match &request.entitlement {
            Some((kind, id)) if kind.eq_ignore_ascii_case(ROLE) => {
                (id.as_str(), request.entitlement_name.as_deref())
            }
            Some((kind, _)) => {
                return Err(self.refused(
                    None,
                    format!(
                        "create_account takes a {ROLE} entitlement, not `{kind}` (give the \
                         container as the attribute container_id)"
                    ),
                ))
            }
            None => (self.default_role.as_str(), None),
        };
        self.role_number(role)?;
        let context = TemplateContext::from_request(&self.target, request)
            .with_entitlement(ROLE, role, role_name);
        let body = self
            .templates
            .render("create_account", &context)
            .map_err(|err| self.template_failed(err))?;
        let username = body
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or(&request.account_name)
            .to_string();
        let email = body
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_string);
        let url = self.http.url(&["user"], &[])?;
        match self.http.send(Method::POST, url, Some(&body)).await {
            Ok(response) => {
                let created: Created = self.http.parse_json("POST /user", &response.body)?;
                Ok(ProvisionOutcome::Done {
                    account_id: Some(created.id.to_string()),
                })
            }
            Err(err) if is_duplicate(&err) => {
                self.resolve_duplicate(&username, email.as_deref(), err)
                    .await
            }
            Err(err) => Err(err),
        }
    }

    /// Changes user `account_id` with the `update_account` template's fields: reads the
    /// user, merges the changes and `PUT`s the whole user back (PUT replaces: every field
    /// read is carried over). `AlreadyDone` when every value is already in place.
    pub async fn update_account(
        &self,
        account_id: &str,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let context = TemplateContext::from_request(&self.target, request);
        let changes = self
            .templates
            .render("update_account", &context)
            .and_then(|body| expect_object(&self.target, "update_account", body))
            .map_err(|err| self.template_failed(err))?;
        if changes.is_empty() {
            return Err(self.refused(
                None,
                "update_account changes firstname, lastname, email, title, phonenumber on \
                 DigiCert; the task sets none of them",
            ));
        }
        let current = self.user(account_id).await?;
        let mut body = replacement(&current);
        let mut changed = false;
        for (field, value) in changes {
            if body.get(&field) != Some(&value) {
                changed = true;
                body.insert(field, value);
            }
        }
        if !changed {
            return Ok(ProvisionOutcome::AlreadyDone {
                account_id: Some(account_id.to_string()),
            });
        }
        let url = self.http.url(&["user", account_id], &[])?;
        self.http
            .send(Method::PUT, url, Some(&Value::Object(body)))
            .await?;
        Ok(ProvisionOutcome::Done {
            account_id: Some(account_id.to_string()),
        })
    }

    /// Deletes user `account_id` (`DELETE /user/{id}`). A 404 (already gone) is
    /// `AlreadyDone`.
    pub async fn remove_account(
        &self,
        account_id: &str,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let url = self.http.url(&["user", account_id], &[])?;
        match self.http.send(Method::DELETE, url, None).await {
            Ok(_) => Ok(ProvisionOutcome::Done { account_id: None }),
            Err(err) if is_not_found(&err) => {
                Ok(ProvisionOutcome::AlreadyDone { account_id: None })
            }
            Err(err) => Err(err),
        }
    }

    /// Gives user `account_id` role `role_id`: reads the user and `PUT`s the whole role
    /// list with it (`PUT /user/{id}/role`). A role already held is `AlreadyDone`.
    pub async fn add_role(
        &self,
        account_id: &str,
        role_id: &str,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let role = self.role_number(role_id)?;
        let user = self.user(account_id).await?;
        let mut roles = role_ids(&user);
        if roles.iter().any(|held| held.to_string() == role_id.trim()) {
            return Ok(ProvisionOutcome::AlreadyDone { account_id: None });
        }
        roles.push(NativeId::Number(role));
        self.set_roles(account_id, &roles).await
    }

    /// Takes role `role_id` from user `account_id`: reads the user and `PUT`s the whole role
    /// list without it. A role not held is `AlreadyDone`; the user's last role is refused
    /// (`Permanent`: a DigiCert user needs at least one).
    pub async fn remove_role(
        &self,
        account_id: &str,
        role_id: &str,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let user = self.user(account_id).await?;
        let held = role_ids(&user);
        let wanted = role_id.trim();
        if !held.iter().any(|role| role.to_string() == wanted) {
            return Ok(ProvisionOutcome::AlreadyDone { account_id: None });
        }
        let rest: Vec<NativeId> = held
            .into_iter()
            .filter(|role| role.to_string() != wanted)
            .collect();
        if rest.is_empty() {
            return Err(self.refused(
                None,
                format!(
                    "cannot remove role {wanted} from user {account_id}: it is the user's last \
                     role and a DigiCert user needs at least one (add another role first)"
                ),
            ));
        }
        self.set_roles(account_id, &rest).await
    }

    /// Moves user `account_id` to container `container_id`: reads the user and `PUT`s it
    /// whole with the new container. Already there is `AlreadyDone`.
    pub async fn move_to_container(
        &self,
        account_id: &str,
        container_id: &str,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let container = container_id.trim().parse::<u64>().map_err(|_| {
            self.refused(
                None,
                format!("container id `{container_id}` is not a DigiCert container id (a number)"),
            )
        })?;
        let current = self.user(account_id).await?;
        let mut body = replacement(&current);
        let target = json!({ "id": container });
        if body.get("container") == Some(&target) {
            return Ok(ProvisionOutcome::AlreadyDone { account_id: None });
        }
        body.insert("container".to_string(), target);
        let url = self.http.url(&["user", account_id], &[])?;
        self.http
            .send(Method::PUT, url, Some(&Value::Object(body)))
            .await?;
        Ok(ProvisionOutcome::Done { account_id: None })
    }

    /// `PUT /user/{id}/role` with the whole list.
    async fn set_roles(
        &self,
        account_id: &str,
        roles: &[NativeId],
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let list: Vec<Value> = roles
            .iter()
            .map(|role| json!({ "id": role.as_json() }))
            .collect();
        let url = self.http.url(&["user", account_id, "role"], &[])?;
        self.http
            .send(Method::PUT, url, Some(&json!({ "access_roles": list })))
            .await?;
        Ok(ProvisionOutcome::Done { account_id: None })
    }

    /// `GET /user/{id}`: the user object.
    async fn user(&self, account_id: &str) -> Result<Map<String, Value>, ConnectorError> {
        let url = self.http.url(&["user", account_id], &[])?;
        match self.http.get_json::<Value>(url).await? {
            Value::Object(user) => Ok(user),
            _ => Err(ConnectorError::malformed(
                &self.target,
                format!("the response to GET /user/{account_id} is not a user object"),
            )),
        }
    }

    /// The user named `username` (case-insensitive), through `GET
    /// /user?filters[search]=…` (a substring search over names and emails), paging on.
    async fn find_user(&self, username: &str) -> Result<Option<Value>, ConnectorError> {
        let mut pager = OffsetPager::new(&self.target, "users by name", self.page_size);
        while let Some(request) = pager.next_request() {
            let url = self.http.url(
                &["user"],
                &[
                    ("filters[search]", username.to_string()),
                    ("offset", request.offset.to_string()),
                    ("limit", request.limit.to_string()),
                ],
            )?;
            let page: UsersPage = self.http.get_json(url).await?;
            let meta = page.page.unwrap_or_default();
            pager.record(PageInfo {
                items: page.users.len(),
                offset: meta.offset,
                limit: meta.limit,
                total: meta.total,
                first_key: first_id(&page.users),
            })?;
            let found = page.users.into_iter().find(|user| {
                user.get("username")
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.eq_ignore_ascii_case(username))
            });
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Decides a duplicate-username create: the same person (same email) is `AlreadyDone`,
    /// anyone else is `Permanent`.
    async fn resolve_duplicate(
        &self,
        username: &str,
        email: Option<&str>,
        original: ConnectorError,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let Some(existing) = self.find_user(username).await? else {
            // DigiCert says it is taken, yet no user has this name: keep its words.
            return Err(original);
        };
        let existing = map_user(&self.target, &existing)?;
        let same_email = match (email, existing.email.as_deref()) {
            (Some(wanted), Some(found)) => wanted.trim().eq_ignore_ascii_case(found.trim()),
            _ => false,
        };
        if same_email {
            tracing::info!(
                target = %self.target,
                account_id = %existing.id,
                "The user to create already exists with the task's email; counting it as done."
            );
            Ok(ProvisionOutcome::AlreadyDone {
                account_id: Some(existing.id),
            })
        } else {
            Err(self.refused(
                Some(400),
                format!("username {username} taken by account id {}", existing.id),
            ))
        }
    }

    /// A role id as the number DigiCert's bodies take.
    fn role_number(&self, role_id: &str) -> Result<i64, ConnectorError> {
        role_id.trim().parse::<u32>().map(i64::from).map_err(|_| {
            self.refused(
                None,
                format!("role id `{role_id}` is not a DigiCert access role id (a number)"),
            )
        })
    }

    /// A `Permanent` error about the task itself (bad input, or a decision of ours).
    fn refused(&self, status: Option<u16>, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Permanent {
            target: self.target.clone(),
            status,
            message: message.into(),
        }
    }

    /// A template that failed to render: `Permanent`, naming the template.
    fn template_failed(&self, err: TemplateError) -> ConnectorError {
        self.refused(None, err.to_string())
    }

    /// The `Unsupported` error for `request`.
    fn unsupported(&self, request: &ProvisionRequest) -> ConnectorError {
        ConnectorError::Unsupported {
            target: self.target.clone(),
            operation: request.operation.to_string(),
            reason: unsupported_reason(
                request.operation,
                request.entitlement.as_ref().map(|(kind, _)| kind.as_str()),
            ),
        }
    }

    /// The account id a task needs, or a clear error.
    fn account_id<'r>(&self, request: &'r ProvisionRequest) -> Result<&'r str, ConnectorError> {
        request
            .account_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| {
                self.refused(
                    None,
                    format!(
                        "{} of {} needs the account's DigiCert id, which is not known (import \
                         the accounts, or wait for its create_account task)",
                        request.operation, request.account_name
                    ),
                )
            })
    }

    /// The users, page by page, each page turned into records by `map` (accounts and grants
    /// both read the users). The stream ends at the first error, whether reading or mapping.
    fn user_pages<T: Send + 'static>(
        &self,
        map: fn(&str, &[Value]) -> Result<Vec<T>, ConnectorError>,
    ) -> PageStream<'_, T> {
        let pager = OffsetPager::new(&self.target, "users", self.page_size);
        futures::stream::try_unfold(pager, move |mut pager| async move {
            let Some(request) = pager.next_request() else {
                return Ok(None);
            };
            let url = self.http.url(
                &["user"],
                &[
                    ("offset", request.offset.to_string()),
                    ("limit", request.limit.to_string()),
                ],
            )?;
            let page: UsersPage = self.http.get_json(url).await?;
            let meta = page.page.unwrap_or_default();
            pager.record(PageInfo {
                items: page.users.len(),
                offset: meta.offset,
                limit: meta.limit,
                total: meta.total,
                first_key: first_id(&page.users),
            })?;
            Ok(Some((map(&self.target, &page.users)?, pager)))
        })
        .boxed()
    }

    /// `GET /container/{id}/role`.
    async fn container_roles(&self, container_id: &str) -> Result<Vec<Value>, ConnectorError> {
        let url = self.http.url(&["container", container_id, "role"], &[])?;
        let roles: RolesBody = self.http.get_json(url).await?;
        Ok(roles.access_roles)
    }
}

/// Where the entitlement stream is.
enum EntitlementState {
    Containers,
    Roles {
        containers: VecDeque<String>,
        seen: HashSet<String>,
    },
}

#[async_trait]
impl Connector for DigicertConnector {
    fn target(&self) -> &str {
        &self.target
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn test_connection(&self) -> Result<(), ConnectorError> {
        let url = self.http.url(
            &["user"],
            &[("offset", "0".to_string()), ("limit", "1".to_string())],
        )?;
        let _: UsersPage = self.http.get_json(url).await?;
        Ok(())
    }

    fn accounts(&self) -> PageStream<'_, AccountRecord> {
        self.user_pages(|target, users| users.iter().map(|user| map_user(target, user)).collect())
    }

    fn entitlements(&self) -> PageStream<'_, EntitlementRecord> {
        futures::stream::try_unfold(
            Some(EntitlementState::Containers),
            move |state| async move {
                match state {
                    None => Ok(None),
                    Some(EntitlementState::Containers) => {
                        let url = self.http.url(&["container"], &[])?;
                        let body: ContainersBody = self.http.get_json(url).await?;
                        let records = body
                            .containers
                            .iter()
                            .map(|container| map_container(&self.target, container))
                            .collect::<Result<Vec<_>, _>>()?;
                        let top_level = records
                            .iter()
                            .filter(|record| is_top_level(&record.attributes))
                            .map(|record| record.id.clone())
                            .collect();
                        let next = EntitlementState::Roles {
                            containers: top_level,
                            seen: HashSet::new(),
                        };
                        Ok(Some((records, Some(next))))
                    }
                    Some(EntitlementState::Roles {
                        mut containers,
                        mut seen,
                    }) => {
                        while let Some(container_id) = containers.pop_front() {
                            let roles = self.container_roles(&container_id).await?;
                            let new: Vec<EntitlementRecord> = map_roles(&self.target, &roles)?
                                .into_iter()
                                .filter(|role| seen.insert(role.id.clone()))
                                .collect();
                            if !new.is_empty() {
                                return Ok(Some((
                                    new,
                                    Some(EntitlementState::Roles { containers, seen }),
                                )));
                            }
                        }
                        Ok(None)
                    }
                }
            },
        )
        .boxed()
    }

    fn grants(&self) -> PageStream<'_, GrantRecord> {
        self.user_pages(|target, users| {
            let mut grants = Vec::new();
            for user in users {
                grants.extend(map_user_grants(target, user)?);
            }
            Ok(grants)
        })
    }

    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let kind = request.entitlement.as_ref().map(|(kind, _)| kind.as_str());
        if matches!(
            request.operation,
            Operation::AddAccess | Operation::RemoveAccess
        ) && kind.is_none()
        {
            return Err(self.refused(
                None,
                format!(
                    "{} needs an entitlement ({ROLE}:ID or {CONTAINER}:ID)",
                    request.operation
                ),
            ));
        }
        let create = request.operation == Operation::CreateAccount;
        // Create takes its role from the entitlement; access operations are declared per type.
        if !create && !self.capabilities.supports(request.operation, kind) {
            return Err(self.unsupported(request));
        }
        let entitlement_id = request
            .entitlement
            .as_ref()
            .map(|(_, id)| id.as_str())
            .unwrap_or_default();
        match request.operation {
            Operation::CreateAccount => self.create_account(request).await,
            Operation::UpdateAccount => {
                self.update_account(self.account_id(request)?, request)
                    .await
            }
            Operation::RemoveAccount => self.remove_account(self.account_id(request)?).await,
            Operation::DisableAccount if self.disable_strategy == DisableStrategy::Delete => {
                self.remove_account(self.account_id(request)?).await
            }
            Operation::AddAccess if kind.is_some_and(|k| k.eq_ignore_ascii_case(ROLE)) => {
                self.add_role(self.account_id(request)?, entitlement_id)
                    .await
            }
            Operation::RemoveAccess if kind.is_some_and(|k| k.eq_ignore_ascii_case(ROLE)) => {
                self.remove_role(self.account_id(request)?, entitlement_id)
                    .await
            }
            Operation::AddAccess if kind.is_some_and(|k| k.eq_ignore_ascii_case(CONTAINER)) => {
                self.move_to_container(self.account_id(request)?, entitlement_id)
                    .await
            }
            _ => Err(self.unsupported(request)),
        }
    }

    fn unsupported_reason(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        unsupported_reason(operation, entitlement_type)
    }

    async fn lookup_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        match self.find_user(name).await? {
            Some(user) => Ok(Some(map_user(&self.target, &user)?)),
            None => Ok(None),
        }
    }
}

/// The 201 of `POST /user`: `{"id": N}`.
#[derive(Deserialize)]
struct Created {
    id: NativeId,
}

/// The body of a full `PUT /user/{id}` that changes nothing: the writable fields of `user`
/// as read (nulls left out), `container` as `{id}` and `access_roles` as `[{id}]`.
fn replacement(user: &Map<String, Value>) -> Map<String, Value> {
    let mut body = Map::new();
    for field in REPLACED_FIELDS {
        if let Some(value) = user.get(field).filter(|value| !value.is_null()) {
            body.insert(field.to_string(), value.clone());
        }
    }
    if let Some(id) = user
        .get("container")
        .and_then(|container| container.get("id"))
    {
        body.insert("container".to_string(), json!({ "id": id }));
    }
    if let Some(Value::Array(roles)) = user.get("access_roles") {
        let roles: Vec<Value> = roles
            .iter()
            .filter_map(|role| role.get("id"))
            .map(|id| json!({ "id": id }))
            .collect();
        body.insert("access_roles".to_string(), Value::Array(roles));
    }
    body
}

/// The ids of a user's `access_roles`.
fn role_ids(user: &Map<String, Value>) -> Vec<NativeId> {
    match user.get("access_roles") {
        Some(Value::Array(roles)) => roles
            .iter()
            .filter_map(|role| role.get("id"))
            .filter_map(|id| serde_json::from_value(id.clone()).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// A whole number, given as a number or as digits.
fn numeric(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Whether DigiCert refused a create as a duplicate username: a 400 whose errors say so.
fn is_duplicate(err: &ConnectorError) -> bool {
    matches!(
        err,
        ConnectorError::Permanent { status: Some(400), message, .. }
            if message.to_ascii_lowercase().contains("duplicate")
    )
}

/// Whether the target answered 404.
fn is_not_found(err: &ConnectorError) -> bool {
    matches!(
        err,
        ConnectorError::Permanent {
            status: Some(404),
            ..
        }
    )
}

/// `GET /user`: `{"users":[…],"page":{"total":T,"limit":M,"offset":N}}`.
#[derive(Deserialize)]
struct UsersPage {
    users: Vec<Value>,
    #[serde(default)]
    page: Option<PageMeta>,
}

/// The `page` object of a DigiCert listing.
#[derive(Deserialize, Default)]
struct PageMeta {
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    offset: Option<u64>,
}

/// `GET /container`: `{"containers":[…]}`.
#[derive(Deserialize)]
struct ContainersBody {
    containers: Vec<Value>,
}

/// `GET /container/{id}/role`: `{"access_roles":[{id,name}]}`.
#[derive(Deserialize)]
struct RolesBody {
    #[serde(default)]
    access_roles: Vec<Value>,
}

/// The user object, as far as the adapter reads it.
#[derive(Deserialize)]
struct User {
    id: NativeId,
    username: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    job_title: Option<String>,
    #[serde(default)]
    telephone: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    container: Option<ContainerRef>,
    #[serde(default)]
    access_roles: Option<Vec<Role>>,
    #[serde(default, rename = "type")]
    user_type: Option<String>,
}

/// A user's `container`.
#[derive(Deserialize)]
struct ContainerRef {
    id: NativeId,
    #[serde(default)]
    name: Option<String>,
}

/// An access role `{id, name}`.
#[derive(Deserialize)]
struct Role {
    id: NativeId,
    #[serde(default)]
    name: Option<String>,
}

/// A container of `GET /container`.
#[derive(Deserialize)]
struct Container {
    id: NativeId,
    name: String,
    #[serde(default)]
    public_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parent_id: Option<NativeId>,
    #[serde(default)]
    template_id: Option<NativeId>,
    #[serde(default)]
    is_active: Option<bool>,
}

/// A DigiCert user → an account record.
fn map_user(target: &str, value: &Value) -> Result<AccountRecord, ConnectorError> {
    let user: User = parse(target, "user", value)?;
    let status = match user.status.as_deref() {
        Some(text) if text.eq_ignore_ascii_case("active") => AccountStatus::Active,
        Some(text) if text.eq_ignore_ascii_case("inactive") => AccountStatus::Inactive,
        other => {
            return Err(ConnectorError::malformed(
                target,
                format!(
                    "user {} ({}) has status {} (expected active or inactive)",
                    user.id,
                    user.username,
                    other
                        .map(|text| format!("`{text}`"))
                        .unwrap_or_else(|| "missing".to_string())
                ),
            ))
        }
    };
    let display_name = display_name(user.first_name.as_deref(), user.last_name.as_deref());
    let mut attributes = Attributes::new();
    put(
        &mut attributes,
        "first_name",
        user.first_name.map(Value::from),
    );
    put(
        &mut attributes,
        "last_name",
        user.last_name.map(Value::from),
    );
    put(
        &mut attributes,
        "job_title",
        user.job_title.map(Value::from),
    );
    put(
        &mut attributes,
        "telephone",
        user.telephone.map(Value::from),
    );
    if let Some(container) = &user.container {
        put(
            &mut attributes,
            "container_id",
            Some(container.id.as_json()),
        );
        put(
            &mut attributes,
            "container_name",
            container.name.clone().map(Value::from),
        );
    }
    if let Some(roles) = &user.access_roles {
        let roles: Vec<Value> = roles
            .iter()
            .map(|role| json!({ "id": role.id.as_json(), "name": role.name }))
            .collect();
        put(&mut attributes, "access_roles", Some(Value::Array(roles)));
    }
    put(&mut attributes, "type", user.user_type.map(Value::from));
    Ok(AccountRecord {
        id: user.id.to_string(),
        name: user.username,
        display_name,
        email: non_empty(user.email.as_deref()),
        status,
        attributes,
    })
}

/// A DigiCert user → its grants: one `role` grant per access role, one `container` grant.
fn map_user_grants(target: &str, value: &Value) -> Result<Vec<GrantRecord>, ConnectorError> {
    let user: User = parse(target, "user", value)?;
    let account_id = user.id.to_string();
    let mut grants: Vec<GrantRecord> = user
        .access_roles
        .unwrap_or_default()
        .into_iter()
        .map(|role| GrantRecord {
            account_id: account_id.clone(),
            entitlement_type: ROLE.to_string(),
            entitlement_id: role.id.to_string(),
            entitlement_name: role.name,
        })
        .collect();
    if let Some(container) = user.container {
        grants.push(GrantRecord {
            account_id,
            entitlement_type: CONTAINER.to_string(),
            entitlement_id: container.id.to_string(),
            entitlement_name: container.name,
        });
    }
    Ok(grants)
}

/// A container of `GET /container` → a `container` entitlement.
fn map_container(target: &str, value: &Value) -> Result<EntitlementRecord, ConnectorError> {
    let container: Container = parse(target, "container", value)?;
    let mut attributes = Attributes::new();
    put(
        &mut attributes,
        "public_id",
        container.public_id.map(Value::from),
    );
    put(
        &mut attributes,
        "description",
        container.description.map(Value::from),
    );
    put(
        &mut attributes,
        "parent_id",
        container.parent_id.as_ref().map(NativeId::as_json),
    );
    put(
        &mut attributes,
        "template_id",
        container.template_id.as_ref().map(NativeId::as_json),
    );
    put(
        &mut attributes,
        "is_active",
        container.is_active.map(Value::from),
    );
    Ok(EntitlementRecord {
        entitlement_type: CONTAINER.to_string(),
        id: container.id.to_string(),
        name: container.name,
        attributes,
    })
}

/// Whether a container record is top-level (`parent_id` 0 or absent).
fn is_top_level(attributes: &Attributes) -> bool {
    match attributes.get("parent_id") {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => s.is_empty() || s == "0",
        Some(_) => false,
    }
}

/// The `access_roles` of `GET /container/{id}/role` → `role` entitlements.
fn map_roles(target: &str, roles: &[Value]) -> Result<Vec<EntitlementRecord>, ConnectorError> {
    roles
        .iter()
        .map(|value| {
            let role: Role = parse(target, "access role", value)?;
            let id = role.id.to_string();
            Ok(EntitlementRecord {
                entitlement_type: ROLE.to_string(),
                name: role.name.unwrap_or_else(|| id.clone()),
                id,
                attributes: Attributes::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use futures::TryStreamExt;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::connector::ErrorClass;
    use crate::model::Operation;

    const KEY: &str = "dc-key-UNMISTAKABLE-4b1d";

    /// The user object of the API sheet, as recorded.
    fn sheet_user() -> Value {
        json!({ "id": 125038, "username": "jane.doe", "account_id": 1234,
          "first_name": "Jane", "last_name": "Doe", "email": "jane.doe@example.com",
          "job_title": "Engineer", "telephone": "555-0100", "status": "active",
          "container": { "id": 5, "public_id": "abc", "name": "Company", "parent_id": 0,
                         "template_id": 4, "ekey": "xyz", "is_active": true },
          "access_roles": [ { "id": 1, "name": "Administrator" } ],
          "type": "standard", "has_container_assignments": false })
    }

    #[test]
    fn maps_the_sheets_user() {
        let record = map_user("dc", &sheet_user()).unwrap();
        assert_eq!(record.id, "125038");
        assert_eq!(record.name, "jane.doe");
        assert_eq!(record.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(record.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(record.status, AccountStatus::Active);
        assert_eq!(
            Value::Object(record.attributes),
            json!({
                "first_name": "Jane", "last_name": "Doe", "job_title": "Engineer",
                "telephone": "555-0100", "container_id": 5, "container_name": "Company",
                "access_roles": [{ "id": 1, "name": "Administrator" }], "type": "standard"
            })
        );
    }

    #[test]
    fn maps_a_user_with_only_the_required_fields() {
        let record = map_user(
            "dc",
            &json!({ "id": 7, "username": "svc", "status": "inactive" }),
        )
        .unwrap();
        assert_eq!(record.id, "7");
        assert_eq!(record.status, AccountStatus::Inactive);
        assert_eq!(record.display_name, None);
        assert_eq!(record.email, None);
        assert!(record.attributes.is_empty(), "{:?}", record.attributes);
        assert!(
            map_user_grants("dc", &json!({ "id": 7, "username": "svc" }))
                .unwrap()
                .is_empty()
        );

        let record = map_user(
            "dc",
            &json!({ "id": 8, "username": "x", "status": "active", "first_name": " Ann ",
                     "last_name": null, "email": "", "access_roles": null }),
        )
        .unwrap();
        assert_eq!(record.display_name.as_deref(), Some("Ann"));
        assert_eq!(record.email, None);
    }

    #[test]
    fn a_bad_or_missing_status_is_malformed_and_named() {
        let mut user = sheet_user();
        user["status"] = json!("pending");
        let err = map_user("dc", &user).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let text = err.to_string();
        assert!(
            text.contains("malformed response")
                && text.contains("`pending`")
                && text.contains("125038"),
            "{text}"
        );
        user.as_object_mut().unwrap().remove("status");
        assert!(map_user("dc", &user)
            .unwrap_err()
            .to_string()
            .contains("status missing"));
    }

    #[test]
    fn a_user_without_a_username_is_malformed_and_named() {
        let err = map_user("dc", &json!({ "id": 9, "status": "active" })).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cannot read a user (id 9)") && text.contains("username"),
            "{text}"
        );
    }

    #[test]
    fn maps_the_sheets_user_to_grants() {
        let grants = map_user_grants("dc", &sheet_user()).unwrap();
        assert_eq!(
            grants,
            vec![
                GrantRecord {
                    account_id: "125038".into(),
                    entitlement_type: "role".into(),
                    entitlement_id: "1".into(),
                    entitlement_name: Some("Administrator".into()),
                },
                GrantRecord {
                    account_id: "125038".into(),
                    entitlement_type: "container".into(),
                    entitlement_id: "5".into(),
                    entitlement_name: Some("Company".into()),
                },
            ]
        );
    }

    #[test]
    fn maps_containers_and_roles() {
        let record = map_container(
            "dc",
            &json!({ "id": 5, "public_id": "abc", "name": "Company", "description": "HQ",
                     "parent_id": 0, "template_id": 4, "is_active": true, "ekey": "x" }),
        )
        .unwrap();
        assert_eq!(
            (
                record.entitlement_type.as_str(),
                record.id.as_str(),
                record.name.as_str()
            ),
            ("container", "5", "Company")
        );
        assert_eq!(
            Value::Object(record.attributes.clone()),
            json!({ "public_id": "abc", "description": "HQ", "parent_id": 0, "template_id": 4, "is_active": true })
        );
        assert!(is_top_level(&record.attributes));
        let child =
            map_container("dc", &json!({ "id": 6, "name": "Sub", "parent_id": 5 })).unwrap();
        assert!(!is_top_level(&child.attributes));
        assert!(is_top_level(
            &map_container("dc", &json!({ "id": 7, "name": "Bare" }))
                .unwrap()
                .attributes
        ));
        assert!(map_container("dc", &json!({ "id": 8 }))
            .unwrap_err()
            .to_string()
            .contains("cannot read a container (id 8)"));

        let roles = map_roles(
            "dc",
            &[
                json!({ "id": 1, "name": "Administrator" }),
                json!({ "id": 5 }),
            ],
        )
        .unwrap();
        assert_eq!(roles.len(), 2);
        assert_eq!(
            (
                roles[0].entitlement_type.as_str(),
                roles[0].id.as_str(),
                roles[0].name.as_str()
            ),
            ("role", "1", "Administrator")
        );
        assert_eq!(roles[1].name, "5");
    }

    #[test]
    fn reads_digicert_error_bodies() {
        let body = br#"{"errors":[{"code":"not_found","message":"User not found."},{"code":"x"}]}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("not_found: User not found.; x")
        );
        assert_eq!(error_message(b"<html>"), None);
        assert_eq!(error_message(br#"{"errors":[]}"#), None);
    }

    /// A target config pointing at `base`, with no pacing and tiny backoffs.
    fn config(base: &str, extra: &str) -> TargetConfig {
        toml::from_str(&format!(
            "kind = \"digicert\"\nbase_url = \"{base}/services/v2\"\napi_key = \"{KEY}\"\n\
             rate_limit = []\n\
             read_retry = {{ max_attempts = 2, initial_backoff = \"1ms\", max_backoff = \"5ms\" }}\n{extra}"
        ))
        .unwrap()
    }

    fn user(id: u64) -> Value {
        json!({ "id": id, "username": format!("user{id}"), "first_name": "U", "last_name": format!("{id}"),
                "email": format!("user{id}@example.com"), "status": if id % 2 == 0 { "active" } else { "inactive" },
                "container": { "id": 5, "name": "Company" },
                "access_roles": [{ "id": 1 + id % 2, "name": if id % 2 == 0 { "Administrator" } else { "Limited User" } }] })
    }

    /// `GET /user` over `total` users, computing each page from the query.
    struct Users {
        total: u64,
        /// The server's own page-size cap (echoed in `page.limit`).
        cap: u64,
        /// Ignore the offset (always serve the first page, echoing offset 0).
        stuck: bool,
        /// Add a user after each request.
        growing: bool,
        served: AtomicU64,
    }

    impl Users {
        fn new(total: u64) -> Self {
            Self {
                total,
                cap: 1000,
                stuck: false,
                growing: false,
                served: AtomicU64::new(0),
            }
        }
    }

    impl wiremock::Respond for Users {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let query = |name: &str| -> u64 {
                request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap()
            };
            let served = self.served.fetch_add(1, Ordering::SeqCst);
            let total = if self.growing {
                self.total + served
            } else {
                self.total
            };
            let offset = if self.stuck { 0 } else { query("offset") };
            let limit = query("limit").min(self.cap);
            let users: Vec<Value> = (offset..(offset + limit).min(total))
                .map(|i| user(i + 1))
                .collect();
            ResponseTemplate::new(200).set_body_json(
                json!({ "users": users, "page": { "total": total, "limit": limit, "offset": offset } }),
            )
        }
    }

    async fn server_with(users: Users) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/services/v2/user"))
            .and(header("X-DC-DEVKEY", KEY))
            .respond_with(users)
            .mount(&server)
            .await;
        server
    }

    fn user_requests(requests: &[Request]) -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.url.path() == "/services/v2/user")
            .map(|r| r.url.query().unwrap_or("").to_string())
            .collect()
    }

    #[tokio::test]
    async fn pages_through_2500_users() {
        let server = server_with(Users::new(2500)).await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let pages: Vec<Vec<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let ids: HashSet<String> = pages.iter().flatten().map(|a| a.id.clone()).collect();
        assert_eq!(ids.len(), 2500);
        assert_eq!(pages[2][499].name, "user2500");
        assert_eq!(
            user_requests(&server.received_requests().await.unwrap()),
            [
                "offset=0&limit=1000",
                "offset=1000&limit=1000",
                "offset=2000&limit=1000"
            ]
        );
    }

    #[tokio::test]
    async fn follows_a_server_that_clamps_the_page_size() {
        let server = server_with(Users {
            cap: 400,
            ..Users::new(2500)
        })
        .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let pages: Vec<Vec<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
        assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), 2500);
        assert_eq!(pages.len(), 7);
        let requests = user_requests(&server.received_requests().await.unwrap());
        assert_eq!(requests[1], "offset=400&limit=1000");
    }

    #[tokio::test]
    async fn a_page_that_ignores_the_offset_fails_rather_than_loops() {
        let server = server_with(Users {
            stuck: true,
            ..Users::new(2500)
        })
        .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let err = connector
            .accounts()
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.to_string()
                .contains("asked for offset 1000 but the target returned offset 0"),
            "{err}"
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_total_that_changes_mid_read_fails() {
        let server = server_with(Users {
            growing: true,
            ..Users::new(2500)
        })
        .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let mut stream = connector.grants();
        let first = stream.try_next().await.unwrap().unwrap();
        assert_eq!(first.len(), 2000, "a role and a container per user");
        let err = stream.try_next().await.unwrap_err();
        assert!(
            err.to_string().contains("total changed from 2500 to 2501"),
            "{err}"
        );
        assert!(
            stream.try_next().await.unwrap().is_none(),
            "the stream ends after an error"
        );
    }

    #[tokio::test]
    async fn a_bad_user_fails_its_page() {
        let server = MockServer::start().await;
        let mut bad = user(2);
        bad["status"] = json!("locked");
        Mock::given(path("/services/v2/user"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({ "users": [user(1), bad], "page": { "total": 4, "limit": 2, "offset": 0 } }),
            ))
            .mount(&server)
            .await;
        // Two pages of two: the first is bad, and nothing is read after it.
        let connector =
            DigicertConnector::new("dc", &config(&server.uri(), "page_size = 2")).unwrap();
        let mut stream = connector.accounts();
        let err = stream.try_next().await.unwrap_err();
        assert!(err.to_string().contains("`locked`"), "{err}");
        assert!(
            stream.next().await.is_none(),
            "the stream ends after an error"
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn reads_containers_and_deduplicated_roles() {
        let server = MockServer::start().await;
        Mock::given(path("/services/v2/container"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "containers": [
                    { "id": 5, "name": "Company", "parent_id": 0, "is_active": true },
                    { "id": 6, "name": "Division", "parent_id": 5, "is_active": true },
                    { "id": 9, "name": "Other company", "is_active": false },
                ]})),
            )
            .mount(&server)
            .await;
        Mock::given(path("/services/v2/container/5/role"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "access_roles": [
                { "id": 1, "name": "Administrator" }, { "id": 2, "name": "Limited User" } ]})),
            )
            .mount(&server)
            .await;
        Mock::given(path("/services/v2/container/9/role"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "access_roles": [
                { "id": 2, "name": "Limited User" }, { "id": 7, "name": "Custom" } ]})),
            )
            .mount(&server)
            .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let records: Vec<EntitlementRecord> = connector
            .entitlements()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        let keys: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.entitlement_type.clone(), r.id.clone()))
            .collect();
        let want: Vec<(String, String)> = [
            ("container", "5"),
            ("container", "6"),
            ("container", "9"),
            ("role", "1"),
            ("role", "2"),
            ("role", "7"),
        ]
        .iter()
        .map(|(t, i)| (t.to_string(), i.to_string()))
        .collect();
        assert_eq!(keys, want);
        let paths: Vec<String> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| r.url.path().to_string())
            .collect();
        assert!(
            !paths.contains(&"/services/v2/container/6/role".to_string()),
            "{paths:?}"
        );
    }

    #[tokio::test]
    async fn a_failing_role_read_fails_the_entitlement_stream() {
        let server = MockServer::start().await;
        Mock::given(path("/services/v2/container"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "containers": [{ "id": 5, "name": "C" }] })),
            )
            .mount(&server)
            .await;
        Mock::given(path("/services/v2/container/5/role"))
            .respond_with(ResponseTemplate::new(403).set_body_json(
                json!({ "errors": [{ "code": "access_denied|missing_permission", "message": "No." }] }),
            ))
            .mount(&server)
            .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let err = connector
            .entitlements()
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Forbidden);
        assert!(
            err.to_string()
                .contains("access_denied|missing_permission: No."),
            "{err}"
        );
    }

    #[tokio::test]
    async fn test_connection_reads_one_user_with_the_key() {
        let server = server_with(Users::new(3)).await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        connector.test_connection().await.unwrap();
        assert_eq!(
            user_requests(&server.received_requests().await.unwrap()),
            ["offset=0&limit=1"]
        );
    }

    #[tokio::test]
    async fn a_rejected_key_is_an_auth_error_that_never_shows_the_key() {
        let server = MockServer::start().await;
        Mock::given(path("/services/v2/user"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({ "errors": [{ "code": "invalid_api_key", "message": format!("The API key {KEY} is invalid.") }] }),
            ))
            .mount(&server)
            .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let err = connector.test_connection().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth);
        assert!(err.to_string().contains("invalid_api_key"), "{err}");
        for text in [
            err.to_string(),
            format!("{err:?}"),
            format!("{connector:?}"),
        ] {
            assert!(!text.contains(KEY), "{text}");
        }
    }

    #[tokio::test]
    async fn the_key_header_name_is_configurable() {
        let server = MockServer::start().await;
        Mock::given(path("/services/v2/user"))
            .and(header("x-api-key", KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "users": [] })))
            .mount(&server)
            .await;
        let connector = DigicertConnector::new(
            "dc",
            &config(&server.uri(), "api_key_header = \"x-api-key\""),
        )
        .unwrap();
        connector.test_connection().await.unwrap();
    }

    fn declared(connector: &DigicertConnector) -> Vec<(String, Option<String>)> {
        connector
            .capabilities()
            .operations
            .iter()
            .map(|c| (c.operation.to_string(), c.entitlement_type.clone()))
            .collect()
    }

    #[test]
    fn capabilities_follow_the_disable_strategy() {
        let connector = DigicertConnector::new("dc", &config("https://dc.example", "")).unwrap();
        assert_eq!(
            connector.capabilities().entitlement_types,
            ["role", "container"]
        );
        let role = Some("role".to_string());
        let container = Some("container".to_string());
        let mut want = vec![
            ("create_account".to_string(), None),
            ("update_account".to_string(), None),
            ("remove_account".to_string(), None),
            ("add_access".to_string(), container.clone()),
            ("add_access".to_string(), role.clone()),
            ("remove_access".to_string(), role.clone()),
        ];
        assert_eq!(declared(&connector), want);
        let caps = connector.capabilities();
        assert!(caps.supports(Operation::AddAccess, Some("Container")));
        assert!(!caps.supports(Operation::RemoveAccess, Some("container")));
        assert!(!caps.supports(Operation::DisableAccount, None));
        assert!(!caps.supports(Operation::EnableAccount, None));
        assert!(connector
            .unsupported_reason(Operation::DisableAccount, None)
            .contains("CertCentral has no enable/disable call"));
        assert!(connector
            .unsupported_reason(Operation::RemoveAccess, Some("container"))
            .contains("exactly one container"));

        let deleting = DigicertConnector::new(
            "dc",
            &config("https://dc.example", "disable_strategy = \"delete\""),
        )
        .unwrap();
        want.insert(2, ("disable_account".to_string(), None));
        assert_eq!(declared(&deleting), want);
        assert!(!deleting
            .capabilities()
            .supports(Operation::EnableAccount, None));
    }

    fn task(operation: Operation, account_id: Option<&str>, attributes: Value) -> ProvisionRequest {
        ProvisionRequest {
            operation,
            account_id: account_id.map(str::to_string),
            account_name: "jane.doe".into(),
            entitlement: None,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            entitlement_name: None,
            task_id: Some(9),
            request_id: None,
        }
    }

    fn access(operation: Operation, account_id: &str, kind: &str, id: &str) -> ProvisionRequest {
        ProvisionRequest {
            entitlement: Some((kind.into(), id.into())),
            ..task(operation, Some(account_id), json!({}))
        }
    }

    fn jane() -> Value {
        json!({ "firstname": "Jane", "lastname": "Doe", "email": "Jane.Doe@example.com",
                "title": "Engineer", "phonenumber": "555-0100", "department": "R&D" })
    }

    #[tokio::test]
    async fn create_posts_the_templated_body_and_reads_the_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/services/v2/user"))
            .and(header("X-DC-DEVKEY", KEY))
            .and(body_json(json!({
                "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
                "email": "Jane.Doe@example.com", "job_title": "Engineer", "telephone": "555-0100",
                "access_roles": [{ "id": 5 }]
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 1538858 })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/services/v2/user"))
            .and(body_json(json!({
                "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
                "email": "j@example.com", "container": { "id": 7 }, "access_roles": [{ "id": 3 }]
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 2 })))
            .expect(1)
            .mount(&server)
            .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let outcome = connector
            .provision(&task(Operation::CreateAccount, None, jane()))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::Done {
                account_id: Some("1538858".into())
            }
        );
        let with_role = ProvisionRequest {
            entitlement: Some(("role".into(), "3".into())),
            ..task(
                Operation::CreateAccount,
                None,
                json!({ "firstname": "Jane", "lastname": "Doe", "email": "j@example.com", "container_id": 7 }),
            )
        };
        assert_eq!(
            connector.provision(&with_role).await.unwrap(),
            ProvisionOutcome::Done {
                account_id: Some("2".into())
            }
        );
    }

    #[tokio::test]
    async fn create_refuses_bad_input_before_sending() {
        let server = MockServer::start().await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let err = connector
            .provision(&task(
                Operation::CreateAccount,
                None,
                json!({ "firstname": "Jane" }),
            ))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("create_account needs the attribute(s) lastname, email"),
            "{err}"
        );
        let mut attributes = jane();
        attributes["container_id"] = json!("top");
        let err = connector
            .provision(&task(Operation::CreateAccount, None, attributes))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("container_id"), "{err}");
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_template_override_shapes_the_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/services/v2/user"))
            .and(body_json(json!({
                "username": "jane.doe", "first_name": "Jane", "last_name": "Doe",
                "email": "Jane.Doe@example.com", "job_title": "R&D / 9",
                "access_roles": [{ "id": 5 }]
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 3 })))
            .expect(1)
            .mount(&server)
            .await;
        let template = r#"templates.create_account = '''
{"username": "${ account.name }", "first_name": "${ user.firstname }", "last_name": "${ user.lastname }",
 "email": "${ user.email }", "job_title": "${ user.department } / ${ task.id }",
 "access_roles": [{"id": ${ entitlementValue.entitlementID }}]}'''"#;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), template)).unwrap();
        connector
            .provision(&task(Operation::CreateAccount, None, jane()))
            .await
            .unwrap();
        let broken = DigicertConnector::new(
            "dc",
            &config(
                &server.uri(),
                "templates.create_account = '{\"u\": \"${ user.x'",
            ),
        )
        .unwrap_err();
        assert!(
            broken
                .to_string()
                .contains("targets.dc.templates.create_account"),
            "{broken}"
        );
    }

    #[tokio::test]
    async fn remove_deletes_and_counts_404_as_done() {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/services/v2/user/11"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/services/v2/user/12"))
            .respond_with(ResponseTemplate::new(404).set_body_json(
                json!({ "errors": [{ "code": "not_found", "message": "User not found." }] }),
            ))
            .mount(&server)
            .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        assert_eq!(
            connector
                .provision(&task(Operation::RemoveAccount, Some("11"), json!({})))
                .await
                .unwrap(),
            ProvisionOutcome::Done { account_id: None }
        );
        assert_eq!(
            connector
                .provision(&task(Operation::RemoveAccount, Some("12"), json!({})))
                .await
                .unwrap(),
            ProvisionOutcome::AlreadyDone { account_id: None }
        );
    }

    #[tokio::test]
    async fn update_puts_the_whole_user_with_the_changes() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/services/v2/user/125038"))
            .respond_with(ResponseTemplate::new(200).set_body_json(sheet_user()))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/services/v2/user/125038"))
            .and(body_json(json!({
                "username": "jane.doe", "first_name": "Jane", "last_name": "Smith",
                "email": "jane.doe@example.com", "job_title": "Engineer", "telephone": "555-0100",
                "container": { "id": 5 }, "access_roles": [{ "id": 1 }]
            })))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        let outcome = connector
            .provision(&task(
                Operation::UpdateAccount,
                Some("125038"),
                json!({ "lastname": "Smith", "department": "ignored" }),
            ))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::Done {
                account_id: Some("125038".into())
            }
        );
        let unchanged = connector
            .provision(&task(
                Operation::UpdateAccount,
                Some("125038"),
                json!({ "title": "Engineer" }),
            ))
            .await
            .unwrap();
        assert_eq!(
            unchanged,
            ProvisionOutcome::AlreadyDone {
                account_id: Some("125038".into())
            }
        );
        let err = connector
            .provision(&task(
                Operation::UpdateAccount,
                Some("125038"),
                json!({ "department": "x" }),
            ))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("the task sets none of them"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn enable_and_disable_are_refused_unless_disable_deletes() {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/services/v2/user/11"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let connector = DigicertConnector::new("dc", &config(&server.uri(), "")).unwrap();
        for operation in [Operation::EnableAccount, Operation::DisableAccount] {
            let err = connector
                .provision(&task(operation, Some("11"), json!({})))
                .await
                .unwrap_err();
            assert_eq!(err.class(), ErrorClass::Unsupported);
            assert!(
                err.to_string()
                    .contains("CertCentral has no enable/disable call"),
                "{err}"
            );
        }
        assert!(server.received_requests().await.unwrap().is_empty());
        let deleting = DigicertConnector::new(
            "dc",
            &config(&server.uri(), "disable_strategy = \"delete\""),
        )
        .unwrap();
        assert_eq!(
            deleting
                .provision(&task(Operation::DisableAccount, Some("11"), json!({})))
                .await
                .unwrap(),
            ProvisionOutcome::Done { account_id: None }
        );
        let err = deleting
            .provision(&task(Operation::EnableAccount, Some("11"), json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unsupported);
    }

    // --- Against the DigiCert simulator. ---

    async fn sim() -> (idsync_sim::DigicertServer, DigicertConnector) {
        let server = idsync_sim::DigicertSim::start(
            idsync_sim::DigicertSimConfig {
                seed: idsync_sim::DigicertSeed::empty(),
                rate_limits: Vec::new(),
                ..Default::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let config: TargetConfig = toml::from_str(&format!(
            "kind = \"digicert\"\nbase_url = \"{}\"\napi_key = \"{}\"\nrate_limit = []\n\
             read_retry = {{ max_attempts = 1 }}\ndisable_strategy = \"delete\"",
            server.base_url(),
            server.control().api_key()
        ))
        .unwrap();
        let connector = DigicertConnector::new("dc", &config).unwrap();
        (server, connector)
    }

    fn sim_user(server: &idsync_sim::DigicertServer, id: &str) -> Option<idsync_sim::SimUser> {
        server
            .control()
            .users()
            .into_iter()
            .find(|user| user.id.to_string() == id)
    }

    fn created_id(outcome: ProvisionOutcome) -> String {
        match outcome {
            ProvisionOutcome::Done {
                account_id: Some(id),
            } => id,
            other => panic!("not created: {other:?}"),
        }
    }

    #[tokio::test]
    async fn sim_create_duplicates_and_lookup() {
        let (server, connector) = sim().await;
        let with_role = ProvisionRequest {
            entitlement: Some(("role".into(), "4".into())),
            ..task(Operation::CreateAccount, None, jane())
        };
        let id = created_id(connector.provision(&with_role).await.unwrap());
        let user = sim_user(&server, &id).unwrap();
        assert_eq!(
            (
                user.username.as_str(),
                user.email.as_str(),
                user.access_roles.clone()
            ),
            ("jane.doe", "Jane.Doe@example.com", vec![4])
        );
        assert_eq!(user.job_title.as_deref(), Some("Engineer"));

        // Again, same email: the same person.
        let mut same = jane();
        same["email"] = json!("jane.doe@EXAMPLE.com");
        assert_eq!(
            connector
                .provision(&task(Operation::CreateAccount, None, same))
                .await
                .unwrap(),
            ProvisionOutcome::AlreadyDone {
                account_id: Some(id.clone())
            }
        );
        // Someone else with that name.
        let mut other = jane();
        other["email"] = json!("other.jane@example.com");
        let err = connector
            .provision(&task(Operation::CreateAccount, None, other))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.to_string()
                .contains(&format!("username jane.doe taken by account id {id}")),
            "{err}"
        );
        // DigiCert's own words for a username it does not accept.
        let bad = ProvisionRequest {
            account_name: "jane doe!".into(),
            ..task(Operation::CreateAccount, None, jane())
        };
        let err = connector.provision(&bad).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.to_string().contains("invalid_field|username")
                && err.to_string().contains("HTTP 400"),
            "{err}"
        );

        let found = connector.lookup_account("JANE.DOE").await.unwrap().unwrap();
        assert_eq!(
            (found.id.as_str(), found.name.as_str()),
            (id.as_str(), "jane.doe")
        );
        assert_eq!(connector.lookup_account("jane").await.unwrap(), None);
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn sim_update_roles_container_and_remove() {
        let (server, connector) = sim().await;
        let id = created_id(
            connector
                .provision(&task(Operation::CreateAccount, None, jane()))
                .await
                .unwrap(),
        );
        assert_eq!(sim_user(&server, &id).unwrap().access_roles, [5]);

        // Update: a full PUT that keeps the title and phone.
        connector
            .provision(&task(
                Operation::UpdateAccount,
                Some(&id),
                json!({ "lastname": "Smith" }),
            ))
            .await
            .unwrap();
        let user = sim_user(&server, &id).unwrap();
        assert_eq!(user.last_name, "Smith");
        assert_eq!(user.job_title.as_deref(), Some("Engineer"));
        assert_eq!(user.telephone.as_deref(), Some("555-0100"));

        // Roles: add, add again, remove, remove again, the last one refused.
        let add = access(Operation::AddAccess, &id, "role", "2");
        assert_eq!(
            connector.provision(&add).await.unwrap(),
            ProvisionOutcome::Done { account_id: None }
        );
        assert_eq!(sim_user(&server, &id).unwrap().access_roles, [2, 5]);
        assert_eq!(
            connector.provision(&add).await.unwrap(),
            ProvisionOutcome::AlreadyDone { account_id: None }
        );
        let remove = access(Operation::RemoveAccess, &id, "Role", "5");
        assert_eq!(
            connector.provision(&remove).await.unwrap(),
            ProvisionOutcome::Done { account_id: None }
        );
        assert_eq!(
            connector.provision(&remove).await.unwrap(),
            ProvisionOutcome::AlreadyDone { account_id: None }
        );
        let err = connector
            .provision(&access(Operation::RemoveAccess, &id, "role", "2"))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(err.to_string().contains("last role"), "{err}");
        assert_eq!(sim_user(&server, &id).unwrap().access_roles, [2]);

        // Container: a move keeps everything else; removal is not supported.
        assert_eq!(sim_user(&server, &id).unwrap().container_id, 1);
        let to_two = access(Operation::AddAccess, &id, "container", "2");
        assert_eq!(
            connector.provision(&to_two).await.unwrap(),
            ProvisionOutcome::Done { account_id: None }
        );
        let moved = sim_user(&server, &id).unwrap();
        assert_eq!(moved.container_id, 2);
        assert_eq!(moved.access_roles, [2]);
        assert_eq!(moved.job_title.as_deref(), Some("Engineer"));
        assert_eq!(
            connector.provision(&to_two).await.unwrap(),
            ProvisionOutcome::AlreadyDone { account_id: None }
        );
        let err = connector
            .provision(&access(Operation::RemoveAccess, &id, "container", "2"))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unsupported);

        // Disable with the delete strategy, then remove: already gone.
        assert_eq!(
            connector
                .provision(&task(Operation::DisableAccount, Some(&id), json!({})))
                .await
                .unwrap(),
            ProvisionOutcome::Done { account_id: None }
        );
        assert!(sim_user(&server, &id).is_none());
        assert_eq!(
            connector
                .provision(&task(Operation::RemoveAccount, Some(&id), json!({})))
                .await
                .unwrap(),
            ProvisionOutcome::AlreadyDone { account_id: None }
        );
        server.shutdown().await.unwrap();
    }

    #[test]
    fn a_missing_key_is_a_clear_build_error() {
        let config: TargetConfig =
            toml::from_str("kind = \"digicert\"\nbase_url = \"https://dc.example/services/v2\"")
                .unwrap();
        let err = DigicertConnector::new("dc", &config).unwrap_err();
        assert!(err.to_string().contains("api_key is not set"), "{err}");
        let config: TargetConfig = toml::from_str(
            "kind = \"digicert\"\nbase_url = \"https://dc.example\"\napi_key = { env = \"IDSYNC_TEST_NO_SUCH_VAR_4B1D\" }",
        )
        .unwrap();
        let err = DigicertConnector::new("dc", &config).unwrap_err();
        assert!(
            err.to_string().contains("IDSYNC_TEST_NO_SUCH_VAR_4B1D"),
            "{err}"
        );
    }

    #[test]
    fn paces_at_ninety_percent_of_the_documented_limits_by_default() {
        let config: TargetConfig = toml::from_str(&format!(
            "kind = \"digicert\"\nbase_url = \"https://dc.example\"\napi_key = \"{KEY}\""
        ))
        .unwrap();
        let connector = DigicertConnector::new("dc", &config).unwrap();
        let windows: Vec<(u32, u64)> = connector
            .http
            .rate_limits()
            .iter()
            .map(|w| (w.requests, w.per.get().as_secs()))
            .collect();
        assert_eq!(windows, [(90, 5), (900, 180)]);
    }
}
