//! The LDAP backend against a real OpenLDAP slapd (Debian), started per test.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use peoplesync::crd::LdapProfile;
use peoplesync::directory::ldap::{DisableStrategy, LdapConfig, LdapDirectory, PERMANENT_LOCK};
use peoplesync::directory::{Change, Directory, DirectoryError, Entry};
use peoplesync::plan::mapping::{Mapping, Profile};
use peoplesync::slapd::{self, Slapd};
use peoplesync_sandbox as sandbox;
use secrecy::SecretString;

fn config(server: &Slapd, disable: DisableStrategy) -> LdapConfig {
    LdapConfig {
        url: server.url(),
        start_tls: false,
        allow_plaintext: false,
        ca_pem: None,
        groups_dn: Some(slapd::GROUPS_DN.into()),
        group_anchor_attribute: "businessCategory".into(),
        group_object_class: "groupOfNames".into(),
        directory_unique: Vec::new(),
        member_range: None,
        initial_password: Default::default(),
        people_subtree: false,
        people_filter: String::new(),
        group_name_max: None,
        bind_dn: slapd::ADMIN_DN.into(),
        bind_password: SecretString::from(server.admin_password.clone()),
        base_dn: slapd::BASE_DN.into(),
        people_dn: slapd::PEOPLE_DN.into(),
        rdn_attribute: "uid".into(),
        anchor_attribute: "employeeNumber".into(),
        owner_attribute: peoplesync::directory::ldap::DEFAULT_OWNER_ATTRIBUTE.into(),
        owner_mark: peoplesync::directory::standalone_mark(),
        object_classes: ["top", "person", "organizationalPerson", "inetOrgPerson"]
            .map(String::from)
            .to_vec(),
        disable,
        timeout: std::time::Duration::from_secs(5),
        // Small pages so the listings below cross page boundaries.
        page_size: 50,
    }
}

fn lock() -> DisableStrategy {
    DisableStrategy::SetAttribute {
        attribute: "pwdAccountLockedTime".into(),
        value: PERMANENT_LOCK.into(),
    }
}

/// A plain ldap3 connection bound as the admin, for what the backend must not do itself.
async fn admin(server: &Slapd) -> ldap3::Ldap {
    server.admin().await.expect("an admin connection")
}

async fn listed(directory: &LdapDirectory) -> BTreeMap<String, Entry> {
    let entries: Vec<Entry> = directory
        .entries()
        .try_collect()
        .await
        .expect("the listing works");
    entries.into_iter().map(|e| (e.anchor.clone(), e)).collect()
}

/// Maps `n` sandbox people to creates, with unique uids.
fn creates(n: usize) -> Vec<Change> {
    let people = sandbox::generate_tenant(n, 7);
    let mapping =
        Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new()).expect("mapping");
    let mut uids = std::collections::HashSet::new();
    people
        .iter()
        .map(|person| {
            let mapped = mapping
                .map(person, None, &|attribute, value| {
                    attribute == "uid" && uids.contains(value)
                })
                .expect("maps");
            uids.insert(mapped.attributes["uid"][0].clone());
            Change::Create {
                anchor: person.id.clone(),
                attributes: mapped.attributes,
                enabled: true,
            }
        })
        .collect()
}

