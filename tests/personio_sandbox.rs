//! The Personio sandbox over real HTTP: token rules, auth and scopes, pagination under writes,
//! filters, employments, org units, writes and their events, webhooks and deliveries with
//! Personio's retry behaviour, faults and the request log. Every body the sandbox sends here is
//! read back into the `model.rs` types and validated against the hand-transcribed schemas of
//! `tests/fixtures/personio-v2-schemas.json`.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use peoplesync::source::personio::model::{
    Activity, Employment, Event, ListPage, OrgUnit, Person, Problem, Token, TokenError, Webhook,
};
use peoplesync_sandbox::personio::{
    self, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioSandboxConfig, PersonioSandboxHandle,
};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const SCHEMAS: &str = include_str!("fixtures/personio-v2-schemas.json");

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> String {
        let problem: Problem = serde_json::from_value(self.body.clone()).expect("a problem");
        problem.code().unwrap_or_default().to_owned()
    }

    fn page<T: serde::de::DeserializeOwned>(&self) -> ListPage<T> {
        assert_eq!(self.status, 200, "{}", self.body);
        serde_json::from_value(self.body.clone()).expect("a list page")
    }
}

/// Validates `instance` against the fixture's `$defs/<name>`.
fn violations(name: &str, instance: &Value) -> Vec<String> {
    let mut root: Value = serde_json::from_str(SCHEMAS).expect("the fixture is JSON");
    root["$ref"] = Value::String(format!("#/$defs/{name}"));
    root["$schema"] = Value::String("https://json-schema.org/draft/2020-12/schema".into());
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .expect("the fixture's schemas compile");
    validator
        .iter_errors(instance)
        .map(|error| format!("{error} at {}", error.instance_path))
        .collect()
}

fn conforms<T: serde::de::DeserializeOwned>(schema: &str, body: &Value) {
    let problems = violations(schema, body);
    assert!(problems.is_empty(), "{schema}: {problems:?} in {body}");
    if let Err(error) = serde_json::from_value::<T>(body.clone()) {
        panic!("{schema} does not read into the model: {error} in {body}");
    }
}

/// Checks a response against the schema and model type of its operation.
fn check(method: &Method, path: &str, reply: &Reply) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let token_route = segments.get(1) == Some(&"auth");
    match (reply.status, method.as_str(), segments.as_slice()) {
        (400.., _, _) if token_route => conforms::<TokenError>("TokenError", &reply.body),
        (400.., _, _) => conforms::<Problem>("Problem", &reply.body),
        (204, _, _) | (200, "POST", ["v2", "auth", "revoke"]) => {
            assert_eq!(reply.body, Value::Null, "no body")
        }
        (200, _, ["v2", "auth", "token"]) => conforms::<Token>("Token", &reply.body),
        (200, "GET", ["v2", "persons"]) => conforms::<ListPage<Person>>("PersonList", &reply.body),
        (_, _, ["v2", "persons"] | ["v2", "persons", _]) => {
            conforms::<Person>("Person", &reply.body)
        }
        (_, _, ["v2", "persons", _, "employments"]) => {
            conforms::<ListPage<Employment>>("EmploymentList", &reply.body)
        }
        (_, _, ["v2", "persons", _, "employments", _]) => {
            conforms::<Employment>("Employment", &reply.body)
        }
        (_, _, ["v2", "org-units", _]) => conforms::<OrgUnit>("OrgUnit", &reply.body),
        (_, "GET", ["v2", "webhooks"]) => conforms::<ListPage<Webhook>>("WebhookList", &reply.body),
        (_, _, ["v2", "webhooks"] | ["v2", "webhooks", _]) => {
            conforms::<Webhook>("Webhook", &reply.body)
        }
        (_, _, ["v2", "webhooks", _, "activity"]) => {
            conforms::<ListPage<Activity>>("ActivityList", &reply.body)
        }
        (_, _, ["v2", "webhooks", _, "ping"]) => conforms::<Event>("Event", &reply.body),
        other => panic!("no schema for {other:?}"),
    }
}

struct Harness {
    sandbox: PersonioSandboxHandle,
    http: reqwest::Client,
    token: String,
}

