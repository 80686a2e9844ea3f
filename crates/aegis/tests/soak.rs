//! Soak: observations pushed at far more than the normal rate, for a
//! sustained period, through the real pipeline and store. Every bound must
//! hold and the process's resident memory must stay flat.
//!
//! `AEGIS_SOAK_SECS` sets the duration (default 20); the figures recorded in
//! docs/benchmarks.md come from a longer release run:
//! `AEGIS_SOAK_SECS=120 cargo test --release -p aegis --test soak -- --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis::detection::Detection;
use aegis::pipeline::{Pipeline, PipelineConfig};
use aegis_api::HistoryReader;
use aegis_collect::sink;
use aegis_core::config::DetectConfig;
use aegis_core::ring::RingBounds;
use aegis_core::{Clock, Family, Observation, SeriesKey, SystemClock};
use aegis_detect::forest::ForestDetectorConfig;
use aegis_store::StoreOptions;
use tokio_util::sync::CancellationToken;

static SOAK: Family = Family {
    name: "soak_value",
    help: "Synthetic series for the soak test.",
    label: Some("n"),
};

/// The host source at a 1 s interval emits about this many observations a second.
const NORMAL_RATE: f64 = 60.0;

const CHANNEL: usize = 8_192;
const MAX_POINTS: usize = 120;
const MAX_SERIES: usize = 5_000;
const MAX_AGE_MS: i64 = 10_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_bounds_hold_and_memory_stays_flat() {
    let secs: u64 = std::env::var("AEGIS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let duration = Duration::from_secs(secs);
    let dir = tempfile::tempdir().expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (store, store_thread) = aegis_store::open(
        &dir.path().join("soak.db"),
        StoreOptions {
            flush_interval: Duration::from_millis(500),
            retention_max_size: 64 << 20,
            retention_interval: Duration::from_secs(5),
            queue_capacity: 64,
            ..StoreOptions::default()
        },
        Arc::clone(&clock),
    )
    .expect("store");
    let (tx, rx) = sink::channel(CHANNEL);
    let (pipeline, ends) = Pipeline::new(
        rx,
        tx.clone(),
        store.clone(),
        Vec::new(),
        Arc::clone(&clock),
        PipelineConfig {
            bounds: RingBounds {
                max_points: MAX_POINTS,
                max_age_ms: MAX_AGE_MS,
            },
            max_series: MAX_SERIES,
            interval: Duration::from_secs(1),
            publish_every: Duration::from_millis(250),
            quiet_every: Duration::from_secs(1),
        },
        Detection::new(1, &DetectConfig::default(), ForestDetectorConfig::default()),
    );
    let cancel = CancellationToken::new();
    let pipeline_task = tokio::spawn(pipeline.run(cancel.clone()));

    // Producer: 4,000 steady series, plus a new series name every 64th
    // observation (a label explosion) that the series bound must refuse.
    // Timestamps advance 1 ms per 64 accepted observations, far faster than
    // real time: steady series overflow their rings (count bound) and old points
    // also pass the age bound. The bounds are small so that every structure
    // reaches its steady state early, even in a debug build, and the rest of
    // the run shows whether memory stays there.
    let producer_stop = CancellationToken::new();
    let producer = {
        let tx = tx.clone();
        let stop = producer_stop.clone();
        let t0 = clock.wall_ms();
        tokio::spawn(async move {
            let steady: Vec<SeriesKey> = (0..4_000)
                .map(|i| SeriesKey::instance(&SOAK, format!("s{i}")))
                .collect();
            let mut produced: u64 = 0;
            // Series and timestamps follow the accepted observations, so the
            // bounds act the same however much the channel sheds.
            let mut accepted: u64 = 0;
            while !stop.is_cancelled() {
                for _ in 0..1024 {
                    let series = if accepted.is_multiple_of(64) {
                        SeriesKey::instance(&SOAK, format!("burst{produced}"))
                    } else {
                        steady[(accepted % steady.len() as u64) as usize].clone()
                    };
                    let obs =
                        Observation::value(series, t0 + (accepted / 64) as i64, produced as f64);
                    if tx.send(obs) {
                        accepted += 1;
                    }
                    produced += 1;
                }
                tokio::task::yield_now().await;
            }
            produced
        })
    };

    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut peak_channel = 0;
    let mut worst_series = 0;
    let mut worst_points = 0;
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(500)).await;
        samples.push((start.elapsed().as_secs_f64(), rss_kib()));
        let status = ends.status.borrow().clone();
        peak_channel = peak_channel.max(tx.len());
        worst_series = worst_series.max(status.history.series.len);
        worst_points = worst_points.max(status.history.points.len);
        assert!(tx.len() <= CHANNEL);
        assert!(status.history.series.len <= MAX_SERIES as u64);
        assert!(status.history.points.len <= (MAX_SERIES * MAX_POINTS) as u64);
    }
    producer_stop.cancel();
    let produced = producer.await.expect("producer");
    let elapsed = start.elapsed().as_secs_f64();

    // Every ring within its bound, checked series by series.
    let list = ends.history.list().await.expect("list");
    assert!(list.len() <= MAX_SERIES);
    assert!(
        list.iter().all(|s| s.points <= MAX_POINTS),
        "a ring exceeded its bound"
    );
    cancel.cancel();
    pipeline_task.await.expect("pipeline");
    let status = ends.status.borrow().clone();
    store.shutdown();
    assert!(store_thread.join_within(Duration::from_secs(30)));

    // Accounting: every observation produced was either accepted or counted as shed.
    assert_eq!(tx.sent() + tx.dropped(), produced);
    let received = status.observations_total;
    assert_eq!(
        received,
        tx.sent(),
        "accepted observations all reached the pipeline"
    );
    let rate = received as f64 / elapsed;
    assert!(
        status.history.series.dropped > 0,
        "the series bound never acted"
    );
    assert!(
        status.history.evicted_full > 0,
        "the count bound of the rings never acted"
    );
    assert!(
        status.history.evicted_age > 0,
        "the age bound of the rings never acted"
    );

    // Flat memory: after the first quarter (allocator and rings at their
    // bounds), RSS may not keep climbing.
    let warm = samples[samples.len() / 4].1;
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let last = samples.last().map(|s| s.1).unwrap_or(0);
    let report = format!(
        "soak: {secs}s, produced {produced} ({:.0}/s), received {received} ({rate:.0}/s = {:.0}x normal), \
         shed at channel {}, series refused {}, ring evictions full {} age {}, store batches dropped {} obs, \
         peak channel {peak_channel}/{CHANNEL}, worst series {worst_series}/{MAX_SERIES}, worst points {worst_points}, \
         RSS after warm-up {warm} KiB, peak {peak} KiB, last {last} KiB",
        produced as f64 / elapsed,
        rate / NORMAL_RATE,
        tx.dropped(),
        status.history.series.dropped,
        status.history.evicted_full,
        status.history.evicted_age,
        status.store.queue.dropped,
    );
    eprintln!("{report}");
    if let Ok(path) = std::env::var("AEGIS_SOAK_REPORT") {
        let _ = std::fs::write(
            path,
            format!("{report}\nRSS samples (s, KiB): {samples:?}\n"),
        );
    }
    assert!(
        rate >= 100.0 * NORMAL_RATE,
        "sustained only {rate:.0} observations/s"
    );
    assert!(
        peak <= warm + warm / 5 + 16 * 1024,
        "RSS grew from {warm} KiB after warm-up to {peak} KiB"
    );
}
