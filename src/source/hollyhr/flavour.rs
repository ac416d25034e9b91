//! HollyHR's webhook flavour: one webhook per PeopleSync found by its deterministic name, an HMAC
//! signing secret HollyHR issues and rotates (the previous one valid for 24 h), a health endpoint
//! read at most once per interval, and self-healing of an endpoint HollyHR disabled.
//!
//! - [`decide`]: registration and remediation as data (pure);
//! - [`upkeep`]: the calls of one reconcile's webhook step, and the removal at deletion;
//! - [`status`]: the conditions from what the step saw (pure);
//! - [`receive`]: how a delivery is authenticated (HMAC signatures) and read.

pub mod decide;
pub mod receive;
mod status;
pub mod upkeep;

use futures::future::BoxFuture;
use kube::ResourceExt;

pub use self::upkeep::REDELIVER_LIMIT;
use super::{ErrorReason, HollyHrClient};
use crate::crd::PeopleSync;
use crate::webhook::{Flavour, RemoveError, Upkeep, WebhookOutcome};

impl Flavour for HollyHrClient {
    fn reconcile<'a>(
        &'a self,
        object: &'a PeopleSync,
        upkeep: Upkeep<'a>,
    ) -> BoxFuture<'a, WebhookOutcome> {
        Box::pin(upkeep::reconcile(object, self, upkeep))
    }

    fn remove<'a>(&'a self, object: &'a PeopleSync) -> BoxFuture<'a, Result<usize, RemoveError>> {
        Box::pin(async move {
            let namespace = object.namespace().unwrap_or_default();
            upkeep::disable_all(self, &namespace, &object.name_any())
                .await
                .map_err(|error| {
                    let message = crate::telemetry::report(&error);
                    match error.category() {
                        ErrorReason::RateLimited
                        | ErrorReason::ServerError
                        | ErrorReason::Timeout
                        | ErrorReason::Network => RemoveError::Transient(message),
                        _ => RemoveError::Final(message),
                    }
                })
        })
    }

    fn left_behind(&self, namespace: &str, name: &str, why: &str) -> String {
        format!(
            "webhook {} was left active in HollyHR: {why}; disable it there",
            decide::webhook_name(namespace, name)
        )
    }
}
