//! A full cycle in bounded memory. The directory is read into a compact index
//! ([`crate::plan::known::Known`]); the source is read page by page, and each person is either
//! quiet (their entry is what they map to: only their links are noted) or planned and applied
//! with the others of their chunk by the ordinary planner. Deprovisions wait for the end, where
//! the guard sees them all; then managers and groups are linked over the whole directory.
//!
//! What a full cycle holds at once: the index (a few hundred bytes per managed entry), one chunk
//! of people with their planned steps, and the deprovisions. The plan's steps are not all kept:
//! the report counts them, keeps every deprovision (the guard's hash is made of them) and the
//! first [`SAMPLE`] other steps (for logs and Events).
//!
//! Differences from planning everyone at once, all converging to the same directory: a unique
//! value two new people want goes to whoever the source lists first; a new person's manager
//! created in a later chunk gets the reference in the link step instead of with the create; a
//! source error half-way leaves the chunks before it applied (no deprovision ever is: those wait
//! for a complete read).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use futures::TryStreamExt;
use jiff::Timestamp;

use super::cycle::{CycleError, CycleKind, Report, Settings, SyncState, Timings};
use super::{Aborted, Applied, Ids, apply, set_attribute};
use crate::directory::{Attributes, Directory, Entry};
use crate::plan::known::Known;
use crate::plan::people::{self, Desired};
use crate::plan::{
    self, Action, Coverage, Failure, GuardDecision, Index, Inputs, Plan, Policy, Reason, Step,
};
use crate::source::{OrgUnit, PeopleSource, Person, SourceError};

/// People waiting for their chunk, with the attributes they map to when already known.
type Pending = Vec<(Person, Option<Attributes>)>;

/// People planned and applied together.
pub const CHUNK: usize = 1_000;

/// Link steps (manager references) applied together.
const LINK_BATCH: usize = 500;

/// People read ahead of the planner (three pages of HollyHR's largest).
const READ_AHEAD: usize = 300;

/// Steps besides deprovisions a streamed plan keeps as examples (it counts them all).
pub const SAMPLE: usize = 100;

/// The directory as a run plans against it: the compact index of managed entries and groups,
/// and the entries PeopleSync does not own. A cycle reads it afresh; after a run where every
/// step applied it describes the directory as the run left it ([`Known::settle`]), so the
/// controller keeps it between runs and targeted runs (webhooks) plan against it without
/// listing the directory. It is dropped on any failure; the next run reads it anew.
#[derive(Debug)]
pub struct DirectoryIndex {
    known: Known,
    unowned: Vec<Entry>,
    reserved: plan::Reserved,
    /// Unique values held by entries elsewhere in the directory (AD: the rest of the domain).
    elsewhere: plan::Reserved,
    /// Lower-cased values of unowned entries, per adoption attribute.
    adoptable: Vec<(String, HashSet<String>)>,
    /// Anchor values of unmarked entries (claimed on an upgrade by the person with that id).
    claimable: HashSet<String>,
    /// What the index was built for (mapped attributes, directory traits, adoption): an index
    /// built under other settings is read anew.
    fingerprint: u64,
}

impl DirectoryIndex {
    /// Lists the directory into a new index (managed entries, unowned ones, groups).
    pub async fn read<D: Directory>(
        directory: &D,
        settings: &Settings,
        policy: &Policy,
    ) -> Result<Self, D::Error> {
        Ok(Self::read_keeping(directory, settings, policy, "").await?.0)
    }

    /// The same, and the entry of `anchor` as the directory holds it (`explain` shows its
    /// values).
    pub async fn read_keeping<D: Directory>(
        directory: &D,
        settings: &Settings,
        policy: &Policy,
        anchor: &str,
    ) -> Result<(Self, Option<Entry>), D::Error> {
        directory.check().await?;
        let mut kept = None;
        let mut known = Known::new(
            &settings.mapping,
            policy.directory.rdn_attribute.as_deref(),
            policy.directory.manager_attribute.as_deref(),
        );
        let mut unowned = Vec::new();
        {
            let mut listing = directory.everyone();
            while let Some(entry) = listing.try_next().await? {
                if entry.anchor.is_empty() {
                    unowned.push(entry);
                } else {
                    known.push(&entry);
                    if !anchor.is_empty() && entry.anchor == anchor && kept.is_none() {
                        kept = Some(entry);
                    }
                }
            }
        }
        let mut elsewhere = plan::Reserved::new();
        {
            let mut listing = directory.elsewhere();
            while let Some(entry) = listing.try_next().await? {
                super::reserve(&mut elsewhere, &settings.mapping, &entry);
            }
        }
        if policy.directory.groups {
            let mut groups = directory.groups();
            while let Some(group) = groups.try_next().await? {
                known.push_group(&group);
            }
        }
        let mut index = Self {
            known,
            unowned,
            reserved: plan::Reserved::new(),
            elsewhere,
            adoptable: Vec::new(),
            claimable: HashSet::new(),
            fingerprint: fingerprint(settings, policy),
        };
        index.derive(settings, policy);
        Ok((index, kept))
    }

