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
pub mod conditions;
pub mod leader;
#[cfg(test)]
mod scenarios;
pub mod secrets;
pub mod signing;
pub mod status;
pub mod sync;
pub mod webhook;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
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

/// The finalizer PeopleSync puts on every object it manages.
pub const FINALIZER: &str = "peoplesync.dev/cleanup";
/// The field manager of every status write (one writer).
pub const FIELD_MANAGER: &str = "peoplesync-controller";

/// How the controller process is set up (from the CLI).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub admin_listen: SocketAddr,
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
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
    pub recorder: Recorder,
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
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<PeopleSync>, u32>>,
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
    /// The compact directory index each object's last run left (by uid): targeted syncs
    /// (webhook events) plan against it instead of listing the directory. Every cycle reads the
    /// directory afresh and leaves its own; the applier keeps it true after each write, and any
    /// failure drops it (the next run reads anew).
    indexes: Mutex<HashMap<String, crate::sync::stream::DirectoryIndex>>,
    /// Objects (by uid) that handed a flood of webhook events to a cycle which has not started
    /// yet: that cycle reads what arrives meanwhile, so it is not read person by person.
    handed_over: Mutex<std::collections::HashSet<String>>,
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
            recorder: Recorder::new(client.clone(), reporter),
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
            book: None,
            fence: None,
        }
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
        self.fully_synced
            .lock()
            .expect("the set lock is never poisoned")
            .clear();
        self.next_cycle
            .lock()
            .expect("the map lock is never poisoned")
            .clear();
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
    fn forget(&self, uid: &str) {
        self.cycle_starts(uid);
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
        let count = failures.entry(ObjectRef::from_obj(object)).or_insert(0);
        *count = count.saturating_add(1);
        // 5 s, 10 s, 20 s … capped at 5 min.
        Duration::from_secs(5u64.saturating_mul(1 << (*count - 1).min(6)))
            .min(Duration::from_secs(300))
    }

    fn succeeded(&self, object: &PeopleSync) {
        self.failures
            .lock()
            .expect("backoff lock is never poisoned")
            .remove(&ObjectRef::from_obj(object));
    }
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

/// Background tasks that are aborted together when dropped.
#[derive(Default)]
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Tasks {
    fn spawn<F>(&mut self, task: F)
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.push(tokio::spawn(task).abort_handle());
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Runs the controller until SIGTERM/Ctrl-C (and, with leader election, only while leading).
pub async fn run(kube_config: kube::Config, config: Config) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let client = connect(kube_config, metrics.clone()).map_err(RunError::Client)?;
    let readiness = admin::Readiness::default();
    let listener =
        crate::http::serve::bind(config.admin_listen).map_err(|source| RunError::AdminListen {
            addr: config.admin_listen,
            source,
        })?;
    // Every task started here stops when `run` returns or is dropped (a test aborting it frees
    // the receiver's port for the next start).
    let mut tasks = Tasks::default();
    tasks.spawn(crate::http::serve::serve(
        listener,
        admin::router(metrics.clone(), readiness.clone()),
        crate::http::serve::Limits::default(),
    ));
    // The receiver: verified deliveries become jobs on a bounded queue; the Secret watch keeps
    // its signing secrets. It answers 503 (HollyHR retries) while no consumer runs.
    let book = crate::receiver::SecretBook::default();
    let (jobs_tx, jobs_rx) = tokio::sync::mpsc::channel(JOB_QUEUE);
    let receiver_book = config.receiver_listen.map(|_| book.clone());
    match config.receiver_listen {
        Some(addr) => {
            let listener = crate::http::serve::bind(addr)
                .map_err(|source| RunError::ReceiverListen { addr, source })?;
            let observer = metrics.clone();
            let receiver = Arc::new(crate::receiver::Receiver::new(
                book.clone(),
                jobs_tx,
                move |outcome| observer.webhook_delivery(outcome),
            ));
            info!(%addr, "webhook receiver listening");
            // Every delivery's answer time (the health probe left out).
            let timer = metrics.clone();
            let app = crate::receiver::router(receiver).layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let timer = timer.clone();
                    async move {
                        let delivery = request.uri().path() != crate::receiver::HEALTH_PATH;
                        let started = std::time::Instant::now();
                        let response = next.run(request).await;
                        if delivery {
                            timer.webhook_answered(started.elapsed());
                        }
                        response
                    }
                },
            ));
            tasks.spawn(crate::http::serve::serve(
                listener,
                app,
                config.receiver_limits,
            ));
        }
        None => drop(jobs_tx),
    }
    let jobs = Arc::new(tokio::sync::Mutex::new(jobs_rx));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tasks.spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        let _ = shutdown_tx.send(true);
    });
    let mut context = Context::new(
        client.clone(),
        &config.instance,
        metrics,
        config.webhook.clone(),
    );
    if let Some(book) = receiver_book {
        context = context.with_book(book);
    }
    // With leader election every directory write asks the Lease first (fencing).
    if let Some(lease) = &config.leader_election {
        context = context.with_fence(Arc::new(leader::LeaseFence::new(client.clone(), lease)));
    }
    // The one Secret watch: the cache reconciles read, the receiver's signing book, and the
    // reconciles of objects whose Secret changed.
    let (changed_tx, changed_rx) = tokio::sync::mpsc::channel(SECRET_CHANGES);
    tasks.spawn(secrets::watch(
        context.secrets.clone(),
        config.namespace.clone(),
        book,
        changed_tx,
    ));
    let changed = Arc::new(tokio::sync::Mutex::new(changed_rx));
    let context = Arc::new(context);
    let result = match &config.leader_election {
        None => {
            readiness.set(true);
            let mut rx = shutdown_rx;
            let stop = async move {
                let _ = rx.wait_for(|stopped| *stopped).await;
            };
            run_controller(client, &config, context, jobs, changed, stop).await;
            Ok(())
        }
        Some(lease) => {
            leader::run_while_leading(client.clone(), lease, readiness, shutdown_rx, |stop| {
                run_controller(
                    client.clone(),
                    &config,
                    context.clone(),
                    jobs.clone(),
                    changed.clone(),
                    stop,
                )
            })
            .await
            .map_err(RunError::from)
        }
    };
    drop(tasks);
    result
}

