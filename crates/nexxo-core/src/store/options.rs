//! RocksDB's tuning for a build cache, and its logger.

use std::path::Path;
use std::sync::Mutex;

use rocksdb::{BlockBasedOptions, Cache as BlockCache, Options};

use crate::config::Config;

/// Values from this size on go to blob files, out of the way of small values' SSTs.
pub(super) const MIN_BLOB_SIZE: u64 = 64 << 10;

/// RocksDB's log, kept to what someone debugging a store needs: warnings and errors,
/// appended to `<store>/LOG` (created at the first one, moved to `LOG.old` past 1 MiB
/// when a process first writes to it). RocksDB's own file logger writes ~1000 lines
/// (its options, file summary) at every open: measured, that was about a fifth of an
/// open's time.
pub(super) fn warn_logger(path: &Path) -> rocksdb::InfoLogger {
    let log_path = path.join("LOG");
    let file: Mutex<Option<std::fs::File>> = Mutex::new(None);
    rocksdb::InfoLogger::new_callback_logger(rocksdb::LogLevel::Warn, move |level, msg| {
        if !matches!(level, rocksdb::LogLevel::Warn | rocksdb::LogLevel::Error | rocksdb::LogLevel::Fatal) {
            return;
        }
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > 1 << 20) {
                let _ = std::fs::rename(&log_path, log_path.with_file_name("LOG.old"));
            }
            *f = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).ok();
        }
        if let Some(f) = f.as_mut() {
            log_line(f, &format!("{level:?}"), msg);
        }
    })
}

/// Appends one warning to the store's LOG, as [`warn_logger`] writes RocksDB's.
pub(super) fn log_warning(path: &Path, msg: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path.join("LOG")) {
        log_line(&mut f, "Warn", msg);
    }
}

/// One LOG line: unix seconds, level, message.
fn log_line(f: &mut std::fs::File, level: &str, msg: &str) {
    use std::io::Write;
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let _ = writeln!(f, "{secs} {level} {}", msg.trim_end());
}

pub(super) fn db_options(config: &Config) -> Options {
    let budget = config.memory_budget as usize;
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(2);
    // A close (and `compact`) flushes every column family: with atomic flush that is one
    // job, one MANIFEST write and one directory sync instead of one per column family.
    // The close of a process that opened a 100,000-entry cache, set one entry and closed
    // (C, 12 runs of each library, twice, alternating): median 7.6 and 8.4 ms before, 5.0
    // and 5.3 after (README, "One short process per compile"). Automatic flushes (a full
    // write buffer) also take the small column families along.
    o.set_atomic_flush(true);
    // Write buffers take a quarter of the budget (see `open_db_as` for the rest).
    o.set_db_write_buffer_size(budget / 4);
    o.set_max_total_wal_size((budget / 2) as u64);
    o.set_keep_log_file_num(2);
    o.set_max_log_file_size(1 << 20);
    o.set_log_level(rocksdb::LogLevel::Warn);
    o.set_skip_stats_update_on_db_open(true);
    o.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
    // Disk that a live cache holds but does not use: RocksDB preallocates the log in
    // blocks of 1.1x the largest write buffer, and the unused `default` column family
    // would otherwise have the 64 MiB default; the MANIFEST grows slowly.
    o.set_write_buffer_size(1 << 20);
    o.set_manifest_preallocation_size(64 << 10);
    // PlainTable (the categories' tables) reads only through a memory map.
    o.set_allow_mmap_reads(true);
    // Open loads every table: by default with up to 16 threads per column family, which
    // here meant ~120 thread creations per open for a handful of files.
    o.set_max_file_opening_threads(1);
    // In a child made by fork() after RocksDB was used, pools of its own (see fork.rs).
    if let Some(env) = super::fork::env() {
        o.set_env(&env);
    }
    o
}

