//! Status as data: what the reconcile observed → the `PeopleSyncStatus` to write and the
//! condition transitions worth an Event. Pure: no client, time passed in.

use jiff::Timestamp;

use super::conditions::{self as cond, Desired, Status};
use super::sync::{self as cycle, SyncOutcome};
use crate::crd::{PeopleSyncSpec, PeopleSyncStatus};
use crate::plan::GuardDecision;
use crate::webhook::WebhookOutcome;
use crate::webhook::fold as webhook;

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

pub use crate::crd::conditions::Blocker;

/// Everything one reconcile learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub blocker: Option<Blocker>,
    pub source: SourceOutcome,
    pub directory: DirectoryOutcome,
    pub suspended: bool,
    /// What the sync cycle of this reconcile did.
    pub sync: SyncOutcome,
    /// When the next cycle is due.
    pub next_sync: Option<Timestamp>,
    /// The earliest lifecycle transition ahead (a person's first day starting, last day ending).
    pub next_transition: Option<Timestamp>,
    /// What the webhook step saw and did.
    pub webhook: WebhookOutcome,
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

    let kind = spec.source.kind();
    let wording = crate::source::any::wording(&spec.source);
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
            format!("{kind} answered with every needed scope ({environment} environment)"),
        ),
        (None, SourceOutcome::MissingScope(scopes)) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::False,
            "MissingScope",
            format!(
                "the {} lacks the scope{} {}: {}",
                wording.credential,
                if scopes.len() == 1 { "" } else { "s" },
                scopes.join(", "),
                wording.grant_scope,
            ),
        ),
        (None, SourceOutcome::Unauthorized) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::False,
            "Unauthorized",
            wording.unauthorized,
        ),
        (None, SourceOutcome::Unreachable(message)) => Desired::new(
            cond::SOURCE_REACHABLE,
            Status::False,
            "Unreachable",
            format!("{kind} could not be reached: {message}"),
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

    let hooks = webhook::fold(&mut status, &observed.webhook, now);
    if hooks.remove {
        status.conditions.retain(|c| {
            ![
                cond::WEBHOOK_REGISTERED,
                cond::WEBHOOK_HEALTHY,
                cond::SECRET_ROTATED,
            ]
            .contains(&c.type_.as_str())
        });
    }
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
    } else if let SyncOutcome::Failed { reason, message } = &observed.sync {
        Desired::new(cond::READY, Status::False, reason, message.clone())
    } else if let Some((reason, message)) = &hooks.not_ready {
        Desired::new(cond::READY, Status::False, reason, message.clone())
    } else {
        Desired::new(
            cond::READY,
            Status::True,
            "Ready",
            "the source is reachable and the configuration is valid",
        )
    };
    desired.extend([ready, source, directory]);
    desired.extend(hooks.desired);
    let had_synced = cond::get(&status.conditions, cond::SYNCED).is_some();
    desired.extend(synced(observed, had_synced));
    if let SyncOutcome::Completed(completed) = &observed.sync {
        desired.push(deprovision_guard(
            &completed.guard,
            completed.approved_by.as_deref(),
        ));
        cycle::fold(&mut status, completed, observed.next_sync);
    } else if observed.next_sync.is_some() {
        status.next_sync_time = observed
            .next_sync
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
    }
    if observed.next_sync.is_some() {
        status.next_transition_time = observed
            .next_transition
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
    }

    let mut transitions = Vec::new();
    for d in desired {
        let event = Transition {
            kind: d.kind,
            status: d.status,
            reason: d.reason.clone(),
            message: d.message.clone(),
        };
        // "No cycle yet" or "suspended" is not news: the Ready transition already says why.
        let quiet = event.kind == cond::SYNCED && event.status == Status::Unknown;
        if cond::set(&mut status.conditions, d, generation, now) && !quiet {
            transitions.push(event);
        }
    }
    cond::sort(&mut status.conditions);
    (status, transitions)
}

