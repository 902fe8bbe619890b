'use strict';
// The low-level class: one handle of the C library, a method per C function.

const { load, NexxoCacheError, STATUS_CODES } = require('./native');

const OK = STATUS_CODES.indexOf('OK');
const NOT_FOUND = STATUS_CODES.indexOf('NOT_FOUND');
const BUFFER_TOO_SMALL = STATUS_CODES.indexOf('BUFFER_TOO_SMALL');
const TIMED_OUT = STATUS_CODES.indexOf('TIMED_OUT');
// NEXXO_MAX_KEY_LEN and NEXXO_MAX_VALUE_LEN (macros koffi cannot read; tests/bindings.rs
// checks these against the header).
const MAX_KEY_LEN = 4096;
const MAX_VALUE_LEN = 256 * 1024 * 1024;
/**
 * A batch of puts is written when it holds this many entries or bytes (or at the turn's
 * end). A handle's first full batch is written at PUT_BATCH_FIRST entries and each next
 * one at twice the last, up to PUT_BATCH_ENTRIES: a build's first loop of 1,000 sets
 * then has its first entries written while it encodes the rest, and waits at its end for
 * the last few hundred only (a new process's first 1,000 sets and their await: median
 * 9.4 ms against 12.6 with batches of 1,000, 20 runs each); after that, batches of 1,000
 * (smaller ones cost more per entry: 100,000 sets in batches of 250, 472-558 ms against
 * 365-484; starting again at 125 in every turn, a warmed-up loop of 100,000 sets that
 * awaits every 1,000th wrote 162-192k/s against 161-223k/s).
 */
const PUT_BATCH_FIRST = 125;
const PUT_BATCH_ENTRIES = 1000;
const PUT_BATCH_BYTES = 4 << 20;
/**
 * Between those bounds, every PUT_EARLY_MASK + 1 puts the binding asks whether the writer
 * is idle, and if so hands it the puts pending: a loop of sets then runs beside the
 * writing of its earlier sets instead of before it.
 */
const PUT_EARLY_MASK = 63;
/** A written batch's buffer is kept for the next batch when it is at most this large. */
const SPARE_MAX = 8 << 20;
/** get() reads values into slabs of this size while at least SLAB_MIN_FREE is left. */
const SLAB_SIZE = 64 * 1024;
const SLAB_MIN_FREE = 16 * 1024;
/** Key scratch space; the native out-length (a size_t) sits right after it. */
const KEY_SCRATCH = 16384;
const LE = require('node:os').endianness() === 'LE';
/** The index of a u64's low u32 in a Uint32Array over it. */
const LEN_LOW = LE ? 0 : 1;
const DISPOSE = typeof Symbol.dispose === 'symbol' ? Symbol.dispose : Symbol.for('nodejs.dispose');

/**
 * Caches holding puts not yet written (pending, or in flight on the thread pool). They
 * are written when the process exits (an 'exit' listener runs synchronously, and so do
 * the wait for the batch in flight and the native write), so a build that ends, or
 * calls process.exit(), without awaiting its sets loses none of them.
 */
const withPending = new Set();
let exitHooked = false;
function hookExit() {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const c of withPending) {
      try {
        if (c._handle.ptr) c._writePending(c._handle.ptr);
      } catch {
        // Exiting: nothing left to tell.
      }
    }
  });
}

const RESOLVED = Promise.resolve();
const ASCII = /^[\x00-\x7f]*$/;

/** A key as one string per byte sequence: ASCII strings as they are, else latin1 of the bytes. */
function keyId(key) {
  return typeof key === 'string' ? (ASCII.test(key) ? key : Buffer.from(key, 'utf8').toString('latin1')) : toBytes(key, 'a key').toString('latin1');
}

/** Closes handles that were garbage-collected without close(): a safety net only. */
const finalizer = new FinalizationRegistry(({ f, handle }) => {
  if (handle.ptr) {
    f.close(handle.ptr);
    handle.ptr = null;
  }
});

/**
 * The address of a buffer's first byte as a Number, or 0 when it cannot be one. Only
 * for buffers whose memory V8 never moves (Buffers and ArrayBuffers of their own, not
 * small on-heap typed arrays) and that the Cache keeps alive while it passes the address.
 */
function addressOf(L, buf) {
  const a = L.address(buf);
  return Number.isSafeInteger(a) ? a : 0;
}

function codeOf(status) {
  return STATUS_CODES[status] || `STATUS_${status}`;
}

/**
 * A batch of puts: packed records in `buf` (a spare one when given), the offset of each
 * key's value in it (`keys`: by category, then by keyId; the value's length is the u32
 * before it), and the promise its sets return. `wide`: whether any key's id was made by
 * keyId (a Buffer key, or a string with characters past ASCII); while none was, every
 * id is an ASCII string key itself (see offsetIn).
 */
function newBatch(spare) {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { buf: spare || Buffer.allocUnsafe(1 << 20), keys: new Map(), count: 0, at: 0, wide: false, promise, resolve, reject, settled: false };
}

/**
 * The offset of the value of `key` of `category` in batch `b` (or null), if it holds one.
 * A string key is looked up as it is while the batch holds no id made by keyId: every id
 * is then an ASCII string, which an ASCII key is its own id to, and which a key with a
 * character past ASCII can neither equal nor have (its id has a character past ASCII
 * too). That spares a build's gets keyId's test while its sets are pending (a regular
 * expression, which V8 ran through its runtime: ~4% of a first build's samples in
 * `perf`; the get's median 0.15-0.2 µs shorter without it, bench/node/first.js).
 */
function offsetIn(b, category, key) {
  const ids = b === null ? undefined : b.keys.get(category);
  if (ids === undefined) return undefined;
  return ids.get(typeof key === 'string' && !b.wide ? key : keyId(key));
}

/** A growable scratch buffer. */
function ensure(buf, n) {
  if (buf.length >= n) return buf;
  let size = buf.length;
  while (size < n) size *= 2;
  return Buffer.allocUnsafe(size);
}

/** `buf` when it holds `need` bytes, else a larger buffer holding its first `used` bytes. */
function grown(buf, used, need) {
  if (buf.length >= need) return buf;
  const bigger = ensure(buf, need);
  buf.copy(bigger, 0, 0, used);
  return bigger;
}

/** The bytes `s` (a string or bytes) takes at most in a packed record. */
function boundOf(s) {
  return typeof s === 'string' ? s.length * 3 : s.length;
}

/**
 * Writes one packed record at `at`: u8 category length, category (`cat` is its
 * NUL-terminated bytes), u32 key length, key, and with `value` given, u32 value length,
 * value. Strings are written as UTF-8. Returns the offset after the record. (`put`
 * writes the same record inline: a change of the layout is made in both.)
 */
