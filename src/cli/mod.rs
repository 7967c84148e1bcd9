//! The command line: argument definitions, dispatch, and output. `main.rs` only parses and
//! calls [`run`]; every command returns its contract exit code. With feature `sim`,
//! `idsync demo` and `idsync sim` (in `demo.rs`) run the simulators of the `idsync-sim`
//! crate; nothing outside this module uses them.

use std::path::Path;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::app::{self, App};
use crate::config::LoadedConfig;
use crate::model::{AccountStatus, ImportMode, Operation, Task, TaskStatus, Trigger};
use crate::store::{
    AccountFilter, EntitlementFilter, GrantFilter, RunFilter, Store, Submitted, TaskFilter,
    TaskStateError,
};
use crate::sync::attributes;
use crate::sync::tasks::{self, EntitlementRef, SubmitRequest};
use crate::sync::{ImportParts, ImportRequest, ImportSummary, PassReport, ProvisionError};
use crate::telemetry;

pub mod args;
#[cfg(feature = "sim")]
mod demo;
pub mod output;
mod paging;

use args::{
    AccessCommand, AccountsCommand, EntitlementsCommand, ImportArgs, RunsCommand, StoreCommand,
    SubmitArgs, TaskCommand,
};
pub use args::{Cli, Command, OutputFormat};
use output::{cell, errln, outln, print_json, print_list};
use paging::{print_pages, RowLimit, RunPages, TaskPages};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the work failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: usage or config error.
pub const EXIT_USAGE: i32 = 2;

/// Runs one command and returns its exit code.
pub async fn run(cli: Cli) -> i32 {
    survive_file_size_limit();
    match cli.command {
        Command::CheckConfig => check_config(&cli.config, cli.output),
        #[cfg(feature = "sim")]
        Command::Demo(args) => demo::run(args, cli.output).await,
        #[cfg(feature = "sim")]
        Command::Sim(args) => demo::run_sims(args).await,
        command => {
            let Some(loaded) = load_config(&cli.config) else {
                return EXIT_USAGE;
            };
            if let Err(err) = telemetry::init_logging(&loaded.config.log) {
                errln!("error: log.level: {err}");
                return EXIT_USAGE;
            }
            for warning in &loaded.warnings {
                tracing::warn!(key = %warning.key, "{}", warning.message);
            }
            with_config(command, loaded, cli.output).await
        }
    }
}

/// Keeps a file-size limit (`RLIMIT_FSIZE`, `ulimit -f`; a disk-full stand-in) from killing
/// the process: by default the kernel's `SIGXFSZ` ends it without a word. With the signal
/// caught (and ignored), the write fails with `EFBIG` instead, and the store reports it as an
/// error the command prints. The handler stays installed for the life of the process.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Err(err) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            tracing::debug!(error = %err, "Cannot catch SIGXFSZ; a file-size limit would end the process.");
        }
    }
}

