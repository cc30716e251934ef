//! Applying to several nodes (one `serve` next to each Asterisk host), coordinated only
//! through PostgreSQL.
//!
//! The node that receives `POST /apply` is the coordinator: it takes the coordination
//! lock of every chosen node (a second request for any of them gets 409 before anything
//! is recorded), runs its own apply in-process, and leaves one `apply_requests` row per
//! other node, announced with NOTIFY. Each node's task ([`run_node`], woken by [`listen`])
//! claims the rows left for it (only before their deadline), runs the same pipeline as a
//! single node — write, reload, probe, roll back on its own host — and records its
//! outcome in the row (NOTIFY again). The coordinator waits for the outcomes up to the node timeout; a
//! claimed apply runs to its end in its own process whatever happens to the coordinator.
//! Notifications only make this fast: every wait also polls the rows, and every node
//! scans for its requests at each heartbeat, so a lost notification costs latency, never
//! an outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::{Applier, ApplyError, Held};
use crate::asterisk::contacts::Summary;
use crate::auth::Actor;
use crate::backoff::Backoff;
use crate::domain::{NodeName, TenantSlug};
use crate::metrics::Metrics;
use crate::record::{overall, ApplyRecord, ApplyStatus, FailureCode, NodeOutcome, Strategy};
use crate::shutdown::Shutdown;
use crate::store::nodes::{self, Claimed, NodeRow, APPLIED_CHANNEL, APPLY_CHANNEL};
use crate::store::StoreError;

/// How often a node writes its heartbeat and scans for requests it may have missed.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// The connections coordinating several nodes holds at once: its locks' transaction,
/// this node's own apply (its locked transaction and its audit row) and the reads of the
/// outcomes.
const MIN_POOL: u32 = 4;

/// How often a waiting coordinator reads the outcomes without being notified.
const POLL: Duration = Duration::from_millis(500);

/// Which nodes an apply goes to, and how.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// `None`: every alive node (and this one).
    pub nodes: Option<Vec<NodeName>>,
    pub strategy: Strategy,
    /// The tenant whose changes alone to apply, on every chosen node (`None`: every
    /// tenant).
    pub tenant: Option<TenantSlug>,
}

/// Why a cluster apply did not run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A node named in `?nodes=` has never run.
    #[error("no node is named '{0}'")]
    UnknownNode(String),
}

impl From<StoreError> for ClusterError {
    fn from(e: StoreError) -> Self {
        Self::Apply(e.into())
    }
}

/// A node chosen for an apply, with whether it is alive now.
#[derive(Debug, Clone)]
struct Chosen {
    name: String,
    id: i32,
    alive: bool,
}

/// A node as the database knows it, with whether it has changes to apply (by its own
/// rendering settings) and its last apply: what `GET /nodes` answers.
#[derive(Debug, Clone)]
pub struct NodeState {
    pub row: NodeRow,
    /// Every tenant's changes not applied on the node yet.
    pub changes: crate::record::Changes,
    pub last_apply: Option<ApplyRecord>,
}

/// Runs applies across nodes. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    applier: Applier,
    timeout: Duration,
    /// Bumped whenever a node announces an outcome (or the listener reconnects).
    outcomes: watch::Receiver<u64>,
}

impl Cluster {
    /// `outcomes` comes from [`listen`].
    pub fn new(applier: Applier, timeout: Duration, outcomes: watch::Receiver<u64>) -> Self {
        Self {
            applier,
            timeout,
            outcomes,
        }
    }

    pub fn applier(&self) -> &Applier {
        &self.applier
    }

    fn me(&self) -> &str {
        self.applier.node().name.as_str()
    }

