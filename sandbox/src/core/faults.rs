//! Injected faults, decided the same way for both sandboxes: a burst of 429s first, then the
//! next N failures, then failures at a random rate, each after the configured latency. What an
//! injected failure looks like on the wire is the sandbox's own error type.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sandbox::{Sandbox, Tenant};

/// The fault fields both sandboxes' `/_sandbox/faults` objects have (each may add its own).
pub struct Knobs<'a> {
    /// Share of API requests answered with `error_status` (0.0–1.0).
    pub error_rate: f64,
    pub error_status: u16,
    /// The next N API requests are answered with `error_status`.
    pub fail_next: &'a mut u32,
    /// The next N API requests are answered 429 with `Retry-After: retry_after_seconds`.
    pub rate_limit_burst: &'a mut u32,
    pub retry_after_seconds: u64,
    /// Added to every API request.
    pub latency_ms: u64,
}

/// A sandbox's `/_sandbox/faults` object.
pub trait Faults: Serialize + DeserializeOwned + Clone + Default + Send + Sync + 'static {
    fn knobs(&mut self) -> Knobs<'_>;
}

/// How a sandbox's API error answers an injected fault.
pub trait FaultError {
    /// 429 with `Retry-After: retry_after` seconds (at least one).
    fn rate_limited(retry_after: u64) -> Self;
    /// The configured `error_status`; a 429 may carry `retry_after`.
    fn injected(status: u16, retry_after: u64) -> Self;
}

/// Draws this request's fault (counting down the bursts), after sleeping the configured latency.
pub async fn inject<T: Tenant, E: FaultError>(sandbox: &Sandbox<T>) -> Option<E> {
    let (latency, injected) = {
        let mut controls = sandbox.controls();
        let knobs = controls.faults.knobs();
        let failed = || E::injected(knobs.error_status, knobs.retry_after_seconds);
        let injected = if *knobs.rate_limit_burst > 0 {
            *knobs.rate_limit_burst -= 1;
            Some(E::rate_limited(knobs.retry_after_seconds))
        } else if *knobs.fail_next > 0 {
            *knobs.fail_next -= 1;
            Some(failed())
        } else if knobs.error_rate > 0.0
            && rand::rng().random_bool(knobs.error_rate.clamp(0.0, 1.0))
        {
            Some(failed())
        } else {
            None
        };
        (knobs.latency_ms, injected)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    injected
}

/// Declares a sandbox's `/_sandbox/faults` object: the shared [`Knobs`] fields (with their
/// defaults: no faults, 503, `Retry-After: 1`), then the sandbox's own fields with theirs. Unknown
/// keys are rejected and missing ones take their default; a `GET` lists the fields in this order.
macro_rules! faults_object {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty = $default:expr,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            /// Share of API requests answered with `error_status` (0.0–1.0).
            pub error_rate: f64,
            pub error_status: u16,
            /// The next N API requests are answered with `error_status`.
            pub fail_next: u32,
            /// The next N API requests are answered 429 with `Retry-After: retry_after_seconds`.
            pub rate_limit_burst: u32,
            pub retry_after_seconds: u64,
            /// Added to every API request.
            pub latency_ms: u64,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    error_rate: 0.0,
                    error_status: 503,
                    fail_next: 0,
                    rate_limit_burst: 0,
                    retry_after_seconds: 1,
                    latency_ms: 0,
                    $($field: $default,)*
                }
            }
        }

        impl $crate::core::faults::Faults for $name {
            fn knobs(&mut self) -> $crate::core::faults::Knobs<'_> {
                $crate::core::faults::Knobs {
                    error_rate: self.error_rate,
                    error_status: self.error_status,
                    fail_next: &mut self.fail_next,
                    rate_limit_burst: &mut self.rate_limit_burst,
                    retry_after_seconds: self.retry_after_seconds,
                    latency_ms: self.latency_ms,
                }
            }
        }
    };
}
pub(crate) use faults_object;
