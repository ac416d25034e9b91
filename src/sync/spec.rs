//! From a `PeopleSync` spec to the engine's settings: the mapping (profile defaults plus the
//! spec's templates) and the policy (deprovisioning, guard, scope). Pure.

use jiff::SignedDuration;

use super::cycle::{DEFAULT_CONCURRENCY, DEFAULT_OVERLAP, Settings};
use crate::crd::{
    DeprovisionAction, FutureStartersPolicy, LdapProfile, OnLeavePolicy, PeopleSyncSpec, duration,
};
use crate::directory::any;
use crate::plan::mapping::Profile;
use crate::plan::timing::Timing;
use crate::plan::{
    Deprovision, FutureStarters, Guard, Mapping, MappingError, OnLeave, Policy, Scope,
};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("no target is set: set target.ldap or target.scim")]
    NoTarget,
    #[error("set exactly one source: source.hollyhr or source.personio")]
    NoSource,
    #[error("the attribute mapping is invalid")]
    Mapping(#[from] MappingError),
    #[error("deprovision.delay: {0}")]
    Delay(#[source] duration::InvalidDuration),
    #[error("deprovision.delay is required with action DisableThenDelete")]
    MissingDelay,
    #[error(
        "{field}: {name:?} is not a time zone PeopleSync knows (an IANA name such as Europe/Berlin); no transition is timed from a guess"
    )]
    TimeZone { field: String, name: String },
    #[error("{field}: {value:?} is not a local time HH:MM")]
    TimeOfDay { field: &'static str, value: String },
}

impl SpecError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SpecError::Mapping(_) => "InvalidMapping",
            SpecError::TimeZone { .. } => "InvalidTimeZone",
            _ => "InvalidSpec",
        }
    }
}

/// The attributes adoption matches by when the spec names none.
fn default_match_by(profile: Profile) -> Vec<String> {
    let names: &[&str] = match profile {
        Profile::Ldap(LdapProfile::ActiveDirectory) => &["mail", "sAMAccountName"],
        Profile::Ldap(_) => &["mail", "uid"],
        Profile::Scim => &["emails.work", "userName"],
    };
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// `spec.lifecycle`'s time zones and hours. An unknown zone is an error naming the field:
/// nothing is timed from a guess.
fn timing(lifecycle: Option<&crate::crd::LifecycleSpec>) -> Result<Timing, SpecError> {
    let Some(lifecycle) = lifecycle else {
        return Ok(Timing::default());
    };
    let zone = |field: String, name: &str| {
        jiff::tz::TimeZone::get(name).map_err(|_| SpecError::TimeZone {
            field,
            name: name.to_owned(),
        })
    };
    let time = |field: &'static str, value: &str| {
        jiff::civil::Time::strptime("%H:%M", value).map_err(|_| SpecError::TimeOfDay {
            field,
            value: value.to_owned(),
        })
    };
    Ok(Timing {
        zone: match &lifecycle.time_zone {
            Some(name) => zone("lifecycle.timeZone".into(), name)?,
            None => jiff::tz::TimeZone::UTC,
        },
        by_work_place: lifecycle
            .time_zones
            .iter()
            .map(|(place, name)| {
                Ok((
                    place.clone(),
                    zone(format!("lifecycle.timeZones[{place:?}]"), name)?,
                ))
            })
            .collect::<Result<_, SpecError>>()?,
        enable_at: match &lifecycle.enable_at {
            Some(value) => time("lifecycle.enableAt", value)?,
            None => jiff::civil::Time::midnight(),
        },
        disable_at: match lifecycle.disable_at.as_deref() {
            None | Some("24:00") => None,
            Some(value) => Some(time("lifecycle.disableAt", value)?),
        },
        provision_before: lifecycle
            .provision_before
            .map(|days| i32::try_from(days.min(365)).unwrap_or(365)),
    })
}

