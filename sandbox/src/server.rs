//! The running-server part both sandboxes share: bind, serve an axum router with graceful
//! shutdown, and stop on `shutdown()` or on drop. The sandbox-specific handles wrap a
//! [`Server`] and add their own URLs.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SandboxError;

/// A bound, serving sandbox. Dropping it stops the server (and, through the stop signal, the
/// delivery worker).
pub(crate) struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` first (so a taken port fails before any seeding), then asks `build` for the
    /// app and its background worker; the worker gets the stop signal and is aborted once the
    /// server has stopped. `name` labels the log line of a server that stops with an error.
    pub(crate) async fn start(
        listen: SocketAddr,
        name: &'static str,
        build: impl FnOnce(watch::Receiver<bool>) -> (Router, JoinHandle<()>),
    ) -> Result<Self, SandboxError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: listen,
            source,
        })?;
        let (shutdown, mut stop) = watch::channel(false);
        let (app, worker) = build(shutdown.subscribe());
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "{name} server stopped");
            }
            worker.abort();
        });
        Ok(Self {
            addr,
            shutdown,
            server: Some(server),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests and waits for the server to finish.
    pub(crate) async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
