//! Many workers, one cache: every thread and process of a build that opens the same
//! directory reads and writes the same store.
//!
//! - **In one process** every writable open of a directory shares one [`Shared`]
//!   (a registry keyed by the canonical path): one RocksDB instance, one evictor; each
//!   handle keeps its own hit/miss counts, and a handle's close leaves the others working.
//! - **Across processes** the first process to open the directory becomes its *owner*:
//!   it holds RocksDB's lock and serves the others over a Unix socket in the cache
//!   directory (`nexxo.sock`, inside the 0700 directory, same-user peers only), as
//!   sccache's server does but with no separate daemon. Every other process is a
//!   *client*: its requests go to the owner, which applies them to the store as its own
//!   calls (one write path, one write-ahead log, exact counters). A request is answered
//!   once applied, so a write acknowledged to any process is durable as the owner's own
//!   (survives kill -9 of either) and readable by every process at once. Small sets are
//!   the exception: a client journals them and acknowledges at once, and the owner
//!   applies the journals before it writes or answers "not found" (see `journal.rs`).
//! - **Election**: deciding between serving and connecting happens under an exclusive
//!   `flock` of `NEXXO_OPEN.lock`, which an owner also holds while it stops serving: an
//!   opener finds either a serving owner or none (then it opens the store and serves).
//!   N processes creating a new directory at once are serialized by it too.
//! - **Failover**: when the owner exits or is killed, its clients see their connections
//!   end; the first to take the election lock opens the store (RocksDB's lock was
//!   released by the kernel) and serves, the others connect to it, and the request that
//!   failed is sent again (every request is idempotent). No handle is reopened.
//!
//! - **Opening on demand**: an owner that finds the store closed cleanly serves it at
//!   once from a read-only instance and opens it for writing when something needs it
//!   (see `backing.rs`): a process that only reads never pays RocksDB's writable open.
//!
//! Read-only opens that find no writable handle of the directory in this process open a
//! RocksDB read-only instance as before: a snapshot of the store at open.

mod backing;
mod changes;
mod client;
mod follower;
mod journal;
mod proto;
mod server;
mod sys;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use backing::Backing;
use changes::Changes;
use client::{Client, Lost, NoOwner};
use follower::Follower;
use journal::{HeldValue, Intake, Journal};
use proto::{Fields, Frame, Op, ProtoError};
use server::Server;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::clock::Clock;
use crate::evict::PolicyReport;
use crate::stats::Stats;
use crate::store::{Store, VerifyReport};

pub use sys::ELECTION_FILE;

/// How long an opener keeps trying when the store is locked by a process that does not
/// serve it (one that is starting or stopping is waited for by the election lock).
const LOCKED_WAIT: Duration = Duration::from_secs(2);
/// The longest wait for the election lock (held for milliseconds by a live process).
const ELECTION_WAIT: Duration = Duration::from_secs(10);
/// Connection failures in a row after which a request gives up.
const MAX_FAILOVERS: u32 = 4;

/// The process that holds the store.
struct Owner {
    // Dropped in this order: the server (no more requests), then the store.
    server: Option<Server>,
    backing: Arc<Backing>,
}

struct ClientState {
    client: Option<Client>,
    /// Reads the store directly; `None` when it could not be opened (reads then go to
    /// the owner).
    follower: Option<Follower>,
    /// Bumped at each failover, so that threads whose requests failed together elect once.
    epoch: u64,
}

/// One directory's store as this process reaches it: owned here, or through its owner.
pub(crate) struct Shared {
    dir: PathBuf,
    config: Config,
    clock: Clock,
    /// Set once this process owns the store (at open, or when it takes over).
    owner: OnceLock<Owner>,
    client: RwLock<ClientState>,
    /// Whether this is in the registry (a writable open) or a private read-only instance.
    registered: bool,
    fork_generation: u64,
    /// Where this process journals small sets while it is a client (made at the first).
    journal: OnceLock<Journal>,
    /// Held while the journal is made; true once making one failed (sets then go to the
    /// owner).
    journal_failed: Mutex<bool>,
}