/// Changed Secrets waiting for the reconciles of the objects that reference them.
const SECRET_CHANGES: usize = 1024;

/// Jobs the receiver may queue before it answers 503.
const JOB_QUEUE: usize = 10_000;
/// Jobs taken in one batch: one directory read serves them all.
const JOB_BATCH: usize = 200;
/// The most people a targeted sync reads by id; when more wait for one object, an incremental
/// cycle runs instead.
const TARGETED_MAX: usize = JOB_BATCH;

async fn run_controller(
    client: kube::Client,
    config: &Config,
    context: Arc<Context>,
    jobs: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<crate::receiver::Job>>>,
    changed: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(String, String)>>>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    context.leading_begins();
    let objects: Api<PeopleSync> = match &config.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    // Status writes (every cycle moves lastSyncTime) must not wake the object again: only spec,
    // annotation (approvals), finalizer and deletion changes do; cycles run on requeue.
    let (reader, writer) = kube::runtime::reflector::store();
    let triggers = watcher(objects, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
    let (refresh_tx, refresh_rx) = futures::channel::mpsc::channel(JOB_QUEUE);
    let mut refresh = refresh_tx.clone();
    let controller = Controller::for_stream(triggers, reader)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(config.max_concurrent_syncs),
        )
        .reconcile_on(refresh_rx);
    let store = controller.store();
    // The job consumer runs while this process leads (it is the directory's other writer).
    let mut consumer = Tasks::default();
    consumer.spawn(consume(
        jobs,
        controller.store(),
        context.clone(),
        refresh_tx,
        usize::from(config.max_concurrent_syncs),
    ));
    // A Secret that a PeopleSync references changed (e.g. it was created after the object):
    // reconcile those objects at once instead of waiting for a requeue.
    consumer.spawn(async move {
        let mut changed = changed.lock().await;
        while let Some((namespace, name)) = changed.recv().await {
            for object in referencing(&store, &namespace, &name) {
                let _ = refresh.try_send(object);
            }
        }
    });
    let metrics = context.metrics.clone();
    metrics.leading(true);
    controller
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "reconcile loop error");
            }
        })
        .await;
    metrics.leading(false);
    drop(consumer);
}

/// Turns verified deliveries into targeted syncs: person events read and apply those people
/// (batched per object, one run per batch against the object's kept index); org-unit events ask
/// for a full cycle now. Each object's batches run on a task of their own, in order, at most
/// `parallel` objects at a time: an object whose directory is slow, or whose cycle holds its
/// lock, never delays another object's webhooks. A job for an object that is gone, suspended,
/// in dry run or not connected yet is dropped: the next cycle covers its change (it moved
/// `updated_at`).
async fn consume(
    jobs: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<crate::receiver::Job>>>,
    store: Store<PeopleSync>,
    ctx: Arc<Context>,
    refresh: futures::channel::mpsc::Sender<ObjectRef<PeopleSync>>,
    parallel: usize,
) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut jobs = jobs.lock().await;
    let mut batch = Vec::with_capacity(JOB_BATCH);
    let waiting: Arc<Mutex<HashMap<ObjectRef<PeopleSync>, BTreeSet<String>>>> = Arc::default();
    let turns = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    // Aborted with this task (leadership lost, shutdown).
    let mut workers = tokio::task::JoinSet::new();
    while jobs.recv_many(&mut batch, JOB_BATCH).await > 0 {
        while workers.try_join_next().is_some() {}
        let mut by_object: BTreeMap<(String, String), (BTreeSet<String>, bool)> = BTreeMap::new();
        for job in batch.drain(..) {
            let entry = by_object.entry((job.namespace, job.name)).or_default();
            match job.subject {
                crate::receiver::Subject::Person(id) => {
                    entry.0.insert(id);
                }
                crate::receiver::Subject::OrgUnit(_) => entry.1 = true,
                crate::receiver::Subject::Nothing => {}
            }
        }
        for ((namespace, name), (people, org_units)) in by_object {
            let reference = ObjectRef::<PeopleSync>::new(&name).within(&namespace);
            let Some(object) = store.get(&reference) else {
                continue;
            };
            if org_units {
                ctx.request_full(&object.uid().unwrap_or_default());
                let _ = refresh.clone().try_send(reference.clone());
            }
            if people.is_empty() || object.spec.suspend {
                continue;
            }
            let start = {
                let mut waiting = waiting.lock().expect("the queue lock is never poisoned");
                let start = !waiting.contains_key(&reference);
                waiting.entry(reference.clone()).or_default().extend(people);
                start
            };
            if start {
                let worker = work_off(
                    reference,
                    store.clone(),
                    ctx.clone(),
                    refresh.clone(),
                    waiting.clone(),
                    turns.clone(),
                );
                workers.spawn(worker);
            }
        }
    }
}

