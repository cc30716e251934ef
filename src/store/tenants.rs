//! Tenants: the companies sharing the PBX, each with its own numbering plan and user limit.
//!
//! A change that could strand a user (a narrower range, a lower `max_users`) takes the
//! tenant's allocation lock first — the one `portal_create_user` and every import take —
//! so the check of the existing users and the change see every create that came before
//! and none can slip in between. The default tenant's range is the configuration's: it is
//! stored NULL and filled in here from the range the caller passes.

use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

use super::{map_db_error, Store, StoreError};
use crate::domain::{ExtensionRange, NewTenant, TenantPatch, TenantSlug, ValidationError};

/// The advisory-lock class of allocation; the second key is the tenant's id. The default
/// tenant's key, (class, 1), is the one every version before tenants took.
pub(super) const ALLOCATION_LOCK: i32 = 1_346_524_240;

/// The id of the tenant `default` (the row every deployment has had since the first
/// migration).
pub const DEFAULT_TENANT_ID: i64 = 1;

/// A tenant as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantRow {
    #[serde(skip)]
    pub id: i64,
    pub slug: TenantSlug,
    pub name: String,
    pub extension_min: u32,
    pub extension_max: u32,
    pub max_users: Option<u32>,
    /// How many users it has now.
    pub users: i64,
}

impl TenantRow {
    /// The range new users of this tenant get numbers from.
    pub fn range(&self) -> Result<ExtensionRange, StoreError> {
        // The table checks both bounds (1..=99999999, min <= max); the default tenant's
        // come from the configuration, which ExtensionRange already accepted.
        ExtensionRange::new(self.extension_min, self.extension_max)
            .map_err(|e| StoreError::Corrupt(format!("tenant {}: range {e}", self.slug)))
    }

    pub fn is_default(&self) -> bool {
        self.id == 1
    }
}

/// Why a change to a tenant was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenantChangeError {
    #[error("the default tenant's range is PORTAL_EXTENSION_MIN/MAX")]
    DefaultRange,
    /// A user's number would fall outside the new range; `field` is the bound it crosses.
    #[error("user extension {number} would be outside the range {min}-{max}")]
    UsersOutside {
        field: &'static str,
        number: u32,
        min: u32,
        max: u32,
    },
    #[error("the tenant has {users} users, more than max_users {max}")]
    BelowUsers { users: i64, max: u32 },
    /// The patched range is inverted.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for TenantChangeError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(map_db_error(e))
    }
}

const COLUMNS: &str = "t.id, t.slug, t.name, t.extension_min, t.extension_max, t.max_users,
    (SELECT count(*) FROM users u WHERE u.tenant_id = t.id)";

fn from_row(r: &tokio_postgres::Row, default_range: &ExtensionRange) -> TenantRow {
    let bound = |i: usize, default: u32| {
        r.get::<_, Option<i32>>(i)
            .map_or(default, |n| n.unsigned_abs())
    };
    TenantRow {
        id: r.get(0),
        slug: TenantSlug::from_stored(r.get(1)),
        name: r.get(2),
        extension_min: bound(3, default_range.min()),
        extension_max: bound(4, default_range.max()),
        max_users: r.get::<_, Option<i32>>(5).map(i32::unsigned_abs),
        users: r.get(6),
    }
}

