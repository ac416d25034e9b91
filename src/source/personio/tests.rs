//! Client scenarios against a scripted Personio double: an axum router on 127.0.0.1:0 that
//! records every request and answers what each test's script says.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request as HttpRequest, State};
use axum::response::Response;
use futures::TryStreamExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::model::{self, route};
use super::*;
use crate::retry::RetryPolicy;
use crate::source::hollyhr::RequestObserver;
use crate::source::{PeopleSource, Person, SourceError};

/// One request as the double saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    authorization: Option<String>,
    app_id: Option<String>,
    accept: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

struct Reply {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            headers: vec![("content-type", "application/json".into())],
            delay: Duration::ZERO,
        }
    }

    fn ok(body: Value) -> Self {
        Self::json(200, body)
    }

    fn problem(status: u16, code: &str, trace_id: &str) -> Self {
        let mut reply = Self::json(
            status,
            json!({
                "personio_trace_id": trace_id,
                "timestamp": "2026-06-01T00:00:00+00:00",
                "errors": [{
                    "title": "Problem",
                    "detail": "no detail",
                    "type": format!("https://developer.personio.de/reference/errors#{code}")
                }]
            }),
        );
        reply.headers = vec![("content-type", "application/problem+json".into())];
        reply
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
            headers: vec![],
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// `(request, how many earlier requests had the same method and path)` → the answer.
type Script = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

struct DoubleState {
    script: Box<Script>,
    seen: Mutex<Vec<Seen>>,
    employments_in_flight: AtomicUsize,
    employments_max_in_flight: AtomicUsize,
}

struct Double {
    base: Url,
    state: Arc<DoubleState>,
}

impl Double {
    /// A double whose every answer comes from `script`, the token endpoint's included.
    async fn raw(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let state = Arc::new(DoubleState {
            script: Box::new(script),
            seen: Mutex::new(Vec::new()),
            employments_in_flight: AtomicUsize::new(0),
            employments_max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let base = Url::parse(&format!(
            "http://{}",
            listener.local_addr().expect("an address")
        ))
        .expect("a URL");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, state }
    }

    /// A double with a working token endpoint (`papi-token-1`, `-2`, ... per call, granting
    /// what was asked) and `script` for everything else.
    async fn api(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::raw(move |seen, nth| {
            if seen.path == route::TOKEN {
                token_reply(seen, nth)
            } else {
                script(seen, nth)
            }
        })
        .await
    }

    fn requests(&self, method: &str, path: &str) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .expect("log")
            .iter()
            .filter(|seen| seen.method == method && seen.path == path)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("log").clone()
    }

    fn tokens(&self) -> Vec<Seen> {
        self.requests("POST", route::TOKEN)
    }

    fn client(&self) -> PersonioClient {
        PersonioClient::new(self.config()).expect("client builds")
    }

    fn config(&self) -> PersonioConfig {
        let mut config = PersonioConfig::new(
            self.base.clone(),
            "papi-client-id",
            SecretString::from("papi-topsecret"),
        );
        config.app_id = Some("PEOPLESYNC_TEST".into());
        config.retry = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_elapsed: Duration::from_secs(5),
        };
        config
    }
}

async fn handle(State(state): State<Arc<DoubleState>>, request: HttpRequest) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
        authorization: header("authorization"),
        app_id: header("x-personio-app-id"),
        accept: header("accept"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let nth = {
        let mut log = state.seen.lock().expect("log");
        let nth = log
            .iter()
            .filter(|s| s.method == seen.method && s.path == seen.path)
            .count();
        log.push(seen.clone());
        nth
    };
    let reply = (state.script)(&seen, nth);
    let employment = seen.path.ends_with("/employments");
    if employment {
        let now = state.employments_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state
            .employments_max_in_flight
            .fetch_max(now, Ordering::SeqCst);
    }
    tokio::time::sleep(reply.delay).await;
    if employment {
        state.employments_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(reply.body)).expect("a response")
}

