//! The PeopleSync API and controller on a real kube-apiserver + etcd (built from their Go
//! modules; see scripts/controlplane/build.sh) with the HollyHR sandbox as the source.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::{Api, Client};
use peoplesync::controller;
use peoplesync::controlplane::ControlPlane;
use peoplesync::crd::PeopleSync;
use peoplesync::scim_server::ScimServer;
use peoplesync_sandbox::{self as sandbox, ApiKeySpec, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};
use support::*;

mod support;

const SERVICE_ACCOUNT: &str = "system:serviceaccount:peoplesync-system:peoplesync";
const NO_PEOPLE_READ_KEY: &str = "hhr_test_no_people_read";

async fn hollyhr() -> SandboxHandle {
    sandbox::start(SandboxConfig {
        people: 50,
        api_keys: vec![
            ApiKeySpec::new(sandbox::DEFAULT_API_KEY, sandbox::DEFAULT_SCOPES),
            ApiKeySpec::new(NO_PEOPLE_READ_KEY, ["org_units:read", "webhooks:manage"]),
        ],
        ..Default::default()
    })
    .await
    .expect("the sandbox starts")
}

/// Creates an object from raw JSON (no Rust type in between, so invalid specs reach the API server).
async fn create_raw(
    client: &Client,
    namespace: &str,
    object: Value,
) -> Result<DynamicObject, kube::Error> {
    let resource = ApiResource::erase::<PeopleSync>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let object: DynamicObject = serde_json::from_value(object).expect("an object");
    api.create(&PostParams::default(), &object).await
}

async fn run_controller(plane: &ControlPlane, namespace: &str) -> tokio::task::JoinHandle<()> {
    run_controller_at(plane, namespace, free_addr()).await
}

async fn run_controller_at(
    plane: &ControlPlane,
    namespace: &str,
    admin: std::net::SocketAddr,
) -> tokio::task::JoinHandle<()> {
    let config = controller::Config {
        admin_listen: admin,
        namespaces: peoplesync::watch::Namespaces::one(namespace.to_owned()),
        leader_election: None,
        instance: "test".into(),
        receiver_listen: None,
        receiver_limits: Default::default(),
        webhook: Default::default(),
        max_concurrent_syncs: 4,
    };
    let kube = plane.kube_config().await.expect("a kube config");
    tokio::spawn(async move {
        controller::run(kube, config)
            .await
            .expect("the controller runs");
    })
}

#[tokio::test]
async fn the_crd_installs_and_kubectl_shows_the_printer_columns() {
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    create(
        &client,
        "default",
        people_sync("acme", "https://acme.hollyhr.com/api/v1", UNUSED_SCIM),
    )
    .await
    .expect("valid object");
    let output = plane
        .kubectl()
        .args(["get", "peoplesyncs", "-n", "default"])
        .output()
        .expect("kubectl");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let header = table.lines().next().expect("a header line");
    let columns: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        columns,
        [
            "NAME",
            "SOURCE",
            "TARGET",
            "READY",
            "SYNCED",
            "PEOPLE",
            "WEBHOOK",
            "LAST SYNC",
            "AGE"
        ]
    );
    assert!(table.contains("acme"));
    let short = plane
        .kubectl()
        .args(["get", "psync", "-n", "default", "-o", "name"])
        .output()
        .expect("kubectl");
    assert_eq!(
        String::from_utf8_lossy(&short.stdout).trim(),
        "peoplesync.peoplesync.dev/acme"
    );
    let explain = plane
        .kubectl()
        .args(["explain", "peoplesync.spec.schedule.pollInterval"])
        .output()
        .expect("kubectl");
    assert!(
        String::from_utf8_lossy(&explain.stdout).contains("at least `30s`"),
        "{}",
        String::from_utf8_lossy(&explain.stdout)
    );
    let version = plane
        .kubectl()
        .args(["version", "-o", "json"])
        .output()
        .expect("kubectl");
    let version: Value = serde_json::from_slice(&version.stdout).expect("json");
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.34.4");
}