/// Runs one object's waiting batches until none waits (one at a time, each with a turn).
async fn work_off(
    reference: ObjectRef<PeopleSync>,
    store: Store<PeopleSync>,
    ctx: Arc<Context>,
    mut refresh: futures::channel::mpsc::Sender<ObjectRef<PeopleSync>>,
    waiting: Arc<Mutex<HashMap<ObjectRef<PeopleSync>, std::collections::BTreeSet<String>>>>,
    turns: Arc<tokio::sync::Semaphore>,
) {
    loop {
        let ids: Vec<String> = {
            let mut waiting = waiting.lock().expect("the queue lock is never poisoned");
            match waiting.get_mut(&reference) {
                Some(ids) if !ids.is_empty() => std::mem::take(ids).into_iter().collect(),
                _ => {
                    waiting.remove(&reference);
                    return;
                }
            }
        };
        let Some(object) = store.get(&reference) else {
            continue;
        };
        if object.spec.suspend {
            continue;
        }
        let uid = object.uid().unwrap_or_default();
        if ctx.handed_over(&uid) {
            // A handed-over cycle that has not started yet reads these too.
            ctx.metrics.handed_over(ids.len());
            continue;
        }
        let paced = ctx
            .handles_of(&uid)
            .is_some_and(|handles| handles.source.person_reads_paced());
        if ids.len() > TARGETED_MAX || paced {
            // Read one by one, this many people cost more HollyHR requests (and rate-limit
            // budget) than one incremental cycle, which reads the changes in pages; ids
            // HollyHR does not know cost it nothing. The same when reads by id already wait
            // for the rate limit. Until that cycle starts, further events for the object wait
            // for it instead of being read one by one.
            ctx.hand_over(&uid);
            ctx.cycle_due_at(&uid, jiff::Timestamp::now());
            ctx.metrics.handed_over(ids.len());
            info!(
                name = %object.name_any(),
                people = ids.len(),
                paced,
                "more people changed at once than a targeted sync reads one by one (or reads by id wait for the rate limit); an incremental cycle runs now"
            );
            let _ = refresh.try_send(reference.clone());
            continue;
        }
        // The object's own turn first (its cycle may hold it for long), then one of the shared
        // turns: an object waiting for its own cycle holds no turn another object could use.
        let lock = ctx.lock_of(&uid);
        let _mine = lock.lock().await;
        let Ok(_turn) = turns.acquire().await else {
            return;
        };
        // As it is now: a cycle may have moved its status while this waited.
        let Some(object) = store.get(&reference) else {
            continue;
        };
        targeted(&object, &ctx, &ids, &mut refresh, reference.clone()).await;
    }
}

async fn targeted(
    object: &PeopleSync,
    ctx: &Context,
    ids: &[String],
    refresh: &mut futures::channel::mpsc::Sender<ObjectRef<PeopleSync>>,
    reference: ObjectRef<PeopleSync>,
) {
    use crate::sync::engine;
    let uid = object.uid().unwrap_or_default();
    let Some(handles) = ctx.handles_of(&uid) else {
        // Not connected yet: a reconcile connects and its cycle covers the change.
        let _ = refresh.try_send(reference);
        return;
    };
    let Ok(settings) = crate::sync::spec::settings(&object.spec) else {
        return;
    };
    if settings.dry_run {
        return;
    }
    // The caller holds the object's lock (one writer to its directory at a time).
    let state = sync::state_of(object.status.as_ref());
    let started = std::time::Instant::now();
    let mut index = ctx.take_index(&uid);
    let span = tracing::info_span!(
        "webhook_run",
        namespace = %object.namespace().unwrap_or_default(),
        name = %object.name_any(),
        cycle = %cycle_id()
    );
    let result = engine::run_people(
        &handles.source,
        &handles.directory,
        &settings,
        &state,
        ids,
        &mut index,
        jiff::Timestamp::now(),
    )
    .instrument(span)
    .await;
    ctx.keep_index(&uid, index);
    match result {
        Ok(report) => {
            ctx.metrics.cycle(&report);
            info!(
                name = %object.name_any(),
                people = ids.len(),
                changes = report.plan.counts().values().sum::<usize>(),
                failures = report.failures().len(),
                took_ms = started.elapsed().as_millis() as u64,
                source_us = report.timings.source.as_micros() as u64,
                directory_us = report.timings.directory.as_micros() as u64,
                plan_us = report.timings.plan.as_micros() as u64,
                apply_us = report.timings.apply.as_micros() as u64,
                "targeted sync from webhook events"
            );
        }
        Err(error) => {
            ctx.metrics
                .cycle_failed(engine::CycleKind::Incremental, error.detail());
            warn!(name = %object.name_any(), error = %crate::cli::report(&error), "targeted sync failed; an incremental cycle runs now instead");
            // The changes moved the people's `updated_at`: an incremental cycle reads them
            // again. It runs now, not at the next poll (retried with backoff while the directory
            // or the fence still refuses); the control-plane trials lost a change before this.
            ctx.cycle_due_at(&uid, jiff::Timestamp::now());
            let _ = refresh.try_send(reference);
        }
    }
}

/// What in an object should start a reconcile: its generation (spec), annotations (approvals),
/// finalizers and deletion; not its status.
fn trigger_hash(object: &PeopleSync) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = object.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

/// The PeopleSync objects in the Secret's namespace that reference it.
fn referencing(
    store: &Store<PeopleSync>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<PeopleSync>> {
    store
        .state()
        .iter()
        .filter(|ps| ps.namespace().as_deref() == Some(namespace))
        .filter(|ps| secret_names(&ps.spec).contains(&name))
        .map(|ps| ObjectRef::from_obj(ps.as_ref()))
        .collect()
}

fn secret_names(spec: &PeopleSyncSpec) -> Vec<&str> {
    let mut names = Vec::new();
    if let Some(h) = &spec.source.hollyhr {
        names.push(h.api_key_secret_ref.name.as_str());
    }
    if let Some(p) = &spec.source.personio {
        names.push(p.credentials_secret_ref.name.as_str());
    }
    if let Some(ldap) = &spec.target.ldap {
        names.push(ldap.bind_password_secret_ref.name.as_str());
        if let Some(ca) = &ldap.ca_secret_ref {
            names.push(ca.name.as_str());
        }
    }
    if let Some(scim) = &spec.target.scim {
        names.push(scim.token_secret_ref.name.as_str());
    }
    names
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn reconcile(object: Arc<PeopleSync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = object.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<PeopleSync> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => apply(&object, &ctx).await,
            Finalizer::Cleanup(object) => cleanup(&object, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)));
    ctx.metrics.reconciled(
        result.as_ref().err().map(Error::category),
        started.elapsed(),
    );
    result
}

