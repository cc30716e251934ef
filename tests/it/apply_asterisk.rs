//! Apply against the Asterisk stand-in: AMI reload, CLI fallback, rollback on reload and
//! probe failures, the FastAGI probe and hostile FastAGI clients.

use crate::support;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::app::TestApp;
use crate::support::asterisk::{FakeAsterisk, Fault, Options};
use crate::support::{stand, Stand, PROBE_3S};
use hyper::StatusCode;
use pbx_portal::asterisk::render::is_intact;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ids(
    map: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
) -> Vec<String> {
    map.keys().cloned().collect()
}

fn files(app: &TestApp) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(app.pjsip_dir.join("generated_endpoints.conf")).unwrap_or_default(),
        std::fs::read(app.dialplan_dir.join("generated_routing.conf")).unwrap_or_default(),
    )
}

async fn apply(app: &TestApp) -> (StatusCode, Value) {
    let r = app.post("/apply", json!({})).await;
    (r.status, r.body)
}

/// Two users applied and live; returns the file contents of that state.
async fn baseline(s: &Stand) -> (Vec<u8>, Vec<u8>) {
    s.app.create_user("Alice", "alice@x.org").await;
    s.app.create_user("Bob", "bob@x.org").await;
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(ids(&s.ast.endpoints()), ["1000", "1001"]);
    files(&s.app)
}

#[tokio::test]
async fn a_healthy_apply_reloads_over_ami_and_the_probe_proves_it() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    s.app.create_user("Alice Example", "alice@x.org").await;
    s.app.create_user("Bob", "bob@x.org").await;
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["status"], "applied");
    assert_eq!(rec["reload"]["method"], "ami");
    assert_eq!(
        rec["reload"]["output"],
        "Module 'res_pjsip.so' reloaded successfully.\nDialplan reloaded."
    );
    // The first apply of a process visits every extension.
    assert_eq!(
        rec["health"],
        json!({"status": "ok", "checked": 2, "missing": [], "proof": {
            "scope": "all", "because": "no_earlier_proof", "visited": 2, "whole_files": 2,
            "total": 2
        }})
    );

    // What Asterisk now runs is what was applied, and the sentinel closing the file.
    assert_eq!(ids(&s.ast.endpoints()), ["1000", "1001"]);
    assert_eq!(
        ids(&s.ast.aors()),
        ["1000".into(), "1001".into(), s.app.sentinel()]
    );
    assert_eq!(
        s.ast.field("endpoint", "1000", "callerid").as_deref(),
        Some("\"Alice Example\" <1000>")
    );
    assert_eq!(
        s.ast.field("aor", "1000", "remove_existing").as_deref(),
        Some("true")
    );
    let internal = s.ast.dialplan("synergy-internal").unwrap();
    assert_eq!(
        internal,
        BTreeSet::from(["1000".to_owned(), "1001".to_owned()])
    );
    let actions = s.ast.actions();
    assert!(
        actions
            .iter()
            .any(|a| a == "AMI Command: module reload res_pjsip.so"),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "AMI Command: dialplan reload"));
    assert!(!actions
        .iter()
        .any(|a| a.contains("pjsip reload") && !a.contains("module")));
    assert_eq!(
        s.ast.agi_sessions(),
        1,
        "the Local channel's dialplan leg ran the probe once"
    );

    // Nothing changed: no reload at all.
    let reloads = s.ast.reloads();
    let (_, rec) = apply(&s.app).await;
    assert_eq!(rec["status"], "unchanged");
    assert_eq!(s.ast.reloads(), reloads);

    // A removed user disappears from the live Asterisk, and the probe checked it is gone.
    let bob = s.app.get("/users?q=bob").await.body["users"][0]["id"].clone();
    s.app.delete(&format!("/users/{bob}")).await;
    let (status, rec) = apply(&s.app).await;
    assert_eq!(
        (status, rec["health"]["checked"].as_i64()),
        (StatusCode::OK, Some(2)),
        "{rec}"
    );
    assert_eq!(ids(&s.ast.endpoints()), ["1000"]);
    assert!(!s.ast.dialplan("synergy-internal").unwrap().contains("1001"));

    let st = s.app.get("/status").await.body;
    assert_eq!(
        (st["ami"].as_str(), st["agi"].as_str()),
        (Some("ok"), Some("ok"))
    );
}

