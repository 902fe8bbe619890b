//! `nexxo-cache`: look inside a cache and maintain it from the shell.
//!
//! Exit codes: 0 success; 1 `get` found nothing, or `verify` found damaged entries;
//! 2 bad usage (clap's errors, and ours); 3 the cache failed (open, read or write), with
//! the path and the cause.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::{json, Value};

use nexxo_core::{human_size, Cache, Config, Error, Stats};

const AFTER_HELP: &str = "\
The cache directory: --dir DIR, or DIR as the first argument (as in 1.x), else
$NEXXO_CACHE_DIR, else the nearest .nexxo_cache from the current directory up.
A cache in use by another process (a build) is read and written through it.
Sizes: bytes or 500M, 2G, 1.5GiB (binary units); durations: seconds or 30m, 12h, 7d, 2w.

Exit codes: 0 ok; 1 get found nothing, or verify found damage; 2 bad usage; 3 the
cache failed (the message names the path and the cause).";

#[derive(Parser)]
#[command(name = "nexxo-cache", version, about = "Inspect and maintain a nexxo-cache directory", after_help = AFTER_HELP, arg_required_else_help = true)]
struct Cli {
    /// The cache directory [default: $NEXXO_CACHE_DIR, else the nearest .nexxo_cache up from here]
    #[arg(short = 'd', long = "dir", global = true, value_name = "DIR")]
    dir_flag: Option<PathBuf>,
    /// Print JSON instead of text (one object; one per line with stats --watch)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Totals and per-category statistics, and the limits that apply
    #[command(override_usage = "nexxo-cache stats [DIR] [--json | --format text|json|openmetrics] [--reset-history] [--watch [--interval DURATION] [--count N]]")]
    Stats {
        #[arg(value_name = "DIR")]
        dir: Option<String>,
        /// Output: text, json (as --json), or openmetrics (Prometheus text format:
        /// counters, gauges and the latency histograms closed handles kept)
        #[arg(long, value_name = "FORMAT", value_parser = ["text", "json", "openmetrics"])]
        format: Option<String>,
        /// Forget the kept history (counts and latency of closed handles) after printing
        #[arg(long)]
        reset_history: bool,
        /// Refresh until interrupted: entries, sizes and evictions, with rates
        #[arg(long)]
        watch: bool,
        /// Time between refreshes with --watch
        #[arg(long, value_name = "DURATION", default_value = "1", value_parser = duration_arg)]
        interval: u64,
        /// Stop --watch after N refreshes (0: until interrupted)
        #[arg(long, value_name = "N", default_value_t = 0)]
        count: u64,
    },
    /// Write one value to stdout (or FILE); exit 1 when there is none
    #[command(override_usage = "nexxo-cache get [DIR] <CATEGORY> <KEY> [-o FILE]")]
    Get {
        #[arg(hide = true, value_name = "ARGS", num_args = 2..=3, required = true)]
        args: Vec<String>,
        /// Write the value to FILE instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Store one value: VALUE, the contents of FILE, or standard input (-)
    #[command(override_usage = "nexxo-cache set [DIR] <CATEGORY> <KEY> [VALUE | -f FILE | -]")]
    Set {
        #[arg(hide = true, value_name = "ARGS", num_args = 2..=4, required = true)]
        args: Vec<String>,
        /// Read the value from FILE
        #[arg(short, long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Tag the entry (repeat for several): `invalidate TAG` removes it
        #[arg(short, long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
    /// Remove every entry that carries TAG, in every category, in one atomic write
    #[command(override_usage = "nexxo-cache invalidate [DIR] <TAG>")]
    Invalidate {
        #[arg(hide = true, value_name = "ARGS", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Remove one entry (removing an absent entry is not an error)
    #[command(override_usage = "nexxo-cache delete [DIR] <CATEGORY> <KEY>")]
    Delete {
        #[arg(hide = true, value_name = "ARGS", num_args = 2..=3, required = true)]
        args: Vec<String>,
    },
    /// Remove every entry of the categories (all if none) in one atomic write
    #[command(override_usage = "nexxo-cache clear [DIR] [CATEGORY]...")]
    Clear {
        #[arg(hide = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Return the disk space of deleted and overwritten entries (one category, or all)
    #[command(override_usage = "nexxo-cache compact [DIR] [CATEGORY]")]
    Compact {
        #[arg(hide = true, value_name = "ARGS", num_args = 0..=2)]
        args: Vec<String>,
    },
    /// Evict now, by the limits given here (stored in the cache) or the cache's own
    #[command(
        override_usage = "nexxo-cache enforce [DIR] [--max-size SIZE] [--max-age DURATION] [--limit CATEGORY=SIZE]...",
        long_about = "Evicts now: entries unused for longer than the max age, then least recently\nused entries until every limit is at or under 90% of itself; compacts when\nworthwhile. Limits given here are stored in the cache (see config); without\nthem the cache's stored limits apply, or the defaults (2 GiB, no age bound)."
    )]
    Enforce {
        #[arg(value_name = "DIR")]
        dir: Option<String>,
        /// Bound on the whole cache's stored bytes (0: none)
        #[arg(long, value_name = "SIZE", value_parser = size_arg)]
        max_size: Option<u64>,
        /// Evict entries unused for longer than this (0: never)
        #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
        max_age: Option<u64>,
        /// A bound on one category's stored bytes (repeatable)
        #[arg(long = "limit", value_name = "CATEGORY=SIZE", value_parser = limit_arg)]
        limits: Vec<(String, u64)>,
    },
    /// Read every entry and check its checksum; exit 1 on damage
    #[command(
        override_usage = "nexxo-cache verify [DIR] [--drop]",
        long_about = "Reads every entry and checks its checksum. Reports damaged entries and damaged\ntables and exits 1 when there are any; --drop removes damaged entries and salvages\na store with damaged tables (every intact entry is kept)."
    )]
    Verify {
        #[arg(value_name = "DIR")]
        dir: Option<String>,
        /// Remove damaged entries and salvage damaged tables
        #[arg(long)]
        drop: bool,
    },
    /// Show the limits the cache keeps in its directory, or set one
    #[command(
        override_usage = "nexxo-cache config [DIR] [KEY VALUE]",
        long_about = "Shows the limits the cache keeps in its directory (NEXXO_LIMITS), which every\nopen that does not set its own uses, or sets one: max_size SIZE, max_age\nDURATION, category.NAME SIZE (0: no bound). A process that has the cache open\nkeeps the limits it opened with until it reopens it."
    )]
    Config {
        #[arg(hide = true, value_name = "ARGS", num_args = 0..=3)]
        args: Vec<String>,
    },
    /// The seed workload, quick: N artifacts of ~1 KiB written one by one, read back, checked
    #[command(override_usage = "nexxo-cache bench [DIR] [--entries N]")]
    Bench {
        /// A cache directory to use (default: a temporary one, removed afterwards)
        #[arg(value_name = "DIR")]
        dir: Option<String>,
        #[arg(short = 'n', long, value_name = "N", default_value_t = 1000)]
        entries: usize,
    },
    /// Print a shell completion script (bash: `source <(nexxo-cache completions bash)`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn size_arg(s: &str) -> Result<u64, String> {
    nexxo_core::environment::parse_size(s)
}

