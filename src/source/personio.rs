//! The Personio API v2 source (`../shared/personio/API.md`): persons with their latest
//! employment, read through the client-credentials token, mapped onto the neutral model.
//!
//! [`PersonioClient`] asks for a token per scope set ([`ScopeSet`]: persons for the sync,
//! webhooks for webhook management), caches it until shortly before it expires and refreshes it
//! once on a 401. Listings follow the `cursor` of each `next` link with the same filters re-sent
//! and fail instead of looping; each person's latest employment is fetched with a bounded fan-out;
//! department names are fetched once per org unit. Mapping ([`mapping`]) is pure.

mod client;
mod config;
pub mod error;
pub mod flavour;
pub mod mapping;
pub mod model;
mod people;
mod token;
mod webhooks;

#[cfg(test)]
mod tests;

pub use client::PersonioClient;
pub use config::{DEFAULT_BASE_URL, DEFAULT_CONCURRENCY, DEFAULT_DEPARTMENT_TYPE, PersonioConfig};
pub use error::{ErrorCategory, PersonioError};
pub use mapping::{to_person, to_person_in};
pub use people::PersonsQuery;
pub use token::{ScopeSet, usable_for};

/// How Personio's credential is named in conditions.
pub const WORDING: super::Wording = super::Wording {
    credential: "Personio API credential",
    grant_scope: "grant it in Personio (Settings > Integrations > API credentials)",
    unauthorized: "Personio rejected the client credentials: check client_id and client_secret in the referenced Secret",
};
