//! HTTPS on PORTAL_LISTEN, against the real binary with the certificates of
//! scripts/test-ca.sh: the API over TLS with HSTS, plain HTTP refused, a certificate
//! renewal on SIGHUP with connections kept, a bad renewal keeping the old certificate,
//! start-up errors, and the warning for clear text off loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::{TestDb, TOKEN};
use crate::support::eventually;
use crate::support::https::{self, capture_stderr, connect, der, install};
use crate::support::process::{command, free_addr, Portal, Scratch};

/// A portal serving HTTPS with `server.crt` (copied into its folder as cert.pem/key.pem).
async fn https_portal(db: &TestDb, dir: &Path) -> Portal {
    install("server", dir);
    let vars = https::vars(dir);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Portal::spawn(&db.url, dir, &extra).await
}

fn hsts(headers: &hyper::HeaderMap) -> Option<&str> {
    headers
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
}

/// A new connection's certificate, once it is `want` (each look is a new handshake).
async fn new_connections_get(addr: SocketAddr, want: &[u8]) {
    eventually(
        "new connections get the new certificate",
        Duration::from_secs(10),
        || async move {
            let c = connect(addr).await.ok()?;
            (c.certificate == want).then_some(())
        },
    )
    .await
}

#[tokio::test]
async fn the_api_answers_over_https_with_hsts_and_plain_http_gets_no_answer() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let portal = https_portal(&db, dir.path()).await;

    // A peer that opens TCP and never speaks holds nothing up.
    let _silent = tokio::net::TcpStream::connect(portal.addr).await.unwrap();

    let mut c = connect(portal.addr)
        .await
        .expect("a client trusting the test CA");
    assert_eq!(c.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(c.version, Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(c.certificate, der("server"));
    let (status, headers, _) = c.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hsts(&headers), Some("max-age=31536000"));
    let (status, headers, body) = c.get("/users", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(hsts(&headers), Some("max-age=31536000"));
    // Every answer, refusals too.
    let (status, headers, _) = c.get("/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(hsts(&headers), Some("max-age=31536000"));

    // Plain HTTP to the TLS port: no HTTP answer, whatever comes back.
    let mut plain = tokio::net::TcpStream::connect(portal.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server closes the connection");
    assert!(
        !got.starts_with(b"HTTP/"),
        "an HTTP answer in clear: {:?}",
        String::from_utf8_lossy(&got)
    );

    // Nor does it hold up a graceful stop (the handshake bound is 10 s).
    let stopping = std::time::Instant::now();
    portal.signal("TERM");
    let (code, _) = portal.wait();
    assert_eq!(code, Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "stopped after {:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn sighup_serves_a_renewed_certificate_to_new_connections_and_keeps_open_ones() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut portal = https_portal(&db, dir.path()).await;
    let log = capture_stderr(&mut portal.child);

    let mut before = connect(portal.addr).await.unwrap();
    assert_eq!(before.certificate, der("server"));
    assert_eq!(before.get("/healthz", None).await.0, StatusCode::OK);

    install("server2", dir.path());
    portal.signal("HUP");
    new_connections_get(portal.addr, &der("server2")).await;
    assert!(
        log.lock().unwrap().contains("TLS certificate re-read"),
        "{}",
        log.lock().unwrap()
    );

    // The connection opened before the renewal goes on, with its certificate.
    let (status, headers, _) = before.get("/users", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hsts(&headers), Some("max-age=31536000"));
    assert_eq!(before.certificate, der("server"));
    let mut after = connect(portal.addr).await.unwrap();
    assert_eq!(after.get("/healthz", None).await.0, StatusCode::OK);

    // A graceful stop still drains with both connections open.
    portal.signal("TERM");
    let (code, _) = portal.wait();
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_bad_file_on_sighup_keeps_the_old_certificate_and_says_why() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut portal = https_portal(&db, dir.path()).await;
    let log = capture_stderr(&mut portal.child);
    let key = dir.path().join("key.pem");

    // A renewal cut short: the new certificate, the old key.
    std::fs::copy(
        https::dir().join("server2.crt"),
        dir.path().join("cert.pem"),
    )
    .unwrap();
    portal.signal("HUP");
    eventually("the mismatch is logged", Duration::from_secs(10), || {
        let l = log.lock().unwrap().clone();
        std::future::ready(l.contains("not the key of the certificate").then_some(()))
    })
    .await;

    // A key file that is not a key: named, never quoted.
    let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1uZXZlci1wcmludGVk";
    std::fs::write(
        &key,
        format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    portal.signal("HUP");
    eventually("the bad key is logged", Duration::from_secs(10), || {
        let l = log.lock().unwrap().clone();
        std::future::ready(l.contains("the private key cannot be used").then_some(()))
    })
    .await;
    let text = log.lock().unwrap().clone();
    assert!(text.contains(&key.display().to_string()), "{text}");
    assert!(
        text.contains("still serving the previous one") && !text.contains(secret),
        "{text}"
    );

    let mut c = connect(portal.addr).await.unwrap();
    assert_eq!(c.certificate, der("server"), "the old certificate stays");
    assert_eq!(c.get("/healthz", None).await.0, StatusCode::OK);

    // Fixed files are taken at the next SIGHUP.
    install("server2", dir.path());
    portal.signal("HUP");
    new_connections_get(portal.addr, &der("server2")).await;
    portal.signal("TERM");
    assert_eq!(portal.wait().0, Some(0));
}

#[tokio::test]
async fn https_needs_both_files_and_usable_ones_to_start() {
    let mut s = Scratch::new().await;
    let (cert, key) = install("server", s.etc());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());

    s.set("PORTAL_TLS_CERT", &cert);
    let out = s.run(&["serve"]).await;
    assert_eq!(out.status.code(), Some(2), "a configuration error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "configuration error: PORTAL_TLS_KEY: is required when PORTAL_TLS_CERT is set (HTTPS needs both files)"
    );

    s.vars.retain(|(k, _)| k != "PORTAL_TLS_CERT");
    s.set("PORTAL_TLS_KEY", &key);
    let out = s.run(&["serve"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORTAL_TLS_CERT: is required"));

    let missing = s.etc().join("missing.pem").display().to_string();
    s.set("PORTAL_TLS_CERT", &missing);
    let out = s.run(&["serve"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("PORTAL_TLS_CERT {missing}: cannot be read")),
        "{err}"
    );

    s.set("PORTAL_TLS_CERT", &cert);
    let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1uZXZlci1wcmludGVk";
    std::fs::write(
        &key,
        format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let out = s.run(&["serve"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "PORTAL_TLS_KEY {key}: the private key cannot be used"
        )),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");
}

#[tokio::test]
async fn clear_text_off_loopback_warns_in_the_log_and_in_check() {
    let mut s = Scratch::new().await;
    let port = free_addr().port();
    s.set("PORTAL_LISTEN", &format!("0.0.0.0:{port}"));
    let warning = "bearer tokens cross the network in clear";

    // Every interface: reached here on loopback only.
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = command(s.etc(), &s.vars)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut portal = Portal { child, addr };
    let log = capture_stderr(&mut portal.child);
    eventually("it serves", Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(addr).await.ok()
    })
    .await;
    // SIGHUP without HTTPS: nothing to re-read, and the process goes on.
    portal.signal("HUP");
    eventually("SIGHUP is logged", Duration::from_secs(10), || {
        let l = log.lock().unwrap().clone();
        std::future::ready(l.contains("nothing to re-read").then_some(()))
    })
    .await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    portal.signal("TERM");
    let (code, _) = portal.wait();
    let err = log.lock().unwrap().clone();
    assert_eq!(code, Some(0), "it starts: {err}");
    let line = err
        .lines()
        .find(|l| l.contains(warning))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        line.contains("WARN") && line.contains("PORTAL_TLS_CERT"),
        "{line}"
    );

    let https_line = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("https"))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no https line: {out:?}"))
    };
    let l = https_line(&s.run(&["check"]).await);
    assert!(l.starts_with("warn ") && l.contains(warning), "{l}");

    // On loopback, or with TLS, nothing to warn about.
    s.set("PORTAL_LISTEN", &format!("127.0.0.1:{port}"));
    let l = https_line(&s.run(&["check"]).await);
    assert!(l.starts_with("ok ") && l.contains("loopback only"), "{l}");
    s.set("PORTAL_LISTEN", &format!("0.0.0.0:{port}"));
    install("server", s.etc());
    for (k, v) in https::vars(s.etc()) {
        s.set(&k, &v);
    }
    let l = https_line(&s.run(&["check"]).await);
    assert!(l.starts_with("ok ") && l.contains("sha256 "), "{l}");
}
