//! `pbx-portal serve`: the service, until SIGTERM or SIGINT.

use std::process::ExitCode;

use pbx_portal::app;
use pbx_portal::config::Config;

/// Starts the service (see [`app::start`]) and stops it gracefully at the first signal.
pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let running = app::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests and applies");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
