//! Asterisk Manager Interface client.
//!
//! [`Connection`] owns the framing (F-AMI-1, F-AMI-2, F-AMI-10): a one-line banner, then
//! messages of `Key: Value\r\n` lines ended by an empty line. Values may hold a bare `\n`,
//! so lines are split on `\r\n` only. [`Client`] sends every action with an ActionID and
//! skips events until the response with that id arrives.

use std::time::Duration;

use secrecy::ExposeSecret;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::config::AmiSettings;

/// Larger messages are refused rather than buffered without bound.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AmiError {
    /// Nothing usable answered: refused, timed out, closed, not AMI.
    #[error("AMI unreachable: {0}")]
    Unreachable(String),
    #[error("AMI login failed (check PORTAL_AMI_USERNAME / PORTAL_AMI_SECRET and manager.conf)")]
    LoginFailed,
    #[error("AMI action refused: {0}")]
    Refused(String),
}

/// One AMI message: its lines in order (`Output` repeats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub fields: Vec<(String, String)>,
}

impl Message {
    /// Parses one message without its terminating empty line.
    pub fn parse(block: &str) -> Self {
        let fields = block
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|line| match line.split_once(':') {
                Some((k, v)) => (k.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
                None => (line.to_owned(), String::new()),
            })
            .collect();
        Self { fields }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        self.get("Response") == Some("Success")
    }

    /// The `Output:` lines of an `Action: Command` reply, joined with `\n`.
    pub fn output(&self) -> String {
        let lines: Vec<&str> = self
            .fields
            .iter()
            .filter(|(k, _)| k == "Output")
            .map(|(_, v)| v.as_str())
            .collect();
        lines.join("\n").trim_end().to_owned()
    }
}

