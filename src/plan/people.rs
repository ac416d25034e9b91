//! People: lifecycle and scope → the state each managed entry should be in, mapped attributes →
//! creates, renames and updates, and the references between entries (managers).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::directory::{Attributes, Entry, Unowned};
use crate::source::Person;
use crate::source::hollyhr::model::Lifecycle;

use super::{
    Action, Coverage, Deprovision, Failure, FutureStarters, Index, Inputs, OnLeave, Reason, Step,
    attribute,
};

/// The people part of a plan, and what later parts need to know about its outcome.
/// Anchors are borrowed from the inputs: a full cycle holds one of each per person.
#[derive(Debug, Default)]
pub(crate) struct PeoplePlan<'a> {
    pub steps: Vec<Step>,
    /// Deprovisions the guard holds (only when planned with `hold`).
    pub held: Vec<Step>,
    pub failures: Vec<Failure>,
    pub in_scope: usize,
    /// Every entry that exists once the plan is applied, and whether it is enabled.
    pub after: BTreeMap<&'a str, bool>,
    /// Entries whose id changes in this plan (created, renamed, moved): references to them must be
    /// rewritten even when the referenced person stays the same.
    pub changing_ids: BTreeSet<&'a str>,
    /// People of this run the plan provisions, with their manager and department as HR says.
    pub placed: BTreeMap<&'a str, Placement<'a>>,
    /// People of this run whose entry the plan decided on (not failures): their memberships and
    /// references are recomputed; everyone else's are kept.
    pub decided: BTreeSet<&'a str>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Placement<'a> {
    pub manager: Option<&'a str>,
    pub department: Option<&'a str>,
}

/// What one person's entry should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Desired {
    Provisioned { enabled: bool, reason: Reason },
    Deprovisioned(Reason),
    Absent,
}

/// The state a person's entry should be in, from scope, lifecycle and policy; `entry_enabled`
/// is the present entry's state (`None`: no entry).
pub(crate) fn desired(
    policy: &super::Policy,
    person: &Person,
    entry_enabled: Option<bool>,
    now: jiff::Timestamp,
) -> Desired {
    if !policy.scope.admits(person) {
        return Desired::Deprovisioned(Reason::OutOfScope);
    }
    let timed = policy.timing.lifecycle(person, now);
    match timed.lifecycle {
        Lifecycle::Active => Desired::Provisioned {
            enabled: true,
            reason: if entry_enabled == Some(false) {
                Reason::Reactivated
            } else {
                Reason::New
            },
        },
        Lifecycle::FutureStarter => match (policy.future_starters, entry_enabled) {
            (FutureStarters::Skip, None) => Desired::Absent,
            // Before the provisioning day (`provisionBefore`): no account yet.
            (_, None) if timed.too_early => Desired::Absent,
            _ => Desired::Provisioned {
                enabled: false,
                reason: Reason::FutureStarter,
            },
        },
        Lifecycle::Leaver => Desired::Deprovisioned(Reason::Leaver),
        Lifecycle::OnLeave => Desired::Provisioned {
            enabled: policy.on_leave == OnLeave::Keep,
            reason: Reason::OnLeave,
        },
    }
}

/// Says whether a unique value (attribute and value as given) belongs to an entry outside the
/// planned set, other than `anchor`'s (a streamed cycle plans a part of the directory at a time).
pub(crate) type Elsewhere<'e> = &'e dyn Fn(&str, &str, &str) -> bool;

/// Unique values in use: attribute (lower case) → value (lower case) → owner anchor.
struct Taken<'a, 'e> {
    owned: HashMap<String, HashMap<String, String>>,
    reserved: &'a super::Reserved,
    elsewhere: Option<Elsewhere<'e>>,
}

impl<'a, 'e> Taken<'a, 'e> {
    fn new(inputs: &Inputs<'a>, index: &Index<'_>, elsewhere: Option<Elsewhere<'e>>) -> Self {
        let mut taken: HashMap<String, HashMap<String, String>> = HashMap::new();
        for (name, rule) in inputs.mapping.rules() {
            if !rule.unique {
                continue;
            }
            let values = taken.entry(name.to_lowercase()).or_default();
            for (anchor, entry) in &index.entries {
                for value in attribute(&entry.attributes, name).into_iter().flatten() {
                    values.insert(value.to_lowercase(), (*anchor).to_owned());
                }
            }
        }
        Self {
            owned: taken,
            reserved: inputs.reserved,
            elsewhere,
        }
    }

