//! A minimal server-sent-events client over a raw TCP connection: the test controls when
//! (and whether) it reads, which a slow-client test needs, and sees the frames exactly as
//! sent.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::app::TOKEN;

pub struct Sse {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The response head (status line and headers).
    pub head: String,
}

/// One frame: `event:` and `data:` lines, or a comment.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Event {
        kind: String,
        data: serde_json::Value,
    },
    Comment(String),
}

impl Sse {
    /// Opens `GET /events`; `recv_buffer` shrinks the socket's receive buffer (a client
    /// that cannot keep up).
    pub async fn open(addr: SocketAddr, recv_buffer: Option<u32>) -> Sse {
        Self::open_as(addr, TOKEN, recv_buffer).await
    }

    /// Opens `GET /events` with `token` as the bearer.
    pub async fn open_as(addr: SocketAddr, token: &str, recv_buffer: Option<u32>) -> Sse {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(addr).await.unwrap();
        let req = format!(
            "GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut sse = Sse {
            stream,
            buf: Vec::new(),
            head: String::new(),
        };
        let end = sse.read_until(b"\r\n\r\n").await.expect("a response head");
        sse.head = String::from_utf8_lossy(&sse.buf[..end]).into_owned();
        sse.buf.drain(..end + 4);
        sse
    }

    pub fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Reads until `needle` is buffered; its offset, or `None` at the end of the stream.
    async fn read_until(&mut self, needle: &[u8]) -> Option<usize> {
        loop {
            if let Some(i) = self.buf.windows(needle.len()).position(|w| w == needle) {
                return Some(i);
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame (chunked transfer framing skipped), or `None` when the stream ended.
    pub async fn next(&mut self, within: Duration) -> Option<Frame> {
        tokio::time::timeout(within, async {
            loop {
                let end = self.read_until(b"\n\n").await?;
                let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                let mut kind = None;
                let mut data = None;
                let mut comment = None;
                for line in text.lines() {
                    if let Some(k) = line.strip_prefix("event: ") {
                        kind = Some(k.to_owned());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(d).ok();
                    } else if let Some(c) = line.strip_prefix(": ") {
                        comment = Some(c.to_owned());
                    }
                }
                match (kind, data, comment) {
                    (Some(kind), Some(data), _) => return Some(Frame::Event { kind, data }),
                    (_, _, Some(c)) => return Some(Frame::Comment(c)),
                    // A chunk-size line of the transfer encoding: not a frame.
                    _ => continue,
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            let tail = String::from_utf8_lossy(&self.buf[self.buf.len().saturating_sub(200)..])
                .into_owned();
            panic!(
                "no event stream frame in time; {} bytes buffered, ending {tail:?}",
                self.buf.len()
            )
        })
    }

    /// The next event of `kind`, skipping others and comments.
    pub async fn event(&mut self, kind: &str, within: Duration) -> serde_json::Value {
        loop {
            match self.next(within).await {
                Some(Frame::Event { kind: k, data }) if k == kind => return data,
                Some(_) => continue,
                None => panic!("the stream ended before a {kind} event"),
            }
        }
    }

    /// Reads everything until the server ends the stream; the events seen.
    pub async fn drain(&mut self, within: Duration) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = self.next(within).await {
            frames.push(f);
        }
        frames
    }
}
