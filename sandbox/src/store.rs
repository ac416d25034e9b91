//! The sandbox's state and every operation on it. Synchronous and clock-free: each operation takes
//! `now`, so the HTTP layer (`api.rs`) stays a thin translation and the rules are testable alone.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

use super::core::faults::faults_object;
use super::core::sandbox::{self, Setup, Tenant};
use super::error::{ApiError, ApiResult};
use super::{SandboxConfig, SignatureVariant, ids, seed};

mod deliveries;
mod people;
mod webhooks;

pub use deliveries::parse_date;
use deliveries::{dedup_events, last_four};
pub use people::display_name;
use peoplesync::source::hollyhr::model::*;

/// Terminal deliveries are kept this long (API.md §7.8).
const RETENTION: SignedDuration = SignedDuration::from_hours(24 * 30);
/// Rotation overlap (Decision 2).
pub const ROTATION_OVERLAP: SignedDuration = SignedDuration::from_hours(24);
/// Auto-disable threshold (Decision 4).
pub const AUTO_DISABLE_AFTER: usize = 10;
/// Idempotency keys are remembered this long (the contract leaves it open).
const IDEMPOTENCY_RETENTION: SignedDuration = SignedDuration::from_hours(24);
/// Server-side snapshots kept for `sort=updated_at_desc` scans.
const MAX_SNAPSHOTS: usize = 256;

/// The HollyHR sandbox: the shared core around this tenant [`State`].
pub type Sandbox = sandbox::Sandbox<State>;
pub use super::core::clock::today;
pub use super::core::controls::LogEntry;

/// What the HollyHR sandbox keeps outside the tenant: the `X-Request-Id` sequence.
pub struct RequestIds {
    seq: AtomicU64,
    salt: u64,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub updated_since_exclusive: bool,
    #[serde(with = "variant_serde")]
    pub signature_variant: SignatureVariant,
    /// `GET /people` answers as if the tenant had nobody (for the deprovision guard's tests).
    pub empty_tenant: bool,
}

mod variant_serde {
    use super::SignatureVariant;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &SignatureVariant, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            SignatureVariant::Guide => "guide",
            SignatureVariant::Sdk => "sdk",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignatureVariant, D::Error> {
        match String::deserialize(d)?.as_str() {
            "guide" => Ok(SignatureVariant::Guide),
            "sdk" => Ok(SignatureVariant::Sdk),
            other => Err(serde::de::Error::custom(format!(
                "unknown signature variant {other:?} (guide or sdk)"
            ))),
        }
    }
}

faults_object! {
    /// `PUT /_sandbox/faults`: what `/api/v1` requests are answered with instead.
    pub struct Faults {}
}

pub struct PersonRecord {
    pub person: Person,
    pub version: u64,
    pub employment_version: u64,
    pub team: Option<String>,
}

pub struct WebhookRecord {
    pub webhook: Webhook,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub version: u64,
}

pub struct DeliveryRecord {
    pub summary: DeliverySummary,
    pub attempts: Vec<DeliveryAttempt>,
    pub body: Bytes,
    /// Attempts since the delivery was created or last redelivered (each round has a budget).
    pub round_attempts: u32,
    pub in_flight: bool,
    /// The exact headers `/test` returned, used for that delivery's first attempt.
    pub prepared_headers: Option<BTreeMap<String, String>>,
}

/// A stored response for `Idempotency-Key` replay.
#[derive(Clone)]
pub struct StoredResponse {
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub stored_at: Timestamp,
    /// A stored error is replayed as the same error (rendered with the new request's id).
    pub error: Option<ApiError>,
}

