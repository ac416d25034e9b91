//! The sync engine end to end on real parts: each source's sandbox (over HTTP, through the real
//! client) into a private OpenLDAP slapd or a real scim2-server. The cases every source shares
//! run once per source (`<case>::hollyhr`, `<case>::personio`) on one harness
//! (`support::hr`); the HollyHR-only cases follow, Personio's own are in `tests/personio.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::TryStreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use peoplesync::crd::LdapProfile;
use peoplesync::directory::ldap::LdapDirectory;
use peoplesync::directory::{Change, Directory, DirectoryTraits, Entry, Group, GroupChange};
use peoplesync::plan::mapping::Profile;
use peoplesync::plan::{Guard, GuardDecision, OnLeave, Policy};
use peoplesync::slapd::Slapd;
use peoplesync::source::Person;
use peoplesync::source::hollyhr::model::Lifecycle;
use peoplesync::sync::engine::{self, CycleKind, Report, SyncState};
use peoplesync::sync::stream::DirectoryIndex;
use peoplesync_sandbox::DEFAULT_API_KEY;
use secrecy::SecretString;
use serde_json::json;

mod support;

use support::hr::hollyhr::HollyHr;
use support::hr::personio::Personio;
use support::hr::{Hr, changed_anchors, one, settings};

/// The HollyHR harness of the HollyHR-only cases.
type Harness = support::hr::Harness<HollyHr>;

/// Runs each generic case once per source, as `<case>::hollyhr` and `<case>::personio`.
macro_rules! for_each_source {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn hollyhr() {
                super::$case::<super::HollyHr>().await
            }
            #[tokio::test]
            async fn personio() {
                super::$case::<super::Personio>().await
            }
        }
    )*};
}

for_each_source!(
    a_baseline_lands_exactly_and_a_second_full_run_writes_nothing,
    changes_through_the_api_and_the_ui_reach_the_directory_in_the_next_incremental_cycle,
    the_guard_holds_an_empty_source_and_an_approval_releases_that_plan_once,
    server_errors_and_rate_limit_bursts_converge_with_bounded_retries,
    a_baseline_and_an_incremental_cycle_land_in_scim2_server,
);

/// A baseline lands exactly what the source says and reads only what it may; a second full run
/// and a quiet incremental one plan nothing.
async fn a_baseline_lands_exactly_and_a_second_full_run_writes_nothing<H: Hr>() {
    let people = 400;
    let mut harness = support::hr::Harness::<H>::start(people).await;
    harness.hr.clear_requests().await;
    let first = harness.cycle(CycleKind::Full).await;
    assert!(first.changed());
    assert_eq!(first.people_read, people);
    assert!(harness.state.checkpoint.is_some());
    let groups = harness.groups().await.len();
    assert!(groups > 0, "department groups");
    H::check_baseline_reads(&harness.hr.requests().await, people, groups);
    // Everyone with access or waiting for it is created; leavers are not.
    let provisioned = harness.hr.provisioned(OnLeave::Keep).await.len();
    assert!(provisioned > people * 9 / 10, "{provisioned}");
    assert_eq!(
        first.applied.as_ref().expect("applied").counts["create"],
        provisioned as u64
    );
    harness.verify().await;

    let again = harness.cycle(CycleKind::Full).await;
    assert!(again.plan.is_empty(), "{:?}", again.plan.counts());
    assert!(!again.changed());
    let quiet = harness.cycle(CycleKind::Incremental).await;
    assert!(quiet.plan.is_empty(), "{:?}", quiet.plan.counts());
}

/// Titles changed through the write API and names edited in the UI (no webhook: only
/// `updated_at` moves) reach the directory in the next incremental cycle, and nothing else does.
async fn changes_through_the_api_and_the_ui_reach_the_directory_in_the_next_incremental_cycle<
    H: Hr,
>() {
    let mut harness = support::hr::Harness::<H>::start(150).await;
    harness.cycle(CycleKind::Full).await;
    let active = harness.hr.active().await;
    let (retitled, renamed) = (&active[..4], &active[4..6]);
    for id in retitled {
        harness.hr.retitle(id, &format!("Title {id}")).await;
    }
    for id in renamed {
        harness.hr.ui_rename(id, "Renamed").await;
    }
    let report = harness.cycle(CycleKind::Incremental).await;
    let expected: BTreeSet<String> = active[..6].iter().cloned().collect();
    assert_eq!(changed_anchors(&report), expected);
    assert_eq!(
        report
            .applied
            .as_ref()
            .expect("applied")
            .counts
            .get("rename"),
        Some(&2)
    );
    for id in retitled {
        let title = format!("Title {id}");
        assert_eq!(one(&harness.entry(id).await, "title"), Some(title.as_str()));
    }
    for id in renamed {
        let entry = harness.entry(id).await;
        assert_eq!(one(&entry, "sn"), Some("Renamed"));
        assert!(
            one(&entry, "uid").is_some_and(|uid| uid.ends_with(".renamed")),
            "{:?}",
            one(&entry, "uid")
        );
    }
    harness.verify().await;

    // Nothing new: no plan, and the directory is not read (the overlap re-read only versions
    // already applied).
    harness.hr.clear_requests().await;
    let quiet = harness.cycle(CycleKind::Incremental).await;
    assert!(quiet.plan.is_empty(), "{:?}", quiet.plan.counts());
    assert_eq!(
        quiet.plan.managed, 0,
        "the overlap re-read only versions already applied: the directory was not read"
    );
    H::check_quiet_reads(&harness.hr.requests().await);
}