#[tokio::test]
async fn invalid_specs_are_rejected_with_messages_a_person_understands() {
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    let base = people_sync("x", "https://acme.hollyhr.com/api/v1", UNUSED_SCIM);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "two targets",
            json!({"target": {"scim": base["spec"]["target"]["scim"], "ldap": {"url": "ldap://x:389", "bindDn": "a", "bindPasswordSecretRef": {"name": "a", "key": "b"}, "baseDn": "b", "peopleDn": "c"}}}),
            "set exactly one target",
        ),
        ("no target", json!({"target": {}}), "set exactly one target"),
        ("no source", json!({"source": {}}), "set exactly one source"),
        (
            "poll too short",
            json!({"schedule": {"pollInterval": "10s"}}),
            "pollInterval must be at least 30s",
        ),
        (
            "not a duration",
            json!({"schedule": {"pollInterval": "soon"}}),
            "pollInterval",
        ),
        (
            "resync shorter than poll",
            json!({"schedule": {"pollInterval": "1h", "fullResyncInterval": "30m"}}),
            "must not be shorter than",
        ),
        (
            "plain http source",
            json!({"source": {"hollyhr": {"baseUrl": "http://hollyhr.example.com/api/v1", "apiKeySecretRef": {"name": "h", "key": "k"}}}}),
            "must be an https:// URL",
        ),
        (
            "page size",
            json!({"source": {"hollyhr": {"baseUrl": "https://a.hollyhr.com/api/v1", "pageSize": 500, "apiKeySecretRef": {"name": "h", "key": "k"}}}}),
            "pageSize must be between 1 and 100",
        ),
        (
            "ldap url",
            json!({"target": {"ldap": {"url": "http://x", "bindDn": "a", "bindPasswordSecretRef": {"name": "a", "key": "b"}, "baseDn": "b", "peopleDn": "c"}}}),
            "ldap://host:port",
        ),
        (
            "ldaps with starttls",
            json!({"target": {"ldap": {"url": "ldaps://x:636", "startTls": true, "bindDn": "a", "bindPasswordSecretRef": {"name": "a", "key": "b"}, "baseDn": "b", "peopleDn": "c"}}}),
            "startTls cannot be combined",
        ),
        (
            "initial password outside AD",
            json!({"target": {"ldap": {"url": "ldaps://x:636", "initialPassword": "Random", "bindDn": "a", "bindPasswordSecretRef": {"name": "a", "key": "b"}, "baseDn": "b", "peopleDn": "c"}}}),
            "initialPassword applies to the Active Directory profile",
        ),
        (
            "initial password in the clear",
            json!({"target": {"ldap": {"url": "ldap://x:389", "profile": "ad", "initialPassword": "Random", "bindDn": "a", "bindPasswordSecretRef": {"name": "a", "key": "b"}, "baseDn": "b", "peopleDn": "c"}}}),
            "initialPassword Random needs an ldaps:// URL or startTls",
        ),
        (
            "webhook without url",
            json!({"webhook": {"enabled": true}}),
            "publicUrl is required",
        ),
        (
            "guard percent",
            json!({"guard": {"maxPercent": 150}}),
            "maxPercent must be between 0 and 100",
        ),
        (
            "delete later without delay",
            json!({"deprovision": {"action": "DisableThenDelete"}}),
            "delay is required",
        ),
        (
            "unknown action",
            json!({"deprovision": {"action": "Shred"}}),
            "Unsupported value",
        ),
        (
            "two sources",
            json!({"source": {"hollyhr": base["spec"]["source"]["hollyhr"], "personio": {"credentialsSecretRef": {"name": "p"}}}}),
            "set exactly one source",
        ),
        (
            "personio page size",
            json!({"source": {"personio": {"pageSize": 100, "credentialsSecretRef": {"name": "p"}}}}),
            "pageSize must be between 1 and 50",
        ),
        (
            "personio app id",
            json!({"source": {"personio": {"appId": "my app", "credentialsSecretRef": {"name": "p"}}}}),
            "UPPER_SNAKE_CASE",
        ),
        (
            "empty secret name",
            json!({"source": {"hollyhr": {"baseUrl": "https://a.hollyhr.com/api/v1", "apiKeySecretRef": {"name": "", "key": "k"}}}}),
            "a Secret name is 1 to 253 characters",
        ),
        (
            "a template over 4096 characters",
            json!({"target": {"scim": {
                "baseUrl": "https://scim.example.com/v2",
                "tokenSecretRef": {"name": "s", "key": "t"},
                "attributes": {"title": "x".repeat(1024 * 1024)}
            }}}),
            "spec.target.scim.attributes.title: Too long: may not be more than 4096",
        ),
        (
            "too many templates",
            json!({"target": {"ldap": {
                "url": "ldap://x:389", "bindDn": "a",
                "bindPasswordSecretRef": {"name": "a", "key": "b"}, "baseDn": "b", "peopleDn": "c",
                "attributes": (0..200).map(|i| (format!("a{i}"), json!("{{ id }}"))).collect::<serde_json::Map<_, _>>()
            }}}),
            "must have at most 128 items",
        ),
    ];
    let mut rejected = 0;
    for (what, patch, message) in cases {
        let mut object = base.clone();
        for (key, value) in patch.as_object().expect("object") {
            object["spec"][key] = value.clone();
        }
        object["metadata"]["name"] = json!(what.replace(' ', "-"));
        match create_raw(&client, "default", object).await {
            Ok(_) => panic!("{what}: accepted"),
            Err(kube::Error::Api(error)) => {
                assert_eq!(error.code, 422, "{what}: {error:?}");
                assert!(error.message.contains(message), "{what}: {}", error.message);
                rejected += 1;
            }
            Err(other) => panic!("{what}: {other}"),
        }
    }
    assert!(rejected >= 8);
}

#[tokio::test]
async fn a_missing_secret_is_reported_and_creating_it_recovers_without_a_restart() {
    let plane = control_plane().await;
    let hollyhr = hollyhr().await;
    let scim = ScimServer::start().await.expect("scim2-server starts");
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("secrets").await.expect("namespace");
    let controller = run_controller(&plane, &ns).await;
    create(
        &client,
        &ns,
        people_sync("acme", &hollyhr.base_url(), &scim.base_url_for(&ns)),
    )
    .await
    .expect("created");
    let ready = wait_condition(
        &client,
        &ns,
        "acme",
        "Ready",
        "False",
        Some("SecretNotFound"),
    )
    .await;
    assert!(
        ready["message"]
            .as_str()
            .expect("message")
            .contains(&format!("{ns}/hollyhr"))
    );
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    wait_condition(
        &client,
        &ns,
        "acme",
        "Ready",
        "False",
        Some("SecretNotFound"),
    )
    .await; // scim Secret still missing
    secret(&client, &ns, "scim", "token", &scim.token).await;
    wait_condition(
        &client,
        &ns,
        "acme",
        "SourceReachable",
        "True",
        Some("Reachable"),
    )
    .await;
    let ready = wait_condition(&client, &ns, "acme", "Ready", "True", Some("Ready")).await;
    assert_eq!(ready["observedGeneration"], 1);
    // Events were recorded for the transitions. The controller publishes them after it writes
    // the status, so they may land a moment after Ready is seen.
    let reasons = || {
        let events = plane
            .kubectl()
            .args([
                "get",
                "events.events.k8s.io",
                "-n",
                &ns,
                "-o",
                "jsonpath={.items[*].reason}",
            ])
            .output()
            .expect("kubectl");
        String::from_utf8_lossy(&events.stdout).to_string()
    };
    operator::eventually("Events for SecretNotFound and Reachable", || {
        let reasons = reasons();
        async move { reasons.contains("SecretNotFound") && reasons.contains("Reachable") }
    })
    .await;
    controller.abort();
}

#[tokio::test]
async fn a_key_without_people_read_is_reported_as_missing_scope() {
    let plane = control_plane().await;
    let hollyhr = hollyhr().await;
    let scim = ScimServer::start().await.expect("scim2-server starts");
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("scope").await.expect("namespace");
    secret(&client, &ns, "hollyhr", "apiKey", NO_PEOPLE_READ_KEY).await;
    secret(&client, &ns, "scim", "token", &scim.token).await;
    let controller = run_controller(&plane, &ns).await;
    create(
        &client,
        &ns,
        people_sync("acme", &hollyhr.base_url(), &scim.base_url_for(&ns)),
    )
    .await
    .expect("created");
    let source = wait_condition(
        &client,
        &ns,
        "acme",
        "SourceReachable",
        "False",
        Some("MissingScope"),
    )
    .await;
    assert!(
        source["message"]
            .as_str()
            .expect("message")
            .contains("people:read"),
        "{source}"
    );
    wait_condition(&client, &ns, "acme", "Ready", "False", Some("MissingScope")).await;
    controller.abort();
}

