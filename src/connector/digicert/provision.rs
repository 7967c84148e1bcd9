//! Changing DigiCert: the request-body templates, what the target supports, and one method
//! per operation.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::config::ContainerMove;
use super::wire::{numeric, replacement, role_ids, user_container_id, Created};
use super::{DigicertConnector, CONTAINER, ROLE};
use crate::config::DisableStrategy;
use crate::connector::kit::Adapter;
use crate::connector::kit::{self, idempotency, rest, AccountId, Entitlement, Operations, Outcome};
use crate::connector::template::{Escape, TemplateCatalog, TemplateContext};
use crate::connector::{Capabilities, ConnectorError, ProvisionOutcome, ProvisionRequest};
use crate::model::Operation;

/// The built-in request-body templates (`templates/`): `create_account` (`POST /user`) and
/// `update_account` (the changes merged into the user's Edit-user fields as read before they
/// are `PUT` back), JSON; each file says what it sends.
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

/// Why `enable_account` / `disable_account` are refused.
pub const NO_ENABLE_DISABLE: &str = "CertCentral has no enable/disable call";

/// Why `remove_access` on a container is refused.
pub const ONE_CONTAINER: &str = "a DigiCert user has exactly one container; move the user \
                                 with add_access on another container instead";

/// Why `add_access` on a container is refused unless `container_move` is set.
pub const NO_CONTAINER_MOVE: &str = "CertCentral documents no call that moves a user to \
    another container (division): Edit user (PUT /user/{id}) lists no container field. To \
    send it there anyway, as Saviynt's package does, set container_move = \"put_user\" on \
    this target (idsync then reads the user back and fails the task if it did not move)";

/// The attributes a create needs (DigiCert requires a first name, a last name and an email).
const REQUIRED_ON_CREATE: [&str; 3] = ["firstname", "lastname", "email"];

/// What the built-in `update_account` template changes.
const UPDATE_FIELDS: &str = "firstname, lastname, email, title, phonenumber on DigiCert";

/// What a DigiCert target supports with `disable_strategy` and `container_move`: create,
/// update and remove accounts, add and remove `role`s, `disable_account` only with the
/// `delete` strategy, and add (move to) a `container` only with a `container_move`.
pub fn capabilities(
    disable: DisableStrategy,
    container_move: Option<ContainerMove>,
) -> Capabilities {
    let mut account = vec![
        Operation::CreateAccount,
        Operation::UpdateAccount,
        Operation::RemoveAccount,
    ];
    if disable == DisableStrategy::Delete {
        account.push(Operation::DisableAccount);
    }
    let mut access = vec![
        (Operation::AddAccess, ROLE),
        (Operation::RemoveAccess, ROLE),
    ];
    if container_move.is_some() {
        access.push((Operation::AddAccess, CONTAINER));
    }
    Capabilities::new(&[ROLE, CONTAINER], account, access)
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
        (Operation::AddAccess, Some(kind)) if kind.eq_ignore_ascii_case(CONTAINER) => {
            NO_CONTAINER_MOVE.to_string()
        }
        _ => kit::refusal(
            DigicertConnector::NAME,
            operation,
            entitlement_type,
            &[ROLE, CONTAINER],
            "ID",
        ),
    }
}

