//! The streamed cycles (full, and incremental against the index) against the plan made in one
//! piece: from the same directory and the
//! same source, both leave the same directory (entries, references and groups, compared by
//! anchor), decide the guard alike and hold the same deprovisions; and planning again after a
//! streamed cycle finds nothing to do.

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::stream::BoxStream;
use proptest::prelude::*;

use super::*;
use crate::directory::memory::{MemoryDirectory, Stored};
use crate::plan::mapping::Profile;
use crate::plan::tests::properties::{Spec, people, run, spec, units};
use crate::plan::tests::{Harness, actions, now};
use crate::plan::{Deprovision, Guard, Mapping};
use crate::source::Principal;

#[derive(Debug, thiserror::Error)]
#[error("the listed source cannot fail")]
struct Never;

impl crate::source::SourceError for Never {
    fn reason(&self) -> &'static str {
        "Never"
    }
}

/// A source that lists what it was given.
struct Listed {
    people: Vec<Person>,
    units: Vec<OrgUnit>,
}

impl PeopleSource for Listed {
    type Error = Never;

    async fn whoami(&self) -> Result<Principal, Never> {
        Ok(Principal {
            organisation_id: "org".into(),
            key_id: "key".into(),
            scopes: Vec::new(),
            sandbox: true,
        })
    }

    fn people(&self, _: Option<Timestamp>) -> BoxStream<'static, Result<Person, Never>> {
        futures::stream::iter(self.people.clone().into_iter().map(Ok)).boxed()
    }

    async fn person(&self, id: &str) -> Result<Option<Person>, Never> {
        Ok(self.people.iter().find(|p| p.id == id).cloned())
    }

    async fn org_units(&self) -> Result<Vec<OrgUnit>, Never> {
        Ok(self.units.clone())
    }
}

/// The directory by anchor: attributes with references as anchors, enabled; groups by anchor
/// with their name and member anchors; unowned entries by id.
type Normal = (
    BTreeMap<String, (BTreeMap<String, Vec<String>>, bool)>,
    BTreeMap<String, (String, Vec<String>)>,
);

fn normal(directory: &MemoryDirectory) -> Normal {
    let entries = directory.snapshot();
    let anchor_of: BTreeMap<String, String> = entries
        .iter()
        .filter_map(|(id, e)| e.anchor.clone().map(|a| (id.clone(), a)))
        .collect();
    let by_anchor = |id: &String| anchor_of.get(id).cloned().unwrap_or_else(|| id.clone());
    let people = entries
        .iter()
        .map(|(id, stored)| {
            let key = stored
                .anchor
                .clone()
                .unwrap_or_else(|| format!("unowned {id}"));
            let attributes = stored
                .attributes
                .iter()
                .map(|(name, values)| {
                    let values = if name.to_lowercase().contains("manager") {
                        values.iter().map(by_anchor).collect()
                    } else {
                        values.clone()
                    };
                    (name.clone(), values)
                })
                .collect();
            (key, (attributes, stored.enabled))
        })
        .collect();
    let groups = directory
        .group_snapshot()
        .into_values()
        .map(|g| {
            let mut members: Vec<String> = g.members.iter().map(by_anchor).collect();
            members.sort();
            (g.anchor, (g.name, members))
        })
        .collect();
    (people, groups)
}

struct Case {
    ldap: bool,
    /// 0 disable, 1 delete, 2 disable then delete after a day (due for even-numbered people).
    deprovision: usize,
    low_guard: bool,
    adopt: bool,
    drift: usize,
    /// An incremental cycle (the people read, no org units, nobody vanishes).
    partial: bool,
    /// Targeted runs against the index a streamed full cycle left (instead of a cycle reading
    /// the directory), the people in two batches split here (with `partial`).
    kept: Option<usize>,
}

