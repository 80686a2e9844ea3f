//! The store against real SQLite files.

use std::sync::Arc;
use std::time::Duration;

use aegis_core::{Clock, Family, ManualClock, Observation, Reading, SeriesKey};
use aegis_store::{
    open, open_connection, MinutePoint, StoreError, StoreHandle, StoreOptions, StoreThread,
};

static RX: Family = Family {
    name: "host_net_rx_bytes_per_second",
    help: "",
    label: Some("interface"),
};

const T0: i64 = 1_800_000_000_000; // a minute boundary

fn obs(iface: &str, at_ms: i64, v: f64) -> Observation {
    Observation::value(SeriesKey::instance(&RX, iface), at_ms, v)
}

fn reset(iface: &str, at_ms: i64) -> Observation {
    Observation {
        series: SeriesKey::instance(&RX, iface),
        at_ms,
        reading: Reading::CounterReset,
    }
}

/// The stored minutes of `iface`'s receive rate since `since_ms`.
async fn rx_minutes(store: &StoreHandle, iface: &str, since_ms: i64) -> Vec<MinutePoint> {
    store
        .minutes(&format!("host_net_rx_bytes_per_second/{iface}"), since_ms)
        .await
        .expect("query")
}

/// Stops the store and checks its thread ends in time.
fn close(store: StoreHandle, thread: StoreThread) {
    store.shutdown();
    assert!(thread.join_within(Duration::from_secs(5)));
}

fn options() -> StoreOptions {
    StoreOptions {
        flush_interval: Duration::from_millis(100),
        ..StoreOptions::default()
    }
}

#[tokio::test]
async fn observations_roll_up_per_minute_and_merge_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state/aegis.db");
    let clock = Arc::new(ManualClock::starting_at(T0));
    let (store, thread) = open(&path, options(), clock.clone()).expect("open");
    store
        .record(vec![
            obs("eth0", T0 + 1_000, 10.0),
            obs("eth0", T0 + 2_000, 30.0),
            reset("eth0", T0 + 3_000),
            obs("eth0", T0 + 61_000, 5.0),
        ])
        .expect("record");
    store.flush().await.expect("flush");
    close(store, thread);

    // A restart mid-minute adds to the minute, it does not overwrite it.
    let (store, thread) = open(&path, options(), clock).expect("reopen");
    store
        .record(vec![obs("eth0", T0 + 4_000, 20.0)])
        .expect("record");
    store.flush().await.expect("flush");
    let points = rx_minutes(&store, "eth0", 0).await;
    assert_eq!(points.len(), 2);
    let m0 = &points[0];
    assert_eq!((m0.minute_ms, m0.count, m0.resets), (T0, 3, 1));
    assert_eq!(
        (m0.mean, m0.min, m0.max, m0.last),
        (Some(20.0), Some(10.0), Some(30.0), Some(20.0))
    );
    assert_eq!(
        (points[1].minute_ms, points[1].last),
        (T0 + 60_000, Some(5.0))
    );
    close(store, thread);
}

#[tokio::test]
async fn a_minute_is_committed_once_just_after_it_closes_and_the_rest_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aegis.db");
    let clock = Arc::new(ManualClock::starting_at(T0 + 30_000));
    let opts = StoreOptions {
        flush_interval: Duration::from_secs(60),
        retention_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    };
    let (store, thread) = open(&path, opts, clock.clone()).expect("open");
    // The first retention (which commits everything) runs a second after
    // the thread starts; let it pass. An answer says the thread is running.
    rx_minutes(&store, "eth0", 0).await;
    clock.advance(Duration::from_secs(1));
    rx_minutes(&store, "eth0", 0).await;
    assert!(rx_minutes(&store, "eth0", 0).await.is_empty());

    store
        .record(vec![
            obs("eth0", T0 + 40_000, 1.0),
            obs("eth0", T0 + 59_000, 3.0),
            // The next minute has begun by the time the first one's flush runs.
            obs("eth0", T0 + 60_500, 7.0),
        ])
        .expect("record");
    // Before the minute closes (and its grace passes), nothing is written.
    clock.advance(Duration::from_secs(30));
    rx_minutes(&store, "eth0", 0).await;
    assert!(rx_minutes(&store, "eth0", 0).await.is_empty());
    assert_eq!(store.rows_written(), 0);

    // Two seconds past the minute: its row, complete, and not the next one.
    clock.advance(Duration::from_millis(1_100));
    let counts = |points: Vec<MinutePoint>| -> Vec<(i64, u64)> {
        points.iter().map(|p| (p.minute_ms, p.count)).collect()
    };
    rx_minutes(&store, "eth0", 0).await;
    assert_eq!(counts(rx_minutes(&store, "eth0", 0).await), vec![(T0, 2)]);
    assert_eq!(store.rows_written(), 1);

    // An explicit flush (and a stop) writes the minute under way too.
    store.flush().await.expect("flush");
    assert_eq!(
        counts(rx_minutes(&store, "eth0", 0).await),
        vec![(T0, 2), (T0 + 60_000, 1)]
    );
    assert_eq!(store.rows_written(), 2);
    close(store, thread);
}

