//! Several Asterisk hosts (nodes) on one database: two or three `serve` processes, each
//! with its own `PORTAL_NODE`, Asterisk stand-in and directories (support::cluster). An
//! apply on one node applies on every chosen node; the faults of issue 10: a node killed
//! in the middle of its apply, an Asterisk failing on one node, rolling mode, a node that
//! is down, the database restarting, the receiving node dying, two admins at once; and
//! that nothing but PostgreSQL connects the nodes.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support;
use crate::support::app::{error_code, TestApp};
use crate::support::asterisk::Fault;
use crate::support::cluster::{
    applies, entry, nodes, outcome, statuses, tcp_sockets, Cluster, Node, Setup, Socket,
};

/// On top of a deadline the portal keeps, for a loaded machine.
const SLACK: Duration = Duration::from_millis(2500);

async fn apply(node: &Node, query: &str) -> (StatusCode, Value) {
    let r = node.http.post(&format!("/apply{query}"), json!({})).await;
    (r.status, r.body)
}

/// `[(node, status)]` as a record's `nodes` should read.
fn expect(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect()
}

/// The next apply on a, with nothing new for a, brings b up to date (its files hold
/// `extension`) and leaves nothing pending on b.
async fn next_apply_takes_b_along(c: &Cluster, extension: u32) {
    let (status, rec) = apply(c.node("a"), "").await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["status"], "applied");
    assert_eq!(
        statuses(&rec),
        expect(&[("a", "unchanged"), ("b", "applied")])
    );
    assert!(c.node("b").files_hold(extension));
    assert!(!pending_everywhere(c, "b").await);
}

/// A 502 whose error is node `node`'s, with `code`, named in the message.
fn assert_failed_at(c: &Cluster, status: StatusCode, rec: &Value, node: &str, code: &str) {
    assert_eq!(
        (status, error_code(rec)),
        (StatusCode::BAD_GATEWAY, code),
        "{rec}\n{}",
        c.logs()
    );
    let message = rec["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&format!("node {node}: ")), "{rec}");
}

/// Nodes a and b, where a waits `timeout` for b's record.
async fn pair_waiting(timeout: Duration) -> Cluster {
    let setup = Setup {
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        ..Setup::default()
    };
    Cluster::start(&["a", "b"], setup).await
}

fn names(list: &[Value]) -> Vec<&str> {
    list.iter().map(|e| e["name"].as_str().unwrap()).collect()
}

/// Whether node `name` has changes to apply, asserting that every place that says so
/// agrees: its own `GET /apply/pending` and `GET /status` (when it runs), and its entry
/// in every running node's `GET /nodes`.
async fn pending_everywhere(c: &Cluster, name: &str) -> bool {
    let mut seen = Vec::new();
    let n = c.node(name);
    if n.running() {
        let r = n.http.get("/apply/pending").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        seen.push(("its /apply/pending".to_owned(), r.body["pending"].clone()));
        let st = n.http.get("/status").await.body;
        assert_eq!(st["node"], name, "{st}");
        seen.push(("its /status".to_owned(), st["pending"].clone()));
    }
    for m in c.nodes.iter().filter(|m| m.running()) {
        let list = nodes(&m.http).await;
        seen.push((
            format!("GET /nodes on {}", m.name),
            entry(&list, name)["pending"].clone(),
        ));
    }
    let first = seen[0].1.as_bool().unwrap_or_else(|| panic!("{seen:?}"));
    assert!(
        seen.iter().all(|(_, v)| *v == json!(first)),
        "node {name}: pending disagrees: {seen:?}"
    );
    first
}

/// Alice created on `coordinator` and applied to every node.
async fn baseline(c: &Cluster, coordinator: &str) -> Value {
    let n = c.node(coordinator);
    n.http.create_user("Alice", "alice@x.org").await;
    let (status, rec) = apply(n, "").await;
    assert_eq!(status, StatusCode::OK, "{rec}\n{}", c.logs());
    let all: Vec<_> = c
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), "applied"))
        .collect();
    assert_eq!(statuses(&rec), expect(&all), "{rec}");
    rec
}

/// `GET /applies?node=` as `Some` only when the database answered.
async fn try_applies(http: &support::app::Http, node: &str) -> Option<Vec<Value>> {
    let r = http.get(&format!("/applies?node={node}&limit=100")).await;
    (r.status == StatusCode::OK).then(|| r.body["applies"].as_array().unwrap().clone())
}

