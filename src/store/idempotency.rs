//! `Idempotency-Key`: the first response to a request, replayed for 24 hours to a retry
//! with the same key and the same body. `POST /users` and `POST /users/import` share it,
//! and so share one table of keys: a key used on one route and then on the other is a
//! key used with another body.
//!
//! A key is claimed inside the transaction that does the work, and its response is
//! recorded in the same transaction, so a request that fails (a conflict, a lost
//! connection) leaves no key behind and can be retried as it was.

use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use super::StoreError;

/// What a claimed key says about this request.
pub(super) enum Claim {
    /// The key is new (or older than 24 hours): do the work, then [`record`] its answer.
    New,
    /// The key answered this very request before: its stored response, as JSON text.
    Replay(String),
}

/// Takes the key for this transaction, or waits for a concurrent holder to finish. A key
/// that answered another body (or is still held by a request that has not answered) is
/// [`StoreError::IdempotencyKeyReused`].
pub(super) async fn claim(
    tx: &Transaction<'_>,
    key: &str,
    hash: &[u8],
) -> Result<Claim, StoreError> {
    let claimed = tx
        .query_typed(
            "INSERT INTO idempotency_keys (key, request_hash) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE
                SET request_hash = EXCLUDED.request_hash, response = NULL, created_at = now()
              WHERE idempotency_keys.created_at < now() - interval '24 hours'
             RETURNING 1",
            &[(&key, Type::TEXT), (&hash, Type::BYTEA)],
        )
        .await?;
    if !claimed.is_empty() {
        return Ok(Claim::New);
    }
    let row = tx
        .query_typed(
            "SELECT request_hash, response::text FROM idempotency_keys WHERE key = $1",
            &[(&key, Type::TEXT)],
        )
        .await?;
    let row = row
        .first()
        .ok_or_else(|| StoreError::Unavailable("the database returned no row".into()))?;
    let stored_hash: Vec<u8> = row.get(0);
    let response: Option<String> = row.get(1);
    match response {
        Some(body) if stored_hash == hash => Ok(Claim::Replay(body)),
        _ => Err(StoreError::IdempotencyKeyReused),
    }
}

/// Stores the response (JSON text) of the request that claimed `key`.
pub(super) async fn record(
    tx: &Transaction<'_>,
    key: &str,
    response: &str,
) -> Result<(), StoreError> {
    tx.execute_typed(
        "UPDATE idempotency_keys SET response = $2::jsonb WHERE key = $1",
        &[(&key, Type::TEXT), (&response, Type::TEXT)],
    )
    .await?;
    Ok(())
}
