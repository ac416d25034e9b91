#![forbid(unsafe_code)]
//! The `peoplesync` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use peoplesync::{cli, telemetry};

fn main() -> ExitCode {
    // Installed as `kubectl-peoplesync`, the binary is kubectl's `peoplesync` plugin.
    let invoked_as = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if invoked_as == "kubectl-peoplesync" {
        let args = cli::plugin::PluginCli::parse();
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("kubectl-peoplesync: cannot start the async runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
        return match runtime.block_on(cli::plugin::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("kubectl-peoplesync: {}", cli::report(&error));
                ExitCode::FAILURE
            }
        };
    }
    let args = cli::Cli::parse();
    if let Err(error) = telemetry::init(args.logs.log_format, &args.logs.log_filter) {
        eprintln!("peoplesync: {}", cli::report(&error));
        return ExitCode::FAILURE;
    }
    // A standalone sync is one pipeline (the source read ahead, the planner, the directory's
    // connection): on one thread its memory stays in one allocator arena, which keeps the peak of
    // a 100,000-person full cycle well under 64 MiB. Everything else runs multi-threaded.
    let mut builder = match args.command {
        cli::Command::Sync(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("peoplesync: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peoplesync: {}", cli::report(&error));
            ExitCode::FAILURE
        }
    }
}
