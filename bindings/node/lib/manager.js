'use strict';
// The seed's high-level API, done right: one CacheManager per project root, a cache in
// <root>/.nexxo_cache, and a build that never fails because its cache did.

const path = require('node:path');
const { Cache, NexxoCacheError } = require('./cache');

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/** Bytes as a human string with two decimals, 1 KB = 1024 bytes: '1.23 MB'. */
function humanSize(bytes) {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${v.toFixed(2)} ${UNITS[u]}`;
}

const RESOLVED = Promise.resolve();

/** Errors that mean the caller's code is wrong: they are thrown, not absorbed. */
const CALLER_ERRORS = new Set(['INVALID_ARGUMENT', 'UNKNOWN_CATEGORY', 'CLOSED']);

/** What enforcePolicy reports for a disabled cache (or one that failed): nothing done. */
const noPolicyReport = () => ({ evictedEntries: 0, evictedBytes: 0, storedBytesBefore: 0, storedBytesAfter: 0, compacted: false });

/** Whether a NEXXO_CACHE_* variable the library reads is set. */
function environmentIsSet() {
  return Object.keys(process.env).some((k) => k.startsWith('NEXXO_CACHE_') && !['NEXXO_CACHE_LIB', 'NEXXO_CACHE_LIB_DIR', 'NEXXO_CACHE_DIR'].includes(k) && process.env[k] !== '');
}

class CacheManager {
  /**
   * Prefer getCacheManager(root), which returns one manager per root.
   * @param {string} root
   * @param {import('./index').ManagerOptions} [options]
   */
  constructor(root, options = {}) {
    this.root = path.resolve(root);
    // NEXXO_CACHE_DIR (README "Environment") puts every project's cache where the
    // operator wants it (a CI cache volume), unless the caller ignores the environment.
    const envDir = options.ignoreEnvironment ? '' : (process.env.NEXXO_CACHE_DIR || '').trim();
    this.cacheDir = envDir ? path.resolve(envDir) : path.join(this.root, '.nexxo_cache');
    this._log = options.logger || console;
    this._warned = new Set();
    this._disabled = null;
    this._cache = null;
    try {
      this._cache = Cache.open(this.cacheDir, options);
      const s = this._cache.stats();
      // A disabled_reason of OK: disabled on request (NEXXO_CACHE_DISABLE), not a failure.
      const why = s.disabledReason === 'OK' ? 'NEXXO_CACHE_DISABLE is set' : `the native cache is disabled: ${s.disabledReason}`;
      if (s.disabled) this._disable(new NexxoCacheError(s.disabledReason, why, -1), false);
    } catch (e) {
      // A malformed NEXXO_CACHE_* variable fails the open with INVALID_ARGUMENT (the
      // library names it on stderr): an operator's mistake must not fail the build.
      const fromEnvironment = e instanceof NexxoCacheError && e.code === 'INVALID_ARGUMENT' && !options.ignoreEnvironment && environmentIsSet();
      if (!fromEnvironment && (!(e instanceof NexxoCacheError) || CALLER_ERRORS.has(e.code))) throw e;
      this._disable(fromEnvironment ? new NexxoCacheError(e.code, 'a NEXXO_CACHE_* environment variable is malformed (the line before names it)', -1) : e, true);
    }
  }

  _disable(e, closeNative) {
    if (closeNative && this._cache) this._cache.close();
    if (closeNative) this._cache = null;
    this._disabled = { code: e.code, message: e.message };
    this._warnOnce(e.code, `nexxo-cache disabled for ${this.cacheDir}: ${e.message}. The build goes on without a cache.`);
  }

  _warnOnce(key, message) {
    if (this._warned.has(key)) return;
    this._warned.add(key);
    this._log.warn(message);
  }

  /** Runs `op` on the native cache; failures of the cache become `fallback` and one warning. */
  _run(op, fallback, fn) {
    if (this._disabled || !this._cache) return fallback;
    try {
      return fn(this._cache);
    } catch (e) {
      return this._failed(op, e, fallback);
    }
  }

  /** `fallback` after a failure `e` of the cache in `op` (one warning); rethrows the caller's errors. */
  _failed(op, e, fallback) {
    if (!(e instanceof NexxoCacheError) || CALLER_ERRORS.has(e.code)) throw e;
    this._warnOnce(e.code, `nexxo-cache ${op} failed (${e.message}); continuing without that cache entry`);
    this._failures = (this._failures || 0) + 1;
    return fallback;
  }

  /** True when the cache could not be opened and works as a no-op. */
  get disabled() {
    return this._disabled !== null;
  }

  // get and set are _run written out: they are a build's per-key calls, and a closure
  // per call costs while V8 still interprets them (a process's first thousand calls).
  get(category, key) {
    const c = this._cache;
    if (this._disabled !== null || c === null) return undefined;
    try {
      return c.get(category, key);
    } catch (e) {
      return this._failed('get', e, undefined);
    }
  }

  getString(category, key) {
    return this._run('getString', undefined, (c) => c.getString(category, key));
  }

  /**
   * Stores a value: batched with the other sets of this event-loop turn (see Cache#set).
   * Returns a promise that resolves once the write is durable (in the write-ahead log) and
   * rejects if its batch failed; a failure is also taken as the other failures of the
   * cache are (one warning, counted in getStats().failures), so a set that nobody awaits
   * never ends the process.
   */
  set(category, key, value, options) {
    const c = this._cache;
    if (this._disabled !== null || c === null) return RESOLVED;
    let p;
    try {
      p = c.set(category, key, value, options);
    } catch (e) {
      return this._failed('set', e, RESOLVED);
    }
    if (p !== RESOLVED && p !== this._watched) {
      // One watcher per batch (every set of a batch shares its promise).
      this._watched = p;
      p.catch((e) => {
        this._warnOnce(e.code || 'set', `nexxo-cache set failed (${e.message}); continuing without those cache entries`);
        this._failures = (this._failures || 0) + 1;
      });
    }
    return p;
  }

  delete(category, key) {
    this._run('delete', undefined, (c) => c.delete(category, key));
  }

  /** Removes every entry tagged `tag` (see Cache#invalidate): `{ entries, bytes }`. */
  invalidate(tag) {
    return this._run('invalidate', { entries: 0, bytes: 0 }, (c) => c.invalidate(tag));
  }

  batchSet(entries) {
    this._run('batchSet', undefined, (c) => c.batchSet(entries));
  }

  batchGet(keys) {
    return this._run('batchGet', keys.map(() => undefined), (c) => c.batchGet(keys));
  }

  getMany(category, keys) {
    return this._run('getMany', keys.map(() => undefined), (c) => c.getMany(category, keys));
  }

  /** The remote tier's statistics, or null without remotes (or with the cache disabled). */
  getRemoteStats() {
    const r = this._run('getRemoteStats', null, (c) => c.remoteStats());
    return r && r.remotes > 0 ? r : null;
  }

  /** Waits for queued uploads (at most `timeoutMs`); true when none are left. Never throws for the cache's sake. */
  syncRemote(timeoutMs = 30000) {
    return this._run('syncRemote', true, (c) => c.remoteSync(timeoutMs));
  }

  /** Numbers plus human strings; `disabled` is false or the reason. */
  getStats() {
    const zero = {
      hits: 0, misses: 0, writes: 0, deletes: 0, entries: 0, logicalBytes: 0, storedBytes: 0,
      diskBytes: 0, evictions: 0, corruptDropped: 0, hitRate: 0, readOnly: false, recovered: false,
    };
    const s = this._run('getStats', zero, (c) => c.stats());
    return {
      hits: s.hits,
      misses: s.misses,
      writes: s.writes,
      deletes: s.deletes,
      entries: s.entries,
      evictions: s.evictions,
      corruptDropped: s.corruptDropped,
      logicalBytes: s.logicalBytes,
      storedBytes: s.storedBytes,
      diskBytes: s.diskBytes,
      hitRateValue: s.hitRate,
      hitRate: `${(s.hitRate * 100).toFixed(2)}%`,
      size: humanSize(s.storedBytes),
      logicalSize: humanSize(s.logicalBytes),
      diskSize: humanSize(s.diskBytes),
      readOnly: s.readOnly,
      recovered: s.recovered,
      failures: this._failures || 0,
      disabled: this._disabled ? `${this._disabled.code}: ${this._disabled.message}` : false,
      cacheDir: this.cacheDir,
      limits: this._run('getStats', null, (c) => c.limits()),
      latency: this._run('getStats', null, (c) => c.latency()),
    };
  }

  enforcePolicy() {
    return this._run('enforcePolicy', noPolicyReport(), (c) => c.enforcePolicy());
  }

  compact(category) {
    this._run('compact', undefined, (c) => c.compact(category));
  }

  /** Clears the named categories, or every category when none are named. */
  clear(...categories) {
    this._run('clear', undefined, (c) => c.clear(categories.length ? categories : undefined));
  }

  flush() {
    this._run('flush', undefined, (c) => c.flush());
  }

  /** `_run` for the asynchronous calls: a cache failure resolves with `fallback`, counted. */
  _runAsync(op, fallback, fn) {
    if (this._disabled || !this._cache) return Promise.resolve(fallback);
    let p;
    try {
      p = fn(this._cache);
    } catch (e) {
      return Promise.reject(e);
    }
    return p.catch((e) => {
      if (!(e instanceof NexxoCacheError) || CALLER_ERRORS.has(e.code)) throw e;
      this._warnOnce(e.code, `nexxo-cache ${op} failed (${e.message}); continuing without that cache entry`);
      this._failures = (this._failures || 0) + 1;
      return fallback;
    });
  }

  /** `get` off the event loop: use it when remotes are configured (a miss waits on them). */
  getAsync(category, key) {
    return this._runAsync('getAsync', undefined, (c) => c.getAsync(category, key));
  }

  /** `batchGet` and `getMany` off the event loop. */
  batchGetAsync(keys) {
    return this._runAsync('batchGetAsync', keys.map(() => undefined), (c) => c.batchGetAsync(keys));
  }

  getManyAsync(category, keys) {
    return this._runAsync('getManyAsync', keys.map(() => undefined), (c) => c.getManyAsync(category, keys));
  }

  /** `syncRemote` off the event loop. */
  syncRemoteAsync(timeoutMs = 30000) {
    return this._runAsync('syncRemoteAsync', true, (c) => c.remoteSyncAsync(timeoutMs));
  }

  enforcePolicyAsync() {
    return this._runAsync('enforcePolicyAsync', noPolicyReport(), (c) => c.enforcePolicyAsync());
  }

  compactAsync(category) {
    return this._runAsync('compactAsync', undefined, (c) => c.compactAsync(category));
  }

  clearAsync(...categories) {
    return this._runAsync('clearAsync', undefined, (c) => c.clearAsync(categories.length ? categories : undefined));
  }

  /** `close` off the event loop (it waits for queued uploads); resolves when closed. */
  closeAsync() {
    const c = this._cache;
    this._cache = null;
    this._closed = true;
    if (managers.get(this.root) === this) managers.delete(this.root);
    return c ? c.closeAsync() : Promise.resolve();
  }

  /** Closes the native cache; getCacheManager(root) then opens a new manager. */
  close() {
    if (this._cache) this._cache.close();
    this._cache = null;
    this._closed = true;
    if (managers.get(this.root) === this) managers.delete(this.root);
  }

  get closed() {
    return !!this._closed;
  }
}

const managers = new Map();

/**
 * The CacheManager of a project root (one per resolved root), with its cache in
 * `<root>/.nexxo_cache`. Options apply when the manager is first created.
 */
function getCacheManager(root = process.cwd(), options = {}) {
  const resolved = path.resolve(root);
  let m = managers.get(resolved);
  if (!m) {
    m = new CacheManager(resolved, options);
    managers.set(resolved, m);
  }
  return m;
}

module.exports = { CacheManager, getCacheManager, humanSize };
