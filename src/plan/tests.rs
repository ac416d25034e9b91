//! Planner tests: table tests of each rule, and properties checked by applying plans to the
//! in-memory directory (apply then plan again is empty; planning is deterministic; unowned entries
//! are never touched).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::crd::LdapProfile;
use crate::directory::memory::{MemoryDirectory, Stored};
use crate::plan::mapping::Profile;
use crate::source::hollyhr::model::{DepartmentRef, PersonRef};
use crate::sync::{DirectorySnapshot, Ids, apply};

pub(crate) const NOW: &str = "2026-06-15T12:00:00Z";

pub(crate) fn now() -> Timestamp {
    NOW.parse().expect("a timestamp")
}

fn person(id: &str, first: &str, last: &str) -> Person {
    Person::sample(id, first, last)
}

fn in_department(mut person: Person, department: &str) -> Person {
    person.department = Some(DepartmentRef {
        id: department.to_owned(),
        name: format!("Department {department}"),
    });
    person
}

fn managed_by(mut person: Person, manager: &str) -> Person {
    person.manager = Some(PersonRef {
        id: manager.to_owned(),
        display_name: String::new(),
    });
    person
}

fn leaving(mut person: Person, end: &str) -> Person {
    person.end_date = Some(end.parse().expect("a date"));
    person
}

fn starting(mut person: Person, start: &str) -> Person {
    person.start_date = Some(start.parse().expect("a date"));
    person
}

fn department(id: &str, name: &str) -> OrgUnit {
    OrgUnit::sample_department(id, name)
}

pub(crate) fn ldap_policy() -> Policy {
    Policy {
        guard: Guard {
            max_count: 1000,
            max_percent: 100,
        },
        directory: DirectoryTraits {
            rdn_attribute: Some("uid".into()),
            rename_changes_id: true,
            disable_changes_id: true,
            manager_attribute: Some("manager".into()),
            groups: true,
            group_name_max: None,
            marking: None,
        },
        ..Policy::default()
    }
}

pub(crate) fn scim_policy() -> Policy {
    Policy {
        directory: DirectoryTraits {
            rdn_attribute: Some("userName".into()),
            rename_changes_id: false,
            disable_changes_id: false,
            manager_attribute: Some("enterprise.manager".into()),
            groups: true,
            group_name_max: None,
            marking: None,
        },
        ..ldap_policy()
    }
}

pub(crate) fn openldap() -> Mapping {
    Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new()).expect("compiles")
}

/// One side of a sync under test: a directory, a mapping and a policy.
pub(crate) struct Harness {
    pub(crate) directory: MemoryDirectory,
    pub(crate) mapping: Mapping,
    pub(crate) policy: Policy,
    pub(crate) disabled_since: BTreeMap<String, Timestamp>,
}

impl Harness {
    pub(crate) fn ldap() -> Self {
        Self {
            directory: MemoryDirectory::ldap_like("uid", true),
            mapping: openldap(),
            policy: ldap_policy(),
            disabled_since: BTreeMap::new(),
        }
    }

    pub(crate) fn scim() -> Self {
        Self {
            directory: MemoryDirectory::scim_like(),
            mapping: Mapping::new(Profile::Scim, &BTreeMap::new()).expect("compiles"),
            policy: scim_policy(),
            disabled_since: BTreeMap::new(),
        }
    }

    pub(crate) async fn snapshot(&self) -> DirectorySnapshot {
        DirectorySnapshot::read(&self.directory, &self.mapping, true)
            .await
            .expect("the memory directory lists")
    }

    pub(crate) async fn plan(
        &self,
        people: &[Person],
        org_units: Option<&[OrgUnit]>,
        coverage: Coverage,
        now: Timestamp,
        approved: Option<&str>,
    ) -> (Plan, DirectorySnapshot) {
        let snapshot = self.snapshot().await;
        let plan = plan(&Inputs {
            people,
            org_units,
            entries: &snapshot.entries,
            groups: &snapshot.groups,
            unowned: &snapshot.unowned,
            reserved: &snapshot.reserved,
            mapping: &self.mapping,
            policy: &self.policy,
            coverage,
            now,
            disabled_since: &self.disabled_since,
            approved,
        });
        (plan, snapshot)
    }

    /// Plans a full cycle of `people` with the standard departments, now (nothing applied).
    async fn full(&self, people: &[Person]) -> (Plan, DirectorySnapshot) {
        self.plan(people, Some(&departments()), Coverage::Full, now(), None)
            .await
    }

    /// Plans a full cycle, applies it, and returns the plan.
    pub(crate) async fn sync(&self, people: &[Person], org_units: &[OrgUnit]) -> Plan {
        self.sync_at(people, Some(org_units), Coverage::Full, now())
            .await
    }

