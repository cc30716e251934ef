//! The console in a real browser: Debian's chromium, headless, driven by Playwright
//! (`tests/console/run.mjs`, node's test runner) against a portal wired to its own Asterisk
//! stand-in on a fresh database. This file starts the portal and a small loopback control
//! server through which the browser script acts on what a browser cannot: a phone
//! registering on the stand-in, a fault that makes the next apply's probe fail, users seeded
//! in bulk, tokens of given scopes, the database's user count and the generated files.
//!
//! Nothing is skipped: without chromium or tests/console/node_modules the test fails and
//! says to run scripts/browser-deps.sh (scripts/test.sh does).
//!
//! `UPDATE_SCREENSHOTS=1 cargo test --test it console` writes the screenshots the README and
//! docs show into docs/images/; otherwise they go to a temporary folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::app::{create_token, TestApp, TOKEN};
use crate::support::asterisk::{Fault, Options, Tamper};
use crate::support::{https, pairs, stand, Stand, PROBE_3S};

/// The whole browser run's limit: far above what it takes (about a minute on a loaded
/// 2-core machine), so that a hang ends the test with the script's output.
const RUN_LIMIT: Duration = Duration::from_secs(420);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails (never skips) when what the browser tests need is not installed.
fn browser_deps() {
    let hint = "run scripts/browser-deps.sh (it installs Debian's chromium and the pinned \
                playwright-core in tests/console/node_modules)";
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: {hint}"
    );
    assert!(
        repo()
            .join("tests/console/node_modules/playwright-core/package.json")
            .exists(),
        "tests/console/node_modules is missing: {hint}"
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.map(|o| o.status.success()).unwrap_or(false),
        "node is missing: {hint}"
    );
}

/// Where the screenshots go: docs/images/ when UPDATE_SCREENSHOTS is set, else a folder
/// that lives as long as the test.
fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| !v.is_empty() && v != "0") {
        let dir = repo().join("docs/images");
        std::fs::create_dir_all(&dir).unwrap();
        (dir, None)
    } else {
        let t = tempfile::tempdir().unwrap();
        (t.path().to_owned(), Some(t))
    }
}

/// SHA-256 of every generated file, by folder/name: what "the files are intact" compares.
fn file_digests(s: &Stand) -> Value {
    let mut out = serde_json::Map::new();
    for dir in [&s.app.pjsip_dir, &s.app.dialplan_dir] {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            let key = format!(
                "{}/{}",
                dir.file_name().unwrap().to_string_lossy(),
                e.file_name().to_string_lossy()
            );
            let hex: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            out.insert(key, json!(hex));
        }
    }
    Value::Object(out)
}

/// The contact a phone of `extension` registers (its own port, so several can be online).
fn contact(extension: &str) -> (String, std::net::SocketAddr) {
    let port = 20000 + extension.parse::<u16>().unwrap_or(0) % 10000;
    (
        format!("sip:{extension}@127.0.0.1:{port}"),
        ([127, 0, 0, 1], port).into(),
    )
}

/// One control request: `(status, JSON answer)`.
async fn control(s: &Stand, method: &str, path: &str, body: Value) -> (u16, Value) {
    let text = |k: &str| body[k].as_str().map(str::to_owned);
    match (method, path) {
        ("POST", "/register") => {
            let ext = text("extension").unwrap_or_default();
            let (uri, source) = contact(&ext);
            match s.ast.register(
                &ext,
                &uri,
                "Yealink SIP-T46U 66.86",
                source,
                Duration::from_secs(3600),
            ) {
                Ok(()) => (200, json!({"uri": uri})),
                Err(e) => (409, json!({"error": format!("{e:?}")})),
            }
        }
        ("POST", "/unregister") => {
            let ext = text("extension").unwrap_or_default();
            let (uri, _) = contact(&ext);
            match s.ast.unregister(&ext, &uri) {
                Ok(()) => (200, json!({})),
                Err(e) => (409, json!({"error": format!("{e:?}")})),
            }
        }
        ("POST", "/fault/probe") => {
            // The next PJSIP load reads the endpoints file cut in half: the probe finds its
            // sentinel missing and the portal rolls back (tests/it/proof.rs).
            let tamper = Tamper::truncate("generated_endpoints.conf");
            s.ast.set_fault(Fault::TamperBeforeLoad(tamper));
            (200, json!({}))
        }
        ("POST", "/fault/stall") => {
            // AMI (and the CLI) accept actions but answer only after this long: an apply
            // holds its lock meanwhile.
            let ms = body["ms"].as_u64().unwrap_or(2000);
            s.ast.set_fault(Fault::Stall(Duration::from_millis(ms)));
            (200, json!({}))
        }
        ("POST", "/fault/clear") => {
            s.ast.clear_faults();
            (200, json!({}))
        }
        ("POST", "/rename") => {
            // Straight into the database: names the API refuses (`<`, `>`, `"`), as an older
            // version or another tool could have left them. The console must show them as
            // text all the same.
            let n = s
                .app
                .db()
                .client()
                .await
                .execute(
                    "UPDATE users SET name = $1 WHERE id::text = $2",
                    &[
                        &text("name").unwrap_or_default(),
                        &text("id").unwrap_or_default(),
                    ],
                )
                .await
                .unwrap();
            (if n == 1 { 200 } else { 404 }, json!({"updated": n}))
        }
        ("GET", "/files") => (200, file_digests(s)),
        ("GET", "/users/count") => {
            let n: i64 = s
                .app
                .db()
                .client()
                .await
                .query_one("SELECT count(*) FROM users", &[])
                .await
                .unwrap()
                .get(0);
            (200, json!({"count": n}))
        }
        ("POST", "/seed") => {
            let n = body["users"].as_u64().unwrap_or(0);
            let prefix = text("prefix").unwrap_or_else(|| "seed".into());
            let mut made = 0;
            // The import API's limit is 10,000 rows a request.
            for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
                let users: Vec<Value> = chunk
                    .iter()
                    .map(|i| {
                        json!({"name": format!("{prefix} user {i:05}"),
                               "email": format!("{prefix}{i:05}@seed.example")})
                    })
                    .collect();
                let r = s.app.post("/users/import", json!({"users": users})).await;
                if r.status != StatusCode::CREATED {
                    return (500, json!({"error": r.body}));
                }
                made += chunk.len();
            }
            (200, json!({"created": made}))
        }
        ("POST", "/token") => {
            let name = text("name").unwrap_or_else(|| "browser".into());
            let scopes: Vec<String> = body["scopes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let token = create_token(&s.app, &name, &scopes, text("tenant").as_deref()).await;
            (200, json!({"token": token}))
        }
        _ => (
            404,
            json!({"error": format!("no control route {method} {path}")}),
        ),
    }
}

