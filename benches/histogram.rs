//! One request's duration observed into a histogram, the cost every request pays: the
//! service's own `DurationHistogram` (atomic adds) against prometheus-client's
//! `Histogram` (a mutex per observation), from one thread and from two at once on the
//! same series, with the request buckets of `/metrics`. In process, no database.
//!
//! `cargo bench --bench histogram`; prints ns per observation, the best of five runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pbx_portal::metrics::DurationHistogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// The labels of a request's series, as `metrics` has them.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

const LABELS: Labels = Labels {
    route: "/users/{id}",
    method: "GET",
    status: 200,
};

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const PER_THREAD: u32 = 2_000_000;

/// ns per observation of `observe` in each thread, `threads` at once on the same histogram.
fn run(threads: usize, observe: Arc<dyn Fn(Duration) + Send + Sync>) -> f64 {
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let observe = observe.clone();
                    std::thread::spawn(move || {
                        for i in 0..PER_THREAD {
                            // 10 µs to ~1.3 ms: the spread of the service's routes.
                            let took = Duration::from_micros(10 + u64::from((i + t as u32) % 1300));
                            observe(std::hint::black_box(took));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            start.elapsed()
        })
        .min()
        .unwrap();
    // Each thread's own cost: the wall time of its share.
    best.as_nanos() as f64 / f64::from(PER_THREAD)
}

fn main() {
    println!("the histogram alone:");
    for threads in [1, 2] {
        let ours = DurationHistogram::new(BUCKETS);
        let ns_ours = run(threads, Arc::new(move |d| ours.observe(d)));
        let theirs = Histogram::new(BUCKETS.iter().copied());
        let ns_theirs = run(threads, Arc::new(move |d| theirs.observe(d.as_secs_f64())));
        println!(
            "observe a duration, {threads} thread(s) at once: DurationHistogram {ns_ours:>6.1} ns, \
             prometheus-client Histogram {ns_theirs:>6.1} ns ({:.1}x)",
            ns_theirs / ns_ours
        );
    }
    // What a request pays: its labelled series found in the family, then observed.
    println!("through the labelled family, as a request records it:");
    for threads in [1, 2] {
        let ours: Family<Labels, DurationHistogram, fn() -> DurationHistogram> =
            Family::new_with_constructor(|| DurationHistogram::new(BUCKETS));
        let ns_ours = run(
            threads,
            Arc::new(move |d| ours.get_or_create(&LABELS).observe(d)),
        );
        let theirs: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS.iter().copied()));
        let ns_theirs = run(
            threads,
            Arc::new(move |d| theirs.get_or_create(&LABELS).observe(d.as_secs_f64())),
        );
        println!(
            "observe a duration, {threads} thread(s) at once: DurationHistogram {ns_ours:>6.1} ns, \
             prometheus-client Histogram {ns_theirs:>6.1} ns ({:.1}x)",
            ns_theirs / ns_ours
        );
    }
}