/// A socket speaking AMI framing.
pub struct Connection {
    stream: TcpStream,
    buf: BytesMut,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
        }
    }

    async fn fill(&mut self) -> Result<(), AmiError> {
        if self.buf.len() > MAX_MESSAGE {
            return Err(AmiError::Unreachable("message too large".into()));
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(AmiError::Unreachable(
                "connection closed by Asterisk".into(),
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(AmiError::Unreachable(e.to_string())),
        }
    }

    /// Reads up to and including the first `\r\n` (the banner has no blank line after it).
    pub async fn read_line(&mut self) -> Result<String, AmiError> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.advance(i + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// Reads the next non-empty message.
    pub async fn read_message(&mut self) -> Result<Message, AmiError> {
        loop {
            // A stray empty line (F-AMI-10) would otherwise look like an empty message.
            while self.buf.starts_with(b"\r\n") {
                self.buf.advance(2);
            }
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let block = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.advance(i + 4);
                return Ok(Message::parse(&block));
            }
            self.fill().await?;
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), AmiError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| AmiError::Unreachable(e.to_string()))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Encodes an action. A CR or LF inside a value would start a new header, so it is refused.
pub fn encode(
    action: &str,
    id: Option<&str>,
    fields: &[(&str, &str)],
) -> Result<Vec<u8>, AmiError> {
    let mut out = format!("Action: {action}\r\n");
    if let Some(id) = id {
        out.push_str(&format!("ActionID: {id}\r\n"));
    }
    for (k, v) in fields {
        if v.contains(['\r', '\n']) || k.contains(['\r', '\n', ':']) {
            return Err(AmiError::Refused(format!("line break in AMI header {k}")));
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

/// A logged-in AMI session with events off.
pub struct Client {
    conn: Connection,
    next_id: u64,
    timeout: Duration,
}

impl Client {
    /// Connects and logs in with the configured account; every step is bounded by the
    /// configured timeout.
    pub async fn login(settings: &AmiSettings) -> Result<Self, AmiError> {
        let (addr, limit) = (settings.addr, settings.timeout);
        let stream = timeout(limit, TcpStream::connect(addr))
            .await
            .map_err(|_| AmiError::Unreachable(format!("connect to {addr} timed out")))?
            .map_err(|e| AmiError::Unreachable(format!("connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut client = Self {
            conn: Connection::new(stream),
            next_id: 0,
            timeout: limit,
        };
        let banner = timeout(limit, client.conn.read_line())
            .await
            .map_err(|_| AmiError::Unreachable("no AMI banner".into()))??;
        if !banner.starts_with("Asterisk Call Manager/") {
            return Err(AmiError::Unreachable(format!(
                "not an AMI server (banner {banner:?})"
            )));
        }
        let reply = client
            .action(
                "Login",
                &[
                    ("Username", settings.username.as_str()),
                    ("Secret", settings.secret.expose_secret()),
                    ("Events", "off"),
                ],
            )
            .await?;
        if !reply.is_success() {
            return Err(AmiError::LoginFailed);
        }
        Ok(client)
    }

    /// Sends an action and waits for its response, skipping events and other replies.
    pub async fn action(
        &mut self,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Result<Message, AmiError> {
        self.next_id += 1;
        let id = format!("portal-{}", self.next_id);
        let bytes = encode(action, Some(&id), fields)?;
        let limit = self.timeout;
        let exchange = async {
            self.conn.write(&bytes).await?;
            loop {
                let msg = self.conn.read_message().await?;
                if msg.get("Response").is_some() && msg.get("ActionID") == Some(id.as_str()) {
                    return Ok(msg);
                }
            }
        };
        timeout(limit, exchange)
            .await
            .map_err(|_| AmiError::Unreachable(format!("no reply to {action} within {limit:?}")))?
    }

    /// `Action: Command`: the reply and its output.
    pub async fn command(&mut self, command: &str) -> Result<Message, AmiError> {
        self.action("Command", &[("Command", command)]).await
    }

    pub async fn logoff(mut self) {
        let _ = self.action("Logoff", &[]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_command_output_lines_in_order() {
        let m = Message::parse(
            "Response: Success\r\nActionID: a3\r\nMessage: Command output follows\r\nOutput: \r\nOutput:  Endpoint:  1000   x\r\nOutput: \r\nOutput: Objects found: 2\r\nOutput: ",
        );
        assert!(m.is_success());
        assert_eq!(m.get("actionid"), Some("a3"));
        assert_eq!(m.output(), "\n Endpoint:  1000   x\n\nObjects found: 2");
    }

    #[test]
    fn a_bare_newline_stays_inside_its_value() {
        let m = Message::parse(
            "Response: Error\r\nActionID: se3\r\nMessage: Unable to retrieve endpoint 9999\n",
        );
        assert_eq!(m.get("Message"), Some("Unable to retrieve endpoint 9999\n"));
        assert!(!m.is_success());
    }

    #[test]
    fn encoding_refuses_header_injection() {
        assert_eq!(
            encode("Command", Some("x1"), &[("Command", "dialplan reload")]).unwrap(),
            b"Action: Command\r\nActionID: x1\r\nCommand: dialplan reload\r\n\r\n"
        );
        assert!(encode(
            "Originate",
            None,
            &[("Channel", "Local/x\r\nAction: Logoff")]
        )
        .is_err());
    }

    #[tokio::test]
    async fn framing_survives_split_reads_and_the_bare_newline_case() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let raw: &[u8] = b"Asterisk Call Manager/11.0.0\r\nResponse: Error\r\nActionID: se3\r\nMessage: Unable to retrieve endpoint 9999\n\r\n\r\nEvent: FullyBooted\r\n\r\n";
            for chunk in raw.chunks(7) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let mut c = Connection::new(TcpStream::connect(addr).await.unwrap());
        assert_eq!(c.read_line().await.unwrap(), "Asterisk Call Manager/11.0.0");
        let m = c.read_message().await.unwrap();
        assert_eq!(m.get("ActionID"), Some("se3"));
        assert_eq!(
            c.read_message().await.unwrap().get("Event"),
            Some("FullyBooted")
        );
        assert!(c.read_message().await.is_err());
    }
}
