//! TLS fixtures: the certificates `scripts/pg-tls.sh` made for the test PostgreSQL, the
//! connection strings that use them, and a PostgreSQL without TLS.
//!
//! The server without TLS is the real test PostgreSQL behind a proxy that answers the
//! client's SSLRequest with `N` (what a server built or configured without TLS answers)
//! and then relays the rest of the conversation: real PostgreSQL protocol, no second
//! cluster to start.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::app::admin_url;

/// The directory of `ca.crt` and `other-ca.crt` (PBX_PORTAL_TEST_PG_TLS, as exported by
/// scripts/pg-tls.sh, or the script's default).
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("PBX_PORTAL_TEST_PG_TLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/lib/postgresql/pbx-portal-test-tls".into());
    assert!(
        dir.join("ca.crt").is_file() && dir.join("other-ca.crt").is_file(),
        "no test certificates in {}: run scripts/pg-tls.sh (scripts/test.sh does) to switch TLS on for the test PostgreSQL",
        dir.display()
    );
    dir
}

/// The CA that signed the server's certificate (for `localhost` only).
pub fn ca() -> String {
    dir().join("ca.crt").display().to_string()
}

/// A CA that signed nothing the server has.
pub fn other_ca() -> String {
    dir().join("other-ca.crt").display().to_string()
}

/// The test server's address (the `host:port` of TEST_DATABASE_URL).
pub fn server_addr() -> SocketAddr {
    let cfg: tokio_postgres::Config = admin_url().parse().expect("TEST_DATABASE_URL");
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
        .parse()
        .expect("TEST_DATABASE_URL names its server by IP address")
}

/// A key=value connection string to database `db` with TEST_DATABASE_URL's user, port
/// (unless `extra` has one: tokio-postgres would add it to a list) and password (if any),
/// `password` instead when given, and `extra` (hosts, ports, sslmode…).
pub fn key_value(db: &str, password: Option<&str>, extra: &str) -> String {
    let cfg: tokio_postgres::Config = admin_url().parse().expect("TEST_DATABASE_URL");
    let mut s = format!("user={} dbname={db}", cfg.get_user().unwrap_or("postgres"));
    if !extra.contains("port=") {
        s.push_str(&format!(
            " port={}",
            cfg.get_ports().first().copied().unwrap_or(5432)
        ));
    }
    let admin_password = cfg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    if let Some(p) = password.map(str::to_owned).or(admin_password) {
        s.push_str(&format!(
            " password='{}'",
            p.replace('\\', "\\\\").replace('\'', "\\'")
        ));
    }
    format!("{s} {extra}")
}

/// PostgreSQL without TLS: the test server behind a proxy that declines TLS.
pub struct NoTlsServer {
    pub addr: SocketAddr,
}

/// The SSLRequest packet: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl NoTlsServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = server_addr();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut first = [0u8; 8];
                    if client.read_exact(&mut first).await.is_err() {
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    if first == SSL_REQUEST {
                        if client.write_all(b"N").await.is_err() {
                            return;
                        }
                    } else if server.write_all(&first).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// The certificates of the PostgreSQL manual's recipe ("Creating Certificates", a root CA
/// and a server certificate it signs): `openssl x509 -req` without `-extfile` makes the
/// server's an X.509 version 1 certificate, with its name in the CN only.
pub struct ManualCertificates {
    pub root: PathBuf,
    pub server: PathBuf,
    pub key: PathBuf,
}

pub fn manual_certificates(dir: &std::path::Path) -> ManualCertificates {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/pg-tls.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-new",
        "-nodes",
        "-text",
        "-out",
        "root.csr",
        "-keyout",
        "root.key",
        "-subj",
        "/CN=root.yourdomain.com",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "root.csr",
        "-text",
        "-days",
        "3650",
        "-extfile",
        "/etc/ssl/openssl.cnf",
        "-extensions",
        "v3_ca",
        "-signkey",
        "root.key",
        "-out",
        "root.crt",
    ]);
    run(&[
        "req",
        "-new",
        "-nodes",
        "-text",
        "-out",
        "server.csr",
        "-keyout",
        "server.key",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-text",
        "-days",
        "365",
        "-CA",
        "root.crt",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
    ]);
    let text = std::process::Command::new("openssl")
        .args(["x509", "-in", "server.crt", "-noout", "-text"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"),
        "this openssl made a version 3 certificate: the test would prove nothing"
    );
    ManualCertificates {
        root: dir.join("root.crt"),
        server: dir.join("server.crt"),
        key: dir.join("server.key"),
    }
}

/// PostgreSQL with TLS by a given certificate: a front that accepts the SSLRequest, does
/// the TLS handshake (rustls, with exactly the protocol versions given) and relays the
/// decrypted conversation to the test server in clear. The server's own `pg_stat_ssl`
/// cannot see this TLS; the front counts its handshakes instead.
pub struct TlsFront {
    pub addr: SocketAddr,
    handshakes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Always the same certificate: no SNI to choose by (the client may send an IP address).
#[derive(Debug)]
struct Fixed(std::sync::Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl TlsFront {
    pub async fn start(
        cert: &std::path::Path,
        key: &std::path::Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::sync::atomic::Ordering;
        use std::sync::Arc;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = vec![CertificateDer::from_pem_file(cert).unwrap()];
        let signing = provider
            .key_provider
            .load_private_key(PrivateKeyDer::from_pem_file(key).unwrap())
            .unwrap();
        // CertifiedKey::new, not with_single_cert: the latter parses the certificate with
        // webpki, which refuses version 1 (what this front exists to serve).
        let certified = Arc::new(rustls::sign::CertifiedKey::new(chain, signing));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(certified)));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = handshakes.clone();
        let target = server_addr();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (acceptor, count) = (acceptor.clone(), count.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 8];
                    if client.read_exact(&mut first).await.is_err()
                        || first != SSL_REQUEST
                        || client.write_all(b"S").await.is_err()
                    {
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        });
        Self { addr, handshakes }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(std::sync::atomic::Ordering::SeqCst)
    }
}
