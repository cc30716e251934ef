//! `GET /events`: the live event stream (server-sent events over plain hyper).
//!
//! Each stream is a task between the hub and the response body: it forwards frames into a
//! small bounded channel that the body reads, adds a comment line every [`HEARTBEAT`] (so
//! proxies and clients see the stream alive), and ends the stream when the client cannot
//! keep up — it has not taken a frame for [`PATIENCE`], or it fell so far behind that the
//! hub dropped frames meant for it — when the client went away, or when the service shuts
//! down. Only this stream's task ever waits for its client: the hub never does, so a slow
//! client slows nothing else. At most [`MAX_STREAMS`] at once.
//!
//! A stream of a token bound to a tenant forwards only the frames whose
//! [`Audience`](crate::events::Audience) admits that tenant (its registrations, users and
//! applies); the hub serialised each frame once for every stream, the filter only reads
//! its tag.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};

use super::body::streamed;
use super::caller::Ctx;
use super::error::ApiError;
use super::{App, Resp};
use crate::domain::TenantSlug;
use crate::events::Frame;
use crate::shutdown::Shutdown;

pub const MAX_STREAMS: usize = 64;
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Frames between the stream's task and its body.
const BUFFER: usize = 64;
/// How long a client may take to accept the next frame before it is dropped.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// The streams open now, bounded.
pub struct Streams {
    slots: Arc<Semaphore>,
    shutdown: Shutdown,
}

impl Streams {
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(MAX_STREAMS)),
            shutdown,
        }
    }

    /// How many streams are open now (`/status`).
    pub fn open(&self) -> usize {
        MAX_STREAMS - self.slots.available_permits()
    }
}

pub fn open(app: &App, ctx: &Ctx) -> Result<Resp, ApiError> {
    let slot = app
        .streams
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams(MAX_STREAMS))?;
    let (tx, mut rx) = mpsc::channel(BUFFER);
    let events = app.hub.subscribe();
    tokio::spawn(forward(
        events,
        ctx.tenant.clone(),
        tx,
        app.streams.shutdown.clone(),
        slot,
    ));
    // The body side: what the stream's task forwards.
    let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|f| f.map(Ok)));
    let mut resp = Response::new(streamed(frames));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// Why a stream ended, for the log.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Slow,
    Gone,
    Shutdown,
}

async fn forward(
    mut events: broadcast::Receiver<Arc<Frame>>,
    bound: Option<TenantSlug>,
    tx: mpsc::Sender<Bytes>,
    mut shutdown: Shutdown,
    _slot: OwnedSemaphorePermit,
) {
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    // A first comment at once: the client sees the stream open before any event.
    let mut next: Option<Bytes> = Some(Bytes::from_static(b": connected\n\n"));
    let end = loop {
        if let Some(frame) = next.take() {
            let sent = tokio::select! {
                s = tx.send_timeout(frame, PATIENCE) => s,
                _ = shutdown.wait() => break End::Shutdown,
            };
            match sent {
                Ok(()) => {}
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => break End::Slow,
                Err(mpsc::error::SendTimeoutError::Closed(_)) => break End::Gone,
            }
        }
        next = tokio::select! {
            e = events.recv() => match e {
                Ok(frame) if frame.audience.admits(bound.as_ref().map(TenantSlug::as_str)) => {
                    Some(Bytes::clone(&frame.bytes))
                }
                Ok(_) => None,
                Err(broadcast::error::RecvError::Lagged(_)) => break End::Slow,
                Err(broadcast::error::RecvError::Closed) => break End::Shutdown,
            },
            _ = heartbeat.tick() => Some(Bytes::from_static(b": keepalive\n\n")),
            _ = tx.closed() => break End::Gone,
            _ = shutdown.wait() => break End::Shutdown,
        };
    };
    tracing::debug!(end = ?end, "event stream ended");
}
