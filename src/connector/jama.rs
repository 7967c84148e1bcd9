//! Jama Connect REST API v1 adapter: import and provisioning.
//!
//! * Accounts: `GET /users?startAt=N&maxResults=M&includeInactive=true` (without
//!   `includeInactive` Jama hides deactivated users, and an import would take each for a
//!   deleted one), one stream item per page, guarded by [`StartIndexPager`].
//! * Entitlements: `GET /usergroups` (paged), type `usergroup`.
//! * Grants: the group ids first (40–1000 of them, kept in memory), then
//!   `GET /usergroups/{id}/users` (paged) for each group.
//! * Paging: Jama clamps `maxResults` at 50 silently, so the pager advances by
//!   `meta.pageInfo.resultCount` and stops at `totalResults`, never on a short page.
//! * Auth: OAuth client credentials. A [`TokenCache`] is the API client's credential: it
//!   fetches `POST {base_url}/rest/oauth/token`, refreshes ahead of expiry, and after a 401
//!   refreshes once and the call is repeated once.
//! * Pacing: 10 requests per second by default (Jama's limit for the whole tenant, answered
//!   with bare 429s and no `Retry-After`).
//! * Provisioning: create, update, enable, disable, and add / remove `usergroup` membership;
//!   Jama has no user delete, so `remove_account` is refused unless `remove_strategy =
//!   "disable"` (then it deactivates the user). Create and update bodies come from templates
//!   ([`TEMPLATES`], overridable per target). Idempotent where Jama allows: a duplicate
//!   username counts as done only when the existing user has the task's email, "already
//!   exists" on add and 404 on remove count as done.
//! * [`Connector::lookup_account`]: `GET /users?username=…&includeInactive=true`.
//!
//! The API root is `{base_url}/rest/v1`. Mapping from JSON to records is done by pure
//! functions (`map_user`, `map_group`, `map_members`) tested on recorded fixtures.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::http::{ClientDefaults, HttpClient, HttpResponse};
use super::mapping::{code_and_text, display_name, first_id, non_empty, parse, put, NativeId};
use super::paging::{StartIndexPage, StartIndexPager};
use super::password::generate_password;
use super::template::{expect_object, Escape, TemplateContext, TemplateError, TemplateSet};
use super::token::{ClientCredentials, TokenCache};
use super::{
    Capabilities, Capability, Connector, ConnectorError, PageStream, ProvisionOutcome,
    ProvisionRequest,
};
use crate::config::{ConfigDuration, RateLimit, RemoveStrategy, TargetConfig};
use crate::model::{
    AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord, Operation,
};

/// Records per page when the target's `page_size` is unset (Jama's own maximum).
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Entitlement type of a user group.
pub const USERGROUP: &str = "usergroup";

/// The token endpoint, under `base_url`.
pub const TOKEN_PATH: [&str; 3] = ["rest", "oauth", "token"];

/// The API root, under `base_url`.
pub const API_PATH: [&str; 2] = ["rest", "v1"];

/// The license given to a created user when the task sets no `license_type` attribute.
pub const DEFAULT_LICENSE_TYPE: &str = "NAMED";

/// Why `remove_account` is refused.
pub const NO_USER_DELETE: &str = "Jama has no user delete; disable the account instead";

/// The built-in `create_account` body (`POST /users`): the username, the generated
/// password, names and email, phone, title and location when set, and the license type
/// (default [`DEFAULT_LICENSE_TYPE`]).
pub const CREATE_ACCOUNT_TEMPLATE: &str = r#"{
  "username": "${ account.name }",
  "password": "${ password }",
  "firstName": "${ user.firstname }",
  "lastName": "${ user.lastname }",
  "email": "${ user.email }",
{%- for key, field in {"phonenumber": "phone", "title": "title", "location": "location"}|items
    if user[key] %}
  "${ field }": "${ user[key] }",
{%- endfor %}
  "licenseType": "{% if user.license_type %}${ user.license_type }{% else %}NAMED{% endif %}"
}"#;

/// The built-in `update_account` changes: each of the task's `firstname`, `lastname`,
/// `email`, `phonenumber`, `title`, `location` and `license_type` that is set, as the Jama
/// field it changes. They are merged into the user as read, and the whole user is `PUT` back.
pub const UPDATE_ACCOUNT_TEMPLATE: &str = r#"
{%- set fields = {"firstname": "firstName", "lastname": "lastName", "email": "email",
                  "phonenumber": "phone", "title": "title", "location": "location",
                  "license_type": "licenseType"} -%}
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

/// What a Jama target supports with `remove_strategy`: create, update, enable and disable
/// accounts, add and remove `usergroup` membership, and `remove_account` only with the
/// `disable` strategy.
pub fn capabilities(remove: RemoveStrategy) -> Capabilities {
    let account = |operation| Capability {
        operation,
        entitlement_type: None,
    };
    let access = |operation| Capability {
        operation,
        entitlement_type: Some(USERGROUP.to_string()),
    };
    let mut operations = BTreeSet::from([
        account(Operation::CreateAccount),
        account(Operation::UpdateAccount),
        account(Operation::EnableAccount),
        account(Operation::DisableAccount),
        access(Operation::AddAccess),
        access(Operation::RemoveAccess),
    ]);
    if remove == RemoveStrategy::Disable {
        operations.insert(account(Operation::RemoveAccount));
    }
    Capabilities {
        entitlement_types: vec![USERGROUP.to_string()],
        operations,
    }
}

/// Why a Jama target refuses `operation` on `entitlement_type` (see [`capabilities`]).
pub fn unsupported_reason(operation: Operation, entitlement_type: Option<&str>) -> String {
    match (operation, entitlement_type) {
        (Operation::RemoveAccount, _) => format!(
            "{NO_USER_DELETE} (or set remove_strategy = \"disable\" to deactivate the user on \
             remove_account)"
        ),
        (Operation::AddAccess | Operation::RemoveAccess, Some(kind)) => {
            format!("Jama grants user groups only (type {USERGROUP}), not `{kind}`")
        }
        (Operation::AddAccess | Operation::RemoveAccess, None) => {
            format!("{operation} needs an entitlement ({USERGROUP}:ID)")
        }
        _ => format!("Jama does not support {operation}"),
    }
}

/// Task attributes (Saviynt-style lower-case keys) → Jama user fields, for create and update.
const ATTRIBUTE_FIELDS: [(&str, &str); 7] = [
    ("firstname", "firstName"),
    ("lastname", "lastName"),
    ("email", "email"),
    ("phonenumber", "phone"),
    ("title", "title"),
    ("location", "location"),
    ("license_type", "licenseType"),
];

/// The attributes Jama requires on create (besides `username` and `password`).
const REQUIRED_ON_CREATE: [&str; 3] = ["firstname", "lastname", "email"];

/// The user fields a `PUT /users/{id}` takes (Jama's `RequestUser`, without `password`).
const WRITABLE_FIELDS: [&str; 8] = [
    "username",
    "firstName",
    "lastName",
    "email",
    "phone",
    "title",
    "location",
    "licenseType",
];

/// The pacing Jama needs: 10 calls per second for the whole tenant.
pub fn default_rate_limits() -> Vec<RateLimit> {
    vec![RateLimit {
        requests: 10,
        per: ConfigDuration::from_secs(1),
    }]
}

/// What the Jama adapter hands the shared HTTP client: pacing and the error format.
pub fn client_defaults() -> ClientDefaults {
    ClientDefaults {
        rate_limits: default_rate_limits(),
        error_message,
        classify_error: None,
    }
}

/// The target's own message from a Jama error body (`{"meta":{"message":"…"}}`), or from an
/// OAuth error of the token endpoint (`{"error":"…","error_description":"…"}` →
/// `"error: description"`).
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
    };
    if let Some(message) = text("/meta/message") {
        return Some(message.to_string());
    }
    code_and_text(text("/error"), text("/error_description"))
}

