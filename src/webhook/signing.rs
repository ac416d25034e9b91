//! The webhook signing secret, kept in a Secret owned by its PeopleSync
//! (`<name>-webhook-signing`): the current secret, the previous one during a rotation overlap,
//! and (as annotations, nothing secret) the webhook id, the rotation time, the overlap's end and
//! the last handled rotation request. The controller is its only writer (server-side apply); the
//! receiver reads it through a watch ([`watch`] → [`SecretBook`]), never per request.
//!
//! The same Secret holds a Personio webhook's token (the `Authorization` value Personio sends),
//! marked by the annotation `peoplesync.dev/webhook-auth: token`: that is how the receiver knows
//! which scheme applies to the object, with one Secret watch for both sources. A Personio
//! rotation is written in two steps: first the new token as current with the old one as previous
//! and `peoplesync.dev/token-pending: "true"` (the receiver accepts both before Personio sends
//! the new one), then, once Personio took it, without the pending mark and with the previous
//! token's expiry moved to the end of the overlap.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use secrecy::{ExposeSecret, SecretString};

use super::{HeldCredentials, HeldView};
use crate::crd::PeopleSync;
use crate::secrets::SecretCache;

/// Marks the Secrets this module writes (the watch selects on it).
pub const LABEL: &str = "peoplesync.dev/webhook-signing";
/// The owning PeopleSync's name.
pub const OWNER_LABEL: &str = "peoplesync.dev/peoplesync";
const KEY_CURRENT: &str = "current";
const KEY_PREVIOUS: &str = "previous";
const WEBHOOK_ID: &str = "peoplesync.dev/webhook-id";
const ROTATED_AT: &str = "peoplesync.dev/rotated-at";
const PREVIOUS_EXPIRES_AT: &str = "peoplesync.dev/previous-expires-at";
const HANDLED_REQUEST: &str = "peoplesync.dev/rotation-request";
/// `token` for a Personio webhook token; absent for a HollyHR signing secret.
const AUTH: &str = "peoplesync.dev/webhook-auth";
const AUTH_TOKEN: &str = "token";
/// `"true"` while a new token is held but Personio has not confirmed taking it.
const TOKEN_PENDING: &str = "peoplesync.dev/token-pending";

/// Random bytes in a Personio webhook token (the task asks for at least 32; 256 bits).
const TOKEN_BYTES: usize = 32;

/// A new Personio webhook token: `Bearer ` and 32 bytes from `rand`'s thread-local CSPRNG (the
/// generator the sandboxes use for HollyHR's signing secrets; ChaCha, seeded from the OS), URL-safe
/// base64 so it is a valid header value. Personio sends it verbatim as `Authorization`.
pub fn new_token() -> SecretString {
    use base64::Engine;
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SecretString::from(format!("Bearer {text}"))
}

/// How deliveries to an object are authenticated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme {
    /// HollyHR: HMAC signatures with the signing secret.
    #[default]
    Hmac,
    /// Personio: the static token in `Authorization`.
    Token,
}

/// The owned Secret's name for a PeopleSync.
pub fn secret_name(name: &str) -> String {
    format!("{name}-webhook-signing")
}

/// What the owned Secret holds.
#[derive(Clone, Default)]
pub struct Held {
    pub webhook_id: Option<String>,
    pub current: Option<SecretString>,
    pub previous: Option<(SecretString, Timestamp)>,
    pub rotated_at: Option<Timestamp>,
    pub handled_request: Option<String>,
    pub scheme: Scheme,
    /// Personio: the current token is not confirmed as the webhook's yet.
    pub pending: bool,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("webhook_id", &self.webhook_id)
            .field("last_four", &self.last_four())
            .field("previous_expires", &self.previous.as_ref().map(|p| p.1))
            .field("rotated_at", &self.rotated_at)
            .field("scheme", &self.scheme)
            .field("pending", &self.pending)
            .finish()
    }
}