/// A source that suddenly lists nobody trips the guard: nothing is deprovisioned until that very
/// plan is approved, once.
async fn the_guard_holds_an_empty_source_and_an_approval_releases_that_plan_once<H: Hr>() {
    let mut harness = support::hr::Harness::<H>::start(60).await;
    harness.settings.policy.guard = Guard::default();
    harness.cycle(CycleKind::Full).await;
    let before = harness.entries().await;
    let enabled = before.values().filter(|e| e.enabled).count();
    assert!(enabled > 40, "{enabled}");
    harness.hr.empty_tenant().await;
    let held = harness.cycle(CycleKind::Full).await;
    let GuardDecision::Held(trip) = &held.plan.guard else {
        panic!("held: {:?}", held.plan.guard);
    };
    assert_eq!(trip.reason.as_str(), "EmptySource");
    assert!(!held.changed(), "nothing deprovisioned");
    assert_eq!(harness.entries().await, before);

    let hash = trip.hash.clone();
    let released = harness
        .try_cycle(CycleKind::Full, Some(&hash))
        .await
        .expect("runs");
    assert!(matches!(released.plan.guard, GuardDecision::Approved(_)));
    assert_eq!(
        released.applied.as_ref().expect("applied").counts["disable"],
        enabled as u64
    );
    assert_eq!(harness.state.approval_used.as_deref(), Some(hash.as_str()));
    let still = harness
        .entries()
        .await
        .values()
        .filter(|e| e.enabled)
        .count();
    assert_eq!(still, 0, "the approved plan disabled everyone");
}

/// 20 % 503s and a burst of five 429s (with `Retry-After`) are retried within the budget; the
/// cycle converges.
async fn server_errors_and_rate_limit_bursts_converge_with_bounded_retries<H: Hr>() {
    let mut harness = support::hr::Harness::<H>::start(200).await;
    harness
        .hr
        .faults(json!({"error_rate": 0.2, "error_status": 503, "rate_limit_burst": 5, "retry_after_seconds": 1}))
        .await;
    harness.cycle(CycleKind::Full).await;
    let failed = harness
        .hr
        .requests()
        .await
        .iter()
        .filter(|r| r.status == 503 || r.status == 429)
        .count();
    assert!(failed >= 5, "faults were injected: {failed}");
    harness.hr.clear_faults().await;
    harness.verify().await;
    let again = harness.cycle(CycleKind::Full).await;
    assert!(again.plan.is_empty(), "{:?}", again.plan.counts());
}

/// Into a real scim2-server: a baseline provisions exactly who the source says (enabled or
/// waiting), with managers and groups; a second run plans nothing; an API change arrives in the
/// next incremental cycle.
async fn a_baseline_and_an_incremental_cycle_land_in_scim2_server<H: Hr>() {
    use peoplesync::directory::scim::{ScimConfig, ScimDirectory};
    use peoplesync::scim_server::ScimServer;
    let hr = H::start(150).await;
    let server = ScimServer::start().await.expect("scim2-server starts");
    let directory = ScimDirectory::connect(ScimConfig::new(
        &server.base_url_for("sync"),
        SecretString::from(server.token.clone()),
    ))
    .await
    .expect("connects");
    let settings = settings(Profile::Scim, Guard::default());
    let run = |state: SyncState, kind: CycleKind| {
        let (client, directory, settings) = (hr.client(), &directory, &settings);
        async move {
            let report = engine::run_cycle(
                client,
                directory,
                settings,
                &state,
                kind,
                None,
                Timestamp::now(),
            )
            .await
            .expect("the cycle succeeds");
            assert!(report.failures().is_empty(), "{:?}", report.failures());
            report
        }
    };
    let users = || async {
        let entries: Vec<Entry> = directory.entries().try_collect().await.expect("lists");
        entries
            .into_iter()
            .map(|e| (e.anchor.clone(), e))
            .collect::<BTreeMap<String, Entry>>()
    };
    let first = run(SyncState::default(), CycleKind::Full).await;
    let provisioned = hr.provisioned(OnLeave::Keep).await;
    let listed = users().await;
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        provisioned.keys().collect::<Vec<_>>()
    );
    let contacts = hr.contacts().await;
    for (id, enabled) in &provisioned {
        let user = &listed[id];
        assert_eq!(user.enabled, *enabled, "{id}");
        let (mail, last_name) = &contacts[id];
        assert_eq!(one(user, "emails.work"), mail.as_deref(), "{id}");
        assert_eq!(one(user, "name.familyName"), last_name.as_deref(), "{id}");
    }
    let with_manager = listed
        .values()
        .filter(|e| e.attributes.contains_key("enterprise.manager"))
        .count();
    assert!(with_manager > provisioned.len() / 2, "{with_manager}");
    let groups: Vec<Group> = directory.groups().try_collect().await.expect("groups");
    assert!(!groups.is_empty(), "department groups");
    let second = run(first.state.clone(), CycleKind::Full).await;
    assert!(second.plan.is_empty(), "{:?}", second.plan.counts());

    let person = hr.active().await.remove(0);
    hr.retitle(&person, "Chief Example Officer").await;
    run(second.state.clone(), CycleKind::Incremental).await;
    assert_eq!(
        one(&users().await[&person], "title"),
        Some("Chief Example Officer")
    );
}

