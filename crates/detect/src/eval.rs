//! The evaluation harness: labeled series with known anomalies, and an
//! event-level scorer.
//!
//! [`generate`] makes, from a seed, one-minute series of several kinds of
//! normal behaviour (flat level or daily seasonality; Gaussian, heavy-tailed,
//! autocorrelated or count noise; some with randomly missing points) and
//! injects labeled anomalies of every class in [`Kind`]. [`score`] replays a
//! series through a detector and its alerter, strictly causally, and counts
//! at the level of events: an anomaly is detected when an alert opens inside
//! its window (or within a short tolerance after it); an alert that touches
//! no window is a false alarm.

use serde::Serialize;

use crate::alert::{AlertConfig, Alerter, Transition};
use crate::forest::Rng;
use crate::series::{Component, SeriesConfig, SeriesDetector};

/// Classes of anomaly the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A few points far above the level.
    Spike,
    /// A few points far below the level.
    Dip,
    /// The level moves and stays moved for hours.
    LevelShift,
    /// A slow linear climb, then a drop back (a memory leak and its restart).
    Ramp,
    /// Noise several times larger at the same level.
    VarianceBurst,
    /// On a daily-seasonal series, the daytime level at night: inside the
    /// normal range, wrong for the time of day.
    SeasonalInRange,
    /// The value stuck, repeated exactly.
    Flatline,
    /// No observations for a long stretch.
    Dropout,
}

impl Kind {
    /// Every class.
    pub const ALL: [Kind; 8] = [
        Kind::Spike,
        Kind::Dip,
        Kind::LevelShift,
        Kind::Ramp,
        Kind::VarianceBurst,
        Kind::SeasonalInRange,
        Kind::Flatline,
        Kind::Dropout,
    ];

    /// Snake-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Dip => "dip",
            Kind::LevelShift => "level_shift",
            Kind::Ramp => "ramp",
            Kind::VarianceBurst => "variance_burst",
            Kind::SeasonalInRange => "seasonal_in_range",
            Kind::Flatline => "flatline",
            Kind::Dropout => "dropout",
        }
    }
}

/// Kinds of normal noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Noise {
    /// Gaussian, sd 1.
    Gaussian,
    /// Student t with 3 degrees of freedom (heavy tails), scaled to sd about 1.
    HeavyTailed,
    /// AR(1) with coefficient 0.7, marginal sd 1.
    Correlated,
    /// Poisson counts around the level (integer values).
    Counts,
}

impl Noise {
    /// Every kind.
    pub const ALL: [Noise; 4] = [
        Noise::Gaussian,
        Noise::HeavyTailed,
        Noise::Correlated,
        Noise::Counts,
    ];

    /// Snake-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Noise::Gaussian => "gaussian",
            Noise::HeavyTailed => "heavy_tailed",
            Noise::Correlated => "correlated",
            Noise::Counts => "counts",
        }
    }
}

/// A labeled anomaly: `[start, end]` in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Event {
    /// Class.
    pub kind: Kind,
    /// First anomalous second.
    pub start: f64,
    /// Last anomalous second.
    pub end: f64,
}

/// One generated series.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledSeries {
    /// A name that says what it is.
    pub name: String,
    /// Its noise.
    pub noise: Noise,
    /// Whether it has a daily cycle.
    pub seasonal: bool,
    /// Timestamps, seconds, increasing (missing points are absent).
    pub t: Vec<f64>,
    /// Values.
    pub x: Vec<f64>,
    /// Its anomalies.
    pub events: Vec<Event>,
}

impl LabeledSeries {
    /// Days covered.
    pub fn days(&self) -> f64 {
        match (self.t.first(), self.t.last()) {
            (Some(a), Some(b)) => (b - a) / 86_400.0,
            _ => 0.0,
        }
    }

    /// Whether `t` lies in an event window.
    pub fn label_at(&self, t: f64) -> bool {
        self.events.iter().any(|e| t >= e.start && t <= e.end)
    }

    /// The series as CSV: `timestamp,value,label`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("timestamp,value,label\n");
        for (t, x) in self.t.iter().zip(&self.x) {
            s.push_str(&format!("{t},{x},{}\n", u8::from(self.label_at(*t))));
        }
        s
    }
}

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3_600.0;
const DAY: f64 = 86_400.0;
/// A Monday, 00:00 UTC.
const T0: f64 = 1_798_761_600.0;

