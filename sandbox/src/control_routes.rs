//! The `/_sandbox/` controls both sandboxes answer the same way: the request log, faults, the
//! clock, settings and reset. Each sandbox's `controls.rs` merges this router with its own
//! controls (UI edits, events). They have no auth: the sandboxes listen on loopback.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Notify;

use super::clock::Clock;

/// Test controls: settings, faults and the request log.
pub struct Controls<S, F, L> {
    pub settings: S,
    pub faults: F,
    pub log: VecDeque<L>,
}

/// What the shared controls need of a sandbox's state.
pub trait Controlled: Send + Sync + 'static {
    type Settings: Serialize + DeserializeOwned + Copy + Send;
    type Faults: Serialize + DeserializeOwned + Clone + Default + Send;
    type LogEntry: Serialize + Clone + Send;

    fn control_state(
        &self,
    ) -> MutexGuard<'_, Controls<Self::Settings, Self::Faults, Self::LogEntry>>;
    fn error_rate(faults: &Self::Faults) -> f64;
    fn clock(&self) -> &Clock;
    /// Wakes the delivery worker.
    fn wake(&self) -> &Notify;
    /// The configured tenant size and seed (what a reset without them uses).
    fn seeded_with(&self) -> (usize, u64);
    fn reset(&self, people: usize, seed: u64);
}

/// The shared routes, without state: the caller adds its own and then `with_state`.
pub fn router<T: Controlled>() -> Router<Arc<T>> {
    Router::new()
        .route(
            "/_sandbox/requests",
            get(requests::<T>).delete(clear_requests::<T>),
        )
        .route(
            "/_sandbox/faults",
            put(set_faults::<T>)
                .get(get_faults::<T>)
                .delete(clear_faults::<T>),
        )
        .route("/_sandbox/clock", get(get_clock::<T>).put(set_clock::<T>))
        .route(
            "/_sandbox/settings",
            get(get_settings::<T>).put(set_settings::<T>),
        )
        .route("/_sandbox/reset", post(reset::<T>))
}

pub fn bad_request(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message.to_string() })),
    )
        .into_response()
}

/// An empty body reads as `{}`. Boxed: an error `Response` is large and this is the rare path.
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| Box::new(bad_request(error)))
}

async fn requests<T: Controlled>(State(sandbox): State<Arc<T>>) -> Response {
    let log: Vec<_> = sandbox.control_state().log.iter().cloned().collect();
    axum::Json(json!({ "data": log })).into_response()
}

async fn clear_requests<T: Controlled>(State(sandbox): State<Arc<T>>) -> StatusCode {
    sandbox.control_state().log.clear();
    StatusCode::NO_CONTENT
}

async fn get_faults<T: Controlled>(State(sandbox): State<Arc<T>>) -> Response {
    let faults = sandbox.control_state().faults.clone();
    axum::Json(faults).into_response()
}

async fn set_faults<T: Controlled>(State(sandbox): State<Arc<T>>, body: Bytes) -> Response {
    let faults: T::Faults = match parse(&body) {
        Ok(faults) => faults,
        Err(response) => return *response,
    };
    if !(0.0..=1.0).contains(&T::error_rate(&faults)) {
        return bad_request("error_rate must be between 0 and 1");
    }
    sandbox.control_state().faults = faults.clone();
    axum::Json(faults).into_response()
}

async fn clear_faults<T: Controlled>(State(sandbox): State<Arc<T>>) -> StatusCode {
    sandbox.control_state().faults = T::Faults::default();
    StatusCode::NO_CONTENT
}

fn clock_body(clock: &Clock) -> Response {
    axum::Json(json!({ "now": clock.now(), "frozen": clock.frozen() })).into_response()
}

async fn get_clock<T: Controlled>(State(sandbox): State<Arc<T>>) -> Response {
    clock_body(sandbox.clock())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    now: Option<Timestamp>,
    frozen: Option<bool>,
    advance_seconds: Option<i64>,
}

async fn set_clock<T: Controlled>(State(sandbox): State<Arc<T>>, body: Bytes) -> Response {
    let request: ClockRequest = match parse(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let clock = sandbox.clock();
    match (request.now, request.frozen) {
        (Some(at), frozen) => clock.set(at, frozen.unwrap_or(false)),
        (None, Some(true)) => clock.set(clock.now(), true),
        (None, Some(false)) => clock.unfreeze(),
        (None, None) => {}
    }
    if let Some(seconds) = request.advance_seconds {
        clock.advance(SignedDuration::from_secs(seconds));
    }
    // Deliveries and retries scheduled before the jump may be due now.
    sandbox.wake().notify_one();
    clock_body(clock)
}

async fn get_settings<T: Controlled>(State(sandbox): State<Arc<T>>) -> Response {
    let settings = sandbox.control_state().settings;
    axum::Json(settings).into_response()
}

/// Applies a partial settings object: every key must be a known setting.
async fn set_settings<T: Controlled>(State(sandbox): State<Arc<T>>, body: Bytes) -> Response {
    let settings = sandbox.control_state().settings;
    let mut current = serde_json::to_value(settings).expect("settings serialize");
    let patch: serde_json::Map<String, serde_json::Value> = match parse(&body) {
        Ok(patch) => patch,
        Err(response) => return *response,
    };
    for (key, value) in patch {
        if current.get(&key).is_none() {
            return bad_request(format!("unknown setting {key:?}"));
        }
        current[key] = value;
    }
    match serde_json::from_value::<T::Settings>(current) {
        Ok(settings) => {
            sandbox.control_state().settings = settings;
            axum::Json(settings).into_response()
        }
        Err(error) => bad_request(error),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    people: Option<usize>,
    seed: Option<u64>,
}

async fn reset<T: Controlled>(State(sandbox): State<Arc<T>>, body: Bytes) -> Response {
    let request: ResetRequest = match parse(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let (people, seed) = sandbox.seeded_with();
    sandbox.reset(
        request.people.unwrap_or(people),
        request.seed.unwrap_or(seed),
    );
    StatusCode::NO_CONTENT.into_response()
}