impl Held {
    /// The last four characters of the current secret (what HollyHR shows as
    /// `secret_last_four`).
    pub fn last_four(&self) -> Option<String> {
        let secret = self.current.as_ref()?.expose_secret();
        let start = secret.char_indices().rev().nth(3).map(|(i, _)| i)?;
        Some(secret[start..].to_owned())
    }

    pub fn view(&self) -> HeldView {
        HeldView {
            last_four: self.last_four(),
            rotated_at: self.rotated_at,
            handled_request: self.handled_request.clone(),
        }
    }

    /// A Personio token for `webhook_id` becomes current, pending until Personio confirms it;
    /// the old token (of the same webhook) stays previous until `hold_until`.
    pub fn token_issued(
        &self,
        webhook_id: &str,
        token: SecretString,
        hold_until: Timestamp,
        now: Timestamp,
        handled_request: Option<String>,
    ) -> Held {
        let same = self.scheme == Scheme::Token && self.webhook_id.as_deref() == Some(webhook_id);
        Held {
            previous: match (&self.current, &self.previous) {
                // A rotation retried while pending: the token Personio still sends is the
                // previous one.
                (_, Some((old, _))) if same && self.pending => Some((old.clone(), hold_until)),
                (Some(old), _) if same => Some((old.clone(), hold_until)),
                _ => None,
            },
            scheme: Scheme::Token,
            pending: true,
            ..self.rotated(webhook_id, token, None, now, handled_request)
        }
    }

    /// Personio took the current token: the previous one is accepted until `expires` only.
    pub fn token_confirmed(&self, expires: Timestamp) -> Held {
        Held {
            previous: self
                .previous
                .as_ref()
                .map(|(old, _)| (old.clone(), expires)),
            pending: false,
            ..self.clone()
        }
    }

    /// The credentials the receiver verifies with; `None` without a current one.
    pub fn credentials(&self) -> Option<HeldCredentials> {
        Some(HeldCredentials {
            current: self.current.clone()?,
            previous: self.previous.clone(),
        })
    }

    /// After a rotation: the new secret is current, the old current is previous until
    /// `expires` (HollyHR's `previous_secret_expires_at`).
    pub fn rotated(
        &self,
        webhook_id: &str,
        secret: SecretString,
        expires: Option<Timestamp>,
        now: Timestamp,
        handled_request: Option<String>,
    ) -> Held {
        Held {
            webhook_id: Some(webhook_id.to_owned()),
            previous: match (&self.current, expires) {
                (Some(old), Some(expires)) if self.webhook_id.as_deref() == Some(webhook_id) => {
                    Some((old.clone(), expires))
                }
                _ => None,
            },
            current: Some(secret),
            rotated_at: Some(now),
            handled_request: handled_request.or_else(|| self.handled_request.clone()),
            scheme: self.scheme,
            pending: false,
        }
    }

    fn from_secret(secret: &Secret) -> Held {
        let text = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
        };
        let annotations = secret.annotations();
        let time = |key: &str| annotations.get(key).and_then(|v| v.parse().ok());
        let previous = match (text(KEY_PREVIOUS), time(PREVIOUS_EXPIRES_AT)) {
            (Some(secret), Some(expires)) => Some((secret, expires)),
            _ => None,
        };
        Held {
            webhook_id: annotations.get(WEBHOOK_ID).cloned(),
            current: text(KEY_CURRENT),
            previous,
            rotated_at: time(ROTATED_AT),
            handled_request: annotations.get(HANDLED_REQUEST).cloned(),
            scheme: if annotations.get(AUTH).map(String::as_str) == Some(AUTH_TOKEN) {
                Scheme::Token
            } else {
                Scheme::Hmac
            },
            pending: annotations.get(TOKEN_PENDING).map(String::as_str) == Some("true"),
        }
    }
}

/// Reads the owned Secret (an empty [`Held`] when there is none).
pub async fn read(secrets: &SecretCache, namespace: &str, name: &str) -> Result<Held, kube::Error> {
    Ok(secrets
        .get(namespace, &secret_name(name))
        .await?
        .map(|secret| Held::from_secret(&secret))
        .unwrap_or_default())
}

