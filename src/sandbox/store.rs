//! The sandbox's state and every operation on it. Synchronous and clock-free: each operation takes
//! `now`, so the HTTP layer (`api.rs`) stays a thin translation and the rules are testable alone.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::clock::Clock;
use super::error::{ApiError, ApiResult};
use super::ratelimit::RateLimiter;
use super::{SandboxConfig, SignatureVariant, ids, seed};
use crate::source::hollyhr::model::*;

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
/// Request-log entries kept (oldest dropped first).
const MAX_LOG: usize = 200_000;

pub struct Sandbox {
    pub config: SandboxConfig,
    pub clock: Clock,
    pub limiter: RateLimiter,
    pub state: Mutex<State>,
    pub controls: Mutex<Controls>,
    /// Wakes the delivery worker when a delivery becomes due.
    pub wake: Notify,
    request_seq: AtomicU64,
    request_salt: u64,
}

/// Test controls: settings, faults and the request log.
pub struct Controls {
    pub settings: Settings,
    pub faults: Faults,
    pub log: VecDeque<LogEntry>,
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

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of API requests answered with `error_status` (0.0–1.0).
    pub error_rate: f64,
    pub error_status: u16,
    /// The next N API requests are answered with `error_status`.
    pub fail_next: u32,
    /// The next N API requests are answered 429 with `Retry-After: retry_after_seconds`.
    pub rate_limit_burst: u32,
    pub retry_after_seconds: u64,
    /// Added to every API request.
    pub latency_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 503,
            fail_next: 0,
            rate_limit_burst: 0,
            retry_after_seconds: 1,
            latency_ms: 0,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    pub method: String,
    /// The contract's path template, e.g. `/people/{personId}`; the raw path when none matches.
    pub route: String,
    pub path: String,
    pub status: u16,
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

pub fn today(now: Timestamp) -> Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let clock = Clock::default();
        let state = State::seeded(config.people, config.seed, clock.now());
        let settings = Settings {
            updated_since_exclusive: config.updated_since_exclusive,
            signature_variant: config.signature_variant,
            empty_tenant: false,
        };
        Self {
            limiter: RateLimiter::new(config.rate_limit_per_minute),
            clock,
            state: Mutex::new(state),
            controls: Mutex::new(Controls {
                settings,
                faults: Faults::default(),
                log: VecDeque::new(),
            }),
            wake: Notify::new(),
            request_seq: AtomicU64::new(1),
            request_salt: rand::random::<u32>().into(),
            config,
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("sandbox state lock is never poisoned")
    }

