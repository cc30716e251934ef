//! Prometheus metrics: one registry per running service, the typed handles the layers
//! update, and the OpenMetrics text that `GET /metrics` answers.
//!
//! Why it is shaped like this:
//!
//! - **A leaf.** No I/O, and nothing of the crate but [`crate::record`] (another
//!   leaf): `http` records requests, `apply` records applies, reloads and probes, the
//!   composition root (`app`) wires it. What only the running service knows — the live
//!   registrations, the registration link, the database pool — comes in through a
//!   [`Live`] closure that `app` builds and the registry calls *at scrape time*: those
//!   gauges cost nothing between scrapes and are never stale.
//! - **Cheap to update.** Counters are atomics; durations go into prometheus-client's
//!   `Histogram` (a short mutex per observation, contended only by two requests ending
//!   at the same instant on the same series; measured through the labelled family
//!   against the portal's former atomic histogram: no difference beyond the machine's
//!   noise, 1 thread or 2). The other lock on the request path
//!   is the read side of the labelled family's map inside prometheus-client's `Family`
//!   (the write side only for the first request of a label set).
//! - **Bounded labels, no user value.** Every label value is a `&'static str` this module
//!   or the router chose (a route *template*, one of nine methods or `other`, a status
//!   word or error code) or an HTTP status code: a path, an id, a query value, a header,
//!   a name or an email cannot become a label, and no secret passes through here. The
//!   one label an admin names is `tenant` (a tenant's slug), on the per-tenant gauges
//!   alone: its cardinality is the number of tenants, never of users.
//! - **Per service, not global.** The integration tests run many services in one
//!   process; each counts only its own requests.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::record::{ApplyStatus, FailureCode, ReloadMethod};

/// The content type of [`Metrics::encode`]: prometheus-client writes OpenMetrics 1.0 text,
/// which Prometheus asks for first and parses natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every series name starts with this (`pbx_portal_…`).
const PREFIX: &str = "pbx_portal";

