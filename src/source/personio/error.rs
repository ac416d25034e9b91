//! The Personio client's typed errors and their static categories.

use std::time::Duration;

use http::Method;

/// A failed Personio call. Every variant names the operation (method + route template) so logs
/// and conditions say what failed without a person's id or data; bodies are never quoted.
#[derive(Debug, thiserror::Error)]
pub enum PersonioError {
    /// A resource endpoint answered with a non-2xx status (problem+json when Personio sent one).
    #[error(
        "failed to {method} {route}: Personio answered {status}{}{} (trace id {})",
        code.as_deref().map(|code| format!(" {code}")).unwrap_or_default(),
        title.as_deref().map(|title| format!(" ({title})")).unwrap_or_default(),
        trace_id.as_deref().unwrap_or("none")
    )]
    Api {
        /// `GET`, `POST`, ... (static, which keeps the error small).
        method: &'static str,
        route: &'static str,
        status: u16,
        /// The anchor of `errors[0].type`, e.g. `common.bad_request`.
        code: Option<String>,
        /// `errors[0].title`: Personio's generic wording, not data.
        title: Option<String>,
        /// `personio_trace_id` (or the older `trace_id`): Personio support asks for it.
        trace_id: Option<String>,
        /// `Retry-After`, when the answer carried one.
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused the client id or secret (`invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, `access_denied`, or a 401).
    #[error(
        "failed to get a Personio token: the client id or secret was refused ({code}, trace id {})",
        trace_id.as_deref().unwrap_or("none")
    )]
    InvalidCredentials {
        code: String,
        trace_id: Option<String>,
    },
    /// `invalid_scope`: the credential was not granted one of the requested scopes (Personio
    /// does not say which, and answers the same for an unknown scope).
    #[error(
        "failed to get a Personio token for the scopes `{scopes}`: the credential lacks one of them (trace id {})",
        trace_id.as_deref().unwrap_or("none")
    )]
    MissingScope {
        scopes: &'static str,
        trace_id: Option<String>,
    },
    /// Any other refusal of the token endpoint (`invalid_request`, `server_error`, ...).
    #[error(
        "failed to get a Personio token: {status} {code}{} (trace id {})",
        description.as_deref().map(|text| format!(": {text}")).unwrap_or_default(),
        trace_id.as_deref().unwrap_or("none")
    )]
    TokenRejected {
        status: u16,
        code: String,
        /// `error_description`: Personio's text about the request, never about people.
        description: Option<String>,
        trace_id: Option<String>,
    },
    /// A listing's `next` cursor repeated one already followed, or the listing ran past the
    /// page bound: Personio has shipped a `next` link pointing back at the same page.
    #[error(
        "failed to page through {route}: the listing loops (a cursor repeated or the page bound was passed)"
    )]
    PaginationLoop { route: &'static str },
    /// A 2xx body that does not match the wire model. Only the JSON path is kept: serde's own
    /// message quotes the offending value, which may be a personal field.
    #[error("failed to read the answer to {method} {route} at `{path}` ({kind})")]
    InvalidResponse {
        /// `GET`, `POST`, ... (static, which keeps the error small).
        method: &'static str,
        route: &'static str,
        path: String,
        kind: &'static str,
    },
    /// The request timed out (connect, send or read).
    #[error("failed to get an answer to {method} {route} in time")]
    Timeout {
        /// `GET`, `POST`, ... (static, which keeps the error small).
        method: &'static str,
        route: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The connection could not be made or broke.
    #[error("failed to reach Personio for {method} {route}")]
    Network {
        /// `GET`, `POST`, ... (static, which keeps the error small).
        method: &'static str,
        route: &'static str,
        /// Nothing reached Personio (the connection was never made): safe to resend any call.
        connect: bool,
        #[source]
        source: reqwest::Error,
    },
    /// The caller asked for something the API does not allow; nothing was sent.
    #[error("failed to build a valid Personio request: {0}")]
    InvalidArgument(String),
    /// The client itself could not be set up (base URL, page size, header characters, TLS).
    #[error("failed to configure the Personio client: {0}")]
    Configuration(String),
}

/// The static category of an error: the Kubernetes condition reason and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// 400 and other 4xx without a category of their own.
    BadRequest,
    /// 401 from a resource endpoint, after one token refresh.
    Unauthorized,
    /// 403: the credential may not do this (a scope, or the readable attributes).
    Forbidden,
    NotFound,
    Conflict,
    /// 422.
    Unprocessable,
    RateLimited,
    ServerError,
    InvalidCredentials,
    MissingScope,
    TokenRejected,
    PaginationLoop,
    InvalidResponse,
    Timeout,
    Network,
    InvalidArgument,
    Configuration,
}

impl ErrorCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::BadRequest => "BadRequest",
            ErrorCategory::Unauthorized => "Unauthorized",
            ErrorCategory::Forbidden => "Forbidden",
            ErrorCategory::NotFound => "NotFound",
            ErrorCategory::Conflict => "Conflict",
            ErrorCategory::Unprocessable => "Unprocessable",
            ErrorCategory::RateLimited => "RateLimited",
            ErrorCategory::ServerError => "ServerError",
            ErrorCategory::InvalidCredentials => "InvalidCredentials",
            ErrorCategory::MissingScope => "MissingScope",
            ErrorCategory::TokenRejected => "TokenRejected",
            ErrorCategory::PaginationLoop => "PaginationLoop",
            ErrorCategory::InvalidResponse => "InvalidResponse",
            ErrorCategory::Timeout => "Timeout",
            ErrorCategory::Network => "Network",
            ErrorCategory::InvalidArgument => "InvalidArgument",
            ErrorCategory::Configuration => "Configuration",
        }
    }

    /// The category of an HTTP error status from a resource endpoint.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 => ErrorCategory::Unauthorized,
            403 => ErrorCategory::Forbidden,
            404 => ErrorCategory::NotFound,
            409 => ErrorCategory::Conflict,
            422 => ErrorCategory::Unprocessable,
            429 => ErrorCategory::RateLimited,
            500..=599 => ErrorCategory::ServerError,
            400..=499 => ErrorCategory::BadRequest,
            // Redirects are not followed (they could carry the token elsewhere) and 1xx/3xx are
            // not answers the API gives.
            _ => ErrorCategory::InvalidResponse,
        }
    }
}

impl std::fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PersonioError {
    /// The static category (see [`ErrorCategory`]).
    pub fn category(&self) -> ErrorCategory {
        match self {
            PersonioError::Api { status, .. } => ErrorCategory::of_status(*status),
            PersonioError::InvalidCredentials { .. } => ErrorCategory::InvalidCredentials,
            PersonioError::MissingScope { .. } => ErrorCategory::MissingScope,
            PersonioError::TokenRejected { code, .. } if is_transient_token_error(code) => {
                ErrorCategory::ServerError
            }
            PersonioError::TokenRejected { .. } => ErrorCategory::TokenRejected,
            PersonioError::PaginationLoop { .. } => ErrorCategory::PaginationLoop,
            PersonioError::InvalidResponse { .. } => ErrorCategory::InvalidResponse,
            PersonioError::Timeout { .. } => ErrorCategory::Timeout,
            PersonioError::Network { .. } => ErrorCategory::Network,
            PersonioError::InvalidArgument(_) => ErrorCategory::InvalidArgument,
            PersonioError::Configuration(_) => ErrorCategory::Configuration,
        }
    }

    /// The category as a CamelCase string: a condition reason and a metric label.
    pub fn reason(&self) -> &'static str {
        self.category().as_str()
    }

    /// The HTTP status, when a resource endpoint or the token endpoint answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            PersonioError::Api { status, .. } | PersonioError::TokenRejected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The error code Personio sent (problem `type` anchor, or the OAuth `error`).
    pub fn code(&self) -> Option<&str> {
        match self {
            PersonioError::Api { code, .. } => code.as_deref(),
            PersonioError::InvalidCredentials { code, .. }
            | PersonioError::TokenRejected { code, .. } => Some(code),
            PersonioError::MissingScope { .. } => Some("invalid_scope"),
            _ => None,
        }
    }

    /// Personio's trace id of the failed answer, for support tickets and logs.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            PersonioError::Api { trace_id, .. }
            | PersonioError::InvalidCredentials { trace_id, .. }
            | PersonioError::MissingScope { trace_id, .. }
            | PersonioError::TokenRejected { trace_id, .. } => trace_id.as_deref(),
            _ => None,
        }
    }

    /// `Retry-After`, when the answer carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PersonioError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A 404 from a resource endpoint.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PersonioError::Api { status: 404, .. })
    }
}

/// The static name of a method the client sends.
pub(super) fn verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "call",
    }
}

/// OAuth errors that say the token endpoint itself is struggling, not the request.
pub(super) fn is_transient_token_error(code: &str) -> bool {
    matches!(code, "server_error" | "temporarily_unavailable")
}

impl crate::source::SourceError for PersonioError {
    fn reason(&self) -> &'static str {
        PersonioError::reason(self)
    }
}

impl From<crate::http::BodyError> for PersonioError {
    fn from(error: crate::http::BodyError) -> Self {
        PersonioError::InvalidArgument(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> PersonioError {
        PersonioError::Api {
            method: "GET",
            route: "/v2/persons",
            status,
            code: Some("common.bad_request".into()),
            title: Some("Bad request".into()),
            trace_id: Some("trace-42".into()),
            retry_after: None,
        }
    }

    #[test]
    fn http_statuses_map_to_static_reasons() {
        let cases = [
            (400, "BadRequest"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "NotFound"),
            (405, "BadRequest"),
            (409, "Conflict"),
            (422, "Unprocessable"),
            (429, "RateLimited"),
            (431, "BadRequest"),
            (500, "ServerError"),
            (502, "ServerError"),
            (504, "ServerError"),
            (302, "InvalidResponse"),
        ];
        for (status, reason) in cases {
            assert_eq!(api(status).reason(), reason, "{status}");
        }
    }

    #[test]
    fn api_errors_say_what_failed_with_code_title_and_trace_id() {
        let text = api(400).to_string();
        assert!(text.starts_with("failed to GET /v2/persons"), "{text}");
        for part in ["400", "common.bad_request", "(Bad request)", "trace-42"] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        assert_eq!(api(400).trace_id(), Some("trace-42"));
        assert!(api(404).is_not_found() && !api(400).is_not_found());
    }

    #[test]
    fn token_refusals_have_their_own_reasons() {
        let rejected = |code: &str| PersonioError::TokenRejected {
            status: 400,
            code: code.into(),
            description: None,
            trace_id: None,
        };
        assert_eq!(rejected("invalid_request").reason(), "TokenRejected");
        assert_eq!(rejected("temporarily_unavailable").reason(), "ServerError");
        let scope = PersonioError::MissingScope {
            scopes: "personio:persons:read",
            trace_id: Some("t".into()),
        };
        assert_eq!(scope.reason(), "MissingScope");
        assert!(scope.to_string().contains("personio:persons:read"));
        let credentials = PersonioError::InvalidCredentials {
            code: "invalid_client".into(),
            trace_id: None,
        };
        assert_eq!(credentials.reason(), "InvalidCredentials");
        assert_eq!(credentials.code(), Some("invalid_client"));
    }
}
