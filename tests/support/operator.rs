//! The operator in process for the webhook suites, whatever the source: the API server, a
//! namespace with the directory's Secret, slapd, and the controller with its receiver and admin
//! server. A source's suite adds its sandbox, its credentials and the `acme` PeopleSync.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use peoplesync::controller;
use peoplesync::controlplane::ControlPlane;
use peoplesync::crd::{PeopleSync, PeopleSyncStatus};
use peoplesync::slapd::Slapd;
use serde_json::json;

use super::{control_plane, free_addr, secret, wait_condition};

/// The PeopleSync every webhook case works on.
pub const NAME: &str = "acme";

pub struct Operator {
    pub plane: ControlPlane,
    pub ldap: Slapd,
    pub client: Client,
    pub ns: String,
    /// Where the receiver listens.
    pub receiver: SocketAddr,
    /// The controller's admin server (/metrics).
    pub admin: SocketAddr,
    pub controller: tokio::task::JoinHandle<()>,
    instance: &'static str,
}

fn spawn_controller(
    kube: kube::Config,
    namespace: &str,
    receiver: SocketAddr,
    admin: SocketAddr,
    instance: &str,
) -> tokio::task::JoinHandle<()> {
    let config = controller::Config {
        admin_listen: admin,
        namespaces: peoplesync::watch::Namespaces::one(namespace.to_owned()),
        leader_election: None,
        instance: instance.into(),
        receiver_listen: Some(receiver),
        receiver_limits: Default::default(),
        webhook: peoplesync::webhook::WebhookConfig {
            health_interval: Duration::from_secs(1),
        },
        max_concurrent_syncs: 4,
    };
    tokio::spawn(async move {
        controller::run(kube, config)
            .await
            .expect("the controller runs");
    })
}

impl Operator {
    /// The API server, namespace `name` with the directory's Secret, slapd, and the controller.
    pub async fn start(name: &str, instance: &'static str) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let plane = control_plane().await;
        let ldap = Slapd::start().await.expect("slapd starts");
        let client = plane.client().await.expect("client");
        let ns = plane.create_namespace(name).await.expect("namespace");
        secret(&client, &ns, "ldap", "password", &ldap.admin_password).await;
        let (receiver, admin) = (free_addr(), free_addr());
        let controller = spawn_controller(
            plane.kube_config().await.expect("a kube config"),
            &ns,
            receiver,
            admin,
            instance,
        );
        Self {
            plane,
            ldap,
            client,
            ns,
            receiver,
            admin,
            controller,
            instance,
        }
    }

    /// Stops the controller (a crash) and starts a new one on the same addresses; how the old
    /// one ended.
    pub async fn restart_controller(&mut self) -> Result<(), tokio::task::JoinError> {
        self.controller.abort();
        let stopped = (&mut self.controller).await;
        self.controller = spawn_controller(
            self.plane.kube_config().await.expect("a kube config"),
            &self.ns,
            self.receiver,
            self.admin,
            self.instance,
        );
        stopped
    }

    pub fn api(&self) -> Api<PeopleSync> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn status(&self) -> PeopleSyncStatus {
        self.api()
            .get(NAME)
            .await
            .expect("read")
            .status
            .unwrap_or_default()
    }

    /// Registered and synced once.
    pub async fn ready(&self) {
        wait_condition(
            &self.client,
            &self.ns,
            NAME,
            "WebhookRegistered",
            "True",
            None,
        )
        .await;
        wait_condition(
            &self.client,
            &self.ns,
            NAME,
            "Synced",
            "True",
            Some("Synced"),
        )
        .await;
    }

    pub async fn annotate(&self, key: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": { key: value }}});
        self.api()
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotated");
    }

    /// The owned Secret holding the webhook's credential (signing secret or token).
    pub async fn credential_secret(&self) -> Secret {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        api.get(&format!("{NAME}-webhook-signing"))
            .await
            .expect("the owned Secret")
    }

    /// The receiver's path for the object.
    pub fn hook_path(&self) -> String {
        format!("/hooks/{}/{NAME}", self.ns)
    }

    /// The directory's entries: anchor → title (the default mapping's `title`).
    pub async fn titles(&self) -> BTreeMap<String, Option<String>> {
        use futures::TryStreamExt;
        use peoplesync::directory::Directory;
        let directory = peoplesync::directory::ldap::LdapDirectory::connect(
            self.ldap.ldap_config().owned_by_object(&self.ns, NAME),
        )
        .await
        .expect("binds");
        let entries: Vec<peoplesync::directory::Entry> =
            directory.entries().try_collect().await.expect("lists");
        entries
            .into_iter()
            .map(|e| {
                let title = peoplesync::plan::attribute_values(&e.attributes, "title")
                    .and_then(|values| values.first().cloned());
                (e.anchor, title)
            })
            .collect()
    }

    /// Waits (bounded by `limit`) until the person's entry has `title`; how long it took.
    pub async fn wait_title_within(&self, person: &str, title: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let has = self.titles().await.get(person).cloned().flatten();
            if has.as_deref() == Some(title) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{person} never got title {title:?} (has {has:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 20 s) until the person's entry has `title`.
    pub async fn wait_title(&self, person: &str, title: &str) -> Duration {
        self.wait_title_within(person, title, Duration::from_secs(20))
            .await
    }

    /// Waits (bounded) until `check` holds for the status.
    pub async fn wait_status(&self, what: &str, check: impl Fn(&PeopleSyncStatus) -> bool) {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if check(&status) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never: {what}; status: {}",
                serde_json::to_string(&status).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A key of a Secret's data, as text.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// An annotation of a Secret.
pub fn annotation(secret: &Secret, key: &str) -> Option<String> {
    secret.metadata.annotations.as_ref()?.get(key).cloned()
}

/// Waits (bounded) until `check` holds.
pub async fn eventually<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