    pub(crate) async fn sync_at(
        &self,
        people: &[Person],
        org_units: Option<&[OrgUnit]>,
        coverage: Coverage,
        now: Timestamp,
    ) -> Plan {
        let (plan, snapshot) = self.plan(people, org_units, coverage, now, None).await;
        let mut ids = snapshot.ids();
        apply(&self.directory, &plan, &mut ids, 4)
            .await
            .expect("the memory directory applies");
        plan
    }

    async fn entry(&self, anchor: &str) -> Option<(String, Stored)> {
        self.directory
            .snapshot()
            .into_iter()
            .find(|(_, stored)| stored.anchor.as_deref() == Some(anchor))
    }
}

pub(crate) fn actions(plan: &Plan) -> Vec<(String, &'static str)> {
    plan.steps
        .iter()
        .map(|s| (s.anchor.clone(), s.action.name()))
        .collect()
}

fn staff() -> Vec<Person> {
    vec![
        in_department(person("p1", "Ada", "Lovelace"), "d1"),
        managed_by(in_department(person("p2", "Alan", "Turing"), "d1"), "p1"),
        managed_by(in_department(person("p3", "Grace", "Hopper"), "d2"), "p1"),
    ]
}

fn departments() -> Vec<OrgUnit> {
    vec![department("d1", "Research"), department("d2", "Navy")]
}

#[tokio::test]
async fn a_first_sync_creates_everyone_with_managers_and_groups_then_nothing_changes() {
    for harness in [Harness::ldap(), Harness::scim()] {
        let plan = harness.sync(&staff(), &departments()).await;
        let counts = plan.counts();
        assert_eq!(counts["create"], 3);
        assert_eq!(
            counts.get("set-references"),
            None,
            "managers are created first, and their reports reference them in their creates"
        );
        let waves: Vec<(String, u8)> = plan
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Create { wave, .. } => Some((s.anchor.clone(), *wave)),
                _ => None,
            })
            .collect();
        assert_eq!(
            waves,
            [
                ("p1".to_owned(), 0),
                ("p2".to_owned(), 1),
                ("p3".to_owned(), 1)
            ]
        );
        assert_eq!(counts["create-group"], 2);
        let (manager_id, _) = harness.entry("p1").await.expect("p1 exists");
        let (_, report) = harness.entry("p2").await.expect("p2 exists");
        let manager_attribute = harness
            .policy
            .directory
            .manager_attribute
            .clone()
            .expect("set");
        assert_eq!(
            report.attributes[&manager_attribute],
            vec![manager_id.clone()]
        );
        let groups = harness.directory.group_snapshot();
        let research = groups
            .values()
            .find(|g| g.anchor == "d1")
            .expect("d1 group");
        assert_eq!(research.name, "Research");
        assert_eq!(research.members.len(), 2);
        assert!(research.members.contains(&manager_id));

        let (again, _) = harness.full(&staff()).await;
        assert!(
            again.is_empty(),
            "a second plan is empty: {:?}",
            actions(&again)
        );
    }
}

#[tokio::test]
async fn managers_who_manage_each_other_get_their_references_after_both_exist() {
    let pair = vec![
        managed_by(person("p1", "Ada", "Lovelace"), "p2"),
        managed_by(person("p2", "Alan", "Turing"), "p1"),
    ];
    let harness = Harness::scim();
    let plan = harness.sync(&pair, &[]).await;
    let counts = plan.counts();
    assert_eq!(counts["create"], 2);
    assert!(counts.contains_key("set-references"), "{counts:?}");
    let (again, _) = harness
        .plan(&pair, Some(&[]), Coverage::Full, now(), None)
        .await;
    assert!(again.is_empty(), "{:?}", actions(&again));
}

#[tokio::test]
async fn a_new_report_of_an_existing_manager_gets_the_reference_with_its_create() {
    let harness = Harness::ldap();
    harness.sync(&staff()[..1], &departments()).await;
    let (plan, _) = harness.full(&staff()[..2]).await;
    assert_eq!(
        actions(&plan),
        [
            ("p2".to_owned(), "create"),
            ("d1".to_owned(), "set-group-members")
        ]
    );
    let Action::Create { references, .. } = &plan.steps[0].action else {
        panic!("a create");
    };
    assert_eq!(references["manager"].as_deref(), Some("p1"));
}

