//! The HTTP core of the HollyHR client: configuration, one request with pacing, retries and
//! error mapping, response decoding and cursor paging. The operations live in `people.rs` and
//! `webhooks.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;
use bytes::Bytes;
use futures::{Stream, TryStreamExt, stream};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use super::error::{ApiError, HollyHrError};
use super::idempotency::{Idempotency, IdempotencyKey};
use super::model::{ErrorEnvelope, Page};
use super::pacing::{Pacer, PacingPolicy, RateLimitSnapshot};
use super::retry::{self, RetryPolicy, Retryability};

pub(super) const RESOURCE_ETAG: &str = "hollyhr-resource-etag";
const REQUEST_ID: &str = "x-request-id";
const CORRELATION_ID: &str = "x-correlation-id";
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Called with the route template and the status of every answered request (metrics).
#[derive(Clone)]
pub struct RequestObserver(pub Arc<dyn Fn(&'static str, u16) + Send + Sync>);

impl fmt::Debug for RequestObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestObserver")
    }
}

/// Everything a [`HollyHrClient`] needs. `Debug` is safe: the key prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Tenant origin + `/api/v1`, e.g. `https://acme.hollyhr.com/api/v1`.
    pub base_url: Url,
    pub api_key: SecretString,
    pub retry: RetryPolicy,
    pub pacing: PacingPolicy,
    /// Per attempt, from sending to the last body byte.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub user_agent: String,
    /// Told about every answered request (route template and status), e.g. for metrics.
    pub observer: Option<RequestObserver>,
    /// A PEM CA bundle trusted besides the system store (`caSecretRef`).
    pub ca_pem: Option<String>,
}

impl ClientConfig {
    /// The defaults around a base URL and a key.
    pub fn new(base_url: &str, api_key: SecretString) -> Result<Self, HollyHrError> {
        let base_url = Url::parse(base_url).map_err(|error| {
            HollyHrError::Configuration(format!("base URL {base_url:?} is not a URL: {error}"))
        })?;
        if base_url.cannot_be_a_base() || !matches!(base_url.scheme(), "http" | "https") {
            return Err(HollyHrError::Configuration(format!(
                "base URL {base_url} must be an http(s) URL such as https://acme.hollyhr.com/api/v1"
            )));
        }
        Ok(Self {
            base_url,
            api_key,
            retry: RetryPolicy::default(),
            pacing: PacingPolicy::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("peoplesync/", env!("CARGO_PKG_VERSION")).to_owned(),
            observer: None,
            ca_pem: None,
        })
    }
}

/// The version of a resource to send as `If-Match`: the `HollyHR-Resource-ETag` of its last read
/// or write (or a strong `ETag` when that header is missing, as the official SDK does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceEtag(String);

impl ResourceEtag {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        text(RESOURCE_ETAG)
            .or_else(|| text(ETAG.as_str()).filter(|etag| !etag.starts_with("W/")))
            .map(Self::new)
    }
}

impl fmt::Display for ResourceEtag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource with the validator HollyHR sent with it (`None` where the contract sends none).
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: Option<ResourceEtag>,
}

/// The answer to a read with `If-None-Match`.
#[derive(Debug, Clone)]
pub enum Conditional<T> {
    Modified(Versioned<T>),
    /// 304: the caller's copy is current.
    NotModified {
        etag: Option<ResourceEtag>,
    },
}

/// `limit` of a cursor page: 1–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u8);

impl PageLimit {
    /// 100 is HollyHR's page maximum: the fewest requests per listing.
    pub const MAX: PageLimit = PageLimit(100);

    pub fn new(limit: u32) -> Result<Self, HollyHrError> {
        match u8::try_from(limit) {
            Ok(limit @ 1..=100) => Ok(Self(limit)),
            _ => Err(HollyHrError::InvalidArgument(format!(
                "limit must be 1–100, got {limit}"
            ))),
        }
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self::MAX
    }
}

/// The HollyHR API v1 client. Cheap to clone (one connection pool, one pacer).
#[derive(Clone)]
pub struct HollyHrClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    /// `Bearer <key>`, marked sensitive so `http`'s own Debug hides it too.
    authorization: HeaderValue,
    retry: RetryPolicy,
    pacing: PacingPolicy,
    pacer: Pacer,
    observer: Option<RequestObserver>,
}

