//! A fourth target, written with idsync's adapter kit: the guide for adding one.
//!
//! "Acme Directory" is a made-up REST API. It issues OAuth tokens for client credentials,
//! lists users and groups (each group with its members) in offset/limit pages, creates a
//! user, and adds a user to a group. This file holds the whole adapter. Inside idsync, each
//! module below is one file of `src/connector/acme/`, the files the three real adapters
//! have (`src/connector/{digicert,jama,duckcreek}/`):
//!
//! * `acme` is `mod.rs`: the connector and its `Adapter` impl (name, templates,
//!   capabilities, how it is built);
//! * `acme::config` is `config.rs`: the settings only this kind reads, and their checks;
//! * `acme::wire` is `wire.rs`: the JSON, its mapping to records, the error body;
//! * `acme::import` is `import.rs`: `Reads`, the paged listings and a lookup by name;
//! * `acme::provision` is `provision.rs`: `Operations`, one method per operation;
//! * `acme::CREATE_ACCOUNT` is `templates/create_account.json.jinja`: a request body;
//! * not here: `tests.rs`, mapping tests on recorded responses and wiremock tests.
//!
//! `main` then does what idsync does with a target: it checks the config, builds the
//! connector, tests the connection, imports accounts and access into a SQLite store, and
//! provisions a new account. `vendor_api`, at the end, stands in for Acme's servers.
//!
//! Run it with `cargo run --example custom_connector`. It exits non-zero if any step fails.
//!
//! A real fourth target also needs a few edits inside the crate, which an example cannot
//! make (`ARCHITECTURE.md`, "Adding a target", lists them all):
//! * a `TargetKind::Acme` variant (`src/config/mod.rs`), and one arm for it in each `match`
//!   of `src/connector/registry/mod.rs`. The registry then checks and builds `kind = "acme"`
//!   targets like the others;
//! * a field on `TargetConfig` for each new key the kind reads, listed in
//!   `kind_specific_keys()` (and in `secrets()` when it is a secret). Acme reads `client_id`
//!   and `client_secret`, which exist already.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use idsync::config::{self, Config, ConfigProblem, TargetConfig, TargetRules};
use idsync::connector::kit::{Adapter, Settings};
use idsync::connector::{Connector, ProvisionOutcome, ProvisionRequest};
use idsync::model::{Attributes, ImportMode, Operation, RunOutcome, Trigger};
use idsync::store::{AccountFilter, EntitlementFilter, GrantFilter, SqliteStore, Store};
use idsync::sync::{ImportParts, ImportRequest, ImportRunner, ImportSummary};
use tokio_util::sync::CancellationToken;

use acme::AcmeDirectory;

/// The adapter. Everything in it comes from idsync's shared blocks; only the wire format is
/// Acme's own.
mod acme {
    use std::sync::Arc;

    use idsync::config::TargetConfig;
    use idsync::connector::http::{ClientDefaults, HttpClient};
    use idsync::connector::kit::{self, Adapter, Core};
    use idsync::connector::template::{Escape, TemplateCatalog, TemplateSet};
    use idsync::connector::token::{ClientCredentials, TokenCache};
    use idsync::connector::{Capabilities, ConnectorError};
    use idsync::model::Operation;

    // mod.rs: the connector, what the kind supports, and how it is put together.

    /// The entitlement type of an Acme group.
    pub const GROUP: &str = "group";

