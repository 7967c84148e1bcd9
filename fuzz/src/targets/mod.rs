//! The fuzz targets: each parser of outside input, behind [`Target`](crate::runner::Target).

pub mod adapter;
pub mod api;
pub mod config;
pub mod digicert;
pub mod duckcreek;
pub mod jama;
pub mod selftest;
pub mod templates;

use crate::runner::Target;

/// Every target's name, in the order `all` runs them.
pub const NAMES: &[&str] = &[
    "digicert",
    "jama",
    "duckcreek",
    "templates",
    "config",
    "api",
];

/// Builds target `name`.
pub fn build(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "digicert" => Box::new(digicert::Digicert::new()),
        "jama" => Box::new(jama::Jama::new()),
        "duckcreek" => Box::new(duckcreek::DuckCreek::new()),
        "templates" => Box::new(templates::Templates::new()),
        "config" => Box::new(config::ConfigLoading),
        "api" => Box::new(api::ApiBodies::new()),
        "selftest" => Box::new(selftest::SelfTest),
        _ => return None,
    })
}
