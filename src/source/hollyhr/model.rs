//! HollyHR API v1 wire types (the safe projection only), shared by the client and the sandbox.
//!
//! Field names, nullability and enums follow `openapi-subset.yaml`. Every key the contract lists as
//! required is always serialized (nullable ones as `null`), so the sandbox's output and the client's
//! input are the same types. Types that carry personal fields or secrets have a hand-written
//! `Debug` that prints identifiers only, so a stray `{:?}` can never leak them into a log.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Deserializer, Serialize};

/// `{ "data": T }` — the single-resource envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Data<T> {
    pub data: T,
}

/// `{ "data": [T] }` — the non-paginated list envelope (`/org-units`, `/webhooks`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

/// A cursor page: `{ "data": [T], "pagination": {...} }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub pagination: CursorPagination,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorPagination {
    pub next_cursor: Option<String>,
    pub has_more: bool,
    pub limit: u32,
}

// ---------------------------------------------------------------------------------------------
// /me
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Me {
    pub organisation: IdOnly,
    pub api_key: ApiKeyInfo,
    pub environment: Environment,
    pub actor: Actor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdOnly {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub key_id: String,
    /// Kept as strings: a scope HollyHR adds later must not break `/me`.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    #[serde(rename = "type")]
    pub kind: EnvironmentType,
    pub sandbox: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentType {
    Live,
    Sandbox,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: String,
    pub key_id: String,
}

/// Scopes PeopleSync relies on (`people:read` is the only one a read-only sync needs).
pub mod scope {
    pub const PEOPLE_READ: &str = "people:read";
    pub const PEOPLE_WRITE: &str = "people:write";
    pub const ORG_UNITS_READ: &str = "org_units:read";
    pub const WEBHOOKS_MANAGE: &str = "webhooks:manage";
    /// Every scope value of the contract's enum, in its order.
    pub const ALL: [&str; 21] = [
        "organisation:read",
        "people:read",
        "people:personal:read",
        "people:avatar:read",
        "people:write",
        "custom_fields:read",
        "custom_fields:write",
        "reference:read",
        "org_units:read",
        "org_units:write",
        "working_patterns:read",
        "working_patterns:write",
        "time_off:read",
        "time_off:write",
        "time_off:balance:write",
        "time_off:config:write",
        "documents:read",
        "provider_mappings:read",
        "payroll_exports:read",
        "webhooks:manage",
        "mcp:write",
    ];
}

// ---------------------------------------------------------------------------------------------
// People
// ---------------------------------------------------------------------------------------------

/// A person in HollyHR's safe projection. All 21 keys are always present on the wire.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub work_email: Option<String>,
    pub first_name: Option<String>,
    pub preferred_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: String,
    pub staff_id: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<DepartmentRef>,
    pub manager: Option<PersonRef>,
    pub work_place: Option<LabelRef>,
    pub work_type: Option<LabelRef>,
    pub working_pattern: Option<LabelRef>,
    pub contracted_weekly_minutes: Option<u32>,
    pub full_time_weekly_minutes: Option<u32>,
    pub fte: Option<f64>,
    /// Free string in the contract ("active" / "inactive" in practice); lifecycle is derived
    /// from `start_date` / `end_date` (Decision 8).
    pub status: Option<String>,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// What another source states about the lifecycle besides dates (Personio's employment
    /// status). Never on HollyHR's wire: HollyHR people always carry [`StatusHint::None`].
    #[serde(skip)]
    pub hint: StatusHint,
}

/// A lifecycle fact a source states outright rather than through `start_date` / `end_date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusHint {
    /// Dates decide (HollyHR, Decision 8).
    #[default]
    None,
    /// The source says the person is inactive (Personio: the latest employment is INACTIVE).
    Inactive,
    /// On long-term leave (Personio: employment status LEAVE): still employed.
    OnLeave,
}

impl fmt::Debug for Person {
    // Names, emails and titles are personal fields: only the id and version reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("id", &self.id)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// Where a person is in their employment on a given day (Decision 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Started, and not past their last working day (a future `end_date` is still active).
    Active,
    /// `end_date` is set and earlier than today.
    Leaver,
    /// `start_date` is after today.
    FutureStarter,
    /// Active, but on long-term leave (a source's [`StatusHint::OnLeave`]).
    OnLeave,
}

