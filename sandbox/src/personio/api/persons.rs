//! Persons, employments and org units.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;

use super::super::error::{ApiError, ApiResult};
use super::super::paging::{self, ListKind};
use super::super::store::{
    EmploymentFilters, EmploymentPatch, PersonCreate, PersonFilters, PersonPatch, Slice, today,
};
use super::{Shared, json, origin, parse_json};
use peoplesync::source::personio::model::{ListPage, MAX_PAGE, route};

const PERSONS: ListKind<'static> = ListKind {
    kind: "persons",
    scope: "",
    default_limit: 10,
    max_limit: MAX_PAGE as usize,
};

fn employments_list(person_id: &str) -> ListKind<'_> {
    ListKind {
        kind: "employments",
        scope: person_id,
        ..PERSONS
    }
}

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

pub async fn list_persons(
    State(sandbox): Shared,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let pairs = paging::parse_query(uri.query())?;
    let request = PERSONS.request(&pairs)?;
    let filters = PersonFilters::parse(&request.filters)?;
    let (empty, looped) = {
        let controls = sandbox.controls();
        (
            controls.settings.empty_tenant,
            controls.faults.loop_next_link,
        )
    };
    let today = today(sandbox.clock.now());
    let slice = if empty {
        Slice {
            items: Vec::new(),
            more_after: None,
        }
    } else {
        sandbox
            .state()
            .list_persons(&filters, request.after.as_deref(), request.limit, today)?
    };
    let next = if looped {
        // The defect: `next` leads back to the page just served.
        Some(PERSONS.cursor(&request, request.after.as_deref()))
    } else {
        slice
            .more_after
            .map(|after| PERSONS.cursor(&request, Some(&after)))
    };
    let page = ListPage {
        data: slice.items,
        meta: paging::links(
            &origin(&headers, &sandbox),
            &path_and_query(&uri),
            route::PERSONS,
            next,
        ),
    };
    Ok(json(StatusCode::OK, &page))
}

pub async fn get_person(State(sandbox): Shared, Path(id): Path<String>) -> ApiResult<Response> {
    let today = today(sandbox.clock.now());
    let person = super::super::store::render_person(sandbox.state().person(&id)?, today);
    Ok(json(StatusCode::OK, &person))
}

pub async fn create_person(
    State(sandbox): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let create: PersonCreate = parse_json(&headers, &body)?;
    let person = sandbox.state().create_person(create, sandbox.clock.now())?;
    sandbox.wake.notify_one();
    Ok(json(StatusCode::CREATED, &person))
}

pub async fn patch_person(
    State(sandbox): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let patch: PersonPatch = parse_json(&headers, &body)?;
    let person = sandbox
        .state()
        .patch_person(&id, patch, sandbox.clock.now(), true)?;
    sandbox.wake.notify_one();
    Ok(json(StatusCode::OK, &person))
}

pub async fn delete_person(
    State(sandbox): Shared,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    sandbox.state().delete_person(&id, sandbox.clock.now())?;
    sandbox.wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_employments(
    State(sandbox): Shared,
    Path(person_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let pairs = paging::parse_query(uri.query())?;
    let kind = employments_list(&person_id);
    let request = kind.request(&pairs)?;
    let filters = EmploymentFilters::parse(&request.filters)?;
    let today = today(sandbox.clock.now());
    let slice = sandbox.state().list_employments(
        &person_id,
        &filters,
        request.after.as_deref(),
        request.limit,
        today,
    )?;
    let next = slice
        .more_after
        .map(|after| kind.cursor(&request, Some(&after)));
    let page = ListPage {
        data: slice.items,
        meta: paging::links(
            &origin(&headers, &sandbox),
            &path_and_query(&uri),
            &format!("/v2/persons/{person_id}/employments"),
            next,
        ),
    };
    Ok(json(StatusCode::OK, &page))
}

pub async fn get_employment(
    State(sandbox): Shared,
    Path((person_id, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let today = today(sandbox.clock.now());
    let employment = sandbox.state().employment(&person_id, &id, today)?;
    Ok(json(StatusCode::OK, &employment))
}

pub async fn patch_employment(
    State(sandbox): Shared,
    Path((person_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let patch: EmploymentPatch = parse_json(&headers, &body)?;
    let bump = sandbox.settings().employment_bumps_person;
    let employment = sandbox.state().patch_employment(
        &person_id,
        Some(&id),
        patch,
        sandbox.clock.now(),
        bump,
        true,
    )?;
    sandbox.wake.notify_one();
    Ok(json(StatusCode::OK, &employment))
}

/// `GET /v2/org-units/{id}?type=department|team[&include_parent_chain=true]`: the unit itself.
pub async fn get_org_unit(
    State(sandbox): Shared,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let pairs = paging::parse_query(uri.query())?;
    if let Some((key, _)) = pairs
        .iter()
        .find(|(k, _)| k != "type" && k != "include_parent_chain")
    {
        return Err(ApiError::bad_request(format!(
            "{key} is not a parameter of this operation."
        )));
    }
    let kind = paging::value(&pairs, "type")
        .ok_or_else(|| ApiError::bad_request("type is required (department or team)."))?;
    if kind != "department" && kind != "team" {
        return Err(ApiError::bad_request("type must be department or team."));
    }
    let chain = match paging::value(&pairs, "include_parent_chain") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "include_parent_chain must be true or false.",
            ));
        }
    };
    if id.parse::<i64>().is_err() {
        return Err(ApiError::bad_request("id must be an integer."));
    }
    let unit = sandbox
        .state()
        .org_unit(&id, kind, chain)
        .ok_or_else(|| ApiError::not_found("org unit"))?;
    Ok(json(StatusCode::OK, &unit))
}
