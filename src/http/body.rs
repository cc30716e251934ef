//! Response bodies. Every route answers with one boxed body type, so that most routes can
//! send a whole buffer while a few (`GET /users/export`, `GET /events`) stream chunk by
//! chunk, without ever holding the whole answer in memory.

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
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

/// A streamed body: each item of `chunks` is sent as one data frame when the client is
/// ready for it; the body is complete when the stream ends.
pub fn streamed<S>(chunks: S) -> Body
where
    S: Stream<Item = io::Result<Bytes>> + Send + Sync + 'static,
{
    StreamBody::new(chunks.map_ok(Frame::data)).boxed()
}