#[async_trait]
impl Operations for DigicertConnector {
    /// Creates the user (`POST /user`, body from the `create_account` template). Needs the
    /// attributes `firstname`, `lastname` and `email`; the role is the request's `role`
    /// entitlement, else `default_role`; `container_id` (an attribute) places the user in
    /// that container.
    ///
    /// `Done` with the new id (the 201's `id`). A duplicate username is judged by
    /// [`judge_duplicate`](idempotency::judge_duplicate): the same person (same email) is
    /// `AlreadyDone` with its id.
    async fn create_account(&self, request: &ProvisionRequest) -> Outcome {
        let core = &self.core;
        rest::check_create(
            core,
            request,
            &REQUIRED_ON_CREATE,
            "DigiCert requires a first name, a last name and an email",
        )?;
        // The template puts container_id and the role id in a number's place: they are
        // bound as the numbers they parse to, so `+5`, `007` or ` 5 ` (which parse) still
        // render valid JSON.
        let mut request = request.clone();
        if let Some(container) = request.attributes.get_mut("container_id") {
            if !container.is_null() {
                match numeric(container) {
                    Some(number) => *container = number.into(),
                    None => {
                        return Err(core.refused(format!(
                            "attribute container_id must be a DigiCert container id (a number), \
                             not {container}"
                        )))
                    }
                }
            }
        }
        let request = &request;
        let (role, role_name) = match &request.entitlement {
            Some((kind, id)) if kind.eq_ignore_ascii_case(ROLE) => {
                (id.as_str(), request.entitlement_name.as_deref())
            }
            Some((kind, _)) => {
                return Err(core.refused(format!(
                    "create_account takes a {ROLE} entitlement, not `{kind}` (give the \
                     container as the attribute container_id)"
                )))
            }
            None => (self.default_role.as_str(), None),
        };
        let role = self.role_number(role)?.to_string();
        let context = TemplateContext::from_request(core.target(), request)
            .with_entitlement(ROLE, &role, role_name);
        let body = core
            .templates()
            .render("create_account", &context)
            .map_err(|err| core.template_failed(err))?;
        let username =
            rest::body_text(&body, "username").unwrap_or_else(|| request.account_name.clone());
        let email = rest::body_text(&body, "email");
        let url = self.http.url(&["user"], &[])?;
        match self.http.send(Method::POST, url, Some(&body)).await {
            Ok(response) => {
                let created: Created = self.http.parse_json("POST /user", &response.body)?;
                Ok(ProvisionOutcome::Done {
                    account_id: Some(created.id.to_string()),
                })
            }
            Err(err) if idempotency::is_refusal_saying(&err, "duplicate") => {
                let holder = self.holder(&username).await?;
                idempotency::judge_duplicate(core, &username, email.as_deref(), holder, err)
            }
            Err(err) => Err(err),
        }
    }

    /// Changes the user with the `update_account` template's fields: reads the user, merges
    /// the changes into its Edit-user fields and `PUT`s them back (Edit user erases a
    /// `job_title` or `telephone` left out, so every one read is carried over; roles and
    /// container are not Edit-user fields and are not sent). `AlreadyDone` when every value
    /// is already in place.
    async fn update_account(&self, request: &ProvisionRequest) -> Outcome {
        let account = self.core.account_id(request)?;
        let changes = rest::update_changes(&self.core, request, UPDATE_FIELDS)?;
        let current = replacement(&self.user(account).await?);
        let changed = rest::replace(current, changes, |body| self.put_user(account, body)).await?;
        Ok(ProvisionOutcome::changed(
            changed,
            Some(account.to_string()),
        ))
    }

    /// Deletes the user: declared only with `disable_strategy = "delete"`.
    async fn disable_account(&self, request: &ProvisionRequest) -> Outcome {
        self.remove_account(request).await
    }

    /// Deletes the user (`DELETE /user/{id}`). A 404 (already gone) is `AlreadyDone`.
    async fn remove_account(&self, request: &ProvisionRequest) -> Outcome {
        let account = self.core.account_id(request)?;
        let url = self.http.url(&["user", account.as_str()], &[])?;
        let sent = self.http.send(Method::DELETE, url, None).await;
        idempotency::already_done_if(
            sent.map(|_| ProvisionOutcome::Done { account_id: None }),
            idempotency::is_not_found,
        )
    }

    /// A `role`: the whole role list with it (`PUT /user/{id}/role`); held already is
    /// `AlreadyDone`. A `container` (declared only with `container_move = "put_user"`):
    /// moves the user there through Edit user and checks it moved; there already is
    /// `AlreadyDone`.
    async fn add_access(
        &self,
        request: &ProvisionRequest,
        entitlement: Entitlement<'_>,
    ) -> Outcome {
        let account = self.core.account_id(request)?;
        if entitlement.is(CONTAINER) {
            return match self.container_move {
                Some(ContainerMove::PutUser) => {
                    self.move_to_container(account, entitlement.id).await
                }
                None => Err(self
                    .core
                    .unsupported(Operation::AddAccess, NO_CONTAINER_MOVE.to_string())),
            };
        }
        let role = self.role_number(entitlement.id)?;
        let mut roles = self.held_roles(account).await?;
        if roles.contains(&role) {
            return Ok(ProvisionOutcome::AlreadyDone { account_id: None });
        }
        roles.push(role);
        self.set_roles(account, &roles).await
    }

