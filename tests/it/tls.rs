//! PostgreSQL over TLS against the real test server, with the certificates
//! scripts/pg-tls.sh made (a CA for the server's certificate, which names only
//! `localhost`, and another CA that signed nothing): each `sslmode` does what libpq's does,
//! the server itself reports the session as encrypted, and every way TLS can fail stops
//! start-up with one line naming DATABASE_URL, never falling back to clear text.

use std::time::Duration;

use hyper::StatusCode;
use pbx_portal::config::DatabaseUrl;
use pbx_portal::store::Store;
use serde_json::json;

use crate::support::app::TestApp;
use crate::support::process::{command, Scratch};
use crate::support::tls::{self, key_value, NoTlsServer, TlsFront};

/// A pool of two connections to the `postgres` database with `extra` settings.
async fn connect(extra: &str) -> Result<Store, String> {
    let url = DatabaseUrl::try_from(key_value("postgres", None, extra))?;
    Store::connect(&url, 2).await.map_err(|e| e.to_string())
}

/// Whether the server sees the session of a connection made with `extra` as TLS, and
/// with which protocol.
async fn session(extra: &str) -> (bool, Option<String>) {
    let store = connect(extra)
        .await
        .unwrap_or_else(|e| panic!("{extra}: {e}"));
    let s = store.session_tls().await.unwrap();
    (s.encrypted, s.version)
}

#[tokio::test]
async fn each_sslmode_against_a_server_with_tls() {
    let ca = tls::ca();
    let cases = [
        ("host=127.0.0.1 sslmode=disable".to_owned(), false),
        // libpq's default is prefer: TLS when the server offers it.
        ("host=127.0.0.1".to_owned(), true),
        ("host=127.0.0.1 sslmode=prefer".to_owned(), true),
        // require verifies nothing: the certificate's name and CA do not matter.
        ("host=127.0.0.1 sslmode=require".to_owned(), true),
        // verify-ca checks the chain, not the name (the certificate is for localhost).
        (
            format!("host=127.0.0.1 sslmode=verify-ca sslrootcert={ca}"),
            true,
        ),
        (
            format!("host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca}"),
            true,
        ),
        // libpq: require with a root certificate verifies as verify-ca.
        (
            format!("host=127.0.0.1 sslmode=require sslrootcert={ca}"),
            true,
        ),
    ];
    for (extra, want) in cases {
        let (encrypted, version) = session(&extra).await;
        assert_eq!(encrypted, want, "{extra}");
        if want {
            assert_eq!(version.as_deref(), Some("TLSv1.3"), "{extra}");
        }
    }
}

#[tokio::test]
async fn prefer_uses_clear_text_only_when_the_server_has_no_tls() {
    let plain = NoTlsServer::start().await;
    let port = plain.port();
    for extra in [
        format!("host=127.0.0.1 port={port} sslmode=prefer"),
        format!("host=127.0.0.1 port={port}"),
        format!("host=127.0.0.1 port={port} sslmode=disable"),
    ] {
        assert_eq!(session(&extra).await, (false, None), "{extra}");
    }
    for extra in [
        format!("host=127.0.0.1 port={port} sslmode=require"),
        format!(
            "host=localhost hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={}",
            tls::ca()
        ),
    ] {
        let e = connect(&extra).await.err().expect(&extra);
        assert!(
            e.starts_with("DATABASE_URL: the server does not offer TLS"),
            "{extra}: {e}"
        );
    }
}

#[tokio::test]
async fn failover_hosts_are_each_held_to_verify_full() {
    // The first host declines TLS: it is skipped (not used in clear text), and the
    // second, the read-write primary, is reached over verified TLS.
    let plain = NoTlsServer::start().await;
    let real = tls::server_addr().port();
    let extra = format!(
        "host=localhost,localhost hostaddr=127.0.0.1,127.0.0.1 port={},{real} target_session_attrs=read-write sslmode=verify-full sslrootcert={}",
        plain.port(),
        tls::ca()
    );
    assert_eq!(session(&extra).await, (true, Some("TLSv1.3".into())));
}