#[tokio::test]
async fn deleting_a_peoplesync_releases_the_finalizer_and_removes_it() {
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("delete").await.expect("namespace");
    let controller = run_controller(&plane, &ns).await;
    create(
        &client,
        &ns,
        people_sync("acme", "https://acme.hollyhr.com/api/v1", UNUSED_SCIM),
    )
    .await
    .expect("created");
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !api
        .get("acme")
        .await
        .expect("exists")
        .metadata
        .finalizers
        .unwrap_or_default()
        .iter()
        .any(|f| f == controller::FINALIZER)
    {
        assert!(Instant::now() < deadline, "the finalizer was never added");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.delete("acme", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.get_opt("acme").await.expect("read").is_some() {
        assert!(Instant::now() < deadline, "the object was never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    controller.abort();
}

struct Replica {
    identity: &'static str,
    admin: SocketAddr,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_replica(plane: &ControlPlane, identity: &'static str, namespace: &str) -> Replica {
    let admin = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_peoplesync"))
        .args([
            "controller",
            "--leader-elect",
            "--lease-namespace",
            "peoplesync-system",
            "--lease-duration-seconds",
            "4",
            "--lease-grace-seconds",
            "1",
        ])
        .args([
            "--identity",
            identity,
            "--namespace",
            namespace,
            "--admin-listen",
            &admin.to_string(),
            // Each replica its own receiver port (both run on this machine).
            "--receiver-listen",
            &free_addr().to_string(),
        ])
        .env("KUBECONFIG", plane.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the controller binary starts");
    Replica {
        identity,
        admin,
        child,
    }
}

async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "peoplesync-system");
    leases
        .get_opt("peoplesync-controller")
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec.and_then(|spec| spec.holder_identity))
}

/// A replica's /metrics.
async fn scrape(replica: &Replica) -> String {
    reqwest::get(format!("http://{}/metrics", replica.admin))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The value of an unlabelled gauge on a replica's /metrics.
async fn gauge(replica: &Replica, name: &str) -> Option<i64> {
    scrape(replica)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} "))?.parse().ok())
}

async fn reconciles(replica: &Replica) -> u64 {
    scrape(replica)
        .await
        .lines()
        .filter(|line| line.starts_with("peoplesync_reconciles_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn two_controllers_share_one_lease_and_the_survivor_takes_over() {
    let plane = control_plane().await;
    let hollyhr = hollyhr().await;
    let scim = ScimServer::start().await.expect("scim2-server starts");
    let client = plane.client().await.expect("client");
    let system: Api<Namespace> = Api::all(client.clone());
    system
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "peoplesync-system"}}))
                .expect("ns"),
        )
        .await
        .expect("namespace");
    let ns = plane.create_namespace("leader").await.expect("namespace");
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&client, &ns, "scim", "token", &scim.token).await;
    let mut replicas = vec![
        start_replica(&plane, "replica-a", &ns),
        start_replica(&plane, "replica-b", &ns),
    ];

    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(holder) = lease_holder(&client).await {
            break holder;
        }
        assert!(Instant::now() < deadline, "nobody took the Lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    create(
        &client,
        &ns,
        people_sync("first", &hollyhr.base_url(), &scim.base_url_for(&ns)),
    )
    .await
    .expect("created");
    wait_condition(&client, &ns, "first", "Ready", "True", None).await;
    let (leading, standby): (Vec<&Replica>, Vec<&Replica>) =
        replicas.iter().partition(|r| r.identity == leader);
    assert_eq!(leading.len(), 1, "the holder is one of ours: {leader}");
    assert!(reconciles(leading[0]).await > 0, "the leader reconciles");
    assert_eq!(
        reconciles(standby[0]).await,
        0,
        "the standby never reconciles"
    );
    // What PeopleSyncNotLeading reads: 1 on the leader, 0 on the standby.
    assert_eq!(gauge(leading[0], "peoplesync_leader").await, Some(1));
    assert_eq!(gauge(standby[0], "peoplesync_leader").await, Some(0));

    // Kill the leader: the survivor takes the Lease and reconciles new objects.
    let position = replicas
        .iter()
        .position(|r| r.identity == leader)
        .expect("leader");
    let dead = replicas.remove(position);
    drop(dead);
    let survivor = replicas[0].identity;
    let deadline = Instant::now() + Duration::from_secs(30);
    while lease_holder(&client).await.as_deref() != Some(survivor) {
        assert!(Instant::now() < deadline, "the Lease was not handed over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    create(
        &client,
        &ns,
        people_sync("second", &hollyhr.base_url(), &scim.base_url_for(&ns)),
    )
    .await
    .expect("created");
    wait_condition(&client, &ns, "second", "Ready", "True", None).await;
    assert!(
        reconciles(&replicas[0]).await > 0,
        "the survivor reconciles now"
    );
}

/// The operator's own namespace, where deploy/rbac.yaml (the chart's default render) lets it
/// serve PeopleSyncs.
const OPERATOR_NAMESPACE: &str = "peoplesync-system";

/// Applies deploy/rbac.yaml (ServiceAccount, a Role in peoplesync-system, the user roles and
/// the admission policies) and waits until the policies are in force.
async fn install_rbac(plane: &ControlPlane) {
    let admin = plane.client().await.expect("client");
    let system: Api<Namespace> = Api::all(admin.clone());
    if system
        .get_opt(OPERATOR_NAMESPACE)
        .await
        .expect("read")
        .is_none()
    {
        system
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": OPERATOR_NAMESPACE}}))
                    .expect("ns"),
            )
            .await
            .expect("namespace");
    }
    let rbac = plane
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rbac.yaml"),
        ])
        .output()
        .expect("kubectl");
    assert!(
        rbac.status.success(),
        "{}",
        String::from_utf8_lossy(&rbac.stderr)
    );
    // A policy is enforced once the API server has compiled it: probe with a Secret the
    // operator may not create until it is refused.
    let operator = plane
        .client_as(SERVICE_ACCOUNT, &OPERATOR_GROUPS)
        .await
        .expect("client");
    let secrets: Api<Secret> = Api::namespaced(operator, OPERATOR_NAMESPACE);
    let probe: Secret =
        serde_json::from_value(json!({"metadata": {"name": "policy-probe"}})).expect("a Secret");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match secrets
            .create(
                &PostParams {
                    dry_run: true,
                    ..PostParams::default()
                },
                &probe,
            )
            .await
        {
            Err(kube::Error::Api(refused)) if refused.message.contains("its own Secrets") => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("the admission policy is not in force: {other:?}"),
        }
    }
}

