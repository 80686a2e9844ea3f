//! Turning a detector's raw statistic into a calibrated tail probability.
//!
//! A statistic means different things on different series: four robust
//! deviations is rare on Gaussian noise and routine on heavy-tailed traffic.
//! [`TailCalibrator`] estimates, per series, how often the statistic *rises
//! above* each level of a fixed grid (up-crossings per observation, with
//! exponential forgetting), smoothed towards a parametric prior that stands
//! in until the series has shown its tails. Counting up-crossings rather
//! than exceedances means a long anomaly counts once, so an incident does not
//! teach the detector that incidents are normal, and the estimate is the
//! false-alarm rate per observation that an alert threshold would give.
//!
//! Two rates come out of the same counts. The up-crossing rate decides
//! alerts (a false alarm is an excursion, however long). The exceedance
//! rate, the fraction of observations at or above each level, is the
//! per-observation tail probability a score should be: on a series whose
//! statistic stays up for a while (a CUSUM, a variance, or a slow spike on
//! autocorrelated traffic) the two differ by the excursions' length, and
//! the up-crossing rate put 12% of the ordinary rows of NAB's real series at
//! `p <= 1e-2`. Every observation counts towards the exceedances; alerts,
//! which open on the up-crossings, are not taught by an incident's length.
//!
//! Bounded memory: two counters per grid level.

/// The prior tail of a statistic: `P(stat >= t)` under normal behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prior {
    /// Two-sided Gaussian tail of a z-like statistic, `P(|Z| >= t)`.
    Gaussian,
    /// One-sided Gaussian tail, `P(Z >= t)`.
    GaussianUpper,
    /// Exponential tail `exp(-t)`, the stationary tail of a CUSUM with
    /// reference value `k = 0.5` on unit-variance increments.
    Exponential,
}

impl Prior {
    /// `P(stat >= t)`.
    pub fn tail(&self, t: f64) -> f64 {
        match self {
            Prior::Gaussian => erfc(t / std::f64::consts::SQRT_2).min(1.0),
            Prior::GaussianUpper => (0.5 * erfc(t / std::f64::consts::SQRT_2)).min(1.0),
            Prior::Exponential => (-t).exp().min(1.0),
        }
    }
}

/// Excursions above a level that are discounted before the level's
/// learned rate counts.
const SUPPORT: f64 = 10.0;

/// Excesses over this level teach the tail's shape.
const SHAPE_LEVEL: f64 = 3.0;

/// Weight of the prior shape, in excesses.
const SHAPE_PRIOR: f64 = 20.0;

/// Exceedances of a level discounted before its rate counts.
const ROW_SUPPORT: f64 = 1.0;

/// Weight of the prior in the exceedance rates, in pseudo-observations:
/// enough to stand in for a level's first few exceedances, not so much that
/// a series of a few thousand observations keeps rates several times too
/// low (the up-crossings' 2,000 did that).
const ROW_PRIOR_WEIGHT: f64 = 100.0;

/// Levels at which up-crossings are counted.
const GRID: [f64; 16] = [
    2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, 50.0,
];

/// Estimates `P(stat >= t)` per observation for one statistic of one series.
#[derive(Debug, Clone)]
pub struct TailCalibrator {
    prior: Prior,
    /// The prior's tail at each grid level (computed once: `erfc` is most
    /// of the cost of a p-value otherwise).
    grid_prior: [f64; GRID.len()],
    /// Up-crossings counted (with forgetting) per grid level.
    crossings: [f64; GRID.len()],
    /// Observations at or above each level (with forgetting), counted
    /// while the series is not anomalous.
    exceedances: [f64; GRID.len()],
    /// The exceedance-based p of the last observed statistic.
    last_row: f64,
    /// Observations counted (with forgetting).
    total: f64,
    /// Whether the last statistic was at or above each level.
    above: [bool; GRID.len()],
    /// Weight of the prior, in pseudo-observations.
    prior_weight: f64,
    /// Multiplier applied to counts at each observation.
    keep: f64,
    /// Excesses over SHAPE_LEVEL seen (with forgetting), and the sum of
    /// their log-ratios (z-like) or differences (CUSUM).
    excess_n: f64,
    excess_sum: f64,
}

impl TailCalibrator {
    /// A calibrator with the given prior. `memory` is the number of
    /// observations after which old counts weigh half.
    pub fn new(prior: Prior, memory: f64) -> Self {
        Self {
            prior,
            grid_prior: GRID.map(|g| prior.tail(g)),
            crossings: [0.0; GRID.len()],
            exceedances: [0.0; GRID.len()],
            last_row: 1.0,
            total: 0.0,
            above: [false; GRID.len()],
            prior_weight: 2_000.0,
            keep: 0.5f64.powf(1.0 / memory.max(1.0)),
            excess_n: 0.0,
            excess_sum: 0.0,
        }
    }