#[tokio::test]
async fn two_nodes_apply_as_one_each_with_its_own_record_reload_and_probe() {
    let c = Cluster::start(
        &["a", "b"],
        Setup {
            probe: true,
            ..Setup::default()
        },
    )
    .await;
    let (a, b) = (c.node("a"), c.node("b"));
    let list = support::eventually(
        "both nodes report their AMI link",
        Duration::from_secs(15),
        || async {
            let list = nodes(&b.http).await;
            list.iter().all(|e| e["ami"] == "ok").then_some(list)
        },
    )
    .await;
    assert_eq!(names(&list), ["a", "b"]);
    // Each node's scrape carries every node's heartbeat age (a second or two here).
    let ages = support::eventually(
        "a's scrape has both ages",
        Duration::from_secs(10),
        || async {
            let raw = String::from_utf8(a.http.get("/metrics").await.raw.to_vec()).ok()?;
            let age = |n: &str| -> Option<f64> {
                let prefix = format!("pbx_portal_node_heartbeat_age_seconds{{node=\"{n}\"}} ");
                raw.lines()
                    .find_map(|l| l.strip_prefix(prefix.as_str()))?
                    .parse()
                    .ok()
            };
            Some((age("a")?, age("b")?))
        },
    )
    .await;
    for age in [ages.0, ages.1] {
        assert!((0.0..15.0).contains(&age), "{ages:?}");
    }
    for e in &list {
        assert_eq!(e["alive"], true, "{e}");
        assert!(
            e["version"]
                .as_str()
                .is_some_and(|v| v.contains(env!("CARGO_PKG_VERSION"))),
            "{e}"
        );
        support::instant(&e["last_seen"]);
        assert_eq!(e["last_apply"], Value::Null, "{e}");
        assert!(e["registrations"].is_object(), "{e}");
    }
    assert!(!pending_everywhere(&c, "a").await, "nothing to apply yet");

    a.http.create_user("Alice", "alice@x.org").await;
    assert!(pending_everywhere(&c, "a").await);
    assert!(pending_everywhere(&c, "b").await);
    let before: Vec<_> = c
        .nodes
        .iter()
        .map(|n| (n.ast.reloads(), n.ast.agi_sessions()))
        .collect();

    let (status, rec) = apply(a, "").await;
    assert_eq!(status, StatusCode::OK, "{rec}\n{}", c.logs());
    assert_eq!(rec["status"], "applied", "{rec}");
    assert_eq!(
        (&rec["node"], &rec["requested_by"]),
        (&json!("a"), &Value::Null)
    );
    assert_eq!(
        statuses(&rec),
        expect(&[("a", "applied"), ("b", "applied")])
    );
    let (oa, ob) = (outcome(&rec, "a"), outcome(&rec, "b"));
    assert_eq!(
        oa["apply_id"], rec["id"],
        "a's outcome is the row it answers with"
    );
    let b_id = ob["apply_id"].as_i64().unwrap_or_else(|| panic!("{rec}"));
    assert_ne!(Some(b_id), rec["id"].as_i64(), "b has its own row");
    for o in [oa, ob] {
        assert_eq!(o["reload"]["method"], "ami", "{o}");
        assert_eq!(
            o["health"],
            json!({"status": "ok", "checked": 1, "missing": [], "proof": {
                "scope": "all", "because": "no_earlier_proof", "visited": 1,
                "whole_files": 2, "total": 1
            }}),
            "{o}"
        );
        assert_eq!(o["rolled_back"], false, "{o}");
        assert!(o["duration_ms"].is_i64(), "{o}");
        assert!(o.get("error").is_none(), "{o}");
    }
    assert_eq!(
        (&rec["reload"], &rec["health"]),
        (&oa["reload"], &oa["health"])
    );

    // Each host wrote, reloaded and probed on its own.
    for (n, (reloads, probes)) in c.nodes.iter().zip(before) {
        assert!(n.files_hold(1000), "node {}", n.name);
        n.assert_files_whole();
        assert!(n.ast.endpoints().contains_key("1000"), "node {}", n.name);
        assert_eq!(
            n.ast.reloads(),
            reloads + 2,
            "node {}: res_pjsip and pbx_config",
            n.name
        );
        assert_eq!(
            n.ast.agi_sessions(),
            probes + 1,
            "node {}: one probe",
            n.name
        );
    }

    let list = nodes(&b.http).await;
    assert_eq!(entry(&list, "a")["last_apply"]["id"], rec["id"]);
    assert_eq!(entry(&list, "b")["last_apply"]["id"], b_id);
    assert!(!pending_everywhere(&c, "a").await);
    assert!(!pending_everywhere(&c, "b").await);

    // b's audit log, read on a (?node=b) and on b (its own by default).
    let rows = applies(&a.http, "b").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["id"], b_id);
    assert_eq!(
        (&row["node"], &row["requested_by"], &row["status"]),
        (&json!("b"), &json!("a"), &json!("applied")),
        "{row}"
    );
    assert_eq!(statuses(row), expect(&[("b", "applied")]));
    assert_eq!(outcome(row, "b")["apply_id"], b_id);
    assert_eq!(b.http.get("/applies").await.body["applies"], json!(rows));
    // a's row is the record it answered with, once it lists every node's outcome (the
    // answer does not wait for that write).
    let rows = support::eventually(
        "a's row lists both nodes",
        Duration::from_secs(5),
        || async {
            let rows = try_applies(&b.http, "a").await?;
            (rows[0]["nodes"].as_array()?.len() == 2).then_some(rows)
        },
    )
    .await;
    assert_eq!(rows, std::slice::from_ref(&rec));
    assert_eq!(a.http.get("/applies").await.body["applies"], json!(rows));
}

