//! What closed handles saw, kept with the cache (`NEXXO_METRICS` in its directory): their
//! hits, misses, writes and deletes per category and their latency histograms (see
//! [`crate::latency`]), added up over every writable handle of every process that
//! closed since the file was started (or reset). A build's processes close their
//! handles; `nexxo-cache stats` then shows, and `--format openmetrics` exports, what the
//! build's cache did and how fast.
//!
//! A handle adds what it recorded at close, under `NEXXO_METRICS.lock` (flock, held for
//! one read and one atomic replacement of a small file). A process killed before its
//! close adds nothing. A file this build cannot read is started afresh (one LOG line).
//!
//! ```text
//! nexxo-cache metrics 1
//! since 1764430000
//! handles 12
//! count transform 900 100 100 0
//! latency get transform 81234 9000 40:3 41:12 ...
//! ```
//! `count CATEGORY HITS MISSES WRITES DELETES`; `latency OP CATEGORY SUM_NS MAX_NS
//! BUCKET:COUNT...` (category `*` for batches and the remote tier's operations).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::latency::{Op, Snapshot};

pub const METRICS_FILE: &str = "NEXXO_METRICS";
const LOCK_FILE: &str = "NEXXO_METRICS.lock";
const HEADER: &str = "nexxo-cache metrics 1";

