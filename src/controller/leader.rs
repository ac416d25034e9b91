//! Leader election on a coordination.k8s.io Lease (kube-lease-manager), so two replicas never
//! reconcile at once: a replica runs the controller only while it holds the Lease, and stops it
//! the moment it loses it. A standby replica stays ready (it serves probes and waits).

use std::future::Future;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{info, warn};

use super::admin::Readiness;

/// Where the Lease lives and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per replica (the Pod name).
    pub identity: String,
    /// How long a Lease is valid without renewal (seconds).
    pub duration_seconds: u64,
    /// How long before expiry the holder renews (seconds).
    pub grace_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("failed to set up leader election on Lease {namespace}/{name}")]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// Runs `controller(stop)` each time this replica becomes leader; `stop` resolves when the Lease
/// is lost or the process is asked to shut down. Returns after a shutdown signal.
pub async fn run_while_leading<F, Fut>(
    client: kube::Client,
    config: &LeaseConfig,
    readiness: Readiness,
    shutdown: watch::Receiver<bool>,
    mut controller: F,
) -> Result<(), LeaderError>
where
    F: FnMut(std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>) -> Fut,
    Fut: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration_seconds)
        .with_grace(config.grace_seconds)
        .build()
        .await
        .map_err(|source| LeaderError::Setup {
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            source,
        })?;
    let (mut leading, task) = manager.watch().await;
    readiness.set(true);
    let mut shutdown_wait = shutdown.clone();
    loop {
        // Wait to lead (or to be told to stop).
        while !*leading.borrow_and_update() {
            tokio::select! {
                changed = leading.changed() => if changed.is_err() { break },
                _ = shutdown_wait.changed() => {}
            }
            if *shutdown_wait.borrow() {
                break;
            }
        }
        if *shutdown_wait.borrow() || !*leading.borrow() {
            break;
        }
        info!(identity = %config.identity, lease = %config.name, "acquired the Lease: reconciling");
        let mut lost = leading.clone();
        let mut stop_on_shutdown = shutdown.clone();
        let stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>> =
            Box::pin(async move {
                loop {
                    tokio::select! {
                        changed = lost.changed() => {
                            if changed.is_err() || !*lost.borrow() {
                                return;
                            }
                        }
                        _ = stop_on_shutdown.changed() => return,
                    }
                }
            });
        controller(stop).await;
        if *shutdown_wait.borrow() {
            break;
        }
        warn!(identity = %config.identity, "lost the Lease: stopped reconciling, waiting to lead again");
        // Give the new leader a moment before competing again.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Dropping the receiver makes the manager release the Lease so a standby takes over at once.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => info!("released the Lease"),
        Ok(Ok(Err(error))) => warn!(%error, "failed to release the Lease"),
        Ok(Err(_)) | Err(_) => warn!("the Lease manager did not stop in time"),
    }
    Ok(())
}
