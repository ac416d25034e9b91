//! The PeopleSync controller: a kube-runtime `Controller` on PeopleSync objects (and the Secrets
//! they reference), with a finalizer, status written by one server-side-apply writer only when it
//! changed, Events on condition transitions, per-object backoff, leader election on a Lease and an
//! admin server (`/healthz`, `/readyz`, `/metrics`).
//!
//! The reconcile is a short driver of named steps — dereference → check the source → status —
//! each with its own error; the sync engine and the webhook lifecycle plug in here later.

pub mod admin;
pub mod conditions;
pub mod leader;
#[cfg(test)]
mod scenarios;
pub mod secrets;
pub mod status;
pub mod sync;

use std::collections::HashMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use secrecy::SecretString;
use tracing::{info, warn};

use self::status::{Blocker, DirectoryOutcome, Observation, SourceOutcome};
use crate::crd::{PeopleSync, PeopleSyncSpec, PeopleSyncStatus};
use crate::metrics::Metrics;
use crate::source::PeopleSource;
use crate::source::hollyhr;

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
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<PeopleSync>, u32>>,
    /// Objects (by uid) that had a full cycle since this process started: the first cycle of
    /// every object after a start is a full one.
    fully_synced: Mutex<std::collections::HashSet<String>>,
}

impl Context {
    pub fn new(client: kube::Client, instance: &str, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(instance.to_owned()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            failures: Mutex::new(HashMap::new()),
            fully_synced: Mutex::new(std::collections::HashSet::new()),
        }
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
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
}

/// Runs the controller until SIGTERM/Ctrl-C (and, with leader election, only while leading).
pub async fn run(client: kube::Client, config: Config) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let readiness = admin::Readiness::default();
    let listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .map_err(|source| RunError::AdminListen {
            addr: config.admin_listen,
            source,
        })?;
    let admin = tokio::spawn(
        axum::serve(listener, admin::router(metrics.clone(), readiness.clone())).into_future(),
    );
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        let _ = shutdown_tx.send(true);
    });
    let context = Arc::new(Context::new(client.clone(), &config.instance, metrics));
    let result = match &config.leader_election {
        None => {
            readiness.set(true);
            let mut rx = shutdown_rx;
            let stop = async move {
                let _ = rx.wait_for(|stopped| *stopped).await;
            };
            run_controller(client, &config, context, stop).await;
            Ok(())
        }
        Some(lease) => {
            leader::run_while_leading(client.clone(), lease, readiness, shutdown_rx, |stop| {
                run_controller(client.clone(), &config, context.clone(), stop)
            })
            .await
            .map_err(RunError::from)
        }
    };
    admin.abort();
    result
}

async fn run_controller(
    client: kube::Client,
    config: &Config,
    context: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (objects, secrets): (Api<PeopleSync>, Api<Secret>) = match &config.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    // Status writes (every cycle moves lastSyncTime) must not wake the object again: only spec,
    // annotation (approvals), finalizer and deletion changes do; cycles run on requeue.
    let (reader, writer) = kube::runtime::reflector::store();
    let triggers = watcher(objects, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
    let controller = Controller::for_stream(triggers, reader);
    let store = controller.store();
    controller
        // A Secret that a PeopleSync references changed (e.g. it was created after the object):
        // reconcile those objects at once instead of waiting for a requeue.
        .watches(secrets, watcher::Config::default(), move |secret| {
            referencing(&store, &secret)
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "reconcile loop error");
            }
        })
        .await;
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
fn referencing(store: &Store<PeopleSync>, secret: &Secret) -> Vec<ObjectRef<PeopleSync>> {
    let (Some(namespace), name) = (secret.namespace(), secret.name_any()) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|ps| ps.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|ps| secret_names(&ps.spec).iter().any(|n| *n == name))
        .map(|ps| ObjectRef::from_obj(ps.as_ref()))
        .collect()
}

fn secret_names(spec: &PeopleSyncSpec) -> Vec<&str> {
    let mut names = Vec::new();
    if let Some(h) = &spec.source.hollyhr {
        names.push(h.api_key_secret_ref.name.as_str());
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
        error = %error,
        retry_in_s = wait.as_secs(),
        "reconcile failed"
    );
    Action::requeue(wait)
}

