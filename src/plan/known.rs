//! The directory as a streamed full cycle keeps it: a few hundred bytes per managed entry
//! instead of the whole listing. Per entry it holds the anchor and id (in one string arena), the
//! enabled state, a hash of each mapped attribute and of them all, the values that must stay
//! exact (unique attributes and the RDN), the manager reference, and what the cycle learns about
//! the person (seen, decided, HR's manager and department). Pure: the engine feeds it entries,
//! people and applied steps, and asks it for the steps that link entries (managers, groups).
//!
//! A person whose mapped attributes hash to what the entry holds, in the state the entry is in,
//! needs no step: the cycle keeps only their links. Anyone else is planned by the ordinary
//! planner ([`super::people`]) against an entry rebuilt from this index ([`Known::rebuild`]):
//! attributes whose hash matches get the mapped values back, the others a value nothing maps to,
//! so the planner writes exactly the attributes that differ.
//!
//! Hashes are 64-bit SipHash (per attribute truncated to 32 bits, backed by the 64-bit digest
//! of them all): a collision could hide one drifted attribute until it changes again, with a
//! probability far below that of a bit flip on the wire.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use crate::directory::{Attributes, Entry, Group};
use crate::source::OrgUnit;

use super::{Action, Mapping, Reason, Step, attribute};

/// A value no template renders (it holds a NUL): stands for an attribute whose hash differs.
pub(crate) const DIFFERS: &str = "\u{0}differs";

fn hasher() -> std::hash::DefaultHasher {
    std::hash::DefaultHasher::new()
}

fn hash_str(value: &str) -> u64 {
    let mut h = hasher();
    value.hash(&mut h);
    h.finish()
}

fn hash_lower(value: &str) -> u64 {
    if value.bytes().any(|b| b.is_ascii_uppercase()) || !value.is_ascii() {
        hash_str(&value.to_lowercase())
    } else {
        hash_str(value)
    }
}

/// One attribute's values as a set (the planner compares them in any order).
fn hash_values(values: &[String]) -> u64 {
    let mut h = hasher();
    if values.len() <= 1 {
        values.hash(&mut h);
    } else {
        let mut sorted: Vec<&String> = values.iter().collect();
        sorted.sort();
        sorted.hash(&mut h);
    }
    h.finish()
}

fn hash_taken(attribute: &str, value: &str) -> u64 {
    let mut h = hasher();
    attribute.to_lowercase().hash(&mut h);
    value.to_lowercase().hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Default)]
struct Arena {
    text: String,
}

impl Arena {
    fn push(&mut self, value: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(value);
        Span {
            start,
            len: value.len() as u32,
        }
    }

    fn get(&self, span: Span) -> &str {
        &self.text[span.start as usize..(span.start + span.len) as usize]
    }
}

/// Where an entry's manager reference points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ref {
    None,
    /// A value read from the directory (hash of its lower-cased id at the start of the cycle).
    Read(u64),
    /// Written in this cycle: the target entry as its id was then (`epoch`).
    Written {
        target: u32,
        epoch: u32,
    },
}

const NO_DEPARTMENT: u32 = u32::MAX;

mod flag {
    pub const ENABLED: u16 = 1;
    /// Enabled when the cycle started.
    pub const WAS_ENABLED: u16 = 1 << 1;
    pub const CREATED: u16 = 1 << 2;
    /// Its person was in the source.
    pub const SEEN: u16 = 1 << 3;
    /// The cycle decided on the entry (its links are recomputed; the others' are kept).
    pub const DECIDED: u16 = 1 << 4;
    /// Provisioned in this cycle: its manager and department are HR's.
    pub const PLACED: u16 = 1 << 5;
    /// To be deleted at the end of the cycle (not in the state after it).
    pub const DELETING: u16 = 1 << 6;
    /// The id is stored without [`super::Known::id_suffix`].
    pub const SUFFIXED: u16 = 1 << 7;
    pub const HAS_ID: u16 = 1 << 8;
    /// The run changed something of the slot's: [`super::Known::settle`] looks at it.
    pub const TOUCHED: u16 = 1 << 9;
    /// Deleted in an earlier run (a tombstone: slot numbers never move).
    pub const GONE: u16 = 1 << 10;
    /// Adopted (or claimed) in this run: managed from now on, at the id it had.
    pub const ADOPTED: u16 = 1 << 11;
    /// Flags that describe the entry and outlive a run.
    pub const LASTING: u16 = ENABLED | SUFFIXED | HAS_ID;
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    anchor: Span,
    id: Span,
    digest: u64,
    manager: Ref,
    hr_manager: Span,
    department: u32,
    /// Bumped whenever the entry's id changes in this cycle.
    epoch: u32,
    flags: u16,
}