    /// Applies to the chosen nodes; the answer is this node's record with every node's
    /// outcome, `applied` only when every node applied.
    pub async fn apply(&self, actor: &Actor, choice: &Choice) -> Result<ApplyRecord, ClusterError> {
        let clock = Instant::now();
        let store = self.applier.store();
        let chosen = self.choose(choice.nodes.as_deref()).await?;
        let tenant = choice.tenant.as_ref();
        let includes_me = chosen.iter().any(|c| c.name == self.me());
        let others: Vec<&Chosen> = chosen.iter().filter(|c| c.name != self.me()).collect();
        if others.is_empty() {
            // This node alone: the single-node apply, which takes the coordination lock with
            // its own (one transaction: as few connections as before nodes existed).
            return Ok(self.applier.apply(actor, Held::Alone, tenant).await?);
        }
        let pool = store.pool_state().size;
        if pool < MIN_POOL {
            return Err(ApplyError::Store(StoreError::Unavailable(format!(
                "PORTAL_DB_POOL_SIZE={pool} is too small to apply to several nodes: set it to \
                 {MIN_POOL} or more"
            )))
            .into());
        }
        let mut conn = store.lock_conn().await?;
        let ids: Vec<i32> = chosen.iter().map(|c| c.id).collect();
        let Some(coordination) = conn.try_coordinate(&ids).await? else {
            return Err(ApplyError::InProgress.into());
        };
        // This node's record: its own apply's, or (not chosen) one for the request it runs.
        let coordinating = match includes_me {
            true => None,
            false => Some(self.coordinator_record(actor, tenant).await?),
        };
        let batch = store.next_batch().await?;
        let (mine, outcomes) = match choice.strategy {
            Strategy::Parallel => {
                self.parallel(actor, batch, includes_me, &others, tenant)
                    .await?
            }
            Strategy::Rolling => self.rolling(actor, batch, &chosen, tenant).await?,
        };
        coordination.release().await;
        let ordered: Vec<NodeOutcome> = chosen
            .iter()
            .map(|c| match outcomes.get(&c.name) {
                Some(o) => o.clone(),
                None => NodeOutcome::without_apply(&c.name, ApplyStatus::Skipped, None),
            })
            .collect();
        let (status, error) = overall(&ordered);
        let applied_here = mine.is_some();
        let mut rec = match (mine, coordinating) {
            (Some(rec), _) | (None, Some(rec)) => rec,
            // Chosen, but a rolling apply stopped before this node.
            (None, None) => self.coordinator_record(actor, tenant).await?,
        };
        rec.nodes = ordered;
        if !applied_here {
            rec.status = status;
            rec.finish(OffsetDateTime::now_utc(), clock.elapsed());
        }
        // Each node recorded its own outcome already; this row lists them all. Written
        // before the answer; should the database be away, as soon as it is back (the
        // answer does not wait for a restart).
        if let Err(e) = store.finish_apply(&rec).await {
            tracing::warn!(apply = rec.id, error = %e, "the cluster apply's record is written later");
            let (store, stored) = (store.clone(), rec.clone());
            tokio::spawn(async move {
                if let Err(e) = super::persist(|| store.finish_apply(&stored)).await {
                    tracing::error!(apply = stored.id, error = %e, "the cluster apply's record was not written");
                }
            });
        }
        rec.status = status;
        rec.error = error;
        if status == ApplyStatus::Failed {
            return Err(ApplyError::Failed(Box::new(rec)).into());
        }
        Ok(rec)
    }

    /// The chosen nodes in order: those named, else every alive node and this one (this
    /// node counts as alive: it is running this).
    async fn choose(&self, names: Option<&[NodeName]>) -> Result<Vec<Chosen>, ClusterError> {
        let rows = self.applier.store().nodes().await?;
        let me = self.me();
        let chosen = |r: &NodeRow| Chosen {
            name: r.name.clone(),
            id: r.id,
            alive: r.alive || r.name == me,
        };
        let Some(names) = names else {
            return Ok(rows
                .iter()
                .filter(|r| r.alive || r.name == me)
                .map(chosen)
                .collect());
        };
        names
            .iter()
            .map(|n| match rows.iter().find(|r| r.name == n.as_str()) {
                Some(r) => Ok(chosen(r)),
                None => Err(ClusterError::UnknownNode(n.to_string())),
            })
            .collect()
    }

    /// Every node at once; a node that is not alive is not asked.
    async fn parallel(
        &self,
        actor: &Actor,
        batch: i64,
        includes_me: bool,
        others: &[&Chosen],
        tenant: Option<&TenantSlug>,
    ) -> Result<(Option<ApplyRecord>, BTreeMap<String, NodeOutcome>), ClusterError> {
        let mut outcomes = BTreeMap::new();
        let mut asked = Vec::new();
        for c in others {
            if c.alive {
                asked.push(c.name.as_str());
            } else {
                outcomes.insert(c.name.clone(), unreachable(&c.name));
            }
        }
        if !asked.is_empty() {
            self.ask(batch, &asked, actor, tenant).await?;
        }
        let (mine, theirs) = tokio::join!(
            async {
                if includes_me {
                    Some(self.apply_here(actor, tenant).await)
                } else {
                    None
                }
            },
            self.wait(batch, &asked),
        );
        outcomes.extend(theirs?);
        let mine = match mine {
            Some(Ok(rec)) => {
                outcomes.insert(self.me().to_owned(), NodeOutcome::of(&rec));
                Some(rec)
            }
            Some(Err(e)) => return Err(e),
            None => None,
        };
        Ok((mine, outcomes))
    }