#[tokio::test]
async fn retention_by_age_removes_old_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aegis.db");
    let clock = Arc::new(ManualClock::starting_at(T0));
    let opts = StoreOptions {
        retention_max_age: Duration::from_secs(3600),
        retention_interval: Duration::from_secs(3600),
        ..options()
    };
    let (store, thread) = open(&path, opts, clock.clone()).expect("open");
    store
        .record(vec![
            obs("eth0", T0, 1.0),
            obs("eth0", T0 + 2 * 3_600_000, 2.0),
        ])
        .expect("record");
    clock.advance(Duration::from_secs(2 * 3600 + 60));
    store.run_retention().expect("retention");
    store.flush().await.expect("flush");
    let points = rx_minutes(&store, "eth0", 0).await;
    assert_eq!(
        points.iter().map(|p| p.minute_ms).collect::<Vec<_>>(),
        vec![T0 + 2 * 3_600_000]
    );
    assert_eq!(store.status().retention_deleted_rows, 1);
    close(store, thread);
}

#[tokio::test]
async fn retention_by_size_keeps_the_file_under_its_bound_and_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aegis.db");
    let clock = Arc::new(ManualClock::starting_at(T0));
    let max = 1u64 << 20;
    let opts = StoreOptions {
        retention_max_size: max,
        retention_max_age: Duration::from_secs(365 * 86_400),
        retention_interval: Duration::from_secs(3600),
        queue_capacity: 100_000,
        ..options()
    };
    let (store, thread) = open(&path, opts, clock.clone()).expect("open");
    // 200 series x 300 minutes: ~60k rows, several MiB.
    for minute in 0..300i64 {
        let batch: Vec<Observation> = (0..200)
            .map(|i| obs(&format!("if{i}"), T0 + minute * 60_000, minute as f64))
            .collect();
        store.record(batch).expect("record");
    }
    store.flush().await.expect("flush");
    let before = aegis_store::file_size(&path);
    assert!(before > 2 * max, "test data too small: {before}");
    store.run_retention().expect("retention");
    store.flush().await.expect("flush");
    let after = aegis_store::file_size(&path);
    assert!(after <= max, "file is {after} bytes, bound {max}");
    let newest = rx_minutes(&store, "if7", T0 + 299 * 60_000).await;
    assert_eq!(newest.len(), 1, "the newest minute survives");
    close(store, thread);
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aegis.db");
    let conn = open_connection(&path).expect("create");
    conn.pragma_update(None, "user_version", 999).expect("bump");
    drop(conn);
    let err = open_connection(&path).expect_err("too new");
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err}"
    );
}

#[test]
fn a_full_queue_sheds_batches_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aegis.db");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_at(T0));
    let opts = StoreOptions {
        queue_capacity: 1,
        ..options()
    };
    let (store, thread) = open(&path, opts, clock).expect("open");
    let mut busy = 0;
    for i in 0..2_000 {
        if let Err(StoreError::Busy) = store.record(vec![obs("eth0", T0 + i, 1.0)]) {
            busy += 1;
        }
    }
    assert!(busy > 0, "a one-slot queue must overflow under a burst");
    assert_eq!(store.status().queue.dropped, busy);
    close(store, thread);
}

/// Regression (found by schemathesis against a live agent): the last page
/// offset (`offset=4294967295`) overflowed the incidents' window, which
/// panicked on the store thread, and every read after it was refused.
#[tokio::test]
async fn the_largest_incident_offset_answers_an_empty_page_and_the_store_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aegis.db");
    let clock = Arc::new(ManualClock::starting_at(T0));
    let (store, thread) = open(&path, options(), clock.clone()).expect("open");
    let page = store
        .incidents(aegis_core::status::IncidentQuery {
            since_ms: None,
            until_ms: None,
            target: None,
            min_severity: None,
            open: None,
            limit: 500,
            offset: u32::MAX,
        })
        .await
        .expect("an answer for the last offset");
    assert!(page.is_empty());
    // The store still reads and writes.
    store
        .record(vec![obs("eth0", T0 + 1_000, 1.0)])
        .expect("record");
    store.flush().await.expect("flush");
    assert!(store.anomalies(Default::default()).await.is_ok());
    close(store, thread);
}

