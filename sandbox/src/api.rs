//! The contract's HTTP surface under `/api/v1`: one middleware does what every operation shares
//! (request id, auth and scope, rate limits, faults, the error envelope, the request log), and
//! each handler translates HTTP to one `State` operation.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::core::faults::{self, FaultError};
use super::core::http::json as json_response;
use super::core::http::{self, BodyError, Failure, Operations, RequestLine, header_value};
use super::error::{ApiError, ApiResult};
use super::store::{self, DeliveryQuery, PeopleQuery, Sandbox, StoredResponse};
use super::{ids, validate};

mod people;
mod webhooks;

use people::*;
use peoplesync::source::hollyhr::model::*;
use webhooks::*;

/// Who is calling, set by the middleware for the handlers.
#[derive(Clone)]
struct Caller {
    key_id: String,
    scopes: Vec<String>,
}

/// `(method, route template, required scope)` of every operation in the contract subset.
const OPERATIONS: &Operations = &[
    (Method::GET, "/me", None),
    (Method::GET, "/people", Some("people:read")),
    (Method::POST, "/people", Some("people:write")),
    (Method::GET, "/people/{personId}", Some("people:read")),
    (Method::PATCH, "/people/{personId}", Some("people:write")),
    (
        Method::GET,
        "/people/{personId}/org-links",
        Some("people:read"),
    ),
    (
        Method::GET,
        "/people/{personId}/employment",
        Some("people:read"),
    ),
    (
        Method::PATCH,
        "/people/{personId}/employment",
        Some("people:write"),
    ),
    (Method::POST, "/people/{personId}/end", Some("people:write")),
    (
        Method::POST,
        "/people/{personId}/reactivate",
        Some("people:write"),
    ),
    (Method::GET, "/org-units", Some("org_units:read")),
    (
        Method::GET,
        "/org-units/{orgUnitId}",
        Some("org_units:read"),
    ),
    (Method::GET, "/webhooks", Some("webhooks:manage")),
    (Method::POST, "/webhooks", Some("webhooks:manage")),
    (
        Method::GET,
        "/webhooks/{webhookId}",
        Some("webhooks:manage"),
    ),
    (
        Method::PATCH,
        "/webhooks/{webhookId}",
        Some("webhooks:manage"),
    ),
    (
        Method::DELETE,
        "/webhooks/{webhookId}",
        Some("webhooks:manage"),
    ),
    (
        Method::POST,
        "/webhooks/{webhookId}/rotate-secret",
        Some("webhooks:manage"),
    ),
    (
        Method::POST,
        "/webhooks/{webhookId}/test",
        Some("webhooks:manage"),
    ),
    (
        Method::GET,
        "/webhooks/{webhookId}/health",
        Some("webhooks:manage"),
    ),
    (
        Method::GET,
        "/webhooks/{webhookId}/deliveries",
        Some("webhooks:manage"),
    ),
    (
        Method::GET,
        "/webhooks/{webhookId}/deliveries/{deliveryId}",
        Some("webhooks:manage"),
    ),
    (
        Method::POST,
        "/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver",
        Some("webhooks:manage"),
    ),
];

/// The contract template of a concrete path below `/api/v1` (variables are any one segment).
pub fn route_template(path: &str) -> Option<&'static str> {
    http::route_template(OPERATIONS, path)
}

pub fn router(state: Arc<Sandbox>) -> Router {
    let api: Router<Arc<Sandbox>> = Router::new()
        .route("/me", get(me))
        .route("/people", get(list_people).post(create_person))
        .route("/people/{id}", get(get_person).patch(update_person))
        .route("/people/{id}/org-links", get(org_links))
        .route(
            "/people/{id}/employment",
            get(get_employment).patch(update_employment),
        )
        .route("/people/{id}/end", post(end_person))
        .route("/people/{id}/reactivate", post(reactivate_person))
        .route("/org-units", get(list_org_units))
        .route("/org-units/{id}", get(get_org_unit))
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/webhooks/{id}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(disable_webhook),
        )
        .route("/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/webhooks/{id}/test", post(test_webhook))
        .route("/webhooks/{id}/health", get(webhook_health))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route("/webhooks/{id}/deliveries/{delivery}", get(get_delivery))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        );
    let api = http::api_router(
        api,
        state.clone(),
        || ApiError::not_found("route"),
        || ApiError::not_found("operation"),
    );
    Router::new()
        .nest("/api/v1", api)
        .layer(middleware::from_fn_with_state(state, envelope))
}

