//! A Jama Connect REST API simulator, served over real HTTP on loopback.
//!
//! It follows Jama's public REST documentation and the official Python client (`py-jama-rest-client`
//! 1.17.1, which `scripts/check-jama-client.sh` runs against it unmodified): OAuth client
//! credentials at `POST /rest/oauth/token` with tokens that expire, the `/rest/v1` envelope
//! with `startAt`/`maxResults` paging silently clamped at 50, `includeInactive`, 201 with
//! `meta.id`, `PUT /users/{id}` as a full replace, `already exists` duplicates, `/active`,
//! user-group membership, and a tenant-wide 10 requests per second with bare 429s. Tokens
//! can be expired and the credentials revoked mid-run, and latency and failures injected —
//! from Rust through [`JamaControl`], or over HTTP under `/_sim/` (no token needed, not rate
//! limited, not counted):
//!
//! | route | does |
//! |---|---|
//! | `POST /_sim/revoke` · `POST /_sim/restore` | reject / accept the client secret again (revoking also invalidates every token) |
//! | `POST /_sim/token_lifetime` `{"secs":2}` | lifetime of tokens issued from now on |
//! | `POST /_sim/expire_tokens` | expire every token issued so far |
//! | `POST /_sim/latency` `{"ms":250}` | delay every token and API answer |
//! | `POST /_sim/rate_limits` `{"windows":[{"requests":10,"per_ms":1000}]}` | replace the rate windows (`[]`: off) |
//! | `POST /_sim/fail_next` `{"count":2,"status":503}` | fail the next `/rest/v1` requests |
//! | `POST /_sim/faults` [`FaultRule`](super::FaultRule) · `GET` · `DELETE /_sim/faults` | add / list / clear fault rules (`path_prefix` `/rest/oauth/token` targets the token endpoint) |
//! | `GET /_sim/stats` · `DELETE /_sim/stats` | counters ([`SimStats`](super::SimStats)) / reset them |
//! | `POST /_sim/advance_clock` `{"ms":3600000}` | move the simulator's clock forward: tokens expire, windows roll ([`SimClock`]) |
//! | `GET /_sim/users[?username=U]` · `GET /_sim/users/{id}` | users ([`JamaUser`]) |
//! | `POST /_sim/users` [`JamaUserSpec`] → 201 `{"id":N}` · `DELETE /_sim/users/{id}` | add / remove a user |
//! | `POST /_sim/users/{id}/active` `{"active":false}` | activate / deactivate a user |
//! | `POST /_sim/users/{id}/hide` · `POST /_sim/users/{id}/unhide` | make a user vanish / return with the same id |
//! | `GET /_sim/groups` · `GET /_sim/groups/{id}/members` | groups ([`JamaGroup`]) / member ids |
//! | `POST /_sim/groups/{id}/members` `{"user":N}` · `DELETE /_sim/groups/{id}/members/{userId}` | add / remove a member |
//!
//! Choices where Jama's documentation is silent: the token endpoint is not rate limited; a missing,
//! unknown or expired token is refused before the rate windows count the request; group
//! member lists include inactive members; `PUT /users/{id}` keeps `licenseType` and
//! `authenticationType` when the body leaves them out (the official client never sends
//! them); unknown body keys are ignored.

mod admin;
mod api;
mod data;
mod seed;
#[cfg(test)]
mod tests;
mod tokens;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::clock::SimClock;
use super::control::{CoreAccess, SimCore};
use super::ratelimit::RateWindow;
use super::server::{toml_key, toml_string, SimServer};
use data::{Directory, Group, MembershipError, UserRecord};
use tokens::TokenStore;

pub use data::LicenseType;
pub use seed::JamaSeed;

/// The REST API root, below the host root.
pub const API_ROOT: &str = "/rest/v1";

/// The OAuth token endpoint, below the host root.
pub const TOKEN_PATH: &str = "/rest/oauth/token";

/// The client id the simulator accepts unless configured otherwise (a throwaway demo value).
pub const DEFAULT_CLIENT_ID: &str = "idsync-sim-jama";

