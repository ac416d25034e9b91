//! Test and demo controls outside Personio's API, under `/_sandbox/` (see the table in
//! `personio.rs`). They have no auth: the sandbox listens on loopback for tests and demos.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::store::{EmploymentPatch, Faults, PersonPatch, Sandbox, Settings};

pub fn router(state: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/_sandbox/requests", get(requests).delete(clear_requests))
        .route(
            "/_sandbox/faults",
            put(set_faults).get(get_faults).delete(clear_faults),
        )
        .route("/_sandbox/clock", get(get_clock).put(set_clock))
        .route("/_sandbox/settings", get(get_settings).put(set_settings))
        .route("/_sandbox/persons/{id}/ui-edit", post(ui_edit))
        .route("/_sandbox/events", get(events))
        .route("/_sandbox/reset", post(reset))
        .with_state(state)
}

fn bad_request(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message.to_string() })),
    )
        .into_response()
}

/// Boxed: an error `Response` is large and this is the rare path.
fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Box<Response>> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| Box::new(bad_request(error)))
}

async fn requests(State(sandbox): State<Arc<Sandbox>>) -> Response {
    let log: Vec<_> = sandbox.controls().log.iter().cloned().collect();
    axum::Json(json!({ "data": log })).into_response()
}

async fn clear_requests(State(sandbox): State<Arc<Sandbox>>) -> StatusCode {
    sandbox.controls().log.clear();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(sandbox): State<Arc<Sandbox>>) -> Response {
    axum::Json(sandbox.controls().faults.clone()).into_response()
}

async fn set_faults(State(sandbox): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let faults: Faults = match parse(&body) {
        Ok(faults) => faults,
        Err(response) => return *response,
    };
    if !(0.0..=1.0).contains(&faults.error_rate) {
        return bad_request("error_rate must be between 0 and 1");
    }
    sandbox.controls().faults = faults.clone();
    axum::Json(faults).into_response()
}

async fn clear_faults(State(sandbox): State<Arc<Sandbox>>) -> StatusCode {
    sandbox.controls().faults = Faults::default();
    StatusCode::NO_CONTENT
}

fn clock_body(sandbox: &Sandbox) -> Response {
    axum::Json(json!({ "now": sandbox.clock.now(), "frozen": sandbox.clock.frozen() }))
        .into_response()
}

async fn get_clock(State(sandbox): State<Arc<Sandbox>>) -> Response {
    clock_body(&sandbox)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    now: Option<Timestamp>,
    frozen: Option<bool>,
    advance_seconds: Option<i64>,
}

async fn set_clock(State(sandbox): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let request: ClockRequest = match parse(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match (request.now, request.frozen) {
        (Some(at), frozen) => sandbox.clock.set(at, frozen.unwrap_or(false)),
        (None, Some(true)) => sandbox.clock.set(sandbox.clock.now(), true),
        (None, Some(false)) => sandbox.clock.unfreeze(),
        (None, None) => {}
    }
    if let Some(seconds) = request.advance_seconds {
        sandbox.clock.advance(SignedDuration::from_secs(seconds));
    }
    // Retries scheduled before the jump may be due now.
    sandbox.wake.notify_one();
    clock_body(&sandbox)
}

async fn get_settings(State(sandbox): State<Arc<Sandbox>>) -> Response {
    axum::Json(sandbox.settings()).into_response()
}

async fn set_settings(State(sandbox): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let mut current = serde_json::to_value(sandbox.settings()).expect("settings serialize");
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
    match serde_json::from_value::<Settings>(current) {
        Ok(settings) => {
            sandbox.controls().settings = settings;
            axum::Json(settings).into_response()
        }
        Err(error) => bad_request(error),
    }
}

/// An edit as Personio's UI makes it: the person and/or their latest employment change and
/// `updated_at` moves, but no webhook event is emitted.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct UiEdit {
    person: Option<PersonPatch>,
    employment: Option<EmploymentPatch>,
}

async fn ui_edit(
    State(sandbox): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let edit: UiEdit = match parse(&body) {
        Ok(edit) => edit,
        Err(response) => return *response,
    };
    let now = sandbox.clock.now();
    let bump = sandbox.settings().employment_bumps_person;
    let mut state = sandbox.state();
    if let Err(error) = state.person(&id) {
        return (error.status, axum::Json(json!({ "error": error.detail }))).into_response();
    }
    if let Some(employment) = edit.employment
        && let Err(error) = state.patch_employment(&id, None, employment, now, bump, false)
    {
        return bad_request(error.detail);
    }
    let person = state.patch_person(&id, edit.person.unwrap_or_default(), now, false);
    match person {
        Ok(person) => axum::Json(person).into_response(),
        Err(error) => bad_request(error.detail),
    }
}

async fn events(State(sandbox): State<Arc<Sandbox>>) -> Response {
    let events: Vec<_> = sandbox.state().events.iter().cloned().collect();
    axum::Json(json!({ "data": events })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    people: Option<usize>,
    seed: Option<u64>,
}

async fn reset(State(sandbox): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let request: ResetRequest = match parse(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    sandbox.reset(
        request.people.unwrap_or(sandbox.config.people),
        request.seed.unwrap_or(sandbox.config.seed),
    );
    StatusCode::NO_CONTENT.into_response()
}
