//! Scoping filters: who PeopleSync manages at all.

use crate::crd::{ScopeFilter, ScopeSpec};
use crate::source::Person;

/// `spec.scope`, ready to test people against (values lower-cased once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    include: Option<Filter>,
    exclude: Option<Filter>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Filter {
    departments: Vec<String>,
    work_places: Vec<String>,
    work_types: Vec<String>,
    statuses: Vec<String>,
    email_domains: Vec<String>,
}

fn lower(values: &[String]) -> Vec<String> {
    values.iter().map(|v| v.trim().to_lowercase()).collect()
}

impl Filter {
    fn of(filter: &ScopeFilter) -> Self {
        Self {
            departments: lower(&filter.departments),
            work_places: lower(&filter.work_places),
            work_types: lower(&filter.work_types),
            statuses: lower(&filter.statuses),
            email_domains: lower(&filter.email_domains)
                .into_iter()
                .map(|d| d.trim_start_matches('@').to_owned())
                .collect(),
        }
    }

    /// The person's value for each list; a department matches by name or id.
    fn checks<'a>(&'a self, person: &Person) -> [(&'a [String], Vec<String>); 5] {
        let one = |value: Option<&str>| value.map(str::to_lowercase).into_iter().collect();
        [
            (
                &self.departments,
                person
                    .department
                    .iter()
                    .flat_map(|d| [d.name.to_lowercase(), d.id.to_lowercase()])
                    .collect(),
            ),
            (
                &self.work_places,
                one(person.work_place.as_ref().map(|w| w.label.as_str())),
            ),
            (
                &self.work_types,
                one(person.work_type.as_ref().map(|w| w.label.as_str())),
            ),
            (&self.statuses, one(person.status.as_deref())),
            (
                &self.email_domains,
                one(person
                    .work_email
                    .as_deref()
                    .and_then(|e| e.rsplit_once('@'))
                    .map(|(_, domain)| domain)),
            ),
        ]
    }

    /// Every non-empty list matches.
    fn matches_all(&self, person: &Person) -> bool {
        self.checks(person)
            .iter()
            .all(|(wanted, have)| wanted.is_empty() || have.iter().any(|h| wanted.contains(h)))
    }

    /// Some non-empty list matches.
    fn matches_any(&self, person: &Person) -> bool {
        self.checks(person)
            .iter()
            .any(|(wanted, have)| !wanted.is_empty() && have.iter().any(|h| wanted.contains(h)))
    }
}

impl Scope {
    pub fn from_spec(spec: Option<&ScopeSpec>) -> Self {
        Self {
            include: spec.and_then(|s| s.include.as_ref()).map(Filter::of),
            exclude: spec.and_then(|s| s.exclude.as_ref()).map(Filter::of),
        }
    }

    /// In scope: every non-empty include list matches, and no exclude list does.
    pub fn admits(&self, person: &Person) -> bool {
        self.include.as_ref().is_none_or(|f| f.matches_all(person))
            && !self.exclude.as_ref().is_some_and(|f| f.matches_any(person))
    }
}
