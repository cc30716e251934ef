//! The node's locks as handles the store owns: the apply pipeline and the coordinator
//! hold a [`ApplyLock`] or a [`Coordination`], never a raw transaction.
//!
//! Both locks are PostgreSQL transaction-level advisory locks (keyed by the node's row id,
//! see [`super::nodes`]): they end with their transaction, so a lock cannot outlive its
//! holder or leak when a connection goes back to the pool. A handle borrows a connection
//! it keeps for its whole life ([`LockConn`]); everything done while holding the apply lock
//! (the read of what to render, the saved state and the audit row) goes through the
//! handle's methods, in its transaction.

use tokio_postgres::Transaction;

use super::applies::{self, Snapshot};
use super::nodes::{self, Node};
use super::{Conn, Store, StoreError};
use crate::record::{AppliedState, ApplyRecord, Fingerprints};

/// Which locks an apply takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyLockKind {
    /// The node's apply lock only: a request that coordinates several nodes holds their
    /// coordination locks already.
    Execute,
    /// The apply lock and the coordination lock of the node: an apply of this node alone
    /// (one transaction, one connection).
    Alone,
}

/// A pooled connection kept for a lock's transaction.
pub struct LockConn<'s> {
    store: &'s Store,
    conn: Conn<'s>,
}

/// The node's apply lock, held until [`ApplyLock::commit`] or [`ApplyLock::release`] (or a
/// drop, which only queues the rollback: prefer `release`).
pub struct ApplyLock<'c> {
    store: &'c Store,
    node: Node,
    tx: Transaction<'c>,
}

/// The coordination locks of the nodes one request applies to, held until
/// [`Coordination::release`] (or a drop).
pub struct Coordination<'c> {
    tx: Transaction<'c>,
}

impl Store {
    /// A connection for a lock's transaction ([`LockConn::try_apply_lock`],
    /// [`LockConn::try_coordinate`]).
    pub async fn lock_conn(&self) -> Result<LockConn<'_>, StoreError> {
        Ok(LockConn {
            store: self,
            conn: self.conn().await?,
        })
    }
}

impl<'s> LockConn<'s> {
    /// Takes `node`'s apply lock (and with [`ApplyLockKind::Alone`] its coordination lock);
    /// `None` when either is held elsewhere, and then none is held.
    pub async fn try_apply_lock(
        &mut self,
        node: &Node,
        kind: ApplyLockKind,
    ) -> Result<Option<ApplyLock<'_>>, StoreError> {
        let tx = self.conn.transaction().await?;
        let locked = match kind {
            ApplyLockKind::Alone => nodes::try_execute_alone(&tx, node).await?,
            ApplyLockKind::Execute => nodes::try_execute(&tx, node).await?,
        };
        if !locked {
            // Awaited: alone, the apply lock may be held while the coordination lock was
            // not to be had, and a dropped transaction only queues its ROLLBACK.
            let _ = tx.rollback().await;
            return Ok(None);
        }
        Ok(Some(ApplyLock {
            store: self.store,
            node: node.clone(),
            tx,
        }))
    }

    /// Takes the coordination lock of every node in `ids`; `None` when another request
    /// coordinates one of them, and then none is held.
    pub async fn try_coordinate(
        &mut self,
        ids: &[i32],
    ) -> Result<Option<Coordination<'_>>, StoreError> {
        let tx = self.conn.transaction().await?;
        if !nodes::try_coordinate(&tx, ids).await? {
            let _ = tx.rollback().await;
            return Ok(None);
        }
        Ok(Some(Coordination { tx }))
    }
}

impl ApplyLock<'_> {
    /// Marks the node's applies that were running when their process died: holding the
    /// lock, no apply runs on this node, so a `running` row is a crashed one. Committed at
    /// once (on a connection of its own), whatever becomes of this lock's transaction.
    pub async fn mark_interrupted(&self) -> Result<u64, StoreError> {
        applies::mark_interrupted(&*self.store.conn().await?, &self.node).await
    }

    /// The users to render and the node's last applied state, read in the lock's
    /// transaction. `known`: an applied state this process saved; while the node's
    /// applied hash is still its hash, its fingerprints are not read again (only applies
    /// write them, each with its hash, under this lock).
    /// `tenant`: that tenant's users only (the applied state is the node's, whole).
    pub async fn read(
        &self,
        known: Option<&AppliedState>,
        tenant: Option<&str>,
    ) -> Result<(Snapshot, AppliedState), StoreError> {
        let node = self.node.name.as_str();
        // Pipelined on the transaction's connection: one round trip.
        let (snap, content_hash) = tokio::try_join!(
            applies::read_snapshot_of(&self.tx, tenant),
            applies::read_applied_hash(&self.tx, node)
        )?;
        let applied = match known {
            Some(known) if content_hash.is_some() && known.content_hash == content_hash => {
                known.clone()
            }
            _ => AppliedState {
                fingerprints: applies::read_applied_fingerprints(&self.tx, node).await?,
                content_hash,
            },
        };
        Ok((snap, applied))
    }

    /// Records a successful apply in the lock's transaction: the node's applied state
    /// (the rows `rec.changes` says differ) and the audit row. Takes effect at
    /// [`ApplyLock::commit`].
    pub async fn save(
        &self,
        rec: &ApplyRecord,
        fingerprints: &Fingerprints,
    ) -> Result<(), StoreError> {
        applies::save_applied_state(
            &self.tx,
            self.node.name.as_str(),
            &rec.changes,
            fingerprints,
            rec.content_hash.as_deref(),
        )
        .await?;
        applies::write_finished(&self.tx, rec).await
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }

    /// Rolls back and frees the lock. Awaited, not dropped: a dropped transaction's
    /// ROLLBACK is only queued, and the next apply could find the lock still held.
    pub async fn release(self) {
        let _ = self.tx.rollback().await;
    }
}

impl Coordination<'_> {
    /// Frees the coordination locks (awaited, as [`ApplyLock::release`]).
    pub async fn release(self) {
        let _ = self.tx.rollback().await;
    }
}
