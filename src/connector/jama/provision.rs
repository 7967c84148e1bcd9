//! Changing Jama: the request-body templates, what the target supports, and one method per
//! operation.

use async_trait::async_trait;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use url::Url;

use super::wire::ItemBody;
use super::{JamaConnector, USERGROUP};
use crate::config::RemoveStrategy;
use crate::connector::http::HttpResponse;
use crate::connector::kit::Adapter;
use crate::connector::kit::{self, idempotency, rest, AccountId, Entitlement, Operations, Outcome};
use crate::connector::password::generate_password;
use crate::connector::template::{Escape, TemplateCatalog, TemplateContext};
use crate::connector::{Capabilities, ConnectorError, ProvisionOutcome, ProvisionRequest};
use crate::model::{Attributes, Operation};

/// The built-in request-body templates (`templates/`): `create_account` (`POST /users`,
/// with the generated password) and `update_account` (the changes merged into the user as
/// read before the whole user is `PUT` back), JSON; each file says what it sends.
pub const TEMPLATES: TemplateCatalog = TemplateCatalog {
    defaults: &[
        (
            "create_account",
            include_str!("templates/create_account.json.jinja"),
        ),
        (
            "update_account",
            include_str!("templates/update_account.json.jinja"),
        ),
    ],
    optional: &[],
    escape: Escape::Json,
};

/// The license given to a created user when the task sets no `license_type` attribute.
pub const DEFAULT_LICENSE_TYPE: &str = "NAMED";

/// Why `remove_account` is refused.
pub const NO_USER_DELETE: &str = "Jama has no user delete; disable the account instead";

/// The attributes Jama requires on create (besides `username` and `password`).
const REQUIRED_ON_CREATE: [&str; 3] = ["firstname", "lastname", "email"];

/// Task attributes (Saviynt-style lower-case keys) that become Jama user fields on create
/// and update.
const ATTRIBUTES: [&str; 7] = [
    "firstname",
    "lastname",
    "email",
    "phonenumber",
    "title",
    "location",
    "license_type",
];

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

/// What a Jama target supports with `remove_strategy`: create, update, enable and disable
/// accounts, add and remove `usergroup` membership, and `remove_account` only with the
/// `disable` strategy.
pub fn capabilities(remove: RemoveStrategy) -> Capabilities {
    let mut account = vec![
        Operation::CreateAccount,
        Operation::UpdateAccount,
        Operation::EnableAccount,
        Operation::DisableAccount,
    ];
    if remove == RemoveStrategy::Disable {
        account.push(Operation::RemoveAccount);
    }
    let access = [
        (Operation::AddAccess, USERGROUP),
        (Operation::RemoveAccess, USERGROUP),
    ];
    Capabilities::new(&[USERGROUP], account, access)
}

/// Why a Jama target refuses `operation` on `entitlement_type` (see [`capabilities`]).
pub fn unsupported_reason(operation: Operation, entitlement_type: Option<&str>) -> String {
    match (operation, entitlement_type) {
        (Operation::RemoveAccount, _) => format!(
            "{NO_USER_DELETE} (or set remove_strategy = \"disable\" to deactivate the user on \
             remove_account)"
        ),
        _ => kit::refusal(
            JamaConnector::NAME,
            operation,
            entitlement_type,
            &[USERGROUP],
            "ID",
        ),
    }
}