function writeRecord(buf, at, cat, key, value) {
  const cl = cat.length - 1;
  buf[at++] = cl;
  // Categories are short: a loop beats Buffer#copy's call overhead.
  for (let j = 0; j < cl; j++) buf[at + j] = cat[j];
  at += cl;
  const klen = typeof key === 'string' ? buf.utf8Write(key, at + 4) : key.copy(buf, at + 4);
  buf.writeUInt32LE(klen, at);
  at += 4 + klen;
  if (value === undefined) return at;
  const vlen = typeof value === 'string' ? buf.utf8Write(value, at + 4) : value.copy(buf, at + 4);
  buf.writeUInt32LE(vlen, at);
  return at + 4 + vlen;
}

function toBytes(v, what) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  throw new TypeError(`${what} must be a string, Buffer or Uint8Array`);
}

/**
 * `nexxo_tag` structs ({ const uint8_t *data; size_t len; }, 16 bytes each on a 64-bit
 * machine) for `tags`; `held` keeps the tags' bytes referenced for the call.
 */
function tagArray(koffi, tags) {
  if (!Array.isArray(tags)) throw new TypeError('tags must be an array of strings, Buffers or Uint8Arrays');
  const held = tags.map((t) => toBytes(t, 'a tag'));
  const arr = Buffer.alloc(16 * Math.max(held.length, 1));
  held.forEach((b, i) => {
    arr.writeBigUInt64LE(b.length ? BigInt(koffi.address(b)) : 0n, 16 * i);
    arr.writeBigUInt64LE(BigInt(b.length), 16 * i + 8);
  });
  return { arr, held, count: held.length };
}

/** The tags of a batchSet entry (`[category, key, value, { tags }]` or `{ ..., tags }`). */
function entryTags(e) {
  const t = Array.isArray(e) ? e[3] && e[3].tags : e.tags;
  return t === undefined ? [] : t;
}

/**
 * `nexxo_entry` (40 bytes) and `nexxo_tags` (16 bytes) arrays for a tagged batch: every
 * category (NUL-terminated), key and value copied into one buffer they point into, the
 * tags laid out by `tagArray` (`held` keeps the buffers referenced for the call).
 */
function taggedBatch(koffi, entries) {
  const parts = entries.map((e) => {
    const [category, key, value] = Array.isArray(e) ? e : [e.category, e.key, e.value];
    if (typeof category !== 'string') throw new TypeError('a category must be a string');
    return { cat: Buffer.from(category + '\0', 'utf8'), key: toBytes(key, 'a key'), value: toBytes(value, 'a value'), tags: entryTags(e) };
  });
  // Every entry's tags in one nexxo_tag array; each entry's list points into it.
  const tags = tagArray(koffi, parts.flatMap((p) => {
    if (!Array.isArray(p.tags)) throw new TypeError('tags must be an array of strings, Buffers or Uint8Arrays');
    return p.tags;
  }));
  const tagBase = BigInt(koffi.address(tags.arr));
  let size = 0;
  for (const p of parts) size += p.cat.length + p.key.length + p.value.length;
  const data = Buffer.alloc(Math.max(size, 1));
  const base = BigInt(koffi.address(data));
  const ents = Buffer.alloc(40 * parts.length);
  const lists = Buffer.alloc(16 * parts.length);
  let at = 0;
  let ti = 0;
  const put = (b) => {
    if (b.length === 0) return 0n;
    b.copy(data, at);
    const addr = base + BigInt(at);
    at += b.length;
    return addr;
  };
  parts.forEach((p, i) => {
    ents.writeBigUInt64LE(put(p.cat), 40 * i);
    ents.writeBigUInt64LE(put(p.key), 40 * i + 8);
    ents.writeBigUInt64LE(BigInt(p.key.length), 40 * i + 16);
    ents.writeBigUInt64LE(put(p.value), 40 * i + 24);
    ents.writeBigUInt64LE(BigInt(p.value.length), 40 * i + 32);
    lists.writeBigUInt64LE(p.tags.length ? tagBase + BigInt(16 * ti) : 0n, 16 * i);
    lists.writeBigUInt64LE(BigInt(p.tags.length), 16 * i + 8);
    ti += p.tags.length;
  });
  return { ents, lists, held: [data, tags] };
}

/** A native nexxo_policy_report as the binding reports it. */
function policyReport(r) {
  return {
    evictedEntries: Number(r.evicted_entries),
    evictedBytes: Number(r.evicted_bytes),
    storedBytesBefore: Number(r.stored_bytes_before),
    storedBytesAfter: Number(r.stored_bytes_after),
    compacted: r.compacted,
  };
}

/** `clear`'s argument as a list: none (every category), one, or several. */
function categoryList(categories) {
  return categories === undefined ? [] : Array.isArray(categories) ? categories : [categories];
}

const REMOTE_MODES = { off: 0, 'read-only': 1, 'read-write': 2 };

/** Applies `options.remote` (see index.d.ts: RemoteOptions) to native options `o`. */
function applyRemote(f, o, r, set) {
  const urls = typeof r.url === 'string' ? [r.url] : r.urls || [];
  for (const u of urls) set('remote.urls', f.addRemote(o, u));
  if (r.mode !== undefined) {
    const m = REMOTE_MODES[r.mode];
    if (m === undefined) throw new NexxoCacheError('INVALID_ARGUMENT', `options.remote.mode must be 'read-write', 'read-only' or 'off', not ${r.mode}`);
    set('remote.mode', f.setRemoteMode(o, m));
  }
  if (r.name !== undefined) set('remote.name', f.setRemoteName(o, r.name));
  for (const c of r.localOnly || []) set(`remote.localOnly.${c}`, f.setRemoteLocalOnly(o, c, true));
  if (r.hmacKey !== undefined) {
    const k = toBytes(r.hmacKey, 'options.remote.hmacKey');
    set('remote.hmacKey', f.setRemoteHmacKey(o, k, k.length));
  }
  if (r.timeoutMs !== undefined) set('remote.timeoutMs', f.setRemoteTimeout(o, r.timeoutMs));
  if (r.retries !== undefined) set('remote.retries', f.setRemoteRetries(o, r.retries));
  if (r.cooldownMs !== undefined) set('remote.cooldownMs', f.setRemoteCooldown(o, r.cooldownMs));
  if (r.ttlSeconds !== undefined) set('remote.ttlSeconds', f.setRemoteTtl(o, r.ttlSeconds));
  // The token and header values are secrets: the errors name the option, never the value.
  if (r.token !== undefined) set('remote.token', f.setRemoteToken(o, String(r.token)));
  for (const [name, value] of Object.entries(r.headers || {})) set(`remote.headers.${name}`, f.addRemoteHeader(o, name, String(value)));
  if (r.caFile !== undefined) set('remote.caFile', f.setRemoteCaFile(o, r.caFile));
  if (r.checkExists !== undefined) set('remote.checkExists', f.setRemoteCheckExists(o, !!r.checkExists));
  if (r.proxy !== undefined) set('remote.proxy', f.setRemoteProxy(o, r.proxy === null ? '' : String(r.proxy)));
  if (r.queueBytes !== undefined || r.closeWaitMs !== undefined) {
    set('remote.queue', f.setRemoteQueue(o, r.queueBytes === undefined ? 64 * 1024 * 1024 : r.queueBytes,
      r.closeWaitMs === undefined ? 10000 : r.closeWaitMs));
  }
}

