//! The webhook receiver: `POST /hooks/{namespace}/{name}`. As in bors, it authenticates the raw
//! body before anything parses it, and it never writes to the directory: a verified, new event
//! becomes a targeted sync job on a bounded queue, and HollyHR gets its 2xx.
//!
//! Accepting before the job runs is safe: the change that caused the event also moved the person's
//! `updated_at`, so the next incremental cycle covers anything lost in a crash or a full queue.
//!
//! Statuses: 400 missing or invalid headers, stale timestamps, malformed JSON; 401 a signature no
//! held secret made; 404 an unknown PeopleSync; 413 a body over 256 KiB; 415 not JSON; 503 (with
//! `Retry-After`) a full queue, the bodies of unauthenticated requests over their budget, or a
//! process that has not read its Secrets yet (an object it does not know may only not be
//! loaded: 404 would end HollyHR's retries); 200 a duplicate; 202 accepted. No response or log
//! line carries a secret, a digest, or anything from the body.
//!
//! Before authentication a request costs memory a stranger chooses: its head is capped per
//! connection by the server (`http::serve::Limits::max_head_bytes`), and the bodies of every
//! request not yet authenticated share one budget ([`BODY_BUDGET`], counted as bytes arrive, so a
//! trickle holds only what it sent); over it, a request is answered 503 with `Retry-After`
//! instead of being read further. However many connections are open, unauthenticated bodies
//! never hold more than the budget.
//!
//! Which scheme applies is known per object from its owned Secret (see `webhook::signing`); the
//! scheme picks the source's [`crate::webhook::Deliveries`] (`source::any::deliveries`): HMAC
//! signatures for HollyHR, the static `Authorization` token for Personio (401 for a missing or
//! wrong token before the body is read). The receiver is written once against that trait.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::mpsc;

pub use crate::webhook::Subject;
use crate::webhook::signing::{self, Scheme};
use crate::webhook::{HeldCredentials, Refused};

/// HollyHR's events are thin; anything bigger is not one of them.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Event ids remembered for deduplication (HollyHR retries for hours; ids are ~30 bytes).
pub const DEDUPE_CAPACITY: usize = 100_000;
/// The bytes of request bodies read and not yet authenticated, across every connection: 64
/// HollyHR-size bodies at the limit (real events are about 1 KiB).
pub const BODY_BUDGET: usize = 16 * 1024 * 1024;
/// Seconds HollyHR is asked to wait when the queue is full.
const RETRY_AFTER_SECONDS: u64 = 5;

/// How one object's deliveries are authenticated (the scheme picks the source's
/// [`Deliveries`]), with what.
#[derive(Clone)]
struct Credentials {
    scheme: Scheme,
    held: HeldCredentials,
}

type ObjectKey = (String, String);

/// Secrets by PeopleSync (namespace, name); written by the controller, read per request. It
/// also records when the receiver last accepted an authenticated delivery per object (the
/// controller reads it for Personio's `WebhookHealthy`).
#[derive(Clone, Default)]
pub struct SecretBook {
    secrets: Arc<RwLock<HashMap<ObjectKey, Credentials>>>,
    accepted: Arc<RwLock<HashMap<ObjectKey, Timestamp>>>,
    /// Whether the Secret watch has listed every Secret once: until then an object the book
    /// does not know may simply not be loaded yet.
    loaded: Arc<std::sync::atomic::AtomicBool>,
}

fn key(namespace: &str, name: &str) -> ObjectKey {
    (namespace.to_owned(), name.to_owned())
}