    /// The body of `POST /users`. Templates use `${ … }` to print a value (escaped as JSON
    /// here) and `{% if … %}` to test one; printing a missing value is an error, never an
    /// empty string. `user.*` holds the task's attributes. `check-config` renders every
    /// template against a sample task, so a broken one fails at start. Operators can
    /// replace it with `[targets.NAME.templates] create_account = '''…'''`.
    pub const CREATE_ACCOUNT: &str = r#"{
  "login": "${ account.name }",
{%- if user.displayname %}
  "display_name": "${ user.displayname }",
{%- endif %}
{%- if user.department %}
  "department": "${ user.department }",
{%- endif %}
  "email": "${ user.email }"
}"#;

    /// The built-in request-body templates, by operation, and their format.
    pub const TEMPLATES: TemplateCatalog = TemplateCatalog {
        defaults: &[("create_account", CREATE_ACCOUNT)],
        optional: &[],
        escape: Escape::Json,
    };

    /// The connector of one Acme Directory target: the kit's core and an HTTP client.
    pub struct AcmeDirectory {
        core: Core,
        http: HttpClient,
    }

    impl Adapter for AcmeDirectory {
        /// How messages name the product.
        const NAME: &'static str = "Acme Directory";
        const TEMPLATES: TemplateCatalog = TEMPLATES;
        type Settings = config::AcmeSettings;

        /// Declared up front, so an unsupported task is refused when it is submitted.
        fn capabilities(_: &config::AcmeSettings, _: &TemplateSet) -> Capabilities {
            Capabilities::new(
                &[GROUP],
                [Operation::CreateAccount],
                [(Operation::AddAccess, GROUP)],
            )
        }

        /// Builds the clients. No request is made here: the first token is fetched by the
        /// first call.
        fn assemble(
            core: Core,
            target: &TargetConfig,
            settings: config::AcmeSettings,
        ) -> Result<Self, ConnectorError> {
            let name = core.target();
            // The token cache fetches, caches and refreshes the bearer token, and refreshes
            // once after a 401. It is the API client's credential.
            let credentials = ClientCredentials::new(settings.client_id, settings.client_secret);
            let tokens = TokenCache::new(
                name,
                target,
                &config::TOKEN_PATH,
                &credentials,
                wire::read_error,
            )?;
            // The shared client brings timeouts, TLS, read retries, body caps, the
            // same-origin rule and pacing. The adapter adds its default pacing and its one
            // hook for reading error bodies.
            let defaults = ClientDefaults {
                rate_limits: config::default_rate_limits(),
                read_error: wire::read_error,
            };
            let http = HttpClient::new(name, target, defaults, Arc::new(tokens))?;
            Ok(Self { core, http })
        }

        fn core(&self) -> &Core {
            &self.core
        }

        /// The message of a refused task: what the target cannot do, and what to ask for.
        fn why_unsupported(&self, operation: Operation, entitlement_type: Option<&str>) -> String {
            kit::refusal(Self::NAME, operation, entitlement_type, &[GROUP], "ID")
        }
    }

    /// config.rs: the settings only this kind reads, checked once for both `check-config`
    /// and the constructor.
    pub mod config {
        use std::ops::RangeInclusive;

        use idsync::config::{ConfigDuration, ConfigProblem, RateLimit, TargetConfig};
        use idsync::connector::kit::settings::{self, Problems};
        use secrecy::SecretString;

        /// The token endpoint, under `base_url`.
        pub const TOKEN_PATH: [&str; 2] = ["oauth", "token"];

        /// Acme's documented limit is 100 requests per second; pace at 90 % of it unless the
        /// target's `rate_limit` says otherwise.
        pub fn default_rate_limits() -> Vec<RateLimit> {
            vec![RateLimit {
                requests: 90,
                per: ConfigDuration::from_secs(1),
            }]
        }

        /// An Acme target's own settings, read and checked (the secret resolved).
        pub struct AcmeSettings {
            /// The OAuth client id.
            pub client_id: String,
            /// The OAuth client secret.
            pub client_secret: SecretString,
        }

        impl settings::Settings for AcmeSettings {
            /// The kind-specific keys this kind reads; the others are refused on its targets.
            const KEYS: &'static [&'static str] = &["client_id", "client_secret"];
            /// Acme serves 1 to 200 records per page.
            const PAGE_SIZES: RangeInclusive<u32> = 1..=200;
            const DEFAULT_PAGE_SIZE: u32 = 100;

            /// Every problem at once, keyed relative to the target. A problem never shows a
            /// secret.
            fn read(target: &TargetConfig) -> Result<Self, Vec<ConfigProblem>> {
                let mut problems = Problems::default();
                let client_id = match target.client_id.as_deref() {
                    None => {
                        problems.push(settings::required(
                            target,
                            "client_id",
                            "write the OAuth client id from Acme's admin console, e.g. \
                             client_id = \"idsync\"",
                        ));
                        None
                    }
                    Some(id) if id.trim().is_empty() => {
                        problems.add("client_id", Some(id), "must not be empty");
                        None
                    }
                    Some(id) => Some(id.to_string()),
                };
                let client_secret = problems.take(settings::required_secret(
                    target,
                    "client_secret",
                    target.client_secret.as_ref(),
                    "write client_secret = { env = \"ACME_CLIENT_SECRET\" } (or \
                     { file = \"PATH\" })",
                ));
                let read = client_id
                    .zip(client_secret)
                    .map(|(client_id, client_secret)| Self {
                        client_id,
                        client_secret,
                    });
                problems.finish(read)
            }
        }
    }

    /// wire.rs: Acme's JSON and how it maps to idsync's records. Pure functions, so a real
    /// adapter tests them on recorded responses without a network.
    pub mod wire {
        use idsync::connector::http::ErrorReading;
        use idsync::connector::mapping::{code_and_text, non_empty, parse, put, NativeId};
        use idsync::connector::ConnectorError;
        use idsync::model::{
            AccountRecord, AccountStatus, Attributes, EntitlementRecord, GrantRecord,
        };
        use reqwest::StatusCode;
        use serde::Deserialize;
        use serde_json::Value;

        use super::GROUP;

        /// How the shared client and the token cache read an Acme error body,
        /// `{"error": {"code": "…", "message": "…"}}`. The status decides the class (401:
        /// credentials, 429: slow down, 5xx: retry, other 4xx: permanent).
        pub fn read_error(_target: &str, _status: StatusCode, body: &[u8]) -> ErrorReading {
            let Ok(value) = serde_json::from_slice::<Value>(body) else {
                return ErrorReading::Unknown;
            };
            let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
            match code_and_text(text("/error/code"), text("/error/message")) {
                Some(message) => ErrorReading::Message(message),
                None => ErrorReading::Unknown,
            }
        }

        /// One page of a listing. The records stay JSON until they are mapped, so that a
        /// record that does not fit fails with its id in the message.
        #[derive(Deserialize)]
        pub struct ListBody {
            pub items: Vec<Value>,
            pub offset: Option<u64>,
            pub limit: Option<u64>,
            pub total: Option<u64>,
        }

        /// The answer to a create.
        #[derive(Deserialize)]
        pub struct Created {
            pub id: NativeId,
        }

        /// A user, as far as the adapter reads it.
        #[derive(Deserialize)]
        struct User {
            id: NativeId,
            login: String,
            display_name: Option<String>,
            email: Option<String>,
            status: String,
            department: Option<String>,
        }

        /// A group with the ids of its members.
        #[derive(Deserialize)]
        struct Group {
            id: NativeId,
            name: String,
            members: Vec<NativeId>,
        }

        /// An Acme user → an account record.
        pub fn map_user(target: &str, value: &Value) -> Result<AccountRecord, ConnectorError> {
            let user: User = parse(target, "user", value)?;
            let status = match user.status.as_str() {
                "active" => AccountStatus::Active,
                "suspended" => AccountStatus::Inactive,
                other => {
                    return Err(ConnectorError::malformed(
                        target,
                        format!(
                            "user {} has status `{other}` (expected active or suspended)",
                            user.id
                        ),
                    ))
                }
            };
            let mut attributes = Attributes::new();
            let department = non_empty(user.department.as_deref());
            put(&mut attributes, "department", department.map(Value::from));
            Ok(AccountRecord {
                id: user.id.to_string(),
                name: user.login,
                display_name: non_empty(user.display_name.as_deref()),
                email: non_empty(user.email.as_deref()),
                status,
                attributes,
            })
        }

        /// An Acme group → a `group` entitlement.
        pub fn map_group(target: &str, value: &Value) -> Result<EntitlementRecord, ConnectorError> {
            let group: Group = parse(target, "group", value)?;
            Ok(EntitlementRecord {
                entitlement_type: GROUP.to_string(),
                id: group.id.to_string(),
                name: group.name,
                attributes: Attributes::new(),
            })
        }

        /// An Acme group → one grant per member.
        pub fn map_members(
            target: &str,
            value: &Value,
        ) -> Result<Vec<GrantRecord>, ConnectorError> {
            let group: Group = parse(target, "group", value)?;
            let grants = group.members.iter().map(|member| GrantRecord {
                account_id: member.to_string(),
                entitlement_type: GROUP.to_string(),
                entitlement_id: group.id.to_string(),
                entitlement_name: Some(group.name.clone()),
            });
            Ok(grants.collect())
        }

        /// Each record of a page, mapped by `map`; the first that does not fit fails all.
        pub fn map_each<T>(
            target: &str,
            items: &[Value],
            map: fn(&str, &Value) -> Result<T, ConnectorError>,
        ) -> Result<Vec<T>, ConnectorError> {
            items.iter().map(|item| map(target, item)).collect()
        }
    }

    /// import.rs: the reads. Each listing is a stream of pages; the import job stages them
    /// as they come, so memory stays flat however large the target is.
    mod import {
        use async_trait::async_trait;
        use futures::StreamExt;
        use idsync::connector::kit::Reads;
        use idsync::connector::mapping::first_id;
        use idsync::connector::paging::{OffsetPager, PageInfo};
        use idsync::connector::{ConnectorError, Page, PageStream};
        use idsync::model::{AccountRecord, EntitlementRecord, GrantRecord};
        use serde_json::Value;

        use super::wire::{self, ListBody};
        use super::AcmeDirectory;

        #[async_trait]
        impl Reads for AcmeDirectory {
            /// `test_connection`: a token and one cheap read.
            async fn probe(&self) -> Result<(), ConnectorError> {
                let query = [("offset", "0".to_string()), ("limit", "1".to_string())];
                let url = self.http.url(&["users"], &query)?;
                let _: ListBody = self.http.get_json(url).await?;
                Ok(())
            }

            /// Accounts: `GET /users`, one stream item per page.
            fn account_pages(&self) -> PageStream<'_, AccountRecord> {
                self.pages("users", |target, items| {
                    wire::map_each(target, items, wire::map_user)
                })
            }

            /// Entitlements: `GET /groups`.
            fn entitlement_pages(&self) -> PageStream<'_, EntitlementRecord> {
                self.pages("groups", |target, items| {
                    wire::map_each(target, items, wire::map_group)
                })
            }

            /// Grants: `GET /groups` again; each group lists its members.
            fn grant_pages(&self) -> PageStream<'_, GrantRecord> {
                self.pages("groups", |target, items| {
                    let grants = wire::map_each(target, items, wire::map_members)?;
                    Ok(grants.into_iter().flatten().collect())
                })
            }

            /// One account by login name, for judging a duplicate create, and for checking
            /// the target before a create whose first attempt timed out is repeated.
            async fn find_account(
                &self,
                name: &str,
            ) -> Result<Option<AccountRecord>, ConnectorError> {
                let target = self.core.target();
                let filter = [("login", name.to_string())];
                let page_size = self.core.page_size();
                let mut pager = OffsetPager::new(target, "users by login", page_size);
                while let Some(items) = self.next_page("users", &filter, &mut pager).await? {
                    for user in wire::map_each(target, &items, wire::map_user)? {
                        if user.name.eq_ignore_ascii_case(name) {
                            return Ok(Some(user));
                        }
                    }
                }
                Ok(None)
            }
        }

        impl AcmeDirectory {
            /// Listing `path` as a stream of pages, each mapped by `map`. The first error,
            /// reading or mapping, ends the stream and fails the run. A page is a
            /// `Page { records, anomalies }`; this adapter tolerates nothing, so it notes
            /// nothing (`Page::from(records)`; see `idsync::connector::mapping::Fields` for
            /// a tolerant reader whose notes the import engine counts and logs).
            fn pages<T: Send + 'static>(
                &self,
                path: &'static str,
                map: fn(&str, &[Value]) -> Result<Vec<T>, ConnectorError>,
            ) -> PageStream<'_, T> {
                let pager = OffsetPager::new(self.core.target(), path, self.core.page_size());
                futures::stream::try_unfold(pager, move |mut pager| async move {
                    match self.next_page(path, &[], &mut pager).await? {
                        Some(items) => {
                            let records = map(self.core.target(), &items)?;
                            Ok(Some((Page::from(records), pager)))
                        }
                        None => Ok(None),
                    }
                })
                .boxed()
            }

            /// The page the pager asks for next, checked by the pager before it is used;
            /// `None` once the listing has been read. The pager advances by what the page
            /// held, stops at `total`, and fails on a repeated or inconsistent page, so a
            /// bad listing never becomes a partial snapshot.
            async fn next_page(
                &self,
                path: &str,
                filter: &[(&str, String)],
                pager: &mut OffsetPager,
            ) -> Result<Option<Vec<Value>>, ConnectorError> {
                let Some(request) = pager.next_request() else {
                    return Ok(None);
                };
                let mut query = vec![
                    ("offset", request.offset.to_string()),
                    ("limit", request.limit.to_string()),
                ];
                query.extend_from_slice(filter);
                let url = self.http.url(&[path], &query)?;
                // A GET: retried on timeouts, 5xx and 429 under the target's `read_retry`.
                let body: ListBody = self.http.get_json(url).await?;
                pager.record(PageInfo {
                    items: body.items.len(),
                    offset: body.offset,
                    limit: body.limit,
                    total: body.total,
                    first_key: first_id(&body.items),
                })?;
                Ok(Some(body.items))
            }
        }
    }

    /// provision.rs: the changes. The kit's dispatch refuses what the capabilities do not
    /// declare, then calls one method per operation. A method returns `Done`, or
    /// `AlreadyDone` when the change was in place; an error's class decides whether the
    /// queue retries it.
    mod provision {
        use async_trait::async_trait;
        use idsync::connector::kit::idempotency::{self, Holder};
        use idsync::connector::kit::{rest, Entitlement, Operations, Outcome, Reads};
        use idsync::connector::template::TemplateContext;
        use idsync::connector::{ConnectorError, ProvisionOutcome, ProvisionRequest};
        use reqwest::Method;
        use serde_json::json;

        use super::wire::Created;
        use super::AcmeDirectory;

        #[async_trait]
        impl Operations for AcmeDirectory {
            /// `POST /users` with the `create_account` template's body. A 409 (the login is
            /// taken) counts as done only when the holder is the same person (same email);
            /// anyone else fails the task with "username X taken by account id N".
            async fn create_account(&self, request: &ProvisionRequest) -> Outcome {
                let core = &self.core;
                let login = request.account_name.as_str();
                rest::check_create(core, request, &["email"], "Acme requires an email")?;
                // A target that needs an initial password generates one per attempt
                // (`password::generate_password`) and binds it with
                // `TemplateContext::with_password`, as Jama does; it is never stored or logged.
                let context = TemplateContext::from_request(core.target(), request);
                let body = core
                    .templates()
                    .render("create_account", &context)
                    .map_err(|err| core.template_failed(err))?;
                let url = self.http.url(&["users"], &[])?;
                // A change is sent once and never retried here: the queue decides, knowing
                // that the first attempt may have gone through.
                match self.http.send(Method::POST, url, Some(&body)).await {
                    Ok(response) => {
                        let created: Created = self
                            .http
                            .parse_json("the answer to POST /users", &response.body)?;
                        Ok(ProvisionOutcome::Done {
                            account_id: Some(created.id.to_string()),
                        })
                    }
                    Err(err) if is_conflict(&err) => {
                        let holder = self.find_account(login).await?.map(Holder::from);
                        let email = rest::body_text(&body, "email");
                        idempotency::judge_duplicate(core, login, email.as_deref(), holder, err)
                    }
                    Err(err) => Err(err),
                }
            }

            /// `POST /groups/{id}/members`. The account's id comes from the store (the kit
            /// refuses a task that has none yet); a 409 (already a member) counts as done.
            async fn add_access(
                &self,
                request: &ProvisionRequest,
                entitlement: Entitlement<'_>,
            ) -> Outcome {
                let account = self.core.account_id(request)?;
                let url = self.http.url(&["groups", entitlement.id, "members"], &[])?;
                let body = json!({ "user_id": account.as_str() });
                let sent = self.http.send(Method::POST, url, Some(&body)).await;
                let done = sent.map(|_| ProvisionOutcome::Done { account_id: None });
                idempotency::already_done_if(done, is_conflict)
            }

            // The other operations keep the kit's default, which refuses them. Each one this
            // target supports is one more method here and one more entry in `capabilities`.
        }

        /// Acme answers "already exists" and "already a member" with HTTP 409.
        fn is_conflict(err: &ConnectorError) -> bool {
            matches!(
                err,
                ConnectorError::Permanent {
                    status: Some(409),
                    ..
                }
            )
        }
    }
}

