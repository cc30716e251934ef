//! The apply pipeline on this node: database → rendered files → Asterisk, all or nothing.
//! ([`cluster`] runs it on several nodes.)
//!
//! Serialised across processes by the node's transaction-level advisory lock (it cannot
//! outlive the apply), held through the store's handle ([`crate::store::ApplyLock`]): what
//! is read and saved under the lock goes through it. Audited from its first moment: the `running` row is committed before any
//! file is touched, so a crash leaves a row that the next start marks `interrupted`.
//! Under the lock the apply reads as its steps — read → render → write → reload → probe
//! → record — each returning `Result<_, ApplyFailure>`; the files are owned by one guard
//! ([`written::Written`]) that restores them when the reload or the probe fails.
//!
//! Every apply runs in its own task, so a client that hangs up cannot stop it between
//! writing the files and reloading them, and shutdown waits for it ([`Applier::drain`]).

pub mod cluster;
mod written;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::asterisk::contacts::Line;
use crate::asterisk::event_link::Registrations;
use crate::asterisk::probe::{Expectation, Object, Probes};
use crate::asterisk::reload::{Generation, Link, ReloadFailure, Via};
use crate::asterisk::render::{self, EndpointOptions, Rendered};
use crate::auth::Actor;
use crate::backoff::Backoff;
use crate::config::{AsteriskConfig, EndpointPolicy, ReloadMode};
use crate::domain::TenantSlug;
use crate::events::{Audience, Hub};
use crate::metrics::Metrics;
use crate::record::{
    AppliedState, ApplyRecord, ApplyStatus, Changes, FailureCode, Fingerprints, FullProofReason,
    Health, HealthStatus, NodeOutcome, Proof, ProofScope, Reload, ReloadMethod,
};
use crate::store::nodes::Node;
use crate::store::{ApplyLockKind, Snapshot, Store, StoreError};
use written::{Current, Written};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("another apply is running")]
    InProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The apply ran and failed; the record says how (its `error.code`).
    #[error("apply failed")]
    Failed(Box<ApplyRecord>),
    /// The apply task panicked (a bug); its audit row is marked interrupted.
    #[error("the apply task failed: {0}")]
    Panicked(String),
}

/// Why a step stopped the apply: the record's `error`, and whether the previous files
/// are back in place.
#[derive(Debug)]
struct ApplyFailure {
    code: FailureCode,
    message: String,
    rolled_back: bool,
}

impl ApplyFailure {
    fn new(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            rolled_back: false,
        }
    }
}

impl From<StoreError> for ApplyFailure {
    fn from(e: StoreError) -> Self {
        Self::new(FailureCode::DatabaseUnavailable, e.to_string())
    }
}

/// What `GET /apply/pending` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pending {
    pub pending: bool,
    #[serde(flatten)]
    pub changes: Changes,
}

/// Runs applies. Cheap to clone; clones share the drain gate.
#[derive(Clone)]
pub struct Applier {
    store: Store,
    cfg: AsteriskConfig,
    probes: Arc<Probes>,
    /// Every running apply holds a read guard; [`Applier::drain`] takes the write side.
    gate: Arc<RwLock<()>>,
    /// Told what is applied after each apply, and to take a fresh snapshot.
    registrations: Arc<Registrations>,
    /// Where each apply's record goes when it ends (`GET /events`).
    hub: Hub,
    /// Counts applies, reloads and probes (`GET /metrics`).
    metrics: Arc<Metrics>,
    /// The node this applier writes and reloads (its lock, state and audit log).
    node: Node,
    /// What this process's last apply left on this node: see [`Known`].
    known: Arc<Mutex<Known>>,
}

/// What the last apply of this process saved and proved on its node. It spares the next
/// apply reading back the state it saved (while the node's applied hash is still its own)
/// and visiting the extensions it proved (ARCHITECTURE.md, "What the probe proves").
#[derive(Debug, Clone, Default)]
struct Known {
    /// The applied state it saved.
    applied: Option<AppliedState>,
    /// Whether it proved that state live (false too once files are written again).
    proven: bool,
    /// Asterisk's generation after that proof, when Asterisk said it.
    generation: Option<Generation>,
}

