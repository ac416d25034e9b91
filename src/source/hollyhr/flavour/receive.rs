//! HollyHR deliveries: signed with HMAC-SHA256 over the timestamp and the raw body (see
//! `crate::signature`), by the current signing secret or, during a rotation's overlap, the
//! previous one. The event's own `id`, inside the signed body, deduplicates: a captured delivery
//! replayed with a fresh `HollyHR-Webhook-Id` header (which one of the two documented signature
//! variants does not sign) is still a duplicate; the header id is used only for an event whose
//! body carries none. `person.*` and `org_unit.*` name their subject in `data.id`; everything
//! else (`webhook.test`) queues nothing.

use axum::http::HeaderMap;
use jiff::Timestamp;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::signature::{self, SignedHeaders};
use crate::webhook::{Deliveries, Delivery, HeldCredentials, Refused, Subject};

/// HollyHR's deliveries, for the receiver.
pub struct Hmac;

/// The event fields the receiver needs; the rest of the payload is never read.
#[derive(Deserialize)]
struct Event {
    /// The event id (`evt_…`), covered by the signature in both variants.
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    id: Option<String>,
}

fn subject(kind: &str, data: Option<&EventData>) -> Result<Subject, &'static str> {
    let id = || {
        data.and_then(|d| d.id.clone())
            .filter(|id| !id.is_empty())
            .ok_or("the event has no data.id")
    };
    Ok(match kind.split_once('.') {
        Some(("person", _)) => Subject::Person(id()?),
        Some(("org_unit", _)) => Subject::OrgUnit(id()?),
        _ => Subject::Nothing,
    })
}

fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Deliveries for Hmac {
    fn authenticate(
        &self,
        held: &HeldCredentials,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), Refused> {
        let signed = SignedHeaders {
            event_id: text(headers, signature::HEADER_ID),
            timestamp: text(headers, signature::HEADER_TIMESTAMP),
            signature: text(headers, signature::HEADER_SIGNATURE),
            sdk_signature: text(headers, signature::HEADER_SDK_SIGNATURE),
        };
        let keys: Vec<&[u8]> = held
            .valid_at(now)
            .into_iter()
            .map(|key| key.expose_secret().as_bytes())
            .collect();
        signature::verify(&signed, body, &keys, now, signature::DEFAULT_TOLERANCE)
            .map(|_| ())
            .map_err(|error| {
                if error.http_status() == 401 {
                    Refused::Unauthorized(error.to_string())
                } else {
                    Refused::BadRequest(error.to_string())
                }
            })
    }

    fn read(&self, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, &'static str> {
        let header = text(headers, signature::HEADER_ID)
            .filter(|id| !id.is_empty() && id.len() <= 200)
            .ok_or("missing header HollyHR-Webhook-Id")?;
        let event: Event =
            serde_json::from_slice(body).map_err(|_| "the body is not a HollyHR event")?;
        let subject = subject(&event.kind, event.data.as_ref())?;
        let id = match event.id.as_deref() {
            Some(id) if id.is_empty() || id.len() > 200 => {
                return Err("the event's id is empty or over 200 characters");
            }
            Some(id) => id,
            None => header,
        };
        Ok(Delivery {
            id: id.to_owned(),
            event_type: event.kind,
            subject,
        })
    }
}
