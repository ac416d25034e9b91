//! The PeopleSync controller: a kube-runtime `Controller` on PeopleSync objects (and the Secrets
//! they reference), with a finalizer, status written by one server-side-apply writer only when it
//! changed, Events on condition transitions, per-object backoff, leader election on a Lease and an
//! admin server (`/healthz`, `/readyz`, `/metrics`).
//!
//! The reconcile is a short driver of named steps — dereference → check the source and the
//! directory → the webhook (registration, rotation, health, self-healing) → the sync cycle that is
//! due → status — each with its own error. Beside it run the webhook receiver (its own port) and
//! the job consumer that turns verified deliveries into targeted syncs.

pub mod admin;
mod cleanup;
mod cycles;
pub mod events;
mod jobs;
pub mod leader;
mod observe;
mod probes;
mod process;
mod reconcile;
#[cfg(test)]
mod scenarios;
pub mod status;
pub mod sync;
pub mod transitions;

use crate::crd::conditions;
use crate::secrets;
use crate::webhook;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use self::status::{Blocker, DirectoryOutcome, Observation, SourceOutcome};
use crate::crd::{PeopleSync, PeopleSyncSpec, PeopleSyncStatus};
use crate::metrics::Metrics;
use crate::source::PeopleSource;
use crate::source::any::{AnySource, SourceCredentials};
use crate::source::hollyhr;
use tracing::Instrument as _;

pub use self::process::run;
use self::{cleanup::*, cycles::*, jobs::*, observe::*, probes::*, process::*, reconcile::*};

/// How long after a takeover the old leader may still be handed deliveries (the Service's
/// endpoints follow the leader label with a delay). Each object runs one more incremental cycle
/// this long after leadership began: what the old leader accepted and could not apply (it is
/// fenced) is read then, instead of at the next poll.
pub const HANDOVER_SETTLE: Duration = Duration::from_secs(10);

/// The finalizer PeopleSync puts on every object it manages.
pub const FINALIZER: &str = "peoplesync.dev/cleanup";
/// The field manager of every status write (one writer).
pub const FIELD_MANAGER: &str = "peoplesync-controller";

/// How the controller process is set up (from the CLI).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub admin_listen: SocketAddr,
    /// The namespaces served: PeopleSync objects, and the Secrets they reference, are watched
    /// there only (`--namespace`).
    pub namespaces: crate::watch::Namespaces,
    /// Leader election on a Lease; `None` runs without (a single replica).
    pub leader_election: Option<leader::LeaseConfig>,
    /// Shown as the Event reporter instance.
    pub instance: String,
    /// Where the webhook receiver listens (`None`: no receiver in this process).
    pub receiver_listen: Option<SocketAddr>,
    /// The receiver's timeouts and connection limit.
    pub receiver_limits: crate::http::serve::Limits,
    pub webhook: webhook::WebhookConfig,
    /// Objects reconciled at once (`--max-concurrent-syncs`), and webhook batches run at once.
    pub max_concurrent_syncs: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read a referenced Secret")]
    Secret(#[from] secrets::SecretError),
    #[error("failed to write the status of {name}")]
    WriteStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to run the finalizer")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the object has no namespace")]
    NoNamespace,
    #[error("the spec sets no target")]
    NoTarget,
}