// ----------------------------------------------------------------------------------------
// Using the adapter: what idsync does with a target, start to end.
// ----------------------------------------------------------------------------------------

/// The target's config name.
const TARGET: &str = "acme";

/// The stand-in API's OAuth client. The secret reaches idsync through a file, as systemd's
/// `LoadCredential=` would hand it over; it is never printed.
const CLIENT_ID: &str = "idsync-example";
const CLIENT_SECRET: &str = "acme-example-secret";

/// Checks Acme targets, as the registry's `AdapterRules` checks the built-in kinds: keys of
/// other kinds are refused, then the adapter reads its own settings and templates. This is
/// the whole check that `check-config` would run on a `kind = "acme"` target.
struct AcmeRules;

impl TargetRules for AcmeRules {
    fn check(&self, name: &str, target: &TargetConfig) -> Vec<ConfigProblem> {
        let own = <AcmeDirectory as Adapter>::Settings::KEYS;
        let mut problems: Vec<ConfigProblem> = target
            .kind_specific_keys()
            .into_iter()
            .filter(|(key, set)| *set && !own.contains(key))
            .map(|(key, _)| ConfigProblem::new(key, "does not apply to Acme (remove it)"))
            .collect();
        problems.extend(AcmeDirectory::check_config(name, target));
        problems
    }
}

