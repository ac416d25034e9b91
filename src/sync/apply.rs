//! Applies a [`Plan`] to a [`Directory`]: the only code that writes to a directory.
//!
//! Steps run phase by phase (creates, renames, updates, enables, disables, references, groups,
//! deletes); within a phase the steps touch distinct entries, so up to `concurrency` of them are
//! outstanding at once. Ids are resolved from anchors when a step runs, so a manager created or
//! renamed earlier in the same plan is referenced by its new id. A per-entry error is recorded for
//! that person and the rest continue; a directory-wide error stops the run.
//!
//! Every write leaves one audit line (target `peoplesync::audit`): the action, the person's (or
//! org unit's) id, the names of the attributes written — never their values —, the plan's hash
//! and the result. The controller runs cycles in a span naming the object and the cycle's id,
//! which JSON logs carry on every line.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;

use crate::directory::{Attributes, Change, Directory, DirectoryError, Entry, Group, GroupChange};
use crate::plan::{Action, Failure, Plan, Step};

/// Anchor → directory id, for entries and for groups; updated as steps apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    pub people: HashMap<String, String>,
    pub groups: HashMap<String, String>,
}

impl Ids {
    pub fn from_listing(entries: &[Entry], groups: &[Group]) -> Self {
        Self {
            people: entries
                .iter()
                .map(|e| (e.anchor.clone(), e.id.clone()))
                .collect(),
            groups: groups
                .iter()
                .map(|g| (g.anchor.clone(), g.id.clone()))
                .collect(),
        }
    }
}

/// What a run applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Applied steps by action name.
    pub counts: BTreeMap<&'static str, u64>,
    /// Steps that failed for their person or group only.
    pub failures: Vec<Failure>,
}

/// A directory-wide error stopped the run after `applied`.
#[derive(Debug, thiserror::Error)]
#[error("failed to apply the plan: the directory failed during {action} ({reason})")]
pub struct Aborted<E: DirectoryError> {
    pub applied: Applied,
    pub action: &'static str,
    pub reason: &'static str,
    #[source]
    pub source: E,
}

/// What applying one step did to the ids.
enum Outcome {
    Person(String),
    PersonGone,
    Group(String),
    GroupGone,
    Nothing,
    /// Not attempted: the entry it works on does not exist (an earlier step for it failed).
    Skipped,
}

/// A step that cannot be attempted (see [`Outcome::Skipped`]).
struct Missing;

pub async fn apply<D: Directory>(
    directory: &D,
    plan: &Plan,
    ids: &mut Ids,
    concurrency: usize,
) -> Result<Applied, Aborted<D::Error>> {
    let mut applied = Applied::default();
    let plan_hash = plan_hash(&plan.steps);
    let mut start = 0;
    while start < plan.steps.len() {
        let phase = plan.steps[start].action.phase();
        let end = plan.steps[start..]
            .iter()
            .position(|s| s.action.phase() != phase)
            .map_or(plan.steps.len(), |n| start + n);
        let snapshot: &Ids = ids;
        // Futures from a named fn, not a closure returning an async block: the latter defeats
        // the compiler's proof that the whole cycle is `Send` inside the controller.
        let pending: Vec<_> = plan.steps[start..end]
            .iter()
            .map(|step| apply_step(directory, step, snapshot))
            .collect();
        let results: Vec<(&Step, Result<Outcome, D::Error>)> = futures::stream::iter(pending)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut fatal = None;
        for (step, result) in &results {
            audit(step, result, &plan_hash);
        }
        for (step, result) in results {
            match result {
                Ok(Outcome::Skipped) => applied.failures.push(Failure {
                    anchor: step.anchor.clone(),
                    reason: "EntryMissing",
                    message: format!(
                        "{} skipped: the entry does not exist (an earlier step for it failed)",
                        step.action.name()
                    ),
                }),
                Ok(outcome) => {
                    *applied.counts.entry(step.action.name()).or_default() += 1;
                    match outcome {
                        Outcome::Person(id) => {
                            ids.people.insert(step.anchor.clone(), id);
                        }
                        Outcome::PersonGone => {
                            ids.people.remove(&step.anchor);
                        }
                        Outcome::Group(id) => {
                            ids.groups.insert(step.anchor.clone(), id);
                        }
                        Outcome::GroupGone => {
                            ids.groups.remove(&step.anchor);
                        }
                        Outcome::Nothing | Outcome::Skipped => {}
                    }
                }
                Err(error) if error.is_per_entry() => applied.failures.push(Failure {
                    anchor: step.anchor.clone(),
                    reason: error.reason(),
                    message: error.to_string(),
                }),
                Err(error) => {
                    fatal.get_or_insert((step.action.name(), error));
                }
            }
        }
        if let Some((action, source)) = fatal {
            return Err(Aborted {
                applied,
                action,
                reason: source.reason(),
                source,
            });
        }
        start = end;
    }
    Ok(applied)
}

