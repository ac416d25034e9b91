//! The planner alone, no I/O: how long planning a full reconcile of N unchanged people takes
//! (the "plan" stage of P3), against the time to build the planner's bare inputs (the index of
//! entries it cannot do without), measured in the same run. The directory is the in-memory
//! double, brought in line by a first plan and apply.
//!
//! Run: `cargo bench --bench planner` (`PEOPLESYNC_BENCH_PEOPLE`, default 10,000).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use peoplesync::crd::LdapProfile;
use peoplesync::directory::Directory;
use peoplesync::directory::memory::MemoryDirectory;
use peoplesync::plan::mapping::Profile;
use peoplesync::plan::{self, Coverage, Guard, Inputs, Mapping, Policy, Reserved};
use peoplesync::sync::{DirectorySnapshot, apply};

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("planner: skipped (run `cargo bench --bench planner`)");
        return;
    }
    let people: usize = std::env::var("PEOPLESYNC_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(run(people));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run(n: usize) {
    let (people, org_units) = peoplesync_sandbox::generate_organisation(n, 42);
    let directory = MemoryDirectory::ldap_like("uid", true);
    let mapping =
        Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new()).expect("compiles");
    let policy = Policy {
        guard: Guard {
            max_count: u32::MAX,
            max_percent: 100,
        },
        directory: directory.traits(),
        ..Policy::default()
    };
    let now = Timestamp::now();

    // Bring the directory in line.
    let empty = DirectorySnapshot::default();
    let none = BTreeMap::new();
    let first = plan::plan(&Inputs {
        people: &people,
        org_units: Some(&org_units),
        entries: &empty.entries,
        groups: &empty.groups,
        unowned: &empty.unowned,
        reserved: &Reserved::new(),
        mapping: &mapping,
        policy: &policy,
        coverage: Coverage::Full,
        now,
        disabled_since: &none,
        approved: None,
    });
    let mut ids = empty.ids();
    apply(&directory, &first, &mut ids, 8)
        .await
        .expect("applies");
    let snapshot = DirectorySnapshot::read(&directory, &mapping, true)
        .await
        .expect("reads");
    let disabled: BTreeMap<String, Timestamp> = snapshot
        .entries
        .iter()
        .filter(|e| !e.enabled)
        .map(|e| (e.anchor.clone(), now))
        .collect();

    let rounds = 5;
    let mut best_plan = Duration::MAX;
    let mut best_bare = Duration::MAX;
    for _ in 0..rounds {
        let started = Instant::now();
        let plan = plan::plan(&Inputs {
            people: &people,
            org_units: Some(&org_units),
            entries: &snapshot.entries,
            groups: &snapshot.groups,
            unowned: &snapshot.unowned,
            reserved: &snapshot.reserved,
            mapping: &mapping,
            policy: &policy,
            coverage: Coverage::Full,
            now,
            disabled_since: &disabled,
            approved: None,
        });
        best_plan = best_plan.min(started.elapsed());
        assert!(plan.is_empty(), "an unchanged directory plans nothing");

        // Baseline: index the entries by anchor and look every person up once.
        let started = Instant::now();
        let index: HashMap<&str, &peoplesync::directory::Entry> = snapshot
            .entries
            .iter()
            .map(|e| (e.anchor.as_str(), e))
            .collect();
        let found = people
            .iter()
            .filter(|p| index.contains_key(p.id.as_str()))
            .count();
        best_bare = best_bare.min(started.elapsed());
        assert!(found > 0);
    }
    println!(
        "planner benchmark: {n} people, {} entries, {} groups (best of {rounds})",
        snapshot.entries.len(),
        snapshot.groups.len()
    );
    println!(
        "  plan (unchanged) {:>8.1} ms  {:>6.1} µs/person   bare index+lookup {:>6.1} ms   {:.1}x",
        ms(best_plan),
        best_plan.as_secs_f64() * 1e6 / n as f64,
        ms(best_bare),
        best_plan.as_secs_f64() / best_bare.as_secs_f64()
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "planner", "people": n, "plan_ms": ms(best_plan), "bare_ms": ms(best_bare),
        })
    );
}
