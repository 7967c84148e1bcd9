//! Build script: rebuilds when the embedded migrations change.
// No panics in product code (as at the library root).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

fn main() {
    // Embedded migrations (sqlx::migrate!) must be rebuilt when they change.
    println!("cargo:rerun-if-changed=migrations");
}
