//! R8, the secrets and personal-data audit (issue #17), on real parts: the `peoplesync controller`
//! binary with JSON logs at debug level (every crate's), the test control plane, both sandboxes
//! and slapd. One object per source runs the whole flow: a full sync, a webhook delivery, a
//! secret rotation, a failure (the directory stopped), a guard hold and its release, and
//! deletion. Everything the operator says is collected: every log line, every Event, each
//! status, the metrics exposition and the `kubectl peoplesync status` outputs.
//!
//! - **Secrets** (HollyHR API key, Personio client secret, LDAP password, every webhook signing
//!   secret and token the operator generated, current and rotated): no hit anywhere.
//! - **Personal values** of both tenants (full names, e-mail addresses, and the Personio persons'
//!   private phone numbers, dates of birth and home addresses, which PeopleSync never maps): no
//!   hit in logs, Events, statuses, metrics or status output. Statuses and Events name ids.
//!
//! The HollyHR sandbox serves only the safe projection (PeopleSync never calls `/personal`), so
//! its private fields cannot be tested the same way; the Personio sandbox's persons carry them.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use peoplesync::crd::PeopleSync;
use peoplesync::slapd::{self, Slapd};
use peoplesync::source::hollyhr::model::UpdateEmploymentRequest;
use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient, Idempotency};
use peoplesync_sandbox::personio::{
    self as personio_sandbox, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioSandboxConfig,
};
use peoplesync_sandbox::{self as sandbox, SandboxConfig};
use serde_json::{Value, json};
use support::*;

const PEOPLE: usize = 40;

/// The operator binary, its stderr (JSON lines) in `log`.
struct Operator {
    child: Child,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn plugin() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peoplesync-privacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let link = dir.join("kubectl-peoplesync");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_peoplesync"), &link).expect("a symlink");
    }
    link
}

/// Runs `kubectl peoplesync …`; its stdout and stderr.
fn kubectl_peoplesync(kubeconfig: &Path, args: &[&str]) -> String {
    let output = Command::new(plugin())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("the plugin runs");
    assert!(
        output.status.success(),
        "kubectl peoplesync {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn subtree(ldap: &Slapd, name: &str) -> String {
    let base = format!("ou={name},{}", slapd::BASE_DN);
    ldap.ldapadd(&format!(
        "dn: {base}\nobjectClass: organizationalUnit\nou: {name}\n\n\
         dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{base}\nobjectClass: organizationalUnit\nou: groups\n\n"
    ))
    .expect("the subtree is added");
    base
}

fn ldap_target(ldap: &Slapd, base: &str) -> Value {
    json!({ "ldap": {
        "url": ldap.url(), "bindDn": slapd::ADMIN_DN,
        "bindPasswordSecretRef": { "name": "ldap", "key": "password" },
        "baseDn": base, "peopleDn": format!("ou=people,{base}"),
        "groupsDn": format!("ou=groups,{base}")
    }})
}

async fn annotate(api: &Api<PeopleSync>, name: &str, key: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": { key: value }}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotated");
}

/// Asks for a full cycle now and waits until `condition` has `status`.
async fn cycle_until(
    client: &Client,
    ns: &str,
    name: &str,
    condition: &str,
    status: &str,
    reason: Option<&str>,
) {
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), ns);
    annotate(
        &api,
        name,
        peoplesync::crd::SYNC_NOW,
        &jiff::Timestamp::now().to_string(),
    )
    .await;
    wait_condition(client, ns, name, condition, status, reason).await;
}

/// Every value of every Secret the operator owns in `ns` (signing secrets and tokens).
async fn owned_secret_values(client: &Client, ns: &str) -> BTreeSet<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let owned = api
        .list(&ListParams::default().labels("peoplesync.dev/webhook-signing=true"))
        .await
        .expect("lists");
    let mut values = BTreeSet::new();
    for secret in owned.items {
        let data = secret.data.unwrap_or_default();
        for key in ["current", "previous"] {
            if let Some(value) = data.get(key) {
                let text = String::from_utf8_lossy(&value.0).into_owned();
                // Personio's is a whole `Authorization` value: the token is what must not leak.
                values.insert(text.trim_start_matches("Bearer ").to_owned());
            }
        }
    }
    values
}