fn duration_arg(s: &str) -> Result<u64, String> {
    nexxo_core::environment::parse_duration(s)
}

fn limit_arg(s: &str) -> Result<(String, u64), String> {
    let (cat, bytes) = s.split_once('=').ok_or("takes CATEGORY=SIZE")?;
    nexxo_core::limits::validate_category_name(cat.as_bytes()).map_err(|e| e.to_string())?;
    Ok((cat.to_owned(), size_arg(bytes)?))
}

/// A failure and how to report it.
enum Fail {
    Usage(String),
    Cache(String),
    Found(String), // exit 1: a miss, or damage found
}

type Res<T = ()> = Result<T, Fail>;

fn cache_err(path: &str, e: Error) -> Fail {
    Fail::Cache(format!("{path}: {e}"))
}

/// What every command needs: where the cache is and how to print.
struct Ctx {
    dir_flag: Option<String>,
    json: bool,
}

impl Ctx {
    /// The directory: `--dir`, or the one given in position, else `NEXXO_CACHE_DIR`,
    /// else the nearest `.nexxo_cache` from the current directory up.
    fn dir(&self, positional: Option<String>) -> Res<String> {
        match (&self.dir_flag, positional) {
            (Some(_), Some(p)) => Err(Fail::Usage(format!("the directory is given twice: --dir and {p:?}"))),
            (Some(d), None) => Ok(d.clone()),
            (None, Some(d)) => Ok(d),
            (None, None) => default_dir(),
        }
    }

    /// Splits off a leading directory argument when there are `with_dir` arguments.
    fn split(&self, mut args: Vec<String>, with_dir: usize) -> Res<(String, Vec<String>)> {
        let positional = (args.len() == with_dir).then(|| args.remove(0));
        // `get DIR CATEGORY` (the key forgotten) reads as `get CATEGORY KEY` without a
        // directory: a first argument that cannot be a category but is a directory says
        // what is more likely wrong.
        if let (None, Some(a)) = (&positional, args.first()) {
            if Path::new(a).is_dir() && nexxo_core::limits::validate_category_name(a.as_bytes()).is_err() {
                return Err(Fail::Usage(format!("{a:?} is a directory: arguments are missing after it")));
            }
        }
        Ok((self.dir(positional)?, args))
    }

    fn print(&self, v: Value) {
        println!("{v}");
    }
}

fn default_dir() -> Res<String> {
    if let Some(d) = std::env::var_os("NEXXO_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(d.to_string_lossy().into_owned());
    }
    let cwd = std::env::current_dir().map_err(|e| Fail::Usage(format!("no cache directory given, and the current directory is unknown: {e}")))?;
    match cwd.ancestors().map(|a| a.join(".nexxo_cache")).find(|p| p.is_dir()) {
        Some(p) => Ok(p.to_string_lossy().into_owned()),
        None => Err(Fail::Usage(format!(
            "no cache directory: give DIR or --dir DIR, set NEXXO_CACHE_DIR, or run inside a project that has a .nexxo_cache (none in {} or above)",
            cwd.display()
        ))),
    }
}

/// Whether the first argument of `clear`/`compact` is the directory: anything that is not
/// a category name, or an existing directory.
fn is_dir_arg(a: &str) -> bool {
    nexxo_core::limits::validate_category_name(a.as_bytes()).is_err() || Path::new(a).is_dir()
}

