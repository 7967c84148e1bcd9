//! The command line: argument definitions, dispatch, and output. `main.rs` only parses and
//! calls [`run`]; every command returns its contract exit code.

use std::path::Path;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::app::{self, App};
use crate::config::{self, LoadedConfig};
use crate::model::{AccountStatus, ImportMode, Trigger};
use crate::store::{AccountFilter, EntitlementFilter, GrantFilter, RunFilter, Store};
use crate::sync::{ImportParts, ImportRequest, ImportSummary};
use crate::telemetry;

pub mod args;
pub mod output;

use args::{
    AccessCommand, AccountsCommand, EntitlementsCommand, ImportArgs, RunsCommand, StoreCommand,
};
pub use args::{Cli, Command, OutputFormat};
use output::{cell, print_json, print_list};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the work failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: usage or config error.
pub const EXIT_USAGE: i32 = 2;

/// Runs one command and returns its exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::CheckConfig => check_config(&cli.config, cli.output),
        #[cfg(feature = "sim")]
        Command::Demo(args) => crate::demo::run(args, cli.output).await,
        #[cfg(feature = "sim")]
        Command::Sim(args) => crate::demo::run_sims(args).await,
        command => {
            let Some(loaded) = load_config(&cli.config) else {
                return EXIT_USAGE;
            };
            if let Err(err) = telemetry::init_logging(&loaded.config.log) {
                eprintln!("error: log.level: {err}");
                return EXIT_USAGE;
            }
            for warning in &loaded.warnings {
                tracing::warn!(key = %warning.key, "{}", warning.message);
            }
            with_config(command, loaded, cli.output).await
        }
    }
}

async fn with_config(command: Command, loaded: LoadedConfig, format: OutputFormat) -> i32 {
    let app = match App::build(loaded.config).await {
        Ok(app) => app,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_USAGE;
        }
    };
    match command {
        Command::Run => match app::run_daemon(app, app::shutdown_signal(), |_| {}).await {
            Ok(()) => EXIT_OK,
            Err(err) => {
                eprintln!("error: {err}");
                EXIT_FAILED
            }
        },
        Command::TestConnection { target } => test_connection(&app, &target).await,
        Command::Import(args) => import(&app, args, format).await,
        Command::Accounts { command } => accounts(&app, command, format).await,
        Command::Entitlements { command } => entitlements(&app, command, format).await,
        Command::Access { command } => access(&app, command, format).await,
        Command::Runs { command } => runs(&app, command, format).await,
        Command::Store { command } => store(&app, command).await,
        // Handled before the config is loaded.
        _ => EXIT_USAGE,
    }
}

/// Loads the config, printing every problem on failure.
fn load_config(path: &Path) -> Option<LoadedConfig> {
    match config::load(path) {
        Ok(loaded) => Some(loaded),
        Err(err) => {
            eprintln!("error: {err}:");
            for problem in &err.problems {
                eprintln!("  - {problem}");
            }
            None
        }
    }
}

fn check_config(path: &Path, format: OutputFormat) -> i32 {
    match config::load(path) {
        Ok(loaded) => {
            if format == OutputFormat::Json {
                print_json(
                    &serde_json::json!({ "ok": true, "problems": [], "warnings": loaded.warnings }),
                );
            } else {
                println!(
                    "config {} is valid: {} target(s), {} job(s)",
                    path.display(),
                    loaded.config.targets.len(),
                    loaded.config.jobs.len()
                );
                for warning in &loaded.warnings {
                    println!("  warning: {warning}");
                }
            }
            EXIT_OK
        }
        Err(err) => {
            if format == OutputFormat::Json {
                print_json(&serde_json::json!({ "ok": false, "problems": err.problems }));
            } else {
                println!("{err}:");
                for problem in &err.problems {
                    println!("  - {problem}");
                }
            }
            EXIT_USAGE
        }
    }
}

