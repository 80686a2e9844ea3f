//! Bounded in-memory history: one ring per series, bounded by point count and
//! by age, and a bound on the number of series.
//!
//! Every bound has an explicit policy, and every time a bound acts it is
//! counted so `/metrics` can show it:
//! - a full ring drops its **oldest** point (`evicted_full`);
//! - points older than the age bound are dropped on every push and sweep
//!   (`evicted_age`);
//! - a new series beyond the series bound is **refused** and its points are
//!   shed (`refused_series`), so an exploding label set cannot grow memory.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::observation::{Reading, SeriesKey};

/// One point of a series. `value` is `None` where a counter reset left no rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Wall-clock milliseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub at_ms: i64,
    /// The value, or `None` for a counter reset.
    #[serde(rename = "v")]
    pub value: Option<f64>,
}

/// Bounds for every ring in a [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingBounds {
    /// Most points one ring holds.
    pub max_points: usize,
    /// Oldest point kept, in milliseconds behind the newest.
    pub max_age_ms: i64,
}

/// A fixed-capacity ring of points ordered by time.
#[derive(Debug, Clone)]
pub struct Ring {
    points: VecDeque<Point>,
    bounds: RingBounds,
}

/// What a push dropped to keep the ring within its bounds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// Oldest points dropped because the ring was full.
    pub full: u64,
    /// Points dropped because they were older than the age bound.
    pub age: u64,
}

impl Ring {
    /// An empty ring. Memory is allocated as points arrive, never beyond
    /// `max_points`.
    pub fn new(bounds: RingBounds) -> Self {
        Self {
            points: VecDeque::new(),
            bounds,
        }
    }

    /// Appends a point, dropping what the bounds require.
    pub fn push(&mut self, point: Point) -> Evicted {
        let mut evicted = Evicted::default();
        if self.bounds.max_points == 0 {
            evicted.full = 1;
            return evicted;
        }
        if self.points.len() >= self.bounds.max_points {
            self.points.pop_front();
            evicted.full += 1;
        }
        self.points.push_back(point);
        evicted.age = self.expire(point.at_ms);
        evicted
    }

    /// Drops points older than the age bound relative to `now_ms`.
    pub fn expire(&mut self, now_ms: i64) -> u64 {
        let cutoff = now_ms.saturating_sub(self.bounds.max_age_ms);
        let mut dropped = 0;
        while self.points.front().is_some_and(|p| p.at_ms < cutoff) {
            self.points.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring holds no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The newest point.
    pub fn last(&self) -> Option<Point> {
        self.points.back().copied()
    }

    /// Points at or after `since_ms`, oldest first.
    pub fn since(&self, since_ms: i64) -> impl Iterator<Item = &Point> {
        // Points are pushed in arrival order, which is time order for one
        // source; a binary search would need that guarantee, a scan does not.
        self.points.iter().filter(move |p| p.at_ms >= since_ms)
    }

    /// Memory reserved by this ring's buffer, in points.
    pub fn capacity(&self) -> usize {
        self.points.capacity()
    }
}

/// Counters of what the history's bounds did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HistoryCounters {
    /// Points accepted.
    pub accepted: u64,
    /// Oldest points dropped because a ring was full.
    pub evicted_full: u64,
    /// Points dropped for age.
    pub evicted_age: u64,
    /// Points shed because their series would exceed the series bound.
    pub refused_series: u64,
    /// Series removed because they had no point left within the age bound.
    pub series_expired: u64,
}

/// The hasher of the agent's maps keyed by series: seeded per map like the
/// standard one, and much cheaper than it on short keys. The series bound keeps
/// what a crafted set of keys could cost small.
pub type Hasher = foldhash::fast::RandomState;

/// All rings, keyed by series, bounded in count.
#[derive(Debug)]
pub struct History {
    rings: HashMap<SeriesKey, Ring, Hasher>,
    /// Every key, sorted; rebuilt only after a series came or went.
    order: Vec<SeriesKey>,
    order_valid: bool,
    bounds: RingBounds,
    max_series: usize,
    counters: HistoryCounters,
}

impl History {
    /// An empty history with the given bounds.
    pub fn new(bounds: RingBounds, max_series: usize) -> Self {
        Self {
            rings: HashMap::default(),
            order: Vec::new(),
            order_valid: false,
            bounds,
            max_series,
            counters: HistoryCounters::default(),
        }
    }