fn config(people: usize) -> PersonioSandboxConfig {
    PersonioSandboxConfig {
        people,
        rate_limit_per_minute: 0,
        allow_insecure_webhook_urls: true,
        delivery_retry_schedule: vec![Duration::from_secs(60), Duration::from_secs(300)],
        delivery_timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

fn credentials(scope: Option<&str>) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials")
        .append_pair("client_id", DEFAULT_CLIENT_ID)
        .append_pair("client_secret", DEFAULT_CLIENT_SECRET);
    if let Some(scope) = scope {
        form.append_pair("scope", scope);
    }
    form.finish()
}

impl Harness {
    async fn start(config: PersonioSandboxConfig) -> Self {
        let sandbox = personio::start(config).await.expect("sandbox starts");
        let mut harness = Self {
            sandbox,
            http: reqwest::Client::new(),
            token: String::new(),
        };
        harness.token = harness.token_for(None).await;
        harness
    }

    async fn token_for(&self, scope: Option<&str>) -> String {
        let reply = self.form("/v2/auth/token", &credentials(scope)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: String,
        token: Option<&str>,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.sandbox.base_url())
        };
        let mut request = self.http.request(method.clone(), &url);
        if !body.is_empty() {
            request = request.header("content-type", content_type).body(body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the sandbox answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("bodies are JSON")
        };
        let reply = Reply {
            status,
            headers,
            body,
        };
        let path = url::Url::parse(&url).expect("a url").path().to_owned();
        check(&method, &path, &reply);
        reply
    }

    async fn form(&self, path: &str, form: &str) -> Reply {
        self.raw(
            Method::POST,
            path,
            "application/x-www-form-urlencoded",
            form.to_owned(),
            None,
        )
        .await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, "application/json", body, Some(&self.token))
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Every person, following `next.href` as given.
    async fn all_persons(&self, query: &str) -> Vec<Person> {
        let mut persons = Vec::new();
        let mut next = Some(format!("/v2/persons?limit=50{query}"));
        while let Some(path) = next {
            let reply = self.get(&path).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page: ListPage<Person> = reply.page();
            next = page.meta.links.next.map(|href| href.href);
            persons.extend(page.data);
        }
        persons
    }

    async fn events(&self) -> Vec<Event> {
        self.sandbox.controls().events().await.expect("events")
    }

    async fn advance(&self, seconds: i64) {
        self.sandbox
            .controls()
            .clock(json!({ "advance_seconds": seconds }))
            .await
            .expect("clock moves");
    }
}

/// A webhook receiver that records every delivery and answers with a settable status.
#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(AtomicU16::new(status));
        let (log, code) = (seen.clone(), answer.clone());
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (log, code) = (log.clone(), code.clone());
            async move {
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                log.lock().expect("lock").push((headers, event));
                axum::http::StatusCode::from_u16(code.load(Ordering::SeqCst)).expect("a status")
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
        Self { url, seen }
    }

    fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    /// Waits until `n` deliveries arrived (or fails after 5 s), then checks each envelope.
    async fn wait_for(&self, n: usize) -> Vec<(HeaderMap, Value)> {
        for _ in 0..250 {
            if self.count() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = self.seen.lock().expect("lock").clone();
        assert!(
            seen.len() >= n,
            "expected {n} deliveries, got {}",
            seen.len()
        );
        for (_, event) in &seen {
            conforms::<Event>("Event", event);
        }
        seen
    }

    /// Asserts that nothing more than `n` arrives within a short while.
    async fn stays_at(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(self.count(), n);
    }
}

fn person_ids(persons: &[Person]) -> Vec<String> {
    persons.iter().map(|p| p.id.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Tokens, auth, scopes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_token_endpoint_takes_forms_checks_client_and_scope_and_repeats_its_token() {
    let h = Harness::start(config(5)).await;
    let json_body = h
        .raw(
            Method::POST,
            "/v2/auth/token",
            "application/json",
            json!({"grant_type": "client_credentials"}).to_string(),
            None,
        )
        .await;
    assert_eq!(json_body.status, 400);
    assert_eq!(json_body.body["error"], "invalid_request");
    let wrong = h
        .form(
            "/v2/auth/token",
            &credentials(None).replace(DEFAULT_CLIENT_SECRET, "papi-wrong"),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.body["error"].as_str()),
        (400, Some("invalid_client"))
    );
    let scope = h
        .form(
            "/v2/auth/token",
            &credentials(Some("personio:absences:read")),
        )
        .await;
    assert_eq!(
        (scope.status, scope.body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    let first = h.form("/v2/auth/token", &credentials(None)).await;
    assert_eq!(
        first.body["access_token"],
        h.token.as_str(),
        "the same token within its ttl"
    );
    assert_eq!(first.headers["cache-control"], "no-store");
    h.advance(3600).await;
    let later: Token =
        serde_json::from_value(h.form("/v2/auth/token", &credentials(None)).await.body)
            .expect("token");
    assert_eq!(later.access_token, h.token);
    assert!(
        later.expires_in <= 86_400 - 3600,
        "expires_in counts down: {}",
        later.expires_in
    );

    let revoke = h
        .form("/v2/auth/revoke", &format!("token={}", h.token))
        .await;
    assert_eq!(revoke.status, 200);
    assert_eq!(h.get("/v2/persons").await.status, 401, "revoked");
    let fresh = h.token_for(None).await;
    assert_ne!(fresh, h.token);
}

#[tokio::test]
async fn the_token_endpoint_allows_150_a_minute_then_one_a_second() {
    let h = Harness::start(config(1)).await;
    // The harness already used one request of the window.
    for _ in 1..150 {
        assert_eq!(
            h.form("/v2/auth/token", &credentials(None)).await.status,
            200
        );
    }
    let limited = h.form("/v2/auth/token", &credentials(None)).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(limited.body["error"], "temporarily_unavailable");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        h.form("/v2/auth/token", &credentials(None)).await.status,
        200
    );
    assert_eq!(
        h.form("/v2/auth/token", &credentials(None)).await.status,
        429
    );
}

#[tokio::test]
async fn resource_routes_need_a_live_bearer_token_with_the_right_scope() {
    let h = Harness::start(PersonioSandboxConfig {
        token_ttl: Duration::from_secs(600),
        ..config(5)
    })
    .await;
    let none = h
        .raw(Method::GET, "/v2/persons", "", String::new(), None)
        .await;
    assert_eq!(
        (none.status, none.code().as_str()),
        (401, "common.unauthorized")
    );
    let unknown = h
        .raw(
            Method::GET,
            "/v2/persons",
            "",
            String::new(),
            Some("papi-nope"),
        )
        .await;
    assert_eq!(unknown.status, 401);
    let reader = h.token_for(Some("personio:persons:read")).await;
    assert_ne!(reader, h.token, "another scope set, another token");
    let ok = h
        .raw(Method::GET, "/v2/persons", "", String::new(), Some(&reader))
        .await;
    assert_eq!(ok.status, 200);
    let forbidden = h
        .raw(
            Method::GET,
            "/v2/webhooks",
            "",
            String::new(),
            Some(&reader),
        )
        .await;
    assert_eq!(
        (forbidden.status, forbidden.code().as_str()),
        (403, "common.forbidden")
    );
    let write = h
        .raw(
            Method::DELETE,
            "/v2/persons/3001",
            "",
            String::new(),
            Some(&reader),
        )
        .await;
    assert_eq!(write.status, 403);
    h.advance(601).await;
    assert_eq!(h.get("/v2/persons").await.status, 401, "expired");
}

// ---------------------------------------------------------------------------------------------
// Persons: pagination and filters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_scan_covers_everyone_exactly_once_while_people_change() {
    let h = Harness::start(config(45)).await;
    for limit in [1, 7, 50] {
        h.sandbox.controls().reset(45).await.expect("reset");
        let before: BTreeSet<String> = person_ids(&h.all_persons("").await).into_iter().collect();
        let mut seen = Vec::new();
        let mut created = Vec::new();
        let mut next = Some(format!("/v2/persons?limit={limit}"));
        let mut pages = 0;
        while let Some(path) = next {
            let page: ListPage<Person> = h.get(&path).await.page();
            assert!(page.data.len() <= limit);
            seen.extend(person_ids(&page.data));
            next = page.meta.links.next.map(|href| href.href);
            pages += 1;
            // Between pages: someone already seen and someone not yet seen change, and now
            // and then a person is hired (they come last in id order, so the scan meets them).
            let first = seen[0].clone();
            let last = before.iter().next_back().expect("people").clone();
            for id in [first, last] {
                let patch = json!({"preferred_name": format!("p{pages}")});
                assert_eq!(
                    h.call(Method::PATCH, &format!("/v2/persons/{id}"), Some(patch))
                        .await
                        .status,
                    200
                );
            }
            if pages % 4 == 0 && next.is_some() {
                let body = json!({
                    "email": format!("hire{limit}.{pages}@personio-demo.example"),
                    "first_name": "New", "last_name": "Hire"
                });
                let reply = h.call(Method::POST, "/v2/persons", Some(body)).await;
                assert_eq!(reply.status, 201, "{}", reply.body);
                created.push(reply.body["id"].as_str().expect("id").to_owned());
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "nobody twice (limit {limit})");
        let expected: BTreeSet<String> = before.into_iter().chain(created).collect();
        assert_eq!(
            seen.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "nobody skipped (limit {limit})"
        );
    }
}

#[tokio::test]
async fn filters_select_strictly_later_updates_statuses_ids_and_emails() {
    let h = Harness::start(config(300)).await;
    let everyone = h.all_persons("").await;
    assert_eq!(everyone.len(), 300);
    let ids = person_ids(&everyone);
    let mut sorted: Vec<u64> = ids.iter().map(|id| id.parse().expect("numeric")).collect();
    sorted.sort();
    assert_eq!(
        ids,
        sorted.iter().map(u64::to_string).collect::<Vec<_>>(),
        "id order"
    );

    // A timestamp several people share: `.gt` must leave all of them out.
    let shared = everyone
        .iter()
        .filter_map(|p| p.updated_at)
        .find(|at| {
            everyone
                .iter()
                .filter(|p| p.updated_at == Some(*at))
                .count()
                > 1
        })
        .expect("some people share an updated_at");
    let later = h.all_persons(&format!("&updated_at.gt={shared}")).await;
    let expected: Vec<&Person> = everyone
        .iter()
        .filter(|p| p.updated_at.is_some_and(|u| u > shared))
        .collect();
    assert_eq!(later.len(), expected.len());
    assert!(
        later
            .iter()
            .all(|p| p.updated_at.is_some_and(|u| u > shared))
    );
    let equal = h.all_persons(&format!("&updated_at={shared}")).await;
    assert!(equal.len() > 1 && equal.iter().all(|p| p.updated_at == Some(shared)));

    let inactive = h.all_persons("&status=INACTIVE").await;
    let active = h.all_persons("&status=ACTIVE").await;
    assert!(!inactive.is_empty());
    assert!(
        inactive
            .iter()
            .all(|p| p.status.as_deref() == Some("INACTIVE"))
    );
    assert_eq!(inactive.len() + active.len(), everyone.len());

    let picked = format!("{},{}", ids[3], ids[200]);
    let by_id = h.all_persons(&format!("&id={picked}")).await;
    assert_eq!(person_ids(&by_id), [ids[3].clone(), ids[200].clone()]);
    let email = everyone[10].email.clone().expect("email").to_uppercase();
    let by_email = h.all_persons(&format!("&email={email}")).await;
    assert_eq!(person_ids(&by_email), [ids[10].clone()]);
    let single = h.get(&format!("/v2/persons/{}", ids[10])).await;
    assert_eq!(
        single.body["email"],
        everyone[10].email.clone().expect("email").as_str()
    );
}

#[tokio::test]
async fn bad_filters_limits_and_cursors_are_400_problems_and_unknown_people_404() {
    let h = Harness::start(config(5)).await;
    for query in [
        "id.nooperator=0825e977",
        "created_at.lt=wrong-date-format",
        "updated_at.gte=2026-01-01T00:00:00Z",
        "limit=0",
        "limit=51",
        "status=LEAVE",
        "cursor=cur_garbage",
        "department=3",
    ] {
        let reply = h.get(&format!("/v2/persons?{query}")).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (400, "common.bad_request"),
            "{query}"
        );
        assert_eq!(reply.headers["content-type"], "application/problem+json");
    }
    let page: ListPage<Person> = h.get("/v2/persons?limit=2&status=ACTIVE").await.page();
    let cursor = page.next_cursor().expect("a next page");
    let mixed = h
        .get(&format!("/v2/persons?cursor={cursor}&status=INACTIVE"))
        .await;
    assert_eq!(mixed.status, 400, "other filters with a cursor");
    let resent = h
        .get(&format!("/v2/persons?cursor={cursor}&status=ACTIVE"))
        .await;
    assert_eq!(resent.status, 200, "the same filters with a cursor");
    let missing = h.get("/v2/persons/999999").await;
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (404, "common.resource_not_found")
    );
    assert_eq!(h.get("/v2/employments").await.status, 404);
}

// ---------------------------------------------------------------------------------------------
// Employments and org units
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn employments_come_most_recent_first_and_org_units_resolve() {
    let people = 400;
    let tenant = personio::generate_tenant(people, 42);
    let (person_id, seeded) = tenant
        .employments
        .iter()
        .find(|(_, list)| list.len() > 1)
        .expect("someone has an earlier employment");
    let h = Harness::start(config(people)).await;
    let path = format!("/v2/persons/{person_id}/employments");
    let list: ListPage<Employment> = h.get(&path).await.page();
    assert_eq!(list.data.len(), seeded.len());
    assert!(list.data[0].employment_start_date > list.data[1].employment_start_date);
    assert_eq!(list.data[1].status.as_deref(), Some("INACTIVE"));
    let person = h.get(&format!("/v2/persons/{person_id}")).await;
    assert_eq!(
        person.body["employments"][0]["id"],
        list.data[0].id.as_str()
    );

    let first: ListPage<Employment> = h.get(&format!("{path}?limit=1")).await.page();
    let cursor = first.next_cursor().expect("a second page");
    let second: ListPage<Employment> = h.get(&format!("{path}?cursor={cursor}")).await.page();
    assert_eq!(second.data[0].id, list.data[1].id);
    assert!(second.meta.links.next.is_none());

    let one = h.get(&format!("{path}/{}", list.data[0].id)).await;
    assert_eq!(one.body["id"], list.data[0].id.as_str());
    assert_eq!(h.get(&format!("{path}/nope")).await.status, 404);
    assert_eq!(h.get("/v2/persons/999999/employments").await.status, 404);

    let department = list.data[0]
        .org_units
        .iter()
        .find(|u| u.kind == "department")
        .expect("a department");
    let unit = h
        .get(&format!(
            "/v2/org-units/{}?type=department&include_parent_chain=true",
            department.id
        ))
        .await;
    assert_eq!(unit.status, 200);
    let unit: OrgUnit = serde_json::from_value(unit.body).expect("org unit");
    assert!(unit.name.is_some());
    assert_eq!(
        unit.parent_chain.first().map(|p| Some(p.id.clone())),
        Some(unit.parent_id.clone())
    );
    let untyped = h.get(&format!("/v2/org-units/{}", department.id)).await;
    assert_eq!(untyped.status, 400, "type is required");
    let wrong_type = h
        .get(&format!("/v2/org-units/{}?type=team", department.id))
        .await;
    assert_eq!(wrong_type.status, 404);
    assert_eq!(h.get("/v2/org-units/1?type=office").await.status, 400);
}

// ---------------------------------------------------------------------------------------------
// Writes and events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn writes_emit_their_events_and_move_updated_at() {
    let h = Harness::start(config(20)).await;
    let created = h
        .call(
            Method::POST,
            "/v2/persons",
            Some(json!({
                "email": "grace.new@personio-demo.example",
                "first_name": "Grace", "last_name": "New",
                "employment": {"position": {"title": "Engineer"}, "org_units": [{"type": "department", "id": "111"}]}
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let employment = created.body["employments"][0]["id"]
        .as_str()
        .expect("employment")
        .to_owned();
    let names = |events: &[Event]| {
        events
            .iter()
            .map(|e| e.event_name.clone())
            .collect::<Vec<_>>()
    };
    let events = h.events().await;
    assert_eq!(names(&events), ["person.created", "employment.created"]);
    assert_eq!(
        events[1].payload,
        json!({"id": employment, "person_id": id})
    );
    let duplicate = h
        .call(Method::POST, "/v2/persons", Some(json!({"email": "GRACE.NEW@personio-demo.example", "first_name": "G", "last_name": "N"})))
        .await;
    assert_eq!(duplicate.status, 409);

    // An employment change moves the person's updated_at, so polling finds it.
    let someone = "3005";
    let before = h.get(&format!("/v2/persons/{someone}")).await.body["updated_at"]
        .as_str()
        .expect("updated_at")
        .to_owned();
    h.advance(2).await;
    let list: ListPage<Employment> = h
        .get(&format!("/v2/persons/{someone}/employments"))
        .await
        .page();
    let patched = h
        .call(
            Method::PATCH,
            &format!("/v2/persons/{someone}/employments/{}", list.data[0].id),
            Some(json!({"termination": {"termination_date": "2099-12-31", "type": "EMPLOYEE"}, "position": {"title": "Staff Engineer"}})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let events = h.events().await;
    assert_eq!(
        names(&events[2..]),
        ["employment.updated", "employment.terminated"]
    );
    assert_eq!(events[3].payload["person_id"], someone);
    let polled = h.all_persons(&format!("&updated_at.gt={before}")).await;
    assert!(person_ids(&polled).contains(&someone.to_owned()));

    let bad = h
        .call(
            Method::PATCH,
            &format!("/v2/persons/{someone}/employments/{}", list.data[0].id),
            Some(json!({"status": "RETIRED"})),
        )
        .await;
    assert_eq!(bad.status, 400);

    // A UI edit moves updated_at but emits nothing.
    let count = h.events().await.len();
    h.advance(2).await;
    h.sandbox
        .controls()
        .ui_edit(someone, json!({"person": {"last_name": "Renamed"}}))
        .await
        .expect("ui edit");
    assert_eq!(h.events().await.len(), count);
    let renamed = h.get(&format!("/v2/persons/{someone}")).await;
    assert_eq!(renamed.body["last_name"], "Renamed");
    assert!(renamed.body["updated_at"].as_str() > Some(before.as_str()));

    let deleted = h
        .call(Method::DELETE, &format!("/v2/persons/{id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(h.get(&format!("/v2/persons/{id}")).await.status, 404);
    assert!(!person_ids(&h.all_persons("").await).contains(&id));
    let events = h.events().await;
    assert_eq!(
        names(&events[events.len() - 2..]),
        ["person.deleted", "employment.deleted"]
    );
}

// ---------------------------------------------------------------------------------------------
// Webhooks and deliveries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn webhooks_start_disabled_and_deliveries_flow_only_when_enabled_with_the_token_verbatim() {
    let h = Harness::start(config(10)).await;
    let receiver = Receiver::start(200).await;
    let body = json!({
        "url": receiver.url, "description": "PeopleSync",
        "token": "Bearer s3cr3t-value", "enabled_events": ["person.updated", "employment.updated"]
    });
    let created = h
        .call(Method::POST, "/v2/webhooks", Some(body.clone()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["status"], "DISABLED");
    assert_eq!(created.body["auth_type"], "TOKEN");
    assert!(
        created.body.get("token").is_none(),
        "the token is never echoed"
    );
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        h.call(Method::POST, "/v2/webhooks", Some(body))
            .await
            .status,
        409
    );

    let patch = |name: &str| json!({"first_name": name});
    h.call(Method::PATCH, "/v2/persons/3001", Some(patch("Before")))
        .await;
    receiver.stays_at(0).await;

    let enabled = h
        .call(
            Method::PATCH,
            &format!("/v2/webhooks/{id}"),
            Some(json!({"status": "ENABLED"})),
        )
        .await;
    assert_eq!(enabled.body["status"], "ENABLED");
    h.call(Method::PATCH, "/v2/persons/3001", Some(patch("After")))
        .await;
    let seen = receiver.wait_for(1).await;
    let (headers, event) = &seen[0];
    assert_eq!(headers["authorization"], "Bearer s3cr3t-value");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(event["event_name"], "person.updated");
    assert_eq!(event["payload"], json!({"id": "3001", "person_id": "3001"}));
    assert_eq!(event["company_id"], personio::COMPANY_ID);
    receiver.stays_at(1).await;

    let activity: ListPage<Activity> = h.get(&format!("/v2/webhooks/{id}/activity")).await.page();
    assert_eq!(activity.data.len(), 1);
    assert!(activity.data[0].is_delivered);
    assert_eq!(activity.data[0].response_status, Some(200));

    let listed: ListPage<Webhook> = h
        .get("/v2/webhooks?enabled_events=person.updated&status=ENABLED")
        .await
        .page();
    assert_eq!(listed.data.len(), 1);
    let none: ListPage<Webhook> = h
        .get("/v2/webhooks?enabled_events=person.deleted")
        .await
        .page();
    assert!(none.data.is_empty());
    assert_eq!(
        h.call(Method::DELETE, &format!("/v2/webhooks/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(h.get(&format!("/v2/webhooks/{id}")).await.status, 404);
}

#[tokio::test]
async fn webhook_settings_are_checked_and_custom_headers_are_sent() {
    let h = Harness::start(PersonioSandboxConfig {
        allow_insecure_webhook_urls: false,
        ..config(3)
    })
    .await;
    let base = json!({"url": "https://hooks.example/a", "description": "d", "token": "t", "enabled_events": ["person.created"]});
    let with = |change: Value| {
        let mut body = base.clone();
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    for (change, status) in [
        (json!({"enabled_events": ["person.exploded"]}), 422),
        (json!({"url": "http://127.0.0.1:1/a"}), 422),
        (json!({"url": "not a url"}), 400),
        (json!({"token": null, "auth_type": "TOKEN"}), 422),
        (
            json!({"token": null, "auth_type": "CUSTOM", "custom_headers": {"Host-Override": "x"}}),
            422,
        ),
        (
            json!({"token": null, "auth_type": "CUSTOM", "custom_headers": {"a": "1", "b": "2", "c": "3", "d": "4"}}),
            422,
        ),
        (json!({"auth_type": "NONE"}), 422),
        (json!({"status": "PAUSED"}), 422),
    ] {
        let mut body = with(change.clone());
        if body["token"].is_null() {
            body.as_object_mut().expect("object").remove("token");
        }
        let reply = h.call(Method::POST, "/v2/webhooks", Some(body)).await;
        assert_eq!(reply.status, status, "{change}: {}", reply.body);
    }
    let missing = h
        .call(
            Method::POST,
            "/v2/webhooks",
            Some(json!({"url": "https://hooks.example/b"})),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        h.call(Method::POST, "/v2/webhooks", Some(base))
            .await
            .status,
        201
    );

    // Custom headers go out as given, with no Authorization of our own.
    let h = Harness::start(config(3)).await;
    let receiver = Receiver::start(204).await;
    let created = h
        .call(
            Method::POST,
            "/v2/webhooks",
            Some(json!({
                "url": receiver.url, "description": "d", "status": "ENABLED", "auth_type": "CUSTOM",
                "custom_headers": {"X-PeopleSync-Key": "k1"}, "enabled_events": ["person.updated"]
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    h.call(
        Method::PATCH,
        "/v2/persons/3001",
        Some(json!({"last_name": "X"})),
    )
    .await;
    let seen = receiver.wait_for(1).await;
    assert_eq!(seen[0].0["x-peoplesync-key"], "k1");
    assert!(seen[0].0.get("authorization").is_none());
}

#[tokio::test]
async fn a_failing_receiver_is_retried_per_schedule_and_a_4xx_one_is_not() {
    let h = Harness::start(config(5)).await;
    let failing = Receiver::start(500).await;
    let refusing = Receiver::start(400).await;
    let mut ids = Vec::new();
    for receiver in [&failing, &refusing] {
        let created = h
            .call(
                Method::POST,
                "/v2/webhooks",
                Some(json!({"url": receiver.url, "description": "d", "token": "t", "status": "ENABLED", "enabled_events": ["person.updated"]})),
            )
            .await;
        ids.push(created.body["id"].as_str().expect("id").to_owned());
    }
    h.call(
        Method::PATCH,
        "/v2/persons/3002",
        Some(json!({"first_name": "Retry"})),
    )
    .await;
    // First attempt: a fast attempt of two requests to the failing receiver, one to the 400.
    failing.wait_for(2).await;
    refusing.wait_for(1).await;
    failing.stays_at(2).await;
    h.advance(59).await;
    failing.stays_at(2).await;
    h.advance(1).await;
    failing.wait_for(4).await;
    h.advance(300).await;
    failing.wait_for(6).await;
    // The schedule is used up: no more attempts, and the 400 was never retried.
    h.advance(72_000).await;
    failing.stays_at(6).await;
    assert_eq!(refusing.count(), 1);

    let activity: ListPage<Activity> = h
        .get(&format!(
            "/v2/webhooks/{}/activity?is_delivered=false&limit=4",
            ids[0]
        ))
        .await
        .page();
    assert_eq!(activity.data.len(), 4);
    assert!(
        activity
            .data
            .iter()
            .all(|a| !a.is_delivered && a.response_status == Some(500))
    );
    let cursor = activity.next_cursor().expect("more activity");
    let rest: ListPage<Activity> = h
        .get(&format!("/v2/webhooks/{}/activity?cursor={cursor}", ids[0]))
        .await
        .page();
    assert_eq!(rest.data.len(), 2);
    assert!(
        activity.data[0].completed_at >= rest.data[0].completed_at,
        "newest first"
    );
    let delivered: ListPage<Activity> = h
        .get(&format!(
            "/v2/webhooks/{}/activity?is_delivered=true",
            ids[0]
        ))
        .await
        .page();
    assert!(delivered.data.is_empty());
    let refused: ListPage<Activity> = h
        .get(&format!("/v2/webhooks/{}/activity", ids[1]))
        .await
        .page();
    assert_eq!(refused.data[0].response_status, Some(400));
}

#[tokio::test]
async fn a_ping_reaches_even_a_disabled_webhook() {
    let h = Harness::start(config(3)).await;
    let receiver = Receiver::start(200).await;
    let created = h
        .call(
            Method::POST,
            "/v2/webhooks",
            Some(json!({"url": receiver.url, "description": "d", "token": "tok", "enabled_events": ["person.created"]})),
        )
        .await;
    let id = created.body["id"].as_str().expect("id").to_owned();
    let ping = h
        .call(Method::POST, &format!("/v2/webhooks/{id}/ping"), None)
        .await;
    assert_eq!(ping.status, 200);
    let seen = receiver.wait_for(1).await;
    assert_eq!(seen[0].1["event_name"], "ping");
    assert_eq!(seen[0].0["authorization"], "tok");
    assert_eq!(
        h.call(Method::POST, "/v2/webhooks/nope/ping", None)
            .await
            .status,
        404
    );
}

// ---------------------------------------------------------------------------------------------
// Faults, rate limits, the request log
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn faults_inject_errors_429s_with_retry_after_and_a_looping_next_link() {
    let h = Harness::start(config(30)).await;
    let controls = h.sandbox.controls();
    controls
        .faults(json!({"error_rate": 1.0, "error_status": 502}))
        .await
        .expect("faults");
    let failed = h.get("/v2/persons").await;
    assert_eq!(
        (failed.status, failed.code().as_str()),
        (502, "common.internal_server_error")
    );
    controls
        .faults(json!({"rate_limit_burst": 2, "retry_after_seconds": 7}))
        .await
        .expect("faults");
    for _ in 0..2 {
        let limited = h.get("/v2/persons").await;
        assert_eq!(limited.status, 429);
        assert_eq!(limited.headers["retry-after"], "7");
    }
    assert_eq!(h.get("/v2/persons").await.status, 200);

    controls
        .faults(json!({"loop_next_link": true}))
        .await
        .expect("faults");
    let first: ListPage<Person> = h.get("/v2/persons?limit=5").await.page();
    let cursor = first.next_cursor().expect("next");
    let again: ListPage<Person> = h.get(&format!("/v2/persons?cursor={cursor}")).await.page();
    assert_eq!(
        again.next_cursor(),
        Some(cursor),
        "next points back at the same cursor"
    );
    assert_eq!(person_ids(&again.data), person_ids(&first.data));
    controls.clear_faults().await.expect("cleared");
    assert!(
        h.get("/v2/persons?limit=5")
            .await
            .page::<Person>()
            .next_cursor()
            .is_some()
    );
}

#[tokio::test]
async fn resource_routes_are_rate_limited_per_route_and_token() {
    let h = Harness::start(PersonioSandboxConfig {
        rate_limit_per_minute: 3,
        ..config(3)
    })
    .await;
    for _ in 0..3 {
        assert_eq!(h.get("/v2/persons").await.status, 200);
    }
    let limited = h.get("/v2/persons").await;
    assert_eq!(
        (limited.status, limited.code().as_str()),
        (429, "common.too_many_requests")
    );
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(h.get("/v2/persons/3001").await.status, 200, "another route");
}

#[tokio::test]
async fn the_request_log_names_route_templates_and_the_empty_tenant_setting_empties_lists() {
    let h = Harness::start(config(5)).await;
    let controls = h.sandbox.controls();
    controls.clear_requests().await.expect("cleared");
    h.get("/v2/persons?limit=2").await;
    h.get("/v2/persons/3001/employments").await;
    h.get("/v2/persons/999999").await;
    let log = controls.requests().await.expect("log");
    let entries: Vec<(&str, &str, &str, u16)> = log
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.route.as_str(),
                r.path.as_str(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("GET", "/v2/persons", "/v2/persons?limit=2", 200),
            (
                "GET",
                "/v2/persons/{person_id}/employments",
                "/v2/persons/3001/employments",
                200
            ),
            ("GET", "/v2/persons/{id}", "/v2/persons/999999", 404),
        ]
    );
    controls
        .settings(json!({"empty_tenant": true}))
        .await
        .expect("settings");
    assert!(h.all_persons("").await.is_empty());
    assert!(controls.settings(json!({"nope": 1})).await.is_err());
}

#[test]
fn the_schemas_reject_what_personio_would_not_send() {
    assert!(violations("Person", &json!({"id": "1", "status": "ACTIVE"})).is_empty());
    assert!(!violations("Person", &json!({"id": "1", "status": "LEAVE"})).is_empty());
    assert!(!violations("Person", &json!({"id": "1", "kind": "x"})).is_empty());
    assert!(
        !violations(
            "Employment",
            &json!({"id": "e", "employment_start_date": "01.02.2026"})
        )
        .is_empty()
    );
    assert!(
        !violations(
            "Token",
            &json!({"access_token": "x", "token_type": "Bearer", "expires_in": 1})
        )
        .is_empty()
    );
}
