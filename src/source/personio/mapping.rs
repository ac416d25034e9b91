//! Personio person + latest employment → the neutral [`Person`]. Pure: no I/O, no clock.
//!
//! Every Personio field is optional (a credential's readable attributes hide some), so every
//! mapped field degrades to `None` rather than failing; a person with only an id still maps.
//! Lifecycle facts Personio states outright (INACTIVE, LEAVE) travel as a [`StatusHint`]; dates
//! carry the rest (`termination_date` ends an employment, `contract_end_date` never does).

use jiff::Timestamp;
use jiff::civil::Date;

use super::config::DEFAULT_DEPARTMENT_TYPE;
use super::model;
use crate::source::Person;
use crate::source::hollyhr::model::{DepartmentRef, LabelRef, PersonRef, StatusHint};

/// [`to_person_in`] for a tenant whose departments are org units of type `department`.
pub fn to_person(
    person: &model::Person,
    employment: Option<&model::Employment>,
    departments: &dyn Fn(&str) -> Option<String>,
) -> Person {
    to_person_in(person, employment, DEFAULT_DEPARTMENT_TYPE, departments)
}

/// Maps a person and their latest employment (the authoritative one). The department is the
/// employment's first org unit of `department_type`; `departments` names it by id (`None`: the
/// id stands in for the name, as when Personio no longer knows the unit).
pub fn to_person_in(
    person: &model::Person,
    employment: Option<&model::Employment>,
    department_type: &str,
    departments: &dyn Fn(&str) -> Option<String>,
) -> Person {
    let first_name = text(person.first_name.as_deref());
    let last_name = text(person.last_name.as_deref());
    let preferred_name = text(person.preferred_name.as_deref());
    let display_name = preferred_name
        .clone()
        .or_else(|| {
            let full = [first_name.as_deref(), last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            text(Some(&full))
        })
        .unwrap_or_else(|| person.id.clone());

    let department = employment.and_then(|employment| {
        let unit = employment
            .org_units
            .iter()
            .find(|unit| unit.kind.eq_ignore_ascii_case(department_type))?;
        Some(DepartmentRef {
            id: unit.id.clone(),
            name: departments(&unit.id)
                .and_then(|name| text(Some(&name)))
                .unwrap_or_else(|| unit.id.clone()),
        })
    });
    let contracted = employment.and_then(|e| minutes(e.weekly_working_hours));
    let full_time = employment.and_then(|e| minutes(e.full_time_weekly_working_hours));
    let fte = employment.and_then(|e| {
        let weekly = e
            .weekly_working_hours
            .filter(|h| h.is_finite() && *h >= 0.0)?;
        let full = e
            .full_time_weekly_working_hours
            .filter(|h| h.is_finite() && *h > 0.0)?;
        // Four decimals: enough for any contract, and no float noise (32/40 stays 0.8).
        Some((weekly / full * 10_000.0).round() / 10_000.0)
    });

    let employment_status = employment.and_then(|e| status(e.status.as_deref()));
    let person_status = status(person.status.as_deref());
    let hint = if employment_status.as_deref() == Some("inactive")
        || person_status.as_deref() == Some("inactive")
    {
        StatusHint::Inactive
    } else if employment_status.as_deref() == Some("leave") {
        StatusHint::OnLeave
    } else {
        StatusHint::None
    };

    let end_date = employment.and_then(|e| {
        e.termination
            .as_ref()
            .and_then(|termination| date(termination.termination_date.as_deref()))
            .or_else(|| date(e.employment_end_date.as_deref()))
    });

    Person {
        id: person.id.clone(),
        work_email: text(person.email.as_deref()),
        first_name,
        preferred_name,
        last_name,
        display_name,
        staff_id: None,
        job_title: employment
            .and_then(|e| e.position.as_ref())
            .and_then(|position| text(position.title.as_deref())),
        department,
        manager: employment
            .and_then(|e| e.supervisor.as_ref())
            .filter(|supervisor| !supervisor.id.trim().is_empty())
            .map(|supervisor| PersonRef {
                id: supervisor.id.clone(),
                // Personio sends the id only; the engine resolves the manager by id.
                display_name: String::new(),
            }),
        work_place: employment
            .and_then(|e| e.office.as_ref())
            .filter(|office| !office.id.trim().is_empty())
            .map(|office| LabelRef {
                // No v2 endpoint names offices: the id is the label.
                id: office.id.clone(),
                label: office.id.clone(),
            }),
        work_type: employment
            .and_then(|e| status(e.kind.as_deref()))
            .map(|kind| LabelRef {
                id: kind.clone(),
                label: kind,
            }),
        working_pattern: None,
        contracted_weekly_minutes: contracted,
        full_time_weekly_minutes: full_time,
        fte,
        status: employment_status.or(person_status),
        start_date: employment.and_then(|e| date(e.employment_start_date.as_deref())),
        end_date,
        created_at: person
            .created_at
            .or(person.updated_at)
            .unwrap_or(Timestamp::UNIX_EPOCH),
        updated_at: person
            .updated_at
            .or(person.created_at)
            .unwrap_or(Timestamp::UNIX_EPOCH),
        hint,
    }
}

/// Trimmed, and `None` when blank: Personio sends `""` for some unset attributes.
fn text(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

/// An enum value lower-cased; `UNSPECIFIED` (Personio's "not set") is `None`.
fn status(value: Option<&str>) -> Option<String> {
    text(value)
        .map(|value| value.to_ascii_lowercase())
        .filter(|value| value != "unspecified")
}

/// Weekly hours as whole minutes; negative, non-finite or absurd values are `None`.
fn minutes(hours: Option<f64>) -> Option<u32> {
    let minutes = (hours? * 60.0).round();
    (minutes.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&minutes))
        // In range and rounded: the cast is exact.
        .then_some(minutes as u32)
}

/// `YYYY-MM-DD`; a date-time keeps its date part. Anything else is `None`, never a guess.
fn date(value: Option<&str>) -> Option<Date> {
    let value = value?.trim();
    let day = value.split_once('T').map_or(value, |(day, _)| day);
    day.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::hollyhr::model::Lifecycle;
    use jiff::civil::date as ymd;
    use serde_json::json;

    fn person(extra: serde_json::Value) -> model::Person {
        let mut value = json!({
            "id": "3003", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
            "status": "ACTIVE", "created_at": "2024-01-02T03:04:05Z", "updated_at": "2025-06-01T00:00:00Z"
        });
        merge(&mut value, extra);
        serde_json::from_value(value).expect("a person")
    }

    fn employment(extra: serde_json::Value) -> model::Employment {
        let mut value = json!({
            "id": "e-1", "status": "ACTIVE", "type": "INTERNAL", "position": {"title": "Engineer"},
            "supervisor": {"id": "42"}, "office": {"id": "7"},
            "org_units": [{"type": "team", "id": "5"}, {"type": "department", "id": 12}],
            "weekly_working_hours": 32, "full_time_weekly_working_hours": 40,
            "employment_start_date": "2024-02-01"
        });
        merge(&mut value, extra);
        serde_json::from_value(value).expect("an employment")
    }

    fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
        if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
    }

    fn names(id: &str) -> Option<String> {
        (id == "12").then(|| "Research".to_owned())
    }

    const TODAY: Date = ymd(2026, 6, 1);

    #[test]
    fn an_active_internal_employee_maps_every_field() {
        let mapped = to_person(&person(json!({})), Some(&employment(json!({}))), &names);
        assert_eq!(mapped.id, "3003");
        assert_eq!(mapped.work_email.as_deref(), Some("ada@example.com"));
        assert_eq!(mapped.display_name, "Ada Lovelace");
        assert_eq!(mapped.staff_id, None);
        assert_eq!(mapped.job_title.as_deref(), Some("Engineer"));
        assert_eq!(
            mapped.department,
            Some(DepartmentRef {
                id: "12".into(),
                name: "Research".into()
            })
        );
        assert_eq!(mapped.manager.as_ref().map(|m| m.id.as_str()), Some("42"));
        assert_eq!(
            mapped.work_place,
            Some(LabelRef {
                id: "7".into(),
                label: "7".into()
            })
        );
        assert_eq!(
            mapped.work_type.as_ref().map(|t| t.id.as_str()),
            Some("internal")
        );
        assert_eq!(mapped.contracted_weekly_minutes, Some(1920));
        assert_eq!(mapped.full_time_weekly_minutes, Some(2400));
        assert_eq!(mapped.fte, Some(0.8));
        assert_eq!(mapped.status.as_deref(), Some("active"));
        assert_eq!(mapped.start_date, Some(ymd(2024, 2, 1)));
        assert_eq!(mapped.end_date, None);
        assert_eq!(mapped.created_at.to_string(), "2024-01-02T03:04:05Z");
        assert_eq!(mapped.updated_at.to_string(), "2025-06-01T00:00:00Z");
        assert_eq!(mapped.hint, StatusHint::None);
        assert_eq!(mapped.lifecycle(TODAY), Lifecycle::Active);
    }

    /// (case, person extra, employment extra or None, status, start, end, hint, lifecycle today)
    #[test]
    fn lifecycle_facts_map_to_dates_and_hints() {
        type Case = (
            &'static str,
            serde_json::Value,
            Option<serde_json::Value>,
            Option<&'static str>,
            Option<Date>,
            Option<Date>,
            StatusHint,
            Lifecycle,
        );
        let cases: Vec<Case> = vec![
            (
                "onboarding with a future start",
                json!({}),
                Some(json!({"status": "ONBOARDING", "employment_start_date": "2026-07-01"})),
                Some("onboarding"),
                Some(ymd(2026, 7, 1)),
                None,
                StatusHint::None,
                Lifecycle::FutureStarter,
            ),
            (
                "long-term leave",
                json!({}),
                Some(json!({"status": "LEAVE"})),
                Some("leave"),
                Some(ymd(2024, 2, 1)),
                None,
                StatusHint::OnLeave,
                Lifecycle::OnLeave,
            ),
            (
                "inactive with a termination date",
                json!({"status": "INACTIVE"}),
                Some(
                    json!({"status": "INACTIVE", "termination": {"termination_date": "2026-03-31"}}),
                ),
                Some("inactive"),
                Some(ymd(2024, 2, 1)),
                Some(ymd(2026, 3, 31)),
                StatusHint::Inactive,
                Lifecycle::Leaver,
            ),
            (
                "inactive without a termination date",
                json!({"status": "INACTIVE"}),
                Some(json!({"status": "INACTIVE"})),
                Some("inactive"),
                Some(ymd(2024, 2, 1)),
                None,
                StatusHint::Inactive,
                Lifecycle::Leaver,
            ),
            (
                "a person INACTIVE though the employment says ACTIVE",
                json!({"status": "INACTIVE"}),
                Some(json!({})),
                Some("active"),
                Some(ymd(2024, 2, 1)),
                None,
                StatusHint::Inactive,
                Lifecycle::Leaver,
            ),
            (
                "a future termination is still active",
                json!({}),
                Some(
                    json!({"termination": {"termination_date": "2026-09-30", "last_working_date": "2026-09-15"}}),
                ),
                Some("active"),
                Some(ymd(2024, 2, 1)),
                Some(ymd(2026, 9, 30)),
                StatusHint::None,
                Lifecycle::Active,
            ),
            (
                "the termination date wins over the employment end date",
                json!({}),
                Some(
                    json!({"employment_end_date": "2026-12-31", "termination": {"termination_date": "2026-05-31"}}),
                ),
                Some("active"),
                Some(ymd(2024, 2, 1)),
                Some(ymd(2026, 5, 31)),
                StatusHint::None,
                Lifecycle::Leaver,
            ),
            (
                "a contract end only never ends anything",
                json!({}),
                Some(json!({"contract_end_date": "2025-12-31"})),
                Some("active"),
                Some(ymd(2024, 2, 1)),
                None,
                StatusHint::None,
                Lifecycle::Active,
            ),
            (
                "no employment: the person's status",
                json!({"status": "INACTIVE"}),
                None,
                Some("inactive"),
                None,
                None,
                StatusHint::Inactive,
                Lifecycle::Leaver,
            ),
            (
                "unparsable dates are none",
                json!({}),
                Some(json!({"employment_start_date": "01.02.2024", "employment_end_date": "soon"})),
                Some("active"),
                None,
                None,
                StatusHint::None,
                Lifecycle::Active,
            ),
        ];
        for (name, person_extra, employment_extra, status, start, end, hint, lifecycle) in cases {
            let employment = employment_extra.map(employment);
            let mapped = to_person(&person(person_extra), employment.as_ref(), &names);
            assert_eq!(mapped.status.as_deref(), status, "{name}: status");
            assert_eq!(mapped.start_date, start, "{name}: start");
            assert_eq!(mapped.end_date, end, "{name}: end");
            assert_eq!(mapped.hint, hint, "{name}: hint");
            assert_eq!(mapped.lifecycle(TODAY), lifecycle, "{name}: lifecycle");
        }
    }

    #[test]
    fn an_external_contractor_is_an_external_work_type() {
        let mapped = to_person(
            &person(json!({})),
            Some(&employment(json!({"type": "EXTERNAL"}))),
            &names,
        );
        assert_eq!(
            mapped.work_type,
            Some(LabelRef {
                id: "external".into(),
                label: "external".into()
            })
        );
        let unspecified = to_person(
            &person(json!({})),
            Some(&employment(json!({"type": "UNSPECIFIED"}))),
            &names,
        );
        assert_eq!(unspecified.work_type, None);
    }

    #[test]
    fn a_person_with_only_an_id_maps_without_panicking() {
        let bare: model::Person = serde_json::from_value(json!({"id": "9"})).expect("a person");
        let bare_employment: model::Employment =
            serde_json::from_value(json!({"id": "e-9", "status": "ACTIVE"})).expect("employment");
        for employment in [None, Some(&bare_employment)] {
            let mapped = to_person(&bare, employment, &names);
            assert_eq!(mapped.display_name, "9");
            assert_eq!(mapped.work_email, None);
            assert_eq!(mapped.department, None);
            assert_eq!(mapped.manager, None);
            assert_eq!(mapped.fte, None);
            assert_eq!(mapped.created_at, Timestamp::UNIX_EPOCH);
            assert_eq!(mapped.updated_at, Timestamp::UNIX_EPOCH);
            assert_eq!(mapped.hint, StatusHint::None);
        }
    }

    #[test]
    fn display_names_prefer_the_preferred_name_then_first_and_last() {
        let cases = [
            (json!({"preferred_name": "Countess"}), "Countess"),
            (json!({"preferred_name": "  "}), "Ada Lovelace"),
            (json!({"last_name": null}), "Ada"),
            (
                json!({"first_name": " ", "last_name": "Lovelace "}),
                "Lovelace",
            ),
            (json!({"first_name": null, "last_name": ""}), "3003"),
        ];
        for (extra, expected) in cases {
            let mapped = to_person(&person(extra.clone()), None, &names);
            assert_eq!(mapped.display_name, expected, "{extra}");
        }
    }

    #[test]
    fn a_missing_timestamp_takes_the_other_one() {
        let only_created = person(json!({"updated_at": null}));
        let mapped = to_person(&only_created, None, &names);
        assert_eq!(mapped.updated_at, mapped.created_at);
        assert_eq!(mapped.updated_at.to_string(), "2024-01-02T03:04:05Z");
    }

    #[test]
    fn departments_are_units_of_the_configured_type_named_by_the_resolver() {
        let employment = employment(json!({}));
        let teams = to_person_in(&person(json!({})), Some(&employment), "team", &names);
        // the resolver does not know team 5: its id stands in for the name
        assert_eq!(
            teams.department,
            Some(DepartmentRef {
                id: "5".into(),
                name: "5".into()
            })
        );
        let none = to_person_in(&person(json!({})), Some(&employment), "division", &names);
        assert_eq!(none.department, None);
    }

    #[test]
    fn odd_working_hours_do_not_become_minutes() {
        let mapped = to_person(
            &person(json!({})),
            Some(&employment(json!({
                "weekly_working_hours": -3, "full_time_weekly_working_hours": 0
            }))),
            &names,
        );
        assert_eq!(mapped.contracted_weekly_minutes, None);
        assert_eq!(mapped.full_time_weekly_minutes, Some(0));
        assert_eq!(mapped.fte, None);
        let fractional = to_person(
            &person(json!({})),
            Some(&employment(json!({"weekly_working_hours": 37.5}))),
            &names,
        );
        assert_eq!(fractional.contracted_weekly_minutes, Some(2250));
        assert_eq!(fractional.fte, Some(0.9375));
        assert_eq!(date(Some("2026-01-31T00:00:00Z")), Some(ymd(2026, 1, 31)));
    }
}
