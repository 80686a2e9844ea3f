//! The univariate ensemble: one [`SeriesDetector`] per series.
//!
//! Every observation `x` is first explained by a baseline, and the
//! components look at what the baseline does not explain:
//!
//! - **baseline**: a robust level and scale (exponentially weighted, with
//!   Huber-clipped updates so outliers barely move it; started from the
//!   median and MAD of the warm-up window), plus, once the series has shown
//!   it over two days, a **daily profile** (per time-of-day bin) that is
//!   subtracted first, so a value normal by day but not at night stands out;
//! - **spike**: the robust z-score of `x` against the baseline (spikes, dips,
//!   time-of-day anomalies);
//! - **shift**: a two-sided CUSUM of the z-scores (Page 1954), for level
//!   shifts too small for a single point to stand out;
//! - **drift**: the baseline level against a slow (one-day) reference level,
//!   for slow ramps such as a memory leak that a fast baseline would follow;
//! - **variance**: a short exponentially weighted mean of absolute
//!   residuals against the long-term one, for bursts of variance at an
//!   unchanged level; held to what a much shorter mean still sees, so the
//!   all-clear comes soon after the burst ends;
//! - **flatline**: a run of identical values on a series that seldom repeats
//!   (a stuck sensor or a dead exporter), with the repeat probability learned;
//! - **gap** (not in the default ensemble): time since the previous
//!   observation against the usual spacing.
//!
//! Each component's statistic goes through its own [`TailCalibrator`], so a
//! component's `p` is the learned rate of excursions that extreme on this
//! series. The ensemble's `p` is the smallest component `p` times the number
//! of components that judged (Bonferroni), and its score `1 - p`.

use serde::Serialize;

use crate::calibrate::{Prior, TailCalibrator};
use crate::{Detector, Score, Severity, State};

/// The ensemble's components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// A point far from the baseline.
    Spike,
    /// A sustained shift of the level (CUSUM).
    Shift,
    /// A slow departure of the level from its one-day reference.
    Drift,
    /// More variance than usual.
    Variance,
    /// The same value repeated for too long.
    Flatline,
    /// Observations missing. Not in the default ensemble: on real data
    /// most gaps are the recording's, not the system's (NAB's traffic
    /// sensors: 27 of 37 false alerts), the gap is only seen once it has
    /// ended, and the agent reports a source that stops at once through
    /// its health. Add it with [`SeriesConfig::only`].
    Gap,
}

impl Component {
    /// Every component, in a fixed order.
    pub const ALL: [Component; 6] = [
        Component::Spike,
        Component::Shift,
        Component::Drift,
        Component::Variance,
        Component::Flatline,
        Component::Gap,
    ];

    /// Lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Component::Spike => "spike",
            Component::Shift => "shift",
            Component::Drift => "drift",
            Component::Variance => "variance",
            Component::Flatline => "flatline",
            Component::Gap => "gap",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Settings of the ensemble. The defaults suit one-minute to one-second
/// machine metrics; nothing here is tuned to a single data set.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesConfig {
    /// Observations before judging (robust start of level and scale).
    pub warmup: u32,
    /// Observations after the warm-up before the spike, shift and variance
    /// components judge: their statistics are autocorrelated, and their
    /// calibrators must first see this series' ordinary excursions.
    pub settle: u32,
    /// Weight of a new observation in the level.
    pub level_alpha: f64,
    /// Weight of a new observation in the scale.
    pub scale_alpha: f64,
    /// Residuals beyond this many scales are clipped before updating.
    pub huber: f64,
    /// CUSUM reference value, in scales.
    pub cusum_k: f64,
    /// Length of the slow reference level, in seconds.
    pub drift_horizon: f64,
    /// Weight of a new absolute residual in the variance statistic.
    pub variance_alpha: f64,
    /// Weight of a new absolute residual in the shorter mean that holds the
    /// variance statistic down once a burst is over.
    pub variance_fast_alpha: f64,
    /// Shortest run of identical values that can be a flat-line.
    pub flat_min_run: u32,
    /// Observations after which a calibrator's counts weigh half.
    pub calibration_memory: f64,
    /// Time-of-day bins of the daily profile.
    pub season_bins: usize,
    /// The smallest change that matters on this series, in its own unit:
    /// the scale never falls below it, so a change this size is at most
    /// one scale (0: none; the agent sets it per family, see
    /// docs/detection.md). Half the series' own resolution, the smallest
    /// step it has taken, is a floor too.
    pub min_scale: f64,
    /// A run of zeros is rest, never a flat-line (the agent sets it for a
    /// host's and a target's figures, where zero is nothing happening: a
    /// load average at 0.00, traffic that stopped; see docs/detection.md).
    pub zero_is_rest: bool,
    /// Which components take part (a bit per [`Component`]).
    components: u8,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        Self {
            warmup: 60,
            settle: 300,
            level_alpha: 0.02,
            scale_alpha: 0.01,
            huber: 3.0,
            cusum_k: 0.5,
            drift_horizon: 86_400.0,
            variance_alpha: 0.005,
            variance_fast_alpha: 0.05,
            flat_min_run: 10,
            calibration_memory: 20_000.0,
            season_bins: 96,
            min_scale: 0.0,
            zero_is_rest: false,
            // Every component but the gap (see `Component::Gap`).
            components: 0b01_1111,
        }
    }
}

