//! `peoplesync explain --person <id>`: why PeopleSync does what it does for one person — the
//! safe source record, the scope and lifecycle decision, the mapped attributes, the directory
//! entry it matched, and the planned changes with old and new values. `--apply` carries them out
//! now. This is an operator's tool on a terminal: unlike logs and status, it prints values.

use std::fmt::Write as _;
use std::path::PathBuf;

use jiff::Timestamp;

use super::CliError;
use super::sync::{Standalone, SyncCliError};
use crate::directory::{Attributes, Directory, Entry};
use crate::plan::{self, Action, Coverage, Inputs, Plan, Policy};
use crate::source::{PeopleSource, Person};
use crate::sync::engine::{self, SyncState};
use crate::sync::stream::DirectoryIndex;

#[derive(Debug, Clone)]
pub struct ExplainJob {
    pub config: PathBuf,
    pub secrets_dir: PathBuf,
    pub person: String,
    pub apply: bool,
}

fn value_of(attributes: &Attributes, name: &str) -> String {
    plan::attribute_values(attributes, name)
        .map(|values| values.join(", "))
        .unwrap_or_default()
}

/// The explanation as text (pure: everything it shows is passed in).
pub fn render(
    source: &str,
    person: &Person,
    policy: &Policy,
    mapped: Result<&Attributes, &plan::MappingError>,
    entry: Option<&Entry>,
    plan: &Plan,
    now: Timestamp,
) -> String {
    let mut out = String::new();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let or_dash = |v: Option<String>| v.filter(|v| !v.is_empty()).unwrap_or_else(|| "—".into());
    let projection = match source {
        "HollyHR" => "HollyHR, safe projection",
        other => other,
    };
    let _ = writeln!(out, "Person {} ({projection})", person.id);
    let rows = [
        ("display name", Some(person.display_name.clone())),
        ("work email", person.work_email.clone()),
        ("job title", person.job_title.clone()),
        (
            "department",
            person
                .department
                .as_ref()
                .map(|d| format!("{} ({})", d.name, d.id)),
        ),
        ("manager", person.manager.as_ref().map(|m| m.id.clone())),
        ("start date", person.start_date.map(|d| d.to_string())),
        ("end date", person.end_date.map(|d| d.to_string())),
        ("status", person.status.clone()),
        ("updated at", Some(person.updated_at.to_string())),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "  {label:<14} {}", or_dash(value));
    }
    let lifecycle = match person.lifecycle(today) {
        crate::source::hollyhr::model::Lifecycle::Active => "active",
        crate::source::hollyhr::model::Lifecycle::Leaver => "leaver (past the end date)",
        crate::source::hollyhr::model::Lifecycle::FutureStarter => "future starter",
        crate::source::hollyhr::model::Lifecycle::OnLeave => "on leave (spec.lifecycle.onLeave)",
    };
    let _ = writeln!(out, "  {:<14} {lifecycle}", "lifecycle");
    let _ = writeln!(
        out,
        "Scope            {}",
        if policy.scope.admits(person) {
            "in scope"
        } else {
            "out of scope (spec.scope): not provisioned; an existing entry is deprovisioned"
        }
    );
    match mapped {
        Ok(attributes) => {
            let _ = writeln!(out, "Mapped attributes");
            for (name, values) in attributes {
                let _ = writeln!(out, "  {name:<26} {}", values.join(", "));
            }
        }
        Err(error) => {
            let _ = writeln!(out, "Mapping failed   {error}");
        }
    }
    match entry {
        Some(entry) => {
            let _ = writeln!(
                out,
                "Directory        {} ({}), matched by its anchor",
                entry.id,
                if entry.enabled { "enabled" } else { "disabled" }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Directory        no entry carries this person's anchor"
            );
        }
    }
    let steps: Vec<_> = plan
        .steps
        .iter()
        .chain(&plan.held)
        .filter(|s| s.anchor == person.id)
        .collect();
    if steps.is_empty() {
        let _ = writeln!(
            out,
            "Plan             nothing to do: the directory matches HollyHR"
        );
    } else {
        let _ = writeln!(out, "Plan");
        for step in steps {
            let held = if plan.held.contains(step) {
                " (held by the guard)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {:<14} because {}{held}",
                step.action.name(),
                step.reason.as_str()
            );
            let changes: Vec<(String, String)> = match &step.action {
                Action::Create {
                    attributes,
                    references,
                    ..
                } => attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.join(", ")))
                    .chain(references.iter().map(|(k, v)| {
                        (
                            k.clone(),
                            format!("the entry of {}", v.clone().unwrap_or_default()),
                        )
                    }))
                    .collect(),
                Action::Update { set } => set
                    .iter()
                    .map(|(k, v)| {
                        let old = entry
                            .map(|e| value_of(&e.attributes, k))
                            .unwrap_or_default();
                        (
                            k.clone(),
                            format!("{} → {}", or_dash(Some(old)), or_dash(Some(v.join(", ")))),
                        )
                    })
                    .collect(),
                Action::Rename { new_rdn_value } => vec![("rdn".into(), new_rdn_value.clone())],
                Action::SetReferences { set } => set
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_ref()
                                .map_or("(removed)".into(), |a| format!("the entry of {a}")),
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (name, change) in changes {
                let _ = writeln!(out, "    {name:<24} {change}");
            }
        }
    }
    for failure in plan.failures.iter().filter(|f| f.anchor == person.id) {
        let _ = writeln!(
            out,
            "Failure          {} {}",
            failure.reason, failure.message
        );
    }
    out
}