/// The Jama Connect connector of one target.
pub struct JamaConnector {
    target: String,
    http: HttpClient,
    page_size: u32,
    capabilities: Capabilities,
    templates: TemplateSet,
    remove_strategy: RemoveStrategy,
}

impl fmt::Debug for JamaConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JamaConnector")
            .field("target", &self.target)
            .field("http", &self.http)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl JamaConnector {
    /// Builds the connector of target `name`: resolves `client_secret` now, and sets up the
    /// token cache and the API client (root `{base_url}/rest/v1`). No request is made until
    /// the first call. Fails (class `Permanent`) when `client_id` or `client_secret` is
    /// missing or unresolvable, or a client cannot be built.
    pub fn new(name: &str, config: &TargetConfig) -> Result<Self, ConnectorError> {
        let credentials = ClientCredentials::from_config(name, config)?;
        let tokens = TokenCache::new(name, config, &TOKEN_PATH, &credentials, error_message)?;
        let mut api = config.clone();
        api.base_url = api_root(name, &config.base_url)?;
        let http = HttpClient::new(name, &api, client_defaults(), Arc::new(tokens))?;
        let templates = TemplateSet::new(name, Escape::Json, &TEMPLATES, &config.templates)
            .map_err(|errors| {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                ConnectorError::config(name, text.join("; "))
            })?;
        let remove_strategy = config.remove_strategy.unwrap_or_default();
        Ok(Self {
            target: name.to_string(),
            http,
            page_size: config.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1),
            capabilities: capabilities(remove_strategy),
            templates,
            remove_strategy,
        })
    }

    /// Creates user `username` (`POST /users`) from the task's attributes: `firstname`,
    /// `lastname` and `email` (required), `phonenumber`, `title`, `location`, and
    /// `license_type` (default [`DEFAULT_LICENSE_TYPE`]), with a strong random initial
    /// password generated for this attempt (sent to Jama only; users reset it through Jama).
    ///
    /// Returns `Done` with the new id (`meta.id` of the 201). When Jama answers that the
    /// username already exists, the existing user is looked up: `AlreadyDone` with its id if
    /// its email is the task's (case-insensitive), else `Permanent` "username X taken by
    /// account id N".
    pub async fn create_account(
        &self,
        username: &str,
        attributes: &Attributes,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        self.create(&plain_request(
            Operation::CreateAccount,
            None,
            username,
            attributes,
        ))
        .await
    }

    /// [`create_account`](Self::create_account) of a provisioning request (its task id and
    /// request id are bound for the template too).
    async fn create(&self, request: &ProvisionRequest) -> Result<ProvisionOutcome, ConnectorError> {
        let username = request.account_name.as_str();
        let attributes = &request.attributes;
        if username.trim().is_empty() {
            return Err(self.refused(None, "create_account needs a username"));
        }
        for (key, _) in ATTRIBUTE_FIELDS {
            self.attribute_text(attributes, key)?;
        }
        let mut missing = Vec::new();
        for key in REQUIRED_ON_CREATE {
            match self.attribute_text(attributes, key)? {
                Some(text) if !text.trim().is_empty() => {}
                _ => missing.push(key),
            }
        }
        if !missing.is_empty() {
            return Err(self.refused(
                None,
                format!(
                    "create_account needs the attribute(s) {} (Jama requires a first name, a \
                     last name and an email)",
                    missing.join(", ")
                ),
            ));
        }
        let password = generate_password();
        let context = TemplateContext::from_request(&self.target, request).with_password(&password);
        let body = self
            .templates
            .render("create_account", &context)
            .map_err(|err| self.template_failed(err))?;
        drop(context);
        let email = body
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_string);
        let url = self.http.url(&["users"], &[])?;
        let sent = self.http.send(Method::POST, url, Some(&body)).await;
        drop(body);
        match sent.map_err(|err| err.redact(password.expose_secret())) {
            Ok(response) => {
                let id = self.created_id(&response, username).await?;
                Ok(ProvisionOutcome::Done {
                    account_id: Some(id),
                })
            }
            Err(err) if is_duplicate(&err) => {
                self.resolve_duplicate(username, email.as_deref(), err)
                    .await
            }
            Err(err) => Err(err),
        }
    }

    /// Changes user `account_id`'s attributes (`firstname`, `lastname`, `email`,
    /// `phonenumber`, `title`, `location`, `license_type`; other keys are ignored): reads the
    /// user, applies the changes and `PUT`s the whole object back (Jama's PUT replaces; the
    /// password is never sent). `AlreadyDone` when every value is already in place.
    pub async fn update_account(
        &self,
        account_id: &str,
        attributes: &Attributes,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let request = plain_request(Operation::UpdateAccount, Some(account_id), "", attributes);
        self.update(account_id, &request).await
    }

    /// [`update_account`](Self::update_account) of a provisioning request.
    async fn update(
        &self,
        account_id: &str,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        for (key, _) in ATTRIBUTE_FIELDS {
            self.attribute_text(&request.attributes, key)?;
        }
        let context = TemplateContext::from_request(&self.target, request);
        let changes = self
            .templates
            .render("update_account", &context)
            .and_then(|body| expect_object(&self.target, "update_account", body))
            .map_err(|err| self.template_failed(err))?;
        if changes.is_empty() {
            let keys: Vec<&str> = ATTRIBUTE_FIELDS.iter().map(|(key, _)| *key).collect();
            return Err(self.refused(
                None,
                format!(
                    "update_account changes {} on Jama; the task sets none of them",
                    keys.join(", ")
                ),
            ));
        }
        let url = self.http.url(&["users", account_id], &[])?;
        let current: ItemBody = self.http.get_json(url.clone()).await?;
        let Some(Value::Object(user)) = current.data else {
            return Err(ConnectorError::malformed(
                &self.target,
                format!("the response to GET /users/{account_id} has no user object in data"),
            ));
        };
        let mut body = Map::new();
        for field in WRITABLE_FIELDS {
            if let Some(value) = user.get(field).filter(|value| !value.is_null()) {
                body.insert(field.to_string(), value.clone());
            }
        }
        let mut changed = false;
        for (field, value) in changes {
            if field == "password" {
                continue;
            }
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
        self.http
            .send(Method::PUT, url, Some(&Value::Object(body)))
            .await?;
        Ok(ProvisionOutcome::Done {
            account_id: Some(account_id.to_string()),
        })
    }

    /// Enables user `account_id` (`PUT /users/{id}/active` with `{"active": true}`).
    pub async fn enable_account(
        &self,
        account_id: &str,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        self.set_active(account_id, true).await
    }

    /// Disables user `account_id` (`PUT /users/{id}/active` with `{"active": false}`).
    pub async fn disable_account(
        &self,
        account_id: &str,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        self.set_active(account_id, false).await
    }

    /// Adds user `account_id` to group `group_id` (`POST /usergroups/{id}/users` with
    /// `{"user": <id>}`). "Already exists" (already a member) is `AlreadyDone`.
    pub async fn add_access(
        &self,
        group_id: &str,
        account_id: &str,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let user = self.numeric_id(account_id)?;
        let url = self.http.url(&["usergroups", group_id, "users"], &[])?;
        match self
            .http
            .send(Method::POST, url, Some(&json!({ "user": user })))
            .await
        {
            Ok(_) => Ok(ProvisionOutcome::Done { account_id: None }),
            Err(err) if is_duplicate(&err) => {
                Ok(ProvisionOutcome::AlreadyDone { account_id: None })
            }
            Err(err) => Err(err),
        }
    }

    /// Removes user `account_id` from group `group_id` (`DELETE
    /// /usergroups/{id}/users/{userId}`). A 404 (not a member) is `AlreadyDone`.
    pub async fn remove_access(
        &self,
        group_id: &str,
        account_id: &str,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let url = self
            .http
            .url(&["usergroups", group_id, "users", account_id], &[])?;
        match self.http.send(Method::DELETE, url, None).await {
            Ok(_) => Ok(ProvisionOutcome::Done { account_id: None }),
            Err(err) if is_not_found(&err) => {
                Ok(ProvisionOutcome::AlreadyDone { account_id: None })
            }
            Err(err) => Err(err),
        }
    }

    /// `PUT /users/{id}/active`.
    async fn set_active(
        &self,
        account_id: &str,
        active: bool,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        let url = self.http.url(&["users", account_id, "active"], &[])?;
        self.http
            .send(Method::PUT, url, Some(&json!({ "active": active })))
            .await?;
        Ok(ProvisionOutcome::Done { account_id: None })
    }

    /// The id of a user just created: `meta.id`, else the last segment of `meta.location`,
    /// else the user looked up by name.
    async fn created_id(
        &self,
        response: &HttpResponse,
        username: &str,
    ) -> Result<String, ConnectorError> {
        let meta = serde_json::from_slice::<ItemBody>(&response.body)
            .ok()
            .and_then(|body| body.meta)
            .unwrap_or_default();
        if let Some(id) = meta.id {
            return Ok(id.to_string());
        }
        let from_location = meta.location.as_deref().and_then(|location| {
            let url = Url::parse(location).ok()?;
            let last = url.path_segments()?.next_back()?.to_string();
            last.parse::<u64>().is_ok().then_some(last)
        });
        if let Some(id) = from_location {
            return Ok(id);
        }
        match self.find_user(username).await? {
            Some(user) => Ok(user.id.to_string()),
            None => Err(ConnectorError::malformed(
                &self.target,
                format!(
                    "user {username} was created (HTTP {}) but the response has no meta.id and \
                     the user cannot be found by name",
                    response.status.as_u16()
                ),
            )),
        }
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
            // Jama says it exists, yet no user has this name (another field collided).
            return Err(original);
        };
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
                account_id: Some(existing.id.to_string()),
            })
        } else {
            Err(self.refused(
                Some(400),
                format!("username {username} taken by account id {}", existing.id),
            ))
        }
    }

    /// The user named `username` (case-insensitive), through `GET
    /// /users?username=…&includeInactive=true`, paging on in case the filter is ignored.
    async fn find_user(&self, username: &str) -> Result<Option<UserRef>, ConnectorError> {
        match self.find_user_value(username).await? {
            Some(value) => Ok(Some(parse(&self.target, "user", &value)?)),
            None => Ok(None),
        }
    }

    /// The user object named `username` (case-insensitive), as Jama returned it.
    async fn find_user_value(&self, username: &str) -> Result<Option<Value>, ConnectorError> {
        let filter = [
            ("username", username.to_string()),
            ("includeInactive", "true".to_string()),
        ];
        let mut pager = StartIndexPager::new(&self.target, "users by name", self.page_size);
        while let Some(users) = self.next_page(&["users"], &filter, &mut pager).await? {
            for value in users {
                let user: UserRef = parse(&self.target, "user", &value)?;
                if user.username.eq_ignore_ascii_case(username) {
                    return Ok(Some(value));
                }
            }
        }
        Ok(None)
    }

    /// Fetches the page the pager asks for next and checks it; `None` once the listing has
    /// been read.
    async fn next_page(
        &self,
        path: &[&str],
        filter: &[(&str, String)],
        pager: &mut StartIndexPager,
    ) -> Result<Option<Vec<Value>>, ConnectorError> {
        let Some(request) = pager.next_request() else {
            return Ok(None);
        };
        let mut query = vec![
            ("startAt", request.offset.to_string()),
            ("maxResults", request.limit.to_string()),
        ];
        query.extend(filter.iter().cloned());
        let url = self.http.url(path, &query)?;
        let body: ListBody = self.http.get_json(url.clone()).await?;
        let data = body.data.ok_or_else(|| {
            ConnectorError::malformed(
                &self.target,
                format!("the response to {} has no data list", url.path()),
            )
        })?;
        let info = body
            .meta
            .and_then(|meta| meta.page_info)
            .unwrap_or_default();
        pager.record(StartIndexPage {
            items: data.len(),
            start_index: info.start_index,
            result_count: info.result_count,
            total_results: info.total_results,
            first_key: first_id(&data),
        })?;
        Ok(Some(data))
    }

    /// One paged listing as a stream of pages, each turned into records by `map`. The stream
    /// ends at the first error, whether reading or mapping.
    fn listing<T: Send + 'static>(
        &self,
        path: &'static [&'static str],
        filter: &'static [(&'static str, &'static str)],
        what: &'static str,
        map: fn(&str, &[Value]) -> Result<Vec<T>, ConnectorError>,
    ) -> PageStream<'_, T> {
        let pager = StartIndexPager::new(&self.target, what, self.page_size);
        let filter: Vec<(&str, String)> = filter
            .iter()
            .map(|(key, value)| (*key, (*value).to_string()))
            .collect();
        futures::stream::try_unfold(pager, move |mut pager| {
            let filter = filter.clone();
            async move {
                match self.next_page(path, &filter, &mut pager).await? {
                    None => Ok(None),
                    Some(page) => Ok(Some((map(&self.target, &page)?, pager))),
                }
            }
        })
        .boxed()
    }

    /// The text of attribute `key`: strings as they are, numbers and booleans written out,
    /// null or absent as `None`; a list or an object is refused.
    fn attribute_text(
        &self,
        attributes: &Attributes,
        key: &str,
    ) -> Result<Option<String>, ConnectorError> {
        match attributes.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.refused(
                None,
                format!("attribute {key} must be a text value, not a list or an object"),
            )),
        }
    }

    /// A Jama user id as the number Jama's bodies take.
    fn numeric_id(&self, account_id: &str) -> Result<u64, ConnectorError> {
        account_id.trim().parse().map_err(|_| {
            self.refused(
                None,
                format!("account id `{account_id}` is not a Jama user id (a number)"),
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
                        "{} of {} needs the account's Jama id, which is not known (import the \
                         accounts, or wait for its create_account task)",
                        request.operation, request.account_name
                    ),
                )
            })
    }

    /// The group id of an access task, or a clear error.
    fn group_id<'r>(&self, request: &'r ProvisionRequest) -> Result<&'r str, ConnectorError> {
        match &request.entitlement {
            Some((kind, id)) if kind.eq_ignore_ascii_case(USERGROUP) => Ok(id.as_str()),
            Some((kind, _)) => Err(ConnectorError::Unsupported {
                target: self.target.clone(),
                operation: request.operation.to_string(),
                reason: format!("Jama grants user groups only (type usergroup), not `{kind}`"),
            }),
            None => Err(self.refused(
                None,
                format!("{} needs an entitlement (usergroup:ID)", request.operation),
            )),
        }
    }
}

