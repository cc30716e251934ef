//! The users API over real HTTP against a real PostgreSQL.

use crate::support;
use crate::support::app::{error_code, TestApp, TOKEN};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

/// A 422 `validation_failed` naming `field`, as `Resp::refusal` reads it.
fn invalid(field: &str) -> (StatusCode, &'static str, &str) {
    (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", field)
}

#[tokio::test]
async fn create_returns_the_secret_once_and_get_never_does() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/users",
            json!({"name": "Alice Example", "email": "Alice@Example.ORG"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let b = &r.body;
    assert_eq!(b["name"], "Alice Example");
    assert_eq!(b["email"], "alice@example.org");
    assert_eq!(b["extension"], 1000);
    assert_eq!(b["sip_username"], "1000");
    let secret = b["sip_password"].as_str().unwrap();
    assert!(
        secret.len() >= 22
            && secret
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    let created = support::instant(&b["created_at"]);
    let now = time::OffsetDateTime::now_utc();
    assert!(
        created <= now && now - created < time::Duration::minutes(1),
        "created_at {created} is not the time of the request ({now})"
    );

    let id = b["id"].as_i64().unwrap();
    let got = app.get(&format!("/users/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    let listed = app.get("/users").await;
    for body in [&got.raw, &listed.raw] {
        assert!(!String::from_utf8_lossy(body).contains(secret));
        assert!(!String::from_utf8_lossy(body).contains("sip_password"));
    }
    assert_eq!(got.body["extension"], 1000);
    assert_eq!(app.db_users().await[0].secret, secret);
}

#[tokio::test]
async fn allocation_takes_the_lowest_free_number_and_reuses_freed_ones() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let b = app.create_user("U", &format!("u{i}@x.org")).await;
        assert_eq!(b["extension"], 1000 + i);
        ids.push(b["id"].as_i64().unwrap());
    }
    assert_eq!(
        app.delete(&format!("/users/{}", ids[1])).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.create_user("U", "u9@x.org").await["extension"], 1001);
    assert_eq!(app.create_user("U", "u10@x.org").await["extension"], 1004);

    // A chosen number, then the allocator skips it.
    let r = app
        .post(
            "/users",
            json!({"name": "C", "email": "c@x.org", "extension": 1005}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["extension"].as_i64()),
        (StatusCode::CREATED, Some(1005))
    );
    assert_eq!(app.create_user("U", "u11@x.org").await["extension"], 1006);
}

#[tokio::test]
async fn conflicts_are_409_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_user("A", "a@x.org").await;
    let before = app.db_users().await;

    let r = app
        .post("/users", json!({"name": "B", "email": "A@X.ORG"}))
        .await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::CONFLICT, "email_taken")
    );
    let r = app
        .post(
            "/users",
            json!({"name": "B", "email": "b@x.org", "extension": 1000}),
        )
        .await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::CONFLICT, "extension_taken")
    );
    assert_eq!(app.db_users().await, before);
    // The failed creates left no half-made user behind either.
    let n: i64 = app
        .db()
        .client()
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_full_range_answers_pool_exhausted_until_a_number_is_freed() {
    let app = TestApp::spawn_with(&[
        ("PORTAL_EXTENSION_MIN", "1000"),
        ("PORTAL_EXTENSION_MAX", "1002"),
    ])
    .await;
    let mut last = Value::Null;
    for i in 0..3 {
        last = app.create_user("U", &format!("u{i}@x.org")).await;
    }
    let r = app
        .post("/users", json!({"name": "X", "email": "x@x.org"}))
        .await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::CONFLICT, "extension_pool_exhausted")
    );
    assert_eq!(app.db_users().await.len(), 3);
    app.delete(&format!("/users/{}", last["id"])).await;
    assert_eq!(app.create_user("X", "x@x.org").await["extension"], 1002);
    let avail = app.get("/extensions/available").await.body;
    assert_eq!(
        avail,
        json!({"ranges": [], "free": 0, "min": 1000, "max": 1002})
    );
}

#[tokio::test]
async fn three_hundred_simultaneous_creates_get_distinct_lowest_numbers() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let r = app
                    .post(
                        "/users",
                        json!({"name": format!("User {i}"), "email": format!("p{i}@x.org")}),
                    )
                    .await;
                (r.status, r.body["extension"].as_i64())
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        let (status, ext) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        numbers.push(ext.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1000..1300).collect::<Vec<_>>());
}

