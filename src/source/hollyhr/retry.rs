//! HollyHR's retry classification: which client errors are worth another attempt. The waiting
//! rules are the crate's shared ones ([`crate::retry`]).

pub use crate::retry::{RetryPolicy, Retryability, next_delay, parse_retry_after};

use super::error::HollyHrError;

/// Classifies an error. Retrying a mutating call is safe because every one carries the same
/// `Idempotency-Key` on each attempt.
pub fn classify(error: &HollyHrError) -> Retryability {
    match error {
        HollyHrError::Api(api) if api.status == 429 => Retryability::RateLimited {
            retry_after: api.retry_after,
        },
        HollyHrError::Api(api) if (500..=599).contains(&api.status) => Retryability::Backoff,
        HollyHrError::Timeout { .. } | HollyHrError::Network { .. } => Retryability::Backoff,
        _ => Retryability::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::hollyhr::error::ApiError;
    use http::Method;
    use std::time::Duration;

    fn api(status: u16, retry_after: Option<Duration>) -> HollyHrError {
        HollyHrError::Api(Box::new(ApiError {
            method: Method::GET,
            route: "/people",
            status,
            code: "x".into(),
            message: "m".into(),
            request_id: None,
            details: vec![],
            retry_after,
        }))
    }

    #[test]
    fn only_rate_limits_and_server_errors_are_retryable_statuses() {
        let secs = |s| Some(Duration::from_secs(s));
        let cases = [
            (400, None, Retryability::Never),
            (401, None, Retryability::Never),
            (403, None, Retryability::Never),
            (404, None, Retryability::Never),
            (409, None, Retryability::Never),
            (412, None, Retryability::Never),
            (428, None, Retryability::Never),
            (
                429,
                secs(3),
                Retryability::RateLimited {
                    retry_after: secs(3),
                },
            ),
            (429, None, Retryability::RateLimited { retry_after: None }),
            (500, None, Retryability::Backoff),
            (502, None, Retryability::Backoff),
            (503, secs(1), Retryability::Backoff),
        ];
        for (status, retry_after, expected) in cases {
            assert_eq!(classify(&api(status, retry_after)), expected, "{status}");
        }
        assert_eq!(
            classify(&HollyHrError::InvalidArgument("limit".into())),
            Retryability::Never
        );
    }
}
