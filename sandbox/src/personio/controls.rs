//! Test and demo controls outside Personio's API, under `/_sandbox/` (see the table in
//! `personio.rs`); the ones both sandboxes share are in `../control_routes.rs`. They have no
//! auth: the sandbox listens on loopback for tests and demos.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::super::control_routes::{self, bad_request, parse};
use super::store::{EmploymentPatch, PersonPatch, Sandbox};

pub fn router(state: Arc<Sandbox>) -> Router {
    control_routes::router::<Sandbox>()
        .route("/_sandbox/persons/{id}/ui-edit", post(ui_edit))
        .route("/_sandbox/events", get(events))
        .with_state(state)
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
