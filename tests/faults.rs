//! Fault-injection trials (issue #17), on real parts: the `peoplesync controller` binary against
//! the test control plane, a HollyHR sandbox and slapd.
//!
//! **R2, kill -9 during a full sync.** A reference run syncs the tenant into its own subtree
//! undisturbed and is timed. Each trial then syncs the same tenant into a fresh subtree and
//! sends SIGKILL at a seeded random moment of that duration. Before the restart it checks that
//! the checkpoint in status is not ahead of the directory (a checkpoint means every person
//! updated up to it is in the directory as the reference has them). After the restart and a
//! finished cycle it checks the whole subtree (every entry, attribute, manager reference and
//! group membership) equals the reference exactly, that no person has two entries, that every
//! entry written before the kill is still the same entry (its `entryUUID`: nothing deleted and
//! re-created), and that no deprovision was written that the reference did not write.
//!
//! **R2 during a webhook burst** (the second test): killed in the middle of 200 employment
//! changes, restarted a moment later; every change reaches the directory, no delivery fails for
//! good, and the worst delay from a change to its entry is printed.
//!
//! **Leader failover** (the third): two replicas, deliveries routed to the Pod the leader labels;
//! the leader is killed in the middle of 500 changes; nothing is lost, and the takeover is timed
//! against the lease duration + 5 s.
//!
//! **Fencing** (the fourth): the leader's API connection is cut while changes keep arriving at
//! its receiver; its last directory write must come before the standby's `acquireTime`.
//!
//! **Control-plane faults** (the fifth): kube-apiserver killed during the first full sync, then
//! etcd and kube-apiserver killed in the middle of bursts: no person created twice, a full cycle
//! afterwards writes nothing, every change lands, no delivery fails for good.
//!
//! `PEOPLESYNC_TRIALS` (default 5) and `PEOPLESYNC_TRIAL_PEOPLE` (default 5,000) size the first,
//! `PEOPLESYNC_BURST_TRIALS` (default 2) the second; `PEOPLESYNC_TRIAL_SEED` replays a run (a
//! failure prints the seed). `scripts/trials.sh` runs the full count (20 trials at 10,000
//! people, 10 bursts) on the release binary and prints the figures.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use kube::{Api, Client};
use ldap3::{Scope, SearchEntry};
use peoplesync::controlplane::ControlPlane;
use peoplesync::crd::PeopleSync;
use peoplesync::slapd::{self, Slapd};
use peoplesync_sandbox::{self as sandbox, SandboxConfig};
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use support::*;

/// The trials time the binary against a reference: one at a time, not beside each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One running `peoplesync controller` process, its JSON log appended to `log`.
struct Operator {
    child: Child,
}

impl Operator {
    fn start(plane: &ControlPlane, namespace: &str, log: &Path) -> Self {
        Self::start_with(plane, namespace, log, &[])
    }

    fn start_with(plane: &ControlPlane, namespace: &str, log: &Path, args: &[&str]) -> Self {
        Self::start_serving(plane, Some(namespace), log, args)
    }

    /// `namespace`: `--namespace`, or none (every namespace, as every build understands it).
    fn start_serving(
        plane: &ControlPlane,
        namespace: Option<&str>,
        log: &Path,
        args: &[&str],
    ) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log file");
        // `PEOPLESYNC_OPERATOR_BIN`: another build of the binary (a "before" figure).
        let binary = std::env::var("PEOPLESYNC_OPERATOR_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_peoplesync").to_owned());
        let child = Command::new(binary)
            .args(["--log-format", "json", "controller"])
            .args(
                namespace
                    .map(|ns| ["--namespace", ns])
                    .into_iter()
                    .flatten(),
            )
            .args(["--admin-listen", &free_addr().to_string()])
            .args(args)
            .env("KUBECONFIG", plane.kubeconfig_path())
            // `PEOPLESYNC_TRIAL_LOG`: another filter while looking into a failure.
            .env(
                "RUST_LOG",
                std::env::var("PEOPLESYNC_TRIAL_LOG")
                    .unwrap_or_else(|_| "warn,peoplesync::audit=info".to_owned()),
            )
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("the controller binary starts");
        Self { child }
    }

    /// SIGKILL, and waits for the process to be gone.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A subtree of its own (people and groups) in the shared slapd.
struct Subtree {
    base: String,
}

impl Subtree {
    fn create(ldap: &Slapd, name: &str) -> Self {
        let base = format!("ou={name},{}", slapd::BASE_DN);
        ldap.ldapadd(&format!(
            "dn: {base}\nobjectClass: organizationalUnit\nou: {name}\n\n\
             dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{base}\nobjectClass: organizationalUnit\nou: groups\n\n"
        ))
        .expect("the subtree is added");
        Self { base }
    }

    fn object(&self, hollyhr: &str, ldap: &Slapd) -> Value {
        json!({
            "apiVersion": "peoplesync.dev/v1alpha1",
            "kind": "PeopleSync",
            "metadata": { "name": "acme" },
            "spec": {
                "source": { "hollyhr": {
                    "baseUrl": hollyhr,
                    "apiKeySecretRef": { "name": "hollyhr", "key": "apiKey" }
                } },
                "target": { "ldap": {
                    "url": ldap.url(), "bindDn": slapd::ADMIN_DN,
                    "bindPasswordSecretRef": { "name": "ldap", "key": "password" },
                    "baseDn": self.base,
                    "peopleDn": format!("ou=people,{}", self.base),
                    "groupsDn": format!("ou=groups,{}", self.base)
                } },
                "schedule": { "pollInterval": "1h", "fullResyncInterval": "6h" }
            }
        })
    }
}

/// The subtree as comparable data: each entry by its DN relative to the subtree, with every
/// user attribute (values sorted, the subtree's DN replaced by `{base}` in DN values), plus
/// `entryUUID` per DN and the number of entries per anchor.
struct Snapshot {
    entries: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    uuids: BTreeMap<String, String>,
    anchors: BTreeMap<String, usize>,
}

/// Job titles in the subtree by anchor.
async fn titles(ldap: &Slapd, subtree: &Subtree) -> BTreeMap<String, String> {
    let mut admin = ldap.admin().await.expect("binds");
    let (results, _) = admin
        .search(
            &format!("ou=people,{}", subtree.base),
            Scope::OneLevel,
            "(objectClass=inetOrgPerson)",
            vec!["employeeNumber", "title"],
        )
        .await
        .expect("searched")
        .success()
        .expect("the search succeeds");
    let _ = admin.unbind().await;
    results
        .into_iter()
        .filter_map(|result| {
            let entry = SearchEntry::construct(result);
            let anchor = entry.attrs.get("employeeNumber")?.first()?.clone();
            let title = entry.attrs.get("title")?.first()?.clone();
            Some((anchor, title))
        })
        .collect()
}

async fn snapshot(ldap: &Slapd, subtree: &Subtree) -> Snapshot {
    let mut admin = ldap.admin().await.expect("binds");
    let (results, _) = admin
        .search(
            &subtree.base,
            Scope::Subtree,
            "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))",
            vec!["*", "entryUUID"],
        )
        .await
        .expect("searched")
        .success()
        .expect("the search succeeds");
    let relative = |text: &str| -> String {
        text.replace(&subtree.base, "{base}")
            .replace(&subtree.base.to_lowercase(), "{base}")
    };
    let mut out = Snapshot {
        entries: BTreeMap::new(),
        uuids: BTreeMap::new(),
        anchors: BTreeMap::new(),
    };
    for result in results {
        let entry = SearchEntry::construct(result);
        let dn = relative(&entry.dn);
        let mut attributes = BTreeMap::new();
        for (name, mut values) in entry.attrs {
            if name == "entryUUID" {
                out.uuids.insert(dn.clone(), values.concat());
                continue;
            }
            if name == "employeeNumber" {
                for anchor in &values {
                    *out.anchors.entry(anchor.clone()).or_default() += 1;
                }
            }
            // Each trial's object marks its entries with its own name: compared as `{mark}`.
            values = values
                .iter()
                .map(|v| {
                    if v.starts_with(peoplesync::directory::MARK_PREFIX) {
                        "{mark}".to_owned()
                    } else {
                        relative(v)
                    }
                })
                .collect();
            values.sort();
            attributes.insert(name, values);
        }
        out.entries.insert(dn, attributes);
    }
    let _ = admin.unbind().await;
    out
}

/// One entry's difference from the reference, attribute by attribute (a few values each).
fn difference(
    dn: &str,
    expected: &BTreeMap<String, Vec<String>>,
    found: &BTreeMap<String, Vec<String>>,
) -> String {
    let mut out = format!("{dn}:");
    let names: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    for name in names {
        let empty = Vec::new();
        let want: BTreeSet<&String> = expected.get(name).unwrap_or(&empty).iter().collect();
        let have: BTreeSet<&String> = found.get(name).unwrap_or(&empty).iter().collect();
        let missing: Vec<_> = want.difference(&have).take(5).collect();
        let extra: Vec<_> = have.difference(&want).take(5).collect();
        if !missing.is_empty() || !extra.is_empty() {
            out.push_str(&format!(
                "\n  {name}: {} missing {missing:?}, {} extra {extra:?}",
                want.difference(&have).count(),
                have.difference(&want).count()
            ));
        }
    }
    out
}

/// The audit lines of a log: `(action, id)` of each directory write that was applied (attempts
/// that failed, e.g. refused by the fence while the API server was down, wrote nothing).
fn audit(log: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "peoplesync::audit")
        .filter(|line| line["fields"]["result"] == "applied")
        .filter_map(|line| {
            let action = line["fields"]["action"].as_str()?.to_owned();
            let id = line["fields"]["id"].as_str()?.to_owned();
            Some((action, id))
        })
        .collect()
}

/// The deprovisions (disable, delete) among a log's directory writes.
fn deprovisions(log: &Path) -> BTreeSet<(String, String)> {
    audit(log)
        .into_iter()
        .filter(|(action, _)| matches!(action.as_str(), "disable" | "delete"))
        .collect()
}

async fn status(api: &Api<PeopleSync>) -> Option<peoplesync::crd::PeopleSyncStatus> {
    api.get("acme").await.expect("the object").status
}

/// Waits until a cycle finished after `after` and Synced is True; returns how long it took.
async fn wait_synced(api: &Api<PeopleSync>, after: Timestamp, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Some(status) = status(api).await {
            let finished = status
                .last_sync_time
                .as_ref()
                .is_some_and(|t| t.0.as_second() >= after.as_second());
            let synced = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Synced" && c.status == "True");
            if finished && synced && status.checkpoint.is_some() {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < limit,
            "no finished cycle within {limit:?}: {:?}",
            status(api).await.map(|s| s.conditions)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The seed a run replays (`PEOPLESYNC_TRIAL_SEED`), or a fresh one.
fn trial_seed() -> u64 {
    std::env::var("PEOPLESYNC_TRIAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>())
}

/// Prints how to replay a trial when it fails.
struct Replay {
    seed: u64,
    trial: usize,
}

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "trial {} failed: replay with PEOPLESYNC_TRIAL_SEED={} (trial seed {})",
                self.trial,
                self.seed,
                self.seed.wrapping_add(self.trial as u64)
            );
        }
    }
}

struct Setup {
    plane: ControlPlane,
    client: Client,
    hollyhr: sandbox::SandboxHandle,
    ldap: Slapd,
    logs: PathBuf,
}

