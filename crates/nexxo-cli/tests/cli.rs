//! The nexxo-cache command on real caches: output and exit codes.

use std::process::{Command, Output, Stdio};

use nexxo_core::{Cache, Config};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nexxo-cache"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    let c = Cache::open(&path, &Config::default()).unwrap();
    for i in 0..300 {
        c.set(b"transform", format!("m{i}").as_bytes(), format!("export const v{i} = {i};\n").repeat(20).as_bytes()).unwrap();
    }
    c.set(b"parse", b"a.ts", b"{\"ast\":1}").unwrap();
    (d, path.to_string_lossy().into_owned())
}

#[test]
fn help_and_usage_errors() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("exit codes"));
    for cmd in ["stats", "get", "set", "delete", "clear", "compact", "enforce", "verify", "bench"] {
        let o = run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd} --help");
        assert!(text(&o.stdout).starts_with(&format!("usage: nexxo-cache {cmd}")), "{cmd}");
    }
    assert_eq!(run(&[]).status.code(), Some(2));
    let o = run(&["frobnicate", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown command"));
    assert_eq!(run(&["get", "/tmp"]).status.code(), Some(2), "missing arguments");
    assert_eq!(run(&["stats", "/tmp", "--bogus"]).status.code(), Some(2));
    assert_eq!(run(&["--version"]).status.code(), Some(0));
}

#[test]
fn stats_text_and_json() {
    let (_d, path) = fixture();
    let o = run(&["stats", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("transform") && out.contains("total"));
    let total = out.lines().find(|l| l.starts_with("total")).unwrap();
    assert_eq!(total.split_whitespace().nth(1), Some("301"));
    assert!(out.contains("KiB"));
    let o = run(&["stats", &path, "--json"]);
    let j = text(&o.stdout);
    assert!(j.contains("\"totals\":{") && j.contains("\"entries\":301"));
}

#[test]
fn get_set_delete_and_exit_codes() {
    let (d, path) = fixture();
    let o = run(&["get", &path, "parse", "a.ts"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, b"{\"ast\":1}");
    let o = run(&["get", &path, "parse", "missing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("no value for parse/missing"));
    assert_eq!(run(&["set", &path, "meta", "k", "hello"]).status.code(), Some(0));
    assert_eq!(run(&["get", &path, "meta", "k"]).stdout, b"hello");
    let f = d.path().join("value.bin");
    std::fs::write(&f, [0u8, 1, 2, 255]).unwrap();
    assert_eq!(run(&["set", &path, "bundle", "bin", "-f", f.to_str().unwrap()]).status.code(), Some(0));
    let out = d.path().join("out.bin");
    assert_eq!(run(&["get", &path, "bundle", "bin", "-o", out.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(std::fs::read(&out).unwrap(), [0u8, 1, 2, 255]);
    let mut child = bin().args(["set", &path, "meta", "stdin", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"from stdin").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(run(&["get", &path, "meta", "stdin"]).stdout, b"from stdin");
    assert_eq!(run(&["delete", &path, "meta", "k"]).status.code(), Some(0));
    assert_eq!(run(&["get", &path, "meta", "k"]).status.code(), Some(1));
    let o = run(&["get", &path, "nope", "k"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains(&path) && text(&o.stderr).contains("unknown category"));
    let o = run(&["stats", "/nonexistent/cache"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("/nonexistent/cache"));
}

#[test]
fn clear_compact_enforce() {
    let (_d, path) = fixture();
    let o = run(&["clear", &path, "parse"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("cleared 1 entries from parse"));
    let o = run(&["compact", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("compacted all categories"));
    let o = run(&["enforce", &path, "--max-size", "4096"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("evicted "));
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert!(c.stats().stored_bytes <= 4096);
    drop(c);
    let o = run(&["enforce", &path, "--limit", "transform=100", "--max-age", "100"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(run(&["enforce", &path, "--limit", "nope"]).status.code(), Some(2));
    assert_eq!(run(&["enforce", &path, "--max-size", "lots"]).status.code(), Some(2));
    assert_eq!(run(&["clear", &path]).status.code(), Some(0));
}

#[test]
fn verify_reports_and_drops_damage() {
    let (_d, path) = fixture();
    let o = run(&["verify", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("checked 301 entries") && text(&o.stdout).contains("0 damaged"));
    {
        let c = Cache::open(&path, &Config::default()).unwrap();
        c.store().unwrap().debug_put_raw(b"parse", b"bad", b"\x01\x00\x00\x00garbage").unwrap();
    }
    let o = run(&["verify", &path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("1 damaged") && text(&o.stdout).contains("damaged: parse/bad"));
    let o = run(&["verify", &path, "--drop"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("1 dropped"));
    assert_eq!(run(&["verify", &path]).status.code(), Some(0));
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(c.stats().corrupt_dropped, 1);
}

/// A cache in use by another process (here, this test) is read and written by the CLI
/// through that process: every command works, writes included.
#[test]
fn commands_work_on_a_cache_in_use_by_another_process() {
    let (_d, path) = fixture();
    let holder = Cache::open(&path, &Config::default()).unwrap(); // this process serves it
    let o = run(&["stats", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).contains("(read-only)"));
    assert_eq!(run(&["get", &path, "parse", "a.ts"]).status.code(), Some(0));
    assert_eq!(run(&["verify", &path]).status.code(), Some(0));
    let o = run(&["set", &path, "meta", "k", "v"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(holder.get(b"meta", b"k").unwrap().as_deref(), Some(&b"v"[..]), "the CLI's write is seen at once");
    let o = run(&["delete", &path, "meta", "k"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(holder.get(b"meta", b"k").unwrap(), None);
    // Limits belong to the process that evicts: explicit ones are refused while it runs.
    let o = run(&["enforce", &path, "--max-size", "1000"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("in use by process"), "{}", text(&o.stderr));
    assert_eq!(run(&["enforce", &path]).status.code(), Some(0));
    drop(holder);
}

#[test]
fn bench_runs_the_seed_workload() {
    let o = run(&["bench", "--entries", "200"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("200 artifacts of 1 KiB") && out.contains("entries 200") && out.contains("hit rate 100.00%"));
}

/// `verify` reads through a damaged table: it names it and exits 1; `verify --drop`
/// salvages the store (every intact entry kept) and exits 0; a second `verify` finds
/// nothing. Never exit 3 for damage the store survives.
#[test]
fn verify_through_a_damaged_table() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    let c = Cache::open(&path, &Config::default()).unwrap();
    for i in 0..3000 {
        c.set(b"transform", format!("m{i}").as_bytes(), format!("export const v{i} = {i};\n").repeat(30).as_bytes()).unwrap();
    }
    c.compact(None).unwrap();
    drop(c);
    let mut ssts: Vec<_> = std::fs::read_dir(&path).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "sst")).collect();
    ssts.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    let mut bytes = std::fs::read(&ssts[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 4096].fill(0);
    std::fs::write(&ssts[0], &bytes).unwrap();
    let p = path.to_string_lossy().into_owned();

    let o = run(&["verify", &p]);
    assert_eq!(o.status.code(), Some(1), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("damaged table: transform"), "{}", text(&o.stdout));
    let o = run(&["verify", &p, "--drop"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("salvaged:"), "{}", text(&o.stdout));
    let o = run(&["verify", &p]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains(": 0 damaged"), "{}", text(&o.stdout));

    let c = Cache::open(&path, &Config::default()).unwrap();
    let kept = (0..3000).filter(|i| c.get(b"transform", format!("m{i}").as_bytes()).unwrap().is_some()).count();
    assert!(kept > 2900 && kept < 3000, "{kept} kept");
    assert_eq!(c.stats().entries, kept as u64);
}

/// `config` shows and sets the limits the cache keeps; `enforce` without flags applies
/// them (it never evicts a cache down to the built-in default over a stored bound).
#[test]
fn config_shows_and_sets_stored_limits() {
    let (_d, path) = fixture();
    let o = run(&["config", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("max_size  2147483648 (2.00 GiB) (default)"), "{}", text(&o.stdout));
    let o = run(&["config", &path, "max_size", "65536"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("max_size  65536"), "{}", text(&o.stdout));
    let o = run(&["config", &path, "category.bundle", "1000"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("category.bundle  1000"), "{}", text(&o.stdout));
    assert_eq!(run(&["config", &path, "frobnicate", "1"]).status.code(), Some(2));
    assert_eq!(run(&["config", &path, "max_size", "lots"]).status.code(), Some(2));
    // enforce with no flags: the stored 64 KiB bound, not the 2 GiB default.
    let o = run(&["enforce", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert!(c.stats().stored_bytes <= 65536, "{:?}", c.stats());
    assert_eq!(c.store().unwrap().config().category_limit("bundle"), 1000);
}

/// `--flag=value` as `--flag value`, `--` before arguments that start with `-`, sizes
/// and durations with suffixes, and an unknown command's `--help` is an error.
#[test]
fn flag_forms_suffixes_and_unknown_commands() {
    let (_d, path) = fixture();
    let o = run(&["enforce", &path, "--max-size=1G", "--max-age=7d", "--limit=bundle=500M"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = run(&["config", &path]);
    let out = text(&o.stdout);
    assert!(out.contains("max_size  1073741824") && out.contains("max_age   604800 s") && out.contains("category.bundle  524288000"), "{out}");
    let o = run(&["config", &path, "max_size", "1.5GiB"]);
    assert!(text(&o.stdout).contains("max_size  1610612736"), "{}", text(&o.stdout));
    assert_eq!(run(&["enforce", &path, "--max-size", "12 parsecs"]).status.code(), Some(2));
    // A key that starts with '-' after --.
    let o = run(&["set", &path, "parse", "--", "-weird", "v"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = run(&["get", &path, "parse", "--", "-weird"]);
    assert_eq!(text(&o.stdout), "v");
    assert_eq!(run(&["get", &path, "parse", "--", "-weird", "extra"]).status.code(), Some(2));
    let o = run(&["frobnicate", "--help"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown command \"frobnicate\""));
}
