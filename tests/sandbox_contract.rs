//! The HollyHR sandbox follows the official contract: every operation of
//! `tests/fixtures/openapi-subset.yaml` answers its success and its error statuses with bodies and
//! headers that validate against the contract's schemas, and bad input never crashes it.

mod openapi;

use std::time::{Duration, Instant};

use openapi::{Contract, Coverage, Observed};
use peoplesync_sandbox::{self as sandbox, ApiKeySpec, SandboxConfig, SandboxHandle};
use reqwest::Method;
use serde_json::{Value, json};

const KEY: &str = sandbox::DEFAULT_API_KEY;
const READ_ONLY_ORG_UNITS: &str = "hhr_test_org_units_only";

struct Harness {
    sandbox: SandboxHandle,
    http: reqwest::Client,
    contract: Contract,
    coverage: Coverage,
    receiver: String,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn etag(&self) -> String {
        self.headers["hollyhr-resource-etag"]
            .to_str()
            .expect("ascii")
            .to_owned()
    }
}

async fn harness() -> Harness {
    let sandbox = sandbox::start(SandboxConfig {
        people: 60,
        allow_insecure_webhook_urls: true,
        delivery_retry_schedule: vec![Duration::from_millis(20)],
        rate_limit_per_minute: 0,
        api_keys: vec![
            ApiKeySpec::new(KEY, sandbox::DEFAULT_SCOPES),
            ApiKeySpec::new(READ_ONLY_ORG_UNITS, ["org_units:read"]),
        ],
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    // A receiver that accepts every delivery (answers 200), so deliveries exist to inspect.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let app = axum::Router::new().route("/hooks", axum::routing::post(|| async { "ok" }));
        axum::serve(listener, app).await.expect("receiver serves");
    });
    Harness {
        sandbox,
        http: reqwest::Client::new(),
        contract: Contract::load(),
        coverage: Coverage::default(),
        receiver,
    }
}

