//! The OpenAPI document against the real server: every documented operation exists and
//! answers with a documented status, and every success body holds the documented fields.

use crate::support::app::TestApp;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

/// Checks `value` against `schema` (the subset of OpenAPI 3.0 the document uses).
fn check(doc: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |v, k| &v[k]);
        assert!(!target.is_null(), "dangling $ref {r}");
        return check(doc, target, value, path, errors);
    }
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = options.iter().any(|o| {
            let mut e = Vec::new();
            check(doc, o, value, path, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{path}: matches no oneOf branch"));
        }
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, value, path, errors);
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            errors.push(format!("{path}: {value} not in enum"));
        }
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match ty {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{path}: expected {ty:?}, got {value}"));
        return;
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if value.get(field).is_none() {
                errors.push(format!("{path}: missing required field {field}"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (k, v) in obj {
            match props.get(k) {
                Some(s) => check(doc, s, v, &format!("{path}.{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: undocumented field {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(doc, items, v, &format!("{path}[{i}]"), errors);
        }
    }
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let app = TestApp::spawn().await;
    let doc_resp = app
        .send(Method::GET, "/openapi.json", None, &[], false)
        .await;
    assert_eq!(doc_resp.status, StatusCode::OK);
    assert_eq!(doc_resp.headers["content-type"], "application/json");
    let doc = doc_resp.body;
    assert_eq!(doc["openapi"], "3.0.3");

    let user = app.create_user("Doc User", "doc@x.org").await;
    let id = user["id"].to_string();
    let mut seen = Vec::new();
    // DELETE last: the other operations need the user.
    let mut ops: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| ["get", "post", "delete"].contains(&m.as_str()))
        {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops.sort_by_key(|(m, _)| m == "delete");
    for (method, path) in ops {
        let op = &doc["paths"][&path][&method];
        let url = path.replace("{id}", &id);
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let public = op.get("security") == Some(&json!([]));
        let body = match (method.as_str(), path.as_str()) {
            ("post", "/users") => Some(json!({"name": "Another", "email": "another@x.org"})),
            ("post", _) => Some(json!({})),
            _ => None,
        };
        let r = match body {
            Some(b) => app.post(&url, b).await,
            None => app.send(m, &url, None, &[], !public).await,
        };
        let status = r.status.as_u16().to_string();
        let documented = &op["responses"][&status];
        assert!(
            !documented.is_null(),
            "{method} {path} answered undocumented {status}: {}",
            r.body
        );
        assert!(
            r.status.is_success(),
            "{method} {path}: {status} {}",
            r.body
        );
        if let Some(schema) = documented.pointer("/content/application~1json/schema") {
            let mut errors = Vec::new();
            check(
                &doc,
                schema,
                &r.body,
                &format!("{method} {path}"),
                &mut errors,
            );
            assert!(errors.is_empty(), "{errors:#?}");
        }
        if !public {
            let unauth = app
                .send(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &url,
                    None,
                    &[],
                    false,
                )
                .await;
            assert_eq!(unauth.status, StatusCode::UNAUTHORIZED);
            assert!(
                !op["responses"]["401"].is_null(),
                "{method} {path} does not document 401"
            );
        }
        seen.push(format!("{} {path}", method.to_uppercase()));
    }
    seen.sort();
    let expected = [
        "DELETE /users/{id}",
        "GET /applies",
        "GET /apply/pending",
        "GET /extensions/available",
        "GET /healthz",
        "GET /openapi.json",
        "GET /status",
        "GET /users",
        "GET /users/{id}",
        "POST /apply",
        "POST /users",
        "POST /users/{id}/secret",
    ];
    assert_eq!(
        seen, expected,
        "documented operations are exactly the served routes"
    );
}

#[tokio::test]
async fn documented_errors_have_the_error_shape() {
    let app = TestApp::spawn().await;
    let doc = app
        .send(Method::GET, "/openapi.json", None, &[], false)
        .await
        .body;
    let bad = app.post("/users", json!({"name": ""})).await;
    let mut errors = Vec::new();
    check(
        &doc,
        &json!({"$ref": "#/components/schemas/Error"}),
        &bad.body,
        "422",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(bad.body["error"]["field"], "name");
}

#[test]
fn the_checker_catches_missing_fields_wrong_types_and_enums() {
    let doc = json!({"components": {"schemas": {"U": {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "integer"}, "s": {"type": "string", "enum": ["x"]}, "n": {"type": "string", "nullable": true}}}}}});
    let schema = json!({"$ref": "#/components/schemas/U"});
    let errs = |v: Value| {
        let mut e = Vec::new();
        check(&doc, &schema, &v, "t", &mut e);
        e.len()
    };
    assert_eq!(errs(json!({"a": 1, "s": "x", "n": null})), 0);
    assert_eq!(errs(json!({})), 1);
    assert_eq!(errs(json!({"a": "1"})), 1);
    assert_eq!(errs(json!({"a": 1, "s": "y"})), 1);
    assert_eq!(errs(json!([])), 1);
}