/// The reconcile of a live object: observe, run the sync cycle that is due, compute status, write
/// it if it changed, requeue for the next cycle.
async fn apply(object: &PeopleSync, ctx: &Context) -> Result<Action, Error> {
    let namespace = object.namespace().ok_or(Error::NoNamespace)?;
    let (mut observed, handles) = observe(object, &namespace, ctx).await?;
    let spec = &object.spec;
    let poll = spec.poll_interval().unwrap_or(Duration::from_secs(300));
    let full_interval = spec
        .full_resync_interval()
        .unwrap_or(Duration::from_secs(6 * 3600));
    if let Some(handles) = handles {
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
    if let sync::SyncOutcome::Completed(completed) = &observed.sync
        && completed.changed()
    {
        publish_cycle(ctx, object, completed).await;
    }
    ctx.succeeded(object);
    let wait = match observed.next_sync {
        Some(at) => Duration::try_from(at.duration_since(jiff::Timestamp::now()))
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1)),
        // A blocked object is also woken by its Secret changing.
        None if observed.blocker.is_some() => poll.min(Duration::from_secs(60)),
        None => poll,
    };
    Ok(Action::requeue(wait))
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
    let spec_changed = object.status.as_ref().and_then(|s| s.observed_generation)
        != object.meta().generation
        || !ctx.had_full_cycle(&uid)
        || new_approval;
    let started = jiff::Timestamp::now();
    let kind = engine::due(&state, full_interval, started, spec_changed);
    let outcome = match crate::sync::spec::settings(&object.spec) {
        Err(error) => sync::SyncOutcome::Failed {
            reason: error.reason(),
            message: crate::cli::report(&error),
        },
        Ok(settings) => {
            let result = engine::run_cycle(
                &handles.source,
                &handles.directory,
                &settings,
                &state,
                kind,
                approved,
                started,
            )
            .await;
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
                    sync::SyncOutcome::Completed(Box::new(sync::Completed::of(
                        &report,
                        settings.dry_run,
                        jiff::Timestamp::now(),
                    )))
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
    observed.next_sync = Some(engine::next_run(
        &next_state,
        poll,
        full_interval,
        jiff::Timestamp::now(),
    ));
}

/// An Event for a cycle that changed the directory (counts only).
async fn publish_cycle(ctx: &Context, object: &PeopleSync, completed: &sync::Completed) {
    let event = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some(format!(
            "{} cycle: {}",
            completed.kind.as_str(),
            completed.describe_counts()
        )),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        warn!(%error, "failed to publish an Event");
    }
}

/// Nothing outside the cluster holds state yet; webhook disabling joins here later.
/// A broken spec never blocks deletion.
async fn cleanup(object: &PeopleSync, _ctx: &Context) -> Result<Action, Error> {
    info!(name = %object.name_any(), "PeopleSync deleted; finalizer released");
    Ok(Action::await_change())
}

/// Gathers what this reconcile knows: spec problems, Secrets, the source.
/// The connected source and directory, when both are reachable (the cycle reuses them).
struct Handles {
    source: hollyhr::HollyHrClient,
    directory: crate::directory::any::AnyDirectory,
}