    pub fn controls(&self) -> std::sync::MutexGuard<'_, Controls> {
        self.controls
            .lock()
            .expect("sandbox controls lock is never poisoned")
    }

    pub fn next_request_id(&self) -> String {
        ids::request_id(
            self.request_seq.fetch_add(1, Ordering::Relaxed),
            self.request_salt,
        )
    }

    pub fn settings(&self) -> Settings {
        self.controls().settings
    }

    pub fn log(&self, entry: LogEntry) {
        let mut controls = self.controls();
        if controls.log.len() >= MAX_LOG {
            controls.log.pop_front();
        }
        controls.log.push_back(entry);
    }

    /// Reseeds the tenant and forgets webhooks, deliveries, keys, faults and the log.
    pub fn reset(&self, people: usize, seed: u64) {
        self.clock.reset();
        *self.state() = State::seeded(people, seed, self.clock.now());
        let mut controls = self.controls();
        controls.faults = Faults::default();
        controls.log.clear();
        controls.settings = Settings {
            updated_since_exclusive: self.config.updated_since_exclusive,
            signature_variant: self.config.signature_variant,
            empty_tenant: false,
        };
        drop(controls);
        self.limiter.reset();
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
    pub fn seeded(people: usize, seed: u64, now: Timestamp) -> Self {
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

    // -- people ---------------------------------------------------------------------------------

    pub fn person_index(&self, id: &str) -> ApiResult<usize> {
        if !ids::is_person_id(id) {
            return Err(ApiError::not_found("person"));
        }
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| ApiError::not_found("person"))
    }

    pub fn person(&self, id: &str) -> ApiResult<&PersonRecord> {
        Ok(&self.people[self.person_index(id)?])
    }

    /// One page of people and its pagination.
    pub fn list_people(
        &mut self,
        query: &PeopleQuery,
        exclusive: bool,
        empty_tenant: bool,
    ) -> ApiResult<(Vec<usize>, CursorPagination)> {
        let filter_hash = hash_hex(&[
            query
                .updated_since
                .map(|t| t.to_string())
                .unwrap_or_default()
                .as_bytes(),
            &[u8::from(query.sort_desc), u8::from(exclusive)],
            query.search.as_deref().unwrap_or("").as_bytes(),
        ]);
        let search = query.search.as_ref().map(|s| s.to_lowercase());
        let matches = |record: &PersonRecord| -> bool {
            if empty_tenant {
                return false;
            }
            let p = &record.person;
            if let Some(since) = query.updated_since {
                let keep = if exclusive {
                    p.updated_at > since
                } else {
                    p.updated_at >= since
                };
                if !keep {
                    return false;
                }
            }
            if let Some(needle) = &search {
                let hit = p.display_name.to_lowercase().contains(needle)
                    || p.work_email
                        .as_deref()
                        .is_some_and(|e| e.to_lowercase().contains(needle))
                    || p.staff_id
                        .as_deref()
                        .is_some_and(|s| s.to_lowercase().contains(needle));
                if !hit {
                    return false;
                }
            }
            true
        };
        let limit = query.limit;
        if query.sort_desc {
            // `updated_at` moves on every write, so a keyset cursor over it would skip or repeat
            // people changed between pages. The first page pins the ordered set of matching
            // people; later pages walk that snapshot and serve each person's current state.
            let (snapshot_id, offset, order) = match &query.cursor {
                Some(cursor) => {
                    let text = decode_cursor(cursor)?;
                    let mut parts = text.split('|');
                    let (Some("s1"), Some(hash), Some(id), Some(offset), None) = (
                        parts.next(),
                        parts.next(),
                        parts.next(),
                        parts.next(),
                        parts.next(),
                    ) else {
                        return Err(ApiError::invalid_field(
                            "cursor",
                            "is not a cursor this API issued",
                        ));
                    };
                    if hash != filter_hash {
                        return Err(ApiError::invalid_field(
                            "cursor",
                            "belongs to a query with different filters",
                        ));
                    }
                    let id: u64 = id.parse().map_err(|_| {
                        ApiError::invalid_field("cursor", "is not a cursor this API issued")
                    })?;
                    let offset: usize = offset.parse().map_err(|_| {
                        ApiError::invalid_field("cursor", "is not a cursor this API issued")
                    })?;
                    let order = self.snapshots.get(&id).cloned().ok_or_else(|| {
                        ApiError::invalid_field("cursor", "has expired; start the listing again")
                    })?;
                    (id, offset, order)
                }
                None => {
                    let mut order: Vec<usize> = (0..self.people.len())
                        .filter(|&i| matches(&self.people[i]))
                        .collect();
                    order.sort_by(|&a, &b| {
                        self.people[b]
                            .person
                            .updated_at
                            .cmp(&self.people[a].person.updated_at)
                            .then(b.cmp(&a))
                    });
                    let id = self.next_snapshot;
                    self.next_snapshot += 1;
                    let order = std::sync::Arc::new(order);
                    if order.len() > limit {
                        self.snapshots.insert(id, order.clone());
                        self.snapshot_order.push_back(id);
                        while self.snapshot_order.len() > MAX_SNAPSHOTS {
                            if let Some(old) = self.snapshot_order.pop_front() {
                                self.snapshots.remove(&old);
                            }
                        }
                    }
                    (id, 0, order)
                }
            };
            let end = (offset + limit).min(order.len());
            let page: Vec<usize> = order.get(offset..end).unwrap_or_default().to_vec();
            let has_more = end < order.len();
            let next_cursor =
                has_more.then(|| encode_cursor(&format!("s1|{filter_hash}|{snapshot_id}|{end}")));
            return Ok((
                page,
                CursorPagination {
                    next_cursor,
                    has_more,
                    limit: limit as u32,
                },
            ));
        }
        // Default order: creation order, an immutable key, so writes between pages can neither
        // move a person past the cursor nor bring one back; people created mid-scan come last.
        let start = match &query.cursor {
            Some(cursor) => {
                let text = decode_cursor(cursor)?;
                let mut parts = text.split('|');
                let (Some("k1"), Some(hash), Some(position), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "is not a cursor this API issued",
                    ));
                };
                if hash != filter_hash {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "belongs to a query with different filters",
                    ));
                }
                position.parse::<usize>().map_err(|_| {
                    ApiError::invalid_field("cursor", "is not a cursor this API issued")
                })?
            }
            None => 0,
        };
        let mut page = Vec::with_capacity(limit);
        let mut index = start;
        while index < self.people.len() && page.len() < limit {
            if matches(&self.people[index]) {
                page.push(index);
            }
            index += 1;
        }
        let has_more = self.people[index.min(self.people.len())..]
            .iter()
            .any(matches);
        let next_cursor = has_more.then(|| encode_cursor(&format!("k1|{filter_hash}|{index}")));
        Ok((
            page,
            CursorPagination {
                next_cursor,
                has_more,
                limit: limit as u32,
            },
        ))
    }

    fn org_unit_by_id(&self, id: &str) -> Option<&OrgUnit> {
        self.org_units.iter().find(|unit| unit.id == id)
    }

    pub fn org_unit(&self, id: &str) -> ApiResult<&OrgUnit> {
        if !ids::is_encrypted_id("org_unit", id) {
            return Err(ApiError::not_found("org unit"));
        }
        self.org_unit_by_id(id)
            .ok_or_else(|| ApiError::not_found("org unit"))
    }

    fn resolve_label(
        list: &[LabelRef],
        field: &str,
        id: &str,
        prefix: &str,
    ) -> ApiResult<LabelRef> {
        if !ids::is_encrypted_id(prefix, id) {
            return Err(ApiError::invalid_field(
                field,
                "does not match the id pattern",
            ));
        }
        list.iter()
            .find(|item| item.id == id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(field))
    }

    fn resolve_department(&self, id: &str) -> ApiResult<DepartmentRef> {
        if !ids::is_encrypted_id("org_unit", id) {
            return Err(ApiError::invalid_field(
                "department_org_unit_id",
                "does not match the id pattern",
            ));
        }
        self.org_unit_by_id(id)
            .filter(|unit| !unit.is_archived)
            .map(|unit| DepartmentRef {
                id: unit.id.clone(),
                name: unit.name.clone(),
            })
            .ok_or_else(|| ApiError::not_found("department_org_unit_id"))
    }

    fn resolve_manager(&self, id: &str, for_person: Option<&str>) -> ApiResult<PersonRef> {
        if !ids::is_person_id(id) {
            return Err(ApiError::invalid_field(
                "manager_id",
                "does not match the id pattern",
            ));
        }
        if for_person == Some(id) {
            return Err(ApiError::invalid_field(
                "manager_id",
                "a person cannot manage themselves",
            ));
        }
        let record = self
            .by_id
            .get(id)
            .map(|&i| &self.people[i])
            .ok_or_else(|| ApiError::not_found("manager_id"))?;
        Ok(PersonRef {
            id: record.person.id.clone(),
            display_name: record.person.display_name.clone(),
        })
    }

    pub fn create_person(
        &mut self,
        request: CreatePersonRequest,
        now: Timestamp,
    ) -> ApiResult<usize> {
        if let Some(email) = &request.work_email {
            let taken = self.people.iter().any(|record| {
                record
                    .person
                    .work_email
                    .as_deref()
                    .is_some_and(|existing| existing.eq_ignore_ascii_case(email))
            });
            if taken {
                return Err(ApiError::conflict(
                    "a person with this work_email already exists",
                ));
            }
        }
        let department = request
            .department_org_unit_id
            .as_deref()
            .map(|id| self.resolve_department(id))
            .transpose()?;
        let manager = request
            .manager_id
            .as_deref()
            .map(|id| self.resolve_manager(id, None))
            .transpose()?;
        let work_place = request
            .work_place_id
            .as_deref()
            .map(|id| Self::resolve_label(&self.work_places, "work_place_id", id, "wp"))
            .transpose()?;
        let work_type = request
            .work_type_id
            .as_deref()
            .map(|id| Self::resolve_label(&self.work_types, "work_type_id", id, "wt"))
            .transpose()?;
        let start_date = request
            .start_date
            .as_deref()
            .map(|d| parse_date("start_date", d))
            .transpose()?;
        let id = loop {
            let candidate = ids::person_id(self.rng.random::<u64>());
            if !self.by_id.contains_key(&candidate) {
                break candidate;
            }
        };
        let display_name = format!(
            "{} {}",
            request
                .preferred_name
                .as_deref()
                .unwrap_or(&request.first_name),
            request.last_name
        );
        let staff = self.next_staff;
        self.next_staff += 1;
        let person = Person {
            id: id.clone(),
            work_email: request.work_email,
            first_name: Some(request.first_name),
            preferred_name: request.preferred_name,
            last_name: Some(request.last_name),
            display_name,
            staff_id: Some(format!("E{staff:05}")),
            job_title: request.job_title,
            department,
            manager,
            work_place,
            work_type,
            working_pattern: None,
            contracted_weekly_minutes: None,
            full_time_weekly_minutes: None,
            fte: None,
            status: Some("active".into()),
            start_date,
            end_date: None,
            created_at: now,
            updated_at: now,
        };
        let index = self.people.len();
        self.people.push(PersonRecord {
            person,
            version: 1,
            employment_version: 1,
            team: None,
        });
        self.by_id.insert(id.clone(), index);
        self.emit(EventType::PersonCreated, &id, now);
        Ok(index)
    }

    /// Applies a change to a person: bumps its version and `updated_at`, refreshes the
    /// `manager.display_name` its reports show, and emits `event` (UI-style edits pass `None`).
    pub fn touch_person(&mut self, index: usize, now: Timestamp, event: Option<EventType>) {
        let record = &mut self.people[index];
        record.version += 1;
        // `updated_at` strictly increases per person even when the clock is frozen, so a change
        // is always visible to `updated_since`.
        record.person.updated_at = now.max(record.person.updated_at);
        let id = record.person.id.clone();
        let display_name = record.person.display_name.clone();
        for other in &mut self.people {
            if let Some(manager) = other.person.manager.as_mut()
                && manager.id == id
                && manager.display_name != display_name
            {
                manager.display_name.clone_from(&display_name);
            }
        }
        if let Some(event) = event {
            self.emit(event, &id, now);
        }
    }

    pub fn update_person(&mut self, index: usize, request: UpdatePersonRequest, now: Timestamp) {
        let person = &mut self.people[index].person;
        if let Some(first) = request.first_name {
            person.first_name = Some(first);
        }
        if let Some(last) = request.last_name {
            person.last_name = Some(last);
        }
        if let Some(preferred) = request.preferred_name {
            person.preferred_name = preferred;
        }
        person.display_name = format!(
            "{} {}",
            person
                .preferred_name
                .as_deref()
                .or(person.first_name.as_deref())
                .unwrap_or_default(),
            person.last_name.as_deref().unwrap_or_default()
        )
        .trim()
        .to_owned();
        self.touch_person(index, now, Some(EventType::PersonUpdated));
    }

    pub fn update_employment(
        &mut self,
        index: usize,
        request: UpdateEmploymentRequest,
        now: Timestamp,
        event: Option<EventType>,
    ) -> ApiResult<()> {
        let id = self.people[index].person.id.clone();
        let department = match request.department_org_unit_id.as_ref() {
            Some(Some(dept)) => Some(Some(self.resolve_department(dept)?)),
            Some(None) => Some(None),
            None => None,
        };
        let manager = match request.manager_id.as_ref() {
            Some(Some(manager)) => Some(Some(self.resolve_manager(manager, Some(&id))?)),
            Some(None) => Some(None),
            None => None,
        };
        let label =
            |list: &[LabelRef], field: &str, value: &Option<Option<String>>, prefix: &str| {
                match value {
                    Some(Some(id)) => {
                        Self::resolve_label(list, field, id, prefix).map(|l| Some(Some(l)))
                    }
                    Some(None) => Ok(Some(None)),
                    None => Ok(None),
                }
            };
        let work_place = label(
            &self.work_places,
            "work_place_id",
            &request.work_place_id,
            "wp",
        )?;
        let work_type = label(
            &self.work_types,
            "work_type_id",
            &request.work_type_id,
            "wt",
        )?;
        let pattern = label(
            &self.working_patterns,
            "working_pattern_id",
            &request.working_pattern_id,
            "working_pattern",
        )?;
        let start_date = match request.start_date.as_ref() {
            Some(Some(d)) => Some(Some(parse_date("start_date", d)?)),
            Some(None) => Some(None),
            None => None,
        };
        let record = &mut self.people[index];
        let person = &mut record.person;
        if let Some(title) = request.job_title {
            person.job_title = title;
        }
        if let Some(department) = department {
            person.department = department;
        }
        if let Some(manager) = manager {
            person.manager = manager;
        }
        if let Some(place) = work_place {
            person.work_place = place;
        }
        if let Some(kind) = work_type {
            person.work_type = kind;
        }
        if let Some(pattern) = pattern {
            person.working_pattern = pattern;
        }
        if let Some(minutes) = request.contracted_weekly_minutes {
            person.contracted_weekly_minutes = Some(minutes);
            person.fte = person
                .full_time_weekly_minutes
                .map(|full| f64::from(minutes) / f64::from(full.max(1)));
        }
        if let Some(start) = start_date {
            person.start_date = start;
        }
        record.employment_version += 1;
        self.touch_person(index, now, event);
        Ok(())
    }

    pub fn end_person(&mut self, index: usize, end_date: Date, now: Timestamp) -> ApiResult<()> {
        let person = &mut self.people[index].person;
        if person.status.as_deref() == Some("inactive") {
            return Err(ApiError::conflict("the person has already ended"));
        }
        if person.start_date.is_some_and(|start| end_date < start) {
            return Err(ApiError::invalid_field(
                "end_date",
                "is before the person's start_date",
            ));
        }
        person.end_date = Some(end_date);
        person.status = Some("inactive".into());
        self.people[index].employment_version += 1;
        self.touch_person(index, now, Some(EventType::PersonEnded));
        Ok(())
    }

    pub fn reactivate_person(
        &mut self,
        index: usize,
        request: Option<ReactivatePersonRequest>,
        now: Timestamp,
    ) -> ApiResult<()> {
        if self.people[index].person.status.as_deref() != Some("inactive") {
            return Err(ApiError::conflict(
                "only an ended person can be reactivated",
            ));
        }
        if let Some(request) = request {
            let start = parse_date("start_date", &request.start_date)?;
            let employment = UpdateEmploymentRequest {
                job_title: request.job_title,
                department_org_unit_id: request.department_org_unit_id,
                manager_id: request.manager_id,
                work_place_id: request.work_place_id,
                work_type_id: request.work_type_id,
                working_pattern_id: request.working_pattern_id,
                contracted_weekly_minutes: request.contracted_weekly_minutes,
                start_date: None,
            };
            self.update_employment(index, employment, now, None)?;
            self.people[index].person.start_date = Some(start);
        }
        let person = &mut self.people[index].person;
        person.end_date = None;
        person.status = Some("active".into());
        self.people[index].employment_version += 1;
        self.touch_person(index, now, Some(EventType::PersonReactivated));
        Ok(())
    }

    pub fn employment(&self, index: usize) -> Employment {
        let record = &self.people[index];
        let p = &record.person;
        Employment {
            person_id: p.id.clone(),
            timeline_version: record.employment_version,
            job_title: p.job_title.clone(),
            department: p.department.as_ref().map(|d| LabelRef {
                id: d.id.clone(),
                label: d.name.clone(),
            }),
            manager: p.manager.clone(),
            work_place: p.work_place.clone(),
            work_type: p.work_type.clone(),
            working_pattern: p.working_pattern.clone(),
            contracted_weekly_minutes: p.contracted_weekly_minutes,
            full_time_weekly_minutes: p.full_time_weekly_minutes,
            fte: p.fte,
            start_date: p.start_date,
            end_date: p.end_date,
            updated_at: p.updated_at,
        }
    }

    /// Org links derived from the person's department, team and manager.
    pub fn org_links(&self, index: usize, now: Timestamp) -> OrgLinks {
        let record = &self.people[index];
        let p = &record.person;
        let today = today(now);
        let from = p.start_date.unwrap_or_else(|| today_of(p.created_at));
        // effective_to is exclusive: the day after the last working day.
        let to = p.end_date.and_then(|end| end.tomorrow().ok());
        let current = from <= today && to.is_none_or(|to| to > today);
        let leads_people = self
            .people
            .iter()
            .any(|other| other.person.manager.as_ref().is_some_and(|m| m.id == p.id));
        let mut memberships = Vec::new();
        let units = p
            .department
            .iter()
            .map(|d| (d.id.as_str(), true))
            .chain(record.team.iter().map(|t| (t.as_str(), false)));
        for (unit_id, primary) in units {
            let Some(unit) = self.org_unit_by_id(unit_id) else {
                continue;
            };
            memberships.push(Membership {
                id: ids::encrypted_id("org_unit_membership", &format!("{}:{unit_id}", p.id)),
                person_id: p.id.clone(),
                org_unit: MembershipOrgUnit {
                    id: unit.id.clone(),
                    kind: unit.kind,
                    name: unit.name.clone(),
                    code: unit.code.clone(),
                    archived_at: unit.archived_at,
                },
                role: if leads_people && primary {
                    MembershipRole::Manager
                } else {
                    MembershipRole::Member
                },
                is_primary: primary,
                is_current: current,
                effective_from: from,
                effective_to: to,
                source: RecordSource::Manual,
                provider: ProviderRef::default(),
                created_at: p.created_at,
                updated_at: p.updated_at,
            });
        }
        let relationships = p
            .manager
            .iter()
            .map(|manager| Relationship {
                id: ids::encrypted_id(
                    "person_relationship",
                    &format!("{}:line_manager:{}", p.id, manager.id),
                ),
                kind: RelationshipType::LineManager,
                related_person: manager.clone(),
                is_primary: true,
                is_current: current,
                effective_from: from,
                effective_to: to,
                source: RecordSource::Manual,
                provider: ProviderRef::default(),
                created_at: p.created_at,
                updated_at: p.updated_at,
            })
            .collect();
        OrgLinks {
            person_id: p.id.clone(),
            memberships,
            relationships,
        }
    }

    // -- webhooks -------------------------------------------------------------------------------

    pub fn webhook_index(&self, id: &str) -> ApiResult<usize> {
        if !ids::is_encrypted_id("wh", id) {
            return Err(ApiError::not_found("webhook"));
        }
        self.webhooks
            .iter()
            .position(|hook| hook.webhook.id == id)
            .ok_or_else(|| ApiError::not_found("webhook"))
    }

    fn new_secret(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        // Secrets come from the OS generator, not the tenant seed: they must not be predictable.
        let mut rng = rand::rng();
        let body: String = (0..40)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        format!("whsec_{body}")
    }

    pub fn create_webhook(
        &mut self,
        request: CreateWebhookRequest,
        now: Timestamp,
    ) -> ApiResult<WebhookWithSecret> {
        if self
            .webhooks
            .iter()
            .any(|hook| hook.webhook.name == request.name)
        {
            return Err(ApiError::conflict(
                "a webhook with this name already exists",
            ));
        }
        let serial = self.serial();
        let secret = self.new_secret();
        let webhook = Webhook {
            id: ids::encrypted_id("wh", &format!("{serial}:{}", request.name)),
            name: request.name,
            url: request.url,
            status: WebhookStatus::Active,
            subscribed_events: dedup_events(request.subscribed_events),
            secret_last_four: last_four(&secret),
            previous_secret_expires_at: None,
            last_tested_at: None,
            disabled_at: None,
            created_at: now,
            updated_at: now,
        };
        self.webhooks.push(WebhookRecord {
            webhook: webhook.clone(),
            secret: secret.clone(),
            previous_secret: None,
            version: 1,
        });
        Ok(WebhookWithSecret {
            webhook,
            signing_secret: Some(secret),
        })
    }

    pub fn update_webhook(
        &mut self,
        index: usize,
        request: UpdateWebhookRequest,
        now: Timestamp,
    ) -> ApiResult<()> {
        if let Some(name) = &request.name {
            let taken = self
                .webhooks
                .iter()
                .enumerate()
                .any(|(i, hook)| i != index && &hook.webhook.name == name);
            if taken {
                return Err(ApiError::conflict(
                    "a webhook with this name already exists",
                ));
            }
        }
        let record = &mut self.webhooks[index];
        let hook = &mut record.webhook;
        if let Some(name) = request.name {
            hook.name = name;
        }
        if let Some(url) = request.url {
            hook.url = url;
        }
        if let Some(events) = request.subscribed_events {
            hook.subscribed_events = dedup_events(events);
        }
        if let Some(status) = request.status
            && status != hook.status
        {
            hook.disabled_at = (status == WebhookStatus::Disabled).then_some(now);
            hook.status = status;
        }
        hook.updated_at = now;
        record.version += 1;
        Ok(())
    }

    pub fn rotate_secret(&mut self, index: usize, now: Timestamp) -> WebhookWithSecret {
        let secret = self.new_secret();
        let record = &mut self.webhooks[index];
        record.previous_secret = Some(std::mem::replace(&mut record.secret, secret.clone()));
        record.webhook.previous_secret_expires_at = Some(now + ROTATION_OVERLAP);
        record.webhook.secret_last_four = last_four(&secret);
        record.webhook.updated_at = now;
        record.version += 1;
        WebhookWithSecret {
            webhook: record.webhook.clone(),
            signing_secret: Some(secret),
        }
    }

    /// Secrets deliveries are signed with at `now`: current, then previous during the overlap.
    pub fn signing_secrets(&self, index: usize, now: Timestamp) -> Vec<String> {
        let record = &self.webhooks[index];
        let mut secrets = vec![record.secret.clone()];
        if let (Some(previous), Some(expires)) = (
            &record.previous_secret,
            record.webhook.previous_secret_expires_at,
        ) && now < expires
        {
            secrets.push(previous.clone());
        }
        secrets
    }

    // -- events and deliveries ------------------------------------------------------------------

    fn event_body(
        &mut self,
        event: EventType,
        resource_id: &str,
        now: Timestamp,
    ) -> (String, Bytes) {
        let serial = self.serial();
        let event_id = format!(
            "evt_{serial:010}{:06x}",
            self.rng.random::<u32>() & 0xff_ffff
        );
        let body = EventBody {
            id: event_id.clone(),
            kind: event,
            api_version: "v1".into(),
            occurred_at: now,
            data: EventData {
                id: resource_id.to_owned(),
                resource_type: event.resource_type().to_owned(),
            },
        };
        let bytes = serde_json::to_vec(&body).expect("event bodies always serialize");
        (event_id, Bytes::from(bytes))
    }

    fn new_delivery(
        &mut self,
        webhook_index: usize,
        event: EventType,
        event_id: &str,
        resource_id: &str,
        body: Bytes,
        now: Timestamp,
    ) -> usize {
        let serial = self.serial();
        let summary = DeliverySummary {
            id: ids::encrypted_id("whd", &format!("{serial}:{event_id}")),
            webhook_id: self.webhooks[webhook_index].webhook.id.clone(),
            event_id: event_id.to_owned(),
            event_type: event,
            api_version: "v1".into(),
            resource: Some(DeliveryResource {
                kind: event.resource_type().to_owned(),
                id: Some(resource_id.to_owned()),
            }),
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            last_attempt_at: None,
            next_attempt_at: Some(now),
            delivered_at: None,
            last_status_code: None,
            last_error_class: None,
            last_error_message: None,
            created_at: now,
            updated_at: now,
        };
        self.deliveries.push(DeliveryRecord {
            summary,
            attempts: Vec::new(),
            body,
            round_attempts: 0,
            in_flight: false,
            prepared_headers: None,
        });
        self.deliveries.len() - 1
    }

    /// Queues `event` for every active webhook subscribed to it.
    pub fn emit(&mut self, event: EventType, resource_id: &str, now: Timestamp) -> usize {
        let targets: Vec<usize> = self
            .webhooks
            .iter()
            .enumerate()
            .filter(|(_, hook)| {
                hook.webhook.status == WebhookStatus::Active
                    && hook.webhook.subscribed_events.contains(&event)
            })
            .map(|(i, _)| i)
            .collect();
        if targets.is_empty() {
            return 0;
        }
        let (event_id, body) = self.event_body(event, resource_id, now);
        for &target in &targets {
            self.new_delivery(target, event, &event_id, resource_id, body.clone(), now);
        }
        targets.len()
    }

    /// `POST /webhooks/{id}/test`: queues a signed `webhook.test` delivery and returns exactly the
    /// headers and payload it will carry.
    pub fn queue_test(
        &mut self,
        webhook_index: usize,
        variant: SignatureVariant,
        now: Timestamp,
    ) -> ApiResult<TestDelivery> {
        if self.webhooks[webhook_index].webhook.status != WebhookStatus::Active {
            return Err(ApiError::conflict(
                "the webhook is disabled; enable it before testing",
            ));
        }
        let webhook_id = self.webhooks[webhook_index].webhook.id.clone();
        let (event_id, body) = self.event_body(EventType::WebhookTest, &webhook_id, now);
        let index = self.new_delivery(
            webhook_index,
            EventType::WebhookTest,
            &event_id,
            &webhook_id,
            body.clone(),
            now,
        );
        let delivery_id = self.deliveries[index].summary.id.clone();
        let secrets = self.signing_secrets(webhook_index, now);
        let headers: BTreeMap<String, String> = delivery_headers(
            variant,
            &secrets,
            &event_id,
            &delivery_id,
            EventType::WebhookTest,
            now,
            &body,
        )
        .into_iter()
        .collect();
        self.deliveries[index].prepared_headers = Some(headers.clone());
        let hook = &mut self.webhooks[webhook_index];
        hook.webhook.last_tested_at = Some(now);
        hook.webhook.updated_at = now;
        hook.version += 1;
        Ok(TestDelivery {
            event_id,
            delivery_id,
            event_type: EventType::WebhookTest,
            headers,
            payload: serde_json::from_slice(&body).expect("event bodies are JSON"),
            queued_at: now,
        })
    }

    /// Drops terminal deliveries older than the retention window.
    pub fn prune(&mut self, now: Timestamp) {
        self.deliveries.retain(|delivery| {
            let terminal = matches!(
                delivery.summary.status,
                DeliveryStatus::Delivered | DeliveryStatus::Failed
            );
            !(terminal && now.duration_since(delivery.summary.updated_at) >= RETENTION)
        });
    }

    pub fn delivery_index(&self, webhook_id: &str, delivery_id: &str) -> ApiResult<usize> {
        if !ids::is_encrypted_id("whd", delivery_id) {
            return Err(ApiError::not_found("delivery"));
        }
        self.deliveries
            .iter()
            .position(|d| d.summary.id == delivery_id && d.summary.webhook_id == webhook_id)
            .ok_or_else(|| ApiError::not_found("delivery"))
    }

    /// A page of a webhook's deliveries, newest first.
    pub fn list_deliveries(
        &self,
        webhook_id: &str,
        query: &DeliveryQuery,
    ) -> ApiResult<(Vec<DeliverySummary>, CursorPagination)> {
        let filter_hash = hash_hex(&[
            webhook_id.as_bytes(),
            query.status.map(|s| s.as_str()).unwrap_or("").as_bytes(),
            query
                .event_type
                .map(|e| e.as_str())
                .unwrap_or("")
                .as_bytes(),
            query
                .created_since
                .map(|t| t.to_string())
                .unwrap_or_default()
                .as_bytes(),
            query
                .created_until
                .map(|t| t.to_string())
                .unwrap_or_default()
                .as_bytes(),
        ]);
        // Position = how many deliveries (from the newest end of the log) were passed; new
        // deliveries are appended, so a "before this index" cursor is stable under writes.
        let before = match &query.cursor {
            Some(cursor) => {
                let text = decode_cursor(cursor)?;
                let mut parts = text.split('|');
                let (Some("d1"), Some(hash), Some(serial), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "is not a cursor this API issued",
                    ));
                };
                if hash != filter_hash {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "belongs to a query with different filters",
                    ));
                }
                Some(serial.to_owned())
            }
            None => None,
        };
        let matches = |d: &DeliveryRecord| {
            let s = &d.summary;
            s.webhook_id == webhook_id
                && query.status.is_none_or(|status| s.status == status)
                && query.event_type.is_none_or(|event| s.event_type == event)
                && query
                    .created_since
                    .is_none_or(|since| s.created_at >= since)
                && query
                    .created_until
                    .is_none_or(|until| s.created_at <= until)
        };
        let start = match &before {
            Some(id) => self
                .deliveries
                .iter()
                .position(|d| &d.summary.id == id)
                .ok_or_else(|| ApiError::invalid_field("cursor", "has expired; start again"))?,
            None => self.deliveries.len(),
        };
        let mut page = Vec::new();
        let mut last_index = None;
        for index in (0..start).rev() {
            if matches(&self.deliveries[index]) {
                if page.len() == query.limit {
                    break;
                }
                page.push(self.deliveries[index].summary.clone());
                last_index = Some(index);
            }
        }
        let has_more = last_index.is_some_and(|last| self.deliveries[..last].iter().any(matches));
        let next_cursor = has_more
            .then(|| {
                last_index.map(|i| {
                    encode_cursor(&format!(
                        "d1|{filter_hash}|{}",
                        self.deliveries[i].summary.id
                    ))
                })
            })
            .flatten();
        Ok((
            page,
            CursorPagination {
                next_cursor,
                has_more,
                limit: query.limit as u32,
            },
        ))
    }

    pub fn redeliver(&mut self, index: usize, now: Timestamp) -> ApiResult<DeliverySummary> {
        let webhook_index =
            self.webhook_index(&self.deliveries[index].summary.webhook_id.clone())?;
        if self.webhooks[webhook_index].webhook.status != WebhookStatus::Active {
            return Err(ApiError::conflict(
                "the webhook is disabled; enable it before redelivering",
            ));
        }
        let delivery = &mut self.deliveries[index];
        if !matches!(
            delivery.summary.status,
            DeliveryStatus::Failed | DeliveryStatus::RetryScheduled
        ) {
            return Err(ApiError::invalid(
                "only failed or retry_scheduled deliveries can be redelivered",
            ));
        }
        delivery.summary.status = DeliveryStatus::Pending;
        delivery.summary.next_attempt_at = Some(now);
        delivery.summary.updated_at = now;
        delivery.round_attempts = 0;
        delivery.prepared_headers = None;
        Ok(delivery.summary.clone())
    }

    pub fn health(&self, webhook_index: usize, now: Timestamp) -> WebhookHealth {
        let hook = &self.webhooks[webhook_index].webhook;
        let mut counts = DeliveryCounts::default();
        let mut last_delivery_at = None;
        let mut last_success_at = None;
        let mut next_retry_at: Option<Timestamp> = None;
        let mut oldest_pending_at: Option<Timestamp> = None;
        let mut latest_failure: Option<LatestFailure> = None;
        for delivery in self
            .deliveries
            .iter()
            .filter(|d| d.summary.webhook_id == hook.id)
        {
            let s = &delivery.summary;
            counts.total += 1;
            match s.status {
                DeliveryStatus::Pending => counts.pending += 1,
                DeliveryStatus::Delivered => counts.delivered += 1,
                DeliveryStatus::RetryScheduled => counts.retry_scheduled += 1,
                DeliveryStatus::Failed => counts.failed += 1,
            }
            last_delivery_at = last_delivery_at.max(s.last_attempt_at);
            last_success_at = last_success_at.max(s.delivered_at);
            if matches!(
                s.status,
                DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
            ) {
                if s.status == DeliveryStatus::RetryScheduled {
                    next_retry_at = match (next_retry_at, s.next_attempt_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                oldest_pending_at =
                    Some(oldest_pending_at.map_or(s.created_at, |a| a.min(s.created_at)));
            }
            for attempt in delivery
                .attempts
                .iter()
                .filter(|a| a.status != AttemptStatus::Success)
            {
                if latest_failure
                    .as_ref()
                    .is_none_or(|f| attempt.attempted_at >= f.failed_at)
                {
                    latest_failure = Some(LatestFailure {
                        status_code: attempt.status_code,
                        error_class: attempt.error_class,
                        error_message: attempt.error_message.clone(),
                        failed_at: attempt.attempted_at,
                    });
                }
            }
        }
        // Decision 5.
        let health_status = if hook.status == WebhookStatus::Disabled {
            HealthStatus::Inactive
        } else if counts.failed > 0 {
            HealthStatus::Failing
        } else if counts.pending + counts.retry_scheduled > 0 {
            HealthStatus::Recovering
        } else if counts.total == 0 {
            HealthStatus::Unknown
        } else {
            HealthStatus::Healthy
        };
        let recommended_action = match health_status {
            HealthStatus::Failing => RecommendedAction::InspectFailures,
            HealthStatus::Recovering => RecommendedAction::WaitForRetry,
            HealthStatus::Inactive => RecommendedAction::EnableEndpoint,
            HealthStatus::Healthy | HealthStatus::Unknown => RecommendedAction::None,
        };
        WebhookHealth {
            webhook_id: hook.id.clone(),
            endpoint_status: hook.status,
            health_status,
            action_required: matches!(
                health_status,
                HealthStatus::Failing | HealthStatus::Inactive
            ),
            recommended_action,
            checked_at: now,
            delivery_counts: counts,
            last_delivery_at,
            last_success_at,
            last_failure_at: latest_failure.as_ref().map(|f| f.failed_at),
            next_retry_at,
            oldest_pending_at,
            latest_failure,
        }
    }

    /// Marks due deliveries of active webhooks in flight and returns what to send.
    pub fn take_due(
        &mut self,
        now: Timestamp,
        variant: SignatureVariant,
        max: usize,
    ) -> Vec<PendingAttempt> {
        let mut due = Vec::new();
        for index in 0..self.deliveries.len() {
            if due.len() >= max {
                break;
            }
            let delivery = &self.deliveries[index];
            let s = &delivery.summary;
            if delivery.in_flight
                || !matches!(
                    s.status,
                    DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
                )
                || s.next_attempt_at.is_some_and(|at| at > now)
            {
                continue;
            }
            let Some(webhook_index) = self
                .webhooks
                .iter()
                .position(|hook| hook.webhook.id == s.webhook_id)
            else {
                continue;
            };
            if self.webhooks[webhook_index].webhook.status != WebhookStatus::Active {
                continue;
            }
            let headers = match &delivery.prepared_headers {
                Some(prepared) => prepared.clone().into_iter().collect(),
                None => delivery_headers(
                    variant,
                    &self.signing_secrets(webhook_index, now),
                    &s.event_id,
                    &s.id,
                    s.event_type,
                    now,
                    &delivery.body,
                ),
            };
            let attempt = PendingAttempt {
                delivery_id: s.id.clone(),
                url: self.webhooks[webhook_index].webhook.url.clone(),
                headers,
                body: delivery.body.clone(),
            };
            let delivery = &mut self.deliveries[index];
            delivery.in_flight = true;
            delivery.prepared_headers = None;
            due.push(attempt);
        }
        due
    }

    /// Records one attempt's outcome: delivered, retry scheduled, or terminally failed (and the
    /// webhook auto-disabled once it holds 10 retained terminal failures, Decision 4).
    pub fn record_attempt(
        &mut self,
        delivery_id: &str,
        outcome: AttemptOutcome,
        latency_ms: u64,
        schedule: &[std::time::Duration],
        now: Timestamp,
    ) {
        let Some(index) = self
            .deliveries
            .iter()
            .position(|d| d.summary.id == delivery_id)
        else {
            return; // pruned or reset while in flight
        };
        let delivery = &mut self.deliveries[index];
        delivery.in_flight = false;
        delivery.round_attempts += 1;
        let (status_code, error_class, message) = match &outcome {
            AttemptOutcome::Status(code) if (200..300).contains(code) => (Some(*code), None, None),
            AttemptOutcome::Status(code) => {
                let class = if *code == 408 || *code == 429 || !(400..500).contains(code) {
                    ErrorClass::HttpRetryable
                } else {
                    ErrorClass::HttpNonRetryable
                };
                (
                    Some(*code),
                    Some(class),
                    Some(format!("endpoint answered HTTP {code}")),
                )
            }
            AttemptOutcome::Network(message) => {
                (None, Some(ErrorClass::Network), Some(message.clone()))
            }
        };
        let s = &mut delivery.summary;
        s.attempt_count += 1;
        s.last_attempt_at = Some(now);
        s.last_status_code = status_code;
        s.last_error_class = error_class;
        s.last_error_message = message.clone();
        s.updated_at = now;
        let attempt_status = match error_class {
            None => {
                s.status = DeliveryStatus::Delivered;
                s.delivered_at = Some(now);
                s.next_attempt_at = None;
                AttemptStatus::Success
            }
            Some(class) => {
                let retry_in = (class != ErrorClass::HttpNonRetryable)
                    .then(|| schedule.get(delivery.round_attempts as usize - 1))
                    .flatten();
                match retry_in {
                    Some(wait) => {
                        s.status = DeliveryStatus::RetryScheduled;
                        s.next_attempt_at = Some(
                            now + SignedDuration::try_from(*wait).unwrap_or(SignedDuration::MAX),
                        );
                        AttemptStatus::RetryScheduled
                    }
                    None => {
                        s.status = DeliveryStatus::Failed;
                        s.next_attempt_at = None;
                        AttemptStatus::Failed
                    }
                }
            }
        };
        let attempt_number = s.attempt_count;
        let webhook_id = s.webhook_id.clone();
        delivery.attempts.push(DeliveryAttempt {
            attempt_number,
            status: attempt_status,
            status_code,
            error_class,
            error_message: message,
            latency_ms,
            attempted_at: now,
        });
        if attempt_status == AttemptStatus::Failed {
            let failed = self
                .deliveries
                .iter()
                .filter(|d| {
                    d.summary.webhook_id == webhook_id && d.summary.status == DeliveryStatus::Failed
                })
                .count();
            if failed >= AUTO_DISABLE_AFTER
                && let Some(hook) = self
                    .webhooks
                    .iter_mut()
                    .find(|h| h.webhook.id == webhook_id)
                && hook.webhook.status == WebhookStatus::Active
            {
                hook.webhook.status = WebhookStatus::Disabled;
                hook.webhook.disabled_at = Some(now);
                hook.webhook.updated_at = now;
                hook.version += 1;
            }
        }
    }

    /// The earliest time a queued delivery of an active webhook becomes due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.deliveries
            .iter()
            .filter(|d| {
                !d.in_flight
                    && matches!(
                        d.summary.status,
                        DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
                    )
            })
            .filter_map(|d| d.summary.next_attempt_at)
            .min()
    }
}

