//! `nexxo-cache`: look inside a cache and maintain it from the shell.
//!
//! Exit codes: 0 success; 1 `get` found nothing, or `verify` found damaged entries;
//! 2 bad usage; 3 the cache failed (open, read or write), with the path and the cause.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use nexxo_core::{human_size, Cache, Config, Error, Stats};

const USAGE: &str = "\
nexxo-cache: inspect and maintain a nexxo-cache directory

usage: nexxo-cache <command> <cache-dir> [arguments]

commands:
  stats   <dir> [--json]                     totals and per-category statistics
  get     <dir> <category> <key> [-o FILE]   write one value to stdout (or FILE)
  set     <dir> <category> <key> [VALUE | -f FILE | -]   store one value (- reads stdin)
  delete  <dir> <category> <key>             remove one entry
  clear   <dir> [CATEGORY...]                remove every entry of the categories (all if none)
  compact <dir> [CATEGORY]                   return the space of deleted entries to the disk
  enforce <dir> [--max-size SIZE] [--max-age DURATION] [--limit CATEGORY=SIZE]...
                                             apply the eviction policy now
  verify  <dir> [--drop]                     read every entry and check its checksum
  config  <dir> [KEY VALUE]                  show the limits the cache keeps, or set one
  bench   [<dir>] [--entries N]              the seed workload: N artifacts written and read

`nexxo-cache <command> --help` explains one command. a cache in use by another process (a build) is read and written through that process.

exit codes: 0 ok; 1 get found nothing or verify found damage; 2 bad usage; 3 cache error
";

fn help(cmd: &str) -> &'static str {
    match cmd {
        "stats" => "usage: nexxo-cache stats <dir> [--json]\n\nPrints the entries, logical, stored and on-disk sizes, hits, evictions\nand damaged entries dropped, for the whole cache and each category.\n--json prints the library's JSON instead.\n",
        "get" => "usage: nexxo-cache get <dir> <category> <key> [-o FILE]\n\nWrites the value of <key> to stdout, or to FILE. Exit 1 when there is none.\n",
        "set" => "usage: nexxo-cache set <dir> <category> <key> [VALUE | -f FILE | -]\n\nStores VALUE, the contents of FILE, or standard input (-) under <key>.\n",
        "delete" => "usage: nexxo-cache delete <dir> <category> <key>\n\nRemoves one entry; removing an absent entry is not an error.\n",
        "clear" => "usage: nexxo-cache clear <dir> [CATEGORY...]\n\nRemoves every entry of the named categories, or of all categories, in one\natomic write, then compacts them.\n",
        "compact" => "usage: nexxo-cache compact <dir> [CATEGORY]\n\nCompacts one category or all, returning the disk space of deleted and\noverwritten entries.\n",
        "enforce" => "usage: nexxo-cache enforce <dir> [--max-size SIZE] [--max-age DURATION] [--limit CATEGORY=SIZE]...\n\nSIZE: bytes or 500M, 2G, 1.5GiB (binary); DURATION: seconds or 30m, 12h, 7d, 2w.\nEvicts now: entries unused for longer than the max age, then least recently\nused entries until every limit is at or under 90% of itself; compacts when\nworthwhile. Limits given here are stored in the cache (see config); without\nthem the cache's stored limits apply, or the defaults (2 GiB, no age bound).\n",
        "verify" => "usage: nexxo-cache verify <dir> [--drop]\n\nReads every entry and checks its checksum. Reports damaged entries and damaged\ntables and exits 1 when there are any; --drop removes damaged entries and salvages\na store with damaged tables (every intact entry is kept).\n",
        "config" => "usage: nexxo-cache config <dir> [KEY VALUE]\n\nShows the limits the cache keeps in its directory (NEXXO_LIMITS), which every\nopen that does not set its own uses, or sets one: max_size SIZE, max_age\nDURATION, category.NAME SIZE (0: no bound; sizes as 500M, 2G; durations as 12h, 7d). A process that has the cache open\nkeeps the limits it opened with until it reopens it.\n",
        "bench" => "usage: nexxo-cache bench [<dir>] [--entries N]\n\nThe seed workload, quick: N (default 1000) artifacts of ~1 KiB written one by\none, read back and checked, then stats. Uses a temporary directory unless\n<dir> is given.\n",
        _ => USAGE,
    }
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