// -------------------------------------------------------------------------------------------
// HollyHR only
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_full_cycle_in_small_chunks_lands_the_same_and_a_second_one_writes_nothing() {
    // 600 people in chunks of 37: managers created after their reports, namesakes in different
    // chunks, departments spread over every chunk.
    let mut harness = Harness::start(600).await;
    harness.settings.chunk = 37;
    // Reports in the first chunk whose new manager is listed last (people without reports of
    // their own, so no manager cycle is made).
    let listed = harness.hr.people().await;
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let managers: BTreeSet<&str> = listed
        .iter()
        .filter_map(|p| p.manager.as_ref().map(|m| m.id.as_str()))
        .collect();
    let last = listed
        .iter()
        .rev()
        .find(|p| p.lifecycle(today) == Lifecycle::Active)
        .expect("an active person");
    let reports: Vec<&Person> = listed[..37]
        .iter()
        .filter(|p| p.lifecycle(today) == Lifecycle::Active && !managers.contains(p.id.as_str()))
        .take(5)
        .collect();
    assert_eq!(reports.len(), 5);
    let controls = harness.hr.sandbox.controls();
    for report in &reports {
        controls
            .ui_edit(&report.id, json!({"manager_id": last.id}))
            .await
            .expect("edited");
    }
    let report = harness.cycle(CycleKind::Full).await;
    assert_eq!(report.people_read, 600);
    let counts = report.plan.counts();
    assert!(counts["create"] > 500, "{counts:?}");
    assert_eq!(
        counts.get("set-references"),
        Some(&5),
        "the five reports get their manager once it exists: {counts:?}"
    );
    harness.verify().await;

    let again = harness.cycle(CycleKind::Full).await;
    assert!(again.plan.is_empty(), "{:?}", again.plan.counts());
    assert!(!again.changed());
    let writes: u64 = again.applied.iter().flat_map(|a| a.counts.values()).sum();
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn exclusive_updated_since_and_shared_timestamps_lose_nothing() {
    let mut harness = Harness::start(100).await;
    let controls = harness.hr.sandbox.controls();
    controls
        .settings(json!({"updated_since_exclusive": true}))
        .await
        .expect("set");
    controls
        .clock(json!({"frozen": true}))
        .await
        .expect("frozen");
    harness.cycle(CycleKind::Full).await;
    let people = harness.hr.people().await;
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let active: Vec<&Person> = people
        .iter()
        .filter(|p| p.lifecycle(today) == Lifecycle::Active)
        .collect();
    // Two edits at the same frozen instant, a cycle between them: the second shares the
    // checkpoint's timestamp, which a strict filter without overlap would skip.
    harness.hr.retitle(&active[0].id, "First").await;
    let first = harness.cycle(CycleKind::Incremental).await;
    assert_eq!(
        changed_anchors(&first),
        BTreeSet::from([active[0].id.clone()])
    );
    harness.hr.retitle(&active[1].id, "Second").await;
    let second = harness.cycle(CycleKind::Incremental).await;
    assert!(changed_anchors(&second).contains(&active[1].id));
    harness.verify().await;
}

#[tokio::test]
async fn leavers_rehires_future_starters_and_vanished_people_follow_their_lifecycle() {
    let mut harness = Harness::start(200).await;
    harness.cycle(CycleKind::Full).await;
    let controls = harness.hr.sandbox.controls();
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let people = harness.hr.people().await;
    let active: Vec<&Person> = people
        .iter()
        .filter(|p| p.lifecycle(today) == Lifecycle::Active)
        .collect();
    let yesterday = today.yesterday().expect("a date").to_string();
    let next_year = today
        .checked_add(jiff::Span::new().years(1))
        .expect("a date")
        .to_string();
    let leaver = active[0].id.clone();
    let starter = active[1].id.clone();
    controls
        .ui_edit(&leaver, json!({"end_date": yesterday}))
        .await
        .expect("ended");
    controls
        .ui_edit(&starter, json!({"start_date": next_year}))
        .await
        .expect("moved");
    let report = harness.cycle(CycleKind::Incremental).await;
    let entries = harness.entries().await;
    assert!(!entries[&leaver].enabled, "the leaver is disabled");
    assert!(!entries[&starter].enabled, "the new start date waits");
    assert_eq!(
        report.applied.as_ref().expect("applied").counts["disable"],
        2
    );
    harness.verify().await;

    // The rehire: the end date moves out again.
    let next_month = today
        .checked_add(jiff::Span::new().months(1))
        .expect("a date")
        .to_string();
    controls
        .ui_edit(&leaver, json!({"end_date": next_month}))
        .await
        .expect("rehired");
    harness.cycle(CycleKind::Incremental).await;
    assert!(harness.entries().await[&leaver].enabled, "re-enabled");

    // A person who vanishes from the source (a smaller tenant, same seed) is a leaver at the
    // next full cycle only.
    let before: BTreeSet<String> = harness
        .hr
        .people()
        .await
        .into_iter()
        .map(|p| p.id)
        .collect();
    controls.reset(195).await.expect("reset");
    let after: BTreeSet<String> = harness
        .hr
        .people()
        .await
        .into_iter()
        .map(|p| p.id)
        .collect();
    let vanished: Vec<&String> = before.difference(&after).collect();
    assert!(!vanished.is_empty());
    let report = harness.cycle(CycleKind::Full).await;
    let entries = harness.entries().await;
    for id in vanished {
        if let Some(entry) = entries.get(id) {
            assert!(!entry.enabled, "{id} vanished and is disabled");
        }
    }
    assert!(
        report
            .plan
            .steps
            .iter()
            .any(|s| s.reason.as_str() == "Vanished")
    );
}

/// A directory that stops its slapd after `after` writes, mid-cycle.
struct Failing<'a> {
    inner: &'a LdapDirectory,
    slapd: std::sync::Mutex<&'a mut Slapd>,
    writes: AtomicUsize,
    after: usize,
}

