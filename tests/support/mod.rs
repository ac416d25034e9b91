//! Helpers shared by the control-plane tests: the API server with the CRDs, Secrets, objects and
//! bounded waits on conditions.
#![allow(dead_code)]

pub mod brownfield;
pub mod fleet;
pub mod hr;
pub mod operator;
pub mod promql;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use peoplesync::controlplane::ControlPlane;
use peoplesync::crd::PeopleSync;
use serde_json::{Value, json};

pub const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");

pub async fn control_plane() -> ControlPlane {
    let plane = ControlPlane::start()
        .await
        .expect("the control plane starts");
    eprintln!(
        "control plane ready in {:.2} s",
        plane.startup.as_secs_f64()
    );
    plane
        .install_crds(Path::new(CRDS))
        .await
        .expect("CRDs install");
    plane
}

/// A number from the environment (test and benchmark sizes), else `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A free loopback address for a server the test starts (outside the ephemeral range: see
/// `loopback_port`).
pub fn free_addr() -> SocketAddr {
    let port = peoplesync::controlplane::loopback_port().expect("a free port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A SCIM URL for objects no controller reconciles in the test.
pub const UNUSED_SCIM: &str = "https://scim.example.com/v2";

pub fn people_sync(name: &str, base_url: &str, scim_url: &str) -> Value {
    json!({
        "apiVersion": "peoplesync.dev/v1alpha1",
        "kind": "PeopleSync",
        "metadata": { "name": name },
        "spec": {
            "source": { "hollyhr": { "baseUrl": base_url, "apiKeySecretRef": { "name": "hollyhr", "key": "apiKey" } } },
            "target": { "scim": { "baseUrl": scim_url, "tokenSecretRef": { "name": "scim", "key": "token" } } }
        }
    })
}

/// A PeopleSync writing to a private slapd (with its groups DN when `groups`).
pub fn ldap_people_sync(hollyhr_url: &str, ldap: &peoplesync::slapd::Slapd, groups: bool) -> Value {
    use peoplesync::slapd;
    let mut object = people_sync("acme", hollyhr_url, UNUSED_SCIM);
    object["spec"]["target"] = json!({ "ldap": {
        "url": ldap.url(), "bindDn": slapd::ADMIN_DN,
        "bindPasswordSecretRef": { "name": "ldap", "key": "password" },
        "baseDn": slapd::BASE_DN, "peopleDn": slapd::PEOPLE_DN
    }});
    if groups {
        object["spec"]["target"]["ldap"]["groupsDn"] = json!(slapd::GROUPS_DN);
    }
    object
}

pub async fn create(
    client: &Client,
    namespace: &str,
    object: Value,
) -> Result<PeopleSync, kube::Error> {
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), namespace);
    let object: PeopleSync = serde_json::from_value(object).expect("a PeopleSync");
    api.create(&PostParams::default(), &object).await
}

pub async fn secret(client: &Client, namespace: &str, name: &str, key: &str, value: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": name }, "stringData": { key: value }
    }))
    .expect("a Secret");
    api.create(&PostParams::default(), &secret)
        .await
        .expect("Secret created");
}

/// The controller in this process, serving `namespace` (no leader election, no receiver).
pub async fn spawn_controller(
    plane: &ControlPlane,
    namespace: &str,
    instance: &str,
) -> tokio::task::JoinHandle<()> {
    let config = peoplesync::controller::Config {
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        namespaces: peoplesync::watch::Namespaces::one(namespace.to_owned()),
        leader_election: None,
        instance: instance.into(),
        receiver_listen: None,
        receiver_limits: Default::default(),
        webhook: Default::default(),
        max_concurrent_syncs: 4,
    };
    let kube = plane.kube_config().await.expect("a kube config");
    tokio::spawn(async move {
        peoplesync::controller::run(kube, config)
            .await
            .expect("the controller runs");
    })
}