/// Opens `dir`. A cache in use by another process is reached through that process
/// (see the README's "Many workers, one cache").
fn open(dir: &str, config: &Config) -> Res<Cache> {
    if !PathBuf::from(dir).exists() {
        return Err(Fail::Cache(format!("{dir}: no such cache directory")));
    }
    let c = Cache::open(dir, config).map_err(|e| cache_err(dir, e))?;
    if let Some(why) = c.disabled_reason() {
        // NEXXO_CACHE_DISABLE: a disabled cache would show as empty and drop writes.
        return Err(Fail::Cache(format!("{dir}: {why} (unset NEXXO_CACHE_DISABLE to use the command on it)")));
    }
    Ok(c)
}

fn stats_line(name: &str, s: &Stats) -> String {
    format!(
        "{name:<12} {:>9} {:>12} {:>12} {:>12} {:>9} {:>8}",
        s.entries,
        human_size(s.logical_bytes),
        human_size(s.stored_bytes),
        human_size(s.disk_bytes),
        s.evictions,
        s.corrupt_dropped
    )
}

fn size_text(v: u64) -> String {
    if v == 0 {
        "unbounded".to_owned()
    } else {
        format!("{v} ({})", human_size(v))
    }
}

fn age_text(v: u64) -> String {
    if v == 0 {
        "none".to_owned()
    } else {
        format!("{v} s")
    }
}

fn cmd_stats(ctx: &Ctx, dir: Option<String>, format: Option<&str>, reset_history: bool, watch: bool, interval: u64, count: u64) -> Res {
    let dir = ctx.dir(dir)?;
    if watch {
        if format.is_some_and(|f| f != "text") || reset_history {
            return Err(Fail::Usage("stats --watch takes neither --format nor --reset-history".into()));
        }
        return stats_watch(ctx, &dir, interval.max(1), count);
    }
    let c = open(&dir, &Config::default())?;
    match (format, ctx.json) {
        (Some("openmetrics"), false) => print!("{}", openmetrics(&c, &dir)?),
        (Some("json"), _) | (None, true) => {
            // The command opens without the disabled fallback: no reason to name.
            println!("{}", c.stats_json(""));
        }
        (Some(f), true) => return Err(Fail::Usage(format!("--json and --format {f} disagree"))),
        _ => stats_text(&c, &dir)?, // text (clap allows no other value)
    }
    if reset_history {
        nexxo_core::history::History::reset(Path::new(&dir)).map_err(|e| Fail::Cache(format!("{dir}: resetting the history: {e}")))?;
    }
    Ok(())
}

fn stats_text(c: &Cache, dir: &str) -> Res {
    let total = c.stats();
    println!("cache {dir}{}", if total.read_only { " (read-only)" } else { "" });
    println!("{:<12} {:>9} {:>12} {:>12} {:>12} {:>9} {:>8}", "category", "entries", "logical", "stored", "on disk", "evicted", "damaged");
    for name in c.categories() {
        let s = c.category_stats(name.as_bytes()).map_err(|e| cache_err(dir, e))?;
        println!("{}", stats_line(&name, &s));
    }
    println!("{}", stats_line("total", &total));
    if total.logical_bytes > 0 {
        println!("compression: stored is {:.1}% of logical", 100.0 * total.stored_bytes as f64 / total.logical_bytes as f64);
    }
    if let Some(l) = c.limits() {
        let [size_source, age_source, category_source] = l.limit_sources();
        println!("limits: max_size {} ({size_source}), max_age {} ({age_source})", size_text(l.max_size), age_text(l.max_age_secs));
        for (name, bytes) in &l.category_max_size {
            println!("  category.{name} {} ({category_source})", size_text(*bytes));
        }
    }
    if total.recovered {
        println!("note: damaged store files were repaired or set aside when this cache was opened");
    }
    match c.history() {
        Some(Ok(h)) if h.handles > 0 => {
            let ago = nexxo_core::clock::system_clock()().saturating_sub(h.since);
            let sum = |f: fn(&nexxo_core::history::Counts) -> u64| h.counts.values().map(f).sum::<u64>();
            println!(
                "history: {} closed handles since {} ({ago} s ago): {} hits, {} misses, {} writes, {} deletes",
                h.handles,
                h.since,
                sum(|c| c.hits),
                sum(|c| c.misses),
                sum(|c| c.writes),
                sum(|c| c.deletes)
            );
            println!("{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}", "latency (us)", "count", "p50", "p90", "p99", "p99.9", "max");
            for op in nexxo_core::latency::Op::ALL {
                let (all, mine) = nexxo_core::history::op_latency(&h.latency, op);
                if mine.is_empty() {
                    continue;
                }
                println!("{}", latency_line(op.name(), &all));
                for (cat, s) in mine.iter().filter(|(c, _)| c.as_str() != "*") {
                    println!("{}", latency_line(&format!("  {cat}"), s));
                }
            }
            println!("(gets are timed one in {}; reset with --reset-history)", nexxo_core::latency::GET_SAMPLE);
        }
        Some(Err(why)) => println!("history: {why}"),
        _ => {}
    }
    Ok(())
}

fn latency_line(name: &str, s: &nexxo_core::latency::Snapshot) -> String {
    let us = |ns: u64| format!("{:.1}", ns as f64 / 1000.0);
    format!(
        "{name:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        s.count(),
        us(s.quantile_ns(0.5)),
        us(s.quantile_ns(0.9)),
        us(s.quantile_ns(0.99)),
        us(s.quantile_ns(0.999)),
        us(s.max_ns)
    )
}

