//! Bulk import and export in SQL.
//!
//! An import is one transaction under the same allocation locks as `portal_create_user`
//! (`pg_advisory_xact_lock(1346524240, <tenant id>)` for every tenant the file names, in
//! the order of their ids so that two imports cannot deadlock, taken in their own
//! statement so that every later statement reads a snapshot that already holds every
//! earlier allocation). Its cost in round trips does not depend on the number of rows: the
//! whole file travels as a few arrays (`unnest`), so a 10,000-row file of one tenant costs
//! the same seven statements as a one-row file — BEGIN, lock, tenants, conflicts,
//! allocation (one per tenant the file names), insert, COMMIT (plus two for an
//! `Idempotency-Key`). Explicit extensions are taken first; the rows without one get the
//! lowest free numbers of their tenant's range in file order, found in one statement from
//! the gaps between taken numbers. A tenant's `max_users` is checked under its lock: an
//! import that would pass it creates nothing. A dry run runs the same lock, checks and allocation and rolls
//! back, so the numbers it shows are the ones an import would get at that moment.
//!
//! An export reads every user from one snapshot (a read-only REPEATABLE READ transaction)
//! through a portal, a chunk of rows at a time, and hands the chunks over a channel of one
//! chunk: memory stays a few chunks whatever the number of users, and a client that stops
//! reading stops the reads (and, after a while, ends the transaction).

use std::collections::HashMap;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, IsolationLevel, Transaction};
use tracing::Instrument;

use super::idempotency::{self, Claim};
use super::tenants::ALLOCATION_LOCK;
use super::{map_db_error, Store, StoreError, UserRow};
use crate::domain::{ExtensionRange, NewUser, SipSecret, TenantSlug};

/// A row of an import that clashes with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// Index into the rows given.
    pub index: usize,
    pub kind: ConflictKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// The email belongs to an existing user.
    Email,
    /// The explicit extension belongs to an existing user.
    Extension,
}

/// Why an import (or its dry run) created nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error("{} row(s) clash with existing users", .0.len())]
    Conflicts(Vec<Conflict>),
    #[error("{needed} new extensions needed, {free} free in the range")]
    Exhausted { needed: u64, free: u64 },
    /// The rows of a tenant would take it past its `max_users`.
    #[error("tenant {tenant}: {rows} new users, room for {room}")]
    TenantFull {
        tenant: TenantSlug,
        rows: u64,
        room: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for ImportFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A user an import created, with its SIP credentials: the only time the secret is shown
/// (and what an `Idempotency-Key` replays).
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub extension: u32,
    pub devices: u8,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Absent from an answer stored before transports were per user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Absent from an answer stored before tenants: the default tenant's.
    #[serde(default = "TenantSlug::default_tenant")]
    pub tenant: TenantSlug,
    pub sip_username: String,
    #[serde(deserialize_with = "stored_secret")]
    pub sip_password: SipSecret,
}

impl std::fmt::Debug for CreatedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedUser")
            .field("id", &self.id)
            .field("extension", &self.extension)
            .field("sip_password", &self.sip_password)
            .finish_non_exhaustive()
    }
}

fn stored_secret<'de, D: Deserializer<'de>>(d: D) -> Result<SipSecret, D::Error> {
    String::deserialize(d).map(SipSecret::from_stored)
}

/// A user a dry run would create, with the number it would get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedUser {
    pub name: String,
    pub email: String,
    pub extension: u32,
    pub devices: u8,
    pub transport: String,
    pub tenant: TenantSlug,
}

/// What an import created, or the first answer again when its `Idempotency-Key` repeats.
#[derive(Debug)]
pub struct Imported {
    pub users: Vec<CreatedUser>,
    pub replayed: bool,
}

/// The JSON answer to an import: `{"created": n, "users": [...]}`. Defined here because it
/// is also what an `Idempotency-Key` stores.
#[derive(Serialize)]
pub struct CreatedAnswer<'a> {
    pub created: usize,
    pub users: &'a [CreatedUser],
}

#[derive(Deserialize)]
struct StoredAnswer {
    users: Vec<CreatedUser>,
}

/// The rows' emails and explicit numbers as the statements take them.
fn columns(users: &[NewUser]) -> (Vec<&str>, Vec<Option<i32>>) {
    users
        .iter()
        .map(|u| (u.email.as_str(), u.extension.map(|e| e.as_db())))
        .unzip()
}

