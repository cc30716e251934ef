//! The `pbx-portal` command line.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pbx_portal::apply::record::ApplyRecord;
use pbx_portal::apply::{Applier, ApplyError};
use pbx_portal::auth::{parse_expires_in, Actor, Scopes, TokenName};
use pbx_portal::config::Config;
use pbx_portal::store::{self, Store, StoreError};
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
    /// Named, scoped API tokens (the audit names their changes `cli`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        /// 1-64 of A-Z a-z 0-9 . _ - (not `bootstrap` or `cli`).
        name: String,
        /// Comma-separated: read, write, apply, metrics, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime in days, like 90d; without it the token does not expire.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List the live tokens (never a token or its hash).
    List,
    /// Revoke the live token of that name, at once on every node.
    Revoke { name: String },
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
            Command::Token { command } => token(config, command).await,
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
        let store = Store::connect(config.database.0.clone()).await?;
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
            .dry_run(&Actor::Cli)
            .await
    } else if config.asterisk.health_check {
        let (server, applier) = match app::probe_and_applier(&mut config, store).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("apply failed: {e}; if `pbx-portal serve` is running, use POST /apply");
                return ExitCode::FAILURE;
            }
        };
        let result = applier.apply(&Actor::Cli).await;
        server.shutdown().await;
        result
    } else {
        Applier::new(store, config.asterisk.clone(), Arc::default())
            .apply(&Actor::Cli)
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

/// The token subcommands; errors name what was wrong, never a token.
async fn token(config: Config, command: TokenCommand) -> ExitCode {
    let result = async {
        let store = app::open_store(&config)
            .await
            .map_err(|e| format!("database: {e}"))?;
        match command {
            TokenCommand::Create {
                name,
                scopes,
                expires_in,
            } => {
                let name = TokenName::parse(&name).map_err(|e| format!("name: {e}"))?;
                let scopes = Scopes::parse(scopes.iter().map(String::as_str))
                    .map_err(|e| format!("--scopes: {e}"))?;
                let days = expires_in
                    .as_deref()
                    .map(parse_expires_in)
                    .transpose()
                    .map_err(|e| format!("--expires-in: {e}"))?;
                let (token, info) = store
                    .create_token(&name, scopes, days, &Actor::Cli)
                    .await
                    .map_err(|e| match e {
                        StoreError::TokenNameTaken => {
                            format!("a token named {} already exists", name.as_str())
                        }
                        e => e.to_string(),
                    })?;
                eprintln!(
                    "token {} ({}) created; it is shown once:",
                    info.name,
                    info.scopes.join(",")
                );
                println!("{}", token.expose());
            }
            TokenCommand::List => {
                let fmt = |t: Option<time::OffsetDateTime>| {
                    t.and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "-".into())
                };
                println!(
                    "{:<24} {:<32} {:<26} {:<26} LAST USED",
                    "NAME", "SCOPES", "CREATED", "EXPIRES"
                );
                for t in store.list_tokens().await.map_err(|e| e.to_string())? {
                    println!(
                        "{:<24} {:<32} {:<26} {:<26} {}",
                        t.name,
                        t.scopes.join(","),
                        fmt(Some(t.created_at)),
                        fmt(t.expires_at),
                        fmt(t.last_used_at)
                    );
                }
            }
            TokenCommand::Revoke { name } => {
                let parsed = TokenName::parse(&name).map_err(|e| format!("name: {e}"))?;
                if !store
                    .revoke_token(&parsed, &Actor::Cli)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("no live token named {name}"));
                }
                println!("token {name} revoked");
            }
        }
        Ok::<(), String>(())
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("token: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn check(config: Config) -> ExitCode {
    let lines = check::run(&config).await;
    let ok = lines.iter().all(|l| l.ok);
    for l in lines {
        let mark = if l.ok { "ok  " } else { "FAIL" };
        println!("{mark} {:<16} {}", l.name, l.detail);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
