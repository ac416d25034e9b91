//! The pure planning core: no I/O, time passed in. Source people and org units, the managed
//! directory entries and groups, the mapping and the policy go in; an ordered [`Plan`] comes out,
//! each step with its reason. The same plan drives the sync, the dry run, the guard, the status
//! counts and `explain`.
//!
//! Steps name people and groups by their anchors (HollyHR ids), never by directory ids: an entry's
//! id can change while a plan is applied (an LDAP rename or a move to a disabled OU, an entry
//! created in this run), so the applier resolves ids at the moment it writes. References between
//! entries (a manager, group members) are planned in anchor space for the same reason: a manager
//! created in the same run is resolved once it exists.

pub mod groups;
pub mod guard;
pub mod known;
pub mod mapping;
pub mod people;
pub mod scope;
pub mod timing;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

pub use crate::directory::DirectoryTraits;
use crate::directory::{Attributes, Entry, Group};
use crate::source::{OrgUnit, Person};

pub use guard::{Guard, GuardDecision, GuardTrip};
pub use mapping::{Mapping, MappingError};
pub use scope::Scope;

/// The deepest wave of creates: a chain of new managers deeper than this gets its references in
/// a later step instead.
pub const MAX_WAVE: u8 = 15;

/// What happens to people who have not started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FutureStarters {
    /// Create their account disabled, ready for their first day.
    #[default]
    ProvisionDisabled,
    /// Leave them out until their start date.
    Skip,
}

/// What happens to people on long-term leave (a source that knows it: Personio's LEAVE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLeave {
    /// They stay provisioned and enabled.
    #[default]
    Keep,
    /// Their entry is disabled until they are back (and counts as a deprovision for the guard).
    Disable,
}

/// What happens to a leaver's (or a vanished person's) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deprovision {
    #[default]
    Disable,
    Delete,
    /// Disable now; delete once the entry has been disabled for `delay`.
    DisableThenDelete {
        delay: SignedDuration,
    },
}

/// Everything about a sync that is policy rather than data.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub future_starters: FutureStarters,
    pub on_leave: OnLeave,
    pub deprovision: Deprovision,
    pub scope: Scope,
    pub guard: Guard,
    pub directory: DirectoryTraits,
    /// Adopt an unowned entry that matches a new person by these attributes, tried in order
    /// (empty: adoption is off).
    pub adoption: Vec<String>,
    /// Claim unmarked entries that hold a source person's id in the anchor attribute: the
    /// first cycles after an upgrade from a version that did not mark what it made (see
    /// [`crate::directory::Marking`]); never for an object that has not synced before.
    pub claim_unmarked: bool,
    /// When transitions happen: dates read in each person's time zone, at the configured hours.
    pub timing: timing::Timing,
}

/// Unique values held by unowned entries, lower-cased: attribute → values.
pub type Reserved = HashMap<String, std::collections::HashSet<String>>;

/// Which part of the source this plan sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Everyone: a managed entry whose person is absent has vanished from the source.
    Full,
    /// Only people changed since a checkpoint (or one person): absence means nothing.
    Partial,
}

/// The inputs of one planning run.
pub struct Inputs<'a> {
    pub people: &'a [Person],
    /// The org units, when groups are refreshed (`None` adjusts memberships of existing groups).
    pub org_units: Option<&'a [OrgUnit]>,
    pub entries: &'a [Entry],
    pub groups: &'a [Group],
    /// Entries without an anchor (adoption candidates).
    pub unowned: &'a [Entry],
    /// Unique values held by entries PeopleSync does not own: attribute (lower case) → values
    /// (lower case). New values avoid them.
    pub reserved: &'a Reserved,
    pub mapping: &'a Mapping,
    pub policy: &'a Policy,
    pub coverage: Coverage,
    pub now: Timestamp,
    /// When each disabled entry was disabled (DisableThenDelete), tracked by the caller.
    pub disabled_since: &'a BTreeMap<String, Timestamp>,
    /// The plan hash a person approved to release held deprovisions.
    pub approved: Option<&'a str>,
}