/// Everything the contract's operations share, in the order a real API applies it: a request
/// id, the API key and its scope, the route's rate limit, injected faults; then the error
/// envelope, the `RateLimit-*` headers and the request log.
async fn envelope(
    State(sandbox): State<Arc<Sandbox>>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = sandbox.next_request_id();
    let line = RequestLine::of(&request);
    let method = &line.method;
    let below = line.path.strip_prefix("/api/v1").unwrap_or(&line.path);
    let template = route_template(below);
    let started = Instant::now();

    let caller = authenticate(&sandbox, request.headers());
    let bucket_key = caller
        .as_ref()
        .map_or("anonymous".to_owned(), |c| c.key_id.clone());
    let quota = sandbox
        .limiter
        .check(&bucket_key, template.unwrap_or("/unknown"), Instant::now());

    let early: Option<ApiError> = match &caller {
        None => Some(ApiError::unauthenticated()),
        Some(_) if !quota.allowed => Some(ApiError::rate_limited(quota.reset_seconds)),
        Some(caller) => match http::required_scope(OPERATIONS, method, template) {
            Some(scope) if !caller.scopes.iter().any(|s| s == scope) => {
                Some(ApiError::missing_scope(scope))
            }
            _ => faults::inject(&sandbox).await,
        },
    };
    let mut response = match early {
        Some(error) => error.into_response(),
        None => {
            if let Some(caller) = caller {
                request.extensions_mut().insert(caller);
            }
            next.run(request).await
        }
    };

    // Errors become the contract's envelope, with this request's id. Rejections from the HTTP
    // stack itself get a documented status with the envelope instead of plain text.
    let error = match http::failure(&mut response, is_json) {
        Some(Failure::Api(error)) => Some(error),
        Some(Failure::Rejected(StatusCode::NOT_FOUND)) => Some(ApiError::not_found("route")),
        Some(Failure::Rejected(status)) => Some(ApiError::invalid(format!(
            "the request could not be read ({})",
            status.canonical_reason().unwrap_or("bad request")
        ))),
        None => None,
    };
    if let Some(error) = error {
        response = render_error(&error, &request_id);
    }
    let headers = response.headers_mut();
    headers.insert("x-request-id", header_value(&request_id));
    headers.insert("ratelimit-limit", header_value(&quota.limit.to_string()));
    headers.insert(
        "ratelimit-remaining",
        header_value(&quota.remaining.to_string()),
    );
    headers.insert(
        "ratelimit-reset",
        header_value(&quota.reset_seconds.to_string()),
    );
    let status = response.status().as_u16();
    sandbox.log(store::LogEntry {
        method: method.to_string(),
        route: template.map_or_else(|| line.path.clone(), str::to_owned),
        path: line.path_and_query.clone(),
        status,
    });
    tracing::debug!(
        method = %method,
        route = template.unwrap_or("?"),
        status,
        elapsed_us = started.elapsed().as_micros() as u64,
        "sandbox request"
    );
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    http::content_type_is(headers, &["application/json"])
}

fn render_error(error: &ApiError, request_id: &str) -> Response {
    let body = ErrorEnvelope {
        error: ErrorBody {
            code: error.code.as_str().to_owned(),
            message: error.message.clone(),
            request_id: request_id.to_owned(),
            details: (!error.details.is_empty()).then(|| error.details.clone()),
        },
    };
    let mut response = json_response(error.status, &body);
    if let Some(seconds) = error.retry_after {
        http::set_retry_after(&mut response, seconds);
    }
    response
}

fn authenticate(sandbox: &Sandbox, headers: &HeaderMap) -> Option<Caller> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    sandbox
        .config
        .api_keys
        .iter()
        .enumerate()
        .find(|(_, spec)| {
            // Constant-time: a key is a credential.
            use subtle::ConstantTimeEq;
            bool::from(spec.key.as_bytes().ct_eq(token.as_bytes()))
        })
        .map(|(index, spec)| Caller {
            key_id: format!("key_{index:04}"),
            scopes: spec.scopes.clone(),
        })
}

// ---------------------------------------------------------------------------------------------
// Shared request/response helpers
// ---------------------------------------------------------------------------------------------

fn with_etags(mut response: Response, (etag, resource): &(String, String)) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ETAG, header_value(etag));
    headers.insert("hollyhr-resource-etag", header_value(resource));
    response
}

/// 304 when `If-None-Match` names the current version (either tag, weak or strong, or `*`).
fn not_modified(headers: &HeaderMap, tags: &(String, String)) -> Option<Response> {
    let raw = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    let hit = raw.split(',').map(str::trim).any(|candidate| {
        let candidate = candidate.trim_start_matches("W/");
        candidate == "*" || candidate == tags.0 || candidate == tags.1
    });
    hit.then(|| with_etags(StatusCode::NOT_MODIFIED.into_response(), tags))
}

