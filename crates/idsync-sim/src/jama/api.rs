//! The token endpoint and the `/rest/v1` API.
//!
//! Every request outside `/_sim/` lands in [`entry`]. Latency is slept first (token and API
//! requests alike). Then:
//! * `POST /rest/oauth/token`: HTTP Basic client credentials (401 `invalid_client` when wrong
//!   or revoked), then fault rules that name this path, then `grant_type=client_credentials`
//!   (400 otherwise), then a new token. It is **not** rate limited: the tenant's limit counts
//!   REST calls under `/rest/v1`.
//! * `/rest/v1/…`: the bearer token (401 with a `meta` body when missing, unknown or
//!   expired; not counted against the rate limit), then the tenant-wide rate windows (a bare
//!   429 with a `meta` body and no `Retry-After`; refused requests still count), then fault
//!   rules, then the route. A trailing slash is accepted on every route.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::data::{
    auth_type_name, Directory, GroupView, LicenseType, MembershipError, UserFields, UserView,
};
use super::tokens::{basic_credentials, bearer_token, TokenCheck};
use super::{JamaControl, JamaState, API_ROOT, DEFAULT_MAX_RESULTS, TOKEN_PATH};
use crate::clock::SimClock;
use crate::control::{delay, SimControl};
use crate::faults::RequestFacts;

tokio::task_local! {
    /// When the answer being built is made, on the simulator's clock: `meta.timestamp`.
    static ANSWER_TIME: DateTime<Utc>;
}

/// Middleware over every route (API and `/_sim/` alike): the request is answered at the
/// simulator's time, so any `meta` body is stamped by the simulator's clock. The API entry
/// stamps again once its latency is over.
pub(super) async fn at_sim_time(
    State(control): State<JamaControl>,
    request: Request,
    next: Next,
) -> Response {
    let at = control.clock().now_utc();
    ANSWER_TIME.scope(at, next.run(request)).await
}

/// The route label the token endpoint is counted under.
pub(crate) const TOKEN_ROUTE: &str = "POST /rest/oauth/token";

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    headers: Vec<(HeaderName, &'static str)>,
}

impl Reply {
    fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status,
                body,
                headers: Vec::new(),
            },
            Err(_) => Self::error(500, "Serialization failed."),
        }
    }

    fn with_header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// An error in the API's shape: `{"meta":{"status":"Bad Request","timestamp":…,"message":…}}`.
    pub(crate) fn error(status: u16, message: &str) -> Self {
        let meta = Meta {
            message: Some(message),
            ..Meta::new(status_text(status))
        };
        match serde_json::to_vec(&MetaOnly { meta }) {
            Ok(body) => Self {
                status,
                body,
                headers: Vec::new(),
            },
            // Serializing strings cannot fail; answer the status alone if it ever does.
            Err(_) => Self {
                status,
                body: Vec::new(),
                headers: Vec::new(),
            },
        }
    }

    /// An error in the token endpoint's OAuth shape: `{"error":…,"error_description":…}`.
    fn oauth_error(status: u16, error: &str, description: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({ "error": error, "error_description": description }),
        )
    }

    /// `{"meta":{"status":"OK","timestamp":…}}`: an update or delete that succeeded.
    fn ok() -> Self {
        Self::json(
            200,
            &MetaOnly {
                meta: Meta::new("OK"),
            },
        )
    }

    /// 201 `{"meta":{"status":"Created","timestamp":…,"location":…[,"id":…]}}`.
    fn created(location: String, id: Option<u32>) -> Self {
        let meta = Meta {
            location: Some(location),
            id,
            ..Meta::new("Created")
        };
        Self::json(201, &MetaOnly { meta })
    }

    /// 200 with one object in `data`.
    fn object(data: &impl Serialize) -> Self {
        Self::json(
            200,
            &Envelope {
                meta: Meta::new("OK"),
                links: Empty {},
                linked: Empty {},
                data,
            },
        )
    }

    /// 200 with a page in `data` and `meta.pageInfo`.
    fn page<T: Serialize>(start_index: u64, data: Vec<T>, total: usize) -> Self {
        let meta = Meta {
            page_info: Some(PageInfo {
                start_index,
                result_count: data.len(),
                total_results: total,
            }),
            ..Meta::new("OK")
        };
        Self::json(
            200,
            &Envelope {
                meta,
                links: Empty {},
                linked: Empty {},
                data,
            },
        )
    }

    fn not_found(what: &str) -> Self {
        Self::error(404, &format!("No {what} was found with the given id."))
    }

    fn no_route() -> Self {
        Self::error(404, "Resource not found.")
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body,
        )
            .into_response();
        for (name, value) in self.headers {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

/// The reason phrase Jama puts in `meta.status`.
fn status_text(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Error")
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    start_index: u64,
    result_count: usize,
    total_results: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    status: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_info: Option<PageInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl Meta<'_> {
    fn new(status: &'static str) -> Self {
        Meta {
            status,
            timestamp: ANSWER_TIME
                .try_with(|at| *at)
                // Only a reply built outside a request (none in the server) reads real time.
                .unwrap_or_else(|_| SimClock::real().now_utc())
                .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                .to_string(),
            page_info: None,
            location: None,
            id: None,
            message: None,
        }
    }
}

#[derive(Serialize)]
struct MetaOnly<'a> {
    meta: Meta<'a>,
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    meta: Meta<'a>,
    links: Empty,
    linked: Empty,
    data: T,
}

