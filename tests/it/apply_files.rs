//! Apply with `PORTAL_RELOAD=none`: rendering, atomic files, audit log, pending diff,
//! dry runs — over HTTP against a real PostgreSQL.

use std::os::unix::fs::MetadataExt;

use crate::support;
use crate::support::app::{TestApp, TestDb};
use hyper::StatusCode;
use pbx_portal::asterisk::render::is_intact;
use serde_json::{json, Value};

/// The two generated files as they are on disk (empty when missing).
#[derive(Debug, PartialEq)]
struct Files {
    endpoints: String,
    routing: String,
}

fn files(app: &TestApp) -> Files {
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    Files {
        endpoints: read(app.pjsip_dir.join("generated_endpoints.conf")),
        routing: read(app.dialplan_dir.join("generated_routing.conf")),
    }
}

#[tokio::test]
async fn apply_writes_both_files_0640_and_audits_it() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("Alice Example", "alice@x.org").await;
    app.create_user("Bob", "bob@x.org").await;

    let pending = app.get("/apply/pending").await.body;
    assert_eq!(
        pending,
        json!({"pending": true, "added": [1000, 1001], "removed": [], "changed": []})
    );

    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rec = &r.body;
    assert_eq!(rec["status"], "applied");
    assert_eq!(rec["endpoints"], 2);
    assert_eq!(
        rec["changes"],
        json!({"added": [1000, 1001], "removed": [], "changed": []})
    );
    assert_eq!(rec["reload"]["method"], "none");
    assert_eq!(
        rec["health"],
        json!({"status": "skipped", "checked": 0, "missing": []})
    );
    assert_eq!(rec["rolled_back"], false);
    assert!(rec.get("error").is_none());

    let Files { endpoints, routing } = files(&app);
    assert!(is_intact(&endpoints) && is_intact(&routing));
    assert!(endpoints.contains(&format!(
        "password={}",
        alice["sip_password"].as_str().unwrap()
    )));
    assert!(endpoints.contains("callerid=\"Alice Example\" <1000>"));
    assert!(routing.contains("exten => 1001,1,Dial(PJSIP/1001,25)"));
    assert!(routing.contains(&format!("AGI(agi://{}/health,${{EXTEN:6}},", app.agi_addr)));
    for dir in [&app.pjsip_dir, &app.dialplan_dir] {
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
        let meta = std::fs::metadata(dir.join(&names[0])).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640);
    }

    let audit = app.get("/applies").await.body;
    assert_eq!(audit["applies"][0], *rec, "the audit row is the record");
    let raw = String::from_utf8_lossy(&app.get("/applies").await.raw).into_owned();
    assert!(!raw.contains(alice["sip_password"].as_str().unwrap()));
    assert_eq!(app.get("/apply/pending").await.body["pending"], false);
}

#[tokio::test]
async fn nothing_changed_means_unchanged_and_no_write() {
    let app = TestApp::spawn().await;
    app.create_user("A", "a@x.org").await;
    assert_eq!(
        app.post("/apply", json!({})).await.body["status"],
        "applied"
    );
    let before = std::fs::metadata(app.pjsip_dir.join("generated_endpoints.conf"))
        .unwrap()
        .ino();
    let r = app.post("/apply", json!({})).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("unchanged"))
    );
    assert_eq!(
        std::fs::metadata(app.pjsip_dir.join("generated_endpoints.conf"))
            .unwrap()
            .ino(),
        before
    );

    // A file changed behind the portal's back is rewritten, not trusted.
    std::fs::write(app.pjsip_dir.join("generated_endpoints.conf"), "tampered").unwrap();
    assert_eq!(
        app.post("/apply", json!({})).await.body["status"],
        "applied"
    );
    assert!(is_intact(&files(&app).endpoints));
}