async fn with_config(command: Command, loaded: LoadedConfig, format: OutputFormat) -> i32 {
    let app = match App::build(loaded.config).await {
        Ok(app) => app,
        Err(err) => {
            errln!("error: {err}");
            return EXIT_USAGE;
        }
    };
    match command {
        Command::Run => {
            let result = match app::shutdown_signal() {
                Ok(signal) => app::run_daemon(app, signal, |_| {}).await,
                Err(err) => Err(err),
            };
            match result {
                Ok(()) => EXIT_OK,
                Err(err) => {
                    errln!("error: {err}");
                    EXIT_FAILED
                }
            }
        }
        Command::TestConnection { target } => test_connection(&app, &target).await,
        Command::Import(args) => import(&app, args, format).await,
        Command::Provision { target } => provision(&app, target.as_deref(), format).await,
        Command::Task { command } => task(&app, command, format).await,
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
    match crate::app::load_config(path) {
        Ok(loaded) => Some(loaded),
        Err(err) => {
            errln!("error: {err}:");
            for problem in &err.problems {
                errln!("  - {problem}");
            }
            None
        }
    }
}

/// `idsync check-config`: every problem, or "valid" with the warnings and, per target and
/// operation, the task attributes a submit may name.
fn check_config(path: &Path, format: OutputFormat) -> i32 {
    match crate::app::load_config(path) {
        Ok(loaded) => {
            let connectors = match crate::connector::registry::build_connectors(&loaded.config) {
                Ok(connectors) => connectors,
                Err(err) => {
                    errln!("error: {err}");
                    return EXIT_USAGE;
                }
            };
            let reads = attributes::listing(&connectors);
            if format == OutputFormat::Json {
                print_json(&serde_json::json!({
                    "ok": true, "problems": [], "warnings": loaded.warnings,
                    "task_attributes": reads,
                }));
            } else {
                outln!(
                    "config {} is valid: {} target(s), {} job(s)",
                    path.display(),
                    loaded.config.targets.len(),
                    loaded.config.jobs.len()
                );
                for warning in &loaded.warnings {
                    outln!("  warning: {warning}");
                }
                if !reads.is_empty() {
                    outln!(
                        "task attributes each operation reads (task submit --attr KEY=VALUE; \
                         other keys are refused):"
                    );
                    for line in &reads {
                        outln!("  {line}");
                    }
                }
            }
            EXIT_OK
        }
        Err(err) => {
            if format == OutputFormat::Json {
                print_json(&serde_json::json!({ "ok": false, "problems": err.problems }));
            } else {
                outln!("{err}:");
                for problem in &err.problems {
                    outln!("  - {problem}");
                }
            }
            EXIT_USAGE
        }
    }
}

async fn test_connection(app: &App, target: &str) -> i32 {
    let Some(connector) = app.connectors.get(target) else {
        errln!(
            "error: unknown target `{target}` (configured: {})",
            target_names(app)
        );
        return EXIT_USAGE;
    };
    let started = Instant::now();
    match connector.test_connection().await {
        Ok(()) => {
            outln!("target {target}: OK ({} ms)", started.elapsed().as_millis());
            EXIT_OK
        }
        Err(err) => {
            errln!("target {target}: FAILED: {err}");
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
fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("cli:{user}")
}

async fn import(app: &App, args: ImportArgs, format: OutputFormat) -> i32 {
    if !app.connectors.contains_key(&args.target) {
        errln!(
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
    let (cancel, signals) = cancel_on_signal();
    let result = app.imports.run(request, &cancel).await;
    signals.abort();
    match result {
        Ok(summary) => {
            print_summary(&summary, format);
            summary.exit_code()
        }
        Err(err) => {
            errln!("error: {err}");
            EXIT_FAILED
        }
    }
}

/// Prints what an import did (or, for a dry run, would do).
fn print_summary(summary: &ImportSummary, format: OutputFormat) {
    if format == OutputFormat::Json {
        print_json(summary);
        return;
    }
    for run in &summary.runs {
        let id = run
            .run_id
            .map(|id| format!("run {id}"))
            .unwrap_or_else(|| "dry run".into());
        outln!(
            "{} {} of {}: {} ({} read)",
            id,
            run.kind,
            summary.target,
            run.outcome,
            run.counts.read
        );
        for (object, counts) in [
            ("accounts", &run.counts.account),
            ("entitlements", &run.counts.entitlement),
            ("grants", &run.counts.grant),
        ] {
            if *counts == Default::default() {
                continue;
            }
            outln!(
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
        for (object, counts) in [
            ("accounts", &run.counts.anomalies.account),
            ("entitlements", &run.counts.anomalies.entitlement),
            ("grants", &run.counts.anomalies.grant),
        ] {
            if counts.total() > 0 {
                outln!(
                    "  {object:<13} tolerated: unknown status {} (read as inactive), bad field {} (left out); see the log's warnings",
                    counts.unknown_status, counts.bad_field
                );
            }
        }
        if let Some(error) = &run.error {
            outln!("  {error}");
        }
        if !run.diff.is_empty() {
            outln!(
                "  {}:",
                if summary.dry_run {
                    "diff"
                } else {
                    "pending diff"
                }
            );
            for line in &run.diff {
                outln!(
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
        outln!("{skipped}");
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
            errln!("error: --status: {err}");
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
    let RunsCommand::List {
        job,
        target,
        limit,
        all,
    } = command;
    let pages = RunPages {
        store: app.store.as_ref(),
        filter: RunFilter {
            job,
            target,
            ..Default::default()
        },
    };
    match print_pages(
        &pages,
        RowLimit::new(limit, all),
        format,
        RUN_HEADERS,
        run_row,
    )
    .await
    {
        Ok(()) => EXIT_OK,
        Err(err) => store_failed(err),
    }
}

/// The columns of `runs list`.
const RUN_HEADERS: &[&str] = &[
    "ID", "JOB", "TARGET", "KIND", "TRIGGER", "STARTED", "OUTCOME", "ERROR",
];

/// One row of `runs list`.
fn run_row(r: &crate::model::RunRecord) -> Vec<String> {
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
}

async fn store(app: &App, command: StoreCommand) -> i32 {
    let StoreCommand::Backup { path } = command;
    if path.exists() {
        errln!("error: {} exists; choose a new path", path.display());
        return EXIT_USAGE;
    }
    match app.store.backup_to(&path).await {
        Ok(()) => {
            outln!("store copied to {}", path.display());
            EXIT_OK
        }
        Err(err) => store_failed(err),
    }
}

fn store_failed(err: impl std::fmt::Display) -> i32 {
    errln!("error: {err}");
    EXIT_FAILED
}

/// A cancellation token that fires on SIGTERM/SIGINT, and the task that watches for them.
/// When the handlers cannot be installed, says so: the command still runs, and a signal
/// then stops it the operating system's way (a run it interrupts is closed as failed later).
fn cancel_on_signal() -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let signals = match app::shutdown_signal() {
        Ok(signal) => tokio::spawn(async move {
            signal.await;
            on_signal.cancel();
        }),
        Err(err) => {
            errln!("warning: {err}; a signal now stops this command at once, and a run it interrupts is closed as failed later");
            tokio::spawn(async {})
        }
    };
    (cancel, signals)
}

async fn provision(app: &App, target: Option<&str>, format: OutputFormat) -> i32 {
    let (cancel, signals) = cancel_on_signal();
    let result = app
        .provisioning
        .run_recorded("manual", target, Trigger::Cli, &cli_actor(), None, &cancel)
        .await;
    signals.abort();
    match result {
        Ok((run_id, report)) => {
            print_pass(Some(run_id), &report, format);
            report.exit_code()
        }
        Err(err @ ProvisionError::UnknownTarget(_)) => {
            errln!("error: {err} (configured: {})", target_names(app));
            EXIT_USAGE
        }
        Err(err) => {
            errln!("error: {err}");
            EXIT_FAILED
        }
    }
}

/// Prints what a provisioning pass did.
fn print_pass(run_id: Option<i64>, report: &PassReport, format: OutputFormat) {
    if format == OutputFormat::Json {
        print_json(&serde_json::json!({ "run_id": run_id, "report": report }));
        return;
    }
    let run = run_id.map(|id| format!("run {id}: ")).unwrap_or_default();
    outln!(
        "{run}provisioning pass: {} claimed, {} succeeded ({} already done), {} retrying, {} requeued (circuit open), {} failed",
        report.claimed,
        report.succeeded,
        report.already_done,
        report.retried,
        report.requeued,
        report.failed
    );
    if !report.failed_tasks.is_empty() {
        let ids: Vec<String> = report.failed_tasks.iter().map(i64::to_string).collect();
        outln!("  failed tasks: {}", ids.join(", "));
    }
    for error in &report.errors {
        outln!("  error: {error}");
    }
    if report.interrupted {
        outln!("  interrupted by shutdown");
    }
}

async fn task(app: &App, command: TaskCommand, format: OutputFormat) -> i32 {
    match command {
        TaskCommand::Submit(args) => submit_task(app, args, format).await,
        TaskCommand::List {
            target,
            status,
            limit,
            all,
        } => {
            let status = match status.as_deref().map(str::parse::<TaskStatus>).transpose() {
                Ok(status) => status,
                Err(err) => {
                    errln!("error: --status: {err}");
                    return EXIT_USAGE;
                }
            };
            let pages = TaskPages {
                store: app.store.as_ref(),
                filter: TaskFilter {
                    target,
                    status,
                    ..Default::default()
                },
            };
            match print_pages(
                &pages,
                RowLimit::new(limit, all),
                format,
                TASK_HEADERS,
                task_row,
            )
            .await
            {
                Ok(()) => EXIT_OK,
                Err(err) => store_failed(err),
            }
        }
        TaskCommand::Show { id } => match app.store.get_task(id).await {
            Ok(Some(task)) => {
                print_task(&task, format);
                EXIT_OK
            }
            Ok(None) => {
                errln!("error: no task {id}");
                EXIT_FAILED
            }
            Err(err) => store_failed(err),
        },
        TaskCommand::Retry { id } => {
            let result = app
                .store
                .retry_task(id, &cli_actor(), crate::clock::now())
                .await;
            let code = task_changed(result, format);
            if code == EXIT_OK {
                if let Ok(Some(task)) = app.store.get_task(id).await {
                    if tasks::is_instant(&app.config, &task.target) {
                        run_instant(app, &task.target).await;
                    }
                }
            }
            code
        }
        TaskCommand::Cancel { id } => {
            let result = app
                .store
                .cancel_task(id, &cli_actor(), crate::clock::now())
                .await;
            task_changed(result, format)
        }
    }
}

/// Prints the task of a retry or cancel, or why it was refused (exit 2).
fn task_changed(
    result: Result<Result<Task, TaskStateError>, crate::store::StoreError>,
    format: OutputFormat,
) -> i32 {
    match result {
        Ok(Ok(task)) => {
            print_task(&task, format);
            EXIT_OK
        }
        Ok(Err(err)) => {
            errln!("error: {err}");
            EXIT_USAGE
        }
        Err(err) => store_failed(err),
    }
}

/// Parses `KEY=VALUE` attributes.
fn parse_attrs(attrs: &[String]) -> Result<crate::model::Attributes, String> {
    let mut out = crate::model::Attributes::new();
    for attr in attrs {
        match attr.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                out.insert(
                    key.trim().to_string(),
                    serde_json::Value::String(value.to_string()),
                );
            }
            _ => return Err(format!("--attr `{attr}`: expected KEY=VALUE")),
        }
    }
    Ok(out)
}

async fn submit_task(app: &App, args: SubmitArgs, format: OutputFormat) -> i32 {
    let operation = match args.operation.parse::<Operation>() {
        Ok(operation) => operation,
        Err(err) => {
            errln!("error: --operation: {err}");
            return EXIT_USAGE;
        }
    };
    let attributes = match parse_attrs(&args.attrs) {
        Ok(attributes) => attributes,
        Err(err) => {
            errln!("error: {err}");
            return EXIT_USAGE;
        }
    };
    let request = SubmitRequest {
        target: args.target.clone(),
        operation,
        account: args.account,
        entitlement: args.entitlement.map(EntitlementRef::Text),
        attributes,
        owner: args.owner,
        request_id: args.request_id,
        idempotency_key: args.idempotency_key,
    };
    let submitted = tasks::submit(
        app.store.as_ref(),
        &app.connectors,
        &app.config,
        request,
        &cli_actor(),
    )
    .await;
    let task = match submitted {
        Ok(Submitted::Created(task)) => {
            if tasks::is_instant(&app.config, &task.target) {
                run_instant(app, &task.target).await;
            }
            task
        }
        Ok(Submitted::Existing(task)) => {
            errln!(
                "note: idempotency key seen before: this is task {}, nothing new was queued",
                task.id
            );
            task
        }
        Err(err) if err.is_refusal() => {
            errln!("error: {err}");
            return EXIT_USAGE;
        }
        Err(err) => return store_failed(err),
    };
    if !args.wait {
        let task = app
            .store
            .get_task(task.id)
            .await
            .ok()
            .flatten()
            .unwrap_or(task);
        print_task(&task, format);
        return EXIT_OK;
    }
    let task = match wait_for(app, task.id).await {
        Ok(task) => task,
        Err(code) => return code,
    };
    print_task(&task, format);
    if task.status == TaskStatus::Succeeded {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// Runs one pass over `target` in this process (instant provisioning), reporting only
/// problems: the task's own state is printed by the caller.
async fn run_instant(app: &App, target: &str) {
    let (cancel, signals) = cancel_on_signal();
    if let Err(err) = app.provisioning.run_pass(Some(target), &cancel).await {
        errln!("warning: instant provisioning pass failed: {err}; the task stays queued");
    }
    signals.abort();
}

/// Polls a task until it is final. On an instant-provisioning target, runs a pass in this
/// process whenever the task comes due (a retry), so `--wait` needs no daemon there.
async fn wait_for(app: &App, id: i64) -> Result<Task, i32> {
    let (cancel, signals) = cancel_on_signal();
    let result = loop {
        let task = match app.store.get_task(id).await {
            Ok(Some(task)) => task,
            Ok(None) => {
                errln!("error: task {id} vanished");
                break Err(EXIT_FAILED);
            }
            Err(err) => break Err(store_failed(err)),
        };
        if task.status.is_final() {
            break Ok(task);
        }
        let due = task.status == TaskStatus::Pending
            && task
                .next_attempt_at
                .is_none_or(|at| at <= crate::clock::now());
        if due && tasks::is_instant(&app.config, &task.target) {
            if let Err(err) = app.provisioning.run_pass(Some(&task.target), &cancel).await {
                errln!("warning: provisioning pass failed: {err}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = cancel.cancelled() => {
                errln!("interrupted; task {id} is {}", task.status);
                break Err(EXIT_FAILED);
            }
        }
    };
    signals.abort();
    result
}

fn print_task(task: &Task, format: OutputFormat) {
    if format == OutputFormat::Json {
        print_json(task);
    } else {
        print_tasks(std::slice::from_ref(task), format);
    }
}

/// Prints tasks as a table or a JSON array.
fn print_tasks(rows: &[Task], format: OutputFormat) {
    print_list(format, rows, TASK_HEADERS, task_row);
}

/// The columns of a task table.
const TASK_HEADERS: &[&str] = &[
    "ID",
    "TARGET",
    "OPERATION",
    "ACCOUNT",
    "ENTITLEMENT",
    "STATUS",
    "ATTEMPTS",
    "NEXT ATTEMPT",
    "LAST ERROR",
];

/// One row of a task table.
fn task_row(t: &Task) -> Vec<String> {
    vec![
        t.id.to_string(),
        t.target.clone(),
        t.operation.to_string(),
        t.account.clone(),
        cell(
            t.entitlement
                .as_ref()
                .map(|e| format!("{}:{} ({})", e.entitlement_type, e.id, e.name)),
        ),
        t.status.to_string(),
        format!("{}/{}", t.attempts, t.max_attempts),
        cell(t.next_attempt_at.map(crate::clock::format)),
        cell(t.last_error.as_deref()),
    ]
}