fn error_policy(object: Arc<PeopleSync>, error: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff(&object);
    warn!(
        name = %object.name_any(),
        namespace = object.namespace().unwrap_or_default(),
        category = error.category(),
        error = %crate::cli::report(error),
        retry_in_s = wait.as_secs(),
        "reconcile failed"
    );
    Action::requeue(wait)
}

/// The reconcile of a live object: observe, keep the webhook, run the sync cycle that is due,
/// compute status, write it if it changed, requeue for the next cycle or health check.
async fn apply(object: &PeopleSync, ctx: &Context) -> Result<Action, Error> {
    let namespace = object.namespace().ok_or(Error::NoNamespace)?;
    let uid = object.uid().unwrap_or_default();
    let (mut observed, source, handles) = observe(object, &namespace, ctx).await?;
    ctx.keep_handles(&uid, handles.clone());
    let spec = &object.spec;
    let poll = spec.poll_interval().unwrap_or(Duration::from_secs(300));
    let full_interval = spec
        .full_resync_interval()
        .unwrap_or(Duration::from_secs(6 * 3600));
    let mut notes = Vec::new();
    match source.as_ref().map(|s| (s, s.hollyhr())) {
        Some((_, Some(hollyhr))) => {
            observed.webhook = webhook::reconcile(
                object,
                &ctx.secrets,
                hollyhr,
                &ctx.webhook,
                jiff::Timestamp::now(),
            )
            .await;
            notes = webhook_notes(&observed.webhook);
        }
        Some((source, None)) => match source.personio() {
            Some(personio) => {
                observed.webhook = webhook::personio::reconcile(
                    object,
                    &ctx.secrets,
                    personio,
                    &ctx.webhook,
                    ctx.book.as_ref(),
                    jiff::Timestamp::now(),
                )
                .await;
                notes = webhook_notes(&observed.webhook);
            }
            None => observed.webhook = webhook::WebhookOutcome::Off,
        },
        None => {}
    }
    if let Some(handles) = handles {
        let lock = ctx.lock_of(&uid);
        let _turn = lock.lock().await;
        run_sync(object, ctx, &handles, &mut observed, poll, full_interval).await;
    }
    let now = jiff::Timestamp::now();
    let (next, transitions) = status::compute(
        spec,
        object.status.as_ref(),
        &observed,
        object.meta().generation,
        now,
    );
    write_status(object, &namespace, &next, ctx).await?;
    for transition in &transitions {
        publish(ctx, object, transition).await;
    }
    for (reason, note) in notes {
        note_event(ctx, object, EventType::Normal, reason, note).await;
    }
    if let sync::SyncOutcome::Completed(completed) = &observed.sync
        && completed.changed()
    {
        publish_cycle(ctx, object, completed).await;
    }
    // A failed cycle keeps its count for the backoff (see run_sync).
    if !matches!(observed.sync, sync::SyncOutcome::Failed { .. }) {
        ctx.succeeded(object);
    }
    let mut wait = match observed.next_sync {
        Some(at) => Duration::try_from(at.duration_since(jiff::Timestamp::now()))
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1)),
        // A blocked object is also woken by its Secret changing.
        None if observed.blocker.is_some() => poll.min(Duration::from_secs(60)),
        None => poll,
    };
    // The webhook's health is read once per interval, and a rotation is due on time.
    if let Some(next_rotation) = observed.webhook.next_rotation() {
        wait = wait.min(ctx.webhook.health_interval);
        if let Some(at) = next_rotation {
            let until = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
            wait = wait.min(until.max(Duration::from_secs(1)));
        }
    } else if matches!(observed.webhook, webhook::WebhookOutcome::Failed { .. }) {
        wait = wait.min(Duration::from_secs(30));
    }
    Ok(Action::requeue(wait))
}

/// Events for what the webhook step did (transitions get their own Events).
fn webhook_notes(outcome: &webhook::WebhookOutcome) -> Vec<(&'static str, String)> {
    if let webhook::WebhookOutcome::Personio(r) = outcome {
        return personio_notes(r);
    }
    let webhook::WebhookOutcome::Registered(r) = outcome else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if r.created {
        notes.push((
            "WebhookCreated",
            format!(
                "registered HollyHR webhook {} for {}",
                r.webhook.id, r.webhook.url
            ),
        ));
    }
    if let Some(cause) = r.rotated {
        notes.push((
            "SecretRotated",
            format!(
                "rotated the signing secret of webhook {} ({}); the previous one stays valid for the overlap",
                r.webhook.id,
                cause.as_str()
            ),
        ));
    }
    if let webhook::RemediationOutcome::ReEnabled { redelivered } = r.remediation {
        notes.push((
            "WebhookReEnabled",
            format!(
                "the receiver answers again: re-enabled webhook {} and redelivered {redelivered} failed deliveries",
                r.webhook.id
            ),
        ));
    }
    notes
}

/// Events for what the Personio webhook step did.
fn personio_notes(r: &webhook::personio::Registered) -> Vec<(&'static str, String)> {
    let mut notes = Vec::new();
    if r.created {
        notes.push((
            "WebhookCreated",
            format!(
                "registered and enabled Personio webhook {} for {}",
                r.webhook.id, r.webhook.url
            ),
        ));
    }
    if let Some(cause) = r.rotated {
        notes.push((
            "SecretRotated",
            format!(
                "set a new token on Personio webhook {} ({}); the previous one is accepted until {}",
                r.webhook.id,
                cause.as_str(),
                r.previous_expires
                    .map_or_else(|| "now".to_owned(), |t| t.to_string())
            ),
        ));
    }
    if let webhook::RemediationOutcome::ReEnabled { .. } = r.remediation {
        notes.push((
            "WebhookReEnabled",
            format!(
                "the receiver answers again: re-enabled Personio webhook {}",
                r.webhook.id
            ),
        ));
    }
    notes
}

