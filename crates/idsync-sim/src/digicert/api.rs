//! The `/services/v2` API: key check, rate windows, injected faults, then the routes.
//!
//! Order of checks for every API request: latency is slept first; then a missing, wrong or
//! revoked key answers 401 (and is not counted against the rate windows, which are per key);
//! then the rate windows (refused requests still count); then fault rules; then the route.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use std::borrow::Cow;

use super::data::{all_roles, ContainerView, Directory, RoleSet, UserFields, UserRecord, UserView};
use super::{DigicertControl, SimState, API_ROOT, DEVKEY_HEADER};
use crate::control::delay;
use crate::faults::RequestFacts;

/// One entry of an error body `{"errors":[{"code":"…","message":"…"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable code, e.g. `not_found` or `missing_field|email`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error entry.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Option<Vec<u8>>,
}

impl Reply {
    fn empty(status: u16) -> Self {
        Self { status, body: None }
    }

    fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status,
                body: Some(body),
            },
            Err(_) => Self::error(500, "internal_server_error", "Serialization failed."),
        }
    }

    pub(crate) fn error(status: u16, code: &str, message: &str) -> Self {
        Self::errors(status, &[ApiError::new(code, message)])
    }

    pub(crate) fn errors(status: u16, errors: &[ApiError]) -> Self {
        #[derive(Serialize)]
        struct Body<'a> {
            errors: &'a [ApiError],
        }
        Self::json(status, &Body { errors })
    }

    fn not_found(what: &str) -> Self {
        Self::error(
            404,
            "not_found",
            &format!("The requested {what} was not found."),
        )
    }

    fn no_route() -> Self {
        Self::error(404, "not_found|route", "The requested route was not found.")
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self.body {
            Some(body) => (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            None => status.into_response(),
        }
    }
}

/// The axum fallback: every request that is not a control route.
pub(super) async fn entry(
    State(control): State<DigicertControl>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some(api_path) = api_path(path) else {
        tracing::debug!(method = %method, path, status = 404, "DigiCert simulator: no such route.");
        return Reply::no_route().into_response();
    };
    delay(&control).await;
    let key = headers.get(DEVKEY_HEADER).and_then(|v| v.to_str().ok());
    let request = ApiRequest {
        method: method.as_str(),
        path,
        api_path,
        query: uri.query(),
        key,
        body: &body,
    };
    let reply = {
        let mut state = control.lock();
        let now = state.core.clock.now();
        state.handle(&request, now)
    };
    tracing::debug!(method = %method, path, status = reply.status, "DigiCert simulator request.");
    reply.into_response()
}

/// The path below the API root (`/user/5`), or `None` outside it.
fn api_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(API_ROOT)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// An API request as the handlers see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) api_path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) key: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    ListUsers,
    CreateUser,
    GetMe,
    GetUser(u64),
    UpdateUser(u64),
    DeleteUser(u64),
    SetRoles(u64),
    ListContainers,
    GetContainer(u32),
    ContainerRoles(u32),
    Unmatched,
}

impl Route {
    fn parse(method: &str, api_path: &str) -> Self {
        let trimmed = api_path.trim_matches('/');
        let segments: Vec<&str> = trimmed.split('/').collect();
        let number = |text: &str| -> Option<u64> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };
        let container = |text: &str| number(text).and_then(|n| u32::try_from(n).ok());
        let route = match (method, segments.as_slice()) {
            ("GET", ["user"]) => Some(Route::ListUsers),
            ("POST", ["user"]) => Some(Route::CreateUser),
            // User info: `me` stands for the user the API key belongs to (GET only: the
            // docs allow it nowhere else).
            ("GET", ["user", "me"]) => Some(Route::GetMe),
            ("GET", ["user", id]) => number(id).map(Route::GetUser),
            ("PUT", ["user", id]) => number(id).map(Route::UpdateUser),
            ("DELETE", ["user", id]) => number(id).map(Route::DeleteUser),
            ("PUT", ["user", id, "role"]) => number(id).map(Route::SetRoles),
            ("GET", ["container"]) => Some(Route::ListContainers),
            ("GET", ["container", id]) => container(id).map(Route::GetContainer),
            ("GET", ["container", id, "role"]) => container(id).map(Route::ContainerRoles),
            _ => None,
        };
        route.unwrap_or(Route::Unmatched)
    }

    fn label(self) -> &'static str {
        match self {
            Route::ListUsers => "GET /user",
            Route::CreateUser => "POST /user",
            Route::GetMe => "GET /user/me",
            Route::GetUser(_) => "GET /user/{id}",
            Route::UpdateUser(_) => "PUT /user/{id}",
            Route::DeleteUser(_) => "DELETE /user/{id}",
            Route::SetRoles(_) => "PUT /user/{id}/role",
            Route::ListContainers => "GET /container",
            Route::GetContainer(_) => "GET /container/{id}",
            Route::ContainerRoles(_) => "GET /container/{id}/role",
            Route::Unmatched => "unmatched",
        }
    }
}

