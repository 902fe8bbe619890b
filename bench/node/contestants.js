'use strict';
// The Node contestants, shared by seed.js (the quick side-by-side) and worker.js (one
// run per process, for bench/run.py). Each opens a store in a directory, writes keys
// one by one or in batches of 1000, and reads them.

const { Cache, getCacheManager, nativeVersion } = require('../../bindings/node/lib/index.js');
const { open: lmdbOpen } = require('lmdb');
const { ClassicLevel } = require('classic-level');

const contestants = {
  // The seed's API, what a build tool calls: getCacheManager(root) (its cache in
  // <root>/.nexxo_cache, never failing the build), set per key (a Promise, resolved once
  // durable), get per key.
  'nexxo-manager': {
    prepare: () => nativeVersion(),
    open: async (dir) => getCacheManager(dir),
    put: (m, k, v) => {
      m.lastPut = m.set('transform', k, v);
    },
    flush: async (m) => m.lastPut,
    get: (m, k) => m.get('transform', k),
    close: async (m) => m.close(),
  },
  'nexxo-node': {
    // Loads the native library (lmdb-js and classic-level load theirs at require), so
    // that `open` times the opening of a store only.
    prepare: () => nativeVersion(),
    open: async (dir) => Cache.open(dir),
    // Batched asynchronous puts, as lmdb-js's below: `flush` awaits them.
    put: (c, k, v) => {
      c.lastPut = c.put('transform', k, v);
    },
    flush: async (c) => c.lastPut,
    putBatch: async (c, items) => c.batchSet(items.map(([k, v]) => ['transform', k, v])),
    get: (c, k) => c.get('transform', k),
    // Synchronous; each element a Buffer or undefined.
    getBatch: async (c, ks) => c.getMany('transform', ks),
    close: async (c) => c.close(),
  },
  lmdb: {
    open: async (dir) => lmdbOpen({ path: dir, encoding: 'binary' }),
    // lmdb-js batches asynchronous puts into transactions itself; `flush` awaits them.
    put: (db, k, v) => {
      db.lastPut = db.put(k, v);
    },
    flush: async (db) => db.lastPut,
    putBatch: async (db, items) => {
      let last;
      for (const [k, v] of items) last = db.put(k, v);
      await last;
    },
    get: (db, k) => db.getBinary(k),
    // lmdb-js's batch read (asynchronous: it prefetches the keys' pages on a thread).
    getBatch: async (db, ks) => db.getMany(ks),
    close: async (db) => db.close(),
  },
  'classic-level': {
    open: async (dir) => {
      const db = new ClassicLevel(dir, { valueEncoding: 'buffer' });
      await db.open();
      return db;
    },
    // Its asynchronous put is far slower than batch (15-29k/s, shared/docs/perf-notes.md);
    // single writes are batches of one awaited in groups.
    put: (db, k, v) => {
      (db.pending ||= []).push({ type: 'put', key: k, value: v });
    },
    flush: async (db) => {
      if (db.pending) await db.batch(db.pending.splice(0));
    },
    putBatch: async (db, items) => db.batch(items.map(([k, v]) => ({ type: 'put', key: k, value: v }))),
    get: (db, k) => db.getSync(k),
    getBatch: async (db, ks) => db.getMany(ks),
    close: async (db) => db.close(),
  },
};

/** ~1 KiB (or `len`) of JavaScript-like text for module i. */
function moduleText(i, len = 1024) {
  let s = '';
  while (s.length < len) {
    s += `import { h } from './runtime.js';\nexport function C${i}(p) { return h('ul', { className: 'l${i}' }, p.items.map((t, e) => h('li', { key: e }, t.label))); }\n`;
  }
  return Buffer.from(s.slice(0, len));
}

/** A fixed order unrelated to key order. */
function shuffled(n) {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = (i * 2654435761) % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The median, min and max of `xs` (not changed). */
function spread(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
}

/**
 * The seed's per-key calls on a store in `dir`, for the scripts that time a new process's
 * first calls (cold.js, first.js): lmdb-js (`put`, `getBinary`) when `which` is
 * 'lmdb-js', else the CacheManager of the Node binding in directory `which` (`set`,
 * `get`; a warning of the manager throws).
 */
function perKeyStore(which, dir) {
  if (which === 'lmdb-js') {
    const db = lmdbOpen({ path: dir, encoding: 'binary' });
    return { put: (k, v) => db.put(k, v), get: (k) => db.getBinary(k), close: () => db.close() };
  }
  const m = require(require('node:path').join(which, 'lib', 'index.js')).getCacheManager(dir, { logger: { warn: (w) => { throw new Error(w); } } });
  return { put: (k, v) => m.set('transform', k, v), get: (k) => m.get('transform', k), close: () => m.close() };
}

module.exports = { contestants, moduleText, shuffled, spread, perKeyStore };