/// What a successful apply hands to its record: the fingerprints to save, whether they
/// were proven live, and in which generation.
struct Applied {
    fingerprints: Fingerprints,
    proven: bool,
    generation: Option<Generation>,
}

/// Who holds this node's coordination lock while it applies.
#[derive(Debug, Clone)]
pub enum Held {
    /// Nobody else: the apply takes it with its own lock (this node alone).
    Alone,
    /// The request that chose several nodes, on this node.
    ByThisRequest,
    /// The node named, which asked this one.
    By(String),
}

impl Held {
    fn requested_by(&self) -> Option<&str> {
        match self {
            Self::By(node) => Some(node),
            Self::Alone | Self::ByThisRequest => None,
        }
    }
}

/// How long an apply that has finished keeps trying to record its outcome while the
/// database is away (a restart): the files are in place, the record must follow.
const RECORD_PATIENCE: Duration = Duration::from_secs(120);

impl Applier {
    /// `cfg.agi_addr` must be the address the probe server bound.
    pub fn new(store: Store, cfg: AsteriskConfig, probes: Arc<Probes>, node: Node) -> Self {
        Self {
            node,
            store,
            cfg,
            probes,
            gate: Arc::default(),
            registrations: Arc::default(),
            hub: Hub::default(),
            metrics: Arc::default(),
            known: Arc::default(),
        }
    }

    /// Connects the applier to the live parts of a running service.
    pub fn with_live(
        self,
        registrations: Arc<Registrations>,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            registrations,
            hub,
            metrics,
            ..self
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The fingerprints of `users` as a node with `settings` renders them.
    pub fn fingerprints_for(&self, users: &Snapshot, policy: &EndpointPolicy) -> Fingerprints {
        render::fingerprints(
            users,
            &render::Settings {
                policy,
                agi_addr: self.cfg.agi_addr,
            },
        )
    }

    fn settings(&self) -> render::Settings<'_> {
        render::Settings {
            policy: &self.cfg.policy,
            agi_addr: self.cfg.agi_addr,
        }
    }

    /// The database against the last applied state.
    /// What an apply would change: every tenant's (`None`) or one tenant's alone.
    pub async fn pending(&self, tenant: Option<&TenantSlug>) -> Result<Pending, StoreError> {
        let (_, changes) = self.unapplied(tenant).await?;
        Ok(Pending {
            pending: !changes.is_empty(),
            changes,
        })
    }

    /// How many extensions the database holds, and how they differ from the applied state.
    /// `tenant`: that tenant's changes only.
    async fn unapplied(&self, tenant: Option<&TenantSlug>) -> Result<(usize, Changes), StoreError> {
        let (snap, applied) = self
            .store
            .snapshot_and_applied(self.node.name.as_str())
            .await?;
        let current = render::fingerprints(&snap, &self.settings());
        Ok((
            snap.len(),
            scoped_changes(&current, &applied.fingerprints, tenant),
        ))
    }

    /// Records what an apply would change, touching neither files nor Asterisk.
    /// `tenant`: that tenant's changes only.
    pub async fn dry_run(
        &self,
        actor: &Actor,
        tenant: Option<&TenantSlug>,
    ) -> Result<ApplyRecord, ApplyError> {
        let actor = actor.clone();
        let tenant = tenant.cloned();
        self.detached(|a| async move {
            let clock = Instant::now();
            let (endpoints, changes) = a.unapplied(tenant.as_ref()).await?;
            let mut rec = a.start(&actor, true, None, tenant.as_ref()).await?;
            rec.status = ApplyStatus::DryRun;
            rec.endpoints = endpoints as i32;
            rec.changes = changes;
            rec.finish(OffsetDateTime::now_utc(), clock.elapsed());
            rec.nodes = vec![NodeOutcome::of(&rec)];
            a.store.finish_apply(&rec).await?;
            Ok(rec)
        })
        .await
    }

    /// Runs one apply on this node to the end and returns its record; a failed apply is
    /// `ApplyError::Failed` with its record. `lock` says how this node is held meanwhile.
    /// `tenant`: only that tenant's changes are applied (its two files written, its
    /// changes probed and recorded); every other tenant's stay pending.
    pub async fn apply(
        &self,
        actor: &Actor,
        lock: Held,
        tenant: Option<&TenantSlug>,
    ) -> Result<ApplyRecord, ApplyError> {
        let actor = actor.clone();
        let tenant = tenant.cloned();
        self.detached(|a| async move { a.apply_locked(&actor, lock, tenant.as_ref()).await })
            .await
    }