pub async fn run(job: ExplainJob) -> Result<(), CliError> {
    let standalone = Standalone::connect(&job.config, &job.secrets_dir).await?;
    print!("{}", explain(standalone, &job.person, job.apply).await?);
    Ok(())
}

/// Explains one person against a connected source and directory (and with `apply`, carries out
/// the planned changes): the text to print.
pub async fn explain(
    mut standalone: Standalone,
    person_id: &str,
    apply: bool,
) -> Result<String, CliError> {
    let Some(person) = PeopleSource::person(&standalone.source, person_id)
        .await
        .map_err(SyncCliError::from)?
    else {
        return Ok(format!(
            "Person {person_id} is not in {} (or not visible to these credentials): a full cycle \
             treats a managed entry for it as vanished.\n",
            standalone.source.kind()
        ));
    };
    let directory = &standalone.directory;
    let policy = Policy {
        directory: directory.traits(),
        ..standalone.settings.policy.clone()
    };
    let cycle_error = |reason: &'static str| {
        move |e: Box<dyn std::error::Error + Send + Sync>| SyncCliError::Cycle { reason, source: e }
    };
    // The compact index (as a cycle holds it) and this person's entry in full, for the values
    // it shows; planned against the index like a webhook's targeted run.
    let (index, kept) =
        DirectoryIndex::read_keeping(directory, &standalone.settings, &policy, &person.id)
            .await
            .map_err(|e| cycle_error("DirectoryError")(Box::new(e)))?;
    let now = Timestamp::now();
    // Without --apply the run is a dry run: it plans exactly what --apply would write.
    standalone.settings.dry_run = !apply;
    let report = engine::run_people(
        &standalone.source,
        directory,
        &standalone.settings,
        &SyncState::default(),
        std::slice::from_ref(&person.id),
        &mut Some(index),
        now,
    )
    .await
    .map_err(|e| {
        let reason = e.reason();
        cycle_error(reason)(Box::new(e))
    })?;
    let plan = &report.plan;
    let entries: Vec<Entry> = kept.into_iter().collect();
    let people = [person];
    let reserved = Default::default();
    let inputs = Inputs {
        people: &people,
        org_units: None,
        entries: &entries,
        groups: &[],
        unowned: &[],
        reserved: &reserved,
        mapping: &standalone.settings.mapping,
        policy: &policy,
        coverage: Coverage::Partial,
        now,
        disabled_since: &Default::default(),
        approved: None,
    };
    // A new entry's values are the create's (unique ones checked against the whole directory).
    let created = plan.steps.iter().find_map(|s| match &s.action {
        Action::Create { attributes, .. } if s.anchor == people[0].id => Some(attributes.clone()),
        _ => None,
    });
    let mapped = match created {
        Some(attributes) => Ok(attributes),
        None => plan::mapped_attributes(&inputs, &people[0]),
    };
    let mut out = render(
        standalone.source.kind(),
        &people[0],
        &policy,
        mapped.as_ref(),
        entries.first(),
        plan,
        now,
    );
    if let Some(applied) = report.applied.as_ref().filter(|_| apply) {
        let counts: Vec<String> = applied
            .counts
            .iter()
            .map(|(action, n)| format!("{action} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "Applied          {}",
            if counts.is_empty() {
                "nothing".into()
            } else {
                counts.join(", ")
            }
        );
        for failure in &applied.failures {
            let _ = writeln!(
                out,
                "Failed           {} {}",
                failure.reason, failure.message
            );
        }
    }
    Ok(out)
}
