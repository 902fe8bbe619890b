//! What the remote tier counts, per remote and in total, and its JSON report.

use std::sync::atomic::{AtomicU64, Ordering};

use super::breaker::State as BreakerState;
use super::config::Mode;
use super::endpoint::Kind;
use crate::json::json_string;

/// Counts of one remote, since the handle was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteCounts {
    /// Gets that found a verified value.
    pub hits: u64,
    /// Gets the server answered with "not there".
    pub misses: u64,
    /// Requests that failed (after their retries); also counted by kind below.
    pub errors: u64,
    /// Values found but not used: damaged, or signed wrongly or not at all.
    pub rejected: u64,
    /// Requests not sent because the breaker was open.
    pub skipped: u64,
    /// Values uploaded.
    pub uploads: u64,
    pub upload_errors: u64,
    /// Uploads not sent because the server already had the entry (with the existence
    /// check on).
    pub already_there: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Remote gets that went out, and their total and longest time in microseconds.
    pub gets: u64,
    pub get_micros: u64,
    pub get_micros_max: u64,
}

impl RemoteCounts {
    pub(super) fn add(&mut self, o: &RemoteCounts) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.errors += o.errors;
        self.rejected += o.rejected;
        self.skipped += o.skipped;
        self.uploads += o.uploads;
        self.upload_errors += o.upload_errors;
        self.already_there += o.already_there;
        self.bytes_up += o.bytes_up;
        self.bytes_down += o.bytes_down;
        self.gets += o.gets;
        self.get_micros += o.get_micros;
        self.get_micros_max = self.get_micros_max.max(o.get_micros_max);
    }

    /// Mean time of a remote get in microseconds, 0 before the first.
    pub fn mean_get_micros(&self) -> f64 {
        if self.gets == 0 {
            0.0
        } else {
            self.get_micros as f64 / self.gets as f64
        }
    }
}

/// One remote's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEndpointStats {
    /// Its address, password masked.
    pub url: String,
    pub kind: Kind,
    pub state: BreakerState,
    /// Times its breaker opened.
    pub trips: u64,
    pub counts: RemoteCounts,
    /// The last failure, empty when there was none.
    pub last_error: String,
}

/// The remote tier's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteStats {
    pub mode: Mode,
    /// Every remote's counts added up.
    pub totals: RemoteCounts,
    /// Remote hits written into the local store.
    pub backfills: u64,
    /// Uploads waiting now, and their bytes.
    pub queued: u64,
    pub queued_bytes: u64,
    /// Uploads dropped because the queue was full (or the cache closed first).
    pub upload_dropped: u64,
    pub endpoints: Vec<RemoteEndpointStats>,
}

#[derive(Default)]
pub(super) struct Counts {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) uploads: AtomicU64,
    pub(super) upload_errors: AtomicU64,
    pub(super) bytes_up: AtomicU64,
    pub(super) bytes_down: AtomicU64,
    pub(super) already_there: AtomicU64,
    pub(super) gets: AtomicU64,
    pub(super) get_micros: AtomicU64,
    pub(super) get_micros_max: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counts {
    pub(super) fn snapshot(&self) -> RemoteCounts {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RemoteCounts {
            hits: l(&self.hits),
            misses: l(&self.misses),
            errors: l(&self.errors),
            rejected: l(&self.rejected),
            skipped: l(&self.skipped),
            uploads: l(&self.uploads),
            upload_errors: l(&self.upload_errors),
            already_there: l(&self.already_there),
            bytes_up: l(&self.bytes_up),
            bytes_down: l(&self.bytes_down),
            gets: l(&self.gets),
            get_micros: l(&self.get_micros),
            get_micros_max: l(&self.get_micros_max),
        }
    }
}

impl RemoteCounts {
    fn json_fields(&self) -> String {
        format!(
            "\"hits\":{},\"misses\":{},\"errors\":{},\"rejected\":{},\"skipped\":{},\"uploads\":{},\"upload_errors\":{},\
             \"already_there\":{},\"bytes_up\":{},\"bytes_down\":{},\"gets\":{},\"get_mean_us\":{:.1},\"get_max_us\":{}",
            self.hits,
            self.misses,
            self.errors,
            self.rejected,
            self.skipped,
            self.uploads,
            self.upload_errors,
            self.already_there,
            self.bytes_up,
            self.bytes_down,
            self.gets,
            self.mean_get_micros(),
            self.get_micros_max
        )
    }
}

impl RemoteStats {
    /// `{"mode":..,<totals>,"backfills":..,"queued":..,"endpoints":[{"url":..,..}]}`.
    pub fn to_json(&self) -> String {
        let endpoints: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| {
                format!(
                    "{{\"url\":{},\"kind\":\"{}\",\"breaker\":\"{}\",\"trips\":{},{},\"last_error\":{}}}",
                    json_string(&e.url),
                    e.kind.as_str(),
                    e.state.as_str(),
                    e.trips,
                    e.counts.json_fields(),
                    json_string(&e.last_error)
                )
            })
            .collect();
        format!(
            "{{\"mode\":\"{}\",{},\"backfills\":{},\"queued\":{},\"queued_bytes\":{},\"upload_dropped\":{},\"endpoints\":[{}]}}",
            self.mode.as_str(),
            self.totals.json_fields(),
            self.backfills,
            self.queued,
            self.queued_bytes,
            self.upload_dropped,
            endpoints.join(",")
        )
    }

    /// Remotes whose breaker is open or probing now.
    pub fn open_breakers(&self) -> u64 {
        self.endpoints.iter().filter(|e| e.state != BreakerState::Closed).count() as u64
    }
}