#[tokio::test]
async fn a_rename_moves_the_entry_and_rewrites_references_and_memberships_to_it() {
    let harness = Harness::ldap();
    harness.sync(&staff(), &departments()).await;
    let mut renamed = staff();
    renamed[0].last_name = Some("King".into());
    renamed[0].display_name = "Ada King".into();
    let plan = harness.sync(&renamed, &departments()).await;
    let mut got = actions(&plan);
    got.sort();
    assert_eq!(
        got,
        [
            ("d1".to_owned(), "set-group-members"),
            ("p1".to_owned(), "rename"),
            ("p1".to_owned(), "update"),
            ("p2".to_owned(), "set-references"),
            ("p3".to_owned(), "set-references"),
        ]
    );
    let (id, stored) = harness.entry("p1").await.expect("p1");
    assert_eq!(id, "uid=ada.king");
    assert_eq!(stored.attributes["sn"], ["King"]);
    let (_, report) = harness.entry("p2").await.expect("p2");
    assert_eq!(report.attributes["manager"], ["uid=ada.king"]);
    let (again, _) = harness.full(&renamed).await;
    assert!(again.is_empty(), "{:?}", actions(&again));
}

#[tokio::test]
async fn leavers_are_disabled_removed_from_groups_and_reactivated_when_they_return() {
    let harness = Harness::ldap();
    harness.sync(&staff(), &departments()).await;
    let mut people = staff();
    people[1] = leaving(people[1].clone(), "2026-06-01");
    let plan = harness.sync(&people, &departments()).await;
    assert!(
        plan.steps
            .iter()
            .any(|s| s.anchor == "p2" && s.action == Action::Disable && s.reason == Reason::Leaver)
    );
    let (id, stored) = harness.entry("p2").await.expect("kept, disabled");
    assert!(!stored.enabled);
    assert!(id.ends_with(",disabled"), "moved to the disabled OU: {id}");
    let group = harness.directory.group_snapshot();
    let research = group.values().find(|g| g.anchor == "d1").expect("d1");
    assert_eq!(research.members.len(), 1, "only enabled people are members");

    people[1].end_date = None;
    let plan = harness.sync(&people, &departments()).await;
    assert!(plan.steps.iter().any(|s| s.anchor == "p2"
        && s.action == Action::Enable
        && s.reason == Reason::Reactivated));
    assert!(harness.entry("p2").await.expect("p2").1.enabled);
    let (again, _) = harness.full(&people).await;
    assert!(again.is_empty(), "{:?}", actions(&again));
}

#[tokio::test]
async fn a_person_who_vanishes_is_a_leaver_in_a_full_cycle_only() {
    let harness = Harness::scim();
    harness.sync(&staff(), &departments()).await;
    let (partial, _) = harness
        .plan(
            &staff()[..1],
            Some(&departments()),
            Coverage::Partial,
            now(),
            None,
        )
        .await;
    assert!(partial.is_empty(), "{:?}", actions(&partial));
    let (full, _) = harness.full(&staff()[..2]).await;
    assert!(
        full.steps.iter().any(|s| s.anchor == "p3"
            && s.action == Action::Disable
            && s.reason == Reason::Vanished)
    );
}

#[tokio::test]
async fn deprovision_actions_delete_or_disable_then_delete_after_the_delay() {
    let mut harness = Harness::scim();
    harness.policy.deprovision = Deprovision::Delete;
    harness.sync(&staff(), &departments()).await;
    let plan = harness.sync(&staff()[..2], &departments()).await;
    assert!(
        plan.steps
            .iter()
            .any(|s| s.anchor == "p3" && s.action == Action::Delete)
    );
    assert!(harness.entry("p3").await.is_none());

    let mut harness = Harness::scim();
    harness.policy.deprovision = Deprovision::DisableThenDelete {
        delay: SignedDuration::from_hours(24 * 30),
    };
    harness.sync(&staff(), &departments()).await;
    let plan = harness.sync(&staff()[..2], &departments()).await;
    assert!(
        plan.steps
            .iter()
            .any(|s| s.anchor == "p3" && s.action == Action::Disable)
    );
    harness.disabled_since.insert("p3".into(), now());
    let later = now() + SignedDuration::from_hours(24 * 29);
    let (plan, _) = harness
        .plan(
            &staff()[..2],
            Some(&departments()),
            Coverage::Full,
            later,
            None,
        )
        .await;
    assert!(plan.is_empty(), "not yet: {:?}", actions(&plan));
    let due = now() + SignedDuration::from_hours(24 * 30);
    let (plan, _) = harness
        .plan(
            &staff()[..2],
            Some(&departments()),
            Coverage::Full,
            due,
            None,
        )
        .await;
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].action, Action::Delete);
    assert_eq!(plan.steps[0].reason, Reason::DelayElapsed);
}

