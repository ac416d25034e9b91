//! Status as data: what the reconcile observed → the `PeopleSyncStatus` to write and the
//! condition transitions worth an Event. Pure: no client, time passed in.

use jiff::Timestamp;

use super::conditions::{self as cond, Desired, Status};
use crate::crd::{PeopleSyncSpec, PeopleSyncStatus};

/// What reaching the HR source showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOutcome {
    /// `GET /me` answered and the key holds every needed scope.
    Reachable { environment: String },
    /// The key is valid but lacks these scopes.
    MissingScope(Vec<String>),
    /// 401: the key is wrong, revoked or expired.
    Unauthorized,
    /// Anything else: network, 5xx, rate limits after retries.
    Unreachable(String),
    /// Not checked (an earlier step failed).
    NotChecked,
}

/// What reaching the directory showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryOutcome {
    Reachable,
    Unreachable {
        reason: &'static str,
        message: String,
    },
    /// This version cannot check the configured directory yet.
    NotChecked,
}

/// Why the object cannot be worked on at all (a condition, never a crash loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// CamelCase reason: `InvalidSpec`, `SecretNotFound`, `SecretKeyMissing`, …
    pub reason: &'static str,
    pub message: String,
}

/// Everything one reconcile learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub blocker: Option<Blocker>,
    pub source: SourceOutcome,
    pub directory: DirectoryOutcome,
    pub suspended: bool,
}

/// A condition that flipped, for an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: &'static str,
    pub status: Status,
    pub reason: String,
    pub message: String,
}

