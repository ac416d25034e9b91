//! Many tenants for one operator (issue #16): one HollyHR sandbox serving every tenant on one
//! port (told apart by API key), one slapd with a subtree per tenant, and a `PeopleSync` per
//! tenant with its own key Secret. Used by `tests/tenants.rs` and the P7 benchmark.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kube::api::ListParams;
use kube::{Api, Client};
use peoplesync::crd::PeopleSync;
use peoplesync::slapd::{self, Slapd};
use peoplesync_sandbox::{self as sandbox, ApiKeySpec, SandboxConfig, tenants};
use serde_json::{Value, json};

pub struct Fleet {
    pub hollyhr: tenants::TenantsHandle,
    pub ldap: Slapd,
    pub tenants: usize,
    pub people: usize,
}

/// Tenant `i`'s API key.
pub fn tenant_key(tenant: usize) -> String {
    format!("hhr_test_tenant_{tenant:04}")
}

/// Tenant `i`'s object name (and Secret prefix).
pub fn tenant_name(tenant: usize) -> String {
    format!("t{tenant:04}")
}

/// Tenant `i`'s subtree in the shared slapd.
pub fn tenant_dn(tenant: usize) -> String {
    format!("ou={},{}", tenant_name(tenant), slapd::BASE_DN)
}

pub fn tenant_people_dn(tenant: usize) -> String {
    format!("ou=people,{}", tenant_dn(tenant))
}

pub fn tenant_groups_dn(tenant: usize) -> String {
    format!("ou=groups,{}", tenant_dn(tenant))
}

/// `tenants` tenants of `people` people each (tenant `i` seeded with `i`, so names differ), on
/// one port, webhooks to loopback allowed; slapd with an empty subtree per tenant.
pub async fn start(tenants_count: usize, people: usize) -> Fleet {
    let configs = (0..tenants_count)
        .map(|tenant| SandboxConfig {
            people,
            seed: tenant as u64,
            api_keys: vec![ApiKeySpec::new(tenant_key(tenant), sandbox::DEFAULT_SCOPES)],
            allow_insecure_webhook_urls: true,
            // Every operator request is counted, none refused for rate.
            rate_limit_per_minute: 0,
            ..Default::default()
        })
        .collect();
    let hollyhr = tenants::start(SocketAddr::from(([127, 0, 0, 1], 0)), configs)
        .await
        .expect("the sandbox starts");
    let ldap = Slapd::start().await.expect("slapd starts");
    let mut ldif = String::new();
    for tenant in 0..tenants_count {
        let name = tenant_name(tenant);
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: organizationalUnit\nou: {name}\n\n\
             dn: {}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: {}\nobjectClass: organizationalUnit\nou: groups\n\n",
            tenant_dn(tenant),
            tenant_people_dn(tenant),
            tenant_groups_dn(tenant),
        ));
    }
    ldap.ldapadd(&ldif).expect("the subtrees are added");
    Fleet {
        hollyhr,
        ldap,
        tenants: tenants_count,
        people,
    }
}

impl Fleet {
    /// Tenant `i`'s object: its key Secret, its subtree, webhooks to `receiver` when given, and
    /// `ldap_url` in place of the shared slapd when given (a directory that is down).
    pub fn object(
        &self,
        tenant: usize,
        receiver: Option<SocketAddr>,
        ldap_url: Option<&str>,
    ) -> Value {
        let url = ldap_url.map_or_else(|| self.ldap.url(), str::to_owned);
        let mut object = json!({
            "apiVersion": "peoplesync.dev/v1alpha1",
            "kind": "PeopleSync",
            "metadata": { "name": tenant_name(tenant) },
            "spec": {
                "source": { "hollyhr": {
                    "baseUrl": self.hollyhr.base_url(),
                    "apiKeySecretRef": { "name": tenant_name(tenant), "key": "apiKey" }
                } },
                "target": { "ldap": {
                    "url": url, "bindDn": slapd::ADMIN_DN,
                    "bindPasswordSecretRef": { "name": "ldap", "key": "password" },
                    "baseDn": tenant_dn(tenant), "peopleDn": tenant_people_dn(tenant),
                    "groupsDn": tenant_groups_dn(tenant)
                } },
                "schedule": { "pollInterval": "1m", "fullResyncInterval": "6h" }
            }
        });
        if let Some(receiver) = receiver {
            object["spec"]["webhook"] =
                json!({ "enabled": true, "publicUrl": format!("http://{receiver}") });
        }
        object
    }

    /// The Secrets (one key per tenant, one LDAP password) and the objects.
    pub async fn create(
        &self,
        client: &Client,
        namespace: &str,
        receiver: Option<SocketAddr>,
        down: &[usize],
    ) {
        super::secret(
            client,
            namespace,
            "ldap",
            "password",
            &self.ldap.admin_password,
        )
        .await;
        let dead = format!("ldap://{}", super::free_addr());
        for tenant in 0..self.tenants {
            super::secret(
                client,
                namespace,
                &tenant_name(tenant),
                "apiKey",
                &tenant_key(tenant),
            )
            .await;
            let url = down.contains(&tenant).then_some(dead.as_str());
            super::create(client, namespace, self.object(tenant, receiver, url))
                .await
                .expect("created");
        }
    }
}

/// Every object's conditions as `type → (status, reason, message)`.
pub type Conditions = BTreeMap<String, (String, String, String)>;

/// The objects in `namespace` by name, with their conditions.
pub async fn conditions(client: &Client, namespace: &str) -> BTreeMap<String, Conditions> {
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .expect("lists")
        .items
        .into_iter()
        .map(|object| {
            let name = object.metadata.name.clone().unwrap_or_default();
            let conditions = object
                .status
                .map(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.type_, (c.status, c.reason, c.message)))
                .collect();
            (name, conditions)
        })
        .collect()
}

/// Waits (bounded by `limit`) until `done` holds for the objects' conditions; the time it took.
pub async fn wait(
    client: &Client,
    namespace: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&BTreeMap<String, Conditions>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = conditions(client, namespace).await;
        if done(&now) {
            return started.elapsed();
        }
        if started.elapsed() > limit {
            let stuck: Vec<_> = now
                .iter()
                .filter(|(_, c)| !is(c, "Synced", "True"))
                .take(5)
                .collect();
            panic!("never: {what} (after {limit:?}); some not Synced: {stuck:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether a condition has the status.
pub fn is(conditions: &Conditions, kind: &str, status: &str) -> bool {
    conditions.get(kind).is_some_and(|(s, _, _)| s == status)
}
