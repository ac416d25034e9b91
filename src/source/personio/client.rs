//! The HTTP core of the Personio client: one request with retries, a single 401 refresh and
//! error mapping, response decoding and loop-guarded cursor paging. The token fetch lives in
//! `token.rs`, the operations in `people.rs` and `webhooks.rs`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::Retryable;
use bytes::Bytes;
use futures::{Stream, stream};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use url::Url;

use super::config::PersonioConfig;
use super::error::{PersonioError, is_transient_token_error, verb};
use super::model::{self, ListPage, route};
use super::token::{ScopeSet, Tokens};
use crate::retry::{self, Retryability};
use crate::source::hollyhr::RequestObserver;

/// A listing that passes this many pages is taken to loop: a million people at 50 a page.
pub(super) const MAX_PAGES: usize = 20_000;

const APP_ID: HeaderName = HeaderName::from_static("x-personio-app-id");
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After 150 token requests a minute Personio accepts one a second: never ask sooner.
const TOKEN_RATE_WAIT: Duration = Duration::from_secs(1);

/// The Personio API v2 client. Cheap to clone: clones share the connection pool, the tokens and
/// the org-unit cache.
#[derive(Clone)]
pub struct PersonioClient {
    pub(super) inner: Arc<Inner>,
    observer: Option<RequestObserver>,
}

pub(super) struct Inner {
    http: reqwest::Client,
    pub(super) config: PersonioConfig,
    pub(super) tokens: Tokens,
    /// Department org units by id, fetched once each per full listing; `None` inside =
    /// Personio answered 404.
    pub(super) departments: Mutex<Departments>,
    /// The departments known before the running full listing began: those it does not meet
    /// again are asked about once more when the cycle reads the org units (see
    /// `PeopleSource::org_units`).
    pub(super) earlier_departments: Mutex<Departments>,
}

/// Department org units by id (see [`Inner::departments`]).
pub(super) type Departments = HashMap<String, Arc<OnceCell<Option<model::OrgUnit>>>>;

