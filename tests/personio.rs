//! Personio as the source, end to end on real parts: the Personio sandbox (over HTTP, through the
//! real client: token, cursor pages, one employment read per person, org-unit names) into a
//! private OpenLDAP slapd and a real scim2-server. Expectations are computed from Personio's own
//! wire data (persons, latest employments, org units), not from the neutral mapping under test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::TryStreamExt;
use jiff::Timestamp;
use jiff::civil::Date;
use peoplesync::crd::LdapProfile;
use peoplesync::directory::ldap::LdapDirectory;
use peoplesync::directory::{Directory, Entry, Group};
use peoplesync::plan::mapping::Profile;
use peoplesync::plan::{Guard, Mapping, OnLeave, Policy};
use peoplesync::retry::RetryPolicy;
use peoplesync::slapd::Slapd;
use peoplesync::source::PeopleSource;
use peoplesync::source::personio::model::{Employment, Person as PersonioPerson};
use peoplesync::source::personio::{PersonioClient, PersonioConfig, PersonioError, PersonsQuery};
use peoplesync::sync::engine::SyncState;
use peoplesync::sync::engine::{self, CycleError, CycleKind, DEFAULT_OVERLAP, Report, Settings};
use peoplesync_sandbox::personio::{
    self as personio_sandbox, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioSandboxConfig,
    PersonioSandboxHandle,
};
use secrecy::SecretString;
use serde_json::{Value, json};

fn client(sandbox: &PersonioSandboxHandle, page_size: u32) -> PersonioClient {
    let mut config = PersonioConfig::new(
        sandbox.base_url().parse().expect("a URL"),
        DEFAULT_CLIENT_ID,
        SecretString::from(DEFAULT_CLIENT_SECRET),
    );
    config.page_size = page_size;
    config.app_id = Some("PEOPLESYNC_TESTS".into());
    // Fast retries: the behaviour, not the production timings. As many attempts as it takes for
    // the fault test (a burst of five 429s on the token request, then 20 % 503s) to be
    // practically certain to get through, as production's budget is.
    config.retry = RetryPolicy {
        max_attempts: 12,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        max_elapsed: Duration::from_secs(30),
    };
    PersonioClient::new(config).expect("a client")
}

