//! Persons and employments as the API shows them: the status rules (derived person status,
//! time-driven employment status) and the reads (pages in id order, most recent employment
//! first).

use jiff::civil::Date;

use super::super::error::{ApiError, ApiResult};
use super::super::seed::person_status;
use super::filters::{EmploymentFilters, PersonFilters};
use super::{PersonRecord, State};
use peoplesync::source::personio::model::{Employment, IdRef, Person};

pub(super) fn parse_day(value: Option<&str>) -> Option<Date> {
    value.and_then(|v| v.parse::<Date>().ok())
}

/// The status an employment shows on `today`: a termination takes effect at 00:00 UTC the day
/// after its date, onboarding ends on the start date. Time-driven changes like these move no
/// `updated_at` and emit no event (Personio reports them only through `employment.started` /
/// `employment.terminated`, which the sandbox does not send on effective dates).
pub fn effective_status(employment: &Employment, today: Date) -> Option<String> {
    let stored = employment.status.as_deref()?;
    let ended = parse_day(
        employment
            .termination
            .as_ref()
            .and_then(|t| t.termination_date.as_deref()),
    )
    .is_some_and(|day| day < today);
    let started =
        parse_day(employment.employment_start_date.as_deref()).is_none_or(|day| day <= today);
    let shown = match stored {
        "ACTIVE" | "LEAVE" | "ONBOARDING" if ended => "INACTIVE",
        "ONBOARDING" if started => "ACTIVE",
        other => other,
    };
    Some(shown.to_owned())
}

pub fn render_employment(employment: &Employment, today: Date) -> Employment {
    let mut shown = employment.clone();
    shown.status = effective_status(employment, today);
    shown
}

pub fn render_person(record: &PersonRecord, today: Date) -> Person {
    let mut person = record.person.clone();
    let latest = record
        .employments
        .first()
        .and_then(|e| effective_status(e, today));
    person.status = Some(person_status(latest.as_deref()).to_owned());
    person.employments = record
        .employments
        .iter()
        .map(|e| IdRef::new(e.id.clone()))
        .collect();
    person
}

/// One page of a list: the items and the position of the last one when another page exists.
pub struct Slice<T> {
    pub items: Vec<T>,
    pub more_after: Option<String>,
}

pub(super) fn person_key(id: &str) -> Option<u64> {
    // Personio ids are numeric strings; anything else names nobody.
    id.parse::<u64>().ok().filter(|_| !id.starts_with('+'))
}

impl State {
    pub fn person(&self, id: &str) -> ApiResult<&PersonRecord> {
        person_key(id)
            .and_then(|key| self.persons.get(&key))
            .ok_or_else(|| ApiError::not_found("person"))
    }

    pub(super) fn person_mut(&mut self, id: &str) -> ApiResult<&mut PersonRecord> {
        person_key(id)
            .and_then(|key| self.persons.get_mut(&key))
            .ok_or_else(|| ApiError::not_found("person"))
    }

    /// A page of persons in id order, starting after the person id `after`.
    pub fn list_persons(
        &self,
        filters: &PersonFilters,
        after: Option<&str>,
        limit: usize,
        today: Date,
    ) -> ApiResult<Slice<Person>> {
        let start = match after {
            None => 0,
            Some(id) => person_key(id)
                .ok_or_else(|| ApiError::bad_request("The cursor is not one this list issued."))?
                .saturating_add(1),
        };
        let mut items = Vec::with_capacity(limit + 1);
        for record in self.persons.range(start..).map(|(_, r)| r) {
            let person = render_person(record, today);
            if filters.matches(&person) {
                items.push(person);
                if items.len() > limit {
                    break;
                }
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let more_after = more.then(|| items.last().map(|p| p.id.clone())).flatten();
        Ok(Slice { items, more_after })
    }

    /// A page of one person's employments, most recent first, after the employment id `after`.
    pub fn list_employments(
        &self,
        person_id: &str,
        filters: &EmploymentFilters,
        after: Option<&str>,
        limit: usize,
        today: Date,
    ) -> ApiResult<Slice<Employment>> {
        let record = self.person(person_id)?;
        let start = match after {
            None => 0,
            Some(id) => {
                record
                    .employments
                    .iter()
                    .position(|e| e.id == id)
                    .ok_or_else(|| ApiError::bad_request("The cursor has expired."))?
                    + 1
            }
        };
        let mut items: Vec<Employment> = record.employments[start.min(record.employments.len())..]
            .iter()
            .filter(|e| filters.ids.as_ref().is_none_or(|ids| ids.contains(&e.id)))
            .filter(|e| filters.updated.matches(e.updated_at))
            .take(limit + 1)
            .map(|e| render_employment(e, today))
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let more_after = more.then(|| items.last().map(|e| e.id.clone())).flatten();
        Ok(Slice { items, more_after })
    }

    pub fn employment(&self, person_id: &str, id: &str, today: Date) -> ApiResult<Employment> {
        self.person(person_id)?
            .employments
            .iter()
            .find(|e| e.id == id)
            .map(|e| render_employment(e, today))
            .ok_or_else(|| ApiError::not_found("employment"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::test_now as now;
    use crate::core::sandbox::Tenant as _;
    use peoplesync::source::personio::model::Termination;

    #[test]
    fn a_termination_takes_effect_the_day_after_and_onboarding_ends_on_the_start_date() {
        let today: Date = "2026-06-01".parse().expect("valid");
        let mut employment = State::seeded(1, 1, now()).persons[&3001].employments[0].clone();
        employment.status = Some("ACTIVE".into());
        employment.termination = Some(Termination {
            termination_date: Some("2026-06-01".into()),
            ..Default::default()
        });
        assert_eq!(
            effective_status(&employment, today).as_deref(),
            Some("ACTIVE")
        );
        let tomorrow: Date = "2026-06-02".parse().expect("valid");
        assert_eq!(
            effective_status(&employment, tomorrow).as_deref(),
            Some("INACTIVE")
        );
        employment.termination = None;
        employment.status = Some("ONBOARDING".into());
        employment.employment_start_date = Some("2026-06-02".into());
        assert_eq!(
            effective_status(&employment, today).as_deref(),
            Some("ONBOARDING")
        );
        assert_eq!(
            effective_status(&employment, tomorrow).as_deref(),
            Some("ACTIVE")
        );
    }
}