impl SecretBook {
    /// Verify this object's deliveries by `scheme` with these credentials.
    pub fn set(&self, namespace: &str, name: &str, scheme: Scheme, held: HeldCredentials) {
        let credentials = Credentials { scheme, held };
        self.secrets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key(namespace, name), credentials);
    }

    pub fn remove(&self, namespace: &str, name: &str) {
        self.secrets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(namespace, name));
    }

    /// The Secret watch listed every Secret: an object unknown now is unknown (404), no longer
    /// possibly not loaded yet (503, retried).
    pub fn set_loaded(&self) {
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps the book in step with one event of the Secret watch (only owned Secrets matter).
    pub fn observe(
        &self,
        event: &kube::runtime::watcher::Event<k8s_openapi::api::core::v1::Secret>,
    ) {
        use kube::runtime::watcher::Event;
        match event {
            Event::Apply(secret) | Event::InitApply(secret) => {
                let Some((namespace, name)) = signing::owner_of(secret) else {
                    return;
                };
                match signing::receivable(secret) {
                    Some((scheme, held)) => self.set(&namespace, &name, scheme, held),
                    None => self.remove(&namespace, &name),
                }
            }
            Event::Delete(secret) => {
                if let Some((namespace, name)) = signing::owner_of(secret) {
                    self.remove(&namespace, &name);
                }
            }
            // Every Secret listed once: from now on an object the book lacks is unknown.
            Event::InitDone => self.set_loaded(),
            Event::Init => {}
        }
    }

    /// Whether secrets are held for this PeopleSync.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.get(namespace, name).is_some()
    }

    /// Whether `credential` is this object's current one here (a rotation may wait for the
    /// receiver to hold it before the source may send it).
    pub fn holds(&self, namespace: &str, name: &str, credential: &SecretString) -> bool {
        self.get(namespace, name).is_some_and(|c| {
            crate::webhook::same_secret(
                c.held.current.expose_secret().as_bytes(),
                credential.expose_secret().as_bytes(),
            )
        })
    }

    /// When the receiver last accepted an authenticated delivery for this object (since the
    /// process started).
    pub fn last_accepted(&self, namespace: &str, name: &str) -> Option<Timestamp> {
        self.accepted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key(namespace, name))
            .copied()
    }

    fn note_accepted(&self, namespace: &str, name: &str, at: Timestamp) {
        self.accepted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key(namespace, name), at);
    }

    fn get(&self, namespace: &str, name: &str) -> Option<Credentials> {
        self.secrets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key(namespace, name))
            .cloned()
    }
}

impl crate::webhook::Receiving for SecretBook {
    fn holds(&self, namespace: &str, name: &str, credential: &SecretString) -> bool {
        SecretBook::holds(self, namespace, name, credential)
    }

    fn last_accepted(&self, namespace: &str, name: &str) -> Option<Timestamp> {
        SecretBook::last_accepted(self, namespace, name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub namespace: String,
    pub name: String,
    pub event_id: String,
    pub event_type: String,
    pub subject: Subject,
}

/// How a request ended (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Ignored,
    BadRequest,
    BadSignature,
    UnknownObject,
    UnsupportedMediaType,
    QueueFull,
    /// The process has not read its Secrets yet (503, retried).
    Starting,
    /// This replica does not lead (no job consumer runs here): 503, retried, so the delivery
    /// reaches the leader instead of a queue nobody takes from.
    Standby,
    /// Refused before the receiver read it: a body over the limit (413), another method or
    /// path. Counted by the metrics layer ([`answered_or_rejected`]).
    Rejected,
    /// The bodies of unauthenticated requests are over [`BODY_BUDGET`]: 503, retried.
    OverBudget,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::BadRequest => "bad_request",
            Outcome::BadSignature => "bad_signature",
            Outcome::Starting => "starting",
            Outcome::Standby => "standby",
            Outcome::UnknownObject => "unknown_object",
            Outcome::UnsupportedMediaType => "unsupported_media_type",
            Outcome::QueueFull => "queue_full",
            Outcome::Rejected => "rejected",
            Outcome::OverBudget => "over_budget",
        }
    }
}

pub struct Receiver {
    secrets: SecretBook,
    seen: Mutex<lru::LruCache<String, ()>>,
    queue: mpsc::Sender<Job>,
    now: Box<dyn Fn() -> Timestamp + Send + Sync>,
    /// Whether a job consumer takes from `queue` (this process leads).
    consuming: Arc<std::sync::atomic::AtomicBool>,
    /// Permits for the bytes of unauthenticated bodies ([`BODY_BUDGET`]).
    unauthenticated: Arc<tokio::sync::Semaphore>,
}

