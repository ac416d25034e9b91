//! Applying creates to slapd: PeopleSync's LDAP backend vs `ldapadd` of the same entries as LDIF,
//! each against a fresh private slapd (`dbnosync`) in the same run. Goal (issue #4): ≤ 1.25×.
//!
//! Run: `cargo bench --bench ldap_apply` (`PEOPLESYNC_BENCH_PEOPLE`, default 10,000).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use peoplesync::crd::LdapProfile;
use peoplesync::directory::ldap::LdapDirectory;
use peoplesync::directory::{Attributes, Change, Directory};
use peoplesync::plan::mapping::{Mapping, Profile};
use peoplesync::slapd::{self, Slapd};

/// Outstanding operations on the one connection.
const CONCURRENCY: usize = 32;
const OBJECT_CLASSES: [&str; 4] = ["top", "person", "organizationalPerson", "inetOrgPerson"];

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("ldap_apply: skipped (run `cargo bench --bench ldap_apply`)");
        return;
    }
    let people: usize = std::env::var("PEOPLESYNC_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(people));
}

fn mapped(people: usize) -> Vec<(String, Attributes)> {
    let tenant = peoplesync_sandbox::generate_tenant(people, 42);
    let mapping =
        Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new()).expect("mapping");
    let mut uids = HashSet::new();
    tenant
        .iter()
        .map(|person| {
            let m = mapping
                .map(person, None, &|a, v| a == "uid" && uids.contains(v))
                .expect("maps");
            uids.insert(m.attributes["uid"][0].clone());
            (person.id.clone(), m.attributes)
        })
        .collect()
}

/// The entries as the backend would add them: DN, object classes, attributes, the anchor.
fn as_added(entries: &[(String, Attributes)]) -> Vec<(String, Attributes)> {
    entries
        .iter()
        .map(|(anchor, attributes)| {
            let dn = format!(
                "uid={},{}",
                ldap3::dn_escape(attributes["uid"][0].as_str()),
                slapd::PEOPLE_DN
            );
            let mut all = attributes.clone();
            all.insert(
                "objectClass".into(),
                OBJECT_CLASSES.map(String::from).to_vec(),
            );
            all.insert("employeeNumber".into(), vec![anchor.clone()]);
            (dn, all)
        })
        .collect()
}

async fn run(people: usize) {
    let entries = mapped(people);

    // Baseline: one `ldapadd` over the same entries (one connection, sequential adds).
    let baseline_server = Slapd::start().await.expect("slapd");
    let added = as_added(&entries);
    let text = slapd::ldif(added.iter().map(|(dn, a)| (dn.as_str(), a)));
    let started = Instant::now();
    baseline_server.ldapadd(&text).expect("ldapadd succeeds");
    let baseline = started.elapsed();

    // PeopleSync: the same creates through the backend, CONCURRENCY outstanding on one connection.
    let server = Slapd::start().await.expect("slapd");
    let mut config = server.ldap_config();
    config.timeout = Duration::from_secs(30);
    let directory = LdapDirectory::connect(config).await.expect("binds");
    let changes: Vec<Change> = entries
        .into_iter()
        .map(|(anchor, attributes)| Change::Create {
            anchor,
            attributes,
            enabled: true,
        })
        .collect();
    let started = Instant::now();
    let failures = futures::stream::iter(changes.iter().map(|c| directory.apply(c)))
        .buffer_unordered(CONCURRENCY)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    let ours = started.elapsed();
    assert_eq!(failures, 0, "every create succeeded");
    let listed = directory.entries().count().await;
    assert_eq!(listed, people, "every entry is there");

    let ratio = ours.as_secs_f64() / baseline.as_secs_f64();
    println!("ldap apply benchmark ({people} creates, slapd with dbnosync)");
    println!(
        "  ldapadd (baseline, same entries)   {:>8.0} ms  {:>6.0}/s",
        baseline.as_secs_f64() * 1e3,
        people as f64 / baseline.as_secs_f64()
    );
    println!(
        "  peoplesync backend ({CONCURRENCY} in flight)   {:>8.0} ms  {:>6.0}/s",
        ours.as_secs_f64() * 1e3,
        people as f64 / ours.as_secs_f64()
    );
    println!(
        "  ratio peoplesync / ldapadd          {ratio:>8.2}x  (goal ≤ 1.25x: {})",
        if ratio <= 1.25 { "met" } else { "NOT met" }
    );
}
