//! The alerts (issue #20), checked with Prometheus's own tool: `promtool check rules` on the rules
//! file, `promtool test rules` on unit tests that fire and do not fire each alert
//! (`tests/fixtures/alerts-test.yaml`), every metric an alert reads is one the operator exposes,
//! and the chart's PrometheusRule and `deploy/prometheus-rules.yaml` carry exactly these rules.
//!
//! promtool is built from its Go module by `scripts/promtool.sh` (cached by version outside the
//! repo, like the control plane); `PEOPLESYNC_PROMTOOL` names another binary.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const RULES: &str = "charts/peoplesync/files/alerts.yaml";

fn promtool() -> PathBuf {
    if let Ok(path) = std::env::var("PEOPLESYNC_PROMTOOL") {
        return PathBuf::from(path);
    }
    let output = Command::new("bash")
        .arg("scripts/promtool.sh")
        .output()
        .expect("runs scripts/promtool.sh");
    assert!(
        output.status.success(),
        "scripts/promtool.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .expect("the binary's path")
        .to_owned();
    PathBuf::from(path)
}

fn run(args: &[&str]) -> String {
    let output = Command::new(promtool())
        .args(args)
        .output()
        .expect("runs promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

fn rules() -> serde_json::Value {
    let text = std::fs::read_to_string(RULES).expect("the rules file");
    serde_yaml_ng::from_str(&text).expect("YAML")
}

/// `helm template` of the chart with `values` (`--set`).
fn template(values: &str) -> String {
    let bin = std::env::var("PEOPLESYNC_CONTROLPLANE_BIN").expect(
        "PEOPLESYNC_CONTROLPLANE_BIN (scripts/test.sh sets it; scripts/controlplane/build.sh)",
    );
    let output = Command::new(PathBuf::from(&bin).join("helm"))
        .args([
            "template",
            "peoplesync",
            "charts/peoplesync",
            "--namespace",
            "peoplesync-system",
            "--kube-version",
            "1.34.4",
            "--set",
            values,
        ])
        .output()
        .expect("runs helm");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn promtool_checks_the_rules() {
    let out = run(&["check", "rules", RULES]);
    let alerts = rules()["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .len();
    assert!(
        out.contains(&format!("SUCCESS: {alerts} rules found")),
        "{out}"
    );
}

#[test]
fn promtool_unit_tests_fire_and_do_not_fire_every_alert() {
    run(&["test", "rules", "tests/fixtures/alerts-test.yaml"]);
    // Every alert has a case where it fires and one where it does not.
    let tests: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string("tests/fixtures/alerts-test.yaml").expect("the tests"),
    )
    .expect("YAML");
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().expect("cases") {
            let name = case["alertname"].as_str().expect("a name").to_owned();
            if case["exp_alerts"].as_array().is_some_and(|a| a.is_empty()) {
                quiet.insert(name);
            } else {
                fired.insert(name);
            }
        }
    }
    for rule in rules()["groups"][0]["rules"].as_array().expect("rules") {
        let name = rule["alert"].as_str().expect("an alert");
        assert!(fired.contains(name), "{name} never fires in the unit tests");
        assert!(quiet.contains(name), "{name} is never checked quiet");
        assert!(
            rule["annotations"]["runbook"]
                .as_str()
                .is_some_and(|r| r == format!("README.md#{}", name.to_lowercase())),
            "{name} links its runbook"
        );
        let readme = std::fs::read_to_string("README.md").expect("README");
        assert!(
            readme.contains(&format!("#### {name}")),
            "README has a runbook section for {name}"
        );
    }
}

#[path = "support/promql.rs"]
mod promql;

#[test]
fn alerts_read_only_metrics_and_labels_the_operator_exposes() {
    // The registry the operator serves, with one series in each family the alerts read (an
    // empty family is not in the exposition).
    let metrics = peoplesync::metrics::Metrics::default();
    let status: peoplesync::crd::PeopleSyncStatus = serde_json::from_value(serde_json::json!({
        "conditions": [{
            "type": "Synced", "status": "True", "reason": "Synced", "message": "",
            "lastTransitionTime": "2026-12-05T00:00:00Z"
        }],
        "lastSyncTime": "2026-12-05T00:00:00Z"
    }))
    .expect("a status");
    let acme = peoplesync::metrics::ObjectLabels::new("hr", "acme");
    metrics.object_status(&acme, &status, Some(std::time::Duration::from_secs(300)));
    metrics.source_request(&acme, "hollyhr", "/people", 429);
    metrics.checkpoint_age(&acme, 5);
    let report = peoplesync::sync::engine::Report {
        kind: peoplesync::sync::engine::CycleKind::Full,
        plan: peoplesync::plan::Plan::default(),
        applied: None,
        state: peoplesync::sync::engine::SyncState::default(),
        people_read: 3,
        duration: std::time::Duration::from_millis(40),
        timings: peoplesync::sync::engine::Timings::default(),
        upcoming: Default::default(),
    };
    metrics.cycle(&acme, &report);
    metrics.leading(true);
    let exposed = promql::Exposed::parse(&metrics.encode());
    let rules = rules();
    let mut checked = 0;
    for rule in rules["groups"][0]["rules"].as_array().expect("rules") {
        let expr = rule["expr"].as_str().expect("an expr");
        if let Err(wrong) = promql::check(expr, &exposed) {
            panic!("alert {}: {wrong}", rule["alert"]);
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked} alerts");
}

#[cfg(test)]
mod checker {
    use super::promql::{Exposed, check};

    const EXPOSITION: &str = "# TYPE peoplesync_sync_cycles counter\n\
        peoplesync_sync_cycles_total{namespace=\"hr\",name=\"acme\",kind=\"full\",result=\"ok\"} 1\n\
        peoplesync_cycle_seconds_bucket{namespace=\"hr\",name=\"a,\\\"b\",le=\"0.5\"} 1\n\
        peoplesync_leader 1\n";

    #[test]
    fn the_checker_refuses_what_the_operator_does_not_expose() {
        let exposed = Exposed::parse(EXPOSITION);
        for good in [
            "sum by (namespace, name, kind) (rate(peoplesync_sync_cycles_total{result!=\"ok\"}[5m]))",
            "histogram_quantile(0.5, sum by (le, name) (rate(peoplesync_cycle_seconds_bucket[5m])))",
            "max by (job, instance) (peoplesync_leader) < 1",
        ] {
            assert_eq!(check(good, &exposed), Ok(()), "{good}");
        }
        for bad in [
            "sum(rate(peoplesync_sync_cycle_total[5m]))",
            "sum by (action) (rate(peoplesync_sync_cycles_total[5m]))",
            "peoplesync_sync_cycles_total{outcome=\"ok\"}",
            "peoplesync_leader * on (outcome) peoplesync_sync_cycles_total",
            "sum(rate(peoplesync_sync_cycles_total[5m])",
            "{namespace=\"hr\"}",
        ] {
            assert!(check(bad, &exposed).is_err(), "{bad} passed");
        }
    }
}

#[test]
fn the_chart_and_deploy_carry_exactly_these_rules() {
    let file = std::fs::read_to_string(RULES).expect("the rules file");
    assert_eq!(
        std::fs::read_to_string("deploy/prometheus-rules.yaml").expect("deploy copy"),
        file,
        "deploy/prometheus-rules.yaml is a copy of {RULES}"
    );
    let off = template("prometheusRule.enabled=false");
    assert!(!off.contains("kind: PrometheusRule"), "off by default");
    let on = template("prometheusRule.enabled=true,prometheusRule.labels.release=prometheus");
    let rule = serde_yaml_ng::Deserializer::from_str(&on)
        .filter_map(|doc| serde_json::Value::deserialize(doc).ok())
        .find(|doc| doc["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(rule["spec"]["groups"], rules()["groups"]);
}

use serde::Deserialize as _;

#[test]
fn the_chart_ships_the_dashboard_for_grafanas_sidecar() {
    let rendered = template("grafanaDashboard.enabled=true,grafanaDashboard.namespace=monitoring");
    let config_map = serde_yaml_ng::Deserializer::from_str(&rendered)
        .filter_map(|doc| serde_json::Value::deserialize(doc).ok())
        .find(|doc| doc["kind"] == "ConfigMap" && doc["metadata"]["name"] == "peoplesync-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(config_map["metadata"]["namespace"], "monitoring");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: serde_json::Value = serde_json::from_str(
        config_map["data"]["peoplesync.json"]
            .as_str()
            .expect("the dashboard JSON"),
    )
    .expect("valid JSON");
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("charts/peoplesync/files/dashboard.json").expect("the file"),
    )
    .expect("valid JSON");
    assert_eq!(shipped, file);
    assert_eq!(file["uid"], "peoplesync");
}