    /// The reserved and adoptable values, from the unowned entries.
    fn derive(&mut self, settings: &Settings, policy: &Policy) {
        self.claimable = match &policy.directory.marking {
            Some(marking) => self
                .unowned
                .iter()
                .filter_map(|e| match marking.classify(&e.attributes) {
                    crate::directory::Unowned::Unmarked(value) => Some(value),
                    _ => None,
                })
                .collect(),
            None => HashSet::new(),
        };
        self.reserved = super::reserved(&settings.mapping, &self.unowned);
        super::merge_reserved(&mut self.reserved, &self.elsewhere);
        self.adoptable = if self.unowned.is_empty() {
            Vec::new()
        } else {
            policy
                .adoption
                .iter()
                .map(|name| {
                    let values = self
                        .unowned
                        .iter()
                        .flat_map(|e| {
                            plan::attribute_values(&e.attributes, name)
                                .into_iter()
                                .flatten()
                        })
                        .map(|v| v.to_lowercase())
                        .collect();
                    (name.clone(), values)
                })
                .collect()
        };
    }

    /// The index in a comparable form (tests: a kept index against one read afresh).
    #[doc(hidden)]
    pub fn view(&self) -> String {
        let mut unowned: Vec<&str> = self.unowned.iter().map(|e| e.id.as_str()).collect();
        unowned.sort();
        format!(
            "{}\nunowned {unowned:?}\nreserved {:?}\nadoptable {:?}",
            self.known.view(),
            self.reserved,
            self.adoptable
                .iter()
                .map(|(name, values)| (
                    name,
                    values.iter().collect::<std::collections::BTreeSet<_>>()
                ))
                .collect::<Vec<_>>()
        )
    }
}

/// What an index depends on besides the directory: the mapped attributes and which are
/// unique, the directory's traits and the adoption attributes.
fn fingerprint(settings: &Settings, policy: &Policy) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    for (name, rule) in settings.mapping.rules() {
        (name, rule.unique).hash(&mut h);
    }
    format!("{:?}", policy.directory).hash(&mut h);
    policy.adoption.hash(&mut h);
    h.finish()
}

struct Cycle<'a, D: Directory> {
    directory: &'a D,
    settings: &'a Settings,
    policy: &'a Policy,
    state: &'a SyncState,
    now: Timestamp,
    known: Known,
    unowned: Vec<Entry>,
    reserved: plan::Reserved,
    elsewhere: plan::Reserved,
    /// Lower-cased values of unowned entries, per adoption attribute.
    adoptable: Vec<(String, HashSet<String>)>,
    claimable: HashSet<String>,
    fingerprint: u64,
    /// Ids of unowned entries this run adopted (they leave `unowned` when the index settles).
    adopted: Vec<String>,
    /// People without an entry who may adopt one: planned together at the end, where an entry
    /// two people match is seen as such.
    adopting: Vec<Person>,
    /// A full cycle (reads everyone): only people with a transition ahead go in `upcoming`.
    full: bool,
    upcoming: Vec<(String, Option<(Timestamp, plan::timing::Transition)>)>,
    /// Deprovisions, held until the guard has seen them all.
    deprovisions: Vec<Step>,
    failures: Vec<Failure>,
    planned: BTreeMap<&'static str, usize>,
    /// The first [`SAMPLE`] steps that are not deprovisions.
    sample: Vec<Step>,
    applied: Applied,
    in_scope: usize,
    timings: Timings,
}

/// Runs a full cycle streamed (see the module docs). Not for dry runs: those plan only, in one
/// piece, so their plan lists every change.
pub(super) async fn full<S: PeopleSource, D: Directory>(
    source: &S,
    directory: &D,
    settings: &Settings,
    state: &SyncState,
    approved: Option<&str>,
    now: Timestamp,
    chunk_size: usize,
) -> Result<(Report, Option<DirectoryIndex>), CycleError<S::Error, D::Error>> {
    let started = Instant::now();
    let policy = &Policy {
        directory: directory.traits(),
        claim_unmarked: state.claims_unmarked(),
        ..settings.policy.clone()
    };
    let chunk_size = chunk_size.max(1);
    // The source is read ahead while the directory is listed and chunks are applied.
    let mut listing = ReadAhead::start(source.people(None), READ_AHEAD);
    let mut cycle = Cycle::open(directory, settings, policy, state, now, None)
        .await
        .map_err(CycleError::Directory)?;
    cycle.full = true;

    // The people, a page at a time.
    let mut people_read = 0usize;
    let mut max_updated: Option<Timestamp> = None;
    // People updated within the overlap before the newest `updated_at` so far.
    let mut edge: Vec<(String, Timestamp)> = Vec::new();
    let mut chunk: Pending = Vec::with_capacity(chunk_size);
    loop {
        let stage = Instant::now();
        let next = listing
            .next()
            .await
            .transpose()
            .map_err(CycleError::Source)?;
        cycle.timings.source += stage.elapsed();
        let Some(person) = next else { break };
        people_read += 1;
        if let Some(progress) = &settings.progress {
            progress.read(1);
        }
        let newest = max_updated.map_or(person.updated_at, |m| m.max(person.updated_at));
        max_updated = Some(newest);
        let window = state.checkpoint.map_or(newest, |c| c.max(newest)) - settings.overlap;
        if person.updated_at >= window {
            edge.push((person.id.clone(), person.updated_at));
            if edge.len() > 4 * chunk_size {
                edge.retain(|(_, at)| *at >= window);
            }
        }
        cycle
            .take(person, &mut chunk, chunk_size)
            .await
            .map_err(CycleError::Apply)?;
    }
    drop(listing);
    // After the people: a source may learn its org units from them (Personio).
    let stage = Instant::now();
    let org_units: Option<Vec<OrgUnit>> = if policy.directory.groups {
        Some(source.org_units().await.map_err(CycleError::Source)?)
    } else {
        None
    };
    cycle.timings.source += stage.elapsed();
    let checkpoint = super::cycle::next_checkpoint(state.checkpoint, max_updated);
    let edge: BTreeMap<String, Timestamp> = match checkpoint {
        Some(checkpoint) => {
            let window = checkpoint - settings.overlap;
            state
                .edge
                .iter()
                .map(|(id, at)| (id.clone(), *at))
                .chain(edge)
                .filter(|(_, at)| *at >= window)
                .collect()
        }
        None => BTreeMap::new(),
    };
    let read = Read {
        kind: CycleKind::Full,
        people_read,
        checkpoint,
        edge,
        started,
        advance: true,
        settled: BTreeSet::new(),
    };
    cycle
        .conclude(chunk, read, org_units.as_deref(), approved)
        .await
}

