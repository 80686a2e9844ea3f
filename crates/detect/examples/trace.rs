//! Prints every assessment of one harness series between two hours.
//! `cargo run --release -p aegis-detect --example trace -- NAME FROM_H TO_H`

use aegis_detect::eval::generate;
use aegis_detect::series::{Component, SeriesConfig, SeriesDetector};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (name, from, to) = (
        &args[1],
        args[2].parse::<f64>().unwrap_or(0.0),
        args[3].parse::<f64>().unwrap_or(1.0),
    );
    let all = generate(42);
    let Some(s) = all.iter().find(|s| &s.name == name) else {
        return;
    };
    let config = match args.get(4).map(String::as_str) {
        Some(only) => {
            let c = Component::ALL
                .into_iter()
                .find(|c| c.as_str() == only)
                .unwrap_or(Component::Spike);
            SeriesConfig::default().only(&[c])
        }
        None => SeriesConfig::default(),
    };
    let mut det = SeriesDetector::new(config);
    for (&t, &x) in s.t.iter().zip(&s.x) {
        let a = det.assess(x, t);
        let h = (t - s.t[0]) / 3600.0;
        if h >= from && h <= to {
            println!(
                "{h:8.3}h x={x:9.3} exp={:9.3} p={:.2e} {}",
                det.expected(t),
                a.p,
                a.top
                    .map(|f| format!("{} {:.2e} {}", f.component.as_str(), f.p, f.explain()))
                    .unwrap_or_default()
            );
        }
    }
}