/// The OpenMetrics text format: the kept history's counters and latency histograms
/// (cumulative over closed handles) and the store's gauges (entries, bytes) and its
/// eviction counter.
fn openmetrics(c: &Cache, dir: &str) -> Result<String, Fail> {
    use std::fmt::Write;
    let h = match c.history() {
        Some(Ok(h)) => h,
        Some(Err(why)) => return Err(Fail::Cache(format!("{dir}: {why}"))),
        None => Default::default(),
    };
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut o = String::new();
    let counters: [(&str, &str, fn(&nexxo_core::history::Counts) -> u64); 4] = [
        ("hits", "gets answered from the cache", |c| c.hits),
        ("misses", "gets the cache could not answer", |c| c.misses),
        ("writes", "entries written", |c| c.writes),
        ("deletes", "entries deleted", |c| c.deletes),
    ];
    for (name, help, f) in counters {
        let _ = writeln!(o, "# TYPE nexxo_cache_{name} counter\n# HELP nexxo_cache_{name} {help}, by closed handles since the history began");
        for (cat, n) in &h.counts {
            let _ = writeln!(o, "nexxo_cache_{name}_total{{category=\"{}\"}} {}", esc(cat), f(n));
        }
    }
    let total = c.stats();
    let _ = writeln!(o, "# TYPE nexxo_cache_evictions counter\n# HELP nexxo_cache_evictions entries evicted by the size and age limits\nnexxo_cache_evictions_total {}", total.evictions);
    let gauges: [(&str, &str, fn(&Stats) -> u64); 3] = [
        ("entries", "entries in the cache", |s| s.entries),
        ("stored_bytes", "bytes of keys and values as stored", |s| s.stored_bytes),
        ("logical_bytes", "bytes of keys and values as written", |s| s.logical_bytes),
    ];
    for (name, help, f) in gauges {
        let _ = writeln!(o, "# TYPE nexxo_cache_{name} gauge\n# HELP nexxo_cache_{name} {help}");
        for name_cat in c.categories() {
            if let Ok(s) = c.category_stats(name_cat.as_bytes()) {
                let _ = writeln!(o, "nexxo_cache_{name}{{category=\"{}\"}} {}", esc(&name_cat), f(&s));
            }
        }
    }
    let _ = writeln!(o, "# TYPE nexxo_cache_disk_bytes gauge\n# HELP nexxo_cache_disk_bytes bytes of the cache's files\nnexxo_cache_disk_bytes {}", total.disk_bytes);
    const BOUNDS_S: [f64; 22] = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    let _ = writeln!(
        o,
        "# TYPE nexxo_cache_latency_seconds histogram\n# HELP nexxo_cache_latency_seconds time per call, by operation and category (* for batches and remote calls; gets timed one in {}), by closed handles since the history began",
        nexxo_core::latency::GET_SAMPLE
    );
    for ((op, cat), s) in h.latency.iter().filter(|(_, s)| s.count() > 0) {
        let labels = format!("op=\"{}\",category=\"{}\"", esc(op), esc(cat));
        for b in BOUNDS_S {
            let _ = writeln!(o, "nexxo_cache_latency_seconds_bucket{{{labels},le=\"{b}\"}} {}", s.count_at_most((b * 1e9) as u64));
        }
        let _ = writeln!(o, "nexxo_cache_latency_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count());
        let _ = writeln!(o, "nexxo_cache_latency_seconds_count{{{labels}}} {}", s.count());
        let _ = writeln!(o, "nexxo_cache_latency_seconds_sum{{{labels}}} {}", s.sum_ns as f64 / 1e9);
    }
    o.push_str("# EOF\n");
    Ok(o)
}

/// `stats --watch`: the cache as its files show it, reopened read-only at each refresh
/// (so the watcher never becomes the process that serves the cache to a build).
fn stats_watch(ctx: &Ctx, dir: &str, interval: u64, count: u64) -> Res {
    let ro = Config { read_only: true, ..Config::default() };
    let live = std::io::stdout().is_terminal() && !ctx.json;
    let mut prev: Option<(Instant, Stats)> = None;
    let mut n = 0u64;
    loop {
        let s = open(dir, &ro)?.stats();
        let now = Instant::now();
        let (de, db, dv) = match &prev {
            Some((t, p)) => {
                let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
                (
                    (s.entries as f64 - p.entries as f64) / secs,
                    (s.stored_bytes as f64 - p.stored_bytes as f64) / secs,
                    (s.evictions.saturating_sub(p.evictions)) as f64 / secs,
                )
            }
            None => (0.0, 0.0, 0.0),
        };
        if ctx.json {
            ctx.print(json!({
                "entries": s.entries, "logical_bytes": s.logical_bytes, "stored_bytes": s.stored_bytes,
                "disk_bytes": s.disk_bytes, "evictions": s.evictions,
                "entries_per_sec": de, "stored_bytes_per_sec": db, "evictions_per_sec": dv,
            }));
        } else {
            let sign = |v: f64| if v < 0.0 { "-" } else { "+" };
            let line = format!(
                "entries {:>9} ({}{:.0}/s)  stored {:>10} ({}{}/s)  on disk {:>10}  evictions {} ({:.0}/s)",
                s.entries,
                sign(de),
                de.abs(),
                human_size(s.stored_bytes),
                sign(db),
                human_size(db.abs() as u64),
                human_size(s.disk_bytes),
                s.evictions,
                dv
            );
            if live {
                print!("\r\x1b[2K{line}");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
        }
        prev = Some((now, s));
        n += 1;
        if count > 0 && n >= count {
            if live {
                println!();
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(interval));
    }
}

fn cmd_get(ctx: &Ctx, args: Vec<String>, output: Option<PathBuf>) -> Res {
    let (dir, args) = ctx.split(args, 3)?;
    let (cat, key) = (&args[0], &args[1]);
    let c = open(&dir, &Config::default())?;
    let found = c.get(cat.as_bytes(), key.as_bytes()).map_err(|e| cache_err(&dir, e))?;
    if ctx.json {
        let mut j = json!({ "category": cat, "key": key, "found": found.is_some() });
        if let Some(v) = &found {
            j["bytes"] = json!(v.len());
            if output.is_none() {
                match std::str::from_utf8(v) {
                    Ok(s) => j["value"] = json!(s),
                    Err(_) => j["value_base64"] = json!(nexxo_core::json::base64(v)),
                }
            }
        }
        ctx.print(j);
    }
    match found {
        None => Err(Fail::Found(format!("{dir}: no value for {cat}/{key}"))),
        Some(v) => {
            match output {
                Some(f) => std::fs::write(&f, &v).map_err(|e| Fail::Cache(format!("{}: {e}", f.display())))?,
                None if ctx.json => {}
                None => std::io::stdout().write_all(&v).map_err(|e| Fail::Cache(format!("stdout: {e}")))?,
            }
            Ok(())
        }
    }
}

fn cmd_set(ctx: &Ctx, args: Vec<String>, file: Option<PathBuf>, tags: Vec<String>) -> Res {
    let (dir, mut args) = ctx.split(args, if file.is_some() { 3 } else { 4 })?;
    let value = match (file, args.len()) {
        (Some(f), 2) => std::fs::read(&f).map_err(|e| Fail::Cache(format!("{}: {e}", f.display())))?,
        (Some(_), _) => return Err(Fail::Usage("give VALUE or -f FILE, not both".into())),
        (None, 3) => match args.pop().unwrap() {
            v if v == "-" => {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf).map_err(|e| Fail::Cache(format!("stdin: {e}")))?;
                buf
            }
            v => v.into_bytes(),
        },
        (None, _) => return Err(Fail::Usage("missing VALUE, -f FILE or -".into())),
    };
    let (cat, key) = (&args[0], &args[1]);
    let t: Vec<&[u8]> = tags.iter().map(|t| t.as_bytes()).collect();
    nexxo_core::store::check_tags(&t).map_err(|e| Fail::Usage(format!("--tag: {e}")))?;
    let c = open(&dir, &Config::default())?;
    if tags.is_empty() {
        c.set(cat.as_bytes(), key.as_bytes(), &value).map_err(|e| cache_err(&dir, e))?;
    } else {
        c.set_tagged(cat.as_bytes(), key.as_bytes(), &value, &t).map_err(|e| cache_err(&dir, e))?;
    }
    if ctx.json {
        ctx.print(json!({ "category": cat, "key": key, "bytes": value.len(), "tags": tags }));
    }
    Ok(())
}

fn cmd_invalidate(ctx: &Ctx, args: Vec<String>) -> Res {
    let (dir, args) = ctx.split(args, 2)?;
    let tag = &args[0];
    nexxo_core::store::check_tag(tag.as_bytes()).map_err(|e| Fail::Usage(format!("TAG: {e}")))?;
    let c = open(&dir, &Config::default())?;
    let (n, bytes) = c.invalidate(tag.as_bytes()).map_err(|e| cache_err(&dir, e))?;
    if ctx.json {
        ctx.print(json!({ "tag": tag, "entries": n, "bytes": bytes }));
    } else {
        println!("invalidated {n} entries ({}) tagged {tag:?}", human_size(bytes));
    }
    Ok(())
}

fn cmd_delete(ctx: &Ctx, args: Vec<String>) -> Res {
    let (dir, args) = ctx.split(args, 3)?;
    let (cat, key) = (&args[0], &args[1]);
    let c = open(&dir, &Config::default())?;
    c.delete(cat.as_bytes(), key.as_bytes()).map_err(|e| cache_err(&dir, e))?;
    if ctx.json {
        ctx.print(json!({ "category": cat, "key": key, "deleted": true }));
    }
    Ok(())
}

/// `clear`/`compact`: an optional directory, then categories.
fn dir_then_categories(ctx: &Ctx, mut args: Vec<String>) -> Res<(String, Vec<String>)> {
    let positional = (ctx.dir_flag.is_none() && args.first().is_some_and(|a| is_dir_arg(a))).then(|| args.remove(0));
    Ok((ctx.dir(positional)?, args))
}

fn cmd_clear(ctx: &Ctx, args: Vec<String>) -> Res {
    let (dir, cats) = dir_then_categories(ctx, args)?;
    let c = open(&dir, &Config::default())?;
    let before = c.stats().entries;
    let names: Vec<&[u8]> = cats.iter().map(|c| c.as_bytes()).collect();
    c.clear(&names).map_err(|e| cache_err(&dir, e))?;
    let cleared = before.saturating_sub(c.stats().entries);
    if ctx.json {
        ctx.print(json!({ "cleared": cleared, "categories": if cats.is_empty() { c.categories() } else { cats } }));
    } else {
        println!("cleared {cleared} entries from {}", if cats.is_empty() { "every category".into() } else { cats.join(", ") });
    }
    Ok(())
}

/// Progress on stderr, only for a terminal.
struct Progress {
    on: bool,
    label: &'static str,
    last: Instant,
}

impl Progress {
    fn new(label: &'static str) -> Progress {
        Progress { on: std::io::stderr().is_terminal(), label, last: Instant::now() }
    }

    fn show(&mut self, done: u64, total: u64) {
        if self.on && (self.last.elapsed().as_millis() >= 100 || done == total) {
            let pct = if total == 0 { 100 } else { done * 100 / total };
            let bar = "#".repeat((pct / 4) as usize);
            eprint!("\r{}: [{bar:<25}] {pct:>3}% ({done}/{total})", self.label);
            self.last = Instant::now();
        }
    }

    fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

fn cmd_compact(ctx: &Ctx, args: Vec<String>) -> Res {
    let (dir, mut cats) = dir_then_categories(ctx, args)?;
    if cats.len() > 1 {
        return Err(Fail::Usage(format!("compact takes one category or none, not {}", cats.join(" "))));
    }
    let cat = cats.pop();
    let c = open(&dir, &Config::default())?;
    let before = c.stats().disk_bytes;
    let names: Vec<String> = match &cat {
        Some(x) => vec![x.clone()],
        None => c.categories(),
    };
    let mut p = Progress::new("compact");
    for (i, name) in names.iter().enumerate() {
        p.show(i as u64, names.len() as u64);
        c.compact(Some(name.as_bytes())).map_err(|e| cache_err(&dir, e))?;
    }
    if cat.is_none() {
        c.compact(None).map_err(|e| cache_err(&dir, e))?; // and the internal column families
    }
    p.show(names.len() as u64, names.len() as u64);
    p.finish();
    let after = c.stats().disk_bytes;
    if ctx.json {
        ctx.print(json!({ "categories": names, "disk_bytes_before": before, "disk_bytes_after": after }));
    } else {
        println!("compacted {}: {} on disk before, {} after", cat.as_deref().unwrap_or("all categories"), human_size(before), human_size(after));
    }
    Ok(())
}

fn cmd_enforce(ctx: &Ctx, dir: Option<String>, max_size: Option<u64>, max_age: Option<u64>, limits: Vec<(String, u64)>) -> Res {
    let dir = ctx.dir(dir)?;
    let mut config = Config::default();
    if let Some(v) = max_size {
        config.set_max_size(v);
    }
    if let Some(v) = max_age {
        config.set_max_age(v);
    }
    let explicit = max_size.is_some() || max_age.is_some() || !limits.is_empty();
    // Categories the cache already has must be known before limits can name them.
    if !limits.is_empty() {
        let probe = open(&dir, &Config { read_only: true, ..Config::default() })?;
        for name in probe.categories() {
            let _ = config.add_category(name.as_bytes());
        }
    }
    for (cat, bytes) in &limits {
        config.set_category_max_size(cat.as_bytes(), *bytes).map_err(|e| Fail::Usage(e.to_string()))?;
    }
    let c = open(&dir, &config)?;
    if let (Some(pid), true) = (c.owner_pid(), explicit) {
        return Err(Fail::Cache(format!(
            "{dir}: in use by process {pid}, which evicts by the limits it opened the cache with; run enforce with limits once it has closed the cache (without limits, enforce applies that process's)"
        )));
    }
    let r = c.enforce_policy().map_err(|e| cache_err(&dir, e))?;
    if ctx.json {
        ctx.print(json!({
            "evicted_entries": r.evicted_entries, "evicted_bytes": r.evicted_bytes,
            "stored_bytes_before": r.stored_bytes_before, "stored_bytes_after": r.stored_bytes_after,
            "compacted": r.compacted,
        }));
    } else {
        println!(
            "evicted {} entries ({}); stored {} -> {}; compacted: {}",
            r.evicted_entries,
            human_size(r.evicted_bytes),
            human_size(r.stored_bytes_before),
            human_size(r.stored_bytes_after),
            if r.compacted { "yes" } else { "no" }
        );
    }
    Ok(())
}

fn verify_json(r: &nexxo_core::VerifyReport) -> Value {
    json!({
        "checked": r.checked, "value_bytes": r.value_bytes, "damaged": r.bad, "dropped": r.dropped,
        "dropped_index_records": r.dropped_index_records,
        "damaged_entries": r.bad_keys.iter().map(|(c, k)| json!({ "category": c, "key": String::from_utf8_lossy(k) })).collect::<Vec<_>>(),
        "damaged_tables": r.damaged_tables.iter().map(|(c, e)| json!({ "category": c, "error": e })).collect::<Vec<_>>(),
    })
}

fn cmd_verify(ctx: &Ctx, dir: Option<String>, drop_bad: bool) -> Res {
    let dir = ctx.dir(dir)?;
    let say = |text: String| {
        if !ctx.json {
            println!("{text}");
        }
    };
    let mut c = open(&dir, &Config::default())?;
    let salvaged_at_open = c.stats().recovered;
    if salvaged_at_open {
        // Damage found earlier (by a read, or an earlier verify) was salvaged at this open.
        say(format!("salvaged: the store was damaged and was salvaged when opened: {} entries kept (the store's LOG says more)", c.stats().entries));
    }
    let mut p = Progress::new("verify");
    let r = c.verify(drop_bad, &mut |d, t| p.show(d, t)).map_err(|e| cache_err(&dir, e))?;
    p.finish();
    let mut report = verify_json(&r);
    report["salvaged_at_open"] = json!(salvaged_at_open);
    say(format!(
        "checked {} entries ({} of values): {} damaged{}",
        r.checked,
        human_size(r.value_bytes),
        r.bad,
        if drop_bad { format!(", {} dropped ({} orphaned index records removed)", r.dropped, r.dropped_index_records) } else { String::new() }
    ));
    for (cat, key) in &r.bad_keys {
        say(format!("  damaged: {cat}/{}", String::from_utf8_lossy(key)));
    }
    for (cat, e) in &r.damaged_tables {
        say(format!("  damaged table: {cat}: {e}"));
    }
    let outcome = if !r.damaged_tables.is_empty() {
        if drop_bad {
            // Salvage runs when the store is next opened for writing: close and reopen. A
            // store another process serves is salvaged when that process next opens it.
            drop(c);
            c = open(&dir, &Config::default())?;
            let s = c.stats();
            if s.recovered {
                say(format!("salvaged: {} entries kept (the store's LOG names what was lost)", s.entries));
                let again = c.verify(true, &mut |_, _| {}).map_err(|e| cache_err(&dir, e))?;
                say(format!("checked {} entries again: {} damaged", again.checked, again.bad));
                report["salvaged"] = json!({ "entries_kept": s.entries, "verify": verify_json(&again) });
                if again.damaged_tables.is_empty() {
                    Ok(())
                } else {
                    Err(Fail::Found(format!("{dir}: tables still damaged after a salvage")))
                }
            } else {
                Err(Fail::Found(format!("{dir}: damaged tables: another process serves this cache; it salvages them at its next open")))
            }
        } else {
            Err(Fail::Found(format!("{dir}: damaged tables: the next writable open salvages every intact entry (or run verify --drop)")))
        }
    } else if r.bad > 0 && !drop_bad {
        Err(Fail::Found(format!("{dir}: {} damaged entries (run verify --drop to remove them)", r.bad)))
    } else {
        Ok(())
    };
    if ctx.json {
        ctx.print(report);
    }
    outcome
}

fn cmd_config(ctx: &Ctx, args: Vec<String>) -> Res {
    use nexxo_core::store::limits_file::{read_stored, write_stored, StoredLimits};
    let with_dir = if args.len() == 1 || args.len() == 3 { args.len() } else { usize::MAX };
    let (dir, args) = ctx.split(args, with_dir)?;
    let path = PathBuf::from(&dir);
    if !path.join("NEXXO_FORMAT").exists() {
        return Err(Fail::Cache(format!("{dir}: not a nexxo cache")));
    }
    let stored = read_stored(&path).map_err(|why| Fail::Cache(format!("{dir}: its stored limits cannot be read ({why})")))?;
    let defaults = StoredLimits::of(&Config::default());
    let mut limits = stored.clone().unwrap_or_default();
    if let [key, value] = &args[..] {
        let n = if key == "max_age" { duration_arg(value) } else { size_arg(value) }.map_err(|why| Fail::Usage(format!("{key} {value:?}: {why}")))?;
        match key.as_str() {
            "max_size" => limits.max_size = Some(n),
            "max_age" => limits.max_age_secs = Some(n),
            k => {
                let Some(name) = k.strip_prefix("category.").filter(|n| nexxo_core::limits::validate_category_name(n.as_bytes()).is_ok()) else {
                    return Err(Fail::Usage(format!("unknown limit {k:?}: max_size, max_age or category.NAME")));
                };
                let list = limits.category_max_size.get_or_insert_with(Vec::new);
                list.retain(|(c, _)| c != name);
                if n > 0 {
                    list.push((name.to_owned(), n));
                }
            }
        }
        write_stored(&path, &limits).map_err(|e| Fail::Cache(format!("{dir}: storing the limits: {e}")))?;
    }
    if ctx.json {
        let cats: serde_json::Map<String, Value> = limits.category_max_size.iter().flatten().map(|(n, b)| (n.clone(), json!(b))).collect();
        ctx.print(json!({
            "path": dir,
            "stored": stored.is_some() || !args.is_empty(),
            "max_size": limits.max_size, "max_age_secs": limits.max_age_secs, "category_max_size": cats,
            "defaults": { "max_size": defaults.max_size, "max_age_secs": defaults.max_age_secs },
        }));
        return Ok(());
    }
    let show = |v: Option<u64>, d: Option<u64>, unit: fn(u64) -> String| match v {
        Some(v) => unit(v),
        None => format!("{} (default)", unit(d.unwrap_or(0))),
    };
    println!("max_size  {}", show(limits.max_size, defaults.max_size, size_text));
    println!("max_age   {}", show(limits.max_age_secs, defaults.max_age_secs, age_text));
    for (name, bytes) in limits.category_max_size.iter().flatten() {
        println!("category.{name}  {}", size_text(*bytes));
    }
    if stored.is_none() && limits == StoredLimits::default() {
        println!("(the cache stores no limits: every open uses its own or the defaults)");
    }
    Ok(())
}

fn cmd_bench(ctx: &Ctx, dir: Option<String>, n: usize) -> Res {
    // Never the environment's or the project's cache: a given one, or a temporary one.
    let given = match (&ctx.dir_flag, dir) {
        (Some(_), Some(p)) => return Err(Fail::Usage(format!("the directory is given twice: --dir and {p:?}"))),
        (Some(d), None) => Some(d.clone()),
        (None, d) => d,
    };
    let temporary = given.is_none();
    let dir = given.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!("nexxo-bench-{}-{nanos}", std::process::id())).to_string_lossy().into_owned()
    });
    let result = bench(ctx, &dir, n);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn bench(ctx: &Ctx, dir: &str, n: usize) -> Res {
    let dir = dir.to_owned();
    let c = Cache::open(&dir, &Config::default()).map_err(|e| cache_err(&dir, e))?;
    let stages = ["parse", "transform", "bundle", "optimize", "meta"];
    let items: Vec<(&str, String, Vec<u8>)> = (0..n)
        .map(|i| {
            let mut v = String::new();
            while v.len() < 1024 {
                v.push_str(&format!("export function C{i}(p) {{ return h('ul', p.items.map((x) => h('li', x))); }}\n"));
            }
            v.truncate(1024);
            (stages[i % 5], format!("src/module{i}.tsx"), v.into_bytes())
        })
        .collect();
    let t = Instant::now();
    for (cat, k, v) in &items {
        c.set(cat.as_bytes(), k.as_bytes(), v).map_err(|e| cache_err(&dir, e))?;
    }
    let w = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (cat, k, v) in &items {
        if c.get(cat.as_bytes(), k.as_bytes()).map_err(|e| cache_err(&dir, e))?.as_deref() != Some(&v[..]) {
            return Err(Fail::Cache(format!("{dir}: {cat}/{k} did not read back")));
        }
    }
    let r = t.elapsed().as_secs_f64();
    let s = c.stats();
    if ctx.json {
        ctx.print(json!({
            "artifacts": n, "value_bytes": 1024, "sets_per_sec": n as f64 / w, "gets_per_sec": n as f64 / r,
            "entries": s.entries, "logical_bytes": s.logical_bytes, "stored_bytes": s.stored_bytes,
            "disk_bytes": s.disk_bytes, "hit_rate": s.hit_rate(),
        }));
        return Ok(());
    }
    println!("{n} artifacts of 1 KiB: {:.0} sets/s, {:.0} gets/s (every value checked)", n as f64 / w, n as f64 / r);
    println!("entries {}, logical {}, stored {}, on disk {}, hit rate {:.2}%", s.entries, human_size(s.logical_bytes), human_size(s.stored_bytes), human_size(s.disk_bytes), 100.0 * s.hit_rate());
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and --version exit 0; errors (unknown commands and flags, bad values,
        // missing arguments) exit 2 with clap's message, which names them.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let ctx = Ctx { dir_flag: cli.dir_flag.map(|d| d.to_string_lossy().into_owned()), json: cli.json };
    let name = match &cli.command {
        Cmd::Stats { .. } => "stats",
        Cmd::Get { .. } => "get",
        Cmd::Set { .. } => "set",
        Cmd::Invalidate { .. } => "invalidate",
        Cmd::Delete { .. } => "delete",
        Cmd::Clear { .. } => "clear",
        Cmd::Compact { .. } => "compact",
        Cmd::Enforce { .. } => "enforce",
        Cmd::Verify { .. } => "verify",
        Cmd::Config { .. } => "config",
        Cmd::Bench { .. } => "bench",
        Cmd::Completions { .. } => "completions",
    };
    let result = match cli.command {
        Cmd::Stats { dir, format, reset_history, watch, interval, count } => cmd_stats(&ctx, dir, format.as_deref(), reset_history, watch, interval, count),
        Cmd::Get { args, output } => cmd_get(&ctx, args, output),
        Cmd::Set { args, file, tags } => cmd_set(&ctx, args, file, tags),
        Cmd::Invalidate { args } => cmd_invalidate(&ctx, args),
        Cmd::Delete { args } => cmd_delete(&ctx, args),
        Cmd::Clear { args } => cmd_clear(&ctx, args),
        Cmd::Compact { args } => cmd_compact(&ctx, args),
        Cmd::Enforce { dir, max_size, max_age, limits } => cmd_enforce(&ctx, dir, max_size, max_age, limits),
        Cmd::Verify { dir, drop } => cmd_verify(&ctx, dir, drop),
        Cmd::Config { args } => cmd_config(&ctx, args),
        Cmd::Bench { dir, entries } => cmd_bench(&ctx, dir, entries),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "nexxo-cache", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Found(m)) => {
            eprintln!("nexxo-cache: {m}");
            ExitCode::from(1)
        }
        Err(Fail::Usage(m)) => {
            eprintln!("error: nexxo-cache {name}: {m}\n\nFor more information, try 'nexxo-cache {name} --help'.");
            ExitCode::from(2)
        }
        Err(Fail::Cache(m)) => {
            eprintln!("nexxo-cache: {m}");
            ExitCode::from(3)
        }
    }
}
