//! A Duck Creek SOAP simulator, served over real HTTP on loopback.
//!
//! Duck Creek does not publish its security-administration API. The simulator follows its
//! XML "server request" protocol as public integration packages show it, carried in SOAP
//! 1.1, with request names of our own where real deployments differ: one SOAP 1.1 endpoint,
//! [`API_ROOT`], taking `POST`ed batches — `Envelope/Body/server/requests/*`, or the same
//! wrapped in `processRequestsAsDOM` — that log in with `Session.loginRq userName password`
//! first and carry their credentials in every call. Each request is answered in order by a
//! `…Rs` element under `Body/processRequestsAsDOMResponse/result/server/responses`, with
//! `status="Success"` or `status="Failure"` and `<Errors><Error code text/></Errors>`. Data
//! travels in XML attributes, escaped; element names are matched by local name, so any
//! envelope prefix works. Bad credentials, a missing login and XML that is not well-formed
//! (a DOCTYPE included) are HTTP 500 SOAP faults with `faultcode` `Client`; injected 5xx are
//! `Server` faults. The user list is never paged: 50 000 users come back in one response.
//!
//! | request | answer |
//! |---|---|
//! | `Session.loginRq userName password` | `Success`; wrong or revoked credentials: `Client` fault |
//! | `OnlineData.listEntityUsersRq entityID` | `Users/User@id,name,email,fullName,status` with `UserEntityMemberships/UserEntityMembership@entityName` and `Roles/Role@name`; entity 1 lists every user |
//! | `Security.listRolesRq includePrivileges` | `Roles/Role@id,name,description` (+ `Privileges/Privilege@id,name`) |
//! | `OnlineData.listEntitiesRq` | `Entities/*@id,name` (`Entity`, and `Agency` for some) |
//! | `Security.listPrivilegesRq` | `Privileges/Privilege@id,name,description,type` |
//! | `Security.lockUserAccountRq userID userName` · `Security.unlockUserAccountRq userName` | status `Locked` / `Active` (idempotent) |
//! | `Security.addUserRoleRq` · `Security.removeUserRoleRq` `userName roleName` | grant / revoke a role |
//! | `OnlineData.addEntityMembershipRq` · `OnlineData.removeEntityMembershipRq` `userName entityName` | add / end a membership |
//! | `Session.closeRq` | `Success` |
//!
//! Failure codes: `UserNotFound`, `RoleNotFound`, `EntityNotFound`, `AlreadyAssigned`,
//! `NotAssigned`, `InvalidRequest` (a missing or bad attribute, named in the text),
//! `UnknownRequest` (the rest of the batch still runs) and `NotLoggedIn` (after
//! `Session.closeRq`). Fault detail codes: `LoginFailed`, `NotLoggedIn`, `MalformedXml`,
//! `VersionMismatch`, `InvalidRequest`, `MissingSoapAction`, `SimulatedFailure`.
//!
//! The credentials can be revoked mid-run, and latency, rate windows, HTTP faults and
//! broken responses injected — from Rust through [`DuckCreekControl`], or over HTTP under
//! `/_sim/` (no credentials needed, not rate limited, not counted):
//!
//! | route | does |
//! |---|---|
//! | `POST /_sim/revoke` · `POST /_sim/restore` | refuse / accept the login credentials again |
//! | `POST /_sim/latency` `{"ms":250}` | delay every SOAP answer |
//! | `POST /_sim/rate_limits` `{"windows":[{"requests":10,"per_ms":1000}]}` | replace the rate windows (`[]`: off) |
//! | `POST /_sim/fail_next` `{"count":2,"status":503}` | fail the next SOAP calls |
//! | `POST /_sim/faults` [`FaultRule`](super::FaultRule) · `GET` · `DELETE /_sim/faults` | add / list / clear fault rules (`request` picks calls carrying that request) |
//! | `POST /_sim/response_faults` [`ResponseFaultRule`] · `GET` · `DELETE` | add / list / clear response faults |
//! | `GET /_sim/stats` · `DELETE /_sim/stats` | counters ([`SimStats`](super::SimStats)) / reset them |
//! | `POST /_sim/advance_clock` `{"ms":2000}` | move the simulator's clock forward ([`SimClock`]) |
//! | `GET /_sim/users[?name=N]` · `GET /_sim/users/{id}` | users ([`DcUser`]) |
//! | `POST /_sim/users` [`DcUserSpec`] → 201 `{"id":N}` · `DELETE /_sim/users/{id}` | add / remove a user |
//! | `POST /_sim/users/{id}/status` `{"status":"Locked"}` | lock / unlock a user |
//! | `POST /_sim/users/{id}/roles` `{"role":"NAME"}` · `DELETE /_sim/users/{id}/roles/{name}` | grant / revoke a role |
//! | `POST /_sim/users/{id}/entities` `{"entity":"NAME"}` · `DELETE /_sim/users/{id}/entities/{name}` | add / end a membership |
//! | `GET /_sim/roles` · `GET /_sim/entities` · `GET /_sim/privileges` | the catalogues ([`DcRole`], [`DcEntity`], [`DcPrivilege`]) |
//!
//! Control errors are `{"error":"…"}` with 400 (bad input) or 404 (no such user, role or
//! entity).
//!
//! Choices where nothing published says (`api.rs` lists the order of checks): only `POST` to
//! the endpoint (any letter case in the path, as IIS); other methods 405, other paths 404.
//! `Content-Type` must be `text/xml`, else 415. A `SOAPAction` header is not needed (absent,
//! `""` or any value: Saviynt's published package sends none and works against real
//! servers); [`DuckCreekSimConfig::require_soap_action`] makes one mandatory. A SOAP 1.2 envelope gets a SOAP 1.1 `VersionMismatch` fault. An empty batch needs
//! no login. Every login in a batch is checked; after `Session.closeRq` requests fail
//! `NotLoggedIn` until the next login. Injected HTTP faults are checked before the body's
//! problems and the login. Names of users, roles and entities match without letter case;
//! element and attribute names keep theirs. Lock and unlock take `userID`, `userName` or
//! both (which must name the same user). A user with no roles or memberships has empty
//! `Roles`/`UserEntityMemberships` when its id is even and none when odd. The root
//! organisation (entity 1) lists every user without holding memberships. The simulator's
//! login account is not one of the listed users. Nothing logged carries the password: the
//! body is never logged, fault texts never quote the request.

