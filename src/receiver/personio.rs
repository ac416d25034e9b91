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
use axum::response::Response;
use jiff::Timestamp;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Job, Outcome, Receiver, Subject, TokenSecrets, answer, enqueue};
use crate::source::personio::model::Event;

/// The event name of `POST /v2/webhooks/{id}/ping`.
pub const PING: &str = "ping";

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Whether two tokens are equal, in constant time. Both are hashed first, so neither the
/// position of the first difference nor the length of the held token shows in the timing.
pub fn same_token(presented: &str, held: &str) -> bool {
    bool::from(
        digest(presented.as_bytes())
            .as_slice()
            .ct_eq(digest(held.as_bytes()).as_slice()),
    )
}

/// Whether `authorization` (the raw header value) is one of the tokens valid at `now`: the
/// current one, or the previous one before it expires. Every candidate is compared, so the
/// timing does not say which one matched.
pub fn authorized(authorization: Option<&[u8]>, tokens: &TokenSecrets, now: Timestamp) -> bool {
    let Some(presented) = authorization else {
        return false;
    };
    let presented = digest(presented);
    let mut candidates = vec![digest(tokens.current.expose_secret().as_bytes())];
    if let Some((previous, expires)) = &tokens.previous
        && *expires > now
    {
        candidates.push(digest(previous.expose_secret().as_bytes()));
    }
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

pub(super) fn receive(
    receiver: &Receiver,
    namespace: String,
    name: String,
    tokens: &TokenSecrets,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let now = (receiver.now)();
    let presented = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if !authorized(presented, tokens, now) {
        return answer(
            receiver,
            Outcome::BadSignature,
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not this webhook's token",
        );
    }
    // Authenticated: only now is the body read.
    let Ok(event) = serde_json::from_slice::<Event>(body) else {
        return answer(
            receiver,
            Outcome::BadRequest,
            StatusCode::BAD_REQUEST,
            "the body is not a Personio event",
        );
    };
    // An authenticated event (a duplicate too) shows the path works: `WebhookHealthy` reads it.
    receiver.secrets.note_accepted(&namespace, &name, now);
    let event_id = event_key(&event);
    let seen_key = format!("{namespace}/{name}/{event_id}");
    if receiver
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&seen_key)
    {
        return answer(
            receiver,
            Outcome::Duplicate,
            StatusCode::OK,
            "already received",
        );
    }
    let subject = if event.event_name.eq_ignore_ascii_case(PING) {
        Subject::Nothing
    } else {
        event.person_id().map_or(Subject::Nothing, Subject::Person)
    };
    let (outcome, status) = if subject == Subject::Nothing {
        // A ping proves the path and the token; Personio wants a 2xx and nothing more.
        (Outcome::Ignored, StatusCode::OK)
    } else {
        let job = Job {
            namespace,
            name,
            event_id,
            event_type: event.event_name,
            subject,
        };
        if let Some(busy) = enqueue(receiver, job) {
            return busy;
        }
        (Outcome::Accepted, StatusCode::ACCEPTED)
    };
    // Remembered only once queued: a delivery refused with 503 is not a duplicate when retried.
    receiver
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(seen_key, ());
    answer(receiver, outcome, status, "accepted")
}
