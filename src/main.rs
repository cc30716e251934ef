//! The `pbx-portal` binary: parses the command line ([`cli`]), sets up logging and the
//! configuration, and hands over to the command's module.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use pbx_portal::apply::cluster::Choice;
use pbx_portal::config::Config;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Man = cli.command {
        // Needs no configuration: the package build runs it.
        return exit(cli::man::print());
    }
    init_logging();
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
    exit(runtime.block_on(async move {
        match cli.command {
            Command::Serve => cli::serve::run(config).await,
            Command::Migrate => cli::migrate::run(config).await,
            Command::Apply {
                dry_run,
                nodes,
                strategy,
                tenant,
            } => {
                let choice = Choice {
                    nodes,
                    strategy: strategy.unwrap_or_default(),
                    tenant,
                };
                cli::apply::run(config, dry_run, choice).await
            }
            Command::Check => cli::check::run(config).await,
            Command::Import { file, dry_run } => cli::import::run(config, &file, dry_run).await,
            Command::Export { format } => cli::export::run(config, format).await,
            Command::Token { command } => cli::token::run(config, command).await,
            Command::Man => cli::man::print(),
        }
    }))
}

/// A command's error is its one line on stderr (its own message, not its causes) and exit
/// status 1.
fn exit(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })
}

/// Logs go to stderr. tokio-postgres logs query parameters at debug level, and those
/// include SIP secrets: whatever RUST_LOG says, its (and hyper's) logs stop at info.
fn init_logging() {
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
}
