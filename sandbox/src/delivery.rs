//! The delivery worker: sends due deliveries as signed HTTP POSTs, at least once, with the
//! configured retry schedule (Decision 3). It wakes when a write queues a delivery, when the
//! clock is moved, and at the next scheduled retry (the loop is `worker.rs`, shared with the
//! Personio sandbox).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::{AttemptOutcome, PendingAttempt, Sandbox};
use super::worker::{self, Deliver};

pub fn spawn(sandbox: Arc<Sandbox>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    worker::spawn(sandbox, stop)
}

impl Deliver for Sandbox {
    type Due = PendingAttempt;
    const NAME: &'static str = "sandbox";

    fn delivery_timeout(&self) -> Duration {
        self.config.delivery_timeout
    }

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
        let mut request = client.post(&attempt.url).body(attempt.body.clone());
        for (name, value) in &attempt.headers {
            request = request.header(name, value);
        }
        let outcome = match request.send().await {
            Ok(response) => AttemptOutcome::Status(response.status().as_u16()),
            Err(error) if error.is_timeout() => AttemptOutcome::Network("timed out".into()),
            Err(error) if error.is_connect() => AttemptOutcome::Network("connection failed".into()),
            Err(_) => AttemptOutcome::Network("request failed".into()),
        };
        let latency = started.elapsed().as_millis() as u64;
        let schedule = self.config.delivery_retry_schedule.clone();
        let now = self.clock.now();
        self.state()
            .record_attempt(&attempt.delivery_id, outcome, latency, &schedule, now);
    }
}