    /// The learned rate of up-crossings of level `i`, when the data support
    /// one: the first few excursions above a level are discounted, so an
    /// incident or two does not teach the detector to ignore the next one.
    fn learned(
        &self,
        counts: &[f64; GRID.len()],
        support: f64,
        weight: f64,
        i: usize,
    ) -> Option<f64> {
        let c = counts[i] - support;
        (c >= 1.0).then(|| c / (self.total + weight))
    }

    /// The calibrated per-observation tail probability of `stat`: about the
    /// fraction of this series' ordinary observations at least this
    /// extreme. Never below [`TailCalibrator::p_value`].
    pub fn p_row(&self, stat: f64) -> f64 {
        self.p_row_given(stat, self.p_value(stat))
    }

    /// [`TailCalibrator::p_row`], given `stat`'s up-crossing p.
    fn p_row_given(&self, stat: f64, p: f64) -> f64 {
        self.p_from(&self.exceedances, ROW_SUPPORT, ROW_PRIOR_WEIGHT, stat)
            .max(p)
    }

    /// The exceedance-based p of the statistic last observed.
    pub fn last_row(&self) -> f64 {
        self.last_row
    }

    /// The calibrated tail probability of `stat`, without learning from it.
    ///
    /// Up to the highest level the data support, the learned rates are
    /// interpolated (log-linearly) and never fall below the prior. Beyond it
    /// the tail is extrapolated from the last two supported levels, as a
    /// power law for z-like statistics (so heavy-tailed series keep heavy
    /// tails) and log-linearly for CUSUM statistics; the prior stays a floor.
    /// With no supported level, the prior alone answers.
    pub fn p_value(&self, stat: f64) -> f64 {
        self.p_from(&self.crossings, SUPPORT, self.prior_weight, stat)
    }

    /// The tail probability of `stat` from the rates of `counts`.
    fn p_from(&self, counts: &[f64; GRID.len()], support: f64, weight: f64, stat: f64) -> f64 {
        if stat.is_nan() {
            return 1.0;
        }
        let stat = stat.max(0.0);
        // Levels with support, and their rates (made non-increasing).
        let mut levels: [(f64, f64); GRID.len()] = [(0.0, 0.0); GRID.len()];
        let mut first_prior = 1.0;
        let mut n = 0;
        let mut running = 1.0f64;
        for (i, &g) in GRID.iter().enumerate() {
            if let Some(rate) = self.learned(counts, support, weight, i) {
                running = running.min(rate.max(self.grid_prior[i]));
                if n == 0 {
                    first_prior = self.grid_prior[i];
                }
                levels[n] = (g, running);
                n += 1;
            }
        }
        let levels = &levels[..n];
        let Some(&(top, top_p)) = levels.last() else {
            return self.prior.tail(stat).clamp(f64::MIN_POSITIVE, 1.0);
        };
        if stat <= levels[0].0 {
            // Below the first supported level: the prior's shape, scaled to
            // meet it.
            let scale = levels[0].1 / first_prior;
            return (self.prior.tail(stat) * scale).clamp(f64::MIN_POSITIVE, 1.0);
        }
        if stat <= top {
            let i = levels.iter().rposition(|l| l.0 <= stat).unwrap_or(0);
            let (t0, p0) = levels[i];
            let (t1, p1) = levels[(i + 1).min(levels.len() - 1)];
            if t1 <= t0 {
                return p0;
            }
            let w = (stat - t0) / (t1 - t0);
            return (p0.ln() + w * (p1.ln() - p0.ln()))
                .exp()
                .clamp(f64::MIN_POSITIVE, 1.0);
        }
        // Beyond the top supported level the tail's shape comes from the
        // excesses over SHAPE_LEVEL: Hill's estimator (a power law) for
        // z-like statistics, the mean excess (an exponential) for CUSUMs.
        let shape = self.shape();
        let extrapolated = match self.prior {
            Prior::Exponential => top_p * (-(stat - top) / shape).exp(),
            Prior::Gaussian | Prior::GaussianUpper => top_p * (stat / top).powf(-1.0 / shape),
        };
        extrapolated
            .max(self.prior.tail(stat))
            .clamp(f64::MIN_POSITIVE, 1.0)
    }

    /// The tail shape: Hill's `xi` (z-like statistics) or the mean excess
    /// (CUSUM statistics), shrunk towards the prior's own value and bounded.
    fn shape(&self) -> f64 {
        let (prior_shape, lo, hi) = match self.prior {
            // A Gaussian's excesses over 3 have a Hill estimate near 0.08,
            // a t3's near 0.3: start between, cautious, and let data decide.
            Prior::Gaussian | Prior::GaussianUpper => (0.12, 0.05, 0.6),
            // exp(-t) has mean excess 1.
            Prior::Exponential => (1.0, 0.5, 8.0),
        };
        let est = (self.excess_sum + SHAPE_PRIOR * prior_shape) / (self.excess_n + SHAPE_PRIOR);
        est.clamp(lo, hi)
    }