#[tokio::test]
async fn ami_unreachable_falls_back_to_the_cli() {
    for fault in [
        Fault::RefuseConnections,
        Fault::RejectLogin,
        Fault::DropMidReply,
    ] {
        let s = stand(Options::default(), &[PROBE_3S]).await;
        s.app.create_user("Alice", "alice@x.org").await;
        s.ast.set_fault(fault.clone());
        let (status, rec) = apply(&s.app).await;
        assert_eq!(status, StatusCode::OK, "{fault:?}: {rec}");
        assert_eq!(rec["reload"]["method"], "cli", "{fault:?}");
        let out = rec["reload"]["output"].as_str().unwrap();
        assert!(
            out.contains("used the CLI") && out.contains("Dialplan reloaded."),
            "{fault:?}: {out}"
        );
        assert_eq!(
            rec["health"]["status"], "ok",
            "{fault:?}: the probe went through `channel originate`"
        );
        assert!(
            s.ast
                .actions()
                .iter()
                .any(|a| a == "CLI module reload res_pjsip.so"),
            "{fault:?}"
        );
        assert_eq!(ids(&s.ast.endpoints()), ["1000"]);
    }
}

#[tokio::test]
async fn a_refused_reload_rolls_back_to_the_old_files_and_objects() {
    for faults in [
        vec![Fault::CommandError],
        vec![Fault::RefuseConnections, Fault::CliDown],
    ] {
        let s = stand(Options::default(), &[PROBE_3S]).await;
        let before = baseline(&s).await;
        let live = s.ast.endpoints();
        s.app.create_user("Carol", "carol@x.org").await;
        for f in &faults {
            s.ast.set_fault(f.clone());
        }
        let (status, rec) = apply(&s.app).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{faults:?}: {rec}");
        assert_eq!(rec["status"], "failed");
        assert_eq!(rec["error"]["code"], "reload_failed");
        assert_eq!(rec["rolled_back"], true);
        assert_eq!(
            files(&s.app),
            before,
            "{faults:?}: the previous files are back, byte for byte"
        );
        s.ast.clear_faults();
        assert_eq!(s.ast.endpoints(), live, "{faults:?}");
        let audit = &s.app.get("/applies?limit=1").await.body["applies"][0];
        assert_eq!(
            (audit["status"].as_str(), audit["error"]["code"].as_str()),
            (Some("failed"), Some("reload_failed"))
        );
        assert_eq!(
            s.app.get("/apply/pending").await.body["added"],
            json!([1002])
        );
    }
}

