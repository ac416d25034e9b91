//! Test and demo controls outside Personio's API, under `/_sandbox/` (see the table in
//! `personio.rs`); the ones both sandboxes share are in `../core/controls.rs`. They have no
//! auth: the sandbox listens on loopback for tests and demos.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::super::core::controls::{self, bad_request};
use super::store::{self, EmploymentPatch, PersonPatch, Sandbox};

pub fn router(state: Arc<Sandbox>) -> Router {
    controls::router::<store::State>()
        .route("/_sandbox/events", get(events))
        .route(
            "/_sandbox/org-units/{id}",
            axum::routing::put(rename_org_unit).delete(delete_org_unit),
        )
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

/// Renames an org unit (every type with that id), as an admin does in Personio's UI: no
/// person's `updated_at` moves.
async fn rename_org_unit(
    State(sandbox): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    axum::Json(rename): axum::Json<Rename>,
) -> Response {
    let mut state = sandbox.state();
    let mut found = false;
    for unit in state.org_units.iter_mut().filter(|u| u.id == id) {
        unit.name = Some(rename.name.clone());
        found = true;
    }
    if found {
        axum::http::StatusCode::NO_CONTENT.into_response()
    } else {
        controls::error(
            axum::http::StatusCode::NOT_FOUND,
            format!("no org unit {id}"),
        )
    }
}

/// Deletes an org unit: `GET /v2/org-units/{id}` answers 404 from then on (employments that
/// still point at it keep the reference, as Personio's do).
async fn delete_org_unit(State(sandbox): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    let mut state = sandbox.state();
    let before = state.org_units.len();
    state.org_units.retain(|u| u.id != id);
    if state.org_units.len() < before {
        axum::http::StatusCode::NO_CONTENT.into_response()
    } else {
        controls::error(
            axum::http::StatusCode::NOT_FOUND,
            format!("no org unit {id}"),
        )
    }
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