/// Request latency: ~1 ms for most routes, up to the 1 s budget of `/healthz` and
/// `/status`, and the seconds an apply with a probe may take.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// An apply: milliseconds with the files only, ~0.1–0.4 s with a reload and a probe, up to
/// the probe timeout (10 s by default, at most 600 s) when Asterisk does not answer.
const APPLY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// A reload: AMI login and two commands (a real 22.7 takes ~275 ms for 1000 endpoints),
/// bounded by `PORTAL_AMI_TIMEOUT_MS` per exchange.
const RELOAD_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// A probe: ~90 ms for 1000 extensions, up to `PORTAL_HEALTH_TIMEOUT_MS`.
const PROBE_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The scrape could not be written (a bug in an encoder: writing into a `String` does
/// not fail otherwise).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the metrics: {0}")]
pub struct EncodeError(#[from] std::fmt::Error);

/// What the running service knows at the moment of a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// The applied extensions by registration, and their contacts; `None` while the
    /// registration view is not live (the series are then absent, never a stale count).
    pub registrations: Option<RegistrationCounts>,
    /// The same, tenant by tenant (by slug), for the tenants with applied extensions;
    /// empty while the view is not live.
    pub tenants: Vec<(String, RegistrationCounts)>,
    /// Whether the registration link (its own AMI connection) is up and synced; `None`
    /// when no link runs (`PORTAL_RELOAD` is not `ami`).
    pub registration_link_up: Option<bool>,
    pub pool: PoolCounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrationCounts {
    pub online: u64,
    pub offline: u64,
    pub contacts: u64,
}

/// The database pool, as bb8 reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Connections open now (in use + idle).
    pub open: u32,
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The registry and its handles. Shared by `Arc`; every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<HttpLabels>,
    applies: Family<StatusLabel, Counter>,
    apply_failures: Family<CodeLabel, Counter>,
    apply_duration: Histograms<StatusLabel>,
    reloads: Family<MethodLabel, Counter>,
    reload_duration: Histograms<MethodLabel>,
    probe_duration: Histograms<ResultLabel>,
    /// Each node's heartbeat age as the last heartbeat read it, and when.
    node_ages: Arc<std::sync::Mutex<NodeAges>>,
}

#[derive(Debug, Default)]
struct NodeAges {
    ages: Vec<(String, f64)>,
    read_at: Option<std::time::Instant>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Without a live source: what a command that serves no `/metrics` (`pbx-portal apply`)
/// hands its applier.
impl Default for Metrics {
    fn default() -> Self {
        Self::build(None)
    }
}

/// The statuses an apply ends with, all shown from the start (at 0), so that a rate
/// over a status that has not happened yet is 0 rather than no data.
const FINAL_STATUSES: [ApplyStatus; 5] = [
    ApplyStatus::Applied,
    ApplyStatus::Unchanged,
    ApplyStatus::DryRun,
    ApplyStatus::Failed,
    ApplyStatus::Interrupted,
];

impl Metrics {
    /// The registry of a running service; `live` is called on every scrape.
    pub fn new(live: impl Fn() -> Live + Send + Sync + 'static) -> Self {
        Self::build(Some(Box::new(live)))
    }

    fn build(live: Option<LiveFn>) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(|| histogram(HTTP_BUCKETS)),
            applies: Family::default(),
            apply_failures: Family::default(),
            apply_duration: Family::new_with_constructor(|| histogram(APPLY_BUCKETS)),
            reloads: Family::default(),
            reload_duration: Family::new_with_constructor(|| histogram(RELOAD_BUCKETS)),
            probe_duration: Family::new_with_constructor(|| histogram(PROBE_BUCKETS)),
            node_ages: Arc::default(),
            registry: Registry::default(),
        };
        // Created at 0 (the guard each returns is dropped at once).
        for s in FINAL_STATUSES {
            drop(m.applies.get_or_create(&StatusLabel { status: s.as_str() }));
        }
        for c in FailureCode::all() {
            drop(
                m.apply_failures
                    .get_or_create(&CodeLabel { code: c.as_str() }),
            );
        }
        for r in <ReloadMethod as strum::IntoEnumIterator>::iter() {
            drop(m.reloads.get_or_create(&MethodLabel { method: r.as_str() }));
        }

        registry.register(
            "build",
            "The running build: its version as a label, value 1",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status code",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's head to its answer, by route template, method and status code",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register(
            "applies",
            "Applies (and dry runs) that ended, by final status",
            m.applies.clone(),
        );
        registry.register(
            "apply_failures",
            "Applies that ended with an error (failed or interrupted), by the record's error code",
            m.apply_failures.clone(),
        );
        registry.register_with_unit(
            "apply_duration",
            "Time an apply took, from asking for the lock to its record, by final status",
            Unit::Seconds,
            m.apply_duration.clone(),
        );
        registry.register(
            "reloads",
            "Reloads run by applies, by the method that ran (none: PORTAL_RELOAD=none, files only); rollback reloads not counted",
            m.reloads.clone(),
        );
        registry.register_with_unit(
            "reload_duration",
            "Time a reload took, AMI login (or the fall back to the CLI) included, by the method that ran",
            Unit::Seconds,
            m.reload_duration.clone(),
        );
        registry.register_with_unit(
            "probe_duration",
            "Time a health probe took, from the Originate to its verdict, by result",
            Unit::Seconds,
            m.probe_duration.clone(),
        );
        if let Some(live) = live {
            registry.register_collector(Box::new(LiveCollector(live)));
        }
        registry.register_collector(Box::new(HeartbeatCollector(m.node_ages.clone())));
        Self { registry, ..m }
    }

    /// One HTTP request answered. `route` is the route template (or `(unknown)`), never a
    /// path; a method outside the standard nine counts as `other`.
    pub fn http_request(&self, route: &'static str, method: &str, status: u16, took: Duration) {
        let labels = HttpLabels {
            route,
            method: method_label(method),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// An apply (or dry run) ended with `status`; `failure` is its record's error code.
    pub fn apply_finished(
        &self,
        status: ApplyStatus,
        failure: Option<FailureCode>,
        took: Duration,
    ) {
        let status = StatusLabel {
            status: status.as_str(),
        };
        self.applies.get_or_create(&status).inc();
        self.apply_duration
            .get_or_create(&status)
            .observe(took.as_secs_f64());
        if let Some(code) = failure {
            self.apply_failures
                .get_or_create(&CodeLabel {
                    code: code.as_str(),
                })
                .inc();
        }
    }

    /// `n` applies found `running` were marked interrupted (a crash, or an apply task
    /// that failed): they end here, with no duration of their own.
    pub fn applies_interrupted(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.applies
            .get_or_create(&StatusLabel {
                status: ApplyStatus::Interrupted.as_str(),
            })
            .inc_by(n);
        self.apply_failures
            .get_or_create(&CodeLabel {
                code: FailureCode::Interrupted.as_str(),
            })
            .inc_by(n);
    }

    /// A reload ran with `method` (`took` is `None` for [`ReloadMethod::None`]).
    pub fn reload(&self, method: ReloadMethod, took: Option<Duration>) {
        let method = MethodLabel {
            method: method.as_str(),
        };
        self.reloads.get_or_create(&method).inc();
        if let Some(took) = took {
            self.reload_duration
                .get_or_create(&method)
                .observe(took.as_secs_f64());
        }
    }

    /// A health probe reached a verdict.
    pub fn probe(&self, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "failed" };
        self.probe_duration
            .get_or_create(&ResultLabel { result })
            .observe(took.as_secs_f64());
    }

    /// Every node's heartbeat age (seconds, by the database's clock) as just read; a node
    /// never seen is left out.
    pub fn node_ages(&self, ages: Vec<(String, Option<f64>)>) {
        let mut cell = self.node_ages.lock().unwrap_or_else(|p| p.into_inner());
        cell.ages = ages
            .into_iter()
            .filter_map(|(n, a)| a.map(|a| (n, a)))
            .collect();
        cell.read_at = Some(std::time::Instant::now());
    }

    /// The exposition: every series, then `# EOF`.
    pub fn encode(&self) -> Result<String, EncodeError> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The nine methods of RFC 9110 keep their name; anything else a client sends is
/// `other`, so that a method cannot grow the label set.
fn method_label(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

type LiveFn = Box<dyn Fn() -> Live + Send + Sync>;

/// The gauges read from the running service on each scrape.
struct LiveCollector(LiveFn);

impl std::fmt::Debug for LiveCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCollector")
    }
}

/// One gauge family: its samples, each with its label set.
fn gauges<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        ConstGauge::new(v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// A gauge family without labels.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn count(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = (self.0)();
        if let Some(r) = live.registrations {
            gauges(
                &mut encoder,
                "registrations",
                "Applied extensions by registration state (online: at least one registered contact); absent while the registration view is not live.",
                [
                    (&[("state", "online")], count(r.online)),
                    (&[("state", "offline")], count(r.offline)),
                ],
            )?;
            gauge(
                &mut encoder,
                "registration_contacts",
                "Registered contacts of the applied extensions; absent while the registration view is not live.",
                count(r.contacts),
            )?;
        }
        if !live.tenants.is_empty() {
            let states: Vec<_> = live
                .tenants
                .iter()
                .flat_map(|(t, r)| {
                    [
                        (
                            [("tenant", t.as_str()), ("state", "online")],
                            count(r.online),
                        ),
                        (
                            [("tenant", t.as_str()), ("state", "offline")],
                            count(r.offline),
                        ),
                    ]
                })
                .collect();
            gauges(
                &mut encoder,
                "tenant_registrations",
                "Applied extensions of each tenant by registration state (their sum over tenants is pbx_portal_registrations); absent while the registration view is not live.",
                states.iter().map(|(l, v)| (l, *v)),
            )?;
            let contacts: Vec<_> = live
                .tenants
                .iter()
                .map(|(t, r)| ([("tenant", t.as_str())], count(r.contacts)))
                .collect();
            gauges(
                &mut encoder,
                "tenant_registration_contacts",
                "Registered contacts of each tenant's applied extensions; absent while the registration view is not live.",
                contacts.iter().map(|(l, v)| (l, *v)),
            )?;
        }
        if let Some(up) = live.registration_link_up {
            gauges(
                &mut encoder,
                "ami_link_up",
                "1 when the AMI link is connected and synced, else 0; absent when PORTAL_RELOAD is not ami.",
                [(&[("link", "registrations")], i64::from(up))],
            )?;
        }
        let p = live.pool;
        gauges(
            &mut encoder,
            "db_pool_connections",
            "Open database connections of the pool, in use or idle.",
            [
                (&[("state", "in_use")], count(p.open.saturating_sub(p.idle))),
                (&[("state", "idle")], count(p.idle)),
            ],
        )?;
        gauge(
            &mut encoder,
            "db_pool_max_connections",
            "The most connections the database pool opens.",
            count(p.max),
        )
    }
}

/// The heartbeat age of every node. The label is a node name: set by each host's
/// administrator (PORTAL_NODE), as many as there are hosts — never a value a client sends.
#[derive(Debug)]
struct HeartbeatCollector(Arc<std::sync::Mutex<NodeAges>>);

impl Collector for HeartbeatCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cell = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(read_at) = cell.read_at else {
            return Ok(());
        };
        let since = read_at.elapsed().as_secs_f64();
        let mut family = encoder.encode_descriptor(
            "node_heartbeat_age_seconds",
            "Seconds since each node's last heartbeat (by the database's clock; a node is alive under 15)",
            None,
            MetricType::Gauge,
        )?;
        for (node, age) in &cell.ages {
            ConstGauge::new(age + since)
                .encode(family.encode_family(&[("node", node.as_str())])?)?;
        }
        Ok(())
    }
}