/// Writable opens of this process, by canonical directory.
static REGISTRY: Mutex<Vec<(PathBuf, u64, Weak<Shared>)>> = Mutex::new(Vec::new());

enum Role {
    Owner(Owner),
    Client(Client),
}

impl Shared {
    /// The shared store of `path` for an open with `config`.
    pub fn open(path: &Path, config: &Config, clock: Clock) -> Result<Arc<Shared>> {
        if path.as_os_str().is_empty() {
            return Err(Error::InvalidArgument("the cache path is empty".into()));
        }
        let gen = crate::fork::generation();
        if config.read_only {
            if let Some(s) = std::fs::canonicalize(path).ok().and_then(|c| lookup(&c, gen)) {
                return Ok(s);
            }
            let store = Store::open(path, config, clock.clone())?;
            return Ok(Arc::new(Self::local(path, config, clock, store)));
        }
        crate::store::judge_dir(path)?;
        if std::fs::symlink_metadata(path).is_err() {
            crate::store::create_dir(path, config.dir_mode)?;
        }
        if !crate::store::is_trusted(path, config.dir_mode) {
            // Refused, or opened read-only (allow_untrusted_dir): never shared.
            let store = Store::open(path, config, clock.clone())?;
            return Ok(Arc::new(Self::local(path, config, clock, store)));
        }
        let dir = std::fs::canonicalize(path).map_err(|e| Error::from(e).with_context(&path.display().to_string()))?;
        let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        reg.retain(|(_, _, w)| w.strong_count() > 0);
        if let Some(s) = reg.iter().find(|(d, g, _)| *d == dir && *g == gen).and_then(|(_, _, w)| w.upgrade()) {
            check_categories(config, &s.categories(), "opened by another handle of this process")?;
            return Ok(s);
        }
        let shared = Shared {
            dir: dir.clone(),
            config: config.clone(),
            clock: clock.clone(),
            owner: OnceLock::new(),
            client: RwLock::new(ClientState { client: None, follower: None, epoch: 0 }),
            registered: true,
            fork_generation: gen,
            journal: OnceLock::new(),
            journal_failed: Mutex::new(false),
        };
        match elect(&dir, config, &clock, true)? {
            Role::Owner(o) => {
                // Journals of clients of an earlier owner that are gone.
                let _ = o.backing.reap();
                drop(shared.owner.set(o))
            }
            Role::Client(c) => {
                let mut g = shared.client.write().unwrap_or_else(|p| p.into_inner());
                g.client = Some(c);
                g.follower = Follower::open(&dir, config, clock.clone());
            }
        }
        let shared = Arc::new(shared);
        reg.push((dir, gen, Arc::downgrade(&shared)));
        Ok(shared)
    }

    fn local(path: &Path, config: &Config, clock: Clock, store: Store) -> Shared {
        let backing = Arc::new(Backing::opened(path, config, &clock, store, None, None));
        let s = Shared {
            dir: path.to_owned(),
            config: config.clone(),
            clock,
            owner: OnceLock::new(),
            client: RwLock::new(ClientState { client: None, follower: None, epoch: 0 }),
            registered: false,
            fork_generation: crate::fork::generation(),
            journal: OnceLock::new(),
            journal_failed: Mutex::new(false),
        };
        let _ = s.owner.set(Owner { server: None, backing });
        s
    }

    /// The store, when this process holds it (opened for writing now if it was opened
    /// on demand and not yet).
    pub fn store(&self) -> Option<&Store> {
        self.owner.get().and_then(|o| o.backing.writable().ok())
    }

    /// The store when this process holds it open (never opens it).
    pub fn store_if_open(&self) -> Option<&Store> {
        self.owner.get().and_then(|o| o.backing.store_if_open())
    }

    /// Requests a read-only instance answered while this process's store was not open
    /// for writing (see `backing.rs`).
    pub fn interim_reads(&self) -> u64 {
        self.owner.get().map_or(0, |o| o.backing.interim_reads())
    }

