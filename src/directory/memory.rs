//! An in-memory [`Directory`] for unit tests of the planner and the applier: it enforces what the
//! real backends enforce (the anchor guard, unique ids) and can behave like LDAP (ids follow the
//! RDN value and move to a disabled OU) or like SCIM (stable ids).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use futures::StreamExt;
use futures::stream::BoxStream;

use super::{
    Attributes, Change, Directory, DirectoryError, DirectoryTraits, Entry, Group, GroupChange,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("entry {0} is not owned by PeopleSync")]
    NotOwned(String),
    #[error("entry {0} already exists")]
    Exists(String),
    #[error("entry {0} does not exist")]
    Missing(String),
    #[error("the schema rejects the entry for {0}")]
    Rejected(String),
    #[error("the directory is unavailable")]
    Unavailable,
}

impl DirectoryError for MemoryError {
    fn reason(&self) -> &'static str {
        match self {
            MemoryError::NotOwned(_) => "EntryNotOwned",
            MemoryError::Exists(_) => "EntryExists",
            MemoryError::Missing(_) => "EntryMissing",
            MemoryError::Rejected(_) => "SchemaViolation",
            MemoryError::Unavailable => "DirectoryUnreachable",
        }
    }

    fn is_per_entry(&self) -> bool {
        !matches!(self, MemoryError::Unavailable)
    }
}

/// An entry as stored; `anchor: None` is an entry PeopleSync does not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub anchor: Option<String>,
    pub attributes: Attributes,
    pub enabled: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Stored>,
    groups: BTreeMap<String, Group>,
    next: u64,
    writes: u64,
}

#[derive(Debug, Default)]
pub struct MemoryDirectory {
    /// LDAP-like: ids are `<rdn>=<value>` (`,disabled` appended while disabled).
    rdn: Option<String>,
    moves_on_disable: bool,
    /// Creates for these anchors fail with a schema violation.
    pub reject: BTreeSet<String>,
    /// Every operation fails with a directory-wide error.
    pub unavailable: bool,
    state: Mutex<State>,
}

impl MemoryDirectory {
    /// Stable generated ids, like SCIM.
    pub fn scim_like() -> Self {
        Self::default()
    }

    /// Ids follow the RDN value; disabling moves the entry when `moves_on_disable`.
    pub fn ldap_like(rdn: &str, moves_on_disable: bool) -> Self {
        Self {
            rdn: Some(rdn.to_owned()),
            moves_on_disable,
            ..Self::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores an entry directly (e.g. one PeopleSync does not own).
    pub fn insert(&self, id: &str, stored: Stored) {
        self.state().entries.insert(id.to_owned(), stored);
    }

    /// Everything stored, owned or not.
    pub fn snapshot(&self) -> BTreeMap<String, Stored> {
        self.state().entries.clone()
    }

    pub fn group_snapshot(&self) -> BTreeMap<String, Group> {
        self.state().groups.clone()
    }

    /// Writes so far (applied changes).
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    fn id_for(&self, state: &mut State, attributes: &Attributes, enabled: bool) -> String {
        match &self.rdn {
            Some(rdn) => {
                let value = attributes
                    .get(rdn)
                    .and_then(|v| v.first())
                    .cloned()
                    .unwrap_or_default();
                if self.moves_on_disable && !enabled {
                    format!("{rdn}={value},disabled")
                } else {
                    format!("{rdn}={value}")
                }
            }
            None => {
                state.next += 1;
                format!("id-{}", state.next)
            }
        }
    }

    fn owned<'a>(
        state: &'a mut State,
        id: &str,
        anchor: &str,
    ) -> Result<&'a mut Stored, MemoryError> {
        let stored = state
            .entries
            .get_mut(id)
            .ok_or_else(|| MemoryError::Missing(id.to_owned()))?;
        if stored.anchor.as_deref() != Some(anchor) {
            return Err(MemoryError::NotOwned(id.to_owned()));
        }
        Ok(stored)
    }

    /// Moves an entry to a new id (a rename or a move), refusing to overwrite another.
    fn rekey(state: &mut State, id: &str, new_id: String) -> Result<String, MemoryError> {
        if new_id == id {
            return Ok(new_id);
        }
        if state.entries.contains_key(&new_id) {
            return Err(MemoryError::Exists(new_id));
        }
        let stored = state
            .entries
            .remove(id)
            .ok_or_else(|| MemoryError::Missing(id.to_owned()))?;
        state.entries.insert(new_id.clone(), stored);
        Ok(new_id)
    }
}

impl Directory for MemoryDirectory {
    type Error = MemoryError;

    fn traits(&self) -> DirectoryTraits {
        match &self.rdn {
            Some(rdn) => DirectoryTraits {
                rdn_attribute: Some(rdn.clone()),
                rename_changes_id: true,
                disable_changes_id: self.moves_on_disable,
                manager_attribute: Some("manager".into()),
                groups: true,
                group_name_max: None,
                marking: None,
            },
            None => DirectoryTraits {
                rdn_attribute: Some("userName".into()),
                rename_changes_id: false,
                disable_changes_id: false,
                manager_attribute: Some("enterprise.manager".into()),
                groups: true,
                group_name_max: None,
                marking: None,
            },
        }
    }

    async fn check(&self) -> Result<(), MemoryError> {
        if self.unavailable {
            return Err(MemoryError::Unavailable);
        }
        Ok(())
    }