    fn is_taken_by_other(&self, anchor: &str, attribute: &str, value: &str) -> bool {
        if self
            .elsewhere
            .is_some_and(|elsewhere| elsewhere(anchor, attribute, value))
        {
            return true;
        }
        let attribute = attribute.to_lowercase();
        let value = value.to_lowercase();
        self.reserved
            .get(&attribute)
            .is_some_and(|values| values.contains(&value))
            || self
                .owned
                .get(&attribute)
                .and_then(|values| values.get(&value))
                .is_some_and(|owner| owner != anchor)
    }

    fn claim(&mut self, anchor: &str, attributes: &Attributes) {
        for (name, values) in self.owned.iter_mut() {
            if let Some(new) = attribute(attributes, name) {
                for value in new {
                    values.insert(value.to_lowercase(), anchor.to_owned());
                }
            }
        }
    }
}

pub(crate) fn same_values(a: &[String], b: &[String]) -> bool {
    if a == b {
        return true;
    }
    if a.len() != b.len() {
        return false;
    }
    let mut a: Vec<&String> = a.iter().collect();
    let mut b: Vec<&String> = b.iter().collect();
    a.sort();
    b.sort();
    a == b
}

/// The source's people, one per id (its most recently updated version), in the order the source
/// listed them (by first appearance). Unique values are handed out in this order, so a run split
/// into chunks, a dry run in one piece and a run resumed after a crash all name everyone alike:
/// what a person gets never depends on where a chunk ended or when a process died.
fn unique_people(people: &[Person]) -> Vec<&Person> {
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(people.len());
    let mut out: Vec<&Person> = Vec::with_capacity(people.len());
    for person in people {
        match position.get(person.id.as_str()) {
            Some(&at) => {
                if person.updated_at > out[at].updated_at {
                    out[at] = person;
                }
            }
            None => {
                position.insert(person.id.as_str(), out.len());
                out.push(person);
            }
        }
    }
    out
}