/// The client secret the simulator accepts unless configured otherwise (a throwaway demo
/// value).
pub const DEFAULT_CLIENT_SECRET: &str = "idsync-sim-jama-secret-0123456789abcdef";

/// Page size when a list request names none.
pub const DEFAULT_MAX_RESULTS: u32 = 20;

/// The largest page Jama returns; larger `maxResults` are cut to it silently.
pub const DEFAULT_MAX_RESULTS_CAP: u32 = 50;

/// How long tokens live unless configured otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A running Jama simulator.
pub type JamaServer = SimServer<JamaControl>;

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct JamaSimConfig {
    /// The only OAuth client id accepted.
    pub client_id: String,
    /// Its secret.
    pub client_secret: SecretString,
    /// The tenant's data at start.
    pub seed: JamaSeed,
    /// How long an issued access token is accepted (`expires_in` is this, rounded up to
    /// whole seconds).
    pub token_lifetime: Duration,
    /// The largest `maxResults` a list honours (larger ones are cut to it silently).
    pub max_results_cap: u32,
    /// Rolling rate windows over every `/rest/v1` request of the tenant, all enforced;
    /// empty: no limit.
    pub rate_limits: Vec<RateWindow>,
    /// Delay before every token and API answer.
    pub latency: Duration,
    /// The clock answers are decided by (token lifetimes, rate windows, latency,
    /// `meta.timestamp`); real time by default, or [`SimClock::manual`] for a test that
    /// advances time itself.
    pub clock: SimClock,
}

impl Default for JamaSimConfig {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
            seed: JamaSeed::default(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            max_results_cap: DEFAULT_MAX_RESULTS_CAP,
            rate_limits: jama_rate_limits(),
            latency: Duration::ZERO,
            clock: SimClock::real(),
        }
    }
}

/// Jama's limit: 10 requests per second for the whole tenant.
pub fn jama_rate_limits() -> Vec<RateWindow> {
    vec![RateWindow::new(10, Duration::from_secs(1))]
}

/// Everything the simulator knows and does, behind one lock (never held across an await).
#[derive(Debug)]
pub(crate) struct JamaState {
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) credentials_revoked: bool,
    pub(crate) token_lifetime: Duration,
    pub(crate) tokens: TokenStore,
    pub(crate) max_results_cap: u32,
    pub(crate) core: SimCore,
    pub(crate) dir: Directory,
}

/// A Jama simulator built but not yet serving; [`JamaSim::start`] builds and serves in one
/// call.
#[derive(Debug, Clone)]
pub struct JamaSim {
    control: JamaControl,
}

impl JamaSim {
    /// Builds the tenant from `config.seed` (20 000 users in 40 groups take a fraction of a
    /// second).
    pub fn new(config: JamaSimConfig) -> Self {
        let state = JamaState {
            client_id: config.client_id,
            client_secret: config.client_secret,
            credentials_revoked: false,
            token_lifetime: config.token_lifetime,
            tokens: TokenStore::default(),
            max_results_cap: config.max_results_cap.max(1),
            core: SimCore::new(config.clock, config.latency, &config.rate_limits),
            dir: config.seed.generate(),
        };
        Self {
            control: JamaControl {
                state: Arc::new(Mutex::new(state)),
            },
        }
    }

    /// Builds the tenant off the async threads, binds `addr` (port 0 picks a free port) and
    /// serves until the returned server is shut down or dropped.
    pub async fn start(config: JamaSimConfig, addr: SocketAddr) -> io::Result<JamaServer> {
        let sim = tokio::task::spawn_blocking(move || Self::new(config))
            .await
            .map_err(io::Error::other)?;
        sim.serve(addr).await
    }

    /// The control handle (the same one the server hands out).
    pub fn control(&self) -> JamaControl {
        self.control.clone()
    }

    /// The whole HTTP surface (token endpoint, API and `/_sim/` control routes), to mount
    /// elsewhere.
    pub fn router(&self) -> Router {
        let router = admin::routes()
            .fallback(api::entry)
            .layer(axum::middleware::from_fn_with_state(
                self.control.clone(),
                api::at_sim_time,
            ))
            .with_state(self.control.clone());
        crate::faults::layer(router, self.control.clone(), API_ROOT, None)
    }

