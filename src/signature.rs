//! HollyHR webhook signatures (Decision 1 in the contract notes): signing for the sandbox and
//! constant-time verification for the receiver. Pure: no I/O, `now` is passed in.
//!
//! Two variants exist in HollyHR's own material and both are accepted:
//! - the webhooks guide's (the default): header `HollyHR-Webhook-Signature`, timestamp in Unix
//!   seconds, signed string `"{timestamp}.{raw body}"`;
//! - the SDK's: header `X-HollyHR-Signature`, RFC 3339 timestamp, signed string
//!   `"{event id}.{timestamp}.{raw body}"`.
//!
//! The key is the UTF-8 bytes of the whole `whsec_…` secret; digests are lowercase hex; a header
//! holds comma-separated `v1=` entries (one per valid secret during a rotation overlap).

use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_ID: &str = "HollyHR-Webhook-Id";
pub const HEADER_DELIVERY_ID: &str = "HollyHR-Webhook-Delivery-Id";
pub const HEADER_EVENT: &str = "HollyHR-Webhook-Event";
pub const HEADER_TIMESTAMP: &str = "HollyHR-Webhook-Timestamp";
pub const HEADER_SIGNATURE: &str = "HollyHR-Webhook-Signature";
pub const HEADER_SDK_SIGNATURE: &str = "X-HollyHR-Signature";

/// The default replay window: ±300 s around the receiver's clock.
pub const DEFAULT_TOLERANCE: SignedDuration = SignedDuration::from_secs(300);

/// At most this many `v1=` entries are looked at: HollyHR sends one per valid secret (two during
/// a rotation), so a longer list is only a way to make the receiver burn CPU.
const MAX_SIGNATURE_ENTRIES: usize = 8;

/// Which of HollyHR's two documented signing schemes a delivery uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// The webhooks guide: Unix-seconds timestamp, `"{ts}.{body}"`, `HollyHR-Webhook-Signature`.
    #[default]
    Guide,
    /// The TypeScript SDK: RFC 3339 timestamp, `"{id}.{ts}.{body}"`, `X-HollyHR-Signature`.
    Sdk,
}

impl Variant {
    /// The header the signature travels in.
    pub fn signature_header(self) -> &'static str {
        match self {
            Variant::Guide => HEADER_SIGNATURE,
            Variant::Sdk => HEADER_SDK_SIGNATURE,
        }
    }

    /// The timestamp header's value for `at`.
    pub fn format_timestamp(self, at: Timestamp) -> String {
        match self {
            Variant::Guide => at.as_second().to_string(),
            Variant::Sdk => at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        }
    }
}

fn mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

fn digest(secret: &[u8], event_id: Option<&str>, timestamp: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = mac(secret);
    if let Some(id) = event_id {
        mac.update(id.as_bytes());
        mac.update(b".");
    }
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `v1=` hex digest of one delivery under one secret.
pub fn sign(
    variant: Variant,
    secret: &str,
    event_id: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    let id = match variant {
        Variant::Guide => None,
        Variant::Sdk => Some(event_id),
    };
    hex::encode(digest(secret.as_bytes(), id, timestamp, body))
}

/// The signature header's value: one `v1=` entry per secret, current first.
pub fn header_value<'a>(
    variant: Variant,
    secrets: impl IntoIterator<Item = &'a str>,
    event_id: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|secret| format!("v1={}", sign(variant, secret, event_id, timestamp, body)))
        .collect::<Vec<_>>()
        .join(",")
}

/// What the receiver takes from a request's headers (raw strings; nothing parsed yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    pub event_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    /// `HollyHR-Webhook-Signature`.
    pub signature: Option<&'a str>,
    /// `X-HollyHR-Signature`.
    pub sdk_signature: Option<&'a str>,
}

/// Why a delivery was refused. No variant carries a secret or a computed digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("timestamp is neither Unix seconds nor RFC 3339")]
    InvalidTimestamp,
    #[error("timestamp is {skew_seconds} s away from now, outside the allowed window")]
    StaleTimestamp { skew_seconds: i64 },
    #[error("signature header has no well-formed v1= entry")]
    MalformedSignature,
    #[error("no signature matches a known secret")]
    SignatureMismatch,
    #[error("no signing secret is configured")]
    NoSecret,
}