class Cache {
  /**
   * Opens (creating when missing) the cache in directory `dir`.
   * @param {string} dir
   * @param {import('./index').OpenOptions} [options]
   */
  static open(dir, options = {}) {
    return new Cache(dir, options);
  }

  constructor(dir, options = {}) {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('the cache directory must be a non-empty string');
    const L = load(options.libraryPath);
    this._L = L;
    this._f = L.f;
    this.path = dir;
    this._cats = new Map();
    this._known = new Set();
    /** Each category's record header for put, once checked (_putHeader). */
    this._putHeaders = new Map();
    /** The entries at which the pending batch is written (see PUT_BATCH_FIRST). */
    this._putLimit = PUT_BATCH_FIRST;
    /**
     * Puts not yet written: the batch being filled (`_pend`), and the one being written on
     * libuv's thread pool (`_flight`); each a `newBatch`. `_spare`: a buffer for the next.
     */
    this._pend = null;
    this._flight = null;
    this._spare = null;
    /** Reads answered from pending sets, by category: hits the library did not see. */
    this._pendHits = new Map();
    this._slab = null;
    this._slabOff = 0;
    this._slabAddr = 0;
    this._key = Buffer.allocUnsafeSlow(KEY_SCRATCH + 8);
    // get() passes addresses (getIntoAt): the key scratch, the out-length after it, the slab.
    this._keyAddr = addressOf(L, this._key);
    this._lenWords = new Uint32Array(this._key.buffer, this._key.byteOffset + KEY_SCRATCH, 2);
    this._val = Buffer.allocUnsafe(65536);
    this._out = Buffer.allocUnsafe(65536);
    this._len = new BigUint64Array(1);
    /** batchGet's output buffer size per key: the largest answer per key seen, plus a quarter. */
    this._batchPerKey = 1024 + 8;

    const f = this._f;
    const o = f.optionsNew();
    if (!o) throw new NexxoCacheError('PANIC', 'nexxo_options_new failed (out of memory)');
    try {
      const set = (op, s) => this._check(s, `options.${op}`);
      if (options.maxSize !== undefined) set('maxSize', f.setMaxSize(o, options.maxSize));
      for (const c of options.categories || []) set('categories', f.addCategory(o, c));
      for (const [c, n] of Object.entries(options.categoryMaxSize || {})) set(`categoryMaxSize.${c}`, f.setCategoryMaxSize(o, c, n));
      if (options.maxAge !== undefined) set('maxAge', f.setMaxAge(o, options.maxAge));
      if (options.compression !== undefined) {
        const c = { none: 0, lz4: 1 }[options.compression];
        if (c === undefined) throw new NexxoCacheError('INVALID_ARGUMENT', `options.compression must be 'lz4' or 'none', not ${options.compression}`);
        set('compression', f.setCompression(o, c));
      }
      if (options.syncWrites !== undefined) set('syncWrites', f.setSyncWrites(o, !!options.syncWrites));
      if (options.readOnly !== undefined) set('readOnly', f.setReadOnly(o, !!options.readOnly));
      if (options.fallbackDisabled !== undefined) set('fallbackDisabled', f.setFallbackDisabled(o, !!options.fallbackDisabled));
      if (options.memoryBudget !== undefined) set('memoryBudget', f.setMemoryBudget(o, options.memoryBudget));
      if (options.dirMode !== undefined) set('dirMode', f.setDirMode(o, options.dirMode));
      if (options.allowUntrustedDir !== undefined) set('allowUntrustedDir', f.setAllowUntrustedDir(o, !!options.allowUntrustedDir));
      if (options.ignoreEnvironment !== undefined) set('ignoreEnvironment', f.setIgnoreEnvironment(o, !!options.ignoreEnvironment));
      if (options.latency !== undefined) set('latency', f.setLatency(o, !!options.latency));
      if (options.remote) applyRemote(f, o, options.remote, set);
      const out = [null];
      this._check(f.open(dir, o, out), 'open');
      const addr = L.handleAddress(out[0]);
      this._handle = { ptr: out[0], addr: Number.isSafeInteger(addr) ? addr : 0 };
    } finally {
      f.optionsFree(o);
    }
    finalizer.register(this, { f, handle: this._handle }, this);
    // Writes to a read-only handle are refused when made, not when their batch is written
    // (an untrusted directory allowed to open is read-only: asked of the library).
    // (The environment can make a cache read-only or disabled too: NEXXO_CACHE_READ_ONLY,
    // NEXXO_CACHE_DISABLE.)
    const fromEnv = !options.ignoreEnvironment && !!(process.env.NEXXO_CACHE_READ_ONLY || process.env.NEXXO_CACHE_DISABLE);
    const st = options.allowUntrustedDir || options.fallbackDisabled || fromEnv ? this.stats() : null;
    this._readOnly = !!options.readOnly || (st !== null && st.readOnly);
    // A disabled cache (fallbackDisabled) drops writes: they are not kept pending either.
    this._dropsWrites = st !== null && st.disabled;
  }

  /** True once close() was called. */
  get closed() {
    return !this._handle.ptr;
  }

  _ptr(op) {
    const p = this._live(op);
    // Every other call sees the puts made before it: they are written first. (Reads of
    // one key look at the pending puts instead, so that a build's get-miss-set loop
    // keeps its sets batched.)
    if (this._unwritten()) this._writePending(p);
    return p;
  }

  /** The native handle, without writing pending puts. */
  _live(op) {
    const p = this._handle && this._handle.ptr;
    if (!p) throw new NexxoCacheError('CLOSED', `nexxo-cache ${op} on ${this.path}: the cache is closed`, -1);
    return p;
  }