    /// Opens this node's audit row.
    async fn start(
        &self,
        actor: &Actor,
        dry_run: bool,
        requested_by: Option<&str>,
        tenant: Option<&TenantSlug>,
    ) -> Result<ApplyRecord, StoreError> {
        self.store
            .start_apply(
                actor,
                dry_run,
                self.node.name.as_str(),
                requested_by,
                tenant.map(TenantSlug::as_str),
            )
            .await
    }

    /// Waits (up to `limit`) until no apply is running; an apply asked for meanwhile
    /// waits for the drain to end.
    pub async fn drain(&self, limit: Duration) {
        if tokio::time::timeout(limit, self.gate.write())
            .await
            .is_err()
        {
            tracing::warn!("an apply was still running after {limit:?}");
        }
    }

    /// Runs `work` in its own task, holding the drain gate.
    async fn detached<F, Fut>(&self, work: F) -> Result<ApplyRecord, ApplyError>
    where
        F: FnOnce(Applier) -> Fut,
        Fut: Future<Output = Result<ApplyRecord, ApplyError>> + Send + 'static,
    {
        let started = Instant::now();
        let guard = self.gate.clone().read_owned().await;
        let fut = work(self.clone());
        // The task keeps the request's span: its log lines say which request started it.
        let task = async move {
            let result = fut.await;
            drop(guard);
            result
        };
        let result = join(tokio::spawn(task.in_current_span())).await;
        let ended = match &result {
            Ok(rec) => Some(rec),
            Err(ApplyError::Failed(rec)) => Some(&**rec),
            Err(_) => None,
        };
        if let Some(rec) = ended {
            self.metrics
                .apply_finished(rec.status, rec.failure(), started.elapsed());
            publish_apply(&self.hub, rec);
        }
        if let Err(ApplyError::Panicked(_)) = &result {
            // Its transaction ended with the task, so the lock is free again: record it.
            match self.store.recover_interrupted(&self.node).await {
                Ok(n) => self.metrics.applies_interrupted(n),
                Err(e) => tracing::error!(error = %e, "cannot mark the failed apply interrupted"),
            }
        }
        result
    }

    async fn apply_locked(
        &self,
        actor: &Actor,
        lock: Held,
        tenant: Option<&TenantSlug>,
    ) -> Result<ApplyRecord, ApplyError> {
        let clock = Instant::now();
        let mut conn = self.store.lock_conn().await?;
        let kind = match lock {
            Held::Alone => ApplyLockKind::Alone,
            Held::ByThisRequest | Held::By(_) => ApplyLockKind::Execute,
        };
        let Some(locked) = conn.try_apply_lock(&self.node, kind).await? else {
            return Err(ApplyError::InProgress);
        };
        let requested_by = lock.requested_by();
        // Holding the lock, no apply runs on this node: a `running` row is a crashed one.
        let crashed = locked.mark_interrupted().await?;
        self.metrics.applies_interrupted(crashed);
        // The running row commits on its own connection while the lock's reads what to
        // render: both are done before any file is touched.
        let known = self.known();
        let (started, read) = tokio::join!(
            self.start(actor, false, requested_by, tenant),
            locked.read(known.applied.as_ref(), tenant.map(TenantSlug::as_str))
        );
        let mut rec = started?;
        tracing::info!(apply = rec.id, "apply started");

        let outcome = match read {
            Ok(state) => self.steps(state, known, tenant, &mut rec).await,
            Err(e) => Err(e.into()),
        };
        rec.finish(OffsetDateTime::now_utc(), clock.elapsed());
        let applied = match outcome {
            Ok(Some(applied)) => Some(applied),
            Ok(None) => None,
            Err(failure) => {
                rec.rolled_back = failure.rolled_back;
                rec.fail(failure.code, failure.message);
                None
            }
        };
        rec.nodes = vec![NodeOutcome::of(&rec)];
        match applied {
            Some(Applied {
                fingerprints,
                proven,
                generation,
            }) => {
                let first = async {
                    locked.save(&rec, &fingerprints).await?;
                    locked.commit().await
                }
                .await;
                // The registration view shows every tenant's applied lines: what this
                // apply added and removed (a changed line stays applied).
                let lines = |i: usize| -> Vec<Line> {
                    rec.changes
                        .by_tenant()
                        .flat_map(|(t, lists)| lists[i].iter().map(move |n| Line::new(t, *n)))
                        .collect()
                };
                self.registrations.update_applied(lines(1), lines(0));
                match first {
                    Ok(()) => {
                        *self.lock_known() = Known {
                            applied: Some(AppliedState {
                                fingerprints,
                                content_hash: rec.content_hash.clone(),
                            }),
                            proven,
                            generation,
                        }
                    }
                    Err(e) => {
                        // Whether the state is saved is the database's word now.
                        *self.lock_known() = Known::default();
                        self.record_later(e, &rec, Some(&fingerprints)).await?;
                    }
                }
            }
            None => {
                locked.release().await;
                if let Err(e) = self.store.finish_apply(&rec).await {
                    self.record_later(e, &rec, None).await?;
                }
            }
        }
        tracing::info!(apply = rec.id, status = %rec.status, ms = rec.duration_ms, "apply finished");
        // Whatever happened, Asterisk may hold other contacts now: a removed endpoint
        // leaves its contact behind without an event (F-REG-24).
        self.registrations.resync();
        if rec.status == ApplyStatus::Failed {
            return Err(ApplyError::Failed(Box::new(rec)));
        }
        Ok(rec)
    }

