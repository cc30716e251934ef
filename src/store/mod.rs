//! PostgreSQL: the connection pool, migrations and every query the portal runs.
//!
//! Queries use `query_typed`, which sends parse, bind and execute in one round trip, so a
//! request costs as few trips to the database as its SQL needs.

pub mod applies;
pub mod audit;
mod migrate;
pub mod tokens;
mod users;

use std::time::Duration;

use std::sync::{Arc, Mutex};

use bb8::{ErrorSink, Pool, PooledConnection};
use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

pub use applies::Snapshot;
pub use audit::AuditEntry;
pub use migrate::{migrate, pending as pending_migrations, MIGRATIONS};
pub use tokens::{FoundToken, TokenInfo};
pub use users::{CreateOutcome, ListQuery, Order, UserRow};

type Manager = PostgresConnectionManager<NoTls>;
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
    #[error("database unavailable: {0}")]
    Unavailable(String),
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
            Self::Unavailable(_) => true,
            Self::Db(e) => is_connection_error(e),
            _ => false,
        }
    }
}

/// A lost connection or an I/O failure, as opposed to an error the server answered or
/// a value that could not be decoded.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || std::error::Error::source(e)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
}

/// What went wrong, for the log: the SQLSTATE and the server's message when the server
/// answered, else the first line of the client's error. Never a query parameter (the
/// server's message for a statement does not quote them; its DETAIL line might, so it is
/// left out) and never a connection parameter.
pub fn describe(e: &tokio_postgres::Error) -> String {
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
            _ => {}
        }
    }
    if db.code().code() == "PX001" {
        return StoreError::PoolExhausted;
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

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    errors: ConnectErrors,
}

impl Store {
    pub const POOL_SIZE: u32 = 16;

    pub async fn connect(config: tokio_postgres::Config) -> Result<Self, StoreError> {
        let manager = PostgresConnectionManager::new(config, NoTls);
        let errors = ConnectErrors::default();
        let pool = Pool::builder()
            .max_size(Self::POOL_SIZE)
            .connection_timeout(Duration::from_secs(5))
            .error_sink(Box::new(errors.clone()))
            .build_unchecked(manager);
        Ok(Self { pool, errors })
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

    /// `SELECT 1`, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(())
    }
}
