//! Groups: one per department (org unit of type department), named after it, whose members are
//! exactly the enabled entries of the people in that department.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;

use crate::source::OrgUnit;
use crate::source::hollyhr::model::OrgUnitType;

use super::people::PeoplePlan;
use super::{Action, Index, Inputs, Reason, Step, today};

/// `name` cut to `max` characters (and its trailing spaces then dropped), borrowed.
pub(crate) fn fitted(name: &str, max: Option<usize>) -> &str {
    match max.and_then(|max| name.char_indices().nth(max)) {
        Some((end, _)) => name[..end].trim_end(),
        None => name,
    }
}

/// The groups that should exist: anchor → name of each active department, cut to `max`
/// characters when the directory has a limit.
pub(crate) fn departments(
    units: &[OrgUnit],
    today: Date,
    max: Option<usize>,
) -> BTreeMap<&str, &str> {
    units
        .iter()
        .filter(|unit| {
            unit.kind == OrgUnitType::Department
                && !unit.is_archived
                && unit.active_from <= today
                && unit.active_to.is_none_or(|to| to >= today)
        })
        .map(|unit| (unit.id.as_str(), fitted(&unit.name, max)))
        .collect()
}

pub(crate) fn plan_groups<'a>(
    inputs: &Inputs<'a>,
    index: &Index<'a>,
    people: &PeoplePlan<'a>,
) -> Vec<Step> {
    let today = today(inputs.now);
    // Anchor → name of every group that should exist.
    let desired: BTreeMap<&str, &str> = match inputs.org_units {
        Some(units) => departments(units, today, inputs.policy.directory.group_name_max),
        // Without org units, the groups stay as they are; only memberships move.
        None => index
            .groups
            .iter()
            .map(|(anchor, group)| (*anchor, group.name.as_str()))
            .collect(),
    };

    // Memberships: people this run decided on are placed by their department; everyone else
    // keeps the groups they are in, while their entry stays enabled.
    let enabled = |anchor: &str| people.after.get(anchor).copied().unwrap_or(false);
    // Member anchors, borrowed: owned strings only for the groups whose step needs them.
    let mut members: BTreeMap<&str, BTreeSet<&'a str>> = desired
        .keys()
        .map(|anchor| (*anchor, BTreeSet::new()))
        .collect();
    for (anchor, group) in &index.groups {
        let Some(set) = members.get_mut(anchor) else {
            continue;
        };
        for id in &group.members {
            if let Some(member) = index.anchor_of(id)
                && !people.decided.contains(member)
                && enabled(member)
            {
                set.insert(member);
            }
        }
    }
    for (anchor, placement) in &people.placed {
        if let Some(department) = placement.department
            && enabled(anchor)
            && let Some(set) = members.get_mut(department)
        {
            set.insert(*anchor);
        }
    }

    let mut steps = Vec::new();
    for (anchor, name) in &desired {
        let wanted = members.remove(anchor).unwrap_or_default();
        let Some(group) = index.groups.get(anchor) else {
            steps.push(Step {
                anchor: (*anchor).to_owned(),
                reason: Reason::OrgUnit,
                action: Action::CreateGroup {
                    name: (*name).to_owned(),
                    members: owned(&wanted),
                },
            });
            continue;
        };
        if group.name != *name {
            steps.push(Step {
                anchor: (*anchor).to_owned(),
                reason: Reason::OrgUnit,
                action: Action::RenameGroup {
                    name: (*name).to_owned(),
                },
            });
        }
        let current: Vec<Option<&str>> =
            group.members.iter().map(|id| index.anchor_of(id)).collect();
        let exact = current.len() == wanted.len()
            && current
                .iter()
                .all(|member| member.is_some_and(|m| wanted.contains(m)));
        let moved = wanted.iter().any(|m| people.changing_ids.contains(m));
        if !exact || moved {
            steps.push(set_members(anchor, exact, owned(&wanted)));
        }
    }
    if inputs.org_units.is_some() {
        for anchor in index.groups.keys() {
            if !desired.contains_key(anchor) {
                steps.push(Step {
                    anchor: (*anchor).to_owned(),
                    reason: Reason::OrgUnit,
                    action: Action::DeleteGroup,
                });
            }
        }
    }
    steps
}

/// Makes a group's members exactly `members`: a changed membership, or (`exact`) the same one
/// whose ids moved.
pub(crate) fn set_members(anchor: &str, exact: bool, members: BTreeSet<String>) -> Step {
    Step {
        anchor: anchor.to_owned(),
        reason: if exact {
            Reason::Reference
        } else {
            Reason::Changed
        },
        action: Action::SetGroupMembers { members },
    }
}

fn owned(members: &BTreeSet<&str>) -> BTreeSet<String> {
    members.iter().map(|m| (*m).to_owned()).collect()
}
