//! A small client for the Personio sandbox's `/_sandbox` test controls (faults, settings, the
//! clock, UI edits, emitted events, the request log, reset), for tests, the demo and benchmarks.

use serde::Deserialize;
use serde_json::Value;

use super::super::remote::ControlClient;
pub use super::super::remote::ControlError;
use crate::source::personio::model::Event;

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

impl Controls {
    /// Controls of the sandbox whose control URL (`http://…/_sandbox`) is `base`.
    pub fn new(base: &str) -> Self {
        Self {
            client: ControlClient::new(base),
        }
    }

    /// `PUT /_sandbox/settings` (e.g. `{"empty_tenant": true}`, `{"employment_bumps_person": false}`).
    pub async fn settings(&self, patch: Value) -> Result<(), ControlError> {
        self.client
            .call(reqwest::Method::PUT, "/settings", Some(&patch))
            .await
    }

    /// `PUT /_sandbox/faults` (e.g. `{"error_rate": 0.2}`, `{"rate_limit_burst": 3}`,
    /// `{"loop_next_link": true}`).
    pub async fn faults(&self, faults: Value) -> Result<(), ControlError> {
        self.client
            .call(reqwest::Method::PUT, "/faults", Some(&faults))
            .await
    }

    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.client
            .call(reqwest::Method::DELETE, "/faults", None)
            .await
    }

    /// `PUT /_sandbox/clock` (e.g. `{"frozen": true}`, `{"advance_seconds": 60}`).
    pub async fn clock(&self, request: Value) -> Result<(), ControlError> {
        self.client
            .call(reqwest::Method::PUT, "/clock", Some(&request))
            .await
    }

    /// An edit as Personio's UI makes it: `{"person": {...}, "employment": {...}}` (the latest
    /// employment); `updated_at` moves, no webhook event is emitted.
    pub async fn ui_edit(&self, person_id: &str, edit: Value) -> Result<(), ControlError> {
        let path = format!("/persons/{person_id}/ui-edit");
        self.client
            .call(reqwest::Method::POST, &path, Some(&edit))
            .await
    }

    /// `POST /_sandbox/reset` with another size (same seed: the same people come back).
    pub async fn reset(&self, people: usize) -> Result<(), ControlError> {
        let body = serde_json::json!({ "people": people });
        self.client
            .call(reqwest::Method::POST, "/reset", Some(&body))
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

    pub async fn clear_requests(&self) -> Result<(), ControlError> {
        self.client
            .call(reqwest::Method::DELETE, "/requests", None)
            .await
    }
}
