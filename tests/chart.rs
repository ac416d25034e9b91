//! The Helm chart (charts/peoplesync), the plain manifests rendered from it
//! (deploy/peoplesync.yaml) and the examples (deploy/examples): lint, values schema, staleness,
//! RBAC parity with deploy/rbac.yaml and the Pod's security settings from `helm template`; then
//! `kubectl apply --dry-run=server` and `helm install` against a real kube-apiserver + etcd.
//! helm and kubectl come from the control plane's bin directory (`PEOPLESYNC_CONTROLPLANE_BIN`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use peoplesync::controlplane::{self, ControlPlane};
use serde::Deserialize;
use serde_json::{Value, json};
use support::*;

mod support;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/peoplesync");
const RELEASE: &str = "peoplesync";
const RELEASE_NAMESPACE: &str = "peoplesync-system";
/// `helm template` checks the chart's kubeVersion against its built-in default, which depends on
/// how helm was built (ours, from its Go module, says v1.20): name the test server's version.
const KUBE_VERSION: &str = "v1.34.4";
/// No helm or kubectl call here takes more than a few seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const CRD_NAME: &str = "peoplesyncs.peoplesync.dev";

fn bin(name: &str) -> PathBuf {
    controlplane::bin_dir()
        .expect("the control plane binaries (scripts/controlplane/build.sh)")
        .join(name)
}

/// `helm`, talking to `kubeconfig`'s cluster, or to none.
fn helm(kubeconfig: Option<&Path>) -> Command {
    let mut command = Command::new(bin("helm"));
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env_remove("KUBECONFIG"),
    };
    command
}

fn kubectl(plane: &ControlPlane) -> Command {
    let mut command = Command::new(plane.bin_dir().join("kubectl"));
    command.env("KUBECONFIG", plane.kubeconfig_path());
    command
}

/// Runs `command` to completion within [`COMMAND_TIMEOUT`] (killed after it), feeding `stdin`.
fn run(mut command: Command, stdin: Option<&str>) -> Output {
    let description = format!("{command:?}");
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {description}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_owned();
        std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    }
    // Read both pipes while waiting: a full pipe would block the child forever.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited on") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Runs `command` and returns its stdout; panics with its stderr when it fails.
