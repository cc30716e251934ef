//! Users and their extensions.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_postgres::types::{ToSql, Type};

use super::idempotency::{self, Claim};
use super::tenants::{TenantRow, ALLOCATION_LOCK};
use super::{audit, map_db_error, Store, StoreError};
use crate::auth::Actor;
use crate::domain::{
    sip_name, Devices, Extension, ExtensionRange, NewUser, SipSecret, TenantSlug, UserPatch,
};

/// A user as the API shows it (never with a secret).
#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub extension: Extension,
    pub devices: Devices,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The PJSIP transport its phones use (`None` only before a node adopted the users
    /// from before transports were per user).
    pub transport: Option<String>,
    /// The tenant it belongs to.
    pub tenant: TenantSlug,
}

impl UserRow {
    pub(super) fn from_row(r: &tokio_postgres::Row) -> Self {
        Self {
            id: r.get(0),
            name: r.get(1),
            email: r.get(2),
            extension: Extension::from_stored(r.get(3)),
            devices: Devices::from_stored(r.get(4)),
            created_at: r.get(5),
            transport: r.get(6),
            tenant: TenantSlug::from_stored(r.get(7)),
        }
    }

    /// What its phones register as: its PJSIP endpoint's name ([`sip_name`]).
    pub fn sip_username(&self) -> String {
        sip_name(&self.tenant, self.extension)
    }
}

/// A created user with its new SIP secret (the only time the store hands a secret out
/// with a user), or the first ones again when an Idempotency-Key repeats.
#[derive(Debug, Clone)]
pub struct CreateOutcome {
    pub user: UserRow,
    pub secret: SipSecret,
    /// The user was created by an earlier request with the same key and body.
    pub replayed: bool,
}

/// A create as an Idempotency-Key keeps it (JSON in `idempotency_keys.response`): the
/// user's fields with its SIP username and password. Every version has stored this shape,
/// and a node of an earlier version replays it as its answer, so it stays this shape.
#[derive(Serialize)]
struct StoredCreate<'a> {
    #[serde(flatten)]
    user: &'a UserRow,
    sip_username: String,
    sip_password: &'a str,
}

/// [`StoredCreate`] read back.
#[derive(Deserialize)]
struct StoredCreated {
    id: i64,
    name: String,
    email: String,
    extension: i32,
    devices: i16,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// Absent, or null, from a create stored before transports were per user.
    #[serde(default)]
    transport: Option<String>,
    /// Absent from a create stored before tenants: the default tenant's.
    #[serde(default = "TenantSlug::default_tenant")]
    tenant: TenantSlug,
    sip_password: String,
}

fn stored_create(user: &UserRow, secret: &SipSecret) -> Result<String, StoreError> {
    let stored = StoredCreate {
        user,
        sip_username: user.sip_username(),
        sip_password: secret.expose(),
    };
    serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(format!("stored response: {e}")))
}

fn replayed_create(text: &str) -> Result<CreateOutcome, StoreError> {
    let s: StoredCreated = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("stored response: {e}")))?;
    Ok(CreateOutcome {
        user: UserRow {
            id: s.id,
            name: s.name,
            email: s.email,
            extension: Extension::from_stored(s.extension),
            devices: Devices::from_stored(s.devices),
            created_at: s.created_at,
            transport: s.transport,
            tenant: s.tenant,
        },
        secret: SipSecret::from_stored(s.sip_password),
        replayed: true,
    })
}

/// The order of `GET /users` (`order=`): each variant's snake-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum Order {
    Extension,
    Name,
    Email,
    CreatedAt,
}

impl Order {
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    fn column(self) -> &'static str {
        match self {
            Self::Extension => "e.number",
            Self::Name => "u.name",
            Self::Email => "u.email",
            Self::CreatedAt => "u.created_at",
        }
    }
}

