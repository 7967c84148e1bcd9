//! A DigiCert CertCentral Services API v2 simulator, served over real HTTP on loopback.
//!
//! It follows DigiCert's public Services API documentation (users, containers, errors and
//! rate limits): the API lives under `/services/v2`, every request needs `X-DC-DEVKEY`,
//! lists page with `offset`/`limit` and a `page` object, creates answer 201, updates and
//! deletes 204, and requests beyond either rolling window get a bare 429. As documented:
//!
//! * `GET /user/me` is the user the API key belongs to (the first seeded user, `user00001`:
//!   an active Administrator in the top-level container; 404 once it is deleted), and a
//!   `POST /user` without a `container` lands in that user's container.
//! * `filters[search]=%25VALUE` (decoded: a leading `%`) keeps the users whose `username`,
//!   `first_name`, `last_name` or `email` contains `VALUE`; without the `%`, those equal to
//!   it. Letter case is ignored in both.
//! * Edit user, `PUT /user/{id}`, takes `username`, `first_name`, `last_name`, `email`
//!   (the only required one), `job_title`, `telephone` and `is_saml_sso_only`. Names left out
//!   are kept; `job_title` and `telephone` left out are erased. Any other field is refused
//!   with 400 `invalid_field|NAME` (the docs list none, so a client sending one is off the
//!   documented API): roles change only through `PUT /user/{id}/role` (the whole list), and
//!   `container` is refused unless [`DigicertSimConfig::edit_user_moves_container`] is on.
//!
//! The key can be revoked mid-run, and latency and failures can be injected — from Rust
//! through [`DigicertControl`], or over HTTP through the control routes under `/_sim/` (no
//! key needed, not rate limited):
//!
//! | route | does |
//! |---|---|
//! | `POST /_sim/revoke` · `POST /_sim/restore` | revoke / restore the API key |
//! | `POST /_sim/latency` `{"ms":250}` | delay every API answer |
//! | `POST /_sim/rate_limits` `{"windows":[{"requests":10,"per_ms":1000}]}` | replace the rate windows (`[]`: off) |
//! | `POST /_sim/fail_next` `{"count":2,"status":503}` | fail the next API requests |
//! | `POST /_sim/faults` [`FaultRule`](super::FaultRule) · `GET` · `DELETE /_sim/faults` | add / list / clear fault rules |
//! | `GET /_sim/stats` · `DELETE /_sim/stats` | counters ([`SimStats`](super::SimStats)) / reset them |
//! | `POST /_sim/advance_clock` `{"ms":2000}` | move the simulator's clock forward ([`SimClock`]) |
//! | `GET /_sim/users[?username=U]` · `GET /_sim/users/{id}` | users ([`SimUser`]) |
//! | `POST /_sim/users` [`UserSpec`] → 201 `{"id":N}` | add a user |
//! | `DELETE /_sim/users/{id}` | remove a user |
//! | `POST /_sim/users/{id}/status` `{"status":"inactive"}` | set a user's status |

mod admin;
mod api;
mod data;
mod seed;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};

use super::clock::SimClock;
use super::control::{CoreAccess, SimCore};
use super::ratelimit::RateWindow;
use super::server::{toml_key, toml_string, SimServer};
use data::{Directory, RoleSet, UserRecord};

pub use api::ApiError;
pub use data::UserStatus;
pub use seed::DigicertSeed;

/// The path the API is served under.
pub const API_ROOT: &str = "/services/v2";

/// The header that carries the API key.
pub const DEVKEY_HEADER: &str = "X-DC-DEVKEY";

/// The key the simulator accepts unless configured otherwise (a throwaway demo value).
pub const DEFAULT_API_KEY: &str = "idsync-sim-digicert-0123456789abcdef";

/// The page size CertCentral answers with when a list request names none, and its cap.
pub const DEFAULT_LIMIT_CAP: u32 = 1000;

