//! Active Directory on a real Samba AD DC (issue #18, first step): the fixture provisions a
//! domain and serves LDAPS with a test CA; PeopleSync's LDAP backend with the AD profile's
//! defaults syncs HollyHR sandbox people into an OU of it, and a second full cycle writes nothing.
//! One DC per test process (Samba's ports are fixed); each test uses its own OU.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use jiff::Timestamp;
use peoplesync::crd::{LdapProfile, LdapTarget};
use peoplesync::directory::Directory;
use peoplesync::directory::ldap::{LdapConfig, LdapDirectory};
use peoplesync::plan::mapping::Profile;
use peoplesync::plan::{Guard, Mapping, Policy};
use peoplesync::samba::{self, SambaDc};
use peoplesync::sandbox::{self, DEFAULT_API_KEY, SandboxConfig};
use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};
use peoplesync::sync::engine::{self, CycleKind, DEFAULT_OVERLAP, Settings, SyncState};
use secrecy::SecretString;
use serde_json::json;

async fn dc() -> &'static SambaDc {
    SambaDc::shared()
        .await
        .unwrap_or_else(|error| panic!("the Samba AD DC starts: {error}"))
}

/// A fresh OU under the domain for one test, with its own people and groups OUs.
async fn ou(dc: &SambaDc, name: &str) -> (String, String) {
    dc.ou(name).await.expect("the OUs are added")
}

fn target(people: &str, groups: &str) -> LdapTarget {
    serde_json::from_value(json!({
        "url": samba::URL,
        "bindDn": samba::ADMIN_DN,
        "bindPasswordSecretRef": {"name": "ad", "key": "password"},
        "baseDn": samba::BASE_DN,
        "peopleDn": people,
        "groupsDn": groups,
        "profile": "ad"
    }))
    .expect("a valid AD target")
}

#[tokio::test]
async fn the_dc_refuses_plain_binds_and_a_wrong_password_and_accepts_ldaps_with_its_ca() {
    let dc = dc().await;
    // AD wants transport encryption for simple binds.
    let (connection, mut plain) = ldap3::LdapConnAsync::new("ldap://127.0.0.1:389")
        .await
        .expect("connects");
    ldap3::drive!(connection);
    let refused = plain
        .simple_bind(samba::ADMIN_DN, &dc.admin_password)
        .await
        .expect("answers");
    assert_eq!(refused.rc, 8, "strongerAuthRequired: {refused:?}");
    let (people, groups) = ou(dc, "Binds").await;
    let wrong = LdapDirectory::connect(LdapConfig::from_spec(
        &target(&people, &groups),
        SecretString::from("not-the-password"),
        Some(dc.ca_pem.clone()),
    ))
    .await;
    assert!(wrong.is_err(), "a wrong password bound");
    let directory = LdapDirectory::connect(LdapConfig::from_spec(
        &target(&people, &groups),
        SecretString::from(dc.admin_password.clone()),
        Some(dc.ca_pem.clone()),
    ))
    .await
    .expect("binds over LDAPS with the DC's CA");
    directory.check().await.expect("reads the people OU");
}

#[tokio::test]
async fn people_sync_into_samba_ad_and_a_second_full_cycle_writes_nothing() {
    let dc = dc().await;
    let (people, groups) = ou(dc, "Sync").await;
    let hollyhr = sandbox::start(SandboxConfig {
        people: 60,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let source = HollyHrClient::new(
        ClientConfig::new(&hollyhr.base_url(), SecretString::from(DEFAULT_API_KEY))
            .expect("a client config"),
    )
    .expect("a client");
    let directory = LdapDirectory::connect(LdapConfig::from_spec(
        &target(&people, &groups),
        SecretString::from(dc.admin_password.clone()),
        Some(dc.ca_pem.clone()),
    ))
    .await
    .expect("binds");
    let settings = Settings {
        mapping: Mapping::new(
            Profile::Ldap(LdapProfile::ActiveDirectory),
            &BTreeMap::new(),
        )
        .expect("compiles"),
        policy: Policy {
            guard: Guard {
                max_count: 10_000,
                max_percent: 100,
            },
            ..Policy::default()
        },
        concurrency: engine::DEFAULT_CONCURRENCY,
        overlap: DEFAULT_OVERLAP,
        dry_run: false,
        chunk: peoplesync::sync::stream::CHUNK,
        on_step: None,
    };
    let first = engine::run_cycle(
        &source,
        &directory,
        &settings,
        &SyncState::default(),
        CycleKind::Full,
        None,
        Timestamp::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("the first full cycle: {}", peoplesync::cli::report(&e)));
    let applied = first.applied.as_ref().expect("applied");
    assert!(
        first.failures().is_empty(),
        "failures: {:?}",
        first.failures()
    );
    let created = applied.counts.get("create").copied().unwrap_or(0);
    assert!(created >= 50, "created {created}: {:?}", applied.counts);
    let entries: Vec<peoplesync::directory::Entry> =
        directory.entries().try_collect().await.expect("lists");
    assert_eq!(entries.len() as u64, created);
    // Every entry has an AD account name of at most 20 characters and a UPN.
    for entry in &entries {
        let name = peoplesync::plan::attribute_values(&entry.attributes, "sAMAccountName")
            .and_then(|v| v.first().cloned())
            .unwrap_or_default();
        assert!(
            !name.is_empty() && name.chars().count() <= 20,
            "sAMAccountName {name:?}"
        );
        assert!(
            peoplesync::plan::attribute_values(&entry.attributes, "userPrincipalName")
                .is_some_and(|v| !v.is_empty()),
            "no userPrincipalName on {}",
            entry.id
        );
    }
    let second = engine::run_cycle(
        &source,
        &directory,
        &settings,
        &first.state,
        CycleKind::Full,
        None,
        Timestamp::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("the second full cycle: {}", peoplesync::cli::report(&e)));
    let writes: u64 = second
        .applied
        .as_ref()
        .map(|a| a.counts.values().sum())
        .unwrap_or(0);
    assert_eq!(
        writes,
        0,
        "a second full cycle wrote: {:?}",
        second.plan.counts()
    );
}
