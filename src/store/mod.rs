//! PostgreSQL: the connection pool, migrations and every query the portal runs.
//!
//! Queries use `query_typed`, which sends parse, bind and execute in one round trip, so a
//! request costs as few trips to the database as its SQL needs.

pub mod applies;
mod migrate;
mod users;

use std::time::Duration;

use bb8::{Pool, PooledConnection};
use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

pub use applies::{AppliedState, ApplyRow, Snapshot};
pub use migrate::{migrate, pending as pending_migrations, MIGRATIONS};
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
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
}

impl From<bb8::RunError<tokio_postgres::Error>> for StoreError {
    fn from(e: bb8::RunError<tokio_postgres::Error>) -> Self {
        match e {
            bb8::RunError::User(e) => StoreError::Unavailable(short_reason(&e)),
            bb8::RunError::TimedOut => StoreError::Unavailable("timed out".into()),
        }
    }
}

/// A one-line reason without connection parameters (which could hold a password).
pub fn short_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let s = e.to_string();
            s.lines().next().unwrap_or("error").to_owned()
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
            _ => {}
        }
    }
    if db.code().code() == "PX001" {
        return StoreError::PoolExhausted;
    }
    StoreError::Db(e)
}

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
}

impl Store {
    pub const POOL_SIZE: u32 = 16;

    pub async fn connect(config: tokio_postgres::Config) -> Result<Self, StoreError> {
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = Pool::builder()
            .max_size(Self::POOL_SIZE)
            .connection_timeout(Duration::from_secs(5))
            .build_unchecked(manager);
        Ok(Self { pool })
    }

    pub async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// `SELECT 1`, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| StoreError::Unavailable(short_reason(&e)))?;
        Ok(())
    }
}
