//! Per-series view of the harness: for each series, its events, which were
//! detected, and every alert with the component that opened it.
//! `cargo run --release -p aegis-detect --example diagnose [-- NAME_FILTER]`

use aegis_detect::alert::{AlertConfig, Alerter, Transition};
use aegis_detect::eval::{generate, TOLERANCE};
use aegis_detect::series::{SeriesConfig, SeriesDetector};

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    for s in generate(42).iter().filter(|s| s.name.contains(&filter)) {
        let mut det = SeriesDetector::new(SeriesConfig::default());
        let mut alerter = Alerter::new(AlertConfig::default());
        let t0 = s.t[0];
        let h = |t: f64| (t - t0) / 3600.0;
        let mut lines = Vec::new();
        for (&t, &x) in s.t.iter().zip(&s.x) {
            let a = det.assess(x, t);
            match alerter.update(1.0 - a.p) {
                Some(Transition::Opened) => {
                    let hit = s
                        .events
                        .iter()
                        .any(|e| t >= e.start && t <= e.end + TOLERANCE);
                    let why = a
                        .top
                        .map(|f| format!("{} p={:.1e}: {}", f.component.as_str(), f.p, f.explain()))
                        .unwrap_or_default();
                    lines.push(format!(
                        "  {} open  {:7.2}h {why}",
                        if hit { "TP" } else { "FA" },
                        h(t)
                    ));
                }
                Some(Transition::Closed) => lines.push(format!("     close {:7.2}h", h(t))),
                None => {}
            }
        }
        println!(
            "{} (seasonal profile in use at end: {})",
            s.name,
            det.seasonal()
        );
        for e in &s.events {
            println!("  event {:?} {:.2}h..{:.2}h", e.kind, h(e.start), h(e.end));
        }
        for l in lines {
            println!("{l}");
        }
    }
}
