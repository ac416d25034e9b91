//! The operator end to end against Active Directory (issue #18): a PeopleSync with the AD profile,
//! its bind password and the DC's CA in Secrets, reconciled by the controller on the test control
//! plane, reaches Synced with the people in a real Samba AD DC.
//!
//! A test binary of its own, so its DC is its own: AD's account names and UPNs are unique in the
//! whole domain, and the people of `tests/active_directory.rs` (same seeded names) would collide
//! with these across OUs. Its tests share the DC, each in its own OU (the brownfield one with
//! people of another seed).

mod support;

use futures::TryStreamExt;
use peoplesync::directory::Directory;
use peoplesync::directory::ldap::{LdapConfig, LdapDirectory};
use peoplesync::samba::{self, SambaDc};
use peoplesync_sandbox::{self as sandbox, DEFAULT_API_KEY, SandboxConfig};
use secrecy::SecretString;
use serde_json::json;

/// The operator end to end against AD: a PeopleSync with the AD profile, its bind password and
/// the DC's CA in Secrets, reconciled by the controller on the test control plane, reaches
/// Synced with the people in the DC.
#[tokio::test]
async fn a_peoplesync_with_the_ad_profile_syncs_into_samba_through_the_controller() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::Api;
    use kube::api::PostParams;
    let dc = SambaDc::shared().await.expect("the Samba AD DC starts");
    let (people, groups) = dc.ou("Operator").await.expect("the OUs are added");
    let hollyhr = sandbox::start(SandboxConfig {
        people: 40,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let plane = peoplesync::controlplane::ControlPlane::start()
        .await
        .expect("the control plane starts");
    plane
        .install_crds(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crds"
        )))
        .await
        .expect("CRDs install");
    let client = plane.client().await.expect("client");
    let ns = plane.create_namespace("ad").await.expect("namespace");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for (name, data) in [
        ("hollyhr", json!({"apiKey": DEFAULT_API_KEY})),
        (
            "ad",
            json!({"password": dc.admin_password, "ca.crt": dc.ca_pem}),
        ),
    ] {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .expect("a Secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("created");
    }
    let object: peoplesync::crd::PeopleSync = serde_json::from_value(json!({
        "apiVersion": "peoplesync.dev/v1alpha1",
        "kind": "PeopleSync",
        "metadata": {"name": "corp"},
        "spec": {
            "source": {"hollyhr": {"baseUrl": hollyhr.base_url(), "apiKeySecretRef": {"name": "hollyhr", "key": "apiKey"}}},
            "target": {"ldap": {
                "url": samba::URL, "bindDn": samba::ADMIN_DN,
                "bindPasswordSecretRef": {"name": "ad", "key": "password"},
                "caSecretRef": {"name": "ad", "key": "ca.crt"},
                "baseDn": samba::BASE_DN, "peopleDn": people, "groupsDn": groups,
                "profile": "ad", "initialPassword": "Random"
            }}
        }
    }))
    .expect("a PeopleSync");
    let api: Api<peoplesync::crd::PeopleSync> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &object)
        .await
        .expect("created");
    let controller = support::spawn_controller(&plane, &ns, "ad-test").await;
    let started = std::time::Instant::now();
    let status = loop {
        let status = api
            .get("corp")
            .await
            .expect("reads")
            .status
            .unwrap_or_default();
        let synced = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Synced" && c.status == "True");
        if synced {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "never Synced: {:?}",
            status.conditions
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(status.counts.as_ref().map(|c| c.people), Some(40));
    let reachable = status
        .conditions
        .iter()
        .find(|c| c.type_ == "DirectoryReachable")
        .expect("a DirectoryReachable condition");
    assert_eq!(reachable.status, "True", "{reachable:?}");
    let target: peoplesync::crd::LdapTarget = serde_json::from_value(json!({
        "url": samba::URL, "bindDn": samba::ADMIN_DN,
        "bindPasswordSecretRef": {"name": "ad", "key": "password"},
        "baseDn": samba::BASE_DN, "peopleDn": people, "groupsDn": groups, "profile": "ad"
    }))
    .expect("a target");
    let directory = LdapDirectory::connect(LdapConfig::from_spec(
        &target,
        SecretString::from(dc.admin_password.clone()),
        Some(dc.ca_pem.clone()),
        peoplesync::directory::mark_for(&ns, "corp"),
    ))
    .await
    .expect("binds");
    let entries: Vec<peoplesync::directory::Entry> =
        directory.entries().try_collect().await.expect("lists");
    assert!(entries.len() >= 30, "{} entries", entries.len());
    // initialPassword Random: active people's accounts are enabled (NORMAL_ACCOUNT only) with a
    // password that must change at the first logon; leavers' are disabled.
    let flag = |entry: &peoplesync::directory::Entry, name: &str| {
        peoplesync::plan::attribute_values(&entry.attributes, name)
            .and_then(|v| v.first().cloned())
            .unwrap_or_default()
    };
    let enabled: Vec<_> = entries.iter().filter(|e| e.enabled).collect();
    assert!(enabled.len() >= 30, "{} enabled", enabled.len());
    for entry in &enabled {
        assert_eq!(flag(entry, "userAccountControl"), "512", "{}", entry.id);
        assert_eq!(flag(entry, "pwdLastSet"), "0", "{}", entry.id);
    }
    for entry in entries.iter().filter(|e| !e.enabled) {
        assert_eq!(flag(entry, "userAccountControl"), "514", "{}", entry.id);
    }
    controller.abort();
}

/// Brownfield AD (issue #29): 300 accounts whose `employeeID`s are payroll numbers, 40 matching
/// HR people by mail. The dry run plans 40 adoptions and no deprovision; the real cycle marks
/// those 40 and leaves the 260 others unchanged to their `uSNChanged`.
#[tokio::test]
async fn a_brownfield_ad_keeps_every_account_it_does_not_own_and_adopts_the_matching_ones() {
    let dc = SambaDc::shared().await.expect("the Samba AD DC starts");
    let (people, groups) = dc.ou("Brownfield").await.expect("the OUs are added");
    let admin = dc.admin().await.expect("an admin connection");
    support::brownfield::contract(support::brownfield::Brownfield {
        admin,
        people_dn: people.clone(),
        ad: true,
        target: json!({
            "url": samba::URL, "bindDn": samba::ADMIN_DN,
            "bindPasswordSecretRef": {"name": "ldap", "key": "password"},
            "caSecretRef": {"name": "ldap", "key": "ca.crt"},
            "baseDn": samba::BASE_DN, "peopleDn": people, "groupsDn": groups,
            "profile": "ad"
        }),
        secret: json!({"password": dc.admin_password, "ca.crt": dc.ca_pem}),
    })
    .await;
}
