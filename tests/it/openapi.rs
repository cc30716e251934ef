//! The OpenAPI document against the real server: every documented operation exists and
//! answers with a documented status, every success body holds the documented fields, and
//! every rule the document states is the server's rule, no more and no less: values at
//! each documented boundary (read from the served document, never restated here) are
//! accepted, values just outside are refused with 422 naming the field, and each pattern
//! agrees with the server's parser on every character.

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
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let ok = options.iter().any(|o| {
            let mut e = Vec::new();
            check(doc, o, value, path, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{path}: matches no anyOf branch"));
        }
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
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            errors.push(format!("{path}: {n} below minimum"));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            errors.push(format!("{path}: {n} above maximum"));
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| chars < min) {
            errors.push(format!("{path}: shorter than minLength"));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| chars > max) {
            errors.push(format!("{path}: longer than maxLength"));
        }
        if pattern(schema).is_some_and(|re| !re.is_match(s)) {
            errors.push(format!("{path}: {s:?} does not match the pattern"));
        }
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
    // A request body each operation accepts (imports need fresh emails).
    let n = std::cell::Cell::new(0);
    let body_for =
        |method: &str, path: &str, media: &str| -> Option<(&'static str, bytes::Bytes)> {
            n.set(n.get() + 1);
            let i = n.get();
            match (method, path, media) {
            ("post", "/users", _) => Some(json!({"name": "Another", "email": "another@x.org"})),
            ("patch", "/users/{id}", _) => Some(json!({"devices": 2})),
            ("post", "/tokens", _) => Some(json!({"name": "doc-token", "scopes": ["read"]})),
            ("post", "/tenants", _) => Some(json!({"slug": "doc-tenant", "name": "Doc Tenant",
                                                   "extension_min": 100, "extension_max": 199})),
            ("patch", "/tenants/{slug}", _) => Some(json!({"max_users": 5})),
            ("post", "/users/import", "text/csv") => {
                let csv = format!("name,email\nCsv Doc {i},csv{i}@x.org\n");
                return Some(("text/csv", bytes::Bytes::from(csv)));
            }
            ("post", "/users/import", _) => Some(
                json!({"users": [{"name": format!("Doc {i}"), "email": format!("doc{i}@x.org")}]}),
            ),
            ("post", _, _) => Some(json!({})),
            _ => None,
        }
        .map(|v| ("application/json", bytes::Bytes::from(v.to_string())))
        };
    let mut seen = Vec::new();
    // DELETE last: the other operations need the user.
    let mut ops: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| ["get", "post", "patch", "delete"].contains(&m.as_str()))
        {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops.sort_by_key(|(m, _)| m == "delete");
    for (method, path) in ops {
        let op = &doc["paths"][&path][&method];
        let url = path
            .replace("{id}", &id)
            .replace("{name}", "doc-token")
            .replace("{slug}", "doc-tenant");
        // A stream that never ends: its answer's head is checked, its body cannot be read
        // to the end (tests/it/events.rs reads it).
        if op
            .pointer("/responses/200/content/text~1event-stream")
            .is_some()
        {
            let sse = crate::support::sse::Sse::open(app.addr, None).await;
            assert_eq!(sse.status(), 200, "{method} {path}: {}", sse.head);
            seen.push(format!("{} {path}", method.to_uppercase()));
            continue;
        }
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let public = op.get("security") == Some(&json!([]));
        let body = body_for(&method, &path, "application/json");
        let r = app.send(m.clone(), &url, body, &[], !public).await;
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
        if let Some(content) = documented.get("content").and_then(Value::as_object) {
            let ct = r
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let media = ct.split(';').next().unwrap_or_default().trim();
            let entry = content.get(media).unwrap_or_else(|| {
                panic!(
                    "{method} {path}: content type {ct:?} is not documented: {:?}",
                    content.keys()
                )
            });
            if media != "application/json" {
                // A text body (the metrics): documented as a string, and one.
                assert_eq!(entry["schema"]["type"], "string", "{method} {path}");
                let text = std::str::from_utf8(&r.raw)
                    .unwrap_or_else(|e| panic!("{method} {path}: not UTF-8 text: {e}"));
                assert!(!text.is_empty(), "{method} {path}: empty body");
            }
        }
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
        // A success documented as CSV too: asked for with Accept, with each request body
        // the operation takes; the answer's type and its text checked against its schema.
        if let Some(schema) = documented.pointer("/content/text~1csv/schema") {
            let medias: Vec<String> = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .map_or(vec![String::new()], |c| c.keys().cloned().collect());
            for media in medias {
                let body = body_for(&method, &path, &media);
                let r = app
                    .send(m.clone(), &url, body, &[("Accept", "text/csv")], !public)
                    .await;
                assert_eq!(
                    r.status.as_u16().to_string(),
                    status,
                    "{method} {path} {media}"
                );
                let ct = r.headers["content-type"].to_str().unwrap();
                assert_eq!(ct.split(';').next(), Some("text/csv"), "{method} {path}");
                let text = json!(String::from_utf8(r.raw.to_vec()).unwrap());
                let mut errors = Vec::new();
                check(
                    &doc,
                    schema,
                    &text,
                    &format!("{method} {path} csv"),
                    &mut errors,
                );
                assert!(errors.is_empty(), "{errors:#?}");
            }
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
        "DELETE /tenants/{slug}",
        "DELETE /tokens/{name}",
        "DELETE /users/{id}",
        "GET /applies",
        "GET /apply/pending",
        "GET /audit",
        "GET /events",
        "GET /extensions/available",
        "GET /healthz",
        "GET /metrics",
        "GET /nodes",
        "GET /openapi.json",
        "GET /status",
        "GET /tenants",
        "GET /tenants/{slug}",
        "GET /tokens",
        "GET /users",
        "GET /users/export",
        "GET /users/{id}",
        "GET /whoami",
        "PATCH /tenants/{slug}",
        "PATCH /users/{id}",
        "POST /apply",
        "POST /tenants",
        "POST /tokens",
        "POST /users",
        "POST /users/import",
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

    // An import's errors: every row error and the file's own, as documented.
    let import = &doc["paths"]["/users/import"]["post"]["responses"];
    let bad = app
        .send(
            Method::POST,
            "/users/import",
            Some((
                "text/csv",
                bytes::Bytes::from("name,email,extension\n;,x,1\nA,a@x.org,1000\nB,A@x.org,\n"),
            )),
            &[],
            true,
        )
        .await;
    let empty = app
        .send(
            Method::POST,
            "/users/import",
            Some(("application/json", bytes::Bytes::from(r#"{"users": []}"#))),
            &[],
            true,
        )
        .await;
    for r in [&bad, &empty] {
        assert_eq!(r.body["error"]["code"], "import_invalid");
        let mut errors = Vec::new();
        let schema = resolve(&doc, &import["422"])["content"]["application/json"]["schema"].clone();
        check(&doc, &schema, &r.body, "422", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }
    assert_eq!(bad.body["error"]["errors"].as_array().unwrap().len(), 4);
    assert_eq!(empty.body["error"]["errors"][0]["row"], Value::Null);
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

// ---------------------------------------------------------------------------------------
// The rules: what the document states is exactly what the server applies.

/// Follows `$ref`s to the value they name.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        v = r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |v, k| &v[k]);
        assert!(!v.is_null(), "dangling $ref {r}");
    }
    v
}

/// A schema's `pattern` as a regex. The document's patterns are ECMA-262 (what
/// schemathesis and other clients read); they keep to a subset that the regex crate reads
/// the same way: literal characters, classes with `\uXXXX` escapes, groups, quantifiers and
/// anchors. `\s`, `\d`, `\w`, `\b` and `.` differ between engines (Unicode or not, line
/// ends) and are refused here.
fn pattern(schema: &Value) -> Option<regex::Regex> {
    let p = schema.get("pattern")?.as_str()?;
    for ambiguous in [r"\s", r"\S", r"\d", r"\D", r"\w", r"\W", r"\b", r"\B"] {
        assert!(
            !p.contains(ambiguous),
            "{p}: {ambiguous} reads differently across engines"
        );
    }
    let unescaped_dot = p
        .char_indices()
        .any(|(i, c)| c == '.' && !p[..i].ends_with('\\'));
    assert!(!unescaped_dot, "{p}: '.' reads differently across engines");
    Some(regex::Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}")))
}

fn int(schema: &Value, key: &str) -> Option<i64> {
    schema.get(key).and_then(Value::as_i64)
}

fn len(schema: &Value, key: &str) -> Option<usize> {
    schema.get(key).and_then(Value::as_u64).map(|n| n as usize)
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Characters worth trying at every position: all of ASCII (controls, space, every
/// punctuation mark), the C1 controls' edges, Unicode whitespace that is not a control,
/// invisible but ordinary characters, letters that grow when lower-cased, astral ones.
fn probe_chars() -> Vec<char> {
    let mut v: Vec<char> = (0u8..=0x7f).map(char::from).collect();
    v.extend([
        '\u{80}', '\u{85}', '\u{9f}', '\u{a0}', '\u{a1}', '\u{130}', '\u{1680}', '\u{2000}',
        '\u{200a}', '\u{200b}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
        '\u{feff}', 'é', '名', '😀',
    ]);
    v
}

/// A spawned server, its served document, and a counter for unique emails.
struct Rules {
    app: TestApp,
    doc: Value,
    n: std::cell::Cell<u32>,
}

impl Rules {
    async fn spawn(vars: &[(&str, &str)]) -> Self {
        let app = TestApp::spawn_with(vars).await;
        let doc = app
            .send(Method::GET, "/openapi.json", None, &[], false)
            .await
            .body;
        Self {
            app,
            doc,
            n: std::cell::Cell::new(0),
        }
    }

    fn schema(&self, name: &str) -> &Value {
        resolve(&self.doc, &self.doc["components"]["schemas"][name])
    }

    fn unique(&self) -> u32 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }

    /// A valid body for POST /users, with a fresh email.
    fn body(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), json!("Rule Probe"));
        m.insert("email".into(), json!(format!("r{}@x.org", self.unique())));
        m
    }

    /// A valid body with `field` set to `value`.
    fn with(&self, field: &str, value: Value) -> Value {
        let mut m = self.body();
        m.insert(field.into(), value);
        Value::Object(m)
    }

    /// A valid body without `field`.
    fn without(&self, field: &str) -> Value {
        let mut m = self.body();
        m.remove(field);
        Value::Object(m)
    }

    async fn create(&self, body: Value, headers: &[(&str, &str)]) -> crate::support::app::Resp {
        self.app.post_with("/users", body, headers).await
    }

    /// POST /users with `body`: 201 when `accepted`, else 422 naming `field`.
    async fn expect(&self, body: Value, headers: &[(&str, &str)], accepted: bool, field: &str) {
        let r = self.create(body.clone(), headers).await;
        if accepted {
            assert_eq!(
                r.status,
                StatusCode::CREATED,
                "{body} {headers:?}: {}",
                r.body
            );
        } else {
            assert_eq!(
                r.refusal(),
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", field),
                "{body} {headers:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_served_document_carries_the_configured_extension_range() {
    let rules = Rules::spawn(&[
        ("PORTAL_EXTENSION_MIN", "5000"),
        ("PORTAL_EXTENSION_MAX", "5002"),
    ])
    .await;
    let ext = &rules.schema("NewUser")["properties"]["extension"];
    assert_eq!(
        (int(ext, "minimum"), int(ext, "maximum")),
        (Some(5000), Some(5002))
    );
    let (min, max) = (int(ext, "minimum").unwrap(), int(ext, "maximum").unwrap());
    for (n, ok) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
        rules
            .expect(rules.with("extension", json!(n)), &[], ok, "extension")
            .await;
    }
    // null is documented (nullable) as "the lowest free one".
    let r = rules
        .create(rules.with("extension", Value::Null), &[])
        .await;
    assert_eq!(
        (r.status, r.body["extension"].as_i64()),
        (StatusCode::CREATED, Some(min + 1))
    );
    // An import row states the rules of a new user, the served range included: the rules
    // proven against POST /users below are the import's (the same parsers read both).
    let import_user = rules.schema("ImportUser");
    for field in ["name", "email", "extension", "devices"] {
        assert_eq!(
            import_user["properties"][field],
            rules.schema("NewUser")["properties"][field],
            "{field}"
        );
    }
    assert_eq!(import_user["additionalProperties"], json!(false));
    assert_eq!(import_user["required"], rules.schema("NewUser")["required"]);
    // The static file keeps the default range.
    let file: Value = serde_json::from_str(include_str!("../../src/http/openapi.json")).unwrap();
    let ext = &file["components"]["schemas"]["NewUser"]["properties"]["extension"];
    assert_eq!(
        (int(ext, "minimum"), int(ext, "maximum")),
        (Some(1000), Some(1999))
    );
}

#[tokio::test]
async fn new_user_bodies_are_accepted_up_to_each_documented_limit_and_refused_beyond() {
    let rules = Rules::spawn(&[
        ("PORTAL_EXTENSION_MIN", "20000"),
        ("PORTAL_EXTENSION_MAX", "29999"),
    ])
    .await;
    let schema = rules.schema("NewUser");
    let props = &schema["properties"];
    assert_eq!(schema["additionalProperties"], json!(false));

    // extension: the documented range, and only integers (first, while the bounds are free).
    let ext = &props["extension"];
    let (lo, hi) = (int(ext, "minimum").unwrap(), int(ext, "maximum").unwrap());
    for (v, ok) in [
        (json!(lo), true),
        (json!(hi), true),
        (json!(lo - 1), false),
        (json!(hi + 1), false),
        (json!(lo.to_string()), false),
        (json!(lo as f64 + 0.5), false),
    ] {
        rules
            .expect(rules.with("extension", v), &[], ok, "extension")
            .await;
    }

    // Every required field is required; no undocumented one is.
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in props.as_object().unwrap().keys() {
        let body = rules.without(field);
        rules
            .expect(body, &[], !required.contains(&field.as_str()), field)
            .await;
    }
    // additionalProperties: false.
    let body = rules.with("nickname", json!("x"));
    rules.expect(body, &[], false, "nickname").await;

    // name: lengths counted in characters, at every width of UTF-8.
    let name = &props["name"];
    let (min, max) = (
        len(name, "minLength").unwrap(),
        len(name, "maxLength").unwrap(),
    );
    for c in ['x', 'é', '名', '😀'] {
        for (n, ok) in [(min, true), (max, true), (max + 1, false)] {
            let s = c.to_string().repeat(n);
            rules
                .expect(rules.with("name", json!(s)), &[], ok, "name")
                .await;
        }
    }
    if min > 0 {
        let s = "x".repeat(min - 1);
        rules
            .expect(rules.with("name", json!(s)), &[], false, "name")
            .await;
    }
    // name: each character, leading, inside, trailing and alone: the pattern decides.
    let re = pattern(name).expect("names have a pattern");
    for c in probe_chars() {
        for s in [
            format!("a{c}b"),
            format!("{c}b"),
            format!("a{c}"),
            c.to_string(),
        ] {
            let ok = re.is_match(&s);
            rules
                .expect(rules.with("name", json!(s)), &[], ok, "name")
                .await;
        }
    }

    // email: the length limits, then each character in the local part and the domain.
    let email = &props["email"];
    let (min, max) = (
        len(email, "minLength").unwrap(),
        len(email, "maxLength").unwrap(),
    );
    let re = pattern(email).expect("emails have a pattern");
    let sized = |n: usize, tag: u32| {
        let domain = format!("@{tag}.org");
        format!("{}{domain}", "a".repeat(n - domain.len()))
    };
    for (n, ok) in [(max, true), (max + 1, false)] {
        let s = sized(n, rules.unique());
        assert!(re.is_match(&s));
        rules
            .expect(rules.with("email", json!(s)), &[], ok, "email")
            .await;
    }
    let shortest = "a@b".to_owned();
    assert_eq!(shortest.len(), min, "the shortest email the pattern allows");
    rules
        .expect(rules.with("email", json!(shortest)), &[], true, "email")
        .await;
    for c in probe_chars() {
        let tag = rules.unique();
        for s in [
            format!("u{tag}{c}b@x.org"),
            format!("u{tag}@x{c}y"),
            format!("{c}@u{tag}"),
        ] {
            let ok = re.is_match(&s);
            rules
                .expect(rules.with("email", json!(s)), &[], ok, "email")
                .await;
        }
    }
}

#[tokio::test]
async fn the_idempotency_key_is_accepted_exactly_as_documented() {
    let rules = Rules::spawn(&[]).await;
    let post = &rules.doc["paths"]["/users"]["post"];
    let key = post["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| resolve(&rules.doc, p))
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("documented");
    assert_eq!(key["in"], "header");
    let schema = &key["schema"];
    let (min, max) = (
        len(schema, "minLength").unwrap(),
        len(schema, "maxLength").unwrap(),
    );
    let re = pattern(schema).expect("a pattern");
    let field = "Idempotency-Key";
    // Lengths: each key is new, so each accepted one creates a user.
    for (n, ok) in [(min, true), (max, true), (max + 1, false)] {
        let k = "~".repeat(n);
        rules
            .expect(Value::Object(rules.body()), &[(field, &k)], ok, field)
            .await;
    }
    if min > 0 {
        rules
            .expect(Value::Object(rules.body()), &[(field, "")], false, field)
            .await;
    }
    // Every character a header can carry (a control byte or DEL is not HTTP: see users.rs).
    for c in probe_chars()
        .into_iter()
        .filter(|&c| c == '\t' || (c >= ' ' && c != '\u{7f}'))
    {
        let k = format!("k{}{c}k", rules.unique());
        rules
            .expect(
                Value::Object(rules.body()),
                &[(field, &k)],
                re.is_match(&k),
                field,
            )
            .await;
    }
}

/// Every query parameter of every documented operation, checked against its schema:
/// integers at and beyond their bounds, each enum value and a value outside, strings at
/// and beyond their length and against their pattern; an unknown or repeated parameter.
#[tokio::test]
async fn query_parameters_are_accepted_within_their_documented_rules_and_refused_outside() {
    let rules = Rules::spawn(&[]).await;
    let app = &rules.app;
    app.create_user("Query Probe", "query@x.org").await;
    let mut checked = Vec::new();
    for (path, item) in rules.doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(params) = op.get("parameters").and_then(Value::as_array) else {
                continue;
            };
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let call = |query: String| {
                let m = m.clone();
                let url = format!("{path}?{query}");
                // An import needs a valid file with a fresh email (false/0 really import).
                let body = match (m == Method::POST, path.as_str()) {
                    (true, "/users/import") => Some(bytes::Bytes::from(
                        json!({"users": [{"name": "Q", "email": format!("q{}@x.org", rules.unique())}]})
                            .to_string(),
                    )),
                    (true, _) => Some(bytes::Bytes::from_static(b"{}")),
                    (false, _) => None,
                };
                async move {
                    let body = body.map(|b| ("application/json", b));
                    (app.send(m, &url, body, &[], true).await, url)
                }
            };
            let mut first_ok = None;
            for p in params.iter().map(|p| resolve(&rules.doc, p)) {
                if p["in"] != "query" {
                    continue;
                }
                let name = p["name"].as_str().unwrap();
                let s = &p["schema"];
                let mut accepted: Vec<String> = Vec::new();
                let mut refused: Vec<String> = Vec::new();
                match s["type"].as_str() {
                    Some("integer") => {
                        let min = int(s, "minimum").expect("integers state a minimum");
                        accepted.push(min.to_string());
                        refused.push((min - 1).to_string());
                        if let Some(max) = int(s, "maximum") {
                            accepted.push(max.to_string());
                            refused.push((max + 1).to_string());
                        }
                        refused.extend(["x".into(), "1.5".into(), "".into(), "%00".into()]);
                    }
                    // Values that name what the server holds: one it holds is accepted,
                    // a well-formed one it does not hold, a repeat or a malformed one not.
                    Some("string") if s["x-values-from"] == "/nodes" => {
                        let me = app.get("/status").await.body["node"]
                            .as_str()
                            .expect("/status names this node")
                            .to_owned();
                        let re = pattern(s).expect("names state a pattern");
                        assert!(re.is_match(&me) && re.is_match("no-such-node"));
                        accepted.push(enc(&me));
                        for bad in ["no-such-node", &format!("{me},{me}"), "", "a b", "é"] {
                            refused.push(enc(bad));
                        }
                    }
                    Some("string") if s["x-values-from"] == "/tenants" => {
                        let re = pattern(s).expect("slugs state a pattern");
                        assert!(re.is_match("default") && re.is_match("no-such-tenant"));
                        accepted.push("default".into());
                        let long = "a".repeat(33);
                        for bad in ["no-such-tenant", "", "Acme", "a b", "a_b", "é", &long] {
                            refused.push(enc(bad));
                        }
                    }
                    Some("string") => {
                        if let Some(values) = s["enum"].as_array() {
                            accepted.extend(values.iter().map(|v| enc(v.as_str().unwrap())));
                            for bad in ["zzz", "", "%00"] {
                                refused.push(bad.into());
                            }
                            let upper = values[0].as_str().unwrap().to_uppercase();
                            if !values.contains(&json!(upper)) {
                                refused.push(enc(&upper));
                            }
                        } else {
                            let max = len(s, "maxLength").expect("strings state a maxLength");
                            let re = pattern(s).expect("strings state a pattern");
                            // The longest value, of a character beyond ASCII where allowed.
                            let wide = if re.is_match("é") { "é" } else { "a" };
                            accepted.push(enc(&wide.repeat(max)));
                            refused.push(enc(&"x".repeat(max + 1)));
                            for c in probe_chars() {
                                let v = format!("a{c}b");
                                if re.is_match(&v) {
                                    accepted.push(enc(&v));
                                } else {
                                    refused.push(enc(&v));
                                }
                            }
                        }
                    }
                    other => panic!("{name}: no rule checked for type {other:?}"),
                }
                if let Some(default) = s.get("default") {
                    let d = default.as_str().map_or(default.to_string(), enc);
                    if !accepted.contains(&d) {
                        accepted.push(d);
                    }
                }
                for v in &accepted {
                    let (r, url) = call(format!("{name}={v}")).await;
                    assert!(
                        r.status.is_success(),
                        "{method} {url}: {} {}",
                        r.status,
                        r.body
                    );
                }
                for v in &refused {
                    let (r, url) = call(format!("{name}={v}")).await;
                    assert_eq!(
                        r.refusal(),
                        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", name),
                        "{method} {url}"
                    );
                }
                // Given twice, even with the same value.
                let v = &accepted[0];
                let (r, url) = call(format!("{name}={v}&{name}={v}")).await;
                assert_eq!(
                    r.refusal(),
                    (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", name),
                    "{method} {url}"
                );
                first_ok.get_or_insert(format!("{name}={v}"));
                checked.push(format!("{} {path} {name}", method.to_uppercase()));
            }
            // A parameter the document does not name is refused, alone or beside one it
            // does. (Routes that take no query parameters ignore a query string.)
            let Some(ok) = first_ok else { continue };
            for query in ["undocumented=1".to_owned(), format!("{ok}&undocumented=1")] {
                let (r, url) = call(query).await;
                assert_eq!(
                    r.refusal(),
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "validation_failed",
                        "undocumented"
                    ),
                    "{method} {url}"
                );
            }
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "GET /applies limit",
            "GET /applies node",
            "GET /audit actor",
            "GET /audit limit",
            "GET /audit user",
            "GET /users direction",
            "GET /users limit",
            "GET /users offset",
            "GET /users order",
            "GET /users q",
            "GET /users registered",
            "GET /users tenant",
            "GET /users/export format",
            "POST /apply dry_run",
            "POST /apply nodes",
            "POST /apply strategy",
            "POST /apply tenant",
            "POST /users/import dry_run",
        ]
    );
}

/// The documented defaults are the ones the server uses.
#[tokio::test]
async fn query_defaults_are_the_documented_ones() {
    let rules = Rules::spawn(&[]).await;
    let app = &rules.app;
    let param = |name: &str| resolve(&rules.doc, &rules.doc["components"]["parameters"][name]);
    let users_limit = int(&param("UsersLimit")["schema"], "default").unwrap();
    assert_eq!(
        app.get("/users").await.body["limit"].as_i64(),
        Some(users_limit)
    );
    assert_eq!(
        app.get("/users").await.body["offset"].as_i64(),
        int(&param("Offset")["schema"], "default")
    );
    // The applies default: one more record than the default page holds.
    let applies_limit = int(&param("AppliesLimit")["schema"], "default").unwrap();
    assert_eq!(param("DryRun")["schema"]["default"], "false");
    for _ in 0..=applies_limit {
        let r = app.post("/apply?dry_run=1", json!({})).await;
        assert_eq!(r.body["status"], "dry_run");
    }
    let page = app.get("/applies").await.body["applies"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(page as i64, applies_limit);
    // No dry_run is a real apply.
    assert_eq!(
        app.post("/apply", json!({})).await.body["status"],
        "applied"
    );
}

/// The patterns against the parsers the handlers call, on every character of the Basic
/// Multilingual Plane and a sample of the others, in every position: a pattern that
/// allowed one character more (or less) than the server would show here.
#[test]
fn patterns_agree_with_the_parsers_on_every_character() {
    use pbx_portal::domain::{Email, Name, Search};
    let doc: Value = serde_json::from_str(include_str!("../../src/http/openapi.json")).unwrap();
    let props = &doc["components"]["schemas"]["NewUser"]["properties"];
    let name = pattern(&props["name"]).unwrap();
    let email = pattern(&props["email"]).unwrap();
    let q = pattern(&resolve(&doc, &doc["components"]["parameters"]["Query"])["schema"]).unwrap();
    let chars = (0u32..0x1_0000)
        .chain((0x1_0000..=0x10_ffff).step_by(61))
        .filter_map(char::from_u32);
    let mut mismatches = Vec::new();
    for c in chars {
        for s in [
            format!("a{c}b"),
            format!("{c}b"),
            format!("a{c}"),
            c.to_string(),
        ] {
            if name.is_match(&s) != Name::parse(&s).is_ok() {
                mismatches.push(format!("name {s:?}"));
            }
        }
        for s in [
            format!("a{c}b@x.org"),
            format!("a@x{c}y"),
            format!("{c}@x"),
            format!("x@{c}"),
        ] {
            if email.is_match(&s) != Email::parse(&s).is_ok() {
                mismatches.push(format!("email {s:?}"));
            }
        }
        for s in [format!("a{c}b"), c.to_string()] {
            if q.is_match(&s) != Search::parse(&s).is_ok() {
                mismatches.push(format!("q {s:?}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(20)]
    );
}
