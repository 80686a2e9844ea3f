//! `aegis detect` on the harness's files and on broken files, through the
//! real binary.

use std::path::Path;
use std::process::Command;

use aegis_detect::eval::generate;

const BIN: &str = env!("CARGO_BIN_EXE_aegis");

fn detect(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("detect")
        .args(args)
        .output()
        .expect("run aegis detect")
}

fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("read output");
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn scores_are_causal_a_prefix_scores_the_same_when_rows_are_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let series = generate(42);
    let s = series
        .iter()
        .find(|s| s.name.starts_with("level_shift_gaussian"))
        .expect("series");
    let full = dir.path().join("full.csv");
    std::fs::write(&full, s.to_csv()).expect("write");
    let csv = s.to_csv();
    let prefix_text: String = csv.lines().take(3_001).map(|l| format!("{l}\n")).collect();
    let prefix = dir.path().join("prefix.csv");
    std::fs::write(&prefix, prefix_text).expect("write");

    let (full_out, prefix_out) = (dir.path().join("full.out"), dir.path().join("prefix.out"));
    for (input, out) in [(&full, &full_out), (&prefix, &prefix_out)] {
        let o = detect(&[
            input.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (read_rows(&full_out), read_rows(&prefix_out));
    assert_eq!(b.len(), 3_001);
    assert_eq!(
        &a[..b.len()],
        &b[..],
        "appending rows changed earlier scores"
    );
    assert_eq!(
        a[0],
        vec!["timestamp", "value", "label", "anomaly_score", "alert"]
    );
}

#[test]
fn alerts_land_on_the_labeled_anomalies_of_harness_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    for s in generate(42).iter().filter(|s| {
        [
            "spike_gaussian",
            "level_shift_counts_seasonal",
            "flatline_correlated",
        ]
        .iter()
        .any(|n| s.name.starts_with(n))
    }) {
        let input = dir.path().join(format!("{}.csv", s.name));
        let output = dir.path().join(format!("{}.out", s.name));
        std::fs::write(&input, s.to_csv()).expect("write");
        let o = detect(&[
            input.to_str().expect("utf8"),
            "-o",
            output.to_str().expect("utf8"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rows = read_rows(&output);
        // Rows are timestamp, value, label, anomaly_score, alert.
        let mut detected = 0;
        for e in &s.events {
            let hit = rows[1..].iter().any(|r| {
                let t: f64 = r[0].parse().unwrap_or(0.0);
                t >= e.start && t <= e.end + 3600.0 && r[4] == "1"
            });
            detected += usize::from(hit);
        }
        assert!(
            detected * 10 >= s.events.len() * 8,
            "{}: {detected} of {} events alerted",
            s.name,
            s.events.len()
        );
        for r in &rows[1..] {
            let score: f64 = r[3].parse().expect("score");
            assert!((0.0..=1.0).contains(&score));
        }
    }
}

#[test]
fn a_malformed_row_is_reported_with_its_line_or_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("bad.csv");
    std::fs::write(
        &input,
        "timestamp,value\n1,2\n2,abc\n3,4\n4\n2014-04-10 00:00:00,5\n6,\n",
    )
    .expect("write");
    let path = input.to_str().expect("utf8");

    let strict = detect(&[path]);
    assert_eq!(strict.status.code(), Some(65));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains(&format!(
            "{path}:3: column `value`: \"abc\" is not a number"
        )),
        "{err}"
    );

    let lenient = detect(&[path, "--skip-bad-rows"]);
    assert!(lenient.status.success());
    let err = String::from_utf8_lossy(&lenient.stderr);
    assert!(
        err.contains("3 rows scored")
            && err.contains("1 rows without a value")
            && err.contains("2 malformed rows skipped"),
        "{err}"
    );
    assert!(
        err.contains(":5: expected 2 fields as in the header, found 1"),
        "{err}"
    );
    // The empty value is a missing point, not a malformed row.
    let out = String::from_utf8_lossy(&lenient.stdout);
    assert!(out.lines().any(|l| l.starts_with("6,,")), "{out}");
}

#[test]
fn a_file_without_a_timestamp_column_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("x.csv");
    std::fs::write(&input, "time,value\n1,2\n").expect("write");
    let o = detect(&[input.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no `timestamp` column (it has: time, value)")
    );
    let o = detect(&[input.to_str().expect("utf8"), "--column", "nope"]);
    assert_eq!(o.status.code(), Some(65));
}

/// A calm series of `n` rows, one a second, around 10.
fn calm(n: usize) -> String {
    let mut text = String::from("timestamp,value\n");
    for i in 0..n {
        text.push_str(&format!(
            "{},{}\n",
            1_700_000_000 + i,
            10.0 + (i % 7) as f64 * 0.1
        ));
    }
    text
}

/// Regression (hardening, defect 10): `inf` was scored 0 and counted as
/// scored, so a `+inf` spike never alerted while `1e308` did; `NaN` rows
/// were counted as scored too.
#[test]
fn an_infinite_value_is_a_bad_row_and_a_missing_one_is_not_scored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("inf.csv");
    let mut text = calm(400);
    text.push_str("1700000400,+inf\n1700000401,NaN\n");
    std::fs::write(&input, &text).expect("write");
    let path = input.to_str().expect("utf8");
    let strict = detect(&[path]);
    assert_eq!(strict.status.code(), Some(65));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains(&format!(
            "{path}:402: column `value`: \"+inf\" is not a finite number"
        )),
        "{err}"
    );
    let lenient = detect(&[path, "--skip-bad-rows"]);
    assert!(lenient.status.success());
    let err = String::from_utf8_lossy(&lenient.stderr);
    assert!(
        err.contains("400 rows scored")
            && err.contains("1 rows without a value")
            && err.contains("1 malformed rows skipped"),
        "{err}"
    );
    // The missing row is passed through with an empty score.
    let out = String::from_utf8_lossy(&lenient.stdout);
    assert!(out.lines().any(|l| l == "1700000401,NaN,,0"), "{out}");
}