/// The headers of one delivery attempt (Decision 1).
pub fn delivery_headers(
    variant: SignatureVariant,
    secrets: &[String],
    event_id: &str,
    delivery_id: &str,
    event: EventType,
    now: Timestamp,
    body: &[u8],
) -> Vec<(String, String)> {
    use crate::signature as sig;
    let timestamp = variant.format_timestamp(now);
    let signature = sig::header_value(
        variant,
        secrets.iter().map(String::as_str),
        event_id,
        &timestamp,
        body,
    );
    vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "User-Agent".into(),
            "HollyHR-Webhooks/1.0 (peoplesync sandbox)".into(),
        ),
        (sig::HEADER_ID.into(), event_id.to_owned()),
        (sig::HEADER_DELIVERY_ID.into(), delivery_id.to_owned()),
        (sig::HEADER_EVENT.into(), event.as_str().to_owned()),
        (sig::HEADER_TIMESTAMP.into(), timestamp),
        (variant.signature_header().into(), signature),
    ]
}

fn last_four(secret: &str) -> String {
    secret[secret.len().saturating_sub(4)..].to_owned()
}

fn dedup_events(mut events: Vec<EventType>) -> Vec<EventType> {
    let mut seen = Vec::with_capacity(events.len());
    events.retain(|event| {
        let fresh = !seen.contains(event);
        seen.push(*event);
        fresh
    });
    events
}

fn today_of(at: Timestamp) -> Date {
    today(at)
}

/// `YYYY-MM-DD` that is also a real calendar date.
pub fn parse_date(field: &str, value: &str) -> ApiResult<Date> {
    let shaped = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err(ApiError::invalid_field(
            field,
            "must be a date in YYYY-MM-DD form",
        ));
    }
    value
        .parse::<Date>()
        .map_err(|_| ApiError::invalid_field(field, "is not a valid calendar date"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().expect("valid")
    }

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
