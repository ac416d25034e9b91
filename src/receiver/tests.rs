//! The receiver over real HTTP on loopback, with deliveries signed as HollyHR signs them and
//! token-authenticated as Personio sends them.

use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;

use super::*;
use crate::signature::{self, SignedHeaders, Variant};
use crate::source::personio::flavour::receive as personio;

const SECRET: &str = "whsec_current_0123456789abcdef";
const OLD_SECRET: &str = "whsec_previous_0123456789abcdef";
const START: i64 = 1_780_000_000;
const TOKEN: &str = "Bearer current-personio-token-0123456789abcdefghijk";
const OLD_TOKEN: &str = "Bearer previous-personio-token-0123456789abcdefghij";
/// The Personio object's path (the HollyHR one is `/hooks/team/acme`).
const PERSONIO: &str = "/hooks/team/people";

struct Running {
    url: String,
    jobs: mpsc::Receiver<Job>,
    clock: Arc<AtomicI64>,
    http: reqwest::Client,
    book: SecretBook,
    /// Whether a job consumer runs (this process leads).
    consuming: Arc<std::sync::atomic::AtomicBool>,
    /// Every answer's `Answered` extension, as the process's metrics layer reads it.
    answers: Arc<Mutex<Vec<Answered>>>,
}

async fn start(queue: usize) -> Running {
    let running = start_loading(queue).await;
    running.book.set_loaded();
    running
}

/// A receiver whose process has not listed its Secrets yet (only these two objects known).
async fn start_loading(queue: usize) -> Running {
    start_with_budget(queue, BODY_BUDGET).await
}

async fn start_with_budget(queue: usize, budget: usize) -> Running {
    let book = SecretBook::default();
    book.set(
        "team",
        "acme",
        Scheme::Hmac,
        HeldCredentials {
            current: SecretString::from(SECRET),
            previous: Some((
                SecretString::from(OLD_SECRET),
                Timestamp::from_second(START + 3600).expect("a time"),
            )),
        },
    );
    book.set(
        "team",
        "people",
        Scheme::Token,
        HeldCredentials {
            current: SecretString::from(TOKEN),
            previous: Some((
                SecretString::from(OLD_TOKEN),
                Timestamp::from_second(START + 600).expect("a time"),
            )),
        },
    );
    let (sender, jobs) = mpsc::channel(queue);
    let clock = Arc::new(AtomicI64::new(START));
    let ticks = clock.clone();
    let consuming = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let receiver = Receiver::new(book.clone(), sender)
        .with_clock(move || Timestamp::from_second(ticks.load(Ordering::SeqCst)).expect("a time"))
        .with_consumer(consuming.clone())
        .with_body_budget(budget);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let recorded = answers.clone();
    let app = router(Arc::new(receiver)).layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let recorded = recorded.clone();
            async move {
                let probe = request.uri().path() == HEALTH_PATH;
                let response = next.run(request).await;
                if let Some(answered) = answered_or_rejected(probe, &response) {
                    recorded.lock().expect("unpoisoned").push(answered);
                }
                response
            }
        },
    ));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Running {
        url,
        jobs,
        clock,
        http: reqwest::Client::new(),
        book,
        consuming,
        answers,
    }
}

fn event(id: &str, kind: &str, subject: &str) -> String {
    json!({
        "id": id, "type": kind, "api_version": "v1", "occurred_at": "2026-06-18T09:00:00.000Z",
        "data": {"id": subject, "resource_type": "person"}
    })
    .to_string()
}

impl Running {
    fn now(&self) -> Timestamp {
        Timestamp::from_second(self.clock.load(Ordering::SeqCst)).expect("a time")
    }

