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
use peoplesync::samba::{self, SambaDc};
use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};
use peoplesync::sync::engine::{self, CycleKind, Settings, SyncState};
use peoplesync_sandbox::{self as sandbox, DEFAULT_API_KEY, SandboxConfig};
use secrecy::SecretString;
use serde_json::json;

mod support;

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

/// A HollyHR sandbox of `people` with its own seed (accounts are unique domain-wide and the
/// tests share one DC, so each test syncs people of its own) and a client for it.
async fn hollyhr(people: usize, seed: u64) -> (peoplesync_sandbox::SandboxHandle, HollyHrClient) {
    let sandbox = sandbox::start(SandboxConfig {
        people,
        seed,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let client = HollyHrClient::new(
        ClientConfig::new(&sandbox.base_url(), SecretString::from(DEFAULT_API_KEY))
            .expect("a client config"),
    )
    .expect("a client");
    (sandbox, client)
}

/// The LDAP backend with the AD profile's defaults for an OU of the DC, at `url`.
async fn ad_directory(dc: &SambaDc, people: &str, groups: &str, url: &str) -> LdapDirectory {
    let mut target = target(people, groups);
    target.url = url.to_owned();
    LdapDirectory::connect(LdapConfig::from_spec(
        &target,
        SecretString::from(dc.admin_password.clone()),
        Some(dc.ca_pem.clone()),
        peoplesync::directory::standalone_mark(),
    ))
    .await
    .expect("binds")
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
        peoplesync::directory::standalone_mark(),
    ))
    .await;
    assert!(wrong.is_err(), "a wrong password bound");
    let directory = LdapDirectory::connect(LdapConfig::from_spec(
        &target(&people, &groups),
        SecretString::from(dc.admin_password.clone()),
        Some(dc.ca_pem.clone()),
        peoplesync::directory::standalone_mark(),
    ))
    .await
    .expect("binds over LDAPS with the DC's CA");
    directory.check().await.expect("reads the people OU");
}

