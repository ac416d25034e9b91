//! The client-credentials token: which scopes to ask for, the `POST /v2/auth/token` request and
//! its typed refusals, how long a token is used, and a cache whose refreshes are serialised (one
//! in flight; concurrent callers wait for it and share it).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::client::{PersonioClient, api_error, decode};
use super::error::PersonioError;
use super::model::{self, route, scope};

/// The scopes a token is requested with. Each set has its own cached token, so a credential
/// that may read persons but not manage webhooks still syncs, and the refusal of a set
/// (`invalid_scope` → [`PersonioError::MissingScope`]) names exactly what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeSet {
    /// Persons, employments and org units (Personio names no other scope for employment and
    /// org-unit reads, so `personio:persons:read` is taken to cover them).
    Persons,
    /// Webhook management: list, activity (`read`) and create, update, delete, ping (`write`).
    Webhooks,
}

impl ScopeSet {
    /// The `scope` form field: space-separated.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeSet::Persons => scope::PERSONS_READ,
            ScopeSet::Webhooks => WEBHOOK_SCOPES,
        }
    }

    fn index(self) -> usize {
        match self {
            ScopeSet::Persons => 0,
            ScopeSet::Webhooks => 1,
        }
    }
}

const WEBHOOK_SCOPES: &str = "personio:webhooks:read personio:webhooks:write";

/// How long a token of `expires_in` is used: its lifetime minus a margin of the smaller of five
/// minutes and a tenth of it, so a token is never sent in its last moments (clock skew, a slow
/// request) and a short-lived one still gets most of its life.
pub fn usable_for(expires_in: Duration) -> Duration {
    const MAX_MARGIN: Duration = Duration::from_secs(5 * 60);
    expires_in.saturating_sub(MAX_MARGIN.min(expires_in / 10))
}

/// A token in use. `generation` tells a caller whose request was refused with 401 whether the
/// cache still holds the token it sent (then it is refreshed) or a newer one (then it is used).
#[derive(Clone)]
pub(super) struct Cached {
    /// `Bearer <token>`, marked sensitive so `http`'s own Debug hides it.
    pub authorization: HeaderValue,
    /// What the token was granted (the answer's `scope`, else what was asked for).
    pub scopes: Vec<String>,
    pub generation: u64,
    fresh_until: Instant,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("authorization", &"[REDACTED]")
            .field("scopes", &self.scopes)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Cached {
    fn new(token: model::Token, set: ScopeSet, generation: u64) -> Result<Self, PersonioError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.access_token))
            .map_err(|_| PersonioError::InvalidResponse {
                method: "POST",
                route: route::TOKEN,
                path: "access_token".into(),
                kind: "characters not allowed in a header",
            })?;
        authorization.set_sensitive(true);
        let granted = token.scope.as_deref().unwrap_or(set.as_str());
        Ok(Self {
            authorization,
            scopes: granted.split_whitespace().map(str::to_owned).collect(),
            generation,
            fresh_until: Instant::now() + usable_for(Duration::from_secs(token.expires_in)),
        })
    }
}

/// One slot per [`ScopeSet`]. Each slot's lock is held across a refresh: that is what makes
/// refreshes single-flight, and it costs nothing while a token is fresh (a lock and a clone).
#[derive(Default)]
pub(super) struct Tokens {
    slots: [Mutex<Slot>; 2],
}

#[derive(Default)]
struct Slot {
    token: Option<Cached>,
    generations: u64,
}

impl Tokens {
    /// A fresh token for `set`, fetched with `fetch` when the slot is empty, expired, or still
    /// holds the `rejected` generation (a resource call just got 401 with it).
    pub async fn get<F, Fut>(
        &self,
        set: ScopeSet,
        rejected: Option<u64>,
        fetch: F,
    ) -> Result<Cached, PersonioError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<model::Token, PersonioError>>,
    {
        let mut slot = self.slots[set.index()].lock().await;
        if let Some(token) = &slot.token
            && Some(token.generation) != rejected
            && Instant::now() < token.fresh_until
        {
            return Ok(token.clone());
        }
        slot.token = None;
        let answer = fetch().await?;
        slot.generations += 1;
        let token = Cached::new(answer, set, slot.generations)?;
        slot.token = Some(token.clone());
        Ok(token)
    }
}

impl PersonioClient {
    /// A fresh token for `set` (cached; see [`Tokens`]); `rejected` is the generation a
    /// resource call was just refused with.
    pub(super) async fn token(
        &self,
        set: ScopeSet,
        rejected: Option<u64>,
    ) -> Result<Cached, PersonioError> {
        self.inner
            .tokens
            .get(set, rejected, || self.fetch_token(set))
            .await
    }

    /// `POST /v2/auth/token` with the client-credentials grant, retried on 429 (at least a
    /// second apart: the endpoint's penalty rate) and on transient failures.
    async fn fetch_token(&self, set: ScopeSet) -> Result<model::Token, PersonioError> {
        let config = &self.inner.config;
        let url = self.url(route::TOKEN, &["v2".into(), "auth".into(), "token".into()])?;
        let body = Bytes::from(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &config.client_id)
                .append_pair("client_secret", config.client_secret.expose_secret())
                .append_pair("scope", set.as_str())
                .finish(),
        );
        let answer = self
            .with_retries(&Method::POST, route::TOKEN, true, || async {
                let (status, headers, bytes) = self
                    .send_once(
                        &Method::POST,
                        route::TOKEN,
                        &url,
                        None,
                        Some(("application/x-www-form-urlencoded", body.clone())),
                    )
                    .await?;
                if status.is_success() {
                    Ok(bytes)
                } else {
                    Err(token_error(set, status, &headers, &bytes))
                }
            })
            .await?;
        decode(&Method::POST, route::TOKEN, &answer)
    }
}

