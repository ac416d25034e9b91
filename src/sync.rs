//! The sync engine's I/O half: read the source and the directory, plan (pure, in [`crate::plan`]),
//! apply. [`apply`] is the one writer of directory changes.

pub mod apply;
pub mod cycle;
pub mod dry_run;
pub mod engine;
pub mod spec;
pub mod stream;

use futures::TryStreamExt;

pub use apply::{Aborted, Applied, Ids, apply};

use crate::directory::{Directory, Entry, Group};
use crate::plan::{Mapping, Reserved};

/// The directory as the planner needs it: managed entries and groups, and the entries
/// PeopleSync does not own.
#[derive(Debug, Clone, Default)]
pub struct DirectorySnapshot {
    pub entries: Vec<Entry>,
    pub groups: Vec<Group>,
    /// Entries without an anchor where PeopleSync keeps people (candidates for adoption).
    pub unowned: Vec<Entry>,
    /// Their unique values, and those of the directory's other entries where uniqueness is
    /// directory-wide (AD), lower-cased (never given to anyone else).
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
        let mut reserved = reserved(mapping, &unowned);
        let mut elsewhere = directory.elsewhere();
        while let Some(entry) = elsewhere.try_next().await? {
            reserve(&mut reserved, mapping, &entry);
        }
        drop(elsewhere);
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
}

/// The unique values of entries PeopleSync does not own, lower-cased (never given to anyone).
pub(crate) fn reserved(mapping: &Mapping, unowned: &[Entry]) -> Reserved {
    let mut reserved = Reserved::new();
    for entry in unowned {
        reserve(&mut reserved, mapping, entry);
    }
    reserved
}

/// Adds an entry's values of the mapping's unique attributes to `reserved`.
pub(crate) fn reserve(reserved: &mut Reserved, mapping: &Mapping, entry: &Entry) {
    for (name, rule) in mapping.rules() {
        if !rule.unique {
            continue;
        }
        let values = reserved.entry(name.to_lowercase()).or_default();
        for value in crate::plan::attribute_values(&entry.attributes, name)
            .into_iter()
            .flatten()
        {
            values.insert(value.to_lowercase());
        }
    }
}

/// `extra`'s values added to `reserved`.
pub(crate) fn merge_reserved(reserved: &mut Reserved, extra: &Reserved) {
    for (name, values) in extra {
        reserved
            .entry(name.clone())
            .or_default()
            .extend(values.iter().cloned());
    }
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