impl fmt::Debug for PersonioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonioClient")
            .field("base_url", &self.inner.config.base_url.as_str())
            .field("client_id", &self.inner.config.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// What Personio's requests carry besides the common parts.
#[derive(Debug, Clone)]
pub(super) struct Access {
    scopes: ScopeSet,
    /// Whether resending after an unclear failure (timeout, 502/504) is harmless. Creating a
    /// webhook is not: Personio has no idempotency keys, so a retry could create a second one.
    replayable: bool,
}

/// One logical request; retries resend it unchanged.
pub(super) type Request = crate::http::Call<Access>;

impl Request {
    pub(super) fn with_scopes(
        method: Method,
        route: &'static str,
        segments: &[&str],
        scopes: ScopeSet,
    ) -> Self {
        let extra = Access {
            scopes,
            replayable: true,
        };
        Self::new(method, route, segments, extra)
    }

    pub(super) fn get(route: &'static str, segments: &[&str], scopes: ScopeSet) -> Self {
        Self::with_scopes(Method::GET, route, segments, scopes)
    }

    pub(super) fn not_replayable(mut self) -> Self {
        self.extra.replayable = false;
        self
    }
}

impl PersonioClient {
    pub fn new(config: PersonioConfig) -> Result<Self, PersonioError> {
        config.validate()?;
        // Shared by every tenant (one pool to Personio). No redirects: a redirect could carry
        // the bearer token to another host; the API does not redirect.
        let http = crate::http::client(&crate::http::Settings {
            connect_timeout: Some(CONNECT_TIMEOUT),
            ca_pem: config.ca_pem.clone(),
            ..crate::http::Settings::new(REQUEST_TIMEOUT)
        })
        .map_err(|error| PersonioError::Configuration(crate::telemetry::report(&error)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                tokens: Tokens::default(),
                departments: Mutex::new(HashMap::new()),
                earlier_departments: Mutex::new(HashMap::new()),
            }),
            observer: None,
        })
    }

    /// Tells `observer` the route template and status of every answered request (metrics).
    pub fn with_observer(mut self, observer: RequestObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn config(&self) -> &PersonioConfig {
        &self.inner.config
    }

    pub(super) fn url(
        &self,
        route: &'static str,
        segments: &[String],
    ) -> Result<Url, PersonioError> {
        // Ids are percent-encoded into single segments so no id can reach another route; dot
        // segments would be resolved, so they are refused.
        if let Some(bad) = segments
            .iter()
            .find(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(PersonioError::InvalidArgument(format!(
                "{bad:?} is not a valid id for {route}"
            )));
        }
        let mut url = self.inner.config.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| PersonioError::Configuration("the base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends a resource request with retries and returns the body of its 2xx answer; a 401
    /// refreshes the token once and resends.
    pub(super) async fn execute(&self, request: &Request) -> Result<Bytes, PersonioError> {
        let mut url = self.url(request.route, &request.segments)?;
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let body = request
            .body
            .as_ref()
            .map(|body| ("application/json", body.clone()));
        let mut token = self.token(request.extra.scopes, None).await?;
        let mut refreshed = false;
        loop {
            let sent = self
                .with_retries(
                    &request.method,
                    request.route,
                    request.extra.replayable,
                    || {
                        let body = body.clone();
                        let authorization = token.authorization.clone();
                        let url = &url;
                        async move {
                            let (status, headers, bytes) = self
                                .send_once(
                                    &request.method,
                                    request.route,
                                    url,
                                    Some(authorization),
                                    body,
                                )
                                .await?;
                            if status.is_success() {
                                Ok(bytes)
                            } else {
                                Err(api_error(
                                    &request.method,
                                    request.route,
                                    status,
                                    &headers,
                                    &bytes,
                                ))
                            }
                        }
                    },
                )
                .await;
            match sent {
                Err(error) if error.status() == Some(401) && !refreshed => {
                    tracing::debug!(
                        route = request.route,
                        "Personio refused the token; refreshing it once"
                    );
                    refreshed = true;
                    token = self
                        .token(request.extra.scopes, Some(token.generation))
                        .await?;
                }
                other => return other,
            }
        }
    }

    /// Sends and decodes the JSON body of a 2xx answer.
    pub(super) async fn fetch<T: DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<T, PersonioError> {
        let body = self.execute(request).await?;
        decode(&request.method, request.route, &body)
    }

    /// [`Self::fetch`], with a 404 as `None`.
    pub(super) async fn fetch_optional<T: DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<Option<T>, PersonioError> {
        match self.fetch(request).await {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every page of a listing, one in memory at a time. Each page request resends the first
    /// request's filters with the `cursor` of the previous page's `next` link (the cursor only:
    /// the link's path is not trusted). A cursor already followed, or more than [`MAX_PAGES`]
    /// pages, fails the listing with [`PersonioError::PaginationLoop`] instead of spinning.
    pub(super) fn pages<T>(
        &self,
        first: Request,
    ) -> impl Stream<Item = Result<ListPage<T>, PersonioError>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        struct State {
            /// `None` once the last page was read; `Some(None)` before the first.
            next: Option<Option<String>>,
            seen: HashSet<String>,
            pages: usize,
        }
        let client = self.clone();
        let start = State {
            next: Some(None),
            seen: HashSet::new(),
            pages: 0,
        };
        stream::try_unfold(start, move |mut state| {
            let client = client.clone();
            let first = first.clone();
            async move {
                let Some(cursor) = state.next.take() else {
                    return Ok(None);
                };
                let route = first.route;
                let request = match cursor {
                    Some(cursor) => first.query("cursor", cursor),
                    None => first,
                };
                let page: ListPage<T> = client.fetch(&request).await?;
                state.pages += 1;
                state.next = match page.next_cursor() {
                    None => None,
                    Some(next) if !state.seen.insert(next.clone()) => {
                        return Err(PersonioError::PaginationLoop { route });
                    }
                    Some(_) if state.pages >= MAX_PAGES => {
                        return Err(PersonioError::PaginationLoop { route });
                    }
                    Some(next) => Some(Some(next)),
                };
                Ok(Some((page, state)))
            }
        })
    }

    /// Runs `attempt` under the shared retry policy: 429 (honouring `Retry-After`), 502, 503,
    /// 504 and network failures are retried; other answers are final.
    pub(super) async fn with_retries<T, F, Fut>(
        &self,
        method: &Method,
        route: &'static str,
        replayable: bool,
        attempt: F,
    ) -> Result<T, PersonioError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PersonioError>>,
    {
        let policy = &self.inner.config.retry;
        let started = Instant::now();
        attempt
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .when(|error| classify(error, replayable) != Retryability::Never)
            .adjust(|error, backoff| {
                retry::next_delay(
                    classify(error, replayable),
                    backoff,
                    started.elapsed(),
                    policy,
                )
            })
            .notify(|error, wait| {
                tracing::warn!(
                    method = %method,
                    route,
                    reason = error.reason(),
                    status = error.status(),
                    trace_id = error.trace_id(),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "Personio request failed; retrying"
                );
            })
            .await
    }

    /// One HTTP exchange; any status is returned (mapping is the caller's).
    pub(super) async fn send_once(
        &self,
        method: &Method,
        route: &'static str,
        url: &Url,
        authorization: Option<HeaderValue>,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), PersonioError> {
        let mut builder = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, "application/json");
        if let Some(authorization) = authorization {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        if let Some(app_id) = &self.inner.config.app_id {
            builder = builder.header(APP_ID, app_id.as_str());
        }
        if let Some((content_type, body)) = body {
            builder = builder.header(CONTENT_TYPE, content_type).body(body);
        }
        let transport = |error: reqwest::Error| transport_error(method, route, error);
        let response = builder.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = crate::http::read_limited(response, crate::http::BODY_LIMIT)
            .await
            .map_err(transport)?
            .ok_or_else(|| PersonioError::InvalidResponse {
                method: verb(method),
                route,
                path: "$".into(),
                kind: crate::http::TOO_LARGE,
            })?;
        if let Some(observer) = &self.observer {
            (observer.0)(route, status.as_u16());
        }
        // Route templates and statuses only: paths carry ids, bodies carry people.
        tracing::debug!(
            method = %method,
            route,
            status = status.as_u16(),
            "Personio answered"
        );
        Ok((status, headers, bytes))
    }
}

/// Which failures are worth another attempt.
fn classify(error: &PersonioError, replayable: bool) -> Retryability {
    match error {
        PersonioError::Api {
            status: 429,
            route,
            retry_after,
            ..
        } => Retryability::RateLimited {
            retry_after: if *route == route::TOKEN {
                Some(retry_after.map_or(TOKEN_RATE_WAIT, |wait| wait.max(TOKEN_RATE_WAIT)))
            } else {
                *retry_after
            },
        },
        // 503 says the request was not processed; 502 and 504 leave it open.
        PersonioError::Api { status: 503, .. } => Retryability::Backoff,
        PersonioError::Api {
            status: 502 | 504, ..
        } if replayable => Retryability::Backoff,
        PersonioError::TokenRejected { code, .. } if is_transient_token_error(code) => {
            Retryability::Backoff
        }
        PersonioError::Network { connect: true, .. } => Retryability::Backoff,
        PersonioError::Network { .. } | PersonioError::Timeout { .. } if replayable => {
            Retryability::Backoff
        }
        _ => Retryability::Never,
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_text(headers, "retry-after")
        .and_then(|value| retry::parse_retry_after(value, Timestamp::now()))
}

fn transport_error(method: &Method, route: &'static str, error: reqwest::Error) -> PersonioError {
    // The URL holds ids; the route already says where.
    let source = error.without_url();
    if source.is_timeout() {
        PersonioError::Timeout {
            method: verb(method),
            route,
            source,
        }
    } else {
        PersonioError::Network {
            method: verb(method),
            route,
            connect: source.is_connect(),
            source,
        }
    }
}

pub(super) fn api_error(
    method: &Method,
    route: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> PersonioError {
    let problem: model::Problem = serde_json::from_slice(body).unwrap_or_default();
    PersonioError::Api {
        method: verb(method),
        route,
        status: status.as_u16(),
        code: problem.code().map(str::to_owned),
        title: problem.errors.first().and_then(|error| error.title.clone()),
        trace_id: problem.personio_trace_id,
        retry_after: retry_after(headers),
    }
}

pub(super) fn decode<T: DeserializeOwned>(
    method: &Method,
    route: &'static str,
    body: &[u8],
) -> Result<T, PersonioError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let kind = match error.inner().classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated",
        };
        PersonioError::InvalidResponse {
            method: verb(method),
            route,
            path: error.path().to_string(),
            kind,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::personio::DEFAULT_BASE_URL;
    use secrecy::SecretString;

    pub(crate) fn config() -> PersonioConfig {
        PersonioConfig::new(
            Url::parse(DEFAULT_BASE_URL).expect("a URL"),
            "papi-client-id",
            SecretString::from("papi-topsecret"),
        )
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let config = config();
        assert!(!format!("{config:?}").contains("topsecret"));
        let client = PersonioClient::new(config).expect("client builds");
        let printed = format!("{client:?}");
        assert!(!printed.contains("topsecret") && printed.contains("[REDACTED]"));
    }

    #[test]
    fn ids_become_single_encoded_path_segments() {
        let client = PersonioClient::new(config()).expect("client builds");
        let url = |id: &str| client.url(route::PERSON, &["v2".into(), "persons".into(), id.into()]);
        assert_eq!(
            url("3003").expect("valid").as_str(),
            "https://api.personio.de/v2/persons/3003"
        );
        assert_eq!(
            url("1/employments").expect("valid").path(),
            "/v2/persons/1%2Femployments"
        );
        for bad in ["", ".", ".."] {
            assert!(url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_rate_limits_unavailability_and_transport_failures_are_retried() {
        let api = |status, route, retry_after| PersonioError::Api {
            method: "GET",
            route,
            status,
            code: None,
            title: None,
            trace_id: None,
            retry_after,
        };
        let s = Duration::from_secs;
        let cases = [
            (api(400, route::PERSONS, None), true, Retryability::Never),
            (api(401, route::PERSONS, None), true, Retryability::Never),
            (api(404, route::PERSONS, None), true, Retryability::Never),
            (api(500, route::PERSONS, None), true, Retryability::Never),
            (api(502, route::PERSONS, None), true, Retryability::Backoff),
            (api(502, route::WEBHOOKS, None), false, Retryability::Never),
            (
                api(503, route::WEBHOOKS, None),
                false,
                Retryability::Backoff,
            ),
            (api(504, route::PERSONS, None), true, Retryability::Backoff),
            (
                api(429, route::PERSONS, Some(s(3))),
                true,
                Retryability::RateLimited {
                    retry_after: Some(s(3)),
                },
            ),
            (
                api(429, route::PERSONS, None),
                false,
                Retryability::RateLimited { retry_after: None },
            ),
            // the token endpoint is never asked again sooner than a second
            (
                api(429, route::TOKEN, None),
                true,
                Retryability::RateLimited {
                    retry_after: Some(s(1)),
                },
            ),
            (
                api(429, route::TOKEN, Some(Duration::ZERO)),
                true,
                Retryability::RateLimited {
                    retry_after: Some(s(1)),
                },
            ),
            (
                PersonioError::InvalidCredentials {
                    code: "invalid_client".into(),
                    trace_id: None,
                },
                true,
                Retryability::Never,
            ),
        ];
        for (error, replayable, expected) in cases {
            assert_eq!(classify(&error, replayable), expected, "{error}");
        }
    }

    /// A valid `/v2/persons` page of three sandbox persons (their private attributes
    /// included), their employments, and every personal value they carry.
    fn valid_persons() -> &'static (Vec<u8>, Vec<u8>, Vec<String>) {
        static PAGES: std::sync::LazyLock<(Vec<u8>, Vec<u8>, Vec<String>)> =
            std::sync::LazyLock::new(persons);
        &PAGES
    }

    fn persons() -> (Vec<u8>, Vec<u8>, Vec<String>) {
        let now = Timestamp::from_second(1_781_600_000).expect("a time");
        let (tenant, _) = peoplesync_sandbox::personio::seed::generate(3, 7, now);
        let mut personal = Vec::new();
        for person in &tenant.persons {
            personal.extend(
                [&person.first_name, &person.last_name, &person.email]
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            for attribute in &person.custom_attributes {
                if let Some(text) = attribute.value.as_str() {
                    personal.push(text.to_owned());
                }
            }
        }
        personal.retain(|v| v.len() > 3);
        let page = |data: serde_json::Value| {
            serde_json::to_vec(&serde_json::json!({
                "_data": data,
                "_meta": {"links": {"next": {"href": "https://api.personio.de/v2/persons?cursor=c2"}}}
            }))
            .expect("JSON")
        };
        let employments: Vec<_> = tenant.employments.values().flatten().collect();
        (
            page(serde_json::to_value(&tenant.persons).expect("JSON")),
            page(serde_json::to_value(&employments).expect("JSON")),
            personal,
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Fuzz target: whatever a `/v2/persons` answer holds, decoding is a page or an
        /// `InvalidResponse` naming the route and a field path (never a panic, never a value
        /// from the body, private attributes included), and a decoded person always maps.
        #[test]
        fn persons_page_decoding_never_panics_nor_echoes_the_body(
            body in crate::fuzz::answers(valid_persons().0.clone()),
        ) {
            let (_, _, personal) = valid_persons();
            match decode::<ListPage<model::Person>>(&Method::GET, route::PERSONS, &body) {
                Ok(page) => {
                    let _ = page.next_cursor();
                    for person in &page.data {
                        let mapped = super::super::mapping::to_person(person, None, &|_| None);
                        proptest::prop_assert_eq!(&mapped.id, &person.id);
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    proptest::prop_assert!(
                        matches!(error, PersonioError::InvalidResponse { .. }),
                        "{message}"
                    );
                    proptest::prop_assert!(message.len() < 400, "{message}");
                    for value in personal {
                        proptest::prop_assert!(!message.contains(value.as_str()), "{message}");
                    }
                }
            }
        }

        /// Fuzz target: employments decode or fail cleanly, and whatever decodes maps with any
        /// person.
        #[test]
        fn employments_page_decoding_never_panics(
            body in crate::fuzz::answers(valid_persons().1.clone()),
        ) {
            if let Ok(page) = decode::<ListPage<model::Employment>>(&Method::GET, route::EMPLOYMENTS, &body) {
                let person: model::Person =
                    serde_json::from_value(serde_json::json!({"id": "1"})).expect("a person");
                for employment in &page.data {
                    let _ = super::super::mapping::to_person(&person, Some(employment), &|id| Some(id.to_owned()));
                }
            }
        }

        /// Fuzz target: the token endpoint's answer and error bodies.
        #[test]
        fn token_and_problem_decoding_never_panic(body in crate::fuzz::answers(
            br#"{"success":true,"data":{"token":"t"},"access_token":"t","token_type":"Bearer","expires_in":86400,"scope":"personio:persons:read"}"#.to_vec(),
        )) {
            let _ = decode::<model::Token>(&Method::POST, route::TOKEN, &body);
            let error = api_error(&Method::GET, route::PERSONS, StatusCode::BAD_REQUEST, &HeaderMap::new(), &body);
            let is_api = matches!(error, PersonioError::Api { .. });
            proptest::prop_assert!(is_api, "{error}");
        }
    }
}
