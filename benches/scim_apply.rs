//! Applying creates to scim2-server: PeopleSync's SCIM backend vs raw sequential POSTs of the
//! same JSON bodies, each into a fresh tenant of the same server, in the same run. Goal (issue
//! #4): the backend reaches ≥ 90 % of the server's sequential create rate. The backend is also
//! measured with 4 creates outstanding (what the applier does).
//!
//! Run: `cargo bench --bench scim_apply` (`PEOPLESYNC_BENCH_PEOPLE`, default 1,000).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use peoplesync::directory::scim::{ScimConfig, ScimDirectory, to_user};
use peoplesync::directory::{Attributes, Change, Directory};
use peoplesync::plan::mapping::{Mapping, Profile};
use peoplesync::scim_server::ScimServer;
use secrecy::SecretString;

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("scim_apply: skipped (run `cargo bench --bench scim_apply`)");
        return;
    }
    let people: usize = std::env::var("PEOPLESYNC_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(people));
}

fn mapped(people: usize) -> Vec<(String, Attributes)> {
    let tenant = peoplesync_sandbox::generate_tenant(people, 42);
    let mapping = Mapping::new(Profile::Scim, &BTreeMap::new()).expect("mapping");
    let mut names = HashSet::new();
    tenant
        .iter()
        .filter_map(|person| {
            let m = mapping.map(person, None, &|_, v| names.contains(v)).ok()?;
            names.insert(m.attributes["userName"][0].clone());
            Some((person.id.clone(), m.attributes))
        })
        .collect()
}

async fn backend(
    server: &ScimServer,
    tenant: &str,
    people: &[(String, Attributes)],
    outstanding: usize,
) -> Duration {
    let directory = ScimDirectory::connect(ScimConfig::new(
        &server.base_url_for(tenant),
        SecretString::from(server.token.clone()),
    ))
    .await
    .expect("connects");
    let started = Instant::now();
    let failures = futures::stream::iter(people)
        .map(|(anchor, attributes)| {
            let directory = &directory;
            async move {
                directory
                    .apply(&Change::Create {
                        anchor: anchor.clone(),
                        attributes: attributes.clone(),
                        enabled: true,
                    })
                    .await
            }
        })
        .buffer_unordered(outstanding)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    assert_eq!(failures, 0);
    started.elapsed()
}

async fn raw(server: &ScimServer, tenant: &str, people: &[(String, Attributes)]) -> Duration {
    let client = reqwest::Client::new();
    let url = format!("{}/Users", server.base_url_for(tenant));
    let bodies: Vec<String> = people
        .iter()
        .map(|(anchor, attributes)| to_user(attributes, anchor, true).to_string())
        .collect();
    // Warm the tenant and the connection like the backend's connect does.
    let _ = client
        .get(format!(
            "{}/ServiceProviderConfig",
            server.base_url_for(tenant)
        ))
        .send()
        .await;
    let started = Instant::now();
    for body in bodies {
        let response = client
            .post(&url)
            .bearer_auth(&server.token)
            .header("content-type", "application/scim+json")
            .body(body)
            .send()
            .await
            .expect("sent");
        assert!(response.status().is_success());
        let _ = response.bytes().await;
    }
    started.elapsed()
}

async fn run(people: usize) {
    let people = mapped(people);
    let n = people.len() as f64;
    let server = ScimServer::start().await.expect("scim2-server starts");
    let baseline = raw(&server, "baseline", &people).await;
    let sequential = backend(&server, "sequential", &people, 1).await;
    let concurrent = backend(&server, "concurrent", &people, 4).await;
    let rate = |d: Duration| n / d.as_secs_f64();
    println!("scim_apply: {} creates into scim2-server", people.len());
    println!(
        "  raw sequential POSTs      {:>8.2?}  {:>7.0}/s",
        baseline,
        rate(baseline)
    );
    println!(
        "  backend, sequential       {:>8.2?}  {:>7.0}/s  {:.2} of the raw rate",
        sequential,
        rate(sequential),
        rate(sequential) / rate(baseline)
    );
    println!(
        "  backend, 4 outstanding    {:>8.2?}  {:>7.0}/s  {:.2} of the raw rate",
        concurrent,
        rate(concurrent),
        rate(concurrent) / rate(baseline)
    );
}