    /// Records one reading. Returns `false` when the point was shed because
    /// the series bound is reached.
    pub fn record(&mut self, series: &SeriesKey, at_ms: i64, reading: Reading) -> bool {
        let point = Point {
            at_ms,
            value: match reading {
                Reading::Value(v) => Some(v),
                Reading::CounterReset => None,
            },
        };
        let ring = match self.rings.get_mut(series) {
            Some(ring) => ring,
            None => {
                if self.rings.len() >= self.max_series {
                    self.counters.refused_series += 1;
                    return false;
                }
                self.order_valid = false;
                self.rings
                    .entry(series.clone())
                    .or_insert_with(|| Ring::new(self.bounds))
            }
        };
        let evicted = ring.push(point);
        self.counters.accepted += 1;
        self.counters.evicted_full += evicted.full;
        self.counters.evicted_age += evicted.age;
        true
    }

    /// Applies the age bound to every ring at `now_ms` and forgets series left
    /// empty. Returns the keys of the series removed.
    pub fn sweep(&mut self, now_ms: i64) -> Vec<SeriesKey> {
        let mut removed = Vec::new();
        let mut aged = 0;
        self.rings.retain(|key, ring| {
            aged += ring.expire(now_ms);
            if ring.is_empty() {
                removed.push(key.clone());
                false
            } else {
                true
            }
        });
        self.counters.evicted_age += aged;
        self.counters.series_expired += removed.len() as u64;
        if !removed.is_empty() {
            self.order_valid = false;
        }
        removed
    }

    /// The ring of one series.
    pub fn get(&self, series: &SeriesKey) -> Option<&Ring> {
        self.rings.get(series)
    }

    /// Finds a series by its canonical name.
    pub fn find(&self, name: &str) -> Option<(&SeriesKey, &Ring)> {
        self.rings.iter().find(|(k, _)| k.matches(name))
    }

    /// Every series with its ring, sorted by series. The order is kept:
    /// sorting hundreds of keys each time was most of a publication.
    pub fn sorted(&mut self) -> impl Iterator<Item = (&SeriesKey, &Ring)> {
        if !self.order_valid {
            self.order.clear();
            self.order.extend(self.rings.keys().cloned());
            self.order.sort_unstable();
            self.order_valid = true;
        }
        let rings = &self.rings;
        self.order.iter().filter_map(|k| rings.get_key_value(k))
    }

    /// Every series with its ring, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&SeriesKey, &Ring)> {
        self.rings.iter()
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.rings.len()
    }

    /// Total points held over all rings.
    pub fn points(&self) -> usize {
        self.rings.values().map(Ring::len).sum()
    }

    /// The bounds in force.
    pub fn bounds(&self) -> (RingBounds, usize) {
        (self.bounds, self.max_series)
    }

    /// What the bounds did so far.
    pub fn counters(&self) -> HistoryCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::Family;
    use proptest::prelude::*;
    use std::sync::Arc;

    static F: Family = Family {
        name: "t",
        help: "",
        label: Some("i"),
    };

    fn p(at_ms: i64) -> Point {
        Point {
            at_ms,
            value: Some(at_ms as f64),
        }
    }

    #[test]
    fn full_ring_drops_oldest() {
        let mut r = Ring::new(RingBounds {
            max_points: 3,
            max_age_ms: i64::MAX,
        });
        for t in 0..5 {
            r.push(p(t));
        }
        let kept: Vec<i64> = r.since(0).map(|p| p.at_ms).collect();
        assert_eq!(kept, vec![2, 3, 4]);
    }