#[tokio::test]
async fn people_are_created_updated_renamed_disabled_enabled_and_deleted() {
    let server = Slapd::start().await.expect("slapd starts");
    let directory = LdapDirectory::connect(config(&server, lock()))
        .await
        .expect("binds");
    directory.check().await.expect("reachable");
    let changes = creates(120);
    for change in &changes {
        directory.apply(change).await.expect("created");
    }
    let entries = listed(&directory).await;
    assert_eq!(
        entries.len(),
        120,
        "paged listing returns every managed entry"
    );
    for change in &changes {
        let Change::Create {
            anchor, attributes, ..
        } = change
        else {
            unreachable!()
        };
        let entry = &entries[anchor];
        assert!(entry.enabled);
        for (name, values) in attributes {
            assert_eq!(entry.attributes.get(name), Some(values), "{anchor}: {name}");
        }
    }
    let (a, b, c) = {
        let mut ids = entries.keys();
        (
            ids.next().expect("a").clone(),
            ids.next().expect("b").clone(),
            ids.next().expect("c").clone(),
        )
    };

    // Update only the changed attribute; remove one with an empty value set.
    let update = Change::Update {
        id: entries[&a].id.clone(),
        anchor: a.clone(),
        set: BTreeMap::from([
            ("title".into(), vec!["Principal Engineer".into()]),
            ("ou".into(), vec![]),
        ]),
    };
    directory.apply(&update).await.expect("updated");
    // Rename: the uid changes, the entry moves, the anchor stays.
    let new_dn = directory
        .apply(&Change::Rename {
            id: entries[&b].id.clone(),
            anchor: b.clone(),
            new_rdn_value: "renamed.person".into(),
        })
        .await
        .expect("renamed");
    assert_eq!(new_dn, format!("uid=renamed.person,{}", slapd::PEOPLE_DN));
    // Disable (ppolicy lock) and enable again; delete another.
    directory
        .apply(&Change::Disable {
            id: entries[&c].id.clone(),
            anchor: c.clone(),
        })
        .await
        .expect("disabled");
    assert!(!listed(&directory).await[&c].enabled);
    directory
        .apply(&Change::Enable {
            id: entries[&c].id.clone(),
            anchor: c.clone(),
        })
        .await
        .expect("enabled");
    let d = entries.keys().nth(3).expect("d").clone();
    directory
        .apply(&Change::Delete {
            id: entries[&d].id.clone(),
            anchor: d.clone(),
        })
        .await
        .expect("deleted");

    let after = listed(&directory).await;
    assert_eq!(after.len(), 119);
    assert_eq!(after[&a].attributes["title"], ["Principal Engineer"]);
    assert!(!after[&a].attributes.contains_key("ou"));
    assert_eq!(after[&b].id, new_dn);
    assert_eq!(after[&b].attributes["uid"], ["renamed.person"]);
    assert!(after[&c].enabled);
    assert!(!after.contains_key(&d));
}

#[tokio::test]
async fn disabling_by_moving_to_an_ou_and_back() {
    let server = Slapd::start().await.expect("slapd starts");
    let directory = LdapDirectory::connect(config(
        &server,
        DisableStrategy::MoveToOu {
            disabled_dn: slapd::DISABLED_DN.into(),
        },
    ))
    .await
    .expect("binds");
    let change = creates(1).remove(0);
    let dn = directory.apply(&change).await.expect("created");
    let anchor = change.anchor().to_owned();
    let moved = directory
        .apply(&Change::Disable {
            id: dn.clone(),
            anchor: anchor.clone(),
        })
        .await
        .expect("disabled");
    assert!(moved.ends_with(slapd::DISABLED_DN), "{moved}");
    let entries = listed(&directory).await;
    assert!(!entries[&anchor].enabled);
    let back = directory
        .apply(&Change::Enable {
            id: moved,
            anchor: anchor.clone(),
        })
        .await
        .expect("enabled");
    assert_eq!(back, dn);
    assert!(listed(&directory).await[&anchor].enabled);
}

#[tokio::test]
async fn entries_without_our_anchor_are_never_modified() {
    let server = Slapd::start().await.expect("slapd starts");
    let directory = LdapDirectory::connect(config(&server, lock()))
        .await
        .expect("binds");
    // A hand-made entry (no employeeNumber) and one with someone else's anchor.
    let mut admin = admin(&server).await;
    let hand_made = format!("uid=hand.made,{}", slapd::PEOPLE_DN);
    let attrs = |uid: &str| {
        vec![
            (
                "objectClass".to_owned(),
                ["top", "person", "organizationalPerson", "inetOrgPerson"]
                    .map(String::from)
                    .into_iter()
                    .collect(),
            ),
            ("uid".to_owned(), [uid.to_owned()].into_iter().collect()),
            (
                "cn".to_owned(),
                ["Hand Made".to_owned()].into_iter().collect(),
            ),
            ("sn".to_owned(), ["Made".to_owned()].into_iter().collect()),
        ]
    };
    admin
        .add(&hand_made, attrs("hand.made"))
        .await
        .expect("add")
        .success()
        .expect("added");
    let read = |admin: &mut ldap3::Ldap| {
        let mut admin = admin.clone();
        let dn = hand_made.clone();
        async move {
            let (entries, _) = admin
                .search(&dn, ldap3::Scope::Base, "(objectClass=*)", vec!["*", "+"])
                .await
                .expect("search")
                .success()
                .expect("found");
            ldap3::SearchEntry::construct(entries.into_iter().next().expect("the entry")).attrs
        }
    };
    let before = read(&mut admin).await;
    for change in [
        Change::Update {
            id: hand_made.clone(),
            anchor: "abcdefghjkmn".into(),
            set: BTreeMap::from([("cn".into(), vec!["Taken Over".into()])]),
        },
        Change::Disable {
            id: hand_made.clone(),
            anchor: "abcdefghjkmn".into(),
        },
        Change::Rename {
            id: hand_made.clone(),
            anchor: "abcdefghjkmn".into(),
            new_rdn_value: "x".into(),
        },
        Change::Delete {
            id: hand_made.clone(),
            anchor: "abcdefghjkmn".into(),
        },
    ] {
        let error = directory.apply(&change).await.expect_err("refused");
        assert_eq!(
            error.reason(),
            "EntryNotOwned",
            "{} → {error}",
            change.action()
        );
    }
    let after = read(&mut admin).await;
    assert_eq!(
        before, after,
        "every attribute, operational ones included (modifyTimestamp, entryCSN), is unchanged"
    );
    assert!(
        listed(&directory).await.is_empty(),
        "unowned entries are not listed as managed"
    );
    let unowned: Vec<Entry> = directory
        .unowned()
        .try_collect()
        .await
        .expect("unowned entries are listed");
    assert_eq!(unowned.len(), 1, "the hand-made entry, with its attributes");
    assert_eq!(unowned[0].id, hand_made);
    assert_eq!(unowned[0].anchor, "");
    assert_eq!(unowned[0].attributes["uid"], ["hand.made"]);
}