const OPERATOR_GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:peoplesync-system",
    "system:authenticated",
];

/// A user bound to the chart's ClusterRoles `roles` in `namespace`.
async fn user_with(plane: &ControlPlane, user: &str, namespace: &str, roles: &[&str]) -> Client {
    for role in roles {
        let bind = plane
            .kubectl()
            .args([
                "create",
                "rolebinding",
                &format!("{user}-{role}"),
                "-n",
                namespace,
            ])
            .arg(format!("--clusterrole={role}"))
            .arg(format!("--user={user}"))
            .output()
            .expect("kubectl");
        assert!(
            bind.status.success(),
            "{}",
            String::from_utf8_lossy(&bind.stderr)
        );
    }
    plane
        .client_as(user, &["system:authenticated"])
        .await
        .expect("client")
}

fn refusal(result: Result<impl std::fmt::Debug, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(response)) => {
            assert!(response.code == 403 || response.code == 422, "{response:?}");
            response.message
        }
        other => panic!("the API server allowed it: {other:?}"),
    }
}

/// A server-side apply under the operator's field manager, as `webhook::signing::write` does.
async fn apply<K>(api: &Api<K>, name: &str, object: &Value) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &kube::api::PatchParams::apply("peoplesync-controller").force(),
        &kube::api::Patch::Apply(object),
    )
    .await
}

/// A JSON merge patch, as `kubectl annotate` and `kubectl patch --type merge` send.
async fn merge<K>(api: &Api<K>, name: &str, patch: &Value) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(patch),
    )
    .await
}

