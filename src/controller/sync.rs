//! The sync cycle inside a reconcile: which cycle is due, running it, and the result as data for
//! the status. The engine state lives in the status (`checkpoint`, `lastFullSyncTime`,
//! `syncState`), so a restarted controller continues where the last one stopped.

use std::collections::BTreeMap;
#[cfg(test)]
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{
    PeopleSyncStatus, PersonFailure, PlanSummary, PlannedChange, SyncCounts, SyncStateStatus,
};
use crate::plan::GuardDecision;
use crate::sync::engine::{CycleKind, Report, SyncState};
#[cfg(test)]
use crate::sync::engine::{due, next_run};

/// Changes listed in status by a dry run (names of attributes only).
pub const LISTED_CHANGES: usize = 50;
/// Failed people listed in status.
pub const LISTED_FAILURES: usize = 20;
/// People kept for a retry by id (more wait for the next full cycle).
const MAX_RETRY: usize = 1000;

/// What this reconcile's sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// No cycle ran: a prerequisite is unmet (the other conditions say which) or suspended.
    NotRun,
    /// The cycle could not run or stopped: `SourceError`, `DirectoryError`, `InvalidMapping`.
    Failed {
        reason: &'static str,
        message: String,
    },
    Completed(Box<Completed>),
}

/// A finished cycle, as the status needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub kind: CycleKind,
    pub dry_run: bool,
    /// Applied steps by action (planned ones for a dry run).
    pub counts: BTreeMap<&'static str, usize>,
    pub people_read: usize,
    pub in_scope: usize,
    pub failures: Vec<PersonFailure>,
    pub guard: GuardDecision,
    pub plan: PlanSummary,
    pub state: SyncState,
    pub finished: Timestamp,
    /// Who approved the plan the guard let through (`GuardDecision::Approved`).
    pub approved_by: Option<String>,
    /// The cycle's id, as its audit lines and log span carry it (empty where none was given).
    pub cycle: String,
}

impl Completed {
    pub fn of(report: &Report, dry_run: bool, finished: Timestamp) -> Self {
        let counts = match &report.applied {
            Some(applied) => applied
                .counts
                .iter()
                .map(|(action, n)| (*action, *n as usize))
                .collect(),
            None if dry_run => report.plan.counts(),
            None => BTreeMap::new(),
        };
        let failures = report
            .failures()
            .into_iter()
            .map(|f| PersonFailure {
                person_id: f.anchor.clone(),
                reason: f.reason.to_owned(),
            })
            .collect();
        let planned = report.plan.counts();
        let count = |action: &str| planned.get(action).copied().unwrap_or(0) as u64;
        let hash = match &report.plan.guard {
            GuardDecision::Held(trip) | GuardDecision::Approved(trip) => trip.hash.clone(),
            GuardDecision::Clear => crate::plan::guard::deprovision_hash(report.plan.steps.iter()),
        };
        Self {
            kind: report.kind,
            dry_run,
            counts,
            people_read: report.people_read,
            in_scope: report.plan.in_scope,
            failures,
            guard: report.plan.guard.clone(),
            plan: PlanSummary {
                hash,
                creates: count("create"),
                updates: count("update") + count("rename") + count("set-references"),
                disables: count("disable"),
                deletes: count("delete"),
                adopts: count("adopt"),
                unmarked: report.plan.left_alone.unmarked as u64,
                foreign: report.plan.left_alone.foreign as u64,
                held: report.plan.held.len() as u64,
                changes: if dry_run {
                    report
                        .plan
                        .steps
                        .iter()
                        .take(LISTED_CHANGES)
                        .map(|step| PlannedChange {
                            person_id: step.anchor.clone(),
                            action: step.action.name().to_owned(),
                            attributes: step.action.attribute_names(),
                        })
                        .collect()
                } else {
                    // The deprovisions the guard holds, for whoever approves them.
                    report
                        .plan
                        .held
                        .iter()
                        .take(LISTED_CHANGES)
                        .map(|step| PlannedChange {
                            person_id: step.anchor.clone(),
                            action: step.action.name().to_owned(),
                            attributes: Vec::new(),
                        })
                        .collect()
                },
            },
            state: report.state.clone(),
            cycle: String::new(),
            finished,
            approved_by: None,
        }
    }

