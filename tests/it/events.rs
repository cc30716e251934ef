//! `GET /events`: user, apply and registration events as they happen, never a secret; at
//! most 64 streams; a client that cannot keep up is dropped without slowing the others;
//! every stream ends cleanly on shutdown.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::support::app::TestApp;
use crate::support::asterisk::Options;
use crate::support::sse::{Frame, Sse};
use crate::support::{self, Stand};

const SOON: Duration = Duration::from_secs(10);

#[tokio::test]
async fn users_and_applies_arrive_as_they_happen_without_a_secret() {
    let app = TestApp::spawn().await;
    let mut sse = Sse::open(app.addr, None).await;
    assert_eq!(sse.status(), 200, "{}", sse.head);
    assert!(
        sse.head
            .to_lowercase()
            .contains("content-type: text/event-stream"),
        "{}",
        sse.head
    );
    assert_eq!(
        sse.next(SOON).await,
        Some(Frame::Comment("connected".into()))
    );

    let created = app.create_user("Alice", "alice@x.org").await;
    let e = sse.event("user", SOON).await;
    assert_eq!(e["action"], "created");
    assert_eq!(e["user"]["id"], created["id"]);
    assert_eq!(e["user"]["extension"], 1000);
    assert!(e["user"].get("sip_password").is_none(), "no secret: {e}");
    let secret = created["sip_password"].as_str().unwrap();
    assert!(!e.to_string().contains(secret));

    let id = &created["id"];
    let r = app
        .send(
            Method::PATCH,
            &format!("/users/{id}"),
            Some(("application/json", Bytes::from(r#"{"devices": 2}"#))),
            &[],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let e = sse.event("user", SOON).await;
    assert_eq!(
        (e["action"].clone(), e["user"]["devices"].clone()),
        (json!("updated"), json!(2))
    );

    let rec = app.post("/apply", json!({})).await.body;
    assert_eq!(sse.event("apply", SOON).await, rec);

    assert_eq!(
        app.delete(&format!("/users/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    let e = sse.event("user", SOON).await;
    assert_eq!(
        (e["action"].clone(), e["user"]["id"].clone()),
        (json!("deleted"), id.clone())
    );
}

#[tokio::test]
async fn a_registration_change_arrives_on_the_stream() {
    let Stand { app, ast } = support::stand(Options::default(), &[]).await;
    app.create_user("Alice", "alice@x.org").await;
    assert_eq!(app.post("/apply", json!({})).await.status, StatusCode::OK);
    support::eventually("the view is live", SOON, || async {
        (app.get("/status").await.body["registrations"]["live"] == true).then_some(())
    })
    .await;
    let mut sse = Sse::open(app.addr, None).await;
    ast.register(
        "1000",
        "sip:1000@127.0.0.1:5300",
        "phone",
        ([127, 0, 0, 1], 5300).into(),
        Duration::from_secs(600),
    )
    .unwrap();
    let e = sse.event("registration", SOON).await;
    assert_eq!(
        (e["extension"].clone(), e["state"].clone()),
        (json!(1000), json!("online"))
    );
    assert_eq!(e["contacts"][0]["uri"], "sip:1000@127.0.0.1:5300");
}

#[tokio::test]
async fn at_most_64_streams_and_a_closed_one_frees_its_place() {
    let app = TestApp::spawn().await;
    let mut open = Vec::new();
    for _ in 0..64 {
        let s = Sse::open(app.addr, None).await;
        assert_eq!(s.status(), 200);
        open.push(s);
    }
    let r = app.get("/events").await;
    assert_eq!(
        r.error(),
        (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams")
    );
    drop(open.pop());
    support::eventually("a place is free again", SOON, || async {
        let s = Sse::open(app.addr, None).await;
        (s.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_client_that_cannot_keep_up_is_dropped_and_the_others_get_everything() {
    // 10,000 events (~3 MB): more than a loopback socket's buffers hold for a client that
    // reads nothing, so the stream's own task must wait, and gives up.
    let app = TestApp::spawn_with(&[("PORTAL_EXTENSION_MAX", "19999")]).await;
    let mut slow = Sse::open(app.addr, Some(2048)).await;
    let mut fast = Sse::open(app.addr, None).await;
    let reader = tokio::spawn(async move {
        let mut users = 0;
        while users < 10_000 {
            match fast.next(SOON).await {
                Some(Frame::Event { kind, .. }) if kind == "user" => users += 1,
                Some(_) => {}
                None => break,
            }
        }
        (users, fast)
    });
    let rows: String = (0..10_000)
        .map(|i| format!("User {i},user{i}@x.org\n"))
        .collect();
    let r = app
        .send(
            Method::POST,
            "/users/import",
            Some(("text/csv", Bytes::from(format!("name,email\n{rows}")))),
            &[],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The fast stream stays open (it is still held) while the slow one is dropped.
    let (users, _fast) = reader.await.unwrap();
    assert_eq!(users, 10_000, "the fast stream got every event");
    // The slow one, which read nothing, is cut off once it has taken no frame for the
    // server's patience; the fast one stays.
    support::eventually("the slow stream dropped", SOON, || async {
        (app.get("/status").await.body["event_streams"] == 1).then_some(())
    })
    .await;
    let frames = slow.drain(SOON).await;
    let users = frames
        .iter()
        .filter(|f| matches!(f, Frame::Event { kind, .. } if kind == "user"))
        .count();
    assert!(
        users < 10_000,
        "the slow stream was not dropped ({users} events)"
    );
}

#[tokio::test]
async fn shutdown_ends_every_stream() {
    let app = TestApp::spawn().await;
    let mut a = Sse::open(app.addr, None).await;
    let mut b = Sse::open(app.addr, None).await;
    let stop = tokio::spawn(app.stop());
    for s in [&mut a, &mut b] {
        let frames = s.drain(SOON).await;
        assert!(
            frames.iter().all(|f| matches!(f, Frame::Comment(_))),
            "{frames:?}"
        );
    }
    tokio::time::timeout(SOON, stop).await.unwrap().unwrap();
}