fn noise_sample(noise: Noise, rng: &mut Rng, ar: &mut f64, level: f64) -> f64 {
    match noise {
        Noise::Gaussian => rng.normal(),
        Noise::HeavyTailed => {
            // t3 = Z / sqrt(chi2_3 / 3); sd of t3 is sqrt(3), scaled to 1.
            let z = rng.normal();
            let chi: f64 = (0..3).map(|_| rng.normal().powi(2)).sum();
            z / (chi / 3.0).sqrt().max(1e-6) / 3f64.sqrt()
        }
        Noise::Correlated => {
            *ar = 0.7 * *ar + (1.0f64 - 0.49).sqrt() * rng.normal();
            *ar
        }
        Noise::Counts => {
            // Poisson around `level` (normal approximation, rounded), in
            // units where sd = sqrt(level); returned as an offset.
            (level + level.sqrt() * rng.normal()).round().max(0.0) - level
        }
    }
}

/// Builds one series of `days` days with the anomalies of `kind` (if any).
fn build(
    name: String,
    noise: Noise,
    seasonal: bool,
    kind: Option<Kind>,
    days: usize,
    rng: &mut Rng,
) -> LabeledSeries {
    let n = days * 1_440;
    let level: f64 = match noise {
        Noise::Counts => 400.0,
        _ => 50.0,
    };
    // Anomaly sizes are in units of the noise's sd.
    let sd = match noise {
        Noise::Counts => level.sqrt(),
        _ => 1.0,
    };
    let amplitude = if seasonal { 12.0 * sd } else { 0.0 };
    let mut events = Vec::new();
    // Anomalies start after the first day and a half (warm-up, one-day
    // reference), one every 14-20 hours.
    if let Some(kind) = kind {
        let mut at = 1.5 * DAY + (rng.unit() * 6.0).floor() * HOUR;
        while at < (days as f64 - 1.0) * DAY {
            let (start, len) = match kind {
                Kind::Spike | Kind::Dip => (at, (1.0 + (rng.unit() * 3.0).floor()) * MINUTE),
                Kind::LevelShift => (at, (2.0 + rng.unit() * 2.0) * HOUR),
                Kind::Ramp => (at, (3.0 + rng.unit() * 3.0) * HOUR),
                Kind::VarianceBurst => (at, (1.0 + rng.unit()) * HOUR),
                Kind::SeasonalInRange => {
                    // In the trough of the next night (between 01:00 and
                    // 05:00 here), at a different hour each time.
                    let night = ((at / DAY).floor() + 1.0) * DAY;
                    (
                        night + (1.0 + rng.unit() * 3.0) * HOUR,
                        (1.0 + rng.unit()) * HOUR,
                    )
                }
                Kind::Flatline => (at, (2.0 + rng.unit()) * HOUR),
                Kind::Dropout => (at, (45.0 + (rng.unit() * 45.0).floor()) * MINUTE),
            };
            // Whole minutes, so every window holds samples.
            let start = (start / MINUTE).round() * MINUTE;
            let len = (len / MINUTE).round().max(1.0) * MINUTE;
            events.push(Event {
                kind,
                start: T0 + start,
                end: T0 + start + len - MINUTE,
            });
            at = at.max(start + len) + (14.0 + rng.unit() * 6.0) * HOUR;
        }
    }
    let shift_sign: Vec<f64> = events
        .iter()
        .map(|_| if rng.unit() < 0.5 { -1.0 } else { 1.0 })
        .collect();
    let shift_size: Vec<f64> = events.iter().map(|_| 4.0 + rng.unit() * 2.0).collect();
    // Spikes must stand out of the noise's own tail: heavy-tailed noise
    // reaches 10 sd about once a week by itself, so its spikes are larger.
    let spike_base = if noise == Noise::HeavyTailed {
        25.0
    } else {
        10.0
    };
    let spike_size: Vec<f64> = events
        .iter()
        .map(|_| spike_base + rng.unit() * spike_base)
        .collect();
    let missing_rate = if rng.unit() < 0.5 { 0.02 } else { 0.0 };
    let mut ar = 0.0;
    let mut t = Vec::with_capacity(n);
    let mut x = Vec::with_capacity(n);
    let mut last_value = level;
    for i in 0..n {
        let ts = T0 + i as f64 * MINUTE;
        let phase = 2.0 * std::f64::consts::PI * ((ts - T0) % DAY) / DAY;
        // Trough at 04:00, peak at 16:00.
        let season = -amplitude * (phase - 4.0 / 24.0 * 2.0 * std::f64::consts::PI).cos();
        let mut e = noise_sample(noise, rng, &mut ar, level);
        let mut value = level + season;
        let mut skip = rng.unit() < missing_rate;
        let mut stuck = false;
        for (k, ev) in events.iter().enumerate() {
            if ts < ev.start || ts > ev.end {
                continue;
            }
            let progress = (ts - ev.start) / (ev.end - ev.start + MINUTE);
            match ev.kind {
                Kind::Spike => value += spike_size[k] * sd,
                Kind::Dip => value -= spike_size[k] * sd,
                Kind::LevelShift => value += shift_sign[k] * shift_size[k] * sd,
                Kind::Ramp => value += 15.0 * sd * progress,
                Kind::VarianceBurst => e *= 4.0,
                Kind::SeasonalInRange => value = level + amplitude * 0.9,
                Kind::Flatline => stuck = true,
                Kind::Dropout => skip = true,
            }
            // Labeled points are never dropped by the nuisance gaps.
            if ev.kind != Kind::Dropout {
                skip = false;
            }
        }
        let v = if stuck { last_value } else { value + e };
        if !skip {
            t.push(ts);
            x.push(v);
        }
        last_value = v;
    }
    // A dropout is seen at the first point after the hole: extend its window to it.
    for ev in events.iter_mut().filter(|e| e.kind == Kind::Dropout) {
        if let Some(&next) = t.iter().find(|&&ts| ts > ev.end) {
            ev.end = next;
        }
    }
    LabeledSeries {
        name,
        noise,
        seasonal,
        t,
        x,
        events,
    }
}

