//! One contract suite, run unchanged against each directory on a real server (OpenLDAP, 389-ds
//! twice — leavers locked with `nsAccountLock`, and moved to an OU —, Samba AD and scim2-server):
//! plan and apply 500
//! people from a generated organisation, then updates, renames, leavers, returners and deletes,
//! reading the directory back after every cycle and comparing it with what the source says; a
//! final cycle plans zero changes. Each backend also holds an entry PeopleSync does not own,
//! holding the unique value the first person would take: it stays untouched, and the person gets
//! the next candidate.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use peoplesync::crd::LdapProfile;
use peoplesync::directory::Directory;
use peoplesync::directory::ldap::{DisableStrategy, LdapConfig, LdapDirectory};
use peoplesync::directory::scim::{ScimConfig, ScimDirectory};
use peoplesync::ds389::Ds389;
use peoplesync::plan::mapping::Profile;
use peoplesync::plan::{self, Coverage, Deprovision, Guard, Inputs, Mapping, Plan, Policy};
use peoplesync::samba::{self, SambaDc};
use peoplesync::scim_server::ScimServer;
use peoplesync::slapd::{self, Slapd};
use peoplesync::source::hollyhr::model::{Lifecycle, OrgUnitType};
use peoplesync::source::{OrgUnit, Person};
use peoplesync::sync::{Applied, DirectorySnapshot, apply};
use peoplesync_sandbox as sandbox;
use secrecy::SecretString;

/// A backend under contract, with the state a controller would keep between cycles.
struct Contract<D: Directory> {
    directory: D,
    mapping: Mapping,
    policy: Policy,
    units: Vec<OrgUnit>,
    disabled_since: BTreeMap<String, Timestamp>,
    /// Ids of entries PeopleSync does not own, which every cycle must leave as they are.
    unowned: Vec<String>,
}

impl<D: Directory> Contract<D> {
    fn new(directory: D, mapping: Mapping) -> Self {
        let policy = Policy {
            // The suite deprovisions more than the default guard allows on purpose.
            guard: Guard {
                max_count: 1000,
                max_percent: 100,
            },
            directory: directory.traits(),
            ..Policy::default()
        };
        Self {
            directory,
            mapping,
            policy,
            units: Vec::new(),
            disabled_since: BTreeMap::new(),
            unowned: Vec::new(),
        }
    }

    fn with_unowned(mut self, id: String) -> Self {
        self.unowned.push(id);
        self
    }