impl SeriesConfig {
    /// The same settings with only the given components taking part.
    pub fn only(mut self, components: &[Component]) -> Self {
        self.components = components.iter().fold(0, |acc, c| acc | c.bit());
        self
    }

    fn has(&self, c: Component) -> bool {
        self.components & c.bit() != 0
    }
}

/// What one component found on one observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Finding {
    /// Which component.
    pub component: Component,
    /// Its calibrated tail probability as an alert sees it: the rate of
    /// excursions this extreme per observation.
    pub p: f64,
    /// Its calibrated tail probability per observation: about the fraction
    /// of ordinary observations this extreme (at least `p`).
    pub p_row: f64,
    /// Its raw statistic.
    pub statistic: f64,
    /// +1 above the baseline, -1 below, 0 when direction does not apply.
    pub direction: i8,
    /// The value the baseline expected.
    pub expected: f64,
    /// The value observed.
    pub actual: f64,
    /// The baseline's scale (one robust standard deviation).
    pub scale: f64,
}

impl Finding {
    /// One line a person can read.
    pub fn explain(&self) -> String {
        let dir = if self.direction >= 0 {
            "above"
        } else {
            "below"
        };
        let sigmas = if self.scale > 0.0 {
            (self.actual - self.expected).abs() / self.scale
        } else {
            f64::INFINITY
        };
        match self.component {
            Component::Spike => format!(
                "value {} is {sigmas:.1} sd {dir} the expected {}",
                fmt(self.actual),
                fmt(self.expected)
            ),
            Component::Shift => format!(
                "level shifted {} (CUSUM {:.1}): value {} against baseline {}",
                if self.direction >= 0 { "up" } else { "down" },
                self.statistic,
                fmt(self.actual),
                fmt(self.expected)
            ),
            Component::Drift => format!(
                "level drifted {} to {} from its one-day reference {} ({:.1} sd)",
                if self.direction >= 0 { "up" } else { "down" },
                fmt(self.actual),
                fmt(self.expected),
                self.statistic
            ),
            Component::Variance => format!(
                "variance {:.1}x its usual level around {}",
                self.statistic,
                fmt(self.expected)
            ),
            Component::Flatline => format!(
                "value stuck at {} for {} observations",
                fmt(self.actual),
                self.statistic as u64
            ),
            Component::Gap => format!(
                "{} observations missing before this one",
                self.statistic as u64
            ),
        }
    }
}

/// A number as explanations print it: three decimals, or three digits of
/// mantissa when very large or very small.
pub fn fmt(v: f64) -> String {
    if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

/// The ensemble's verdict on one observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The score.
    pub score: Score,
    /// The ensemble's tail probability as alerts see it (excursions this
    /// extreme per observation): an alert opens when it falls to `alert_p`.
    pub p: f64,
    /// Severity from `p`.
    pub severity: Severity,
    /// The component with the smallest `p`, when any judged.
    pub top: Option<Finding>,
}

/// Exponentially weighted robust level, damped trend and scale: Holt's
/// linear method with a damped trend (Gardner and McKenzie, 1985) and
/// Huber-clipped errors, so a steady climb (the daily rise of traffic) is
/// followed without lag while a single outlier barely moves anything.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    level: f64,
    trend: f64,
    scale: f64,
    /// The least scale (the series' resolution and what matters on it).
    min: f64,
}

/// Damping of the trend per observation.
const DAMPING: f64 = 0.98;

