#![forbid(unsafe_code)]
//! The `peoplesync` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use peoplesync::{cli, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if let Err(error) = telemetry::init(args.log_format, &args.log_filter) {
        eprintln!("peoplesync: {}", cli::report(&error));
        return ExitCode::FAILURE;
    }
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peoplesync: {}", cli::report(&error));
            ExitCode::FAILURE
        }
    }
}
