//! Bulk import and export (`POST /users/import`, `GET /users/export`, `pbx-portal import`
//! and `export`) over real HTTP against a real PostgreSQL: all or nothing, every bad row
//! reported with its row, field and code and the database unchanged afterwards, the
//! allocation guarantee under concurrency, the secrets shown once, dry runs, idempotency,
//! streamed exports that re-import to the same users and numbers, and the command line.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;
use crate::support::app::{Resp, TestApp, TOKEN};
use crate::support::process::Scratch;

/// Everything an import could change: users with their extensions (secrets included),
/// users without one, and Idempotency-Keys.
#[derive(Debug, PartialEq, Eq)]
struct State {
    users: Vec<(i64, String, String, i32, i16, String)>,
    user_rows: i64,
    keys: i64,
}

async fn state(app: &TestApp) -> State {
    let c = app.db().client().await;
    let users = c
        .query(
            "SELECT u.id, u.name, u.email, e.number, e.devices, e.secret
               FROM users u JOIN extensions e ON e.user_id = u.id ORDER BY e.number",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    State {
        users,
        user_rows: count("SELECT count(*) FROM users").await,
        keys: count("SELECT count(*) FROM idempotency_keys").await,
    }
}

async fn import(
    app: &TestApp,
    query: &str,
    ct: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Resp {
    app.send(
        Method::POST,
        &format!("/users/import{query}"),
        Some((ct, body.into())),
        headers,
        true,
    )
    .await
}

async fn csv(app: &TestApp, body: &str) -> Resp {
    import(app, "", "text/csv", body.to_owned(), &[]).await
}

async fn json_import(app: &TestApp, body: &Value) -> Resp {
    import(app, "", "application/json", body.to_string(), &[]).await
}

async fn id_of(app: &TestApp, email: &str) -> i64 {
    let c = app.db().client().await;
    c.query_one("SELECT id FROM users WHERE email = $1", &[&email])
        .await
        .unwrap()
        .get(0)
}

/// `(row, field, code)` of every error of a 422 `import_invalid`.
fn row_errors(r: &Resp) -> Vec<(Option<i64>, Option<&str>, &str)> {
    assert_eq!(
        r.error(),
        (StatusCode::UNPROCESSABLE_ENTITY, "import_invalid"),
        "{}",
        r.body
    );
    r.body["error"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {}", r.body))
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
            (
                e["row"].as_i64(),
                e["field"].as_str(),
                e["code"].as_str().unwrap(),
            )
        })
        .collect()
}

