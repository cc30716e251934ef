//! The apply side of the database: the consistent read of what to render, and per node
//! the last applied state and the audit log (the node's lock is in [`super::nodes`], the
//! handle an apply holds it by in [`super::locks`]).
//!
//! The free functions here are the statements; the API is [`Store`]'s methods and the
//! lock handle's ([`super::ApplyLock`]), which run them on a pooled connection or in the
//! lock's transaction.

use tokio_postgres::types::{Json, Type};
use tokio_postgres::{GenericClient, Transaction};

use super::nodes::{self, Node};
use super::{Store, StoreError};
use crate::auth::Actor;
use crate::domain::{Devices, Extension, SipSecret, Subscriber, TenantSlug};
use crate::record::{
    AppliedState, ApplyRecord, Changes, ErrorBody, Fingerprints, Health, NodeOutcome, Reload,
};

const APPLY_COLUMNS: &str = "id, status, started_at, finished_at, duration_ms, endpoints, \
     changes, reload, health, rolled_back, error, content_hash, actor, node, requested_by, nodes, tenant";

fn record_from_row(r: &tokio_postgres::Row) -> Result<ApplyRecord, StoreError> {
    let status: &str = r.try_get(1)?;
    Ok(ApplyRecord {
        id: r.try_get(0)?,
        status: status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("apply_audit_log: {e}")))?,
        started_at: r.try_get(2)?,
        finished_at: r.try_get(3)?,
        duration_ms: r.try_get(4)?,
        endpoints: r.try_get(5)?,
        changes: r.try_get::<_, Json<Changes>>(6)?.0,
        reload: r.try_get::<_, Json<Reload>>(7)?.0,
        health: r.try_get::<_, Json<Health>>(8)?.0,
        rolled_back: r.try_get(9)?,
        error: r.try_get::<_, Option<Json<ErrorBody>>>(10)?.map(|j| j.0),
        content_hash: r.try_get(11)?,
        actor: r.try_get(12)?,
        node: r.try_get(13)?,
        requested_by: r.try_get(14)?,
        nodes: r.try_get::<_, Json<Vec<NodeOutcome>>>(15)?.0,
        tenant: r.try_get(16)?,
    })
}

/// Everything an apply renders, read in one statement (one consistent snapshot).
pub type Snapshot = Vec<Subscriber>;

/// Marks the node's applies that were running when their process died. Only call it
/// while holding the node's apply lock: then no apply is running on that node.
pub(super) async fn mark_interrupted(
    client: &impl GenericClient,
    node: &Node,
) -> Result<u64, StoreError> {
    Ok(client
        .execute_typed(
            "UPDATE apply_audit_log
                SET status = 'interrupted', finished_at = now(),
                    duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint,
                    error = '{\"code\": \"interrupted\", \"message\": \"the apply stopped before it finished (the portal was stopped or killed, or the apply task failed: see the log); the files are either the old or the new version\"}'
              WHERE status = 'running' AND node = $1",
            &[(&node.name.as_str(), Type::TEXT)],
        )
        .await?)
}

pub(super) async fn read_snapshot(client: &impl GenericClient) -> Result<Snapshot, StoreError> {
    read_snapshot_of(client, None).await
}

/// The snapshot of one tenant's users (`None`: every tenant's). A tenant-scoped apply
/// renders that tenant alone: its files depend on its own users only, and reading and
/// rendering 10,000 users for the 200 of one tenant would be most of its cost.
pub(super) async fn read_snapshot_of(
    client: &impl GenericClient,
    tenant: Option<&str>,
) -> Result<Snapshot, StoreError> {
    let rows = match tenant {
        None => {
            client
                .query_typed(
                    "SELECT e.number, u.name, e.secret, e.devices, e.transport, t.slug
                       FROM extensions e JOIN users u ON u.id = e.user_id
                       JOIN tenants t ON t.id = e.tenant_id
                      ORDER BY e.number",
                    &[],
                )
                .await?
        }
        Some(slug) => {
            client
                .query_typed(
                    "SELECT e.number, u.name, e.secret, e.devices, e.transport, t.slug
                       FROM extensions e JOIN users u ON u.id = e.user_id
                       JOIN tenants t ON t.id = e.tenant_id
                      WHERE t.slug = $1
                      ORDER BY e.number",
                    &[(&slug, Type::TEXT)],
                )
                .await?
        }
    };
    Ok(rows
        .iter()
        .map(|r| Subscriber {
            extension: Extension::from_stored(r.get(0)),
            name: r.get(1),
            secret: SipSecret::from_stored(r.get(2)),
            devices: Devices::from_stored(r.get(3)),
            transport: r.get(4),
            tenant: TenantSlug::from_stored(r.get(5)),
        })
        .collect())
}

