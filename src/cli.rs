//! The command line: the only place that reads flags and environment variables. Everything here
//! turns them into typed configuration and hands it to a command in `cli/`.

pub mod explain;
mod hollyhr;
pub mod plugin;
pub mod sync;
mod table;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use secrecy::SecretString;

use crate::source::hollyhr::{ClientConfig, HollyHrError, PageLimit};
use crate::telemetry::{LogArgs, LogFormat};

/// The environment variable that carries the HollyHR API key (never a flag: flags show in `ps`).
pub const API_KEY_ENV: &str = "HOLLYHR_API_KEY";

/// PeopleSync keeps an identity directory (LDAP, SCIM) aligned with HollyHR.
#[derive(Debug, Parser)]
#[command(name = "peoplesync", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub logs: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call a HollyHR tenant with PeopleSync's client.
    #[command(name = "hollyhr")]
    HollyHr(HollyHrArgs),
    /// Run the sync engine without Kubernetes, from a file with the PeopleSync spec shape.
    Sync(SyncArgs),
    /// Explain what PeopleSync does for one person (source record, scope, mapping, directory
    /// entry, planned changes); `--apply` carries it out now.
    Explain(ExplainArgs),
    /// Print the PeopleSync CustomResourceDefinition as YAML (what `crds/peoplesync.yaml` holds).
    Crd(CrdArgs),
    /// Run the operator: reconcile PeopleSync objects in the cluster of the current kubeconfig
    /// (or the in-cluster service account).
    Controller(ControllerArgs),
    /// Run a local Kubernetes control plane (etcd + kube-apiserver) by hand, for trying
    /// PeopleSync without a cluster.
    #[command(subcommand)]
    Controlplane(ControlplaneCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum ControlplaneCommand {
    /// Start it (or reuse the running one) and print `export KUBECONFIG=…`.
    Up(ControlplaneArgs),
    /// Stop it and remove its files.
    Down(ControlplaneArgs),
    /// Print whether it runs and where its kubeconfig is.
    Status(ControlplaneArgs),
}

#[derive(Debug, Args)]
pub struct ControlplaneArgs {
    /// Where its state, certificates and data live.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// A PeopleSync object (or just its spec) as YAML or JSON.
    #[arg(long)]
    pub config: PathBuf,
    /// Where Secret references are read from, laid out like a mounted Secret:
    /// `<dir>/<secret name>/<key>` [default: `secrets/` beside the config]. A variable
    /// `PEOPLESYNC_SECRET_<NAME>_<KEY>` overrides a file.
    #[arg(long)]
    pub secrets_dir: Option<PathBuf>,
    /// The state file (checkpoint, deprovision delays, people to retry)
    /// [default: `<config>.state.json`].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Run one cycle and exit (default: keep running, every `schedule.pollInterval`).
    #[arg(long)]
    pub once: bool,
    /// Plan and print the changes without writing anything (also `spec.dryRun`).
    #[arg(long)]
    pub dry_run: bool,
    /// Make the first cycle a full reconciliation even when one is not due.
    #[arg(long)]
    pub full: bool,
    /// How each cycle's report is printed (JSON: one object per cycle, and no progress line).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl SyncArgs {
    fn into_job(self) -> sync::SyncJob {
        let beside = self
            .config
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let state = self.state.unwrap_or_else(|| {
            let mut name = self.config.file_name().unwrap_or_default().to_os_string();
            name.push(".state.json");
            beside.join(name)
        });
        sync::SyncJob {
            secrets_dir: self.secrets_dir.unwrap_or_else(|| beside.join("secrets")),
            state,
            config: self.config,
            once: self.once,
            dry_run: self.dry_run,
            full: self.full,
            output: self.output,
            progress: false,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A PeopleSync object (or just its spec) as YAML or JSON.
    #[arg(long)]
    pub config: PathBuf,
    /// Where Secret references are read from (see `peoplesync sync --help`).
    #[arg(long)]
    pub secrets_dir: Option<PathBuf>,
    /// The HollyHR person id.
    #[arg(long)]
    pub person: String,
    /// Apply the planned changes for this person now.
    #[arg(long)]
    pub apply: bool,
    /// Text for people (table), or the same facts as JSON or YAML for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    #[arg(long, default_value = "0.0.0.0:8081", env = "PEOPLESYNC_ADMIN_LISTEN")]
    pub admin_listen: SocketAddr,
    /// Serve only these namespaces: PeopleSync objects and the Secrets they reference are
    /// watched there, and nowhere else (repeat the flag, or separate with commas). Without it,
    /// or with `*`, every namespace is served, which needs cluster-wide RBAC.
    #[arg(long, env = "PEOPLESYNC_WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespace: Vec<String>,
    /// Elect a leader on a Lease so that only one replica reconciles.
    #[arg(long, default_value_t = false, env = "PEOPLESYNC_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (normally the operator's own).
    #[arg(long, default_value = "peoplesync-system", env = "POD_NAMESPACE")]
    pub lease_namespace: String,
    #[arg(long, default_value = "peoplesync-controller")]
    pub lease_name: String,
    /// This replica's identity on the Lease and in Events (normally the Pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    #[arg(long, default_value_t = 5)]
    pub lease_grace_seconds: u64,
    /// While leading, label this replica's Pod (`--identity`, in the Lease namespace)
    /// `peoplesync.dev/leader=<lease name>`, so that a receiver Service selecting it sends
    /// webhook deliveries to the leader only.
    #[arg(long, default_value_t = false, env = "PEOPLESYNC_LABEL_LEADER_POD")]
    pub label_leader_pod: bool,
    /// Where the webhook receiver listens (`POST /hooks/{namespace}/{name}`); "off" for none.
    #[arg(
        long,
        default_value = "0.0.0.0:8443",
        env = "PEOPLESYNC_RECEIVER_LISTEN"
    )]
    pub receiver_listen: ListenArg,
    /// Connections the receiver keeps open; a new one beyond it closes the oldest (once its
    /// request in flight is answered).
    #[arg(
        long,
        default_value_t = 4_096,
        value_parser = clap::value_parser!(u32).range(1..),
        env = "PEOPLESYNC_RECEIVER_MAX_CONNECTIONS"
    )]
    pub receiver_max_connections: u32,
    /// Time a receiver client has to send a request's headers (from connecting, or from its
    /// previous answer); slower or idle connections are closed.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub receiver_header_timeout: std::time::Duration,
    /// Time from a request's headers to its answer, the body included (408 after it).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub receiver_request_timeout: std::time::Duration,
    /// How often each webhook's health endpoint is read at most.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub webhook_health_interval: std::time::Duration,
    /// PeopleSync objects reconciled (and syncing) at once; the others wait their turn, so
    /// hundreds of full cycles never run together. Webhook batches of different objects run
    /// side by side within the same bound.
    #[arg(
        long,
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..),
        env = "PEOPLESYNC_MAX_CONCURRENT_SYNCS"
    )]
    pub max_concurrent_syncs: u16,
}

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct ListenArg(pub Option<SocketAddr>);

