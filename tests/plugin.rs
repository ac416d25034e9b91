//! `kubectl peoplesync` (the binary installed as `kubectl-peoplesync`) against the real API server
//! with a kubeconfig, as a person runs it: `status` (table, JSON, YAML, all namespaces),
//! `sync-now` runs a cycle at once (the poll interval is an hour), `approve` shows the held plan
//! and sets the approval only when the person says yes, `rotate` explains why it cannot (a
//! rotation it asks for is run in `tests/webhooks.rs`, where a webhook is registered), and a
//! missing object is a clear error, `explain` reads the object's Secrets through the API server, and
//! someone with read-only RBAC is refused clearly.  A controller runs in-process against a HollyHR sandbox and
//! slapd.

mod support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kube::Api;
use peoplesync::controller;
use peoplesync::controlplane::ControlPlane;
use peoplesync::crd::PeopleSync;
use peoplesync::slapd::Slapd;
use peoplesync_sandbox::{self as sandbox, SandboxConfig};
use serde_json::{Value, json};
use support::*;

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(kubectl_peoplesync(env!("CARGO_BIN_EXE_peoplesync")))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl-peoplesync starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("written");
        child.wait_with_output().expect("finishes")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args, "");
        assert!(
            output.status.success(),
            "kubectl-peoplesync {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn fails(&self, args: &[&str], stdin: &str) -> String {
        let output = self.run(args, stdin);
        assert!(
            !output.status.success(),
            "kubectl-peoplesync {args:?} succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

/// A kubeconfig for `jane`, who may get and list PeopleSyncs in `ns` and nothing else (the
/// admin's credentials, impersonating her, as `kubectl --as` does).
async fn viewer_kubeconfig(client: &kube::Client, plane: &ControlPlane, ns: &str) -> PathBuf {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "peoplesync-viewer"},
        "rules": [{
            "apiGroups": ["peoplesync.dev"],
            "resources": ["peoplesyncs"],
            "verbs": ["get", "list"],
        }],
    }))
    .expect("a Role");
    roles
        .create(&Default::default(), &role)
        .await
        .expect("Role created");
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "jane-views"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "peoplesync-viewer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}],
    }))
    .expect("a RoleBinding");
    bindings
        .create(&Default::default(), &binding)
        .await
        .expect("RoleBinding created");
    let text = std::fs::read_to_string(plane.kubeconfig_path()).expect("the kubeconfig");
    let mut config: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    config["users"][0]["user"]["as"] = json!("jane");
    let path = plane
        .kubeconfig_path()
        .with_file_name(format!("kubeconfig-jane-{ns}"));
    std::fs::write(&path, serde_yaml_ng::to_string(&config).expect("YAML")).expect("written");
    path
}

async fn last_sync(api: &Api<PeopleSync>) -> Option<String> {
    api.get("acme")
        .await
        .expect("read")
        .status
        .and_then(|s| s.last_sync_time)
        .map(|t| t.0.to_string())
}

