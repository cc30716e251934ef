//! Tenants' files as Asterisk takes them, without the database (the tenants' schema is
//! another branch's): users of three tenants, two of which both have extensions 100 and
//! 101, rendered by the library, written, reloaded by the stand-in, called and probed.
//! A phone dials its own company's numbers only; the probe proves every file whole and
//! checks each extension by name in its tenant's context.

use std::time::Duration;

use pbx_portal::asterisk::ami;
use pbx_portal::asterisk::files::replace;
use pbx_portal::asterisk::probe::{Expectation, Object, ProbeServer, Verdict};
use pbx_portal::asterisk::render::{self, Rendered};
use pbx_portal::config::{AmiSettings, Codecs, EndpointPolicy};
use pbx_portal::domain::{
    sip_name, Devices, Extension, SipSecret, Subscriber, TenantSlug, TransportId, Transports,
};

use crate::support::asterisk::call::{CallOutcome, Offer};
use crate::support::asterisk::{FakeAsterisk, Options, Registration};

fn user(tenant: &str, ext: i32) -> Subscriber {
    Subscriber {
        extension: Extension::from_stored(ext),
        name: format!("User {tenant} {ext}"),
        secret: SipSecret::generate(),
        devices: Devices::ONE,
        transport: Some("transport-udp".into()),
        tenant: TenantSlug::parse(tenant).unwrap(),
    }
}

fn policy() -> EndpointPolicy {
    EndpointPolicy {
        transports: Transports::new(vec![TransportId::udp()]).unwrap(),
        tls: Default::default(),
        nat: true,
        codecs: Codecs::default(),
        qualify_frequency: 60,
    }
}

struct Host {
    _dir: tempfile::TempDir,
    ast: FakeAsterisk,
    pjsip: std::path::PathBuf,
    dialplan: std::path::PathBuf,
    probe: ProbeServer,
}

async fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let (pjsip, dialplan) = (etc.join("pjsip.d"), etc.join("extensions.d"));
    std::fs::create_dir_all(&pjsip).unwrap();
    std::fs::create_dir_all(&dialplan).unwrap();
    let opts = Options {
        qualify_time_scale: 0.002,
        ..Options::default()
    };
    let ast = FakeAsterisk::start(&etc, &pjsip, &dialplan, opts)
        .await
        .unwrap();
    let probe = ProbeServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Host {
        _dir: dir,
        ast,
        pjsip,
        dialplan,
        probe,
    }
}

impl Host {
    fn render(&self, users: &[Subscriber]) -> Rendered {
        let policy = policy();
        render::render_checked(
            users,
            &render::Settings {
                policy: &policy,
                agi_addr: self.probe.addr(),
            },
        )
        .unwrap()
    }

    /// Writes every tenant's files (as the apply does, without the database) and reloads.
    async fn apply(&self, rendered: &Rendered) {
        for f in &rendered.files {
            replace(
                &self.pjsip,
                &f.endpoints_name(),
                Some(f.endpoints.as_bytes()),
            )
            .unwrap();
            replace(
                &self.dialplan,
                &f.routing_name(),
                Some(f.routing.as_bytes()),
            )
            .unwrap();
        }
        let mut ami = self.ami().await;
        for cmd in ["module reload res_pjsip.so", "dialplan reload"] {
            assert!(ami.command(cmd).await.unwrap().is_success(), "{cmd}");
        }
    }

