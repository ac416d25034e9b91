//! The running-server part both sandboxes share: bind, serve an axum router with graceful
//! shutdown, and stop on `shutdown()` or on drop; one sandbox's app (its routes and delivery
//! worker); and the [`Handle`] tests hold, with the URLs of its API and controls.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::remote::{Controls, Kind};
use super::sandbox::{Sandbox, Tenant};
use super::worker::{self, Deliver};
use crate::SandboxError;

/// One sandbox's app, `routes` of a freshly seeded [`Sandbox`], and its delivery worker, which
/// stops on `stop`.
pub fn app<T: Tenant>(
    config: T::Config,
    routes: fn(Arc<Sandbox<T>>) -> Router,
    stop: watch::Receiver<bool>,
) -> (Router, JoinHandle<()>)
where
    Sandbox<T>: Deliver,
{
    let sandbox = Arc::new(Sandbox::new(config));
    let worker = worker::spawn(sandbox.clone(), stop);
    (routes(sandbox), worker)
}

/// A running sandbox of kind `K`. Dropping it stops the server and its delivery worker.
pub struct Handle<K> {
    server: Server,
    kind: PhantomData<K>,
}

impl<K: Kind> Handle<K> {
    /// Binds `listen` and serves one sandbox of `config` (see [`app`]).
    pub(crate) async fn start<T: Tenant>(
        listen: SocketAddr,
        config: T::Config,
        routes: fn(Arc<Sandbox<T>>) -> Router,
    ) -> Result<Self, SandboxError>
    where
        Sandbox<T>: Deliver,
    {
        let server = Server::start(listen, T::NAME, |stop| app(config, routes, stop)).await?;
        Ok(Self {
            server,
            kind: PhantomData,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// What a client takes as its base URL: HollyHR's is `http://127.0.0.1:PORT/api/v1`,
    /// Personio's `http://127.0.0.1:PORT` (its paths start with `/v2/`).
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr(), K::API_BASE)
    }

    /// `http://127.0.0.1:PORT/_sandbox`: the test controls.
    pub fn control_url(&self) -> String {
        format!("http://{}/_sandbox", self.addr())
    }

    /// A client for the test controls.
    pub fn controls(&self) -> Controls<K> {
        Controls::new(&self.control_url())
    }

    /// Stops accepting requests and waits for the server to finish.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

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
