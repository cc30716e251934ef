//! What an operator relies on when something is wrong: health and status that answer
//! within a second whatever the database or Asterisk does, one log line per request that
//! names the route and never what a client typed, database errors logged with their
//! SQLSTATE, and stored data the portal does not recognise reported as an error.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support::app::{TestApp, TestDb, TOKEN};
use crate::support::asterisk::{Fault, Options};
use crate::support::process::Portal;
use crate::support::proxy::Proxy;
use crate::support::{self, Stand};

/// The PostgreSQL server behind a test database URL.
async fn server_of(url: &str) -> (String, SocketAddr) {
    let cfg: tokio_postgres::Config = url.parse().unwrap();
    let host = match &cfg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("the test database must be reached over TCP, not {other:?}"),
    };
    let hostport = format!("{host}:{}", cfg.get_ports()[0]);
    let addr = tokio::net::lookup_host(&hostport)
        .await
        .unwrap()
        .next()
        .unwrap();
    (hostport, addr)
}

/// Asserts that `what` took less than the one second an operator may wait.
fn within_a_second(what: &str, started: Instant) {
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{what} took {took:?}");
}

#[tokio::test]
async fn healthz_and_status_answer_within_a_second_while_the_database_hangs() {
    let db = TestDb::create().await;
    let (hostport, server) = server_of(&db.url).await;
    let proxy = Proxy::start(server).await;
    let url = db.url.replacen(&hostport, &proxy.addr.to_string(), 1);
    let dirs = tempfile::tempdir().unwrap();
    let app = TestApp::start_on(db, dirs, &[("DATABASE_URL", &url)]).await;
    app.create_user("Alice", "alice@x.org").await;
    assert_eq!(app.post("/apply", json!({})).await.status, StatusCode::OK);
    app.create_user("Bob", "bob@x.org").await;
    let before = app.get("/status").await.body;
    assert_eq!(
        (before["database"].clone(), before["pending"].clone()),
        (json!("ok"), json!(true))
    );
    assert_eq!(before["last_apply"]["status"], "applied");

    proxy.pause();
    let t = Instant::now();
    let r = app.get("/healthz").await;
    within_a_second("GET /healthz", t);
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.body["status"], "unavailable");
    assert_ne!(r.body["database"], "ok");

    let t = Instant::now();
    let r = app.get("/status").await;
    within_a_second("GET /status", t);
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.body["database"], "ok", "{}", r.body);
    // Unknown, not a guess: neither "nothing pending" nor "never applied".
    assert_eq!(r.body["pending"], Value::Null, "{}", r.body);
    assert_eq!(r.body["last_apply"], Value::Null, "{}", r.body);

    proxy.resume();
    let r = app.get("/status").await;
    assert_eq!(
        (r.body["database"].clone(), r.body["pending"].clone()),
        (json!("ok"), json!(true))
    );
}

#[tokio::test]
async fn status_answers_within_a_second_while_asterisk_hangs() {
    let Stand { app, ast } = support::stand(Options::default(), &[]).await;
    assert_eq!(app.get("/status").await.body["ami"], "ok");
    ast.set_fault(Fault::Stall(Duration::from_secs(5)));
    let t = Instant::now();
    let r = app.get("/status").await;
    within_a_second("GET /status", t);
    let ami = r.body["ami"].as_str().unwrap_or_default();
    assert!(ami.contains("within"), "{}", r.body);
    assert_eq!(r.body["database"], "ok");
    assert_eq!(r.body["pending"], false);
}

#[tokio::test]
async fn an_unknown_apply_status_in_the_database_is_an_error_not_running() {
    let app = TestApp::spawn().await;
    let c = app.db().client().await;
    c.batch_execute(
        "ALTER TABLE apply_audit_log DROP CONSTRAINT apply_audit_log_status_check;
         INSERT INTO apply_audit_log (status) VALUES ('paused')",
    )
    .await
    .unwrap();
    let r = app.get("/applies").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "internal");
    let r = app.get("/status").await;
    assert_eq!(r.body["last_apply"], Value::Null, "{}", r.body);
}

#[tokio::test]
async fn one_log_line_per_request_names_the_route_and_database_errors_their_sqlstate() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let portal = Portal::spawn(&db.url, dir.path(), &[]).await;
    let app = TestApp::client_for(portal.addr);
    let created = app
        .create_user("Needle Person", "needle.person@x.org")
        .await;
    let id = created["id"].as_i64().unwrap();
    let secret = created["sip_password"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/users/{id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/users?q=haystack-4711").await.status,
        StatusCode::OK
    );
    assert_eq!(app.get("/nowhere/4711").await.status, StatusCode::NOT_FOUND);
    db.client()
        .await
        .batch_execute("DROP TABLE apply_audit_log CASCADE")
        .await
        .unwrap();
    let r = app.get("/applies").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.body["error"]["message"], "internal error",
        "no detail for the client"
    );

    portal.signal("TERM");
    let (code, log) = portal.wait();
    assert_eq!(code, Some(0), "{log}");
    let answered: Vec<&str> = log.lines().filter(|l| l.contains(" answered ")).collect();
    assert_eq!(answered.len(), 5, "one line per request:\n{log}");
    for (route, status) in [
        ("POST route=/users", "status=201"),
        ("GET route=/users/{id}}", "status=200"),
        ("GET route=/users}", "status=200"),
        ("GET route=(unknown)}", "status=404"),
        ("GET route=/applies}", "status=500"),
    ] {
        assert!(
            answered
                .iter()
                .any(|l| l.contains(route) && l.contains(status)),
            "no line for {route} {status}:\n{log}"
        );
    }
    let error = log
        .lines()
        .find(|l| l.contains("internal error"))
        .unwrap_or_else(|| panic!("the database error is not logged:\n{log}"));
    assert!(
        error.contains("route=/applies") && error.contains("SQLSTATE 42P01"),
        "the error line names neither its request nor its SQLSTATE: {error}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
    );
    for typed in [
        "haystack-4711",
        "Needle",
        "needle.person",
        "4711",
        &secret,
        TOKEN,
    ] {
        assert!(!log.contains(typed), "{typed:?} reached the log:\n{log}");
    }
}
