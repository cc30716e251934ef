//! What every request handler shares: the configuration, the database, the applier, the
//! probe server's liveness, the live registrations, the event hub and the metrics. Built
//! by `app::start`, read-only afterwards (the metrics are atomics).

use std::sync::Arc;

use crate::apply::Applier;
use crate::asterisk::event_link::Registrations;
use crate::asterisk::probe::ProbeServer;
use crate::config::{ApiToken, Config};
use crate::events::Hub;
use crate::metrics::Metrics;
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub token: ApiToken,
    pub store: Store,
    pub applier: Applier,
    /// Applies to every chosen node (`POST /apply`, `GET /nodes`).
    pub cluster: crate::apply::cluster::Cluster,
    pub probe_server: Arc<ProbeServer>,
    pub registrations: Arc<Registrations>,
    pub hub: Hub,
    /// `GET /openapi.json`, with this instance's extension range.
    pub openapi: bytes::Bytes,
    /// The open `GET /events` streams.
    pub streams: super::Streams,
    pub metrics: Arc<Metrics>,
}
