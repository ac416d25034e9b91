//! A small client for the Personio sandbox's `/_sandbox` test controls (faults, settings, the
//! clock, UI edits, emitted events, the request log, reset), for tests, the demo and benchmarks.

use serde::Deserialize;
use serde_json::Value;

use super::super::remote::ControlClient;
pub use super::super::remote::ControlError;
use peoplesync::source::personio::model::Event;

/// One logged API request (no bodies, no tokens).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The route template of `model::route` (the raw path when none matches).
    pub route: String,
    /// Path and query as requested.
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Clone)]
pub struct Controls {
    client: ControlClient,
}

impl std::ops::Deref for Controls {
    type Target = ControlClient;

    fn deref(&self) -> &ControlClient {
        &self.client
    }
}

impl Controls {
    /// Controls of the sandbox whose control URL (`http://…/_sandbox`) is `base`.
    pub fn new(base: &str) -> Self {
        Self {
            client: ControlClient::new(base),
        }
    }

    /// An edit as Personio's UI makes it: `{"person": {...}, "employment": {...}}` (the latest
    /// employment); `updated_at` moves, no webhook event is emitted.
    pub async fn ui_edit(&self, person_id: &str, edit: Value) -> Result<(), ControlError> {
        let path = format!("/persons/{person_id}/ui-edit");
        self.client
            .call(reqwest::Method::POST, &path, Some(&edit))
            .await
    }

    /// `POST /_sandbox/reset` with another size and seed.
    pub async fn reset_with_seed(&self, people: usize, seed: u64) -> Result<(), ControlError> {
        let body = serde_json::json!({ "people": people, "seed": seed });
        self.client
            .call(reqwest::Method::POST, "/reset", Some(&body))
            .await
    }

    /// Every event the sandbox emitted since it started or was reset, oldest first (whether or
    /// not a webhook was subscribed).
    pub async fn events(&self) -> Result<Vec<Event>, ControlError> {
        self.client.list("/events").await
    }

    pub async fn requests(&self) -> Result<Vec<LoggedRequest>, ControlError> {
        self.client.list("/requests").await
    }
}