    /// Entries the read-only instance's warm table holds (see `backing.rs`); for tests.
    pub fn interim_warm_entries(&self) -> usize {
        self.owner.get().map_or(0, |o| o.backing.interim_warm_entries())
    }

    /// The limits as this open resolved them (option > environment > stored > default):
    /// the store's when this process holds it; else resolved the same way against the
    /// cache's stored limits now (the owner evicts by the limits it opened with).
    pub fn limits(&self) -> Config {
        match self.store_if_open() {
            Some(s) => s.config().clone(),
            None => crate::store::limits_file::effective(&self.dir, &self.config).0,
        }
    }

    /// The process serving this cache, when this one is not it.
    pub fn owner_pid(&self) -> Option<u32> {
        if self.owner.get().is_some() {
            return None;
        }
        self.client.read().unwrap_or_else(|p| p.into_inner()).client.as_ref().map(|c| c.owner_pid)
    }

    pub fn path(&self) -> &Path {
        match self.owner.get() {
            Some(o) => o.backing.path(),
            None => &self.dir,
        }
    }

    pub fn is_read_only(&self) -> bool {
        self.owner.get().is_some_and(|o| o.backing.is_read_only())
    }

    pub fn categories(&self) -> Vec<String> {
        if let Some(o) = self.owner.get() {
            return o.backing.category_names();
        }
        let g = self.client.read().unwrap_or_else(|p| p.into_inner());
        g.client.as_ref().map(|c| c.categories.clone()).unwrap_or_default()
    }

    /// Whether this was opened before a fork() that made this process: nothing of it
    /// may be used or closed here.
    pub(crate) fn opened_before_fork(&self) -> bool {
        self.fork_generation != crate::fork::generation()
    }

    fn check_fork(&self) -> Result<()> {
        if self.opened_before_fork() {
            return Err(Error::InvalidArgument("this cache handle was opened before fork(): a child process must open its own".into()));
        }
        Ok(())
    }