async fn note_event(
    ctx: &Context,
    object: &PeopleSync,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Webhook".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        warn!(%error, "failed to publish an Event");
    }
}

/// Runs the cycle that is due and records its outcome in `observed`.
async fn run_sync(
    object: &PeopleSync,
    ctx: &Context,
    handles: &Handles,
    observed: &mut Observation,
    poll: Duration,
    full_interval: Duration,
) {
    use crate::sync::engine;
    let uid = object.uid().unwrap_or_default();
    let state = sync::state_of(object.status.as_ref());
    let approved = object
        .annotations()
        .get(crate::crd::APPROVE_DEPROVISION)
        .map(String::as_str);
    // A new approval re-runs the full cycle whose plan it approves.
    let new_approval = approved.is_some_and(|hash| state.approval_used.as_deref() != Some(hash));
    // `kubectl peoplesync sync-now` sets a new value: a full cycle runs now.
    let sync_now = object
        .annotations()
        .get(crate::crd::SYNC_NOW)
        .is_some_and(|value| ctx.sync_now_requested(&uid, value));
    let spec_changed = object.status.as_ref().and_then(|s| s.observed_generation)
        != object.meta().generation
        || !ctx.had_full_cycle(&uid)
        || new_approval
        || ctx.take_full_request(&uid)
        || sync_now;
    let started = jiff::Timestamp::now();
    if !spec_changed && let Some(at) = ctx.cycle_ahead(&uid, started) {
        // Not due yet: this reconcile is for the webhook's health or a status echo.
        observed.next_sync = Some(at);
        return;
    }
    let kind = engine::due(&state, full_interval, started, spec_changed);
    // This cycle reads every change up to now, those a flood handed over included.
    ctx.cycle_starts(&uid);
    let outcome = match crate::sync::spec::settings(&object.spec) {
        Err(error) => sync::SyncOutcome::Failed {
            reason: error.reason(),
            message: crate::cli::report(&error),
        },
        Ok(settings) => {
            // The cycle reads the directory afresh and leaves its index for targeted syncs.
            let mut index = ctx.take_index(&uid);
            let cycle = cycle_id();
            // Every line the cycle logs (its audit lines included) names the object and cycle.
            let span = tracing::info_span!(
                "cycle",
                namespace = %object.namespace().unwrap_or_default(),
                name = %object.name_any(),
                cycle = %cycle,
                kind = kind.as_str()
            );
            let result = engine::run_cycle_indexed(
                &handles.source,
                &handles.directory,
                &settings,
                &state,
                kind,
                approved,
                started,
                &mut index,
            )
            .instrument(span)
            .await;
            ctx.keep_index(&uid, index);
            match result {
                Ok(report) => {
                    ctx.metrics.cycle(&report);
                    if let Some(checkpoint) = report.state.checkpoint {
                        let age = jiff::Timestamp::now().duration_since(checkpoint).as_secs();
                        ctx.metrics.checkpoint_age(
                            &object.namespace().unwrap_or_default(),
                            &object.name_any(),
                            age,
                        );
                    }
                    if kind == engine::CycleKind::Full && !settings.dry_run {
                        ctx.full_cycle_done(&uid);
                    }
                    info!(
                        name = %object.name_any(),
                        kind = kind.as_str(),
                        people = report.people_read,
                        failures = report.failures().len(),
                        took_ms = report.duration.as_millis() as u64,
                        source_ms = report.timings.source.as_millis() as u64,
                        directory_ms = report.timings.directory.as_millis() as u64,
                        plan_ms = report.timings.plan.as_millis() as u64,
                        apply_ms = report.timings.apply.as_millis() as u64,
                        "sync cycle finished"
                    );
                    let mut completed =
                        sync::Completed::of(&report, settings.dry_run, jiff::Timestamp::now());
                    completed.cycle = cycle;
                    sync::SyncOutcome::Completed(Box::new(completed))
                }
                Err(error) => {
                    ctx.metrics.cycle_failed(kind, error.detail());
                    warn!(name = %object.name_any(), kind = kind.as_str(), error = %crate::cli::report(&error), "sync cycle failed");
                    sync::SyncOutcome::Failed {
                        reason: error.reason(),
                        message: format!(
                            "the {} cycle failed ({}): {}; the checkpoint did not move",
                            kind.as_str(),
                            error.detail(),
                            crate::cli::report(&error)
                        ),
                    }
                }
            }
        }
    };
    let next_state = match &outcome {
        sync::SyncOutcome::Completed(completed) if !completed.dry_run => completed.state.clone(),
        _ => state,
    };
    observed.sync = outcome;
    let mut next = engine::next_run(&next_state, poll, full_interval, jiff::Timestamp::now());
    if matches!(observed.sync, sync::SyncOutcome::Failed { .. }) {
        // Retried with the object's backoff (5 s, doubling), never later than the next poll:
        // the directory or the API server may be back in seconds.
        let backoff = ctx.backoff(object).min(poll);
        next = next.min(
            jiff::Timestamp::now() + jiff::SignedDuration::try_from(backoff).unwrap_or_default(),
        );
    }
    if ctx.handed_over(&uid) {
        // A flood was handed over while this cycle ran, after it had read the changes: the
        // events wait for a cycle, so the next one runs now, not a poll interval later.
        next = jiff::Timestamp::now();
    }
    ctx.cycle_due_at(&uid, next);
    observed.next_sync = Some(next);
}

/// A cycle's id: 12 hex digits, in its log span, its audit lines and its Event.
fn cycle_id() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16)
}

/// An Event for a cycle that changed the directory (counts only).
async fn publish_cycle(ctx: &Context, object: &PeopleSync, completed: &sync::Completed) {
    let event = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some(format!(
            "{} cycle {}: {}",
            completed.kind.as_str(),
            completed.cycle,
            completed.describe_counts()
        )),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        warn!(%error, "failed to publish an Event");
    }
}