impl SimState {
    /// Answers one API request arriving at `now` and counts it.
    pub(crate) fn handle(&mut self, request: &ApiRequest<'_>, now: Instant) -> Reply {
        let route = Route::parse(request.method, request.api_path);
        let reply = self.answer(request, route, now);
        self.core.stats.record(route.label(), reply.status);
        reply
    }

    fn key_accepted(&self, key: Option<&str>) -> bool {
        let Some(key) = key else {
            return false;
        };
        let matches: bool = key.as_bytes().ct_eq(self.api_key.as_bytes()).into();
        matches && !self.key_revoked
    }

    fn answer(&mut self, request: &ApiRequest<'_>, route: Route, now: Instant) -> Reply {
        if !self.key_accepted(request.key) {
            return Reply::error(401, "invalid_api_key", "The specified API key is invalid.");
        }
        if !self.core.limiter.admit(now) {
            return Reply::error(
                429,
                "request_limit_exceeded",
                "Request limit exceeded: too many requests for this API key. Slow down.",
            );
        }
        let facts = RequestFacts {
            method: request.method,
            api_root: API_ROOT,
            full_path: request.path,
            api_path: request.api_path,
            query: request.query,
            requests: &[],
        };
        if let Some(status) = self.core.faults.take_match(&facts) {
            return fault_reply(status);
        }
        match route {
            Route::ListUsers => self.list_users(request.query),
            Route::CreateUser => self.create_user(request.body),
            Route::GetMe => match self.dir.api_user_id.and_then(|id| self.dir.user(id)) {
                Some(user) => Reply::json(200, &UserView::new(user, &self.dir)),
                None => Reply::not_found("user"),
            },
            Route::GetUser(id) => match self.dir.user(id) {
                Some(user) => Reply::json(200, &UserView::new(user, &self.dir)),
                None => Reply::not_found("user"),
            },
            Route::UpdateUser(id) => self.update_user(id, request.body),
            Route::DeleteUser(id) => {
                if self.dir.remove(id) {
                    Reply::empty(204)
                } else {
                    Reply::not_found("user")
                }
            }
            Route::SetRoles(id) => self.set_roles(id, request.body),
            Route::ListContainers => {
                #[derive(Serialize)]
                struct Body<'a> {
                    containers: Vec<ContainerView<'a>>,
                }
                let containers = self
                    .dir
                    .containers
                    .iter()
                    .map(ContainerView::from)
                    .collect();
                Reply::json(200, &Body { containers })
            }
            Route::GetContainer(id) => match self.dir.container(id) {
                Some(container) => Reply::json(200, &ContainerView::from(container)),
                None => Reply::not_found("container"),
            },
            Route::ContainerRoles(id) => {
                if self.dir.container(id).is_none() {
                    return Reply::not_found("container");
                }
                Reply::json(200, &serde_json::json!({ "access_roles": all_roles() }))
            }
            Route::Unmatched => Reply::no_route(),
        }
    }

    fn list_users(&self, query: Option<&str>) -> Reply {
        let query = match ListQuery::parse(query.unwrap_or("")) {
            Ok(query) => query,
            Err(message) => return Reply::error(400, "bad_request_format", &message),
        };
        let cap = u64::from(self.limit_cap);
        let limit = match query.limit {
            None | Some(0) => u64::from(super::DEFAULT_LIMIT_CAP).min(cap),
            Some(limit) => limit.min(cap),
        };
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        let users = &self.dir.users;
        let (page, total) = if query.is_filtered() {
            let mut page = Vec::new();
            let mut total = 0usize;
            for user in users.iter().filter(|user| query.keeps(user)) {
                if total >= offset && page.len() < take {
                    page.push(UserView::new(user, &self.dir));
                }
                total += 1;
            }
            (page, total)
        } else {
            let start = offset.min(users.len());
            let end = start.saturating_add(take).min(users.len());
            let page = users
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(|user| UserView::new(user, &self.dir))
                .collect();
            (page, users.len())
        };
        #[derive(Serialize)]
        struct PageInfo {
            total: u64,
            limit: u64,
            offset: u64,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            users: Vec<UserView<'a>>,
            page: PageInfo,
        }
        Reply::json(
            200,
            &Body {
                users: page,
                page: PageInfo {
                    total: u64::try_from(total).unwrap_or(u64::MAX),
                    limit,
                    offset: query.offset,
                },
            },
        )
    }

    fn create_user(&mut self, body: &[u8]) -> Reply {
        let object = match parse_object(body) {
            Ok(object) => object,
            Err(reply) => return reply,
        };
        match validate_user(&object, &self.dir, None) {
            Ok(fields) => {
                let id = self.dir.insert(fields, super::UserStatus::Active);
                Reply::json(201, &serde_json::json!({ "id": id }))
            }
            Err(errors) => Reply::errors(400, &errors),
        }
    }

    /// Edit user: the documented fields only (see [`validate_edit`]); roles and status are
    /// kept, and so is the container unless `edit_user_moves_container` is on.
    fn update_user(&mut self, id: u64, body: &[u8]) -> Reply {
        if self.dir.user(id).is_none() {
            return Reply::not_found("user");
        }
        let object = match parse_object(body) {
            Ok(object) => object,
            Err(reply) => return reply,
        };
        match validate_edit(&object, &self.dir, id, self.edit_user_moves_container) {
            Ok(edit) => {
                if let Some(user) = self.dir.user_mut(id) {
                    edit.apply(user);
                }
                Reply::empty(204)
            }
            Err(errors) => Reply::errors(400, &errors),
        }
    }

    fn set_roles(&mut self, id: u64, body: &[u8]) -> Reply {
        if self.dir.user(id).is_none() {
            return Reply::not_found("user");
        }
        let object = match parse_object(body) {
            Ok(object) => object,
            Err(reply) => return reply,
        };
        let mut errors = Vec::new();
        let roles = parse_roles(object.get("access_roles"), &mut errors);
        match (roles, self.dir.user_mut(id)) {
            (Some(roles), Some(user)) if errors.is_empty() => {
                user.roles = roles;
                Reply::empty(204)
            }
            _ => Reply::errors(400, &errors),
        }
    }
}

