//! Shared test support: the service under test and the Asterisk stand-in.

pub mod app;
pub mod asterisk;
pub mod cluster;
pub mod https;
pub mod process;
pub mod proxy;
pub mod sse;
pub mod tls;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use app::{TestApp, TestDb};
use asterisk::{FakeAsterisk, Options};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A stand-in Asterisk whose astetcdir is `etc`, with the portal's include directories.
pub async fn standin(etc: &Path, opts: Options) -> FakeAsterisk {
    process::make_etc(etc);
    let (pjsip, dialplan) = process::include_dirs(etc);
    FakeAsterisk::start(etc, &pjsip, &dialplan, opts)
        .await
        .expect("stand-in starts")
}

/// The variables that point a portal at `ast`: AMI first, its CLI script as fallback.
pub fn ami_vars(ast: &FakeAsterisk) -> Vec<(String, String)> {
    [
        ("PORTAL_RELOAD", "ami".to_owned()),
        ("PORTAL_AMI_ADDR", ast.ami_addr().to_string()),
        ("PORTAL_AMI_USERNAME", "portal".into()),
        ("PORTAL_AMI_SECRET", "portal-secret".into()),
        ("PORTAL_ASTERISK_CLI", ast.cli_path().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A portal in this process wired to its own Asterisk stand-in, on a fresh database and
/// folder: the one test-app builder of the tests that apply against Asterisk.
pub struct Stand {
    pub app: TestApp,
    pub ast: FakeAsterisk,
}

/// The probe's deadline the apply tests run with: room for a loaded machine, short
/// enough that a probe that cannot succeed ends the test quickly.
pub const PROBE_3S: (&str, &str) = ("PORTAL_HEALTH_TIMEOUT_MS", "3000");

/// A [`Stand`] whose stand-in runs with `opts` and whose portal reloads over AMI first,
/// the stand-in's CLI script as fallback ([`ami_vars`]); `extra` sets or replaces
/// variables, a later pair over an earlier one.
pub async fn stand(opts: Options, extra: &[(&str, &str)]) -> Stand {
    stand_in(tempfile::tempdir().unwrap(), opts, extra).await
}

/// [`stand`] in `dirs`, where a test may have written the stand-in's pjsip.conf first
/// (`dirs/etc`: the stand-in keeps one it finds).
pub async fn stand_in(dirs: tempfile::TempDir, opts: Options, extra: &[(&str, &str)]) -> Stand {
    let db = TestDb::create().await;
    let ast = standin(&dirs.path().join("etc"), opts).await;
    let mut vars = ami_vars(&ast);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let app = TestApp::start_on(db, dirs, &pairs(&vars)).await;
    Stand { app, ast }
}

/// `(key, value)` pairs as the `&str` pairs the spawners take.
pub fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter()
        .map(|(k, val)| (k.as_str(), val.as_str()))
        .collect()
}

/// A loopback port that refuses every connection for as long as the tests run: bound
/// by this process and never listened on, so nothing else can take it. For a server
/// that must be down, instead of a fixed port that is merely usually free.
pub fn closed_port() -> u16 {
    static HELD: std::sync::OnceLock<(tokio::net::TcpSocket, u16)> = std::sync::OnceLock::new();
    HELD.get_or_init(|| {
        let s = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        s.bind(([127, 0, 0, 1], 0).into())
            .expect("bind a loopback port");
        let port = s.local_addr().expect("its address").port();
        (s, port)
    })
    .1
}

/// How often [`eventually`] looks.
const POLL: Duration = Duration::from_millis(5);

/// Waits until `probe` yields a value, looking every few milliseconds, and returns it;
/// panics naming `what` if that has not happened within `within`. Tests wait for the
/// event they need, never for a time that is usually long enough.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "waited {within:?} in vain until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition that needs to wait (a query, a request).
pub async fn wait_until_async<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(what, within, || {
        let fut = cond();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// [`eventually`] for a condition that can be checked without waiting.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    eventually(what, within, || std::future::ready(cond().then_some(()))).await
}

/// An RFC 3339 timestamp of a response body, as an instant. Timestamps are compared as
/// instants, never as strings: the `time` crate drops trailing zeros of the fraction, so
/// "…05.1Z" sorts after "…05.12Z" although it is earlier.
pub fn instant(v: &serde_json::Value) -> OffsetDateTime {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
}

#[tokio::test]
async fn the_closed_port_refuses_and_stays_taken() {
    let port = closed_port();
    assert_eq!(closed_port(), port, "one port for the whole run");
    let err = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
}

#[test]
fn instants_order_where_strings_do_not() {
    let (early, late) = (
        serde_json::json!("2026-11-30T08:00:05.1Z"),
        serde_json::json!("2026-11-30T08:00:05.12Z"),
    );
    assert!(
        early.as_str() > late.as_str(),
        "the trap this helper avoids"
    );
    assert!(instant(&early) < instant(&late));
}

#[tokio::test]
async fn eventually_returns_once_it_happens_and_panics_naming_what_did_not() {
    let mut n = 0;
    wait_until("three looks", Duration::from_secs(5), || {
        n += 1;
        n == 3
    })
    .await;
    assert_eq!(n, 3);
    let never = tokio::spawn(wait_until("never", Duration::from_millis(20), || false));
    let panic = never.await.unwrap_err().into_panic();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(msg.contains("in vain until never"), "{msg}");
}