pub struct State {
    pub people: Vec<PersonRecord>,
    by_id: HashMap<String, usize>,
    pub org_units: Vec<OrgUnit>,
    pub work_places: Vec<LabelRef>,
    pub work_types: Vec<LabelRef>,
    pub working_patterns: Vec<LabelRef>,
    pub webhooks: Vec<WebhookRecord>,
    pub deliveries: Vec<DeliveryRecord>,
    idempotency: HashMap<(String, String), StoredResponse>,
    snapshots: HashMap<u64, std::sync::Arc<Vec<usize>>>,
    snapshot_order: VecDeque<u64>,
    next_snapshot: u64,
    next_serial: u64,
    next_staff: usize,
    rng: StdRng,
}

/// One delivery attempt the worker is about to make.
pub struct PendingAttempt {
    pub delivery_id: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What an attempt produced.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    Status(u16),
    Network(String),
}

pub fn etags(kind: char, id: &str, version: u64) -> (String, String) {
    (
        format!("\"{kind}{version}-{id}\""),
        format!("\"hrr-{kind}-{id}-{version}\""),
    )
}

impl Tenant for State {
    const NAME: &'static str = "sandbox";
    type Config = SandboxConfig;
    type Settings = Settings;
    type Faults = Faults;
    type Vendor = RequestIds;

    fn seeded(people: usize, seed: u64, now: Timestamp) -> Self {
        let tenant = seed::generate(people, seed, now);
        let by_id = tenant
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        Self {
            next_staff: tenant.people.len() + 1,
            people: tenant
                .people
                .into_iter()
                .zip(tenant.teams)
                .map(|(person, team)| PersonRecord {
                    person,
                    version: 1,
                    employment_version: 1,
                    team,
                })
                .collect(),
            by_id,
            org_units: tenant.org_units,
            work_places: tenant.work_places,
            work_types: tenant.work_types,
            working_patterns: tenant.working_patterns,
            webhooks: Vec::new(),
            deliveries: Vec::new(),
            idempotency: HashMap::new(),
            snapshots: HashMap::new(),
            snapshot_order: VecDeque::new(),
            next_snapshot: 1,
            next_serial: 1,
            rng: tenant.rng,
        }
    }

    fn setup(config: &SandboxConfig) -> Setup<Self> {
        Setup {
            people: config.people,
            seed: config.seed,
            rate_limit_per_minute: config.rate_limit_per_minute,
            delivery_timeout: config.delivery_timeout,
            settings: Settings {
                updated_since_exclusive: config.updated_since_exclusive,
                signature_variant: config.signature_variant,
                empty_tenant: false,
            },
            vendor: RequestIds {
                seq: AtomicU64::new(1),
                salt: rand::random::<u32>().into(),
            },
        }
    }
}

impl Sandbox {
    pub fn next_request_id(&self) -> String {
        let ids = &self.vendor;
        ids::request_id(ids.seq.fetch_add(1, Ordering::Relaxed), ids.salt)
    }
}

/// `GET /people` parameters after validation.
#[derive(Debug, Clone, Default)]
pub struct PeopleQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub updated_since: Option<Timestamp>,
    pub sort_desc: bool,
    pub search: Option<String>,
}

/// `GET /webhooks/{id}/deliveries` parameters after validation.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<EventType>,
    pub created_since: Option<Timestamp>,
    pub created_until: Option<Timestamp>,
}

fn hash_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..8])
}

fn encode_cursor(text: &str) -> String {
    hex::encode(text.as_bytes())
}

fn decode_cursor(cursor: &str) -> ApiResult<String> {
    hex::decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::invalid_field("cursor", "is not a cursor this API issued"))
}

impl State {
    fn serial(&mut self) -> u64 {
        let n = self.next_serial;
        self.next_serial += 1;
        n
    }

    // -- idempotency ----------------------------------------------------------------------------

    /// `Some(stored)` to replay, `Err` on a key reused for a different request.
    pub fn idempotency_lookup(
        &mut self,
        key_id: &str,
        key: &str,
        fingerprint: [u8; 32],
        now: Timestamp,
    ) -> ApiResult<Option<StoredResponse>> {
        self.idempotency
            .retain(|_, stored| now.duration_since(stored.stored_at) < IDEMPOTENCY_RETENTION);
        match self.idempotency.get(&(key_id.to_owned(), key.to_owned())) {
            Some(stored) if stored.fingerprint == fingerprint => Ok(Some(stored.clone())),
            Some(_) => Err(ApiError::idempotency_conflict()),
            None => Ok(None),
        }
    }