impl Directory for Failing<'_> {
    type Error = peoplesync::directory::ldap::LdapBackendError;

    fn traits(&self) -> DirectoryTraits {
        self.inner.traits()
    }
    async fn check(&self) -> Result<(), Self::Error> {
        self.inner.check().await
    }
    fn entries(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        self.inner.entries()
    }
    fn unowned(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        self.inner.unowned()
    }
    async fn apply(&self, change: &Change) -> Result<String, Self::Error> {
        if self.writes.fetch_add(1, Ordering::SeqCst) == self.after {
            self.slapd.lock().expect("not poisoned").stop();
        }
        self.inner.apply(change).await
    }
    fn groups(&self) -> BoxStream<'_, Result<Group, Self::Error>> {
        self.inner.groups()
    }
    async fn apply_group(&self, change: &GroupChange) -> Result<String, Self::Error> {
        self.inner.apply_group(change).await
    }
}

#[tokio::test]
async fn a_directory_outage_mid_cycle_keeps_the_checkpoint_and_the_next_cycle_converges() {
    let mut harness = Harness::start(200).await;
    let state = harness.state.clone();
    let failing = Failing {
        inner: &harness.directory,
        slapd: std::sync::Mutex::new(&mut harness.slapd),
        writes: AtomicUsize::new(0),
        after: 50,
    };
    let error = engine::run_cycle(
        &harness.hr.client,
        &failing,
        &harness.settings,
        &state,
        CycleKind::Full,
        None,
        Timestamp::now(),
    )
    .await
    .expect_err("slapd went away");
    assert_eq!(error.reason(), "DirectoryError");
    assert_eq!(error.detail(), "DirectoryUnreachable");
    assert_eq!(
        harness.state.checkpoint, None,
        "the checkpoint did not move"
    );

    harness.slapd.start_again().await.expect("slapd is back");
    harness.cycle(CycleKind::Full).await;
    harness.verify().await;
}

/// Writes a config and Secrets for the standalone commands, as a user would.
fn standalone_files(harness: &Harness) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = harness.slapd.dir().join("standalone");
    let secrets = dir.join("secrets");
    for (name, key, value) in [
        ("hollyhr", "apiKey", DEFAULT_API_KEY),
        ("ldap", "password", harness.slapd.admin_password.as_str()),
    ] {
        std::fs::create_dir_all(secrets.join(name)).expect("dir");
        std::fs::write(secrets.join(name).join(key), value).expect("secret");
    }
    let config = dir.join("peoplesync.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: peoplesync.dev/v1alpha1\nkind: PeopleSync\nmetadata: {{name: acme}}\nspec:\n  source:\n    hollyhr: {{baseUrl: \"{}\", apiKeySecretRef: {{name: hollyhr, key: apiKey}}}}\n  target:\n    ldap: {{url: \"{}\", bindDn: \"{}\", bindPasswordSecretRef: {{name: ldap, key: password}}, baseDn: \"{}\", peopleDn: \"{}\", groupsDn: \"{}\"}}\n",
            harness.hr.sandbox.base_url(),
            harness.slapd.url(),
            peoplesync::slapd::ADMIN_DN,
            peoplesync::slapd::BASE_DN,
            peoplesync::slapd::PEOPLE_DN,
            peoplesync::slapd::GROUPS_DN,
        ),
    )
    .expect("config");
    (config, dir)
}

