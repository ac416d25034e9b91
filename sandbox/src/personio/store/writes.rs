//! The writes tests and the demo use to change people: create, patch and delete persons, patch
//! employments. Each validates everything before it stores anything and emits its webhook
//! events (a UI edit emits none).

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Deserializer};

use super::super::error::{ApiError, ApiResult};
use super::persons::{parse_day, person_key, render_employment, render_person};
use super::{PersonRecord, State};
use peoplesync::source::personio::model::{
    CustomAttribute, Employment, IdRef, OrgUnitRef, Person, Position, Termination,
};

const GENDERS: &[&str] = &["UNSPECIFIED", "MALE", "FEMALE", "DIVERSE"];
const EMPLOYMENT_STATUSES: &[&str] = &["ACTIVE", "INACTIVE", "ONBOARDING", "LEAVE"];
const EMPLOYMENT_TYPES: &[&str] = &["INTERNAL", "EXTERNAL"];
const TERMINATION_TYPES: &[&str] = &[
    "UNSPECIFIED",
    "EMPLOYEE",
    "FIRED",
    "DEATH",
    "CONTRACT_EXPIRED",
    "AGREEMENT",
    "SUB_COMPANY_SWITCH",
    "IRREVOCABLE_SUSPENSION",
    "CANCELLATION",
    "COLLECTIVE_AGREEMENT",
    "SETTLEMENT_AGREEMENT",
    "RETIREMENT",
    "COURT_SETTLEMENT",
    "QUIT",
];

/// `null` clears, absent leaves alone: `Some(None)` vs `None`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /v2/persons/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonPatch {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub preferred_name: Option<Option<String>>,
    pub gender: Option<String>,
    pub custom_attributes: Option<Vec<CustomAttribute>>,
}

/// `POST /v2/persons`: a person and their first employment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonCreate {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub preferred_name: Option<String>,
    #[serde(default)]
    pub gender: Option<String>,
    #[serde(default)]
    pub custom_attributes: Vec<CustomAttribute>,
    #[serde(default)]
    pub employment: EmploymentPatch,
}

/// `PATCH /v2/persons/{person_id}/employments/{id}` (and the first employment of a create).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmploymentPatch {
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub position: Option<Position>,
    #[serde(default, deserialize_with = "nullable")]
    pub supervisor: Option<Option<IdRef>>,
    #[serde(default, deserialize_with = "nullable")]
    pub office: Option<Option<IdRef>>,
    pub org_units: Option<Vec<OrgUnitRef>>,
    #[serde(default, deserialize_with = "nullable")]
    pub legal_entity: Option<Option<IdRef>>,
    pub weekly_working_hours: Option<f64>,
    pub full_time_weekly_working_hours: Option<f64>,
    pub employment_start_date: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub employment_end_date: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub probation_end_date: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub contract_end_date: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub termination: Option<Option<Termination>>,
}

fn date(field: &str, value: &str) -> ApiResult<Date> {
    let shaped = value.len() == 10 && value.as_bytes()[4] == b'-' && value.as_bytes()[7] == b'-';
    value
        .parse::<Date>()
        .ok()
        .filter(|_| shaped)
        .ok_or_else(|| ApiError::bad_request(format!("{field} must be a date (YYYY-MM-DD).")))
}

impl State {
    fn email_taken(&self, email: &str, except: Option<&str>) -> bool {
        let email = email.to_lowercase();
        self.persons.values().any(|r| {
            Some(r.person.id.as_str()) != except
                && r.person
                    .email
                    .as_ref()
                    .is_some_and(|e| e.to_lowercase() == email)
        })
    }

    fn check_email(&self, email: &str, except: Option<&str>) -> ApiResult<()> {
        let valid = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !valid {
            return Err(ApiError::bad_request("email must be an e-mail address."));
        }
        if self.email_taken(email, except) {
            return Err(ApiError::conflict("Another person already has this email."));
        }
        Ok(())
    }

