//! The client's typed errors and their static categories.

use std::time::Duration;

use http::Method;

use super::model::ErrorDetail;

/// A failed HollyHR call. Every variant names the operation (`method` + `route`, the contract's
/// path template) so logs and conditions say what failed without a person's id or data.
#[derive(Debug, thiserror::Error)]
pub enum HollyHrError {
    /// HollyHR answered with its error envelope (or a bare non-2xx status). Boxed: it is the
    /// largest variant, and errors travel by value through every `Result`.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// The request timed out (connect, send or read).
    #[error("failed to get an answer to {method} {route} in time")]
    Timeout {
        method: Method,
        route: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The connection could not be made or broke.
    #[error("failed to reach HollyHR for {method} {route}")]
    Network {
        method: Method,
        route: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx body that does not match the contract. Only the JSON path is kept: serde's own
    /// message quotes the offending value, which may be a personal field.
    #[error(
        "failed to decode the answer to {method} {route} at `{path}` ({kind}, request id {})",
        request_id.as_deref().unwrap_or("none")
    )]
    Decode {
        method: Method,
        route: &'static str,
        path: String,
        kind: &'static str,
        request_id: Option<String>,
    },
    /// The answer broke a protocol rule (e.g. `has_more` without a cursor, 304 without a
    /// conditional request).
    #[error("failed to follow the protocol on {method} {route}: {problem}")]
    Protocol {
        method: Method,
        route: &'static str,
        problem: &'static str,
    },
    /// The caller asked for something the contract does not allow; nothing was sent.
    #[error("failed to build a valid request: {0}")]
    InvalidArgument(String),
    /// The client itself could not be set up (base URL, TLS, API key characters).
    #[error("failed to configure the HollyHR client: {0}")]
    Configuration(String),
}

/// An error answer from HollyHR.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "HollyHR refused {method} {route}: {status} {code}: {message} (request id {})",
    request_id.as_deref().unwrap_or("none")
)]
pub struct ApiError {
    pub method: Method,
    pub route: &'static str,
    pub status: u16,
    /// `error.code`, verbatim (an unknown future code is kept as sent).
    pub code: String,
    pub message: String,
    /// `X-Request-Id` (or `error.request_id` when the header is missing).
    pub request_id: Option<String>,
    pub details: Vec<ErrorDetail>,
    /// `Retry-After`, when the response carried one.
    pub retry_after: Option<Duration>,
}

/// The static category of an error: the Kubernetes condition reason and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// 401: the API key is wrong, revoked or missing.
    Unauthorized,
    /// 403: the key lacks a scope (or the plan an entitlement).
    MissingScope,
    NotFound,
    /// 400 and other 4xx the client cannot fix by retrying.
    InvalidRequest,
    /// 409 `conflict`.
    Conflict,
    /// 409 `idempotency_conflict`: the same key was used for a different request.
    IdempotencyConflict,
    /// 428: `If-Match` was required.
    PreconditionRequired,
    /// 412: the `If-Match` validator is stale; re-read and retry with a new idempotency key.
    PreconditionFailed,
    RateLimited,
    ServerError,
    Timeout,
    Network,
    InvalidResponse,
    InvalidArgument,
    Configuration,
}

