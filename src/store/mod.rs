//! PostgreSQL: the connection pool, migrations and every query the portal runs.
//!
//! Queries use `query_typed`, which sends parse, bind and execute in one round trip, so a
//! request costs as few trips to the database as its SQL needs.
//!
//! [`Store::connect`] makes one connection before it hands out the pool: the pool retries
//! failed connections out of sight and a caller would only learn "timed out", while a
//! wrong CA, a certificate for another host or a server without TLS must stop start-up
//! with the reason ([`ConnectError`]).

mod applies;
pub mod audit;
mod idempotency;
mod import;
mod locks;
mod migrate;
pub mod nodes;
mod tenants;
pub mod tls;
pub mod tokens;
mod users;

use std::time::Duration;

use std::sync::{Arc, Mutex};

use bb8::{ErrorSink, ManageConnection, Pool, PooledConnection};
use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DatabaseUrl;

pub use applies::Snapshot;
pub use audit::AuditEntry;
pub use import::INSERT as IMPORT_STATEMENT;
pub use import::{
    Conflict, ConflictKind, CreatedAnswer, CreatedUser, ExportRows, ImportFailure, Imported,
    PlannedUser,
};
pub use locks::{ApplyLock, ApplyLockKind, Coordination, LockConn};
pub use migrate::{migrate, pending as pending_migrations, MIGRATIONS};
pub use tenants::{TenantChangeError, TenantRow, DEFAULT_TENANT_ID};
pub use tokens::{FoundToken, TokenInfo};
pub use users::{CreateOutcome, ListQuery, Order, UserRow};

type Manager = PostgresConnectionManager<MakeRustlsConnect>;
pub type Conn<'a> = PooledConnection<'a, Manager>;

/// Errors of the store. Conflicts that a client can cause are their own variants so
/// that the HTTP layer can answer them precisely; anything else is `Db`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("email address is already taken")]
    EmailTaken,
    #[error("extension is already taken")]
    ExtensionTaken,
    #[error("no free extension left in the range")]
    PoolExhausted,
    #[error("Idempotency-Key was already used with a different body")]
    IdempotencyKeyReused,
    #[error("a live token already has this name")]
    TokenNameTaken,
    #[error("a tenant with this slug already exists")]
    TenantExists,
    #[error("the tenant still has users")]
    TenantNotEmpty,
    #[error("the tenant has reached its max_users")]
    TenantFull,
    /// An explicit number outside its tenant's range, seen under the allocation lock (the
    /// range changed since the request was checked).
    #[error("the extension is outside the tenant's range")]
    ExtensionOutsideRange,
    /// The tenant went away between the request's check and the create.
    #[error("no such tenant")]
    NoSuchTenant,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The first connection failed: start-up stops with this line.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The database answered with an error, or the connection failed mid-query.
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// The database holds a value no version of the portal writes.
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing a statement).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Connect(_) => true,
            Self::Db(e) => is_connection_error(e),
            _ => false,
        }
    }
}

/// A lost connection or an I/O failure, as opposed to an error the server answered or
/// a value that could not be decoded.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    // 57P0x: the server is shutting down or restarting; 08xxx: the connection failed.
    let code = e.code().map(|c| c.code());
    e.is_closed()
        || code.is_some_and(|c| c.starts_with("57P0") || c.starts_with("08"))
        || std::error::Error::source(e)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
}

/// What went wrong, for the log: the SQLSTATE and the server's message when the server
/// answered, else the first line of the client's error. Never a query parameter (the
/// server's message for a statement does not quote them; its DETAIL line might, so it is
/// left out) and never a connection parameter.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(r) = tls::rustls_error(e) {
        return format!("TLS handshake failed: {}", tls::handshake_reason(r));
    }
    match e.as_db_error() {
        Some(db) => format!("SQLSTATE {}: {}", db.code().code(), db.message()),
        None => {
            let s = match std::error::Error::source(e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            };
            s.lines().next().unwrap_or("error").to_owned()
        }
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for StoreError {
    fn from(e: bb8::RunError<tokio_postgres::Error>) -> Self {
        match e {
            bb8::RunError::User(e) => StoreError::Unavailable(describe(&e)),
            bb8::RunError::TimedOut => StoreError::Unavailable("timed out".into()),
        }
    }
}

fn map_db_error(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Db(e);
    };
    if db.code() == &SqlState::UNIQUE_VIOLATION {
        match db.constraint() {
            Some("users_email_key") => return StoreError::EmailTaken,
            Some("extensions_number_key") => return StoreError::ExtensionTaken,
            Some("api_tokens_live_name_key") => return StoreError::TokenNameTaken,
            Some("tenants_slug_key") => return StoreError::TenantExists,
            _ => {}
        }
    }
    match db.code().code() {
        "PX001" => return StoreError::PoolExhausted,
        "PX002" => return StoreError::ExtensionOutsideRange,
        "PX003" => return StoreError::TenantFull,
        "PX004" => return StoreError::NoSuchTenant,
        _ => {}
    }
    // A user or extension inserted for a tenant deleted meanwhile.
    if db.code() == &SqlState::FOREIGN_KEY_VIOLATION
        && db.constraint() == Some("users_tenant_id_fkey")
    {
        return StoreError::NoSuchTenant;
    }
    StoreError::Db(e)
}