/// A refusal from the token endpoint. OAuth errors come as 400 with an `error` code; 401 is how
/// some OAuth servers refuse a client; 429 and 5xx are the endpoint's own trouble.
fn token_error(
    set: ScopeSet,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> PersonioError {
    let oauth = serde_json::from_slice::<model::TokenError>(body).ok();
    let trace_id = oauth.as_ref().and_then(|error| error.trace_id.clone());
    match (status.as_u16(), oauth) {
        (400 | 401, Some(error)) => match error.error.as_str() {
            "invalid_client" | "invalid_grant" | "unauthorized_client" | "access_denied" => {
                PersonioError::InvalidCredentials {
                    code: error.error,
                    trace_id,
                }
            }
            "invalid_scope" => PersonioError::MissingScope {
                scopes: set.as_str(),
                trace_id,
            },
            _ => PersonioError::TokenRejected {
                status: status.as_u16(),
                code: error.error,
                description: error.error_description,
                trace_id,
            },
        },
        (401, None) => PersonioError::InvalidCredentials {
            code: "unauthorized".into(),
            trace_id,
        },
        _ => api_error(&Method::POST, route::TOKEN, status, headers, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_margin_is_the_smaller_of_five_minutes_and_a_tenth() {
        let s = Duration::from_secs;
        let cases = [
            // a day: 5 minutes off
            (s(86_400), s(86_400 - 300)),
            // an hour: 5 minutes is less than 6
            (s(3_600), s(3_300)),
            // ten minutes: a tenth (one minute)
            (s(600), s(540)),
            (s(10), s(9)),
            (Duration::ZERO, Duration::ZERO),
        ];
        for (expires_in, usable) in cases {
            assert_eq!(usable_for(expires_in), usable, "{expires_in:?}");
        }
    }

    fn token(value: &str, expires_in: u64) -> model::Token {
        model::Token {
            access_token: value.into(),
            token_type: "Bearer".into(),
            expires_in,
            scope: None,
            refresh_token: None,
        }
    }

    #[tokio::test]
    async fn a_rejected_generation_is_refreshed_but_a_newer_one_is_reused() {
        let tokens = Tokens::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(token(&format!("papi-{n}"), 86_400))
        };
        let first = tokens.get(ScopeSet::Persons, None, fetch).await.unwrap();
        let again = tokens.get(ScopeSet::Persons, None, fetch).await.unwrap();
        assert_eq!((first.generation, again.generation), (1, 1));
        let refreshed = tokens
            .get(ScopeSet::Persons, Some(first.generation), fetch)
            .await
            .unwrap();
        assert_eq!(refreshed.generation, 2);
        // a second caller that also saw generation 1 refused takes the refreshed token
        let late = tokens
            .get(ScopeSet::Persons, Some(first.generation), fetch)
            .await
            .unwrap();
        assert_eq!(late.generation, 2);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert_eq!(late.scopes, vec!["personio:persons:read"]);
        assert!(!format!("{late:?}").contains("papi-"));
    }

    #[tokio::test]
    async fn each_scope_set_has_its_own_token_and_expired_ones_are_refetched() {
        let tokens = Arc::new(Tokens::default());
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(token("papi-x", 0))
        };
        tokens.get(ScopeSet::Persons, None, fetch).await.unwrap();
        tokens.get(ScopeSet::Webhooks, None, fetch).await.unwrap();
        // expires_in 0 is never fresh
        tokens.get(ScopeSet::Persons, None, fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        let failing = || async { Err(PersonioError::InvalidArgument("no".into())) };
        assert!(tokens.get(ScopeSet::Webhooks, None, failing).await.is_err());
    }

    #[test]
    fn token_endpoint_refusals_become_typed_errors() {
        let body = |code: &str| {
            serde_json::to_vec(&serde_json::json!({
                "error": code, "error_description": "nope", "trace_id": "tr-9"
            }))
            .expect("json")
        };
        let refuse = |status: u16, bytes: &[u8]| {
            token_error(
                ScopeSet::Persons,
                StatusCode::from_u16(status).expect("status"),
                &HeaderMap::new(),
                bytes,
            )
        };
        let cases = [
            (400, body("invalid_client"), "InvalidCredentials"),
            (400, body("invalid_grant"), "InvalidCredentials"),
            (400, body("invalid_scope"), "MissingScope"),
            (400, body("invalid_request"), "TokenRejected"),
            (400, body("temporarily_unavailable"), "ServerError"),
            (401, b"".to_vec(), "InvalidCredentials"),
            (429, b"".to_vec(), "RateLimited"),
            (503, b"<html>".to_vec(), "ServerError"),
        ];
        for (status, bytes, reason) in cases {
            let error = refuse(status, &bytes);
            assert_eq!(error.reason(), reason, "{status} {error}");
        }
        assert_eq!(refuse(400, &body("invalid_scope")).trace_id(), Some("tr-9"));
    }
}