    async fn ami(&self) -> ami::Client {
        ami::Client::login(&AmiSettings {
            addr: self.ast.ami_addr(),
            username: "portal".into(),
            secret: "portal-secret".into(),
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap()
    }

    /// The probe of every extension of `users` and every file, and `absent` gone.
    async fn probe(
        &self,
        rendered: &Rendered,
        users: &[Subscriber],
        absent: &[(&str, u32)],
    ) -> Verdict {
        let expect = Expectation {
            present: users
                .iter()
                .map(|s| {
                    let object = Object {
                        name: sip_name(&s.tenant, s.extension),
                        context: render::context_of(s.tenant.as_str()),
                        number: s.extension.get(),
                    };
                    (object, 1, None)
                })
                .collect(),
            absent: absent
                .iter()
                .map(|(tenant, n)| Object {
                    name: render::object_name(tenant, *n),
                    context: render::context_of(tenant),
                    number: *n,
                })
                .collect(),
            unvisited: 0,
            marker: rendered.marker().to_owned(),
            sentinels: rendered
                .files
                .iter()
                .map(|f| (f.endpoints_name(), f.sentinel.clone()))
                .collect(),
            dialplan_proofs: rendered
                .files
                .iter()
                .filter(|f| !f.tenant.is_default())
                .map(|f| (f.routing_name(), f.routing_proof.clone()))
                .collect(),
        };
        let probes = self.probe.probes();
        let (token, verdict) = probes.register(expect);
        let channel = format!("Local/probe-{token}@{}", render::PROBE_CONTEXT);
        let fields = [
            ("Channel", channel.as_str()),
            ("Application", "Wait"),
            ("Data", "12"),
            ("Async", "true"),
        ];
        let mut ami = self.ami().await;
        assert!(ami.action("Originate", &fields).await.unwrap().is_success());
        tokio::time::timeout(Duration::from_secs(10), verdict)
            .await
            .expect("a verdict")
            .unwrap()
    }

    /// A phone registered for `name` on the LAN, answering qualify.
    fn phone(&self, name: &str, port: u16) {
        let at = format!("127.0.0.1:{port}");
        let uri = format!("sip:{name}@{at}");
        self.ast
            .answer_qualify(name, &uri, Some(Duration::from_micros(400)));
        let mut r = Registration::new(name, &uri, at.parse().unwrap());
        r.expires = Some(Duration::from_secs(3600));
        self.ast.register_with(&r).unwrap();
    }
}

fn answered(o: &CallOutcome) -> bool {
    matches!(o, CallOutcome::Answered { .. })
}

fn not_found(o: &CallOutcome) -> bool {
    matches!(o, CallOutcome::Refused { status: 404, .. })
}

#[tokio::test]
async fn each_tenants_phones_reach_their_own_extensions_only_and_every_file_is_proven() {
    let h = host().await;
    let users = [
        user("acme", 100),
        user("acme", 101),
        user("beta", 100),
        user("beta", 101),
        user("default", 100),
        user("default", 101),
    ];
    let rendered = h.render(&users);
    h.apply(&rendered).await;
    for (name, context) in [
        ("acme-100", "synergy-t-acme"),
        ("beta-101", "synergy-t-beta"),
        ("100", "synergy-internal"),
    ] {
        assert_eq!(
            h.ast.field("endpoint", name, "context").as_deref(),
            Some(context)
        );
        assert_eq!(h.ast.field("auth", name, "username").as_deref(), Some(name));
    }

    // Only acme's 101 has a phone yet; every caller has one.
    for (name, port) in [
        ("acme-100", 5201),
        ("beta-100", 5202),
        ("100", 5203),
        ("acme-101", 5204),
    ] {
        h.phone(name, port);
    }
    let offer = Offer::rtp(&["g722", "ulaw", "alaw"]);
    // acme's 100 dials 101 and reaches acme's 101.
    assert!(answered(&h.ast.call("acme-100", "101", &offer)));
    // beta's 100 dialing 101 goes to beta's 101, which has no phone: not acme's.
    let beta = h.ast.call("beta-100", "101", &offer);
    assert!(
        matches!(beta, CallOutcome::Refused { status: 404, ref reason, .. } if reason.as_deref() == Some("Q.850;cause=3")),
        "{beta:?}"
    );
    h.phone("beta-101", 5205);
    assert!(answered(&h.ast.call("beta-100", "101", &offer)));
    // The default tenant's 100 dialing 101 reaches its own 101 (no phone: cause 3), never
    // acme's; and no dial string of one tenant reaches another's endpoints by name.
    let own = h.ast.call("100", "101", &offer);
    assert!(
        matches!(
            own,
            CallOutcome::Refused {
                reason: Some(_),
                ..
            }
        ),
        "{own:?}"
    );
    for (from, dialed) in [
        ("acme-100", "beta-101"),
        ("acme-100", "beta-100"),
        ("beta-100", "acme-101"),
        ("100", "acme-101"),
        ("acme-100", "portal_proof_x"),
        ("acme-100", "s"),
    ] {
        let o = h.ast.call(from, dialed, &offer);
        assert!(not_found(&o), "{from} dialing {dialed}: {o:?}");
    }
    // Nor a tenant's own proof context, whatever is dialled into it.
    let proof = &rendered.files[1].routing_proof;
    assert!(not_found(&h.ast.call("acme-100", proof, &offer)));

    // The probe: six extensions by name in their contexts, six files read whole.
    let v = h.probe(&rendered, &users, &[]).await;
    assert!(v.is_ok(), "{:?}", v.missing);
    assert_eq!((v.checked, v.visited, v.whole_files), (6, 6, 6));
}

#[tokio::test]
async fn a_tenant_file_not_read_whole_or_a_removed_tenant_still_live_is_caught() {
    let h = host().await;
    let users = [user("acme", 100), user("acme", 101), user("default", 100)];
    let rendered = h.render(&users);
    h.apply(&rendered).await;
    let v = h.probe(&rendered, &users, &[]).await;
    assert!(v.is_ok(), "{:?}", v.missing);
    assert_eq!(v.whole_files, 4);

    // acme's endpoints file cut short on disk before the reload, inside its sentinel (at
    // a line: a torn line would be a parse error that drops the files after it too).
    let acme = &rendered.files[1];
    let cut = acme.endpoints.strip_suffix("max_contacts=1\n").unwrap();
    replace(&h.pjsip, &acme.endpoints_name(), Some(cut.as_bytes())).unwrap();
    let mut ami = h.ami().await;
    assert!(ami
        .command("module reload res_pjsip.so")
        .await
        .unwrap()
        .is_success());
    let v = h.probe(&rendered, &users, &[]).await;
    assert!(
        v.missing
            .iter()
            .any(|m| m.starts_with("Asterisk did not read generated_endpoints-acme.conf whole")),
        "{:?}",
        v.missing
    );
    assert_eq!(v.whole_files, 3);

    // acme has no users left, but its files stayed behind: the probe of the removed
    // extensions says they are still live (the guard removes such files: unit-tested).
    h.apply(&rendered).await;
    let alone = [user("default", 100)];
    let without = h.render(&alone);
    assert_eq!(without.files.len(), 1);
    h.apply(&without).await;
    let v = h
        .probe(&without, &alone, &[("acme", 100), ("acme", 101)])
        .await;
    assert!(
        v.missing
            .iter()
            .any(|m| m == "endpoint acme-100 was removed but is still live"),
        "{:?}",
        v.missing
    );
    assert!(v
        .missing
        .iter()
        .any(|m| m == "dialplan extension 101 of synergy-t-acme was removed but is still live"));
    // Once the files are gone, so is everything of acme.
    replace(&h.pjsip, "generated_endpoints-acme.conf", None).unwrap();
    replace(&h.dialplan, "generated_routing-acme.conf", None).unwrap();
    h.apply(&without).await;
    let v = h
        .probe(&without, &alone, &[("acme", 100), ("acme", 101)])
        .await;
    assert!(v.is_ok(), "{:?}", v.missing);
    assert_eq!((v.checked, v.whole_files), (3, 2));
}

/// What the database and the apply do with another tenant's applied state, before the
/// tenants' schema exists: as if tenant acme's extension 1000 had been applied (its files
/// on disk, its applied row) and acme were gone since. The default tenant's 1000 is
/// another object and stays.
#[tokio::test]
async fn a_gone_tenants_extension_is_pending_removed_by_tenant_and_its_files_go() {
    use crate::support::{self, Stand, PROBE_3S};
    use serde_json::json;

    let Stand { app, ast } = support::stand(Options::default(), &[PROBE_3S]).await;
    app.create_user("Alice", "alice@x.org").await;
    let first = app.post("/apply", json!({})).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body["changes"].get("tenants").is_none(),
        "{}",
        first.body
    );

    // acme's 1000, as an apply would have left it.
    let policy = policy();
    let acme = render::render_checked(
        &[user("acme", 1000), user("default", 1000)],
        &render::Settings {
            policy: &policy,
            agi_addr: app.agi_addr,
        },
    )
    .unwrap();
    let files = &acme.files[1];
    replace(
        &app.pjsip_dir,
        &files.endpoints_name(),
        Some(files.endpoints.as_bytes()),
    )
    .unwrap();
    replace(
        &app.dialplan_dir,
        &files.routing_name(),
        Some(files.routing.as_bytes()),
    )
    .unwrap();
    ast.cli("module reload res_pjsip.so");
    ast.cli("dialplan reload");
    assert_eq!(
        ast.field("endpoint", "acme-1000", "context").as_deref(),
        Some("synergy-t-acme")
    );
    let db = app.db().client().await;
    db.execute(
        "INSERT INTO applied_extensions (node, tenant, number, fingerprint)
         SELECT node, 'acme', number, fingerprint FROM applied_extensions WHERE number = 1000",
        &[],
    )
    .await
    .unwrap();
    // Applied state is written by applies only, each with its hash: this one was another's.
    db.execute("UPDATE nodes SET applied_hash = 'applied elsewhere'", &[])
        .await
        .unwrap();

    let pending = app.get("/apply/pending").await.body;
    assert_eq!(
        pending,
        json!({"pending": true, "added": [], "removed": [], "changed": [],
               "tenants": {"acme": {"added": [], "removed": [1000], "changed": []}}})
    );
    let rec = app.post("/apply", json!({})).await;
    assert_eq!(rec.status, 200, "{}", rec.body);
    assert_eq!(
        rec.body["changes"],
        json!({"added": [], "removed": [], "changed": [],
               "tenants": {"acme": {"added": [], "removed": [1000], "changed": []}}})
    );
    assert_eq!(rec.body["health"]["status"], "ok", "{}", rec.body);
    // acme-1000 proven gone (endpoint, aor, its context's 1000) and the default 1000
    // proven (visited or not: the reload above was someone else's); two files whole.
    assert_eq!(rec.body["health"]["checked"], 2, "{}", rec.body);
    assert_eq!(
        rec.body["health"]["proof"]["whole_files"], 2,
        "{}",
        rec.body
    );
    assert!(!app.pjsip_dir.join("generated_endpoints-acme.conf").exists());
    assert!(!app
        .dialplan_dir
        .join("generated_routing-acme.conf")
        .exists());
    assert_eq!(ast.field("endpoint", "acme-1000", "context"), None);
    assert_eq!(
        ast.field("endpoint", "1000", "context").as_deref(),
        Some("synergy-internal")
    );
    let rows: Vec<(String, i32)> = db
        .query(
            "SELECT tenant, number FROM applied_extensions ORDER BY tenant",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [("default".to_owned(), 1000)]);
    let after = app.get("/apply/pending").await.body;
    assert_eq!(
        after,
        json!({"pending": false, "added": [], "removed": [], "changed": []})
    );
}

/// The upgrade: a node's applied state from before tenants (rows without a tenant) is the
/// default tenant's, and since the default tenant renders as before, nothing is pending
/// and the first apply after the upgrade changes nothing.
#[tokio::test]
async fn an_applied_state_from_before_tenants_is_the_default_tenants_and_nothing_is_pending() {
    use crate::support::app::TestApp;
    use serde_json::json;

    let app = TestApp::spawn().await;
    app.create_user("Alice", "alice@x.org").await;
    app.create_user("Bob", "bob@x.org").await;
    let first = app.post("/apply", json!({})).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // Back to the schema before migration 9, keeping the rows an apply wrote.
    let db = app.db().client().await;
    db.batch_execute(
        "ALTER TABLE applied_extensions DROP CONSTRAINT applied_extensions_pkey;
         ALTER TABLE applied_extensions DROP COLUMN tenant;
         ALTER TABLE applied_extensions ADD PRIMARY KEY (node, number);
         DELETE FROM schema_migrations WHERE version = 9;",
    )
    .await
    .unwrap();
    drop(db);
    let before = std::fs::read(app.pjsip_dir.join(render::ENDPOINTS_FILE)).unwrap();
    let (db, dirs) = app.stop().await;
    let app = TestApp::start_on(db, dirs, &[]).await;
    let db = app.db().client().await;
    let rows: Vec<(String, i32)> = db
        .query(
            "SELECT tenant, number FROM applied_extensions ORDER BY number",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [("default".to_owned(), 1000), ("default".to_owned(), 1001)]
    );
    assert_eq!(
        app.get("/apply/pending").await.body,
        json!({"pending": false, "added": [], "removed": [], "changed": []})
    );
    let rec = app.post("/apply", json!({})).await;
    assert_eq!(rec.status, 200, "{}", rec.body);
    assert_eq!(
        rec.body["changes"],
        json!({"added": [], "removed": [], "changed": []})
    );
    // Not one byte of the endpoints changed (this test's portal listens for the probe on
    // another port after its restart, so the routing file's probe context does differ).
    let endpoints = std::fs::read(app.pjsip_dir.join(render::ENDPOINTS_FILE)).unwrap();
    assert_eq!(endpoints, before);
}