    /// A `role`: the whole role list without it (`PUT /user/{id}/role`); not held is
    /// `AlreadyDone`, and the user's last role is refused (a DigiCert user needs one).
    async fn remove_access(
        &self,
        request: &ProvisionRequest,
        entitlement: Entitlement<'_>,
    ) -> Outcome {
        let account = self.core.account_id(request)?;
        let role = self.role_number(entitlement.id)?;
        let held = self.held_roles(account).await?;
        if !held.contains(&role) {
            return Ok(ProvisionOutcome::AlreadyDone { account_id: None });
        }
        let rest: Vec<u64> = held.into_iter().filter(|held| *held != role).collect();
        if rest.is_empty() {
            return Err(self.core.refused(format!(
                "cannot remove role {role} from user {account}: it is the user's last role \
                 and a DigiCert user needs at least one (add another role first)"
            )));
        }
        self.set_roles(account, &rest).await
    }
}

impl DigicertConnector {
    /// `container_move = "put_user"`: moves the user to container `container_id` by sending
    /// its Edit-user fields as read plus `container: {id}` in `PUT /user/{id}` (not a
    /// documented field), then reads the user back: a user still elsewhere fails the task
    /// (the server ignored the field). Already there is `AlreadyDone`.
    async fn move_to_container(&self, account: AccountId<'_>, container_id: &str) -> Outcome {
        let container = container_id.trim().parse::<u64>().map_err(|_| {
            self.core.refused(format!(
                "container id `{container_id}` is not a DigiCert container id (a number)"
            ))
        })?;
        let user = self.user(account).await?;
        if user_container_id(&user) == Some(container) {
            return Ok(ProvisionOutcome::AlreadyDone { account_id: None });
        }
        let mut body = replacement(&user);
        body.insert("container".to_string(), json!({ "id": container }));
        self.put_user(account, body).await?;
        let now = user_container_id(&self.user(account).await?);
        if now != Some(container) {
            let now = now.map_or_else(|| "none".to_string(), |id| id.to_string());
            tracing::warn!(
                target = self.core.target(),
                account = %account,
                container,
                now = %now,
                "DigiCert accepted a container move through Edit user but did not move the user."
            );
            return Err(self.core.refused(format!(
                "DigiCert answered the container move of user {account} with success, but the \
                 user is still in container {now}, not {container}: this server does not move \
                 users through Edit user (PUT /user/{{id}}). Remove container_move from the \
                 target and move the user in CertCentral"
            )));
        }
        Ok(ProvisionOutcome::Done { account_id: None })
    }

    /// The ids of every role user `account` holds, read now. A role whose id cannot be read
    /// fails the operation before anything is sent: the whole list goes back in `PUT
    /// /user/{id}/role`, so leaving it out would remove it.
    async fn held_roles(&self, account: AccountId<'_>) -> Result<Vec<u64>, ConnectorError> {
        let user = self.user(account).await?;
        role_ids(&user).map_err(|problem| {
            let username = user
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or("no username");
            tracing::warn!(
                target = self.core.target(),
                account = %account,
                problem = %problem,
                "A DigiCert user's roles cannot be read; the role change was not sent."
            );
            self.core.refused(format!(
                "user {account} ({username}) {problem}: a role change sends the whole role \
                 list back (PUT /user/{{id}}/role), which would remove that role, so nothing \
                 was sent. Check the user's roles in CertCentral, then retry the task"
            ))
        })
    }

    /// `PUT /user/{id}/role` with the whole list.
    async fn set_roles(&self, account: AccountId<'_>, roles: &[u64]) -> Outcome {
        let list: Vec<Value> = roles.iter().map(|role| json!({ "id": role })).collect();
        let url = self.http.url(&["user", account.as_str(), "role"], &[])?;
        self.http
            .send(Method::PUT, url, Some(&json!({ "access_roles": list })))
            .await?;
        Ok(ProvisionOutcome::Done { account_id: None })
    }

    /// `PUT /user/{id}` (Edit user) with `body`.
    async fn put_user(
        &self,
        account: AccountId<'_>,
        body: Map<String, Value>,
    ) -> Result<(), ConnectorError> {
        let url = self.http.url(&["user", account.as_str()], &[])?;
        self.http
            .send(Method::PUT, url, Some(&Value::Object(body)))
            .await?;
        Ok(())
    }

    /// A role id as the number DigiCert's bodies take.
    fn role_number(&self, role_id: &str) -> Result<u64, ConnectorError> {
        role_id.trim().parse::<u32>().map(u64::from).map_err(|_| {
            self.core.refused(format!(
                "role id `{role_id}` is not a DigiCert access role id (a number)"
            ))
        })
    }
}
