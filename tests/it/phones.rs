//! Phones wherever they are: the NAT options, codecs and per-user transports as a real
//! Asterisk 22.7 takes them (`shared/asterisk/nat`, `shared/asterisk/tls`), through the
//! whole loop against the stand-in: create, apply (with the probe reading the options
//! back), register, call. Addresses like 10.99.0.2 are data played to the stand-in:
//! nothing is ever sent to them.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support::app::TestApp;
use crate::support::asterisk::call::{CallOutcome, Offer, PhoneMedia};
use crate::support::asterisk::{FakeAsterisk, Options, Registration};
use crate::support::{self, Stand};

const LAN: &str = "127.0.0.1";

/// A portal with `vars` against its own stand-in, whose clocks run fast.
async fn portal(vars: &[(&str, &str)]) -> (TestApp, FakeAsterisk) {
    portal_in(tempfile::tempdir().unwrap(), vars).await
}

/// [`portal`] in `dirs`, where a test may have written the stand-in's pjsip.conf.
async fn portal_in(dirs: tempfile::TempDir, vars: &[(&str, &str)]) -> (TestApp, FakeAsterisk) {
    let opts = Options {
        qualify_time_scale: 0.002,
        ..Options::default()
    };
    let Stand { app, ast } = support::stand_in(dirs, opts, vars).await;
    (app, ast)
}

async fn apply(app: &TestApp) -> Value {
    let r = app.post("/apply", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["health"]["status"], "ok", "{}", r.body);
    r.body
}

/// A phone on the LAN registers (it writes the address it sends from) and answers qualify.
fn lan_phone(ast: &FakeAsterisk, ext: &str, port: u16) {
    let at = format!("{LAN}:{port}");
    let uri = format!("sip:{ext}@{at}");
    ast.answer_qualify(ext, &uri, Some(Duration::from_micros(400)));
    let mut r = Registration::new(ext, &uri, at.parse().unwrap());
    r.expires = Some(Duration::from_secs(3600));
    ast.register_with(&r).unwrap();
}

/// A phone behind a masquerading router: it writes its private address, its packets come
/// from the router's public one (F-NAT-1).
fn natted_phone(ext: &str) -> Registration {
    let mut r = Registration::behind_nat(
        ext,
        &format!("sip:{ext}@10.99.0.2:5062;transport=UDP"),
        "10.99.0.2:5062".parse().unwrap(),
        "10.97.0.2:5062".parse().unwrap(),
    );
    r.expires = Some(Duration::from_secs(3600));
    r
}

fn answered(outcome: &CallOutcome) -> (String, bool) {
    match outcome {
        CallOutcome::Answered {
            codec,
            media_to_callee,
            ..
        } => (codec.clone(), *media_to_callee),
        other => panic!("the call was not answered: {other:?}"),
    }
}

#[tokio::test]
async fn the_first_apply_after_the_upgrade_re_renders_every_endpoint_and_a_lan_phone_keeps_calling()
{
    // Before the upgrade: endpoints as they were rendered (no NAT options, ulaw and alaw).
    let before = [("PORTAL_NAT", "off"), ("PORTAL_CODECS", "ulaw,alaw")];
    let (app, ast) = portal(&before).await;
    app.create_user("Alice", "alice@x.org").await;
    app.create_user("Bob", "bob@x.org").await;
    apply(&app).await;
    assert_eq!(
        ast.field("endpoint", "1000", "rewrite_contact").as_deref(),
        Some("false")
    );
    lan_phone(&ast, "1000", 5101);
    lan_phone(&ast, "1001", 5102);
    let ulaw = Offer::rtp(&["g722", "ulaw", "alaw"]);
    assert_eq!(
        answered(&ast.call("1000", "1001", &ulaw)),
        ("ulaw".into(), true)
    );

    // The upgrade: the same database and Asterisk, today's defaults.
    let (db, dirs) = app.stop().await;
    let app = TestApp::start_on(db, dirs, &support::pairs(&support::ami_vars(&ast))).await;
    let pending = app.get("/apply/pending").await.body;
    assert_eq!(
        pending,
        json!({"pending": true, "added": [], "removed": [], "changed": [1000, 1001]}),
        "every endpoint differs from what was applied"
    );
    let rec = apply(&app).await;
    assert_eq!(rec["changes"]["changed"], json!([1000, 1001]));
    for ext in ["1000", "1001"] {
        for (option, value) in [
            ("rtp_symmetric", "true"),
            ("force_rport", "true"),
            ("rewrite_contact", "true"),
            ("allow", "(g722|ulaw|alaw)"),
        ] {
            assert_eq!(
                ast.field("endpoint", ext, option).as_deref(),
                Some(value),
                "{ext} {option}"
            );
        }
    }
    // The phones registered before the apply are still there and call, now in HD audio.
    assert_eq!(
        answered(&ast.call("1001", "1000", &ulaw)),
        ("g722".into(), true)
    );
    // And they keep registering.
    lan_phone(&ast, "1000", 5101);
    assert_eq!(
        answered(&ast.call("1001", "1000", &ulaw)),
        ("g722".into(), true)
    );
    assert_eq!(
        app.get("/apply/pending").await.body["pending"],
        false,
        "nothing left to apply"
    );
}