// Several threads: the plugin runs as a blocking child process while the sandbox it asks (for
// `explain`) is served by this test's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn kubectl_peoplesync_shows_status_runs_a_cycle_and_approves_only_when_told() {
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    let hollyhr = sandbox::start(SandboxConfig {
        people: 40,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let ldap = Slapd::start().await.expect("slapd starts");
    let ns = plane.create_namespace("plugin").await.expect("namespace");
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&client, &ns, "ldap", "password", &ldap.admin_password).await;
    let config = controller::Config {
        admin_listen: free_addr(),
        namespaces: peoplesync::watch::Namespaces::one(ns.clone()),
        leader_election: None,
        instance: "plugin-test".into(),
        receiver_listen: None,
        receiver_limits: Default::default(),
        webhook: Default::default(),
        max_concurrent_syncs: 4,
    };
    let kube = plane.kube_config().await.expect("a kube config");
    let controller = tokio::spawn(async move {
        controller::run(kube, config)
            .await
            .expect("the controller runs");
    });
    let mut object = ldap_people_sync(&hollyhr.base_url(), &ldap, false);
    object["spec"]["schedule"] = json!({ "pollInterval": "1h", "fullResyncInterval": "6h" });
    create(&client, &ns, object).await.expect("created");
    wait_condition(&client, &ns, "acme", "Synced", "True", Some("Synced")).await;
    let kubectl = Kubectl {
        kubeconfig: plane.kubeconfig_path().to_owned(),
    };

    // status: one object in detail, the namespace as a table, JSON and YAML, every namespace.
    let detail = kubectl.ok(&["status", "acme", "-n", &ns]);
    assert!(
        detail.contains(&format!("PeopleSync {ns}/acme")),
        "{detail}"
    );
    assert!(
        detail.contains("Synced") && detail.contains("people 40"),
        "{detail}"
    );
    let table = kubectl.ok(&["status", "-n", &ns]);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert!(table.contains("acme") && table.contains("clear"), "{table}");
    let json: Value =
        serde_json::from_str(&kubectl.ok(&["status", "-n", &ns, "-o", "json"])).expect("JSON");
    assert_eq!(json[0]["name"], "acme");
    assert_eq!(json[0]["counts"]["people"], 40);
    let yaml: Value =
        serde_yaml_ng::from_str(&kubectl.ok(&["status", "acme", "-n", &ns, "-o", "yaml"]))
            .expect("YAML");
    assert_eq!(yaml["namespace"], ns.as_str());
    let all = kubectl.ok(&["status", "-A"]);
    assert!(all.contains(&ns), "{all}");

    // A missing object and a rotation without a webhook are clear errors.
    let missing = kubectl.fails(&["status", "nobody", "-n", &ns], "");
    assert!(
        missing.contains(&format!("PeopleSync {ns}/nobody not found")),
        "{missing}"
    );
    let rotate = kubectl.fails(&["rotate", "acme", "-n", &ns], "");
    assert!(rotate.contains("has no webhook registered"), "{rotate}");
    let nothing = kubectl.fails(&["approve", "acme", "-n", &ns], "");
    assert!(nothing.contains("holds no deprovisions"), "{nothing}");

    // sync-now: a cycle runs at once, although the next poll is an hour away.
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);
    // Status times have whole seconds: start in the next one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = last_sync(&api).await;
    let started = Instant::now();
    kubectl.ok(&["sync-now", "acme", "-n", &ns]);
    while last_sync(&api).await == before {
        if started.elapsed() > Duration::from_secs(30) {
            let object = api.get("acme").await.expect("read");
            panic!(
                "sync-now ran no cycle: {:?} {:?}",
                object.metadata.annotations,
                object
                    .status
                    .map(|s| (s.last_sync_time, s.next_sync_time, s.conditions))
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // explain: one person's record, mapping, entry and plan, with the object's own Secrets read
    // through the API server; read-only.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let person = sandbox::generate_tenant(40, SandboxConfig::default().seed)
        .into_iter()
        .find(|p| p.lifecycle(today) == peoplesync::source::hollyhr::model::Lifecycle::Active)
        .expect("someone active");
    let explained = kubectl.ok(&["explain", "acme", "-n", &ns, "--person", &person.id]);
    assert!(
        explained.contains(&format!("Person {}", person.id)),
        "{explained}"
    );
    assert!(
        explained.contains(&person.display_name),
        "explain shows values when asked: {explained}"
    );
    assert!(explained.contains("matched by its anchor"), "{explained}");
    assert!(explained.contains("nothing to do"), "{explained}");
    let unknown = kubectl.ok(&["explain", "acme", "-n", &ns, "--person", "nobody-here"]);
    assert!(unknown.contains("is not in HollyHR"), "{unknown}");
    let as_json: serde_json::Value = serde_json::from_str(&kubectl.ok(&[
        "explain", "acme", "-n", &ns, "--person", &person.id, "-o", "json",
    ]))
    .expect("explain -o json is JSON");
    assert_eq!(as_json["source"], "HollyHR");
    assert_eq!(as_json["personId"], person.id.as_str());
    assert_eq!(as_json["plan"], serde_json::json!([]), "{as_json}");
    assert!(as_json["entry"]["id"].is_string(), "{as_json}");

    // Someone who may read PeopleSyncs but neither patch them nor read Secrets: clear refusals
    // naming the verb, and nothing changes.
    let before = api.get("acme").await.expect("read").metadata.annotations;
    let viewer = viewer_kubeconfig(&client, &plane, &ns).await;
    let viewer = Kubectl { kubeconfig: viewer };
    let seen = viewer.ok(&["status", "acme", "-n", &ns]);
    assert!(seen.contains(&format!("PeopleSync {ns}/acme")), "{seen}");
    let refused = viewer.fails(&["sync-now", "acme", "-n", &ns], "");
    assert!(
        refused.contains("not allowed to patch PeopleSyncs"),
        "{refused}"
    );
    let refused = viewer.fails(&["explain", "acme", "-n", &ns, "--person", &person.id], "");
    assert!(refused.contains("not allowed to get Secrets"), "{refused}");
    let after = api.get("acme").await.expect("read").metadata.annotations;
    assert_eq!(before, after, "a refused command changes nothing");

    // HollyHR suddenly returns nobody: the guard holds every deprovision.
    hollyhr
        .controls()
        .settings(json!({"empty_tenant": true}))
        .await
        .expect("set");
    kubectl.ok(&["sync-now", "acme", "-n", &ns]);
    wait_condition(&client, &ns, "acme", "DeprovisionGuard", "True", None).await;
    let status = kubectl.ok(&["status", "acme", "-n", &ns]);
    assert!(status.contains("deprovisions held: plan"), "{status}");
    let hash = api
        .get("acme")
        .await
        .expect("read")
        .status
        .and_then(|s| s.last_plan)
        .map(|p| p.hash)
        .expect("a plan hash");

    // Someone who may not approve is told so before anything is asked, and why.
    let refused = viewer.fails(&["approve", "acme", "-n", &ns], "y\n");
    assert!(
        refused.contains(&format!(
            "jane may not approve the plans of PeopleSync {ns}/acme"
        )) && refused.contains("`approve` verb"),
        "{refused}"
    );

    // Asked, the person says no: nothing is approved.
    let declined = kubectl.run(&["approve", "acme", "-n", &ns], "n\n");
    assert!(!declined.status.success());
    let shown = String::from_utf8_lossy(&declined.stdout);
    assert!(shown.contains(&format!("plan {hash}")), "{shown}");
    assert!(shown.contains("first: "), "the first held ids: {shown}");
    assert!(String::from_utf8_lossy(&declined.stderr).contains("not approved"));
    let annotations = api.get("acme").await.expect("read").metadata.annotations;
    assert!(
        annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(peoplesync::crd::APPROVE_DEPROVISION)),
        "{annotations:?}"
    );
    // Asked again, yes: the approval is set and the controller applies the plan.
    let approved = kubectl.run(&["approve", "acme", "-n", &ns], "y\n");
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let object = api.get("acme").await.expect("read");
    let annotations = object.metadata.annotations.expect("annotations");
    assert_eq!(annotations[peoplesync::crd::APPROVE_DEPROVISION], hash);
    // The approval names its approver (the admin, as the API server knows her).
    assert!(
        annotations
            .get(peoplesync::crd::APPROVED_BY)
            .is_some_and(|by| !by.is_empty()),
        "{annotations:?}"
    );
    wait_condition(
        &client,
        &ns,
        "acme",
        "DeprovisionGuard",
        "False",
        Some("Approved"),
    )
    .await;
    controller.abort();
}
