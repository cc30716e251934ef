//! Load benchmark: `cargo bench --bench load`.
//!
//! Starts the release binary against a fresh database and prints, in one run:
//! create throughput at 1 and 32 clients (p50/p99) and GET /users latency with 1000 users,
//! each without and with Prometheus scraping `/metrics` every second; PostgreSQL's own rate
//! for the same allocation transaction (the `portal_create_user` call the service makes)
//! and for a bare two-row insert, apply of 1000 users with files only, rendering of 1000
//! users, what counting a request and encoding a scrape cost in process, and the service's
//! resident memory. Numbers are printed, never asserted: they depend on the machine.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use pbx_portal::asterisk::files::replace;
use pbx_portal::asterisk::probe::{Expectation, ProbeServer};
use pbx_portal::asterisk::{ami, render};
use pbx_portal::config::AmiSettings;
use pbx_portal::domain::{Devices, Extension, SipSecret, Subscriber};
use pbx_portal::metrics::{Live, Metrics};
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

#[allow(unused, clippy::all)]
#[path = "../tests/it/support/asterisk/mod.rs"]
mod asterisk;

const TOKEN: &str = "bench-token-0123456789abcdef";
type Http = Client<HttpConnector, Full<Bytes>>;

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    c
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

struct Stats {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort_unstable();
    Stats {
        rate: lat.len() as f64 / wall.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

async fn call(
    http: &Http,
    base: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> (u16, Bytes) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {TOKEN}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = http.request(req).await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// The latencies of a measure, the wall time it took and (when measured) the CPU time
/// the service used meanwhile; runs of the same measure add up.
#[derive(Default)]
struct Run {
    lat: Vec<Duration>,
    wall: Duration,
    cpu: Duration,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.lat.extend(other.lat);
        self.wall += other.wall;
        self.cpu += other.cpu;
    }

    /// The service's CPU time per request: unlike latency, hardly moved by whatever else
    /// runs on the machine.
    fn cpu_per_request(&self) -> Duration {
        self.cpu / u32::try_from(self.lat.len().max(1)).unwrap_or(u32::MAX)
    }

    fn stats(self) -> Stats {
        stats(self.lat, self.wall)
    }
}

/// Joins the clients and gathers their latencies.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>, start: Instant) -> Run {
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    Run {
        lat,
        wall: start.elapsed(),
        cpu: Duration::ZERO,
    }
}

/// `n` sequential GET /users of a 1000-user page.
async fn lists(http: &Http, base: &str, n: usize) -> Run {
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let (status, body) = call(http, base, Method::GET, "/users", None).await;
        assert!(status == 200 && body.len() > 100_000);
        lat.push(t.elapsed());
    }
    Run {
        lat,
        wall: t0.elapsed(),
        cpu: Duration::ZERO,
    }
}

/// Prometheus: `GET /metrics` every second (the first at once) until stopped.
struct Scraper {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Run>,
}

impl Scraper {
    fn start(http: &Http, base: &str) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (http, base) = (http.clone(), base.to_owned());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut run = Run::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return run,
                }
                let t = Instant::now();
                let (status, body) = call(&http, &base, Method::GET, "/metrics", None).await;
                assert!(status == 200 && body.ends_with(b"# EOF\n"), "{status}");
                run.lat.push(t.elapsed());
                run.wall += Duration::from_secs(1);
            }
        });
        Self { stop, task }
    }

    async fn stop(self) -> Run {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}

/// What counting requests costs in process: ns per request counted, from `threads`
/// threads at once on the same series (the worst case: every thread on the same atomics).
fn count_requests(m: &Metrics, threads: usize, per_thread: usize) -> f64 {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for i in 0..per_thread {
                    m.http_request(
                        std::hint::black_box("/users/{id}"),
                        "GET",
                        200,
                        Duration::from_micros(700 + (i % 200) as u64),
                    );
                }
            });
        }
    });
    t0.elapsed().as_nanos() as f64 / per_thread as f64
}