    /// The unowned entries the suite watches, as the directory lists them.
    async fn watched(&self) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
        let snapshot = self.snapshot().await;
        let watched: BTreeMap<_, _> = snapshot
            .unowned
            .into_iter()
            .filter(|e| self.unowned.iter().any(|id| id.eq_ignore_ascii_case(&e.id)))
            .map(|e| (e.id.to_lowercase(), e.attributes))
            .collect();
        assert_eq!(
            watched.len(),
            self.unowned.len(),
            "the unowned entries are listed"
        );
        watched
    }

    async fn snapshot(&self) -> DirectorySnapshot {
        self.directory.check().await.expect("the directory answers");
        DirectorySnapshot::read(&self.directory, &self.mapping, self.policy.directory.groups)
            .await
            .expect("the directory lists")
    }

    async fn plan(&self, people: &[Person]) -> (Plan, DirectorySnapshot) {
        let snapshot = self.snapshot().await;
        let plan = plan::plan(&Inputs {
            people,
            org_units: Some(&self.units),
            entries: &snapshot.entries,
            groups: &snapshot.groups,
            unowned: &snapshot.unowned,
            reserved: &snapshot.reserved,
            mapping: &self.mapping,
            policy: &self.policy,
            coverage: Coverage::Full,
            now: Timestamp::now(),
            disabled_since: &self.disabled_since,
            approved: None,
        });
        (plan, snapshot)
    }

    /// One full cycle; returns what it applied, after checking nothing failed.
    async fn cycle(&self, people: &[Person]) -> Applied {
        let (plan, snapshot) = self.plan(people).await;
        assert!(plan.failures.is_empty(), "{:?}", plan.failures);
        assert!(plan.held.is_empty());
        let mut ids = snapshot.ids();
        let applied = apply(&self.directory, &plan, &mut ids, 8)
            .await
            .expect("no directory-wide error");
        assert!(applied.failures.is_empty(), "{:?}", applied.failures);
        applied
    }

    /// Reads the directory back and compares every managed entry and group with the source.
    async fn verify(&self, people: &[Person], deleted: &BTreeSet<String>) {
        let snapshot = self.snapshot().await;
        let entries: BTreeMap<&str, _> = snapshot
            .entries
            .iter()
            .map(|e| (e.anchor.as_str(), e))
            .collect();
        let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let value = |attributes: &BTreeMap<String, Vec<String>>, name: &str| {
            attributes
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        for person in people {
            let Some(entry) = entries.get(person.id.as_str()) else {
                assert!(deleted.contains(&person.id), "{} has no entry", person.id);
                continue;
            };
            assert!(
                !deleted.contains(&person.id),
                "{} was not deleted",
                person.id
            );
            let active = person.lifecycle(today) == Lifecycle::Active;
            assert_eq!(entry.enabled, active, "{} enabled", person.id);
            if !active {
                continue;
            }
            let expected = self
                .mapping
                .map(person, Some(&entry.attributes), &|_, _| false)
                .expect("maps");
            for name in self.mapping.rules().keys() {
                assert_eq!(
                    value(&entry.attributes, name),
                    expected.attributes.get(name).cloned().unwrap_or_default(),
                    "{} {name}",
                    person.id
                );
            }
            let manager_attribute = self
                .policy
                .directory
                .manager_attribute
                .as_deref()
                .expect("both backends reference managers");
            let manager = person
                .manager
                .as_ref()
                .and_then(|m| entries.get(m.id.as_str()))
                .map(|m| vec![m.id.clone()])
                .unwrap_or_default();
            assert_eq!(
                value(&entry.attributes, manager_attribute),
                manager,
                "{} manager",
                person.id
            );
        }
        assert_eq!(
            entries.len(),
            people.len() - deleted.len(),
            "no other managed entries"
        );

        let groups: BTreeMap<&str, _> = snapshot
            .groups
            .iter()
            .map(|g| (g.anchor.as_str(), g))
            .collect();
        let departments: Vec<&OrgUnit> = self
            .units
            .iter()
            .filter(|u| u.kind == OrgUnitType::Department)
            .collect();
        assert_eq!(groups.len(), departments.len(), "one group per department");
        for unit in departments {
            let group = groups
                .get(unit.id.as_str())
                .expect("a group per department");
            // Cut to the directory's limit (AD: 64 characters), trailing spaces dropped.
            let expected = match self.policy.directory.group_name_max {
                Some(max) if unit.name.chars().count() > max => unit
                    .name
                    .chars()
                    .take(max)
                    .collect::<String>()
                    .trim_end()
                    .to_owned(),
                _ => unit.name.clone(),
            };
            assert_eq!(group.name, expected);
            let members: BTreeSet<String> = people
                .iter()
                .filter(|p| p.department.as_ref().is_some_and(|d| d.id == unit.id))
                .filter_map(|p| entries.get(p.id.as_str()))
                .filter(|e| e.enabled)
                .map(|e| e.id.clone())
                .collect();
            let listed: BTreeSet<String> = group.members.iter().cloned().collect();
            assert_eq!(listed, members, "members of {}", unit.id);
        }
    }

    async fn run(mut self, people: Vec<Person>, units: Vec<OrgUnit>) {
        self.units = units;
        let mut people = people;
        let mut deleted = BTreeSet::new();
        let untouched = self.watched().await;
        let yesterday = Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .yesterday()
            .expect("a date");

        let applied = self.cycle(&people).await;
        assert_eq!(applied.counts["create"], 500);
        self.verify(&people, &deleted).await;
        let (again, _) = self.plan(&people).await;
        assert!(again.is_empty(), "{:?}", again.counts());
        let snapshot = self.snapshot().await;
        let manager_attribute = self.policy.directory.manager_attribute.clone();
        let with_manager = snapshot
            .entries
            .iter()
            .filter(|e| {
                manager_attribute
                    .as_ref()
                    .is_some_and(|m| e.attributes.keys().any(|k| k.eq_ignore_ascii_case(m)))
            })
            .count();
        assert!(
            with_manager > 400,
            "most people have a manager: {with_manager}"
        );
        assert!(
            snapshot
                .groups
                .iter()
                .filter(|g| g.members.len() > 5)
                .count()
                > 3,
            "departments have members"
        );

        // 50 updates, 5 renames (a new surname and mailbox), 10 leavers.
        for person in &mut people[..50] {
            person.job_title = Some(format!(
                "Senior {}",
                person.job_title.clone().unwrap_or_default()
            ));
        }
        for (i, person) in people[50..55].iter_mut().enumerate() {
            let first = person.first_name.clone().unwrap_or_default();
            person.last_name = Some(format!("Newname{i}"));
            person.display_name = format!("{first} Newname{i}");
            let given = person
                .work_email
                .as_deref()
                .and_then(|e| e.split('.').next())
                .unwrap_or("someone")
                .to_owned();
            person.work_email = Some(format!("{given}.newname{i}@example.com"));
        }
        for person in &mut people[55..65] {
            person.end_date = Some(yesterday);
        }
        let applied = self.cycle(&people).await;
        assert_eq!(applied.counts.get("create"), None);
        assert_eq!(applied.counts["update"], 55);
        assert_eq!(applied.counts["rename"], 5);
        assert_eq!(applied.counts["disable"], 10);
        self.verify(&people, &deleted).await;

        // Two leavers come back.
        for person in &mut people[55..57] {
            person.end_date = None;
        }
        let applied = self.cycle(&people).await;
        assert_eq!(applied.counts["enable"], 2);
        assert_eq!(applied.counts.get("disable"), None);
        self.verify(&people, &deleted).await;

        // Disable-then-delete: five of the disabled leavers are past the delay.
        let delay = SignedDuration::from_hours(24 * 30);
        self.policy.deprovision = Deprovision::DisableThenDelete { delay };
        let long_ago = Timestamp::now() - SignedDuration::from_hours(24 * 31);
        for person in &people[57..62] {
            self.disabled_since.insert(person.id.clone(), long_ago);
            deleted.insert(person.id.clone());
        }
        for person in &people[62..65] {
            self.disabled_since
                .insert(person.id.clone(), Timestamp::now());
        }
        let applied = self.cycle(&people).await;
        assert_eq!(applied.counts["delete"], 5);
        self.verify(&people, &deleted).await;

        let (last, _) = self.plan(&people).await;
        assert!(
            last.is_empty() && last.held.is_empty() && last.failures.is_empty(),
            "a final cycle changes nothing: {:?}",
            last.counts()
        );
        assert_eq!(
            self.watched().await,
            untouched,
            "unowned entries are untouched"
        );
    }
}

