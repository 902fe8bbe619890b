//! The environment: what a CI operator or a user sets once for every tool that opens a
//! cache, without touching the tools (as `CCACHE_MAXSIZE` and `SCCACHE_CACHE_SIZE` do).
//! Read by [`crate::Cache::open`], so every binding and the command get it; an opener
//! that must not be swayed sets [`Config::ignore_environment`].
//!
//! | variable | value | effect |
//! |---|---|---|
//! | `NEXXO_CACHE_MAX_SIZE` | bytes, or with a binary suffix: `500M`, `2G`, `1.5GiB`, `0` = unbounded | the cache's bound, unless the opener set one |
//! | `NEXXO_CACHE_MAX_AGE` | seconds, or `30m`, `12h`, `7d`, `2w`; `0` = never | the age bound, unless the opener set one |
//! | `NEXXO_CACHE_READ_ONLY` | `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` | open read-only |
//! | `NEXXO_CACHE_DISABLE` | as above | a disabled cache: every get misses, writes are dropped |
//! | `NEXXO_CACHE_LATENCY` | as above | `0`: record no latency histograms (`1` leaves the opener's choice) |
//! | `NEXXO_CACHE_MEMORY_BUDGET` | bytes, or with a binary suffix (as the max size); at least 4 MiB | the memory budget, unless the opener set one |
//! | `NEXXO_CACHE_REMOTE` | one or more URLs, separated by commas or spaces | the remotes, unless the opener configured some |
//! | `NEXXO_CACHE_REMOTE_MODE` | `read-write`, `read-only`, `off` | with `NEXXO_CACHE_REMOTE` |
//! | `NEXXO_CACHE_REMOTE_NAME` | the namespace on the servers | with `NEXXO_CACHE_REMOTE` |
//! | `NEXXO_CACHE_REMOTE_HMAC_KEY`, `..._FILE` | the key, or a file holding it | with `NEXXO_CACHE_REMOTE` |
//!
//! Limits from the environment come before the cache's stored ones and are not stored
//! (per limit: set by the opener > environment > stored > default). The remote settings
//! apply as a whole, and only to an opener that configured no remote. An empty variable
//! is unset. A value that cannot be read is an error naming the variable: never a
//! crash, never a value silently ignored.

use crate::config::{check_memory_budget, Config};
use crate::error::{Error, Result};
use crate::remote::Mode;

pub const MAX_SIZE: &str = "NEXXO_CACHE_MAX_SIZE";
pub const MAX_AGE: &str = "NEXXO_CACHE_MAX_AGE";
pub const READ_ONLY: &str = "NEXXO_CACHE_READ_ONLY";
pub const DISABLE: &str = "NEXXO_CACHE_DISABLE";
pub const LATENCY: &str = "NEXXO_CACHE_LATENCY";
/// The memory budget ([`Config::memory_budget`]): what a user raises so that a large
/// cache's warm table holds all of it.
pub const MEMORY_BUDGET: &str = "NEXXO_CACHE_MEMORY_BUDGET";
pub const REMOTE: &str = "NEXXO_CACHE_REMOTE";
pub const REMOTE_MODE: &str = "NEXXO_CACHE_REMOTE_MODE";
pub const REMOTE_NAME: &str = "NEXXO_CACHE_REMOTE_NAME";
pub const REMOTE_HMAC_KEY: &str = "NEXXO_CACHE_REMOTE_HMAC_KEY";
pub const REMOTE_HMAC_KEY_FILE: &str = "NEXXO_CACHE_REMOTE_HMAC_KEY_FILE";
/// The bearer token of HTTP remotes (never printed).
pub const REMOTE_TOKEN: &str = "NEXXO_CACHE_REMOTE_TOKEN";
/// An extra CA file (PEM) for `https://` and `rediss://` remotes.
pub const REMOTE_CA_FILE: &str = "NEXXO_CACHE_REMOTE_CA_FILE";

/// What the environment says about an open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub config: Config,
    /// `NEXXO_CACHE_DISABLE` asks for a disabled cache.
    pub disable: bool,
}

