//! An isolation forest (Liu, Ting and Zhou, 2008) written for streaming use.
//!
//! Why our own: the forest is small (256-sample trees, 100 of them), scoring
//! one row must cost microseconds inside the agent's pipeline, training must
//! be deterministic given a seed and runnable on a blocking thread, and the
//! maintained crates we looked at either allocate per node or pull in a
//! dataframe stack. Trees are flat arrays of nodes; scoring a row is about a
//! hundred short walks down cache-friendly vectors.
//!
//! [`ForestDetector`] keeps a bounded sliding window of feature rows, asks for
//! a retraining every so often ([`ForestDetector::training_due`]), and always
//! scores with the last *published* model ([`crate::model::ModelSlot`]); until
//! one exists it reports warming up.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::calibrate::{Prior, TailCalibrator};
use crate::model::{ModelSlot, Published};
use crate::{Score, State};

/// Settings of a forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForestConfig {
    /// Number of trees.
    pub trees: usize,
    /// Rows drawn (without replacement) for each tree.
    pub sample_size: usize,
    /// Seed of the random choices; same seed, same data: same forest.
    pub seed: u64,
}

impl Default for ForestConfig {
    fn default() -> Self {
        Self {
            trees: 100,
            sample_size: 256,
            seed: 0x5EED,
        }
    }
}

/// Why a forest could not be fitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    /// Not enough rows.
    #[error("need at least 2 rows to fit, got {0}")]
    TooFewRows(usize),
    /// Rows of different widths or an empty row.
    #[error("rows must all have {expected} features; row {row} has {found}")]
    Ragged {
        /// Width of the first row.
        expected: usize,
        /// The offending row.
        row: usize,
        /// Its width.
        found: usize,
    },
    /// A value was NaN or infinite.
    #[error("row {row}, feature {feature} is not a finite number")]
    NotFinite {
        /// Row.
        row: usize,
        /// Feature.
        feature: usize,
    },
}

const LEAF: u32 = u32::MAX;

/// One node: an internal split or a leaf. For a leaf, `split` holds the
/// expected remaining path length `c(size)` of the rows that reached it.
/// An internal node keeps the range `[lo, hi]` its rows spanned on the split
/// feature: a row far outside it is isolated right there. Plain isolation
/// forests score every row beyond the training range like the most extreme
/// training row, however far it lies.
///
/// Nodes are laid out depth first, so an internal node's left child is the
/// next node and only the right child's index is stored; values are `f32`
/// (features are ratios, loads and logs of rates). 20 bytes a node keeps a
/// whole tree in a few cache lines.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    feature: u32,
    right: u32,
    split: f32,
    lo: f32,
    hi: f32,
}

#[derive(Debug, Clone, PartialEq)]
struct Tree {
    nodes: Vec<Node>,
}

/// A fitted isolation forest.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    trees: Vec<Tree>,
    dims: usize,
    norm: f64,
}

/// SplitMix64: tiny, fast, good enough for choosing splits; seeded.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Average path length of an unsuccessful search in a binary search tree of
/// `n` nodes: the normaliser of isolation depths.
pub fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

impl Forest {
    /// Fits a forest on `rows` (all of the same width).
    pub fn fit(rows: &[Vec<f64>], config: ForestConfig) -> Result<Self, FitError> {
        Self::fit_with_progress(rows, config, |_| {})
    }

    /// Like [`Forest::fit`], calling `progress(trees_built)` after each tree.
    pub fn fit_with_progress(
        rows: &[Vec<f64>],
        config: ForestConfig,
        mut progress: impl FnMut(usize),
    ) -> Result<Self, FitError> {
        if rows.len() < 2 {
            return Err(FitError::TooFewRows(rows.len()));
        }
        let dims = rows[0].len();
        for (r, row) in rows.iter().enumerate() {
            if row.len() != dims || dims == 0 {
                return Err(FitError::Ragged {
                    expected: dims,
                    row: r,
                    found: row.len(),
                });
            }
            if let Some(f) = row.iter().position(|v| !v.is_finite()) {
                return Err(FitError::NotFinite { row: r, feature: f });
            }
        }
        let psi = config.sample_size.clamp(2, rows.len());
        let height_limit = (psi as f64).log2().ceil() as usize;
        let mut rng = Rng::new(config.seed);
        let mut all: Vec<usize> = (0..rows.len()).collect();
        let mut trees = Vec::with_capacity(config.trees);
        for built in 0..config.trees {
            // Partial Fisher-Yates: the first psi entries are the sample.
            for i in 0..psi {
                let j = i + rng.below(all.len() - i);
                all.swap(i, j);
            }
            let mut sample = all[..psi].to_vec();
            let mut nodes = Vec::with_capacity(2 * psi);
            build(rows, &mut sample, 0, height_limit, &mut rng, &mut nodes);
            trees.push(Tree { nodes });
            progress(built + 1);
        }
        Ok(Self {
            trees,
            dims,
            norm: c(psi),
        })
    }