/// What an incremental cycle or a targeted run read before it came here (the engine filtered
/// the people).
pub(super) struct Partial {
    pub people_read: usize,
    pub checkpoint: Option<Timestamp>,
    pub edge: BTreeMap<String, Timestamp>,
    pub source_time: std::time::Duration,
    pub started: Instant,
    /// An incremental cycle read everyone changed since the checkpoint; a targeted run only
    /// its people (the checkpoint, the overlap and others' retries stay as they were).
    pub advance: bool,
}

/// Applies the people an incremental cycle or a targeted run read, against the compact index
/// instead of the whole listing: `kept`, when the caller kept one from an earlier run, else one
/// read now. Returns the index as the run left it when every step applied.
#[allow(clippy::too_many_arguments)]
pub(super) async fn partial<SE: SourceError, D: Directory>(
    directory: &D,
    settings: &Settings,
    state: &SyncState,
    people: Vec<Person>,
    approved: Option<&str>,
    now: Timestamp,
    read: Partial,
    kept: Option<DirectoryIndex>,
) -> Result<(Report, Option<DirectoryIndex>), CycleError<SE, D::Error>> {
    let policy = &Policy {
        directory: directory.traits(),
        claim_unmarked: state.claims_unmarked(),
        ..settings.policy.clone()
    };
    let chunk_size = settings.chunk.max(1);
    let mut cycle = Cycle::open(directory, settings, policy, state, now, kept)
        .await
        .map_err(CycleError::Directory)?;
    cycle.timings.source = read.source_time;
    let settled: BTreeSet<String> = if read.advance {
        BTreeSet::new()
    } else {
        people.iter().map(|p| p.id.clone()).collect()
    };
    let mut chunk: Pending = Vec::with_capacity(chunk_size.min(people.len()));
    for person in people {
        cycle
            .take(person, &mut chunk, chunk_size)
            .await
            .map_err(CycleError::Apply)?;
    }
    let read = Read {
        kind: CycleKind::Incremental,
        people_read: read.people_read,
        checkpoint: read.checkpoint,
        edge: read.edge,
        started: read.started,
        advance: read.advance,
        settled,
    };
    cycle.conclude(chunk, read, None, approved).await
}

/// What the cycle read, for its report and the next state.
struct Read {
    kind: CycleKind,
    people_read: usize,
    checkpoint: Option<Timestamp>,
    /// People inside the overlap window (re-read next time, skipped when unchanged).
    edge: BTreeMap<String, Timestamp>,
    started: Instant,
    /// See [`Partial::advance`].
    advance: bool,
    /// The people a targeted run read: their retries are settled by it.
    settled: BTreeSet<String>,
}

type Apply<E> = Result<(), Box<Aborted<E>>>;

/// The planner's inputs for a chunk (field by field, so the index stays writable meanwhile).
macro_rules! inputs {
    ($cycle:expr, $people:expr, $entries:expr, $unowned:expr) => {
        Inputs {
            people: $people,
            org_units: None,
            entries: $entries,
            groups: &[],
            unowned: if $unowned { &$cycle.unowned } else { &[] },
            reserved: &$cycle.reserved,
            mapping: &$cycle.settings.mapping,
            policy: $cycle.policy,
            coverage: Coverage::Partial,
            now: $cycle.now,
            disabled_since: &$cycle.state.disabled_since,
            approved: None,
        }
    };
}

