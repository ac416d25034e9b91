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
    /// This replica's Pod (in `namespace`), labelled [`LEADER_LABEL`]`=<name>` while it leads, so
    /// that the receiver Service, selecting that label, sends deliveries to the leader only.
    pub label_pod: Option<String>,
}

/// The label the leader's Pod carries (its value is the Lease name, so releases sharing a
/// namespace do not see each other's leader).
pub const LEADER_LABEL: &str = "peoplesync.dev/leader";

/// Sets (or removes) the leader label on this replica's Pod; when set, removes it from every
/// other Pod that still carries it (a killed leader's Pod keeps its labels). Failures are
/// logged, never fatal: deliveries then reach no replica, and HollyHR retries them.
async fn label_pod(client: &kube::Client, config: &LeaseConfig, leading: bool) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{ListParams, Patch, PatchParams};
    let Some(pod) = &config.label_pod else {
        return;
    };
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), &config.namespace);
    let label = |value: Option<&str>| serde_json::json!({ "metadata": { "labels": { LEADER_LABEL: value } } });
    let value = leading.then_some(config.name.as_str());
    if let Err(error) = pods
        .patch(pod, &PatchParams::default(), &Patch::Merge(&label(value)))
        .await
    {
        warn!(%error, %pod, leading, "failed to label this replica's Pod");
        return;
    }
    if !leading {
        return;
    }
    let selector = format!("{LEADER_LABEL}={}", config.name);
    let holders = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(error) => {
            warn!(%error, "failed to list Pods labelled as leader");
            return;
        }
    };
    for other in holders {
        let name = other.metadata.name.unwrap_or_default();
        if name != *pod
            && let Err(error) = pods
                .patch(&name, &PatchParams::default(), &Patch::Merge(&label(None)))
                .await
        {
            warn!(%error, pod = %name, "failed to take the leader label off a former leader's Pod");
        }
    }
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
    let manager = LeaseManagerBuilder::new(client.clone(), &config.name)
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
    // A restarted replica's Pod may still carry the label from when it led.
    label_pod(&client, config, false).await;
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
        label_pod(&client, config, true).await;
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
        label_pod(&client, config, false).await;
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