    /// `POST /v2/persons`: emits `person.created` and `employment.created`.
    pub fn create_person(&mut self, create: PersonCreate, now: Timestamp) -> ApiResult<Person> {
        self.check_email(&create.email, None)?;
        check_gender(create.gender.as_deref())?;
        for (field, value) in [
            ("first_name", &create.first_name),
            ("last_name", &create.last_name),
        ] {
            if value.trim().is_empty() {
                return Err(ApiError::bad_request(format!("{field} must not be empty.")));
            }
        }
        let key = self.next_person_id;
        let id = key.to_string();
        let today = super::today(now);
        let mut employment = Employment {
            id: self.uuid(),
            status: None,
            kind: Some("INTERNAL".into()),
            position: None,
            supervisor: None,
            office: None,
            org_units: Vec::new(),
            legal_entity: Some(IdRef::new("1")),
            person: Some(IdRef::new(id.clone())),
            weekly_working_hours: Some(40.0),
            full_time_weekly_working_hours: Some(40.0),
            employment_start_date: Some(today.to_string()),
            employment_end_date: None,
            probation_end_date: None,
            contract_end_date: None,
            termination: None,
            created_at: Some(now),
            updated_at: Some(now),
        };
        self.apply_employment(&id, &mut employment, create.employment)?;
        if employment.status.is_none() {
            let future = parse_day(employment.employment_start_date.as_deref())
                .is_some_and(|start| start > today);
            employment.status = Some(if future { "ONBOARDING" } else { "ACTIVE" }.into());
        }
        let person = Person {
            id: id.clone(),
            email: Some(create.email),
            created_at: Some(now),
            updated_at: Some(now),
            first_name: Some(create.first_name),
            last_name: Some(create.last_name),
            preferred_name: create.preferred_name,
            gender: create.gender,
            status: None,
            custom_attributes: create.custom_attributes,
            employments: Vec::new(),
        };
        let employment_id = employment.id.clone();
        let record = PersonRecord {
            person,
            employments: vec![employment],
        };
        let shown = render_person(&record, today);
        self.persons.insert(key, record);
        self.next_person_id += 1;
        self.emit("person.created", &id, &id, now);
        self.emit("employment.created", &employment_id, &id, now);
        Ok(shown)
    }

    /// `PATCH /v2/persons/{id}` (`emit` false for a UI edit): moves `updated_at`.
    pub fn patch_person(
        &mut self,
        id: &str,
        patch: PersonPatch,
        now: Timestamp,
        emit: bool,
    ) -> ApiResult<Person> {
        let id = self.person(id)?.person.id.clone();
        if let Some(email) = &patch.email {
            self.check_email(email, Some(&id))?;
        }
        check_gender(patch.gender.as_deref())?;
        let record = self.person_mut(&id)?;
        let person = &mut record.person;
        if let Some(email) = patch.email {
            person.email = Some(email);
        }
        if let Some(first) = patch.first_name {
            person.first_name = Some(first);
        }
        if let Some(last) = patch.last_name {
            person.last_name = Some(last);
        }
        if let Some(preferred) = patch.preferred_name {
            person.preferred_name = preferred;
        }
        if let Some(gender) = patch.gender {
            person.gender = Some(gender);
        }
        if let Some(attributes) = patch.custom_attributes {
            person.custom_attributes = attributes;
        }
        person.updated_at = Some(now);
        let shown = render_person(record, super::today(now));
        if emit {
            self.emit("person.updated", &id, &id, now);
        }
        Ok(shown)
    }

    /// `DELETE /v2/persons/{id}`: the person is gone; emits `person.deleted` and one
    /// `employment.deleted` per employment.
    pub fn delete_person(&mut self, id: &str, now: Timestamp) -> ApiResult<()> {
        let key = person_key(id).ok_or_else(|| ApiError::not_found("person"))?;
        let record = self
            .persons
            .remove(&key)
            .ok_or_else(|| ApiError::not_found("person"))?;
        let id = record.person.id;
        self.emit("person.deleted", &id, &id, now);
        for employment in record.employments {
            self.emit("employment.deleted", &employment.id, &id, now);
        }
        Ok(())
    }

    /// `PATCH /v2/persons/{person_id}/employments/{id}` (`id` None: the latest employment, for
    /// UI edits). Emits `employment.updated`, and `employment.terminated` when a termination is
    /// set; moves the employment's `updated_at` and, when `bump_person`, the person's.
    pub fn patch_employment(
        &mut self,
        person_id: &str,
        id: Option<&str>,
        patch: EmploymentPatch,
        now: Timestamp,
        bump_person: bool,
        emit: bool,
    ) -> ApiResult<Employment> {
        let record = self.person(person_id)?;
        let person_id = record.person.id.clone();
        let index = match id {
            Some(id) => record.employments.iter().position(|e| e.id == id),
            None => (!record.employments.is_empty()).then_some(0),
        }
        .ok_or_else(|| ApiError::not_found("employment"))?;
        let terminated =
            matches!(&patch.termination, Some(Some(t)) if t.termination_date.is_some());
        let mut employment = record.employments[index].clone();
        self.apply_employment(&person_id, &mut employment, patch)?;
        employment.updated_at = Some(now);
        let employment_id = employment.id.clone();
        let shown = render_employment(&employment, super::today(now));
        let record = self.person_mut(&person_id)?;
        record.employments[index] = employment;
        sort_most_recent_first(&mut record.employments);
        if bump_person {
            record.person.updated_at = Some(now);
        }
        if emit {
            self.emit("employment.updated", &employment_id, &person_id, now);
            if terminated {
                self.emit("employment.terminated", &employment_id, &person_id, now);
            }
        }
        Ok(shown)
    }

