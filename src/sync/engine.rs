//! One sync cycle: read the source and the directory, plan, apply, and compute the state the next
//! cycle starts from. The same cycle runs in the controller, in `peoplesync sync` and in the
//! benchmarks; where the state lives (status or a file) is the caller's business. Cycles that
//! write plan against a compact index of the directory, a chunk of people at a time
//! ([`super::stream`]): a full cycle streams the source too, an incremental one applies what it
//! read. Dry runs, and targeted runs (webhooks, `explain --apply`, which keep a directory snapshot
//! between bursts), plan what they read in one piece.
//!
//! Checkpoint rules (HollyHR Decision 7: `updated_since` may be inclusive or not, ties are not
//! ordered): an incremental cycle asks for people updated since the checkpoint minus an overlap; the
//! new checkpoint is the largest `updated_at` read, and it is kept only when every page was read
//! and every change applied or recorded as a per-person failure. Failed people are re-read by id in
//! the next cycle, so a failure never makes the checkpoint skip anyone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Aborted, Applied, DirectorySnapshot, apply};
use crate::directory::{Directory, DirectoryError};
use crate::plan::{self, Coverage, Failure, GuardDecision, Inputs, Mapping, Plan, Policy};
use crate::source::{PeopleSource, Person, SourceError};

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

/// Runs one cycle. `approved` is the plan hash a person approved (the annotation), if any.
pub async fn run_cycle<S: PeopleSource, D: Directory>(
    source: &S,
    directory: &D,
    settings: &Settings,
    state: &SyncState,
    kind: CycleKind,
    approved: Option<&str>,
    now: Timestamp,
) -> Result<Report, CycleError<S::Error, D::Error>> {
    let started = std::time::Instant::now();
    let policy = Policy {
        directory: directory.traits(),
        ..settings.policy.clone()
    };
    if kind == CycleKind::Full && !settings.dry_run {
        return super::stream::full(
            source,
            directory,
            settings,
            state,
            approved,
            now,
            settings.chunk,
        )
        .await;
    }
    let (people, org_units, coverage, snapshot) = match kind {
        CycleKind::Full => {
            // A full cycle needs both listings whatever they hold: read them side by side.
            let read_source = async {
                let people: Vec<Person> = source.people(None).try_collect().await?;
                let org_units = if policy.directory.groups {
                    Some(source.org_units().await?)
                } else {
                    None
                };
                let read = started.elapsed();
                Ok((people, org_units, read))
            };
            let read_directory = async {
                let stage = std::time::Instant::now();
                directory.check().await?;
                let snapshot =
                    DirectorySnapshot::read(directory, &settings.mapping, policy.directory.groups)
                        .await?;
                Ok((snapshot, stage.elapsed()))
            };
            let ((people, org_units, source_time), (snapshot, directory_time)) =
                futures::future::try_join(
                    futures::TryFutureExt::map_err(read_source, CycleError::Source),
                    futures::TryFutureExt::map_err(read_directory, CycleError::Directory),
                )
                .await?;
            let prefetched = Prefetched {
                snapshot,
                source_time,
                directory_time,
            };
            (people, org_units, Coverage::Full, Some(prefetched))
        }
        CycleKind::Incremental => {
            let since = state
                .checkpoint
                .map(|checkpoint| checkpoint - settings.overlap);
            let mut people: Vec<Person> = source
                .people(since)
                .try_collect()
                .await
                .map_err(CycleError::Source)?;
            let read: BTreeSet<String> = people.iter().map(|p| p.id.clone()).collect();
            for id in state.retry.iter().filter(|id| !read.contains(*id)) {
                // A person who is gone now is a full cycle's business (vanished).
                if let Some(person) = source.person(id).await.map_err(CycleError::Source)? {
                    people.push(person);
                }
            }
            (people, None, Coverage::Partial, None)
        }
    };
    finish(
        directory,
        settings,
        &policy,
        state,
        Read {
            kind,
            people,
            org_units,
            coverage,
            advance: true,
            snapshot,
        },
        approved,
        None,
        now,
        started,
    )
    .await
}