    /// Runs a request here when this process holds the store, else through the owner,
    /// electing a new one when the owner is gone.
    fn run<T>(&self, local: impl Fn(&Store) -> Result<T>, request: impl FnOnce() -> Frame, long: bool, decode: impl Fn(&mut Fields<'_>) -> Result<T, ProtoError>) -> Result<T> {
        self.check_fork()?;
        if let Some(o) = self.owner.get() {
            return local(o.backing.writable()?);
        }
        let request = request().finish();
        let mut failures = 0;
        loop {
            if let Some(o) = self.owner.get() {
                return local(o.backing.writable()?);
            }
            let (epoch, answer) = {
                let g = self.client.read().unwrap_or_else(|p| p.into_inner());
                match &g.client {
                    Some(c) => (g.epoch, c.call(&request, long)),
                    None => (g.epoch, Err(Lost("no process serves the cache".into()))),
                }
            };
            match answer {
                Ok(body) => return client::decode(&body, |r| decode(r)),
                Err(Lost(why)) => {
                    failures += 1;
                    if failures > MAX_FAILOVERS {
                        return Err(Error::Io(format!("{}: lost the process serving the cache: {why}", self.dir.display())));
                    }
                    self.take_over(epoch)?;
                }
            }
        }
    }

    /// After a failed connection: elect a new owner (maybe this process), once per epoch.
    fn take_over(&self, epoch: u64) -> Result<()> {
        let mut g = self.client.write().unwrap_or_else(|p| p.into_inner());
        if self.owner.get().is_some() || g.epoch != epoch {
            return Ok(());
        }
        match elect(&self.dir, &self.config, &self.clock, false)? {
            Role::Owner(o) => {
                let _ = o.backing.reap();
                let _ = self.owner.set(o);
                g.client = None;
                g.follower = None;
                // Sets go to the store from now on; what this process journaled is taken
                // in with the other journals (before the next write or a read that finds
                // nothing), so its reads stop answering from the journal.
                if let Some(j) = self.journal.get() {
                    j.finish(None);
                }
            }
            Role::Client(c) => {
                check_categories(&self.config, &c.categories, "served by another process")?;
                g.client = Some(c);
                // The reader follows the directory whoever writes it: it is kept.
            }
        }
        g.epoch += 1;
        Ok(())
    }

    // ---- requests ----

    /// The value from this process's direct reader, when it is a client and has it.
    fn follower_get(&self, cat: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        let g = self.client.read().unwrap_or_else(|p| p.into_inner());
        g.follower.as_ref()?.get(cat, key)
    }

    /// Whether this process's direct reader has the key (not counted as a read: see
    /// [`Follower::has`]).
    fn follower_has(&self, cat: &[u8], key: &[u8]) -> bool {
        let g = self.client.read().unwrap_or_else(|p| p.into_inner());
        g.follower.as_ref().is_some_and(|f| f.has(cat, key))
    }

    /// A value this process journaled that the owner has not reported applied. One that
    /// another write may have replaced since is not answered: the owner is asked to take
    /// the journal in, and the caller reads as for a key not journaled.
    fn journaled(&self, cat: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(j) = self.journal.get() else { return Ok(None) };
        match j.lookup(cat, key) {
            HeldValue::No => Ok(None),
            HeldValue::Value(v) => Ok(Some(v)),
            HeldValue::Stale => {
                self.sync_journal(j)?;
                Ok(None)
            }
        }
    }

    pub fn get(&self, cat: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_fork()?;
        if let Some(v) = self.journaled(cat, key)? {
            return Ok(Some(v));
        }
        if let Some(o) = self.owner.get() {
            return o.backing.read_key(|s| s.get(cat, key));
        }
        if let Some(v) = self.follower_get(cat, key) {
            return Ok(Some(v));
        }
        self.run(|s| s.get(cat, key), || Frame::request(Op::Get).bytes(cat).bytes(key), false, |r| Ok(proto::get_found(r)?.map(<[u8]>::to_vec)))
    }

    /// Reads into `buf` (see [`Store::get_into`]).
    pub fn get_into(&self, cat: &[u8], key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        self.check_fork()?;
        if let Some(o) = self.owner.get().filter(|_| self.journal.get().is_none_or(|j| !j.holding())) {
            // One attempt per store: `read` runs the closure again only on another store.
            let buf = std::cell::RefCell::new(buf);
            return o.backing.read_key(|s| s.get_into(cat, key, &mut buf.borrow_mut()));
        }
        match self.get(cat, key)? {
            None => Ok(None),
            Some(v) if v.len() > buf.len() => Err(Error::BufferTooSmall(v.len())),
            Some(v) => {
                buf[..v.len()].copy_from_slice(&v);
                Ok(Some(v.len()))
            }
        }
    }

    pub fn batch_get(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        if let Err(e) = self.check_fork() {
            return keys.iter().map(|_| Err(e.clone())).collect();
        }
        if self.journal.get().is_some_and(Journal::holding) {
            // What this process journaled answers first; the rest as below.
            let held: Vec<Option<Vec<u8>>> = match keys.iter().map(|(c, k)| self.journaled(c, k)).collect() {
                Ok(h) => h,
                Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
            };
            let missing: Vec<(&[u8], &[u8])> = keys.iter().zip(&held).filter(|(_, h)| h.is_none()).map(|(k, _)| *k).collect();
            let mut rest = if missing.is_empty() { Vec::new() } else { self.batch_get_unheld(&missing) }.into_iter();
            return held.into_iter().map(|h| match h {
                Some(v) => Ok(Some(v)),
                None => rest.next().unwrap_or(Ok(None)),
            }).collect();
        }
        self.batch_get_unheld(keys)
    }

    fn batch_get_unheld(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        if let Some(o) = self.owner.get() {
            return o.backing.batch_get(keys);
        }
        // Keys the direct reader has are answered here; the others by the owner.
        let local = {
            let g = self.client.read().unwrap_or_else(|p| p.into_inner());
            g.follower.as_ref().and_then(|f| f.batch_get(keys))
        };
        if let Some(local) = local {
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| local[i].is_none()).collect();
            if missing.is_empty() {
                return local.into_iter().map(Ok).collect();
            }
            let asked: Vec<(&[u8], &[u8])> = missing.iter().map(|&i| keys[i]).collect();
            let mut answers = self.batch_get_from_owner(&asked).into_iter();
            let mut out: Vec<Result<Option<Vec<u8>>>> = local.into_iter().map(Ok).collect();
            for i in missing {
                out[i] = answers.next().unwrap_or(Ok(None));
            }
            return out;
        }
        self.batch_get_from_owner(keys)
    }

