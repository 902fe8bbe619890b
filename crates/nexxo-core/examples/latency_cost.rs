//! What recording latency costs per call, measured directly (the whole-get A/B of the
//! benchmark suite is noisier than the cost): the sampled path of a per-key get (one in
//! `GET_SAMPLE` timed) and the always-timed path of a set, each against an empty loop.
//! Prints nanoseconds per call, median and range of 7 rounds of 10,000,000 calls.
//!
//!   cargo run --release -p nexxo-core --example latency_cost

use std::hint::black_box;
use std::time::Instant;

use nexxo_core::latency::{Histogram, Sampler};

const N: u64 = 10_000_000;

fn round(f: &dyn Fn()) -> f64 {
    let t = Instant::now();
    for _ in 0..N {
        f();
    }
    t.elapsed().as_nanos() as f64 / N as f64
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.1} ns ({:.1}-{:.1})", v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let h = Histogram::default();
    let empty = || {
        black_box(());
    };
    let sampled = || {
        if let Some(t) = Sampler::get() {
            h.record_since(t);
        }
    };
    let always = || h.record_since(Instant::now());
    let (mut e, mut s, mut a) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        e.push(round(&empty));
        s.push(round(&sampled));
        a.push(round(&always));
    }
    let base = {
        let mut v = e.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("empty loop:                          {}", stats(e));
    println!("get, timed one in {}:                {} (minus the loop: {:.1} ns)", nexxo_core::latency::GET_SAMPLE, stats(s.clone()), {
        s.sort_by(f64::total_cmp);
        s[s.len() / 2] - base
    });
    println!("set/batch, every call timed:         {} (minus the loop: {:.1} ns)", stats(a.clone()), {
        a.sort_by(f64::total_cmp);
        a[a.len() / 2] - base
    });
}