/// Counts of one category: hits, misses, writes, deletes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: u64,
    pub misses: u64,
    pub writes: u64,
    pub deletes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Seconds since the epoch when the first handle was added (0: nothing yet).
    pub since: u64,
    /// Handles added.
    pub handles: u64,
    pub counts: BTreeMap<String, Counts>,
    /// By operation name and category (`*` for operations not of one category).
    pub latency: BTreeMap<(String, String), Snapshot>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.counts.values().all(|c| *c == Counts::default()) && self.latency.values().all(|s| s.count() == 0)
    }

    pub fn add(&mut self, other: &History) {
        if self.since == 0 || (other.since != 0 && other.since < self.since) {
            self.since = other.since;
        }
        self.handles += other.handles;
        for (cat, c) in &other.counts {
            let mine = self.counts.entry(cat.clone()).or_default();
            mine.hits += c.hits;
            mine.misses += c.misses;
            mine.writes += c.writes;
            mine.deletes += c.deletes;
        }
        for (k, s) in &other.latency {
            self.latency.entry(k.clone()).or_default().merge(s);
        }
    }

    fn encode(&self) -> String {
        let mut out = format!("{HEADER}\nsince {}\nhandles {}\n", self.since, self.handles);
        for (cat, c) in &self.counts {
            out += &format!("count {cat} {} {} {} {}\n", c.hits, c.misses, c.writes, c.deletes);
        }
        for ((op, cat), s) in self.latency.iter().filter(|(_, s)| s.count() > 0) {
            out += &format!("latency {op} {cat} {}\n", s.encode());
        }
        out
    }

    fn parse(text: &str) -> Option<History> {
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut h = History::default();
        let word_ok = |w: &str| !w.is_empty() && w.len() <= 64 && w.bytes().all(|b| b.is_ascii_graphic());
        for line in lines {
            let (kind, rest) = line.split_once(' ')?;
            match kind {
                "since" => h.since = rest.parse().ok()?,
                "handles" => h.handles = rest.parse().ok()?,
                "count" => {
                    let w: Vec<&str> = rest.split(' ').collect();
                    let [cat, a, b, c, d] = w[..] else { return None };
                    if !word_ok(cat) {
                        return None;
                    }
                    let n = |s: &str| s.parse::<u64>().ok();
                    h.counts.insert(cat.to_owned(), Counts { hits: n(a)?, misses: n(b)?, writes: n(c)?, deletes: n(d)? });
                }
                "latency" => {
                    let mut w = rest.splitn(3, ' ');
                    let (op, cat, snap) = (w.next()?, w.next()?, w.next()?);
                    Op::from_name(op)?;
                    if !word_ok(cat) {
                        return None;
                    }
                    h.latency.insert((op.to_owned(), cat.to_owned()), Snapshot::parse(snap)?);
                }
                _ => return None,
            }
        }
        Some(h)
    }

    /// The history kept in `dir`: empty when there is none; `Err` with the reason when
    /// the file cannot be read or is not one this build reads.
    pub fn read(dir: &Path) -> Result<History, String> {
        // Tens of KiB in practice (6 operations x categories x non-empty buckets): a
        // file far larger is not one this build wrote, and is not read whole.
        const MAX_FILE: u64 = 4 << 20;
        if std::fs::metadata(dir.join(METRICS_FILE)).is_ok_and(|m| m.len() > MAX_FILE) {
            return Err(format!("{} is larger than a metrics file can be", dir.join(METRICS_FILE).display()));
        }
        match std::fs::read_to_string(dir.join(METRICS_FILE)) {
            Ok(text) => History::parse(&text).ok_or_else(|| format!("{} is not a metrics file this build reads", dir.join(METRICS_FILE).display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(format!("{}: {e}", dir.join(METRICS_FILE).display())),
        }
    }

    /// Adds `self` to the history kept in `dir` (a file that cannot be read is started
    /// afresh; the returned note says so).
    pub fn add_to(&self, dir: &Path) -> std::io::Result<Option<String>> {
        let _lock = Lock::take(dir)?;
        let (mut kept, note) = match History::read(dir) {
            Ok(h) => (h, None),
            Err(why) => (History::default(), Some(format!("{why}; started afresh"))),
        };
        kept.add(self);
        crate::store::dir::replace_file(dir, METRICS_FILE, kept.encode().as_bytes(), false)?;
        Ok(note)
    }

    /// Forgets the history kept in `dir`.
    pub fn reset(dir: &Path) -> std::io::Result<()> {
        let _lock = Lock::take(dir)?;
        match std::fs::remove_file(dir.join(METRICS_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// `{"since":..,"handles":..,"counts":{CATEGORY:{..}},"latency":{OP:{..,"categories":{..}}}}`.
    pub fn to_json(&self) -> String {
        let mut out = format!("{{\"since\":{},\"handles\":{},\"counts\":{{", self.since, self.handles);
        for (i, (cat, c)) in self.counts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out += &format!("\"{cat}\":{{\"hits\":{},\"misses\":{},\"writes\":{},\"deletes\":{}}}", c.hits, c.misses, c.writes, c.deletes);
        }
        out += &format!("}},\"latency\":{}}}", latency_json(&self.latency));
        out
    }
}

/// One operation's histogram over all its categories, and each non-empty one by category
/// (`*` included: batches and remote calls).
pub fn op_latency(by: &BTreeMap<(String, String), Snapshot>, op: Op) -> (Snapshot, Vec<(&String, &Snapshot)>) {
    let mine: Vec<(&String, &Snapshot)> = by.iter().filter(|((o, _), s)| o == op.name() && s.count() > 0).map(|((_, c), s)| (c, s)).collect();
    let mut all = Snapshot::default();
    for (_, s) in &mine {
        all.merge(s);
    }
    (all, mine)
}

/// `{OP:{count,p50_us,...,"categories":{CATEGORY:{...}}}}` for every operation: each
/// operation's histogram over its categories, then each category's.
pub fn latency_json(by: &BTreeMap<(String, String), Snapshot>) -> String {
    let mut out = String::from("{");
    for (i, op) in Op::ALL.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (all, mine) = op_latency(by, *op);
        let body = all.to_json();
        out += &format!("\"{}\":{},\"categories\":{{", op.name(), &body[..body.len() - 1]);
        for (j, (cat, s)) in mine.iter().filter(|(c, _)| c.as_str() != "*").enumerate() {
            if j > 0 {
                out.push(',');
            }
            out += &format!("\"{cat}\":{}", s.to_json());
        }
        out += "}}";
    }
    out.push('}');
    out
}

/// The metrics file's lock (flock on its own file, so the data file can be replaced).
struct Lock {
    _file: File,
}

impl Lock {
    fn take(dir: &Path) -> std::io::Result<Lock> {
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).custom_flags(libc::O_CLOEXEC).open(dir.join(LOCK_FILE))?;
        loop {
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock { _file: f });
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Histogram;

    fn sample(hits: u64) -> History {
        let h = Histogram::default();
        for v in [900, 1200, 50_000] {
            h.record(v);
        }
        let mut out = History { since: 1_700_000_000, handles: 1, ..Default::default() };
        out.counts.insert("transform".into(), Counts { hits, misses: 2, writes: 3, deletes: 0 });
        out.latency.insert(("get".into(), "transform".into()), h.snapshot());
        out.latency.insert(("batch_set".into(), "*".into()), h.snapshot());
        out
    }

    #[test]
    fn round_trip_and_add_up_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(History::read(dir.path()).unwrap(), History::default());
        sample(10).add_to(dir.path()).unwrap();
        sample(5).add_to(dir.path()).unwrap();
        let h = History::read(dir.path()).unwrap();
        assert_eq!(h.handles, 2);
        assert_eq!(h.counts["transform"], Counts { hits: 15, misses: 4, writes: 6, deletes: 0 });
        assert_eq!(h.latency[&("get".to_string(), "transform".to_string())].count(), 6);
        let j = h.to_json();
        assert!(j.contains("\"get\":{\"count\":6,") && j.contains("\"categories\":{\"transform\":{\"count\":6,"), "{j}");
        assert!(j.contains("\"batch_set\":{\"count\":6,") && j.contains("\"upload\":{\"count\":0,"), "{j}");
        History::reset(dir.path()).unwrap();
        assert_eq!(History::read(dir.path()).unwrap(), History::default());
    }

    #[test]
    fn a_damaged_file_is_refused_on_read_and_started_afresh_on_add() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "nexxo-cache metrics 9\n", "nexxo-cache metrics 1\ncount transform 1 2\n", "nexxo-cache metrics 1\nlatency fly transform 1 2\n", "nexxo-cache metrics 1\nlatency get transform 1 2 999999:1\n"] {
            std::fs::write(dir.path().join(METRICS_FILE), bad).unwrap();
            assert!(History::read(dir.path()).is_err(), "{bad:?} was read");
            let note = sample(1).add_to(dir.path()).unwrap();
            assert!(note.is_some_and(|n| n.contains("started afresh")));
            assert_eq!(History::read(dir.path()).unwrap().counts["transform"].hits, 1);
        }
        std::fs::write(dir.path().join(METRICS_FILE), vec![b'x'; 5 << 20]).unwrap();
        assert!(History::read(dir.path()).unwrap_err().contains("larger than"));
    }
}