    fn batch_get_from_owner(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for part in split_batch(keys, |(c, k)| c.len() + k.len() + 8) {
            let got = self.run(
                |s| Ok(s.batch_get(part)),
                || {
                    let mut f = Frame::request(Op::BatchGet).u32(part.len() as u32);
                    for (c, k) in part {
                        f.push_bytes(c);
                        f.push_bytes(k);
                    }
                    f
                },
                false,
                |r| {
                    let mut v = Vec::with_capacity(part.len());
                    for _ in 0..part.len() {
                        v.push(match r.u8()? {
                            0 => Ok(None),
                            1 => Ok(Some(r.bytes()?.to_vec())),
                            2 => Err(proto::get_error(r)?),
                            t => return Err(ProtoError(format!("unknown outcome {t}"))),
                        });
                    }
                    Ok(v)
                },
            );
            match got {
                Ok(v) => out.extend(v),
                Err(e) => out.extend(part.iter().map(|_| Err(e.clone()))),
            }
        }
        out
    }

    pub fn batch_set(&self, entries: &[(&[u8], &[u8], &[u8])]) -> Result<()> {
        self.store_batch(entries, None)
    }

    /// [`Shared::batch_set`] with each entry's tags (`tags[i]` for `entries[i]`).
    pub fn batch_set_tagged(&self, entries: &[(&[u8], &[u8], &[u8])], tags: &[&[&[u8]]]) -> Result<()> {
        if tags.len() != entries.len() {
            return Err(Error::InvalidArgument(format!("{} tag lists for {} entries", tags.len(), entries.len())));
        }
        self.store_batch(entries, Some(tags))
    }

    fn store_batch(&self, entries: &[(&[u8], &[u8], &[u8])], tags: Option<&[&[&[u8]]]>) -> Result<()> {
        self.check_fork()?;
        if tags.is_none() && self.owner.get().is_none() && !entries.is_empty() && Journal::fits(entries) {
            if let Some(j) = self.journal_for_sets() {
                j.check(entries)?;
                // A set that replaces a value this process knows of goes to the owner (see
                // `journal.rs`).
                if !entries.iter().any(|(c, k, _)| j.holds(c, k) || self.follower_has(c, k)) {
                    let order = j.order.read().unwrap_or_else(|p| p.into_inner());
                    // An error writing the journal: the owner is asked instead.
                    if let Ok(Some(sync)) = j.append(entries) {
                        drop(order);
                        if sync {
                            // Housekeeping: what the owner applied is no longer held here.
                            let _ = self.sync_journal(j);
                        }
                        return Ok(());
                    }
                }
            }
        }
        // Sent to the owner: copies kept for this process's reads, as of journaled sets.
        let keep = if tags.is_none() && self.owner.get().is_none() && !entries.is_empty() { self.journal_for_sets().map(|j| (j, j.stamp())) } else { None };
        self.ordered(|| self.store_batch_now(entries, tags))?;
        if let Some((j, stamp)) = keep {
            j.keep(entries, stamp);
        }
        Ok(())
    }