#[tokio::test]
async fn the_controller_works_with_exactly_its_rbac_and_can_do_nothing_more() {
    let plane = control_plane().await;
    let hollyhr = hollyhr().await;
    let scim = ScimServer::start().await.expect("scim2-server starts");
    let admin = plane.client().await.expect("client");
    install_rbac(&plane).await;
    let ns = OPERATOR_NAMESPACE.to_owned();
    let other = plane.create_namespace("other").await.expect("namespace");
    secret(&admin, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&admin, &ns, "scim", "token", &scim.token).await;
    // Somebody else's Secret, in the served namespace and elsewhere.
    secret(&admin, &ns, "payroll", "token", "not-peoplesyncs").await;
    secret(&admin, &other, "payroll", "token", "not-peoplesyncs").await;

    // The controller, impersonating its ServiceAccount, with leader election on: everything works.
    let as_operator = plane
        .kube_config_as(SERVICE_ACCOUNT, &OPERATOR_GROUPS)
        .await
        .expect("impersonating config");
    let config = controller::Config {
        admin_listen: free_addr(),
        namespaces: peoplesync::watch::Namespaces::one(OPERATOR_NAMESPACE),
        leader_election: Some(controller::leader::LeaseConfig {
            namespace: OPERATOR_NAMESPACE.into(),
            name: "peoplesync-controller".into(),
            identity: "rbac-test".into(),
            duration_seconds: 4,
            grace_seconds: 1,
            label_pod: None,
        }),
        instance: "rbac-test".into(),
        receiver_listen: None,
        receiver_limits: Default::default(),
        webhook: Default::default(),
        max_concurrent_syncs: 4,
    };
    let running =
        tokio::spawn(async move { controller::run(as_operator, config).await.expect("runs") });
    create(
        &admin,
        &ns,
        people_sync("acme", &hollyhr.base_url(), &scim.base_url_for(&ns)),
    )
    .await
    .expect("created");
    wait_condition(&admin, &ns, "acme", "Ready", "True", Some("Ready")).await;

    // A Secret squatting on another object's signing Secret name: the operator's write is
    // refused by the API server (the admission policy), the object says so, and the Secret
    // stays as it was.
    secret(
        &admin,
        &ns,
        "squat-webhook-signing",
        "token",
        "not-peoplesyncs",
    )
    .await;
    let mut squat = people_sync("squat", &hollyhr.base_url(), &scim.base_url_for(&ns));
    squat["spec"]["webhook"] =
        json!({ "enabled": true, "publicUrl": "https://peoplesync.example.com" });
    create(&admin, &ns, squat).await.expect("created");
    let refused = wait_condition(
        &admin,
        &ns,
        "squat",
        "WebhookRegistered",
        "False",
        Some("SecretWriteFailed"),
    )
    .await;
    let message = refused["message"].as_str().unwrap_or_default();
    println!("the operator's write of a squatted signing Secret: {message}");
    assert!(
        message.contains("owned-secrets") || message.contains("denied"),
        "the condition says the API server refused the write: {refused}"
    );
    let squatted: Secret = Api::namespaced(admin.clone(), &ns)
        .get("squat-webhook-signing")
        .await
        .expect("still there");
    assert!(
        squatted.metadata.labels.unwrap_or_default().is_empty()
            && squatted.data.unwrap_or_default().keys().collect::<Vec<_>>() == ["token"],
        "the squatting Secret is untouched"
    );
    running.abort();

    // The can-i matrix, asked of the API server as the ServiceAccount: what it needs is
    // allowed, everything around it is not. Printed as README's Security review.
    let can = |verb: &str, resource: &str, scope: &str| -> bool {
        let mut command = plane.kubectl();
        command.args(["auth", "can-i", verb, resource]);
        match scope {
            "cluster" => {}
            "all namespaces" => {
                command.arg("-A");
            }
            namespace => {
                command.args(["-n", namespace]);
            }
        }
        let output = command
            .args(["--as", SERVICE_ACCOUNT])
            .output()
            .expect("kubectl");
        String::from_utf8_lossy(&output.stdout).trim() == "yes"
    };
    let served = "peoplesync-system (served)";
    let elsewhere = "another namespace";
    let rows: &[(&str, &str, &str, bool, &str)] = &[
        (
            "watch",
            "peoplesyncs.peoplesync.dev",
            served,
            true,
            "its objects",
        ),
        (
            "patch",
            "peoplesyncs.peoplesync.dev",
            served,
            true,
            "the finalizer",
        ),
        (
            "patch",
            "peoplesyncs.peoplesync.dev/status",
            served,
            true,
            "status, by server-side apply",
        ),
        (
            "create",
            "peoplesyncs.peoplesync.dev",
            served,
            false,
            "users create them",
        ),
        ("delete", "peoplesyncs.peoplesync.dev", served, false, ""),
        (
            "update",
            "peoplesyncs.peoplesync.dev/status",
            served,
            false,
            "only patch",
        ),
        (
            "watch",
            "peoplesyncs.peoplesync.dev",
            "all namespaces",
            false,
            "served namespaces only",
        ),
        (
            "get",
            "secrets",
            served,
            true,
            "referenced Secrets, by name",
        ),
        (
            "watch",
            "secrets",
            served,
            true,
            "metadata, and its own Secrets by label",
        ),
        (
            "create",
            "secrets",
            served,
            true,
            "its signing Secret; the admission policy refuses any other",
        ),
        (
            "patch",
            "secrets",
            served,
            true,
            "its signing Secret; the admission policy refuses any other",
        ),
        ("update", "secrets", served, false, ""),
        (
            "delete",
            "secrets",
            served,
            false,
            "the owner reference removes its Secret",
        ),
        (
            "get",
            "secrets",
            elsewhere,
            false,
            "no access outside served namespaces",
        ),
        ("list", "secrets", "all namespaces", false, ""),
        (
            "create",
            "events.events.k8s.io",
            served,
            true,
            "Events on its objects",
        ),
        ("create", "events", served, false, "only events.k8s.io"),
        (
            "create",
            "leases.coordination.k8s.io",
            OPERATOR_NAMESPACE,
            true,
            "leader election",
        ),
        (
            "patch",
            "leases.coordination.k8s.io",
            OPERATOR_NAMESPACE,
            true,
            "leader election",
        ),
        (
            "delete",
            "leases.coordination.k8s.io",
            OPERATOR_NAMESPACE,
            false,
            "",
        ),
        ("create", "leases.coordination.k8s.io", "default", false, ""),
        (
            "patch",
            "pods",
            OPERATOR_NAMESPACE,
            true,
            "the leader label on its own Pods",
        ),
        ("patch", "pods", elsewhere, false, ""),
        ("delete", "pods", OPERATOR_NAMESPACE, false, ""),
        ("list", "pods", "all namespaces", false, ""),
        ("get", "configmaps", served, false, ""),
        (
            "approve",
            "peoplesyncs.peoplesync.dev",
            served,
            false,
            "approvals are people's",
        ),
        (
            "create",
            "clusterroles.rbac.authorization.k8s.io",
            "cluster",
            false,
            "",
        ),
        (
            "create",
            "customresourcedefinitions.apiextensions.k8s.io",
            "cluster",
            false,
            "",
        ),
        ("impersonate", "users", "cluster", false, ""),
        ("get", "nodes", "cluster", false, ""),
    ];
    let mut review =
        String::from("| verb | resource | where | allowed | why |\n|---|---|---|---|---|\n");
    for (verb, resource, scope, expected, why) in rows {
        let namespace = match *scope {
            s if s == served => ns.as_str(),
            s if s == elsewhere => other.as_str(),
            s => s,
        };
        let answer = can(verb, resource, namespace);
        assert_eq!(
            answer, *expected,
            "can-i {verb} {resource} in {scope}: {answer}, expected {expected}"
        );
        review.push_str(&format!(
            "| {verb} | {resource} | {scope} | {} | {why} |\n",
            if answer { "yes" } else { "no" }
        ));
    }
    eprintln!(
        "The operator's permissions, as the API server answers `kubectl auth can-i --as {SERVICE_ACCOUNT}`:\n\n{review}"
    );

    // What RBAC cannot say, the admission policy does: as the ServiceAccount, a Secret without
    // PeopleSync's label is refused by the API server, and so is taking one over.
    let operator = plane
        .client_as(SERVICE_ACCOUNT, &OPERATOR_GROUPS)
        .await
        .expect("client");
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), &ns);
    let unlabelled: Secret = serde_json::from_value(json!({
        "metadata": {"name": "not-ours"}, "stringData": {"k": "v"}
    }))
    .expect("a Secret");
    let message = refusal(secrets.create(&PostParams::default(), &unlabelled).await);
    assert!(message.contains("its own Secrets"), "{message}");
    let take_over = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "payroll", "labels": {
            "peoplesync.dev/webhook-signing": "true", "peoplesync.dev/peoplesync": "acme"}},
        "stringData": {"token": "stolen"}
    });
    let message = refusal(apply(&secrets, "payroll", &take_over).await);
    assert!(message.contains("does not take over"), "{message}");
    let plain_patch = json!({"stringData": {"token": "changed"}});
    refusal(merge(&secrets, "payroll", &plain_patch).await);
    let payroll: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let untouched = payroll.get("payroll").await.expect("read");
    assert_eq!(
        untouched.data.expect("data")["token"].0,
        b"not-peoplesyncs",
        "the API server kept the Secret as it was"
    );
    // Its own signing Secret: created and patched.
    let own = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "acme-webhook-signing", "labels": {
            "peoplesync.dev/webhook-signing": "true", "peoplesync.dev/peoplesync": "acme"}},
        "stringData": {"current": "whsec_test"}
    });
    for _ in 0..2 {
        apply(&secrets, "acme-webhook-signing", &own)
            .await
            .expect("its own Secret is written");
    }
    // ...but not moved to another PeopleSync.
    let moved = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "acme-webhook-signing", "labels": {
            "peoplesync.dev/webhook-signing": "true", "peoplesync.dev/peoplesync": "other"}},
    });
    refusal(apply(&secrets, "acme-webhook-signing", &moved).await);

    // Approvals are decisions: an editor may not approve, an approver may, naming herself.
    let eve = user_with(&plane, "eve", &ns, &["peoplesync-edit", "peoplesync-view"]).await;
    let alice = user_with(
        &plane,
        "alice",
        &ns,
        &["peoplesync-edit", "peoplesync-view", "peoplesync-approver"],
    )
    .await;
    let approve = |by: &str| {
        json!({"metadata": {"annotations": {
            "peoplesync.dev/approve-deprovision": "0123abcd", "peoplesync.dev/approved-by": by}}})
    };
    let as_eve: Api<PeopleSync> = Api::namespaced(eve, &ns);
    let message = refusal(merge(&as_eve, "acme", &approve("eve")).await);
    assert!(message.contains("eve may not approve"), "{message}");
    // An editor still edits.
    merge(
        &as_eve,
        "acme",
        &json!({"metadata": {"labels": {"team": "identity"}}}),
    )
    .await
    .expect("an editor edits");
    let as_alice: Api<PeopleSync> = Api::namespaced(alice, &ns);
    let message = refusal(merge(&as_alice, "acme", &approve("bob")).await);
    assert!(
        message.contains("set the annotation peoplesync.dev/approved-by to alice"),
        "{message}"
    );
    merge(&as_alice, "acme", &approve("alice"))
        .await
        .expect("an approver approves");
}