impl VerifyError {
    /// Header problems and stale timestamps are 400; a wrong signature is 401 (the guide's rule).
    pub fn http_status(&self) -> u16 {
        match self {
            VerifyError::SignatureMismatch | VerifyError::NoSecret => 401,
            _ => 400,
        }
    }
}

/// Parses `HollyHR-Webhook-Timestamp`: integer Unix seconds (guide) or RFC 3339 (SDK).
pub fn parse_timestamp(raw: &str) -> Result<Timestamp, VerifyError> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = raw.parse().map_err(|_| VerifyError::InvalidTimestamp)?;
        return Timestamp::from_second(seconds).map_err(|_| VerifyError::InvalidTimestamp);
    }
    raw.parse::<Timestamp>()
        .map_err(|_| VerifyError::InvalidTimestamp)
}

/// The `v1=` digests of a signature header; other schemes and malformed entries are skipped.
pub fn parse_signature_header(value: &str) -> Vec<[u8; 32]> {
    value
        .split(',')
        .filter_map(|entry| entry.trim().strip_prefix("v1="))
        .filter_map(|hex_digest| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex_digest.trim(), &mut out).ok()?;
            Some(out)
        })
        .take(MAX_SIGNATURE_ENTRIES)
        .collect()
}

/// Verifies a delivery against every secret the receiver holds (current and, during an overlap,
/// previous). Accepts either variant's signed string, compares in constant time, and enforces the
/// replay window. Returns the variant that matched.
pub fn verify(
    headers: &SignedHeaders<'_>,
    body: &[u8],
    secrets: &[&[u8]],
    now: Timestamp,
    tolerance: SignedDuration,
) -> Result<Variant, VerifyError> {
    let raw_timestamp = headers
        .timestamp
        .ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
    let signature = headers
        .signature
        .or(headers.sdk_signature)
        .ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;
    let sent_at = parse_timestamp(raw_timestamp)?;
    let skew = now.duration_since(sent_at);
    if skew.abs() > tolerance {
        return Err(VerifyError::StaleTimestamp {
            skew_seconds: skew.as_secs(),
        });
    }
    let entries = parse_signature_header(signature);
    if entries.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    if secrets.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let mut candidates: Vec<(Variant, Option<&str>)> = vec![(Variant::Guide, None)];
    if let Some(id) = headers.event_id {
        candidates.push((Variant::Sdk, Some(id)));
    }
    // Every candidate is computed and compared, matched or not, so the time taken does not
    // depend on which secret or variant matched.
    let mut matched: Option<Variant> = None;
    for secret in secrets {
        for (variant, id) in &candidates {
            let expected = digest(secret, *id, raw_timestamp.trim(), body);
            for entry in &entries {
                if bool::from(expected.ct_eq(entry)) && matched.is_none() {
                    matched = Some(*variant);
                }
            }
        }
    }
    matched.ok_or(VerifyError::SignatureMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret_value";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"person.updated"}"#;

    fn now() -> Timestamp {
        Timestamp::from_second(1_780_000_000).expect("valid")
    }

    #[test]
    fn guide_signature_over_timestamp_and_body_verifies() {
        let ts = Variant::Guide.format_timestamp(now());
        let sig = header_value(Variant::Guide, [SECRET], "evt_1", &ts, BODY);
        let headers = SignedHeaders {
            event_id: Some("evt_1"),
            timestamp: Some(&ts),
            signature: Some(&sig),
            sdk_signature: None,
        };
        assert_eq!(
            verify(
                &headers,
                BODY,
                &[SECRET.as_bytes()],
                now(),
                DEFAULT_TOLERANCE
            ),
            Ok(Variant::Guide)
        );
    }

    #[test]
    fn sdk_signature_with_rfc3339_timestamp_verifies() {
        let ts = Variant::Sdk.format_timestamp(now());
        assert!(ts.ends_with(".000Z"), "{ts}");
        let sig = header_value(Variant::Sdk, [SECRET], "evt_1", &ts, BODY);
        let headers = SignedHeaders {
            event_id: Some("evt_1"),
            timestamp: Some(&ts),
            signature: None,
            sdk_signature: Some(&sig),
        };
        assert_eq!(
            verify(
                &headers,
                BODY,
                &[SECRET.as_bytes()],
                now(),
                DEFAULT_TOLERANCE
            ),
            Ok(Variant::Sdk)
        );
    }

    #[test]
    fn known_vectors_match_an_independent_hmac() {
        // Computed with Python's hmac module over the exact signed strings of each variant.
        assert_eq!(
            sign(Variant::Guide, "whsec_k", "evt_9", "1700000000", b"{}"),
            "8b20524faff2b12e1089e404a8cf60fbe577e5320e899ebff7329ebbcb9ada22"
        );
        let ts =
            Variant::Sdk.format_timestamp(Timestamp::from_second(1_700_000_000).expect("valid"));
        assert_eq!(ts, "2023-11-14T22:13:20.000Z");
        assert_eq!(
            sign(Variant::Sdk, "whsec_k", "evt_9", &ts, b"{}"),
            "14489bdf3827a591fa72adafc5a67e5f6a4028f06fc1e26b153e609270048ec6"
        );
    }

    #[test]
    fn any_entry_matching_any_secret_is_accepted_during_rotation() {
        let ts = Variant::Guide.format_timestamp(now());
        let sig = header_value(Variant::Guide, ["whsec_new", "whsec_old"], "evt", &ts, BODY);
        assert_eq!(sig.matches("v1=").count(), 2);
        for held in ["whsec_new", "whsec_old"] {
            let headers = SignedHeaders {
                timestamp: Some(&ts),
                signature: Some(&sig),
                ..Default::default()
            };
            assert!(verify(&headers, BODY, &[held.as_bytes()], now(), DEFAULT_TOLERANCE).is_ok());
        }
    }

    #[test]
    fn wrong_secret_tampered_body_and_stale_timestamps_are_rejected() {
        let ts = Variant::Guide.format_timestamp(now());
        let sig = header_value(Variant::Guide, [SECRET], "evt", &ts, BODY);
        let headers = SignedHeaders {
            timestamp: Some(&ts),
            signature: Some(&sig),
            ..Default::default()
        };
        assert_eq!(
            verify(&headers, BODY, &[b"whsec_other"], now(), DEFAULT_TOLERANCE),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(
                &headers,
                b"{}",
                &[SECRET.as_bytes()],
                now(),
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::SignatureMismatch)
        );
        let later = now() + SignedDuration::from_secs(301);
        assert!(matches!(
            verify(
                &headers,
                BODY,
                &[SECRET.as_bytes()],
                later,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        let earlier = now() - SignedDuration::from_secs(301);
        assert!(matches!(
            verify(
                &headers,
                BODY,
                &[SECRET.as_bytes()],
                earlier,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn missing_and_malformed_headers_are_client_errors() {
        let ts = Variant::Guide.format_timestamp(now());
        let no_sig = SignedHeaders {
            timestamp: Some(&ts),
            ..Default::default()
        };
        let err = verify(
            &no_sig,
            BODY,
            &[SECRET.as_bytes()],
            now(),
            DEFAULT_TOLERANCE,
        )
        .expect_err("missing signature");
        assert_eq!(err.http_status(), 400);
        let garbage = SignedHeaders {
            timestamp: Some(&ts),
            signature: Some("v2=abc,v1=nothex"),
            ..Default::default()
        };
        assert_eq!(
            verify(
                &garbage,
                BODY,
                &[SECRET.as_bytes()],
                now(),
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::MalformedSignature)
        );
        let bad_ts = SignedHeaders {
            timestamp: Some("yesterday"),
            signature: Some("v1=00"),
            ..Default::default()
        };
        assert_eq!(
            verify(
                &bad_ts,
                BODY,
                &[SECRET.as_bytes()],
                now(),
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::InvalidTimestamp)
        );
        assert_eq!(VerifyError::SignatureMismatch.http_status(), 401);
    }
}