impl Baseline {
    fn start(level: f64, scale: f64) -> Self {
        Self {
            level,
            trend: 0.0,
            scale,
            min: 0.0,
        }
    }

    fn floor(&self) -> f64 {
        // A constant series still needs a scale to divide by: a small
        // fraction of its magnitude, or an absolute epsilon at zero; and
        // never less than what can change on it.
        (self.level.abs() * 1e-3).max(1e-9).max(self.min)
    }

    fn scale(&self) -> f64 {
        self.scale.max(self.floor())
    }

    /// The one-step-ahead forecast.
    fn forecast(&self) -> f64 {
        self.level + DAMPING * self.trend
    }

    /// Huber-clipped update; `trend_weight` 0 makes it a plain EWMA.
    fn update(
        &mut self,
        y: f64,
        level_alpha: f64,
        scale_alpha: f64,
        huber: f64,
        trend_weight: f64,
    ) {
        let s = self.scale();
        let forecast = self.forecast();
        let clipped = (y - forecast).clamp(-huber * s, huber * s);
        self.level = forecast + level_alpha * clipped;
        self.trend = DAMPING * self.trend + level_alpha * trend_weight * clipped;
        // Mean absolute deviation times sqrt(pi/2) estimates a Gaussian sd.
        self.scale += scale_alpha * (clipped.abs() * 1.253_314 - self.scale);
    }
}

/// Daily profile: mean offset from the slow level per time-of-day bin.
#[derive(Debug, Clone)]
struct Season {
    offsets: Vec<f32>,
    visits: Vec<u16>,
    /// EW variance of residuals with and without the profile.
    var_with: f64,
    var_without: f64,
    enabled: bool,
}

impl Season {
    fn new(bins: usize) -> Self {
        Self {
            offsets: vec![0.0; bins],
            visits: vec![0; bins],
            var_with: 0.0,
            var_without: 0.0,
            enabled: false,
        }
    }

    fn bin(&self, t: f64) -> usize {
        let day = t.rem_euclid(86_400.0) / 86_400.0;
        ((day * self.offsets.len() as f64) as usize).min(self.offsets.len() - 1)
    }

    fn offset(&self, t: f64) -> f64 {
        let b = self.bin(t);
        if self.visits[b] >= 2 {
            f64::from(self.offsets[b])
        } else {
            0.0
        }
    }
}

/// Scales a statistic by its own typical size on this series (root mean
/// square while the series is normal), never below the size theory gives
/// it (1). Autocorrelation and an imperfect baseline make the variance and
/// drift statistics fluctuate more than their formulas say; measured against
/// their own fluctuation they mean the same on every series.
#[derive(Debug, Clone, Copy)]
struct Norm {
    mean_square: f64,
}

impl Default for Norm {
    fn default() -> Self {
        Self { mean_square: 1.0 }
    }
}

impl Norm {
    fn apply(&mut self, stat: f64, learn: bool) -> f64 {
        let scaled = stat / self.mean_square.sqrt().max(1.0);
        if learn {
            // Clipped: the body of the distribution sets the size, so an
            // incident that is never alerted on cannot inflate it.
            self.mean_square += 0.001 * (stat.abs().min(3.0).powi(2) - self.mean_square);
        }
        scaled
    }
}

/// The ensemble for one series.
#[derive(Debug, Clone)]
pub struct SeriesDetector {
    config: SeriesConfig,
    seen: u32,
    warm: Vec<(f64, f64)>,
    first_t: f64,
    last_t: Option<f64>,
    last_x: Option<f64>,
    spacing: Option<f64>,
    base: Baseline,
    slow: Baseline,
    /// The level of the series with the daily profile taken out, which the
    /// profile itself is learned against (kept apart from `slow`, which
    /// follows whatever the baseline follows).
    season_level: Baseline,
    season: Season,
    cusum_up: f64,
    cusum_down: f64,
    var_stat: f64,
    var_fast: f64,
    var_slow: f64,
    var_scale: f64,
    run: u32,
    repeat_rate: f64,
    /// The smallest step between two different consecutive values.
    step: f64,
    frozen: u32,
    drift_seen: u32,
    var_norm: Norm,
    drift_norm: Norm,
    cal: [TailCalibrator; 6],
}

/// When the daily profile is judged: after two days, on the second day's
/// residuals against a profile learned on the first.
const SEASON_DECISION: f64 = 2.0 * 86_400.0;