async fn test_connection(app: &App, target: &str) -> i32 {
    let Some(connector) = app.connectors.get(target) else {
        eprintln!(
            "error: unknown target `{target}` (configured: {})",
            target_names(app)
        );
        return EXIT_USAGE;
    };
    let started = Instant::now();
    match connector.test_connection().await {
        Ok(()) => {
            println!("target {target}: OK ({} ms)", started.elapsed().as_millis());
            EXIT_OK
        }
        Err(err) => {
            eprintln!("target {target}: FAILED: {err}");
            EXIT_FAILED
        }
    }
}

fn target_names(app: &App) -> String {
    app.config
        .targets
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The actor of CLI commands: `cli:<os user>`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("cli:{user}")
}

async fn import(app: &App, args: ImportArgs, format: OutputFormat) -> i32 {
    if !app.connectors.contains_key(&args.target) {
        eprintln!(
            "error: unknown target `{}` (configured: {})",
            args.target,
            target_names(app)
        );
        return EXIT_USAGE;
    }
    let parts = match (args.accounts, args.access) {
        (true, _) => ImportParts::Accounts,
        (_, true) => ImportParts::Access,
        _ => ImportParts::Both,
    };
    let request = ImportRequest {
        target: args.target.clone(),
        job: "manual".to_string(),
        parts,
        mode: if args.incremental {
            ImportMode::Incremental
        } else {
            ImportMode::Full
        },
        dry_run: args.dry_run,
        allow_deletions: args.allow_deletions,
        trigger: Trigger::Cli,
        actor: cli_actor(),
        started: None,
    };
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let signals = tokio::spawn(async move {
        app::shutdown_signal().await;
        on_signal.cancel();
    });
    let result = app.imports.run(request, &cancel).await;
    signals.abort();
    match result {
        Ok(summary) => {
            print_summary(&summary, format);
            summary.exit_code()
        }
        Err(err) => {
            eprintln!("error: {err}");
            EXIT_FAILED
        }
    }
}

/// Prints what an import did (or, for a dry run, would do).
pub fn print_summary(summary: &ImportSummary, format: OutputFormat) {
    if format == OutputFormat::Json {
        print_json(summary);
        return;
    }
    for run in &summary.runs {
        let id = run
            .run_id
            .map(|id| format!("run {id}"))
            .unwrap_or_else(|| "dry run".into());
        println!(
            "{} {} of {}: {} ({} read)",
            id, run.kind, summary.target, run.outcome, run.counts.read
        );
        for (object, counts) in [
            ("accounts", &run.counts.account),
            ("entitlements", &run.counts.entitlement),
            ("grants", &run.counts.grant),
        ] {
            if *counts == Default::default() {
                continue;
            }
            println!(
                "  {object:<13} created {}, updated {}, renamed {}, reactivated {}, unchanged {}, suspended {}, inactivated {}, removed {}",
                counts.created,
                counts.updated,
                counts.renamed,
                counts.reactivated,
                counts.unchanged,
                counts.suspended,
                counts.inactivated,
                counts.removed
            );
        }
        if let Some(error) = &run.error {
            println!("  {error}");
        }
        if !run.diff.is_empty() {
            println!(
                "  {}:",
                if summary.dry_run {
                    "diff"
                } else {
                    "pending diff"
                }
            );
            for line in &run.diff {
                println!(
                    "    {:<12} {:<12} {} {}",
                    line.change.as_str(),
                    line.object.as_str(),
                    line.key,
                    line.label.as_deref().unwrap_or("")
                );
            }
        }
    }
    for skipped in &summary.skipped {
        println!("{skipped}");
    }
}