/// A running DigiCert simulator.
pub type DigicertServer = SimServer<DigicertControl>;

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct DigicertSimConfig {
    /// The only key accepted in `X-DC-DEVKEY`.
    pub api_key: String,
    /// The account data at start.
    pub seed: DigicertSeed,
    /// The largest `limit` a list honours (larger ones are cut to it; the `page` object shows
    /// the effective one).
    pub limit_cap: u32,
    /// Rolling rate windows, all enforced; empty: no limit.
    pub rate_limits: Vec<RateWindow>,
    /// Delay before every API answer.
    pub latency: Duration,
    /// The clock answers are decided by (rate windows, latency); real time by default, or
    /// [`SimClock::manual`] for a test that advances time itself.
    pub clock: SimClock,
    /// Accept `container: {id}` in Edit user (`PUT /user/{id}`) and move the user there, as
    /// Saviynt's DigiCert package assumes. CertCentral documents no such field, so off by
    /// default: the field is refused like any other undocumented one.
    pub edit_user_moves_container: bool,
}

impl Default for DigicertSimConfig {
    fn default() -> Self {
        Self {
            api_key: DEFAULT_API_KEY.to_owned(),
            seed: DigicertSeed::default(),
            limit_cap: DEFAULT_LIMIT_CAP,
            rate_limits: digicert_rate_limits(),
            latency: Duration::ZERO,
            clock: SimClock::real(),
            edit_user_moves_container: false,
        }
    }
}

/// CertCentral's limits: 100 requests per 5 seconds and 1000 per 3 minutes.
pub fn digicert_rate_limits() -> Vec<RateWindow> {
    vec![
        RateWindow::new(100, Duration::from_secs(5)),
        RateWindow::new(1000, Duration::from_secs(180)),
    ]
}

/// Everything the simulator knows and does, behind one lock (never held across an await).
#[derive(Debug)]
pub(crate) struct SimState {
    pub(crate) api_key: String,
    pub(crate) key_revoked: bool,
    pub(crate) limit_cap: u32,
    pub(crate) edit_user_moves_container: bool,
    pub(crate) core: SimCore,
    pub(crate) dir: Directory,
}

/// A DigiCert simulator built but not yet serving; [`DigicertSim::start`] builds and serves
/// in one call.
#[derive(Debug, Clone)]
pub struct DigicertSim {
    control: DigicertControl,
}

impl DigicertSim {
    /// Builds the account from `config.seed` (100 000 users take a fraction of a second).
    pub fn new(config: DigicertSimConfig) -> Self {
        let state = SimState {
            api_key: config.api_key,
            key_revoked: false,
            limit_cap: config.limit_cap.max(1),
            edit_user_moves_container: config.edit_user_moves_container,
            core: SimCore::new(config.clock, config.latency, &config.rate_limits),
            dir: config.seed.generate(),
        };
        Self {
            control: DigicertControl {
                state: Arc::new(Mutex::new(state)),
            },
        }
    }

    /// Builds the account off the async threads, binds `addr` (port 0 picks a free port) and
    /// serves until the returned server is shut down or dropped.
    pub async fn start(config: DigicertSimConfig, addr: SocketAddr) -> io::Result<DigicertServer> {
        let sim = tokio::task::spawn_blocking(move || Self::new(config))
            .await
            .map_err(io::Error::other)?;
        sim.serve(addr).await
    }

    /// The control handle (the same one the server hands out).
    pub fn control(&self) -> DigicertControl {
        self.control.clone()
    }

    /// The whole HTTP surface (API and `/_sim/` control routes), to mount elsewhere.
    pub fn router(&self) -> Router {
        let router = admin::routes()
            .fallback(api::entry)
            .with_state(self.control.clone());
        crate::faults::layer(router, self.control.clone(), API_ROOT, None)
    }

    /// Binds `addr` and serves until the returned server is shut down or dropped.
    pub async fn serve(self, addr: SocketAddr) -> io::Result<DigicertServer> {
        let router = self.router();
        SimServer::spawn(addr, router, API_ROOT, self.control, "digicert").await
    }
}

impl SimServer<DigicertControl> {
    /// A `[targets.NAME]` table pointing idsync at this simulator, ready to paste into a
    /// config (the key is the simulator's throwaway value).
    pub fn toml_fragment(&self, target_name: &str) -> String {
        let key = self.control().api_key();
        format!(
            "[targets.{}]\nkind = \"digicert\"\nbase_url = {}\napi_key = {}\n",
            toml_key(target_name),
            toml_string(&self.base_url()),
            toml_string(&key),
        )
    }
}