/// These people now (webhook events, `explain --apply`): read each by id, plan and apply just
/// them. The checkpoint does not move: other people changed since it were not read.
///
/// `snapshot` carries the directory between runs: when it holds one, it is planned against
/// instead of reading the whole directory, and after a run where every step applied it holds the
/// directory as that run left it (otherwise it is emptied and the next run reads anew). Only
/// PeopleSync's own writes move it, so a caller keeps it briefly (webhook bursts) and drops it
/// when a cycle runs: the cycles' fresh reads catch manual drift.
pub async fn run_people<S: PeopleSource, D: Directory>(
    source: &S,
    directory: &D,
    settings: &Settings,
    state: &SyncState,
    ids: &[String],
    snapshot: &mut Option<DirectorySnapshot>,
    now: Timestamp,
) -> Result<Report, CycleError<S::Error, D::Error>> {
    let started = std::time::Instant::now();
    let policy = Policy {
        directory: directory.traits(),
        ..settings.policy.clone()
    };
    // Gone from the source: a full cycle decides (with the guard); nothing to do here.
    let mut people: Vec<Person> = Vec::with_capacity(ids.len());
    // Eight reads in flight at most.
    for chunk in ids.chunks(8) {
        let read = futures::future::try_join_all(chunk.iter().map(|id| source.person(id)))
            .await
            .map_err(CycleError::Source)?;
        people.extend(read.into_iter().flatten());
    }
    finish(
        directory,
        settings,
        &policy,
        state,
        Read {
            kind: CycleKind::Incremental,
            people,
            org_units: None,
            coverage: Coverage::Partial,
            advance: false,
            snapshot: None,
        },
        None,
        Some(snapshot),
        now,
        started,
    )
    .await
}

/// What a cycle read from the source.
struct Read {
    kind: CycleKind,
    people: Vec<Person>,
    org_units: Option<Vec<crate::source::OrgUnit>>,
    coverage: Coverage,
    /// Whether the checkpoint may move (only when everyone changed since it was read).
    advance: bool,
    /// The directory, when it was read alongside the source (full cycles).
    snapshot: Option<Prefetched>,
}

/// A directory read made alongside the source, and how long each read took.
struct Prefetched {
    snapshot: DirectorySnapshot,
    source_time: Duration,
    directory_time: Duration,
}

