//! The adapter kit: what every adapter is made of besides its target's wire format, so that
//! the three read alike and a fix in one reaches all.
//!
//! * [`Adapter`]: an adapter's kind (its name, the kind-specific settings it reads and
//!   checks, its template catalogue, how it is built). The [`registry`](super::registry)
//!   checks and builds every target through it. An adapter implements [`Adapter`], [`Reads`]
//!   and [`Operations`], and is then a [`Connector`](super::Connector).
//! * [`Core`]: what every connector holds (target name, page size, capabilities, templates)
//!   and the refusals built from it, worded the same for every target.
//! * [`Operations`] and [`provision`]: the one provisioning dispatch. It refuses what the
//!   adapter does not declare, then calls one method per operation with typed arguments
//!   ([`AccountId`], [`Entitlement`]) so that two ids can never be swapped.
//! * [`idempotency`]: how a duplicate create, a 404 on a delete or an "already a member" is
//!   judged.
//! * [`rest`]: what the JSON adapters share (create checks, full-replace updates).
//! * [`settings`]: reading and checking kind-specific settings, every problem at once.

mod adapter;
mod core;
pub mod idempotency;
mod operations;
mod reads;
pub mod rest;
pub mod settings;
#[cfg(test)]
pub mod testing;

pub use self::adapter::Adapter;
pub use self::core::Core;
pub use self::operations::{provision, refusal, AccountId, Entitlement, Operations, Outcome};
pub use self::reads::Reads;
pub use self::settings::{Common, Settings};
