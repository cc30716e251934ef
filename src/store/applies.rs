//! The apply side of the database: the cross-process apply lock, the consistent read of
//! what to render, the last applied state and the audit log.

use tokio_postgres::types::{Json, Type};
use tokio_postgres::{GenericClient, Transaction};

use super::{Store, StoreError};
use crate::apply::record::{
    AppliedState, ApplyRecord, Changes, ErrorBody, Fingerprints, Health, Reload,
};
use crate::auth::Actor;
use crate::domain::{Devices, Extension, SipSecret, Subscriber};

/// Key of the apply lock (transaction level: it ends with the transaction, so it cannot
/// outlive the apply or stay behind on a pooled connection).
const APPLY_LOCK: (i32, i32) = (1_346_524_240, 2);

const APPLY_COLUMNS: &str = "id, status, started_at, finished_at, duration_ms, endpoints, \
     changes, reload, health, rolled_back, error, content_hash, actor";

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
    })
}

/// Everything an apply renders, read in one statement (one consistent snapshot).
pub type Snapshot = Vec<Subscriber>;

/// Takes the apply lock for the life of `tx`; false when another apply holds it.
pub async fn try_apply_lock(tx: &Transaction<'_>) -> Result<bool, StoreError> {
    let row = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1, $2)",
            &[&APPLY_LOCK.0, &APPLY_LOCK.1],
        )
        .await?;
    Ok(row.get(0))
}

/// Marks applies that were running when their process died. Only call it while holding
/// the apply lock: then no apply is running anywhere.
pub async fn mark_interrupted(client: &impl GenericClient) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE apply_audit_log
                SET status = 'interrupted', finished_at = now(),
                    duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint,
                    error = '{\"code\": \"interrupted\", \"message\": \"the apply stopped before it finished (the portal was stopped or killed, or the apply task failed: see the log); the files are either the old or the new version\"}'
              WHERE status = 'running'",
            &[],
        )
        .await?)
}

pub async fn snapshot(client: &impl GenericClient) -> Result<Snapshot, StoreError> {
    let rows = client
        .query(
            "SELECT e.number, u.name, e.secret, e.devices
               FROM extensions e JOIN users u ON u.id = e.user_id
              ORDER BY e.number",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Subscriber {
            extension: Extension::from_stored(r.get(0)),
            name: r.get(1),
            secret: SipSecret::from_stored(r.get(2)),
            devices: Devices::from_stored(r.get(3)),
        })
        .collect())
}

pub async fn applied_state(client: &impl GenericClient) -> Result<AppliedState, StoreError> {
    let fingerprints = client
        .query("SELECT number, fingerprint FROM applied_extensions", &[])
        .await?
        .iter()
        .map(|r| {
            // A malformed stored fingerprint reads as all zeroes: that extension shows as changed.
            let bytes: &[u8] = r.get(1);
            (
                r.get::<_, i32>(0).unsigned_abs(),
                bytes.try_into().unwrap_or([0; 32]),
            )
        })
        .collect();
    let content_hash = client
        .query(
            "SELECT content_hash FROM apply_audit_log WHERE status = 'applied'
              ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await?
        .first()
        .and_then(|r| r.get(0));
    Ok(AppliedState {
        fingerprints,
        content_hash,
    })
}

/// Records what a successful apply wrote (inside its transaction): only the rows that
/// `changes` says differ from the state read under the same lock.
pub async fn save_applied_state(
    tx: &Transaction<'_>,
    changes: &Changes,
    fingerprints: &Fingerprints,
) -> Result<(), StoreError> {
    let removed: Vec<i32> = changes.removed.iter().map(|n| *n as i32).collect();
    let upsert = changes.added.iter().chain(&changes.changed);
    let numbers: Vec<i32> = upsert.clone().map(|n| *n as i32).collect();
    let prints: Vec<&[u8]> = upsert
        .filter_map(|n| fingerprints.get(n))
        .map(|f| f.as_slice())
        .collect();
    if !removed.is_empty() {
        tx.execute(
            "DELETE FROM applied_extensions WHERE number = ANY($1)",
            &[&removed],
        )
        .await?;
    }
    if !numbers.is_empty() {
        tx.execute(
            "INSERT INTO applied_extensions (number, fingerprint)
             SELECT * FROM unnest($1::integer[], $2::bytea[])
             ON CONFLICT (number) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
            &[&numbers, &prints],
        )
        .await?;
    }
    Ok(())
}

/// Writes an apply's final state.
pub async fn finish_apply(
    client: &impl GenericClient,
    row: &ApplyRecord,
) -> Result<(), StoreError> {
    let status = row.status.as_str();
    client
        .query_typed(
            "UPDATE apply_audit_log
                SET status = $2, finished_at = $3, duration_ms = $4, endpoints = $5,
                    changes = $6, reload = $7, health = $8, rolled_back = $9, error = $10,
                    content_hash = $11
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
    ) -> Result<ApplyRecord, StoreError> {
        let conn = self.conn().await?;
        let action = if dry_run { "apply.dry_run" } else { "apply" };
        let row = conn
            .query_one(
                &format!(
                    "WITH r AS (
                        INSERT INTO apply_audit_log (status, actor) VALUES ('running', $1)
                        RETURNING {APPLY_COLUMNS}),
                     a AS (INSERT INTO audit_log (actor, action, apply_id)
                           SELECT $1, $2, r.id FROM r)
                     SELECT {APPLY_COLUMNS} FROM r"
                ),
                &[&actor.as_str(), &action],
            )
            .await?;
        record_from_row(&row)
    }

    pub async fn finish_apply(&self, row: &ApplyRecord) -> Result<(), StoreError> {
        finish_apply(&*self.conn().await?, row).await
    }

    /// Newest first.
    pub async fn list_applies(&self, limit: i64) -> Result<Vec<ApplyRecord>, StoreError> {
        let conn = self.conn().await?;
        conn.query_typed(
            &format!("SELECT {APPLY_COLUMNS} FROM apply_audit_log ORDER BY id DESC LIMIT $1"),
            &[(&limit, Type::INT8)],
        )
        .await?
        .iter()
        .map(record_from_row)
        .collect()
    }

    /// Marks orphaned `running` applies as interrupted, unless an apply is running now.
    pub async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        if !try_apply_lock(&tx).await? {
            return Ok(0);
        }
        let n = mark_interrupted(&tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// The extensions the last successful applies wrote.
    pub async fn applied_extensions(&self) -> Result<std::collections::BTreeSet<u32>, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query("SELECT number FROM applied_extensions", &[])
            .await?
            .iter()
            .map(|r| r.get::<_, i32>(0).unsigned_abs())
            .collect())
    }

    pub async fn snapshot_and_applied(&self) -> Result<(Snapshot, AppliedState), StoreError> {
        let conn = self.conn().await?;
        let snap = snapshot(&*conn).await?;
        let applied = applied_state(&*conn).await?;
        Ok((snap, applied))
    }
}
