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
}

/// The spec in a config file: a PeopleSync object or its bare spec, YAML or JSON.
pub fn read_spec(path: &Path) -> Result<PeopleSyncSpec, SyncCliError> {
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
    let spec = match value.get("spec") {
        Some(spec) => spec.clone(),
        None => value,
    };
    serde_path_to_error::deserialize(spec)
        .map_err(|e| parse_error(format!("{} at {}", e.inner(), e.path())))
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

/// One line per cycle, and with `--dry-run` the first changes (ids, actions, attribute names).
pub fn summary(report: &Report, dry_run: bool) -> String {
    let counts = match &report.applied {
        Some(applied) => applied
            .counts
            .iter()
            .map(|(action, n)| format!("{action} {n}"))
            .collect::<Vec<_>>(),
        None => report
            .plan
            .counts()
            .iter()
            .map(|(action, n)| format!("{action} {n}"))
            .collect(),
    };
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
    /// Reads the config and the Secrets, and connects (the directory binds or checks its token).
    pub async fn connect(config: &Path, secrets_dir: &Path) -> Result<Self, CliError> {
        let spec = read_spec(config)?;
        let settings = crate::sync::spec::settings(&spec).map_err(SyncCliError::from)?;
        let source =
            AnySource::connect(&spec.source, source_credentials(&spec, secrets_dir)?, None)
                .map_err(SyncCliError::from)?;
        let (secret_ref, ca_ref) = match (&spec.target.ldap, &spec.target.scim) {
            (Some(ldap), _) => (&ldap.bind_password_secret_ref, ldap.ca_secret_ref.as_ref()),
            (None, Some(scim)) => (&scim.token_secret_ref, None),
            (None, None) => {
                return Err(SyncCliError::Spec(crate::sync::spec::SpecError::NoTarget).into());
            }
        };
        let credentials = Credentials {
            secret: read_secret(secrets_dir, secret_ref)?,
            ca_pem: match ca_ref {
                Some(reference) => Some(
                    read_secret(secrets_dir, reference)?
                        .expose_secret()
                        .to_owned(),
                ),
                None => None,
            },
        };
        let directory = AnyDirectory::connect(&spec.target, credentials)
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

/// The source's credentials from the secrets dir (or env): HollyHR's API key, or Personio's
/// `client_id` and `client_secret`.
fn source_credentials(
    spec: &PeopleSyncSpec,
    secrets_dir: &Path,
) -> Result<SourceCredentials, SyncCliError> {
    use crate::source::any::{PERSONIO_CLIENT_ID_KEY, PERSONIO_CLIENT_SECRET_KEY};
    match (&spec.source.hollyhr, &spec.source.personio) {
        (Some(hollyhr), None) => Ok(SourceCredentials::HollyHr {
            api_key: read_secret(secrets_dir, &hollyhr.api_key_secret_ref)?,
        }),
        (None, Some(personio)) => {
            let secret = &personio.credentials_secret_ref;
            Ok(SourceCredentials::Personio {
                client_id: read_secret(secrets_dir, &secret.key(PERSONIO_CLIENT_ID_KEY))?,
                client_secret: read_secret(secrets_dir, &secret.key(PERSONIO_CLIENT_SECRET_KEY))?,
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
    if settings.dry_run {
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
        let report = engine::run_cycle(&source, &directory, &settings, &state, kind, None, now)
            .await
            .map_err(|error| SyncCliError::Cycle {
                reason: error.reason(),
                source: Box::new(error),
            });
        match report {
            Ok(report) => {
                print!("{}", summary(&report, settings.dry_run));
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