impl<'a, D: Directory> Cycle<'a, D> {
    /// Starts a run from a kept index, or reads the directory into a new one.
    async fn open(
        directory: &'a D,
        settings: &'a Settings,
        policy: &'a Policy,
        state: &'a SyncState,
        now: Timestamp,
        kept: Option<DirectoryIndex>,
    ) -> Result<Self, D::Error> {
        let stage = Instant::now();
        let kept = kept.filter(|index| index.fingerprint == fingerprint(settings, policy));
        let index = match kept {
            Some(index) => index,
            None => DirectoryIndex::read(directory, settings, policy).await?,
        };
        let timings = Timings {
            directory: stage.elapsed(),
            ..Timings::default()
        };
        if let Some(progress) = &settings.progress {
            progress.expect(index.known.len());
        }
        let DirectoryIndex {
            known,
            unowned,
            reserved,
            elsewhere,
            adoptable,
            claimable,
            fingerprint,
        } = index;
        Ok(Self {
            directory,
            settings,
            policy,
            state,
            now,
            known,
            unowned,
            reserved,
            elsewhere,
            adoptable,
            claimable,
            fingerprint,
            adopted: Vec::new(),
            adopting: Vec::new(),
            full: false,
            upcoming: Vec::new(),
            deprovisions: Vec::new(),
            failures: Vec::new(),
            planned: BTreeMap::new(),
            sample: Vec::new(),
            applied: Applied::default(),
            in_scope: 0,
            timings,
        })
    }

    /// Notes a quiet person, or adds them to `chunk` (or to the adoption chunk); a chunk of
    /// `size` is planned and applied.
    async fn take(&mut self, person: Person, chunk: &mut Pending, size: usize) -> Apply<D::Error> {
        let stage = Instant::now();
        if let Some(pending) = self.sort(person) {
            chunk.push(pending);
        }
        self.timings.plan += stage.elapsed();
        if chunk.len() >= size {
            self.chunk(std::mem::take(chunk), false).await?;
        }
        Ok(())
    }

    /// The last chunk, the adoptions, the end of the cycle, and the next state.
    async fn conclude<SE: SourceError>(
        mut self,
        chunk: Pending,
        read: Read,
        org_units: Option<&[OrgUnit]>,
        approved: Option<&str>,
    ) -> Result<(Report, Option<DirectoryIndex>), CycleError<SE, D::Error>> {
        let (state, now) = (self.state, self.now);
        self.chunk(chunk, false).await.map_err(CycleError::Apply)?;
        let adopting = std::mem::take(&mut self.adopting)
            .into_iter()
            .map(|person| (person, None))
            .collect();
        self.chunk(adopting, true)
            .await
            .map_err(CycleError::Apply)?;
        // An approval releases exactly one plan, once.
        let approved = approved.filter(|hash| state.approval_used.as_deref() != Some(*hash));
        let coverage = match read.kind {
            CycleKind::Full => Coverage::Full,
            CycleKind::Incremental => Coverage::Partial,
        };
        let (plan, guard) = self
            .finish(coverage, read.people_read, org_units, approved)
            .await
            .map_err(CycleError::Apply)?;
        let Cycle {
            mut known,
            applied,
            timings,
            unowned,
            reserved,
            elsewhere,
            adoptable,
            claimable,
            adopted,
            fingerprint,
            settings,
            policy,
            full,
            upcoming,
            ..
        } = self;
        tracing::debug!(
            cycle = read.kind.as_str(),
            entries = known.len(),
            index_bytes = known.footprint(),
            "streamed cycle"
        );

        // The next state, as `engine::finish` computes it.
        let failed = super::cycle::failed(&plan, &applied);
        let all_applied = failed.is_empty();
        let mut next = state.clone();
        next.disabled_since = known
            .after()
            .filter(|(_, enabled, _)| !enabled)
            .filter_map(|(anchor, _, was)| {
                let since = match was? {
                    false => state.disabled_since.get(anchor).copied().unwrap_or(now),
                    true => now,
                };
                Some((anchor.to_owned(), since))
            })
            .collect();
        let mut edge = read.edge;
        // A failed person's version was not applied: it must not be skipped next time.
        edge.retain(|id, _| !failed.contains(id));
        next.edge = edge;
        next.retry = if read.advance {
            failed
        } else {
            // A targeted run settles only its own people; the others still wait for theirs.
            state
                .retry
                .iter()
                .filter(|id| !read.settled.contains(*id))
                .cloned()
                .chain(failed)
                .collect()
        };
        next.checkpoint = read.checkpoint;
        if read.kind == CycleKind::Full {
            next.last_full_sync = Some(now);
            // Every entry this object owns carries its mark now (claims included).
            next.marked = next.marked || all_applied;
        }
        if let GuardDecision::Approved(trip) = &guard {
            next.approval_used = Some(trip.hash.clone());
        }
        // Every step applied: the index, settled, is what a fresh read would give.
        let index = applied.failures.is_empty().then(|| {
            known.settle();
            let mut index = DirectoryIndex {
                known,
                unowned,
                reserved,
                elsewhere,
                adoptable,
                claimable,
                fingerprint,
            };
            if !adopted.is_empty() {
                // Adopted entries are managed now: their values are no longer reserved.
                index.unowned.retain(|e| !adopted.contains(&e.id));
                index.derive(settings, policy);
            }
            index
        });
        let report = Report {
            kind: read.kind,
            plan,
            applied: Some(applied),
            state: next,
            people_read: read.people_read,
            duration: read.started.elapsed(),
            timings,
            upcoming: super::cycle::Upcoming {
                complete: full,
                next: upcoming,
            },
        };
        Ok((report, index))
    }