/// The pool's failed connection attempts: logged (the pool retries them out of sight of
/// any request) and the last one kept, so that a health check that times out can say why.
#[derive(Debug, Clone, Default)]
struct ConnectErrors {
    last: Arc<Mutex<Option<String>>>,
}

impl ErrorSink<tokio_postgres::Error> for ConnectErrors {
    fn sink(&self, e: tokio_postgres::Error) {
        let reason = describe(&e);
        tracing::warn!(error = %reason, "database connection failed");
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<tokio_postgres::Error>> {
        Box::new(self.clone())
    }
}

/// How long start-up waits for the first connection (every host of `DATABASE_URL`; a
/// `connect_timeout` in it bounds each attempt).
const FIRST_CONNECTION: Duration = Duration::from_secs(10);

/// Why the first connection failed: one line that names `DATABASE_URL`. Never a connection
/// parameter: tokio-postgres's and rustls's messages quote none, and the reasons written
/// here name only `sslmode` and `sslrootcert`'s path.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL: {0}")]
    TlsSetup(#[from] tls::TlsSetupError),
    #[error("DATABASE_URL: {reason}")]
    Failed {
        reason: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("DATABASE_URL: no connection within {} s", FIRST_CONNECTION.as_secs())]
    TimedOut,
}

/// The pool's size and use, for `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PoolState {
    /// PORTAL_DB_POOL_SIZE.
    pub size: u32,
    /// Connections lent out now.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
}

/// TLS of a session, as the server reports it (`pg_stat_ssl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTls {
    pub encrypted: bool,
    /// e.g. `TLSv1.3`, when encrypted.
    pub version: Option<String>,
}

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    /// For the connections of their own that LISTEN ([`Store::listen`]).
    pg: tokio_postgres::Config,
    connector: MakeRustlsConnect,
    errors: ConnectErrors,
    size: u32,
    /// Exports running now: each holds a connection for as long as its reader takes.
    exports: Arc<tokio::sync::Semaphore>,
}

impl Store {
    /// Exports at once: slow readers may hold this many connections, never the pool.
    pub const EXPORTS: usize = 4;

    /// A pool of `size` connections to `db`, after one connection proved that the server
    /// can be reached and its TLS is what `sslmode` asks for.
    pub async fn connect(db: &DatabaseUrl, size: u32) -> Result<Self, StoreError> {
        let connector = tls::connector(db.tls()).map_err(ConnectError::from)?;
        let manager = PostgresConnectionManager::new(db.pg().clone(), connector.clone());
        let first = match tokio::time::timeout(FIRST_CONNECTION, manager.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => {
                let reason = tls::failure(&source, db.tls()).unwrap_or_else(|| describe(&source));
                return Err(ConnectError::Failed { reason, source }.into());
            }
            Err(_) => return Err(ConnectError::TimedOut.into()),
        };
        let errors = ConnectErrors::default();
        let pool = Pool::builder()
            .max_size(size)
            .connection_timeout(Duration::from_secs(5))
            .error_sink(Box::new(errors.clone()))
            .build_unchecked(manager);
        // A full pool cannot refuse its first connection; were it to, it is dropped.
        let _ = pool.add(first);
        Ok(Self {
            pool,
            pg: db.pg().clone(),
            connector,
            errors,
            size,
            exports: Arc::new(tokio::sync::Semaphore::new(Self::EXPORTS)),
        })
    }

    /// Size and use of the pool now.
    pub fn pool_state(&self) -> PoolState {
        let s = self.pool.state();
        PoolState {
            size: self.size,
            in_use: s.connections.saturating_sub(s.idle_connections),
            idle: s.idle_connections,
        }
    }

    /// Whether this process's sessions are encrypted, as the server sees one of them.
    pub async fn session_tls(&self) -> Result<SessionTls, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(match row {
            Some(row) => SessionTls {
                encrypted: row.try_get(0)?,
                version: row.try_get(1)?,
            },
            None => SessionTls {
                encrypted: false,
                version: None,
            },
        })
    }

    /// Why the last connection attempt failed, unless one has succeeded since.
    pub fn last_error(&self) -> Option<String> {
        self.errors
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        let conn = self.pool.get().await?;
        *self.errors.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(conn)
    }

    /// A connection of its own (a pooled one would lose its notifications) that LISTENs on
    /// `channels`. Its notifications arrive on the receiver, which closes when the
    /// connection ends; dropping the client ends the connection.
    pub async fn listen(
        &self,
        channels: &[&str],
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
        ),
        StoreError,
    > {
        let (client, mut connection) = self
            .pg
            .connect(self.connector.clone())
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        if tx.send(n).is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        });
        let sql: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
        client.batch_execute(&sql).await?;
        Ok((client, rx))
    }

    /// `SELECT 1`, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(())
    }
}
