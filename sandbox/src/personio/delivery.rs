//! The delivery worker: sends due deliveries as JSON POSTs carrying the webhook's token (or
//! custom headers) verbatim, makes up to two immediate requests per attempt, and leaves the
//! schedule to the store. It wakes when a write queues a delivery, when the clock is moved, and
//! at the next scheduled retry, so tests can advance the sandbox clock through the schedule.
//! The loop is `../worker.rs`, shared with the HollyHR sandbox.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::super::worker::{self, Deliver};
use super::store::{Outcome, PendingDelivery, Sandbox};

pub fn spawn(sandbox: Arc<Sandbox>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    worker::spawn(sandbox, stop)
}

impl Deliver for Sandbox {
    type Due = PendingDelivery;
    const NAME: &'static str = "personio sandbox";

    /// Personio's acknowledgement deadline; redirects are not followed (API.md §7.7).
    fn delivery_timeout(&self) -> Duration {
        self.config.delivery_timeout
    }

    fn take_due(&self, now: Timestamp, max: usize) -> Vec<PendingDelivery> {
        self.state().take_due(now, max)
    }

    fn next_due(&self) -> Option<Timestamp> {
        self.state().next_due()
    }

    async fn deliver(&self, client: &reqwest::Client, pending: PendingDelivery) {
        let requests = attempt(client, self, &pending).await;
        let schedule = &self.config.delivery_retry_schedule;
        let now = self.clock.now();
        self.state()
            .record_attempt(pending.id, &requests, schedule, now);
    }
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