fn fault_reply(status: u16) -> Reply {
    let (code, message) = match status {
        403 => (
            "access_denied|missing_permission",
            "You do not have permission to perform this action.",
        ),
        429 => ("request_limit_exceeded", "Request limit exceeded."),
        500 => ("internal_server_error", "An internal error occurred."),
        502 => ("bad_gateway", "Bad gateway."),
        503 => (
            "service_unavailable",
            "The service is temporarily unavailable.",
        ),
        504 => ("gateway_timeout", "Gateway timeout."),
        _ => ("simulated_failure", "Simulated failure."),
    };
    Reply::error(status, code, message)
}

/// `filters[search]` of `GET /user`, over `username`, `first_name`, `last_name` and `email`
/// (letter case ignored): a value that starts with `%` (sent as `%25`) matches the fields
/// that contain the rest; any other value matches the fields equal to it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Search {
    /// The rest after the `%`, in lower case.
    Contains(String),
    /// The whole value.
    Exact(String),
}

impl Search {
    fn parse(value: &str) -> Self {
        match value.strip_prefix('%') {
            Some(rest) => Search::Contains(rest.to_ascii_lowercase()),
            None => Search::Exact(value.to_owned()),
        }
    }

    fn matches(&self, field: &str) -> bool {
        match self {
            Search::Contains(needle) => contains_ignore_case(field, needle),
            Search::Exact(value) => field.eq_ignore_ascii_case(value),
        }
    }
}

