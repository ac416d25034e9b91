//! The contract's error envelope. Handlers return [`ApiError`]; the outer middleware renders it
//! with the request's `X-Request-Id`, so every error body carries the same id as its header.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::core::faults::FaultError;
use super::core::http;

use peoplesync::source::hollyhr::model::{ErrorCode, ErrorDetail};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<ErrorDetail>,
    /// Seconds for `Retry-After` (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// 400 naming the offending field.
    pub fn invalid_field(field: impl Into<String>, issue: impl Into<String>) -> Self {
        let field = field.into();
        let issue = issue.into();
        Self::invalid(format!("invalid request: {field}: {issue}")).with_detail(field, issue)
    }

    pub fn with_detail(mut self, field: impl Into<String>, issue: impl Into<String>) -> Self {
        self.details.push(ErrorDetail {
            field: field.into(),
            issue: issue.into(),
        });
        self
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthenticationRequired,
            "missing, malformed, unknown, revoked or expired API key",
        )
    }

    pub fn missing_scope(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::PermissionDenied,
            format!("the API key lacks the required scope {scope}"),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    pub fn idempotency_conflict() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            ErrorCode::IdempotencyConflict,
            "Idempotency-Key was already used for a different request",
        )
    }

    /// The contract leaves this status open; the sandbox answers 400 (documented in the README).
    pub fn idempotency_required() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::IdempotencyRequired,
            "Idempotency-Key header is required on mutations",
        )
    }

    pub fn precondition_required() -> Self {
        Self::new(
            StatusCode::PRECONDITION_REQUIRED,
            ErrorCode::PreconditionRequired,
            "If-Match header with the HollyHR-Resource-ETag value is required",
        )
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::PreconditionFailed,
            "If-Match does not match the current version; re-read and retry with a new Idempotency-Key",
        )
    }

    pub fn internal(status: StatusCode) -> Self {
        Self::new(
            status,
            ErrorCode::InternalError,
            "internal error (injected fault)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        http::stash(self.status, self)
    }
}

impl FaultError for ApiError {
    fn rate_limited(retry_after: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "rate limit exceeded for this route",
        );
        error.retry_after = Some(retry_after.max(1));
        error
    }

    /// A 429 is rate limited for a second (the configured `Retry-After` is for bursts); any
    /// other status is the contract's `internal_error`.
    fn injected(status: u16, _retry_after: u64) -> Self {
        match status {
            429 => Self::rate_limited(1),
            other => Self::internal(
                StatusCode::from_u16(other).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            ),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