/// 500 active people with managers and departments (a generated organisation, leavers and future
/// starters made active so the suite controls every lifecycle change).
fn organisation() -> (Vec<Person>, Vec<OrgUnit>) {
    let (mut people, units) = sandbox::generate_organisation(500, 4);
    for person in &mut people {
        person.end_date = None;
        person.start_date = Some(jiff::civil::date(2020, 1, 1));
    }
    people.sort_by(|a, b| a.id.cmp(&b.id));
    (people, units)
}

/// The value of `attribute` the first person would get on an empty directory.
fn first_choice(mapping: &Mapping, people: &[Person], attribute: &str) -> String {
    mapping
        .map(&people[0], None, &|_, _| false)
        .expect("maps")
        .attributes[attribute][0]
        .clone()
}

/// An inetOrgPerson without an anchor holding `uid` (a hand-made account).
async fn hand_made_inet_org_person(admin: &mut ldap3::Ldap, people_dn: &str, uid: &str) -> String {
    let dn = format!("uid={uid},{people_dn}");
    admin
        .add(
            &dn,
            vec![
                (
                    "objectClass",
                    ["top", "person", "organizationalPerson", "inetOrgPerson"].into(),
                ),
                ("uid", [uid].into()),
                ("cn", ["Hand Made"].into()),
                ("sn", ["Made"].into()),
            ],
        )
        .await
        .and_then(|r| r.success())
        .expect("the hand-made entry is added");
    dn
}