pub(crate) fn plan_people<'a>(
    inputs: &Inputs<'a>,
    index: &Index<'a>,
    hold: bool,
    elsewhere: Option<Elsewhere<'_>>,
) -> PeoplePlan<'a> {
    let policy = inputs.policy;
    let mut out = PeoplePlan {
        after: index
            .entries
            .iter()
            .map(|(anchor, entry)| (*anchor, entry.enabled))
            .collect(),
        ..PeoplePlan::default()
    };
    let mut taken = Taken::new(inputs, index, elsewhere);
    let mut seen = BTreeSet::new();
    let adoptions = adoptions(inputs, index);

    for person in unique_people(inputs.people) {
        let anchor = person.id.as_str();
        seen.insert(anchor);
        let entry = index.entries.get(anchor).copied();
        let in_scope = policy.scope.admits(person);
        if in_scope {
            out.in_scope += 1;
        }
        let desired = desired(policy, person, entry.map(|e| e.enabled), inputs.now);
        match desired {
            Desired::Absent => {}
            Desired::Deprovisioned(reason) => {
                out.decided.insert(anchor);
                if let Some(entry) = entry {
                    deprovision(inputs, &mut out, &entry.anchor, entry.enabled, reason, hold);
                } else if let Some(Ok(found)) = adoptions.get(anchor)
                    && found.claim
                {
                    // An entry an earlier version made for a leaver: marked, then deprovisioned
                    // as it would have been.
                    let unowned = &inputs.unowned[found.index];
                    out.steps.push(Step {
                        anchor: anchor.to_owned(),
                        reason: Reason::Claimed,
                        action: Action::Adopt {
                            id: unowned.id.clone(),
                        },
                    });
                    deprovision(inputs, &mut out, anchor, unowned.enabled, reason, hold);
                }
            }
            Desired::Provisioned { enabled, reason } => {
                // Without an entry of its own, a person may adopt a matching unowned one.
                let adopted: Option<(Entry, bool)> = match (entry, adoptions.get(anchor)) {
                    (None, Some(Ok(found))) => {
                        let mut entry = inputs.unowned[found.index].clone();
                        entry.anchor = anchor.to_owned();
                        Some((entry, found.claim))
                    }
                    (None, Some(Err(message))) => {
                        out.failures.push(Failure {
                            anchor: anchor.to_owned(),
                            reason: "AmbiguousMatch",
                            message: message.clone(),
                        });
                        continue;
                    }
                    _ => None,
                };
                let entry = entry.or(adopted.as_ref().map(|(entry, _)| entry));
                let current = entry.map(|e| &e.attributes);
                let mapped = inputs.mapping.map(person, current, &|attribute, value| {
                    taken.is_taken_by_other(anchor, attribute, value)
                });
                let mapped = match mapped {
                    Ok(mapped) => mapped.attributes,
                    Err(error) => {
                        out.failures.push(Failure {
                            anchor: anchor.to_owned(),
                            reason: "MappingFailed",
                            message: error.to_string(),
                        });
                        continue;
                    }
                };
                taken.claim(anchor, &mapped);
                out.decided.insert(anchor);
                out.placed.insert(
                    anchor,
                    Placement {
                        manager: person.manager.as_ref().map(|m| m.id.as_str()),
                        department: person.department.as_ref().map(|d| d.id.as_str()),
                    },
                );
                out.after.insert(anchor, enabled);
                match entry {
                    None => {
                        out.changing_ids.insert(anchor);
                        out.steps.push(Step {
                            anchor: anchor.to_owned(),
                            reason,
                            action: Action::Create {
                                attributes: mapped,
                                enabled,
                                references: BTreeMap::new(),
                                wave: 0,
                            },
                        });
                    }
                    Some(entry) => {
                        if let Some((_, claim)) = &adopted {
                            out.steps.push(Step {
                                anchor: anchor.to_owned(),
                                reason: if *claim {
                                    Reason::Claimed
                                } else {
                                    Reason::Adopted
                                },
                                action: Action::Adopt {
                                    id: entry.id.clone(),
                                },
                            });
                        }
                        let wanted = Wanted {
                            anchor,
                            mapped: &mapped,
                            enabled,
                            reason,
                        };
                        update(inputs, &mut out, entry, wanted, hold)
                    }
                }
            }
        }
    }

    if inputs.coverage == Coverage::Full {
        for (anchor, entry) in &index.entries {
            if !seen.contains(anchor) {
                out.decided.insert(*anchor);
                deprovision(
                    inputs,
                    &mut out,
                    &entry.anchor,
                    entry.enabled,
                    Reason::Vanished,
                    hold,
                );
            }
        }
    }
    out
}

/// An unowned entry a person takes over: its index in `inputs.unowned`, and whether it is
/// claimed (an entry an earlier version made, holding the person's id without the mark) rather
/// than adopted by the adoption rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub index: usize,
    pub claim: bool,
}

