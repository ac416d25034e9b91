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

/// The Lease as a write fence (see `directory::fenced`): writes are allowed while this replica
/// can show it holds an unexpired Lease, until its last renewal plus the lease duration minus a
/// margin (in-flight writes and clock skew). A standby only takes a Lease after it expired, so a
/// leader cut off from the API server stops writing before anyone else can start. Within that
/// window no API call is made; past it, the Lease is read again (and an unreadable Lease stops
/// writes: the fence fails closed).
#[derive(Debug)]
pub struct LeaseFence {
    leases: kube::Api<k8s_openapi::api::coordination::v1::Lease>,
    name: String,
    identity: String,
    margin: jiff::SignedDuration,
    valid_until: std::sync::Mutex<Option<jiff::Timestamp>>,
}

impl LeaseFence {
    pub fn new(client: kube::Client, config: &LeaseConfig) -> Self {
        // Half the renewal headroom, at most 2 s: the holder renews `grace` before expiry, so
        // a healthy leader's window never closes between renewals.
        let margin = jiff::SignedDuration::from_millis(
            (config.grace_seconds as i64 * 500).clamp(100, 2_000),
        );
        Self {
            leases: kube::Api::namespaced(client, &config.namespace),
            name: config.name.clone(),
            identity: config.identity.clone(),
            margin,
            valid_until: std::sync::Mutex::new(None),
        }
    }

    /// Until when the Lease, as read, lets this replica write.
    fn window(
        &self,
        lease: &k8s_openapi::api::coordination::v1::Lease,
    ) -> Result<jiff::Timestamp, String> {
        let spec = lease.spec.as_ref().ok_or("the Lease has no spec")?;
        let holder = spec.holder_identity.as_deref().unwrap_or("nobody");
        if holder != self.identity {
            return Err(format!("the Lease {} is held by {holder}", self.name));
        }
        let renewed = spec
            .renew_time
            .as_ref()
            .or(spec.acquire_time.as_ref())
            .ok_or("the Lease was never renewed")?;
        let duration = spec.lease_duration_seconds.unwrap_or(0).max(0);
        Ok(renewed.0 + jiff::SignedDuration::from_secs(duration.into()) - self.margin)
    }
}

impl crate::directory::fenced::Fence for LeaseFence {
    fn allows(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let now = jiff::Timestamp::now();
            let cached = *self.valid_until.lock().unwrap_or_else(|e| e.into_inner());
            if cached.is_some_and(|until| now < until) {
                return Ok(());
            }
            let lease = self
                .leases
                .get_opt(&self.name)
                .await
                .map_err(|error| format!("cannot read the Lease {}: {error}", self.name))?
                .ok_or_else(|| format!("the Lease {} does not exist", self.name))?;
            let until = self.window(&lease)?;
            if now >= until {
                return Err(format!(
                    "the Lease {} was last renewed too long ago (this replica may have lost it)",
                    self.name
                ));
            }
            *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::Lease;

    use super::*;

    fn fence() -> LeaseFence {
        let config = kube::Config::new("https://127.0.0.1:1".parse().expect("a URL"));
        let client = kube::Client::try_from(config).expect("a client");
        LeaseFence::new(
            client,
            &LeaseConfig {
                namespace: "peoplesync-system".into(),
                name: "peoplesync-controller".into(),
                identity: "replica-a".into(),
                duration_seconds: 15,
                grace_seconds: 5,
                label_pod: None,
            },
        )
    }

    fn lease(holder: &str, renewed: &str) -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "peoplesync-controller" },
            "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed }
        }))
        .expect("a Lease")
    }

    #[tokio::test]
    async fn the_fence_opens_until_the_last_renewal_plus_the_duration_less_a_margin() {
        let fence = fence();
        let until = fence
            .window(&lease("replica-a", "2026-12-05T10:00:00.000000Z"))
            .expect("held by us");
        // 15 s after the renewal, less half the 5 s renewal headroom (at most 2 s).
        assert_eq!(until.to_string(), "2026-12-05T10:00:13Z");
        let taken = fence
            .window(&lease("replica-b", "2026-12-05T10:00:00.000000Z"))
            .expect_err("held by another");
        assert!(taken.contains("held by replica-b"), "{taken}");
    }
}
