//! The audit of who changed what. Each change writes its row in the same statement as the
//! change itself (a data-modifying CTE, see [`from_cte`]): one round trip, one
//! transaction, so a change is never without its row nor a row without its change.

use time::OffsetDateTime;
use tokio_postgres::types::Type;

use super::{Store, StoreError};
use crate::domain::TenantSlug;

/// One audit row as `GET /audit` shows it. Never a secret: ids, names, field names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// The tenant the row is about; absent when it is about none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantSlug>,
}

/// An `INSERT INTO audit_log … SELECT … FROM <cte>` to put in a `WITH` beside the change:
/// one row per row the CTE returned (none when the change found nothing). `actor` is a
/// parameter number, `action` a constant of the code (never request text); `user_id`,
/// `token` and `tenant` (the id of the tenant the row is about: the touched user's or
/// token's, so a tenant-bound caller's `GET /audit` finds it) are SQL expressions over the
/// CTE.
pub fn from_cte(
    cte: &str,
    actor: usize,
    action: &'static str,
    user_id: &str,
    token: &str,
    tenant: &str,
) -> String {
    format!(
        "INSERT INTO audit_log (actor, action, user_id, token, tenant_id)
         SELECT ${actor}, '{action}', {user_id}, {token}, {tenant} FROM {cte}"
    )
}

impl Store {
    /// Newest first; `user` keeps the rows about one user id, `tenant` (a caller bound to
    /// it) those about that tenant.
    pub async fn list_audit(
        &self,
        limit: i64,
        user: Option<i64>,
        actor: Option<&str>,
        tenant: Option<&TenantSlug>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn().await?;
        let tenant = tenant.map(TenantSlug::as_str);
        conn.query_typed(
            "SELECT a.id, a.at, a.actor, a.action, a.user_id, a.apply_id, a.token, a.fields,
                    t.slug
               FROM audit_log a LEFT JOIN tenants t ON t.id = a.tenant_id
              WHERE ($2::bigint IS NULL OR a.user_id = $2)
                AND ($3::text IS NULL OR t.slug = $3)
                AND ($4::text IS NULL OR a.actor = $4)
              ORDER BY a.id DESC LIMIT $1",
            &[
                (&limit, Type::INT8),
                (&user, Type::INT8),
                (&tenant, Type::TEXT),
                (&actor, Type::TEXT),
            ],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                actor: r.try_get(2)?,
                action: r.try_get(3)?,
                user_id: r.try_get(4)?,
                apply_id: r.try_get(5)?,
                token: r.try_get(6)?,
                fields: r.try_get(7)?,
                tenant: r
                    .try_get::<_, Option<String>>(8)?
                    .map(TenantSlug::from_stored),
            })
        })
        .collect()
    }
}
