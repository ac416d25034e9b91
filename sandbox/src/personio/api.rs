//! The Personio v2 HTTP surface under `/v2`: one middleware does what every operation shares
//! (the token endpoint's limit, bearer auth and scopes, per-route rate limits, faults, the error
//! bodies, the request log), and each handler translates HTTP to one `State` operation.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::super::core::faults::{self, FaultError};
use super::super::core::http::{self, BodyError, Failure, Operations, RequestLine, json};
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ERROR_TYPE_BASE};
use super::store::{self, Sandbox};
use peoplesync::source::personio::model::{Problem, ProblemError, TokenError, route, scope};

mod hooks;
mod persons;

/// `(method, route template, required scope)` of every operation. Employment and org-unit reads
/// need `personio:persons:read` (our decision; Personio's specs name no scope for them).
const OPERATIONS: &Operations = &[
    (Method::POST, route::TOKEN, None),
    (Method::POST, route::REVOKE, None),
    (Method::GET, route::PERSONS, Some(scope::PERSONS_READ)),
    (Method::POST, route::PERSONS, Some(scope::PERSONS_WRITE)),
    (Method::GET, route::PERSON, Some(scope::PERSONS_READ)),
    (Method::PATCH, route::PERSON, Some(scope::PERSONS_WRITE)),
    (Method::DELETE, route::PERSON, Some(scope::PERSONS_WRITE)),
    (Method::GET, route::EMPLOYMENTS, Some(scope::PERSONS_READ)),
    (Method::GET, route::EMPLOYMENT, Some(scope::PERSONS_READ)),
    (Method::PATCH, route::EMPLOYMENT, Some(scope::PERSONS_WRITE)),
    (Method::GET, route::ORG_UNIT, Some(scope::PERSONS_READ)),
    (Method::GET, route::WEBHOOKS, Some(scope::WEBHOOKS_READ)),
    (Method::POST, route::WEBHOOKS, Some(scope::WEBHOOKS_WRITE)),
    (Method::GET, route::WEBHOOK, Some(scope::WEBHOOKS_READ)),
    (Method::PATCH, route::WEBHOOK, Some(scope::WEBHOOKS_WRITE)),
    (Method::DELETE, route::WEBHOOK, Some(scope::WEBHOOKS_WRITE)),
    (
        Method::GET,
        route::WEBHOOK_ACTIVITY,
        Some(scope::WEBHOOKS_READ),
    ),
    (
        Method::POST,
        route::WEBHOOK_PING,
        Some(scope::WEBHOOKS_WRITE),
    ),
];

/// The route template of a concrete path (variables are any one non-empty segment).
pub fn route_template(path: &str) -> Option<&'static str> {
    http::route_template(OPERATIONS, path)
}

fn required_scope(method: &Method, template: Option<&str>) -> Option<&'static str> {
    http::required_scope(OPERATIONS, method, template)
}

pub fn router(state: Arc<Sandbox>) -> Router {
    // axum needs one name per path position, so these differ from the logged templates.
    let routes = Router::new()
        .route(route::TOKEN, post(token))
        .route(route::REVOKE, post(revoke))
        .route(
            route::PERSONS,
            get(persons::list_persons).post(persons::create_person),
        )
        .route(
            "/v2/persons/{person_id}",
            get(persons::get_person)
                .patch(persons::patch_person)
                .delete(persons::delete_person),
        )
        .route(
            "/v2/persons/{person_id}/employments",
            get(persons::list_employments),
        )
        .route(
            "/v2/persons/{person_id}/employments/{id}",
            get(persons::get_employment).patch(persons::patch_employment),
        )
        .route(route::ORG_UNIT, get(persons::get_org_unit))
        .route(
            route::WEBHOOKS,
            get(hooks::list_webhooks).post(hooks::create_webhook),
        )
        .route(
            route::WEBHOOK,
            get(hooks::get_webhook)
                .patch(hooks::update_webhook)
                .delete(hooks::delete_webhook),
        )
        .route(route::WEBHOOK_ACTIVITY, get(hooks::list_activity))
        .route(route::WEBHOOK_PING, post(hooks::ping));
    http::api_router(
        routes,
        state.clone(),
        ApiError::route_not_found,
        ApiError::route_not_found,
    )
    .layer(middleware::from_fn_with_state(state, envelope))
}

/// Everything Personio's operations share: the token endpoints' own limit, or the bearer token,
/// the route's rate limit and the scope; injected faults; then the error bodies (a `TokenError`
/// on the token endpoints, a `Problem` elsewhere) and the request log.
async fn envelope(
    State(sandbox): State<Arc<Sandbox>>,
    mut request: Request,
    next: Next,
) -> Response {
    let line = RequestLine::of(&request);
    let template = route_template(&line.path);
    let token_route = matches!(template, Some(route::TOKEN | route::REVOKE));

    let early: Option<ApiError> = if token_route {
        let limited = if template == Some(route::TOKEN) {
            sandbox
                .vendor
                .token_limiter
                .lock()
                .expect("token limiter lock is never poisoned")
                .check(Instant::now())
                .err()
        } else {
            None
        };
        match limited {
            Some(seconds) => Some(ApiError::rate_limited(seconds)),
            None => faults::inject(&sandbox).await,
        }
    } else {
        match authenticate(&sandbox, request.headers()) {
            None => Some(ApiError::unauthorized()),
            Some(caller) => {
                let quota = sandbox.limiter.check(
                    &caller.token_id,
                    template.unwrap_or("/unknown"),
                    Instant::now(),
                );
                let scope = required_scope(&line.method, template);
                if !quota.allowed {
                    Some(ApiError::rate_limited(quota.reset_seconds))
                } else if let Some(scope) = scope.filter(|s| !caller.scopes.iter().any(|c| c == s))
                {
                    Some(ApiError::forbidden(scope))
                } else {
                    request.extensions_mut().insert(caller);
                    faults::inject(&sandbox).await
                }
            }
        }
    };
    let mut response = match early {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    };

    // Rejections of the HTTP stack itself (a body too large, a bad path encoding) get a
    // Personio error body too.
    let error = match http::failure(&mut response, is_json) {
        Some(Failure::Api(error)) => Some(error),
        Some(Failure::Rejected(StatusCode::NOT_FOUND)) => Some(ApiError::route_not_found()),
        Some(Failure::Rejected(status)) => Some(ApiError::bad_request(format!(
            "The request could not be read ({status})."
        ))),
        None => None,
    };
    if let Some(error) = error {
        response = render_error(&sandbox, &error, token_route);
    }
    let status = response.status().as_u16();
    sandbox.log(store::LogEntry {
        method: line.method.to_string(),
        route: template.map_or(line.path, str::to_owned),
        path: line.path_and_query,
        status,
    });
    response
}

