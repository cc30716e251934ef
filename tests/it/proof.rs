//! What the probe proves (issue "apply at the floor"): each generated file read whole, what
//! the apply changed visited one by one, the rest only when the previous proof cannot be
//! trusted; and the ways a reload partly fails, each caught and rolled back.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::asterisk::{write_tls_lab_pjsip_conf, Fault, Options, Tamper};
use crate::support::{process, stand, stand_in, Stand, PROBE_3S};

/// Functions the probe asks for an added or changed extension (context, max_contacts and
/// seven options), a removed one (context, max_contacts, DIALPLAN_EXISTS), and the
/// endpoints file's sentinel.
const CHANGED: usize = 9;
const REMOVED: usize = 3;
const SENTINEL: usize = 1;

async fn apply(app: &TestApp) -> (StatusCode, Value) {
    let r = app.post("/apply", json!({})).await;
    (r.status, r.body)
}

async fn applied(app: &TestApp) -> Value {
    let (status, rec) = apply(app).await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["health"]["status"], "ok", "{rec}");
    rec
}

fn files(app: &TestApp) -> (Vec<u8>, Vec<u8>) {
    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap_or_default();
    (
        read(app.pjsip_dir.join("generated_endpoints.conf")),
        read(app.dialplan_dir.join("generated_routing.conf")),
    )
}

fn proof(scope: &str, because: Option<&str>, visited: u32, whole: u32, total: u32) -> Value {
    let mut p = json!({"scope": scope, "visited": visited, "whole_files": whole, "total": total});
    if let Some(b) = because {
        p["because"] = json!(b);
    }
    p
}

async fn user_id(app: &TestApp, q: &str) -> Value {
    app.get(&format!("/users?q={q}")).await.body["users"][0]["id"].clone()
}

async fn rotate(app: &TestApp, q: &str) {
    let id = user_id(app, q).await;
    let r = app.post(&format!("/users/{id}/secret"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Alice 1000, Bob 1001 and Carol 1002, applied and proven (every one visited: the first
/// apply of the process).
async fn three_proven(s: &Stand) {
    for (name, email) in [
        ("Alice", "alice@x.org"),
        ("Bob", "bob@x.org"),
        ("Carol", "carol@x.org"),
    ] {
        s.app.create_user(name, email).await;
    }
    let before = s.ast.agi_functions();
    let rec = applied(&s.app).await;
    assert_eq!(
        rec["health"]["proof"],
        proof("all", Some("no_earlier_proof"), 3, 2, 3),
        "{rec}"
    );
    assert_eq!(s.ast.agi_functions() - before, SENTINEL + 3 * CHANGED);
}

/// Waits into the next second: Asterisk's startup and reload instants have one-second
/// resolution, so a restart or a reload that stands for someone else's must not share the
/// second of the stand-in's start or of the portal's own reload.
async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 10_000_000,
    ))
    .await;
}

#[tokio::test]
async fn after_a_proven_apply_only_what_changed_is_visited_and_each_file_is_proven_whole() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    three_proven(&s).await;

    // One secret rotated: Bob alone is asked about, the rest is proven by the files.
    rotate(&s.app, "bob").await;
    let before = s.ast.agi_functions();
    let rec = applied(&s.app).await;
    assert_eq!(
        rec["health"],
        json!({"status": "ok", "checked": 3, "missing": [],
               "proof": proof("changed", None, 1, 2, 3)}),
        "{rec}"
    );
    assert_eq!(rec["changes"]["changed"], json!([1001]));
    assert_eq!(s.ast.agi_functions() - before, SENTINEL + CHANGED);

    // A removed user: its endpoint, aor and dialplan entry are asked to be gone.
    let carol = user_id(&s.app, "carol").await;
    assert_eq!(
        s.app.delete(&format!("/users/{carol}")).await.status,
        StatusCode::NO_CONTENT
    );
    let before = s.ast.agi_functions();
    let rec = applied(&s.app).await;
    assert_eq!(rec["health"]["proof"], proof("changed", None, 1, 2, 3));
    assert_eq!(s.ast.agi_functions() - before, SENTINEL + REMOVED);
    assert!(!s.ast.endpoints().contains_key("1002"));

    // Nothing to do: no reload, no probe.
    let before = (s.ast.reloads(), s.ast.agi_sessions());
    let (status, rec) = apply(&s.app).await;
    assert_eq!(
        (status, &rec["status"]),
        (StatusCode::OK, &json!("unchanged"))
    );
    assert_eq!((s.ast.reloads(), s.ast.agi_sessions()), before);

    // Someone else's apply to this node (another process, the `apply` command) wrote
    // another applied hash: this process's proof no longer covers what Asterisk holds.
    let c = s.app.db().client().await;
    c.execute("UPDATE nodes SET applied_hash = 'another apply'", &[])
        .await
        .unwrap();
    rotate(&s.app, "alice").await;
    let rec = applied(&s.app).await;
    assert_eq!(
        rec["health"]["proof"],
        proof("all", Some("applied_elsewhere"), 2, 2, 2)
    );
}

