//! The HollyHR client against the real sandbox, started in-process on a free port.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use jiff::Timestamp;
use peoplesync::source::hollyhr::model::{
    CreatePersonRequest, CreateWebhookRequest, EventType, UpdateEmploymentRequest,
};
use peoplesync::source::hollyhr::{
    ClientConfig, Conditional, ErrorReason, HollyHrClient, HollyHrError, Idempotency,
    IdempotencyKey, PageLimit, PeopleQuery, RetryPolicy,
};
use peoplesync::source::{PeopleSource, SYNC_SCOPES};
use peoplesync_sandbox::{
    self as sandbox, ApiKeySpec, DEFAULT_API_KEY, DEFAULT_SCOPES, SandboxConfig,
};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

const READONLY_ORG_UNITS_KEY: &str = "hhr_test_readonly_orgunits";

struct Harness {
    sandbox: sandbox::SandboxHandle,
    control: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct LogEntry {
    method: String,
    route: String,
    status: u16,
}

#[derive(Deserialize)]
struct Log {
    data: Vec<LogEntry>,
}

impl Harness {
    async fn start() -> Harness {
        Self::with(SandboxConfig {
            people: 1000,
            ..SandboxConfig::default()
        })
        .await
    }

    async fn with(config: SandboxConfig) -> Harness {
        let sandbox = sandbox::start(config).await.expect("sandbox starts");
        Harness {
            sandbox,
            control: reqwest::Client::new(),
        }
    }

    fn client_with_key(&self, key: &str) -> HollyHrClient {
        let mut config = ClientConfig::new(&self.sandbox.base_url(), SecretString::from(key))
            .expect("valid client config");
        // Fast retries: the behaviour, not the production timings.
        config.retry = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            max_elapsed: Duration::from_secs(10),
        };
        HollyHrClient::new(config).expect("client builds")
    }

    fn client(&self) -> HollyHrClient {
        self.client_with_key(DEFAULT_API_KEY)
    }

    fn control(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.control_url())
    }

    async fn requests(&self) -> Vec<LogEntry> {
        let response = self
            .control
            .get(self.control("/requests"))
            .send()
            .await
            .expect("request log answers");
        assert!(
            response.status().is_success(),
            "request log: {}",
            response.status()
        );
        response
            .json::<Log>()
            .await
            .expect("request log is JSON")
            .data
    }

    async fn clear_requests(&self) {
        let response = self
            .control
            .delete(self.control("/requests"))
            .send()
            .await
            .expect("request log clears");
        assert!(response.status().is_success());
    }

    async fn set_faults(&self, faults: serde_json::Value) {
        let response = self
            .control
            .put(self.control("/faults"))
            .json(&faults)
            .send()
            .await
            .expect("faults set");
        assert!(
            response.status().is_success(),
            "faults: {}",
            response.status()
        );
    }

    async fn clear_faults(&self) {
        let response = self
            .control
            .delete(self.control("/faults"))
            .send()
            .await
            .expect("faults clear");
        assert!(response.status().is_success());
    }

    async fn ui_edit(&self, person: &str, edit: serde_json::Value) {
        let response = self
            .control
            .post(self.control(&format!("/people/{person}/ui-edit")))
            .json(&edit)
            .send()
            .await
            .expect("ui edit answers");
        assert!(
            response.status().is_success(),
            "ui edit: {}",
            response.status()
        );
    }

    /// `(method route status)` of every logged request, in order.
    async fn calls(&self) -> Vec<(String, String, u16)> {
        self.requests()
            .await
            .into_iter()
            .map(|entry| (entry.method, entry.route, entry.status))
            .collect()
    }
}

fn call(method: &str, route: &str, status: u16) -> (String, String, u16) {
    (method.to_owned(), route.to_owned(), status)
}

fn everyone(limit: u32) -> PeopleQuery {
    PeopleQuery {
        limit: PageLimit::new(limit).expect("valid limit"),
        ..PeopleQuery::default()
    }
}