  /**
   * Stores a value asynchronously, batched with the other puts of this event-loop turn
   * (as lmdb-js batches its puts): the returned promise resolves once the batch holding
   * it is written, atomically, with the durability of `set`, and rejects with the
   * batch's NexxoCacheError. Arguments are checked and the value copied at once, so the
   * caller may reuse its buffers. Any other call on the cache writes pending puts first,
   * so reads always see them. Await (or catch) the promise: an unhandled rejection
   * ends a Node process.
   */
  put(category, key, value) {
    const p = this._handle.ptr;
    if (!p) throw new NexxoCacheError('CLOSED', `nexxo-cache put on ${this.path}: the cache is closed`, -1);
    // Written for a process's first sets as much as for its millionth: while V8 still
    // interprets this code, every call and JavaScript-implemented Buffer method counts
    // (Buffer#copy and #writeUInt32LE cost 2-4 ms per 1,000 sets there), so the record
    // is written with TypedArray#set, utf8Write and byte stores only.
    let hdr = this._putHeaders.get(category);
    if (hdr === undefined) {
      hdr = this._putHeader(category, key, value);
      if (hdr === null) return RESOLVED;
    }
    let pend = this._pend;
    if (pend === null) pend = this._startBatch();
    const ks = typeof key === 'string';
    const vs = typeof value === 'string';
    // Any Uint8Array is written as it is (toBytes would make a Buffer of it).
    const k = ks || key instanceof Uint8Array ? key : toBytes(key, 'a key');
    const v = vs || value instanceof Uint8Array ? value : toBytes(value, 'a value');
    if (v.length > MAX_VALUE_LEN) throw this._tooLarge(category, v.length);
    const at = pend.at;
    const need = at + hdr.length + 8 + (ks ? k.length * 3 : k.length) + (vs ? v.length * 3 : v.length);
    let buf = pend.buf;
    if (buf.length < need) buf = pend.buf = grown(buf, at, need);
    // One record (see writeRecord), written past the batch's end, which moves only once
    // the record checks out.
    buf.set(hdr, at);
    let o = at + hdr.length + 4;
    let klen = k.length;
    if (ks) klen = buf.utf8Write(k, o);
    else buf.set(k, o);
    if (klen === 0 || klen > MAX_KEY_LEN) throw this._badKey('put', category, klen);
    // The u32 lengths little-endian, as byte stores (no call while V8 interprets).
    buf[o - 4] = klen;
    buf[o - 3] = klen >>> 8;
    buf[o - 2] = klen >>> 16;
    buf[o - 1] = klen >>> 24;
    o += klen + 4;
    let vlen = v.length;
    if (vs) vlen = buf.utf8Write(v, o);
    else buf.set(v, o);
    if (vlen > MAX_VALUE_LEN) throw this._tooLarge(category, vlen);
    buf[o - 4] = vlen;
    buf[o - 3] = vlen >>> 8;
    buf[o - 2] = vlen >>> 16;
    buf[o - 1] = vlen >>> 24;
    // The value's offset; its length is the u32 before it. An ASCII string key (as many
    // UTF-8 bytes as UTF-16 units) is its own id (keyId's, without its test).
    let ids = pend.keys.get(category);
    if (ids === undefined) pend.keys.set(category, (ids = new Map()));
    if (ks && klen === k.length) {
      ids.set(k, o);
    } else {
      ids.set(keyId(key), o);
      pend.wide = true;
    }
    pend.at = o + vlen;
    if (++pend.count >= this._putLimit || pend.at >= PUT_BATCH_BYTES) this._launch(p, true);
    else if ((pend.count & PUT_EARLY_MASK) === 0 && this._writerIdle(p)) this._launch(p, true, false);
    return pend.promise;
  }

  /**
   * A category's record header for puts (its length byte and UTF-8 name), once the
   * category is known to the cache; null when this handle drops writes (the put checked).
   * A read-only handle refuses the put. Called on a category's first put.
   */
  _putHeader(category, key, value) {
    const cat = this._checkedCat(category);
    if (this._readOnly) {
      toBytes(key, 'a key');
      toBytes(value, 'a value');
      throw new NexxoCacheError('READ_ONLY', `nexxo-cache set(${category}) on ${this.path}: the cache was opened read-only`);
    }
    if (this._dropsWrites) {
      const klen = Buffer.byteLength(toBytes(key, 'a key'));
      if (klen === 0 || klen > MAX_KEY_LEN) throw this._badKey('set', category, klen);
      toBytes(value, 'a value');
      return null;
    }
    const hdr = Buffer.alloc(cat.length);
    hdr[0] = cat.length - 1;
    cat.copy(hdr, 1, 0, cat.length - 1);
    this._putHeaders.set(category, hdr);
    return hdr;
  }

  /** The error for a key of `klen` bytes, outside 1 to MAX_KEY_LEN. */
  _badKey(op, category, klen) {
    return new NexxoCacheError(klen === 0 ? 'INVALID_ARGUMENT' : 'TOO_LARGE', `nexxo-cache ${op}(${category}) on ${this.path}: a key must be 1 to ${MAX_KEY_LEN} bytes, not ${klen}`);
  }

  /** The error for a value of `vlen` bytes, over MAX_VALUE_LEN. */
  _tooLarge(category, vlen) {
    return new NexxoCacheError('TOO_LARGE', `nexxo-cache put(${category}) on ${this.path}: a value must be at most ${MAX_VALUE_LEN} bytes, not ${vlen}`);
  }

  /**
   * Whether the writer is idle: no batch in flight, or the one in flight written (asked
   * of the library without waiting; false when it cannot say, before 1.10.5).
   */
  _writerIdle(p) {
    const f = this._f;
    return f.batchLanded !== undefined && (this._flight === null || f.batchLanded(p));
  }

  /** A new pending batch, started on libuv's pool at the end of this event-loop turn. */
  _startBatch() {
    const pend = (this._pend = newBatch(this._spare));
    this._spare = null;
    hookExit();
    withPending.add(this);
    setImmediate(() => {
      if (this._pend === pend && this._handle.ptr) this._launch(this._handle.ptr, false);
    });
    return pend;
  }

  /**
   * Stores a value: a batched asynchronous write, as `put` (the seed's `set`, made as
   * fast as lmdb-js's `put`). The promise resolves once the batch holding the write is in
   * the write-ahead log (it then survives kill -9 of this process) and rejects with the
   * batch's NexxoCacheError. Reads (`get`, `getString`) see it at once; any other call
   * writes pending sets first; `close()` and process exit write them too.
   */
  set(category, key, value, options) {
    if (options && options.tags !== undefined && options.tags.length > 0) {
      // A tagged set is one synchronous native write (after the pending sets, so the
      // order of writes holds): durable when the promise is made.
      this.setSync(category, key, value, options);
      return RESOLVED;
    }
    return this.put(category, key, value);
  }

  /** Whether sets are not yet written: a batch pending or in flight. */
  _unwritten() {
    return this._pend !== null || this._flight !== null;
  }

  /**
   * The value of a set not yet written (pending, or in flight: the later first) as a
   * Buffer of its own, or undefined when there is none.
   */
  _pending(category, key) {
    let b = this._pend;
    let at = offsetIn(b, category, key);
    if (at === undefined) {
      b = this._flight;
      at = offsetIn(b, category, key);
      if (at === undefined) return undefined;
    }
    this._pendHits.set(category, (this._pendHits.get(category) || 0) + 1);
    return Buffer.from(b.buf.subarray(at, at + b.buf.readUInt32LE(at - 4)));
  }

