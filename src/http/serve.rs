//! The process's HTTP servers (the webhook receiver and the admin port), with the limits that
//! `axum::serve` does not set: a client must send a request's headers within `header_timeout`
//! of connecting or of its previous answer (a slow-loris or an idle connection is closed), a
//! request must be answered within `request_timeout` (a body trickled byte by byte gets 408),
//! and at most `max_connections` stay open: a new one beyond that asks the oldest to close once
//! its request in flight, if any, is answered. The newest connections are the ones a sender is
//! using; the oldest are the idle ones. Memory stays bounded by the limit, whatever a flood of
//! connections does, and deliveries on fresh connections keep being answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// How long clients may take and how many may be connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections kept open; beyond it the oldest is asked to close.
    pub max_connections: usize,
    /// Time to send a request's headers, from connecting or from the previous answer.
    pub header_timeout: Duration,
    /// Time from a request's headers to its answer (the body's upload included).
    pub request_timeout: Duration,
    /// The most a connection buffers of a request's head (431 beyond it): with
    /// `max_connections`, the bound on what unauthenticated heads can hold.
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4_096,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_head_bytes: MAX_HEAD_BYTES,
        }
    }
}

/// A request head's limit: nginx's default for a request line and its headers (8 KiB), and the
/// least hyper allows; a webhook delivery's head is under 1 KiB. 4,096 connections then hold at
/// most 32 MiB of heads.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Pending connections the kernel may queue before `serve` accepts them (Linux caps it at
/// `net.core.somaxconn`, 4096 by default). Tokio's `bind` asks for 1024; a burst of
/// connections beyond the queue has its handshakes dropped and retried by the clients for
/// seconds.
pub const BACKLOG: u32 = 4_096;

/// A listener on `addr` with [`BACKLOG`].
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The open connections, oldest first, each with the signal that asks it to close.
#[derive(Default)]
struct Open {
    next: u64,
    by_age: BTreeMap<u64, oneshot::Sender<()>>,
}

/// Serves `app` on `listener` within `limits` until the future is dropped (which closes every
/// connection it opened).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits) {
    let request_timeout = limits.request_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |request: Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => timed_out(),
            }
        },
    ));
    let max = limits.max_connections.max(1);
    // A hard cap on connections alive at once: the open ones, plus those asked to close that
    // are still answering a request (each for at most the request timeout).
    let alive = Arc::new(Semaphore::new(
        max.saturating_add(max / 8).saturating_add(16),
    ));
    let open = Arc::new(Mutex::new(Open::default()));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = alive.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(%error, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (close_tx, close_rx) = oneshot::channel();
        let id = {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            if open.by_age.len() >= max
                && let Some((_, oldest)) = open.by_age.pop_first()
            {
                let _ = oldest.send(());
            }
            let id = open.next;
            open.next += 1;
            open.by_age.insert(id, close_tx);
            id
        };
        // Requests being answered on this connection: one asked to close with none in flight
        // (idle, or still trickling headers) is closed at once.
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        let router = app.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let busy = Busy::new(counter.clone());
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(axum::body::Body::new)).await;
                drop(busy);
                response
            }
        });
        let open = open.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_head_bytes.max(MAX_HEAD_BYTES));
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                Ok(()) = close_rx => {
                    if in_flight.load(Ordering::SeqCst) > 0 {
                        connection.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(limits.request_timeout, connection).await;
                    }
                }
            }
            open.lock()
                .unwrap_or_else(|e| e.into_inner())
                .by_age
                .remove(&id);
        });
    }
}

/// Counts a request in flight until dropped.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn timed_out() -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        [(axum::http::header::CONNECTION, "close")],
        "the request was not received in time\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests;