#[tokio::test]
async fn a_phone_behind_a_nat_is_called_with_the_options_and_not_without() {
    let codecs = Offer::rtp(&["ulaw"]);
    // Today's defaults: the contact is stored where the packets come from, qualify
    // reaches it, the call is answered and the audio reaches the phone (F-NAT-3, F-NAT-5).
    let (app, ast) = portal(&[]).await;
    app.create_user("Alice", "alice@x.org").await;
    app.create_user("Nat", "nat@x.org").await;
    apply(&app).await;
    lan_phone(&ast, "1000", 5101);
    ast.register_with(&natted_phone("1001")).unwrap();
    let rewritten = "sip:1001@10.97.0.2:5062;x-ast-orig-host=10.99.0.2:5062";
    ast.answer_qualify("1001", rewritten, Some(Duration::from_micros(625)));
    support::eventually(
        "the NATed phone is reachable",
        Duration::from_secs(10),
        || async {
            let users = app.get("/users?q=1001").await.body;
            (users["users"][0]["registration"]["contacts"][0]["status"] == "reachable")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        answered(&ast.call("1000", "1001", &codecs)),
        ("ulaw".into(), true)
    );

    // PORTAL_NAT=off, as the portal rendered before: the private contact, unreachable, and
    // a call that fails at once with no route (F-NAT-1, F-NAT-2).
    let (app, ast) = portal(&[("PORTAL_NAT", "off")]).await;
    app.create_user("Alice", "alice@x.org").await;
    app.create_user("Nat", "nat@x.org").await;
    apply(&app).await;
    lan_phone(&ast, "1000", 5101);
    ast.register_with(&natted_phone("1001")).unwrap();
    support::eventually(
        "the NATed phone is unreachable",
        Duration::from_secs(10),
        || async {
            let users = app.get("/users?q=1001").await.body;
            let c = &users["users"][0]["registration"]["contacts"][0];
            (c["status"] == "unreachable" && c["source"] == "10.99.0.2:5062").then_some(())
        },
    )
    .await;
    let refused = ast.call("1000", "1001", &codecs);
    assert_eq!(
        (refused.status_line(), refused.reason_header()),
        (
            Some("SIP/2.0 404 Not Found".to_owned()),
            Some("Reason: Q.850;cause=3".to_owned())
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_users_transport_is_chosen_edited_audited_and_refused_when_unknown() {
    let vars = [("PORTAL_PJSIP_TRANSPORTS", "transport-udp,transport-tcp")];
    let (app, ast) = portal(&vars).await;
    let alice = app.create_user("Alice", "alice@x.org").await;
    assert_eq!(alice["transport"], "transport-udp", "the first listed");
    // The served document states the rule the server applies (schemathesis reads it).
    let doc = app.get("/openapi.json").await.body;
    for schema in ["NewUser", "UserPatch", "ImportUser"] {
        assert_eq!(
            doc["components"]["schemas"][schema]["properties"]["transport"]["enum"],
            json!(["transport-udp", "transport-tcp"]),
            "{schema}"
        );
    }
    let r = app
        .post(
            "/users",
            json!({"name": "Bob", "email": "bob@x.org", "transport": "transport-tcp"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["transport"], "transport-tcp");
    apply(&app).await;
    assert_eq!(
        ast.field("endpoint", "1001", "transport").as_deref(),
        Some("transport-tcp")
    );

    // Unknown transports: 422 naming the field, nothing changed.
    let before = app.db_users().await;
    let r = app
        .post(
            "/users",
            json!({"name": "Eve", "email": "eve@x.org", "transport": "transport-tls"}),
        )
        .await;
    assert_eq!(
        r.refusal(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "transport"
        )
    );
    let id = alice["id"].as_i64().unwrap();
    let r = app.patch_user(id, json!({"transport": "udp"})).await;
    assert_eq!(
        r.refusal(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "transport"
        )
    );
    assert_eq!(app.db_users().await, before);
    assert_eq!(app.get("/apply/pending").await.body["pending"], false);

    // A move to another transport is an edit like any other: pending, audited, applied.
    let r = app
        .patch_user(id, json!({"transport": "transport-tcp"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["transport"], "transport-tcp");
    assert_eq!(
        app.get("/apply/pending").await.body,
        json!({"pending": true, "added": [], "removed": [], "changed": [1000]})
    );
    let audit = app.get("/audit?limit=1").await.body;
    assert_eq!(
        (
            &audit["entries"][0]["action"],
            &audit["entries"][0]["fields"]
        ),
        (&json!("user.updated"), &json!(["transport"])),
        "{audit}"
    );
    assert_eq!(
        ast.field("endpoint", "1000", "transport").as_deref(),
        Some("transport-udp"),
        "nothing reaches Asterisk before the apply"
    );
    let rec = apply(&app).await;
    assert_eq!(rec["changes"]["changed"], json!([1000]));
    assert_eq!(
        ast.field("endpoint", "1000", "transport").as_deref(),
        Some("transport-tcp")
    );
}

#[tokio::test]
async fn a_user_on_the_tls_transport_calls_encrypted_and_a_phone_without_srtp_is_refused() {
    let dirs = tempfile::tempdir().unwrap();
    let etc = dirs.path().join("etc");
    let (pjsip, _) = support::process::include_dirs(&etc);
    support::asterisk::write_tls_lab_pjsip_conf(&etc, &pjsip);
    let vars = [("PORTAL_PJSIP_TRANSPORTS", "transport-udp,transport-tls")];
    let (app, ast) = portal_in(dirs, &vars).await;
    app.create_user("Alice", "alice@x.org").await;
    let r = app
        .post(
            "/users",
            json!({"name": "Bob", "email": "bob@x.org", "transport": "transport-tls"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    app.create_user("Carol", "carol@x.org").await;
    // The probe reads the encryption back for every endpoint (each is new).
    let rec = apply(&app).await;
    assert_eq!(rec["health"]["checked"], 3, "{rec}");
    for (ext, transport, encryption) in [
        ("1000", "transport-udp", "no"),
        ("1001", "transport-tls", "sdes"),
    ] {
        assert_eq!(
            (
                ast.field("endpoint", ext, "transport").as_deref(),
                ast.field("endpoint", ext, "media_encryption").as_deref(),
                ast.field("endpoint", ext, "media_encryption_optimistic")
                    .as_deref(),
            ),
            (Some(transport), Some(encryption), Some("false")),
            "{ext}"
        );
    }
    lan_phone(&ast, "1000", 5101);
    lan_phone(&ast, "1001", 5102);
    lan_phone(&ast, "1002", 5103);

    // Both legs of a call to the TLS user: the UDP phone in the clear, the TLS phone with
    // SRTP, answered in HD audio (F-TLS-2).
    let mixed = Offer {
        caller: PhoneMedia::rtp(&["g722", "ulaw"]),
        callee: PhoneMedia::srtp(&["g722", "ulaw"]),
    };
    assert_eq!(
        answered(&ast.call("1000", "1001", &mixed)),
        ("g722".into(), true)
    );
    assert_eq!(
        answered(&ast.call(
            "1001",
            "1000",
            &Offer {
                caller: mixed.callee.clone(),
                callee: mixed.caller.clone()
            }
        )),
        ("g722".into(), true)
    );
    // A TLS phone that offers no crypto is refused, not downgraded (optimistic=no).
    let plain = ast.call("1001", "1000", &Offer::rtp(&["g722"]));
    assert_eq!(
        plain.status_line().as_deref(),
        Some("SIP/2.0 488 Not Acceptable Here"),
        "{plain:?}"
    );
    // Without res_srtp every SDES call fails the same way (F-TLS-1).
    ast.set_srtp_loaded(false);
    let no_srtp = ast.call("1000", "1001", &mixed);
    assert_eq!(
        no_srtp.status_line().as_deref(),
        Some("SIP/2.0 488 Not Acceptable Here"),
        "{no_srtp:?}"
    );
    // Calls between UDP users are unaffected.
    assert_eq!(
        answered(&ast.call("1000", "1002", &Offer::rtp(&["ulaw"]))),
        ("ulaw".into(), true)
    );
}
