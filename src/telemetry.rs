//! Logs: `tracing` to stderr (stdout stays for command output such as NDJSON), as text or JSON,
//! filtered by a `RUST_LOG`-style directive. Fields are ids, routes, statuses and request ids;
//! secrets and personal fields never reach a log.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The logging flags every PeopleSync binary takes (`peoplesync`, `peoplesync-sandbox`).
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format (logs go to stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter in RUST_LOG syntax, e.g. `info,peoplesync=debug`.
    #[arg(
        long = "log-filter",
        env = "RUST_LOG",
        default_value = "info",
        global = true
    )]
    pub log_filter: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("failed to parse the log filter {filter:?}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("failed to install the log subscriber")]
    Install(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (e.g. `info,peoplesync=debug`).
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| TelemetryError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let registry = tracing_subscriber::registry().with(env_filter);
    let installed = match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    installed.map_err(TelemetryError::Install)
}

/// An error and its sources on one line: `failed to X: failed to Y: cause` (for log fields,
/// conditions and CLI messages; errors never carry a secret or a personal value).
pub fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Test support: what a scoped subscriber writes, shared with the test.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Makes `subscriber` (writing here) this thread's default until the guard drops. A second
    /// dispatcher is kept alive beside it: while only one dispatcher is registered, tracing
    /// decides a new callsite's interest by the default of whichever thread hits it first, so
    /// a test running in parallel without a subscriber would silence that callsite here too.
    pub(crate) fn scoped(
        subscriber: impl tracing::Subscriber + Send + Sync + 'static,
    ) -> (tracing::subscriber::DefaultGuard, tracing::Dispatch) {
        let beside = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (guard, beside)
    }
}

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_filter_is_reported_not_ignored() {
        assert!(matches!(
            init(LogFormat::Text, "peoplesync=notalevel"),
            Err(TelemetryError::Filter { .. })
        ));
    }
}