    /// The database went away after the apply had done its work on this host (a restart,
    /// a failover): keeps recording the outcome until it is back, for [`RECORD_PATIENCE`].
    /// The applied state is saved again only under the node's lock (the lock held so far
    /// went with the connection); without it the next apply finds the difference.
    async fn record_later(
        &self,
        first: StoreError,
        rec: &ApplyRecord,
        applied: Option<&Fingerprints>,
    ) -> Result<(), StoreError> {
        if !first.is_unavailable() {
            return Err(first);
        }
        tracing::warn!(apply = rec.id, error = %first, "cannot record the apply yet: retrying");
        persist(|| self.store.record_finished(&self.node, rec, applied)).await?;
        tracing::info!(
            apply = rec.id,
            "apply recorded after the database came back"
        );
        Ok(())
    }

    /// The steps under the lock, from what it read. Fills `rec`; returns what to record
    /// when new files were applied, `None` when nothing changed.
    async fn steps(
        &self,
        (snap, applied): (Snapshot, AppliedState),
        known: Known,
        tenant: Option<&TenantSlug>,
        rec: &mut ApplyRecord,
    ) -> Result<Option<Applied>, ApplyFailure> {
        // A scoped apply read and renders its tenant's users alone (its files depend on
        // nothing else): `endpoints` counts them.
        rec.endpoints = snap.len() as i32;
        let mut rendered = self.render(&snap)?;
        rec.changes = scoped_changes(&rendered.fingerprints, &applied.fingerprints, tenant);
        let AppliedState {
            fingerprints: applied_prints,
            content_hash: applied_hash,
        } = applied;
        // A scoped apply's hash names the applied state it leaves (see `scoped_hash`).
        rec.content_hash = Some(match tenant {
            None => rendered.content_hash.clone(),
            Some(t) => scoped_hash(applied_hash.as_deref(), &rendered, t.as_str()),
        });
        // Not read again below: moved, not copied (10,000 extensions are 10,000 nodes).
        let fingerprints = match tenant {
            None => std::mem::take(&mut rendered.fingerprints),
            Some(t) => merged(applied_prints, &mut rendered.fingerprints, t.as_str()),
        };
        let marker = self.marker(&rendered, tenant)?;

        let Some(written) = self.write(&rendered, applied_hash.as_deref(), tenant, &rec.changes)?
        else {
            rec.status = ApplyStatus::Unchanged;
            return Ok(None);
        };
        // From here Asterisk may hold something else than the last proof saw.
        self.lock_known().proven = false;
        let reload_started = Instant::now();
        let Some(mut link) = Link::open(&self.cfg).await else {
            self.metrics.reload(ReloadMethod::None, None);
            rec.reload = Reload::none("PORTAL_RELOAD=none: files written, Asterisk not reloaded");
            written.keep();
            rec.status = ApplyStatus::Applied;
            return Ok(Some(Applied {
                fingerprints,
                proven: false,
                generation: None,
            }));
        };
        let scope = match self.cfg.health_check {
            true => Some(
                self.proof_scope(&mut link, known, applied_hash.as_deref())
                    .await,
            ),
            false => None,
        };
        let mut unproven_for_next = false;
        let reloaded = self.reload(&mut link, rec).await;
        self.metrics
            .reload(rec.reload.method, Some(reload_started.elapsed()));
        let live = match (reloaded, scope) {
            (Ok(()), Some(scope)) => {
                let whole = ProbeOf {
                    rendered: &rendered,
                    tenant,
                    marker,
                };
                let partial = tenant.is_some() && scope.is_err();
                let probed = self.probe(&mut link, &snap, whole, scope, rec).await;
                // A scoped apply that visited every extension of its tenant only saw that
                // tenant's: it is no proof for the next apply to build on.
                if partial {
                    self.lock_known().proven = false;
                    unproven_for_next = true;
                }
                probed
            }
            (Ok(()), None) => {
                rec.health = Health::skipped();
                Ok(())
            }
            (Err(f), _) => Err(f),
        };
        let result = match live {
            Ok(()) => {
                // The generation the next apply compares with: read after the reload.
                let proven = rec.health.status == HealthStatus::Ok && !unproven_for_next;
                let generation = match proven {
                    true => link.generation().await,
                    false => None,
                };
                written.keep();
                rec.status = ApplyStatus::Applied;
                Ok(Some(Applied {
                    fingerprints,
                    proven,
                    generation,
                }))
            }
            Err(mut failure) => {
                let back = written.roll_back(&mut link).await;
                failure.rolled_back = back.restored;
                failure.message = format!("{}; {}", failure.message, back.note);
                Err(failure)
            }
        };
        link.close().await;
        result
    }