/// Reads one HTTP/1.1 request (Content-Length bodies only), answers it, closes.
async fn serve_one(s: Arc<Stand>, mut sock: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, path) = (
        first.next().unwrap_or("").to_owned(),
        first.next().unwrap_or("").to_owned(),
    );
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Value = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
    let (status, answer) = control(&s, &method, &path, body).await;
    let answer = answer.to_string();
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

/// The control server on a loopback port the kernel chose; its URL.
async fn control_server(s: Arc<Stand>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve_one(s.clone(), sock));
        }
    });
    (url, task)
}

/// Runs `node tests/console/<script>` with `env`; fails with its output unless it exits 0.
async fn run_node(script: &str, env: &[(&str, String)]) {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(repo().join("tests/console").join(script))
        .current_dir(repo().join("tests/console"))
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("node {script} did not end within {RUN_LIMIT:?}"))
        .expect("start node");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "node {script} failed ({}):\n{text}",
        out.status
    );
    // The passing run's summary, visible with --nocapture.
    println!("{text}");
}

/// A portal with its stand-in, a tenant, an admin token and the control server: what
/// every browser scenario starts from.
async fn console_stand() -> (
    Arc<Stand>,
    Vec<(&'static str, String)>,
    tokio::task::JoinHandle<()>,
) {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    let r = s
        .app
        .post(
            "/tenants",
            json!({"slug": "acme", "name": "Acme Ltd", "extension_min": 100, "extension_max": 199}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let admin = create_token(
        &s.app,
        "console-admin",
        &["read", "write", "apply", "metrics", "admin"],
        None,
    )
    .await;
    let s = Arc::new(s);
    let (control_url, task) = control_server(s.clone()).await;
    let env = vec![
        ("PORTAL_URL", format!("http://{}", s.app.http.addr)),
        ("CONTROL_URL", control_url),
        ("ADMIN_TOKEN", admin),
    ];
    (s, env, task)
}

#[tokio::test]
async fn console_in_a_real_browser() {
    browser_deps();
    let (s, mut env, control) = console_stand().await;
    let (shots, _keep) = screenshot_dir();
    env.push(("SCREENSHOT_DIR", shots.display().to_string()));
    run_node("run.mjs", &env).await;
    control.abort();
    drop(s);
}

#[tokio::test]
async fn console_over_https_with_the_test_ca_trusted() {
    browser_deps();
    // The CA of scripts/test-ca.sh and the server certificate it signed (support::https).
    let files = tempfile::tempdir().unwrap();
    https::install("server", files.path());
    let app = TestApp::spawn_with(&pairs(&https::vars(files.path()))).await;
    let ca_cert = https::dir().join("ca.crt").display().to_string();
    run_node(
        "https.mjs",
        &[
            ("PORTAL_URL", format!("https://{}", app.http.addr)),
            ("ADMIN_TOKEN", TOKEN.to_owned()),
            ("CA_CERT", ca_cert.clone()),
            // The script's own requests (fetch) trust the test CA too.
            ("NODE_EXTRA_CA_CERTS", ca_cert),
        ],
    )
    .await;
}