#[tokio::test]
async fn pending_and_dry_run_report_added_removed_and_changed() {
    let app = TestApp::spawn().await;
    let a = app.create_user("A", "a@x.org").await;
    let b = app.create_user("B", "b@x.org").await;
    app.post("/apply", json!({})).await;
    let applied_files = files(&app);

    app.delete(&format!("/users/{}", a["id"])).await;
    app.post(&format!("/users/{}/secret", b["id"]), json!({}))
        .await;
    app.create_user("C", "c@x.org").await; // takes the freed 1000
    app.create_user("D", "d@x.org").await;
    let want = json!({"pending": true, "added": [1002], "removed": [], "changed": [1000, 1001]});
    assert_eq!(app.get("/apply/pending").await.body, want);

    let dry = app.post("/apply?dry_run=true", json!({})).await;
    assert_eq!(dry.status, StatusCode::OK);
    assert_eq!(dry.body["status"], "dry_run");
    assert_eq!(
        dry.body["changes"],
        json!({"added": [1002], "removed": [], "changed": [1000, 1001]})
    );
    assert_eq!(files(&app), applied_files, "a dry run touches no file");
    assert_eq!(
        app.get("/apply/pending").await.body,
        want,
        "nor the applied state"
    );

    let deleted = app.get("/users?q=d@x.org").await.body["users"][0]["id"].clone();
    app.delete(&format!("/users/{deleted}")).await;
    assert_eq!(
        app.post("/apply", json!({})).await.body["changes"],
        json!({"added": [], "removed": [], "changed": [1000, 1001]})
    );
    app.delete(&format!("/users/{}", b["id"])).await;
    let r = app.post("/apply", json!({})).await.body;
    assert_eq!(
        r["changes"],
        json!({"added": [], "removed": [1001], "changed": []})
    );
    assert!(!files(&app).endpoints.contains("[1001]"));

    let statuses: Vec<String> = app.get("/applies?limit=10").await.body["applies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["applied", "applied", "dry_run", "applied"]);
    assert_eq!(
        app.get("/applies?limit=1").await.body["applies"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/applies?limit=0").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.post("/apply?dry_run=maybe", json!({})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn a_write_failure_is_500_write_failed_and_keeps_the_old_files() {
    let app = TestApp::spawn().await;
    app.create_user("A", "a@x.org").await;
    app.post("/apply", json!({})).await;
    let before = files(&app);
    app.create_user("B", "b@x.org").await;
    // The dialplan directory refuses new files: the endpoints file must be put back.
    std::fs::remove_dir_all(&app.dialplan_dir).unwrap();
    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert_eq!(
        (r.body["status"].as_str(), r.body["error"]["code"].as_str()),
        (Some("failed"), Some("write_failed"))
    );
    assert_eq!(
        files(&app).endpoints,
        before.endpoints,
        "endpoints file restored"
    );
    let audit = &app.get("/applies?limit=1").await.body["applies"][0];
    assert_eq!(audit["error"]["code"], "write_failed");
    assert_eq!(app.get("/apply/pending").await.body["added"], json!([1001]));
}

#[tokio::test]
async fn a_row_that_cannot_render_safely_is_refused_not_written() {
    let app = TestApp::spawn().await;
    app.create_user("A", "a@x.org").await;
    // Bypass the API: a name that would open a section if it reached the file.
    let c = app.db().client().await;
    c.execute("UPDATE users SET name = E'x\\n[evil]\\ntype=endpoint'", &[])
        .await
        .unwrap();
    let r = app.post("/apply", json!({})).await;
    assert_eq!(
        r.error(),
        (StatusCode::INTERNAL_SERVER_ERROR, "write_failed")
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("extension 1000"));
    assert!(!app.pjsip_dir.join("generated_endpoints.conf").exists());
}

#[tokio::test]
async fn status_reports_components_and_the_last_apply() {
    let app = TestApp::spawn().await;
    let s = app.get("/status").await.body;
    assert_eq!(
        (
            s["database"].as_str(),
            s["agi"].as_str(),
            s["pending"].as_bool()
        ),
        (Some("ok"), Some("ok"), Some(false))
    );
    assert!(s["ami"].as_str().unwrap().starts_with("disabled"));
    assert_eq!(s["last_apply"], Value::Null);
    app.create_user("A", "a@x.org").await;
    assert_eq!(app.get("/status").await.body["pending"], true);
    let rec = app.post("/apply", json!({})).await.body;
    let s = app.get("/status").await.body;
    assert_eq!(
        (s["last_apply"].clone(), s["pending"].as_bool()),
        (rec, Some(false))
    );
}

#[tokio::test]
async fn an_apply_left_running_is_marked_interrupted_at_the_next_start() {
    let app = TestApp::spawn().await.restart_after_a_crashed_apply().await;
    let rec = &app.get("/applies").await.body["applies"][0];
    assert_eq!(rec["status"], "interrupted");
    assert_eq!(rec["error"]["code"], "interrupted");
    assert!(support::instant(&rec["finished_at"]) >= support::instant(&rec["started_at"]));
}

#[tokio::test]
async fn names_stored_with_a_backslash_before_the_rule_are_repaired_and_apply() {
    // A database as the previous version left it: only the first migration, and names
    // with a backslash (which Asterisk 22.7 showed without it).
    let db = TestDb::create().await;
    db.migrate_to(1).await;
    let c = db.client().await;
    for (name, email) in [
        ("Bob\\", "bob@x.org"),
        ("\\\\", "b@x.org"),
        ("Ann", "ann@x.org"),
    ] {
        c.query(
            "SELECT * FROM portal_create_user($1, $2, NULL, 1000, 1999, 'abcdefghijklmnopqrstuvwx')",
            &[&name, &email],
        )
        .await
        .unwrap();
    }
    let app = TestApp::start_on(db, tempfile::tempdir().unwrap(), &[]).await;
    let names: Vec<Value> = app.get("/users").await.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].clone())
        .collect();
    assert_eq!(names, [json!("Bob"), json!("User 1001"), json!("Ann")]);
    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["endpoints"], 3);
}
