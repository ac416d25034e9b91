//! `peoplesync-sandbox demo` (`./scripts/demo.sh`): the main job on its local default. The operator on a local control plane
//! (kube-apiserver + etcd), a HollyHR sandbox (1,000 people) and a private OpenLDAP slapd: a
//! PeopleSync is applied, reaches `Ready`, and a change made through the HollyHR API reaches the
//! directory through the signed webhook. `--standalone` runs the same sync without Kubernetes
//! (`peoplesync sync` from a config file, incremental cycles instead of the webhook).

use std::time::Instant;

use futures::TryStreamExt;
use secrecy::SecretString;

use crate::cli::CliError;
use crate::{DEFAULT_API_KEY, SandboxConfig};
use peoplesync::cli::sync::{SyncJob, run as run_sync};
use peoplesync::directory::ldap::LdapDirectory;
use peoplesync::directory::{Directory, Entry};
use peoplesync::slapd::{self, Slapd};
use peoplesync::source::hollyhr::model::{Lifecycle, UpdateEmploymentRequest};
use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient, Idempotency};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("failed to start slapd")]
    Slapd(#[from] peoplesync::slapd::SlapdError),
    #[error("failed to write the demo files in {path}")]
    Files {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the directory")]
    Directory(#[from] peoplesync::directory::ldap::LdapBackendError),
    #[error(
        "failed to start the local control plane (build it first: scripts/controlplane/build.sh)"
    )]
    ControlPlane(#[from] peoplesync::controlplane::ControlPlaneError),
    #[error("the Kubernetes API refused {what}")]
    Kube {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Timeout(String),
    #[error("failed to run kubectl")]
    Kubectl(#[source] std::io::Error),
    #[error("the sync reported success, but the directory holds no entry PeopleSync owns")]
    NothingSynced,
}

fn kube_error(what: &'static str) -> impl FnOnce(kube::Error) -> DemoError {
    move |source| DemoError::Kube { what, source }
}

fn files_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Files {
        path: path.to_owned(),
        source,
    }
}

/// The config a user would write, pointing at the demo's source and slapd.
fn config_yaml(source: &str, ldap_url: &str) -> String {
    format!(
        "# A PeopleSync spec for `peoplesync sync` (the same shape as the Kubernetes object).\n\
         source:\n{source}\
         target:\n  ldap:\n    url: {ldap_url}\n    bindDn: \"{admin}\"\n    bindPasswordSecretRef: {{ name: ldap, key: password }}\n\
         \x20   baseDn: \"{base}\"\n    peopleDn: \"{people}\"\n    groupsDn: \"{groups}\"\n\
         schedule:\n  pollInterval: 30s\n",
        admin = slapd::ADMIN_DN,
        base = slapd::BASE_DN,
        people = slapd::PEOPLE_DN,
        groups = slapd::GROUPS_DN,
    )
}

fn hollyhr_source_yaml(base_url: &str) -> String {
    format!(
        "  hollyhr:\n    baseUrl: {base_url}\n    apiKeySecretRef: {{ name: hollyhr, key: apiKey }}\n"
    )
}

fn personio_source_yaml(base_url: &str) -> String {
    format!(
        "  personio:\n    baseUrl: {base_url}\n    credentialsSecretRef: {{ name: personio }}\n    appId: PEOPLESYNC_DEMO\n"
    )
}

fn show(entry: &Entry) -> String {
    let value = |name: &str| {
        entry
            .attributes
            .get(name)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    format!(
        "  dn: {}\n  cn: {}\n  mail: {}\n  title: {}\n  employeeNumber: {}\n  manager: {}",
        entry.id,
        value("cn"),
        value("mail"),
        value("title"),
        value("employeeNumber"),
        value("manager"),
    )
}

/// Which HR sandbox a demo runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DemoSource {
    #[default]
    Hollyhr,
    Personio,
}

/// A change made through the source's API for the demo: whose entry to show, and what changed.
type Changed = Option<(String, &'static str)>;

pub async fn run_standalone(people: usize, seed: u64, source: DemoSource) -> Result<(), CliError> {
    let started = Instant::now();
    let ldap = Slapd::start().await.map_err(DemoError::from)?;
    match source {
        DemoSource::Hollyhr => {
            let sandbox = crate::start(SandboxConfig {
                people,
                seed,
                ..SandboxConfig::default()
            })
            .await?;
            println!(
                "Started a HollyHR sandbox with {people} people at {} and OpenLDAP at {}.",
                sandbox.base_url(),
                ldap.url()
            );
            let secrets = [("hollyhr", "apiKey", DEFAULT_API_KEY.to_owned())];
            let url = sandbox.base_url();
            let yaml = hollyhr_source_yaml(&url);
            showcase(&ldap, &yaml, &secrets, || change_in_hollyhr(&url)).await?;
            sandbox.shutdown().await;
        }
        DemoSource::Personio => {
            use crate::personio::{
                self, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioSandboxConfig,
            };
            let sandbox = personio::start(PersonioSandboxConfig {
                people,
                seed,
                // One employment read per person: at the default 600 a minute a 1,000-person
                // demo would spend most of its time waiting out `Retry-After`.
                rate_limit_per_minute: 0,
                ..PersonioSandboxConfig::default()
            })
            .await?;
            println!(
                "Started a Personio sandbox with {people} people at {} and OpenLDAP at {}.",
                sandbox.base_url(),
                ldap.url()
            );
            let secrets = [
                ("personio", "client_id", DEFAULT_CLIENT_ID.to_owned()),
                (
                    "personio",
                    "client_secret",
                    DEFAULT_CLIENT_SECRET.to_owned(),
                ),
            ];
            let url = sandbox.base_url();
            let yaml = personio_source_yaml(&url);
            showcase(&ldap, &yaml, &secrets, || change_in_personio(&url)).await?;
            sandbox.shutdown().await;
        }
    }
    println!(
        "\nDone in {:.1} s. The sandbox and slapd stop with this command; on a cluster, the same spec \
         is a PeopleSync object (README: The operator).",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The Kubernetes-free showcase for either source: the config and Secrets a user would write, a
/// full cycle, a change made through the source's API, and the incremental cycle that carries it.
async fn showcase<F, Fut>(
    ldap: &Slapd,
    source_yaml: &str,
    secrets: &[(&str, &str, String)],
    change: F,
) -> Result<(), CliError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Changed, CliError>>,
{
    let dir = ldap.dir().join("demo");
    let secrets_dir = dir.join("secrets");
    let password = ldap.admin_password.clone();
    for (name, key, value) in secrets
        .iter()
        .map(|(n, k, v)| (*n, *k, v.as_str()))
        .chain([("ldap", "password", password.as_str())])
    {
        let path = secrets_dir.join(name);
        std::fs::create_dir_all(&path).map_err(files_error(&path))?;
        std::fs::write(path.join(key), value).map_err(files_error(&path))?;
    }
    let config = dir.join("peoplesync.yaml");
    std::fs::write(&config, config_yaml(source_yaml, &ldap.url())).map_err(files_error(&config))?;
    let job = SyncJob {
        config: config.clone(),
        secrets_dir,
        state: dir.join("peoplesync.state.json"),
        once: true,
        dry_run: false,
        full: false,
        output: peoplesync::cli::Output::Table,
        progress: {
            use std::io::IsTerminal;
            std::io::stderr().is_terminal()
        },
    };
    println!("\n$ peoplesync sync --config {} --once", config.display());
    run_sync(job.clone()).await?;

    let directory = LdapDirectory::connect(ldap.ldap_config())
        .await
        .map_err(DemoError::from)?;
    let entries: Vec<Entry> = directory
        .entries()
        .try_collect()
        .await
        .map_err(DemoError::from)?;
    if entries.is_empty() {
        return Err(DemoError::NothingSynced.into());
    }
    let enabled = entries.iter().filter(|e| e.enabled).count();
    println!(
        "\nThe directory now holds {} managed entries ({enabled} enabled; future starters wait disabled).",
        entries.len()
    );

    if let Some((anchor, what)) = change().await? {
        println!(
            "\nChanged the job title of {anchor} through the {what} API; the next cycle picks it up:"
        );
        println!("$ peoplesync sync --config {} --once", config.display());
        run_sync(job).await?;
        let entries: Vec<Entry> = directory
            .entries()
            .try_collect()
            .await
            .map_err(DemoError::from)?;
        if let Some(entry) = entries.iter().find(|e| e.anchor == anchor) {
            println!("\n{}", show(entry));
        }
    }
    Ok(())
}

/// A new job title for an active person with a manager, through the HollyHR API.
async fn change_in_hollyhr(base_url: &str) -> Result<Changed, CliError> {
    let client = HollyHrClient::new(ClientConfig::new(
        base_url,
        SecretString::from(DEFAULT_API_KEY),
    )?)?;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let person = peoplesync::source::PeopleSource::people(&client, None)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .find(|p| p.lifecycle(today) == Lifecycle::Active && p.manager.is_some());
    let Some(person) = person else {
        return Ok(None);
    };
    let employment = client.person_employment(&person.id).await?;
    let Some(etag) = employment.etag else {
        return Ok(None);
    };
    let body = UpdateEmploymentRequest {
        job_title: Some(Some("Head of Demonstrations".to_owned())),
        ..UpdateEmploymentRequest::default()
    };
    client
        .update_employment(&person.id, &body, &etag, Idempotency::Derived)
        .await?;
    Ok(Some((person.id, "HollyHR")))
}

/// A new job title for an active person with a supervisor, through Personio's write API
/// (`personio:persons:write`; PeopleSync itself never writes to Personio).
async fn change_in_personio(base_url: &str) -> Result<Changed, CliError> {
    use crate::personio::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
    use peoplesync::source::personio::{PersonioClient, PersonioConfig, PersonsQuery};
    let failed =
        |error: reqwest::Error| DemoError::Timeout(format!("the Personio sandbox: {error}"));
    let url: url::Url = base_url
        .parse()
        .map_err(|e| DemoError::Timeout(format!("the Personio sandbox URL: {e}")))?;
    let client = PersonioClient::new(PersonioConfig::new(
        url,
        DEFAULT_CLIENT_ID,
        SecretString::from(DEFAULT_CLIENT_SECRET),
    ))
    .map_err(peoplesync::source::any::AnySourceError::from)
    .map_err(peoplesync::cli::sync::SyncCliError::from)?;
    let source_error = |e: peoplesync::source::personio::PersonioError| {
        peoplesync::cli::sync::SyncCliError::from(peoplesync::source::any::AnySourceError::from(e))
    };
    let persons: Vec<_> = client
        .persons(&PersonsQuery {
            status: Some("ACTIVE".into()),
            ..PersonsQuery::default()
        })
        .try_collect()
        .await
        .map_err(source_error)?;
    for person in persons {
        let Some(employment) = client
            .latest_employment(&person.id)
            .await
            .map_err(source_error)?
        else {
            continue;
        };
        if employment.status.as_deref() != Some("ACTIVE") || employment.supervisor.is_none() {
            continue;
        }
        let http = reqwest::Client::new();
        let token: serde_json::Value = http
            .post(format!("{base_url}/v2/auth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
                ("scope", "personio:persons:write"),
            ])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?
            .json()
            .await
            .map_err(failed)?;
        http.patch(format!(
            "{base_url}/v2/persons/{}/employments/{}",
            person.id, employment.id
        ))
        .bearer_auth(token["access_token"].as_str().unwrap_or_default())
        .json(&serde_json::json!({"position": {"title": "Head of Demonstrations"}}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(failed)?;
        return Ok(Some((person.id, "Personio")));
    }
    Ok(None)
}

/// A free loopback address for one of the demo's listeners.
fn free_addr() -> Result<std::net::SocketAddr, DemoError> {
    let port = peoplesync::controlplane::loopback_port().map_err(DemoError::Kubectl)?;
    Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The PeopleSync the demo applies: the sandbox as the source, slapd as the target, the webhook
/// on the operator's receiver; polling every 5 minutes (changes arrive through the webhook).
fn demo_object(source: serde_json::Value, ldap_url: &str, receiver: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "peoplesync.dev/v1alpha1",
        "kind": "PeopleSync",
        "metadata": { "name": "acme", "namespace": DEMO_NAMESPACE },
        "spec": {
            "source": source,
            "target": { "ldap": {
                "url": ldap_url,
                "bindDn": slapd::ADMIN_DN,
                "bindPasswordSecretRef": { "name": "ldap", "key": "password" },
                "baseDn": slapd::BASE_DN,
                "peopleDn": slapd::PEOPLE_DN,
                "groupsDn": slapd::GROUPS_DN
            }},
            "webhook": { "enabled": true, "publicUrl": receiver },
            "schedule": { "pollInterval": "5m", "fullResyncInterval": "6h" }
        }
    })
}

const DEMO_NAMESPACE: &str = "demo";

/// Waits (bounded) until the object's condition `kind` is True.
async fn wait_true(
    api: &kube::Api<peoplesync::crd::PeopleSync>,
    kind: &str,
    within: std::time::Duration,
) -> Result<(), DemoError> {
    let deadline = Instant::now() + within;
    loop {
        let object = api
            .get("acme")
            .await
            .map_err(kube_error("reading the PeopleSync"))?;
        let conditions = object.status.map(|s| s.conditions).unwrap_or_default();
        let found = conditions.iter().find(|c| c.type_ == kind);
        if found.is_some_and(|c| c.status == "True") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::Timeout(format!(
                "{kind} did not become True within {} s: {}",
                within.as_secs(),
                found
                    .map(|c| format!("{} ({}): {}", c.status, c.reason, c.message))
                    .unwrap_or_else(|| "no condition yet".into())
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn kubectl(
    plane: &peoplesync::controlplane::ControlPlane,
    args: &[&str],
) -> Result<String, DemoError> {
    let output = plane
        .kubectl()
        .args(args)
        .output()
        .map_err(DemoError::Kubectl)?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// The operator demo. With `keep`, everything stays up until Ctrl-C.
/// The sandbox the operator demo reads from; dropping it stops it.
enum DemoSandbox {
    Hollyhr(crate::SandboxHandle),
    Personio(crate::personio::PersonioSandboxHandle),
}

impl DemoSandbox {
    async fn start(source: DemoSource, people: usize, seed: u64) -> Result<Self, CliError> {
        Ok(match source {
            DemoSource::Hollyhr => DemoSandbox::Hollyhr(
                crate::start(SandboxConfig {
                    people,
                    seed,
                    allow_insecure_webhook_urls: true,
                    ..SandboxConfig::default()
                })
                .await?,
            ),
            DemoSource::Personio => DemoSandbox::Personio(
                crate::personio::start(crate::personio::PersonioSandboxConfig {
                    people,
                    seed,
                    allow_insecure_webhook_urls: true,
                    // One employment read per person (see `run_standalone`).
                    rate_limit_per_minute: 0,
                    ..Default::default()
                })
                .await?,
            ),
        })
    }

    fn base_url(&self) -> String {
        match self {
            DemoSandbox::Hollyhr(sandbox) => sandbox.base_url(),
            DemoSandbox::Personio(sandbox) => sandbox.base_url(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            DemoSandbox::Hollyhr(_) => "HollyHR",
            DemoSandbox::Personio(_) => "Personio",
        }
    }

    /// The Secrets the PeopleSync references for its source: (name, key, value).
    fn secrets(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        use crate::personio::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
        match self {
            DemoSandbox::Hollyhr(_) => vec![("hollyhr", "apiKey", DEFAULT_API_KEY)],
            DemoSandbox::Personio(_) => vec![
                ("personio", "client_id", DEFAULT_CLIENT_ID),
                ("personio", "client_secret", DEFAULT_CLIENT_SECRET),
            ],
        }
    }

    /// `spec.source` pointing at this sandbox.
    fn source(&self) -> serde_json::Value {
        match self {
            DemoSandbox::Hollyhr(sandbox) => serde_json::json!({ "hollyhr": {
                "baseUrl": sandbox.base_url(),
                "apiKeySecretRef": { "name": "hollyhr", "key": "apiKey" }
            }}),
            DemoSandbox::Personio(sandbox) => serde_json::json!({ "personio": {
                "baseUrl": sandbox.base_url(),
                "credentialsSecretRef": { "name": "personio" },
                "appId": "PEOPLESYNC_DEMO"
            }}),
        }
    }

    /// A new job title for an active person with a manager, through the source's API.
    async fn change(&self) -> Result<Changed, CliError> {
        match self {
            DemoSandbox::Hollyhr(sandbox) => change_in_hollyhr(&sandbox.base_url()).await,
            DemoSandbox::Personio(sandbox) => change_in_personio(&sandbox.base_url()).await,
        }
    }
}

pub async fn run(people: usize, seed: u64, source: DemoSource, keep: bool) -> Result<(), CliError> {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::Api;
    use kube::api::PostParams;

    let started = Instant::now();
    println!("[demo] starting a local control plane (etcd + kube-apiserver)");
    let plane = peoplesync::controlplane::ControlPlane::start()
        .await
        .map_err(DemoError::from)?;
    let crds = std::env::temp_dir().join(format!("peoplesync-demo-crds-{}", std::process::id()));
    std::fs::create_dir_all(&crds).map_err(files_error(&crds))?;
    let crd_file = crds.join("peoplesync.yaml");
    std::fs::write(&crd_file, peoplesync::crd::crd_yaml()).map_err(files_error(&crd_file))?;
    plane.install_crds(&crds).await.map_err(DemoError::from)?;
    let _ = std::fs::remove_dir_all(&crds);
    let client = plane.client().await.map_err(DemoError::from)?;
    println!(
        "[demo] control plane ready in {:.1} s; installed the PeopleSync CRD",
        plane.startup.as_secs_f64()
    );

    let sandbox = DemoSandbox::start(source, people, seed).await?;
    let ldap = Slapd::start().await.map_err(DemoError::from)?;
    println!(
        "[demo] {} sandbox with {people} people at {}; OpenLDAP at {}",
        sandbox.name(),
        sandbox.base_url(),
        ldap.url()
    );

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": DEMO_NAMESPACE}}))
            .expect("a Namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .map_err(kube_error("creating the demo namespace"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), DEMO_NAMESPACE);
    let mut data: std::collections::BTreeMap<&str, serde_json::Map<String, serde_json::Value>> =
        std::collections::BTreeMap::new();
    for (name, key, value) in
        sandbox
            .secrets()
            .into_iter()
            .chain([("ldap", "password", ldap.admin_password.as_str())])
    {
        data.entry(name)
            .or_default()
            .insert(key.to_owned(), value.into());
    }
    for (name, keys) in data {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name }, "stringData": keys
        }))
        .expect("a Secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .map_err(kube_error("creating a Secret"))?;
    }

    // The operator, in this process: reconciler, webhook receiver, metrics.
    let receiver = free_addr()?;
    let admin = free_addr()?;
    let config = peoplesync::controller::Config {
        admin_listen: admin,
        namespaces: peoplesync::watch::Namespaces::one(DEMO_NAMESPACE.to_owned()),
        leader_election: None,
        instance: "demo".into(),
        receiver_listen: Some(receiver),
        receiver_limits: Default::default(),
        // Health read every few seconds, so the table below shows the first delivery's effect.
        webhook: peoplesync::webhook::WebhookConfig {
            health_interval: std::time::Duration::from_secs(2),
        },
        max_concurrent_syncs: 4,
    };
    let kube = plane.kube_config().await.map_err(DemoError::from)?;
    let operator = tokio::spawn(async move { peoplesync::controller::run(kube, config).await });
    println!(
        "[demo] operator running: webhook receiver on {receiver}, metrics on http://{admin}/metrics"
    );

    let object = demo_object(sandbox.source(), &ldap.url(), &format!("http://{receiver}"));
    println!(
        "\n$ kubectl apply -f - <<EOF\n{}EOF",
        serde_yaml_ng::to_string(&object).unwrap_or_default()
    );
    let api: Api<peoplesync::crd::PeopleSync> = Api::namespaced(client.clone(), DEMO_NAMESPACE);
    let typed: peoplesync::crd::PeopleSync =
        serde_json::from_value(object).expect("the demo object is a PeopleSync");
    api.create(&PostParams::default(), &typed)
        .await
        .map_err(kube_error("creating the PeopleSync"))?;
    let wait = std::time::Duration::from_secs(120);
    wait_true(&api, "Ready", wait).await?;
    wait_true(&api, "Synced", wait).await?;
    wait_true(&api, "WebhookRegistered", wait).await?;
    println!("\n$ kubectl get peoplesyncs -n {DEMO_NAMESPACE}");
    print!(
        "{}",
        kubectl(&plane, &["get", "peoplesyncs", "-n", DEMO_NAMESPACE])?
    );

    // The entries the object demo/acme owns (they carry its mark).
    let directory =
        LdapDirectory::connect(ldap.ldap_config().owned_by_object(DEMO_NAMESPACE, "acme"))
            .await
            .map_err(DemoError::from)?;
    let entries: Vec<Entry> = directory
        .entries()
        .try_collect()
        .await
        .map_err(DemoError::from)?;
    if entries.is_empty() {
        return Err(DemoError::NothingSynced.into());
    }
    let enabled = entries.iter().filter(|e| e.enabled).count();
    println!(
        "\nThe directory holds {} managed entries ({enabled} enabled; future starters wait disabled).",
        entries.len()
    );

    // A change made through the source's API reaches the directory through the webhook.
    let title = "Head of Demonstrations";
    if let Some((anchor, what)) = sandbox.change().await? {
        let changed = Instant::now();
        if let Some(entry) = entries.iter().find(|e| e.anchor == anchor) {
            println!("\nOne of them, before:\n{}", show(entry));
        }
        println!(
            "\nChanged the job title of {anchor} through the {what} API (polling is every 5 minutes; the webhook carries it):"
        );
        let deadline = changed + std::time::Duration::from_secs(30);
        loop {
            let entries: Vec<Entry> = directory
                .entries()
                .try_collect()
                .await
                .map_err(DemoError::from)?;
            let entry = entries.into_iter().find(|e| e.anchor == anchor);
            let has = entry.as_ref().is_some_and(|e| {
                e.attributes
                    .get("title")
                    .and_then(|v| v.first())
                    .map(String::as_str)
                    == Some(title)
            });
            if let (true, Some(entry)) = (has, entry) {
                println!(
                    "the directory entry changed {:.0} ms after the write returned:\n{}",
                    changed.elapsed().as_secs_f64() * 1e3,
                    show(&entry)
                );
                break;
            }
            if Instant::now() > deadline {
                return Err(DemoError::Timeout(
                    "the change did not reach the directory within 30 s".into(),
                )
                .into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // The source now counts the delivery (HollyHR's health endpoint, Personio's activity log):
    // WebhookHealthy turns True.
    if let Err(error) = wait_true(&api, "WebhookHealthy", std::time::Duration::from_secs(20)).await
    {
        println!("\n{error}");
    }
    println!("\n$ kubectl get peoplesyncs -n {DEMO_NAMESPACE}");
    print!(
        "{}",
        kubectl(&plane, &["get", "peoplesyncs", "-n", DEMO_NAMESPACE])?
    );
    println!("\nReady in {:.1} s.", started.elapsed().as_secs_f64());

    if keep {
        println!(
            "\nEverything keeps running. In another terminal:\n  export KUBECONFIG={}\n  \
             {}/kubectl get peoplesyncs -n {DEMO_NAMESPACE}\n  \
             {}/kubectl describe peoplesync acme -n {DEMO_NAMESPACE}\n  \
             curl -s http://{admin}/metrics | grep peoplesync_\n\
             Stop everything with Ctrl-C.",
            plane.kubeconfig_path().display(),
            plane.bin_dir().display(),
            plane.bin_dir().display(),
        );
        let _ = tokio::signal::ctrl_c().await;
        println!("\nStopping.");
    }
    operator.abort();
    drop(sandbox);
    drop(ldap);
    drop(plane);
    Ok(())
}
