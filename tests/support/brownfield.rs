//! A brownfield directory (issue #29): a people subtree full of accounts PeopleSync did not
//! make, whose anchor attribute holds payroll numbers (many ADs fill `employeeID` from payroll),
//! some of them matching HR people by mail. The controller, on the test control plane, must
//! plan their adoption in a dry run, then adopt exactly those and leave every other account
//! byte for byte as it was, and never deprovision one.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};
use ldap3::{Ldap, Scope, SearchEntry};
use peoplesync::crd::PeopleSync;
use peoplesync::source::Person;
use peoplesync::source::hollyhr::model::Lifecycle;
use peoplesync_sandbox::{self as sandbox, DEFAULT_API_KEY, SandboxConfig};
use serde_json::{Value, json};

/// Accounts made before PeopleSync, and how many of them match an HR person by mail.
pub const ACCOUNTS: usize = 300;
pub const MATCHING: usize = 40;
/// People in the HR tenant (enough to find [`MATCHING`] active ones with a mail).
const PEOPLE: usize = 80;
/// A seed of its own: the AD test shares its domain with other tests, and account names and
/// UPNs are unique domain-wide.
const SEED: u64 = 2929;

/// The directory under test, as the test's admin sees it.
pub struct Brownfield {
    pub admin: Ldap,
    pub people_dn: String,
    /// Active Directory (`user` objects, `employeeID`, `uSNChanged`) or an `inetOrgPerson`
    /// directory (`employeeNumber`, `entryCSN`).
    pub ad: bool,
    /// The PeopleSync's `target.ldap` (its bind password in the Secret `ldap`, key `password`,
    /// and a CA in key `ca.crt` when it names one).
    pub target: Value,
    /// The Secret `ldap`'s data.
    pub secret: Value,
}

impl Brownfield {
    fn anchor(&self) -> &'static str {
        if self.ad {
            "employeeID"
        } else {
            "employeeNumber"
        }
    }

    /// The attributes a snapshot reads: every user attribute and the change counter.
    fn read_attributes(&self) -> Vec<&'static str> {
        if self.ad {
            vec!["*", "uSNChanged"]
        } else {
            vec!["*", "entryCSN", "modifyTimestamp"]
        }
    }

    /// Adds the accounts: `legacy-<n>`, payroll number `P<100000 + n>` in the anchor
    /// attribute, a sales category, and the mails of `matching` for the first of them.
    async fn seed(&mut self, matching: &[&Person]) -> Vec<String> {
        let mut dns = Vec::new();
        for n in 0..ACCOUNTS {
            let name = format!("legacy-{n:03}");
            let mail = match matching.get(n) {
                Some(person) => person.work_email.clone().expect("a mail"),
                None => format!("{name}@legacy.example.com"),
            };
            let set = |v: &str| HashSet::from([v.to_owned()]);
            let (dn, mut attrs) = if self.ad {
                let dn = format!("CN=Legacy {n:03},{}", self.people_dn);
                let attrs: Vec<(String, HashSet<String>)> = vec![
                    (
                        "objectClass".into(),
                        ["top", "person", "organizationalPerson", "user"]
                            .map(String::from)
                            .into(),
                    ),
                    ("cn".into(), set(&format!("Legacy {n:03}"))),
                    ("sAMAccountName".into(), set(&name)),
                    // A normal account, disabled, without a password (as AD takes it).
                    ("userAccountControl".into(), set("546")),
                ];
                (dn, attrs)
            } else {
                let dn = format!("uid={name},{}", self.people_dn);
                let attrs: Vec<(String, HashSet<String>)> = vec![
                    (
                        "objectClass".into(),
                        ["top", "person", "organizationalPerson", "inetOrgPerson"]
                            .map(String::from)
                            .into(),
                    ),
                    ("uid".into(), set(&name)),
                    ("cn".into(), set(&format!("Legacy {n:03}"))),
                ];
                (dn, attrs)
            };
            attrs.push(("sn".into(), set(&format!("Legacy{n:03}"))));
            attrs.push(("mail".into(), set(&mail)));
            attrs.push((self.anchor().into(), set(&format!("P{}", 100_000 + n))));
            attrs.push(("businessCategory".into(), set("Sales")));
            self.admin
                .add(&dn, attrs)
                .await
                .expect("add")
                .success()
                .unwrap_or_else(|e| panic!("{dn} added: {e}"));
            dns.push(dn.to_lowercase());
        }
        dns
    }

    /// Every entry under the people DN: lower-cased DN → attribute (lower case) → values
    /// (sorted).
    pub async fn snapshot(&mut self) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
        let (entries, _) = self
            .admin
            .search(
                &self.people_dn,
                Scope::Subtree,
                "(objectClass=person)",
                self.read_attributes(),
            )
            .await
            .expect("search")
            .success()
            .expect("searched");
        entries
            .into_iter()
            .map(SearchEntry::construct)
            .map(|entry| {
                let mut attrs: BTreeMap<String, Vec<String>> = entry
                    .attrs
                    .into_iter()
                    .map(|(k, mut v)| {
                        v.sort();
                        (k.to_lowercase(), v)
                    })
                    .collect();
                for (k, v) in entry.bin_attrs {
                    attrs.insert(
                        k.to_lowercase(),
                        v.into_iter().map(|b| format!("{b:?}")).collect(),
                    );
                }
                (entry.dn.to_lowercase(), attrs)
            })
            .collect()
    }
}