/// The axum fallback: every request that is not a control route.
pub(super) async fn entry(
    State(control): State<JamaControl>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let endpoint = if path.trim_end_matches('/') == TOKEN_PATH {
        Endpoint::Token
    } else if let Some(api_path) = api_path(path) {
        Endpoint::Api(api_path)
    } else {
        tracing::debug!(method = %method, path, status = 404, "Jama simulator: no such route.");
        return Reply::no_route().into_response();
    };
    delay(&control).await;
    let header_text = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let request = JamaRequest {
        method: method.as_str(),
        path,
        query: uri.query(),
        authorization: header_text(header::AUTHORIZATION),
        host: header_text(header::HOST).unwrap_or("localhost"),
        body: &body,
    };
    let reply = {
        let mut state = control.lock();
        let now = state.core.clock.now();
        // `meta.timestamp` says when the answer was made: after the latency, on this clock.
        let at = state.core.clock.now_utc();
        ANSWER_TIME.sync_scope(at, || match endpoint {
            Endpoint::Token => state.handle_token(&request, now),
            Endpoint::Api(api_path) => state.handle_api(&request, api_path, now),
        })
    };
    // Bodies may carry passwords and tokens: only the method, path and status are logged.
    tracing::debug!(method = %method, path, status = reply.status, "Jama simulator request.");
    reply.into_response()
}

enum Endpoint<'a> {
    Token,
    Api(&'a str),
}

/// The path below the API root (`/users/5`), or `None` outside it.
fn api_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(API_ROOT)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// A request as the handlers see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JamaRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) authorization: Option<&'a str>,
    /// The `Host` header, for `meta.location`.
    pub(crate) host: &'a str,
    pub(crate) body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    ListUsers,
    CreateUser,
    CurrentUser,
    GetUser(u32),
    UpdateUser(u32),
    SetActive(u32),
    ListGroups,
    GetGroup(u32),
    ListMembers(u32),
    AddMember(u32),
    RemoveMember(u32, u32),
    /// The path exists, the method does not.
    MethodNotAllowed,
    Unmatched,
}

impl Route {
    fn parse(method: &str, api_path: &str) -> Self {
        if let Some(route) = Self::exact(method, api_path) {
            return route;
        }
        let other_method = ["GET", "POST", "PUT", "DELETE"]
            .iter()
            .any(|other| Self::exact(other, api_path).is_some());
        if other_method {
            Route::MethodNotAllowed
        } else {
            Route::Unmatched
        }
    }