impl std::str::FromStr for ListenArg {
    type Err = std::net::AddrParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("off") {
            Ok(Self(None))
        } else {
            value.parse().map(|addr| Self(Some(addr)))
        }
    }
}

fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    crate::crd::duration::parse(value).map_err(|e| e.to_string())
}

impl ControllerArgs {
    fn into_config(self) -> crate::controller::Config {
        let identity = self.identity.unwrap_or_else(|| {
            format!(
                "peoplesync-{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()),
                std::process::id()
            )
        });
        crate::controller::Config {
            admin_listen: self.admin_listen,
            namespaces: crate::watch::Namespaces::from_args(&self.namespace),
            leader_election: self
                .leader_elect
                .then(|| crate::controller::leader::LeaseConfig {
                    namespace: self.lease_namespace,
                    name: self.lease_name,
                    identity: identity.clone(),
                    duration_seconds: self.lease_duration_seconds,
                    grace_seconds: self.lease_grace_seconds,
                    label_pod: self.label_leader_pod.then(|| identity.clone()),
                }),
            instance: identity,
            receiver_listen: self.receiver_listen.0,
            receiver_limits: crate::http::serve::Limits {
                max_connections: self.receiver_max_connections as usize,
                header_timeout: self.receiver_header_timeout,
                request_timeout: self.receiver_request_timeout,
                ..crate::http::serve::Limits::default()
            },
            webhook: crate::webhook::WebhookConfig {
                health_interval: self.webhook_health_interval,
            },
            max_concurrent_syncs: self.max_concurrent_syncs,
        }
    }
}

