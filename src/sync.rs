//! The sync engine's I/O half: read the source and the directory, plan (pure, in [`crate::plan`]),
//! apply. [`apply`] is the one writer of directory changes.

pub mod apply;
pub mod engine;
pub mod spec;
pub mod stream;

use futures::TryStreamExt;

pub use apply::{Aborted, Applied, Ids, apply};

use crate::directory::{Directory, DirectoryTraits, Entry, Group};
use crate::plan::{Action, Mapping, Plan, Reserved};

/// The directory as the planner needs it: managed entries and groups, and the entries
/// PeopleSync does not own.
#[derive(Debug, Clone, Default)]
pub struct DirectorySnapshot {
    pub entries: Vec<Entry>,
    pub groups: Vec<Group>,
    /// Entries without an anchor where PeopleSync keeps people (candidates for adoption).
    pub unowned: Vec<Entry>,
    /// Their unique values, lower-cased (never given to anyone else).
    pub reserved: Reserved,
}

impl DirectorySnapshot {
    pub async fn read<D: Directory>(
        directory: &D,
        mapping: &Mapping,
        groups: bool,
    ) -> Result<Self, D::Error> {
        let (entries, unowned): (Vec<Entry>, Vec<Entry>) = directory
            .everyone()
            .try_collect::<Vec<Entry>>()
            .await?
            .into_iter()
            .partition(|e| !e.anchor.is_empty());
        let groups = if groups {
            directory.groups().try_collect().await?
        } else {
            Vec::new()
        };
        let reserved = reserved(mapping, &unowned);
        Ok(Self {
            entries,
            groups,
            unowned,
            reserved,
        })
    }

    pub fn ids(&self) -> Ids {
        Ids::from_listing(&self.entries, &self.groups)
    }

    /// This snapshot as the directory is after `plan` was applied in full (no step failed), with
    /// `ids` as the applier left them; what a fresh read would give for what PeopleSync wrote.
    /// Returns false when a step cannot be mirrored exactly (an adoption changes the reserved
    /// values; a reference to an unknown id): the caller then drops the snapshot and reads anew.
    pub fn absorb(&mut self, plan: &Plan, ids: &Ids, traits: &DirectoryTraits) -> bool {
        let person_id = |anchor: &str| ids.people.get(anchor).cloned();
        for step in &plan.steps {
            let anchor = step.anchor.as_str();
            let position = self.entries.iter().position(|e| e.anchor == anchor);
            match &step.action {
                Action::Create {
                    attributes,
                    enabled,
                    references,
                    ..
                } => {
                    let Some(id) = person_id(anchor) else {
                        return false;
                    };
                    let mut entry = Entry {
                        id,
                        anchor: anchor.to_owned(),
                        attributes: attributes.clone(),
                        enabled: *enabled,
                    };
                    if !set_references(&mut entry, references, ids) {
                        return false;
                    }
                    self.entries.push(entry);
                }
                Action::Update { set } => {
                    let Some(entry) = position.map(|i| &mut self.entries[i]) else {
                        return false;
                    };
                    for (name, values) in set {
                        set_attribute(&mut entry.attributes, name, values.clone());
                    }
                }
                Action::Rename { new_rdn_value } => {
                    let (Some(entry), Some(id), Some(rdn)) = (
                        position.map(|i| &mut self.entries[i]),
                        person_id(anchor),
                        traits.rdn_attribute.as_deref(),
                    ) else {
                        return false;
                    };
                    entry.id = id;
                    set_attribute(&mut entry.attributes, rdn, vec![new_rdn_value.clone()]);
                }
                Action::Disable | Action::Enable => {
                    let (Some(entry), Some(id)) =
                        (position.map(|i| &mut self.entries[i]), person_id(anchor))
                    else {
                        return false;
                    };
                    entry.id = id;
                    entry.enabled = matches!(step.action, Action::Enable);
                }
                Action::Delete => {
                    if let Some(i) = position {
                        self.entries.remove(i);
                    }
                }
                // The adopted entry's values leave `reserved`, which only a fresh read recomputes.
                Action::Adopt { .. } => return false,
                Action::SetReferences { set } => {
                    let Some(entry) = position.map(|i| &mut self.entries[i]) else {
                        return false;
                    };
                    if !set_references(entry, set, ids) {
                        return false;
                    }
                }
                Action::CreateGroup { name, members } => {
                    let Some(id) = ids.groups.get(anchor).cloned() else {
                        return false;
                    };
                    let Some(members) = member_ids(members, ids) else {
                        return false;
                    };
                    self.groups.push(Group {
                        id,
                        anchor: anchor.to_owned(),
                        name: name.clone(),
                        members,
                    });
                }
                Action::RenameGroup { name } => {
                    let (Some(group), Some(id)) = (
                        self.groups.iter_mut().find(|g| g.anchor == anchor),
                        ids.groups.get(anchor),
                    ) else {
                        return false;
                    };
                    group.id = id.clone();
                    group.name = name.clone();
                }
                Action::SetGroupMembers { members } => {
                    let (Some(group), Some(members)) = (
                        self.groups.iter_mut().find(|g| g.anchor == anchor),
                        member_ids(members, ids),
                    ) else {
                        return false;
                    };
                    group.members = members;
                }
                Action::DeleteGroup => self.groups.retain(|g| g.anchor != anchor),
            }
        }
        true
    }
}

/// The unique values of entries PeopleSync does not own, lower-cased (never given to anyone).
pub(crate) fn reserved(mapping: &Mapping, unowned: &[Entry]) -> Reserved {
    let mut reserved = Reserved::new();
    for (name, rule) in mapping.rules() {
        if !rule.unique {
            continue;
        }
        let values = reserved.entry(name.to_lowercase()).or_default();
        for entry in unowned {
            for value in crate::plan::attribute_values(&entry.attributes, name)
                .into_iter()
                .flatten()
            {
                values.insert(value.to_lowercase());
            }
        }
    }
    reserved
}

/// Replaces one attribute (LDAP names compare case-insensitively); no values removes it.
pub(crate) fn set_attribute(
    attributes: &mut crate::directory::Attributes,
    name: &str,
    values: Vec<String>,
) {
    attributes.retain(|key, _| !key.eq_ignore_ascii_case(name));
    if !values.is_empty() {
        attributes.insert(name.to_owned(), values);
    }
}

/// Reference attributes as written: the target's id, or removed.
fn set_references(
    entry: &mut Entry,
    references: &std::collections::BTreeMap<String, Option<String>>,
    ids: &Ids,
) -> bool {
    for (name, target) in references {
        let values = match target {
            Some(target) => match ids.people.get(target) {
                Some(id) => vec![id.clone()],
                None => return false,
            },
            None => Vec::new(),
        };
        set_attribute(&mut entry.attributes, name, values);
    }
    true
}

fn member_ids(
    anchors: &std::collections::BTreeSet<String>,
    ids: &Ids,
) -> Option<std::collections::BTreeSet<String>> {
    anchors
        .iter()
        .map(|anchor| ids.people.get(anchor).cloned())
        .collect()
}