/// A histogram of durations in seconds with `bounds` as its buckets (`+Inf` implied).
fn histogram(bounds: &'static [f64]) -> Histogram {
    Histogram::new(bounds.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_falls_in_the_first_bucket_whose_bound_is_not_below_it() {
        let m = Metrics::new(Live::default);
        for took in [500, 501, 20_000_000] {
            // 0.5 ms exactly on the first bound: `le` is inclusive.
            m.http_request("/users", "GET", 200, Duration::from_micros(took));
        }
        let text = m.encode().unwrap();
        let series = |le: &str| {
            format!(
                "pbx_portal_http_request_duration_seconds_bucket{{le=\"{le}\",route=\"/users\",method=\"GET\",status=\"200\"}} "
            )
        };
        for (le, n) in [("0.0005", 1), ("0.001", 2), ("10.0", 2), ("+Inf", 3)] {
            assert!(
                text.contains(&format!("{}{n}\n", series(le))),
                "{le}: {text}"
            );
        }
        assert!(text.contains("pbx_portal_http_request_duration_seconds_count{route=\"/users\",method=\"GET\",status=\"200\"} 3\n"), "{text}");
    }

    #[test]
    fn unknown_methods_do_not_grow_the_label_set() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("get"), "other");
        assert_eq!(method_label("X-SECRET-/users/1"), "other");
    }

    #[test]
    fn the_exposition_names_every_series_with_the_prefix_and_ends_with_eof() {
        let m = Metrics::new(|| Live {
            registrations: Some(RegistrationCounts {
                online: 2,
                offline: 1,
                contacts: 3,
            }),
            tenants: vec![
                (
                    "acme".into(),
                    RegistrationCounts {
                        online: 2,
                        offline: 0,
                        contacts: 3,
                    },
                ),
                (
                    "default".into(),
                    RegistrationCounts {
                        online: 0,
                        offline: 1,
                        contacts: 0,
                    },
                ),
            ],
            registration_link_up: Some(true),
            pool: PoolCounts {
                open: 3,
                idle: 1,
                max: 16,
            },
        });
        m.http_request("/users/{id}", "GET", 200, Duration::from_millis(2));
        m.apply_finished(
            ApplyStatus::Failed,
            Some(FailureCode::ReloadFailed),
            Duration::from_millis(40),
        );
        m.reload(ReloadMethod::Ami, Some(Duration::from_millis(30)));
        m.probe(true, Duration::from_millis(90));
        let text = m.encode().unwrap();
        println!("{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut names = std::collections::BTreeSet::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("pbx_portal_"), "{line}");
            names.insert(name.to_owned());
        }
        for expected in [
            "pbx_portal_build_info",
            "pbx_portal_http_requests_total",
            "pbx_portal_http_request_duration_seconds_bucket",
            "pbx_portal_applies_total",
            "pbx_portal_apply_failures_total",
            "pbx_portal_apply_duration_seconds_count",
            "pbx_portal_reloads_total",
            "pbx_portal_reload_duration_seconds_sum",
            "pbx_portal_probe_duration_seconds_bucket",
            "pbx_portal_registrations",
            "pbx_portal_registration_contacts",
            "pbx_portal_tenant_registrations",
            "pbx_portal_tenant_registration_contacts",
            "pbx_portal_ami_link_up",
            "pbx_portal_db_pool_connections",
            "pbx_portal_db_pool_max_connections",
        ] {
            assert!(names.contains(expected), "{expected} missing from\n{text}");
        }
        assert!(text.contains(r#"pbx_portal_db_pool_connections{state="in_use"} 2"#));
        for line in [
            r#"pbx_portal_tenant_registrations{tenant="acme",state="online"} 2"#,
            r#"pbx_portal_tenant_registrations{tenant="default",state="offline"} 1"#,
            r#"pbx_portal_tenant_registration_contacts{tenant="acme"} 3"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn registration_series_are_absent_while_the_view_is_not_live() {
        let m = Metrics::new(Live::default);
        let text = m.encode().unwrap();
        assert!(!text.contains("pbx_portal_registration"), "{text}");
        assert!(!text.contains("pbx_portal_ami_link_up"), "{text}");
        assert!(text.contains("pbx_portal_db_pool_max_connections 0"));
    }
}