/// Observations in a row during which an anomalous series barely teaches its
/// baseline; after that, what persists is taken as the new normal.
const MAX_FREEZE: u32 = 120;

/// A repeat rate from which repeats are how the series rests (see the
/// flatline component).
const REPEATS_OFTEN: f64 = 0.5;

impl SeriesDetector {
    /// A fresh detector.
    pub fn new(config: SeriesConfig) -> Self {
        let m = config.calibration_memory;
        let bins = config.season_bins.max(1);
        Self {
            cal: [
                TailCalibrator::new(Prior::Gaussian, m),
                TailCalibrator::new(Prior::Exponential, m),
                TailCalibrator::new(Prior::Gaussian, m),
                TailCalibrator::new(Prior::GaussianUpper, m),
                TailCalibrator::new(Prior::Exponential, m),
                TailCalibrator::new(Prior::GaussianUpper, m),
            ],
            config,
            seen: 0,
            warm: Vec::new(),
            first_t: f64::NAN,
            last_t: None,
            last_x: None,
            spacing: None,
            base: Baseline::start(0.0, 0.0),
            slow: Baseline::start(0.0, 0.0),
            season_level: Baseline::start(0.0, 0.0),
            season: Season::new(bins),
            cusum_up: 0.0,
            cusum_down: 0.0,
            var_stat: 0.798,
            var_fast: 0.798,
            var_slow: 0.798,
            var_scale: 0.0,
            run: 0,
            repeat_rate: 0.0,
            step: f64::INFINITY,
            frozen: 0,
            drift_seen: 0,
            var_norm: Norm::default(),
            drift_norm: Norm::default(),
        }
    }

    /// The least scale: what matters on this series, and half its
    /// resolution (an integer count moves by at least 1, a load average by
    /// 0.01: one such step is never an anomaly on its own).
    fn least_scale(&self) -> f64 {
        let resolution = if self.step.is_finite() {
            0.5 * self.step
        } else {
            0.0
        };
        self.config.min_scale.max(resolution)
    }

    /// Remembers the smallest step between different consecutive values.
    fn note_step(&mut self, x: f64) {
        if let Some(last) = self.last_x {
            let d = (x - last).abs();
            if d > 1e-12 * x.abs().max(last.abs()).max(1.0) {
                self.step = self.step.min(d);
            }
        }
    }

    /// Whether the daily profile is in use.
    pub fn seasonal(&self) -> bool {
        self.season.enabled
    }

    /// The baseline's expected value at time `t`.
    pub fn expected(&self, t: f64) -> f64 {
        self.base.forecast()
            + if self.season.enabled {
                self.season.offset(t)
            } else {
                0.0
            }
    }

