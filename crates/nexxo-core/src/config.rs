//! Options for opening a cache: a plain builder that validates each value as it is set.

use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::limits::{validate_category_name, MAX_CATEGORIES};
use crate::remote::RemoteConfig;

pub use crate::limits::MAX_CATEGORY_NAME_LEN;

/// The categories every cache has, in this order.
pub const BUILTIN_CATEGORIES: [&str; 5] = ["parse", "transform", "bundle", "optimize", "meta"];
/// Default bound on the whole cache's stored bytes: 2 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 2 << 30;
/// Default memory budget for RocksDB's block cache and write buffers: 64 MiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 64 << 20;
/// Smallest memory budget accepted: 4 MiB.
pub const MIN_MEMORY_BUDGET: u64 = 4 << 20;
/// Permissions of the directories a cache creates: the owner only.
pub const DEFAULT_DIR_MODE: u32 = 0o700;

/// How to open a cache. `Config::default()` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bound on stored bytes of the whole cache; 0 means unbounded.
    pub max_size: u64,
    /// Per-category bounds on stored bytes, for categories that have one.
    pub category_max_size: Vec<(String, u64)>,
    /// Entries unused for longer than this many seconds are evicted; 0 means never.
    pub max_age_secs: u64,
    /// Categories beyond the built-in ones.
    pub extra_categories: Vec<String>,
    pub compression: Compression,
    /// fsync the write-ahead log on every write.
    pub sync_writes: bool,
    pub read_only: bool,
    /// Give a disabled cache instead of an error when the store cannot be opened.
    pub fallback_disabled: bool,
    /// Bytes for the warm table, RocksDB's write buffers and its block cache together
    /// (5/8, 1/4 and 1/8 of it).
    pub memory_budget: u64,
    /// The opener set [`Config::memory_budget`] ([`Config::set_memory_budget`]):
    /// `NEXXO_CACHE_MEMORY_BUDGET` does not replace it.
    pub explicit_memory_budget: bool,
    /// Permissions of directories the cache creates; also the most an existing cache
    /// directory may grant (write bits beyond these make it untrusted). Default 0o700.
    pub dir_mode: u32,
    /// Open an untrusted cache directory (see [`crate::Error::Insecure`]) read-only
    /// instead of refusing it.
    pub allow_untrusted_dir: bool,
    /// Remote cache servers behind the local store (see [`crate::remote`]).
    pub remote: RemoteConfig,
    /// Which limits were set (by the setters below) rather than left to the cache's
    /// stored ones: a writable open stores what was set, and takes the rest from the
    /// cache (see `store/limits_file.rs`).
    pub explicit: ExplicitLimits,
    /// Which limits came from the environment (see [`crate::environment`]): they come
    /// before the stored ones and are not stored.
    pub from_environment: ExplicitLimits,
    /// Which limits an open took from the cache's stored ones (set when the store is
    /// opened; see [`Config::limits_json`]).
    pub from_stored: ExplicitLimits,
    /// Leave the `NEXXO_CACHE_*` environment variables out of this open.
    pub ignore_environment: bool,
    /// Record latency histograms (see [`crate::latency`]); on by default.
    pub latency: bool,
}

/// Which of a [`Config`]'s limits the opener set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExplicitLimits {
    pub max_size: bool,
    pub max_age: bool,
    /// The category bounds, as one set.
    pub category_max_size: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_size: DEFAULT_MAX_SIZE,
            category_max_size: Vec::new(),
            max_age_secs: 0,
            extra_categories: Vec::new(),
            compression: Compression::Lz4,
            sync_writes: false,
            read_only: false,
            fallback_disabled: false,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            explicit_memory_budget: false,
            dir_mode: DEFAULT_DIR_MODE,
            allow_untrusted_dir: false,
            remote: RemoteConfig::default(),
            explicit: ExplicitLimits::default(),
            from_environment: ExplicitLimits::default(),
            from_stored: ExplicitLimits::default(),
            ignore_environment: false,
            latency: true,
        }
    }
}


