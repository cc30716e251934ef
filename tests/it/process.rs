//! The binary as a process: configuration errors, signals, and what it prints.

use crate::support::app::{TestApp, TestDb, TOKEN};
use crate::support::process::{command, env, free_addr, Portal, Scratch};
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn bad_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let base = env(
        "postgres://u:hunter2secret@127.0.0.1:1/db",
        dir.path(),
        free_addr(),
        free_addr(),
    );
    let cases = [
        ("PORTAL_LISTEN", "localhost:80"),
        ("PORTAL_AGI_LISTEN", "nope"),
        ("PORTAL_API_TOKEN", "short"),
        ("PORTAL_EXTENSION_MIN", "5000"),
        ("DATABASE_URL", ""),
        ("PORTAL_RELOAD", "ssh"),
    ];
    for (var, value) in cases {
        let mut vars = base.clone();
        vars.retain(|(k, _)| k != var);
        vars.push((var.into(), value.into()));
        let out = command(dir.path(), &vars).arg("serve").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{var}: {err}");
        assert!(err.contains(var), "{var}: {err}");
        assert!(!err.contains("hunter2") && !err.contains(TOKEN), "{err}");
    }
    let mut vars = base.clone();
    vars.retain(|(k, _)| k != "PORTAL_API_TOKEN");
    let out = command(dir.path(), &vars).arg("serve").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORTAL_API_TOKEN"));
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn a_bad_strategy_is_refused_by_the_command_line_naming_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let vars = env(
        "postgres://u@127.0.0.1:1/db",
        dir.path(),
        free_addr(),
        free_addr(),
    );
    for bad in ["sideways", "Rolling", ""] {
        let out = command(dir.path(), &vars)
            .args(["apply", "--strategy", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("must be parallel or rolling"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_nothing_secret_is_logged() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let portal = Portal::spawn(&db.url, dir.path(), &[]).await;
    let app = TestApp::client_for(portal.addr);
    let mut secrets = Vec::new();
    for i in 0..3 {
        let key = format!("key-{i}");
        let body = json!({"name": format!("U{i}"), "email": format!("u{i}@x.org")});
        let r = app
            .post_with("/users", body, &[("Idempotency-Key", &key)])
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        secrets.push(r.body["sip_password"].as_str().unwrap().to_owned());
        let id = r.body["id"].clone();
        let r = app.post(&format!("/users/{id}/secret"), json!({})).await;
        secrets.push(r.body["sip_password"].as_str().unwrap().to_owned());
    }
    app.post("/users", json!({"name": "bad;", "email": "x"}))
        .await;
    // An import (replayed once), a refused one and an export: their secrets too.
    let file = bytes::Bytes::from("name,email\nI1,i1@x.org\nI2,i2@x.org\n");
    for _ in 0..2 {
        let r = app
            .send(
                hyper::Method::POST,
                "/users/import",
                Some(("text/csv", file.clone())),
                &[("Idempotency-Key", "import-key")],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        for u in r.body["users"].as_array().unwrap() {
            secrets.push(u["sip_password"].as_str().unwrap().to_owned());
        }
    }
    let refused = app
        .send(
            hyper::Method::POST,
            "/users/import",
            Some(("text/csv", bytes::Bytes::from("name,email\nI1,i1@x.org\n"))),
            &[],
            true,
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.get("/users/export").await.status, StatusCode::OK);
    // A named token: created, used, refused for a scope, revoked, then refused.
    let r = app
        .post("/tokens", json!({"name": "logged", "scopes": ["read"]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let named = r.body["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {named}");
    let as_named = [("authorization", bearer.as_str())];
    for (method, path, want) in [
        (hyper::Method::GET, "/users", StatusCode::OK),
        (hyper::Method::DELETE, "/users/1", StatusCode::FORBIDDEN),
    ] {
        let r = app.send(method, path, None, &as_named, false).await;
        assert_eq!(r.status, want);
    }
    assert_eq!(
        app.delete("/tokens/logged").await.status,
        StatusCode::NO_CONTENT
    );
    let r = app
        .send(hyper::Method::GET, "/users", None, &as_named, false)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(named.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    secrets.extend([named.clone(), named[5..].to_owned(), hash]);
    assert_eq!(
        app.post("/apply", json!({})).await.body["status"],
        "applied"
    );
    portal.signal("TERM");
    let (code, stderr) = portal.wait();
    assert_eq!(code, Some(0), "exit {code:?}: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(
        stderr.contains("apply finished"),
        "debug logs were on: {stderr}"
    );
    for s in &secrets {
        assert!(!stderr.contains(s.as_str()), "secret in the log");
    }
    assert!(!stderr.contains(TOKEN));
    assert!(stderr.contains("token revoked"), "{stderr}");
}

#[tokio::test]
async fn migrate_twice_at_once_is_safe() {
    let s = Scratch::new().await;
    let runs: Vec<_> = (0..4)
        .map(|_| command(s.etc(), &s.vars).arg("migrate").spawn().unwrap())
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    let c = s.db.client().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, pbx_portal::store::MIGRATIONS.len() as i64);
}

fn record(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn apply_from_the_shell_prints_the_record_and_exits_by_status() {
    let s = Scratch::new().await;
    let endpoints = s.etc().join("pjsip.d/synergycall/generated_endpoints.conf");
    assert!(s.run(&["migrate"]).await.status.success());
    let c = s.db.client().await;
    c.execute("SELECT portal_create_user('Shell', 'shell@x.org', NULL, 1000, 1999, 'abcdefghijklmnopqrstuvwx')", &[]).await.unwrap();

    let dry = s.run(&["apply", "--dry-run"]).await;
    assert!(dry.status.success());
    let rec = record(&dry);
    assert_eq!(
        (rec["status"].as_str(), rec["changes"]["added"].clone()),
        (Some("dry_run"), json!([1000]))
    );
    assert!(!endpoints.exists());

    let out = s.run(&["apply"]).await;
    assert!(out.status.success());
    assert_eq!(record(&out)["status"], "applied");
    assert!(endpoints.exists());
    assert_eq!(record(&s.run(&["apply"]).await)["status"], "unchanged");

    // A failure exits non-zero with the failed record on stdout.
    std::fs::remove_dir_all(s.etc().join("extensions.d")).unwrap();
    c.execute(
        "UPDATE extensions SET secret = 'zyxwvutsrqponmlkjihgfedc'",
        &[],
    )
    .await
    .unwrap();
    let failed = s.run(&["apply"]).await;
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(record(&failed)["error"]["code"], "write_failed");
}

#[tokio::test]
async fn check_reports_one_line_per_check_and_fails_on_any() {
    let s = Scratch::new().await;
    let etc = s.etc();
    std::fs::write(
        etc.join("pjsip.conf"),
        "[global]\ntype=global\n[transport-udp]\ntype=transport\nprotocol=udp\n#tryinclude pjsip.d/synergycall/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("extensions.conf"),
        "[general]\n#include extensions.d/synergycall/*.conf\n",
    )
    .unwrap();

    let out = s.run(&["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} line: {text}"))
            .to_owned()
    };
    assert!(
        line("database").starts_with("FAIL"),
        "not migrated yet: {text}"
    );
    assert!(line("pjsip.conf").starts_with("ok"));
    assert!(
        line("extensions.conf").starts_with("FAIL") && line("extensions.conf").contains("#include")
    );
    assert!(line("pjsip dir").starts_with("ok") && line("fastagi").starts_with("ok"));
    assert!(line("transports").starts_with("ok") && line("transport-udp (udp)").starts_with("ok"));
    assert!(
        line("transports live").starts_with("skip"),
        "PORTAL_RELOAD=none: {text}"
    );
    assert!(line("tls files").starts_with("ok") && line("res_srtp").starts_with("ok"));
    assert!(line("https").starts_with("ok"), "loopback: {text}");
    assert_eq!(text.lines().count(), 14);

    assert!(s.run(&["migrate"]).await.status.success());
    std::fs::write(
        etc.join("extensions.conf"),
        "[general]\n#tryinclude extensions.d/synergycall/*.conf\n",
    )
    .unwrap();
    let out = s.run(&["check"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
