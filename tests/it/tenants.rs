//! Tenants: `/tenants` and every refusal with its status, code and field (and the data as
//! it was), users in tenants (numbers and emails per tenant, SIP usernames, filters, no
//! move between tenants), `max_users` under concurrency, import and export with a
//! `tenant` column, and the upgrade of a database holding users from before tenants.

use crate::support::app::{Resp, TestApp, TestDb};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

async fn patch(app: &TestApp, path: &str, body: Value) -> Resp {
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
    app.send(
        Method::PATCH,
        path,
        Some(("application/json", bytes)),
        &[],
        true,
    )
    .await
}

async fn create_tenant(app: &TestApp, slug: &str, min: u32, max: u32, cap: Option<u32>) -> Value {
    let r = app
        .post(
            "/tenants",
            json!({"slug": slug, "name": format!("Tenant {slug}"), "extension_min": min,
                   "extension_max": max, "max_users": cap}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn create_in(app: &TestApp, tenant: &str, email: &str, extension: Option<u32>) -> Resp {
    app.post(
        "/users",
        json!({"name": "T User", "email": email, "tenant": tenant, "extension": extension}),
    )
    .await
}

/// Everything a refused request must leave as it was: the tenants and every user with
/// its tenant, number and secret.
async fn state(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let c = app.db().client().await;
    let tenants = c
        .query("SELECT row(t.*)::text FROM tenants t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let users = c
        .query(
            "SELECT row(u.id, u.tenant_id, u.name, u.email, e.tenant_id, e.number, e.secret,
                        e.devices, e.transport)::text
               FROM users u JOIN extensions e ON e.user_id = u.id ORDER BY u.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (tenants, users)
}

#[tokio::test]
async fn tenants_are_created_listed_edited_and_deleted() {
    let app = TestApp::spawn().await;
    app.create_user("Default User", "d@x.org").await;
    let acme = create_tenant(&app, "acme", 100, 199, Some(10)).await;
    assert_eq!(
        acme,
        json!({"slug": "acme", "name": "Tenant acme", "extension_min": 100,
               "extension_max": 199, "max_users": 10, "users": 0})
    );
    // No max_users: no limit.
    let beta = create_tenant(&app, "beta", 100, 299, None).await;
    assert_eq!(beta["max_users"], Value::Null);
    create_in(&app, "acme", "a@x.org", None).await;

    // The default tenant first, with the configured range and its users counted.
    let list = app.get("/tenants").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.body,
        json!({"tenants": [
            {"slug": "default", "name": "default", "extension_min": 1000,
             "extension_max": 1999, "max_users": null, "users": 1},
            {"slug": "acme", "name": "Tenant acme", "extension_min": 100,
             "extension_max": 199, "max_users": 10, "users": 1},
            {"slug": "beta", "name": "Tenant beta", "extension_min": 100,
             "extension_max": 299, "max_users": null, "users": 0},
        ]})
    );
    assert_eq!(app.get("/tenants/acme").await.body, list.body["tenants"][1]);

    // PATCH: name, range, max_users (and lifting it with null).
    let r = patch(
        &app,
        "/tenants/acme",
        json!({"name": "Acme Ltd", "extension_min": 100, "extension_max": 150, "max_users": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"slug": "acme", "name": "Acme Ltd", "extension_min": 100,
               "extension_max": 150, "max_users": 1, "users": 1})
    );
    let r = patch(&app, "/tenants/acme", json!({"max_users": null})).await;
    assert_eq!(r.body["max_users"], Value::Null);
    // The default tenant's name and limit can change; its range is the configuration's.
    let r = patch(
        &app,
        "/tenants/default",
        json!({"name": "Main", "max_users": 50}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["name"].clone(), r.body["extension_min"].clone()),
        (json!("Main"), json!(1000))
    );

    // DELETE of an empty tenant.
    let r = app.delete("/tenants/beta").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/tenants/beta").await.error(),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // Its slug is free again.
    create_tenant(&app, "beta", 1, 99_999_999, Some(0)).await;
}

#[tokio::test]
async fn bad_tenant_requests_are_refused_exactly_and_change_nothing() {
    let app = TestApp::spawn().await;
    create_tenant(&app, "acme", 100, 199, Some(2)).await;
    let u = create_in(&app, "acme", "a@x.org", Some(120)).await;
    assert_eq!(u.status, StatusCode::CREATED, "{}", u.body);
    create_in(&app, "acme", "b@x.org", Some(180)).await;
    app.create_user("Default User", "d@x.org").await;
    let before = state(&app).await;

    let good =
        |slug: &str| json!({"slug": slug, "name": "N", "extension_min": 100, "extension_max": 199});
    let with = |field: &str, v: Value| {
        let mut b = good("new");
        b[field] = v;
        b
    };
    let creates: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            good("acme"),
            StatusCode::CONFLICT,
            "tenant_exists",
            "<none>",
        ),
        (
            good("default"),
            StatusCode::CONFLICT,
            "tenant_exists",
            "<none>",
        ),
        (
            good("Acme"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "slug",
        ),
        (
            good("ac_me"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "slug",
        ),
        (
            good(""),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "slug",
        ),
        (
            good(&"a".repeat(33)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "slug",
        ),
        (
            with("slug", json!(7)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "slug",
        ),
        (
            with("name", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "name",
        ),
        (
            with("name", json!("x".repeat(101))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "name",
        ),
        // Inverted.
        (
            with("extension_min", json!(200)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_max",
        ),
        // Outside 1..=99999999.
        (
            with("extension_min", json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_min",
        ),
        (
            with("extension_max", json!(100_000_000)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_max",
        ),
        (
            with("extension_min", json!(-5)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_min",
        ),
        (
            with("extension_max", json!("199")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_max",
        ),
        (
            json!({"slug": "new", "name": "N", "extension_min": 100}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_max",
        ),
        (
            with("max_users", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "max_users",
        ),
        (
            with("colour", json!("red")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "colour",
        ),
    ];
    for (body, status, code, field) in creates {
        let r = app.post("/tenants", body.clone()).await;
        assert_eq!(r.refusal(), (status, code, field), "{body}");
    }

    let patches: Vec<(&str, Value, StatusCode, &str, &str)> = vec![
        (
            "acme",
            json!({"slug": "other"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "slug",
        ),
        // Would leave 120 below the range, 180 above it.
        (
            "acme",
            json!({"extension_min": 150}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_min",
        ),
        (
            "acme",
            json!({"extension_max": 170}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_max",
        ),
        (
            "acme",
            json!({"extension_min": 300, "extension_max": 400}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_min",
        ),
        // Inverted against the stored bound.
        (
            "acme",
            json!({"extension_min": 190, "extension_max": 110}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_max",
        ),
        (
            "acme",
            json!({"extension_max": 99}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_max",
        ),
        (
            "acme",
            json!({"extension_max": 100_000_000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_max",
        ),
        (
            "acme",
            json!({"extension_min": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_min",
        ),
        // Below the users it has.
        (
            "acme",
            json!({"max_users": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "max_users",
        ),
        (
            "acme",
            json!({"name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "name",
        ),
        (
            "default",
            json!({"extension_min": 1000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension_min",
        ),
        (
            "default",
            json!({"max_users": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "max_users",
        ),
        (
            "nobody",
            json!({"name": "X"}),
            StatusCode::NOT_FOUND,
            "not_found",
            "<none>",
        ),
        (
            "Bad_Slug",
            json!({"name": "X"}),
            StatusCode::NOT_FOUND,
            "not_found",
            "<none>",
        ),
    ];
    for (slug, body, status, code, field) in patches {
        let r = patch(&app, &format!("/tenants/{slug}"), body.clone()).await;
        assert_eq!(r.refusal(), (status, code, field), "{slug} {body}");
    }

    // Deletes: a tenant with users, the default tenant, an unknown one.
    assert_eq!(
        app.delete("/tenants/acme").await.error(),
        (StatusCode::CONFLICT, "tenant_not_empty")
    );
    assert_eq!(
        app.delete("/tenants/default").await.refusal(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "slug"
        )
    );
    for slug in ["nobody", "NOBODY"] {
        assert_eq!(
            app.delete(&format!("/tenants/{slug}")).await.error(),
            (StatusCode::NOT_FOUND, "not_found")
        );
        assert_eq!(
            app.get(&format!("/tenants/{slug}")).await.error(),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }

    // Users: an unknown tenant in a body or a query, a full tenant, a move.
    let r = create_in(&app, "nobody", "n@x.org", None).await;
    assert_eq!(
        r.refusal(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "tenant"
        )
    );
    assert_eq!(r.body["error"]["message"], "no tenant 'nobody'");
    for bad in [json!("Acme"), json!(3), json!("")] {
        let r = app
            .post(
                "/users",
                json!({"name": "X", "email": "x@x.org", "tenant": bad}),
            )
            .await;
        assert_eq!(
            r.refusal(),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "tenant"
            ),
            "{bad}"
        );
    }
    assert_eq!(
        create_in(&app, "acme", "c@x.org", None).await.error(),
        (StatusCode::CONFLICT, "tenant_full")
    );
    for q in ["tenant=nobody", "tenant=Acme", "tenant="] {
        assert_eq!(
            app.get(&format!("/users?{q}")).await.refusal(),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "tenant"
            ),
            "{q}"
        );
    }
    let id = u.body["id"].clone();
    for other in ["default", "nobody"] {
        let r = app
            .patch_user(&id, json!({"tenant": other, "name": "Moved"}))
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
    assert_eq!(state(&app).await, before, "nothing changed");
}

#[tokio::test]
async fn users_belong_to_tenants_with_numbers_and_emails_of_their_own() {
    let app = TestApp::spawn().await;
    create_tenant(&app, "acme", 100, 199, None).await;
    create_tenant(&app, "beta", 100, 199, None).await;

    // No tenant named: the default, as before.
    let d = app.create_user("Dee", "same@x.org").await;
    assert_eq!(
        (
            d["tenant"].clone(),
            d["extension"].clone(),
            d["sip_username"].clone()
        ),
        (json!("default"), json!(1000), json!("1000"))
    );
    // The lowest free number of each tenant's own range; the same number in two tenants,
    // the same email too.
    let a = create_in(&app, "acme", "same@x.org", None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(
        (
            a.body["tenant"].clone(),
            a.body["extension"].clone(),
            a.body["sip_username"].clone()
        ),
        (json!("acme"), json!(100), json!("acme-100"))
    );
    assert_eq!(a.body["transport"], "transport-udp");
    let b = create_in(&app, "beta", "same@x.org", Some(100)).await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.body);
    assert_eq!(b.body["sip_username"], "beta-100");
    let a2 = create_in(&app, "acme", "two@x.org", Some(101)).await;
    assert_eq!(a2.status, StatusCode::CREATED, "{}", a2.body);
    // Within a tenant, taken is taken; the range is the tenant's.
    let before = state(&app).await;
    assert_eq!(
        create_in(&app, "acme", "three@x.org", Some(100))
            .await
            .error(),
        (StatusCode::CONFLICT, "extension_taken")
    );
    assert_eq!(
        create_in(&app, "acme", "same@x.org", None).await.error(),
        (StatusCode::CONFLICT, "email_taken")
    );
    for ext in [99, 200, 1000] {
        assert_eq!(
            create_in(&app, "acme", "three@x.org", Some(ext))
                .await
                .refusal(),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "extension"
            ),
            "{ext}"
        );
    }
    assert_eq!(state(&app).await, before);

    // Every answer says the tenant and the SIP username.
    let id = a.body["id"].clone();
    let got = app.get(&format!("/users/{id}")).await.body;
    assert_eq!(
        (
            got["tenant"].clone(),
            got["sip_username"].clone(),
            got["transport"].clone()
        ),
        (json!("acme"), json!("acme-100"), json!("transport-udp"))
    );
    // The filter.
    let page = app.get("/users?tenant=acme").await.body;
    let emails: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        (emails, page["total"].clone()),
        (vec!["same@x.org", "two@x.org"], json!(2))
    );
    assert_eq!(app.get("/users?tenant=default").await.body["total"], 1);
    assert_eq!(app.get("/users").await.body["total"], 4);
    assert_eq!(
        app.get("/users?tenant=beta&q=100").await.body["users"][0]["sip_username"],
        "beta-100"
    );

    // PATCH: its own tenant is accepted; a move is checked against the tenant's range
    // and numbers.
    let r = app
        .patch_user(&id, json!({"tenant": "acme", "extension": 150}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["sip_username"], "acme-150");
    assert_eq!(
        app.patch_user(&id, json!({"extension": 101})).await.error(),
        (StatusCode::CONFLICT, "extension_taken")
    );
    assert_eq!(
        app.patch_user(&id, json!({"extension": 1500}))
            .await
            .refusal(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "extension"
        )
    );
    // 100 is free in acme now, though beta and (by range) not default hold it.
    let r = app.patch_user(&id, json!({"extension": 100})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The rotated secret's username.
    let r = app.post(&format!("/users/{id}/secret"), json!({})).await;
    assert_eq!(r.body["sip_username"], "acme-100");
    // The snapshot the apply renders from carries each user's tenant.
    let snapshot = app.store().snapshot().await.unwrap();
    let mut seen: Vec<(String, u32)> = snapshot
        .iter()
        .map(|s| (s.tenant.to_string(), s.extension.get()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("acme".into(), 100),
            ("acme".into(), 101),
            ("beta".into(), 100),
            ("default".into(), 1000)
        ]
    );

    // Idempotency-Key: the replay names the tenant too.
    let body = json!({"name": "Idem", "email": "idem@x.org", "tenant": "beta"});
    let key = [("Idempotency-Key", "tenant-key-1")];
    let first = app.post_with("/users", body.clone(), &key).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = app.post_with("/users", body, &key).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(again.body["sip_username"], "beta-101");
    // A tenant with users cannot go; once empty it can.
    assert_eq!(
        app.delete("/tenants/beta").await.error(),
        (StatusCode::CONFLICT, "tenant_not_empty")
    );
    for u in app.get("/users?tenant=beta").await.body["users"]
        .as_array()
        .unwrap()
    {
        assert_eq!(
            app.delete(&format!("/users/{}", u["id"])).await.status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        app.delete("/tenants/beta").await.status,
        StatusCode::NO_CONTENT
    );
}

/// Many creates at once into a tenant at `max_users` 5: exactly 5 succeed, the others
/// are 409 `tenant_full`, none anything else; while room remains, every create succeeds.
#[tokio::test]
async fn max_users_holds_under_concurrency() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    create_tenant(&app, "small", 100, 999, Some(5)).await;
    create_tenant(&app, "roomy", 100, 999, Some(40)).await;
    // Each request its own task: they reach the server at once.
    let at_once = |tenant: Option<&'static str>, n: usize, tag: &'static str| {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    let email = format!("{tag}{i}@x.org");
                    match tenant {
                        Some(t) => create_in(&app, t, &email, None).await,
                        None => {
                            app.post("/users", json!({"name": "D", "email": email}))
                                .await
                        }
                    }
                })
            })
            .collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }
    };
    let results = at_once(Some("small"), 30, "s").await;
    let mut created = 0;
    for r in &results {
        match r.status {
            StatusCode::CREATED => created += 1,
            _ => assert_eq!(
                r.error(),
                (StatusCode::CONFLICT, "tenant_full"),
                "{}",
                r.body
            ),
        }
    }
    assert_eq!(created, 5);
    let small = app.get("/tenants/small").await.body;
    assert_eq!(small["users"], 5);
    let page = app.get("/users?tenant=small").await.body;
    let mut numbers: Vec<i64> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["extension"].as_i64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [100, 101, 102, 103, 104]);

    // 40 at once into room for 40 (and the default tenant at the same time): all made.
    let (roomy, defaults) = tokio::join!(at_once(Some("roomy"), 40, "r"), at_once(None, 10, "d"));
    for r in roomy.iter().chain(&defaults) {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    assert_eq!(app.get("/tenants/roomy").await.body["users"], 40);
    assert_eq!(
        create_in(&app, "roomy", "one-more@x.org", None)
            .await
            .error(),
        (StatusCode::CONFLICT, "tenant_full")
    );
}

async fn import_csv(app: &TestApp, query: &str, csv: &str) -> Resp {
    app.send(
        Method::POST,
        &format!("/users/import{query}"),
        Some(("text/csv", Bytes::from(csv.to_owned()))),
        &[],
        true,
    )
    .await
}

#[tokio::test]
async fn import_and_export_carry_the_tenant() {
    let app = TestApp::spawn().await;
    create_tenant(&app, "acme", 100, 199, Some(3)).await;
    create_tenant(&app, "beta", 100, 199, None).await;
    create_in(&app, "acme", "taken@x.org", Some(100)).await;
    let before = state(&app).await;

    // Every bad row at once: an unknown tenant, a malformed one, a number outside the
    // row's tenant's range, one taken in its tenant, the same email twice in one tenant.
    let bad = "name,email,extension,tenant\n\
               A,a@x.org,,nobody\n\
               B,b@x.org,,Bad_Slug\n\
               C,c@x.org,1000,acme\n\
               D,d@x.org,100,acme\n\
               E,e@x.org,,beta\n\
               F,e@x.org,,beta\n";
    let r = import_csv(&app, "", bad).await;
    assert_eq!(
        r.error(),
        (StatusCode::UNPROCESSABLE_ENTITY, "import_invalid"),
        "{}",
        r.body
    );
    let errors: Vec<(i64, String, String)> = r.body["error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().unwrap(),
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (2, "tenant".into(), "validation_failed".into()),
            (3, "tenant".into(), "validation_failed".into()),
            (4, "extension".into(), "validation_failed".into()),
            (5, "extension".into(), "extension_taken".into()),
            (7, "email".into(), "duplicate_email".into()),
        ]
    );
    assert_eq!(
        r.body["error"]["errors"][0]["message"],
        "no tenant 'nobody'"
    );
    // More rows than a tenant has room for: 409 tenant_full, nothing created.
    let full = "name,email,tenant\nA,a@x.org,acme\nB,b@x.org,acme\nC,c@x.org,acme\n";
    assert_eq!(
        import_csv(&app, "", full).await.error(),
        (StatusCode::CONFLICT, "tenant_full")
    );
    assert_eq!(state(&app).await, before);

    // The same numbers and emails in different tenants, and rows naming none.
    let good = "tenant,name,email,extension\n\
                acme,A,same@x.org,\n\
                beta,B,same@x.org,100\n\
                ,C,same@x.org,\n\
                beta,D,d@x.org,\n";
    let plan = import_csv(&app, "?dry_run=true", good).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let planned: Vec<(String, i64)> = plan.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["tenant"].as_str().unwrap().to_owned(),
                u["extension"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("acme".to_owned(), 101),
        ("beta".to_owned(), 100),
        ("default".to_owned(), 1000),
        ("beta".to_owned(), 101),
    ];
    assert_eq!(planned, expected);
    let r = import_csv(&app, "", good).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let created: Vec<(String, i64, String)> = r.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["tenant"].as_str().unwrap().to_owned(),
                u["extension"].as_i64().unwrap(),
                u["sip_username"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        created,
        [
            ("acme".to_owned(), 101, "acme-101".to_owned()),
            ("beta".to_owned(), 100, "beta-100".to_owned()),
            ("default".to_owned(), 1000, "1000".to_owned()),
            ("beta".to_owned(), 101, "beta-101".to_owned()),
        ]
    );
    // JSON rows too.
    let r = app
        .post(
            "/users/import",
            json!({"users": [{"name": "J", "email": "j@x.org", "tenant": "acme"},
                             {"name": "K", "email": "k@x.org", "tenant": "nobody"}]}),
        )
        .await;
    assert_eq!(
        r.error(),
        (StatusCode::UNPROCESSABLE_ENTITY, "import_invalid")
    );
    assert_eq!(r.body["error"]["errors"][0]["row"], 1);
    assert_eq!(r.body["error"]["errors"][0]["field"], "tenant");

    // Export: the tenant column, and an export imported into an empty database gives the
    // same users in the same tenants with the same numbers.
    let csv = app
        .send(Method::GET, "/users/export?format=csv", None, &[], true)
        .await;
    let text = String::from_utf8(csv.raw.to_vec()).unwrap();
    assert!(text.starts_with("id,name,email,extension,devices,created_at,transport,tenant\n"));
    assert!(text.contains(",acme\n") && text.contains(",beta\n") && text.contains(",default\n"));
    let json_export = app.get("/users/export").await.body;
    let rows = |v: &Value| -> Vec<(String, i64, String)> {
        let mut r: Vec<_> = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["tenant"].as_str().unwrap().to_owned(),
                    u["extension"].as_i64().unwrap(),
                    u["email"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        r.sort();
        r
    };
    let other = TestApp::spawn().await;
    create_tenant(&other, "acme", 100, 199, None).await;
    create_tenant(&other, "beta", 100, 199, None).await;
    let r = import_csv(&other, "", &text).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        rows(&other.get("/users/export").await.body),
        rows(&json_export)
    );
}

/// A database as the version before tenants left it (migrated to 0007, with users and an
/// applied state) migrates with every user in `default`, numbers and secrets unchanged.
#[tokio::test]
async fn a_database_from_before_tenants_keeps_every_user_in_default() {
    let db = TestDb::create().await;
    let c = db.client().await;
    db.migrate_to(7).await;
    for (i, (name, email)) in [
        ("Ann", "ann@x.org"),
        ("Bob", "bob@x.org"),
        ("Cy", "cy@x.org"),
    ]
    .iter()
    .enumerate()
    {
        let secret = format!("secret-of-user-number-{i}x");
        c.query(
            "SELECT * FROM portal_create_user($1, $2, NULL, 1000, 1999, $3, 2::smallint,
                                              'transport-udp')",
            &[name, email, &secret],
        )
        .await
        .unwrap();
    }
    c.execute(
        "INSERT INTO applied_extensions (node, number, fingerprint)
         SELECT 'pbx1', number, '\\x01'::bytea FROM extensions",
        &[],
    )
    .await
    .unwrap();
    async fn read(
        c: &tokio_postgres::Client,
    ) -> (Vec<(i64, String, i32, String)>, Vec<(String, i32)>) {
        {
            let users: Vec<(i64, String, i32, String)> = c
                .query(
                    "SELECT u.id, u.email, e.number, e.secret FROM users u
                       JOIN extensions e ON e.user_id = u.id ORDER BY u.id",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            let applied: Vec<(String, i32)> = c
                .query(
                    "SELECT node, number FROM applied_extensions ORDER BY number",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            (users, applied)
        }
    }
    let before = read(&c).await;
    assert_eq!(before.0.len(), 3);

    let app = TestApp::start_on(db, tempfile::tempdir().unwrap(), &[]).await;
    let c = app.db().client().await;
    assert_eq!(
        read(&c).await,
        before,
        "numbers, secrets and applied state unchanged"
    );
    let tenants: Vec<(i64, String, String)> = c
        .query("SELECT id, slug, name FROM tenants", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(tenants, [(1, "default".to_owned(), "default".to_owned())]);
    let in_default: i64 = c
        .query_one(
            "SELECT count(*) FROM users u JOIN extensions e ON e.user_id = u.id
              WHERE u.tenant_id = 1 AND e.tenant_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_default, 3);
    let page = app.get("/users").await.body;
    for (u, (_, email, number, _)) in page["users"].as_array().unwrap().iter().zip(&before.0) {
        assert_eq!(u["email"], json!(email));
        assert_eq!(u["extension"], json!(number));
        assert_eq!(u["tenant"], "default");
        assert_eq!(u["sip_username"], json!(number.to_string()));
    }
    // Creates keep working in the default tenant, after the numbers taken before; a new
    // tenant's id comes after the default's.
    let d = app.create_user("New", "new@x.org").await;
    assert_eq!(
        (d["extension"].clone(), d["tenant"].clone()),
        (json!(1003), json!("default"))
    );
    create_tenant(&app, "acme", 100, 199, None).await;
    let id: i64 = c
        .query_one("SELECT id FROM tenants WHERE slug = 'acme'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, 2);
    // The earlier function's call (no tenant) still creates in the default tenant.
    let row = c
        .query_one(
            "SELECT extension FROM portal_create_user('Old', 'old@x.org', NULL, 1000, 1999,
                                                      'abcdefghijklmnopqrstuvwx')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1004);
}

/// A phone on the LAN registers under `name` (its SIP username) and answers qualify.
fn phone(ast: &crate::support::asterisk::FakeAsterisk, name: &str, port: u16) -> String {
    use crate::support::asterisk::Registration;
    let at = format!("192.0.2.10:{port}");
    let uri = format!("sip:{name}@{at}");
    ast.answer_qualify(name, &uri, Some(std::time::Duration::from_micros(400)));
    let mut r = Registration::new(name, &uri, at.parse().unwrap());
    r.expires = Some(std::time::Duration::from_secs(3600));
    ast.register_with(&r).unwrap();
    uri
}

fn answered(outcome: &crate::support::asterisk::CallOutcome) -> bool {
    matches!(
        outcome,
        crate::support::asterisk::CallOutcome::Answered { .. }
    )
}

#[tokio::test]
async fn two_companies_with_the_same_numbers_each_reach_only_their_own_phones() {
    use crate::support::asterisk::{CallOutcome, Offer, Options};
    use crate::support::{stand, PROBE_3S};

    let s = stand(Options::default(), &[PROBE_3S]).await;
    for slug in ["acme", "beta"] {
        create_tenant(&s.app, slug, 100, 199, None).await;
    }
    for (tenant, email) in [
        ("acme", "alice@acme.example"),
        ("acme", "bob@acme.example"),
        ("beta", "carol@beta.example"),
        ("beta", "dave@beta.example"),
    ] {
        let r = create_in(&s.app, tenant, email, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = s.app.create_user("Erin", "erin@default.example").await;
    assert_eq!(r["sip_username"], "1000");
    // An explicit number outside the tenant's range says whose range it is.
    let r = create_in(&s.app, "acme", "eve@acme.example", Some(500)).await;
    assert_eq!(
        (
            r.status,
            &r.body["error"]["field"],
            &r.body["error"]["message"]
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!("extension"),
            &json!("must be within the range 100-199 of tenant 'acme'")
        )
    );
    let acme = s.app.get("/users?tenant=acme").await.body;
    let names: Vec<&Value> = acme["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["sip_username"])
        .collect();
    assert_eq!(names, [&json!("acme-100"), &json!("acme-101")]);

    let r = s.app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rec = r.body;
    assert_eq!(rec["changes"]["added"], json!([1000]), "{rec}");
    assert_eq!(
        rec["changes"]["tenants"],
        json!({"acme": {"added": [100, 101], "removed": [], "changed": []},
               "beta": {"added": [100, 101], "removed": [], "changed": []}}),
        "{rec}"
    );
    assert_eq!(rec["health"]["proof"]["whole_files"], 6, "{rec}");
    assert_eq!(rec["health"]["checked"], 5, "{rec}");
    for file in [
        "generated_endpoints-acme.conf",
        "generated_endpoints-beta.conf",
    ] {
        assert!(s.app.pjsip_dir.join(file).exists(), "{file}");
    }
    assert_eq!(
        s.ast.field("endpoint", "acme-100", "context").as_deref(),
        Some("synergy-t-acme")
    );

    // acme's 101 is reachable, beta's is not registered: acme's 100 dialing 101 rings
    // acme's 101, beta's 100 dialing 101 does not ring acme's.
    let offer = Offer::rtp(&["g722", "ulaw", "alaw"]);
    phone(&s.ast, "acme-100", 5201);
    let acme_101 = phone(&s.ast, "acme-101", 5202);
    phone(&s.ast, "beta-100", 5203);
    assert!(answered(&s.ast.call("acme-100", "101", &offer)));
    assert!(!answered(&s.ast.call("beta-100", "101", &offer)));
    // Now only beta's 101 has a phone: the other way round.
    s.ast.unregister("acme-101", &acme_101).unwrap();
    phone(&s.ast, "beta-101", 5204);
    assert!(answered(&s.ast.call("beta-100", "101", &offer)));
    assert!(!answered(&s.ast.call("acme-100", "101", &offer)));
    // No dial string of acme's reaches beta or the default tenant, not even by name.
    for dialed in ["beta-101", "beta-100", "1000", "PJSIP/beta-101", "s"] {
        let outcome = s.ast.call("acme-100", dialed, &offer);
        assert!(
            matches!(outcome, CallOutcome::Refused { status: 404, .. }),
            "{dialed}: {outcome:?}"
        );
    }

    // One of beta's users changes: only beta's endpoints file is written, and the probe
    // visits only that user.
    let before = std::fs::read(s.app.pjsip_dir.join("generated_endpoints-acme.conf")).unwrap();
    let dave = s.app.get("/users?tenant=beta&q=dave").await.body["users"][0]["id"].clone();
    let r = s
        .app
        .post(&format!("/users/{dave}/secret"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rec = s.app.post("/apply", json!({})).await.body;
    assert_eq!(
        rec["changes"]["tenants"]["beta"]["changed"],
        json!([101]),
        "{rec}"
    );
    assert_eq!(rec["health"]["proof"]["visited"], 1, "{rec}");
    assert_eq!(
        std::fs::read(s.app.pjsip_dir.join("generated_endpoints-acme.conf")).unwrap(),
        before
    );

    // acme leaves: its users go, its files go, Asterisk holds none of its objects.
    for u in s.app.get("/users?tenant=acme").await.body["users"]
        .as_array()
        .unwrap()
    {
        let r = s.app.delete(&format!("/users/{}", u["id"])).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let r = s.app.delete("/tenants/acme").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s.app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["changes"]["tenants"]["acme"]["removed"],
        json!([100, 101]),
        "{}",
        r.body
    );
    assert!(!s
        .app
        .pjsip_dir
        .join("generated_endpoints-acme.conf")
        .exists());
    assert!(!s
        .app
        .dialplan_dir
        .join("generated_routing-acme.conf")
        .exists());
    assert!(!s.ast.endpoints().contains_key("acme-100"));
    assert!(s.ast.endpoints().contains_key("beta-100"));
}