impl ExplicitLimits {
    fn source(set: bool, env: bool, stored: bool) -> &'static str {
        match (set, env, stored) {
            (true, _, _) => "option",
            (_, true, _) => "environment",
            (_, _, true) => "stored",
            _ => "default",
        }
    }
}

impl Config {
    /// The limits as a JSON object, each with where it came from (`option`,
    /// `environment`, `stored` or `default`: the precedence of the README's table):
    /// `{"max_size":N,"max_age_secs":N,"category_max_size":{"name":N},
    /// "source":{"max_size":"stored","max_age":"default","category_max_size":"default"}}`.
    pub fn limits_json(&self) -> String {
        let [size_source, age_source, category_source] = self.limit_sources();
        let cats: Vec<String> = self.category_max_size.iter().map(|(n, b)| format!("{}:{b}", crate::json::json_string(n))).collect();
        format!(
            "{{\"max_size\":{},\"max_age_secs\":{},\"category_max_size\":{{{}}},\"source\":{{\"max_size\":\"{}\",\"max_age\":\"{}\",\"category_max_size\":\"{}\"}}}}",
            self.max_size,
            self.max_age_secs,
            cats.join(","),
            size_source,
            age_source,
            category_source,
        )
    }

    /// Where the max size, the max age and the category limits came from: `option`,
    /// `environment`, `stored` or `default`.
    pub fn limit_sources(&self) -> [&'static str; 3] {
        let (set, env, stored) = (self.explicit, self.from_environment, self.from_stored);
        [
            ExplicitLimits::source(set.max_size, env.max_size, stored.max_size),
            ExplicitLimits::source(set.max_age, env.max_age, stored.max_age),
            ExplicitLimits::source(set.category_max_size, env.category_max_size, stored.category_max_size),
        ]
    }

    /// Every category this configuration names: the built-in ones, then the added ones.
    pub fn categories(&self) -> impl Iterator<Item = &str> {
        BUILTIN_CATEGORIES.iter().copied().chain(self.extra_categories.iter().map(String::as_str))
    }

    fn has_category(&self, name: &str) -> bool {
        self.categories().any(|c| c == name)
    }

    /// `name` as a category these options have, else `Error::UnknownCategory`.
    fn known_category<'a>(&self, name: &'a [u8]) -> Result<&'a str> {
        let name = validate_category_name(name).map_err(|_| Error::UnknownCategory(String::from_utf8_lossy(name).into_owned()))?;
        if !self.has_category(name) {
            return Err(Error::UnknownCategory(name.to_owned()));
        }
        Ok(name)
    }

    /// Adds a category. Adding one that exists already is a no-op.
    pub fn add_category(&mut self, name: &[u8]) -> Result<()> {
        let name = validate_category_name(name)?;
        if self.has_category(name) {
            return Ok(());
        }
        if BUILTIN_CATEGORIES.len() + self.extra_categories.len() >= MAX_CATEGORIES {
            return Err(Error::InvalidArgument(format!("a cache has at most {MAX_CATEGORIES} categories")));
        }
        self.extra_categories.push(name.to_owned());
        Ok(())
    }

    /// Bounds the whole cache's stored bytes (0: unbounded). Stored in the cache by a
    /// writable open; an open that does not set it uses the stored one.
    pub fn set_max_size(&mut self, bytes: u64) {
        self.max_size = bytes;
        self.explicit.max_size = true;
    }

    /// Evicts entries unused for longer than `secs` (0: never). Stored as
    /// [`Config::set_max_size`] is.
    pub fn set_max_age(&mut self, secs: u64) {
        self.max_age_secs = secs;
        self.explicit.max_age = true;
    }

    /// Bounds one category's stored bytes (0 removes the bound). The category must be
    /// built in or added before. The categories' bounds are stored as one set: setting
    /// any replaces the set the cache stored.
    pub fn set_category_max_size(&mut self, name: &[u8], bytes: u64) -> Result<()> {
        let name = self.known_category(name)?;
        self.category_max_size.retain(|(n, _)| n != name);
        if bytes > 0 {
            self.category_max_size.push((name.to_owned(), bytes));
        }
        self.explicit.category_max_size = true;
        Ok(())
    }

    /// Keeps a category off the remotes (or lets it back on). The category must be
    /// built in or added before.
    pub fn set_remote_local_only(&mut self, name: &[u8], local_only: bool) -> Result<()> {
        let name = self.known_category(name)?;
        self.remote.set_local_only(name, local_only);
        Ok(())
    }

    /// The bound of one category, 0 when it has none.
    pub fn category_limit(&self, name: &str) -> u64 {
        self.category_max_size.iter().find(|(n, _)| n == name).map_or(0, |(_, b)| *b)
    }

    /// Sets the directory mode: at most 0o777, and the owner keeps read, write, search.
    pub fn set_dir_mode(&mut self, mode: u32) -> Result<()> {
        if mode > 0o777 || mode & 0o700 != 0o700 {
            return Err(Error::InvalidArgument(format!("directory mode {mode:#o} must be within 0o777 and include 0o700")));
        }
        self.dir_mode = mode;
        Ok(())
    }

    pub fn set_memory_budget(&mut self, bytes: u64) -> Result<()> {
        self.memory_budget = check_memory_budget(bytes).map_err(Error::InvalidArgument)?;
        self.explicit_memory_budget = true;
        Ok(())
    }
}

