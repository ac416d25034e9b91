//! Leader election on a coordination.k8s.io Lease (kube-lease-manager), so two replicas never
//! reconcile at once: a replica runs the controller only while it holds the Lease, and stops it
//! the moment it loses it. A standby replica stays ready (it serves probes and waits).

use std::future::Future;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{info, warn};

use super::admin::Readiness;
use crate::directory::fenced::WRITE_DEADLINE;

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

/// The Lease as a write fence (see `directory::fenced`): a write may start while this replica
/// can show it holds an unexpired Lease, and must end by its last renewal plus the lease
/// duration minus a margin (clock skew between this replica and the one that would take over).
/// A standby only takes a Lease after it expired, so a leader cut off from the API server
/// stops writing before anyone else can start; and a new leader's writes wait
/// [`WRITE_DEADLINE`] from its acquisition, so the old leader's last abandoned write has landed.
/// Within the window no API call is made; near its end or past it, the Lease is read again (an
/// unreadable Lease stops writes: the fence fails closed).
#[derive(Debug)]
pub struct LeaseFence {
    leases: kube::Api<k8s_openapi::api::coordination::v1::Lease>,
    name: String,
    identity: String,
    margin: jiff::SignedDuration,
    window: std::sync::Mutex<Option<Window>>,
}

/// What the last read of the Lease allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Writes wait until then (the acquisition plus [`WRITE_DEADLINE`]).
    from: jiff::Timestamp,
    /// Every write ends by then.
    until: jiff::Timestamp,
    /// When the Lease was read.
    read: jiff::Timestamp,
}

/// A write needs at least this much of the window; with less, the Lease is read again (a
/// renewal may have moved it), and failing that the write is refused.
const LEAST_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_millis(500);
/// While the window has less than [`WRITE_DEADLINE`] left, the Lease is read again at most
/// this often (not once per write).
const REREAD: jiff::SignedDuration = jiff::SignedDuration::from_millis(500);

fn write_deadline() -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(WRITE_DEADLINE).expect("a few seconds")
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
            window: std::sync::Mutex::new(None),
        }
    }

    /// What the Lease, as read at `now`, lets this replica write.
    fn window(
        &self,
        lease: &k8s_openapi::api::coordination::v1::Lease,
        now: jiff::Timestamp,
    ) -> Result<Window, String> {
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
        let acquired = spec.acquire_time.as_ref().unwrap_or(renewed);
        let duration = spec.lease_duration_seconds.unwrap_or(0).max(0);
        Ok(Window {
            from: acquired.0 + write_deadline(),
            until: renewed.0 + jiff::SignedDuration::from_secs(duration.into()) - self.margin,
            read: now,
        })
    }

    /// The deadline of a write starting at `now` within `window`: the Lease's end or
    /// [`WRITE_DEADLINE`], whichever comes first; `None` when too little is left.
    fn deadline(window: &Window, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let until = window.until.min(now + write_deadline());
        (until - LEAST_WINDOW >= now).then_some(until)
    }

    async fn read(&self, now: jiff::Timestamp) -> Result<Window, String> {
        let lease = self
            .leases
            .get_opt(&self.name)
            .await
            .map_err(|error| format!("cannot read the Lease {}: {error}", self.name))?
            .ok_or_else(|| format!("the Lease {} does not exist", self.name))?;
        let window = self.window(&lease, now)?;
        *self.window.lock().unwrap_or_else(|e| e.into_inner()) = Some(window);
        Ok(window)
    }
}

impl crate::directory::fenced::Fence for LeaseFence {
    fn allows(&self) -> futures::future::BoxFuture<'_, Result<std::time::Instant, String>> {
        Box::pin(async move {
            let now = jiff::Timestamp::now();
            let cached = *self.window.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = cached.is_some_and(|w| {
                now + write_deadline() <= w.until || now.duration_since(w.read) < REREAD
            });
            let mut window = match cached {
                Some(window) if fresh => window,
                // Near its end the Lease is read again (a renewal moves it); when it cannot be
                // read, the window already shown still holds: nobody else can take the Lease
                // before it ends.
                _ => match self.read(now).await {
                    Ok(window) => window,
                    Err(error) => match cached {
                        Some(window) if Self::deadline(&window, now).is_some() => window,
                        _ => return Err(error),
                    },
                },
            };
            if now < window.from {
                // Just acquired: the former leader's last write may still be on its way.
                let wait = window.from.duration_since(now);
                tokio::time::sleep(wait.unsigned_abs()).await;
                window = self.read(jiff::Timestamp::now()).await?;
            }
            let now = jiff::Timestamp::now();
            let until = Self::deadline(&window, now).ok_or_else(|| {
                format!(
                    "the Lease {} was last renewed too long ago (this replica may have lost it)",
                    self.name
                )
            })?;
            let left = until.duration_since(now).unsigned_abs();
            Ok(std::time::Instant::now() + left)
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

    fn at(time: &str) -> jiff::Timestamp {
        time.parse().expect("a time")
    }

    #[tokio::test]
    async fn the_fence_opens_until_the_last_renewal_plus_the_duration_less_a_margin() {
        let fence = fence();
        let window = fence
            .window(
                &lease("replica-a", "2026-12-05T10:00:00.000000Z"),
                at("2026-12-05T10:00:01Z"),
            )
            .expect("held by us");
        // 15 s after the renewal, less half the 5 s renewal headroom (at most 2 s).
        assert_eq!(window.until.to_string(), "2026-12-05T10:00:13Z");
        let taken = fence
            .window(
                &lease("replica-b", "2026-12-05T10:00:00.000000Z"),
                at("2026-12-05T10:00:01Z"),
            )
            .expect_err("held by another");
        assert!(taken.contains("held by replica-b"), "{taken}");
    }

    #[test]
    fn no_write_deadline_reaches_past_the_lease() {
        let window = Window {
            from: at("2026-12-05T10:00:05Z"),
            until: at("2026-12-05T10:00:13Z"),
            read: at("2026-12-05T10:00:01Z"),
        };
        // Early in the window: the write's own deadline.
        assert_eq!(
            LeaseFence::deadline(&window, at("2026-12-05T10:00:06Z")),
            Some(at("2026-12-05T10:00:11Z"))
        );
        // Near its end: the Lease's end.
        assert_eq!(
            LeaseFence::deadline(&window, at("2026-12-05T10:00:11Z")),
            Some(at("2026-12-05T10:00:13Z"))
        );
        // Less than half a second left, or past it: no write starts.
        assert_eq!(
            LeaseFence::deadline(&window, at("2026-12-05T10:00:12.600Z")),
            None
        );
        assert_eq!(
            LeaseFence::deadline(&window, at("2026-12-05T10:00:14Z")),
            None
        );
    }

    #[tokio::test]
    async fn a_new_leader_waits_out_the_write_deadline_from_its_acquisition() {
        let fence = fence();
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "peoplesync-controller" },
            "spec": { "holderIdentity": "replica-a", "leaseDurationSeconds": 15,
                      "acquireTime": "2026-12-05T10:00:00.000000Z",
                      "renewTime": "2026-12-05T10:00:00.000000Z" }
        }))
        .expect("a Lease");
        let window = fence
            .window(&lease, at("2026-12-05T10:00:00.100Z"))
            .expect("held by us");
        assert_eq!(
            window.from,
            at("2026-12-05T10:00:00Z") + write_deadline(),
            "no write before the former leader's last deadline has passed"
        );
    }
}
