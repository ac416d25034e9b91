//! Personio as the source, end to end on real parts: the cases that are Personio's own (employment
//! statuses and terminations, departments as org units, the persons cursor, the source trait's
//! reads). The cases every source shares run for Personio in `tests/sync.rs`; both use
//! `support::hr`, whose expectations for Personio come from Personio's own wire data (persons,
//! latest employments, org units), not from the neutral mapping under test.

use futures::TryStreamExt;
use peoplesync::plan::OnLeave;
use peoplesync::source::PeopleSource;
use peoplesync::source::personio::model::Employment;
use peoplesync::sync::engine::CycleKind;
use peoplesync_sandbox::personio::{self as personio_sandbox, PersonioSandboxConfig};
use serde_json::json;

mod support;

use support::hr::personio::{Personio, client, tenant};
use support::hr::{Hr, today};

type Harness = support::hr::Harness<Personio>;

#[tokio::test]
async fn a_department_move_reaches_the_groups_and_an_incremental_cycle_reads_one_page() {
    let mut harness = Harness::start(120).await;
    harness.cycle(CycleKind::Full).await;
    let tenant = tenant(&harness.hr.client).await;
    let active = harness.hr.active().await;
    let department = |e: &Employment| {
        e.org_units
            .iter()
            .find(|u| u.kind == "department")
            .map(|u| u.id.clone())
    };
    // Someone whose department keeps other members (an emptied department keeps its group while
    // Personio has it: `full_cycles_follow_department_renames_and_deletions`).
    let members = |d: &Option<String>| tenant.iter().filter(|(_, e)| &department(e) == d).count();
    let moved = active
        .iter()
        .find(|id| {
            tenant
                .iter()
                .find(|(p, _)| &p.id == *id)
                .is_some_and(|(_, e)| department(e).is_some() && members(&department(e)) > 1)
        })
        .expect("someone in a shared department");
    let (_, employment) = tenant
        .iter()
        .find(|(p, _)| &p.id == moved)
        .expect("in the tenant");
    let from = department(employment);
    let other = tenant
        .iter()
        .filter_map(|(_, e)| department(e))
        .find(|d| Some(d) != from.as_ref())
        .expect("another department");
    harness
        .hr
        .writer
        .patch_employment(
            &harness.hr.client,
            moved,
            json!({"org_units": [{"type": "department", "id": other}]}),
        )
        .await;

    harness.hr.clear_requests().await;
    let report = harness.cycle(CycleKind::Incremental).await;
    assert!(report.people_read >= 1, "{} read", report.people_read);
    let pages = harness
        .hr
        .requests()
        .await
        .iter()
        .filter(|r| r.route == "/v2/persons")
        .count();
    assert_eq!(
        pages, 1,
        "an incremental cycle reads the changes in one page"
    );
    let moved_dn = harness.entry(moved).await.id;
    let groups = harness.groups().await;
    let group = groups
        .iter()
        .find(|g| g.anchor == other)
        .expect("the group");
    assert!(group.members.contains(&moved_dn), "moved into {other}");
    if let Some(from) = from {
        let old = groups
            .iter()
            .find(|g| g.anchor == from)
            .expect("the old group");
        assert!(!old.members.contains(&moved_dn), "left {from}");
    }
    harness.verify().await;
}