    /// Learns from `stat`, including the shape of its tail.
    pub fn update(&mut self, stat: f64) {
        self.learn(stat, true);
    }

    /// Learns from `stat`; the tail's shape only when `shape` is true (pass
    /// false while the series is known to be anomalous, so an incident's
    /// long excursion does not flatten the tail).
    pub fn learn(&mut self, stat: f64, shape: bool) {
        if stat.is_nan() {
            return;
        }
        self.excess_n *= self.keep;
        self.excess_sum *= self.keep;
        if shape && stat > SHAPE_LEVEL {
            self.excess_n += 1.0;
            self.excess_sum += match self.prior {
                Prior::Exponential => (stat - SHAPE_LEVEL).min(20.0),
                Prior::Gaussian | Prior::GaussianUpper => (stat / SHAPE_LEVEL).ln().min(1.0),
            };
        }
        self.total = self.total * self.keep + 1.0;
        for (i, &level) in GRID.iter().enumerate() {
            self.crossings[i] *= self.keep;
            self.exceedances[i] *= self.keep;
            let now_above = stat >= level;
            if now_above {
                self.exceedances[i] += 1.0;
                if !self.above[i] {
                    self.crossings[i] += 1.0;
                }
            }
            self.above[i] = now_above;
        }
    }

    /// Scores then learns: the p-value of `stat` before it was counted.
    pub fn observe(&mut self, stat: f64) -> f64 {
        self.observe_with(stat, true)
    }

    /// Scores then learns; `ordinary` is false while the series is known to
    /// be anomalous: the tail's shape then learns nothing. Returns the up-crossing p; [`TailCalibrator::last_row`] has
    /// the exceedance p.
    pub fn observe_with(&mut self, stat: f64, ordinary: bool) -> f64 {
        let p = self.p_value(stat);
        self.last_row = self.p_row_given(stat, p);
        // A value extreme by what is known so far does not teach the tail's
        // shape: if such values recur, the up-crossing counts will learn
        // them. Every observation counts towards the exceedances: leaving
        // out the extreme or anomalous ones kept heavy tails light (5 to 12
        // times too many ordinary rows of NAB's real series at p <= 1e-3),
        // and alerts, which open on the up-crossings, are not taught by it.
        self.learn(stat, ordinary && p > 1e-6);
        p
    }
}

/// The complementary error function (Numerical Recipes' erfcc, relative
/// error below 1.2e-7), enough for tail probabilities.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-6);
        // P(|Z| >= 4) = 6.334e-5
        assert!((Prior::Gaussian.tail(4.0) - 6.334e-5).abs() < 1e-7);
    }

    #[test]
    fn without_data_the_prior_decides() {
        let c = TailCalibrator::new(Prior::Gaussian, 10_000.0);
        assert!((c.p_value(4.0) - Prior::Gaussian.tail(4.0)).abs() < 1e-9);
        assert!(c.p_value(8.0) < 1e-12);
        assert!((c.p_value(0.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn p_value_decreases_with_the_statistic() {
        let c = TailCalibrator::new(Prior::Exponential, 10_000.0);
        let mut last = 1.0;
        for i in 0..200 {
            let p = c.p_value(i as f64 * 0.1);
            assert!(p <= last + 1e-15, "not monotone at {i}");
            last = p;
        }
    }

    #[test]
    fn a_series_whose_tails_are_heavy_learns_to_be_less_surprised() {
        let mut c = TailCalibrator::new(Prior::Gaussian, 50_000.0);
        let before = c.p_value(5.0);
        // One excursion above 5 every 100 observations.
        for i in 0..20_000 {
            c.update(if i % 100 == 0 { 6.0 } else { 0.5 });
        }
        let after = c.p_value(5.0);
        assert!(
            after > 1_000.0 * before,
            "before {before:e}, after {after:e}"
        );
        assert!((after - 0.01).abs() < 0.004, "after {after}");
    }

    #[test]
    fn one_or_two_incidents_do_not_make_the_next_one_normal() {
        let mut c = TailCalibrator::new(Prior::Gaussian, 50_000.0);
        let before = c.p_value(20.0);
        for i in 0..5_000 {
            c.update(if i == 1_000 || i == 3_000 { 25.0 } else { 0.5 });
        }
        assert_eq!(c.p_value(20.0), before);
    }

    #[test]
    fn a_long_excursion_counts_once() {
        let mut a = TailCalibrator::new(Prior::Gaussian, 50_000.0);
        let mut b = TailCalibrator::new(Prior::Gaussian, 50_000.0);
        for i in 0..1_000 {
            // One long excursion of 200 points...
            a.update(if (100..300).contains(&i) { 6.0 } else { 0.0 });
            // ...weighs as one short one.
            b.update(if i == 100 { 6.0 } else { 0.0 });
        }
        assert!((a.p_value(5.0) - b.p_value(5.0)).abs() < 1e-9);
    }
}