mod admin;
mod api;
mod batch;
mod data;
mod response_faults;
mod seed;
mod snapshots;
mod soap;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use secrecy::{ExposeSecret, SecretString};

use super::clock::SimClock;
use super::control::{CoreAccess, SimCore};
use super::ratelimit::RateWindow;
use super::server::{toml_key, toml_string, SimServer};
use data::{AssignError, Directory};
use response_faults::ResponseFaultSet;
use snapshots::check_text;

pub use data::DcUserStatus;
pub use response_faults::{ResponseFault, ResponseFaultRule};
pub use seed::DuckCreekSeed;
pub use snapshots::{DcEntity, DcPrivilege, DcRole, DcUser, DcUserSpec, DuckCreekControlError};

/// The SOAP endpoint, below the host root (the base URL is the endpoint itself).
pub const API_ROOT: &str = "/Server/Server.asmx";

/// The login name the simulator accepts unless configured otherwise (a throwaway demo
/// value).
pub const DEFAULT_USERNAME: &str = "idsync-sim-dc";

/// The password the simulator accepts unless configured otherwise (a throwaway demo value).
pub const DEFAULT_PASSWORD: &str = "idsync-sim-dc-secret-0123456789abcdef";

/// The envelope prefix the simulator writes unless configured otherwise.
pub const DEFAULT_ENVELOPE_PREFIX: &str = "soap";

/// A running Duck Creek simulator.
pub type DuckCreekServer = SimServer<DuckCreekControl>;

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct DuckCreekSimConfig {
    /// The only login name accepted (exact).
    pub username: String,
    /// Its password.
    pub password: SecretString,
    /// The tenant's data at start.
    pub seed: DuckCreekSeed,
    /// Rolling rate windows over every SOAP call, all enforced; empty (the default: no
    /// published limit): no limit.
    pub rate_limits: Vec<RateWindow>,
    /// Delay before every SOAP answer.
    pub latency: Duration,
    /// The clock answers are decided by (rate windows, latency); real time by default, or
    /// [`SimClock::manual`] for a test that advances time itself.
    pub clock: SimClock,
    /// The prefix written on `Envelope`, `Body` and `Fault` (`soap`, `soapenv`, `s`, …), so
    /// tests can show a client does not depend on it; one that is not an XML name falls back
    /// to `soap`.
    pub envelope_prefix: String,
    /// Take the `<server>` document only inside `processRequestsAsDOM` (as some servers'
    /// ASMX endpoints do): a bare one gets a `Client` fault. Off by default.
    pub require_wrapper: bool,
    /// Refuse a request without a `SOAPAction` header with a `Client` fault, as a server that
    /// routes on it would. Off by default: Saviynt's published Duck Creek package sends no
    /// `SOAPAction` (Content-Type only) and works against real servers.
    pub require_soap_action: bool,
}

