//! Test and demo controls outside the contract, under `/_sandbox/` (see the table in
//! `lib.rs`): all of them are the shared ones of `core/controls.rs`; what the HollyHR UI's edit
//! does is here. They have no auth: the sandbox listens on loopback for tests and demos.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::core::controls::{self, bad_request};
use super::store::{Sandbox, State};
use peoplesync::source::hollyhr::model::UpdateEmploymentRequest;

pub fn router(state: Arc<Sandbox>) -> Router {
    controls::router::<State>().with_state(state)
}

/// The HollyHR UI's edits: any of these fields, applied without a webhook event.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiEdit {
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

impl controls::UiEdits for State {
    const PEOPLE: &'static str = "people";
    type Edit = UiEdit;

    /// The employment fields first (validated as `PATCH …/employment` validates them), then
    /// the person's.
    fn ui_edit(sandbox: &Sandbox, id: &str, edit: UiEdit) -> Response {
        let now = sandbox.clock.now();
        let mut state = sandbox.state();
        let Ok(index) = state.person_index(id) else {
            return controls::error(StatusCode::NOT_FOUND, "person not found");
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
}
