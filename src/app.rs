//! Wiring: builds the store, the connectors and the job runners from a config, and runs the
//! daemon (scheduler + HTTP server) until shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock;
use crate::config::{self, Config, ConfigError, LoadedConfig, SecretError};
use crate::connector::registry::{self, AdapterRules};
use crate::connector::{Connector, ConnectorError};
use crate::scheduler::{self, JobRunner, LeaseWatch, Scheduler, SchedulerError};
use crate::server::{self, ServerState};
use crate::store::{SqliteStore, Store, StoreError};
use crate::sync::{ImportRunner, ProvisionRunner};

/// Why idsync could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A connector could not be built.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The scheduler could not start.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// A secret could not be read.
    #[error("{key}: {source}")]
    Secret {
        /// The config key.
        key: String,
        /// Why.
        source: SecretError,
    },
    /// The shutdown signal handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handlers ({0}), so idsync could not stop cleanly; check the process's signal limits (seccomp, a container runtime)")]
    Signals(String),
    /// The HTTP server could not listen.
    #[error(
        "cannot listen on {addr}: {message} (is another idsync running? change server.listen)"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

/// Loads the config file at `path` (with `IDSYNC__*` overrides from the environment) and
/// checks it with every rule, the adapters' included: what `check-config`, `run` and every
/// other command read.
pub fn load_config(path: &Path) -> Result<LoadedConfig, ConfigError> {
    config::load(path, &AdapterRules)
}

/// [`load_config`] of a config held in memory (`source_name` names it in problems), with
/// explicit environment overrides instead of the process environment.
pub fn load_config_str(
    text: &str,
    source_name: &str,
    env: &[(String, String)],
) -> Result<LoadedConfig, ConfigError> {
    config::load_from_str(text, source_name, env, &AdapterRules)
}

/// Everything a command needs: the config, the store, the connectors and the job runners.
#[derive(Clone)]
pub struct App {
    /// The validated config.
    pub config: Arc<Config>,
    /// The store.
    pub store: Arc<SqliteStore>,
    /// One connector per target.
    pub connectors: Arc<BTreeMap<String, Arc<dyn Connector>>>,
    /// Runs imports.
    pub imports: ImportRunner,
    /// Runs provisioning passes (shared circuit breakers).
    pub provisioning: ProvisionRunner,
}

impl App {
    /// Opens the store (running migrations) and builds every target's connector.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let store =
            Arc::new(SqliteStore::open(&config.store.url, config.store.busy_timeout.get()).await?);
        let connectors = Arc::new(registry::build_connectors(&config)?);
        let config = Arc::new(config);
        let dyn_store: Arc<dyn Store> = store.clone();
        let imports = ImportRunner::new(dyn_store.clone(), connectors.clone(), config.clone());
        let provisioning = ProvisionRunner::new(dyn_store, connectors.clone(), config.clone());
        Ok(Self {
            config,
            store,
            connectors,
            imports,
            provisioning,
        })
    }

    /// The store as the trait object the jobs and the API use.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

/// Runs the daemon until `shutdown` resolves: marks runs left open by a dead process as
/// failed, serves HTTP, fires scheduled jobs, catches up missed imports, tells systemd it is
/// ready, and on shutdown stops triggering and lets running jobs finish up to the grace
/// period. `on_listening` is told the HTTP address once it is bound.
pub async fn run_daemon(
    app: App,
    shutdown: impl Future<Output = ()> + Send,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), AppError> {
    // Install the metrics recorder before anything is counted.
    crate::telemetry::metrics_handle();
    let store = app.store();
    let interrupted = store
        .fail_open_runs(scheduler::DEAD_RUN_REASON, clock::now())
        .await?;
    if interrupted > 0 {
        warn!(
            runs = interrupted,
            "Runs left open by a previous process were marked failed."
        );
    }
    match store.release_expired_leases(clock::now()).await {
        Ok(0) => {}
        Ok(released) => warn!(
            tasks = released,
            "Tasks left running by a stopped process were returned to the queue."
        ),
        Err(err) => {
            warn!(error = %err, "Cannot return expired task leases; the next provisioning pass retries.")
        }
    }
    let api_token = match &app.config.server.api_token {
        Some(spec) => Some(Arc::new(spec.resolve().map_err(|source| {
            AppError::Secret {
                key: "server.api_token".into(),
                source,
            }
        })?)),
        None => None,
    };
    let listen = app.config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|err| AppError::Listen {
            addr: listen,
            message: err.to_string(),
        })?;
    let bound = listener.local_addr().map_err(|err| AppError::Listen {
        addr: listen,
        message: err.to_string(),
    })?;
    let runner =
        JobRunner::with_provisioning(&app.config, app.imports.clone(), app.provisioning.clone());
    let state = ServerState {
        config: app.config.clone(),
        store: store.clone(),
        runner: runner.clone(),
        api_token: api_token.map(|token: Arc<SecretString>| token),
    };
    let stop_server = CancellationToken::new();
    let server_stop = stop_server.clone();
    let server = tokio::spawn(server::serve(listener, state, async move {
        server_stop.cancelled().await
    }));
    info!(addr = %bound, api = app.config.server.api_token.is_some(), "HTTP server listening.");
    on_listening(bound);
    let cron = Scheduler::start(&runner).await?;
    info!(
        jobs = runner.jobs().len(),
        targets = app.config.targets.len(),
        "idsync is running."
    );
    notify(&[sd_notify::NotifyState::Ready]);
    let lease_watch = LeaseWatch::start(runner.clone());
    scheduler::catch_up(&runner, store.as_ref()).await;

    shutdown.await;
    info!("Shutting down: no new jobs; waiting for running jobs.");
    notify(&[sd_notify::NotifyState::Stopping]);
    cron.stop().await;
    lease_watch.stop().await;
    runner
        .shutdown(app.config.server.shutdown_grace.get())
        .await;
    stop_server.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => warn!(error = %err, "HTTP server ended with an error."),
        Err(err) => warn!(error = %err, "HTTP server task failed."),
    }
    info!("Stopped.");
    Ok(())
}

/// Tells systemd about a state change; does nothing outside systemd.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(false, states) {
        warn!(error = %err, "sd_notify failed.");
    }
}

/// Installs the SIGTERM and SIGINT handlers and returns a future that resolves when one of
/// them arrives. Installing them first means a failure is reported before any work starts,
/// instead of a daemon that stops at once, or never.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, AppError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let installed = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|err| AppError::Signals(format!("{name}: {err}")))
        };
        let mut term = installed(SignalKind::terminate(), "SIGTERM")?;
        let mut int = installed(SignalKind::interrupt(), "SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => info!(signal = "SIGTERM", "Signal received."),
                _ = int.recv() => info!(signal = "SIGINT", "Signal received."),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(err) = tokio::signal::ctrl_c().await {
                warn!(error = %err, "Cannot listen for Ctrl-C; stop idsync by ending its process.");
                std::future::pending::<()>().await;
            }
        })
    }
}
