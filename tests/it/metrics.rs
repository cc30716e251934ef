//! `GET /metrics`: the exposition is valid OpenMetrics (parsed by an OpenMetrics parser,
//! never matched as substrings), each request, apply, reload and probe moves exactly the
//! series it should by exactly one, the live gauges follow the registration link and the
//! pool, no label value is anything a client sent, and the token is required.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hyper::{Method, StatusCode};
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use serde_json::json;

use crate::support;
use crate::support::app::{TestApp, TOKEN};
use crate::support::asterisk::{Fault, Options};
use crate::support::{stand, PROBE_3S};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One scrape, parsed.
struct Scrape {
    raw: String,
    families: MetricsExposition<OpenMetricsType, OpenMetricsValue>,
}

/// A series: family, its labels in order, and (for histograms) which number.
type Key = String;

impl Scrape {
    /// Every sample as `(family, labels)` with its value, histograms as their count.
    fn samples(&self) -> Vec<(String, BTreeMap<String, String>, &OpenMetricsValue)> {
        let mut out = Vec::new();
        for (name, family) in &self.families.families {
            for sample in family.iter_samples() {
                let labels = sample
                    .get_labelset()
                    .expect("a sample of a family has label names")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                out.push((name.clone(), labels, &sample.value));
            }
        }
        out
    }

    /// The value of one sample (a counter's total, a gauge, a histogram's count);
    /// `None` when the series is absent.
    fn get(&self, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples()
            .into_iter()
            .find(|(name, l, _)| name == family && *l == want)
            .map(|(_, _, v)| number(v))
    }

    /// Every counter and histogram count, by series: what [`moved`] compares.
    fn counts(&self) -> BTreeMap<Key, f64> {
        self.samples()
            .into_iter()
            .filter(|(_, _, v)| {
                matches!(
                    v,
                    OpenMetricsValue::Counter(_) | OpenMetricsValue::Histogram(_)
                )
            })
            .map(|(name, labels, v)| (key(&name, &labels), number(v)))
            .collect()
    }
}

fn number(v: &OpenMetricsValue) -> f64 {
    match v {
        OpenMetricsValue::Counter(c) => c.value.as_f64(),
        OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => n.as_f64(),
        OpenMetricsValue::Histogram(h) => {
            let count = h.count.expect("a histogram has a count") as f64;
            let inf = h
                .buckets
                .iter()
                .find(|b| b.upper_bound == f64::INFINITY)
                .expect("a +Inf bucket");
            assert_eq!(inf.count.as_f64(), count, "_count is the +Inf bucket");
            count
        }
        OpenMetricsValue::Info => 1.0,
        other => panic!("unexpected sample {other:?}"),
    }
}

fn key(family: &str, labels: &BTreeMap<String, String>) -> Key {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{family}{{{}}}", labels.join(","))
}

/// Scrapes `/metrics` with the token; checks the status and the content type.
async fn scrape(app: &TestApp) -> Scrape {
    let r = app.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], CONTENT_TYPE);
    let raw = String::from_utf8(r.raw.to_vec()).expect("UTF-8");
    // openmetrics-parser 0.5 refuses a `# UNIT` line on a histogram, although OpenMetrics
    // 1.0 forbids units only on info and stateset families: the unit lines are checked
    // here and left out of what it parses.
    let (units, rest): (Vec<&str>, Vec<&str>) = raw.lines().partition(|l| l.starts_with("# UNIT "));
    for line in units {
        let [family, unit] = line["# UNIT ".len()..].split(' ').collect::<Vec<_>>()[..] else {
            panic!("malformed {line:?}");
        };
        assert_eq!(unit, "seconds", "{line}");
        assert!(family.ends_with("_seconds"), "{line}");
        assert!(
            raw.contains(&format!("# TYPE {family} histogram\n")),
            "{line}: units only on the duration histograms"
        );
    }
    let families = openmetrics_parser::openmetrics::parse_openmetrics(&(rest.join("\n") + "\n"))
        .unwrap_or_else(|e| panic!("not valid OpenMetrics: {e:?}\n{raw}"));
    Scrape { raw, families }
}