    fn exact(method: &str, api_path: &str) -> Option<Self> {
        let segments: Vec<&str> = api_path.trim_matches('/').split('/').collect();
        let id = |text: &str| -> Option<u32> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };
        match (method, segments.as_slice()) {
            ("GET", ["users"]) => Some(Route::ListUsers),
            ("POST", ["users"]) => Some(Route::CreateUser),
            ("GET", ["users", "current"]) => Some(Route::CurrentUser),
            ("GET", ["users", user]) => id(user).map(Route::GetUser),
            ("PUT", ["users", user]) => id(user).map(Route::UpdateUser),
            ("PUT", ["users", user, "active"]) => id(user).map(Route::SetActive),
            ("GET", ["usergroups"]) => Some(Route::ListGroups),
            ("GET", ["usergroups", group]) => id(group).map(Route::GetGroup),
            ("GET", ["usergroups", group, "users"]) => id(group).map(Route::ListMembers),
            ("POST", ["usergroups", group, "users"]) => id(group).map(Route::AddMember),
            ("DELETE", ["usergroups", group, "users", user]) => {
                Some(Route::RemoveMember(id(group)?, id(user)?))
            }
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::ListUsers => "GET /users",
            Route::CreateUser => "POST /users",
            Route::CurrentUser => "GET /users/current",
            Route::GetUser(_) => "GET /users/{id}",
            Route::UpdateUser(_) => "PUT /users/{id}",
            Route::SetActive(_) => "PUT /users/{id}/active",
            Route::ListGroups => "GET /usergroups",
            Route::GetGroup(_) => "GET /usergroups/{id}",
            Route::ListMembers(_) => "GET /usergroups/{id}/users",
            Route::AddMember(_) => "POST /usergroups/{id}/users",
            Route::RemoveMember(_, _) => "DELETE /usergroups/{id}/users/{userId}",
            Route::MethodNotAllowed | Route::Unmatched => "unmatched",
        }
    }
}

impl JamaState {
    /// Answers one token request arriving at `now` and counts it.
    pub(crate) fn handle_token(&mut self, request: &JamaRequest<'_>, now: Instant) -> Reply {
        let reply = self.answer_token(request, now);
        let route = if request.method == "POST" {
            TOKEN_ROUTE
        } else {
            "unmatched"
        };
        self.core.stats.record_token(route, reply.status);
        reply
    }