impl fmt::Debug for HollyHrClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HollyHrClient")
            .field("base_url", &self.inner.base.as_str())
            .field("api_key", &"[REDACTED]")
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// What HollyHR's requests carry besides the common parts.
#[derive(Debug, Clone, Default)]
pub(super) struct Preconditions {
    if_match: Option<ResourceEtag>,
    if_none_match: Option<ResourceEtag>,
    idempotency: Option<Idempotency>,
}

/// One logical request; retries resend it unchanged.
pub(super) type Request = crate::http::Call<Preconditions>;

impl Request {
    pub(super) fn get(route: &'static str, segments: &[&str]) -> Self {
        Self::new(Method::GET, route, segments, Preconditions::default())
    }

    /// A mutating request: it always carries an `Idempotency-Key`.
    pub(super) fn mutate(
        method: Method,
        route: &'static str,
        segments: &[&str],
        idempotency: Idempotency,
    ) -> Self {
        let extra = Preconditions {
            idempotency: Some(idempotency),
            ..Preconditions::default()
        };
        Self::new(method, route, segments, extra)
    }

    pub(super) fn if_match(mut self, etag: &ResourceEtag) -> Self {
        self.extra.if_match = Some(etag.clone());
        self
    }

    pub(super) fn if_none_match(mut self, etag: Option<&ResourceEtag>) -> Self {
        self.extra.if_none_match = etag.cloned();
        self
    }
}

/// A 2xx or 304 answer, body read.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: StatusCode,
    pub etag: Option<ResourceEtag>,
    pub request_id: Option<String>,
    pub body: Bytes,
}