async fn observe(
    object: &PeopleSync,
    namespace: &str,
    ctx: &Context,
) -> Result<(Observation, Option<Handles>), Error> {
    let spec = &object.spec;
    let mut observed = Observation {
        blocker: None,
        source: SourceOutcome::NotChecked,
        directory: DirectoryOutcome::NotChecked,
        suspended: spec.suspend,
        sync: sync::SyncOutcome::NotRun,
        next_sync: None,
    };
    if let Some(blocker) = validate(spec) {
        observed.blocker = Some(blocker);
        return Ok((observed, None));
    }
    let Some(hollyhr) = &spec.source.hollyhr else {
        observed.blocker = Some(Blocker {
            reason: "InvalidSpec",
            message: "no source is set: set spec.source.hollyhr".into(),
        });
        return Ok((observed, None));
    };
    let api_key = match secrets::read_key(&ctx.client, namespace, &hollyhr.api_key_secret_ref).await
    {
        Ok(key) => key,
        Err(error) => match error.blocker() {
            Some(blocker) => {
                observed.blocker = Some(blocker);
                return Ok((observed, None));
            }
            None => return Err(error.into()),
        },
    };
    if let Some(blocker) = check_target_secrets(spec, namespace, ctx).await? {
        observed.blocker = Some(blocker);
        return Ok((observed, None));
    }
    if spec.suspend {
        return Ok((observed, None));
    }
    let observer = {
        let metrics = ctx.metrics.clone();
        hollyhr::RequestObserver(Arc::new(move |route, status| {
            metrics.source_request(route, status)
        }))
    };
    let (source, client) = probe_source(
        &hollyhr.base_url,
        api_key,
        &spec.required_scopes(),
        observer,
    )
    .await;
    let (directory, connected) = probe_directory(spec, namespace, ctx).await?;
    observed.source = source;
    observed.directory = directory;
    let handles = match (client, connected) {
        (Some(source), Some(directory)) => Some(Handles { source, directory }),
        _ => None,
    };
    Ok((observed, handles))
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
        if let Err(error) = secrets::read_key(&ctx.client, namespace, reference).await {
            return match error.blocker() {
                Some(blocker) => Ok(Some(blocker)),
                None => Err(error.into()),
            };
        }
    }
    Ok(None)
}

/// `GET /me` with the configured key, and the scope check; the client when it passed.
async fn probe_source(
    base_url: &str,
    api_key: SecretString,
    required: &[&str],
    observer: hollyhr::RequestObserver,
) -> (SourceOutcome, Option<hollyhr::HollyHrClient>) {
    let client = match hollyhr::ClientConfig::new(base_url, api_key).and_then(|mut config| {
        config.observer = Some(observer);
        hollyhr::HollyHrClient::new(config)
    }) {
        Ok(client) => client,
        Err(error) => return (SourceOutcome::Unreachable(error.to_string()), None),
    };
    match client.whoami().await {
        Ok(principal) => {
            let missing = principal.missing_scopes(required);
            if missing.is_empty() {
                let environment = if principal.sandbox { "sandbox" } else { "live" }.to_owned();
                (SourceOutcome::Reachable { environment }, Some(client))
            } else {
                let missing = missing.into_iter().map(str::to_owned).collect();
                (SourceOutcome::MissingScope(missing), None)
            }
        }
        Err(error) if error.category() == hollyhr::ErrorReason::Unauthorized => {
            (SourceOutcome::Unauthorized, None)
        }
        Err(error) => (SourceOutcome::Unreachable(error.to_string()), None),
    }
}

/// Connects to the target as the sync will: a bind and a read of the people DN for LDAP (over
/// TLS with the referenced CA when one is set), the ServiceProviderConfig and a one-user listing
/// for SCIM.
async fn probe_directory(
    spec: &PeopleSyncSpec,
    namespace: &str,
    ctx: &Context,
) -> Result<
    (
        DirectoryOutcome,
        Option<crate::directory::any::AnyDirectory>,
    ),
    Error,
> {
    use crate::directory::any::AnyDirectory;
    use crate::directory::{Directory, DirectoryError};
    let credentials = directory_credentials(spec, namespace, ctx).await?;
    let hint = if spec.target.ldap.is_some() {
        "check the people DN"
    } else {
        "check the base URL"
    };
    Ok(
        match AnyDirectory::connect(&spec.target, credentials).await {
            Ok(directory) => match directory.check().await {
                Ok(()) => (DirectoryOutcome::Reachable, Some(directory)),
                Err(error) => (
                    DirectoryOutcome::Unreachable {
                        reason: error.reason(),
                        message: format!("{}: {hint}", crate::cli::report(&error)),
                    },
                    None,
                ),
            },
            Err(error) => (
                DirectoryOutcome::Unreachable {
                    reason: error.reason(),
                    message: crate::cli::report(&error),
                },
                None,
            ),
        },
    )
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
    let secret = secrets::read_key(&ctx.client, namespace, secret_ref).await?;
    let ca_pem = match ca_ref {
        // A CA bundle is public data; it only travels in a Secret for convenience.
        Some(reference) => Some(
            secrets::read_key(&ctx.client, namespace, reference)
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
