//! The command line: its definition (clap, from which `--help` and the man page are both
//! generated) and one module per command. `main.rs` only parses and dispatches.
//!
//! Every command builds what it needs through the composition root ([`pbx_portal::app`]),
//! as `serve` does. Errors are `anyhow`: a command that fails prints one line, the error's
//! own message (never its causes: each typed error of the library already says why in one
//! line, and a cause could quote what is not meant for a terminal), and exits 1.

pub mod apply;
pub mod check;
pub mod export;
pub mod import;
pub mod man;
pub mod migrate;
pub mod serve;
pub mod token;

use clap::{Parser, Subcommand, ValueEnum};
use pbx_portal::domain::{NodeName, TenantSlug};
use pbx_portal::record::Strategy;

const ABOUT: &str = "Users and SIP extensions for Asterisk 22, applied as generated include files";

const LONG_ABOUT: &str = "\
pbx-portal manages the users and SIP extensions of an Asterisk 22 PBX. It keeps them in \
PostgreSQL, serves a REST API for them (serve), and applies them to Asterisk: it renders \
PJSIP endpoints and dialplan routing into include files, reloads Asterisk over AMI (or \
`asterisk -rx`), proves the result with a FastAGI health probe and restores the previous \
files when the reload or the probe fails. Every apply is audited.

Configuration comes from the environment (a .env file in the working directory is read \
if present; the Debian package's service reads /etc/pbx-portal/pbx-portal.env, where \
every variable is listed and explained). DATABASE_URL is required by every command; \
PORTAL_API_TOKEN by serve. Bad configuration stops a command with one line naming the \
variable, and exit status 2.";

const AFTER_LONG_HELP: &str = "\
Exit status: 0 on success; 1 when the command failed (for apply: the apply did not \
apply; for check: a check failed; for import: nothing was imported); 2 for bad \
configuration.";

#[derive(Parser)]
#[command(
    name = "pbx-portal",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run pending migrations, then serve HTTP and FastAGI until SIGTERM/SIGINT.
    #[command(long_about = "Run pending migrations, then serve the HTTP API \
        (PORTAL_LISTEN) and the FastAGI health probe (PORTAL_AGI_LISTEN) until SIGTERM or \
        SIGINT. Shutdown is graceful: in-flight requests and a running apply finish.")]
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Apply once, as POST /apply does; prints the JSON result.
    #[command(
        long_about = "Apply once from the shell, as POST /apply does, as this host's \
        node: to every chosen node. Prints the apply record as JSON; exits 0 when it \
        applied (or nothing changed), 1 otherwise. The health probe needs the FastAGI \
        address, which it binds for the duration: while `pbx-portal serve` runs on this \
        host, use POST /apply instead."
    )]
    Apply {
        /// Report what would change on this node without touching files or Asterisk.
        #[arg(long, conflicts_with_all = ["nodes", "strategy"])]
        dry_run: bool,
        /// Only these nodes (comma-separated names); default: every alive node and this one.
        #[arg(long, value_delimiter = ',', value_parser = NodeName::parse)]
        nodes: Option<Vec<NodeName>>,
        /// `parallel` (every node at once, the default) or `rolling` (one at a time,
        /// stopping at the first failure).
        #[arg(long, value_parser = apply::parse_strategy)]
        strategy: Option<Strategy>,
        /// Only this tenant's pending changes (its slug): its two files are written, every
        /// other tenant's changes stay pending; default: every tenant.
        #[arg(long, value_parser = TenantSlug::parse)]
        tenant: Option<TenantSlug>,
    },
    /// Check the database, include directories and lines, AMI and the FastAGI port.
    #[command(long_about = "The doctor: checks that the database is reachable and \
        migrated (and how its connection is encrypted), that the include directories are \
        writable and pjsip.conf / extensions.conf include them, the transports, the AMI \
        login and that the FastAGI port is free. One line per check (ok, warn, skip or \
        FAIL); exits 1 when any check fails.")]
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
        /// The output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
    /// Named, scoped API tokens (the audit names their changes `cli`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Write the man page (roff) to standard output; the package is built with it.
    #[command(hide = true)]
    Man,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// id,name,email,extension,devices,created_at
    Csv,
    /// {"users": [...]}
    Json,
}

#[derive(Subcommand)]
pub enum TokenCommand {
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
        /// Bind the token to this tenant (its slug): it then sees and changes only that
        /// tenant's users, tokens, audit rows and registrations. Without it the token
        /// reaches every tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List the live tokens (never a token or its hash).
    List,
    /// Revoke the live token of that name, at once on every node.
    Revoke {
        /// The token's name.
        name: String,
    },
}