    /// Scores one observation and explains the score.
    pub fn assess(&mut self, x: f64, t: f64) -> Assessment {
        if !x.is_finite() {
            // A missing value is not an observation; the gap component sees
            // the hole when the next value arrives.
            return self.quiet();
        }
        if let Some(last) = self.last_t {
            if t <= last {
                // Out of order or duplicate timestamp: ignored, as a counter sample would be.
                return self.quiet();
            }
        }
        self.seen = self.seen.saturating_add(1);
        if self.seen <= self.config.warmup {
            self.warm_up(x, t);
            return Assessment {
                score: Score::warming(self.config.warmup, self.seen),
                p: 1.0,
                severity: Severity::Info,
                top: None,
            };
        }
        let mut findings: [Option<Finding>; 6] = [None; 6];

        // Spacing and gaps.
        let dt = self.last_t.map(|l| t - l).unwrap_or(0.0);
        let spacing = self.spacing.unwrap_or(dt.max(1e-9));
        let missing = (dt / spacing - 1.0).round().max(0.0);
        if dt > 0.0 && dt <= 3.0 * spacing {
            self.spacing = Some(spacing + 0.05 * (dt - spacing));
        }
        if self.config.has(Component::Gap) {
            let stat = missing / 3.0;
            let p = self.cal[5].observe(stat);
            findings[5] = Some(self.finding(Component::Gap, p, missing, 0, x, x));
        }

        // Deseasonalise.
        let season_offset = if self.season.enabled {
            self.season.offset(t)
        } else {
            0.0
        };
        let y = x - season_offset;
        let least = self.least_scale();
        for b in [&mut self.base, &mut self.slow, &mut self.season_level] {
            b.min = least;
        }
        let s = self.base.scale();
        let forecast = self.base.forecast();
        let expected = forecast + season_offset;
        let z = (y - forecast) / s;
        let dir = if z >= 0.0 { 1 } else { -1 };

        // While the series looks anomalous the components' statistics
        // learn nothing (an incident must not teach them its own scale);
        // once it has lasted MAX_FREEZE observations it is the new normal
        // and they learn again, like the baseline. Without that, a statistic
        // whose own references were off could hold an anomaly open for good.
        let learning = self.frozen == 0 || self.frozen > MAX_FREEZE;

        // The z-based components judge once their calibrators have seen
        // this series' ordinary excursions.
        let settled = self.seen >= self.config.warmup + self.config.settle;
        if self.config.has(Component::Spike) {
            let p = self.cal[0].observe_with(z.abs(), learning);
            if settled {
                findings[0] = Some(self.finding(Component::Spike, p, z.abs(), dir, expected, x));
            }
        }
        if self.config.has(Component::Shift) {
            let zc = z.clamp(-6.0, 6.0);
            let k = self.config.cusum_k;
            self.cusum_up = (self.cusum_up + zc - k).clamp(0.0, 50.0);
            self.cusum_down = (self.cusum_down - zc - k).clamp(0.0, 50.0);
            let (stat, d) = if self.cusum_up >= self.cusum_down {
                (self.cusum_up, 1)
            } else {
                (self.cusum_down, -1)
            };
            let p = self.cal[1].observe_with(stat, learning);
            if settled {
                findings[1] = Some(self.finding(Component::Shift, p, stat, d, expected, x));
            }
        }
        if self.config.has(Component::Variance) {
            // Short-term mean absolute residual against the long-term one,
            // both in units of a slow scale (the baseline's own scale adapts
            // within the hour and would hide a burst): robust to single
            // outliers (the spike component's business), sensitive to
            // sustained spread, and scale-free.
            let r = y - forecast;
            let slow_scale = self.var_scale.max(self.base.floor());
            let u = (r.abs() / slow_scale).min(8.0);
            let a = self.config.variance_alpha;
            self.var_stat += a * (u - self.var_stat);
            // The short mean remembers a burst for hundreds of observations
            // after it ended; a much shorter one forgets it within tens. The
            // statistic is held to the larger of the shorter mean and the
            // usual level: a burst still builds it up, but once the spread
            // is back to usual the alert can close. (On the harness this
            // halves the time alerts stay open after their event and costs
            // no detection: docs/detection.md.)
            self.var_fast += self.config.variance_fast_alpha * (u - self.var_fast);
            self.var_stat = self.var_stat.min(self.var_fast.max(self.var_slow));
            if learning {
                self.var_slow += 0.001 * (u - self.var_slow);
                let clipped = r.abs().min(self.config.huber * slow_scale);
                self.var_scale += 0.002 * (clipped * 1.253_314 - self.var_scale);
            }
            // For Gaussian noise |z| has a coefficient of variation of 0.755;
            // the EW mean's relative sd is that times sqrt(a / (2 - a)).
            let rel_sd = 0.755 * (a / (2.0 - a)).sqrt();
            let ratio = self.var_stat / self.var_slow.max(1e-9);
            let stat = self.var_norm.apply((ratio - 1.0) / rel_sd, learning);
            let p = self.cal[3].observe_with(stat, learning);
            if settled {
                findings[3] =
                    Some(self.finding(Component::Variance, p, ratio * ratio, 1, expected, x));
            }
        }

        // Drift: the fast level against the slow one. Only once the
        // seasonality decision is made (two days), since before that a daily
        // cycle cannot be told from a drift, and after its calibrator has
        // seen the series settle.
        let elapsed = t - self.first_t;
        if self.config.has(Component::Drift)
            && elapsed >= self.config.drift_horizon.max(SEASON_DECISION)
        {
            let d = (self.base.level - self.slow.level) / s;
            let stat = self.drift_norm.apply(d.abs() / 0.5, learning);
            let p = self.cal[2].observe_with(stat, learning);
            self.drift_seen = self.drift_seen.saturating_add(1);
            if self.drift_seen > self.config.settle {
                findings[2] = Some(Finding {
                    component: Component::Drift,
                    p,
                    p_row: self.cal[2].last_row().max(p),
                    statistic: d.abs(),
                    direction: if d >= 0.0 { 1 } else { -1 },
                    expected: self.slow.level + season_offset,
                    actual: self.base.level + season_offset,
                    scale: s,
                });
            }
        }

        // Flat-line: identical values on a series that seldom repeats.
        let repeated = self
            .last_x
            .is_some_and(|l| (x - l).abs() <= 1e-12 * x.abs().max(1.0));
        if self.config.has(Component::Flatline) {
            self.run = if repeated { self.run + 1 } else { 0 };
            // A series whose values repeat more often than not (a ratio at
            // 0, an idle disk, a constant) is at rest when it repeats, not
            // stuck: only a series that seldom repeats is judged. Nor is a
            // run of zeros where zero is rest, whatever the repeat rate
            // learned while the series was busy: a load average decaying
            // to 0.00. A fall to zero is the spike and shift components'
            // to judge.
            if self.run + 1 >= self.config.flat_min_run
                && self.repeat_rate < REPEATS_OFTEN
                && !(self.config.zero_is_rest && x == 0.0)
            {
                let q = self.repeat_rate.clamp(0.02, 0.999);
                // P(run this long | repeats are independent with rate q).
                let p_run = q.powi(self.run as i32);
                let stat = -p_run.max(1e-300).ln();
                let p = self.cal[4].observe(stat);
                findings[4] = Some(self.finding(
                    Component::Flatline,
                    p,
                    f64::from(self.run + 1),
                    0,
                    expected,
                    x,
                ));
            } else {
                self.cal[4].update(0.0);
            }
        }

        // Combine.
        let judged = findings.iter().flatten().count().max(1);
        let top = findings
            .iter()
            .flatten()
            .min_by(|a, b| a.p.total_cmp(&b.p))
            .copied();
        let p = top.map_or(1.0, |f| (f.p * judged as f64).min(1.0));
        // The score: the smallest per-observation p, with the same
        // correction for the number of components that judged.
        let p_row = findings
            .iter()
            .flatten()
            .map(|f| f.p_row)
            .fold(1.0f64, f64::min);
        let p_row = (p_row * judged as f64).min(1.0).max(p);

        // Learn. While the series looks anomalous the baseline learns only
        // a little, so an incident (a stuck value, a burst) does not become
        // the normal the next minutes are judged against; if it lasts long
        // enough, it is the new normal and learning resumes.
        let anomalous = p < 1e-5;
        self.frozen = if anomalous { self.frozen + 1 } else { 0 };
        let learn = if anomalous && self.frozen <= MAX_FREEZE {
            0.1
        } else {
            1.0
        };
        let (la, sa, h) = (
            self.config.level_alpha * learn,
            self.config.scale_alpha * learn,
            self.config.huber,
        );
        self.base.update(y, la, sa, h, 0.1);
        // The repeat rate learns like the baseline: a stuck value is the
        // new normal only once it has outlasted the freeze.
        self.repeat_rate += 0.01 * learn * (f64::from(u8::from(repeated)) - self.repeat_rate);
        let slow_alpha = (spacing / self.config.drift_horizon).clamp(1e-6, 0.5) * learn;
        self.slow.update(y, slow_alpha, sa, h, 0.0);
        let deseasoned = x - self.season.offset(t);
        self.season_level.update(deseasoned, slow_alpha, sa, h, 0.0);
        self.learn_season(x, t, learn);
        self.last_t = Some(t);
        self.note_step(x);
        self.last_x = Some(x);
        Assessment {
            score: Score {
                value: 1.0 - p_row,
                state: State::Ready,
            },
            p,
            severity: Severity::from_p(p),
            top,
        }
    }