    /// What one person needs: `None` when they are quiet (noted in the index), or the person
    /// back for their chunk, with the attributes they mapped to when that was worked out here.
    fn sort(&mut self, person: Person) -> Option<(Person, Option<Attributes>)> {
        // Only people this object provisions have transitions that matter to it.
        let next = self
            .policy
            .scope
            .admits(&person)
            .then(|| self.policy.timing.next_instant(&person, self.now))
            .flatten();
        if next.is_some() || !self.full {
            self.upcoming.push((person.id.clone(), next));
        }
        let slot = self.known.find(&person.id);
        let desired = people::desired(
            self.policy,
            &person,
            slot.map(|s| self.known.enabled(s)),
            self.now,
        );
        match (slot, desired) {
            (Some(slot), Desired::Provisioned { enabled, .. })
                if enabled == self.known.enabled(slot) =>
            {
                let current = self.known.current(slot);
                let mapped = self
                    .settings
                    .mapping
                    .map(&person, Some(&current), &|_, _| false)
                    .ok()
                    .map(|m| m.attributes);
                let quiet = mapped
                    .as_ref()
                    .is_some_and(|mapped| self.known.matches(slot, mapped));
                if !quiet {
                    return Some((person, mapped));
                }
                self.in_scope += 1;
                let manager = person.manager.as_ref().map(|m| m.id.as_str());
                let department = person.department.as_ref().map(|d| d.id.as_str());
                self.known.place(slot, true, Some((manager, department)));
                return None;
            }
            // On an upgrade, the entry an earlier version made for this person is claimed
            // (whatever the person's state: a leaver's is claimed and then deprovisioned).
            (None, _) if self.policy.claim_unmarked && self.claimable.contains(&person.id) => {
                self.adopting.push(person);
                return None;
            }
            (None, _) if !self.adoptable.is_empty() => {
                // The person's own values (before uniqueness), as the planner matches them: anyone
                // without an entry counts, so an entry two people match is adopted by nobody.
                let matches = self
                    .settings
                    .mapping
                    .map(&person, None, &|_, _| false)
                    .is_ok_and(|mapped| {
                        self.adoptable.iter().any(|(name, values)| {
                            plan::attribute_values(&mapped.attributes, name)
                                .and_then(|v| v.first())
                                .is_some_and(|v| values.contains(&v.to_lowercase()))
                        })
                    });
                if matches {
                    self.adopting.push(person);
                    return None;
                }
            }
            _ => {}
        }
        Some((person, None))
    }

