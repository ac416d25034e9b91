//! One end-to-end harness for every source: an HR system under test ([`Hr`]: its sandbox over
//! HTTP, a client through the real code, the vendor's write API and UI, and what the directory
//! must hold computed from the vendor's own data) and a sync [`Harness`] into a private slapd.
//! `tests/sync.rs` runs its shared cases for each implementation; a case that is truly one
//! source's stays in that source's file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::TryStreamExt;
use jiff::Timestamp;
use jiff::civil::Date;
use peoplesync::crd::LdapProfile;
use peoplesync::directory::ldap::{LdapBackendError, LdapDirectory};
use peoplesync::directory::{Directory, Entry, Group};
use peoplesync::plan::mapping::Profile;
use peoplesync::plan::{Guard, Mapping, OnLeave, Policy};
use peoplesync::retry::RetryPolicy;
use peoplesync::slapd::Slapd;
use peoplesync::source::PeopleSource;
use peoplesync::sync::engine::{
    self, CycleError, CycleKind, DEFAULT_OVERLAP, Report, Settings, SyncState,
};
use peoplesync_sandbox::remote::{ControlClient, LoggedRequest};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Fast retries: the behaviour, not the production timings. As many attempts as it takes for the
/// fault cases (a burst of 429s, then 20 % 503s) to be practically certain to get through, as
/// production's budget is.
pub fn test_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        max_elapsed: Duration::from_secs(30),
    }
}