    /// Renders the files; a rendering that does not read back as meant is never written.
    fn render(&self, snap: &Snapshot) -> Result<Rendered, ApplyFailure> {
        render::render_checked(snap, &self.settings()).map_err(|e| {
            ApplyFailure::new(
                FailureCode::WriteFailed,
                format!("refused to write the files: {e}"),
            )
        })
    }

    /// Writes the files, or `None` when both the disk and the last apply already hold them.
    /// `tenant`: that tenant's two files only; they need no writing when the disk holds
    /// them and the tenant has no change to apply (`changes` is that tenant's).
    fn write(
        &self,
        rendered: &Rendered,
        applied_hash: Option<&str>,
        tenant: Option<&TenantSlug>,
        changes: &Changes,
    ) -> Result<Option<Written>, ApplyFailure> {
        let current = match tenant {
            None => Current::load(&self.cfg, rendered),
            Some(t) => Current::load_tenant(&self.cfg, rendered, t.as_str()),
        }
        .map_err(|e| {
            ApplyFailure::new(
                FailureCode::WriteFailed,
                format!("cannot read the current files: {e}"),
            )
        })?;
        let unchanged = match tenant {
            None => applied_hash == Some(rendered.content_hash.as_str()),
            Some(_) => changes.is_empty(),
        };
        if current.hold(rendered) && unchanged {
            return Ok(None);
        }
        current.write(rendered).map(Some).map_err(|f| ApplyFailure {
            code: FailureCode::WriteFailed,
            message: f.message,
            rolled_back: f.restored,
        })
    }