impl Default for DuckCreekSimConfig {
    fn default() -> Self {
        Self {
            username: DEFAULT_USERNAME.to_owned(),
            password: SecretString::from(DEFAULT_PASSWORD),
            seed: DuckCreekSeed::default(),
            rate_limits: Vec::new(),
            latency: Duration::ZERO,
            clock: SimClock::real(),
            envelope_prefix: DEFAULT_ENVELOPE_PREFIX.to_owned(),
            require_wrapper: false,
            require_soap_action: false,
        }
    }
}

/// Everything the simulator knows and does, behind one lock (never held across an await).
#[derive(Debug)]
pub(crate) struct DuckCreekState {
    pub(crate) username: String,
    pub(crate) password: SecretString,
    pub(crate) credentials_revoked: bool,
    pub(crate) prefix: String,
    pub(crate) require_wrapper: bool,
    pub(crate) require_soap_action: bool,
    pub(crate) core: SimCore,
    pub(crate) response_faults: ResponseFaultSet,
    pub(crate) dir: Directory,
}

/// A Duck Creek simulator built but not yet serving; [`DuckCreekSim::start`] builds and
/// serves in one call.
#[derive(Debug, Clone)]
pub struct DuckCreekSim {
    control: DuckCreekControl,
}

impl DuckCreekSim {
    /// Builds the tenant from `config.seed` (50 000 users take a fraction of a second).
    pub fn new(config: DuckCreekSimConfig) -> Self {
        let prefix = if soap::is_ncname(&config.envelope_prefix) {
            config.envelope_prefix
        } else {
            DEFAULT_ENVELOPE_PREFIX.to_owned()
        };
        let state = DuckCreekState {
            username: config.username,
            password: config.password,
            credentials_revoked: false,
            prefix,
            require_wrapper: config.require_wrapper,
            require_soap_action: config.require_soap_action,
            core: SimCore::new(config.clock, config.latency, &config.rate_limits),
            response_faults: ResponseFaultSet::default(),
            dir: config.seed.generate(),
        };
        Self {
            control: DuckCreekControl {
                state: Arc::new(Mutex::new(state)),
            },
        }
    }

    /// Builds the tenant off the async threads, binds `addr` (port 0 picks a free port) and
    /// serves until the returned server is shut down or dropped.
    pub async fn start(
        config: DuckCreekSimConfig,
        addr: SocketAddr,
    ) -> io::Result<DuckCreekServer> {
        let sim = tokio::task::spawn_blocking(move || Self::new(config))
            .await
            .map_err(io::Error::other)?;
        sim.serve(addr).await
    }

    /// The control handle (the same one the server hands out).
    pub fn control(&self) -> DuckCreekControl {
        self.control.clone()
    }

    /// The whole HTTP surface (the SOAP endpoint and the `/_sim/` control routes), to mount
    /// elsewhere.
    pub fn router(&self) -> Router {
        let router = admin::routes()
            .fallback(api::entry)
            .with_state(self.control.clone());
        let names = Some(api::request_names as crate::faults::RequestNames);
        crate::faults::layer(router, self.control.clone(), API_ROOT, names)
    }

    /// Binds `addr` and serves until the returned server is shut down or dropped.
    pub async fn serve(self, addr: SocketAddr) -> io::Result<DuckCreekServer> {
        let router = self.router();
        SimServer::spawn(addr, router, API_ROOT, self.control, "duckcreek").await
    }
}

impl SimServer<DuckCreekControl> {
    /// A `[targets.NAME]` table pointing idsync at this simulator, ready to paste into a
    /// config (the credentials are the simulator's throwaway values; `request_wrapper` when
    /// the simulator requires it).
    pub fn toml_fragment(&self, target_name: &str) -> String {
        let control = self.control();
        let state = control.lock();
        let wrapper = if state.require_wrapper {
            "request_wrapper = { element = \"processRequestsAsDOM\" }\n"
        } else {
            ""
        };
        format!(
            "[targets.{}]\nkind = \"duckcreek\"\nbase_url = {}\n{wrapper}username = {}\n\
             password = {}\n",
            toml_key(target_name),
            toml_string(&self.base_url()),
            toml_string(&state.username),
            toml_string(state.password.expose_secret()),
        )
    }
}