/// The harness's series, from a seed: for every class and every noise
/// kind, one four-day series with its anomalies, and for every noise kind
/// two seven-day series of normal data only (one flat, one seasonal).
pub fn generate(seed: u64) -> Vec<LabeledSeries> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for kind in Kind::ALL {
        for noise in Noise::ALL {
            let seasonal = kind == Kind::SeasonalInRange || rng.unit() < 0.3;
            let name = format!(
                "{}_{}{}",
                kind.as_str(),
                noise.as_str(),
                if seasonal { "_seasonal" } else { "" }
            );
            let days = if seasonal { 6 } else { 4 };
            out.push(build(name, noise, seasonal, Some(kind), days, &mut rng));
        }
    }
    for noise in Noise::ALL {
        for seasonal in [false, true] {
            let name = format!(
                "normal_{}{}",
                noise.as_str(),
                if seasonal { "_seasonal" } else { "" }
            );
            out.push(build(name, noise, seasonal, None, 7, &mut rng));
        }
    }
    out
}

/// Counts for one series or a sum of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Labeled events.
    pub events: u32,
    /// Events with an alert opened in their window (or the tolerance after).
    pub detected: u32,
    /// Alerts opened.
    pub alerts: u32,
    /// Alerts that touched an event window.
    pub true_alerts: u32,
    /// Sum of detection delays, seconds.
    pub delay_sum: f64,
    /// Sum, over detected events, of how long the alert that detected each
    /// stayed open after the event ended, seconds (0 when it closed before).
    pub linger_sum: f64,
    /// Days of data.
    pub days: f64,
    /// Days of data outside event windows.
    pub normal_days: f64,
}

impl Counts {
    /// Adds another count.
    pub fn add(&mut self, o: &Counts) {
        self.events += o.events;
        self.detected += o.detected;
        self.alerts += o.alerts;
        self.true_alerts += o.true_alerts;
        self.delay_sum += o.delay_sum;
        self.linger_sum += o.linger_sum;
        self.days += o.days;
        self.normal_days += o.normal_days;
    }

    /// Alerts that are true, of all alerts (1 when there was none).
    pub fn precision(&self) -> f64 {
        if self.alerts == 0 {
            1.0
        } else {
            f64::from(self.true_alerts) / f64::from(self.alerts)
        }
    }