/// The people a sandbox with [`PEOPLE`] and [`SEED`] serves, and the first [`MATCHING`] active
/// ones with a mail (an adoption takes only a person to be provisioned).
fn people() -> (Vec<Person>, Vec<Person>) {
    let people = sandbox::generate_tenant(PEOPLE, SEED);
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let matching: Vec<Person> = people
        .iter()
        .filter(|p| p.lifecycle(today) == Lifecycle::Active && p.work_email.is_some())
        .take(MATCHING)
        .cloned()
        .collect();
    assert_eq!(matching.len(), MATCHING, "enough active people");
    (people, matching)
}

/// The status once `ready` holds (bounded).
async fn status_when(
    api: &Api<PeopleSync>,
    what: &str,
    ready: impl Fn(&peoplesync::crd::PeopleSyncStatus) -> bool,
) -> peoplesync::crd::PeopleSyncStatus {
    let started = Instant::now();
    loop {
        let status = api
            .get("corp")
            .await
            .expect("reads")
            .status
            .unwrap_or_default();
        if ready(&status) {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never {what}: {:?}",
            status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The whole trial: seed, dry run, real run, and the checks (see the module docs).
pub async fn contract(mut directory: Brownfield) {
    let (everyone, matching) = people();
    let refs: Vec<&Person> = matching.iter().collect();
    let seeded = directory.seed(&refs).await;
    let before = directory.snapshot().await;
    assert_eq!(before.len(), ACCOUNTS);
    let hollyhr = sandbox::start(SandboxConfig {
        people: PEOPLE,
        seed: SEED,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let plane = super::control_plane().await;
    let client = plane.client().await.expect("client");
    let ns = plane
        .create_namespace("brownfield")
        .await
        .expect("namespace");
    super::secret(&client, &ns, "hollyhr", "apiKey", DEFAULT_API_KEY).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &Default::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "ldap"}, "stringData": directory.secret}),
            )
            .expect("a Secret"),
        )
        .await
        .expect("created");
    super::create(
        &client,
        &ns,
        json!({
            "apiVersion": "peoplesync.dev/v1alpha1",
            "kind": "PeopleSync",
            "metadata": {"name": "corp"},
            "spec": {
                "source": {"hollyhr": {"baseUrl": hollyhr.base_url(), "apiKeySecretRef": {"name": "hollyhr", "key": "apiKey"}}},
                "target": {"ldap": directory.target},
                "adoption": {"enabled": true, "matchBy": ["mail"]},
                "dryRun": true
            }
        }),
    )
    .await
    .expect("created");
    let controller = super::spawn_controller(&plane, &ns, "brownfield-test").await;
    let api: Api<PeopleSync> = Api::namespaced(client.clone(), &ns);

    // The preview: 40 adoptions, a create for everyone else to be provisioned, nothing
    // deprovisioned, the 260 others counted as left alone; nothing written.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let provisioned = everyone
        .iter()
        .filter(|p| p.lifecycle(today) != Lifecycle::Leaver)
        .count();
    let dry = status_when(&api, "planned", |s| s.last_plan.is_some()).await;
    let plan = dry.last_plan.expect("a plan");
    assert_eq!(
        (
            plan.adopts,
            plan.creates,
            plan.disables,
            plan.deletes,
            plan.held
        ),
        ((MATCHING as u64), (provisioned - MATCHING) as u64, 0, 0, 0),
        "adopts, creates, disables, deletes, held"
    );
    assert_eq!(plan.unmarked, (ACCOUNTS - MATCHING) as u64);
    assert_eq!(
        directory.snapshot().await,
        before,
        "a dry run writes nothing"
    );

    // For real.
    api.patch(
        "corp",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"dryRun": false}})),
    )
    .await
    .expect("patched");
    let synced = status_when(&api, "synced", |s| {
        s.last_sync_time.is_some()
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Synced" && c.status == "True")
    })
    .await;
    let counts = synced.counts.expect("counts");
    assert_eq!(
        (
            counts.adopted,
            counts.unmarked,
            counts.disabled,
            counts.deleted
        ),
        (MATCHING as u64, (ACCOUNTS - MATCHING) as u64, 0, 0),
        "{counts:?}"
    );
    controller.abort();

    let after = directory.snapshot().await;
    let mark = peoplesync::directory::mark_for(&ns, "corp").to_lowercase();
    let anchor = directory.anchor().to_lowercase();
    let holds_mark = |attrs: &BTreeMap<String, Vec<String>>| {
        attrs
            .get("businesscategory")
            .is_some_and(|v| v.iter().any(|v| v.to_lowercase() == mark))
    };
    // The 260 are byte for byte what they were (their change counters included).
    for dn in &seeded[MATCHING..] {
        assert_eq!(after.get(dn), before.get(dn), "{dn} changed");
    }
    // The 40 are the matching people's now, marked, their sales category kept.
    let by_id: BTreeMap<String, &BTreeMap<String, Vec<String>>> = after
        .values()
        .filter(|attrs| holds_mark(attrs))
        .map(|attrs| (attrs[&anchor][0].clone(), attrs))
        .collect();
    for (n, person) in matching.iter().enumerate() {
        let attrs = by_id
            .get(&person.id)
            .unwrap_or_else(|| panic!("{} was adopted", person.id));
        assert_eq!(
            attrs["mail"],
            [person.work_email.clone().expect("a mail")],
            "legacy-{n:03} is {}",
            person.id
        );
        assert!(
            attrs["businesscategory"].iter().any(|v| v == "Sales"),
            "{attrs:?}"
        );
    }
    // Everyone to be provisioned has exactly one marked entry; nothing else carries the mark.
    assert_eq!(by_id.len(), provisioned);
    assert_eq!(
        after.values().filter(|attrs| holds_mark(attrs)).count(),
        provisioned
    );
    assert_eq!(after.len(), ACCOUNTS + provisioned - MATCHING);
}
