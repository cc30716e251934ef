//! The nodes of a cluster in the database: one row per node with its heartbeat, the
//! per-node locks, and the requests one node leaves for another.
//!
//! PostgreSQL is the only thing the nodes share, so everything they agree on is here:
//! a node is alive when the database's clock saw its heartbeat within [`ALIVE_WITHIN`]
//! (hosts' clocks may differ, the database has one); two locks per node, keyed by the
//! node's row id so that no two names can share a lock; and `apply_requests`, which a
//! node claims only before the asking node's deadline, so that a node that was down never
//! applies an old request by itself.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::types::{Json, Type};
use tokio_postgres::{GenericClient, Transaction};

use super::{Store, StoreError};
use crate::config::{Codecs, EndpointPolicy};
use crate::domain::{NodeName, TransportId, Transports};
use crate::record::{Fingerprints, NodeOutcome};

/// A node unseen for this long is not alive.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(15);

/// Advisory lock classes (the object is the node's id): the apply running on a node,
/// and the request that coordinates applies to it.
const EXECUTE_LOCK: i32 = 1_346_524_241;
const COORDINATE_LOCK: i32 = 1_346_524_242;

/// The channel a node is asked on (payload: its name) and the one outcomes are
/// announced on (payload: the batch).
pub const APPLY_CHANNEL: &str = "pbx_portal_apply";
pub const APPLIED_CHANNEL: &str = "pbx_portal_applied";

/// This process's node: its name and the id its locks are keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: NodeName,
    pub id: i32,
}

/// A node as `GET /nodes` shows it, before its pending changes are computed.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub name: String,
    pub id: i32,
    pub alive: bool,
    pub last_seen: Option<OffsetDateTime>,
    pub version: String,
    /// How the node renders every endpoint (its pending changes depend on it).
    pub policy: EndpointPolicy,
    pub ami: Option<String>,
    pub registrations: Option<Value>,
}

/// A request this node claimed: run it for `actor`, then record the outcome.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub batch: i64,
    pub actor: String,
    pub requested_by: String,
    /// The tenant whose changes alone to apply (`None`: every tenant).
    pub tenant: Option<String>,
}

const ALIVE: &str = "(last_seen > now() - make_interval(secs => $1) AND stopped_at IS NULL)";

/// The policy of a node still running a version from before policies were kept: one
/// transport, no NAT options, ulaw and alaw.
fn legacy_policy(transport: String, qualify_frequency: i32) -> Result<EndpointPolicy, StoreError> {
    let transport =
        TransportId::parse(&transport).map_err(|e| StoreError::Corrupt(format!("nodes: {e}")))?;
    Ok(EndpointPolicy {
        transports: Transports::new(vec![transport]).map_err(StoreError::Corrupt)?,
        tls: Default::default(),
        nat: false,
        codecs: Codecs::try_from("ulaw,alaw".to_owned()).map_err(StoreError::Corrupt)?,
        qualify_frequency: qualify_frequency.unsigned_abs(),
    })
}

fn alive_secs() -> f64 {
    ALIVE_WITHIN.as_secs_f64()
}