impl Receiver {
    /// A receiver feeding `queue`. Every answer carries an [`Answered`] extension (the
    /// process's metrics layer counts it).
    pub fn new(secrets: SecretBook, queue: mpsc::Sender<Job>) -> Self {
        Self {
            secrets,
            seen: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(DEDUPE_CAPACITY).expect("the capacity is not zero"),
            )),
            queue,
            now: Box::new(Timestamp::now),
            consuming: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            unauthenticated: Arc::new(tokio::sync::Semaphore::new(BODY_BUDGET)),
        }
    }

    /// The same, with another budget for unauthenticated bodies (tests).
    pub fn with_body_budget(mut self, bytes: usize) -> Self {
        self.unauthenticated = Arc::new(tokio::sync::Semaphore::new(bytes));
        self
    }

    /// The same, accepting deliveries only while `consuming` is set (this process leads, so its
    /// job consumer runs). Otherwise it answers 503 and the source retries: after a failover
    /// the delivery reaches the new leader, instead of waiting in a queue nobody takes from
    /// until the next poll.
    pub fn with_consumer(mut self, consuming: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.consuming = consuming;
        self
    }

    /// The same, with a clock (tests).
    pub fn with_clock(mut self, now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.now = Box::new(now);
        self
    }
}

pub use crate::webhook::HEALTH_PATH;

pub fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route(HEALTH_PATH, axum::routing::get(|| async { "ok" }))
        .route("/hooks/{namespace}/{name}", post(receive))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(receiver)
}

/// What the receiver answered, as a response extension: the outcome, and the object when the
/// receiver knows it (a path naming no PeopleSync with a webhook names none, so that metrics
/// never carry names a client made up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub outcome: Outcome,
    /// `(namespace, name)`.
    pub object: Option<(String, String)>,
}

/// What a response of the receiver's router says it was: its [`Answered`], or for a request
/// refused before the receiver read it, [`Outcome::Rejected`]; `None` for the health probe
/// (`probe`: the request was for [`HEALTH_PATH`]), which is no delivery.
pub fn answered_or_rejected(probe: bool, response: &Response) -> Option<Answered> {
    if let Some(answered) = response.extensions().get::<Answered>() {
        return Some(answered.clone());
    }
    (!probe).then_some(Answered {
        outcome: Outcome::Rejected,
        object: None,
    })
}

fn answer(
    object: Option<(&str, &str)>,
    outcome: Outcome,
    status: StatusCode,
    message: &str,
) -> Response {
    answered(
        (
            status,
            axum::Json(json!({ "status": outcome.as_str(), "message": message })),
        )
            .into_response(),
        object,
        outcome,
    )
}

fn answered(mut response: Response, object: Option<(&str, &str)>, outcome: Outcome) -> Response {
    if matches!(
        outcome,
        Outcome::Accepted | Outcome::Duplicate | Outcome::Ignored
    ) {
        // Authenticated: the sender may keep its connection for the next delivery.
        response
            .extensions_mut()
            .insert(crate::http::serve::KeepAlive::Marked);
    }
    response.extensions_mut().insert(Answered {
        outcome,
        object: object.map(|(namespace, name)| (namespace.to_owned(), name.to_owned())),
    });
    response
}

/// Why a body was not read to its end.
enum Unread {
    TooLarge,
    OverBudget,
    Broken,
}

