//! Applies across processes: serialisation by the advisory lock, and a kill -9 in the
//! middle of an apply.

use crate::support;
use std::time::Duration;

use crate::support::app::{TestApp, TestDb};
use crate::support::asterisk::{FakeAsterisk, Fault, Options};
use crate::support::process::Portal;
use hyper::StatusCode;
use pbx_portal::asterisk::render::is_intact;
use serde_json::json;

/// A database and a folder with a stand-in, for portal processes that reload it over
/// AMI without probing (these tests are about the lock and signals, not the probe).
struct Rig {
    db: TestDb,
    dir: tempfile::TempDir,
    ast: FakeAsterisk,
    env: Vec<(String, String)>,
}

impl Rig {
    async fn new() -> Self {
        let db = TestDb::create().await;
        let dir = tempfile::tempdir().unwrap();
        let ast = support::standin(dir.path(), Options::default()).await;
        let mut env = support::ami_vars(&ast);
        env.push(("PORTAL_HEALTH_CHECK".into(), "off".into()));
        Self { db, dir, ast, env }
    }

    async fn portal(&self) -> Portal {
        Portal::spawn(&self.db.url, self.dir.path(), &support::pairs(&self.env)).await
    }

    /// Waits until an apply has sent Asterisk more than the `before` actions so far.
    async fn contacted(&self, before: usize) {
        support::wait_until(
            "the apply reached Asterisk",
            Duration::from_secs(10),
            || self.ast.actions().len() > before,
        )
        .await
    }
}

#[tokio::test]
async fn two_portals_on_one_database_apply_one_at_a_time() {
    let rig = Rig::new().await;
    let (a, b) = (rig.portal().await, rig.portal().await);
    let (ha, hb) = (TestApp::client_for(a.addr), TestApp::client_for(b.addr));
    ha.create_user("A", "a@x.org").await;
    // Every action A sends is held up, so A holds the apply lock for a while.
    rig.ast.set_fault(Fault::Stall(Duration::from_millis(300)));
    let before = rig.ast.actions().len();

    let (ra, rb) = tokio::join!(ha.post("/apply", json!({})), async {
        // A takes the lock before it contacts Asterisk: B asks once A has.
        rig.contacted(before).await;
        hb.post("/apply", json!({})).await
    });
    assert_eq!(ra.status, StatusCode::OK, "{}", ra.body);
    assert_eq!(rb.error(), (StatusCode::CONFLICT, "apply_in_progress"));
    let applies = ha.get("/applies").await.body;
    assert_eq!(
        applies["applies"].as_array().unwrap().len(),
        1,
        "the refused apply started nothing"
    );
}

#[tokio::test]
async fn many_simultaneous_applies_never_overlap() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    app.create_user("A", "a@x.org").await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                if i % 3 == 0 {
                    app.create_user("U", &format!("u{i}@x.org")).await;
                }
                app.post("/apply", json!({})).await.status
            })
        })
        .collect();
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == StatusCode::OK || s == StatusCode::CONFLICT, "{s}");
    }
    let rows = app.get("/applies?limit=100").await.body["applies"]
        .as_array()
        .unwrap()
        .clone();
    let mut spans: Vec<_> = rows
        .iter()
        .map(|r| {
            let span = (
                support::instant(&r["started_at"]),
                support::instant(&r["finished_at"]),
            );
            assert!(span.0 <= span.1, "finished before it started: {r}");
            span
        })
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "applies overlapped: {w:?}");
    }
    // A user created while another apply held the lock may still be pending (its own
    // apply got 409): one more apply takes it, and then nothing is left.
    let last = app.post("/apply", json!({})).await.body;
    assert!(
        last["status"] == "applied" || last["status"] == "unchanged",
        "{last}"
    );
    assert_eq!(app.get("/apply/pending").await.body["pending"], false);
    assert_eq!(
        app.post("/apply", json!({})).await.body["status"],
        "unchanged"
    );
}

#[tokio::test]
async fn kill_9_in_the_middle_of_an_apply_leaves_whole_files_and_an_interrupted_row() {
    let rig = Rig::new().await;
    let (etc, ast) = (rig.dir.path(), &rig.ast);
    let portal = rig.portal().await;
    let http = TestApp::client_for(portal.addr);
    http.create_user("A", "a@x.org").await;
    assert_eq!(http.post("/apply", json!({})).await.status, StatusCode::OK);
    http.create_user("B", "b@x.org").await;

    ast.set_fault(Fault::Stall(Duration::from_secs(30)));
    let before = ast.actions().len();
    let pending = tokio::spawn(async move { http.post("/apply", json!({})).await });
    // The files are written before Asterisk is contacted: wait for that contact.
    rig.contacted(before).await;
    portal.signal("KILL");
    let (code, _) = portal.wait();
    assert_eq!(code, None, "killed by the signal");
    let _ = pending.await;

    for f in [
        "pjsip.d/synergycall/generated_endpoints.conf",
        "extensions.d/synergycall/generated_routing.conf",
    ] {
        let text = std::fs::read_to_string(etc.join(f)).unwrap();
        assert!(is_intact(&text), "{f} is a whole file");
    }
    for d in ["pjsip.d/synergycall", "extensions.d/synergycall"] {
        assert_eq!(
            std::fs::read_dir(etc.join(d)).unwrap().count(),
            1,
            "no temp file left in {d}"
        );
    }
    let c = rig.db.client().await;
    let status: String = c
        .query_one(
            "SELECT status FROM apply_audit_log ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "running");

    ast.clear_faults();
    let portal = rig.portal().await;
    let http = TestApp::client_for(portal.addr);
    let rows = http.get("/applies").await.body;
    assert_eq!(rows["applies"][0]["status"], "interrupted");
    assert_eq!(rows["applies"][1]["status"], "applied");
    let rec = http.post("/apply", json!({})).await;
    assert_eq!(
        rec.status,
        StatusCode::OK,
        "the lock died with the killed process: {}",
        rec.body
    );
    assert_eq!(rec.body["changes"]["added"], json!([1001]));
    assert_eq!(ast.endpoints().len(), 2);
}

#[tokio::test]
async fn sigterm_lets_a_running_apply_finish() {
    let rig = Rig::new().await;
    let portal = rig.portal().await;
    let http = TestApp::client_for(portal.addr);
    http.create_user("A", "a@x.org").await;
    // The apply is held up in Asterisk while the signal arrives.
    rig.ast.set_fault(Fault::Stall(Duration::from_millis(400)));
    let before = rig.ast.actions().len();
    let pending = tokio::spawn(async move { http.post("/apply", json!({})).await });
    rig.contacted(before).await;
    portal.signal("TERM");
    let r = pending.await.unwrap();
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{}",
        r.body
    );
    let (code, stderr) = portal.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(rig.ast.endpoints().len(), 1);
}