    /// Sends `body` signed with `secret` (guide variant unless told) to `path`.
    async fn deliver(
        &self,
        path: &str,
        id: &str,
        body: &str,
        secret: &str,
        variant: Variant,
        at: Timestamp,
    ) -> reqwest::Response {
        let timestamp = variant.format_timestamp(at);
        let digest = signature::sign(variant, secret, id, &timestamp, body.as_bytes());
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header(signature::HEADER_ID, id)
            .header(signature::HEADER_TIMESTAMP, timestamp)
            .header(variant.signature_header(), format!("v1={digest}"))
            .body(body.to_owned())
            .send()
            .await
            .expect("sent")
    }

    async fn send(&self, id: &str, body: &str) -> reqwest::Response {
        self.deliver(
            "/hooks/team/acme",
            id,
            body,
            SECRET,
            Variant::Guide,
            self.now(),
        )
        .await
    }
}

/// Found by the failover trial: a replica that does not lead queued deliveries nobody took, so
/// a change delivered to the old leader during a handover waited for the next poll.
#[tokio::test]
async fn a_replica_that_does_not_lead_asks_for_a_retry_and_queues_nothing() {
    let mut running = start(8).await;
    running.consuming.store(false, Ordering::SeqCst);
    let body = event("evt_1", "person.updated", "abcdefghjkmn");
    let refused = running.send("evt_1", &body).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(running.jobs.try_recv().is_err(), "nothing was queued");
    // Leading again: the retry is accepted (not a duplicate: the refusal remembered nothing).
    running.consuming.store(true, Ordering::SeqCst);
    assert_eq!(running.send("evt_1", &body).await.status(), 202);
    running.jobs.try_recv().expect("a job");
}

#[tokio::test]
async fn a_signed_person_event_is_accepted_once_and_becomes_a_job() {
    let mut running = start(8).await;
    let body = event("evt_1", "person.updated", "abcdefghjkmn");
    let response = running.send("evt_1", &body).await;
    assert_eq!(response.status(), 202);
    let job = running.jobs.try_recv().expect("a job");
    assert_eq!(job.subject, Subject::Person("abcdefghjkmn".into()));
    assert_eq!(
        (job.namespace.as_str(), job.name.as_str()),
        ("team", "acme")
    );

    let again = running.send("evt_1", &body).await;
    assert_eq!(
        again.status(),
        200,
        "a replayed id is acknowledged, not queued"
    );
    assert!(running.jobs.try_recv().is_err());
}

/// Issue #28: a captured delivery replayed with a fresh `HollyHR-Webhook-Id` header verifies
/// (the guide variant does not sign the header id), but its signed body's event id is the same:
/// a duplicate, nothing queued.
#[tokio::test]
async fn a_replay_with_a_fresh_header_id_is_a_duplicate() {
    let mut running = start(8).await;
    let body = event("evt_signed", "person.updated", "abcdefghjkmn");
    assert_eq!(running.send("evt_header_1", &body).await.status(), 202);
    running.jobs.try_recv().expect("a job");
    let replay = running.send("evt_header_2", &body).await;
    assert_eq!(replay.status(), 200, "the signed id was seen before");
    assert!(
        running.jobs.try_recv().is_err(),
        "the replay queued nothing"
    );
    // An event whose body has no id falls back to the header's.
    let bare = json!({"type": "person.updated", "data": {"id": "abcdefghjkmn"}}).to_string();
    assert_eq!(running.send("evt_bare", &bare).await.status(), 202);
    assert_eq!(running.send("evt_bare", &bare).await.status(), 200);
}

