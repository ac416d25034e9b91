//! Fencing: a directory whose writes first ask a [`Fence`] whether this process may still write.
//! With leader election the fence is the Lease (`controller::leader::LeaseFence`): a replica that
//! cannot show it holds an unexpired Lease writes nothing, so a leader cut off from the API
//! server stops before a standby can take the Lease over. Reads are never fenced. Every write
//! path (full and incremental cycles, webhook runs, group refreshes) goes through the one
//! directory handle, so the fence sits in one place.
//!
//! The fence is a bound, not a hope: a write may start only with a deadline from the fence,
//! which ends before the Lease's validity less a margin, and is abandoned (failed as `Fenced`)
//! when it has not finished by then. A new leader's first write waits [`WRITE_DEADLINE`] after
//! it acquired the Lease, so even a write the old leader gave up on, still on its way to the
//! directory, has landed before (README, "Fencing": the clock assumptions).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::{Change, Directory, DirectoryError, DirectoryTraits, Entry, Group, GroupChange};

/// The longest one directory write may take: its deadline is at most this far away (and never
/// past the Lease's validity), and a new leader waits this long before its first write.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// Whether this process may write now: until when (the write's deadline), or why not.
pub trait Fence: Send + Sync + std::fmt::Debug {
    fn allows(&self) -> BoxFuture<'_, Result<Instant, String>>;
}

/// A directory behind an optional fence (none: every write goes through).
#[derive(Debug)]
pub struct Fenced<D> {
    inner: D,
    fence: Option<Arc<dyn Fence>>,
}

impl<D> Fenced<D> {
    pub fn new(inner: D, fence: Option<Arc<dyn Fence>>) -> Self {
        Self { inner, fence }
    }

    /// The directory itself (for reads and checks).
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FencedError<E: DirectoryError> {
    /// Not written: this process cannot show it may write (a directory-wide stop).
    #[error("not writing to the directory: {0}")]
    Fenced(String),
    #[error(transparent)]
    Directory(E),
}

impl<E: DirectoryError> DirectoryError for FencedError<E> {
    fn reason(&self) -> &'static str {
        match self {
            FencedError::Fenced(_) => "Fenced",
            FencedError::Directory(error) => error.reason(),
        }
    }

    fn is_per_entry(&self) -> bool {
        match self {
            FencedError::Fenced(_) => false,
            FencedError::Directory(error) => error.is_per_entry(),
        }
    }
}

fn inner<T, E: DirectoryError>(result: Result<T, E>) -> Result<T, FencedError<E>> {
    result.map_err(FencedError::Directory)
}

fn stream<'a, T: Send + 'a, E: DirectoryError>(
    items: BoxStream<'a, Result<T, E>>,
) -> BoxStream<'a, Result<T, FencedError<E>>> {
    use futures::StreamExt;
    items.map(inner).boxed()
}

impl<D: Directory> Fenced<D> {
    /// Runs one write within the fence's deadline.
    async fn write<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, D::Error>>,
    ) -> Result<T, FencedError<D::Error>> {
        let Some(fence) = &self.fence else {
            return inner(write.await);
        };
        let deadline = fence.allows().await.map_err(FencedError::Fenced)?;
        match tokio::time::timeout_at(deadline.into(), write).await {
            Ok(result) => inner(result),
            Err(_) => Err(FencedError::Fenced(
                "a write did not finish before this replica's Lease runs out; it was abandoned"
                    .into(),
            )),
        }
    }
}

impl<D: Directory> Directory for Fenced<D> {
    type Error = FencedError<D::Error>;

    fn traits(&self) -> DirectoryTraits {
        self.inner.traits()
    }

    async fn check(&self) -> Result<(), Self::Error> {
        inner(self.inner.check().await)
    }

    fn entries(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        stream(self.inner.entries())
    }

    async fn apply(&self, change: &Change) -> Result<String, Self::Error> {
        self.write(self.inner.apply(change)).await
    }