/// Rows whose email or explicit number the row's tenant (`$3`, its id) already holds.
const CONFLICTS: &str = "
    SELECT 'email', t.ord
      FROM unnest($1::text[], $3::int8[]) WITH ORDINALITY AS t(email, tenant, ord)
      JOIN users u ON u.tenant_id = t.tenant AND u.email = t.email
    UNION ALL
    SELECT 'extension', t.ord
      FROM unnest($2::int4[], $3::int8[]) WITH ORDINALITY AS t(number, tenant, ord)
      JOIN extensions e ON e.tenant_id = t.tenant AND e.number = t.number";

/// The lowest `$4` free numbers of `$1..=$2` in tenant `$5`, not counting the explicit
/// numbers `$3` (that tenant's rows'): the runs between taken numbers, each with how many
/// free numbers come before it, and from the runs that are needed only the numbers that
/// are needed.
const ALLOCATE: &str = "
    WITH taken AS (
        SELECT number::int8 AS n FROM extensions
         WHERE tenant_id = $5 AND number BETWEEN $1 AND $2
        UNION
        SELECT x::int8 FROM unnest($3::int4[]) AS x WHERE x IS NOT NULL
    ), edges AS (
        SELECT n, lead(n, 1, $2::int8 + 1) OVER (ORDER BY n) AS next
          FROM (SELECT $1::int8 - 1 AS n UNION ALL SELECT n FROM taken) t
    ), runs AS (
        SELECT n + 1 AS first, next - 1 AS last,
               (sum(next - n - 1) OVER (ORDER BY n))::int8 - (next - n - 1) AS before
          FROM edges WHERE next > n + 1
    )
    SELECT g::int4 FROM runs, generate_series(first, least(last, first + $4 - before - 1)) AS g
     WHERE before < $4
     ORDER BY g";

/// Users and extensions of the whole file in one statement, joined back by tenant and
/// email (unique per tenant in the file, checked before), with an audit row per user. `$8`
/// is each row's tenant id (absent: the default tenant, as in every earlier version).
/// Public so that the benchmark times PostgreSQL running exactly this statement.
pub const INSERT: &str = "
    WITH input AS (
        SELECT t.name, t.email, t.number, t.secret, t.devices, t.transport,
               coalesce(t.tenant, 1) AS tenant, t.ord
          FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::int2[],
                      $7::text[], $8::int8[])
            WITH ORDINALITY AS t(name, email, number, secret, devices, transport, tenant, ord)
    ), u AS (
        INSERT INTO users (name, email, tenant_id)
        SELECT name, email, tenant FROM input ORDER BY ord
        RETURNING id, name, email, created_at, tenant_id
    ), e AS (
        INSERT INTO extensions (number, user_id, secret, devices, transport, tenant_id)
        SELECT i.number, u.id, i.secret, i.devices, i.transport, i.tenant
          FROM input i JOIN u ON u.email = i.email AND u.tenant_id = i.tenant
        RETURNING number, user_id, devices, transport
    ), a AS (
        INSERT INTO audit_log (actor, action, user_id, tenant_id)
        SELECT $6, 'user.imported', u.id, u.tenant_id FROM u
    )
    SELECT u.id, u.name, u.email, e.number, e.devices, u.created_at, e.transport, t.slug
      FROM u JOIN e ON e.user_id = u.id JOIN tenants t ON t.id = u.tenant_id";

/// Rows whose email or explicit extension an existing user of the row's tenant has.
async fn conflicts(
    c: &impl GenericClient,
    emails: &[Option<&str>],
    numbers: &[Option<i32>],
    tenants: &[Option<i64>],
) -> Result<Vec<Conflict>, StoreError> {
    let rows = c
        .query_typed(
            CONFLICTS,
            &[
                (&emails, Type::TEXT_ARRAY),
                (&numbers, Type::INT4_ARRAY),
                (&tenants, Type::INT8_ARRAY),
            ],
        )
        .await?;
    let mut found: Vec<Conflict> = rows
        .iter()
        .map(|r| Conflict {
            kind: if r.get::<_, &str>(0) == "email" {
                ConflictKind::Email
            } else {
                ConflictKind::Extension
            },
            index: usize::try_from(r.get::<_, i64>(1) - 1).unwrap_or(usize::MAX),
        })
        .collect();
    found.sort_by_key(|c| (c.index, c.kind == ConflictKind::Extension));
    Ok(found)
}