/// The query of `GET /user`.
#[derive(Debug, Default)]
struct ListQuery {
    offset: u64,
    limit: Option<u64>,
    container_id: Option<u32>,
    access_role_id: Option<u64>,
    search: Option<Search>,
}

impl ListQuery {
    fn parse(query: &str) -> Result<Self, String> {
        let mut parsed = ListQuery::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let number = |name: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{name} must be a non-negative integer."))
            };
            match key.as_ref() {
                "offset" => parsed.offset = number("offset")?,
                "limit" => parsed.limit = Some(number("limit")?),
                "container_id" => {
                    let id = number("container_id")?;
                    parsed.container_id = Some(u32::try_from(id).unwrap_or(u32::MAX));
                }
                "access_role_id" => parsed.access_role_id = Some(number("access_role_id")?),
                "filters[search]" if !value.is_empty() => {
                    parsed.search = Some(Search::parse(&value));
                }
                _ => {} // sort and unknown parameters are ignored; order is always by id
            }
        }
        Ok(parsed)
    }

    fn is_filtered(&self) -> bool {
        self.container_id.is_some() || self.access_role_id.is_some() || self.search.is_some()
    }

    fn keeps(&self, user: &super::data::UserRecord) -> bool {
        self.container_id.is_none_or(|id| user.container_id == id)
            && self.access_role_id.is_none_or(|id| user.roles.contains(id))
            && self.search.as_ref().is_none_or(|search| {
                [
                    &*user.username,
                    &*user.email,
                    &*user.first_name,
                    &*user.last_name,
                ]
                .iter()
                .any(|field| search.matches(field))
            })
    }
}

fn contains_ignore_case(haystack: &str, lower_needle: &str) -> bool {
    let needle = lower_needle.as_bytes();
    needle.is_empty()
        || haystack
            .as_bytes()
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Reply::error(
            400,
            "bad_request_format",
            "The request body must be a JSON object.",
        )),
        Err(_) => Err(Reply::error(
            400,
            "bad_request_format",
            "The request body is not valid JSON.",
        )),
    }
}

const USERNAME_EXTRA: &str = "@-_+.";

/// Checks a create or full-replace body (`except`: the id being replaced, for the duplicate
/// check). Collects every problem; each code names the field (`missing_field|email`).
pub(crate) fn validate_user(
    body: &Map<String, Value>,
    dir: &Directory,
    except: Option<u64>,
) -> Result<UserFields, Vec<ApiError>> {
    let mut errors = Vec::new();
    let username = required_text(body, "username", None, &mut errors)
        .and_then(|name| checked_username(name, dir, except, &mut errors));
    let first_name = required_text(body, "first_name", Some(128), &mut errors);
    let last_name = required_text(body, "last_name", Some(128), &mut errors);
    let email = required_text(body, "email", Some(255), &mut errors)
        .and_then(|email| checked_email(email, &mut errors));
    let job_title = optional_text(body, "job_title", 64, &mut errors);
    let telephone = optional_text(body, "telephone", 64, &mut errors);
    let container_id = match body.get("container") {
        None | Some(Value::Null) => Some(dir.default_container()),
        Some(container) => checked_container(container, dir, &mut errors),
    };
    let roles = parse_roles(body.get("access_roles"), &mut errors);
    match (username, first_name, last_name, email, container_id, roles) {
        (
            Some(username),
            Some(first_name),
            Some(last_name),
            Some(email),
            Some(container_id),
            Some(roles),
        ) if errors.is_empty() => Ok(UserFields {
            username,
            first_name,
            last_name,
            email,
            job_title,
            telephone,
            container_id,
            roles,
        }),
        _ => Err(errors),
    }
}