/// Writes the owned Secret by server-side apply (fields no longer held are dropped).
pub async fn write(
    secrets: &SecretCache,
    object: &PeopleSync,
    held: &Held,
    field_manager: &str,
) -> Result<(), kube::Error> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let mut data = BTreeMap::new();
    if let Some(current) = &held.current {
        data.insert(
            KEY_CURRENT.to_owned(),
            ByteString(current.expose_secret().as_bytes().to_vec()),
        );
    }
    let mut annotations = BTreeMap::new();
    if let Some((previous, expires)) = &held.previous {
        data.insert(
            KEY_PREVIOUS.to_owned(),
            ByteString(previous.expose_secret().as_bytes().to_vec()),
        );
        annotations.insert(PREVIOUS_EXPIRES_AT.to_owned(), expires.to_string());
    }
    if let Some(id) = &held.webhook_id {
        annotations.insert(WEBHOOK_ID.to_owned(), id.clone());
    }
    if let Some(at) = held.rotated_at {
        annotations.insert(ROTATED_AT.to_owned(), at.to_string());
    }
    if let Some(request) = &held.handled_request {
        annotations.insert(HANDLED_REQUEST.to_owned(), request.clone());
    }
    if held.scheme == Scheme::Token {
        annotations.insert(AUTH.to_owned(), AUTH_TOKEN.to_owned());
        if held.pending {
            annotations.insert(TOKEN_PENDING.to_owned(), "true".to_owned());
        }
    }
    let owner = object.controller_owner_ref(&());
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(&name),
            "namespace": namespace,
            "labels": {
                LABEL: "true",
                OWNER_LABEL: name,
                "app.kubernetes.io/managed-by": "peoplesync",
            },
            "annotations": annotations,
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "type": "Opaque",
        "data": data,
    });
    let api: Api<Secret> = Api::namespaced(secrets.client().clone(), &namespace);
    let written = api
        .patch(
            &secret_name(&name),
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(secret),
        )
        .await?;
    // Read back at once by the next reconcile, before the watch brings it.
    secrets.put(written);
    Ok(())
}

/// The PeopleSync (namespace, name) an owned Secret belongs to; `None` for any other Secret.
pub fn owner_of(secret: &Secret) -> Option<(String, String)> {
    if secret.labels().get(LABEL).map(String::as_str) != Some("true") {
        return None;
    }
    Some((
        secret.namespace()?,
        secret.labels().get(OWNER_LABEL)?.clone(),
    ))
}

