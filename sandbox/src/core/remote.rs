//! The client for the `/_sandbox` test controls both sandboxes share: the HTTP plumbing, the
//! controls they have in common, and the UI edit and request log every sandbox offers (each
//! sandbox names its people path and its log entry through a [`Kind`]).

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The `{data: [...]}` envelope of the list controls.
#[derive(Deserialize)]
struct Data<T> {
    data: Vec<T>,
}

/// One logged API request (no bodies, no credentials): an entry of `GET /_sandbox/requests`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The API's route template (HollyHR: the contract's path template, Personio: `model::route`);
    /// the raw path when none matches.
    pub route: String,
    /// Path and query as requested.
    pub path: String,
    pub status: u16,
}

/// What a control client knows of its sandbox.
pub trait Kind {
    /// The collection whose members the UI edits (`/_sandbox/{PEOPLE}/{id}/ui-edit`).
    const PEOPLE: &'static str;
    /// The path below the server's address that a client's base URL ends with.
    const API_BASE: &'static str;
}

/// A client for one sandbox's test controls; it dereferences to the shared [`ControlClient`].
#[derive(Debug, Clone)]
pub struct Controls<K> {
    client: ControlClient,
    kind: PhantomData<K>,
}

impl<K> std::ops::Deref for Controls<K> {
    type Target = ControlClient;

    fn deref(&self) -> &ControlClient {
        &self.client
    }
}

impl<K: Kind> Controls<K> {
    /// Controls of the sandbox whose control URL (`http://…/_sandbox`) is `base`.
    pub fn new(base: &str) -> Self {
        Self {
            client: ControlClient::new(base),
            kind: PhantomData,
        }
    }

    /// An edit as the vendor's UI makes it: `updated_at` moves, no webhook event is emitted.
    /// HollyHR takes the person's and employment's fields flat (`{"end_date": …}`); Personio
    /// takes `{"person": {...}, "employment": {...}}` (the latest employment).
    pub async fn ui_edit(&self, person: &str, edit: Value) -> Result<(), ControlError> {
        let path = format!("/{}/{person}/ui-edit", K::PEOPLE);
        self.client
            .call(reqwest::Method::POST, &path, Some(&edit))
            .await
    }

    /// Every API request since start or reset, oldest first.
    pub async fn requests(&self) -> Result<Vec<LoggedRequest>, ControlError> {
        self.client.list("/requests").await
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the sandbox control {path} failed")]
pub struct ControlError {
    path: String,
    #[source]
    source: reqwest::Error,
}

/// What both sandboxes' control clients share: the controls they have in common (each
/// `Controls` dereferences to it) and the HTTP plumbing, a request to `base` + path whose failure
/// (transport, non-2xx, undecodable body) names the control path.
#[derive(Debug, Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    base: String,
}

impl ControlClient {
    /// A client for the control URL (`http://…/_sandbox`) `base`.
    pub(crate) fn new(base: &str) -> Self {
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

    /// `GET path`, answered with `{data: [...]}`.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, ControlError> {
        let response = self.send(reqwest::Method::GET, path, None).await?;
        response
            .json::<Data<T>>()
            .await
            .map(|data| data.data)
            .map_err(|source| ControlError {
                path: path.to_owned(),
                source,
            })
    }

    /// `PUT /_sandbox/settings` (HollyHR: `{"updated_since_exclusive": true}`,
    /// `{"empty_tenant": true}`; Personio: `{"empty_tenant": true}`,
    /// `{"employment_bumps_person": false}`).
    pub async fn settings(&self, patch: Value) -> Result<(), ControlError> {
        self.call(reqwest::Method::PUT, "/settings", Some(&patch))
            .await
    }

    /// `PUT /_sandbox/faults` (e.g. `{"error_rate": 0.2}`, `{"rate_limit_burst": 3}`; Personio
    /// also `{"loop_next_link": true}`).
    pub async fn faults(&self, faults: Value) -> Result<(), ControlError> {
        self.call(reqwest::Method::PUT, "/faults", Some(&faults))
            .await
    }

    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.call(reqwest::Method::DELETE, "/faults", None).await
    }

    /// `PUT /_sandbox/clock` (e.g. `{"frozen": true}`, `{"advance_seconds": 60}`).
    pub async fn clock(&self, request: Value) -> Result<(), ControlError> {
        self.call(reqwest::Method::PUT, "/clock", Some(&request))
            .await
    }

    /// `POST /_sandbox/reset` with another size (same seed: the same people come back).
    pub async fn reset(&self, people: usize) -> Result<(), ControlError> {
        let body = serde_json::json!({ "people": people });
        self.call(reqwest::Method::POST, "/reset", Some(&body))
            .await
    }

    /// `POST /_sandbox/reset` with another size and seed.
    pub async fn reset_with_seed(&self, people: usize, seed: u64) -> Result<(), ControlError> {
        let body = serde_json::json!({ "people": people, "seed": seed });
        self.call(reqwest::Method::POST, "/reset", Some(&body))
            .await
    }

    pub async fn clear_requests(&self) -> Result<(), ControlError> {
        self.call(reqwest::Method::DELETE, "/requests", None).await
    }

    /// A control call whose answer body is not needed.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), ControlError> {
        self.send(method, path, body).await.map(|_| ())
    }
}
