//! Personio deliveries: Personio signs nothing, it sends the webhook's static token verbatim as
//! `Authorization` (API.md §7.4). The header is compared in constant time with the current token
//! and, while it has not expired, the previous one, before the body is read; a missing or wrong
//! token is a 401 and nothing else happens.
//!
//! Personio documents no event or delivery id, so a delivery is deduplicated by a digest of
//! (`company_id`, `event_name`, `occurred_at`, `payload`) (a retry resends the same event). The
//! person is `Event::person_id()`; `ping` is acknowledged (200) and queues nothing; events without
//! a person id (none of the people families today) queue nothing either: the next cycle covers
//! them. `person.deleted` queues a person job like any other: the re-read answers 404, so the
//! targeted sync does nothing, and the next full cycle treats the person as vanished (behind the
//! mass-deprovision guard). Everything is answered well within Personio's 3 s: the receiver only
//! enqueues.

use axum::http::{HeaderMap, StatusCode, header};
use jiff::Timestamp;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::source::personio::model::Event;
use crate::webhook::{Deliveries, Delivery, HeldCredentials, Refused, Subject};

/// Personio's deliveries, for the receiver.
pub struct Token;

/// The event name of `POST /v2/webhooks/{id}/ping`.
pub const PING: &str = "ping";

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Whether two tokens are equal, in constant time (see [`crate::webhook::same_secret`]).
pub fn same_token(presented: &str, held: &str) -> bool {
    crate::webhook::same_secret(presented.as_bytes(), held.as_bytes())
}

/// Whether `authorization` (the raw header value) is one of the tokens valid at `now`: the
/// current one, or the previous one before it expires. Every candidate is compared, so the
/// timing does not say which one matched.
pub fn authorized(authorization: Option<&[u8]>, tokens: &HeldCredentials, now: Timestamp) -> bool {
    let Some(presented) = authorization else {
        return false;
    };
    let presented = digest(presented);
    let candidates: Vec<[u8; 32]> = tokens
        .valid_at(now)
        .into_iter()
        .map(|token| digest(token.expose_secret().as_bytes()))
        .collect();
    let mut matched = subtle::Choice::from(0);
    for candidate in &candidates {
        matched |= presented.as_slice().ct_eq(candidate.as_slice());
    }
    bool::from(matched)
}

/// The deduplication key of an event: a digest of what identifies it (hex, 32 characters).
/// `payload` is hashed as received (key order kept), which a retry repeats byte for byte.
pub fn event_key(event: &Event) -> String {
    let mut hasher = Sha256::new();
    for part in [
        event.company_id.as_str(),
        event.event_name.as_str(),
        &event.occurred_at.to_string(),
        &event.payload.to_string(),
    ] {
        hasher.update(part.as_bytes());
        // A separator no JSON text or id contains unescaped keeps the parts apart.
        hasher.update([0u8]);
    }
    hex::encode(&hasher.finalize()[..16])
}

impl Deliveries for Token {
    fn authenticate(
        &self,
        held: &HeldCredentials,
        headers: &HeaderMap,
        _body: &[u8],
        now: Timestamp,
    ) -> Result<(), Refused> {
        let presented = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        if authorized(presented, held, now) {
            Ok(())
        } else {
            Err(Refused::Unauthorized(
                "the Authorization header is not this webhook's token".into(),
            ))
        }
    }

    fn read(&self, _headers: &HeaderMap, body: &[u8]) -> Result<Delivery, &'static str> {
        let event: Event =
            serde_json::from_slice(body).map_err(|_| "the body is not a Personio event")?;
        let subject = if event.event_name.eq_ignore_ascii_case(PING) {
            Subject::Nothing
        } else {
            event.person_id().map_or(Subject::Nothing, Subject::Person)
        };
        Ok(Delivery {
            id: event_key(&event),
            event_type: event.event_name,
            subject,
        })
    }

    /// A ping proves the path and the token; Personio wants a 2xx and nothing more.
    fn ignored_status(&self) -> StatusCode {
        StatusCode::OK
    }
}