impl Error {
    /// One static category per error: the metric label and log field.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Secret(_) => "SecretReadFailed",
            Error::WriteStatus { .. } => "StatusWriteFailed",
            Error::Finalizer(_) => "FinalizerFailed",
            Error::NoNamespace => "NoNamespace",
            Error::NoTarget => "InvalidSpec",
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    /// The Secrets reconciles read, kept true by the one Secret watch.
    pub secrets: secrets::SecretCache,
    /// Events, folded as client-go folds them (see [`events`]).
    pub events: events::Events,
    pub metrics: Arc<Metrics>,
    pub webhook: webhook::WebhookConfig,
    /// The connected source and directory of each object (by uid), from its last reconcile:
    /// the job consumer reuses them.
    handles: Mutex<HashMap<String, Arc<Handles>>>,
    /// One writer to each object's directory at a time: cycles and targeted syncs take turns.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Objects (by uid) whose next cycle is a full one (an org-unit event asked for it).
    full_requested: Mutex<std::collections::HashSet<String>>,
    /// The last `peoplesync.dev/sync-now` value acted on, per object.
    sync_now_seen: Mutex<HashMap<String, String>>,
    /// When each failing object's current run of failures began (see [`retry_after`]).
    failures: Mutex<HashMap<ObjectRef<PeopleSync>, std::time::Instant>>,
    /// Objects (by uid) that had a full cycle since this process started: the first cycle of
    /// every object after a start is a full one.
    fully_synced: Mutex<std::collections::HashSet<String>>,
    /// When each object's next sync cycle is due (by uid): reconciles in between (health
    /// checks, status echoes) keep the webhook and status but do not poll the source.
    next_cycle: Mutex<HashMap<String, jiff::Timestamp>>,
    /// This process's webhook receiver's book, when it runs one: Personio rotations wait for it
    /// to hold a new token, and Personio's health reads its accepted deliveries.
    book: Option<crate::receiver::SecretBook>,
    /// With leader election, the Lease: every directory write asks it first.
    fence: Option<Arc<dyn crate::directory::fenced::Fence>>,
    /// Set while the job consumer runs (this process leads); the receiver reads it.
    consuming: Arc<std::sync::atomic::AtomicBool>,
    /// With leader election: when this process began leading, and the objects (by uid) whose
    /// follow-up cycle after the handover ran (see [`HANDOVER_SETTLE`]).
    handover: Mutex<(Option<jiff::Timestamp>, std::collections::HashSet<String>)>,
    /// The compact directory index each object's last run left (by uid): targeted syncs
    /// (webhook events) plan against it instead of listing the directory. Every cycle reads the
    /// directory afresh and leaves its own; the applier keeps it true after each write, and any
    /// failure drops it (the next run reads anew).
    indexes: Mutex<HashMap<String, crate::sync::stream::DirectoryIndex>>,
    /// Objects (by uid) that handed a flood of webhook events to a cycle which has not started
    /// yet: that cycle reads what arrives meanwhile, so it is not read person by person.
    handed_over: Mutex<std::collections::HashSet<String>>,
    /// What webhook runs wrote per object (by uid) since its last Event about them.
    webhook_runs: Mutex<HashMap<String, sync::WebhookRuns>>,
    /// Each object's people with a lifecycle transition ahead (by uid).
    schedules: Mutex<HashMap<String, transitions::Schedule>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        instance: &str,
        metrics: Arc<Metrics>,
        webhook: webhook::WebhookConfig,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(instance.to_owned()),
        };
        Self {
            events: events::Events::new(client.clone(), reporter),
            secrets: secrets::SecretCache::new(client.clone()),
            client,
            metrics,
            webhook,
            handles: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            full_requested: Mutex::new(std::collections::HashSet::new()),
            sync_now_seen: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            fully_synced: Mutex::new(std::collections::HashSet::new()),
            next_cycle: Mutex::new(HashMap::new()),
            indexes: Mutex::new(HashMap::new()),
            handed_over: Mutex::new(std::collections::HashSet::new()),
            webhook_runs: Mutex::default(),
            schedules: Mutex::default(),
            book: None,
            fence: None,
            consuming: Arc::default(),
            handover: Mutex::default(),
        }
    }

    /// The same, with the flag the receiver reads to accept deliveries only while this
    /// process's job consumer runs.
    pub fn with_consumer(mut self, consuming: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.consuming = consuming;
        self
    }

    /// The job consumer starts (`true`) or stops.
    fn consuming(&self, running: bool) {
        self.consuming
            .store(running, std::sync::atomic::Ordering::Release);
    }

    /// The same, with this process's receiver's book.
    pub fn with_book(mut self, book: crate::receiver::SecretBook) -> Self {
        self.book = Some(book);
        self
    }

    /// The same, writing to directories only while `fence` allows (the Lease).
    pub fn with_fence(mut self, fence: Arc<dyn crate::directory::fenced::Fence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Leadership begins (at start, or again after the Lease was lost): every object's next
    /// cycle is a full one, run now. Whatever happened while this replica did not lead (another
    /// leader's partial work, deliveries it accepted and could not apply) is covered at once.
    fn leading_begins(&self) {
        *self
            .handover
            .lock()
            .expect("the handover lock is never poisoned") = (
            Some(jiff::Timestamp::now()),
            std::collections::HashSet::new(),
        );
        self.fully_synced
            .lock()
            .expect("the set lock is never poisoned")
            .clear();
        self.next_cycle
            .lock()
            .expect("the map lock is never poisoned")
            .clear();
    }

    /// With leader election, after a takeover: when the object's follow-up cycle is due, if
    /// one still is. A cycle that starts `HANDOVER_SETTLE` after leadership began is the
    /// follow-up; until then the old leader may still be receiving deliveries it cannot apply
    /// (the Service's endpoints move after the leader label), and those changes are read then.
    fn handover_follow_up(
        &self,
        uid: &str,
        cycle_started: jiff::Timestamp,
    ) -> Option<jiff::Timestamp> {
        self.fence.as_ref()?;
        let mut handover = self
            .handover
            .lock()
            .expect("the handover lock is never poisoned");
        let (led_since, done) = &mut *handover;
        let due = follow_up_due(*led_since, done.contains(uid), cycle_started)?;
        if due.is_none() {
            done.insert(uid.to_owned());
        }
        due
    }

    fn had_full_cycle(&self, uid: &str) -> bool {
        self.fully_synced
            .lock()
            .expect("the set lock is never poisoned")
            .contains(uid)
    }

    fn full_cycle_done(&self, uid: &str) {
        self.fully_synced
            .lock()
            .expect("the set lock is never poisoned")
            .insert(uid.to_owned());
    }

    /// The time the next cycle is due, when it is still ahead.
    fn cycle_ahead(&self, uid: &str, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        self.next_cycle
            .lock()
            .expect("the map lock is never poisoned")
            .get(uid)
            .copied()
            .filter(|at| *at > now)
    }

    fn cycle_due_at(&self, uid: &str, at: jiff::Timestamp) {
        self.next_cycle
            .lock()
            .expect("the map lock is never poisoned")
            .insert(uid.to_owned(), at);
    }

    /// The object's kept directory index (taken out: the caller puts back what its run left).
    fn take_index(&self, uid: &str) -> Option<crate::sync::stream::DirectoryIndex> {
        self.indexes
            .lock()
            .expect("the index lock is never poisoned")
            .remove(uid)
    }

    fn keep_index(&self, uid: &str, index: Option<crate::sync::stream::DirectoryIndex>) {
        let mut indexes = self
            .indexes
            .lock()
            .expect("the index lock is never poisoned");
        match index {
            Some(index) => indexes.insert(uid.to_owned(), index),
            None => indexes.remove(uid),
        };
        self.metrics.indexes_kept(indexes.len());
    }

    /// Whether the object handed a flood to a cycle that has not started yet.
    fn handed_over(&self, uid: &str) -> bool {
        self.handed_over
            .lock()
            .expect("the set lock is never poisoned")
            .contains(uid)
    }

    fn hand_over(&self, uid: &str) {
        self.handed_over
            .lock()
            .expect("the set lock is never poisoned")
            .insert(uid.to_owned());
    }

    /// A cycle starts reading: from now on events are read by id again.
    fn cycle_starts(&self, uid: &str) {
        self.handed_over
            .lock()
            .expect("the set lock is never poisoned")
            .remove(uid);
    }

    /// Drop what is kept in memory for a deleted object.
    /// Counts one webhook run of the object towards its next Event.
    fn webhook_ran(&self, uid: &str, id: &str, applied: &crate::sync::Applied) {
        self.webhook_runs
            .lock()
            .expect("the map lock is never poisoned")
            .entry(uid.to_owned())
            .or_default()
            .add(id, applied);
    }

    /// What webhook runs wrote since the object's last Event about them (and starts anew).
    fn take_webhook_runs(&self, uid: &str) -> Option<sync::WebhookRuns> {
        self.webhook_runs
            .lock()
            .expect("the map lock is never poisoned")
            .remove(uid)
            .filter(|runs| !runs.is_empty())
    }

    /// The object's transition schedule, to read or change.
    fn schedule<T>(&self, uid: &str, f: impl FnOnce(&mut transitions::Schedule) -> T) -> T {
        let mut schedules = self
            .schedules
            .lock()
            .expect("the map lock is never poisoned");
        let out = f(schedules.entry(uid.to_owned()).or_default());
        let people = schedules.values().map(transitions::Schedule::len).sum();
        drop(schedules);
        self.metrics.transitions_scheduled(people);
        out
    }

    fn forget(&self, uid: &str) {
        self.cycle_starts(uid);
        self.schedules
            .lock()
            .expect("the map lock is never poisoned")
            .remove(uid);
        self.take_webhook_runs(uid);
        self.keep_handles(uid, None);
        self.keep_index(uid, None);
        self.next_cycle
            .lock()
            .expect("the map lock is never poisoned")
            .remove(uid);
        self.fully_synced
            .lock()
            .expect("the set lock is never poisoned")
            .remove(uid);
        self.locks
            .lock()
            .expect("the lock map is never poisoned")
            .remove(uid);
    }

    fn lock_of(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("the lock map is never poisoned")
            .entry(uid.to_owned())
            .or_default()
            .clone()
    }

    fn handles_of(&self, uid: &str) -> Option<Arc<Handles>> {
        self.handles
            .lock()
            .expect("the handles lock is never poisoned")
            .get(uid)
            .cloned()
    }

    fn keep_handles(&self, uid: &str, handles: Option<Arc<Handles>>) {
        let mut map = self
            .handles
            .lock()
            .expect("the handles lock is never poisoned");
        match handles {
            Some(handles) => map.insert(uid.to_owned(), handles),
            None => map.remove(uid),
        };
    }

    fn request_full(&self, uid: &str) {
        self.full_requested
            .lock()
            .expect("the set lock is never poisoned")
            .insert(uid.to_owned());
    }

    /// Whether `value` of the sync-now annotation is new for the object (and remembers it).
    fn sync_now_requested(&self, uid: &str, value: &str) -> bool {
        let mut seen = self
            .sync_now_seen
            .lock()
            .expect("the map lock is never poisoned");
        if seen.get(uid).map(String::as_str) == Some(value) {
            return false;
        }
        seen.insert(uid.to_owned(), value.to_owned());
        true
    }

    fn take_full_request(&self, uid: &str) -> bool {
        self.full_requested
            .lock()
            .expect("the set lock is never poisoned")
            .remove(uid)
    }

    fn backoff(&self, object: &PeopleSync) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .expect("backoff lock is never poisoned");
        let since = failures
            .entry(ObjectRef::from_obj(object))
            .or_insert_with(std::time::Instant::now);
        retry_after(since.elapsed())
    }

    /// The objects whose reconciles are failing now.
    fn failing(&self) -> Vec<ObjectRef<PeopleSync>> {
        self.failures
            .lock()
            .expect("backoff lock is never poisoned")
            .keys()
            .cloned()
            .collect()
    }

    fn succeeded(&self, object: &PeopleSync) {
        self.failures
            .lock()
            .expect("backoff lock is never poisoned")
            .remove(&ObjectRef::from_obj(object));
    }
}

