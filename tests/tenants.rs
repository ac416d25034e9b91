//! Many tenants per operator (issue #16), on real parts: 200 `PeopleSync` objects on the test
//! control plane, each with its own HollyHR tenant and API key (one sandbox port, keyed by key)
//! and its own subtree of one slapd, reconciled by one controller with its webhook receiver.
//! One object's directory is down the whole time; the other 199 sync regardless. Deleting 100
//! objects disables exactly their webhooks and drops exactly their kept state.
//!
//! `PEOPLESYNC_TENANTS` (default 200) and `PEOPLESYNC_TENANT_PEOPLE` (default 20) size it; the
//! P7 benchmark (`cargo bench --bench tenants`) runs 200 × 1,000 on the release binary.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::TryStreamExt;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use peoplesync::controller;
use peoplesync::crd::PeopleSync;
use peoplesync::directory::Directory;
use peoplesync::directory::ldap::LdapDirectory;
use peoplesync::source::hollyhr::model::{UpdateEmploymentRequest, WebhookStatus};
use peoplesync::source::hollyhr::{self, ClientConfig, HollyHrClient, Idempotency};
use support::fleet::{self, Fleet, is, tenant_key, tenant_name};
use support::*;

mod support;

fn source(fleet: &Fleet, tenant: usize) -> HollyHrClient {
    HollyHrClient::new(
        ClientConfig::new(&fleet.hollyhr.base_url(), tenant_key(tenant).into()).expect("config"),
    )
    .expect("a client")
}

/// The anchors of the entries in tenant `i`'s people subtree.
async fn anchors(fleet: &Fleet, ns: &str, tenant: usize) -> BTreeSet<String> {
    let mut config = fleet
        .ldap
        .ldap_config()
        .owned_by_object(ns, &fleet::tenant_name(tenant));
    config.people_dn = fleet::tenant_people_dn(tenant);
    config.groups_dn = Some(fleet::tenant_groups_dn(tenant));
    let directory = LdapDirectory::connect(config).await.expect("binds");
    let entries: Vec<peoplesync::directory::Entry> =
        directory.entries().try_collect().await.expect("lists");
    entries.into_iter().map(|e| e.anchor).collect()
}

/// The ids of tenant `i`'s people in HollyHR.
async fn people(fleet: &Fleet, tenant: usize) -> BTreeSet<String> {
    let people: Vec<hollyhr::model::Person> = source(fleet, tenant)
        .people(&hollyhr::PeopleQuery::default())
        .try_collect()
        .await
        .expect("lists");
    people.into_iter().map(|p| p.id).collect()
}

/// Tenant `i`'s PeopleSync webhook statuses.
async fn webhooks(fleet: &Fleet, namespace: &str, tenant: usize) -> Vec<WebhookStatus> {
    let name = format!("peoplesync-{namespace}-{}", tenant_name(tenant));
    source(fleet, tenant)
        .webhooks()
        .await
        .expect("lists webhooks")
        .into_iter()
        .filter(|w| w.name == name)
        .map(|w| w.status)
        .collect()
}

