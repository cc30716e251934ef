//! The running service: shared state, start-up, and explicit shutdown.
//!
//! [`start`] migrates the database, marks applies a crash interrupted, binds HTTP and
//! FastAGI and returns a [`Running`] handle; tests call it with port 0. Shutdown is
//! explicit: stop accepting, let in-flight requests and a running apply finish.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, RwLock};
use tokio::task::JoinHandle;

use crate::apply::{Applier, ApplyError};
use crate::asterisk::{ami, probe::Probes};
use crate::config::{Config, ReloadMode, Secret};
use crate::shutdown::Shutdown;
use crate::store::{self, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr} ({var}): {source}")]
    Bind {
        var: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct App {
    pub config: Config,
    pub token: Secret,
    pub store: Store,
    pub applier: Applier,
    agi_up: Arc<AtomicBool>,
    /// Every running apply holds a read guard; shutdown takes the write side to wait.
    apply_gate: Arc<RwLock<()>>,
}

impl App {
    /// Runs an apply in its own task, so that a client hanging up cannot cancel it
    /// halfway through (between writing the files and reloading them).
    pub async fn run_apply(&self, dry_run: bool) -> Result<crate::store::ApplyRow, ApplyError> {
        let guard = self.apply_gate.clone().read_owned().await;
        let applier = self.applier.clone();
        let task = tokio::spawn(async move {
            let result = applier.run(dry_run).await;
            drop(guard);
            result
        });
        task.await.unwrap_or_else(|e| {
            Err(ApplyError::Store(StoreError::Unavailable(format!(
                "apply task failed: {e}"
            ))))
        })
    }

    pub async fn ami_status(&self) -> String {
        let a = &self.config.asterisk;
        match a.reload {
            ReloadMode::None => "disabled (PORTAL_RELOAD=none)".into(),
            ReloadMode::Cli => "disabled (PORTAL_RELOAD=cli)".into(),
            ReloadMode::Ami => {
                match ami::Client::connect(
                    a.ami_addr,
                    &a.ami_username,
                    &a.ami_secret.0,
                    Duration::from_secs(2),
                )
                .await
                {
                    Ok(c) => {
                        c.logoff().await;
                        "ok".into()
                    }
                    Err(e) => e.to_string(),
                }
            }
        }
    }

    pub fn agi_status(&self) -> String {
        if self.agi_up.load(Ordering::Relaxed) {
            "ok".into()
        } else {
            "not listening".into()
        }
    }
}

/// Handle on a started service.
pub struct Running {
    pub http_addr: SocketAddr,
    pub agi_addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, then waits for in-flight requests and any running apply.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(120), self.app.apply_gate.write()).await;
    }
}

async fn bind(var: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { var, addr, source })
}

/// Connects, migrates, recovers, binds and serves.
pub async fn start(mut config: Config) -> Result<Running, StartError> {
    let token = config.require_token()?.clone();
    let store = Store::connect(config.database.0.clone()).await?;
    let ran = store::migrate(&store).await?;
    if ran > 0 {
        tracing::info!(migrations = ran, "database migrated");
    }
    let interrupted = store.recover_interrupted().await?;
    if interrupted > 0 {
        tracing::warn!(count = interrupted, "marked applies interrupted by a crash");
    }

    let http = bind("PORTAL_LISTEN", config.listen).await?;
    let agi = bind("PORTAL_AGI_LISTEN", config.asterisk.agi_addr).await?;
    let http_addr = http.local_addr().map_err(|source| StartError::Bind {
        var: "PORTAL_LISTEN",
        addr: config.listen,
        source,
    })?;
    let agi_addr = agi.local_addr().map_err(|source| StartError::Bind {
        var: "PORTAL_AGI_LISTEN",
        addr: config.asterisk.agi_addr,
        source,
    })?;
    // With port 0 the dialplan must name the port actually bound.
    config.asterisk.agi_addr = agi_addr;

    let probes = Arc::new(Probes::default());
    let applier = Applier::new(store.clone(), config.asterisk.clone(), probes.clone());
    let agi_up = Arc::new(AtomicBool::new(true));
    let app = Arc::new(App {
        config,
        token,
        store,
        applier,
        agi_up: agi_up.clone(),
        apply_gate: Arc::new(RwLock::new(())),
    });
    let (tx, rx) = Shutdown::new();
    let agi_rx = rx.clone();
    let tasks = vec![
        tokio::spawn(crate::http::serve(http, app.clone(), rx)),
        tokio::spawn(async move {
            crate::asterisk::agi::serve(agi, probes, agi_rx).await;
            agi_up.store(false, Ordering::Relaxed);
        }),
    ];
    tracing::info!(%http_addr, %agi_addr, "pbx-portal serving");
    Ok(Running {
        http_addr,
        agi_addr,
        app,
        shutdown: tx,
        tasks,
    })
}
