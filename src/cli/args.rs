//! The command line: commands, arguments and defaults. Scripts depend on them, so they
//! change only in ways that keep existing invocations working.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// idsync: keeps a local identity store in step with DigiCert (and, soon, Jama Connect and
/// Duck Creek), on a schedule, with metrics and an API.
#[derive(Debug, Parser)]
#[command(name = "idsync", version, about, long_about = None)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "IDSYNC_CONFIG",
        default_value = "/etc/idsync/idsync.toml"
    )]
    pub config: PathBuf,
    /// Output of listing commands.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How listing commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON array (or object) for scripts.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (scheduler + HTTP server) until SIGTERM/SIGINT.
    Run,
    /// Run the built-in simulators and the daemon against them, with an embedded SQLite store.
    #[cfg(feature = "sim")]
    Demo(DemoArgs),
    /// Run the built-in simulators alone, to try a config without a tenant.
    #[cfg(feature = "sim")]
    Sim(SimArgs),
    /// Validate the config and report every problem.
    CheckConfig,
    /// Authenticate against a target and make one cheap read.
    TestConnection {
        /// The target's config name.
        target: String,
    },
    /// Run one import of a target now (default: accounts, then access).
    Import(ImportArgs),
    /// Run one provisioning pass over the due tasks now.
    Provision {
        /// Only this target (default: every target).
        #[arg(long)]
        target: Option<String>,
    },
    /// The provisioning task queue.
    Task {
        /// What to do.
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Accounts in the store.
    Accounts {
        /// What to do.
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Entitlements in the store.
    Entitlements {
        /// What to do.
        #[command(subcommand)]
        command: EntitlementsCommand,
    },
    /// Who holds what (grants) in the store.
    Access {
        /// What to do.
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Job run history.
    Runs {
        /// What to do.
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Store maintenance.
    Store {
        /// What to do.
        #[command(subcommand)]
        command: StoreCommand,
    },
}

/// `idsync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run one full cycle (imports) and exit with a summary.
    #[arg(long)]
    pub once: bool,
    /// Users in the simulated DigiCert tenant.
    #[arg(long, default_value_t = 2500)]
    pub users: usize,
    /// Where the demo's HTTP server listens.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// The demo's SQLite file.
    #[arg(long, default_value = "idsync-demo.db")]
    pub store: PathBuf,
}

/// Which simulator(s) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimKind {
    /// DigiCert CertCentral.
    Digicert,
    /// Jama Connect.
    Jama,
    /// Duck Creek (SOAP).
    Duckcreek,
    /// Every simulator: DigiCert on `--port`, Jama on `--port` + 1, Duck Creek on
    /// `--port` + 2.
    All,
}

/// `idsync sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Which simulator.
    #[arg(value_enum, default_value_t = SimKind::All)]
    pub which: SimKind,
    /// The port of the simulator; with `all`, DigiCert's, and Jama and Duck Creek listen on
    /// the next two (0 = any free port for each).
    #[arg(long, default_value_t = 9470)]
    pub port: u16,
    /// Users in each simulated tenant (about 5% of them inactive or locked).
    #[arg(long, default_value_t = 2500)]
    pub users: usize,
    /// User groups in the simulated Jama tenant.
    #[arg(long, default_value_t = 12)]
    pub groups: u32,
    /// The average number of groups a simulated Jama user is in.
    #[arg(long, default_value_t = 3)]
    pub memberships_per_user: u32,
    /// Turn the simulated rate limits off.
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Duck Creek: take requests only inside `processRequestsAsDOM`, as some servers do (the
    /// printed fragment then sets `request_wrapper`).
    #[arg(long)]
    pub require_wrapper: bool,
}

/// `idsync import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The target's config name.
    pub target: String,
    /// Only the account import.
    #[arg(long, conflicts_with = "access")]
    pub accounts: bool,
    /// Only the access import (entitlements and grants).
    #[arg(long)]
    pub access: bool,
    /// Compute and print the diff; record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write only the delta and infer no deletions.
    #[arg(long)]
    pub incremental: bool,
    /// Let this run through the deletion threshold (audited).
    #[arg(long)]
    pub allow_deletions: bool,
}

/// `idsync task …`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Queue a task; prints it.
    Submit(SubmitArgs),
    /// List tasks, oldest first.
    List {
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Only this status: pending, running, succeeded, failed, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// At most this many; when more exist, stderr says so.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Every task, streamed page by page (instead of `--limit`).
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
    /// Show one task.
    Show {
        /// The task id.
        id: i64,
    },
    /// Put a failed or cancelled task back in the queue (attempts reset).
    Retry {
        /// The task id.
        id: i64,
    },
    /// Cancel a pending task.
    Cancel {
        /// The task id.
        id: i64,
    },
}

/// `idsync task submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The target's config name.
    #[arg(long)]
    pub target: String,
    /// create_account, update_account, enable_account, disable_account, remove_account,
    /// add_access or remove_access.
    #[arg(long)]
    pub operation: String,
    /// The account's login name.
    #[arg(long)]
    pub account: String,
    /// The entitlement, for add_access / remove_access: TYPE:ID_OR_NAME.
    #[arg(long)]
    pub entitlement: Option<String>,
    /// An identity attribute, KEY=VALUE (repeatable): username, firstname, lastname, email,
    /// phonenumber, title, … A key no template of the operation reads is refused;
    /// `idsync check-config` lists the keys each operation reads.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attrs: Vec<String>,
    /// The owning identity's key upstream.
    #[arg(long)]
    pub owner: Option<String>,
    /// The caller's request id (defaults to the task id).
    #[arg(long)]
    pub request_id: Option<String>,
    /// A key that makes a repeated submit return the existing task.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait until the task is final; exit 0 if it succeeded, 1 otherwise.
    #[arg(long)]
    pub wait: bool,
}

/// `idsync accounts …`.
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// List accounts.
    List {
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Only this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only this status: active, inactive, suspended.
        #[arg(long)]
        status: Option<String>,
    },
}

/// `idsync entitlements …`.
#[derive(Debug, Subcommand)]
pub enum EntitlementsCommand {
    /// List entitlements of a target.
    List {
        /// The target.
        #[arg(long)]
        target: String,
        /// Only this type (e.g. role, container).
        #[arg(long = "type")]
        entitlement_type: Option<String>,
    },
}

/// `idsync access …`.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// List grants of a target.
    List {
        /// The target.
        #[arg(long)]
        target: String,
        /// Only this account (login name).
        #[arg(long)]
        account: Option<String>,
    },
}

/// `idsync runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only this job (`manual` for CLI imports).
        #[arg(long)]
        job: Option<String>,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// At most this many; when more exist, stderr says so.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Every run, streamed page by page (instead of `--limit`).
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
}

/// `idsync store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Take a consistent online copy of the store.
    Backup {
        /// Where to write the copy (must not exist).
        path: PathBuf,
    },
}