#[tokio::test]
async fn future_starters_are_provisioned_disabled_or_skipped_per_policy() {
    let starter = starting(person("p9", "Future", "Starter"), "2026-07-01");
    let harness = Harness::scim();
    harness.sync(std::slice::from_ref(&starter), &[]).await;
    let (_, stored) = harness.entry("p9").await.expect("created");
    assert!(!stored.enabled);
    let on_the_day = "2026-07-01T08:00:00Z".parse().expect("a timestamp");
    let (plan, _) = harness
        .plan(
            std::slice::from_ref(&starter),
            Some(&[]),
            Coverage::Full,
            on_the_day,
            None,
        )
        .await;
    assert_eq!(actions(&plan), [("p9".to_owned(), "enable")]);

    let mut harness = Harness::scim();
    harness.policy.future_starters = FutureStarters::Skip;
    let plan = harness.sync(std::slice::from_ref(&starter), &[]).await;
    assert!(plan.is_empty());
}

#[tokio::test]
async fn people_out_of_scope_are_not_provisioned_and_leave_when_they_move_out() {
    let mut harness = Harness::scim();
    harness.sync(&staff(), &departments()).await;
    harness.policy.scope = Scope::from_spec(Some(&crate::crd::ScopeSpec {
        include: None,
        exclude: Some(crate::crd::ScopeFilter {
            departments: vec!["NAVY".into(), "Department d2".into()],
            ..Default::default()
        }),
    }));
    let plan = harness.sync(&staff(), &departments()).await;
    assert_eq!(plan.in_scope, 2);
    assert!(plan.steps.iter().any(|s| s.anchor == "p3"
        && s.action == Action::Disable
        && s.reason == Reason::OutOfScope));
}

#[tokio::test]
async fn the_guard_holds_mass_deprovisions_until_that_exact_plan_is_approved() {
    let mut harness = Harness::scim();
    harness.policy.guard = Guard {
        max_count: 1,
        max_percent: 100,
    };
    harness.sync(&staff(), &departments()).await;
    let (plan, _) = harness.full(&staff()[..1]).await;
    let GuardDecision::Held(trip) = &plan.guard else {
        panic!("held: {:?}", plan.guard);
    };
    assert_eq!(trip.reason, guard::GuardReason::ThresholdExceeded);
    assert_eq!((trip.deprovisions, trip.managed), (2, 3));
    assert_eq!(plan.held.len(), 2);
    assert!(plan.steps.iter().all(|s| !s.action.is_deprovision()));
    assert!(
        plan.steps
            .iter()
            .all(|s| !matches!(s.action, Action::SetGroupMembers { .. })),
        "memberships stay while the deprovisions are held: {:?}",
        actions(&plan)
    );
    assert!(trip.message().contains(&trip.hash));

    let (approved, _) = harness
        .plan(
            &staff()[..1],
            Some(&departments()),
            Coverage::Full,
            now(),
            Some(&trip.hash),
        )
        .await;
    assert!(matches!(approved.guard, GuardDecision::Approved(_)));
    assert_eq!(approved.counts()["disable"], 2);
    let (other, _) = harness
        .plan(
            &[],
            Some(&departments()),
            Coverage::Full,
            now(),
            Some(&trip.hash),
        )
        .await;
    let GuardDecision::Held(empty) = &other.guard else {
        panic!("an approval covers only its own plan");
    };
    assert_eq!(empty.reason, guard::GuardReason::EmptySource);
}

#[tokio::test]
async fn the_percentage_threshold_counts_against_managed_entries() {
    let mut harness = Harness::scim();
    harness.policy.guard = Guard {
        max_count: 100,
        max_percent: 50,
    };
    harness.sync(&staff(), &departments()).await;
    let (one, _) = harness.full(&staff()[..2]).await;
    assert_eq!(one.guard, GuardDecision::Clear, "1 of 3 is 33 %");
    let (two, _) = harness.full(&staff()[..1]).await;
    assert!(
        matches!(two.guard, GuardDecision::Held(_)),
        "2 of 3 is 67 %"
    );
}

#[tokio::test]
async fn a_mapping_error_is_recorded_for_that_person_and_their_entry_is_left_alone() {
    let mut harness = Harness::scim();
    harness.sync(&staff(), &departments()).await;
    harness.mapping = Mapping::new(
        Profile::Scim,
        &BTreeMap::from([(
            "title".to_owned(),
            "{{ job_title if job_title else no_such_field }}".to_owned(),
        )]),
    )
    .expect("compiles");
    let mut people = staff();
    people[2].job_title = None;
    let (plan, _) = harness.full(&people).await;
    assert_eq!(plan.failures.len(), 1);
    assert_eq!(plan.failures[0].anchor, "p3");
    assert_eq!(plan.failures[0].reason, "MappingFailed");
    assert!(plan.failures[0].message.contains("attribute title"));
    assert!(
        plan.is_empty(),
        "the person who cannot be mapped is neither changed nor deprovisioned: {:?}",
        actions(&plan)
    );
}