#[tokio::test]
async fn terminated_on_leave_onboarding_and_deleted_people_follow_their_lifecycle() {
    let mut harness = Harness::start(150).await;
    harness.cycle(CycleKind::Full).await;
    let active = harness.hr.active().await;
    let yesterday = today().yesterday().expect("a date").to_string();
    let next_month = today()
        .checked_add(jiff::Span::new().days(30))
        .expect("a date")
        .to_string();
    let [
        terminated,
        leaving_later,
        inactive,
        on_leave,
        onboarding,
        deleted,
    ] = [0, 1, 2, 3, 4, 5].map(|i| active[i].clone());

    harness
        .hr
        .writer
        .patch_employment(
            &harness.hr.client,
            &terminated,
            json!({"termination": {"termination_date": yesterday, "type": "EMPLOYEE"}}),
        )
        .await;
    harness.hr.writer.patch_employment(
        &harness.hr.client,
        &leaving_later,
        json!({"termination": {"termination_date": next_month}, "contract_end_date": yesterday}),
    )
    .await;
    harness
        .hr
        .writer
        .patch_employment(&harness.hr.client, &inactive, json!({"status": "INACTIVE"}))
        .await;
    harness
        .hr
        .writer
        .patch_employment(&harness.hr.client, &on_leave, json!({"status": "LEAVE"}))
        .await;
    harness
        .hr
        .writer
        .patch_employment(
            &harness.hr.client,
            &onboarding,
            json!({"status": "ONBOARDING", "employment_start_date": next_month}),
        )
        .await;
    harness.hr.writer.delete_person(&deleted).await;

    harness.cycle(CycleKind::Incremental).await;
    let entries = harness.entries().await;
    assert!(!entries[&terminated].enabled, "past the termination date");
    assert!(
        entries[&leaving_later].enabled,
        "a future termination and a contract end change nothing yet"
    );
    assert!(!entries[&inactive].enabled, "INACTIVE");
    assert!(
        entries[&on_leave].enabled,
        "on leave stays enabled by default"
    );
    assert!(!entries[&onboarding].enabled, "waits for the start date");
    assert!(
        entries[&deleted].enabled,
        "a deletion is invisible to an incremental cycle"
    );

    // Gone from Personio: the next full cycle treats the entry as vanished.
    let full = harness.cycle(CycleKind::Full).await;
    assert!(
        full.plan
            .steps
            .iter()
            .any(|s| s.anchor == deleted && s.reason == peoplesync::plan::Reason::Vanished)
    );
    assert!(!harness.entry(&deleted).await.enabled, "vanished");

    // With `onLeave: Disable`, leave disables the account, and coming back enables it.
    harness.settings.policy.on_leave = OnLeave::Disable;
    harness.cycle(CycleKind::Full).await;
    assert!(
        !harness.entry(&on_leave).await.enabled,
        "disabled during leave"
    );
    harness
        .hr
        .writer
        .patch_employment(&harness.hr.client, &on_leave, json!({"status": "ACTIVE"}))
        .await;
    harness.cycle(CycleKind::Incremental).await;
    assert!(harness.entry(&on_leave).await.enabled, "back from leave");
    harness.verify().await;
}

#[tokio::test]
async fn a_next_link_that_loops_fails_the_cycle_and_nothing_moves() {
    let mut harness = Harness::start(60).await;
    harness.hr.client = client(&harness.hr.sandbox, 10);
    harness.cycle(CycleKind::Full).await;
    let before = harness.state.clone();
    let entries = harness.entries().await;
    let controls = harness.hr.sandbox.controls();
    controls
        .faults(json!({"loop_next_link": true}))
        .await
        .expect("a fault");
    controls.clear_requests().await.expect("cleared");
    let error = harness
        .try_cycle(CycleKind::Full, None)
        .await
        .expect_err("a looping listing fails");
    assert_eq!(error.reason(), "SourceError");
    assert_eq!(error.detail(), "PaginationLoop");
    let pages = controls
        .requests()
        .await
        .expect("the log")
        .iter()
        .filter(|r| r.route == "/v2/persons")
        .count();
    assert!(
        pages <= 3,
        "stops at the repeated cursor, not spinning ({pages} pages)"
    );
    assert_eq!(harness.state, before, "the state does not move");
    assert_eq!(harness.entries().await, entries, "nothing was written");

    controls.clear_faults().await.expect("cleared");
    let report = harness.cycle(CycleKind::Full).await;
    assert!(report.plan.is_empty(), "{:?}", report.plan.counts());
}