/// A user to add through [`DigicertControl::add_user`] or `POST /_sim/users`. It is checked
/// like a `POST /user` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Login name (`a-zA-Z0-9@-_+.`), unique without letter case.
    pub username: String,
    /// First name (≤128 characters).
    pub first_name: String,
    /// Last name (≤128 characters).
    pub last_name: String,
    /// Email (≤255 characters).
    pub email: String,
    /// Job title (≤64 characters).
    #[serde(default)]
    pub job_title: Option<String>,
    /// Telephone (≤64 characters).
    #[serde(default)]
    pub telephone: Option<String>,
    /// Container; unset: the API key owner's container, as for `POST /user` (the top-level
    /// container, id 1, in a seeded account).
    #[serde(default)]
    pub container_id: Option<u32>,
    /// Access role ids; default `[5]` (Standard User).
    #[serde(default = "default_roles")]
    pub access_roles: Vec<u32>,
    /// Status; default `active`.
    #[serde(default)]
    pub status: UserStatus,
}

fn default_roles() -> Vec<u32> {
    vec![5]
}

impl UserSpec {
    /// An active Standard User in the top-level container.
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
            job_title: None,
            telephone: None,
            container_id: None,
            access_roles: default_roles(),
            status: UserStatus::Active,
        }
    }

    /// The same checks as a `POST /user` body.
    fn validate(&self, dir: &Directory) -> Result<data::UserFields, Vec<ApiError>> {
        let mut body = serde_json::json!({
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "job_title": self.job_title,
            "telephone": self.telephone,
            "access_roles": self.access_roles.iter().map(|id| serde_json::json!({"id": id})).collect::<Vec<_>>(),
        });
        if let (Some(id), Some(map)) = (self.container_id, body.as_object_mut()) {
            map.insert("container".to_owned(), serde_json::json!({ "id": id }));
        }
        match body.as_object() {
            Some(map) => api::validate_user(map, dir, None),
            None => Err(Vec::new()),
        }
    }
}

/// A user as the simulator holds it (a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
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
    /// Job title, if set.
    pub job_title: Option<String>,
    /// Telephone, if set.
    pub telephone: Option<String>,
    /// Status.
    pub status: UserStatus,
    /// Container id.
    pub container_id: u32,
    /// Access role ids, ascending.
    pub access_roles: Vec<u32>,
}

impl From<&UserRecord> for SimUser {
    fn from(user: &UserRecord) -> Self {
        SimUser {
            id: user.id,
            username: user.username.to_string(),
            first_name: user.first_name.to_string(),
            last_name: user.last_name.to_string(),
            email: user.email.to_string(),
            job_title: user.job_title.as_deref().map(str::to_owned),
            telephone: user.telephone.as_deref().map(str::to_owned),
            status: user.status,
            container_id: user.container_id,
            access_roles: user.roles.iter().map(|(id, _)| id).collect(),
        }
    }
}

/// Why a control call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No user has this id.
    #[error("no user with id {0}")]
    UnknownUser(u64),
    /// The input failed the same checks the API applies; one error per problem.
    #[error("invalid input: {}", describe(.0))]
    Invalid(Vec<ApiError>),
}

