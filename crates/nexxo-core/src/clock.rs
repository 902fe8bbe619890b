//! Time as the cache sees it: seconds since the Unix epoch, from the system or a test.

use std::sync::Arc;

/// Seconds since the Unix epoch, or a test's clock.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}