    /// Number of features a row must have.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Number of trees.
    pub fn trees(&self) -> usize {
        self.trees.len()
    }

    /// The anomaly score of Liu et al.: `2^(-E[h(x)] / c(psi))`, in (0, 1];
    /// about 0.5 and below for ordinary rows, towards 1 for isolated ones.
    /// A row of the wrong width scores 0.5 (no opinion).
    pub fn score(&self, row: &[f64]) -> f64 {
        if row.len() != self.dims || self.trees.is_empty() || self.norm <= 0.0 {
            return 0.5;
        }
        let total: f64 = self.trees.iter().map(|t| path_length(t, row)).sum();
        let mean = total / self.trees.len() as f64;
        2f64.powf(-mean / self.norm)
    }
}

fn build(
    rows: &[Vec<f64>],
    idx: &mut [usize],
    depth: usize,
    limit: usize,
    rng: &mut Rng,
    nodes: &mut Vec<Node>,
) -> u32 {
    let me = nodes.len() as u32;
    let leaf = |n: usize| Node {
        feature: LEAF,
        right: 0,
        split: c(n) as f32,
        lo: 0.0,
        hi: 0.0,
    };
    if depth >= limit || idx.len() <= 1 {
        nodes.push(leaf(idx.len()));
        return me;
    }
    // Choose a random feature among those that vary in this node.
    let dims = rows[idx[0]].len();
    let start = rng.below(dims);
    let mut chosen = None;
    for k in 0..dims {
        let f = (start + k) % dims;
        let (lo, hi) = idx
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
                (lo.min(rows[i][f]), hi.max(rows[i][f]))
            });
        if hi > lo {
            chosen = Some((f, lo, hi));
            break;
        }
    }
    let Some((f, lo, hi)) = chosen else {
        nodes.push(leaf(idx.len()));
        return me;
    };
    let split = lo + rng.unit() * (hi - lo);
    // Partition in place: rows below the split first.
    let mut mid = 0;
    for i in 0..idx.len() {
        if rows[idx[i]][f] < split {
            idx.swap(i, mid);
            mid += 1;
        }
    }
    if mid == 0 || mid == idx.len() {
        // The split value fell on the minimum; treat as unsplittable.
        nodes.push(leaf(idx.len()));
        return me;
    }
    nodes.push(Node {
        feature: f as u32,
        right: 0,
        split: split as f32,
        lo: lo as f32,
        hi: hi as f32,
    });
    let (low, high) = idx.split_at_mut(mid);
    // Depth first: the left child is the next node.
    build(rows, low, depth + 1, limit, rng, nodes);
    let right = build(rows, high, depth + 1, limit, rng, nodes);
    nodes[me as usize].right = right;
    me
}

fn path_length(tree: &Tree, row: &[f64]) -> f64 {
    let mut at = 0usize;
    let mut depth = 0.0f64;
    while let Some(node) = tree.nodes.get(at) {
        if node.feature == LEAF {
            return depth + f64::from(node.split);
        }
        depth += 1.0;
        let v = row[node.feature as usize] as f32;
        let width = node.hi - node.lo;
        if v < node.lo - width || v > node.hi + width {
            // Beyond the node's rows by more than their own spread: this
            // split would isolate the row on its own.
            return depth;
        }
        at = if v < node.split {
            at + 1
        } else {
            node.right as usize
        };
    }
    depth
}

