//! Times our isolation forest on a CSV of rows (no header, comma-separated),
//! for the side-by-side comparison in `scripts/bench-iforest.py`.
//! Prints JSON: median seconds for a fit (100 trees, 256 samples) and for
//! scoring one row.
//! `cargo run --release -p aegis-detect --example iforest_timing -- DATA.csv`

use std::hint::black_box;
use std::time::Instant;

use aegis_detect::forest::{Forest, ForestConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: iforest_timing DATA.csv");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(1);
        }
    };
    let rows: Vec<Vec<f64>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .collect();
    let config = ForestConfig {
        trees: 100,
        sample_size: 256,
        seed: 1,
    };
    let mut fits = Vec::new();
    let mut model = None;
    for i in 0..50 {
        let start = Instant::now();
        let f = Forest::fit(black_box(&rows), ForestConfig { seed: i, ..config });
        fits.push(start.elapsed().as_secs_f64());
        model = f.ok();
    }
    let Some(model) = model else {
        eprintln!("fit failed");
        std::process::exit(1);
    };
    let row = &rows[0];
    let mut scores = Vec::new();
    for _ in 0..200 {
        // Each sample is the mean of 1000 scorings: one is below the timer's resolution.
        let start = Instant::now();
        for _ in 0..1000 {
            black_box(model.score(black_box(row)));
        }
        scores.push(start.elapsed().as_secs_f64() / 1000.0);
    }
    println!(
        "{{\"fit_seconds\": {:e}, \"score_one_row_seconds\": {:e}}}",
        median(fits),
        median(scores)
    );
}
