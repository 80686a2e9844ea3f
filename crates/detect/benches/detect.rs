//! Cost of detection on the hot path: one observation through the full
//! ensemble, and the isolation forest's fit and one-row score.
//! `cargo bench -p aegis-detect`

use std::hint::black_box;

use aegis_detect::forest::{Forest, ForestConfig, Rng};
use aegis_detect::series::{SeriesConfig, SeriesDetector};
use criterion::{criterion_group, criterion_main, Criterion};

fn ensemble(c: &mut Criterion) {
    // A detector past warm-up and settling, with its seasonal check running.
    let mut det = SeriesDetector::new(SeriesConfig::default());
    let mut rng = Rng::new(1);
    let mut t = 1_800_000_000.0;
    for _ in 0..5_000 {
        det.assess(50.0 + rng.normal(), t);
        t += 60.0;
    }
    c.bench_function("ensemble_observe_one_series", |b| {
        b.iter(|| {
            t += 60.0;
            black_box(det.assess(black_box(50.0 + rng.normal()), t))
        })
    });
}

fn rows(n: usize, dims: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| (0..dims).map(|_| rng.normal()).collect())
        .collect()
}

fn forest(c: &mut Criterion) {
    let data = rows(256, 8, 7);
    let config = ForestConfig::default();
    c.bench_function("forest_fit_256x100", |b| {
        b.iter(|| black_box(Forest::fit(black_box(&data), config)))
    });
    let model = Forest::fit(&data, config).expect("fit");
    let row = rows(1, 8, 8).remove(0);
    c.bench_function("forest_score_one_row", |b| {
        b.iter(|| black_box(model.score(black_box(&row))))
    });
}

criterion_group!(benches, ensemble, forest);
criterion_main!(benches);
