//! Test and demo controls outside Personio's API, under `/_sandbox/` (see the table in
//! `personio.rs`); the ones both sandboxes share are in `../core/controls.rs`. They have no
//! auth: the sandbox listens on loopback for tests and demos.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::super::core::controls::{self, bad_request};
use super::store::{self, EmploymentPatch, PersonPatch, Sandbox};

pub fn router(state: Arc<Sandbox>) -> Router {
    controls::router::<store::State>()
        .route("/_sandbox/events", get(events))
        .with_state(state)
}

/// An edit as Personio's UI makes it: the person and/or their latest employment change and
/// `updated_at` moves, but no webhook event is emitted.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UiEdit {
    person: Option<PersonPatch>,
    employment: Option<EmploymentPatch>,
}

impl controls::UiEdits for store::State {
    const PEOPLE: &'static str = "persons";
    type Edit = UiEdit;

    /// The latest employment first, then the person.
    fn ui_edit(sandbox: &Sandbox, id: &str, edit: UiEdit) -> Response {
        let now = sandbox.clock.now();
        let bump = sandbox.settings().employment_bumps_person;
        let mut state = sandbox.state();
        if let Err(error) = state.person(id) {
            return controls::error(error.status, error.detail);
        }
        if let Some(employment) = edit.employment
            && let Err(error) = state.patch_employment(id, None, employment, now, bump, false)
        {
            return bad_request(error.detail);
        }
        let person = state.patch_person(id, edit.person.unwrap_or_default(), now, false);
        match person {
            Ok(person) => axum::Json(person).into_response(),
            Err(error) => bad_request(error.detail),
        }
    }
}

async fn events(State(sandbox): State<Arc<Sandbox>>) -> Response {
    let events: Vec<_> = sandbox.state().events.iter().cloned().collect();
    axum::Json(json!({ "data": events })).into_response()
}