/// What `pbx-portal serve` prints and returns when DATABASE_URL is `url`; a `serve` that
/// starts instead is killed when the wait ends.
async fn serve_with(s: &mut Scratch, url: &str) -> (Option<i32>, String) {
    s.set("DATABASE_URL", url);
    let mut cmd = tokio::process::Command::from(command(s.etc(), &s.vars));
    cmd.arg("serve").kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("serve stops by itself")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn every_tls_failure_stops_start_up_with_one_line_naming_database_url() {
    const PASSWORD: &str = "tls-test-secret-9f2c";
    let plain = NoTlsServer::start().await;
    let mut s = Scratch::new().await;
    let db = s.db.name.clone();
    let (ca, other) = (tls::ca(), tls::other_ca());
    let missing = s.etc().join("no-such-ca.pem");
    let cases = [
        (
            format!("host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={other}"),
            "TLS handshake failed (sslmode=verify-full): the server's certificate is not signed by a CA in sslrootcert",
        ),
        (
            format!("host=127.0.0.1 sslmode=verify-ca sslrootcert={other}"),
            "TLS handshake failed (sslmode=verify-ca): the server's certificate is not signed by a CA in sslrootcert",
        ),
        (
            format!("host=127.0.0.1 sslmode=require sslrootcert={other}"),
            "TLS handshake failed (sslmode=require): the server's certificate is not signed by a CA in sslrootcert",
        ),
        (
            format!("host=127.0.0.1 sslmode=verify-full sslrootcert={ca}"),
            "TLS handshake failed (sslmode=verify-full): invalid peer certificate: certificate not valid for name \"127.0.0.1\"",
        ),
        (
            format!("host=127.0.0.1 port={} sslmode=require", plain.port()),
            "the server does not offer TLS, and sslmode=require allows no clear text",
        ),
        (
            format!(
                "host=localhost hostaddr=127.0.0.1 port={} sslmode=verify-full sslrootcert={ca}",
                plain.port()
            ),
            "the server does not offer TLS, and sslmode=verify-full allows no clear text",
        ),
        (
            format!(
                "host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={}",
                missing.display()
            ),
            "DATABASE_URL: sslrootcert ",
        ),
    ];
    for (extra, reason) in &cases {
        let url = key_value(&db, Some(PASSWORD), extra);
        let (code, err) = serve_with(&mut s, &url).await;
        assert_eq!(code, Some(1), "{extra}: {err}");
        assert_eq!(err.lines().count(), 1, "{extra}: one line, got: {err}");
        assert!(
            err.starts_with("DATABASE_URL: ") && err.contains(reason),
            "{extra}: {err}"
        );
        assert!(
            !err.contains(PASSWORD),
            "{extra}: the password leaked: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }

    // The other commands that open the database stop the same way; check reports it.
    let (extra, reason) = &cases[0];
    s.set("DATABASE_URL", &key_value(&db, Some(PASSWORD), extra));
    for (args, prefix) in [
        (&["migrate"][..], "migrate failed: DATABASE_URL: "),
        (&["apply", "--dry-run"][..], "apply failed: DATABASE_URL: "),
    ] {
        let out = s.run(args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with(prefix) && err.contains(reason) && !err.contains(PASSWORD),
            "{args:?}: {err}"
        );
    }
    let out = s.run(&["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let db_line = text.lines().next().unwrap_or_default();
    assert!(
        db_line.starts_with("FAIL database ") && db_line.contains(reason),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));
}

#[tokio::test]
async fn the_service_over_verify_full_and_its_pool_in_status() {
    let db = crate::support::app::TestDb::create().await;
    let url = key_value(
        &db.name,
        None,
        &format!(
            "host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={}",
            tls::ca()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_on(
        db,
        dir,
        &[("DATABASE_URL", &url), ("PORTAL_DB_POOL_SIZE", "5")],
    )
    .await;
    for i in 0..3 {
        app.create_user(&format!("Tls {i}"), &format!("tls{i}@x.org"))
            .await;
    }
    let st = app.get("/status").await;
    assert_eq!(st.status, StatusCode::OK);
    assert_eq!(st.body["database"], "ok");
    let pool = &st.body["pool"];
    assert_eq!(pool["size"], 5, "{pool}");
    let (in_use, idle) = (pool["in_use"].as_u64(), pool["idle"].as_u64());
    assert!(
        matches!((in_use, idle), (Some(u), Some(i)) if u + i <= 5 && i >= 1),
        "{pool}"
    );
    assert_eq!(
        app.store().pool_state().size,
        5,
        "the configured size reaches the pool"
    );

    // The server's view of every connection the portal holds to its database.
    let admin = app.db().client().await;
    let rows = admin
        .query(
            "SELECT s.ssl, s.version FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
            &[&app.db().name],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        let (ssl, version): (bool, Option<String>) = (r.get(0), r.get(1));
        assert_eq!((ssl, version.as_deref()), (true, Some("TLSv1.3")));
    }
    let users = app.get("/users").await;
    assert_eq!(users.body["total"], json!(3));
}

#[tokio::test]
async fn check_says_whether_the_session_is_encrypted() {
    let mut s = Scratch::new().await;
    let etc = s.etc().to_owned();
    std::fs::write(
        etc.join("pjsip.conf"),
        "[transport-udp]\ntype=transport\n#tryinclude pjsip.d/synergycall/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("extensions.conf"),
        "#tryinclude extensions.d/synergycall/*.conf\n",
    )
    .unwrap();
    assert!(s.run(&["migrate"]).await.status.success());
    // The URL form this time: hostaddr and the TLS parameters in the query.
    let admin: tokio_postgres::Config = crate::support::app::admin_url().parse().unwrap();
    let user = admin.get_user().unwrap_or("postgres");
    let password = admin
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    let port = tls::server_addr().port();
    let verified = format!(
        "postgres://{user}{password}@localhost:{port}/{}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        s.db.name,
        tls::ca()
    );
    let clear = format!(
        "postgres://{user}{password}@127.0.0.1:{port}/{}?sslmode=disable",
        s.db.name
    );
    for (url, want) in [
        (
            verified,
            "ok   database tls     encrypted (TLSv1.3, verify-full)",
        ),
        (
            clear,
            "ok   database tls     not encrypted (sslmode=disable; loopback or Unix socket only)",
        ),
    ] {
        s.set("DATABASE_URL", &url);
        let out = s.run(&["check"]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.lines().any(|l| l == want), "{want}\n{text}");
    }
}

#[tokio::test]
async fn unverified_modes_accept_the_manuals_version_1_certificate_as_libpq_does() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tls::manual_certificates(dir.path());
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let front = TlsFront::start(&certs.server, &certs.key, versions).await;
        let port = front.port();
        for mode in ["prefer", "require"] {
            let before = front.handshakes();
            let store = connect(&format!("host=127.0.0.1 port={port} sslmode={mode}"))
                .await
                .unwrap_or_else(|e| panic!("{versions:?} {mode}: {e}"));
            store.ping().await.unwrap();
            assert!(front.handshakes() > before, "{versions:?} {mode}: no TLS");
        }
        // Verification needs version 3, and says so.
        let e = connect(&format!(
            "host=localhost hostaddr=127.0.0.1 port={port} sslmode=verify-ca sslrootcert={}",
            certs.root.display()
        ))
        .await
        .err()
        .expect("verify-ca refuses a version 1 certificate");
        assert!(e.contains("X.509 version 1"), "{versions:?}: {e}");
    }
}