    fn answer_token(&mut self, request: &JamaRequest<'_>, now: Instant) -> Reply {
        if request.method != "POST" {
            return Reply::oauth_error(
                405,
                "method_not_allowed",
                &format!("Request method '{}' is not supported.", request.method),
            );
        }
        if !self.client_accepted(request.authorization) {
            return Reply::oauth_error(401, "invalid_client", "Bad client credentials.")
                .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"oauth2/client\"");
        }
        let facts = RequestFacts {
            method: request.method,
            api_root: API_ROOT,
            full_path: request.path,
            api_path: request.path,
            query: request.query,
            requests: &[],
        };
        if let Some(status) = self.core.faults.take_path_match(&facts) {
            return Reply::oauth_error(status, "server_error", "Simulated failure.");
        }
        let grant = url::form_urlencoded::parse(request.body)
            .find(|(key, _)| key == "grant_type")
            .map(|(_, value)| value.into_owned());
        match grant.as_deref() {
            Some("client_credentials") => {}
            None => return Reply::oauth_error(400, "invalid_request", "Missing grant type."),
            Some(other) => {
                return Reply::oauth_error(
                    400,
                    "unsupported_grant_type",
                    &format!("Unsupported grant type: {other}"),
                )
            }
        }
        let token = self.tokens.issue(now, self.token_lifetime);
        let lifetime = self.token_lifetime;
        let expires_in = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
        Reply::json(
            200,
            &serde_json::json!({
                "access_token": token,
                "token_type": "bearer",
                "expires_in": expires_in,
                "scope": "token_information",
                "tenant": "default",
                "jti": uuid::Uuid::new_v4().to_string(),
                "application_data": {},
            }),
        )
        .with_header(header::CACHE_CONTROL, "no-store")
        .with_header(header::PRAGMA, "no-cache")
    }

    fn client_accepted(&self, authorization: Option<&str>) -> bool {
        let Some(credentials) = authorization.and_then(basic_credentials) else {
            return false;
        };
        let id_ok: bool = credentials
            .id
            .as_bytes()
            .ct_eq(self.client_id.as_bytes())
            .into();
        let secret_ok: bool = credentials
            .secret
            .as_bytes()
            .ct_eq(self.client_secret.expose_secret().as_bytes())
            .into();
        id_ok && secret_ok && !self.credentials_revoked
    }

    /// Answers one `/rest/v1` request arriving at `now` and counts it.
    pub(crate) fn handle_api(
        &mut self,
        request: &JamaRequest<'_>,
        api_path: &str,
        now: Instant,
    ) -> Reply {
        let route = Route::parse(request.method, api_path);
        let reply = self.answer(request, api_path, route, now);
        self.core.stats.record(route.label(), reply.status);
        reply
    }

    fn answer(
        &mut self,
        request: &JamaRequest<'_>,
        api_path: &str,
        route: Route,
        now: Instant,
    ) -> Reply {
        if let Err(reply) = self.check_token(request.authorization, now) {
            return reply;
        }
        if !self.core.limiter.admit(now) {
            return Reply::error(
                429,
                "Too many requests: the tenant's API rate limit was exceeded.",
            );
        }
        let facts = RequestFacts {
            method: request.method,
            api_root: API_ROOT,
            full_path: request.path,
            api_path,
            query: request.query,
            requests: &[],
        };
        if let Some(status) = self.core.faults.take_match(&facts) {
            return Reply::error(status, "Simulated failure.");
        }
        let query = request.query.unwrap_or("");
        match route {
            Route::ListUsers => self.list_users(query),
            Route::CreateUser => self.create_user(request),
            Route::CurrentUser => match self.dir.api_user_id.and_then(|id| self.dir.user(id)) {
                Some(user) => Reply::object(&UserView::from(user)),
                None => Reply::not_found("user"),
            },
            Route::GetUser(id) => match self.dir.user(id) {
                Some(user) => Reply::object(&UserView::from(user)),
                None => Reply::not_found("user"),
            },
            Route::UpdateUser(id) => self.update_user(id, request.body),
            Route::SetActive(id) => self.set_active(id, request.body),
            Route::ListGroups => self.list_groups(query),
            Route::GetGroup(id) => match self.dir.group(id) {
                Some(group) => Reply::object(&GroupView::from(group)),
                None => Reply::not_found("user group"),
            },
            Route::ListMembers(id) => self.list_members(id, query),
            Route::AddMember(id) => self.add_member(id, request),
            Route::RemoveMember(group, user) => match self.dir.remove_member(group, user) {
                Ok(()) => Reply::ok(),
                Err(error) => membership_error(error, group, user),
            },
            Route::MethodNotAllowed => Reply::error(405, "Method not allowed on this resource."),
            Route::Unmatched => Reply::no_route(),
        }
    }

    fn check_token(&self, authorization: Option<&str>, now: Instant) -> Result<(), Reply> {
        let message = match authorization.and_then(bearer_token) {
            None => "Full authentication is required to access this resource.",
            Some(token) => match self.tokens.check(token, now) {
                TokenCheck::Valid => return Ok(()),
                TokenCheck::Expired => "The access token has expired.",
                TokenCheck::Unknown => "The access token is invalid.",
            },
        };
        Err(Reply::error(401, message).with_header(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"oauth\", error=\"invalid_token\"",
        ))
    }

    fn list_users(&self, query: &str) -> Reply {
        let query = match UsersQuery::parse(query, self.max_results_cap) {
            Ok(query) => query,
            Err(message) => return Reply::error(400, &message),
        };
        let paging = query.paging;
        let users = &self.dir.users;
        if query.include_inactive && query.username.is_none() && query.email.is_none() {
            let page = paging.slice(users).iter().map(UserView::from).collect();
            return Reply::page(paging.start_at, page, users.len());
        }
        let (page, total) = paging.window(
            users
                .iter()
                .filter(|user| query.keeps(user))
                .map(UserView::from),
        );
        Reply::page(paging.start_at, page, total)
    }

    fn list_groups(&self, query: &str) -> Reply {
        let paging = match Paging::parse(query, self.max_results_cap) {
            Ok(paging) => paging,
            Err(message) => return Reply::error(400, &message),
        };
        let groups = &self.dir.groups;
        let page = paging.slice(groups).iter().map(GroupView::from).collect();
        Reply::page(paging.start_at, page, groups.len())
    }

    fn list_members(&self, group: u32, query: &str) -> Reply {
        let Some(group) = self.dir.group(group) else {
            return Reply::not_found("user group");
        };
        let paging = match Paging::parse(query, self.max_results_cap) {
            Ok(paging) => paging,
            Err(message) => return Reply::error(400, &message),
        };
        let page: Vec<UserView<'_>> = paging
            .slice(&group.members)
            .iter()
            .filter_map(|id| self.dir.user(*id))
            .map(UserView::from)
            .collect();
        Reply::page(paging.start_at, page, group.members.len())
    }

    fn create_user(&mut self, request: &JamaRequest<'_>) -> Reply {
        let object = match parse_object(request.body) {
            Ok(object) => object,
            Err(reply) => return reply,
        };
        match validate_user(&object, &self.dir, None) {
            Ok(fields) => {
                let id = self.dir.insert(fields, true);
                let location = format!("http://{}{API_ROOT}/users/{id}", request.host);
                Reply::created(location, Some(id))
            }
            Err(problems) => Reply::error(400, &problems.join(" ")),
        }
    }

    fn update_user(&mut self, id: u32, body: &[u8]) -> Reply {
        if self.dir.user(id).is_none() {
            return Reply::not_found("user");
        }
        let object = match parse_object(body) {
            Ok(object) => object,
            Err(reply) => return reply,
        };
        match validate_user(&object, &self.dir, Some(id)) {
            Ok(fields) => {
                self.dir.replace(id, fields);
                Reply::ok()
            }
            Err(problems) => Reply::error(400, &problems.join(" ")),
        }
    }

    fn set_active(&mut self, id: u32, body: &[u8]) -> Reply {
        let Some(user) = self.dir.user_mut(id) else {
            return Reply::not_found("user");
        };
        let object = match parse_object(body) {
            Ok(object) => object,
            Err(reply) => return reply,
        };
        match object.get("active") {
            Some(Value::Bool(active)) => {
                user.active = *active;
                Reply::ok()
            }
            _ => Reply::error(400, "active is required and must be true or false."),
        }
    }

    fn add_member(&mut self, group: u32, request: &JamaRequest<'_>) -> Reply {
        if self.dir.group(group).is_none() {
            return Reply::not_found("user group");
        }
        let object = match parse_object(request.body) {
            Ok(object) => object,
            Err(reply) => return reply,
        };
        let Some(user) = object
            .get("user")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
        else {
            return Reply::error(400, "user is required and must be a user id.");
        };
        match self.dir.add_member(group, user) {
            Ok(()) => {
                let location = format!(
                    "http://{}{API_ROOT}/usergroups/{group}/users/{user}",
                    request.host
                );
                Reply::created(location, None)
            }
            Err(error) => membership_error(error, group, user),
        }
    }
}

