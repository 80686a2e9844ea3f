//! Calibration on real data: over the real series of a copy of the Numenta
//! Anomaly Benchmark (its `data/real*/*.csv` and
//! `labels/combined_windows.json`), outside the labelled windows and after
//! warm-up, the fraction of rows `aegis detect` scores at `p <= 1e-2` and at
//! `p <= 1e-3` (`anomaly_score >= 0.99`, `>= 0.999`) is within three times
//! the nominal value. The data is not part of this repository: set
//! `AEGIS_NAB_DIR` to a NAB checkout (or a part of one with the same
//! layout); without it the test says so and passes.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

mod common;

use common::BIN;

/// Rows scored and rows at `p <= 1e-2` and `p <= 1e-3`, outside `windows`
/// (pairs of `YYYY-MM-DD HH:MM:SS` prefixes) and after warm-up.
fn tally(scored_csv: &str, windows: &[(String, String)]) -> (u64, u64, u64) {
    let (mut n, mut at2, mut at3) = (0, 0, 0);
    let mut warm = true;
    for line in scored_csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let (Some(ts), Some(score)) = (cols.first(), cols.get(cols.len().saturating_sub(2))) else {
            continue;
        };
        let Ok(score) = score.parse::<f64>() else {
            continue;
        };
        // Warm-up rows are scored 0 until the first judgement.
        warm &= score == 0.0;
        let ts = &ts[..ts.len().min(19)];
        let inside = windows
            .iter()
            .any(|(a, b)| ts >= &a[..a.len().min(19)] && ts <= &b[..b.len().min(19)]);
        if warm || inside {
            continue;
        }
        n += 1;
        at2 += u64::from(score >= 0.99);
        at3 += u64::from(score >= 0.999);
    }
    (n, at2, at3)
}

#[test]
fn ordinary_rows_of_real_series_reach_p_about_as_often_as_p_says() {
    let Some(root) = std::env::var_os("AEGIS_NAB_DIR") else {
        eprintln!("skipped: AEGIS_NAB_DIR is not set (a NAB checkout: data/ and labels/)");
        return;
    };
    let root = Path::new(&root);
    let labels: HashMap<String, Vec<(String, String)>> = serde_json::from_str(
        &std::fs::read_to_string(root.join("labels/combined_windows.json"))
            .expect("labels/combined_windows.json"),
    )
    .expect("labels as JSON");
    let out = tempfile::tempdir().expect("tempdir");
    let (mut n, mut at2, mut at3, mut files) = (0, 0, 0, 0);
    let mut categories: Vec<_> = std::fs::read_dir(root.join("data"))
        .expect("data/")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("real"))
        .collect();
    categories.sort_by_key(|e| e.file_name());
    for cat in categories {
        let mut csvs: Vec<_> = std::fs::read_dir(cat.path())
            .expect("category")
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
            .collect();
        csvs.sort_by_key(|e| e.file_name());
        for csv in csvs {
            let key = format!(
                "{}/{}",
                cat.file_name().to_string_lossy(),
                csv.file_name().to_string_lossy()
            );
            let scored = out.path().join(csv.file_name());
            let run = Command::new(BIN)
                .arg("detect")
                .arg(csv.path())
                .arg("--out")
                .arg(&scored)
                .output()
                .expect("aegis detect");
            assert!(
                run.status.success(),
                "{key}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            let windows = labels.get(&key).cloned().unwrap_or_default();
            let (a, b, c) = tally(
                &std::fs::read_to_string(&scored).expect("scored csv"),
                &windows,
            );
            n += a;
            at2 += b;
            at3 += c;
            files += 1;
        }
    }
    assert!(
        files > 0 && n > 0,
        "no real series under {}",
        root.display()
    );
    let (f2, f3) = (at2 as f64 / n as f64, at3 as f64 / n as f64);
    eprintln!("{files} real series, {n} ordinary rows: {f2:.4} at p <= 1e-2, {f3:.5} at p <= 1e-3");
    assert!(
        (1e-2 / 3.0..=3e-2).contains(&f2),
        "{f2:.4} of ordinary rows at p <= 1e-2"
    );
    assert!(
        (1e-3 / 3.0..=3e-3).contains(&f3),
        "{f3:.5} of ordinary rows at p <= 1e-3"
    );
}
