//! The sandboxes' command line (`peoplesync-sandbox`): serve the HollyHR sandbox, or run the
//! demo (a sandbox, a private OpenLDAP, the test control plane and the operator, all local).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{ApiKeySpec, DEFAULT_API_KEY, DEFAULT_SCOPES, SandboxConfig, SignatureVariant};
use peoplesync::telemetry::LogArgs;

/// The HollyHR and Personio sandboxes, and the demo built on them.
#[derive(Debug, Parser)]
#[command(name = "peoplesync-sandbox", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub logs: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a local HollyHR sandbox (the contract's API plus /_sandbox test controls).
    Hollyhr(SandboxArgs),
    /// The main job on its local default: a HollyHR sandbox and a private OpenLDAP, a full sync,
    /// a change through the HollyHR API and the incremental cycle that carries it.
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignatureVariantArg {
    /// The webhooks guide: `HollyHR-Webhook-Signature`, Unix-seconds timestamp.
    Guide,
    /// The TypeScript SDK: `X-HollyHR-Signature`, RFC 3339 timestamp, event id signed.
    Sdk,
}

impl From<SignatureVariantArg> for SignatureVariant {
    fn from(arg: SignatureVariantArg) -> Self {
        match arg {
            SignatureVariantArg::Guide => SignatureVariant::Guide,
            SignatureVariantArg::Sdk => SignatureVariant::Sdk,
        }
    }
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Size of the seeded tenant.
    #[arg(long, default_value_t = 1000)]
    pub people: usize,
    /// Seed of the tenant generator (same seed, same tenant).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// An accepted key and its scopes, `KEY=scope1,scope2`; repeatable. Default: the built-in
    /// test key with people:read, people:write, org_units:read, webhooks:manage.
    #[arg(long = "api-key", value_name = "KEY=SCOPES", value_parser = ApiKeySpec::parse)]
    pub api_keys: Vec<ApiKeySpec>,
    /// Requests a minute per route and key; 0 turns rate limiting off.
    #[arg(long, default_value_t = 600)]
    pub rate_limit_per_minute: u32,
    /// Accept loopback `http://` webhook URLs (for local receivers).
    #[arg(long)]
    pub allow_insecure_webhook_urls: bool,
    /// Waits between delivery attempts, e.g. `30s,2m,10m,1h,6h`.
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = peoplesync::crd::duration::parse,
        default_value = "30s,2m,10m,1h,6h"
    )]
    pub delivery_retry_schedule: Vec<Duration>,
    #[arg(long, value_enum, default_value_t = SignatureVariantArg::Guide)]
    pub signature_variant: SignatureVariantArg,
    /// Make `updated_since` exclusive (HollyHR's is inclusive) to test client overlap handling.
    #[arg(long)]
    pub updated_since_exclusive: bool,
}