/// Under the allocation locks of every tenant the file names: refuses rows that clash
/// with the database or would pass a tenant's `max_users`, then gives every row its
/// number (explicit, or the lowest free ones of its tenant's range in file order).
/// `tenants[i]` is the tenant of `users[i]`; the default tenant's range is `default_range`
/// (the configuration's), every other tenant's is read under its lock.
async fn allocate(
    tx: &Transaction<'_>,
    users: &[NewUser],
    tenants: &[i64],
    default_range: &ExtensionRange,
) -> Result<Vec<i32>, ImportFailure> {
    let mut ids: Vec<i64> = tenants.to_vec();
    ids.sort_unstable();
    ids.dedup();
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1, x::int4) FROM unnest($2::int8[]) AS x ORDER BY x",
        &[(&ALLOCATION_LOCK, Type::INT4), (&ids, Type::INT8_ARRAY)],
    )
    .await?;
    let (emails, explicit) = columns(users);
    let emails: Vec<Option<&str>> = emails.into_iter().map(Some).collect();
    let row_tenants: Vec<Option<i64>> = tenants.iter().copied().map(Some).collect();
    let clashes = conflicts(tx, &emails, &explicit, &row_tenants).await?;
    if !clashes.is_empty() {
        return Err(ImportFailure::Conflicts(clashes));
    }
    let current = tx
        .query_typed(
            "SELECT t.id, t.slug, coalesce(t.extension_min, $2), coalesce(t.extension_max, $3),
                    t.max_users, (SELECT count(*) FROM users u WHERE u.tenant_id = t.id)
               FROM tenants t WHERE t.id = ANY($1)",
            &[
                (&ids, Type::INT8_ARRAY),
                (&(default_range.min() as i32), Type::INT4),
                (&(default_range.max() as i32), Type::INT4),
            ],
        )
        .await?;
    let mut numbers: Vec<Option<i32>> = explicit.clone();
    for id in &ids {
        let row = current
            .iter()
            .find(|r| r.get::<_, i64>(0) == *id)
            .ok_or(StoreError::NoSuchTenant)?;
        let (min, max): (i32, i32) = (row.get(2), row.get(3));
        let rows: Vec<usize> = (0..users.len()).filter(|i| tenants[*i] == *id).collect();
        if let Some(cap) = row.get::<_, Option<i32>>(4) {
            let room = (i64::from(cap) - row.get::<_, i64>(5)).max(0);
            if rows.len() as i64 > room {
                return Err(ImportFailure::TenantFull {
                    tenant: TenantSlug::from_stored(row.get(1)),
                    rows: rows.len() as u64,
                    room: room as u64,
                });
            }
        }
        let needed = rows.iter().filter(|i| explicit[**i].is_none()).count();
        if needed == 0 {
            continue;
        }
        let theirs: Vec<Option<i32>> = rows.iter().map(|i| explicit[*i]).collect();
        let k = needed as i64;
        let free: Vec<i32> = tx
            .query_typed(
                ALLOCATE,
                &[
                    (&min, Type::INT4),
                    (&max, Type::INT4),
                    (&theirs, Type::INT4_ARRAY),
                    (&k, Type::INT8),
                    (id, Type::INT8),
                ],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, i32>(0))
            .collect();
        if free.len() < needed {
            return Err(ImportFailure::Exhausted {
                needed: needed as u64,
                free: free.len() as u64,
            });
        }
        let mut free = free.into_iter();
        for i in rows {
            if numbers[i].is_none() {
                numbers[i] = free.next();
            }
        }
    }
    Ok(numbers.into_iter().map(Option::unwrap_or_default).collect())
}

impl Store {
    /// The rows (by index) whose email or explicit extension an existing user has,
    /// without the allocation lock: to report alongside a file's own errors. `None`
    /// entries (values that did not parse) match nothing.
    pub async fn import_conflicts(
        &self,
        emails: &[Option<&str>],
        numbers: &[Option<i32>],
        tenants: &[Option<i64>],
    ) -> Result<Vec<Conflict>, StoreError> {
        let conn = self.conn().await?;
        conflicts(&*conn, emails, numbers, tenants).await
    }