    pub fn idempotency_store(&mut self, key_id: &str, key: &str, response: StoredResponse) {
        self.idempotency
            .insert((key_id.to_owned(), key.to_owned()), response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::test_now as now;

    #[test]
    fn seeding_is_deterministic_and_ids_are_unique() {
        let a = State::seeded(300, 7, now());
        let b = State::seeded(300, 7, now());
        let ids_a: Vec<&str> = a.people.iter().map(|r| r.person.id.as_str()).collect();
        let ids_b: Vec<&str> = b.people.iter().map(|r| r.person.id.as_str()).collect();
        assert_eq!(ids_a, ids_b);
        let unique: std::collections::HashSet<_> = ids_a.iter().collect();
        assert_eq!(unique.len(), 300);
        let emails: std::collections::HashSet<_> = a
            .people
            .iter()
            .map(|r| r.person.work_email.clone())
            .collect();
        assert_eq!(emails.len(), 300, "work emails are unique");
        let today = today(now());
        let leavers = a
            .people
            .iter()
            .filter(|r| r.person.end_date.is_some_and(|e| e < today))
            .count();
        let future = a
            .people
            .iter()
            .filter(|r| r.person.start_date.is_some_and(|s| s > today))
            .count();
        assert!(
            leavers > 0 && future > 0,
            "leavers {leavers}, future starters {future}"
        );
        assert!(
            a.people.iter().skip(1).all(|r| r.person.manager.is_some()),
            "everyone but the CEO has a manager"
        );
    }

    #[test]
    fn cursor_listing_neither_skips_nor_repeats_under_writes() {
        for sort_desc in [false, true] {
            let mut state = State::seeded(250, 1, now());
            let mut seen = Vec::new();
            let mut query = PeopleQuery {
                limit: 20,
                sort_desc,
                ..Default::default()
            };
            let mut tick = now();
            loop {
                let (page, pagination) = state.list_people(&query, false, false).expect("page");
                seen.extend(page.iter().map(|&i| state.people[i].person.id.clone()));
                // A write between pages: the last person of the tenant and one already seen.
                tick += SignedDuration::from_secs(1);
                let last = state.people.len() - 1;
                state.touch_person(last, tick, None);
                state.touch_person(page[0], tick, None);
                if !pagination.has_more {
                    break;
                }
                query.cursor = pagination.next_cursor;
            }
            let unique: std::collections::HashSet<_> = seen.iter().collect();
            assert_eq!(
                unique.len(),
                seen.len(),
                "no repeats (sort_desc={sort_desc})"
            );
            assert_eq!(seen.len(), 250, "no skips (sort_desc={sort_desc})");
        }
    }

    #[test]
    fn updated_since_is_inclusive_unless_switched() {
        let mut state = State::seeded(50, 3, now());
        let at = now() + SignedDuration::from_secs(10);
        state.touch_person(5, at, None);
        state.touch_person(6, at, None);
        let query = PeopleQuery {
            limit: 100,
            updated_since: Some(at),
            ..Default::default()
        };
        assert_eq!(
            state.list_people(&query, false, false).expect("page").0,
            vec![5, 6]
        );
        assert!(
            state
                .list_people(&query, true, false)
                .expect("page")
                .0
                .is_empty()
        );
    }

    #[test]
    fn ten_terminal_failures_disable_the_webhook_and_health_follows() {
        let mut state = State::seeded(5, 1, now());
        state
            .create_webhook(
                CreateWebhookRequest {
                    name: "w".into(),
                    url: "https://hooks.example.com/x".into(),
                    subscribed_events: vec![EventType::PersonUpdated],
                },
                now(),
            )
            .expect("created");
        assert_eq!(state.health(0, now()).health_status, HealthStatus::Unknown);
        for i in 0..10 {
            state.touch_person(i % 5, now(), Some(EventType::PersonUpdated));
            let due = state.take_due(now(), SignatureVariant::Guide, 100);
            assert_eq!(due.len(), 1);
            let health = state.health(0, now());
            assert_eq!(
                health.health_status,
                if i == 0 {
                    HealthStatus::Recovering
                } else {
                    HealthStatus::Failing
                }
            );
            state.record_attempt(
                &due[0].delivery_id,
                AttemptOutcome::Status(400),
                1,
                &[],
                now(),
            );
        }
        let health = state.health(0, now());
        assert_eq!(health.endpoint_status, WebhookStatus::Disabled);
        assert_eq!(health.health_status, HealthStatus::Inactive);
        assert_eq!(health.recommended_action, RecommendedAction::EnableEndpoint);
        assert_eq!(health.delivery_counts.failed, 10);
        assert_eq!(
            state.emit(EventType::PersonUpdated, "x", now()),
            0,
            "disabled endpoints get nothing"
        );
    }

    #[test]
    fn retryable_failures_follow_the_schedule_then_fail() {
        let mut state = State::seeded(2, 1, now());
        state
            .create_webhook(
                CreateWebhookRequest {
                    name: "w".into(),
                    url: "https://hooks.example.com/x".into(),
                    subscribed_events: vec![EventType::PersonUpdated],
                },
                now(),
            )
            .expect("created");
        state.touch_person(0, now(), Some(EventType::PersonUpdated));
        let schedule = [std::time::Duration::from_secs(30)];
        let due = state.take_due(now(), SignatureVariant::Guide, 10);
        state.record_attempt(
            &due[0].delivery_id,
            AttemptOutcome::Status(503),
            5,
            &schedule,
            now(),
        );
        assert_eq!(
            state.deliveries[0].summary.status,
            DeliveryStatus::RetryScheduled
        );
        assert!(
            state
                .take_due(now(), SignatureVariant::Guide, 10)
                .is_empty(),
            "not due yet"
        );
        let later = now() + SignedDuration::from_secs(30);
        let due = state.take_due(later, SignatureVariant::Guide, 10);
        state.record_attempt(
            &due[0].delivery_id,
            AttemptOutcome::Network("refused".into()),
            5,
            &schedule,
            later,
        );
        let summary = &state.deliveries[0].summary;
        assert_eq!(summary.status, DeliveryStatus::Failed);
        assert_eq!(summary.attempt_count, 2);
        assert_eq!(summary.last_error_class, Some(ErrorClass::Network));
    }

    #[test]
    fn rotation_signs_with_both_secrets_until_the_overlap_ends() {
        let mut state = State::seeded(1, 1, now());
        let created = state
            .create_webhook(
                CreateWebhookRequest {
                    name: "w".into(),
                    url: "https://hooks.example.com/x".into(),
                    subscribed_events: vec![EventType::PersonUpdated],
                },
                now(),
            )
            .expect("created");
        let old = created.signing_secret.expect("shown once");
        let rotated = state.rotate_secret(0, now());
        let new = rotated.signing_secret.expect("shown once");
        assert_eq!(rotated.webhook.secret_last_four, new[new.len() - 4..]);
        assert_eq!(state.signing_secrets(0, now()), vec![new.clone(), old]);
        let after = now() + ROTATION_OVERLAP;
        assert_eq!(state.signing_secrets(0, after), vec![new]);
    }

    #[test]
    fn dates_must_be_real_calendar_days() {
        assert!(parse_date("d", "2026-02-28").is_ok());
        assert!(parse_date("d", "2026-02-30").is_err());
        assert!(parse_date("d", "2026-2-3").is_err());
        assert!(parse_date("d", "2026-02-03T00:00:00Z").is_err());
    }
}
