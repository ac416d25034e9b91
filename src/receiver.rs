//! The webhook receiver: `POST /hooks/{namespace}/{name}`. As in bors, it authenticates the raw
//! body before anything parses it, and it never writes to the directory: a verified, new event
//! becomes a targeted sync job on a bounded queue, and HollyHR gets its 2xx.
//!
//! Accepting before the job runs is safe: the change that caused the event also moved the person's
//! `updated_at`, so the next incremental cycle covers anything lost in a crash or a full queue.
//!
//! Statuses: 400 missing or invalid headers, stale timestamps, malformed JSON; 401 a signature no
//! held secret made; 404 an unknown PeopleSync; 413 a body over 256 KiB; 415 not JSON; 503 (with
//! `Retry-After`) a full queue, or a process that has not read its Secrets yet (an object it does
//! not know may only not be loaded: 404 would end HollyHR's retries); 200 a duplicate; 202
//! accepted. No response or log line carries a
//! secret, a digest, or anything from the body.
//!
//! Which scheme applies is known per object from its owned Secret (see
//! `controller::signing`): HMAC signatures for HollyHR, the static `Authorization` token for
//! Personio ([`personio`]: 401 for a missing or wrong token before the body is read).

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
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::signature::{self, SignedHeaders};

/// HollyHR's events are thin; anything bigger is not one of them.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Event ids remembered for deduplication (HollyHR retries for hours; ids are ~30 bytes).
pub const DEDUPE_CAPACITY: usize = 100_000;
/// Seconds HollyHR is asked to wait when the queue is full.
const RETRY_AFTER_SECONDS: u64 = 5;

/// The signing secrets of one PeopleSync's webhook: the current one and, during a rotation
/// overlap, the previous one until it expires. Kept from a watch of the owned Secret.
#[derive(Clone)]
pub struct SigningSecrets {
    pub current: SecretString,
    pub previous: Option<(SecretString, Timestamp)>,
}

/// The tokens a Personio webhook may send: the current one and, during a rotation (pending or
/// in its overlap), the previous one until it expires.
#[derive(Clone)]
pub struct TokenSecrets {
    pub current: SecretString,
    pub previous: Option<(SecretString, Timestamp)>,
}

/// How one object's deliveries are authenticated, with what.
#[derive(Clone)]
enum Credentials {
    Signing(SigningSecrets),
    Token(TokenSecrets),
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
    /// HollyHR: verify this object's deliveries by their HMAC signatures.
    pub fn set(&self, namespace: &str, name: &str, secrets: SigningSecrets) {
        self.insert(namespace, name, Credentials::Signing(secrets));
    }

    /// Personio: verify this object's deliveries by their `Authorization` token.
    pub fn set_token(&self, namespace: &str, name: &str, tokens: TokenSecrets) {
        self.insert(namespace, name, Credentials::Token(tokens));
    }

    fn insert(&self, namespace: &str, name: &str, credentials: Credentials) {
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

    /// Whether secrets are held for this PeopleSync.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.get(namespace, name).is_some()
    }

    /// Whether `token` is this object's current Personio token here (the controller waits for
    /// it before Personio may send it).
    pub fn holds_token(&self, namespace: &str, name: &str, token: &SecretString) -> bool {
        match self.get(namespace, name) {
            Some(Credentials::Token(tokens)) => {
                personio::same_token(tokens.current.expose_secret(), token.expose_secret())
            }
            _ => false,
        }
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

/// What an accepted event asks the controller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `person.*`: read that person and apply them.
    Person(String),
    /// `org_unit.*`: refresh the groups.
    OrgUnit(String),
    /// `webhook.test` and events PeopleSync has no use for: nothing.
    Nothing,
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
            Outcome::UnknownObject => "unknown_object",
            Outcome::UnsupportedMediaType => "unsupported_media_type",
            Outcome::QueueFull => "queue_full",
        }
    }
}

pub struct Receiver {
    secrets: SecretBook,
    seen: Mutex<lru::LruCache<String, ()>>,
    queue: mpsc::Sender<Job>,
    observe: Box<dyn Fn(Outcome) + Send + Sync>,
    now: Box<dyn Fn() -> Timestamp + Send + Sync>,
}

impl Receiver {
    /// A receiver feeding `queue`; `observe` counts outcomes (metrics).
    pub fn new(
        secrets: SecretBook,
        queue: mpsc::Sender<Job>,
        observe: impl Fn(Outcome) + Send + Sync + 'static,
    ) -> Self {
        Self {
            secrets,
            seen: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(DEDUPE_CAPACITY).expect("the capacity is not zero"),
            )),
            queue,
            observe: Box::new(observe),
            now: Box::new(Timestamp::now),
        }
    }

    /// The same, with a clock (tests).
    pub fn with_clock(mut self, now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.now = Box::new(now);
        self
    }
}

/// The path the controller probes at the public URL before re-enabling a disabled endpoint:
/// it answers through the same Ingress as deliveries.
pub const HEALTH_PATH: &str = "/hooks/healthz";

pub fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route(HEALTH_PATH, axum::routing::get(|| async { "ok" }))
        .route("/hooks/{namespace}/{name}", post(receive))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(receiver)
}