fn succeed(command: Command, stdin: Option<&str>) -> String {
    let description = format!("{command:?}");
    let output = run(command, stdin);
    assert!(
        output.status.success(),
        "{description} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// `helm template peoplesync charts/peoplesync -n <namespace> <args>`: its stdout, or its stderr.
fn try_template(namespace: &str, args: &[&str]) -> Result<String, String> {
    let mut command = helm(None);
    command
        .args(["template", RELEASE, CHART, "--namespace", namespace])
        .args(["--kube-version", KUBE_VERSION])
        .args(args);
    let output = run(command, None);
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).expect("UTF-8 output"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn template(args: &[&str]) -> String {
    try_template(RELEASE_NAMESPACE, args)
        .unwrap_or_else(|stderr| panic!("helm template {args:?} failed:\n{stderr}"))
}

/// Every non-empty document of a multi-document YAML stream.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|document| Value::deserialize(document).expect("valid YAML"))
        .filter(|document| !document.is_null())
        .collect()
}

fn documents_of(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(path))
        .unwrap_or_else(|e| panic!("failed to read {path}: {e}"));
    documents(&text)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn get<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(objects, kind, name).unwrap_or_else(|| {
        let present: Vec<String> = objects
            .iter()
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect();
        panic!("no {kind} {name} among {present:?}")
    })
}

/// `0.0` and `0` are the same number to the API server; helm's YAML round trip writes the latter.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => json!(f as i64),
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn args(deployment: &Value) -> Vec<String> {
    container(deployment)["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_owned())
        .collect()
}

fn has_flag(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

async fn create_namespace(plane: &ControlPlane, name: &str) {
    let api: Api<Namespace> = Api::all(plane.client().await.expect("client"));
    let namespace: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": name } })).expect("a Namespace");
    api.create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
}

#[test]
fn helm_lint_is_clean_with_defaults_and_with_every_option() {
    for values in [
        None,
        Some(
            "ingress.enabled=true,serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true",
        ),
        Some(
            "ingress.enabled=true,ingress.className=nginx,ingress.hosts[0]=peoplesync.example.com,\
             ingress.tls.secretName=peoplesync-tls,serviceMonitor.enabled=true,\
             watchNamespaces={identity,hr},replicas=1,leaderElection.enabled=false",
        ),
    ] {
        let mut command = helm(None);
        command.args(["lint", "--strict", CHART]);
        if let Some(values) = values {
            command.args(["--set", values]);
        }
        let stdout = succeed(command, None);
        assert!(
            stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "helm lint with {values:?}:\n{stdout}"
        );
        assert!(
            !stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"),
            "helm lint with {values:?}:\n{stdout}"
        );
    }
}

#[test]
fn the_values_schema_and_the_chart_reject_bad_values() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicas=-1"], "/replicas"),
        (&["--set-string", "replicas=two"], "/replicas"),
        // A typo is an error, not a silently ignored value.
        (&["--set", "ingres.enabled=true"], "'ingres' not allowed"),
        (&["--set", "ingress.tls.secret=x"], "'secret' not allowed"),
        (
            &["--set", "webhook.healthInterval=soon"],
            "/webhook/healthInterval",
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            "/image/pullPolicy",
        ),
        (
            &["--set", "watchNamespaces={Not_A_Namespace}"],
            "/watchNamespaces/0",
        ),
        // The single namespace of earlier versions is named, not silently ignored.
        (
            &["--set", "watchNamespace=identity"],
            "watchNamespace was replaced by watchNamespaces",
        ),
        // Two replicas without a Lease would both write to the directory.
        (
            &["--set", "replicas=2,leaderElection.enabled=false"],
            "leaderElection.enabled must be true with more than one replica",
        ),
    ];
    for (args, expected) in cases {
        let stderr = try_template(RELEASE_NAMESPACE, args)
            .err()
            .unwrap_or_else(|| panic!("helm template {args:?} succeeded; it must fail"));
        assert!(
            stderr.contains(expected),
            "helm template {args:?} failed without naming {expected:?}:\n{stderr}"
        );
    }
    // The same values done right render.
    template(&["--set", "replicas=0,leaderElection.enabled=false"]);
    template(&[
        "--set",
        "webhook.healthInterval=1h30m,watchNamespaces={identity}",
    ]);
}

#[test]
fn the_chart_crd_is_the_generated_crd() {
    let generated = std::fs::read_to_string(Path::new(ROOT).join("crds/peoplesync.yaml"))
        .expect("crds/peoplesync.yaml");
    let copy = std::fs::read_to_string(Path::new(CHART).join("files/peoplesync.yaml"))
        .expect("charts/peoplesync/files/peoplesync.yaml");
    assert!(
        copy == generated,
        "charts/peoplesync/files/peoplesync.yaml differs from crds/peoplesync.yaml: \
         run `cp crds/peoplesync.yaml charts/peoplesync/files/` (and scripts/render-manifests.sh)"
    );

    // The rendered CRD is that CRD, with the chart's labels and the keep policy added.
    let generated = documents(&generated).remove(0);
    let rendered = template(&[]);
    let rendered = documents(&rendered);
    let crd = get(&rendered, "CustomResourceDefinition", CRD_NAME);
    assert_eq!(normalized(&crd["spec"]), normalized(&generated["spec"]));
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(
        crd["metadata"]["labels"]["app.kubernetes.io/instance"],
        RELEASE
    );

    let without = documents(&template(&["--set", "crds.install=false"]));
    assert!(find(&without, "CustomResourceDefinition", CRD_NAME).is_none());
    let unkept = documents(&template(&["--set", "crds.keep=false"]));
    let crd = get(&unkept, "CustomResourceDefinition", CRD_NAME);
    assert!(crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null());
}

#[test]
fn deploy_manifests_are_a_fresh_render_of_the_chart() {
    let helm_dir = bin("helm")
        .parent()
        .expect("the bin directory")
        .to_path_buf();
    let mut command = Command::new("bash");
    command
        .arg(Path::new(ROOT).join("scripts/render-manifests.sh"))
        .arg("-")
        .env(controlplane::BIN_ENV, &helm_dir);
    let fresh = succeed(command, None);
    let checked_in = std::fs::read_to_string(Path::new(ROOT).join("deploy/peoplesync.yaml"))
        .expect("deploy/peoplesync.yaml");
    assert!(
        fresh == checked_in,
        "deploy/peoplesync.yaml is stale: run scripts/render-manifests.sh"
    );
    let mut command = Command::new("bash");
    command
        .arg(Path::new(ROOT).join("scripts/render-manifests.sh"))
        .arg("rbac")
        .env(controlplane::BIN_ENV, &helm_dir);
    let fresh_rbac = succeed(command, None);
    let checked_in_rbac = std::fs::read_to_string(Path::new(ROOT).join("deploy/rbac.yaml"))
        .expect("deploy/rbac.yaml");
    assert!(
        fresh_rbac == checked_in_rbac,
        "deploy/rbac.yaml is stale: run scripts/render-manifests.sh"
    );
    let objects = documents(&checked_in);
    assert_eq!(objects[0]["kind"], "Namespace");
    assert_eq!(objects[0]["metadata"]["name"], RELEASE_NAMESPACE);
    get(&objects, "Deployment", "peoplesync");
}

fn in_namespace<'a>(objects: &'a [Value], kind: &str, name: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect()
}

