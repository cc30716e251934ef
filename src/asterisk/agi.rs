//! FastAGI: the server Asterisk connects to when the dialplan runs `AGI(agi://...)`.
//!
//! [`Session`] owns the framing of Asterisk 22.7 (F-AGI-1..5): LF-only lines, an
//! environment block of `agi_key: value` lines ended by an empty line, then strictly one
//! command and one reply at a time (commands cannot be pipelined). Everything read is
//! bounded: line length, environment size, idle time, whole-session time, connections.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;

/// Asterisk refuses a command line of this many bytes or more (`AGI_BUF_LEN`).
pub const MAX_COMMAND: usize = 8192;
/// Replies can be long (one GET FULL VARIABLE evaluates many functions).
const MAX_REPLY: usize = 1024 * 1024;
const MAX_ENV_LINE: usize = 4096;
const MAX_ENV_LINES: usize = 256;
const IDLE: Duration = Duration::from_secs(10);
const SESSION: Duration = Duration::from_secs(120);
const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AgiError {
    #[error("connection closed")]
    Closed,
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("environment block too large")]
    EnvTooLarge,
    #[error("timed out")]
    Timeout,
    #[error("the channel hung up")]
    Hangup,
    #[error("command of {0} bytes is too long for Asterisk")]
    CommandTooLong(usize),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A reply line: `200 result=<n> [(<value>)]`, or anything else verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok { result: i64, value: Option<String> },
    Other(String),
}

/// Parses a reply. The value is not escaped by Asterisk (F-AGI-3), so it is everything
/// between the first `(` and the last `)`.
pub fn parse_reply(line: &str) -> Reply {
    let Some(rest) = line.strip_prefix("200 result=") else {
        return Reply::Other(line.to_owned());
    };
    let (num, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let Ok(result) = num.parse() else {
        return Reply::Other(line.to_owned());
    };
    let value = match (tail.find('('), tail.rfind(')')) {
        (Some(a), Some(b)) if a < b => Some(tail[a + 1..b].to_owned()),
        _ => None,
    };
    Reply::Ok { result, value }
}

/// Reads one `\n`-terminated line of at most `max` bytes, without the terminator.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> Result<String, AgiError> {
    let mut line = Vec::new();
    loop {
        let buf = tokio::time::timeout(IDLE, r.fill_buf())
            .await
            .map_err(|_| AgiError::Timeout)??;
        if buf.is_empty() {
            return Err(AgiError::Closed);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > max {
            return Err(AgiError::TooLong(max));
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

/// One FastAGI connection.
pub struct Session {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    env: Vec<(String, String)>,
}

impl Session {
    /// Reads the environment block.
    pub async fn start(stream: TcpStream) -> Result<Self, AgiError> {
        let (r, w) = stream.into_split();
        let mut reader = BufReader::new(r);
        let mut env = Vec::new();
        loop {
            let line = read_line(&mut reader, MAX_ENV_LINE).await?;
            if line.is_empty() {
                break;
            }
            if env.len() == MAX_ENV_LINES {
                return Err(AgiError::EnvTooLarge);
            }
            if let Some((k, v)) = line.split_once(':') {
                env.push((k.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()));
            }
        }
        Ok(Self {
            reader,
            writer: w,
            env,
        })
    }

    pub fn env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sends one command and reads its reply. An unsolicited `HANGUP` is an error.
    pub async fn command(&mut self, command: &str) -> Result<Reply, AgiError> {
        if command.len() + 1 >= MAX_COMMAND || command.contains('\n') {
            return Err(AgiError::CommandTooLong(command.len()));
        }
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        let line = read_line(&mut self.reader, MAX_REPLY).await?;
        if line == "HANGUP" {
            return Err(AgiError::Hangup);
        }
        Ok(parse_reply(&line))
    }

    pub async fn close(mut self) {
        let _ = self.writer.shutdown().await;
    }
}

/// Accepts FastAGI connections until `shutdown` turns true and hands each session, its
/// environment read, to `handler` (as hyper's `service_fn`: the server knows framing and
/// limits, the handler what the call means). The whole session, handler included, is
/// bounded in time.
pub async fn serve<H, F>(listener: TcpListener, handler: H, mut shutdown: Shutdown)
where
    H: Fn(Session) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let handler = Arc::new(handler);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "FastAGI accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the cap the connection is closed at once: Asterisk goes on with the dialplan.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "FastAGI connection limit reached");
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let work = async {
                let session = Session::start(stream).await?;
                handler(session).await;
                Ok::<_, AgiError>(())
            };
            match tokio::time::timeout(SESSION, work).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "FastAGI session ended"),
                Err(_) => tracing::debug!(%peer, "FastAGI session timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_take_the_value_between_first_and_last_parenthesis() {
        assert_eq!(
            parse_reply("200 result=1 (synergy-internal)"),
            Reply::Ok {
                result: 1,
                value: Some("synergy-internal".into())
            }
        );
        assert_eq!(
            parse_reply("200 result=1 ()"),
            Reply::Ok {
                result: 1,
                value: Some(String::new())
            }
        );
        assert_eq!(
            parse_reply("200 result=1 (a (b) c)"),
            Reply::Ok {
                result: 1,
                value: Some("a (b) c".into())
            }
        );
        assert_eq!(
            parse_reply("200 result=0"),
            Reply::Ok {
                result: 0,
                value: None
            }
        );
        assert_eq!(
            parse_reply("510 Invalid or unknown command"),
            Reply::Other("510 Invalid or unknown command".into())
        );
        assert_eq!(
            parse_reply("200 result=x"),
            Reply::Other("200 result=x".into())
        );
    }

    #[tokio::test]
    async fn lines_are_bounded() {
        let data = b"short\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";
        let mut r = BufReader::with_capacity(4, &data[..]);
        assert_eq!(read_line(&mut r, 10).await.unwrap(), "short");
        assert!(matches!(
            read_line(&mut r, 10).await,
            Err(AgiError::TooLong(10))
        ));
        let mut r = BufReader::new(&b"no newline"[..]);
        assert!(matches!(
            read_line(&mut r, 100).await,
            Err(AgiError::Closed)
        ));
    }
}
