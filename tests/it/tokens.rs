//! Named, scoped tokens and the audit: every documented operation with a token of each
//! scope (2xx or 403 exactly as the table says), the token routes and their errors, what
//! is refused with 401 (and changes nothing), who-changed-what, and the command line.

use crate::support::app::{call, create_token, Resp, TestApp, TOKEN};
use crate::support::process::Scratch;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

/// The spec's table: the scope each operation needs. Written out here, not read from the
/// document, so that the document's `x-scope` is checked against it.
const TABLE: &[(&str, &str, &str)] = &[
    ("POST", "/users", "write"),
    ("GET", "/users", "read"),
    ("GET", "/users/{id}", "read"),
    ("PATCH", "/users/{id}", "write"),
    ("DELETE", "/users/{id}", "write"),
    ("POST", "/users/{id}/secret", "write"),
    ("GET", "/extensions/available", "read"),
    ("POST", "/apply", "apply"),
    ("GET", "/apply/pending", "read"),
    ("GET", "/applies", "read"),
    ("GET", "/status", "read"),
    ("POST", "/tokens", "admin"),
    ("GET", "/tokens", "admin"),
    ("DELETE", "/tokens/{name}", "admin"),
    ("GET", "/audit", "read"),
    ("POST", "/users/import", "write"),
    ("GET", "/users/export", "read"),
    ("GET", "/events", "read"),
    ("GET", "/metrics", "metrics"),
    ("GET", "/nodes", "read"),
    ("POST", "/tenants", "admin"),
    ("GET", "/tenants", "admin"),
    ("GET", "/tenants/{slug}", "admin"),
    ("PATCH", "/tenants/{slug}", "admin"),
    ("DELETE", "/tenants/{slug}", "admin"),
];

const SCOPES: [&str; 5] = ["read", "write", "apply", "metrics", "admin"];

