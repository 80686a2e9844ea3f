//! Runs the evaluation harness and prints the tables of docs/detection.md.
//!
//! `cargo run --release -p aegis-detect --example evaluate [-- --seed N] [--csv DIR]`
//! `--csv DIR` also writes every generated series as `DIR/NAME.csv`
//! (`timestamp,value,label`), the files `aegis detect` can be run on.

use aegis_detect::alert::AlertConfig;
use aegis_detect::eval::{configurations, evaluate, generate, Kind};

fn main() {
    let mut seed = 42u64;
    let mut csv_dir: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(seed),
            "--csv" => csv_dir = args.next(),
            other => {
                eprintln!("unknown argument {other}; use --seed N or --csv DIR");
                std::process::exit(2);
            }
        }
    }
    let series = generate(seed);
    if let Some(dir) = &csv_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {dir}: {e}");
            std::process::exit(1);
        }
        for s in &series {
            let path = format!("{dir}/{}.csv", s.name);
            if let Err(e) = std::fs::write(&path, s.to_csv()) {
                eprintln!("cannot write {path}: {e}");
                std::process::exit(1);
            }
        }
    }
    let days: f64 = series.iter().map(|s| s.days()).sum();
    println!(
        "seed {seed}: {} series, {:.0} days at one-minute resolution, {} labeled events\n",
        series.len(),
        days,
        series.iter().map(|s| s.events.len()).sum::<usize>()
    );
    let alert = AlertConfig::default();
    println!("| detector | precision | recall | F1 | mean delay (min) | open after the end (min) | false alarms / day |");
    println!("|---|---|---|---|---|---|---|");
    let mut ensemble_kinds = Vec::new();
    for (name, config) in configurations() {
        let (total, per_kind) = evaluate(&series, &config, alert);
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {:.3} |",
            total.precision(),
            total.recall(),
            total.f1(),
            total.mean_delay_minutes(),
            total.mean_linger_minutes(),
            total.false_alarms_per_day()
        );
        if name == "ensemble" {
            ensemble_kinds = per_kind;
        }
    }
    println!("\nEnsemble, per class of anomaly:\n");
    println!(
        "| class | events | detected | recall | mean delay (min) | open after the end (min) |"
    );
    println!("|---|---|---|---|---|---|");
    for kind in Kind::ALL {
        if let Some((_, c)) = ensemble_kinds.iter().find(|(k, _)| *k == kind) {
            println!(
                "| {} | {} | {} | {:.3} | {:.1} | {:.1} |",
                kind.as_str(),
                c.events,
                c.detected,
                c.recall(),
                c.mean_delay_minutes(),
                c.mean_linger_minutes()
            );
        }
    }
}