    /// One node at a time in order, stopping at the first that does not apply.
    async fn rolling(
        &self,
        actor: &Actor,
        batch: i64,
        chosen: &[Chosen],
        tenant: Option<&TenantSlug>,
    ) -> Result<(Option<ApplyRecord>, BTreeMap<String, NodeOutcome>), ClusterError> {
        let mut outcomes = BTreeMap::new();
        let mut mine = None;
        for c in chosen {
            let outcome = if c.name == self.me() {
                let rec = self.apply_here(actor, tenant).await?;
                let o = NodeOutcome::of(&rec);
                mine = Some(rec);
                o
            } else if !c.alive {
                unreachable(&c.name)
            } else {
                self.ask(batch, &[c.name.as_str()], actor, tenant).await?;
                let mut got = self.wait(batch, &[c.name.as_str()]).await?;
                got.remove(&c.name)
                    .unwrap_or_else(|| timed_out(&c.name, self.timeout))
            };
            let stop = !outcome.status.succeeded();
            outcomes.insert(c.name.clone(), outcome);
            if stop {
                break;
            }
        }
        Ok((mine, outcomes))
    }

    /// This node's own apply; a failed one is an outcome, not an error.
    async fn apply_here(
        &self,
        actor: &Actor,
        tenant: Option<&TenantSlug>,
    ) -> Result<ApplyRecord, ClusterError> {
        match self.applier.apply(actor, Held::ByThisRequest, tenant).await {
            Ok(rec) => Ok(rec),
            Err(ApplyError::Failed(rec)) => Ok(*rec),
            Err(e) => Err(e.into()),
        }
    }

    async fn ask(
        &self,
        batch: i64,
        names: &[&str],
        actor: &Actor,
        tenant: Option<&TenantSlug>,
    ) -> Result<(), ClusterError> {
        let me = &self.applier.node().name;
        self.applier
            .store()
            .request_applies(
                batch,
                names,
                me,
                actor.as_str(),
                self.timeout,
                tenant.map(TenantSlug::as_str),
            )
            .await?;
        Ok(())
    }

    /// The outcomes of `names` in `batch`, waiting up to the node timeout; a node without
    /// one by then timed out. The database may be away meanwhile (a restart): the wait
    /// keeps reading until its end.
    async fn wait(
        &self,
        batch: i64,
        names: &[&str],
    ) -> Result<BTreeMap<String, NodeOutcome>, ClusterError> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let until = Instant::now() + self.timeout;
        let mut bumps = self.outcomes.clone();
        let mut listening = true;
        let mut got = BTreeMap::new();
        loop {
            match self.applier.store().outcomes(batch).await {
                Ok(found) => got = found,
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(error = %e, "cannot read the nodes' outcomes yet")
                }
                Err(e) => return Err(e.into()),
            }
            if names.iter().all(|n| got.contains_key(*n)) || Instant::now() >= until {
                break;
            }
            let next = (Instant::now() + POLL).min(until);
            tokio::select! {
                r = bumps.changed(), if listening => listening = r.is_ok(),
                _ = tokio::time::sleep_until(next) => {}
            }
        }
        Ok(names
            .iter()
            .map(|n| {
                let o = got.remove(*n).unwrap_or_else(|| timed_out(n, self.timeout));
                ((*n).to_owned(), o)
            })
            .collect())
    }

    /// The audit row of a request this node coordinated without applying itself.
    async fn coordinator_record(
        &self,
        actor: &Actor,
        tenant: Option<&TenantSlug>,
    ) -> Result<ApplyRecord, ClusterError> {
        let mut rec = self
            .applier
            .store()
            .start_apply(
                actor,
                false,
                self.me(),
                None,
                tenant.map(TenantSlug::as_str),
            )
            .await?;
        rec.reload.output = "this node did not apply: it asked the others".into();
        Ok(rec)
    }

    /// Every node with its pending changes (by its own rendering settings) and its last
    /// apply.
    pub async fn nodes(&self) -> Result<Vec<NodeState>, StoreError> {
        let store = self.applier.store();
        let (rows, applied, users) =
            tokio::try_join!(store.nodes(), store.applied_by_node(), store.snapshot())?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            let last_apply = store.list_applies(&row.name, 1, None).await?.pop();
            let current = self.applier.fingerprints_for(&users, &row.policy);
            let empty = BTreeMap::new();
            let theirs = applied.get(&row.name).unwrap_or(&empty);
            let changes = crate::record::Changes::between(&current, theirs);
            views.push(NodeState {
                row,
                changes,
                last_apply,
            });
        }
        Ok(views)
    }
}

fn unreachable(node: &str) -> NodeOutcome {
    NodeOutcome::failed(
        node,
        FailureCode::NodeUnreachable,
        format!(
            "not alive (no heartbeat within {} s): nothing was asked of it; it stays \
             pending until the next apply",
            nodes::ALIVE_WITHIN.as_secs()
        ),
    )
}

fn timed_out(node: &str, timeout: Duration) -> NodeOutcome {
    NodeOutcome::failed(
        node,
        FailureCode::NodeTimeout,
        format!(
            "no outcome recorded within {} ms (PORTAL_NODE_TIMEOUT_MS); the node's own \
             audit log (GET /applies?node={node}) says how its apply ended",
            timeout.as_millis()
        ),
    )
}

