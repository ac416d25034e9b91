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
use jiff::Timestamp;
use kube::ResourceExt;

pub use self::upkeep::{REDELIVER_LIMIT, Registered};
use super::{ErrorReason, HollyHrClient};
use crate::crd::{PeopleSync, PeopleSyncStatus};
use crate::webhook::{self, Flavour, RemediationOutcome, RemoveError, Upkeep, WebhookOutcome};

impl Flavour for HollyHrClient {
    fn source(&self) -> &'static str {
        "HollyHR"
    }

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

impl webhook::Registered for Registered {
    fn next_rotation(&self) -> Option<Timestamp> {
        self.next_rotation
    }

    fn notes(&self) -> Vec<(&'static str, String)> {
        let mut notes = Vec::new();
        if self.created {
            notes.push((
                "WebhookCreated",
                format!(
                    "registered HollyHR webhook {} for {}",
                    self.webhook.id, self.webhook.url
                ),
            ));
        }
        if let Some(cause) = self.rotated {
            notes.push((
                "SecretRotated",
                format!(
                    "rotated the signing secret of webhook {} ({}); the previous one stays valid for the overlap",
                    self.webhook.id,
                    cause.as_str()
                ),
            ));
        }
        if let RemediationOutcome::ReEnabled { redelivered } = self.remediation {
            notes.push((
                "WebhookReEnabled",
                format!(
                    "the receiver answers again: re-enabled webhook {} and redelivered {redelivered} failed deliveries",
                    self.webhook.id
                ),
            ));
        }
        notes
    }

    fn fold(
        &self,
        status: &mut PeopleSyncStatus,
        now: Timestamp,
        out: &mut webhook::fold::Conditions,
    ) {
        status::conditions(status, self, now, out);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn same(&self, other: &dyn webhook::Registered) -> bool {
        webhook::same_as(self, other)
    }
}