    /// The marker the probe call must carry: the rendered one, unless a scoped apply of
    /// another tenant leaves the default routing file as it is on disk (its pending
    /// changes stay pending), whose marker is then the one written there.
    fn marker(
        &self,
        rendered: &Rendered,
        tenant: Option<&TenantSlug>,
    ) -> Result<String, ApplyFailure> {
        if tenant.is_none_or(TenantSlug::is_default) {
            return Ok(rendered.marker().to_owned());
        }
        let path = self
            .cfg
            .dialplan_dir
            .join(render::routing_file(TenantSlug::DEFAULT));
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(render::marker_in(&text)
                .unwrap_or(rendered.marker())
                .to_owned()),
            // No default routing file yet: no probe context Asterisk could call, so no
            // proof possible. Refused before any file is touched, when a probe would run.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match self.cfg.health_check && self.cfg.reload != ReloadMode::None {
                    true => Err(ApplyFailure::new(
                        FailureCode::HealthCheckFailed,
                        format!(
                            "{} (the default tenant's routing file, which holds the health \
                             probe's context) was never applied: apply every tenant once \
                             (without a tenant) first",
                            path.display()
                        ),
                    )),
                    false => Ok(rendered.marker().to_owned()),
                }
            }
            Err(e) => Err(ApplyFailure::new(
                FailureCode::WriteFailed,
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }

    /// Reloads PJSIP and the dialplan; records how.
    async fn reload(&self, link: &mut Link, rec: &mut ApplyRecord) -> Result<(), ApplyFailure> {
        match link.reload().await {
            Ok(output) => {
                rec.reload = Reload {
                    method: method(link.via()),
                    output,
                };
                Ok(())
            }
            Err(ReloadFailure {
                via,
                output,
                message,
            }) => {
                rec.reload = Reload {
                    method: method(via),
                    output,
                };
                Err(ApplyFailure::new(FailureCode::ReloadFailed, message))
            }
        }
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, Known> {
        // One assignment per use: a holder that panicked left it consistent.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn known(&self) -> Known {
        self.lock_known().clone()
    }

    /// Whether the probe may visit only what this apply changes: when this process proved
    /// the applied state the database holds, and Asterisk has neither started nor
    /// reloaded a module since (ARCHITECTURE.md, "What the probe proves"). Asked before
    /// the reload, which changes the generation.
    async fn proof_scope(
        &self,
        link: &mut Link,
        known: Known,
        applied_hash: Option<&str>,
    ) -> Result<(), FullProofReason> {
        let Some(saved) = known.applied.filter(|_| known.proven) else {
            return Err(FullProofReason::NoEarlierProof);
        };
        if applied_hash.is_none() || applied_hash != saved.content_hash.as_deref() {
            return Err(FullProofReason::AppliedElsewhere);
        }
        let Some(then) = known.generation else {
            return Err(FullProofReason::NoCoreStatus);
        };
        match link.generation().await {
            None => Err(FullProofReason::NoCoreStatus),
            Some(now) if now.started != then.started => Err(FullProofReason::AsteriskRestarted),
            Some(now) if now.reloaded != then.reloaded => Err(FullProofReason::ReloadedOutside),
            Some(_) => Ok(()),
        }
    }

    /// Proves that Asterisk holds what was written: every file whole, and one by one the
    /// extensions `scope` says (`Err`: every one, and why).
    async fn probe(
        &self,
        link: &mut Link,
        snap: &Snapshot,
        of: ProbeOf<'_>,
        scope: Result<(), FullProofReason>,
        rec: &mut ApplyRecord,
    ) -> Result<(), ApplyFailure> {
        let ProbeOf {
            rendered,
            tenant,
            marker,
        } = of;
        let ours = |slug: &str| tenant.is_none_or(|t| t.as_str() == slug);
        // Added and changed endpoints are read back option by option too.
        let touched: std::collections::HashSet<(&str, u32)> = rec.changes.touched().collect();
        let present: Vec<_> = snap
            .iter()
            .filter(|s| {
                (scope.is_err() && ours(s.tenant.as_str()))
                    || touched.contains(&(s.tenant.as_str(), s.extension.get()))
            })
            .map(|s| {
                let ext = s.extension.get();
                let options = touched
                    .contains(&(s.tenant.as_str(), ext))
                    .then(|| EndpointOptions::of(s, &self.cfg.policy));
                let object = Object {
                    name: crate::domain::sip_name(&s.tenant, s.extension),
                    context: render::context_of(s.tenant.as_str()),
                    number: ext,
                };
                (object, s.devices.get(), options)
            })
            .collect();
        let absent = rec
            .changes
            .removed_all()
            .map(|(tenant, number)| Object {
                name: render::object_name(tenant, number),
                context: render::context_of(tenant),
                number,
            })
            .collect();
        // A scoped apply proves its tenant's files only: the others are as they were.
        let files: Vec<_> = rendered
            .files
            .iter()
            .filter(|f| ours(f.tenant.as_str()))
            .collect();
        let expect = Expectation {
            unvisited: (snap.len() - present.len()) as u32,
            present,
            absent,
            marker,
            sentinels: files
                .iter()
                .map(|f| (f.endpoints_name(), f.sentinel.clone()))
                .collect(),
            dialplan_proofs: files
                .iter()
                .filter(|f| !f.tenant.is_default())
                .map(|f| (f.routing_name(), f.routing_proof.clone()))
                .collect(),
        };
        let cfg = &self.cfg;
        let probe_started = Instant::now();
        let verdict = self
            .probes
            .run(
                link,
                expect,
                cfg.health_timeout,
                &cfg.dialplan_dir,
                cfg.agi_addr,
            )
            .await;
        let ok = verdict.is_ok();
        self.metrics.probe(ok, probe_started.elapsed());
        rec.health = Health {
            status: if ok {
                HealthStatus::Ok
            } else {
                HealthStatus::Failed
            },
            checked: verdict.checked,
            missing: verdict.missing,
            proof: Some(Proof {
                scope: match scope {
                    Ok(()) => ProofScope::Changed,
                    Err(_) => ProofScope::All,
                },
                because: scope.err(),
                visited: verdict.visited,
                whole_files: verdict.whole_files,
                total: verdict.checked,
            }),
        };
        if ok {
            return Ok(());
        }
        Err(ApplyFailure::new(
            FailureCode::HealthCheckFailed,
            format!(
                "Asterisk does not hold what was applied: {} (Asterisk rejected or did not \
                 load them: its log says why)",
                rec.health.missing.join("; ")
            ),
        ))
    }
}

/// What the probe proves whole: the files of `tenant` (every tenant's when `None`), and
/// the marker the probe call carries.
struct ProbeOf<'a> {
    rendered: &'a Rendered,
    tenant: Option<&'a TenantSlug>,
    marker: String,
}

