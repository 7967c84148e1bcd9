//! idsync as a library: load a config, build the app, run one account import, print what it
//! did.
//!
//! The target is the DigiCert simulator (`idsync-sim`, a dev-dependency), started in-process
//! on loopback, so the example needs no tenant and no network. The store is a SQLite file in
//! a temporary directory.
//!
//! Run it with `cargo run --example embedded`. It exits non-zero if the import fails.

use std::net::SocketAddr;
use std::process::ExitCode;

use idsync::app::{self, App};
use idsync::model::{ImportMode, Trigger};
use idsync::sync::{ImportParts, ImportRequest};
use idsync_sim::{DigicertSeed, DigicertSim, DigicertSimConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // A simulated CertCentral account with 300 users, on a free loopback port.
    let sim_config = DigicertSimConfig {
        seed: DigicertSeed::with_users(300),
        ..DigicertSimConfig::default()
    };
    let sim = DigicertSim::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;

    // The config, as a file would hold it. The API key is not in the text: it comes as an
    // override, the way `IDSYNC__TARGETS__DIGICERT__API_KEY` would set it from the
    // environment. Overrides are passed explicitly; the process environment is not read.
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("idsync.db");
    let text = format!(
        r#"
[store]
url = "sqlite://{store}"

[targets.digicert]
kind = "digicert"
base_url = "{base_url}"
"#,
        store = store.display(),
        base_url = sim.base_url(),
    );
    let overrides = [(
        "IDSYNC__TARGETS__DIGICERT__API_KEY".to_string(),
        sim.control().api_key(),
    )];
    // Every problem at once, as `idsync check-config` prints them.
    let loaded = match app::load_config_str(&text, "embedded example", &overrides) {
        Ok(loaded) => loaded,
        Err(err) => {
            let problems: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
            return Err(format!("{err}:\n  {}", problems.join("\n  ")).into());
        }
    };

    // The store (migrated) and one connector per target.
    let app = App::build(loaded.config).await?;

    // One account import, as `idsync import digicert --accounts` runs it.
    let request = ImportRequest {
        target: "digicert".into(),
        job: "manual".into(),
        parts: ImportParts::Accounts,
        mode: ImportMode::Full,
        dry_run: false,
        allow_deletions: false,
        trigger: Trigger::Cli,
        actor: "cli:embedded-example".into(),
        started: None,
    };
    let summary = app.imports.run(request, &CancellationToken::new()).await?;
    for run in &summary.runs {
        let accounts = &run.counts.account;
        println!(
            "run {} {} of {}: {}, {} read; accounts: {} created, {} updated, {} unchanged",
            run.run_id.unwrap_or_default(),
            run.kind,
            summary.target,
            run.outcome,
            run.counts.read,
            accounts.created,
            accounts.updated,
            accounts.unchanged,
        );
        if let Some(error) = &run.error {
            println!("  {error}");
        }
    }
    sim.shutdown().await?;
    // 0 when every run succeeded, 1 when one failed, 3 when one was held (the CLI's codes).
    match summary.exit_code() {
        0 => Ok(()),
        code => Err(format!("the import did not succeed (exit code {code})").into()),
    }
}