/// The suite on an `inetOrgPerson` server (OpenLDAP, 389-ds) with `profile`'s mapping, after an
/// admin added a hand-made entry holding the first person's `uid`.
async fn inet_org_person_contract(
    directory: LdapDirectory,
    profile: LdapProfile,
    admin: &mut ldap3::Ldap,
    people_dn: &str,
) {
    let mapping = Mapping::new(Profile::Ldap(profile), &BTreeMap::new()).expect("compiles");
    let (people, units) = organisation();
    let uid = first_choice(&mapping, &people, "uid");
    let unowned = hand_made_inet_org_person(admin, people_dn, &uid).await;
    Contract::new(directory, mapping)
        .with_unowned(unowned)
        .run(people, units)
        .await;
}

#[tokio::test]
async fn the_directory_contract_holds_on_openldap() {
    let server = Slapd::start().await.expect("slapd starts");
    let directory = LdapDirectory::connect(server.ldap_config())
        .await
        .expect("binds");
    let mut admin = server.admin().await.expect("admin binds");
    inet_org_person_contract(
        directory,
        LdapProfile::OpenLdap,
        &mut admin,
        slapd::PEOPLE_DN,
    )
    .await;
}

#[tokio::test]
async fn the_directory_contract_holds_on_389_ds() {
    let server = Ds389::shared()
        .await
        .unwrap_or_else(|error| panic!("389-ds starts: {error}"));
    let ou = server.ou("contract").await.expect("the OUs are added");
    let config = server.ldap_config(&ou);
    assert_eq!(
        config.disable,
        DisableStrategy::SetAttribute {
            attribute: "nsAccountLock".into(),
            value: "TRUE".into()
        },
        "the 389ds profile disables with nsAccountLock"
    );
    // Pages smaller than the OU, so paged results are exercised.
    let directory = LdapDirectory::connect(LdapConfig {
        page_size: 100,
        ..config
    })
    .await
    .expect("binds");
    let mut admin = server.admin().await.expect("admin binds");
    inet_org_person_contract(directory, LdapProfile::Ds389, &mut admin, &ou.people).await;
}

#[tokio::test]
async fn the_directory_contract_holds_on_samba_ad() {
    let dc = SambaDc::shared()
        .await
        .unwrap_or_else(|error| panic!("the Samba AD DC starts: {error}"));
    let (people_dn, groups_dn) = dc.ou("Contract").await.expect("the OUs are added");
    let config = dc.ldap_config(&people_dn, &groups_dn);
    let directory = LdapDirectory::connect(LdapConfig {
        page_size: 100,
        ..config
    })
    .await
    .expect("binds over LDAPS");
    let mapping = Mapping::new(
        Profile::Ldap(LdapProfile::ActiveDirectory),
        &BTreeMap::new(),
    )
    .expect("compiles");
    let (people, units) = organisation();
    // A hand-made account in the people OU holding the first person's sAMAccountName.
    let sam = first_choice(&mapping, &people, "sAMAccountName");
    let unowned = format!("CN=Hand Made,{people_dn}");
    let mut admin = dc.admin().await.expect("admin binds");
    admin
        .add(
            &unowned,
            vec![
                (
                    "objectClass",
                    ["top", "person", "organizationalPerson", "user"].into(),
                ),
                ("sAMAccountName", [sam.as_str()].into()),
                ("userAccountControl", ["514"].into()),
            ],
        )
        .await
        .and_then(|r| r.success())
        .expect("the hand-made account is added");
    // Accounts elsewhere in the domain: sAMAccountName and userPrincipalName are unique in the
    // whole domain, so the second person's account name and the third's e-mail (as UPN) are taken.
    let sam2 = first_choice(&mapping, &people[1..], "sAMAccountName");
    let upn3 = first_choice(&mapping, &people[2..], "userPrincipalName");
    let elsewhere = format!("CN=Elsewhere Account,CN=Users,{}", samba::BASE_DN);
    admin
        .add(
            &elsewhere,
            vec![
                (
                    "objectClass",
                    ["top", "person", "organizationalPerson", "user"].into(),
                ),
                ("sAMAccountName", [sam2.as_str()].into()),
                ("userPrincipalName", [upn3.as_str()].into()),
                ("userAccountControl", ["514"].into()),
            ],
        )
        .await
        .and_then(|r| r.success())
        .expect("the account elsewhere is added");
    Contract::new(directory, mapping)
        .with_unowned(unowned)
        .run(people, units)
        .await;
    for (attribute, value) in [
        ("sAMAccountName", &sam),
        ("sAMAccountName", &sam2),
        ("userPrincipalName", &upn3),
    ] {
        let ldap3::SearchResult(found, _) = admin
            .search(
                samba::BASE_DN,
                ldap3::Scope::Subtree,
                &format!("({attribute}={value})"),
                vec!["1.1"],
            )
            .await
            .expect("searches");
        assert_eq!(
            found.len(),
            1,
            "{attribute}={value} is held by the hand-made account only"
        );
    }
}

