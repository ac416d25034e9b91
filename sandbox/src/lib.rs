//! PeopleSync's sandboxes, outside the operator binary (`peoplesync-sandbox`; the operator's
//! tests, benchmarks and demo use it as a library).
//!
//! The HollyHR sandbox: a local HollyHR API v1 server built to the official contract, used by the
//! tests, the demo and the benchmarks. It serves every operation of `openapi-subset.yaml` under
//! `/api/v1` and, outside the contract, test controls under `/_sandbox/`:
//!
//! | control | what it does |
//! |---|---|
//! | `GET /_sandbox/requests`, `DELETE …` | the request log: `{data:[{method, route, path, status}]}` (`route` is the contract's path template) |
//! | `PUT /_sandbox/faults`, `DELETE …` | `{error_rate, error_status, rate_limit_burst, retry_after_seconds, latency_ms}` for `/api/v1` routes |
//! | `GET`/`PUT /_sandbox/clock` | `{now?, frozen?, advance_seconds?}` → `{now, frozen}` |
//! | `PUT /_sandbox/settings` | `{updated_since_exclusive?, signature_variant? ("guide"/"sdk"), empty_tenant?}` |
//! | `POST /_sandbox/people/{id}/ui-edit` | change a person as the HollyHR UI would: bumps `updated_at`, emits no webhook |
//! | `POST /_sandbox/reset` | `{people?, seed?}`: a fresh seeded tenant, no webhooks, empty logs |
//!
//! [`tenants::start`] serves many tenants on one port, told apart by API key; each tenant's
//! controls are under `/tenants/{n}/_sandbox/`.

mod api;
pub mod cli;
mod controls;
mod core;
mod delivery;
pub mod demo;
mod error;
mod ids;
pub mod personio;
pub mod remote;
pub mod seed;
mod serve;
mod store;
pub mod tenants;
mod validate;

use std::net::SocketAddr;
use std::time::Duration;

pub use peoplesync::signature::Variant as SignatureVariant;

/// The API key a sandbox accepts when none is configured.
pub const DEFAULT_API_KEY: &str = "hhr_test_peoplesync_sandbox";

/// The scopes of [`DEFAULT_API_KEY`]: what PeopleSync needs, plus `people:write` so tests and the
/// demo can change people through the API.
pub const DEFAULT_SCOPES: [&str; 4] = [
    "people:read",
    "people:write",
    "org_units:read",
    "webhooks:manage",
];

/// One API key the sandbox accepts, with its scopes.
#[derive(Clone)]
pub struct ApiKeySpec {
    pub key: String,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for ApiKeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeySpec")
            .field("key", &"[REDACTED]")
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl ApiKeySpec {
    pub fn new(
        key: impl Into<String>,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            key: key.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// Parses `KEY=scope1,scope2` (the CLI's `--api-key`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (key, scopes) = spec
            .split_once('=')
            .ok_or_else(|| format!("expected KEY=scope1,scope2, got {:?}", redact_key(spec)))?;
        if key.len() < 8 {
            return Err("an API key needs at least 8 characters".into());
        }
        let scopes: Vec<String> = scopes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(unknown) = scopes
            .iter()
            .find(|s| !peoplesync::source::hollyhr::model::scope::ALL.contains(&s.as_str()))
        {
            return Err(format!("unknown scope {unknown:?}"));
        }
        Ok(Self::new(key, scopes))
    }
}

fn redact_key(spec: &str) -> String {
    match spec.split_once('=') {
        Some((_, scopes)) => format!("[REDACTED]={scopes}"),
        None => "[REDACTED]".into(),
    }
}

/// How a sandbox is set up. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Size of the seeded tenant.
    pub people: usize,
    /// Seed of the tenant generator: the same seed gives the same tenant.
    pub seed: u64,
    pub api_keys: Vec<ApiKeySpec>,
    /// Requests a minute per route and key (Decision 9); 0 turns rate limiting off.
    pub rate_limit_per_minute: u32,
    /// Accept loopback `http://` webhook URLs (Decision 11: only with an explicit flag).
    pub allow_insecure_webhook_urls: bool,
    /// Waits between delivery attempts; attempts = waits + 1 (Decision 3).
    pub delivery_retry_schedule: Vec<Duration>,
    /// Per-attempt timeout of a delivery (Decision 3: 10 s).
    pub delivery_timeout: Duration,
    pub signature_variant: SignatureVariant,
    /// `updated_since` is inclusive by default (Decision 7); tests flip this.
    pub updated_since_exclusive: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            people: 1000,
            seed: 42,
            api_keys: vec![ApiKeySpec::new(DEFAULT_API_KEY, DEFAULT_SCOPES)],
            rate_limit_per_minute: 600,
            allow_insecure_webhook_urls: false,
            delivery_retry_schedule: [30, 120, 600, 3600, 21600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            delivery_timeout: Duration::from_secs(10),
            signature_variant: SignatureVariant::Guide,
            updated_since_exclusive: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("failed to bind the sandbox to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("a many-tenant sandbox needs at least one tenant")]
    NoTenants,
    #[error("tenants {first} and {second} share an API key: each key belongs to one tenant")]
    SharedKey { first: usize, second: usize },
}

/// A running HollyHR sandbox. Dropping it stops the server and its delivery worker.
pub type SandboxHandle = core::server::Handle<remote::HollyHr>;

/// The people of the tenant a sandbox with `people` and `seed` serves (for benchmarks that need
/// the same data without HTTP).
pub fn generate_tenant(
    people: usize,
    seed: u64,
) -> Vec<peoplesync::source::hollyhr::model::Person> {
    seed::generate(people, seed, jiff::Timestamp::now()).people
}

/// The people and org units of the tenant a sandbox with `people` and `seed` serves.
pub fn generate_organisation(
    people: usize,
    seed: u64,
) -> (
    Vec<peoplesync::source::hollyhr::model::Person>,
    Vec<peoplesync::source::hollyhr::model::OrgUnit>,
) {
    let tenant = seed::generate(people, seed, jiff::Timestamp::now());
    (tenant.people, tenant.org_units)
}

/// Seeds the tenant, binds, and serves until the handle is shut down or dropped.
pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
    SandboxHandle::start(config.listen, config, routes).await
}

/// One tenant's API and its controls.
fn routes(sandbox: std::sync::Arc<store::Sandbox>) -> axum::Router {
    api::router(sandbox.clone()).merge(controls::router(sandbox))
}