pub fn settings(spec: &PeopleSyncSpec) -> Result<Settings, SpecError> {
    let profile = any::profile(&spec.target).ok_or(SpecError::NoTarget)?;
    let mapping = Mapping::new(profile, &any::attribute_overrides(&spec.target))?;
    let deprovision = match &spec.deprovision {
        None => Deprovision::Disable,
        Some(d) => match d.action {
            DeprovisionAction::Disable => Deprovision::Disable,
            DeprovisionAction::Delete => Deprovision::Delete,
            DeprovisionAction::DisableThenDelete => {
                let raw = d.delay.as_deref().ok_or(SpecError::MissingDelay)?;
                let delay = duration::parse(raw).map_err(SpecError::Delay)?;
                Deprovision::DisableThenDelete {
                    delay: SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX),
                }
            }
        },
    };
    let guard = spec
        .guard
        .as_ref()
        .map(|g| Guard {
            max_count: g.max_count,
            max_percent: g.max_percent,
        })
        .unwrap_or_default();
    Ok(Settings {
        mapping,
        policy: Policy {
            future_starters: match spec.lifecycle.as_ref().map(|l| l.future_starters) {
                Some(FutureStartersPolicy::Skip) => FutureStarters::Skip,
                _ => FutureStarters::ProvisionDisabled,
            },
            on_leave: match spec.lifecycle.as_ref().map(|l| l.on_leave) {
                Some(OnLeavePolicy::Disable) => OnLeave::Disable,
                _ => OnLeave::Keep,
            },
            deprovision,
            guard,
            scope: Scope::from_spec(spec.scope.as_ref()),
            timing: timing(spec.lifecycle.as_ref())?,
            adoption: match &spec.adoption {
                Some(adoption) if adoption.enabled && !adoption.match_by.is_empty() => {
                    adoption.match_by.clone()
                }
                Some(adoption) if adoption.enabled => default_match_by(profile),
                _ => Vec::new(),
            },
            ..Policy::default()
        },
        concurrency: DEFAULT_CONCURRENCY,
        overlap: DEFAULT_OVERLAP,
        dry_run: spec.dry_run,
        chunk: super::stream::CHUNK,
        on_step: None,
        progress: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> PeopleSyncSpec {
        let mut spec = serde_json::json!({
            "source": {"hollyhr": {"baseUrl": "https://acme.hollyhr.com/api/v1", "apiKeySecretRef": {"name": "h", "key": "k"}}},
            "target": {"scim": {"baseUrl": "https://scim.example.com/v2", "tokenSecretRef": {"name": "s", "key": "t"}}}
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(spec).expect("a spec")
    }

    #[test]
    fn time_zones_and_hours_are_read_and_an_unknown_zone_names_its_field() {
        let settings = settings(&spec(serde_json::json!({"lifecycle": {
            "timeZone": "America/Los_Angeles",
            "timeZones": {"Sydney Office": "Australia/Sydney"},
            "enableAt": "08:30", "disableAt": "24:00", "provisionBefore": 3
        }})))
        .expect("valid");
        let timing = &settings.policy.timing;
        assert_eq!(timing.zone.iana_name(), Some("America/Los_Angeles"));
        assert_eq!(
            timing.by_work_place["Sydney Office"].iana_name(),
            Some("Australia/Sydney")
        );
        assert_eq!(timing.enable_at, jiff::civil::Time::constant(8, 30, 0, 0));
        assert_eq!(timing.disable_at, None, "24:00 is the end of the day");
        assert_eq!(timing.provision_before, Some(3));

        let error = settings_error(serde_json::json!({"lifecycle": {
            "timeZones": {"Berlin Office": "Europe/Berln"}
        }}));
        assert_eq!(error.reason(), "InvalidTimeZone");
        let message = error.to_string();
        assert!(
            message.contains("lifecycle.timeZones[\"Berlin Office\"]")
                && message.contains("Europe/Berln"),
            "{message}"
        );
        let error = settings_error(serde_json::json!({"lifecycle": {"timeZone": "PST8PDT-ish"}}));
        assert!(
            error.to_string().starts_with("lifecycle.timeZone:"),
            "{error}"
        );
    }

    fn settings_error(extra: serde_json::Value) -> SpecError {
        match settings(&spec(extra)) {
            Ok(_) => panic!("accepted"),
            Err(error) => error,
        }
    }

    #[test]
    fn defaults_disable_leavers_with_the_default_guard() {
        let settings = settings(&spec(serde_json::json!({}))).expect("valid");
        assert_eq!(settings.policy.deprovision, Deprovision::Disable);
        assert_eq!(settings.policy.guard, Guard::default());
        assert!(!settings.dry_run);
        assert!(settings.mapping.rules().contains_key("userName"));
        assert!(
            settings.policy.adoption.is_empty(),
            "adoption is off by default"
        );
    }

    #[test]
    fn the_spec_sets_the_deprovision_action_guard_dry_run_and_templates() {
        let settings = settings(&spec(serde_json::json!({
            "deprovision": {"action": "DisableThenDelete", "delay": "720h"},
            "guard": {"maxCount": 3, "maxPercent": 1},
            "lifecycle": {"futureStarters": "Skip"},
            "adoption": {"enabled": true},
            "dryRun": true,
        })))
        .expect("valid");
        assert_eq!(
            settings.policy.deprovision,
            Deprovision::DisableThenDelete {
                delay: SignedDuration::from_hours(720)
            }
        );
        assert_eq!(
            settings.policy.guard,
            Guard {
                max_count: 3,
                max_percent: 1
            }
        );
        assert!(settings.dry_run);
        assert_eq!(settings.policy.future_starters, FutureStarters::Skip);
        assert_eq!(settings.policy.adoption, ["emails.work", "userName"]);
    }

    #[test]
    fn a_template_that_does_not_compile_is_an_invalid_mapping() {
        let mut broken = spec(serde_json::json!({}));
        if let Some(scim) = broken.target.scim.as_mut() {
            scim.attributes
                .insert("title".into(), "{{ job_title ".into());
        }
        let error = settings(&broken).expect_err("invalid");
        assert_eq!(error.reason(), "InvalidMapping");
        assert!(crate::telemetry::report(&error).contains("title"));
    }
}
