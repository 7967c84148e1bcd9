//! A running simulator: the bound address, the control handle and a graceful stop.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::faults::connection::{ResetSwitch, ResettableListener};

/// How long [`SimServer::shutdown`] waits for open requests before aborting the server task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A simulator serving HTTP on a loopback port. `C` is its control handle
/// (e.g. [`DigicertControl`](super::DigicertControl)).
///
/// Dropping it asks the server to stop (without waiting); [`SimServer::shutdown`] stops it
/// and waits.
#[derive(Debug)]
pub struct SimServer<C> {
    addr: SocketAddr,
    api_root: &'static str,
    control: C,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl<C: Clone> SimServer<C> {
    /// Binds `addr` (port 0 picks a free port) and serves `router` in a spawned task, on
    /// connections the fault layer can reset.
    pub(crate) async fn spawn(
        addr: SocketAddr,
        router: Router,
        api_root: &'static str,
        control: C,
        name: &'static str,
    ) -> io::Result<Self> {
        let listener = ResettableListener(TcpListener::bind(addr).await?);
        let addr = listener.0.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<ResetSwitch>();
            let result = axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    // A dropped sender stops the server as well.
                    let _ = stopped.await;
                })
                .await;
            tracing::debug!(simulator = name, "Simulator stopped.");
            result
        });
        tracing::info!(simulator = name, addr = %addr, "Simulator listening.");
        Ok(Self {
            addr,
            api_root,
            control,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API root URL, e.g. `http://127.0.0.1:41234/services/v2` (an unspecified bind
    /// address is shown as loopback).
    pub fn base_url(&self) -> String {
        format!("{}{}", self.origin(), self.api_root)
    }

    /// The server origin, e.g. `http://127.0.0.1:41234` (control routes live under
    /// `/_sim/` here).
    pub fn origin(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            let loopback = match addr {
                SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
                SocketAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            };
            addr.set_ip(loopback);
        }
        format!("http://{addr}")
    }

    /// A handle to change the simulator's behaviour and data while it runs.
    pub fn control(&self) -> C {
        self.control.clone()
    }

    /// Stops accepting connections, lets open requests finish (up to 5 s, then aborts) and
    /// waits for the server task.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(io::Error::other(join)),
            Err(_elapsed) => {
                task.abort();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "simulator did not stop within 5s; aborted",
                ))
            }
        }
    }
}

impl<C> Drop for SimServer<C> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `key` as a TOML table key: bare when it can be, quoted otherwise.
pub(crate) fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        toml_string(key)
    }
}

/// `text` as a quoted, escaped TOML string.
pub(crate) fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
