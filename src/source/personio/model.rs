//! Personio API v2 wire types, shared by the client and the Personio sandbox.
//!
//! Field names follow `../shared/personio/API.md` (Personio's own OpenAPI files for persons,
//! employments and auth; the webhooks reference for the rest). Personio's schemas declare no
//! required properties and its examples break their own enums, so almost everything is an
//! `Option`, enums are kept as strings, and unknown keys are ignored: a field a credential may not
//! read (its *readable attributes*) is simply absent. Types carrying personal fields or secrets
//! have a hand-written `Debug` that prints identifiers only.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

/// The most people (and employments) a list page may hold (`limit` 1–50).
pub const MAX_PAGE: u32 = 50;
/// The most webhooks, events or activity records a list page may hold (`limit` 1–200).
pub const MAX_WEBHOOK_PAGE: u32 = 200;

/// Scopes PeopleSync relies on.
pub mod scope {
    pub const PERSONS_READ: &str = "personio:persons:read";
    pub const PERSONS_WRITE: &str = "personio:persons:write";
    pub const WEBHOOKS_READ: &str = "personio:webhooks:read";
    pub const WEBHOOKS_WRITE: &str = "personio:webhooks:write";
}

/// Route templates, as clients and the sandbox log them.
pub mod route {
    pub const TOKEN: &str = "/v2/auth/token";
    pub const REVOKE: &str = "/v2/auth/revoke";
    pub const PERSONS: &str = "/v2/persons";
    pub const PERSON: &str = "/v2/persons/{id}";
    pub const EMPLOYMENTS: &str = "/v2/persons/{person_id}/employments";
    pub const EMPLOYMENT: &str = "/v2/persons/{person_id}/employments/{id}";
    pub const ORG_UNIT: &str = "/v2/org-units/{id}";
    pub const WEBHOOKS: &str = "/v2/webhooks";
    pub const WEBHOOK: &str = "/v2/webhooks/{id}";
    pub const WEBHOOK_ACTIVITY: &str = "/v2/webhooks/{id}/activity";
    pub const WEBHOOK_PING: &str = "/v2/webhooks/{id}/ping";
}

// ---------------------------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------------------------

/// `{"_data": [T], "_meta": {"links": {"self": {...}, "next": {...}}}}`: a cursor page. `next`
/// is present only when another page exists; its `href` carries the cursor as a query parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListPage<T> {
    #[serde(rename = "_data", default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(rename = "_meta", default)]
    pub meta: ListMeta,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListMeta {
    #[serde(default)]
    pub links: Links,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Links {
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub this: Option<Href>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Href>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Href {
    pub href: String,
}

impl<T> ListPage<T> {
    /// The cursor of the next page: only the `cursor` query parameter of `next.href` (Personio's
    /// employment examples link to a path that does not exist, so the path is not trusted).
    pub fn next_cursor(&self) -> Option<String> {
        let href = &self.meta.links.next.as_ref()?.href;
        let query = href.split_once('?').map(|(_, q)| q).unwrap_or(href);
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "cursor")
            .map(|(_, value)| value.into_owned())
            .filter(|cursor| !cursor.is_empty())
    }
}

/// `{"id": "..."}`: a reference. Personio sends ids as strings, org-unit ids sometimes as
/// integers: both are read as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
}