async fn change_job_title_through_the_api(client: &HollyHrClient, person: &str, title: &str) {
    let employment = client
        .person_employment(person)
        .await
        .expect("employment reads");
    let etag = employment
        .etag
        .expect("employment carries HollyHR-Resource-ETag");
    let body = UpdateEmploymentRequest {
        job_title: Some(Some(title.to_owned())),
        ..UpdateEmploymentRequest::default()
    };
    client
        .update_employment(person, &body, &etag, Idempotency::Derived)
        .await
        .expect("employment patch succeeds");
}

#[tokio::test]
async fn listing_1000_people_in_pages_of_100_makes_exactly_10_requests_and_yields_each_person_once()
{
    let harness = Harness::start().await;
    harness.clear_requests().await;

    let people: Vec<_> = harness
        .client()
        .people(&everyone(100))
        .try_collect()
        .await
        .expect("listing succeeds");

    let ids: HashSet<_> = people.iter().map(|person| person.id.as_str()).collect();
    assert_eq!(people.len(), 1000);
    assert_eq!(ids.len(), 1000, "every person exactly once");
    let calls = harness.calls().await;
    assert_eq!(calls, vec![call("GET", "/people", 200); 10]);
}

#[tokio::test]
async fn incremental_listing_returns_only_the_people_changed_since_the_checkpoint() {
    let harness = Harness::start().await;
    let client = harness.client();
    let baseline: Vec<_> = client
        .people(&everyone(100))
        .try_collect()
        .await
        .expect("baseline listing succeeds");
    let checkpoint = baseline
        .iter()
        .map(|person| person.updated_at)
        .max()
        .expect("the tenant has people");

    let (api_a, api_b, ui) = (&baseline[3].id, &baseline[500].id, &baseline[998].id);
    change_job_title_through_the_api(&client, api_a, "Principal Cartographer").await;
    change_job_title_through_the_api(&client, api_b, "Chief Tea Officer").await;
    harness
        .ui_edit(ui, json!({ "job_title": "Edited In The UI" }))
        .await;

    let changed: Vec<_> = client
        .people(&PeopleQuery {
            updated_since: Some(checkpoint),
            ..everyone(100)
        })
        .try_collect()
        .await
        .expect("incremental listing succeeds");

    let ids: HashSet<_> = changed.iter().map(|person| person.id.as_str()).collect();
    for id in [api_a, api_b, ui] {
        assert!(ids.contains(id.as_str()), "{id} changed but was not listed");
    }
    // `updated_since` is inclusive (Decision 7): beyond the changed people, only those stamped
    // exactly at the checkpoint may come back.
    for person in &changed {
        let was_changed = [api_a, api_b, ui].contains(&&person.id);
        assert!(
            was_changed || person.updated_at == checkpoint,
            "{} was not changed and is newer than nothing: {}",
            person.id,
            person.updated_at
        );
    }
    assert!(changed.len() < 10, "{} people listed", changed.len());
    let title = |id: &str| {
        changed
            .iter()
            .find(|person| person.id == id)
            .and_then(|person| person.job_title.clone())
    };
    assert_eq!(title(api_a).as_deref(), Some("Principal Cartographer"));
    assert_eq!(title(ui).as_deref(), Some("Edited In The UI"));
}

#[tokio::test]
async fn a_rate_limited_request_waits_for_retry_after_and_then_succeeds() {
    let harness = Harness::start().await;
    harness.clear_requests().await;
    harness
        .set_faults(json!({ "rate_limit_burst": 2, "retry_after_seconds": 1 }))
        .await;

    let started = Instant::now();
    let me = harness
        .client()
        .me()
        .await
        .expect("succeeds after the 429s");
    let took = started.elapsed();

    assert!(me.environment.sandbox);
    assert!(took >= Duration::from_millis(1900), "waited only {took:?}");
    assert_eq!(
        harness.calls().await,
        vec![
            call("GET", "/me", 429),
            call("GET", "/me", 429),
            call("GET", "/me", 200)
        ]
    );
    harness.clear_faults().await;
}

