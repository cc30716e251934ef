//! `pbx-portal serve`: the service, until SIGTERM or SIGINT.

use std::process::ExitCode;

use pbx_portal::app;
use pbx_portal::config::Config;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Starts the service (see [`app::start`]) and stops it gracefully at the first signal.
/// The signals are taken before the service starts: once it answers, a SIGTERM must
/// already mean a graceful stop, not the default disposition (killed, no exit code).
pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let signals = Signals::take();
    let running = app::start(config).await?;
    signals.wait().await;
    tracing::info!("shutting down: finishing in-flight requests and applies");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and SIGINT, handled from the moment this is made.
struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Signals {
    fn take() -> Self {
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Until the first of them arrives (forever when neither could be taken).
    async fn wait(mut self) {
        tokio::select! {
            _ = recv(self.term.as_mut()) => {}
            _ = recv(self.int.as_mut()) => {}
        }
    }
}

/// The next delivery of `signal`; never, without one.
async fn recv(signal: Option<&mut Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
