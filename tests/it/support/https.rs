//! HTTPS fixtures: the CA and the two server certificates of `scripts/test-ca.sh`, the
//! files a test portal serves, and an HTTP/1.1 client over TLS that trusts only that CA.
//!
//! `scripts/test.sh` runs the script and exports PBX_PORTAL_TEST_HTTPS_DIR; under a bare
//! `cargo test` the script is run here, once per test binary, into the target directory's
//! scratch space (it keeps certificates that are still valid, so this costs one `openssl
//! x509 -checkend` per file after the first run).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// The directory of `ca.crt`, `server.crt`/`.key` and `server2.crt`/`.key`.
pub fn dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("PBX_PORTAL_TEST_HTTPS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-https"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-ca.sh");
        let out = std::process::Command::new(script)
            .arg(&dir)
            .output()
            .expect("scripts/test-ca.sh runs (it needs openssl)");
        assert!(
            out.status.success(),
            "scripts/test-ca.sh {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .clone()
}

/// Copies `name`.crt and `name`.key (`server` or `server2`) over `cert.pem` and `key.pem`
/// in `into`: the files a test portal's PORTAL_TLS_CERT and PORTAL_TLS_KEY name.
pub fn install(name: &str, into: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (into.join("cert.pem"), into.join("key.pem"));
    std::fs::copy(dir().join(format!("{name}.crt")), &cert).unwrap();
    std::fs::copy(dir().join(format!("{name}.key")), &key).unwrap();
    (cert, key)
}

/// The variables that serve HTTPS with the files [`install`] put in `into`.
pub fn vars(into: &Path) -> [(String, String); 2] {
    [
        (
            "PORTAL_TLS_CERT".into(),
            into.join("cert.pem").display().to_string(),
        ),
        (
            "PORTAL_TLS_KEY".into(),
            into.join("key.pem").display().to_string(),
        ),
    ]
}

/// The DER of `name`.crt: what a client must see for that certificate.
pub fn der(name: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(dir().join(format!("{name}.crt")))
        .unwrap()
        .to_vec()
}

/// One HTTP/1.1 connection over TLS, with what its handshake showed.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// The server's certificate (DER) as this connection received it.
    pub certificate: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
}

/// Connects to `addr` (loopback) trusting only the test CA, offering ALPN `http/1.1`,
/// checking the certificate against the name `127.0.0.1`.
pub async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir().join("ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(addr.ip().to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (_, session) = tls.get_ref();
    let certificate = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let version = session.protocol_version();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(Conn {
        sender,
        certificate,
        alpn,
        version,
    })
}

impl Conn {
    /// `GET path` on this connection, with the bearer token when given.
    pub async fn get(&mut self, path: &str, token: Option<&str>) -> (StatusCode, HeaderMap, Bytes) {
        let mut req = Request::get(path).header("host", "127.0.0.1");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .sender
            .send_request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("an answer on this connection");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, body)
    }
}

/// Everything the child writes to stderr from now on, read by a thread into a buffer the
/// test can look at while the child runs.
pub fn capture_stderr(child: &mut std::process::Child) -> Arc<Mutex<String>> {
    use std::io::BufRead;
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr piped");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    log
}