/// A validated `GET /users` query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: i64,
    pub offset: i64,
    pub q: Option<String>,
    pub order: Order,
    pub descending: bool,
    /// Only users whose line is (`true`) or is not (`false`) among these, given as
    /// two lists of the same length: tenant slugs and numbers.
    pub extensions: Option<(bool, Vec<String>, Vec<i32>)>,
    /// Only the users of this tenant (its slug: the page's statement resolves it, no
    /// look-up before it; an unknown slug reads as an empty page).
    pub tenant: Option<TenantSlug>,
}

/// A user's columns, as [`UserRow::from_row`] reads them, from `u` (users), `e` (its
/// extension) and `t` (its tenant).
const USER_COLUMNS: &str =
    "u.id, u.name, u.email, e.number, e.devices, u.created_at, e.transport, t.slug";

/// Users with their extension and tenant.
const USERS_JOINED: &str = "users u JOIN extensions e ON e.user_id = u.id
    JOIN tenants t ON t.id = u.tenant_id";

/// Users with their extension, for a page of one tenant (whose slug the statement is
/// given).
const USERS_AND_EXTENSIONS: &str = "users u JOIN extensions e ON e.user_id = u.id";

fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Store {
    /// Creates a user in `tenant` (the one `new.tenant` names) with the chosen or the
    /// lowest free extension of the tenant's range, honouring an Idempotency-Key: the
    /// key, the user, its audit row and the stored response commit together.
    pub async fn create_user(
        &self,
        new: &NewUser,
        tenant: &TenantRow,
        idempotency: Option<(&str, &Value)>,
        actor: &Actor,
    ) -> Result<CreateOutcome, StoreError> {
        let secret = SipSecret::generate();
        let mut conn = self.conn().await?;
        let ext = new.extension.map(Extension::as_db);
        let (min, max) = (tenant.extension_min as i32, tenant.extension_max as i32);
        let tenant_id = tenant.id;
        let slug = tenant.slug.as_str();
        let devices = new.devices.as_db();
        let transport = new.transport.as_str();
        let actor = actor.as_str();
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 11] = [
            (&new.name.as_str(), Type::TEXT),
            (&new.email.as_str(), Type::TEXT),
            (&ext, Type::INT4),
            (&min, Type::INT4),
            (&max, Type::INT4),
            (&secret.expose(), Type::TEXT),
            (&devices, Type::INT2),
            (&actor, Type::TEXT),
            (&transport, Type::TEXT),
            (&tenant_id, Type::INT8),
            (&slug, Type::TEXT),
        ];
        let create = format!(
            "WITH c AS (SELECT * FROM portal_create_user($1, $2, $3, $4, $5, $6, $7, $9, $10)),
                  a AS ({})
             SELECT c.*, $11::text FROM c",
            audit::from_cte("c", 8, "user.created", "c.id", "NULL", "$10")
        );
        let create = create.as_str();

        let Some((key, request)) = idempotency else {
            let row = conn
                .query_typed(create, &params)
                .await
                .map_err(map_db_error)?;
            let user = UserRow::from_row(row.first().ok_or_else(no_row)?);
            return Ok(CreateOutcome {
                user,
                secret,
                replayed: false,
            });
        };

        let hash = Sha256::digest(serde_json::to_vec(request).unwrap_or_default()).to_vec();
        let tx = conn.transaction().await?;
        if let Claim::Replay(stored) = idempotency::claim(&tx, key, &hash).await? {
            return replayed_create(&stored);
        }
        let row = tx
            .query_typed(create, &params)
            .await
            .map_err(map_db_error)?;
        let user = UserRow::from_row(row.first().ok_or_else(no_row)?);
        idempotency::record(&tx, key, &stored_create(&user, &secret)?).await?;
        tx.commit().await?;
        Ok(CreateOutcome {
            user,
            secret,
            replayed: false,
        })
    }

    pub async fn get_user(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query_typed(
                &format!("SELECT {USER_COLUMNS} FROM {USERS_JOINED} WHERE u.id = $1"),
                &[(&id, Type::INT8)],
            )
            .await?;
        Ok(rows.first().map(UserRow::from_row))
    }

    /// One page of users and the total that match the filter. One query fetches a row
    /// past the page: when it does not come back, the total follows from the page and no
    /// count is needed (the common case of listing everyone).
    pub async fn list_users(&self, q: &ListQuery) -> Result<(Vec<UserRow>, i64), StoreError> {
        let conn = self.conn().await?;
        let pattern = q.q.as_deref().map(like_pattern);
        let exact: Option<i32> = q.q.as_deref().and_then(|s| s.trim().parse().ok());
        // Without a filter the statement has no WHERE at all: a `$1 IS NULL OR …` filter
        // costs the planner more than the whole page costs to read.
        let mut filter_params: Vec<(&(dyn ToSql + Sync), Type)> = Vec::new();
        if let Some(p) = &pattern {
            filter_params.extend([(p as &(dyn ToSql + Sync), Type::TEXT), (&exact, Type::INT4)]);
        }
        if let Some((_, slugs, numbers)) = &q.extensions {
            filter_params.push((slugs, Type::TEXT_ARRAY));
            filter_params.push((numbers, Type::INT4_ARRAY));
        }
        let slug = q.tenant.as_ref().map(TenantSlug::as_str);
        if let Some(slug) = &slug {
            filter_params.push((slug, Type::TEXT));
        }
        // The number of the slug's parameter when the parameters start at `first`.
        let slug_at = |first: usize| {
            first + 2 * usize::from(pattern.is_some()) + 2 * usize::from(q.extensions.is_some())
        };
        // One tenant's page names the slug it was given instead of joining `tenants`: the
        // join is the part PostgreSQL plans worst (before the tables' statistics exist it
        // scanned the tenants once per user, 0.7 ms instead of 0.2 ms among 10,000 users).
        let (from, slug_of): (&str, fn(usize) -> String) = match q.tenant {
            Some(_) => (USERS_AND_EXTENSIONS, |n: usize| format!("${n}::text")),
            None => (USERS_JOINED, |_: usize| "t.slug".to_owned()),
        };
        // The filter, its parameters numbered from `first`.
        let filter = |first: usize| {
            let mut n = first;
            let mut parts = Vec::new();
            if pattern.is_some() {
                parts.push(format!(
                    "(u.name ILIKE ${n} OR u.email ILIKE ${n} OR e.number = ${})",
                    n + 1
                ));
                n += 2;
            }
            if let Some((inside, _, _)) = &q.extensions {
                let not = if *inside { "" } else { "NOT " };
                // A line is a tenant's number: two tenants' 100 are two lines.
                parts.push(format!(
                    "{not}EXISTS (SELECT 1 FROM unnest(${n}::text[], ${}::int4[]) AS o(slug, number)
                       WHERE o.slug = {} AND o.number = e.number)",
                    n + 1,
                    slug_of(slug_at(first))
                ));
                n += 2;
            }
            if q.tenant.is_some() {
                // Both sides of the join (the extension carries its user's tenant, bound by
                // the composite key): each is then read by its tenant index, 200 rows each,
                // where naming the users' side alone made PostgreSQL scan every extension
                // of every tenant (1.5 ms instead of 0.3 ms among 10,000 users). The slug
                // is resolved here, once (an InitPlan), sparing the handler a round trip.
                parts.push(format!(
                    "u.tenant_id = (SELECT id FROM tenants WHERE slug = ${n})
                     AND e.tenant_id = (SELECT id FROM tenants WHERE slug = ${n})"
                ));
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", parts.join(" AND "))
            }
        };
        let dir = if q.descending { "DESC" } else { "ASC" };
        // Column and direction come from closed enums, never from the request text.
        let columns = USER_COLUMNS.replace("t.slug", &slug_of(slug_at(3)));
        let sql = format!(
            "SELECT {columns} FROM {from}
              {}
              ORDER BY {} {dir}, e.number {dir}
              LIMIT $1 OFFSET $2",
            filter(3),
            q.order.column()
        );
        let probe = q.limit + 1;
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> =
            vec![(&probe, Type::INT8), (&q.offset, Type::INT8)];
        params.extend(filter_params.iter().cloned());
        let rows = conn.query_typed(&sql, &params).await?;
        let mut users: Vec<UserRow> = rows.iter().map(UserRow::from_row).collect();
        let more = users.len() as i64 > q.limit;
        users.truncate(q.limit as usize);
        let total = if !more && (!users.is_empty() || q.offset == 0) {
            q.offset + users.len() as i64
        } else {
            let count = format!("SELECT count(*) FROM {from} {}", filter(1));
            conn.query_typed(&count, &filter_params)
                .await?
                .first()
                .map_or(0, |r| r.get(0))
        };
        Ok((users, total))
    }

    /// Changes what `patch` names, in one transaction; `None` when there is no such user.
    /// A move takes the allocation lock, so that a concurrent create never finds the
    /// number it chose taken between its search and its insert.
    pub async fn update_user(
        &self,
        id: i64,
        patch: &UserPatch,
        actor: &Actor,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        if patch.extension.is_some() {
            tx.execute_typed(
                "SELECT pg_advisory_xact_lock($2, tenant_id::int4) FROM users WHERE id = $1",
                &[(&id, Type::INT8), (&ALLOCATION_LOCK, Type::INT4)],
            )
            .await?;
        }
        let name = patch.name.as_ref().map(|n| n.as_str());
        let email = patch.email.as_ref().map(|e| e.as_str());
        let number = patch.extension.map(Extension::as_db);
        let devices = patch.devices.map(Devices::as_db);
        let transport = patch.transport.as_ref().map(|t| t.as_str());
        let fields: Vec<&str> = [
            ("name", name.is_some()),
            ("email", email.is_some()),
            ("extension", number.is_some()),
            ("devices", devices.is_some()),
            ("transport", transport.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        let actor = actor.as_str();
        let rows = tx
            .query_typed(
                &format!(
                    "WITH u AS (
                        UPDATE users SET name = coalesce($2, name), email = coalesce($3, email)
                         WHERE id = $1
                     RETURNING id, name, email, created_at, tenant_id),
                     e AS (
                        UPDATE extensions
                           SET number = coalesce($4, number), devices = coalesce($5, devices),
                               transport = coalesce($8, transport), updated_at = now()
                         WHERE user_id = $1
                     RETURNING number, devices, transport),
                     a AS (
                        INSERT INTO audit_log (actor, action, user_id, fields, tenant_id)
                        SELECT $6, 'user.updated', u.id, $7, u.tenant_id FROM u)
                     SELECT {USER_COLUMNS} FROM u, e, tenants t WHERE t.id = u.tenant_id"
                ),
                &[
                    (&id, Type::INT8),
                    (&name, Type::TEXT),
                    (&email, Type::TEXT),
                    (&number, Type::INT4),
                    (&devices, Type::INT2),
                    (&actor, Type::TEXT),
                    (&fields, Type::TEXT_ARRAY),
                    (&transport, Type::TEXT),
                ],
            )
            .await
            .map_err(map_db_error)?;
        tx.commit().await?;
        Ok(rows.first().map(UserRow::from_row))
    }

    /// Deletes a user; its extension is free at once. Returns the user as it was, `None`
    /// when there was none.
    pub async fn delete_user(&self, id: i64, actor: &Actor) -> Result<Option<UserRow>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query_typed(
                &format!(
                    "WITH e AS (SELECT number, devices, transport FROM extensions WHERE user_id = $1),
                          u AS (DELETE FROM users WHERE id = $1
                                RETURNING id, name, email, created_at, tenant_id),
                          a AS ({})
                     SELECT {USER_COLUMNS} FROM u, e, tenants t WHERE t.id = u.tenant_id",
                    audit::from_cte("u", 2, "user.deleted", "u.id", "NULL", "u.tenant_id")
                ),
                &[(&id, Type::INT8), (&actor.as_str(), Type::TEXT)],
            )
            .await?;
        Ok(rows.first().map(UserRow::from_row))
    }

    /// Gives the user a new SIP secret; returns its SIP username ([`sip_name`]) and the
    /// secret.
    pub async fn rotate_secret(
        &self,
        id: i64,
        actor: &Actor,
    ) -> Result<Option<(String, SipSecret)>, StoreError> {
        let secret = SipSecret::generate();
        let conn = self.conn().await?;
        let rows = conn
            .query_typed(
                &format!(
                    "WITH x AS (
                        UPDATE extensions SET secret = $2, updated_at = now() WHERE user_id = $1
                        RETURNING number, user_id, tenant_id),
                     a AS ({})
                     SELECT x.number, t.slug FROM x JOIN tenants t ON t.id = x.tenant_id",
                    audit::from_cte(
                        "x",
                        3,
                        "user.secret_rotated",
                        "x.user_id",
                        "NULL",
                        "x.tenant_id"
                    )
                ),
                &[
                    (&id, Type::INT8),
                    (&secret.expose(), Type::TEXT),
                    (&actor.as_str(), Type::TEXT),
                ],
            )
            .await?;
        Ok(rows.first().map(|r| {
            let tenant = TenantSlug::from_stored(r.get(1));
            (sip_name(&tenant, Extension::from_stored(r.get(0))), secret)
        }))
    }

    /// The taken numbers of the tenant (its id) inside the range, ascending.
    pub async fn taken_in_range(
        &self,
        range: &ExtensionRange,
        tenant: i64,
    ) -> Result<Vec<u32>, StoreError> {
        let conn = self.conn().await?;
        let (min, max) = (range.min() as i32, range.max() as i32);
        let rows = conn
            .query_typed(
                "SELECT number FROM extensions WHERE tenant_id = $3 AND number BETWEEN $1 AND $2
                  ORDER BY number",
                &[
                    (&min, Type::INT4),
                    (&max, Type::INT4),
                    (&tenant, Type::INT8),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, i32>(0).unsigned_abs())
            .collect())
    }
}