    /// Events detected, of all events (1 when there was none).
    pub fn recall(&self) -> f64 {
        if self.events == 0 {
            1.0
        } else {
            f64::from(self.detected) / f64::from(self.events)
        }
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Mean detection delay, minutes.
    pub fn mean_delay_minutes(&self) -> f64 {
        if self.detected == 0 {
            f64::NAN
        } else {
            self.delay_sum / f64::from(self.detected) / MINUTE
        }
    }

    /// Mean minutes an alert stayed open after the end of the event it
    /// detected: how late the all-clear comes.
    pub fn mean_linger_minutes(&self) -> f64 {
        if self.detected == 0 {
            f64::NAN
        } else {
            self.linger_sum / f64::from(self.detected) / MINUTE
        }
    }

    /// False alarms per day of normal data.
    pub fn false_alarms_per_day(&self) -> f64 {
        f64::from(self.alerts - self.true_alerts) / self.normal_days.max(1e-9)
    }
}

/// How late after an event's end an alert still belongs to it: the return
/// to normal after a shift or a ramp is itself a change the detectors see.
pub const TOLERANCE: f64 = 60.0 * MINUTE;

/// Replays `series` through a detector with `config` and counts.
pub fn score(series: &LabeledSeries, config: &SeriesConfig, alert: AlertConfig) -> Counts {
    let mut det = SeriesDetector::new(config.clone());
    let mut alerter = Alerter::new(alert);
    // (opened, closed) of every alert; one still open closes at the end.
    let mut alerts: Vec<(f64, f64)> = Vec::new();
    let end = series.t.last().copied().unwrap_or(0.0);
    for (&t, &x) in series.t.iter().zip(&series.x) {
        let a = det.assess(x, t);
        match alerter.update(1.0 - a.p) {
            Some(Transition::Opened) => alerts.push((t, end)),
            Some(Transition::Closed) => {
                if let Some(last) = alerts.last_mut() {
                    last.1 = t;
                }
            }
            None => {}
        }
    }
    let opened: Vec<f64> = alerts.iter().map(|a| a.0).collect();
    let mut c = Counts {
        events: series.events.len() as u32,
        alerts: opened.len() as u32,
        days: series.days(),
        ..Counts::default()
    };
    let labeled: f64 = series.events.iter().map(|e| e.end - e.start + MINUTE).sum();
    c.normal_days = (series.days() - labeled / DAY).max(0.0);
    for e in &series.events {
        if let Some(&(first, closed)) = alerts
            .iter()
            .find(|&&(o, _)| o >= e.start && o <= e.end + TOLERANCE)
        {
            c.detected += 1;
            c.delay_sum += first - e.start;
            c.linger_sum += (closed - e.end).max(0.0);
        }
    }
    c.true_alerts = opened
        .iter()
        .filter(|&&o| {
            series
                .events
                .iter()
                .any(|e| o >= e.start && o <= e.end + TOLERANCE)
        })
        .count() as u32;
    c
}

/// Scores of every series for one configuration, per class and overall.
pub fn evaluate(
    series: &[LabeledSeries],
    config: &SeriesConfig,
    alert: AlertConfig,
) -> (Counts, Vec<(Kind, Counts)>) {
    let mut total = Counts::default();
    let mut per_kind: Vec<(Kind, Counts)> =
        Kind::ALL.iter().map(|k| (*k, Counts::default())).collect();
    for s in series {
        let c = score(s, config, alert);
        total.add(&c);
        if let Some(kind) = s.events.first().map(|e| e.kind) {
            if let Some(slot) = per_kind.iter_mut().find(|(k, _)| *k == kind) {
                slot.1.add(&c);
            }
        }
    }
    (total, per_kind)
}

/// The configurations reported: the ensemble, then each component alone.
pub fn configurations() -> Vec<(&'static str, SeriesConfig)> {
    let mut v = vec![
        ("ensemble", SeriesConfig::default()),
        (
            "ensemble with gap",
            SeriesConfig::default().only(&Component::ALL),
        ),
    ];
    for c in Component::ALL {
        v.push((c.as_str(), SeriesConfig::default().only(&[c])));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_labels_every_class() {
        let a = generate(1);
        let b = generate(1);
        assert_eq!(a, b);
        for kind in Kind::ALL {
            assert!(
                a.iter().any(|s| s.events.iter().any(|e| e.kind == kind)),
                "{kind:?} missing"
            );
        }
        assert!(a.iter().all(|s| s.t.windows(2).all(|w| w[1] > w[0])));
    }

    #[test]
    fn the_scorer_counts_events_alerts_and_false_alarms() {
        let s = LabeledSeries {
            name: "t".into(),
            noise: Noise::Gaussian,
            seasonal: false,
            t: (0..100).map(|i| f64::from(i) * 60.0).collect(),
            x: vec![0.0; 100],
            events: vec![Event {
                kind: Kind::Spike,
                start: 600.0,
                end: 660.0,
            }],
        };
        // A constant series: no alert, one missed event.
        let c = score(&s, &SeriesConfig::default(), AlertConfig::default());
        assert_eq!((c.events, c.detected, c.alerts), (1, 0, 0));
        assert_eq!(c.recall(), 0.0);
        assert_eq!(c.precision(), 1.0);
    }
}