/// 428 without `If-Match`, 412 unless it is exactly the current `HollyHR-Resource-ETag`.
fn check_if_match(headers: &HeaderMap, tags: &(String, String)) -> ApiResult<()> {
    let value = headers
        .get(header::IF_MATCH)
        .ok_or_else(ApiError::precondition_required)?
        .to_str()
        .map_err(|_| ApiError::precondition_failed())?;
    if value.trim() == tags.1 {
        Ok(())
    } else {
        Err(ApiError::precondition_failed())
    }
}

/// Parses a JSON body strictly (unknown fields rejected), naming the failing field.
fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> ApiResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json(headers) {
        return Err(ApiError::invalid_field(
            "Content-Type",
            "request bodies must be application/json",
        ));
    }
    match http::from_json(body) {
        Ok(value) => Ok(Some(value)),
        Err(BodyError::Invalid { path, error }) => {
            let issue = if error.is_syntax() || error.is_eof() {
                format!("is not valid JSON ({error})")
            } else {
                error.to_string()
            };
            Err(ApiError::invalid_field(
                path.unwrap_or_else(|| "body".to_owned()),
                issue,
            ))
        }
        Err(BodyError::TrailingData) => Err(ApiError::invalid_field(
            "body",
            "has trailing data after the JSON value",
        )),
    }
}

fn require_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> ApiResult<T> {
    parse_body(headers, body)?.ok_or_else(|| ApiError::invalid_field("body", "is required"))
}

/// Query parameters: each known at most once; anything else is a 400.
fn parse_query(raw: Option<&str>, allowed: &[&str]) -> ApiResult<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (i, (key, _)) in pairs.iter().enumerate() {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::invalid_field(
                key.clone(),
                "is not a parameter of this operation",
            ));
        }
        if pairs[..i].iter().any(|(k, _)| k == key) {
            return Err(ApiError::invalid_field(
                key.clone(),
                "is given more than once",
            ));
        }
    }
    Ok(pairs)
}

fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn query_limit(pairs: &[(String, String)]) -> ApiResult<usize> {
    match query_value(pairs, "limit") {
        None => Ok(25),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_field(
                "limit",
                "must be an integer from 1 to 100",
            )),
        },
    }
}

fn query_time(pairs: &[(String, String)], key: &str) -> ApiResult<Option<Timestamp>> {
    query_value(pairs, key)
        .map(|raw| {
            raw.parse::<Timestamp>()
                .map_err(|_| ApiError::invalid_field(key, "must be an RFC 3339 date-time"))
        })
        .transpose()
}

fn query_cursor(pairs: &[(String, String)]) -> ApiResult<Option<String>> {
    match query_value(pairs, "cursor") {
        Some("") => Err(ApiError::invalid_field("cursor", "must not be empty")),
        other => Ok(other.map(str::to_owned)),
    }
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<String> {
    let value = headers
        .get("idempotency-key")
        .ok_or_else(ApiError::idempotency_required)?;
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid_field("Idempotency-Key", "must be printable ASCII"))?;
    let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if !(8..=255).contains(&key.len()) || !printable {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "must be 8–255 printable ASCII characters",
        ));
    }
    Ok(key.to_owned())
}

/// A mutation's response, and what a replay of the same `Idempotency-Key` returns.
struct Mutation {
    status: StatusCode,
    body: Bytes,
    /// For create/rotate: the body with `signing_secret: null` (secrets are shown once).
    replay_body: Option<Bytes>,
    etags: Option<(String, String)>,
}

impl Mutation {
    fn json<T: Serialize>(status: StatusCode, body: &T, etags: Option<(String, String)>) -> Self {
        Self {
            status,
            body: Bytes::from(serde_json::to_vec(body).expect("API bodies always serialize")),
            replay_body: None,
            etags,
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    if let Some(error) = stored.error {
        return error.into_response();
    }
    let mut response = (
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        stored.body,
    )
        .into_response();
    for (name, value) in stored.headers {
        response.headers_mut().insert(name, header_value(&value));
    }
    response
}

/// A mutating request, as every mutation handler takes it (the last argument: it reads the
/// body): the sandbox, the caller, and what makes the request itself for `Idempotency-Key`.
struct Write {
    sandbox: Arc<Sandbox>,
    caller: Caller,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl axum::extract::FromRequest<Arc<Sandbox>> for Write {
    type Rejection = Response;

    async fn from_request(request: Request, sandbox: &Arc<Sandbox>) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), sandbox)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            sandbox: sandbox.clone(),
            caller,
            method: parts.method,
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
        })
    }
}