/// Opens `dir`. A cache in use by another process is reached through that process
/// (see the README's "Many workers, one cache").
fn open(dir: &str, config: &Config) -> Res<Cache> {
    if !PathBuf::from(dir).exists() {
        return Err(Fail::Cache(format!("{dir}: no such cache directory")));
    }
    Cache::open(dir, config).map_err(|e| cache_err(dir, e))
}

struct Args {
    rest: Vec<String>,
    /// What followed `--`: positional arguments only, even those starting with `-`.
    after_dashes: Vec<String>,
}

impl Args {
    /// `--flag=value` is `--flag value`; everything after `--` is positional.
    fn new(argv: Vec<String>) -> Args {
        let mut rest = Vec::new();
        let mut it = argv.into_iter();
        for a in it.by_ref() {
            if a == "--" {
                break;
            }
            match a.split_once('=').filter(|_| a.starts_with("--")) {
                Some((flag, value)) => {
                    rest.push(flag.to_owned());
                    rest.push(value.to_owned());
                }
                None => rest.push(a),
            }
        }
        Args { rest, after_dashes: it.collect() }
    }

    fn positional(&mut self, what: &str) -> Res<String> {
        let i = self.rest.iter().position(|a| !a.starts_with('-') || a == "-");
        match i {
            Some(i) => Ok(self.rest.remove(i)),
            None if !self.after_dashes.is_empty() => Ok(self.after_dashes.remove(0)),
            None => Err(Fail::Usage(format!("missing {what}"))),
        }
    }

    fn flag(&mut self, names: &[&str]) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| !names.contains(&a.as_str()));
        self.rest.len() != before
    }

    fn value(&mut self, names: &[&str]) -> Res<Option<String>> {
        match self.rest.iter().position(|a| names.contains(&a.as_str())) {
            None => Ok(None),
            Some(i) if i + 1 < self.rest.len() => {
                let v = self.rest.remove(i + 1);
                self.rest.remove(i);
                Ok(Some(v))
            }
            Some(_) => Err(Fail::Usage(format!("{} needs a value", names[0]))),
        }
    }

    fn values(&mut self, name: &str) -> Res<Vec<String>> {
        let mut out = Vec::new();
        while let Some(v) = self.value(&[name])? {
            out.push(v);
        }
        Ok(out)
    }

    fn done(self) -> Res {
        match self.rest.first().or(self.after_dashes.first()) {
            None => Ok(()),
            Some(a) => Err(Fail::Usage(format!("unexpected argument {a:?}"))),
        }
    }
}

fn number(s: &str, what: &str) -> Res<u64> {
    s.parse().map_err(|_| Fail::Usage(format!("{what} must be a whole number, not {s:?}")))
}

/// Bytes, with the environment's suffixes (`500M`, `2G`, `1.5GiB`).
fn size(s: &str, what: &str) -> Res<u64> {
    nexxo_core::environment::parse_size(s).map_err(|why| Fail::Usage(format!("{what} {s:?}: {why}")))
}

