//! The `pbx-portal` command line.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use pbx_portal::apply::cluster::{self, Choice, Cluster, ClusterError};
use pbx_portal::apply::{Applier, ApplyError};
use pbx_portal::auth::{parse_expires_in, Actor, Scopes, TokenName};
use pbx_portal::config::Config;
use pbx_portal::domain::NodeName;
use pbx_portal::record::{ApplyRecord, Strategy};
use pbx_portal::shutdown::Shutdown;
use pbx_portal::store::{self, Store, StoreError};
use pbx_portal::{app, bulk, check};

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
        /// Report what would change on this node without touching files or Asterisk.
        #[arg(long, conflicts_with_all = ["nodes", "strategy"])]
        dry_run: bool,
        /// Only these nodes (comma-separated names); default: every alive node and this one.
        #[arg(long, value_delimiter = ',', value_parser = NodeName::parse)]
        nodes: Option<Vec<NodeName>>,
        /// `parallel` (every node at once) or `rolling` (one at a time, stopping at the
        /// first failure).
        #[arg(long, value_parser = parse_strategy)]
        strategy: Option<Strategy>,
    },
    /// Check the database, include directories and lines, AMI and the FastAGI port.
    Check,
    /// Import users from a CSV or JSON file, all or nothing, as POST /users/import does.
    /// Prints the created users with their SIP secrets as CSV; errors go to stderr.
    Import {
        /// The file (`-` for standard input): CSV with a header (name,email[,extension]
        /// [,devices]) or JSON {"users": [...]}; by its .csv/.json name, else its content.
        file: String,
        /// Check the file and show the numbers the users would get; create nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export every user (no secrets) to standard output, sorted by extension.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
    /// Named, scoped API tokens (the audit names their changes `cli`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// id,name,email,extension,devices,created_at
    Csv,
    /// {"users": [...]}
    Json,
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
            Command::Apply {
                dry_run,
                nodes,
                strategy,
            } => {
                let choice = Choice {
                    nodes,
                    strategy: strategy.unwrap_or_default(),
                };
                apply(config, dry_run, choice).await
            }
            Command::Check => check(config).await,
            Command::Import { file, dry_run } => import(config, &file, dry_run).await,
            Command::Export { format } => export(config, format).await,
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

/// One apply from the shell, as this host's node: to every chosen node, as POST /apply.
/// The health probe needs the FastAGI address, so it is bound here for the duration;
/// when `serve` holds it, use POST /apply instead.
async fn apply(mut config: Config, dry_run: bool, choice: Choice) -> ExitCode {
    let prepared = async {
        let store = app::open_store(&config).await.map_err(|e| e.to_string())?;
        // After the database (a bad DATABASE_URL stays the one line printed), before the
        // node row (it keeps which transports are TLS).
        app::resolve_transports(&mut config).map_err(|e| e.to_string())?;
        let node = app::register_node(&config, &store)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((store, node))
    };
    let (store, node) = match prepared.await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("apply failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (server, applier) = if config.asterisk.health_check && !dry_run {
        match app::probe_and_applier(&mut config, store, node).await {
            Ok((server, applier)) => (Some(server), applier),
            Err(e) => {
                eprintln!("apply failed: {e}; if `pbx-portal serve` is running, use POST /apply");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let applier = Applier::new(store, config.asterisk.clone(), Arc::default(), node);
        (None, applier)
    };
    let result = if dry_run {
        applier
            .dry_run(&Actor::Cli)
            .await
            .map_err(ClusterError::from)
    } else {
        let (_stop, shutdown) = Shutdown::new();
        let outcomes = cluster::listen(&applier, Arc::default(), shutdown);
        Cluster::new(applier, config.node_timeout, outcomes)
            .apply(&Actor::Cli, &choice)
            .await
    };
    if let Some(server) = server {
        server.shutdown().await;
    }
    let print = |rec: &ApplyRecord| {
        println!("{}", serde_json::to_string_pretty(rec).unwrap_or_default());
    };
    match result {
        Ok(rec) => {
            print(&rec);
            ExitCode::SUCCESS
        }
        Err(ClusterError::Apply(ApplyError::Failed(rec))) => {
            print(&rec);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("apply failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_strategy(raw: &str) -> Result<Strategy, String> {
    match raw {
        "parallel" => Ok(Strategy::Parallel),
        "rolling" => Ok(Strategy::Rolling),
        _ => Err("must be parallel or rolling".into()),
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

/// Reads the file to import (or standard input for `-`), refusing one larger than an
/// import may be before reading it all.
fn read_import(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let limit = bulk::file::MAX_BYTES as u64;
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin().take(limit + 1).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{path} is larger than 8 MiB: split it"));
    }
    Ok(bytes)
}

/// `import FILE [--dry-run]`: stdout gets the created (or planned) users as CSV, stderr
/// one line per error. Exit 0 when every user was created (or would be), 1 otherwise.
async fn import(config: Config, path: &str, dry_run: bool) -> ExitCode {
    let bytes = match read_import(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("import failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let format = bulk::Format::sniff(path, &bytes);
    let store = match app::open_store(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("import failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mode = if dry_run {
        bulk::Mode::DryRun
    } else {
        bulk::Mode::Create {
            idempotency_key: None,
            actor: &pbx_portal::auth::Actor::Cli,
        }
    };
    let sheet = match bulk::import(&store, format, &bytes, config.user_rules(), mode).await {
        Ok(bulk::Outcome::Created(imported)) => bulk::sheet::created_csv(&imported.users),
        Ok(bulk::Outcome::Planned(users)) => bulk::sheet::planned_csv(&users),
        Err(bulk::ImportError::Invalid(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "import failed: {} error(s); nothing was imported",
                errors.len()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("import failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = sheet.map_err(|e| e.to_string()).and_then(|bytes| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The users exist: say so, since their secrets did not reach the admin.
            eprintln!("import done, but its output could not be written: {e}; rotate the secrets (POST /users/{{id}}/secret)");
            ExitCode::FAILURE
        }
    }
}

/// `export [--format csv|json]`: every user to stdout, streamed as it is read.
async fn export(config: Config, format: ExportFormat) -> ExitCode {
    use std::io::Write;
    let format = match format {
        ExportFormat::Csv => bulk::Format::Csv,
        ExportFormat::Json => bulk::Format::Json,
    };
    let result = async {
        let store = app::open_store(&config).await.map_err(|e| e.to_string())?;
        let mut rows = store
            .export_users(1000, std::time::Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        let mut writer = bulk::sheet::ExportWriter::new(format);
        // A chunk is written while the next is read (a terminal or pipe that blocks the
        // write only slows the reads down).
        let mut out = std::io::stdout();
        while let Some(chunk) = rows.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            let bytes = writer.rows(&chunk).map_err(|e| e.to_string())?;
            out.write_all(&bytes).map_err(|e| e.to_string())?;
        }
        let mut bytes = writer.finish().map_err(|e| e.to_string())?;
        if format == bulk::Format::Json {
            bytes.push(b'\n');
        }
        out.write_all(&bytes)
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("export failed: {e}");
            ExitCode::FAILURE
        }
    }
}