/// Runs the binary (asynchronously: the sandbox serves it from this test's runtime).
async fn peoplesync(args: &[&str]) -> String {
    let owned: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_peoplesync"))
            .args(owned)
            .output()
    })
    .await
    .expect("joins")
    .expect("runs");
    assert!(
        output.status.success(),
        "peoplesync {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_standalone_commands_dry_run_explain_and_apply_one_person() {
    let mut harness = Harness::start(60).await;
    // The file describes the object `acme` (namespace `default`): its entries carry that mark.
    harness.directory = LdapDirectory::connect(
        harness
            .slapd
            .ldap_config()
            .owned_by_object("default", "acme"),
    )
    .await
    .expect("binds");
    let (config, dir) = standalone_files(&harness);
    let config = config.to_str().expect("utf-8").to_owned();

    let dry = peoplesync(&["sync", "--config", &config, "--once", "--dry-run"]).await;
    assert!(dry.contains("dry run, nothing written"), "{dry}");
    assert!(dry.contains("create"), "{dry}");
    assert!(
        harness.entries().await.is_empty(),
        "a dry run writes nothing"
    );
    assert!(!dir.join("peoplesync.yaml.state.json").exists());

    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let person = harness
        .hr
        .people()
        .await
        .into_iter()
        .find(|p| p.lifecycle(today) == Lifecycle::Active)
        .expect("someone active");
    let explained = peoplesync(&["explain", "--config", &config, "--person", &person.id]).await;
    assert!(
        explained.contains(&format!("Person {}", person.id)),
        "{explained}"
    );
    assert!(explained.contains("in scope"), "{explained}");
    assert!(
        explained.contains("no entry carries this person's anchor"),
        "{explained}"
    );
    assert!(explained.contains("create"), "{explained}");
    assert!(explained.contains("employeeNumber"), "{explained}");
    // The same facts as data: the plan's create with its attributes, before anything is written.
    let as_json: serde_json::Value = serde_json::from_str(
        &peoplesync(&[
            "explain", "--config", &config, "--person", &person.id, "-o", "json",
        ])
        .await,
    )
    .expect("explain -o json prints one JSON document");
    assert_eq!(as_json["personId"], person.id.as_str());
    assert_eq!(
        as_json["person"]["display_name"],
        person.display_name.as_str()
    );
    assert_eq!(as_json["inScope"], true);
    assert_eq!(as_json["plan"][0]["action"], "create");
    assert_eq!(as_json["plan"][0]["held"], false);
    assert!(as_json["entry"].is_null(), "{as_json}");
    assert_eq!(
        as_json["mapped"]["employeeNumber"][0],
        person.id.as_str(),
        "{as_json}"
    );
    assert!(
        as_json["plan"][0]["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["attribute"] == "employeeNumber"),
        "{as_json}"
    );

    let applied = peoplesync(&[
        "explain", "--config", &config, "--person", &person.id, "--apply",
    ])
    .await;
    assert!(applied.contains("Applied          create 1"), "{applied}");
    let entries = harness.entries().await;
    assert_eq!(entries.len(), 1);
    assert!(entries.contains_key(&person.id));

    let again = peoplesync(&["explain", "--config", &config, "--person", &person.id]).await;
    assert!(again.contains("nothing to do"), "{again}");
    assert!(again.contains("matched by its anchor"), "{again}");
    let as_yaml: serde_json::Value = serde_yaml_ng::from_str(
        &peoplesync(&[
            "explain", "--config", &config, "--person", &person.id, "--output", "yaml",
        ])
        .await,
    )
    .expect("explain -o yaml prints one YAML document");
    assert_eq!(as_yaml["plan"], serde_json::json!([]), "{as_yaml}");
    assert_eq!(as_yaml["entry"]["enabled"], true, "{as_yaml}");

    // The report as data: a dry run in JSON (one object, its planned steps with ids and
    // attribute names, no table rows), then the real cycle.
    let json = peoplesync(&[
        "sync",
        "--config",
        &config,
        "--once",
        "--dry-run",
        "-o",
        "json",
    ])
    .await;
    let report: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    assert_eq!(report["dryRun"], true, "{json}");
    assert_eq!(report["kind"], "full", "{json}");
    assert_eq!(report["peopleRead"], 60, "{json}");
    assert!(report["changes"]["create"].as_u64() > Some(0), "{json}");
    let planned = report["planned"].as_array().expect("planned steps");
    assert!(!planned.is_empty(), "{json}");
    assert!(planned[0]["personId"].is_string() && planned[0]["attributes"].is_array());
    assert!(
        !json.contains(&person.display_name),
        "ids and names of attributes only: {json}"
    );

    let synced = peoplesync(&["sync", "--config", &config, "--once"]).await;
    assert!(synced.contains("full cycle"), "{synced}");
    assert!(
        dir.join("peoplesync.yaml.state.json").exists(),
        "the state is kept"
    );
    let incremental = peoplesync(&["sync", "--config", &config, "--once"]).await;
    assert!(incremental.contains("incremental cycle"), "{incremental}");
    assert!(incremental.contains("no changes"), "{incremental}");
    let yaml = peoplesync(&["sync", "--config", &config, "--once", "-o", "yaml"]).await;
    assert!(yaml.starts_with("---\n"), "{yaml}");
    let report: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("a YAML document");
    assert_eq!(report["kind"], "incremental", "{yaml}");
    assert_eq!(report["dryRun"], false, "{yaml}");
    assert_eq!(report["changes"], serde_json::json!({}), "{yaml}");
}

#[tokio::test]
async fn existing_accounts_are_adopted_by_mail_and_ambiguous_ones_are_reported() {
    let mut harness = Harness::start(100).await;
    harness.settings.policy.adoption = vec!["mail".into(), "uid".into()];
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let people = harness.hr.people().await;
    let active: Vec<&Person> = people
        .iter()
        .filter(|p| p.lifecycle(today) == Lifecycle::Active && p.work_email.is_some())
        .collect();
    let (adoptee, ambiguous) = (active[0], active[1]);
    // Accounts made by hand before PeopleSync: one matches by mail, two share another mail.
    let admin = harness.slapd.admin().await.expect("an admin connection");
    let add = |uid: &str, mail: &str| {
        let mut admin = admin.clone();
        let dn = format!("uid={uid},{}", peoplesync::slapd::PEOPLE_DN);
        let attrs: Vec<(String, std::collections::HashSet<String>)> = vec![
            (
                "objectClass".into(),
                ["top", "person", "organizationalPerson", "inetOrgPerson"]
                    .map(String::from)
                    .into(),
            ),
            ("uid".into(), [uid.to_owned()].into()),
            ("cn".into(), ["Hand Made".to_owned()].into()),
            ("sn".into(), ["Made".to_owned()].into()),
            ("mail".into(), [mail.to_owned()].into()),
        ];
        async move {
            admin
                .add(&dn, attrs)
                .await
                .expect("add")
                .success()
                .expect("added");
            dn
        }
    };
    let adopted_dn = add("old.account", adoptee.work_email.as_deref().expect("mail")).await;
    let other = ambiguous.work_email.as_deref().expect("mail");
    add("twin.one", other).await;
    add("twin.two", other).await;

    let report = harness
        .try_cycle(CycleKind::Full, None)
        .await
        .expect("the cycle runs");
    let failures = report.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].anchor, ambiguous.id);
    assert_eq!(failures[0].reason, "AmbiguousMatch");
    let entries = harness.entries().await;
    let adopted = &entries[&adoptee.id];
    assert_eq!(
        adopted.attributes["cn"],
        vec![adoptee.display_name.clone()],
        "brought in line with HollyHR"
    );
    assert!(
        adopted.id == adopted_dn || adopted.id.starts_with("uid="),
        "{}",
        adopted.id
    );
    assert!(!entries.contains_key(&ambiguous.id), "nothing guessed");
    assert_eq!(
        harness.state.retry.iter().collect::<Vec<_>>(),
        [&ambiguous.id]
    );
}

