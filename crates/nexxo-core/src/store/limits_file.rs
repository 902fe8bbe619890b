//! The limits a cache keeps for itself (`NEXXO_LIMITS` in its directory): the whole
//! cache's bound, the categories' bounds and the age bound. They belong to the cache,
//! not to one process: an open that does not set a limit gets the stored one, so a tool
//! or a command opening the cache with default options never evicts it down to the
//! built-in default. An open that sets limits (a writable one) stores them.
//!
//! Precedence, per limit: set by the opener > the environment (`crate::environment`,
//! never stored) > stored > built-in default. The category bounds are one limit:
//! setting any replaces the stored set.
//!
//! The file is text, versioned, replaced atomically (written aside, synced, renamed):
//! ```text
//! nexxo-cache limits 1
//! max_size 3221225472
//! max_age 604800
//! category transform 1073741824
//! ```
//! A file this build cannot read is left alone and the built-in defaults apply, with
//! one line in the store's LOG.

use std::path::Path;

use crate::config::Config;
use crate::limits::validate_category_name;

/// The file, in the cache directory.
pub const LIMITS_FILE: &str = "NEXXO_LIMITS";
const HEADER: &str = "nexxo-cache limits 1";

/// Limits as stored; `None` for a limit the file does not name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredLimits {
    pub max_size: Option<u64>,
    pub max_age_secs: Option<u64>,
    pub category_max_size: Option<Vec<(String, u64)>>,
}

impl StoredLimits {
    /// The limits `config` says, all of them.
    pub fn of(config: &Config) -> StoredLimits {
        StoredLimits { max_size: Some(config.max_size), max_age_secs: Some(config.max_age_secs), category_max_size: Some(config.category_max_size.clone()) }
    }

    fn encode(&self) -> String {
        let mut s = format!("{HEADER}\n");
        if let Some(v) = self.max_size {
            s += &format!("max_size {v}\n");
        }
        if let Some(v) = self.max_age_secs {
            s += &format!("max_age {v}\n");
        }
        if let Some(list) = &self.category_max_size {
            s += "categories\n"; // the set is stored, even when empty
            for (name, bytes) in list {
                s += &format!("category {name} {bytes}\n");
            }
        }
        s
    }

    fn decode(text: &str) -> Result<StoredLimits, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("its first line is not {HEADER:?}"));
        }
        let mut l = StoredLimits::default();
        for line in lines {
            let words: Vec<&str> = line.split(' ').collect();
            let number = |w: &str| w.parse::<u64>().map_err(|_| format!("{line:?}: {w:?} is not a number"));
            match words.as_slice() {
                ["max_size", v] => l.max_size = Some(number(v)?),
                ["max_age", v] => l.max_age_secs = Some(number(v)?),
                ["categories"] => l.category_max_size = Some(l.category_max_size.take().unwrap_or_default()),
                ["category", name, v] if validate_category_name(name.as_bytes()).is_ok() => {
                    l.category_max_size.get_or_insert_with(Vec::new).push(((*name).to_owned(), number(v)?));
                }
                [""] => {}
                _ => return Err(format!("{line:?} is not a limit")),
            }
        }
        Ok(l)
    }
}

/// The limits stored in the cache at `dir`: `Ok(None)` when it stores none, `Err` (why)
/// when the file cannot be read as limits.
pub fn read_stored(dir: &Path) -> Result<Option<StoredLimits>, String> {
    match std::fs::read(dir.join(LIMITS_FILE)) {
        Ok(bytes) => StoredLimits::decode(&String::from_utf8_lossy(&bytes)).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Replaces the stored limits, atomically.
pub fn write_stored(dir: &Path, limits: &StoredLimits) -> std::io::Result<()> {
    super::dir::replace_file(dir, LIMITS_FILE, limits.encode().as_bytes(), true)
}

/// `config` with the limits it does not set taken from the cache's stored ones (and
/// `from_stored` saying which), and the stored limits as read. Reads only.
pub fn effective(dir: &Path, config: &Config) -> (Config, Option<StoredLimits>) {
    let stored = match read_stored(dir) {
        Ok(s) => s,
        Err(why) => {
            super::options::log_warning(dir, &format!("{LIMITS_FILE} was not read ({why}); the built-in default limits apply"));
            None
        }
    };
    let mut c = config.clone();
    let s = stored.clone().unwrap_or_default();
    let (set, env) = (c.explicit, c.from_environment);
    c.from_stored = Default::default();
    if !set.max_size && !env.max_size {
        if let Some(v) = s.max_size {
            c.max_size = v;
            c.from_stored.max_size = true;
        }
    }
    if !set.max_age && !env.max_age {
        if let Some(v) = s.max_age_secs {
            c.max_age_secs = v;
            c.from_stored.max_age = true;
        }
    }
    if !set.category_max_size && !env.category_max_size {
        if let Some(list) = s.category_max_size {
            c.category_max_size = list;
            c.from_stored.category_max_size = true;
        }
    }
    (c, stored)
}

/// [`effective`], and a writable open that sets limits stores the result (best effort:
/// a failure to store leaves the open working, with one line in the LOG).
pub(crate) fn resolve(dir: &Path, config: &Config) -> Config {
    let (c, stored) = effective(dir, config);
    let s = stored.clone().unwrap_or_default();
    let set = c.explicit;
    if !c.read_only && (set.max_size || set.max_age || set.category_max_size) {
        // What the opener set replaces the stored limit; the rest (from the environment,
        // or not set) stays as stored, or unstored.
        let now = StoredLimits {
            max_size: if set.max_size { Some(c.max_size) } else { s.max_size },
            max_age_secs: if set.max_age { Some(c.max_age_secs) } else { s.max_age_secs },
            category_max_size: if set.category_max_size { Some(c.category_max_size.clone()) } else { s.category_max_size },
        };
        if stored.as_ref() != Some(&now) {
            if let Err(err) = write_stored(dir, &now) {
                super::options::log_warning(dir, &format!("the limits this open set were not stored in {LIMITS_FILE}: {err}"));
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let l = StoredLimits { max_size: Some(3 << 30), max_age_secs: Some(0), category_max_size: Some(vec![("transform".into(), 1 << 30), ("x-y".into(), 5)]) };
        assert_eq!(StoredLimits::decode(&l.encode()), Ok(l));
        let empty = StoredLimits { category_max_size: Some(Vec::new()), ..Default::default() };
        assert_eq!(StoredLimits::decode(&empty.encode()), Ok(empty));
        assert_eq!(StoredLimits::decode(&format!("{HEADER}\n")), Ok(StoredLimits::default()));
    }

    #[test]
    fn malformed_files_are_refused() {
        for bad in ["", "nexxo-cache limits 2\n", "garbage", &format!("{HEADER}\nmax_size ten\n"), &format!("{HEADER}\nmax_size\n"), &format!("{HEADER}\nfrobnicate 1\n"), &format!("{HEADER}\ncategory bad/name 1\n")] {
            assert!(StoredLimits::decode(bad).is_err(), "{bad:?}");
        }
    }
}
