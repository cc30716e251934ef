//! The `pbx-portal` command line.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pbx_portal::apply::record::ApplyRecord;
use pbx_portal::apply::{Applier, ApplyError};
use pbx_portal::config::Config;
use pbx_portal::store::{self, Store};
use pbx_portal::{app, check};

#[derive(Parser)]
#[command(
    version,
    about = "Users and SIP extensions for Asterisk 22, applied as generated include files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run pending migrations, then serve HTTP and FastAGI until SIGTERM/SIGINT.
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Apply once, as POST /apply does; prints the JSON result.
    Apply {
        /// Report what would change without touching files or Asterisk.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the database, include directories and lines, AMI and the FastAGI port.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // tokio-postgres logs query parameters at debug level, and those include SIP secrets:
    // whatever RUST_LOG says, its (and hyper's) logs stop at info.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive("tokio_postgres=info".parse().expect("static directive"))
        .add_directive("hyper=info".parse().expect("static directive"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colour codes only for a person at a terminal: the journal shows them raw.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
            Command::Apply { dry_run } => apply(config, dry_run).await,
            Command::Check => check(config).await,
        }
    })
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

async fn serve(config: Config) -> ExitCode {
    let running = match app::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests and applies");
    running.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn migrate(config: Config) -> ExitCode {
    let result = async {
        let store = Store::connect(&config.database, config.pool_size).await?;
        store::migrate(&store).await
    };
    match result.await {
        Ok(n) => {
            println!("{n} migration(s) applied");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One apply from the shell. The health probe needs the FastAGI address, so it is bound
/// here for the duration; when `serve` holds it, use POST /apply instead.
async fn apply(mut config: Config, dry_run: bool) -> ExitCode {
    let store = match app::open_store(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("apply failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if dry_run {
        Applier::new(store, config.asterisk.clone(), Arc::default())
            .dry_run()
            .await
    } else if config.asterisk.health_check {
        let (server, applier) = match app::probe_and_applier(&mut config, store).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("apply failed: {e}; if `pbx-portal serve` is running, use POST /apply");
                return ExitCode::FAILURE;
            }
        };
        let result = applier.apply().await;
        server.shutdown().await;
        result
    } else {
        Applier::new(store, config.asterisk.clone(), Arc::default())
            .apply()
            .await
    };
    let print = |rec: &ApplyRecord| {
        println!("{}", serde_json::to_string_pretty(rec).unwrap_or_default());
    };
    match result {
        Ok(rec) => {
            print(&rec);
            ExitCode::SUCCESS
        }
        Err(ApplyError::Failed(rec)) => {
            print(&rec);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("apply failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn check(config: Config) -> ExitCode {
    let lines = check::run(&config).await;
    let ok = lines.iter().all(|l| l.passes());
    for l in lines {
        println!("{:<4} {:<16} {}", l.mark.as_str(), l.name, l.detail);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