#[tokio::test]
async fn an_ldap_target_is_checked_with_a_bind_and_a_wrong_password_shows() {
    use peoplesync::slapd::Slapd;
    let plane = control_plane().await;
    let hollyhr = hollyhr().await;
    let ldap = Slapd::start().await.expect("slapd starts");
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("ldap").await.expect("namespace");
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&client, &ns, "ldap", "password", &ldap.admin_password).await;
    let controller = run_controller(&plane, &ns).await;
    let object = ldap_people_sync(&hollyhr.base_url(), &ldap, false);
    create(&client, &ns, object).await.expect("created");
    wait_condition(
        &client,
        &ns,
        "acme",
        "DirectoryReachable",
        "True",
        Some("Reachable"),
    )
    .await;
    wait_condition(&client, &ns, "acme", "Ready", "True", Some("Ready")).await;

    // A wrong password in the Secret: the Secret watch wakes the object at once.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let patch = json!({ "stringData": { "password": "wrong-password" } });
    secrets
        .patch(
            "ldap",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("patched");
    let directory = wait_condition(
        &client,
        &ns,
        "acme",
        "DirectoryReachable",
        "False",
        Some("BindFailed"),
    )
    .await;
    assert!(
        !directory["message"]
            .as_str()
            .expect("message")
            .contains("wrong-password"),
        "{directory}"
    );
    wait_condition(&client, &ns, "acme", "Ready", "False", Some("BindFailed")).await;

    // A plain ldap:// bind to a host that is not loopback is refused before any connection
    // (the password would travel in clear), until the spec allows it.
    let mut plain = ldap_people_sync(&hollyhr.base_url(), &ldap, false);
    plain["metadata"]["name"] = json!("plain");
    plain["spec"]["target"]["ldap"]["url"] = json!("ldap://directory.example.com:389");
    create(&client, &ns, plain).await.expect("created");
    let refused = wait_condition(
        &client,
        &ns,
        "plain",
        "DirectoryReachable",
        "False",
        Some("PlaintextRefused"),
    )
    .await;
    let message = refused["message"].as_str().expect("message");
    assert!(
        message.contains("directory.example.com") && message.contains("allowPlaintext"),
        "{message}"
    );
    controller.abort();
}

#[tokio::test]
async fn a_peoplesync_syncs_into_slapd_and_a_held_deprovision_waits_for_its_approval() {
    use peoplesync::slapd::Slapd;
    let plane = control_plane().await;
    let hollyhr = hollyhr().await;
    let ldap = Slapd::start().await.expect("slapd starts");
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("sync").await.expect("namespace");
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&client, &ns, "ldap", "password", &ldap.admin_password).await;
    let admin = free_addr();
    let controller = run_controller_at(&plane, &ns, admin).await;
    let object = ldap_people_sync(&hollyhr.base_url(), &ldap, true);
    create(&client, &ns, object).await.expect("created");
    let synced = wait_condition(&client, &ns, "acme", "Synced", "True", Some("Synced")).await;
    assert!(
        synced["message"]
            .as_str()
            .expect("message")
            .contains("full cycle"),
        "{synced}"
    );
    wait_condition(&client, &ns, "acme", "Ready", "True", Some("Ready")).await;
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);
    let status = api
        .get("acme")
        .await
        .expect("read")
        .status
        .expect("a status");
    assert_eq!(status.counts.as_ref().map(|c| c.people), Some(50));
    assert!(status.checkpoint.is_some() && status.last_full_sync_time.is_some());
    let table = plane
        .kubectl()
        .args(["get", "peoplesyncs", "-n", &ns])
        .output()
        .expect("kubectl");
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains("HollyHR") && table.contains("True") && table.contains("50"),
        "{table}"
    );
    // The entries are in slapd.
    let directory = peoplesync::directory::ldap::LdapDirectory::connect(
        ldap.ldap_config().owned_by_object(&ns, "acme"),
    )
    .await
    .expect("binds");
    let entries: Vec<peoplesync::directory::Entry> = {
        use futures::TryStreamExt;
        use peoplesync::directory::Directory;
        directory.entries().try_collect().await.expect("lists")
    };
    assert!(entries.len() > 40, "{}", entries.len());

    // HollyHR suddenly returns nobody: the guard holds every deprovision.
    hollyhr
        .controls()
        .settings(json!({"empty_tenant": true}))
        .await
        .expect("set");
    // A spec change makes the next cycle a full one.
    let patch = json!({"spec": {"guard": {"maxCount": 5, "maxPercent": 5}}});
    api.patch(
        "acme",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .expect("patched");
    let guard = wait_condition(
        &client,
        &ns,
        "acme",
        "DeprovisionGuard",
        "True",
        Some("EmptySource"),
    )
    .await;
    wait_condition(&client, &ns, "acme", "Synced", "False", Some("GuardHeld")).await;
    let status = api
        .get("acme")
        .await
        .expect("read")
        .status
        .expect("a status");
    let hash = status.last_plan.expect("a plan").hash;
    assert!(guard["message"].as_str().expect("message").contains(&hash));

    // The approval releases exactly that plan; the admission policy makes it a decision of
    // someone who holds the approve verb, and names her.
    install_rbac(&plane).await;
    let alice = user_with(
        &plane,
        "alice",
        &ns,
        &["peoplesync-edit", "peoplesync-view", "peoplesync-approver"],
    )
    .await;
    let approve = json!({"metadata": {"annotations": {
        "peoplesync.dev/approve-deprovision": hash, "peoplesync.dev/approved-by": "alice"}}});
    merge(&Api::<PeopleSync>::namespaced(alice, &ns), "acme", &approve)
        .await
        .expect("annotated");
    let approved = wait_condition(
        &client,
        &ns,
        "acme",
        "DeprovisionGuard",
        "False",
        Some("Approved"),
    )
    .await;
    assert!(
        approved["message"]
            .as_str()
            .expect("message")
            .contains(&format!("{hash} approved by alice")),
        "{approved}"
    );
    let status = api
        .get("acme")
        .await
        .expect("read")
        .status
        .expect("a status");
    assert_eq!(
        status
            .sync_state
            .as_ref()
            .and_then(|s| s.approved_by.as_deref()),
        Some("alice")
    );
    // The Event says who approved (Events are published after the status write).
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    operator::eventually("an Event naming the approver", || async {
        events
            .list(&Default::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter_map(|e| e.note)
            .any(|n| n.contains("approved by alice"))
    })
    .await;
    assert!(
        status.counts.as_ref().is_some_and(|c| c.disabled > 40),
        "{:?}",
        status.counts
    );
    // Three cycles and a spec change later, the first LDAP connection is still the one in use.
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // What the alerts read: the object's conditions, its last cycle, its poll interval.
    for series in [
        format!(
            "peoplesync_condition{{namespace=\"{ns}\",name=\"acme\",type=\"Synced\",status=\"True\"}} 1\n"
        ),
        format!(
            "peoplesync_condition{{namespace=\"{ns}\",name=\"acme\",type=\"Synced\",status=\"False\"}} 0\n"
        ),
        format!(
            "peoplesync_condition{{namespace=\"{ns}\",name=\"acme\",type=\"DeprovisionGuard\",status=\"False\"}} 1\n"
        ),
        format!("peoplesync_poll_interval_seconds{{namespace=\"{ns}\",name=\"acme\"}} "),
        format!("peoplesync_last_sync_timestamp_seconds{{namespace=\"{ns}\",name=\"acme\"}} "),
        "peoplesync_leader 1\n".to_owned(),
    ] {
        assert!(
            metrics.contains(&series),
            "no {series:?} in:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("condition") || l.contains("_seconds{"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        metrics.contains("peoplesync_directory_connections_total 1\n"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("connections") || l.contains("reconciles_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    controller.abort();
}

/// A Secret with several keys.
async fn secret_with(client: &Client, namespace: &str, name: &str, data: Value) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": name }, "stringData": data
    }))
    .expect("a Secret");
    api.create(&PostParams::default(), &secret)
        .await
        .expect("Secret created");
}

