//! Live registration: the portal's view of which phones are registered, from the Asterisk
//! stand-in's AMI as a real Asterisk 22.7 reports it — snapshots and events, qualify,
//! expiry, a link that goes down and comes back, contacts left behind by a removed
//! endpoint, and `unknown` whenever the view is not live.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support;
use crate::support::app::TestApp;
use crate::support::asterisk::{Fault, Options, Registration};
use crate::support::{stand, Stand};

/// How long a test waits for the view to catch up (events arrive in milliseconds; a
/// reconnect after a fault takes the backoff, at most a few seconds here).
const CATCH_UP: Duration = Duration::from_secs(10);

/// Alice on 1000 and Bob on 1001, applied; the view live.
async fn two_applied(s: &Stand) -> (Value, Value) {
    let ids = two_applied_not_live(s).await;
    live(&s.app, true).await;
    ids
}

async fn two_applied_not_live(s: &Stand) -> (Value, Value) {
    let alice = s.app.create_user("Alice", "alice@x.org").await;
    let bob = s.app.create_user("Bob", "bob@x.org").await;
    let r = s.app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    (alice["id"].clone(), bob["id"].clone())
}

async fn live(app: &TestApp, want: bool) {
    support::eventually(
        &format!("registrations live = {want}"),
        CATCH_UP,
        || async { (app.get("/status").await.body["registrations"]["live"] == want).then_some(()) },
    )
    .await
}

async fn registration(app: &TestApp, id: &Value) -> Value {
    app.get(&format!("/users/{id}")).await.body["registration"].clone()
}

/// Waits until a user's registration satisfies `ok`; returns it.
async fn until(app: &TestApp, id: &Value, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    support::eventually(what, CATCH_UP, || async {
        let r = registration(app, id).await;
        ok(&r).then_some(r)
    })
    .await
}

fn state(r: &Value) -> &str {
    r["state"].as_str().unwrap_or("")
}

fn source(port: u16) -> std::net::SocketAddr {
    ([127, 0, 0, 1], port).into()
}