  /** A promise that resolves when the puts made so far are written (rejects if one batch failed). */
  get flushed() {
    const waits = [this._flight, this._pend].filter((b) => b !== null).map((b) => b.promise);
    return waits.length === 0 ? Promise.resolve() : Promise.all(waits).then(() => undefined);
  }

  /**
   * Starts writing the pending batch on libuv's thread pool (the Node-API module's
   * batchSetPackedAsync), so JavaScript goes on meanwhile; one batch is in flight at a
   * time, in order. A full batch (`full`) waits for the one in flight, which bounds what
   * a synchronous loop of sets holds to two batches; at the end of a turn, a batch that
   * finds one in flight is started when that one lands. `ramp`: the launch moves the
   * handle's batch size up (a full batch's does; one handed to an idle writer does not).
   * Without the module (koffi): the batch is written at once.
   */
  _launch(p, full, ramp = full) {
    const pend = this._pend;
    if (pend === null) return;
    if (ramp) this._putLimit = Math.min(this._putLimit * 2, PUT_BATCH_ENTRIES);
    const f = this._f;
    if (f.batchSetPackedAsync === undefined) {
      this._writePending(p);
      return;
    }
    if (this._flight !== null) {
      if (!full) return;
      this._waitFlight(p);
    }
    this._pend = null;
    let landing;
    try {
      landing = f.batchSetPackedAsync(p, pend.buf, pend.at, pend.count);
    } catch (e) {
      // Not started (a TypeError: a bug): its sets fail, none is left pending.
      pend.settled = true;
      pend.reject(e);
      if (this._flight === null) withPending.delete(this);
      return;
    }
    this._flight = pend;
    landing.then((s) => this._landed(pend, s));
  }

  /** The batch `b` written with status `s` (its promise's resolution). */
  _landed(b, s) {
    if (!b.settled) this._settle(b, s);
    if (this._flight !== b) return;
    this._flight = null;
    this._recycle(b);
    if (this._pend === null) withPending.delete(this);
    else if (this._handle.ptr) this._launch(this._handle.ptr, false);
  }

  /** Waits, blocking, until the batch in flight is written, and settles its promise. */
  _waitFlight(p) {
    const b = this._flight;
    this._flight = null;
    const s = this._f.batchWait(p);
    // -1: written, and its promise has its status (_landed settles it).
    if (s >= 0) this._settle(b, s);
    this._recycle(b);
  }

  _recycle(b) {
    if (b.buf.length <= SPARE_MAX) this._spare = b.buf;
  }

  _settle(b, s) {
    b.settled = true;
    if (s === OK) b.resolve();
    else b.reject(new NexxoCacheError(codeOf(s), `nexxo-cache put (a batch of ${b.count}) on ${this.path}: ${this._f.statusStr(s)}`, s));
  }

  /** Writes every put not yet written: waits for the batch in flight, then writes the pending one. */
  _writePending(p) {
    if (this._flight !== null) this._waitFlight(p);
    const b = this._pend;
    if (b !== null) {
      this._pend = null;
      this._settle(b, this._f.batchSetPacked(p, b.buf, b.at, b.count));
      this._recycle(b);
    }
    withPending.delete(this);
  }

  /** The category's bytes, checked once against the cache's categories. */
  _checkedCat(category) {
    const cat = this._cat(category);
    if (!this._known.has(category)) {
      const raw = {};
      const s = this._f.categoryStats(this._handle.ptr, category, raw);
      if (s !== OK) this._check(s, 'put', category);
      this._known.add(category);
    }
    return cat;
  }

  _check(status, op, category) {
    if (status === OK) return;
    const where = category === undefined ? op : `${op}(${category})`;
    throw new NexxoCacheError(codeOf(status), `nexxo-cache ${where} on ${this.path}: ${this._f.statusStr(status)}`, status);
  }

  /** The category's name as NUL-terminated bytes, encoded once. */
  _cat(category) {
    let b = this._cats.get(category);
    if (b === undefined) {
      if (typeof category !== 'string') throw new TypeError('a category must be a string');
      b = Buffer.from(category + '\0', 'utf8');
      b.addr = addressOf(this._L, b);
      this._cats.set(category, b);
    }
    return b;
  }

  /** Encodes a key into the scratch buffer when it is a string; returns [bytes, length]. */
  _keyBytes(key) {
    if (typeof key === 'string') {
      if (key.length * 3 <= KEY_SCRATCH) return [this._key, this._key.utf8Write(key, 0, KEY_SCRATCH)];
      const b = Buffer.from(key, 'utf8');
      return [b, b.length];
    }
    const b = toBytes(key, 'a key');
    return [b, b.length];
  }

  /** Reads a value into the scratch output buffer; returns its length or -1 on a miss. */
  _getInto(op, category, key) {
    const p = this._live(op);
    const cat = this._cat(category);
    const [k, klen] = this._keyBytes(key);
    for (;;) {
      const s = this._f.getInto(p, cat, k, klen, this._out, this._out.length, this._len);
      if (s === OK) return Number(this._len[0]);
      if (s === NOT_FOUND) return -1;
      if (s === BUFFER_TOO_SMALL) {
        this._out = ensure(this._out, Number(this._len[0]));
        continue;
      }
      this._check(s, op, category);
    }
  }

  /**
   * The value as a Buffer of its own bytes, or undefined on a miss. Small values are
   * read straight into a shared 64 KiB slab and returned as views of it (no copy, one
   * allocation per slab, as Node's own Buffer pool does), so a value kept alive keeps
   * its slab alive.
   */
  get(category, key) {
    // Written out for a process's first reads as for its millionth (see put): no helper
    // calls on the way to the native read, and the key encoded with utf8Write (1,000
    // TextEncoder#encodeInto calls cost 1.1-1.3 ms while V8 interprets them, utf8Write's
    // 0.35-0.5 ms; warmed up, both take 0.1-0.2 µs).
    const p = this._handle.ptr;
    if (!p) this._live('get');
    const cat = this._cats.get(category) || this._cat(category);
    if (this._pend !== null || this._flight !== null) {
      const v = this._pending(category, key);
      if (v !== undefined) return v;
    }
    let slab = this._slab;
    let off = this._slabOff;
    if (slab === null || slab.length - off < SLAB_MIN_FREE) {
      slab = this._slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this._slabAddr = addressOf(this._L, slab);
      off = 0;
    }
    let s;
    let n;
    const h = this._handle.addr;
    if (typeof key === 'string' && key.length * 3 <= KEY_SCRATCH && h !== 0 && this._keyAddr !== 0 && this._slabAddr !== 0 && cat.addr !== 0) {
      // The fast path: every buffer passed as an address (about a quarter of a get's cost
      // in Node is koffi's handling of Buffer arguments).
      const klen = this._key.utf8Write(key, 0, KEY_SCRATCH);
      s = this._f.getIntoAt(h, cat.addr, this._keyAddr, klen, this._slabAddr + off, slab.length - off, this._keyAddr + KEY_SCRATCH);
      // The length's low word (a slab holds less than 4 GiB).
      if (s === OK) n = this._lenWords[LEN_LOW];
    } else {
      const [k, klen] = this._keyBytes(key);
      s = this._f.getInto(p, cat, k, klen, off === 0 ? slab : slab.subarray(off), slab.length - off, this._len);
      if (s === OK) n = Number(this._len[0]);
    }
    if (s === OK) {
      this._slabOff = (off + n + 7) & ~7;
      return slab.subarray(off, off + n);
    }
    if (s === NOT_FOUND) return undefined;
    if (s !== BUFFER_TOO_SMALL) this._check(s, 'get', category);
    // Larger than the slab's free space: a buffer of its own.
    const m = this._getInto('get', category, key);
    return m < 0 ? undefined : Buffer.from(this._out.subarray(0, m));
  }