fn answer(receiver: &Receiver, outcome: Outcome, status: StatusCode, message: &str) -> Response {
    (receiver.observe)(outcome);
    (
        status,
        axum::Json(json!({ "status": outcome.as_str(), "message": message })),
    )
        .into_response()
}

/// The event fields the receiver needs; the rest of the payload is never read.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    id: Option<String>,
}

fn subject(kind: &str, data: Option<&EventData>) -> Result<Subject, &'static str> {
    let id = || {
        data.and_then(|d| d.id.clone())
            .filter(|id| !id.is_empty())
            .ok_or("the event has no data.id")
    };
    Ok(match kind.split_once('.') {
        Some(("person", _)) => Subject::Person(id()?),
        Some(("org_unit", _)) => Subject::OrgUnit(id()?),
        _ => Subject::Nothing,
    })
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return answer(
            &receiver,
            Outcome::UnsupportedMediaType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "deliveries are application/json",
        );
    }
    let secrets = match receiver.secrets.get(&namespace, &name) {
        Some(Credentials::Signing(secrets)) => secrets,
        Some(Credentials::Token(tokens)) => {
            return personio::receive(&receiver, namespace, name, &tokens, &headers, &body);
        }
        None if !receiver.secrets.is_loaded() => {
            // A process that just started has not read its Secrets yet: HollyHR's 404 would
            // be final, a 503 is retried.
            return retry_later(
                &receiver,
                Outcome::Starting,
                "the receiver is starting; retry shortly",
            );
        }
        None => {
            return answer(
                &receiver,
                Outcome::UnknownObject,
                StatusCode::NOT_FOUND,
                "no PeopleSync with a webhook here",
            );
        }
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = SignedHeaders {
        event_id: text(signature::HEADER_ID),
        timestamp: text(signature::HEADER_TIMESTAMP),
        signature: text(signature::HEADER_SIGNATURE),
        sdk_signature: text(signature::HEADER_SDK_SIGNATURE),
    };
    let now = (receiver.now)();
    let mut keys: Vec<&[u8]> = vec![secrets.current.expose_secret().as_bytes()];
    if let Some((previous, expires)) = &secrets.previous
        && *expires > now
    {
        keys.push(previous.expose_secret().as_bytes());
    }
    if let Err(error) = signature::verify(&signed, &body, &keys, now, signature::DEFAULT_TOLERANCE)
    {
        let (outcome, status) = if error.http_status() == 401 {
            (Outcome::BadSignature, StatusCode::UNAUTHORIZED)
        } else {
            (Outcome::BadRequest, StatusCode::BAD_REQUEST)
        };
        return answer(&receiver, outcome, status, &error.to_string());
    }
    // Authenticated: only now is anything parsed.
    receiver.secrets.note_accepted(&namespace, &name, now);
    let Some(event_id) = signed
        .event_id
        .filter(|id| !id.is_empty() && id.len() <= 200)
    else {
        return answer(
            &receiver,
            Outcome::BadRequest,
            StatusCode::BAD_REQUEST,
            "missing header HollyHR-Webhook-Id",
        );
    };
    let seen_key = format!("{namespace}/{name}/{event_id}");
    if receiver
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&seen_key)
    {
        return answer(
            &receiver,
            Outcome::Duplicate,
            StatusCode::OK,
            "already received",
        );
    }
    let event: Event = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(_) => {
            return answer(
                &receiver,
                Outcome::BadRequest,
                StatusCode::BAD_REQUEST,
                "the body is not a HollyHR event",
            );
        }
    };
    let subject = match subject(&event.kind, event.data.as_ref()) {
        Ok(subject) => subject,
        Err(message) => {
            return answer(
                &receiver,
                Outcome::BadRequest,
                StatusCode::BAD_REQUEST,
                message,
            );
        }
    };
    let outcome = if subject == Subject::Nothing {
        Outcome::Ignored
    } else {
        let job = Job {
            namespace,
            name,
            event_id: event_id.to_owned(),
            event_type: event.kind,
            subject,
        };
        if let Some(busy) = enqueue(&receiver, job) {
            return busy;
        }
        Outcome::Accepted
    };
    // Remembered only once queued: a delivery refused with 503 is not a duplicate when retried.
    receiver
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(seen_key, ());
    answer(&receiver, outcome, StatusCode::ACCEPTED, "accepted")
}

/// 503 with `Retry-After`: HollyHR retries the delivery.
fn retry_later(receiver: &Receiver, outcome: Outcome, message: &str) -> Response {
    (receiver.observe)(outcome);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
        axum::Json(json!({ "status": outcome.as_str(), "message": message })),
    )
        .into_response()
}

/// Queues `job`; the answer to give instead (503 with `Retry-After`) when the queue is full.
fn enqueue(receiver: &Receiver, job: Job) -> Option<Response> {
    if receiver.queue.try_send(job).is_ok() {
        return None;
    }
    Some(retry_later(
        receiver,
        Outcome::QueueFull,
        "busy: retry later",
    ))
}

pub mod personio;
#[cfg(test)]
mod tests;
