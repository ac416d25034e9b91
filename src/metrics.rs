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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CycleLabels {
    /// `full` or `incremental`.
    kind: String,
    /// `ok` or the failure category.
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    /// `create`, `update`, `rename`, `disable`, …
    action: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceRequestLabels {
    /// The route template, e.g. `/people/{id}` (never an id).
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    namespace: String,
    name: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    /// `accepted`, `duplicate`, `bad_signature`, … (see `receiver::Outcome`).
    outcome: String,
}

/// One condition of one PeopleSync (kube-state-metrics' shape: 1 for the status it has, 0 for
/// the others).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    namespace: String,
    name: String,
    #[prometheus(flatten)]
    condition: ConditionType,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionType {
    r#type: String,
    status: String,
}

/// One Kubernetes API request the operator made.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubeRequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    verb: String,
    /// The plural resource, with its subresource (`peoplesyncs/status`).
    resource: String,
}

pub struct Metrics {
    registry: Registry,
    kube_requests: Family<KubeRequestLabels, Counter>,
    handed_over: Counter,
    indexes: prometheus_client::metrics::gauge::Gauge,
    deliveries: Family<DeliveryLabels, Counter>,
    source_requests: Family<SourceRequestLabels, Counter>,
    checkpoint_age: Family<ObjectLabels, prometheus_client::metrics::gauge::Gauge>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Histogram,
    status_writes: Counter,
    directory_connections: Counter,
    cycles: Family<CycleLabels, Counter>,
    cycle_seconds: Histogram,
    changes: Family<ChangeLabels, Counter>,
    people_read: Counter,
    failures: Counter,
    conditions: Family<ConditionLabels, prometheus_client::metrics::gauge::Gauge>,
    last_sync: Family<ObjectLabels, prometheus_client::metrics::gauge::Gauge>,
    poll_interval: Family<ObjectLabels, prometheus_client::metrics::gauge::Gauge>,
    leader: prometheus_client::metrics::gauge::Gauge,
    delivery_seconds: Histogram,
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
        let directory_connections = Counter::default();
        registry.register(
            "directory_connections",
            "Connections made to directories (LDAP binds, SCIM clients); kept ones are reused",
            directory_connections.clone(),
        );
        let cycles = Family::<CycleLabels, Counter>::default();
        let cycle_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let changes = Family::<ChangeLabels, Counter>::default();
        let people_read = Counter::default();
        let failures = Counter::default();
        registry.register(
            "sync_cycles",
            "Sync cycles by kind and result",
            cycles.clone(),
        );
        registry.register(
            "sync_cycle_duration_seconds",
            "Sync cycle duration",
            cycle_seconds.clone(),
        );
        registry.register(
            "directory_changes",
            "Directory changes applied, by action",
            changes.clone(),
        );
        registry.register(
            "source_people_read",
            "People read from the source",
            people_read.clone(),
        );
        registry.register(
            "sync_person_failures",
            "Per-person failures (retried next cycle)",
            failures.clone(),
        );
        let source_requests = Family::<SourceRequestLabels, Counter>::default();
        registry.register(
            "hollyhr_requests",
            "HollyHR requests by route template and status",
            source_requests.clone(),
        );
        let checkpoint_age =
            Family::<ObjectLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "checkpoint_age_seconds",
            "Seconds between the last cycle and its checkpoint, per PeopleSync",
            checkpoint_age.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries received, by outcome",
            deliveries.clone(),
        );
        let kube_requests = Family::<KubeRequestLabels, Counter>::default();
        registry.register(
            "kube_requests",
            "Kubernetes API requests the operator made, by verb and resource (a watch counts once, when it starts)",
            kube_requests.clone(),
        );
        let handed_over = Counter::default();
        registry.register(
            "webhook_people_handed_over",
            "People named by webhook events that an incremental cycle read instead of a targeted sync (too many at once)",
            handed_over.clone(),
        );
        let indexes = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "directory_indexes",
            "Directory indexes kept in memory (one per object whose last run applied cleanly)",
            indexes.clone(),
        );
        let conditions =
            Family::<ConditionLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "condition",
            "Status conditions per PeopleSync: 1 for the status the condition has, 0 for the others",
            conditions.clone(),
        );
        let last_sync = Family::<ObjectLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "last_sync_timestamp_seconds",
            "When the last sync cycle of a PeopleSync finished (Unix seconds)",
            last_sync.clone(),
        );
        let poll_interval =
            Family::<ObjectLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "poll_interval_seconds",
            "A PeopleSync's poll interval (spec.schedule.pollInterval)",
            poll_interval.clone(),
        );
        let leader = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles, else 0",
            leader.clone(),
        );
        let delivery_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "webhook_delivery_duration_seconds",
            "Time the webhook receiver took to answer a delivery",
            delivery_seconds.clone(),
        );
        Self {
            registry,
            delivery_seconds,
            conditions,
            last_sync,
            poll_interval,
            leader,
            indexes,
            kube_requests,
            handed_over,
            deliveries,
            source_requests,
            checkpoint_age,
            reconciles,
            reconcile_seconds,
            status_writes,
            directory_connections,
            cycles,
            cycle_seconds,
            changes,
            people_read,
            failures,
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

    /// A sync cycle finished.
    pub fn cycle(&self, report: &crate::sync::engine::Report) {
        self.cycles
            .get_or_create(&CycleLabels {
                kind: report.kind.as_str().to_owned(),
                result: "ok".to_owned(),
            })
            .inc();
        self.cycle_seconds.observe(report.duration.as_secs_f64());
        self.people_read.inc_by(report.people_read as u64);
        self.failures.inc_by(report.failures().len() as u64);
        for (action, n) in report.applied.iter().flat_map(|a| a.counts.iter()) {
            self.changes
                .get_or_create(&ChangeLabels {
                    action: (*action).to_owned(),
                })
                .inc_by(*n);
        }
    }

    /// A sync cycle failed with this category.
    pub fn cycle_failed(&self, kind: crate::sync::engine::CycleKind, category: &'static str) {
        self.cycles
            .get_or_create(&CycleLabels {
                kind: kind.as_str().to_owned(),
                result: category.to_owned(),
            })
            .inc();
    }

    /// One webhook delivery answered by the receiver.
    pub fn webhook_delivery(&self, outcome: crate::receiver::Outcome) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// One answered HollyHR request.
    pub fn source_request(&self, route: &'static str, status: u16) {
        self.source_requests
            .get_or_create(&SourceRequestLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// How far behind now the object's checkpoint is, after a cycle.
    pub fn checkpoint_age(&self, namespace: &str, name: &str, seconds: i64) {
        self.checkpoint_age
            .get_or_create(&ObjectLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
            .set(seconds);
    }

    /// What alerts watch for one object: its conditions, when its last cycle finished, its poll
    /// interval. Set from the status the controller computed, written or not.
    pub fn object_status(
        &self,
        namespace: &str,
        name: &str,
        status: &crate::crd::PeopleSyncStatus,
        poll_interval: Option<Duration>,
    ) {
        let object = ObjectLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        for condition in &status.conditions {
            for value in ["True", "False", "Unknown"] {
                self.conditions
                    .get_or_create(&ConditionLabels {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        condition: ConditionType {
                            r#type: condition.type_.clone(),
                            status: value.to_owned(),
                        },
                    })
                    .set(i64::from(condition.status == value));
            }
        }
        if let Some(time) = &status.last_sync_time {
            self.last_sync
                .get_or_create(&object)
                .set(time.0.as_second());
        }
        if let Some(interval) = poll_interval {
            self.poll_interval
                .get_or_create(&object)
                .set(i64::try_from(interval.as_secs()).unwrap_or(i64::MAX));
        }
    }

    /// Drops a deleted object's series.
    pub fn forget(&self, namespace: &str, name: &str) {
        let object = ObjectLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.last_sync.remove(&object);
        self.poll_interval.remove(&object);
        self.checkpoint_age.remove(&object);
        // Families cannot be filtered; remove every condition series of the object.
        for kind in crate::crd::conditions::ALL {
            for value in ["True", "False", "Unknown"] {
                self.conditions.remove(&ConditionLabels {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    condition: ConditionType {
                        r#type: kind.to_owned(),
                        status: value.to_owned(),
                    },
                });
            }
        }
    }

    /// How long the receiver took to answer one delivery.
    pub fn webhook_answered(&self, took: Duration) {
        self.delivery_seconds.observe(took.as_secs_f64());
    }

    /// Whether this replica leads (reconciles).
    pub fn leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    /// One request to the Kubernetes API (see [`kube_request_labels`]).
    pub fn kube_request(&self, method: &http::Method, uri: &http::Uri) {
        let (verb, resource) = kube_request_labels(method, uri);
        self.kube_requests
            .get_or_create(&KubeRequestLabels {
                verb: verb.to_owned(),
                resource,
            })
            .inc();
    }

    pub fn indexes_kept(&self, count: usize) {
        self.indexes.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn handed_over(&self, people: usize) {
        self.handed_over.inc_by(people as u64);
    }

    pub fn directory_connected(&self) {
        self.directory_connections.inc();
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
        metrics.source_request("/people", 200);
        metrics.checkpoint_age("team", "acme", 42);
        metrics.webhook_delivery(crate::receiver::Outcome::BadSignature);
        let text = metrics.encode();
        assert!(
            text.contains("peoplesync_hollyhr_requests_total{route=\"/people\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("peoplesync_checkpoint_age_seconds{namespace=\"team\",name=\"acme\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("peoplesync_webhook_deliveries_total{outcome=\"bad_signature\"} 1"),
            "{text}"
        );
    }
}

/// The verb and resource of a Kubernetes API request: `/api/v1/namespaces/ns/secrets/x` is a
/// `get` of `secrets`, `/apis/g/v/namespaces/ns/peoplesyncs/x/status` a `patch` of
/// `peoplesyncs/status`, a `GET` with `watch=true` a `watch`. Names and namespaces are left out
/// (they are not bounded, and a name can be a person's).
pub fn kube_request_labels(method: &http::Method, uri: &http::Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let resource = match rest {
        [] => "other".to_owned(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [resource, ..] => (*resource).to_owned(),
    };
    let watching = uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    let verb = match *method {
        http::Method::GET if watching => "watch",
        http::Method::GET if rest.len() >= 2 => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod kube_request_tests {
    use super::kube_request_labels;
    use http::{Method, Uri};

    fn labels(method: Method, uri: &str) -> (&'static str, String) {
        kube_request_labels(&method, &uri.parse::<Uri>().expect("a URI"))
    }

    #[test]
    fn requests_are_named_by_verb_and_resource_without_names() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/ns/secrets/hollyhr",
                ("get", "secrets"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/ns/secrets?labelSelector=x",
                ("list", "secrets"),
            ),
            (
                Method::GET,
                "/api/v1/secrets?watch=true&resourceVersion=5",
                ("watch", "secrets"),
            ),
            (
                Method::PATCH,
                "/apis/peoplesync.dev/v1alpha1/namespaces/ns/peoplesyncs/acme/status?fieldManager=x",
                ("patch", "peoplesyncs/status"),
            ),
            (
                Method::GET,
                "/apis/peoplesync.dev/v1alpha1/peoplesyncs?watch=1",
                ("watch", "peoplesyncs"),
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                ("create", "events"),
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/peoplesync",
                ("update", "leases"),
            ),
            (Method::GET, "/api/v1/namespaces/ns", ("get", "namespaces")),
            (Method::GET, "/version", ("list", "other")),
        ];
        for (method, uri, (verb, resource)) in cases {
            assert_eq!(labels(method, uri), (verb, resource.to_owned()), "{uri}");
        }
    }
}