    fn unowned(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        stream(self.inner.unowned())
    }

    fn everyone(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        stream(self.inner.everyone())
    }

    fn elsewhere(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        stream(self.inner.elsewhere())
    }

    fn groups(&self) -> BoxStream<'_, Result<Group, Self::Error>> {
        stream(self.inner.groups())
    }

    async fn apply_group(&self, change: &GroupChange) -> Result<String, Self::Error> {
        self.write(self.inner.apply_group(change)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::TryStreamExt;

    use super::*;
    use crate::directory::memory::MemoryDirectory;

    #[derive(Debug)]
    struct Switch(AtomicBool);

    impl Fence for Switch {
        fn allows(&self) -> BoxFuture<'_, Result<Instant, String>> {
            Box::pin(async move {
                if self.0.load(Ordering::SeqCst) {
                    Ok(Instant::now() + WRITE_DEADLINE)
                } else {
                    Err("the Lease is held by replica-b".into())
                }
            })
        }
    }

    #[tokio::test]
    async fn a_closed_fence_stops_writes_and_lets_reads_through() {
        let switch = Arc::new(Switch(AtomicBool::new(true)));
        let directory = Fenced::new(
            MemoryDirectory::ldap_like("uid", true),
            Some(switch.clone() as Arc<dyn Fence>),
        );
        let change = |anchor: &str| Change::Create {
            anchor: anchor.to_owned(),
            attributes: [("uid".to_owned(), vec![anchor.to_owned()])].into(),
            enabled: true,
        };
        directory.apply(&change("p1")).await.expect("written");
        switch.0.store(false, Ordering::SeqCst);
        let error = directory.apply(&change("p2")).await.expect_err("fenced");
        assert_eq!(error.reason(), "Fenced");
        assert!(!error.is_per_entry(), "a fence stops the whole run");
        assert!(error.to_string().contains("held by replica-b"), "{error}");
        let entries: Vec<Entry> = directory.entries().try_collect().await.expect("reads");
        assert_eq!(entries.len(), 1, "p2 was not written");
    }

    /// A fence whose window ends in 100 ms.
    #[derive(Debug)]
    struct Closing;

    impl Fence for Closing {
        fn allows(&self) -> BoxFuture<'_, Result<Instant, String>> {
            Box::pin(async { Ok(Instant::now() + Duration::from_millis(100)) })
        }
    }

    /// A directory whose writes hang (a TCP proxy holding them back).
    #[derive(Debug)]
    struct Hanging(MemoryDirectory);

    impl Directory for Hanging {
        type Error = <MemoryDirectory as Directory>::Error;
        fn traits(&self) -> DirectoryTraits {
            self.0.traits()
        }
        async fn check(&self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn entries(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
            self.0.entries()
        }
        async fn apply(&self, change: &Change) -> Result<String, Self::Error> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            self.0.apply(change).await
        }
        fn unowned(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
            self.0.unowned()
        }
        fn everyone(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
            self.0.everyone()
        }
        fn elsewhere(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
            self.0.elsewhere()
        }
        fn groups(&self) -> BoxStream<'_, Result<Group, Self::Error>> {
            self.0.groups()
        }
        async fn apply_group(&self, change: &GroupChange) -> Result<String, Self::Error> {
            self.0.apply_group(change).await
        }
    }

    #[tokio::test]
    async fn a_write_that_outlives_the_lease_is_abandoned_at_its_deadline() {
        let directory = Fenced::new(
            Hanging(MemoryDirectory::ldap_like("uid", true)),
            Some(Arc::new(Closing) as Arc<dyn Fence>),
        );
        let started = Instant::now();
        let error = directory
            .apply(&Change::Create {
                anchor: "p1".into(),
                attributes: [("uid".to_owned(), vec!["p1".to_owned()])].into(),
                enabled: true,
            })
            .await
            .expect_err("abandoned");
        assert_eq!(error.reason(), "Fenced");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the write waited {:?}",
            started.elapsed()
        );
    }
}
