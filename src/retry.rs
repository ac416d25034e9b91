//! Retry decisions shared by the HTTP clients (HollyHR, SCIM), kept pure: how long to wait and
//! when to stop. Clients feed them to `backon` (exponential backoff with jitter, bounded
//! attempts); this adds what backon does not know: `Retry-After` and a bound on total elapsed
//! time. Each client classifies its own errors into a [`Retryability`].

use std::time::Duration;

use backon::ExponentialBuilder;
use jiff::Timestamp;

/// How hard the client tries before giving up. Tests use milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry).
    pub max_attempts: usize,
    /// The first backoff; each next one doubles, with full jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// No retry starts once this much time has passed since the first attempt, and no wait
    /// (not even a server's `Retry-After`) is allowed to cross it.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            // A minute covers HollyHR's documented one-minute rate-limit window.
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (one attempt).
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backon builder for this policy: exponential, jittered, `max_attempts - 1` retries.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
    }
}

/// What kind of failure an error is, for retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retryability {
    /// Other 4xx, bad responses, bad arguments: retrying cannot help.
    Never,
    /// 5xx, timeouts, connection errors: back off exponentially.
    Backoff,
    /// 429: wait what the server said, or back off when it said nothing.
    RateLimited { retry_after: Option<Duration> },
}

/// The wait before the next attempt, or `None` to give up.
///
/// `backoff` is backon's next jittered delay (`None` once attempts are used up); `elapsed` is
/// the time since the first attempt started.
pub fn next_delay(
    kind: Retryability,
    backoff: Option<Duration>,
    elapsed: Duration,
    policy: &RetryPolicy,
) -> Option<Duration> {
    let backoff = backoff?;
    let delay = match kind {
        Retryability::Never => return None,
        Retryability::Backoff => backoff,
        Retryability::RateLimited {
            retry_after: Some(wait),
        } => wait,
        Retryability::RateLimited { retry_after: None } => backoff,
    };
    (elapsed.saturating_add(delay) <= policy.max_elapsed).then_some(delay)
}

/// Parses `Retry-After`: delta seconds (what HollyHR sends) or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_delay_honours_retry_after_backoff_and_the_time_budget() {
        let policy = RetryPolicy {
            max_elapsed: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let limited = |wait| Retryability::RateLimited { retry_after: wait };
        let cases = [
            // (kind, backoff, elapsed, expected)
            (Retryability::Backoff, Some(ms(200)), s(0), Some(ms(200))),
            (Retryability::Backoff, None, s(0), None),
            (Retryability::Never, Some(ms(200)), s(0), None),
            (limited(Some(s(2))), Some(ms(200)), s(0), Some(s(2))),
            (limited(None), Some(ms(200)), s(0), Some(ms(200))),
            (limited(Some(s(2))), None, s(0), None),
            // a wait that would cross the budget is not started
            (limited(Some(s(5))), Some(ms(200)), s(6), None),
            (Retryability::Backoff, Some(s(1)), s(9), Some(s(1))),
            (Retryability::Backoff, Some(s(2)), s(9), None),
        ];
        for (kind, backoff, elapsed, expected) in cases {
            assert_eq!(
                next_delay(kind, backoff, elapsed, &policy),
                expected,
                "{kind:?} backoff={backoff:?} elapsed={elapsed:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now: Timestamp = "2026-06-16T09:00:00Z".parse().expect("valid timestamp");
        let cases = [
            ("1", Some(Duration::from_secs(1))),
            (" 30 ", Some(Duration::from_secs(30))),
            (
                "Tue, 16 Jun 2026 09:00:05 GMT",
                Some(Duration::from_secs(5)),
            ),
            ("Tue, 16 Jun 2026 08:00:00 GMT", Some(Duration::ZERO)),
            ("soon", None),
            ("-1", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
    }

    #[test]
    fn policy_with_one_attempt_never_backs_off() {
        use backon::BackoffBuilder;
        let mut backoff = RetryPolicy::never().backoff().build();
        assert_eq!(backoff.next(), None);
        let mut backoff = RetryPolicy::default().backoff().build();
        assert_eq!((0..10).map_while(|_| backoff.next()).count(), 4);
    }
}