#[tokio::test]
async fn a_full_cycle_reverts_manual_drift_of_managed_attributes_and_leaves_others_alone() {
    let mut harness = Harness::start(50).await;
    harness.cycle(CycleKind::Full).await;
    let entries = harness.entries().await;
    let (anchor, entry) = entries
        .iter()
        .find(|(_, e)| e.enabled && e.attributes.contains_key("title"))
        .expect("an entry with a title");
    let mut admin = harness.slapd.admin().await.expect("an admin connection");
    // Someone edits a managed attribute by hand, and adds one PeopleSync does not manage.
    admin
        .modify(
            &entry.id,
            vec![
                ldap3::Mod::Replace("title".to_owned(), ["Self-appointed CEO".to_owned()].into()),
                ldap3::Mod::Add(
                    "description".to_owned(),
                    ["Desk by the window".to_owned()].into(),
                ),
            ],
        )
        .await
        .expect("modify")
        .success()
        .expect("modified");
    let quiet = harness.cycle(CycleKind::Incremental).await;
    assert!(
        quiet.plan.is_empty(),
        "HollyHR did not change: no webhook, no update"
    );
    let full = harness.cycle(CycleKind::Full).await;
    let updated: Vec<_> = full
        .plan
        .steps
        .iter()
        .filter(|s| s.action.name() == "update")
        .collect();
    assert_eq!(updated.len(), 1);
    assert_eq!(&updated[0].anchor, anchor);
    assert_eq!(updated[0].action.attribute_names(), ["title"]);
    let after = &harness.entries().await[anchor];
    assert_eq!(
        after.attributes["title"], entry.attributes["title"],
        "reverted"
    );
    assert_eq!(
        after.attributes["description"],
        ["Desk by the window"],
        "an attribute PeopleSync does not map is left alone"
    );
}

#[tokio::test]
async fn one_person_is_applied_at_once_without_moving_the_checkpoint_past_anyone_else() {
    let mut harness = Harness::start(80).await;
    harness.cycle(CycleKind::Full).await;
    let checkpoint = harness.state.checkpoint;
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let people = harness.hr.people().await;
    let active: Vec<&Person> = people
        .iter()
        .filter(|p| p.lifecycle(today) == Lifecycle::Active)
        .collect();
    harness.hr.retitle(&active[0].id, "Other change").await;
    harness.hr.retitle(&active[1].id, "Webhook change").await;
    // What a webhook for the second person triggers.
    let report = engine::run_people(
        &harness.hr.client,
        &harness.directory,
        &harness.settings,
        &harness.state,
        std::slice::from_ref(&active[1].id),
        &mut None,
        Timestamp::now(),
    )
    .await
    .expect("runs");
    assert_eq!(
        changed_anchors(&report),
        BTreeSet::from([active[1].id.clone()])
    );
    assert_eq!(
        report.state.checkpoint, checkpoint,
        "the checkpoint did not move"
    );
    harness.state = report.state;
    let entries = harness.entries().await;
    assert_eq!(
        entries[&active[1].id].attributes["title"],
        ["Webhook change"]
    );
    assert_ne!(entries[&active[0].id].attributes["title"], ["Other change"]);
    // The next incremental cycle still sees the first change.
    let next = harness.cycle(CycleKind::Incremental).await;
    assert!(changed_anchors(&next).contains(&active[0].id));
    harness.verify().await;
}