impl Store {
    /// Creates or refreshes this node's row; the first node ever takes over the applied
    /// state and audit log kept before nodes existed (their node is the empty name).
    pub async fn register_node(
        &self,
        name: &NodeName,
        policy: &EndpointPolicy,
    ) -> Result<Node, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let row = tx
            .query_one(
                "INSERT INTO nodes (name, version, transport, qualify_frequency, policy)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE
                    SET version = EXCLUDED.version, transport = EXCLUDED.transport,
                        qualify_frequency = EXCLUDED.qualify_frequency,
                        policy = EXCLUDED.policy
                 RETURNING id",
                &[
                    &name.as_str(),
                    &env!("CARGO_PKG_VERSION"),
                    &policy.transports.default_id().as_str(),
                    &i32::try_from(policy.qualify_frequency).unwrap_or(i32::MAX),
                    &Json(policy),
                ],
            )
            .await?;
        let id: i32 = row.try_get(0)?;
        // Users from before transports were per user were rendered with the default
        // transport (PORTAL_PJSIP_TRANSPORT): they keep it.
        let adopted_users = tx
            .execute(
                "UPDATE extensions SET transport = $1 WHERE transport IS NULL",
                &[&policy.transports.default_id().as_str()],
            )
            .await?;
        if adopted_users > 0 {
            tracing::info!(
                users = adopted_users,
                transport = %policy.transports.default_id(),
                "users from before per-user transports keep the default transport"
            );
        }
        // Two nodes starting at once: the second's UPDATE waits for the first's rows and
        // then finds none left without a node.
        let adopted = tx
            .execute(
                "UPDATE applied_extensions SET node = $1 WHERE node = ''",
                &[&name.as_str()],
            )
            .await?;
        let audited = tx
            .execute(
                "UPDATE apply_audit_log SET node = $1 WHERE node = ''",
                &[&name.as_str()],
            )
            .await?;
        if adopted > 0 {
            tx.execute(
                "UPDATE nodes SET applied_hash = (
                    SELECT content_hash FROM apply_audit_log
                     WHERE node = $1 AND status = 'applied' AND content_hash IS NOT NULL
                     ORDER BY id DESC LIMIT 1)
                  WHERE name = $1",
                &[&name.as_str()],
            )
            .await?;
        }
        if adopted + audited > 0 {
            tracing::info!(node = %name, "this node took over the applied state and applies kept without a node");
        }
        tx.commit().await?;
        Ok(Node {
            name: name.clone(),
            id,
        })
    }

    /// The heartbeat: this node is alive, with what it knows of its Asterisk.
    pub async fn heartbeat(
        &self,
        node: &NodeName,
        ami: &str,
        registrations: &Value,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "UPDATE nodes SET last_seen = now(), stopped_at = NULL, ami = $2, registrations = $3
              WHERE name = $1",
            &[&node.as_str(), &ami, &Json(registrations)],
        )
        .await?;
        Ok(())
    }

    /// A graceful stop: the node is not alive from now on (until its next heartbeat).
    pub async fn node_stopped(&self, node: &NodeName) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "UPDATE nodes SET stopped_at = now() WHERE name = $1",
            &[&node.as_str()],
        )
        .await?;
        Ok(())
    }

    /// Seconds since each node's heartbeat, by the database's clock (`None`: never seen).
    pub async fn heartbeat_ages(&self) -> Result<Vec<(String, Option<f64>)>, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query(
                "SELECT name, extract(epoch FROM now() - last_seen)::float8 FROM nodes
                  ORDER BY name",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Every node, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let conn = self.conn().await?;
        conn.query_typed(
            &format!(
                "SELECT name, id, {ALIVE}, last_seen, version, transport, qualify_frequency,
                        ami, registrations, policy
                   FROM nodes ORDER BY name"
            ),
            &[(&alive_secs(), Type::FLOAT8)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(NodeRow {
                name: r.try_get(0)?,
                id: r.try_get(1)?,
                alive: r.try_get::<_, Option<bool>>(2)?.unwrap_or(false),
                last_seen: r.try_get(3)?,
                version: r.try_get(4)?,
                policy: match r.try_get::<_, Option<Json<EndpointPolicy>>>(9)? {
                    Some(p) => p.0,
                    None => legacy_policy(r.try_get(5)?, r.try_get(6)?)?,
                },
                ami: r.try_get(7)?,
                registrations: r.try_get::<_, Option<Json<Value>>>(8)?.map(|j| j.0),
            })
        })
        .collect()
    }

    /// The applied fingerprints of every node, by node name.
    pub async fn applied_by_node(&self) -> Result<BTreeMap<String, Fingerprints>, StoreError> {
        let conn = self.conn().await?;
        let mut by_node: BTreeMap<String, Fingerprints> = BTreeMap::new();
        for r in conn
            .query(
                "SELECT node, tenant, number, fingerprint FROM applied_extensions",
                &[],
            )
            .await?
        {
            let bytes: &[u8] = r.try_get(3)?;
            by_node
                .entry(r.try_get(0)?)
                .or_default()
                .entry(r.try_get(1)?)
                .or_default()
                .insert(
                    r.try_get::<_, i32>(2)?.unsigned_abs(),
                    // A malformed stored fingerprint reads as all zeroes: shown as changed.
                    bytes.try_into().unwrap_or([0; 32]),
                );
        }
        Ok(by_node)
    }

    /// A new batch number: the rows of one cluster apply share it.
    pub async fn next_batch(&self) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query_one("SELECT nextval('apply_batches')", &[])
            .await?
            .try_get(0)?)
    }

    /// Asks `nodes` to apply (one row each, claimable until `wait` from now by the
    /// database's clock) and wakes them.
    pub async fn request_applies(
        &self,
        batch: i64,
        nodes: &[&str],
        requested_by: &NodeName,
        actor: &str,
        wait: Duration,
        tenant: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.query_typed(
            "WITH r AS (
                INSERT INTO apply_requests (batch, node, requested_by, actor, deadline, tenant)
                SELECT $1, n, $3, $4, now() + make_interval(secs => $5), $7
                  FROM unnest($2::text[]) n
                RETURNING node)
             SELECT pg_notify($6, node) FROM r",
            &[
                (&batch, Type::INT8),
                (&nodes, Type::TEXT_ARRAY),
                (&requested_by.as_str(), Type::TEXT),
                (&actor, Type::TEXT),
                (&wait.as_secs_f64(), Type::FLOAT8),
                (&APPLY_CHANNEL, Type::TEXT),
                (&tenant, Type::TEXT),
            ],
        )
        .await?;
        Ok(())
    }

    /// Claims the requests left for `node` whose deadline has not passed.
    pub async fn claim_requests(&self, node: &NodeName) -> Result<Vec<Claimed>, StoreError> {
        let conn = self.conn().await?;
        conn.query(
            "UPDATE apply_requests SET claimed_at = now()
              WHERE node = $1 AND claimed_at IS NULL AND deadline > now()
              RETURNING id, batch, actor, requested_by, tenant",
            &[&node.as_str()],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get(0)?,
                batch: r.try_get(1)?,
                actor: r.try_get(2)?,
                requested_by: r.try_get(3)?,
                tenant: r.try_get(4)?,
            })
        })
        .collect()
    }

    /// Records what this node did for a request and tells the asking node.
    pub async fn record_outcome(
        &self,
        claimed: &Claimed,
        outcome: &NodeOutcome,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.query_typed(
            "WITH r AS (UPDATE apply_requests SET outcome = $2 WHERE id = $1 RETURNING batch)
             SELECT pg_notify($3, batch::text) FROM r",
            &[
                (&claimed.id, Type::INT8),
                (&Json(outcome), Type::JSONB),
                (&APPLIED_CHANNEL, Type::TEXT),
            ],
        )
        .await?;
        Ok(())
    }

    /// The outcomes recorded so far for a batch, by node.
    pub async fn outcomes(&self, batch: i64) -> Result<BTreeMap<String, NodeOutcome>, StoreError> {
        let conn = self.conn().await?;
        conn.query(
            "SELECT node, outcome FROM apply_requests WHERE batch = $1 AND outcome IS NOT NULL",
            &[&batch],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, Json<NodeOutcome>>(1)?.0)))
        .collect()
    }
}

