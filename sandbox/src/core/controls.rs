//! The `/_sandbox/` controls both sandboxes answer the same way: the request log, faults, the
//! clock, settings and reset. Each sandbox's `controls.rs` merges this router with its own
//! controls (UI edits, events). They have no auth: the sandboxes listen on loopback.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::clock::Clock;
use super::faults::Faults;
use super::sandbox::{Sandbox, Tenant};

/// Test controls: settings, faults and the request log.
pub struct Controls<S, F> {
    pub settings: S,
    pub faults: F,
    pub log: VecDeque<LogEntry>,
}

/// One API request in the log (no bodies, no credentials).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    pub method: String,
    /// The API's route template (HollyHR: the contract's path template, Personio: `model::route`);
    /// the raw path when none matches.
    pub route: String,
    /// Path and query as requested.
    pub path: String,
    pub status: u16,
}

type Shared<T> = State<Arc<Sandbox<T>>>;

/// A sandbox's UI edit: a change to a person as the vendor's UI makes it (`updated_at` moves,
/// no webhook event is emitted), at `POST /_sandbox/{PEOPLE}/{id}/ui-edit`.
pub trait UiEdits: Tenant {
    /// The collection whose members are edited (`people`, `persons`).
    const PEOPLE: &'static str;
    /// The edit's JSON body.
    type Edit: DeserializeOwned + Send;

    /// Applies `edit` to the person `id`: the edited person, or a `{"error": …}` answer.
    fn ui_edit(sandbox: &Sandbox<Self>, id: &str, edit: Self::Edit) -> Response;
}

/// The shared routes, without state: the caller adds its own and then `with_state`.
pub fn router<T: UiEdits>() -> Router<Arc<Sandbox<T>>> {
    Router::new()
        .route(
            &format!("/_sandbox/{}/{{id}}/ui-edit", T::PEOPLE),
            post(ui_edit::<T>),
        )
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

/// A control's error answer: `status` with `{"error": message}`.
pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

pub fn bad_request(message: impl std::fmt::Display) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// An empty body reads as `{}`. Boxed: an error `Response` is large and this is the rare path.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| Box::new(bad_request(error)))
}

/// A control's JSON body (see [`parse`]); anything unreadable is a 400 `{"error": …}`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse(&bytes).map(Body).map_err(|response| *response)
    }
}

async fn ui_edit<T: UiEdits>(
    State(sandbox): Shared<T>,
    Path(id): Path<String>,
    Body(edit): Body<T::Edit>,
) -> Response {
    T::ui_edit(&sandbox, &id, edit)
}

async fn requests<T: Tenant>(State(sandbox): Shared<T>) -> Response {
    let log: Vec<_> = sandbox.controls().log.iter().cloned().collect();
    axum::Json(json!({ "data": log })).into_response()
}

async fn clear_requests<T: Tenant>(State(sandbox): Shared<T>) -> StatusCode {
    sandbox.controls().log.clear();
    StatusCode::NO_CONTENT
}

async fn get_faults<T: Tenant>(State(sandbox): Shared<T>) -> Response {
    let faults = sandbox.controls().faults.clone();
    axum::Json(faults).into_response()
}

async fn set_faults<T: Tenant>(
    State(sandbox): Shared<T>,
    Body(faults): Body<T::Faults>,
) -> Response {
    if !(0.0..=1.0).contains(&faults.clone().knobs().error_rate) {
        return bad_request("error_rate must be between 0 and 1");
    }
    sandbox.controls().faults = faults.clone();
    axum::Json(faults).into_response()
}

async fn clear_faults<T: Tenant>(State(sandbox): Shared<T>) -> StatusCode {
    sandbox.controls().faults = T::Faults::default();
    StatusCode::NO_CONTENT
}

fn clock_body(clock: &Clock) -> Response {
    axum::Json(json!({ "now": clock.now(), "frozen": clock.frozen() })).into_response()
}

async fn get_clock<T: Tenant>(State(sandbox): Shared<T>) -> Response {
    clock_body(&sandbox.clock)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    now: Option<Timestamp>,
    frozen: Option<bool>,
    advance_seconds: Option<i64>,
}

async fn set_clock<T: Tenant>(
    State(sandbox): Shared<T>,
    Body(request): Body<ClockRequest>,
) -> Response {
    let clock = &sandbox.clock;
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
    sandbox.wake.notify_one();
    clock_body(clock)
}

async fn get_settings<T: Tenant>(State(sandbox): Shared<T>) -> Response {
    let settings = sandbox.settings();
    axum::Json(settings).into_response()
}

/// Applies a partial settings object: every key must be a known setting.
async fn set_settings<T: Tenant>(
    State(sandbox): Shared<T>,
    Body(patch): Body<serde_json::Map<String, serde_json::Value>>,
) -> Response {
    let settings = sandbox.settings();
    let mut current = serde_json::to_value(settings).expect("settings serialize");
    for (key, value) in patch {
        if current.get(&key).is_none() {
            return bad_request(format!("unknown setting {key:?}"));
        }
        current[key] = value;
    }
    match serde_json::from_value::<T::Settings>(current) {
        Ok(settings) => {
            sandbox.controls().settings = settings;
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

async fn reset<T: Tenant>(
    State(sandbox): Shared<T>,
    Body(request): Body<ResetRequest>,
) -> Response {
    let (people, seed) = sandbox.seeded_with();
    sandbox.reset(
        request.people.unwrap_or(people),
        request.seed.unwrap_or(seed),
    );
    StatusCode::NO_CONTENT.into_response()
}
