//! `kubectl peoplesync`: the same binary installed as `kubectl-peoplesync` (as cert-manager ships
//! `cmctl`), for the decisions people make on day 2. It talks to the API server with the user's
//! kubeconfig and RBAC, and only reads PeopleSyncs or sets the annotations the controller acts on:
//! approving a held deprovision, rotating the webhook secret, running a cycle now.

use std::io::{BufRead as _, Write as _};

use clap::{Parser, Subcommand};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt as _};
use serde::Serialize;

use super::Output;
use crate::crd::{APPROVE_DEPROVISION, APPROVED_BY, PeopleSync, ROTATE_WEBHOOK_SECRET, SYNC_NOW};

/// The day-2 decisions on PeopleSync objects: status, approve, rotate, sync-now.
#[derive(Debug, Parser)]
#[command(name = "kubectl-peoplesync", version, about)]
pub struct PluginCli {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// A readable summary of one PeopleSync (conditions, counts, guard, webhook) or of all.
    Status {
        /// One object; every object in the namespace when left out.
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Shows the deprovisions the guard holds and, once confirmed, approves that plan.
    Approve {
        name: String,
        /// Approve without asking (for scripts).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Rotates the webhook signing secret (or Personio token) now.
    Rotate { name: String },
    /// Runs a full cycle now instead of at the next poll.
    SyncNow { name: String },
    /// Why PeopleSync does what it does for one person: the source record, scope, mapping,
    /// matched entry and planned changes with their values. Read-only unless `--apply`.
    ///
    /// It reads the object's Secrets through the API server (your RBAC decides) and connects to
    /// the source and the directory from where you run it, at the addresses in the spec.
    Explain {
        name: String,
        /// The source's person id.
        #[arg(long)]
        person: String,
        /// Carry out the planned changes for this person now.
        #[arg(long)]
        apply: bool,
        /// Text for people (table), or the same facts as JSON or YAML for scripts.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot reach the Kubernetes API with the current kubeconfig")]
    Connect(#[source] kube::Error),
    #[error("PeopleSync {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("not allowed to {verb} {resource} in {namespace}: {message}")]
    Forbidden {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        message: String,
    },
    #[error("the Secret {namespace}/{name} that PeopleSync {object} refers to does not exist")]
    SecretNotFound {
        namespace: String,
        name: String,
        object: String,
    },
    #[error("failed to explain person {person}: {message}")]
    Explain { person: String, message: String },
    #[error("the Kubernetes API refused to {verb} PeopleSync {name}")]
    Api {
        verb: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("PeopleSync {name} holds no deprovisions: nothing to approve")]
    NothingHeld { name: String },
    #[error("PeopleSync {name} has no webhook registered: nothing to rotate")]
    NoWebhook { name: String },
    #[error("not approved")]
    Declined,
    #[error(
        "{user} may not approve the plans of PeopleSync {namespace}/{name}: approving needs the `approve` verb on peoplesyncs (the chart's ClusterRole <release>-approver grants it; edit and admin do not). Ask someone who holds it, or an admin to bind it to you"
    )]
    MayNotApprove {
        user: String,
        namespace: String,
        name: String,
    },
    #[error("failed to write the output")]
    Output(#[from] std::io::Error),
    #[error("failed to encode the output")]
    Encode(String),
}

fn api_error(verb: &'static str, namespace: &str, name: &str, error: kube::Error) -> PluginError {
    match &error {
        kube::Error::Api(response) if response.code == 404 => PluginError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
        kube::Error::Api(response) if response.code == 403 => PluginError::Forbidden {
            verb,
            resource: "PeopleSyncs",
            namespace: namespace.to_owned(),
            message: response.message.clone(),
        },
        _ => PluginError::Api {
            verb,
            name: name.to_owned(),
            source: error,
        },
    }
}

/// Runs one plugin command (`approve` asks on stdin unless `--yes`).
pub async fn run(cli: PluginCli) -> Result<(), PluginError> {
    let client = Client::try_default().await.map_err(PluginError::Connect)?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let mut out = std::io::stdout().lock();
    match cli.command {
        PluginCommand::Status {
            name,
            all_namespaces,
            output,
        } => {
            let objects = match (&name, all_namespaces) {
                (Some(name), _) => {
                    let api: Api<PeopleSync> = Api::namespaced(client, &namespace);
                    vec![
                        api.get(name)
                            .await
                            .map_err(|e| api_error("get", &namespace, name, e))?,
                    ]
                }
                (None, true) => {
                    Api::<PeopleSync>::all(client)
                        .list(&ListParams::default())
                        .await
                        .map_err(|e| api_error("list", "all namespaces", "", e))?
                        .items
                }
                (None, false) => {
                    Api::<PeopleSync>::namespaced(client, &namespace)
                        .list(&ListParams::default())
                        .await
                        .map_err(|e| api_error("list", &namespace, "", e))?
                        .items
                }
            };
            let summaries: Vec<Summary> = objects.iter().map(Summary::of).collect();
            write_status(&mut out, &summaries, name.is_some(), output)
        }
        PluginCommand::Approve { name, yes } => {
            let api: Api<PeopleSync> = Api::namespaced(client.clone(), &namespace);
            let object = api
                .get(&name)
                .await
                .map_err(|e| api_error("get", &namespace, &name, e))?;
            let held = held_plan(&object)
                .ok_or_else(|| PluginError::NothingHeld { name: name.clone() })?;
            // Asked before the prompt: a user who may not approve learns it now, and why.
            let user = who_am_i(&client).await;
            if !may_approve(&client, &namespace, &name).await {
                return Err(PluginError::MayNotApprove {
                    user: user.unwrap_or_else(|| "you".into()),
                    namespace: namespace.clone(),
                    name,
                });
            }
            writeln!(out, "PeopleSync {namespace}/{name} holds deprovisions:")?;
            writeln!(out, "  {}", held.message)?;
            writeln!(
                out,
                "  plan {}: {} to disable, {} to delete ({} held)",
                held.hash, held.disables, held.deletes, held.count
            )?;
            if !held.first.is_empty() {
                writeln!(out, "  first: {}", held.first.join(", "))?;
            }
            if !yes {
                write!(out, "Approve plan {}? [y/N] ", held.hash)?;
                out.flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(PluginError::Declined);
                }
            }
            let mut annotations = serde_json::Map::new();
            annotations.insert(APPROVE_DEPROVISION.into(), held.hash.clone().into());
            // The admission policy checks that the approval names the requesting user.
            if let Some(user) = &user {
                annotations.insert(APPROVED_BY.into(), user.clone().into());
            }
            let patch = serde_json::json!({"metadata": {"annotations": annotations}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| match e {
                    kube::Error::Api(response)
                        if response.code == 403 && response.message.contains("may not approve") =>
                    {
                        PluginError::MayNotApprove {
                            user: user.clone().unwrap_or_else(|| "you".into()),
                            namespace: namespace.clone(),
                            name: name.clone(),
                        }
                    }
                    e => api_error("patch", &namespace, &name, e),
                })?;
            writeln!(
                out,
                "approved plan {}: the controller applies it in its next cycle",
                held.hash
            )?;
            Ok(())
        }
        PluginCommand::Rotate { name } => {
            let api: Api<PeopleSync> = Api::namespaced(client, &namespace);
            let object = api
                .get(&name)
                .await
                .map_err(|e| api_error("get", &namespace, &name, e))?;
            let registered = object
                .status
                .as_ref()
                .and_then(|s| s.webhook.as_ref())
                .and_then(|w| w.id.as_ref())
                .is_some();
            if !registered {
                return Err(PluginError::NoWebhook { name });
            }
            let now = jiff::Timestamp::now().to_string();
            annotate(&api, &namespace, &name, ROTATE_WEBHOOK_SECRET, &now).await?;
            writeln!(
                out,
                "asked PeopleSync {namespace}/{name} to rotate its webhook secret now"
            )?;
            Ok(())
        }
        PluginCommand::SyncNow { name } => {
            let api: Api<PeopleSync> = Api::namespaced(client, &namespace);
            let now = jiff::Timestamp::now().to_string();
            annotate(&api, &namespace, &name, SYNC_NOW, &now).await?;
            writeln!(
                out,
                "asked PeopleSync {namespace}/{name} to run a full cycle now"
            )?;
            Ok(())
        }
        PluginCommand::Explain {
            name,
            person,
            apply,
            output,
        } => {
            let api: Api<PeopleSync> = Api::namespaced(client.clone(), &namespace);
            let object = api
                .get(&name)
                .await
                .map_err(|e| api_error("get", &namespace, &name, e))?;
            let explanation = explain(client, &namespace, &name, object, &person, apply).await?;
            let text = explanation
                .render(output)
                .map_err(|e| PluginError::Encode(super::report(&e)))?;
            write!(out, "{text}")?;
            Ok(())
        }
    }
}

/// Reads the Secrets `object` refers to (with the caller's RBAC), connects as the controller
/// would, and explains one person.
async fn explain(
    client: Client,
    namespace: &str,
    name: &str,
    object: PeopleSync,
    person: &str,
    apply: bool,
) -> Result<super::explain::Explanation, PluginError> {
    use std::collections::BTreeMap;

    use super::sync::{Standalone, SyncCliError, secret_names};
    use k8s_openapi::api::core::v1::Secret;

    let api: Api<Secret> = Api::namespaced(client, namespace);
    let mut secrets: BTreeMap<String, Secret> = BTreeMap::new();
    for secret_name in secret_names(&object.spec) {
        let secret = api
            .get_opt(&secret_name)
            .await
            .map_err(|error| match &error {
                kube::Error::Api(response) if response.code == 403 => PluginError::Forbidden {
                    verb: "get",
                    resource: "Secrets",
                    namespace: namespace.to_owned(),
                    message: response.message.clone(),
                },
                _ => PluginError::Api {
                    verb: "get the Secret of",
                    name: name.to_owned(),
                    source: error,
                },
            })?;
        let secret = secret.ok_or_else(|| PluginError::SecretNotFound {
            namespace: namespace.to_owned(),
            name: secret_name.clone(),
            object: name.to_owned(),
        })?;
        secrets.insert(secret_name, secret);
    }
    let lookup = |reference: &crate::crd::SecretKeyRef| {
        let secret =
            secrets
                .get(&reference.name)
                .ok_or_else(|| SyncCliError::MissingSecretKey {
                    namespace: namespace.to_owned(),
                    name: reference.name.clone(),
                    key: reference.key.clone(),
                })?;
        crate::secrets::value(secret, namespace, reference)
            .map_err(|e| SyncCliError::Secret(Box::new(e)))
    };
    let failed = |error: super::CliError| PluginError::Explain {
        person: person.to_owned(),
        message: super::report(&error),
    };
    let mark = crate::directory::mark_for(namespace, &object.name_any());
    let standalone = Standalone::connect_spec(object.spec, mark, &lookup)
        .await
        .map_err(failed)?;
    super::explain::explain(standalone, person, apply)
        .await
        .map_err(failed)
}

/// The current user's name as the API server sees it (SelfSubjectReview); `None` when the
/// server cannot say.
async fn who_am_i(client: &Client) -> Option<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .ok()?;
    review.status?.user_info?.username
}

/// Whether the current user holds the `approve` verb on this PeopleSync (the admission
/// policy's check, asked ahead).
async fn may_approve(client: &Client, namespace: &str, name: &str) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("peoplesync.dev".into()),
                resource: Some("peoplesyncs".into()),
                verb: Some("approve".into()),
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    match api.create(&PostParams::default(), &review).await {
        Ok(answer) => answer.status.is_some_and(|s| s.allowed),
        // The server could not say: let the patch (and the admission policy) decide.
        Err(_) => true,
    }
}

async fn annotate(
    api: &Api<PeopleSync>,
    namespace: &str,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), PluginError> {
    let patch = serde_json::json!({"metadata": {"annotations": { key: value }}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error("patch", namespace, name, e))?;
    Ok(())
}

/// What the guard holds, from the object's status.
struct Held {
    message: String,
    hash: String,
    count: u64,
    disables: u64,
    deletes: u64,
    first: Vec<String>,
}

fn held_plan(object: &PeopleSync) -> Option<Held> {
    use crate::crd::conditions;
    let guard = conditions::get(
        &object.status.as_ref()?.conditions,
        conditions::DEPROVISION_GUARD,
    )?;
    if guard.status != "True" {
        return None;
    }
    let plan = object.status.as_ref()?.last_plan.as_ref()?;
    Some(Held {
        message: guard.message.clone(),
        hash: plan.hash.clone(),
        count: plan.held,
        disables: plan.disables,
        deletes: plan.deletes,
        first: plan
            .changes
            .iter()
            .take(10)
            .map(|c| format!("{} ({})", c.person_id, c.action))
            .collect(),
    })
}

/// One object, as `status` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    namespace: String,
    name: String,
    conditions: Vec<ConditionSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<crate::crd::SyncCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_sync_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_sync_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_transition_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_plan: Option<String>,
    failures: usize,
}

#[derive(Debug, Serialize)]
struct ConditionSummary {
    r#type: String,
    status: String,
    reason: String,
    message: String,
}

impl Summary {
    fn of(object: &PeopleSync) -> Self {
        let status = object.status.as_ref();
        Self {
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            conditions: status
                .map(|s| {
                    s.conditions
                        .iter()
                        .map(|c| ConditionSummary {
                            r#type: c.type_.clone(),
                            status: c.status.clone(),
                            reason: c.reason.clone(),
                            message: c.message.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            counts: status.and_then(|s| s.counts.clone()),
            last_sync_time: status
                .and_then(|s| s.last_sync_time.as_ref())
                .map(|t| t.0.to_string()),
            next_sync_time: status
                .and_then(|s| s.next_sync_time.as_ref())
                .map(|t| t.0.to_string()),
            next_transition_time: status
                .and_then(|s| s.next_transition_time.as_ref())
                .map(|t| t.0.to_string()),
            held_plan: held_plan(object).map(|h| h.hash),
            failures: status.map_or(0, |s| s.failures.len()),
        }
    }

    fn condition(&self, kind: &str) -> &str {
        self.conditions
            .iter()
            .find(|c| c.r#type == kind)
            .map_or("-", |c| c.status.as_str())
    }
}

fn write_status(
    out: &mut impl std::io::Write,
    summaries: &[Summary],
    one: bool,
    output: Output,
) -> Result<(), PluginError> {
    match output {
        Output::Json => {
            let text = if one {
                serde_json::to_string_pretty(&summaries[0])
            } else {
                serde_json::to_string_pretty(summaries)
            }
            .map_err(|e| PluginError::Encode(e.to_string()))?;
            writeln!(out, "{text}")?;
        }
        Output::Yaml => {
            let text = if one {
                serde_yaml_ng::to_string(&summaries[0])
            } else {
                serde_yaml_ng::to_string(summaries)
            }
            .map_err(|e| PluginError::Encode(e.to_string()))?;
            write!(out, "{text}")?;
        }
        Output::Table if one => {
            let s = &summaries[0];
            writeln!(out, "PeopleSync {}/{}", s.namespace, s.name)?;
            for c in &s.conditions {
                writeln!(
                    out,
                    "  {:<19} {:<7} {:<20} {}",
                    c.r#type, c.status, c.reason, c.message
                )?;
            }
            if let Some(counts) = &s.counts {
                writeln!(
                    out,
                    "  people {} (in scope {}), last cycle: {} created, {} updated, {} disabled, {} deleted, {} failed",
                    counts.people,
                    counts.in_scope,
                    counts.created,
                    counts.updated,
                    counts.disabled,
                    counts.deleted,
                    counts.failed
                )?;
                if counts.adopted > 0 {
                    writeln!(out, "  adopted last cycle: {}", counts.adopted)?;
                }
                if counts.unmarked > 0 {
                    writeln!(
                        out,
                        "  left alone: {} entries hold an anchor value without this object's mark (adoption candidates or accounts it must not touch; see spec.adoption)",
                        counts.unmarked
                    )?;
                }
            }
            if let Some(at) = &s.last_sync_time {
                writeln!(out, "  last cycle {at}")?;
            }
            if let Some(at) = &s.next_sync_time {
                writeln!(out, "  next cycle {at}")?;
            }
            if let Some(at) = &s.next_transition_time {
                writeln!(
                    out,
                    "  next lifecycle transition {at} (kubectl peoplesync explain {} --person <id> shows whose)",
                    s.name
                )?;
            }
            if let Some(hash) = &s.held_plan {
                writeln!(
                    out,
                    "  deprovisions held: plan {hash} (kubectl peoplesync approve {})",
                    s.name
                )?;
            }
        }
        Output::Table => {
            let table = super::table::Table::new(&[16, 24, 6, 6, 7, 8, 7, 8, 20]);
            writeln!(
                out,
                "{}",
                table.row(&[
                    "NAMESPACE",
                    "NAME",
                    "READY",
                    "SYNCED",
                    "PEOPLE",
                    "FAILED",
                    "GUARD",
                    "WEBHOOK",
                    "LAST CYCLE"
                ])
            )?;
            for s in summaries {
                let people = s
                    .counts
                    .as_ref()
                    .map_or("-".to_owned(), |c| c.people.to_string());
                let guard = if s.held_plan.is_some() {
                    "held"
                } else {
                    "clear"
                };
                writeln!(
                    out,
                    "{}",
                    table.row(&[
                        s.namespace.as_str(),
                        s.name.as_str(),
                        s.condition("Ready"),
                        s.condition("Synced"),
                        people.as_str(),
                        s.failures.to_string().as_str(),
                        guard,
                        s.condition("WebhookHealthy"),
                        s.last_sync_time.as_deref().unwrap_or("-"),
                    ])
                )?;
            }
        }
    }
    Ok(())
}