async fn metric(admin: std::net::SocketAddr, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

#[tokio::test]
async fn two_hundred_tenants_sync_one_down_and_deleting_half_cleans_up_only_theirs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tenants = env_number("PEOPLESYNC_TENANTS", 200).max(4);
    let size = env_number("PEOPLESYNC_TENANT_PEOPLE", 20);
    let down = tenants - 1;
    let plane = control_plane().await;
    let fleet = fleet::start(tenants, size).await;
    let client: Client = plane.client().await.expect("client");
    let ns = plane.create_namespace("tenants").await.expect("namespace");
    let receiver = free_addr();
    let admin = free_addr();
    let config = controller::Config {
        admin_listen: admin,
        namespaces: peoplesync::watch::Namespaces::one(ns.clone()),
        leader_election: None,
        instance: "tenants".into(),
        receiver_listen: Some(receiver),
        receiver_limits: Default::default(),
        webhook: Default::default(),
        max_concurrent_syncs: 4,
    };
    let kube = plane.kube_config().await.expect("a kube config");
    let controller = tokio::spawn(async move {
        controller::run(kube, config)
            .await
            .expect("the controller runs");
    });
    fleet.create(&client, &ns, Some(receiver), &[down]).await;

    // Every healthy object reaches Synced; the one whose directory is down says so.
    let down_name = tenant_name(down);
    let took = fleet::wait(
        &client,
        &ns,
        Duration::from_secs(600),
        "every healthy object Synced, the broken one DirectoryReachable=False",
        |objects| {
            objects.len() == tenants
                && objects.iter().all(|(name, conditions)| {
                    if *name == down_name {
                        is(conditions, "DirectoryReachable", "False")
                    } else {
                        is(conditions, "Synced", "True")
                            && is(conditions, "WebhookRegistered", "True")
                    }
                })
        },
    )
    .await;
    eprintln!(
        "{} objects × {size} people Synced in {:.1} s",
        tenants - 1,
        took.as_secs_f64()
    );
    let broken = &fleet::conditions(&client, &ns).await[&down_name];
    let (_, reason, message) = &broken["DirectoryReachable"];
    eprintln!("the broken object: {reason}: {message}");
    assert!(
        !reason.is_empty() && !message.is_empty(),
        "the broken object's condition does not say why: {reason}: {message}"
    );
    let (ready, ready_reason, _) = &broken["Ready"];
    assert_eq!(ready, "False", "{broken:?}");
    assert_ne!(ready_reason, "Ready");

    // Each subtree holds exactly its own tenant's people: no entry crossed tenants.
    for tenant in [0, 1, tenants / 2, tenants - 2] {
        let (entries, people) = (
            anchors(&fleet, &ns, tenant).await,
            people(&fleet, tenant).await,
        );
        assert!(!entries.is_empty(), "tenant {tenant} has no entries");
        assert!(
            entries.is_subset(&people),
            "tenant {tenant}: entries not among its people: {:?}",
            entries.difference(&people).collect::<Vec<_>>()
        );
    }
    assert!(anchors(&fleet, &ns, down).await.is_empty());
    // One LDAP connection per healthy object, kept (none made for the one that is down).
    let connections = metric(admin, "peoplesync_directory_connections_total").await;
    assert_eq!(connections as usize, tenants - 1);
    assert_eq!(
        metric(admin, "peoplesync_directory_indexes").await as usize,
        tenants - 1
    );

    // Delete the second half (the broken one included).
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);
    let half = tenants / 2;
    for tenant in half..tenants {
        api.delete(&tenant_name(tenant), &DeleteParams::default())
            .await
            .expect("deleted");
    }
    let started = std::time::Instant::now();
    loop {
        let left = api.list(&ListParams::default()).await.expect("lists").items;
        if left.len() == half {
            let names: BTreeSet<String> = left
                .iter()
                .filter_map(|o| o.metadata.name.clone())
                .collect();
            assert_eq!(names, (0..half).map(tenant_name).collect());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} objects left",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{} objects deleted in {:.1} s",
        tenants - half,
        started.elapsed().as_secs_f64()
    );
    // Exactly the deleted objects' webhooks are disabled; the others stay active.
    for tenant in 0..tenants - 1 {
        let statuses = webhooks(&fleet, &ns, tenant).await;
        let want = if tenant < half {
            WebhookStatus::Active
        } else {
            WebhookStatus::Disabled
        };
        assert_eq!(statuses, vec![want], "tenant {tenant}");
    }
    assert_eq!(
        metric(admin, "peoplesync_directory_indexes").await as usize,
        half
    );
    // The deleted objects' entries stay in the directory (deletion removes the operator, not
    // the people).
    assert!(!anchors(&fleet, &ns, tenants - 2).await.is_empty());

    // The objects left keep syncing: a change in one of them arrives through its webhook.
    let tenant = 1;
    let hr = source(&fleet, tenant);
    let person = anchors(&fleet, &ns, tenant)
        .await
        .into_iter()
        .next()
        .expect("a person with an entry");
    let employment = hr.person_employment(&person).await.expect("reads");
    hr.update_employment(
        &person,
        &UpdateEmploymentRequest {
            job_title: Some(Some("Tenant Survivor".into())),
            ..UpdateEmploymentRequest::default()
        },
        &employment.etag.expect("an ETag"),
        Idempotency::Derived,
    )
    .await
    .expect("patched");
    let mut config = fleet
        .ldap
        .ldap_config()
        .owned_by_object(&ns, &fleet::tenant_name(tenant));
    config.people_dn = fleet::tenant_people_dn(tenant);
    let directory = LdapDirectory::connect(config).await.expect("binds");
    let started = std::time::Instant::now();
    loop {
        let entries: Vec<peoplesync::directory::Entry> =
            directory.entries().try_collect().await.expect("lists");
        let title = entries
            .iter()
            .find(|e| e.anchor == person)
            .and_then(|e| peoplesync::plan::attribute_values(&e.attributes, "title"))
            .and_then(|v| v.first().cloned());
        if title.as_deref() == Some("Tenant Survivor") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the change never arrived (title {title:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    controller.abort();
}