/// Issue #28: bodies not yet authenticated share one budget. A stranger trickling a large
/// body holds what it sent; a request that would go over is answered 503 with Retry-After (and
/// queues nothing); once the stranger is gone, deliveries are read again.
#[tokio::test]
async fn unauthenticated_bodies_share_one_budget_and_over_it_the_answer_is_503() {
    use tokio::io::AsyncWriteExt as _;
    let mut running = start_with_budget(8, 4 * 1024).await;
    running.book.set_loaded();
    let addr = running.url.trim_start_matches("http://").to_owned();
    let mut stranger = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connects");
    stranger
        .write_all(
            b"POST /hooks/team/acme HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n",
        )
        .await
        .expect("writes");
    stranger.write_all(&[b' '; 3 * 1024]).await.expect("writes");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // 3 KiB held by the stranger: a 2 KiB delivery does not fit.
    let padded = json!({
        "id": "evt_big", "type": "person.updated", "data": {"id": "abcdefghjkmn"},
        "padding": "p".repeat(2048)
    })
    .to_string();
    let refused = running.send("evt_big", &padded).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(running.jobs.try_recv().is_err(), "nothing was queued");
    // The stranger leaves: its bytes are released, and the retry is accepted.
    drop(stranger);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(running.send("evt_big", &padded).await.status(), 202);
    running.jobs.try_recv().expect("a job");
    let outcomes: Vec<Outcome> = running
        .answers
        .lock()
        .expect("unpoisoned")
        .iter()
        .map(|a| a.outcome)
        .collect();
    assert!(outcomes.contains(&Outcome::OverBudget), "{outcomes:?}");
}

#[tokio::test]
async fn the_sdk_variant_the_previous_secret_and_test_events_are_accepted() {
    let mut running = start(8).await;
    let now = running.now();
    let sdk = running
        .deliver(
            "/hooks/team/acme",
            "evt_2",
            &event("evt_2", "org_unit.updated", "org_unit_x"),
            SECRET,
            Variant::Sdk,
            now,
        )
        .await;
    assert_eq!(sdk.status(), 202);
    assert_eq!(
        running.jobs.try_recv().expect("a job").subject,
        Subject::OrgUnit("org_unit_x".into())
    );
    let old = running
        .deliver(
            "/hooks/team/acme",
            "evt_3",
            &event("evt_3", "person.created", "p1"),
            OLD_SECRET,
            Variant::Guide,
            now,
        )
        .await;
    assert_eq!(
        old.status(),
        202,
        "the previous secret is valid during the overlap"
    );
    let test = running
        .send("evt_4", &event("evt_4", "webhook.test", "x"))
        .await;
    assert_eq!(test.status(), 202);
    running.jobs.try_recv().expect("the person job");
    assert!(
        running.jobs.try_recv().is_err(),
        "webhook.test queues nothing"
    );

    // After the overlap, the old secret alone is rejected.
    running.clock.store(START + 3601, Ordering::SeqCst);
    let late = running
        .deliver(
            "/hooks/team/acme",
            "evt_5",
            &event("evt_5", "person.created", "p1"),
            OLD_SECRET,
            Variant::Guide,
            running.now(),
        )
        .await;
    assert_eq!(late.status(), 401);
}

