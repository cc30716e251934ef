//! The composition root: start-up and explicit shutdown of a running service, and the
//! one path by which both `serve` and the `apply` command build what an apply needs
//! ([`prepare`], [`probe_and_applier`], [`cluster`]).
//!
//! [`start`] migrates the database, marks applies a crash interrupted, binds HTTP and
//! FastAGI and returns a [`Running`] handle; tests call it with port 0. Shutdown is
//! explicit and ordered: stop accepting HTTP, let in-flight requests finish, wait for a
//! running apply (which may still need its health probe), then stop FastAGI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::apply::cluster::{self, Cluster};
use crate::apply::Applier;
use crate::asterisk::contacts::Line;
use crate::asterisk::event_link::{self, Registrations};
use crate::asterisk::pjsip_conf;
use crate::asterisk::probe::ProbeServer;
use crate::config::{Config, ConfigError, ReloadMode};
use crate::events::Hub;
use crate::http::App;
use crate::https;
use crate::metrics::{self, Metrics};
use crate::shutdown::Shutdown;
use crate::store::nodes::Node;
use crate::store::{self, Store, StoreError};

/// How long shutdown waits for a running apply.
const APPLY_DRAIN: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The first connection failed: the line names DATABASE_URL and the reason.
    #[error(transparent)]
    Connect(#[from] store::ConnectError),
    #[error("database: {0}")]
    Store(StoreError),
    /// PORTAL_TLS_CERT or PORTAL_TLS_KEY cannot be used: the line names the file.
    #[error(transparent)]
    Tls(#[from] crate::https::TlsError),
    #[error("cannot listen on {addr} ({var}): {source}")]
    Bind {
        var: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl From<StoreError> for StartError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Connect(c) => Self::Connect(c),
            other => Self::Store(other),
        }
    }
}

/// Why [`prepare`] failed: the line names the variable or says what the database said.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PrepareError> for StartError {
    fn from(e: PrepareError) -> Self {
        match e {
            PrepareError::Config(e) => e.into(),
            PrepareError::Store(e) => e.into(),
        }
    }
}

/// Handle on a started service.
pub struct Running {
    pub http_addr: SocketAddr,
    pub agi_addr: SocketAddr,
    pub app: Arc<App>,
    stop_http: watch::Sender<bool>,
    http: JoinHandle<()>,
    /// Stops the registration link (it holds no request: it stops at once).
    stop_link: watch::Sender<bool>,
    /// Stops the node's heartbeat and its LISTEN connection.
    stop_node: watch::Sender<bool>,
    node: JoinHandle<()>,
    /// The certificate HTTPS serves, when it is on.
    tls: Option<Arc<https::Server>>,
}

impl Running {
    /// What SIGHUP does: re-reads the certificate and key of HTTPS. New handshakes get
    /// the new certificate, open connections keep theirs; a file that cannot be used
    /// leaves the previous certificate in place, with a warning naming it.
    pub fn reload(&self) {
        let Some(tls) = &self.tls else {
            tracing::info!("SIGHUP: HTTPS is off (PORTAL_TLS_CERT unset): nothing to re-read");
            return;
        };
        match tls.reload() {
            Ok(summary) => tracing::info!(
                certificate = %tls.files().cert.display(),
                %summary,
                "SIGHUP: TLS certificate re-read; new connections get it"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                still = %tls.summary(),
                "SIGHUP: TLS certificate not re-read; still serving the previous one"
            ),
        }
    }

    /// Stops accepting, then waits for in-flight requests and any running apply.
    pub async fn shutdown(self) {
        let _ = self.stop_http.send(true);
        let _ = self.http.await;
        // No new request from another node from now on; the node is marked stopped.
        let _ = self.stop_node.send(true);
        let _ = self.node.await;
        self.app.applier.drain(APPLY_DRAIN).await;
        self.app.probe_server.shutdown().await;
        let _ = self.stop_link.send(true);
    }
}

/// Connects and migrates: what every command that uses the database does first.
pub async fn open_store(config: &Config) -> Result<Store, StoreError> {
    let store = Store::connect(&config.database, config.pool_size).await?;
    let ran = store::migrate(&store).await?;
    if ran > 0 {
        tracing::info!(migrations = ran, "database migrated");
    }
    Ok(store)
}