impl HollyHrClient {
    pub fn new(config: ClientConfig) -> Result<Self, HollyHrError> {
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", config.api_key.expose_secret())).map_err(
                |_| {
                    HollyHrError::Configuration(
                        "the API key contains characters not allowed in a header".into(),
                    )
                },
            )?;
        authorization.set_sensitive(true);
        // Shared by every tenant with the same settings (one pool to HollyHR). No redirects: a
        // redirect could carry the bearer token to another host; HollyHR does not redirect.
        let http = crate::http::client(&crate::http::Settings {
            user_agent: config.user_agent,
            timeout: config.request_timeout,
            connect_timeout: Some(config.connect_timeout),
            follow_redirects: false,
            ca_pem: config.ca_pem,
        })
        .map_err(|error| HollyHrError::Configuration(crate::telemetry::report(&error)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: config.base_url,
                authorization,
                retry: config.retry,
                pacing: config.pacing,
                pacer: Pacer::default(),
                observer: config.observer,
            }),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    fn url(&self, request: &Request) -> Result<Url, HollyHrError> {
        // Ids are percent-encoded into single segments, so no id can reach another route
        // (such as `/people/{id}/personal`); dot segments would be resolved, so they are refused.
        if let Some(bad) = request
            .segments
            .iter()
            .find(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(HollyHrError::InvalidArgument(format!(
                "{bad:?} is not a valid id for {}",
                request.route
            )));
        }
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|()| HollyHrError::Configuration("the base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(&request.segments);
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        Ok(url)
    }

    /// Whether a request on `route` (a contract path template) would wait for the rate limit
    /// now: its bucket is in the reserve the pacing keeps, or empty.
    pub fn paced(&self, route: &'static str) -> bool {
        !self
            .inner
            .pacer
            .delay(route, Instant::now(), &self.inner.pacing)
            .is_zero()
    }

    /// Sends a request with pacing and retries; returns the 2xx/304 answer or a typed error.
    pub(super) async fn execute(&self, request: &Request) -> Result<Answer, HollyHrError> {
        let url = self.url(request)?;
        let key = request.extra.idempotency.as_ref().map(|idempotency| {
            idempotency.key_for(
                request.method.as_str(),
                &request.relative_path(),
                request.extra.if_match.as_ref().map(ResourceEtag::as_str),
                request.body.as_deref().unwrap_or_default(),
            )
        });
        let policy = &self.inner.retry;
        let started = Instant::now();
        (|| self.send_once(request, &url, key.as_ref()))
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .when(|error| retry::classify(error) != Retryability::Never)
            .adjust(|error, backoff| {
                retry::next_delay(retry::classify(error), backoff, started.elapsed(), policy)
            })
            .notify(|error, wait| {
                tracing::warn!(
                    method = %request.method,
                    route = request.route,
                    reason = error.reason(),
                    status = error.status(),
                    request_id = error.request_id(),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "HollyHR request failed; retrying"
                );
            })
            .await
    }

    async fn send_once(
        &self,
        request: &Request,
        url: &Url,
        key: Option<&IdempotencyKey>,
    ) -> Result<Answer, HollyHrError> {
        let (method, route) = (&request.method, request.route);
        let pause = self
            .inner
            .pacer
            .delay(route, Instant::now(), &self.inner.pacing);
        if !pause.is_zero() {
            tracing::debug!(
                route,
                pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                "pacing before the rate limit"
            );
            tokio::time::sleep(pause).await;
        }

        let mut builder = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        if let Some(etag) = &request.extra.if_match {
            builder = builder.header(http::header::IF_MATCH, etag.as_str());
        }
        if let Some(etag) = &request.extra.if_none_match {
            builder = builder.header(http::header::IF_NONE_MATCH, etag.as_str());
        }
        if let Some(key) = key {
            builder = builder.header(IDEMPOTENCY_KEY, key.as_str());
        }

        let transport = |error: reqwest::Error| transport_error(method, route, error);
        let response = builder.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(snapshot) = RateLimitSnapshot::from_headers(&headers) {
            self.inner.pacer.record(route, snapshot, Instant::now());
        }
        let request_id = header_text(&headers, REQUEST_ID)
            .or_else(|| header_text(&headers, CORRELATION_ID))
            .map(str::to_owned);
        let body = crate::http::read_limited(response, crate::http::BODY_LIMIT)
            .await
            .map_err(transport)?
            .ok_or(HollyHrError::Protocol {
                method: method.clone(),
                route,
                problem: crate::http::TOO_LARGE,
            })?;
        if let Some(observer) = &self.inner.observer {
            (observer.0)(route, status.as_u16());
        }
        tracing::debug!(
            method = %method,
            route,
            path = url.path(),
            status = status.as_u16(),
            request_id = request_id.as_deref(),
            "HollyHR answered"
        );

        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(Answer {
                status,
                etag: ResourceEtag::from_headers(&headers),
                request_id,
                body,
            });
        }
        Err(api_error(
            method, route, status, &headers, &body, request_id,
        ))
    }

    /// Sends and decodes the JSON body of a 2xx answer.
    pub(super) async fn fetch<T: DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<Versioned<T>, HollyHrError> {
        let answer = self.execute(request).await?;
        if answer.status == StatusCode::NOT_MODIFIED {
            return Err(protocol(request, "304 without a conditional request"));
        }
        let value = decode(request, &answer)?;
        Ok(Versioned {
            value,
            etag: answer.etag,
        })
    }

    /// Sends a read that may carry `If-None-Match`.
    pub(super) async fn fetch_conditional<T: DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<Conditional<T>, HollyHrError> {
        let answer = self.execute(request).await?;
        if answer.status == StatusCode::NOT_MODIFIED {
            if request.extra.if_none_match.is_none() {
                return Err(protocol(request, "304 without a conditional request"));
            }
            return Ok(Conditional::NotModified { etag: answer.etag });
        }
        let value = decode(request, &answer)?;
        Ok(Conditional::Modified(Versioned {
            value,
            etag: answer.etag,
        }))
    }