#[tokio::test]
async fn the_source_trait_reads_changes_at_or_after_an_instant_and_one_person_by_id() {
    let sandbox = personio_sandbox::start(PersonioSandboxConfig {
        people: 40,
        rate_limit_per_minute: 0,
        ..PersonioSandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let client = client(&sandbox, 7);
    let everyone: Vec<_> = PeopleSource::people(&client, None)
        .try_collect()
        .await
        .expect("lists");
    assert_eq!(everyone.len(), 40, "every page, page size 7");
    let newest = everyone.iter().map(|p| p.updated_at).max().expect("people");
    let changed: Vec<_> = PeopleSource::people(&client, Some(newest))
        .try_collect()
        .await
        .expect("lists");
    assert!(
        changed.iter().any(|p| p.updated_at == newest),
        "the instant itself is included"
    );
    assert!(
        changed
            .iter()
            .all(|p| p.updated_at >= newest - jiff::SignedDuration::from_secs(1))
    );
    let one = PeopleSource::person(&client, &everyone[3].id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(one, everyone[3]);
    assert_eq!(
        PeopleSource::person(&client, "999999999")
            .await
            .expect("reads"),
        None
    );
}

/// Departments as Personio keeps them, at each full cycle: a renamed department renames its
/// group (the names are looked up again, not kept from the first cycle); a department nobody is
/// in any more keeps its group, emptied, while Personio still has it (as with HollyHR's org
/// units); once Personio deletes it, its group goes.
#[tokio::test]
async fn full_cycles_follow_department_renames_and_deletions() {
    let mut harness = Harness::start(120).await;
    harness.cycle(CycleKind::Full).await;
    let tenant = tenant(&harness.hr.client).await;
    let department = |e: &Employment| {
        e.org_units
            .iter()
            .find(|u| u.kind == "department")
            .map(|u| u.id.clone())
    };
    let mut by_department: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (person, employment) in &tenant {
        if let Some(id) = department(employment) {
            by_department.entry(id).or_default().push(person.id.clone());
        }
    }
    assert!(by_department.len() >= 3, "{by_department:?}");
    let mut departments = by_department.keys().cloned();
    let (renamed, emptied, refuge) = (
        departments.next().expect("a department"),
        departments.next().expect("another"),
        departments.next().expect("a third"),
    );
    let controls = harness.hr.sandbox.controls();

    // A rename reaches the group at the next full cycle.
    controls
        .rename_org_unit(&renamed, "Renamed Department")
        .await
        .expect("renamed");
    harness.cycle(CycleKind::Full).await;
    let groups = harness.groups().await;
    let group = |groups: &[peoplesync::directory::Group], id: &str| {
        groups.iter().find(|g| g.anchor == id).cloned()
    };
    assert_eq!(
        group(&groups, &renamed).expect("the renamed group").name,
        "Renamed Department"
    );
    harness.verify().await;

    // Everyone leaves `emptied` for `refuge`: the department still exists, so does its group.
    for person in &by_department[&emptied] {
        harness
            .hr
            .writer
            .patch_employment(
                &harness.hr.client,
                person,
                json!({"org_units": [{"type": "department", "id": refuge}]}),
            )
            .await;
    }
    harness.cycle(CycleKind::Full).await;
    let groups = harness.groups().await;
    let kept = group(&groups, &emptied).expect("an emptied department keeps its group");
    assert!(kept.members.is_empty(), "{kept:?}");
    let moved = harness.entry(&by_department[&emptied][0]).await.id;
    assert!(
        group(&groups, &refuge)
            .expect("the refuge")
            .members
            .contains(&moved)
            || !harness.entry(&by_department[&emptied][0]).await.enabled,
        "the members moved"
    );

    // Personio deletes the department: its group goes with the next full cycle.
    controls.delete_org_unit(&emptied).await.expect("deleted");
    harness.cycle(CycleKind::Full).await;
    let groups = harness.groups().await;
    assert!(group(&groups, &emptied).is_none(), "{groups:?}");
    harness.verify().await;
}