#[tokio::test]
async fn a_phone_that_registers_is_online_with_its_contact_and_offline_when_it_leaves() {
    let s = stand(Options::default(), &[]).await;
    let (alice, bob) = two_applied(&s).await;
    assert_eq!(
        registration(&s.app, &alice).await,
        json!({"state": "offline", "contacts": []})
    );

    let uri = "sip:1000@127.0.0.1:5160";
    s.ast
        .register(
            "1000",
            uri,
            "Yealink SIP-T46U 66.86",
            source(5160),
            Duration::from_secs(3600),
        )
        .unwrap();
    let r = until(&s.app, &alice, "Alice online with her user agent", |r| {
        r["contacts"][0]["user_agent"] == "Yealink SIP-T46U 66.86"
    })
    .await;
    assert_eq!(state(&r), "online");
    let c = &r["contacts"][0];
    assert_eq!(
        (c["uri"].as_str(), c["source"].as_str()),
        (Some(uri), Some("127.0.0.1:5160"))
    );
    let expires = support::instant(&c["expires_at"]);
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(
        (expires - in_an_hour).abs() < time::Duration::seconds(5),
        "{expires}"
    );
    assert!(
        ["not_qualified", "unreachable"].contains(&c["status"].as_str().unwrap()),
        "{c}"
    );
    assert_eq!(registration(&s.app, &bob).await["state"], "offline");

    // The list, its filter and the counts agree.
    let online = s.app.get("/users?registered=true").await.body;
    assert_eq!(online["users"].as_array().unwrap().len(), 1);
    assert_eq!(online["users"][0]["id"], alice);
    assert_eq!(online["users"][0]["registration"], r);
    let offline = s.app.get("/users?registered=false").await.body;
    assert_eq!(
        (offline["total"].clone(), offline["users"][0]["id"].clone()),
        (json!(1), bob.clone())
    );
    let counts = &s.app.get("/status").await.body["registrations"];
    assert_eq!(
        (
            counts["online"].clone(),
            counts["offline"].clone(),
            counts["contacts"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );

    s.ast.unregister("1000", uri).unwrap();
    until(&s.app, &alice, "Alice offline", |r| state(r) == "offline").await;
    assert_eq!(s.app.get("/users?registered=true").await.body["total"], 0);
}

#[tokio::test]
async fn qualify_says_whether_the_phone_answers_now() {
    let opts = Options {
        qualify_time_scale: 0.002,
        ..Options::default()
    };
    let s = stand(opts, &[("PORTAL_QUALIFY_FREQUENCY", "30")]).await;
    let (alice, bob) = two_applied(&s).await;
    let (a, b) = ("sip:1000@127.0.0.1:5161", "sip:1001@127.0.0.1:5162");
    s.ast
        .answer_qualify("1000", a, Some(Duration::from_micros(640)));
    s.ast
        .register("1000", a, "A", source(5161), Duration::from_secs(600))
        .unwrap();
    s.ast
        .register("1001", b, "B", source(5162), Duration::from_secs(600))
        .unwrap();
    let r = until(&s.app, &alice, "Alice reachable", |r| {
        r["contacts"][0]["status"] == "reachable"
    })
    .await;
    assert_eq!(r["contacts"][0]["rtt_ms"], 0.64);
    let r = until(&s.app, &bob, "Bob's silent phone unreachable", |r| {
        r["contacts"][0]["status"] == "unreachable"
    })
    .await;
    assert_eq!(
        (state(&r), r["contacts"][0]["rtt_ms"].clone()),
        ("online", Value::Null)
    );
    // Alice's phone stops answering: unreachable, still registered.
    s.ast.answer_qualify("1000", a, None);
    let r = until(&s.app, &alice, "Alice unreachable", |r| {
        r["contacts"][0]["status"] == "unreachable"
    })
    .await;
    assert_eq!(state(&r), "online");
}

#[tokio::test]
async fn several_devices_and_a_replaced_registration() {
    let s = stand(Options::default(), &[]).await;
    let alice = s
        .app
        .post(
            "/users",
            json!({"name": "Alice", "email": "a@x.org", "devices": 2}),
        )
        .await
        .body["id"]
        .clone();
    assert_eq!(s.app.post("/apply", json!({})).await.status, StatusCode::OK);
    live(&s.app, true).await;
    let uris = [
        "sip:1000@127.0.0.1:5171",
        "sip:1000@127.0.0.1:5172",
        "sip:1000@127.0.0.1:5173",
    ];
    for (i, uri) in uris.iter().enumerate() {
        s.ast
            .register(
                "1000",
                uri,
                "desk",
                source(5171 + i as u16),
                Duration::from_secs(600),
            )
            .unwrap();
    }
    // max_contacts=2 with remove_existing: the third replaced the oldest.
    let r = until(&s.app, &alice, "two contacts, the newest two", |r| {
        let listed: Vec<&str> = r["contacts"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["uri"].as_str()).collect())
            .unwrap_or_default();
        listed == uris[1..]
    })
    .await;
    assert_eq!(state(&r), "online");
}

#[tokio::test]
async fn an_expired_registration_goes_offline() {
    let opts = Options {
        expiration_check_interval: Some(Duration::from_millis(100)),
        expiry_time_scale: 0.005,
        ..Options::default()
    };
    let s = stand(opts, &[]).await;
    let (alice, _) = two_applied(&s).await;
    s.ast
        .register(
            "1000",
            "sip:1000@127.0.0.1:5180",
            "A",
            source(5180),
            Duration::from_secs(60),
        )
        .unwrap();
    until(&s.app, &alice, "Alice online", |r| state(r) == "online").await;
    until(&s.app, &alice, "Alice's registration expired", |r| {
        state(r) == "offline"
    })
    .await;
}

#[tokio::test]
async fn the_view_is_unknown_while_asterisk_is_away_and_live_again_when_it_is_back() {
    let s = stand(Options::default(), &[]).await;
    let (alice, _) = two_applied(&s).await;
    s.ast
        .register(
            "1000",
            "sip:1000@127.0.0.1:5190",
            "A",
            source(5190),
            Duration::from_secs(600),
        )
        .unwrap();
    until(&s.app, &alice, "Alice online", |r| state(r) == "online").await;

    s.ast.set_fault(Fault::RefuseConnections);
    s.ast.restart_ami();
    live(&s.app, false).await;
    assert_eq!(
        registration(&s.app, &alice).await,
        json!({"state": "unknown", "contacts": []})
    );
    let status = s.app.get("/status").await.body;
    assert_eq!(status["registrations"]["online"], Value::Null, "{status}");
    for filter in ["true", "false"] {
        let r = s.app.get(&format!("/users?registered={filter}")).await.body;
        assert_eq!(r["total"], 0, "unknown matches neither: {r}");
    }
    // Meanwhile the phone went away and another registered: the snapshot after the
    // reconnect shows what Asterisk holds now, not what the view last saw.
    s.ast.unregister("1000", "sip:1000@127.0.0.1:5190").unwrap();
    s.ast
        .register(
            "1001",
            "sip:1001@127.0.0.1:5191",
            "B",
            source(5191),
            Duration::from_secs(600),
        )
        .unwrap();
    s.ast.clear_faults();
    live(&s.app, true).await;
    assert_eq!(registration(&s.app, &alice).await["state"], "offline");
    let online = s.app.get("/users?registered=true").await.body;
    assert_eq!(online["users"][0]["extension"], 1001, "{online}");
}

#[tokio::test]
async fn a_removed_endpoint_leaves_its_contact_in_asterisk_but_never_on_a_new_user() {
    let s = stand(Options::default(), &[]).await;
    let (alice, _) = two_applied(&s).await;
    s.ast
        .register(
            "1000",
            "sip:1000@127.0.0.1:5200",
            "old",
            source(5200),
            Duration::from_secs(600),
        )
        .unwrap();
    until(&s.app, &alice, "Alice online", |r| state(r) == "online").await;
    assert_eq!(
        s.app.delete(&format!("/users/{alice}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(s.app.post("/apply", json!({})).await.status, StatusCode::OK);
    support::wait_until("Asterisk keeps the contact as an orphan", CATCH_UP, || {
        s.ast
            .contacts()
            .iter()
            .any(|c| c.contact.aor == "1000" && c.orphan)
    })
    .await;
    // A new user on the freed number, not applied yet: the old phone is not theirs.
    let carol = s.app.create_user("Carol", "carol@x.org").await;
    assert_eq!(carol["extension"], 1000);
    assert_eq!(
        carol["registration"],
        json!({"state": "offline", "contacts": []})
    );
    let counts = &s.app.get("/status").await.body["registrations"];
    assert_eq!(
        (counts["online"].clone(), counts["contacts"].clone()),
        (json!(0), json!(0))
    );
}

#[tokio::test]
async fn without_ami_every_registration_is_unknown() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("Alice", "alice@x.org").await;
    assert_eq!(
        alice["registration"],
        json!({"state": "unknown", "contacts": []})
    );
    assert_eq!(app.post("/apply", json!({})).await.status, StatusCode::OK);
    let status = app.get("/status").await.body;
    assert_eq!(
        status["registrations"],
        json!({"live": false, "online": null, "offline": null, "contacts": null, "synced_at": null})
    );
    assert_eq!(app.get("/users?registered=false").await.body["total"], 0);
}

#[tokio::test]
async fn an_ami_user_without_the_system_class_leaves_the_view_unknown() {
    let s = stand(Options::writing(&["command", "originate"]), &[]).await;
    let (alice, _) = two_applied_not_live(&s).await;
    assert_eq!(registration(&s.app, &alice).await["state"], "unknown");
    assert_eq!(
        s.app.get("/status").await.body["registrations"]["live"],
        false
    );
}

#[tokio::test]
async fn a_phone_behind_a_nat_shows_where_it_is_and_what_it_claims() {
    // shared/asterisk/nat F-NAT-3: with rewrite_contact the contact is stored at the
    // address the packets came from (10.97.0.2, the NAT's public side); the phone wrote
    // its private 10.99.0.2 in Via and Contact. Addresses are data: nothing is sent.
    let opts = Options {
        qualify_time_scale: 0.002,
        ..Options::default()
    };
    let s = stand(opts, &[("PORTAL_QUALIFY_FREQUENCY", "30")]).await;
    let alice = s.app.create_user("Alice", "alice@x.org").await["id"].clone();
    let r = s.app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    live(&s.app, true).await;
    assert_eq!(
        s.ast
            .field("endpoint", "1000", "rewrite_contact")
            .as_deref(),
        Some("true"),
        "the portal renders rewrite_contact=yes"
    );
    let mut sse = support::sse::Sse::open(s.app.addr, None).await;
    let rewritten = "sip:1000@10.97.0.2:5062;x-ast-orig-host=10.99.0.2:5062";
    s.ast
        .answer_qualify("1000", rewritten, Some(Duration::from_micros(640)));
    let mut phone = Registration::behind_nat(
        "1000",
        "sip:1000@10.99.0.2:5062;transport=UDP",
        "10.99.0.2:5062".parse().unwrap(),
        "10.97.0.2:5062".parse().unwrap(),
    );
    phone.user_agent = "Yealink SIP-T46U 66.86".into();
    phone.expires = Some(Duration::from_secs(600));
    s.ast.register_with(&phone).unwrap();

    let e = sse.event("registration", CATCH_UP).await;
    assert_eq!(
        (
            e["extension"].clone(),
            e["contacts"][0]["uri"].clone(),
            e["contacts"][0]["source"].clone(),
            e["contacts"][0]["reported"].clone()
        ),
        (
            json!(1000),
            json!(rewritten),
            json!("10.97.0.2:5062"),
            json!("10.99.0.2:5062")
        )
    );
    // The event carries no user agent (F-REG-13): the snapshot that follows does.
    let r = until(&s.app, &alice, "Alice's NATed phone reachable", |r| {
        r["contacts"][0]["status"] == "reachable" && r["contacts"][0]["user_agent"] != ""
    })
    .await;
    assert_eq!(state(&r), "online");
    let c = &r["contacts"][0];
    assert_eq!(
        (
            c["uri"].as_str(),
            c["source"].as_str(),
            c["reported"].as_str(),
            c["user_agent"].as_str()
        ),
        (
            Some(rewritten),
            Some("10.97.0.2:5062"),
            Some("10.99.0.2:5062"),
            Some("Yealink SIP-T46U 66.86")
        )
    );
}