    /// Follows `next_cursor` until `has_more` is false, one page in memory at a time. Each page
    /// request resends the original filters with the cursor, as HollyHR's docs and SDK do.
    pub(super) fn pages<T>(
        &self,
        first: Request,
    ) -> impl Stream<Item = Result<Page<T>, HollyHrError>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        enum Next {
            First,
            Cursor(String),
            Done,
        }
        let client = self.clone();
        stream::try_unfold(Next::First, move |next| {
            let client = client.clone();
            let first = first.clone();
            async move {
                let (request, cursor) = match next {
                    Next::Done => return Ok(None),
                    Next::First => (first, None),
                    Next::Cursor(cursor) => (first.query("cursor", &cursor), Some(cursor)),
                };
                let page: Page<T> = client.fetch(&request).await?.value;
                let next = match (page.pagination.has_more, &page.pagination.next_cursor) {
                    (false, _) => Next::Done,
                    (true, None) => {
                        return Err(protocol(&request, "has_more without a next_cursor"));
                    }
                    (true, Some(next)) if Some(next) == cursor.as_ref() => {
                        return Err(protocol(&request, "next_cursor repeats the current cursor"));
                    }
                    (true, Some(next)) => Next::Cursor(next.clone()),
                };
                Ok(Some((page, next)))
            }
        })
    }

    /// [`Self::pages`] flattened into items.
    pub(super) fn items<T>(
        &self,
        first: Request,
    ) -> impl Stream<Item = Result<T, HollyHrError>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.pages(first)
            .map_ok(|page: Page<T>| stream::iter(page.data.into_iter().map(Ok)))
            .try_flatten()
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn transport_error(method: &Method, route: &'static str, error: reqwest::Error) -> HollyHrError {
    // The URL holds ids only, but the route already says where; keep errors short.
    let source = error.without_url();
    if source.is_timeout() {
        HollyHrError::Timeout {
            method: method.clone(),
            route,
            source,
        }
    } else {
        HollyHrError::Network {
            method: method.clone(),
            route,
            source,
        }
    }
}

fn api_error(
    method: &Method,
    route: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    request_id: Option<String>,
) -> HollyHrError {
    let retry_after = header_text(headers, "retry-after")
        .and_then(|value| retry::parse_retry_after(value, Timestamp::now()));
    let (code, message, details, body_request_id) =
        match serde_json::from_slice::<ErrorEnvelope>(body) {
            Ok(envelope) => (
                envelope.error.code,
                envelope.error.message,
                envelope.error.details.unwrap_or_default(),
                Some(envelope.error.request_id),
            ),
            Err(_) => (
                String::new(),
                format!(
                    "{} without HollyHR's error envelope",
                    status.canonical_reason().unwrap_or("error")
                ),
                Vec::new(),
                None,
            ),
        };
    HollyHrError::Api(Box::new(ApiError {
        method: method.clone(),
        route,
        status: status.as_u16(),
        code,
        message,
        request_id: request_id.or(body_request_id),
        details,
        retry_after,
    }))
}

fn protocol(request: &Request, problem: &'static str) -> HollyHrError {
    HollyHrError::Protocol {
        method: request.method.clone(),
        route: request.route,
        problem,
    }
}