fn anomaly(id: i64, at_ms: i64, series: &str, cause: i64) -> aegis_core::status::AnomalyRecord {
    aegis_core::status::AnomalyRecord {
        id,
        opened_ms: at_ms,
        closed_ms: None,
        series: series.to_string(),
        target: series.split_once('/').map(|(_, t)| t.to_string()),
        kind: "spike".into(),
        severity: if id == 3 {
            aegis_core::Severity::Critical
        } else {
            aegis_core::Severity::Warning
        },
        score: 0.999,
        explanation: format!("{series} moved"),
        detail: serde_json::json!({}),
        cause: Some(cause),
    }
}

/// Anomalies that opened together on related series are one incident: the
/// cause with the others as evidence, open until the last of them closes;
/// and when the cause joined a healing incident, its evidence goes there too.
#[tokio::test]
async fn anomalies_with_one_cause_are_one_incident_and_follow_it_into_healing() {
    use aegis_core::status::{ActionRecord, IncidentQuery, IncidentStatus, RecordOutcome};
    use aegis_store::StoreEvent;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aegis.db");
    let clock = Arc::new(ManualClock::starting_at(T0));
    let (store, thread) = open(&path, options(), clock.clone()).expect("open");
    let all = IncidentQuery {
        limit: 50,
        ..IncidentQuery::default()
    };
    // The loopback traffic first: its own cause, until the endpoint's anomaly
    // takes over.
    store.append(StoreEvent::AnomalyOpened(anomaly(
        1,
        T0,
        "host_net_rx_bytes_per_second/lo",
        1,
    )));
    store.append(StoreEvent::AnomalyOpened(anomaly(
        2,
        T0 + 1_000,
        "endpoint_up/web",
        2,
    )));
    store.append(StoreEvent::AnomalyCause { id: 1, cause: 2 });
    store.append(StoreEvent::AnomalyOpened(anomaly(
        3,
        T0 + 2_000,
        "host_net_tx_bytes_per_second/lo",
        2,
    )));
    store.flush().await.expect("flush");
    let incidents = store.incidents(all.clone()).await.expect("incidents");
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let i = &incidents[0];
    assert_eq!(i.id, "anomaly-2");
    assert_eq!(i.target, "web");
    assert_eq!(
        i.severity,
        aegis_core::Severity::Critical,
        "the worst of it"
    );
    let evidence: Vec<i64> = i.evidence.iter().map(|e| e.id).collect();
    assert_eq!(evidence, vec![1, 3]);
    assert!(i.summary.contains("2 related anomalies"), "{}", i.summary);

    // The cause closes: still open while its evidence is.
    store.append(StoreEvent::AnomalyClosed {
        id: 2,
        closed_ms: T0 + 10_000,
        detail: serde_json::json!({}),
    });
    store.flush().await.expect("flush");
    let i = &store.incidents(all.clone()).await.expect("incidents")[0];
    assert_eq!(i.status, IncidentStatus::Open);
    assert_eq!(i.ended_ms, None);
    for id in [1, 3] {
        store.append(StoreEvent::AnomalyClosed {
            id,
            closed_ms: T0 + 20_000 + id,
            detail: serde_json::json!({}),
        });
    }
    store.flush().await.expect("flush");
    let i = &store.incidents(all.clone()).await.expect("incidents")[0];
    assert_eq!(i.status, IncidentStatus::Closed);
    assert_eq!(i.ended_ms, Some(T0 + 20_003));

    // A healing incident (a failing check's) that the cause joined holds
    // the whole group.
    store.append(StoreEvent::Action(ActionRecord {
        id: 1,
        at_ms: T0 + 900,
        incident: 7,
        anomaly_id: None,
        target: "web".into(),
        action: "command".into(),
        outcome: RecordOutcome::Decided,
        reason: "check web is failing".into(),
        attempt: 1,
        duration_ms: None,
        detail: serde_json::json!({}),
    }));
    store.append(StoreEvent::Action(ActionRecord {
        id: 2,
        at_ms: T0 + 1_500,
        incident: 7,
        anomaly_id: Some(2),
        target: "web".into(),
        action: "none".into(),
        outcome: RecordOutcome::Joined,
        reason: "joined as evidence".into(),
        attempt: 1,
        duration_ms: None,
        detail: serde_json::json!({}),
    }));
    store.flush().await.expect("flush");
    let incidents = store.incidents(all).await.expect("incidents");
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0].id, "healing-7");
    let evidence: Vec<i64> = incidents[0].evidence.iter().map(|e| e.id).collect();
    assert_eq!(evidence, vec![1, 2, 3]);
    close(store, thread);
}
