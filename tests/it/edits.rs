//! Editing a user (`PATCH /users/{id}`) and several devices per user: every field checked
//! as on create, every failure with its status and code and the data intact, moves that
//! never collide with concurrent creates, and edits that reach Asterisk only on apply.

use std::collections::BTreeSet;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::support::app::TestApp;
use crate::support::asterisk::Options;
use crate::support::{self, Stand};

fn endpoints_file(app: &TestApp) -> String {
    std::fs::read_to_string(app.pjsip_dir.join("generated_endpoints.conf")).unwrap_or_default()
}

#[tokio::test]
async fn devices_default_to_one_and_are_rendered_as_max_contacts() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("Alice", "alice@x.org").await;
    assert_eq!(alice["devices"], 1);
    let r = app
        .post(
            "/users",
            json!({"name": "Bob", "email": "bob@x.org", "devices": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["devices"], 3);
    assert_eq!(
        app.get(&format!("/users/{}", r.body["id"])).await.body["devices"],
        3
    );
    for bad in [
        json!(0),
        json!(11),
        json!("2"),
        json!(2.5),
        json!(null),
        json!(-1),
    ] {
        let r = app
            .post(
                "/users",
                json!({"name": "C", "email": "c@x.org", "devices": bad}),
            )
            .await;
        assert_eq!(
            r.refusal(),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "devices"
            ),
            "{bad}"
        );
    }
    assert_eq!(
        app.db_users().await.len(),
        2,
        "nothing created by the refused ones"
    );
    assert_eq!(app.post("/apply", json!({})).await.status, StatusCode::OK);
    let file = endpoints_file(&app);
    assert!(
        file.contains(
            "[1000]\ntype=aor\nmax_contacts=1\nremove_existing=yes\nqualify_frequency=60\n"
        ),
        "{file}"
    );
    assert!(
        file.contains(
            "[1001]\ntype=aor\nmax_contacts=3\nremove_existing=yes\nqualify_frequency=60\n"
        ),
        "{file}"
    );
}

#[tokio::test]
async fn a_patch_changes_what_it_names_and_pending_shows_it() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("Alice", "alice@x.org").await;
    let id = &alice["id"];
    let secret_before = app.db_users().await[0].secret.clone();
    assert_eq!(app.post("/apply", json!({})).await.status, StatusCode::OK);

    let r = app.patch_user(id, json!({})).await;
    assert_eq!(
        (r.status, r.body["name"].clone()),
        (StatusCode::OK, json!("Alice"))
    );
    assert_eq!(
        app.get("/apply/pending").await.body["pending"],
        false,
        "an empty patch changes nothing"
    );

    let r = app
        .patch_user(
            id,
            json!({"name": "Alice Liddell", "email": "ALICE@Wonder.Land", "devices": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (
            r.body["name"].clone(),
            r.body["email"].clone(),
            r.body["devices"].clone(),
            r.body["extension"].clone()
        ),
        (
            json!("Alice Liddell"),
            json!("alice@wonder.land"),
            json!(2),
            json!(1000)
        )
    );
    assert_eq!(r.body["created_at"], alice["created_at"]);
    assert_eq!(app.get(&format!("/users/{id}")).await.body, r.body);
    let p = app.get("/apply/pending").await.body;
    assert_eq!(
        p,
        json!({"pending": true, "added": [], "removed": [], "changed": [1000]})
    );

    // A move: the old number is free at once, the secret stays, pending = removed + added.
    let r = app.patch_user(id, json!({"extension": 1500})).await;
    assert_eq!(
        (r.status, r.body["extension"].clone()),
        (StatusCode::OK, json!(1500))
    );
    assert_eq!(
        app.db_users().await[0].secret,
        secret_before,
        "a move keeps the secret"
    );
    let free = app.get("/extensions/available").await.body;
    assert_eq!(free["ranges"][0], json!([1000, 1499]));
    let p = app.get("/apply/pending").await.body;
    assert_eq!(
        p,
        json!({"pending": true, "added": [1500], "removed": [1000], "changed": []})
    );
    let bob = app.create_user("Bob", "bob@x.org").await;
    assert_eq!(
        bob["extension"], 1000,
        "the freed number is the lowest free one"
    );

    let rec = app.post("/apply", json!({})).await.body;
    assert_eq!(
        rec["changes"],
        json!({"added": [1500], "removed": [], "changed": [1000]})
    );
    let file = endpoints_file(&app);
    assert!(file.contains("callerid=\"Alice Liddell\" <1500>"), "{file}");
    assert!(
        file.contains("[1500]\ntype=aor\nmax_contacts=2\n"),
        "{file}"
    );
    assert!(file.contains(&format!("password={secret_before}\n")));
}

#[tokio::test]
async fn every_bad_patch_gets_its_error_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("Alice", "alice@x.org").await;
    app.create_user("Bob", "bob@x.org").await;
    let id = &alice["id"];
    let before = app.db_users().await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    for (body, expect) in [
        (
            json!({"name": ""}),
            (unprocessable, "validation_failed", "name"),
        ),
        (
            json!({"name": "a;b"}),
            (unprocessable, "validation_failed", "name"),
        ),
        (
            json!({"name": "Bob\\"}),
            (unprocessable, "validation_failed", "name"),
        ),
        (
            json!({"name": "A\u{0}"}),
            (unprocessable, "validation_failed", "name"),
        ),
        (
            json!({"name": null}),
            (unprocessable, "validation_failed", "name"),
        ),
        (
            json!({"name": 5}),
            (unprocessable, "validation_failed", "name"),
        ),
        (
            json!({"email": "no-at"}),
            (unprocessable, "validation_failed", "email"),
        ),
        (
            json!({"email": "a b@x.org"}),
            (unprocessable, "validation_failed", "email"),
        ),
        (
            json!({"extension": 999}),
            (unprocessable, "validation_failed", "extension"),
        ),
        (
            json!({"extension": 2000}),
            (unprocessable, "validation_failed", "extension"),
        ),
        (
            json!({"extension": null}),
            (unprocessable, "validation_failed", "extension"),
        ),
        (
            json!({"extension": "1500"}),
            (unprocessable, "validation_failed", "extension"),
        ),
        (
            json!({"devices": 0}),
            (unprocessable, "validation_failed", "devices"),
        ),
        (
            json!({"devices": 11}),
            (unprocessable, "validation_failed", "devices"),
        ),
        (
            json!({"secret": "x"}),
            (unprocessable, "validation_failed", "secret"),
        ),
        (
            json!({"name": "Ok", "colour": "red"}),
            (unprocessable, "validation_failed", "colour"),
        ),
        (json!([1]), (unprocessable, "validation_failed", "body")),
        (
            json!({"email": "BOB@x.org"}),
            (StatusCode::CONFLICT, "email_taken", "<none>"),
        ),
        (
            json!({"extension": 1001}),
            (StatusCode::CONFLICT, "extension_taken", "<none>"),
        ),
        (
            json!({"name": "Alice Changed", "extension": 1001}),
            (StatusCode::CONFLICT, "extension_taken", "<none>"),
        ),
    ] {
        let r = app.patch_user(id, body.clone()).await;
        assert_eq!(r.refusal(), expect, "{body}: {}", r.body);
    }
    let raw = |ct: &str, bytes: &'static [u8]| (ct.to_owned(), Bytes::from_static(bytes));
    for ((ct, bytes), expect) in [
        (
            raw("application/json", b"{\"name\": "),
            (StatusCode::BAD_REQUEST, "invalid_json", "<none>"),
        ),
        (
            raw("text/plain", b"{}"),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "<none>",
            ),
        ),
    ] {
        let r = app
            .send(
                Method::PATCH,
                &format!("/users/{id}"),
                Some((&ct, bytes)),
                &[],
                true,
            )
            .await;
        assert_eq!(r.refusal(), expect);
    }
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let r = app
        .send(
            Method::PATCH,
            &format!("/users/{id}"),
            Some(("application/json", Bytes::from(big))),
            &[],
            true,
        )
        .await;
    assert_eq!(
        r.refusal(),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "<none>")
    );
    let r = app
        .patch_user(&json!(999_999), json!({"name": "Ghost"}))
        .await;
    assert_eq!(r.refusal(), (StatusCode::NOT_FOUND, "not_found", "<none>"));
    let r = app
        .send(
            Method::PATCH,
            &format!("/users/{id}"),
            Some(("application/json", Bytes::from_static(b"{}"))),
            &[],
            false,
        )
        .await;
    assert_eq!(
        r.refusal(),
        (StatusCode::UNAUTHORIZED, "unauthorized", "<none>")
    );
    assert_eq!(app.db_users().await, before, "nothing changed");
}