pub(super) async fn read_applied_state(
    client: &impl GenericClient,
    node: &str,
) -> Result<AppliedState, StoreError> {
    let (fingerprints, content_hash) = tokio::try_join!(
        read_applied_fingerprints(client, node),
        read_applied_hash(client, node)
    )?;
    Ok(AppliedState {
        fingerprints,
        content_hash,
    })
}

/// The fingerprint of every extension last applied on `node`, by tenant and number.
pub(super) async fn read_applied_fingerprints(
    client: &impl GenericClient,
    node: &str,
) -> Result<Fingerprints, StoreError> {
    let rows = client
        .query_typed(
            "SELECT tenant, number, fingerprint FROM applied_extensions WHERE node = $1",
            &[(&node, Type::TEXT)],
        )
        .await?;
    let mut out = Fingerprints::new();
    for r in &rows {
        // A malformed stored fingerprint reads as all zeroes: that extension shows as changed.
        let bytes: &[u8] = r.try_get(2)?;
        out.entry(r.try_get::<_, String>(0)?).or_default().insert(
            r.try_get::<_, i32>(1)?.unsigned_abs(),
            bytes.try_into().unwrap_or([0; 32]),
        );
    }
    Ok(out)
}

/// The hash of the files last applied on `node`, if any.
pub(super) async fn read_applied_hash(
    client: &impl GenericClient,
    node: &str,
) -> Result<Option<String>, StoreError> {
    let rows = client
        .query_typed(
            "SELECT applied_hash FROM nodes WHERE name = $1",
            &[(&node, Type::TEXT)],
        )
        .await?;
    Ok(rows.first().and_then(|r| r.get(0)))
}

/// Records what a successful apply wrote on `node` (inside its transaction): only the
/// rows that `changes` says differ from the state read under the same lock.
pub(super) async fn save_applied_state(
    tx: &Transaction<'_>,
    node: &str,
    changes: &Changes,
    fingerprints: &Fingerprints,
    content_hash: Option<&str>,
) -> Result<(), StoreError> {
    let (mut gone_tenants, mut gone) = (Vec::<&str>::new(), Vec::<i32>::new());
    for (tenant, number) in changes.removed_all() {
        gone_tenants.push(tenant);
        gone.push(number as i32);
    }
    let (mut tenants, mut numbers, mut prints) = (Vec::<&str>::new(), Vec::new(), Vec::new());
    for (tenant, number) in changes.touched() {
        if let Some(print) = fingerprints.get(tenant).and_then(|f| f.get(&number)) {
            tenants.push(tenant);
            numbers.push(number as i32);
            prints.push(print.as_slice());
        }
    }
    if !gone.is_empty() {
        tx.execute_typed(
            "DELETE FROM applied_extensions a
              USING unnest($2::text[], $3::integer[]) AS g(tenant, number)
              WHERE a.node = $1 AND a.tenant = g.tenant AND a.number = g.number",
            &[
                (&node, Type::TEXT),
                (&gone_tenants, Type::TEXT_ARRAY),
                (&gone, Type::INT4_ARRAY),
            ],
        )
        .await?;
    }
    if !numbers.is_empty() {
        tx.execute_typed(
            "INSERT INTO applied_extensions (node, tenant, number, fingerprint)
             SELECT $1, * FROM unnest($2::text[], $3::integer[], $4::bytea[])
             ON CONFLICT (node, tenant, number) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
            &[
                (&node, Type::TEXT),
                (&tenants, Type::TEXT_ARRAY),
                (&numbers, Type::INT4_ARRAY),
                (&prints, Type::BYTEA_ARRAY),
            ],
        )
        .await?;
    }
    tx.execute_typed(
        "UPDATE nodes SET applied_hash = $2 WHERE name = $1",
        &[(&node, Type::TEXT), (&content_hash, Type::TEXT)],
    )
    .await?;
    Ok(())
}

/// Writes an apply's final state.
pub(super) async fn write_finished(
    client: &impl GenericClient,
    row: &ApplyRecord,
) -> Result<(), StoreError> {
    let status = row.status.as_str();
    client
        .query_typed(
            "UPDATE apply_audit_log
                SET status = $2, finished_at = $3, duration_ms = $4, endpoints = $5,
                    changes = $6, reload = $7, health = $8, rolled_back = $9, error = $10,
                    content_hash = $11, nodes = $12
              WHERE id = $1",
            &[
                (&row.id, Type::INT8),
                (&status, Type::TEXT),
                (&row.finished_at, Type::TIMESTAMPTZ),
                (&row.duration_ms, Type::INT8),
                (&row.endpoints, Type::INT4),
                (&Json(&row.changes), Type::JSONB),
                (&Json(&row.reload), Type::JSONB),
                (&Json(&row.health), Type::JSONB),
                (&row.rolled_back, Type::BOOL),
                (&row.error.as_ref().map(Json), Type::JSONB),
                (&row.content_hash, Type::TEXT),
                (&Json(&row.nodes), Type::JSONB),
            ],
        )
        .await?;
    Ok(())
}

