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
    assert!(text(&o.stdout).contains("Exit codes"));
    for cmd in ["stats", "get", "set", "delete", "clear", "compact", "enforce", "verify", "config", "bench", "completions"] {
        let o = run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd} --help");
        assert!(text(&o.stdout).contains(&format!("Usage: nexxo-cache {cmd}")), "{cmd}: {}", text(&o.stdout));
    }
    assert_eq!(run(&[]).status.code(), Some(2));
    let o = run(&["frobnicate", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unrecognized subcommand 'frobnicate'"), "{}", text(&o.stderr));
    assert_eq!(run(&["get", "/tmp"]).status.code(), Some(2), "missing arguments");
    let o = run(&["stats", "/tmp", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("'--bogus'"), "{}", text(&o.stderr));
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout).trim(), format!("nexxo-cache {}", env!("CARGO_PKG_VERSION")));
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
    assert!(text(&o.stderr).contains("'frobnicate'"), "{}", text(&o.stderr));
    let o = run(&["enforce", &path, "--max-size", "12 parsecs"]);
    assert!(text(&o.stderr).contains("12 parsecs") && text(&o.stderr).contains("--max-size"), "{}", text(&o.stderr));
}

fn run_in(cwd: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = bin();
    c.current_dir(cwd).env_remove("NEXXO_CACHE_DIR").args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The directory comes from `--dir`, a leading argument, `NEXXO_CACHE_DIR`, or the
/// nearest `.nexxo_cache` up from the current directory, in that order; given twice,
/// or found nowhere, is a usage error that says what to do.
#[test]
fn the_directory_from_flag_environment_or_project() {
    let d = tempfile::tempdir().unwrap();
    let project = d.path().join("project");
    let deep = project.join("src/components");
    std::fs::create_dir_all(&deep).unwrap();
    let pc = project.join(".nexxo_cache");
    Cache::open(&pc, &Config::default()).unwrap().set(b"parse", b"p", b"project").unwrap();
    let other = d.path().join("other");
    Cache::open(&other, &Config::default()).unwrap().set(b"parse", b"p", b"other").unwrap();
    let other_s = other.to_str().unwrap();

    // The project's cache, found from a subdirectory.
    let o = run_in(&deep, &[], &["get", "parse", "p"]);
    assert_eq!((o.status.code(), text(&o.stdout).as_str()), (Some(0), "project"), "{}", text(&o.stderr));
    // NEXXO_CACHE_DIR before the project's.
    let o = run_in(&deep, &[("NEXXO_CACHE_DIR", other_s)], &["get", "parse", "p"]);
    assert_eq!(text(&o.stdout), "other");
    // --dir (either form) and a leading argument before the environment.
    for args in [&["--dir", pc.to_str().unwrap(), "get", "parse", "p"][..], &["get", "parse", "p", "--dir", pc.to_str().unwrap()], &["get", pc.to_str().unwrap(), "parse", "p"]] {
        let o = run_in(&deep, &[("NEXXO_CACHE_DIR", other_s)], args);
        assert_eq!(text(&o.stdout), "project", "{args:?}: {}", text(&o.stderr));
    }
    // Writes go to the same place.
    assert_eq!(run_in(&deep, &[], &["set", "meta", "k", "v"]).status.code(), Some(0));
    assert_eq!(Cache::open(&pc, &Config::default()).unwrap().get(b"meta", b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // clear and compact: a first argument that is a category is a category.
    let o = run_in(&deep, &[], &["clear", "meta"]);
    assert!(text(&o.stdout).contains("cleared 1 entries from meta"), "{}", text(&o.stderr));
    let o = run_in(&deep, &[], &["compact", "parse"]);
    assert!(text(&o.stdout).starts_with("compacted parse"), "{}", text(&o.stderr));
    let o = run_in(&deep, &[], &["compact", other_s, "parse"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Twice, and nowhere.
    let o = run_in(&deep, &[], &["--dir", other_s, "get", pc.to_str().unwrap(), "parse", "p"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("given twice"), "{}", text(&o.stderr));
    let o = run_in(&deep, &[], &["get", pc.to_str().unwrap(), "parse"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("is a directory: arguments are missing"), "{}", text(&o.stderr));
    let o = run_in(&other, &[], &["stats"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("NEXXO_CACHE_DIR") && text(&o.stderr).contains(".nexxo_cache"), "{}", text(&o.stderr));
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {:?} {}", text(&o.stdout), text(&o.stderr)))
}

/// `--json` on every command that prints: one JSON object on stdout, same exit codes.
#[test]
fn json_on_every_command() {
    let (d, path) = fixture();
    let p = path.as_str();
    let j = json_of(&run(&["stats", p, "--json"]));
    assert_eq!(j["totals"]["entries"], 301);
    assert_eq!(j["limits"]["max_size"], 2u64 << 30);
    assert_eq!(j["limits"]["source"]["max_size"], "default");
    let o = run(&["--json", "get", p, "parse", "a.ts"]);
    let j = json_of(&o);
    assert_eq!((j["found"].as_bool(), j["value"].as_str(), j["bytes"].as_u64()), (Some(true), Some("{\"ast\":1}"), Some(9)));
    let o = run(&["get", p, "parse", "nope", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["found"], false);
    let f = d.path().join("bin");
    std::fs::write(&f, [0u8, 255, 1]).unwrap();
    assert_eq!(json_of(&run(&["set", p, "meta", "b", "-f", f.to_str().unwrap(), "--json"]))["bytes"], 3);
    assert_eq!(json_of(&run(&["get", p, "meta", "b", "--json"]))["value_base64"], "AP8B");
    assert_eq!(json_of(&run(&["delete", p, "meta", "b", "--json"]))["deleted"], true);
    assert_eq!(json_of(&run(&["clear", p, "meta", "--json"]))["cleared"], 0);
    assert!(json_of(&run(&["compact", p, "--json"]))["disk_bytes_after"].is_u64());
    assert!(json_of(&run(&["enforce", p, "--json"]))["evicted_entries"].is_u64());
    assert_eq!(json_of(&run(&["verify", p, "--json"]))["checked"], 301);
    assert_eq!(json_of(&run(&["config", p, "max_age", "7d", "--json"]))["max_age_secs"], 604800);
    let j = json_of(&run(&["stats", p, "--json"]));
    assert_eq!((j["limits"]["max_age_secs"].as_u64(), j["limits"]["source"]["max_age"].as_str()), (Some(604800), Some("stored")));
    let j = json_of(&run(&["bench", "-n", "50", "--json"]));
    assert_eq!((j["entries"].as_u64(), j["hit_rate"].as_f64()), (Some(50), Some(1.0)));
    // --watch: one object per refresh.
    let o = run(&["stats", p, "--watch", "--interval", "1", "--count", "2", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["entries"], 301);
}

/// `stats` names the limits that apply and where each comes from; the environment's
/// come before the stored ones.
#[test]
fn stats_shows_limits_and_their_sources() {
    let (_d, path) = fixture();
    assert_eq!(run(&["config", &path, "max_size", "1G"]).status.code(), Some(0));
    let o = run(&["stats", &path]);
    assert!(text(&o.stdout).contains("limits: max_size 1073741824 (1.00 GiB) (stored), max_age none (default)"), "{}", text(&o.stdout));
    let o = bin().args(["stats", &path]).env("NEXXO_CACHE_MAX_SIZE", "3G").output().unwrap();
    assert!(text(&o.stdout).contains("max_size 3221225472 (3.00 GiB) (environment)"), "{}", text(&o.stdout));
    // A cache the environment disables is not shown as empty.
    let o = bin().args(["stats", &path]).env("NEXXO_CACHE_DISABLE", "1").output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("NEXXO_CACHE_DISABLE"), "{}", text(&o.stderr));
}

/// Completion scripts for every shell clap supports generate, and bash's parses.
#[test]
fn completions_generate() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = run(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", text(&o.stderr));
        assert!(text(&o.stdout).contains("nexxo-cache"), "{shell}");
    }
    let script = run(&["completions", "bash"]).stdout;
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("c.bash");
    std::fs::write(&f, &script).unwrap();
    let o = Command::new("bash").arg("-n").arg(&f).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    // And it completes the commands.
    let probe = format!("source {}; COMP_WORDS=(nexxo-cache st); COMP_CWORD=1; _nexxo__cache nexxo-cache st nexxo-cache; echo \"${{COMPREPLY[@]}}\"", f.display());
    let o = Command::new("bash").arg("-c").arg(probe).output().unwrap();
    assert!(text(&o.stdout).contains("stats"), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}

/// `stats` shows what closed handles kept (counts, latency percentiles); `--format
/// openmetrics` exports it with the store's gauges; `--reset-history` forgets it.
#[test]
fn stats_shows_the_kept_latency_and_exports_openmetrics() {
    let (_d, path) = fixture(); // one handle that set 301 entries, closed
    let o = run(&["stats", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("history: 1 closed handles since") && out.contains("0 hits, 0 misses, 301 writes, 0 deletes"), "{out}");
    let set_line = out.lines().find(|l| l.starts_with("set ")).unwrap_or_else(|| panic!("no set line: {out}"));
    assert_eq!(set_line.split_whitespace().nth(1), Some("301"), "{set_line}");
    assert!(out.lines().any(|l| l.starts_with("  transform") && l.split_whitespace().nth(1) == Some("300")), "{out}");

    let o = run(&["stats", &path, "--format", "openmetrics"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let om = text(&o.stdout);
    for want in [
        "# TYPE nexxo_cache_writes counter",
        "nexxo_cache_writes_total{category=\"transform\"} 300",
        "nexxo_cache_entries{category=\"transform\"} 300",
        "# TYPE nexxo_cache_latency_seconds histogram",
        "nexxo_cache_latency_seconds_bucket{op=\"set\",category=\"transform\",le=\"+Inf\"} 300",
        "nexxo_cache_latency_seconds_count{op=\"set\",category=\"parse\"} 1",
    ] {
        assert!(om.contains(want), "missing {want:?} in:\n{om}");
    }
    assert!(om.ends_with("# EOF\n"));
    // Cumulative buckets never go down, and end at the count.
    let buckets: Vec<u64> = om
        .lines()
        .filter(|l| l.starts_with("nexxo_cache_latency_seconds_bucket{op=\"set\",category=\"transform\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 23);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]) && buckets[22] == 300, "{buckets:?}");

    let o = run(&["stats", &path, "--json"]);
    assert!(text(&o.stdout).contains("\"history\":{\"since\":"), "{}", text(&o.stdout));
    assert_eq!(run(&["stats", &path, "--json", "--format", "openmetrics"]).status.code(), Some(2));
    assert_eq!(run(&["stats", &path, "--format", "yaml"]).status.code(), Some(2));

    assert_eq!(run(&["stats", &path, "--reset-history"]).status.code(), Some(0));
    let out = text(&run(&["stats", &path]).stdout);
    assert!(!out.contains("history:"), "{out}");
}

/// `set --tag` and `invalidate`: the entries carrying the tag go, in every category.
#[test]
fn set_with_tags_and_invalidate() {
    let (_d, path) = fixture();
    for (cat, key, tags) in [("transform", "a.ts", vec!["--tag", "tsconfig#1", "--tag", "babel@7"]), ("bundle", "main.js", vec!["-t", "tsconfig#1"]), ("parse", "b.ts", vec!["-t", "babel@7"])] {
        let mut args = vec!["set", &path, cat, key, "v"];
        args.extend(tags);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    }
    let o = run(&["invalidate", &path, "tsconfig#1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("invalidated 2 entries"), "{}", text(&o.stdout));
    assert_eq!(run(&["get", &path, "transform", "a.ts"]).status.code(), Some(1));
    assert_eq!(run(&["get", &path, "parse", "b.ts"]).status.code(), Some(0));
    let o = run(&["--json", "invalidate", &path, "babel@7"]);
    assert!(text(&o.stdout).contains("\"entries\":1"), "{}", text(&o.stdout));
    assert_eq!(run(&["invalidate", &path, ""]).status.code(), Some(2));
    let long = "x".repeat(300);
    assert_eq!(run(&["set", &path, "parse", "k", "v", "--tag", &long]).status.code(), Some(2));
}
