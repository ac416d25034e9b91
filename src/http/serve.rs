//! The process's HTTP servers (the webhook receiver and the admin port), with the limits that
//! `axum::serve` does not set: a client must send a request's headers within `header_timeout`
//! of connecting or of its previous answer (a slow-loris or an idle connection is closed), a
//! request must be answered within `request_timeout` (a body trickled byte by byte gets 408),
//! and at most `max_connections` stay open: a new one beyond that asks the oldest to close once
//! its request in flight, if any, is answered. The newest connections are the ones a sender is
//! using; the oldest are the idle ones. A connection's first request head is read outside hyper
//! into what arrived and no more, within one budget for every connection (`head`), and with
//! [`KeepAlive::Marked`] only a client the app vouched for keeps its connection. Memory stays
//! bounded, whatever a flood of connections does, and deliveries on fresh connections keep
//! being answered.

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
    /// The most a request's head may hold (431 beyond it).
    pub max_head_bytes: usize,
    /// The bytes of incomplete first heads across every connection (see [`head`]).
    pub head_budget: usize,
    /// Which connections are kept alive after a request.
    pub keep_alive: KeepAlive,
}

/// Which connections stay open after a request. As a response extension, [`KeepAlive`] is the
/// app's word that this client may keep its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepAlive {
    /// Every client's (HTTP/1.1's default).
    #[default]
    Always,
    /// Only where the response carries `KeepAlive` (the receiver: authenticated deliveries);
    /// every other answer closes the connection.
    Marked,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_head_bytes: MAX_HEAD_BYTES,
            head_budget: head::HEAD_BUDGET,
            keep_alive: KeepAlive::Always,
        }
    }
}

/// Connections kept open by default.
pub const MAX_CONNECTIONS: usize = 4_096;

/// A request head's limit: nginx's default for a request line and its headers (8 KiB), and the
/// least hyper allows (for the heads of later requests on a kept connection, which hyper
/// reads); a webhook delivery's head is under 1 KiB.
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

/// The open connections, oldest first, each with the signal that asks it to close: strangers,
/// and those the app vouched for ([`KeepAlive`] on an answer), which are asked to close only
/// when no stranger is left (a flood of strangers never pushes out the source's kept-alive
/// connections).
#[derive(Default)]
struct Open {
    next: u64,
    by_age: BTreeMap<u64, oneshot::Sender<()>>,
    vouched: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Open {
    fn len(&self) -> usize {
        self.by_age.len() + self.vouched.len()
    }

    /// Asks the oldest stranger (else the oldest vouched-for connection) to close.
    fn close_oldest(&mut self) {
        if let Some((_, oldest)) = self.by_age.pop_first().or_else(|| self.vouched.pop_first()) {
            let _ = oldest.send(());
        }
    }

    fn vouch(&mut self, id: u64) {
        if let Some(close) = self.by_age.remove(&id) {
            self.vouched.insert(id, close);
        }
    }

    fn remove(&mut self, id: u64) {
        self.by_age.remove(&id);
        self.vouched.remove(&id);
    }
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
    let heads = head::Heads::new(limits.head_budget);
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
            if open.len() >= max {
                open.close_oldest();
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
        let keep_alive = limits.keep_alive;
        let vouching = open.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let busy = Busy::new(counter.clone());
            let router = router.clone();
            let vouching = vouching.clone();
            async move {
                let mut response = router.oneshot(request.map(axum::body::Body::new)).await?;
                if response.extensions().get::<KeepAlive>().is_some() {
                    vouching.lock().unwrap_or_else(|e| e.into_inner()).vouch(id);
                } else if keep_alive == KeepAlive::Marked {
                    // Only a client the app vouched for keeps its connection: a stranger's
                    // next head would be read by hyper, outside the head budget.
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                drop(busy);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let open = open.clone();
        let heads = heads.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut close_rx = close_rx;
            let mut stream = stream;
            // The first head, read outside hyper within the shared budget (see `head`).
            let (ticket, mut dropped) = heads.start();
            let first = tokio::select! {
                read = tokio::time::timeout(
                    limits.header_timeout,
                    head::read(&mut stream, &ticket, &mut dropped, limits.max_head_bytes),
                ) => read.unwrap_or(Err(head::Unread::Dropped)),
                _ = &mut close_rx => Err(head::Unread::Dropped),
            };
            drop(ticket);
            let prefix = match first {
                Ok(prefix) => prefix,
                Err(unread) => {
                    if let Some(answer) = head::answer(&unread) {
                        use tokio::io::AsyncWriteExt as _;
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer))
                                .await;
                    }
                    open.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                    return;
                }
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_head_bytes.max(MAX_HEAD_BYTES));
            let connection = builder
                .serve_connection(TokioIo::new(head::Prefixed::new(prefix, stream)), service);
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
            open.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
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

mod head;
pub use head::HEAD_BUDGET;

#[cfg(test)]
mod tests;
