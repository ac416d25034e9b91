//! The delivery worker's HollyHR half: sends due deliveries as signed HTTP POSTs, at least once,
//! with the configured retry schedule (Decision 3). The loop, which wakes when a write queues a
//! delivery, when the clock is moved, and at the next scheduled retry, is `core/worker.rs`.

use std::time::Instant;

use jiff::Timestamp;

use super::core::worker::{self, Deliver, Sent};
use super::store::{AttemptOutcome, PendingAttempt, Sandbox};

impl Deliver for Sandbox {
    type Due = PendingAttempt;

    fn take_due(&self, now: Timestamp, max: usize) -> Vec<PendingAttempt> {
        let variant = self.settings().signature_variant;
        self.state().take_due(now, variant, max)
    }

    fn next_due(&self) -> Option<Timestamp> {
        self.state().next_due()
    }

    /// One signed POST; a timeout or refused connection is a network outcome.
    async fn deliver(&self, client: &reqwest::Client, attempt: PendingAttempt) {
        let started = Instant::now();
        let sent = worker::post(client, &attempt.url, &attempt.headers, attempt.body.clone()).await;
        let outcome = match sent {
            Sent::Status(status) => AttemptOutcome::Status(status),
            Sent::TimedOut => AttemptOutcome::Network("timed out".into()),
            Sent::ConnectFailed => AttemptOutcome::Network("connection failed".into()),
            Sent::Failed => AttemptOutcome::Network("request failed".into()),
        };
        let latency = started.elapsed().as_millis() as u64;
        let schedule = &self.config.delivery_retry_schedule;
        let now = self.clock.now();
        self.state()
            .record_attempt(&attempt.delivery_id, outcome, latency, schedule, now);
    }
}
