//! The controller process: its listeners (admin port and webhook receiver), the Secret watch,
//! leader election, and the kube-runtime `Controller` loop that drives [`super::reconcile`].

use super::*;

/// Background tasks that are aborted together when dropped.
#[derive(Default)]
pub(super) struct Tasks(Vec<tokio::task::AbortHandle>);

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
    // its signing secrets. It answers 503 (the source retries) while no consumer runs.
    let book = crate::receiver::SecretBook::default();
    // Set while this process leads and its job consumer runs; the receiver refuses (503) when
    // it is not, so a delivery never waits in a queue nobody takes from.
    let consuming = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (jobs_tx, jobs_rx) = tokio::sync::mpsc::channel(JOB_QUEUE);
    let receiver_book = config.receiver_listen.map(|_| book.clone());
    match config.receiver_listen {
        Some(addr) => {
            let listener = crate::http::serve::bind(addr)
                .map_err(|source| RunError::ReceiverListen { addr, source })?;
            let receiver = Arc::new(
                crate::receiver::Receiver::new(book.clone(), jobs_tx)
                    .with_consumer(consuming.clone()),
            );
            info!(%addr, "webhook receiver listening");
            // Every delivery's outcome and answer time, from the answer's `Answered`; what the
            // router refused before the receiver read it is `rejected` (the health probe is no
            // delivery).
            let observer = metrics.clone();
            let app = crate::receiver::router(receiver).layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let observer = observer.clone();
                    async move {
                        let started = std::time::Instant::now();
                        let probe = request.uri().path() == crate::receiver::HEALTH_PATH;
                        let response = next.run(request).await;
                        if let Some(answered) =
                            crate::receiver::answered_or_rejected(probe, &response)
                        {
                            let object = answered.object.as_ref().map(|(namespace, name)| {
                                crate::metrics::ObjectLabels::new(namespace, name)
                            });
                            observer.webhook_delivery(
                                object.as_ref(),
                                answered.outcome,
                                started.elapsed(),
                            );
                        }
                        response
                    }
                },
            ));
            tasks.spawn(crate::http::serve::serve(
                listener,
                app,
                crate::http::serve::Limits {
                    // Strangers get one request per connection (see http::serve::head).
                    keep_alive: crate::http::serve::KeepAlive::Marked,
                    ..config.receiver_limits
                },
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
    context = context.with_consumer(consuming);
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
        config.namespaces.clone(),
        format!("{}=true", crate::webhook::signing::LABEL),
        move |event| book.observe(event),
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
pub(super) const SECRET_CHANGES: usize = 1024;

/// Jobs the receiver may queue before it answers 503.
pub(super) const JOB_QUEUE: usize = 10_000;
/// Jobs taken in one batch: one directory read serves them all.
pub(super) const JOB_BATCH: usize = 200;
/// The most people a targeted sync reads by id; when more wait for one object, an incremental
/// cycle runs instead.
pub(super) const TARGETED_MAX: usize = JOB_BATCH;

pub(super) async fn run_controller(
    client: kube::Client,
    config: &Config,
    context: Arc<Context>,
    jobs: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<crate::receiver::Job>>>,
    changed: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(String, String)>>>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    context.leading_begins();
    // One watch per served namespace, seen as one (crate::watch::merged).
    let objects = crate::watch::merged(
        config
            .namespaces
            .apis::<PeopleSync>(&client)
            .into_iter()
            .map(|api| watcher(api, watcher::Config::default().any_semantic()).default_backoff())
            .collect(),
    );
    let (refresh_tx, refresh_rx) = futures::channel::mpsc::channel(JOB_QUEUE);
    // The API server is back when a watch that failed lists again: the objects whose reconciles
    // failed meanwhile (a status write, a fence that could not read its Lease) run now. Their
    // backoff grows with the time they have been failing, an outage included, and the re-list
    // itself wakes nobody (the filter below): without this, recovery waited 5–46 s after a
    // 2-second restart of kube-apiserver.
    let mut back = refresh_tx.clone();
    let failing = context.clone();
    let mut reconnection = crate::watch::Reconnection::default();
    let objects = objects.inspect(move |event| {
        if reconnection.back(event) {
            for object in failing.failing() {
                let _ = back.try_send(object);
            }
        }
    });
    // Status writes (every cycle moves lastSyncTime) must not wake the object again: only spec,
    // annotation (approvals), finalizer and deletion changes do; cycles run on requeue.
    let (reader, writer) = kube::runtime::reflector::store();
    let triggers = objects
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
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
    context.consuming(true);
    let running = context.clone();
    controller
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "reconcile loop error");
            }
        })
        .await;
    running.consuming(false);
    metrics.leading(false);
    drop(consumer);
}

/// What in an object should start a reconcile: its generation (spec), annotations (approvals),
/// finalizers and deletion; not its status.
pub(super) fn trigger_hash(object: &PeopleSync) -> Option<u64> {
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
pub(super) fn referencing(
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

pub(super) fn secret_names(spec: &PeopleSyncSpec) -> Vec<&str> {
    let mut names = spec.source.secret_names();
    if let Some(ldap) = &spec.target.ldap {
        names.push(ldap.bind_password_secret_ref.name.as_str());
        if let Some(ca) = &ldap.ca_secret_ref {
            names.push(ca.name.as_str());
        }
    }
    if let Some(scim) = &spec.target.scim {
        names.push(scim.token_secret_ref.name.as_str());
        names.extend(scim.ca_secret_ref.iter().map(|r| r.name.as_str()));
    }
    names
}

pub(super) async fn shutdown_signal() {
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