impl IdRef {
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

/// `POST /v2/auth/token` answer (`OAuth2Token`).
#[derive(Clone, Serialize, Deserialize)]
pub struct Token {
    pub access_token: String,
    pub token_type: String,
    /// Seconds (Personio's default is one day).
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A `400` from the token endpoint (`OAuth2TokenErrorResponse`, problem+json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenError {
    /// `invalid_request`, `invalid_client`, `invalid_scope`, ...
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_uri: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------
// Errors of resource endpoints
// ---------------------------------------------------------------------------------------------

/// The `application/problem+json` body of v2 resource endpoints. Older variants say `trace_id`
/// and `details`: both are read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default, alias = "trace_id")]
    pub personio_trace_id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub errors: Vec<ProblemError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProblemError {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, alias = "details")]
    pub detail: Option<String>,
    /// A URI whose anchor is the error code, e.g. `…/reference/errors#common.bad_request`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

impl Problem {
    /// The error code of the first error (the anchor of its `type` URI), if any.
    pub fn code(&self) -> Option<&str> {
        let kind = self.errors.first()?.kind.as_deref()?;
        Some(kind.rsplit_once('#').map_or(kind, |(_, code)| code))
    }
}

// ---------------------------------------------------------------------------------------------
// Persons and employments
// ---------------------------------------------------------------------------------------------

/// A person (`GET /v2/persons`, `/v2/persons/{id}`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_name: Option<String>,
    /// `UNSPECIFIED`, `MALE`, `FEMALE`, `DIVERSE` (kept as text; never mapped by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// `ACTIVE` (latest employment active, on leave or onboarding), `INACTIVE`, `UNSPECIFIED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_attributes: Vec<CustomAttribute>,
    /// References only; most recent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub employments: Vec<IdRef>,
}

impl fmt::Debug for Person {
    // Names and emails are personal fields: only the id and version reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("id", &self.id)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// `custom_attributes[]`: `value` is a string, a list of strings or of objects (be lenient).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomAttribute {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub global_id: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub value: serde_json::Value,
}

impl fmt::Debug for CustomAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomAttribute")
            .field("id", &self.id)
            .field("global_id", &self.global_id)
            .finish_non_exhaustive()
    }
}

/// An employment (`GET /v2/persons/{person_id}/employments`); lists are most recent first and
/// the first one is authoritative.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Employment {
    pub id: String,
    /// `ACTIVE`, `INACTIVE`, `ONBOARDING`, `LEAVE`, `UNSPECIFIED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `INTERNAL`, `EXTERNAL`, `UNSPECIFIED`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// A person id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<IdRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office: Option<IdRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub org_units: Vec<OrgUnitRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_entity: Option<IdRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<IdRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_working_hours: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_time_weekly_working_hours: Option<f64>,
    /// `YYYY-MM-DD` (a plain string in Personio's schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employment_start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employment_end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probation_end_date: Option<String>,
    /// The end of a fixed-term contract: not a termination (never deprovisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

impl fmt::Debug for Employment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Employment")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Position").finish_non_exhaustive()
    }
}

/// `org_units[]` of an employment: `type` is free text (`department`, `team`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUnitRef {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
}

/// `employment.termination`. Dates are `YYYY-MM-DD`; examples spell `last_working_day` as
/// `last_working_date`: both are read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Termination {
    /// The employment becomes INACTIVE at 00:00 UTC on the day after this date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<String>,
    #[serde(
        default,
        alias = "last_working_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_working_day: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Org units
// ---------------------------------------------------------------------------------------------

/// `GET /v2/org-units/{id}?type=...` (the resource itself, no envelope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUnit {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abbreviation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// The ancestors from the parent upward, with details; only with `include_parent_chain=true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_chain: Vec<OrgUnit>,
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/// Webhook status values (the reference shows `DISABLED`, the create default; `ENABLED` is the
/// other value PeopleSync assumes).
pub mod webhook_status {
    pub const ENABLED: &str = "ENABLED";
    pub const DISABLED: &str = "DISABLED";
}

/// A webhook as `GET /v2/webhooks/{id}` shows it. The token is never echoed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `NONE`, `TOKEN` (the default: `token` verbatim in `Authorization`), `CUSTOM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enabled_events: Vec<String>,
}

/// The body of `POST /v2/webhooks` and `PATCH /v2/webhooks/{id}` (every field optional on a
/// PATCH).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookWrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    /// Sent verbatim as the `Authorization` header of every delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_events: Option<Vec<String>>,
}