    /// Plans and applies one chunk of people (deprovisions are only collected).
    async fn chunk(&mut self, pending: Pending, adopting: bool) -> Apply<D::Error> {
        if pending.is_empty() {
            return Ok(());
        }
        let stage = Instant::now();
        let (people, mapped): (Vec<Person>, Vec<Option<Attributes>>) = pending.into_iter().unzip();
        let entries: Vec<Entry> = people
            .iter()
            .zip(mapped)
            .filter_map(|(person, mapped)| {
                let slot = self.known.find(&person.id)?;
                // Mapped already when the person was sorted, unless their state changes.
                let mapped = mapped.or_else(|| {
                    let provisioned = matches!(
                        people::desired(
                            self.policy,
                            person,
                            Some(self.known.enabled(slot)),
                            self.now
                        ),
                        Desired::Provisioned { .. }
                    );
                    provisioned
                        .then(|| {
                            self.settings
                                .mapping
                                .map(person, Some(&self.known.current(slot)), &|_, _| false)
                                .ok()
                        })
                        .flatten()
                        .map(|m| m.attributes)
                });
                Some(self.known.rebuild(slot, mapped.as_ref()))
            })
            .collect();
        let inputs = inputs!(self, &people, &entries, adopting);
        let index = Index::new(&entries, &[]);
        let known = &self.known;
        let elsewhere = |anchor: &str, attribute: &str, value: &str| {
            known.taken_by_other(anchor, attribute, value)
        };
        let mut planned = people::plan_people(&inputs, &index, true, Some(&elsewhere));

        // Managers: a new entry names its manager when that one exists already or is created
        // in an earlier wave of this chunk; the link step does the rest.
        let mut ids = Ids::default();
        for entry in &entries {
            ids.people.insert(entry.anchor.clone(), entry.id.clone());
        }
        let creates: HashMap<String, usize> = planned
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.action, Action::Create { .. }))
            .map(|(i, s)| (s.anchor.clone(), i))
            .collect();
        let waves = people::waves(&creates, &planned.placed);
        let mut written: HashMap<String, String> = HashMap::new();
        if let Some(attribute) = self.policy.directory.manager_attribute.as_deref() {
            for (anchor, i) in &creates {
                let wave = waves.get(anchor).copied().unwrap_or(0);
                let manager = planned
                    .placed
                    .get(anchor.as_str())
                    .and_then(|p| p.manager)
                    .filter(|m| *m != anchor.as_str());
                // As the planner folds: not onto an entry whose id this chunk changes.
                let target = manager.filter(|m| match waves.get(*m) {
                    Some(w) => *w < wave,
                    None => {
                        !planned.changing_ids.contains(m)
                            && self.known.find(m).is_some_and(|t| self.known.exists(t))
                    }
                });
                if let Action::Create {
                    references,
                    wave: w,
                    ..
                } = &mut planned.steps[*i].action
                {
                    *w = wave;
                    if let Some(target) = target {
                        references.insert(attribute.to_owned(), Some(target.to_owned()));
                        written.insert(anchor.clone(), target.to_owned());
                        if let Some(t) = self.known.find(target) {
                            ids.people
                                .entry(target.to_owned())
                                .or_insert_with(|| self.known.id(t));
                        }
                    }
                }
            }
        }
        let mut steps = std::mem::take(&mut planned.steps);
        steps.sort_by(|a, b| (a.action.phase(), &a.anchor).cmp(&(b.action.phase(), &b.anchor)));
        count(&mut self.planned, &mut self.sample, &steps);
        if let Some(progress) = &self.settings.progress {
            progress.planned(steps.len());
        }
        self.tell(&steps, false);
        self.in_scope += planned.in_scope;
        let chunk_plan = Plan {
            steps,
            ..Plan::default()
        };
        self.timings.plan += stage.elapsed();

        let stage = Instant::now();
        let result = apply(
            self.directory,
            &chunk_plan,
            &mut ids,
            self.settings.concurrency,
        )
        .await;
        self.timings.apply += stage.elapsed();
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(aborted) => return Err(self.abort(aborted)),
        };

        // The index learns what the directory holds now.
        let failed: HashSet<&str> = planned
            .failures
            .iter()
            .chain(outcome.failures.iter())
            .map(|f| f.anchor.as_str())
            .collect();
        let mut by_anchor: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
        for step in &chunk_plan.steps {
            by_anchor
                .entry(step.anchor.as_str())
                .or_default()
                .push(step);
        }
        let rebuilt: HashMap<&str, &Entry> =
            entries.iter().map(|e| (e.anchor.as_str(), e)).collect();
        for (anchor, steps) in &by_anchor {
            if failed.contains(anchor) {
                continue;
            }
            let Some(id) = ids.people.get(*anchor) else {
                continue;
            };
            let mut entry = match rebuilt.get(anchor) {
                Some(entry) => (*entry).clone(),
                None => Entry {
                    id: id.clone(),
                    anchor: (*anchor).to_owned(),
                    attributes: Default::default(),
                    enabled: true,
                },
            };
            for step in steps {
                match &step.action {
                    Action::Create {
                        attributes,
                        enabled,
                        ..
                    } => {
                        entry.attributes = attributes.clone();
                        entry.enabled = *enabled;
                    }
                    Action::Adopt { id } => {
                        if let Some(adopted) = self.unowned.iter().find(|e| e.id == *id) {
                            entry.attributes = adopted.attributes.clone();
                            entry.enabled = adopted.enabled;
                        }
                        self.adopted.push(id.clone());
                    }
                    Action::Update { set } => {
                        for (name, values) in set {
                            set_attribute(&mut entry.attributes, name, values.clone());
                        }
                    }
                    Action::Rename { new_rdn_value } => {
                        if let Some(rdn) = self.policy.directory.rdn_attribute.as_deref() {
                            set_attribute(&mut entry.attributes, rdn, vec![new_rdn_value.clone()]);
                        }
                    }
                    Action::Enable => entry.enabled = true,
                    _ => {}
                }
            }
            entry.id = id.clone();
            let adopted = steps
                .iter()
                .any(|step| matches!(step.action, Action::Adopt { .. }));
            match self.known.find(anchor) {
                Some(slot) => self.known.update(slot, &entry),
                None if adopted => {
                    self.known.adopt(&entry);
                }
                None => {
                    self.known.insert(&entry, None);
                }
            }
        }
        // References written with creates, once their targets are in the index too.
        for (anchor, target) in &written {
            if let Some(slot) = self.known.find(anchor)
                && !failed.contains(anchor.as_str())
            {
                self.known.set_manager(slot, Some(target));
            }
        }
        for person in &people {
            let anchor = person.id.as_str();
            let Some(slot) = self.known.find(anchor) else {
                continue;
            };
            let placement = planned
                .placed
                .get(anchor)
                .map(|p| (p.manager, p.department));
            self.known
                .place(slot, planned.decided.contains(anchor), placement);
        }
        self.deprovisions.append(&mut planned.held);
        self.failures.append(&mut planned.failures);
        self.merge(outcome);
        Ok(())
    }

    /// Tells the settings' step sink (a dry run's printer) of planned steps.
    fn tell(&self, steps: &[Step], held: bool) {
        if let Some(sink) = &self.settings.on_step {
            for step in steps {
                (sink.0)(step, held);
            }
        }
    }

    fn merge(&mut self, outcome: Applied) {
        if let Some(progress) = &self.settings.progress {
            let done: u64 = outcome.counts.values().sum();
            progress.applied(done as usize + outcome.failures.len());
        }
        for (action, n) in outcome.counts {
            *self.applied.counts.entry(action).or_default() += n;
        }
        self.applied.failures.extend(outcome.failures);
    }

    /// A directory-wide failure: what the cycle applied before it is part of the report.
    fn abort(&mut self, mut aborted: Aborted<D::Error>) -> Box<Aborted<D::Error>> {
        let earlier = std::mem::take(&mut self.applied);
        for (action, n) in earlier.counts {
            *aborted.applied.counts.entry(action).or_default() += n;
        }
        aborted.applied.failures.splice(0..0, earlier.failures);
        Box::new(aborted)
    }

    /// Applies `steps` (one phase) with the ids the index knows.
    async fn apply_steps(&mut self, steps: Vec<Step>, groups: bool) -> Apply<D::Error> {
        let mut ids = Ids::default();
        for step in &steps {
            let mut add = |anchor: &str| {
                if let Some(slot) = self.known.find(anchor) {
                    ids.people
                        .entry(anchor.to_owned())
                        .or_insert_with(|| self.known.id(slot));
                }
            };
            if groups {
                match &step.action {
                    Action::CreateGroup { members, .. } | Action::SetGroupMembers { members } => {
                        members.iter().for_each(|m| add(m))
                    }
                    _ => {}
                }
            } else {
                add(&step.anchor);
                if let Action::SetReferences { set } = &step.action {
                    set.values().flatten().for_each(|t| add(t));
                }
            }
            if groups && let Some(id) = self.known.group_id(&step.anchor) {
                ids.groups.insert(step.anchor.clone(), id.to_owned());
            }
        }
        if !steps.first().is_some_and(|s| s.action.is_deprovision()) {
            count(&mut self.planned, &mut self.sample, &steps);
            if let Some(progress) = &self.settings.progress {
                progress.planned(steps.len());
            }
        } else {
            for step in &steps {
                *self.planned.entry(step.action.name()).or_default() += 1;
            }
        }
        self.tell(&steps, false);
        let plan = Plan {
            steps,
            ..Plan::default()
        };
        let stage = Instant::now();
        let result = apply(self.directory, &plan, &mut ids, self.settings.concurrency).await;
        self.timings.apply += stage.elapsed();
        match result {
            Ok(outcome) => {
                if groups {
                    self.groups_written(&plan.steps, &outcome, &ids);
                    self.merge(outcome);
                    return Ok(());
                }
                // Disables and enables move LDAP entries: the index follows their ids.
                for step in &plan.steps {
                    if let Some(slot) = self.known.find(&step.anchor)
                        && !outcome.failures.iter().any(|f| f.anchor == step.anchor)
                    {
                        match step.action {
                            Action::Disable => self.known.deprovisioned(
                                slot,
                                false,
                                ids.people.get(&step.anchor).map(String::as_str),
                            ),
                            Action::SetReferences { ref set } => {
                                let target = set.values().next().cloned().flatten();
                                self.known.set_manager(slot, target.as_deref());
                            }
                            _ => {}
                        }
                    }
                }
                self.merge(outcome);
                Ok(())
            }
            Err(aborted) => Err(self.abort(aborted)),
        }
    }

    /// The index learns the groups as the applier left them.
    fn groups_written(&mut self, steps: &[Step], outcome: &Applied, ids: &Ids) {
        for step in steps {
            if outcome.failures.iter().any(|f| f.anchor == step.anchor) {
                continue;
            }
            let id = ids.groups.get(&step.anchor).map(String::as_str);
            let members = |anchors: &std::collections::BTreeSet<String>| -> Vec<&str> {
                anchors
                    .iter()
                    .filter_map(|m| ids.people.get(m).map(String::as_str))
                    .collect()
            };
            match &step.action {
                Action::CreateGroup { name, members: m } => {
                    self.known
                        .group_written(&step.anchor, id, Some(name), Some(members(m)))
                }
                Action::SetGroupMembers { members: m } => {
                    self.known
                        .group_written(&step.anchor, id, None, Some(members(m)))
                }
                Action::RenameGroup { name } => {
                    self.known.group_written(&step.anchor, id, Some(name), None)
                }
                Action::DeleteGroup => self.known.group_written(&step.anchor, None, None, None),
                _ => {}
            }
        }
    }

    /// The end of the cycle: vanished people, the guard, deprovisions, then the links.
    async fn finish(
        &mut self,
        coverage: Coverage,
        people_read: usize,
        org_units: Option<&[OrgUnit]>,
        approved: Option<&str>,
    ) -> Result<(Plan, GuardDecision), Box<Aborted<D::Error>>> {
        let stage = Instant::now();
        // Only a full read says who is gone.
        let vanished: Vec<(u32, bool)> = match coverage {
            Coverage::Full => self.known.vanished().collect(),
            Coverage::Partial => Vec::new(),
        };
        let steps: Vec<Step> = {
            let inputs = inputs!(self, &[], &[], false);
            vanished
                .iter()
                .filter_map(|(slot, enabled)| {
                    people::deprovision_step(
                        &inputs,
                        self.known.anchor(*slot),
                        *enabled,
                        Reason::Vanished,
                    )
                })
                .collect()
        };
        self.deprovisions.extend(steps);
        let guard = plan::guard::decide_over(
            self.policy.guard,
            coverage == Coverage::Full && people_read == 0,
            // Entries adopted or claimed in this run are managed too (see `guard::decide`).
            self.known.managed + self.adopted.len(),
            self.deprovisions.iter(),
            approved,
        );
        let deprovisions = std::mem::take(&mut self.deprovisions);
        let (made, held) = match guard {
            GuardDecision::Held(_) => {
                // Held: those entries stay as they are, links included.
                (Vec::new(), deprovisions)
            }
            _ => (deprovisions, Vec::new()),
        };
        self.tell(&held, true);
        // The planner decides on a vanished entry, unless the guard holds its deprovision (a
        // held one keeps its links).
        let held_anchors: HashSet<&str> = held.iter().map(|s| s.anchor.as_str()).collect();
        for (slot, _) in &vanished {
            let decided = !held_anchors.contains(self.known.anchor(*slot));
            self.known.place(*slot, decided, None);
        }
        let (disables, deletes): (Vec<Step>, Vec<Step>) = made
            .iter()
            .cloned()
            .partition(|s| matches!(s.action, Action::Disable));
        for step in &deletes {
            if let Some(slot) = self.known.find(&step.anchor) {
                self.known.deprovisioned(slot, true, None);
            }
        }
        self.timings.plan += stage.elapsed();
        for batch in chunks(disables, CHUNK) {
            self.apply_steps(batch, false).await?;
        }

        let stage = Instant::now();
        let references = self.known.plan_references();
        let groups = if self.policy.directory.groups {
            self.known.plan_groups(
                org_units,
                plan::today(self.now),
                self.policy.directory.group_name_max,
            )
        } else {
            Vec::new()
        };
        self.timings.plan += stage.elapsed();
        for batch in chunks(references, LINK_BATCH) {
            self.apply_steps(batch, false).await?;
        }
        let mut groups = groups;
        groups.sort_by(|a, b| {
            (a.step.action.phase(), &a.step.anchor).cmp(&(b.step.action.phase(), &b.step.anchor))
        });
        for planned in groups {
            // One group at a time: its members' anchors and ids are all the applier needs.
            let step = self.known.group_step(planned);
            self.apply_steps(vec![step], true).await?;
        }
        for batch in chunks(deletes, CHUNK) {
            self.apply_steps(batch, false).await?;
        }
        let mut steps = std::mem::take(&mut self.sample);
        steps.extend(made);
        steps.sort_by(|a, b| (a.action.phase(), &a.anchor).cmp(&(b.action.phase(), &b.anchor)));
        let plan = Plan {
            steps,
            held,
            failures: std::mem::take(&mut self.failures),
            guard: guard.clone(),
            people: people_read,
            in_scope: self.in_scope,
            managed: self.known.managed,
            counted: Some(std::mem::take(&mut self.planned)),
            left_alone: {
                let adopted: HashSet<&str> = self.adopted.iter().map(String::as_str).collect();
                plan::LeftAlone::count(
                    self.policy.directory.marking.as_ref(),
                    &self.unowned,
                    &|id| adopted.contains(id),
                )
            },
        };
        Ok((plan, guard))
    }
}