#[tokio::test]
async fn a_dropped_connection_is_reopened_and_the_operation_retried() {
    let mut server = Slapd::start().await.expect("slapd starts");
    let directory = LdapDirectory::connect(config(&server, lock()))
        .await
        .expect("binds");
    let change = creates(1).remove(0);
    let dn = directory.apply(&change).await.expect("created");
    server.restart().await.expect("slapd restarts");
    let updated = directory
        .apply(&Change::Update {
            id: dn.clone(),
            anchor: change.anchor().to_owned(),
            set: BTreeMap::from([("title".into(), vec!["After the restart".into()])]),
        })
        .await
        .expect("the update reconnects and succeeds");
    assert_eq!(updated, dn);
    directory.check().await.expect("the new connection works");
    let entry = listed(&directory)
        .await
        .remove(change.anchor())
        .expect("listed");
    assert_eq!(entry.attributes["title"], ["After the restart"]);
}

#[tokio::test]
async fn a_schema_violation_is_reported_for_that_person_only() {
    let server = Slapd::start().await.expect("slapd starts");
    let directory = LdapDirectory::connect(config(&server, lock()))
        .await
        .expect("binds");
    let mut changes = creates(3);
    if let Change::Create { attributes, .. } = &mut changes[1] {
        attributes.insert("shoeSize".into(), vec!["44".into()]);
    }
    let results: Vec<_> =
        futures::future::join_all(changes.iter().map(|c| directory.apply(c))).await;
    assert!(
        results[0].is_ok() && results[2].is_ok(),
        "the others continue"
    );
    let error = results[1].as_ref().expect_err("undefined attribute");
    assert_eq!(
        (error.reason(), error.is_per_entry()),
        ("SchemaViolation", true),
        "{error}"
    );
    assert_eq!(listed(&directory).await.len(), 2);
}

#[tokio::test]
async fn a_wrong_password_is_a_bind_error_that_names_the_dn_but_not_the_password() {
    let server = Slapd::start().await.expect("slapd starts");
    let mut bad = config(&server, lock());
    bad.bind_password = SecretString::from("not-the-password".to_owned());
    let error = LdapDirectory::connect(bad).await.expect_err("refused");
    let text = error.to_string();
    assert_eq!(error.reason(), "BindFailed");
    assert!(
        text.contains(slapd::ADMIN_DN) && !text.contains("not-the-password"),
        "{text}"
    );
}

#[tokio::test]
async fn ldaps_and_starttls_trust_the_configured_ca_and_a_wrong_ca_fails_clearly() {
    let server = Slapd::start_with_tls()
        .await
        .expect("slapd with TLS starts");
    let ca = server.ca_pem.clone().expect("a test CA");
    let ldaps = server.ldaps_url().expect("an ldaps URL");
    let mut people = creates(2);
    for (url, start_tls) in [(ldaps.clone(), false), (server.url(), true)] {
        let mut tls = config(&server, lock());
        tls.url = url.clone();
        tls.start_tls = start_tls;
        tls.ca_pem = Some(ca.clone());
        let directory = LdapDirectory::connect(tls)
            .await
            .unwrap_or_else(|e| panic!("{url} starttls={start_tls}: {e:?}"));
        directory.check().await.expect("reachable over TLS");
        directory
            .apply(&people.remove(0))
            .await
            .expect("writes over TLS");
    }
    // A CA that did not sign the server's certificate: refused, and the error says why.
    let other = peoplesync::controlplane::TestPki::issue("someone else").expect("another CA");
    for (url, start_tls) in [(ldaps, false), (server.url(), true)] {
        let mut wrong = config(&server, lock());
        wrong.url = url.clone();
        wrong.start_tls = start_tls;
        wrong.ca_pem = Some(other.ca_pem.clone());
        let error = LdapDirectory::connect(wrong)
            .await
            .expect_err("untrusted certificate");
        let chain = peoplesync::cli::report(&error);
        assert_eq!(error.reason(), "DirectoryUnreachable", "{chain}");
        assert!(
            chain.to_lowercase().contains("certificate") || chain.contains("UnknownIssuer"),
            "{url}: {chain}"
        );
    }
    let mut garbage = config(&server, lock());
    garbage.ca_pem = Some("not a certificate".into());
    assert_eq!(
        LdapDirectory::connect(garbage)
            .await
            .expect_err("bad CA")
            .reason(),
        "InvalidCa"
    );
}