/// A published forest with what explanations need: each feature's median
/// and robust scale over the training window.
#[derive(Debug, Clone, PartialEq)]
pub struct HostModel {
    /// The forest.
    pub forest: Forest,
    /// Per-feature median of the training window.
    pub median: Vec<f64>,
    /// Per-feature robust scale (MAD x 1.4826, floored).
    pub scale: Vec<f64>,
}

/// Work for a blocking thread: fit a model on a snapshot of the window.
#[derive(Debug, Clone)]
pub struct TrainingJob {
    rows: Vec<Vec<f64>>,
    config: ForestConfig,
}

impl TrainingJob {
    /// Fits the model. Heavy: run it off the pipeline's task.
    pub fn run(self) -> Result<HostModel, FitError> {
        self.run_with_progress(|_| {})
    }

    /// Like [`TrainingJob::run`], reporting trees built.
    pub fn run_with_progress(self, progress: impl FnMut(usize)) -> Result<HostModel, FitError> {
        let forest = Forest::fit_with_progress(&self.rows, self.config, progress)?;
        let dims = forest.dims();
        let mut median = Vec::with_capacity(dims);
        let mut scale = Vec::with_capacity(dims);
        for f in 0..dims {
            let mut col: Vec<f64> = self.rows.iter().map(|r| r[f]).collect();
            col.sort_by(f64::total_cmp);
            let m = col[col.len() / 2];
            let mut dev: Vec<f64> = col.iter().map(|v| (v - m).abs()).collect();
            dev.sort_by(f64::total_cmp);
            let mad = dev[dev.len() / 2] * 1.4826;
            median.push(m);
            scale.push(mad.max(m.abs() * 1e-3).max(1e-9));
        }
        Ok(HostModel {
            forest,
            median,
            scale,
        })
    }
}

/// Settings of the streaming forest detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForestDetectorConfig {
    /// Rows kept for training (oldest dropped first).
    pub window: usize,
    /// Rows needed before the first model.
    pub min_rows: usize,
    /// Retrain after this many new rows.
    pub retrain_every: usize,
    /// Forest settings; the seed is mixed with the model version.
    pub forest: ForestConfig,
}

impl Default for ForestDetectorConfig {
    fn default() -> Self {
        Self {
            window: 2_048,
            min_rows: 256,
            retrain_every: 256,
            forest: ForestConfig::default(),
        }
    }
}

/// A feature that moved, for explanations.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// Index of the feature in the row.
    pub feature: usize,
    /// Its value.
    pub value: f64,
    /// Its median over the training window.
    pub median: f64,
    /// Robust z-score against the window.
    pub z: f64,
}

/// What the forest detector says about one row.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestVerdict {
    /// The calibrated score (warming up until a model is published).
    pub score: Score,
    /// The raw isolation score.
    pub raw: Option<f64>,
    /// Version of the model that scored the row.
    pub model_version: Option<u64>,
    /// The features that moved most, largest first (up to 3).
    pub moved: Vec<Moved>,
}

/// Isolation-forest detection over a sliding window of rows.
#[derive(Debug)]
pub struct ForestDetector {
    config: ForestDetectorConfig,
    window: VecDeque<Vec<f64>>,
    since_training: usize,
    training: bool,
    slot: ModelSlot<HostModel>,
    calibrator: TailCalibrator,
    trained_versions: u64,
}

impl ForestDetector {
    /// A detector with an empty window and no model.
    pub fn new(config: ForestDetectorConfig) -> Self {
        Self {
            config,
            window: VecDeque::with_capacity(config.window.min(4096)),
            since_training: 0,
            training: false,
            slot: ModelSlot::new(),
            calibrator: TailCalibrator::new(Prior::GaussianUpper, 20_000.0),
            trained_versions: 0,
        }
    }

    /// The slot models are published to (give it to the training thread).
    pub fn slot(&self) -> ModelSlot<HostModel> {
        self.slot.clone()
    }

