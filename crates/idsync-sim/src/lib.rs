//! Simulators of the target APIs idsync talks to — DigiCert CertCentral, Jama Connect and
//! Duck Creek — served over real HTTP on loopback.
//!
//! Each simulator is an independent implementation of its target's API, written from the
//! vendor's published behaviour, not from idsync's client code (this crate does not depend on
//! idsync): status codes, error bodies, paging, authentication, rate limits and the odd
//! corners a real tenant shows. `idsync demo` runs the daemon against them, `idsync sim`
//! serves them alone so a config can be tried without a tenant, and idsync's tests and
//! benches drive them.
//!
//! Simulators: [`digicert`] (API key, offset/limit paging), [`jama`] (OAuth client
//! credentials, envelope with `startAt`/`maxResults` paging, user groups) and [`duckcreek`]
//! (SOAP 1.1 batches with the login in the body, unpaged lists, broken-response switches).
//!
//! Tests steer a running simulator from Rust through its control handle (revoke the
//! credentials, add latency, set rate windows, inject failures, change data, read counters)
//! or over HTTP through the routes under `/_sim/`. Time is a parameter: every simulator reads
//! the time through its [`SimClock`] (real time by default), so a test can start one on a
//! manual clock and advance it to expire tokens, roll rate windows or release a delayed
//! answer without waiting.
//!
//! Shared building blocks: [`SimServer`] (a running server), [`SimClock`] (the simulators'
//! time), [`SimControl`] (the levers every control handle has: clock, latency, rate windows,
//! faults, counters), [`RateWindow`] (rolling rate
//! limits), [`FaultRule`] and [`FaultEffect`] (injected failures: error statuses and broken answers), [`SimStats`] (counters), the control routes
//! every simulator has under `/_sim/`, and the seed arithmetic.
// No panics in simulator code; unit tests may (the integration tests and benches are crates of
// their own, without this denial).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod clock;
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

pub use clock::SimClock;
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
pub use faults::{FaultEffect, FaultRule};
pub use jama::{
    jama_rate_limits, JamaControl, JamaControlError, JamaGroup, JamaSeed, JamaServer, JamaSim,
    JamaSimConfig, JamaUser, JamaUserSpec, LicenseType,
};
pub use ratelimit::RateWindow;
pub use server::SimServer;
pub use stats::SimStats;