/// The fields Edit user (`PUT /user/{id}`) documents. Only `email` is required; a
/// `job_title` or `telephone` left out is erased; a name left out is kept.
pub(crate) const EDIT_USER_FIELDS: [&str; 7] = [
    "username",
    "first_name",
    "last_name",
    "email",
    "job_title",
    "telephone",
    "is_saml_sso_only",
];

/// What a valid Edit-user body changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edit {
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: String,
    job_title: Option<String>,
    telephone: Option<String>,
    container_id: Option<u32>,
}

impl Edit {
    /// Writes the edit into `user`: names only when sent, `job_title` and `telephone` always
    /// (left out: erased), the container only when sent (and accepted); roles and status
    /// stay.
    pub(crate) fn apply(self, user: &mut UserRecord) {
        if let Some(username) = self.username {
            user.username = username.into_boxed_str();
        }
        if let Some(first_name) = self.first_name {
            user.first_name = Cow::Owned(first_name);
        }
        if let Some(last_name) = self.last_name {
            user.last_name = Cow::Owned(last_name);
        }
        user.email = self.email.into_boxed_str();
        user.job_title = self.job_title.map(Cow::Owned);
        user.telephone = self.telephone.map(String::into_boxed_str);
        if let Some(container_id) = self.container_id {
            user.container_id = container_id;
        }
    }
}

/// Checks an Edit-user body for user `id`. A field the docs do not list is refused
/// (`invalid_field|NAME`), `access_roles` and `container` included, unless
/// `moves_container` accepts `container: {id}` (the undocumented move Saviynt's package
/// relies on). Collects every problem.
pub(crate) fn validate_edit(
    body: &Map<String, Value>,
    dir: &Directory,
    id: u64,
    moves_container: bool,
) -> Result<Edit, Vec<ApiError>> {
    let mut errors = Vec::new();
    for field in body.keys() {
        let documented = EDIT_USER_FIELDS.contains(&field.as_str());
        if documented || (moves_container && field == "container") {
            continue;
        }
        let why = match field.as_str() {
            "access_roles" => "roles change only through PUT /user/{id}/role".to_owned(),
            "container" => "no documented call moves a user to another division".to_owned(),
            _ => format!("Edit user takes {}", EDIT_USER_FIELDS.join(", ")),
        };
        errors.push(ApiError::new(
            format!("invalid_field|{field}"),
            format!("{field} is not a field of Edit user: {why}."),
        ));
    }
    let username = optional_name(body, "username", None, &mut errors)
        .and_then(|name| checked_username(name, dir, Some(id), &mut errors));
    let first_name = optional_name(body, "first_name", Some(128), &mut errors);
    let last_name = optional_name(body, "last_name", Some(128), &mut errors);
    let email = required_text(body, "email", Some(255), &mut errors)
        .and_then(|email| checked_email(email, &mut errors));
    let job_title = optional_text(body, "job_title", 64, &mut errors);
    let telephone = optional_text(body, "telephone", 64, &mut errors);
    match body.get("is_saml_sso_only") {
        None | Some(Value::Null | Value::Bool(_)) => {}
        Some(Value::String(text)) if text == "true" || text == "false" => {}
        Some(_) => errors.push(ApiError::new(
            "invalid_field|is_saml_sso_only",
            "is_saml_sso_only must be true or false.",
        )),
    }
    let container_id = match body.get("container") {
        Some(container) if moves_container && !container.is_null() => {
            checked_container(container, dir, &mut errors)
        }
        _ => None,
    };
    match email {
        Some(email) if errors.is_empty() => Ok(Edit {
            username,
            first_name,
            last_name,
            email,
            job_title,
            telephone,
            container_id,
        }),
        _ => Err(errors),
    }
}

/// `name` if it is a valid username no one else (but `except`) holds.
fn checked_username(
    name: String,
    dir: &Directory,
    except: Option<u64>,
    errors: &mut Vec<ApiError>,
) -> Option<String> {
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || USERNAME_EXTRA.contains(c));
    if !valid {
        errors.push(ApiError::new(
            "invalid_field|username",
            "username may contain only letters, digits and @ - _ + .",
        ));
        None
    } else if dir.username_taken(&name, except) {
        errors.push(ApiError::new(
            "duplicate_username",
            format!("The username {name:?} is already in use."),
        ));
        None
    } else {
        Some(name)
    }
}

