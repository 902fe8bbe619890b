//! Latency histograms: log-bucketed (HDR-style), a few hundred relaxed atomic counters
//! each, constant relative error.
//!
//! A value `v` in nanoseconds falls in one of 8 sub-buckets of its power of two: below
//! 8 ns each value has its own bucket; above, a bucket spans 1/8 of its octave, so any
//! value is within 1/16 (6.25%) of its bucket's midpoint, which is what percentiles
//! report. Values from 2^40 ns (about 18 minutes) on fall in the last bucket.
//!
//! Recording costs two clock reads (about 35 ns each here, `Instant::now`) and three
//! relaxed atomic adds: 82 ns a call (`cargo run --release -p nexxo-core --example
//! latency_cost`). A per-key get takes 0.5-1 µs from C, so gets are timed one call in
//! [`GET_SAMPLE`] per thread (see [`Sampler`]): about 6 ns a get on average; sets
//! (about 10 µs), batches and remote calls are timed every time.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// The largest octave with buckets of its own: 2^39 to 2^40 ns.
const TOP_OCTAVE: u32 = 39;
/// Buckets of one histogram.
pub const BUCKETS: usize = (TOP_OCTAVE as usize - SUB_BITS as usize + 2) * SUB;
/// One per-key get in this many is timed (per thread).
pub const GET_SAMPLE: u32 = 16;

/// The bucket of `ns`.
pub fn bucket(ns: u64) -> usize {
    let ns = ns.min((1u64 << (TOP_OCTAVE + 1)) - 1);
    if ns < SUB as u64 {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros(); // ns in [2^e, 2^(e+1))
    (e - SUB_BITS + 1) as usize * SUB + ((ns >> (e - SUB_BITS)) as usize & (SUB - 1))
}

/// The lowest value of bucket `i` and its width.
pub fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, 1);
    }
    let e = (i / SUB) as u32 + SUB_BITS - 1;
    let m = (i % SUB) as u64;
    let width = 1u64 << (e - SUB_BITS);
    ((SUB as u64 + m) * width, width)
}

/// The value a bucket stands for: its midpoint (exact below 8 ns).
pub fn bucket_value(i: usize) -> u64 {
    let (low, width) = bucket_range(i);
    low + width / 2
}

/// One histogram, shared by the threads that record into it.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), sum: AtomicU64::new(0), max: AtomicU64::new(0) }
    }
}

impl Histogram {
    pub fn record(&self, ns: u64) {
        self.counts[bucket(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ns, Ordering::Relaxed);
        if ns > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(ns, Ordering::Relaxed);
        }
    }

    pub fn record_since(&self, start: Instant) {
        self.record(start.elapsed().as_nanos().min(u64::MAX as u128) as u64);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            sum_ns: self.sum.load(Ordering::Relaxed),
            max_ns: self.max.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment (or several merged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub counts: Vec<u64>,
    pub sum_ns: u64,
    pub max_ns: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot { counts: vec![0; BUCKETS], sum_ns: 0, max_ns: 0 }
    }
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn merge(&mut self, other: &Snapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The value below which a fraction `q` (0..=1) of the recorded values fall: the
    /// midpoint of the bucket holding the value of rank ceil(q * count), never above the
    /// largest value recorded. 0 when nothing was recorded.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_value(i).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// How many recorded values are at most `ns`, counting each bucket by its midpoint
    /// (for exposition formats' cumulative buckets).
    pub fn count_at_most(&self, ns: u64) -> u64 {
        self.counts.iter().enumerate().filter(|(i, _)| bucket_value(*i) <= ns).map(|(_, c)| c).sum()
    }

    /// `{"count":N,"p50_us":..,"p90_us":..,"p99_us":..,"p999_us":..,"max_us":..,"mean_us":..}`.
    pub fn to_json(&self) -> String {
        let us = |ns: u64| ns as f64 / 1000.0;
        let n = self.count();
        format!(
            "{{\"count\":{n},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"mean_us\":{}}}",
            us(self.quantile_ns(0.5)),
            us(self.quantile_ns(0.9)),
            us(self.quantile_ns(0.99)),
            us(self.quantile_ns(0.999)),
            us(self.max_ns),
            if n == 0 { 0.0 } else { us(self.sum_ns / n) },
        )
    }

    /// The non-empty buckets as `index:count` words, then `sum` and `max` (the stored
    /// form; see [`Snapshot::parse`]).
    pub fn encode(&self) -> String {
        let mut out = format!("{} {}", self.sum_ns, self.max_ns);
        for (i, c) in self.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            out.push_str(&format!(" {i}:{c}"));
        }
        out
    }

    pub fn parse(s: &str) -> Option<Snapshot> {
        let mut words = s.split_ascii_whitespace();
        let mut snap = Snapshot { sum_ns: words.next()?.parse().ok()?, max_ns: words.next()?.parse().ok()?, ..Snapshot::default() };
        for w in words {
            let (i, c) = w.split_once(':')?;
            let i: usize = i.parse().ok()?;
            *snap.counts.get_mut(i)? += c.parse::<u64>().ok()?;
        }
        Some(snap)
    }
}

/// The operations that are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
    BatchGet,
    BatchSet,
    RemoteGet,
    Upload,
}