/// `config` with the process's environment applied (or as it is, with
/// `ignore_environment`).
pub fn apply(config: &Config) -> Result<Applied> {
    apply_from(config, &|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
}

/// [`apply`] with the variables from `var` (tests give a map).
pub fn apply_from(config: &Config, var: &dyn Fn(&str) -> Option<String>) -> Result<Applied> {
    let mut c = config.clone();
    if config.ignore_environment {
        return Ok(Applied { config: c, disable: false });
    }
    let get = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let bad = |name: &str, value: &str, why: String| Error::InvalidArgument(format!("{name}={value:?}: {why}"));
    if let Some(v) = get(MAX_SIZE) {
        let n = parse_size(&v).map_err(|why| bad(MAX_SIZE, &v, why))?;
        if !c.explicit.max_size {
            c.max_size = n;
            c.from_environment.max_size = true;
        }
    }
    if let Some(v) = get(MAX_AGE) {
        let n = parse_duration(&v).map_err(|why| bad(MAX_AGE, &v, why))?;
        if !c.explicit.max_age {
            c.max_age_secs = n;
            c.from_environment.max_age = true;
        }
    }
    if let Some(v) = get(MEMORY_BUDGET) {
        let n = parse_size(&v).and_then(check_memory_budget).map_err(|why| bad(MEMORY_BUDGET, &v, why))?;
        if !c.explicit_memory_budget {
            c.memory_budget = n;
        }
    }
    if let Some(v) = get(READ_ONLY) {
        c.read_only |= parse_bool(&v).map_err(|why| bad(READ_ONLY, &v, why))?;
    }
    if let Some(v) = get(LATENCY) {
        c.latency &= parse_bool(&v).map_err(|why| bad(LATENCY, &v, why))?;
    }
    let disable = match get(DISABLE) {
        Some(v) => parse_bool(&v).map_err(|why| bad(DISABLE, &v, why))?,
        None => false,
    };
    // The remote tier: as a whole, for an opener that configured none.
    let urls = get(REMOTE);
    let remote_vars = [REMOTE_MODE, REMOTE_NAME, REMOTE_HMAC_KEY, REMOTE_HMAC_KEY_FILE];
    if urls.is_none() {
        if let Some(name) = remote_vars.iter().find(|n| get(n).is_some()) {
            return Err(Error::InvalidArgument(format!("{name} is set without {REMOTE}")));
        }
    }
    // The token and the CA file serve whichever remotes the open has (the opener's or
    // the environment's), unless the opener set its own. An open without remotes has no
    // use for them: a CI job's token does not fail the tools that open the cache locally.
    let has_remotes = urls.is_some() || !config.remote.remotes.is_empty();
    if let (Some(v), None, true) = (get(REMOTE_TOKEN), &config.remote.token, has_remotes) {
        // Never printed: the error names the variable only.
        c.remote.set_token(v.as_bytes()).map_err(|e| Error::InvalidArgument(format!("{REMOTE_TOKEN}: {e}")))?;
    }
    if let (Some(v), None, true) = (get(REMOTE_CA_FILE), &config.remote.ca_file, has_remotes) {
        c.remote.set_ca_file(std::path::Path::new(&v)).map_err(|e| bad(REMOTE_CA_FILE, &v, e.to_string()))?;
    }
    if let (Some(urls), true) = (urls, config.remote.remotes.is_empty()) {
        let r = &mut c.remote;
        for url in urls.split([',', ' ']).filter(|u| !u.is_empty()) {
            r.add_remote(url).map_err(|e| bad(REMOTE, &redact_userinfo(url), e.to_string()))?;
        }
        if let Some(v) = get(REMOTE_MODE) {
            r.mode = match v.as_str() {
                "read-write" => Mode::ReadWrite,
                "read-only" => Mode::ReadOnly,
                "off" => Mode::Off,
                _ => return Err(bad(REMOTE_MODE, &v, "read-write, read-only or off".into())),
            };
        }
        if let Some(v) = get(REMOTE_NAME) {
            r.set_name(v.as_bytes()).map_err(|e| bad(REMOTE_NAME, &v, e.to_string()))?;
        }
        let key = match (get(REMOTE_HMAC_KEY), get(REMOTE_HMAC_KEY_FILE)) {
            (Some(_), Some(_)) => return Err(Error::InvalidArgument(format!("{REMOTE_HMAC_KEY} and {REMOTE_HMAC_KEY_FILE} are both set"))),
            (Some(k), None) => Some(k.into_bytes()),
            (None, Some(f)) => {
                let bytes = std::fs::read(&f).map_err(|e| bad(REMOTE_HMAC_KEY_FILE, &f, e.to_string()))?;
                Some(String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec())
            }
            (None, None) => None,
        };
        if let Some(k) = key {
            // The key is never printed: the error names the variable only.
            r.set_hmac_key(&k).map_err(|e| Error::InvalidArgument(format!("{REMOTE_HMAC_KEY}: {e}")))?;
        }
    }
    Ok(Applied { config: c, disable })
}

/// Bytes: a number (a fraction allowed with a suffix), then optionally `K`, `M`, `G`,
/// `T` (binary: 1024), each optionally followed by `B` or `iB`; or `B` alone.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let (num, unit) = number_and_unit(s);
    let shift = match unit {
        "" | "B" => 0,
        "K" | "k" | "KB" | "kB" | "KiB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        "T" | "TB" | "TiB" => 40,
        u => return Err(format!("unknown unit {u:?} (B, K, M, G, T, each binary)")),
    };
    scaled(num, 1u64 << shift)
}