impl Harness {
    /// Sends a request and asserts the response conforms to the contract.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<RawBody>,
        headers: &[(&str, &str)],
        key: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.sandbox.base_url()));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match body {
            Some(RawBody::Json(value)) => request = request.json(&value),
            Some(RawBody::Bytes(content_type, bytes)) => {
                request = request.header("content-type", content_type).body(bytes)
            }
            None => {}
        }
        let response = request.send().await.expect("the sandbox answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let bare_path = path.split('?').next().unwrap_or(path);
        let violations = self.contract.violations(&Observed {
            method: method.as_str(),
            path: bare_path,
            status,
            headers: &headers,
            body: &bytes,
        });
        assert!(
            violations.is_empty(),
            "{method} {path} → {status} breaks the contract:\n  {}\nbody: {}",
            violations.join("\n  "),
            String::from_utf8_lossy(&bytes)
        );
        let template = self
            .contract
            .template(method.as_str(), bare_path)
            .expect("known operation");
        self.coverage.record(format!("{method} {template}"), status);
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON")
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[], Some(KEY)).await
    }

    async fn write(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        key: &str,
        if_match: Option<&str>,
    ) -> Reply {
        let mut headers = vec![("Idempotency-Key", key)];
        if let Some(tag) = if_match {
            headers.push(("If-Match", tag));
        }
        self.send(method, path, body.map(RawBody::Json), &headers, Some(KEY))
            .await
    }

    async fn control(&self, method: Method, path: &str, body: Value) {
        let status = self
            .http
            .request(method, format!("{}{path}", self.sandbox.control_url()))
            .json(&body)
            .send()
            .await
            .expect("control")
            .status();
        assert!(status.is_success(), "control {path}: {status}");
    }

    async fn person_ids(&mut self, n: usize) -> Vec<String> {
        let page = self.get(&format!("/people?limit={n}")).await;
        page.body["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|p| p["id"].as_str().expect("id").to_owned())
            .collect()
    }

    async fn create_webhook(&mut self, name: &str) -> Value {
        let body = json!({
            "name": name,
            "url": self.receiver,
            "subscribed_events": ["person.created", "person.updated", "person.ended", "person.reactivated"],
        });
        let reply = self
            .write(
                Method::POST,
                "/webhooks",
                Some(body),
                &format!("create-{name}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["data"].clone()
    }

    /// Waits (bounded) for `n` delivered deliveries of a webhook.
    async fn delivered(&mut self, webhook: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page = self
                .get(&format!(
                    "/webhooks/{webhook}/deliveries?status=delivered&limit=100"
                ))
                .await;
            let data = page.body["data"].as_array().expect("data").clone();
            if data.len() >= n {
                return data;
            }
            assert!(Instant::now() < deadline, "deliveries did not arrive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

enum RawBody {
    Json(Value),
    Bytes(&'static str, Vec<u8>),
}

#[tokio::test]
async fn every_operation_succeeds_with_a_contract_valid_response() {
    let mut h = harness().await;
    assert_eq!(h.get("/me").await.status, 200);
    let ids = h.person_ids(3).await;
    let (a, b) = (ids[0].clone(), ids[1].clone());
    assert_eq!(
        h.get("/people?limit=100&sort=updated_at_desc&updated_since=2000-01-01T00:00:00Z")
            .await
            .status,
        200
    );
    assert_eq!(h.get("/people?search=an").await.status, 200);
    let person = h.get(&format!("/people/{a}")).await;
    assert_eq!(person.status, 200);
    let links = h.get(&format!("/people/{a}/org-links")).await;
    assert_eq!(links.status, 200);
    let employment = h.get(&format!("/people/{a}/employment")).await;
    assert_eq!(employment.status, 200);
    let units = h.get("/org-units").await;
    assert_eq!(units.status, 200);
    let unit_id = units.body["data"][0]["id"]
        .as_str()
        .expect("unit")
        .to_owned();
    assert_eq!(h.get(&format!("/org-units/{unit_id}")).await.status, 200);

    // Writes: create, patch person, patch employment, end, reactivate.
    let created = h
        .write(Method::POST, "/people", Some(json!({
            "first_name": "Grace", "last_name": "Hopper", "work_email": "grace.hopper@peoplesync-demo.example",
            "job_title": "Rear Admiral", "department_org_unit_id": unit_id, "manager_id": b,
            "start_date": "2026-01-05"
        })), "create-grace-1", None)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let new_id = created.body["data"]["id"].as_str().expect("id").to_owned();
    let patched = h
        .write(
            Method::PATCH,
            &format!("/people/{new_id}"),
            Some(json!({"preferred_name": "Amazing Grace"})),
            "patch-grace-1",
            Some(&created.etag()),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["data"]["display_name"], "Amazing Grace Hopper");
    let employment = h.get(&format!("/people/{new_id}/employment")).await;
    let changed = h
        .write(
            Method::PATCH,
            &format!("/people/{new_id}/employment"),
            Some(json!({"job_title": "Commodore", "manager_id": null})),
            "employment-grace-1",
            Some(&employment.etag()),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["data"]["manager"], Value::Null);
    let current = h.get(&format!("/people/{new_id}")).await;
    let ended = h
        .write(
            Method::POST,
            &format!("/people/{new_id}/end"),
            Some(json!({"end_date": "2026-12-31"})),
            "end-grace-1",
            Some(&current.etag()),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert_eq!(ended.body["data"]["status"], "inactive");
    let reactivated = h
        .write(
            Method::POST,
            &format!("/people/{new_id}/reactivate"),
            Some(json!({"start_date": "2027-01-04"})),
            "reactivate-grace-1",
            Some(&ended.etag()),
        )
        .await;
    assert_eq!(reactivated.status, 200, "{}", reactivated.body);
    assert_eq!(reactivated.body["data"]["end_date"], Value::Null);

    // Webhooks: list, create, get, patch, rotate, test, health, deliveries, detail, redeliver, delete.
    assert_eq!(h.get("/webhooks").await.status, 200);
    let hook = h.create_webhook("contract-hook").await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    let fetched = h.get(&format!("/webhooks/{hook_id}")).await;
    assert_eq!(fetched.status, 200);
    let updated = h
        .write(
            Method::PATCH,
            &format!("/webhooks/{hook_id}"),
            Some(json!({"subscribed_events": ["person.updated", "person.created"]})),
            "patch-hook-1",
            Some(&fetched.etag()),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let rotated = h
        .write(
            Method::POST,
            &format!("/webhooks/{hook_id}/rotate-secret"),
            Some(json!({})),
            "rotate-hook-1",
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert!(
        rotated.body["data"]["signing_secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    let test = h
        .write(
            Method::POST,
            &format!("/webhooks/{hook_id}/test"),
            Some(json!({"event_type": "webhook.test"})),
            "test-hook-1",
            None,
        )
        .await;
    assert_eq!(test.status, 202, "{}", test.body);
    let delivered = h.delivered(&hook_id, 1).await;
    let delivery_id = delivered[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        h.get(&format!("/webhooks/{hook_id}/health")).await.status,
        200
    );
    assert_eq!(
        h.get(&format!("/webhooks/{hook_id}/deliveries/{delivery_id}"))
            .await
            .status,
        200
    );
    assert_eq!(h.get(&format!("/webhooks/{hook_id}/deliveries?limit=1&event_type=webhook.test&created_since=2000-01-01T00:00:00Z")).await.status, 200);

    // A failed delivery to redeliver: point the hook at a closed port.
    let fetched = h.get(&format!("/webhooks/{hook_id}")).await;
    let dead = h
        .write(
            Method::PATCH,
            &format!("/webhooks/{hook_id}"),
            Some(json!({"url": "http://127.0.0.1:9/hooks"})),
            "patch-hook-dead",
            Some(&fetched.etag()),
        )
        .await;
    assert_eq!(dead.status, 200, "{}", dead.body);
    let test = h
        .write(
            Method::POST,
            &format!("/webhooks/{hook_id}/test"),
            None,
            "test-hook-2",
            None,
        )
        .await;
    assert_eq!(test.status, 202);
    let failed_id = test.body["data"]["delivery_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let detail = h
            .get(&format!("/webhooks/{hook_id}/deliveries/{failed_id}"))
            .await;
        if detail.body["data"]["status"] == "failed" {
            assert_eq!(detail.body["data"]["last_error_class"], "network");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery never failed: {}",
            detail.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let redelivered = h
        .write(
            Method::POST,
            &format!("/webhooks/{hook_id}/deliveries/{failed_id}/redeliver"),
            None,
            "redeliver-1",
            None,
        )
        .await;
    assert_eq!(redelivered.status, 202, "{}", redelivered.body);
    let fetched = h.get(&format!("/webhooks/{hook_id}")).await;
    let deleted = h
        .write(
            Method::DELETE,
            &format!("/webhooks/{hook_id}"),
            None,
            "delete-hook-1",
            Some(&fetched.etag()),
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["data"]["status"], "disabled");

    // Every operation of the contract answered with a 2xx at least once.
    for (method, template) in h.contract.operations() {
        let operation = format!("{method} {template}");
        let succeeded = h
            .coverage
            .0
            .keys()
            .any(|(op, status)| op == &operation && (200..300).contains(status));
        assert!(succeeded, "{operation} was never exercised successfully");
    }
}

#[tokio::test]
async fn error_responses_are_contract_valid_envelopes() {
    let mut h = harness().await;
    let ids = h.person_ids(2).await;
    let a = ids[0].clone();
    let hook = h.create_webhook("errors-hook").await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();

    // 401: no key, wrong key.
    assert_eq!(
        h.send(Method::GET, "/me", None, &[], None).await.status,
        401
    );
    assert_eq!(
        h.send(
            Method::GET,
            "/people",
            None,
            &[],
            Some("hhr_test_wrong_key")
        )
        .await
        .status,
        401
    );
    // 403: a key without people:read / webhooks:manage.
    let forbidden = h
        .send(Method::GET, "/people", None, &[], Some(READ_ONLY_ORG_UNITS))
        .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.body["error"]["code"], "permission_denied");
    assert!(
        forbidden.body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("people:read")
    );
    assert_eq!(
        h.send(
            Method::GET,
            "/webhooks",
            None,
            &[],
            Some(READ_ONLY_ORG_UNITS)
        )
        .await
        .status,
        403
    );
    assert_eq!(
        h.send(
            Method::GET,
            "/org-units",
            None,
            &[],
            Some(READ_ONLY_ORG_UNITS)
        )
        .await
        .status,
        200
    );

    // 400: bad query parameters.
    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "updated_since=yesterday",
        "sort=name",
        "cursor=zz",
        "search=a",
        "colour=blue",
    ] {
        let reply = h.get(&format!("/people?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "invalid_request");
    }
    assert_eq!(
        h.get(&format!("/webhooks/{hook_id}/deliveries?status=lost"))
            .await
            .status,
        400
    );
    // 400: bad bodies (malformed JSON, unknown field, wrong type, missing field, bad values).
    for (body, field) in [
        (
            RawBody::Bytes("application/json", b"{\"first_name\": ".to_vec()),
            "not valid JSON",
        ),
        (
            RawBody::Json(json!({"first_name": "A", "last_name": "B", "shoe_size": 44})),
            "shoe_size",
        ),
        (
            RawBody::Json(json!({"first_name": 7, "last_name": "B"})),
            "first_name",
        ),
        (RawBody::Json(json!({"first_name": "A"})), "last_name"),
        (
            RawBody::Json(
                json!({"first_name": "A", "last_name": "B", "work_email": "not-an-email"}),
            ),
            "work_email",
        ),
        (
            RawBody::Json(json!({"first_name": "A", "last_name": "B", "start_date": "2026-02-30"})),
            "start_date",
        ),
        (
            RawBody::Bytes("text/plain", b"first_name=A".to_vec()),
            "Content-Type",
        ),
    ] {
        let reply = h
            .send(
                Method::POST,
                "/people",
                Some(body),
                &[("Idempotency-Key", "bad-body-key-1")],
                Some(KEY),
            )
            .await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        let detail = &reply.body["error"]["details"][0];
        let named = format!(
            "{} {}",
            detail["field"].as_str().unwrap_or_default(),
            detail["issue"].as_str().unwrap_or_default()
        );
        assert!(
            named.contains(field),
            "expected the detail to name {field}: {}",
            reply.body
        );
    }
    // 400: a mutation without Idempotency-Key (the contract leaves the status open; 400 here).
    let reply = h
        .send(
            Method::POST,
            "/people",
            Some(RawBody::Json(json!({"first_name": "A", "last_name": "B"}))),
            &[],
            Some(KEY),
        )
        .await;
    assert_eq!(
        (reply.status, reply.body["error"]["code"].as_str()),
        (400, Some("idempotency_required"))
    );

    // 404: unknown and malformed ids, on every id-addressed read.
    for path in [
        "/people/zzzzzzzzzzzz".to_owned(),
        "/people/not-an-id".to_owned(),
        "/people/zzzzzzzzzzzz/org-links".to_owned(),
        "/people/zzzzzzzzzzzz/employment".to_owned(),
        "/org-units/org_unit_a.b.c".to_owned(),
        "/org-units/nonsense".to_owned(),
        "/webhooks/wh_a.b.c".to_owned(),
        format!("/webhooks/{hook_id}/health").replace("wh_", "wh_x"),
        format!("/webhooks/{hook_id}/deliveries/whd_a.b.c"),
        "/webhooks/wh_a.b.c/deliveries".to_owned(),
    ] {
        assert_eq!(h.get(&path).await.status, 404, "{path}");
    }

    // 304 on If-None-Match with the current ETag.
    let person = h.get(&format!("/people/{a}")).await;
    let etag = person.headers["etag"].to_str().expect("ascii").to_owned();
    let cached = h
        .send(
            Method::GET,
            &format!("/people/{a}"),
            None,
            &[("If-None-Match", &etag)],
            Some(KEY),
        )
        .await;
    assert_eq!(cached.status, 304);
    let employment = h.get(&format!("/people/{a}/employment")).await;
    let cached = h
        .send(
            Method::GET,
            &format!("/people/{a}/employment"),
            None,
            &[("If-None-Match", &employment.etag())],
            Some(KEY),
        )
        .await;
    assert_eq!(cached.status, 304);

    // 428 without If-Match, 412 with a stale one; each conditional write.
    let person_tag = person.etag();
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/people/{a}"),
            Some(json!({"first_name": "X"})),
        ),
        (
            Method::PATCH,
            format!("/people/{a}/employment"),
            Some(json!({"job_title": "X"})),
        ),
        (
            Method::POST,
            format!("/people/{a}/end"),
            Some(json!({"end_date": "2030-01-01"})),
        ),
        (
            Method::POST,
            format!("/people/{a}/reactivate"),
            Some(json!({"start_date": "2030-01-01"})),
        ),
        (
            Method::PATCH,
            format!("/webhooks/{hook_id}"),
            Some(json!({"name": "renamed"})),
        ),
        (Method::DELETE, format!("/webhooks/{hook_id}"), None),
    ] {
        let key = format!("cond-{}-{}", method, path.len());
        let missing = h
            .write(
                method.clone(),
                &path,
                body.clone(),
                &format!("{key}-none"),
                None,
            )
            .await;
        assert_eq!(missing.status, 428, "{method} {path}: {}", missing.body);
        let stale = h
            .write(
                method.clone(),
                &path,
                body.clone(),
                &format!("{key}-stale"),
                Some("\"hrr-stale\""),
            )
            .await;
        assert_eq!(stale.status, 412, "{method} {path}: {}", stale.body);
    }
    // The person's tag is not the employment's (each resource has its own validator).
    let wrong = h
        .write(
            Method::PATCH,
            &format!("/people/{a}/employment"),
            Some(json!({"job_title": "X"})),
            "wrong-tag-1",
            Some(&person_tag),
        )
        .await;
    assert_eq!(wrong.status, 412);

    // 409: idempotency conflict, webhook name conflict, state conflicts.
    let first = h
        .write(
            Method::POST,
            "/people",
            Some(json!({"first_name": "Ada", "last_name": "One"})),
            "same-key-0001",
            None,
        )
        .await;
    assert_eq!(first.status, 201);
    let replay = h
        .write(
            Method::POST,
            "/people",
            Some(json!({"first_name": "Ada", "last_name": "One"})),
            "same-key-0001",
            None,
        )
        .await;
    assert_eq!(
        (replay.status, &replay.body),
        (201, &first.body),
        "a replay returns the original response"
    );
    let conflict = h
        .write(
            Method::POST,
            "/people",
            Some(json!({"first_name": "Ada", "last_name": "Two"})),
            "same-key-0001",
            None,
        )
        .await;
    assert_eq!(
        (conflict.status, conflict.body["error"]["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    let body =
        json!({"name": "errors-hook", "url": h.receiver, "subscribed_events": ["person.updated"]});
    assert_eq!(
        h.write(Method::POST, "/webhooks", Some(body), "dup-name-1", None)
            .await
            .status,
        409
    );
    let replayed = h.write(Method::POST, "/webhooks", Some(json!({
        "name": "errors-hook", "url": h.receiver,
        "subscribed_events": ["person.created", "person.updated", "person.ended", "person.reactivated"],
    })), "create-errors-hook", None).await;
    assert_eq!(replayed.status, 201, "replaying the original create");
    assert_eq!(
        replayed.body["data"]["signing_secret"],
        Value::Null,
        "the secret is shown once"
    );
    let current = h.get(&format!("/people/{a}")).await;
    let not_ended = h
        .write(
            Method::POST,
            &format!("/people/{a}/reactivate"),
            None,
            "reactivate-active-1",
            Some(&current.etag()),
        )
        .await;
    assert_eq!(not_ended.status, 409, "{}", not_ended.body);
    // 400: redelivering a delivered delivery.
    let test = h
        .write(
            Method::POST,
            &format!("/webhooks/{hook_id}/test"),
            None,
            "test-errors-1",
            None,
        )
        .await;
    let delivered = h.delivered(&hook_id, 1).await;
    let _ = test;
    let delivery_id = delivered[0]["id"].as_str().expect("id").to_owned();
    let not_eligible = h
        .write(
            Method::POST,
            &format!("/webhooks/{hook_id}/deliveries/{delivery_id}/redeliver"),
            None,
            "redeliver-delivered",
            None,
        )
        .await;
    assert_eq!(not_eligible.status, 400);
    // 400: webhook URLs that are not public HTTPS.
    // (This sandbox allows loopback http for the local receiver; everything else stays refused.)
    for url in [
        "http://example.com/x",
        "https://10.0.0.1/x",
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
        "https://printer.local/x",
    ] {
        let reply = h.write(Method::POST, "/webhooks", Some(json!({"name": format!("bad {url}"), "url": url, "subscribed_events": ["person.updated"]})), &format!("bad-url-{}", url.len()), None).await;
        assert_eq!(reply.status, 400, "{url}: {}", reply.body);
    }

    // 429 with Retry-After (injected), on a read and on a write.
    h.control(
        Method::PUT,
        "/faults",
        json!({"rate_limit_burst": 2, "retry_after_seconds": 3}),
    )
    .await;
    let limited = h.get("/me").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "3");
    let limited = h
        .write(
            Method::POST,
            "/people",
            Some(json!({"first_name": "R", "last_name": "L"})),
            "rate-limited-1",
            None,
        )
        .await;
    assert_eq!(limited.status, 429);
    assert_eq!(h.get("/me").await.status, 200, "the burst is over");
}

#[tokio::test]
async fn the_route_bucket_rate_limit_answers_429_with_retry_after() {
    let sandbox = sandbox::start(SandboxConfig {
        people: 5,
        rate_limit_per_minute: 3,
        ..Default::default()
    })
    .await
    .expect("sandbox");
    let contract = Contract::load();
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = http
            .get(format!("{}/people", sandbox.base_url()))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let remaining = headers["ratelimit-remaining"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body = response.bytes().await.expect("body");
        let violations = contract.violations(&Observed {
            method: "GET",
            path: "/people",
            status,
            headers: &headers,
            body: &body,
        });
        assert!(violations.is_empty(), "{violations:?}");
        statuses.push((status, remaining));
    }
    assert_eq!(
        statuses,
        [
            (200, "2".into()),
            (200, "1".into()),
            (200, "0".into()),
            (429, "0".into())
        ]
    );
    // Buckets are per route: another route still answers.
    let me = http
        .get(format!("{}/me", sandbox.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn junk_input_never_crashes_the_sandbox() {
    let mut h = harness().await;
    let ids = h.person_ids(1).await;
    let a = ids[0].clone();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let huge = vec![b'a'; 2 << 20];
    let junk: Vec<(Method, String, RawBody)> = vec![
        (Method::POST, "/people".into(), RawBody::Bytes("application/json", vec![0xff, 0xfe, 0x00, 0x7b])),
        (Method::POST, "/people".into(), RawBody::Bytes("application/json", deep.into_bytes())),
        (Method::POST, "/people".into(), RawBody::Bytes("application/json", b"[1,2,3]".to_vec())),
        (Method::POST, "/people".into(), RawBody::Bytes("application/json", b"null".to_vec())),
        (Method::POST, "/people".into(), RawBody::Bytes("application/json", huge)),
        (Method::POST, "/webhooks".into(), RawBody::Bytes("application/json", b"{\"name\": \"x\", \"url\": 5, \"subscribed_events\": []}".to_vec())),
        (Method::POST, "/webhooks".into(), RawBody::Bytes("application/json", b"{\"name\": \"x\", \"url\": \"https://example.com/h\", \"subscribed_events\": [\"person.exploded\"]}".to_vec())),
        (Method::PATCH, format!("/people/{a}/employment"), RawBody::Bytes("application/json", b"{\"contracted_weekly_minutes\": -5}".to_vec())),
        (Method::PATCH, format!("/people/{a}/employment"), RawBody::Bytes("application/json", b"{\"contracted_weekly_minutes\": 99999999999999999999}".to_vec())),
        (Method::POST, format!("/people/{a}/end"), RawBody::Bytes("application/xml", b"<end/>".to_vec())),
    ];
    for (method, path, body) in junk {
        let reply = h
            .send(
                method.clone(),
                &path,
                Some(body),
                &[("Idempotency-Key", "junk-request-1"), ("If-Match", "\"x\"")],
                Some(KEY),
            )
            .await;
        assert!(
            (400..500).contains(&reply.status),
            "{method} {path} → {}",
            reply.status
        );
        assert!(
            reply.body["error"]["code"].is_string(),
            "an envelope: {}",
            reply.body
        );
    }
    for query in [
        "limit=-1",
        "limit=1e9",
        "updated_since=%00",
        "cursor=%ff%fe",
        "limit=100&limit=1",
        &format!("search={}", "x".repeat(500)),
    ] {
        let reply = h.get(&format!("/people?{query}")).await;
        assert_eq!(reply.status, 400, "{query}");
    }
    assert_eq!(h.get("/me").await.status, 200, "still serving");
}

#[test]
fn the_validator_catches_what_the_contract_forbids() {
    let contract = Contract::load();
    let person = json!({
        "id": "abcdefghjkmn", "work_email": "ada@example.com", "first_name": "Ada",
        "preferred_name": null, "last_name": "Lovelace", "display_name": "Ada Lovelace",
        "staff_id": "E1", "job_title": null, "department": null, "manager": null,
        "work_place": null, "work_type": null, "working_pattern": null,
        "contracted_weekly_minutes": null, "full_time_weekly_minutes": null, "fte": null,
        "status": "active", "start_date": "2020-01-01", "end_date": null,
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z"
    });
    let schema = contract.component("Person");
    assert!(
        contract.schema_violations(&schema, &person).is_empty(),
        "a valid person passes"
    );
    let mut missing = person.clone();
    missing.as_object_mut().expect("object").remove("staff_id");
    let mut extra = person.clone();
    extra["personal_email"] = json!("ada@home.example");
    let mut bad_time = person.clone();
    bad_time["updated_at"] = json!("yesterday");
    let mut bad_id = person.clone();
    bad_id["id"] = json!("ABCDEFGHIJKL");
    let mut bad_email = person.clone();
    bad_email["work_email"] = json!("nope");
    for (what, instance) in [
        ("missing key", missing),
        ("extra key", extra),
        ("bad date-time", bad_time),
        ("bad id", bad_id),
        ("bad email", bad_email),
    ] {
        assert!(
            !contract.schema_violations(&schema, &instance).is_empty(),
            "{what} passed"
        );
    }
    let health = contract.component("WebhookHealth");
    assert!(
        !contract
            .schema_violations(&health, &json!({"health_status": "great"}))
            .is_empty()
    );
}
