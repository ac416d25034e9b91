//! Proptest strategies for the decoders' fuzz targets (tests only): arbitrary JSON, and
//! mutations of a valid answer (truncated, bytes replaced, spans inserted or repeated), which
//! reach deeper into a decoder than random bytes do. They run briefly with every `cargo test`
//! (proptest's default of 256 cases each); `PROPTEST_CASES=100000 cargo test --lib never_panic`
//! runs them long.

use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, nested up to 6 deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        // Strings that look like the values decoders expect.
        prop_oneof![
            Just("2026-06-16T09:00:00.000Z"),
            Just("2026-06-16"),
            Just("active"),
            Just("inactive"),
            Just("ACTIVE"),
            Just(""),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Object keys: the decoders' own field names, and anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "data", "pagination", "next_cursor", "has_more", "limit", "id", "type", "attributes",
            "value", "_meta", "links", "next", "href", "Resources", "totalResults", "externalId",
            "userName", "active", "name", "emails", "meta", "error", "code", "message",
            "first_name", "last_name", "display_name", "work_email", "updated_at", "created_at",
            "start_date", "end_date", "manager", "department", "status", "employments",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// `valid` mutated once: truncated, a byte replaced, bytes inserted, or a span repeated.
pub fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len().max(1);
    (
        0..4u8,
        0..len,
        0..len,
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 1..8),
    )
        .prop_map(move |(kind, at, to, byte, bytes)| {
            let mut out = valid.clone();
            let at = at.min(out.len());
            match kind {
                0 => out.truncate(at),
                1 => {
                    if let Some(b) = out.get_mut(at) {
                        *b = byte;
                    }
                }
                2 => {
                    out.splice(at..at, bytes);
                }
                _ => {
                    let (start, end) = (at.min(to), at.max(to).min(out.len()));
                    let span = out[start..end].to_vec();
                    out.splice(end..end, span);
                }
            }
            out
        })
}

/// Bytes a decoder may be handed: random, any JSON, or a mutation of `valid`.
pub fn answers(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json().prop_map(|v| v.to_string().into_bytes()),
        mutated(valid),
    ]
}
