//! `pbx-portal serve`: the service, until SIGTERM or SIGINT; SIGHUP re-reads the HTTPS
//! certificate and key (`systemctl reload pbx-portal`).

use std::process::ExitCode;

use pbx_portal::app;
use pbx_portal::config::Config;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Starts the service (see [`app::start`]) and stops it gracefully at the first signal.
/// The signals are taken before the service starts: once it answers, a SIGTERM must
/// already mean a graceful stop, not the default disposition (killed, no exit code).
pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::take();
    let running = app::start(config).await?;
    while let Event::Reload = signals.next().await {
        running.reload();
    }
    tracing::info!("shutting down: finishing in-flight requests and applies");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM, SIGINT and SIGHUP, handled from the moment this is made (SIGHUP's default,
/// ending the process, would turn a certificate renewal into an outage).
struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
    hup: Option<Signal>,
}

/// What a signal asks of the service.
enum Event {
    Stop,
    Reload,
}

impl Signals {
    fn take() -> Self {
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The next of them to arrive (never, when none could be taken).
    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = recv(self.term.as_mut()) => Event::Stop,
            _ = recv(self.int.as_mut()) => Event::Stop,
            _ = recv(self.hup.as_mut()) => Event::Reload,
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