#[tokio::test]
async fn a_personio_peoplesync_syncs_into_slapd_and_wrong_credentials_show_as_unauthorized() {
    use peoplesync::slapd::Slapd;
    use peoplesync_sandbox::personio::{self as personio, PersonioSandboxConfig};
    let plane = control_plane().await;
    let sandbox = personio::start(PersonioSandboxConfig {
        people: 40,
        ..PersonioSandboxConfig::default()
    })
    .await
    .expect("the Personio sandbox starts");
    let ldap = Slapd::start().await.expect("slapd starts");
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("personio").await.expect("namespace");
    secret_with(
        &client,
        &ns,
        "personio",
        json!({"client_id": personio::DEFAULT_CLIENT_ID, "client_secret": personio::DEFAULT_CLIENT_SECRET}),
    )
    .await;
    secret_with(
        &client,
        &ns,
        "personio-wrong",
        json!({"client_id": personio::DEFAULT_CLIENT_ID, "client_secret": "papi-not-the-secret"}),
    )
    .await;
    secret(&client, &ns, "ldap", "password", &ldap.admin_password).await;
    let controller = run_controller(&plane, &ns).await;
    let mut object = ldap_people_sync("https://unused.example.com/api/v1", &ldap, true);
    object["spec"]["source"] = json!({"personio": {
        "baseUrl": sandbox.base_url(),
        "credentialsSecretRef": {"name": "personio"},
        "appId": "PEOPLESYNC"
    }});
    create(&client, &ns, object.clone()).await.expect("created");
    let reachable = wait_condition(&client, &ns, "acme", "SourceReachable", "True", None).await;
    assert!(
        reachable["message"]
            .as_str()
            .expect("message")
            .contains("Personio"),
        "{reachable}"
    );
    wait_condition(&client, &ns, "acme", "Synced", "True", Some("Synced")).await;
    wait_condition(&client, &ns, "acme", "Ready", "True", Some("Ready")).await;
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);
    let status = api
        .get("acme")
        .await
        .expect("read")
        .status
        .expect("a status");
    assert_eq!(status.counts.as_ref().map(|c| c.people), Some(40));
    let table = plane
        .kubectl()
        .args(["get", "peoplesyncs", "-n", &ns])
        .output()
        .expect("kubectl");
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains("Personio") && table.contains("True") && table.contains("40"),
        "{table}"
    );
    let directory = peoplesync::directory::ldap::LdapDirectory::connect(
        ldap.ldap_config().owned_by_object(&ns, "acme"),
    )
    .await
    .expect("binds");
    let entries: Vec<peoplesync::directory::Entry> = {
        use futures::TryStreamExt;
        use peoplesync::directory::Directory;
        directory.entries().try_collect().await.expect("lists")
    };
    assert!(entries.len() > 30, "{}", entries.len());

    // The same object with a wrong client secret.
    object["metadata"]["name"] = json!("wrong");
    object["spec"]["source"]["personio"]["credentialsSecretRef"]["name"] = json!("personio-wrong");
    create(&client, &ns, object).await.expect("created");
    let refused = wait_condition(
        &client,
        &ns,
        "wrong",
        "SourceReachable",
        "False",
        Some("Unauthorized"),
    )
    .await;
    assert!(
        refused["message"]
            .as_str()
            .expect("message")
            .contains("client_secret"),
        "{refused}"
    );
    wait_condition(&client, &ns, "wrong", "Ready", "False", None).await;
    controller.abort();
}