/// The follow-up cycle after a takeover: `None` when there is none to run (no takeover, or it
/// ran), `Some(None)` when the cycle that started at `cycle_started` is it, `Some(Some(at))`
/// when it is due at `at`.
fn follow_up_due(
    led_since: Option<jiff::Timestamp>,
    done: bool,
    cycle_started: jiff::Timestamp,
) -> Option<Option<jiff::Timestamp>> {
    let due = led_since? + jiff::SignedDuration::try_from(HANDOVER_SETTLE).ok()?;
    if done {
        return None;
    }
    Some((cycle_started < due).then_some(due))
}

/// How long a failing object waits before its next try: as long as it has been failing, at
/// least 5 s and at most 5 min. Tries that fail after waiting double the wait (5, 5, 10, 20 s …),
/// as exponential backoff does; but many failures in a short outage (every webhook delivery
/// wakes a reconcile that fails) do not push the retry minutes past the outage's end, as
/// counting them did (the control-plane trial found a retry 80 s after a 2 s outage).
pub fn retry_after(failing_for: Duration) -> Duration {
    failing_for.clamp(Duration::from_secs(5), Duration::from_secs(300))
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to listen on {addr} for the admin server")]
    AdminListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to listen on {addr} for the webhook receiver")]
    ReceiverListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error("failed to build the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// A Kubernetes client that counts its requests in `peoplesync_kube_requests_total`.
pub fn connect(config: kube::Config, metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    let count =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            metrics.kube_request(request.method(), request.uri());
            request
        });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&count)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_object_waits_as_long_as_it_has_been_failing_within_5_s_and_5_min() {
        let s = Duration::from_secs;
        for (failing_for, wait) in [
            (s(0), s(5)),
            (s(2), s(5)),
            (s(5), s(5)),
            (s(10), s(10)),
            (s(40), s(40)),
            (s(299), s(299)),
            (s(3_600), s(300)),
        ] {
            assert_eq!(retry_after(failing_for), wait, "{failing_for:?}");
        }
        // Tries that each fail after their wait double it, like exponential backoff.
        let mut failing_for = Duration::ZERO;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let wait = retry_after(failing_for);
            waits.push(wait.as_secs());
            failing_for += wait;
        }
        assert_eq!(waits, [5, 5, 10, 20, 40, 80]);
    }

    #[test]
    fn after_a_takeover_each_object_runs_one_follow_up_cycle_once_the_handover_settled() {
        let at = |s: i64| jiff::Timestamp::from_second(s).expect("a time");
        let settle = HANDOVER_SETTLE.as_secs() as i64;
        // Not leading yet (or no leader election): nothing.
        assert_eq!(follow_up_due(None, false, at(100)), None);
        // The takeover cycle asks for a follow-up HANDOVER_SETTLE after leadership began.
        assert_eq!(
            follow_up_due(Some(at(100)), false, at(100)),
            Some(Some(at(100 + settle)))
        );
        // A cycle starting then is the follow-up; after it, nothing more.
        assert_eq!(
            follow_up_due(Some(at(100)), false, at(100 + settle)),
            Some(None)
        );
        assert_eq!(
            follow_up_due(Some(at(100)), true, at(100 + settle + 1)),
            None
        );
    }
}