impl fmt::Debug for WebhookWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookWrite")
            .field("url", &self.url)
            .field("status", &self.status)
            .field("auth_type", &self.auth_type)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("enabled_events", &self.enabled_events)
            .finish_non_exhaustive()
    }
}

/// One delivery attempt (`GET /v2/webhooks/{id}/activity`, last 30 days).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub id: String,
    pub event_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Timestamp>,
    pub completed_at: Timestamp,
    /// Whether the receiver answered 2xx.
    pub is_delivered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
}

/// The envelope of a delivery. Payloads carry identifiers only ("dataless notifications").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub company_id: String,
    pub event_name: String,
    pub occurred_at: Timestamp,
    pub payload: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

impl Event {
    /// The person the event is about: `payload.person_id`, else `payload.id` for `person.*`
    /// events (the payload keys are not documented; any id found is re-read through REST).
    pub fn person_id(&self) -> Option<String> {
        let id = |key: &str| match self.payload.get(key)? {
            serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        id("person_id").or_else(|| {
            self.event_name
                .to_ascii_lowercase()
                .starts_with("person.")
                .then(|| id("id"))
                .flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_cursor_is_read_from_the_query_only() {
        let page: ListPage<Person> = serde_json::from_value(serde_json::json!({
            "_data": [],
            "_meta": {"links": {"next": {"href": "https://api.personio.de/v2/employments?cursor=cur_82sQ%3D&limit=50"}}}
        }))
        .unwrap();
        assert_eq!(page.next_cursor().as_deref(), Some("cur_82sQ="));
        let last: ListPage<Person> =
            serde_json::from_value(serde_json::json!({"_data": [], "_meta": {"links": {}}}))
                .unwrap();
        assert_eq!(last.next_cursor(), None);
    }

    #[test]
    fn ids_may_be_numbers_and_old_error_spellings_are_read() {
        let unit: OrgUnit =
            serde_json::from_value(serde_json::json!({"id": 12, "type": "department"})).unwrap();
        assert_eq!(unit.id, "12");
        let problem: Problem = serde_json::from_value(serde_json::json!({
            "trace_id": "t-1",
            "errors": [{"title": "Bad", "details": "x", "type": "https://developer.personio.de/reference/errors#common.bad_request"}]
        }))
        .unwrap();
        assert_eq!(problem.personio_trace_id.as_deref(), Some("t-1"));
        assert_eq!(problem.errors[0].detail.as_deref(), Some("x"));
        assert_eq!(problem.code(), Some("common.bad_request"));
    }

    #[test]
    fn a_person_with_only_an_id_is_readable_and_debug_prints_no_names() {
        let person: Person = serde_json::from_value(serde_json::json!({
            "id": "3003", "first_name": "Ada", "email": "ada@example.com", "extra": 1
        }))
        .unwrap();
        let printed = format!("{person:?}");
        assert!(printed.contains("3003") && !printed.contains("Ada") && !printed.contains("ada@"));
        let bare: Person = serde_json::from_value(serde_json::json!({"id": "1"})).unwrap();
        assert!(bare.employments.is_empty() && bare.email.is_none());
    }

    #[test]
    fn the_person_of_an_event_is_found_by_any_id() {
        let event = |name: &str, payload: serde_json::Value| Event {
            company_id: "1".into(),
            event_name: name.into(),
            occurred_at: Timestamp::UNIX_EPOCH,
            payload,
            meta: None,
        };
        assert_eq!(
            event("person.updated", serde_json::json!({"id": "7"})).person_id(),
            Some("7".into())
        );
        assert_eq!(
            event(
                "employment.updated",
                serde_json::json!({"id": "e-1", "person_id": 8})
            )
            .person_id(),
            Some("8".into())
        );
        assert_eq!(
            event("employment.updated", serde_json::json!({"id": "e-1"})).person_id(),
            None
        );
    }
}