/// The LISTEN connection: bumps the returned counter on every announced outcome, and
/// wakes `requests` when this node is asked (or the connection comes back: a request may
/// have been missed meanwhile). Reconnects with backoff until `shutdown`.
pub fn listen(
    applier: &Applier,
    requests: Arc<Notify>,
    mut shutdown: Shutdown,
) -> watch::Receiver<u64> {
    let (bump, outcomes) = watch::channel(0u64);
    let store = applier.store().clone();
    let me = applier.node().name.to_string();
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        loop {
            let session = async {
                let (client, mut rx) = store.listen(&[APPLY_CHANNEL, APPLIED_CHANNEL]).await?;
                backoff.reset();
                bump.send_modify(|n| *n += 1);
                requests.notify_one();
                loop {
                    tokio::select! {
                        n = rx.recv() => match n {
                            Some(n) if n.channel() == APPLIED_CHANNEL => bump.send_modify(|c| *c += 1),
                            Some(n) if n.payload() == me => requests.notify_one(),
                            Some(_) => {}
                            None => return Err(StoreError::Unavailable("the LISTEN connection closed".into())),
                        },
                        // A connection the server lost without a word: find out.
                        _ = tokio::time::sleep(HEARTBEAT) => {
                            tokio::time::timeout(HEARTBEAT, client.simple_query(""))
                                .await
                                .map_err(|_| StoreError::Unavailable("the LISTEN connection stalled".into()))??;
                        }
                    }
                }
            };
            tokio::select! {
                r = session => {
                    let e: StoreError = match r { Err(e) => e, Ok(()) => continue };
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                }
                _ = shutdown.wait() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.pause()) => {}
                _ = shutdown.wait() => return,
            }
        }
    });
    outcomes
}

/// What a node's heartbeat reports of its Asterisk: the AMI state and the registrations.
pub type Report = Box<dyn Fn() -> (String, Summary) + Send + Sync>;

/// The node's own task: a heartbeat every [`HEARTBEAT`] and the requests left for it,
/// each run as a single-node apply whose outcome is recorded in its request row. Stops
/// at `shutdown` (a claimed apply holds the drain gate and ends first), marking the node
/// not alive.
pub async fn run_node(
    applier: Applier,
    requests: Arc<Notify>,
    report: Report,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    let store = applier.store().clone();
    let me = applier.node().name.clone();
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (ami, summary) = report();
                let summary = serde_json::to_value(summary).unwrap_or(Value::Null);
                if let Err(e) = store.heartbeat(&me, &ami, &summary).await {
                    tracing::warn!(error = %e, "heartbeat not written");
                }
                match store.heartbeat_ages().await {
                    Ok(ages) => metrics.node_ages(ages),
                    Err(e) => tracing::debug!(error = %e, "heartbeat ages not read"),
                }
            }
            _ = requests.notified() => {}
            _ = shutdown.wait() => break,
        }
        match store.claim_requests(&me).await {
            Ok(claimed) => {
                for c in claimed {
                    tokio::spawn(serve_request(applier.clone(), c));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the apply requests"),
        }
    }
    if let Err(e) = store.node_stopped(&me).await {
        tracing::warn!(error = %e, "cannot mark this node stopped");
    }
}

/// Runs one request as a single-node apply and records its outcome, retrying while the
/// database is away.
async fn serve_request(applier: Applier, claimed: Claimed) {
    let me = applier.node().name.to_string();
    let actor = Actor::from_stored(&claimed.actor);
    tracing::info!(batch = claimed.batch, by = %claimed.requested_by, "applying at another node's request");
    let held = Held::By(claimed.requested_by.clone());
    // The slug was a tenant's when asked; one deleted since has nothing left to apply.
    let tenant = claimed.tenant.clone().map(TenantSlug::from_stored);
    let outcome = match applier.apply(&actor, held, tenant.as_ref()).await {
        Ok(rec) => NodeOutcome::of(&rec),
        Err(ApplyError::Failed(rec)) => NodeOutcome::of(&rec),
        Err(ApplyError::InProgress) => NodeOutcome::failed(
            &me,
            FailureCode::ApplyInProgress,
            "another apply is running on this node",
        ),
        Err(ApplyError::Store(e)) => {
            NodeOutcome::failed(&me, FailureCode::DatabaseUnavailable, e.to_string())
        }
        Err(e @ ApplyError::Panicked(_)) => {
            NodeOutcome::failed(&me, FailureCode::Internal, e.to_string())
        }
    };
    if let Err(e) = super::persist(|| applier.store().record_outcome(&claimed, &outcome)).await {
        tracing::error!(error = %e, "this node's outcome was not recorded");
    }
}
