//! The evaluation harness as a regression guard: the figures in
//! docs/detection.md must not quietly get worse. The bounds sit below the
//! recorded figures (seed 42, the ensemble with the gap component: F1
//! 0.938, 0.055 false alarms a day, variance bursts all detected and closed
//! 70 minutes after they end on average),
//! with room for harmless changes, and well clear of what the detector did
//! before its alerts learned to close (a variance burst's alert stayed open
//! 324 minutes after the burst).

use aegis_detect::alert::AlertConfig;
use aegis_detect::eval::{evaluate, generate, Kind};
use aegis_detect::series::{Component, SeriesConfig};

/// The default ensemble leaves gaps alone (docs/detection.md, "Gaps"): it
/// detects every other class, and with the gap component added, dropouts
/// too.
#[test]
fn the_default_ensemble_detects_every_class_but_dropouts() {
    let series = generate(42);
    let (_, per_kind) = evaluate(&series, &SeriesConfig::default(), AlertConfig::default());
    let (mut events, mut detected) = (0, 0);
    for (kind, c) in &per_kind {
        if *kind == Kind::Dropout {
            assert_eq!(c.detected, 0, "a gap opened an alert");
            continue;
        }
        assert!(c.detected > 0, "{} never detected", kind.as_str());
        events += c.events;
        detected += c.detected;
    }
    let recall = detected as f64 / events as f64;
    assert!(recall >= 0.95, "recall {recall:.3} without dropouts");
}

#[test]
fn the_ensemble_detects_alerts_rarely_falsely_and_closes_on_time() {
    let series = generate(42);
    let full = SeriesConfig::default().only(&Component::ALL);
    let (total, per_kind) = evaluate(&series, &full, AlertConfig::default());
    assert!(total.f1() >= 0.92, "F1 {:.3}", total.f1());
    assert!(
        total.false_alarms_per_day() <= 0.08,
        "{:.3} false alarms a day",
        total.false_alarms_per_day()
    );
    for (kind, c) in &per_kind {
        assert!(c.detected > 0, "{} never detected", kind.as_str());
    }
    let bursts = &per_kind
        .iter()
        .find(|(k, _)| *k == Kind::VarianceBurst)
        .expect("variance bursts")
        .1;
    assert!(
        bursts.mean_linger_minutes() <= 150.0,
        "variance-burst alerts stayed open {:.0} min after the bursts ended",
        bursts.mean_linger_minutes()
    );
    assert!(
        total.mean_linger_minutes() <= 150.0,
        "alerts stayed open {:.0} min after their events ended",
        total.mean_linger_minutes()
    );
}