#[tokio::test]
async fn people_sync_into_samba_ad_and_a_second_full_cycle_writes_nothing() {
    let dc = dc().await;
    let (people, groups) = ou(dc, "Sync").await;
    let (_hollyhr, source) = hollyhr(60, 101).await;
    let directory = ad_directory(dc, &people, &groups, samba::URL).await;
    let settings = ad_settings();
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

/// A department of 3,000 people: more members than AD serves in one answer (`MaxValRange`,
/// 1,500), so reading the group back takes range retrieval.
#[tokio::test]
async fn a_group_larger_than_one_member_range_is_read_whole() {
    use futures::StreamExt as _;
    use peoplesync::directory::{Change, GroupChange};
    const MEMBERS: usize = 3000;
    let dc = dc().await;
    let (people, groups) = ou(dc, "Range").await;
    let config = LdapConfig::from_spec(
        &target(&people, &groups),
        SecretString::from(dc.admin_password.clone()),
        Some(dc.ca_pem.clone()),
        peoplesync::directory::standalone_mark(),
    );
    assert_eq!(config.member_range, Some(1500));
    let directory = LdapDirectory::connect(config).await.expect("binds");
    let dns: Vec<String> = futures::stream::iter(0..MEMBERS)
        .map(|i| {
            let directory = &directory;
            async move {
                let attributes = BTreeMap::from([
                    ("cn".to_owned(), vec![format!("Member {i:04}")]),
                    ("sn".to_owned(), vec![format!("Member{i:04}")]),
                    ("sAMAccountName".to_owned(), vec![format!("member{i:04}")]),
                    (
                        "userPrincipalName".to_owned(),
                        vec![format!("member{i:04}@ps.test")],
                    ),
                ]);
                directory
                    .apply(&Change::Create {
                        anchor: format!("range-{i:04}"),
                        attributes,
                        enabled: true,
                    })
                    .await
                    .unwrap_or_else(|e| panic!("member {i}: {e}"))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let members: std::collections::BTreeSet<String> = dns.into_iter().collect();
    // AD spells the RDN attribute its own way (`CN=`): DNs compare without case.
    let lower = |set: &std::collections::BTreeSet<String>| -> std::collections::BTreeSet<String> {
        set.iter().map(|dn| dn.to_lowercase()).collect()
    };
    let id = directory
        .apply_group(&GroupChange::Create {
            anchor: "dept-range".into(),
            name: "Range Department".into(),
            members: members.clone(),
        })
        .await
        .expect("the group is created");

    // A ranged read answers with that range and says where it stopped. (Samba 4.17 serves every
    // value when asked for `member` or `member;range=0-*`, where Windows stops at MaxValRange, so
    // the backend always asks in ranges: the first answer below holds half the members, and
    // reading the group whole takes a second range.)
    let mut admin = dc.admin().await.expect("admin binds");
    let ldap3::SearchResult(found, _) = admin
        .search(
            &id,
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["member;range=0-1499"],
        )
        .await
        .expect("searches");
    let entry = ldap3::SearchEntry::construct(found.into_iter().next().expect("the group"));
    let (name, values) = entry.attrs.iter().next().expect("a member attribute");
    assert_eq!(
        (name.as_str(), values.len()),
        ("member;range=0-1499", 1500),
        "the server answers one range"
    );

    let listed: Vec<peoplesync::directory::Group> =
        directory.groups().try_collect().await.expect("lists");
    assert_eq!(listed.len(), 1);
    let read: std::collections::BTreeSet<String> = listed[0].members.iter().cloned().collect();
    assert_eq!(read.len(), MEMBERS, "every member is read back");
    assert!(
        lower(&read) == lower(&members),
        "the members read back are the ones written"
    );

    // One leaves: the group is rewritten whole and read back whole.
    let mut fewer = members.clone();
    let gone = fewer.pop_first().expect("a member");
    directory
        .apply_group(&GroupChange::SetMembers {
            id: id.clone(),
            anchor: "dept-range".into(),
            members: fewer.clone(),
        })
        .await
        .expect("the members are set");
    let listed: Vec<peoplesync::directory::Group> =
        directory.groups().try_collect().await.expect("lists");
    let read: std::collections::BTreeSet<String> = listed[0].members.iter().cloned().collect();
    assert_eq!(read.len(), MEMBERS - 1);
    assert!(!lower(&read).contains(&gone.to_lowercase()));
}

/// `userAccountControl` and `pwdLastSet` of an account, as an admin reads them.
async fn account_flags(dc: &SambaDc, dn: &str) -> (u32, String) {
    let mut admin = dc.admin().await.expect("admin binds");
    let ldap3::SearchResult(found, _) = admin
        .search(
            dn,
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["userAccountControl", "pwdLastSet"],
        )
        .await
        .expect("searches");
    let entry = ldap3::SearchEntry::construct(found.into_iter().next().expect("the account"));
    (
        entry.attrs["userAccountControl"][0]
            .parse()
            .expect("a number"),
        entry.attrs["pwdLastSet"][0].clone(),
    )
}

/// Whether the DC stores a password for `dn` (read from its database, as root on the DC).
fn has_password(dc: &SambaDc, dn: &str) -> bool {
    let out = std::process::Command::new("ldbsearch")
        .arg("-H")
        .arg(dc.dir().join("private/sam.ldb"))
        .args(["-s", "base", "-b", dn, "unicodePwd"])
        .output()
        .expect("runs ldbsearch (ldb-tools)");
    String::from_utf8_lossy(&out.stdout).contains("unicodePwd::")
}

/// Sets the domain's minimum password length (on the domain object, as Group Policy does;
/// `samba-tool` caps it at 14, the server takes more).
async fn set_min_password_length(dc: &SambaDc, length: u32) {
    let mut admin = dc.admin().await.expect("admin binds");
    admin
        .modify(
            samba::BASE_DN,
            vec![ldap3::Mod::Replace(
                "minPwdLength",
                std::collections::HashSet::from([length.to_string().as_str()]),
            )],
        )
        .await
        .and_then(|r| r.success())
        .expect("the domain's password policy changes");
}

fn person_attributes(sam: &str) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        ("cn".to_owned(), vec![format!("Pass {sam}")]),
        ("sn".to_owned(), vec![sam.to_owned()]),
        ("sAMAccountName".to_owned(), vec![sam.to_owned()]),
        (
            "userPrincipalName".to_owned(),
            vec![format!("{sam}@ps.test")],
        ),
    ])
}

/// The initial-password policies on the real DC: `None` creates an account that awaits an
/// administrator (disabled, no password) and counts as enabled until then; `Random` sets a
/// password that must change at the first logon and enables the account; a password the
/// domain's policy refuses is a per-person error that names it, and nothing is created.
#[tokio::test]
async fn initial_password_policies_on_samba() {
    use peoplesync::directory::ldap::InitialPassword;
    use peoplesync::directory::{Change, DirectoryError as _};
    let dc = dc().await;
    let (people, groups) = ou(dc, "Passwords").await;
    let config = LdapConfig::from_spec(
        &target(&people, &groups),
        SecretString::from(dc.admin_password.clone()),
        Some(dc.ca_pem.clone()),
        peoplesync::directory::standalone_mark(),
    );
    assert_eq!(
        config.initial_password,
        InitialPassword::None,
        "the default"
    );
    let none = LdapDirectory::connect(config.clone()).await.expect("binds");

    // None: created disabled with PASSWD_NOTREQD and no password; listed as enabled.
    let dn = none
        .apply(&Change::Create {
            anchor: "pw-none".into(),
            attributes: person_attributes("pwnone"),
            enabled: true,
        })
        .await
        .expect("created");
    assert_eq!(account_flags(dc, &dn).await, (546, "0".to_owned()));
    assert!(!has_password(dc, &dn));
    let listed: Vec<peoplesync::directory::Entry> =
        none.entries().try_collect().await.expect("lists");
    assert!(
        listed[0].enabled,
        "an account awaiting an admin counts as enabled"
    );
    // Enabling it without a password leaves it awaiting.
    none.apply(&Change::Enable {
        id: dn.clone(),
        anchor: "pw-none".into(),
    })
    .await
    .expect("enable");
    assert_eq!(account_flags(dc, &dn).await.0, 546);
    // An admin sets a password and enables it; from then on only ACCOUNTDISABLE flips.
    let mut admin = dc.admin().await.expect("admin binds");
    let password: Vec<u8> = "\"Admin-Set-Pa55word!\""
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    admin
        .modify(
            &dn,
            vec![
                ldap3::Mod::Replace(
                    b"unicodePwd".to_vec(),
                    std::collections::HashSet::from([password]),
                ),
                ldap3::Mod::Replace(
                    b"userAccountControl".to_vec(),
                    std::collections::HashSet::from([b"512".to_vec()]),
                ),
            ],
        )
        .await
        .and_then(|r| r.success())
        .expect("the admin sets a password");
    none.apply(&Change::Disable {
        id: dn.clone(),
        anchor: "pw-none".into(),
    })
    .await
    .expect("disable");
    assert_eq!(account_flags(dc, &dn).await.0, 514);
    none.apply(&Change::Enable {
        id: dn.clone(),
        anchor: "pw-none".into(),
    })
    .await
    .expect("enable");
    assert_eq!(account_flags(dc, &dn).await.0, 512);

    // Random: enabled, a password stored by the DC, must change at the next logon.
    let random = LdapDirectory::connect(LdapConfig {
        initial_password: InitialPassword::Random,
        ..config.clone()
    })
    .await
    .expect("binds");
    let dn = random
        .apply(&Change::Create {
            anchor: "pw-random".into(),
            attributes: person_attributes("pwrandom"),
            enabled: true,
        })
        .await
        .expect("created with a password");
    assert_eq!(account_flags(dc, &dn).await, (512, "0".to_owned()));
    assert!(has_password(dc, &dn), "the DC holds a password");

    // A policy that refuses the password: a per-person error naming it; nothing created.
    set_min_password_length(dc, 30).await;
    let refused = random
        .apply(&Change::Create {
            anchor: "pw-refused".into(),
            attributes: person_attributes("pwrefused"),
            enabled: true,
        })
        .await;
    set_min_password_length(dc, 7).await;
    let error = refused.expect_err("the policy refuses a 24-character password");
    assert_eq!(error.reason(), "PasswordRefused", "{error}");
    assert!(error.is_per_entry());
    let listed: Vec<peoplesync::directory::Entry> =
        random.entries().try_collect().await.expect("lists");
    assert!(
        listed.iter().all(|e| e.anchor != "pw-refused"),
        "nothing half-written"
    );
}

fn ad_settings() -> Settings {
    support::hr::settings(
        Profile::Ldap(LdapProfile::ActiveDirectory),
        support::hr::OPEN_GUARD,
    )
}

/// The first value of `name` (AD spells attribute names its own way).
fn value(entry: &peoplesync::directory::Entry, name: &str) -> Option<String> {
    peoplesync::plan::attribute_values(&entry.attributes, name).and_then(|v| v.first().cloned())
}

/// An administrator moves one manager's account into a sub-OU and renames another's: the next
/// cycle finds both by their anchor (no second account), renames the second back to its mapped
/// `cn` where it is, and every `manager` reference names the current DN (AD keeps DN-valued
/// links right through moves and renames; PeopleSync must not fight that).
#[tokio::test]
async fn accounts_an_admin_moves_or_renames_keep_their_link_and_their_reports() {
    let dc = dc().await;
    let (people, groups) = ou(dc, "Moves").await;
    let (_hollyhr, source) = hollyhr(40, 102).await;
    let directory = ad_directory(dc, &people, &groups, samba::URL).await;
    let settings = ad_settings();
    let cycle = |state: SyncState| {
        let (source, directory, settings) = (&source, &directory, &settings);
        async move {
            engine::run_cycle(
                source,
                directory,
                settings,
                &state,
                CycleKind::Full,
                None,
                Timestamp::now(),
            )
            .await
            .unwrap_or_else(|e| panic!("a full cycle: {}", peoplesync::cli::report(&e)))
        }
    };
    let first = cycle(SyncState::default()).await;
    assert!(first.failures().is_empty(), "{:?}", first.failures());
    let before: Vec<peoplesync::directory::Entry> =
        directory.entries().try_collect().await.expect("lists");
    // Two managers: accounts other entries name in `manager`.
    let mut managers: Vec<String> = before
        .iter()
        .filter_map(|e| value(e, "manager"))
        .map(|m| m.to_lowercase())
        .collect();
    managers.sort();
    managers.dedup();
    assert!(managers.len() >= 2, "managers: {managers:?}");
    let find = |dn: &str| {
        before
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(dn))
            .expect("a manager's entry")
            .clone()
    };
    let moved = find(&managers[0]);
    let renamed = find(&managers[1]);

    let mut admin = dc.admin().await.expect("admin binds");
    let sub = format!("OU=Moved,{people}");
    admin
        .add(
            &sub,
            vec![
                ("objectClass", ["top", "organizationalUnit"].into()),
                ("ou", ["Moved"].into()),
            ],
        )
        .await
        .and_then(|r| r.success())
        .expect("the sub-OU is added");
    let rdn = |dn: &str| {
        dn.split_once(",OU=")
            .map(|(r, _)| r.to_owned())
            .expect("an RDN")
    };
    admin
        .modifydn(&moved.id, &rdn(&moved.id), true, Some(&sub))
        .await
        .and_then(|r| r.success())
        .expect("the admin moves an account");
    admin
        .modifydn(&renamed.id, "CN=Renamed By Admin", true, None)
        .await
        .and_then(|r| r.success())
        .expect("the admin renames an account");

    let second = cycle(first.state.clone()).await;
    assert!(second.failures().is_empty(), "{:?}", second.failures());
    let counts = second.applied.as_ref().expect("applied").counts.clone();
    assert_eq!(counts.get("create"), None, "no second account: {counts:?}");
    assert_eq!(
        counts.get("rename"),
        Some(&1),
        "the renamed one gets its cn back: {counts:?}"
    );
    let after: Vec<peoplesync::directory::Entry> =
        directory.entries().try_collect().await.expect("lists");
    assert_eq!(after.len(), before.len(), "the same accounts");
    let now = |anchor: &str| {
        after
            .iter()
            .find(|e| e.anchor == anchor)
            .expect("still listed")
            .id
            .clone()
    };
    let moved_now = now(&moved.anchor);
    assert!(
        moved_now.to_lowercase().ends_with(&sub.to_lowercase()),
        "the moved account stays where the admin put it: {moved_now}"
    );
    assert!(now(&renamed.anchor).eq_ignore_ascii_case(&format!("{},{people}", rdn(&renamed.id))));
    // Every report names its manager's current DN.
    for entry in &after {
        let Some(manager) = value(entry, "manager") else {
            continue;
        };
        assert!(
            after.iter().any(|m| m.id.eq_ignore_ascii_case(&manager)),
            "{} names {manager}, which is no current account",
            entry.id
        );
    }
    let reports_of_moved = after
        .iter()
        .filter(|e| value(e, "manager").is_some_and(|m| m.eq_ignore_ascii_case(&moved_now)))
        .count();
    assert!(
        reports_of_moved > 0,
        "the moved manager keeps their reports"
    );

    let third = cycle(second.state.clone()).await;
    let writes: u64 = third
        .applied
        .as_ref()
        .map(|a| a.counts.values().sum())
        .unwrap_or(0);
    assert_eq!(writes, 0, "then nothing: {:?}", third.plan.counts());
}

