//! `peoplesync-sandbox hollyhr`: serve a local HollyHR until Ctrl-C or SIGTERM.

use crate::SandboxConfig;

use crate::cli::CliError;

pub async fn run(config: SandboxConfig) -> Result<(), CliError> {
    let default_key = crate::cli::uses_default_key(&config);
    let (people, seed) = (config.people, config.seed);
    let handle = crate::start(config).await?;
    let base_url = handle.base_url();
    println!("HollyHR sandbox: {people} people (seed {seed})");
    println!("  API:      {base_url}");
    println!("  controls: {}", handle.control_url());
    println!("Try:");
    println!("{}", crate::cli::sandbox_usage(&base_url, default_key));
    println!("Ctrl-C stops it.");
    tracing::info!(addr = %handle.addr(), people, "sandbox serving");

    shutdown_signal().await.map_err(CliError::Signal)?;
    tracing::info!("shutting the sandbox down");
    handle.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM (what Kubernetes and `docker stop` send).
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
