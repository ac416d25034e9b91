//! Prometheus metrics (prometheus-client). Labels are static categories, never names or ids of
//! people.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    /// `ok` or the error category.
    result: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Histogram,
    status_writes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("peoplesync");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let status_writes = Counter::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_seconds.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes (only when the status changed)",
            status_writes.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            status_writes,
        }
    }
}

impl Metrics {
    /// One reconcile finished: `error` is the error category, `None` on success.
    pub fn reconciled(&self, error: Option<&'static str>, took: Duration) {
        let result = error.unwrap_or("ok").to_owned();
        self.reconciles
            .get_or_create(&ReconcileLabels { result })
            .inc();
        self.reconcile_seconds.observe(took.as_secs_f64());
    }

    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_by_result() {
        let metrics = Metrics::default();
        metrics.reconciled(None, Duration::from_millis(3));
        metrics.reconciled(Some("SecretReadFailed"), Duration::from_millis(3));
        metrics.status_written();
        let text = metrics.encode();
        assert!(
            text.contains("peoplesync_reconciles_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("peoplesync_reconciles_total{result=\"SecretReadFailed\"} 1"),
            "{text}"
        );
        assert!(text.contains("peoplesync_status_writes_total 1"), "{text}");
    }
}