/// The config: a store and one target, with the settings every target shares (base URL,
/// page size, and the defaults for timeouts, pacing, retries and TLS).
///
/// `kind` is a closed list that only the crate can extend (see the top of this file). The
/// example borrows `"jama"`, the built-in kind closest to Acme (OAuth client credentials,
/// through the same `client_id` and `client_secret` keys). Nothing here acts on it: the
/// config is checked with `AcmeRules`, not the registry's rules, and the connector is built
/// by `AcmeDirectory::build`, not the registry. The kind's name shows only in a few of the
/// kit's messages (a bad `page_size` "must be between 1 and 200 for kind = \"jama\"").
/// A real fourth target writes `kind = "acme"`.
fn config_text(base_url: &str, store: &Path, secret_file: &Path) -> String {
    let quote = |text: String| toml::Value::String(text).to_string();
    let store = quote(format!("sqlite://{}", store.display()));
    let base_url = quote(base_url.to_string());
    let secret_file = quote(secret_file.display().to_string());
    format!(
        r#"
[store]
url = {store}

[targets.acme]
# Borrowed (see above); a real fourth target writes kind = "acme".
kind = "jama"
base_url = {base_url}
client_id = "{CLIENT_ID}"
client_secret = {{ file = {secret_file} }}
# Small pages, so the import reads several.
page_size = 10
"#
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let base_url = vendor_api::start(CLIENT_ID, CLIENT_SECRET).await?;
    println!("Acme Directory (stand-in) at {base_url}");

    // 1. The config, loaded and checked like idsync's own: every problem at once.
    let dir = tempfile::tempdir()?;
    let secret_file = dir.path().join("acme-client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n"))?;
    let text = config_text(&base_url, &dir.path().join("idsync.db"), &secret_file);
    let config: Arc<Config> =
        match config::load_from_str(&text, "custom_connector example", &[], &AcmeRules) {
            Ok(loaded) => Arc::new(loaded.config),
            Err(err) => {
                let problems: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
                return Err(format!("{err}:\n  {}", problems.join("\n  ")).into());
            }
        };
    let target = config
        .targets
        .get(TARGET)
        .ok_or("the config has no acme target")?;

    // 2. The connector. `build` comes with the kit; the adapter is a `Connector` through the
    //    kit's blanket impl, so the jobs can use it like any other.
    let connector: Arc<dyn Connector> = Arc::new(AcmeDirectory::build(TARGET, target)?);
    connector.test_connection().await?;
    println!("test_connection: OK");
    // What the queue asks when a task is submitted: an operation the adapter does not
    // declare is refused then, with the adapter's reason.
    let remove = Operation::RemoveAccount;
    if !connector.capabilities().supports(remove, None) {
        let why = connector.unsupported_reason(remove, None);
        println!("{remove} would be refused at submit: {why}");
    }

    // 3. The store and the import job. `App::build` builds its connectors through the
    //    registry, so here the parts are put together directly: the import job takes any
    //    map of connectors by target name (`ProvisionRunner::new`, the task queue's job,
    //    takes the same parts).
    let store =
        Arc::new(SqliteStore::open(&config.store.url, config.store.busy_timeout.get()).await?);
    let connectors = Arc::new(BTreeMap::from([(TARGET.to_string(), connector.clone())]));
    let imports = ImportRunner::new(store.clone(), connectors, config.clone());
    println!("First import:");
    import(&imports).await?;

    // 4. Provisioning. The daemon runs tasks through its queue; here one create goes straight
    //    to `Connector::provision`, the call the queue makes.
    let mut attributes = Attributes::new();
    attributes.insert("email".into(), "new.hire@example.com".into());
    attributes.insert("displayname".into(), "New Hire".into());
    attributes.insert("department".into(), "Engineering".into());
    let create = ProvisionRequest {
        operation: Operation::CreateAccount,
        account_id: None,
        account_name: "new.hire".into(),
        entitlement: None,
        attributes,
        entitlement_name: None,
        task_id: None,
        request_id: Some("example-1".into()),
    };
    let new_id = match connector.provision(&create).await? {
        ProvisionOutcome::Done {
            account_id: Some(id),
        } => id,
        other => {
            return Err(format!("create_account: expected a new account, got {other:?}").into())
        }
    };
    println!("create_account new.hire: done, account id {new_id}");

    // The same create again, as a retry after a lost answer would send it: the login is
    // taken by the same person (same email), so it counts as done.
    match connector.provision(&create).await? {
        ProvisionOutcome::AlreadyDone { account_id } if account_id.as_deref() == Some(&new_id) => {
            println!("create_account new.hire again: already done (same email)");
        }
        other => return Err(format!("repeated create_account: got {other:?}").into()),
    }

    // Access: the new account joins group g1, by the id the create returned.
    let join = ProvisionRequest {
        operation: Operation::AddAccess,
        account_id: Some(new_id.clone()),
        entitlement: Some((acme::GROUP.into(), "g1".into())),
        entitlement_name: Some("Engineering".into()),
        request_id: Some("example-2".into()),
        ..create
    };
    connector.provision(&join).await?;
    println!("add_access group:g1 (Engineering) for {new_id}: done");

    // 5. The next import finds the new account and its membership.
    println!("Second import:");
    let second = import(&imports).await?;
    let new_accounts = second.runs.first().map(|run| run.counts.account.created);
    let new_grants = second.runs.get(1).map(|run| run.counts.grant.created);
    if (new_accounts, new_grants) != (Some(1), Some(1)) {
        return Err("the second import did not find exactly one new account and grant".into());
    }

    // 6. What the store holds now.
    let accounts = store
        .list_accounts(&AccountFilter {
            target: Some(TARGET.into()),
            ..AccountFilter::default()
        })
        .await?;
    let entitlements = store
        .list_entitlements(&EntitlementFilter {
            target: TARGET.into(),
            ..EntitlementFilter::default()
        })
        .await?;
    let grants = store
        .list_grants(&GrantFilter {
            target: TARGET.into(),
            ..GrantFilter::default()
        })
        .await?;
    let hire = store
        .get_account(TARGET, &new_id)
        .await?
        .ok_or("the created account is not in the store")?;
    println!(
        "Store: {} accounts, {} entitlements, {} grants; {} is {} ({}, {})",
        accounts.len(),
        entitlements.len(),
        grants.len(),
        hire.name,
        hire.id,
        hire.display_name.as_deref().unwrap_or("-"),
        hire.status,
    );
    Ok(())
}

