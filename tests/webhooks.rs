//! Webhooks end to end on real parts: the API server (control plane), the HollyHR sandbox
//! delivering real signed HTTP on loopback, the operator's receiver behind a small proxy (the
//! Ingress, which the self-healing test breaks and repairs), and slapd as the directory.
//! Polling is set to an hour, so a change that reaches the directory came through a webhook.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::DeleteParams;
use peoplesync::signature::{self, Variant};
use peoplesync::source::hollyhr::model::{UpdateEmploymentRequest, Webhook, WebhookStatus};
use peoplesync::source::hollyhr::{self, HollyHrClient, Idempotency};
use peoplesync_sandbox::{self as sandbox, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};
use support::operator::{Operator, secret_value};
use support::*;

mod support;

/// The Ingress in front of the receiver: forwards, or answers 502 while `failing`.
struct Proxy {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let failing = Arc::new(AtomicBool::new(false));
        let state = (failing.clone(), reqwest::Client::new());
        let app = axum::Router::new().fallback(
            move |method: http::Method,
                  uri: http::Uri,
                  headers: http::HeaderMap,
                  body: axum::body::Bytes| {
                let (failing, http) = state.clone();
                async move {
                    if failing.load(Ordering::SeqCst) {
                        return (http::StatusCode::BAD_GATEWAY, Vec::new());
                    }
                    let mut request = http.request(method, format!("http://{upstream}{uri}"));
                    for (name, value) in &headers {
                        if name != http::header::HOST {
                            request = request.header(name, value);
                        }
                    }
                    match request.body(body).send().await {
                        Ok(response) => (
                            response.status(),
                            response
                                .bytes()
                                .await
                                .map(|b| b.to_vec())
                                .unwrap_or_default(),
                        ),
                        Err(_) => (http::StatusCode::BAD_GATEWAY, Vec::new()),
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, failing }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

struct Env {
    op: Operator,
    hollyhr: SandboxHandle,
    proxy: Proxy,
    source: HollyHrClient,
}

impl std::ops::Deref for Env {
    type Target = Operator;
    fn deref(&self) -> &Operator {
        &self.op
    }
}

impl Env {
    async fn start(name: &str) -> Self {
        let op = Operator::start(name, "webhook-test").await;
        let hollyhr = sandbox::start(SandboxConfig {
            people: 30,
            allow_insecure_webhook_urls: true,
            // Three quick attempts, so a broken receiver fails deliveries for good in ms.
            delivery_retry_schedule: vec![Duration::from_millis(20), Duration::from_millis(20)],
            delivery_timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .expect("the sandbox starts");
        secret(
            &op.client,
            &op.ns,
            "hollyhr",
            "apiKey",
            sandbox::DEFAULT_API_KEY,
        )
        .await;
        // The Ingress in front of the receiver.
        let proxy = Proxy::start(op.receiver).await;
        let mut object = ldap_people_sync(&hollyhr.base_url(), &op.ldap, false);
        object["spec"]["webhook"] = json!({ "enabled": true, "publicUrl": proxy.url() });
        object["spec"]["schedule"] = json!({ "pollInterval": "1h", "fullResyncInterval": "6h" });
        create(&op.client, &op.ns, object).await.expect("created");
        let source = HollyHrClient::new(
            hollyhr::ClientConfig::new(&hollyhr.base_url(), sandbox::DEFAULT_API_KEY.into())
                .expect("config"),
        )
        .expect("client");
        Self {
            op,
            hollyhr,
            proxy,
            source,
        }
    }

    async fn ours(&self) -> Vec<Webhook> {
        let name = format!("peoplesync-{}-acme", self.ns);
        self.source
            .webhooks()
            .await
            .expect("lists webhooks")
            .into_iter()
            .filter(|w| w.name == name)
            .collect()
    }

    async fn active_people(&self) -> Vec<String> {
        use futures::TryStreamExt;
        let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let people: Vec<hollyhr::model::Person> = self
            .source
            .people(&hollyhr::PeopleQuery::default())
            .try_collect()
            .await
            .expect("lists");
        people
            .into_iter()
            .filter(|p| p.lifecycle(today) == hollyhr::model::Lifecycle::Active)
            .map(|p| p.id)
            .collect()
    }

    async fn change_title(&self, person: &str, title: &str) {
        let employment = self.source.person_employment(person).await.expect("reads");
        self.source
            .update_employment(
                person,
                &UpdateEmploymentRequest {
                    job_title: Some(Some(title.to_owned())),
                    ..UpdateEmploymentRequest::default()
                },
                &employment.etag.expect("an ETag"),
                Idempotency::Derived,
            )
            .await
            .expect("patched");
    }

    /// A delivery to the receiver (directly, not through the proxy), signed with `secret`.
    async fn deliver(&self, path: &str, id: &str, body: &str, secret: &str, at: Timestamp) -> u16 {
        let variant = Variant::Guide;
        let timestamp = variant.format_timestamp(at);
        let digest = signature::sign(variant, secret, id, &timestamp, body.as_bytes());
        reqwest::Client::new()
            .post(format!("http://{}{path}", self.receiver))
            .header("content-type", "application/json")
            .header(signature::HEADER_ID, id)
            .header(signature::HEADER_TIMESTAMP, timestamp)
            .header(variant.signature_header(), format!("v1={digest}"))
            .body(body.to_owned())
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    }
}

fn event(id: &str, kind: &str, subject: &str) -> String {
    json!({
        "id": id, "type": kind, "api_version": "v1", "occurred_at": Timestamp::now().to_string(),
        "data": {"id": subject, "resource_type": "person"}
    })
    .to_string()
}

#[tokio::test]
async fn a_peoplesync_registers_one_webhook_applies_deliveries_rotates_and_disables_it_on_deletion()
{
    let mut env = Env::start("hooks").await;
    env.ready().await;

    // One webhook, an owned Secret, and the status naming both.
    let ours = env.ours().await;
    assert_eq!(ours.len(), 1, "{ours:?}");
    let webhook = &ours[0];
    assert_eq!(webhook.status, WebhookStatus::Active);
    assert_eq!(
        webhook.url,
        format!("{}/hooks/{}/acme", env.proxy.url(), env.ns)
    );
    let status = env.status().await;
    let info = status.webhook.clone().expect("status.webhook");
    assert_eq!(info.id.as_deref(), Some(webhook.id.as_str()));
    assert_eq!(
        info.secret_last_four.as_deref(),
        Some(webhook.secret_last_four.as_str())
    );
    let owned = env.credential_secret().await;
    let owner = &owned.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("PeopleSync", "acme")
    );
    assert!(
        secret_value(&owned, "current")
            .expect("the current secret")
            .ends_with(&webhook.secret_last_four)
    );

    // A write through the API reaches the directory through the webhook (polling is hourly).
    let people = env.active_people().await;
    env.change_title(&people[0], "Webhook One").await;
    let took = env.wait_title(&people[0], "Webhook One").await;
    eprintln!("write → directory via webhook: {} ms", took.as_millis());
    // `kubectl get events` tells it: one Event for what webhook runs wrote since the last one,
    // naming the run (its audit lines carry the same id).
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    let told = || async {
        events
            .list(&Default::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("WebhookSynced"))
            .filter_map(|e| e.note)
            .collect::<Vec<_>>()
    };
    support::operator::eventually("an Event for the webhook run", || async {
        !told().await.is_empty()
    })
    .await;
    let notes = told().await;
    let note = &notes[0];
    let run = note
        .strip_prefix("1 webhook run (")
        .and_then(|rest| rest.split_once("): "))
        .unwrap_or_else(|| panic!("{notes:?}"));
    assert!(
        run.0.len() == 12 && run.0.chars().all(|c| c.is_ascii_hexdigit()),
        "the run id: {note}"
    );
    assert_eq!(run.1, "update 1", "{notes:?}");

    // A restarted controller and repeated reconciles never create a second webhook.
    let stopped = env.op.restart_controller().await;
    assert!(
        stopped.is_err_and(|e| e.is_cancelled()),
        "the controller was stopped"
    );
    for poke in 0..3 {
        env.annotate("test.peoplesync.dev/poke", &poke.to_string())
            .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    wait_condition(
        &env.client,
        &env.ns,
        "acme",
        "WebhookRegistered",
        "True",
        Some("Registered"),
    )
    .await;
    let again = env.ours().await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].id, webhook.id);

    // Rotation on demand while deliveries are in flight: every delivery is accepted.
    let before = env.credential_secret().await;
    let old_secret = secret_value(&before, "current").expect("a secret");
    let writer = {
        let people = people.clone();
        let source = env.source.clone();
        tokio::spawn(async move {
            for (i, person) in people.iter().take(12).enumerate() {
                let employment = source.person_employment(person).await.expect("reads");
                source
                    .update_employment(
                        person,
                        &UpdateEmploymentRequest {
                            job_title: Some(Some(format!("During rotation {i}"))),
                            ..UpdateEmploymentRequest::default()
                        },
                        &employment.etag.expect("an ETag"),
                        Idempotency::Derived,
                    )
                    .await
                    .expect("patched");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.annotate(peoplesync::crd::ROTATE_WEBHOOK_SECRET, "first")
        .await;
    let rotated = wait_condition(
        &env.client,
        &env.ns,
        "acme",
        "SecretRotated",
        "True",
        Some("Requested"),
    )
    .await;
    assert!(
        rotated["message"]
            .as_str()
            .expect("message")
            .contains("annotation")
    );
    writer.await.expect("writes");
    for (i, person) in people.iter().take(12).enumerate() {
        env.wait_title(person, &format!("During rotation {i}"))
            .await;
    }
    let after = env.credential_secret().await;
    assert_ne!(secret_value(&after, "current"), Some(old_secret.clone()));
    assert_eq!(
        secret_value(&after, "previous"),
        Some(old_secret.clone()),
        "the old secret stays for the overlap"
    );
    let health = env
        .source
        .webhook_health(&webhook.id)
        .await
        .expect("health");
    assert_eq!(health.delivery_counts.failed, 0, "{health:?}");
    let status = env.status().await;
    assert_eq!(
        status
            .webhook
            .as_ref()
            .and_then(|w| w.secret_last_four.clone()),
        Some(env.ours().await[0].secret_last_four.clone())
    );

    // After the overlap, a signature made only with the old secret is rejected. The sandbox's
    // clock is set 25 h back for a second rotation, so its overlap has already ended.
    let during = secret_value(&after, "current").expect("a secret");
    let controls = env.hollyhr.controls();
    controls
        .clock(json!({"advance_seconds": -90_000}))
        .await
        .expect("clock");
    // This time as a person asks for it: `kubectl peoplesync rotate` with a kubeconfig.
    let asked = tokio::task::spawn_blocking({
        let kubeconfig = env.plane.kubeconfig_path().to_owned();
        let ns = env.ns.clone();
        move || {
            std::process::Command::new(support::kubectl_peoplesync(env!(
                "CARGO_BIN_EXE_peoplesync"
            )))
            .args(["rotate", "acme", "-n", &ns])
            .env("KUBECONFIG", kubeconfig)
            .output()
            .expect("kubectl-peoplesync runs")
        }
    })
    .await
    .expect("joins");
    assert!(
        asked.status.success(),
        "kubectl peoplesync rotate: {}",
        String::from_utf8_lossy(&asked.stderr)
    );
    assert!(
        String::from_utf8_lossy(&asked.stdout).contains("rotate its webhook secret now"),
        "{}",
        String::from_utf8_lossy(&asked.stdout)
    );
    env.wait_status("the second rotation", |s| {
        s.webhook
            .as_ref()
            .and_then(|w| w.secret_last_four.as_deref())
            != during.get(during.len() - 4..)
    })
    .await;
    controls
        .clock(json!({"advance_seconds": 90_000}))
        .await
        .expect("clock");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newest = secret_value(&env.credential_secret().await, "current").expect("a secret");
    let body = event("evt_expired_1", "webhook.test", "x");
    assert_eq!(
        env.deliver(
            &env.hook_path(),
            "evt_expired_1",
            &body,
            &during,
            Timestamp::now()
        )
        .await,
        401
    );
    assert_eq!(
        env.deliver(
            &env.hook_path(),
            "evt_expired_1",
            &body,
            &newest,
            Timestamp::now()
        )
        .await,
        202
    );

    // The Grafana dashboard's queries parse and read metrics this running operator exposes.
    let exposition = reqwest::get(format!("http://{}/metrics", env.admin))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    support::check_dashboard(&exposition);

    // Deleting the PeopleSync disables its webhook.
    env.api()
        .delete("acme", &DeleteParams::default())
        .await
        .expect("deleted");
    let started = Instant::now();
    while env.api().get_opt("acme").await.expect("read").is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the finalizer was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = env.ours().await;
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].status, WebhookStatus::Disabled);
}

/// 10,000 signed person events naming people HollyHR does not know: they are not read one by
/// one (a targeted sync reads at most a batch by id; beyond that one incremental cycle reads the
/// changes in pages), nothing is written, and a real change after the flood still arrives.
#[tokio::test]
async fn a_flood_naming_10_000_unknown_people_is_handed_to_an_incremental_cycle_and_writes_nothing()
{
    use futures::StreamExt;
    let env = Env::start("flood").await;
    env.ready().await;
    let secret = secret_value(&env.credential_secret().await, "current").expect("a secret");
    let controls = env.hollyhr.controls();
    controls.clear_requests().await.expect("cleared");
    // Slow answers, so the events pile up behind the first targeted sync as a real flood does.
    controls
        .faults(json!({"latency_ms": 20}))
        .await
        .expect("faults set");
    let before = env.ldap.highest_csn().await.expect("reads the CSN");
    let path = env.hook_path();
    let started = Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(0..10_000)
        .map(|n| {
            let id = format!("evt_flood_{n:05}");
            let body = event(&id, "person.updated", &format!("per_unknown_{n:05}"));
            let (env, path, secret) = (&env, &path, &secret);
            async move {
                env.deliver(path, &id, &body, secret, Timestamp::now())
                    .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let refused: Vec<_> = statuses
        .iter()
        .filter(|s| **s != 202 && **s != 503)
        .collect();
    assert!(
        refused.is_empty(),
        "answers other than 202/503: {refused:?}"
    );
    assert!(accepted >= 9_000, "only {accepted} of 10,000 accepted");
    eprintln!(
        "10,000 deliveries answered in {:.1} s ({accepted} accepted)",
        started.elapsed().as_secs_f64()
    );
    controls.clear_faults().await.expect("faults cleared");

    // A real change made after the flood still reaches the directory through its webhook.
    let person = env.active_people().await.remove(0);
    env.change_title(&person, "Flood Survivor").await;
    // Usually milliseconds; on a loaded CI machine the flood's reads by id can spend the
    // sandbox's rate-limit window, and the read of this change then waits for the next one.
    let took = env
        .wait_title_within(&person, "Flood Survivor", Duration::from_secs(90))
        .await;
    eprintln!(
        "a change after the flood arrived in {} ms",
        took.as_millis()
    );
    let reads = controls.requests().await.expect("the request log");
    let by_id = reads
        .iter()
        .filter(|r| r.method == "GET" && r.route == "/people/{personId}")
        .count();
    let pages = reads
        .iter()
        .filter(|r| r.method == "GET" && r.route == "/people")
        .count();
    eprintln!("HollyHR reads: {by_id} by id, {pages} pages");
    assert!(
        by_id <= 2_000,
        "{by_id} people read one by one: the flood was not handed to a cycle"
    );
    assert!(pages >= 1, "no incremental cycle read the changes");
    // Only the title change was written.
    let changed = env
        .ldap
        .changed_since(&before)
        .await
        .expect("reads changes");
    assert_eq!(
        changed.len(),
        1,
        "entries written during the flood: {changed:?}"
    );
    wait_condition(
        &env.client,
        &env.ns,
        "acme",
        "Synced",
        "True",
        Some("Synced"),
    )
    .await;
}

#[tokio::test]
async fn bad_deliveries_are_rejected_with_their_status_and_read_nothing() {
    let env = Env::start("badhooks").await;
    env.ready().await;
    let secret = secret_value(&env.credential_secret().await, "current").expect("a secret");
    let person = env.active_people().await.remove(0);
    let controls = env.hollyhr.controls();
    controls.clear_requests().await.expect("cleared");
    let path = env.hook_path();
    let now = Timestamp::now();
    let body = |id: &str| event(id, "person.updated", &person);
    let http = reqwest::Client::new();
    let url = format!("http://{}{path}", env.receiver);

    let mut statuses = Vec::new();
    statuses.push((
        "forged",
        env.deliver(
            &path,
            "evt_b1",
            &body("evt_b1"),
            "whsec_forged_by_someone",
            now,
        )
        .await,
        401,
    ));
    let wrong = format!("{secret}x");
    statuses.push((
        "wrong secret",
        env.deliver(&path, "evt_b2", &body("evt_b2"), &wrong, now)
            .await,
        401,
    ));
    let stale = now - jiff::SignedDuration::from_secs(400);
    statuses.push((
        "stale",
        env.deliver(&path, "evt_b3", &body("evt_b3"), &secret, stale)
            .await,
        400,
    ));
    let future = now + jiff::SignedDuration::from_secs(400);
    statuses.push((
        "future",
        env.deliver(&path, "evt_b4", &body("evt_b4"), &secret, future)
            .await,
        400,
    ));
    statuses.push((
        "malformed",
        env.deliver(&path, "evt_b5", "{\"type\": ", &secret, now)
            .await,
        400,
    ));
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    statuses.push((
        "oversized",
        env.deliver(&path, "evt_b6", &huge, &secret, now).await,
        413,
    ));
    let unknown = format!("/hooks/{}/nobody", env.ns);
    statuses.push((
        "unknown object",
        env.deliver(&unknown, "evt_b7", &body("evt_b7"), &secret, now)
            .await,
        404,
    ));
    let bare = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body("evt_b8"))
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16();
    statuses.push(("missing headers", bare, 400));
    let text = http
        .post(&url)
        .header("content-type", "text/plain")
        .body(body("evt_b9"))
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16();
    statuses.push(("wrong content type", text, 415));
    // A replay of a valid (test) event is answered as a duplicate.
    let test = event("evt_b10", "webhook.test", "x");
    statuses.push((
        "first",
        env.deliver(&path, "evt_b10", &test, &secret, now).await,
        202,
    ));
    statuses.push((
        "replayed",
        env.deliver(&path, "evt_b10", &test, &secret, now).await,
        200,
    ));
    for (what, got, want) in &statuses {
        assert_eq!(got, want, "{what}: {statuses:?}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reads: Vec<_> = controls
        .requests()
        .await
        .expect("the request log")
        .into_iter()
        .filter(|r| r.route.starts_with("/people"))
        .collect();
    assert!(
        reads.is_empty(),
        "rejected deliveries read people: {reads:?}"
    );

    // The same person event, signed right, is read and applied: the receiver still serves.
    assert_eq!(
        env.deliver(
            &path,
            "evt_b11",
            &body("evt_b11"),
            &secret,
            Timestamp::now()
        )
        .await,
        202
    );
    let started = Instant::now();
    loop {
        let reads = controls.requests().await.expect("log");
        if reads.iter().any(|r| r.route == "/people/{personId}") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the good delivery was never read: {reads:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_endpoint_disabled_by_failures_is_re_enabled_and_redelivered_once_the_receiver_answers()
{
    let env = Env::start("healing").await;
    env.ready().await;
    let people = env.active_people().await;
    // The Ingress breaks: every delivery fails for good (three quick attempts each).
    env.proxy.fail(true);
    for (i, person) in people.iter().take(11).enumerate() {
        env.change_title(person, &format!("While broken {i}")).await;
    }
    let disabled = wait_condition(
        &env.client,
        &env.ns,
        "acme",
        "WebhookHealthy",
        "False",
        Some("Disabled"),
    )
    .await;
    assert!(
        disabled["message"]
            .as_str()
            .expect("message")
            .contains("does not answer"),
        "{disabled}"
    );
    let ready = wait_condition(
        &env.client,
        &env.ns,
        "acme",
        "Ready",
        "False",
        Some("WebhookDisabled"),
    )
    .await;
    assert!(ready["message"].as_str().is_some());
    assert_eq!(env.ours().await[0].status, WebhookStatus::Disabled);
    assert_ne!(
        env.titles()
            .await
            .get(&people[0])
            .cloned()
            .flatten()
            .as_deref(),
        Some("While broken 0")
    );

    // The Ingress is repaired: re-enabled, the failed deliveries redelivered and applied.
    env.proxy.fail(false);
    wait_condition(
        &env.client,
        &env.ns,
        "acme",
        "WebhookHealthy",
        "True",
        Some("Healthy"),
    )
    .await;
    wait_condition(&env.client, &env.ns, "acme", "Ready", "True", None).await;
    for (i, person) in people.iter().take(11).enumerate() {
        env.wait_title(person, &format!("While broken {i}")).await;
    }
    assert_eq!(env.ours().await[0].status, WebhookStatus::Active);
    let status = env.status().await;
    let info = status.webhook.expect("status.webhook");
    assert_eq!(info.health.as_deref(), Some("healthy"));
    assert!(info.last_remediation_time.is_some());
    let value: Value = serde_json::to_value(&info).expect("json");
    assert!(value["deliveries"]["failed"] == 0, "{value}");
}