/// Reads a body within [`BODY_LIMIT`], taking permits from `budget` for its bytes as they
/// arrive; the permits are held until the caller drops them (once authenticated).
async fn read_within(
    body: axum::body::Body,
    budget: &Arc<tokio::sync::Semaphore>,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), Unread> {
    use futures::StreamExt as _;
    let mut chunks = body.into_data_stream();
    let mut read = bytes::BytesMut::new();
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| Unread::Broken)?;
        if read.len() + chunk.len() > BODY_LIMIT {
            return Err(Unread::TooLarge);
        }
        let bytes = u32::try_from(chunk.len()).map_err(|_| Unread::TooLarge)?;
        let permit = budget
            .clone()
            .try_acquire_many_owned(bytes)
            .map_err(|_| Unread::OverBudget)?;
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        read.extend_from_slice(&chunk);
    }
    Ok((read.freeze(), held))
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT) {
        return answer(
            None,
            Outcome::Rejected,
            StatusCode::PAYLOAD_TOO_LARGE,
            "deliveries are at most 256 KiB",
        );
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return answer(
            None,
            Outcome::UnsupportedMediaType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "deliveries are application/json",
        );
    }
    if !receiver
        .consuming
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return retry_later(
            None,
            Outcome::Standby,
            "this replica does not lead; retry shortly",
        );
    }
    let credentials = match receiver.secrets.get(&namespace, &name) {
        Some(credentials) => credentials,
        None if !receiver.secrets.is_loaded() => {
            // A process that just started has not read its Secrets yet: the source's 404 would
            // be final, a 503 is retried.
            return retry_later(
                None,
                Outcome::Starting,
                "the receiver is starting; retry shortly",
            );
        }
        None => {
            return answer(
                None,
                Outcome::UnknownObject,
                StatusCode::NOT_FOUND,
                "no PeopleSync with a webhook here",
            );
        }
    };
    let known = Some((namespace.as_str(), name.as_str()));
    let (body, unauthenticated) = match read_within(body, &receiver.unauthenticated).await {
        Ok(read) => read,
        Err(Unread::TooLarge) => {
            return answer(
                None,
                Outcome::Rejected,
                StatusCode::PAYLOAD_TOO_LARGE,
                "deliveries are at most 256 KiB",
            );
        }
        Err(Unread::OverBudget) => {
            return retry_later(None, Outcome::OverBudget, "busy: retry later");
        }
        Err(Unread::Broken) => {
            return answer(
                None,
                Outcome::BadRequest,
                StatusCode::BAD_REQUEST,
                "the body could not be read",
            );
        }
    };
    let deliveries = crate::source::any::deliveries(credentials.scheme);
    let now = (receiver.now)();
    let authenticated = deliveries.authenticate(&credentials.held, &headers, &body, now);
    // Authenticated or refused: its bytes no longer count against strangers' budget.
    drop(unauthenticated);
    if let Err(refused) = authenticated {
        let (outcome, status, message) = match refused {
            Refused::Unauthorized(message) => {
                (Outcome::BadSignature, StatusCode::UNAUTHORIZED, message)
            }
            Refused::BadRequest(message) => (Outcome::BadRequest, StatusCode::BAD_REQUEST, message),
        };
        return answer(known, outcome, status, &message);
    }
    // Authenticated: only now is anything parsed.
    let delivery = match deliveries.read(&headers, &body) {
        Ok(delivery) => delivery,
        Err(message) => {
            return answer(known, Outcome::BadRequest, StatusCode::BAD_REQUEST, message);
        }
    };
    // An authenticated event (a duplicate too) shows the path works: a source without a health
    // endpoint reads it.
    receiver.secrets.note_accepted(&namespace, &name, now);
    let seen_key = format!("{namespace}/{name}/{}", delivery.id);
    if receiver
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&seen_key)
    {
        return answer(
            known,
            Outcome::Duplicate,
            StatusCode::OK,
            "already received",
        );
    }
    let (outcome, status) = if delivery.subject == Subject::Nothing {
        (Outcome::Ignored, deliveries.ignored_status())
    } else {
        let job = Job {
            namespace: namespace.clone(),
            name: name.clone(),
            event_id: delivery.id,
            event_type: delivery.event_type,
            subject: delivery.subject,
        };
        if let Some(busy) = enqueue(&receiver, known, job) {
            return busy;
        }
        (Outcome::Accepted, StatusCode::ACCEPTED)
    };
    // Remembered only once queued: a delivery refused with 503 is not a duplicate when retried.
    receiver
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(seen_key, ());
    answer(known, outcome, status, "accepted")
}

/// 503 with `Retry-After`: HollyHR retries the delivery.
fn retry_later(object: Option<(&str, &str)>, outcome: Outcome, message: &str) -> Response {
    answered(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
            axum::Json(json!({ "status": outcome.as_str(), "message": message })),
        )
            .into_response(),
        object,
        outcome,
    )
}

/// Queues `job`; the answer to give instead (503 with `Retry-After`) when the queue is full.
fn enqueue(receiver: &Receiver, object: Option<(&str, &str)>, job: Job) -> Option<Response> {
    if receiver.queue.try_send(job).is_ok() {
        return None;
    }
    Some(retry_later(object, Outcome::QueueFull, "busy: retry later"))
}

#[cfg(test)]
mod tests;