#[tokio::test]
async fn org_units_become_groups_with_exact_members() {
    use peoplesync::directory::GroupChange;
    use std::collections::BTreeSet;
    let server = Slapd::start().await.expect("slapd starts");
    let directory = LdapDirectory::connect(config(&server, lock()))
        .await
        .expect("binds");
    let mut dns = Vec::new();
    for change in creates(4) {
        dns.push(directory.apply(&change).await.expect("created"));
    }
    let members = |picks: &[usize]| {
        picks
            .iter()
            .map(|&i| dns[i].clone())
            .collect::<BTreeSet<String>>()
    };
    let engineering = directory
        .apply_group(&GroupChange::Create {
            anchor: "org_unit_eng.a.b".into(),
            name: "Engineering".into(),
            members: members(&[0, 1, 2]),
        })
        .await
        .expect("group created");
    let empty = directory
        .apply_group(&GroupChange::Create {
            anchor: "org_unit_new.a.b".into(),
            name: "New Team".into(),
            members: BTreeSet::new(),
        })
        .await
        .expect("an empty group is allowed");
    let groups: Vec<_> = directory
        .groups()
        .try_collect()
        .await
        .expect("groups listed");
    assert_eq!(groups.len(), 2);
    let eng = groups
        .iter()
        .find(|g| g.anchor == "org_unit_eng.a.b")
        .expect("engineering");
    assert_eq!(eng.members, members(&[0, 1, 2]));
    assert!(
        groups.iter().any(|g| g.id == empty && g.members.is_empty()),
        "the empty DN placeholder is not a member"
    );

    // Exact membership: someone leaves, someone joins.
    directory
        .apply_group(&GroupChange::SetMembers {
            id: engineering.clone(),
            anchor: "org_unit_eng.a.b".into(),
            members: members(&[1, 3]),
        })
        .await
        .expect("members set");
    let renamed = directory
        .apply_group(&GroupChange::Rename {
            id: engineering,
            anchor: "org_unit_eng.a.b".into(),
            name: "Engineering & Data".into(),
        })
        .await
        .expect("renamed");
    let groups: Vec<_> = directory
        .groups()
        .try_collect()
        .await
        .expect("groups listed");
    let eng = groups
        .iter()
        .find(|g| g.anchor == "org_unit_eng.a.b")
        .expect("engineering");
    assert_eq!(
        (eng.id.as_str(), eng.name.as_str()),
        (renamed.as_str(), "Engineering & Data")
    );
    assert_eq!(eng.members, members(&[1, 3]));

    // A hand-made group is never touched; ours can be deleted.
    let mut admin = admin(&server).await;
    let theirs = format!("cn=Admins,{}", slapd::GROUPS_DN);
    admin
        .add(
            &theirs,
            vec![
                (
                    "objectClass".to_owned(),
                    ["top".to_owned(), "groupOfNames".to_owned()]
                        .into_iter()
                        .collect(),
                ),
                ("member".to_owned(), [dns[0].clone()].into_iter().collect()),
            ],
        )
        .await
        .expect("add")
        .success()
        .expect("added");
    let error = directory
        .apply_group(&GroupChange::SetMembers {
            id: theirs.clone(),
            anchor: "org_unit_eng.a.b".into(),
            members: BTreeSet::new(),
        })
        .await
        .expect_err("not ours");
    assert_eq!(error.reason(), "EntryNotOwned");
    directory
        .apply_group(&GroupChange::Delete {
            id: empty,
            anchor: "org_unit_new.a.b".into(),
        })
        .await
        .expect("deleted");
    let groups: Vec<_> = directory
        .groups()
        .try_collect()
        .await
        .expect("groups listed");
    assert_eq!(groups.len(), 1, "ours only, and the deleted one is gone");
}
