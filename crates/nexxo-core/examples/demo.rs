//! The seed's workload, done for real: open a cache in a temporary directory, write 1000
//! build artifacts across the categories, read them back, enforce the policy, and print
//! the true statistics. Run with `scripts/demo.sh` (or `cargo run --release -p nexxo-core --example demo`).

use std::time::Instant;

use nexxo_core::{human_size, Cache, Config};


/// A build artifact like a bundler's: module `i` of the given stage.
fn artifact(stage: &str, i: usize) -> Vec<u8> {
    let body = match stage {
        "parse" => format!("{{\"type\":\"Program\",\"sourceType\":\"module\",\"body\":[{{\"type\":\"ImportDeclaration\",\"source\":\"./dep{}.js\"}},{{\"type\":\"ExportNamedDeclaration\",\"name\":\"f{i}\"}}]}}", i % 50),
        "transform" => format!("import {{ h }} from './runtime.js';\nexport function Component{i}(props) {{\n  const items = props.items.map((item, index) => h('li', {{ key: index }}, item.label));\n  return h('ul', {{ className: 'list-{i}' }}, items);\n}}\n"),
        "bundle" => format!("(function(modules){{var cache={{}};function require(id){{if(cache[id])return cache[id].exports;var m=cache[id]={{exports:{{}}}};modules[id](m,m.exports,require);return m.exports}}return require({i})}})({{{i}:function(module,exports,require){{module.exports=require('./chunk-{}')}}}});\n", i % 13),
        "optimize" => format!("export function C{i}(p){{return h(\"ul\",{{className:\"list-{i}\"}},p.items.map((t,e)=>h(\"li\",{{key:e}},t.label)))}}"),
        _ => format!("{{\"file\":\"src/module{i}.tsx\",\"mtime\":{},\"hash\":\"{:016x}\",\"deps\":[\"src/dep{}.ts\"]}}", 1_700_000_000 + i, i * 2_654_435_761, i % 50),
    };
    // Pad to ~1 KiB the way real modules repeat their shapes.
    let mut out = body.clone().into_bytes();
    while out.len() < 1024 {
        out.extend_from_slice(body.as_bytes());
    }
    out.truncate(1024);
    out
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("nexxo-demo-").tempdir()?;
    let path = dir.path().join(".nexxo_cache");
    let config = Config::default();
    let cache = Cache::open(&path, &config)?;
    let stages = ["parse", "transform", "bundle", "optimize", "meta"];
    let n = 1000;
    let items: Vec<(&str, String, Vec<u8>)> = (0..n)
        .map(|i| {
            let stage = stages[i % stages.len()];
            (stage, format!("src/module{i}.tsx"), artifact(stage, i))
        })
        .collect();

    let t = Instant::now();
    for (stage, key, value) in &items {
        cache.set(stage.as_bytes(), key.as_bytes(), value)?;
    }
    let write_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut verified = 0;
    for (stage, key, value) in &items {
        match cache.get(stage.as_bytes(), key.as_bytes())? {
            Some(v) if &v == value => verified += 1,
            other => return Err(format!("{stage}/{key}: read back {:?} bytes, not the value written", other.map(|v| v.len())).into()),
        }
    }
    let read_s = t.elapsed().as_secs_f64();
    let misses_expected = cache.get(b"transform", b"src/never-built.tsx")?.is_none();

    let report = cache.enforce_policy()?;
    let s = cache.stats();

    println!("nexxo-cache {} demo: {n} build artifacts of ~1 KiB in {}", env!("CARGO_PKG_VERSION"), path.display());
    println!("  wrote {n} entries one set at a time: {:.0} sets/s ({:.1} ms)", n as f64 / write_s, write_s * 1e3);
    println!("  read back {verified}/{n}, each checked byte for byte: {:.0} gets/s ({:.1} ms)", n as f64 / read_s, read_s * 1e3);
    println!("  a key never written: {}", if misses_expected { "miss, as it should be" } else { "HIT (wrong)" });
    println!("  enforce_policy: evicted {} entries, compacted: {}", report.evicted_entries, report.compacted);
    println!("stats:");
    println!("  entries:        {}", s.entries);
    println!("  hits / misses:  {} / {}", s.hits, s.misses);
    println!("  hitRate:        {:.2}%", s.hit_rate() * 100.0);
    println!("  logical size:   {} (keys + values as given)", human_size(s.logical_bytes));
    println!("  stored size:    {} (after LZ4 and framing, ratio {:.2})", human_size(s.stored_bytes), s.logical_bytes as f64 / s.stored_bytes.max(1) as f64);
    println!("  on disk:        {}", human_size(s.disk_bytes));
    println!("  max size:       {} (default)", human_size(config.max_size));
    for stage in stages {
        let c = cache.category_stats(stage.as_bytes())?;
        println!("    {stage:<10} {:>5} entries  {:>10} logical  {:>10} stored", c.entries, human_size(c.logical_bytes), human_size(c.stored_bytes));
    }
    if let Some(kib) = peak_rss_kib() {
        println!("  peak RSS of this process: {}", human_size(kib * 1024));
    }
    if verified != n || s.entries != n as u64 || s.logical_bytes == 0 {
        return Err("the stats do not match the workload".into());
    }
    Ok(())
}