fn authenticate(sandbox: &Sandbox, headers: &HeaderMap) -> Option<Caller> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (kind, token) = value.split_once(' ')?;
    if !kind.eq_ignore_ascii_case("bearer") {
        return None;
    }
    sandbox
        .tokens()
        .authenticate(token.trim(), sandbox.clock.now())
}

fn trace_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..16],
        &hex[16..24],
        &hex[24..32]
    )
}

/// A `Problem` (resource routes) or a `TokenError` (token endpoints), as problem+json.
fn render_error(sandbox: &Sandbox, error: &ApiError, token_route: bool) -> Response {
    let timestamp = sandbox.clock.now().to_string();
    let bytes = if token_route {
        serde_json::to_vec(&TokenError {
            error: error.oauth_error().to_owned(),
            error_description: Some(error.detail.clone()),
            error_uri: Some(format!("{ERROR_TYPE_BASE}{}", error.code)),
            timestamp: Some(timestamp),
            trace_id: Some(trace_id()),
            meta: None,
        })
    } else {
        serde_json::to_vec(&Problem {
            personio_trace_id: Some(trace_id()),
            timestamp: Some(timestamp),
            errors: vec![ProblemError {
                title: Some(error.title.to_owned()),
                detail: Some(error.detail.clone()),
                kind: Some(format!("{ERROR_TYPE_BASE}{}", error.code)),
                meta: None,
            }],
        })
    }
    .expect("error bodies always serialize");
    let mut response = (
        error.status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        bytes,
    )
        .into_response();
    if let Some(seconds) = error.retry_after {
        http::set_retry_after(&mut response, seconds);
    }
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    http::content_type_is(headers, &["application/json", "application/problem+json"])
}

// ---------------------------------------------------------------------------------------------
// Shared request/response helpers
// ---------------------------------------------------------------------------------------------

/// `http://<Host>`: where `_meta.links` point (the address the client used).
fn origin(headers: &HeaderMap, sandbox: &Sandbox) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| sandbox.config.listen.to_string());
    format!("http://{host}")
}

/// A JSON body, naming the field that failed.
fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> ApiResult<T> {
    if !is_json(headers) {
        return Err(ApiError::bad_request(
            "Request bodies must be application/json.",
        ));
    }
    http::from_json(body).map_err(|error| match error {
        BodyError::Invalid { path: None, error } => {
            ApiError::bad_request(format!("The body is invalid: {error}."))
        }
        BodyError::Invalid {
            path: Some(path),
            error,
        } => ApiError::bad_request(format!("{path} is invalid: {error}.")),
        BodyError::TrailingData => ApiError::bad_request("The body has trailing data."),
    })
}

/// A form body; anything but `application/x-www-form-urlencoded` is `invalid_request`.
fn parse_form(headers: &HeaderMap, body: &Bytes) -> ApiResult<Vec<(String, String)>> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(ApiError::oauth(
            "invalid_request",
            "The request must be application/x-www-form-urlencoded.",
        ));
    }
    Ok(url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

type Shared = State<Arc<Sandbox>>;

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

async fn token(State(sandbox): Shared, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let form = parse_form(&headers, &body)?;
    let token = sandbox.tokens().issue(
        &sandbox.vendor.credential,
        &form,
        sandbox.config.token_ttl,
        sandbox.clock.now(),
    )?;
    let mut response = json(StatusCode::OK, &token);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn revoke(State(sandbox): Shared, headers: HeaderMap, body: Bytes) -> ApiResult<StatusCode> {
    let form = parse_form(&headers, &body)?;
    sandbox.tokens().revoke(&form)?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concrete_paths_map_to_the_model_route_templates() {
        assert_eq!(route_template("/v2/persons"), Some(route::PERSONS));
        assert_eq!(route_template("/v2/persons/3001"), Some(route::PERSON));
        assert_eq!(
            route_template("/v2/persons/3001/employments/e-1"),
            Some(route::EMPLOYMENT)
        );
        assert_eq!(
            route_template("/v2/webhooks/w/activity"),
            Some(route::WEBHOOK_ACTIVITY)
        );
        assert_eq!(route_template("/v2/employments"), None);
        assert_eq!(
            required_scope(&Method::PATCH, Some(route::EMPLOYMENT)),
            Some(scope::PERSONS_WRITE)
        );
        assert_eq!(required_scope(&Method::POST, Some(route::TOKEN)), None);
    }
}