fn harness(case: &Case) -> Harness {
    let mut harness = if case.ldap {
        Harness::ldap()
    } else {
        Harness::scim()
    };
    match case.deprovision {
        1 => harness.policy.deprovision = Deprovision::Delete,
        2 => {
            harness.policy.deprovision = Deprovision::DisableThenDelete {
                delay: jiff::SignedDuration::from_hours(24),
            };
            let since = now() - jiff::SignedDuration::from_hours(48);
            harness.disabled_since = (0..12)
                .step_by(2)
                .map(|i| (format!("p{i:02}"), since))
                .collect();
        }
        _ => {}
    }
    if case.low_guard {
        harness.policy.guard = Guard {
            max_count: 1,
            max_percent: 10,
        };
    }
    if case.adopt {
        harness.policy.adoption = vec![if case.ldap { "uid" } else { "userName" }.to_owned()];
    }
    // Someone else's account, named like the people (adopted when adoption is on).
    harness.directory.insert(
        "uid=ada.turing",
        Stored {
            anchor: None,
            attributes: BTreeMap::from([
                ("uid".to_owned(), vec!["ada.turing".to_owned()]),
                (
                    "userName".to_owned(),
                    vec!["person3@example.com".to_owned()],
                ),
            ]),
            enabled: true,
        },
    );
    harness
}

fn mapping(ldap: bool) -> Mapping {
    if ldap {
        crate::plan::tests::openldap()
    } else {
        Mapping::new(Profile::Scim, &BTreeMap::new()).expect("compiles")
    }
}

fn settings(harness: &Harness, ldap: bool, chunk: usize) -> Settings {
    Settings {
        mapping: mapping(ldap),
        policy: harness.policy.clone(),
        concurrency: 3,
        overlap: super::super::engine::DEFAULT_OVERLAP,
        dry_run: false,
        chunk,
        on_step: None,
        progress: None,
    }
}

fn held(plan: &Plan) -> Vec<(String, &'static str)> {
    let mut held: Vec<_> = plan
        .held
        .iter()
        .map(|s| (s.anchor.clone(), s.action.name()))
        .collect();
    held.sort();
    held
}

/// Hand edits of managed entries: a changed title, a removed display name with a foreign
/// manager, or both.
fn drift(directory: &MemoryDirectory, drift: usize, ldap: bool) {
    let manager = if ldap {
        "manager"
    } else {
        "enterprise.manager"
    };
    for (id, mut stored) in directory.snapshot() {
        match stored.anchor.as_deref() {
            Some("p00") if drift & 1 == 1 => {
                stored
                    .attributes
                    .insert("title".into(), vec!["Drifted".into()]);
            }
            Some("p01") if drift & 2 == 2 => {
                stored.attributes.remove("displayName");
                stored
                    .attributes
                    .insert(manager.into(), vec!["uid=someone,else".into()]);
            }
            _ => continue,
        }
        directory.insert(&id, stored);
    }
}

/// What the engine hands a partial run that read `people` (nobody before the checkpoint).
fn read_of(people: usize, advance: bool) -> Partial {
    Partial {
        people_read: people,
        checkpoint: None,
        edge: BTreeMap::new(),
        source_time: std::time::Duration::ZERO,
        started: Instant::now(),
        advance,
    }
}

/// A fresh index of the directory, in a comparable form.
async fn fresh_view(harness: &Harness, settings: &Settings) -> String {
    let policy = Policy {
        directory: harness.directory.traits(),
        ..settings.policy.clone()
    };
    DirectoryIndex::read(&harness.directory, settings, &policy)
        .await
        .expect("reads")
        .view()
}