    /// Binds `addr` and serves until the returned server is shut down or dropped.
    pub async fn serve(self, addr: SocketAddr) -> io::Result<JamaServer> {
        let router = self.router();
        // The base URL is the host root: clients append /rest/oauth/token and /rest/v1/….
        SimServer::spawn(addr, router, "", self.control, "jama").await
    }
}

impl SimServer<JamaControl> {
    /// A `[targets.NAME]` table pointing idsync at this simulator, ready to paste into a
    /// config (the credentials are the simulator's throwaway values).
    pub fn toml_fragment(&self, target_name: &str) -> String {
        let control = self.control();
        let state = control.lock();
        format!(
            "[targets.{}]\nkind = \"jama\"\nbase_url = {}\nclient_id = {}\nclient_secret = {}\n",
            toml_key(target_name),
            toml_string(&self.base_url()),
            toml_string(&state.client_id),
            toml_string(state.client_secret.expose_secret()),
        )
    }
}

/// A user to add through [`JamaControl::add_user`] or `POST /_sim/users` (camelCase keys, as
/// in the API). It is checked like a `POST /rest/v1/users` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JamaUserSpec {
    /// Login name, unique without letter case.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email.
    pub email: String,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Job title.
    #[serde(default)]
    pub title: Option<String>,
    /// Location.
    #[serde(default)]
    pub location: Option<String>,
    /// License; default `NAMED`.
    #[serde(default)]
    pub license_type: LicenseType,
    /// Whether the user starts active; default true.
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

impl JamaUserSpec {
    /// An active `NAMED` user.
    pub fn new(
        username: impl Into<String>,
        first_name: impl Into<String>,
        last_name: impl Into<String>,
        email: impl Into<String>,
    ) -> Self {
        Self {
            username: username.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            email: email.into(),
            phone: None,
            title: None,
            location: None,
            license_type: LicenseType::Named,
            active: true,
        }
    }

    /// The same checks as a `POST /rest/v1/users` body.
    fn validate(&self, dir: &Directory) -> Result<data::UserFields, JamaControlError> {
        let body = serde_json::json!({
            "username": self.username,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
            "phone": self.phone,
            "title": self.title,
            "location": self.location,
            "licenseType": self.license_type.as_str(),
        });
        let map = body.as_object().cloned().unwrap_or_default();
        api::validate_user(&map, dir, None)
            .map_err(|problems| JamaControlError::Invalid(problems.join(" ")))
    }
}

/// A user as the simulator holds it (a snapshot, camelCase like the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JamaUser {
    /// User id.
    pub id: u64,
    /// Login name.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email.
    pub email: String,
    /// Phone, if set.
    pub phone: Option<String>,
    /// Job title, if set.
    pub title: Option<String>,
    /// Location, if set.
    pub location: Option<String>,
    /// License.
    pub license_type: LicenseType,
    /// Whether the user is active.
    pub active: bool,
}

impl From<&UserRecord> for JamaUser {
    fn from(user: &UserRecord) -> Self {
        JamaUser {
            id: u64::from(user.id),
            username: user.username.to_string(),
            first_name: user.first_name.to_string(),
            last_name: user.last_name.to_string(),
            email: user.email.to_string(),
            phone: user.phone.as_deref().map(str::to_owned),
            title: user.title.as_deref().map(str::to_owned),
            location: user.location.as_deref().map(str::to_owned),
            license_type: user.license,
            active: user.active,
        }
    }
}

/// A user group as the simulator holds it (a snapshot, without the member list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JamaGroup {
    /// Group id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The project it belongs to; `None`: organisation-wide.
    pub project: Option<u64>,
    /// How many members it has.
    pub members: usize,
}

impl From<&Group> for JamaGroup {
    fn from(group: &Group) -> Self {
        JamaGroup {
            id: u64::from(group.id),
            name: group.name.clone(),
            description: group.description.clone(),
            project: group.project.map(u64::from),
            members: group.members.len(),
        }
    }
}

/// Why a control call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JamaControlError {
    /// No visible user has this id.
    #[error("no user with id {0}")]
    UnknownUser(u64),
    /// No group has this id.
    #[error("no user group with id {0}")]
    UnknownGroup(u64),
    /// The input failed the same checks the API applies.
    #[error("invalid input: {0}")]
    Invalid(String),
}