/// Events on the real API server: a repeat of the same Event folds into one with a series
/// count, and an Event with another note (the next cycle's counts) is an Event of its own, with
/// its own note. kube's Recorder alone keys without the note and would show the first cycle's
/// note for every cycle within six minutes.
#[tokio::test]
async fn events_fold_repeats_and_keep_each_cycles_own_note() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::Resource as _;
    use kube::runtime::events::{Event, EventType, Reporter};

    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("events").await.expect("namespace");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let regarding: ConfigMap = maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "acme"}})).expect("a ConfigMap"),
        )
        .await
        .expect("created");
    let reference = regarding.object_ref(&());
    let events = controller::events::Events::new(
        client.clone(),
        Reporter {
            controller: "peoplesync".into(),
            instance: Some("events-test".into()),
        },
    );
    let cycle = |note: &str| Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some(note.into()),
        action: "Sync".into(),
        secondary: None,
    };
    let first = "full cycle 0a1b2c3d4e5f: created 40";
    let second = "incremental cycle 5f4e3d2c1b0a: updated 1";
    events.publish(&cycle(first), &reference).await;
    events.publish(&cycle(second), &reference).await;
    events.publish(&cycle(first), &reference).await;

    let listed = Api::<K8sEvent>::namespaced(client, &ns)
        .list(&Default::default())
        .await
        .expect("listed")
        .items;
    let mut seen: Vec<(String, Option<i32>)> = listed
        .iter()
        .map(|e| {
            (
                e.note.clone().unwrap_or_default(),
                e.series.as_ref().map(|s| s.count),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![(first.to_owned(), Some(2)), (second.to_owned(), None)],
        "one Event per cycle, the repeat folded: {listed:?}"
    );
}

/// Issue #28 (transport): HollyHR and the SCIM service behind TLS with private CAs. Without
/// `caSecretRef` the source is unreachable and the condition names the certificate; with each
/// CA in a Secret the object syncs, and nothing else (the system store) had to change.
#[tokio::test]
async fn private_cas_are_trusted_through_ca_secret_refs() {
    use support::tls::TlsFront;
    let plane = control_plane().await;
    let hollyhr = hollyhr().await;
    let scim = ScimServer::start().await.expect("scim2-server starts");
    let client = plane.client().await.expect("client");
    let ns = plane
        .create_namespace("private-ca")
        .await
        .expect("namespace");
    let hollyhr_front = TlsFront::start(hollyhr.addr()).await;
    let scim_front = TlsFront::start(SocketAddr::from(([127, 0, 0, 1], scim.port))).await;
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&client, &ns, "scim", "token", &scim.token).await;
    secret_with(
        &client,
        &ns,
        "cas",
        json!({ "hollyhr.crt": hollyhr_front.ca_pem, "scim.crt": scim_front.ca_pem }),
    )
    .await;
    let controller = run_controller(&plane, &ns).await;
    let object = people_sync(
        "acme",
        &hollyhr_front.url("/api/v1"),
        &scim_front.url(&format!("/{ns}/v2")),
    );
    create(&client, &ns, object).await.expect("created");
    let refused = wait_condition(&client, &ns, "acme", "SourceReachable", "False", None).await;
    let message = refused["message"].as_str().expect("a message");
    assert!(
        message.to_lowercase().contains("certificate"),
        "the condition names the certificate: {refused}"
    );

    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);
    merge(
        &api,
        "acme",
        &json!({ "spec": {
            "source": { "hollyhr": { "caSecretRef": { "name": "cas", "key": "hollyhr.crt" } } },
            "target": { "scim": { "caSecretRef": { "name": "cas", "key": "scim.crt" } } }
        } }),
    )
    .await
    .expect("patched");
    wait_condition(&client, &ns, "acme", "SourceReachable", "True", None).await;
    wait_condition(&client, &ns, "acme", "DirectoryReachable", "True", None).await;
    wait_condition(&client, &ns, "acme", "Synced", "True", None).await;
    let users: Value = reqwest::Client::new()
        .get(format!("{}/Users?count=1", scim.base_url_for(&ns)))
        .bearer_auth(&scim.token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert!(
        users["totalResults"].as_u64().unwrap_or(0) > 0,
        "the people reached the SCIM service through its TLS front: {users}"
    );
    controller.abort();
}

/// Issue #28 (transport): the binary trusts the system's CA store as well (a corporate proxy's
/// CA installed on the node or in the image): `SSL_CERT_FILE` names a store holding the TLS
/// front's CA, and `peoplesync hollyhr me` reaches HollyHR through it; without it, the same
/// command fails on the certificate.
#[tokio::test]
async fn the_binary_trusts_the_system_ca_store() {
    use support::tls::TlsFront;
    let hollyhr = hollyhr().await;
    let front = TlsFront::start(hollyhr.addr()).await;
    let store = std::env::temp_dir().join(format!("peoplesync-ca-{}.pem", std::process::id()));
    std::fs::write(&store, &front.ca_pem).expect("the store is written");
    let me = |ca_file: Option<std::path::PathBuf>| {
        let url = front.url("/api/v1");
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_peoplesync"));
            command
                .args(["hollyhr", "--base-url", &url, "me"])
                .env("HOLLYHR_API_KEY", sandbox::DEFAULT_API_KEY)
                .env_remove("SSL_CERT_DIR")
                .env_remove("SSL_CERT_FILE");
            if let Some(file) = ca_file {
                command.env("SSL_CERT_FILE", file);
            }
            command.output().expect("the binary runs")
        })
    };
    let trusted = me(Some(store.clone())).await.expect("joined");
    assert!(
        trusted.status.success(),
        "with the CA in the system store: {}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(
        String::from_utf8_lossy(&trusted.stdout).contains("people:read"),
        "it printed the key's scopes: {}",
        String::from_utf8_lossy(&trusted.stdout)
    );
    let refused = me(None).await.expect("joined");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("certificate"),
        "without it the certificate is refused: {stderr}"
    );
    let _ = std::fs::remove_file(&store);
}

/// Brownfield OpenLDAP (issue #29): 300 accounts whose `employeeNumber`s are payroll numbers,
/// 40 matching HR people by mail. The dry run plans 40 adoptions and no deprovision; the real
/// cycle marks those 40 and leaves the 260 others unchanged to their `entryCSN`.
#[tokio::test]
async fn a_brownfield_openldap_keeps_every_entry_it_does_not_own_and_adopts_the_matching_ones() {
    use peoplesync::slapd::{self, Slapd};
    let ldap = Slapd::start().await.expect("slapd starts");
    let admin = ldap.admin().await.expect("an admin connection");
    support::brownfield::contract(support::brownfield::Brownfield {
        admin,
        people_dn: slapd::PEOPLE_DN.to_owned(),
        ad: false,
        target: json!({
            "url": ldap.url(), "bindDn": slapd::ADMIN_DN,
            "bindPasswordSecretRef": {"name": "ldap", "key": "password"},
            "baseDn": slapd::BASE_DN, "peopleDn": slapd::PEOPLE_DN, "groupsDn": slapd::GROUPS_DN
        }),
        secret: json!({"password": ldap.admin_password}),
    })
    .await;
}