    /// The numbers an import of `users` (`tenants[i]` the tenant id of `users[i]`) would
    /// get now; changes nothing.
    pub async fn plan_import(
        &self,
        users: &[NewUser],
        tenants: &[i64],
        range: &ExtensionRange,
    ) -> Result<Vec<PlannedUser>, ImportFailure> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let numbers = allocate(&tx, users, tenants, range).await?;
        tx.rollback().await?;
        Ok(users
            .iter()
            .zip(numbers)
            .map(|(u, n)| PlannedUser {
                name: u.name.as_str().to_owned(),
                email: u.email.as_str().to_owned(),
                extension: n.unsigned_abs(),
                devices: u.devices.get(),
                transport: u.transport.to_string(),
                tenant: u.tenant.clone(),
            })
            .collect())
    }

    /// Creates every user of `users` (`tenants[i]` the tenant id of `users[i]`), each
    /// with a new SIP secret, or none; answers in the order of `users`. With an
    /// Idempotency-Key (`key`, hash of the request), the answer is stored in the same
    /// transaction and replayed to a retry. `range` is the default tenant's.
    pub async fn import_users(
        &self,
        users: &[NewUser],
        tenants: &[i64],
        range: &ExtensionRange,
        idempotency: Option<(&str, &[u8])>,
        actor: &crate::auth::Actor,
    ) -> Result<Imported, ImportFailure> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        if let Some((key, hash)) = idempotency {
            if let Claim::Replay(body) = idempotency::claim(&tx, key, hash).await? {
                let stored: StoredAnswer = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("stored import answer: {e}")))?;
                return Ok(Imported {
                    users: stored.users,
                    replayed: true,
                });
            }
        }
        let numbers = allocate(&tx, users, tenants, range).await?;
        let secrets: Vec<SipSecret> = users.iter().map(|_| SipSecret::generate()).collect();
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        let emails: Vec<&str> = users.iter().map(|u| u.email.as_str()).collect();
        let secret_texts: Vec<&str> = secrets.iter().map(SipSecret::expose).collect();
        let devices: Vec<i16> = users.iter().map(|u| u.devices.as_db()).collect();
        let transports: Vec<&str> = users.iter().map(|u| u.transport.as_str()).collect();
        let inserted = tx
            .query_typed(
                INSERT,
                &[
                    (&names, Type::TEXT_ARRAY),
                    (&emails, Type::TEXT_ARRAY),
                    (&numbers, Type::INT4_ARRAY),
                    (&secret_texts, Type::TEXT_ARRAY),
                    (&devices, Type::INT2_ARRAY),
                    (&actor.as_str(), Type::TEXT),
                    (&transports, Type::TEXT_ARRAY),
                    (&tenants, Type::INT8_ARRAY),
                ],
            )
            .await
            .map_err(map_db_error);
        let inserted = match inserted {
            Ok(rows) => rows,
            // Emails are changed (PATCH) without the allocation lock: one may have been
            // taken since the check. Say which row, as the check would have.
            Err(StoreError::EmailTaken) => {
                drop(tx);
                drop(conn);
                let emails: Vec<Option<&str>> = emails.into_iter().map(Some).collect();
                let (_, explicit) = columns(users);
                let row_tenants: Vec<Option<i64>> = tenants.iter().copied().map(Some).collect();
                let clashes = self
                    .import_conflicts(&emails, &explicit, &row_tenants)
                    .await?;
                return Err(if clashes.is_empty() {
                    StoreError::EmailTaken.into()
                } else {
                    ImportFailure::Conflicts(clashes)
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut by_number: HashMap<(TenantSlug, i32), UserRow> = inserted
            .iter()
            .map(|r| {
                let row = UserRow::from_row(r);
                ((row.tenant.clone(), r.get::<_, i32>(3)), row)
            })
            .collect();
        let mut created = Vec::with_capacity(users.len());
        for ((n, secret), user) in numbers.iter().zip(secrets).zip(users) {
            let row = by_number
                .remove(&(user.tenant.clone(), *n))
                .ok_or_else(|| StoreError::Corrupt(format!("extension {n} was not inserted")))?;
            let sip_username = row.sip_username();
            created.push(CreatedUser {
                id: row.id,
                name: row.name,
                email: row.email,
                extension: row.extension.get(),
                devices: row.devices.get(),
                created_at: row.created_at,
                sip_username,
                transport: row.transport,
                tenant: row.tenant,
                sip_password: secret,
            });
        }
        if let Some((key, _)) = idempotency {
            let answer = CreatedAnswer {
                created: created.len(),
                users: &created,
            };
            let text = serde_json::to_string(&answer)
                .map_err(|e| StoreError::Corrupt(format!("import answer: {e}")))?;
            idempotency::record(&tx, key, &text).await?;
        }
        tx.commit().await?;
        Ok(Imported {
            users: created,
            replayed: false,
        })
    }

    /// Every user, sorted by extension, read from one snapshot `batch` rows at a time.
    /// Answers once the first chunk has been read, so that a database that cannot be
    /// used is an error here and not a broken stream. The reads stop when the
    /// [`ExportRows`] is dropped, or when its reader takes no chunk for `stall`.
    ///
    /// An export holds its connection as long as its reader takes, so at most
    /// [`Store::EXPORTS`] run at once; another waits as long as for a pooled connection,
    /// then is refused as unavailable, and the rest of the API keeps its connections.
    ///
    /// `tenant`: only that tenant's users (a caller bound to it); `None`: every tenant's.
    pub async fn export_users(
        &self,
        batch: i32,
        stall: Duration,
        tenant: Option<TenantSlug>,
    ) -> Result<ExportRows, StoreError> {
        let slot =
            tokio::time::timeout(Duration::from_secs(5), self.exports.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "{} exports are running; try again when one has finished",
                        Store::EXPORTS
                    ))
                })?;
        let (out, rx) = mpsc::channel(1);
        let (ready, started) = oneshot::channel();
        let store = self.clone();
        tokio::spawn(
            async move {
                let _slot = slot;
                let mut ready = Some(ready);
                let tenant = tenant.as_ref().map(TenantSlug::as_str);
                if let Err(e) = export(&store, batch.max(1), stall, tenant, &out, &mut ready).await
                {
                    match ready.take() {
                        Some(ready) => drop(ready.send(Err(e))),
                        None => {
                            tracing::error!(error = %e, "export failed");
                            // The reader may be gone or stalled: never wait for it here.
                            let _ = out.try_send(Chunk::Failed(e));
                        }
                    }
                }
            }
            .instrument(tracing::Span::current()),
        );
        match started.await {
            Ok(Ok(())) => Ok(ExportRows { rx, done: false }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Unavailable(
                "the export ended before it began".into(),
            )),
        }
    }
}