#[async_trait]
impl Operations for JamaConnector {
    /// Creates the user (`POST /users`) from the task's attributes: `firstname`, `lastname`
    /// and `email` (required), `phonenumber`, `title`, `location`, and `license_type`
    /// (default [`DEFAULT_LICENSE_TYPE`]), with a strong random initial password generated
    /// for this attempt (sent to Jama only; users reset it through Jama).
    ///
    /// `Done` with the new id (`meta.id` of the 201). A duplicate username is judged by
    /// [`judge_duplicate`](idempotency::judge_duplicate): the same person (same email) is
    /// `AlreadyDone` with its id.
    async fn create_account(&self, request: &ProvisionRequest) -> Outcome {
        let core = &self.core;
        let username = request.account_name.as_str();
        rest::check_create(
            core,
            request,
            &REQUIRED_ON_CREATE,
            "Jama requires a first name, a last name and an email",
        )?;
        self.check_attributes(&request.attributes)?;
        let password = generate_password();
        let context =
            TemplateContext::from_request(core.target(), request).with_password(&password);
        let body = core
            .templates()
            .render("create_account", &context)
            .map_err(|err| core.template_failed(err))?;
        drop(context);
        let email = rest::body_text(&body, "email");
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
            Err(err) if idempotency::is_refusal_saying(&err, "already exists") => {
                let holder = self.holder(username).await?;
                idempotency::judge_duplicate(core, username, email.as_deref(), holder, err)
            }
            Err(err) => Err(err),
        }
    }

    /// Changes the user's attributes (`firstname`, `lastname`, `email`, `phonenumber`,
    /// `title`, `location`, `license_type`) with the `update_account` template's fields:
    /// reads the user, merges the changes and `PUT`s the whole object back (Jama's PUT
    /// replaces; the password is never sent). `AlreadyDone` when every value is already in
    /// place.
    async fn update_account(&self, request: &ProvisionRequest) -> Outcome {
        let account = self.core.account_id(request)?;
        self.check_attributes(&request.attributes)?;
        let fields = format!("{} on Jama", ATTRIBUTES.join(", "));
        let mut changes = rest::update_changes(&self.core, request, &fields)?;
        changes.remove("password");
        let url = self.http.url(&["users", account.as_str()], &[])?;
        let current: ItemBody = self.http.get_json(url.clone()).await?;
        let Some(Value::Object(user)) = current.data else {
            return Err(self.core.malformed(format!(
                "the response to GET /users/{account} has no user object in data"
            )));
        };
        let writable = WRITABLE_FIELDS.iter().filter_map(|field| {
            let value = user.get(*field).filter(|value| !value.is_null())?;
            Some((field.to_string(), value.clone()))
        });
        let put = |body| async move {
            let body = Value::Object(body);
            self.http
                .send(Method::PUT, url, Some(&body))
                .await
                .map(|_| ())
        };
        let changed = rest::replace(writable.collect(), changes, put).await?;
        Ok(ProvisionOutcome::changed(
            changed,
            Some(account.to_string()),
        ))
    }

    /// Enables the user (`PUT /users/{id}/active` with `{"active": true}`).
    async fn enable_account(&self, request: &ProvisionRequest) -> Outcome {
        self.set_active(self.core.account_id(request)?, true).await
    }

    /// Disables the user (`PUT /users/{id}/active` with `{"active": false}`).
    async fn disable_account(&self, request: &ProvisionRequest) -> Outcome {
        self.set_active(self.core.account_id(request)?, false).await
    }

    /// Deactivates the user: declared only with `remove_strategy = "disable"`.
    async fn remove_account(&self, request: &ProvisionRequest) -> Outcome {
        self.disable_account(request).await
    }

    /// Adds the user to the group (`POST /usergroups/{id}/users` with `{"user": <id>}`).
    /// "Already exists" (already a member) is `AlreadyDone`.
    async fn add_access(
        &self,
        request: &ProvisionRequest,
        entitlement: Entitlement<'_>,
    ) -> Outcome {
        let user = self.numeric_id(self.core.account_id(request)?)?;
        let url = self
            .http
            .url(&["usergroups", entitlement.id, "users"], &[])?;
        let sent = self
            .http
            .send(Method::POST, url, Some(&json!({ "user": user })))
            .await;
        idempotency::already_done_if(
            sent.map(|_| ProvisionOutcome::Done { account_id: None }),
            |err| idempotency::is_refusal_saying(err, "already exists"),
        )
    }

    /// Removes the user from the group (`DELETE /usergroups/{id}/users/{userId}`). A 404
    /// (not a member) is `AlreadyDone`.
    async fn remove_access(
        &self,
        request: &ProvisionRequest,
        entitlement: Entitlement<'_>,
    ) -> Outcome {
        let account = self.core.account_id(request)?;
        let path = ["usergroups", entitlement.id, "users", account.as_str()];
        let url = self.http.url(&path, &[])?;
        let sent = self.http.send(Method::DELETE, url, None).await;
        idempotency::already_done_if(
            sent.map(|_| ProvisionOutcome::Done { account_id: None }),
            idempotency::is_not_found,
        )
    }
}

impl JamaConnector {
    /// `PUT /users/{id}/active`.
    async fn set_active(&self, account: AccountId<'_>, active: bool) -> Outcome {
        let url = self.http.url(&["users", account.as_str(), "active"], &[])?;
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
        match self.holder(username).await? {
            Some(holder) => Ok(holder.id),
            None => Err(self.core.malformed(format!(
                "user {username} was created (HTTP {}) but the response has no meta.id and the \
                 user cannot be found by name",
                response.status.as_u16()
            ))),
        }
    }

    /// Refuses a task whose Jama attributes are not text (lists or objects).
    fn check_attributes(&self, attributes: &Attributes) -> Result<(), ConnectorError> {
        for key in ATTRIBUTES {
            self.attribute_text(attributes, key)?;
        }
        Ok(())
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
            Some(_) => Err(self.core.refused(format!(
                "attribute {key} must be a text value, not a list or an object"
            ))),
        }
    }

    /// A Jama user id as the number Jama's bodies take.
    fn numeric_id(&self, account: AccountId<'_>) -> Result<u64, ConnectorError> {
        account.as_str().trim().parse().map_err(|_| {
            self.core.refused(format!(
                "account id `{account}` is not a Jama user id (a number)"
            ))
        })
    }
}