/// Learns from pjsip.conf (and what it includes) which of the listed transports are TLS,
/// so that their users' calls are rendered encrypted. With PORTAL_PJSIP_TRANSPORTS set,
/// a listed transport pjsip.conf does not define, or a pjsip.conf that cannot be read,
/// stops start-up: guessing would either downgrade an encrypted user or break every call
/// of a plain one. Without it (one transport, as before transports were per user) the
/// portal renders as it always did and says why in the log; `pbx-portal check` fails.
pub fn resolve_transports(config: &mut Config) -> Result<(), ConfigError> {
    let ast = &mut config.asterisk;
    let resolved = pjsip_conf::read_transports(&ast.config_dir, &ast.pjsip_dir)
        .map_err(|e| e.to_string())
        .and_then(|sections| pjsip_conf::resolve_tls(&mut ast.policy, &sections));
    match resolved {
        Ok(()) => Ok(()),
        Err(reason) if ast.transports_listed => Err(ConfigError {
            var: "PORTAL_PJSIP_TRANSPORTS".into(),
            reason: format!("{reason} (PORTAL_ASTERISK_CONFIG_DIR)"),
        }),
        Err(reason) => {
            tracing::warn!(
                %reason,
                "cannot tell from pjsip.conf whether the transport is TLS: rendering it unencrypted"
            );
            Ok(())
        }
    }
}

/// Creates or refreshes this host's node row (what `serve` and `apply` act as).
pub async fn register_node(config: &Config, store: &Store) -> Result<Node, StoreError> {
    store
        .register_node(&config.node, &config.asterisk.policy)
        .await
}

/// What every apply stands on, built the same way for `serve` and the `apply` command:
/// the migrated store, the transports pjsip.conf says are TLS (read after the database,
/// so that a bad DATABASE_URL stays the one line printed, and before the node row, which
/// keeps them) and this host's node row.
pub async fn prepare(config: &mut Config) -> Result<(Store, Node), PrepareError> {
    let store = open_store(config).await?;
    resolve_transports(config)?;
    let node = register_node(config, &store).await?;
    Ok((store, node))
}

/// Binds the FastAGI server for the health probe and an applier that uses it; the
/// configuration's FastAGI address becomes the one actually bound (port 0 in tests).
pub async fn probe_and_applier(
    config: &mut Config,
    store: Store,
    node: Node,
) -> Result<(ProbeServer, Applier), StartError> {
    let addr = config.asterisk.agi_addr;
    let server = ProbeServer::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            var: "PORTAL_AGI_LISTEN",
            addr,
            source,
        })?;
    config.asterisk.agi_addr = server.addr();
    let applier = Applier::new(store, config.asterisk.clone(), server.probes(), node);
    Ok((server, applier))
}

/// An applier without a probe server: for a dry run, or when the probe is off.
pub fn applier_without_probe(config: &Config, store: Store, node: Node) -> Applier {
    Applier::new(store, config.asterisk.clone(), Arc::default(), node)
}

/// Applies across nodes with `applier`: its LISTEN connection (which wakes `requests`
/// when another node asks this one) runs until `shutdown`.
pub fn cluster(
    applier: &Applier,
    config: &Config,
    requests: Arc<Notify>,
    shutdown: Shutdown,
) -> Cluster {
    let outcomes = cluster::listen(applier, requests, shutdown);
    Cluster::new(applier.clone(), config.node_timeout, outcomes)
}

/// The metrics of a running service: what it counts, and what a scrape reads from the
/// registrations (when `link` runs) and the database pool.
fn live_metrics(registrations: &Arc<Registrations>, store: &Store, link: bool) -> Metrics {
    let (registrations, store) = (registrations.clone(), store.clone());
    Metrics::new(move || {
        let s = registrations.summary();
        let counts = |n: Option<usize>| n.map(|n| u64::try_from(n).unwrap_or(u64::MAX));
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let tenants = registrations
            .by_tenant()
            .unwrap_or_default()
            .into_iter()
            .map(|(tenant, [online, offline, contacts])| {
                let counts = metrics::RegistrationCounts {
                    online: wide(online),
                    offline: wide(offline),
                    contacts: wide(contacts),
                };
                (tenant, counts)
            })
            .collect();
        let pool = store.pool_state();
        metrics::Live {
            registrations: match (counts(s.online), counts(s.offline), counts(s.contacts)) {
                (Some(online), Some(offline), Some(contacts)) if s.live => {
                    Some(metrics::RegistrationCounts {
                        online,
                        offline,
                        contacts,
                    })
                }
                _ => None,
            },
            tenants,
            registration_link_up: link.then_some(s.live),
            pool: metrics::PoolCounts {
                open: pool.in_use + pool.idle,
                idle: pool.idle,
                max: pool.size,
            },
        }
    })
}