/// Seconds, with the environment's suffixes (`30m`, `12h`, `7d`).
fn duration(s: &str, what: &str) -> Res<u64> {
    nexxo_core::environment::parse_duration(s).map_err(|why| Fail::Usage(format!("{what} {s:?}: {why}")))
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

fn cmd_stats(mut a: Args) -> Res {
    let dir = a.positional("<dir>")?;
    let json = a.flag(&["--json"]);
    a.done()?;
    let c = open(&dir, &Config::default())?;
    if json {
        // The command opens without the disabled fallback: no reason to name.
        println!("{}", c.stats_json(""));
        return Ok(());
    }
    let total = c.stats();
    println!("cache {dir}{}", if total.read_only { " (read-only)" } else { "" });
    println!("{:<12} {:>9} {:>12} {:>12} {:>12} {:>9} {:>8}", "category", "entries", "logical", "stored", "on disk", "evicted", "damaged");
    for name in c.categories() {
        let s = c.category_stats(name.as_bytes()).map_err(|e| cache_err(&dir, e))?;
        println!("{}", stats_line(&name, &s));
    }
    println!("{}", stats_line("total", &total));
    if total.logical_bytes > 0 {
        println!("compression: stored is {:.1}% of logical", 100.0 * total.stored_bytes as f64 / total.logical_bytes as f64);
    }
    if total.recovered {
        println!("note: damaged store files were repaired or set aside when this cache was opened");
    }
    Ok(())
}

fn cmd_get(mut a: Args) -> Res {
    let out = a.value(&["-o", "--output"])?;
    let dir = a.positional("<dir>")?;
    let cat = a.positional("<category>")?;
    let key = a.positional("<key>")?;
    a.done()?;
    let c = open(&dir, &Config::default())?;
    match c.get(cat.as_bytes(), key.as_bytes()).map_err(|e| cache_err(&dir, e))? {
        None => Err(Fail::Found(format!("{dir}: no value for {cat}/{key}"))),
        Some(v) => {
            match out {
                Some(f) => std::fs::write(&f, &v).map_err(|e| Fail::Cache(format!("{f}: {e}")))?,
                None => std::io::stdout().write_all(&v).map_err(|e| Fail::Cache(format!("stdout: {e}")))?,
            }
            Ok(())
        }
    }
}

fn cmd_set(mut a: Args) -> Res {
    let file = a.value(&["-f", "--file"])?;
    let dir = a.positional("<dir>")?;
    let cat = a.positional("<category>")?;
    let key = a.positional("<key>")?;
    let value = match (file, a.positional("VALUE").ok()) {
        (Some(f), None) => std::fs::read(&f).map_err(|e| Fail::Cache(format!("{f}: {e}")))?,
        (None, Some(v)) if v == "-" => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| Fail::Cache(format!("stdin: {e}")))?;
            buf
        }
        (None, Some(v)) => v.into_bytes(),
        (None, None) => return Err(Fail::Usage("missing VALUE, -f FILE or -".into())),
        (Some(_), Some(_)) => return Err(Fail::Usage("give VALUE or -f FILE, not both".into())),
    };
    a.done()?;
    let c = open(&dir, &Config::default())?;
    c.set(cat.as_bytes(), key.as_bytes(), &value).map_err(|e| cache_err(&dir, e))
}

fn cmd_delete(mut a: Args) -> Res {
    let dir = a.positional("<dir>")?;
    let cat = a.positional("<category>")?;
    let key = a.positional("<key>")?;
    a.done()?;
    let c = open(&dir, &Config::default())?;
    c.delete(cat.as_bytes(), key.as_bytes()).map_err(|e| cache_err(&dir, e))
}