    fn finding(
        &self,
        component: Component,
        p: f64,
        statistic: f64,
        direction: i8,
        expected: f64,
        actual: f64,
    ) -> Finding {
        Finding {
            component,
            p,
            p_row: self.cal[component as usize].last_row().max(p),
            statistic,
            direction,
            expected,
            actual,
            scale: self.base.scale(),
        }
    }

    fn quiet(&self) -> Assessment {
        let state = self.state();
        Assessment {
            score: Score { value: 0.0, state },
            p: 1.0,
            severity: Severity::Info,
            top: None,
        }
    }

    fn warm_up(&mut self, x: f64, t: f64) {
        if self.warm.is_empty() {
            self.first_t = t;
        }
        if let (Some(last_t), Some(last_x)) = (self.last_t, self.last_x) {
            let dt = t - last_t;
            self.spacing = Some(match self.spacing {
                None => dt,
                Some(s) => s.min(dt),
            });
            let repeated = (x - last_x).abs() <= 1e-12 * x.abs().max(1.0);
            self.repeat_rate +=
                (f64::from(u8::from(repeated)) - self.repeat_rate) / f64::from(self.seen);
        }
        self.warm.push((t, x));
        self.last_t = Some(t);
        self.note_step(x);
        self.last_x = Some(x);
        if self.seen == self.config.warmup {
            let mut values: Vec<f64> = self.warm.iter().map(|w| w.1).collect();
            let median = median_of(&mut values);
            let mut dev: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
            let mad = median_of(&mut dev) * 1.4826;
            // A robust start; the mean absolute deviation backs up a MAD of 0
            // (series that are mostly constant).
            let mean_abs = dev.iter().sum::<f64>() / dev.len() as f64 * 1.2533;
            let scale = if mad > 0.0 { mad } else { mean_abs };
            self.base = Baseline::start(median, scale);
            self.var_scale = scale;
            self.slow = self.base;
            self.season_level = self.base;
            self.warm = Vec::new();
        }
    }

