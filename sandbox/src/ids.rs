//! Identifier formats of the contract (API.md §2.1) and the sandbox's generators.
//!
//! Person ids are 12 characters of Crockford-like base32; every other id is
//! `<prefix>_<seg>.<seg>.<seg>` ("encrypted public ids"). The sandbox derives them from a hash of
//! a stable name, so the same unit always has the same id (Decision 10).

use sha2::{Digest, Sha256};

pub const PERSON_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Base64url without padding: the segment alphabet `[A-Za-z0-9_-]`.
const SEGMENT_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn is_person_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| PERSON_ALPHABET.contains(&b))
}

/// `^<prefix>_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`
pub fn is_encrypted_id(prefix: &str, id: &str) -> bool {
    let Some(rest) = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
    else {
        return false;
    };
    let segments: Vec<&str> = rest.split('.').collect();
    segments.len() == 3
        && segments.iter().all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// A stable encrypted-style id for `name` under `prefix`.
pub fn encrypted_id(prefix: &str, name: &str) -> String {
    let hash = Sha256::digest(format!("{prefix}:{name}").as_bytes());
    let segment = |bytes: &[u8]| -> String {
        bytes
            .iter()
            .map(|b| SEGMENT_ALPHABET[(*b & 63) as usize] as char)
            .collect()
    };
    format!(
        "{prefix}_{}.{}.{}",
        segment(&hash[0..8]),
        segment(&hash[8..20]),
        segment(&hash[20..32])
    )
}

/// A person id from 60 random bits.
pub fn person_id(bits: u64) -> String {
    (0..12)
        .map(|i| PERSON_ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// `req-<hex>`: `request_id` must match `^[a-zA-Z0-9._:-]{8,64}$` (no underscore).
pub fn request_id(n: u64, salt: u64) -> String {
    format!("req-{salt:08x}{n:012x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_match_the_contract_patterns() {
        let id = encrypted_id("org_unit", "Engineering");
        assert!(is_encrypted_id("org_unit", &id), "{id}");
        assert_eq!(id, encrypted_id("org_unit", "Engineering"), "stable");
        assert!(!is_encrypted_id("org_unit", "org_unit_a.b"));
        assert!(!is_encrypted_id("wh", &id));
        let person = person_id(0x0fff_ffff_ffff_ffff);
        assert!(is_person_id(&person), "{person}");
        assert!(!is_person_id("ABCDEFGHJKMN"));
        assert!(
            !is_person_id("abcdefghijkl"),
            "i and l are not in the alphabet"
        );
        let req = request_id(7, 0xdead);
        assert!(req.len() >= 8 && req.len() <= 64);
        assert!(
            req.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-".contains(&b))
        );
    }
}
