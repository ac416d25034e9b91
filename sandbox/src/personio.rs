//! The Personio sandbox: a local Personio API v2 server built to `../shared/personio/API.md`,
//! used by the tests, the demo and the benchmarks. It serves the token, persons, employments,
//! org-unit and webhooks endpoints under `/v2` with the wire types of
//! `source::personio::model`, delivers webhook events the way Personio does, and, outside the
//! API, offers test controls under `/_sandbox/`:
//!
//! | control | what it does |
//! |---|---|
//! | `GET /_sandbox/requests`, `DELETE …` | the request log: `{data:[{method, route, path, status}]}` (`route` from `model::route`) |
//! | `PUT /_sandbox/faults`, `GET`, `DELETE …` | `{error_rate, error_status, fail_next, rate_limit_burst, retry_after_seconds, latency_ms, loop_next_link}` for `/v2` routes |
//! | `GET`/`PUT /_sandbox/clock` | `{now?, frozen?, advance_seconds?}` → `{now, frozen}` |
//! | `GET`/`PUT /_sandbox/settings` | `{empty_tenant?, employment_bumps_person?}` |
//! | `POST /_sandbox/persons/{id}/ui-edit` | `{person?: {...}, employment?: {...}}`: a change as the Personio UI makes it: `updated_at` moves, no webhook event |
//! | `GET /_sandbox/events` | `{data:[Event]}`: every event emitted since start or reset |
//! | `PUT /_sandbox/org-units/{id}`, `DELETE …` | `{name}`: an admin renames or deletes an org unit (no person's `updated_at` moves; a deleted one answers 404) |
//! | `POST /_sandbox/reset` | `{people?, seed?}`: a fresh seeded tenant, no webhooks, empty logs |
//!
//! Decisions where Personio's documentation is silent (API.md's OPEN items):
//! - Errors: 401 `common.unauthorized`, 403 `common.forbidden`, 409 `common.conflict`, 422
//!   `common.unprocessable_entity`, 429 `common.too_many_requests` with `Retry-After`, injected
//!   5xx `common.internal_server_error`; token-endpoint errors are OAuth `TokenError` bodies.
//! - Employment and org-unit reads need `personio:persons:read`.
//! - The token is keyed by credential and granted scope set: the same request within the ttl
//!   gets the same token; revoking it makes the next request issue a new one. Revoke needs no
//!   bearer token, and an unknown token revokes fine (RFC 7009).
//! - Resource routes are limited per route template and token (`rate_limit_per_minute`); no
//!   `RateLimit-*` headers. The token endpoint's own limit (150/min, then 1/s for 60 s) is
//!   always on.
//! - Cursors carry the filters and page size: follow `next.href` (cursor only) or re-send the
//!   same filters; other filters with a cursor are a 400. Persons are ordered by numeric id.
//! - Filters: unknown parameters are a 400 like unknown operators; name filters match exactly,
//!   ignoring case.
//! - An employment change also moves the person's `updated_at` (setting
//!   `employment_bumps_person`). Time-driven status changes (a termination taking effect, an
//!   onboarding start date arriving) show up at read time without moving `updated_at` and
//!   without events.
//! - Event payloads are `{"id": <resource id>, "person_id": <person id>}`; a ping's is
//!   `{"id": <webhook id>}`. `company_id` is [`COMPANY_ID`].
//! - Webhooks: `409` = another webhook has the same URL; `DELETE` → 204; the token is never
//!   echoed; `ping` is sent even to a DISABLED webhook and answers 200 with the event; events
//!   are queued only for ENABLED webhooks; deliveries never auto-disable a webhook; a delivery
//!   carries the webhook's auth as it is at send time.
//! - Retries: a timeout, an unreachable receiver or a 5xx other than 501 is retried; 2xx is
//!   delivered; 3xx (not followed), 4xx and 501 are final. Each attempt is up to 2 immediate
//!   requests, at most 14 requests per event (so at most 6 waits of the schedule are used);
//!   each request is one activity record.
//! - `GET /v2/org-units/{id}` returns the unit itself; `include_parent_chain=true` adds
//!   `parent_chain` (ancestors, nearest first).
//! - Writes: `POST /v2/persons` → 201 with the Person; `PATCH` → 200 with the resource;
//!   `DELETE /v2/persons/{id}` → 204; a duplicate email is a 409.

