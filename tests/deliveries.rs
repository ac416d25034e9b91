//! The sandbox delivers real signed HTTP to a small receiver on loopback that verifies every
//! delivery exactly as the contract's Decisions say (HMAC-SHA256 over "{ts}.{body}", any `v1=`
//! entry against any held secret, ±300 s). Retries, terminal failures, auto-disable, rotation
//! overlap and redelivery are observed through the contract's own endpoints.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use jiff::{SignedDuration, Timestamp};
use peoplesync::signature::{self, SignedHeaders, Variant, VerifyError};
use peoplesync_sandbox::{self as sandbox, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};

const KEY: &str = sandbox::DEFAULT_API_KEY;

/// What the receiver saw of one delivery.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    verified: Result<Variant, VerifyError>,
}

#[derive(Default)]
struct ReceiverState {
    /// Statuses to answer, in order; when empty, `default_status`.
    script: VecDeque<u16>,
    default_status: u16,
    secrets: Vec<String>,
    /// Added to the receiver's clock (the tests move the sandbox clock too).
    clock_offset_secs: i64,
    received: Vec<Received>,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(ReceiverState {
            default_status: 200,
            ..Default::default()
        }));
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let shared = shared.clone();
                async move {
                    let mut state = shared.lock().expect("receiver lock");
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                    let signed = SignedHeaders {
                        event_id: header(signature::HEADER_ID),
                        timestamp: header(signature::HEADER_TIMESTAMP),
                        signature: header(signature::HEADER_SIGNATURE),
                        sdk_signature: header(signature::HEADER_SDK_SIGNATURE),
                    };
                    let secrets: Vec<&[u8]> = state.secrets.iter().map(|s| s.as_bytes()).collect();
                    let now = Timestamp::now() + SignedDuration::from_secs(state.clock_offset_secs);
                    let verified = signature::verify(
                        &signed,
                        &body,
                        &secrets,
                        now,
                        signature::DEFAULT_TOLERANCE,
                    );
                    let status = if verified.is_err() {
                        StatusCode::UNAUTHORIZED.as_u16()
                    } else {
                        let default = state.default_status;
                        state.script.pop_front().unwrap_or(default)
                    };
                    state.received.push(Received {
                        headers: headers.clone(),
                        body,
                        verified,
                    });
                    StatusCode::from_u16(status).expect("scripted statuses are valid")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Self { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut ReceiverState) -> R) -> R {
        f(&mut self.state.lock().expect("receiver lock"))
    }

    fn received(&self) -> Vec<Received> {
        self.with(|s| s.received.clone())
    }
}

struct Harness {
    sandbox: SandboxHandle,
    http: reqwest::Client,
    receiver: Receiver,
    webhook_id: String,
    secret: String,
}