fn membership_error(error: MembershipError, group: u32, user: u32) -> Reply {
    match error {
        MembershipError::UnknownGroup => Reply::not_found("user group"),
        MembershipError::UnknownUser => Reply::not_found("user"),
        MembershipError::AlreadyMember => Reply::error(
            400,
            &format!("User {user} already exists in user group {group}."),
        ),
        MembershipError::NotMember => Reply::error(
            404,
            &format!("User {user} is not a member of user group {group}."),
        ),
    }
}

/// `startAt` and `maxResults`, the latter defaulted and silently clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Paging {
    start_at: u64,
    max_results: usize,
}

impl Paging {
    fn parse(query: &str, cap: u32) -> Result<Self, String> {
        let mut start_at = 0u64;
        let mut max_results = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "startAt" => start_at = number("startAt", &value)?,
                "maxResults" => max_results = Some(number("maxResults", &value)?),
                _ => {}
            }
        }
        let max = match max_results {
            None | Some(0) => u64::from(DEFAULT_MAX_RESULTS),
            Some(max) => max,
        }
        .min(u64::from(cap.max(1)));
        Ok(Self {
            start_at,
            max_results: usize::try_from(max).unwrap_or(usize::MAX),
        })
    }

    fn start(self) -> usize {
        usize::try_from(self.start_at).unwrap_or(usize::MAX)
    }

    /// The page of a whole list.
    fn slice<T>(self, items: &[T]) -> &[T] {
        let start = self.start().min(items.len());
        let end = start.saturating_add(self.max_results).min(items.len());
        items.get(start..end).unwrap_or_default()
    }

    /// The page of a filtered list, and how many items the filter keeps.
    fn window<T>(self, items: impl Iterator<Item = T>) -> (Vec<T>, usize) {
        let start = self.start();
        let mut page = Vec::new();
        let mut total = 0usize;
        for item in items {
            if total >= start && page.len() < self.max_results {
                page.push(item);
            }
            total += 1;
        }
        (page, total)
    }
}