/// Why a step is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// In scope and not in the directory yet.
    New,
    /// A not-yet-started person, provisioned disabled.
    FutureStarter,
    /// Mapped attributes differ (an HR change or manual drift).
    Changed,
    /// The unique naming attribute changed.
    Renamed,
    /// Active again after having left.
    Reactivated,
    /// Past their end date.
    Leaver,
    /// On long-term leave (enabled or disabled per `spec.lifecycle.onLeave`).
    OnLeave,
    /// Managed entry whose person is no longer in the source.
    Vanished,
    /// The person no longer matches the scope filters.
    OutOfScope,
    /// Disabled for longer than the deprovision delay.
    DelayElapsed,
    /// A referenced entry (manager, member) was created, renamed, moved or removed.
    Reference,
    /// An unowned entry matched the person and is taken over.
    Adopted,
    /// An entry an earlier version made (the person's id, no mark) is marked as this object's.
    Claimed,
    /// Org units changed.
    OrgUnit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "New",
            Reason::FutureStarter => "FutureStarter",
            Reason::Changed => "Changed",
            Reason::Renamed => "Renamed",
            Reason::Reactivated => "Reactivated",
            Reason::Leaver => "Leaver",
            Reason::OnLeave => "OnLeave",
            Reason::Vanished => "Vanished",
            Reason::OutOfScope => "OutOfScope",
            Reason::DelayElapsed => "DelayElapsed",
            Reason::Reference => "Reference",
            Reason::Adopted => "Adopted",
            Reason::Claimed => "Claimed",
            Reason::OrgUnit => "OrgUnit",
        }
    }
}

/// One step, naming its person or org unit by anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub anchor: String,
    pub reason: Reason,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A new entry; `references` are written with it (their targets exist already, or are
    /// created in an earlier `wave`: managers before their reports).
    Create {
        attributes: Attributes,
        enabled: bool,
        references: BTreeMap<String, Option<String>>,
        wave: u8,
    },
    /// Replace these attributes (an empty list removes one).
    Update {
        set: Attributes,
    },
    Rename {
        new_rdn_value: String,
    },
    /// Set the person's anchor on this unowned entry (it becomes PeopleSync's).
    Adopt {
        id: String,
    },
    Disable,
    Enable,
    Delete,
    /// Point reference attributes at these people (resolved to ids when applied); `None` removes.
    SetReferences {
        set: BTreeMap<String, Option<String>>,
    },
    CreateGroup {
        name: String,
        members: BTreeSet<String>,
    },
    RenameGroup {
        name: String,
    },
    /// Make the group's members exactly these people.
    SetGroupMembers {
        members: BTreeSet<String>,
    },
    DeleteGroup,
}