/// Cycle settings for `profile`, guard `guard`.
pub fn settings(profile: Profile, guard: Guard) -> Settings {
    Settings {
        mapping: Mapping::new(profile, &BTreeMap::new()).expect("compiles"),
        policy: Policy {
            guard,
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

/// A guard that never holds: the scenarios deprovision on purpose; the guard has its own cases.
pub const OPEN_GUARD: Guard = Guard {
    max_count: 10_000,
    max_percent: 100,
};

pub fn today() -> Date {
    Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// The first value of an entry's attribute.
pub fn one<'a>(entry: &'a Entry, name: &str) -> Option<&'a str> {
    entry
        .attributes
        .get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
}

/// An HR system under test.
#[allow(async_fn_in_trait)]
pub trait Hr: Sized {
    type Client: PeopleSource;

    /// Its sandbox with `people` people (no rate limit), and a client through the real code.
    async fn start(people: usize) -> Self;
    fn client(&self) -> &Self::Client;

    /// Changes a person's job title through the vendor's write API.
    async fn retitle(&self, person: &str, title: &str);
    /// Changes a person's last name in the vendor's UI (no webhook, only `updated_at` moves).
    async fn ui_rename(&self, person: &str, last_name: &str);
    /// People with access now and no change ahead (active, no end date), in id order.
    async fn active(&self) -> Vec<String>;
    /// Who the directory must hold, from the vendor's own data: id → enabled.
    async fn provisioned(&self, on_leave: OnLeave) -> BTreeMap<String, bool>;
    /// Everyone's work mail and last name, from the vendor's own data: id → (mail, last name).
    async fn contacts(&self) -> BTreeMap<String, (Option<String>, Option<String>)>;
    /// The directory holds exactly what the vendor's data says: attributes, managers, groups.
    async fn verify(&self, entries: &BTreeMap<String, Entry>, groups: &[Group], on_leave: OnLeave);

    /// The sandbox's request log.
    async fn requests(&self) -> Vec<LoggedRequest>;
    /// Checks the reads of a baseline of `people` people into `groups` groups.
    fn check_baseline_reads(log: &[LoggedRequest], people: usize, groups: usize);
    /// Checks the reads of an incremental cycle with nothing new.
    fn check_quiet_reads(log: &[LoggedRequest]);
    /// The test controls every sandbox shares.
    fn control(&self) -> ControlClient;

    async fn clear_requests(&self) {
        self.control().clear_requests().await.expect("cleared");
    }
    /// Injects faults (`error_rate`, `error_status`, `rate_limit_burst`, `retry_after_seconds`).
    async fn faults(&self, faults: Value) {
        self.control().faults(faults).await.expect("faults on");
    }
    async fn clear_faults(&self) {
        self.control().clear_faults().await.expect("faults off");
    }
    /// Lists nobody from now on.
    async fn empty_tenant(&self) {
        self.control()
            .settings(json!({"empty_tenant": true}))
            .await
            .expect("set");
    }
}

/// A sync into a private slapd from an HR system under test.
pub struct Harness<H: Hr> {
    pub hr: H,
    pub slapd: Slapd,
    pub directory: LdapDirectory,
    pub settings: Settings,
    pub state: SyncState,
}

pub type CycleResult<H> =
    Result<Report, CycleError<<<H as Hr>::Client as PeopleSource>::Error, LdapBackendError>>;

impl<H: Hr> Harness<H> {
    pub async fn start(people: usize) -> Self {
        let hr = H::start(people).await;
        let slapd = Slapd::start().await.expect("slapd starts");
        let directory = LdapDirectory::connect(slapd.ldap_config())
            .await
            .expect("binds");
        Self {
            hr,
            slapd,
            directory,
            settings: settings(Profile::Ldap(LdapProfile::OpenLdap), OPEN_GUARD),
            state: SyncState::default(),
        }
    }

    pub async fn try_cycle(&mut self, kind: CycleKind, approved: Option<&str>) -> CycleResult<H> {
        let report = engine::run_cycle(
            self.hr.client(),
            &self.directory,
            &self.settings,
            &self.state,
            kind,
            approved,
            Timestamp::now(),
        )
        .await?;
        self.state = report.state.clone();
        Ok(report)
    }

    pub async fn cycle(&mut self, kind: CycleKind) -> Report {
        let report = self
            .try_cycle(kind, None)
            .await
            .expect("the cycle succeeds");
        assert!(report.failures().is_empty(), "{:?}", report.failures());
        report
    }

    pub async fn entries(&self) -> BTreeMap<String, Entry> {
        let entries: Vec<Entry> = self.directory.entries().try_collect().await.expect("lists");
        entries.into_iter().map(|e| (e.anchor.clone(), e)).collect()
    }

    pub async fn entry(&self, anchor: &str) -> Entry {
        self.entries()
            .await
            .remove(anchor)
            .unwrap_or_else(|| panic!("{anchor} has an entry"))
    }

    pub async fn groups(&self) -> Vec<Group> {
        self.directory.groups().try_collect().await.expect("groups")
    }

    /// The directory holds exactly what the source says.
    pub async fn verify(&self) {
        let entries = self.entries().await;
        let groups = self.groups().await;
        self.hr
            .verify(&entries, &groups, self.settings.policy.on_leave)
            .await;
    }
}

/// The anchors a report updated or renamed.
pub fn changed_anchors(report: &Report) -> BTreeSet<String> {
    report
        .plan
        .steps
        .iter()
        .filter(|s| matches!(s.action.name(), "update" | "rename"))
        .map(|s| s.anchor.clone())
        .collect()
}

// -------------------------------------------------------------------------------------------
// HollyHR
// -------------------------------------------------------------------------------------------

pub mod hollyhr {
    use super::*;
    use peoplesync::source::Person;
    use peoplesync::source::hollyhr::model::{Lifecycle, OrgUnitType, UpdateEmploymentRequest};
    use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient, Idempotency};
    use peoplesync_sandbox::{self as sandbox, DEFAULT_API_KEY, SandboxConfig, SandboxHandle};

    pub fn client(sandbox: &SandboxHandle) -> HollyHrClient {
        let mut config =
            ClientConfig::new(&sandbox.base_url(), SecretString::from(DEFAULT_API_KEY))
                .expect("a client config");
        config.retry = test_retries();
        HollyHrClient::new(config).expect("a client")
    }

    /// HollyHR: the project's sandbox built to the official contract.
    pub struct HollyHr {
        pub sandbox: SandboxHandle,
        pub client: HollyHrClient,
    }

    impl HollyHr {
        /// Everyone, through the source trait.
        pub async fn people(&self) -> Vec<Person> {
            PeopleSource::people(&self.client, None)
                .try_collect()
                .await
                .expect("lists")
        }
    }

    impl Hr for HollyHr {
        type Client = HollyHrClient;

        async fn start(people: usize) -> Self {
            let sandbox = sandbox::start(SandboxConfig {
                people,
                rate_limit_per_minute: 0,
                ..SandboxConfig::default()
            })
            .await
            .expect("the sandbox starts");
            Self {
                client: client(&sandbox),
                sandbox,
            }
        }

        fn client(&self) -> &HollyHrClient {
            &self.client
        }

        async fn retitle(&self, person: &str, title: &str) {
            let employment = self.client.person_employment(person).await.expect("reads");
            let etag = employment.etag.expect("an employment ETag");
            self.client
                .update_employment(
                    person,
                    &UpdateEmploymentRequest {
                        job_title: Some(Some(title.to_owned())),
                        ..UpdateEmploymentRequest::default()
                    },
                    &etag,
                    Idempotency::Derived,
                )
                .await
                .expect("patched");
        }

        async fn ui_rename(&self, person: &str, last_name: &str) {
            self.sandbox
                .controls()
                .ui_edit(person, json!({ "last_name": last_name }))
                .await
                .expect("edited");
        }

        async fn active(&self) -> Vec<String> {
            let today = today();
            self.people()
                .await
                .into_iter()
                .filter(|p| p.lifecycle(today) == Lifecycle::Active && p.end_date.is_none())
                .map(|p| p.id)
                .collect()
        }

        async fn provisioned(&self, _on_leave: OnLeave) -> BTreeMap<String, bool> {
            let today = today();
            self.people()
                .await
                .into_iter()
                .filter_map(|p| match p.lifecycle(today) {
                    Lifecycle::Leaver => None,
                    Lifecycle::FutureStarter => Some((p.id, false)),
                    Lifecycle::Active | Lifecycle::OnLeave => Some((p.id, true)),
                })
                .collect()
        }

        async fn contacts(&self) -> BTreeMap<String, (Option<String>, Option<String>)> {
            self.people()
                .await
                .into_iter()
                .map(|p| (p.id, (p.work_email, p.last_name)))
                .collect()
        }

        /// Active people enabled with their mapped attributes and managers, future starters
        /// disabled, leavers absent or disabled, and one group per department with exactly its
        /// enabled members.
        async fn verify(
            &self,
            entries: &BTreeMap<String, Entry>,
            groups: &[Group],
            _on_leave: OnLeave,
        ) {
            let people = self.people().await;
            let mapping = Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new())
                .expect("compiles");
            let today = today();
            let mut expected_entries = 0;
            for person in &people {
                let entry = entries.get(&person.id);
                match person.lifecycle(today) {
                    Lifecycle::Leaver => {
                        if let Some(entry) = entry {
                            expected_entries += 1;
                            assert!(!entry.enabled, "leaver {} is disabled", person.id);
                        }
                        continue;
                    }
                    Lifecycle::FutureStarter => {
                        let entry = entry.expect("future starters are provisioned");
                        assert!(!entry.enabled, "future starter {} waits", person.id);
                    }
                    Lifecycle::Active | Lifecycle::OnLeave => {
                        let entry = entry.unwrap_or_else(|| panic!("{} has an entry", person.id));
                        assert!(entry.enabled, "{} is enabled", person.id);
                    }
                }
                expected_entries += 1;
                let entry = &entries[&person.id];
                let mapped = mapping
                    .map(person, Some(&entry.attributes), &|_, _| false)
                    .expect("maps");
                for (name, values) in &mapped.attributes {
                    assert_eq!(
                        entry.attributes.get(name),
                        Some(values),
                        "{} {name}",
                        person.id
                    );
                }
                let manager = person
                    .manager
                    .as_ref()
                    .and_then(|m| entries.get(&m.id))
                    .map(|m| vec![m.id.clone()]);
                assert_eq!(
                    entry.attributes.get("manager").cloned(),
                    manager,
                    "{} manager",
                    person.id
                );
            }
            assert_eq!(entries.len(), expected_entries, "no other managed entries");

            let units = PeopleSource::org_units(&self.client)
                .await
                .expect("org units");
            let departments: Vec<_> = units
                .iter()
                .filter(|u| u.kind == OrgUnitType::Department)
                .collect();
            assert_eq!(groups.len(), departments.len());
            for unit in departments {
                let group = groups
                    .iter()
                    .find(|g| g.anchor == unit.id)
                    .expect("a group per department");
                let members: BTreeSet<String> = people
                    .iter()
                    .filter(|p| p.department.as_ref().is_some_and(|d| d.id == unit.id))
                    .filter_map(|p| entries.get(&p.id))
                    .filter(|e| e.enabled)
                    .map(|e| e.id.clone())
                    .collect();
                assert_eq!(group.members, members, "members of {}", unit.name);
            }
        }

        async fn requests(&self) -> Vec<LoggedRequest> {
            self.sandbox.controls().requests().await.expect("the log")
        }

        fn control(&self) -> ControlClient {
            (*self.sandbox.controls()).clone()
        }

        /// One request: the changes page.
        fn check_quiet_reads(log: &[LoggedRequest]) {
            assert_eq!(log.len(), 1, "{log:?}");
        }

        /// Only reads, and only of what the safe projection needs (`people:read`): never
        /// `/personal`.
        fn check_baseline_reads(log: &[LoggedRequest], _people: usize, _groups: usize) {
            for request in log {
                assert_eq!(request.method, "GET", "{request:?}");
                assert!(
                    request.route.starts_with("/people") || request.route.starts_with("/org-units"),
                    "{request:?}"
                );
                assert!(!request.route.contains("personal"), "{request:?}");
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// Personio
// -------------------------------------------------------------------------------------------

pub mod personio {
    use super::*;
    use peoplesync::source::personio::model::{Employment, Person as PersonioPerson};
    use peoplesync::source::personio::{PersonioClient, PersonioConfig, PersonsQuery};
    use peoplesync_sandbox::personio::{
        self as personio_sandbox, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioSandboxConfig,
        PersonioSandboxHandle,
    };

    pub fn client(sandbox: &PersonioSandboxHandle, page_size: u32) -> PersonioClient {
        let mut config = PersonioConfig::new(
            sandbox.base_url().parse().expect("a URL"),
            DEFAULT_CLIENT_ID,
            SecretString::from(DEFAULT_CLIENT_SECRET),
        );
        config.page_size = page_size;
        config.app_id = Some("PEOPLESYNC_TESTS".into());
        config.retry = test_retries();
        PersonioClient::new(config).expect("a client")
    }

    /// Changes people the way HR does, through Personio's write API (`personio:persons:write`).
    #[derive(Clone)]
    pub struct Writer {
        http: reqwest::Client,
        base: String,
        token: String,
    }

    impl Writer {
        pub async fn new(sandbox: &PersonioSandboxHandle) -> Self {
            Self::with_scope(
                sandbox,
                Some("personio:persons:read personio:persons:write"),
            )
            .await
        }

        /// A writer whose token has `scope` (every scope of the credentials when `None`).
        pub async fn with_scope(sandbox: &PersonioSandboxHandle, scope: Option<&str>) -> Self {
            let http = reqwest::Client::new();
            let base = sandbox.base_url();
            let mut form = vec![
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
            ];
            if let Some(scope) = scope {
                form.push(("scope", scope));
            }
            let token: Value = http
                .post(format!("{base}/v2/auth/token"))
                .form(&form)
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

        /// One API call that must succeed; its JSON body (`Null` when it has none).
        pub async fn call(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<Value>,
        ) -> Value {
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
            response.json().await.unwrap_or(Value::Null)
        }

        pub async fn patch_person(&self, id: &str, body: Value) {
            self.call(
                reqwest::Method::PATCH,
                &format!("/v2/persons/{id}"),
                Some(body),
            )
            .await;
        }

        pub async fn patch_employment(&self, client: &PersonioClient, person: &str, body: Value) {
            let employment = client
                .latest_employment(person)
                .await
                .expect("reads")
                .expect("an employment");
            self.call(
                reqwest::Method::PATCH,
                &format!("/v2/persons/{person}/employments/{}", employment.id),
                Some(body),
            )
            .await;
        }

        pub async fn delete_person(&self, id: &str) {
            self.call(reqwest::Method::DELETE, &format!("/v2/persons/{id}"), None)
                .await;
        }
    }

    /// Everyone as Personio shows them: the person and their latest employment.
    pub async fn tenant(client: &PersonioClient) -> Vec<(PersonioPerson, Employment)> {
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
    pub enum Expected {
        Enabled,
        /// Provisioned, disabled (onboarding before the start date; leave with
        /// `OnLeave::Disable`).
        Disabled,
        /// Left: no entry, or a disabled one.
        Gone,
    }

    pub fn expected(
        person: &PersonioPerson,
        employment: &Employment,
        on_leave: OnLeave,
    ) -> Expected {
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

    /// Personio: the project's sandbox built to API v2.
    pub struct Personio {
        pub sandbox: PersonioSandboxHandle,
        pub client: PersonioClient,
        pub writer: Writer,
    }

    impl Hr for Personio {
        type Client = PersonioClient;

        async fn start(people: usize) -> Self {
            let sandbox = personio_sandbox::start(PersonioSandboxConfig {
                people,
                rate_limit_per_minute: 0,
                ..PersonioSandboxConfig::default()
            })
            .await
            .expect("the sandbox starts");
            Self {
                client: client(&sandbox, 50),
                writer: Writer::new(&sandbox).await,
                sandbox,
            }
        }

        fn client(&self) -> &PersonioClient {
            &self.client
        }

        async fn retitle(&self, person: &str, title: &str) {
            self.writer
                .patch_employment(&self.client, person, json!({"position": {"title": title}}))
                .await;
        }

        async fn ui_rename(&self, person: &str, last_name: &str) {
            self.sandbox
                .controls()
                .ui_edit(person, json!({ "person": { "last_name": last_name } }))
                .await
                .expect("edits");
        }

        async fn active(&self) -> Vec<String> {
            tenant(&self.client)
                .await
                .into_iter()
                .filter(|(p, e)| expected(p, e, OnLeave::Keep) == Expected::Enabled)
                .filter(|(_, e)| e.status.as_deref() == Some("ACTIVE"))
                .filter(|(_, e)| e.termination.is_none())
                .map(|(p, _)| p.id)
                .collect()
        }

        async fn provisioned(&self, on_leave: OnLeave) -> BTreeMap<String, bool> {
            tenant(&self.client)
                .await
                .into_iter()
                .filter_map(|(p, e)| match expected(&p, &e, on_leave) {
                    Expected::Gone => None,
                    Expected::Disabled => Some((p.id, false)),
                    Expected::Enabled => Some((p.id, true)),
                })
                .collect()
        }

        async fn contacts(&self) -> BTreeMap<String, (Option<String>, Option<String>)> {
            tenant(&self.client)
                .await
                .into_iter()
                .map(|(p, _)| (p.id, (p.email, p.last_name)))
                .collect()
        }

        /// Mail, names, title and manager of everyone with access, disabled entries for those
        /// waiting, none enabled for leavers, and a group per department named as Personio names
        /// it, with exactly its enabled members: all from Personio's wire data, not from the
        /// neutral mapping under test.
        async fn verify(
            &self,
            entries: &BTreeMap<String, Entry>,
            groups: &[Group],
            on_leave: OnLeave,
        ) {
            let tenant = tenant(&self.client).await;
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
                        let entry =
                            entry.unwrap_or_else(|| panic!("{} waits, disabled", person.id));
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
            for (anchor, entry) in entries {
                if !known.contains(anchor.as_str()) {
                    assert!(!entry.enabled, "vanished {anchor} is disabled");
                    expected_entries += 1;
                }
            }
            assert_eq!(entries.len(), expected_entries, "no other managed entries");

            let mut departments: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (person, employment) in &tenant {
                let Some(unit) = employment.org_units.iter().find(|u| u.kind == "department")
                else {
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

        async fn requests(&self) -> Vec<LoggedRequest> {
            self.sandbox.controls().requests().await.expect("the log")
        }

        fn control(&self) -> ControlClient {
            (*self.sandbox.controls()).clone()
        }

        /// One persons page (the token is reused), and the latest employment of each person the
        /// overlap re-reads.
        fn check_quiet_reads(log: &[LoggedRequest]) {
            let routes: Vec<&str> = log.iter().map(|r| r.route.as_str()).collect();
            assert_eq!(routes.first(), Some(&"/v2/persons"), "{log:?}");
            assert!(
                routes[1..]
                    .iter()
                    .all(|r| *r == "/v2/persons/{person_id}/employments"),
                "{log:?}"
            );
        }

        /// Only reads, of the documented routes: the token, persons pages, one employment list
        /// per person and one read per department; the token is reused.
        fn check_baseline_reads(log: &[LoggedRequest], people: usize, groups: usize) {
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
            let count = |route: &str| log.iter().filter(|r| r.route == route).count();
            assert_eq!(
                count("/v2/persons"),
                people.div_ceil(50),
                "⌈N/50⌉ persons pages"
            );
            assert_eq!(
                count("/v2/persons/{person_id}/employments"),
                people,
                "one employment read per person"
            );
            assert_eq!(
                count("/v2/org-units/{id}"),
                groups,
                "each department is named once"
            );
            assert_eq!(count("/v2/auth/token"), 1, "the token is reused");
        }
    }
}
