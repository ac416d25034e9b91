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

/// The PeopleSync a series belongs to. Bounded by the objects that exist: a webhook delivery is
/// labelled with its object only once the receiver knows it (an unknown path stays unlabelled).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    namespace: String,
    name: String,
}

impl ObjectLabels {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The labels of a PeopleSync.
    pub fn of(object: &crate::crd::PeopleSync) -> Self {
        use kube::ResourceExt as _;
        Self::new(&object.namespace().unwrap_or_default(), &object.name_any())
    }

    /// No object (a delivery to a path the receiver does not know).
    fn none() -> Self {
        Self::new("", "")
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CycleLabels {
    #[prometheus(flatten)]
    object: ObjectLabels,
    /// `full` or `incremental`.
    kind: String,
    /// `ok` or the failure category.
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CycleKindLabels {
    #[prometheus(flatten)]
    object: ObjectLabels,
    /// `full` or `incremental`.
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    #[prometheus(flatten)]
    object: ObjectLabels,
    /// `provision`, `enable` or `disable`.
    transition: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    #[prometheus(flatten)]
    object: ObjectLabels,
    /// `create`, `update`, `rename`, `disable`, …
    action: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceRequestLabels {
    #[prometheus(flatten)]
    object: ObjectLabels,
    /// `hollyhr` or `personio`.
    source: String,
    /// The route template, e.g. `/people/{id}` (never an id).
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    #[prometheus(flatten)]
    object: ObjectLabels,
    /// `accepted`, `duplicate`, `bad_signature`, … (see `receiver::Outcome`).
    outcome: String,
}

/// One condition of one PeopleSync (kube-state-metrics' shape: 1 for the status it has, 0 for
/// the others).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    #[prometheus(flatten)]
    object: ObjectLabels,
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

/// A label set that names its object, so that a deleted object's series can be dropped.
trait OfObject {
    fn object(&self) -> &ObjectLabels;
}

macro_rules! of_object {
    ($($labels:ty),*) => {$(
        impl OfObject for $labels {
            fn object(&self) -> &ObjectLabels {
                &self.object
            }
        }
    )*};
}
of_object!(
    TransitionLabels,
    CycleLabels,
    CycleKindLabels,
    ChangeLabels,
    SourceRequestLabels,
    DeliveryLabels,
    ConditionLabels
);

impl OfObject for ObjectLabels {
    fn object(&self) -> &ObjectLabels {
        self
    }
}

type Gauge = prometheus_client::metrics::gauge::Gauge;

/// A metric family whose series belong to PeopleSync objects: it remembers which label sets it
/// made, so that [`Scoped::forget`] drops every series of a deleted object (a `Family` cannot be
/// filtered).
struct Scoped<L, M, C = fn() -> M> {
    family: Family<L, M, C>,
    made: std::sync::Mutex<std::collections::HashSet<L>>,
}

impl<L, M, C> Scoped<L, M, C>
where
    L: Clone + std::hash::Hash + Eq + OfObject,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    fn new(family: Family<L, M, C>) -> Self {
        Self {
            family,
            made: std::sync::Mutex::default(),
        }
    }

    /// Runs `f` on the series of `labels`, made when missing. The book stays locked meanwhile,
    /// so that a [`Scoped::forget`] cannot slip in between and leave a series it never sees.
    fn with(&self, labels: L, f: impl FnOnce(&M)) {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if !made.contains(&labels) {
            made.insert(labels.clone());
        }
        f(&self.family.get_or_create(&labels));
    }

    /// Drops every series of `object`.
    fn forget(&self, object: &ObjectLabels) {
        self.made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|labels| {
                if labels.object() == object {
                    self.family.remove(labels);
                    false
                } else {
                    true
                }
            });
    }
}

fn cycle_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

fn lateness_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.125, 2.0, 16))
}

fn delivery_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

pub struct Metrics {
    registry: Registry,
    kube_requests: Family<KubeRequestLabels, Counter>,
    handed_over: Scoped<ObjectLabels, Counter>,
    indexes: Gauge,
    deliveries: Scoped<DeliveryLabels, Counter>,
    source_requests: Scoped<SourceRequestLabels, Counter>,
    checkpoint_age: Scoped<ObjectLabels, Gauge>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Histogram,
    status_writes: Counter,
    directory_connections: Counter,
    cycles: Scoped<CycleLabels, Counter>,
    cycle_seconds: Scoped<CycleKindLabels, Histogram>,
    changes: Scoped<ChangeLabels, Counter>,
    people_read: Scoped<ObjectLabels, Counter>,
    failures: Scoped<ObjectLabels, Counter>,
    conditions: Scoped<ConditionLabels, Gauge>,
    last_sync: Scoped<ObjectLabels, Gauge>,
    poll_interval: Scoped<ObjectLabels, Gauge>,
    leader: Gauge,
    delivery_seconds: Scoped<ObjectLabels, Histogram>,
    transition_lateness: Scoped<TransitionLabels, Histogram>,
    transitions_scheduled: Gauge,
}

