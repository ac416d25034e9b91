//! The sandbox both vendors run: a seeded tenant behind one lock, the sandbox clock, the per-route
//! rate limiter, the test controls (settings, faults, the request log) and the delivery worker's
//! wake-up. What differs per vendor is the [`Tenant`] (its state and every operation on it), its
//! config, its settings and faults, and the few parts that outlive a reset ([`Tenant::Vendor`]).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::clock::Clock;
use super::controls::{Controls, LogEntry};
use super::faults::Faults;
use super::ratelimit::RateLimiter;

/// Request-log entries kept (oldest dropped first): enough for any test, bounded for the demo.
const MAX_LOG: usize = 200_000;

/// A vendor's tenant state, and the types its sandbox is set up with.
pub trait Tenant: Sized + Send + 'static {
    /// Names the sandbox in its log lines.
    const NAME: &'static str;
    /// How the sandbox is set up (`SandboxConfig`, `PersonioSandboxConfig`).
    type Config: Send + Sync + 'static;
    /// The `/_sandbox/settings` object; every key is a setting.
    type Settings: Serialize + DeserializeOwned + Copy + Send + Sync + 'static;
    /// The `/_sandbox/faults` object.
    type Faults: Faults;
    /// What the sandbox keeps outside the tenant, untouched by a reset (a credential, issued
    /// tokens, the request-id sequence).
    type Vendor: Send + Sync + 'static;

    /// The tenant a sandbox of `people` and `seed` serves, with "today" taken from `now`.
    fn seeded(people: usize, seed: u64, now: Timestamp) -> Self;
    /// Reads what the sandbox starts from out of its config.
    fn setup(config: &Self::Config) -> Setup<Self>;
    /// Anything in [`Tenant::Vendor`] that a reset forgets all the same.
    fn on_reset(_vendor: &Self::Vendor) {}
}

/// What a sandbox starts from, and returns to on reset.
pub struct Setup<T: Tenant> {
    pub people: usize,
    pub seed: u64,
    /// Requests a minute per route template and caller; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// The per-request timeout of webhook deliveries.
    pub delivery_timeout: Duration,
    pub settings: T::Settings,
    pub vendor: T::Vendor,
}

/// One running sandbox of tenant `T`; the API's handlers and the control routes share it. Each
/// lock ([`Sandbox::state`], [`Sandbox::controls`]) is held for one operation, never across an
/// `.await`.
pub struct Sandbox<T: Tenant> {
    pub config: T::Config,
    pub clock: Clock,
    /// API routes: per route template and caller.
    pub limiter: RateLimiter,
    /// Wakes the delivery worker when a delivery becomes due.
    pub wake: Notify,
    pub vendor: T::Vendor,
    /// The per-request timeout of webhook deliveries.
    pub delivery_timeout: Duration,
    state: Mutex<T>,
    controls: Mutex<Controls<T::Settings, T::Faults>>,
    seeded_with: (usize, u64),
    initial_settings: T::Settings,
}

impl<T: Tenant> Sandbox<T> {
    pub fn new(config: T::Config) -> Self {
        let setup = T::setup(&config);
        let clock = Clock::default();
        let state = T::seeded(setup.people, setup.seed, clock.now());
        Self {
            limiter: RateLimiter::new(setup.rate_limit_per_minute),
            clock,
            wake: Notify::new(),
            vendor: setup.vendor,
            delivery_timeout: setup.delivery_timeout,
            state: Mutex::new(state),
            controls: Mutex::new(Controls {
                settings: setup.settings,
                faults: T::Faults::default(),
                log: VecDeque::new(),
            }),
            seeded_with: (setup.people, setup.seed),
            initial_settings: setup.settings,
            config,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, T> {
        self.state
            .lock()
            .expect("sandbox state lock is never poisoned")
    }

    pub fn controls(&self) -> MutexGuard<'_, Controls<T::Settings, T::Faults>> {
        self.controls
            .lock()
            .expect("sandbox controls lock is never poisoned")
    }

    pub fn settings(&self) -> T::Settings {
        self.controls().settings
    }

    pub fn log(&self, entry: LogEntry) {
        let mut controls = self.controls();
        if controls.log.len() >= MAX_LOG {
            controls.log.pop_front();
        }
        controls.log.push_back(entry);
    }

    /// The configured tenant size and seed (what a reset without them uses).
    pub fn seeded_with(&self) -> (usize, u64) {
        self.seeded_with
    }

    /// Reseeds the tenant and forgets webhooks, deliveries, faults, settings, the clock offset,
    /// the rate limits and the log; [`Tenant::Vendor`] stays (Personio's issued tokens belong
    /// to the credential, not to the tenant).
    pub fn reset(&self, people: usize, seed: u64) {
        self.clock.reset();
        *self.state() = T::seeded(people, seed, self.clock.now());
        let mut controls = self.controls();
        controls.faults = T::Faults::default();
        controls.settings = self.initial_settings;
        controls.log.clear();
        drop(controls);
        self.limiter.reset();
        T::on_reset(&self.vendor);
    }
}