/// Waits (bounded) until a condition of `name` has `status` (and `reason`, when given).
pub async fn wait_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    kind: &str,
    status: &str,
    reason: Option<&str>,
) -> Value {
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let object = api.get(name).await.expect("the object exists");
        let conditions =
            serde_json::to_value(object.status.as_ref().map(|s| &s.conditions)).expect("json");
        let found = conditions
            .as_array()
            .and_then(|list| list.iter().find(|c| c["type"] == kind).cloned());
        if let Some(condition) = &found
            && condition["status"] == status
            && reason.is_none_or(|r| condition["reason"] == r)
        {
            return condition.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {kind} never became {status}/{reason:?}; conditions: {conditions}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `binary` (the operator, `env!("CARGO_BIN_EXE_peoplesync")`) under the kubectl plugin's name,
/// as `kubectl` finds it on the PATH: the name makes it the plugin.
pub fn kubectl_peoplesync(binary: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("peoplesync-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let link = dir.join("kubectl-peoplesync");
    if !link.exists() {
        std::os::unix::fs::symlink(binary, &link).expect("a symlink");
    }
    link
}

/// The Grafana dashboard (`charts/peoplesync/files/dashboard.json`) against a running operator's
/// exposition: every query (panels and template variables) parses as PromQL — checked by
/// Prometheus's own parser, `promtool check rules` on the queries as recording rules — every
/// metric it reads is one the operator exposes, with the labels it matches and groups by (see
/// [`promql::check`]), and the per-object panels follow the namespace and name variables.
/// `deploy/grafana-dashboard.json` is the same file.
pub fn check_dashboard(exposition: &str) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/peoplesync/files/dashboard.json"
    );
    let text = std::fs::read_to_string(path).expect("the dashboard");
    assert_eq!(
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana-dashboard.json"
        ))
        .expect("the deploy copy"),
        text,
        "deploy/grafana-dashboard.json is a copy of the chart's dashboard"
    );
    let dashboard: Value = serde_json::from_str(&text).expect("JSON");
    let mut queries: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("an expr").to_owned());
        }
    }
    assert!(queries.len() >= 15, "{} queries", queries.len());
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            // `label_values(selector, label)` is Grafana's: its selector is PromQL.
            let selector = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _)| selector.trim().to_owned())
                .expect("a label_values query");
            queries.push(selector);
        }
    }
    // Grafana's variables, as Grafana substitutes them.
    let concrete: Vec<String> = queries
        .iter()
        .map(|q| {
            q.replace("$__rate_interval", "5m")
                .replace("$namespace", ".*")
                .replace("$name", ".*")
        })
        .collect();
    let rules = json!({"groups": [{
        "name": "dashboard",
        "rules": concrete.iter().enumerate().map(|(i, expr)| json!({
            "record": format!("dashboard:query:{i}"),
            "expr": expr,
        })).collect::<Vec<_>>(),
    }]});
    let dir = std::env::temp_dir().join(format!("peoplesync-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("dashboard-rules.yaml");
    std::fs::write(&file, serde_json::to_string(&rules).expect("JSON")).expect("written");
    let promtool = std::env::var("PEOPLESYNC_PROMTOOL")
        .expect("PEOPLESYNC_PROMTOOL (scripts/test.sh sets it; scripts/promtool.sh builds it)");
    let output = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("runs promtool");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "promtool refuses a dashboard query:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Metric and label names as scraped: counters carry `_total`, histograms `_bucket` (with
    // `le`), `_sum`, `_count`.
    let exposed = promql::Exposed::parse(exposition);
    for query in &concrete {
        if let Err(wrong) = promql::check(query, &exposed) {
            panic!("the dashboard's query is wrong for the running operator: {wrong}");
        }
    }
    // Per object: every panel past the overview row filters by the object variables.
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("an expr");
            // The operator's own series, and deliveries no object claims, belong to none.
            let operator_wide = [
                "peoplesync_leader",
                "peoplesync_kube_requests",
                "peoplesync_reconciles",
                "name=\"\"",
            ];
            if operator_wide.iter().any(|wide| expr.contains(wide)) {
                continue;
            }
            assert!(
                expr.contains("namespace=~\"$namespace\"") && expr.contains("name=~\"$name\""),
                "panel {:?} does not follow the object variables: {expr}",
                panel["title"]
            );
        }
    }
}