/// Which unowned entry each person without an entry would take over, or why none can be
/// chosen. On an upgrade (`policy.claim_unmarked`), an unmarked entry holding the person's id
/// in the anchor attribute is claimed. Otherwise adoption attributes are tried in the
/// configured order; the first one with matches decides. A match is only taken when it is
/// unique both ways: one entry for the person, and no other person matching that entry. An
/// entry another PeopleSync object marked is never taken. Nothing is ever guessed.
fn adoptions(inputs: &Inputs<'_>, index: &Index<'_>) -> HashMap<String, Result<Found, String>> {
    let attributes = &inputs.policy.adoption;
    let marking = inputs.policy.directory.marking.as_ref();
    let claiming = inputs.policy.claim_unmarked && marking.is_some();
    let mut found: HashMap<String, Result<Found, String>> = HashMap::new();
    if (attributes.is_empty() && !claiming) || inputs.unowned.is_empty() {
        return found;
    }
    let kinds: Vec<Unowned> = inputs
        .unowned
        .iter()
        .map(|entry| marking.map_or(Unowned::Plain, |m| m.classify(&entry.attributes)))
        .collect();
    // anchor value → unmarked entries holding it (claims on an upgrade)
    let mut by_anchor: HashMap<&str, Vec<usize>> = HashMap::new();
    if claiming {
        for (i, kind) in kinds.iter().enumerate() {
            if let Unowned::Unmarked(value) = kind {
                by_anchor.entry(value.as_str()).or_default().push(i);
            }
        }
    }
    // attribute → lower-cased value → unowned entries holding it
    let mut by_value: HashMap<&str, HashMap<String, Vec<usize>>> = HashMap::new();
    for name in attributes {
        let values = by_value.entry(name.as_str()).or_default();
        for (i, entry) in inputs.unowned.iter().enumerate() {
            if kinds[i] == Unowned::Foreign {
                continue;
            }
            for value in attribute(&entry.attributes, name).into_iter().flatten() {
                values.entry(value.to_lowercase()).or_default().push(i);
            }
        }
    }
    for person in unique_people(inputs.people) {
        if index.entries.contains_key(person.id.as_str()) {
            continue;
        }
        match by_anchor.get(person.id.as_str()).map(Vec::as_slice) {
            Some([one]) => {
                found.insert(
                    person.id.clone(),
                    Ok(Found {
                        index: *one,
                        claim: true,
                    }),
                );
                continue;
            }
            Some(many) if many.len() > 1 => {
                found.insert(
                    person.id.clone(),
                    Err(format!(
                        "{} unmarked entries hold this person's id: remove all but one, and the next cycle claims it",
                        many.len()
                    )),
                );
                continue;
            }
            _ => {}
        }
        if attributes.is_empty() {
            continue;
        }
        // The person's own values, before uniqueness is applied (`first.last`, not `first.last2`).
        let Ok(mapped) = inputs.mapping.map(person, None, &|_, _| false) else {
            continue;
        };
        for name in attributes {
            let Some(value) = attribute(&mapped.attributes, name).and_then(|v| v.first()) else {
                continue;
            };
            match by_value[name.as_str()]
                .get(&value.to_lowercase())
                .map(Vec::as_slice)
            {
                None | Some([]) => continue,
                Some([one]) => {
                    found.insert(
                        person.id.clone(),
                        Ok(Found {
                            index: *one,
                            claim: false,
                        }),
                    );
                }
                Some(many) => {
                    found.insert(
                        person.id.clone(),
                        Err(format!(
                            "{} entries PeopleSync does not own match by {name}: adopt one by hand (set its anchor and mark) or remove the others",
                            many.len()
                        )),
                    );
                }
            }
            break;
        }
    }
    // An entry two people match is nobody's.
    let mut claims: HashMap<usize, usize> = HashMap::new();
    for result in found.values().flatten() {
        *claims.entry(result.index).or_default() += 1;
    }
    for result in found.values_mut() {
        if let Ok(Found { index, .. }) = result
            && claims[index] > 1
        {
            *result = Err(format!(
                "{} people match the same entry PeopleSync does not own: it is adopted by nobody",
                claims[index]
            ));
        }
    }
    found
}

/// One person's mapped attributes, with unique values checked as the planner checks them.
pub(crate) fn mapped(
    inputs: &Inputs<'_>,
    index: &Index<'_>,
    person: &Person,
) -> Result<Attributes, crate::plan::MappingError> {
    let taken = Taken::new(inputs, index, None);
    let current = index.entries.get(person.id.as_str()).map(|e| &e.attributes);
    inputs
        .mapping
        .map(person, current, &|attribute, value| {
            taken.is_taken_by_other(&person.id, attribute, value)
        })
        .map(|m| m.attributes)
}

/// Steps that bring an existing entry to its mapped attributes and enabled state.
/// What one person's existing entry should become.
struct Wanted<'a, 'm> {
    /// The person's id (an adopted entry is a copy, so the anchor comes from the person).
    anchor: &'a str,
    mapped: &'m Attributes,
    enabled: bool,
    reason: Reason,
}