fn settings(profile: Profile) -> Settings {
    Settings {
        mapping: Mapping::new(profile, &BTreeMap::new()).expect("compiles"),
        policy: Policy {
            // The scenarios deprovision on purpose; the guard has its own tests.
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
        progress: None,
    }
}

fn today() -> Date {
    Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// Changes people the way HR does, through Personio's write API (`personio:persons:write`).
struct Hr {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Hr {
    async fn new(sandbox: &PersonioSandboxHandle) -> Self {
        let http = reqwest::Client::new();
        let base = sandbox.base_url();
        let token: Value = http
            .post(format!("{base}/v2/auth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
                ("scope", "personio:persons:read personio:persons:write"),
            ])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("a write token")
            .json()
            .await
            .expect("a token body");
        Self {
            http,
            base,
            token: token["access_token"].as_str().expect("a token").to_owned(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the sandbox answers");
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }

    async fn patch_person(&self, id: &str, body: Value) {
        self.send(
            reqwest::Method::PATCH,
            &format!("/v2/persons/{id}"),
            Some(body),
        )
        .await;
    }

    async fn patch_employment(&self, client: &PersonioClient, person: &str, body: Value) {
        let employment = client
            .latest_employment(person)
            .await
            .expect("reads")
            .expect("an employment");
        self.send(
            reqwest::Method::PATCH,
            &format!("/v2/persons/{person}/employments/{}", employment.id),
            Some(body),
        )
        .await;
    }

    async fn delete_person(&self, id: &str) {
        self.send(reqwest::Method::DELETE, &format!("/v2/persons/{id}"), None)
            .await;
    }
}

/// Everyone as Personio shows them: the person and their latest employment.
async fn tenant(client: &PersonioClient) -> Vec<(PersonioPerson, Employment)> {
    let persons: Vec<PersonioPerson> = client
        .persons(&PersonsQuery::default())
        .try_collect()
        .await
        .expect("lists");
    let mut out = Vec::new();
    for person in persons {
        let employment = client
            .latest_employment(&person.id)
            .await
            .expect("reads")
            .expect("every seeded person has an employment");
        out.push((person, employment));
    }
    out
}

fn date(value: Option<&str>) -> Option<Date> {
    value.and_then(|v| v.get(..10)).and_then(|v| v.parse().ok())
}

/// What Personio says about a person's access on `today`, straight from the wire data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Enabled,
    /// Provisioned, disabled (onboarding before the start date; leave with `OnLeave::Disable`).
    Disabled,
    /// Left: no entry, or a disabled one.
    Gone,
}

fn expected(person: &PersonioPerson, employment: &Employment, on_leave: OnLeave) -> Expected {
    let status = employment.status.as_deref().unwrap_or("");
    let terminated = employment
        .termination
        .as_ref()
        .and_then(|t| date(t.termination_date.as_deref()))
        .is_some_and(|end| end < today());
    if status == "INACTIVE" || person.status.as_deref() == Some("INACTIVE") || terminated {
        return Expected::Gone;
    }
    if date(employment.employment_start_date.as_deref()).is_some_and(|start| start > today()) {
        return Expected::Disabled;
    }
    match (status, on_leave) {
        ("LEAVE", OnLeave::Disable) => Expected::Disabled,
        _ => Expected::Enabled,
    }
}

fn one<'a>(entry: &'a Entry, name: &str) -> Option<&'a str> {
    entry
        .attributes
        .get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
}

struct Harness {
    sandbox: PersonioSandboxHandle,
    _slapd: Slapd,
    client: PersonioClient,
    directory: LdapDirectory,
    settings: Settings,
    state: SyncState,
}

impl Harness {
    async fn start(people: usize) -> Self {
        let sandbox = personio_sandbox::start(PersonioSandboxConfig {
            people,
            rate_limit_per_minute: 0,
            ..PersonioSandboxConfig::default()
        })
        .await
        .expect("the sandbox starts");
        let slapd = Slapd::start().await.expect("slapd starts");
        let directory = LdapDirectory::connect(slapd.ldap_config())
            .await
            .expect("binds");
        Self {
            client: client(&sandbox, 50),
            sandbox,
            _slapd: slapd,
            directory,
            settings: settings(Profile::Ldap(LdapProfile::OpenLdap)),
            state: SyncState::default(),
        }
    }

    async fn try_cycle(
        &mut self,
        kind: CycleKind,
    ) -> Result<Report, CycleError<PersonioError, peoplesync::directory::ldap::LdapBackendError>>
    {
        let report = engine::run_cycle(
            &self.client,
            &self.directory,
            &self.settings,
            &self.state,
            kind,
            None,
            Timestamp::now(),
        )
        .await?;
        self.state = report.state.clone();
        Ok(report)
    }

    async fn cycle(&mut self, kind: CycleKind) -> Report {
        let report = self.try_cycle(kind).await.expect("the cycle succeeds");
        assert!(report.failures().is_empty(), "{:?}", report.failures());
        report
    }

    async fn entries(&self) -> BTreeMap<String, Entry> {
        let entries: Vec<Entry> = self.directory.entries().try_collect().await.expect("lists");
        entries.into_iter().map(|e| (e.anchor.clone(), e)).collect()
    }

    async fn entry(&self, anchor: &str) -> Entry {
        self.entries()
            .await
            .remove(anchor)
            .unwrap_or_else(|| panic!("{anchor} has an entry"))
    }

    /// The directory holds exactly what Personio says: mail, names, title and manager of everyone
    /// with access, disabled entries for those waiting, none enabled for leavers, and a group per
    /// department named as Personio names it, with exactly its enabled members.
    async fn verify(&self) {
        let tenant = tenant(&self.client).await;
        let entries = self.entries().await;
        let on_leave = self.settings.policy.on_leave;
        let mut expected_entries = 0;
        for (person, employment) in &tenant {
            let entry = entries.get(&person.id);
            match expected(person, employment, on_leave) {
                Expected::Gone => {
                    if let Some(entry) = entry {
                        assert!(!entry.enabled, "leaver {} is disabled", person.id);
                        expected_entries += 1;
                    }
                    continue;
                }
                Expected::Disabled => {
                    let entry = entry.unwrap_or_else(|| panic!("{} waits, disabled", person.id));
                    assert!(!entry.enabled, "{} is disabled", person.id);
                }
                Expected::Enabled => {
                    let entry = entry.unwrap_or_else(|| panic!("{} has an entry", person.id));
                    assert!(entry.enabled, "{} is enabled", person.id);
                }
            }
            expected_entries += 1;
            let entry = &entries[&person.id];
            assert_eq!(one(entry, "mail"), person.email.as_deref(), "{}", person.id);
            assert_eq!(
                one(entry, "sn"),
                person.last_name.as_deref(),
                "{}",
                person.id
            );
            assert_eq!(one(entry, "employeeNumber"), Some(person.id.as_str()));
            assert_eq!(
                one(entry, "title"),
                employment
                    .position
                    .as_ref()
                    .and_then(|p| p.title.as_deref()),
                "{} title",
                person.id
            );
            let manager = employment
                .supervisor
                .as_ref()
                .and_then(|s| entries.get(&s.id))
                .map(|m| m.id.as_str());
            assert_eq!(one(entry, "manager"), manager, "{} manager", person.id);
        }
        // Entries of people no longer in Personio (deleted) stay disabled.
        let known: BTreeSet<&str> = tenant.iter().map(|(p, _)| p.id.as_str()).collect();
        for (anchor, entry) in &entries {
            if !known.contains(anchor.as_str()) {
                assert!(!entry.enabled, "vanished {anchor} is disabled");
                expected_entries += 1;
            }
        }
        assert_eq!(entries.len(), expected_entries, "no other managed entries");

        let groups: Vec<Group> = self.directory.groups().try_collect().await.expect("groups");
        let mut departments: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (person, employment) in &tenant {
            let Some(unit) = employment.org_units.iter().find(|u| u.kind == "department") else {
                continue;
            };
            let members = departments.entry(unit.id.clone()).or_default();
            if let Some(entry) = entries.get(&person.id).filter(|e| e.enabled) {
                members.insert(entry.id.clone());
            }
        }
        assert_eq!(groups.len(), departments.len(), "a group per department");
        for (id, members) in departments {
            let group = groups
                .iter()
                .find(|g| g.anchor == id)
                .unwrap_or_else(|| panic!("a group for department {id}"));
            let unit = self
                .client
                .org_unit(&id, "department")
                .await
                .expect("reads")
                .expect("the department exists");
            assert_eq!(Some(group.name.as_str()), unit.name.as_deref());
            assert_eq!(group.members, members, "members of {id}");
        }
    }

    /// Active people (enabled in the directory after a baseline), in id order.
    async fn active(&self) -> Vec<(PersonioPerson, Employment)> {
        tenant(&self.client)
            .await
            .into_iter()
            .filter(|(p, e)| expected(p, e, OnLeave::Keep) == Expected::Enabled)
            .filter(|(_, e)| e.status.as_deref() == Some("ACTIVE"))
            .filter(|(_, e)| e.termination.is_none())
            .collect()
    }
}

#[tokio::test]
async fn a_baseline_from_personio_lands_exactly_and_a_second_full_run_writes_nothing() {
    let mut harness = Harness::start(300).await;
    let controls = harness.sandbox.controls();
    controls.clear_requests().await.expect("cleared");
    let first = harness.cycle(CycleKind::Full).await;
    assert!(first.changed());

    // Only reads, of the documented routes: the token, persons pages, one employment list per
    // person and one read per department.
    let log = controls.requests().await.expect("the log");
    let routes: BTreeSet<&str> = log.iter().map(|r| r.route.as_str()).collect();
    let allowed: BTreeSet<&str> = [
        "/v2/auth/token",
        "/v2/persons",
        "/v2/persons/{person_id}/employments",
        "/v2/org-units/{id}",
    ]
    .into();
    assert!(routes.is_subset(&allowed), "{routes:?}");
    assert!(
        log.iter()
            .all(|r| r.method == "GET" || r.route == "/v2/auth/token")
    );
    let pages = log.iter().filter(|r| r.route == "/v2/persons").count();
    assert_eq!(pages, 300usize.div_ceil(50), "⌈N/50⌉ persons pages");
    let employments = log
        .iter()
        .filter(|r| r.route == "/v2/persons/{person_id}/employments")
        .count();
    assert_eq!(employments, 300, "one employment read per person");
    let departments = log
        .iter()
        .filter(|r| r.route == "/v2/org-units/{id}")
        .count();
    let groups: Vec<Group> = harness
        .directory
        .groups()
        .try_collect()
        .await
        .expect("groups");
    assert_eq!(departments, groups.len(), "each department is named once");
    let tokens = log.iter().filter(|r| r.route == "/v2/auth/token").count();
    assert_eq!(tokens, 1, "the token is reused");
    harness.verify().await;

    let second = harness.cycle(CycleKind::Full).await;
    assert!(second.plan.is_empty(), "{:?}", second.plan.counts());
    assert!(!second.changed());
    let quiet = harness.cycle(CycleKind::Incremental).await;
    assert!(quiet.plan.is_empty(), "{:?}", quiet.plan.counts());
}

#[tokio::test]
async fn changes_through_the_api_and_the_ui_arrive_in_the_next_incremental_cycle() {
    let mut harness = Harness::start(120).await;
    harness.cycle(CycleKind::Full).await;
    let active = harness.active().await;
    let hr = Hr::new(&harness.sandbox).await;
    let controls = harness.sandbox.controls();

    let renamed = &active[0].0.id;
    hr.patch_person(renamed, json!({"last_name": "Renamed"}))
        .await;
    let mut retitled = Vec::new();
    for (person, _) in &active[1..4] {
        hr.patch_employment(
            &harness.client,
            &person.id,
            json!({"position": {"title": format!("Title {}", person.id)}}),
        )
        .await;
        retitled.push(person.id.clone());
    }
    let department = |e: &Employment| {
        e.org_units
            .iter()
            .find(|u| u.kind == "department")
            .map(|u| u.id.clone())
    };
    let moved = &active[4].0.id;
    let other = active
        .iter()
        .filter_map(|(_, e)| department(e))
        .find(|d| Some(d) != department(&active[4].1).as_ref())
        .expect("another department");
    hr.patch_employment(
        &harness.client,
        moved,
        json!({"org_units": [{"type": "department", "id": other}]}),
    )
    .await;
    // Edited in the Personio UI: no webhook, only `updated_at` moves.
    let edited = &active[5].0.id;
    controls
        .ui_edit(
            edited,
            json!({"employment": {"position": {"title": "Edited In The UI"}}}),
        )
        .await
        .expect("edits");

    controls.clear_requests().await.expect("cleared");
    let report = harness.cycle(CycleKind::Incremental).await;
    assert!(report.people_read >= 6, "{} read", report.people_read);
    let pages = controls
        .requests()
        .await
        .expect("the log")
        .iter()
        .filter(|r| r.route == "/v2/persons")
        .count();
    assert_eq!(
        pages, 1,
        "an incremental cycle reads the changes in one page"
    );

    let entry = harness.entry(renamed).await;
    assert_eq!(one(&entry, "sn"), Some("Renamed"));
    assert!(
        one(&entry, "uid").is_some_and(|uid| uid.ends_with(".renamed")),
        "{:?}",
        one(&entry, "uid")
    );
    for id in &retitled {
        let title = format!("Title {id}");
        assert_eq!(one(&harness.entry(id).await, "title"), Some(title.as_str()));
    }
    assert_eq!(
        one(&harness.entry(edited).await, "title"),
        Some("Edited In The UI")
    );
    let groups: Vec<Group> = harness
        .directory
        .groups()
        .try_collect()
        .await
        .expect("groups");
    let moved_dn = harness.entry(moved).await.id;
    let group = groups
        .iter()
        .find(|g| g.anchor == other)
        .expect("the group");
    assert!(group.members.contains(&moved_dn), "moved into {other}");
    harness.verify().await;
}

#[tokio::test]
async fn terminated_on_leave_onboarding_and_deleted_people_follow_their_lifecycle() {
    let mut harness = Harness::start(150).await;
    harness.cycle(CycleKind::Full).await;
    let active = harness.active().await;
    let hr = Hr::new(&harness.sandbox).await;
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
    ] = [0, 1, 2, 3, 4, 5].map(|i| active[i].0.id.clone());

    hr.patch_employment(
        &harness.client,
        &terminated,
        json!({"termination": {"termination_date": yesterday, "type": "EMPLOYEE"}}),
    )
    .await;
    hr.patch_employment(
        &harness.client,
        &leaving_later,
        json!({"termination": {"termination_date": next_month}, "contract_end_date": yesterday}),
    )
    .await;
    hr.patch_employment(&harness.client, &inactive, json!({"status": "INACTIVE"}))
        .await;
    hr.patch_employment(&harness.client, &on_leave, json!({"status": "LEAVE"}))
        .await;
    hr.patch_employment(
        &harness.client,
        &onboarding,
        json!({"status": "ONBOARDING", "employment_start_date": next_month}),
    )
    .await;
    hr.delete_person(&deleted).await;

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
    hr.patch_employment(&harness.client, &on_leave, json!({"status": "ACTIVE"}))
        .await;
    harness.cycle(CycleKind::Incremental).await;
    assert!(harness.entry(&on_leave).await.enabled, "back from leave");
    harness.verify().await;
}

#[tokio::test]
async fn a_next_link_that_loops_fails_the_cycle_and_nothing_moves() {
    let mut harness = Harness::start(60).await;
    harness.client = client(&harness.sandbox, 10);
    harness.cycle(CycleKind::Full).await;
    let before = harness.state.clone();
    let entries = harness.entries().await;
    let controls = harness.sandbox.controls();
    controls
        .faults(json!({"loop_next_link": true}))
        .await
        .expect("a fault");
    controls.clear_requests().await.expect("cleared");
    let error = harness
        .try_cycle(CycleKind::Full)
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
async fn server_errors_and_rate_limit_bursts_are_retried_until_the_cycle_converges() {
    let mut harness = Harness::start(80).await;
    let controls = harness.sandbox.controls();
    controls
        .faults(json!({"error_rate": 0.2, "error_status": 503, "rate_limit_burst": 5, "retry_after_seconds": 0}))
        .await
        .expect("faults");
    harness.cycle(CycleKind::Full).await;
    controls.clear_faults().await.expect("cleared");
    let failed = controls
        .requests()
        .await
        .expect("the log")
        .iter()
        .filter(|r| r.status == 503 || r.status == 429)
        .count();
    assert!(failed > 0, "the faults were injected");
    harness.verify().await;
}

#[tokio::test]
async fn a_baseline_and_an_incremental_cycle_from_personio_land_in_scim2_server() {
    use peoplesync::directory::scim::{ScimConfig, ScimDirectory};
    use peoplesync::scim_server::ScimServer;
    let sandbox = personio_sandbox::start(PersonioSandboxConfig {
        people: 80,
        rate_limit_per_minute: 0,
        ..PersonioSandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let server = ScimServer::start().await.expect("scim2-server starts");
    let directory = ScimDirectory::connect(ScimConfig::new(
        &server.base_url_for("personio"),
        SecretString::from(server.token.clone()),
    ))
    .await
    .expect("connects");
    let client = client(&sandbox, 50);
    let settings = settings(Profile::Scim);
    let run = |state: SyncState| {
        let (client, directory, settings) = (&client, &directory, &settings);
        async move {
            engine::run_cycle(
                client,
                directory,
                settings,
                &state,
                CycleKind::Full,
                None,
                Timestamp::now(),
            )
            .await
            .expect("the cycle succeeds")
        }
    };
    let first = run(SyncState::default()).await;
    assert!(first.failures().is_empty(), "{:?}", first.failures());
    let tenant = tenant(&client).await;
    let users: BTreeMap<String, Entry> = directory
        .entries()
        .try_collect::<Vec<Entry>>()
        .await
        .expect("lists")
        .into_iter()
        .map(|e| (e.anchor.clone(), e))
        .collect();
    let provisioned: Vec<_> = tenant
        .iter()
        .filter(|(p, e)| expected(p, e, OnLeave::Keep) != Expected::Gone)
        .collect();
    assert_eq!(users.len(), provisioned.len());
    for (person, employment) in provisioned {
        let user = &users[&person.id];
        assert_eq!(
            user.enabled,
            expected(person, employment, OnLeave::Keep) == Expected::Enabled,
            "{}",
            person.id
        );
        assert_eq!(
            one(user, "emails.work"),
            person.email.as_deref(),
            "{}",
            person.id
        );
        assert_eq!(one(user, "name.familyName"), person.last_name.as_deref());
    }
    let groups: Vec<Group> = directory.groups().try_collect().await.expect("groups");
    assert!(!groups.is_empty(), "department groups");
    let second = run(first.state.clone()).await;
    assert!(second.plan.is_empty(), "{:?}", second.plan.counts());

    // A change through Personio's API arrives in the next incremental cycle.
    let (person, _) = tenant
        .iter()
        .find(|(p, e)| {
            expected(p, e, OnLeave::Keep) == Expected::Enabled
                && e.status.as_deref() == Some("ACTIVE")
        })
        .expect("an active person");
    let hr = Hr::new(&sandbox).await;
    hr.patch_employment(
        &client,
        &person.id,
        json!({"position": {"title": "Chief Example Officer"}}),
    )
    .await;
    let incremental = engine::run_cycle(
        &client,
        &directory,
        &settings,
        &second.state,
        CycleKind::Incremental,
        None,
        Timestamp::now(),
    )
    .await
    .expect("the cycle succeeds");
    assert!(
        incremental.failures().is_empty(),
        "{:?}",
        incremental.failures()
    );
    let users: Vec<Entry> = directory.entries().try_collect().await.expect("lists");
    let user = users
        .iter()
        .find(|u| u.anchor == person.id)
        .expect("the user");
    assert_eq!(one(user, "title"), Some("Chief Example Officer"));
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

#[tokio::test]
async fn an_empty_personio_tenant_holds_every_deprovision_until_that_plan_is_approved() {
    use peoplesync::plan::GuardDecision;
    let mut harness = Harness::start(60).await;
    harness.settings.policy.guard = Guard::default();
    harness.cycle(CycleKind::Full).await;
    let before = harness.entries().await;
    harness
        .sandbox
        .controls()
        .settings(json!({"empty_tenant": true}))
        .await
        .expect("set");
    let held = harness.cycle(CycleKind::Full).await;
    let GuardDecision::Held(trip) = &held.plan.guard else {
        panic!("held: {:?}", held.plan.guard);
    };
    assert_eq!(trip.reason.as_str(), "EmptySource");
    assert!(!held.changed(), "nothing deprovisioned");
    assert_eq!(harness.entries().await, before);

    let hash = trip.hash.clone();
    let report = engine::run_cycle(
        &harness.client,
        &harness.directory,
        &harness.settings,
        &harness.state,
        CycleKind::Full,
        Some(&hash),
        Timestamp::now(),
    )
    .await
    .expect("the approved cycle runs");
    assert!(matches!(report.plan.guard, GuardDecision::Approved(_)));
    let enabled = harness
        .entries()
        .await
        .values()
        .filter(|e| e.enabled)
        .count();
    assert_eq!(enabled, 0, "the approved plan disabled everyone");
}