impl Action {
    /// The action's name for status, metrics and Events (no values).
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Update { .. } => "update",
            Action::Rename { .. } => "rename",
            Action::Adopt { .. } => "adopt",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Delete => "delete",
            Action::SetReferences { .. } => "set-references",
            Action::CreateGroup { .. } => "create-group",
            Action::RenameGroup { .. } => "rename-group",
            Action::SetGroupMembers { .. } => "set-group-members",
            Action::DeleteGroup => "delete-group",
        }
    }

    /// The phase the applier runs this step in: earlier phases finish before later ones start,
    /// and steps within one phase touch distinct entries (so they may run concurrently). Creates
    /// run in waves (managers first) so a report's create can name its new manager.
    pub fn phase(&self) -> u8 {
        match self {
            // Adoptions first: later steps find the adopted entry by its new anchor.
            Action::Adopt { .. } => 0,
            Action::Create { wave, .. } => (*wave).min(MAX_WAVE - 1) + 1,
            Action::Rename { .. } => MAX_WAVE + 1,
            Action::Update { .. } => MAX_WAVE + 2,
            Action::Enable => MAX_WAVE + 3,
            Action::Disable => MAX_WAVE + 4,
            Action::SetReferences { .. } => MAX_WAVE + 5,
            Action::CreateGroup { .. } | Action::RenameGroup { .. } => MAX_WAVE + 6,
            Action::SetGroupMembers { .. } => MAX_WAVE + 7,
            Action::DeleteGroup => MAX_WAVE + 8,
            // Last: references and memberships pointing at a deleted entry are gone by now.
            Action::Delete => MAX_WAVE + 9,
        }
    }

    /// Whether this step takes access away (what the guard counts).
    pub fn is_deprovision(&self) -> bool {
        matches!(self, Action::Disable | Action::Delete)
    }

    pub fn is_group(&self) -> bool {
        matches!(
            self,
            Action::CreateGroup { .. }
                | Action::RenameGroup { .. }
                | Action::SetGroupMembers { .. }
                | Action::DeleteGroup
        )
    }

    /// Names of the attributes this step writes (for the dry run: names, never values).
    pub fn attribute_names(&self) -> Vec<String> {
        match self {
            Action::Create {
                attributes,
                references,
                ..
            } => attributes
                .keys()
                .chain(references.keys())
                .cloned()
                .collect(),
            Action::Update { set } => set.keys().cloned().collect(),
            Action::SetReferences { set } => set.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// A person the plan could not handle (a mapping error); their entry is left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub anchor: String,
    pub reason: &'static str,
    pub message: String,
}

/// The plan: ordered steps, the deprovisions the guard holds, and per-person failures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub held: Vec<Step>,
    pub failures: Vec<Failure>,
    pub guard: GuardDecision,
    /// People seen in the source and how many of them are in scope.
    pub people: usize,
    pub in_scope: usize,
    /// Managed entries before the plan.
    pub managed: usize,
    /// A streamed cycle keeps the counts of its steps, not every step: then `steps` holds the
    /// deprovisions it made and the first few other steps.
    pub counted: Option<BTreeMap<&'static str, usize>>,
    /// Entries where PeopleSync keeps people that this plan leaves alone because they are not
    /// this object's.
    pub left_alone: LeftAlone,
}

/// Entries a plan leaves alone, by why (only directories that mark what they own count them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeftAlone {
    /// Holding a value in the anchor attribute without this object's mark (a brownfield
    /// `employeeID`): adoption candidates, or conflicts when a person's id is among them.
    pub unmarked: usize,
    /// Marked by another PeopleSync object.
    pub foreign: usize,
}

impl LeftAlone {
    /// Counts `unowned` by kind, leaving out those taken over (`taken`: their ids).
    pub fn count<'e>(
        marking: Option<&crate::directory::Marking>,
        unowned: impl IntoIterator<Item = &'e Entry>,
        taken: &dyn Fn(&str) -> bool,
    ) -> Self {
        let mut out = Self::default();
        let Some(marking) = marking else {
            return out;
        };
        for entry in unowned {
            if taken(&entry.id) {
                continue;
            }
            match marking.classify(&entry.attributes) {
                crate::directory::Unowned::Unmarked(_) => out.unmarked += 1,
                crate::directory::Unowned::Foreign => out.foreign += 1,
                crate::directory::Unowned::Plain => {}
            }
        }
        out
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// How many steps of each action.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        if let Some(counted) = &self.counted {
            return counted.clone();
        }
        let mut counts = BTreeMap::new();
        for step in &self.steps {
            *counts.entry(step.action.name()).or_default() += 1;
        }
        counts
    }
}