impl Write {
    /// The request's JSON body: required, and valid by `validate`.
    fn body<T: DeserializeOwned>(
        &self,
        validate: impl FnOnce(&T) -> ApiResult<()>,
    ) -> ApiResult<T> {
        let request = require_body::<T>(&self.headers, &self.body)?;
        validate(&request)?;
        Ok(request)
    }

    /// Runs a mutation under `Idempotency-Key` rules: the same key with the same request (method,
    /// path, `If-Match`, body) replays the first response; with a different request it is a 409.
    /// Injected faults and 429s happen before this point, so a retried request is never answered
    /// from a failure.
    fn idempotent(
        &self,
        operation: impl FnOnce(&mut store::State, Timestamp) -> ApiResult<Mutation>,
    ) -> Response {
        let Self {
            sandbox,
            caller,
            method,
            path,
            headers,
            body,
        } = self;
        let key = match idempotency_key(headers) {
            Ok(key) => key,
            Err(error) => return error.into_response(),
        };
        let if_match = headers
            .get(header::IF_MATCH)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let fingerprint: [u8; 32] = {
            let mut hasher = Sha256::new();
            for part in [method.as_str().as_bytes(), path.as_bytes(), &if_match, body] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
            hasher.finalize().into()
        };
        let now = sandbox.clock.now();
        let mut state = sandbox.state();
        match state.idempotency_lookup(&caller.key_id, &key, fingerprint, now) {
            Ok(Some(stored)) => return replay(stored),
            Ok(None) => {}
            Err(error) => return error.into_response(),
        }
        let result = operation(&mut state, now);
        let stored = match &result {
            Ok(mutation) => StoredResponse {
                fingerprint,
                status: mutation.status.as_u16(),
                headers: mutation
                    .etags
                    .iter()
                    .flat_map(|(e, r)| [("etag", e.clone()), ("hollyhr-resource-etag", r.clone())])
                    .collect(),
                body: mutation
                    .replay_body
                    .clone()
                    .unwrap_or_else(|| mutation.body.clone()),
                stored_at: now,
                error: None,
            },
            Err(error) => StoredResponse {
                fingerprint,
                status: error.status.as_u16(),
                headers: Vec::new(),
                body: Bytes::new(),
                stored_at: now,
                error: Some(error.clone()),
            },
        };
        state.idempotency_store(&caller.key_id, &key, stored);
        drop(state);
        sandbox.wake.notify_one();
        match result {
            Ok(mutation) => {
                let response = (
                    mutation.status,
                    [(header::CONTENT_TYPE, "application/json")],
                    mutation.body,
                )
                    .into_response();
                match &mutation.etags {
                    Some(tags) => with_etags(response, tags),
                    None => response,
                }
            }
            Err(error) => error.into_response(),
        }
    }
}

fn person_tags(record: &store::PersonRecord) -> (String, String) {
    store::etags('p', &record.person.id, record.version)
}

fn employment_tags(record: &store::PersonRecord) -> (String, String) {
    store::etags('e', &record.person.id, record.employment_version)
}

fn webhook_tags(record: &store::WebhookRecord) -> (String, String) {
    store::etags('w', &record.webhook.id, record.version)
}

type Shared = State<Arc<Sandbox>>;
type CallerExt = axum::Extension<Caller>;

// ---------------------------------------------------------------------------------------------
// Meta
// ---------------------------------------------------------------------------------------------

async fn me(State(_sandbox): Shared, axum::Extension(caller): CallerExt) -> Response {
    json_response(
        StatusCode::OK,
        &Data {
            data: Me {
                organisation: IdOnly {
                    id: ids::encrypted_id("org", "peoplesync-demo"),
                },
                api_key: ApiKeyInfo {
                    key_id: caller.key_id.clone(),
                    scopes: caller.scopes.clone(),
                },
                environment: Environment {
                    kind: EnvironmentType::Sandbox,
                    sandbox: true,
                },
                actor: Actor {
                    kind: "api_key".into(),
                    key_id: caller.key_id,
                },
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concrete_paths_map_to_contract_templates() {
        assert_eq!(route_template("/people"), Some("/people"));
        assert_eq!(route_template("/people/abc"), Some("/people/{personId}"));
        assert_eq!(
            route_template("/people/abc/org-links"),
            Some("/people/{personId}/org-links")
        );
        assert_eq!(
            route_template("/webhooks/w/deliveries/d/redeliver"),
            Some("/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver")
        );
        assert_eq!(route_template("/people/abc/personal"), None);
        assert_eq!(route_template("/nope"), None);
    }
}
