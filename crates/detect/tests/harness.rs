//! The evaluation harness as a regression guard: the figures in
//! docs/detection.md must not quietly get worse. The bounds sit below the
//! recorded figures (seed 42: F1 0.952, 0.040 false alarms a day, variance
//! bursts all detected and closed 70 minutes after they end on average),
//! with room for harmless changes, and well clear of what the detector did
//! before its alerts learned to close (a variance burst's alert stayed open
//! 324 minutes after the burst).

use aegis_detect::alert::AlertConfig;
use aegis_detect::eval::{evaluate, generate, Kind};
use aegis_detect::series::SeriesConfig;

#[test]
fn the_ensemble_detects_alerts_rarely_falsely_and_closes_on_time() {
    let series = generate(42);
    let (total, per_kind) = evaluate(&series, &SeriesConfig::default(), AlertConfig::default());
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
