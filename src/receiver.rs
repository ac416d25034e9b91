//! The webhook receiver: `POST /hooks/{namespace}/{name}`. As in bors, it authenticates the raw
//! body before anything parses it, and it never writes to the directory: a verified, new event
//! becomes a targeted sync job on a bounded queue, and HollyHR gets its 2xx.
//!
//! Accepting before the job runs is safe: the change that caused the event also moved the person's
//! `updated_at`, so the next incremental cycle covers anything lost in a crash or a full queue.
//!
//! Statuses: 400 missing or invalid headers, stale timestamps, malformed JSON; 401 a signature no
//! held secret made; 404 an unknown PeopleSync; 413 a body over 256 KiB; 415 not JSON; 503 (with
//! `Retry-After`) a full queue; 200 a duplicate; 202 accepted. No response or log line carries a
//! secret, a digest, or anything from the body.

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

/// Secrets by PeopleSync (namespace, name); written by the controller, read per request.
#[derive(Clone, Default)]
pub struct SecretBook(Arc<RwLock<HashMap<(String, String), SigningSecrets>>>);

impl SecretBook {
    pub fn set(&self, namespace: &str, name: &str, secrets: SigningSecrets) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_owned(), name.to_owned()), secrets);
    }

    pub fn remove(&self, namespace: &str, name: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Whether secrets are held for this PeopleSync.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.get(namespace, name).is_some()
    }

    fn get(&self, namespace: &str, name: &str) -> Option<SigningSecrets> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace.to_owned(), name.to_owned()))
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
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::BadRequest => "bad_request",
            Outcome::BadSignature => "bad_signature",
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
    let Some(secrets) = receiver.secrets.get(&namespace, &name) else {
        return answer(
            &receiver,
            Outcome::UnknownObject,
            StatusCode::NOT_FOUND,
            "no PeopleSync with a webhook here",
        );
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
        if receiver.queue.try_send(job).is_err() {
            (receiver.observe)(Outcome::QueueFull);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
                axum::Json(json!({ "status": "queue_full", "message": "busy: retry later" })),
            )
                .into_response();
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

#[cfg(test)]
mod tests;