/// Takes the coordination lock of every node in `ids` for the life of `tx`; false (and
/// none held once `tx` ends) when another request coordinates one of them.
pub(super) async fn try_coordinate(tx: &Transaction<'_>, ids: &[i32]) -> Result<bool, StoreError> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let row = tx
        .query_one(
            "SELECT bool_and(pg_try_advisory_xact_lock($1, id))
               FROM (SELECT unnest($2::integer[]) AS id ORDER BY 1) ids",
            &[&COORDINATE_LOCK, &sorted],
        )
        .await?;
    Ok(row.try_get::<_, Option<bool>>(0)?.unwrap_or(true))
}

/// Takes this node's apply lock for the life of `tx`; false when an apply holds it.
pub(super) async fn try_execute(tx: &impl GenericClient, node: &Node) -> Result<bool, StoreError> {
    let row = tx
        .query_typed_one(
            "SELECT pg_try_advisory_xact_lock($1, $2)",
            &[(&EXECUTE_LOCK, Type::INT4), (&node.id, Type::INT4)],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Takes this node's apply lock and its coordination lock for the life of `tx` (an apply
/// of this node alone: one transaction, one connection); false when either is held —
/// then roll `tx` back, which frees the one that was taken.
pub(super) async fn try_execute_alone(
    tx: &impl GenericClient,
    node: &Node,
) -> Result<bool, StoreError> {
    let row = tx
        .query_typed_one(
            "SELECT CASE WHEN pg_try_advisory_xact_lock($1, $3)
                         THEN pg_try_advisory_xact_lock($2, $3) ELSE false END",
            &[
                (&EXECUTE_LOCK, Type::INT4),
                (&COORDINATE_LOCK, Type::INT4),
                (&node.id, Type::INT4),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}