/// Seconds: a number, then optionally `s`, `m`, `h`, `d` or `w`.
pub fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let (num, unit) = number_and_unit(s);
    let secs = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        u => return Err(format!("unknown unit {u:?} (s, m, h, d, w)")),
    };
    scaled(num, secs)
}

/// `s` split into its leading number (digits and dots) and its unit, both trimmed.
fn number_and_unit(s: &str) -> (&str, &str) {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    (num, unit.trim())
}

fn scaled(num: &str, unit: u64) -> std::result::Result<u64, String> {
    if num.is_empty() {
        return Err("no number".into());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(unit).ok_or_else(|| "too large".to_owned());
    }
    let f: f64 = num.parse().map_err(|_| format!("{num:?} is not a number"))?;
    let v = (f * unit as f64).round();
    if !v.is_finite() || v < 0.0 || v >= u64::MAX as f64 {
        return Err("too large".into());
    }
    Ok(v as u64)
}

/// `url` with the password of its `user:password@` replaced, for messages.
fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..start], &url[start + at + 1..]),
        None => url.to_owned(),
    }
}

fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("1, true, yes, on, or 0, false, no, off".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)], config: &Config) -> Result<Applied> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        apply_from(config, &|n| map.get(n).cloned())
    }

    #[test]
    fn sizes_and_durations() {
        for (s, n) in [("1048576", 1 << 20), ("500M", 500 << 20), ("2G", 2 << 30), ("1.5GiB", 3 << 29), ("64KB", 64 << 10), ("0", 0), (" 7 K ", 7 << 10), ("1T", 1 << 40)] {
            assert_eq!(parse_size(s), Ok(n), "{s}");
        }
        for bad in ["", "G", "1.2.3M", "-1", "12 parsecs", "99999999999T", "1e9"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        for (s, n) in [("90", 90), ("30m", 1800), ("12h", 43_200), ("7d", 604_800), ("2w", 1_209_600), ("1.5h", 5400)] {
            assert_eq!(parse_duration(s), Ok(n), "{s}");
        }
        for bad in ["", "d", "5 fortnights", "-3h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn precedence_set_over_environment() {
        let a = with(&[(MAX_SIZE, "1G"), (MAX_AGE, "7d")], &Config::default()).unwrap();
        assert_eq!((a.config.max_size, a.config.max_age_secs), (1 << 30, 604_800));
        assert!(a.config.from_environment.max_size && a.config.from_environment.max_age);
        let mut set = Config::default();
        set.set_max_size(5 << 20);
        let a = with(&[(MAX_SIZE, "1G")], &set).unwrap();
        assert_eq!(a.config.max_size, 5 << 20, "a limit the opener set wins");
        assert!(!a.config.from_environment.max_size);
        // The memory budget: the environment's unless the opener set one.
        assert_eq!(with(&[(MEMORY_BUDGET, "512M")], &Config::default()).unwrap().config.memory_budget, 512 << 20);
        assert_eq!(with(&[(MEMORY_BUDGET, "4MiB")], &Config::default()).unwrap().config.memory_budget, 4 << 20);
        let mut own = Config::default();
        own.set_memory_budget(8 << 20).unwrap();
        assert_eq!(with(&[(MEMORY_BUDGET, "512M")], &own).unwrap().config.memory_budget, 8 << 20, "a budget the opener set wins");
        let ignoring = Config { ignore_environment: true, ..Config::default() };
        assert_eq!(with(&[(MEMORY_BUDGET, "512M")], &ignoring).unwrap().config.memory_budget, Config::default().memory_budget);
        assert_eq!(with(&[(MAX_SIZE, "1G"), (DISABLE, "1")], &ignoring).unwrap(), Applied { config: ignoring.clone(), disable: false });
    }

    #[test]
    fn switches_and_remotes() {
        let a = with(&[(READ_ONLY, "yes"), (DISABLE, "off")], &Config::default()).unwrap();
        assert!(a.config.read_only && !a.disable);
        assert!(with(&[(DISABLE, "TRUE")], &Config::default()).unwrap().disable);
        assert!(!with(&[(LATENCY, "off")], &Config::default()).unwrap().config.latency);
        assert!(with(&[(LATENCY, "1")], &Config::default()).unwrap().config.latency);
        let off = Config { latency: false, ..Config::default() };
        assert!(!with(&[(LATENCY, "1")], &off).unwrap().config.latency, "1 leaves the opener's choice");
        let a = with(&[(REMOTE, "http://127.0.0.1:9/c, redis://127.0.0.1:6379"), (REMOTE_MODE, "read-only"), (REMOTE_NAME, "ci"), (REMOTE_HMAC_KEY, "0123456789abcdef")], &Config::default()).unwrap();
        let r = &a.config.remote;
        assert_eq!((r.remotes.len(), r.mode, r.name.as_str(), r.hmac_key.is_some()), (2, Mode::ReadOnly, "ci", true));
        // An opener with remotes of its own keeps them.
        let mut own = Config::default();
        own.remote.add_remote("http://127.0.0.1:1/mine").unwrap();
        assert_eq!(with(&[(REMOTE, "http://127.0.0.1:9/c")], &own).unwrap().config.remote, own.remote);
        // The token serves the opener's remotes too, unless the opener set one.
        let r = with(&[(REMOTE_TOKEN, "tok-1")], &own).unwrap().config.remote;
        assert_eq!(r.token.map(|t| t.0), Some(b"tok-1".to_vec()));
        own.remote.set_token(b"mine").unwrap();
        let r = with(&[(REMOTE_TOKEN, "tok-1")], &own).unwrap().config.remote;
        assert_eq!(r.token.map(|t| t.0), Some(b"mine".to_vec()));
    }

    #[test]
    fn bad_values_name_the_variable_and_never_the_key() {
        for (vars, names) in [
            (vec![(MAX_SIZE, "lots")], MAX_SIZE),
            (vec![(MAX_AGE, "soon")], MAX_AGE),
            (vec![(READ_ONLY, "maybe")], READ_ONLY),
            (vec![(DISABLE, "2")], DISABLE),
            (vec![(LATENCY, "fast")], LATENCY),
            (vec![(MEMORY_BUDGET, "plenty")], MEMORY_BUDGET),
            (vec![(MEMORY_BUDGET, "1M")], MEMORY_BUDGET),
            (vec![(MEMORY_BUDGET, "0")], MEMORY_BUDGET),
            (vec![(REMOTE, "ftp://x")], REMOTE),
            (vec![(REMOTE, "gopher://user:short-secret@127.0.0.1/c")], REMOTE),
            (vec![(REMOTE, "http://127.0.0.1:9/c"), (REMOTE_MODE, "sometimes")], REMOTE_MODE),
            (vec![(REMOTE, "http://127.0.0.1:9/c"), (REMOTE_NAME, "a b/c")], REMOTE_NAME),
            (vec![(REMOTE, "http://127.0.0.1:9/c"), (REMOTE_HMAC_KEY, "short-secret")], REMOTE_HMAC_KEY),
            (vec![(REMOTE, "http://127.0.0.1:9/c"), (REMOTE_HMAC_KEY_FILE, "/nonexistent/key")], REMOTE_HMAC_KEY_FILE),
            (vec![(REMOTE_MODE, "read-only")], REMOTE_MODE),
            (vec![(REMOTE, "http://127.0.0.1:9/c"), (REMOTE_TOKEN, "tok-secret with spaces")], REMOTE_TOKEN),
            (vec![(REMOTE, "https://127.0.0.1:9/c"), (REMOTE_CA_FILE, "/nonexistent/ca.pem")], REMOTE_CA_FILE),
        ] {
            let e = with(&vars, &Config::default()).unwrap_err();
            let m = e.to_string();
            assert!(matches!(e, Error::InvalidArgument(_)) && m.contains(names), "{vars:?}: {m}");
            assert!(!m.contains("short-secret") && !m.contains("tok-secret"), "a secret in an error: {m}");
        }
        // Without remotes, the token and the CA file are not used (nor read).
        assert_eq!(with(&[(REMOTE_TOKEN, "tok-secret"), (REMOTE_CA_FILE, "/nonexistent")], &Config::default()).unwrap().config, Config::default());
        // Empty is unset.
        assert_eq!(with(&[(MAX_SIZE, ""), (REMOTE, " ")], &Config::default()).unwrap().config, Config::default());
    }
}