fn describe(errors: &[ApiError]) -> String {
    errors
        .iter()
        .map(|error| format!("{}: {}", error.code, error.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn invalid(code: &str, message: impl Into<String>) -> ControlError {
    ControlError::Invalid(vec![ApiError::new(code, message)])
}

/// Changes the running simulator: the key, latency, rate windows, faults and users. Cheap to
/// clone; every clone drives the same simulator.
///
/// The levers every simulator has (latency, rate windows, faults, counters) come from
/// [`SimControl`](super::SimControl); here they apply to every `/services/v2` request, and
/// faults fire only on requests that pass the key and rate checks.
#[derive(Debug, Clone)]
pub struct DigicertControl {
    state: Arc<Mutex<SimState>>,
}

impl CoreAccess for DigicertControl {
    type Error = ControlError;

    fn with_core<R>(&self, f: impl FnOnce(&mut SimCore) -> R) -> R {
        f(&mut self.lock().core)
    }

    fn invalid_fault(message: String) -> ControlError {
        invalid("invalid_fault", message)
    }
}

impl DigicertControl {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The accepted API key.
    pub fn api_key(&self) -> String {
        self.lock().api_key.clone()
    }

    /// Revokes the key: every API request gets 401 until [`restore_key`](Self::restore_key).
    pub fn revoke_key(&self) {
        self.lock().key_revoked = true;
    }

    /// Accepts the key again.
    pub fn restore_key(&self) {
        self.lock().key_revoked = false;
    }

    /// True while the key is revoked.
    pub fn key_revoked(&self) -> bool {
        self.lock().key_revoked
    }

    /// The id of the user the API key belongs to (`GET /user/me`); `None` in an account
    /// seeded without users.
    pub fn api_user_id(&self) -> Option<u64> {
        self.lock().dir.api_user_id
    }

    /// Turns on or off the undocumented container move through Edit user (see
    /// [`DigicertSimConfig::edit_user_moves_container`]).
    pub fn set_edit_user_moves_container(&self, on: bool) {
        self.lock().edit_user_moves_container = on;
    }

    /// Adds a user, checked like `POST /user`; returns its id.
    pub fn add_user(&self, spec: UserSpec) -> Result<u64, ControlError> {
        let mut state = self.lock();
        let fields = spec.validate(&state.dir).map_err(ControlError::Invalid)?;
        Ok(state.dir.insert(fields, spec.status))
    }

    /// Removes a user; false if there was none with this id.
    pub fn remove_user(&self, id: u64) -> bool {
        self.lock().dir.remove(id)
    }

    /// Hides a user from the API (as if moved out of the key's reach) without deleting it;
    /// false if there is no such user.
    pub fn hide_user(&self, id: u64) -> bool {
        self.lock().dir.hide(id)
    }

    /// Brings a hidden user back with the same id and fields; false if it was not hidden.
    pub fn unhide_user(&self, id: u64) -> bool {
        self.lock().dir.unhide(id)
    }

    /// Sets a user's status (`active` or `inactive`).
    pub fn set_user_status(&self, id: u64, status: &str) -> Result<(), ControlError> {
        let status = UserStatus::parse(status).ok_or_else(|| {
            invalid(
                "invalid_field|status",
                format!("status must be active or inactive, not {status:?}."),
            )
        })?;
        let mut state = self.lock();
        let user = state
            .dir
            .user_mut(id)
            .ok_or(ControlError::UnknownUser(id))?;
        user.status = status;
        Ok(())
    }

    /// Replaces a user's access roles (ids 1–5).
    pub fn set_user_roles(&self, id: u64, roles: &[u32]) -> Result<(), ControlError> {
        let set = RoleSet::from_ids(roles.iter().map(|id| u64::from(*id)))
            .filter(|set| !set.is_empty())
            .ok_or_else(|| {
                invalid(
                    "invalid_access_role",
                    "access_roles must name at least one known role (1-5).",
                )
            })?;
        let mut state = self.lock();
        let user = state
            .dir
            .user_mut(id)
            .ok_or(ControlError::UnknownUser(id))?;
        user.roles = set;
        Ok(())
    }

    /// A snapshot of every user, by id.
    pub fn users(&self) -> Vec<SimUser> {
        self.lock().dir.users.iter().map(SimUser::from).collect()
    }

    /// The user with `id`.
    pub fn user(&self, id: u64) -> Option<SimUser> {
        self.lock().dir.user(id).map(SimUser::from)
    }

    /// The user with `username` (any letter case).
    pub fn find_user(&self, username: &str) -> Option<SimUser> {
        self.lock()
            .dir
            .users
            .iter()
            .find(|user| user.username.eq_ignore_ascii_case(username))
            .map(SimUser::from)
    }

    /// How many users exist.
    pub fn user_count(&self) -> usize {
        self.lock().dir.users.len()
    }
}