#[tokio::test]
async fn a_node_killed_in_the_middle_of_its_apply_is_interrupted_and_never_applies_by_itself() {
    let timeout = Duration::from_millis(3000);
    let mut c = pair_waiting(timeout).await;
    baseline(&c, "a").await;
    c.node("a").http.create_user("Bob", "bob@x.org").await;
    // b's apply is stuck in its Asterisk until b is killed.
    c.node("b")
        .ast
        .set_fault(Fault::Stall(Duration::from_secs(30)));
    let before = c.node("b").actions();
    let http = TestApp::client_for(c.node("a").listen);
    let req = tokio::spawn(async move {
        let t = Instant::now();
        let r = http.post("/apply", json!({})).await;
        (t.elapsed(), r.status, r.body)
    });
    c.node("b").contacted(before).await;
    c.node_mut("b").kill9().await;

    let (took, status, rec) = req.await.unwrap();
    eprintln!("answered after {took:?}: {status} {rec}");
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{rec}\n{}", c.logs());
    let code = error_code(&rec);
    assert!(
        code == "node_timeout" || code == "node_unreachable",
        "{rec}"
    );
    assert!(took < timeout + SLACK, "answered after {took:?}");
    assert_eq!(rec["status"], "failed");
    assert!(
        rec["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("node b: "),
        "{rec}"
    );
    assert_eq!(statuses(&rec), expect(&[("a", "applied"), ("b", "failed")]));
    assert_eq!(error_code(outcome(&rec, "b")), code);
    assert!(outcome(&rec, "a").get("error").is_none(), "{rec}");
    // a's result stands.
    let a = c.node("a");
    assert!(a.files_hold(1001));
    a.assert_files_whole();
    assert!(a.ast.endpoints().contains_key("1001"));
    assert!(!pending_everywhere(&c, "a").await);
    c.node("b").assert_files_whole();

    // b comes back: its row is interrupted, it is pending, and it does nothing more.
    c.node("b").ast.clear_faults();
    c.node_mut("b").start().await;
    c.until_all_alive().await;
    let (a, b) = (c.node("a"), c.node("b"));
    let rows = support::eventually(
        "b's killed apply is marked interrupted",
        Duration::from_secs(10),
        || async {
            let rows = try_applies(&b.http, "b").await?;
            (rows[0]["status"] == "interrupted").then_some(rows)
        },
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(error_code(&rows[0]), "interrupted", "{}", rows[0]);
    assert_eq!(rows[0]["requested_by"], "a");
    assert_eq!(rows[1]["status"], "applied");
    if let Some(id) = outcome(&rec, "b")["apply_id"].as_i64() {
        assert_eq!(rows[0]["id"], id, "the answer named b's row");
    }
    assert!(pending_everywhere(&c, "b").await);
    assert!(!pending_everywhere(&c, "a").await);

    // Two heartbeats later b still has not applied by itself.
    let reloads = b.reload_actions();
    let mut beats = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while beats.len() < 3 {
        assert!(Instant::now() < deadline, "b's heartbeats: {beats:?}");
        let seen = entry(&nodes(&a.http).await, "b")["last_seen"].clone();
        if !beats.contains(&seen) {
            beats.push(seen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pending_everywhere(&c, "b").await);
    assert_eq!(b.reload_actions(), reloads, "b's Asterisk got no reload");
    assert_eq!(applies(&a.http, "b").await.len(), 2, "no new row on b");
}

#[tokio::test]
async fn a_node_whose_asterisk_fails_its_reload_or_probe_rolls_back_alone() {
    let c = Cluster::start(
        &["a", "b"],
        Setup {
            probe: true,
            ..Setup::default()
        },
    )
    .await;
    baseline(&c, "a").await;
    let (a, b) = (c.node("a"), c.node("b"));
    a.http.create_user("Bob", "bob@x.org").await;
    let (a_before, b_before) = (a.files(), b.files());
    let b_live = b.ast.endpoints();

    // b's reload fails.
    b.ast.set_fault(Fault::CommandError);
    let (status, rec) = apply(a, "").await;
    assert_eq!(
        (status, error_code(&rec)),
        (StatusCode::BAD_GATEWAY, "reload_failed"),
        "{rec}\n{}",
        c.logs()
    );
    assert_eq!(rec["status"], "failed");
    assert!(
        rec["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("node b: "),
        "{rec}"
    );
    assert_eq!(statuses(&rec), expect(&[("a", "applied"), ("b", "failed")]));
    let (oa, ob) = (outcome(&rec, "a"), outcome(&rec, "b"));
    assert_eq!(
        (error_code(ob), &ob["rolled_back"]),
        ("reload_failed", &json!(true))
    );
    assert!(ob["apply_id"].is_i64(), "{ob}");
    assert_eq!((oa.get("error"), &oa["rolled_back"]), (None, &json!(false)));
    assert_eq!(
        b.files(),
        b_before,
        "b's previous files are back, byte for byte"
    );
    assert_ne!(a.files(), a_before);
    assert!(a.files_hold(1001));
    a.assert_files_whole();
    b.assert_files_whole();
    assert!(a.ast.endpoints().contains_key("1001"));
    b.ast.clear_faults();
    assert_eq!(b.ast.endpoints(), b_live);
    let row = &applies(&a.http, "b").await[0];
    assert_eq!(row["id"], ob["apply_id"]);
    assert_eq!(
        (
            &row["status"],
            error_code(row),
            &row["rolled_back"],
            &row["requested_by"]
        ),
        (&json!("failed"), "reload_failed", &json!(true), &json!("a")),
        "{row}"
    );
    assert!(!pending_everywhere(&c, "a").await);
    assert!(pending_everywhere(&c, "b").await);

    // b's Asterisk fails to create Bob on reload: b never held him (its apply was rolled
    // back), so there is no previous version to retain and he is missing; its probe
    // fails; a has nothing to do.
    assert!(!b.ast.endpoints().contains_key("1001"));
    b.ast.set_fault(Fault::RefuseObjects(vec!["1001".into()]));
    let (status, rec) = apply(a, "").await;
    assert_eq!(
        (status, error_code(&rec)),
        (StatusCode::BAD_GATEWAY, "health_check_failed"),
        "{rec}\n{}",
        c.logs()
    );
    assert_eq!(
        statuses(&rec),
        expect(&[("a", "unchanged"), ("b", "failed")])
    );
    let ob = outcome(&rec, "b");
    assert_eq!(
        (error_code(ob), &ob["rolled_back"], &ob["health"]["status"]),
        ("health_check_failed", &json!(true), &json!("failed")),
        "{ob}"
    );
    assert_eq!(b.files(), b_before);
    b.assert_files_whole();
    assert!(pending_everywhere(&c, "b").await);
    b.ast.clear_faults();

    // The next apply takes b along.
    next_apply_takes_b_along(&c, 1001).await;
}

#[tokio::test]
async fn rolling_stops_at_the_first_failing_node_and_never_contacts_the_rest() {
    let c = Cluster::start(&["a", "b", "c"], Setup::default()).await;
    let (a, b, cn) = (c.node("a"), c.node("b"), c.node("c"));
    a.http.create_user("Alice", "alice@x.org").await;
    b.ast.set_fault(Fault::CommandError);
    let c_actions = cn.actions();
    let b_before = b.files();

    let (status, rec) = apply(a, "?strategy=rolling").await;
    assert_failed_at(&c, status, &rec, "b", "reload_failed");
    assert_eq!(
        statuses(&rec),
        expect(&[("a", "applied"), ("b", "failed"), ("c", "skipped")])
    );
    let oc = outcome(&rec, "c");
    assert_eq!(oc["apply_id"], Value::Null, "{oc}");
    assert!(oc.get("error").is_none(), "skipped is no error: {oc}");
    assert_eq!(outcome(&rec, "b")["rolled_back"], true);
    assert_eq!(b.files(), b_before, "b's files are as before");
    assert!(a.files_hold(1000));
    a.assert_files_whole();
    let contacted: Vec<_> = cn.ast.actions()[c_actions..]
        .iter()
        .filter(|a| !a.contains("PJSIPShowContacts"))
        .cloned()
        .collect();
    assert!(
        contacted.is_empty(),
        "c's Asterisk was contacted: {contacted:?}"
    );
    assert_eq!(cn.files(), (Vec::new(), Vec::new()), "c wrote nothing");
    assert!(applies(&a.http, "c").await.is_empty(), "c recorded nothing");
    assert!(!pending_everywhere(&c, "a").await);
    assert!(pending_everywhere(&c, "b").await);
    assert!(pending_everywhere(&c, "c").await);

    // In the ?nodes= order, one node after the other.
    b.ast.clear_faults();
    let (status, rec) = apply(a, "?strategy=rolling&nodes=c,b,a").await;
    assert_eq!(status, StatusCode::OK, "{rec}\n{}", c.logs());
    assert_eq!(rec["status"], "applied");
    assert_eq!(
        statuses(&rec),
        expect(&[("c", "applied"), ("b", "applied"), ("a", "unchanged")])
    );
    let (row_c, row_b) = (
        &applies(&a.http, "c").await[0],
        &applies(&a.http, "b").await[0],
    );
    assert!(
        support::instant(&row_c["finished_at"]) <= support::instant(&row_b["started_at"]),
        "b began after c ended: {row_c} {row_b}"
    );
    for n in ["a", "b", "c"] {
        assert!(!pending_everywhere(&c, n).await, "{n}");
        assert!(c.node(n).files_hold(1000));
    }
}

#[tokio::test]
async fn a_stopped_node_is_unreachable_and_pending_until_the_next_apply() {
    let timeout = Duration::from_millis(3000);
    let mut c = pair_waiting(timeout).await;
    c.node("a").http.create_user("Alice", "alice@x.org").await;
    c.node_mut("b").term().await;
    let (a, b) = (c.node("a"), c.node("b"));
    let list = nodes(&a.http).await;
    assert_eq!(entry(&list, "b")["alive"], false, "at once: {list:?}");
    assert_eq!(entry(&list, "a")["alive"], true);

    let t = Instant::now();
    let (status, rec) = apply(a, "?nodes=a,b").await;
    assert!(
        t.elapsed() < timeout,
        "nothing waited for b: {:?}",
        t.elapsed()
    );
    assert_failed_at(&c, status, &rec, "b", "node_unreachable");
    assert_eq!(statuses(&rec), expect(&[("a", "applied"), ("b", "failed")]));
    let ob = outcome(&rec, "b");
    assert_eq!(
        (error_code(ob), &ob["apply_id"]),
        ("node_unreachable", &Value::Null)
    );
    assert!(a.files_hold(1000));
    assert_eq!(b.files(), (Vec::new(), Vec::new()), "b wrote nothing");
    assert!(
        applies(&a.http, "b").await.is_empty(),
        "nothing recorded for b"
    );
    assert_eq!(b.reload_actions(), 0);

    // By default only the alive nodes (and the receiving one).
    let (status, rec) = apply(a, "").await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["status"], "unchanged");
    assert_eq!(statuses(&rec), expect(&[("a", "unchanged")]));
    assert!(pending_everywhere(&c, "b").await);

    // b comes back: pending until the next apply, which takes it along.
    c.node_mut("b").start().await;
    c.until_all_alive().await;
    let b = c.node("b");
    assert!(pending_everywhere(&c, "b").await);
    assert!(!pending_everywhere(&c, "a").await);
    assert_eq!(b.reload_actions(), 0, "b did not apply by itself");
    next_apply_takes_b_along(&c, 1000).await;
}

#[tokio::test]
async fn the_database_restarting_during_a_cluster_apply_loses_no_record() {
    let c = Cluster::start(
        &["a", "b"],
        Setup {
            proxied: true,
            ..Setup::default()
        },
    )
    .await;
    baseline(&c, "a").await;
    c.node("a").http.create_user("Bob", "bob@x.org").await;
    let before: Vec<_> = c.nodes.iter().map(|n| n.files()).collect();
    let mut acted = Vec::new();
    for n in &c.nodes {
        n.ast.set_fault(Fault::Stall(Duration::from_millis(250)));
        acted.push(n.actions());
    }
    let http = TestApp::client_for(c.node("a").listen);
    let req = tokio::spawn(async move { http.post("/apply", json!({})).await });
    for (n, acted) in c.nodes.iter().zip(acted) {
        n.contacted(acted).await;
    }
    // PostgreSQL restarts while both Asterisks are busy: every connection is dropped,
    // new ones are refused for longer than the Asterisks take (four actions), so each
    // node ends its apply while the database is away.
    for n in &c.nodes {
        n.proxy.as_ref().unwrap().cut();
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    for n in &c.nodes {
        n.proxy.as_ref().unwrap().restore();
    }
    let r = req.await.unwrap();
    eprintln!("the answer across the restart: {} {}", r.status, r.body);
    assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(&r.status),
        "{} {}\n{}",
        r.status,
        r.body,
        c.logs()
    );

    // Every node's outcome is recorded: one final row each, true to its files.
    for (n, before) in c.nodes.iter().zip(before) {
        let rows = support::eventually(
            &format!("node {}'s row is final", n.name),
            Duration::from_secs(15),
            || async {
                let rows = try_applies(&n.http, &n.name).await?;
                (rows.len() == 2 && rows[0]["status"] != "running").then_some(rows)
            },
        )
        .await;
        let row = &rows[0];
        n.assert_files_whole();
        match row["status"].as_str().unwrap() {
            "applied" => {
                assert!(n.files_hold(1001), "node {}: {row}", n.name);
                assert!(n.ast.endpoints().contains_key("1001"));
                assert!(!pending_everywhere(&c, &n.name).await);
            }
            "failed" => {
                assert_eq!(row["rolled_back"], true, "{row}");
                assert_eq!(n.files(), before, "node {}: {row}", n.name);
                assert!(pending_everywhere(&c, &n.name).await);
            }
            _ => panic!("node {}: its outcome was lost: {row}\n{}", n.name, c.logs()),
        }
        if let Some(o) = r.body["nodes"]
            .as_array()
            .and_then(|l| l.iter().find(|o| o["node"] == n.name.as_str()))
        {
            if let Some(id) = o["apply_id"].as_i64() {
                assert_eq!(row["id"], id, "{o}");
            }
            if o["status"] == "applied" {
                assert_eq!(row["status"], "applied", "the answer said so: {o}");
            }
        }
    }
}

/// a asks b and is killed (kill -9) while b's apply is in its Asterisk's hands: in the
/// middle of its own apply (`own_done` false), or once that has ended and a only waits
/// for b. b still finishes and records its apply; a, restarted, marks its row
/// interrupted.
async fn receiving_node_killed(own_done: bool) {
    let mut c = Cluster::start(&["a", "b"], Setup::default()).await;
    baseline(&c, "a").await;
    c.node("a").http.create_user("Bob", "bob@x.org").await;
    let stall = Fault::Stall(Duration::from_millis(700));
    c.node("b").ast.set_fault(stall.clone());
    if !own_done {
        c.node("a").ast.set_fault(stall);
    }
    let (a_before, b_before) = (c.node("a").actions(), c.node("b").actions());
    let http = TestApp::client_for(c.node("a").listen);
    // The answer is lost with a: the request fails.
    let req = tokio::spawn(async move { http.post("/apply", json!({})).await });
    c.node("b").contacted(b_before).await;
    if own_done {
        let b = c.node("b");
        support::eventually("a's own apply ended", Duration::from_secs(10), || async {
            let rows = try_applies(&b.http, "a").await?;
            (rows.len() == 2 && rows[0]["status"] != "running").then_some(())
        })
        .await;
        let rows = applies(&b.http, "b").await;
        assert_eq!(
            rows[0]["status"], "running",
            "b is still at it: {}",
            rows[0]
        );
    } else {
        c.node("a").contacted(a_before).await;
    }
    c.node_mut("a").kill9().await;
    let _ = req.await;

    // b finishes its apply and records it.
    let b = c.node("b");
    let rows = support::eventually("b's apply is recorded", Duration::from_secs(15), || async {
        let rows = try_applies(&b.http, "b").await?;
        (rows.len() == 2 && rows[0]["status"] != "running").then_some(rows)
    })
    .await;
    assert_eq!(
        (&rows[0]["status"], &rows[0]["requested_by"]),
        (&json!("applied"), &json!("a")),
        "{}\n{}",
        rows[0],
        c.logs()
    );
    assert!(b.files_hold(1001));
    b.assert_files_whole();
    assert!(b.ast.endpoints().contains_key("1001"));
    assert!(!pending_everywhere(&c, "b").await);

    // a comes back and marks its own row interrupted.
    c.node("a").ast.clear_faults();
    c.node_mut("a").start().await;
    let a = c.node("a");
    let rows = support::eventually(
        "a's row is final after its restart",
        Duration::from_secs(10),
        || async {
            let rows = try_applies(&a.http, "a").await?;
            (rows[0]["status"] != "running").then_some(rows)
        },
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    if own_done {
        // a's own apply had ended: its row keeps a's outcome, and lists only what a
        // received before it died (b's outcome is in b's row, requested_by a).
        assert_eq!(
            (rows[0]["status"].as_str(), error_code(&rows[0])),
            (Some("applied"), "<none>"),
            "a's row after a died waiting for b: {}",
            rows[0]
        );
        assert_eq!(statuses(&rows[0]), expect(&[("a", "applied")]));
    } else {
        assert_eq!(
            (rows[0]["status"].as_str(), error_code(&rows[0])),
            (Some("interrupted"), "interrupted"),
            "a's row after a died in its own apply: {}",
            rows[0]
        );
    }
    a.assert_files_whole();
    pending_everywhere(&c, "a").await;
    assert!(!pending_everywhere(&c, "b").await);
}

#[tokio::test]
async fn the_receiving_node_dying_in_its_own_apply_leaves_no_apply_half_done_elsewhere() {
    receiving_node_killed(false).await;
}

#[tokio::test]
async fn the_receiving_node_dying_while_it_waits_for_the_others_leaves_no_apply_half_done() {
    receiving_node_killed(true).await;
}

/// Every TCP socket of node `n` is its own listener, a connection to PostgreSQL (or the
/// proxy in front of it), to its own Asterisk's AMI, or one accepted on its own ports.
fn assert_own_connections(c: &Cluster, n: &Node, sockets: &[Socket]) {
    let pg: Vec<_> = std::iter::once(c.pg)
        .chain(
            c.nodes
                .iter()
                .filter_map(|m| m.proxy.as_ref().map(|p| p.addr)),
        )
        .collect();
    let others: Vec<_> = c
        .nodes
        .iter()
        .filter(|m| m.name != n.name)
        .flat_map(|m| [m.listen, m.agi, m.ast.ami_addr()])
        .collect();
    let own = [n.listen, n.agi];
    for s in sockets {
        if s.listening {
            assert!(own.contains(&s.local), "node {} listens on {s:?}", n.name);
            continue;
        }
        if s.remote.port() == 0 {
            continue; // not connected
        }
        assert!(
            !others.contains(&s.remote) && !others.contains(&s.local),
            "node {} talks to another node: {s:?}",
            n.name
        );
        assert!(
            pg.contains(&s.remote) || s.remote == n.ast.ami_addr() || own.contains(&s.local),
            "node {}: a connection that is neither PostgreSQL, its AMI nor inbound: {s:?}\n{sockets:?}",
            n.name
        );
    }
    assert!(
        sockets.iter().any(|s| pg.contains(&s.remote)),
        "node {} is connected to PostgreSQL: {sockets:?}",
        n.name
    );
}

#[tokio::test]
async fn nothing_but_postgresql_connects_the_nodes() {
    let c = Cluster::start(
        &["a", "b"],
        Setup {
            probe: true,
            ..Setup::default()
        },
    )
    .await;
    c.node("a").http.create_user("Alice", "alice@x.org").await;
    let mut acted = Vec::new();
    for n in &c.nodes {
        n.ast.set_fault(Fault::Stall(Duration::from_millis(250)));
        acted.push(n.actions());
    }
    let http = TestApp::client_for(c.node("a").listen);
    let req = tokio::spawn(async move { http.post("/apply", json!({})).await });
    for (n, acted) in c.nodes.iter().zip(acted) {
        n.contacted(acted).await;
    }
    // In the middle of the cluster apply, then after it.
    let during: Vec<_> = c.nodes.iter().map(|n| tcp_sockets(n.pid())).collect();
    let r = req.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}\n{}", r.body, c.logs());
    let after: Vec<_> = c.nodes.iter().map(|n| tcp_sockets(n.pid())).collect();
    assert_eq!(
        statuses(&r.body),
        expect(&[("a", "applied"), ("b", "applied")])
    );
    for n in &c.nodes {
        assert!(n.files_hold(1000));
        n.assert_files_whole();
    }
    for snapshot in [during, after] {
        for (n, sockets) in c.nodes.iter().zip(&snapshot) {
            assert_own_connections(&c, n, sockets);
            assert!(
                sockets.iter().any(|s| s.remote == n.ast.ami_addr()),
                "node {}: its AMI link: {sockets:?}",
                n.name
            );
        }
    }
}

#[tokio::test]
async fn two_admins_at_once_get_one_apply_per_node_and_a_409() {
    let c = Cluster::start(&["a", "b"], Setup::default()).await;
    let (a, b) = (c.node("a"), c.node("b"));
    for n in &c.nodes {
        n.ast.set_fault(Fault::Stall(Duration::from_millis(150)));
    }
    for round in 1..=3 {
        a.http
            .create_user(&format!("U{round}"), &format!("u{round}@x.org"))
            .await;
        let (ra, rb) = tokio::join!(
            a.http.post("/apply", json!({})),
            b.http.post("/apply", json!({}))
        );
        let got = [(ra.status, ra.body), (rb.status, rb.body)];
        eprintln!("round {round}: a {} b {}", got[0].0, got[1].0);
        let (refused, done): (Vec<_>, Vec<_>) =
            got.iter().partition(|(s, _)| *s == StatusCode::CONFLICT);
        assert_eq!(
            (refused.len(), done.len()),
            (1, 1),
            "round {round}: {} {} / {} {}\n{}",
            got[0].0,
            got[0].1,
            got[1].0,
            got[1].1,
            c.logs()
        );
        assert_eq!(error_code(&refused[0].1), "apply_in_progress");
        let (status, rec) = done[0];
        assert_eq!(*status, StatusCode::OK, "{rec}");
        let mut all = statuses(rec);
        all.sort();
        assert_eq!(all, expect(&[("a", "applied"), ("b", "applied")]), "{rec}");
        for n in ["a", "b"] {
            assert_eq!(
                applies(&a.http, n).await.len(),
                round,
                "round {round}: one apply on {n}"
            );
            let node = c.node(n);
            assert!(node.files_hold(999 + round as u32), "round {round}: {n}");
            node.assert_files_whole();
            assert!(!pending_everywhere(&c, n).await);
        }
    }
}

#[tokio::test]
async fn unknown_nodes_and_bad_strategies_are_refused_and_nothing_is_recorded() {
    let c = Cluster::start(&["a", "b"], Setup::default()).await;
    let (a, b) = (c.node("a"), c.node("b"));
    a.http.create_user("Alice", "alice@x.org").await;
    let cases = [
        ("?nodes=zz", "nodes"),
        ("?nodes=a,zz", "nodes"),
        ("?nodes=", "nodes"),
        ("?nodes=a,a", "nodes"),
        ("?nodes=a,,b", "nodes"),
        ("?nodes=a%20b", "nodes"),
        ("?nodes=b!", "nodes"),
        ("?strategy=fast", "strategy"),
        ("?strategy=ROLLING", "strategy"),
        ("?nodes=a&strategy=serial", "strategy"),
        ("?dry_run=true&nodes=a", "dry_run"),
        ("?dry_run=true&strategy=rolling", "dry_run"),
    ];
    for n in [a, b] {
        for (query, field) in cases {
            let (status, body) = apply(n, query).await;
            assert_eq!(
                (status, error_code(&body), body["error"]["field"].as_str()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    Some(field)
                ),
                "on {}: {query}: {body}",
                n.name
            );
        }
    }
    for n in ["a", "b"] {
        assert!(
            applies(&a.http, n).await.is_empty(),
            "nothing recorded on {n}"
        );
        assert!(pending_everywhere(&c, n).await);
        assert_eq!(c.node(n).reload_actions(), 0);
        assert_eq!(c.node(n).files(), (Vec::new(), Vec::new()));
    }

    // A dry run reads this node's changes only.
    let (status, rec) = apply(b, "?dry_run=true").await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["status"], "dry_run");
    assert_eq!(statuses(&rec), expect(&[("b", "dry_run")]));
    assert_eq!(rec["changes"]["added"], json!([1000]));
    assert_eq!(c.node("b").reload_actions(), 0);
}

#[tokio::test]
async fn a_pool_of_two_applies_its_own_node_and_refuses_to_coordinate_others() {
    let mut c = Cluster::start(&["a", "b"], Setup::default()).await;
    c.node_mut("a").term().await;
    c.node_mut("a").set("PORTAL_DB_POOL_SIZE", "2");
    c.node_mut("a").start().await;
    c.until_all_alive().await;
    let a = c.node("a");
    a.http.create_user("Alice", "alice@x.org").await;

    // Alone, an apply needs no more connections than before nodes existed.
    let (status, rec) = apply(a, "?nodes=a").await;
    assert_eq!(status, StatusCode::OK, "{rec}\n{}", c.logs());
    assert_eq!(statuses(&rec), expect(&[("a", "applied")]));

    // Coordinating several nodes holds more: refused at once, naming the variable.
    let before = applies(&a.http, "a").await.len();
    let (status, rec) = apply(a, "").await;
    assert_eq!(
        (status, error_code(&rec)),
        (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
        "{rec}"
    );
    let message = rec["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("PORTAL_DB_POOL_SIZE=2"), "{rec}");
    assert_eq!(
        applies(&a.http, "a").await.len(),
        before,
        "nothing recorded"
    );
    assert_eq!(applies(&a.http, "b").await.len(), 0, "nothing asked of b");
    assert!(pending_everywhere(&c, "b").await);
}