/// A listing read ahead by a task of its own, at most `ahead` items ahead of its reader; the
/// task stops when the reader is dropped.
struct ReadAhead<T> {
    items: tokio::sync::mpsc::Receiver<T>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: Send + 'static> ReadAhead<T> {
    fn start(mut stream: futures::stream::BoxStream<'static, T>, ahead: usize) -> Self {
        let (sender, items) = tokio::sync::mpsc::channel(ahead.max(1));
        let task = tokio::spawn(async move {
            while let Some(item) = futures::StreamExt::next(&mut stream).await {
                if sender.send(item).await.is_err() {
                    break;
                }
            }
        });
        Self { items, task }
    }

    async fn next(&mut self) -> Option<T> {
        self.items.recv().await
    }
}

impl<T> Drop for ReadAhead<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts planned steps, keeping the first few as examples.
fn count(planned: &mut BTreeMap<&'static str, usize>, sample: &mut Vec<Step>, steps: &[Step]) {
    for step in steps {
        *planned.entry(step.action.name()).or_default() += 1;
        if sample.len() < SAMPLE {
            sample.push(step.clone());
        }
    }
}

fn chunks(mut steps: Vec<Step>, size: usize) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    while steps.len() > size {
        let rest = steps.split_off(size);
        out.push(std::mem::replace(&mut steps, rest));
    }
    if !steps.is_empty() {
        out.push(steps);
    }
    out
}

#[cfg(test)]
mod tests;