/// `Synced`: what the last cycle achieved. `None` keeps the previous condition (no cycle ran this
/// time, but one did before).
fn synced(observed: &Observation, had_synced: bool) -> Option<Desired> {
    Some(match &observed.sync {
        SyncOutcome::NotRun if observed.suspended => Desired::new(
            cond::SYNCED,
            Status::Unknown,
            "Suspended",
            "spec.suspend is true: no cycle runs",
        ),
        SyncOutcome::NotRun if had_synced => return None,
        SyncOutcome::NotRun => Desired::new(
            cond::SYNCED,
            Status::Unknown,
            "Pending",
            "no cycle has run yet: see Ready for what is missing",
        ),
        SyncOutcome::Failed { reason, message } => {
            Desired::new(cond::SYNCED, Status::False, reason, message.clone())
        }
        SyncOutcome::Completed(completed) => {
            let kind = completed.kind.as_str();
            if completed.dry_run {
                Desired::new(
                    cond::SYNCED,
                    Status::Unknown,
                    "DryRun",
                    format!(
                        "dry run ({kind} cycle): would {}; nothing was written (status.lastPlan lists the first {} changes)",
                        completed.describe_counts(),
                        cycle::LISTED_CHANGES
                    ),
                )
            } else if let GuardDecision::Held(trip) = &completed.guard {
                Desired::new(
                    cond::SYNCED,
                    Status::False,
                    "GuardHeld",
                    format!(
                        "{kind} cycle applied {}; {} deprovisions are held (see DeprovisionGuard)",
                        completed.describe_counts(),
                        trip.deprovisions
                    ),
                )
            } else if !completed.failures.is_empty() {
                let first: Vec<String> = completed
                    .failures
                    .iter()
                    .take(5)
                    .map(|f| format!("{} ({})", f.person_id, f.reason))
                    .collect();
                Desired::new(
                    cond::SYNCED,
                    Status::False,
                    "PartialFailure",
                    format!(
                        "{kind} cycle applied {}; {} people failed and are retried in the next cycle: {}",
                        completed.describe_counts(),
                        completed.failures.len(),
                        first.join(", ")
                    ),
                )
            } else {
                Desired::new(
                    cond::SYNCED,
                    Status::True,
                    "Synced",
                    format!(
                        "{kind} cycle: {}; {} people in scope",
                        completed.describe_counts(),
                        completed.in_scope
                    ),
                )
            }
        }
    })
}