/// A request with `token` as the bearer (or no Authorization header at all for `None`).
#[tokio::test]
async fn every_operation_answers_2xx_or_403_exactly_as_the_scope_table_says() {
    let app = TestApp::spawn().await;
    let doc = app
        .send(Method::GET, "/openapi.json", None, &[], false)
        .await
        .body;
    let mut tokens = Vec::new();
    for s in SCOPES {
        tokens.push((
            s,
            create_token(&app, &format!("only-{s}"), &[s], None).await,
        ));
    }
    let mut walked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" || op.get("security") == Some(&json!([])) {
                continue;
            }
            if path == "/whoami" {
                // Any valid token, no scope: tests/it/console_serving.rs.
                continue;
            }
            let m = method.to_uppercase();
            let needed = TABLE
                .iter()
                .find(|(tm, tp, _)| *tm == m && tp == path)
                .map(|t| t.2)
                .unwrap_or_else(|| panic!("{m} {path} is not in the scope table"));
            assert_eq!(op["x-scope"], needed, "{m} {path}: x-scope");
            assert!(
                op["description"].as_str().unwrap().contains(needed),
                "{m} {path}: the description names no scope"
            );
            assert!(!op["responses"]["403"].is_null(), "{m} {path}: no 403");
            for (scope, token) in &tokens {
                // A fresh user and token for each call: DELETE and PATCH consume them.
                let n = walked.len();
                let user = app
                    .create_user(&format!("Scope {n}"), &format!("s{n}@x.org"))
                    .await;
                let victim = format!("victim-{n}");
                create_token(&app, &victim, &["read"], None).await;
                let tenant = format!("victim-{n}");
                let made = app
                    .post(
                        "/tenants",
                        json!({"slug": tenant, "name": "Victim", "extension_min": 100,
                               "extension_max": 199}),
                    )
                    .await;
                assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
                let url = path
                    .replace("{id}", &user["id"].to_string())
                    .replace("{name}", &victim)
                    .replace("{slug}", &tenant);
                let body = match (m.as_str(), path.as_str()) {
                    ("POST", "/users") => {
                        Some(json!({"name": "New", "email": format!("n{n}@x.org")}))
                    }
                    ("PATCH", _) => Some(json!({"name": "Renamed"})),
                    ("POST", "/tokens") => {
                        Some(json!({"name": format!("new-{n}"), "scopes": ["read"]}))
                    }
                    ("POST", "/tenants") => Some(json!({"slug": format!("new-{n}"),
                        "name": "New", "extension_min": 1, "extension_max": 99999999})),
                    ("POST", "/users/import") => Some(
                        json!({"users": [{"name": "Imported", "email": format!("i{n}@x.org")}]}),
                    ),
                    ("POST", _) => Some(json!({})),
                    _ => None,
                };
                let method = Method::from_bytes(m.as_bytes()).unwrap();
                if path == "/events" && *scope == needed {
                    // A stream never ends: its head says it was allowed.
                    let sse = crate::support::sse::Sse::open_as(app.addr, token, None).await;
                    assert_eq!(sse.status(), 200, "{m} {path} with {scope}: {}", sse.head);
                    walked.push(format!("{m} {path} {scope}"));
                    continue;
                }
                let r = call(&app, token, method, &url, body).await;
                if *scope == needed {
                    assert!(
                        r.status.is_success(),
                        "{m} {path} with {scope}: {} {}",
                        r.status,
                        r.body
                    );
                } else {
                    assert_eq!(
                        r.error(),
                        (StatusCode::FORBIDDEN, "forbidden"),
                        "{m} {path} with {scope}"
                    );
                    let msg = r.body["error"]["message"].as_str().unwrap();
                    assert!(msg.contains(&format!("'{needed}'")), "{msg}");
                }
                walked.push(format!("{m} {path} {scope}"));
            }
        }
    }
    assert_eq!(walked.len(), TABLE.len() * SCOPES.len(), "every row walked");
    // The bootstrap token has every scope.
    let r = app.get("/tokens").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_are_created_once_listed_without_secrets_and_revoked_at_once() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/tokens",
            json!({"name": "dash", "scopes": ["read"], "expires_in_days": 90}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pbxp_") && token.len() == 69, "{token}");
    assert_eq!(r.body["scopes"], json!(["read"]));
    assert!(r.body["expires_at"].is_string());

    // Only the hash is stored.
    let c = app.db().client().await;
    let row = c
        .query_one("SELECT hash FROM api_tokens WHERE name = 'dash'", &[])
        .await
        .unwrap();
    let hash: Vec<u8> = row.get(0);
    assert_eq!(hash.len(), 32);
    let dump: String = c
        .query_one("SELECT (SELECT json_agg(t)::text FROM api_tokens t)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(&token[5..]));

    assert_eq!(
        call(&app, &token, Method::GET, "/users", None).await.status,
        StatusCode::OK
    );
    // last_used_at is written by a task of its own, just after the request.
    let mut list = app.get("/tokens").await;
    for _ in 0..100 {
        if list.body["tokens"][0]["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        list = app.get("/tokens").await;
    }
    assert_eq!(list.status, StatusCode::OK);
    let listed = &list.body["tokens"][0];
    assert_eq!(listed["name"], "dash");
    assert!(listed["last_used_at"].is_string(), "{listed}");
    let raw = String::from_utf8_lossy(&list.raw);
    assert!(!raw.contains(&token[5..]) && !raw.contains("hash"), "{raw}");
    assert_eq!(
        listed.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "created_at",
            "expires_at",
            "last_used_at",
            "name",
            "scopes",
            "tenant"
        ]
    );
    assert!(listed["tenant"].is_null(), "{listed}");

    // Errors.
    let cases = [
        (
            json!({"name": "dash", "scopes": ["read"]}),
            StatusCode::CONFLICT,
            "token_name_taken",
            None,
        ),
        (
            json!({"name": "x", "scopes": ["root"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("scopes"),
        ),
        (
            json!({"name": "x", "scopes": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("scopes"),
        ),
        (
            json!({"name": "x", "scopes": ["read"], "expires_in_days": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("expires_in_days"),
        ),
        (
            json!({"name": "x", "scopes": ["read"], "expires_in_days": -3}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("expires_in_days"),
        ),
        (
            json!({"name": "bootstrap", "scopes": ["read"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("name"),
        ),
        (
            json!({"name": "cli", "scopes": ["read"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("name"),
        ),
        (
            json!({"name": "a b", "scopes": ["read"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("name"),
        ),
        (
            json!({"name": "a".repeat(65), "scopes": ["read"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("name"),
        ),
        (
            json!({"name": "x", "scopes": ["read"], "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("extra"),
        ),
    ];
    for (body, status, c_, field) in cases {
        let r = app.post("/tokens", body.clone()).await;
        assert_eq!(r.error(), (status, c_), "{body}");
        if let Some(f) = field {
            assert_eq!(r.body["error"]["field"], f, "{body}");
        }
    }
    assert_eq!(
        app.get("/tokens").await.body["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    assert_eq!(
        app.delete("/tokens/dash").await.status,
        StatusCode::NO_CONTENT
    );
    let r = call(&app, &token, Method::GET, "/users", None).await;
    assert_eq!(r.error(), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert_eq!(
        app.delete("/tokens/dash").await.error(),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        app.delete("/tokens/no%20such").await.error(),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // The same name again: the new token works, the old one still does not.
    let again = create_token(&app, "dash", &["read"], None).await;
    assert_ne!(again, token);
    assert_eq!(
        call(&app, &again, Method::GET, "/users", None).await.status,
        StatusCode::OK
    );
    let r = call(&app, &token, Method::GET, "/users", None).await;
    assert_eq!(r.error(), (StatusCode::UNAUTHORIZED, "unauthorized"));
}

#[tokio::test]
async fn bad_or_dead_credentials_are_401_and_change_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user("Kept", "kept@x.org").await;
    let id = user["id"].to_string();
    let writer = create_token(&app, "writer", &["write", "read"], None).await;
    let expired = create_token(&app, "expired", &["write"], None).await;
    let c = app.db().client().await;
    c.execute(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'expired'",
        &[],
    )
    .await
    .unwrap();
    let recreated_old = create_token(&app, "again", &["write"], None).await;
    assert_eq!(
        app.delete("/tokens/again").await.status,
        StatusCode::NO_CONTENT
    );
    create_token(&app, "again", &["write"], None).await;
    let before = app.db_users().await;
    let audit_before = app.get("/audit").await.body;

    let long = format!("Bearer {}", "a".repeat(1100));
    let long_named = format!("Bearer{}{writer}", " ".repeat(1030));
    let expired_h = format!("Bearer {expired}");
    let old_h = format!("Bearer {recreated_old}");
    // The last hex digit changed (to 1 when it is 0: the same token would pass).
    let other = if writer.ends_with('0') { '1' } else { '0' };
    let wrong = format!("Bearer {}{other}", &writer[..writer.len() - 1]);
    let lower_bootstrap = format!("Bearer {}", TOKEN.to_uppercase());
    let headers: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("bearer only", b"Bearer".to_vec()),
        ("bearer space", b"Bearer   ".to_vec()),
        ("basic", format!("Basic {writer}").into_bytes()),
        ("no scheme", writer.clone().into_bytes()),
        ("over 1 KiB", long.into_bytes()),
        ("valid token padded past 1 KiB", long_named.into_bytes()),
        ("non-ASCII", "Bearer pbxp_é".as_bytes().to_vec()),
        (
            "obs-text",
            [b"Bearer ".as_slice(), writer.as_bytes(), &[0xff]].concat(),
        ),
        ("expired", expired_h.into_bytes()),
        ("revoked, name re-created", old_h.into_bytes()),
        ("one digit off", wrong.into_bytes()),
        ("bootstrap in other case", lower_bootstrap.into_bytes()),
    ];
    for (what, value) in headers {
        let value = hyper::header::HeaderValue::from_bytes(&value).unwrap();
        for (method, path, body) in [
            (
                Method::POST,
                "/users".to_owned(),
                Some(json!({"name": "X", "email": "x@x.org"})),
            ),
            (Method::DELETE, format!("/users/{id}"), None),
            (Method::POST, format!("/users/{id}/secret"), Some(json!({}))),
            (
                Method::POST,
                "/tokens".to_owned(),
                Some(json!({"name": "evil", "scopes": ["admin"]})),
            ),
        ] {
            let r = send_raw(&app, method.clone(), &path, body, value.clone()).await;
            assert_eq!(
                r.error(),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{what}: {method} {path}"
            );
        }
    }
    assert_eq!(app.db_users().await, before, "users intact");
    assert_eq!(
        app.get("/audit").await.body,
        audit_before,
        "nothing audited"
    );
    let names: Vec<String> = c
        .query(
            "SELECT name FROM api_tokens WHERE revoked_at IS NULL ORDER BY name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["again", "expired", "writer"]);
    // The writer itself works: the refusals above were about the header.
    let r = call(&app, &writer, Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    auth: hyper::header::HeaderValue,
) -> Resp {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{}{}", app.addr, path))
        .header("authorization", auth);
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            serde_json::to_vec(&b).unwrap()
        }
        None => Vec::new(),
    };
    let resp = client
        .request(req.body(Full::new(bytes.into())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let raw = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
    }
}

#[tokio::test]
async fn the_audit_names_who_changed_what_newest_first() {
    let app = TestApp::spawn().await;
    let writer = create_token(&app, "provisioner", &["write"], None).await;
    let applier = create_token(&app, "deployer", &["apply"], None).await;
    let r = call(
        &app,
        &writer,
        Method::POST,
        "/users",
        Some(json!({"name": "Ann", "email": "ann@x.org"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let secret = r.body["sip_password"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_i64().unwrap();
    let other = app.create_user("Bob", "bob@x.org").await["id"]
        .as_i64()
        .unwrap();
    let r = call(
        &app,
        &writer,
        Method::PATCH,
        &format!("/users/{id}"),
        Some(json!({"name": "Ann B", "devices": 2})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &app,
        &writer,
        Method::POST,
        &format!("/users/{id}/secret"),
        Some(json!({})),
    )
    .await;
    let secret2 = r.body["sip_password"].as_str().unwrap().to_owned();
    let dry = call(
        &app,
        &applier,
        Method::POST,
        "/apply?dry_run=true",
        Some(json!({})),
    )
    .await;
    assert_eq!(dry.body["actor"], "deployer");
    let applied = call(&app, &applier, Method::POST, "/apply", Some(json!({}))).await;
    assert_eq!(
        (
            applied.body["status"].as_str(),
            applied.body["actor"].as_str()
        ),
        (Some("applied"), Some("deployer"))
    );
    let r = call(&app, &writer, Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.delete("/tokens/deployer").await.status,
        StatusCode::NO_CONTENT
    );

    let audit = app.get("/audit").await;
    assert_eq!(audit.status, StatusCode::OK);
    let rows: Vec<(String, String)> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = [
        ("bootstrap", "token.revoked"),
        ("provisioner", "user.deleted"),
        ("deployer", "apply"),
        ("deployer", "apply.dry_run"),
        ("provisioner", "user.secret_rotated"),
        ("provisioner", "user.updated"),
        ("bootstrap", "user.created"),
        ("provisioner", "user.created"),
        ("bootstrap", "token.created"),
        ("bootstrap", "token.created"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(rows, expect);
    let e = &audit.body["entries"];
    assert_eq!(e[0]["token"], "deployer");
    assert_eq!(e[2]["apply_id"], applied.body["id"]);
    assert_eq!(e[5]["fields"], json!(["name", "devices"]));
    assert!(e[0]["at"].is_string());
    let raw = String::from_utf8_lossy(&audit.raw);
    for s in [
        secret.as_str(),
        secret2.as_str(),
        &writer[5..],
        &applier[5..],
    ] {
        assert!(!raw.contains(s), "a secret in the audit");
    }

    // user= follows one user; limit= cuts.
    let mine = app.get(&format!("/audit?user={id}")).await.body;
    let actions: Vec<&str> = mine["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.deleted",
            "user.secret_rotated",
            "user.updated",
            "user.created"
        ]
    );
    let bob = app.get(&format!("/audit?user={other}&limit=1")).await.body;
    assert_eq!(bob["entries"].as_array().unwrap().len(), 1);
    assert_eq!(bob["entries"][0]["user_id"], other);
    let r = app.get("/audit?limit=0").await;
    assert_eq!(
        (r.error(), r.body["error"]["field"].as_str()),
        (
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Some("limit")
        )
    );
    let r = app.get("/audit?user=x").await;
    assert_eq!(r.body["error"]["field"], "user");

    // actor= follows one actor, exactly (with user= too); a name no actor can have: 422.
    let actions_of = |body: &Value| -> Vec<String> {
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e["actor"].as_str().unwrap(), e["action"]))
            .collect()
    };
    let deployer = app.get("/audit?actor=deployer").await.body;
    assert_eq!(
        actions_of(&deployer),
        ["deployer \"apply\"", "deployer \"apply.dry_run\""]
    );
    let both = app
        .get(&format!("/audit?actor=provisioner&user={id}&limit=2"))
        .await
        .body;
    assert_eq!(
        actions_of(&both),
        [
            "provisioner \"user.deleted\"",
            "provisioner \"user.secret_rotated\""
        ]
    );
    assert_eq!(
        app.get("/audit?actor=bootstrap").await.body["entries"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        app.get("/audit?actor=deploy").await.body["entries"],
        json!([])
    );
    for bad in ["a%20b", "x'%3B--", ""] {
        let r = app.get(&format!("/audit?actor={bad}")).await;
        assert_eq!(
            (r.error(), r.body["error"]["field"].as_str()),
            (
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
                Some("actor")
            ),
            "{bad}"
        );
    }

    // The apply record keeps its actor.
    let applies = app.get("/applies").await.body;
    assert_eq!(applies["applies"][0]["actor"], "deployer");
}

#[tokio::test]
async fn the_command_line_creates_lists_and_revokes_tokens() {
    let s = Scratch::new().await;
    let out = s
        .run(&[
            "token",
            "create",
            "ci.bot",
            "--scopes",
            "read,apply",
            "--expires-in",
            "90d",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("pbxp_") && token.len() == 69, "{token}");
    let dup = s
        .run(&["token", "create", "ci.bot", "--scopes", "read"])
        .await;
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    for bad in [
        vec!["token", "create", "x", "--scopes", "read,root"],
        vec![
            "token",
            "create",
            "x",
            "--scopes",
            "read",
            "--expires-in",
            "0d",
        ],
        vec!["token", "create", "cli", "--scopes", "read"],
    ] {
        let out = s.run(&bad).await;
        assert!(!out.status.success(), "{bad:?}");
    }
    let list = s.run(&["token", "list"]).await;
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.status.success());
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("ci.bot") && text.contains("read,apply"),
        "{text}"
    );
    assert!(!text.contains(&token[5..]));
    assert!(s.run(&["token", "revoke", "ci.bot"]).await.status.success());
    assert_eq!(
        s.run(&["token", "revoke", "ci.bot"]).await.status.code(),
        Some(1)
    );
    let c = s.db.client().await;
    let actors: Vec<(String, String)> = c
        .query("SELECT actor, action FROM audit_log ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        actors,
        [
            ("cli".to_string(), "token.created".to_string()),
            ("cli".into(), "token.revoked".into())
        ]
    );
}

#[tokio::test]
async fn an_import_is_audited_under_the_token_that_made_it() {
    let app = TestApp::spawn().await;
    let token = create_token(&app, "provisioning", &["write"], None).await;
    let body = json!({"users": [{"name": "Imp A", "email": "ia@x.org"}, {"name": "Imp B", "email": "ib@x.org"}]});
    let r = call(&app, &token, Method::POST, "/users/import", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let audit = app.get("/audit").await.body;
    let imported: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("audit entries")
        .iter()
        .filter(|e| e["action"] == "user.imported")
        .collect();
    assert_eq!(imported.len(), 2, "{audit}");
    assert!(
        imported.iter().all(|e| e["actor"] == "provisioning"),
        "{audit}"
    );
    assert!(!audit.to_string().contains(&token));
}
