//! People and org-unit operations.

use super::*;

pub(super) async fn list_people(
    State(sandbox): Shared,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let pairs = parse_query(
        raw.as_deref(),
        &["limit", "cursor", "search", "updated_since", "sort"],
    )?;
    let search = query_value(&pairs, "search")
        .map(|s| {
            let n = s.chars().count();
            if (2..=120).contains(&n) {
                Ok(s.to_owned())
            } else {
                Err(ApiError::invalid_field(
                    "search",
                    "must be 2–120 characters long",
                ))
            }
        })
        .transpose()?;
    let sort_desc = match query_value(&pairs, "sort") {
        None => false,
        Some("updated_at_desc") => true,
        Some(_) => return Err(ApiError::invalid_field("sort", "must be updated_at_desc")),
    };
    let query = PeopleQuery {
        limit: query_limit(&pairs)?,
        cursor: query_cursor(&pairs)?,
        updated_since: query_time(&pairs, "updated_since")?,
        sort_desc,
        search,
    };
    let settings = sandbox.settings();
    let mut state = sandbox.state();
    let (page, pagination) = state.list_people(
        &query,
        settings.updated_since_exclusive,
        settings.empty_tenant,
    )?;
    let body = Page {
        data: page
            .iter()
            .map(|&i| &state.people[i].person)
            .collect::<Vec<_>>(),
        pagination,
    };
    Ok(json_response(StatusCode::OK, &body))
}

pub(super) async fn create_person(write: Write) -> ApiResult<Response> {
    let request: CreatePersonRequest = write.body(validate::create_person)?;
    Ok(write.idempotent(|state, now| {
        let index = state.create_person(request, now)?;
        Ok(person_written(&state.people[index], StatusCode::CREATED))
    }))
}

pub(super) async fn get_person(
    State(sandbox): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let state = sandbox.state();
    let record = state.person(&id)?;
    let tags = person_tags(record);
    if let Some(response) = not_modified(&headers, &tags) {
        return Ok(response);
    }
    Ok(with_etags(
        json_response(
            StatusCode::OK,
            &Data {
                data: &record.person,
            },
        ),
        &tags,
    ))
}

pub(super) async fn update_person(Path(id): Path<String>, write: Write) -> ApiResult<Response> {
    let request: UpdatePersonRequest = write.body(validate::update_person)?;
    Ok(write.idempotent(|state, now| {
        let index = state.person_index(&id)?;
        check_if_match(&write.headers, &person_tags(&state.people[index]))?;
        state.update_person(index, request, now);
        Ok(person_written(&state.people[index], StatusCode::OK))
    }))
}

pub(super) async fn org_links(
    State(sandbox): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let now = sandbox.clock.now();
    let state = sandbox.state();
    let index = state.person_index(&id)?;
    // Links are derived from the person (and whether anyone reports to them), so the person's
    // version plus the tenant's size of reports is a sound validator.
    let links = state.org_links(index, now);
    let digest = hex::encode(&Sha256::digest(serde_json::to_vec(&links).unwrap_or_default())[..6]);
    let tags = (
        format!("\"l-{id}-{digest}\""),
        format!("\"hrr-l-{id}-{digest}\""),
    );
    if let Some(response) = not_modified(&headers, &tags) {
        return Ok(response);
    }
    Ok(with_etags(
        json_response(StatusCode::OK, &Data { data: links }),
        &tags,
    ))
}

pub(super) async fn get_employment(
    State(sandbox): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let state = sandbox.state();
    let index = state.person_index(&id)?;
    let tags = employment_tags(&state.people[index]);
    if let Some(response) = not_modified(&headers, &tags) {
        return Ok(response);
    }
    Ok(with_etags(
        json_response(
            StatusCode::OK,
            &Data {
                data: state.employment(index),
            },
        ),
        &tags,
    ))
}

pub(super) async fn update_employment(Path(id): Path<String>, write: Write) -> ApiResult<Response> {
    let request: UpdateEmploymentRequest = write.body(validate::update_employment)?;
    Ok(write.idempotent(|state, now| {
        let index = state.person_index(&id)?;
        check_if_match(&write.headers, &employment_tags(&state.people[index]))?;
        state.update_employment(index, request, now, Some(EventType::PersonUpdated))?;
        Ok(Mutation::json(
            StatusCode::OK,
            &Data {
                data: state.employment(index),
            },
            Some(employment_tags(&state.people[index])),
        ))
    }))
}

pub(super) async fn end_person(Path(id): Path<String>, write: Write) -> Response {
    let request = require_body::<EndPersonRequest>(&write.headers, &write.body)
        .and_then(|r| store::parse_date("end_date", &r.end_date));
    let end_date = match request {
        Ok(date) => date,
        Err(error) => return error.into_response(),
    };
    write.idempotent(|state, now| {
        let index = state.person_index(&id)?;
        check_if_match(&write.headers, &person_tags(&state.people[index]))?;
        state.end_person(index, end_date, now)?;
        Ok(person_written(&state.people[index], StatusCode::OK))
    })
}

pub(super) async fn reactivate_person(Path(id): Path<String>, write: Write) -> Response {
    // The body is optional; when sent it must carry start_date (the schema's `required`).
    let request =
        parse_body::<ReactivatePersonRequest>(&write.headers, &write.body).and_then(|r| {
            if let Some(r) = &r {
                validate::reactivate(r)?;
            }
            Ok(r)
        });
    let request = match request {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    write.idempotent(|state, now| {
        let index = state.person_index(&id)?;
        check_if_match(&write.headers, &person_tags(&state.people[index]))?;
        state.reactivate_person(index, request, now)?;
        Ok(person_written(&state.people[index], StatusCode::OK))
    })
}

// ---------------------------------------------------------------------------------------------
// Org units
// ---------------------------------------------------------------------------------------------

pub(super) async fn list_org_units(
    State(sandbox): Shared,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    parse_query(raw.as_deref(), &[])?;
    let state = sandbox.state();
    let active: Vec<&OrgUnit> = state.org_units.iter().filter(|u| !u.is_archived).collect();
    Ok(json_response(StatusCode::OK, &List { data: active }))
}

pub(super) async fn get_org_unit(
    State(sandbox): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let state = sandbox.state();
    let unit = state.org_unit(&id)?;
    let digest = hex::encode(&Sha256::digest(serde_json::to_vec(unit).unwrap_or_default())[..6]);
    let tags = (format!("\"o-{digest}\""), format!("\"hrr-o-{digest}\""));
    if let Some(response) = not_modified(&headers, &tags) {
        return Ok(response);
    }
    Ok(with_etags(
        json_response(StatusCode::OK, &Data { data: unit }),
        &tags,
    ))
}

/// A written person, as every person mutation answers.
fn person_written(record: &store::PersonRecord, status: StatusCode) -> Mutation {
    Mutation::json(
        status,
        &Data {
            data: &record.person,
        },
        Some(person_tags(record)),
    )
}