    /// Scores a row with the published model, then adds it to the window.
    pub fn observe(&mut self, row: &[f64]) -> ForestVerdict {
        let published: Option<Arc<Published<HostModel>>> = self.slot.current();
        let verdict = match &published {
            Some(model)
                if model.model.forest.dims() == row.len() && row.iter().all(|v| v.is_finite()) =>
            {
                let raw = model.model.forest.score(row);
                // Ordinary rows score around 0.4-0.5; standardise loosely and
                // let the calibrator learn this host's real spread.
                let p = self.calibrator.observe((raw - 0.5) / 0.05);
                let mut moved: Vec<Moved> = row
                    .iter()
                    .enumerate()
                    .map(|(f, &v)| Moved {
                        feature: f,
                        value: v,
                        median: model.model.median[f],
                        z: (v - model.model.median[f]) / model.model.scale[f],
                    })
                    .collect();
                moved.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
                moved.truncate(3);
                ForestVerdict {
                    score: Score {
                        value: 1.0 - p,
                        state: State::Ready,
                    },
                    raw: Some(raw),
                    model_version: Some(model.version),
                    moved,
                }
            }
            _ => ForestVerdict {
                score: Score::warming(
                    self.config.min_rows as u32,
                    self.window.len().min(u32::MAX as usize) as u32,
                ),
                raw: None,
                model_version: published.as_ref().map(|m| m.version),
                moved: Vec::new(),
            },
        };
        if row.iter().all(|v| v.is_finite()) {
            if self.window.len() >= self.config.window {
                self.window.pop_front();
            }
            self.window.push_back(row.to_vec());
            self.since_training += 1;
        }
        verdict
    }

    /// A training job when one is due and none is running. Call
    /// [`ForestDetector::training_done`] once its model is published (or failed).
    pub fn training_due(&mut self) -> Option<TrainingJob> {
        let first = self.trained_versions == 0;
        let due = if first {
            self.window.len() >= self.config.min_rows
        } else {
            self.since_training >= self.config.retrain_every
        };
        if !due || self.training {
            return None;
        }
        self.training = true;
        self.since_training = 0;
        self.trained_versions += 1;
        let mut forest = self.config.forest;
        forest.seed = forest.seed.wrapping_add(self.trained_versions);
        Some(TrainingJob {
            rows: self.window.iter().cloned().collect(),
            config: forest,
        })
    }

    /// Marks the running training as finished.
    pub fn training_done(&mut self) {
        self.training = false;
    }

    /// Rows in the window (bounded by the configured window).
    pub fn window_len(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| vec![rng.normal(), rng.normal(), 10.0 + rng.normal()])
            .collect()
    }

    #[test]
    fn outliers_score_higher_than_inliers() {
        let forest = Forest::fit(&cloud(1000, 1), ForestConfig::default()).expect("fit");
        let inlier = forest.score(&[0.0, 0.0, 10.0]);
        let outlier = forest.score(&[6.0, -6.0, 10.0]);
        assert!(inlier < 0.5, "inlier {inlier}");
        assert!(outlier > 0.65, "outlier {outlier}");
    }

    #[test]
    fn fitting_is_deterministic_given_the_seed() {
        let data = cloud(500, 2);
        let a = Forest::fit(&data, ForestConfig::default()).expect("fit");
        let b = Forest::fit(&data, ForestConfig::default()).expect("fit");
        assert_eq!(a, b);
        let c2 = Forest::fit(
            &data,
            ForestConfig {
                seed: 7,
                ..ForestConfig::default()
            },
        )
        .expect("fit");
        assert_ne!(a, c2);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(
            Forest::fit(&[vec![1.0]], ForestConfig::default()),
            Err(FitError::TooFewRows(1))
        );
        assert!(matches!(
            Forest::fit(&[vec![1.0, 2.0], vec![1.0]], ForestConfig::default()),
            Err(FitError::Ragged { row: 1, .. })
        ));
        assert!(matches!(
            Forest::fit(&[vec![1.0], vec![f64::NAN]], ForestConfig::default()),
            Err(FitError::NotFinite { row: 1, feature: 0 })
        ));
        let forest = Forest::fit(&cloud(10, 3), ForestConfig::default()).expect("fit");
        assert_eq!(forest.score(&[1.0]), 0.5);
    }

    #[test]
    fn constant_data_gives_leaves_not_loops() {
        let rows = vec![vec![1.0, 1.0]; 300];
        let forest = Forest::fit(&rows, ForestConfig::default()).expect("fit");
        assert!(forest.score(&[1.0, 1.0]).is_finite());
    }

    #[test]
    fn c_matches_the_paper() {
        assert_eq!(c(1), 0.0);
        assert_eq!(c(2), 1.0);
        assert!((c(256) - 10.244).abs() < 0.01);
    }
}
