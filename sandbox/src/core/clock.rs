//! The sandbox clock: real time plus an offset, or frozen; settable through `/_sandbox/clock` so
//! tests can move through rotation overlaps, retries and retention without waiting.
//! Times are truncated to milliseconds, like HollyHR's examples (`…T09:00:00.000Z`).

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Default)]
pub struct Clock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ClockState {
    offset: SignedDuration,
    frozen_at: Option<Timestamp>,
}

/// The UTC calendar day of `now`: what both sandboxes call "today" (start and end dates,
/// lifecycle states).
pub fn today(now: Timestamp) -> jiff::civil::Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

pub fn truncate_to_millis(at: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(at.as_millisecond()).unwrap_or(at)
}

/// The fixed "now" of the sandboxes' unit tests.
#[cfg(test)]
pub fn test_now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().expect("valid")
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        let state = *self.state.lock().expect("clock lock is never poisoned");
        truncate_to_millis(
            state
                .frozen_at
                .unwrap_or_else(|| Timestamp::now() + state.offset),
        )
    }

    pub fn frozen(&self) -> bool {
        self.state
            .lock()
            .expect("clock lock is never poisoned")
            .frozen_at
            .is_some()
    }

    /// Jumps to `at`; frozen there when `frozen`, else running from there.
    pub fn set(&self, at: Timestamp, frozen: bool) {
        let mut state = self.state.lock().expect("clock lock is never poisoned");
        state.offset = at.duration_since(Timestamp::now());
        state.frozen_at = frozen.then_some(at);
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut state = self.state.lock().expect("clock lock is never poisoned");
        state.offset += by;
        if let Some(at) = state.frozen_at.as_mut() {
            *at += by;
        }
    }

    /// Unfreezes without moving: time runs on from the current reading.
    pub fn unfreeze(&self) {
        let now = self.now();
        self.set(now, false);
    }

    pub fn reset(&self) {
        *self.state.lock().expect("clock lock is never poisoned") = ClockState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_stands_still_and_advances_on_demand() {
        let clock = Clock::default();
        let at: Timestamp = "2026-06-01T10:00:00.123456Z".parse().expect("valid");
        clock.set(at, true);
        assert_eq!(clock.now().to_string(), "2026-06-01T10:00:00.123Z");
        assert_eq!(clock.now(), clock.now());
        clock.advance(SignedDuration::from_hours(25));
        assert_eq!(clock.now().to_string(), "2026-06-02T11:00:00.123Z");
        assert!(clock.frozen());
        clock.unfreeze();
        assert!(!clock.frozen());
        assert!(clock.now() >= truncate_to_millis(at + SignedDuration::from_hours(25)));
    }
}