#[tokio::test]
async fn bad_deliveries_are_refused_with_their_status_and_queue_nothing() {
    let mut running = start(8).await;
    let body = event("evt_9", "person.updated", "p1");
    let now = running.now();
    let wrong_secret = running
        .deliver(
            "/hooks/team/acme",
            "evt_9",
            &body,
            "whsec_wrong",
            Variant::Guide,
            now,
        )
        .await;
    assert_eq!(wrong_secret.status(), 401);
    let stale = running
        .deliver(
            "/hooks/team/acme",
            "evt_9",
            &body,
            SECRET,
            Variant::Guide,
            now - jiff::SignedDuration::from_secs(301),
        )
        .await;
    assert_eq!(stale.status(), 400);
    let future = running
        .deliver(
            "/hooks/team/acme",
            "evt_9",
            &body,
            SECRET,
            Variant::Guide,
            now + jiff::SignedDuration::from_secs(301),
        )
        .await;
    assert_eq!(future.status(), 400);
    let unknown = running
        .deliver(
            "/hooks/team/other",
            "evt_9",
            &body,
            SECRET,
            Variant::Guide,
            now,
        )
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers().get("retry-after"), None);
    let malformed = running.send("evt_10", "{not json").await;
    assert_eq!(malformed.status(), 400, "validly signed, but not an event");
    let no_subject = running
        .send("evt_11", r#"{"type":"person.updated","data":{}}"#)
        .await;
    assert_eq!(no_subject.status(), 400);

    let unsigned = running
        .http
        .post(format!("{}/hooks/team/acme", running.url))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(unsigned.status(), 400, "missing headers");
    let text = running
        .http
        .post(format!("{}/hooks/team/acme", running.url))
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(text.status(), 415);
    let huge = "x".repeat(BODY_LIMIT + 1);
    let too_large = running.send("evt_12", &huge).await;
    assert_eq!(too_large.status(), 413);
    for response in [wrong_secret, stale, unknown] {
        let text = response.text().await.expect("a body");
        assert!(!text.contains(SECRET) && !text.contains("whsec"), "{text}");
    }
    assert!(running.jobs.try_recv().is_err(), "nothing was queued");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_the_retry_is_accepted() {
    let mut running = start(1).await;
    assert_eq!(
        running
            .send("evt_a", &event("evt_a", "person.updated", "p1"))
            .await
            .status(),
        202
    );
    let busy = running
        .send("evt_b", &event("evt_b", "person.updated", "p2"))
        .await;
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key("retry-after"));
    running.jobs.try_recv().expect("the first job");
    let retried = running
        .send("evt_b", &event("evt_b", "person.updated", "p2"))
        .await;
    assert_eq!(
        retried.status(),
        202,
        "a refused delivery is not remembered as seen"
    );
}

fn personio_event(name: &str, payload: serde_json::Value) -> String {
    json!({
        "company_id": "100042", "event_name": name,
        "occurred_at": "2026-06-18T09:00:00Z", "payload": payload
    })
    .to_string()
}

impl Running {
    /// A Personio delivery: `token` verbatim as `Authorization` (none when `None`).
    async fn personio(&self, token: Option<&str>, body: &str) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{PERSONIO}", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        request.send().await.expect("sent")
    }
}

#[tokio::test]
async fn a_personio_delivery_with_the_token_is_accepted_once_and_becomes_a_person_job() {
    let mut running = start(8).await;
    let body = personio_event(
        "employment.updated",
        json!({"id": "9f1c-employment", "person_id": "3004"}),
    );
    let response = running.personio(Some(TOKEN), &body).await;
    assert_eq!(response.status(), 202);
    let job = running.jobs.try_recv().expect("a job");
    assert_eq!(job.subject, Subject::Person("3004".into()));
    assert_eq!(
        (job.namespace.as_str(), job.name.as_str()),
        ("team", "people")
    );
    assert_eq!(job.event_type, "employment.updated");
    assert_eq!(
        running.book.last_accepted("team", "people"),
        Some(running.now())
    );

    let again = running.personio(Some(TOKEN), &body).await;
    assert_eq!(again.status(), 200, "a retried event is a duplicate");
    assert!(running.jobs.try_recv().is_err());
    // The same change at another time is another event.
    let later = body.replace("09:00:00Z", "09:00:01Z");
    assert_eq!(running.personio(Some(TOKEN), &later).await.status(), 202);
    running.jobs.try_recv().expect("a second job");
}

