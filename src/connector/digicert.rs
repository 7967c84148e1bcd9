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
//! Provisioning is not available in this version: no operation is declared, and
//! [`Connector::provision`] returns `Unsupported`.
//!
//! Mapping from JSON to records is done by pure functions (`map_user`, `map_user_grants`,
//! `map_container`, `map_roles`) tested on recorded fixtures.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{ClientDefaults, HttpClient, StaticHeader};
use super::mapping::{code_and_text, display_name, first_id, non_empty, parse, put, NativeId};
use super::paging::{OffsetPager, PageInfo};
use super::{
    Capabilities, Connector, ConnectorError, PageStream, ProvisionOutcome, ProvisionRequest,
};
use crate::config::{ConfigDuration, RateLimit, TargetConfig};
use crate::model::{AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord};

/// Users per page when the target's `page_size` is unset.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// The header that carries the API key when `api_key_header` is unset.
pub const DEFAULT_API_KEY_HEADER: &str = "X-DC-DEVKEY";

/// Entitlement type of an access role.
pub const ROLE: &str = "role";

/// Entitlement type of a container (division).
pub const CONTAINER: &str = "container";

/// Why provisioning is refused.
const PROVISIONING_UNAVAILABLE: &str = "provisioning for DigiCert is not available in this version";

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
}

impl fmt::Debug for DigicertConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigicertConnector")
            .field("target", &self.target)
            .field("http", &self.http)
            .field("page_size", &self.page_size)
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
        Ok(Self {
            target: name.to_string(),
            http,
            page_size: config.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1),
            capabilities: Capabilities {
                entitlement_types: vec![ROLE.to_string(), CONTAINER.to_string()],
                operations: BTreeSet::new(),
            },
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
        Err(ConnectorError::Unsupported {
            target: self.target.clone(),
            operation: request.operation.to_string(),
            reason: PROVISIONING_UNAVAILABLE.to_string(),
        })
    }
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
    use wiremock::matchers::{header, method, path};
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

    #[tokio::test]
    async fn provisioning_is_refused_and_declared_absent() {
        let connector = DigicertConnector::new("dc", &config("https://dc.example", "")).unwrap();
        assert!(connector.capabilities().operations.is_empty());
        assert_eq!(
            connector.capabilities().entitlement_types,
            ["role", "container"]
        );
        let request = ProvisionRequest {
            operation: Operation::CreateAccount,
            account_id: None,
            account_name: "jane".into(),
            entitlement: None,
            attributes: Attributes::new(),
        };
        let err = connector.provision(&request).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unsupported);
        assert!(
            err.to_string()
                .contains("provisioning for DigiCert is not available in this version"),
            "{err}"
        );
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
