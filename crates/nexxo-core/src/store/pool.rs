//! The threads batch reads split across: made once, shared by every store.

/// A batch read is split across threads for every this many keys (see [`work_threads`]).
pub(super) const READ_KEYS_PER_THREAD: usize = 256;

/// The threads for `units` units of batch work (lookups and decoding: CPU work, and a
/// batch is the caller saying "all of these, now"): one per unit, at most
/// one per core and at most four. The core count is read once (it reads cgroup files).
pub(super) fn work_threads(units: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cores.min(4).min(units)
}

/// The threads batch reads run their other parts on (the caller runs the first): made
/// at the first batch that splits, one fewer than the most a batch uses. None when they
/// could not be started (a thread limit), and in a child made by fork() after they were
/// (their threads stayed in the parent): batches then run on the caller's thread alone.
pub(super) fn read_pool() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: std::sync::OnceLock<(u64, Option<rayon_core::ThreadPool>)> = std::sync::OnceLock::new();
    let (made_in, pool) = POOL.get_or_init(|| {
        let pool = rayon_core::ThreadPoolBuilder::new()
            .num_threads(work_threads(usize::MAX).saturating_sub(1).max(1))
            .thread_name(|i| format!("nexxo-read-{i}"))
            .build()
            .ok();
        (crate::fork::generation(), pool)
    });
    pool.as_ref().filter(|_| *made_in == crate::fork::generation())
}

/// `f` over `items` split into `threads` parts (the first on this thread, the others on
/// [`read_pool`]), the results in order. A panic in any part is resumed here.
pub(super) fn in_parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let Some(pool) = (threads > 1).then(read_pool).flatten() else {
        return f(items);
    };
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    pool.in_place_scope(|s| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .skip(1)
            .map(|part| {
                let (tx, rx) = std::sync::mpsc::channel();
                s.spawn(move |_| drop(tx.send(f(part))));
                rx
            })
            .collect();
        let mut out = f(&items[..chunk]);
        for p in parts {
            // A part that panicked sends nothing: the scope resumes its panic as it ends.
            if let Ok(r) = p.recv() {
                out.extend(r);
            }
        }
        out
    })
}