    fn learn_season(&mut self, x: f64, t: f64, learn: f64) {
        let b = self.season.bin(t);
        let prior_offset = self.season.offset(t);
        let offset = x - self.season_level.level;
        let visits = self.season.visits[b];
        // Per bin: mean of its first visits, then exponential forgetting so
        // the profile follows slow changes of the daily shape.
        let w = learn / f64::from(visits.saturating_add(1)).min(30.0);
        let current = f64::from(self.season.offsets[b]);
        self.season.offsets[b] = (current + w * (offset - current)) as f32;
        self.season.visits[b] = visits.saturating_add(1);
        // Does the profile explain variance? From the second day on, the
        // profile learned so far predicts each new point before learning it;
        // the decision is taken from the second day's end.
        let elapsed = t - self.first_t;
        if elapsed >= 86_400.0 {
            let with = x - self.season_level.level - prior_offset;
            let without = x - self.season_level.level;
            let a = 0.002;
            self.season.var_with += a * (with * with - self.season.var_with);
            self.season.var_without += a * (without * without - self.season.var_without);
        }
        if elapsed >= SEASON_DECISION {
            let ratio = self.season.var_with / self.season.var_without.max(1e-300);
            let was = self.season.enabled;
            if !was && ratio < 0.5 {
                self.season.enabled = true;
            } else if was && ratio > 0.8 {
                self.season.enabled = false;
            }
            if was != self.season.enabled {
                // The baseline now tracks a different quantity: restart it
                // and the slow level, and forget the shift statistic.
                let off = if self.season.enabled {
                    self.season.offset(t)
                } else {
                    0.0
                };
                self.base = Baseline::start(x - off, self.base.scale);
                self.slow = Baseline::start(self.season_level.level, self.slow.scale);
                self.cusum_up = 0.0;
                self.cusum_down = 0.0;
                self.drift_seen = 0;
            }
        }
    }
}

impl Detector for SeriesDetector {
    fn observe(&mut self, value: f64, now: f64) -> Score {
        self.assess(value, now).score
    }

    fn state(&self) -> State {
        if self.seen < self.config.warmup {
            State::WarmingUp {
                needed: self.config.warmup,
                seen: self.seen,
            }
        } else {
            State::Ready
        }
    }
}