async fn compare(case: Case, before: Spec, after: Spec, archived: usize, chunk: usize) {
    let coverage = if case.partial {
        Coverage::Partial
    } else {
        Coverage::Full
    };
    let mut whole = harness(&case);
    let mut streamed = harness(&case);
    let (before, after) = (people(&before), people(&after));
    let settings = settings(&streamed, case.ldap, chunk);
    let state = SyncState {
        disabled_since: streamed.disabled_since.clone(),
        ..SyncState::default()
    };
    whole.sync(&before, &units(3)).await;
    let mut kept = None;
    if case.kept.is_some() {
        // The index a streamed full cycle leaves, settled, is what a fresh read gives.
        let source = Listed {
            people: before.clone(),
            units: units(3),
        };
        let (_, index) = full(
            &source,
            &streamed.directory,
            &settings,
            &state,
            None,
            now(),
            chunk,
        )
        .await
        .expect("the memory directory applies");
        assert_eq!(normal(&streamed.directory), normal(&whole.directory));
        let index = index.expect("kept after a cycle where every step applied");
        assert_eq!(index.view(), fresh_view(&streamed, &settings).await);
        kept = Some(index);
    } else {
        streamed.sync(&before, &units(3)).await;
        drift(&whole.directory, case.drift, case.ldap);
        drift(&streamed.directory, case.drift, case.ldap);
    }

    if let Some(split) = case.kept {
        // Two targeted runs (webhook batches), each against the index the one before left,
        // and each leaving the directory as its batch planned in one piece against a fresh
        // read does; the index stays what a fresh read gives.
        let split = split.min(after.len());
        let mut state = state.clone();
        for batch in [&after[..split], &after[split..]] {
            whole.disabled_since = state.disabled_since.clone();
            let planned = whole.sync_at(batch, None, Coverage::Partial, now()).await;
            let read = read_of(batch.len(), false);
            let (report, index) = partial::<Never, _>(
                &streamed.directory,
                &settings,
                &state,
                batch.to_vec(),
                None,
                now(),
                read,
                kept.take(),
            )
            .await
            .expect("the memory directory applies");
            assert_eq!(normal(&streamed.directory), normal(&whole.directory));
            assert_eq!(report.plan.guard, planned.guard);
            assert_eq!(held(&report.plan), held(&planned));
            let index = index.expect("kept after a run where every step applied");
            assert_eq!(index.view(), fresh_view(&streamed, &settings).await);
            kept = Some(index);
            state = report.state.clone();
        }
        return;
    }

    // An incremental cycle sees the people it read, and no org units.
    let org_units = units(archived);
    let org_units = (!case.partial).then_some(org_units.as_slice());
    let planned = whole.sync_at(&after, org_units, coverage, now()).await;
    let source = Listed {
        people: after.clone(),
        units: units(archived),
    };
    let report = if case.partial {
        let read = read_of(after.len(), true);
        partial::<Never, _>(
            &streamed.directory,
            &settings,
            &state,
            after.clone(),
            None,
            now(),
            read,
            None,
        )
        .await
        .expect("the memory directory applies")
        .0
    } else {
        full(
            &source,
            &streamed.directory,
            &settings,
            &state,
            None,
            now(),
            chunk,
        )
        .await
        .expect("the memory directory applies")
        .0
    };

    assert_eq!(normal(&streamed.directory), normal(&whole.directory));
    assert_eq!(report.plan.guard, planned.guard);
    assert_eq!(held(&report.plan), held(&planned));
    let failed = |failures: &[Failure]| {
        let mut anchors: Vec<String> = failures.iter().map(|f| f.anchor.clone()).collect();
        anchors.sort();
        anchors
    };
    assert_eq!(failed(&report.plan.failures), failed(&planned.failures));
    assert_eq!(report.plan.in_scope, planned.in_scope);
    assert_eq!(report.plan.managed, planned.managed);
    if !matches!(planned.guard, GuardDecision::Held(_)) {
        // From the state the cycle left (a disable just made starts its delay now).
        streamed.disabled_since = report.state.disabled_since.clone();
        let (again, _) = streamed
            .plan(&after, org_units, coverage, now(), None)
            .await;
        assert!(again.is_empty(), "{:?}", actions(&again));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_streamed_full_cycle_leaves_the_directory_as_a_plan_made_in_one_piece(
        before in spec(), after in spec(), archived in 0..4usize, chunk in 1..5usize,
        ldap in any::<bool>(), deprovision in 0..3usize, low_guard in any::<bool>(),
        adopt in any::<bool>(), drift in 0..4usize, partial in any::<bool>(),
    ) {
        let case = Case { ldap, deprovision, low_guard, adopt, drift, partial, kept: None };
        run(compare(case, before, after, archived, chunk));
    }

    #[test]
    fn targeted_runs_against_the_kept_index_leave_the_directory_as_a_plan_made_in_one_piece(
        before in spec(), after in spec(), chunk in 1..5usize, split in 0..12usize,
        ldap in any::<bool>(), deprovision in 0..3usize, adopt in any::<bool>(),
    ) {
        let case = Case {
            ldap, deprovision, low_guard: false, adopt, drift: 0, partial: true, kept: Some(split),
        };
        run(compare(case, before, after, 3, chunk));
    }
}

#[test]
fn a_second_streamed_cycle_writes_nothing() {
    run(async {
        let case = Case {
            ldap: true,
            deprovision: 0,
            low_guard: false,
            adopt: false,
            drift: 0,
            partial: false,
            kept: None,
        };
        let harness = harness(&case);
        let spec: Spec = (0..12)
            .map(|i| {
                (
                    i % 4,
                    i % 3,
                    i % 3,
                    (i > 0).then_some(i / 2),
                    2 + (i % 4) as u8,
                )
            })
            .collect();
        let source = Listed {
            people: people(&spec),
            units: units(3),
        };
        let settings = settings(&harness, true, 5);
        let state = SyncState::default();
        let cycle = || {
            full(
                &source,
                &harness.directory,
                &settings,
                &state,
                None,
                now(),
                5,
            )
        };
        let first = cycle().await.expect("applies").0;
        assert_eq!(first.plan.counts().get("create"), Some(&12));
        assert!(first.changed());
        let writes = harness.directory.writes();
        let second = cycle().await.expect("applies").0;
        assert!(!second.changed(), "{:?}", second.plan.counts());
        assert!(second.plan.counts().is_empty());
        assert_eq!(harness.directory.writes(), writes);
        assert_eq!(second.plan.in_scope, 12);
        assert_eq!(second.people_read, 12);
    });
}

#[test]
fn an_approval_releases_one_plan_once() {
    run(async {
        let case = Case {
            ldap: false,
            deprovision: 0,
            low_guard: true,
            adopt: false,
            drift: 0,
            partial: false,
            kept: None,
        };
        let harness = harness(&case);
        // Three people (a fourth would want the unowned entry's userName).
        let staff: Spec = (0..3).map(|i| (i, i, 0, None, 2)).collect();
        let leaving: Spec = (0..3).map(|i| (i, i, 0, None, 0)).collect();
        harness.sync(&people(&staff), &units(3)).await;
        let source = Listed {
            people: people(&leaving),
            units: units(3),
        };
        let settings = settings(&harness, false, 2);
        let cycle = |state: SyncState, approved: Option<String>| {
            let (source, harness, settings) = (&source, &harness, &settings);
            async move {
                full(
                    source,
                    &harness.directory,
                    settings,
                    &state,
                    approved.as_deref(),
                    now(),
                    2,
                )
                .await
                .expect("applies")
                .0
            }
        };
        let held = cycle(SyncState::default(), None).await;
        let GuardDecision::Held(trip) = held.plan.guard.clone() else {
            panic!("held: {:?}", held.plan.guard);
        };
        assert!(!held.changed());
        assert_eq!(held.plan.held.len(), 3);

        let released = cycle(held.state.clone(), Some(trip.hash.clone())).await;
        assert!(matches!(released.plan.guard, GuardDecision::Approved(_)));
        assert_eq!(
            released.applied.as_ref().map(|a| a.counts["disable"]),
            Some(3)
        );
        assert_eq!(
            released.state.approval_used.as_deref(),
            Some(trip.hash.as_str())
        );

        // Someone enables them again by hand: the same plan is held again, the used approval
        // does not release it a second time.
        for (id, mut stored) in harness.directory.snapshot() {
            if stored.anchor.is_some() {
                stored.enabled = true;
                harness.directory.insert(&id, stored);
            }
        }
        let again = cycle(released.state.clone(), Some(trip.hash.clone())).await;
        assert!(
            matches!(&again.plan.guard, GuardDecision::Held(t) if t.hash == trip.hash),
            "{:?}",
            again.plan.guard
        );
        assert!(!again.changed());
    });
}