impl SandboxArgs {
    pub fn into_config(self) -> SandboxConfig {
        let defaults = SandboxConfig::default();
        SandboxConfig {
            listen: self.listen,
            people: self.people,
            seed: self.seed,
            api_keys: if self.api_keys.is_empty() {
                defaults.api_keys.clone()
            } else {
                self.api_keys
            },
            rate_limit_per_minute: self.rate_limit_per_minute,
            allow_insecure_webhook_urls: self.allow_insecure_webhook_urls,
            delivery_retry_schedule: self.delivery_retry_schedule,
            signature_variant: self.signature_variant.into(),
            updated_since_exclusive: self.updated_since_exclusive,
            ..defaults
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Size of the in-process sandbox's tenant.
    #[arg(long, default_value_t = 1000)]
    pub people: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Without Kubernetes: `peoplesync sync` from a config file, incremental cycles.
    #[arg(long)]
    pub standalone: bool,
    /// The HR sandbox to sync from.
    #[arg(long, value_enum, default_value_t = crate::demo::DemoSource::Hollyhr)]
    pub source: crate::demo::DemoSource,
    /// Stop after the showcase instead of keeping everything running until Ctrl-C (the default
    /// when stdout is not a terminal, e.g. in CI).
    #[arg(long)]
    pub exit: bool,
}

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("failed to start the sandbox")]
    Sandbox(#[from] crate::SandboxError),
    #[error(transparent)]
    HollyHr(#[from] peoplesync::source::hollyhr::HollyHrError),
    #[error("failed to wait for a shutdown signal")]
    Signal(#[source] std::io::Error),
    #[error("failed to read the sandbox's request log")]
    RequestLog(#[source] reqwest::Error),
    #[error(transparent)]
    Sync(#[from] peoplesync::cli::sync::SyncCliError),
    #[error(transparent)]
    Operator(#[from] peoplesync::cli::CliError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Hollyhr(args) => crate::serve::run(args.into_config()).await,
        Command::Demo(args) if args.standalone => {
            crate::demo::run_standalone(args.people, args.seed, args.source).await
        }
        Command::Demo(args) => {
            use std::io::IsTerminal;
            let keep = !args.exit && std::io::stdout().is_terminal();
            crate::demo::run(args.people, args.seed, args.source, keep).await
        }
    }
}

/// How to reach a sandbox from another shell.
pub fn sandbox_usage(base_url: &str, uses_default_key: bool) -> String {
    let key = if uses_default_key {
        DEFAULT_API_KEY
    } else {
        "<one of the --api-key keys>"
    };
    format!(
        "  curl -H 'Authorization: Bearer {key}' '{base_url}/people?limit=5'\n  \
         HOLLYHR_BASE_URL={base_url} HOLLYHR_API_KEY={key} peoplesync hollyhr people"
    )
}

/// Whether `config` only has the built-in key, so the usage hint may name it.
pub fn uses_default_key(config: &SandboxConfig) -> bool {
    config
        .api_keys
        .iter()
        .all(|spec| spec.key == DEFAULT_API_KEY && spec.scopes == DEFAULT_SCOPES)
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
    fn sandbox_flags_become_a_sandbox_config() {
        let cli = Cli::try_parse_from([
            "peoplesync-sandbox",
            "hollyhr",
            "--people",
            "25",
            "--seed",
            "7",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "hhr_test_one_key=people:read,org_units:read",
            "--api-key",
            "hhr_test_two_key=webhooks:manage",
            "--rate-limit-per-minute",
            "0",
            "--allow-insecure-webhook-urls",
            "--delivery-retry-schedule",
            "10ms,2s,1m",
            "--signature-variant",
            "sdk",
            "--updated-since-exclusive",
        ])
        .expect("valid flags");
        let Command::Hollyhr(args) = cli.command else {
            panic!("parsed as another command");
        };
        let config = args.into_config();
        assert_eq!(config.people, 25);
        assert_eq!(config.seed, 7);
        assert_eq!(config.api_keys.len(), 2);
        assert_eq!(config.api_keys[0].scopes, ["people:read", "org_units:read"]);
        assert_eq!(config.rate_limit_per_minute, 0);
        assert!(config.allow_insecure_webhook_urls);
        assert_eq!(
            config.delivery_retry_schedule,
            [
                Duration::from_millis(10),
                Duration::from_secs(2),
                Duration::from_secs(60)
            ]
        );
        assert_eq!(config.signature_variant, SignatureVariant::Sdk);
        assert!(config.updated_since_exclusive);
        assert!(!uses_default_key(&config));
    }

    #[test]
    fn sandbox_defaults_match_the_documented_ones() {
        let cli = Cli::try_parse_from(["peoplesync-sandbox", "hollyhr"]).expect("valid flags");
        let Command::Hollyhr(args) = cli.command else {
            panic!("parsed as another command");
        };
        let config = args.into_config();
        let defaults = SandboxConfig::default();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.people, 1000);
        assert_eq!(
            config.delivery_retry_schedule,
            defaults.delivery_retry_schedule
        );
        assert!(uses_default_key(&config));
    }

    #[test]
    fn bad_flags_are_refused() {
        let refused = [
            vec![
                "peoplesync-sandbox",
                "hollyhr",
                "--api-key",
                "no-scopes-separator",
            ],
            vec![
                "peoplesync-sandbox",
                "hollyhr",
                "--api-key",
                "hhr_test_key=not:a_scope",
            ],
            vec![
                "peoplesync-sandbox",
                "hollyhr",
                "--signature-variant",
                "other",
            ],
            vec![
                "peoplesync-sandbox",
                "hollyhr",
                "--delivery-retry-schedule",
                "soon",
            ],
        ];
        for args in refused {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
        }
    }
}