impl Slot {
    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    fn set(&mut self, flag: u16, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// A planned group step whose members (entries of the index) are named when it is applied.
#[derive(Debug, Clone)]
pub struct GroupStep {
    pub step: Step,
    members: Vec<u32>,
}

impl GroupStep {
    fn of(step: Step) -> Self {
        Self {
            step,
            members: Vec::new(),
        }
    }
}

/// A managed group, its members as the hashes of their lower-cased ids.
#[derive(Debug, Clone)]
struct KnownGroup {
    id: String,
    anchor: String,
    name: String,
    members: Vec<u64>,
}

/// The compact directory (see the module docs).
#[derive(Debug, Default)]
pub struct Known {
    arena: Arena,
    slots: Vec<Slot>,
    /// `rules.len()` hashes per slot.
    hashes: Vec<u32>,
    /// `kept.len()` first values per slot (empty: none).
    kept_values: Vec<Span>,
    rules: Vec<String>,
    /// Attributes kept exactly: the unique ones, then the RDN when it is not unique.
    kept: Vec<(String, bool)>,
    manager_attribute: Option<String>,
    by_anchor: HashMap<u64, u32>,
    /// Anchors whose hash another anchor has already (practically never).
    collisions: HashMap<String, u32>,
    /// Lower-cased ids at the start of the cycle → slot (manager values, group members).
    read_ids: HashMap<u64, u32>,
    /// Unique values in use: hash of (attribute, value), both lower-cased → owner slot.
    taken: HashMap<u64, u32>,
    groups: Vec<KnownGroup>,
    /// Anchors of managers without an entry (yet), stored once.
    interned: HashMap<u64, Span>,
    departments: HashMap<String, u32>,
    department_ids: Vec<String>,
    /// Managed entries when the cycle started.
    pub managed: usize,
    /// What ids share after their first comma (the people OU of an LDAP directory), learned from
    /// the first id that has one: stored once instead of per entry.
    id_suffix: String,
    /// Slots whose run state changed since the last [`Known::settle`].
    touched: Vec<u32>,
    /// Ids an entry had before it moved in this run (hash, slot): forgotten when settling.
    stale_ids: Vec<(u64, u32)>,
    /// Unique values an entry held before this run rewrote it (hash, slot): released when
    /// settling, unless the entry holds them still.
    stale_taken: Vec<(u64, u32)>,
    /// The unique values after the first (which [`Known::current`] keeps) of entries that hold
    /// several, as hashes: what the entry must release when it is rewritten or deleted.
    extra_taken: HashMap<u32, Vec<u64>>,
    /// Arena bytes no span points to any more (replaced ids and values).
    garbage: usize,
}

impl Known {
    pub fn new(mapping: &Mapping, rdn: Option<&str>, manager_attribute: Option<&str>) -> Self {
        let rules: Vec<String> = mapping.rules().keys().cloned().collect();
        let mut kept: Vec<(String, bool)> = mapping
            .rules()
            .iter()
            .filter(|(_, rule)| rule.unique)
            .map(|(name, _)| (name.clone(), true))
            .collect();
        if let Some(rdn) = rdn
            && !kept.iter().any(|(name, _)| name.eq_ignore_ascii_case(rdn))
        {
            kept.push((rdn.to_owned(), false));
        }
        Self {
            rules,
            kept,
            manager_attribute: manager_attribute.map(str::to_owned),
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn anchor(&self, slot: u32) -> &str {
        self.arena.get(self.slots[slot as usize].anchor)
    }

    pub fn id(&self, slot: u32) -> String {
        let s = &self.slots[slot as usize];
        let mut id = self.arena.get(s.id).to_owned();
        if s.has(flag::SUFFIXED) {
            id.push_str(&self.id_suffix);
        }
        id
    }

    fn id_is(&self, slot: u32, other: &str) -> bool {
        let s = &self.slots[slot as usize];
        let stored = self.arena.get(s.id);
        if s.has(flag::SUFFIXED) {
            other.len() == stored.len() + self.id_suffix.len()
                && other.starts_with(stored)
                && other.ends_with(self.id_suffix.as_str())
        } else {
            stored == other
        }
    }

    /// Records the entry's id; a change of id (not the first) bumps its epoch.
    fn set_id(&mut self, slot: u32, id: &str) {
        let had = self.slots[slot as usize].has(flag::HAS_ID);
        if had && self.id_is(slot, id) {
            return;
        }
        if self.id_suffix.is_empty()
            && let Some(comma) = id.find(',')
        {
            self.id_suffix = id[comma..].to_owned();
        }
        let (text, suffixed) = match id.strip_suffix(self.id_suffix.as_str()) {
            Some(prefix) if !self.id_suffix.is_empty() => (prefix, true),
            _ => (id, false),
        };
        if had {
            let old = self.id(slot);
            self.garbage += self.slots[slot as usize].id.len as usize;
            self.stale_ids.push((hash_lower(&old), slot));
        }
        let span = self.arena.push(text);
        let s = &mut self.slots[slot as usize];
        if had {
            s.epoch += 1;
        }
        s.id = span;
        s.set(flag::SUFFIXED, suffixed);
        s.set(flag::HAS_ID, true);
    }

    pub fn enabled(&self, slot: u32) -> bool {
        self.slots[slot as usize].has(flag::ENABLED)
    }

    pub fn find(&self, anchor: &str) -> Option<u32> {
        let slot = *self.by_anchor.get(&hash_str(anchor))?;
        if self.anchor(slot) == anchor {
            Some(slot)
        } else {
            self.collisions.get(anchor).copied()
        }
    }

    fn index_anchor(&mut self, anchor: &str, slot: u32) {
        match self.by_anchor.entry(hash_str(anchor)) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(slot);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.insert(anchor.to_owned(), slot);
            }
        }
    }

    /// A slot for a new anchor (its id, hashes and values are stored next).
    fn new_slot(&mut self, anchor: &str, flags: u16) -> u32 {
        let slot = self.slots.len() as u32;
        let span = self.arena.push(anchor);
        self.slots.push(Slot {
            anchor: span,
            id: Span::default(),
            digest: 0,
            manager: Ref::None,
            hr_manager: Span::default(),
            department: NO_DEPARTMENT,
            epoch: 0,
            flags,
        });
        self.hashes.extend(std::iter::repeat_n(0, self.rules.len()));
        self.kept_values
            .extend(std::iter::repeat_n(Span::default(), self.kept.len()));
        self.index_anchor(anchor, slot);
        slot
    }

    /// Adds a managed entry from the listing (an anchor seen twice keeps the smaller id, as the
    /// planner does).
    pub fn push(&mut self, entry: &Entry) {
        let slot = match self.find(&entry.anchor) {
            Some(existing) => {
                self.read_ids.insert(hash_lower(&entry.id), existing);
                if entry.id >= self.id(existing) {
                    return;
                }
                // The same entry for the planner, not a move.
                self.slots[existing as usize].set(flag::HAS_ID, false);
                existing
            }
            None => {
                self.managed += 1;
                self.new_slot(&entry.anchor, 0)
            }
        };
        self.read_ids.insert(hash_lower(&entry.id), slot);
        self.store(slot, entry);
        self.as_read(slot, entry);
    }

    /// Records the manager reference and enabled state an entry holds as read from the
    /// directory.
    fn as_read(&mut self, slot: u32, entry: &Entry) {
        let manager = self
            .manager_attribute
            .as_deref()
            .and_then(|name| attribute(&entry.attributes, name))
            .and_then(|values| values.first())
            .map_or(Ref::None, |value| Ref::Read(hash_lower(value)));
        let s = &mut self.slots[slot as usize];
        s.manager = manager;
        s.set(flag::WAS_ENABLED, entry.enabled);
    }

    /// Records an entry's id, state, attribute hashes and kept values, and claims its unique
    /// values.
    fn store(&mut self, slot: u32, entry: &Entry) {
        // Stored before (this run rewrote the entry): what it held may be released when settling.
        let again = self.slots[slot as usize].has(flag::HAS_ID);
        if again {
            let held = self.held_values(slot);
            self.stale_taken.extend(held.into_iter().map(|h| (h, slot)));
            self.extra_taken.remove(&slot);
        }
        self.set_id(slot, &entry.id);
        let mut digest = hasher();
        let base = slot as usize * self.rules.len();
        for (i, name) in self.rules.iter().enumerate() {
            let values = attribute(&entry.attributes, name)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let h = hash_values(values);
            h.hash(&mut digest);
            self.hashes[base + i] = h as u32;
        }
        let base = slot as usize * self.kept.len();
        let mut extra = Vec::new();
        for i in 0..self.kept.len() {
            let (name, unique) = &self.kept[i];
            let values = attribute(&entry.attributes, name)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let old = self.kept_values[base + i];
            // A value stays taken for the rest of the cycle once an entry held it, as in a
            // plan made in one piece.
            if *unique {
                for (n, value) in values.iter().enumerate() {
                    let h = hash_taken(name, value);
                    self.taken.insert(h, slot);
                    if n > 0 {
                        extra.push(h);
                    }
                }
            }
            let first = values.first().map(String::as_str).unwrap_or("");
            if self.arena.get(old) != first {
                self.garbage += old.len as usize;
                self.kept_values[base + i] = self.arena.push(first);
            }
        }
        if !extra.is_empty() {
            self.extra_taken.insert(slot, extra);
        }
        let s = &mut self.slots[slot as usize];
        s.digest = digest.finish();
        s.set(flag::ENABLED, entry.enabled);
    }

    /// Adds a managed group from the listing.
    pub fn push_group(&mut self, group: &Group) {
        if group.anchor.is_empty() || self.groups.iter().any(|g| g.anchor == group.anchor) {
            return;
        }
        self.groups.push(KnownGroup {
            id: group.id.clone(),
            anchor: group.anchor.clone(),
            name: group.name.clone(),
            members: group.members.iter().map(|m| hash_lower(m)).collect(),
        });
    }

    /// The values `mapping.map` needs of an entry: the first value of each kept attribute.
    pub fn current(&self, slot: u32) -> Attributes {
        let base = slot as usize * self.kept.len();
        self.kept
            .iter()
            .enumerate()
            .filter_map(|(i, (name, _))| {
                let value = self.arena.get(self.kept_values[base + i]);
                (!value.is_empty()).then(|| (name.clone(), vec![value.to_owned()]))
            })
            .collect()
    }

    /// Whether `mapped` is what the entry holds (every mapped attribute, as the planner compares).
    pub fn matches(&self, slot: u32, mapped: &Attributes) -> bool {
        let mut digest = hasher();
        for name in &self.rules {
            let values = mapped.get(name).map(Vec::as_slice).unwrap_or(&[]);
            hash_values(values).hash(&mut digest);
        }
        digest.finish() == self.slots[slot as usize].digest
    }

    /// The entry as the planner needs it, rebuilt for a person whose attributes map to `mapped`
    /// (see the module docs); `None` rebuilds only the kept values (a deprovision needs no more).
    pub fn rebuild(&self, slot: u32, mapped: Option<&Attributes>) -> Entry {
        let mut attributes = Attributes::new();
        let hashes = &self.hashes[slot as usize * self.rules.len()..][..self.rules.len()];
        let current = self.current(slot);
        for (name, stored) in self.rules.iter().zip(hashes) {
            let kept = current.get(name);
            let values: Vec<String> = match (kept, mapped) {
                (Some(kept), _) => {
                    let mut values = kept.clone();
                    if hash_values(&values) as u32 != *stored {
                        values.push(DIFFERS.to_owned());
                    }
                    values
                }
                (None, Some(mapped)) => {
                    let wanted = mapped.get(name).map(Vec::as_slice).unwrap_or(&[]);
                    if hash_values(wanted) as u32 == *stored {
                        wanted.to_vec()
                    } else if hash_values(&[]) as u32 == *stored {
                        Vec::new()
                    } else {
                        vec![DIFFERS.to_owned()]
                    }
                }
                (None, None) => Vec::new(),
            };
            if !values.is_empty() {
                attributes.insert(name.clone(), values);
            }
        }
        Entry {
            id: self.id(slot),
            anchor: self.anchor(slot).to_owned(),
            attributes,
            enabled: self.enabled(slot),
        }
    }

    /// Whether a unique value belongs to an entry other than `anchor`'s.
    pub fn taken_by_other(&self, anchor: &str, attribute: &str, value: &str) -> bool {
        self.taken
            .get(&hash_taken(attribute, value))
            .is_some_and(|owner| self.anchor(*owner) != anchor)
    }

    /// An anchor's span: the entry's own when it has one, else one copy per distinct anchor (a
    /// manager has many reports).
    fn intern(&mut self, anchor: &str) -> Span {
        if let Some(slot) = self.find(anchor) {
            return self.slots[slot as usize].anchor;
        }
        let hash = hash_str(anchor);
        if let Some(span) = self.interned.get(&hash)
            && self.arena.get(*span) == anchor
        {
            return *span;
        }
        let span = self.arena.push(anchor);
        self.interned.entry(hash).or_insert(span);
        span
    }

    /// Records the person behind an existing or new entry: seen, and when the cycle provisions
    /// them, HR's manager and department.
    pub fn place(
        &mut self,
        slot: u32,
        decided: bool,
        placement: Option<(Option<&str>, Option<&str>)>,
    ) {
        let hr_manager = placement
            .and_then(|(manager, _)| manager)
            .map(|m| self.intern(m))
            .unwrap_or_default();
        let department = match placement.and_then(|(_, department)| department) {
            Some(department) => match self.departments.get(department) {
                Some(index) => *index,
                None => {
                    let index = self.department_ids.len() as u32;
                    self.department_ids.push(department.to_owned());
                    self.departments.insert(department.to_owned(), index);
                    index
                }
            },
            None => NO_DEPARTMENT,
        };
        self.touch(slot);
        let s = &mut self.slots[slot as usize];
        s.set(flag::SEEN, true);
        s.set(flag::DECIDED, decided);
        s.set(flag::PLACED, placement.is_some());
        s.hr_manager = hr_manager;
        s.department = department;
    }

    /// Adds an entry this cycle created (or adopted), as the directory now holds it.
    pub fn insert(&mut self, entry: &Entry, manager: Option<&str>) -> u32 {
        let slot = self.new_slot(&entry.anchor, flag::CREATED | flag::SEEN);
        self.touch(slot);
        self.store(slot, entry);
        self.set_manager(slot, manager);
        slot
    }

    /// Adds an entry this cycle adopted (or claimed), as the directory now holds it: like a
    /// listed entry, its id resolves group members and manager references that name it, and
    /// its own manager reference is the one it holds (nothing is rewritten that is right).
    pub fn adopt(&mut self, entry: &Entry) -> u32 {
        let slot = self.new_slot(&entry.anchor, flag::ADOPTED | flag::SEEN);
        self.touch(slot);
        self.read_ids.insert(hash_lower(&entry.id), slot);
        self.store(slot, entry);
        self.as_read(slot, entry);
        slot
    }

    /// Records the entry as the directory holds it after this cycle wrote it.
    pub fn update(&mut self, slot: u32, entry: &Entry) {
        self.touch(slot);
        self.store(slot, entry);
    }

    /// Records a manager reference written to the entry (`None` removed it).
    pub fn set_manager(&mut self, slot: u32, target: Option<&str>) {
        let manager = match target.and_then(|t| self.find(t)) {
            Some(target) => Ref::Written {
                target,
                epoch: self.slots[target as usize].epoch,
            },
            None => Ref::None,
        };
        self.touch(slot);
        self.slots[slot as usize].manager = manager;
    }

    /// Marks a deprovision as applied: disabled (with its new id) or to be deleted.
    pub fn deprovisioned(&mut self, slot: u32, deleting: bool, new_id: Option<&str>) {
        self.touch(slot);
        if let Some(id) = new_id {
            self.set_id(slot, id);
        }
        let s = &mut self.slots[slot as usize];
        s.set(flag::DECIDED, true);
        if deleting {
            s.set(flag::DELETING, true);
        } else {
            s.set(flag::ENABLED, false);
        }
    }

    /// Pre-existing entries whose person was not in the source, with their state.
    pub fn vanished(&self) -> impl Iterator<Item = (u32, bool)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                !s.has(flag::SEEN)
                    && !s.has(flag::CREATED)
                    && !s.has(flag::ADOPTED)
                    && !s.has(flag::GONE)
            })
            .map(|(i, s)| (i as u32, s.has(flag::ENABLED)))
    }

    /// Entries that exist after the cycle, with their anchor and whether they are enabled, and
    /// whether they were enabled (`None`: created in this cycle).
    pub fn after(&self) -> impl Iterator<Item = (&str, bool, Option<bool>)> + '_ {
        self.slots
            .iter()
            .filter(|s| !s.has(flag::DELETING) && !s.has(flag::GONE))
            .map(|s| {
                (
                    self.arena.get(s.anchor),
                    s.has(flag::ENABLED),
                    (!s.has(flag::CREATED)).then(|| s.has(flag::WAS_ENABLED)),
                )
            })
    }

    pub fn exists(&self, slot: u32) -> bool {
        !self.slots[slot as usize].has(flag::DELETING | flag::GONE)
    }

    /// Whether the entry's id changed in this cycle (created, renamed, moved).
    fn moved(&self, slot: u32) -> bool {
        let s = &self.slots[slot as usize];
        s.has(flag::CREATED) || s.epoch > 0
    }

    fn hr_manager(&self, slot: u32) -> Option<u32> {
        let span = self.slots[slot as usize].hr_manager;
        (span.len > 0)
            .then(|| self.find(self.arena.get(span)))
            .flatten()
    }

    /// The manager references to write once every entry is in place, as
    /// [`super::people::plan_references`] plans them: HR's manager for people this cycle
    /// provisioned, the present one for everyone else while it still exists; rewritten when the
    /// target's id changed after the reference was written.
    pub fn plan_references(&self) -> Vec<Step> {
        let Some(manager_attribute) = self.manager_attribute.as_deref() else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let slot = i as u32;
            if !self.exists(slot) {
                continue;
            }
            let (current, foreign, stale_target) = match s.manager {
                Ref::None => (None, false, false),
                Ref::Read(hash) => match self.read_ids.get(&hash) {
                    Some(target) => (Some(*target), false, self.moved(*target)),
                    None => (None, true, false),
                },
                Ref::Written { target, epoch } => (
                    Some(target),
                    false,
                    self.slots[target as usize].epoch != epoch,
                ),
            };
            let placed = s.has(flag::PLACED);
            let desired = if placed {
                self.hr_manager(slot)
            } else {
                current
            }
            .filter(|m| *m != slot && self.exists(*m));
            let stale = desired.is_some() && desired == current && stale_target;
            let keep_foreign = foreign && !placed;
            if (desired == current && !stale) || (keep_foreign && desired.is_none()) {
                continue;
            }
            let set = BTreeMap::from([(
                manager_attribute.to_owned(),
                desired.map(|m| self.anchor(m).to_owned()),
            )]);
            steps.push(Step {
                anchor: self.anchor(slot).to_owned(),
                reason: if placed && desired != current {
                    Reason::Changed
                } else {
                    Reason::Reference
                },
                action: Action::SetReferences { set },
            });
        }
        steps
    }

    /// The group steps once every entry is in place, as [`super::groups::plan_groups`] plans
    /// them: one group per active department, whose members are the enabled entries of its
    /// people (people this cycle did not decide on keep their groups).
    pub fn plan_groups(
        &self,
        org_units: Option<&[OrgUnit]>,
        today: jiff::civil::Date,
        group_name_max: Option<usize>,
    ) -> Vec<GroupStep> {
        let desired: BTreeMap<&str, &str> = match org_units {
            Some(units) => super::groups::departments(units, today, group_name_max),
            // Without org units, the groups stay as they are; only memberships move.
            None => self
                .groups
                .iter()
                .map(|g| (g.anchor.as_str(), g.name.as_str()))
                .collect(),
        };
        let enabled = |slot: u32| self.exists(slot) && self.enabled(slot);
        let mut members: BTreeMap<&str, BTreeSet<u32>> = desired
            .keys()
            .map(|anchor| (*anchor, BTreeSet::new()))
            .collect();
        for group in &self.groups {
            let Some(set) = members.get_mut(group.anchor.as_str()) else {
                continue;
            };
            for hash in &group.members {
                if let Some(member) = self.read_ids.get(hash)
                    && !self.slots[*member as usize].has(flag::DECIDED)
                    && enabled(*member)
                {
                    set.insert(*member);
                }
            }
        }
        for (i, s) in self.slots.iter().enumerate() {
            if s.has(flag::PLACED)
                && s.department != NO_DEPARTMENT
                && enabled(i as u32)
                && let Some(set) =
                    members.get_mut(self.department_ids[s.department as usize].as_str())
            {
                set.insert(i as u32);
            }
        }
        // Member anchors are filled in one group at a time ([`Known::group_step`]).
        let anchors = |set: &BTreeSet<u32>| -> Vec<u32> { set.iter().copied().collect() };
        let mut steps = Vec::new();
        for (anchor, name) in &desired {
            let wanted = members.remove(anchor).unwrap_or_default();
            let Some(group) = self.groups.iter().find(|g| g.anchor == *anchor) else {
                steps.push(GroupStep {
                    step: Step {
                        anchor: (*anchor).to_owned(),
                        reason: Reason::OrgUnit,
                        action: Action::CreateGroup {
                            name: (*name).to_owned(),
                            members: BTreeSet::new(),
                        },
                    },
                    members: anchors(&wanted),
                });
                continue;
            };
            if group.name != *name {
                steps.push(GroupStep::of(Step {
                    anchor: (*anchor).to_owned(),
                    reason: Reason::OrgUnit,
                    action: Action::RenameGroup {
                        name: (*name).to_owned(),
                    },
                }));
            }
            let exact = group.members.len() == wanted.len()
                && group
                    .members
                    .iter()
                    .all(|hash| self.read_ids.get(hash).is_some_and(|m| wanted.contains(m)));
            let moved = wanted.iter().any(|m| self.moved(*m));
            if !exact || moved {
                steps.push(GroupStep {
                    step: super::groups::set_members(anchor, exact, BTreeSet::new()),
                    members: anchors(&wanted),
                });
            }
        }
        for group in self.groups.iter().filter(|_| org_units.is_some()) {
            if !desired.contains_key(group.anchor.as_str()) {
                steps.push(GroupStep::of(Step {
                    anchor: group.anchor.clone(),
                    reason: Reason::OrgUnit,
                    action: Action::DeleteGroup,
                }));
            }
        }
        steps
    }

    fn touch(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if !s.has(flag::TOUCHED) {
            s.set(flag::TOUCHED, true);
            self.touched.push(slot);
        }
    }

    /// The hashes of the unique values the entry holds now.
    fn held_values(&self, slot: u32) -> Vec<u64> {
        let base = slot as usize * self.kept.len();
        let mut held: Vec<u64> = self
            .kept
            .iter()
            .enumerate()
            .filter(|(_, (_, unique))| *unique)
            .filter_map(|(i, (name, _))| {
                let value = self.arena.get(self.kept_values[base + i]);
                (!value.is_empty()).then(|| hash_taken(name, value))
            })
            .collect();
        if let Some(extra) = self.extra_taken.get(&slot) {
            held.extend(extra);
        }
        held
    }

    fn live(&self, slot: u32) -> bool {
        !self.slots[slot as usize].has(flag::GONE)
    }

    /// Makes the index describe the directory as this run left it, with no run state: it can be
    /// kept for the next run instead of listing the directory again (valid only when every
    /// step the run planned was applied). Costs what the run touched, not the directory's size.
    pub fn settle(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for &slot in &touched {
            let s = self.slots[slot as usize];
            if s.has(flag::DELETING) {
                self.forget(slot);
            } else if s.has(flag::CREATED) || s.has(flag::ADOPTED) || s.epoch > 0 {
                if s.has(flag::CREATED) || s.has(flag::ADOPTED) {
                    self.managed += 1;
                }
                self.read_ids.insert(hash_lower(&self.id(slot)), slot);
            }
        }
        for &slot in &touched {
            if !self.live(slot) {
                continue;
            }
            let manager = match self.slots[slot as usize].manager {
                Ref::Written { target, .. } if self.live(target) => {
                    Ref::Read(hash_lower(&self.id(target)))
                }
                Ref::Written { .. } => Ref::None,
                read => read,
            };
            let s = &mut self.slots[slot as usize];
            s.manager = manager;
            let enabled = s.has(flag::ENABLED);
            s.flags &= flag::LASTING;
            s.set(flag::WAS_ENABLED, enabled);
            s.epoch = 0;
            s.hr_manager = Span::default();
            s.department = NO_DEPARTMENT;
        }
        for (hash, slot) in std::mem::take(&mut self.stale_ids) {
            if self.read_ids.get(&hash) == Some(&slot)
                && (!self.live(slot) || hash_lower(&self.id(slot)) != hash)
            {
                self.read_ids.remove(&hash);
            }
        }
        for (hash, slot) in std::mem::take(&mut self.stale_taken) {
            if self.taken.get(&hash) == Some(&slot)
                && (!self.live(slot) || !self.held_values(slot).contains(&hash))
            {
                self.taken.remove(&hash);
            }
        }
        self.interned.clear();
        if self.garbage > (1 << 20) && self.garbage > self.arena.text.len() / 2 {
            self.compact();
        }
    }

    /// Removes a deleted entry (its slot stays, as a tombstone).
    fn forget(&mut self, slot: u32) {
        let anchor = self.anchor(slot).to_owned();
        match self.by_anchor.get(&hash_str(&anchor)) {
            Some(owner) if *owner == slot => {
                self.by_anchor.remove(&hash_str(&anchor));
            }
            _ => {
                self.collisions.remove(&anchor);
            }
        }
        let id = hash_lower(&self.id(slot));
        if self.read_ids.get(&id) == Some(&slot) {
            self.read_ids.remove(&id);
        }
        for hash in self.held_values(slot) {
            if self.taken.get(&hash) == Some(&slot) {
                self.taken.remove(&hash);
            }
        }
        self.extra_taken.remove(&slot);
        let s = &mut self.slots[slot as usize];
        if !s.has(flag::CREATED) && !s.has(flag::ADOPTED) {
            self.managed -= 1;
        }
        self.garbage += (s.anchor.len + s.id.len) as usize;
        s.flags = flag::GONE;
        s.manager = Ref::None;
    }

    /// Copies the live strings into a new arena (settling leaves replaced ones behind).
    fn compact(&mut self) {
        let mut arena = Arena {
            text: String::with_capacity(self.arena.text.len() - self.garbage),
        };
        for (i, s) in self.slots.iter_mut().enumerate() {
            s.hr_manager = Span::default();
            let base = i * self.kept.len();
            if s.has(flag::GONE) {
                s.anchor = Span::default();
                s.id = Span::default();
                self.kept_values[base..base + self.kept.len()].fill(Span::default());
                continue;
            }
            s.anchor = arena.push(self.arena.get(s.anchor));
            s.id = arena.push(self.arena.get(s.id));
            for span in &mut self.kept_values[base..base + self.kept.len()] {
                *span = arena.push(self.arena.get(*span));
            }
        }
        self.interned.clear();
        self.arena = arena;
        self.garbage = 0;
    }

    /// Records a group step the applier carried out: the group's id, name and members (by
    /// their entries' ids) as the directory holds them now.
    pub fn group_written(
        &mut self,
        anchor: &str,
        id: Option<&str>,
        name: Option<&str>,
        members: Option<Vec<&str>>,
    ) {
        let members = members.map(|m| m.into_iter().map(hash_lower).collect::<Vec<u64>>());
        let Some(id) = id else {
            self.groups.retain(|g| g.anchor != anchor);
            return;
        };
        match self.groups.iter_mut().find(|g| g.anchor == anchor) {
            Some(group) => {
                group.id = id.to_owned();
                if let Some(name) = name {
                    group.name = name.to_owned();
                }
                if let Some(members) = members {
                    group.members = members;
                }
            }
            None => self.groups.push(KnownGroup {
                id: id.to_owned(),
                anchor: anchor.to_owned(),
                name: name.unwrap_or_default().to_owned(),
                members: members.unwrap_or_default(),
            }),
        }
    }

    /// What the index says of the directory, by anchor, to compare a settled index with one
    /// read afresh: each live entry (id, enabled, attribute hashes, kept values, manager as
    /// an anchor or a foreign hash), each group (id, name, member anchors), the unique values
    /// in use by owner, and the managed count. For tests: it holds unique values (uids,
    /// mail addresses), so it is never logged.
    #[doc(hidden)]
    pub fn view(&self) -> String {
        let by_read = |hash: &u64| match self.read_ids.get(hash) {
            Some(slot) => self.anchor(*slot).to_owned(),
            None => format!("foreign {hash:x}"),
        };
        let mut entries = BTreeMap::new();
        let mut taken: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (i, s) in self.slots.iter().enumerate() {
            let slot = i as u32;
            if s.has(flag::GONE) {
                continue;
            }
            let manager = match s.manager {
                Ref::None => None,
                Ref::Read(hash) => Some(by_read(&hash)),
                Ref::Written { target, .. } => Some(format!("written {}", self.anchor(target))),
            };
            let hashes = &self.hashes[i * self.rules.len()..][..self.rules.len()];
            entries.insert(
                self.anchor(slot).to_owned(),
                (
                    self.id(slot).to_lowercase(),
                    s.has(flag::ENABLED),
                    hashes.to_vec(),
                    self.current(slot),
                    manager,
                    s.flags & !flag::SUFFIXED,
                ),
            );
        }
        for (hash, owner) in &self.taken {
            taken
                .entry(self.anchor(*owner).to_owned())
                .or_default()
                .push(*hash);
        }
        taken.values_mut().for_each(|v| v.sort());
        let mut read_ids: Vec<(u64, String)> = self
            .read_ids
            .iter()
            .map(|(h, slot)| (*h, self.anchor(*slot).to_owned()))
            .collect();
        read_ids.sort();
        let mut groups: Vec<_> = self
            .groups
            .iter()
            .map(|g| {
                let mut members: Vec<String> = g.members.iter().map(by_read).collect();
                members.sort();
                (
                    g.anchor.clone(),
                    g.id.to_lowercase(),
                    g.name.clone(),
                    members,
                )
            })
            .collect();
        groups.sort();
        format!(
            "managed {}\nentries {entries:#?}\ngroups {groups:#?}\ntaken {taken:?}\nids {read_ids:?}",
            self.managed
        )
    }

    /// Bytes held (allocated capacity, not counting allocator overhead), for the cycle's log.
    pub fn footprint(&self) -> usize {
        fn map<K, V>(m: &HashMap<K, V>) -> usize {
            m.capacity() * (std::mem::size_of::<(K, V)>() + 1)
        }
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.hashes.capacity() * 4
            + self.kept_values.capacity() * std::mem::size_of::<Span>()
            + self.arena.text.capacity()
            + map(&self.by_anchor)
            + map(&self.read_ids)
            + map(&self.taken)
            + map(&self.interned)
            + self
                .groups
                .iter()
                .map(|g| g.members.capacity() * 8)
                .sum::<usize>()
    }

    /// A group step with its members named (one group's member anchors at a time).
    pub fn group_step(&self, planned: GroupStep) -> Step {
        let GroupStep { mut step, members } = planned;
        if let Action::CreateGroup { members: m, .. } | Action::SetGroupMembers { members: m } =
            &mut step.action
        {
            *m = members
                .iter()
                .map(|slot| self.anchor(*slot).to_owned())
                .collect();
        }
        step
    }

    /// The group's id, for the applier.
    pub fn group_id(&self, anchor: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.anchor == anchor)
            .map(|g| g.id.as_str())
    }
}
