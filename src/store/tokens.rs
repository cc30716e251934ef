//! Named API tokens: create, list, revoke, and the per-request lookup.
//!
//! The lookup runs on every authenticated request, against the database, with no cache:
//! a revocation (on any node) is seen by the very next request everywhere. It finds the
//! row by the unique index on the token's SHA-256 (the index walk depends on the hash, not
//! on the secret in a way an attacker can steer), then the caller compares the stored hash
//! with the presented one in constant time. Each token's `last_used_at` is written at most
//! once a minute, so a busy token does not turn every read into a write.

use time::OffsetDateTime;
use tokio_postgres::types::Type;

use super::{audit, map_db_error, Store, StoreError};
use crate::auth::{Actor, NewToken, Scopes, TokenHash, TokenName};
use crate::domain::TenantSlug;

/// A token as `GET /tokens` and `pbx-portal token list` show it: never its text or hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The one tenant the token is bound to; `None` (null): every tenant.
    pub tenant: Option<TenantSlug>,
}

impl TokenInfo {
    fn from_row(r: &tokio_postgres::Row) -> Result<Self, StoreError> {
        Ok(Self {
            name: r.try_get(0)?,
            scopes: r.try_get(1)?,
            created_at: r.try_get(2)?,
            expires_at: r.try_get(3)?,
            last_used_at: r.try_get(4)?,
            tenant: r
                .try_get::<_, Option<String>>(5)?
                .map(TenantSlug::from_stored),
        })
    }
}

/// A live token found by its hash: the caller compares `hash` in constant time.
#[derive(Debug, Clone)]
pub struct FoundToken {
    pub name: TokenName,
    pub scopes: Scopes,
    pub hash: TokenHash,
    /// The tenant it is bound to, if any.
    pub tenant: Option<TenantSlug>,
}

const INFO_COLUMNS: &str = "name, scopes, created_at, expires_at, last_used_at,
    (SELECT s.slug FROM tenants s WHERE s.id = tenant_id)";

/// The condition "the token is visible to a caller bound to the tenant whose slug is
/// parameter `$n`" (NULL: an unbound caller, who sees every token).
fn within(n: usize) -> String {
    format!("(${n}::text IS NULL OR tenant_id = (SELECT s.id FROM tenants s WHERE s.slug = ${n}))")
}

impl Store {
    /// Stores a new token's hash, bound to `tenant` (the id of a tenant the caller has
    /// found) or to none; the audit row, about that tenant, commits with it.
    pub async fn create_token(
        &self,
        name: &TokenName,
        scopes: Scopes,
        expires_in_days: Option<i32>,
        tenant: Option<i64>,
        actor: &Actor,
    ) -> Result<(NewToken, TokenInfo), StoreError> {
        let token = NewToken::generate();
        let hash = token.hash().0.to_vec();
        let scopes: Vec<&str> = scopes.names();
        let conn = self.conn().await?;
        let rows = conn
            .query_typed(
                &format!(
                    "WITH t AS (
                        INSERT INTO api_tokens (name, hash, scopes, expires_at, created_by,
                                                tenant_id)
                        VALUES ($1, $2, $3, now() + make_interval(days => $4), $5, $6)
                        RETURNING {INFO_COLUMNS}, tenant_id),
                     a AS ({})
                     SELECT {INFO_COLUMNS} FROM t",
                    audit::from_cte("t", 5, "token.created", "NULL::bigint", "name", "tenant_id")
                ),
                &[
                    (&name.as_str(), Type::TEXT),
                    (&hash, Type::BYTEA),
                    (&scopes, Type::TEXT_ARRAY),
                    (&expires_in_days, Type::INT4),
                    (&actor.as_str(), Type::TEXT),
                    (&tenant, Type::INT8),
                ],
            )
            .await
            .map_err(map_db_error)?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Unavailable("the database returned no row".into()))?;
        Ok((token, TokenInfo::from_row(row)?))
    }

    /// Live (not revoked) tokens, by name; expired ones included, so that an admin sees them.
    /// `tenant`: a caller bound to that tenant sees only the tokens bound to it.
    pub async fn list_tokens(
        &self,
        tenant: Option<&TenantSlug>,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.conn().await?;
        let tenant = tenant.map(TenantSlug::as_str);
        conn.query_typed(
            &format!(
                "SELECT {INFO_COLUMNS} FROM api_tokens
                  WHERE revoked_at IS NULL AND {} ORDER BY name",
                within(1)
            ),
            &[(&tenant, Type::TEXT)],
        )
        .await?
        .iter()
        .map(TokenInfo::from_row)
        .collect()
    }

    /// Revokes the live token of that name; false when there is none (or, for a caller
    /// bound to `tenant`, none of that tenant's).
    pub async fn revoke_token(
        &self,
        name: &TokenName,
        tenant: Option<&TenantSlug>,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let tenant = tenant.map(TenantSlug::as_str);
        let rows = conn
            .query_typed(
                &format!(
                    "WITH t AS (
                        UPDATE api_tokens SET revoked_at = now()
                         WHERE name = $1 AND revoked_at IS NULL AND {}
                        RETURNING name, tenant_id),
                     a AS ({})
                     SELECT 1 FROM t",
                    within(3),
                    audit::from_cte("t", 2, "token.revoked", "NULL::bigint", "name", "tenant_id")
                ),
                &[
                    (&name.as_str(), Type::TEXT),
                    (&actor.as_str(), Type::TEXT),
                    (&tenant, Type::TEXT),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// The live, unexpired token with this hash: one indexed read. When its
    /// `last_used_at` is a minute old, a separate task writes it, off the request's path.
    pub async fn find_token(&self, hash: &TokenHash) -> Result<Option<FoundToken>, StoreError> {
        let conn = self.conn().await?;
        let h = hash.0.as_slice();
        let rows = conn
            .query_typed(
                "SELECT id, name, scopes, hash,
                        last_used_at IS NULL OR last_used_at < now() - interval '1 minute',
                        (SELECT s.slug FROM tenants s WHERE s.id = tenant_id)
                   FROM api_tokens
                  WHERE hash = $1 AND revoked_at IS NULL
                    AND (expires_at IS NULL OR expires_at > now())",
                &[(&h, Type::BYTEA)],
            )
            .await?;
        drop(conn);
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let stored: Vec<u8> = r.try_get(3)?;
        let hash: [u8; 32] = stored
            .try_into()
            .map_err(|_| StoreError::Corrupt("api_tokens.hash is not 32 bytes".into()))?;
        if r.try_get::<_, bool>(4)? {
            let (store, id): (Store, i64) = (self.clone(), r.try_get(0)?);
            tokio::spawn(async move {
                if let Err(e) = store.touch_token(id).await {
                    tracing::warn!(error = %e, "cannot record when a token was last used");
                }
            });
        }
        Ok(Some(FoundToken {
            name: TokenName::from_stored(r.try_get(1)?),
            scopes: Scopes::from_stored(&r.try_get::<_, Vec<String>>(2)?),
            hash: TokenHash(hash),
            tenant: r
                .try_get::<_, Option<String>>(5)?
                .map(TenantSlug::from_stored),
        }))
    }

    async fn touch_token(&self, id: i64) -> Result<(), StoreError> {
        self.conn()
            .await?
            .query_typed(
                "UPDATE api_tokens SET last_used_at = now() WHERE id = $1",
                &[(&id, Type::INT8)],
            )
            .await?;
        Ok(())
    }
}
