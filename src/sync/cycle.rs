//! What a sync cycle is made of, shared by the engine ([`super::engine`]) and the streamed
//! planning it drives ([`super::stream`]): the settings, the state one cycle hands the next, the
//! report, the errors, and the schedule (which cycle is due, and when). Data and pure functions
//! only; the engine re-exports them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Aborted, Applied};
use crate::directory::DirectoryError;
use crate::plan::{self, Failure, Mapping, Plan, Policy};
use crate::source::SourceError;

/// How far before the checkpoint an incremental cycle starts reading (see the module docs).
pub const DEFAULT_OVERLAP: SignedDuration = SignedDuration::from_secs(60);
/// Steps in flight while applying (LDAP multiplexes them on one connection).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// What a cycle needs besides the source and the directory.
#[derive(Debug)]
pub struct Settings {
    pub mapping: Mapping,
    pub policy: Policy,
    pub concurrency: usize,
    pub overlap: SignedDuration,
    /// Plan only: nothing is written and the state does not move.
    pub dry_run: bool,
    /// People a streamed full cycle plans and applies together ([`super::stream::CHUNK`]).
    pub chunk: usize,
    /// Told of every planned step as the cycle goes (`peoplesync sync --dry-run` prints them).
    pub on_step: Option<StepSink>,
    /// Advanced as the cycle goes (`peoplesync sync` shows it on a terminal).
    pub progress: Option<std::sync::Arc<Progress>>,
}

/// Counters a cycle advances as it goes, for a progress display. Estimates, not a ledger: the
/// report is the account of what a cycle did.
#[derive(Debug, Default)]
pub struct Progress {
    /// People read from the source.
    pub read: std::sync::atomic::AtomicUsize,
    /// Managed entries in the directory when the cycle started (what a full cycle expects to
    /// read; 0 when unknown).
    pub expected: std::sync::atomic::AtomicUsize,
    /// Changes planned so far.
    pub planned: std::sync::atomic::AtomicUsize,
    /// Changes carried out so far (failed ones included).
    pub applied: std::sync::atomic::AtomicUsize,
}

impl Progress {
    fn add(counter: &std::sync::atomic::AtomicUsize, n: usize) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn read(&self, n: usize) {
        Self::add(&self.read, n);
    }

    pub(super) fn planned(&self, n: usize) {
        Self::add(&self.planned, n);
    }

    pub(super) fn applied(&self, n: usize) {
        Self::add(&self.applied, n);
    }

    pub(super) fn expect(&self, n: usize) {
        self.expected.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counters now: (read, expected, planned, applied).
    pub fn snapshot(&self) -> (usize, usize, usize, usize) {
        let get = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
        (
            get(&self.read),
            get(&self.expected),
            get(&self.planned),
            get(&self.applied),
        )
    }
}

/// A function told of a planned step, and whether the guard holds it.
pub type OnStep = dyn Fn(&plan::Step, bool) + Send + Sync;

/// Receives each planned step (see [`OnStep`]).
#[derive(Clone)]
pub struct StepSink(pub std::sync::Arc<OnStep>);

impl std::fmt::Debug for StepSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepSink")
    }
}

/// What the next cycle starts from (kept in status, or in a state file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// The largest `updated_at` of a fully applied cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_sync: Option<Timestamp>,
    /// When each disabled managed entry was first seen disabled (for DisableThenDelete).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disabled_since: BTreeMap<String, Timestamp>,
    /// People whose last change failed: re-read by id in the next cycle.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub retry: BTreeSet<String>,
    /// People applied inside the overlap window before the checkpoint, with the `updated_at` that
    /// was applied: the next incremental cycle re-reads them and skips those unchanged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub edge: BTreeMap<String, Timestamp>,
    /// The approval hash already used (an approval releases exactly one plan, once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_used: Option<String>,
    /// A full cycle of a version that marks what it owns has completed without failures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub marked: bool,
}

impl SyncState {
    /// Whether unmarked entries holding a person's id are claimed: after an upgrade from a
    /// version that did not mark (the object has synced, but never fully under marking).
    pub fn claims_unmarked(&self) -> bool {
        self.last_full_sync.is_some() && !self.marked
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleKind {
    /// Everyone and every org unit against every managed entry.
    Full,
    /// People changed since the checkpoint (and those to retry).
    Incremental,
}

impl CycleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleKind::Full => "full",
            CycleKind::Incremental => "incremental",
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone)]
pub struct Report {
    pub kind: CycleKind,
    /// The plan; a streamed full cycle's counts its steps and keeps its deprovisions and a few
    /// others (see [`Plan::counted`]).
    pub plan: Plan,
    /// `None` for a dry run or a cycle with nothing to do.
    pub applied: Option<Applied>,
    /// The state for the next cycle.
    pub state: SyncState,
    /// People read from the source.
    pub people_read: usize,
    pub duration: Duration,
    /// Where the time went.
    pub timings: Timings,
    /// The next lifecycle transition of the people it read.
    pub upcoming: Upcoming,
}