#[tokio::test]
async fn a_new_uid_avoids_values_of_entries_peoplesync_does_not_own() {
    let harness = Harness::ldap();
    harness.directory.insert(
        "uid=ada.lovelace",
        Stored {
            anchor: None,
            attributes: BTreeMap::from([("uid".to_owned(), vec!["ada.lovelace".to_owned()])]),
            enabled: true,
        },
    );
    harness.sync(&staff()[..1], &[]).await;
    let (id, _) = harness.entry("p1").await.expect("created");
    assert_eq!(id, "uid=ada.lovelace2");
}

fn hand_made(uid: &str, mail: &str) -> Stored {
    Stored {
        anchor: None,
        attributes: BTreeMap::from([
            ("uid".to_owned(), vec![uid.to_owned()]),
            ("mail".to_owned(), vec![mail.to_owned()]),
            ("cn".to_owned(), vec!["A. Lovelace".to_owned()]),
        ]),
        enabled: true,
    }
}

#[tokio::test]
async fn an_unowned_entry_with_the_same_mail_is_adopted_and_brought_in_line() {
    let mut harness = Harness::ldap();
    harness.policy.adoption = vec!["mail".into(), "uid".into()];
    harness.directory.insert(
        "uid=ada.lovelace",
        hand_made("ada.lovelace", "ADA.LOVELACE@example.com"),
    );
    let plan = harness.sync(&staff()[..1], &[]).await;
    let mut got = actions(&plan);
    got.sort();
    assert_eq!(
        got,
        [("p1".to_owned(), "adopt"), ("p1".to_owned(), "update")]
    );
    assert!(plan.steps.iter().any(|s| s.reason == Reason::Adopted));
    let (id, stored) = harness.entry("p1").await.expect("adopted");
    assert_eq!(
        id, "uid=ada.lovelace",
        "the existing account, not a new one"
    );
    assert_eq!(stored.attributes["cn"], ["Ada Lovelace"]);
    let (again, _) = harness
        .plan(&staff()[..1], Some(&[]), Coverage::Full, now(), None)
        .await;
    assert!(again.is_empty(), "{:?}", actions(&again));
}

#[tokio::test]
async fn an_ambiguous_match_is_reported_and_never_guessed() {
    let mut harness = Harness::ldap();
    harness.policy.adoption = vec!["mail".into()];
    for uid in ["ada", "alovelace"] {
        harness.directory.insert(
            &format!("uid={uid}"),
            hand_made(uid, "ada.lovelace@example.com"),
        );
    }
    let plan = harness.sync(&staff()[..1], &[]).await;
    assert!(plan.is_empty(), "{:?}", actions(&plan));
    assert_eq!(plan.failures.len(), 1);
    assert_eq!(plan.failures[0].reason, "AmbiguousMatch");
    assert!(
        plan.failures[0].message.contains("2 entries"),
        "{}",
        plan.failures[0].message
    );
    assert!(harness.entry("p1").await.is_none());

    // Two people matching one entry: neither takes it.
    let mut harness = Harness::ldap();
    harness.policy.adoption = vec!["mail".into()];
    harness.directory.insert(
        "uid=shared",
        hand_made("shared", "ada.lovelace@example.com"),
    );
    let mut twin = person("p9", "Ada", "Lovelace");
    twin.display_name = "Ada Lovelace (2)".into();
    let plan = harness.sync(&[staff()[0].clone(), twin], &[]).await;
    assert_eq!(plan.failures.len(), 2, "{:?}", plan.failures);
    assert!(plan.failures.iter().all(|f| f.reason == "AmbiguousMatch"));
}

/// A directory that marks what it owns, as the LDAP backend does (`employeeNumber` anchor,
/// `businessCategory` mark of the object hr/acme).
fn marking() -> crate::directory::Marking {
    crate::directory::Marking {
        anchor_attribute: "employeeNumber".into(),
        attribute: "businessCategory".into(),
        mark: crate::directory::mark_for("hr", "acme"),
    }
}

/// An account PeopleSync did not make, holding `number` in the anchor attribute (and `mark`
/// in the mark attribute, when given).
fn brownfield(uid: &str, mail: &str, number: &str, mark: Option<&str>) -> Stored {
    let mut stored = hand_made(uid, mail);
    stored
        .attributes
        .insert("employeeNumber".into(), vec![number.to_owned()]);
    if let Some(mark) = mark {
        stored.attributes.insert(
            "businessCategory".into(),
            vec!["Sales".into(), mark.to_owned()],
        );
    }
    stored
}

