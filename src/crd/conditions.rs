//! The Kubernetes condition contract (as cert-manager keeps it): one entry per type, a CamelCase
//! reason, a message a person can act on, `observedGeneration`, and a `lastTransitionTime` that
//! moves only when the status flips. Pure: time is passed in.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Why the object cannot be worked on at all (a condition, never a crash loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// CamelCase reason: `InvalidSpec`, `SecretNotFound`, `SecretKeyMissing`, …
    pub reason: &'static str,
    pub message: String,
}

/// True when the object is fully operational: every prerequisite below is met.
pub const READY: &str = "Ready";
/// True when the HR source answered `GET /me` with the configured key and the key holds every
/// scope PeopleSync needs.
pub const SOURCE_REACHABLE: &str = "SourceReachable";
/// True when a bind to the directory (or a SCIM `ServiceProviderConfig` read) succeeded.
pub const DIRECTORY_REACHABLE: &str = "DirectoryReachable";
/// True when the last sync cycle applied every change (no per-person failures, nothing held).
pub const SYNCED: &str = "Synced";
/// True when exactly one webhook with the expected URL and events exists and its signing secret
/// (HollyHR) or token (Personio) is held in the owned Secret.
pub const WEBHOOK_REGISTERED: &str = "WebhookRegistered";
/// True when HollyHR reports the webhook endpoint as healthy; for Personio (no health endpoint),
/// when the latest delivery in its activity log or at the receiver succeeded.
pub const WEBHOOK_HEALTHY: &str = "WebhookHealthy";
/// True when the signing secret (or Personio token) was rotated within `rotationInterval`.
pub const SECRET_ROTATED: &str = "SecretRotated";
/// True when the mass-deprovision guard is holding deprovisions back (awaiting approval).
pub const DEPROVISION_GUARD: &str = "DeprovisionGuard";

/// Every condition type PeopleSync writes, in the order users read them (Ready first).
pub const ALL: [&str; 8] = [
    READY,
    SOURCE_REACHABLE,
    DIRECTORY_REACHABLE,
    SYNCED,
    WEBHOOK_REGISTERED,
    WEBHOOK_HEALTHY,
    SECRET_ROTATED,
    DEPROVISION_GUARD,
];

/// A condition's tri-state status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Status {
    fn from(value: bool) -> Self {
        if value { Status::True } else { Status::False }
    }
}

/// What a condition should say now (without the bookkeeping fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub kind: &'static str,
    pub status: Status,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        kind: &'static str,
        status: Status,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Applies `desired` to `conditions`: replaces the entry of the same type, keeping its
/// `lastTransitionTime` unless the status changed. Returns true when the status flipped (or the
/// condition is new), which is when an Event is worth emitting.
pub fn set(
    conditions: &mut Vec<Condition>,
    desired: Desired,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let existing = conditions.iter().position(|c| c.type_ == desired.kind);
    let flipped = existing.is_none_or(|i| conditions[i].status != desired.status.as_str());
    let last_transition_time = match existing {
        Some(i) if !flipped => conditions[i].last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: desired.kind.to_owned(),
        status: desired.status.as_str().to_owned(),
        reason: desired.reason,
        // The API server caps messages at 32 KiB; ours are short, but never exceed it.
        message: truncate(&desired.message, 1024),
        observed_generation: generation,
        last_transition_time,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
    flipped
}

pub fn get<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == kind)
}

pub fn is_true(conditions: &[Condition], kind: &str) -> bool {
    get(conditions, kind).is_some_and(|c| c.status == "True")
}

fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_owned();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// Orders conditions as users read them: Ready first, then the documented order.
pub fn sort(conditions: &mut [Condition]) {
    conditions.sort_by_key(|c| ALL.iter().position(|k| *k == c.type_).unwrap_or(ALL.len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_780_000_000 + seconds).expect("valid")
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut conditions = Vec::new();
        let flipped = set(
            &mut conditions,
            Desired::new(READY, Status::False, "SecretNotFound", "a"),
            Some(1),
            at(0),
        );
        assert!(flipped, "a new condition counts as a transition");
        let flipped = set(
            &mut conditions,
            Desired::new(READY, Status::False, "SecretKeyMissing", "b"),
            Some(2),
            at(10),
        );
        assert!(!flipped);
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            conditions[0].last_transition_time,
            Time(at(0)),
            "same status keeps the time"
        );
        assert_eq!(
            conditions[0].reason, "SecretKeyMissing",
            "reason and message still update"
        );
        assert_eq!(conditions[0].observed_generation, Some(2));
        let flipped = set(
            &mut conditions,
            Desired::new(READY, Status::True, "Ready", "ok"),
            Some(2),
            at(20),
        );
        assert!(flipped);
        assert_eq!(conditions[0].last_transition_time, Time(at(20)));
        assert!(is_true(&conditions, READY));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(600);
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            Desired::new(READY, Status::False, "X", message),
            None,
            at(0),
        );
        assert!(conditions[0].message.len() <= 1024 + '…'.len_utf8());
        assert!(conditions[0].message.ends_with('…'));
    }

    #[test]
    fn ready_sorts_first() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            Desired::new(SYNCED, Status::Unknown, "Pending", ""),
            None,
            at(0),
        );
        set(
            &mut conditions,
            Desired::new(READY, Status::False, "X", ""),
            None,
            at(0),
        );
        set(
            &mut conditions,
            Desired::new(SOURCE_REACHABLE, Status::True, "Reachable", ""),
            None,
            at(0),
        );
        sort(&mut conditions);
        let order: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(order, [READY, SOURCE_REACHABLE, SYNCED]);
    }
}
