//! `idsync demo` and `idsync sim`: the built-in simulators on loopback, and the daemon run
//! against them with an embedded SQLite store, so a new user sees idsync work with no
//! outside service.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::args::{DemoArgs, SimArgs, SimKind};
use super::output::{errln, write_stdout};
use super::{print_summary, OutputFormat, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::app::{self, App};
use crate::config::{LogConfig, LogFormat};
use crate::model::{ImportMode, Trigger};
use crate::sync::{ImportParts, ImportRequest};
use crate::telemetry;
use idsync_sim::{
    DcUserStatus, DigicertControl, DigicertSeed, DigicertServer, DigicertSim, DigicertSimConfig,
    DuckCreekControl, DuckCreekSeed, DuckCreekServer, DuckCreekSim, DuckCreekSimConfig,
    JamaControl, JamaSeed, JamaServer, JamaSim, JamaSimConfig, SimControl, UserSpec,
};

/// The demo's target name.
const DEMO_TARGET: &str = "digicert";

/// A random hex string for throwaway demo credentials.
fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Starts the DigiCert simulator on `addr` with `users` users.
async fn start_digicert(
    addr: SocketAddr,
    users: usize,
    rate_limited: bool,
) -> std::io::Result<DigicertServer> {
    let mut config = DigicertSimConfig {
        api_key: format!("demo-{}", random_hex(16)),
        seed: DigicertSeed::with_users(u32::try_from(users).unwrap_or(u32::MAX)),
        ..DigicertSimConfig::default()
    };
    if !rate_limited {
        config.rate_limits = Vec::new();
    }
    DigicertSim::start(config, addr).await
}

/// Users in the demo's simulated Jama tenant.
const DEMO_JAMA_USERS: usize = 500;
/// User groups in the demo's simulated Jama tenant.
const DEMO_JAMA_GROUPS: u32 = 12;

/// The simulated tenants of the demo.
struct DemoSims {
    digicert: DigicertServer,
    jama: JamaServer,
    duckcreek: DuckCreekServer,
}

/// Handles that change the simulated tenants while they run.
#[derive(Clone)]
struct DemoControls {
    digicert: DigicertControl,
    jama: JamaControl,
    duckcreek: DuckCreekControl,
}

impl DemoSims {
    /// The simulators' control handles.
    fn controls(&self) -> DemoControls {
        DemoControls {
            digicert: self.digicert.control(),
            jama: self.jama.control(),
            duckcreek: self.duckcreek.control(),
        }
    }

    /// Stops every simulator, logging any that does not stop cleanly.
    async fn shutdown(self) {
        for result in [
            self.digicert.shutdown().await,
            self.jama.shutdown().await,
            self.duckcreek.shutdown().await,
        ] {
            if let Err(err) = result {
                warn!(error = %err, "Simulator did not stop cleanly.");
            }
        }
    }
}

/// The demo's config: the simulators as targets `digicert`, `jama` and `duckcreek`, each
/// imported twice a minute (accounts, then access ten seconds later).
fn demo_config(sims: &DemoSims, args: &DemoArgs, api_token: &str) -> String {
    let store = args.store.display().to_string().replace('\\', "/");
    format!(
        r#"[store]
url = "sqlite://{store}"

[server]
listen = "{listen}"
api_token = "{api_token}"
shutdown_grace = "10s"

[log]
level = "info"
format = "text"

{digicert_fragment}{DEMO_RETRY}
{jama_fragment}{DEMO_RETRY}
{duckcreek_fragment}{DEMO_RETRY}
[jobs.digicert-accounts]
type = "account_import"
target = "{DEMO_TARGET}"
schedule = "0,30 * * * * *"

[jobs.digicert-access]
type = "access_import"
target = "{DEMO_TARGET}"
schedule = "10,40 * * * * *"

[jobs.jama-accounts]
type = "account_import"
target = "{JAMA_TARGET}"
schedule = "5,35 * * * * *"

[jobs.jama-access]
type = "access_import"
target = "{JAMA_TARGET}"
schedule = "15,45 * * * * *"

[jobs.duckcreek-accounts]
type = "account_import"
target = "{DUCKCREEK_TARGET}"
schedule = "20,50 * * * * *"

[jobs.duckcreek-access]
type = "access_import"
target = "{DUCKCREEK_TARGET}"
schedule = "25,55 * * * * *"

[jobs.provisioning]
type = "provisioning"
schedule = "*/5 * * * * *"
"#,
        listen = args.listen,
        digicert_fragment = sims.digicert.toml_fragment(DEMO_TARGET),
        jama_fragment = sims.jama.toml_fragment(JAMA_TARGET),
        duckcreek_fragment = sims.duckcreek.toml_fragment(DUCKCREEK_TARGET),
    )
}

/// The demo's retry policy: short backoffs, so a retried task is seen completing.
const DEMO_RETRY: &str =
    "retry = { max_attempts = 5, initial_backoff = \"2s\", max_backoff = \"30s\", give_up_after = \"10m\" }\n";

/// Queues a handful of tasks across the targets: a DigiCert hire whose first attempt meets
/// an injected 503 (so it is retried), a role grant, a Jama hire with a group membership that
/// waits for the hire, a Jama disable, and on Duck Creek a lock and a role grant. Returns the
/// task ids.
async fn submit_demo_tasks(app: &App, sims: &DemoControls) -> Vec<i64> {
    let digicert = &sims.digicert;
    let jama = &sims.jama;
    let duckcreek = &sims.duckcreek;
    use crate::model::{Attributes, Operation};
    use crate::store::Submitted;
    use crate::sync::tasks::{self, EntitlementRef, SubmitRequest};
    let person = |first: &str, last: &str, email: &str| -> Attributes {
        [("firstname", first), ("lastname", last), ("email", email)]
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect()
    };
    let request =
        |target: &str, operation, account: &str, entitlement: Option<String>, attributes| {
            SubmitRequest {
                target: target.into(),
                operation,
                account: account.into(),
                entitlement: entitlement.map(EntitlementRef::Text),
                attributes,
                owner: Some(format!("hr:{account}")),
                request_id: None,
                idempotency_key: Some(format!("demo:{target}:{operation}:{account}")),
            }
        };
    // The hire's first attempt gets a 503 from the simulated DigiCert.
    let fault = idsync_sim::FaultRule::new(503)
        .with_method("POST")
        .with_path_prefix("/user")
        .with_times(1);
    if let Err(err) = digicert.fail_when(fault) {
        warn!(error = %err, "Demo: could not inject the transient fault.");
    }
    let mut requests = vec![
        request(
            DEMO_TARGET,
            Operation::CreateAccount,
            "demo.hire",
            None,
            person("Dana", "Hire", "dana.hire@example.com"),
        ),
        request(
            JAMA_TARGET,
            Operation::CreateAccount,
            "demo.jama.hire",
            None,
            person("Jo", "Hire", "jo.hire@example.com"),
        ),
    ];
    if let Some(user) = digicert.users().first() {
        requests.push(request(
            DEMO_TARGET,
            Operation::AddAccess,
            &user.username,
            Some("role:Administrator".into()),
            Attributes::new(),
        ));
    }
    if let Some(group) = jama.groups().first() {
        requests.push(request(
            JAMA_TARGET,
            Operation::AddAccess,
            "demo.jama.hire",
            Some(format!("usergroup:{}", group.name)),
            Attributes::new(),
        ));
    }
    if let Some(user) = jama.users().get(3) {
        requests.push(request(
            JAMA_TARGET,
            Operation::DisableAccount,
            &user.username,
            None,
            Attributes::new(),
        ));
    }
    let dc_users = duckcreek.users();
    if let Some(user) = dc_users
        .iter()
        .find(|user| user.status == DcUserStatus::Active)
    {
        requests.push(request(
            DUCKCREEK_TARGET,
            Operation::DisableAccount,
            &user.name,
            None,
            Attributes::new(),
        ));
    }
    let roles = duckcreek.roles();
    let grant = dc_users.iter().rev().find_map(|user| {
        let missing = roles.iter().find(|role| {
            !user
                .roles
                .iter()
                .any(|held| held.eq_ignore_ascii_case(&role.name))
        })?;
        Some((user.name.clone(), missing.name.clone()))
    });
    if let Some((user, role)) = grant {
        requests.push(request(
            DUCKCREEK_TARGET,
            Operation::AddAccess,
            &user,
            Some(format!("Role:{role}")),
            Attributes::new(),
        ));
    }
    let mut ids = Vec::new();
    for request in requests {
        let what = format!(
            "{} {} on {}",
            request.operation, request.account, request.target
        );
        match tasks::submit(
            app.store.as_ref(),
            &app.connectors,
            &app.config,
            request,
            "demo",
        )
        .await
        {
            Ok(Submitted::Created(task) | Submitted::Existing(task)) => {
                info!(task = task.id, "Demo: queued {what}.");
                ids.push(task.id);
            }
            Err(err) => warn!(error = %err, "Demo: could not queue {what}."),
        }
    }
    ids
}

/// Waits (at most three minutes) until every simulated target's access import has
/// succeeded once, then queues the demo's tasks for the daemon's provisioning job.
async fn queue_after_first_imports(app: App, sims: DemoControls) {
    use crate::model::JobKind;
    use crate::store::Store;
    for _ in 0..180 {
        let mut ready = true;
        for target in [DEMO_TARGET, JAMA_TARGET, DUCKCREEK_TARGET] {
            match app.store.last_success(target, JobKind::AccessImport).await {
                Ok(Some(_)) => {}
                Ok(None) => ready = false,
                Err(err) => {
                    warn!(error = %err, "Demo: cannot read the import history.");
                    ready = false;
                }
            }
        }
        if ready {
            let ids = submit_demo_tasks(&app, &sims).await;
            info!(
                tasks = ids.len(),
                "Demo: tasks queued; the provisioning job runs them every 5 s."
            );
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    warn!("Demo: the first imports did not finish within three minutes; no tasks queued.");
}

/// Runs provisioning passes until the demo's tasks are final (at most two minutes), then
/// prints them. Returns 1 if any failed.
async fn provision_demo_tasks(app: &App, ids: &[i64], format: OutputFormat) -> i32 {
    use crate::model::TaskStatus;
    use crate::store::Store;
    let runner =
        crate::sync::ProvisionRunner::new(app.store(), app.connectors.clone(), app.config.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Err(err) = runner.run_pass(None, &CancellationToken::new()).await {
            errln!("error: {err}");
            return EXIT_FAILED;
        }
        tasks.clear();
        for id in ids {
            if let Ok(Some(task)) = app.store.get_task(*id).await {
                tasks.push(task);
            }
        }
        if tasks.iter().all(|task| task.status.is_final()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    super::print_tasks(&tasks, format);
    if tasks
        .iter()
        .all(|task| task.status == TaskStatus::Succeeded)
        && tasks.len() == ids.len()
    {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// `idsync demo [--once]`.
pub(super) async fn run(args: DemoArgs, format: OutputFormat) -> i32 {
    let _ = telemetry::init_logging(&LogConfig {
        level: "info".into(),
        format: LogFormat::Text,
    });
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let digicert = match start_digicert(any_port, args.users, true).await {
        Ok(sim) => sim,
        Err(err) => {
            errln!("error: cannot start the DigiCert simulator: {err}");
            return EXIT_FAILED;
        }
    };
    let jama = match start_jama(any_port, DEMO_JAMA_USERS, DEMO_JAMA_GROUPS, true).await {
        Ok(sim) => sim,
        Err(err) => {
            errln!("error: cannot start the Jama simulator: {err}");
            return EXIT_FAILED;
        }
    };
    let duckcreek = match start_duckcreek(any_port, DEMO_DUCKCREEK_USERS, false).await {
        Ok(sim) => sim,
        Err(err) => {
            errln!("error: cannot start the Duck Creek simulator: {err}");
            return EXIT_FAILED;
        }
    };
    let sims = DemoSims {
        digicert,
        jama,
        duckcreek,
    };
    let api_token = random_hex(16);
    let text = demo_config(&sims, &args, &api_token);
    let loaded = match crate::app::load_config_str(&text, "demo config", &[]) {
        Ok(loaded) => loaded,
        Err(err) => {
            errln!("error: {err}:");
            for problem in &err.problems {
                errln!("  - {problem}");
            }
            return EXIT_USAGE;
        }
    };
    let app = match App::build(loaded.config).await {
        Ok(app) => app,
        Err(err) => {
            errln!("error: {err}");
            return EXIT_FAILED;
        }
    };
    let code = if args.once {
        let imported = once(&app, format).await;
        let ids = submit_demo_tasks(&app, &sims.controls()).await;
        imported.max(provision_demo_tasks(&app, &ids, format).await)
    } else {
        // Tasks name accounts and entitlements, which exist once the first imports ran.
        let queue = tokio::spawn(queue_after_first_imports(app.clone(), sims.controls()));
        let code = daemon(app, &sims, &args, &api_token).await;
        queue.abort();
        code
    };
    sims.shutdown().await;
    code
}

/// One full cycle per target: account import, then access import, then a summary. Exits
/// with the worst of the targets' codes.
async fn once(app: &App, format: OutputFormat) -> i32 {
    let mut code = EXIT_OK;
    for target in [DEMO_TARGET, JAMA_TARGET, DUCKCREEK_TARGET] {
        let request = ImportRequest {
            target: target.into(),
            job: "manual".into(),
            parts: ImportParts::Both,
            mode: ImportMode::Full,
            dry_run: false,
            allow_deletions: false,
            trigger: Trigger::Cli,
            actor: super::cli_actor(),
            started: None,
        };
        match app.imports.run(request, &CancellationToken::new()).await {
            Ok(summary) => {
                print_summary(&summary, format);
                code = code.max(summary.exit_code());
            }
            Err(err) => {
                errln!("error: {err}");
                code = code.max(EXIT_FAILED);
            }
        }
    }
    code
}

/// The daemon against the simulators, with a little churn in the simulated tenants so each
/// import has something to report.
async fn daemon(app: App, sims: &DemoSims, args: &DemoArgs, api_token: &str) -> i32 {
    let churn = tokio::spawn(churn(
        sims.digicert.control(),
        sims.jama.control(),
        sims.duckcreek.control(),
    ));
    let store = args.store.display().to_string();
    let digicert_url = sims.digicert.base_url();
    let jama_url = sims.jama.base_url();
    let duckcreek_url = sims.duckcreek.base_url();
    let token = api_token.to_string();
    let signal = match app::shutdown_signal() {
        Ok(signal) => signal,
        Err(err) => {
            churn.abort();
            errln!("error: {err}");
            return EXIT_FAILED;
        }
    };
    let result = app::run_daemon(app, signal, move |addr| {
        // Several lines on purpose, and only the demo's own addresses and paths: written as
        // is rather than through `outln!`, which keeps a line one line.
        write_stdout(format_args!(
            "\nidsync demo is running. Press Ctrl-C to stop.\n\
             \n  simulated DigiCert   {digicert_url}\
             \n  simulated Jama       {jama_url}\
             \n  simulated Duck Creek {duckcreek_url}\
             \n  store (SQLite)       {store}\
             \n  metrics              http://{addr}/metrics\
             \n  API                  curl -H 'Authorization: Bearer {token}' http://{addr}/api/v1/targets\
             \n  schedule (UTC)       digicert: accounts :00 :30, access :10 :40; jama: accounts :05 :35, access :15 :45;\
             \n                       duckcreek: accounts :20 :50, access :25 :55\
             \n\nTry: curl -s -H 'Authorization: Bearer {token}' http://{addr}/api/v1/runs\n\n"
        ));
    })
    .await;
    churn.abort();
    match result {
        Ok(()) => EXIT_OK,
        Err(err) => {
            errln!("error: {err}");
            EXIT_FAILED
        }
    }
}

/// Every 30 seconds: DigiCert hires, deactivates and removes a user; Jama deactivates a
/// user and takes someone out of a group; Duck Creek locks a user and revokes a role.
async fn churn(digicert: DigicertControl, jama: JamaControl, duckcreek: DuckCreekControl) {
    let mut round = 0u32;
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        round += 1;
        let spec = UserSpec {
            username: format!("demo.hire{round}"),
            first_name: "Demo".into(),
            last_name: format!("Hire {round}"),
            email: format!("demo.hire{round}@example.com"),
            job_title: Some("Engineer".into()),
            telephone: None,
            container_id: None,
            access_roles: vec![5],
            status: Default::default(),
        };
        if let Err(err) = digicert.add_user(spec) {
            warn!(error = %err, "Demo churn: could not add a user.");
        }
        let users = digicert.users();
        let step = round as usize * 7;
        if let Some(user) = users.get(step % users.len().max(1)) {
            let _ = digicert.set_user_status(user.id, "inactive");
        }
        if let Some(user) = users.get((step * 13 + 1) % users.len().max(1)) {
            let _ = digicert.remove_user(user.id);
        }
        let jama_users = jama.users();
        if let Some(user) = jama_users.get((step * 3 + 2) % jama_users.len().max(1)) {
            let _ = jama.set_active(user.id, false);
        }
        let groups = jama.groups();
        if let Some(group) = groups.get(round as usize % groups.len().max(1)) {
            if let Some(member) = jama
                .members(group.id)
                .and_then(|members| members.first().copied())
            {
                let _ = jama.remove_member(group.id, member);
            }
        }
        let dc_users = duckcreek.users();
        if let Some(user) = dc_users.get((step * 5 + 3) % dc_users.len().max(1)) {
            let _ = duckcreek.set_status(user.id, DcUserStatus::Locked);
        }
        if let Some(user) = dc_users.get((step * 11 + 4) % dc_users.len().max(1)) {
            if let Some(role) = user.roles.first() {
                let _ = duckcreek.revoke_role(user.id, role);
            }
        }
        info!(
            round,
            "Demo churn: the simulated tenants changed a few users and memberships."
        );
    }
}

/// The Jama simulator's target name in the printed fragment.
const JAMA_TARGET: &str = "jama";

/// The Duck Creek simulator's target name in the printed fragment.
const DUCKCREEK_TARGET: &str = "duckcreek";

/// Users in the demo's simulated Duck Creek tenant.
const DEMO_DUCKCREEK_USERS: usize = 300;

/// Starts the Duck Creek simulator on `addr` with `users` users (about 5% locked) and
/// throwaway credentials; `require_wrapper`: requests only inside `processRequestsAsDOM`.
async fn start_duckcreek(
    addr: SocketAddr,
    users: usize,
    require_wrapper: bool,
) -> std::io::Result<DuckCreekServer> {
    let users = u32::try_from(users).unwrap_or(u32::MAX);
    let config = DuckCreekSimConfig {
        username: format!("demo-dc-{}", random_hex(4)),
        password: random_hex(16).into(),
        seed: DuckCreekSeed {
            locked_users: users / 20,
            ..DuckCreekSeed::with_users(users)
        },
        require_wrapper,
        ..DuckCreekSimConfig::default()
    };
    DuckCreekSim::start(config, addr).await
}

/// Starts the Jama simulator on `addr` with `users` users (about 5% inactive) in `groups`
/// groups, and throwaway client credentials.
async fn start_jama(
    addr: SocketAddr,
    users: usize,
    groups: u32,
    rate_limited: bool,
) -> std::io::Result<JamaServer> {
    let memberships = JamaSeed::default().memberships_per_user;
    start_jama_with(addr, users, groups, memberships, rate_limited).await
}

/// [`start_jama`], each user in about `memberships_per_user` groups.
async fn start_jama_with(
    addr: SocketAddr,
    users: usize,
    groups: u32,
    memberships_per_user: u32,
    rate_limited: bool,
) -> std::io::Result<JamaServer> {
    let mut config = JamaSimConfig {
        client_id: format!("demo-jama-{}", random_hex(4)),
        client_secret: random_hex(16).into(),
        seed: JamaSeed {
            groups,
            memberships_per_user,
            ..JamaSeed::with_users(u32::try_from(users).unwrap_or(u32::MAX))
        },
        ..JamaSimConfig::default()
    };
    if !rate_limited {
        config.rate_limits = Vec::new();
    }
    JamaSim::start(config, addr).await
}

/// `idsync sim [digicert|jama|all] [--port N]`: prints a config fragment per simulator and
/// serves until interrupted. With `all`, DigiCert listens on `--port` and Jama on the next
/// port (both on any free port when `--port 0`).
pub(super) async fn run_sims(args: SimArgs) -> i32 {
    let _ = telemetry::init_logging(&LogConfig {
        level: "info".into(),
        format: LogFormat::Text,
    });
    let offset = |by: u16| {
        if args.port == 0 {
            Some(0)
        } else {
            args.port.checked_add(by)
        }
    };
    let (digicert_port, jama_port, duckcreek_port) = match args.which {
        SimKind::Digicert => (Some(args.port), None, None),
        SimKind::Jama => (None, Some(args.port), None),
        SimKind::Duckcreek => (None, None, Some(args.port)),
        SimKind::All => match (offset(1), offset(2)) {
            (Some(jama), Some(duckcreek)) => (Some(args.port), Some(jama), Some(duckcreek)),
            _ => {
                errln!("error: `all` needs three ports; --port must be below 65534");
                return EXIT_USAGE;
            }
        },
    };
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let rate_limited = !args.no_rate_limit;
    let digicert = match digicert_port {
        Some(port) => match start_digicert(loopback(port), args.users, rate_limited).await {
            Ok(sim) => Some(sim),
            Err(err) => {
                errln!("error: cannot start the DigiCert simulator on port {port}: {err}");
                return EXIT_FAILED;
            }
        },
        None => None,
    };
    let jama = match jama_port {
        Some(port) => {
            let jama = start_jama_with(
                loopback(port),
                args.users,
                args.groups,
                args.memberships_per_user,
                rate_limited,
            );
            match jama.await {
                Ok(sim) => Some(sim),
                Err(err) => {
                    errln!("error: cannot start the Jama simulator on port {port}: {err}");
                    if let Some(sim) = digicert {
                        let _ = sim.shutdown().await;
                    }
                    return EXIT_FAILED;
                }
            }
        }
        None => None,
    };
    let duckcreek = match duckcreek_port {
        Some(port) => match start_duckcreek(loopback(port), args.users, args.require_wrapper).await
        {
            // The sheet names no rate limit, so the Duck Creek simulator has none.
            Ok(sim) => Some(sim),
            Err(err) => {
                errln!("error: cannot start the Duck Creek simulator on port {port}: {err}");
                if let Some(sim) = digicert {
                    let _ = sim.shutdown().await;
                }
                if let Some(sim) = jama {
                    let _ = sim.shutdown().await;
                }
                return EXIT_FAILED;
            }
        },
        None => None,
    };
    let mut text = String::from(
        "# Paste into your idsync config. Simulator controls: POST <origin>/_sim/... (see README).\n",
    );
    let fragments = [
        digicert.as_ref().map(|sim| sim.toml_fragment(DEMO_TARGET)),
        jama.as_ref().map(|sim| sim.toml_fragment(JAMA_TARGET)),
        duckcreek
            .as_ref()
            .map(|sim| sim.toml_fragment(DUCKCREEK_TARGET)),
    ];
    for fragment in fragments.into_iter().flatten() {
        text.push_str(&fragment);
        text.push('\n');
    }
    // One write, errors ignored: a reader that stops after the lines it wants (`| head`, a
    // script) must not take the simulators down with a broken pipe.
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
    match app::shutdown_signal() {
        Ok(signal) => signal.await,
        Err(err) => errln!("error: {err}; stopping the simulators"),
    }
    if let Some(sim) = digicert {
        let _ = sim.shutdown().await;
    }
    if let Some(sim) = jama {
        let _ = sim.shutdown().await;
    }
    if let Some(sim) = duckcreek {
        let _ = sim.shutdown().await;
    }
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TargetConfig, TargetKind};

    /// Target `name` of a printed fragment, read as idsync's config reads a target table.
    fn target(fragment: &str, name: &str) -> TargetConfig {
        let table: toml::Table = toml::from_str(fragment).unwrap();
        table["targets"][name].clone().try_into().unwrap()
    }

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[tokio::test]
    async fn printed_fragments_are_targets_the_config_accepts() {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let digicert = start_digicert(any_port, 3, true).await.unwrap();
        let jama = start_jama(any_port, 3, 1, true).await.unwrap();
        let duckcreek = start_duckcreek(any_port, 3, true).await.unwrap();

        let parsed = target(&digicert.toml_fragment(DEMO_TARGET), DEMO_TARGET);
        assert_eq!(parsed.kind, TargetKind::Digicert);
        assert_eq!(parsed.base_url, url(&digicert.base_url()));
        assert!(parsed.api_key.is_some());

        let parsed = target(&jama.toml_fragment(JAMA_TARGET), JAMA_TARGET);
        assert_eq!(parsed.kind, TargetKind::Jama);
        assert_eq!(parsed.base_url, url(&jama.base_url()));
        assert!(parsed.client_id.is_some() && parsed.client_secret.is_some());

        let parsed = target(&duckcreek.toml_fragment(DUCKCREEK_TARGET), DUCKCREEK_TARGET);
        assert_eq!(parsed.kind, TargetKind::Duckcreek);
        assert_eq!(parsed.base_url, url(&duckcreek.base_url()));
        assert!(parsed.username.is_some() && parsed.password.is_some());
        assert!(
            parsed.request_wrapper.is_some(),
            "the simulator requires it"
        );

        // A target name that needs quoting stays one key.
        let quoted = target(&digicert.toml_fragment("my target"), "my target");
        assert_eq!(quoted.kind, TargetKind::Digicert);
    }
}