    /// This client's journal, made at its first journaled set; `None` when one cannot be
    /// made (sets then go to the owner).
    fn journal_for_sets(&self) -> Option<&Journal> {
        if let Some(j) = self.journal.get() {
            return Some(j);
        }
        let cats = self.categories();
        let mut failed = self.journal_failed.lock().unwrap_or_else(|p| p.into_inner());
        if *failed || cats.is_empty() {
            return None;
        }
        if self.journal.get().is_none() {
            match Journal::create(&self.dir, cats, self.config.sync_writes, self.config.memory_budget as usize / 4) {
                Ok(j) => drop(self.journal.set(j)),
                Err(_) => {
                    *failed = true;
                    return None;
                }
            }
        }
        self.journal.get()
    }

    /// Asks the owner to take the journals in; what it reports applied of this process's
    /// journal is no longer held here.
    fn sync_journal(&self, j: &Journal) -> Result<()> {
        let mark = self.run(|s| s.journal_mark(j.id), || Frame::request(Op::Pull).u64(j.id), false, |r| {
            Ok(match r.u8()? {
                0 => None,
                _ => Some(r.u64()?),
            })
        })?;
        j.applied(mark.unwrap_or(0));
        Ok(())
    }

    /// Runs a request that must come after every set this process journaled (a write, a
    /// delete, a flush): no set is journaled meanwhile, and with records held the owner is
    /// first asked to take the journal in, so that this process's reads stop answering
    /// from a value the request replaces or removes.
    fn ordered<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let Some(j) = self.journal.get() else { return f() };
        let _order = j.order.write().unwrap_or_else(|p| p.into_inner());
        if j.holding() && self.owner.get().is_none() {
            self.sync_journal(j)?;
        }
        f()
    }

    fn store_batch_now(&self, entries: &[(&[u8], &[u8], &[u8])], tags: Option<&[&[&[u8]]]>) -> Result<()> {
        let local = |s: &Store, e: &[(&[u8], &[u8], &[u8])], t: Option<&[&[&[u8]]]>| match t {
            Some(t) => s.batch_set_tagged(e, t),
            None => s.batch_set(e),
        };
        if let Some(o) = self.owner.get() {
            return local(o.backing.writable()?, entries, tags);
        }
        let tags_of = |i: usize| tags.map_or(&[][..], |t| t[i]);
        // A batch larger than a frame holds is sent in parts, each atomic on its own.
        let items: Vec<usize> = (0..entries.len()).collect();
        for part in split_batch(&items, |&i| {
            let (c, k, v) = entries[i];
            c.len() + k.len() + v.len() + 16 + tags_of(i).iter().map(|t| t.len() + 4).sum::<usize>()
        }) {
            let part_entries: Vec<(&[u8], &[u8], &[u8])> = part.iter().map(|&i| entries[i]).collect();
            let part_tags: Option<Vec<&[&[u8]]>> = tags.map(|_| part.iter().map(|&i| tags_of(i)).collect());
            self.run(
                |s| local(s, &part_entries, part_tags.as_deref()),
                || {
                    let op = if tags.is_some() { Op::BatchSetTagged } else { Op::BatchSet };
                    let mut f = Frame::request(op).u32(part.len() as u32);
                    for &i in part {
                        let (c, k, v) = entries[i];
                        f.push_bytes(c);
                        f.push_bytes(k);
                        f.push_bytes(v);
                        if tags.is_some() {
                            f.push_u32(tags_of(i).len() as u32);
                            for t in tags_of(i) {
                                f.push_bytes(t);
                            }
                        }
                    }
                    f
                },
                false,
                |_| Ok(()),
            )?;
        }
        Ok(())
    }

    /// Removes every entry carrying `tag`: (entries, stored bytes).
    pub fn invalidate(&self, tag: &[u8]) -> Result<(u64, u64)> {
        self.ordered(|| self.run(|s| s.invalidate(tag), || Frame::request(Op::Invalidate).bytes(tag), true, |r| Ok((r.u64()?, r.u64()?))))
    }

    pub fn fill(&self, cat: &[u8], key: &[u8], value: &[u8]) -> Result<bool> {
        self.ordered(|| self.run(|s| s.fill(cat, key, value), || Frame::request(Op::Fill).bytes(cat).bytes(key).bytes(value), false, |r| Ok(r.u8()? != 0)))
    }

    /// Removes a key; whether it held an entry.
    pub fn remove(&self, cat: &[u8], key: &[u8]) -> Result<bool> {
        self.ordered(|| self.run(|s| s.remove(cat, key), || Frame::request(Op::Delete).bytes(cat).bytes(key), false, |r| Ok(r.u8()? != 0)))
    }

    pub fn clear(&self, cats: &[&[u8]]) -> Result<()> {
        self.ordered(|| self.run(
            |s| s.clear(cats),
            || {
                let mut f = Frame::request(Op::Clear).u32(cats.len() as u32);
                for c in cats {
                    f.push_bytes(c);
                }
                f
            },
            true,
            |_| Ok(()),
        ))
    }

    pub fn compact(&self, cat: Option<&[u8]>) -> Result<()> {
        self.run(
            |s| s.compact(cat),
            || match cat {
                Some(c) => Frame::request(Op::Compact).u8(1).bytes(c),
                None => Frame::request(Op::Compact).u8(0),
            },
            true,
            |_| Ok(()),
        )
    }

    pub fn enforce_policy(&self) -> Result<PolicyReport> {
        self.run(crate::evict::enforce_policy, || Frame::request(Op::Enforce), true, proto::get_report)
    }

    pub fn flush(&self) -> Result<()> {
        self.ordered(|| self.run(Store::flush, || Frame::request(Op::Flush), true, |_| Ok(())))
    }

    /// Statistics of the whole cache (from a read-only instance while the store is not
    /// open for writing: see `backing.rs`).
    pub fn stats(&self) -> Result<Stats> {
        self.check_fork()?;
        if let Some(o) = self.owner.get() {
            return o.backing.stats();
        }
        self.run(|s| Ok(s.stats()), || Frame::request(Op::Stats), false, proto::get_stats)
    }

    pub fn category_stats(&self, cat: &[u8]) -> Result<Stats> {
        self.check_fork()?;
        if let Some(o) = self.owner.get() {
            return o.backing.category_stats(cat);
        }
        self.run(|s| s.category_stats(cat), || Frame::request(Op::CategoryStats).bytes(cat), false, proto::get_stats)
    }

    pub fn verify(&self, drop_bad: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        let progress = std::cell::RefCell::new(progress);
        self.run(|s| s.verify(drop_bad, &mut *progress.borrow_mut()), || Frame::request(Op::Verify).u8(drop_bad as u8), true, proto::get_verify)
    }
}