#[tokio::test]
async fn unmarked_entries_holding_an_anchor_value_are_left_alone_counted_and_adoptable() {
    let mut harness = Harness::ldap();
    harness.policy.directory.marking = Some(marking());
    harness.policy.adoption = vec!["mail".into()];
    // Payroll numbers in the anchor attribute: one account matches Ada by mail.
    harness.directory.insert(
        "uid=ada",
        brownfield("ada", "ada.lovelace@example.com", "100231", None),
    );
    for (uid, number) in [("bob", "100232"), ("carol", "100233")] {
        harness.directory.insert(
            &format!("uid={uid}"),
            brownfield(uid, &format!("{uid}@example.com"), number, None),
        );
    }
    let (plan, _) = harness.full(&staff()).await;
    let mut got = actions(&plan);
    got.sort();
    assert!(got.contains(&("p1".to_owned(), "adopt")), "{got:?}");
    assert!(
        plan.steps
            .iter()
            .all(|s| !s.action.is_deprovision() && s.action.name() != "delete"),
        "nothing it does not own is deprovisioned: {got:?}"
    );
    assert_eq!(
        plan.left_alone,
        LeftAlone {
            unmarked: 2,
            foreign: 0
        }
    );
    // Without the adoption rules, Ada's payroll account is left alone too, and counted.
    harness.policy.adoption.clear();
    let (plan, _) = harness.full(&staff()).await;
    assert!(plan.steps.iter().all(|s| s.action.name() != "adopt"));
    assert_eq!(plan.left_alone.unmarked, 3);
}

#[tokio::test]
async fn an_upgrade_claims_the_entries_holding_its_peoples_ids_and_nothing_else() {
    let mut harness = Harness::ldap();
    harness.policy.directory.marking = Some(marking());
    let other = crate::directory::mark_for("hr", "globex");
    // What an earlier version made for Ada (her id, no mark), a payroll account, an entry of
    // another PeopleSync object holding Alan's id, and what it made for a leaver (p4).
    harness.directory.insert(
        "uid=ada.lovelace",
        brownfield("ada.lovelace", "ada.lovelace@example.com", "p1", None),
    );
    harness.directory.insert(
        "uid=payroll",
        brownfield("payroll", "payroll@example.com", "100231", None),
    );
    harness.directory.insert(
        "uid=alan.turing",
        brownfield("alan.turing", "alan.turing@example.com", "p2", Some(&other)),
    );
    harness.directory.insert(
        "uid=old.leaver",
        brownfield("old.leaver", "old.leaver@example.com", "p4", None),
    );
    let mut people = staff();
    people.push(leaving(person("p4", "Old", "Leaver"), "2026-01-31"));

    // A new object (never synced): nothing is claimed.
    let (plan, _) = harness.full(&people).await;
    assert!(
        plan.steps.iter().all(|s| s.action.name() != "adopt"),
        "{:?}",
        actions(&plan)
    );
    assert_eq!(plan.left_alone.unmarked, 3);

    // After an upgrade: Ada's and the leaver's entries are claimed (the leaver's then
    // disabled); the payroll account and the other object's entry are not.
    harness.policy.claim_unmarked = true;
    let plan = harness.sync(&people, &departments()).await;
    let claimed: Vec<(&str, &str)> = plan
        .steps
        .iter()
        .filter(|s| s.reason == Reason::Claimed)
        .map(|s| match &s.action {
            Action::Adopt { id } => (s.anchor.as_str(), id.as_str()),
            other => panic!("a claim adopts: {other:?}"),
        })
        .collect();
    assert_eq!(
        claimed,
        [("p1", "uid=ada.lovelace"), ("p4", "uid=old.leaver")]
    );
    assert!(
        plan.steps
            .iter()
            .any(|s| s.anchor == "p4" && s.action == Action::Disable),
        "{:?}",
        actions(&plan)
    );
    assert!(
        plan.steps
            .iter()
            .any(|s| s.anchor == "p2" && s.action.name() == "create"),
        "another object's entry is never taken: {:?}",
        actions(&plan)
    );
    assert_eq!(
        plan.left_alone,
        LeftAlone {
            unmarked: 1,
            foreign: 1
        }
    );
    assert_eq!(
        harness.directory.snapshot()["uid=payroll"],
        brownfield("payroll", "payroll@example.com", "100231", None),
        "the payroll account is untouched"
    );
}