mod api;
mod auth;
mod controls;
mod delivery;
mod error;
mod paging;
pub mod remote;
pub mod seed;
mod store;

use std::net::SocketAddr;
use std::time::Duration;

pub use super::SandboxError;
use super::core::server::Handle;
pub use seed::{EMAIL_DOMAIN, Tenant, private_attributes};

use peoplesync::source::personio::model::scope;

/// The client id a sandbox accepts when none is configured.
pub const DEFAULT_CLIENT_ID: &str = "papi-peoplesync-sandbox-id";
/// The client secret a sandbox accepts when none is configured.
pub const DEFAULT_CLIENT_SECRET: &str = "papi-peoplesync-sandbox-secret";
/// The scopes of the default credential: what PeopleSync needs, plus `persons:write` so tests
/// and the demo can change people through the API.
pub const DEFAULT_SCOPES: [&str; 4] = [
    scope::PERSONS_READ,
    scope::PERSONS_WRITE,
    scope::WEBHOOKS_READ,
    scope::WEBHOOKS_WRITE,
];
/// The `company_id` of every event envelope.
pub const COMPANY_ID: &str = "100042";

/// How a Personio sandbox is set up. `Default` gives the documented defaults.
#[derive(Clone)]
pub struct PersonioSandboxConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Size of the seeded tenant.
    pub people: usize,
    /// Seed of the tenant generator: the same seed gives the same tenant.
    pub seed: u64,
    pub client_id: String,
    pub client_secret: String,
    /// Scopes granted to the credential.
    pub scopes: Vec<String>,
    /// Token lifetime (Personio: one day).
    pub token_ttl: Duration,
    /// Requests a minute per route template and token; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Accept loopback `http://` webhook URLs (for tests; Personio requires https).
    pub allow_insecure_webhook_urls: bool,
    /// Waits between delivery attempts (at most 6 are used: 14 requests per event).
    pub delivery_retry_schedule: Vec<Duration>,
    /// A receiver must answer within this (Personio: 3 s).
    pub delivery_timeout: Duration,
}

impl std::fmt::Debug for PersonioSandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonioSandboxConfig")
            .field("listen", &self.listen)
            .field("people", &self.people)
            .field("seed", &self.seed)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("scopes", &self.scopes)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .finish_non_exhaustive()
    }
}

impl Default for PersonioSandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            people: 1000,
            seed: 42,
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            scopes: DEFAULT_SCOPES.iter().map(|&s| s.to_owned()).collect(),
            token_ttl: Duration::from_secs(86_400),
            rate_limit_per_minute: 600,
            allow_insecure_webhook_urls: false,
            // Six growing waits: seven attempts of two requests = Personio's 14, within 3 days.
            delivery_retry_schedule: [60, 300, 1_800, 7_200, 43_200, 172_800]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            delivery_timeout: Duration::from_secs(3),
        }
    }
}

/// A running Personio sandbox. Dropping it stops the server and its delivery worker.
pub type PersonioSandboxHandle = Handle<remote::Personio>;

/// The tenant a sandbox with `people` and `seed` serves (for benchmarks that need the same data
/// without HTTP).
pub fn generate_tenant(people: usize, seed: u64) -> Tenant {
    seed::generate(people, seed, jiff::Timestamp::now()).0
}

/// Seeds the tenant, binds, and serves until the handle is shut down or dropped.
pub async fn start(config: PersonioSandboxConfig) -> Result<PersonioSandboxHandle, SandboxError> {
    PersonioSandboxHandle::start(config.listen, config, routes).await
}

/// The API and its controls.
fn routes(sandbox: std::sync::Arc<store::Sandbox>) -> axum::Router {
    api::router(sandbox.clone()).merge(controls::router(sandbox))
}