fn grants_secrets(rules: &Value) -> bool {
    rules.as_array().into_iter().flatten().any(|rule| {
        rule["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r == "secrets")
    })
}

#[test]
fn rbac_is_a_role_per_served_namespace_and_cluster_wide_only_by_opt_in() {
    // The default: the release namespace only, and no ClusterRole that grants Secrets.
    let rendered = documents(&template(&[]));
    let roles = in_namespace(&rendered, "Role", "peoplesync-controller");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["metadata"]["namespace"], RELEASE_NAMESPACE);
    let rules = roles[0]["rules"].clone();
    assert!(grants_secrets(&rules));
    for role in rendered.iter().filter(|o| o["kind"] == "ClusterRole") {
        assert!(
            !grants_secrets(&role["rules"]),
            "{} grants Secrets cluster-wide",
            role["metadata"]["name"]
        );
    }
    assert!(find(&rendered, "ClusterRoleBinding", "peoplesync-controller").is_none());
    get(&rendered, "ServiceAccount", "peoplesync");

    // Two namespaces: a Role and a RoleBinding in each, the same rules, the operator's account.
    let two = documents(&template(&["--set", "watchNamespaces={identity,hr}"]));
    for kind in ["Role", "RoleBinding"] {
        let mut namespaces: Vec<&str> = in_namespace(&two, kind, "peoplesync-controller")
            .iter()
            .map(|o| o["metadata"]["namespace"].as_str().expect("a namespace"))
            .collect();
        namespaces.sort();
        assert_eq!(namespaces, ["hr", "identity"], "{kind}");
    }
    for role in in_namespace(&two, "Role", "peoplesync-controller") {
        assert_eq!(role["rules"], rules);
    }
    for binding in in_namespace(&two, "RoleBinding", "peoplesync-controller") {
        assert_eq!(
            binding["subjects"],
            json!([{ "kind": "ServiceAccount", "name": "peoplesync", "namespace": RELEASE_NAMESPACE }])
        );
        assert_eq!(binding["roleRef"]["kind"], "Role");
    }
    assert!(has_flag(
        &args(get(&two, "Deployment", "peoplesync")),
        "--namespace",
        "identity,hr"
    ));

    // Cluster-wide only when asked for with "*": then a ClusterRole with the same rules.
    let all = documents(&template(&["--set", "watchNamespaces={*}"]));
    assert_eq!(
        get(&all, "ClusterRole", "peoplesync-controller")["rules"],
        rules
    );
    let binding = get(&all, "ClusterRoleBinding", "peoplesync-controller");
    assert_eq!(binding["roleRef"]["name"], "peoplesync-controller");
    assert!(in_namespace(&all, "Role", "peoplesync-controller").is_empty());
    assert!(has_flag(
        &args(get(&all, "Deployment", "peoplesync")),
        "--namespace",
        "*"
    ));

    // Without leader election there is no Lease to write.
    let single = documents(&template(&[
        "--set",
        "replicas=1,leaderElection.enabled=false",
    ]));
    assert!(find(&single, "Role", "peoplesync-leader-election").is_none());
}