#[tokio::test]
async fn a_stalled_asterisk_times_out_into_a_rollback() {
    let s = stand(
        Options::default(),
        &[PROBE_3S, ("PORTAL_AMI_TIMEOUT_MS", "300")],
    )
    .await;
    let before = baseline(&s).await;
    s.app.create_user("Carol", "carol@x.org").await;
    s.ast.set_fault(Fault::Stall(Duration::from_secs(3)));
    let t = Instant::now();
    let (status, rec) = apply(&s.app).await;
    assert_eq!(
        (status, rec["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("reload_failed")),
        "{rec}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "bounded by the timeouts, not by Asterisk"
    );
    assert_eq!(files(&s.app), before);
}

#[tokio::test]
async fn an_object_asterisk_silently_dropped_fails_the_probe_and_rolls_back() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    let before = baseline(&s).await;
    let live = s.ast.endpoints();
    let bob = s.app.get("/users?q=bob").await.body["users"][0]["id"].clone();
    s.app.post(&format!("/users/{bob}/secret"), json!({})).await;
    s.app.create_user("Carol", "carol@x.org").await;
    // Carol (1002) is new: Asterisk fails to create her objects and has no previous
    // version to retain, so they are missing.
    s.ast.set_fault(Fault::RefuseObjects(vec!["1002".into()]));
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{rec}");
    assert_eq!(rec["error"]["code"], "health_check_failed");
    assert_eq!(rec["rolled_back"], true);
    assert_eq!(rec["health"]["status"], "failed");
    let missing = rec["health"]["missing"].as_array().unwrap();
    assert!(
        missing.contains(&json!("endpoint 1002 is missing")),
        "{missing:?}"
    );
    assert!(
        missing.contains(&json!("aor 1002 is missing")),
        "{missing:?}"
    );
    assert!(rec["error"]["message"]
        .as_str()
        .unwrap()
        .contains("endpoint 1002 is missing"));
    assert_eq!(files(&s.app), before);
    // The reload of the restored files brought back exactly the old objects (old secret).
    s.ast.clear_faults();
    assert_eq!(s.ast.endpoints(), live);
    let old_secret = String::from_utf8_lossy(&before.0)
        .lines()
        .find(|l| l.starts_with("password="))
        .map(str::to_owned);
    let live_auth = s.ast.auths()["1000"]["password"].clone();
    assert_eq!(old_secret, Some(format!("password={live_auth}")));
}

#[tokio::test]
async fn a_probe_that_never_arrives_or_hangs_up_fails_and_rolls_back() {
    for fault in [Fault::NeverCallBack, Fault::HangupMidProbe(0)] {
        let s = stand(Options::default(), &[("PORTAL_HEALTH_TIMEOUT_MS", "800")]).await;
        let before = baseline(&s).await;
        s.app.create_user("Carol", "carol@x.org").await;
        s.ast.set_fault(fault.clone());
        let (status, rec) = apply(&s.app).await;
        assert_eq!(
            (status, rec["error"]["code"].as_str()),
            (StatusCode::BAD_GATEWAY, Some("health_check_failed")),
            "{fault:?} {rec}"
        );
        let msg = rec["error"]["message"].as_str().unwrap();
        if fault == Fault::NeverCallBack {
            assert!(
                msg.contains("#tryinclude") && msg.contains("PORTAL_AGI_LISTEN"),
                "{msg}"
            );
        } else {
            assert!(msg.contains("hung up"), "{msg}");
        }
        assert_eq!(files(&s.app), before, "{fault:?}");
    }
}

#[tokio::test]
async fn health_check_off_skips_the_probe() {
    let s = stand(
        Options::default(),
        &[PROBE_3S, ("PORTAL_HEALTH_CHECK", "off")],
    )
    .await;
    s.app.create_user("Alice", "alice@x.org").await;
    let (status, rec) = apply(&s.app).await;
    assert_eq!(
        (status, rec["health"]["status"].as_str()),
        (StatusCode::OK, Some("skipped"))
    );
    assert_eq!(s.ast.agi_sessions(), 0);
}

#[tokio::test]
async fn cli_only_mode_reloads_and_probes_through_asterisk_rx() {
    let s = stand(Options::default(), &[PROBE_3S, ("PORTAL_RELOAD", "cli")]).await;
    s.app.create_user("Alice", "alice@x.org").await;
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(
        (
            rec["reload"]["method"].as_str(),
            rec["health"]["status"].as_str()
        ),
        (Some("cli"), Some("ok"))
    );
    assert!(!s.ast.actions().iter().any(|a| a.starts_with("AMI")));
}

async fn agi_session(addr: std::net::SocketAddr, script: &str, arg: Option<&str>) -> Vec<u8> {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut env = format!(
        "agi_network: yes\nagi_network_script: {script}\nagi_request: agi://{addr}/{script}\nagi_channel: Local/x@y-00000001;2\nagi_version: 22.7.0\n"
    );
    if let Some(a) = arg {
        env.push_str(&format!("agi_arg_1: {a}\n"));
    }
    env.push('\n');
    sock.write_all(env.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), sock.read_to_end(&mut got)).await;
    got
}