/// A request for `operation` with only an account and attributes (the adapter's direct
/// entry points).
fn plain_request(
    operation: Operation,
    account_id: Option<&str>,
    account_name: &str,
    attributes: &Attributes,
) -> ProvisionRequest {
    ProvisionRequest {
        operation,
        account_id: account_id.map(str::to_string),
        account_name: account_name.to_string(),
        entitlement: None,
        attributes: attributes.clone(),
        entitlement_name: None,
        task_id: None,
        request_id: None,
    }
}

/// `{base_url}/rest/v1`.
fn api_root(target: &str, base_url: &Url) -> Result<Url, ConnectorError> {
    let mut url = base_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| {
            ConnectorError::config(
                target,
                format!("base_url `{base_url}` must be an http:// or https:// URL with a host"),
            )
        })?
        .pop_if_empty()
        .extend(API_PATH);
    Ok(url)
}

/// Whether Jama refused a create as a duplicate: a 400 whose message says `already exists`.
fn is_duplicate(err: &ConnectorError) -> bool {
    matches!(
        err,
        ConnectorError::Permanent { status: Some(400), message, .. }
            if message.to_ascii_lowercase().contains("already exists")
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

/// Where the grant stream is.
enum GrantState {
    /// Reading the group list (ids and names).
    Groups {
        pager: StartIndexPager,
        groups: Vec<GroupRef>,
    },
    /// Reading the members of each group in turn.
    Members {
        groups: VecDeque<GroupRef>,
        current: Option<(GroupRef, StartIndexPager)>,
    },
}

#[async_trait]
impl Connector for JamaConnector {
    fn target(&self) -> &str {
        &self.target
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn test_connection(&self) -> Result<(), ConnectorError> {
        let url = self.http.url(
            &["users"],
            &[
                ("startAt", "0".to_string()),
                ("maxResults", "1".to_string()),
            ],
        )?;
        let _: ListBody = self.http.get_json(url).await?;
        Ok(())
    }

    fn accounts(&self) -> PageStream<'_, AccountRecord> {
        self.listing(
            &["users"],
            &[("includeInactive", "true")],
            "users",
            |target, users| users.iter().map(|user| map_user(target, user)).collect(),
        )
    }

    fn entitlements(&self) -> PageStream<'_, EntitlementRecord> {
        self.listing(&["usergroups"], &[], "user groups", |target, groups| {
            groups
                .iter()
                .map(|group| map_group(target, group))
                .collect()
        })
    }

    fn grants(&self) -> PageStream<'_, GrantRecord> {
        let start = GrantState::Groups {
            pager: StartIndexPager::new(&self.target, "user groups", self.page_size),
            groups: Vec::new(),
        };
        futures::stream::try_unfold(Some(start), move |state| async move {
            let Some(mut state) = state else {
                return Ok(None);
            };
            loop {
                state = match state {
                    GrantState::Groups {
                        mut pager,
                        mut groups,
                    } => match self.next_page(&["usergroups"], &[], &mut pager).await? {
                        Some(page) => {
                            for value in &page {
                                let group = map_group(&self.target, value)?;
                                groups.push(GroupRef {
                                    id: group.id,
                                    name: group.name,
                                });
                            }
                            GrantState::Groups { pager, groups }
                        }
                        None => GrantState::Members {
                            groups: groups.into(),
                            current: None,
                        },
                    },
                    GrantState::Members {
                        mut groups,
                        current,
                    } => {
                        let (group, mut pager) = match current {
                            Some(current) => current,
                            None => match groups.pop_front() {
                                Some(group) => {
                                    let what = format!("members of user group {}", group.id);
                                    let pager =
                                        StartIndexPager::new(&self.target, &what, self.page_size);
                                    (group, pager)
                                }
                                None => return Ok(None),
                            },
                        };
                        let path = ["usergroups", group.id.as_str(), "users"];
                        match self.next_page(&path, &[], &mut pager).await? {
                            Some(users) => {
                                let grants = map_members(&self.target, &group, &users)?;
                                let next = GrantState::Members {
                                    groups,
                                    current: Some((group, pager)),
                                };
                                if !grants.is_empty() {
                                    return Ok(Some((grants, Some(next))));
                                }
                                next
                            }
                            None => GrantState::Members {
                                groups,
                                current: None,
                            },
                        }
                    }
                };
            }
        })
        .boxed()
    }

    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<ProvisionOutcome, ConnectorError> {
        match request.operation {
            Operation::CreateAccount => self.create(request).await,
            Operation::UpdateAccount => self.update(self.account_id(request)?, request).await,
            Operation::EnableAccount => self.enable_account(self.account_id(request)?).await,
            Operation::DisableAccount => self.disable_account(self.account_id(request)?).await,
            Operation::RemoveAccount if self.remove_strategy == RemoveStrategy::Disable => {
                self.disable_account(self.account_id(request)?).await
            }
            Operation::RemoveAccount => Err(ConnectorError::Unsupported {
                target: self.target.clone(),
                operation: request.operation.to_string(),
                reason: NO_USER_DELETE.to_string(),
            }),
            Operation::AddAccess => {
                let group = self.group_id(request)?;
                self.add_access(group, self.account_id(request)?).await
            }
            Operation::RemoveAccess => {
                let group = self.group_id(request)?;
                self.remove_access(group, self.account_id(request)?).await
            }
        }
    }

    fn unsupported_reason(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
        unsupported_reason(operation, entitlement_type)
    }

    async fn lookup_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        match self.find_user_value(name).await? {
            Some(user) => Ok(Some(map_user(&self.target, &user)?)),
            None => Ok(None),
        }
    }
}