/// The next lifecycle transition of each person a cycle read ([`crate::plan::timing`]): the
/// controller runs a targeted cycle for the people due at the earliest instant, at that instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upcoming {
    /// A full cycle read everyone: its list replaces what was known, and leaves out people
    /// with no transition ahead. A partial run lists everyone it read.
    pub complete: bool,
    pub next: Vec<(String, Option<(Timestamp, crate::plan::timing::Transition)>)>,
}

/// Time spent per stage of a cycle (for logs and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    pub source: Duration,
    pub directory: Duration,
    pub plan: Duration,
    pub apply: Duration,
}

impl Report {
    /// Per-person failures of planning and applying.
    pub fn failures(&self) -> Vec<&Failure> {
        self.plan
            .failures
            .iter()
            .chain(self.applied.iter().flat_map(|a| a.failures.iter()))
            .collect()
    }

    /// Whether the cycle wrote anything.
    pub fn changed(&self) -> bool {
        self.applied
            .as_ref()
            .is_some_and(|a| a.counts.values().any(|n| *n > 0))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError<S: SourceError, D: DirectoryError> {
    #[error("failed to read the source")]
    Source(#[source] S),
    #[error("failed to read the directory")]
    Directory(#[source] D),
    #[error("failed to apply the plan")]
    Apply(#[source] Box<Aborted<D>>),
}

impl<S: SourceError, D: DirectoryError> CycleError<S, D> {
    /// The condition reason of a failed cycle.
    pub fn reason(&self) -> &'static str {
        match self {
            CycleError::Source(_) => "SourceError",
            CycleError::Directory(_) | CycleError::Apply(_) => "DirectoryError",
        }
    }

    /// The underlying error's own category (for the message and metrics).
    pub fn detail(&self) -> &'static str {
        match self {
            CycleError::Source(error) => error.reason(),
            CycleError::Directory(error) => error.reason(),
            CycleError::Apply(aborted) => aborted.reason,
        }
    }
}

/// Which cycle is due: full at the start, after a spec change, when asked, or once the full
/// interval has passed; incremental otherwise.
pub fn due(
    state: &SyncState,
    full_interval: Duration,
    now: Timestamp,
    spec_changed: bool,
) -> CycleKind {
    let full_due = state
        .last_full_sync
        .is_none_or(|last| last > now || now.duration_since(last).unsigned_abs() >= full_interval);
    if spec_changed || full_due || state.checkpoint.is_none() {
        CycleKind::Full
    } else {
        CycleKind::Incremental
    }
}

/// The deprovision delay (`DisableThenDelete`) as it bears on the schedule: whether a full
/// cycle is due because a delay ended since the last one (it deletes whoever's delay has passed,
/// vanished people included), and when the next delay ends.
pub fn deprovision_delay(
    state: &SyncState,
    delay: SignedDuration,
    now: Timestamp,
) -> (bool, Option<Timestamp>) {
    let ends = state
        .disabled_since
        .values()
        .filter_map(|since| crate::plan::timing::delay_end(*since, delay));
    let mut full_due = false;
    let mut next: Option<Timestamp> = None;
    for end in ends {
        if end <= now {
            // Ended: due unless a full cycle has run since (a failed delete waits for the next).
            full_due |= state.last_full_sync.is_none_or(|last| last < end);
        } else {
            next = Some(next.map_or(end, |n| n.min(end)));
        }
    }
    (full_due, next)
}

/// When the next cycle should run: the poll interval, or the full cycle if that comes first.
pub fn next_run(
    state: &SyncState,
    poll: Duration,
    full_interval: Duration,
    now: Timestamp,
) -> Timestamp {
    let poll_at = now + poll;
    match state.last_full_sync {
        Some(last) => {
            let full_at = last + full_interval;
            if full_at < poll_at {
                full_at.max(now)
            } else {
                poll_at
            }
        }
        None => poll_at,
    }
}

/// The checkpoint after a cycle that read people updated up to `newest` (it never goes back).
pub(super) fn next_checkpoint(
    old: Option<Timestamp>,
    newest: Option<Timestamp>,
) -> Option<Timestamp> {
    match (old, newest) {
        (Some(old), Some(new)) => Some(old.max(new)),
        (old, new) => old.or(new),
    }
}

/// People whose planning or applying failed (retried by id in the next cycle).
pub(super) fn failed(plan: &Plan, applied: &Applied) -> BTreeSet<String> {
    plan.failures
        .iter()
        .chain(applied.failures.iter())
        .map(|f| f.anchor.clone())
        .collect()
}
