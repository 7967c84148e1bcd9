//! Injected failures: rules that make chosen API requests fail, either with an error status
//! (the target's usual error body) or with a broken answer — a connection reset mid-body, a
//! body cut short, garbage in the body, a body sent too slowly, a page served twice, a total
//! that drifts, a record rewritten (an unknown status, a field of another type).
//!
//! A status rule is checked by each simulator where it answers (after the credential and rate
//! checks), so the error comes in the target's own shape. The broken answers are made by one
//! layer every simulator's router has ([`layer`]): it lets the simulator answer, then breaks
//! a successful (2xx) answer on its way out. [`connection`] lets that layer reset the TCP
//! connection itself.
pub(crate) mod connection;
mod effects;
mod layer;
mod rule;
mod set;

pub(crate) use layer::{layer, RequestNames};
pub use rule::{FaultEffect, FaultRule};
pub(crate) use set::{Breakage, FaultSet, RequestFacts};

#[cfg(test)]
mod tests;