fn cmd_clear(mut a: Args) -> Res {
    let dir = a.positional("<dir>")?;
    let mut cats = Vec::new();
    while let Ok(c) = a.positional("category") {
        cats.push(c);
    }
    a.done()?;
    let c = open(&dir, &Config::default())?;
    let before = c.stats().entries;
    let names: Vec<&[u8]> = cats.iter().map(|c| c.as_bytes()).collect();
    c.clear(&names).map_err(|e| cache_err(&dir, e))?;
    println!("cleared {} entries from {}", before - c.stats().entries, if cats.is_empty() { "every category".into() } else { cats.join(", ") });
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

fn cmd_compact(mut a: Args) -> Res {
    let dir = a.positional("<dir>")?;
    let cat = a.positional("category").ok();
    a.done()?;
    let c = open(&dir, &Config::default())?;
    let before = c.stats().disk_bytes;
    let cats: Vec<String> = match &cat {
        Some(x) => vec![x.clone()],
        None => c.categories(),
    };
    let mut p = Progress::new("compact");
    for (i, name) in cats.iter().enumerate() {
        p.show(i as u64, cats.len() as u64);
        c.compact(Some(name.as_bytes())).map_err(|e| cache_err(&dir, e))?;
    }
    if cat.is_none() {
        c.compact(None).map_err(|e| cache_err(&dir, e))?; // and the internal column families
    }
    p.show(cats.len() as u64, cats.len() as u64);
    p.finish();
    println!("compacted {}: {} on disk before, {} after", cat.as_deref().unwrap_or("all categories"), human_size(before), human_size(c.stats().disk_bytes));
    Ok(())
}

fn cmd_enforce(mut a: Args) -> Res {
    let mut config = Config::default();
    if let Some(v) = a.value(&["--max-size"])? {
        config.set_max_size(size(&v, "--max-size")?);
    }
    if let Some(v) = a.value(&["--max-age"])? {
        config.set_max_age(duration(&v, "--max-age")?);
    }
    let limits = a.values("--limit")?;
    let explicit = config != Config::default() || !limits.is_empty();
    let dir = a.positional("<dir>")?;
    a.done()?;
    // Categories the cache already has must be known before limits can name them.
    if !limits.is_empty() {
        let probe = open(&dir, &Config { read_only: true, ..Config::default() })?;
        for name in probe.categories() {
            let _ = config.add_category(name.as_bytes());
        }
    }
    for l in &limits {
        let (cat, bytes) = l.split_once('=').ok_or_else(|| Fail::Usage(format!("--limit takes CATEGORY=BYTES, not {l:?}")))?;
        config.set_category_max_size(cat.as_bytes(), size(bytes, "--limit")?).map_err(|e| Fail::Usage(e.to_string()))?;
    }
    let c = open(&dir, &config)?;
    if let (Some(pid), true) = (c.owner_pid(), explicit) {
        return Err(Fail::Cache(format!(
            "{dir}: in use by process {pid}, which evicts by the limits it opened the cache with; run enforce with limits once it has closed the cache (without limits, enforce applies that process's)"
        )));
    }
    let r = c.enforce_policy().map_err(|e| cache_err(&dir, e))?;
    println!(
        "evicted {} entries ({}); stored {} -> {}; compacted: {}",
        r.evicted_entries,
        human_size(r.evicted_bytes),
        human_size(r.stored_bytes_before),
        human_size(r.stored_bytes_after),
        if r.compacted { "yes" } else { "no" }
    );
    Ok(())
}

fn cmd_verify(mut a: Args) -> Res {
    let drop_bad = a.flag(&["--drop"]);
    let dir = a.positional("<dir>")?;
    a.done()?;
    let mut c = open(&dir, &Config::default())?;
    if c.stats().recovered {
        // Damage found earlier (by a read, or an earlier verify) was salvaged at this open.
        println!("salvaged: the store was damaged and was salvaged when opened: {} entries kept (the store's LOG says more)", c.stats().entries);
    }
    let mut p = Progress::new("verify");
    let r = c.verify(drop_bad, &mut |d, t| p.show(d, t)).map_err(|e| cache_err(&dir, e))?;
    p.finish();
    println!("checked {} entries ({} of values): {} damaged{}", r.checked, human_size(r.value_bytes), r.bad, if drop_bad { format!(", {} dropped ({} orphaned index records removed)", r.dropped, r.dropped_index_records) } else { String::new() });
    for (cat, key) in &r.bad_keys {
        println!("  damaged: {cat}/{}", String::from_utf8_lossy(key));
    }
    for (cat, e) in &r.damaged_tables {
        println!("  damaged table: {cat}: {e}");
    }
    if !r.damaged_tables.is_empty() {
        if !drop_bad {
            return Err(Fail::Found(format!("{dir}: damaged tables: the next writable open salvages every intact entry (or run verify --drop)")));
        }
        // Salvage runs when the store is next opened for writing: close and reopen. A
        // store another process serves is salvaged when that process next opens it.
        drop(c);
        c = open(&dir, &Config::default())?;
        let s = c.stats();
        if !s.recovered {
            return Err(Fail::Found(format!("{dir}: damaged tables: another process serves this cache; it salvages them at its next open")));
        }
        println!("salvaged: {} entries kept (the store's LOG names what was lost)", s.entries);
        let r = c.verify(true, &mut |_, _| {}).map_err(|e| cache_err(&dir, e))?;
        println!("checked {} entries again: {} damaged", r.checked, r.bad);
        if !r.damaged_tables.is_empty() {
            return Err(Fail::Found(format!("{dir}: tables still damaged after a salvage")));
        }
        return Ok(());
    }
    if r.bad > 0 && !drop_bad {
        return Err(Fail::Found(format!("{dir}: {} damaged entries (run verify --drop to remove them)", r.bad)));
    }
    Ok(())
}

fn cmd_config(mut a: Args) -> Res {
    use nexxo_core::store::limits_file::{read_stored, write_stored, StoredLimits};
    let dir = a.positional("<dir>")?;
    let key = a.positional("KEY").ok();
    let value = if key.is_some() { Some(a.positional("VALUE")?) } else { None };
    a.done()?;
    let path = PathBuf::from(&dir);
    if !path.join("NEXXO_FORMAT").exists() {
        return Err(Fail::Cache(format!("{dir}: not a nexxo cache")));
    }
    let stored = read_stored(&path).map_err(|why| Fail::Cache(format!("{dir}: its stored limits cannot be read ({why})")))?;
    let defaults = StoredLimits::of(&Config::default());
    let mut limits = stored.clone().unwrap_or_default();
    if let (Some(key), Some(value)) = (key, value) {
        let n = if key == "max_age" { duration(&value, &key)? } else { size(&value, &key)? };
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
    let show = |v: Option<u64>, d: Option<u64>, unit: fn(u64) -> String| match v {
        Some(v) => unit(v),
        None => format!("{} (default)", unit(d.unwrap_or(0))),
    };
    let size = |v: u64| if v == 0 { "unbounded".to_owned() } else { format!("{v} ({})", human_size(v)) };
    let age = |v: u64| if v == 0 { "none".to_owned() } else { format!("{v} s") };
    println!("max_size  {}", show(limits.max_size, defaults.max_size, size));
    println!("max_age   {}", show(limits.max_age_secs, defaults.max_age_secs, age));
    for (name, bytes) in limits.category_max_size.iter().flatten() {
        println!("category.{name}  {}", size(*bytes));
    }
    if stored.is_none() && limits == StoredLimits::default() {
        println!("(the cache stores no limits: every open uses its own or the defaults)");
    }
    Ok(())
}

fn cmd_bench(mut a: Args) -> Res {
    let n = match a.value(&["--entries", "-n"])? {
        Some(v) => number(&v, "--entries")? as usize,
        None => 1000,
    };
    let dir_arg = a.positional("<dir>").ok();
    a.done()?;
    let temporary = dir_arg.is_none();
    let dir = dir_arg.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!("nexxo-bench-{}-{nanos}", std::process::id())).to_string_lossy().into_owned()
    });
    let result = bench(&dir, n);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn bench(dir: &str, n: usize) -> Res {
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
    println!("{n} artifacts of 1 KiB: {:.0} sets/s, {:.0} gets/s (every value checked)", n as f64 / w, n as f64 / r);
    println!("entries {}, logical {}, stored {}, on disk {}, hit rate {:.2}%", s.entries, human_size(s.logical_bytes), human_size(s.stored_bytes), human_size(s.disk_bytes), 100.0 * s.hit_rate());
    Ok(())
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || matches!(argv[0].as_str(), "-h" | "--help" | "help") {
        print!("{USAGE}");
        return if argv.is_empty() { ExitCode::from(2) } else { ExitCode::SUCCESS };
    }
    if argv[0] == "--version" || argv[0] == "-V" {
        println!("nexxo-cache {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let cmd = argv.remove(0);
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        if help(&cmd) == USAGE {
            eprintln!("nexxo-cache: unknown command {cmd:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
        print!("{}", help(&cmd));
        return ExitCode::SUCCESS;
    }
    let args = Args::new(argv);
    let result = match cmd.as_str() {
        "stats" => cmd_stats(args),
        "get" => cmd_get(args),
        "set" => cmd_set(args),
        "delete" => cmd_delete(args),
        "clear" => cmd_clear(args),
        "compact" => cmd_compact(args),
        "enforce" => cmd_enforce(args),
        "config" => cmd_config(args),
        "verify" => cmd_verify(args),
        "bench" => cmd_bench(args),
        other => Err(Fail::Usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Found(m)) => {
            eprintln!("nexxo-cache: {m}");
            ExitCode::from(1)
        }
        Err(Fail::Usage(m)) => {
            eprintln!("nexxo-cache {cmd}: {m}\n\n{}", help(&cmd));
            ExitCode::from(2)
        }
        Err(Fail::Cache(m)) => {
            eprintln!("nexxo-cache: {m}");
            ExitCode::from(3)
        }
    }
}
