//! The Personio sandbox's state and every operation on it. Synchronous and clock-free: each
//! operation takes `now` (or `today`), so the HTTP layer stays a thin translation and the rules
//! are testable alone.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;
use rand::rngs::StdRng;

use super::super::core::faults::faults_object;
use super::super::core::sandbox::{self, Setup, Tenant};
use super::PersonioSandboxConfig;
use super::auth::{Credential, TokenLimiter, Tokens};
use super::seed;
use peoplesync::source::personio::model::{Employment, Event, OrgUnit, Person};

mod deliveries;
mod filters;
mod persons;
mod webhooks;
mod writes;

pub use deliveries::{ActivityFilters, Outcome, PendingDelivery};
pub use filters::{EmploymentFilters, PersonFilters};
pub use persons::{Slice, render_person};
pub use webhooks::WebhookFilters;
pub use writes::{EmploymentPatch, PersonCreate, PersonPatch};

/// Emitted events kept for `/_sandbox/events`.
const MAX_EVENTS: usize = 20_000;

/// The Personio sandbox: the shared core around this tenant [`State`].
pub type Sandbox = sandbox::Sandbox<State>;
pub use super::super::core::clock::today;
pub use super::super::core::controls::LogEntry;

/// What the Personio sandbox keeps outside the tenant: the credential and the tokens issued for
/// it (a reset keeps them valid), and the token endpoint's own limit (a reset forgets it).
pub struct Vendor {
    pub credential: Credential,
    pub token_limiter: Mutex<TokenLimiter>,
    pub tokens: Mutex<Tokens>,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `GET /v2/persons` answers as if the tenant had nobody (for the deprovision guard's tests).
    pub empty_tenant: bool,
    /// An employment change also moves the person's `updated_at` (our decision; tests may turn it
    /// off to see a client that relies on it miss changes).
    pub employment_bumps_person: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            empty_tenant: false,
            employment_bumps_person: true,
        }
    }
}

faults_object! {
    /// `PUT /_sandbox/faults`: what `/v2` requests are answered with instead.
    pub struct Faults {
        /// Every persons page's `next` points back at the cursor it was requested with (the known
        /// Personio defect, API.md §2.3).
        pub loop_next_link: bool = false,
    }
}

/// A person and their employments, most recent first. The person's `status` and `employments`
/// are derived when rendered, never stored.
#[derive(Debug, Clone)]
pub struct PersonRecord {
    pub person: Person,
    pub employments: Vec<Employment>,
}

pub struct State {
    pub persons: BTreeMap<u64, PersonRecord>,
    pub org_units: Vec<OrgUnit>,
    pub offices: Vec<String>,
    pub webhooks: Vec<webhooks::WebhookRecord>,
    pub deliveries: Vec<deliveries::DeliveryRecord>,
    pub activity: Vec<deliveries::ActivityRecord>,
    pub events: VecDeque<Event>,
    next_person_id: u64,
    serial: u64,
    rng: StdRng,
}

impl Tenant for State {
    const NAME: &'static str = "personio sandbox";
    type Config = PersonioSandboxConfig;
    type Settings = Settings;
    type Faults = Faults;
    type Vendor = Vendor;

    fn seeded(people: usize, seed: u64, now: Timestamp) -> Self {
        let (tenant, rng) = seed::generate(people, seed, now);
        let mut employments = tenant.employments;
        let persons: BTreeMap<u64, PersonRecord> = tenant
            .persons
            .into_iter()
            .filter_map(|mut person| {
                let key = person.id.parse::<u64>().ok()?;
                let list = employments.remove(&person.id).unwrap_or_default();
                person.status = None;
                person.employments.clear();
                Some((
                    key,
                    PersonRecord {
                        person,
                        employments: list,
                    },
                ))
            })
            .collect();
        let next_person_id = persons.keys().next_back().map_or(3001, |last| last + 1);
        Self {
            persons,
            org_units: tenant.org_units,
            offices: tenant.offices,
            webhooks: Vec::new(),
            deliveries: Vec::new(),
            activity: Vec::new(),
            events: VecDeque::new(),
            next_person_id,
            serial: 0,
            rng,
        }
    }

    fn setup(config: &PersonioSandboxConfig) -> Setup<Self> {
        Setup {
            people: config.people,
            seed: config.seed,
            rate_limit_per_minute: config.rate_limit_per_minute,
            delivery_timeout: config.delivery_timeout,
            settings: Settings::default(),
            vendor: Vendor {
                credential: Credential {
                    client_id: config.client_id.clone(),
                    client_secret: config.client_secret.clone(),
                    scopes: config.scopes.clone(),
                },
                token_limiter: Mutex::new(TokenLimiter::default()),
                tokens: Mutex::new(Tokens::default()),
            },
        }
    }

    fn on_reset(vendor: &Vendor) {
        *vendor
            .token_limiter
            .lock()
            .expect("token limiter lock is never poisoned") = TokenLimiter::default();
    }
}

impl Sandbox {
    pub fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.vendor
            .tokens
            .lock()
            .expect("sandbox token lock is never poisoned")
    }
}

impl State {
    fn serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn uuid(&mut self) -> String {
        seed::uuid(&mut self.rng)
    }

    fn remember(&mut self, event: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// `GET /v2/org-units/{id}?type=...`, with the ancestors when asked.
    pub fn org_unit(&self, id: &str, kind: &str, parent_chain: bool) -> Option<OrgUnit> {
        let find = |id: &str| {
            self.org_units
                .iter()
                .find(|unit| unit.id == id && unit.kind == kind)
        };
        let mut unit = find(id)?.clone();
        if parent_chain {
            let mut parent = unit.parent_id.clone();
            // The tree is finite and acyclic; the bound only guards against a bad seed.
            while let Some(id) = parent.take().filter(|_| unit.parent_chain.len() < 32) {
                if let Some(ancestor) = find(&id) {
                    parent = ancestor.parent_id.clone();
                    unit.parent_chain.push(ancestor.clone());
                }
            }
        }
        Some(unit)
    }
}