impl Op {
    pub const ALL: [Op; 6] = [Op::Get, Op::Set, Op::BatchGet, Op::BatchSet, Op::RemoteGet, Op::Upload];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::BatchGet => "batch_get",
            Op::BatchSet => "batch_set",
            Op::RemoteGet => "remote_get",
            Op::Upload => "upload",
        }
    }

    pub fn from_name(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
}

thread_local! {
    static GETS: Cell<u32> = const { Cell::new(0) };
}

/// Decides which per-key gets of this thread are timed: one in [`GET_SAMPLE`].
pub struct Sampler;

impl Sampler {
    /// A start time when this get is one to time.
    #[inline]
    pub fn get() -> Option<Instant> {
        GETS.with(|n| {
            let v = n.get().wrapping_add(1);
            n.set(v);
            (v % GET_SAMPLE == 0).then(Instant::now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_within_a_sixteenth() {
        let mut last = 0;
        for v in 0..100_000u64 {
            assert!(bucket(v) >= last, "the bucket of {v} is below the previous value's");
            last = bucket(v);
        }
        for v in (0..100_000u64).chain((1..2000).map(|i| i * 7_919_113)) {
            let b = bucket(v);
            let (low, width) = bucket_range(b);
            assert!(low <= v && v < low + width, "{v} outside bucket {b} [{low}, {})", low + width);
            let mid = bucket_value(b) as f64;
            assert!((mid - v as f64).abs() <= v as f64 / 16.0 + 0.5, "{v}: midpoint {mid}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket((1 << 40) - 1), BUCKETS - 1);
        assert_eq!(bucket(1 << 39), BUCKETS - SUB);
        for i in 1..BUCKETS {
            let (a, w) = bucket_range(i - 1);
            assert_eq!(a + w, bucket_range(i).0, "bucket {i} does not start where {} ends", i - 1);
        }
    }

    #[test]
    fn quantiles_match_a_sorted_list_within_the_bucket_error() {
        let h = Histogram::default();
        // A skewed distribution: mostly ~1 µs, a tail to 10 ms.
        let mut values: Vec<u64> = (0..10_000u64).map(|i| 800 + (i * 37) % 400).collect();
        values.extend((0..100u64).map(|i| 50_000 + i * 100_000));
        for &v in &values {
            h.record(v);
        }
        values.sort_unstable();
        let s = h.snapshot();
        assert_eq!(s.count(), values.len() as u64);
        assert_eq!(s.max_ns, *values.last().unwrap());
        assert_eq!(s.sum_ns, values.iter().sum::<u64>());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact = values[((q * values.len() as f64).ceil() as usize).max(1) - 1] as f64;
            let got = s.quantile_ns(q) as f64;
            assert!((got - exact).abs() <= exact / 16.0 + 1.0, "q{q}: {got} vs {exact}");
        }
        assert_eq!(Snapshot::default().quantile_ns(0.5), 0);
    }

    #[test]
    fn encode_parse_and_merge() {
        let h = Histogram::default();
        for v in [1, 5, 900, 1_000_000, 3_000_000_000] {
            h.record(v);
        }
        let s = h.snapshot();
        let back = Snapshot::parse(&s.encode()).unwrap();
        assert_eq!(back, s);
        let mut m = back.clone();
        m.merge(&s);
        assert_eq!(m.count(), 10);
        assert_eq!(m.max_ns, 3_000_000_000);
        assert_eq!(m.count_at_most(1000), 6);
        for bad in ["", "1", "1 2 x", "1 2 3", "1 2 99999:1", "1 2 3:x"] {
            assert!(Snapshot::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn one_get_in_sixteen_is_timed_per_thread() {
        let timed = (0..1600).filter(|_| Sampler::get().is_some()).count();
        assert_eq!(timed, 100);
    }
}
