//! The sync engine's I/O half: read the source and the directory, plan (pure, in [`crate::plan`]),
//! apply. [`apply`] is the one writer of directory changes.

pub mod apply;
pub mod engine;
pub mod spec;

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
        let mut reserved = Reserved::new();
        for (name, rule) in mapping.rules() {
            if !rule.unique {
                continue;
            }
            let values = reserved.entry(name.to_lowercase()).or_default();
            for entry in &unowned {
                for value in crate::plan::attribute_values(&entry.attributes, name)
                    .into_iter()
                    .flatten()
                {
                    values.insert(value.to_lowercase());
                }
            }
        }
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
