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
//! `PEOPLESYNC_TRIALS` (default 5) and `PEOPLESYNC_TRIAL_PEOPLE` (default 5,000) size it;
//! `PEOPLESYNC_TRIAL_SEED` replays a run (a failure prints the seed). `scripts/trials.sh` runs
//! the full 20 trials at 10,000 people and prints the figures.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::{Api, Client};
use ldap3::{Scope, SearchEntry};
use peoplesync::controlplane::ControlPlane;
use peoplesync::crd::PeopleSync;
use peoplesync::sandbox::{self, SandboxConfig};
use peoplesync::slapd::{self, Slapd};
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use support::*;

/// One running `peoplesync controller` process, its JSON log appended to `log`.
struct Operator {
    child: Child,
}

impl Operator {
    fn start(plane: &ControlPlane, namespace: &str, log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_peoplesync"))
            .args([
                "--log-format",
                "json",
                "controller",
                "--namespace",
                namespace,
            ])
            .args(["--admin-listen", &free_addr().to_string()])
            .env("KUBECONFIG", plane.kubeconfig_path())
            .env("RUST_LOG", "warn,peoplesync::audit=info")
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
            values = values.iter().map(|v| relative(v)).collect();
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

/// The audit lines of a log: `(action, id)` of each directory write.
fn audit(log: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "peoplesync::audit")
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_full_sync_loses_nothing_and_duplicates_nothing() {
    let trials = env_number("PEOPLESYNC_TRIALS", 5);
    let people = env_number("PEOPLESYNC_TRIAL_PEOPLE", 5_000);
    let seed = std::env::var("PEOPLESYNC_TRIAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    println!("R2 kill -9 trials: {trials} trials, {people} people, seed {seed}");
    let plane = control_plane().await;
    let client = plane.client().await.expect("client");
    let hollyhr = sandbox::start(SandboxConfig {
        people,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let ldap = Slapd::start().await.expect("slapd starts");
    let logs = std::env::temp_dir().join(format!("peoplesync-trials-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("a log directory");
    let setup = Setup {
        plane,
        client,
        hollyhr,
        ldap,
        logs,
    };
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
        let restarted = Timestamp::now();
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
