//! HTTP helpers both sandboxes' APIs share: the operation table that maps a concrete path to its
//! route template and required scope, JSON bodies in and out, and the middleware's view of a
//! request and of the error a handler left in its response.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest request body an API reads.
const BODY_LIMIT: usize = 1 << 20;

/// An API's `routes`, finished: an unknown path answers `not_found()` and a known path with
/// another method `method_not_allowed()` (errors the API's middleware renders), and a body
/// larger than [`BODY_LIMIT`] is refused.
pub fn api_router<S, E>(
    routes: Router<Arc<S>>,
    sandbox: Arc<S>,
    not_found: fn() -> E,
    method_not_allowed: fn() -> E,
) -> Router
where
    S: Send + Sync + 'static,
    E: IntoResponse + Send + 'static,
{
    routes
        .fallback(move || async move { not_found() })
        .method_not_allowed_fallback(move || async move { method_not_allowed() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(sandbox)
}

/// `(method, route template, required scope)` of every operation an API serves.
pub type Operations = [(Method, &'static str, Option<&'static str>)];

/// The template of a concrete path (variables are any one non-empty segment).
pub fn route_template(operations: &Operations, path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    operations.iter().map(|(_, t, _)| *t).find(|template| {
        let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(part, segment)| {
                (part.starts_with('{') && !segment.is_empty()) || part == segment
            })
    })
}

/// The scope the operation `method` `template` requires, if any.
pub fn required_scope(
    operations: &Operations,
    method: &Method,
    template: Option<&str>,
) -> Option<&'static str> {
    let template = template?;
    operations
        .iter()
        .find(|(m, t, _)| m == method && *t == template)
        .and_then(|(_, _, scope)| *scope)
}

/// What the middleware logs of a request, read before the request moves on.
pub struct RequestLine {
    pub method: Method,
    pub path: String,
    /// Path and query as requested.
    pub path_and_query: String,
}

impl RequestLine {
    pub fn of(request: &Request) -> Self {
        let path = request.uri().path().to_owned();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
        Self {
            method: request.method().clone(),
            path,
            path_and_query,
        }
    }
}

/// Why a response needs the API's error body.
pub enum Failure<E> {
    /// A handler or the middleware answered with this error (stashed by [`stash`]).
    Api(E),
    /// The HTTP stack itself rejected the request in plain text (a body too large, a bad path
    /// encoding) with this status.
    Rejected(StatusCode),
}

/// The response of `error`, carrying it for the middleware to render: the body needs what only
/// the middleware knows (the request id, the clock, which route answered).
pub fn stash<E: Clone + Send + Sync + 'static>(status: StatusCode, error: E) -> Response {
    let mut response = status.into_response();
    response.extensions_mut().insert(error);
    response
}

/// The failure `response` stands for, if any; `is_json` tells the API's own bodies apart.
pub fn failure<E: Clone + Send + Sync + 'static>(
    response: &mut Response,
    is_json: impl Fn(&HeaderMap) -> bool,
) -> Option<Failure<E>> {
    if let Some(error) = response.extensions_mut().remove::<E>() {
        Some(Failure::Api(error))
    } else if response.status().is_client_error() && !is_json(response.headers()) {
        Some(Failure::Rejected(response.status()))
    } else {
        None
    }
}

/// Whether the `Content-Type` starts with one of `types`.
pub fn content_type_is(headers: &HeaderMap, types: &[&str]) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| types.iter().any(|t| v.starts_with(t)))
}

pub fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `Retry-After: seconds`.
pub fn set_retry_after(response: &mut Response, seconds: u64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// `body` as `application/json`, with `status`.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("API bodies always serialize");
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Why a JSON body could not be read.
pub enum BodyError {
    /// Invalid JSON or the wrong shape; `path` names the failing field (`None`: the body itself).
    Invalid {
        path: Option<String>,
        error: serde_json::Error,
    },
    /// More after the JSON value.
    TrailingData,
}

/// Parses a JSON body strictly, naming the field that failed.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        BodyError::Invalid {
            path: (path != "." && !path.is_empty()).then_some(path),
            error: error.into_inner(),
        }
    })?;
    deserializer.end().map_err(|_| BodyError::TrailingData)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATIONS: &Operations = &[
        (Method::GET, "/people", Some("people:read")),
        (Method::GET, "/people/{id}", Some("people:read")),
        (Method::POST, "/token", None),
    ];

    #[test]
    fn concrete_paths_map_to_templates_and_scopes() {
        assert_eq!(
            route_template(OPERATIONS, "/people/p1"),
            Some("/people/{id}")
        );
        assert_eq!(route_template(OPERATIONS, "/people/"), None);
        assert_eq!(
            required_scope(OPERATIONS, &Method::GET, Some("/people")),
            Some("people:read")
        );
        assert_eq!(
            required_scope(OPERATIONS, &Method::POST, Some("/token")),
            None
        );
        assert_eq!(required_scope(OPERATIONS, &Method::POST, None), None);
    }
}