#[tokio::test]
async fn fastagi_tells_clients_without_a_valid_token_nothing() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    baseline(&s).await;
    let token = s
        .ast
        .actions()
        .iter()
        .find_map(|a| {
            a.split("Local/probe-")
                .nth(1)
                .map(|t| t.split('@').next().unwrap().to_owned())
        })
        .expect("the Originate channel is recorded");
    let agi = s.app.agi_addr;
    assert!(
        agi_session(agi, "health", None).await.is_empty(),
        "no token"
    );
    assert!(
        agi_session(agi, "health", Some("not-a-token"))
            .await
            .is_empty(),
        "wrong token"
    );
    assert!(
        agi_session(agi, "health", Some(&token)).await.is_empty(),
        "replayed token"
    );
    assert!(
        agi_session(agi, "other", Some(&token)).await.is_empty(),
        "other script"
    );

    // Garbage: an oversized line, a binary blob, an early close. The server survives.
    let mut sock = tokio::net::TcpStream::connect(agi).await.unwrap();
    let _ = sock.write_all(&vec![b'x'; 100_000]).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), sock.read_to_end(&mut got)).await;
    assert!(got.is_empty());
    drop(tokio::net::TcpStream::connect(agi).await.unwrap());
    let mut sock = tokio::net::TcpStream::connect(agi).await.unwrap();
    sock.write_all(b"\x00\xff\xfe\n\n").await.unwrap();
    drop(sock);

    s.app.create_user("Carol", "carol@x.org").await;
    let (status, rec) = apply(&s.app).await;
    assert_eq!(
        (status, rec["health"]["status"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{rec}"
    );
}

#[tokio::test]
async fn the_probe_of_a_thousand_extensions_stays_under_asterisks_line_limit() {
    let s = stand(
        Options::default(),
        &[
            ("PORTAL_EXTENSION_MAX", "2999"),
            ("PORTAL_HEALTH_TIMEOUT_MS", "10000"),
        ],
    )
    .await;
    let c = s.app.db().client().await;
    c.execute(
        "SELECT portal_create_user('User ' || g, 'u' || g || '@x.org', NULL, 1000, 2999, 'abcdefghijklmnopqrstuvwx') FROM generate_series(1, 1000) g",
        &[],
    )
    .await
    .unwrap();
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(
        (&rec["health"]["status"], &rec["health"]["checked"]),
        (&json!("ok"), &json!(1000)),
        "{rec}"
    );
    assert_eq!(rec["health"]["proof"]["visited"], 1000);
    assert_eq!(s.ast.endpoints().len(), 1000);
    assert!(
        !s.ast.log().iter().any(|l| l.contains("510")),
        "no command was refused"
    );
}

#[tokio::test]
async fn generated_files_are_intact_whole_files() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    let (e, r) = baseline(&s).await;
    assert!(
        is_intact(std::str::from_utf8(&e).unwrap()) && is_intact(std::str::from_utf8(&r).unwrap())
    );
}

#[tokio::test]
async fn check_logs_in_over_ami_and_names_missing_permissions() {
    for (perms, ok, missing) in [
        (vec!["command", "originate", "system"], true, ""),
        (vec!["command", "originate"], false, "PJSIPShowContacts"),
        (vec!["command"], false, "Originate"),
    ] {
        let mut scratch = support::process::Scratch::new().await;
        let ast = support::standin(scratch.etc(), Options::writing(&perms)).await;
        for (k, v) in support::ami_vars(&ast) {
            scratch.set(&k, &v);
        }
        assert!(scratch.run(&["migrate"]).await.status.success());
        let out = scratch.run(&["check"]).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.success(), ok, "{perms:?}: {text}");
        let ami = text.lines().find(|l| l.contains("ami ")).unwrap();
        if ok {
            assert!(
                ami.starts_with("ok") && ami.contains("PJSIPShowContacts allowed"),
                "{ami}"
            );
            assert!(
                text.lines().all(|l| l.starts_with("ok")),
                "the lab's files pass: {text}"
            );
        } else {
            assert!(ami.starts_with("FAIL") && ami.contains(missing), "{ami}");
        }
        assert!(!text.contains("portal-secret"));
    }
}