fn decode<T: DeserializeOwned>(request: &Request, answer: &Answer) -> Result<T, HollyHrError> {
    let mut deserializer = serde_json::Deserializer::from_slice(&answer.body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let kind = match error.inner().classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated",
        };
        HollyHrError::Decode {
            method: request.method.clone(),
            route: request.route,
            path: error.path().to_string(),
            kind,
            request_id: answer.request_id.clone(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig::new(
            "https://acme.hollyhr.com/api/v1",
            SecretString::from("hhr_live_topsecretkey"),
        )
        .expect("valid config")
    }

    #[test]
    fn debug_output_never_contains_the_api_key() {
        let config = config();
        assert!(!format!("{config:?}").contains("topsecret"));
        let client = HollyHrClient::new(config).expect("client builds");
        let printed = format!("{client:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("[REDACTED]"));
        assert!(!format!("{:?}", client.inner.authorization).contains("topsecret"));
    }

    #[test]
    fn ids_become_single_encoded_path_segments() {
        let client = HollyHrClient::new(config()).expect("client builds");
        let url = |segments: &[&str]| client.url(&Request::get("/people/{personId}", segments));
        assert_eq!(
            url(&["people", "abcdefghjkmn"]).expect("valid").as_str(),
            "https://acme.hollyhr.com/api/v1/people/abcdefghjkmn"
        );
        assert_eq!(
            url(&["people", "x/personal"]).expect("valid").path(),
            "/api/v1/people/x%2Fpersonal"
        );
        for bad in ["", ".", ".."] {
            assert!(url(&["people", bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn page_limit_accepts_only_1_to_100() {
        for (limit, ok) in [
            (0, false),
            (1, true),
            (100, true),
            (101, false),
            (1000, false),
        ] {
            assert_eq!(PageLimit::new(limit).is_ok(), ok, "{limit}");
        }
    }

    #[test]
    fn the_resource_etag_is_preferred_and_weak_etags_are_never_used() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().expect("header value"));
            }
            map
        };
        let cases = [
            (
                vec![("hollyhr-resource-etag", "\"r1\""), ("etag", "\"e1\"")],
                Some("\"r1\""),
            ),
            (vec![("etag", "\"e1\"")], Some("\"e1\"")),
            (vec![("etag", "W/\"e1\"")], None),
            (vec![], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                ResourceEtag::from_headers(&headers(&pairs))
                    .as_ref()
                    .map(ResourceEtag::as_str),
                expected
            );
        }
    }

    #[test]
    fn base_urls_must_be_http() {
        for bad in ["not a url", "mailto:a@b.c", "ftp://x/api/v1"] {
            assert!(
                ClientConfig::new(bad, SecretString::from("k")).is_err(),
                "{bad}"
            );
        }
    }

    /// A valid `/people` page of three sandbox people, and their personal values (made once).
    fn valid_page() -> &'static (Vec<u8>, Vec<String>) {
        static PAGE: std::sync::LazyLock<(Vec<u8>, Vec<String>)> = std::sync::LazyLock::new(page);
        &PAGE
    }

    fn page() -> (Vec<u8>, Vec<String>) {
        let now = Timestamp::from_second(1_781_600_000).expect("a time");
        let people = peoplesync_sandbox::seed::generate(3, 7, now).people;
        let personal: Vec<String> = people
            .iter()
            .flat_map(|p| {
                [
                    p.first_name.clone(),
                    p.last_name.clone(),
                    p.work_email.clone(),
                    Some(p.display_name.clone()),
                ]
            })
            .flatten()
            .filter(|v| v.len() > 3)
            .collect();
        let page = serde_json::json!({
            "data": people,
            "pagination": { "next_cursor": "c2", "has_more": true, "limit": 3 }
        });
        (serde_json::to_vec(&page).expect("JSON"), personal)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Fuzz target: whatever a `/people` answer holds, decoding is a value or a `Decode`
        /// error naming the route and a field path, never a panic, and never a value from
        /// the body.
        #[test]
        fn people_page_decoding_never_panics_nor_echoes_the_body(
            body in crate::fuzz::answers(valid_page().0.clone()),
        ) {
            use crate::source::hollyhr::model::{Page, Person};
            let (_, personal) = valid_page();
            let request = Request::get("/people", &[]);
            let answer = Answer {
                status: StatusCode::OK,
                etag: None,
                request_id: Some("req_1".into()),
                body: Bytes::from(body),
            };
            match decode::<Page<Person>>(&request, &answer) {
                Ok(page) => proptest::prop_assert!(page.data.len() <= 6),
                Err(error) => {
                    let message = error.to_string();
                    proptest::prop_assert!(
                        matches!(error, HollyHrError::Decode { .. }),
                        "{message}"
                    );
                    proptest::prop_assert!(message.len() < 400, "{message}");
                    for value in personal {
                        proptest::prop_assert!(!message.contains(value.as_str()), "{message}");
                    }
                }
            }
        }

        /// Fuzz target: an error answer's body, whatever it holds, becomes an `Api` error.
        #[test]
        fn error_envelope_decoding_never_panics(body in crate::fuzz::answers(
            br#"{"error":{"code":"rate_limited","message":"slow down","request_id":"req_1","details":[{"field":"limit","issue":"too big"}]}}"#.to_vec(),
        )) {
            let error = api_error(
                &Method::GET,
                "/people",
                StatusCode::TOO_MANY_REQUESTS,
                &HeaderMap::new(),
                &body,
                None,
            );
            proptest::prop_assert!(matches!(error, HollyHrError::Api(_)));
        }
    }
}