/// Connects, migrates, recovers, binds and serves.
pub async fn start(mut config: Config) -> Result<Running, StartError> {
    let token = config.require_token()?.clone();
    // The certificate first: a file that cannot be used stops start-up naming it, before
    // anything is connected or bound.
    let tls = config
        .tls
        .clone()
        .map(https::Server::new)
        .transpose()?
        .map(Arc::new);
    let (store, node) = prepare(&mut config).await?;
    let interrupted = store.recover_interrupted(&node).await?;
    if interrupted > 0 {
        tracing::warn!(count = interrupted, "marked applies interrupted by a crash");
    }

    let bind_error = |source| StartError::Bind {
        var: "PORTAL_LISTEN",
        addr: config.listen,
        source,
    };
    let http = TcpListener::bind(config.listen).await.map_err(bind_error)?;
    let http_addr = http.local_addr().map_err(bind_error)?;
    let (probe_server, applier) = probe_and_applier(&mut config, store.clone(), node).await?;
    let agi_addr = probe_server.addr();

    let hub = Hub::default();
    let registrations = Arc::new(Registrations::new(hub.clone()));
    registrations.set_applied(
        store
            .applied_extensions(config.node.as_str())
            .await?
            .into_iter()
            .map(|(tenant, number)| Line::new(tenant, number)),
    );
    let (stop_link, link_shutdown) = Shutdown::new();
    // Only AMI reports registrations: with the CLI or no reload the view stays `unknown`.
    if config.asterisk.reload == ReloadMode::Ami {
        tokio::spawn(event_link::run(
            config.asterisk.ami.clone(),
            registrations.clone(),
            link_shutdown,
        ));
    }
    let metrics = Arc::new(live_metrics(
        &registrations,
        &store,
        config.asterisk.reload == ReloadMode::Ami,
    ));
    metrics.applies_interrupted(interrupted);
    let applier = applier.with_live(registrations.clone(), hub.clone(), metrics.clone());
    let (stop_node, node_shutdown) = Shutdown::new();
    let requests = Arc::new(Notify::new());
    let cluster = cluster(&applier, &config, requests.clone(), node_shutdown.clone());
    let report: cluster::Report = {
        let (registrations, mode) = (registrations.clone(), config.asterisk.reload);
        Box::new(move || (registrations.link_state(mode), registrations.summary()))
    };
    let node = tokio::spawn(cluster::run_node(
        applier.clone(),
        requests,
        report,
        metrics.clone(),
        node_shutdown,
    ));
    let (stop_http, shutdown) = Shutdown::new();
    let app = Arc::new(App {
        cluster,
        applier,
        streams: crate::http::Streams::new(shutdown.clone()),
        openapi: crate::http::openapi_document(config.user_rules()),
        metrics,
        config,
        token,
        store,
        probe_server: Arc::new(probe_server),
        registrations,
        hub,
    });
    let http = tokio::spawn(crate::http::serve(
        http,
        app.clone(),
        tls.as_ref().map(|t| t.config()),
        shutdown,
    ));
    match &tls {
        Some(t) => tracing::info!(
            %http_addr,
            %agi_addr,
            node = %app.config.node,
            certificate = %t.files().cert.display(),
            summary = %t.summary(),
            "pbx-portal serving HTTPS"
        ),
        None => {
            tracing::info!(%http_addr, %agi_addr, node = %app.config.node, "pbx-portal serving")
        }
    }
    if https::clear_text_exposed(http_addr, tls.is_some()) {
        tracing::warn!(%http_addr, "{}", https::CLEAR_TEXT_WARNING);
    }
    Ok(Running {
        http_addr,
        agi_addr,
        app,
        stop_http,
        http,
        stop_link,
        stop_node,
        node,
        tls,
    })
}
