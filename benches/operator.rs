//! The operator process itself (issue #16), measured as users run it: the real `peoplesync
//! controller` binary (release build) on the test control plane, the HollyHR sandbox and a
//! private slapd. Its memory is read from `/proc/PID/status` (`VmHWM`, the peak resident set,
//! reset between phases through `/proc/PID/clear_refs`), its Kubernetes API requests from its
//! own `peoplesync_kube_requests_total`.
//!
//! - **P5**: one tenant of `PEOPLESYNC_BENCH_PEOPLE` (default 100,000) people. Peak RSS of the
//!   fresh sync and of a full reconcile (goal ≤ 64 MiB each); of a full cycle with 100 person
//!   changes a second arriving by webhook (goal ≤ 128 MiB); of a dry run (goal ≤ 128 MiB).
//! - **P7**: `PEOPLESYNC_BENCH_TENANTS` (default 200) tenants of `PEOPLESYNC_BENCH_TENANT_PEOPLE`
//!   (default 1,000) people, one object each, webhooks on, poll interval 1 min. Time until every
//!   object is Synced against 2 × one tenant's time alone × tenants ÷ cores used; peak RSS (goal
//!   ≤ 256 MiB); Kubernetes API requests at steady state per object per poll interval (goal ≤ 2);
//!   new LDAP connections per cycle at steady state (goal 0).
//!
//! - **P9** (issue #29): `PEOPLESYNC_BENCH_TRANSITION_PEOPLE` (default 10,000) people, each given
//!   a start date (joiners) or an end date (leavers) so that their transitions fall on
//!   `PEOPLESYNC_BENCH_MINUTES` (default 10) whole minutes of the next quarter hour or so: one
//!   object per minute (its people chosen by department, `enableAt`/`disableAt` at its minute),
//!   polling hourly and full cycles daily. After the last instant, every entry's
//!   `modifyTimestamp` (slapd, 1 s resolution) against its person's instant: p50/p99/max of
//!   (directory changed − instant), goal p99 ≤ 5 s, and none early. Beside it, the memory the
//!   controller's schedule keeps per person with a transition ahead (counted by this process's
//!   allocator on the same structure).
//!
//! RSS counts the binary's own mapped pages (clean, shared with the page cache, ~15 MiB at idle);
//! the anonymous part (heap and stacks: what the process allocated) is sampled every 10 ms and
//! printed beside it.
//!
//! Run: `cargo bench --bench operator` (needs `PEOPLESYNC_CONTROLPLANE_BIN`, as the tests;
//! `PEOPLESYNC_OPERATOR_BIN=<path>` measures another build, e.g. the shipped one from
//! `cargo build --release --target-dir …`, in place of the bench profile's);
//! `PEOPLESYNC_BENCH_ONLY=p5`, `p7` or `p9` runs one; `PEOPLESYNC_BENCH_STEADY_SECONDS` (default 150)
//! is P7's steady-state window.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use peoplesync::controlplane::ControlPlane;
use peoplesync::crd::PeopleSync;
use peoplesync::slapd::Slapd;
use peoplesync::source::hollyhr::model::UpdateEmploymentRequest;
use peoplesync::source::hollyhr::{self, HollyHrClient, Idempotency};
use peoplesync_sandbox::{self as sandbox, SandboxConfig};
use serde_json::json;
use support::fleet::{self, is};
use support::*;

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("operator: skipped (run `cargo bench --bench operator`)");
        return;
    }
    let only = std::env::var("PEOPLESYNC_BENCH_ONLY").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    if only.is_empty() || only == "p5" {
        rows.extend(runtime.block_on(p5(env_number("PEOPLESYNC_BENCH_PEOPLE", 100_000))));
    }
    if only.is_empty() || only == "p7" {
        rows.extend(runtime.block_on(p7(
            env_number("PEOPLESYNC_BENCH_TENANTS", 200),
            env_number("PEOPLESYNC_BENCH_TENANT_PEOPLE", 1_000),
            env_number("PEOPLESYNC_BENCH_STEADY_SECONDS", 150),
        )));
    }
    if only.is_empty() || only == "p9" {
        rows.extend(runtime.block_on(p9(
            env_number("PEOPLESYNC_BENCH_TRANSITION_PEOPLE", 10_000),
            env_number("PEOPLESYNC_BENCH_MINUTES", 10),
        )));
    }
    println!("\n| goal | measured | baseline (same run) | ratio | verdict |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}

/// The real controller binary, watching one namespace, with its receiver.
struct Operator {
    child: Child,
    admin: SocketAddr,
    receiver: SocketAddr,
    http: reqwest::Client,
    /// The highest `RssAnon` sampled (every 10 ms) since the last reset, in KiB.
    anon_peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Operator {
    fn start(plane: &ControlPlane, namespace: &str, log: &std::path::Path) -> Self {
        let (admin, receiver) = (free_addr(), free_addr());
        let log = std::fs::File::create(log).expect("a log file");
        // The shipped build (`cargo build --release`: thin LTO) when given; else this bench
        // profile's build of the same code.
        let binary = std::env::var("PEOPLESYNC_OPERATOR_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_peoplesync").to_owned());
        let child = Command::new(binary)
            .args(["controller", "--namespace", namespace])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--receiver-listen", &receiver.to_string()])
            .args(["--max-concurrent-syncs", "4"])
            .env("KUBECONFIG", plane.kubeconfig_path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the controller binary starts");
        let anon_peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (peak, pid) = (anon_peak.clone(), child.id());
        std::thread::spawn(move || {
            while let Some(anon) = status_field(pid, "RssAnon") {
                peak.fetch_max(anon, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            child,
            admin,
            receiver,
            http: reqwest::Client::new(),
            anon_peak,
        }
    }

    fn status_kib(&self, field: &str) -> u64 {
        status_field(self.child.id(), field).unwrap_or(0)
    }

    /// Peak anonymous memory (the heap and stacks, without the binary's mapped pages) since the
    /// last reset, in MiB (sampled every 10 ms).
    fn anon_peak_mib(&self) -> f64 {
        self.anon_peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0
    }

    /// Peak resident memory since start or the last [`Self::reset_peak`], in MiB.
    fn peak_mib(&self) -> f64 {
        self.status_kib("VmHWM") as f64 / 1024.0
    }

    fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS") as f64 / 1024.0
    }

    /// CPU time the process has used (user + system), from `/proc/PID/stat`.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("the operator runs");
        // Fields after the command (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 (1-based), in clock ticks of 1/100 s.
        let ticks: u64 =
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }

    /// Starts a new peak (`VmHWM` back to the current RSS).
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("clear_refs is writable (root)");
        self.anon_peak.store(
            self.status_kib("RssAnon"),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("text")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kB` field of `/proc/PID/status`; `None` once the process is gone.
fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .trim_start_matches(':')
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `name{labels} value` samples of the Kubernetes request counter, by label set.
fn kube_requests(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("peoplesync_kube_requests_total{")?;
            let (labels, value) = rest.split_once("} ")?;
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

async fn patch_spec(client: &Client, namespace: &str, name: &str, spec: serde_json::Value) {
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": spec })),
    )
    .await
    .expect("patched");
}

/// Waits (up to `limit`) until the object's status shows a full sync newer than `after` and
/// Synced=True; the time it took.
async fn wait_full_sync(
    client: &Client,
    namespace: &str,
    name: &str,
    after: Option<jiff::Timestamp>,
    limit: Duration,
) -> Duration {
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    loop {
        let object = api.get(name).await.expect("reads");
        let status = object.status.unwrap_or_default();
        let synced = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Synced" && c.status == "True");
        let full = status.last_full_sync_time.map(|t| t.0);
        if synced && full.is_some() && (after.is_none() || full > after) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{name} never synced: {:?}",
            status.conditions
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn last_full(client: &Client, namespace: &str, name: &str) -> Option<jiff::Timestamp> {
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), namespace);
    api.get(name)
        .await
        .expect("reads")
        .status?
        .last_full_sync_time
        .map(|t| t.0)
}

async fn p5(people: usize) -> Vec<String> {
    eprintln!("P5: one tenant of {people} people");
    let plane = control_plane().await;
    let hollyhr = sandbox::start(SandboxConfig {
        people,
        rate_limit_per_minute: 0,
        allow_insecure_webhook_urls: true,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let slapd = Slapd::start().await.expect("slapd starts");
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("p5").await.expect("namespace");
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&client, &ns, "ldap", "password", &slapd.admin_password).await;
    let log = slapd.dir().join("operator-p5.log");
    let operator = Operator::start(&plane, &ns, &log);
    let mut object = ldap_people_sync(&hollyhr.base_url(), &slapd, true);
    object["spec"]["webhook"] =
        json!({ "enabled": true, "publicUrl": format!("http://{}", operator.receiver) });
    object["spec"]["schedule"] = json!({ "pollInterval": "1h", "fullResyncInterval": "6h" });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = operator.rss_mib();
    let cpu_before = operator.cpu();
    create(&client, &ns, object).await.expect("created");
    let limit = Duration::from_secs(1800);
    let took = wait_full_sync(&client, &ns, "acme", None, limit).await;
    let fresh_cores = (operator.cpu() - cpu_before).as_secs_f64() / took.as_secs_f64();
    let fresh = operator.peak_mib();
    let fresh_anon = operator.anon_peak_mib();
    eprintln!(
        "  fresh sync: {:.1} s, peak {fresh:.1} MiB, anonymous {fresh_anon:.1} MiB (idle {idle:.1}), {:.0} millicores",
        took.as_secs_f64(),
        fresh_cores * 1000.0
    );

    // A full reconcile of an unchanged tenant (a spec change makes the next cycle a full one).
    operator.reset_peak();
    let before = last_full(&client, &ns, "acme").await;
    patch_spec(
        &client,
        &ns,
        "acme",
        json!({"schedule": {"fullResyncInterval": "7h"}}),
    )
    .await;
    let took = wait_full_sync(&client, &ns, "acme", before, limit).await;
    let reconcile = operator.peak_mib();
    let reconcile_anon = operator.anon_peak_mib();
    eprintln!(
        "  full reconcile: {:.1} s, peak {reconcile:.1} MiB, anonymous {reconcile_anon:.1} MiB",
        took.as_secs_f64()
    );

    // A full cycle while 100 changes a second arrive by webhook.
    let source = HollyHrClient::new(
        hollyhr::ClientConfig::new(&hollyhr.base_url(), sandbox::DEFAULT_API_KEY.into())
            .expect("config"),
    )
    .expect("client");
    let ids: Vec<String> = peoplesync_sandbox::generate_tenant(people.min(2_000), 42)
        .into_iter()
        .map(|p| p.id)
        .collect();
    operator.reset_peak();
    let before = last_full(&client, &ns, "acme").await;
    patch_spec(
        &client,
        &ns,
        "acme",
        json!({"schedule": {"fullResyncInterval": "8h"}}),
    )
    .await;
    let events = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0usize;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            ticker.tick().await;
            let person = &ids[sent % ids.len()];
            let Ok(employment) = source.person_employment(person).await else {
                continue;
            };
            let Some(etag) = employment.etag else {
                continue;
            };
            let update = UpdateEmploymentRequest {
                job_title: Some(Some(format!("Busy {sent}"))),
                ..UpdateEmploymentRequest::default()
            };
            if source
                .update_employment(person, &update, &etag, Idempotency::Derived)
                .await
                .is_ok()
            {
                sent += 1;
            }
        }
        sent
    });
    let took = wait_full_sync(&client, &ns, "acme", before, limit).await;
    let sent = events.await.expect("the writer runs");
    // The events queued behind the cycle are applied after it; their memory counts too.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let busy = operator.peak_mib();
    let busy_anon = operator.anon_peak_mib();
    eprintln!(
        "  full cycle with {sent} changes by webhook over 30 s: {:.1} s, peak {busy:.1} MiB, anonymous {busy_anon:.1} MiB",
        took.as_secs_f64()
    );

    // A dry run of the whole tenant (a spec change: a full one).
    operator.reset_peak();
    let started = Instant::now();
    patch_spec(
        &client,
        &ns,
        "acme",
        json!({"dryRun": true, "schedule": {"fullResyncInterval": "9h"}}),
    )
    .await;
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);
    loop {
        let status = api
            .get("acme")
            .await
            .expect("reads")
            .status
            .unwrap_or_default();
        let done = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Synced" && c.reason == "DryRun");
        if done {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "the dry run never finished: {:?}",
            status.conditions
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dry = operator.peak_mib();
    let dry_anon = operator.anon_peak_mib();
    eprintln!(
        "  dry run: {:.1} s, peak {dry:.1} MiB, anonymous {dry_anon:.1} MiB",
        started.elapsed().as_secs_f64()
    );
    drop(operator);
    let k = people / 1000;
    vec![
        format!(
            "| P5 fresh sync {k}k: peak RSS ≤ 64 MiB | {fresh:.1} MiB (anonymous {fresh_anon:.1}) | idle {idle:.1} MiB | {:.2}× of goal | {} |",
            fresh / 64.0,
            verdict(fresh <= 64.0)
        ),
        format!(
            "| P5 full reconcile {k}k: peak RSS ≤ 64 MiB | {reconcile:.1} MiB (anonymous {reconcile_anon:.1}) | idle {idle:.1} MiB | {:.2}× of goal | {} |",
            reconcile / 64.0,
            verdict(reconcile <= 64.0)
        ),
        format!(
            "| P5 full cycle {k}k + 100 events/s: peak RSS ≤ 128 MiB | {busy:.1} MiB (anonymous {busy_anon:.1}; {sent} events) | idle {idle:.1} MiB | {:.2}× of goal | {} |",
            busy / 128.0,
            verdict(busy <= 128.0)
        ),
        format!(
            "| P5 dry run {k}k: peak RSS ≤ 128 MiB | {dry:.1} MiB (anonymous {dry_anon:.1}) | idle {idle:.1} MiB | {:.2}× of goal | {} |",
            dry / 128.0,
            verdict(dry <= 128.0)
        ),
    ]
}

async fn p7(tenants: usize, people: usize, steady: usize) -> Vec<String> {
    eprintln!("P7: {tenants} tenants × {people} people");
    let plane = control_plane().await;
    let fleet = fleet::start(tenants, people).await;
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("p7").await.expect("namespace");
    let log = fleet.ldap.dir().join("operator-p7.log");
    let operator = Operator::start(&plane, &ns, &log);
    let receiver = Some(operator.receiver);
    secret(&client, &ns, "ldap", "password", &fleet.ldap.admin_password).await;
    for tenant in 0..tenants {
        secret(
            &client,
            &ns,
            &fleet::tenant_name(tenant),
            "apiKey",
            &fleet::tenant_key(tenant),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = operator.rss_mib();
    let limit = Duration::from_secs(3600);
    let all_synced = |count: usize| {
        move |objects: &BTreeMap<String, fleet::Conditions>| {
            objects.len() == count
                && objects
                    .values()
                    .all(|c| is(c, "Synced", "True") && is(c, "WebhookRegistered", "True"))
        }
    };
    // One tenant alone: the baseline.
    create(&client, &ns, fleet.object(0, receiver, None))
        .await
        .expect("created");
    let alone = fleet::wait(
        &client,
        &ns,
        limit,
        "the first tenant Synced",
        all_synced(1),
    )
    .await;
    eprintln!("  one tenant alone: {:.2} s", alone.as_secs_f64());
    // Then all the others at once.
    let cpu_before = operator.cpu();
    let started = Instant::now();
    for tenant in 1..tenants {
        create(&client, &ns, fleet.object(tenant, receiver, None))
            .await
            .expect("created");
    }
    fleet::wait(
        &client,
        &ns,
        limit,
        "every tenant Synced",
        all_synced(tenants),
    )
    .await;
    let all = started.elapsed();
    let sync_cores = (operator.cpu() - cpu_before).as_secs_f64() / all.as_secs_f64();
    let peak = operator.peak_mib();
    let peak_anon = operator.anon_peak_mib();
    eprintln!(
        "  {} more tenants: {:.1} s, peak {peak:.1} MiB, anonymous {peak_anon:.1} MiB",
        tenants - 1,
        all.as_secs_f64()
    );
    let cores = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(4);
    let goal = 2.0 * alone.as_secs_f64() * (tenants - 1) as f64 / cores as f64;

    // Steady state: let the first incremental cycles pass, then count over the window.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let text = operator.metrics().await;
    let (requests0, connections0, cycles0) = (
        kube_requests(&text),
        sum(&text, "peoplesync_directory_connections_total"),
        sum(&text, "peoplesync_sync_cycles_total"),
    );
    operator.reset_peak();
    let cpu_steady = operator.cpu();
    tokio::time::sleep(Duration::from_secs(steady as u64)).await;
    let steady_cores = (operator.cpu() - cpu_steady).as_secs_f64() / steady as f64;
    let text = operator.metrics().await;
    let (requests1, connections1, cycles1) = (
        kube_requests(&text),
        sum(&text, "peoplesync_directory_connections_total"),
        sum(&text, "peoplesync_sync_cycles_total"),
    );
    let steady_peak = operator.peak_mib();
    let steady_peak_anon = operator.anon_peak_mib();
    // What a Prometheus scrape of this many objects costs (every per-tenant series carries the
    // object): the best of five scrapes.
    let mut scrape = Duration::MAX;
    for _ in 0..5 {
        let at = Instant::now();
        let _ = operator.metrics().await;
        scrape = scrape.min(at.elapsed());
    }
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    eprintln!(
        "  /metrics: {series} series, {:.0} KiB, scraped in {:.1} ms",
        text.len() as f64 / 1024.0,
        scrape.as_secs_f64() * 1000.0
    );
    let mut by_kind: Vec<(String, f64)> = requests1
        .iter()
        .map(|(labels, after)| {
            (
                labels.clone(),
                after - requests0.get(labels).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, delta)| *delta > 0.0)
        .collect();
    by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
    let requests: f64 = by_kind.iter().map(|(_, d)| d).sum();
    let poll_intervals = steady as f64 / 60.0;
    let per_object = requests / tenants as f64 / poll_intervals;
    let cycles = cycles1 - cycles0;
    let binds = connections1 - connections0;
    eprintln!(
        "  steady state over {steady} s: {requests} Kubernetes requests ({per_object:.2} per object per poll interval), {cycles} cycles, {binds} new LDAP connections, peak {steady_peak:.1} MiB, anonymous {steady_peak_anon:.1} MiB"
    );
    eprintln!(
        "  CPU: {:.0} millicores while the {} synced, {:.0} millicores at steady state",
        sync_cores * 1000.0,
        tenants - 1,
        steady_cores * 1000.0
    );
    for (labels, delta) in by_kind.iter().take(8) {
        eprintln!("    {delta:>6} {labels}");
    }
    let total_peak = peak.max(steady_peak);
    let total_anon = peak_anon.max(steady_peak_anon);
    drop(operator);
    vec![
        format!(
            "| P7 {tenants}×{people}: all Synced ≤ 2 × alone × {} ÷ {cores} cores = {goal:.1} s | {:.1} s | one alone {:.2} s | {:.2}× of goal | {} |",
            tenants - 1,
            all.as_secs_f64(),
            alone.as_secs_f64(),
            all.as_secs_f64() / goal,
            verdict(all.as_secs_f64() <= goal)
        ),
        format!(
            "| P7 peak RSS ≤ 256 MiB | {total_peak:.1} MiB (anonymous {total_anon:.1}) | idle {idle:.1} MiB | {:.2}× of goal | {} |",
            total_peak / 256.0,
            verdict(total_peak <= 256.0)
        ),
        format!(
            "| P7 Kubernetes requests at steady state ≤ 2 per object per poll interval | {per_object:.2} ({requests} in {steady} s) | – | {:.2}× of goal | {} |",
            per_object / 2.0,
            verdict(per_object <= 2.0)
        ),
        format!(
            "| P7 /metrics at steady state (no goal) | {series} series ({:.1} per object), {:.0} KiB, {:.1} ms a scrape | – | – | – |",
            series as f64 / tenants as f64,
            text.len() as f64 / 1024.0,
            scrape.as_secs_f64() * 1000.0
        ),
        format!(
            "| P7 new LDAP connections per cycle at steady state = 0 | {:.3} ({binds} in {cycles} cycles) | – | – | {} |",
            if cycles > 0.0 { binds / cycles } else { 0.0 },
            verdict(binds == 0.0 && cycles > 0.0)
        ),
    ]
}

/// Counts the bytes this process holds (P9 measures a structure's cost with it).
struct Counting;

static HELD: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        HELD.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes the controller's transition schedule holds per person with a transition ahead (ids of
/// 12 characters, as HollyHR's), measured on 100,000.
fn schedule_bytes_per_person() -> f64 {
    use peoplesync::controller::transitions::Schedule;
    use peoplesync::plan::timing::Transition;
    let n = 100_000;
    let at = jiff::Timestamp::now();
    let next: Vec<_> = (0..n)
        .map(|i| {
            (
                format!("{i:012}"),
                Some((
                    at + jiff::SignedDuration::from_secs(i as i64),
                    Transition::Enable,
                )),
            )
        })
        .collect();
    let upcoming = peoplesync::sync::engine::Upcoming {
        complete: true,
        next,
    };
    let before = HELD.load(std::sync::atomic::Ordering::Relaxed);
    let mut schedule = Schedule::default();
    schedule.fold(&upcoming);
    let held = HELD.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(schedule.len(), n);
    held as f64 / n as f64
}

async fn p9(people: usize, minutes: usize) -> Vec<String> {
    use futures::{StreamExt as _, TryStreamExt as _};
    use peoplesync::source::hollyhr::model::Lifecycle;
    eprintln!("P9: {people} people, transitions over {minutes} minutes");
    let per_person = schedule_bytes_per_person();
    let plane = control_plane().await;
    let hollyhr = sandbox::start(SandboxConfig {
        people,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let slapd = Slapd::start().await.expect("slapd starts");
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("p9").await.expect("namespace");
    secret(&client, &ns, "hollyhr", "apiKey", sandbox::DEFAULT_API_KEY).await;
    secret(&client, &ns, "ldap", "password", &slapd.admin_password).await;
    let log = slapd.dir().join("operator-p9.log");
    let operator = Operator::start(&plane, &ns, &log);
    let source = support::hr::hollyhr::client(&hollyhr);
    let everyone: Vec<peoplesync::source::Person> =
        peoplesync::source::PeopleSource::people(&source, None)
            .try_collect()
            .await
            .expect("lists");
    // One object per minute, its people by department (round robin over the departments).
    let mut departments: Vec<String> = everyone
        .iter()
        .filter_map(|p| p.department.as_ref().map(|d| d.id.clone()))
        .collect();
    departments.sort();
    departments.dedup();
    let object_of = |department: &str| {
        departments
            .iter()
            .position(|d| d == department)
            .map(|i| i % minutes)
    };
    // The instants: whole minutes, starting once the setup is surely done.
    let lead = env_number("PEOPLESYNC_BENCH_LEAD_SECONDS", 60 + people / 100) as i64;
    let first = (jiff::Timestamp::now().as_second() + lead).div_euclid(60) * 60 + 60;
    let instant =
        |k: usize| jiff::Timestamp::from_second(first + 60 * k as i64).expect("an instant");
    let utc = |at: jiff::Timestamp| at.to_zoned(jiff::tz::TimeZone::UTC);
    // Everyone in a department becomes a leaver (end date) or a joiner (start date) on their
    // object's instant; people who left already stay out.
    let today = utc(jiff::Timestamp::now()).date();
    let mut planned: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for (i, person) in everyone.iter().enumerate() {
        let Some(k) = person.department.as_ref().and_then(|d| object_of(&d.id)) else {
            continue;
        };
        let lifecycle = person.lifecycle(today);
        if lifecycle == Lifecycle::Leaver {
            continue;
        }
        // Someone who has not started yet cannot leave today: a joiner.
        let leaver =
            lifecycle != Lifecycle::FutureStarter && (i % 2 == 0 || person.end_date.is_some());
        planned.insert(person.id.clone(), (k, leaver));
    }
    let controls = hollyhr.controls();
    let started = Instant::now();
    futures::stream::iter(planned.iter())
        .map(|(id, (k, leaver))| {
            let date = utc(instant(*k)).date().to_string();
            let edit = if *leaver {
                json!({ "end_date": date })
            } else {
                json!({ "start_date": date })
            };
            let controls = &controls;
            async move { controls.ui_edit(id, edit).await.expect("edited") }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "  {} people given a date in {:.1} s",
        planned.len(),
        started.elapsed().as_secs_f64()
    );
    for k in 0..minutes {
        let mine: Vec<&String> = departments
            .iter()
            .enumerate()
            .filter(|(i, _)| i % minutes == k)
            .map(|(_, d)| d)
            .collect();
        let hhmm = utc(instant(k)).strftime("%H:%M").to_string();
        // Each object its own OU: objects creating people in one OU at once race for the same
        // new names (one gets EntryExists and converges a cycle later).
        let base = format!("ou=minute-{k},{}", peoplesync::slapd::BASE_DN);
        slapd
            .ldapadd(&format!(
                "dn: {base}\nobjectClass: organizationalUnit\nou: minute-{k}\n\n\
                 dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n\n"
            ))
            .expect("the OU is added");
        let mut object = ldap_people_sync(&hollyhr.base_url(), &slapd, false);
        object["metadata"]["name"] = json!(format!("minute-{k}"));
        object["spec"]["target"]["ldap"]["baseDn"] = json!(base);
        object["spec"]["target"]["ldap"]["peopleDn"] = json!(format!("ou=people,{base}"));
        object["spec"]["scope"] = json!({ "include": { "departments": mine } });
        object["spec"]["lifecycle"] = json!({ "enableAt": hhmm, "disableAt": hhmm });
        object["spec"]["schedule"] = json!({ "pollInterval": "1h", "fullResyncInterval": "24h" });
        // Hundreds of leavers at one instant trip the default guard (10 or 5 %), which holds
        // them for an approval: P9 measures the timing, so the guard is opened.
        object["spec"]["guard"] = json!({ "maxCount": 100000, "maxPercent": 100 });
        create(&client, &ns, object).await.expect("created");
    }
    for k in 0..minutes {
        wait_full_sync(
            &client,
            &ns,
            &format!("minute-{k}"),
            None,
            Duration::from_secs(1800),
        )
        .await;
    }
    let ready = jiff::Timestamp::now();
    eprintln!(
        "  {minutes} objects synced {:.0} s before the first instant ({})",
        instant(0).duration_since(ready).as_secs_f64(),
        instant(0)
    );
    let scheduled = sum(
        &operator.metrics().await,
        "peoplesync_lifecycle_transitions_scheduled",
    );
    operator.reset_peak();
    // After the last instant, every transition has run or never will.
    let end = instant(minutes - 1) + jiff::SignedDuration::from_secs(20);
    let wait = Duration::try_from(end.duration_since(jiff::Timestamp::now())).unwrap_or_default();
    tokio::time::sleep(wait).await;
    let during = operator.peak_mib();
    // Each person's entry: flipped or not, and when (slapd's modifyTimestamp).
    let mut admin = slapd.admin().await.expect("binds");
    let (results, _) = admin
        .search(
            peoplesync::slapd::BASE_DN,
            ldap3::Scope::Subtree,
            "(employeeNumber=*)",
            vec!["employeeNumber", "pwdAccountLockedTime", "modifyTimestamp"],
        )
        .await
        .expect("searched")
        .success()
        .expect("the search succeeds");
    let mut late: Vec<i64> = Vec::new();
    let (mut early, mut missed, mut unmade) = (0usize, 0usize, planned.len());
    for result in results {
        let entry = ldap3::SearchEntry::construct(result);
        let first = |name: &str| entry.attrs.get(name).and_then(|v| v.first()).cloned();
        let Some((k, leaver)) = first("employeeNumber").and_then(|id| planned.get(&id)) else {
            continue;
        };
        unmade -= 1;
        let locked = entry.attrs.contains_key("pwdAccountLockedTime");
        let modified = first("modifyTimestamp")
            .and_then(|v| {
                jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", v.trim_end_matches('Z')).ok()
            })
            .and_then(|t| t.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
            .expect("a modifyTimestamp");
        if locked != *leaver {
            missed += 1;
            continue;
        }
        let seconds = modified.as_second() - instant(*k).as_second();
        if seconds < 0 {
            early += 1;
        }
        late.push(seconds);
    }
    late.sort();
    let quantile = |q: f64| {
        late.get(((late.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(i64::MAX)
    };
    let (p50, p99, max) = (
        quantile(0.5),
        quantile(0.99),
        late.last().copied().unwrap_or(0),
    );
    eprintln!(
        "  {} transitions: p50 {p50} s, p99 {p99} s, max {max} s; {early} early, {missed} not made, \
         {unmade} without an entry; {scheduled} scheduled before the first instant, \
         {per_person:.0} bytes each; peak RSS during {during:.1} MiB",
        late.len()
    );
    vec![
        format!(
            "| P9 transition lateness p99 ≤ 5 s ({} transitions over {minutes} min, slapd modifyTimestamp) | p99 {p99} s (p50 {p50} s, max {max} s) | — | — | {} |",
            late.len(),
            verdict(p99 <= 5 && missed == 0 && unmade == 0)
        ),
        format!(
            "| P9 no transition early | {early} early, {missed} not made | — | — | {} |",
            verdict(early == 0 && missed == 0)
        ),
        format!(
            "| P9 instants kept (beside P5) | {per_person:.0} bytes per person with a transition ahead ({scheduled} scheduled) | — | — | — |"
        ),
    ]
}