fn token_reply(seen: &Seen, nth: usize) -> Reply {
    Reply::ok(json!({
        "access_token": format!("papi-token-{}", nth + 1),
        "token_type": "Bearer",
        "expires_in": 86_400,
        "scope": seen.form("scope").unwrap_or_default(),
    }))
}

fn bearer(n: usize) -> Option<String> {
    Some(format!("Bearer papi-token-{n}"))
}

/// A list page; `next` links to a path that does not exist (as Personio's examples do) so the
/// client must read the cursor only.
fn page(items: Vec<Value>, next: Option<&str>) -> Value {
    let links = match next {
        Some(cursor) => {
            json!({"next": {"href": format!("https://api.personio.de/v2/elsewhere?cursor={cursor}&limit=50")}})
        }
        None => json!({}),
    };
    json!({"_data": items, "_meta": {"links": links}})
}

fn person(id: &str) -> Value {
    json!({"id": id, "first_name": format!("First{id}"), "last_name": "Last", "status": "ACTIVE",
           "updated_at": "2026-05-01T00:00:00Z"})
}

fn employment(id: &str, department: Option<&str>) -> Value {
    let units: Vec<Value> = department
        .map(|unit| json!({"type": "department", "id": unit}))
        .into_iter()
        .collect();
    json!({"id": format!("e-{id}"), "status": "ACTIVE", "org_units": units,
           "position": {"title": "Engineer"}, "employment_start_date": "2024-01-01"})
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_token_is_fetched_once_for_concurrent_callers_and_sent_as_a_bearer() {
    let double = Double::raw(|seen, nth| {
        if seen.path == route::TOKEN {
            // slow, so every caller is waiting while the one fetch is in flight
            token_reply(seen, nth).after(Duration::from_millis(100))
        } else {
            Reply::ok(person("1"))
        }
    })
    .await;
    let client = double.client();
    let calls = (0..8).map(|_| {
        let client = client.clone();
        async move { client.person_raw("1").await }
    });
    for found in futures::future::join_all(calls).await {
        assert_eq!(found.expect("found").expect("a person").id, "1");
    }
    let tokens = double.tokens();
    assert_eq!(tokens.len(), 1);
    let token = &tokens[0];
    assert_eq!(
        token.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        token.form("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(token.form("client_id").as_deref(), Some("papi-client-id"));
    assert_eq!(
        token.form("client_secret").as_deref(),
        Some("papi-topsecret")
    );
    assert_eq!(
        token.form("scope").as_deref(),
        Some("personio:persons:read")
    );
    let all = double.all();
    assert_eq!(all.len(), 9);
    for seen in &all {
        assert_eq!(
            seen.app_id.as_deref(),
            Some("PEOPLESYNC_TEST"),
            "{}",
            seen.path
        );
        assert_eq!(
            seen.accept.as_deref(),
            Some("application/json"),
            "{}",
            seen.path
        );
    }
    for seen in double.requests("GET", "/v2/persons/1") {
        assert_eq!(seen.authorization, bearer(1));
    }
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_then_succeeds() {
    let double = Double::api(|seen, _| {
        if seen.authorization == bearer(1) {
            Reply::problem(401, "common.unauthorized", "tr-401")
        } else {
            Reply::ok(person("1"))
        }
    })
    .await;
    let found = double.client().person_raw("1").await.expect("succeeds");
    assert!(found.is_some());
    assert_eq!(double.tokens().len(), 2);
    let sent: Vec<_> = double
        .requests("GET", "/v2/persons/1")
        .into_iter()
        .map(|seen| seen.authorization)
        .collect();
    assert_eq!(sent, vec![bearer(1), bearer(2)]);
}

#[tokio::test]
async fn a_401_after_the_refresh_fails_as_unauthorized() {
    let double = Double::api(|_, _| Reply::problem(401, "common.unauthorized", "tr-401")).await;
    let error = double
        .client()
        .person_raw("1")
        .await
        .expect_err("refused twice");
    assert_eq!(error.reason(), "Unauthorized");
    assert_eq!(error.trace_id(), Some("tr-401"));
    assert_eq!(double.tokens().len(), 2);
    assert_eq!(double.requests("GET", "/v2/persons/1").len(), 2);
}

#[tokio::test]
async fn concurrent_401s_refresh_the_token_only_once() {
    let double = Double::raw(|seen, nth| {
        if seen.path == route::TOKEN {
            token_reply(seen, nth).after(Duration::from_millis(50))
        } else if seen.authorization == bearer(1) {
            Reply::problem(401, "common.unauthorized", "t").after(Duration::from_millis(20))
        } else {
            Reply::ok(person("1"))
        }
    })
    .await;
    let client = double.client();
    let calls = (0..6).map(|_| {
        let client = client.clone();
        async move { client.person_raw("1").await }
    });
    for found in futures::future::join_all(calls).await {
        assert!(found.expect("succeeds after the refresh").is_some());
    }
    assert_eq!(double.tokens().len(), 2);
}

#[tokio::test]
async fn an_expiring_token_is_replaced_before_it_runs_out() {
    let double = Double::raw(|seen, nth| {
        if seen.path == route::TOKEN {
            // one second: used for 0.9 s (a tenth is the margin)
            Reply::ok(
                json!({"access_token": format!("papi-short-{nth}"), "token_type": "Bearer",
                             "expires_in": 1}),
            )
        } else {
            Reply::ok(person("1"))
        }
    })
    .await;
    let client = double.client();
    client.person_raw("1").await.expect("first");
    client.person_raw("1").await.expect("cached");
    assert_eq!(double.tokens().len(), 1);
    tokio::time::sleep(Duration::from_millis(950)).await;
    client.person_raw("1").await.expect("after expiry");
    assert_eq!(double.tokens().len(), 2);
}

#[tokio::test]
async fn token_refusals_are_typed_and_not_retried() {
    let cases = [
        ("invalid_client", "InvalidCredentials"),
        ("invalid_scope", "MissingScope"),
        ("invalid_request", "TokenRejected"),
    ];
    for (code, reason) in cases {
        let double = Double::raw(move |_, _| {
            Reply::json(
                400,
                json!({"error": code, "error_description": "refused", "trace_id": "tr-tok"}),
            )
        })
        .await;
        let error = double.client().whoami().await.expect_err("refused");
        assert_eq!(error.reason(), reason, "{code}");
        assert_eq!(SourceError::reason(&error), reason, "{code}");
        assert_eq!(error.trace_id(), Some("tr-tok"), "{code}");
        assert_eq!(double.tokens().len(), 1, "{code}");
        let text = error.to_string();
        assert!(!text.contains("papi-topsecret"), "{text}");
    }
}

#[tokio::test]
async fn a_rate_limited_token_endpoint_is_asked_again_a_second_later() {
    let double = Double::raw(|seen, nth| {
        if nth == 0 {
            Reply::json(429, json!({}))
        } else {
            token_reply(seen, nth)
        }
    })
    .await;
    let started = Instant::now();
    let principal = double.client().whoami().await.expect("second try works");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(double.tokens().len(), 2);
    assert_eq!(principal.scopes, vec!["personio:persons:read"]);
}

#[tokio::test]
async fn whoami_names_the_host_the_client_id_and_the_granted_scopes() {
    let double = Double::raw(|_, _| {
        Reply::ok(
            json!({"access_token": "papi-x", "token_type": "Bearer", "expires_in": 86400,
                         "scope": "personio:persons:read personio:webhooks:read"}),
        )
    })
    .await;
    let principal = double.client().whoami().await.expect("a principal");
    assert_eq!(principal.organisation_id, "127.0.0.1");
    assert_eq!(principal.key_id, "papi-client-id");
    assert!(principal.sandbox);
    assert_eq!(
        principal.scopes,
        vec!["personio:persons:read", "personio:webhooks:read"]
    );
    assert!(
        principal
            .missing_scopes(&["personio:persons:read"])
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Listing, errors, retries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn filters_are_resent_with_the_cursor_until_the_last_page() {
    let double = Double::api(|seen, _| match seen.param("cursor") {
        None => Reply::ok(page(vec![person("1"), person("2")], Some("cur_a"))),
        Some("cur_a") => Reply::ok(page(vec![person("3")], Some("cur_b"))),
        Some(_) => Reply::ok(page(vec![person("4")], None)),
    })
    .await;
    let query = PersonsQuery {
        updated_after: Some("2026-05-01T10:00:00.750Z".parse().expect("a time")),
        status: Some("ACTIVE".into()),
        ids: vec!["1".into(), "2".into(), "3".into(), "4".into()],
    };
    let ids: Vec<String> = double
        .client()
        .persons(&query)
        .map_ok(|person| person.id)
        .try_collect()
        .await
        .expect("lists");
    assert_eq!(ids, ["1", "2", "3", "4"]);
    let requests = double.requests("GET", route::PERSONS);
    let cursors: Vec<_> = requests.iter().map(|seen| seen.param("cursor")).collect();
    assert_eq!(cursors, [None, Some("cur_a"), Some("cur_b")]);
    for seen in &requests {
        assert_eq!(seen.param("limit"), Some("50"));
        // whole seconds, rounded down: strictly-after never skips a change
        assert_eq!(seen.param("updated_at.gt"), Some("2026-05-01T10:00:00Z"));
        assert_eq!(seen.param("status"), Some("ACTIVE"));
        assert_eq!(seen.param("id"), Some("1,2,3,4"));
    }
}

#[tokio::test]
async fn a_next_cursor_that_repeats_fails_the_listing() {
    // a → b → a: the third page would start the loop over
    let double = Double::api(|seen, _| match seen.param("cursor") {
        None => Reply::ok(page(vec![person("1")], Some("cur_a"))),
        Some("cur_a") => Reply::ok(page(vec![person("2")], Some("cur_b"))),
        Some(_) => Reply::ok(page(vec![person("3")], Some("cur_a"))),
    })
    .await;
    let listed: Vec<Result<model::Person, PersonioError>> =
        futures::StreamExt::collect(double.client().persons(&PersonsQuery::default())).await;
    // the page whose next link repeats a cursor is where the listing fails
    assert_eq!(listed.len(), 3);
    assert!(listed[..2].iter().all(Result::is_ok));
    let error = listed[2].as_ref().expect_err("the loop is refused");
    assert!(matches!(
        error,
        PersonioError::PaginationLoop {
            route: route::PERSONS
        }
    ));
    assert_eq!(error.reason(), "PaginationLoop");
    assert_eq!(double.requests("GET", route::PERSONS).len(), 3);

    // a next link pointing back at the page itself
    let same = Double::api(|_, _| Reply::ok(page(vec![person("1")], Some("cur_same")))).await;
    let error = same
        .client()
        .persons(&PersonsQuery::default())
        .try_collect::<Vec<_>>()
        .await
        .expect_err("loops");
    assert_eq!(error.reason(), "PaginationLoop");
    assert_eq!(same.requests("GET", route::PERSONS).len(), 2);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_and_then_succeeds() {
    let double = Double::api(|_, nth| match nth {
        0 => Reply::problem(429, "common.too_many_requests", "t").header("retry-after", "0"),
        1 => Reply::empty(503),
        _ => Reply::ok(page(vec![person("1")], None)),
    })
    .await;
    let page = double
        .client()
        .persons_page(&PersonsQuery::default(), None)
        .await
        .expect("third attempt works");
    assert_eq!(page.data.len(), 1);
    assert_eq!(double.requests("GET", route::PERSONS).len(), 3);
}

#[tokio::test]
async fn a_400_problem_is_a_typed_error_with_code_and_trace_id_and_no_retry() {
    let double = Double::api(|_, _| Reply::problem(400, "common.bad_request", "tr-400")).await;
    let error = double
        .client()
        .persons_page(&PersonsQuery::default(), Some("cur_x"))
        .await
        .expect_err("refused");
    match &error {
        PersonioError::Api {
            status,
            code,
            title,
            trace_id,
            route,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(code.as_deref(), Some("common.bad_request"));
            assert_eq!(title.as_deref(), Some("Problem"));
            assert_eq!(trace_id.as_deref(), Some("tr-400"));
            assert_eq!(*route, route::PERSONS);
        }
        other => panic!("not an API error: {other:?}"),
    }
    assert_eq!(error.reason(), "BadRequest");
    assert!(error.to_string().starts_with("failed to GET /v2/persons"));
    assert_eq!(double.requests("GET", route::PERSONS).len(), 1);
}

#[tokio::test]
async fn a_body_that_is_not_the_model_is_an_invalid_response_naming_the_route() {
    let double = Double::api(|seen, _| {
        if seen.path == route::PERSONS {
            Reply {
                status: 200,
                body: "<html>Ada Lovelace</html>".into(),
                headers: vec![],
                delay: Duration::ZERO,
            }
        } else {
            Reply::ok(json!({"_data": [{"first_name": "Ada"}]}))
        }
    })
    .await;
    let client = double.client();
    let error = client
        .persons_page(&PersonsQuery::default(), None)
        .await
        .expect_err("not JSON");
    assert_eq!(error.reason(), "InvalidResponse");
    let text = error.to_string();
    assert!(
        text.contains(route::PERSONS) && !text.contains("Ada"),
        "{text}"
    );
    let error = client.latest_employment("1").await.expect_err("no id");
    assert!(
        matches!(&error, PersonioError::InvalidResponse { route: r, path, .. } if *r == route::EMPLOYMENTS && path.starts_with("_data[0]")),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// People: employments, departments, PeopleSource
// ---------------------------------------------------------------------------------------------

/// Persons 1–6 on two pages; person 3 vanishes (employments 404); persons share departments
/// 10 and 11, and 12 is unknown to Personio.
async fn people_double() -> Double {
    Double::api(|seen, _| {
        let path = seen.path.as_str();
        if path == route::PERSONS {
            return match seen.param("cursor") {
                None => Reply::ok(page(
                    vec![person("1"), person("2"), person("3")],
                    Some("p2"),
                )),
                Some(_) => Reply::ok(page(vec![person("4"), person("5"), person("6")], None)),
            };
        }
        if let Some(id) = path
            .strip_prefix("/v2/persons/")
            .and_then(|rest| rest.strip_suffix("/employments"))
        {
            assert_eq!(seen.param("limit"), Some("1"));
            // later persons answer sooner, so a reordering fan-out would show
            let delay = Duration::from_millis(60 - 10 * id.parse::<u64>().unwrap_or(0));
            let department = match id {
                "1" | "4" => Some("10"),
                "2" | "5" => Some("11"),
                "6" => Some("12"),
                _ => None,
            };
            return match id {
                "3" => Reply::problem(404, "common.resource_not_found", "t"),
                _ => Reply::ok(page(vec![employment(id, department)], None)),
            }
            .after(delay);
        }
        if let Some(id) = path.strip_prefix("/v2/org-units/") {
            assert_eq!(seen.param("type"), Some("department"));
            return match id {
                "10" => Reply::ok(json!({"id": 10, "type": "department", "name": "Research"})),
                "11" => Reply::ok(json!({"id": 11, "type": "department", "name": "Sales",
                                         "abbreviation": "SLS"})),
                _ => Reply::problem(404, "common.resource_not_found", "t"),
            }
            .after(Duration::from_millis(20));
        }
        if path == "/v2/persons/1" {
            return Reply::ok(person("1"));
        }
        Reply::problem(404, "common.resource_not_found", "t")
    })
    .await
}

#[tokio::test]
async fn people_skip_vanished_persons_keep_order_and_name_departments_once_per_id() {
    let double = people_double().await;
    let mut config = double.config();
    config.concurrency = 2;
    let client = PersonioClient::new(config).expect("client builds");
    let people: Vec<Person> = PeopleSource::people(&client, None)
        .try_collect()
        .await
        .expect("lists");
    let ids: Vec<_> = people.iter().map(|person| person.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "4", "5", "6"]);
    let departments: Vec<_> = people
        .iter()
        .map(|person| {
            person
                .department
                .as_ref()
                .map(|d| (d.id.as_str(), d.name.as_str()))
        })
        .collect();
    assert_eq!(
        departments,
        [
            Some(("10", "Research")),
            Some(("11", "Sales")),
            Some(("10", "Research")),
            Some(("11", "Sales")),
            Some(("12", "12")),
        ]
    );
    for unit in ["10", "11", "12"] {
        let path = format!("/v2/org-units/{unit}");
        assert_eq!(double.requests("GET", &path).len(), 1, "{path}");
    }
    let max = double
        .state
        .employments_max_in_flight
        .load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&max),
        "{max} employment requests in flight"
    );

    // the departments met, named, sorted; a clone shares the cache
    let units = PeopleSource::org_units(&client.clone())
        .await
        .expect("org units");
    let named: Vec<_> = units
        .iter()
        .map(|unit| (unit.id.as_str(), unit.name.as_str(), unit.code.as_deref()))
        .collect();
    assert_eq!(
        named,
        [
            ("10", "Research", None),
            ("11", "Sales", Some("SLS")),
            ("12", "12", None)
        ]
    );
    // a listing of changes asks for no org unit again; the next full listing looks each one
    // up once more (a renamed department is renamed)
    let since: jiff::Timestamp = "2026-05-01T10:00:00Z".parse().expect("a time");
    let changed: Vec<Person> = PeopleSource::people(&client.clone(), Some(since))
        .try_collect()
        .await
        .expect("lists");
    assert_eq!(changed.len(), 5);
    assert_eq!(double.requests("GET", "/v2/org-units/10").len(), 1);
    let again: Vec<Person> = PeopleSource::people(&client.clone(), None)
        .try_collect()
        .await
        .expect("lists");
    assert_eq!(again.len(), 5);
    for unit in ["10", "11", "12"] {
        let path = format!("/v2/org-units/{unit}");
        assert_eq!(double.requests("GET", &path).len(), 2, "{path}");
    }
    // every department was met again: none is asked about as an emptied one
    let units = PeopleSource::org_units(&client).await.expect("org units");
    assert_eq!(units.len(), 3);
    assert_eq!(double.requests("GET", "/v2/org-units/10").len(), 2);
}

#[tokio::test]
async fn people_changed_since_an_instant_include_that_instant() {
    let double = people_double().await;
    let since: jiff::Timestamp = "2026-05-01T10:00:00Z".parse().expect("a time");
    let people: Vec<Person> = PeopleSource::people(&double.client(), Some(since))
        .try_collect()
        .await
        .expect("lists");
    assert_eq!(people.len(), 5);
    for seen in double.requests("GET", route::PERSONS) {
        assert_eq!(seen.param("updated_at.gt"), Some("2026-05-01T09:59:59Z"));
        assert_eq!(seen.param("status"), None);
    }
}

#[tokio::test]
async fn one_person_is_read_with_their_employment_and_an_unknown_one_is_none() {
    let double = people_double().await;
    let client = double.client();
    let found = PeopleSource::person(&client, "1")
        .await
        .expect("reads")
        .expect("known");
    assert_eq!(found.display_name, "First1 Last");
    assert_eq!(found.job_title.as_deref(), Some("Engineer"));
    assert_eq!(
        found.department.map(|d| d.name).as_deref(),
        Some("Research")
    );
    assert_eq!(
        PeopleSource::person(&client, "99").await.expect("reads"),
        None
    );
    assert!(client.person_raw("99").await.expect("reads").is_none());
    let gone = client.latest_employment("3").await.expect_err("404");
    assert!(gone.is_not_found());
    assert_eq!(
        client.org_unit("12", "department").await.expect("reads"),
        None
    );
}

#[tokio::test]
async fn the_observer_hears_route_templates_and_statuses() {
    let double = people_double().await;
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let client = double
        .client()
        .with_observer(RequestObserver(Arc::new(move |route, status| {
            sink.lock().expect("sink").push((route, status));
        })));
    PeopleSource::person(&client, "1").await.expect("reads");
    client.person_raw("99").await.expect("reads");
    assert_eq!(
        *heard.lock().expect("heard"),
        [
            (route::TOKEN, 200),
            (route::PERSON, 200),
            (route::EMPLOYMENTS, 200),
            (route::ORG_UNIT, 200),
            (route::PERSON, 404),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

fn webhook(id: &str) -> Value {
    json!({"id": id, "url": "https://sync.example.com/hooks/personio", "description": "PeopleSync",
           "status": "ENABLED", "auth_type": "TOKEN", "enabled_events": ["person.updated"]})
}

#[tokio::test]
async fn webhooks_are_listed_through_every_page_with_their_own_token() {
    let double = Double::api(|seen, _| match seen.param("cursor") {
        None => Reply::ok(page(vec![webhook("w-1"), webhook("w-2")], Some("c2"))),
        Some(_) => Reply::ok(page(vec![webhook("w-3")], None)),
    })
    .await;
    let hooks = double.client().webhooks().await.expect("lists");
    let ids: Vec<_> = hooks.iter().map(|hook| hook.id.as_str()).collect();
    assert_eq!(ids, ["w-1", "w-2", "w-3"]);
    let requests = double.requests("GET", route::WEBHOOKS);
    assert!(
        requests
            .iter()
            .all(|seen| seen.param("limit") == Some("200"))
    );
    let scopes: Vec<_> = double
        .tokens()
        .iter()
        .map(|token| token.form("scope"))
        .collect();
    assert_eq!(
        scopes,
        [Some(
            "personio:webhooks:read personio:webhooks:write".to_owned()
        )]
    );
}

#[tokio::test]
async fn creating_a_webhook_posts_its_json_and_is_not_resent_after_a_502() {
    let double = Double::api(|seen, nth| match (seen.method.as_str(), nth) {
        ("POST", 0) => Reply::empty(502),
        ("POST", _) => Reply::json(201, webhook("w-new")),
        _ => Reply::empty(500),
    })
    .await;
    let body = model::WebhookWrite {
        url: Some("https://sync.example.com/hooks/personio".into()),
        description: Some("PeopleSync".into()),
        status: Some(model::webhook_status::ENABLED.into()),
        auth_type: Some("TOKEN".into()),
        token: Some("Bearer hook-secret".into()),
        enabled_events: Some(vec!["person.updated".into()]),
        ..model::WebhookWrite::default()
    };
    let client = double.client();
    let error = client.create_webhook(&body).await.expect_err("502");
    assert_eq!(error.reason(), "ServerError");
    assert_eq!(double.requests("POST", route::WEBHOOKS).len(), 1);
    let created = client.create_webhook(&body).await.expect("created");
    assert_eq!(created.id, "w-new");
    let sent = &double.requests("POST", route::WEBHOOKS)[1];
    assert_eq!(sent.content_type.as_deref(), Some("application/json"));
    let json: Value = serde_json::from_str(&sent.body).expect("JSON");
    assert_eq!(json["token"], "Bearer hook-secret");
    assert_eq!(json["enabled_events"], json!(["person.updated"]));
    assert!(json.get("custom_headers").is_none());
}

#[tokio::test]
async fn webhooks_are_updated_deleted_pinged_and_their_activity_read() {
    let double = Double::api(|seen, _| match (seen.method.as_str(), seen.path.as_str()) {
        ("PATCH", "/v2/webhooks/w-1") => Reply::ok(webhook("w-1")),
        ("DELETE", "/v2/webhooks/w-1") => Reply::empty(204),
        ("DELETE", _) => Reply::problem(404, "common.resource_not_found", "t"),
        ("POST", "/v2/webhooks/w-1/ping") => Reply::ok(json!({})),
        ("GET", "/v2/webhooks/w-1/activity") => match seen.param("cursor") {
            None => Reply::ok(page(
                vec![json!({"id": "a-1", "event_name": "ping", "completed_at": "2026-06-01T00:00:01Z",
                            "is_delivered": true, "response_status": 204})],
                Some("next"),
            )),
            Some(_) => Reply::ok(page(
                vec![json!({"id": "a-2", "event_name": "person.updated",
                            "completed_at": "2026-06-01T00:00:02Z", "is_delivered": false})],
                None,
            )),
        },
        _ => Reply::problem(403, "common.forbidden", "tr-403"),
    })
    .await;
    let client = double.client();
    let patch = model::WebhookWrite {
        status: Some(model::webhook_status::ENABLED.into()),
        ..model::WebhookWrite::default()
    };
    let updated = client.update_webhook("w-1", &patch).await.expect("updated");
    assert_eq!(updated.status.as_deref(), Some("ENABLED"));
    let sent = &double.requests("PATCH", "/v2/webhooks/w-1")[0];
    assert_eq!(sent.body, r#"{"status":"ENABLED"}"#);

    client.delete_webhook("w-1").await.expect("deleted");
    client
        .delete_webhook("w-gone")
        .await
        .expect("already gone is fine");
    client.ping_webhook("w-1").await.expect("pinged");
    let forbidden = client.ping_webhook("w-2").await.expect_err("403");
    assert_eq!(forbidden.reason(), "Forbidden");
    assert_eq!(forbidden.trace_id(), Some("tr-403"));

    let since: jiff::Timestamp = "2026-05-31T00:00:00Z".parse().expect("a time");
    let activity = client
        .webhook_activity("w-1", Some(since))
        .await
        .expect("activity");
    let delivered: Vec<_> = activity
        .iter()
        .map(|attempt| (attempt.id.as_str(), attempt.is_delivered))
        .collect();
    assert_eq!(delivered, [("a-1", true), ("a-2", false)]);
    for seen in double.requests("GET", "/v2/webhooks/w-1/activity") {
        assert_eq!(seen.param("completed_at.gte"), Some("2026-05-31T00:00:00Z"));
    }
    // every webhook call shared one webhook token
    assert_eq!(double.tokens().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

use crate::telemetry::Captured;

#[tokio::test]
async fn request_logs_carry_route_templates_and_statuses_but_no_people_or_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = Captured::scoped(subscriber);

    let double = Double::api(|seen, nth| {
        if seen.authorization == bearer(1) {
            Reply::problem(401, "common.unauthorized", "tr-401")
        } else if nth == 1 {
            Reply::problem(429, "common.too_many_requests", "tr-429").header("retry-after", "0")
        } else if seen.path.ends_with("/employments") {
            Reply::problem(404, "common.resource_not_found", "tr-404")
        } else {
            Reply::ok(json!({"id": "31415", "first_name": "Grace", "email": "grace@example.com"}))
        }
    })
    .await;
    let client = double.client();
    assert_eq!(
        PeopleSource::person(&client, "31415").await.expect("read"),
        None
    );

    let logs = captured.text();
    for expected in [
        "Personio answered",
        "/v2/persons/{id}",
        "status=401",
        "refreshing it once",
        "retrying",
        "tr-429",
        "vanished",
    ] {
        assert!(logs.contains(expected), "{expected} missing from:\n{logs}");
    }
    for secret in ["papi-token", "papi-topsecret", "Grace", "grace@", "31415"] {
        assert!(!logs.contains(secret), "{secret} leaked into:\n{logs}");
    }
}
