//! The sync engine's I/O half: read the source and the directory, plan (pure, in [`crate::plan`]),
//! apply. [`apply`] is the one writer of directory changes.

pub mod apply;
pub mod engine;
pub mod spec;

use futures::TryStreamExt;

pub use apply::{Aborted, Applied, Ids, apply};

use crate::directory::{Directory, Entry, Group};
use crate::plan::{Mapping, Reserved};

/// The directory as the planner needs it: managed entries and groups, and the unique values
/// held by entries PeopleSync does not own.
#[derive(Debug, Clone, Default)]
pub struct DirectorySnapshot {
    pub entries: Vec<Entry>,
    pub groups: Vec<Group>,
    pub reserved: Reserved,
}

impl DirectorySnapshot {
    pub async fn read<D: Directory>(
        directory: &D,
        mapping: &Mapping,
        groups: bool,
    ) -> Result<Self, D::Error> {
        let entries: Vec<Entry> = directory.entries().try_collect().await?;
        let groups = if groups {
            directory.groups().try_collect().await?
        } else {
            Vec::new()
        };
        let unique: Vec<String> = mapping
            .rules()
            .iter()
            .filter(|(_, rule)| rule.unique)
            .map(|(name, _)| name.clone())
            .collect();
        let mut reserved = Reserved::new();
        let mut values = directory.reserved(&unique);
        while let Some((attribute, value)) = values.try_next().await? {
            reserved
                .entry(attribute.to_lowercase())
                .or_default()
                .insert(value.to_lowercase());
        }
        Ok(Self {
            entries,
            groups,
            reserved,
        })
    }

    pub fn ids(&self) -> Ids {
        Ids::from_listing(&self.entries, &self.groups)
    }
}
