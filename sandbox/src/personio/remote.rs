//! A small client for the Personio sandbox's `/_sandbox` test controls (faults, settings, the
//! clock, UI edits, emitted events, the request log, reset), for tests, the demo and benchmarks.
//! The client is the one both sandboxes share (`../core/remote.rs`).

use super::super::core::remote::{self, Kind};
pub use super::super::core::remote::{ControlClient, ControlError, LoggedRequest};
use peoplesync::source::personio::model::Event;

/// The Personio sandbox, to its control client.
#[derive(Debug, Clone)]
pub enum Personio {}

impl Kind for Personio {
    const API_BASE: &'static str = "";
    const PEOPLE: &'static str = "persons";
}

/// The Personio sandbox's controls.
pub type Controls = remote::Controls<Personio>;

impl Controls {
    /// Every event the sandbox emitted since it started or was reset, oldest first (whether or
    /// not a webhook was subscribed).
    pub async fn events(&self) -> Result<Vec<Event>, ControlError> {
        self.list("/events").await
    }

    /// Renames org unit `id` (any type), as an admin does in Personio's UI.
    pub async fn rename_org_unit(&self, id: &str, name: &str) -> Result<(), ControlError> {
        self.call(
            reqwest::Method::PUT,
            &format!("/org-units/{id}"),
            Some(&serde_json::json!({ "name": name })),
        )
        .await
    }

    /// Deletes org unit `id` (any type): `GET /v2/org-units/{id}` answers 404 from then on.
    pub async fn delete_org_unit(&self, id: &str) -> Result<(), ControlError> {
        self.call(reqwest::Method::DELETE, &format!("/org-units/{id}"), None)
            .await
    }
}