/// Deletion: disable the object's HollyHR webhook, or delete its Personio webhook (404 counts
/// as done), and forget its handles.
/// A broken spec or a missing or rejected API key never blocks deletion (an Event says what was
/// left behind); a transient HollyHR error is retried with backoff.
async fn cleanup(object: &PeopleSync, ctx: &Context) -> Result<Action, Error> {
    let uid = object.uid().unwrap_or_default();
    ctx.forget(&uid);
    let namespace = object.namespace().ok_or(Error::NoNamespace)?;
    let name = object.name_any();
    ctx.metrics.forget(&namespace, &name);
    let registered = object
        .status
        .as_ref()
        .and_then(|s| s.webhook.as_ref())
        .and_then(|w| w.id.as_ref())
        .is_some();
    if let (true, Some(hollyhr)) = (registered, &object.spec.source.hollyhr) {
        let left_behind = |why: String| {
            format!(
                "webhook peoplesync-{namespace}-{name} was left active in HollyHR: {why}; disable it there"
            )
        };
        let outcome = match secrets::read_key(&ctx.secrets, &namespace, &hollyhr.api_key_secret_ref)
            .await
        {
            Err(error) if error.blocker().is_some() => Err(left_behind(error.to_string())),
            Err(error) => return Err(error.into()),
            Ok(key) => match hollyhr::ClientConfig::new(&hollyhr.base_url, key)
                .and_then(hollyhr::HollyHrClient::new)
            {
                Err(error) => Err(left_behind(error.to_string())),
                Ok(client) => match webhook::disable_all(&client, &namespace, &name).await {
                    Ok(count) => Ok(count),
                    Err(error)
                        if matches!(
                            error.category(),
                            hollyhr::ErrorReason::RateLimited
                                | hollyhr::ErrorReason::ServerError
                                | hollyhr::ErrorReason::Timeout
                                | hollyhr::ErrorReason::Network
                        ) =>
                    {
                        warn!(%namespace, %name, error = %error, "disabling the webhook failed; retrying");
                        return Ok(Action::requeue(ctx.backoff(object)));
                    }
                    Err(error) => Err(left_behind(crate::cli::report(&error))),
                },
            },
        };
        match outcome {
            Ok(count) => info!(%namespace, %name, disabled = count, "disabled the HollyHR webhook"),
            Err(message) => {
                warn!(%namespace, %name, %message, "webhook not disabled");
                note_event(
                    ctx,
                    object,
                    EventType::Warning,
                    "WebhookLeftActive",
                    message,
                )
                .await;
            }
        }
    }
    if let (true, Some(_)) = (registered, &object.spec.source.personio)
        && let Some(action) = cleanup_personio(object, ctx, &namespace, &name).await?
    {
        return Ok(action);
    }
    info!(%name, "PeopleSync deleted; finalizer released");
    Ok(Action::await_change())
}

/// Deletion of a Personio source's webhook(s); `Some` to retry later (a transient error). A
/// missing or refused credential, or a broken spec, leaves the webhook behind with a Warning
/// Event instead of blocking deletion.
async fn cleanup_personio(
    object: &PeopleSync,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Action>, Error> {
    let left_behind = |why: String| {
        format!(
            "the Personio webhook of {namespace}/{name} (description \"{}\") was left in Personio: {why}; delete it there",
            crate::webhook::personio::marker(namespace, name)
        )
    };
    let outcome = match source_credentials(&object.spec, namespace, ctx).await {
        Err(error) if error.blocker().is_some() => Err(left_behind(error.to_string())),
        Err(error) => return Err(error.into()),
        Ok(None) => Err(left_behind("the spec sets no single source".into())),
        Ok(Some(credentials)) => match AnySource::connect(&object.spec.source, credentials, None) {
            Err(error) => Err(left_behind(crate::cli::report(&error))),
            Ok(source) => match source.personio() {
                None => Err(left_behind("the source is not Personio".into())),
                Some(client) => {
                    let url = crate::webhook::personio::desired(&object.spec, namespace, name)
                        .map(|d| d.url);
                    let id = object
                        .status
                        .as_ref()
                        .and_then(|s| s.webhook.as_ref())
                        .and_then(|w| w.id.as_deref());
                    match webhook::personio::delete_all(client, namespace, name, url.as_deref(), id)
                        .await
                    {
                        Ok(count) => Ok(count),
                        Err(error) if webhook::personio::is_transient(&error) => {
                            warn!(%namespace, %name, error = %error, "deleting the Personio webhook failed; retrying");
                            return Ok(Some(Action::requeue(ctx.backoff(object))));
                        }
                        Err(error) => Err(left_behind(crate::cli::report(&error))),
                    }
                }
            },
        },
    };
    match outcome {
        Ok(count) => info!(%namespace, %name, deleted = count, "deleted the Personio webhook"),
        Err(message) => {
            warn!(%namespace, %name, %message, "webhook not deleted");
            note_event(
                ctx,
                object,
                EventType::Warning,
                "WebhookLeftActive",
                message,
            )
            .await;
        }
    }
    Ok(None)
}

/// The connected source and directory, when both are reachable: the cycle, the targeted syncs
/// and the next reconciles reuse them (one HollyHR connection pool and one LDAP bind per object
/// while its spec and credentials stay the same).
struct Handles {
    source: AnySource,
    /// Behind the Lease fence when leader election is on.
    directory: crate::directory::fenced::Fenced<crate::directory::any::AnyDirectory>,
    /// What they were built from: the source and target specs and the credentials.
    fingerprint: u64,
}

/// A digest of what an object's handles are built from (specs and credential values; kept in
/// memory only, never logged).
fn handles_fingerprint(
    spec: &PeopleSyncSpec,
    source: &SourceCredentials,
    target: &crate::directory::any::Credentials,
) -> u64 {
    use secrecy::ExposeSecret;
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&spec.source)
        .unwrap_or_default()
        .hash(&mut h);
    serde_json::to_string(&spec.target)
        .unwrap_or_default()
        .hash(&mut h);
    match source {
        SourceCredentials::HollyHr { api_key } => api_key.expose_secret().hash(&mut h),
        SourceCredentials::Personio {
            client_id,
            client_secret,
        } => {
            client_id.expose_secret().hash(&mut h);
            client_secret.expose_secret().hash(&mut h);
        }
    }
    target.secret.expose_secret().hash(&mut h);
    target.ca_pem.hash(&mut h);
    h.finish()
}