impl Person {
    /// An active person with a work email `first.last@example.com`, for tests, benchmarks and
    /// examples (fields are public: adjust what a case needs).
    pub fn sample(id: &str, first: &str, last: &str) -> Self {
        let at: Timestamp = Timestamp::UNIX_EPOCH;
        Self {
            id: id.to_owned(),
            work_email: Some(format!(
                "{}.{}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            )),
            first_name: Some(first.to_owned()),
            preferred_name: None,
            last_name: Some(last.to_owned()),
            display_name: format!("{first} {last}"),
            staff_id: None,
            job_title: Some("Engineer".to_owned()),
            department: None,
            manager: None,
            work_place: None,
            work_type: None,
            working_pattern: None,
            contracted_weekly_minutes: None,
            full_time_weekly_minutes: None,
            fte: None,
            status: Some("active".to_owned()),
            start_date: Some(jiff::civil::date(2020, 1, 1)),
            end_date: None,
            created_at: at,
            updated_at: at,
            hint: StatusHint::None,
        }
    }

    /// The lifecycle on `today` (UTC), from `start_date` / `end_date` and a non-HollyHR source's
    /// [`StatusHint`]; HollyHR's `status` is a free string in the contract.
    pub fn lifecycle(&self, today: Date) -> Lifecycle {
        match (self.hint, self.start_date, self.end_date) {
            (StatusHint::Inactive, _, _) => Lifecycle::Leaver,
            (_, _, Some(end)) if end < today => Lifecycle::Leaver,
            (_, Some(start), _) if start > today => Lifecycle::FutureStarter,
            (StatusHint::OnLeave, _, _) => Lifecycle::OnLeave,
            _ => Lifecycle::Active,
        }
    }
}

/// `Person.department`: note the key is `name` here but `label` in `Employment.department`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentRef {
    pub id: String,
    pub name: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRef {
    pub id: String,
    pub display_name: String,
}

impl fmt::Debug for PersonRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonRef")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRef {
    pub id: String,
    pub label: String,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Employment {
    pub person_id: String,
    pub timeline_version: u64,
    pub job_title: Option<String>,
    pub department: Option<LabelRef>,
    pub manager: Option<PersonRef>,
    pub work_place: Option<LabelRef>,
    pub work_type: Option<LabelRef>,
    pub working_pattern: Option<LabelRef>,
    pub contracted_weekly_minutes: Option<u32>,
    pub full_time_weekly_minutes: Option<u32>,
    pub fte: Option<f64>,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
    pub updated_at: Timestamp,
}

impl fmt::Debug for Employment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Employment")
            .field("person_id", &self.person_id)
            .field("timeline_version", &self.timeline_version)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgLinks {
    pub person_id: String,
    pub memberships: Vec<Membership>,
    pub relationships: Vec<Relationship>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub id: String,
    pub person_id: String,
    pub org_unit: MembershipOrgUnit,
    pub role: MembershipRole,
    pub is_primary: bool,
    pub is_current: bool,
    pub effective_from: Date,
    /// Exclusive end date.
    pub effective_to: Option<Date>,
    pub source: RecordSource,
    pub provider: ProviderRef,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipOrgUnit {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: OrgUnitType,
    pub name: String,
    pub code: Option<String>,
    pub archived_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipRole {
    Member,
    Manager,
    Owner,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relationship {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: RelationshipType,
    pub related_person: PersonRef,
    pub is_primary: bool,
    pub is_current: bool,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
    pub source: RecordSource,
    pub provider: ProviderRef,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationshipType {
    LineManager,
    DottedLineManager,
    Approver,
    HrPartner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    Manual,
    PublicApi,
    Import,
    Provider,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRef {
    pub provider_name: Option<String>,
    pub external_id: Option<String>,
    pub remote_id: Option<String>,
    pub remote_deleted_at: Option<Timestamp>,
}

// ---------------------------------------------------------------------------------------------
// Org units
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUnit {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: OrgUnitType,
    pub name: String,
    pub code: Option<String>,
    pub description: Option<String>,
    pub parent: Option<OrgUnitParent>,
    pub active_from: Date,
    pub active_to: Option<Date>,
    pub is_archived: bool,
    pub archived_at: Option<Timestamp>,
    pub source: RecordSource,
    pub provider: ProviderRef,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl OrgUnit {
    /// An active department, for tests, benchmarks and examples.
    pub fn sample_department(id: &str, name: &str) -> Self {
        Self {
            id: id.to_owned(),
            kind: OrgUnitType::Department,
            name: name.to_owned(),
            code: None,
            description: None,
            parent: None,
            active_from: jiff::civil::date(2020, 1, 1),
            active_to: None,
            is_archived: false,
            archived_at: None,
            source: RecordSource::Manual,
            provider: ProviderRef::default(),
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUnitParent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: OrgUnitType,
    pub name: String,
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgUnitType {
    Department,
    Team,
    Division,
    CostCentre,
    LegalEntity,
    LocationGroup,
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/// The 21 event types of the contract, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "person.created")]
    PersonCreated,
    #[serde(rename = "person.updated")]
    PersonUpdated,
    #[serde(rename = "person.ended")]
    PersonEnded,
    #[serde(rename = "person.reactivated")]
    PersonReactivated,
    #[serde(rename = "time_off.created")]
    TimeOffCreated,
    #[serde(rename = "time_off.updated")]
    TimeOffUpdated,
    #[serde(rename = "time_off.approved")]
    TimeOffApproved,
    #[serde(rename = "time_off.declined")]
    TimeOffDeclined,
    #[serde(rename = "time_off.cancelled")]
    TimeOffCancelled,
    #[serde(rename = "time_off_category.created")]
    TimeOffCategoryCreated,
    #[serde(rename = "time_off_category.updated")]
    TimeOffCategoryUpdated,
    #[serde(rename = "time_off_category.archived")]
    TimeOffCategoryArchived,
    #[serde(rename = "time_off_settings.updated")]
    TimeOffSettingsUpdated,
    #[serde(rename = "org_unit.created")]
    OrgUnitCreated,
    #[serde(rename = "org_unit.updated")]
    OrgUnitUpdated,
    #[serde(rename = "org_unit.archived")]
    OrgUnitArchived,
    #[serde(rename = "org_unit.reactivated")]
    OrgUnitReactivated,
    #[serde(rename = "working_pattern.created")]
    WorkingPatternCreated,
    #[serde(rename = "working_pattern.updated")]
    WorkingPatternUpdated,
    #[serde(rename = "working_pattern.archived")]
    WorkingPatternArchived,
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// The events PeopleSync subscribes to by default (API.md §7.1).
    pub const PEOPLESYNC_DEFAULT: [EventType; 8] = [
        EventType::PersonCreated,
        EventType::PersonUpdated,
        EventType::PersonEnded,
        EventType::PersonReactivated,
        EventType::OrgUnitCreated,
        EventType::OrgUnitUpdated,
        EventType::OrgUnitArchived,
        EventType::OrgUnitReactivated,
    ];

    /// The wire name, e.g. `person.updated`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PersonCreated => "person.created",
            EventType::PersonUpdated => "person.updated",
            EventType::PersonEnded => "person.ended",
            EventType::PersonReactivated => "person.reactivated",
            EventType::TimeOffCreated => "time_off.created",
            EventType::TimeOffUpdated => "time_off.updated",
            EventType::TimeOffApproved => "time_off.approved",
            EventType::TimeOffDeclined => "time_off.declined",
            EventType::TimeOffCancelled => "time_off.cancelled",
            EventType::TimeOffCategoryCreated => "time_off_category.created",
            EventType::TimeOffCategoryUpdated => "time_off_category.updated",
            EventType::TimeOffCategoryArchived => "time_off_category.archived",
            EventType::TimeOffSettingsUpdated => "time_off_settings.updated",
            EventType::OrgUnitCreated => "org_unit.created",
            EventType::OrgUnitUpdated => "org_unit.updated",
            EventType::OrgUnitArchived => "org_unit.archived",
            EventType::OrgUnitReactivated => "org_unit.reactivated",
            EventType::WorkingPatternCreated => "working_pattern.created",
            EventType::WorkingPatternUpdated => "working_pattern.updated",
            EventType::WorkingPatternArchived => "working_pattern.archived",
            EventType::WebhookTest => "webhook.test",
        }
    }

    /// The resource type named in an event body's `data.resource_type`.
    pub fn resource_type(self) -> &'static str {
        let name = self.as_str();
        name.split_once('.').map_or(name, |(resource, _)| resource)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    Active,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub status: WebhookStatus,
    pub subscribed_events: Vec<EventType>,
    pub secret_last_four: String,
    pub previous_secret_expires_at: Option<Timestamp>,
    pub last_tested_at: Option<Timestamp>,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `WebhookSecretResponse.data`: a webhook plus its signing secret, shown exactly once
/// (`null` on an idempotent replay).
#[derive(Clone, Serialize, Deserialize)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub signing_secret: Option<String>,
}

impl fmt::Debug for WebhookWithSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookWithSecret")
            .field("webhook", &self.webhook)
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// `DeleteWebhookResponse`: the disabled webhook and `disabled: true`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisabledWebhook {
    pub data: Webhook,
    pub disabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    RetryScheduled,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::RetryScheduled => "retry_scheduled",
            DeliveryStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Network,
    HttpRetryable,
    HttpNonRetryable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryResource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySummary {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: EventType,
    pub api_version: String,
    pub resource: Option<DeliveryResource>,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub last_attempt_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub last_status_code: Option<u16>,
    pub last_error_class: Option<ErrorClass>,
    pub last_error_message: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub summary: DeliverySummary,
    pub attempts: Vec<DeliveryAttempt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Success,
    RetryScheduled,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub attempt_number: u32,
    pub status: AttemptStatus,
    pub status_code: Option<u16>,
    pub error_class: Option<ErrorClass>,
    pub error_message: Option<String>,
    pub latency_ms: u64,
    pub attempted_at: Timestamp,
}

/// `WebhookDeliveryRedeliveryResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Redelivery {
    pub data: DeliverySummary,
    pub redelivered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Recovering,
    Failing,
    Inactive,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendedAction {
    None,
    InspectFailures,
    WaitForRetry,
    EnableEndpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookHealth {
    pub webhook_id: String,
    pub endpoint_status: WebhookStatus,
    pub health_status: HealthStatus,
    pub action_required: bool,
    pub recommended_action: RecommendedAction,
    pub checked_at: Timestamp,
    pub delivery_counts: DeliveryCounts,
    pub last_delivery_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    pub next_retry_at: Option<Timestamp>,
    pub oldest_pending_at: Option<Timestamp>,
    pub latest_failure: Option<LatestFailure>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCounts {
    pub total: u64,
    pub pending: u64,
    pub delivered: u64,
    pub retry_scheduled: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestFailure {
    pub status_code: Option<u16>,
    pub error_class: Option<ErrorClass>,
    pub error_message: Option<String>,
    pub failed_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestDelivery {
    pub event_id: String,
    pub delivery_id: String,
    pub event_type: EventType,
    /// The exact signed headers of the queued delivery (signatures are not secrets).
    pub headers: std::collections::BTreeMap<String, String>,
    pub payload: serde_json::Value,
    pub queued_at: Timestamp,
}

/// The body of every delivery (Decision 6): thin, the receiver re-reads the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBody {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub api_version: String,
    pub occurred_at: Timestamp,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    pub id: String,
    pub resource_type: String,
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

/// Distinguishes an absent key (`None`) from an explicit `null` (`Some(None)`) in PATCH bodies.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePersonRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_org_unit_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_place_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_type_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
}

impl fmt::Debug for CreatePersonRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CreatePersonRequest { .. }")
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePersonRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub preferred_name: Option<Option<String>>,
}

impl fmt::Debug for UpdatePersonRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpdatePersonRequest { .. }")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndPersonRequest {
    pub end_date: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactivatePersonRequest {
    pub start_date: String,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub job_title: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub department_org_unit_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub manager_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub work_place_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub work_type_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub working_pattern_id: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracted_weekly_minutes: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEmploymentRequest {
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub job_title: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub department_org_unit_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub manager_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub work_place_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub work_type_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub working_pattern_id: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracted_weekly_minutes: Option<u32>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_date: Option<Option<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    pub name: String,
    pub url: String,
    pub subscribed_events: Vec<EventType>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_events: Option<Vec<EventType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WebhookStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestWebhookRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// `ErrorEnvelope`: `{ "error": { code, message, request_id, details? } }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Kept as a string in the client so an unknown code is still reported verbatim;
    /// [`ErrorCode`] lists the contract's values.
    pub code: String,
    pub message: String,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<ErrorDetail>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub field: String,
    pub issue: String,
}

/// The contract's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    AuthenticationRequired,
    PermissionDenied,
    NotFound,
    RateLimited,
    IdempotencyRequired,
    IdempotencyConflict,
    Conflict,
    PreconditionRequired,
    PreconditionFailed,
    InternalError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::AuthenticationRequired => "authentication_required",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::IdempotencyRequired => "idempotency_required",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionRequired => "precondition_required",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::InternalError => "internal_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_debug_prints_no_personal_fields() {
        let person: Person = serde_json::from_value(serde_json::json!({
            "id": "abcdefghjkmn", "work_email": "ada@example.com", "first_name": "Ada",
            "preferred_name": null, "last_name": "Lovelace", "display_name": "Ada Lovelace",
            "staff_id": "S1", "job_title": "Engineer", "department": null, "manager": null,
            "work_place": null, "work_type": null, "working_pattern": null,
            "contracted_weekly_minutes": null, "full_time_weekly_minutes": null, "fte": null,
            "status": "active", "start_date": "2020-01-01", "end_date": null,
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-02T00:00:00.000Z"
        }))
        .expect("valid person");
        let printed = format!("{person:?}");
        assert!(printed.contains("abcdefghjkmn"));
        for leak in ["Ada", "Lovelace", "example.com", "Engineer", "S1"] {
            assert!(!printed.contains(leak), "{leak} leaked into {printed}");
        }
    }

    #[test]
    fn lifecycle_follows_start_and_end_dates_relative_to_today() {
        let today: Date = "2026-06-16".parse().expect("valid date");
        let person = |start: Option<&str>, end: Option<&str>| Person {
            id: "abcdefghjkmn".into(),
            work_email: None,
            first_name: None,
            preferred_name: None,
            last_name: None,
            display_name: "x".into(),
            staff_id: None,
            job_title: None,
            department: None,
            manager: None,
            work_place: None,
            work_type: None,
            working_pattern: None,
            contracted_weekly_minutes: None,
            full_time_weekly_minutes: None,
            fte: None,
            status: None,
            start_date: start.map(|d| d.parse().expect("valid date")),
            end_date: end.map(|d| d.parse().expect("valid date")),
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            hint: StatusHint::None,
        };
        let cases = [
            (Some("2020-01-01"), None, Lifecycle::Active),
            (None, None, Lifecycle::Active),
            (Some("2020-01-01"), Some("2026-06-16"), Lifecycle::Active),
            (Some("2020-01-01"), Some("2026-07-01"), Lifecycle::Active),
            (Some("2020-01-01"), Some("2026-06-15"), Lifecycle::Leaver),
            (Some("2026-06-17"), None, Lifecycle::FutureStarter),
            (Some("2026-06-16"), None, Lifecycle::Active),
        ];
        for (start, end, expected) in cases {
            assert_eq!(
                person(start, end).lifecycle(today),
                expected,
                "{start:?}–{end:?}"
            );
        }
        // A source's hint: inactive is a leaver whatever the dates; leave is active people only.
        let hinted = |start: Option<&str>, end: Option<&str>, hint| Person {
            hint,
            ..person(start, end)
        };
        let cases = [
            (
                Some("2020-01-01"),
                None,
                StatusHint::Inactive,
                Lifecycle::Leaver,
            ),
            (
                Some("2020-01-01"),
                None,
                StatusHint::OnLeave,
                Lifecycle::OnLeave,
            ),
            (
                Some("2020-01-01"),
                Some("2026-06-15"),
                StatusHint::OnLeave,
                Lifecycle::Leaver,
            ),
            (
                Some("2026-06-17"),
                None,
                StatusHint::OnLeave,
                Lifecycle::FutureStarter,
            ),
        ];
        for (start, end, hint, expected) in cases {
            assert_eq!(
                hinted(start, end, hint).lifecycle(today),
                expected,
                "{hint:?}"
            );
        }
    }

    #[test]
    fn null_and_absent_are_distinguished_in_patch_bodies() {
        let absent: UpdateEmploymentRequest = serde_json::from_str("{}").expect("empty body");
        assert_eq!(absent.manager_id, None);
        let null: UpdateEmploymentRequest =
            serde_json::from_str(r#"{"manager_id":null}"#).expect("null manager");
        assert_eq!(null.manager_id, Some(None));
        assert_eq!(
            serde_json::to_string(&null).expect("serializes"),
            r#"{"manager_id":null}"#
        );
    }

    #[test]
    fn webhook_secret_is_redacted_in_debug() {
        let hook: WebhookWithSecret = serde_json::from_value(serde_json::json!({
            "id": "wh_a.b.c", "name": "n", "url": "https://example.com/h", "status": "active",
            "subscribed_events": ["person.updated"], "secret_last_four": "abcd",
            "previous_secret_expires_at": null, "last_tested_at": null, "disabled_at": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "signing_secret": "whsec_supersecretvalue"
        }))
        .expect("valid webhook");
        assert!(!format!("{hook:?}").contains("supersecret"));
    }

    #[test]
    fn event_type_wire_names_round_trip() {
        for event in EventType::PEOPLESYNC_DEFAULT {
            let json = serde_json::to_string(&event).expect("serializes");
            assert_eq!(json, format!("\"{}\"", event.as_str()));
        }
        assert_eq!(EventType::OrgUnitArchived.resource_type(), "org_unit");
    }
}