fn update<'a>(
    inputs: &Inputs<'_>,
    out: &mut PeoplePlan<'a>,
    entry: &Entry,
    wanted: Wanted<'a, '_>,
    hold: bool,
) {
    let Wanted {
        anchor,
        mapped,
        enabled,
        reason,
    } = wanted;
    let traits = &inputs.policy.directory;
    let rdn = traits.rdn_attribute.as_deref();
    if let Some(rdn) = rdn {
        let new = attribute(mapped, rdn).and_then(|v| v.first());
        let old = attribute(&entry.attributes, rdn).and_then(|v| v.first());
        if let Some(new) = new
            && Some(new) != old
        {
            if traits.rename_changes_id {
                out.changing_ids.insert(anchor);
            }
            out.steps.push(Step {
                anchor: anchor.to_owned(),
                reason: Reason::Renamed,
                action: Action::Rename {
                    new_rdn_value: new.clone(),
                },
            });
        }
    }
    let mut set = Attributes::new();
    for name in inputs.mapping.rules().keys() {
        if rdn.is_some_and(|rdn| rdn.eq_ignore_ascii_case(name)) {
            continue;
        }
        let desired = attribute(mapped, name).map(Vec::as_slice).unwrap_or(&[]);
        let current = attribute(&entry.attributes, name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if !same_values(desired, current) {
            set.insert(name.clone(), desired.to_vec());
        }
    }
    if !set.is_empty() {
        out.steps.push(Step {
            anchor: anchor.to_owned(),
            reason: Reason::Changed,
            action: Action::Update { set },
        });
    }
    match (enabled, entry.enabled) {
        (true, false) => {
            if traits.disable_changes_id {
                out.changing_ids.insert(anchor);
            }
            out.steps.push(Step {
                anchor: anchor.to_owned(),
                reason: Reason::Reactivated,
                action: Action::Enable,
            });
        }
        (false, true) => {
            // A start date moved into the future: the account waits, disabled.
            let step = Step {
                anchor: anchor.to_owned(),
                reason,
                action: Action::Disable,
            };
            if hold {
                out.after.insert(anchor, true);
                out.held.push(step);
            } else {
                if traits.disable_changes_id {
                    out.changing_ids.insert(anchor);
                }
                out.steps.push(step);
            }
        }
        _ => {}
    }
}

/// The step that takes an entry's access away, per `deprovision.action` (none when it is
/// disabled already and not due for deletion).
pub(crate) fn deprovision_step(
    inputs: &Inputs<'_>,
    anchor: &str,
    enabled: bool,
    reason: Reason,
) -> Option<Step> {
    let (action, reason) = match inputs.policy.deprovision {
        Deprovision::Delete => (Action::Delete, reason),
        Deprovision::Disable | Deprovision::DisableThenDelete { .. } if enabled => {
            (Action::Disable, reason)
        }
        Deprovision::Disable => return None,
        Deprovision::DisableThenDelete { delay } => {
            let due = inputs
                .disabled_since
                .get(anchor)
                .and_then(|since| since.checked_add(delay).ok())
                .is_some_and(|due| due <= inputs.now);
            if !due {
                return None;
            }
            (Action::Delete, Reason::DelayElapsed)
        }
    };
    Some(Step {
        anchor: anchor.to_owned(),
        reason,
        action,
    })
}

/// The steps that take an entry's access away, per `deprovision.action`.
fn deprovision<'a>(
    inputs: &Inputs<'_>,
    out: &mut PeoplePlan<'a>,
    anchor: &'a str,
    enabled: bool,
    reason: Reason,
    hold: bool,
) {
    let traits = &inputs.policy.directory;
    let Some(step) = deprovision_step(inputs, anchor, enabled, reason) else {
        return;
    };
    if hold {
        // Held: the entry stays as it is, memberships included.
        out.decided.remove(anchor);
        out.held.push(step);
        return;
    }
    match step.action {
        Action::Delete => {
            out.after.remove(anchor);
        }
        _ => {
            out.after.insert(anchor, false);
            if traits.disable_changes_id {
                out.changing_ids.insert(anchor);
            }
        }
    }
    out.steps.push(step);
}