impl Setup {
    /// A control plane's client, a sandbox with `config`, a slapd and a log directory `name`.
    async fn start(plane: ControlPlane, config: SandboxConfig, name: &str) -> Self {
        let client = plane.client().await.expect("client");
        let hollyhr = sandbox::start(config).await.expect("the sandbox starts");
        let ldap = Slapd::start().await.expect("slapd starts");
        let logs = std::env::temp_dir().join(format!("peoplesync-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&logs).expect("a log directory");
        Self {
            plane,
            client,
            hollyhr,
            ldap,
            logs,
        }
    }

    /// Creates `tree`'s object in `ns` with its webhook pointed at `receiver`, waits for its first
    /// cycle and the registration, and returns the webhook's id.
    async fn with_webhook(
        &self,
        tree: &Subtree,
        ns: &str,
        api: &Api<PeopleSync>,
        receiver: &str,
    ) -> String {
        let mut object = tree.object(&self.hollyhr.base_url(), &self.ldap);
        object["spec"]["webhook"] =
            json!({ "enabled": true, "publicUrl": format!("http://{receiver}") });
        create(&self.client, ns, object).await.expect("created");
        wait_synced(api, Timestamp::now(), Duration::from_secs(120)).await;
        wait_condition(&self.client, ns, "acme", "WebhookRegistered", "True", None).await;
        status(api)
            .await
            .and_then(|s| s.webhook)
            .and_then(|w| w.id)
            .expect("a registered webhook")
    }

    /// A namespace with the Secrets.
    async fn object(&self, name: &str) -> (String, Api<PeopleSync>) {
        let ns = self.plane.create_namespace(name).await.expect("namespace");
        secret(
            &self.client,
            &ns,
            "hollyhr",
            "apiKey",
            sandbox::DEFAULT_API_KEY,
        )
        .await;
        secret(
            &self.client,
            &ns,
            "ldap",
            "password",
            &self.ldap.admin_password,
        )
        .await;
        (ns.clone(), Api::namespaced(self.client.clone(), &ns))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// A namespace and subtree `name`, the operator (with a receiver and `args`), and its
    /// object with a registered webhook pointing at that receiver.
    async fn receiving(&self, name: &str, args: &[&str]) -> Receiving {
        let tree = Subtree::create(&self.ldap, name);
        let (ns, api) = self.object(name).await;
        let receiver = free_addr();
        let flag = receiver.to_string();
        let mut all = vec!["--receiver-listen", flag.as_str()];
        all.extend_from_slice(args);
        let operator = Operator::start_with(&self.plane, &ns, &self.log(name), &all);
        let webhook = self.with_webhook(&tree, &ns, &api, &flag).await;
        Receiving {
            tree,
            ns,
            receiver,
            operator,
            webhook,
        }
    }
}

/// What [`Setup::receiving`] set up.
struct Receiving {
    tree: Subtree,
    ns: String,
    receiver: std::net::SocketAddr,
    operator: Operator,
    webhook: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_full_sync_loses_nothing_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let trials = env_number("PEOPLESYNC_TRIALS", 5);
    let people = env_number("PEOPLESYNC_TRIAL_PEOPLE", 5_000);
    let seed = trial_seed();
    println!("R2 kill -9 trials: {trials} trials, {people} people, seed {seed}");
    let plane = control_plane().await;
    let config = SandboxConfig {
        people,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    };
    let setup = Setup::start(plane, config, "trials").await;
    let base_url = setup.hollyhr.base_url();

    // The reference: the same tenant synced undisturbed, timed from the object's creation.
    let reference_tree = Subtree::create(&setup.ldap, "reference");
    let (ns, api) = setup.object("reference").await;
    let operator = Operator::start(&setup.plane, &ns, &setup.log("reference"));
    let created = Timestamp::now();
    create(
        &setup.client,
        &ns,
        reference_tree.object(&base_url, &setup.ldap),
    )
    .await
    .expect("created");
    let full_sync = wait_synced(&api, created, Duration::from_secs(600)).await;
    drop(operator);
    let reference = snapshot(&setup.ldap, &reference_tree).await;
    let reference_deprovisions = deprovisions(&setup.log("reference"));
    // The audit trail is read (so the deprovision check below can see one): a create per person.
    let creates = audit(&setup.log("reference"))
        .iter()
        .filter(|(action, _)| action == "create")
        .count();
    assert_eq!(
        creates,
        reference.anchors.len(),
        "one audited create per person"
    );
    assert!(
        reference.anchors.len() > people / 2,
        "the reference holds the tenant: {} people",
        reference.anchors.len()
    );
    println!(
        "reference: {} entries in {:.1} s",
        reference.entries.len(),
        full_sync.as_secs_f64()
    );

    let mut recoveries = Vec::new();
    for trial in 0..trials {
        let _replay = Replay { seed, trial };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(trial as u64));
        // Anywhere in the sync, from the first requests to its last writes.
        let kill_after = full_sync.mul_f64(rng.random_range(0.02..0.98));
        let name = format!("trial{trial}");
        let tree = Subtree::create(&setup.ldap, &name);
        let (ns, api) = setup.object(&name).await;
        let log = setup.log(&name);
        let operator = Operator::start(&setup.plane, &ns, &log);
        create(&setup.client, &ns, tree.object(&base_url, &setup.ldap))
            .await
            .expect("created");
        tokio::time::sleep(kill_after).await;
        operator.kill();

        // Dead: the checkpoint (if any) is not ahead of the directory.
        let before = snapshot(&setup.ldap, &tree).await;
        let checkpoint = status(&api).await.and_then(|s| s.checkpoint);
        if checkpoint.is_some() {
            assert_eq!(
                before.entries, reference.entries,
                "trial {trial}: status has checkpoint {checkpoint:?} but the directory is not \
                 the whole sync"
            );
        }
        for (anchor, count) in &before.anchors {
            assert_eq!(*count, 1, "trial {trial}: {anchor} has {count} entries");
        }

        // Restarted: one finished cycle later the directory is the reference, exactly.
        let restarted = next_second().await;
        let operator = Operator::start(&setup.plane, &ns, &log);
        let recovery = wait_synced(&api, restarted, Duration::from_secs(600)).await;
        drop(operator);
        let after = snapshot(&setup.ldap, &tree).await;
        for (anchor, count) in &after.anchors {
            assert_eq!(*count, 1, "trial {trial}: {anchor} has {count} entries");
        }
        let missing: Vec<_> = reference
            .entries
            .keys()
            .filter(|dn| !after.entries.contains_key(*dn))
            .take(5)
            .collect();
        let extra: Vec<_> = after
            .entries
            .keys()
            .filter(|dn| !reference.entries.contains_key(*dn))
            .take(5)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "trial {trial}: missing {missing:?}, extra {extra:?}"
        );
        let differing: Vec<String> = reference
            .entries
            .iter()
            .filter(|(dn, attributes)| after.entries.get(*dn) != Some(attributes))
            .take(3)
            .map(|(dn, attributes)| difference(dn, attributes, &after.entries[dn]))
            .collect();
        assert!(
            differing.is_empty(),
            "trial {trial}: entries differ from the reference:\n{}",
            differing.join("\n")
        );
        // Nothing written before the kill was deleted and written again.
        let recreated: Vec<_> = before
            .uuids
            .iter()
            .filter(|(dn, uuid)| after.uuids.get(*dn) != Some(uuid))
            .map(|(dn, _)| dn)
            .take(5)
            .collect();
        assert!(
            recreated.is_empty(),
            "trial {trial}: entries replaced: {recreated:?}"
        );
        let unexpected: Vec<_> = deprovisions(&log)
            .difference(&reference_deprovisions)
            .cloned()
            .collect();
        assert!(
            unexpected.is_empty(),
            "trial {trial}: deprovisions the reference did not make: {unexpected:?}"
        );
        println!(
            "trial {trial}: killed after {:.2} s with {} entries written{}, recovered in {:.1} s",
            kill_after.as_secs_f64(),
            before.entries.len(),
            if checkpoint.is_some() {
                " (checkpoint set)"
            } else {
                ""
            },
            recovery.as_secs_f64()
        );
        recoveries.push(recovery);
    }
    let worst = recoveries.iter().max().copied().unwrap_or_default();
    println!(
        "R2: {trials} of {trials} trials converged to the reference exactly; \
         worst recovery {:.1} s (undisturbed full sync {:.1} s)",
        worst.as_secs_f64(),
        full_sync.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// Every delivery record of one webhook from the sandbox, page by page.
async fn delivery_records(base_url: &str, webhook: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = http
            .get(format!("{base_url}/webhooks/{webhook}/deliveries"))
            .bearer_auth(sandbox::DEFAULT_API_KEY)
            .query(&[("limit", "100")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let page: Value = request
            .send()
            .await
            .expect("deliveries")
            .json()
            .await
            .expect("JSON");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        cursor = page["pagination"]["next_cursor"]
            .as_str()
            .map(str::to_owned);
        if cursor.is_none() {
            return out;
        }
    }
}

/// Every delivery of one webhook from the sandbox: `(person id, status, last status code)`.
async fn deliveries(base_url: &str, webhook: &str) -> Vec<(String, String, Option<u64>)> {
    delivery_records(base_url, webhook)
        .await
        .iter()
        .map(|delivery| {
            (
                delivery["resource"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                delivery["status"].as_str().unwrap_or_default().to_owned(),
                delivery["last_status_code"].as_u64(),
            )
        })
        .collect()
}

/// Every attempt of every delivery of `webhook` for `people`: `(person id, status code)`.
async fn attempt_codes(
    base_url: &str,
    webhook: &str,
    people: &[String],
) -> Vec<(String, Option<u64>)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for delivery in delivery_records(base_url, webhook).await {
        let person = delivery["resource"]["id"].as_str().unwrap_or_default();
        if !people.iter().any(|p| p == person) {
            continue;
        }
        let id = delivery["id"].as_str().expect("a delivery id");
        let detail: Value = http
            .get(format!("{base_url}/webhooks/{webhook}/deliveries/{id}"))
            .bearer_auth(sandbox::DEFAULT_API_KEY)
            .send()
            .await
            .expect("a delivery")
            .json()
            .await
            .expect("JSON");
        for attempt in detail["data"]["attempts"].as_array().expect("attempts") {
            out.push((person.to_owned(), attempt["status_code"].as_u64()));
        }
    }
    out
}

/// A sandbox of `people` that delivers webhooks to loopback and retries refused deliveries
/// within seconds (200 ms, doubling, seven attempts), so a delivery refused during a fault is
/// retried while the test watches.
fn quick_retries(people: usize) -> SandboxConfig {
    SandboxConfig {
        people,
        rate_limit_per_minute: 0,
        allow_insecure_webhook_urls: true,
        delivery_retry_schedule: [200, 500, 1_000, 2_000, 4_000, 8_000, 16_000]
            .map(Duration::from_millis)
            .to_vec(),
        delivery_timeout: Duration::from_secs(2),
        ..SandboxConfig::default()
    }
}

/// One job-title change through the HollyHR API (a `person.updated` delivery follows).
async fn change_title(
    source: &peoplesync::source::hollyhr::HollyHrClient,
    person: &str,
    title: String,
) {
    use peoplesync::source::hollyhr::Idempotency;
    use peoplesync::source::hollyhr::model::UpdateEmploymentRequest;
    let employment = source.person_employment(person).await.expect("reads");
    source
        .update_employment(
            person,
            &UpdateEmploymentRequest {
                job_title: Some(Some(title)),
                ..UpdateEmploymentRequest::default()
            },
            &employment.etag.expect("an ETag"),
            Idempotency::Derived,
        )
        .await
        .expect("changed");
}

/// Every delivery of `webhook` once HollyHR stopped retrying (at most a minute), none of them
/// failed for good.
async fn settled_deliveries(base_url: &str, webhook: &str) -> Vec<(String, String, Option<u64>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let delivered = deliveries(base_url, webhook).await;
        if delivered
            .iter()
            .all(|(_, status, _)| status == "delivered" || status == "failed")
        {
            break delivered;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still retried after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let lost: Vec<_> = delivered
        .iter()
        .filter(|(_, status, _)| status == "failed")
        .collect();
    assert!(lost.is_empty(), "deliveries failed for good: {lost:?}");
    delivered
}

/// The operator's own namespace (its Lease).
async fn system_namespace(client: &Client) {
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "peoplesync-system"}}))
                .expect("a Namespace"),
        )
        .await
        .expect("created");
}

