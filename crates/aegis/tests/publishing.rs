//! When the pipeline publishes its status: within `publish_every` of new
//! data, and only every `quiet_every` when nothing comes, so an idle agent
//! does not wake once a second for nothing. Tokio's time is paused: the
//! figures are exact and the test takes no real time to wait.

use std::sync::Arc;
use std::time::Duration;

use aegis::detection::Detection;
use aegis::pipeline::{Pipeline, PipelineConfig};
use aegis_collect::sink;
use aegis_core::config::DetectConfig;
use aegis_core::ring::RingBounds;
use aegis_core::{Clock, Family, Observation, SeriesKey, SystemClock};
use aegis_detect::forest::ForestDetectorConfig;
use aegis_store::StoreOptions;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

static VALUE: Family = Family {
    name: "publishing_value",
    help: "Synthetic series for the publishing test.",
    label: None,
};

const SOON: Duration = Duration::from_secs(1);
const QUIET: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn status_comes_within_a_second_of_news_and_every_five_seconds_when_quiet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (store, store_thread) = aegis_store::open(
        &dir.path().join("publishing.db"),
        StoreOptions::default(),
        Arc::clone(&clock),
    )
    .expect("store");
    let (tx, rx) = sink::channel(64);
    let (beat_tx, beat) = tokio::sync::watch::channel(0);
    let (pipeline, ends) = Pipeline::new(
        rx,
        tx.clone(),
        store.clone(),
        Vec::new(),
        Arc::clone(&clock),
        PipelineConfig {
            bounds: RingBounds {
                max_points: 100,
                max_age_ms: 3_600_000,
            },
            max_series: 100,
            interval: Duration::from_secs(1),
            publish_every: SOON,
            quiet_every: QUIET,
        },
        Detection::new(1, &DetectConfig::default(), ForestDetectorConfig::default()),
    );
    let pipeline = pipeline.with_heartbeat(beat_tx);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(cancel.clone()));
    let mut status = ends.status.clone();

    // Publications (status changes) within `span` from now, and when each came.
    async fn publications(
        status: &mut tokio::sync::watch::Receiver<aegis_core::status::Status>,
        span: Duration,
    ) -> Vec<Duration> {
        let start = Instant::now();
        let mut at = Vec::new();
        while let Ok(Ok(())) =
            tokio::time::timeout(span.saturating_sub(start.elapsed()), status.changed()).await
        {
            at.push(start.elapsed());
        }
        at
    }

    // Quiet: a publication each 5 s (the first at once), never more often.
    let quiet = publications(&mut status, Duration::from_secs(60)).await;
    assert!(
        (11..=13).contains(&quiet.len()),
        "publications in 60 quiet seconds: {quiet:?}"
    );
    for pair in quiet.windows(2) {
        assert!(pair[1] - pair[0] >= QUIET, "published too soon: {quiet:?}");
    }
    assert!(
        *beat.borrow() > 0,
        "the heartbeat beats with each publication"
    );

    // News: the observation is in the status within a second.
    let sent = Instant::now();
    assert!(tx.send(Observation::value(
        SeriesKey::global(&VALUE),
        clock.wall_ms(),
        1.0
    )));
    loop {
        status.changed().await.expect("pipeline running");
        if status.borrow().observations_total == 1 {
            break;
        }
    }
    assert!(
        sent.elapsed() <= SOON,
        "the news took {:?} to be published",
        sent.elapsed()
    );
    assert_eq!(
        ends.latest.borrow().values.len(),
        1,
        "the newest values came with it"
    );

    // And then quiet again.
    let after = publications(&mut status, Duration::from_secs(20)).await;
    assert!(
        (3..=5).contains(&after.len()),
        "publications in 20 quiet seconds after the news: {after:?}"
    );

    cancel.cancel();
    task.await.expect("pipeline stops");
    store.shutdown();
    assert!(store_thread.join_within(Duration::from_secs(30)));
}