#[tokio::test]
async fn a_missing_or_wrong_personio_token_is_refused_before_the_body_is_read() {
    let mut running = start(8).await;
    let body = personio_event("person.updated", json!({"id": "3001"}));
    let wrong = format!("{TOKEN}x");
    let hmac_secret = format!("Bearer {SECRET}");
    let cases = [
        ("missing", None),
        ("wrong", Some(wrong.as_str())),
        (
            "bare token without Bearer",
            Some(TOKEN.trim_start_matches("Bearer ")),
        ),
        ("another object's secret", Some(hmac_secret.as_str())),
    ];
    for (what, token) in cases {
        let response = running.personio(token, &body).await;
        assert_eq!(response.status(), 401, "{what}");
        let text = response.text().await.expect("a body");
        assert!(!text.contains("personio-token"), "{what}: {text}");
    }
    // Not even a malformed body is looked at without the token.
    assert_eq!(running.personio(None, "{not json").await.status(), 401);
    assert_eq!(
        running.personio(Some(TOKEN), "{not json").await.status(),
        400
    );
    assert!(running.jobs.try_recv().is_err(), "nothing was queued");
    assert_eq!(
        running.book.last_accepted("team", "people"),
        None,
        "refused deliveries are not accepted ones"
    );
    // A HollyHR-signed delivery to the Personio object is refused as well.
    let signed = running
        .deliver(
            PERSONIO,
            "evt_1",
            &body,
            SECRET,
            Variant::Guide,
            running.now(),
        )
        .await;
    assert_eq!(signed.status(), 401);
}

#[tokio::test]
async fn the_previous_personio_token_works_until_its_overlap_ends() {
    let mut running = start(8).await;
    let event = |person: &str| personio_event("person.updated", json!({"id": person}));
    assert_eq!(
        running
            .personio(Some(OLD_TOKEN), &event("3001"))
            .await
            .status(),
        202
    );
    running.jobs.try_recv().expect("a job");
    running.clock.store(START + 600, Ordering::SeqCst);
    assert_eq!(
        running
            .personio(Some(OLD_TOKEN), &event("3002"))
            .await
            .status(),
        401,
        "refused once the overlap ended"
    );
    assert_eq!(
        running.personio(Some(TOKEN), &event("3002")).await.status(),
        202
    );
}

#[tokio::test]
async fn a_ping_is_acknowledged_and_a_deleted_person_is_still_a_person_job() {
    let mut running = start(8).await;
    let ping = running
        .personio(
            Some(TOKEN),
            &personio_event("ping", json!({"id": "webhook-1"})),
        )
        .await;
    assert_eq!(ping.status(), 200);
    assert!(running.jobs.try_recv().is_err(), "a ping queues nothing");
    let deleted = running
        .personio(
            Some(TOKEN),
            &personio_event("person.deleted", json!({"id": "3009"})),
        )
        .await;
    assert_eq!(deleted.status(), 202);
    assert_eq!(
        running.jobs.try_recv().expect("a job").subject,
        Subject::Person("3009".into())
    );
    let no_person = running
        .personio(
            Some(TOKEN),
            &personio_event("employment.updated", json!({"id": "e-1"})),
        )
        .await;
    assert_eq!(no_person.status(), 200);
    assert!(running.jobs.try_recv().is_err());
}

#[test]
fn the_token_check_accepts_exactly_the_current_and_the_unexpired_previous_token() {
    let now = Timestamp::from_second(START).expect("a time");
    let tokens = HeldCredentials {
        current: SecretString::from(TOKEN),
        previous: Some((SecretString::from(OLD_TOKEN), now)),
    };
    assert!(personio::authorized(Some(TOKEN.as_bytes()), &tokens, now));
    assert!(
        !personio::authorized(Some(OLD_TOKEN.as_bytes()), &tokens, now),
        "the previous token expires at its instant"
    );
    let before = now - jiff::SignedDuration::from_secs(1);
    assert!(personio::authorized(
        Some(OLD_TOKEN.as_bytes()),
        &tokens,
        before
    ));
    for refused in [
        "",
        "Bearer",
        &TOKEN[..TOKEN.len() - 1],
        &format!("{TOKEN} "),
    ] {
        assert!(
            !personio::authorized(Some(refused.as_bytes()), &tokens, before),
            "{refused:?}"
        );
    }
    assert!(!personio::authorized(None, &tokens, before));
    assert!(personio::same_token(TOKEN, TOKEN) && !personio::same_token(TOKEN, OLD_TOKEN));
}