#[tokio::test]
async fn the_directory_contract_holds_on_scim2_server() {
    let server = ScimServer::start().await.expect("scim2-server starts");
    let directory = ScimDirectory::connect(ScimConfig::new(
        &server.base_url_for("contract"),
        SecretString::from(server.token.clone()),
    ))
    .await
    .expect("reads the service provider config");
    let mapping = Mapping::new(Profile::Scim, &BTreeMap::new()).expect("compiles");
    let (people, units) = organisation();
    // A hand-made user (no externalId). SCIM's userName has a single candidate (the e-mail), so
    // this one holds a name nobody maps to.
    let created = reqwest::Client::new()
        .post(format!("{}/Users", server.base_url_for("contract")))
        .bearer_auth(&server.token)
        .header("content-type", "application/scim+json")
        .body(
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "hand.made",
                "title": "Keep"
            })
            .to_string(),
        )
        .send()
        .await
        .expect("sent");
    assert!(created.status().is_success(), "{}", created.status());
    let created: serde_json::Value = created.json().await.expect("json");
    let unowned = created["id"].as_str().expect("an id").to_owned();
    Contract::new(directory, mapping)
        .with_unowned(unowned)
        .run(people, units)
        .await;
}

/// 389-ds again, with leavers moved to an OU of their own (`MoveToOu`): disabling and enabling
/// are moves, and managers and groups follow the new DNs.
#[tokio::test]
async fn the_directory_contract_holds_on_389_ds_moving_leavers_to_an_ou() {
    let server = Ds389::shared()
        .await
        .unwrap_or_else(|error| panic!("389-ds starts: {error}"));
    let ou = server
        .ou("contract-moves")
        .await
        .expect("the OUs are added");
    let directory = LdapDirectory::connect(LdapConfig {
        disable: DisableStrategy::MoveToOu {
            disabled_dn: ou.disabled.clone(),
        },
        ..server.ldap_config(&ou)
    })
    .await
    .expect("binds");
    let mut admin = server.admin().await.expect("admin binds");
    inet_org_person_contract(directory, LdapProfile::Ds389, &mut admin, &ou.people).await;
}

// ---------------------------------------------------------------------------------------------
// R13: hostile names
// ---------------------------------------------------------------------------------------------