/// Changes the running simulator: credentials, latency, rate windows, faults, broken
/// responses, users, roles and memberships. Cheap to clone; every clone drives the same
/// simulator.
///
/// The levers every simulator has come from [`SimControl`](super::SimControl). Here they
/// apply to SOAP calls: [`fail_next`](super::SimControl::fail_next) fails the next calls that
/// pass the rate windows, with a `Server` fault for 5xx and a `Client` fault for 4xx, and
/// [`FaultRule::with_request`](super::FaultRule::with_request) makes a
/// [`fail_when`](super::SimControl::fail_when) rule fail only calls carrying a given request.
#[derive(Debug, Clone)]
pub struct DuckCreekControl {
    state: Arc<Mutex<DuckCreekState>>,
}

impl CoreAccess for DuckCreekControl {
    type Error = DuckCreekControlError;

    fn with_core<R>(&self, f: impl FnOnce(&mut SimCore) -> R) -> R {
        f(&mut self.lock().core)
    }

    fn invalid_fault(message: String) -> DuckCreekControlError {
        DuckCreekControlError::Invalid(message)
    }
}

impl DuckCreekControl {
    pub(crate) fn lock(&self) -> MutexGuard<'_, DuckCreekState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The accepted login name.
    pub fn username(&self) -> String {
        self.lock().username.clone()
    }

    /// The accepted password.
    pub fn password(&self) -> SecretString {
        self.lock().password.clone()
    }

    /// The prefix written on `Envelope`, `Body` and `Fault`.
    pub fn envelope_prefix(&self) -> String {
        self.lock().prefix.clone()
    }

    /// Refuses the credentials: every batch's login answers a `Client` fault until
    /// [`restore_credentials`](Self::restore_credentials).
    pub fn revoke_credentials(&self) {
        self.lock().credentials_revoked = true;
    }

    /// Accepts the credentials again.
    pub fn restore_credentials(&self) {
        self.lock().credentials_revoked = false;
    }

    /// True while the credentials are revoked.
    pub fn credentials_revoked(&self) -> bool {
        self.lock().credentials_revoked
    }

    /// Breaks responses: `fault` for batches carrying `request` (unset: every batch; for
    /// [`ResponseFault::Failure`], the request that fails), `times` times (unset: until
    /// cleared). Only answers that would be HTTP 200 are broken.
    pub fn break_response(
        &self,
        fault: ResponseFault,
        request: Option<String>,
        times: Option<u32>,
    ) -> Result<(), DuckCreekControlError> {
        self.add_response_fault(ResponseFaultRule {
            fault,
            request,
            times,
        })
    }

    /// Installs a response fault rule; rules are checked in the order they were added.
    pub fn add_response_fault(&self, rule: ResponseFaultRule) -> Result<(), DuckCreekControlError> {
        rule.validate().map_err(DuckCreekControlError::Invalid)?;
        self.lock().response_faults.push(rule);
        Ok(())
    }

    /// The response fault rules still installed (`times` counts what is left).
    pub fn response_faults(&self) -> Vec<ResponseFaultRule> {
        self.lock().response_faults.rules()
    }

    /// Removes every response fault rule.
    pub fn clear_response_faults(&self) {
        self.lock().response_faults.clear();
    }

    /// A snapshot of every user, by id.
    pub fn users(&self) -> Vec<DcUser> {
        let state = self.lock();
        let dir = &state.dir;
        dir.users
            .iter()
            .map(|user| DcUser::new(user, dir))
            .collect()
    }

    /// The user with `id`.
    pub fn user(&self, id: u64) -> Option<DcUser> {
        let state = self.lock();
        state.dir.user(id).map(|user| DcUser::new(user, &state.dir))
    }

    /// The user whose login is `name` (any letter case).
    pub fn find_user(&self, name: &str) -> Option<DcUser> {
        let state = self.lock();
        let id = state.dir.user_id_named(name)?;
        state.dir.user(id).map(|user| DcUser::new(user, &state.dir))
    }

    /// How many users there are.
    pub fn user_count(&self) -> usize {
        self.lock().dir.users.len()
    }

    /// Adds a user; returns its id.
    pub fn add_user(&self, spec: DcUserSpec) -> Result<u64, DuckCreekControlError> {
        let mut state = self.lock();
        let user = spec.validate(&state.dir)?;
        Ok(state.dir.insert_user(user))
    }

    /// Deletes a user (Duck Creek's API cannot); false if there is none.
    pub fn remove_user(&self, id: u64) -> bool {
        self.lock().dir.remove_user(id)
    }

    /// Locks or unlocks a user.
    pub fn set_status(&self, id: u64, status: DcUserStatus) -> Result<(), DuckCreekControlError> {
        let mut state = self.lock();
        let user = state
            .dir
            .user_mut(id)
            .ok_or(DuckCreekControlError::UnknownUser(id))?;
        user.status = status;
        Ok(())
    }

