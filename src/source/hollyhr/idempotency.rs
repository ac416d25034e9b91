//! `Idempotency-Key`s: one per logical operation, sent unchanged on every retry of that call.
//!
//! By default a key is *derived* from the request itself: SHA-256 over the method, the path, the
//! `If-Match` value and the exact body bytes. The same intended change therefore gets the same key
//! even across a process restart (a replay returns HollyHR's original answer instead of writing
//! twice), while a different change — another body, or the same body against a newer version —
//! gets a new one. Operations whose request does not describe a distinct change (rotate-secret,
//! test, redeliver: same path, empty body) should use [`Idempotency::Unique`] or an explicit key
//! naming the logical operation, or a second rotation would only replay the first.

use sha2::{Digest, Sha256};

/// Prefix of keys the client makes, so they are recognisable in HollyHR's logs.
const PREFIX: &str = "psync-";

/// A valid `Idempotency-Key`: 8–255 printable ASCII characters (the contract's pattern).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an idempotency key must be 8–255 printable ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidIdempotencyKey> {
        let key = key.into();
        let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if (8..=255).contains(&key.len()) && printable {
            Ok(Self(key))
        } else {
            Err(InvalidIdempotencyKey)
        }
    }

    /// The key derived from a request (see the module docs).
    pub fn derive(method: &str, path: &str, if_match: Option<&str>, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        for part in [
            method.as_bytes(),
            path.as_bytes(),
            if_match.unwrap_or("").as_bytes(),
        ] {
            // Length-prefixed, so ("ab","c") and ("a","bc") never collide.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(body);
        Self(format!("{PREFIX}{}", hex::encode(hash.finalize())))
    }

    /// A fresh random key: a new logical operation each call.
    pub fn unique() -> Self {
        let bytes: [u8; 16] = rand::random();
        Self(format!("{PREFIX}u-{}", hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

/// How a mutating call gets its `Idempotency-Key`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Idempotency {
    /// Derived from method, path, `If-Match` and body (the default).
    #[default]
    Derived,
    /// A caller-chosen key naming the logical operation (e.g. `rotate:{webhook}:{generation}`).
    Key(IdempotencyKey),
    /// A random key: every call is a new operation (still reused across that call's retries).
    Unique,
}

impl Idempotency {
    /// The key for one call; computed once, before the first attempt.
    pub fn key_for(
        &self,
        method: &str,
        path: &str,
        if_match: Option<&str>,
        body: &[u8],
    ) -> IdempotencyKey {
        match self {
            Idempotency::Derived => IdempotencyKey::derive(method, path, if_match, body),
            Idempotency::Key(key) => key.clone(),
            Idempotency::Unique => IdempotencyKey::unique(),
        }
    }
}

impl From<IdempotencyKey> for Idempotency {
    fn from(key: IdempotencyKey) -> Self {
        Idempotency::Key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_stable_for_the_same_request_and_differ_otherwise() {
        let body = br#"{"job_title":"Engineer"}"#;
        let key = |m, p, e, b: &[u8]| IdempotencyKey::derive(m, p, e, b);
        let base = key("PATCH", "/people/abc/employment", Some("\"v1\""), body);
        assert_eq!(
            base,
            key("PATCH", "/people/abc/employment", Some("\"v1\""), body)
        );
        let different = [
            key("POST", "/people/abc/employment", Some("\"v1\""), body),
            key("PATCH", "/people/abd/employment", Some("\"v1\""), body),
            key("PATCH", "/people/abc/employment", Some("\"v2\""), body),
            key("PATCH", "/people/abc/employment", None, body),
            key("PATCH", "/people/abc/employment", Some("\"v1\""), b"{}"),
        ];
        for other in different {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn field_boundaries_cannot_be_shifted_to_collide() {
        assert_ne!(
            IdempotencyKey::derive("POST", "/ab", None, b""),
            IdempotencyKey::derive("POS", "T/ab", None, b"")
        );
    }

    #[test]
    fn made_keys_satisfy_the_contract_pattern() {
        for key in [
            IdempotencyKey::derive("POST", "/webhooks", None, b"{}"),
            IdempotencyKey::unique(),
        ] {
            assert!(IdempotencyKey::new(key.as_str()).is_ok(), "{key:?}");
            assert!(key.as_str().starts_with("psync-"));
        }
        assert_ne!(IdempotencyKey::unique(), IdempotencyKey::unique());
    }

    #[test]
    fn explicit_keys_are_validated() {
        let cases = [
            ("short", false),
            ("exactly8", true),
            ("has\nnewline", false),
            ("ünïcode-key", false),
            ("rotate:wh_1:2", true),
        ];
        for (key, ok) in cases {
            assert_eq!(IdempotencyKey::new(key).is_ok(), ok, "{key:?}");
        }
        assert!(IdempotencyKey::new("k".repeat(256)).is_err());
    }

    #[test]
    fn an_explicit_key_is_used_as_is() {
        let key = IdempotencyKey::new("create-webhook-peoplesync").expect("valid key");
        let chosen = Idempotency::from(key.clone()).key_for("POST", "/webhooks", None, b"{}");
        assert_eq!(chosen, key);
    }
}