fn number(name: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("{name} must be a non-negative integer."))
}

/// The query of `GET /users`.
#[derive(Debug)]
struct UsersQuery {
    paging: Paging,
    include_inactive: bool,
    username: Option<String>,
    email: Option<String>,
}

impl UsersQuery {
    fn parse(query: &str, cap: u32) -> Result<Self, String> {
        let mut parsed = UsersQuery {
            paging: Paging::parse(query, cap)?,
            include_inactive: false,
            username: None,
            email: None,
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "includeInactive" => parsed.include_inactive = value.eq_ignore_ascii_case("true"),
                "username" => parsed.username = Some(value.into_owned()),
                "email" => parsed.email = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(parsed)
    }

    fn keeps(&self, user: &super::data::UserRecord) -> bool {
        (self.include_inactive || user.active)
            && self
                .username
                .as_deref()
                .is_none_or(|name| user.username.eq_ignore_ascii_case(name))
            && self
                .email
                .as_deref()
                .is_none_or(|email| user.email.eq_ignore_ascii_case(email))
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Reply::error(400, "The request body must be a JSON object.")),
        Err(_) => Err(Reply::error(400, "The request body is not valid JSON.")),
    }
}

/// Checks a create (`replacing: None`) or full-replace body. Collects every problem, each a
/// sentence naming the field. Unknown keys are ignored. `password` is accepted on create
/// (and stored nowhere); on replace only `null` or absent is accepted.
pub(crate) fn validate_user(
    body: &Map<String, Value>,
    dir: &Directory,
    replacing: Option<u32>,
) -> Result<UserFields, Vec<String>> {
    let mut problems = Vec::new();
    let username = required_text(body, "username", &mut problems);
    if let Some(name) = username.as_deref() {
        if dir.username_taken(name, replacing) {
            problems.push(format!("A user with username {name:?} already exists."));
        }
    }
    let first_name = required_text(body, "firstName", &mut problems);
    let last_name = required_text(body, "lastName", &mut problems);
    let email = required_text(body, "email", &mut problems);
    if let Some(email) = email.as_deref() {
        let well_formed = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
        if !well_formed {
            problems.push("email must be an email address.".to_owned());
        }
    }
    match (body.get("password"), replacing) {
        (None | Some(Value::Null), _) | (Some(Value::String(_)), None) => {}
        (Some(_), None) => problems.push("password must be a string.".to_owned()),
        (Some(_), Some(_)) => problems.push(
            "password cannot be changed with PUT /users/{id}; send null or leave it out."
                .to_owned(),
        ),
    }
    let phone = optional_text(body, "phone", &mut problems);
    let title = optional_text(body, "title", &mut problems);
    let location = optional_text(body, "location", &mut problems);
    let avatar_url = optional_text(body, "avatarUrl", &mut problems);
    let license = match body.get("licenseType") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => match LicenseType::parse(text) {
            Some(license) => Some(license),
            None => {
                problems.push(format!(
                    "licenseType must be one of {}.",
                    LicenseType::ALL.map(LicenseType::as_str).join(", ")
                ));
                None
            }
        },
        Some(_) => {
            problems.push("licenseType must be a string.".to_owned());
            None
        }
    };
    let auth_type = match body.get("authenticationType") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let id = value
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| u8::try_from(id).ok())
                .filter(|id| auth_type_name(*id).is_some());
            if id.is_none() {
                problems
                    .push("authenticationType must be {\"id\": N} naming a known type.".to_owned());
            }
            id
        }
    };
    let custom_data = custom_data(body.get("customData"), &mut problems);
    match (username, first_name, last_name, email) {
        (Some(username), Some(first_name), Some(last_name), Some(email)) if problems.is_empty() => {
            Ok(UserFields {
                username,
                first_name,
                last_name,
                email,
                phone,
                title,
                location,
                license,
                auth_type,
                avatar_url,
                custom_data,
            })
        }
        _ => Err(problems),
    }
}

