//! Client-side pacing from `RateLimit-Limit/Remaining/Reset`: slow down before a route's bucket
//! is empty instead of running into 429s. The decision is pure; [`Pacer`] only remembers the
//! last headers seen per route.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;

/// What a response said about its route's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    pub limit: Option<u32>,
    pub remaining: u32,
    /// Time until the bucket refills (`RateLimit-Reset` is a delta in seconds).
    pub reset: Duration,
}

impl RateLimitSnapshot {
    /// Reads the headers; `None` unless both `Remaining` and `Reset` are present and numeric.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        Some(Self {
            limit: number("ratelimit-limit").and_then(|n| u32::try_from(n).ok()),
            remaining: u32::try_from(number("ratelimit-remaining")?).unwrap_or(u32::MAX),
            reset: Duration::from_secs(number("ratelimit-reset")?),
        })
    }
}

/// When to start slowing down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacingPolicy {
    /// Below this share of the limit (percent) left in the window, requests are spread evenly
    /// over the rest of the window.
    pub reserve_percent: u32,
    /// The reserve is at least this many requests (also used when no limit is sent).
    pub min_reserve: u32,
    /// The longest single pause pacing may impose.
    pub max_delay: Duration,
}

impl Default for PacingPolicy {
    fn default() -> Self {
        Self {
            // 10% keeps headroom for a second replica or a webhook-triggered read.
            reserve_percent: 10,
            min_reserve: 2,
            max_delay: Duration::from_secs(60),
        }
    }
}

/// The pause before the next request on a route whose bucket was `snapshot`, seen `age` ago.
///
/// Plenty left: no pause. In the reserve: spread the remaining requests evenly over what is left
/// of the window. Empty: wait for the reset.
pub fn pacing_delay(
    snapshot: &RateLimitSnapshot,
    age: Duration,
    policy: &PacingPolicy,
) -> Duration {
    let reset_left = snapshot.reset.saturating_sub(age);
    if reset_left.is_zero() {
        return Duration::ZERO;
    }
    let reserve = snapshot
        .limit
        .map_or(0, |limit| {
            u32::try_from(u64::from(limit) * u64::from(policy.reserve_percent) / 100)
                .unwrap_or(u32::MAX)
        })
        .max(policy.min_reserve);
    let delay = if snapshot.remaining == 0 {
        reset_left
    } else if snapshot.remaining <= reserve {
        reset_left / (snapshot.remaining + 1)
    } else {
        Duration::ZERO
    };
    delay.min(policy.max_delay)
}

/// The last bucket state seen per route (buckets are per route and key; a client has one key).
#[derive(Debug, Default)]
pub struct Pacer {
    seen: Mutex<HashMap<&'static str, (RateLimitSnapshot, Instant)>>,
}

impl Pacer {
    pub fn record(&self, route: &'static str, snapshot: RateLimitSnapshot, at: Instant) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(route, (snapshot, at));
        }
    }

    pub fn delay(&self, route: &'static str, now: Instant, policy: &PacingPolicy) -> Duration {
        let Ok(seen) = self.seen.lock() else {
            return Duration::ZERO;
        };
        seen.get(route).map_or(Duration::ZERO, |(snapshot, at)| {
            pacing_delay(snapshot, now.saturating_duration_since(*at), policy)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(limit: Option<u32>, remaining: u32, reset_secs: u64) -> RateLimitSnapshot {
        RateLimitSnapshot {
            limit,
            remaining,
            reset: Duration::from_secs(reset_secs),
        }
    }

    #[test]
    fn pacing_starts_only_when_the_bucket_runs_low() {
        let policy = PacingPolicy::default();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let cases = [
            // (snapshot, age, expected)
            (snapshot(Some(600), 599, 60), s(0), Duration::ZERO),
            (snapshot(Some(600), 61, 60), s(0), Duration::ZERO),
            // 60 left of 600 is the 10% reserve: spread over the window
            (snapshot(Some(600), 59, 60), s(0), ms(1000)),
            (snapshot(Some(600), 9, 30), s(0), s(3)),
            // empty: wait for the reset, minus what already passed
            (snapshot(Some(600), 0, 60), s(0), s(60)),
            (snapshot(Some(600), 0, 60), s(45), s(15)),
            // the window already reset
            (snapshot(Some(600), 0, 60), s(61), Duration::ZERO),
            // no limit header: only the minimum reserve counts
            (snapshot(None, 3, 60), s(0), Duration::ZERO),
            (snapshot(None, 1, 60), s(0), s(30)),
        ];
        for (snap, age, expected) in cases {
            assert_eq!(
                pacing_delay(&snap, age, &policy),
                expected,
                "{snap:?} age={age:?}"
            );
        }
    }

    #[test]
    fn pacing_never_pauses_longer_than_its_maximum() {
        let policy = PacingPolicy {
            max_delay: Duration::from_secs(5),
            ..PacingPolicy::default()
        };
        assert_eq!(
            pacing_delay(&snapshot(Some(10), 0, 3600), Duration::ZERO, &policy),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn rate_limit_headers_are_parsed_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert("RateLimit-Limit", "120".parse().expect("header value"));
        headers.insert("ratelimit-remaining", "119".parse().expect("header value"));
        headers.insert("RATELIMIT-RESET", " 60".parse().expect("header value"));
        assert_eq!(
            RateLimitSnapshot::from_headers(&headers),
            Some(snapshot(Some(120), 119, 60))
        );
        headers.remove("ratelimit-reset");
        assert_eq!(RateLimitSnapshot::from_headers(&headers), None);
    }

    #[test]
    fn pacer_remembers_buckets_per_route() {
        let pacer = Pacer::default();
        let policy = PacingPolicy::default();
        let now = Instant::now();
        pacer.record("/people", snapshot(Some(600), 0, 10), now);
        assert_eq!(
            pacer.delay("/people", now, &policy),
            Duration::from_secs(10)
        );
        assert_eq!(pacer.delay("/org-units", now, &policy), Duration::ZERO);
    }
}
