//! The live event stream's hub: what happened (a registration changed, an apply ended, a
//! user was created, edited or deleted) as server-sent-event frames, fanned out to every
//! `GET /events` stream.
//!
//! A leaf: the layers that publish (`apply`, the registration link, `http`) import it, it
//! imports nothing of theirs. A frame is serialised once, whatever the number of streams,
//! and published into a bounded broadcast channel: publishing never waits, and a stream
//! that falls behind by more than the channel holds is told so (`Lagged`) and dropped —
//! a slow client never slows the publisher or the other streams.
//!
//! Each frame carries its [`Audience`]: the tenant it concerns, or only the streams bound
//! to no tenant. The hub still serialises a frame once; each stream's forwarder reads the
//! audience and skips what its caller may not see, so a tenant-bound token's stream never
//! holds another tenant's bytes.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

/// How many frames a stream may fall behind before it is dropped: more than the largest
/// import (10,000 rows, one `user` event each), so a stream that keeps up is never dropped
/// by a burst.
const BACKLOG: usize = 16 * 1024;

/// Who may receive a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// What concerns one tenant (by slug): streams bound to it, and every unbound one.
    Tenant(String),
    /// Streams of tokens bound to no tenant only (what spans tenants).
    Unbound,
    /// Streams bound to this tenant only: its own view of something an unbound stream
    /// receives whole (as [`Audience::Unbound`]).
    Bound(String),
}

impl Audience {
    /// Whether a stream bound to `bound` (`None`: unbound) receives the frame.
    pub fn admits(&self, bound: Option<&str>) -> bool {
        match (self, bound) {
            (Self::Bound(_), None) => false,
            (_, None) => true,
            (Self::Tenant(t) | Self::Bound(t), Some(b)) => t == b,
            (Self::Unbound, Some(_)) => false,
        }
    }
}

/// One serialised frame and who may receive it.
#[derive(Debug)]
pub struct Frame {
    pub audience: Audience,
    pub bytes: Bytes,
}

/// The stream of frames. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Frame>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

/// One SSE frame: `event: <kind>` and the JSON data on one `data:` line (JSON holds no
/// raw newline), ended by an empty line.
pub fn frame(kind: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Bytes::from(format!("event: {kind}\ndata: {json}\n\n"))
}

impl Hub {
    /// Publishes an event to every stream open now that `audience` admits (none is kept
    /// for later ones).
    pub fn publish(&self, audience: Audience, kind: &str, data: &impl Serialize) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(Frame {
                audience,
                bytes: frame(kind, data),
            }));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_data_line() {
        let f = frame("user", &serde_json::json!({"name": "a\nb"}));
        assert_eq!(&f[..], b"event: user\ndata: {\"name\":\"a\\nb\"}\n\n");
    }

    #[test]
    fn a_bound_stream_is_admitted_its_tenant_only() {
        let acme = Audience::Tenant("acme".into());
        assert!(acme.admits(None) && acme.admits(Some("acme")));
        assert!(!acme.admits(Some("beta")));
        assert!(Audience::Unbound.admits(None));
        assert!(!Audience::Unbound.admits(Some("acme")));
        let own = Audience::Bound("acme".into());
        assert!(own.admits(Some("acme")));
        assert!(!own.admits(None) && !own.admits(Some("beta")));
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_learns_it_and_others_do_not_wait() {
        let hub = Hub::default();
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for i in 0..BACKLOG + 5 {
            hub.publish(Audience::Unbound, "n", &i);
            assert!(fast.recv().await.is_ok());
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(5))
        ));
    }
}
