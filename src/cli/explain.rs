//! `peoplesync explain --person <id>`: why PeopleSync does what it does for one person — the
//! safe source record, the scope and lifecycle decision, the mapped attributes, the directory
//! entry it matched, and the planned changes with old and new values. `--apply` carries them out
//! now. This is an operator's tool on a terminal: unlike logs and status, it prints values.

use std::fmt::Write as _;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::Serialize;

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
    pub output: super::Output,
}

fn value_of(attributes: &Attributes, name: &str) -> String {
    plan::attribute_values(attributes, name)
        .map(|values| values.join(", "))
        .unwrap_or_default()
}

/// What `explain` found for one person: printed as text for people, or as JSON or YAML
/// (`--output`) for scripts. It holds values (the safe projection's and the directory's): an
/// operator's tool, never a log line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `HollyHR`, `Personio`.
    pub source: String,
    pub person_id: String,
    /// The source's record; `None` when the source does not know the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_scope: Option<bool>,
    /// The person's next lifecycle transition (`spec.lifecycle`), in UTC and their local time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_transition: Option<NextTransition>,
    /// The attributes the mapping gives the person (a new entry's: the create's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapped: Option<Attributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping_error: Option<String>,
    /// The managed entry carrying the person's anchor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntrySummary>,
    pub plan: Vec<PlannedStep>,
    pub failures: Vec<FailureSummary>,
    /// With `--apply`: what was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedSummary>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NextTransition {
    /// `provision`, `enable` or `disable`.
    pub transition: &'static str,
    /// RFC 3339 in UTC.
    pub at: String,
    /// The same instant in the person's time zone (RFC 9557, with the zone's name).
    pub local: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntrySummary {
    /// A DN (LDAP) or resource id (SCIM).
    pub id: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    pub action: &'static str,
    pub reason: &'static str,
    /// Held by the deprovision guard.
    pub held: bool,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub attribute: String,
    /// The entry's value before (updates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureSummary {
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedSummary {
    pub counts: std::collections::BTreeMap<&'static str, u64>,
    pub failures: Vec<FailureSummary>,
}

impl Explanation {
    /// The explanation (pure: everything it shows is passed in).
    pub fn of(
        source: &str,
        person: &Person,
        policy: &Policy,
        mapped: Result<&Attributes, &plan::MappingError>,
        entry: Option<&Entry>,
        plan: &Plan,
        now: Timestamp,
    ) -> Self {
        let timing = &policy.timing;
        let lifecycle = match timing.lifecycle(person, now).lifecycle {
            crate::source::hollyhr::model::Lifecycle::Active => "active",
            crate::source::hollyhr::model::Lifecycle::Leaver => "leaver (past the end date)",
            crate::source::hollyhr::model::Lifecycle::FutureStarter => "future starter",
            crate::source::hollyhr::model::Lifecycle::OnLeave => {
                "on leave (spec.lifecycle.onLeave)"
            }
        };
        let steps = plan
            .steps
            .iter()
            .map(|step| (step, false))
            .chain(plan.held.iter().map(|step| (step, true)))
            .filter(|(step, _)| step.anchor == person.id)
            .map(|(step, held)| PlannedStep {
                action: step.action.name(),
                reason: step.reason.as_str(),
                held,
                changes: changes(&step.action, entry),
            })
            .collect();
        Self {
            source: source.to_owned(),
            person_id: person.id.clone(),
            person: Some(person.clone()),
            lifecycle: Some(lifecycle),
            in_scope: Some(policy.scope.admits(person)),
            next_transition: timing
                .next_instant(person, now)
                .map(|(at, kind)| NextTransition {
                    transition: kind.as_str(),
                    at: at.to_string(),
                    local: at.to_zoned(timing.zone_of(person).clone()).to_string(),
                }),
            mapped: mapped.ok().cloned(),
            mapping_error: mapped.err().map(ToString::to_string),
            entry: entry.map(|e| EntrySummary {
                id: e.id.clone(),
                enabled: e.enabled,
            }),
            plan: steps,
            failures: plan
                .failures
                .iter()
                .filter(|f| f.anchor == person.id)
                .map(|f| FailureSummary {
                    reason: f.reason.to_string(),
                    message: f.message.clone(),
                })
                .collect(),
            applied: None,
        }
    }

    /// A person the source does not know (or does not show these credentials).
    pub fn unknown(source: &str, person_id: &str) -> Self {
        Self {
            source: source.to_owned(),
            person_id: person_id.to_owned(),
            person: None,
            lifecycle: None,
            in_scope: None,
            next_transition: None,
            mapped: None,
            mapping_error: None,
            entry: None,
            plan: Vec::new(),
            failures: Vec::new(),
            applied: None,
        }
    }

    /// The explanation as text for a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let or_dash = |v: Option<String>| v.filter(|v| !v.is_empty()).unwrap_or_else(|| "—".into());
        let Some(person) = &self.person else {
            return format!(
                "Person {} is not in {} (or not visible to these credentials): a full cycle \
                 treats a managed entry for it as vanished.\n",
                self.person_id, self.source
            );
        };
        let projection = match self.source.as_str() {
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
        let _ = writeln!(
            out,
            "  {:<14} {}",
            "lifecycle",
            self.lifecycle.unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "  {:<14} {}",
            "next",
            match &self.next_transition {
                Some(next) => format!("{} at {} ({} local)", next.transition, next.at, next.local),
                None => "no transition ahead".to_owned(),
            }
        );
        let _ = writeln!(
            out,
            "Scope            {}",
            if self.in_scope == Some(true) {
                "in scope"
            } else {
                "out of scope (spec.scope): not provisioned; an existing entry is deprovisioned"
            }
        );
        match (&self.mapped, &self.mapping_error) {
            (Some(attributes), _) => {
                let _ = writeln!(out, "Mapped attributes");
                for (name, values) in attributes {
                    let _ = writeln!(out, "  {name:<26} {}", values.join(", "));
                }
            }
            (None, error) => {
                let _ = writeln!(out, "Mapping failed   {}", error.as_deref().unwrap_or("—"));
            }
        }
        match &self.entry {
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
        if self.plan.is_empty() {
            let _ = writeln!(
                out,
                "Plan             nothing to do: the directory matches {}",
                self.source
            );
        } else {
            let _ = writeln!(out, "Plan");
            for step in &self.plan {
                let held = if step.held {
                    " (held by the guard)"
                } else {
                    ""
                };
                let _ = writeln!(out, "  {:<14} because {}{held}", step.action, step.reason);
                for change in &step.changes {
                    let shown = match &change.from {
                        Some(from) => format!(
                            "{} → {}",
                            or_dash(Some(from.clone())),
                            or_dash(Some(change.to.clone()))
                        ),
                        None => change.to.clone(),
                    };
                    let _ = writeln!(out, "    {:<24} {shown}", change.attribute);
                }
            }
        }
        for failure in &self.failures {
            let _ = writeln!(
                out,
                "Failure          {} {}",
                failure.reason, failure.message
            );
        }
        if let Some(applied) = &self.applied {
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
        out
    }

    /// The explanation in `output`'s form.
    pub fn render(&self, output: super::Output) -> Result<String, CliError> {
        match output {
            super::Output::Table => Ok(self.text()),
            super::Output::Json => serde_json::to_string_pretty(self)
                .map(|mut text| {
                    text.push('\n');
                    text
                })
                .map_err(|e| CliError::Encode(e.to_string())),
            super::Output::Yaml => {
                serde_yaml_ng::to_string(self).map_err(|e| CliError::Encode(e.to_string()))
            }
        }
    }
}

/// The attribute changes of one planned action (an update's with the entry's old value).
fn changes(action: &Action, entry: Option<&Entry>) -> Vec<Change> {
    let to = |attribute: &str, value: String| Change {
        attribute: attribute.to_owned(),
        from: None,
        to: value,
    };
    match action {
        Action::Create {
            attributes,
            references,
            ..
        } => attributes
            .iter()
            .map(|(k, v)| to(k, v.join(", ")))
            .chain(
                references
                    .iter()
                    .map(|(k, v)| to(k, format!("the entry of {}", v.clone().unwrap_or_default()))),
            )
            .collect(),
        Action::Update { set } => set
            .iter()
            .map(|(k, v)| Change {
                attribute: k.clone(),
                from: Some(
                    entry
                        .map(|e| value_of(&e.attributes, k))
                        .unwrap_or_default(),
                ),
                to: v.join(", "),
            })
            .collect(),
        Action::Rename { new_rdn_value } => vec![to("rdn", new_rdn_value.clone())],
        Action::SetReferences { set } => set
            .iter()
            .map(|(k, v)| {
                to(
                    k,
                    v.as_ref()
                        .map_or("(removed)".into(), |a| format!("the entry of {a}")),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub async fn run(job: ExplainJob) -> Result<(), CliError> {
    let standalone = Standalone::connect(&job.config, &job.secrets_dir).await?;
    let explanation = explain(standalone, &job.person, job.apply).await?;
    print!("{}", explanation.render(job.output)?);
    Ok(())
}

/// Explains one person against a connected source and directory (and with `apply`, carries out
/// the planned changes).
pub async fn explain(
    mut standalone: Standalone,
    person_id: &str,
    apply: bool,
) -> Result<Explanation, CliError> {
    let Some(person) = PeopleSource::person(&standalone.source, person_id)
        .await
        .map_err(SyncCliError::from)?
    else {
        return Ok(Explanation::unknown(standalone.source.kind(), person_id));
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
    let mut explanation = Explanation::of(
        standalone.source.kind(),
        &people[0],
        &policy,
        mapped.as_ref(),
        entries.first(),
        plan,
        now,
    );
    if apply && let Some(applied) = &report.applied {
        explanation.applied = Some(AppliedSummary {
            counts: applied.counts.clone(),
            failures: applied
                .failures
                .iter()
                .map(|f| FailureSummary {
                    reason: f.reason.to_string(),
                    message: f.message.clone(),
                })
                .collect(),
        });
    }
    Ok(explanation)
}
