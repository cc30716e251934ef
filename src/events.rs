//! The live event stream's hub: what happened (a registration changed, an apply ended, a
//! user was created, edited or deleted) as server-sent-event frames, fanned out to every
//! `GET /events` stream.
//!
//! A leaf: the layers that publish (`apply`, the registration link, `http`) import it, it
//! imports nothing of theirs. A frame is serialised once, whatever the number of streams,
//! and published into a bounded broadcast channel: publishing never waits, and a stream
//! that falls behind by more than the channel holds is told so (`Lagged`) and dropped —
//! a slow client never slows the publisher or the other streams.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

/// How many frames a stream may fall behind before it is dropped: more than the largest
/// import (10,000 rows, one `user` event each), so a stream that keeps up is never dropped
/// by a burst.
const BACKLOG: usize = 16 * 1024;

/// The stream of frames. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Bytes>>,
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
    /// Publishes an event to every stream open now (none is kept for later ones).
    pub fn publish(&self, kind: &str, data: &impl Serialize) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(frame(kind, data)));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Bytes>> {
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

    #[tokio::test]
    async fn a_stream_that_falls_behind_learns_it_and_others_do_not_wait() {
        let hub = Hub::default();
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for i in 0..BACKLOG + 5 {
            hub.publish("n", &i);
            assert!(fast.recv().await.is_ok());
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(5))
        ));
    }
}