/// First and last names holding every character RFC 4514 (DNs) and RFC 4515 (filters) give a
/// meaning, a NUL, leading and trailing spaces, non-ASCII, and the contract's 64-character
/// extremes (`first_name` and `last_name` are `maxLength: 64`).
fn hostile_names() -> Vec<(String, String)> {
    let pairs: [(&str, &str); 18] = [
        ("Ann", "Smith, Jr."),
        ("A+B", "C+D"),
        ("\"Quoted\"", "O\"Brien"),
        ("Back\\slash", "\\2c Escaped"),
        ("*", "*"),
        ("(Paren)", ")("),
        ("#Hash", "#"),
        ("Equals=", "=Sign"),
        ("Semi;", ";colon"),
        ("Nul\0Byte", "Zero\0"),
        ("  Leading", "Trailing  "),
        ("Zoë", "Ångström-Øre"),
        ("李", "小龍"),
        ("Ωμέγα", "Ελληνικά"),
        ("<Angle>", "Brackets>"),
        ("*)(uid=*", "x)(|(objectClass=*"),
        ("Same", "Smith, Jr."),
        ("Ann", "Smith\\, Jr."),
    ];
    let mut names: Vec<(String, String)> = pairs
        .iter()
        .map(|(f, l)| ((*f).to_owned(), (*l).to_owned()))
        .collect();
    names.push(("A".repeat(64), "Z".repeat(64)));
    names.push(("é".repeat(64), "李".repeat(64)));
    names.push((",".repeat(64), "\\".repeat(64)));
    names
}

/// Ids PeopleSync anchors on: HollyHR's contract allows 12 base32 characters only, but the
/// directory layer must not let any source value change the meaning of a filter or a DN.
const HOSTILE_IDS: [&str; 5] = ["*", "a)(cn=*", "b\\2a", "c(", "d*"];

/// People with hostile names (and a few hostile ids), some managing others, in departments with
/// hostile names.
fn hostile_organisation() -> (Vec<Person>, Vec<OrgUnit>) {
    let units: Vec<OrgUnit> = [
        "R&D, Berlin",
        "Sales (EMEA) *",
        "#1 Team",
        " Ops ",
        "Støtte+Drift=\"Support\"",
        // Longer than AD's 64-character `cn`, with a comma and a space where AD's cut falls.
        "Customer Success and Account Management, Enterprise Accounts, Northern Europe and the Baltics",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| OrgUnit::sample_department(&format!("org_unit_h{i}.a.b"), name))
    .collect();
    let people: Vec<Person> = hostile_names()
        .into_iter()
        .enumerate()
        .map(|(i, (first, last))| {
            let id = HOSTILE_IDS
                .get(i)
                .map_or_else(|| format!("hostile{i:05}"), |id| (*id).to_owned());
            let mut person = Person::sample(&id, &first, &last);
            person.work_email = Some(format!("hostile{i}@example.com"));
            person.job_title = Some(format!("{last}, {first}"));
            let unit = &units[i % units.len()];
            person.department = Some(peoplesync::source::hollyhr::model::DepartmentRef {
                id: unit.id.clone(),
                name: unit.name.clone(),
            });
            person
        })
        .collect();
    let mut people = people;
    // Everyone after the first three is managed by one of them.
    for i in 3..people.len() {
        let manager = &people[i % 3];
        let reference = peoplesync::source::hollyhr::model::PersonRef {
            id: manager.id.clone(),
            display_name: manager.display_name.clone(),
        };
        people[i].manager = Some(reference);
    }
    (people, units)
}

/// Each person's anchor filter, searched over the whole naming context, finds that person's
/// entry and nothing else.
async fn each_filter_finds_its_own(
    contract: &Contract<LdapDirectory>,
    admin: &mut ldap3::Ldap,
    naming_context: &str,
    anchor_attribute: &str,
    people: &[Person],
) {
    let snapshot = contract.snapshot().await;
    assert_eq!(snapshot.entries.len(), people.len(), "one entry per person");
    for entry in &snapshot.entries {
        let filter = LdapConfig::anchor_filter(anchor_attribute, &entry.anchor);
        let ldap3::SearchResult(found, result) = admin
            .search(naming_context, ldap3::Scope::Subtree, &filter, vec!["1.1"])
            .await
            .expect("searches");
        assert_eq!(result.rc, 0, "{filter}: {}", result.text);
        let found: Vec<String> = found
            .into_iter()
            .map(|e| ldap3::SearchEntry::construct(e).dn)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "the filter {filter:?} finds {} entries, not only {}",
            found.len(),
            entry.id
        );
        assert!(
            found[0].eq_ignore_ascii_case(&entry.id),
            "{filter:?} found {} instead of {}",
            found[0],
            entry.id
        );
    }
}