/// Runs an account import and then an access import of the target, and prints each run.
/// Fails unless both succeed.
async fn import(imports: &ImportRunner) -> Result<ImportSummary, Box<dyn Error>> {
    let request = ImportRequest {
        target: TARGET.into(),
        job: "manual".into(),
        parts: ImportParts::Both,
        mode: ImportMode::Full,
        dry_run: false,
        allow_deletions: false,
        trigger: Trigger::Cli,
        actor: "cli:custom_connector-example".into(),
        started: None,
    };
    let summary = imports.run(request, &CancellationToken::new()).await?;
    for run in &summary.runs {
        let counts = &run.counts;
        let objects = [
            ("accounts", &counts.account),
            ("entitlements", &counts.entitlement),
            ("grants", &counts.grant),
        ];
        let changes: Vec<String> = objects
            .iter()
            .filter(|(_, change)| **change != Default::default())
            .map(|(object, change)| {
                format!(
                    "{object}: {} created, {} unchanged",
                    change.created, change.unchanged
                )
            })
            .collect();
        println!(
            "  run {} {}: {}, {} read; {}",
            run.run_id.unwrap_or_default(),
            run.kind,
            run.outcome,
            counts.read,
            changes.join("; ")
        );
        if run.outcome != RunOutcome::Succeeded {
            let why = run.error.as_deref().unwrap_or("no reason given");
            return Err(format!("{} of {TARGET} {}: {why}", run.kind, run.outcome).into());
        }
    }
    if summary.runs.len() != 2 {
        return Err(format!("the import skipped a run: {}", summary.skipped.join("; ")).into());
    }
    Ok(summary)
}