/// A tenant by slug, read by `client` (a transaction's, when the answer must stay true).
async fn find(
    client: &impl GenericClient,
    slug: &TenantSlug,
    default_range: &ExtensionRange,
) -> Result<Option<TenantRow>, StoreError> {
    let rows = client
        .query_typed(
            &format!("SELECT {COLUMNS} FROM tenants t WHERE t.slug = $1"),
            &[(&slug.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(rows.first().map(|r| from_row(r, default_range)))
}

impl Store {
    /// Every tenant, the default first, then by slug.
    pub async fn list_tenants(
        &self,
        default_range: &ExtensionRange,
    ) -> Result<Vec<TenantRow>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query_typed(
                &format!("SELECT {COLUMNS} FROM tenants t ORDER BY t.id <> 1, t.slug"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| from_row(r, default_range)).collect())
    }

    /// The tenant with this slug, `None` when there is none.
    pub async fn tenant(
        &self,
        slug: &TenantSlug,
        default_range: &ExtensionRange,
    ) -> Result<Option<TenantRow>, StoreError> {
        let conn = self.conn().await?;
        find(&*conn, slug, default_range).await
    }

    /// Creates a tenant; a slug in use is [`StoreError::TenantExists`].
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<TenantRow, StoreError> {
        // The default tenant always exists (the table's check would refuse the row before
        // its unique slug could).
        if new.slug.is_default() {
            return Err(StoreError::TenantExists);
        }
        let conn = self.conn().await?;
        let (min, max) = (new.extension_min as i32, new.extension_max as i32);
        let cap = new.max_users.map(|n| n as i32);
        let rows = conn
            .query_typed(
                "INSERT INTO tenants (slug, name, extension_min, extension_max, max_users)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    (&new.slug.as_str(), Type::TEXT),
                    (&new.name.as_str(), Type::TEXT),
                    (&min, Type::INT4),
                    (&max, Type::INT4),
                    (&cap, Type::INT4),
                ],
            )
            .await
            .map_err(map_db_error)?;
        let id: i64 = rows.first().map(|r| r.get(0)).ok_or_else(no_row)?;
        Ok(TenantRow {
            id,
            slug: new.slug.clone(),
            name: new.name.as_str().to_owned(),
            extension_min: new.extension_min,
            extension_max: new.extension_max,
            max_users: new.max_users,
            users: 0,
        })
    }

    /// Changes what `patch` names under the tenant's allocation lock, refusing a range
    /// that would leave a user outside it or a `max_users` below the users it has.
    /// `Ok(None)`: no such tenant.
    pub async fn update_tenant(
        &self,
        slug: &TenantSlug,
        patch: &TenantPatch,
        default_range: &ExtensionRange,
    ) -> Result<Option<TenantRow>, TenantChangeError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let Some(id) = lock_allocation(&tx, slug).await? else {
            return Ok(None);
        };
        // Read again under the lock: what it holds now is what the checks must see.
        let current = find(&tx, slug, default_range)
            .await?
            .ok_or_else(|| StoreError::Unavailable("the tenant vanished".into()))?;
        if current.is_default() && patch.changes_range() {
            return Err(TenantChangeError::DefaultRange);
        }
        let (min, max) = patch.range_from(current.extension_min, current.extension_max)?;
        if patch.changes_range() {
            let outside = tx
                .query_typed(
                    "(SELECT number FROM extensions WHERE tenant_id = $1 AND number < $2
                       ORDER BY number LIMIT 1)
                     UNION ALL
                     (SELECT number FROM extensions WHERE tenant_id = $1 AND number > $3
                       ORDER BY number DESC LIMIT 1)",
                    &[
                        (&id, Type::INT8),
                        (&(min as i32), Type::INT4),
                        (&(max as i32), Type::INT4),
                    ],
                )
                .await?;
            if let Some(r) = outside.first() {
                let number = r.get::<_, i32>(0).unsigned_abs();
                let field = if number < min {
                    "extension_min"
                } else {
                    "extension_max"
                };
                return Err(TenantChangeError::UsersOutside {
                    field,
                    number,
                    min,
                    max,
                });
            }
        }
        if let Some(Some(cap)) = patch.max_users {
            if current.users > i64::from(cap) {
                return Err(TenantChangeError::BelowUsers {
                    users: current.users,
                    max: cap,
                });
            }
        }
        let name = patch.name.as_ref().map(|n| n.as_str());
        let (set_range, db_min, db_max) = (patch.changes_range(), min as i32, max as i32);
        let (set_cap, cap) = match patch.max_users {
            Some(c) => (true, c.map(|n| n as i32)),
            None => (false, None),
        };
        tx.execute_typed(
            "UPDATE tenants
                SET name = coalesce($2, name),
                    extension_min = CASE WHEN $3 THEN $4 ELSE extension_min END,
                    extension_max = CASE WHEN $3 THEN $5 ELSE extension_max END,
                    max_users = CASE WHEN $6 THEN $7 ELSE max_users END
              WHERE id = $1",
            &[
                (&id, Type::INT8),
                (&name, Type::TEXT),
                (&set_range, Type::BOOL),
                (&db_min, Type::INT4),
                (&db_max, Type::INT4),
                (&set_cap, Type::BOOL),
                (&cap, Type::INT4),
            ],
        )
        .await?;
        let updated = find(&tx, slug, default_range).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Deletes an empty tenant (under its allocation lock, so no create lands in it
    /// meanwhile). `Ok(false)`: no such tenant; a tenant with users is
    /// [`StoreError::TenantNotEmpty`].
    pub async fn delete_tenant(&self, slug: &TenantSlug) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let Some(id) = lock_allocation(&tx, slug).await? else {
            return Ok(false);
        };
        let deleted = tx
            .execute_typed(
                "DELETE FROM tenants t WHERE t.id = $1
                    AND NOT EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = t.id)",
                &[(&id, Type::INT8)],
            )
            .await
            .map_err(map_db_error)?;
        if deleted == 0 {
            return Err(StoreError::TenantNotEmpty);
        }
        tx.commit().await?;
        Ok(true)
    }
}

fn no_row() -> StoreError {
    StoreError::Unavailable("the database returned no row".into())
}

/// Takes the allocation lock of the tenant `slug` names in `tx` (creates in it wait until
/// the transaction ends); its id, or `None` when no tenant has that slug.
async fn lock_allocation(
    tx: &tokio_postgres::Transaction<'_>,
    slug: &TenantSlug,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let Some(id) = tx
        .query_typed(
            "SELECT id FROM tenants WHERE slug = $1",
            &[(&slug.as_str(), Type::TEXT)],
        )
        .await?
        .first()
        .map(|r| r.get::<_, i64>(0))
    else {
        return Ok(None);
    };
    let key = id as i32;
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[(&ALLOCATION_LOCK, Type::INT4), (&key, Type::INT4)],
    )
    .await?;
    Ok(Some(id))
}