/// Which counters and histogram counts moved between two scrapes, and by how much; the
/// scrapes themselves (route `/metrics`) left out.
fn moved(before: &Scrape, after: &Scrape) -> BTreeMap<Key, f64> {
    let was = before.counts();
    after
        .counts()
        .into_iter()
        .filter(|(k, _)| !k.contains("route=/metrics"))
        .map(|(k, v)| {
            let d = v - was.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// The expected movements: every one by 1.
fn ones(keys: &[&str]) -> BTreeMap<Key, f64> {
    keys.iter().map(|k| (k.to_string(), 1.0)).collect()
}

/// An HTTP request's two series: the counter and the latency histogram.
fn request(route: &str, method: &str, status: u16) -> [String; 2] {
    let labels = format!("method={method},route={route},status={status}");
    [
        format!("pbx_portal_http_requests{{{labels}}}"),
        format!("pbx_portal_http_request_duration_seconds{{{labels}}}"),
    ]
}

#[tokio::test]
async fn a_create_an_apply_and_a_failed_apply_move_exactly_their_series_by_one() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    let app = &s.app;

    let before = scrape(app).await;
    app.create_user("Alice", "alice@x.org").await;
    let after = scrape(app).await;
    assert_eq!(
        moved(&before, &after),
        ones(
            &request("/users", "POST", 201)
                .each_ref()
                .map(String::as_str)
        )
    );

    let before = after;
    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["reload"]["method"].as_str()
        ),
        (Some("applied"), Some("ami"))
    );
    let after = scrape(app).await;
    let mut want = ones(&[
        "pbx_portal_applies{status=applied}",
        "pbx_portal_apply_duration_seconds{status=applied}",
        "pbx_portal_reloads{method=ami}",
        "pbx_portal_reload_duration_seconds{method=ami}",
        "pbx_portal_probe_duration_seconds{result=ok}",
    ]);
    want.extend(request("/apply", "POST", 200).map(|k| (k, 1.0)));
    assert_eq!(moved(&before, &after), want);

    // Asterisk refuses the reload: 502 reload_failed, rolled back; no probe.
    app.create_user("Bob", "bob@x.org").await;
    s.ast.set_fault(Fault::CommandError);
    let before = scrape(app).await;
    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "reload_failed");
    let method = r.body["reload"]["method"].as_str().unwrap().to_owned();
    let after = scrape(app).await;
    let mut want = ones(&[
        "pbx_portal_applies{status=failed}",
        "pbx_portal_apply_failures{code=reload_failed}",
        "pbx_portal_apply_duration_seconds{status=failed}",
        &format!("pbx_portal_reloads{{method={method}}}"),
        &format!("pbx_portal_reload_duration_seconds{{method={method}}}"),
    ]);
    want.extend(request("/apply", "POST", 502).map(|k| (k, 1.0)));
    assert_eq!(moved(&before, &after), want);
    assert_eq!(
        after.get("pbx_portal_applies", &[("status", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        after.get("pbx_portal_apply_failures", &[("code", "reload_failed")]),
        Some(1.0)
    );
    assert_eq!(
        after.get(
            "pbx_portal_build",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn files_only_applies_count_as_applied_unchanged_and_dry_run_with_no_reload() {
    let app = TestApp::spawn().await;
    app.create_user("Alice", "alice@x.org").await;
    let before = scrape(&app).await;
    for status in [0, 1] {
        let r = app.post("/apply", json!({})).await;
        assert_eq!(
            r.body["status"],
            ["applied", "unchanged"][status],
            "{}",
            r.body
        );
    }
    let r = app.post("/apply?dry_run=true", json!({})).await;
    assert_eq!(r.body["status"], "dry_run");
    let after = scrape(&app).await;
    let mut want = ones(&[
        "pbx_portal_applies{status=applied}",
        "pbx_portal_applies{status=unchanged}",
        "pbx_portal_applies{status=dry_run}",
        "pbx_portal_apply_duration_seconds{status=applied}",
        "pbx_portal_apply_duration_seconds{status=unchanged}",
        "pbx_portal_apply_duration_seconds{status=dry_run}",
        "pbx_portal_reloads{method=none}",
    ]);
    want.extend(request("/apply", "POST", 200).map(|k| (k, 3.0)));
    assert_eq!(moved(&before, &after), want);
    // Without AMI no registration view and no link: absent, not 0.
    for family in [
        "pbx_portal_registrations",
        "pbx_portal_registration_contacts",
        "pbx_portal_ami_link_up",
    ] {
        assert!(
            !after.families.families.contains_key(family),
            "{family} present without AMI:\n{}",
            after.raw
        );
    }
}

#[tokio::test]
async fn an_apply_interrupted_by_a_crash_is_counted_by_the_next_start() {
    let app = TestApp::spawn().await.restart_after_a_crashed_apply().await;
    let m = scrape(&app).await;
    assert_eq!(
        m.get("pbx_portal_applies", &[("status", "interrupted")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("pbx_portal_apply_failures", &[("code", "interrupted")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn registrations_the_link_and_the_pool_are_read_at_scrape_time() {
    let s = stand(Options::default(), &[PROBE_3S]).await;
    s.app.create_user("Alice", "alice@x.org").await;
    s.app.create_user("Bob", "bob@x.org").await;
    let r = s.app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let reg = |m: &Scrape| {
        (
            m.get("pbx_portal_ami_link_up", &[("link", "registrations")]),
            m.get("pbx_portal_registrations", &[("state", "online")]),
            m.get("pbx_portal_registrations", &[("state", "offline")]),
            m.get("pbx_portal_registration_contacts", &[]),
        )
    };
    let until = |want: (Option<f64>, Option<f64>, Option<f64>, Option<f64>), what: &str| {
        let app = &s.app;
        let what = what.to_owned();
        async move {
            support::eventually(&what, Duration::from_secs(10), || async {
                let m = scrape(app).await;
                (reg(&m) == want).then_some(m)
            })
            .await
        }
    };
    until(
        (Some(1.0), Some(0.0), Some(2.0), Some(0.0)),
        "the link up, both offline",
    )
    .await;

    s.ast
        .register(
            "1000",
            "sip:1000@127.0.0.1:5170",
            "Yealink SIP-T46U 66.86",
            ([127, 0, 0, 1], 5170).into(),
            Duration::from_secs(600),
        )
        .unwrap();
    let m = until(
        (Some(1.0), Some(1.0), Some(1.0), Some(1.0)),
        "Alice online with one contact",
    )
    .await;
    assert!(
        !m.raw.contains("Yealink") && !m.raw.contains("5170"),
        "a contact's details are no label:\n{}",
        m.raw
    );

    // Asterisk goes away: the link reads 0 and the registration series disappear
    // (unknown, never a stale count).
    s.ast.set_fault(Fault::RefuseConnections);
    s.ast.restart_ami();
    until(
        (Some(0.0), None, None, None),
        "the link down, counts absent",
    )
    .await;

    let pool = |state| m.get("pbx_portal_db_pool_connections", &[("state", state)]);
    let (in_use, idle) = (pool("in_use").unwrap(), pool("idle").unwrap());
    assert!(
        in_use >= 0.0 && idle >= 0.0 && in_use + idle >= 1.0,
        "{}",
        m.raw
    );
    assert_eq!(m.get("pbx_portal_db_pool_max_connections", &[]), Some(16.0));
    assert!(in_use + idle <= 16.0);
}

/// Every label value of every series is one the portal chose: a route template of the
/// OpenAPI document or `(unknown)`, a standard method or `other`, a status code, a word
/// of a fixed list. Nothing a client sent — a name, an email, a path, an id, a query
/// value, a header, a method, the token — appears anywhere in the scrape.
#[tokio::test]
async fn no_label_value_is_anything_a_client_sent() {
    let app = TestApp::spawn().await;
    let created = app
        .create_user("Zebulon Needlefish", "needle.zebulon@example.org")
        .await;
    let secret = created["sip_password"].as_str().unwrap().to_owned();
    let id = created["id"].to_string();
    for path in [
        "/users/123?q=needle".to_owned(),
        format!("/users/{id}?needle=1"),
        "/users?q=needle".into(),
        "/needle/haystack".into(),
        "/users/needle".into(),
    ] {
        app.get(&path).await;
    }
    app.send(
        Method::from_bytes(b"NEEDLE").unwrap(),
        "/users",
        None,
        &[("x-needle", "needle")],
        true,
    )
    .await;
    app.send(
        Method::GET,
        "/metrics",
        None,
        &[("authorization", "Bearer needle-needle-needle-1")],
        false,
    )
    .await;
    app.post("/apply", json!({})).await;

    let m = scrape(&app).await;
    let lower = m.raw.to_lowercase();
    for typed in [
        "needle",
        "zebulon",
        "example.org",
        &secret,
        TOKEN,
        "haystack",
    ] {
        assert!(
            !lower.contains(&typed.to_lowercase()),
            "{typed:?} in the scrape:\n{}",
            m.raw
        );
    }

    let doc = app
        .send(Method::GET, "/openapi.json", None, &[], false)
        .await
        .body;
    let mut routes: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    routes.insert("(unknown)".into());
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other",
    ];
    let words = [
        "applied",
        "unchanged",
        "dry_run",
        "failed",
        "interrupted",
        "database_unavailable",
        "write_failed",
        "reload_failed",
        "health_check_failed",
        "internal",
        "node_unreachable",
        "node_timeout",
        "apply_in_progress",
        "ami",
        "cli",
        "none",
        "ok",
        "online",
        "offline",
        "in_use",
        "idle",
        "registrations",
        env!("CARGO_PKG_VERSION"),
    ];
    let status = app.get("/status").await.body;
    let node = status["node"].as_str().expect("/status names the node");
    let mut seen = BTreeSet::new();
    for (family, labels, _) in m.samples() {
        for (k, v) in labels {
            let http = family.starts_with("pbx_portal_http_");
            let ok = match k.as_str() {
                "route" if http => routes.contains(&v),
                "method" if http => methods.contains(&v.as_str()),
                "status" if http => v.len() == 3 && v.parse::<u16>().is_ok(),
                // Node names are each host's PORTAL_NODE, never a client's.
                "node" => v == node,
                _ => words.contains(&v.as_str()),
            };
            assert!(ok, "{family}: label {k}={v:?} is not one the portal chose");
            seen.insert(format!("{k}={v}"));
        }
    }
    // What the requests above were counted under.
    for label in [
        "route=/users/{id}",
        "route=(unknown)",
        "method=other",
        "status=404",
        "status=405",
        "status=401",
    ] {
        assert!(seen.contains(label), "{label} not seen in {seen:?}");
    }
}

#[tokio::test]
async fn metrics_need_the_token_and_a_refusal_is_counted() {
    let app = TestApp::spawn().await;
    for auth in [None, Some("Bearer wrong-token-0123456789"), Some(TOKEN)] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = app
            .send(Method::GET, "/metrics", None, &headers, false)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.body["error"]["code"], "unauthorized");
        assert!(
            !String::from_utf8_lossy(&r.raw).contains("pbx_portal_"),
            "no metric in a refusal"
        );
    }
    let m = scrape(&app).await;
    assert_eq!(
        m.get(
            "pbx_portal_http_requests",
            &[("route", "/metrics"), ("method", "GET"), ("status", "401")]
        ),
        Some(3.0)
    );
    let r = app.send(Method::POST, "/metrics", None, &[], true).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET");
}