/// Plans and applies what was read, and computes the next state.
#[allow(clippy::too_many_arguments)]
async fn finish<SE: SourceError, D: Directory>(
    directory: &D,
    settings: &Settings,
    policy: &Policy,
    state: &SyncState,
    read: Read,
    approved: Option<&str>,
    mut cache: Option<&mut Option<DirectorySnapshot>>,
    now: Timestamp,
    started: std::time::Instant,
) -> Result<Report, CycleError<SE, D::Error>> {
    let Read {
        kind,
        people,
        org_units,
        coverage,
        advance,
        snapshot: prefetched,
    } = read;
    let max_updated = people
        .iter()
        .map(|p| p.updated_at)
        .max()
        .filter(|_| advance);
    let checkpoint = next_checkpoint(state.checkpoint, max_updated);
    // People inside the overlap window: re-read by the next cycle, skipped when unchanged.
    let mut edge: BTreeMap<String, Timestamp> = match checkpoint {
        Some(_) if !advance => state.edge.clone(),
        Some(checkpoint) => {
            let window = checkpoint - settings.overlap;
            state
                .edge
                .iter()
                .filter(|(_, at)| **at >= window)
                .map(|(id, at)| (id.clone(), *at))
                .chain(
                    people
                        .iter()
                        .filter(|p| p.updated_at >= window)
                        .map(|p| (p.id.clone(), p.updated_at)),
                )
                .collect()
        }
        None => BTreeMap::new(),
    };
    let people_read = people.len();
    let mut people = people;
    if kind == CycleKind::Incremental {
        // The overlap re-reads what the last cycle applied: the same version needs nothing.
        people.retain(|p| {
            state.retry.contains(&p.id) || state.edge.get(&p.id) != Some(&p.updated_at)
        });
    }
    let mut next = state.clone();
    if kind == CycleKind::Incremental && people.is_empty() {
        // Nothing changed: no directory reads, no writes.
        if advance {
            next.retry.clear();
        }
        next.checkpoint = checkpoint;
        next.edge = edge;
        return Ok(Report {
            kind,
            plan: Plan::default(),
            applied: None,
            state: next,
            people_read,
            duration: started.elapsed(),
            timings: Timings {
                source: started.elapsed(),
                ..Timings::default()
            },
        });
    }

    if kind == CycleKind::Incremental && advance && cache.is_none() && !settings.dry_run {
        // Against the compact index, not the whole listing: memory does not grow with the
        // directory.
        let read = super::stream::Partial {
            people_read,
            checkpoint,
            edge,
            source_time: started.elapsed(),
            started,
        };
        return super::stream::partial(directory, settings, state, people, approved, now, read)
            .await;
    }
    let mut timings = Timings {
        source: started.elapsed(),
        ..Timings::default()
    };
    let stage = std::time::Instant::now();
    let cached = cache.as_deref_mut().and_then(Option::take);
    let snapshot = match (prefetched, cached) {
        (Some(prefetched), _) => {
            timings.source = prefetched.source_time;
            timings.directory = prefetched.directory_time;
            prefetched.snapshot
        }
        (None, Some(snapshot)) => snapshot,
        (None, None) => {
            directory.check().await.map_err(CycleError::Directory)?;
            let snapshot =
                DirectorySnapshot::read(directory, &settings.mapping, policy.directory.groups)
                    .await
                    .map_err(CycleError::Directory)?;
            timings.directory = stage.elapsed();
            snapshot
        }
    };
    // An entry found disabled without a record starts its delay now.
    let mut disabled_since: BTreeMap<String, Timestamp> = snapshot
        .entries
        .iter()
        .filter(|e| !e.enabled)
        .map(|e| {
            let since = state.disabled_since.get(&e.anchor).copied().unwrap_or(now);
            (e.anchor.clone(), since)
        })
        .collect();
    let approved = approved.filter(|hash| state.approval_used.as_deref() != Some(*hash));
    let stage = std::time::Instant::now();
    let plan = plan::plan(&Inputs {
        people: &people,
        org_units: org_units.as_deref(),
        entries: &snapshot.entries,
        groups: &snapshot.groups,
        unowned: &snapshot.unowned,
        reserved: &snapshot.reserved,
        mapping: &settings.mapping,
        policy,
        coverage,
        now,
        disabled_since: &disabled_since,
        approved,
    });
    timings.plan = stage.elapsed();
    drop(people);
    if settings.dry_run {
        return Ok(Report {
            kind,
            plan,
            applied: None,
            state: state.clone(),
            people_read,
            duration: started.elapsed(),
            timings,
        });
    }

    let mut ids = snapshot.ids();
    // A cycle frees the listing before applying (memory); a kept snapshot goes on.
    let kept = cache.is_some().then_some(snapshot);
    let stage = std::time::Instant::now();
    let applied = apply(directory, &plan, &mut ids, settings.concurrency)
        .await
        .map_err(|aborted| CycleError::Apply(Box::new(aborted)))?;
    timings.apply = stage.elapsed();
    if let (Some(cache), Some(mut snapshot)) = (cache, kept)
        && applied.failures.is_empty()
        && snapshot.absorb(&plan, &ids, &policy.directory)
    {
        *cache = Some(snapshot);
    }

    for step in &plan.steps {
        match step.action {
            plan::Action::Disable => {
                disabled_since.entry(step.anchor.clone()).or_insert(now);
            }
            plan::Action::Enable | plan::Action::Delete => {
                disabled_since.remove(&step.anchor);
            }
            _ => {}
        }
    }
    let failed = failed(&plan, &applied);
    // A failed step leaves its entry as it was: keep the old record for it.
    for anchor in &failed {
        match state.disabled_since.get(anchor) {
            Some(since) => disabled_since.insert(anchor.clone(), *since),
            None => disabled_since.remove(anchor),
        };
    }
    next.disabled_since = disabled_since;
    // A failed person's version was not applied: it must not be skipped next time.
    edge.retain(|id, _| !failed.contains(id));
    next.retry = if advance {
        failed
    } else {
        // A targeted run settles only its own people; the others still wait for their retry.
        let read: BTreeSet<&String> = plan.steps.iter().map(|s| &s.anchor).collect();
        state
            .retry
            .iter()
            .filter(|id| !read.contains(id))
            .cloned()
            .chain(failed)
            .collect()
    };
    next.checkpoint = checkpoint;
    next.edge = edge;
    if kind == CycleKind::Full {
        next.last_full_sync = Some(now);
    }
    if let GuardDecision::Approved(trip) = &plan.guard {
        next.approval_used = Some(trip.hash.clone());
    }
    Ok(Report {
        kind,
        plan,
        applied: Some(applied),
        state: next,
        people_read,
        duration: started.elapsed(),
        timings,
    })
}