#[tokio::test]
async fn a_restart_or_someone_elses_reload_makes_the_probe_visit_everything() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    three_proven(&s).await;

    // Asterisk's instants have one-second resolution and the stand-in restarts at once.
    next_second().await;
    s.ast.restart().await.unwrap();
    rotate(&s.app, "bob").await;
    let rec = applied(&s.app).await;
    assert_eq!(
        rec["health"]["proof"],
        proof("all", Some("asterisk_restarted"), 3, 2, 3)
    );

    // An admin reloads PJSIP by hand.
    next_second().await;
    let out = s.ast.cli("module reload res_pjsip.so");
    assert_eq!(out, "Module 'res_pjsip.so' reloaded successfully.\n");
    rotate(&s.app, "bob").await;
    let rec = applied(&s.app).await;
    assert_eq!(
        rec["health"]["proof"],
        proof("all", Some("reloaded_outside"), 3, 2, 3)
    );

    // `dialplan reload` does not touch PJSIP objects, nor Asterisk's reload instant.
    next_second().await;
    let out = s.ast.cli("dialplan reload");
    assert_eq!(out, "Dialplan reloaded.\n");
    rotate(&s.app, "bob").await;
    let rec = applied(&s.app).await;
    assert_eq!(rec["health"]["proof"], proof("changed", None, 1, 2, 3));
}

#[tokio::test]
async fn reloads_over_the_cli_visit_everything_for_want_of_a_core_status() {
    let s = stand(Options::default(), &[PROBE_3S, ("PORTAL_RELOAD", "cli")]).await;
    s.app.create_user("Alice", "alice@x.org").await;
    applied(&s.app).await;
    rotate(&s.app, "alice").await;
    let rec = applied(&s.app).await;
    assert_eq!(rec["reload"]["method"], "cli");
    assert_eq!(
        rec["health"]["proof"],
        proof("all", Some("no_core_status"), 1, 2, 1)
    );
}

/// Applies a change that the probe alone would pass (a rotated secret: Asterisk cannot be
/// asked for a password) while the stand-in spoils the reload with `fault`; asserts that
/// the apply is caught by `missing`, rolled back, and that Asterisk holds the previous
/// state again.
async fn caught_and_rolled_back(s: &Stand, fault: Fault, missing: &str, whole_files: u32) {
    let before = files(&s.app);
    let live = s.ast.endpoints();
    rotate(&s.app, "alice").await;
    s.ast.set_fault(fault);
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{rec}");
    assert_eq!(rec["error"]["code"], "health_check_failed", "{rec}");
    assert_eq!(rec["rolled_back"], true, "{rec}");
    let got = rec["health"]["missing"].as_array().unwrap();
    assert!(
        got.iter()
            .any(|m| m.as_str().unwrap_or("").contains(missing)),
        "{missing:?} not in {got:?}"
    );
    assert_eq!(rec["health"]["proof"]["whole_files"], whole_files, "{rec}");
    assert_eq!(files(&s.app), before, "the previous files are back");
    assert_eq!(s.ast.endpoints(), live, "Asterisk holds the previous state");
    s.ast.clear_faults();
}

const NOT_WHOLE: &str =
    "Asterisk did not read generated_endpoints.conf whole: its last object, aor portal_proof_";

#[tokio::test]
async fn a_parse_error_in_the_middle_of_the_endpoints_file_is_caught_by_its_sentinel() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    three_proven(&s).await;
    let tamper = Tamper::insert_mid_file("generated_endpoints.conf", "[broken");
    caught_and_rolled_back(&s, Fault::TamperBeforeLoad(tamper), NOT_WHOLE, 1).await;
    assert!(s.ast.log().iter().any(|l| l.contains("parse error")));
}