    fn entries(&self) -> BoxStream<'_, Result<Entry, MemoryError>> {
        let entries: Vec<Result<Entry, MemoryError>> = if self.unavailable {
            vec![Err(MemoryError::Unavailable)]
        } else {
            self.state()
                .entries
                .iter()
                .filter_map(|(id, stored)| {
                    stored.anchor.as_ref().map(|anchor| {
                        Ok(Entry {
                            id: id.clone(),
                            anchor: anchor.clone(),
                            attributes: stored.attributes.clone(),
                            enabled: stored.enabled,
                        })
                    })
                })
                .collect()
        };
        futures::stream::iter(entries).boxed()
    }

    async fn apply(&self, change: &Change) -> Result<String, MemoryError> {
        if self.unavailable {
            return Err(MemoryError::Unavailable);
        }
        let mut state = self.state();
        state.writes += 1;
        match change {
            Change::Create {
                anchor,
                attributes,
                enabled,
            } => {
                if self.reject.contains(anchor) {
                    return Err(MemoryError::Rejected(anchor.clone()));
                }
                let id = self.id_for(&mut state, attributes, *enabled);
                if state.entries.contains_key(&id) {
                    return Err(MemoryError::Exists(id));
                }
                let attributes = attributes
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                state.entries.insert(
                    id.clone(),
                    Stored {
                        anchor: Some(anchor.clone()),
                        attributes,
                        enabled: *enabled,
                    },
                );
                Ok(id)
            }
            Change::Update { id, anchor, set } => {
                let stored = Self::owned(&mut state, id, anchor)?;
                for (name, values) in set {
                    if values.is_empty() {
                        stored.attributes.remove(name);
                    } else {
                        stored.attributes.insert(name.clone(), values.clone());
                    }
                }
                Ok(id.clone())
            }
            Change::Rename {
                id,
                anchor,
                new_rdn_value,
            } => {
                let rdn = self.rdn.clone().unwrap_or_else(|| "userName".into());
                let stored = Self::owned(&mut state, id, anchor)?;
                stored
                    .attributes
                    .insert(rdn.clone(), vec![new_rdn_value.clone()]);
                let (attributes, enabled) = (stored.attributes.clone(), stored.enabled);
                match &self.rdn {
                    Some(_) => {
                        let new_id = self.id_for(&mut state, &attributes, enabled);
                        Self::rekey(&mut state, id, new_id)
                    }
                    None => Ok(id.clone()),
                }
            }
            Change::Disable { id, anchor } | Change::Enable { id, anchor } => {
                let enabled = matches!(change, Change::Enable { .. });
                let stored = Self::owned(&mut state, id, anchor)?;
                stored.enabled = enabled;
                let attributes = stored.attributes.clone();
                if self.rdn.is_some() {
                    let new_id = self.id_for(&mut state, &attributes, enabled);
                    Self::rekey(&mut state, id, new_id)
                } else {
                    Ok(id.clone())
                }
            }
            Change::Delete { id, anchor } => {
                Self::owned(&mut state, id, anchor)?;
                state.entries.remove(id);
                Ok(id.clone())
            }
            Change::Adopt { id, anchor } => {
                let stored = state
                    .entries
                    .get_mut(id)
                    .ok_or_else(|| MemoryError::Missing(id.clone()))?;
                if stored.anchor.is_some() {
                    return Err(MemoryError::NotOwned(id.clone()));
                }
                stored.anchor = Some(anchor.clone());
                Ok(id.clone())
            }
        }
    }

    fn unowned(&self) -> BoxStream<'_, Result<Entry, MemoryError>> {
        let entries: Vec<Result<Entry, MemoryError>> = self
            .state()
            .entries
            .iter()
            .filter(|(_, stored)| stored.anchor.is_none())
            .map(|(id, stored)| {
                Ok(Entry {
                    id: id.clone(),
                    anchor: String::new(),
                    attributes: stored.attributes.clone(),
                    enabled: stored.enabled,
                })
            })
            .collect();
        futures::stream::iter(entries).boxed()
    }

    fn groups(&self) -> BoxStream<'_, Result<Group, MemoryError>> {
        let groups: Vec<Result<Group, MemoryError>> =
            self.state().groups.values().cloned().map(Ok).collect();
        futures::stream::iter(groups).boxed()
    }

    async fn apply_group(&self, change: &GroupChange) -> Result<String, MemoryError> {
        if self.unavailable {
            return Err(MemoryError::Unavailable);
        }
        let mut state = self.state();
        state.writes += 1;
        let owned = |state: &mut State, id: &str, anchor: &str| -> Result<(), MemoryError> {
            match state.groups.get(id) {
                None => Err(MemoryError::Missing(id.to_owned())),
                Some(group) if group.anchor != anchor => Err(MemoryError::NotOwned(id.to_owned())),
                Some(_) => Ok(()),
            }
        };
        match change {
            GroupChange::Create {
                anchor,
                name,
                members,
            } => {
                state.next += 1;
                let id = format!("group-{}", state.next);
                state.groups.insert(
                    id.clone(),
                    Group {
                        id: id.clone(),
                        anchor: anchor.clone(),
                        name: name.clone(),
                        members: members.clone(),
                    },
                );
                Ok(id)
            }
            GroupChange::SetMembers {
                id,
                anchor,
                members,
            } => {
                owned(&mut state, id, anchor)?;
                if let Some(group) = state.groups.get_mut(id) {
                    group.members = members.clone();
                }
                Ok(id.clone())
            }
            GroupChange::Rename { id, anchor, name } => {
                owned(&mut state, id, anchor)?;
                if let Some(group) = state.groups.get_mut(id) {
                    group.name = name.clone();
                }
                Ok(id.clone())
            }
            GroupChange::Delete { id, anchor } => {
                owned(&mut state, id, anchor)?;
                state.groups.remove(id);
                Ok(id.clone())
            }
        }
    }
}