/// A TCP forwarder to the DC whose connections can all be cut at once (a dropped LDAPS
/// connection, as a load balancer or a DC restart drops it).
struct Cutter {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    /// Connections accepted so far.
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Cutter {
    async fn start(upstream: &'static str) -> Cutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("an address").port();
        let (cut, watch) = tokio::sync::watch::channel(0u64);
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut watch = watch.clone();
                watch.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.changed() => {}
                    }
                });
            }
        });
        Cutter {
            port,
            cut,
            accepted,
        }
    }

    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

/// Accounts in an OU, as an admin counts them.
async fn count_accounts(dc: &SambaDc, base: &str) -> usize {
    let mut admin = dc.admin().await.expect("admin binds");
    let ldap3::SearchResult(found, _) = admin
        .search(
            base,
            ldap3::Scope::Subtree,
            "(objectClass=user)",
            vec!["1.1"],
        )
        .await
        .expect("searches");
    found.len()
}

/// The LDAPS connection drops in the middle of a full sync: the backend reconnects and retries
/// (an add that had landed before the drop is recognised by its anchor), and what the cycle
/// could not apply the next one does. After convergence the OU holds exactly the
/// accounts a clean sync makes (one per person, none twice), and a further cycle writes nothing.
#[tokio::test]
async fn a_dropped_ldaps_connection_mid_cycle_loses_and_duplicates_nothing() {
    let dc = dc().await;
    let (_hollyhr, source) = hollyhr(200, 103).await;
    let settings = ad_settings();
    let run = |directory: &'static LdapDirectory, state: SyncState| {
        let (source, settings) = (&source, &settings);
        async move {
            engine::run_cycle(
                source,
                directory,
                settings,
                &state,
                CycleKind::Full,
                None,
                Timestamp::now(),
            )
            .await
        }
    };

    // The reference: a clean sync of the same people into an OU of its own.
    let (reference_people, reference_groups) = ou(dc, "CutReference").await;
    let reference: &'static LdapDirectory = Box::leak(Box::new(
        ad_directory(dc, &reference_people, &reference_groups, samba::URL).await,
    ));
    let clean = run(reference, SyncState::default())
        .await
        .expect("a clean sync");
    assert!(clean.failures().is_empty(), "{:?}", clean.failures());
    let expected: std::collections::BTreeSet<(String, bool)> = reference
        .entries()
        .try_collect::<Vec<_>>()
        .await
        .expect("lists")
        .into_iter()
        .map(|e| (e.anchor, e.enabled))
        .collect();

    let cutter = Cutter::start("127.0.0.1:636").await;
    let (people, groups) = ou(dc, "Cut").await;
    let directory: &'static LdapDirectory = Box::leak(Box::new(
        ad_directory(
            dc,
            &people,
            &groups,
            &format!("ldaps://127.0.0.1:{}", cutter.port),
        )
        .await,
    ));
    // Cut every connection once a quarter of the accounts are in.
    let watcher = {
        let people = people.clone();
        let quarter = expected.len() / 4;
        async move {
            while count_accounts(dc, &people).await < quarter {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            cutter.cut();
            cutter
        }
    };
    let (first, cutter) = tokio::join!(run(directory, SyncState::default()), watcher);
    let state = match &first {
        Ok(report) => report.state.clone(),
        Err(_) => SyncState::default(),
    };
    eprintln!(
        "cycle with the cut: {}",
        match &first {
            Ok(report) => format!(
                "{:?}, {:?}",
                report.failures(),
                report.applied.as_ref().map(|a| &a.counts)
            ),
            Err(e) => format!("failed: {}", peoplesync::cli::report(e)),
        }
    );
    assert!(
        cutter.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the backend reconnected after the cut"
    );
    let second = run(directory, state).await.expect("the next cycle runs");
    assert!(second.failures().is_empty(), "{:?}", second.failures());
    let listed: Vec<peoplesync::directory::Entry> =
        directory.entries().try_collect().await.expect("lists");
    let anchors: std::collections::BTreeSet<&str> =
        listed.iter().map(|e| e.anchor.as_str()).collect();
    assert_eq!(anchors.len(), listed.len(), "no person has two accounts");
    assert_eq!(
        count_accounts(dc, &people).await,
        listed.len(),
        "no stray account"
    );
    let got: std::collections::BTreeSet<(String, bool)> =
        listed.into_iter().map(|e| (e.anchor, e.enabled)).collect();
    assert!(got == expected, "the OU holds what a clean sync makes");
    let third = run(directory, second.state.clone()).await.expect("runs");
    let writes: u64 = third
        .applied
        .as_ref()
        .map(|a| a.counts.values().sum())
        .unwrap_or(0);
    assert_eq!(writes, 0, "then nothing: {:?}", third.plan.counts());
    drop(cutter);
}
