//! fork(): which copy of the process this is. A child gets the parent's memory but
//! none of its threads, so what the library made before a fork (handles, RocksDB's
//! thread pools, the batch-read threads) must not be used in the child.

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many fork()s lie between the process that first asked and this one: a value
/// taken before a fork differs from the one the child reads. The hook that counts is
/// installed at the first call, so forks before any use of the library count as none
/// (nothing of the library existed to inherit).
pub fn generation() -> u64 {
    static HOOK: std::sync::Once = std::sync::Once::new();
    extern "C" fn child() {
        GENERATION.fetch_add(1, Ordering::SeqCst);
    }
    HOOK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(child));
    });
    GENERATION.load(Ordering::SeqCst)
}