/// `needle`'s hits in each collected text: `(where, a little context)`.
fn hits<'a>(texts: &'a [(String, String)], needle: &str) -> Vec<(&'a str, String)> {
    let mut found = Vec::new();
    for (place, text) in texts {
        if let Some(at) = text.find(needle) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(60)
                .map_or(0, |(i, _)| i);
            let end = (at + needle.len() + 60).min(text.len());
            let end = (end..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            found.push((place.as_str(), text[start..end].replace(needle, "«…»")));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_anywhere_and_no_personal_value_outside_the_directory() {
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    let hollyhr = sandbox::start(SandboxConfig {
        people: PEOPLE,
        rate_limit_per_minute: 0,
        allow_insecure_webhook_urls: true,
        delivery_retry_schedule: vec![Duration::from_millis(200); 5],
        ..SandboxConfig::default()
    })
    .await
    .expect("the HollyHR sandbox starts");
    let personio = personio_sandbox::start(PersonioSandboxConfig {
        people: PEOPLE,
        rate_limit_per_minute: 0,
        allow_insecure_webhook_urls: true,
        delivery_retry_schedule: vec![Duration::from_millis(200); 5],
        ..Default::default()
    })
    .await
    .expect("the Personio sandbox starts");
    let mut ldap = Slapd::start().await.expect("slapd starts");
    let ns = plane.create_namespace("privacy").await.expect("namespace");
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&client, &ns, "ldap", "password", &ldap.admin_password).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let credentials: Secret = serde_json::from_value(json!({
        "metadata": { "name": "personio" },
        "stringData": { "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET }
    }))
    .expect("a Secret");
    secrets
        .create(&PostParams::default(), &credentials)
        .await
        .expect("Secret created");

    // The operator, logging JSON at debug level for every crate.
    let log = std::env::temp_dir().join(format!("peoplesync-privacy-{}.log", std::process::id()));
    let receiver = free_addr();
    let admin = free_addr();
    let operator = Operator {
        child: Command::new(env!("CARGO_BIN_EXE_peoplesync"))
            .args(["--log-format", "json", "controller", "--namespace", &ns])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--receiver-listen", &receiver.to_string()])
            .args(["--webhook-health-interval", "1s"])
            .env("KUBECONFIG", plane.kubeconfig_path())
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the log file"))
            .spawn()
            .expect("the controller binary starts"),
    };

    let webhook = json!({ "enabled": true, "publicUrl": format!("http://{receiver}") });
    let schedule = json!({ "pollInterval": "1h", "fullResyncInterval": "6h" });
    let acme = json!({
        "apiVersion": "peoplesync.dev/v1alpha1", "kind": "PeopleSync",
        "metadata": { "name": "acme" },
        "spec": {
            "source": { "hollyhr": { "baseUrl": hollyhr.base_url(),
                "apiKeySecretRef": { "name": "hollyhr", "key": "apiKey" } } },
            "target": ldap_target(&ldap, &subtree(&ldap, "acme")),
            "webhook": webhook, "schedule": schedule
        }
    });
    let beta = json!({
        "apiVersion": "peoplesync.dev/v1alpha1", "kind": "PeopleSync",
        "metadata": { "name": "beta" },
        "spec": {
            "source": { "personio": { "baseUrl": personio.base_url(),
                "credentialsSecretRef": { "name": "personio" } } },
            "target": ldap_target(&ldap, &subtree(&ldap, "beta")),
            "webhook": webhook, "schedule": schedule
        }
    });
    create(&client, &ns, acme).await.expect("created");
    create(&client, &ns, beta).await.expect("created");
    for name in ["acme", "beta"] {
        wait_condition(&client, &ns, name, "Synced", "True", Some("Synced")).await;
        wait_condition(&client, &ns, name, "WebhookRegistered", "True", None).await;
    }
    let mut secret_values = owned_secret_values(&client, &ns).await;
    assert!(
        secret_values.len() >= 2,
        "a signing secret and a token: {}",
        secret_values.len()
    );
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);
    let mut texts: Vec<(String, String)> = Vec::new();
    let statuses = |texts: &mut Vec<(String, String)>, objects: Vec<PeopleSync>, when: &str| {
        for object in objects {
            let status = serde_json::to_string(&object.status).expect("JSON");
            texts.push((format!("status {when}"), status));
        }
    };

    // A webhook per source: a title change reaches the directory through a delivery.
    let hr = HollyHrClient::new(
        ClientConfig::new(&hollyhr.base_url(), sandbox::DEFAULT_API_KEY.into()).expect("config"),
    )
    .expect("a client");
    let person = sandbox::generate_tenant(PEOPLE, SandboxConfig::default().seed)[0]
        .id
        .clone();
    let employment = hr.person_employment(&person).await.expect("reads");
    hr.update_employment(
        &person,
        &UpdateEmploymentRequest {
            job_title: Some(Some("Privacy Officer".into())),
            ..UpdateEmploymentRequest::default()
        },
        &employment.etag.expect("an ETag"),
        Idempotency::Derived,
    )
    .await
    .expect("changed");
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/v2/auth/token", personio.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("a token")
        .json()
        .await
        .expect("JSON");
    let token = token["access_token"].as_str().expect("a token").to_owned();
    let personio_tenant =
        personio_sandbox::generate_tenant(PEOPLE, PersonioSandboxConfig::default().seed);
    let someone = &personio_tenant.persons[0].id;
    let employment = &personio_tenant.employments[someone][0].id;
    let patched = http
        .patch(format!(
            "{}/v2/persons/{someone}/employments/{employment}",
            personio.base_url()
        ))
        .bearer_auth(&token)
        .json(&json!({"position": {"title": "Privacy Officer"}}))
        .send()
        .await
        .expect("patched");
    assert!(patched.status().is_success(), "{}", patched.status());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut admin_ldap = ldap.admin().await.expect("binds");
        let (found, _) = admin_ldap
            .search(
                slapd::BASE_DN,
                ldap3::Scope::Subtree,
                "(title=Privacy Officer)",
                vec!["employeeNumber"],
            )
            .await
            .expect("searched")
            .success()
            .expect("found");
        let _ = admin_ldap.unbind().await;
        if found.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deliveries were not applied ({} of 2)",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Rotation, for both: the new secret and token join the list to look for.
    for name in ["acme", "beta"] {
        annotate(
            &api,
            name,
            peoplesync::crd::ROTATE_WEBHOOK_SECRET,
            &jiff::Timestamp::now().to_string(),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = owned_secret_values(&client, &ns).await;
        if now.difference(&secret_values).count() >= 2 {
            secret_values.extend(now);
            break;
        }
        assert!(Instant::now() < deadline, "the rotations did not happen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A failure: the directory is down for a cycle, then back.
    ldap.stop();
    for name in ["acme", "beta"] {
        cycle_until(&client, &ns, name, "DirectoryReachable", "False", None).await;
    }
    ldap.start_again().await.expect("slapd starts again");
    for name in ["acme", "beta"] {
        cycle_until(&client, &ns, name, "Synced", "True", Some("Synced")).await;
    }

    // A guard hold: both sources suddenly list nobody.
    for settings in [hollyhr.controls().settings(json!({"empty_tenant": true}))] {
        settings.await.expect("set");
    }
    personio
        .controls()
        .settings(json!({"empty_tenant": true}))
        .await
        .expect("set");
    for name in ["acme", "beta"] {
        cycle_until(&client, &ns, name, "DeprovisionGuard", "True", None).await;
    }
    let kubeconfig = plane.kubeconfig_path().to_owned();
    for args in [
        vec!["status", "-n", &ns],
        vec!["status", "acme", "-n", &ns],
        vec!["status", "beta", "-n", &ns, "-o", "yaml"],
        vec!["status", "-A", "-o", "json"],
    ] {
        texts.push((
            format!("kubectl peoplesync {}", args.join(" ")),
            kubectl_peoplesync(&kubeconfig, &args),
        ));
    }
    statuses(
        &mut texts,
        api.list(&ListParams::default()).await.expect("lists").items,
        "while the guard holds",
    );
    hollyhr
        .controls()
        .settings(json!({"empty_tenant": false}))
        .await
        .expect("set");
    personio
        .controls()
        .settings(json!({"empty_tenant": false}))
        .await
        .expect("set");
    for name in ["acme", "beta"] {
        cycle_until(&client, &ns, name, "DeprovisionGuard", "False", None).await;
    }
    statuses(
        &mut texts,
        api.list(&ListParams::default()).await.expect("lists").items,
        "after the flow",
    );
    // The one place values are printed: `explain`, for the person asked about (a positive control
    // for the search below: the same search finds that person's name there).
    let hollyhr_person = sandbox::generate_tenant(PEOPLE, SandboxConfig::default().seed)
        .into_iter()
        .find(|p| p.id == person)
        .expect("the changed person");
    let explained = kubectl_peoplesync(
        &kubeconfig,
        &["explain", "acme", "-n", &ns, "--person", &person],
    );
    let control = [("explain".to_owned(), explained)];
    assert_eq!(
        hits(&control, &hollyhr_person.display_name).len(),
        1,
        "explain shows the values asked for: {}",
        control[0].1
    );
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    texts.push(("metrics".into(), metrics));

    // Deletion: both objects go (their webhooks and owned Secrets with them).
    for name in ["acme", "beta"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("deleted");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api
        .list(&ListParams::default())
        .await
        .expect("lists")
        .items
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the objects were not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    for event in events
        .list(&ListParams::default())
        .await
        .expect("lists")
        .items
    {
        texts.push((
            format!("Event {}", event.reason.clone().unwrap_or_default()),
            serde_json::to_string(&event).expect("JSON"),
        ));
    }
    drop(operator);
    let logged = std::fs::read_to_string(&log).expect("the log");
    let lines = logged.lines().count();
    assert!(
        logged.contains("\"level\":\"DEBUG\""),
        "the log is at debug level"
    );
    // Ids are what logs name: the changed person's is there.
    assert!(logged.contains(&person), "the log names ids");
    texts.push(("log".into(), logged));

    // Secrets: nowhere.
    let mut secret_list: Vec<String> = vec![
        sandbox::DEFAULT_API_KEY.into(),
        DEFAULT_CLIENT_SECRET.into(),
        ldap.admin_password.clone(),
    ];
    secret_list.extend(secret_values);
    let mut leaks = Vec::new();
    for value in &secret_list {
        leaks.extend(hits(&texts, value));
    }
    assert!(leaks.is_empty(), "secrets found: {leaks:#?}");

    // Personal values: nowhere outside the directory.
    let mut personal: BTreeSet<String> = BTreeSet::new();
    for person in sandbox::generate_tenant(PEOPLE, SandboxConfig::default().seed) {
        personal.insert(person.display_name.clone());
        personal.extend(person.work_email.clone());
    }
    for (index, person) in personio_tenant.persons.iter().enumerate() {
        if let (Some(first), Some(last)) = (&person.first_name, &person.last_name) {
            personal.insert(format!("{first} {last}"));
        }
        personal.extend(person.email.clone());
        for attribute in personio_sandbox::private_attributes(index) {
            personal.insert(attribute.value.as_str().expect("text").to_owned());
        }
    }
    let mut exposed = Vec::new();
    for value in &personal {
        exposed.extend(hits(&texts, value));
    }
    assert!(
        exposed.is_empty(),
        "{} personal values found: {:#?}",
        exposed.len(),
        exposed.iter().take(10).collect::<Vec<_>>()
    );
    println!(
        "R8: {} secrets and {} personal values checked against {lines} log lines, {} Events, \
         {} statuses, the metrics and 4 status outputs: no hit",
        secret_list.len(),
        personal.len(),
        texts.iter().filter(|(p, _)| p.starts_with("Event")).count(),
        texts
            .iter()
            .filter(|(p, _)| p.starts_with("status"))
            .count(),
    );
    let _ = std::fs::remove_file(&log);
}