/// The directory is exactly what the mapping makes of `people`, and another cycle plans nothing.
async fn settled(contract: &Contract<LdapDirectory>, people: &[Person]) {
    contract.verify(people, &BTreeSet::new()).await;
    let (again, _) = contract.plan(people).await;
    assert!(
        again.is_empty() && again.failures.is_empty(),
        "a second cycle changes nothing: {:?} {:?}",
        again.counts(),
        again.failures
    );
}

/// R13: create, verify exactly, rename (the names rotate among the people), disable two, and
/// check after every cycle that the directory is exactly what the mapping says, that a further
/// cycle plans nothing, and that every filter matches only its own entry.
async fn hostile_names_contract(config: LdapConfig, profile: LdapProfile, admin: &mut ldap3::Ldap) {
    let naming_context = config.naming_context();
    let anchor_attribute = config.anchor_attribute.clone();
    let (naming_context, anchor_attribute) = (naming_context.as_str(), anchor_attribute.as_str());
    let directory = LdapDirectory::connect(config).await.expect("binds");
    let mapping = Mapping::new(Profile::Ldap(profile), &BTreeMap::new()).expect("compiles");
    let mut contract = Contract::new(directory, mapping);
    let (mut people, units) = hostile_organisation();
    contract.units = units;
    let applied = contract.cycle(&people).await;
    assert_eq!(applied.counts["create"], people.len() as u64);
    settled(&contract, &people).await;
    each_filter_finds_its_own(&contract, admin, naming_context, anchor_attribute, &people).await;

    // Every name moves to the next person: each entry is renamed to another hostile name.
    let names: Vec<(Option<String>, Option<String>, String)> = people
        .iter()
        .map(|p| {
            (
                p.first_name.clone(),
                p.last_name.clone(),
                p.display_name.clone(),
            )
        })
        .collect();
    for (i, person) in people.iter_mut().enumerate() {
        let (first, last, display) = names[(i + 1) % names.len()].clone();
        person.first_name = first;
        person.last_name = last;
        person.display_name = display;
    }
    let applied = contract.cycle(&people).await;
    assert!(applied.counts["update"] > 0, "{:?}", applied.counts);
    settled(&contract, &people).await;
    each_filter_finds_its_own(&contract, admin, naming_context, anchor_attribute, &people).await;

    // Two leavers (one of them a manager).
    let yesterday = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .yesterday()
        .expect("a date");
    for person in &mut people[1..3] {
        person.end_date = Some(yesterday);
    }
    let applied = contract.cycle(&people).await;
    assert_eq!(applied.counts["disable"], 2, "{:?}", applied.counts);
    settled(&contract, &people).await;
    each_filter_finds_its_own(&contract, admin, naming_context, anchor_attribute, &people).await;
}

#[tokio::test]
async fn r13_hostile_names_are_exact_on_openldap() {
    let server = Slapd::start().await.expect("slapd starts");
    let mut admin = server.admin().await.expect("admin binds");
    hostile_names_contract(server.ldap_config(), LdapProfile::OpenLdap, &mut admin).await;
}

#[tokio::test]
async fn r13_hostile_names_are_exact_on_389_ds() {
    let server = Ds389::shared()
        .await
        .unwrap_or_else(|error| panic!("389-ds starts: {error}"));
    let ou = server.ou("hostile").await.expect("the OUs are added");
    let mut admin = server.admin().await.expect("admin binds");
    hostile_names_contract(server.ldap_config(&ou), LdapProfile::Ds389, &mut admin).await;
}

#[tokio::test]
async fn r13_hostile_names_are_exact_on_samba_ad() {
    let dc = SambaDc::shared()
        .await
        .unwrap_or_else(|error| panic!("the Samba AD DC starts: {error}"));
    let (people_dn, groups_dn) = dc.ou("Hostile").await.expect("the OUs are added");
    let mut admin = dc.admin().await.expect("admin binds");
    hostile_names_contract(
        dc.ldap_config(&people_dn, &groups_dn),
        LdapProfile::ActiveDirectory,
        &mut admin,
    )
    .await;
}