#[tokio::test]
async fn without_adoption_a_new_person_gets_a_new_entry_beside_the_unowned_one() {
    let harness = Harness::ldap();
    harness.directory.insert(
        "uid=ada.lovelace",
        hand_made("ada.lovelace", "ada.lovelace@example.com"),
    );
    harness.sync(&staff()[..1], &[]).await;
    let (id, _) = harness.entry("p1").await.expect("created");
    assert_eq!(id, "uid=ada.lovelace2");
    assert_eq!(
        harness.directory.snapshot()["uid=ada.lovelace"],
        hand_made("ada.lovelace", "ada.lovelace@example.com"),
        "the unowned entry is untouched"
    );
}

#[tokio::test]
async fn a_rejected_create_is_a_failure_for_that_person_and_the_rest_continue() {
    let mut harness = Harness::scim();
    harness.directory.reject.insert("p1".into());
    let (plan, snapshot) = harness.full(&staff()).await;
    let mut ids = snapshot.ids();
    let applied = apply(&harness.directory, &plan, &mut ids, 4)
        .await
        .expect("per-entry errors do not stop the run");
    assert_eq!(applied.counts["create"], 2);
    assert_eq!(applied.failures.len(), 1);
    assert_eq!(applied.failures[0].anchor, "p1");
    assert_eq!(applied.failures[0].reason, "SchemaViolation");
    harness.directory.reject.clear();
    let plan = harness.sync(&staff(), &departments()).await;
    assert!(
        plan.steps
            .iter()
            .any(|s| s.anchor == "p1" && s.action.name() == "create")
    );
    let (again, _) = harness.full(&staff()).await;
    assert!(again.is_empty(), "{:?}", actions(&again));
}

#[tokio::test]
async fn a_directory_wide_error_stops_the_run() {
    let mut harness = Harness::scim();
    let (plan, _) = harness.full(&staff()).await;
    harness.directory.unavailable = true;
    let error = apply(&harness.directory, &plan, &mut Ids::default(), 4)
        .await
        .expect_err("unavailable");
    assert_eq!(error.reason, "DirectoryUnreachable");
    assert!(error.applied.counts.is_empty());
    assert_eq!(harness.directory.writes(), 0);
}

#[tokio::test]
async fn org_units_renamed_or_archived_rename_or_delete_their_groups() {
    let harness = Harness::scim();
    harness.sync(&staff(), &departments()).await;
    let mut units = departments();
    units[0].name = "Analytical Engines".into();
    units[1].is_archived = true;
    let plan = harness.sync(&staff(), &units).await;
    let mut got = actions(&plan);
    got.sort();
    assert_eq!(
        got,
        [
            ("d1".to_owned(), "rename-group"),
            ("d2".to_owned(), "delete-group")
        ]
    );
    let groups = harness.directory.group_snapshot();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups.values().next().map(|g| g.name.as_str()),
        Some("Analytical Engines")
    );
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

pub(crate) mod properties {
    use proptest::prelude::*;

    use super::*;

    const FIRST: [&str; 4] = ["Ada", "Alan", "Grace", "Émilie"];
    const LAST: [&str; 3] = ["Lovelace", "Turing", "du Châtelet"];

    /// (first, last, department, manager, lifecycle) per person; ids are positions.
    pub(crate) type Spec = Vec<(usize, usize, usize, Option<usize>, u8)>;

    pub(crate) fn people(spec: &Spec) -> Vec<Person> {
        spec.iter()
            .enumerate()
            .map(|(i, (first, last, department, manager, lifecycle))| {
                let mut p = in_department(
                    person(&format!("p{i:02}"), FIRST[*first], LAST[*last]),
                    &format!("d{department}"),
                );
                // Namesakes share a uid stem but not a mailbox (SCIM's userName).
                p.work_email = Some(format!("person{i}@example.com"));
                if let Some(m) = manager.filter(|m| *m < spec.len()) {
                    p = managed_by(p, &format!("p{m:02}"));
                }
                match lifecycle {
                    0 => leaving(p, "2026-01-01"),
                    1 => starting(p, "2027-01-01"),
                    _ => p,
                }
            })
            .collect()
    }

    pub(crate) fn spec() -> impl Strategy<Value = Spec> {
        proptest::collection::vec(
            (
                0..4usize,
                0..3usize,
                0..3usize,
                proptest::option::of(0..12usize),
                0..6u8,
            ),
            0..12,
        )
    }

    pub(crate) fn units(archived: usize) -> Vec<OrgUnit> {
        (0..3)
            .filter(|d| *d != archived)
            .map(|d| department(&format!("d{d}"), &format!("Dept {d}")))
            .collect()
    }