/// A short, stable hash of the steps a run applies (action, id, attribute names): the audit
/// lines of one run share it.
pub fn plan_hash(steps: &[Step]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for step in steps {
        hasher.update(step.action.name().as_bytes());
        hasher.update(b" ");
        hasher.update(step.anchor.as_bytes());
        for name in written_attributes(step) {
            hasher.update(b" ");
            hasher.update(name.as_bytes());
        }
        hasher.update(b"\n");
    }
    hex::encode(&hasher.finalize()[..6])
}

/// The names of the attributes a step writes (never their values).
pub fn written_attributes(step: &Step) -> Vec<&str> {
    match &step.action {
        Action::Create {
            attributes,
            references,
            ..
        } => attributes
            .keys()
            .chain(references.keys())
            .map(String::as_str)
            .collect(),
        Action::Update { set } => set.keys().map(String::as_str).collect(),
        Action::SetReferences { set } => set.keys().map(String::as_str).collect(),
        Action::CreateGroup { .. } | Action::SetGroupMembers { .. } => vec!["member"],
        Action::Rename { .. } => vec!["rdn"],
        Action::RenameGroup { .. } => vec!["name"],
        _ => Vec::new(),
    }
}

/// One audit line for one step's write (see the module's docs).
fn audit<E: DirectoryError>(step: &Step, result: &Result<Outcome, E>, plan: &str) {
    let subject = if step.action.is_group() {
        "org_unit"
    } else {
        "person"
    };
    let attributes = written_attributes(step).join(",");
    let (result, reason) = match result {
        Ok(Outcome::Skipped) => ("skipped", "EntryMissing"),
        Ok(_) => ("applied", ""),
        Err(error) => ("failed", error.reason()),
    };
    tracing::info!(
        target: "peoplesync::audit",
        action = step.action.name(),
        subject,
        id = %step.anchor,
        attributes = %attributes,
        plan = %plan,
        result,
        reason,
        "directory write"
    );
}

/// Reference attributes with ids for the anchors that have one; an unresolvable target is left
/// out (its create failed; the next cycle writes the reference).
fn resolve(references: &BTreeMap<String, Option<String>>, ids: &Ids) -> Attributes {
    references
        .iter()
        .filter_map(|(attribute, target)| match target {
            None => Some((attribute.clone(), Vec::new())),
            Some(anchor) => ids
                .people
                .get(anchor)
                .map(|id| (attribute.clone(), vec![id.clone()])),
        })
        .collect()
}

/// The write one step makes, with ids resolved now.
enum Write {
    Person(Change),
    Group(GroupChange),
    Nothing,
}

fn to_write(step: &Step, ids: &Ids) -> Result<Write, Missing> {
    let anchor = step.anchor.clone();
    let person = || ids.people.get(&step.anchor).cloned().ok_or(Missing);
    let group = || ids.groups.get(&step.anchor).cloned().ok_or(Missing);
    let members = |anchors: &BTreeSet<String>| {
        anchors
            .iter()
            .filter_map(|a| ids.people.get(a).cloned())
            .collect()
    };
    Ok(match &step.action {
        Action::Create {
            attributes,
            enabled,
            references,
            ..
        } => {
            let mut attributes = attributes.clone();
            attributes.extend(
                resolve(references, ids)
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty()),
            );
            Write::Person(Change::Create {
                anchor,
                attributes,
                enabled: *enabled,
            })
        }
        Action::Update { set } => Write::Person(Change::Update {
            id: person()?,
            anchor,
            set: set.clone(),
        }),
        Action::SetReferences { set } => {
            let id = person()?;
            let set = resolve(set, ids);
            if set.is_empty() {
                Write::Nothing
            } else {
                Write::Person(Change::Update { id, anchor, set })
            }
        }
        Action::Rename { new_rdn_value } => Write::Person(Change::Rename {
            id: person()?,
            anchor,
            new_rdn_value: new_rdn_value.clone(),
        }),
        Action::Adopt { id } => Write::Person(Change::Adopt {
            id: id.clone(),
            anchor,
        }),
        Action::Disable => Write::Person(Change::Disable {
            id: person()?,
            anchor,
        }),
        Action::Enable => Write::Person(Change::Enable {
            id: person()?,
            anchor,
        }),
        Action::Delete => Write::Person(Change::Delete {
            id: person()?,
            anchor,
        }),
        Action::CreateGroup { name, members: m } => Write::Group(GroupChange::Create {
            anchor,
            name: name.clone(),
            members: members(m),
        }),
        Action::RenameGroup { name } => Write::Group(GroupChange::Rename {
            id: group()?,
            anchor,
            name: name.clone(),
        }),
        Action::SetGroupMembers { members: m } => Write::Group(GroupChange::SetMembers {
            id: group()?,
            anchor,
            members: members(m),
        }),
        Action::DeleteGroup => Write::Group(GroupChange::Delete {
            id: group()?,
            anchor,
        }),
    })
}