/// `total` creates spread over `clients` concurrent clients.
async fn creates(http: &Http, base: &str, clients: usize, total: usize, tag: &str) -> Run {
    let start = Instant::now();
    let per = total / clients;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, tag) = (http.clone(), base.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let body =
                    format!(r#"{{"name":"Bench {c} {i}","email":"{tag}-{c}-{i}@bench.example"}}"#);
                let t = Instant::now();
                let (status, _) = call(&http, &base, Method::POST, "/users", Some(body)).await;
                assert_eq!(status, 201);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    gather(tasks, start).await
}

/// The same allocation transaction straight over tokio-postgres, one connection per client.
async fn raw_creates(url: &str, clients: usize, total: usize, tag: &str, bare: bool) -> Run {
    let per = total / clients;
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(pg(url).await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in conns.into_iter().enumerate() {
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let create = client.prepare("SELECT * FROM portal_create_user($1, $2, NULL, 10000, 999999, $3, 1::smallint)").await.unwrap();
            let bare_stmt = client
                .prepare("WITH u AS (INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id)
                          INSERT INTO extensions (number, user_id, secret) SELECT $4, id, $3 FROM u")
                .await
                .unwrap();
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let name = format!("Raw {c} {i}");
                let email = format!("{tag}-{c}-{i}@raw.example");
                let secret = SipSecret::generate();
                let t = Instant::now();
                if bare {
                    let n = (2_000_000 + c * 100_000 + i) as i32;
                    client.execute(&bare_stmt, &[&name, &email, &secret.expose(), &n]).await.unwrap();
                } else {
                    client.query(&create, &[&name, &email, &secret.expose()]).await.unwrap();
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    gather(tasks, start).await
}

/// CPU time (user + system, all threads) the process has used so far: /proc/<pid>/stat
/// fields 14 and 15, in clock ticks of 10 ms (CLK_TCK = 100 on Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count after it.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// Runs `measure` and records the service's CPU time it took.
async fn on_service(pid: u32, measure: impl std::future::Future<Output = Run>) -> Run {
    let before = cpu_time(pid);
    let mut run = measure.await;
    run.cpu = cpu_time(pid).saturating_sub(before);
    run
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A child process that is killed however the benchmark ends (a failed assertion too).
struct Service(std::process::Child);

impl Service {
    /// `pbx-portal serve` on a free loopback port with 1000-user-friendly defaults plus
    /// `vars`; returns once it accepts connections, with its base URL.
    async fn start(
        db_url: &str,
        pjsip: &std::path::Path,
        dialplan: &std::path::Path,
        vars: &[(&str, String)],
    ) -> (Self, String) {
        let port = free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pbx-portal"));
        cmd.arg("serve")
            .env("DATABASE_URL", db_url)
            .env("PORTAL_API_TOKEN", TOKEN)
            .env("PORTAL_LISTEN", format!("127.0.0.1:{port}"))
            .env("PORTAL_AGI_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("PORTAL_PJSIP_DIR", pjsip)
            .env("PORTAL_DIALPLAN_DIR", dialplan)
            .env("PORTAL_EXTENSION_MIN", "10000")
            .env("PORTAL_EXTENSION_MAX", "999999")
            // As deployed: one info line per request, written to a file (the journal's
            // cost is of the same order: one write per line).
            .env("RUST_LOG", "info")
            .stderr(
                std::fs::File::create(pjsip.with_file_name(format!("service-{port}.log")))
                    .expect("service log file"),
            );
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let service = Service(cmd.spawn().expect("start pbx-portal"));
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (service, format!("http://127.0.0.1:{port}"))
    }
}

/// `n` applies, each after changing the secret of `number` so that it has work to do;
/// `check` looks at each answer.
async fn applies(
    http: &Http,
    base: &str,
    db: &tokio_postgres::Client,
    n: usize,
    number: i32,
    check: impl Fn(&serde_json::Value),
) -> Stats {
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for i in 0..n {
        let secret = format!("benchsecret{number}x{i:06}xxxxxx");
        db.execute(
            "UPDATE extensions SET secret = $1 WHERE number = $2",
            &[&secret, &number],
        )
        .await
        .unwrap();
        let t = Instant::now();
        let (status, body) = call(http, base, Method::POST, "/apply", None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        lat.push(t.elapsed());
        check(&serde_json::from_slice(&body).unwrap());
    }
    stats(lat, t0.elapsed())
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let admin = admin_url();
    let db = format!("pbx_portal_bench_{}", std::process::id());
    pg(&admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let dir = tempfile::tempdir().unwrap();
    let (pjsip, dialplan) = (dir.path().join("pjsip"), dir.path().join("dialplan"));
    std::fs::create_dir_all(&pjsip).unwrap();
    std::fs::create_dir_all(&dialplan).unwrap();
    let (child, base) =
        Service::start(&url, &pjsip, &dialplan, &[("PORTAL_RELOAD", "none".into())]).await;
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http();
    // `serve` listens only after migrating: it is ready; let it settle before RSS.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(child.0.id());

    let admin_db = pg(&url).await;
    let reset = || async {
        admin_db
            .batch_execute("TRUNCATE users CASCADE")
            .await
            .unwrap()
    };

    println!(
        "pbx-portal load benchmark ({} cores; client, service and PostgreSQL share them)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<52} {:>12} {:>10} {:>10}",
        "measure", "rate", "p50", "p99"
    );
    let row = |name: &str, s: &Stats| {
        println!(
            "{name:<52} {:>10.0}/s {:>10} {:>10}",
            s.rate,
            ms(s.p50),
            ms(s.p99)
        )
    };

    creates(&http, &base, 8, 400, "warm").await;
    // The service's measures without and with Prometheus scraping /metrics every second,
    // in four passes ordered without, with, with, without (a drift of the machine over
    // the run weighs on both alike); each pass spans several scrapes.
    let mut c1: [Run; 2] = Default::default();
    let mut c32: [Run; 2] = Default::default();
    let mut list: [Run; 2] = Default::default();
    let mut scrapes = Run::default();
    let pid = child.0.id();
    for (pass, scraped) in [false, true, true, false].into_iter().enumerate() {
        let scraper = scraped.then(|| Scraper::start(&http, &base));
        let i = usize::from(scraped);
        for block in 0..2 {
            reset().await;
            let tag = format!("c1-{pass}-{block}");
            c1[i].add(on_service(pid, creates(&http, &base, 1, 1000, &tag)).await);
        }
        reset().await;
        let tag = format!("c32-{pass}");
        c32[i].add(on_service(pid, creates(&http, &base, 32, 4000, &tag)).await);
        reset().await;
        creates(&http, &base, 10, 1000, &format!("list-{pass}")).await;
        list[i].add(on_service(pid, lists(&http, &base, 1500)).await);
        if let Some(s) = scraper {
            scrapes.add(s.stop().await);
        }
    }
    // With the service's CPU time per request: the column least moved by a busy machine.
    let row_cpu = |name: &str, run: Run| {
        let cpu = run.cpu_per_request();
        let s = run.stats();
        println!(
            "{name:<52} {:>10.0}/s {:>10} {:>10}   CPU {:>4.0} µs/request",
            s.rate,
            ms(s.p50),
            ms(s.p99),
            cpu.as_secs_f64() * 1e6
        );
        s
    };
    let scraped = ", /metrics scraped every 1 s";
    let [c1, c1_scraped] = c1;
    let [c32, c32_scraped] = c32;
    let [list, list_scraped] = list;
    row_cpu("POST /users, 1 client", c1);
    row_cpu(&format!("POST /users, 1 client{scraped}"), c1_scraped);
    let c32 = row_cpu("POST /users, 32 clients", c32);
    row_cpu(&format!("POST /users, 32 clients{scraped}"), c32_scraped);
    row_cpu("GET /users (1000 users, ~140 KB)", list);
    row_cpu(&format!("GET /users{scraped}"), list_scraped);
    let scrape_count = scrapes.lat.len();
    row(
        &format!("  GET /metrics itself ({scrape_count} scrapes, 1/s)"),
        &scrapes.stats(),
    );

    reset().await;
    let raw1 = raw_creates(&url, 1, 1000, "r1", false).await.stats();
    row("PostgreSQL portal_create_user(), 1 client", &raw1);
    reset().await;
    let raw32 = raw_creates(&url, 32, 4000, "r32", false).await.stats();
    row("PostgreSQL portal_create_user(), 32 clients", &raw32);
    reset().await;
    let bare32 = raw_creates(&url, 32, 4000, "b32", true).await.stats();
    row("PostgreSQL bare 2-row insert (no allocation), 32", &bare32);
    reset().await;
    println!(
        "{:<52} {:>11.2}x",
        "  service / raw allocation rate at 32 clients",
        c32.rate / raw32.rate
    );
    creates(&http, &base, 10, 1000, "list").await;
    // The same page straight from PostgreSQL: what the service adds is the difference.
    let page = "SELECT u.id, u.name, u.email, e.number, u.created_at FROM users u
                  JOIN extensions e ON e.user_id = u.id ORDER BY e.number ASC, e.number ASC
                 LIMIT $1 OFFSET $2";
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        let rows = admin_db
            .query_typed(page, &[(&1001i64, Type::INT8), (&0i64, Type::INT8)])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1000);
        lat.push(t.elapsed());
    }
    row(
        "PostgreSQL: the same page, tokio-postgres",
        &stats(lat, t0.elapsed()),
    );

    let files_only = applies(&http, &base, &admin_db, 40, 10000, |_| {}).await;
    row("POST /apply, 1000 users, PORTAL_RELOAD=none", &files_only);
    let files_only_p50 = files_only.p50;

    let subs: Vec<Subscriber> = (0..1000)
        .map(|i| Subscriber {
            extension: Extension::from_stored(1000 + i),
            name: format!("User Number {i}"),
            secret: SipSecret::generate(),
            devices: Devices::ONE,
        })
        .collect();
    let settings = render::Settings {
        transport: "transport-udp",
        qualify_frequency: 60,
        agi_addr: "127.0.0.1:4573".parse().unwrap(),
    };
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        std::hint::black_box(render::render(&subs, &settings).unwrap());
        lat.push(t.elapsed());
    }
    row("render 1000 users (in process)", &stats(lat, t0.elapsed()));

    // The metrics in process: counting one request (what every request pays), from one
    // thread and from two at once on the same series, and encoding a scrape of a
    // registry holding what a busy service shows.
    let m = Metrics::new(Live::default);
    for n in [1, 2] {
        count_requests(&m, n, 200_000); // warm
        let ns = count_requests(&m, n, 2_000_000);
        println!(
            "{:<52} {:>10.0} ns per request",
            format!("count a request in the metrics, {n} thread(s) at once"),
            ns
        );
    }
    let routes = [
        "/users",
        "/users/{id}",
        "/users/{id}/secret",
        "/extensions/available",
        "/apply",
        "/apply/pending",
        "/applies",
        "/status",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "(unknown)",
    ];
    for (i, route) in routes.iter().enumerate() {
        for (method, status) in [("GET", 200), ("POST", 201), ("GET", 404), ("DELETE", 204)] {
            m.http_request(route, method, status, Duration::from_micros(100 * i as u64));
        }
    }
    let size = m.encode().unwrap().len();
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..1000 {
        let t = Instant::now();
        std::hint::black_box(m.encode().unwrap());
        lat.push(t.elapsed());
    }
    row(
        &format!(
            "encode /metrics, 48 request series (in process, {} KB)",
            size / 1024
        ),
        &stats(lat, t0.elapsed()),
    );

    // Against the Asterisk stand-in (AMI reload, FastAGI probe of every extension, with
    // the per-command cost measured on a real Asterisk 22.7): the same 1000 users.
    let etc = dir.path().join("etc");
    let (ast_pjsip, ast_dialplan) = (
        etc.join("pjsip.d/synergycall"),
        etc.join("extensions.d/synergycall"),
    );
    std::fs::create_dir_all(&ast_pjsip).unwrap();
    std::fs::create_dir_all(&ast_dialplan).unwrap();
    let ast = asterisk::FakeAsterisk::start(
        &etc,
        &ast_pjsip,
        &ast_dialplan,
        asterisk::Options::default(),
    )
    .await
    .unwrap();
    for health in ["agi", "off"] {
        let vars = [
            ("PORTAL_RELOAD", "ami".to_owned()),
            ("PORTAL_AMI_ADDR", ast.ami_addr().to_string()),
            ("PORTAL_AMI_USERNAME", "portal".into()),
            ("PORTAL_AMI_SECRET", "portal-secret".into()),
            ("PORTAL_HEALTH_CHECK", health.into()),
        ];
        let (_portal, base) = Service::start(&url, &ast_pjsip, &ast_dialplan, &vars).await;
        let s = applies(&http, &base, &admin_db, 15, 10001, |rec| {
            assert_eq!(rec["endpoints"], 1000);
            if health == "agi" {
                let h = &rec["health"];
                assert_eq!(
                    (h["status"].as_str(), h["checked"].as_i64()),
                    (Some("ok"), Some(1000))
                );
            }
        })
        .await;
        row(
            &format!("POST /apply, 1000 users, AMI stand-in, probe {health}"),
            &s,
        );
    }
    // The probe alone, in process: Originate → FastAGI session → verdict, 1000 extensions.
    let probe_server = ProbeServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (probes, agi_addr) = (probe_server.probes(), probe_server.addr());
    let files = render::render(
        &subs,
        &render::Settings {
            transport: "transport-udp",
            qualify_frequency: 60,
            agi_addr,
        },
    )
    .unwrap();
    replace(
        &ast_pjsip,
        render::ENDPOINTS_FILE,
        Some(files.endpoints.as_bytes()),
    )
    .unwrap();
    replace(
        &ast_dialplan,
        render::ROUTING_FILE,
        Some(files.routing.as_bytes()),
    )
    .unwrap();
    let mut ami = ami::Client::login(&AmiSettings {
        addr: ast.ami_addr(),
        username: "portal".into(),
        secret: "portal-secret".into(),
        timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    for cmd in ["module reload res_pjsip.so", "dialplan reload"] {
        assert!(ami.command(cmd).await.unwrap().is_success());
    }
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for _ in 0..15 {
        let (token, verdict) = probes.register(Expectation {
            present: (1000..2000).map(|e| (e, 1)).collect(),
            absent: Vec::new(),
            marker: files.marker.clone(),
        });
        let channel = format!("Local/probe-{token}@{}", render::PROBE_CONTEXT);
        let t = Instant::now();
        let fields = [
            ("Channel", channel.as_str()),
            ("Application", "Wait"),
            ("Data", "12"),
            ("Async", "true"),
        ];
        assert!(ami.action("Originate", &fields).await.unwrap().is_success());
        let health = verdict.await.unwrap();
        assert!(health.is_ok(), "{:?}", health.missing);
        assert_eq!(health.checked, 1000);
        lat.push(t.elapsed());
    }
    let probe = stats(lat, t0.elapsed());
    row(
        "health probe of 1000 extensions (originate to verdict)",
        &probe,
    );
    println!(
        "{:<52} {:>10} (budget 1.5 x 275 ms = 412 ms)",
        "  files-only apply + 22.7 reload (275 ms) + probe",
        ms(files_only_p50 + Duration::from_millis(275) + probe.p50)
    );

    let rss_loaded = rss_kib(child.0.id());
    println!(
        "{:<52} {:>9} KiB",
        "RSS of pbx-portal, idle after start", rss_idle
    );
    println!(
        "{:<52} {:>9} KiB",
        "RSS of pbx-portal, after the load above", rss_loaded
    );

    drop(child);
    drop(admin_db);
    let _ = pg(&admin)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}