/// Manager references: for people of this run, HR's manager when that person has an entry after
/// the plan; for everyone else, the current manager while it still exists. A reference is
/// rewritten when the person changes or when the referenced entry's id changes. A new entry whose
/// manager already exists (and keeps its id) gets the reference with its create.
pub(crate) fn plan_references(
    inputs: &Inputs<'_>,
    index: &Index<'_>,
    people: &mut PeoplePlan,
) -> Vec<Step> {
    let Some(manager_attribute) = inputs.policy.directory.manager_attribute.as_deref() else {
        return Vec::new();
    };
    let mut steps = Vec::new();
    for &anchor in people.after.keys() {
        let entry = index.entries.get(anchor);
        let current_value = entry
            .and_then(|e| attribute(&e.attributes, manager_attribute))
            .and_then(|values| values.first());
        let current = current_value.and_then(|value| index.anchor_of(value));
        let desired = match people.placed.get(anchor) {
            Some(placement) => placement.manager,
            None => current,
        }
        .filter(|manager| *manager != anchor && people.after.contains_key(*manager));
        let foreign = current_value.is_some() && current.is_none();
        let stale = desired.is_some_and(|m| people.changing_ids.contains(m));
        let keep_foreign = foreign && !people.placed.contains_key(anchor);
        if (desired == current && !stale) || (keep_foreign && desired.is_none()) {
            continue;
        }
        let set = BTreeMap::from([(manager_attribute.to_owned(), desired.map(str::to_owned))]);
        steps.push(Step {
            anchor: anchor.to_owned(),
            reason: if people.placed.contains_key(anchor) && desired != current {
                Reason::Changed
            } else {
                Reason::Reference
            },
            action: Action::SetReferences { set },
        });
    }
    // Creates run in waves, managers before their reports; a reference to an entry that exists
    // already (and keeps its id) or is created in an earlier wave is written with the create:
    // one write instead of two.
    let mut creates: HashMap<String, usize> = HashMap::new();
    for (i, step) in people.steps.iter().enumerate() {
        if matches!(step.action, Action::Create { .. }) {
            creates.insert(step.anchor.clone(), i);
        }
    }
    let waves = waves(&creates, &people.placed);
    for (anchor, wave) in &waves {
        if let Action::Create { wave: w, .. } = &mut people.steps[creates[anchor]].action {
            *w = *wave;
        }
    }
    let foldable = |anchor: &str, target: &str| match (waves.get(target), waves.get(anchor)) {
        (Some(target_wave), Some(wave)) => target_wave < wave,
        (None, _) => index.entries.contains_key(target) && !people.changing_ids.contains(target),
        _ => false,
    };
    let mut rest = Vec::new();
    for step in steps {
        let Action::SetReferences { set } = &step.action else {
            continue;
        };
        let fold = creates.get(step.anchor.as_str()).copied().filter(|_| {
            set.values()
                .all(|t| t.as_deref().is_none_or(|t| foldable(&step.anchor, t)))
        });
        match fold {
            Some(i) => {
                if let Action::Create { references, .. } = &mut people.steps[i].action {
                    references.extend(set.clone().into_iter().filter(|(_, t)| t.is_some()));
                }
            }
            None => rest.push(step),
        }
    }
    rest
}

/// The wave of each new entry: 0 unless its manager is created in this plan too, then one more
/// than the manager's (cycles and chains deeper than [`super::MAX_WAVE`] stay where they are and
/// get their reference in a later step).
pub(crate) fn waves(
    creates: &HashMap<String, usize>,
    placed: &BTreeMap<&str, Placement<'_>>,
) -> BTreeMap<String, u8> {
    let mut waves: BTreeMap<String, u8> = BTreeMap::new();
    // In anchor order: where managers form a cycle, who goes first must not depend on hashing.
    let mut anchors: Vec<&String> = creates.keys().collect();
    anchors.sort();
    for anchor in anchors {
        // Walk up the chain of new managers (bounded), then assign on the way back down.
        let mut chain = vec![anchor.as_str()];
        let base = loop {
            let current = chain[chain.len() - 1];
            if let Some(known) = waves.get(current) {
                let known = *known;
                chain.pop();
                break known;
            }
            let manager = placed
                .get(current)
                .and_then(|p| p.manager)
                .filter(|m| creates.contains_key(*m));
            match manager {
                Some(m) if !chain.contains(&m) && chain.len() <= super::MAX_WAVE as usize => {
                    chain.push(m)
                }
                _ => {
                    waves.insert(current.to_owned(), 0);
                    chain.pop();
                    break 0;
                }
            }
        };
        let mut wave = base;
        for anchor in chain.into_iter().rev() {
            wave = wave.saturating_add(1).min(super::MAX_WAVE);
            waves.insert(anchor.to_owned(), wave);
        }
    }
    waves
}