  /** The value decoded as a string (UTF-8 unless told), or undefined on a miss. */
  getString(category, key, encoding = 'utf8') {
    if (this._unwritten()) {
      this._cat(category);
      const v = this._pending(category, key);
      if (v !== undefined) return v.toString(encoding);
    }
    const n = this._getInto('getString', category, key);
    return n < 0 ? undefined : this._out.toString(encoding, 0, n);
  }

  /** Stores a value with one synchronous native write (no batching); throws on failure. */
  setSync(category, key, value, options) {
    const p = this._ptr('set');
    const cat = this._cat(category);
    const [k, klen] = this._keyBytes(key);
    let v;
    let vlen;
    if (typeof value === 'string') {
      this._val = ensure(this._val, value.length * 3);
      v = this._val;
      vlen = v.utf8Write(value, 0);
    } else {
      v = toBytes(value, 'a value');
      vlen = v.length;
    }
    const tags = options && options.tags;
    if (tags !== undefined && tags.length > 0) {
      const t = tagArray(this._L.koffi, tags);
      this._check(this._f.setTagged(p, cat, k, klen, v, vlen, t.arr, t.count), 'set', category);
      void t.held;
      return;
    }
    this._check(this._f.set(p, cat, k, klen, v, vlen), 'set', category);
  }

  /**
   * Removes every entry that carries `tag` (a string or bytes), in every category, in one
   * atomic write: `{ entries, bytes }` removed (stored bytes). Entries get tags through
   * `set(category, key, value, { tags })`.
   */
  invalidate(tag) {
    const p = this._ptr('invalidate');
    const t = toBytes(tag, 'a tag');
    const n = [0n];
    const b = [0n];
    this._check(this._f.invalidate(p, t, t.length, n, b), 'invalidate');
    return { entries: Number(n[0]), bytes: Number(b[0]) };
  }

  delete(category, key) {
    const p = this._ptr('delete');
    const [k, klen] = this._keyBytes(key);
    this._check(this._f.del(p, this._cat(category), k, klen), 'delete', category);
  }

  /** Packs [category, key, value?] records into the scratch pack buffer. */
  _pack(items, withValues) {
    // One pass, straight into the scratch buffer: an upper bound of the size first
    // (UTF-8 takes at most 3 bytes per UTF-16 unit), no intermediate Buffers. One size
    // check for the whole call: a check per record measured 0.06-0.08 µs more per key.
    const n = items.length;
    const cats = new Array(n);
    const keys = new Array(n);
    const values = withValues ? new Array(n) : null;
    let bound = 0;
    for (let i = 0; i < n; i++) {
      const it = items[i];
      const isArray = Array.isArray(it);
      const category = isArray ? it[0] : it.category;
      const key = isArray ? it[1] : it.key;
      const cat = this._cat(category);
      if (cat.length - 1 > 255) throw new NexxoCacheError('UNKNOWN_CATEGORY', `nexxo-cache: unknown category ${category}`);
      const k = typeof key === 'string' ? key : toBytes(key, 'a key');
      cats[i] = cat;
      keys[i] = k;
      bound += cat.length + 4 + boundOf(k);
      if (withValues) {
        const value = isArray ? it[2] : it.value;
        const v = typeof value === 'string' ? value : toBytes(value, 'a value');
        values[i] = v;
        bound += 4 + boundOf(v);
      }
    }
    const buf = (this._packBuf = ensure(this._packBuf || Buffer.allocUnsafe(65536), bound));
    let at = 0;
    for (let i = 0; i < n; i++) at = writeRecord(buf, at, cats[i], keys[i], withValues ? values[i] : undefined);
    return [buf, at];
  }

  /**
   * Stores entries atomically: all or none. Each entry is [category, key, value] or
   * {category, key, value}.
   */
  batchSet(entries) {
    const p = this._ptr('batchSet');
    if (entries.length === 0) return;
    if (entries.some((e) => e && entryTags(e).length > 0)) {
      const b = taggedBatch(this._L.koffi, entries);
      this._check(this._f.batchSetTagged(p, b.ents, b.lists, entries.length), 'batchSet');
      void b.held;
      return;
    }
    const [buf, len] = this._pack(entries, true);
    this._check(this._f.batchSetPacked(p, buf, len, entries.length), 'batchSet');
  }

  /** Reads many keys at once; each is [category, key] or {category, key}. */
  batchGet(keys) {
    const p = this._ptr('batchGet');
    if (keys.length === 0) return [];
    const [buf, len] = this._pack(keys, false);
    return this._readPacked(p, 'batchGet', buf, len, keys.length, (i) => (Array.isArray(keys[i]) ? keys[i][0] : keys[i].category));
  }

  /**
   * Reads many keys of one category at once (as lmdb-js's getMany, synchronously): the
   * values in key order, each a Buffer or undefined. batchGet without a [category, key]
   * pair per key.
   */
  getMany(category, keys) {
    const p = this._ptr('getMany');
    const cat = this._cat(category);
    if (cat.length - 1 > 255) throw new NexxoCacheError('UNKNOWN_CATEGORY', `nexxo-cache: unknown category ${category}`);
    if (keys.length === 0) return [];
    const n = keys.length;
    const ks = new Array(n);
    let need = 0;
    for (let i = 0; i < n; i++) {
      const key = keys[i];
      const k = (ks[i] = typeof key === 'string' ? key : toBytes(key, 'a key'));
      need += boundOf(k);
    }
    // As _pack: one size check for the whole call.
    const buf = (this._packBuf = ensure(this._packBuf || Buffer.allocUnsafe(65536), need + n * (cat.length + 4)));
    let at = 0;
    for (let i = 0; i < n; i++) at = writeRecord(buf, at, cat, ks[i]);
    return this._readPacked(p, 'getMany', buf, at, n, () => category);
  }

