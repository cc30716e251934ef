//! The apply pipeline: database → rendered files → Asterisk, all or nothing.
//!
//! Serialised across processes by a transaction-level advisory lock (it cannot outlive
//! the apply). Audited from its first moment: the `running` row is committed before any
//! file is touched, so a crash leaves a row that the next start marks `interrupted`.
//! Files are replaced atomically and restored when the reload or the health probe fails.

mod diff;

use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;

pub use diff::diff;

use crate::asterisk::files::Managed;
use crate::asterisk::probe::{Expectation, Probes};
use crate::asterisk::reload::Link;
use crate::asterisk::render::{
    self, ENDPOINTS_FILE, PROBE_CONTEXT, PROBE_EXTEN_PREFIX, ROUTING_FILE,
};
use crate::config::AsteriskConfig;
use crate::store::applies::{
    self, ApplyRow, ApplyStatus, Changes, ErrorBody, Health, HealthStatus, Reload, ReloadMethod,
};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("another apply is running")]
    InProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The apply ran and failed; the record says how (its `error.code`).
    #[error("apply failed")]
    Failed(Box<ApplyRow>),
}

/// What `GET /apply/pending` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pending {
    pub pending: bool,
    #[serde(flatten)]
    pub changes: Changes,
}

#[derive(Clone)]
pub struct Applier {
    store: Store,
    cfg: AsteriskConfig,
    probes: Arc<Probes>,
}

/// Marks the row failed with `code`; the pipeline returns it as `ApplyError::Failed`.
fn fail(row: &mut ApplyRow, code: &str, message: impl Into<String>) {
    row.status = ApplyStatus::Failed;
    row.error = Some(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
    });
}

impl Applier {
    pub fn new(store: Store, cfg: AsteriskConfig, probes: Arc<Probes>) -> Self {
        Self { store, cfg, probes }
    }