/// A migrated scratch portal listing `transports`, beside a stand-in whose pjsip.conf is
/// the lab's plus `transport-tls` (placeholder PEM files: Asterisk's loader only needs
/// them to exist; `check` only reads a byte of each).
async fn tls_lab(transports: &str) -> (support::process::Scratch, FakeAsterisk) {
    let mut scratch = support::process::Scratch::new().await;
    let etc = scratch.etc().to_owned();
    let (pjsip, _) = support::process::include_dirs(&etc);
    support::asterisk::write_tls_lab_pjsip_conf(&etc, &pjsip);
    let ast = support::standin(&etc, Options::default()).await;
    for (k, v) in support::ami_vars(&ast) {
        scratch.set(&k, &v);
    }
    scratch.set("PORTAL_PJSIP_TRANSPORTS", transports);
    assert!(scratch.run(&["migrate"]).await.status.success());
    (scratch, ast)
}

/// `check`'s exit status and its lines by name.
async fn check(s: &support::process::Scratch) -> (bool, Vec<(String, String, String)>) {
    let out = s.run(&["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = text
        .lines()
        .map(|l| {
            // "{mark:<4} {name:<16} {detail}"
            let (mark, rest) = l.split_at(5);
            let (name, detail) = rest.split_at(17.min(rest.len()));
            (
                mark.trim().to_owned(),
                name.trim().to_owned(),
                detail.to_owned(),
            )
        })
        .collect();
    (out.status.success(), lines)
}

/// The mark and detail of the line `name`.
fn line_of<'a>(lines: &'a [(String, String, String)], name: &str) -> (&'a str, &'a str) {
    let (mark, _, detail) = lines
        .iter()
        .find(|(_, n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} line: {lines:?}"));
    (mark, detail)
}

/// The mark of the line `name`: ok, warn, skip or FAIL.
fn mark_of<'a>(lines: &'a [(String, String, String)], name: &str) -> &'a str {
    let (mark, _) = line_of(lines, name);
    mark
}

/// The detail of the line `name`.
fn detail_of<'a>(lines: &'a [(String, String, String)], name: &str) -> &'a str {
    let (_, detail) = line_of(lines, name);
    detail
}

#[tokio::test]
async fn check_passes_with_a_tls_transport_its_files_and_res_srtp() {
    let (mut s, ast) = tls_lab("transport-udp,transport-tls").await;
    let (ok, lines) = check(&s).await;
    assert!(ok, "{lines:?}");
    assert!(lines.iter().all(|(m, _, _)| m == "ok"), "{lines:?}");
    assert_eq!(
        detail_of(&lines, "transports"),
        "transport-udp (udp), transport-tls (tls) in pjsip.conf"
    );
    assert_eq!(
        detail_of(&lines, "transports live"),
        "Asterisk has transport-udp (udp), transport-tls (tls) loaded"
    );
    let files = detail_of(&lines, "tls files");
    assert!(
        files.contains("keys/asterisk.crt") && files.contains("keys/asterisk.key"),
        "{files}"
    );
    assert!(detail_of(&lines, "res_srtp").contains("running"));
    assert!(
        !format!("{lines:?}").contains("placeholder"),
        "no file content"
    );
    assert!(ast
        .actions()
        .contains(&"AMI Command: module show like res_srtp".to_owned()));

    // Without AMI, what only Asterisk knows is skipped, not claimed ok.
    s.set("PORTAL_RELOAD", "none");
    let (ok, lines) = check(&s).await;
    assert!(ok, "{lines:?}");
    for name in ["transports live", "res_srtp"] {
        let (mark, detail) = line_of(&lines, name);
        assert_eq!(mark, "skip", "{name}: {detail}");
        assert!(detail.contains("PORTAL_RELOAD"), "{detail}");
    }
    assert_eq!(mark_of(&lines, "tls files"), "ok");
}