/// Ids are 32-bit in Jama; a larger one names nothing.
fn small_id(id: u64) -> Option<u32> {
    u32::try_from(id).ok()
}

/// Changes the running simulator: credentials, token lifetime, latency, rate windows,
/// faults, users and groups. Cheap to clone; every clone drives the same simulator.
///
/// The levers every simulator has come from [`SimControl`](super::SimControl). Here latency
/// delays token and API answers alike; the rate windows count `/rest/v1` requests;
/// [`fail_next`](super::SimControl::fail_next) fails the next `/rest/v1` requests that pass the
/// token and rate checks, and a [`fail_when`](super::SimControl::fail_when) rule whose
/// `path_prefix` is `/rest/oauth/token` fails token requests.
#[derive(Debug, Clone)]
pub struct JamaControl {
    state: Arc<Mutex<JamaState>>,
}

impl CoreAccess for JamaControl {
    type Error = JamaControlError;

    fn with_core<R>(&self, f: impl FnOnce(&mut SimCore) -> R) -> R {
        f(&mut self.lock().core)
    }

    fn invalid_fault(message: String) -> JamaControlError {
        JamaControlError::Invalid(message)
    }
}

impl JamaControl {
    pub(crate) fn lock(&self) -> MutexGuard<'_, JamaState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The accepted client id.
    pub fn client_id(&self) -> String {
        self.lock().client_id.clone()
    }

    /// The accepted client secret.
    pub fn client_secret(&self) -> SecretString {
        self.lock().client_secret.clone()
    }

    /// Rejects the client secret and invalidates every issued token: the token endpoint
    /// answers 401 and every API request 401 until
    /// [`restore_credentials`](Self::restore_credentials).
    pub fn revoke_credentials(&self) {
        let mut state = self.lock();
        state.credentials_revoked = true;
        state.tokens.clear();
    }

    /// Accepts the client secret again (tokens revoked before stay invalid).
    pub fn restore_credentials(&self) {
        self.lock().credentials_revoked = false;
    }

    /// True while the credentials are revoked.
    pub fn credentials_revoked(&self) -> bool {
        self.lock().credentials_revoked
    }

    /// Sets the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// The lifetime of newly issued tokens.
    pub fn token_lifetime(&self) -> Duration {
        self.lock().token_lifetime
    }

    /// Ends the lifetime of every token issued so far: the next API request with any of
    /// them gets 401 (as if an hour had passed).
    pub fn expire_tokens(&self) {
        let mut state = self.lock();
        let now = state.core.clock.now();
        state.tokens.expire_all(now);
    }

    /// How many issued tokens are still valid (on the simulator's clock).
    pub fn live_tokens(&self) -> usize {
        let state = self.lock();
        state.tokens.live(state.core.clock.now())
    }

    /// A snapshot of every visible user, by id.
    pub fn users(&self) -> Vec<JamaUser> {
        self.lock().dir.users.iter().map(JamaUser::from).collect()
    }

    /// The visible user with `id`.
    pub fn user(&self, id: u64) -> Option<JamaUser> {
        let id = small_id(id)?;
        self.lock().dir.user(id).map(JamaUser::from)
    }

    /// The visible user with `username` (any letter case).
    pub fn find_user(&self, username: &str) -> Option<JamaUser> {
        self.lock()
            .dir
            .users
            .iter()
            .find(|user| user.username.eq_ignore_ascii_case(username))
            .map(JamaUser::from)
    }

    /// How many users are visible.
    pub fn user_count(&self) -> usize {
        self.lock().dir.users.len()
    }

    /// Adds a user, checked like `POST /rest/v1/users`; returns its id.
    pub fn add_user(&self, spec: JamaUserSpec) -> Result<u64, JamaControlError> {
        let mut state = self.lock();
        let fields = spec.validate(&state.dir)?;
        Ok(u64::from(state.dir.insert(fields, spec.active)))
    }

