//! The Personio sandbox's state and every operation on it. Synchronous and clock-free: each
//! operation takes `now` (or `today`), so the HTTP layer stays a thin translation and the rules
//! are testable alone.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;
use jiff::civil::Date;
use rand::rngs::StdRng;
use tokio::sync::Notify;

use super::super::clock::Clock;
use super::super::control_routes;
use super::super::ratelimit::RateLimiter;
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

/// Request-log entries kept (oldest dropped first).
const MAX_LOG: usize = 200_000;
/// Emitted events kept for `/_sandbox/events`.
const MAX_EVENTS: usize = 20_000;

pub struct Sandbox {
    pub config: PersonioSandboxConfig,
    pub credential: Credential,
    pub clock: Clock,
    /// Resource routes: per route template and token.
    pub limiter: RateLimiter,
    pub token_limiter: Mutex<TokenLimiter>,
    pub tokens: Mutex<Tokens>,
    state: Mutex<State>,
    controls: Mutex<Controls>,
    /// Wakes the delivery worker when a delivery becomes due.
    pub wake: Notify,
}

/// Test controls: settings, faults and the request log.
pub type Controls = control_routes::Controls<Settings, Faults, LogEntry>;

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

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of `/v2` requests answered with `error_status` (0.0–1.0).
    pub error_rate: f64,
    pub error_status: u16,
    /// The next N `/v2` requests are answered with `error_status`.
    pub fail_next: u32,
    /// The next N `/v2` requests are answered 429 with `Retry-After: retry_after_seconds`.
    pub rate_limit_burst: u32,
    pub retry_after_seconds: u64,
    /// Added to every `/v2` request.
    pub latency_ms: u64,
    /// Every persons page's `next` points back at the cursor it was requested with (the known
    /// Personio defect, API.md §2.3).
    pub loop_next_link: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 503,
            fail_next: 0,
            rate_limit_burst: 0,
            retry_after_seconds: 1,
            latency_ms: 0,
            loop_next_link: false,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    pub method: String,
    /// The route template of `model::route`; the raw path when none matches.
    pub route: String,
    pub path: String,
    pub status: u16,
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

pub fn today(now: Timestamp) -> Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

impl Sandbox {
    pub fn new(config: PersonioSandboxConfig) -> Self {
        let clock = Clock::default();
        let state = State::seeded(config.people, config.seed, clock.now());
        Self {
            credential: Credential {
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                scopes: config.scopes.clone(),
            },
            limiter: RateLimiter::new(config.rate_limit_per_minute),
            token_limiter: Mutex::new(TokenLimiter::default()),
            tokens: Mutex::new(Tokens::default()),
            clock,
            state: Mutex::new(state),
            controls: Mutex::new(Controls {
                settings: Settings::default(),
                faults: Faults::default(),
                log: VecDeque::new(),
            }),
            wake: Notify::new(),
            config,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("sandbox state lock is never poisoned")
    }

    pub fn controls(&self) -> MutexGuard<'_, Controls> {
        self.controls
            .lock()
            .expect("sandbox controls lock is never poisoned")
    }

    pub fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.tokens
            .lock()
            .expect("sandbox token lock is never poisoned")
    }

    pub fn settings(&self) -> Settings {
        self.controls().settings
    }

    pub fn log(&self, entry: LogEntry) {
        let mut controls = self.controls();
        if controls.log.len() >= MAX_LOG {
            controls.log.pop_front();
        }
        controls.log.push_back(entry);
    }

    /// Reseeds the tenant and forgets webhooks, deliveries, activity, events, faults, settings,
    /// the clock offset, the rate limits and the log. Issued tokens stay valid: they belong to
    /// the credential, not to the tenant.
    pub fn reset(&self, people: usize, seed: u64) {
        self.clock.reset();
        *self.state() = State::seeded(people, seed, self.clock.now());
        let mut controls = self.controls();
        controls.faults = Faults::default();
        controls.settings = Settings::default();
        controls.log.clear();
        drop(controls);
        self.limiter.reset();
        *self
            .token_limiter
            .lock()
            .expect("token limiter lock is never poisoned") = TokenLimiter::default();
    }
}

impl control_routes::Controlled for Sandbox {
    type Settings = Settings;
    type Faults = Faults;
    type LogEntry = LogEntry;

    fn control_state(&self) -> MutexGuard<'_, Controls> {
        self.controls()
    }

    fn error_rate(faults: &Faults) -> f64 {
        faults.error_rate
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn wake(&self) -> &Notify {
        &self.wake
    }

    fn seeded_with(&self) -> (usize, u64) {
        (self.config.people, self.config.seed)
    }

    fn reset(&self, people: usize, seed: u64) {
        Sandbox::reset(self, people, seed);
    }
}

impl State {
    pub fn seeded(people: usize, seed: u64, now: Timestamp) -> Self {
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