async fn apply_step<'s, D: Directory>(
    directory: &D,
    step: &'s Step,
    ids: &Ids,
) -> (&'s Step, Result<Outcome, D::Error>) {
    (step, write_step(directory, step, ids).await)
}

async fn write_step<D: Directory>(
    directory: &D,
    step: &Step,
    ids: &Ids,
) -> Result<Outcome, D::Error> {
    let Ok(write) = to_write(step, ids) else {
        return Ok(Outcome::Skipped);
    };
    Ok(match write {
        Write::Nothing => Outcome::Nothing,
        Write::Person(change) => {
            let id = directory.apply(&change).await?;
            match change {
                Change::Delete { .. } => Outcome::PersonGone,
                _ => Outcome::Person(id),
            }
        }
        Write::Group(change) => {
            let id = directory.apply_group(&change).await?;
            match change {
                GroupChange::Delete { .. } => Outcome::GroupGone,
                _ => Outcome::Group(id),
            }
        }
    })
}

#[cfg(test)]
mod audit_tests {
    use super::*;
    use crate::directory::memory::MemoryDirectory;
    use crate::plan::Reason;

    use crate::telemetry::Captured;

    #[tokio::test]
    async fn every_write_leaves_one_audit_line_with_names_and_never_values() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = Captured::scoped(subscriber);

        let directory = MemoryDirectory::ldap_like("uid", false);
        let create = |anchor: &str, uid: &str| Step {
            anchor: anchor.to_owned(),
            reason: Reason::New,
            action: Action::Create {
                attributes: BTreeMap::from([
                    ("uid".to_owned(), vec![uid.to_owned()]),
                    ("title".to_owned(), vec!["Chief Secret Officer".to_owned()]),
                ]),
                enabled: true,
                references: BTreeMap::new(),
                wave: 0,
            },
        };
        let plan = Plan {
            steps: vec![create("p1", "ada.lovelace"), create("p2", "alan.turing")],
            ..Plan::default()
        };
        let mut ids = Ids::default();
        let span = tracing::info_span!("cycle", name = "acme", cycle = "c0ffee");
        let applied = tracing::Instrument::instrument(apply(&directory, &plan, &mut ids, 4), span)
            .await
            .expect("applied");
        assert_eq!(applied.counts["create"], 2);
        let text = captured.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .filter(|l: &serde_json::Value| l["target"] == "peoplesync::audit")
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let hash = plan_hash(&plan.steps);
        for line in &lines {
            assert_eq!(line["fields"]["action"], "create");
            assert_eq!(line["fields"]["attributes"], "title,uid");
            assert_eq!(line["fields"]["plan"], hash.as_str());
            assert_eq!(line["fields"]["result"], "applied");
            assert_eq!(line["span"]["cycle"], "c0ffee", "the cycle's span");
        }
        let mut ids: Vec<&str> = lines
            .iter()
            .map(|l| l["fields"]["id"].as_str().expect("an id"))
            .collect();
        ids.sort();
        assert_eq!(ids, ["p1", "p2"]);
        for value in ["ada.lovelace", "alan.turing", "Chief Secret Officer"] {
            assert!(!text.contains(value), "a value in the audit trail: {value}");
        }
    }
}
