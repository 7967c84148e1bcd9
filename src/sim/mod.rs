//! Simulators of the target APIs, served over real HTTP on loopback (feature `sim`).
//!
//! They are product code: `idsync demo` runs the daemon against them, `idsync sim` serves
//! them alone so a config can be tried without a tenant, and the integration tests drive
//! them. Each simulator follows its target sheet (`targets/*.md`) — status codes, error
//! bodies, paging, rate limits — and can be steered while it runs (revoke the key, add
//! latency, inject failures, change data) from Rust or over HTTP under `/_sim/`.
//!
//! Simulators: [`digicert`] (API key, offset/limit paging), [`jama`] (OAuth client
//! credentials, envelope with `startAt`/`maxResults` paging, user groups) and [`duckcreek`]
//! (SOAP 1.1 batches with the login in the body, unpaged lists, broken-response switches).
//!
//! Shared building blocks: [`SimServer`] (a running server), [`SimControl`] (the levers every
//! control handle has: latency, rate windows, faults, counters), [`RateWindow`] (rolling rate
//! limits), [`FaultRule`] (injected failures), [`SimStats`] (counters), the control routes
//! every simulator has under `/_sim/`, and the seed arithmetic.

mod control;
pub mod digicert;
pub mod duckcreek;
mod faults;
pub mod jama;
mod ratelimit;
mod seedgen;
mod server;
mod sorted;
mod stats;

pub use control::SimControl;
pub use digicert::{
    ApiError, ControlError, DigicertControl, DigicertSeed, DigicertServer, DigicertSim,
    DigicertSimConfig, SimUser, UserSpec, UserStatus,
};
pub use duckcreek::{
    DcEntity, DcPrivilege, DcRole, DcUser, DcUserSpec, DcUserStatus, DuckCreekControl,
    DuckCreekControlError, DuckCreekSeed, DuckCreekServer, DuckCreekSim, DuckCreekSimConfig,
    ResponseFault, ResponseFaultRule,
};
pub use faults::FaultRule;
pub use jama::{
    jama_rate_limits, JamaControl, JamaControlError, JamaGroup, JamaSeed, JamaServer, JamaSim,
    JamaSimConfig, JamaUser, JamaUserSpec, LicenseType,
};
pub use ratelimit::RateWindow;
pub use server::SimServer;
pub use stats::SimStats;