/// The two replicas' Pods in `peoplesync-system` (no kubelet runs them: the test's processes
/// play their containers; the leader labels its own).
async fn replica_pods(client: &Client) -> Api<k8s_openapi::api::core::v1::Pod> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "peoplesync-system");
    for name in ["replica-a", "replica-b"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "containers": [{ "name": "peoplesync", "image": "peoplesync:test" }] }
        }))
        .expect("a Pod");
        pods.create(&kube::api::PostParams::default(), &pod)
            .await
            .expect("Pod created");
    }
    pods
}

/// R2 with webhooks: the operator is killed in the middle of a burst of employment changes
/// (each a delivery to its receiver) and restarted a moment later. Every change, those whose
/// delivery got a 2xx from the dead process included, reaches the directory: the receiver's
/// queue does not survive, but a restarted replica's first cycle is a full one and HollyHR
/// retries the deliveries that failed meanwhile. The poll interval is an hour, so polling plays
/// no part; the worst delay from a change to its entry is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_webhook_burst_loses_no_accepted_change() {
    use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};

    let _serial = SERIAL.lock().await;
    let trials = env_number("PEOPLESYNC_BURST_TRIALS", 2);
    let changes = env_number("PEOPLESYNC_BURST_CHANGES", 200);
    let seed = trial_seed();
    println!("R2 webhook burst: {trials} trials of {changes} changes, seed {seed}");
    let setup = Setup::start(control_plane().await, quick_retries(1_000), "bursts").await;
    let base_url = setup.hollyhr.base_url();
    let source = HollyHrClient::new(
        ClientConfig::new(&base_url, sandbox::DEFAULT_API_KEY.into()).expect("config"),
    )
    .expect("a client");

    let mut worst = Duration::ZERO;
    for trial in 0..trials {
        let _replay = Replay { seed, trial };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(trial as u64));
        let name = format!("burst{trial}");
        let tree = Subtree::create(&setup.ldap, &name);
        let (ns, api) = setup.object(&name).await;
        let log = setup.log(&name);
        let receiver = free_addr().to_string();
        let flags = ["--receiver-listen", receiver.as_str()];
        let operator = Operator::start_with(&setup.plane, &ns, &log, &flags);
        let webhook = setup.with_webhook(&tree, &ns, &api, &receiver).await;

        // The people to change: enabled entries, in a seeded order.
        let mut people: Vec<String> = titles(&setup.ldap, &tree).await.into_keys().collect();
        for i in (1..people.len()).rev() {
            people.swap(i, rng.random_range(0..=i));
        }
        people.truncate(changes);
        let kill_at = rng.random_range(changes / 10..changes * 9 / 10);
        let mut operator = Some(operator);
        let mut changed_at: BTreeMap<String, Instant> = BTreeMap::new();
        let mut restarted = None;
        let mut made: BTreeMap<String, String> = BTreeMap::new();
        for (i, person) in people.iter().enumerate() {
            if i == kill_at {
                operator.take().expect("running").kill();
                // Dead: the checkpoint is not ahead of the directory (webhook runs do not move
                // it; an incremental cycle a failed run fell back on does).
                checkpoint_not_ahead(
                    &api,
                    &source,
                    &setup.ldap,
                    &tree,
                    &made,
                    &format!("trial {trial} (killed after change {kill_at})"),
                )
                .await;
            }
            let title = format!("Burst {trial}.{i}");
            change_title(&source, person, title.clone()).await;
            made.insert(person.clone(), title);
            changed_at.insert(person.clone(), Instant::now());
            // Down for a few changes' time, then back (on the same receiver address).
            if operator.is_none() && restarted.is_none() && i >= kill_at + changes / 10 {
                restarted = Some(Instant::now());
                operator = Some(Operator::start_with(&setup.plane, &ns, &log, &flags));
            }
        }
        let restarted = restarted.unwrap_or_else(|| {
            operator = Some(Operator::start_with(&setup.plane, &ns, &log, &flags));
            Instant::now()
        });

        // Every change reaches its entry; note when each was first seen.
        let mut seen: BTreeMap<String, Instant> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.len() < people.len() {
            let found = titles(&setup.ldap, &tree).await;
            let now = Instant::now();
            for (i, person) in people.iter().enumerate() {
                if found.get(person).map(String::as_str) == Some(&format!("Burst {trial}.{i}")) {
                    seen.entry(person.clone()).or_insert(now);
                }
            }
            assert!(
                Instant::now() < deadline,
                "trial {trial}: {} of {} changes never reached the directory (killed after \
                 change {kill_at})",
                people.len() - seen.len(),
                people.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(operator);
        let delays: Vec<Duration> = people
            .iter()
            .map(|p| seen[p].saturating_duration_since(changed_at[p]))
            .collect();
        let trial_worst = delays.iter().max().copied().unwrap_or_default();
        worst = worst.max(trial_worst);
        let recovered = seen
            .values()
            .max()
            .expect("seen")
            .saturating_duration_since(restarted);
        let delivered = deliveries(&base_url, &webhook).await;
        let ours: Vec<_> = delivered
            .iter()
            .filter(|(id, _, _)| people.contains(id))
            .collect();
        let accepted = ours
            .iter()
            .filter(|(_, _, code)| code.is_some_and(|c| (200..300).contains(&c)))
            .count();
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for (_, status, code) in &ours {
            let code = code.map_or("none".to_owned(), |c| c.to_string());
            *outcomes.entry(format!("{status}/{code}")).or_default() += 1;
        }
        // None was refused for good: a restarting receiver asks for retries (503), never 404s.
        let lost: Vec<_> = ours
            .iter()
            .filter(|(_, status, _)| status == "failed")
            .collect();
        assert!(
            lost.is_empty(),
            "trial {trial}: deliveries failed for good: {lost:?}"
        );
        println!(
            "burst trial {trial}: killed at change {kill_at} of {changes}; {accepted} of {} \
             deliveries answered 2xx so far ({outcomes:?}); all {changes} changes in the \
             directory {:.1} s after the restart; worst delay from a change to its entry {:.1} s",
            ours.len(),
            recovered.as_secs_f64(),
            trial_worst.as_secs_f64()
        );
    }
    println!(
        "R2 webhook burst: {trials} of {trials} trials lost no change; worst delay {:.1} s \
         (poll interval 1 h)",
        worst.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// While the process is dead: every person the test changed whose `updated_at` is at or before
/// the checkpoint in status has that change in the directory (the checkpoint is not ahead of it).
/// `changed` maps each person to the title given; returns the checkpoint and how many of the
/// changes are in the directory.
async fn checkpoint_not_ahead(
    api: &Api<PeopleSync>,
    source: &peoplesync::source::hollyhr::HollyHrClient,
    ldap: &Slapd,
    tree: &Subtree,
    changed: &BTreeMap<String, String>,
    context: &str,
) -> (Option<Timestamp>, usize) {
    use futures::TryStreamExt;
    let checkpoint = status(api)
        .await
        .and_then(|s| s.checkpoint.and_then(|c| c.parse::<Timestamp>().ok()));
    let found = titles(ldap, tree).await;
    let updated: BTreeMap<String, Timestamp> = source
        .people(&Default::default())
        .map_ok(|p| (p.id, p.updated_at))
        .try_collect()
        .await
        .expect("the source lists");
    let applied = changed
        .iter()
        .filter(|(person, title)| found.get(*person) == Some(*title))
        .count();
    if let Some(checkpoint) = checkpoint {
        let behind: Vec<&String> = changed
            .iter()
            .filter(|(person, title)| {
                updated[*person] <= checkpoint && found.get(*person) != Some(*title)
            })
            .map(|(person, _)| person)
            .take(5)
            .collect();
        assert!(
            behind.is_empty(),
            "{context}: the checkpoint {checkpoint} is ahead of the directory: {behind:?} were \
             changed at or before it and their change is not in the directory"
        );
    }
    (checkpoint, applied)
}

/// **R2 during incremental cycles, from a non-empty checkpoint**: a tenant already synced (its
/// checkpoint set) gets a quarter of its people changed; the process is killed at a seeded
/// moment of the incremental cycle that reads them (`schedule.pollInterval: 30s`). While it is
/// dead the checkpoint in status is not ahead of the directory; after the restart the directory
/// holds every change, no entry was replaced or doubled, and the checkpoint holds every change.
#[tokio::test]
async fn kill_9_during_an_incremental_cycle_keeps_the_checkpoint_behind_the_directory() {
    use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};

    let _serial = SERIAL.lock().await;
    let trials = env_number("PEOPLESYNC_INCREMENTAL_TRIALS", 2);
    let people = env_number("PEOPLESYNC_INCREMENTAL_PEOPLE", 2_000);
    let seed = trial_seed();
    println!("R2 incremental: {trials} trials, {people} people, seed {seed}");
    let config = SandboxConfig {
        people,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    };
    let setup = Setup::start(control_plane().await, config, "incremental").await;
    let base_url = setup.hollyhr.base_url();
    let source = HollyHrClient::new(
        ClientConfig::new(&base_url, sandbox::DEFAULT_API_KEY.into()).expect("config"),
    )
    .expect("a client");
    let tree = Subtree::create(&setup.ldap, "incremental");
    let (ns, api) = setup.object("incremental").await;
    let log = setup.log("incremental");
    let mut operator = Operator::start(&setup.plane, &ns, &log);
    let mut object = tree.object(&base_url, &setup.ldap);
    object["spec"]["schedule"] = json!({ "pollInterval": "30s", "fullResyncInterval": "6h" });
    create(&setup.client, &ns, object).await.expect("created");
    wait_synced(&api, Timestamp::now(), Duration::from_secs(300)).await;

    let mut everyone: Vec<String> = titles(&setup.ldap, &tree).await.into_keys().collect();
    let mut cycles_cut = 0;
    for trial in 0..trials {
        let _replay = Replay { seed, trial };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(trial as u64));
        for i in (1..everyone.len()).rev() {
            everyone.swap(i, rng.random_range(0..=i));
        }
        // The changes land before the next poll; the incremental cycle reads them.
        let due = loop {
            let next = status(&api)
                .await
                .and_then(|s| s.next_sync_time)
                .map(|t| t.0);
            match next {
                Some(next) if next > Timestamp::now() + SignedDuration::from_secs(8) => break next,
                // Too close to the next poll for the changes to be made: wait for the one after.
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        let mut changed = BTreeMap::new();
        for (i, person) in everyone.iter().take(everyone.len() / 4).enumerate() {
            let title = format!("Incremental {trial}.{i}");
            change_title(&source, person, title.clone()).await;
            changed.insert(person.clone(), title);
        }
        assert!(
            Timestamp::now() < due,
            "trial {trial}: the changes took until after the poll"
        );
        let before_kill = snapshot(&setup.ldap, &tree).await;
        // Killed from just before the cycle starts to after it should have finished.
        let kill_at = due + SignedDuration::from_millis(rng.random_range(-200..1_500));
        let wait = kill_at.duration_since(Timestamp::now());
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
        operator.kill();

        let context = format!(
            "trial {trial} (killed {} ms after the poll was due)",
            kill_at.duration_since(due).as_millis()
        );
        let (checkpoint, applied) =
            checkpoint_not_ahead(&api, &source, &setup.ldap, &tree, &changed, &context).await;
        let dead = snapshot(&setup.ldap, &tree).await;
        for (anchor, count) in &dead.anchors {
            assert_eq!(*count, 1, "{context}: {anchor} has {count} entries");
        }
        if (1..changed.len()).contains(&applied) {
            cycles_cut += 1;
        }

        let restarted = next_second().await;
        operator = Operator::start(&setup.plane, &ns, &log);
        wait_synced(&api, restarted, Duration::from_secs(300)).await;
        let found = titles(&setup.ldap, &tree).await;
        let missing: Vec<&String> = changed
            .iter()
            .filter(|(person, title)| found.get(*person) != Some(*title))
            .map(|(person, _)| person)
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "{context}: changes missing after the restart: {missing:?}"
        );
        let after = snapshot(&setup.ldap, &tree).await;
        for (anchor, count) in &after.anchors {
            assert_eq!(*count, 1, "{context}: {anchor} has {count} entries");
        }
        assert_eq!(
            after.uuids, before_kill.uuids,
            "{context}: entries were replaced or added"
        );
        let (checkpoint_after, _) =
            checkpoint_not_ahead(&api, &source, &setup.ldap, &tree, &changed, &context).await;
        assert!(
            checkpoint_after.is_some() && checkpoint_after >= checkpoint,
            "{context}: the checkpoint went back or was lost: {checkpoint:?} → {checkpoint_after:?}"
        );
        println!(
            "incremental trial {trial}: killed {} ms after the poll was due with {applied} of {} \
             changes in the directory (checkpoint {}); after the restart all {} in place, none \
             replaced",
            kill_at.duration_since(due).as_millis(),
            changed.len(),
            checkpoint.map_or("unset".to_owned(), |c| c.to_string()),
            changed.len()
        );
    }
    drop(operator);
    println!(
        "R2 incremental: {trials} of {trials} trials kept the checkpoint behind the directory \
         and converged; {cycles_cut} killed with part of the changes written"
    );
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// The receiver Service as kube-proxy would make it: each request goes to the replica whose Pod
/// carries the leader label (read from the API server every 100 ms), or is answered 503 like an
/// Ingress without endpoints while no Pod does.
struct LeaderService {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for LeaderService {
    fn drop(&mut self) {
        self.task.abort();
        self.watcher.abort();
    }
}

type Endpoint = std::sync::Arc<std::sync::RwLock<Option<std::net::SocketAddr>>>;

impl LeaderService {
    async fn start(
        client: Client,
        namespace: &str,
        receivers: BTreeMap<String, std::net::SocketAddr>,
    ) -> Self {
        use k8s_openapi::api::core::v1::Pod;
        let endpoint: Endpoint = Default::default();
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let seen = endpoint.clone();
        let watcher = tokio::spawn(async move {
            let selector = format!(
                "{}=peoplesync-controller",
                peoplesync::controller::leader::LEADER_LABEL
            );
            loop {
                if let Ok(list) = pods
                    .list(&kube::api::ListParams::default().labels(&selector))
                    .await
                {
                    let target = list
                        .items
                        .iter()
                        .find_map(|pod| receivers.get(pod.metadata.name.as_deref()?).copied());
                    *seen.write().expect("not poisoned") = target;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let http = reqwest::Client::new();
        let route = endpoint.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let http = http.clone();
            let target = *route.read().expect("not poisoned");
            async move {
                use axum::response::IntoResponse;
                let Some(target) = target else {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no endpoints")
                        .into_response();
                };
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut forward = http
                    .request(parts.method.clone(), format!("http://{target}{path}"))
                    .body(body);
                for (name, value) in &parts.headers {
                    if name != axum::http::header::HOST {
                        forward = forward.header(name, value);
                    }
                }
                match forward.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let headers = response.headers().clone();
                        let bytes = response.bytes().await.unwrap_or_default();
                        let mut answer = (status, bytes).into_response();
                        for (name, value) in &headers {
                            answer.headers_mut().insert(name, value.clone());
                        }
                        answer
                    }
                    // The leader died under this request: what kube-proxy's client would see.
                    Err(_) => {
                        (axum::http::StatusCode::BAD_GATEWAY, "upstream gone").into_response()
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("an address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            task,
            watcher,
        }
    }

    fn target(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Leader failover: two replicas with leader election, each labelling its Pod while it leads;
/// deliveries reach the leader only, through a Service selecting that label. In steady state no
/// delivery is refused; the leader is then killed in the middle of a burst of employment
/// changes. Every change reaches the directory, no delivery fails for good, and the time from
/// the kill until the survivor leads (and its Pod is the Service's endpoint) is measured against
/// the lease duration + 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_dies_mid_burst_and_the_standby_applies_every_change() {
    use k8s_openapi::api::core::v1::Pod;
    use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};

    const LEASE_SECONDS: u64 = 4;
    let _serial = SERIAL.lock().await;
    let changes = env_number("PEOPLESYNC_FAILOVER_CHANGES", 500);
    let seed = trial_seed();
    let _replay = Replay { seed, trial: 0 };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    println!("failover: {changes} changes, seed {seed}");
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    system_namespace(&client).await;
    let pods = replica_pods(&client).await;
    let hollyhr = sandbox::start(quick_retries(1_000))
        .await
        .expect("the sandbox starts");
    let ldap = Slapd::start().await.expect("slapd starts");
    let logs = std::env::temp_dir().join(format!("peoplesync-failover-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("a log directory");
    let setup = Setup {
        plane,
        client: client.clone(),
        hollyhr,
        ldap,
        logs,
    };
    let base_url = setup.hollyhr.base_url();
    let tree = Subtree::create(&setup.ldap, "failover");
    let (ns, api) = setup.object("failover").await;
    let receivers: BTreeMap<String, std::net::SocketAddr> = ["replica-a", "replica-b"]
        .into_iter()
        .map(|name| (name.to_owned(), free_addr()))
        .collect();
    let service =
        LeaderService::start(client.clone(), "peoplesync-system", receivers.clone()).await;
    let lease = LEASE_SECONDS.to_string();
    let mut replicas: BTreeMap<String, Operator> = receivers
        .iter()
        .map(|(name, receiver)| {
            let receiver = receiver.to_string();
            let args = [
                "--leader-elect",
                "--lease-namespace",
                "peoplesync-system",
                "--lease-duration-seconds",
                &lease,
                "--lease-grace-seconds",
                "1",
                "--identity",
                name,
                "--label-leader-pod",
                "--receiver-listen",
                &receiver,
            ];
            let operator = Operator::start_with(&setup.plane, &ns, &setup.log(name), &args);
            (name.clone(), operator)
        })
        .collect();
    let mut object = tree.object(&base_url, &setup.ldap);
    object["spec"]["webhook"] = json!({ "enabled": true, "publicUrl": service.target() });
    create(&setup.client, &ns, object).await.expect("created");
    wait_synced(&api, Timestamp::now(), Duration::from_secs(120)).await;
    wait_condition(
        &setup.client,
        &ns,
        "acme",
        "WebhookRegistered",
        "True",
        None,
    )
    .await;
    let webhook = status(&api)
        .await
        .and_then(|s| s.webhook)
        .and_then(|w| w.id)
        .expect("a registered webhook");
    let labelled = |pods: Vec<Pod>| -> Vec<String> {
        pods.into_iter()
            .filter(|pod| {
                pod.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(peoplesync::controller::leader::LEADER_LABEL))
                    .is_some()
            })
            .filter_map(|pod| pod.metadata.name)
            .collect()
    };
    let leaders = labelled(pods.list(&Default::default()).await.expect("lists").items);
    assert_eq!(leaders.len(), 1, "exactly one Pod is labelled: {leaders:?}");
    let leader = leaders[0].clone();

    let source = HollyHrClient::new(
        ClientConfig::new(&base_url, sandbox::DEFAULT_API_KEY.into()).expect("config"),
    )
    .expect("a client");
    let mut people: Vec<String> = titles(&setup.ldap, &tree).await.into_keys().collect();
    for i in (1..people.len()).rev() {
        people.swap(i, rng.random_range(0..=i));
    }
    people.truncate(changes);
    // Steady state first (a tenth of the changes), then the leader dies at a seeded point.
    let steady = changes / 10;
    let kill_at = rng.random_range(changes / 4..changes * 3 / 4);
    let mut killed_at = None;
    let mut changed_at: BTreeMap<String, Instant> = BTreeMap::new();
    for (i, person) in people.iter().enumerate() {
        if i == steady {
            // Every delivery so far reached the leader and was accepted: no 503 in steady state.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let so_far = deliveries(&base_url, &webhook).await;
                let ours: Vec<_> = so_far
                    .iter()
                    .filter(|(id, _, _)| people[..steady].contains(id))
                    .collect();
                if ours.len() == steady && ours.iter().all(|(_, status, _)| status != "pending") {
                    // Every attempt, not only the last: a 503 that HollyHR retried into a 202
                    // is a refusal too.
                    let attempts = attempt_codes(&base_url, &webhook, &people[..steady]).await;
                    let refused: Vec<_> = attempts
                        .iter()
                        .filter(|(_, code)| *code != Some(202))
                        .collect();
                    assert!(
                        refused.is_empty(),
                        "refused in steady state ({} attempts): {refused:?}",
                        attempts.len()
                    );
                    assert!(attempts.len() >= steady, "{attempts:?}");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "steady deliveries did not finish"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if i == kill_at {
            replicas.remove(&leader).expect("the leader").kill();
            killed_at = Some(Instant::now());
        }
        change_title(&source, person, format!("Failover {i}")).await;
        changed_at.insert(person.clone(), Instant::now());
    }
    let killed_at = killed_at.expect("killed");

    // The survivor leads and its Pod is the Service's endpoint.
    let survivor = receivers
        .keys()
        .find(|name| **name != leader)
        .expect("a survivor")
        .clone();
    let recovered = loop {
        let now = labelled(pods.list(&Default::default()).await.expect("lists").items);
        if now == [survivor.clone()] {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "no takeover: labelled {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Every change reaches its entry.
    let mut seen: BTreeMap<String, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < people.len() {
        let found = titles(&setup.ldap, &tree).await;
        let now = Instant::now();
        for (i, person) in people.iter().enumerate() {
            if found.get(person).map(String::as_str) == Some(&format!("Failover {i}")) {
                seen.entry(person.clone()).or_insert(now);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} changes never reached the directory (leader killed after change {kill_at})",
            people.len() - seen.len(),
            people.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged = seen
        .values()
        .max()
        .expect("seen")
        .saturating_duration_since(killed_at);
    let worst = people
        .iter()
        .map(|p| seen[p].saturating_duration_since(changed_at[p]))
        .max()
        .unwrap_or_default();
    // HollyHR's retries of the deliveries refused around the kill end at the new leader.
    let delivered = settled_deliveries(&base_url, &webhook).await;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, status, code) in &delivered {
        let code = code.map_or("none".to_owned(), |c| c.to_string());
        *outcomes.entry(format!("{status}/{code}")).or_default() += 1;
    }
    println!(
        "failover: leader {leader} killed at change {kill_at} of {changes}; {survivor} leads and \
         receives deliveries {:.1} s later (lease {LEASE_SECONDS} s); all changes in the \
         directory {:.1} s after the kill; worst delay from a change to its entry {:.1} s; \
         deliveries {outcomes:?}",
        recovered.as_secs_f64(),
        converged.as_secs_f64(),
        worst.as_secs_f64()
    );
    assert!(
        recovered <= Duration::from_secs(LEASE_SECONDS + 5),
        "recovery took {recovered:?}, more than the lease duration + 5 s"
    );
    drop(replicas);
    drop(service);
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// A TCP path to the API server that a test can cut (a network partition of one replica):
/// open connections are dropped and new ones closed at once.
struct Partition {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Partition {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("an address");
        let (cut, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = watch.clone();
                if *watch.borrow_and_update() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut, task }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// A copy of `kubeconfig` whose server is reached through this path.
    fn kubeconfig(&self, kubeconfig: &Path, server: &str) -> PathBuf {
        let text = std::fs::read_to_string(kubeconfig).expect("the kubeconfig");
        let path = kubeconfig.with_file_name(format!("kubeconfig-partition-{}", self.addr.port()));
        std::fs::write(
            &path,
            text.replace(server, &format!("https://{}", self.addr)),
        )
        .expect("written");
        path
    }
}

/// A TCP path to slapd that, once `hold` is set, holds back for `delay` every LDAP write request
/// (add, modify, delete, modify DN) sent on a connection opened before that moment (a slow path
/// holding a cut-off leader's writes; its reads pass), and notes when each reached slapd.
/// Connections opened later pass at once.
struct Delay {
    addr: std::net::SocketAddr,
    hold: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
    /// When each held write request was handed to slapd.
    delivered: std::sync::Arc<std::sync::Mutex<Vec<Timestamp>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Delay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The complete LDAP messages at the front of `buffer` (taken out), each with its
/// protocol-op tag.
fn ldap_messages(buffer: &mut Vec<u8>) -> Vec<(Vec<u8>, u8)> {
    let mut messages = Vec::new();
    loop {
        // LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp CHOICE, ... }
        if buffer.len() < 2 || buffer[0] != 0x30 {
            return messages;
        }
        let (length, header) = match buffer[1] {
            short if short < 0x80 => (short as usize, 2),
            long => {
                let octets = (long & 0x7f) as usize;
                if buffer.len() < 2 + octets {
                    return messages;
                }
                let length = buffer[2..2 + octets]
                    .iter()
                    .fold(0usize, |n, b| (n << 8) | *b as usize);
                (length, 2 + octets)
            }
        };
        if buffer.len() < header + length {
            return messages;
        }
        let message: Vec<u8> = buffer.drain(..header + length).collect();
        let body = &message[header..];
        let op = if body.len() > 2 && body[0] == 0x02 {
            body.get(2 + body[1] as usize).copied().unwrap_or(0)
        } else {
            0
        };
        messages.push((message, op));
    }
}

impl Delay {
    async fn start(upstream: std::net::SocketAddr, delay: Duration) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("an address");
        let hold = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
        let delivered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (held, noted) = (hold.clone(), delivered.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let opened_while_held = held.lock().expect("unpoisoned").is_some();
                let (held, noted) = (held.clone(), noted.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, to_server) = outbound.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                    });
                    // Whole messages: reads pass at once, a held connection's writes 5 s
                    // later (LDAP answers by message id, so the order may change).
                    let to_server = std::sync::Arc::new(tokio::sync::Mutex::new(to_server));
                    let mut chunk = vec![0u8; 16 * 1024];
                    let mut parse = Vec::new();
                    while let Ok(n) = from_client.read(&mut chunk).await {
                        if n == 0 {
                            break;
                        }
                        let holding =
                            !opened_while_held && held.lock().expect("unpoisoned").is_some();
                        parse.extend_from_slice(&chunk[..n]);
                        for (message, op) in ldap_messages(&mut parse) {
                            // Add 0x68, delete 0x4a, modify 0x66, modify DN 0x6c.
                            let write = matches!(op, 0x66 | 0x68 | 0x4a | 0x6c);
                            let (to_server, noted) = (to_server.clone(), noted.clone());
                            if holding && write {
                                tokio::spawn(async move {
                                    tokio::time::sleep(delay).await;
                                    if to_server.lock().await.write_all(&message).await.is_ok() {
                                        noted.lock().expect("unpoisoned").push(Timestamp::now());
                                    }
                                });
                            } else if to_server.lock().await.write_all(&message).await.is_err() {
                                break;
                            }
                        }
                    }
                    // The held writes still go out before the connection closes.
                    tokio::time::sleep(delay + Duration::from_millis(100)).await;
                    back.abort();
                });
            }
        });
        Self {
            addr,
            hold,
            delivered,
            task,
        }
    }

    fn hold(&self) {
        *self.hold.lock().expect("unpoisoned") = Some(Instant::now());
    }

    fn delivered(&self) -> Vec<Timestamp> {
        self.delivered.lock().expect("unpoisoned").clone()
    }
}

/// The timestamps (RFC 3339) of a JSON log's audit lines: when each directory write finished.
fn write_times(log: &Path) -> Vec<Timestamp> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "peoplesync::audit")
        .filter(|line| line["fields"]["result"] == "applied")
        .filter_map(|line| line["timestamp"].as_str()?.parse().ok())
        .collect()
}

/// Fencing: the leader of two replicas is cut off from the API server (it can no longer renew
/// its Lease) while changes keep arriving through its receiver. It must stop writing to the
/// directory before the standby takes the Lease over (the Lease's `acquireTime`), and every
/// change still reaches the directory through the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_stops_writing_before_the_standby_leads() {
    use k8s_openapi::api::coordination::v1::Lease;
    use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};

    const LEASE_SECONDS: u64 = 4;
    let _serial = SERIAL.lock().await;
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    system_namespace(&client).await;
    replica_pods(&client).await;
    let hollyhr = sandbox::start(quick_retries(1_000))
        .await
        .expect("the sandbox starts");
    let ldap = Slapd::start().await.expect("slapd starts");
    let logs = std::env::temp_dir().join(format!("peoplesync-fence-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("a log directory");
    let server = plane.server_url().to_owned();
    let upstream: std::net::SocketAddr = server
        .trim_start_matches("https://")
        .parse()
        .expect("the API server's address");
    let partition = Partition::start(upstream).await;
    let cut_off = partition.kubeconfig(plane.kubeconfig_path(), &server);
    let setup = Setup {
        plane,
        client: client.clone(),
        hollyhr,
        ldap,
        logs,
    };
    let base_url = setup.hollyhr.base_url();
    let tree = Subtree::create(&setup.ldap, "fence");
    let (ns, api) = setup.object("fence").await;
    // The directory is reached through a path that will hold the cut-off leader's writes back
    // by 5 s (as long as WRITE_DEADLINE: a write abandoned at its deadline still lands).
    let slapd: std::net::SocketAddr = setup
        .ldap
        .url()
        .trim_start_matches("ldap://")
        .parse()
        .expect("slapd's address");
    let slow = Delay::start(slapd, Duration::from_secs(5)).await;
    let receivers: BTreeMap<String, std::net::SocketAddr> = ["replica-a", "replica-b"]
        .into_iter()
        .map(|name| (name.to_owned(), free_addr()))
        .collect();
    let service =
        LeaderService::start(client.clone(), "peoplesync-system", receivers.clone()).await;
    let lease = LEASE_SECONDS.to_string();
    let start = |name: &str, kubeconfig: &Path| {
        let receiver = receivers[name].to_string();
        let args = [
            "--leader-elect",
            "--lease-namespace",
            "peoplesync-system",
            "--lease-duration-seconds",
            &lease,
            "--lease-grace-seconds",
            "1",
            "--identity",
            name,
            "--label-leader-pod",
            "--receiver-listen",
            &receiver,
        ];
        let mut command = Command::new(env!("CARGO_BIN_EXE_peoplesync"));
        command
            .args(["--log-format", "json", "controller", "--namespace", &ns])
            .args(["--admin-listen", &free_addr().to_string()])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,peoplesync::audit=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(setup.log(name)).expect("a log"));
        Operator {
            child: command.spawn().expect("the controller binary starts"),
        }
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), "peoplesync-system");
    let holder = || async {
        leases
            .get_opt("peoplesync-controller")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
    };
    // replica-a leads (through the path that will be cut), replica-b stands by.
    let leader = start("replica-a", &cut_off);
    let deadline = Instant::now() + Duration::from_secs(30);
    while holder().await.and_then(|s| s.holder_identity).as_deref() != Some("replica-a") {
        assert!(Instant::now() < deadline, "replica-a never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let standby = start("replica-b", setup.plane.kubeconfig_path());
    let mut object = tree.object(&base_url, &setup.ldap);
    object["spec"]["target"]["ldap"]["url"] = json!(format!("ldap://{}", slow.addr));
    object["spec"]["webhook"] = json!({ "enabled": true, "publicUrl": service.target() });
    create(&setup.client, &ns, object).await.expect("created");
    wait_synced(&api, Timestamp::now(), Duration::from_secs(120)).await;
    wait_condition(
        &setup.client,
        &ns,
        "acme",
        "WebhookRegistered",
        "True",
        None,
    )
    .await;

    // Changes every 50 ms; replica-a is cut off from the API server after the first second.
    let source = HollyHrClient::new(
        ClientConfig::new(&base_url, sandbox::DEFAULT_API_KEY.into()).expect("config"),
    )
    .expect("a client");
    let people: Vec<String> = titles(&setup.ldap, &tree).await.into_keys().collect();
    let mut changed = Vec::new();
    let started = Instant::now();
    let mut cut_at = None;
    let mut taken_over = None;
    let mut i = 0;
    while taken_over.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(2)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "replica-b never took the Lease"
        );
        if cut_at.is_none() && started.elapsed() > Duration::from_secs(1) {
            partition.cut();
            slow.hold();
            cut_at = Some(Timestamp::now());
        }
        if taken_over.is_none()
            && holder().await.and_then(|s| s.holder_identity).as_deref() == Some("replica-b")
        {
            taken_over = Some(Instant::now());
        }
        let person = &people[i % people.len()];
        change_title(&source, person, format!("Fence {i}")).await;
        changed.push((person.clone(), format!("Fence {i}")));
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut_at = cut_at.expect("cut");
    let acquired = holder()
        .await
        .and_then(|s| s.acquire_time)
        .map(|t| t.0)
        .expect("replica-b's acquireTime");

    // The last change to each person reaches the directory (through the new leader).
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for (person, title) in &changed {
        expected.insert(person.clone(), title.clone());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = titles(&setup.ldap, &tree).await;
        let missing = expected
            .iter()
            .filter(|(person, title)| found.get(*person) != Some(*title))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} changes never reached the directory",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(leader);
    drop(standby);

    // replica-a wrote nothing once replica-b could have started.
    let writes = write_times(&setup.log("replica-a"));
    let after_cut = writes.iter().filter(|t| **t > cut_at).count();
    let last = writes.iter().max().copied().expect("replica-a wrote");
    let log = std::fs::read_to_string(setup.log("replica-a")).unwrap_or_default();
    let fenced = log.matches("Fenced").count();
    println!(
        "fencing: replica-a cut off at {cut_at}; it wrote {after_cut} times after the cut, the \
         last at {last}; replica-b acquired the Lease at {acquired} ({:.2} s after that last \
         write); {fenced} log lines name the fence; {} changes all applied",
        acquired.duration_since(last).as_secs_f64(),
        changed.len()
    );
    assert!(
        last < acquired,
        "replica-a wrote at {last}, after replica-b took the Lease at {acquired}"
    );
    // The bound: replica-a did try to write after the cut (its requests reached the held
    // path), and the last of those reached slapd, 5 s late, before replica-b's first write.
    let held = slow.delivered();
    let first_new = write_times(&setup.log("replica-b"))
        .into_iter()
        .min()
        .expect("replica-b wrote");
    let last_held = held.iter().max().copied();
    println!(
        "fencing, writes held back 5 s: replica-a sent {} write requests after the cut, the last \
         reaching slapd at {last_held:?}; replica-b's first write finished at {first_new} \
         ({:.2} s after its acquireTime)",
        held.len(),
        first_new.duration_since(acquired).as_secs_f64()
    );
    let last_held = last_held.expect("replica-a attempted no write after the cut");
    assert!(
        last_held < first_new,
        "replica-a's held write reached slapd at {last_held}, after replica-b's first write at \
         {first_new}"
    );
    drop(service);
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// Control-plane faults: kube-apiserver killed and restarted during the first full sync, then
/// etcd and then kube-apiserver killed and restarted in the middle of bursts of changes. The
/// operator (one replica with leader election, so its Lease and fence live through the outages)
/// reconnects and re-lists; no person is ever created twice, a full cycle afterwards writes
/// nothing, every change reaches the directory, no delivery fails for good, and `Synced` is True
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_and_etcd_restart_mid_sync_and_mid_burst_without_a_double_write() {
    use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};

    let _serial = SERIAL.lock().await;
    let seed = trial_seed();
    let _replay = Replay { seed, trial: 0 };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    println!("control-plane faults: seed {seed}");
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    system_namespace(&client).await;
    let hollyhr = sandbox::start(quick_retries(3_000))
        .await
        .expect("the sandbox starts");
    let ldap = Slapd::start().await.expect("slapd starts");
    let logs = std::env::temp_dir().join(format!("peoplesync-plane-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("a log directory");
    let mut setup = Setup {
        plane,
        client: client.clone(),
        hollyhr,
        ldap,
        logs,
    };
    let base_url = setup.hollyhr.base_url();
    let tree = Subtree::create(&setup.ldap, "plane");
    let (ns, api) = setup.object("plane").await;
    let log = setup.log("operator");
    let receiver = free_addr().to_string();
    let flags = [
        "--leader-elect",
        "--lease-namespace",
        "peoplesync-system",
        "--lease-duration-seconds",
        "4",
        "--lease-grace-seconds",
        "1",
        "--receiver-listen",
        receiver.as_str(),
    ];
    let operator = Operator::start_with(&setup.plane, &ns, &log, &flags);
    let mut object = tree.object(&base_url, &setup.ldap);
    object["spec"]["webhook"] =
        json!({ "enabled": true, "publicUrl": format!("http://{receiver}") });

    // 1. kube-apiserver dies during the first full sync (its status write, its watches).
    let created = Timestamp::now();
    create(&setup.client, &ns, object).await.expect("created");
    tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
    setup
        .plane
        .restart_apiserver(Duration::from_secs(2))
        .await
        .expect("the API server is back");
    // A finished cycle recorded in status (its write may have waited for the API server).
    let recovered = wait_synced(&api, created, Duration::from_secs(120)).await;
    wait_condition(
        &setup.client,
        &ns,
        "acme",
        "WebhookRegistered",
        "True",
        None,
    )
    .await;
    let creates = |log: &Path| {
        let mut per_person: BTreeMap<String, usize> = BTreeMap::new();
        for (action, id) in audit(log) {
            if action == "create" {
                *per_person.entry(id).or_default() += 1;
            }
        }
        per_person
    };
    let twice: Vec<_> = creates(&log)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .take(5)
        .collect();
    assert!(twice.is_empty(), "created more than once: {twice:?}");
    let snapshot_after = snapshot(&setup.ldap, &tree).await;
    for (anchor, count) in &snapshot_after.anchors {
        assert_eq!(*count, 1, "{anchor} has {count} entries");
    }
    // A full cycle now finds nothing to do: the sync completed exactly.
    let writes_before = audit(&log).len();
    annotate_sync_now(&api).await;
    wait_synced(&api, Timestamp::now(), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        audit(&log).len(),
        writes_before,
        "a full cycle after the recovery wrote something"
    );
    println!(
        "kube-apiserver restarted mid-sync: the cycle in status {:.1} s after it was back; {} \
         entries, none twice; a full cycle afterwards wrote nothing",
        recovered.as_secs_f64(),
        snapshot_after.anchors.len()
    );

    // 2. and 3. etcd, then kube-apiserver, die in the middle of a burst.
    let source = HollyHrClient::new(
        ClientConfig::new(&base_url, sandbox::DEFAULT_API_KEY.into()).expect("config"),
    )
    .expect("a client");
    let mut people: Vec<String> = titles(&setup.ldap, &tree).await.into_keys().collect();
    for i in (1..people.len()).rev() {
        people.swap(i, rng.random_range(0..=i));
    }
    let webhook = status(&api)
        .await
        .and_then(|s| s.webhook)
        .and_then(|w| w.id)
        .expect("a registered webhook");
    for (round, fault) in ["etcd", "kube-apiserver"].into_iter().enumerate() {
        let burst: Vec<String> = people[round * 150..(round + 1) * 150].to_vec();
        // The changes go on (every 20 ms) while the process dies and comes back.
        let changer = {
            let source = source.clone();
            let burst = burst.clone();
            tokio::spawn(async move {
                for (i, person) in burst.iter().enumerate() {
                    change_title(&source, person, format!("{fault} {i}")).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let fault_at = Duration::from_millis(rng.random_range(300..1_500));
        tokio::time::sleep(fault_at).await;
        let down = Duration::from_millis(rng.random_range(1_000..4_000));
        let down_for = down;
        match fault {
            "etcd" => setup.plane.restart_etcd(down).await,
            _ => setup.plane.restart_apiserver(down).await,
        }
        .expect("back");
        let restarted = Instant::now();
        changer.await.expect("the changes were made");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let found = titles(&setup.ldap, &tree).await;
            let missing: Vec<&String> = burst
                .iter()
                .enumerate()
                .filter(|(i, p)| found.get(*p) != Some(&format!("{fault} {i}")))
                .map(|(_, p)| p)
                .collect();
            if missing.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let mut outcomes: BTreeMap<(String, Option<u64>), usize> = BTreeMap::new();
                for (_, status, code) in deliveries(&base_url, &webhook).await {
                    *outcomes.entry((status, code)).or_default() += 1;
                }
                panic!(
                    "{fault}: {} of {} changes never reached the directory (killed {fault_at:?} \
                     into the burst), e.g. {:?}; deliveries by status and last code: {outcomes:?}",
                    missing.len(),
                    burst.len(),
                    &missing[..missing.len().min(3)]
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let landed = restarted.elapsed();
        wait_condition(&setup.client, &ns, "acme", "Synced", "True", None).await;
        println!(
            "{fault} killed {fault_at:?} into a burst of 150 changes (every 20 ms), down for \
             {down_for:?}: every change in the directory {:.1} s after it was back",
            landed.as_secs_f64()
        );
    }
    // None of them failed for good (HollyHR retried those refused during the outages).
    settled_deliveries(&base_url, &webhook).await;
    let twice: Vec<_> = creates(&log).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "created more than once: {twice:?}");
    drop(operator);
    if std::env::var_os("PEOPLESYNC_KEEP_LOGS").is_none() {
        let _ = std::fs::remove_dir_all(&setup.logs);
    }
}

async fn annotate_sync_now(api: &Api<PeopleSync>) {
    use kube::api::{Patch, PatchParams};
    let patch = json!({"metadata": {"annotations": {
        peoplesync::crd::SYNC_NOW: Timestamp::now().to_string()
    }}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotated");
}

/// Now, once the clock has passed into the next whole second. Status times have second
/// precision: a cycle the killed process finished just before the kill can carry the same
/// second as a restart taken at once, and `wait_synced` would take it for the new process's.
async fn next_second() -> Timestamp {
    let now = Timestamp::now();
    let next = Timestamp::from_second(now.as_second() + 1).expect("a second");
    tokio::time::sleep(Duration::try_from(next.duration_since(now)).unwrap_or_default()).await;
    Timestamp::now()
}

/// Resident memory of a process, from `/proc` (bytes).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Whether the server closed `stream` (a read sees the end, or the connection was reset).
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(5), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_and_a_slow_loris_do_not_stop_deliveries() {
    use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};
    use tokio::io::AsyncWriteExt as _;

    let _serial = SERIAL.lock().await;
    let idle = env_number("PEOPLESYNC_FLOOD_CONNECTIONS", 10_000);
    let setup = Setup::start(control_plane().await, quick_retries(200), "flood").await;
    let base_url = setup.hollyhr.base_url();
    let Receiving {
        tree,
        receiver,
        operator,
        webhook,
        ..
    } = setup
        .receiving(
            "flood",
            &[
                "--receiver-max-connections",
                "2000",
                "--receiver-header-timeout",
                "3s",
                "--receiver-request-timeout",
                "5s",
            ],
        )
        .await;
    let pid = operator.child.id();
    let before = rss(pid);

    // The flood: `idle` connections that never send a byte, opened 500 at a time, and 20
    // slow-loris clients trickling one header line every 500 ms.
    let opened = Instant::now();
    let mut connections = Vec::with_capacity(idle);
    while connections.len() < idle {
        let batch = (idle - connections.len()).min(500);
        let results =
            futures::future::join_all((0..batch).map(|_| tokio::net::TcpStream::connect(receiver)))
                .await;
        connections.extend(results.into_iter().filter_map(Result::ok));
        if connections.len() < idle && opened.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let opened = opened.elapsed();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut lorises = Vec::new();
    for i in 0..20 {
        let stop = stop.clone();
        lorises.push(tokio::spawn(async move {
            let started = Instant::now();
            let Ok(mut loris) = tokio::net::TcpStream::connect(receiver).await else {
                return None;
            };
            let _ = loris
                .write_all(b"POST /hooks/flood/acme HTTP/1.1\r\n")
                .await;
            let mut line = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                line += 1;
                let header = format!("x-slow-{i}-{line}: y\r\n");
                if loris.write_all(header.as_bytes()).await.is_err()
                    || closed_by_server(&mut loris).await
                {
                    return Some(started.elapsed());
                }
            }
            None
        }));
    }

    // Meanwhile, real changes: each one's delivery must still land.
    let source = HollyHrClient::new(
        ClientConfig::new(&base_url, sandbox::DEFAULT_API_KEY.into()).expect("config"),
    )
    .expect("a client");
    let people: Vec<String> = titles(&setup.ldap, &tree)
        .await
        .into_keys()
        .take(20)
        .collect();
    let mut peak = rss(pid);
    let mut changed_at = BTreeMap::new();
    for (i, person) in people.iter().enumerate() {
        change_title(&source, person, format!("Flood {i}")).await;
        changed_at.insert(person.clone(), Instant::now());
        peak = peak.max(rss(pid));
    }
    let health = Instant::now();
    let answer = reqwest::get(format!(
        "http://{receiver}{}",
        peoplesync::receiver::HEALTH_PATH
    ))
    .await
    .expect("the receiver answers its health probe");
    assert!(answer.status().is_success());
    let health = health.elapsed();
    let mut seen: BTreeMap<String, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < people.len() {
        let found = titles(&setup.ldap, &tree).await;
        for (i, person) in people.iter().enumerate() {
            if found.get(person).map(String::as_str) == Some(&format!("Flood {i}")) {
                seen.entry(person.clone()).or_insert_with(Instant::now);
            }
        }
        peak = peak.max(rss(pid));
        assert!(
            Instant::now() < deadline,
            "{} of {} changes did not reach the directory during the flood",
            people.len() - seen.len(),
            people.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let worst = people
        .iter()
        .map(|p| seen[p].saturating_duration_since(changed_at[p]))
        .max()
        .unwrap_or_default();

    // Every idle connection is gone by the header timeout (3 s) plus a margin, and every
    // slow-loris too, although each kept sending.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut open = 0;
    for connection in &mut connections {
        if !closed_by_server(connection).await {
            open += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut loris_closed = Vec::new();
    for loris in lorises {
        loris_closed.push(loris.await.expect("the slow-loris task"));
    }
    let settled = settled_deliveries(&base_url, &webhook).await;
    let after = rss(pid);
    drop(operator);
    println!(
        "receiver flood: {} idle connections opened in {:.1} s; {open} still open 5 s after; \
         slow-loris closed after {:?}; {} changes delivered and applied during the flood, worst \
         {:.2} s; health probe {:.0} ms; RSS {:.1} MiB before, peak {:.1} MiB, {:.1} MiB after; \
         {} deliveries, none failed",
        connections.len(),
        opened.as_secs_f64(),
        loris_closed
            .iter()
            .map(|c| c.map_or("open".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())))
            .collect::<BTreeSet<_>>(),
        people.len(),
        worst.as_secs_f64(),
        health.as_secs_f64() * 1e3,
        before as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        after as f64 / 1048576.0,
        settled.len()
    );
    assert_eq!(
        connections.len(),
        idle,
        "the flood could not open its connections"
    );
    assert_eq!(open, 0, "idle connections outlived the header timeout");
    assert!(
        loris_closed
            .iter()
            .all(|c| c.is_some_and(|d| d < Duration::from_secs(6))),
        "a slow-loris kept its connection: {loris_closed:?}"
    );
    assert!(
        peak < before + 64 * 1024 * 1024,
        "the flood grew the receiver from {before} to {peak} bytes"
    );
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// Peak resident memory of a process so far, from `/proc` (bytes).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The chart's memory request for the operator (values.yaml `resources.requests.memory`).
const CHART_MEMORY_REQUEST: u64 = 96 * 1024 * 1024;

/// R12 (issue #28): before authentication a stranger cannot make the receiver hold memory.
/// `PEOPLESYNC_R12_CONNECTIONS` (4,096) connections each try to send 64 KiB of headers, one
/// KiB every 20 ms, and then a 256 KiB body, reconnecting whenever they are cut off, while real
/// changes are delivered and signed deliveries are sent on fresh connections. Asserted: peak RSS
/// under the chart's memory request; every signed delivery answered within 1 s; every change in
/// the directory; a captured delivery replayed with a fresh `HollyHR-Webhook-Id` is a duplicate
/// and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_strangers_cannot_make_the_receiver_hold_memory_before_authentication() {
    use peoplesync::signature::{self, Variant};
    use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let _serial = SERIAL.lock().await;
    let strangers = env_number("PEOPLESYNC_R12_CONNECTIONS", 4_096);
    let setup = Setup::start(control_plane().await, quick_retries(200), "r12").await;
    let base_url = setup.hollyhr.base_url();
    // As the chart runs it (its default `webhook.maxConnections`).
    let Receiving {
        tree,
        ns,
        receiver,
        operator,
        webhook,
        ..
    } = setup
        .receiving("r12", &["--receiver-max-connections", "4096"])
        .await;
    let pid = operator.child.id();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(setup.client.clone(), &ns);
    let signing = secrets
        .get("acme-webhook-signing")
        .await
        .expect("the signing Secret");
    let signing_secret =
        String::from_utf8(signing.data.expect("data")["current"].0.clone()).expect("text");
    let before = rss(pid);

    // The strangers.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let head_bytes_sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let path = format!("/hooks/{ns}/acme");
    let mut attack = tokio::task::JoinSet::new();
    for i in 0..strangers {
        let (stop, attempts, sent, path) = (
            stop.clone(),
            attempts.clone(),
            head_bytes_sent.clone(),
            path.clone(),
        );
        attack.spawn(async move {
            let line = format!("x-pad: {}\r\n", "a".repeat(1_016));
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Ok(mut stranger) = tokio::net::TcpStream::connect(receiver).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let head = format!(
                    "POST {path} HTTP/1.1\r\nhost: r12-{i}\r\ncontent-type: application/json\r\ncontent-length: 262144\r\n"
                );
                if stranger.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                let mut cut = false;
                for _ in 0..64 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst)
                        || stranger.write_all(line.as_bytes()).await.is_err()
                    {
                        cut = true;
                        break;
                    }
                    sent.fetch_add(line.len(), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if !cut && stranger.write_all(b"\r\n").await.is_ok() {
                    let chunk = vec![b' '; 8 * 1024];
                    for _ in 0..32 {
                        if stop.load(std::sync::atomic::Ordering::SeqCst)
                            || stranger.write_all(&chunk).await.is_err()
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                // Read whatever the server says, then try again.
                let mut answer = [0u8; 64];
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    stranger.read(&mut answer),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    // Let the flood build up.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Real changes (delivered by HollyHR) and our own signed deliveries on fresh connections.
    let source = HollyHrClient::new(
        ClientConfig::new(&base_url, sandbox::DEFAULT_API_KEY.into()).expect("config"),
    )
    .expect("a client");
    let people: Vec<String> = titles(&setup.ldap, &tree)
        .await
        .into_keys()
        .take(10)
        .collect();
    let mut peak = rss(pid);
    let mut answered = Vec::new();
    for (i, person) in people.iter().enumerate() {
        change_title(&source, person, format!("R12 {i}")).await;
        // A signed delivery of the same change, as HollyHR signs it, on a fresh connection.
        let body = json!({
            "id": format!("evt_r12_{i}"), "type": "person.updated", "api_version": "v1",
            "occurred_at": Timestamp::now().to_string(),
            "data": {"id": person, "resource_type": "person"}
        })
        .to_string();
        let timestamp = Variant::Guide.format_timestamp(Timestamp::now());
        let header_id = format!("evt_r12_{i}");
        let digest = signature::sign(
            Variant::Guide,
            &signing_secret,
            &header_id,
            &timestamp,
            body.as_bytes(),
        );
        let started = Instant::now();
        let answer = reqwest::Client::new()
            .post(format!("http://{receiver}{path}"))
            .header("content-type", "application/json")
            .header(signature::HEADER_ID, &header_id)
            .header(signature::HEADER_TIMESTAMP, &timestamp)
            .header(Variant::Guide.signature_header(), format!("v1={digest}"))
            .timeout(Duration::from_secs(5))
            .body(body.clone())
            .send()
            .await;
        let took = started.elapsed();
        let status = answer.map(|a| a.status().as_u16()).unwrap_or(0);
        answered.push((status, took));
        peak = peak.max(rss(pid));
        if i == 0 {
            // The captured delivery replayed with a fresh header id (the guide variant does
            // not sign it): verified, and a duplicate.
            let replay_id = "evt_r12_replayed";
            let digest = signature::sign(
                Variant::Guide,
                &signing_secret,
                replay_id,
                &timestamp,
                body.as_bytes(),
            );
            let replay = reqwest::Client::new()
                .post(format!("http://{receiver}{path}"))
                .header("content-type", "application/json")
                .header(signature::HEADER_ID, replay_id)
                .header(signature::HEADER_TIMESTAMP, &timestamp)
                .header(Variant::Guide.signature_header(), format!("v1={digest}"))
                .body(body)
                .send()
                .await
                .expect("answered");
            assert_eq!(
                replay.status().as_u16(),
                200,
                "the replay was not a duplicate (the original was answered {answered:?})"
            );
            let said: Value = replay.json().await.expect("JSON");
            assert_eq!(said["status"], "duplicate", "{said}");
        }
    }
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < people.len() {
        let found = titles(&setup.ldap, &tree).await;
        for (i, person) in people.iter().enumerate() {
            if found.get(person).map(String::as_str) == Some(&format!("R12 {i}")) {
                seen.insert(person.clone());
            }
        }
        peak = peak.max(rss(pid));
        assert!(
            Instant::now() < deadline,
            "{} of {} changes did not reach the directory during the flood; our signed \
             deliveries were answered {answered:?}; HollyHR's: {:?}",
            people.len() - seen.len(),
            people.len(),
            deliveries(&base_url, &webhook).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak = peak.max(peak_rss(pid));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    while attack.join_next().await.is_some() {}
    settled_deliveries(&base_url, &webhook).await;
    let attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
    let head_bytes = head_bytes_sent.load(std::sync::atomic::Ordering::Relaxed);
    let worst = answered
        .iter()
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default();
    println!(
        "R12: {strangers} strangers made {attempts} requests and sent {:.1} MiB of headers; \
         RSS {:.1} MiB before, peak {:.1} MiB (chart request {} MiB); {} signed deliveries on \
         fresh connections answered {:?}, worst {:.0} ms; {} changes applied",
        head_bytes as f64 / 1048576.0,
        before as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        CHART_MEMORY_REQUEST / 1048576,
        answered.len(),
        answered
            .iter()
            .map(|(status, _)| *status)
            .collect::<BTreeSet<_>>(),
        worst.as_secs_f64() * 1e3,
        seen.len()
    );
    drop(operator);
    assert!(
        answered
            .iter()
            .all(|(status, _)| *status == 202 || *status == 200),
        "signed deliveries were refused during the flood: {answered:?}"
    );
    assert!(
        worst < Duration::from_secs(1),
        "a signed delivery took {worst:?} to be answered"
    );
    assert!(
        peak < CHART_MEMORY_REQUEST,
        "the receiver grew to {peak} bytes, over the chart's memory request"
    );
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// Creates `count` Secrets of `bytes` each, `namespaces` in turn, 8 at a time.
async fn big_secrets(
    client: &Client,
    namespaces: &[String],
    prefix: &str,
    count: usize,
    bytes: usize,
) {
    use futures::StreamExt as _;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let payload = ByteString(vec![b's'; bytes]);
    futures::stream::iter(0..count)
        .for_each_concurrent(8, |i| {
            let api: Api<Secret> =
                Api::namespaced(client.clone(), &namespaces[i % namespaces.len()]);
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(format!("{prefix}-{i}")),
                    labels: Some([("owner".to_owned(), "helm".to_owned())].into()),
                    ..Default::default()
                },
                data: Some([("release".to_owned(), payload.clone())].into()),
                ..Default::default()
            };
            async move {
                api.create(&kube::api::PostParams::default(), &secret)
                    .await
                    .expect("a Secret is created");
            }
        })
        .await;
}

/// R14 (issue #28): the cluster's Secrets do not grow the operator, even cluster-wide.
/// `PEOPLESYNC_R14_SECRETS` (200 in CI; `scripts/trials.sh` runs 2,000) Secrets of 512 KiB, in
/// the namespaces of the PeopleSyncs and in others, half created before the operator starts and
/// half while it runs. The same run without them is the baseline. Asserted: peak RSS within
/// 10 % of the baseline's, and every PeopleSync Synced after the Secrets came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_the_clusters_secrets_do_not_grow_the_operator() {
    let _serial = SERIAL.lock().await;
    let count = env_number("PEOPLESYNC_R14_SECRETS", 200);
    let setup = Setup::start(control_plane().await, quick_retries(100), "r14").await;
    let mut objects = Vec::new();
    for name in ["r14a", "r14b", "r14c"] {
        let tree = Subtree::create(&setup.ldap, name);
        let (ns, api) = setup.object(name).await;
        create(
            &setup.client,
            &ns,
            tree.object(&setup.hollyhr.base_url(), &setup.ldap),
        )
        .await
        .expect("created");
        objects.push((ns, api));
    }
    let mut elsewhere = Vec::new();
    for _ in 0..2 {
        elsewhere.push(
            setup
                .plane
                .create_namespace("helm")
                .await
                .expect("namespace"),
        );
    }
    let mut every = elsewhere.clone();
    every.extend(objects.iter().map(|(ns, _)| ns.clone()));

    // One run: the operator (every namespace, as the chart's "*"), each object synced, then a
    // full cycle of each asked for and awaited; `during` runs while it works. Its peak RSS.
    let run = |label: &'static str, during: bool| {
        let setup = &setup;
        let objects = &objects;
        let every = &every;
        async move {
            let operator = Operator::start_serving(&setup.plane, None, &setup.log(label), &[]);
            let pid = operator.child.id();
            let started = Timestamp::now();
            for (_, api) in objects {
                wait_synced(api, started, Duration::from_secs(120)).await;
            }
            if during {
                big_secrets(
                    &setup.client,
                    every,
                    "during",
                    count - count / 2,
                    512 * 1024,
                )
                .await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            let asked = Timestamp::now();
            for (_, api) in objects {
                annotate_sync_now(api).await;
            }
            for (_, api) in objects {
                wait_synced(api, asked, Duration::from_secs(120)).await;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let peak = peak_rss(pid);
            drop(operator);
            peak
        }
    };
    // The first run writes the entries; the two measured runs then do the same work.
    run("warm-up", false).await;
    let baseline = run("baseline", false).await;
    big_secrets(&setup.client, &every, "before", count / 2, 512 * 1024).await;
    let with_secrets = run("secrets", true).await;
    let ratio = with_secrets as f64 / baseline as f64;
    println!(
        "R14: {count} Secrets of 512 KiB ({:.0} MiB) in {} namespaces, half before the start, \
         half during: peak RSS {:.1} MiB against {:.1} MiB without them ({ratio:.3}x); {} \
         PeopleSyncs synced",
        count as f64 * 0.5,
        every.len(),
        with_secrets as f64 / 1048576.0,
        baseline as f64 / 1048576.0,
        objects.len()
    );
    assert!(
        ratio <= 1.10,
        "the operator grew with the cluster's Secrets: {with_secrets} bytes against {baseline}"
    );
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// Lifecycle transitions at their instant, in each person's time zone (issue #29). Three
/// people: a leaver whose work place is in Los Angeles, a joiner in Sydney and one in UTC, with
/// `disableAt`/`enableAt` set to a whole minute a little ahead in their local times, polling
/// hourly and full cycles daily. Each account changes within 5 s of its instant, measured from
/// the directory, and not a second early (slapd's `modifyTimestamp`). Two rounds at once, each
/// with its own operator process and people: in the second, the operator is killed (SIGKILL)
/// a few seconds before the instant and started again.
#[tokio::test]
async fn lifecycle_transitions_happen_at_their_instant_in_each_persons_time_zone() {
    use jiff::tz::TimeZone;
    use peoplesync::source::hollyhr::model::Lifecycle;
    let _serial = SERIAL.lock().await;
    let plane = control_plane().await;
    let config = SandboxConfig {
        people: 40,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    };
    let setup = Setup::start(plane, config, "ontime").await;
    let base_url = setup.hollyhr.base_url();
    let hr = support::hr::hollyhr::client(&setup.hollyhr);
    let people: Vec<peoplesync::source::Person> = {
        use futures::TryStreamExt;
        peoplesync::source::PeopleSource::people(&hr, None)
            .try_collect()
            .await
            .expect("lists")
    };
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    // Active people without an end date, by work place.
    let mut by_place: BTreeMap<String, Vec<&peoplesync::source::Person>> = BTreeMap::new();
    for person in &people {
        if person.lifecycle(today) == Lifecycle::Active && person.end_date.is_none() {
            let place = person
                .work_place
                .as_ref()
                .map_or(String::new(), |p| p.label.clone());
            by_place.entry(place).or_default().push(person);
        }
    }
    let places: Vec<&String> = by_place.keys().filter(|p| !p.is_empty()).collect();
    assert!(places.len() >= 2, "work places: {places:?}");
    let (los_angeles, sydney) = (places[0].clone(), places[1].clone());
    // The UTC people: anyone at a third place (or none), who gets the default zone.
    let elsewhere: Vec<&peoplesync::source::Person> = by_place
        .iter()
        .filter(|(place, _)| **place != los_angeles && **place != sydney)
        .flat_map(|(_, people)| people.iter().copied())
        .collect();
    assert!(
        by_place[&los_angeles].len() >= 2 && by_place[&sydney].len() >= 2 && elsewhere.len() >= 2,
        "{by_place:?}"
    );

    // The instant: a whole minute, far enough ahead for the setup and the first full cycles.
    let now = Timestamp::now().as_second();
    let instant = Timestamp::from_second((now + 25).div_euclid(60) * 60 + 60).expect("an instant");
    let local = |zone: &str| instant.to_zoned(TimeZone::get(zone).expect("a zone"));
    let hhmm = |zone: &str| local(zone).strftime("%H:%M").to_string();
    let date = |zone: &str| local(zone).date().to_string();
    let control = setup.hollyhr.controls();

    struct Round {
        name: &'static str,
        ns: String,
        leaver: String,
        joiners: [String; 2],
        trees: [Subtree; 2],
        operator: Option<Operator>,
    }
    let mut rounds = Vec::new();
    for (i, name) in ["ontime", "restart"].into_iter().enumerate() {
        let (leaver, joiner, utc) = (
            by_place[&los_angeles][i].id.clone(),
            by_place[&sydney][i].id.clone(),
            elsewhere[i].id.clone(),
        );
        control
            .ui_edit(&leaver, json!({"end_date": date("America/Los_Angeles")}))
            .await
            .expect("edited");
        control
            .ui_edit(&joiner, json!({"start_date": date("Australia/Sydney")}))
            .await
            .expect("edited");
        control
            .ui_edit(&utc, json!({"start_date": date("UTC")}))
            .await
            .expect("edited");
        let (ns, _) = setup.object(name).await;
        let trees = [
            Subtree::create(&setup.ldap, &format!("{name}-zones")),
            Subtree::create(&setup.ldap, &format!("{name}-utc")),
        ];
        let schedule = json!({"pollInterval": "1h", "fullResyncInterval": "24h"});
        let mut zoned = trees[0].object(&base_url, &setup.ldap);
        zoned["metadata"]["name"] = json!("zones");
        zoned["spec"]["schedule"] = schedule.clone();
        zoned["spec"]["lifecycle"] = json!({
            "timeZone": "UTC",
            "timeZones": {los_angeles.clone(): "America/Los_Angeles", sydney.clone(): "Australia/Sydney"},
            "disableAt": hhmm("America/Los_Angeles"),
            "enableAt": hhmm("Australia/Sydney")
        });
        let mut utc_object = trees[1].object(&base_url, &setup.ldap);
        utc_object["metadata"]["name"] = json!("utc");
        utc_object["spec"]["schedule"] = schedule;
        utc_object["spec"]["lifecycle"] = json!({"enableAt": hhmm("UTC")});
        // Two operators at once: neither serves webhooks.
        let operator = Operator::start_with(
            &setup.plane,
            &ns,
            &setup.log(name),
            &["--receiver-listen", "off"],
        );
        create(&setup.client, &ns, zoned).await.expect("created");
        create(&setup.client, &ns, utc_object)
            .await
            .expect("created");
        rounds.push(Round {
            name,
            ns,
            leaver,
            joiners: [joiner, utc],
            trees,
            operator: Some(operator),
        });
    }
    println!(
        "instant {instant}: Los Angeles {} {}, Sydney {} {}, UTC {} {}",
        date("America/Los_Angeles"),
        hhmm("America/Los_Angeles"),
        date("Australia/Sydney"),
        hhmm("Australia/Sydney"),
        date("UTC"),
        hhmm("UTC")
    );

    // Before the instant: the leaver is enabled, the joiners wait disabled; the status names
    // the instant.
    for round in &rounds {
        let api: Api<PeopleSync> = Api::namespaced(setup.client.clone(), &round.ns);
        for object in ["zones", "utc"] {
            let started = Instant::now();
            loop {
                let status = api.get(object).await.expect("reads").status;
                if status
                    .as_ref()
                    .and_then(|s| s.next_transition_time.as_ref())
                    .is_some_and(|t| t.0 == instant)
                {
                    break;
                }
                assert!(
                    Timestamp::now() < instant && started.elapsed() < Duration::from_secs(60),
                    "{}/{object}: no nextTransitionTime {instant}: {:?}",
                    round.name,
                    status.map(|s| (s.next_transition_time, s.conditions))
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        assert_eq!(
            locked(&setup.ldap, &round.trees[0], &round.leaver).await,
            Some(false)
        );
        assert_eq!(
            locked(&setup.ldap, &round.trees[0], &round.joiners[0]).await,
            Some(true)
        );
        assert_eq!(
            locked(&setup.ldap, &round.trees[1], &round.joiners[1]).await,
            Some(true)
        );
    }
    assert!(
        Timestamp::now() < instant - SignedDuration::from_secs(5),
        "the setup took too long"
    );

    // The second round's operator dies just before the instant and starts again.
    let wait = Duration::try_from(instant.duration_since(Timestamp::now())).unwrap_or_default();
    tokio::time::sleep(wait.saturating_sub(Duration::from_secs(3))).await;
    rounds[1].operator.take().expect("running").kill();
    rounds[1].operator = Some(Operator::start_with(
        &setup.plane,
        &rounds[1].ns,
        &setup.log(rounds[1].name),
        &["--receiver-listen", "off"],
    ));

    // Each account flips once its instant has come, within 5 s, never before.
    // (round, who, subtree, person, locked after the instant)
    let watches: Vec<(&str, &str, &Subtree, String, bool)> = rounds
        .iter()
        .flat_map(|round| {
            [
                ("leaver", &round.trees[0], &round.leaver, true),
                ("Sydney joiner", &round.trees[0], &round.joiners[0], false),
                ("UTC joiner", &round.trees[1], &round.joiners[1], false),
            ]
            .map(|(who, tree, id, lock)| (round.name, who, tree, id.clone(), lock))
        })
        .collect();
    let flips = futures::future::join_all(watches.iter().map(|(_, _, tree, id, lock)| {
        flipped(
            &setup.ldap,
            tree,
            id,
            *lock,
            instant + SignedDuration::from_secs(30),
        )
    }))
    .await;
    for ((round, who, _, id, _), (seen, modified)) in watches.iter().zip(flips) {
        let late = seen.duration_since(instant);
        println!(
            "{round}: {who} {id} changed {:.2} s after the instant (modifyTimestamp {modified})",
            late.as_secs_f64()
        );
        assert!(
            modified >= instant,
            "{round}: {who} changed at {modified}, before its instant {instant}"
        );
        assert!(
            late <= SignedDuration::from_secs(5),
            "{round}: {who} changed {late:?} after its instant"
        );
    }
    let _ = std::fs::remove_dir_all(&setup.logs);
}

/// Whether the person's entry in `tree` is locked (`None`: no entry).
async fn locked(ldap: &Slapd, tree: &Subtree, id: &str) -> Option<bool> {
    let mut admin = ldap.admin().await.expect("binds");
    let (results, _) = admin
        .search(
            &format!("ou=people,{}", tree.base),
            Scope::OneLevel,
            &format!("(employeeNumber={})", ldap3::ldap_escape(id)),
            vec!["pwdAccountLockedTime"],
        )
        .await
        .expect("searched")
        .success()
        .expect("the search succeeds");
    let _ = admin.unbind().await;
    let entry = SearchEntry::construct(results.into_iter().next()?);
    Some(entry.attrs.contains_key("pwdAccountLockedTime"))
}

/// Waits (until `deadline`) for the entry to become `lock`ed (or unlocked); returns when it
/// was seen so and its `modifyTimestamp`.
async fn flipped(
    ldap: &Slapd,
    tree: &Subtree,
    id: &str,
    lock: bool,
    deadline: Timestamp,
) -> (Timestamp, Timestamp) {
    loop {
        let mut admin = ldap.admin().await.expect("binds");
        let (results, _) = admin
            .search(
                &format!("ou=people,{}", tree.base),
                Scope::OneLevel,
                &format!("(employeeNumber={})", ldap3::ldap_escape(id)),
                vec!["pwdAccountLockedTime", "modifyTimestamp"],
            )
            .await
            .expect("searched")
            .success()
            .expect("the search succeeds");
        // Seen by now: an upper bound of when it changed.
        let now = Timestamp::now();
        let _ = admin.unbind().await;
        if let Some(result) = results.into_iter().next() {
            let entry = SearchEntry::construct(result);
            if entry.attrs.contains_key("pwdAccountLockedTime") == lock {
                let modified = entry
                    .attrs
                    .get("modifyTimestamp")
                    .and_then(|v| v.first())
                    .map(|v| generalized_time(v))
                    .expect("a modifyTimestamp");
                return (now, modified);
            }
        }
        assert!(now < deadline, "{id} never became locked={lock}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An LDAP GeneralizedTime (`20261207223015Z`) as an instant.
fn generalized_time(value: &str) -> Timestamp {
    let value = value.trim_end_matches('Z');
    jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", value)
        .expect("a generalized time")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("UTC")
        .timestamp()
}