const EXPORT: &str = "
    SELECT u.id, u.name, u.email, e.number, e.devices, u.created_at, e.transport, t.slug
      FROM users u JOIN extensions e ON e.user_id = u.id JOIN tenants t ON t.id = u.tenant_id
     WHERE $1::text IS NULL OR t.slug = $1
     ORDER BY e.tenant_id, e.number";

enum Chunk {
    Rows(Vec<UserRow>),
    Failed(StoreError),
    Done,
}

/// Hands `chunk` to the reader; false when it is gone or took nothing for `stall`.
async fn hand_over(out: &mpsc::Sender<Chunk>, chunk: Chunk, stall: Duration) -> bool {
    match tokio::time::timeout(stall, out.send(chunk)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::warn!(
                "export stopped: its reader took nothing for {} s",
                stall.as_secs()
            );
            false
        }
    }
}

async fn export(
    store: &Store,
    batch: i32,
    stall: Duration,
    tenant: Option<&str>,
    out: &mpsc::Sender<Chunk>,
    ready: &mut Option<oneshot::Sender<Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    let tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let portal = tx.bind(EXPORT, &[&tenant]).await?;
    let mut rows = tx.query_portal(&portal, batch).await?;
    if let Some(ready) = ready.take() {
        if ready.send(Ok(())).is_err() {
            return Ok(());
        }
    }
    loop {
        let last = rows.len() < batch as usize;
        if !rows.is_empty() {
            let chunk = rows.iter().map(UserRow::from_row).collect();
            if !hand_over(out, Chunk::Rows(chunk), stall).await {
                return Ok(());
            }
        }
        if last {
            break;
        }
        rows = tx.query_portal(&portal, batch).await?;
    }
    tx.commit().await?;
    hand_over(out, Chunk::Done, stall).await;
    Ok(())
}

/// The chunks of an export, in order. A reader sees the end (`None`) only after the last
/// row; an export that stopped early ends with an error instead.
pub struct ExportRows {
    rx: mpsc::Receiver<Chunk>,
    done: bool,
}

impl ExportRows {
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Vec<UserRow>, StoreError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        Poll::Ready(match ready!(self.rx.poll_recv(cx)) {
            Some(Chunk::Rows(rows)) => Some(Ok(rows)),
            Some(Chunk::Failed(e)) => {
                self.done = true;
                Some(Err(e))
            }
            Some(Chunk::Done) => {
                self.done = true;
                None
            }
            None => {
                self.done = true;
                Some(Err(StoreError::Unavailable(
                    "the export stopped before its last row".into(),
                )))
            }
        })
    }

    pub async fn next(&mut self) -> Option<Result<Vec<UserRow>, StoreError>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}
