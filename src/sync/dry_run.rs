//! A dry run is an ordinary run against a directory that writes nothing: [`DryRun`] reads
//! through to the real directory and answers each change with the id it would leave, so the
//! streamed cycle plans, chunks, links and guards exactly as a real one does (and holds as
//! little memory), while nothing is written.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::stream::BoxStream;

use crate::directory::{Change, Directory, DirectoryTraits, Entry, Group, GroupChange};

/// Reads from `D`, writes nowhere.
pub struct DryRun<'a, D> {
    inner: &'a D,
    traits: DirectoryTraits,
    /// Makes every id a planned move would give distinct (the index notes that it moved).
    moves: AtomicU64,
}

impl<'a, D: Directory> DryRun<'a, D> {
    pub fn new(inner: &'a D) -> Self {
        Self {
            traits: inner.traits(),
            inner,
            moves: AtomicU64::new(0),
        }
    }

    fn moved(&self, what: &str, anchor: &str) -> String {
        let n = self.moves.fetch_add(1, Ordering::Relaxed);
        format!("(dry run) {what} {anchor} #{n}")
    }

    /// The id an entry would have after `change`: a placeholder where the directory would
    /// give a new one, the same id otherwise.
    fn id_after(&self, change: &Change) -> String {
        match change {
            Change::Create { anchor, .. } => self.moved("created", anchor),
            Change::Rename { anchor, .. } if self.traits.rename_changes_id => {
                self.moved("renamed", anchor)
            }
            Change::Disable { anchor, .. } | Change::Enable { anchor, .. }
                if self.traits.disable_changes_id =>
            {
                self.moved(change.action(), anchor)
            }
            Change::Update { id, .. }
            | Change::Rename { id, .. }
            | Change::Disable { id, .. }
            | Change::Enable { id, .. }
            | Change::Delete { id, .. }
            | Change::Adopt { id, .. } => id.clone(),
        }
    }
}

impl<D: Directory> Directory for DryRun<'_, D> {
    type Error = D::Error;

    fn traits(&self) -> DirectoryTraits {
        self.traits.clone()
    }

    async fn check(&self) -> Result<(), Self::Error> {
        self.inner.check().await
    }

    fn entries(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        self.inner.entries()
    }

    fn unowned(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        self.inner.unowned()
    }

    fn everyone(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        self.inner.everyone()
    }

    fn elsewhere(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        self.inner.elsewhere()
    }

    fn groups(&self) -> BoxStream<'_, Result<Group, Self::Error>> {
        self.inner.groups()
    }

    async fn apply(&self, change: &Change) -> Result<String, Self::Error> {
        Ok(self.id_after(change))
    }

    async fn apply_group(&self, change: &GroupChange) -> Result<String, Self::Error> {
        Ok(match change {
            GroupChange::Create { anchor, .. } => self.moved("group", anchor),
            GroupChange::SetMembers { id, .. }
            | GroupChange::Rename { id, .. }
            | GroupChange::Delete { id, .. } => id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::memory::MemoryDirectory;

    #[test]
    fn a_dry_run_writes_nothing_and_names_new_and_moved_entries_apart() {
        crate::plan::tests::properties::run(async {
            let directory = MemoryDirectory::ldap_like("uid", true);
            let dry = DryRun::new(&directory);
            let create = Change::Create {
                anchor: "p1".into(),
                attributes: Default::default(),
                enabled: true,
            };
            let first = dry.apply(&create).await.expect("answers");
            let second = dry.apply(&create).await.expect("answers");
            assert_ne!(first, second);
            let update = Change::Update {
                id: "uid=a".into(),
                anchor: "p1".into(),
                set: Default::default(),
            };
            assert_eq!(dry.apply(&update).await.expect("answers"), "uid=a");
            let rename = Change::Rename {
                id: "uid=a".into(),
                anchor: "p1".into(),
                new_rdn_value: "b".into(),
            };
            assert_ne!(dry.apply(&rename).await.expect("answers"), "uid=a");
            assert_eq!(directory.writes(), 0);
        });
    }
}