/// A batch in parts that each fit a frame.
fn split_batch<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, it) in items.iter().enumerate() {
        let n = size(it);
        if i > start && bytes + n > proto::BATCH_FRAME_BUDGET {
            parts.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < items.len() || parts.is_empty() {
        parts.push(&items[start..]);
    }
    parts
}

fn lookup(dir: &Path, gen: u64) -> Option<Arc<Shared>> {
    let reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.iter().find(|(d, g, _)| d == dir && *g == gen).and_then(|(_, _, w)| w.upgrade())
}

/// Every category `config` names must be in the store as it is open.
fn check_categories(config: &Config, have: &[String], how: &str) -> Result<()> {
    match config.categories().find(|c| !have.iter().any(|h| h == c)) {
        None => Ok(()),
        Some(c) => Err(Error::Incompatible(format!(
            "category {c:?} is not in this cache as it is {how} (it has {}); categories are added by the open that creates the store, or by one when no other process has it open",
            have.join(", ")
        ))),
    }
}

/// Serve or connect: under the election lock, connect to a serving owner, else open the
/// store and serve it. With `on_demand`, a store that may be served from a read-only
/// instance until it is needed for writing (see `backing.rs`) is.
fn elect(dir: &Path, config: &Config, clock: &Clock, on_demand: bool) -> Result<Role> {
    let Some(_lock) = sys::ElectionLock::acquire(dir, ELECTION_WAIT)? else {
        return Err(Error::Locked(format!(
            "{}: another process has held {ELECTION_FILE} for {} s (stopped in the middle of opening or closing the cache?)",
            dir.display(),
            ELECTION_WAIT.as_secs()
        )));
    };
    let deadline = Instant::now() + LOCKED_WAIT;
    let mut first = on_demand;
    loop {
        match Client::connect(dir) {
            Ok(c) => {
                check_categories(config, &c.categories, &format!("served by process {}", c.owner_pid))?;
                return Ok(Role::Client(c));
            }
            Err(NoOwner::Refused(e)) => return Err(e),
            Err(NoOwner::Absent) => {}
        }
        if std::mem::take(&mut first) {
            if let Some((reader, intake)) = interim_reader(dir, config, clock).and_then(|r| Some((r, Intake::open(dir).ok()?))) {
                let backing = Arc::new(Backing::on_demand(dir, config, clock, reader, intake));
                // Serving before the store opens for writing: other processes connect
                // to this one, so none opens the store beside it.
                if let Ok(server) = Server::start(dir, backing.clone()) {
                    return Ok(Role::Owner(Owner { server: Some(server), backing }));
                }
            }
        }
        match Store::open(dir, config, clock.clone()) {
            Ok(store) => {
                let changes = Changes::open(dir)?;
                let backing = Arc::new(Backing::opened(dir, config, clock, store, Some(changes), Some(Intake::open(dir)?)));
                // Without a server this process still works; others then wait for it.
                let server = Server::start(dir, backing.clone()).ok();
                return Ok(Role::Owner(Owner { server, backing }));
            }
            Err(Error::Locked(_)) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(Error::Locked(m)) => {
                return Err(Error::Locked(format!(
                    "{m}: the process holding the cache does not share it (a nexxo-cache before 1.2, or a handle that cannot serve)"
                )))
            }
            Err(e) => return Err(e),
        }
    }
}

/// A read-only instance to serve the store from until it is needed for writing, when
/// that is safe: a writable open of a store closed cleanly (the writable open will then
/// neither recover nor salvage anything), which no process holds locked, and which has
/// every category the open names. `None`: open it for writing now.
fn interim_reader(dir: &Path, config: &Config, clock: &Clock) -> Option<Store> {
    if config.read_only || !crate::store::closed_cleanly(dir) || crate::store::store_lock_held(dir) != Some(false) {
        return None;
    }
    let mut reader = Store::open(dir, &Config { read_only: true, ..config.clone() }, clock.clone()).ok()?;
    if !config.categories().all(|c| reader.category_names().any(|n| n == c)) {
        return None;
    }
    reader.make_interim();
    // A writable open that sets limits stores them (see limits_file.rs), opened or not.
    crate::store::limits_file::resolve(dir, config);
    Some(reader)
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.fork_generation != crate::fork::generation() {
            // A copy made by fork(): the store's threads live in the parent only, and
            // closing it here could hang or write the parent's files. Leaked on purpose.
            if let Some(o) = self.owner.take() {
                std::mem::forget(o);
            }
            return;
        }
        if let Some(j) = self.journal.get() {
            // Asks whoever owns the store now (this process, maybe, after this) to take the
            // journal in; removed when all of it was. Otherwise it stays, and the owner
            // takes it in once this process's lock on it is released.
            if self.owner.get().is_none() {
                let _ = self.sync_journal(j);
            }
            let mark = match self.owner.get() {
                Some(o) => o.backing.writable().ok().and_then(|s| s.journal_mark(j.id).ok().flatten()),
                None => j.applied_mark(),
            };
            j.finish(mark);
        }
        let Some(mut owner) = self.owner.take() else { return };
        // What this process read from a read-only instance is marked as used first.
        owner.backing.finish();
        // Clients that lose this owner elect the next one under the election lock; held
        // here until the store is closed, so none opens it while it is still open here.
        // Bounded: closing goes on without it if a stopped process holds it.
        let _lock = if self.registered { sys::ElectionLock::acquire(&self.dir, ELECTION_WAIT).ok().flatten() } else { None };
        if let Some(mut s) = owner.server.take() {
            s.stop();
        }
        drop(owner);
    }
}
