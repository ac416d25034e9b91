//! Personio's error bodies. Handlers return [`ApiError`]; the middleware renders it as
//! `application/problem+json`: a `Problem` on resource routes and an OAuth `TokenError` on the
//! token endpoints, stamped with the sandbox clock and a fresh trace id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::super::core::faults::FaultError;
use super::super::core::http;

/// `errors[].type` is this URI with the error code as its anchor.
pub const ERROR_TYPE_BASE: &str = "https://developer.personio.de/reference/errors#";

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// The anchor of the `type` URI, e.g. `common.bad_request`.
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// The OAuth `error` of a token-endpoint answer (`invalid_request`, `invalid_client`, ...).
    pub oauth: Option<&'static str>,
    /// Seconds for `Retry-After` (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            status,
            code,
            title,
            detail,
            oauth: None,
            retry_after: None,
        }
    }

    /// 400 `common.bad_request`: an invalid parameter, filter, cursor or body.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "common.bad_request",
            "Bad request",
            detail.into(),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "common.resource_not_found",
            "Resource not found",
            format!("There is no {what} for the specified id."),
        )
    }

    pub fn route_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "common.resource_not_found",
            "Resource not found",
            "There is no such operation.".into(),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "common.unauthorized",
            "Unauthorized",
            "The bearer token is missing, unknown, expired or revoked.".into(),
        )
    }

    pub fn forbidden(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "common.forbidden",
            "Forbidden",
            format!("The token lacks the scope {scope}."),
        )
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "common.conflict",
            "Conflict",
            detail.into(),
        )
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "common.unprocessable_entity",
            "Unprocessable entity",
            detail.into(),
        )
    }

    /// A 400 of the token endpoints with its OAuth error code.
    pub fn oauth(error: &'static str, detail: impl Into<String>) -> Self {
        let mut problem = Self::bad_request(detail);
        problem.code = match error {
            "invalid_client" => "credentials.invalid_client",
            "invalid_scope" => "credentials.invalid_scope",
            "unsupported_grant_type" => "credentials.unsupported_grant_type",
            _ => "credentials.oauth2.invalid_request",
        };
        problem.oauth = Some(error);
        problem
    }

    /// The OAuth `error` a token endpoint reports for this error.
    pub fn oauth_error(&self) -> &'static str {
        match (self.oauth, self.status.as_u16()) {
            (Some(error), _) => error,
            (None, 429 | 503) => "temporarily_unavailable",
            (None, 500..) => "server_error",
            (None, 401 | 403) => "access_denied",
            (None, _) => "invalid_request",
        }
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
            "common.too_many_requests",
            "Too many requests",
            "The rate limit of this route was exceeded.".into(),
        );
        error.retry_after = Some(retry_after.max(1));
        error
    }

    /// An injected fault with `status` (a 429 carries `Retry-After`).
    fn injected(status: u16, retry_after: u64) -> Self {
        match StatusCode::from_u16(status) {
            Ok(StatusCode::TOO_MANY_REQUESTS) => Self::rate_limited(retry_after),
            Ok(status) => Self::new(
                status,
                "common.internal_server_error",
                "Internal server error",
                "Injected fault.".into(),
            ),
            Err(_) => Self::injected(503, retry_after),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
