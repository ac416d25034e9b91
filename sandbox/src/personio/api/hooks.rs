//! Webhooks management and the activity log.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use jiff::Timestamp;

use super::super::error::{ApiError, ApiResult};
use super::super::paging::{self, ListKind};
use super::super::store::{ActivityFilters, WebhookFilters};
use super::{Shared, json, origin, parse_json};
use peoplesync::source::personio::model::{ListPage, MAX_WEBHOOK_PAGE, WebhookWrite, route};

const WEBHOOKS: ListKind<'static> = ListKind {
    kind: "webhooks",
    scope: "",
    default_limit: 100,
    max_limit: MAX_WEBHOOK_PAGE as usize,
};

fn position(after: Option<&str>) -> ApiResult<Option<u64>> {
    after
        .map(|raw| {
            raw.parse::<u64>()
                .map_err(|_| ApiError::bad_request("The cursor is not one this list issued."))
        })
        .transpose()
}

fn self_href(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

pub async fn create_webhook(
    State(sandbox): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let write: WebhookWrite = parse_json(&headers, &body)?;
    let insecure = sandbox.config.allow_insecure_webhook_urls;
    let webhook = sandbox.state().create_webhook(write, insecure)?;
    Ok(json(StatusCode::CREATED, &webhook))
}

pub async fn list_webhooks(
    State(sandbox): Shared,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let pairs = paging::parse_query(uri.query())?;
    let request = WEBHOOKS.request(&pairs)?;
    let mut filters = WebhookFilters::default();
    for (key, value) in &request.filters {
        match key.as_str() {
            "enabled_events" => filters.enabled_event = Some(value.clone()),
            "status" => filters.status = Some(value.clone()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{key} is not a parameter of this operation."
                )));
            }
        }
    }
    let after = position(request.after.as_deref())?;
    let (data, last) = sandbox
        .state()
        .list_webhooks(&filters, after, request.limit);
    let next = last.map(|seq| WEBHOOKS.cursor(&request, Some(&seq.to_string())));
    let page = ListPage {
        data,
        meta: paging::links(
            &origin(&headers, &sandbox),
            &self_href(&uri),
            route::WEBHOOKS,
            next,
        ),
    };
    Ok(json(StatusCode::OK, &page))
}

pub async fn get_webhook(State(sandbox): Shared, Path(id): Path<String>) -> ApiResult<Response> {
    let webhook = sandbox.state().webhook(&id)?.webhook.clone();
    Ok(json(StatusCode::OK, &webhook))
}

pub async fn update_webhook(
    State(sandbox): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let write: WebhookWrite = parse_json(&headers, &body)?;
    let insecure = sandbox.config.allow_insecure_webhook_urls;
    let webhook = sandbox.state().update_webhook(&id, write, insecure)?;
    // Enabling may release deliveries held while the webhook was disabled.
    sandbox.wake.notify_one();
    Ok(json(StatusCode::OK, &webhook))
}

pub async fn delete_webhook(
    State(sandbox): Shared,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    sandbox.state().delete_webhook(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn ping(State(sandbox): Shared, Path(id): Path<String>) -> ApiResult<Response> {
    let event = sandbox.state().ping(&id, sandbox.clock.now())?;
    sandbox.wake.notify_one();
    Ok(json(StatusCode::OK, &event))
}

fn time(key: &str, raw: &str) -> ApiResult<Timestamp> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("{key} must be an RFC 3339 date-time.")))
}

pub async fn list_activity(
    State(sandbox): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let pairs = paging::parse_query(uri.query())?;
    let kind = ListKind {
        kind: "activity",
        scope: &id,
        ..WEBHOOKS
    };
    let request = kind.request(&pairs)?;
    let mut filters = ActivityFilters::default();
    for (key, value) in &request.filters {
        match key.as_str() {
            "is_delivered" => {
                filters.is_delivered = Some(match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::bad_request("is_delivered must be true or false.")),
                });
            }
            "completed_at.gte" => filters.completed_from = Some(time(key, value)?),
            "completed_at.lte" => filters.completed_until = Some(time(key, value)?),
            "event_name" => filters.event_name = Some(value.clone()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{key} is not a parameter of this operation."
                )));
            }
        }
    }
    let before = position(request.after.as_deref())?;
    let (data, last) =
        sandbox
            .state()
            .list_activity(&id, &filters, before, request.limit, sandbox.clock.now())?;
    let next = last.map(|seq| kind.cursor(&request, Some(&seq.to_string())));
    let page = ListPage {
        data,
        meta: paging::links(
            &origin(&headers, &sandbox),
            &self_href(&uri),
            &format!("/v2/webhooks/{id}/activity"),
            next,
        ),
    };
    Ok(json(StatusCode::OK, &page))
}