    /// A snapshot of every role, by id.
    pub fn roles(&self) -> Vec<DcRole> {
        self.lock().dir.roles.iter().map(DcRole::from).collect()
    }

    /// A snapshot of every entity, by id (the root organisation first).
    pub fn entities(&self) -> Vec<DcEntity> {
        self.lock()
            .dir
            .entities
            .iter()
            .map(DcEntity::from)
            .collect()
    }

    /// A snapshot of the privilege catalogue, by id.
    pub fn privileges(&self) -> Vec<DcPrivilege> {
        self.lock()
            .dir
            .privileges
            .iter()
            .map(DcPrivilege::from)
            .collect()
    }

    /// Adds a role holding the privileges with these ids (the API has no request for it);
    /// returns its id.
    pub fn add_role(
        &self,
        name: impl Into<String>,
        description: impl Into<String>,
        privileges: Vec<u64>,
    ) -> Result<u64, DuckCreekControlError> {
        let (name, description) = (name.into(), description.into());
        if name.trim().is_empty() {
            return Err(DuckCreekControlError::Invalid("name is required.".into()));
        }
        check_text("name", &name)?;
        check_text("description", &description)?;
        let mut state = self.lock();
        if state.dir.role_named(&name).is_some() {
            return Err(DuckCreekControlError::Invalid(format!(
                "a role named {name:?} already exists."
            )));
        }
        if let Some(missing) = privileges
            .iter()
            .find(|id| state.dir.privilege(**id).is_none())
        {
            return Err(DuckCreekControlError::Invalid(format!(
                "no privilege with id {missing}."
            )));
        }
        Ok(state.dir.insert_role(name, description, privileges))
    }

    /// Deletes a role and every grant of it; false if there is none.
    pub fn remove_role(&self, id: u64) -> bool {
        self.lock().dir.remove_role(id)
    }

    /// Gives a user a role; `Ok(false)` if it already held it.
    pub fn grant_role(&self, user: u64, role: &str) -> Result<bool, DuckCreekControlError> {
        self.change(user, |dir| {
            let id = dir
                .role_named(role)
                .map(|found| found.id)
                .ok_or_else(|| DuckCreekControlError::UnknownRole(role.to_owned()))?;
            Ok(dir.grant(user, id))
        })
    }

    /// Takes a role from a user; `Ok(false)` if it did not hold it.
    pub fn revoke_role(&self, user: u64, role: &str) -> Result<bool, DuckCreekControlError> {
        self.change(user, |dir| {
            let id = dir
                .role_named(role)
                .map(|found| found.id)
                .ok_or_else(|| DuckCreekControlError::UnknownRole(role.to_owned()))?;
            Ok(dir.revoke(user, id))
        })
    }

    /// Makes a user a member of an entity; `Ok(false)` if it already was.
    pub fn add_membership(&self, user: u64, entity: &str) -> Result<bool, DuckCreekControlError> {
        self.change(user, |dir| {
            let id = dir
                .entity_named(entity)
                .map(|found| found.id)
                .ok_or_else(|| DuckCreekControlError::UnknownEntity(entity.to_owned()))?;
            Ok(dir.join(user, id))
        })
    }

    /// Ends a user's membership of an entity; `Ok(false)` if it was not a member.
    pub fn remove_membership(
        &self,
        user: u64,
        entity: &str,
    ) -> Result<bool, DuckCreekControlError> {
        self.change(user, |dir| {
            let id = dir
                .entity_named(entity)
                .map(|found| found.id)
                .ok_or_else(|| DuckCreekControlError::UnknownEntity(entity.to_owned()))?;
            Ok(dir.leave(user, id))
        })
    }

    /// Runs a grant or membership change for an existing user: `Ok(true)` if it changed
    /// something.
    fn change(
        &self,
        user: u64,
        apply: impl FnOnce(&mut Directory) -> Result<Result<(), AssignError>, DuckCreekControlError>,
    ) -> Result<bool, DuckCreekControlError> {
        let mut state = self.lock();
        if state.dir.user(user).is_none() {
            return Err(DuckCreekControlError::UnknownUser(user));
        }
        match apply(&mut state.dir)? {
            Ok(()) => Ok(true),
            Err(AssignError::AlreadyAssigned | AssignError::NotAssigned) => Ok(false),
            Err(AssignError::UnknownUser) => Err(DuckCreekControlError::UnknownUser(user)),
        }
    }
}
