//! Opening a store: judging the directory, opening RocksDB (writable, read-only or as a
//! follower of another process's store), and recovering a damaged one.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use rocksdb::{Cache as BlockCache, ColumnFamilyDescriptor, ReadOptions, WriteBatch, WriteOptions};

use super::dir::{aside_path, create_dir, damage_before_open, distrust, read_dir_state, store_files, write_format_file, DirState, FORMAT_FILE, REPAIR_MARKER, STORE_FORMAT};
use super::limits_file;
use super::layout::{counters_key, encode_size, entry_size, lru_key, CATEGORY_CF_PREFIX, LRU_CF, META_CF};
use super::options::{category_cf_options, db_options, log_warning, small_cf_options, warn_logger};
use super::salvage::{Salvage, SALVAGE_DIR};
use super::recency::{Generations, Signal, TouchQueue};
use super::space::SpaceGuard;
use super::warm::WarmTable;
use super::{Category, Db, Store, WriteState};
use crate::clock::Clock;
use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::limits::validate_category_name;
use crate::stats::Counters;

/// What RocksDB is given as a follower's secondary path. RocksDB writes there only its
/// info log, when it is given no logger (a follower is always given `warn_logger`), and the
/// files of remote compactions (never run here): so the path is never made, a name in the
/// cache directory that no file has. Until 1.10.9 each follower made a directory of its own
/// for it in the system's temporary directory (`nexxo-follower-PID-N`, empty), which a
/// process that ended without closing its handle (killed, or Node's `process.exit`) left
/// behind.
const SECONDARY_PATH: &str = "NEXXO_SECONDARY_UNUSED";

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, config: &Config, clock: Clock) -> Result<Store> {
        let mut store = Self::open_unmarked(path, config, clock)?;
        // The store that takes the writes has the table that answers for it, from the
        // start when it is empty (after a salvage, whose writes bypass the table, it is not).
        if !store.read_only {
            let empty = store.lock_state().counters.iter().all(|c| c.entries == 0);
            store.warm.make_authoritative(empty);
        }
        Ok(store)
    }

    fn open_unmarked(path: &Path, config: &Config, clock: Clock) -> Result<Store> {
        if path.as_os_str().is_empty() {
            return Err(Error::InvalidArgument("the cache path is empty".into()));
        }
        let state = read_dir_state(path)?;
        let mut config = std::borrow::Cow::Borrowed(config);
        if let Some(why) = distrust(path, config.dir_mode) {
            if !config.allow_untrusted_dir {
                return Err(Error::Insecure(format!("{why}; refusing to use it as a cache (allow untrusted directories to open it read-only)")));
            }
            config.to_mut().read_only = true;
        }
        let config = &*config;
        if let DirState::Older(v) = state {
            if config.read_only {
                return Err(Error::Incompatible(format!(
                    "{} holds on-disk format {v} of an earlier nexxo-cache; a writable open replaces it with an empty cache of format {STORE_FORMAT}",
                    path.display()
                )));
            }
            // A cache, not a store of record: the old tables are dropped (RocksDB's destroy
            // takes the directory's lock first, so a live 1.0 writer is never pulled from
            // under), and an empty cache of this format starts in the same place.
            Db::destroy(&db_options(config), path).map_err(|e| match Error::from(e) {
                Error::Io(m) if m.contains("lock") || m.contains("LOCK") => Error::Locked(m),
                other => other,
            })?;
            let _ = std::fs::remove_dir_all(path.join("lost"));
            write_format_file(path)?;
        }
        if matches!(state, DirState::New) {
            if config.read_only {
                return Err(Error::Io(format!("{}: no cache to open read-only", path.display())));
            }
            create_dir(path, config.dir_mode)?;
            write_format_file(path)?;
        }
        // The limits the opener did not set come from the cache (see limits_file.rs).
        let config = &limits_file::resolve(path, config);
        if matches!(state, DirState::DamagedMarker) {
            if config.read_only {
                return Err(Error::Incompatible(format!("{} has a damaged {FORMAT_FILE} file; a writable open rewrites it", path.display())));
            }
            write_format_file(path)?;
        }
        if !config.read_only {
            let damage = if path.join(REPAIR_MARKER).exists() { Some("a read found a damaged table".to_owned()) } else { damage_before_open(path) };
            if let Some(why) = damage {
                return Self::recover(path, config, clock, why);
            }
        }
        match Self::open_db(path, config, clock.clone()) {
            Err(Error::Corruption(msg)) if !config.read_only => Self::recover(path, config, clock, msg),
            // A file the MANIFEST names is gone (a table, a blob file), or the MANIFEST
            // CURRENT names: damage as well.
            Err(Error::Io(msg)) if !config.read_only && msg.contains("No such file") && ["MANIFEST", ".sst", ".blob"].iter().any(|f| msg.contains(f)) => {
                Self::recover(path, config, clock, msg)
            }
            other => other,
        }
    }

    /// Opens a reader that follows the store another process writes (a RocksDB secondary
    /// instance): reads go straight to the tables and what it has replayed of the
    /// write-ahead log; [`Store::catch_up`] replays what was written since. It never
    /// writes (a read-only handle) and makes no file.
    pub fn open_follower(path: &Path, config: &Config, clock: Clock) -> Result<Store> {
        let config = Config { read_only: true, ..config.clone() };
        Self::open_db_as(path, &config, clock, true)
    }

    /// Makes this read-only instance the stand-in for the writable store until that opens
    /// (see `share/backing.rs`): its reads queue promotions, and it keeps a warm table
    /// (no process writes the store while it stands in, so the table cannot go stale).
    pub(crate) fn make_interim(&mut self) {
        self.interim = true;
        self.warm = WarmTable::new(self.cats.len(), warm_budget(&self.config));
    }

    /// Replays what the writing process wrote since the last catch-up (a follower only);
    /// with `replaced` (the writer replaced or removed entries since the last one), the
    /// warm table is emptied after it, so no frame read before is served again.
    pub fn catch_up(&self, replaced: bool) -> Result<()> {
        self.db.try_catch_up_with_primary()?;
        if replaced {
            self.warm.clear();
        }
        Ok(())
    }

    /// Salvages a damaged store (see `salvage.rs`): its files are moved into
    /// `salvage/` inside the cache directory, every entry whose bytes are intact is
    /// written to a new store in their place, counters and the recency index are
    /// rebuilt, and the old files are deleted; when they yielded no entry at all they are
    /// moved aside to `<path>.corrupt-<time>` instead. One line in the store's LOG says
    /// what happened; the stats say `recovered`.
    pub(super) fn recover(path: &Path, config: &Config, clock: Clock, why: String) -> Result<Store> {
        let work = path.join(SALVAGE_DIR);
        let io = |e: std::io::Error| Error::Corruption(format!("{why}; salvaging {}: {e}", path.display()));
        if work.is_dir() {
            // A salvage stopped half-way: what is here is its partial new store.
            for name in store_files(path).map_err(io)? {
                let p = path.join(&name);
                let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
            }
        } else {
            create_dir(&work, 0o700)?;
            for name in store_files(path).map_err(io)? {
                std::fs::rename(path.join(&name), work.join(&name)).map_err(io)?;
            }
            sync_dir(path);
        }
        // The categories to look for: the configured ones and those the old store had.
        let mut config = config.clone();
        for name in categories_in_options(&work) {
            if !config.categories().any(|c| c == name) {
                let _ = config.add_category(name.as_bytes());
            }
        }
        // A store that used tags is not salvaged: its tag records cannot be read back
        // with the entries, and an entry whose tags were lost could never be
        // invalidated (see tags.rs). Its files are moved aside below.
        let tagged = path.join(super::tags::TAGGED_FILE).exists();
        let salvage = if tagged { Salvage::default() } else { Salvage::read(&work, config.categories().map(str::to_owned).collect()).map_err(io)? };
        let mut s = Self::open_db(path, &config, clock.clone())?;
        let kept = s.store_salvaged(&salvage)?;
        s.recovered = true;
        let r = &salvage.report;
        let aside = if tagged || (kept == 0 && r.files > 0) {
            let aside = aside_path(path, clock());
            std::fs::rename(&work, &aside).map_err(io)?;
            match tagged {
                true => format!("; the cache used tags, so nothing was kept: the old files are in {}", aside.display()),
                false => format!("; nothing could be read: the old files are in {}", aside.display()),
            }
        } else {
            std::fs::remove_dir_all(&work).map_err(io)?;
            String::new()
        };
        let _ = std::fs::remove_file(path.join(REPAIR_MARKER));
        // Only now (an interrupted salvage of a tagged store must empty it again).
        if tagged {
            let _ = std::fs::remove_file(path.join(super::tags::TAGGED_FILE));
        }
        log_warning(path, &format!(
            "salvaged the store ({why}): {kept} entries kept from {} files, {} bytes in damaged stretches{aside}",
            r.files, r.unreadable_bytes
        ));
        Ok(s)
    }

    /// Writes the salvaged entries into this (new) store: each frame under the current
    /// generation with its recency-index record, in batches of about 4 MiB, then every
    /// category's counters (one pass, where a write and a rebuild of the derived state
    /// wrote everything twice and held a whole category in one batch: measured on
    /// 1,000,000 entries, 42 s and 1 GiB). Returns how many were written. Not atomic, and
    /// need not be: until the salvage's work directory is removed, the next open starts
    /// the salvage over.
    fn store_salvaged(&self, salvage: &Salvage) -> Result<u64> {
        let lru = self.cf(LRU_CF);
        let mut st = self.lock_state();
        let gen = st.gens.current;
        let mut counters: Vec<Counters> = st.counters.iter().map(Counters::emptied).collect();
        let mut batch = WriteBatch::default();
        let (mut n, mut pending) = (0u64, 0usize);
        for (cat, key, mut frame) in salvage.entries() {
            let Ok(ci) = self.category_index(cat.as_bytes()) else { continue };
            codec::set_generation(&mut frame, gen);
            let size = entry_size(key, &frame);
            counters[ci].add(size);
            batch.put_cf(self.cf(&self.cats[ci].cf_name), key, &frame);
            batch.put_cf(lru, lru_key(&self.cats[ci].name, gen, key), encode_size(size));
            n += 1;
            pending += key.len() * 2 + frame.len() + 32;
            if pending >= 4 << 20 {
                self.db.write_opt(std::mem::take(&mut batch), &self.write_opts)?;
                pending = 0;
            }
        }
        for (c, k) in self.cats.iter().zip(&counters) {
            batch.put_cf(self.cf(META_CF), counters_key(&c.name), k.encode());
        }
        self.db.write_opt(batch, &self.write_opts)?;
        st.counters = counters;
        Ok(n)
    }

    pub(super) fn open_db(path: &Path, config: &Config, clock: Clock) -> Result<Store> {
        Self::open_db_as(path, config, clock, false)
    }

    /// Opens RocksDB: read-write, read-only (`config.read_only`), or as a follower of
    /// another process's store (`follower`, with `config.read_only`).
    pub(super) fn open_db_as(path: &Path, config: &Config, clock: Clock, follower: bool) -> Result<Store> {
        let budget = config.memory_budget as usize;
        // The budget: write buffers 1/4, the block cache (only the recency index and the
        // counters use it: category tables are memory-mapped) 1/8, the warm table 5/8.
        let cache = BlockCache::new_lru_cache(budget / 8);
        let mut opts = db_options(config);
        // A read-only instance (not a follower) runs without a logger: RocksDB then logs
        // nothing, where the callback logger formatted the ~1,100 header lines of every
        // open (its options, per column family) only for the callback to drop them.
        if !config.read_only || follower {
            opts.set_info_logger(warn_logger(path));
        }

        // Categories: the configured ones, then any the store already has.
        let mut names: Vec<String> = config.categories().map(str::to_owned).collect();
        let add_existing = |names: &mut Vec<String>, existing: &[String]| {
            for cf in existing {
                if let Some(name) = cf.strip_prefix(CATEGORY_CF_PREFIX) {
                    if validate_category_name(name.as_bytes()).is_ok() && !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
            }
        };
        let descriptors = |names: &[String]| {
            let mut d = vec![
                ColumnFamilyDescriptor::new(META_CF, small_cf_options(config, &cache)),
                ColumnFamilyDescriptor::new(LRU_CF, small_cf_options(config, &cache)),
            ];
            for n in names {
                d.push(ColumnFamilyDescriptor::new(format!("{CATEGORY_CF_PREFIX}{n}"), category_cf_options(config)));
            }
            d
        };
        // Only a store that exists is asked for its column families: on a missing store
        // rust-rocksdb 0.25's list_cf leaks the array RocksDB returns with the error.
        let exists = path.join("CURRENT").exists();
        let db = if config.read_only {
            let existing = if exists { Db::list_cf(&opts, path)? } else { Vec::new() };
            add_existing(&mut names, &existing);
            // A category configured now but never created cannot be opened read-only.
            names.retain(|n| existing.iter().any(|e| *e == format!("{CATEGORY_CF_PREFIX}{n}")));
            let mut d = descriptors(&names);
            d.retain(|d| existing.iter().any(|e| e == d.name()));
            if follower {
                Db::open_cf_descriptors_as_secondary(&opts, path, &path.join(SECONDARY_PATH), d)?
            } else {
                Db::open_cf_descriptors_read_only(&opts, path, d, false)?
            }
        } else {
            // A writable open names the configured categories (missing ones are created);
            // only a store holding others is asked for its list (which reads the MANIFEST
            // a second time) and opened again with them.
            match Db::open_cf_descriptors(&opts, path, descriptors(&names)) {
                Err(e) if exists && e.kind() == rocksdb::ErrorKind::InvalidArgument && e.as_ref().contains("Column families not opened") => {
                    add_existing(&mut names, &Db::list_cf(&opts, path)?);
                    Db::open_cf_descriptors(&opts, path, descriptors(&names))?
                }
                other => other?,
            }
        };

        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(config.sync_writes);
        let read_opts = ReadOptions::default();

        let cats: Vec<Category> = names
            .into_iter()
            .map(|name| Category {
                cf_name: format!("{CATEGORY_CF_PREFIX}{name}"),
                limit: config.category_limit(&name),
                name,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                deletes: AtomicU64::new(0),
            })
            .collect();

        let Some(meta) = db.cf_handle(META_CF).filter(|_| db.cf_handle(LRU_CF).is_some()) else {
            return Err(Error::Incompatible(format!("{} lacks nexxo-cache's internal column families", path.display())));
        };
        let mut counters = Vec::with_capacity(cats.len());
        for c in &cats {
            let value = db.get_pinned_cf(meta, counters_key(&c.name))?;
            counters.push(value.and_then(|v| Counters::decode(&v)).unwrap_or_default());
        }
        let gens = Generations::load(&db, meta, config, clock())?;
        let touches = TouchQueue::default();

        let cats_len = cats.len();
        let store = Store {
            db,
            path: path.to_owned(),
            cats,
            state: Mutex::new(WriteState { evict_floor: vec![0; counters.len()], counters, gens, space: SpaceGuard::default() }),
            config: config.clone(),
            read_only: config.read_only,
            recovered: false,
            clock,
            touches,
            signal: Signal::default(),
            corrupt_seen: AtomicU64::new(0),
            damaged: AtomicBool::new(false),
            write_opts,
            read_opts,
            closed_cleanly: AtomicBool::new(false),
            tagged: AtomicBool::new(path.join(super::tags::TAGGED_FILE).exists()),
            interim: false,
            _writable: (!config.read_only).then(|| super::dir::WritableMark::new(path)),
            on_write: std::sync::OnceLock::new(),
            // A store that takes writes keeps one; a follower too, emptied whenever it
            // catches up with a writer that replaced or removed entries (see
            // `share/follower.rs`), with what a client keeps of its own writes taken out of
            // its share; a read-only handle none (it would need the writer's overwrites).
            warm: WarmTable::new(
                cats_len,
                if follower {
                    warm_budget(config).saturating_sub(config.memory_budget as usize / 4)
                } else if config.read_only {
                    0
                } else {
                    warm_budget(config)
                },
            ),
        };
        store.publish_generation(store.lock_state().gens.current);
        Ok(store)
    }
}

/// The warm table's share of the memory budget (see `open_db_as`).
fn warm_budget(config: &Config) -> usize {
    let budget = config.memory_budget as usize;
    budget - budget / 4 - budget / 8
}

/// The categories a store had, from its OPTIONS files (`[CFOptions "c.<name>"]`).
fn categories_in_options(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !e.file_name().to_string_lossy().starts_with("OPTIONS-") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("[CFOptions \"").and_then(|r| r.strip_suffix("\"]")) else { continue };
            if let Some(name) = rest.strip_prefix(CATEGORY_CF_PREFIX) {
                if validate_category_name(name.as_bytes()).is_ok() && !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names
}

/// Makes renames in `dir` durable (best effort).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