/// `DeprovisionGuard`: True while deprovisions are held, with the hash to approve.
fn deprovision_guard(guard: &GuardDecision, approved_by: Option<&str>) -> Desired {
    match guard {
        GuardDecision::Held(trip) => Desired::new(
            cond::DEPROVISION_GUARD,
            Status::True,
            trip.reason.as_str(),
            trip.message(),
        ),
        GuardDecision::Approved(trip) => Desired::new(
            cond::DEPROVISION_GUARD,
            Status::False,
            "Approved",
            format!(
                "the plan {} approved by {} was applied ({} deprovisions)",
                trip.hash,
                approved_by.unwrap_or("an unnamed approver"),
                trip.deprovisions
            ),
        ),
        GuardDecision::Clear => Desired::new(
            cond::DEPROVISION_GUARD,
            Status::False,
            "WithinLimits",
            "the last cycle's deprovisions were within guard.maxCount and guard.maxPercent",
        ),
    }
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
            sync: crate::controller::sync::SyncOutcome::NotRun,
            next_sync: None,
            next_transition: None,
            webhook: WebhookOutcome::NotChecked,
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
            sync: crate::controller::sync::SyncOutcome::NotRun,
            next_sync: None,
            next_transition: None,
            webhook: WebhookOutcome::NotChecked,
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

    fn completed(
        guard: GuardDecision,
        failures: Vec<crate::crd::PersonFailure>,
        dry_run: bool,
    ) -> Observation {
        use crate::controller::sync::{Completed, SyncOutcome};
        Observation {
            directory: DirectoryOutcome::Reachable,
            sync: SyncOutcome::Completed(Box::new(Completed {
                kind: crate::sync::engine::CycleKind::Full,
                dry_run,
                counts: std::collections::BTreeMap::from([("create", 3)]),
                people_read: 10,
                in_scope: 9,
                failures,
                guard,
                plan: crate::crd::PlanSummary::default(),
                state: crate::sync::engine::SyncState::default(),
                finished: now(),
                approved_by: None,
                cycle: String::new(),
            })),
            ..observed(SourceOutcome::Reachable {
                environment: "sandbox".into(),
            })
        }
    }

    #[test]
    fn an_applied_approval_names_its_approver() {
        let trip = crate::plan::GuardTrip {
            reason: crate::plan::guard::GuardReason::ThresholdExceeded,
            deprovisions: 40,
            managed: 100,
            hash: "h4sh".into(),
        };
        let approved = deprovision_guard(&GuardDecision::Approved(trip), Some("alice@example.com"));
        assert_eq!(approved.reason, "Approved");
        assert!(
            approved
                .message
                .contains("h4sh approved by alice@example.com"),
            "{}",
            approved.message
        );
    }

    #[test]
    fn a_clean_cycle_is_synced_and_the_guard_is_within_limits() {
        let (status, transitions) = compute(
            &spec(),
            None,
            &completed(GuardDecision::Clear, vec![], false),
            Some(1),
            now(),
        );
        assert_eq!(
            reason_of(&status, cond::SYNCED),
            ("True".into(), "Synced".into())
        );
        assert_eq!(
            reason_of(&status, cond::READY),
            ("True".into(), "Ready".into())
        );
        assert_eq!(
            reason_of(&status, cond::DEPROVISION_GUARD),
            ("False".into(), "WithinLimits".into())
        );
        assert!(transitions.iter().any(|t| t.kind == cond::SYNCED));
        assert_eq!(
            status.counts.as_ref().map(|c| (c.people, c.created)),
            Some((10, 3))
        );
    }

    #[test]
    fn failures_held_deprovisions_and_dry_runs_each_say_so() {
        let failure = crate::crd::PersonFailure {
            person_id: "abcdefghjkmn".into(),
            reason: "SchemaViolation".into(),
        };
        let (status, _) = compute(
            &spec(),
            None,
            &completed(GuardDecision::Clear, vec![failure], false),
            Some(1),
            now(),
        );
        let synced = cond::get(&status.conditions, cond::SYNCED).expect("synced");
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("False", "PartialFailure")
        );
        assert!(
            synced.message.contains("abcdefghjkmn (SchemaViolation)"),
            "{}",
            synced.message
        );

        let trip = crate::plan::GuardTrip {
            reason: crate::plan::guard::GuardReason::EmptySource,
            deprovisions: 50,
            managed: 50,
            hash: "0123456789abcdef".into(),
        };
        let (status, _) = compute(
            &spec(),
            None,
            &completed(GuardDecision::Held(trip), vec![], false),
            Some(1),
            now(),
        );
        assert_eq!(
            reason_of(&status, cond::SYNCED),
            ("False".into(), "GuardHeld".into())
        );
        let guard = cond::get(&status.conditions, cond::DEPROVISION_GUARD).expect("guard");
        assert_eq!(
            (guard.status.as_str(), guard.reason.as_str()),
            ("True", "EmptySource")
        );
        assert!(
            guard
                .message
                .contains("peoplesync.dev/approve-deprovision=0123456789abcdef")
        );

        let (status, _) = compute(
            &spec(),
            None,
            &completed(GuardDecision::Clear, vec![], true),
            Some(1),
            now(),
        );
        assert_eq!(
            reason_of(&status, cond::SYNCED),
            ("Unknown".into(), "DryRun".into())
        );
        assert_eq!(status.checkpoint, None, "a dry run moves nothing");
    }

    #[test]
    fn a_failed_cycle_makes_synced_and_ready_false() {
        let observation = Observation {
            directory: DirectoryOutcome::Reachable,
            sync: crate::controller::sync::SyncOutcome::Failed {
                reason: "DirectoryError",
                message: "the full cycle failed (DirectoryUnreachable)".into(),
            },
            ..observed(SourceOutcome::Reachable {
                environment: "live".into(),
            })
        };
        let (status, _) = compute(&spec(), None, &observation, Some(1), now());
        assert_eq!(
            reason_of(&status, cond::SYNCED),
            ("False".into(), "DirectoryError".into())
        );
        assert_eq!(
            reason_of(&status, cond::READY),
            ("False".into(), "DirectoryError".into())
        );
    }
}