fn required_text(
    body: &Map<String, Value>,
    field: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match body.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            problems.push(format!("{field} is required."));
            None
        }
        Some(_) => {
            problems.push(format!("{field} must be a string."));
            None
        }
    }
}

fn optional_text(
    body: &Map<String, Value>,
    field: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.is_empty() => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            problems.push(format!("{field} must be a string."));
            None
        }
    }
}

/// Reads `customData: [{"name": …, "value": …}, …]` (absent or null: none).
fn custom_data(value: Option<&Value>, problems: &mut Vec<String>) -> Vec<(String, Option<String>)> {
    let list = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(list)) => list,
        Some(_) => {
            problems.push("customData must be a list of {\"name\", \"value\"} objects.".to_owned());
            return Vec::new();
        }
    };
    let mut entries = Vec::with_capacity(list.len());
    for entry in list {
        let name = entry.get("name").and_then(Value::as_str);
        let value = match entry.get("value") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(text)) => Some(Some(text.clone())),
            Some(_) => None,
        };
        match (name, value) {
            (Some(name), Some(value)) if !name.is_empty() => entries.push((name.to_owned(), value)),
            _ => {
                problems.push(
                    "customData entries must have a string name and a string or null value."
                        .to_owned(),
                );
                return Vec::new();
            }
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_clamps() {
        let p = Paging::parse("", 50).unwrap();
        assert_eq!((p.start_at, p.max_results), (0, 20));
        let p = Paging::parse("startAt=40&maxResults=100", 50).unwrap();
        assert_eq!((p.start_at, p.max_results), (40, 50));
        assert_eq!(Paging::parse("maxResults=0", 50).unwrap().max_results, 20);
        assert!(Paging::parse("startAt=-1", 50).is_err());
        let items: Vec<u32> = (0..45).collect();
        assert_eq!(
            Paging::parse("startAt=40", 50).unwrap().slice(&items).len(),
            5
        );
        assert!(Paging::parse("startAt=99", 50)
            .unwrap()
            .slice(&items)
            .is_empty());
        let (page, total) = Paging::parse("startAt=2&maxResults=2", 50)
            .unwrap()
            .window(items.iter().filter(|n| *n % 2 == 0));
        assert_eq!((page, total), (vec![&4, &6], 23));
    }

    #[test]
    fn routes_accept_trailing_slashes_and_tell_405_from_404() {
        assert_eq!(Route::parse("GET", "/users/"), Route::ListUsers);
        assert_eq!(Route::parse("GET", "/users/current/"), Route::CurrentUser);
        assert_eq!(Route::parse("PUT", "/users/7/active/"), Route::SetActive(7));
        assert_eq!(
            Route::parse("DELETE", "/usergroups/3/users/9/"),
            Route::RemoveMember(3, 9)
        );
        assert_eq!(Route::parse("DELETE", "/users/7"), Route::MethodNotAllowed);
        assert_eq!(Route::parse("GET", "/users/x"), Route::Unmatched);
        assert_eq!(Route::parse("GET", "/projects"), Route::Unmatched);
    }
}