/// `email` if it looks like an email address.
fn checked_email(email: String, errors: &mut Vec<ApiError>) -> Option<String> {
    let well_formed = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if well_formed {
        Some(email)
    } else {
        errors.push(ApiError::new(
            "invalid_field|email",
            "email must be an email address.",
        ));
        None
    }
}

/// The id of `container: {id}` if it names an existing container.
fn checked_container(
    container: &Value,
    dir: &Directory,
    errors: &mut Vec<ApiError>,
) -> Option<u32> {
    let id = container
        .get("id")
        .and_then(Value::as_u64)
        .and_then(|id| u32::try_from(id).ok());
    match id {
        Some(id) if dir.container(id).is_some() => Some(id),
        _ => {
            errors.push(ApiError::new(
                "invalid_container",
                "container.id must name an existing container.",
            ));
            None
        }
    }
}

/// A name an Edit-user body may leave out (kept) but not blank.
fn optional_name(
    body: &Map<String, Value>,
    field: &str,
    max_chars: Option<usize>,
    errors: &mut Vec<ApiError>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(_) => required_text(body, field, max_chars, errors),
    }
}

fn required_text(
    body: &Map<String, Value>,
    field: &str,
    max_chars: Option<usize>,
    errors: &mut Vec<ApiError>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => {
            errors.push(missing(field));
            None
        }
        Some(Value::String(text)) if text.trim().is_empty() => {
            errors.push(missing(field));
            None
        }
        Some(Value::String(text)) => checked_length(field, text, max_chars, errors),
        Some(_) => {
            errors.push(not_a_string(field));
            None
        }
    }
}

fn optional_text(
    body: &Map<String, Value>,
    field: &str,
    max_chars: usize,
    errors: &mut Vec<ApiError>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.is_empty() => None,
        Some(Value::String(text)) => checked_length(field, text, Some(max_chars), errors),
        Some(_) => {
            errors.push(not_a_string(field));
            None
        }
    }
}

fn checked_length(
    field: &str,
    text: &str,
    max_chars: Option<usize>,
    errors: &mut Vec<ApiError>,
) -> Option<String> {
    match max_chars {
        Some(max) if text.chars().count() > max => {
            errors.push(ApiError::new(
                format!("invalid_length|{field}"),
                format!("{field} must be at most {max} characters."),
            ));
            None
        }
        _ => Some(text.to_owned()),
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::new(
        format!("missing_field|{field}"),
        format!("{field} is required."),
    )
}

fn not_a_string(field: &str) -> ApiError {
    ApiError::new(
        format!("invalid_field|{field}"),
        format!("{field} must be a string."),
    )
}

/// Reads `access_roles: [{"id":N}, …]`: at least one, every id a known role.
fn parse_roles(value: Option<&Value>, errors: &mut Vec<ApiError>) -> Option<RoleSet> {
    let list = match value {
        None | Some(Value::Null) => {
            errors.push(missing("access_roles"));
            return None;
        }
        Some(Value::Array(list)) if list.is_empty() => {
            errors.push(missing("access_roles"));
            return None;
        }
        Some(Value::Array(list)) => list,
        Some(_) => {
            errors.push(ApiError::new(
                "invalid_field|access_roles",
                "access_roles must be a list of {\"id\": N} objects.",
            ));
            return None;
        }
    };
    let mut set = RoleSet::default();
    for entry in list {
        match entry.get("id").and_then(Value::as_u64) {
            Some(id) if set.insert(id) => {}
            Some(id) => {
                errors.push(ApiError::new(
                    "invalid_access_role",
                    format!("Access role {id} does not exist."),
                ));
                return None;
            }
            None => {
                errors.push(ApiError::new(
                    "invalid_field|access_roles",
                    "access_roles must be a list of {\"id\": N} objects.",
                ));
                return None;
            }
        }
    }
    Some(set)
}
