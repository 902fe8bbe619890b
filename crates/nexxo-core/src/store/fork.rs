//! The RocksDB environment a store opens with: RocksDB's default one in the process
//! that first used it, and one of this library's own (`fork_env.cc`) in a child made by
//! fork() after that. The default environment's thread pools are process-wide and do
//! not survive a fork: in the child a flush scheduled there never runs, and a close
//! waiting for it hangs forever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::fork;

const UNUSED: u64 = u64::MAX;

/// The fork generation (see [`fork::generation`]) of the process that first used
/// RocksDB's default environment.
static DEFAULT_USED_IN: AtomicU64 = AtomicU64::new(UNUSED);

extern "C" {
    fn nexxo_core_fork_env_new() -> *mut librocksdb_sys::rocksdb_env_t;
}

/// The environment for a database opened now: None for RocksDB's default.
pub(super) fn env() -> Option<rocksdb::Env> {
    let gen = fork::generation();
    match DEFAULT_USED_IN.compare_exchange(UNUSED, gen, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => return None,
        Err(first) if first == gen => return None,
        Err(_) => {}
    }
    // A child: an environment of its own, made once per process (a grandchild makes
    // another). Never destroyed: the handle is marked default, so dropping it frees only
    // the handle, and its threads refer to it.
    static OWN: Mutex<Option<(u64, rocksdb::Env)>> = Mutex::new(None);
    let mut own = OWN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((g, env)) = own.as_ref() {
        if *g == gen {
            return Some(env.clone());
        }
    }
    // SAFETY: the function returns a new handle or NULL; from_raw takes ownership.
    let raw = unsafe { nexxo_core_fork_env_new() };
    if raw.is_null() {
        return None; // out of memory: the default pools are all there is
    }
    let env = unsafe { rocksdb::Env::from_raw(raw) };
    *own = Some((gen, env.clone()));
    Some(env)
}