#[tokio::test]
async fn server_errors_are_retried_until_the_request_succeeds() {
    let harness = Harness::start().await;
    harness.clear_requests().await;
    harness
        .set_faults(json!({ "fail_next": 2, "error_status": 503 }))
        .await;

    let units = harness
        .client()
        .org_units()
        .await
        .expect("succeeds after the 503s");

    assert!(!units.is_empty());
    assert_eq!(
        harness.calls().await,
        vec![
            call("GET", "/org-units", 503),
            call("GET", "/org-units", 503),
            call("GET", "/org-units", 200)
        ]
    );
    harness.clear_faults().await;
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_the_configured_attempts() {
    let harness = Harness::start().await;
    harness.clear_requests().await;
    harness
        .set_faults(json!({ "fail_next": 100, "error_status": 500 }))
        .await;

    let error = harness.client().me().await.expect_err("keeps failing");

    assert_eq!(error.category(), ErrorReason::ServerError);
    assert_eq!(harness.calls().await, vec![call("GET", "/me", 500); 4]);
    harness.clear_faults().await;
}

#[tokio::test]
async fn a_bad_request_is_not_retried() {
    let harness = Harness::start().await;
    harness.clear_requests().await;
    let invalid = CreatePersonRequest {
        first_name: String::new(),
        last_name: "Nobody".into(),
        ..CreatePersonRequest::default()
    };

    let error = harness
        .client()
        .create_person(&invalid, Idempotency::Derived)
        .await
        .expect_err("an empty first name is refused");

    assert_eq!(error.status(), Some(400));
    assert_eq!(error.code(), Some("invalid_request"));
    assert_eq!(error.category(), ErrorReason::InvalidRequest);
    assert!(error.request_id().is_some(), "{error}");
    assert_eq!(harness.calls().await, vec![call("POST", "/people", 400)]);
}

#[tokio::test]
async fn a_key_without_the_scope_gets_missing_scope_and_is_not_retried() {
    let harness = Harness::with(SandboxConfig {
        people: 50,
        api_keys: vec![
            ApiKeySpec::new(DEFAULT_API_KEY, DEFAULT_SCOPES),
            ApiKeySpec::new(READONLY_ORG_UNITS_KEY, ["org_units:read"]),
        ],
        ..SandboxConfig::default()
    })
    .await;
    let client = harness.client_with_key(READONLY_ORG_UNITS_KEY);
    harness.clear_requests().await;

    let error = client
        .people(&everyone(100))
        .try_collect::<Vec<_>>()
        .await
        .expect_err("people:read is missing");

    assert_eq!(error.category(), ErrorReason::MissingScope);
    assert_eq!(error.reason(), "MissingScope");
    assert_eq!(error.code(), Some("permission_denied"));
    assert_eq!(harness.calls().await, vec![call("GET", "/people", 403)]);
    let principal = client.whoami().await.expect("any key may call /me");
    assert_eq!(principal.missing_scopes(&SYNC_SCOPES), vec!["people:read"]);
}

#[tokio::test]
async fn a_wrong_api_key_is_unauthorized_and_not_retried() {
    let harness = Harness::start().await;
    harness.clear_requests().await;

    let error = harness
        .client_with_key("hhr_test_not_a_real_key")
        .me()
        .await
        .expect_err("the key is unknown");

    assert_eq!(error.category(), ErrorReason::Unauthorized);
    assert_eq!(error.status(), Some(401));
    assert_eq!(harness.calls().await, vec![call("GET", "/me", 401)]);
}

#[tokio::test]
async fn an_unknown_person_is_not_found_and_not_retried() {
    let harness = Harness::start().await;
    let client = harness.client();
    harness.clear_requests().await;

    let error = client
        .person("zzzzzzzzzzzz")
        .await
        .expect_err("no such person");
    assert_eq!(error.category(), ErrorReason::NotFound);
    assert_eq!(
        harness.calls().await,
        vec![call("GET", "/people/{personId}", 404)]
    );
    let through_the_seam = PeopleSource::person(&client, "zzzzzzzzzzzz").await;
    assert!(matches!(through_the_seam, Ok(None)), "{through_the_seam:?}");
}

#[tokio::test]
async fn replaying_a_webhook_creation_with_the_same_key_returns_no_signing_secret() {
    let harness = Harness::with(SandboxConfig {
        people: 10,
        allow_insecure_webhook_urls: true,
        ..SandboxConfig::default()
    })
    .await;
    let client = harness.client();
    let body = CreateWebhookRequest {
        name: "peoplesync-test".into(),
        url: "http://127.0.0.1:9/hollyhr".into(),
        subscribed_events: EventType::PEOPLESYNC_DEFAULT.to_vec(),
    };
    let key = IdempotencyKey::new("create-webhook-peoplesync-test").expect("valid key");

    let first = client
        .create_webhook(&body, Idempotency::Key(key.clone()))
        .await
        .expect("created");
    let replay = client
        .create_webhook(&body, Idempotency::Key(key.clone()))
        .await
        .expect("replayed");

    assert!(
        first.value.signing_secret.is_some(),
        "the first answer shows the secret"
    );
    assert!(
        replay.value.signing_secret.is_none(),
        "a replay never shows it"
    );
    assert_eq!(first.value.webhook.id, replay.value.webhook.id);
    assert!(
        !format!("{first:?}").contains("whsec_"),
        "Debug must hide the secret"
    );

    let different = CreateWebhookRequest {
        name: "another-name".into(),
        ..body
    };
    let conflict = client
        .create_webhook(&different, Idempotency::Key(key))
        .await
        .expect_err("same key, different body");
    assert_eq!(conflict.category(), ErrorReason::IdempotencyConflict);
}

#[tokio::test]
async fn a_stale_if_match_is_refused_with_precondition_failed() {
    let harness = Harness::start().await;
    let client = harness.client();
    let person = client
        .people(&everyone(1))
        .try_next()
        .await
        .expect("listing succeeds")
        .expect("the tenant has people")
        .id;
    let stale = client
        .person_employment(&person)
        .await
        .expect("employment reads")
        .etag
        .expect("employment carries an ETag");
    change_job_title_through_the_api(&client, &person, "First Change").await;
    harness.clear_requests().await;

    let body = UpdateEmploymentRequest {
        job_title: Some(Some("Second Change".into())),
        ..UpdateEmploymentRequest::default()
    };
    let error = client
        .update_employment(&person, &body, &stale, Idempotency::Derived)
        .await
        .expect_err("the validator is stale");

    assert_eq!(error.status(), Some(412));
    assert_eq!(error.category(), ErrorReason::PreconditionFailed);
    assert_eq!(
        harness.calls().await,
        vec![call("PATCH", "/people/{personId}/employment", 412)]
    );
}

#[tokio::test]
async fn a_person_read_with_its_current_etag_is_not_modified() {
    let harness = Harness::start().await;
    let client = harness.client();
    let first = client
        .people(&everyone(1))
        .try_next()
        .await
        .expect("listing succeeds")
        .expect("the tenant has people");
    let read = client.person(&first.id).await.expect("person reads");
    let etag = read.etag.expect("person carries an ETag");

    let again = client
        .person_if_changed(&first.id, Some(&etag))
        .await
        .expect("conditional read succeeds");

    assert!(
        matches!(again, Conditional::NotModified { .. }),
        "{again:?}"
    );
}

#[tokio::test]
async fn the_people_source_seam_reports_the_sandbox_principal_and_streams_changes() {
    let harness = Harness::with(SandboxConfig {
        people: 120,
        ..SandboxConfig::default()
    })
    .await;
    let client = harness.client();

    let principal = client.whoami().await.expect("whoami succeeds");
    assert!(principal.sandbox);
    assert!(principal.missing_scopes(&SYNC_SCOPES).is_empty());

    let everyone: Vec<_> = PeopleSource::people(&client, None)
        .try_collect()
        .await
        .expect("listing succeeds");
    assert_eq!(everyone.len(), 120);
    let future: Vec<_> = PeopleSource::people(
        &client,
        Some(Timestamp::now() + jiff::SignedDuration::from_hours(1)),
    )
    .try_collect()
    .await
    .expect("listing succeeds");
    assert!(future.is_empty());
    let units = PeopleSource::org_units(&client)
        .await
        .expect("org units list");
    assert!(!units.is_empty());
}

#[test]
fn a_limit_above_100_is_refused_before_anything_is_sent() {
    let error = PageLimit::new(101).expect_err("100 is the maximum");
    assert!(matches!(error, HollyHrError::InvalidArgument(_)));
    assert_eq!(error.reason(), "InvalidArgument");
}

#[tokio::test]
async fn every_webhook_operation_round_trips_through_the_client() {
    let harness = Harness::with(SandboxConfig {
        people: 10,
        allow_insecure_webhook_urls: true,
        delivery_retry_schedule: vec![Duration::from_millis(10)],
        ..SandboxConfig::default()
    })
    .await;
    let client = harness.client();
    let body = CreateWebhookRequest {
        name: "peoplesync-roundtrip".into(),
        url: "http://127.0.0.1:9/hollyhr".into(),
        subscribed_events: vec![EventType::PersonUpdated, EventType::WebhookTest],
    };
    let created = client
        .create_webhook(&body, Idempotency::Unique)
        .await
        .expect("created")
        .value;
    let id = created.webhook.id.clone();
    assert!(created.signing_secret.is_some());
    let listed = client.webhooks().await.expect("webhooks list");
    assert!(listed.iter().any(|hook| hook.id == id));

    let first_test = client
        .test_webhook(&id, Idempotency::Unique)
        .await
        .expect("test queued");
    let second_test = client
        .test_webhook(&id, Idempotency::Unique)
        .await
        .expect("second test queued");
    assert_ne!(first_test.delivery_id, second_test.delivery_id);
    assert!(
        first_test
            .headers
            .keys()
            .any(|name| name.eq_ignore_ascii_case("HollyHR-Webhook-Signature")),
        "{:?}",
        first_test.headers.keys()
    );

    harness.clear_requests().await;
    let query = peoplesync::source::hollyhr::DeliveryQuery {
        limit: PageLimit::new(1).expect("valid limit"),
        event_type: Some(EventType::WebhookTest),
        ..Default::default()
    };
    let deliveries: Vec<_> = client
        .webhook_deliveries(&id, &query)
        .try_collect()
        .await
        .expect("deliveries list");
    let delivery_ids: HashSet<_> = deliveries.iter().map(|d| d.id.as_str()).collect();
    assert!(delivery_ids.contains(first_test.delivery_id.as_str()));
    assert!(delivery_ids.contains(second_test.delivery_id.as_str()));
    let list_calls = harness.calls().await;
    assert!(
        list_calls.len() >= 2,
        "one delivery per page: {list_calls:?}"
    );
    assert!(
        list_calls
            .iter()
            .all(|(method, route, status)| method == "GET"
                && route == "/webhooks/{webhookId}/deliveries"
                && *status == 200)
    );

    let detail = client
        .webhook_delivery(&id, &first_test.delivery_id)
        .await
        .expect("delivery detail");
    assert_eq!(detail.summary.id, first_test.delivery_id);
    let health = client.webhook_health(&id).await.expect("health");
    assert_eq!(health.webhook_id, id);

    let rotated = client
        .rotate_webhook_secret(&id, Idempotency::Unique)
        .await
        .expect("rotated")
        .value;
    assert!(rotated.signing_secret.is_some());
    assert!(rotated.webhook.previous_secret_expires_at.is_some());

    let current = client.webhook(&id).await.expect("webhook reads");
    let etag = current.etag.expect("webhook carries an ETag");
    let renamed = client
        .update_webhook(
            &id,
            &peoplesync::source::hollyhr::model::UpdateWebhookRequest {
                name: Some("peoplesync-renamed".into()),
                ..Default::default()
            },
            &etag,
            Idempotency::Derived,
        )
        .await
        .expect("renamed");
    assert_eq!(renamed.value.name, "peoplesync-renamed");
    let disabled = client
        .disable_webhook(
            &id,
            &renamed.etag.expect("write returns the new ETag"),
            Idempotency::Derived,
        )
        .await
        .expect("disabled");
    assert_eq!(
        disabled.value.status,
        peoplesync::source::hollyhr::model::WebhookStatus::Disabled
    );
}
