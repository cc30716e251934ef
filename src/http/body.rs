//! Response bodies. Every route answers with one boxed body type, so that most routes can
//! send a whole buffer while one (`GET /users/export`) streams what it reads from the
//! database chunk by chunk, without ever holding the whole answer in memory.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;

/// The body of every response. An error ends a streamed body early: hyper then closes
/// the connection without the final chunk, so a client can never take half an export for
/// a whole one.
pub type Body = BoxBody<Bytes, io::Error>;

/// A body that is sent as one buffer.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Something that produces a streamed body one chunk at a time.
pub trait Chunks: Send + Sync + 'static {
    /// The next chunk; `Ready(None)` when the body is complete.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>>;
}

/// A streamed body made from [`Chunks`].
pub fn streamed(chunks: impl Chunks) -> Body {
    Streamed(chunks).boxed()
}

struct Streamed<C>(C);

impl<C: Chunks> hyper::body::Body for Streamed<C> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        // Streamed<C> is Unpin whenever C is, and Chunks takes &mut self.
        let this = Pin::into_inner(self);
        this.0.poll_chunk(cx).map(|c| c.map(|r| r.map(Frame::data)))
    }
}

impl<C> Unpin for Streamed<C> {}