/// Stands in for the vendor's API: a small in-process HTTP server on 127.0.0.1 with an OAuth
/// token endpoint, paged users and groups, a create-user call and a membership call. A real
/// adapter talks to the vendor instead; its tests use wiremock, or a simulator in
/// `crates/idsync-sim`. Nothing in here is part of the adapter.
mod vendor_api {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use axum::body::Bytes;
    use axum::extract::{Path, Query, Request, State};
    use axum::http::header::AUTHORIZATION;
    use axum::http::{HeaderMap, StatusCode};
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use base64::Engine as _;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    /// Acme's data: 25 users, 3 groups, and the tokens handed out.
    struct Directory {
        users: Vec<User>,
        groups: Vec<Group>,
        tokens: Vec<String>,
    }

    #[derive(Serialize)]
    struct User {
        id: String,
        login: String,
        display_name: String,
        email: String,
        status: &'static str,
        department: String,
    }

    #[derive(Serialize)]
    struct Group {
        id: String,
        name: String,
        members: Vec<String>,
    }

    #[derive(Clone)]
    struct Api {
        directory: Arc<Mutex<Directory>>,
        /// The `Authorization` header the token endpoint accepts.
        basic: String,
    }

    impl Api {
        fn directory(&self) -> MutexGuard<'_, Directory> {
            self.directory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// Starts the server on a free loopback port; returns its API root.
    pub async fn start(client_id: &str, client_secret: &str) -> std::io::Result<String> {
        let pair = format!("{client_id}:{client_secret}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let api = Api {
            directory: Arc::new(Mutex::new(seed())),
            basic: format!("Basic {encoded}"),
        };
        // Everything but the token endpoint needs a bearer token.
        let with_token = Router::new()
            .route("/users", get(list_users).post(create_user))
            .route("/groups", get(list_groups))
            .route("/groups/{id}/members", post(add_member))
            .route_layer(middleware::from_fn_with_state(api.clone(), require_token));
        let routes = Router::new()
            .route("/v1/oauth/token", post(token))
            .nest("/v1", with_token)
            .with_state(api);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, routes).await });
        Ok(format!("http://{addr}/v1"))
    }

    fn seed() -> Directory {
        let users: Vec<User> = (1..=25)
            .map(|n: usize| User {
                id: format!("u{n:03}"),
                login: format!("user{n:02}"),
                display_name: format!("User {n}"),
                email: format!("user{n:02}@example.com"),
                status: if n == 25 { "suspended" } else { "active" },
                department: match n % 3 {
                    0 => "Engineering",
                    1 => "Sales",
                    _ => "Support",
                }
                .to_string(),
            })
            .collect();
        let members_of = |department: &str| {
            let members = users.iter().filter(|user| user.department == department);
            members.map(|user| user.id.clone()).collect()
        };
        let group = |id: &str, name: &str, members: Vec<String>| Group {
            id: id.into(),
            name: name.into(),
            members,
        };
        let groups = vec![
            group("g1", "Engineering", members_of("Engineering")),
            group("g2", "Sales", members_of("Sales")),
            group("g3", "Admins", vec!["u001".into(), "u002".into()]),
        ];
        Directory {
            users,
            groups,
            tokens: Vec::new(),
        }
    }

    fn error(status: StatusCode, code: &str, message: &str) -> Response {
        let body = json!({ "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    }

    /// `POST /v1/oauth/token`: HTTP Basic client credentials, form body
    /// `grant_type=client_credentials`.
    async fn token(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
        let basic = headers.get(AUTHORIZATION).map(|value| value.as_bytes());
        if basic != Some(api.basic.as_bytes()) {
            let message = "unknown client or wrong secret";
            return error(StatusCode::UNAUTHORIZED, "invalid_client", message);
        }
        let grant = url::form_urlencoded::parse(&body)
            .any(|(key, value)| key == "grant_type" && value == "client_credentials");
        if !grant {
            let message = "use client_credentials";
            return error(StatusCode::BAD_REQUEST, "unsupported_grant_type", message);
        }
        let token = format!("acme-{:032x}", rand::random::<u128>());
        api.directory().tokens.push(token.clone());
        Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 }))
            .into_response()
    }

    /// Lets a request through only with a token the token endpoint handed out.
    async fn require_token(State(api): State<Api>, request: Request, next: Next) -> Response {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let known = token.is_some_and(|token| api.directory().tokens.iter().any(|t| t == token));
        if !known {
            let message = "a valid bearer token is required";
            return error(StatusCode::UNAUTHORIZED, "invalid_token", message);
        }
        next.run(request).await
    }

    #[derive(Deserialize)]
    struct ListQuery {
        offset: Option<usize>,
        limit: Option<usize>,
        login: Option<String>,
    }

    /// One page: `{"items": […], "offset": N, "limit": N, "total": N}`, at most 200 items.
    fn page<T: Serialize>(items: &[&T], query: &ListQuery) -> Response {
        let offset = query.offset.unwrap_or(0);
        let limit = query.limit.unwrap_or(100).clamp(1, 200);
        let slice: Vec<&&T> = items.iter().skip(offset).take(limit).collect();
        let body =
            json!({ "items": slice, "offset": offset, "limit": limit, "total": items.len() });
        Json(body).into_response()
    }

    /// `GET /v1/users`, optionally only the user with login `login`.
    async fn list_users(State(api): State<Api>, Query(query): Query<ListQuery>) -> Response {
        let directory = api.directory();
        let login = query.login.as_deref();
        let wanted =
            |user: &&User| login.is_none_or(|login| user.login.eq_ignore_ascii_case(login));
        let users: Vec<&User> = directory.users.iter().filter(wanted).collect();
        page(&users, &query)
    }

    /// `GET /v1/groups`, each with its members.
    async fn list_groups(State(api): State<Api>, Query(query): Query<ListQuery>) -> Response {
        let directory = api.directory();
        let groups: Vec<&Group> = directory.groups.iter().collect();
        page(&groups, &query)
    }

    #[derive(Deserialize)]
    struct NewUser {
        login: String,
        email: String,
        display_name: Option<String>,
        department: Option<String>,
    }

    /// `POST /v1/users`: 201 `{"id": …}`, or 409 when the login is taken.
    async fn create_user(State(api): State<Api>, Json(new): Json<NewUser>) -> Response {
        let mut directory = api.directory();
        let taken = |user: &User| user.login.eq_ignore_ascii_case(&new.login);
        if directory.users.iter().any(taken) {
            return error(StatusCode::CONFLICT, "conflict", "login already exists");
        }
        let id = format!("u{:03}", directory.users.len() + 1);
        directory.users.push(User {
            id: id.clone(),
            display_name: new.display_name.unwrap_or_else(|| new.login.clone()),
            login: new.login,
            email: new.email,
            status: "active",
            department: new.department.unwrap_or_default(),
        });
        (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
    }

    #[derive(Deserialize)]
    struct NewMember {
        user_id: String,
    }

    /// `POST /v1/groups/{id}/members`: 204, 404 for an unknown group or user, 409 when the
    /// user is a member already.
    async fn add_member(
        State(api): State<Api>,
        Path(group_id): Path<String>,
        Json(member): Json<NewMember>,
    ) -> Response {
        let mut directory = api.directory();
        if !directory.users.iter().any(|user| user.id == member.user_id) {
            return error(StatusCode::NOT_FOUND, "not_found", "no such user");
        }
        let group = directory
            .groups
            .iter_mut()
            .find(|group| group.id == group_id);
        let Some(group) = group else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such group");
        };
        if group.members.contains(&member.user_id) {
            return error(StatusCode::CONFLICT, "conflict", "already a member");
        }
        group.members.push(member.user_id);
        StatusCode::NO_CONTENT.into_response()
    }
}