/// `bytes` as a memory budget: at least [`MIN_MEMORY_BUDGET`]. The option and
/// `NEXXO_CACHE_MEMORY_BUDGET` (see [`crate::environment`]) check it alike.
pub(crate) fn check_memory_budget(bytes: u64) -> std::result::Result<u64, String> {
    if bytes < MIN_MEMORY_BUDGET {
        return Err(format!("memory budget {bytes} is below the minimum of {MIN_MEMORY_BUDGET} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names() {
        assert!(validate_category_name(b"lint-results_2").is_ok());
        for bad in [&b""[..], b"Upper", b"a b", b"a/b", b"\xff", &[b'a'; 33]] {
            assert!(matches!(validate_category_name(bad), Err(Error::InvalidArgument(_))), "{bad:?}");
        }
    }

    #[test]
    fn add_category_is_idempotent() {
        let mut c = Config::default();
        c.add_category(b"lint").unwrap();
        c.add_category(b"lint").unwrap();
        c.add_category(b"parse").unwrap();
        assert_eq!(c.categories().collect::<Vec<_>>(), ["parse", "transform", "bundle", "optimize", "meta", "lint"]);
    }

    #[test]
    fn category_limits_need_a_known_category() {
        let mut c = Config::default();
        assert_eq!(c.set_category_max_size(b"lint", 10), Err(Error::UnknownCategory("lint".into())));
        c.add_category(b"lint").unwrap();
        c.set_category_max_size(b"lint", 10).unwrap();
        c.set_category_max_size(b"lint", 20).unwrap();
        assert_eq!(c.category_limit("lint"), 20);
        c.set_category_max_size(b"lint", 0).unwrap();
        assert_eq!(c.category_limit("lint"), 0);
    }

    #[test]
    fn too_many_categories() {
        let mut c = Config::default();
        for i in 0..(MAX_CATEGORIES - BUILTIN_CATEGORIES.len()) {
            c.add_category(format!("c{i}").as_bytes()).unwrap();
        }
        assert!(matches!(c.add_category(b"one-more"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn memory_budget_has_a_floor() {
        let mut c = Config::default();
        assert!(c.set_memory_budget(1024).is_err());
        c.set_memory_budget(MIN_MEMORY_BUDGET).unwrap();
    }
}