/// Registers a family and wraps it in [`Scoped`].
fn scoped<L, M, C>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    family: Family<L, M, C>,
) -> Scoped<L, M, C>
where
    L: Clone
        + std::hash::Hash
        + Eq
        + OfObject
        + EncodeLabelSet
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    C: prometheus_client::metrics::family::MetricConstructor<M>
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    registry.register(name, help, family.clone());
    Scoped::new(family)
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
        let cycles = scoped(
            &mut registry,
            "sync_cycles",
            "Sync cycles per PeopleSync, by kind and result",
            Family::default(),
        );
        let cycle_seconds = scoped(
            &mut registry,
            "sync_cycle_duration_seconds",
            "Sync cycle duration per PeopleSync and kind",
            Family::new_with_constructor(cycle_histogram as fn() -> Histogram),
        );
        let changes = scoped(
            &mut registry,
            "directory_changes",
            "Directory changes applied per PeopleSync, by action",
            Family::default(),
        );
        let people_read = scoped(
            &mut registry,
            "source_people_read",
            "People read from the source, per PeopleSync",
            Family::default(),
        );
        let failures = scoped(
            &mut registry,
            "sync_person_failures",
            "Per-person failures per PeopleSync (retried next cycle)",
            Family::default(),
        );
        let source_requests = scoped(
            &mut registry,
            "source_requests",
            "HR source requests per PeopleSync, by source, route template and status",
            Family::default(),
        );
        let checkpoint_age = scoped(
            &mut registry,
            "checkpoint_age_seconds",
            "Seconds between the last cycle and its checkpoint, per PeopleSync",
            Family::default(),
        );
        let deliveries = scoped(
            &mut registry,
            "webhook_deliveries",
            "Webhook deliveries received, per PeopleSync (none for unknown paths), by outcome",
            Family::default(),
        );
        let kube_requests = Family::<KubeRequestLabels, Counter>::default();
        registry.register(
            "kube_requests",
            "Kubernetes API requests the operator made, by verb and resource (a watch counts once, when it starts)",
            kube_requests.clone(),
        );
        let handed_over = scoped(
            &mut registry,
            "webhook_people_handed_over",
            "People named by webhook events that an incremental cycle read instead of a targeted sync (too many at once), per PeopleSync",
            Family::default(),
        );
        let indexes = Gauge::default();
        registry.register(
            "directory_indexes",
            "Directory indexes kept in memory (one per object whose last run applied cleanly)",
            indexes.clone(),
        );
        let conditions = scoped(
            &mut registry,
            "condition",
            "Status conditions per PeopleSync: 1 for the status the condition has, 0 for the others",
            Family::default(),
        );
        let last_sync = scoped(
            &mut registry,
            "last_sync_timestamp_seconds",
            "When the last sync cycle of a PeopleSync finished (Unix seconds)",
            Family::default(),
        );
        let poll_interval = scoped(
            &mut registry,
            "poll_interval_seconds",
            "A PeopleSync's poll interval (spec.schedule.pollInterval)",
            Family::default(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles, else 0",
            leader.clone(),
        );
        let delivery_seconds = scoped(
            &mut registry,
            "webhook_delivery_duration_seconds",
            "Time the webhook receiver took to answer a delivery, per PeopleSync (none for unknown paths)",
            Family::new_with_constructor(delivery_histogram as fn() -> Histogram),
        );
        let transition_lateness = scoped(
            &mut registry,
            "lifecycle_transition_lateness_seconds",
            "How long after its instant (a first day starting, a last day ending, in the person's time zone) a lifecycle transition's cycle finished, per PeopleSync and transition",
            Family::new_with_constructor(lateness_histogram as fn() -> Histogram),
        );
        let transitions_scheduled = Gauge::default();
        registry.register(
            "lifecycle_transitions_scheduled",
            "People with a lifecycle transition ahead, kept to wake a cycle at its instant (all objects)",
            transitions_scheduled.clone(),
        );
        Self {
            registry,
            delivery_seconds,
            transition_lateness,
            transitions_scheduled,
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

    /// A sync cycle of `object` finished.
    pub fn cycle(&self, object: &ObjectLabels, report: &crate::sync::engine::Report) {
        let kind = report.kind.as_str().to_owned();
        self.cycles.with(
            CycleLabels {
                object: object.clone(),
                kind: kind.clone(),
                result: "ok".to_owned(),
            },
            |c| {
                c.inc();
            },
        );
        self.cycle_seconds.with(
            CycleKindLabels {
                object: object.clone(),
                kind,
            },
            |h| h.observe(report.duration.as_secs_f64()),
        );
        self.people_read.with(object.clone(), |c| {
            c.inc_by(report.people_read as u64);
        });
        self.failures.with(object.clone(), |c| {
            c.inc_by(report.failures().len() as u64);
        });
        for (action, n) in report.applied.iter().flat_map(|a| a.counts.iter()) {
            self.changes.with(
                ChangeLabels {
                    object: object.clone(),
                    action: (*action).to_owned(),
                },
                |c| {
                    c.inc_by(*n);
                },
            );
        }
    }

    /// A sync cycle of `object` failed with this category.
    pub fn cycle_failed(
        &self,
        object: &ObjectLabels,
        kind: crate::sync::engine::CycleKind,
        category: &'static str,
    ) {
        self.cycles.with(
            CycleLabels {
                object: object.clone(),
                kind: kind.as_str().to_owned(),
                result: category.to_owned(),
            },
            |c| {
                c.inc();
            },
        );
    }

    /// One webhook delivery answered by the receiver, for `object` when the receiver knows it.
    pub fn webhook_delivery(
        &self,
        object: Option<&ObjectLabels>,
        outcome: crate::receiver::Outcome,
        took: Duration,
    ) {
        let object = object.cloned().unwrap_or_else(ObjectLabels::none);
        self.deliveries.with(
            DeliveryLabels {
                object: object.clone(),
                outcome: outcome.as_str().to_owned(),
            },
            |c| {
                c.inc();
            },
        );
        self.delivery_seconds
            .with(object, |h| h.observe(took.as_secs_f64()));
    }

    /// One answered source request of `object`.
    pub fn source_request(
        &self,
        object: &ObjectLabels,
        source: &'static str,
        route: &'static str,
        status: u16,
    ) {
        self.source_requests.with(
            SourceRequestLabels {
                object: object.clone(),
                source: source.to_owned(),
                route: route.to_owned(),
                status,
            },
            |c| {
                c.inc();
            },
        );
    }

    /// How far behind now the object's checkpoint is, after a cycle.
    pub fn checkpoint_age(&self, object: &ObjectLabels, seconds: i64) {
        self.checkpoint_age.with(object.clone(), |g| {
            g.set(seconds);
        });
    }

    /// What alerts watch for one object: its conditions, when its last cycle finished, its poll
    /// interval. Set from the status the controller computed, written or not.
    pub fn object_status(
        &self,
        object: &ObjectLabels,
        status: &crate::crd::PeopleSyncStatus,
        poll_interval: Option<Duration>,
    ) {
        for condition in &status.conditions {
            for value in ["True", "False", "Unknown"] {
                self.conditions.with(
                    ConditionLabels {
                        object: object.clone(),
                        r#type: condition.type_.clone(),
                        status: value.to_owned(),
                    },
                    |g| {
                        g.set(i64::from(condition.status == value));
                    },
                );
            }
        }
        // Counters start at 0 with the object (rates work from the first increase).
        for counter in [&self.people_read, &self.failures, &self.handed_over] {
            counter.with(object.clone(), |_| {});
        }
        if let Some(time) = &status.last_sync_time {
            self.last_sync.with(object.clone(), |g| {
                g.set(time.0.as_second());
            });
        }
        if let Some(interval) = poll_interval {
            self.poll_interval.with(object.clone(), |g| {
                g.set(i64::try_from(interval.as_secs()).unwrap_or(i64::MAX));
            });
        }
    }

    /// Drops every series of a deleted object.
    pub fn forget(&self, object: &ObjectLabels) {
        self.cycles.forget(object);
        self.handed_over.forget(object);
        self.cycle_seconds.forget(object);
        self.changes.forget(object);
        self.people_read.forget(object);
        self.failures.forget(object);
        self.source_requests.forget(object);
        self.deliveries.forget(object);
        self.delivery_seconds.forget(object);
        self.transition_lateness.forget(object);
        self.checkpoint_age.forget(object);
        self.conditions.forget(object);
        self.last_sync.forget(object);
        self.poll_interval.forget(object);
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

    /// A lifecycle transition's cycle finished `late` seconds after its instant.
    pub fn transition_ran(
        &self,
        object: &ObjectLabels,
        transition: crate::plan::timing::Transition,
        late: f64,
    ) {
        self.transition_lateness.with(
            TransitionLabels {
                object: object.clone(),
                transition: transition.as_str().to_owned(),
            },
            |h| h.observe(late),
        );
    }

    pub fn transitions_scheduled(&self, people: usize) {
        self.transitions_scheduled
            .set(i64::try_from(people).unwrap_or(i64::MAX));
    }

    pub fn indexes_kept(&self, count: usize) {
        self.indexes.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn handed_over(&self, object: &ObjectLabels, people: usize) {
        self.handed_over.with(object.clone(), |c| {
            c.inc_by(people as u64);
        });
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
        let acme = ObjectLabels::new("team", "acme");
        metrics.source_request(&acme, "hollyhr", "/people", 200);
        metrics.checkpoint_age(&acme, 42);
        metrics.webhook_delivery(
            Some(&acme),
            crate::receiver::Outcome::BadSignature,
            Duration::from_millis(2),
        );
        metrics.webhook_delivery(
            None,
            crate::receiver::Outcome::UnknownObject,
            Duration::from_millis(1),
        );
        let text = metrics.encode();
        for line in [
            "peoplesync_source_requests_total{namespace=\"team\",name=\"acme\",source=\"hollyhr\",route=\"/people\",status=\"200\"} 1",
            "peoplesync_checkpoint_age_seconds{namespace=\"team\",name=\"acme\"} 42",
            "peoplesync_webhook_deliveries_total{namespace=\"team\",name=\"acme\",outcome=\"bad_signature\"} 1",
            "peoplesync_webhook_deliveries_total{namespace=\"\",name=\"\",outcome=\"unknown_object\"} 1",
            "peoplesync_webhook_delivery_duration_seconds_count{namespace=\"team\",name=\"acme\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    /// Every series of an object is per object, and deleting the object drops all of them (its
    /// neighbour's stay).
    #[test]
    fn a_deleted_objects_series_are_all_dropped() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let at = jiff::Timestamp::from_second(1_780_000_000).expect("a time");
        let metrics = Metrics::default();
        let status = crate::crd::PeopleSyncStatus {
            conditions: vec![Condition {
                type_: "Synced".into(),
                status: "True".into(),
                reason: "Synced".into(),
                message: String::new(),
                last_transition_time: Time(at),
                observed_generation: None,
            }],
            last_sync_time: Some(Time(at)),
            ..Default::default()
        };
        let report = crate::sync::engine::Report {
            kind: crate::sync::engine::CycleKind::Full,
            plan: crate::plan::Plan::default(),
            applied: Some(crate::sync::Applied {
                counts: [("create", 3), ("disable", 1)].into(),
                failures: Vec::new(),
            }),
            state: crate::sync::engine::SyncState::default(),
            people_read: 12,
            duration: Duration::from_millis(40),
            timings: crate::sync::engine::Timings::default(),
            upcoming: Default::default(),
        };
        for name in ["acme", "globex"] {
            let object = ObjectLabels::new("team", name);
            metrics.cycle(&object, &report);
            metrics.cycle_failed(
                &object,
                crate::sync::engine::CycleKind::Incremental,
                "SourceUnavailable",
            );
            metrics.source_request(&object, "personio", "/v2/persons", 429);
            metrics.checkpoint_age(&object, 7);
            metrics.webhook_delivery(
                Some(&object),
                crate::receiver::Outcome::Accepted,
                Duration::from_millis(3),
            );
            metrics.object_status(&object, &status, Some(Duration::from_secs(300)));
        }
        let text = metrics.encode();
        let series = |text: &str, name: &str| {
            text.lines()
                .filter(|l| !l.starts_with('#') && l.contains(&format!("name=\"{name}\"")))
                .count()
        };
        // 2 cycle results, 15 buckets + sum + count of duration, 2 actions, people read,
        // failures, a request, checkpoint, a delivery, 17 latency lines, 3 condition values,
        // last sync, poll, people handed over (0).
        assert_eq!(series(&text, "acme"), 49, "{text}");
        assert_eq!(series(&text, "globex"), 49);
        assert!(text.contains("peoplesync_directory_changes_total{namespace=\"team\",name=\"acme\",action=\"create\"} 3"), "{text}");
        assert!(text.contains("peoplesync_sync_cycles_total{namespace=\"team\",name=\"acme\",kind=\"incremental\",result=\"SourceUnavailable\"} 1"), "{text}");
        assert!(
            text.contains(
                "peoplesync_source_people_read_total{namespace=\"team\",name=\"acme\"} 12"
            ),
            "{text}"
        );
        metrics.forget(&ObjectLabels::new("team", "acme"));
        let text = metrics.encode();
        assert_eq!(series(&text, "acme"), 0, "{text}");
        assert_eq!(series(&text, "globex"), 49);
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