#[tokio::test]
async fn check_names_a_listed_transport_that_pjsip_conf_or_asterisk_lacks() {
    let (s, ast) = tls_lab("transport-udp,transport-wss").await;
    let (ok, lines) = check(&s).await;
    assert!(!ok);
    assert_eq!(
        line_of(&lines, "transports"),
        (
            "FAIL",
            "PORTAL_PJSIP_TRANSPORTS lists 'transport-wss' but pjsip.conf has no [transport-wss] transport"
        )
    );
    let (mark, live) = line_of(&lines, "transports live");
    assert!(
        mark == "FAIL" && live.contains("'transport-wss'") && live.contains("restart Asterisk"),
        "{live}"
    );

    // Defined after Asterisk started: in pjsip.conf, not loaded until a restart (F-TLS-5).
    let conf = s.etc().join("pjsip.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace(
            "\n#tryinclude",
            "\n[transport-wss]\ntype = transport\nprotocol = wss\nbind = 127.0.0.1:8089\n\n#tryinclude",
        ),
    )
    .unwrap();
    let (ok, lines) = check(&s).await;
    assert!(!ok);
    assert_eq!(mark_of(&lines, "transports"), "ok", "{lines:?}");
    let (mark, live) = line_of(&lines, "transports live");
    assert!(
        mark == "FAIL" && live.contains("restart Asterisk"),
        "{live}"
    );
    ast.restart().await.unwrap();
    let (ok, lines) = check(&s).await;
    assert!(ok, "{lines:?}");
    assert_eq!(
        detail_of(&lines, "transports live"),
        "Asterisk has transport-udp (udp), transport-wss (wss) loaded"
    );
}

#[tokio::test]
async fn check_fails_on_a_tls_key_file_it_cannot_read() {
    let (s, _ast) = tls_lab("transport-udp,transport-tls").await;
    let key = s.etc().join("keys/asterisk.key");
    std::fs::remove_file(&key).unwrap();
    let (ok, lines) = check(&s).await;
    assert!(!ok);
    let (mark, detail) = line_of(&lines, "tls files");
    assert_eq!(mark, "FAIL");
    assert!(
        detail.contains("priv_key_file") && detail.contains(&key.display().to_string()),
        "{detail}"
    );
    let failed: Vec<&str> = lines
        .iter()
        .filter(|(m, _, _)| m != "ok")
        .map(|(_, n, _)| n.as_str())
        .collect();
    assert_eq!(failed, ["tls files"]);
}

#[tokio::test]
async fn check_fails_when_res_srtp_is_not_loaded() {
    let (s, ast) = tls_lab("transport-tls,transport-udp").await;
    ast.set_srtp_loaded(false);
    let (ok, lines) = check(&s).await;
    assert!(!ok);
    let (mark, detail) = line_of(&lines, "res_srtp");
    assert_eq!(mark, "FAIL");
    assert!(
        detail.contains("488 Not Acceptable Here") && detail.contains("libsrtp2"),
        "{detail}"
    );
    // Loaded again over the CLI: passes.
    assert_eq!(ast.cli("module load res_srtp.so"), "Loaded res_srtp.so\n");
    let (ok, lines) = check(&s).await;
    assert!(ok, "{lines:?}");
    // No TLS transport listed: res_srtp is not needed, and not asked for.
    let (s, ast) = tls_lab("transport-udp").await;
    ast.set_srtp_loaded(false);
    let (ok, lines) = check(&s).await;
    assert!(ok, "{lines:?}");
    assert_eq!(
        line_of(&lines, "res_srtp"),
        ("ok", "not needed: no listed transport is TLS")
    );
    assert!(!ast.actions().iter().any(|a| a.contains("res_srtp")));
}

#[tokio::test]
async fn a_dialplan_that_asterisk_kept_from_before_fails_the_probe() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    let before = baseline(&s).await;
    // A parse error in the main extensions.conf: `dialplan reload` says "Dialplan
    // reloaded." but keeps the old dialplan whole (DP3), probe context included.
    let main = s.app.etc_dir.join("extensions.conf");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("[broken\n{text}")).unwrap();
    s.app.create_user("Carol", "carol@x.org").await;
    let (status, rec) = apply(&s.app).await;
    assert_eq!(
        (status, rec["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("health_check_failed")),
        "{rec}"
    );
    assert!(
        rec["error"]["message"]
            .as_str()
            .unwrap()
            .contains("older dialplan"),
        "{rec}"
    );
    assert_eq!(files(&s.app), before);
    assert!(!s.ast.dialplan("synergy-internal").unwrap().contains("1002"));
    std::fs::write(&main, text).unwrap();
    let (status, rec) = apply(&s.app).await;
    assert_eq!(
        (status, rec["health"]["status"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{rec}"
    );
    assert!(s.ast.dialplan("synergy-internal").unwrap().contains("1002"));
}
