//! A small client for the sandbox's `/_sandbox` test controls (faults, settings, the clock, UI
//! edits, the request log, reset), for tests, the demo and benchmarks.

use serde::Deserialize;
use serde_json::Value;

/// One logged API request (no bodies, no keys).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Deserialize)]
struct Log {
    data: Vec<LoggedRequest>,
}

#[derive(Debug, Clone)]
pub struct Controls {
    http: reqwest::Client,
    base: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the sandbox control {path} failed")]
pub struct ControlError {
    pub(super) path: String,
    #[source]
    pub(super) source: reqwest::Error,
}

impl Controls {
    /// Controls of the sandbox whose control URL (`http://…/_sandbox`) is `base`.
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ControlError> {
        let failed = |source| ControlError {
            path: path.to_owned(),
            source,
        };
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)
    }

    /// `PUT /_sandbox/settings` (e.g. `{"updated_since_exclusive": true}`, `{"empty_tenant": true}`).
    pub async fn settings(&self, patch: Value) -> Result<(), ControlError> {
        self.send(reqwest::Method::PUT, "/settings", Some(&patch))
            .await
            .map(|_| ())
    }

    /// `PUT /_sandbox/faults` (e.g. `{"error_rate": 0.2}`, `{"rate_limit_burst": 3}`).
    pub async fn faults(&self, faults: Value) -> Result<(), ControlError> {
        self.send(reqwest::Method::PUT, "/faults", Some(&faults))
            .await
            .map(|_| ())
    }

    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.send(reqwest::Method::DELETE, "/faults", None)
            .await
            .map(|_| ())
    }

    /// `PUT /_sandbox/clock` (e.g. `{"frozen": true}`, `{"advance_seconds": 60}`).
    pub async fn clock(&self, request: Value) -> Result<(), ControlError> {
        self.send(reqwest::Method::PUT, "/clock", Some(&request))
            .await
            .map(|_| ())
    }

    /// An edit as the HollyHR UI makes it: no webhook event, but `updated_at` moves.
    pub async fn ui_edit(&self, person: &str, edit: Value) -> Result<(), ControlError> {
        self.send(
            reqwest::Method::POST,
            &format!("/people/{person}/ui-edit"),
            Some(&edit),
        )
        .await
        .map(|_| ())
    }

    /// `POST /_sandbox/reset` with another size (same seed: the first people stay the same).
    pub async fn reset(&self, people: usize) -> Result<(), ControlError> {
        self.send(
            reqwest::Method::POST,
            "/reset",
            Some(&serde_json::json!({ "people": people })),
        )
        .await
        .map(|_| ())
    }

    pub async fn requests(&self) -> Result<Vec<LoggedRequest>, ControlError> {
        let response = self.send(reqwest::Method::GET, "/requests", None).await?;
        let path = "/requests".to_owned();
        response
            .json::<Log>()
            .await
            .map(|log| log.data)
            .map_err(|source| ControlError { path, source })
    }

    pub async fn clear_requests(&self) -> Result<(), ControlError> {
        self.send(reqwest::Method::DELETE, "/requests", None)
            .await
            .map(|_| ())
    }
}