async fn harness(schedule: &[u64]) -> Harness {
    let sandbox = sandbox::start(SandboxConfig {
        people: 20,
        allow_insecure_webhook_urls: true,
        delivery_retry_schedule: schedule
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        rate_limit_per_minute: 0,
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    let receiver = Receiver::start().await;
    let http = reqwest::Client::new();
    let (status, created) = call(
        &http,
        &sandbox,
        reqwest::Method::POST,
        "/webhooks",
        Some(json!({
            "name": "peoplesync-test",
            "url": receiver.url(),
            "subscribed_events": ["person.created", "person.updated", "person.ended", "person.reactivated"],
        })),
        &[("Idempotency-Key", "create-webhook-0001")],
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["data"]["signing_secret"]
        .as_str()
        .expect("secret shown on create")
        .to_owned();
    receiver.with(|s| s.secrets = vec![secret.clone()]);
    Harness {
        webhook_id: created["data"]["id"].as_str().expect("id").to_owned(),
        sandbox,
        http,
        receiver,
        secret,
    }
}

async fn call(
    http: &reqwest::Client,
    sandbox: &SandboxHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = http
        .request(method, format!("{}{path}", sandbox.base_url()))
        .bearer_auth(KEY);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sandbox answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    };
    (status, value)
}

impl Harness {
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        call(&self.http, &self.sandbox, method, path, body, headers).await
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) {
        let status = self
            .http
            .request(method, format!("{}{path}", self.sandbox.control_url()))
            .json(&body)
            .send()
            .await
            .expect("control answers")
            .status();
        assert!(status.is_success(), "control {path} answered {status}");
    }

    async fn first_person(&self) -> String {
        let (_, page) = self
            .api(reqwest::Method::GET, "/people?limit=1", None, &[])
            .await;
        page["data"][0]["id"].as_str().expect("a person").to_owned()
    }

    /// Changes a job title through the API (GET for the validator, PATCH with If-Match).
    async fn change_title(&self, person: &str, title: &str) {
        let response = self
            .http
            .get(format!(
                "{}/people/{person}/employment",
                self.sandbox.base_url()
            ))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("employment");
        let etag = response.headers()["hollyhr-resource-etag"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let key = format!("title-{person}-{title}");
        let (status, body) = self
            .api(
                reqwest::Method::PATCH,
                &format!("/people/{person}/employment"),
                Some(json!({ "job_title": title })),
                &[("If-Match", &etag), ("Idempotency-Key", &key)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn webhook(&self) -> (Value, String) {
        let response = self
            .http
            .get(format!(
                "{}/webhooks/{}",
                self.sandbox.base_url(),
                self.webhook_id
            ))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("webhook");
        let etag = response.headers()["hollyhr-resource-etag"]
            .to_str()
            .expect("ascii")
            .to_owned();
        (
            response.json::<Value>().await.expect("json")["data"].clone(),
            etag,
        )
    }

    async fn health(&self) -> Value {
        let path = format!("/webhooks/{}/health", self.webhook_id);
        self.api(reqwest::Method::GET, &path, None, &[]).await.1["data"].clone()
    }

    async fn deliveries(&self, query: &str) -> Vec<Value> {
        let path = format!("/webhooks/{}/deliveries?limit=100{query}", self.webhook_id);
        let (status, page) = self.api(reqwest::Method::GET, &path, None, &[]).await;
        assert_eq!(status, 200, "{page}");
        page["data"].as_array().expect("array").clone()
    }

    /// Waits (bounded) until `done` holds for the deliveries list.
    async fn wait_deliveries(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let deliveries = self.deliveries("").await;
            if done(&deliveries) {
                return deliveries;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {deliveries:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn count(deliveries: &[Value], status: &str) -> usize {
    deliveries.iter().filter(|d| d["status"] == status).count()
}

#[tokio::test]
async fn deliveries_are_signed_over_timestamp_and_body_and_verify() {
    let h = harness(&[50]).await;
    let person = h.first_person().await;
    h.change_title(&person, "Principal Engineer").await;
    h.wait_deliveries("one delivered", |d| count(d, "delivered") == 1)
        .await;

    let received = h.receiver.received();
    assert_eq!(received.len(), 1);
    let delivery = &received[0];
    assert_eq!(delivery.verified, Ok(Variant::Guide));
    let header = |name: &str| delivery.headers[name].to_str().expect("ascii").to_owned();
    assert!(
        header(signature::HEADER_TIMESTAMP).parse::<i64>().is_ok(),
        "Unix seconds"
    );
    assert!(header(signature::HEADER_DELIVERY_ID).starts_with("whd_"));
    assert_eq!(header(signature::HEADER_EVENT), "person.updated");
    assert_eq!(header("content-type"), "application/json");
    let body: Value = serde_json::from_slice(&delivery.body).expect("JSON body");
    assert_eq!(body["type"], "person.updated");
    assert_eq!(body["api_version"], "v1");
    assert_eq!(
        body["data"],
        json!({ "id": person, "resource_type": "person" })
    );
    assert_eq!(
        header(signature::HEADER_ID),
        body["id"].as_str().expect("event id")
    );
    // Recompute independently of `verify`: HMAC-SHA256(secret, "{ts}.{body}") in lowercase hex.
    let expected = signature::sign(
        Variant::Guide,
        &h.secret,
        "",
        &header(signature::HEADER_TIMESTAMP),
        &delivery.body,
    );
    assert_eq!(
        header(signature::HEADER_SIGNATURE),
        format!("v1={expected}")
    );
}

#[tokio::test]
async fn the_test_endpoint_returns_exactly_the_headers_it_then_sends() {
    let h = harness(&[50]).await;
    let path = format!("/webhooks/{}/test", h.webhook_id);
    let (status, test) = h
        .api(
            reqwest::Method::POST,
            &path,
            None,
            &[("Idempotency-Key", "test-delivery-1")],
        )
        .await;
    assert_eq!(status, 202, "{test}");
    h.wait_deliveries("the test delivery", |d| count(d, "delivered") == 1)
        .await;
    let received = h.receiver.received();
    assert_eq!(received.len(), 1);
    for (name, value) in test["data"]["headers"].as_object().expect("header map") {
        assert_eq!(
            received[0].headers[name.as_str()].to_str().expect("ascii"),
            value.as_str().expect("string"),
            "header {name}"
        );
    }
    let body: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(body, test["data"]["payload"]);
    assert_eq!(body["type"], "webhook.test");
    assert!(h.webhook().await.0["last_tested_at"].is_string());
}

#[tokio::test]
async fn a_500_is_retried_until_the_receiver_accepts() {
    let h = harness(&[30, 30, 30]).await;
    h.receiver.with(|s| s.script = VecDeque::from([500, 503]));
    let person = h.first_person().await;
    h.change_title(&person, "Retry Me").await;
    let deliveries = h
        .wait_deliveries("delivered after retries", |d| count(d, "delivered") == 1)
        .await;
    assert_eq!(deliveries[0]["attempt_count"], 3);
    let path = format!(
        "/webhooks/{}/deliveries/{}",
        h.webhook_id,
        deliveries[0]["id"].as_str().expect("id")
    );
    let (_, detail) = h.api(reqwest::Method::GET, &path, None, &[]).await;
    let attempts: Vec<(&str, i64)> = detail["data"]["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["status"].as_str().expect("status"),
                a["status_code"].as_i64().expect("code"),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            ("retry_scheduled", 500),
            ("retry_scheduled", 503),
            ("success", 200)
        ]
    );
    assert_eq!(
        detail["data"]["attempts"][0]["error_class"],
        "http_retryable"
    );
    assert_eq!(h.health().await["health_status"], "healthy");
    // Every attempt carried a valid signature.
    assert!(h.receiver.received().iter().all(|r| r.verified.is_ok()));
}

#[tokio::test]
async fn a_non_retryable_400_fails_terminally_after_one_attempt() {
    let h = harness(&[30, 30, 30]).await;
    h.receiver.with(|s| s.default_status = 400);
    let person = h.first_person().await;
    h.change_title(&person, "Rejected").await;
    let deliveries = h
        .wait_deliveries("a failed delivery", |d| count(d, "failed") == 1)
        .await;
    assert_eq!(deliveries[0]["attempt_count"], 1);
    assert_eq!(deliveries[0]["last_error_class"], "http_non_retryable");
    assert_eq!(deliveries[0]["last_status_code"], 400);
    let health = h.health().await;
    assert_eq!(health["health_status"], "failing");
    assert_eq!(health["recommended_action"], "inspect_failures");
    assert_eq!(health["action_required"], true);
    assert_eq!(health["latest_failure"]["status_code"], 400);
}

#[tokio::test]
async fn ten_terminal_failures_disable_the_endpoint_and_redelivery_heals_it() {
    let h = harness(&[20]).await;
    h.receiver.with(|s| s.default_status = 400);
    let person = h.first_person().await;
    for i in 0..10 {
        h.change_title(&person, &format!("Title {i}")).await;
    }
    h.wait_deliveries("ten failures", |d| count(d, "failed") == 10)
        .await;
    let (webhook, etag) = h.webhook().await;
    assert_eq!(webhook["status"], "disabled");
    assert!(webhook["disabled_at"].is_string());
    let health = h.health().await;
    assert_eq!(health["health_status"], "inactive");
    assert_eq!(health["endpoint_status"], "disabled");
    assert_eq!(health["recommended_action"], "enable_endpoint");

    // Disabled: writes queue nothing, redelivery is refused.
    h.change_title(&person, "While disabled").await;
    assert_eq!(h.deliveries("").await.len(), 10);
    let failed = h.deliveries("&status=failed").await;
    let first_failed = failed[0]["id"].as_str().expect("id").to_owned();
    let redeliver = format!(
        "/webhooks/{}/deliveries/{first_failed}/redeliver",
        h.webhook_id
    );
    let (status, body) = h
        .api(
            reqwest::Method::POST,
            &redeliver,
            None,
            &[("Idempotency-Key", "redeliver-disabled")],
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // The receiver recovers; re-enable and redeliver every failed delivery.
    h.receiver.with(|s| s.default_status = 200);
    let path = format!("/webhooks/{}", h.webhook_id);
    let (status, body) = h
        .api(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "status": "active" })),
            &[("If-Match", &etag), ("Idempotency-Key", "enable-again-1")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["disabled_at"], Value::Null);
    for delivery in &failed {
        let id = delivery["id"].as_str().expect("id");
        let path = format!("/webhooks/{}/deliveries/{id}/redeliver", h.webhook_id);
        let key = format!("redeliver-{id}");
        let (status, body) = h
            .api(
                reqwest::Method::POST,
                &path,
                None,
                &[("Idempotency-Key", &key)],
            )
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["redelivered"], true);
    }
    let deliveries = h
        .wait_deliveries("all redelivered", |d| count(d, "delivered") == 10)
        .await;
    assert_eq!(
        deliveries.len(),
        10,
        "redelivery creates no new delivery rows"
    );
    assert!(
        deliveries.iter().all(|d| d["attempt_count"] == 2),
        "history kept"
    );
    assert_eq!(h.health().await["health_status"], "healthy");

    // A delivered delivery is not eligible.
    let (status, _) = h
        .api(
            reqwest::Method::POST,
            &redeliver,
            None,
            &[("Idempotency-Key", "redeliver-again-1")],
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_rotation_overlap_signs_with_both_secrets_until_it_expires() {
    let h = harness(&[20]).await;
    let old = h.secret.clone();
    let path = format!("/webhooks/{}/rotate-secret", h.webhook_id);
    let (status, rotated) = h
        .api(
            reqwest::Method::POST,
            &path,
            Some(json!({})),
            &[("Idempotency-Key", "rotate-0000001")],
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["data"]["signing_secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_eq!(rotated["data"]["secret_last_four"], new[new.len() - 4..]);
    let expires: Timestamp = rotated["data"]["previous_secret_expires_at"]
        .as_str()
        .expect("overlap end")
        .parse()
        .expect("date-time");
    let rotated_at: Timestamp = rotated["data"]["updated_at"]
        .as_str()
        .expect("t")
        .parse()
        .expect("t");
    assert_eq!(
        expires.duration_since(rotated_at),
        SignedDuration::from_hours(24)
    );

    // During the overlap a receiver holding either secret alone accepts the delivery.
    h.receiver.with(|s| s.secrets = vec![old.clone()]);
    let person = h.first_person().await;
    h.change_title(&person, "During overlap").await;
    h.wait_deliveries("delivered during overlap", |d| count(d, "delivered") == 1)
        .await;
    let during = h.receiver.received().pop().expect("delivery");
    assert!(
        during.verified.is_ok(),
        "old secret verifies: {:?}",
        during.verified
    );
    let header = during.headers[signature::HEADER_SIGNATURE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(header.matches("v1=").count(), 2, "{header}");
    let ts = during.headers[signature::HEADER_TIMESTAMP]
        .to_str()
        .expect("ascii")
        .to_owned();
    let with_new = signature::verify(
        &SignedHeaders {
            timestamp: Some(&ts),
            signature: Some(&header),
            ..Default::default()
        },
        &during.body,
        &[new.as_bytes()],
        Timestamp::now(),
        signature::DEFAULT_TOLERANCE,
    );
    assert!(with_new.is_ok(), "new secret verifies too");

    // After the overlap only the new secret signs: the old one alone is refused.
    h.control(
        reqwest::Method::PUT,
        "/clock",
        json!({ "advance_seconds": 24 * 3600 + 1 }),
    )
    .await;
    h.receiver.with(|s| s.clock_offset_secs = 24 * 3600 + 1);
    h.change_title(&person, "After overlap").await;
    h.wait_deliveries("a refused delivery", |_| h.receiver.received().len() >= 2)
        .await;
    let after = h.receiver.received().pop().expect("delivery");
    assert_eq!(after.verified, Err(VerifyError::SignatureMismatch));
    let header = after.headers[signature::HEADER_SIGNATURE]
        .to_str()
        .expect("ascii");
    assert_eq!(header.matches("v1=").count(), 1, "{header}");
}

#[tokio::test]
async fn the_sdk_signature_variant_can_be_switched_on() {
    let h = harness(&[20]).await;
    h.control(
        reqwest::Method::PUT,
        "/settings",
        json!({ "signature_variant": "sdk" }),
    )
    .await;
    let person = h.first_person().await;
    h.change_title(&person, "SDK style").await;
    h.wait_deliveries("one delivered", |d| count(d, "delivered") == 1)
        .await;
    let delivery = h.receiver.received().pop().expect("delivery");
    assert_eq!(delivery.verified, Ok(Variant::Sdk));
    assert!(
        delivery
            .headers
            .contains_key(signature::HEADER_SDK_SIGNATURE)
    );
    assert!(!delivery.headers.contains_key(signature::HEADER_SIGNATURE));
    let ts = delivery.headers[signature::HEADER_TIMESTAMP]
        .to_str()
        .expect("ascii");
    assert!(
        ts.parse::<Timestamp>().is_ok() && ts.ends_with('Z'),
        "RFC 3339: {ts}"
    );
}

#[tokio::test]
async fn a_replayed_webhook_create_shows_no_secret() {
    let h = harness(&[20]).await;
    let (status, replay) = h
        .api(
            reqwest::Method::POST,
            "/webhooks",
            Some(json!({
                "name": "peoplesync-test",
                "url": h.receiver.url(),
                "subscribed_events": ["person.created", "person.updated", "person.ended", "person.reactivated"],
            })),
            &[("Idempotency-Key", "create-webhook-0001")],
        )
        .await;
    assert_eq!(status, 201, "{replay}");
    assert_eq!(replay["data"]["signing_secret"], Value::Null);
    assert_eq!(replay["data"]["id"], h.webhook_id.as_str());
    let (_, list) = h.api(reqwest::Method::GET, "/webhooks", None, &[]).await;
    assert_eq!(list["data"].as_array().expect("list").len(), 1);
}
