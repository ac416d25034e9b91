//! Cursor pagination as Personio v2 lists do it (API.md §2.3): `limit` + an opaque `cursor` that
//! is only handed out inside `_meta.links.next.href`.
//!
//! A cursor carries the list it belongs to, the position after which the next page starts, the
//! page size and the filters of the first request. So a client may follow `next.href` as it is
//! (it carries only the cursor, like Personio's examples) or re-send the same filters with the
//! cursor; different filters with a cursor are a 400. Positions are keys (an id, a sequence
//! number), never offsets, so writes between pages neither skip nor repeat anyone.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use peoplesync::source::personio::model::{Href, Links, ListMeta};

/// A query string as pairs; a parameter given twice is a 400.
pub fn parse_query(raw: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (i, (key, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(k, _)| k == key) {
            return Err(ApiError::bad_request(format!(
                "The parameter {key} is given more than once."
            )));
        }
    }
    Ok(pairs)
}

pub fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// Which list (`persons`, `employments`, `webhooks`, `activity`).
    k: String,
    /// The parent resource (a person id, a webhook id) or empty.
    s: String,
    /// The position after which the next page starts; `None` = from the start.
    a: Option<String>,
    l: usize,
    /// The filters, as a canonical query string.
    f: String,
}

/// One page request, after the cursor (if any) was unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<String>,
    /// Every parameter but `limit` and `cursor`, sorted by name.
    pub filters: Vec<(String, String)>,
}

/// Identifies one list: its kind, parent, default and largest page size.
#[derive(Debug, Clone, Copy)]
pub struct ListKind<'a> {
    pub kind: &'a str,
    pub scope: &'a str,
    pub default_limit: usize,
    pub max_limit: usize,
}

fn canonical(filters: &[(String, String)]) -> String {
    let mut sorted = filters.to_vec();
    sorted.sort();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(sorted)
        .finish()
}

impl ListKind<'_> {
    pub fn request(&self, pairs: &[(String, String)]) -> ApiResult<PageRequest> {
        let mut filters: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "limit" && k != "cursor")
            .cloned()
            .collect();
        filters.sort();
        let explicit_limit = value(pairs, "limit")
            .map(|raw| match raw.parse::<usize>() {
                Ok(n) if (1..=self.max_limit).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "limit must be an integer from 1 to {}.",
                    self.max_limit
                ))),
            })
            .transpose()?;
        let Some(raw) = value(pairs, "cursor") else {
            return Ok(PageRequest {
                limit: explicit_limit.unwrap_or(self.default_limit),
                after: None,
                filters,
            });
        };
        let cursor = self.decode(raw)?;
        if !filters.is_empty() && canonical(&filters) != cursor.f {
            return Err(ApiError::bad_request(
                "The filters differ from those of the request that issued the cursor.",
            ));
        }
        let filters = url::form_urlencoded::parse(cursor.f.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(PageRequest {
            limit: explicit_limit.unwrap_or(cursor.l),
            after: cursor.a,
            filters,
        })
    }

    fn decode(&self, raw: &str) -> ApiResult<Cursor> {
        let invalid = || ApiError::bad_request("The cursor is not one this list issued.");
        let bytes = raw
            .strip_prefix("cur_")
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .ok_or_else(invalid)?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.k != self.kind || cursor.s != self.scope {
            return Err(invalid());
        }
        Ok(cursor)
    }

    /// The cursor of the page that starts after `after`.
    pub fn cursor(&self, request: &PageRequest, after: Option<&str>) -> String {
        let cursor = Cursor {
            k: self.kind.to_owned(),
            s: self.scope.to_owned(),
            a: after.map(str::to_owned),
            l: request.limit,
            f: canonical(&request.filters),
        };
        let json = serde_json::to_vec(&cursor).expect("a cursor always serializes");
        format!("cur_{}", URL_SAFE_NO_PAD.encode(json))
    }
}

/// `_meta.links` of a page: `self` is the request as made, `next` only when another page exists.
pub fn links(origin: &str, path_and_query: &str, path: &str, next: Option<String>) -> ListMeta {
    let next = next.map(|cursor| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cursor", &cursor)
            .finish();
        Href {
            href: format!("{origin}{path}?{query}"),
        }
    });
    ListMeta {
        links: Links {
            this: Some(Href {
                href: format!("{origin}{path_and_query}"),
            }),
            next,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSONS: ListKind<'static> = ListKind {
        kind: "persons",
        scope: "",
        default_limit: 10,
        max_limit: 50,
    };

    fn pairs(query: &str) -> Vec<(String, String)> {
        parse_query(Some(query)).expect("parses")
    }

    #[test]
    fn a_cursor_carries_position_limit_and_filters() {
        let first = PERSONS
            .request(&pairs("limit=7&status=ACTIVE"))
            .expect("ok");
        assert_eq!((first.limit, first.after.as_deref()), (7, None));
        let cursor = PERSONS.cursor(&first, Some("3010"));
        assert!(cursor.starts_with("cur_"));
        let alone = PERSONS
            .request(&pairs(&format!("cursor={cursor}")))
            .expect("ok");
        assert_eq!(
            alone,
            PageRequest {
                after: Some("3010".into()),
                ..first.clone()
            }
        );
        let resent = PERSONS
            .request(&pairs(&format!("cursor={cursor}&status=ACTIVE&limit=3")))
            .expect("ok");
        assert_eq!((resent.limit, resent.filters), (3, first.filters.clone()));
        let error = PERSONS
            .request(&pairs(&format!("cursor={cursor}&status=INACTIVE")))
            .expect_err("other filters");
        assert_eq!(error.status.as_u16(), 400);
    }

    #[test]
    fn foreign_or_garbled_cursors_and_bad_limits_are_rejected() {
        let employments = ListKind {
            kind: "employments",
            scope: "3001",
            ..PERSONS
        };
        let request = employments.request(&[]).expect("ok");
        let cursor = employments.cursor(&request, Some("x"));
        assert!(
            PERSONS
                .request(&pairs(&format!("cursor={cursor}")))
                .is_err()
        );
        assert!(PERSONS.request(&pairs("cursor=cur_nope")).is_err());
        for limit in ["0", "51", "ten", "-1"] {
            assert!(
                PERSONS.request(&pairs(&format!("limit={limit}"))).is_err(),
                "{limit}"
            );
        }
        assert!(parse_query(Some("id=1&id=2")).is_err());
    }
}