/// Parses a CSV answer into its header and rows.
fn sheet(raw: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(raw);
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn extensions(users: &Value) -> Vec<i64> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["extension"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn csv_import_creates_everyone_explicit_numbers_first_then_the_lowest_in_file_order() {
    let app = TestApp::spawn().await;
    app.create_user("Old", "old@x.org").await; // 1000
    let r = app
        .post(
            "/users",
            json!({"name": "Chosen", "email": "chosen@x.org", "extension": 1003}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = csv(
        &app,
        "name,email,extension,devices\n\
         Ann,ann@x.org,,\n\
         Ben,ben@x.org,1001,\n\
         Cid,CID@X.org,,\n\
         Dee,dee@x.org,,3\n",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.body["created"], 4);
    let users = &r.body["users"];
    // Ben's explicit 1001 is taken before the others get the lowest free ones, in order.
    assert_eq!(extensions(users), [1002, 1001, 1004, 1005]);
    assert_eq!(users[2]["email"], "cid@x.org");
    assert_eq!(users[3]["devices"], 3);
    assert_eq!(users[0]["devices"], 1);

    let db = state(&app).await;
    let mut secrets = BTreeSet::new();
    for u in users.as_array().unwrap() {
        assert_eq!(u["sip_username"], u["extension"].to_string());
        let secret = u["sip_password"].as_str().unwrap();
        assert_eq!(secret.len(), 24);
        assert!(secrets.insert(secret.to_owned()), "one secret per user");
        let stored = db
            .users
            .iter()
            .find(|row| i64::from(row.3) == u["extension"].as_i64().unwrap())
            .unwrap();
        assert_eq!(
            (&stored.5, stored.0),
            (&secret.to_owned(), u["id"].as_i64().unwrap())
        );
        // Readable as any user, never with the secret again.
        let got = app.get(&format!("/users/{}", u["id"])).await;
        assert_eq!(got.body["email"], u["email"]);
        assert!(!String::from_utf8_lossy(&got.raw).contains(secret));
    }
    assert_eq!(db.users.len(), 6);
}

#[tokio::test]
async fn csv_as_spreadsheets_write_it_bom_crlf_quotes_any_header_order() {
    let app = TestApp::spawn().await;
    let file = "\u{feff}EMAIL,Name,Devices\r\n\
                \"smith@x.org\",\"Smith, Pat\",2\r\n\
                \"o\"\"brien@x.org\",O'Brien,\r\n\
                zoe@x.org,Zoë 名 😀,\r\n";
    let r = csv(&app, file).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let names: Vec<&str> = r.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Smith, Pat", "O'Brien", "Zoë 名 😀"]);
    assert_eq!(r.body["users"][1]["email"], "o\"brien@x.org");
    assert_eq!(r.body["users"][0]["devices"], 2);

    // LF only, with a charset parameter, and a quoted field that spans lines is a row error
    // on the line it starts on; the line after it is numbered as an editor shows it.
    let r = import(
        &app,
        "",
        "text/csv; charset=UTF-8",
        "name,email\n\"Two\nLines\",two@x.org\nBad;Name,bad@x.org\n",
        &[],
    )
    .await;
    assert_eq!(
        row_errors(&r),
        [
            (Some(2), Some("name"), "validation_failed"),
            (Some(4), Some("name"), "validation_failed")
        ]
    );
    // The same with CRLF.
    let r = csv(
        &app,
        "name,email\r\n\"Two\r\nLines\",two@x.org\r\nBad;Name,bad@x.org\r\n",
    )
    .await;
    assert_eq!(
        row_errors(&r),
        [
            (Some(2), Some("name"), "validation_failed"),
            (Some(4), Some("name"), "validation_failed")
        ]
    );
}

#[tokio::test]
async fn every_bad_row_is_reported_at_once_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    app.create_user("Taken", "taken@x.org").await; // 1000
    let before = state(&app).await;
    let file = "name,email,extension,devices\n\
                Good One,good1@x.org,,\n\
                Back\\slash,bs@x.org,,\n\
                \"Nul\0Name\",nul@x.org,,\n\
                Semi;colon,semi@x.org,,\n\
                Mail,not-an-email,,\n\
                Dup,Good1@X.ORG,,\n\
                Taken,TAKEN@x.org,,\n\
                Ext,ext1@x.org,1500,\n\
                Ext2,ext2@x.org,1500,\n\
                Ext3,ext3@x.org,1000,\n\
                Ext4,ext4@x.org,2000,\n\
                Ext5,ext5@x.org,abc,\n\
                Dev,dev0@x.org,,0\n\
                Dev,dev11@x.org,,11\n\
                \"Multi\n\
                Line\",ml@x.org,,\n\
                Extra,extra@x.org,,,more\n\
                ,empty@x.org,,\n\
                Both;bad,GOOD1@x.org,1000,\n";
    let r = csv(&app, file).await;
    assert_eq!(
        row_errors(&r),
        [
            (Some(3), Some("name"), "validation_failed"),
            (Some(4), Some("name"), "validation_failed"),
            (Some(5), Some("name"), "validation_failed"),
            (Some(6), Some("email"), "validation_failed"),
            (Some(7), Some("email"), "duplicate_email"),
            (Some(8), Some("email"), "email_taken"),
            (Some(10), Some("extension"), "duplicate_extension"),
            (Some(11), Some("extension"), "extension_taken"),
            (Some(12), Some("extension"), "validation_failed"),
            (Some(13), Some("extension"), "validation_failed"),
            (Some(14), Some("devices"), "validation_failed"),
            (Some(15), Some("devices"), "validation_failed"),
            (Some(16), Some("name"), "validation_failed"),
            (Some(18), None, "validation_failed"),
            (Some(19), Some("name"), "validation_failed"),
            (Some(20), Some("name"), "validation_failed"),
            (Some(20), Some("email"), "duplicate_email"),
            (Some(20), Some("extension"), "duplicate_extension"),
            (Some(20), Some("extension"), "extension_taken"),
        ]
    );
    let errors = &r.body["error"]["errors"];
    assert_eq!(errors[4]["message"], "the same email as row 2");
    assert_eq!(errors[8]["message"], "must be within the range 1000-1999");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was imported"),
        "{}",
        r.body
    );
    assert_eq!(state(&app).await, before);

    // The dry run reports exactly the same.
    let dry = import(&app, "?dry_run=true", "text/csv", file, &[]).await;
    assert_eq!(dry.body, r.body);
    assert_eq!(state(&app).await, before);

    // JSON: rows indexed from 0; wrong types and unknown fields named.
    let r = json_import(
        &app,
        &json!({"users": [
            {"name": "Fine", "email": "fine@x.org"},
            {"name": "Fine", "email": "FINE@x.org", "extension": 1000, "admin": true},
            {"name": 7, "email": ["x"], "extension": "1001", "devices": null},
            "not an object",
            {"email": "noname@x.org", "id": -1, "created_at": 5},
            {"name": "Nul\u{0}", "email": "n@x\u{0}"}
        ]}),
    )
    .await;
    assert_eq!(
        row_errors(&r),
        [
            (Some(1), Some("admin"), "validation_failed"),
            (Some(1), Some("email"), "duplicate_email"),
            (Some(1), Some("extension"), "extension_taken"),
            (Some(2), Some("name"), "validation_failed"),
            (Some(2), Some("email"), "validation_failed"),
            (Some(2), Some("extension"), "validation_failed"),
            (Some(2), Some("devices"), "validation_failed"),
            (Some(3), None, "validation_failed"),
            (Some(4), Some("name"), "validation_failed"),
            (Some(5), Some("name"), "validation_failed"),
            (Some(5), Some("email"), "validation_failed"),
        ]
    );
    assert_eq!(state(&app).await, before);
}

#[tokio::test]
async fn the_shape_of_the_file_and_the_request_are_checked() {
    let app = TestApp::spawn().await;
    app.create_user("Keep", "keep@x.org").await;
    let before = state(&app).await;
    let file_error = |r: &Resp| -> (Option<i64>, Option<String>) {
        let errs = row_errors(r);
        assert_eq!(errs.len(), 1, "{}", r.body);
        (errs[0].0, errs[0].1.map(str::to_owned))
    };

    // CSV: the header.
    for (body, want) in [
        ("", vec![(Some(1), Some("header"))]),
        ("\u{feff}", vec![(Some(1), Some("header"))]),
        ("\n\n", vec![(Some(1), Some("header"))]),
        (
            "Alice,alice@x.org\n",
            vec![
                (Some(1), Some("Alice")),
                (Some(1), Some("alice@x.org")),
                (Some(1), Some("name")),
                (Some(1), Some("email")),
            ],
        ),
        (
            "name,email,nickname\nA,a@x.org,z\n",
            vec![(Some(1), Some("nickname"))],
        ),
        ("name\nA\n", vec![(Some(1), Some("email"))]),
        (
            "name,email,EMAIL\nA,a@x.org,b@x.org\n",
            vec![(Some(1), Some("email"))],
        ),
        ("name,email,\nA,a@x.org,\n", vec![(Some(1), Some(""))]),
        ("name,email\n", vec![(None, None)]),
        ("name,email\r\n\r\n", vec![(None, None)]),
    ] {
        let r = csv(&app, body).await;
        let got: Vec<(Option<i64>, Option<&str>)> = row_errors(&r)
            .into_iter()
            .map(|(row, f, c)| {
                assert_eq!(c, "validation_failed");
                (row, f)
            })
            .collect();
        assert_eq!(got, want, "{body:?}");
    }

    // Invalid UTF-8: a CSV row error naming the column; JSON that is not UTF-8 is not JSON.
    let r = import(
        &app,
        "",
        "text/csv",
        &b"name,email\nAl\xffce,a@x.org\n"[..],
        &[],
    )
    .await;
    assert_eq!(
        row_errors(&r),
        [(Some(2), Some("name"), "validation_failed")]
    );
    let r = import(
        &app,
        "",
        "text/csv",
        &b"na\xffme,email\nA,a@x.org\n"[..],
        &[],
    )
    .await;
    assert_eq!(
        row_errors(&r),
        [
            (Some(1), Some("na\u{fffd}me"), "validation_failed"),
            (Some(1), Some("name"), "validation_failed")
        ]
    );
    let r = import(
        &app,
        "",
        "application/json",
        &b"{\"users\": [{\"name\": \"A\xff\", \"email\": \"a@x.org\"}]}"[..],
        &[],
    )
    .await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "invalid_json"));

    // JSON: the shape.
    for (body, want) in [
        (json!([]), (None, None)),
        (json!("users"), (None, None)),
        (json!({}), (None, Some("users".to_owned()))),
        (json!({"users": {}}), (None, Some("users".to_owned()))),
        (json!({"users": null}), (None, Some("users".to_owned()))),
        (json!({"users": []}), (None, Some("users".to_owned()))),
    ] {
        let r = json_import(&app, &body).await;
        assert_eq!(file_error(&r), want, "{body}");
    }
    let r = json_import(
        &app,
        &json!({"users": [{"name": "A", "email": "a@x.org"}], "tenant": 1}),
    )
    .await;
    assert_eq!(
        row_errors(&r),
        [(None, Some("tenant"), "validation_failed")]
    );
    for bad in ["", "{", "{\"users\": [}", "[1, }", "{\"users\": []} x"] {
        let r = import(&app, "", "application/json", bad, &[]).await;
        assert_eq!(
            r.error(),
            (StatusCode::BAD_REQUEST, "invalid_json"),
            "{bad:?}"
        );
    }

    // Content types: 415, whatever the body.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/csv; charset=latin1",
        "text/csvx",
    ] {
        let r = import(&app, "", ct, "name,email\nA,a@x.org\n", &[]).await;
        assert_eq!(
            r.error(),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{ct}"
        );
    }
    let r = app
        .send(Method::POST, "/users/import", None, &[], true)
        .await;
    assert_eq!(
        r.error(),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    // Query string and header: typed as everywhere.
    let r = import(
        &app,
        "?dry_run=maybe",
        "text/csv",
        "name,email\nA,a@x.org\n",
        &[],
    )
    .await;
    assert_eq!(
        (r.error(), r.body["error"]["field"].as_str()),
        (
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Some("dry_run")
        )
    );
    let r = import(&app, "?x=1", "text/csv", "name,email\nA,a@x.org\n", &[]).await;
    assert_eq!(r.body["error"]["field"], "x");
    let r = import(
        &app,
        "",
        "text/csv",
        "name,email\nA,a@x.org\n",
        &[("Idempotency-Key", "a b")],
    )
    .await;
    assert_eq!(r.body["error"]["field"], "Idempotency-Key");

    // Method and auth.
    let r = app
        .send(Method::GET, "/users/import", None, &[], true)
        .await;
    assert_eq!(
        (r.status, r.headers["allow"].to_str().unwrap()),
        (StatusCode::METHOD_NOT_ALLOWED, "POST")
    );
    let r = app
        .send(
            Method::POST,
            "/users/import",
            Some(("text/csv", Bytes::from("name,email\nA,a@x.org\n"))),
            &[],
            false,
        )
        .await;
    assert_eq!(r.error(), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert_eq!(state(&app).await, before);
}

#[tokio::test]
async fn limits_ten_thousand_rows_and_eight_mib() {
    let app = TestApp::spawn_with(&[
        ("PORTAL_EXTENSION_MIN", "10000"),
        ("PORTAL_EXTENSION_MAX", "29999"),
    ])
    .await;
    let rows = |n: usize, tag: &str| {
        let mut s = String::from("name,email\n");
        for i in 0..n {
            s.push_str(&format!("User {i},{tag}{i}@x.org\n"));
        }
        s
    };
    let before = state(&app).await;
    // One row too many: nothing is read further, nothing created.
    let r = csv(&app, &rows(10_001, "over")).await;
    assert_eq!(row_errors(&r), [(None, None, "validation_failed")]);
    assert!(r.body["error"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("10000"));
    let users: Vec<Value> = (0..10_001)
        .map(|i| json!({"name": "U", "email": format!("j{i}@x.org")}))
        .collect();
    let r = json_import(&app, &json!({ "users": users })).await;
    assert_eq!(row_errors(&r), [(None, Some("users"), "validation_failed")]);
    assert_eq!(state(&app).await, before);

    // 8 MiB: refused by its declared length, and by what arrives when none is declared.
    let mut big = rows(1, "big");
    big.push_str(&" ".repeat(8 * 1024 * 1024));
    let r = csv(&app, &big).await;
    assert_eq!(
        r.error(),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("8 MiB"));
    let (status, answer) = chunked_post(&app, "/users/import", "text/csv", big.as_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(state(&app).await, before);

    // Exactly the limit is fine (and 8 MiB minus a little is not too large).
    let r = csv(&app, &rows(10_000, "ok")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["created"], 10_000);
    let ext = extensions(&r.body["users"]);
    assert_eq!(ext, (10000..20000).collect::<Vec<i64>>());
}

/// POST with a chunked body (no Content-Length) over a raw connection: status and body.
async fn chunked_post(app: &TestApp, path: &str, ct: &str, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer 413 and close before the whole body is sent.
        if s.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn more_rows_than_free_numbers_is_409_and_creates_nothing() {
    let app = TestApp::spawn_with(&[
        ("PORTAL_EXTENSION_MIN", "5000"),
        ("PORTAL_EXTENSION_MAX", "5004"),
    ])
    .await;
    app.create_user("A", "a@x.org").await;
    app.create_user("B", "b@x.org").await;
    let before = state(&app).await;
    // 3 free; 1 explicit + 3 to allocate need 4.
    let file = "name,email,extension\nC,c@x.org,5004\nD,d@x.org,\nE,e@x.org,\nF,f@x.org,\n";
    let r = csv(&app, file).await;
    assert_eq!(
        r.error(),
        (StatusCode::CONFLICT, "extension_pool_exhausted")
    );
    assert_eq!(
        r.body["error"]["message"],
        "the file needs 3 new extensions but only 2 are free in the range; nothing was imported"
    );
    let dry = import(&app, "?dry_run=1", "text/csv", file, &[]).await;
    assert_eq!(dry.body, r.body);
    assert_eq!(state(&app).await, before);
    // Exactly enough: the range is full.
    let r = csv(
        &app,
        "name,email,extension\nC,c@x.org,5004\nD,d@x.org,\nE,e@x.org,\n",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(extensions(&r.body["users"]), [5004, 5002, 5003]);
    let r = app
        .post("/users", json!({"name": "G", "email": "g@x.org"}))
        .await;
    assert_eq!(
        r.error(),
        (StatusCode::CONFLICT, "extension_pool_exhausted")
    );
}

#[tokio::test]
async fn a_dry_run_shows_the_numbers_an_import_gets_and_changes_nothing() {
    let app = TestApp::spawn().await;
    for email in ["a@x.org", "b@x.org", "c@x.org"] {
        app.create_user("U", email).await;
    }
    let b = id_of(&app, "b@x.org").await;
    assert_eq!(
        app.delete(&format!("/users/{b}")).await.status,
        StatusCode::NO_CONTENT
    ); // 1001 free
    let before = state(&app).await;
    let file = json!({"users": [
        {"name": "New1", "email": "new1@x.org"},
        {"name": "New2", "email": "new2@x.org", "extension": 1005, "devices": 4},
        {"name": "New3", "email": "new3@x.org", "extension": null}
    ]});
    let body = file.to_string();
    for dry_run in ["true", "1"] {
        let r = import(
            &app,
            &format!("?dry_run={dry_run}"),
            "application/json",
            body.clone(),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["valid"], true);
        assert_eq!(r.body["created"], 3);
        assert_eq!(extensions(&r.body["users"]), [1001, 1005, 1003]);
        assert_eq!(
            r.body["users"][1],
            json!({"name": "New2", "email": "new2@x.org", "extension": 1005, "devices": 4,
                   "transport": "transport-udp", "tenant": "default"})
        );
        assert!(!String::from_utf8_lossy(&r.raw).contains("sip_password"));
        assert_eq!(state(&app).await, before);
    }
    // As a sheet.
    let r = import(
        &app,
        "?dry_run=true",
        "application/json",
        body.clone(),
        &[("Accept", "text/csv")],
    )
    .await;
    assert_eq!(
        (r.status, r.headers["content-type"].to_str().unwrap()),
        (StatusCode::OK, "text/csv; charset=utf-8")
    );
    let (header, rows) = sheet(&r.raw);
    assert_eq!(
        header,
        [
            "name",
            "email",
            "extension",
            "devices",
            "transport",
            "tenant"
        ]
    );
    assert_eq!(
        rows[2],
        [
            "New3",
            "new3@x.org",
            "1003",
            "1",
            "transport-udp",
            "default"
        ]
    );
    // dry_run=false (and 0) is a real import: the very same numbers.
    let r = import(&app, "?dry_run=false", "application/json", body, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(extensions(&r.body["users"]), [1001, 1005, 1003]);
}

#[tokio::test]
async fn the_answer_as_csv_is_a_sheet_to_hand_out() {
    let app = TestApp::spawn().await;
    let r = import(
        &app,
        "",
        "text/csv",
        "name,email,devices\n\"Smith, Pat\",pat@x.org,2\nLee,lee@x.org,\n",
        &[("Accept", "text/csv")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers["cache-control"], "no-store");
    let (header, rows) = sheet(&r.raw);
    assert_eq!(
        header,
        [
            "name",
            "email",
            "extension",
            "devices",
            "sip_username",
            "sip_password",
            "id",
            "created_at",
            "transport",
            "tenant"
        ]
    );
    let db = state(&app).await;
    assert_eq!(rows.len(), 2);
    for (row, stored) in rows.iter().zip(&db.users) {
        assert_eq!(row[0], stored.1);
        assert_eq!(row[1], stored.2);
        assert_eq!(row[2], stored.3.to_string());
        assert_eq!(row[3], stored.4.to_string());
        assert_eq!(row[4], stored.3.to_string());
        assert_eq!(row[5], stored.5, "the secret the phone needs");
        assert_eq!(row[6], stored.0.to_string());
        support::instant(&json!(row[7]));
    }
    assert_eq!(rows[0][0], "Smith, Pat");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_import() {
    let app = TestApp::spawn().await;
    let file = "name,email\nA,a@x.org\nB,b@x.org\n";
    let key = [("Idempotency-Key", "import-1")];
    // A failed import does not use up its key.
    app.create_user("Clash", "a@x.org").await;
    let r = import(&app, "", "text/csv", file, &key).await;
    assert_eq!(row_errors(&r), [(Some(2), Some("email"), "email_taken")]);
    let id = id_of(&app, "a@x.org").await;
    app.delete(&format!("/users/{id}")).await;

    let first = import(&app, "", "text/csv", file, &key).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let after_first = state(&app).await;
    let again = import(&app, "", "text/csv", file, &key).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body, "same users, same secrets");
    // The same answer as a sheet.
    let sheet_again = import(
        &app,
        "",
        "text/csv",
        file,
        &[key[0], ("Accept", "text/csv")],
    )
    .await;
    assert_eq!(sheet_again.headers["idempotent-replayed"], "true");
    let (_, rows) = sheet(&sheet_again.raw);
    assert_eq!(
        rows[1][5],
        first.body["users"][1]["sip_password"].as_str().unwrap()
    );
    assert_eq!(state(&app).await, after_first);

    // Another body, the same body as JSON, or the key of a POST /users: reused.
    for (ct, body) in [
        ("text/csv", "name,email\nA,a@x.org\n".to_owned()),
        ("application/json", json!({"users": [{"name": "A", "email": "a@x.org"}, {"name": "B", "email": "b@x.org"}]}).to_string()),
    ] {
        let r = import(&app, "", ct, body, &key).await;
        assert_eq!(r.error(), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    }
    let r = app
        .post_with(
            "/users",
            json!({"name": "Z", "email": "z@x.org"}),
            &[("Idempotency-Key", "single")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = import(
        &app,
        "",
        "text/csv",
        "name,email\nY,y@x.org\n",
        &[("Idempotency-Key", "single")],
    )
    .await;
    assert_eq!(
        r.error(),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    // JSON is compared as JSON (as on POST /users): another encoder's spelling of the
    // same users is the same request.
    let json_key = [("Idempotency-Key", "json-1")];
    let first = import(
        &app,
        "",
        "application/json",
        r#"{"users": [{"name": "J", "email": "j@x.org", "devices": 2}]}"#,
        &json_key,
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = import(
        &app,
        "",
        "application/json",
        "{\"users\":[ {\"devices\":2,\n \"email\":\"j@x.org\",\"name\":\"J\"} ]}",
        &json_key,
    )
    .await;
    assert_eq!(
        (
            again.status,
            again.headers["idempotent-replayed"].to_str().unwrap()
        ),
        (StatusCode::CREATED, "true")
    );
    assert_eq!(again.body, first.body);
    // A dry run neither uses nor checks a key.
    let r = import(
        &app,
        "?dry_run=true",
        "text/csv",
        "name,email\nY,y@x.org\n",
        &[("Idempotency-Key", "dry")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = import(
        &app,
        "",
        "text/csv",
        "name,email\nW,w@x.org\n",
        &[("Idempotency-Key", "dry")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn concurrent_imports_and_single_creates_never_collide() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..4 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut file = String::from("name,email\n");
            for j in 0..50 {
                file.push_str(&format!("Imp {i} {j},imp{i}-{j}@x.org\n"));
            }
            let r = csv(&app, &file).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            let ext = extensions(&r.body["users"]);
            // In file order, within one import.
            assert!(ext.windows(2).all(|w| w[0] < w[1]), "{ext:?}");
            ext
        }));
    }
    for i in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let u = app.create_user("Single", &format!("single{i}@x.org")).await;
            vec![u["extension"].as_i64().unwrap()]
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1000..1300).collect::<Vec<i64>>(),
        "distinct, and the lowest"
    );
}

#[tokio::test]
async fn the_export_streams_every_user_as_json_or_csv() {
    let app = TestApp::spawn_with(&[("PORTAL_EXTENSION_MAX", "9999")]).await;
    // More than one chunk of the database read (1000 rows).
    let mut file = String::from("name,email,extension,devices\n\"Smith, Pat\",pat@x.org,9999,4\n");
    for i in 0..2499 {
        file.push_str(&format!("User {i},u{i}@x.org,,\n"));
    }
    let created = csv(&app, &file).await;
    assert_eq!(created.status, StatusCode::CREATED);

    let r = app.get("/users/export").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(
        r.headers.get("content-length").is_none(),
        "streamed: {:?}",
        r.headers
    );
    let users = r.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2500);
    assert_eq!(r.body.as_object().unwrap().len(), 1);
    let ext = extensions(&r.body["users"]);
    assert!(ext.windows(2).all(|w| w[0] < w[1]), "sorted by extension");
    // The user as stored; its live registration is not data and is not exported, nor is
    // its SIP username (it follows from its tenant and extension, both exported).
    let mut got = app.get(&format!("/users/{}", users[2499]["id"])).await.body;
    assert!(got
        .as_object_mut()
        .unwrap()
        .remove("registration")
        .is_some());
    assert_eq!(
        got.as_object_mut().unwrap().remove("sip_username"),
        Some(users[2499]["extension"].to_string().into())
    );
    assert_eq!(users[2499]["tenant"], "default");
    assert_eq!(users[2499], got);
    assert_eq!(users[2499]["devices"], 4);
    assert!(!String::from_utf8_lossy(&r.raw).contains("sip_password"));
    let secret = created.body["users"][0]["sip_password"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&r.raw).contains(secret));

    for (query, accept) in [
        ("?format=csv", None),
        ("", Some("text/csv")),
        ("?format=csv", Some("application/json")),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = app
            .send(
                Method::GET,
                &format!("/users/export{query}"),
                None,
                &headers,
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.headers["content-type"], "text/csv; charset=utf-8",
            "{query} {accept:?}"
        );
        let (header, rows) = sheet(&r.raw);
        assert_eq!(
            header,
            [
                "id",
                "name",
                "email",
                "extension",
                "devices",
                "created_at",
                "transport",
                "tenant"
            ]
        );
        assert_eq!(rows.len(), 2500);
        assert_eq!(rows[2499][1], "Smith, Pat");
        assert_eq!(rows[2499][4], "4");
        assert_eq!(json!(rows[2499][5]), users[2499]["created_at"]);
    }
    let r = app
        .send(
            Method::GET,
            "/users/export?format=json",
            None,
            &[("Accept", "text/csv")],
            true,
        )
        .await;
    assert_eq!(r.headers["content-type"], "application/json");

    for (query, field) in [
        ("?format=xml", "format"),
        ("?format=CSV", "format"),
        ("?format=csv&format=csv", "format"),
        ("?limit=1", "limit"),
    ] {
        let r = app.get(&format!("/users/export{query}")).await;
        assert_eq!(
            (r.error(), r.body["error"]["field"].as_str()),
            (
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
                Some(field)
            ),
            "{query}"
        );
    }
    // An empty database: an empty list, a lone header.
    let empty = TestApp::spawn().await;
    assert_eq!(empty.get("/users/export").await.body, json!({"users": []}));
    let r = empty.get("/users/export?format=csv").await;
    assert_eq!(
        r.raw,
        "id,name,email,extension,devices,created_at,transport,tenant\n"
    );
}

#[tokio::test]
async fn an_export_imported_into_an_empty_database_gives_the_same_users_and_numbers() {
    let app = TestApp::spawn().await;
    let mut file = String::from("name,email,extension,devices\n");
    for (i, ext) in [1500, 1000, 1999, 1001, 1200].iter().enumerate() {
        file.push_str(&format!("\"Name, {i}\",e{i}@x.org,{ext},{}\n", i % 10 + 1));
    }
    for i in 5..40 {
        file.push_str(&format!("Zoë {i} 名,E{i}@X.org,,{}\n", i % 10 + 1));
    }
    assert_eq!(csv(&app, &file).await.status, StatusCode::CREATED);
    for email in ["e7@x.org", "e20@x.org"] {
        let id = id_of(&app, email).await;
        app.delete(&format!("/users/{id}")).await;
    }
    let people = |s: &State| -> Vec<(String, String, i32, i16)> {
        s.users
            .iter()
            .map(|u| (u.1.clone(), u.2.clone(), u.3, u.4))
            .collect()
    };
    let original = people(&state(&app).await);
    assert_eq!(original.len(), 38);

    let as_csv = app.get("/users/export?format=csv").await.raw;
    let as_json = app.get("/users/export?format=json").await.raw;
    for (ct, body) in [("text/csv", as_csv), ("application/json", as_json)] {
        let fresh = TestApp::spawn().await;
        let r = import(&fresh, "", ct, body, &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{ct}: {}", r.body);
        assert_eq!(people(&state(&fresh).await), original, "{ct}");
    }
}

/// Connections of the test database in an open transaction (an export's snapshot).
async fn open_transactions(app: &TestApp) -> i64 {
    let c = app.db().client().await;
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = $1 AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
        &[&app.db().name],
    )
    .await
    .unwrap()
    .get(0)
}

/// Starts an export on a connection with a small receive window, reads its head and
/// stops reading.
async fn stalled_export(app: &TestApp) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(app.addr).await.unwrap();
    let head = format!(
        "GET /users/export?format=csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s
}

#[tokio::test]
async fn an_export_waits_for_its_reader_and_ends_when_the_reader_goes_away() {
    let app = TestApp::spawn_with(&[
        ("PORTAL_EXTENSION_MIN", "10000"),
        ("PORTAL_EXTENSION_MAX", "39999"),
    ])
    .await;
    // ~7 MB of CSV: more than the kernel (a send buffer autotuned up to 4 MiB here) and
    // hyper can hold for a reader that does not read.
    let (name, domain) = ("n".repeat(90), "d".repeat(180));
    for part in 0..2 {
        let mut file = String::from("name,email\n");
        for i in 0..10_000 {
            file.push_str(&format!("{name} {part} {i},u{part}x{i}@{domain}.org\n"));
        }
        assert_eq!(csv(&app, &file).await.status, StatusCode::CREATED);
    }
    assert_eq!(open_transactions(&app).await, 0);

    // A reader that stops: the export holds its snapshot and waits (it does not read the
    // rest into memory); when the reader goes, so does the transaction.
    let stalled = stalled_export(&app).await;
    let wait = Duration::from_secs(10);
    support::wait_until_async("the export waits in its transaction", wait, || async {
        open_transactions(&app).await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(open_transactions(&app).await, 1, "still waiting, not done");
    drop(stalled);
    support::wait_until_async("the export's transaction ends", wait, || async {
        open_transactions(&app).await == 0
    })
    .await;

    // More readers than the pool has connections, each leaving early: none keeps one.
    for _ in 0..20 {
        drop(stalled_export(&app).await);
    }
    support::wait_until_async("every export's transaction ends", wait, || async {
        open_transactions(&app).await == 0
    })
    .await;

    // Readers that stall hold at most 4 connections: the rest of the API works, another
    // export is refused after waiting for a slot as long as for a connection.
    let stalled: Vec<_> = futures_join(4, || stalled_export(&app)).await;
    for _ in 0..20 {
        assert_eq!(app.get("/users?limit=1").await.status, StatusCode::OK);
    }
    let started = std::time::Instant::now();
    let r = app.get("/users/export").await;
    assert_eq!(
        r.error(),
        (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exports are running"),
        "{}",
        r.body
    );
    drop(stalled);
    let r = app.get("/users/export").await;
    assert_eq!(r.body["users"].as_array().unwrap().len(), 20_000);
}

/// `n` of `f()` one after the other.
async fn futures_join<T, F, Fut>(n: usize, mut f: F) -> Vec<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(f().await);
    }
    v
}

// ---------------------------------------------------------------------------------------
// The command line

fn out(o: &std::process::Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn import_and_export_from_the_shell() {
    let s = Scratch::new().await;
    assert!(s.run(&["migrate"]).await.status.success());
    let dir = s.etc();
    let good = dir.join("people.csv");
    std::fs::write(
        &good,
        "name,email,extension\n\"Smith, Pat\",pat@x.org,1005\nLee,lee@x.org,\n",
    )
    .unwrap();

    // Dry run: the plan on stdout, nothing created.
    let (code, stdout, stderr) = out(&s
        .run(&["import", good.to_str().unwrap(), "--dry-run"])
        .await);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "name,email,extension,devices,transport,tenant\n\"Smith, Pat\",pat@x.org,1005,1,transport-udp,default\n\
         Lee,lee@x.org,1000,1,transport-udp,default\n"
    );
    let (_, exported, _) = out(&s.run(&["export"]).await);
    assert_eq!(
        exported,
        "id,name,email,extension,devices,created_at,transport,tenant\n"
    );

    // The real thing: the sheet with the secrets on stdout, as stored.
    let (code, stdout, stderr) = out(&s.run(&["import", good.to_str().unwrap()]).await);
    assert_eq!(code, Some(0), "{stderr}");
    let (header, rows) = sheet(stdout.as_bytes());
    assert_eq!(
        header[..6],
        [
            "name",
            "email",
            "extension",
            "devices",
            "sip_username",
            "sip_password"
        ]
    );
    let c = s.db.client().await;
    for row in &rows {
        let number: i32 = row[2].parse().unwrap();
        let secret: String = c
            .query_one(
                "SELECT secret FROM extensions WHERE number = $1",
                &[&number],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(row[5], secret);
        assert!(!stderr.contains(&secret), "a secret on stderr");
    }

    // Errors: one line each on stderr, exit 1, nothing created; JSON sniffed from content.
    let bad = dir.join("bad");
    std::fs::write(&bad, r#"{"users": [{"name": "Pat", "email": "PAT@x.org"}, {"name": "X;", "email": "x@x.org", "extension": 1000}]}"#).unwrap();
    let (code, stdout, stderr) = out(&s.run(&["import", bad.to_str().unwrap()]).await);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "row 0, email: email_taken: a user with this email already exists",
            "row 1, name: validation_failed: must not contain ';' (forbidden: \" \\ ; [ ] < >)",
            "row 1, extension: extension_taken: this extension is already taken",
            "import failed: 3 error(s); nothing was imported",
        ],
        "{stderr}"
    );

    // Standard input, and what cannot be read.
    let mut cmd = tokio::process::Command::from(crate::support::process::command(dir, &s.vars));
    let mut child = cmd
        .args(["import", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"\xEF\xBB\xBFEmail,Name\r\nkim@x.org,Kim\r\n")
        .await
        .unwrap();
    drop(stdin);
    let (code, stdout, stderr) = out(&child.wait_with_output().await.unwrap());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("Kim,kim@x.org,1001,1,1001,"),
        "{stdout}"
    );
    let (code, _, stderr) = out(&s.run(&["import", "/nonexistent/file.csv"]).await);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("cannot read /nonexistent/file.csv"),
        "{stderr}"
    );

    // Export: CSV (the default) and JSON, as the HTTP route sends them.
    let (code, csv_out, _) = out(&s.run(&["export"]).await);
    assert_eq!(code, Some(0));
    let (header, rows) = sheet(csv_out.as_bytes());
    assert_eq!(
        header,
        [
            "id",
            "name",
            "email",
            "extension",
            "devices",
            "created_at",
            "transport",
            "tenant"
        ]
    );
    let numbers: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(numbers, ["1000", "1001", "1005"]);
    assert_eq!(rows[2][1], "Smith, Pat");
    let (code, json_out, _) = out(&s.run(&["export", "--format", "json"]).await);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(extensions(&v["users"]), [1000, 1001, 1005]);
    let (code, _, stderr) = out(&s.run(&["export", "--format", "xml"]).await);
    assert_eq!(code, Some(2), "{stderr}");
}
