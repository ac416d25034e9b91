//! One sync cycle: read the source and the directory, plan, apply, and compute the state the next
//! cycle starts from. The same cycle runs in the controller, in `peoplesync sync` and in the
//! benchmarks; where the state lives (status or a file) is the caller's business. Every run
//! plans against a compact index of the directory, a chunk of people at a time
//! ([`super::stream`]): a full cycle streams the source too, an incremental one applies what it
//! read, a targeted run (webhooks, `explain --apply`) the people it was given. Cycles read the
//! directory afresh and hand back the index as they left it; targeted runs plan against that
//! kept index instead of listing the directory. A dry run is the same run against a directory
//! that writes nothing ([`super::dry_run::DryRun`]), so it holds what a real one holds.
//!
//! Checkpoint rules (HollyHR Decision 7: `updated_since` may be inclusive or not, ties are not
//! ordered): an incremental cycle asks for people updated since the checkpoint minus an overlap; the
//! new checkpoint is the largest `updated_at` read, and it is kept only when every page was read
//! and every change applied or recorded as a per-person failure. Failed people are re-read by id in
//! the next cycle, so a failure never makes the checkpoint skip anyone.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use jiff::Timestamp;

use super::dry_run::DryRun;
use super::stream::{DirectoryIndex, Partial};
use crate::directory::Directory;
use crate::plan::Plan;
use crate::source::{PeopleSource, Person};

use super::cycle::next_checkpoint;
pub use super::cycle::*;

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
    run_cycle_indexed(
        source, directory, settings, state, kind, approved, now, &mut None,
    )
    .await
}

/// Runs one cycle, and keeps the directory index it leaves in `index` for targeted runs
/// ([`run_people`]). A cycle reads the directory afresh (it catches manual drift), so a kept
/// index is dropped first; a dry run keeps none.
#[allow(clippy::too_many_arguments)]
pub async fn run_cycle_indexed<S: PeopleSource, D: Directory>(
    source: &S,
    directory: &D,
    settings: &Settings,
    state: &SyncState,
    kind: CycleKind,
    approved: Option<&str>,
    now: Timestamp,
    index: &mut Option<DirectoryIndex>,
) -> Result<Report, CycleError<S::Error, D::Error>> {
    if settings.dry_run {
        *index = None;
        let dry = DryRun::new(directory);
        let mut report = cycle(
            source, &dry, settings, state, kind, approved, now, &mut None,
        )
        .await?;
        // Planned, not applied: the counts are the plan's, and the state does not move.
        report.applied = None;
        report.state = state.clone();
        return Ok(report);
    }
    cycle(
        source, directory, settings, state, kind, approved, now, index,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn cycle<S: PeopleSource, D: Directory>(
    source: &S,
    directory: &D,
    settings: &Settings,
    state: &SyncState,
    kind: CycleKind,
    approved: Option<&str>,
    now: Timestamp,
    index: &mut Option<DirectoryIndex>,
) -> Result<Report, CycleError<S::Error, D::Error>> {
    let started = std::time::Instant::now();
    if kind == CycleKind::Full {
        // Two indexes at once would double the memory of a cycle.
        *index = None;
        let (report, left) = super::stream::full(
            source,
            directory,
            settings,
            state,
            approved,
            now,
            settings.chunk,
        )
        .await?;
        *index = left;
        return Ok(report);
    }
    let since = state
        .checkpoint
        .map(|checkpoint| checkpoint - settings.overlap);
    let progress = settings.progress.clone();
    let mut people: Vec<Person> = source
        .people(since)
        .inspect_ok(|_| {
            if let Some(progress) = &progress {
                progress.read(1);
            }
        })
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
    let people_read = people.len();
    let max_updated = people.iter().map(|p| p.updated_at).max();
    let checkpoint = next_checkpoint(state.checkpoint, max_updated);
    // People inside the overlap window: re-read by the next cycle, skipped when unchanged.
    let edge: BTreeMap<String, Timestamp> = match checkpoint {
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
    // The overlap re-reads what the last cycle applied: the same version needs nothing.
    people.retain(|p| state.retry.contains(&p.id) || state.edge.get(&p.id) != Some(&p.updated_at));
    if people.is_empty() {
        // Nothing changed: no directory reads, no writes, the kept index stays.
        let mut next = state.clone();
        next.retry.clear();
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
            upcoming: Default::default(),
        });
    }
    // A cycle reads the directory afresh (manual drift, new unowned entries).
    *index = None;
    let read = Partial {
        people_read,
        checkpoint,
        edge,
        source_time: started.elapsed(),
        started,
        advance: true,
    };
    let (report, left) = super::stream::partial(
        directory, settings, state, people, approved, now, read, None,
    )
    .await?;
    *index = left;
    Ok(report)
}

/// These people now (webhook events, `explain --apply`): read each by id, plan and apply just
/// them. The checkpoint does not move: other people changed since it were not read.
///
/// `index` carries the directory between runs: a run plans against the index it holds (read
/// once when it holds none), and after a run where every step applied it holds the directory as
/// that run left it; otherwise it is emptied and the next run reads anew. Only PeopleSync's own
/// writes move it, so cycles, which read afresh, replace it ([`run_cycle_indexed`]).
pub async fn run_people<S: PeopleSource, D: Directory>(
    source: &S,
    directory: &D,
    settings: &Settings,
    state: &SyncState,
    ids: &[String],
    index: &mut Option<DirectoryIndex>,
    now: Timestamp,
) -> Result<Report, CycleError<S::Error, D::Error>> {
    let started = std::time::Instant::now();
    // Gone from the source: a full cycle decides (with the guard); nothing to do here.
    let mut people: Vec<Person> = Vec::with_capacity(ids.len());
    // Eight reads in flight at most.
    for chunk in ids.chunks(8) {
        let read = futures::future::try_join_all(chunk.iter().map(|id| source.person(id)))
            .await
            .map_err(CycleError::Source)?;
        people.extend(read.into_iter().flatten());
    }
    let read = Partial {
        people_read: people.len(),
        checkpoint: state.checkpoint,
        edge: state.edge.clone(),
        source_time: started.elapsed(),
        started,
        advance: false,
    };
    if people.is_empty() {
        return Ok(Report {
            kind: CycleKind::Incremental,
            plan: Plan::default(),
            applied: None,
            state: state.clone(),
            people_read: 0,
            duration: started.elapsed(),
            timings: Timings {
                source: started.elapsed(),
                ..Timings::default()
            },
            upcoming: Default::default(),
        });
    }
    let kept = index.take();
    if settings.dry_run {
        let dry = DryRun::new(directory);
        let (mut report, _) =
            super::stream::partial(&dry, settings, state, people, None, now, read, None).await?;
        report.applied = None;
        report.state = state.clone();
        *index = kept;
        return Ok(report);
    }
    let (report, left) =
        super::stream::partial(directory, settings, state, people, None, now, read, kept).await?;
    *index = left;
    Ok(report)
}
