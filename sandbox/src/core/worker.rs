//! The delivery worker loop both sandboxes share: it takes due deliveries from the store, sends
//! each in its own task (at most [`CONCURRENCY`] at once), and sleeps until a write or a clock
//! move wakes it, the next retry is due, or [`IDLE_TICK`] has passed. What one attempt sends and
//! how its outcome is recorded is the sandbox's own ([`Deliver`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::sandbox::{Sandbox, Tenant};

/// Attempts in flight at once.
const CONCURRENCY: usize = 32;
/// Longest sleep between checks: the sandbox clock can be moved by a control call.
const IDLE_TICK: Duration = Duration::from_millis(200);

/// What the worker loop needs of a sandbox (its clock and wake-up are the shared [`Sandbox`]'s).
pub trait Deliver: Send + Sync + 'static {
    /// One due attempt, taken out of the store (and marked in flight there).
    type Due: Send + 'static;

    /// Up to `max` attempts due at `now`.
    fn take_due(&self, now: Timestamp, max: usize) -> Vec<Self::Due>;
    /// When the next queued attempt is due, if any.
    fn next_due(&self) -> Option<Timestamp>;
    /// Sends one attempt and records its outcome in the store.
    fn deliver(&self, client: &reqwest::Client, due: Self::Due) -> impl Future<Output = ()> + Send;
}

pub fn spawn<T: Tenant>(sandbox: Arc<Sandbox<T>>, mut stop: watch::Receiver<bool>) -> JoinHandle<()>
where
    Sandbox<T>: Deliver,
{
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(sandbox.delivery_timeout)
            // A redirect is a final non-2xx answer, not something to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "{} delivery worker cannot build its HTTP client", T::NAME);
                return;
            }
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        loop {
            if *stop.borrow() {
                return;
            }
            let now = sandbox.clock.now();
            let free = limit.available_permits();
            let due = sandbox.take_due(now, free);
            for attempt in due {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let sandbox = sandbox.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    sandbox.deliver(&client, attempt).await;
                    drop(permit);
                    sandbox.wake.notify_one();
                });
            }
            let wait = sandbox
                .next_due()
                .map(|at| {
                    let until = at.duration_since(sandbox.clock.now());
                    Duration::try_from(until)
                        .unwrap_or(Duration::ZERO)
                        .min(IDLE_TICK)
                })
                .unwrap_or(IDLE_TICK);
            tokio::select! {
                _ = sandbox.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    })
}

/// How one delivery request ended, before the sandbox classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The receiver answered (redirects are not followed, so a 3xx is an answer too).
    Status(u16),
    TimedOut,
    ConnectFailed,
    /// Any other transport failure.
    Failed,
}

/// One delivery request: a POST of `body` with exactly `headers`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: bytes::Bytes,
) -> Sent {
    let mut request = client.post(url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => Sent::Status(response.status().as_u16()),
        Err(error) if error.is_timeout() => Sent::TimedOut,
        Err(error) if error.is_connect() => Sent::ConnectFailed,
        Err(_) => Sent::Failed,
    }
}