/// The changes `current` makes to `applied`; `tenant`: that tenant's only.
/// Publishes an ended apply on the event stream. An apply of one tenant is that tenant's
/// event (its record is what the tenant's own caller is answered). An apply of every
/// tenant goes whole to unbound streams, and to each tenant it changed as
/// [`TenantApply`](crate::record::TenantApply): a bound stream never reads another tenant's extensions.
fn publish_apply(hub: &Hub, rec: &ApplyRecord) {
    if let Some(tenant) = &rec.tenant {
        hub.publish(Audience::Tenant(tenant.clone()), "apply", rec);
        return;
    }
    hub.publish(Audience::Unbound, "apply", rec);
    for (slug, [added, removed, changed]) in rec.changes.by_tenant() {
        if added.is_empty() && removed.is_empty() && changed.is_empty() {
            continue;
        }
        hub.publish(
            Audience::Bound(slug.to_owned()),
            "apply",
            &rec.seen_by(slug),
        );
    }
}

fn scoped_changes(
    current: &Fingerprints,
    applied: &Fingerprints,
    tenant: Option<&TenantSlug>,
) -> Changes {
    match tenant {
        None => Changes::between(current, applied),
        Some(t) => Changes::between(&only(current, t.as_str()), &only(applied, t.as_str())),
    }
}

/// `prints` of one tenant.
fn only(prints: &Fingerprints, tenant: &str) -> Fingerprints {
    prints
        .get(tenant)
        .map(|f| Fingerprints::from([(tenant.to_owned(), f.clone())]))
        .unwrap_or_default()
}

/// The applied state after applying `tenant` of `rendered` to `applied`: that tenant's
/// fingerprints as rendered, every other tenant's as they were.
fn merged(mut applied: Fingerprints, rendered: &mut Fingerprints, tenant: &str) -> Fingerprints {
    match rendered.remove(tenant) {
        Some(f) => applied.insert(tenant.to_owned(), f),
        None => applied.remove(tenant),
    };
    applied
}