/// Computes the next status from the previous one and this reconcile's observation.
pub fn compute(
    spec: &PeopleSyncSpec,
    previous: Option<&PeopleSyncStatus>,
    observed: &Observation,
    generation: Option<i64>,
    now: Timestamp,
) -> (PeopleSyncStatus, Vec<Transition>) {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.summary = Some(spec.summary());
    let mut desired = Vec::new();

    let source = match (&observed.blocker, &observed.source) {
        (Some(blocker), _) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::Unknown,
            blocker.reason,
            format!("not checked: {}", blocker.message),
        ),
        (None, SourceOutcome::Reachable { environment }) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::True,
            "Reachable",
            format!("HollyHR answered with every needed scope ({environment} environment)"),
        ),
        (None, SourceOutcome::MissingScope(scopes)) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::False,
            "MissingScope",
            format!(
                "the HollyHR API key lacks the scope{} {}: create a key with it in HollyHR (Settings > API) and update the Secret",
                if scopes.len() == 1 { "" } else { "s" },
                scopes.join(", ")
            ),
        ),
        (None, SourceOutcome::Unauthorized) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::False,
            "Unauthorized",
            "HollyHR rejected the API key (401): check the key in the referenced Secret",
        ),
        (None, SourceOutcome::Unreachable(message)) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::False,
            "Unreachable",
            format!("HollyHR could not be reached: {message}"),
        ),
        (None, SourceOutcome::NotChecked) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::Unknown,
            "NotChecked",
            "the source has not been checked yet",
        ),
    };
    let directory = match (&observed.blocker, &observed.directory) {
        (Some(blocker), _) => Desired::new(
            cond::DIRECTORY_REACHABLE,
            Status::Unknown,
            blocker.reason,
            format!("not checked: {}", blocker.message),
        ),
        (None, DirectoryOutcome::Reachable) => Desired::new(
            cond::DIRECTORY_REACHABLE,
            Status::True,
            "Reachable",
            "the directory accepted PeopleSync's credentials",
        ),
        (None, DirectoryOutcome::Unreachable { reason, message }) => Desired::new(
            cond::DIRECTORY_REACHABLE,
            Status::False,
            reason,
            message.clone(),
        ),
        (None, DirectoryOutcome::NotChecked) => Desired::new(
            cond::DIRECTORY_REACHABLE,
            Status::Unknown,
            "NotChecked",
            "not checked: this version checks LDAP targets; SCIM targets come next",
        ),
    };

    // Ready: the first unmet prerequisite explains why not.
    let ready = if observed.suspended {
        Desired::new(
            cond::READY,
            Status::False,
            "Suspended",
            "spec.suspend is true: nothing is synchronised",
        )
    } else if let Some(blocker) = &observed.blocker {
        Desired::new(
            cond::READY,
            Status::False,
            blocker.reason,
            blocker.message.clone(),
        )
    } else if source.status != Status::True {
        Desired::new(
            cond::READY,
            Status::False,
            &source.reason,
            source.message.clone(),
        )
    } else if directory.status == Status::False {
        Desired::new(
            cond::READY,
            Status::False,
            &directory.reason,
            directory.message.clone(),
        )
    } else {
        Desired::new(
            cond::READY,
            Status::True,
            "Ready",
            "the source is reachable and the configuration is valid",
        )
    };
    desired.extend([ready, source, directory]);

    let mut transitions = Vec::new();
    for d in desired {
        let event = Transition {
            kind: d.kind,
            status: d.status,
            reason: d.reason.clone(),
            message: d.message.clone(),
        };
        if cond::set(&mut status.conditions, d, generation, now) {
            transitions.push(event);
        }
    }
    cond::sort(&mut status.conditions);
    (status, transitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PeopleSyncSpec {
        PeopleSyncSpec::example()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_780_000_000).expect("valid")
    }

    fn observed(source: SourceOutcome) -> Observation {
        Observation {
            blocker: None,
            source,
            directory: DirectoryOutcome::NotChecked,
            suspended: false,
        }
    }

    fn reason_of(status: &PeopleSyncStatus, kind: &str) -> (String, String) {
        let c = cond::get(&status.conditions, kind).expect("condition present");
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn a_missing_secret_makes_ready_false_with_its_reason() {
        let observation = Observation {
            blocker: Some(Blocker {
                reason: "SecretNotFound",
                message: "Secret default/hollyhr not found".into(),
            }),
            source: SourceOutcome::NotChecked,
            directory: DirectoryOutcome::NotChecked,
            suspended: false,
        };
        let (status, transitions) = compute(&spec(), None, &observation, Some(1), now());
        assert_eq!(
            reason_of(&status, cond::READY),
            ("False".into(), "SecretNotFound".into())
        );
        assert_eq!(reason_of(&status, cond::SOURCE_REACHABLE).0, "Unknown");
        assert_eq!(transitions.len(), 3, "every condition is new");
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            status.summary.as_ref().map(|s| s.target.as_str()),
            Some("SCIM")
        );
    }

    #[test]
    fn a_reachable_source_makes_ready_true_and_a_repeat_is_quiet() {
        let reachable = observed(SourceOutcome::Reachable {
            environment: "sandbox".into(),
        });
        let (first, _) = compute(&spec(), None, &reachable, Some(1), now());
        assert_eq!(
            reason_of(&first, cond::READY),
            ("True".into(), "Ready".into())
        );
        let later = now() + jiff::SignedDuration::from_secs(60);
        let (second, transitions) = compute(&spec(), Some(&first), &reachable, Some(1), later);
        assert!(transitions.is_empty(), "nothing flipped: no Events");
        assert_eq!(first, second, "an unchanged observation writes nothing");
    }

    #[test]
    fn a_missing_scope_is_named_in_the_message() {
        let (status, _) = compute(
            &spec(),
            None,
            &observed(SourceOutcome::MissingScope(vec!["people:read".into()])),
            None,
            now(),
        );
        let ready = cond::get(&status.conditions, cond::READY).expect("ready");
        assert_eq!(ready.reason, "MissingScope");
        assert!(ready.message.contains("people:read"), "{}", ready.message);
    }

    #[test]
    fn suspension_wins_over_everything() {
        let mut observation = observed(SourceOutcome::Reachable {
            environment: "live".into(),
        });
        observation.suspended = true;
        let (status, _) = compute(&spec(), None, &observation, None, now());
        assert_eq!(
            reason_of(&status, cond::READY),
            ("False".into(), "Suspended".into())
        );
    }
}
