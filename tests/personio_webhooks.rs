//! Personio webhooks end to end on real parts: the API server (control plane), the Personio
//! sandbox delivering real token-authenticated HTTP on loopback, the operator (controller and
//! receiver) in process, and slapd as the directory. Polling is set to an hour, so a change that
//! reaches the directory came through a webhook.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use peoplesync::source::personio::model::{Activity, Employment, ListPage, Webhook};
use peoplesync_sandbox::personio::{
    self as sandbox, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioSandboxConfig,
    PersonioSandboxHandle,
};
use serde_json::{Value, json};
use support::hr::personio::Writer;
use support::operator::{Operator, annotation, eventually, secret_value};
use support::*;

mod support;

struct Env {
    op: Operator,
    personio: PersonioSandboxHandle,
    http: reqwest::Client,
    /// Personio's API with every scope (persons:write for changes, webhooks:read to look).
    api: Writer,
}

impl std::ops::Deref for Env {
    type Target = Operator;
    fn deref(&self) -> &Operator {
        &self.op
    }
}

impl Env {
    async fn start(name: &str) -> Self {
        let op = Operator::start(name, "personio-webhook-test").await;
        let personio = sandbox::start(PersonioSandboxConfig {
            people: 30,
            rate_limit_per_minute: 0,
            allow_insecure_webhook_urls: true,
            delivery_retry_schedule: vec![Duration::from_millis(50), Duration::from_millis(50)],
            delivery_timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .expect("the sandbox starts");
        let secrets: Api<Secret> = Api::namespaced(op.client.clone(), &op.ns);
        let credentials: Secret = serde_json::from_value(json!({
            "metadata": { "name": "personio" },
            "stringData": { "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET }
        }))
        .expect("a Secret");
        secrets
            .create(&PostParams::default(), &credentials)
            .await
            .expect("Secret created");
        let mut object = ldap_people_sync("https://unused.example", &op.ldap, false);
        object["spec"]["source"] = json!({ "personio": {
            "baseUrl": personio.base_url(),
            "credentialsSecretRef": { "name": "personio" }
        }});
        object["spec"]["webhook"] =
            json!({ "enabled": true, "publicUrl": format!("http://{}", op.receiver) });
        object["spec"]["schedule"] = json!({ "pollInterval": "1h", "fullResyncInterval": "6h" });
        create(&op.client, &op.ns, object).await.expect("created");
        let api = Writer::with_scope(&personio, None).await;
        Self {
            op,
            personio,
            http: reqwest::Client::new(),
            api,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.api.call(method, path, body).await
    }

    async fn webhooks(&self) -> Vec<Webhook> {
        let page: ListPage<Webhook> =
            serde_json::from_value(self.call(reqwest::Method::GET, "/v2/webhooks", None).await)
                .expect("a page");
        page.data
    }

    fn hook_url(&self) -> String {
        format!("http://{}{}", self.receiver, self.hook_path())
    }

    async fn ours(&self) -> Vec<Webhook> {
        let url = self.hook_url();
        self.webhooks()
            .await
            .into_iter()
            .filter(|w| w.url == url)
            .collect()
    }

    async fn activity(&self, id: &str) -> Vec<Activity> {
        let page: ListPage<Activity> = serde_json::from_value(
            self.call(
                reqwest::Method::GET,
                &format!("/v2/webhooks/{id}/activity"),
                None,
            )
            .await,
        )
        .expect("a page");
        page.data
    }

    /// A title change through the Personio API (it emits `employment.updated`).
    async fn change_title(&self, person: &str, title: &str) {
        let page: ListPage<Employment> = serde_json::from_value(
            self.call(
                reqwest::Method::GET,
                &format!("/v2/persons/{person}/employments"),
                None,
            )
            .await,
        )
        .expect("a page");
        let employment = &page.data[0].id;
        self.call(
            reqwest::Method::PATCH,
            &format!("/v2/persons/{person}/employments/{employment}"),
            Some(json!({"position": {"title": title}})),
        )
        .await;
    }

    /// A delivery to the receiver with `authorization` (none when `None`).
    async fn deliver(&self, authorization: Option<&str>, body: &str) -> u16 {
        let mut request = self
            .http
            .post(self.hook_url())
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.expect("sent").status().as_u16()
    }
}

fn event(name: &str, payload: Value) -> String {
    json!({
        "company_id": sandbox::COMPANY_ID, "event_name": name,
        "occurred_at": jiff::Timestamp::now().to_string(), "payload": payload
    })
    .to_string()
}

#[tokio::test]
async fn a_personio_peoplesync_registers_an_enabled_webhook_applies_deliveries_rotates_its_token_and_deletes_it()
 {
    let mut env = Env::start("phooks").await;
    env.ready().await;

    // One webhook, ENABLED, token-authenticated, marked as ours; the token in the owned Secret.
    let ours = env.ours().await;
    assert_eq!(ours.len(), 1, "{ours:?}");
    let webhook = ours[0].clone();
    assert_eq!(webhook.status.as_deref(), Some("ENABLED"));
    assert_eq!(webhook.auth_type.as_deref(), Some("TOKEN"));
    assert_eq!(webhook.description, format!("peoplesync {}/acme", env.ns));
    assert_eq!(webhook.enabled_events.len(), 8);
    let status = env.status().await;
    let info = status.webhook.clone().expect("status.webhook");
    assert_eq!(info.id.as_deref(), Some(webhook.id.as_str()));
    let owned = env.credential_secret().await;
    let owner = &owned.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("PeopleSync", "acme")
    );
    assert_eq!(
        annotation(&owned, "peoplesync.dev/webhook-auth").as_deref(),
        Some("token")
    );
    let first = secret_value(&owned, "current").expect("the token");
    assert!(first.starts_with("Bearer ") && first.len() >= "Bearer ".len() + 43);
    assert_eq!(
        info.secret_last_four.as_deref(),
        Some(&first[first.len() - 4..])
    );

    // Personio holds our token: its ping after the enable was delivered (2xx from our receiver).
    eventually("the ping is delivered", || async {
        env.activity(&webhook.id)
            .await
            .iter()
            .any(|a| a.event_name == "ping" && a.is_delivered)
    })
    .await;

    // A change through the API reaches the directory through the webhook (polling is hourly).
    let people: Vec<String> = env.titles().await.into_keys().take(12).collect();
    assert!(people.len() >= 12, "{people:?}");
    env.change_title(&people[0], "Webhook One").await;
    let took = env.wait_title(&people[0], "Webhook One").await;
    eprintln!(
        "write → directory via Personio webhook: {} ms",
        took.as_millis()
    );
    wait_condition(
        &env.client,
        &env.ns,
        "acme",
        "WebhookHealthy",
        "True",
        Some("Healthy"),
    )
    .await;

    // A restarted controller and repeated reconciles never create a second webhook.
    let _ = env.op.restart_controller().await;
    for poke in 0..3 {
        env.annotate("test.peoplesync.dev/poke", &poke.to_string())
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
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
    assert_eq!(env.webhooks().await.len(), 1);

    // Rotation on demand while deliveries are in flight: every delivery is accepted.
    let writer = {
        let people = people.clone();
        let api = env.api.clone();
        tokio::spawn(async move {
            for (i, person) in people.iter().enumerate() {
                let page: ListPage<Employment> = serde_json::from_value(
                    api.call(
                        reqwest::Method::GET,
                        &format!("/v2/persons/{person}/employments"),
                        None,
                    )
                    .await,
                )
                .expect("a page");
                api.call(
                    reqwest::Method::PATCH,
                    &format!("/v2/persons/{person}/employments/{}", page.data[0].id),
                    Some(json!({"position": {"title": format!("During rotation {i}")}})),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
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
            .contains("annotation"),
        "{rotated}"
    );
    writer.await.expect("writes");
    for (i, person) in people.iter().enumerate() {
        env.wait_title(person, &format!("During rotation {i}"))
            .await;
    }
    let failed: Vec<Activity> = env
        .activity(&webhook.id)
        .await
        .into_iter()
        .filter(|a| !a.is_delivered)
        .collect();
    assert!(
        failed.is_empty(),
        "deliveries failed around the rotation: {failed:?}"
    );
    let after = env.credential_secret().await;
    let second = secret_value(&after, "current").expect("the new token");
    assert_ne!(second, first);
    assert_eq!(
        secret_value(&after, "previous").as_deref(),
        Some(first.as_str()),
        "the old token stays for the overlap"
    );
    assert_eq!(annotation(&after, "peoplesync.dev/token-pending"), None);
    let expires: jiff::Timestamp = annotation(&after, "peoplesync.dev/previous-expires-at")
        .expect("the overlap's end")
        .parse()
        .expect("a time");
    let left = expires.duration_since(jiff::Timestamp::now());
    assert!(
        left > jiff::SignedDuration::from_secs(500) && left <= jiff::SignedDuration::from_secs(600),
        "a ten-minute overlap, {left:?} left"
    );

    // During the overlap the old token works; once it ended (the expiry is moved into the
    // past, as the passing of ten minutes would), it is refused and the new one still works.
    let ping = |n: u32| event("ping", json!({"id": format!("probe-{n}")}));
    assert_eq!(env.deliver(Some(&first), &ping(1)).await, 200);
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let past = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1)).to_string();
    secrets
        .patch(
            "acme-webhook-signing",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"peoplesync.dev/previous-expires-at": past}}}),
            ),
        )
        .await
        .expect("patched");
    let started = Instant::now();
    for n in 2.. {
        if env.deliver(Some(&first), &ping(n)).await == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the old token was still accepted after the overlap"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.deliver(Some(&second), &ping(1000)).await, 200);

    // Deleting the PeopleSync deletes its webhook.
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
    assert!(env.webhooks().await.is_empty(), "the webhook was deleted");
}

#[tokio::test]
async fn wrong_or_missing_personio_tokens_are_refused_with_401_and_read_nothing() {
    let env = Env::start("pbadhooks").await;
    env.ready().await;
    let token = secret_value(&env.credential_secret().await, "current").expect("the token");
    let person = env
        .titles()
        .await
        .into_keys()
        .next()
        .expect("someone is provisioned");
    let controls = env.personio.controls();
    controls.clear_requests().await.expect("cleared");
    let body = event("person.updated", json!({"id": person}));
    let wrong = format!("{token}x");
    let bare = token.trim_start_matches("Bearer ").to_owned();
    let cases = [
        ("missing", None),
        ("wrong", Some(wrong.as_str())),
        ("without Bearer", Some(bare.as_str())),
        ("another scheme", Some("Basic cGVvcGxlc3luYzpzZWNyZXQ=")),
    ];
    for (what, authorization) in cases {
        assert_eq!(env.deliver(authorization, &body).await, 401, "{what}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reads: Vec<_> = controls
        .requests()
        .await
        .expect("the request log")
        .into_iter()
        .filter(|r| r.route.starts_with("/v2/persons"))
        .collect();
    assert!(
        reads.is_empty(),
        "refused deliveries read persons: {reads:?}"
    );

    // The same event with the token is read through REST: the receiver still serves.
    assert_eq!(env.deliver(Some(&token), &body).await, 202);
    let started = Instant::now();
    loop {
        let log = controls.requests().await.expect("log");
        if log.iter().any(|r| r.route == "/v2/persons/{id}") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the good delivery was never read: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        env.deliver(Some(&token), &body).await,
        200,
        "a repeated event is a duplicate"
    );
}

#[tokio::test]
async fn a_disabled_webhook_is_re_enabled_and_a_lost_token_secret_is_recovered_by_rotating() {
    let env = Env::start("phealing").await;
    env.ready().await;
    let webhook = env.ours().await.remove(0);
    let people: Vec<String> = env.titles().await.into_keys().take(2).collect();

    // Someone disables the webhook in Personio: the receiver answers, so it is enabled again.
    env.call(
        reqwest::Method::PATCH,
        &format!("/v2/webhooks/{}", webhook.id),
        Some(json!({"status": "DISABLED"})),
    )
    .await;
    eventually("the webhook is re-enabled", || async {
        env.status()
            .await
            .webhook
            .is_some_and(|w| w.last_remediation_time.is_some())
            && env.ours().await[0].status.as_deref() == Some("ENABLED")
    })
    .await;
    env.change_title(&people[0], "After re-enable").await;
    env.wait_title(&people[0], "After re-enable").await;

    // The owned Secret is lost: Personio never echoes the token, so a new one is set.
    let lost = secret_value(&env.credential_secret().await, "current").expect("the token");
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    secrets
        .delete("acme-webhook-signing", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_condition(
        &env.client,
        &env.ns,
        "acme",
        "SecretRotated",
        "True",
        Some("Recovered"),
    )
    .await;
    let recovered = secret_value(&env.credential_secret().await, "current").expect("a new token");
    assert_ne!(recovered, lost);
    assert_eq!(env.ours().await.len(), 1, "the same webhook, not a new one");
    assert_eq!(env.ours().await[0].id, webhook.id);
    env.change_title(&people[1], "After recovery").await;
    env.wait_title(&people[1], "After recovery").await;
    let body = event("ping", json!({"id": "probe"}));
    assert_eq!(
        env.deliver(Some(&lost), &body).await,
        401,
        "the lost token is gone"
    );
}
