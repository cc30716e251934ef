//! The web console as the binary serves it: the page and its content-hashed assets with
//! their types and cache headers, the security headers on every answer (the API's too),
//! a 404 for an asset that is not there, and `/whoami` for a scoped, a bound, the
//! bootstrap and a revoked token.

use crate::support::app::{call, create_token, Resp, TestApp};
use hyper::{Method, StatusCode};
use serde_json::json;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

fn assert_secured(r: &Resp, what: &str) {
    assert_eq!(r.headers["content-security-policy"], CSP, "{what}");
    assert_eq!(r.headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(r.headers["referrer-policy"], "no-referrer", "{what}");
}

/// `GET path` without a token.
async fn open(app: &TestApp, path: &str) -> Resp {
    app.send(Method::GET, path, None, &[], false).await
}

/// The `/assets/…` references of the page.
fn assets(page: &str) -> Vec<String> {
    page.split("\"/assets/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|name| format!("/assets/{name}"))
        .collect()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_headers() {
    let app = TestApp::spawn().await;
    let page = open(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers["cache-control"], "no-cache");
    assert_secured(&page, "/");
    let text = String::from_utf8(page.raw.to_vec()).unwrap();
    assert!(text.contains("<main"), "{text}");
    let refs = assets(&text);
    assert!(refs.len() >= 2, "{refs:?}");
    let mut js = None;
    for path in &refs {
        let name = path.trim_start_matches("/assets/");
        let parts: Vec<&str> = name.split('.').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[1].len(), 16, "{name}");
        assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        let r = open(&app, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(
            r.headers["cache-control"], "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_secured(&r, path);
        let ct = r.headers["content-type"].to_str().unwrap();
        match parts[2] {
            "js" => {
                assert_eq!(ct, "text/javascript; charset=utf-8");
                if parts[0] == "app" {
                    js = Some(String::from_utf8(r.raw.to_vec()).unwrap());
                }
            }
            "css" => assert_eq!(ct, "text/css; charset=utf-8"),
            other => panic!("unexpected asset type {other}"),
        }
    }
    // The entry module imports the others by their hashed names, each served.
    let js = js.expect("the entry module app.js");
    let imports: Vec<&str> = js
        .split("from './")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next())
        .collect();
    assert!(!imports.is_empty(), "{js}");
    for name in imports {
        let r = open(&app, &format!("/assets/{name}")).await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
    }
    // Unknown or unhashed assets are 404, with the headers too.
    for path in [
        "/assets/app.js",
        "/assets/app.0000000000000000.js",
        "/assets/x",
    ] {
        let r = open(&app, path).await;
        assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found"), "{path}");
        assert_secured(&r, path);
    }
    // The page takes GET only.
    let r = app.send(Method::POST, "/", None, &[], false).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_api_answers_carry_the_security_headers_too() {
    let app = TestApp::spawn().await;
    for (path, auth, status) in [
        ("/users", true, StatusCode::OK),
        ("/users", false, StatusCode::UNAUTHORIZED),
        ("/healthz", false, StatusCode::OK),
        ("/openapi.json", false, StatusCode::OK),
        ("/nope", false, StatusCode::NOT_FOUND),
    ] {
        let r = app.send(Method::GET, path, None, &[], auth).await;
        assert_eq!(r.status, status, "{path}");
        assert_secured(&r, path);
    }
}

#[tokio::test]
async fn whoami_names_the_token_its_scopes_and_tenant() {
    let app = TestApp::spawn().await;
    let r = app.get("/whoami").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"name": null, "scopes": ["read", "write", "apply", "metrics", "admin"],
               "tenant": null})
    );
    assert_secured(&r, "/whoami");

    let made = app
        .post(
            "/tenants",
            json!({"slug": "acme", "name": "Acme", "extension_min": 100, "extension_max": 199}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let metrics = create_token(&app, "metrics-only", &["metrics"], None).await;
    let acme = create_token(&app, "acme-ops", &["apply", "read"], Some("acme")).await;
    let r = call(&app, &metrics, Method::GET, "/whoami", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"name": "metrics-only", "scopes": ["metrics"], "tenant": null})
    );
    let r = call(&app, &acme, Method::GET, "/whoami", None).await;
    assert_eq!(
        r.body,
        json!({"name": "acme-ops", "scopes": ["read", "apply"], "tenant": "acme"})
    );

    // Revoked: 401 like every other route.
    assert_eq!(
        app.delete("/tokens/acme-ops").await.status,
        StatusCode::NO_CONTENT
    );
    let r = call(&app, &acme, Method::GET, "/whoami", None).await;
    assert_eq!(r.error(), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert_secured(&r, "/whoami 401");
    let r = open(&app, "/whoami").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.send(Method::POST, "/whoami", None, &[], true).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}
