//! Regression test for the prototype's network-counter defect: two collectors
//! sampled the same counter concurrently and shared one "previous value", so
//! a late sample or a counter reset produced negative or inflated rates.
//!
//! Here several threads sample a counter that is reset now and then, and
//! their samples reach the single owner of the [`CounterTracker`] in whatever
//! order the scheduler gives. Every rate produced must be the true rate
//! (never more, never negative), or an explicit reset, or a stale sample that
//! is ignored.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_core::counter::{CounterTracker, Step};

/// Increase of the counter per tick of the fake clock.
const RATE: u64 = 1_000;

/// A counter and its clock, read together so each sample pairs a value with
/// the instant it was true at.
struct Counter {
    tick: u64,
    value: u64,
    resets: Vec<u64>,
    rng: u64,
}

impl Counter {
    fn sample(&mut self) -> (u64, u64) {
        self.tick += 1;
        // xorshift: a reset about every 50 ticks, at no fixed period.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        if self.rng.is_multiple_of(50) {
            self.value = 0;
            self.resets.push(self.tick);
        } else {
            self.value += RATE;
        }
        (self.tick, self.value)
    }
}

#[test]
fn prototype_race_concurrent_collection_and_counter_reset() {
    let counter = Arc::new(Mutex::new(Counter {
        tick: 0,
        value: u64::from(u32::MAX) - 10 * RATE,
        resets: Vec::new(),
        rng: 0x9E37_79B9_7F4A_7C15,
    }));
    let (tx, rx) = mpsc::channel::<(u64, u64)>();
    let collectors: Vec<_> = (0..4)
        .map(|_| {
            let counter = Arc::clone(&counter);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    let sample = counter.lock().expect("counter lock").sample();
                    // Sending outside the lock lets samples overtake each other.
                    if tx.send(sample).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(tx);

    // The single owner of the previous values.
    let mut tracker = CounterTracker::new();
    let mut last_accepted: Option<u64> = None;
    let (mut rates, mut resets, mut stale) = (0, 0, 0);
    let mut checked = Vec::new();
    for (tick, value) in rx {
        let step = tracker.observe(&"eth0", value, Duration::from_secs(tick));
        match step {
            Step::Rate(r) => {
                assert!(r >= 0.0, "negative rate {r} at tick {tick}");
                assert!(r <= RATE as f64, "inflated rate {r} at tick {tick}");
                rates += 1;
                checked.push((last_accepted, tick, r));
            }
            Step::Reset => resets += 1,
            Step::Stale => stale += 1,
            Step::First => {}
        }
        if step != Step::Stale {
            last_accepted = Some(tick);
        }
    }
    for c in collectors {
        c.join().expect("collector thread");
    }

    // Between two accepted samples with no reset in between, the rate is
    // exactly the true rate.
    let reset_ticks = counter.lock().expect("counter lock").resets.clone();
    let mut exact = 0;
    for (prev, tick, r) in checked {
        let Some(prev) = prev else { continue };
        if !reset_ticks.iter().any(|&t| t > prev && t <= tick) {
            assert_eq!(r, RATE as f64, "rate between ticks {prev} and {tick}");
            exact += 1;
        }
    }
    assert!(rates > 1000 && exact > 1000, "rates {rates}, exact {exact}");
    assert!(resets > 10, "resets seen: {resets}");
    // The interleaving really happened (samples arrived out of order).
    eprintln!("rates {rates} (exact {exact}), resets {resets}, stale {stale}");
}
