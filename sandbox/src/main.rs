#![forbid(unsafe_code)]
//! The `peoplesync-sandbox` binary: the HollyHR sandbox as a server, and the demo.

use std::process::ExitCode;

use clap::Parser;
use peoplesync::telemetry;
use peoplesync_sandbox::cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // The demo narrates a walkthrough: its audit lines (one per directory write) stay off unless
    // a filter asks for them.
    let filter = match args.command {
        cli::Command::Demo(_) if args.logs.log_filter == "info" => {
            "info,peoplesync::audit=off".to_owned()
        }
        _ => args.logs.log_filter.clone(),
    };
    if let Err(error) = telemetry::init(args.logs.log_format, &filter) {
        eprintln!("peoplesync-sandbox: {}", telemetry::report(&error));
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("peoplesync-sandbox: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peoplesync-sandbox: {}", telemetry::report(&error));
            ExitCode::FAILURE
        }
    }
}