    /// Validates `patch` against the tenant and applies it to `employment` (a copy: nothing is
    /// stored on an error).
    fn apply_employment(
        &self,
        person_id: &str,
        employment: &mut Employment,
        patch: EmploymentPatch,
    ) -> ApiResult<()> {
        if let Some(status) = patch.status {
            one_of("status", &status, EMPLOYMENT_STATUSES)?;
            employment.status = Some(status);
        }
        if let Some(kind) = patch.kind {
            one_of("type", &kind, EMPLOYMENT_TYPES)?;
            employment.kind = Some(kind);
        }
        if let Some(position) = patch.position {
            employment.position = Some(position);
        }
        if let Some(supervisor) = patch.supervisor {
            if let Some(s) = &supervisor {
                if s.id == person_id {
                    return Err(ApiError::bad_request(
                        "A person cannot supervise themselves.",
                    ));
                }
                self.person(&s.id)
                    .map_err(|_| ApiError::bad_request("supervisor.id names no person."))?;
            }
            employment.supervisor = supervisor;
        }
        if let Some(office) = patch.office {
            if let Some(o) = &office
                && !self.offices.contains(&o.id)
            {
                return Err(ApiError::bad_request("office.id names no office."));
            }
            employment.office = office;
        }
        if let Some(units) = patch.org_units {
            for unit in &units {
                if !self
                    .org_units
                    .iter()
                    .any(|u| u.id == unit.id && u.kind == unit.kind)
                {
                    return Err(ApiError::bad_request(format!(
                        "org_units: there is no {} with id {}.",
                        unit.kind, unit.id
                    )));
                }
            }
            employment.org_units = units;
        }
        if let Some(entity) = patch.legal_entity {
            employment.legal_entity = entity;
        }
        if let Some(hours) = patch.weekly_working_hours {
            employment.weekly_working_hours = Some(hours);
        }
        if let Some(hours) = patch.full_time_weekly_working_hours {
            employment.full_time_weekly_working_hours = Some(hours);
        }
        if let Some(start) = patch.employment_start_date {
            date("employment_start_date", &start)?;
            employment.employment_start_date = Some(start);
        }
        for (field, value, slot) in [
            (
                "employment_end_date",
                patch.employment_end_date,
                &mut employment.employment_end_date,
            ),
            (
                "probation_end_date",
                patch.probation_end_date,
                &mut employment.probation_end_date,
            ),
            (
                "contract_end_date",
                patch.contract_end_date,
                &mut employment.contract_end_date,
            ),
        ] {
            if let Some(value) = value {
                if let Some(day) = &value {
                    date(field, day)?;
                }
                *slot = value;
            }
        }
        if let Some(termination) = patch.termination {
            if let Some(t) = &termination {
                let day = t.termination_date.as_deref().ok_or_else(|| {
                    ApiError::bad_request("termination.termination_date is required.")
                })?;
                date("termination.termination_date", day)?;
                for (field, value) in [
                    ("termination.last_working_day", &t.last_working_day),
                    ("termination.terminated_at", &t.terminated_at),
                ] {
                    if let Some(value) = value {
                        date(field, value)?;
                    }
                }
                if let Some(kind) = &t.kind {
                    one_of("termination.type", kind, TERMINATION_TYPES)?;
                }
            }
            employment.termination = termination;
        }
        Ok(())
    }
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> ApiResult<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field} must be one of {}.",
            allowed.join(", ")
        )))
    }
}

fn check_gender(gender: Option<&str>) -> ApiResult<()> {
    gender.map_or(Ok(()), |g| one_of("gender", g, GENDERS))
}

/// Most recent first: the latest start date leads (ties by creation).
fn sort_most_recent_first(employments: &mut [Employment]) {
    employments.sort_by(|a, b| {
        b.employment_start_date
            .cmp(&a.employment_start_date)
            .then(b.created_at.cmp(&a.created_at))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::test_now as now;
    use crate::core::sandbox::Tenant as _;

    #[test]
    fn an_employment_change_moves_the_person_and_emits_updated_and_terminated() {
        let mut state = State::seeded(30, 3, now());
        let id = state
            .persons
            .values()
            .nth(25)
            .expect("person")
            .person
            .id
            .clone();
        let later = now() + jiff::SignedDuration::from_secs(5);
        let patch = EmploymentPatch {
            termination: Some(Some(Termination {
                termination_date: Some("2026-06-30".into()),
                ..Default::default()
            })),
            ..Default::default()
        };
        state
            .patch_employment(&id, None, patch, later, true, true)
            .expect("patched");
        assert_eq!(
            state.person(&id).expect("exists").person.updated_at,
            Some(later)
        );
        let names: Vec<&str> = state.events.iter().map(|e| e.event_name.as_str()).collect();
        assert_eq!(names, ["employment.updated", "employment.terminated"]);
        let bad = EmploymentPatch {
            supervisor: Some(Some(IdRef::new("999999"))),
            ..Default::default()
        };
        assert!(
            state
                .patch_employment(&id, None, bad, later, true, true)
                .is_err()
        );
        assert_eq!(state.events.len(), 2, "a refused write emits nothing");
    }
}