#[tokio::test]
async fn a_kept_directory_index_stays_what_a_fresh_read_gives() {
    let mut harness = Harness::start(120).await;
    harness.cycle(CycleKind::Full).await;
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let active: Vec<Person> = harness
        .hr
        .people()
        .await
        .into_iter()
        .filter(|p| p.lifecycle(today) == Lifecycle::Active)
        .collect();
    let controls = harness.hr.sandbox.controls();
    let mut index = None;

    // The first run of a burst reads the directory into an index and keeps it.
    harness.hr.retitle(&active[0].id, "Kept once").await;
    engine::run_people(
        &harness.hr.client,
        &harness.directory,
        &harness.settings,
        &harness.state,
        std::slice::from_ref(&active[0].id),
        &mut index,
        Timestamp::now(),
    )
    .await
    .expect("runs");
    assert!(index.is_some(), "kept after a run where every step applied");

    // The next plans against the kept index: a title, a rename, a department move (groups),
    // a leaver (disabled) and a new manager (a reference).
    harness.hr.retitle(&active[1].id, "Kept twice").await;
    controls
        .ui_edit(&active[2].id, json!({"last_name": "Kept"}))
        .await
        .expect("edited");
    let department = |p: &Person| p.department.as_ref().map(|d| d.id.clone());
    let other = active
        .iter()
        .filter_map(department)
        .find(|d| Some(d) != department(&active[3]).as_ref())
        .expect("two departments");
    controls
        .ui_edit(&active[3].id, json!({"department_org_unit_id": other}))
        .await
        .expect("edited");
    let yesterday = today.yesterday().expect("a date").to_string();
    controls
        .ui_edit(&active[4].id, json!({"end_date": yesterday}))
        .await
        .expect("edited");
    controls
        .ui_edit(&active[5].id, json!({"manager_id": active[6].id}))
        .await
        .expect("edited");
    let ids: Vec<String> = active[1..=5].iter().map(|p| p.id.clone()).collect();
    let report = engine::run_people(
        &harness.hr.client,
        &harness.directory,
        &harness.settings,
        &harness.state,
        &ids,
        &mut index,
        Timestamp::now(),
    )
    .await
    .expect("runs");
    let actions: BTreeSet<&str> = report.plan.steps.iter().map(|s| s.action.name()).collect();
    for action in [
        "update",
        "rename",
        "disable",
        "set-group-members",
        "set-references",
    ] {
        assert!(actions.contains(action), "{action} in {actions:?}");
    }
    assert!(report.failures().is_empty(), "{:?}", report.failures());

    // What the applier kept is what a fresh read of slapd gives: entries (ids, enabled,
    // attribute hashes, unique values), manager references, groups and members.
    let kept = index.expect("kept again");
    let policy = Policy {
        directory: harness.directory.traits(),
        ..harness.settings.policy.clone()
    };
    let fresh = DirectoryIndex::read(&harness.directory, &harness.settings, &policy)
        .await
        .expect("reads");
    assert_eq!(kept.view(), fresh.view());
}

/// The plan's counts and the hash status shows for it (made of every deprovision).
fn counts_and_hash(report: &Report) -> (BTreeMap<&'static str, usize>, String) {
    let hash = match &report.plan.guard {
        GuardDecision::Held(trip) | GuardDecision::Approved(trip) => trip.hash.clone(),
        GuardDecision::Clear => peoplesync::plan::guard::deprovision_hash(report.plan.steps.iter()),
    };
    (report.plan.counts(), hash)
}

#[tokio::test]
async fn a_dry_run_of_10k_people_writes_nothing_and_plans_what_the_real_cycle_then_does() {
    let mut harness = Harness::start(10_000).await;
    let mut dry_settings = settings(
        Profile::Ldap(LdapProfile::OpenLdap),
        Guard {
            max_count: 10_000,
            max_percent: 100,
        },
    );
    dry_settings.dry_run = true;
    let pair = async |harness: &mut Harness| {
        let csn = harness.slapd.highest_csn().await.expect("reads");
        let dry = engine::run_cycle(
            &harness.hr.client,
            &harness.directory,
            &dry_settings,
            &harness.state,
            CycleKind::Full,
            None,
            Timestamp::now(),
        )
        .await
        .expect("the dry run plans");
        assert_eq!(
            harness.slapd.highest_csn().await.expect("reads"),
            csn,
            "nothing was written"
        );
        assert!(dry.applied.is_none());
        assert_eq!(dry.state, harness.state, "a dry run moves no state");
        let real = harness.cycle(CycleKind::Full).await;
        let applied: BTreeMap<&'static str, usize> = real
            .applied
            .as_ref()
            .expect("applied")
            .counts
            .iter()
            .map(|(action, n)| (*action, *n as usize))
            .collect();
        assert_eq!(counts_and_hash(&dry), counts_and_hash(&real));
        assert_eq!(
            dry.plan.counts(),
            applied,
            "the real cycle did what was planned"
        );
        assert_eq!(held(&dry), held(&real));
        dry.plan.counts()
    };
    // Into an empty directory: creates, references, groups.
    let first = pair(&mut harness).await;
    assert!(first.get("create").is_some_and(|n| *n > 9_000), "{first:?}");

    // Then leavers, a rename, a department move and a title change.
    let people = harness.hr.people().await;
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let active: Vec<&Person> = people
        .iter()
        .filter(|p| p.lifecycle(today) == Lifecycle::Active)
        .collect();
    let controls = harness.hr.sandbox.controls();
    let yesterday = today.yesterday().expect("a date").to_string();
    for leaver in &active[..20] {
        controls
            .ui_edit(&leaver.id, json!({"end_date": yesterday}))
            .await
            .expect("edited");
    }
    controls
        .ui_edit(&active[20].id, json!({"last_name": "Renamed"}))
        .await
        .expect("edited");
    harness.hr.retitle(&active[21].id, "Dry run").await;
    let second = pair(&mut harness).await;
    assert_eq!(second.get("disable"), Some(&20), "{second:?}");
    assert_eq!(second.get("rename"), Some(&1), "{second:?}");
    harness.verify().await;
}

fn held(report: &Report) -> Vec<(String, &'static str)> {
    let mut held: Vec<_> = report
        .plan
        .held
        .iter()
        .map(|s| (s.anchor.clone(), s.action.name()))
        .collect();
    held.sort();
    held
}

