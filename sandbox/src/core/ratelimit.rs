//! Per-route, per-key fixed-window buckets (Decision 9): `RateLimit-Limit/Remaining/Reset` on every
//! response, 429 with `Retry-After` when a bucket is empty. Uses the monotonic clock: rate limits
//! are about real load, not the sandbox's settable clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// What the headers say after one request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    pub reset_seconds: u64,
    pub allowed: bool,
}

#[derive(Debug)]
pub struct RateLimiter {
    /// 0 = not enforced (the headers then describe an unbounded bucket).
    per_minute: u32,
    buckets: Mutex<HashMap<(String, &'static str), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    window_start: Instant,
    used: u32,
}

/// The limit advertised when rate limiting is off.
const UNLIMITED: u32 = 1_000_000;

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `key_id` on `route` at `now`.
    pub fn check(&self, key_id: &str, route: &'static str, now: Instant) -> Quota {
        let limit = if self.per_minute == 0 {
            UNLIMITED
        } else {
            self.per_minute
        };
        let mut buckets = self
            .buckets
            .lock()
            .expect("rate limiter lock is never poisoned");
        let bucket = buckets.entry((key_id.to_owned(), route)).or_insert(Bucket {
            window_start: now,
            used: 0,
        });
        if now.duration_since(bucket.window_start) >= WINDOW {
            *bucket = Bucket {
                window_start: now,
                used: 0,
            };
        }
        let reset = WINDOW.saturating_sub(now.duration_since(bucket.window_start));
        // Round up: "0 seconds until reset" would invite a client to retry at once.
        let reset_seconds = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
        let allowed = self.per_minute == 0 || bucket.used < limit;
        if allowed {
            bucket.used = bucket.used.saturating_add(1);
        }
        Quota {
            limit,
            remaining: limit.saturating_sub(bucket.used),
            reset_seconds: reset_seconds.max(1),
            allowed,
        }
    }

    pub fn reset(&self) {
        self.buckets
            .lock()
            .expect("rate limiter lock is never poisoned")
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_then_refills_after_its_window() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        let first = limiter.check("k", "/people", t0);
        assert_eq!((first.allowed, first.remaining, first.limit), (true, 1, 2));
        assert!(limiter.check("k", "/people", t0).allowed);
        let third = limiter.check("k", "/people", t0 + Duration::from_secs(10));
        assert!(!third.allowed);
        assert_eq!(third.remaining, 0);
        assert_eq!(third.reset_seconds, 50);
        assert!(
            limiter.check("k", "/me", t0).allowed,
            "buckets are per route"
        );
        assert!(limiter.check("other", "/people", t0).allowed, "and per key");
        assert!(limiter.check("k", "/people", t0 + WINDOW).allowed);
    }

    #[test]
    fn zero_means_unenforced_but_headers_stay_meaningful() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        for _ in 0..5000 {
            assert!(limiter.check("k", "/people", now).allowed);
        }
        assert_eq!(limiter.check("k", "/people", now).limit, UNLIMITED);
    }
}