#[tokio::test]
async fn a_file_cut_short_between_write_and_reload_is_caught_by_its_sentinel() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    three_proven(&s).await;
    let tamper = Tamper::truncate("generated_endpoints.conf");
    caught_and_rolled_back(&s, Fault::TamperBeforeLoad(tamper), NOT_WHOLE, 1).await;
}

#[tokio::test]
async fn a_reload_that_read_the_previous_file_is_caught_by_the_previous_sentinel() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    three_proven(&s).await;
    let old = s.app.sentinel();
    let tamper = Tamper::restore_previous("generated_endpoints.conf");
    caught_and_rolled_back(&s, Fault::TamperBeforeLoad(tamper), NOT_WHOLE, 1).await;
    assert!(
        s.ast.aors().contains_key(&old),
        "Asterisk kept the old file"
    );

    // The dialplan's proof is its marker: an older routing file calls with the old one.
    s.app.create_user("Dave", "dave@x.org").await;
    let tamper = Tamper::restore_previous("generated_routing.conf");
    s.ast.set_fault(Fault::TamperBeforeLoad(tamper));
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{rec}");
    assert_eq!(rec["rolled_back"], true, "{rec}");
    let missing = rec["health"]["missing"][0].as_str().unwrap_or_default();
    assert!(
        missing.starts_with("the probe ran in an older dialplan"),
        "{rec}"
    );
    assert!(!s.ast.endpoints().contains_key("1003"), "{rec}");
}

#[tokio::test]
async fn an_unchanged_endpoint_asterisk_lost_behind_the_portals_back_is_caught() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    three_proven(&s).await;
    // Asterisk restarts and refuses Carol's objects: at a start there is no previous
    // version to keep (res_sorcery_config.c), so she is gone without any apply.
    s.ast.set_fault(Fault::RefuseObjects(vec!["1002".into()]));
    next_second().await;
    s.ast.restart().await.unwrap();
    assert!(!s.ast.endpoints().contains_key("1002"));

    rotate(&s.app, "bob").await;
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{rec}");
    assert_eq!(
        (&rec["error"]["code"], &rec["rolled_back"]),
        (&json!("health_check_failed"), &json!(true)),
        "{rec}"
    );
    assert_eq!(
        rec["health"]["proof"],
        proof("all", Some("asterisk_restarted"), 3, 2, 3)
    );
    let missing = &rec["health"]["missing"];
    assert_eq!(
        missing,
        &json!(["endpoint 1002 is missing", "aor 1002 is missing"]),
        "Carol is unchanged, yet found missing"
    );
}

#[tokio::test]
async fn a_changed_endpoint_whose_options_asterisk_refuses_keeps_its_old_version_and_is_caught() {
    let dirs = tempfile::tempdir().unwrap();
    let etc = dirs.path().join("etc");
    let (pjsip, _) = process::include_dirs(&etc);
    write_tls_lab_pjsip_conf(&etc, &pjsip);
    let vars = [
        PROBE_3S,
        ("PORTAL_PJSIP_TRANSPORTS", "transport-udp,transport-tls"),
    ];
    let s = stand_in(dirs, Options::default(), &vars).await;
    three_proven(&s).await;

    // Bob moves to TLS; Asterisk refuses his new endpoint and keeps the old one (F-CFG-4).
    let bob = user_id(&s.app, "bob").await;
    let r = s
        .app
        .patch_user(&bob, json!({"transport": "transport-tls"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    s.ast.set_fault(Fault::RefuseObjects(vec!["1001".into()]));
    let (status, rec) = apply(&s.app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{rec}");
    assert_eq!(rec["rolled_back"], true, "{rec}");
    assert_eq!(rec["health"]["proof"], proof("changed", None, 1, 2, 3));
    assert_eq!(
        rec["health"]["missing"],
        json!([
            "endpoint 1001 has transport=\"transport-udp\", rendered \"transport-tls\"",
            "endpoint 1001 has media_encryption=\"no\", rendered \"sdes\""
        ]),
        "{rec}"
    );
    assert!(s.ast.log().iter().any(|l| l.contains(
        "Retaining existing configuration for object of type 'endpoint' with id '1001'"
    )));
    assert_eq!(
        s.ast.field("endpoint", "1001", "transport").as_deref(),
        Some("transport-udp")
    );
}