fn median_of(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forest::Rng;

    /// A lasting change is an incident first and the new normal after a
    /// while: the anomaly it opens must end, whatever the components'
    /// references were when it began (they learn nothing while the series
    /// looks anomalous, so a reference that is off could otherwise keep it
    /// looking anomalous for ever).
    #[test]
    fn a_lasting_change_becomes_the_new_normal() {
        for (before, after) in [(0.01, 0.1), (0.01, 1.0), (0.1, 0.1)] {
            let mut det = SeriesDetector::new(SeriesConfig {
                warmup: 20,
                settle: 40,
                ..SeriesConfig::default()
            });
            let mut rng = Rng::new(7);
            let (mut opened, mut last_loud) = (false, 0);
            for i in 0..5_000 {
                let sd = if i < 200 { before } else { after };
                let level = if i < 200 { 1.0 } else { 3.0 };
                let a = det.assess(level + sd * rng.normal(), f64::from(i));
                opened |= i >= 200 && a.p < 1e-5;
                if a.p < 1e-3 {
                    last_loud = i;
                }
            }
            assert!(opened, "sd {before} -> {after}: the change went unseen");
            assert!(
                last_loud < 2_500,
                "sd {before} -> {after}: still anomalous at observation {last_loud}"
            );
        }
    }

    /// Runs `values` at one per second; the flatline findings loud enough to
    /// alert on, after warm-up and settling.
    fn flatlines(values: impl Iterator<Item = f64>, zero_is_rest: bool) -> usize {
        let mut det = SeriesDetector::new(SeriesConfig {
            warmup: 60,
            settle: 60,
            zero_is_rest,
            ..SeriesConfig::default()
        });
        values
            .enumerate()
            .map(|(i, x)| det.assess(x, i as f64))
            .filter(|a| a.p < 1e-5 && a.top.is_some_and(|f| f.component == Component::Flatline))
            .count()
    }

    /// A series that rests at one value (an idle disk's reads at 0 with a
    /// burst now and then, a ratio that never moves) is not flat-lined, but
    /// a value that seldom repeats and then sticks is.
    #[test]
    fn a_series_at_rest_is_not_a_flatline_but_a_stuck_one_is() {
        let mut rng = Rng::new(11);
        let idle: Vec<f64> = (0..20_000)
            .map(|_| {
                if rng.unit() < 0.02 {
                    (rng.unit() * 40.0).round()
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(flatlines(idle.into_iter(), false), 0, "an idle series at 0");
        assert_eq!(
            flatlines(std::iter::repeat_n(0.25, 20_000), false),
            0,
            "a constant"
        );

        // A load average that decays to 0.00 after a busy start (the
        // kernel's one-minute average, read every 5 s) and rests there: its
        // repeat rate was learned while it seldom repeated.
        let decaying: Vec<f64> = (0..2_000)
            .map(|i| (1.3 * (-(i as f64) / 12.0).exp() * 100.0).round() / 100.0)
            .collect();
        assert!(
            flatlines(decaying.iter().copied(), false) > 0,
            "without zero as rest"
        );
        assert_eq!(
            flatlines(decaying.into_iter(), true),
            0,
            "a load decaying to rest"
        );

        let noisy: Vec<f64> = (0..2_000)
            .map(|i| if i < 1_500 { 10.0 + rng.normal() } else { 10.3 })
            .collect();
        assert!(
            flatlines(noisy.into_iter(), true) > 0,
            "a stuck value went unseen"
        );
    }

    /// Runs `values` at one per second with `min_scale`; the findings loud
    /// enough to alert on, after warm-up and settling.
    fn alerts(values: &[f64], min_scale: f64) -> usize {
        let mut det = SeriesDetector::new(SeriesConfig {
            warmup: 60,
            settle: 60,
            min_scale,
            ..SeriesConfig::default()
        });
        values
            .iter()
            .enumerate()
            .filter(|(i, x)| det.assess(**x, *i as f64).p < 1e-5)
            .count()
    }

    /// A series at rest moves by its resolution now and then: one runnable
    /// process more, a load average of 0.00 going to 0.08. Neither is an
    /// anomaly; a real jump still is.
    #[test]
    fn a_step_of_the_series_resolution_or_below_what_matters_is_not_an_anomaly() {
        // One runnable process, two for one observation every ~500.
        let mut rng = Rng::new(5);
        let procs: Vec<f64> = (0..5_000)
            .map(|i| {
                if i > 100 && rng.unit() < 0.002 {
                    2.0
                } else {
                    1.0
                }
            })
            .collect();
        // The step seen in warm-up is the resolution.
        let mut procs_warm = procs.clone();
        procs_warm[10] = 2.0;
        assert_eq!(alerts(&procs_warm, 0.0), 0, "one process more");
        // A load average at rest, with what matters on it (0.1).
        let load: Vec<f64> = (0..5_000)
            .map(|_| {
                if rng.unit() < 0.003 {
                    (rng.unit() * 8.0).round() / 100.0
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(alerts(&load, 0.1), 0, "load 0.00 to 0.08");
        let mut jump = load.clone();
        for x in &mut jump[4_000..4_100] {
            *x = 3.0;
        }
        assert!(
            alerts(&jump, 0.1) > 0,
            "a load of 3 on an idle host went unseen"
        );
        // Without the least scale the same idle load cries wolf.
        assert!(alerts(&load, 0.0) > 0, "the test no longer tells");
    }
}