/// Category tables: PlainTable, read through the memory map, with a hash index and a
/// bloom filter over whole keys (the no-op prefix extractor makes the whole key the
/// prefix). Point lookups are what a build cache does; measured on 100,000 x 1 KiB
/// artifacts (scripts/bench.sh, README "Measured"), they run 1.3-2x faster than on the
/// tuned block-based tables of format 1, and a new process reads 2x faster. Values carry
/// their own checksums (the frame), so the tables' lack of block checksums loses nothing
/// a reader relies on: a damaged value is a miss. PlainTable has no DeleteRange:
/// `clear` deletes key by key.
///
/// The hash index has 4 buckets per key (ratio 0.25, RocksDB's default 0.75): at 0.75 about
/// half the keys share their bucket with another, and a bucket of several keys is a binary
/// search over them, each step a read of a key somewhere in the memory-mapped table (a
/// cache miss); at 0.25 about 1 key in 5 does, for 16 bytes of index per key instead of 5.3
/// (1 KiB JS artifacts are stored in ~270 bytes each: 3.5% more disk in the benchmark
/// suite). The bloom filter's probes of a key fall in one cache line (`bloom_locality` 1)
/// instead of 6 lines. A new process reading every entry in random order (`bench_worker_c
/// cold-open`, each library reading a store it wrote, alternating runs, session 18):
/// 1,000,000 entries, medians of 4 runs, 2.84 and 3.31 us a get before, 2.33 and 2.64 after
/// (two sets); 100,000 entries, 5 runs, 1.60 (1.32-1.93) before, 1.32 (1.10-1.58) after.
/// Writes measured no different. Tables written before keep their layout (both are read)
/// until compaction rewrites them.
pub(super) fn category_cf_options(config: &Config) -> Options {
    let budget = config.memory_budget as usize;
    let legacy = LEGACY_TABLES.load(std::sync::atomic::Ordering::Relaxed);
    let mut o = Options::default();
    o.set_plain_table_factory(&rocksdb::PlainTableFactoryOptions {
        user_key_length: 0,
        bloom_bits_per_key: 10,
        hash_table_ratio: if legacy { 0.75 } else { 0.25 },
        index_sparseness: 16,
        huge_page_tlb_size: 0,
        encoding_type: rocksdb::KeyEncodingType::Plain,
        full_scan_mode: false,
        store_index_in_file: true,
    });
    o.set_prefix_extractor(rocksdb::SliceTransform::create_noop());
    o.set_bloom_locality(if legacy { 0 } else { 1 });
    o.set_write_buffer_size((budget / 8).max(1 << 20));
    o.set_memtable_whole_key_filtering(true);
    // The memtable's bloom filter is allocated and zeroed whole when a memtable is made,
    // at every open for every category: 0.05 of an 8 MiB write buffer zeroed 2 MiB of new
    // memory per open (~1 ms of a new process's open). 0.01 still gives ~20 bits per
    // 1 KiB entry (more than 10 per 100 B one); reads and batch writes (whose existence
    // check probes the memtable) measured no slower.
    o.set_memtable_prefix_bloom_ratio(0.01);
    o.set_arena_block_size(ARENA_BLOCK);
    o.set_enable_blob_files(true);
    o.set_min_blob_size(MIN_BLOB_SIZE);
    o.set_enable_blob_gc(true);
    o
}

/// Tests only: category tables written as nexxo-cache 1.10.3 and before wrote them.
static LEGACY_TABLES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl super::Store {
    /// For tests of reading tables written by older versions: stores opened after
    /// `debug_legacy_tables(true)`, in this process, write category tables with 1.10.3's
    /// hash index (ratio 0.75) and bloom layout (no locality).
    #[doc(hidden)]
    pub fn debug_legacy_tables(on: bool) {
        LEGACY_TABLES.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

pub(super) fn small_cf_options(config: &Config, cache: &BlockCache) -> Options {
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    t.set_bloom_filter(10.0, false);
    let mut o = Options::default();
    o.set_block_based_table_factory(&t);
    o.set_write_buffer_size(((config.memory_budget / 16) as usize).max(1 << 20));
    o
}

/// The blocks a category's memtables are carved from. RocksDB's default, an eighth of
/// the write buffer (1 MiB here), is above glibc's initial mmap threshold (128 KiB): a
/// block could come from a new mapping, faulted in page by page as the memtable filled
/// and unmapped at its flush. Blocks of 64 KiB come from the heap, whose freed blocks the
/// next memtable reuses. C batch writes of 1000 x 1 KiB, 5 interleaved runs of 3 stores:
/// 1.04-1.19 -> 0.98-1.11 µs per entry (the same for the index and meta column families
/// measured no better, so they keep the default).
pub(super) const ARENA_BLOCK: usize = 64 << 10;
