//! The mass-deprovision guard: a cycle that would take access away from too many people at once
//! (or that sees an empty source while the directory has managed entries) is far more likely a
//! broken feed than a mass exodus. Creates and updates go ahead; every deprovision is held until a
//! person approves exactly that plan by its hash.

use sha2::{Digest, Sha256};

use super::{Coverage, Index, Inputs, Step};

/// Thresholds (`spec.guard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// Hold when more than this many entries would be deprovisioned.
    pub max_count: u32,
    /// Hold when more than this percentage of managed entries would be deprovisioned.
    pub max_percent: u32,
}

impl Default for Guard {
    fn default() -> Self {
        // The CRD's defaults.
        Self {
            max_count: 10,
            max_percent: 5,
        }
    }
}

/// Why the guard held a plan (the condition reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardReason {
    ThresholdExceeded,
    EmptySource,
}

impl GuardReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardReason::ThresholdExceeded => "ThresholdExceeded",
            GuardReason::EmptySource => "EmptySource",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardTrip {
    pub reason: GuardReason,
    /// Deprovisions the plan would make.
    pub deprovisions: usize,
    /// Managed entries before the plan.
    pub managed: usize,
    /// Identifies exactly this set of deprovisions (approve it with the annotation).
    pub hash: String,
}

impl GuardTrip {
    /// The condition message: counts and the hash, no names.
    pub fn message(&self) -> String {
        let why = match self.reason {
            GuardReason::ThresholdExceeded => format!(
                "the plan would deprovision {} of {} managed entries",
                self.deprovisions, self.managed
            ),
            GuardReason::EmptySource => format!(
                "the source returned no people while the directory has {} managed entries",
                self.managed
            ),
        };
        format!(
            "{why}; deprovisions are held. To release exactly this plan, annotate the PeopleSync \
             with peoplesync.dev/approve-deprovision={}",
            self.hash
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GuardDecision {
    /// Under the thresholds.
    #[default]
    Clear,
    /// Over a threshold: deprovisions are held.
    Held(GuardTrip),
    /// Over a threshold, but this exact plan was approved.
    Approved(GuardTrip),
}

/// The hash of a set of deprovisions: the same leavers give the same hash in every cycle, so an
/// approval matches until the set changes.
pub fn deprovision_hash<'a>(steps: impl Iterator<Item = &'a Step>) -> String {
    let mut lines: Vec<String> = steps
        .filter(|step| step.action.is_deprovision())
        .map(|step| format!("{} {}\n", step.action.name(), step.anchor))
        .collect();
    lines.sort();
    let digest = Sha256::digest(lines.concat().as_bytes());
    hex::encode(&digest[..8])
}

pub(crate) fn decide(inputs: &Inputs<'_>, index: &Index<'_>, steps: &[Step]) -> GuardDecision {
    let empty_source = inputs.coverage == Coverage::Full && inputs.people.is_empty();
    // Entries taken over in this plan (adopted, or claimed after an upgrade) are managed too:
    // an upgrade's first cycle, where every entry is claimed, measures against all of them.
    let taken = steps
        .iter()
        .filter(|s| matches!(s.action, super::Action::Adopt { .. }))
        .count();
    decide_over(
        inputs.policy.guard,
        empty_source,
        index.entries.len() + taken,
        steps.iter().filter(|s| s.action.is_deprovision()),
        inputs.approved,
    )
}

/// The guard's decision over a cycle's deprovisions: `empty_source` when a full read found no
/// people, `managed` entries before the cycle.
pub(crate) fn decide_over<'a>(
    guard: Guard,
    empty_source: bool,
    managed: usize,
    deprovisions: impl Iterator<Item = &'a Step> + Clone,
    approved: Option<&str>,
) -> GuardDecision {
    let count = deprovisions.clone().count();
    let empty_source = empty_source && managed > 0;
    let over_count = count > guard.max_count as usize;
    let over_percent = count * 100 > guard.max_percent as usize * managed;
    let reason = if empty_source {
        GuardReason::EmptySource
    } else if count > 0 && (over_count || over_percent) {
        GuardReason::ThresholdExceeded
    } else {
        return GuardDecision::Clear;
    };
    let trip = GuardTrip {
        reason,
        deprovisions: count,
        managed,
        hash: deprovision_hash(deprovisions),
    };
    if approved == Some(trip.hash.as_str()) {
        GuardDecision::Approved(trip)
    } else {
        GuardDecision::Held(trip)
    }
}