#[test]
fn the_dedupe_key_covers_company_event_time_and_payload() {
    let event =
        |company: &str, name: &str, at: &str, id: &str| crate::source::personio::model::Event {
            company_id: company.into(),
            event_name: name.into(),
            occurred_at: at.parse().expect("a time"),
            payload: json!({"id": id}),
            meta: None,
        };
    let base = personio::event_key(&event("1", "person.updated", "2026-06-18T09:00:00Z", "7"));
    assert_eq!(base.len(), 32);
    assert_eq!(
        base,
        personio::event_key(&event("1", "person.updated", "2026-06-18T09:00:00Z", "7"))
    );
    for other in [
        event("2", "person.updated", "2026-06-18T09:00:00Z", "7"),
        event("1", "person.created", "2026-06-18T09:00:00Z", "7"),
        event("1", "person.updated", "2026-06-18T09:00:01Z", "7"),
        event("1", "person.updated", "2026-06-18T09:00:00Z", "8"),
    ] {
        assert_ne!(base, personio::event_key(&other));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn header_and_signature_parsing_never_panics(
        timestamp in ".{0,40}", signature_header in ".{0,200}", id in ".{0,60}", body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = signature::parse_timestamp(&timestamp);
        let _ = signature::parse_signature_header(&signature_header);
        let headers = SignedHeaders {
            event_id: Some(&id),
            timestamp: Some(&timestamp),
            signature: Some(&signature_header),
            sdk_signature: None,
        };
        let now = Timestamp::from_second(START).expect("a time");
        let result = signature::verify(&headers, &body, &[SECRET.as_bytes()], now, signature::DEFAULT_TOLERANCE);
        prop_assert!(result.is_err(), "random input never verifies");
        let mut with_id = HeaderMap::new();
        with_id.insert(signature::HEADER_ID, "evt_1".parse().expect("a header value"));
        let _ = crate::webhook::Deliveries::read(&crate::source::hollyhr::flavour::receive::Hmac, &with_id, &body);
    }

    /// Fuzz target: Personio's side, an `Authorization` header and any event body.
    #[test]
    fn personio_token_and_event_parsing_never_panics(
        authorization in proptest::collection::vec(any::<u8>(), 0..80),
        body in crate::fuzz::answers(
            br#"{"id":"evt_1","type":"person.updated","created_at":"2026-06-18T09:00:00Z","data":{"id":"7"}}"#.to_vec()
        ),
    ) {
        let tokens = HeldCredentials {
            current: SecretString::from("personio-webhook-token"),
            previous: None,
        };
        let now = Timestamp::from_second(START).expect("a time");
        prop_assert!(!personio::authorized(Some(&authorization), &tokens, now));
        let _ = personio::same_token(&String::from_utf8_lossy(&authorization), "held");
        if let Ok(event) = serde_json::from_slice::<crate::source::personio::model::Event>(&body) {
            let _ = personio::event_key(&event);
        }
    }
}

#[tokio::test]
async fn a_receiver_still_reading_its_secrets_asks_for_a_retry_instead_of_a_final_404() {
    let running = start_loading(8).await;
    let body = r#"{"type":"person.updated","data":{"id":"p1"}}"#;
    let now = Timestamp::from_second(START).expect("a time");
    let deliver = || {
        running.deliver(
            "/hooks/team/other",
            "evt_1",
            body,
            SECRET,
            Variant::Guide,
            now,
        )
    };
    // Just started: an object it does not know may only not be loaded yet.
    let starting = deliver().await;
    assert_eq!(starting.status(), 503);
    assert!(starting.headers().contains_key("retry-after"));
    // Every Secret listed: unknown is unknown.
    running.book.set_loaded();
    assert_eq!(deliver().await.status(), 404);
}

/// The Secret watch keeps the book: an owned Secret with a credential sets it, one without (or
/// its deletion) removes it, other Secrets change nothing, and the first full listing marks the
/// book loaded.
#[test]
fn the_book_follows_the_owned_secret() {
    use kube::runtime::watcher::Event;
    let secret = |owned: bool, current: Option<&str>| -> k8s_openapi::api::core::v1::Secret {
        let labels = if owned {
            json!({ signing::LABEL: "true", signing::OWNER_LABEL: "acme" })
        } else {
            json!({})
        };
        let data = current.map_or(
            json!({}),
            |value| json!({ "current": k8s_openapi::ByteString(value.as_bytes().to_vec()) }),
        );
        serde_json::from_value(json!({
            "metadata": { "name": "acme-webhook-signing", "namespace": "team", "labels": labels },
            "data": data,
        }))
        .expect("a Secret")
    };
    let book = SecretBook::default();
    book.observe(&Event::Apply(secret(false, Some("whsec_other"))));
    assert!(!book.contains("team", "acme"), "not an owned Secret");
    book.observe(&Event::Apply(secret(true, Some("whsec_abcd"))));
    assert!(book.holds("team", "acme", &SecretString::from("whsec_abcd")));
    assert!(!book.holds("team", "acme", &SecretString::from("whsec_abce")));
    book.observe(&Event::Apply(secret(true, None)));
    assert!(!book.contains("team", "acme"), "no credential held");
    book.observe(&Event::Apply(secret(true, Some("whsec_abcd"))));
    book.observe(&Event::Delete(secret(true, Some("whsec_abcd"))));
    assert!(!book.contains("team", "acme"), "deleted");
    assert!(!book.is_loaded());
    book.observe(&Event::InitDone);
    assert!(book.is_loaded());
}

/// Every answer says its outcome, and names its object only when the receiver knows it: a path
/// nobody registered never becomes a metric label (a client cannot grow the series).
#[tokio::test]
async fn answers_name_their_object_only_when_the_receiver_knows_it() {
    let running = start(8).await;
    let body = event("evt_known_1", "person.updated", "per_1");
    assert_eq!(running.send("evt_known_1", &body).await.status(), 202);
    assert_eq!(running.send("evt_known_1", &body).await.status(), 200);
    let forged = running
        .deliver(
            "/hooks/team/acme",
            "evt_forged_1",
            &body,
            "whsec_wrong_0123456789abcdef",
            Variant::Guide,
            running.now(),
        )
        .await;
    assert_eq!(forged.status(), 401);
    let unknown = running
        .deliver(
            "/hooks/made-up/name-42",
            "evt_unknown_1",
            &body,
            SECRET,
            Variant::Guide,
            running.now(),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    let not_json = running
        .http
        .post(format!("{}/hooks/team/acme", running.url))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("sent");
    assert_eq!(not_json.status(), 415);
    let too_large = running
        .http
        .post(format!("{}/hooks/team/acme", running.url))
        .header("content-type", "application/json")
        .body(vec![b' '; BODY_LIMIT + 1])
        .send()
        .await
        .expect("sent");
    assert_eq!(too_large.status(), 413);
    assert_eq!(
        running
            .http
            .get(format!("{}{HEALTH_PATH}", running.url))
            .send()
            .await
            .expect("sent")
            .status(),
        200
    );
    let acme = Some(("team".to_owned(), "acme".to_owned()));
    let answers = running.answers.lock().expect("unpoisoned").clone();
    assert_eq!(
        answers,
        vec![
            Answered {
                outcome: Outcome::Accepted,
                object: acme.clone()
            },
            Answered {
                outcome: Outcome::Duplicate,
                object: acme.clone()
            },
            Answered {
                outcome: Outcome::BadSignature,
                object: acme
            },
            Answered {
                outcome: Outcome::UnknownObject,
                object: None
            },
            Answered {
                outcome: Outcome::UnsupportedMediaType,
                object: None
            },
            Answered {
                outcome: Outcome::Rejected,
                object: None
            },
        ],
        "the health probe is no delivery"
    );
}
