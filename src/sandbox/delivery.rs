//! The delivery worker: sends due deliveries as signed HTTP POSTs, at least once, with the
//! configured retry schedule (Decision 3). It wakes when a write queues a delivery, when the
//! clock is moved, and at the next scheduled retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::{AttemptOutcome, Sandbox};

/// Attempts in flight at once.
const CONCURRENCY: usize = 32;
/// Longest sleep between checks: the sandbox clock can be moved by a control call.
const IDLE_TICK: Duration = Duration::from_millis(200);

pub fn spawn(sandbox: Arc<Sandbox>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(sandbox.config.delivery_timeout)
            // A redirect is a non-2xx answer, not something to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "sandbox delivery worker cannot build its HTTP client");
                return;
            }
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        loop {
            if *stop.borrow() {
                return;
            }
            let now = sandbox.clock.now();
            let variant = sandbox.settings().signature_variant;
            let free = limit.available_permits();
            let due = sandbox.state().take_due(now, variant, free);
            for attempt in due {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let sandbox = sandbox.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut request = client.post(&attempt.url).body(attempt.body.clone());
                    for (name, value) in &attempt.headers {
                        request = request.header(name, value);
                    }
                    let outcome = match request.send().await {
                        Ok(response) => AttemptOutcome::Status(response.status().as_u16()),
                        Err(error) if error.is_timeout() => {
                            AttemptOutcome::Network("timed out".into())
                        }
                        Err(error) if error.is_connect() => {
                            AttemptOutcome::Network("connection failed".into())
                        }
                        Err(_) => AttemptOutcome::Network("request failed".into()),
                    };
                    let latency = started.elapsed().as_millis() as u64;
                    let schedule = sandbox.config.delivery_retry_schedule.clone();
                    let now = sandbox.clock.now();
                    sandbox.state().record_attempt(
                        &attempt.delivery_id,
                        outcome,
                        latency,
                        &schedule,
                        now,
                    );
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