/// A list response: `{"meta":{"pageInfo":{…}},"data":[…]}`.
#[derive(Deserialize)]
struct ListBody {
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(default)]
    data: Option<Vec<Value>>,
}

/// A single-object or create response: `{"meta":{…},"data":{…}}` (a 201 has no `data`).
#[derive(Deserialize)]
struct ItemBody {
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(default)]
    data: Option<Value>,
}

/// The `meta` of a response, as far as the adapter reads it.
#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default, rename = "pageInfo")]
    page_info: Option<PageInfoBody>,
    #[serde(default)]
    id: Option<NativeId>,
    #[serde(default)]
    location: Option<String>,
}

/// `meta.pageInfo`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PageInfoBody {
    #[serde(default)]
    start_index: Option<u64>,
    #[serde(default)]
    result_count: Option<u64>,
    #[serde(default)]
    total_results: Option<u64>,
}

/// The user object, as far as the adapter reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: NativeId,
    username: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    title: Option<String>,
    location: Option<String>,
    license_type: Option<String>,
    active: Option<bool>,
    authentication_type: Option<AuthenticationType>,
    custom_data: Option<Value>,
}

/// A user's `authenticationType {id, name}`.
#[derive(Deserialize)]
struct AuthenticationType {
    #[serde(default)]
    name: Option<String>,
}

/// A user found by name: its id and email.
#[derive(Deserialize)]
struct UserRef {
    id: NativeId,
    username: String,
    #[serde(default)]
    email: Option<String>,
}

/// A group member: only its id is read.
#[derive(Deserialize)]
struct Member {
    id: NativeId,
}

/// A user group of `GET /usergroups`.
#[derive(Deserialize)]
struct Group {
    id: NativeId,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    project: Option<Value>,
}

/// A group whose members the grant stream reads.
struct GroupRef {
    id: String,
    name: String,
}

/// Inserts a non-empty text under `key`.
fn put_text(attributes: &mut Attributes, key: &str, text: Option<&str>) {
    put(attributes, key, non_empty(text).map(Value::from));
}

/// A Jama user → an account record.
fn map_user(target: &str, value: &Value) -> Result<AccountRecord, ConnectorError> {
    let user: User = parse(target, "user", value)?;
    let status = match user.active {
        Some(true) => AccountStatus::Active,
        Some(false) => AccountStatus::Inactive,
        None => {
            return Err(ConnectorError::malformed(
                target,
                format!(
                    "user {} ({}) has no `active` flag (expected true or false)",
                    user.id, user.username
                ),
            ))
        }
    };
    let display_name = display_name(user.first_name.as_deref(), user.last_name.as_deref());
    let mut attributes = Attributes::new();
    put_text(&mut attributes, "firstName", user.first_name.as_deref());
    put_text(&mut attributes, "lastName", user.last_name.as_deref());
    put_text(&mut attributes, "phone", user.phone.as_deref());
    put_text(&mut attributes, "title", user.title.as_deref());
    put_text(&mut attributes, "location", user.location.as_deref());
    put_text(&mut attributes, "licenseType", user.license_type.as_deref());
    put_text(
        &mut attributes,
        "authenticationType",
        user.authentication_type
            .as_ref()
            .and_then(|kind| kind.name.as_deref()),
    );
    match user.custom_data {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.is_empty() => {}
        Some(custom) => {
            attributes.insert("customData".to_string(), custom);
        }
    }
    Ok(AccountRecord {
        id: user.id.to_string(),
        name: user.username,
        display_name,
        email: non_empty(user.email.as_deref()),
        status,
        attributes,
    })
}

/// A user group → a `usergroup` entitlement.
fn map_group(target: &str, value: &Value) -> Result<EntitlementRecord, ConnectorError> {
    let group: Group = parse(target, "user group", value)?;
    let mut attributes = Attributes::new();
    put_text(&mut attributes, "description", group.description.as_deref());
    if let Some(project) = group.project.filter(|project| !project.is_null()) {
        attributes.insert("project".to_string(), project);
    }
    Ok(EntitlementRecord {
        entitlement_type: USERGROUP.to_string(),
        id: group.id.to_string(),
        name: group.name,
        attributes,
    })
}