/// What an owned Secret gives the receiver: how deliveries are authenticated and with what;
/// `None` when it holds no credential (or is being deleted).
pub fn receivable(secret: &Secret) -> Option<(Scheme, HeldCredentials)> {
    if secret.meta().deletion_timestamp.is_some() {
        return None;
    }
    let held = Held::from_secret(secret);
    Some((held.scheme, held.credentials()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: &[(&str, &str)], annotations: &[(&str, &str)]) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "acme-webhook-signing", "namespace": "team",
                "labels": { LABEL: "true", OWNER_LABEL: "acme" },
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            },
            "data": data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect::<BTreeMap<_, _>>(),
        }))
        .expect("a Secret")
    }

    #[test]
    fn the_held_secret_is_read_with_its_overlap_and_never_printed() {
        let held = Held::from_secret(&secret(
            &[
                ("current", "whsec_newsecretABCD"),
                ("previous", "whsec_oldsecretWXYZ"),
            ],
            &[
                (WEBHOOK_ID, "wh_1"),
                (PREVIOUS_EXPIRES_AT, "2026-11-23T10:00:00Z"),
                (ROTATED_AT, "2026-11-22T10:00:00Z"),
            ],
        ));
        assert_eq!(held.last_four().as_deref(), Some("ABCD"));
        assert_eq!(held.webhook_id.as_deref(), Some("wh_1"));
        let previous = held.previous.as_ref().expect("an overlap");
        assert_eq!(previous.0.expose_secret(), "whsec_oldsecretWXYZ");
        assert_eq!(previous.1.to_string(), "2026-11-23T10:00:00Z");
        let printed = format!("{held:?}");
        assert!(!printed.contains("whsec_"), "{printed}");
        // A previous secret without its expiry is not trusted.
        let held = Held::from_secret(&secret(&[("current", "c"), ("previous", "p")], &[]));
        assert!(held.previous.is_none());
        assert_eq!(held.last_four(), None, "too short to have four characters");
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_as_previous_only_for_the_same_webhook() {
        let now = Timestamp::from_second(1_000_000).expect("a time");
        let expires = Timestamp::from_second(1_086_400).expect("a time");
        let held = Held {
            webhook_id: Some("wh_1".into()),
            current: Some("whsec_old0".into()),
            ..Held::default()
        };
        let next = held.rotated("wh_1", "whsec_new1".into(), Some(expires), now, None);
        assert_eq!(next.last_four().as_deref(), Some("new1"));
        let (previous, until) = next.previous.as_ref().expect("an overlap");
        assert_eq!(previous.expose_secret(), "whsec_old0");
        assert_eq!(*until, expires);
        assert_eq!(next.rotated_at, Some(now));
        let other = held.rotated("wh_2", "whsec_new2".into(), Some(expires), now, None);
        assert!(other.previous.is_none());
    }

    #[test]
    fn an_owned_secret_gives_the_receiver_its_credentials() {
        let held = secret(&[("current", "whsec_abcd")], &[]);
        assert_eq!(owner_of(&held), Some(("team".into(), "acme".into())));
        let (scheme, credentials) = receivable(&held).expect("credentials");
        assert_eq!(scheme, Scheme::Hmac);
        assert_eq!(credentials.current.expose_secret(), "whsec_abcd");
        assert!(receivable(&secret(&[], &[])).is_none());
    }

    #[test]
    fn a_token_secret_is_read_as_the_token_scheme_and_its_rotation_has_two_steps() {
        let annotations = [(AUTH, AUTH_TOKEN), (WEBHOOK_ID, "w-1")];
        let held = Held::from_secret(&secret(&[("current", "Bearer old")], &annotations));
        assert_eq!(held.scheme, Scheme::Token);
        assert_eq!(
            (
                held.webhook_id.as_deref(),
                held.current.is_some(),
                held.pending
            ),
            (Some("w-1"), true, false)
        );
        let (scheme, credentials) =
            receivable(&secret(&[("current", "Bearer old")], &annotations)).expect("a token");
        assert_eq!(scheme, Scheme::Token);
        assert_eq!(credentials.current.expose_secret(), "Bearer old");

        let now = Timestamp::from_second(1_000_000).expect("a time");
        let hold = Timestamp::from_second(1_086_400).expect("a time");
        let issued = held.token_issued("w-1", "Bearer new".into(), hold, now, Some("r1".into()));
        assert!(issued.pending && issued.scheme == Scheme::Token);
        assert_eq!(
            issued.current.as_ref().map(|c| c.expose_secret()),
            Some("Bearer new")
        );
        let (old, until) = issued.previous.as_ref().expect("the old token is kept");
        assert_eq!((old.expose_secret(), *until), ("Bearer old", hold));
        let overlap_end = Timestamp::from_second(1_000_600).expect("a time");
        let confirmed = issued.token_confirmed(overlap_end);
        assert!(!confirmed.pending);
        assert_eq!(confirmed.previous.as_ref().map(|p| p.1), Some(overlap_end));
        assert_eq!(confirmed.handled_request.as_deref(), Some("r1"));
        // A token for another webhook keeps nothing of the old one.
        let fresh = held.token_issued("w-2", "Bearer other".into(), hold, now, None);
        assert!(fresh.previous.is_none());
    }

    #[test]
    fn new_tokens_are_bearer_values_of_256_random_bits() {
        let one = new_token();
        let two = new_token();
        let text = one.expose_secret();
        assert!(text.starts_with("Bearer "));
        assert_eq!(
            text.len(),
            "Bearer ".len() + 43,
            "32 bytes in unpadded base64"
        );
        assert!(http::HeaderValue::from_str(text).is_ok());
        assert_ne!(text, two.expose_secret());
    }
}