#[tokio::test]
async fn moves_and_creates_at_once_never_collide_and_never_fail_while_numbers_remain() {
    let app = TestApp::spawn_with(&[
        ("PORTAL_EXTENSION_MIN", "1000"),
        ("PORTAL_EXTENSION_MAX", "1029"),
    ])
    .await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            app.create_user(&format!("U{i}"), &format!("u{i}@x.org"))
                .await["id"]
                .clone(),
        );
    }
    // 10 moves to 1020–1029 and 10 creates, all at once: 20 numbers are free for them.
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let (mover, creator) = (app.clone(), app.clone());
        tasks.push(tokio::spawn(async move {
            mover.patch_user(&id, json!({"extension": 1020 + i})).await
        }));
        tasks.push(tokio::spawn(async move {
            let app = creator;
            app.post(
                "/users",
                json!({"name": format!("N{i}"), "email": format!("n{i}@x.org")}),
            )
            .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.status.is_success(), "{} {}", r.status, r.body);
    }
    let numbers: BTreeSet<i32> = app.db_users().await.iter().map(|u| u.extension).collect();
    assert_eq!(numbers.len(), 20, "distinct numbers: {numbers:?}");
    assert!(numbers.iter().all(|n| (1000..=1029).contains(n)));
    assert!(
        (1020..=1029).all(|n| numbers.contains(&n)),
        "every move landed: {numbers:?}"
    );
}

#[tokio::test]
async fn more_devices_pass_the_probe_of_a_real_apply() {
    let Stand { app, ast } = support::stand(Options::default(), &[]).await;
    let alice = app.create_user("Alice", "alice@x.org").await;
    assert_eq!(app.post("/apply", json!({})).await.status, StatusCode::OK);
    assert_eq!(
        app.patch_user(&alice["id"], json!({"devices": 4}))
            .await
            .status,
        StatusCode::OK
    );
    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["health"]["status"], "ok");
    assert_eq!(
        ast.field("aor", "1000", "max_contacts").as_deref(),
        Some("4")
    );
}