impl ErrorReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Unauthorized => "Unauthorized",
            ErrorReason::MissingScope => "MissingScope",
            ErrorReason::NotFound => "NotFound",
            ErrorReason::InvalidRequest => "InvalidRequest",
            ErrorReason::Conflict => "Conflict",
            ErrorReason::IdempotencyConflict => "IdempotencyConflict",
            ErrorReason::PreconditionRequired => "PreconditionRequired",
            ErrorReason::PreconditionFailed => "PreconditionFailed",
            ErrorReason::RateLimited => "RateLimited",
            ErrorReason::ServerError => "ServerError",
            ErrorReason::Timeout => "Timeout",
            ErrorReason::Network => "Network",
            ErrorReason::InvalidResponse => "InvalidResponse",
            ErrorReason::InvalidArgument => "InvalidArgument",
            ErrorReason::Configuration => "Configuration",
        }
    }

    /// The category of an HTTP error answer. The status decides; `error.code` only splits 409.
    pub fn of_status(status: u16, code: &str) -> Self {
        match status {
            401 => ErrorReason::Unauthorized,
            403 => ErrorReason::MissingScope,
            404 => ErrorReason::NotFound,
            409 if code == "idempotency_conflict" => ErrorReason::IdempotencyConflict,
            409 => ErrorReason::Conflict,
            412 => ErrorReason::PreconditionFailed,
            428 => ErrorReason::PreconditionRequired,
            429 => ErrorReason::RateLimited,
            500..=599 => ErrorReason::ServerError,
            _ => ErrorReason::InvalidRequest,
        }
    }
}

impl std::fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HollyHrError {
    /// The static category (see [`ErrorReason`]).
    pub fn category(&self) -> ErrorReason {
        match self {
            HollyHrError::Api(api) => ErrorReason::of_status(api.status, &api.code),
            HollyHrError::Timeout { .. } => ErrorReason::Timeout,
            HollyHrError::Network { .. } => ErrorReason::Network,
            HollyHrError::Decode { .. } | HollyHrError::Protocol { .. } => {
                ErrorReason::InvalidResponse
            }
            HollyHrError::InvalidArgument(_) => ErrorReason::InvalidArgument,
            HollyHrError::Configuration(_) => ErrorReason::Configuration,
        }
    }

    /// The category as a CamelCase string: a condition reason and a metric label.
    pub fn reason(&self) -> &'static str {
        self.category().as_str()
    }

    /// The HTTP status, when HollyHR answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HollyHrError::Api(api) => Some(api.status),
            _ => None,
        }
    }

    /// `error.code`, when HollyHR answered with its envelope.
    pub fn code(&self) -> Option<&str> {
        match self {
            HollyHrError::Api(api) => Some(&api.code),
            _ => None,
        }
    }

    /// `X-Request-Id` of the failed answer, for support tickets and logs.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            HollyHrError::Api(api) => api.request_id.as_deref(),
            HollyHrError::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// `Retry-After`, when the answer carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HollyHrError::Api(api) => api.retry_after,
            _ => None,
        }
    }
}

impl From<crate::http::BodyError> for HollyHrError {
    fn from(error: crate::http::BodyError) -> Self {
        HollyHrError::InvalidArgument(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_static_reasons() {
        let cases = [
            (400, "invalid_request", "InvalidRequest"),
            (401, "authentication_required", "Unauthorized"),
            (403, "permission_denied", "MissingScope"),
            (404, "not_found", "NotFound"),
            (409, "conflict", "Conflict"),
            (409, "idempotency_conflict", "IdempotencyConflict"),
            (412, "precondition_failed", "PreconditionFailed"),
            (428, "precondition_required", "PreconditionRequired"),
            (429, "rate_limited", "RateLimited"),
            (500, "internal_error", "ServerError"),
            (503, "internal_error", "ServerError"),
            (422, "something_new", "InvalidRequest"),
        ];
        for (status, code, reason) in cases {
            assert_eq!(
                ErrorReason::of_status(status, code).as_str(),
                reason,
                "{status} {code}"
            );
        }
    }

    #[test]
    fn api_error_message_names_route_status_code_and_request_id() {
        let error = HollyHrError::Api(Box::new(ApiError {
            method: Method::GET,
            route: "/people",
            status: 403,
            code: "permission_denied".into(),
            message: "missing scope people:read".into(),
            request_id: Some("req_12345678".into()),
            details: vec![],
            retry_after: None,
        }));
        let text = error.to_string();
        for part in ["GET /people", "403", "permission_denied", "req_12345678"] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        assert_eq!(error.reason(), "MissingScope");
        assert_eq!(error.request_id(), Some("req_12345678"));
    }
}
