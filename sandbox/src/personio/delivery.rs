//! The delivery worker's Personio half: sends due deliveries as JSON POSTs carrying the webhook's
//! token (or custom headers) verbatim, makes up to two immediate requests per attempt, and
//! leaves the schedule to the store. The loop, which wakes when a write queues a delivery, when
//! the clock is moved, and at the next scheduled retry (so tests can advance the sandbox clock
//! through the schedule), is `../core/worker.rs`.

use jiff::Timestamp;

use super::super::core::worker::{self, Deliver, Sent};
use super::store::{Outcome, PendingDelivery, Sandbox};

impl Deliver for Sandbox {
    type Due = PendingDelivery;

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
) -> Vec<(Outcome, Timestamp)> {
    let mut requests = Vec::new();
    for _ in 0..pending.requests {
        let sent = worker::post(client, &pending.url, &pending.headers, pending.body.clone()).await;
        let outcome = match sent {
            Sent::Status(status) => Outcome::Status(status),
            Sent::TimedOut => Outcome::TimedOut,
            Sent::ConnectFailed | Sent::Failed => Outcome::Unreachable,
        };
        requests.push((outcome, sandbox.clock.now()));
        if !outcome.retryable() {
            break;
        }
    }
    requests
}