/// The users of `GET /usergroups/{id}/users` → one grant each.
fn map_members(
    target: &str,
    group: &GroupRef,
    users: &[Value],
) -> Result<Vec<GrantRecord>, ConnectorError> {
    users
        .iter()
        .map(|value| {
            let member: Member = parse(target, "group member", value)?;
            Ok(GrantRecord {
                account_id: member.id.to_string(),
                entitlement_type: USERGROUP.to_string(),
                entitlement_id: group.id.clone(),
                entitlement_name: Some(group.name.clone()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use futures::TryStreamExt;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::connector::password::PASSWORD_LENGTH;
    use crate::connector::ErrorClass;

    const SECRET: &str = "jama-SECRET-unmistakable-5c2e";
    const TOKEN: &str = "tok-UNMISTAKABLE-8812";

    /// The user object of the API sheet, as recorded.
    fn sheet_user() -> Value {
        json!({ "id": 123, "username": "jane.doe", "firstName": "Jane", "lastName": "Doe",
          "email": "jane.doe@example.com", "phone": "555-0100", "title": "Engineer",
          "location": "Berlin", "licenseType": "NAMED", "active": true,
          "avatarUrl": "https://jama.example/avatar/123.png",
          "authenticationType": { "id": 1, "name": "BASIC" },
          "customData": [{ "name": "costCenter", "value": "42" }], "type": "users" })
    }

    /// A group object of the sheet.
    fn sheet_group() -> Value {
        json!({ "id": 7, "name": "Reviewers", "description": "Can review", "project": null,
                "type": "usergroups" })
    }

    /// The list envelope of the sheet around `data`.
    fn envelope(data: Vec<Value>, start: u64, total: u64) -> Value {
        json!({ "meta": { "status": "OK", "timestamp": "2026-05-26T16:11:23.071+0000",
                  "pageInfo": { "startIndex": start, "resultCount": data.len(), "totalResults": total } },
                "links": {}, "linked": {}, "data": data })
    }

    #[test]
    fn maps_the_sheets_user() {
        let record = map_user("jama", &sheet_user()).unwrap();
        assert_eq!(record.id, "123");
        assert_eq!(record.name, "jane.doe");
        assert_eq!(record.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(record.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(record.status, AccountStatus::Active);
        assert_eq!(
            Value::Object(record.attributes),
            json!({
                "firstName": "Jane", "lastName": "Doe", "phone": "555-0100", "title": "Engineer",
                "location": "Berlin", "licenseType": "NAMED", "authenticationType": "BASIC",
                "customData": [{ "name": "costCenter", "value": "42" }]
            })
        );
    }

    #[test]
    fn maps_an_inactive_user_with_only_the_required_fields() {
        let record = map_user(
            "jama",
            &json!({ "id": 9, "username": "svc", "active": false, "email": "",
                     "customData": [], "authenticationType": null, "phone": null }),
        )
        .unwrap();
        assert_eq!(record.status, AccountStatus::Inactive);
        assert_eq!(record.display_name, None);
        assert_eq!(record.email, None);
        assert!(record.attributes.is_empty(), "{:?}", record.attributes);
    }

    #[test]
    fn a_user_without_active_or_username_is_malformed_and_named() {
        let mut user = sheet_user();
        user.as_object_mut().unwrap().remove("active");
        let err = map_user("jama", &user).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.to_string()
                .contains("user 123 (jane.doe) has no `active` flag"),
            "{err}"
        );
        let err = map_user("jama", &json!({ "id": 5, "active": true })).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cannot read a user (id 5)") && text.contains("username"),
            "{text}"
        );
    }

    #[test]
    fn maps_groups_and_members() {
        let record = map_group("jama", &sheet_group()).unwrap();
        assert_eq!(
            (
                record.entitlement_type.as_str(),
                record.id.as_str(),
                record.name.as_str()
            ),
            ("usergroup", "7", "Reviewers")
        );
        assert_eq!(
            Value::Object(record.attributes),
            json!({ "description": "Can review" })
        );
        let scoped = map_group("jama", &json!({ "id": 8, "name": "P", "project": 20 })).unwrap();
        assert_eq!(Value::Object(scoped.attributes), json!({ "project": 20 }));
        assert!(map_group("jama", &json!({ "id": 9 }))
            .unwrap_err()
            .to_string()
            .contains("cannot read a user group (id 9)"));

        let group = GroupRef {
            id: "7".into(),
            name: "Reviewers".into(),
        };
        let grants = map_members("jama", &group, &[sheet_user(), json!({ "id": 124 })]).unwrap();
        assert_eq!(
            grants,
            vec![
                GrantRecord {
                    account_id: "123".into(),
                    entitlement_type: "usergroup".into(),
                    entitlement_id: "7".into(),
                    entitlement_name: Some("Reviewers".into()),
                },
                GrantRecord {
                    account_id: "124".into(),
                    entitlement_type: "usergroup".into(),
                    entitlement_id: "7".into(),
                    entitlement_name: Some("Reviewers".into()),
                },
            ]
        );
    }

    #[test]
    fn reads_jama_and_oauth_error_bodies() {
        let body = br#"{"meta":{"status":"Bad Request","timestamp":"x","message":"Username already exists"}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Username already exists")
        );
        assert_eq!(
            error_message(
                br#"{"error":"invalid_client","error_description":"Bad client credentials"}"#
            )
            .as_deref(),
            Some("invalid_client: Bad client credentials")
        );
        assert_eq!(
            error_message(br#"{"meta":{"status":"Too Many Requests"}}"#),
            None
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn the_api_root_is_appended_to_the_tenant_url() {
        for base in [
            "https://jama.example",
            "https://jama.example/",
            "https://jama.example/?x=1",
        ] {
            let root = api_root("jama", &Url::parse(base).unwrap()).unwrap();
            assert_eq!(root.as_str(), "https://jama.example/rest/v1");
        }
        let root = api_root("jama", &Url::parse("https://host/jama/").unwrap()).unwrap();
        assert_eq!(root.as_str(), "https://host/jama/rest/v1");
    }

    /// A target config pointing at `base`, with no pacing and tiny backoffs.
    fn config(base: &str, extra: &str) -> TargetConfig {
        toml::from_str(&format!(
            "kind = \"jama\"\nbase_url = \"{base}\"\nclient_id = \"idsync\"\n\
             client_secret = \"{SECRET}\"\nrate_limit = []\n\
             read_retry = {{ max_attempts = 2, initial_backoff = \"1ms\", max_backoff = \"5ms\" }}\n{extra}"
        ))
        .unwrap()
    }

    /// A mock server with the token endpoint answering [`TOKEN`].
    async fn jama() -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/rest/oauth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({ "access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600 }),
            ))
            .mount(&server)
            .await;
        server
    }

    fn connector(server: &MockServer, extra: &str) -> JamaConnector {
        JamaConnector::new("jama", &config(&server.uri(), extra)).unwrap()
    }

    fn user(id: u64) -> Value {
        json!({ "id": id, "username": format!("user{id}"), "firstName": "U", "lastName": format!("{id}"),
                "email": format!("user{id}@example.com"), "active": id % 3 != 0, "licenseType": "NAMED",
                "type": "users" })
    }

    /// A paged listing of `total` records made by `record`, clamped at 50 per page like Jama,
    /// computed from `startAt` / `maxResults`.
    struct Listing {
        total: u64,
        record: fn(u64) -> Value,
        /// Serve a `resultCount` one less than the data held.
        miscount: bool,
        served: AtomicU64,
    }

    impl Listing {
        fn new(total: u64, record: fn(u64) -> Value) -> Self {
            Self {
                total,
                record,
                miscount: false,
                served: AtomicU64::new(0),
            }
        }
    }

    fn query(request: &Request, name: &str) -> Option<u64> {
        request
            .url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.parse().unwrap())
    }

    impl wiremock::Respond for Listing {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            self.served.fetch_add(1, Ordering::SeqCst);
            let start = query(request, "startAt").unwrap_or(0);
            let max = query(request, "maxResults").unwrap_or(20).min(50);
            let data: Vec<Value> = (start..(start + max).min(self.total))
                .map(|i| (self.record)(i + 1))
                .collect();
            let mut body = envelope(data, start, self.total);
            if self.miscount {
                let count = body["meta"]["pageInfo"]["resultCount"].as_u64().unwrap();
                body["meta"]["pageInfo"]["resultCount"] = json!(count.saturating_sub(1));
            }
            ResponseTemplate::new(200).set_body_json(body)
        }
    }

    fn queries(requests: &[Request], wanted: &str) -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.url.path() == wanted)
            .map(|r| r.url.query().unwrap_or("").to_string())
            .collect()
    }

    #[tokio::test]
    async fn pages_all_users_when_asking_for_more_than_jama_serves() {
        let server = jama().await;
        Mock::given(method("GET"))
            .and(path("/rest/v1/users"))
            .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
            .and(query_param("includeInactive", "true"))
            .respond_with(Listing::new(137, user))
            .mount(&server)
            .await;
        let connector = connector(&server, "page_size = 100");
        let pages: Vec<Vec<AccountRecord>> = connector.accounts().try_collect().await.unwrap();
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [50, 50, 37]);
        let ids: HashSet<String> = pages.iter().flatten().map(|a| a.id.clone()).collect();
        assert_eq!(ids.len(), 137, "no record skipped");
        assert_eq!(pages[2][36].name, "user137");
        assert_eq!(pages[0][2].status, AccountStatus::Inactive);
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            queries(&requests, "/rest/v1/users"),
            [
                "startAt=0&maxResults=100&includeInactive=true",
                "startAt=50&maxResults=100&includeInactive=true",
                "startAt=100&maxResults=100&includeInactive=true",
            ]
        );
        assert_eq!(queries(&requests, "/rest/oauth/token").len(), 1);
    }

    #[tokio::test]
    async fn asks_for_fifty_by_default_and_fails_on_a_miscounted_page() {
        let server = jama().await;
        Mock::given(path("/rest/v1/users"))
            .respond_with(Listing {
                miscount: true,
                ..Listing::new(120, user)
            })
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let err = connector
            .accounts()
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.to_string()
                .contains("inconsistent paging of users: the page at startAt 0 says resultCount 49 but holds 50"),
            "{err}"
        );
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            queries(&requests, "/rest/v1/users"),
            ["startAt=0&maxResults=50&includeInactive=true"]
        );
    }

    fn group(id: u64) -> Value {
        json!({ "id": id, "name": format!("group{id}"), "description": "d", "project": null })
    }

    #[tokio::test]
    async fn reads_groups_as_entitlements() {
        let server = jama().await;
        Mock::given(path("/rest/v1/usergroups"))
            .respond_with(Listing::new(60, group))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let records: Vec<EntitlementRecord> = connector
            .entitlements()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(records.len(), 60);
        assert!(records.iter().all(|r| r.entitlement_type == "usergroup"));
        assert_eq!(records[59].name, "group60");
    }

    #[tokio::test]
    async fn reads_the_members_of_every_group_as_grants() {
        let server = jama().await;
        Mock::given(path("/rest/v1/usergroups"))
            .respond_with(Listing::new(3, group))
            .mount(&server)
            .await;
        // Group 1: 70 members (two pages), group 2: none, group 3: two.
        Mock::given(path("/rest/v1/usergroups/1/users"))
            .respond_with(Listing::new(70, user))
            .mount(&server)
            .await;
        Mock::given(path("/rest/v1/usergroups/2/users"))
            .respond_with(Listing::new(0, user))
            .mount(&server)
            .await;
        Mock::given(path("/rest/v1/usergroups/3/users"))
            .respond_with(Listing::new(2, user))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let pages: Vec<Vec<GrantRecord>> = connector.grants().try_collect().await.unwrap();
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [50, 20, 2]);
        let last = &pages[2][1];
        assert_eq!(
            (
                last.account_id.as_str(),
                last.entitlement_id.as_str(),
                last.entitlement_name.as_deref()
            ),
            ("2", "3", Some("group3"))
        );
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            queries(&requests, "/rest/v1/usergroups/1/users"),
            ["startAt=0&maxResults=50", "startAt=50&maxResults=50"]
        );
        assert_eq!(queries(&requests, "/rest/v1/usergroups/2/users").len(), 1);
    }

    #[tokio::test]
    async fn a_failing_member_read_ends_the_grant_stream() {
        let server = jama().await;
        Mock::given(path("/rest/v1/usergroups"))
            .respond_with(Listing::new(2, group))
            .mount(&server)
            .await;
        Mock::given(path("/rest/v1/usergroups/1/users"))
            .respond_with(ResponseTemplate::new(403).set_body_json(
                json!({ "meta": { "status": "Forbidden", "message": "Not allowed." } }),
            ))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let mut stream = connector.grants();
        let err = stream.try_next().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Forbidden);
        assert!(err.to_string().contains("Not allowed."), "{err}");
        assert!(stream.next().await.is_none(), "nothing after an error");
        let requests = server.received_requests().await.unwrap();
        assert!(queries(&requests, "/rest/v1/usergroups/2/users").is_empty());
    }

    #[tokio::test]
    async fn test_connection_fetches_a_token_and_reads_one_user() {
        let server = jama().await;
        Mock::given(path("/rest/v1/users"))
            .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(Listing::new(3, user))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        connector.test_connection().await.unwrap();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(
            queries(&requests, "/rest/v1/users"),
            ["startAt=0&maxResults=1"]
        );
        assert_eq!(queries(&requests, "/rest/oauth/token").len(), 1);
    }

    #[tokio::test]
    async fn a_rejected_secret_fails_test_connection_clearly() {
        let server = MockServer::start().await;
        Mock::given(path("/rest/oauth/token"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({ "error": "unauthorized", "error_description": format!("bad secret {SECRET}") }),
            ))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let err = connector.test_connection().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth);
        let text = format!("{err} {err:?} {connector:?}");
        assert!(
            text.contains("client_id or client_secret rejected by target jama"),
            "{text}"
        );
        assert!(!text.contains(SECRET), "{text}");
    }

    #[test]
    fn defaults_pace_at_ten_per_second_and_declare_the_operations() {
        let connector =
            JamaConnector::new("jama", &config_with_pacing("https://jama.example")).unwrap();
        let windows: Vec<(u32, u64)> = connector
            .http
            .rate_limits()
            .iter()
            .map(|w| (w.requests, w.per.get().as_secs()))
            .collect();
        assert_eq!(windows, [(10, 1)]);
        assert_eq!(connector.page_size, 50);
        assert_eq!(connector.capabilities().entitlement_types, ["usergroup"]);
        let declared: Vec<(String, Option<String>)> = connector
            .capabilities()
            .operations
            .iter()
            .map(|c| (c.operation.to_string(), c.entitlement_type.clone()))
            .collect();
        let group = Some("usergroup".to_string());
        assert_eq!(
            declared,
            [
                ("create_account".to_string(), None),
                ("update_account".to_string(), None),
                ("enable_account".to_string(), None),
                ("disable_account".to_string(), None),
                ("add_access".to_string(), group.clone()),
                ("remove_access".to_string(), group),
            ]
        );
        assert!(!connector
            .capabilities()
            .operations
            .iter()
            .any(|c| c.operation == Operation::RemoveAccount));
    }

    fn config_with_pacing(base: &str) -> TargetConfig {
        toml::from_str(&format!(
            "kind = \"jama\"\nbase_url = \"{base}\"\nclient_id = \"c\"\nclient_secret = \"s\""
        ))
        .unwrap()
    }

    #[test]
    fn missing_credentials_are_clear_build_errors() {
        let config: TargetConfig =
            toml::from_str("kind = \"jama\"\nbase_url = \"https://jama.example\"").unwrap();
        let err = JamaConnector::new("jama", &config).unwrap_err();
        assert!(err.to_string().contains("client_id is not set"), "{err}");
    }

    fn request(
        operation: Operation,
        account_id: Option<&str>,
        attributes: Value,
    ) -> ProvisionRequest {
        ProvisionRequest {
            operation,
            account_id: account_id.map(str::to_string),
            account_name: "jane.doe".into(),
            entitlement: None,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            entitlement_name: None,
            task_id: None,
            request_id: None,
        }
    }

    fn jane() -> Value {
        json!({ "firstname": "Jane", "lastname": "Doe", "email": "Jane.Doe@example.com",
                "phonenumber": "555-0100", "title": "Engineer", "username": "jane.doe",
                "department": "R&D" })
    }

    /// Records the bodies of `POST /rest/v1/users` and answers `status` with `body`.
    struct Recorder {
        bodies: Arc<Mutex<Vec<Value>>>,
        status: u16,
        body: Value,
    }

    impl wiremock::Respond for Recorder {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            self.bodies
                .lock()
                .unwrap()
                .push(request.body_json().unwrap());
            ResponseTemplate::new(self.status).set_body_json(self.body.clone())
        }
    }

    async fn users_post(server: &MockServer, status: u16, body: Value) -> Arc<Mutex<Vec<Value>>> {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        Mock::given(method("POST"))
            .and(path("/rest/v1/users"))
            .respond_with(Recorder {
                bodies: bodies.clone(),
                status,
                body,
            })
            .mount(server)
            .await;
        bodies
    }

    fn created(id: u64) -> Value {
        json!({ "meta": { "status": "Created", "timestamp": "2026-05-26T16:11:23.071+0000",
                          "location": format!("https://jama.example/rest/v1/users/{id}"), "id": id } })
    }

    #[tokio::test]
    async fn create_account_posts_the_user_with_a_fresh_password_and_reads_meta_id() {
        let server = jama().await;
        let bodies = users_post(&server, 201, created(321)).await;
        let connector = connector(&server, "");
        let task = request(Operation::CreateAccount, None, jane());
        for _ in 0..2 {
            let outcome = connector.provision(&task).await.unwrap();
            assert_eq!(
                outcome,
                ProvisionOutcome::Done {
                    account_id: Some("321".into())
                }
            );
        }
        let bodies = bodies.lock().unwrap().clone();
        let mut first = bodies[0].clone();
        let password = first["password"].as_str().unwrap().to_string();
        assert_eq!(password.len(), PASSWORD_LENGTH);
        assert_ne!(bodies[1]["password"], first["password"], "one per attempt");
        first.as_object_mut().unwrap().remove("password");
        assert_eq!(
            first,
            json!({ "username": "jane.doe", "firstName": "Jane", "lastName": "Doe",
                    "email": "Jane.Doe@example.com", "phone": "555-0100", "title": "Engineer",
                    "licenseType": "NAMED" })
        );
    }

    #[tokio::test]
    async fn create_account_takes_the_license_type_and_falls_back_to_location() {
        let server = jama().await;
        let bodies = users_post(
            &server,
            201,
            json!({ "meta": { "status": "Created", "location": "https://jama.example/rest/v1/users/77" } }),
        )
        .await;
        let connector = connector(&server, "");
        let mut attributes = jane();
        attributes["license_type"] = json!("STAKEHOLDER");
        let outcome = connector
            .create_account("jane.doe", attributes.as_object().unwrap())
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::Done {
                account_id: Some("77".into())
            }
        );
        assert_eq!(bodies.lock().unwrap()[0]["licenseType"], "STAKEHOLDER");
    }

    #[tokio::test]
    async fn create_account_needs_names_and_email_and_sends_nothing_without_them() {
        let server = jama().await;
        let connector = connector(&server, "");
        let task = request(
            Operation::CreateAccount,
            None,
            json!({ "firstname": "Jane", "lastname": " " }),
        );
        let err = connector.provision(&task).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.to_string()
                .contains("create_account needs the attribute(s) lastname, email"),
            "{err}"
        );
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_rejected_create_never_shows_the_password() {
        let server = jama().await;
        Mock::given(method("POST"))
            .and(path("/rest/v1/users"))
            .respond_with(|request: &Request| {
                let body: Value = request.body_json().unwrap();
                let password = body["password"].as_str().unwrap().to_string();
                ResponseTemplate::new(400).set_body_json(json!({
                    "meta": { "status": "Bad Request", "message": format!("password {password} violates policy") }
                }))
            })
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let err = connector
            .provision(&request(Operation::CreateAccount, None, jane()))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let text = err.to_string();
        assert!(
            text.contains("password [REDACTED] violates policy"),
            "{text}"
        );
    }

    /// `GET /rest/v1/users?username=…` answering with `users` (the filter applied by the mock).
    async fn users_named(server: &MockServer, users: Vec<Value>) {
        let total = users.len() as u64;
        Mock::given(method("GET"))
            .and(path("/rest/v1/users"))
            .and(query_param("username", "jane.doe"))
            .and(query_param("includeInactive", "true"))
            .respond_with(ResponseTemplate::new(200).set_body_json(envelope(users, 0, total)))
            .mount(server)
            .await;
    }

    fn duplicate() -> Value {
        json!({ "meta": { "status": "Bad Request", "message": "Username 'jane.doe' already exists." } })
    }

    #[tokio::test]
    async fn a_duplicate_with_the_tasks_email_is_already_done_with_its_id() {
        let server = jama().await;
        users_post(&server, 400, duplicate()).await;
        let mut existing = user(55);
        existing["username"] = json!("Jane.Doe");
        existing["email"] = json!("jane.doe@EXAMPLE.com");
        users_named(&server, vec![user(54), existing]).await;
        let connector = connector(&server, "");
        let outcome = connector
            .provision(&request(Operation::CreateAccount, None, jane()))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::AlreadyDone {
                account_id: Some("55".into())
            }
        );
    }

    #[tokio::test]
    async fn a_duplicate_held_by_someone_else_is_permanent() {
        let server = jama().await;
        users_post(&server, 400, duplicate()).await;
        let mut existing = user(56);
        existing["username"] = json!("jane.doe");
        existing["email"] = json!("other.jane@example.com");
        users_named(&server, vec![existing]).await;
        let connector = connector(&server, "");
        let err = connector
            .provision(&request(Operation::CreateAccount, None, jane()))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            err.to_string()
                .contains("username jane.doe taken by account id 56"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_duplicate_with_no_user_of_that_name_keeps_jamas_message() {
        let server = jama().await;
        users_post(&server, 400, duplicate()).await;
        users_named(&server, vec![user(57)]).await;
        let connector = connector(&server, "");
        let err = connector
            .provision(&request(Operation::CreateAccount, None, jane()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    #[tokio::test]
    async fn update_account_puts_the_whole_user_with_the_changes() {
        let server = jama().await;
        Mock::given(method("GET"))
            .and(path("/rest/v1/users/123"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "meta": { "status": "OK" }, "data": sheet_user() })),
            )
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/rest/v1/users/123"))
            .and(body_json(json!({
                "username": "jane.doe", "firstName": "Jane", "lastName": "Smith",
                "email": "jane.smith@example.com", "phone": "555-0100", "title": "Lead",
                "location": "Berlin", "licenseType": "NAMED"
            })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "meta": { "status": "OK" } })),
            )
            .expect(1)
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let task = request(
            Operation::UpdateAccount,
            Some("123"),
            json!({ "lastname": "Smith", "email": "jane.smith@example.com", "title": "Lead",
                    "firstname": "Jane", "department": "ignored" }),
        );
        let outcome = connector.provision(&task).await.unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::Done {
                account_id: Some("123".into())
            }
        );
    }

    #[tokio::test]
    async fn an_update_with_nothing_new_is_already_done_without_a_put() {
        let server = jama().await;
        Mock::given(method("GET"))
            .and(path("/rest/v1/users/123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": sheet_user() })))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let outcome = connector
            .update_account("123", json!({ "title": "Engineer" }).as_object().unwrap())
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::AlreadyDone {
                account_id: Some("123".into())
            }
        );
        let requests = server.received_requests().await.unwrap();
        assert!(!requests.iter().any(|r| r.method.as_str() == "PUT"));

        let err = connector
            .update_account("123", json!({ "department": "x" }).as_object().unwrap())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("the task sets none of them"),
            "{err}"
        );
        let err = connector
            .provision(&request(
                Operation::UpdateAccount,
                None,
                json!({ "title": "x" }),
            ))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("needs the account's Jama id"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn enable_and_disable_put_the_active_flag() {
        let server = jama().await;
        for active in [true, false] {
            Mock::given(method("PUT"))
                .and(path("/rest/v1/users/123/active"))
                .and(body_json(json!({ "active": active })))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({ "meta": { "status": "OK" } })),
                )
                .expect(1)
                .mount(&server)
                .await;
        }
        let connector = connector(&server, "");
        for operation in [Operation::EnableAccount, Operation::DisableAccount] {
            let outcome = connector
                .provision(&request(operation, Some("123"), json!({})))
                .await
                .unwrap();
            assert_eq!(outcome, ProvisionOutcome::Done { account_id: None });
        }
    }

    fn access(operation: Operation, kind: &str, group: &str) -> ProvisionRequest {
        ProvisionRequest {
            entitlement: Some((kind.to_string(), group.to_string())),
            ..request(operation, Some("123"), json!({}))
        }
    }

    #[tokio::test]
    async fn add_access_posts_the_user_and_counts_a_member_as_done() {
        let server = jama().await;
        Mock::given(method("POST"))
            .and(path("/rest/v1/usergroups/7/users"))
            .and(body_json(json!({ "user": 123 })))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({ "meta": { "status": "Created" } })),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/rest/v1/usergroups/8/users"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({ "meta": { "status": "Bad Request", "message": "User already exists in group" } }),
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/rest/v1/usergroups/9/users"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({ "meta": { "status": "Bad Request", "message": "Invalid user" } }),
            ))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        assert_eq!(
            connector
                .provision(&access(Operation::AddAccess, "usergroup", "7"))
                .await
                .unwrap(),
            ProvisionOutcome::Done { account_id: None }
        );
        assert_eq!(
            connector
                .provision(&access(Operation::AddAccess, "UserGroup", "8"))
                .await
                .unwrap(),
            ProvisionOutcome::AlreadyDone { account_id: None }
        );
        let err = connector
            .provision(&access(Operation::AddAccess, "usergroup", "9"))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(err.to_string().contains("Invalid user"), "{err}");
        let err = connector
            .provision(&access(Operation::AddAccess, "role", "7"))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unsupported);
        let err = connector.add_access("7", "not-a-number").await.unwrap_err();
        assert!(err.to_string().contains("is not a Jama user id"), "{err}");
    }

    #[tokio::test]
    async fn remove_access_deletes_the_membership_and_counts_404_as_done() {
        let server = jama().await;
        Mock::given(method("DELETE"))
            .and(path("/rest/v1/usergroups/7/users/123"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "meta": { "status": "OK" } })),
            )
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/rest/v1/usergroups/8/users/123"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/rest/v1/usergroups/9/users/123"))
            .respond_with(ResponseTemplate::new(404).set_body_json(
                json!({ "meta": { "status": "Not Found", "message": "User is not in group" } }),
            ))
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        for (group, want) in [
            ("7", ProvisionOutcome::Done { account_id: None }),
            ("8", ProvisionOutcome::Done { account_id: None }),
            ("9", ProvisionOutcome::AlreadyDone { account_id: None }),
        ] {
            let outcome = connector
                .provision(&access(Operation::RemoveAccess, "usergroup", group))
                .await
                .unwrap();
            assert_eq!(outcome, want, "group {group}");
        }
    }

    #[tokio::test]
    async fn remove_account_is_refused_with_the_reason() {
        let server = jama().await;
        let connector = connector(&server, "");
        let err = connector
            .provision(&request(Operation::RemoveAccount, Some("123"), json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unsupported);
        assert!(
            err.to_string()
                .contains("Jama has no user delete; disable the account instead"),
            "{err}"
        );
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn remove_with_the_disable_strategy_deactivates_the_user() {
        let server = jama().await;
        Mock::given(method("PUT"))
            .and(path("/rest/v1/users/123/active"))
            .and(body_json(json!({ "active": false })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "meta": { "status": "OK" } })),
            )
            .expect(1)
            .mount(&server)
            .await;
        let connector = connector(&server, "remove_strategy = \"disable\"");
        assert!(connector
            .capabilities()
            .supports(Operation::RemoveAccount, None));
        let outcome = connector
            .provision(&request(Operation::RemoveAccount, Some("123"), json!({})))
            .await
            .unwrap();
        assert_eq!(outcome, ProvisionOutcome::Done { account_id: None });
        let default = connector_default_reason(&server);
        assert!(default.contains("remove_strategy"), "{default}");
    }

    fn connector_default_reason(server: &MockServer) -> String {
        connector(server, "").unsupported_reason(Operation::RemoveAccount, None)
    }

    #[tokio::test]
    async fn lookup_finds_the_user_by_name_including_inactive_ones() {
        let server = jama().await;
        let mut existing = user(55);
        existing["username"] = json!("Jane.Doe");
        existing["active"] = json!(false);
        users_named(&server, vec![user(54), existing]).await;
        let connector = connector(&server, "");
        let found = connector.lookup_account("jane.doe").await.unwrap().unwrap();
        assert_eq!(found.id, "55");
        assert_eq!(found.status, AccountStatus::Inactive);
    }

    #[tokio::test]
    async fn a_template_override_shapes_the_create_body_and_the_password_stays_secret() {
        let server = jama().await;
        let bodies = users_post(&server, 201, created(9)).await;
        let template = "templates.create_account = '''{\"username\": \"${ account.name }\", \
            \"password\": \"${ password }\", \"firstName\": \"${ user.firstname }\", \
            \"lastName\": \"${ user.lastname }\", \"email\": \"${ user.email }\", \
            \"licenseType\": \"STAKEHOLDER\", \"location\": \"${ user.department }\"}'''";
        let connector = connector(&server, template);
        connector
            .provision(&request(Operation::CreateAccount, None, jane()))
            .await
            .unwrap();
        let mut body = bodies.lock().unwrap()[0].clone();
        assert_eq!(body["password"].as_str().unwrap().len(), PASSWORD_LENGTH);
        body.as_object_mut().unwrap().remove("password");
        assert_eq!(
            body,
            json!({ "username": "jane.doe", "firstName": "Jane", "lastName": "Doe",
                    "email": "Jane.Doe@example.com", "licenseType": "STAKEHOLDER",
                    "location": "R&D" })
        );
    }

    #[tokio::test]
    async fn an_expired_token_mid_provisioning_is_refreshed_and_the_call_repeated() {
        let server = MockServer::start().await;
        let issued = Arc::new(AtomicU64::new(0));
        let counter = issued.clone();
        Mock::given(path("/rest/oauth/token"))
            .respond_with(move |_: &Request| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                ResponseTemplate::new(200).set_body_json(
                    json!({ "access_token": format!("t{n}"), "token_type": "bearer", "expires_in": 3600 }),
                )
            })
            .mount(&server)
            .await;
        Mock::given(path("/rest/v1/users/123/active"))
            .and(header("Authorization", "Bearer t2"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(path("/rest/v1/users/123/active"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({ "meta": { "status": "Unauthorized", "message": "token expired" } }),
            ))
            .with_priority(2)
            .mount(&server)
            .await;
        let connector = connector(&server, "");
        let outcome = connector.disable_account("123").await.unwrap();
        assert_eq!(outcome, ProvisionOutcome::Done { account_id: None });
        assert_eq!(issued.load(Ordering::SeqCst), 2);
    }
}
