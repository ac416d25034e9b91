//! `peoplesync sync`: the sync engine without Kubernetes. The config file has the PeopleSync spec
//! shape (a whole object or just its `spec`); Secret references are read from files laid out like
//! a mounted Secret (`<secrets dir>/<name>/<key>`) or from `PEOPLESYNC_SECRET_<NAME>_<KEY>`; the
//! state (checkpoint, deprovision delays, people to retry) lives in a local JSON file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};

use super::CliError;
use super::table::Table;
use crate::crd::{PeopleSyncSpec, SecretKeyRef};
use crate::directory::any::{AnyDirectory, Credentials};
use crate::source::any::{AnySource, AnySourceError, SourceCredentials};
use crate::sync::engine::{self, Report, SyncState};

/// Changes listed by a dry run (the same number the status keeps).
const LISTED: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum SyncCliError {
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a PeopleSync spec: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the Secret reference {name}/{key} is not set: create {path} or set {env}")]
    MissingSecret {
        name: String,
        key: String,
        path: PathBuf,
        env: String,
    },
    #[error("the Secret {namespace}/{name} has no key {key}")]
    MissingSecretKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(transparent)]
    Secret(Box<crate::secrets::SecretError>),
    #[error("failed to write the state file {path}")]
    WriteState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {path} is not readable state: {message}")]
    BadState { path: PathBuf, message: String },
    #[error("the spec is invalid")]
    Spec(#[from] crate::sync::spec::SpecError),
    #[error("failed to connect to the directory")]
    Directory(#[from] crate::directory::any::AnyDirectoryError),
    #[error("failed to set up the source")]
    Source(#[source] Box<AnySourceError>),
    #[error("the sync cycle failed ({reason})")]
    Cycle {
        reason: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<AnySourceError> for SyncCliError {
    fn from(error: AnySourceError) -> Self {
        SyncCliError::Source(Box::new(error))
    }
}

/// What `peoplesync sync` was asked to do.
#[derive(Debug, Clone)]
pub struct SyncJob {
    pub config: PathBuf,
    pub secrets_dir: PathBuf,
    pub state: PathBuf,
    pub once: bool,
    pub dry_run: bool,
    pub full: bool,
    pub output: super::Output,
    /// Show a progress line on stderr while a cycle runs (a person at a terminal).
    pub progress: bool,
}

/// The spec in a config file: a PeopleSync object or its bare spec, YAML or JSON.
pub fn read_spec(path: &Path) -> Result<PeopleSyncSpec, SyncCliError> {
    read_object(path).map(|(spec, _)| spec)
}

/// The spec of a config file and the mark of the object it describes: a whole `PeopleSync`
/// marks its entries as the controller does for it (`peoplesync:<namespace>/<name>`, the
/// namespace `default` when it names none), so `peoplesync sync` and the controller own the
/// same entries; a bare spec is the object `default/peoplesync`.
pub fn read_object(path: &Path) -> Result<(PeopleSyncSpec, String), SyncCliError> {
    let text = std::fs::read_to_string(path).map_err(|source| SyncCliError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |message: String| SyncCliError::Parse {
        path: path.to_owned(),
        message,
    };
    let value: serde_json::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    let metadata = value.get("metadata");
    let field = |key: &str, default: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(serde_json::Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    let mark =
        crate::directory::mark_for(&field("namespace", "default"), &field("name", "peoplesync"));
    let spec = match value.get("spec") {
        Some(spec) => spec.clone(),
        None => value,
    };
    let spec = serde_path_to_error::deserialize(spec)
        .map_err(|e| parse_error(format!("{} at {}", e.inner(), e.path())))?;
    Ok((spec, mark))
}

/// `PEOPLESYNC_SECRET_<NAME>_<KEY>` with anything but ASCII letters and digits as `_`.
pub fn secret_env(reference: &SecretKeyRef) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "PEOPLESYNC_SECRET_{}_{}",
        clean(&reference.name),
        clean(&reference.key)
    )
}

/// A Secret reference's value: the environment variable, else the file.
pub fn read_secret(dir: &Path, reference: &SecretKeyRef) -> Result<SecretString, SyncCliError> {
    let env = secret_env(reference);
    if let Ok(value) = std::env::var(&env) {
        return Ok(SecretString::from(value));
    }
    let path = dir.join(&reference.name).join(&reference.key);
    match std::fs::read_to_string(&path) {
        Ok(value) => Ok(SecretString::from(
            value.trim_end_matches(['\r', '\n']).to_owned(),
        )),
        Err(_) => Err(SyncCliError::MissingSecret {
            name: reference.name.clone(),
            key: reference.key.clone(),
            path,
            env,
        }),
    }
}

fn read_state(path: &Path) -> Result<SyncState, SyncCliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| SyncCliError::BadState {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
        Err(source) => Err(SyncCliError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes the state atomically (a temporary file renamed over the old one).
fn write_state(path: &Path, state: &SyncState) -> Result<(), SyncCliError> {
    let write_error = |source| SyncCliError::WriteState {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let json = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(&temporary, json).map_err(write_error)?;
    std::fs::rename(&temporary, path).map_err(write_error)
}

/// Changes by action: those applied, or those planned in a dry run.
fn changes(report: &Report) -> std::collections::BTreeMap<&'static str, u64> {
    match &report.applied {
        Some(applied) => applied.counts.clone(),
        None => report
            .plan
            .counts()
            .iter()
            .map(|(action, n)| (*action, *n as u64))
            .collect(),
    }
}

/// One line per cycle, and with `--dry-run` the first changes (ids, actions, attribute names).
pub fn summary(report: &Report, dry_run: bool) -> String {
    let counts: Vec<String> = changes(report)
        .iter()
        .map(|(action, n)| format!("{action} {n}"))
        .collect();
    let mut text = format!(
        "{} cycle{}: {} people read, {} in scope, {} managed; {}; {} held; {} failed; {:.2?}\n",
        report.kind.as_str(),
        if dry_run {
            " (dry run, nothing written)"
        } else {
            ""
        },
        report.people_read,
        report.plan.in_scope,
        report.plan.managed,
        if counts.is_empty() {
            "no changes".to_owned()
        } else {
            counts.join(", ")
        },
        report.plan.held.len(),
        report.failures().len(),
        report.duration,
    );
    if let crate::plan::GuardDecision::Held(trip) = &report.plan.guard {
        text.push_str(&format!("guard: {}\n", trip.message()));
    }
    for failure in report.failures().iter().take(LISTED) {
        text.push_str(&format!("failed: {} {}\n", failure.anchor, failure.reason));
    }
    if dry_run && report.plan.counted.is_none() && !report.plan.steps.is_empty() {
        let table = Table::new(&[14, 18, 12, 60]);
        text.push_str(&table.row(&["ANCHOR", "ACTION", "REASON", "ATTRIBUTES"]));
        text.push('\n');
        for step in report.plan.steps.iter().take(LISTED) {
            text.push_str(&table.row(&[
                step.anchor.as_str(),
                step.action.name(),
                step.reason.as_str(),
                &step.action.attribute_names().join(","),
            ]));
            text.push('\n');
        }
        if report.plan.steps.len() > LISTED {
            text.push_str(&format!(
                "… and {} more\n",
                report.plan.steps.len() - LISTED
            ));
        }
    }
    text
}

/// One cycle's report as `--output json|yaml` prints it: counts, ids, actions and attribute
/// names, never values.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleSummary {
    pub kind: &'static str,
    pub dry_run: bool,
    pub people_read: usize,
    pub in_scope: usize,
    pub managed: usize,
    /// Changes by action: applied ones, or planned ones in a dry run.
    pub changes: std::collections::BTreeMap<&'static str, u64>,
    pub held: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    pub failures: Vec<FailureSummary>,
    /// A dry run's planned steps (the first [`LISTED`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<StepSummary>,
    pub duration_seconds: f64,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureSummary {
    pub person_id: String,
    pub reason: String,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSummary {
    pub person_id: String,
    pub action: &'static str,
    pub reason: &'static str,
    pub attributes: Vec<String>,
}

impl CycleSummary {
    pub fn of(report: &Report, dry_run: bool) -> Self {
        let changes = changes(report);
        let (guard, plan_hash) = match &report.plan.guard {
            crate::plan::GuardDecision::Held(trip) => {
                (Some(trip.message()), Some(trip.hash.clone()))
            }
            _ => (None, None),
        };
        Self {
            kind: report.kind.as_str(),
            dry_run,
            people_read: report.people_read,
            in_scope: report.plan.in_scope,
            managed: report.plan.managed,
            changes,
            held: report.plan.held.len(),
            guard,
            plan_hash,
            failures: report
                .failures()
                .iter()
                .take(LISTED)
                .map(|f| FailureSummary {
                    person_id: f.anchor.clone(),
                    reason: f.reason.to_string(),
                })
                .collect(),
            planned: if dry_run {
                report
                    .plan
                    .steps
                    .iter()
                    .take(LISTED)
                    .map(|step| StepSummary {
                        person_id: step.anchor.clone(),
                        action: step.action.name(),
                        reason: step.reason.as_str(),
                        attributes: step.action.attribute_names(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            duration_seconds: report.duration.as_secs_f64(),
        }
    }

    /// The summary in `output`'s form (JSON: one line; YAML: one document).
    pub fn render(&self, output: super::Output) -> String {
        match output {
            super::Output::Json => serde_json::to_string(self).unwrap_or_default() + "\n",
            super::Output::Yaml => {
                format!(
                    "---\n{}",
                    serde_yaml_ng::to_string(self).unwrap_or_default()
                )
            }
            super::Output::Table => String::new(),
        }
    }
}

/// The progress line: people read (of about as many as the directory manages), the read rate
/// and the time left at that rate, and the changes carried out of those planned so far.
pub fn progress_line(
    (read, expected, planned, applied): (usize, usize, usize, usize),
    elapsed: Duration,
) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        read as f64 / seconds
    } else {
        0.0
    };
    let mut line = if expected > read {
        format!("read {read} of ~{expected} people")
    } else {
        format!("read {read} people")
    };
    line.push_str(&format!(", {rate:.0}/s"));
    if expected > read && rate >= 1.0 {
        let left = ((expected - read) as f64 / rate).ceil() as u64;
        line.push_str(&format!(", ETA {}", human_seconds(left)));
    }
    line.push_str(&format!("; applied {applied} of {planned} changes"));
    line
}

fn human_seconds(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
    }
}

/// Draws the progress line on stderr until dropped (the line is cleared then).
struct ProgressDisplay {
    bar: indicatif::ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl ProgressDisplay {
    fn start(progress: std::sync::Arc<engine::Progress>) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(5),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let started = std::time::Instant::now();
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                shown.set_message(progress_line(progress.snapshot(), started.elapsed()));
                shown.tick();
            }
        });
        Self { bar, ticker }
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// Prints each planned step of a dry run as a table row (a header before the first).
fn dry_run_printer() -> impl Fn(&crate::plan::Step, bool) + Send + Sync {
    let table = Table::new(&[14, 18, 12, 60]);
    let started = std::sync::atomic::AtomicBool::new(false);
    move |step, held| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if !started.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let _ = writeln!(
                out,
                "{}",
                table.row(&["ANCHOR", "ACTION", "REASON", "ATTRIBUTES"])
            );
        }
        let action = if held {
            format!("{} (held)", step.action.name())
        } else {
            step.action.name().to_owned()
        };
        let _ = writeln!(
            out,
            "{}",
            table.row(&[
                step.anchor.as_str(),
                &action,
                step.reason.as_str(),
                &step.action.attribute_names().join(","),
            ])
        );
    }
}

/// What a standalone command works with: the spec, the engine settings, the connected source
/// and directory.
pub struct Standalone {
    pub spec: PeopleSyncSpec,
    pub settings: engine::Settings,
    pub source: AnySource,
    pub directory: AnyDirectory,
}

impl Standalone {
    /// Reads the config and the Secrets from files, and connects (the directory binds or checks
    /// its token).
    pub async fn connect(config: &Path, secrets_dir: &Path) -> Result<Self, CliError> {
        let (spec, mark) = read_object(config)?;
        Self::connect_spec(spec, mark, &|reference| read_secret(secrets_dir, reference)).await
    }

    /// Connects a spec with its Secret references resolved by `secret` (files for `peoplesync`,
    /// the API server for `kubectl peoplesync`).
    pub async fn connect_spec(
        spec: PeopleSyncSpec,
        mark: String,
        secret: &SecretLookup<'_>,
    ) -> Result<Self, CliError> {
        let settings = crate::sync::spec::settings(&spec).map_err(SyncCliError::from)?;
        let source = AnySource::connect(&spec.source, source_credentials(&spec, secret)?, None)
            .map_err(SyncCliError::from)?;
        let (secret_ref, ca_ref) = match (&spec.target.ldap, &spec.target.scim) {
            (Some(ldap), _) => (&ldap.bind_password_secret_ref, ldap.ca_secret_ref.as_ref()),
            (None, Some(scim)) => (&scim.token_secret_ref, scim.ca_secret_ref.as_ref()),
            (None, None) => {
                return Err(SyncCliError::Spec(crate::sync::spec::SpecError::NoTarget).into());
            }
        };
        let credentials = Credentials {
            secret: secret(secret_ref)?,
            ca_pem: match ca_ref {
                Some(reference) => Some(secret(reference)?.expose_secret().to_owned()),
                None => None,
            },
        };
        let directory = AnyDirectory::connect(&spec.target, credentials, mark)
            .await
            .map_err(SyncCliError::from)?;
        Ok(Self {
            spec,
            settings,
            source,
            directory,
        })
    }
}

/// Resolves one Secret reference to its value.
pub type SecretLookup<'a> =
    dyn Fn(&SecretKeyRef) -> Result<SecretString, SyncCliError> + Send + Sync + 'a;

/// The Secret names a spec refers to (source credentials, directory password or token, CA).
pub fn secret_names(spec: &PeopleSyncSpec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .source
        .secret_names()
        .into_iter()
        .map(str::to_owned)
        .chain(
            spec.target
                .ldap
                .iter()
                .flat_map(|l| {
                    std::iter::once(&l.bind_password_secret_ref).chain(l.ca_secret_ref.iter())
                })
                .map(|r| r.name.clone()),
        )
        .chain(
            spec.target
                .scim
                .iter()
                .flat_map(|s| std::iter::once(&s.token_secret_ref).chain(s.ca_secret_ref.iter()))
                .map(|r| r.name.clone()),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The source's credentials: HollyHR's API key, or Personio's `client_id` and `client_secret`.
fn source_credentials(
    spec: &PeopleSyncSpec,
    secret: &SecretLookup<'_>,
) -> Result<SourceCredentials, SyncCliError> {
    use crate::source::any::{PERSONIO_CLIENT_ID_KEY, PERSONIO_CLIENT_SECRET_KEY};
    use secrecy::ExposeSecret;
    let ca = |reference: Option<&crate::crd::SecretKeyRef>| {
        reference
            .map(|r| secret(r).map(|pem| pem.expose_secret().to_owned()))
            .transpose()
    };
    match (&spec.source.hollyhr, &spec.source.personio) {
        (Some(hollyhr), None) => Ok(SourceCredentials::HollyHr {
            api_key: secret(&hollyhr.api_key_secret_ref)?,
            ca_pem: ca(hollyhr.ca_secret_ref.as_ref())?,
        }),
        (None, Some(personio)) => {
            let reference = &personio.credentials_secret_ref;
            Ok(SourceCredentials::Personio {
                client_id: secret(&reference.key(PERSONIO_CLIENT_ID_KEY))?,
                client_secret: secret(&reference.key(PERSONIO_CLIENT_SECRET_KEY))?,
                ca_pem: ca(personio.ca_secret_ref.as_ref())?,
            })
        }
        _ => Err(SyncCliError::Spec(crate::sync::spec::SpecError::NoSource)),
    }
}

pub async fn run(job: SyncJob) -> Result<(), CliError> {
    let Standalone {
        spec,
        mut settings,
        source,
        directory,
    } = Standalone::connect(&job.config, &job.secrets_dir).await?;
    settings.dry_run |= job.dry_run;
    if settings.dry_run && job.output == super::Output::Table {
        // The whole plan, printed as the cycle plans it (ids, actions and attribute names).
        settings.on_step = Some(engine::StepSink(std::sync::Arc::new(dry_run_printer())));
    }
    let poll = spec.poll_interval().unwrap_or(Duration::from_secs(300));
    let full_interval = spec
        .full_resync_interval()
        .unwrap_or(Duration::from_secs(6 * 3600));
    let mut state = read_state(&job.state)?;
    let mut force_full = job.full;
    loop {
        let now = Timestamp::now();
        let kind = engine::due(&state, full_interval, now, force_full);
        force_full = false;
        // A dry run's rows are its progress; a written cycle gets a line on the terminal.
        let progress = (job.progress && !settings.dry_run).then(|| {
            let counters = std::sync::Arc::new(engine::Progress::default());
            settings.progress = Some(counters.clone());
            ProgressDisplay::start(counters)
        });
        let report = engine::run_cycle(&source, &directory, &settings, &state, kind, None, now)
            .await
            .map_err(|error| SyncCliError::Cycle {
                reason: error.reason(),
                source: Box::new(error),
            });
        drop(progress);
        settings.progress = None;
        match report {
            Ok(report) => {
                match job.output {
                    super::Output::Table => print!("{}", summary(&report, settings.dry_run)),
                    output => print!(
                        "{}",
                        CycleSummary::of(&report, settings.dry_run).render(output)
                    ),
                }
                if !settings.dry_run {
                    state = report.state;
                    write_state(&job.state, &state)?;
                }
            }
            Err(error) if !job.once => {
                // The checkpoint did not move: the next cycle reads the same changes again.
                tracing::warn!(error = %super::report(&error), "sync cycle failed; retrying at the next interval");
            }
            Err(error) => return Err(error.into()),
        }
        if job.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_map_to_environment_variables() {
        let reference = SecretKeyRef {
            name: "hollyhr-api".into(),
            key: "apiKey".into(),
        };
        assert_eq!(
            secret_env(&reference),
            "PEOPLESYNC_SECRET_HOLLYHR_API_APIKEY"
        );
    }

    #[test]
    fn the_progress_line_shows_rate_eta_and_changes() {
        let line = progress_line((2_000, 10_000, 300, 120), Duration::from_secs(4));
        assert_eq!(
            line,
            "read 2000 of ~10000 people, 500/s, ETA 16s; applied 120 of 300 changes"
        );
        // A first sync (nothing managed yet) or a read past the estimate: no ETA.
        let line = progress_line((2_000, 0, 2_000, 1_500), Duration::from_secs(2));
        assert_eq!(
            line,
            "read 2000 people, 1000/s; applied 1500 of 2000 changes"
        );
        let line = progress_line((30, 10_000, 0, 0), Duration::from_secs(1));
        assert!(
            line.ends_with("ETA 5m33s; applied 0 of 0 changes"),
            "{line}"
        );
        assert_eq!(human_seconds(7_300), "2h01m");
    }

    #[test]
    fn a_missing_secret_names_the_file_and_the_variable() {
        let dir = std::env::temp_dir().join("peoplesync-no-secrets");
        let reference = SecretKeyRef {
            name: "ldap".into(),
            key: "password".into(),
        };
        let error = read_secret(&dir, &reference).expect_err("missing");
        let message = error.to_string();
        assert!(message.contains("ldap/password"), "{message}");
        assert!(
            message.contains("PEOPLESYNC_SECRET_LDAP_PASSWORD"),
            "{message}"
        );
    }

    #[test]
    fn a_config_that_is_not_a_spec_names_the_field() {
        let path = std::env::temp_dir().join(format!("peoplesync-bad-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            "spec:\n  source: {}\n  target:\n    ldap: {url: 3}\n",
        )
        .expect("written");
        let error = read_spec(&path).expect_err("not a spec");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("target.ldap"), "{message}");
        let _ = std::fs::remove_file(&path);
    }
}