/// Regression (hardening, defect 10): binary garbage exited 1 where other
/// bad input exits 65; a file that is not there is EX_NOINPUT.
#[test]
fn binary_garbage_is_bad_input_and_a_missing_file_is_no_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("garbage.csv");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&input, &garbage).expect("write");
    let o = detect(&[input.to_str().expect("utf8")]);
    assert_eq!(
        o.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("garbage.csv"));
    let o = detect(&[dir.path().join("absent.csv").to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&o.stderr).contains("absent.csv"));
}

/// Regression (hardening, defect 10): an error half way left a partial
/// output file; now the output appears only whole, and an older one stays.
#[test]
fn an_error_leaves_no_partial_output_and_keeps_an_older_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("broken.csv");
    let mut text = calm(300);
    text.push_str("1700000300,oops\n");
    std::fs::write(&input, &text).expect("write");
    let out = dir.path().join("scores.csv");
    let o = detect(&[
        input.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(65));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["broken.csv".to_string()], "files left: {left:?}");
    std::fs::write(&out, "older\n").expect("older");
    let o = detect(&[
        input.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert_eq!(std::fs::read_to_string(&out).expect("older"), "older\n");
    // And a good run replaces it.
    std::fs::write(&input, calm(50)).expect("write");
    let o = detect(&[
        input.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success());
    assert_eq!(read_rows(&out).len(), 51);
}

/// Regression (hardening, defect 10): `--column timestamp` was accepted.
#[test]
fn the_timestamp_is_not_a_column_to_score() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("x.csv");
    std::fs::write(&input, calm(5)).expect("write");
    let o = detect(&[input.to_str().expect("utf8"), "--column", "timestamp"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`timestamp` is the time of each row"));
}