    /// Whether the cycle wrote anything (worth an Event).
    pub fn changed(&self) -> bool {
        !self.dry_run && self.counts.values().any(|n| *n > 0)
    }

    /// `create 3, update 1` or `no changes`.
    pub fn describe_counts(&self) -> String {
        if self.counts.is_empty() {
            return "no changes".into();
        }
        self.counts
            .iter()
            .map(|(action, n)| format!("{action} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What webhook-driven runs wrote since the object's last Event about them: one Event per
/// reconcile tells them (a run per delivery would flood `kubectl get events`), naming the first
/// and last run so that their audit lines can be found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookRuns {
    pub runs: u64,
    pub first: String,
    pub last: String,
    pub counts: BTreeMap<&'static str, u64>,
    pub failures: u64,
}

impl WebhookRuns {
    /// Counts one run (`id` as in its span and audit lines) that wrote or failed something;
    /// a run that changed nothing is not part of the story.
    pub fn add(&mut self, id: &str, applied: &crate::sync::Applied) {
        let wrote = applied.counts.values().any(|n| *n > 0);
        if !wrote && applied.failures.is_empty() {
            return;
        }
        if self.runs == 0 {
            self.first = id.to_owned();
        }
        self.runs += 1;
        self.last = id.to_owned();
        for (action, n) in &applied.counts {
            *self.counts.entry(action).or_default() += n;
        }
        self.failures += applied.failures.len() as u64;
    }

    pub fn is_empty(&self) -> bool {
        self.runs == 0
    }

    /// `3 webhook runs (0a1b2c3d4e5f … 5f4e3d2c1b0a): update 4, disable 1; 1 failed`.
    pub fn note(&self) -> String {
        let runs = if self.runs == 1 {
            format!("1 webhook run ({})", self.first)
        } else {
            format!(
                "{} webhook runs ({} … {})",
                self.runs, self.first, self.last
            )
        };
        let counts: Vec<String> = self
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(action, n)| format!("{action} {n}"))
            .collect();
        let counts = if counts.is_empty() {
            "no changes".to_owned()
        } else {
            counts.join(", ")
        };
        match self.failures {
            0 => format!("{runs}: {counts}"),
            n => format!("{runs}: {counts}; {n} failed (retried by the next cycle)"),
        }
    }
}

fn parse_time(value: &str) -> Option<Timestamp> {
    value.parse().ok()
}

/// The engine state the status holds.
pub fn state_of(status: Option<&PeopleSyncStatus>) -> SyncState {
    let Some(status) = status else {
        return SyncState::default();
    };
    let kept = status.sync_state.clone().unwrap_or_default();
    SyncState {
        checkpoint: status.checkpoint.as_deref().and_then(parse_time),
        last_full_sync: status.last_full_sync_time.as_ref().map(|t| t.0),
        disabled_since: kept
            .disabled_since
            .iter()
            .filter_map(|(anchor, at)| parse_time(at).map(|at| (anchor.clone(), at)))
            .collect(),
        retry: kept.retry.into_iter().collect(),
        approval_used: kept.approval_used,
        marked: kept.marked,
        edge: kept
            .edge
            .iter()
            .filter_map(|(id, at)| parse_time(at).map(|at| (id.clone(), at)))
            .collect(),
    }
}

/// Writes a completed cycle into the status (counts, times, plan, failures, engine state).
pub fn fold(status: &mut PeopleSyncStatus, completed: &Completed, next: Option<Timestamp>) {
    status.last_plan = Some(completed.plan.clone());
    status.next_sync_time = next.map(Time);
    if completed.dry_run {
        return;
    }
    let state = &completed.state;
    status.checkpoint = state.checkpoint.map(|t| t.to_string());
    status.last_full_sync_time = state.last_full_sync.map(Time);
    status.last_sync_time = Some(Time(completed.finished));
    status.failures = completed
        .failures
        .iter()
        .take(LISTED_FAILURES)
        .cloned()
        .collect();
    status.sync_state = Some(SyncStateStatus {
        retry: state.retry.iter().take(MAX_RETRY).cloned().collect(),
        disabled_since: state
            .disabled_since
            .iter()
            .map(|(anchor, at)| (anchor.clone(), at.to_string()))
            .collect(),
        approval_used: state.approval_used.clone(),
        marked: state.marked,
        // The approver of the plan last approved (kept until another is approved).
        approved_by: match &completed.guard {
            GuardDecision::Approved(_) => completed.approved_by.clone(),
            _ => status
                .sync_state
                .as_ref()
                .and_then(|kept| kept.approved_by.clone()),
        },
        edge: state
            .edge
            .iter()
            .map(|(id, at)| (id.clone(), at.to_string()))
            .collect(),
    })
    .filter(|s| *s != SyncStateStatus::default());
    let counted = |action: &str| completed.counts.get(action).copied().unwrap_or(0) as u64;
    let previous = status.counts.clone().unwrap_or_default();
    status.counts = Some(SyncCounts {
        // People and scope describe the whole tenant: only a full cycle sees it.
        people: if completed.kind == CycleKind::Full {
            completed.people_read as u64
        } else {
            previous.people
        },
        in_scope: if completed.kind == CycleKind::Full {
            completed.in_scope as u64
        } else {
            previous.in_scope
        },
        created: counted("create"),
        updated: counted("update") + counted("rename"),
        disabled: counted("disable"),
        deleted: counted("delete"),
        failed: completed.failures.len() as u64,
        adopted: counted("adopt"),
        // Only a full cycle lists the whole subtree.
        unmarked: if completed.kind == CycleKind::Full {
            completed.plan.unmarked
        } else {
            previous.unmarked
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_runs_add_up_into_one_note_and_quiet_runs_are_left_out() {
        let applied = |counts: &[(&'static str, u64)], failures: usize| crate::sync::Applied {
            counts: counts.iter().copied().collect(),
            failures: (0..failures)
                .map(|i| crate::plan::Failure {
                    anchor: format!("p{i}"),
                    reason: "SchemaViolation",
                    message: String::new(),
                })
                .collect(),
        };
        let mut runs = WebhookRuns::default();
        runs.add("000000000001", &applied(&[("update", 0)], 0));
        assert!(runs.is_empty(), "a run that wrote nothing");
        runs.add("0a1b2c3d4e5f", &applied(&[("update", 2)], 0));
        assert_eq!(runs.note(), "1 webhook run (0a1b2c3d4e5f): update 2");
        runs.add("000000000002", &applied(&[], 0));
        runs.add(
            "1b2c3d4e5f60",
            &applied(&[("disable", 1), ("update", 1)], 1),
        );
        runs.add("5f4e3d2c1b0a", &applied(&[("update", 1)], 0));
        assert_eq!(
            runs.note(),
            "3 webhook runs (0a1b2c3d4e5f … 5f4e3d2c1b0a): disable 1, update 4; 1 failed (retried by the next cycle)"
        );
        let mut failing = WebhookRuns::default();
        failing.add("aaaaaaaaaaaa", &applied(&[], 2));
        assert_eq!(
            failing.note(),
            "1 webhook run (aaaaaaaaaaaa): no changes; 2 failed (retried by the next cycle)"
        );
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn the_engine_state_round_trips_through_the_status() {
        let state = SyncState {
            checkpoint: Some(at("2026-06-01T10:00:00Z")),
            last_full_sync: Some(at("2026-06-01T09:00:00Z")),
            disabled_since: BTreeMap::from([("p1".into(), at("2026-05-01T00:00:00Z"))]),
            retry: ["p2".to_owned()].into(),
            approval_used: Some("abc".into()),
            edge: BTreeMap::from([("p3".into(), at("2026-06-01T09:59:30Z"))]),
            marked: true,
        };
        let completed = Completed {
            kind: CycleKind::Full,
            dry_run: false,
            counts: BTreeMap::from([("create", 2), ("disable", 1)]),
            people_read: 10,
            in_scope: 9,
            failures: vec![PersonFailure {
                person_id: "p2".into(),
                reason: "SchemaViolation".into(),
            }],
            guard: GuardDecision::Clear,
            plan: PlanSummary::default(),
            state: state.clone(),
            finished: at("2026-06-01T10:00:05Z"),
            approved_by: None,
            cycle: String::new(),
        };
        let mut status = PeopleSyncStatus::default();
        fold(&mut status, &completed, Some(at("2026-06-01T10:05:05Z")));
        assert_eq!(state_of(Some(&status)), state);
        let counts = status.counts.expect("counts");
        assert_eq!(
            (
                counts.people,
                counts.created,
                counts.disabled,
                counts.failed
            ),
            (10, 2, 1, 1)
        );

        // An incremental cycle keeps the tenant's totals from the last full one.
        let incremental = Completed {
            kind: CycleKind::Incremental,
            people_read: 1,
            counts: BTreeMap::new(),
            failures: vec![],
            ..completed
        };
        let mut status = status_with_counts(10, 9);
        fold(&mut status, &incremental, None);
        let counts = status.counts.expect("counts");
        assert_eq!((counts.people, counts.in_scope, counts.created), (10, 9, 0));
    }

    fn status_with_counts(people: u64, in_scope: u64) -> PeopleSyncStatus {
        PeopleSyncStatus {
            counts: Some(SyncCounts {
                people,
                in_scope,
                ..SyncCounts::default()
            }),
            ..PeopleSyncStatus::default()
        }
    }

    #[test]
    fn a_dry_run_records_the_plan_but_not_the_state() {
        let completed = Completed {
            kind: CycleKind::Full,
            dry_run: true,
            counts: BTreeMap::from([("create", 5)]),
            people_read: 5,
            in_scope: 5,
            failures: vec![],
            guard: GuardDecision::Clear,
            plan: PlanSummary {
                creates: 5,
                ..PlanSummary::default()
            },
            state: SyncState {
                checkpoint: Some(at("2026-06-01T10:00:00Z")),
                ..SyncState::default()
            },
            finished: at("2026-06-01T10:00:05Z"),
            approved_by: None,
            cycle: String::new(),
        };
        let mut status = PeopleSyncStatus::default();
        fold(&mut status, &completed, None);
        assert_eq!(status.last_plan.expect("plan").creates, 5);
        assert_eq!(status.checkpoint, None);
        assert_eq!(status.last_sync_time, None);
    }

    #[test]
    fn full_cycles_come_first_after_a_spec_change_and_on_schedule() {
        let now = at("2026-06-01T12:00:00Z");
        let hour = Duration::from_secs(3600);
        assert_eq!(
            due(&SyncState::default(), hour, now, false),
            CycleKind::Full
        );
        let state = SyncState {
            checkpoint: Some(now),
            last_full_sync: Some(at("2026-06-01T11:30:00Z")),
            ..SyncState::default()
        };
        assert_eq!(due(&state, hour, now, false), CycleKind::Incremental);
        assert_eq!(due(&state, hour, now, true), CycleKind::Full);
        assert_eq!(
            due(&state, hour, at("2026-06-01T12:31:00Z"), false),
            CycleKind::Full
        );
        let five = Duration::from_secs(300);
        assert_eq!(
            next_run(&state, five, hour, now),
            at("2026-06-01T12:05:00Z")
        );
        assert_eq!(
            next_run(&state, five, hour, at("2026-06-01T12:28:00Z")),
            at("2026-06-01T12:30:00Z"),
            "the full cycle comes before the next poll"
        );
    }

    #[test]
    fn a_deprovision_delay_ending_wakes_one_full_cycle() {
        use crate::sync::engine::deprovision_delay;
        let day = jiff::SignedDuration::from_hours(24);
        let state = SyncState {
            checkpoint: Some(at("2026-06-01T11:00:00Z")),
            last_full_sync: Some(at("2026-06-01T11:30:00Z")),
            disabled_since: BTreeMap::from([
                ("a".into(), at("2026-05-31T12:00:00Z")),
                ("b".into(), at("2026-06-01T09:00:00Z")),
            ]),
            ..SyncState::default()
        };
        // a's delay ends at 12:00, after the last full cycle: not due before, due at it.
        assert_eq!(
            deprovision_delay(&state, day, at("2026-06-01T11:59:59Z")),
            (false, Some(at("2026-06-01T12:00:00Z")))
        );
        assert_eq!(
            deprovision_delay(&state, day, at("2026-06-01T12:00:00Z")),
            (true, Some(at("2026-06-02T09:00:00Z")))
        );
        // A full cycle ran since (the delete failed, say): not due again until b's.
        let after = SyncState {
            last_full_sync: Some(at("2026-06-01T12:00:01Z")),
            ..state
        };
        assert_eq!(
            deprovision_delay(&after, day, at("2026-06-01T13:00:00Z")),
            (false, Some(at("2026-06-02T09:00:00Z")))
        );
    }
}