impl Store {
    /// Opens an audit row in state `running`, committed at once so that a crash leaves it,
    /// with its line in the audit of who changed what (same statement).
    pub async fn start_apply(
        &self,
        actor: &Actor,
        dry_run: bool,
        node: &str,
        requested_by: Option<&str>,
        tenant: Option<&str>,
    ) -> Result<ApplyRecord, StoreError> {
        let conn = self.conn().await?;
        let action = if dry_run { "apply.dry_run" } else { "apply" };
        let row = conn
            .query_typed_one(
                &format!(
                    "WITH r AS (
                        INSERT INTO apply_audit_log (status, actor, node, requested_by, tenant)
                        VALUES ('running', $1, $3, $4, $5)
                        RETURNING {APPLY_COLUMNS}),
                     a AS (INSERT INTO audit_log (actor, action, apply_id)
                           SELECT $1, $2, r.id FROM r)
                     SELECT {APPLY_COLUMNS} FROM r"
                ),
                &[
                    (&actor.as_str(), Type::TEXT),
                    (&action, Type::TEXT),
                    (&node, Type::TEXT),
                    (&requested_by, Type::TEXT),
                    (&tenant, Type::TEXT),
                ],
            )
            .await?;
        record_from_row(&row)
    }

    /// Writes an apply's final state (an apply that saves no applied state, a dry run,
    /// the row of a cluster apply).
    pub async fn finish_apply(&self, row: &ApplyRecord) -> Result<(), StoreError> {
        write_finished(&*self.conn().await?, row).await
    }

    /// Records an apply whose lock went with its connection (the database restarted after
    /// the apply had done its work): the node's applied state is saved only under the
    /// node's lock, taken again here, and otherwise left for the next apply to find
    /// different; the audit row is written in any case.
    pub async fn record_finished(
        &self,
        node: &Node,
        rec: &ApplyRecord,
        applied: Option<&Fingerprints>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let locked = match applied {
            Some(_) => nodes::try_execute(&tx, node).await?,
            None => false,
        };
        match applied {
            Some(prints) if locked => {
                save_applied_state(
                    &tx,
                    node.name.as_str(),
                    &rec.changes,
                    prints,
                    rec.content_hash.as_deref(),
                )
                .await?;
                write_finished(&tx, rec).await?;
            }
            _ => write_finished(&tx, rec).await?,
        }
        Ok(tx.commit().await?)
    }

    /// The node's audit log, newest first (with the rows no node has taken over yet).
    pub async fn list_applies(
        &self,
        node: &str,
        limit: i64,
        tenant: Option<&str>,
    ) -> Result<Vec<ApplyRecord>, StoreError> {
        let conn = self.conn().await?;
        conn.query_typed(
            &format!(
                "SELECT {APPLY_COLUMNS} FROM apply_audit_log WHERE node IN ($2, '')
                    AND ($3::text IS NULL OR tenant IS NULL OR tenant = $3)
                  ORDER BY id DESC LIMIT $1"
            ),
            &[
                (&limit, Type::INT8),
                (&node, Type::TEXT),
                (&tenant, Type::TEXT),
            ],
        )
        .await?
        .iter()
        .map(record_from_row)
        .collect()
    }

    /// Marks the node's orphaned `running` applies as interrupted, unless an apply is
    /// running on it now.
    pub async fn recover_interrupted(&self, node: &Node) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        if !nodes::try_execute(&tx, node).await? {
            return Ok(0);
        }
        let n = mark_interrupted(&tx, node).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Every tenant's extensions the node's last successful applies wrote, as (tenant
    /// slug, number): the registration view shows these lines' phones only.
    pub async fn applied_extensions(
        &self,
        node: &str,
    ) -> Result<std::collections::BTreeSet<(String, u32)>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query_typed(
                "SELECT tenant, number FROM applied_extensions WHERE node = $1",
                &[(&node, Type::TEXT)],
            )
            .await?;
        let mut out = std::collections::BTreeSet::new();
        for r in &rows {
            out.insert((r.try_get(0)?, r.try_get::<_, i32>(1)?.unsigned_abs()));
        }
        Ok(out)
    }

    /// Every user as an apply renders them.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        read_snapshot(&*self.conn().await?).await
    }

    pub async fn snapshot_and_applied(
        &self,
        node: &str,
    ) -> Result<(Snapshot, AppliedState), StoreError> {
        let conn = self.conn().await?;
        let snap = read_snapshot(&*conn).await?;
        let applied = read_applied_state(&*conn, node).await?;
        Ok((snap, applied))
    }
}