async fn accounts(app: &App, command: AccountsCommand, format: OutputFormat) -> i32 {
    let AccountsCommand::List {
        target,
        owner,
        status,
    } = command;
    let status = match status
        .as_deref()
        .map(str::parse::<AccountStatus>)
        .transpose()
    {
        Ok(status) => status,
        Err(err) => {
            eprintln!("error: --status: {err}");
            return EXIT_USAGE;
        }
    };
    let filter = AccountFilter {
        target,
        status,
        owner,
        after: None,
        limit: 0,
    };
    match app.store.list_accounts(&filter).await {
        Ok(rows) => {
            print_list(
                format,
                &rows,
                &[
                    "TARGET",
                    "ID",
                    "NAME",
                    "DISPLAY NAME",
                    "EMAIL",
                    "STATUS",
                    "OWNER",
                ],
                |a| {
                    vec![
                        a.target.clone(),
                        a.id.clone(),
                        a.name.clone(),
                        cell(a.display_name.as_deref()),
                        cell(a.email.as_deref()),
                        a.status.to_string(),
                        cell(a.owner.as_deref()),
                    ]
                },
            );
            EXIT_OK
        }
        Err(err) => store_failed(err),
    }
}

async fn entitlements(app: &App, command: EntitlementsCommand, format: OutputFormat) -> i32 {
    let EntitlementsCommand::List {
        target,
        entitlement_type,
    } = command;
    let filter = EntitlementFilter {
        target,
        entitlement_type,
        after: None,
        limit: 0,
    };
    match app.store.list_entitlements(&filter).await {
        Ok(rows) => {
            print_list(
                format,
                &rows,
                &["TARGET", "TYPE", "ID", "NAME", "STATUS"],
                |e| {
                    vec![
                        e.target.clone(),
                        e.entitlement_type.clone(),
                        e.id.clone(),
                        e.name.clone(),
                        e.status.to_string(),
                    ]
                },
            );
            EXIT_OK
        }
        Err(err) => store_failed(err),
    }
}

async fn access(app: &App, command: AccessCommand, format: OutputFormat) -> i32 {
    let AccessCommand::List { target, account } = command;
    let filter = GrantFilter {
        target,
        account,
        after: None,
        limit: 0,
    };
    match app.store.list_grants(&filter).await {
        Ok(rows) => {
            print_list(
                format,
                &rows,
                &[
                    "TARGET",
                    "ACCOUNT",
                    "ACCOUNT ID",
                    "TYPE",
                    "ENTITLEMENT ID",
                    "ENTITLEMENT",
                    "STATUS",
                ],
                |g| {
                    vec![
                        g.target.clone(),
                        cell(g.account.as_deref()),
                        g.account_id.clone(),
                        g.entitlement_type.clone(),
                        g.entitlement_id.clone(),
                        cell(g.entitlement_name.as_deref()),
                        g.status.to_string(),
                    ]
                },
            );
            EXIT_OK
        }
        Err(err) => store_failed(err),
    }
}

async fn runs(app: &App, command: RunsCommand, format: OutputFormat) -> i32 {
    let RunsCommand::List { job, target, limit } = command;
    let filter = RunFilter {
        job,
        target,
        before_id: None,
        limit,
    };
    match app.store.list_runs(&filter).await {
        Ok(rows) => {
            print_list(
                format,
                &rows,
                &[
                    "ID", "JOB", "TARGET", "KIND", "TRIGGER", "STARTED", "OUTCOME", "ERROR",
                ],
                |r| {
                    vec![
                        r.id.to_string(),
                        r.job.clone(),
                        cell(r.target.as_deref()),
                        r.kind.to_string(),
                        r.trigger.to_string(),
                        crate::clock::format(r.started_at),
                        cell(r.outcome),
                        cell(r.error.as_deref()),
                    ]
                },
            );
            EXIT_OK
        }
        Err(err) => store_failed(err),
    }
}

async fn store(app: &App, command: StoreCommand) -> i32 {
    let StoreCommand::Backup { path } = command;
    if path.exists() {
        eprintln!("error: {} exists; choose a new path", path.display());
        return EXIT_USAGE;
    }
    match app.store.backup_to(&path).await {
        Ok(()) => {
            println!("store copied to {}", path.display());
            EXIT_OK
        }
        Err(err) => store_failed(err),
    }
}

fn store_failed(err: impl std::fmt::Display) -> i32 {
    eprintln!("error: {err}");
    EXIT_FAILED
}