/// The node's applied hash after a scoped apply of `tenant`. It names the applied state
/// (not the bytes of every file, which no rendering holds: the other tenants' files are
/// the ones applied before): the previous state's hash, the tenant and its files as
/// written. Every apply that writes gives a new one, so what relies on the hash — the
/// [`Known`] cache and the proof's "nothing applied since" — stays sound; an unscoped
/// apply that follows finds it differs from its rendering and writes (ARCHITECTURE.md,
/// "Applying one tenant").
fn scoped_hash(previous: Option<&str>, rendered: &Rendered, tenant: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"tenant-apply\0");
    h.update(previous.unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(tenant.as_bytes());
    h.update(b"\0");
    if let Some(f) = rendered.files.iter().find(|f| f.tenant.as_str() == tenant) {
        h.update(f.endpoints.as_bytes());
        h.update(b"\0");
        h.update(f.routing.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `write` until it succeeds, while the database is unavailable, for at most
/// [`RECORD_PATIENCE`] (backing off from 200 ms to 2 s).
async fn persist<F, Fut>(mut write: F) -> Result<(), StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let give_up = Instant::now() + RECORD_PATIENCE;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    loop {
        match write().await {
            Err(e) if e.is_unavailable() && Instant::now() < give_up => {
                tracing::debug!(error = %e, "database unavailable: retrying");
                tokio::time::sleep(backoff.pause()).await;
            }
            other => return other,
        }
    }
}

fn method(via: Via) -> ReloadMethod {
    match via {
        Via::Ami => ReloadMethod::Ami,
        Via::Cli => ReloadMethod::Cli,
    }
}

/// Awaits an apply task; a panic becomes [`ApplyError::Panicked`] (logged with its message,
/// answered without it).
async fn join(
    task: JoinHandle<Result<ApplyRecord, ApplyError>>,
) -> Result<ApplyRecord, ApplyError> {
    task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the apply task panicked");
        Err(ApplyError::Panicked(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::prints;

    #[test]
    fn a_scoped_apply_sees_and_records_its_tenant_alone() {
        let applied = prints(&[("default", 1000, 1), ("acme", 100, 1), ("beta", 100, 1)]);
        let current = prints(&[("default", 1000, 2), ("acme", 100, 2), ("acme", 101, 1)]);
        let acme = TenantSlug::parse("acme").unwrap();
        let c = scoped_changes(&current, &applied, Some(&acme));
        assert!(c.changed.is_empty() && c.removed.is_empty() && c.added.is_empty());
        assert_eq!(c.tenants.keys().collect::<Vec<_>>(), ["acme"]);
        assert_eq!(
            (
                c.tenants["acme"].added.clone(),
                c.tenants["acme"].changed.clone()
            ),
            (vec![101], vec![100])
        );
        // Every tenant: beta's removal and the default tenant's change too.
        let all = scoped_changes(&current, &applied, None);
        assert_eq!(
            (all.changed.clone(), all.tenants["beta"].removed.clone()),
            (vec![1000], vec![100])
        );

        // What is applied afterwards: acme as rendered, the others as they were.
        let after = merged(applied.clone(), &mut current.clone(), "acme");
        assert_eq!(after["default"], applied["default"]);
        assert_eq!(after["beta"], applied["beta"]);
        assert_eq!(after["acme"], current["acme"]);
        // Beta rendered without users: its entry goes.
        assert!(!merged(applied, &mut current.clone(), "beta").contains_key("beta"));
    }

    #[test]
    fn every_scoped_apply_names_a_new_applied_state() {
        let policy = EndpointPolicy {
            transports: crate::domain::Transports::new(vec![crate::domain::TransportId::udp()])
                .unwrap(),
            tls: Default::default(),
            nat: true,
            codecs: Default::default(),
            qualify_frequency: 60,
        };
        let settings = render::Settings {
            policy: &policy,
            agi_addr: "127.0.0.1:4573".parse().unwrap(),
        };
        let r = render::render_checked(&[], &settings).unwrap();
        let one = scoped_hash(Some("h0"), &r, "acme");
        assert_ne!(one, scoped_hash(Some("h0"), &r, "beta"));
        assert_ne!(one, scoped_hash(Some(&one), &r, "acme"));
        assert_ne!(one, scoped_hash(None, &r, "acme"));
        assert_eq!(one, scoped_hash(Some("h0"), &r, "acme"));
        assert_ne!(one, r.content_hash);
    }

    #[tokio::test]
    async fn a_panicking_apply_task_is_an_error_not_a_crash() {
        let task = tokio::spawn(async { panic!("boom") });
        assert!(matches!(join(task).await, Err(ApplyError::Panicked(m)) if m.contains("boom")));
    }
}
