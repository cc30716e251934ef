//! Tokens bound to one tenant: created from the command line and over HTTP, and held to
//! their tenant on every route — another tenant's user, token or tenant in a path is 404
//! `not_found` (never 403), another tenant named in a body or a query is 422
//! `validation_failed` field `tenant`, creating or deleting tenants is 403 `forbidden` —
//! with the data intact afterwards. The walk over every documented operation with a
//! bound token of every scope never sees or changes another tenant's user.

use crate::support::app::{call, create_tenant as tenant, create_token, Http, Resp, TestApp};
use crate::support::process::Scratch;
use hyper::{Method, StatusCode};
use serde_json::json;

async fn send_raw(
    http: &Http,
    token: &str,
    method: Method,
    path: &str,
    ct: &str,
    body: &str,
) -> Resp {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    http.send(
        method,
        path,
        Some((ct, body.to_owned().into())),
        &headers,
        false,
    )
    .await
}

async fn user_in(app: &TestApp, tenant: &str, name: &str) -> i64 {
    let r = app
        .post(
            "/users",
            json!({"name": name, "email": format!("{name}@{tenant}.org"), "tenant": tenant}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_i64().unwrap()
}

/// Every user, its tenant, name and extension, as the database holds them: what must be
/// unchanged after a refused request.
async fn snapshot(app: &TestApp) -> Vec<(i64, String, String, i32, String)> {
    let c = app.db().client().await;
    c.query(
        "SELECT u.id, t.slug, u.name, e.number, e.secret FROM users u
           JOIN tenants t ON t.id = u.tenant_id JOIN extensions e ON e.user_id = u.id
          ORDER BY u.id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

/// Two companies, a user in each and one in `default`, and an admin token for acme.
struct World {
    app: TestApp,
    acme: String,
    acme_user: i64,
    beta_user: i64,
    default_user: i64,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    tenant(&app, "acme").await;
    tenant(&app, "beta").await;
    let acme_user = user_in(&app, "acme", "ann").await;
    let beta_user = user_in(&app, "beta", "bob").await;
    let default_user = user_in(&app, "default", "dee").await;
    let acme = create_token(
        &app,
        "acme-admin",
        &["read", "write", "apply", "admin"],
        Some("acme"),
    )
    .await;
    World {
        app,
        acme,
        acme_user,
        beta_user,
        default_user,
    }
}

#[tokio::test]
async fn another_tenants_user_is_not_found_and_stays_as_it_was() {
    let w = world().await;
    let (app, t) = (&w.app, w.acme.as_str());
    let before = snapshot(app).await;
    for other in [w.beta_user, w.default_user] {
        for (m, path, body) in [
            (Method::GET, format!("/users/{other}"), None),
            (
                Method::PATCH,
                format!("/users/{other}"),
                Some(json!({"name": "Hijacked"})),
            ),
            (Method::DELETE, format!("/users/{other}"), None),
            (Method::POST, format!("/users/{other}/secret"), None),
        ] {
            let r = call(app, t, m.clone(), &path, body).await;
            assert_eq!(
                r.error(),
                (StatusCode::NOT_FOUND, "not_found"),
                "{m} {path}"
            );
        }
    }
    // A user that does not exist at all answers the same: nothing tells them apart.
    let r = call(app, t, Method::GET, "/users/999999", None).await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(snapshot(app).await, before);

    // Its own user: every operation works.
    let own = w.acme_user;
    let r = call(app, t, Method::GET, &format!("/users/{own}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["tenant"], "acme");
    let r = call(
        app,
        t,
        Method::PATCH,
        &format!("/users/{own}"),
        Some(json!({"name": "Ann B"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(app, t, Method::POST, &format!("/users/{own}/secret"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(app, t, Method::DELETE, &format!("/users/{own}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
}

#[tokio::test]
async fn lists_creates_and_queries_stay_in_the_tokens_tenant() {
    let w = world().await;
    let (app, t) = (&w.app, w.acme.as_str());
    let r = call(app, t, Method::GET, "/users", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let tenants: Vec<&str> = r.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme"]);
    assert_eq!(r.body["total"], 1);
    let r = call(app, t, Method::GET, "/users?tenant=acme", None).await;
    assert_eq!(r.body["total"], 1, "{}", r.body);
    for q in ["beta", "default", "nope"] {
        let r = call(app, t, Method::GET, &format!("/users?tenant={q}"), None).await;
        assert_eq!(
            r.refusal(),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "tenant"
            ),
            "{q}"
        );
    }

    let before = snapshot(app).await;
    for other in ["beta", "default"] {
        let r = call(
            app,
            t,
            Method::POST,
            "/users",
            Some(json!({"name": "X", "email": "x@x.org", "tenant": other})),
        )
        .await;
        assert_eq!(
            r.refusal(),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "tenant"
            ),
            "{other}"
        );
    }
    assert_eq!(snapshot(app).await, before);
    // Naming none or its own creates in its tenant.
    for body in [
        json!({"name": "Cy", "email": "cy@x.org"}),
        json!({"name": "Di", "email": "di@x.org", "tenant": "acme"}),
    ] {
        let r = call(app, t, Method::POST, "/users", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["tenant"], "acme");
        assert_eq!(
            r.body["sip_username"],
            format!("acme-{}", r.body["extension"])
        );
    }

    // The audit: only acme's rows, each saying so.
    let r = call(app, t, Method::GET, "/audit", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let entries = r.body["entries"].as_array().unwrap();
    assert!(entries.len() >= 3, "{}", r.body);
    for e in entries {
        assert_eq!(e["tenant"], "acme", "{e}");
    }
    let r = call(
        app,
        t,
        Method::GET,
        &format!("/audit?user={}", w.beta_user),
        None,
    )
    .await;
    assert_eq!(r.body["entries"], json!([]));
    // The bootstrap token sees every tenant's rows.
    let all = app.get("/audit").await.body;
    let about_beta = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["tenant"] == "beta")
        .count();
    assert!(about_beta >= 1, "{all}");
}

#[tokio::test]
async fn import_and_export_are_the_tokens_tenants_only() {
    let w = world().await;
    let (app, t) = (&w.app, w.acme.as_str());
    let before = snapshot(app).await;
    let bad = "name,email,tenant\nOk,ok@x.org,\nSneak,sneak@x.org,beta\n";
    let r = send_raw(app, t, Method::POST, "/users/import", "text/csv", bad).await;
    assert_eq!(
        r.error(),
        (StatusCode::UNPROCESSABLE_ENTITY, "import_invalid"),
        "{}",
        r.body
    );
    let errors = r.body["error"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", r.body);
    // CSV rows are counted as the file's lines, the header being line 1.
    assert_eq!(errors[0]["row"], 3);
    assert_eq!(errors[0]["field"], "tenant");
    let r = send_raw(
        app,
        t,
        Method::POST,
        "/users/import",
        "application/json",
        r#"{"users": [{"name": "Sneak", "email": "s@x.org", "tenant": "default"}]}"#,
    )
    .await;
    assert_eq!(
        r.error(),
        (StatusCode::UNPROCESSABLE_ENTITY, "import_invalid")
    );
    assert_eq!(r.body["error"]["errors"][0]["field"], "tenant");
    assert_eq!(snapshot(app).await, before);

    // Rows naming no tenant (CSV without the column, JSON without the member) are acme's.
    let r = send_raw(
        app,
        t,
        Method::POST,
        "/users/import",
        "text/csv",
        "name,email\nEve,eve@x.org\n",
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    let r = send_raw(
        app,
        t,
        Method::POST,
        "/users/import",
        "application/json",
        r#"{"users": [{"name": "Fay", "email": "fay@x.org"}, {"name": "Gil", "email": "gil@x.org", "tenant": "acme"}]}"#,
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    let after = snapshot(app).await;
    let acme: Vec<&str> = after
        .iter()
        .filter(|u| u.1 == "acme")
        .map(|u| u.2.as_str())
        .collect();
    assert_eq!(acme, ["ann", "Eve", "Fay", "Gil"]);
    assert_eq!(after.len(), before.len() + 3);

    // Export: acme's users only.
    let r = call(app, t, Method::GET, "/users/export?format=json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&r.raw).into_owned();
    assert!(text.contains("Eve") && text.contains("ann"), "{text}");
    assert!(!text.contains("bob") && !text.contains("dee"), "{text}");
    let r = call(app, t, Method::GET, "/users/export?format=csv", None).await;
    let text = String::from_utf8_lossy(&r.raw).into_owned();
    assert_eq!(text.lines().count(), 1 + 4, "{text}");
}

#[tokio::test]
async fn a_bound_token_manages_only_its_tenants_tokens() {
    let w = world().await;
    let (app, t) = (&w.app, w.acme.as_str());
    create_token(app, "beta-admin", &["admin"], Some("beta")).await;
    create_token(app, "host-dash", &["read"], None).await;

    // Creating: its own tenant, whether named or not; another tenant, 422.
    let r = call(
        app,
        t,
        Method::POST,
        "/tokens",
        Some(json!({"name": "acme-dash", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["tenant"], "acme");
    let acme_dash = r.body["token"].as_str().unwrap().to_owned();
    let r = call(
        app,
        t,
        Method::POST,
        "/tokens",
        Some(json!({"name": "acme-ci", "scopes": ["write"], "tenant": "acme"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for other in ["beta", "default", "nope"] {
        let r = call(
            app,
            t,
            Method::POST,
            "/tokens",
            Some(json!({"name": "sneak", "scopes": ["read"], "tenant": other})),
        )
        .await;
        assert_eq!(
            r.refusal(),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "tenant"
            ),
            "{other}"
        );
    }
    // An unbound admin naming an unknown tenant: 422 too.
    let r = app
        .post(
            "/tokens",
            json!({"name": "x", "scopes": ["read"], "tenant": "nope"}),
        )
        .await;
    assert_eq!(
        r.refusal(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "tenant"
        )
    );

    // Listing: acme's only.
    let r = call(app, t, Method::GET, "/tokens", None).await;
    let names: Vec<&str> = r.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-admin", "acme-ci", "acme-dash"]);
    for t in r.body["tokens"].as_array().unwrap() {
        assert_eq!(t["tenant"], "acme");
    }
    let all = app.get("/tokens").await.body;
    assert_eq!(all["tokens"].as_array().unwrap().len(), 5);
    let host = all["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "host-dash")
        .unwrap();
    assert!(host["tenant"].is_null());

    // Revoking another tenant's or an unbound token: 404, and it still works.
    for other in ["beta-admin", "host-dash"] {
        let r = call(app, t, Method::DELETE, &format!("/tokens/{other}"), None).await;
        assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found"), "{other}");
    }
    assert_eq!(
        app.get("/tokens").await.body["tokens"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // Its own: revoked at once.
    let r = call(app, t, Method::DELETE, "/tokens/acme-dash", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(app, &acme_dash, Method::GET, "/users", None).await;
    assert_eq!(r.error(), (StatusCode::UNAUTHORIZED, "unauthorized"));

    // The audit rows of token changes carry the token's tenant.
    let audit = app.get("/audit").await.body;
    let revoked = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "token.revoked")
        .unwrap();
    assert_eq!(revoked["tenant"], "acme");
}

#[tokio::test]
async fn a_bound_admin_sees_only_its_tenant_and_cannot_create_or_delete_tenants() {
    let w = world().await;
    let (app, t) = (&w.app, w.acme.as_str());
    let r = call(app, t, Method::GET, "/tenants", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let slugs: Vec<&str> = r.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme"]);
    let r = call(app, t, Method::GET, "/tenants/acme", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        app,
        t,
        Method::PATCH,
        "/tenants/acme",
        Some(json!({"name": "Acme Inc"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let before = app.get("/tenants").await.body;
    for other in ["beta", "default", "nope"] {
        let path = format!("/tenants/{other}");
        let r = call(app, t, Method::GET, &path, None).await;
        assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found"), "{path}");
        let r = call(app, t, Method::PATCH, &path, Some(json!({"name": "Mine"}))).await;
        assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found"), "{path}");
        let r = call(app, t, Method::DELETE, &path, None).await;
        assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
    let r = call(
        app,
        t,
        Method::POST,
        "/tenants",
        Some(json!({"slug": "gamma", "name": "G", "extension_min": 1, "extension_max": 9})),
    )
    .await;
    assert_eq!(r.error(), (StatusCode::FORBIDDEN, "forbidden"));
    let r = call(app, t, Method::DELETE, "/tenants/acme", None).await;
    assert_eq!(r.error(), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(app.get("/tenants").await.body, before);
}

#[tokio::test]
async fn the_command_line_binds_a_token_to_a_tenant() {
    let s = Scratch::new().await;
    assert!(s.run(&["migrate"]).await.status.success());
    let c = s.db.client().await;
    c.execute(
        "INSERT INTO tenants (slug, name, extension_min, extension_max)
         VALUES ('acme', 'Acme', 100, 199)",
        &[],
    )
    .await
    .unwrap();
    let out = s
        .run(&[
            "token",
            "create",
            "acme-admin",
            "--tenant",
            "acme",
            "--scopes",
            "read,write,apply,admin",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("pbxp_"), "{token}");
    let bound: Option<String> = c
        .query_one(
            "SELECT t.slug FROM api_tokens a JOIN tenants t ON t.id = a.tenant_id
              WHERE a.name = 'acme-admin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bound.as_deref(), Some("acme"));
    for bad in ["nope", "Not_A_Slug"] {
        let out = s
            .run(&["token", "create", "x", "--tenant", bad, "--scopes", "read"])
            .await;
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("--tenant"), "{err}");
    }
    let n: i64 = c
        .query_one("SELECT count(*) FROM api_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let list = s.run(&["token", "list"]).await;
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(text.contains("TENANT") && text.contains("acme"), "{text}");
}

/// The walk of every documented operation (tests/it/tokens.rs walks the scopes), now with
/// a token bound to acme holding each scope in turn, every `{id}` another tenant's user:
/// whatever the answer, that user and every other tenant's data stay exactly as they were,
/// and no answer holds another tenant's user.
#[tokio::test]
async fn the_walk_with_a_bound_token_never_reaches_another_tenants_user() {
    let w = world().await;
    let app = &w.app;
    let doc = app
        .send(Method::GET, "/openapi.json", None, &[], false)
        .await
        .body;
    let scopes = ["read", "write", "apply", "metrics", "admin"];
    let mut tokens = Vec::new();
    for s in scopes {
        tokens.push((
            s,
            create_token(app, &format!("walk-{s}"), &[s], Some("acme")).await,
        ));
    }
    create_token(app, "beta-victim", &["read"], Some("beta")).await;
    let others = |snap: &[(i64, String, String, i32, String)]| {
        snap.iter()
            .filter(|u| u.1 != "acme")
            .cloned()
            .collect::<Vec<_>>()
    };
    let before = others(&snapshot(app).await);
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" || op.get("security") == Some(&json!([])) {
                continue;
            }
            if path == "/events" {
                // Its filtering by tenant is another change's.
                continue;
            }
            if path == "/whoami" {
                // Names the caller only, any valid token: tests/it/console_serving.rs.
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (scope, tok) in &tokens {
                for victim in [w.beta_user, w.default_user] {
                    let url = path
                        .replace("{id}", &victim.to_string())
                        .replace("{name}", "beta-victim")
                        .replace("{slug}", "beta");
                    let body = match (method.as_str(), path.as_str()) {
                        ("post", "/users") => Some(json!({"name": "New",
                            "email": format!("n{walked}@x.org"), "tenant": "beta"})),
                        ("patch", _) => Some(json!({"name": "Renamed"})),
                        ("post", "/tokens") => Some(json!({"name": format!("w{walked}"),
                            "scopes": ["read"], "tenant": "beta"})),
                        ("post", "/tenants") => Some(json!({"slug": format!("w{walked}"),
                            "name": "W", "extension_min": 1, "extension_max": 9})),
                        ("post", "/users/import") => Some(json!({"users": [
                            {"name": "Imp", "email": format!("i{walked}@x.org"),
                             "tenant": "beta"}]})),
                        ("post", _) => Some(json!({})),
                        _ => None,
                    };
                    let r = call(app, tok, m.clone(), &url, body).await;
                    let text = String::from_utf8_lossy(&r.raw);
                    assert!(
                        !text.contains("bob@beta.org") && !text.contains("dee@default.org"),
                        "{m} {url} with {scope}: {text}"
                    );
                    // The scope is checked first, as for an unbound token; with it, each
                    // route answers a request reaching into beta or default exactly.
                    let expected = if op["x-scope"] != *scope {
                        Some((StatusCode::FORBIDDEN, "forbidden"))
                    } else if path.contains('{') {
                        Some((StatusCode::NOT_FOUND, "not_found"))
                    } else {
                        match (method.as_str(), path.as_str()) {
                            ("post", "/users") | ("post", "/tokens") => {
                                Some((StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"))
                            }
                            ("post", "/users/import") => {
                                Some((StatusCode::UNPROCESSABLE_ENTITY, "import_invalid"))
                            }
                            ("post", "/tenants") => Some((StatusCode::FORBIDDEN, "forbidden")),
                            _ => None,
                        }
                    };
                    match expected {
                        Some(e) => assert_eq!(r.error(), e, "{m} {url} with {scope}: {text}"),
                        None => assert!(
                            r.status.is_success(),
                            "{m} {url} with {scope}: {} {text}",
                            r.status
                        ),
                    }
                    assert_eq!(
                        others(&snapshot(app).await),
                        before,
                        "{m} {url} with {scope}"
                    );
                    walked += 1;
                }
            }
        }
    }
    assert!(walked > 100, "{walked}");
    // beta's token and tenant are still there.
    let tokens = app.get("/tokens").await.body;
    assert!(tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "beta-victim"));
    assert_eq!(app.get("/tenants/beta").await.status, StatusCode::OK);
}

/// Migration 0010 on a database holding tokens and audit rows from before: every token
/// stays unbound and keeps working, each audit row about a user that still exists gets
/// that user's tenant, a deleted user's rows stay about none (seen by unbound callers
/// only), and nothing else changes.
#[tokio::test]
async fn migration_0010_keeps_tokens_unbound_and_places_old_audit_rows() {
    use crate::support::app::TestDb;
    let db = TestDb::create().await;
    let c = db.client().await;
    db.migrate_to(9).await;
    c.batch_execute(
        "INSERT INTO tenants (slug, name, extension_min, extension_max)
             VALUES ('acme', 'Acme', 100, 199);
         SELECT * FROM portal_create_user('Ann', 'ann@x.org', NULL, 1000, 1999,
             'secret-of-ann-0123456789', 1::smallint, 'transport-udp', 1);
         SELECT * FROM portal_create_user('Bob', 'bob@x.org', NULL, 1000, 1999,
             'secret-of-bob-0123456789', 1::smallint, 'transport-udp',
             (SELECT id FROM tenants WHERE slug = 'acme'));
         INSERT INTO api_tokens (name, hash, scopes, created_by)
             VALUES ('old', sha256(convert_to('pbxp_' || repeat('ab', 32), 'UTF8')), '{read,admin}', 'cli');
         INSERT INTO audit_log (actor, action, user_id)
             SELECT 'bootstrap', 'user.created', id FROM users;
         INSERT INTO audit_log (actor, action, user_id) VALUES ('old', 'user.deleted', 424242);
         INSERT INTO audit_log (actor, action, token) VALUES ('cli', 'token.created', 'old');",
    )
    .await
    .unwrap();
    let app = TestApp::start_on(db, tempfile::tempdir().unwrap(), &[]).await;
    let c = app.db().client().await;
    let rows: Vec<(String, Option<i64>, Option<String>)> = c
        .query(
            "SELECT a.action, a.user_id, t.slug FROM audit_log a
               LEFT JOIN tenants t ON t.id = a.tenant_id ORDER BY a.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let places: Vec<Option<&str>> = rows.iter().map(|r| r.2.as_deref()).collect();
    assert_eq!(
        places,
        [Some("default"), Some("acme"), None, None],
        "{rows:?}"
    );
    // The old token is unbound and works as before.
    let old = format!("pbxp_{}", "ab".repeat(32));
    let r = call(&app, &old, Method::GET, "/tokens", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["tokens"][0]["tenant"].is_null());
    let r = call(&app, &old, Method::GET, "/users", None).await;
    assert_eq!(r.body["total"], 2);
    let r = call(&app, &old, Method::GET, "/audit", None).await;
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 4);
}

/// What a bound token does without touching a user or a token (an apply) is recorded
/// under its tenant, so its admin finds it in `GET /audit`.
#[tokio::test]
async fn an_apply_by_a_bound_token_is_in_its_tenants_audit() {
    let w = world().await;
    let (app, t) = (&w.app, w.acme.as_str());
    let r = call(app, t, Method::POST, "/apply", None).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    let r = call(app, t, Method::GET, "/audit", None).await;
    let apply = r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "apply")
        .cloned();
    let apply = apply.unwrap_or_else(|| panic!("{}", r.body));
    assert_eq!(apply["tenant"], "acme");
    assert_eq!(apply["actor"], "acme-admin");
}

/// `GET /extensions/available` with a bound token: its tenant's range and free numbers,
/// not the default tenant's numbering.
#[tokio::test]
async fn a_bound_token_sees_its_tenants_free_numbers() {
    let w = world().await;
    let (app, t) = (&w.app, w.acme.as_str());
    let r = call(app, t, Method::GET, "/extensions/available", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"ranges": [[101, 199]], "free": 99, "min": 100, "max": 199})
    );
    let host = app.get("/extensions/available").await.body;
    assert_ne!(host["min"], 100, "{host}");
}

/// An Idempotency-Key is compared with the tenant a request acts in: another tenant's (or
/// the host's) request with the same key and body is refused, never answered with that
/// request's user and secret; the bound caller's own retry is replayed.
#[tokio::test]
async fn an_idempotency_key_never_replays_another_tenants_user() {
    let w = world().await;
    let (app, t) = (&w.app, w.acme.as_str());
    let body = json!({"name": "Kay", "email": "kay@x.org"});
    let host = app
        .post_with("/users", body.clone(), &[("idempotency-key", "k-1")])
        .await;
    assert_eq!(host.status, StatusCode::CREATED, "{}", host.body);
    assert_eq!(host.body["tenant"], "default");
    let post = |key: &'static str| {
        let auth = format!("Bearer {t}");
        let bytes: bytes::Bytes = serde_json::to_vec(&body).unwrap().into();
        async move {
            app.send(
                Method::POST,
                "/users",
                Some(("application/json", bytes)),
                &[("authorization", auth.as_str()), ("idempotency-key", key)],
                false,
            )
            .await
        }
    };
    let before = snapshot(app).await;
    let r = post("k-1").await;
    assert_eq!(
        r.error(),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        "{}",
        r.body
    );
    assert!(!String::from_utf8_lossy(&r.raw).contains("sip_password"));
    assert_eq!(snapshot(app).await, before);
    let first = post("k-2").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["tenant"], "acme");
    let again = post("k-2").await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["id"], first.body["id"]);

    // The same for an import.
    let file = "name,email\nLou,lou@x.org\n";
    let host = app
        .send(
            Method::POST,
            "/users/import",
            Some(("text/csv", file.into())),
            &[("idempotency-key", "k-3")],
            true,
        )
        .await;
    assert!(host.status.is_success(), "{} {}", host.status, host.body);
    let auth = format!("Bearer {t}");
    let r = app
        .send(
            Method::POST,
            "/users/import",
            Some(("text/csv", file.into())),
            &[("authorization", auth.as_str()), ("idempotency-key", "k-3")],
            false,
        )
        .await;
    assert_eq!(
        r.error(),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        "{}",
        r.body
    );
}

/// Deleting an (empty) tenant takes its tokens with it: they stop working at once, and the
/// audit rows about it stay, about no tenant.
#[tokio::test]
async fn a_deleted_tenants_tokens_stop_working() {
    let app = TestApp::spawn().await;
    tenant(&app, "gamma").await;
    let t = create_token(&app, "gamma-admin", &["read", "admin"], Some("gamma")).await;
    assert_eq!(
        call(&app, &t, Method::GET, "/users", None).await.status,
        StatusCode::OK
    );
    let rows_before = app.get("/audit").await.body["entries"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        app.delete("/tenants/gamma").await.status,
        StatusCode::NO_CONTENT
    );
    let r = call(&app, &t, Method::GET, "/users", None).await;
    assert_eq!(r.error(), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert!(app.get("/tokens").await.body["tokens"]
        .as_array()
        .unwrap()
        .is_empty());
    let audit = app.get("/audit").await.body;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), rows_before, "{audit}");
    assert!(entries.iter().all(|e| e.get("tenant").is_none()), "{audit}");
}
