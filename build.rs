fn main() {
    // Embedded migrations (sqlx::migrate!) must be rebuilt when they change.
    println!("cargo:rerun-if-changed=migrations");
}