    pub(crate) fn run(future: impl std::future::Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(future);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn applying_a_plan_then_planning_again_gives_an_empty_plan(
            before in spec(), after in spec(), archived in 0..4usize, ldap in any::<bool>(),
            delete in any::<bool>(),
        ) {
            run(async move {
                let mut harness = if ldap { Harness::ldap() } else { Harness::scim() };
                if delete {
                    harness.policy.deprovision = Deprovision::Delete;
                }
                // Someone else's account, named like the people.
                harness.directory.insert("uid=ada.turing", Stored {
                    anchor: None,
                    attributes: BTreeMap::from([
                        ("uid".to_owned(), vec!["ada.turing".to_owned()]),
                        ("userName".to_owned(), vec!["ada.turing@example.com".to_owned()]),
                    ]),
                    enabled: true,
                });
                let unowned = harness.directory.snapshot()["uid=ada.turing"].clone();
                harness.sync(&people(&before), &units(3)).await;
                harness.sync(&people(&after), &units(archived)).await;
                let (again, _) = harness
                    .plan(&people(&after), Some(&units(archived)), Coverage::Full, now(), None)
                    .await;
                assert!(again.is_empty(), "{:?}", actions(&again));
                assert!(again.failures.is_empty(), "{:?}", again.failures);
                assert_eq!(harness.directory.snapshot()["uid=ada.turing"], unowned);
            });
        }

        #[test]
        fn planning_is_deterministic_and_names_only_source_people_managed_entries_and_org_units(
            before in spec(), after in spec(), archived in 0..4usize,
        ) {
            run(async move {
                let harness = Harness::ldap();
                harness.directory.insert("uid=someone", Stored {
                    anchor: None,
                    attributes: BTreeMap::new(),
                    enabled: true,
                });
                harness.sync(&people(&before), &units(3)).await;
                let snapshot = harness.snapshot().await;
                let (a, _) = harness
                    .plan(&people(&after), Some(&units(archived)), Coverage::Full, now(), None)
                    .await;
                let (b, _) = harness
                    .plan(&people(&after), Some(&units(archived)), Coverage::Full, now(), None)
                    .await;
                assert_eq!(a, b);
                let known: std::collections::BTreeSet<String> = people(&after)
                    .iter()
                    .map(|p| p.id.clone())
                    .chain(snapshot.entries.iter().map(|e| e.anchor.clone()))
                    .chain((0..3).map(|d| format!("d{d}")))
                    .collect();
                for step in a.steps.iter().chain(&a.held) {
                    assert!(known.contains(&step.anchor), "{step:?}");
                }
            });
        }
    }
}

/// Namesakes get numbered uids in the order the source lists them, not by id: so a run in one
/// piece, a run in chunks, and a run resumed after a crash that landed only some of its creates
/// all give each person the same uid (found by the kill -9 trials in `tests/faults.rs`).
#[tokio::test]
async fn namesakes_are_numbered_in_listing_order_however_the_run_is_cut() {
    let namesakes = || {
        ["p9", "p2", "p5"]
            .map(|id| person(id, "Ada", "Lovelace"))
            .to_vec()
    };
    let expected = BTreeMap::from([
        ("p9".to_owned(), "uid=ada.lovelace".to_owned()),
        ("p2".to_owned(), "uid=ada.lovelace2".to_owned()),
        ("p5".to_owned(), "uid=ada.lovelace3".to_owned()),
    ]);
    let uids = |harness: &Harness| {
        harness
            .directory
            .snapshot()
            .into_iter()
            .filter_map(|(id, stored)| Some((stored.anchor?, id)))
            .collect::<BTreeMap<_, _>>()
    };

    let whole = Harness::ldap();
    whole.sync(&namesakes(), &[]).await;
    assert_eq!(uids(&whole), expected, "in one piece");

    let chunked = Harness::ldap();
    let people = namesakes();
    chunked
        .sync_at(&people[..1], None, Coverage::Partial, now())
        .await;
    chunked
        .sync_at(&people[1..], None, Coverage::Partial, now())
        .await;
    assert_eq!(uids(&chunked), expected, "in chunks");

    // A crash after only p5's create landed; the restarted run plans everyone again.
    let resumed = Harness::ldap();
    let (plan, snapshot) = resumed
        .plan(&namesakes(), None, Coverage::Full, now(), None)
        .await;
    let landed = Plan {
        steps: plan
            .steps
            .iter()
            .filter(|s| s.anchor == "p5")
            .cloned()
            .collect(),
        ..Plan::default()
    };
    apply(&resumed.directory, &landed, &mut snapshot.ids(), 4)
        .await
        .expect("applies");
    resumed
        .sync_at(&namesakes(), None, Coverage::Full, now())
        .await;
    assert_eq!(uids(&resumed), expected, "resumed after a crash");
}