/// The counters `peoplesync sync` draws its progress line from end where the cycle's report
/// does: people read, changes planned and carried out; a second full cycle expects as many
/// people as the directory manages.
#[tokio::test]
async fn a_full_cycle_advances_the_progress_counters_to_its_report() {
    use std::sync::Arc;

    use peoplesync::sync::engine::Progress;

    let mut harness = Harness::start(120).await;
    let counters = Arc::new(Progress::default());
    harness.settings.progress = Some(counters.clone());
    let report = harness.cycle(CycleKind::Full).await;
    let (read, expected, planned, applied) = counters.snapshot();
    let written: u64 = report
        .applied
        .as_ref()
        .map_or(0, |a| a.counts.values().sum());
    assert_eq!(read, report.people_read, "people read");
    assert_eq!(expected, 0, "an empty directory manages nobody");
    assert!(written > 100, "{written} changes");
    assert_eq!(applied as u64, written, "changes carried out");
    assert_eq!(planned, applied, "everything planned was carried out");

    let managed = harness.entries().await.len();
    let counters = Arc::new(Progress::default());
    harness.settings.progress = Some(counters.clone());
    let again = harness.cycle(CycleKind::Full).await;
    assert_eq!(
        counters.snapshot(),
        (again.people_read, managed, 0, 0),
        "a second full cycle reads everyone, expects the managed entries, changes nothing"
    );
}

/// An upgrade from a version that did not mark what it made (issue #29): a directory where
/// PeopleSync's entries carry their person's id but no mark, beside payroll accounts. The first
/// full cycle of an object that synced before claims exactly its people's entries, with the
/// mark as the only write, and leaves the payroll accounts as they were; an object that never
/// synced claims nothing.
#[tokio::test]
async fn an_upgrade_marks_the_entries_peoplesync_made_and_nothing_else() {
    use ldap3::{Mod, Scope, SearchEntry};
    use std::collections::HashSet;
    let mut harness = Harness::start(60).await;
    harness.cycle(CycleKind::Full).await;
    let made = harness.entries().await;
    assert!(made.len() > 30, "{}", made.len());
    // As an earlier version left the directory: no marks.
    let mark = peoplesync::directory::standalone_mark();
    let mut admin = harness.slapd.admin().await.expect("an admin connection");
    for entry in made.values() {
        admin
            .modify(
                &entry.id,
                vec![Mod::Delete(
                    "businessCategory".to_owned(),
                    HashSet::from([mark.clone()]),
                )],
            )
            .await
            .expect("modify")
            .success()
            .expect("unmarked");
    }
    // Payroll accounts beside them, one holding a number that is no person's id.
    for n in 0..5 {
        let dn = format!("uid=payroll-{n},{}", peoplesync::slapd::PEOPLE_DN);
        let set = |v: String| HashSet::from([v]);
        admin
            .add(
                &dn,
                vec![
                    (
                        "objectClass".to_owned(),
                        ["top", "person", "organizationalPerson", "inetOrgPerson"]
                            .map(String::from)
                            .into(),
                    ),
                    ("uid".to_owned(), set(format!("payroll-{n}"))),
                    ("cn".to_owned(), set(format!("Payroll {n}"))),
                    ("sn".to_owned(), set(format!("Payroll{n}"))),
                    (
                        "employeeNumber".to_owned(),
                        set(format!("P{}", 100_000 + n)),
                    ),
                ],
            )
            .await
            .expect("add")
            .success()
            .expect("added");
    }
    let snapshot = |mut admin: ldap3::Ldap| async move {
        let (entries, _) = admin
            .search(
                peoplesync::slapd::PEOPLE_DN,
                Scope::OneLevel,
                "(objectClass=person)",
                vec!["*", "entryCSN"],
            )
            .await
            .expect("search")
            .success()
            .expect("searched");
        entries
            .into_iter()
            .map(SearchEntry::construct)
            .map(|e| (e.dn, e.attrs))
            .collect::<BTreeMap<_, _>>()
    };
    let before = snapshot(admin.clone()).await;
    assert!(harness.entries().await.is_empty(), "nothing is marked now");

    // An object that never synced claims nothing (a dry run shows it).
    let fresh = SyncState::default();
    let mut settings = settings(
        Profile::Ldap(LdapProfile::OpenLdap),
        support::hr::OPEN_GUARD,
    );
    settings.dry_run = true;
    let preview = engine::run_cycle(
        harness.hr.client(),
        &harness.directory,
        &settings,
        &fresh,
        CycleKind::Full,
        None,
        Timestamp::now(),
    )
    .await
    .expect("the dry run runs");
    assert_eq!(
        preview.plan.counts().get("adopt"),
        None,
        "{:?}",
        preview.plan.counts()
    );
    assert_eq!(preview.plan.left_alone.unmarked, made.len() + 5);

    // The upgraded object: its entries are claimed, with the mark as the only write.
    assert!(harness.state.last_full_sync.is_some());
    harness.state.marked = false;
    let report = harness.cycle(CycleKind::Full).await;
    let counts = report.plan.counts();
    assert_eq!(
        counts,
        BTreeMap::from([("adopt", made.len())]),
        "claims only: {counts:?}"
    );
    assert!(harness.state.marked, "the next cycles claim nothing");
    assert_eq!(report.plan.left_alone.unmarked, 5);
    let after = snapshot(admin.clone()).await;
    for (dn, attrs) in &before {
        let now = &after[dn];
        let ours = made.values().any(|e| &e.id == dn);
        if ours {
            let mut expected = attrs.clone();
            expected.insert("businessCategory".into(), vec![mark.clone()]);
            expected.remove("entryCSN");
            let mut got = now.clone();
            got.remove("entryCSN");
            assert_eq!(got, expected, "{dn}: only the mark is new");
        } else {
            assert_eq!(now, attrs, "{dn} is untouched");
        }
    }
    assert_eq!(harness.entries().await.len(), made.len());
    harness.verify().await;
    let again = harness.cycle(CycleKind::Full).await;
    assert!(again.plan.counts().is_empty(), "{:?}", again.plan.counts());
}