/// What `observe` found: the observation, the source client when it passed its checks, and both
/// connections when the directory did too.
type Observed = (Observation, Option<AnySource>, Option<Arc<Handles>>);

async fn observe(object: &PeopleSync, namespace: &str, ctx: &Context) -> Result<Observed, Error> {
    let spec = &object.spec;
    let mut observed = Observation {
        blocker: None,
        source: SourceOutcome::NotChecked,
        directory: DirectoryOutcome::NotChecked,
        suspended: spec.suspend,
        sync: sync::SyncOutcome::NotRun,
        next_sync: None,
        webhook: webhook::WebhookOutcome::NotChecked,
    };
    if let Some(blocker) = validate(spec) {
        observed.blocker = Some(blocker);
        return Ok((observed, None, None));
    }
    let credentials = match source_credentials(spec, namespace, ctx).await {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            observed.blocker = Some(Blocker {
                reason: "InvalidSpec",
                message: "set exactly one source: spec.source.hollyhr or spec.source.personio"
                    .into(),
            });
            return Ok((observed, None, None));
        }
        Err(error) => match error.blocker() {
            Some(blocker) => {
                observed.blocker = Some(blocker);
                return Ok((observed, None, None));
            }
            None => return Err(error.into()),
        },
    };
    if let Some(blocker) = check_target_secrets(spec, namespace, ctx).await? {
        observed.blocker = Some(blocker);
        return Ok((observed, None, None));
    }
    if spec.suspend {
        return Ok((observed, None, None));
    }
    let observer = {
        let metrics = ctx.metrics.clone();
        hollyhr::RequestObserver(Arc::new(move |route, status| {
            metrics.source_request(route, status)
        }))
    };
    let target = directory_credentials(spec, namespace, ctx).await?;
    let fingerprint = handles_fingerprint(spec, &credentials, &target);
    let uid = object.uid().unwrap_or_default();
    if let Some(kept) = ctx
        .handles_of(&uid)
        .filter(|h| h.fingerprint == fingerprint)
    {
        // The same spec and credentials: check the kept connections instead of making new ones
        // (no new LDAP bind on a healthy connection).
        let source = check_source(spec, &kept.source).await;
        let directory = check_directory(spec, kept.directory.inner()).await;
        let reachable = matches!(source, SourceOutcome::Reachable { .. })
            && matches!(directory, DirectoryOutcome::Reachable);
        observed.source = source;
        observed.directory = directory;
        if reachable {
            let client = kept.source.clone();
            return Ok((observed, Some(client), Some(kept)));
        }
    }
    let (source, client) = probe_source(spec, credentials, observer).await;
    let (directory, connected) = probe_directory(spec, target).await;
    if connected.is_some() {
        ctx.metrics.directory_connected();
    }
    observed.source = source;
    observed.directory = directory;
    let handles = match (&client, connected) {
        (Some(source), Some(directory)) => Some(Arc::new(Handles {
            source: source.clone(),
            directory: crate::directory::fenced::Fenced::new(directory, ctx.fence.clone()),
            fingerprint,
        })),
        _ => None,
    };
    Ok((observed, client, handles))
}

/// What the schema and CEL cannot fully say (defence in depth for objects stored before a rule).
fn validate(spec: &PeopleSyncSpec) -> Option<Blocker> {
    let invalid = |message: String| {
        Some(Blocker {
            reason: "InvalidSpec",
            message,
        })
    };
    if let Err(error) = spec.poll_interval() {
        return invalid(format!("spec.schedule.pollInterval: {error}"));
    }
    if let Err(error) = spec.full_resync_interval() {
        return invalid(format!("spec.schedule.fullResyncInterval: {error}"));
    }
    if spec.target.ldap.is_some() == spec.target.scim.is_some() {
        return invalid("set exactly one target: spec.target.ldap or spec.target.scim".into());
    }
    None
}