    #[test]
    fn old_points_expire_on_push_and_sweep() {
        let mut h = History::new(
            RingBounds {
                max_points: 100,
                max_age_ms: 10,
            },
            10,
        );
        let k = SeriesKey::instance(&F, "a");
        for t in 0..30 {
            h.record(&k, t, Reading::Value(1.0));
        }
        assert_eq!(h.get(&k).map(Ring::len), Some(11));
        let removed = h.sweep(100);
        assert_eq!(removed, vec![k.clone()]);
        assert_eq!(h.series_count(), 0);
        assert_eq!(h.counters().series_expired, 1);
    }

    #[test]
    fn sorted_follows_series_that_come_and_go() {
        let mut h = History::new(
            RingBounds {
                max_points: 4,
                max_age_ms: 10,
            },
            10,
        );
        let names = |h: &mut History| h.sorted().map(|(k, _)| k.to_string()).collect::<Vec<_>>();
        h.record(&SeriesKey::instance(&F, "b"), 0, Reading::Value(1.0));
        h.record(&SeriesKey::instance(&F, "a"), 0, Reading::Value(1.0));
        assert_eq!(names(&mut h), ["t/a", "t/b"]);
        // A new series, and an old one aged out: the kept order follows.
        h.record(&SeriesKey::instance(&F, "c"), 20, Reading::Value(1.0));
        h.record(&SeriesKey::instance(&F, "a"), 20, Reading::Value(1.0));
        assert_eq!(names(&mut h), ["t/a", "t/b", "t/c"]);
        h.sweep(25);
        assert_eq!(names(&mut h), ["t/a", "t/c"]);
        // Keys equal by content but not by pointer find the same ring.
        let a: Arc<str> = Arc::from("a");
        assert!(h.record(
            &SeriesKey::instance(&F, Arc::clone(&a)),
            21,
            Reading::Value(2.0)
        ));
        assert_eq!(h.series_count(), 2);
        assert_eq!(
            h.get(&SeriesKey::instance(&F, "a"))
                .and_then(Ring::last)
                .and_then(|p| p.value),
            Some(2.0)
        );
    }

    #[test]
    fn series_beyond_the_bound_are_refused_and_counted() {
        let mut h = History::new(
            RingBounds {
                max_points: 4,
                max_age_ms: 1000,
            },
            2,
        );
        assert!(h.record(&SeriesKey::instance(&F, "a"), 0, Reading::Value(1.0)));
        assert!(h.record(&SeriesKey::instance(&F, "b"), 0, Reading::Value(1.0)));
        assert!(!h.record(&SeriesKey::instance(&F, "c"), 0, Reading::Value(1.0)));
        assert_eq!(h.counters().refused_series, 1);
        assert_eq!(h.series_count(), 2);
    }

    #[test]
    fn counter_reset_is_kept_as_a_gap() {
        let mut h = History::new(
            RingBounds {
                max_points: 4,
                max_age_ms: 1000,
            },
            2,
        );
        let k = SeriesKey::instance(&F, "a");
        h.record(&k, 1, Reading::CounterReset);
        assert_eq!(h.get(&k).and_then(Ring::last).map(|p| p.value), Some(None));
    }

    proptest! {
        #[test]
        fn bounds_always_hold(
            max_points in 1usize..50,
            max_age_ms in 1i64..1000,
            max_series in 1usize..8,
            pushes in proptest::collection::vec((0u8..16, 0i64..50), 0..400),
        ) {
            let mut h = History::new(RingBounds { max_points, max_age_ms }, max_series);
            let mut now = 0i64;
            for (series, dt) in pushes {
                now += dt;
                h.record(&SeriesKey::instance(&F, series.to_string()), now, Reading::Value(1.0));
                prop_assert!(h.series_count() <= max_series);
                for (_, ring) in h.iter() {
                    prop_assert!(ring.len() <= max_points);
                    let oldest = ring.since(i64::MIN).next().map(|p| p.at_ms).unwrap_or(now);
                    let newest = ring.last().map(|p| p.at_ms).unwrap_or(now);
                    prop_assert!(newest - oldest <= max_age_ms);
                }
            }
        }
    }
}