    /// Activates or deactivates a user.
    pub fn set_active(&self, id: u64, active: bool) -> Result<(), JamaControlError> {
        let mut state = self.lock();
        let user = small_id(id)
            .and_then(|id| state.dir.user_mut(id))
            .ok_or(JamaControlError::UnknownUser(id))?;
        user.active = active;
        Ok(())
    }

    /// Hides a user from the API (lists, reads and its groups) without deleting it; false if
    /// there is no such visible user.
    pub fn hide_user(&self, id: u64) -> bool {
        small_id(id).is_some_and(|id| self.lock().dir.hide(id))
    }

    /// Brings a hidden user back with the same id, fields and groups; false if it was not
    /// hidden.
    pub fn unhide_user(&self, id: u64) -> bool {
        small_id(id).is_some_and(|id| self.lock().dir.unhide(id))
    }

    /// Deletes a user and its memberships (Jama's API cannot; an administrator can purge);
    /// false if there is no such visible user.
    pub fn remove_user(&self, id: u64) -> bool {
        small_id(id).is_some_and(|id| self.lock().dir.remove(id))
    }

    /// A snapshot of every group, by id.
    pub fn groups(&self) -> Vec<JamaGroup> {
        self.lock().dir.groups.iter().map(JamaGroup::from).collect()
    }

    /// The group with `id`.
    pub fn group(&self, id: u64) -> Option<JamaGroup> {
        let id = small_id(id)?;
        self.lock().dir.group(id).map(JamaGroup::from)
    }

    /// The member ids of a group, ascending; `None` if there is no such group.
    pub fn members(&self, group: u64) -> Option<Vec<u64>> {
        let group = small_id(group)?;
        let state = self.lock();
        let group = state.dir.group(group)?;
        Some(group.members.iter().copied().map(u64::from).collect())
    }

    /// How many memberships exist across all groups.
    pub fn membership_count(&self) -> usize {
        self.lock()
            .dir
            .groups
            .iter()
            .map(|group| group.members.len())
            .sum()
    }

    /// Adds a user to a group; `Ok(false)` if it already was a member.
    pub fn add_member(&self, group: u64, user: u64) -> Result<bool, JamaControlError> {
        let group_id = small_id(group).ok_or(JamaControlError::UnknownGroup(group))?;
        let user_id = small_id(user).ok_or(JamaControlError::UnknownUser(user))?;
        match self.lock().dir.add_member(group_id, user_id) {
            Ok(()) => Ok(true),
            Err(MembershipError::AlreadyMember) => Ok(false),
            Err(error) => Err(control_error(error, group, user)),
        }
    }

    /// Removes a user from a group; `Ok(false)` if it was not a member.
    pub fn remove_member(&self, group: u64, user: u64) -> Result<bool, JamaControlError> {
        let Some(group_id) = small_id(group) else {
            return Err(JamaControlError::UnknownGroup(group));
        };
        let Some(user_id) = small_id(user) else {
            return Ok(false);
        };
        match self.lock().dir.remove_member(group_id, user_id) {
            Ok(()) => Ok(true),
            Err(MembershipError::NotMember) => Ok(false),
            Err(error) => Err(control_error(error, group, user)),
        }
    }

    /// Adds a group (the API has no route for it; an administrator does it in the UI);
    /// returns its id.
    pub fn add_group(
        &self,
        name: impl Into<String>,
        description: impl Into<String>,
        project: Option<u64>,
    ) -> u64 {
        let project = project.and_then(small_id);
        u64::from(
            self.lock()
                .dir
                .add_group(name.into(), description.into(), project),
        )
    }

    /// Deletes a group and its memberships; false if there is none.
    pub fn remove_group(&self, id: u64) -> bool {
        small_id(id).is_some_and(|id| self.lock().dir.remove_group(id))
    }
}

fn control_error(error: MembershipError, group: u64, user: u64) -> JamaControlError {
    match error {
        MembershipError::UnknownGroup => JamaControlError::UnknownGroup(group),
        MembershipError::UnknownUser => JamaControlError::UnknownUser(user),
        MembershipError::AlreadyMember | MembershipError::NotMember => {
            JamaControlError::Invalid(format!("membership of user {user} in group {group}"))
        }
    }
}
