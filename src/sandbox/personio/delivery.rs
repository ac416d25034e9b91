//! The delivery worker: sends due deliveries as JSON POSTs carrying the webhook's token (or
//! custom headers) verbatim, makes up to two immediate requests per attempt, and leaves the
//! schedule to the store. It wakes when a write queues a delivery, when the clock is moved, and
//! at the next scheduled retry, so tests can advance the sandbox clock through the schedule.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::{Outcome, PendingDelivery, Sandbox};

/// Attempts in flight at once.
const CONCURRENCY: usize = 32;
/// Longest sleep between checks: the sandbox clock can be moved by a control call.
const IDLE_TICK: Duration = Duration::from_millis(200);

pub fn spawn(sandbox: Arc<Sandbox>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            // Personio's acknowledgement deadline.
            .timeout(sandbox.config.delivery_timeout)
            // Redirects are not followed (API.md §7.7): a 3xx is a final answer.
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "personio sandbox delivery worker cannot build its HTTP client");
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
            let due = sandbox.state().take_due(now, free);
            for pending in due {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let sandbox = sandbox.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let requests = attempt(&client, &sandbox, &pending).await;
                    let schedule = &sandbox.config.delivery_retry_schedule;
                    let now = sandbox.clock.now();
                    sandbox
                        .state()
                        .record_attempt(pending.id, &requests, schedule, now);
                    drop(permit);
                    sandbox.wake.notify_one();
                });
            }
            let wait = sandbox
                .state()
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

/// One attempt: requests until one is delivered or final, at most `pending.requests`.
async fn attempt(
    client: &reqwest::Client,
    sandbox: &Sandbox,
    pending: &PendingDelivery,
) -> Vec<(Outcome, jiff::Timestamp)> {
    let mut requests = Vec::new();
    for _ in 0..pending.requests {
        let mut request = client.post(&pending.url).body(pending.body.clone());
        for (name, value) in &pending.headers {
            request = request.header(name, value);
        }
        let outcome = match request.send().await {
            Ok(response) => Outcome::Status(response.status().as_u16()),
            Err(error) if error.is_timeout() => Outcome::TimedOut,
            Err(_) => Outcome::Unreachable,
        };
        requests.push((outcome, sandbox.clock.now()));
        if !outcome.retryable() {
            break;
        }
    }
    requests
}
