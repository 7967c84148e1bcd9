//! The daemon as a user runs it: `idsync --config CONFIG run`, the real binary in a process
//! of its own, stopped by a signal. The one harness of every test that runs the daemon.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{BIN, HANG_GUARD};

/// How often the harness looks again (for the listening line, `/readyz`, the exit).
const POLL: Duration = Duration::from_millis(20);

/// A running `idsync run`. Its stdout and stderr (where the logs go) are files in the test's
/// directory; its HTTP server listens on a loopback port the OS picked. Killed if dropped
/// while still running.
pub struct Daemon {
    child: Child,
    name: String,
    /// `http://127.0.0.1:PORT`, once [`Daemon::start`] returned.
    pub base: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How a daemon process ended, and everything it printed.
#[derive(Debug)]
pub struct Exited {
    /// The exit status (a signal for SIGKILL).
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr: the logs.
    pub log: String,
}

impl Exited {
    /// The signal that ended the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(&self.status)
    }
}

impl Daemon {
    /// Starts `idsync --config CONFIG run` with `envs` (output in `DIR/NAME.out` and
    /// `DIR/NAME.log`) and returns once it is ready: it logged the address its HTTP server
    /// is bound to (`server.listen` is set to `127.0.0.1:0` through the environment, so no
    /// port is raced for) and `/readyz` answered 200 there. The config must log JSON at
    /// `info` or finer, for that line.
    pub async fn start(config: &Path, dir: &Path, name: &str, envs: &[(&str, &str)]) -> Self {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "run"])
            .env("IDSYNC__SERVER__LISTEN", "127.0.0.1:0")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut daemon = Self {
            child,
            name: name.to_string(),
            base: String::new(),
            stdout,
            stderr,
        };
        let addr = daemon.until_logged_address().await;
        daemon.base = format!("http://{addr}");
        daemon.until_ready().await;
        daemon
    }

    /// `BASE/PATH`, e.g. `daemon.url("/metrics")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET BASE/PATH` with `token` as bearer: the status (0 when there was no answer) and
    /// the body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = reqwest::Client::new().get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    /// `POST BASE/PATH` with `token` as bearer and `body` as JSON: the status and the body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> (u16, String) {
        let mut request = reqwest::Client::new().post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    /// Its logs so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Its stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(self) -> Exited {
        self.send("-TERM");
        self.wait_exit("SIGTERM").await
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub async fn kill(self) -> Exited {
        self.send("-KILL");
        self.wait_exit("SIGKILL").await
    }

    fn send(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success(), "kill {signal} {pid} failed");
    }

    /// The address from the "HTTP server listening." log line.
    async fn until_logged_address(&mut self) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if let Some(addr) = log
                .lines()
                .filter(|line| line.contains("HTTP server listening"))
                .find_map(logged_addr)
            {
                return addr;
            }
            self.fail_if_gone_or_hung(started, "log its HTTP address");
            tokio::time::sleep(POLL).await;
        }
    }

    async fn until_ready(&mut self) {
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            let ready = client.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|answer| answer.status().as_u16() == 200) {
                return;
            }
            self.fail_if_gone_or_hung(started, "answer /readyz with 200");
            tokio::time::sleep(POLL).await;
        }
    }

    fn fail_if_gone_or_hung(&mut self, started: Instant, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "daemon {} exited ({status}) before it would {what}; log:\n{}",
                self.name,
                self.log()
            );
        }
        if started.elapsed() > HANG_GUARD {
            panic!(
                "daemon {} did not {what} within {HANG_GUARD:?}; log:\n{}",
                self.name,
                self.log()
            );
        }
    }

    async fn wait_exit(mut self, after: &str) -> Exited {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Exited {
                    status,
                    stdout: self.stdout(),
                    log: self.log(),
                };
            }
            if started.elapsed() > HANG_GUARD {
                panic!(
                    "daemon {} did not exit within {HANG_GUARD:?} of {after}; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, String) {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// The address in a JSON log line (`"addr":"127.0.0.1:PORT"`).
fn logged_addr(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("\"addr\":\"")?;
    let (addr, _) = rest.split_once('"')?;
    Some(addr.to_string())
}
