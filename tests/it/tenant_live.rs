//! What runs live knows tenants: a phone of one tenant's extension 100 registers as its own
//! line (never the default tenant's or another tenant's 100), the event stream of a
//! tenant-bound token carries its tenant's events only, `GET /apply/pending`, `/status`
//! and `/nodes` tell a bound caller its tenant's part alone, and `/metrics` counts each
//! tenant's phones under a `tenant` label.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::app::{call, create_tenant as tenant, create_token, TestApp};
use crate::support::asterisk::Options;
use crate::support::sse::{Frame, Sse};
use crate::support::{self, stand, Stand};

const SOON: Duration = Duration::from_secs(10);

async fn get_as(app: &TestApp, token: &str, path: &str) -> Value {
    let r = call(app, token, Method::GET, path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    r.body
}

/// A user with extension 100 in `tenant`; its id.
async fn user_100(app: &TestApp, tenant: &str) -> i64 {
    let r = app
        .post(
            "/users",
            json!({"name": format!("{tenant} hundred"), "email": format!("h@{tenant}.org"),
                   "tenant": tenant, "extension": 100}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["extension"], 100);
    r.body["id"].as_i64().unwrap()
}

async fn live(app: &TestApp) {
    support::eventually("registrations live", SOON, || async {
        (app.get("/status").await.body["registrations"]["live"] == true).then_some(())
    })
    .await
}

async fn state_of(app: &TestApp, id: i64) -> String {
    app.get(&format!("/users/{id}")).await.body["registration"]["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn ids(page: &Value) -> Vec<i64> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect()
}

/// The events of a stream up to (and with) the first `user` event whose user is named
/// `marker`: what the stream received, in order.
async fn until_marker(sse: &mut Sse, marker: &str) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    loop {
        match sse.next(SOON).await {
            Some(Frame::Event { kind, data }) => {
                let done = kind == "user" && data["user"]["name"] == marker;
                seen.push((kind, data));
                if done {
                    return seen;
                }
            }
            Some(Frame::Comment(_)) => {}
            None => panic!("the stream ended before {marker}"),
        }
    }
}

/// Three users numbered 100 — default's, acme's, beta's — applied, the view live.
async fn three_hundreds() -> (Stand, [i64; 3]) {
    let s = stand(Options::default(), &[("PORTAL_EXTENSION_MIN", "100")]).await;
    tenant(&s.app, "acme").await;
    tenant(&s.app, "beta").await;
    let ids = [
        user_100(&s.app, "default").await,
        user_100(&s.app, "acme").await,
        user_100(&s.app, "beta").await,
    ];
    let r = s.app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    live(&s.app).await;
    (s, ids)
}

#[tokio::test]
async fn a_tenant_phone_is_online_for_its_own_user_only() {
    let (s, [default, acme, beta]) = three_hundreds().await;
    let acme_token = create_token(
        &s.app,
        "acme-reader",
        &["read", "write", "apply"],
        Some("acme"),
    )
    .await;
    let beta_token = create_token(
        &s.app,
        "beta-reader",
        &["read", "write", "apply"],
        Some("beta"),
    )
    .await;
    for id in [default, acme, beta] {
        assert_eq!(state_of(&s.app, id).await, "offline");
    }

    s.ast
        .register(
            "acme-100",
            "sip:acme-100@127.0.0.1:5170",
            "acme phone",
            ([127, 0, 0, 1], 5170).into(),
            Duration::from_secs(600),
        )
        .unwrap();
    support::eventually("acme's 100 online", SOON, || async {
        (state_of(&s.app, acme).await == "online").then_some(())
    })
    .await;
    let r = s.app.get(&format!("/users/{acme}")).await.body;
    assert_eq!(
        r["registration"]["contacts"][0]["uri"],
        "sip:acme-100@127.0.0.1:5170"
    );
    assert_eq!(state_of(&s.app, default).await, "offline");
    assert_eq!(state_of(&s.app, beta).await, "offline");

    // The filter and the counts agree, every tenant's and each bound caller's.
    assert_eq!(ids(&s.app.get("/users?registered=true").await.body), [acme]);
    let mut offline = ids(&s.app.get("/users?registered=false").await.body);
    offline.sort();
    assert_eq!(offline, [default, beta]);
    assert_eq!(
        ids(&s.app.get("/users?registered=true&tenant=beta").await.body),
        Vec::<i64>::new()
    );
    // Every filter at once (their parameters numbered in turn), and the count of a page
    // past the end.
    for (path, want) in [
        ("/users?registered=true&tenant=acme&q=hundred", vec![acme]),
        ("/users?registered=false&tenant=acme&q=hundred", vec![]),
        ("/users?registered=false&tenant=beta&q=hundred", vec![beta]),
    ] {
        assert_eq!(ids(&s.app.get(path).await.body), want, "{path}");
    }
    let past = s
        .app
        .get("/users?registered=true&tenant=acme&q=hundred&offset=3")
        .await
        .body;
    assert_eq!((&past["total"], &past["users"]), (&json!(1), &json!([])));
    let bound = get_as(&s.app, &acme_token, "/users?registered=true").await;
    assert_eq!(ids(&bound), [acme]);
    assert_eq!(bound["users"][0]["registration"]["state"], "online");
    let beta_page = get_as(&s.app, &beta_token, "/users").await;
    assert_eq!(beta_page["users"][0]["registration"]["state"], "offline");

    let all = &s.app.get("/status").await.body["registrations"];
    assert_eq!(
        (&all["online"], &all["offline"], &all["contacts"]),
        (&json!(1), &json!(2), &json!(1))
    );
    let mine = get_as(&s.app, &acme_token, "/status").await;
    let mine = &mine["registrations"];
    assert_eq!((&mine["online"], &mine["offline"]), (&json!(1), &json!(0)));
    let theirs = get_as(&s.app, &beta_token, "/status").await;
    let theirs = &theirs["registrations"];
    assert_eq!(
        (&theirs["online"], &theirs["offline"], &theirs["contacts"]),
        (&json!(0), &json!(1), &json!(0))
    );

    // Per tenant in the metrics, one label value per tenant.
    let text = String::from_utf8(s.app.get("/metrics").await.raw.to_vec()).unwrap();
    for line in [
        r#"pbx_portal_tenant_registrations{tenant="acme",state="online"} 1"#,
        r#"pbx_portal_tenant_registrations{tenant="beta",state="offline"} 1"#,
        r#"pbx_portal_tenant_registrations{tenant="default",state="offline"} 1"#,
        r#"pbx_portal_tenant_registration_contacts{tenant="acme"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(!text.contains("acme-100"), "no line name as a label");
}

#[tokio::test]
async fn a_line_no_longer_applied_in_its_tenant_shows_no_registration() {
    let (s, [default, acme, beta]) = three_hundreds().await;
    s.ast
        .register(
            "acme-100",
            "sip:acme-100@127.0.0.1:5171",
            "phone",
            ([127, 0, 0, 1], 5171).into(),
            Duration::from_secs(600),
        )
        .unwrap();
    support::eventually("acme's 100 online", SOON, || async {
        (state_of(&s.app, acme).await == "online").then_some(())
    })
    .await;
    // acme's 100 is deleted and acme applied: the default tenant's and beta's 100 are
    // still applied, acme's is not, so its phone counts nowhere.
    assert_eq!(
        s.app.delete(&format!("/users/{acme}")).await.status,
        StatusCode::NO_CONTENT
    );
    let r = s.app.post("/apply?tenant=acme", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    support::eventually("nobody online", SOON, || async {
        let st = s.app.get("/status").await.body;
        (st["registrations"]["online"] == 0).then_some(())
    })
    .await;
    assert_eq!(
        s.app.get("/status").await.body["registrations"]["offline"],
        2
    );
    for id in [default, beta] {
        assert_eq!(state_of(&s.app, id).await, "offline");
    }
    // A new acme 100, not applied yet, is offline whatever Asterisk still holds.
    let again = user_100(&s.app, "acme").await;
    assert_eq!(state_of(&s.app, again).await, "offline");
}

#[tokio::test]
async fn a_bound_stream_receives_its_tenant_events_only() {
    let (s, [_, acme, _]) = three_hundreds().await;
    let acme_token = create_token(
        &s.app,
        "acme-events",
        &["read", "write", "apply"],
        Some("acme"),
    )
    .await;
    let beta_token = create_token(
        &s.app,
        "beta-events",
        &["read", "write", "apply"],
        Some("beta"),
    )
    .await;
    let all_token = create_token(&s.app, "all-events", &["read", "write", "apply"], None).await;
    let mut all = Sse::open_as(s.app.addr, &all_token, None).await;
    let mut acme_sse = Sse::open_as(s.app.addr, &acme_token, None).await;
    let mut beta_sse = Sse::open_as(s.app.addr, &beta_token, None).await;
    for sse in [&mut all, &mut acme_sse, &mut beta_sse] {
        assert_eq!(sse.status(), 200, "{}", sse.head);
    }

    // acme's phone registers; beta and the default tenant get users; beta applies alone;
    // an unbound apply takes the rest. Then one marker user per tenant ends each stream's
    // reading.
    s.ast
        .register(
            "acme-100",
            "sip:acme-100@127.0.0.1:5180",
            "acme phone",
            ([127, 0, 0, 1], 5180).into(),
            Duration::from_secs(600),
        )
        .unwrap();
    support::eventually("acme's 100 online", SOON, || async {
        (state_of(&s.app, acme).await == "online").then_some(())
    })
    .await;
    let r = call(
        &s.app,
        &beta_token,
        Method::POST,
        "/users",
        Some(json!({"name": "Beta Two", "email": "two@beta.org"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let beta_apply = call(&s.app, &beta_token, Method::POST, "/apply", None).await;
    assert_eq!(beta_apply.status, StatusCode::OK, "{}", beta_apply.body);
    let r = s
        .app
        .post(
            "/users",
            json!({"name": "Acme Two", "email": "two@acme.org", "tenant": "acme"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s
        .app
        .post(
            "/users",
            json!({"name": "Default Two", "email": "two@x.org"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let every = s.app.post("/apply", json!({})).await;
    assert_eq!(every.status, StatusCode::OK, "{}", every.body);
    for (t, marker) in [("acme", "Acme End"), ("beta", "Beta End")] {
        let r = s
            .app
            .post(
                "/users",
                json!({"name": marker, "email": format!("end@{t}.org"), "tenant": t}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    // The unbound stream sees everything, the registration with its tenant.
    let seen = until_marker(&mut all, "Beta End").await;
    let reg = seen
        .iter()
        .find(|(k, d)| k == "registration" && d["state"] == "online")
        .map(|(_, d)| d.clone())
        .expect("the registration on the unbound stream");
    assert_eq!(
        (&reg["tenant"], &reg["extension"], &reg["sip_username"]),
        (&json!("acme"), &json!(100), &json!("acme-100"))
    );
    let applies: Vec<&Value> = seen
        .iter()
        .filter(|(k, _)| k == "apply")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(applies, [&beta_apply.body, &every.body]);
    let names: Vec<&str> = seen
        .iter()
        .filter(|(k, _)| k == "user")
        .map(|(_, d)| d["user"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Beta Two",
            "Acme Two",
            "Default Two",
            "Acme End",
            "Beta End"
        ]
    );

    // acme's stream: its registration (an event, then a snapshot's details), its users,
    // and its part of the unbound apply.
    let seen = until_marker(&mut acme_sse, "Acme End").await;
    let (regs, rest): (Vec<_>, Vec<_>) = seen.iter().partition(|(k, _)| k == "registration");
    assert!(!regs.is_empty(), "{seen:?}");
    for (_, r) in &regs {
        assert_eq!(
            (&r["tenant"], &r["extension"]),
            (&json!("acme"), &json!(100))
        );
    }
    let kinds: Vec<(&str, &Value)> = rest
        .iter()
        .map(|(k, d)| match k.as_str() {
            "user" => (k.as_str(), &d["user"]["tenant"]),
            _ => (k.as_str(), &d["tenant"]),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("user", &json!("acme")),
            ("apply", &json!("acme")),
            ("user", &json!("acme")),
        ],
        "{seen:?}"
    );
    let apply = &rest[1].1;
    assert_eq!(apply["id"], every.body["id"]);
    assert_eq!(apply["status"], "applied");
    assert_eq!(
        apply["changes"],
        json!({"added": [], "removed": [], "changed": [],
               "tenants": {"acme": {"added": [101], "removed": [], "changed": []}}})
    );
    assert!(apply.get("nodes").is_none() && apply.get("health").is_none());
    let text = serde_json::to_string(&seen).unwrap();
    assert!(
        !text.contains("beta") && !text.contains("Default Two"),
        "{text}"
    );

    // beta's stream: its users and its own apply whole; the unbound apply changed nothing
    // of beta's, so beta is not told of it.
    let seen = until_marker(&mut beta_sse, "Beta End").await;
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["user", "apply", "user"], "{seen:?}");
    assert_eq!(seen[1].1, beta_apply.body);
    let text = serde_json::to_string(&seen).unwrap();
    assert!(
        !text.contains("acme") && !text.contains("Default Two"),
        "{text}"
    );
}

#[tokio::test]
async fn pending_status_and_nodes_tell_a_bound_caller_its_tenant_alone() {
    let s = stand(Options::default(), &[("PORTAL_EXTENSION_MIN", "100")]).await;
    let app = &s.app;
    tenant(app, "acme").await;
    tenant(app, "beta").await;
    let acme_token = create_token(app, "acme-ops", &["read", "write", "apply"], Some("acme")).await;
    let beta_token = create_token(app, "beta-ops", &["read", "write", "apply"], Some("beta")).await;
    user_100(app, "default").await;
    user_100(app, "acme").await;
    let first = app.post("/apply", json!({})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    user_100(app, "beta").await;
    let r = app
        .post(
            "/users",
            json!({"name": "Two", "email": "two@acme.org", "tenant": "acme"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .post("/users", json!({"name": "Two", "email": "two@x.org"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // Every tenant pending; each bound caller sees its own.
    let p = app.get("/apply/pending").await.body;
    assert_eq!(
        p,
        json!({"pending": true, "added": [101], "removed": [], "changed": [],
               "tenants": {"acme": {"added": [101], "removed": [], "changed": []},
                           "beta": {"added": [100], "removed": [], "changed": []}}})
    );
    let mine = get_as(app, &acme_token, "/apply/pending").await;
    assert_eq!(
        mine,
        json!({"pending": true, "added": [], "removed": [], "changed": [],
               "tenants": {"acme": {"added": [101], "removed": [], "changed": []}}})
    );
    let nodes = app.get("/nodes").await.body;
    assert_eq!(
        nodes["nodes"][0]["pending_tenants"],
        json!(["default", "acme", "beta"])
    );
    let nodes = get_as(app, &acme_token, "/nodes").await;
    assert_eq!(nodes["nodes"][0]["pending_tenants"], json!(["acme"]));
    assert_eq!(nodes["nodes"][0]["pending"], true);

    // acme applies alone: beta still pending, acme not, and neither is told of the other.
    let r = call(app, &acme_token, Method::POST, "/apply", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mine = get_as(app, &acme_token, "/apply/pending").await;
    assert_eq!(
        mine,
        json!({"pending": false, "added": [], "removed": [], "changed": []})
    );
    let st = get_as(app, &acme_token, "/status").await;
    assert_eq!(st["pending"], false);
    assert_eq!(st["last_apply"]["tenant"], "acme");
    let nodes = get_as(app, &acme_token, "/nodes").await;
    assert_eq!(
        (
            &nodes["nodes"][0]["pending"],
            &nodes["nodes"][0]["pending_tenants"]
        ),
        (&json!(false), &json!([]))
    );
    assert_eq!(nodes["nodes"][0]["last_apply"]["tenant"], "acme");
    let st = get_as(app, &beta_token, "/status").await;
    assert_eq!(st["pending"], true);
    assert_eq!(
        st["last_apply"],
        Value::Null,
        "acme's apply is not beta's to see"
    );
    let nodes = get_as(app, &beta_token, "/nodes").await;
    assert_eq!(nodes["nodes"][0]["pending_tenants"], json!(["beta"]));
    assert_eq!(nodes["nodes"][0]["last_apply"], Value::Null);
    let text = serde_json::to_string(&get_as(app, &beta_token, "/nodes").await).unwrap();
    assert!(!text.contains("acme"), "{text}");
    assert_eq!(
        app.get("/nodes").await.body["nodes"][0]["pending_tenants"],
        json!(["default", "beta"])
    );

    // An apply of every tenant: a bound caller's /status shows its part of it.
    let every = app.post("/apply", json!({})).await;
    assert_eq!(every.status, StatusCode::OK, "{}", every.body);
    let st = get_as(app, &beta_token, "/status").await;
    assert_eq!(st["pending"], false);
    let last = &st["last_apply"];
    assert_eq!(
        (&last["id"], &last["tenant"], &last["status"]),
        (&every.body["id"], &json!("beta"), &json!("applied"))
    );
    assert_eq!(
        last["changes"],
        json!({"added": [], "removed": [], "changed": [],
               "tenants": {"beta": {"added": [100], "removed": [], "changed": []}}})
    );
    let text = serde_json::to_string(&st).unwrap();
    assert!(!text.contains("acme"), "{text}");
    assert_eq!(app.get("/status").await.body["last_apply"], every.body);

    // The node's applies: each bound caller its own and its part of the one of every
    // tenant, never the other's; the host every record whole.
    let ids = |v: &Value| -> Vec<(Value, Value)> {
        v["applies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["id"].clone(), a["tenant"].clone()))
            .collect()
    };
    let beta_list = get_as(app, &beta_token, "/applies").await;
    assert_eq!(
        ids(&beta_list),
        [
            (every.body["id"].clone(), json!("beta")),
            (first.body["id"].clone(), json!("beta"))
        ]
    );
    assert_eq!(
        beta_list["applies"][1]["changes"],
        json!({"added": [], "removed": [], "changed": []})
    );
    assert_eq!(beta_list["applies"][0], last.clone());
    let text = serde_json::to_string(&beta_list).unwrap();
    assert!(!text.contains("acme"), "{text}");
    let acme_list = get_as(app, &acme_token, "/applies").await;
    assert_eq!(
        ids(&acme_list),
        [
            (every.body["id"].clone(), json!("acme")),
            (r.body["id"].clone(), json!("acme")),
            (first.body["id"].clone(), json!("acme"))
        ]
    );
    let all = app.get("/applies").await.body;
    assert_eq!(
        ids(&all),
        [
            (every.body["id"].clone(), Value::Null),
            (r.body["id"].clone(), json!("acme")),
            (first.body["id"].clone(), Value::Null)
        ]
    );
    assert_eq!(
        get_as(app, &beta_token, "/applies?limit=1").await["applies"][0]["id"],
        every.body["id"]
    );
}

/// The page of one tenant resolves the slug in its own statement: an unknown tenant is
/// still 422 (asked only when the page is empty), a known empty one an empty page.
#[tokio::test]
async fn a_tenant_page_tells_an_unknown_tenant_from_an_empty_one() {
    let app = TestApp::spawn_with(&[("PORTAL_EXTENSION_MIN", "100")]).await;
    tenant(&app, "acme").await;
    tenant(&app, "empty").await;
    user_100(&app, "acme").await;
    let r = app.get("/users?tenant=nobody").await;
    assert_eq!(
        r.refusal(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "tenant"
        )
    );
    assert_eq!(r.body["error"]["message"], "no tenant 'nobody'");
    for path in ["/users?tenant=empty", "/users?tenant=acme&offset=5"] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(r.body["users"], json!([]), "{path}");
    }
    let page = app.get("/users?tenant=acme").await.body;
    assert_eq!(
        (&page["total"], &page["users"][0]["sip_username"]),
        (&json!(1), &json!("acme-100"))
    );
}