#[test]
fn the_admission_policies_are_rendered_for_the_operators_account() {
    let rendered = documents(&template(&[]));
    let secrets = get(
        &rendered,
        "ValidatingAdmissionPolicy",
        "peoplesync-owned-secrets",
    );
    assert_eq!(
        secrets["spec"]["matchConditions"][0]["expression"],
        "request.userInfo.username == 'system:serviceaccount:peoplesync-system:peoplesync'"
    );
    assert_eq!(secrets["spec"]["failurePolicy"], "Fail");
    for policy in ["peoplesync-owned-secrets", "peoplesync-approvals"] {
        let binding = get(&rendered, "ValidatingAdmissionPolicyBinding", policy);
        assert_eq!(binding["spec"]["policyName"], policy);
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    }
    let approver = get(&rendered, "ClusterRole", "peoplesync-approver");
    assert!(
        approver["rules"][0]["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .any(|v| v == "approve")
    );
    // Not aggregated: edit and admin do not approve.
    assert!(
        approver["metadata"]["labels"]
            .as_object()
            .expect("labels")
            .keys()
            .all(|k| !k.starts_with("rbac.authorization.k8s.io/aggregate"))
    );
    let off = documents(&template(&["--set", "admissionPolicies.enabled=false"]));
    assert!(
        find(
            &off,
            "ValidatingAdmissionPolicy",
            "peoplesync-owned-secrets"
        )
        .is_none()
    );
}

#[test]
fn the_deployment_runs_locked_down_with_probes_and_leader_election() {
    let rendered = documents(&template(&[]));
    let deployment = get(&rendered, "Deployment", "peoplesync");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = container(deployment);
    // Two by default, the leader labelling its Pod for the receiver Service (and a PDB).
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert!(
        args(deployment).contains(&"--label-leader-pod".to_owned()),
        "{:?}",
        args(deployment)
    );
    assert_eq!(pod["serviceAccountName"], "peoplesync");

    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    assert_eq!(pod_security["runAsUser"], 65532);
    assert_eq!(pod_security["runAsGroup"], 65532);
    assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(security.get("privileged").is_none_or(|p| p == false));

    assert_eq!(
        container["resources"],
        json!({ "requests": { "cpu": "50m", "memory": "96Mi" },
                "limits": { "cpu": "1000m", "memory": "200Mi" } })
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(
        container["ports"],
        json!([{ "name": "admin", "containerPort": 8081, "protocol": "TCP" },
               { "name": "receiver", "containerPort": 8443, "protocol": "TCP" }])
    );
    assert_eq!(container["image"], "ghcr.io/peoplesync/peoplesync:0.1.0");

    let flags = args(deployment);
    assert_eq!(flags[0], "controller");
    for (flag, value) in [
        ("--log-format", "json"),
        ("--log-filter", "info"),
        ("--admin-listen", "0.0.0.0:8081"),
        ("--receiver-listen", "0.0.0.0:8443"),
        ("--webhook-health-interval", "1m"),
    ] {
        assert!(has_flag(&flags, flag, value), "{flag} {value} in {flags:?}");
    }
    assert!(flags.iter().any(|a| a == "--leader-elect"), "{flags:?}");
    // By default it serves its own namespace only.
    assert!(
        has_flag(&flags, "--namespace", RELEASE_NAMESPACE),
        "{flags:?}"
    );
    // The Lease's namespace and the replica's identity come from the downward API.
    for (variable, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let env = container["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == variable)
            .unwrap_or_else(|| panic!("no {variable} in the container's env"));
        assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
    // The default two replicas have a budget that keeps one.
    let budget = get(&rendered, "PodDisruptionBudget", "peoplesync");
    assert_eq!(budget["spec"]["minAvailable"], 1);

    // One replica: no budget (it would block every drain), no Lease.
    let single = documents(&template(&[
        "--set",
        "replicas=1,leaderElection.enabled=false,logLevel=debug,image.tag=1.2.3",
    ]));
    assert!(find(&single, "PodDisruptionBudget", "peoplesync").is_none());
    let deployment = get(&single, "Deployment", "peoplesync");
    let single_args = args(deployment);
    assert!(!single_args.iter().any(|a| a == "--leader-elect"));
    assert!(has_flag(&single_args, "--log-filter", "debug"));
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/peoplesync/peoplesync:1.2.3"
    );
}

#[test]
fn the_deployment_args_are_flags_the_binary_accepts() {
    // clap rejects an unknown flag or a bad value before it reaches `--help` at the end.
    for values in [
        "logLevel=info",
        "watchNamespaces={identity,hr},logLevel=info\\,peoplesync=debug,webhook.healthInterval=30s",
        "watchNamespaces={*}",
        "replicas=1,leaderElection.enabled=false",
    ] {
        let rendered = documents(&template(&["--set", values]));
        let args = args(get(&rendered, "Deployment", "peoplesync"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_peoplesync"));
        command.args(&args).arg("--help");
        let output = run(command, None);
        assert!(
            output.status.success(),
            "peoplesync {args:?} is rejected:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn services_ingress_policy_and_monitor_point_at_the_named_ports() {
    let rendered = documents(&template(&[
        "--set",
        "ingress.enabled=true,ingress.className=nginx,ingress.hosts[0]=peoplesync.example.com,\
         ingress.tls.secretName=peoplesync-tls,serviceMonitor.enabled=true",
    ]));
    let deployment = get(&rendered, "Deployment", "peoplesync");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selects_pods = |selector: &Value| {
        selector
            .as_object()
            .expect("a selector")
            .iter()
            .all(|(k, v)| &pod_labels[k] == v)
    };

    let receiver = get(&rendered, "Service", "peoplesync-receiver");
    // The receiver selects the operator's Pods and, of those, the one the leader labels.
    let mut selector = receiver["spec"]["selector"].clone();
    assert_eq!(
        selector
            .as_object_mut()
            .expect("a selector")
            .remove("peoplesync.dev/leader"),
        Some(json!("peoplesync-controller")),
        "{selector}"
    );
    assert!(selects_pods(&selector));
    let metrics = get(&rendered, "Service", "peoplesync-metrics");
    assert!(
        metrics["spec"]["selector"]
            .get("peoplesync.dev/leader")
            .is_none(),
        "every replica's metrics are scraped"
    );
    assert_eq!(
        receiver["spec"]["ports"],
        json!([{ "name": "receiver", "port": 8443, "targetPort": "receiver", "protocol": "TCP" }])
    );
    let metrics = get(&rendered, "Service", "peoplesync-metrics");
    assert!(selects_pods(&metrics["spec"]["selector"]));
    assert_eq!(
        metrics["spec"]["ports"],
        json!([{ "name": "metrics", "port": 8081, "targetPort": "admin", "protocol": "TCP" }])
    );

    let ingress = get(&rendered, "Ingress", "peoplesync-receiver");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ingress["spec"]["tls"],
        json!([{ "secretName": "peoplesync-tls", "hosts": ["peoplesync.example.com"] }])
    );
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "peoplesync.example.com");
    assert_eq!(
        rule["http"]["paths"],
        json!([{ "path": "/hooks", "pathType": "Prefix", "backend": { "service": {
            "name": "peoplesync-receiver", "port": { "name": "receiver" } } } }])
    );

    // The ServiceMonitor selects the metrics Service, not the receiver, by its port's name.
    let monitor = get(&rendered, "ServiceMonitor", "peoplesync");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    let selects = |service: &Value| {
        selector
            .iter()
            .all(|(k, v)| &service["metadata"]["labels"][k] == v)
    };
    assert!(selects(metrics) && !selects(receiver));
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    // The receiver is open to all (HollyHR comes through the Ingress); the admin port to the
    // selected namespaces (default: all); egress is open (HollyHR, directory, API server).
    let policy = get(&rendered, "NetworkPolicy", "peoplesync");
    assert!(selects_pods(&policy["spec"]["podSelector"]["matchLabels"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([
            { "ports": [{ "port": "receiver", "protocol": "TCP" }] },
            { "from": [{ "namespaceSelector": {} }], "ports": [{ "port": "admin", "protocol": "TCP" }] }
        ])
    );
    assert_eq!(policy["spec"]["egress"], json!([{}]));

    // Off by default: no Ingress, no ServiceMonitor (its CRD may not exist).
    let defaults = documents(&template(&[]));
    assert!(find(&defaults, "Ingress", "peoplesync-receiver").is_none());
    assert!(find(&defaults, "ServiceMonitor", "peoplesync").is_none());
    let without_policy = documents(&template(&["--set", "networkPolicy.enabled=false"]));
    assert!(find(&without_policy, "NetworkPolicy", "peoplesync").is_none());
}

#[test]
fn the_examples_hold_only_placeholder_secrets() {
    for example in ["deploy/examples/ldap.yaml", "deploy/examples/scim.yaml"] {
        let objects = documents_of(example);
        let secrets: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Secret").collect();
        assert!(secrets.len() >= 2, "{example}: {} Secrets", secrets.len());
        for secret in secrets {
            assert!(secret.get("data").is_none(), "{example}: use stringData");
            for (key, value) in secret["stringData"].as_object().expect("stringData") {
                assert_eq!(value, "REPLACE_ME", "{example}: {key}");
            }
        }
        assert_eq!(
            objects.iter().filter(|o| o["kind"] == "PeopleSync").count(),
            1,
            "{example}"
        );
    }
}

#[tokio::test]
async fn the_rendered_chart_passes_a_server_side_dry_run() {
    // No CRD installed beforehand: the dry run validates the chart's own.
    let plane = ControlPlane::start()
        .await
        .expect("the control plane starts");
    create_namespace(&plane, RELEASE_NAMESPACE).await;

    // The plain manifests, as a user applies them.
    let manifests = Path::new(ROOT).join("deploy/peoplesync.yaml");
    let mut command = kubectl(&plane);
    command
        .args(["apply", "--dry-run=server", "-f"])
        .arg(&manifests);
    let stdout = succeed(command, None);
    let expected = documents_of("deploy/peoplesync.yaml").len();
    assert_eq!(
        stdout.matches("(server dry run)").count(),
        expected,
        "{stdout}"
    );

    // Every option except the ServiceMonitor (no Prometheus Operator CRDs here), two namespaces
    // served.
    let namespace = plane.create_namespace("chart").await.expect("namespace");
    let watched = plane.create_namespace("identity").await.expect("namespace");
    let rendered = try_template(
        &namespace,
        &[
            "--set",
            &format!(
                "watchNamespaces={{{watched},{namespace}}},replicas=3,ingress.enabled=true,ingress.className=nginx,\
                 ingress.hosts[0]=peoplesync.example.com,ingress.tls.secretName=peoplesync-tls,\
                 priorityClassName=system-cluster-critical,podLabels.team=identity,\
                 topologySpreadConstraints[0].maxSkew=1,\
                 topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone,\
                 topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway,\
                 extraEnv[0].name=HTTPS_PROXY,extraEnv[0].value=http://proxy:3128,\
                 networkPolicy.adminNamespaceSelector.matchLabels.team=monitoring"
            ),
        ],
    )
    .unwrap_or_else(|stderr| panic!("helm template failed:\n{stderr}"));
    let mut command = kubectl(&plane);
    command.args(["apply", "--dry-run=server", "-f", "-"]);
    let stdout = succeed(command, Some(&rendered));
    assert_eq!(
        stdout.matches("(server dry run)").count(),
        documents(&rendered).len(),
        "{stdout}"
    );
    assert!(stdout.contains("ingress.networking.k8s.io/peoplesync-receiver created"));
}

#[tokio::test]
async fn helm_install_creates_every_rendered_object_and_the_examples_apply() {
    let plane = ControlPlane::start()
        .await
        .expect("the control plane starts");
    let kubeconfig = plane.kubeconfig_path();
    // No --wait: there are no nodes here, so no Pod ever runs.
    let mut install = helm(Some(kubeconfig));
    install.args([
        "install",
        RELEASE,
        CHART,
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
    ]);
    let stdout = succeed(install, None);
    assert!(stdout.contains("STATUS: deployed"), "{stdout}");
    assert!(
        stdout.contains("kubectl -n peoplesync-system describe peoplesync acme"),
        "NOTES:\n{stdout}"
    );

    // Every object `helm template` renders with the same values exists in the cluster.
    let expected = documents(&template(&[]));
    let mut get_all = kubectl(&plane);
    get_all.args(["get", "-f", "-", "-o", "json"]);
    let found: Value = serde_json::from_str(&succeed(get_all, Some(&template(&[]))))
        .expect("kubectl prints a List");
    let found = found["items"].as_array().expect("items").clone();
    assert_eq!(found.len(), expected.len());
    for object in &expected {
        let (kind, name) = (
            object["kind"].as_str().expect("kind"),
            object["metadata"]["name"].as_str().expect("name"),
        );
        let live = get(&found, kind, name);
        assert_eq!(
            live["metadata"]["namespace"],
            object["metadata"]["namespace"]
        );
        assert_eq!(
            live["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{kind} {name}"
        );
    }

    // The examples against the CRD the chart installed.
    let mut established = kubectl(&plane);
    established.args([
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        &format!("customresourcedefinition/{CRD_NAME}"),
    ]);
    succeed(established, None);
    let namespace = plane.create_namespace("examples").await.expect("namespace");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("deploy/examples"))
        .expect("deploy/examples")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 2, "{examples:?}");
    for example in &examples {
        let mut apply = kubectl(&plane);
        apply
            .args(["apply", "--dry-run=server", "--namespace", &namespace, "-f"])
            .arg(example);
        let stdout = succeed(apply, None);
        assert!(
            stdout.contains("peoplesync.peoplesync.dev/") && stdout.contains("(server dry run)"),
            "{}: {stdout}",
            example.display()
        );
    }

    // Uninstalling keeps the CRD (and with it every PeopleSync), removes the rest.
    let mut uninstall = helm(Some(kubeconfig));
    uninstall.args(["uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE]);
    succeed(uninstall, None);
    let mut crd = kubectl(&plane);
    crd.args(["get", "customresourcedefinition", CRD_NAME, "-o", "name"]);
    succeed(crd, None);
    let mut deployment = kubectl(&plane);
    deployment.args([
        "get",
        "deployment",
        "peoplesync",
        "--namespace",
        RELEASE_NAMESPACE,
        "--ignore-not-found",
        "-o",
        "name",
    ]);
    assert_eq!(succeed(deployment, None).trim(), "");
}

#[tokio::test]
async fn helm_install_serving_two_namespaces_grants_only_those_namespaces() {
    // The CRD is already there, as when it is managed outside the chart.
    let plane = control_plane().await;
    let watched = plane.create_namespace("identity").await.expect("namespace");
    let second = plane.create_namespace("hr").await.expect("namespace");
    let other = plane.create_namespace("other").await.expect("namespace");
    let mut install = helm(Some(plane.kubeconfig_path()));
    install
        .args(["install", RELEASE, CHART, "--namespace", RELEASE_NAMESPACE])
        .args(["--create-namespace", "--set"])
        .arg(format!(
            "crds.install=false,watchNamespaces={{{watched},{second}}}"
        ));
    succeed(install, None);

    let service_account = format!("system:serviceaccount:{RELEASE_NAMESPACE}:peoplesync");
    let can = |args: &[&str]| -> bool {
        let mut command = kubectl(&plane);
        command
            .args(["auth", "can-i"])
            .args(args)
            .args(["--as", &service_account]);
        run(command, None).status.success()
    };
    for allowed in [
        &["watch", "peoplesyncs.peoplesync.dev", "-n", &watched][..],
        &["patch", "peoplesyncs.peoplesync.dev/status", "-n", &watched],
        &["watch", "secrets", "-n", &watched],
        &["get", "secrets", "-n", &second],
        &["patch", "peoplesyncs.peoplesync.dev/status", "-n", &second],
        &["create", "events.events.k8s.io", "-n", &watched],
        &[
            "patch",
            "leases.coordination.k8s.io",
            "-n",
            RELEASE_NAMESPACE,
        ],
        &["patch", "pods", "-n", RELEASE_NAMESPACE],
    ] {
        assert!(can(allowed), "the operator cannot {allowed:?}");
    }
    for denied in [
        &["watch", "peoplesyncs.peoplesync.dev", "-A"][..],
        &["get", "secrets", "-n", &other],
        &["list", "secrets", "-A"],
        &["create", "peoplesyncs.peoplesync.dev", "-n", &watched],
        &["delete", "secrets", "-n", &watched],
        &["patch", "pods", "-n", &watched],
    ] {
        assert!(!can(denied), "the operator can {denied:?}");
    }
}