#[tokio::test]
async fn allocation_works_in_a_huge_range_and_near_its_top() {
    let app = TestApp::spawn_with(&[
        ("PORTAL_EXTENSION_MIN", "10000"),
        ("PORTAL_EXTENSION_MAX", "999999"),
    ])
    .await;
    assert_eq!(app.create_user("A", "a@x.org").await["extension"], 10000);
    let r = app
        .post(
            "/users",
            json!({"name": "B", "email": "b@x.org", "extension": 999999}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(app.create_user("C", "c@x.org").await["extension"], 10001);
    let avail = app.get("/extensions/available").await.body;
    assert_eq!(avail["ranges"], json!([[10002, 999998]]));
    assert_eq!(avail["free"], 989997);
}

#[tokio::test]
async fn every_bad_input_gets_its_error_and_loses_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("Alice", "alice@x.org").await;
    let before = app.db_users().await;

    let long = "x".repeat(101);
    let long_email = format!("{}@x.org", "a".repeat(249));
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "", "email": "b@x.org"}), "name"),
        (json!({"name": long, "email": "b@x.org"}), "name"),
        (json!({"name": " Bob", "email": "b@x.org"}), "name"),
        (json!({"name": "Bob ", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo\nb", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo\u{7}b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo\"b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo;b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo[b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo]b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo<b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo>b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo\\b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bob\\", "email": "b@x.org"}), "name"),
        (json!({"name": 5, "email": "b@x.org"}), "name"),
        (json!({"email": "b@x.org"}), "name"),
        (json!({"name": "Bob", "email": "bob"}), "email"),
        (json!({"name": "Bob", "email": "b@b@x.org"}), "email"),
        (json!({"name": "Bob", "email": "b ob@x.org"}), "email"),
        (json!({"name": "Bob", "email": "bob@\u{1}x.org"}), "email"),
        (json!({"name": "Bob", "email": long_email}), "email"),
        (json!({"name": "Bob", "email": null}), "email"),
        (
            json!({"name": "Bob", "email": "b@x.org", "extension": 999}),
            "extension",
        ),
        (
            json!({"name": "Bob", "email": "b@x.org", "extension": 2000}),
            "extension",
        ),
        (
            json!({"name": "Bob", "email": "b@x.org", "extension": "1001"}),
            "extension",
        ),
        (
            json!({"name": "Bob", "email": "b@x.org", "extension": 1001.5}),
            "extension",
        ),
        (
            json!({"name": "Bob", "email": "b@x.org", "admin": true}),
            "admin",
        ),
        (json!(["Bob"]), "body"),
    ];
    for (body, field) in cases {
        let r = app.post("/users", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(&r.body), "validation_failed", "{body}");
        assert_eq!(r.body["error"]["field"], field, "{body}");
    }

    let raw = |ct: &'static str, bytes: Vec<u8>| (ct, Bytes::from(bytes));
    let transport_cases = [
        (
            Some(raw("application/json", b"{\"name\": \"Bob\",".to_vec())),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Some(raw("application/json", b"".to_vec())),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Some(raw(
                "text/plain",
                b"{\"name\":\"Bob\",\"email\":\"b@x.org\"}".to_vec(),
            )),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some(raw(
                "application/json",
                format!(
                    "{{\"name\":\"Bob\",\"email\":\"b@x.org\",\"pad\":\"{}\"}}",
                    "x".repeat(70_000)
                )
                .into_bytes(),
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (body, status, code) in transport_cases {
        let r = app.send(Method::POST, "/users", body, &[], true).await;
        assert_eq!((r.status, error_code(&r.body)), (status, code));
    }
    // Exactly at the limit is still read (and then refused for its unknown field).
    let pad = 64 * 1024 - "{\"name\":\"Bob\",\"email\":\"b@x.org\",\"pad\":\"\"}".len();
    let body = format!(
        "{{\"name\":\"Bob\",\"email\":\"b@x.org\",\"pad\":\"{}\"}}",
        "x".repeat(pad)
    );
    assert_eq!(body.len(), 64 * 1024);
    let r = app
        .send(
            Method::POST,
            "/users",
            Some(("application/json; charset=utf-8", Bytes::from(body))),
            &[],
            true,
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("pad"))
    );

    assert_eq!(app.db_users().await, before);
    assert_eq!(
        app.get(&format!("/users/{}", alice["id"])).await.body["email"],
        "alice@x.org"
    );
}

/// One request over a raw TCP connection, for what an HTTP client library refuses to send.
/// Returns the status code and the body.
async fn raw_request(app: &TestApp, head: &[u8], body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(head).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// PostgreSQL refuses a NUL in `text`: a NUL anywhere a client can send text must be a 422
/// naming the field, never a 500 from the database, and must change nothing.
#[tokio::test]
async fn nul_and_control_characters_are_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("Alice", "alice@x.org").await;
    let before = app.db_users().await;
    let applies_before = app.get("/applies").await.body["applies"].clone();

    let queries = [
        ("/users?q=%00", "q"),
        ("/users?q=al%00ice", "q"),
        ("/users?q=%00%00%00", "q"),
        ("/users?q=a%01", "q"),
        ("/users?q=a%7F", "q"),
        ("/users?q=a%C2%85", "q"),
        ("/users?q=a%0Ab", "q"),
        ("/users?limit=%00", "limit"),
        ("/users?limit=1%00", "limit"),
        ("/users?offset=%00", "offset"),
        ("/users?order=%00", "order"),
        ("/users?order=name%00", "order"),
        ("/users?direction=%00", "direction"),
        ("/users?direction=asc%00", "direction"),
        ("/users?%00=1", "\0"),
        ("/users?q%00=a", "q\0"),
        ("/applies?limit=%00", "limit"),
        ("/applies?%00", "\0"),
    ];
    for (path, field) in queries {
        let r = app.get(path).await;
        assert_eq!(r.refusal(), invalid(field), "{path}: {}", r.body);
    }
    for (path, field) in [
        ("/apply?dry_run=%00", "dry_run"),
        ("/apply?dry_run=true%00", "dry_run"),
        ("/apply?%00=true", "\0"),
    ] {
        let r = app.post(path, json!({})).await;
        assert_eq!(r.refusal(), invalid(field), "{path}: {}", r.body);
    }

    let bodies = [
        (json!({"name": "\u{0}", "email": "b@x.org"}), "name"),
        (json!({"name": "Bo\u{0}b", "email": "b@x.org"}), "name"),
        (json!({"name": "Bob\u{0}", "email": "b@x.org"}), "name"),
        (json!({"name": "Bob", "email": "\u{0}"}), "email"),
        (json!({"name": "Bob", "email": "b\u{0}@x.org"}), "email"),
        (json!({"name": "Bob", "email": "b@x.org\u{0}"}), "email"),
        (
            json!({"name": "Bob", "email": "b@x.org", "\u{0}": "x"}),
            "\0",
        ),
        (
            json!({"name": "Bob", "email": "b@x.org", "extension": "1\u{0}"}),
            "extension",
        ),
    ];
    for (body, field) in bodies {
        for key in [None, Some("nul-test")] {
            let headers: Vec<(&str, &str)> =
                key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
            let r = app.post_with("/users", body.clone(), &headers).await;
            assert_eq!(r.refusal(), invalid(field), "{body} {key:?}");
        }
    }
    // The escape as a client writes it, byte for byte.
    let json = br#"{"name":"A\u0000","email":"nul@x.org"}"#;
    let (status, body) = raw_request(
        &app,
        format!(
            "POST /users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            json.len()
        )
        .as_bytes(),
        json,
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, error_code(&body), body["error"]["field"].as_str()),
        (422, "validation_failed", Some("name"))
    );

    // Idempotency-Key: 1-200 visible ASCII. Bytes an HTTP client library will not send go
    // over a raw connection; a NUL, another control byte or DEL in a header value is not
    // HTTP at all (RFC 9110 field-value), so hyper answers 400 before any handler runs.
    let key_cases: [(&[u8], u16); 5] = [
        (b"a\x7fb", 400),
        (b"caf\xc3\xa9", 422),
        (b"a\x01b", 400),
        (b"a\x00b", 400),
        (b"a b", 422),
    ];
    for (key, status) in key_cases {
        let json = br#"{"name":"Keyed","email":"keyed@x.org"}"#;
        let mut head = format!(
            "POST /users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\
             Idempotency-Key: ",
            json.len()
        )
        .into_bytes();
        head.extend_from_slice(key);
        head.extend_from_slice(b"\r\n\r\n");
        let (got, body) = raw_request(&app, &head, json).await;
        assert_eq!(got, status, "{key:?}: {body}");
        if status == 422 {
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                (error_code(&body), body["error"]["field"].as_str()),
                ("validation_failed", Some("Idempotency-Key")),
                "{key:?}"
            );
        }
    }

    // Nothing changed, nothing was half-stored, and search still works.
    assert_eq!(app.db_users().await, before);
    let keys: i64 = app
        .db()
        .client()
        .await
        .query_one("SELECT count(*) FROM idempotency_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 0);
    assert_eq!(app.get("/applies").await.body["applies"], applies_before);
    let found = app.get("/users?q=ALICE").await;
    assert_eq!(found.body["users"][0]["id"], alice["id"]);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

/// Each query string is one typed struct: every parameter is checked, an unknown or a
/// repeated one is refused with its name, and the documented defaults apply.
#[tokio::test]
async fn query_strings_are_typed_and_refuse_unknown_or_repeated_parameters() {
    let app = TestApp::spawn().await;
    app.create_user("Alice", "alice@x.org").await;
    for path in [
        "/users?limit=1000&offset=0&q=&order=extension&direction=asc",
        "/users?limit=1&offset=2147483647&q=%20%20&order=created_at&direction=desc",
        "/users?q=%E5%90%8D",
        "/applies?limit=1000",
        "/applies?limit=1",
        "/applies",
    ] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(app.get("/users").await.body["limit"], 1000);
    let q254 = "é".repeat(254);
    assert_eq!(
        app.get(&format!("/users?q={}", q254.replace('é', "%C3%A9")))
            .await
            .status,
        StatusCode::OK,
        "254 characters, 508 bytes"
    );
    for (path, field) in [
        ("/users?q=".to_owned() + &"x".repeat(255), "q"),
        ("/users?offset=2147483648".to_owned(), "offset"),
        ("/users?q=a&q=b".to_owned(), "q"),
        ("/users?order=name&order=name".to_owned(), "order"),
        ("/users?limit=".to_owned(), "limit"),
        ("/users?limit=+5".to_owned(), "limit"),
        ("/users?direction=ASC".to_owned(), "direction"),
        ("/users?online=true".to_owned(), "online"),
        ("/users?LIMIT=5".to_owned(), "LIMIT"),
        ("/users?q&q".to_owned(), "q"),
        ("/applies?limit=0".to_owned(), "limit"),
        ("/applies?limit=1001".to_owned(), "limit"),
        ("/applies?limit=1&limit=1".to_owned(), "limit"),
        ("/applies?offset=1".to_owned(), "offset"),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.refusal(), invalid(field), "{path}: {}", r.body);
    }

    // POST /apply: dry_run is true, false, 1 or 0; anything else runs nothing.
    for (query, status) in [("dry_run=true", "dry_run"), ("dry_run=1", "dry_run")] {
        let r = app.post(&format!("/apply?{query}"), json!({})).await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (StatusCode::OK, Some(status))
        );
    }
    for query in ["dry_run=false", "dry_run=0", ""] {
        let r = app.post(&format!("/apply?{query}"), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{query}");
        assert_ne!(r.body["status"], "dry_run", "{query}");
    }
    let before = app.get("/applies").await.body["applies"].clone();
    for (query, field) in [
        ("dry_run=yes", "dry_run"),
        ("dry_run=", "dry_run"),
        ("dry_run=TRUE", "dry_run"),
        ("dry_run=true&dry_run=true", "dry_run"),
        ("force=true", "force"),
    ] {
        let r = app.post(&format!("/apply?{query}"), json!({})).await;
        assert_eq!(r.refusal(), invalid(field), "{query}");
    }
    assert_eq!(app.get("/applies").await.body["applies"], before);
}

#[tokio::test]
async fn list_filters_sorts_pages_and_counts() {
    let app = TestApp::spawn().await;
    for (name, email) in [
        ("Carol", "carol@x.org"),
        ("alice", "alice@y.org"),
        ("Bob", "bob@x.org"),
        ("Dave_1%", "d@z.org"),
    ] {
        app.create_user(name, email).await;
    }
    let names = |b: &Value| {
        b["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    let r = app.get("/users").await;
    assert_eq!(names(&r.body), ["Carol", "alice", "Bob", "Dave_1%"]);
    assert_eq!(
        (
            r.body["total"].as_i64(),
            r.body["limit"].as_i64(),
            r.body["offset"].as_i64()
        ),
        (Some(4), Some(1000), Some(0))
    );
    assert_eq!(
        names(&app.get("/users?order=name").await.body),
        ["Bob", "Carol", "Dave_1%", "alice"]
    );
    assert_eq!(
        names(&app.get("/users?order=email&direction=desc").await.body),
        ["Dave_1%", "Carol", "Bob", "alice"]
    );
    assert_eq!(
        names(
            &app.get("/users?order=created_at&direction=desc&limit=1")
                .await
                .body
        ),
        ["Dave_1%"]
    );
    let page = app.get("/users?limit=2&offset=1").await.body;
    assert_eq!(
        (names(&page), page["total"].as_i64()),
        (vec!["alice".to_owned(), "Bob".to_owned()], Some(4))
    );
    let past = app.get("/users?offset=10").await.body;
    assert_eq!((names(&past).len(), past["total"].as_i64()), (0, Some(4)));
    assert_eq!(names(&app.get("/users?q=ALI").await.body), ["alice"]);
    assert_eq!(
        names(&app.get("/users?q=x.org").await.body),
        ["Carol", "Bob"]
    );
    assert_eq!(names(&app.get("/users?q=1002").await.body), ["Bob"]);
    assert_eq!(names(&app.get("/users?q=_1%25").await.body), ["Dave_1%"]);
    assert_eq!(
        names(&app.get("/users?q=%25").await.body),
        ["Dave_1%"],
        "% is literal"
    );
    let none = app.get("/users?q=nobody").await.body;
    assert_eq!((names(&none).len(), none["total"].as_i64()), (0, Some(0)));

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("order=secret", "order"),
        ("direction=up", "direction"),
        ("sort=name", "sort"),
        ("limit=1&limit=2", "limit"),
    ] {
        let r = app.get(&format!("/users?{query}")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(
            (error_code(&r.body), r.body["error"]["field"].as_str()),
            ("validation_failed", Some(field)),
            "{query}"
        );
    }
}

#[tokio::test]
async fn get_delete_and_rotate_answer_404_for_unknown_users() {
    let app = TestApp::spawn().await;
    let u = app.create_user("A", "a@x.org").await;
    let id = u["id"].as_i64().unwrap();
    for path in ["/users/999999", "/users/abc", "/users/0"] {
        let r = app.get(path).await;
        assert_eq!(
            (r.status, error_code(&r.body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    assert_eq!(
        app.delete("/users/999999").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post("/users/999999/secret", json!({})).await.status,
        StatusCode::NOT_FOUND
    );

    let r = app.post(&format!("/users/{id}/secret"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    let new = r.body["sip_password"].as_str().unwrap().to_owned();
    assert_eq!(r.body["sip_username"], "1000");
    assert_ne!(new, u["sip_password"].as_str().unwrap());
    assert_eq!(app.db_users().await[0].secret, new);

    let r = app.delete(&format!("/users/{id}")).await;
    assert_eq!((r.status, r.raw.len()), (StatusCode::NO_CONTENT, 0));
    assert_eq!(
        app.get(&format!("/users/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/users/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn available_extensions_are_the_gaps() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_user("U", &format!("u{i}@x.org")).await["id"].clone());
    }
    app.delete(&format!("/users/{}", ids[1])).await;
    app.delete(&format!("/users/{}", ids[2])).await;
    let r = app.get("/extensions/available").await;
    assert_eq!(
        r.body,
        json!({"ranges": [[1001, 1002], [1005, 1999]], "free": 997, "min": 1000, "max": 1999})
    );
}

#[tokio::test]
async fn auth_routing_and_methods() {
    let app = TestApp::spawn().await;
    for path in [
        "/users",
        "/users/1",
        "/extensions/available",
        "/apply/pending",
        "/applies",
        "/status",
    ] {
        let r = app.send(Method::GET, path, None, &[], false).await;
        assert_eq!(
            (r.status, error_code(&r.body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{path}"
        );
        for bad in [
            "Bearer wrong-token-0123456789abcdef",
            "Basic dGVzdA==",
            "Bearer",
            &format!("Bearer {TOKEN}x"),
        ] {
            let r = app
                .send(Method::GET, path, None, &[("authorization", bad)], false)
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path} {bad}");
        }
    }
    let r = app
        .send(
            Method::POST,
            "/users",
            Some(("application/json", Bytes::from_static(b"{}"))),
            &[],
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(app.db_users().await.is_empty());

    let h = app.send(Method::GET, "/healthz", None, &[], false).await;
    assert_eq!(
        (h.status, h.body.clone()),
        (StatusCode::OK, json!({"status": "ok", "database": "ok"}))
    );
    assert_eq!(
        app.send(Method::GET, "/openapi.json", None, &[], false)
            .await
            .status,
        StatusCode::OK
    );
    let lower = app
        .send(
            Method::GET,
            "/users",
            None,
            &[("authorization", &format!("bearer {TOKEN}"))],
            false,
        )
        .await;
    assert_eq!(lower.status, StatusCode::OK);

    let r = app.get("/no/such/route").await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    for (method, path, allow) in [
        (Method::PUT, "/users", "GET, POST"),
        (Method::POST, "/users/1", "GET, PATCH, DELETE"),
        (Method::GET, "/users/1/secret", "POST"),
        (Method::GET, "/apply", "POST"),
        (Method::DELETE, "/applies", "GET"),
        (Method::POST, "/healthz", "GET"),
    ] {
        let r = app.send(method.clone(), path, None, &[], true).await;
        assert_eq!(
            (r.status, error_code(&r.body)),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            "{method} {path}"
        );
        assert_eq!(r.headers["allow"], allow);
    }
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "Idem", "email": "idem@x.org"});
    let first = app
        .post_with("/users", body.clone(), &[("Idempotency-Key", "key-1")])
        .await;
    let again = app
        .post_with("/users", body.clone(), &[("Idempotency-Key", "key-1")])
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(first.body, again.body, "same user, same secret");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.db_users().await.len(), 1);

    let other = app
        .post_with(
            "/users",
            json!({"name": "Other", "email": "o@x.org"}),
            &[("Idempotency-Key", "key-1")],
        )
        .await;
    assert_eq!(
        (other.status, error_code(&other.body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(app.db_users().await.len(), 1);

    // A failed create does not consume its key: the retry after fixing the conflict works.
    let dup = json!({"name": "Dup", "email": "idem@x.org"});
    let r = app
        .post_with("/users", dup.clone(), &[("Idempotency-Key", "key-2")])
        .await;
    assert_eq!(error_code(&r.body), "email_taken");
    let bad = app
        .post_with("/users", body.clone(), &[("Idempotency-Key", "")])
        .await;
    assert_eq!(bad.body["error"]["field"], "Idempotency-Key");

    // An expired key (over 24 hours) is taken over as new.
    let c = app.db().client().await;
    c.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'",
        &[],
    )
    .await
    .unwrap();
    let r = app
        .post_with(
            "/users",
            json!({"name": "New", "email": "new@x.org"}),
            &[("Idempotency-Key", "key-1")],
        )
        .await;
    assert_eq!(
        (r.status, r.body["email"].as_str()),
        (StatusCode::CREATED, Some("new@x.org"))
    );
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_user() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post_with(
                    "/users",
                    json!({"name": "Race", "email": "race@x.org"}),
                    &[("Idempotency-Key", "race")],
                )
                .await
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        bodies.push(r.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(app.db_users().await.len(), 1);
}

#[tokio::test]
async fn healthz_reports_a_lost_database_with_503() {
    let app = TestApp::spawn().await;
    // Terminate the service's connections and forbid new ones.
    let admin = app.db().client().await;
    let name = app.db().name.clone();
    let (c, conn) = tokio_postgres::connect(&support::app::admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    drop(admin);
    c.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
        &[&name],
    )
    .await
    .unwrap();
    let r = app.send(Method::GET, "/healthz", None, &[], false).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "unavailable");
    let r = app
        .post("/users", json!({"name": "A", "email": "a@x.org"}))
        .await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
    );
    c.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    assert_eq!(
        app.send(Method::GET, "/healthz", None, &[], false)
            .await
            .status,
        StatusCode::OK
    );
}
