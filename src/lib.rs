//! idsync: an identity-sync daemon.
//!
//! It imports accounts, entitlements and grants from the applications an organisation
//! governs (DigiCert CertCentral, Jama Connect and Duck Creek today) into a local store on a
//! cron schedule, provisions access changes back through a durable task queue, and exposes
//! what it knows through a CLI, an HTTP API and Prometheus metrics.
//!
//! Module map, lowest layer first (a module uses only those above it; `ARCHITECTURE.md`
//! has the rules and where to add a target):
//! * [`visible`] — terminal-safe text: the one escaping function of human-facing output.
//! * [`clock`] — the one place that reads the wall clock.
//! * [`model`] — records, statuses and run reports shared by every layer.
//! * [`config`] — the typed config file, secrets and the generic validation pass. It knows
//!   no adapter: each kind's rules come in through [`config::TargetRules`].
//! * [`telemetry`] — logging setup and metric names.
//! * [`connector`] — the `Connector` trait, the shared building blocks (HTTP client, token
//!   cache, paging guards, templates, SOAP), the adapter kit, and the adapters.
//! * [`store`] — the `Store` trait and its SQLite implementation.
//! * [`sync`] — the jobs: imports, task submission, the provisioning engine.
//! * [`scheduler`] — cron triggers, job locks and shutdown.
//! * [`server`] — health, metrics and the `/api/v1` API.
//! * [`app`] — wiring a config into a running daemon.
//! * [`cli`] — the command line, with `idsync demo` and `idsync sim` (feature `sim`).
//!
//! The simulators of the target APIs are the workspace crate `idsync-sim` (`idsync_sim`):
//! `idsync demo` and `idsync sim` use it (feature `sim`, on by default), and the tests and
//! benches always do.
// No panics in daemon code; unit tests may (the integration tests and benches are crates of
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

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connector;
pub mod model;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod visible;