#[derive(Debug, Args)]
pub struct HollyHrArgs {
    /// Tenant origin + `/api/v1`, e.g. `https://acme.hollyhr.com/api/v1`.
    #[arg(long, env = "HOLLYHR_BASE_URL")]
    pub base_url: String,
    /// A file holding the API key. Without it the key comes from `HOLLYHR_API_KEY`.
    #[arg(long, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: HollyHrCommand,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people to read.
    #[default]
    Table,
    /// JSON (a listing streams NDJSON: one object per line, written as it arrives).
    Json,
    /// YAML (a listing streams a document per record, `---` between them).
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum HollyHrCommand {
    /// The key's organisation, scopes and environment (`GET /me`).
    Me {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Everyone (or everyone changed since a time), streamed page by page.
    People {
        /// Only people updated at or after this RFC 3339 time.
        #[arg(long)]
        updated_since: Option<Timestamp>,
        /// Page size, 1–100.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// One person, with its `HollyHR-Resource-ETag` (on stderr).
    Person {
        id: String,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The active org units.
    OrgUnits {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Print the spec reference (every field, type, default and doc) as Markdown instead.
    #[arg(long)]
    pub reference: bool,
}

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    HollyHr(#[from] HollyHrError),
    #[error("no HollyHR API key: set {API_KEY_ENV} or pass --api-key-file")]
    MissingApiKey,
    #[error("failed to read the API key file {path}")]
    ReadApiKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API key file {path} is empty")]
    EmptyApiKey { path: PathBuf },
    #[error("failed to write the output")]
    Output(#[source] std::io::Error),
    #[error("failed to encode the output: {0}")]
    Encode(String),
    #[error("failed to wait for a shutdown signal")]
    Signal(#[source] std::io::Error),
    #[error("no Kubernetes configuration found (in-cluster, or a kubeconfig: is KUBECONFIG set?)")]
    KubeConfig(#[source] kube::config::InferConfigError),
    #[error(transparent)]
    Controller(#[from] crate::controller::RunError),
    #[error(transparent)]
    ControlPlane(#[from] crate::controlplane::ControlPlaneError),
    #[error(transparent)]
    Sync(#[from] sync::SyncCliError),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::HollyHr(args) => {
            let key = api_key(
                args.api_key_file.as_deref(),
                std::env::var(API_KEY_ENV).ok(),
            )?;
            let config = ClientConfig::new(&args.base_url, key)?;
            hollyhr::run(config, args.command).await
        }
        Command::Sync(args) => {
            use std::io::IsTerminal;
            let mut job = args.into_job();
            // A progress line for a person at a terminal: not in JSON/YAML, not beside JSON logs.
            job.progress = job.output == Output::Table
                && cli.logs.log_format == LogFormat::Text
                && std::io::stderr().is_terminal();
            sync::run(job).await
        }
        Command::Explain(args) => {
            let beside = args
                .config
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            explain::run(explain::ExplainJob {
                secrets_dir: args.secrets_dir.unwrap_or_else(|| beside.join("secrets")),
                config: args.config,
                person: args.person,
                apply: args.apply,
                output: args.output,
            })
            .await
        }
        Command::Crd(args) => {
            use std::io::Write;
            let text = if args.reference {
                crate::crd::reference_markdown()
            } else {
                crate::crd::crd_yaml()
            };
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(CliError::Output)
        }
        Command::Controlplane(command) => {
            use crate::controlplane;
            let dir = |args: ControlplaneArgs| {
                args.state_dir
                    .unwrap_or_else(controlplane::default_state_dir)
            };
            match command {
                ControlplaneCommand::Up(args) => {
                    let started = std::time::Instant::now();
                    let info = controlplane::up(&dir(args)).await?;
                    eprintln!(
                        "control plane up at {} ({:.1} s); stop it with `peoplesync controlplane down`",
                        info.server,
                        started.elapsed().as_secs_f64()
                    );
                    println!("export KUBECONFIG={}", info.kubeconfig.display());
                }
                ControlplaneCommand::Down(args) => {
                    controlplane::down(&dir(args))?;
                    eprintln!("control plane stopped");
                }
                ControlplaneCommand::Status(args) => {
                    let info = controlplane::status(&dir(args))?;
                    println!(
                        "server {}\nexport KUBECONFIG={}",
                        info.server,
                        info.kubeconfig.display()
                    );
                }
            }
            Ok(())
        }
        Command::Controller(args) => {
            let config = kube::Config::infer().await.map_err(CliError::KubeConfig)?;
            crate::controller::run(config, args.into_config()).await?;
            Ok(())
        }
    }
}

/// The API key from `--api-key-file`, else from the environment value given.
fn api_key(file: Option<&Path>, env: Option<String>) -> Result<SecretString, CliError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadApiKey {
            path: path.to_owned(),
            source,
        })?;
        let key = text.trim();
        if key.is_empty() {
            return Err(CliError::EmptyApiKey {
                path: path.to_owned(),
            });
        }
        return Ok(SecretString::from(key.to_owned()));
    }
    env.map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
        .map(SecretString::from)
        .ok_or(CliError::MissingApiKey)
}

pub use crate::telemetry::report;

/// The default page size of listings: HollyHR's maximum.
fn page_limit(limit: u32) -> Result<PageLimit, CliError> {
    Ok(PageLimit::new(limit)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_flags_are_refused() {
        let refused = [
            vec![
                "peoplesync",
                "hollyhr",
                "--base-url",
                "http://x",
                "people",
                "--limit",
                "101",
            ],
            vec![
                "peoplesync",
                "hollyhr",
                "--base-url",
                "http://x",
                "people",
                "--limit",
                "0",
            ],
            vec![
                "peoplesync",
                "hollyhr",
                "--base-url",
                "http://x",
                "people",
                "--updated-since",
                "yesterday",
            ],
        ];
        for args in refused {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
        }
    }

    /// Every command that prints data takes `-o table|json|yaml` (table by default).
    #[test]
    fn commands_that_print_data_take_an_output_format() {
        let output_of = |args: &[&str]| -> Output {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            match cli.command {
                Command::Sync(args) => args.output,
                Command::Explain(args) => args.output,
                Command::HollyHr(args) => match args.command {
                    HollyHrCommand::Me { output }
                    | HollyHrCommand::Person { output, .. }
                    | HollyHrCommand::People { output, .. }
                    | HollyHrCommand::OrgUnits { output } => output,
                },
                other => panic!("{other:?} prints no data"),
            }
        };
        let hr = ["peoplesync", "hollyhr", "--base-url", "http://x"];
        let cases: Vec<(Vec<&str>, Output)> = vec![
            (
                vec!["peoplesync", "sync", "--config", "c.yaml"],
                Output::Table,
            ),
            (
                vec!["peoplesync", "sync", "--config", "c.yaml", "-o", "json"],
                Output::Json,
            ),
            (
                vec![
                    "peoplesync",
                    "explain",
                    "--config",
                    "c.yaml",
                    "--person",
                    "p1",
                    "-o",
                    "yaml",
                ],
                Output::Yaml,
            ),
            ([&hr[..], &["me"]].concat(), Output::Table),
            ([&hr[..], &["me", "-o", "yaml"]].concat(), Output::Yaml),
            (
                [&hr[..], &["person", "p1", "--output", "json"]].concat(),
                Output::Json,
            ),
            ([&hr[..], &["people", "-o", "yaml"]].concat(), Output::Yaml),
            (
                [&hr[..], &["org-units", "-o", "json"]].concat(),
                Output::Json,
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(output_of(&args), expected, "{args:?}");
        }
        assert!(
            Cli::try_parse_from([
                "peoplesync",
                "explain",
                "--config",
                "c",
                "--person",
                "p",
                "-o",
                "xml"
            ])
            .is_err()
        );
    }

    #[test]
    fn hollyhr_people_flags_parse() {
        let cli = Cli::try_parse_from([
            "peoplesync",
            "--log-format",
            "json",
            "hollyhr",
            "--base-url",
            "http://127.0.0.1:8080/api/v1",
            "people",
            "--updated-since",
            "2026-06-16T09:00:00Z",
            "--limit",
            "50",
            "--output",
            "json",
        ])
        .expect("valid flags");
        assert_eq!(cli.logs.log_format, LogFormat::Json);
        let Command::HollyHr(args) = cli.command else {
            panic!("parsed as another command");
        };
        let HollyHrCommand::People {
            updated_since,
            limit,
            output,
        } = args.command
        else {
            panic!("parsed as another hollyhr command");
        };
        assert_eq!(limit, 50);
        assert_eq!(output, Output::Json);
        assert_eq!(
            updated_since,
            Some("2026-06-16T09:00:00Z".parse().expect("valid timestamp"))
        );
    }

    #[test]
    fn the_api_key_comes_from_a_file_before_the_environment() {
        use secrecy::ExposeSecret;
        let dir = std::env::temp_dir().join(format!("peoplesync-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("key");
        std::fs::write(&file, "hhr_test_from_file\n").expect("key file written");

        let key = api_key(Some(&file), Some("hhr_test_from_env".into())).expect("key from file");
        assert_eq!(key.expose_secret(), "hhr_test_from_file");
        let key = api_key(None, Some("hhr_test_from_env".into())).expect("key from env");
        assert_eq!(key.expose_secret(), "hhr_test_from_env");
        assert!(matches!(api_key(None, None), Err(CliError::MissingApiKey)));
        assert!(matches!(
            api_key(None, Some("  ".into())),
            Err(CliError::MissingApiKey)
        ));
        std::fs::write(&file, "\n").expect("key file written");
        assert!(matches!(
            api_key(Some(&file), None),
            Err(CliError::EmptyApiKey { .. })
        ));
        std::fs::remove_dir_all(&dir).expect("temp dir removed");
    }

    #[test]
    fn errors_are_reported_with_their_causes() {
        let error = CliError::ReadApiKey {
            path: "/nope".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        };
        assert_eq!(
            report(&error),
            "failed to read the API key file /nope: not found"
        );
    }
}
