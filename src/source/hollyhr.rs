//! The HollyHR API v1 client.
//!
//! [`HollyHrClient`] speaks the contract in `../shared/hollyhr/openapi-subset.yaml`: cursor
//! listings as streams (one page in memory), ETags for `If-Match` / `If-None-Match`, an
//! `Idempotency-Key` on every write (see [`idempotency`]), retries for 429 / 5xx / network
//! failures and pacing from `RateLimit-*` (decisions in [`retry`] and [`pacing`], both pure).
//! It only ever addresses the safe projection.

mod client;
pub mod error;
pub mod flavour;
pub mod idempotency;
pub mod model;
pub mod pacing;
mod people;
pub mod retry;
mod webhooks;

pub use client::{
    ClientConfig, Conditional, HollyHrClient, PageLimit, RequestObserver, ResourceEtag, Versioned,
};
pub use error::{ApiError, ErrorReason, HollyHrError};
pub use idempotency::{Idempotency, IdempotencyKey};
pub use pacing::PacingPolicy;
pub use people::{PeopleQuery, PeopleSort};
pub use retry::RetryPolicy;
pub use webhooks::{DeliveryQuery, WebhookAndSecret};

/// The contract's path templates, as the client logs them.
pub mod routes {
    pub use super::people::route::*;
    pub use super::webhooks::route::*;
}

/// How HollyHR's credential is named in conditions.
pub const WORDING: super::Wording = super::Wording {
    credential: "HollyHR API key",
    grant_scope: "create a key with it in HollyHR (Settings > API) and update the Secret",
    unauthorized: "HollyHR rejected the API key (401): check the key in the referenced Secret",
};