fn no_row() -> StoreError {
    StoreError::Unavailable("the database returned no row".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_the_snake_case_names() {
        assert_eq!(Order::parse("created_at"), Some(Order::CreatedAt));
        assert_eq!(Order::parse("extension"), Some(Order::Extension));
        assert_eq!(Order::parse("Name"), None);
        assert_eq!(Order::parse("createdAt"), None);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    fn alice(transport: Option<&str>) -> UserRow {
        UserRow {
            id: 7,
            name: "Alice".into(),
            email: "alice@x.org".into(),
            extension: Extension::from_stored(1000),
            devices: Devices::from_stored(2),
            created_at: time::macros::datetime!(2026-01-02 03:04:05.678 UTC),
            transport: transport.map(str::to_owned),
            tenant: TenantSlug::default_tenant(),
        }
    }

    /// The stored shape is what earlier versions stored (and replay verbatim): the user's
    /// fields with `sip_username` and `sip_password`.
    #[test]
    fn a_stored_create_keeps_its_shape_and_reads_back() {
        let secret = SipSecret::from_stored("abcdefghijklmnopqrstuvwx".into());
        let user = alice(Some("transport-udp"));
        let text = stored_create(&user, &secret).unwrap();
        let mut before = serde_json::to_value(&user).unwrap();
        before["sip_username"] = Value::String("1000".into());
        before["sip_password"] = Value::String(secret.expose().into());
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), before);

        let back = replayed_create(&text).unwrap();
        assert!(back.replayed);
        assert_eq!(back.secret, secret);
        assert_eq!(
            serde_json::to_value(&back.user).unwrap(),
            serde_json::to_value(&user).unwrap()
        );

        // Stored before transports were per user: no transport at all.
        let mut old = before.clone();
        old.as_object_mut().unwrap().remove("transport");
        let back = replayed_create(&old.to_string()).unwrap();
        assert_eq!(back.user.transport, None);
    }
}
