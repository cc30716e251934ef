//! Applying one tenant's changes (issue 18, item 5): a scoped apply writes that tenant's two
//! files only (every other tenant's byte-identical, not even rewritten), probes that
//! tenant's changes and files, and records its fingerprints alone, so another tenant's
//! changes stay pending until an apply covers them. From the API (`?tenant=`), the shell
//! (`apply --tenant`) and across two nodes.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support::app::{Http, TestApp};
use crate::support::asterisk::Options;
use crate::support::cluster::{applies, statuses, Cluster, Setup};
use crate::support::process::Scratch;
use crate::support::{stand, PROBE_3S};

async fn create_tenant(app: &Http, slug: &str) {
    let r = app
        .post(
            "/tenants",
            json!({"slug": slug, "name": format!("Tenant {slug}"), "extension_min": 100,
                   "extension_max": 199}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

async fn create_in(app: &Http, tenant: &str, email: &str) -> Value {
    let r = app
        .post(
            "/users",
            json!({"name": "T User", "email": email, "tenant": tenant}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// A file's bytes and modification time: equal before and after means not rewritten.
fn stamp(path: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    (bytes, mtime)
}

fn tenant_files(app: &TestApp, slug: &str) -> [PathBuf; 2] {
    [
        app.pjsip_dir
            .join(format!("generated_endpoints-{slug}.conf")),
        app.dialplan_dir
            .join(format!("generated_routing-{slug}.conf")),
    ]
}

#[tokio::test]
async fn a_scoped_apply_writes_probes_and_records_one_tenant_and_leaves_the_others_pending() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    let app = &s.app;
    create_tenant(app, "acme").await;
    create_tenant(app, "beta").await;
    app.create_user("Dee Default", "dee@x.org").await;
    create_in(app, "acme", "a1@x.org").await;
    create_in(app, "beta", "b1@x.org").await;
    let first = app.post("/apply", json!({})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["health"]["status"], "ok", "{}", first.body);
    assert!(first.body.get("tenant").is_none(), "{}", first.body);

    // Both tenants add their 101.
    create_in(app, "acme", "a2@x.org").await;
    create_in(app, "beta", "b2@x.org").await;
    let beta = tenant_files(app, "beta");
    let default = [
        app.pjsip_dir.join("generated_endpoints.conf"),
        app.dialplan_dir.join("generated_routing.conf"),
    ];
    let before: Vec<_> = beta.iter().chain(&default).map(|p| stamp(p)).collect();
    // Past the file system's timestamp granularity: a rewrite would show.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // A dry run of acme names acme's change alone.
    let dry = app.post("/apply?dry_run=true&tenant=acme", json!({})).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    assert_eq!(dry.body["tenant"], "acme");
    assert_eq!(
        dry.body["changes"],
        json!({"added": [], "removed": [], "changed": [],
               "tenants": {"acme": {"added": [101], "removed": [], "changed": []}}})
    );

    let functions = s.ast.agi_functions();
    let r = app.post("/apply?tenant=acme", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rec = &r.body;
    assert_eq!(rec["status"], "applied", "{rec}");
    assert_eq!(rec["tenant"], "acme");
    assert_eq!(
        rec["changes"],
        json!({"added": [], "removed": [], "changed": [],
               "tenants": {"acme": {"added": [101], "removed": [], "changed": []}}})
    );
    // The probe visited acme's 101 alone and proved acme's two files and the probe call.
    assert_eq!(rec["health"]["status"], "ok", "{rec}");
    assert_eq!(rec["health"]["proof"]["scope"], "changed", "{rec}");
    assert_eq!(rec["health"]["proof"]["visited"], 1, "{rec}");
    assert_eq!(rec["health"]["proof"]["whole_files"], 3, "{rec}");
    // Acme's endpoint sentinel and routing proof, and the 9 functions of one added
    // extension: nothing of beta's.
    assert_eq!(s.ast.agi_functions() - functions, 2 + 9, "{rec}");
    let live = s.ast.endpoints();
    assert!(live.contains_key("acme-101"), "{:?}", live.keys());
    assert!(!live.contains_key("beta-101"), "{:?}", live.keys());

    // Beta's files and the default tenant's: the same bytes, not even rewritten.
    let after: Vec<_> = beta.iter().chain(&default).map(|p| stamp(p)).collect();
    assert!(before == after, "another tenant's files were rewritten");
    // The audit row says which tenant.
    let audit = app.get("/applies?limit=1").await;
    assert_eq!(audit.body["applies"][0]["tenant"], "acme", "{}", audit.body);

    // Beta's change is still pending, acme's is not.
    let pending = app.get("/apply/pending").await.body;
    assert_eq!(pending["pending"], true);
    assert_eq!(
        pending["tenants"],
        json!({"beta": {"added": [101], "removed": [], "changed": []}}),
        "{pending}"
    );

    // An unscoped apply applies what is left: beta's, visited alone (the scoped proof
    // still covers the rest).
    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("tenant").is_none());
    assert_eq!(
        r.body["changes"]["tenants"],
        json!({"beta": {"added": [101], "removed": [], "changed": []}})
    );
    assert_eq!(r.body["health"]["status"], "ok", "{}", r.body);
    assert_eq!(r.body["health"]["proof"]["scope"], "changed", "{}", r.body);
    assert_eq!(r.body["health"]["proof"]["visited"], 1, "{}", r.body);
    assert!(s.ast.endpoints().contains_key("beta-101"));
    assert_eq!(app.get("/apply/pending").await.body["pending"], false);
    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.body["status"], "unchanged", "{}", r.body);
    let r = app.post("/apply?tenant=beta", json!({})).await;
    assert_eq!(r.body["status"], "unchanged", "{}", r.body);
}

#[tokio::test]
async fn an_apply_of_the_default_tenant_leaves_the_others_and_needs_its_probe_context_first() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    let app = &s.app;
    create_tenant(app, "acme").await;
    create_in(app, "acme", "a1@x.org").await;
    app.create_user("Dee Default", "dee@x.org").await;
    // Before the default tenant's routing file (the probe's context) was ever written, a
    // scoped apply of another tenant cannot be proven: refused before touching a file.
    let r = app.post("/apply?tenant=acme", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "health_check_failed", "{}", r.body);
    assert!(!tenant_files(app, "acme")[0].exists());
    assert_eq!(s.ast.reloads(), 0);

    // The default tenant's apply: its own files only; acme stays pending.
    let r = app.post("/apply?tenant=default", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["health"]["status"], "ok", "{}", r.body);
    assert_eq!(r.body["changes"]["added"], json!([1000]));
    assert!(s.ast.endpoints().contains_key("1000"));
    assert!(!tenant_files(app, "acme")[0].exists());
    let pending = app.get("/apply/pending").await.body;
    assert_eq!(
        pending["tenants"],
        json!({"acme": {"added": [100], "removed": [], "changed": []}}),
        "{pending}"
    );

    // Now acme: the default tenant's files untouched.
    let default = [
        app.pjsip_dir.join("generated_endpoints.conf"),
        app.dialplan_dir.join("generated_routing.conf"),
    ];
    let before: Vec<_> = default.iter().map(|p| stamp(p)).collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = app.post("/apply?tenant=acme", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["health"]["status"], "ok", "{}", r.body);
    let after: Vec<_> = default.iter().map(|p| stamp(p)).collect();
    assert!(before == after, "the default tenant's files were rewritten");
    assert!(s.ast.endpoints().contains_key("acme-100"));
    assert_eq!(app.get("/apply/pending").await.body["pending"], false);
}

#[tokio::test]
async fn an_unknown_or_foreign_tenant_is_refused_and_nothing_is_applied() {
    let app = TestApp::spawn().await;
    create_tenant(&app, "acme").await;
    create_in(&app, "acme", "a1@x.org").await;
    for (query, field) in [
        ("?tenant=nope", "tenant"),
        ("?tenant=Not%20a%20slug", "tenant"),
        ("?dry_run=true&tenant=nope", "tenant"),
    ] {
        let r = app.post(&format!("/apply{query}"), json!({})).await;
        assert_eq!(
            r.refusal(),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", field),
            "{query}: {}",
            r.body
        );
    }
    assert_eq!(app.get("/apply/pending").await.body["pending"], true);
    assert!(!tenant_files(&app, "acme")[0].exists());
    let applies = app.get("/applies").await.body;
    assert_eq!(applies["applies"], json!([]), "{applies}");
}

#[tokio::test]
async fn apply_tenant_from_the_shell_applies_that_tenant_and_refuses_an_unknown_one() {
    let s = Scratch::new().await;
    assert!(s.run(&["migrate"]).await.status.success());
    let c = s.db.client().await;
    for slug in ["acme", "beta"] {
        c.execute(
            "INSERT INTO tenants (slug, name, extension_min, extension_max)
             VALUES ($1, $1, 100, 199)",
            &[&slug],
        )
        .await
        .unwrap();
        c.execute(
            "SELECT portal_create_user('Shell', $1 || '@x.org', NULL, 100, 199,
                    'abcdefghijklmnopqrstuvwx', 1::smallint, NULL,
                    (SELECT id FROM tenants WHERE slug = $1))",
            &[&slug],
        )
        .await
        .unwrap();
    }
    let dir = s.etc().join("pjsip.d/synergycall");

    let out = s.run(&["apply", "--tenant", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().last(),
        Some("apply failed: no tenant 'nope'"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let dry = s.run(&["apply", "--dry-run", "--tenant", "beta"]).await;
    assert!(dry.status.success());
    let rec: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(
        rec["changes"]["tenants"],
        json!({"beta": {"added": [100], "removed": [], "changed": []}})
    );

    let out = s.run(&["apply", "--tenant", "acme"]).await;
    let rec: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{rec}");
    assert_eq!(
        (&rec["status"], &rec["tenant"]),
        (&json!("applied"), &json!("acme"))
    );
    assert!(dir.join("generated_endpoints-acme.conf").exists());
    assert!(!dir.join("generated_endpoints-beta.conf").exists());

    let out = s.run(&["apply", "--dry-run"]).await;
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rec["changes"]["tenants"],
        json!({"beta": {"added": [100], "removed": [], "changed": []}}),
        "{rec}"
    );
}

#[tokio::test]
async fn a_scoped_apply_on_two_nodes_applies_that_tenant_on_both() {
    let c = Cluster::start(
        &["a", "b"],
        Setup {
            probe: true,
            ..Setup::default()
        },
    )
    .await;
    let a = &c.node("a").http;
    create_tenant(a, "acme").await;
    create_tenant(a, "beta").await;
    a.create_user("Dee Default", "dee@x.org").await;
    create_in(a, "acme", "a1@x.org").await;
    create_in(a, "beta", "b1@x.org").await;
    let r = a.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}\n{}", r.body, c.logs());

    create_in(a, "acme", "a2@x.org").await;
    create_in(a, "beta", "b2@x.org").await;
    let beta = |n: &str| {
        let etc = c.node(n).etc();
        [
            etc.join("pjsip.d/synergycall/generated_endpoints-beta.conf"),
            etc.join("extensions.d/synergycall/generated_routing-beta.conf"),
        ]
    };
    let before: Vec<_> = ["a", "b"]
        .iter()
        .flat_map(|n| beta(n).map(|p| stamp(&p)))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let r = a.post("/apply?tenant=acme", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}\n{}", r.body, c.logs());
    assert_eq!(r.body["tenant"], "acme");
    assert_eq!(
        statuses(&r.body),
        vec![
            ("a".into(), "applied".into()),
            ("b".into(), "applied".into())
        ]
    );
    for n in ["a", "b"] {
        let live = c.node(n).ast.endpoints();
        assert!(live.contains_key("acme-101"), "{n}: {:?}", live.keys());
        assert!(!live.contains_key("beta-101"), "{n}: {:?}", live.keys());
    }
    let after: Vec<_> = ["a", "b"]
        .iter()
        .flat_map(|n| beta(n).map(|p| stamp(&p)))
        .collect();
    assert!(before == after, "beta's files were rewritten on a node");
    // B's own record says it applied acme's change alone, at a's request.
    let on_b = applies(a, "b").await;
    assert_eq!(on_b[0]["tenant"], "acme", "{:?}", on_b[0]);
    assert_eq!(on_b[0]["requested_by"], "a");
    assert_eq!(
        on_b[0]["changes"]["tenants"],
        json!({"acme": {"added": [101], "removed": [], "changed": []}})
    );
    // Beta is still pending on both nodes; the next unscoped apply takes it everywhere.
    for n in ["a", "b"] {
        let pending = c.node(n).http.get("/apply/pending").await.body;
        assert_eq!(
            pending["tenants"],
            json!({"beta": {"added": [101], "removed": [], "changed": []}}),
            "{n}: {pending}"
        );
    }
    let r = a.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}\n{}", r.body, c.logs());
    for n in ["a", "b"] {
        assert!(c.node(n).ast.endpoints().contains_key("beta-101"), "{n}");
    }
}