async fn check_target_secrets(
    spec: &PeopleSyncSpec,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<Blocker>, Error> {
    let mut refs = Vec::new();
    if let Some(ldap) = &spec.target.ldap {
        refs.push(&ldap.bind_password_secret_ref);
        refs.extend(ldap.ca_secret_ref.iter());
    }
    if let Some(scim) = &spec.target.scim {
        refs.push(&scim.token_secret_ref);
    }
    for reference in refs {
        if let Err(error) = secrets::read_key(&ctx.secrets, namespace, reference).await {
            return match error.blocker() {
                Some(blocker) => Ok(Some(blocker)),
                None => Err(error.into()),
            };
        }
    }
    Ok(None)
}

/// The source's credentials from the referenced Secret(s); `None` when not exactly one source
/// is set.
async fn source_credentials(
    spec: &PeopleSyncSpec,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<SourceCredentials>, secrets::SecretError> {
    use crate::source::any::{PERSONIO_CLIENT_ID_KEY, PERSONIO_CLIENT_SECRET_KEY};
    match (&spec.source.hollyhr, &spec.source.personio) {
        (None, Some(personio)) => {
            let secret = &personio.credentials_secret_ref;
            Ok(Some(SourceCredentials::Personio {
                client_id: secrets::read_key(
                    &ctx.secrets,
                    namespace,
                    &secret.key(PERSONIO_CLIENT_ID_KEY),
                )
                .await?,
                client_secret: secrets::read_key(
                    &ctx.secrets,
                    namespace,
                    &secret.key(PERSONIO_CLIENT_SECRET_KEY),
                )
                .await?,
            }))
        }
        (Some(hollyhr), None) => Ok(Some(SourceCredentials::HollyHr {
            api_key: secrets::read_key(&ctx.secrets, namespace, &hollyhr.api_key_secret_ref)
                .await?,
        })),
        _ => Ok(None),
    }
}

/// Who the credentials belong to (HollyHR's `GET /me`; a Personio token), and the scope check;
/// the client when it passed.
async fn probe_source(
    spec: &PeopleSyncSpec,
    credentials: SourceCredentials,
    observer: hollyhr::RequestObserver,
) -> (SourceOutcome, Option<AnySource>) {
    let client = match AnySource::connect(&spec.source, credentials, Some(observer)) {
        Ok(client) => client,
        Err(error) => return (SourceOutcome::Unreachable(error.to_string()), None),
    };
    let outcome = check_source(spec, &client).await;
    let passed = matches!(outcome, SourceOutcome::Reachable { .. });
    (outcome, passed.then_some(client))
}

/// The identity and scope check of a connected source.
async fn check_source(spec: &PeopleSyncSpec, client: &AnySource) -> SourceOutcome {
    let required = spec.required_scopes();
    match client.whoami().await {
        Ok(principal) => {
            let missing = principal.missing_scopes(&required);
            if missing.is_empty() {
                let environment = if principal.sandbox { "sandbox" } else { "live" }.to_owned();
                SourceOutcome::Reachable { environment }
            } else {
                SourceOutcome::MissingScope(missing.into_iter().map(str::to_owned).collect())
            }
        }
        Err(error) if error.is_unauthorized() => SourceOutcome::Unauthorized,
        // Personio refuses a token for a scope the credential lacks.
        Err(error) if error.is_missing_scope() => {
            SourceOutcome::MissingScope(required.iter().map(|s| (*s).to_owned()).collect())
        }
        Err(error) => SourceOutcome::Unreachable(crate::cli::report(&error)),
    }
}

/// Connects to the target as the sync will: a bind and a read of the people DN for LDAP (over
/// TLS with the referenced CA when one is set), the ServiceProviderConfig and a one-user listing
/// for SCIM.
async fn probe_directory(
    spec: &PeopleSyncSpec,
    credentials: crate::directory::any::Credentials,
) -> (
    DirectoryOutcome,
    Option<crate::directory::any::AnyDirectory>,
) {
    use crate::directory::DirectoryError;
    use crate::directory::any::AnyDirectory;
    match AnyDirectory::connect(&spec.target, credentials).await {
        Ok(directory) => match check_directory(spec, &directory).await {
            DirectoryOutcome::Reachable => (DirectoryOutcome::Reachable, Some(directory)),
            outcome => (outcome, None),
        },
        Err(error) => (
            DirectoryOutcome::Unreachable {
                reason: error.reason(),
                message: crate::cli::report(&error),
            },
            None,
        ),
    }
}

/// The reachability check of a connected directory (an LDAP read of the people DN on the
/// existing connection, which reconnects only when it was dropped).
async fn check_directory(
    spec: &PeopleSyncSpec,
    directory: &crate::directory::any::AnyDirectory,
) -> DirectoryOutcome {
    use crate::directory::{Directory, DirectoryError};
    let hint = if spec.target.ldap.is_some() {
        "check the people DN"
    } else {
        "check the base URL"
    };
    match directory.check().await {
        Ok(()) => DirectoryOutcome::Reachable,
        Err(error) => DirectoryOutcome::Unreachable {
            reason: error.reason(),
            message: format!("{}: {hint}", crate::cli::report(&error)),
        },
    }
}

/// The target's secret (bind password or bearer token) and CA bundle from their Secrets.
async fn directory_credentials(
    spec: &PeopleSyncSpec,
    namespace: &str,
    ctx: &Context,
) -> Result<crate::directory::any::Credentials, Error> {
    use secrecy::ExposeSecret;
    let (secret_ref, ca_ref) = match (&spec.target.ldap, &spec.target.scim) {
        (Some(ldap), _) => (&ldap.bind_password_secret_ref, ldap.ca_secret_ref.as_ref()),
        (None, Some(scim)) => (&scim.token_secret_ref, None),
        (None, None) => return Err(Error::NoTarget),
    };
    let secret = secrets::read_key(&ctx.secrets, namespace, secret_ref).await?;
    let ca_pem = match ca_ref {
        // A CA bundle is public data; it only travels in a Secret for convenience.
        Some(reference) => Some(
            secrets::read_key(&ctx.secrets, namespace, reference)
                .await?
                .expose_secret()
                .to_owned(),
        ),
        None => None,
    };
    Ok(crate::directory::any::Credentials { secret, ca_pem })
}

/// Writes status by server-side apply under one field manager, only when it changed.
async fn write_status(
    object: &PeopleSync,
    namespace: &str,
    next: &PeopleSyncStatus,
    ctx: &Context,
) -> Result<(), Error> {
    ctx.metrics.object_status(
        namespace,
        &object.name_any(),
        next,
        object.spec.poll_interval().ok(),
    );
    if object.status.as_ref() == Some(next) {
        return Ok(());
    }
    let api: Api<PeopleSync> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": "peoplesync.dev/v1alpha1",
        "kind": "PeopleSync",
        "status": next,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(|source| Error::WriteStatus {
        name: object.name_any(),
        source,
    })?;
    ctx.metrics.status_written();
    Ok(())
}

async fn publish(ctx: &Context, object: &PeopleSync, transition: &status::Transition) {
    let event = Event {
        type_: if transition.status == conditions::Status::False {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: transition.reason.clone(),
        note: Some(format!(
            "{} is {}: {}",
            transition.kind,
            transition.status.as_str(),
            transition.message
        )),
        action: format!("Set{}", transition.kind),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        // Events are best effort: a missing permission must not fail the reconcile.
        warn!(%error, "failed to publish an Event");
    }
}
