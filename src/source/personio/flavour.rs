//! Personio's webhook flavour: one webhook per PeopleSync found by its id, URL or description,
//! authenticated by a static bearer token PeopleSync issues, stores and rotates (the receiver
//! holds the new one before Personio may send it), health derived from the activity log and the
//! receiver's accepted deliveries, and re-enabling a webhook Personio disabled.
//!
//! - [`decide`]: registration and health as data (pure);
//! - [`upkeep`]: the calls of one reconcile's webhook step, and the removal at deletion;
//! - [`status`]: the conditions from what the step saw (pure);
//! - [`receive`]: how a delivery is authenticated (the token) and read.

pub mod decide;
pub mod receive;
mod status;
pub mod upkeep;

use futures::future::BoxFuture;
use kube::ResourceExt;

use super::PersonioClient;
use crate::crd::PeopleSync;
use crate::webhook::{Flavour, RemoveError, Upkeep, WebhookOutcome};

impl Flavour for PersonioClient {
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
            let name = object.name_any();
            let url = decide::desired(&object.spec, &namespace, &name).map(|d| d.url);
            let id = object
                .status
                .as_ref()
                .and_then(|s| s.webhook.as_ref())
                .and_then(|w| w.id.as_deref());
            upkeep::delete_all(self, &namespace, &name, url.as_deref(), id)
                .await
                .map_err(|error| {
                    let message = crate::telemetry::report(&error);
                    if upkeep::is_transient(&error) {
                        RemoveError::Transient(message)
                    } else {
                        RemoveError::Final(message)
                    }
                })
        })
    }

    fn left_behind(&self, namespace: &str, name: &str, why: &str) -> String {
        format!(
            "the Personio webhook of {namespace}/{name} (description \"{}\") was left in Personio: {why}; delete it there",
            decide::marker(namespace, name)
        )
    }
}