    fn settings(&self) -> render::Settings<'_> {
        render::Settings {
            transport: &self.cfg.transport,
            agi_addr: self.cfg.agi_addr,
        }
    }

    /// The database against the last applied state.
    pub async fn pending(&self) -> Result<Pending, StoreError> {
        let (_, changes) = self.unapplied().await?;
        Ok(Pending {
            pending: !changes.is_empty(),
            changes,
        })
    }

    /// How many extensions the database holds, and how they differ from the applied state.
    async fn unapplied(&self) -> Result<(usize, Changes), StoreError> {
        let (snap, applied) = self.store.snapshot_and_applied().await?;
        let current = render::fingerprints(&snap, &self.settings());
        Ok((snap.len(), diff(&current, &applied.fingerprints)))
    }

    /// Runs one apply (or a dry run) to the end and returns its record.
    pub async fn run(&self, dry_run: bool) -> Result<ApplyRow, ApplyError> {
        let clock = Instant::now();
        if dry_run {
            let (endpoints, changes) = self.unapplied().await?;
            let mut row = self.store.start_apply().await?;
            row.status = ApplyStatus::DryRun;
            row.endpoints = endpoints as i32;
            row.changes = changes;
            finish_times(&mut row, clock);
            self.store.finish_apply(&row).await?;
            return Ok(row);
        }

        let mut conn = self.store.conn().await?;
        let tx = conn.transaction().await.map_err(StoreError::from)?;
        if !applies::try_apply_lock(&tx).await? {
            return Err(ApplyError::InProgress);
        }
        // Holding the lock, no apply runs anywhere: a `running` row is a crashed one.
        applies::mark_interrupted(&*self.store.conn().await?).await?;
        let mut row = self.store.start_apply().await?;
        tracing::info!(apply = row.id, "apply started");

        let saved = self.locked(&tx, &mut row).await;
        finish_times(&mut row, clock);
        match saved {
            Some(fingerprints) => {
                applies::save_applied_state(&tx, &row.changes, &fingerprints).await?;
                applies::finish_apply(&tx, &row).await?;
                tx.commit().await.map_err(StoreError::from)?;
            }
            None => {
                drop(tx);
                self.store.finish_apply(&row).await?;
            }
        }
        tracing::info!(apply = row.id, status = ?row.status, ms = row.duration_ms, "apply finished");
        if row.status == ApplyStatus::Failed {
            return Err(ApplyError::Failed(Box::new(row)));
        }
        Ok(row)
    }

    /// The pipeline under the lock. Fills `row`; returns the fingerprints to record when
    /// the apply succeeded with new files.
    async fn locked(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        row: &mut ApplyRow,
    ) -> Option<std::collections::BTreeMap<u32, render::Fingerprint>> {
        let read = async {
            Ok::<_, StoreError>((
                applies::snapshot(tx).await?,
                applies::applied_state(tx).await?,
            ))
        };
        let (snap, applied) = match read.await {
            Ok(r) => r,
            Err(e) => {
                fail(row, "database_unavailable", e.to_string());
                return None;
            }
        };
        row.endpoints = snap.len() as i32;
        let rendered = match render::render_checked(&snap, &self.settings()) {
            Ok(r) => r,
            Err(e) => {
                fail(
                    row,
                    "write_failed",
                    format!("refused to write the files: {e}"),
                );
                return None;
            }
        };
        row.changes = diff(&rendered.fingerprints, &applied.fingerprints);
        row.content_hash = Some(rendered.content_hash.clone());

        let files = Managed::load(&self.cfg.pjsip_dir, ENDPOINTS_FILE)
            .and_then(|e| Ok((e, Managed::load(&self.cfg.dialplan_dir, ROUTING_FILE)?)));
        let (endpoints, routing) = match files {
            Ok(f) => f,
            Err(e) => {
                fail(
                    row,
                    "write_failed",
                    format!("cannot read the current files: {e}"),
                );
                return None;
            }
        };
        let on_disk = endpoints.before.as_deref() == Some(rendered.endpoints.as_bytes())
            && routing.before.as_deref() == Some(rendered.routing.as_bytes());
        if on_disk && applied.content_hash.as_deref() == Some(rendered.content_hash.as_str()) {
            row.status = ApplyStatus::Unchanged;
            return None;
        }

        if let Err(e) = endpoints.write(rendered.endpoints.as_bytes()) {
            fail(
                row,
                "write_failed",
                format!("cannot write {}: {e}", endpoints.path().display()),
            );
            return None;
        }
        if let Err(e) = routing.write(rendered.routing.as_bytes()) {
            let restored = endpoints.restore();
            row.rolled_back = restored.is_ok();
            fail(
                row,
                "write_failed",
                format!("cannot write {}: {e}", routing.path().display()),
            );
            return None;
        }

        let Some(mut link) = Link::open(&self.cfg).await else {
            row.reload = Reload {
                method: ReloadMethod::None,
                output: "PORTAL_RELOAD=none: files written, Asterisk not reloaded".into(),
            };
            row.health = Health::skipped();
            row.status = ApplyStatus::Applied;
            return Some(rendered.fingerprints);
        };
        match link.reload(&self.cfg).await {
            Ok(output) => {
                row.reload = Reload {
                    method: link.method(),
                    output,
                }
            }
            Err(f) => {
                row.reload = Reload {
                    method: f.method,
                    output: f.output,
                };
                let note = self.roll_back(&mut link, [&routing, &endpoints], row).await;
                fail(row, "reload_failed", format!("{}; {note}", f.message));
                link.close().await;
                return None;
            }
        }

        row.health = if self.cfg.health_check {
            let expect = Expectation {
                present: rendered.fingerprints.keys().copied().collect(),
                absent: row.changes.removed.clone(),
                marker: rendered.marker.clone(),
            };
            self.probe(&mut link, expect).await
        } else {
            Health::skipped()
        };
        if row.health.status == HealthStatus::Failed {
            let what = row.health.missing.join("; ");
            let note = self.roll_back(&mut link, [&routing, &endpoints], row).await;
            fail(
                row,
                "health_check_failed",
                format!(
                    "Asterisk does not hold what was applied: {what} (Asterisk rejected or did \
                     not load them: its log says why); {note}"
                ),
            );
            link.close().await;
            return None;
        }
        link.close().await;
        row.status = ApplyStatus::Applied;
        Some(rendered.fingerprints)
    }

    /// Restores the previous files and reloads them; says how that went.
    async fn roll_back(&self, link: &mut Link, files: [&Managed; 2], row: &mut ApplyRow) -> String {
        for f in files {
            if let Err(e) = f.restore() {
                return format!(
                    "ROLLBACK FAILED: cannot restore {}: {e}; the new files may still be in place",
                    f.path().display()
                );
            }
        }
        row.rolled_back = true;
        match link.reload(&self.cfg).await {
            Ok(_) => "the previous files were restored and reloaded".into(),
            Err(f) => format!(
                "the previous files were restored but reloading them failed: {}",
                f.message
            ),
        }
    }

    /// Originates the probe call and waits for its verdict.
    async fn probe(&self, link: &mut Link, expect: Expectation) -> Health {
        let checked = (expect.present.len() + expect.absent.len()) as u32;
        let failed = |why: String| Health {
            status: HealthStatus::Failed,
            checked,
            missing: vec![why],
        };
        let (token, verdict) = self.probes.register(expect);
        let channel = format!("Local/{PROBE_EXTEN_PREFIX}{token}@{PROBE_CONTEXT}");
        let limit = self.cfg.health_timeout;
        let wait_secs = limit.as_secs() + 2;
        if let Err(e) = link.originate_probe(&self.cfg, &channel, wait_secs).await {
            self.probes.cancel(&token);
            return failed(format!("could not start the probe call: {e}"));
        }
        match tokio::time::timeout(limit, verdict).await {
            Ok(Ok(health)) => health,
            Ok(Err(_)) | Err(_) => {
                self.probes.cancel(&token);
                failed(format!(
                    "no health probe call arrived within {} ms: check that extensions.conf has \
                     `#tryinclude {}/*.conf` and that Asterisk reaches the FastAGI server at {} \
                     (PORTAL_AGI_LISTEN)",
                    limit.as_millis(),
                    self.cfg.dialplan_dir.display(),
                    self.cfg.agi_addr
                ))
            }
        }
    }
}

fn finish_times(row: &mut ApplyRow, clock: Instant) {
    // Microseconds, as PostgreSQL stores them: the answer equals the audit row.
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now);
    row.finished_at = Some(now);
    row.duration_ms = Some(clock.elapsed().as_millis() as i64);
}