  /**
   * Runs a packed batch read. The answer is written straight into a buffer of its own,
   * which the values are views of: sized from the largest answer per key seen so far,
   * since a buffer found too small means reading everything again.
   */
  _readPacked(p, op, buf, len, count, categoryOf) {
    let all = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, Math.ceil(count * this._batchPerKey)));
    for (;;) {
      const s = this._f.batchGetPacked(p, buf, len, count, all, all.length, this._len);
      if (s === BUFFER_TOO_SMALL) {
        all = Buffer.allocUnsafeSlow(Number(this._len[0]));
        continue;
      }
      this._check(s, op);
      break;
    }
    return this._parsePacked(all, Number(this._len[0]), count, op, categoryOf);
  }

  /** The values of a packed batch read's answer `all` (`used` bytes of it). */
  _parsePacked(all, used, count, op, categoryOf) {
    this._batchPerKey = Math.max(this._batchPerKey, (used / count) * 1.25);
    // Values keep the whole buffer alive: one mostly unused is traded for a copy.
    if (used < all.length / 2) all = Buffer.from(all.subarray(0, used));
    const out = new Array(count);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const st = all.readUInt32LE(at);
      const n = all.readUInt32LE(at + 4);
      at += 8;
      if (st === OK) out[i] = all.subarray(at, at + n);
      else if (st === NOT_FOUND) out[i] = undefined;
      else this._check(st, op, categoryOf(i));
      at += n;
    }
    return out;
  }

  /** Reads of pending sets (answered here, not by the library): of one category, or all. */
  _pendingHits(category) {
    if (category !== undefined) return this._pendHits.get(category) || 0;
    let n = 0;
    for (const v of this._pendHits.values()) n += v;
    return n;
  }

  _stats(raw, category) {
    const extra = this._pendingHits(category);
    const hits = Number(raw.hits) + extra;
    const misses = Number(raw.misses);
    return {
      hits,
      misses,
      writes: Number(raw.writes),
      deletes: Number(raw.deletes),
      entries: Number(raw.entries),
      logicalBytes: Number(raw.logical_bytes),
      storedBytes: Number(raw.stored_bytes),
      diskBytes: Number(raw.disk_bytes),
      evictions: Number(raw.evictions),
      corruptDropped: Number(raw.corrupt_dropped),
      hitRate: extra === 0 ? raw.hit_rate : hits / (hits + misses),
      readOnly: raw.read_only,
      disabled: raw.disabled,
      disabledReason: raw.disabled ? codeOf(raw.disabled_reason) : null,
      recovered: raw.recovered,
    };
  }

  /** Statistics of the whole cache, as numbers. */
  stats() {
    const raw = {};
    this._check(this._f.stats(this._ptr('stats'), raw), 'stats');
    return this._stats(raw);
  }

  categoryStats(category) {
    const raw = {};
    this._check(this._f.categoryStats(this._ptr('categoryStats'), category, raw), 'categoryStats', category);
    return this._stats(raw, category);
  }

  /** The library's JSON statistics (totals and every category), parsed. */
  statsJson() {
    const p = this._ptr('statsJson');
    const b = {};
    let text;
    if (this._f.statsJsonText) {
      // The library's Node-API module (native.js) hands the text over as a string.
      this._check(this._f.statsJsonText(p, b), 'statsJson');
      text = b.text;
    } else {
      this._check(this._f.statsJson(p, b), 'statsJson');
      try {
        text = Buffer.from(this._L.koffi.view(b.data, Number(b.len))).toString('utf8');
      } finally {
        this._f.bytesFree(b);
      }
    }
    const j = JSON.parse(text);
    const add = (o, n) => {
      if (!o || n === 0) return;
      o.hits += n;
      o.hit_rate = o.hits / (o.hits + o.misses);
    };
    add(j.totals, this._pendingHits());
    for (const [c, n] of this._pendHits) add(j.categories && j.categories[c], n);
    return j;
  }

  /**
   * The limits that apply to this handle and where each came from ('option',
   * 'environment', 'stored' in the cache, or 'default'); null for a disabled cache.
   */
  limits() {
    const l = this.statsJson().limits;
    if (!l) return null;
    return {
      maxSize: l.max_size,
      maxAgeSecs: l.max_age_secs,
      categoryMaxSize: { ...l.category_max_size },
      source: { maxSize: l.source.max_size, maxAge: l.source.max_age, categoryMaxSize: l.source.category_max_size },
    };
  }

  /**
   * This handle's latency since its open, per operation (`get`, `set`, `batchGet`,
   * `batchSet`, `remoteGet`, `upload`): `{ count, p50, p90, p99, p999, max, mean }` in
   * microseconds (within 6.25%), with `categories` for the per-category ones; `null`
   * when recording is off (`latency: false`, `NEXXO_CACHE_LATENCY=0`). Native gets are
   * timed one in `getSample` (16); the manager's `set` is timed as the batches it writes.
   */
  latency() {
    const l = this.statsJson().latency;
    if (!l || !l.enabled) return null;
    const one = (o) => ({ count: o.count, p50: o.p50_us, p90: o.p90_us, p99: o.p99_us, p999: o.p999_us, max: o.max_us, mean: o.mean_us });
    const out = { getSample: l.get_sample };
    for (const [name, o] of Object.entries(l.ops)) {
      const key = name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
      const categories = {};
      for (const [cat, c] of Object.entries(o.categories || {})) categories[cat] = one(c);
      out[key] = { ...one(o), categories };
    }
    return out;
  }

  /** The remote tier's statistics, every remote added up (all zero without remotes). */
  remoteStats() {
    const r = {};
    this._check(this._f.remoteStats(this._ptr('remoteStats'), r), 'remoteStats');
    return {
      remotes: Number(r.remotes),
      hits: Number(r.hits),
      misses: Number(r.misses),
      errors: Number(r.errors),
      rejected: Number(r.rejected),
      skipped: Number(r.skipped),
      backfills: Number(r.backfills),
      uploads: Number(r.uploads),
      uploadErrors: Number(r.upload_errors),
      uploadDropped: Number(r.upload_dropped),
      queued: Number(r.queued),
      bytesUp: Number(r.bytes_up),
      bytesDown: Number(r.bytes_down),
      gets: Number(r.gets),
      getMeanMicros: r.get_mean_us,
      getMaxMicros: Number(r.get_max_us),
      openBreakers: Number(r.open_breakers),
    };
  }

  /**
   * Waits until queued uploads have been sent (or have failed), at most `timeoutMs`.
   * Returns true when the queue drained, false when uploads were still pending.
   */
  remoteSync(timeoutMs = 30000) {
    const s = this._f.remoteSync(this._ptr('remoteSync'), timeoutMs);
    if (s === TIMED_OUT) return false;
    this._check(s, 'remoteSync');
    return true;
  }

  /** Evicts now and reports what was done. */
  enforcePolicy() {
    const r = {};
    this._check(this._f.enforcePolicy(this._ptr('enforcePolicy'), r), 'enforcePolicy');
    return policyReport(r);
  }

  /** Compacts one category, or all. */
  compact(category) {
    this._check(this._f.compact(this._ptr('compact'), category === undefined ? null : category), 'compact', category);
  }

  /** Clears the given categories, or every one when none are given. */
  clear(categories) {
    const list = categoryList(categories);
    this._check(this._f.clear(this._ptr('clear'), list, list.length), 'clear', list.join(','));
  }

  /** Makes everything acknowledged durable on disk. */
  flush() {
    this._check(this._f.flush(this._ptr('flush')), 'flush');
  }

  // ---- Off the event loop: calls that may wait on a remote or on a long local job run
  // on libuv's thread pool (koffi's asynchronous calls) and return Promises. The handle
  // stays open while any of them runs: close() then only marks the cache closed, and the
  // last call to finish closes it.

  /** Runs native function `name` with `args` on the thread pool; resolves with `done(status)`. */
  _async(op, name, args, done) {
    // koffi's declaration of it: its `.async` form (the Node-API module has none).
    const fn = this._L.koffiFn(name);
    const p = this._ptr(op);
    this._inflight = (this._inflight || 0) + 1;
    return new Promise((resolve, reject) => {
      fn.async(p, ...args, (err, status) => {
        // `args` (the key's buffer among them) stays referenced until the call is done.
        void args;
        try {
          if (err) reject(err);
          else resolve(done(status));
        } catch (e) {
          reject(e);
        } finally {
          this._inflight -= 1;
          if (this._inflight === 0) {
            if (this._closeWhenIdle) {
              const q = this._closeWhenIdle;
              this._closeWhenIdle = null;
              this._f.close(q);
            }
            const waiters = this._idleWaiters || [];
            this._idleWaiters = [];
            for (const w of waiters) w();
          }
        }
      });
    });
  }

  /**
   * `get` off the event loop: what to call when remotes are configured, since a local
   * miss then waits on the network (up to the remote timeout). Resolves with a Buffer
   * (a copy the caller owns) or undefined.
   */
  getAsync(category, key) {
    const cat = this._cat(category);
    if (this._unwritten()) {
      const v = this._pending(category, key);
      if (v !== undefined) return Promise.resolve(Buffer.from(v));
    }
    const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(toBytes(key, 'a key'));
    const out = {};
    return this._async('getAsync', 'get', [cat, k, k.length, out], (s) => {
      if (s === NOT_FOUND) return undefined;
      this._check(s, 'getAsync', category);
      try {
        // koffi.view is an ArrayBuffer over the library's memory: copy it before freeing.
        const n = Number(out.len);
        const b = Buffer.allocUnsafe(n);
        if (n > 0) b.set(new Uint8Array(this._L.koffi.view(out.data, n)));
        return b;
      } finally {
        this._f.bytesFree(out);
      }
    });
  }

  /**
   * `batchGet` off the event loop (its remote misses wait on the network): resolves with
   * the values in key order, each a Buffer or undefined.
   */
  batchGetAsync(keys) {
    if (keys.length === 0) return Promise.resolve([]);
    const [scratch, len] = this._pack(keys, false);
    // The scratch buffer is the next call's: this call gets a copy of its own.
    return this._packedAsync('batchGetAsync', Buffer.from(scratch.subarray(0, len)), keys.length,
      (i) => (Array.isArray(keys[i]) ? keys[i][0] : keys[i].category));
  }

  /** `getMany` off the event loop. */
  getManyAsync(category, keys) {
    return this.batchGetAsync(keys.map((k) => [category, k]));
  }

  /** A packed batch read on the thread pool, with buffers of its own; grows and retries when the answer does not fit. */
  _packedAsync(op, packed, count, categoryOf) {
    const attempt = (size) => {
      const all = Buffer.allocUnsafeSlow(size);
      const lenOut = new BigUint64Array(1);
      return this._async(op, 'batchGetPacked', [packed, packed.length, count, all, all.length, lenOut], (s) => {
        if (s === BUFFER_TOO_SMALL) return { retry: Number(lenOut[0]) };
        this._check(s, op);
        return { values: this._parsePacked(all, Number(lenOut[0]), count, op, categoryOf) };
      }).then((r) => (r.retry !== undefined ? attempt(r.retry) : r.values));
    };
    return attempt(Math.max(SLAB_SIZE, Math.ceil(count * this._batchPerKey)));
  }

  /** `remoteSync` off the event loop: resolves true when the upload queue drained. */
  remoteSyncAsync(timeoutMs = 30000) {
    return this._async('remoteSyncAsync', 'remoteSync', [timeoutMs], (s) => {
      if (s === TIMED_OUT) return false;
      this._check(s, 'remoteSyncAsync');
      return true;
    });
  }

  /** `enforcePolicy` off the event loop. */
  enforcePolicyAsync() {
    const r = {};
    return this._async('enforcePolicyAsync', 'enforcePolicy', [r], (s) => {
      this._check(s, 'enforcePolicyAsync');
      return policyReport(r);
    });
  }

  /** `compact` off the event loop. */
  compactAsync(category) {
    return this._async('compactAsync', 'compact', [category === undefined ? null : category], (s) => this._check(s, 'compactAsync', category));
  }

  /** `clear` off the event loop. */
  clearAsync(categories) {
    const list = categoryList(categories);
    return this._async('clearAsync', 'clear', [list, list.length], (s) => this._check(s, 'clearAsync', list.join(',')));
  }

  /**
   * Closes the cache off the event loop (closing waits for queued uploads, up to the
   * remote's close wait, 10 s by default). Resolves once the native close is done.
   */
  closeAsync() {
    if (!this._handle || !this._handle.ptr) return Promise.resolve();
    if (this._unwritten()) this._writePending(this._handle.ptr);
    const p = this._handle.ptr;
    this._handle.ptr = null;
    finalizer.unregister(this);
    const closeNow = () => new Promise((resolve, reject) => this._L.koffiFn('close').async(p, (err) => (err ? reject(err) : resolve())));
    if (!this._inflight) return closeNow();
    // Calls still running keep the handle: close after the last.
    return new Promise((resolve) => (this._idleWaiters = this._idleWaiters || []).push(resolve)).then(closeNow);
  }

  /**
   * Closes the cache. Idempotent; any later call throws a NexxoCacheError with code
   * 'CLOSED'. With asynchronous calls still running, the native handle is closed when the
   * last of them finishes.
   */
  close() {
    if (this._handle && this._handle.ptr) {
      if (this._unwritten()) this._writePending(this._handle.ptr);
      const p = this._handle.ptr;
      this._handle.ptr = null;
      finalizer.unregister(this);
      if (this._inflight) this._closeWhenIdle = p;
      else this._f.close(p);
    }
  }

  [DISPOSE]() {
    this.close();
  }
}

/** The version of the loaded native library. */
function nativeVersion(libraryPath) {
  return load(libraryPath).f.version();
}

module.exports = { Cache, NexxoCacheError, nativeVersion };