/// Plans one run. Deterministic: the same inputs give the same plan.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let index = Index::new(inputs.entries, inputs.groups);
    let mut people = people::plan_people(inputs, &index, false, None);
    let guard = guard::decide(inputs, &index, &people.steps);
    if matches!(guard, GuardDecision::Held(_)) {
        // Plan again holding every deprovision, so memberships and references keep describing
        // the entries as they stay.
        people = people::plan_people(inputs, &index, true, None);
    }
    let references = people::plan_references(inputs, &index, &mut people);
    let groups = if inputs.policy.directory.groups {
        groups::plan_groups(inputs, &index, &people)
    } else {
        Vec::new()
    };
    let mut steps = std::mem::take(&mut people.steps);
    steps.extend(references);
    steps.extend(groups);
    steps.sort_by(|a, b| (a.action.phase(), &a.anchor).cmp(&(b.action.phase(), &b.anchor)));
    let mut held = people.held;
    held.sort_by(|a, b| (a.action.phase(), &a.anchor).cmp(&(b.action.phase(), &b.anchor)));
    let taken: std::collections::HashSet<&str> = steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::Adopt { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let left_alone = LeftAlone::count(
        inputs.policy.directory.marking.as_ref(),
        inputs.unowned,
        &|id| taken.contains(id),
    );
    Plan {
        steps,
        held,
        failures: people.failures,
        guard,
        people: inputs.people.len(),
        in_scope: people.in_scope,
        managed: index.entries.len(),
        counted: None,
        left_alone,
    }
}

/// Lookups over the directory's current state.
pub(crate) struct Index<'a> {
    /// Managed entries by anchor (the first by id when an anchor repeats).
    pub entries: BTreeMap<&'a str, &'a Entry>,
    /// Entry id → anchor, exact and lower-cased (LDAP DNs compare case-insensitively).
    ids: HashMap<String, &'a str>,
    pub groups: BTreeMap<&'a str, &'a Group>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(entries: &'a [Entry], groups: &'a [Group]) -> Self {
        let mut by_anchor: BTreeMap<&str, &Entry> = BTreeMap::new();
        let mut ids = HashMap::with_capacity(entries.len() * 2);
        for entry in entries {
            if entry.anchor.is_empty() {
                continue;
            }
            let slot = by_anchor.entry(entry.anchor.as_str()).or_insert(entry);
            if entry.id < slot.id {
                *slot = entry;
            }
            ids.insert(entry.id.clone(), entry.anchor.as_str());
            ids.insert(entry.id.to_lowercase(), entry.anchor.as_str());
        }
        let mut by_group = BTreeMap::new();
        for group in groups {
            if !group.anchor.is_empty() {
                by_group.entry(group.anchor.as_str()).or_insert(group);
            }
        }
        Self {
            entries: by_anchor,
            ids,
            groups: by_group,
        }
    }

    /// The anchor of the managed entry with this id, if any.
    pub fn anchor_of(&self, id: &str) -> Option<&'a str> {
        self.ids
            .get(id)
            .or_else(|| self.ids.get(&id.to_lowercase()))
            .copied()
    }
}

/// `attributes[name]`, with LDAP's case-insensitive attribute names.
pub fn attribute_values<'a>(attributes: &'a Attributes, name: &str) -> Option<&'a Vec<String>> {
    attribute(attributes, name)
}

/// The attributes `person` maps to now, as the planner computes them (unique values against
/// every managed and unowned entry), for `explain`.
pub fn mapped_attributes(inputs: &Inputs<'_>, person: &Person) -> Result<Attributes, MappingError> {
    let index = Index::new(inputs.entries, inputs.groups);
    people::mapped(inputs, &index, person)
}

/// `attributes[name]`, with LDAP's case-insensitive attribute names.
pub(crate) fn attribute<'a>(attributes: &'a Attributes, name: &str) -> Option<&'a Vec<String>> {
    attributes.get(name).or_else(|| {
        attributes
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, values)| values)
    })
}

/// Today's date in UTC, for lifecycle decisions.
pub(crate) fn today(now: Timestamp) -> Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

#[cfg(test)]
pub(crate) mod tests;
