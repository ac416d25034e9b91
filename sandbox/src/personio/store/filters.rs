//! The filters of `GET /v2/persons` and `GET /v2/persons/{id}/employments` (API.md §3.1, §4.1):
//! only `.gt`/`.lt` operators, comma lists for ids and emails; anything else is a 400.

use jiff::Timestamp;

use super::super::error::{ApiError, ApiResult};
use peoplesync::source::personio::model::Person;

/// `.gt`/`.lt`/equality on a timestamp (API.md §3.1: no `.gte`/`.lte`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TimeFilter {
    eq: Option<Timestamp>,
    gt: Option<Timestamp>,
    lt: Option<Timestamp>,
}

impl TimeFilter {
    pub(super) fn matches(&self, at: Option<Timestamp>) -> bool {
        if self.eq.is_none() && self.gt.is_none() && self.lt.is_none() {
            return true;
        }
        let Some(at) = at else { return false };
        self.eq.is_none_or(|eq| at == eq)
            && self.gt.is_none_or(|gt| at > gt)
            && self.lt.is_none_or(|lt| at < lt)
    }

    fn set(&mut self, key: &str, operator: Option<&str>, raw: &str) -> ApiResult<()> {
        let at = raw
            .parse::<Timestamp>()
            .map_err(|_| ApiError::bad_request(format!("{key} must be an RFC 3339 date-time.")))?;
        match operator {
            None => self.eq = Some(at),
            Some("gt") => self.gt = Some(at),
            Some("lt") => self.lt = Some(at),
            Some(_) => return Err(unknown_operator(key)),
        }
        Ok(())
    }
}

fn unknown_operator(key: &str) -> ApiError {
    ApiError::bad_request(format!("Provided filter encoding is invalid: {key}."))
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Splits `updated_at.gt` into `("updated_at", Some("gt"))`.
fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('.') {
        Some((base, operator)) => (base, Some(operator)),
        None => (key, None),
    }
}

/// `GET /v2/persons` filters, all combined with AND. Name filters match exactly, ignoring case
/// (our decision: Personio does not say).
#[derive(Debug, Default)]
pub struct PersonFilters {
    ids: Option<Vec<String>>,
    emails: Option<Vec<String>>,
    first_name: Option<String>,
    last_name: Option<String>,
    preferred_name: Option<String>,
    created: TimeFilter,
    updated: TimeFilter,
    status: Option<String>,
}

impl PersonFilters {
    pub fn parse(pairs: &[(String, String)]) -> ApiResult<Self> {
        let mut filters = Self::default();
        for (key, raw) in pairs {
            let (base, operator) = split_key(key);
            match (base, operator) {
                ("created_at", _) => filters.created.set(key, operator, raw)?,
                ("updated_at", _) => filters.updated.set(key, operator, raw)?,
                (
                    "id" | "email" | "first_name" | "last_name" | "preferred_name" | "status",
                    Some(_),
                ) => {
                    return Err(unknown_operator(key));
                }
                ("id", None) => filters.ids = Some(list(raw)),
                ("email", None) => {
                    filters.emails = Some(list(raw).iter().map(|e| e.to_lowercase()).collect());
                }
                ("first_name", None) => filters.first_name = Some(raw.to_lowercase()),
                ("last_name", None) => filters.last_name = Some(raw.to_lowercase()),
                ("preferred_name", None) => filters.preferred_name = Some(raw.to_lowercase()),
                ("status", None) => match raw.as_str() {
                    "ACTIVE" | "INACTIVE" => filters.status = Some(raw.clone()),
                    _ => {
                        return Err(ApiError::bad_request("status must be ACTIVE or INACTIVE."));
                    }
                },
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "{key} is not a parameter of this operation."
                    )));
                }
            }
        }
        Ok(filters)
    }

    pub(super) fn matches(&self, person: &Person) -> bool {
        let text = |wanted: &Option<String>, have: &Option<String>| {
            wanted
                .as_ref()
                .is_none_or(|w| have.as_ref().is_some_and(|h| h.to_lowercase() == *w))
        };
        self.ids.as_ref().is_none_or(|ids| ids.contains(&person.id))
            && self.emails.as_ref().is_none_or(|emails| {
                person
                    .email
                    .as_ref()
                    .is_some_and(|e| emails.contains(&e.to_lowercase()))
            })
            && text(&self.first_name, &person.first_name)
            && text(&self.last_name, &person.last_name)
            && text(&self.preferred_name, &person.preferred_name)
            && self.created.matches(person.created_at)
            && self.updated.matches(person.updated_at)
            && self
                .status
                .as_ref()
                .is_none_or(|s| person.status.as_ref() == Some(s))
    }
}

/// `GET /v2/persons/{id}/employments` filters.
#[derive(Debug, Default)]
pub struct EmploymentFilters {
    pub(super) ids: Option<Vec<String>>,
    pub(super) updated: TimeFilter,
}

impl EmploymentFilters {
    pub fn parse(pairs: &[(String, String)]) -> ApiResult<Self> {
        let mut filters = Self::default();
        for (key, raw) in pairs {
            match split_key(key) {
                ("updated_at", operator) => filters.updated.set(key, operator, raw)?,
                ("id", None) => filters.ids = Some(list(raw)),
                ("id", Some(_)) => return Err(unknown_operator(key)),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "{key} is not a parameter of this operation."
                    )));
                }
            }
        }
        Ok(filters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(query: &str) -> ApiResult<PersonFilters> {
        PersonFilters::parse(&super::super::super::paging::parse_query(Some(query))?)
    }
    #[test]
    fn unknown_operators_parameters_and_malformed_dates_are_rejected() {
        for query in [
            "id.nooperator=1",
            "updated_at.gte=2026-01-01T00:00:00Z",
            "updated_at.gt=2026-01-01",
            "created_at=yesterday",
            "status=LEAVE",
            "department=1",
        ] {
            assert!(filters(query).is_err(), "{query}");
        }
        assert!(filters("updated_at.gt=2026-01-01T00:00:00Z&status=ACTIVE&id=1,2").is_ok());
    }
}
