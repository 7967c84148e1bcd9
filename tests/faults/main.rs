//! The standing fault-injection suite (issue 11): the real `idsync` binary (CLI and daemon)
//! against the simulators on 127.0.0.1, with faults injected at the simulators (error
//! statuses, resets, truncated and malformed bodies, slow drips, paging loops, drifting
//! totals, records in undocumented shapes), at the process (SIGKILL, a full disk), at the
//! store (locked by another process) and in the config.
//!
//! Every scenario ends with the same checks (`common::invariants`): tasks final or retrying,
//! no side effect twice at the target, nothing taken away on an incomplete read, no secret
//! in any output, the audit trail complete. Each prints its figures (time to recover,
//! requests retried, rows changed) as `FIGURE | scenario | what | value` lines on stderr:
//! `cargo test --test faults -- --nocapture` shows them.

#[path = "../common/mod.rs"]
mod common;

mod config_errors;
mod crash;
mod kit;
mod reads;
mod records;
mod store;
mod writes;

/// Prints one figure of a scenario; `cargo test --test faults -- --nocapture` shows them.
fn figure(scenario: &str, what: &str, value: impl std::fmt::Display) {
    eprintln!("FIGURE | {scenario} | {what} | {value}");
}
