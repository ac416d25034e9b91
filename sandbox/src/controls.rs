//! Test and demo controls outside the contract, under `/_sandbox/` (see the table in
//! `sandbox.rs`); the ones both sandboxes share are in `control_routes.rs`. They have no auth:
//! the sandbox listens on loopback for tests and demos.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::control_routes::{self, bad_request, parse};
use super::store::Sandbox;
use peoplesync::source::hollyhr::model::UpdateEmploymentRequest;

pub fn router(state: Arc<Sandbox>) -> Router {
    control_routes::router::<Sandbox>()
        .route("/_sandbox/people/{id}/ui-edit", post(ui_edit))
        .with_state(state)
}

/// The HollyHR UI's edits: any of these fields, applied without a webhook event.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UiEdit {
    first_name: Option<String>,
    last_name: Option<String>,
    preferred_name: Option<String>,
    job_title: Option<String>,
    department_org_unit_id: Option<String>,
    manager_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    status: Option<String>,
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
    let mut state = sandbox.state();
    let index = match state.person_index(&id) {
        Ok(index) => index,
        Err(_) => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "person not found"})),
            )
                .into_response();
        }
    };
    let employment = UpdateEmploymentRequest {
        job_title: edit.job_title.map(Some),
        department_org_unit_id: edit.department_org_unit_id.map(Some),
        manager_id: edit.manager_id.map(Some),
        start_date: edit.start_date.map(Some),
        ..Default::default()
    };
    if let Err(error) = state.update_employment(index, employment, now, None) {
        return bad_request(error.message);
    }
    let end_date = match edit
        .end_date
        .as_deref()
        .map(|d| super::store::parse_date("end_date", d))
        .transpose()
    {
        Ok(date) => date,
        Err(error) => return bad_request(error.message),
    };
    let person = &mut state.people[index].person;
    if let Some(first) = edit.first_name {
        person.first_name = Some(first);
    }
    if let Some(last) = edit.last_name {
        person.last_name = Some(last);
    }
    if let Some(preferred) = edit.preferred_name {
        person.preferred_name = Some(preferred);
    }
    if end_date.is_some() {
        person.end_date = end_date;
    }
    if let Some(status) = edit.status {
        person.status = Some(status);
    }
    person.display_name = super::store::display_name(person);
    state.touch_person(index, now, None);
    axum::Json(json!({ "data": state.people[index].person })).into_response()
}
