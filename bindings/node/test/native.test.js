'use strict';
// The two ways the binding calls the library (lib/native.js): the library's own Node-API
// module (src/node.rs), and koffi (NEXXO_CACHE_FFI=koffi, or a library without the
// module). scripts/test.sh runs every test file in both.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const { load } = require('../lib/native');
const { Cache } = require('../lib/index');

const KOFFI_ONLY = process.env.NEXXO_CACHE_FFI === 'koffi';

const { tmpDir } = require('./tmpdir');

function tmp() {
  return tmpDir('nexxo-native-');
}

test('the library is loaded the way the environment asks', () => {
  assert.equal(load().mode, KOFFI_ONLY ? 'koffi' : 'node-api');
});

test("the seed's API (getCacheManager, set, batchSet, get, batchGet, delete, getStats, flush, compact, enforcePolicy, close) runs without loading koffi", () => {
  const root = tmp();
  const r = spawnSync(process.execPath, ['-e', `
    const { getCacheManager } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))});
    (async () => {
      const m = getCacheManager(${JSON.stringify(root)});
      await m.set('transform', 'src/a.ts', 'export const a = 1;');
      if (m.get('transform', 'src/a.ts').toString() !== 'export const a = 1;') throw new Error('read back');
      if (m.get('transform', 'src/missing.ts') !== undefined) throw new Error('a miss');
      m.batchSet([['parse', 'src/b.ts', 'b'], ['meta', 'build', '{}']]);
      const got = m.batchGet([['parse', 'src/b.ts'], ['meta', 'build'], ['meta', 'none']]);
      if (got[0].toString() !== 'b' || got[1].toString() !== '{}' || got[2] !== undefined) throw new Error('batchGet');
      m.delete('parse', 'src/b.ts');
      m.flush();
      m.compact();
      m.compact('transform');
      const r = m.enforcePolicy();
      if (r.evictedEntries !== 0 || typeof r.compacted !== 'boolean') throw new Error(JSON.stringify(r));
      const s = m.getStats();
      if (s.entries !== 2 || s.hits !== 3 || s.misses !== 2 || s.limits.source.maxSize !== 'default') throw new Error(JSON.stringify(s));
      m.close();
      const koffi = Object.keys(require.cache).some((k) => k.includes(require('path').sep + 'koffi' + require('path').sep));
      console.log(JSON.stringify({ koffi }));
    })().catch((e) => { console.error(e); process.exit(1); });
  `], { encoding: 'utf8', env: process.env });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), { koffi: KOFFI_ONLY });
});

test('options and calls koffi declares work on a handle the Node-API module opened', async () => {
  const dir = path.join(tmp(), 'c');
  // maxSize and memoryBudget are set through koffi (uintptr_t options), the open and the
  // reads and writes through the module; enforcePolicy, compact and clear through koffi.
  const c = Cache.open(dir, { maxSize: 1 << 20, memoryBudget: 8 << 20 });
  try {
    assert.equal(c.limits().source.maxSize, 'option');
    assert.equal(c.limits().maxSize, 1 << 20);
    for (let i = 0; i < 64; i++) c.set('transform', `k${i}`, Buffer.alloc(64 * 1024, i));
    await c.flushed;
    assert.deepEqual(c.get('transform', 'k63'), Buffer.alloc(64 * 1024, 63));
    c.enforcePolicy();
    assert.ok(c.stats().storedBytes <= 1 << 20);
    c.compact();
    c.clear('transform');
    assert.equal(c.stats().entries, 0);
    assert.equal(await c.getAsync('transform', 'k63'), undefined);
  } finally {
    await c.closeAsync();
  }
});

test('the Node-API functions refuse arguments of the wrong type or past a buffer, with a TypeError', { skip: KOFFI_ONLY && 'koffi checks its own arguments' }, () => {
  const L = load();
  const f = L.f;
  const c = Cache.open(path.join(tmp(), 'c'));
  try {
    const h = c._handle.ptr;
    const cat = Buffer.from('transform\0');
    const key = Buffer.from('k');
    const out = Buffer.alloc(16);
    const len = new BigUint64Array(1);
    assert.throws(() => f.getIntoAt('x', 0, 0, 0, 0, 0, 0), TypeError);
    assert.throws(() => f.getIntoAt(h, -1, 0, 0, 0, 0, 0), TypeError);
    assert.throws(() => f.getIntoAt(h, 0.5, 0, 0, 0, 0, 0), TypeError);
    assert.throws(() => f.getIntoAt(h), TypeError, 'missing arguments');
    assert.throws(() => f.getInto(h, cat, key, 2, out, 16, len), TypeError, 'a key length past its buffer');
    assert.throws(() => f.getInto(h, cat, key, 1, out, 17, len), TypeError, 'a capacity past its buffer');
    assert.throws(() => f.getInto(h, Buffer.from('transform'), key, 1, out, 16, len), TypeError, 'a category without its NUL');
    assert.throws(() => f.getInto(h, cat, 'k', 1, out, 16, len), TypeError, 'a string for a Buffer');
    assert.throws(() => f.getInto(h, cat, key, 1, out, 16, new Uint8Array(4)), TypeError, 'an out-length of 4 bytes');
    assert.throws(() => f.batchSetPacked(h, Buffer.alloc(4), 5, 1), TypeError);
    assert.throws(() => f.open(42, 0, []), TypeError);
    assert.throws(() => f.open('/tmp\0/elsewhere', 0, []), TypeError, 'a path with a NUL inside');
    assert.throws(() => f.categoryStats(h, 'transform\0x', {}), TypeError, 'a name with a NUL inside');
    assert.throws(() => f.categoryStats(h, {}, {}), TypeError);
    assert.throws(() => f.address('not a buffer'), TypeError);
    assert.throws(() => f.del(h, Buffer.from('transform'), key, 1), TypeError, 'delete: a category without its NUL');
    assert.throws(() => f.del(h, cat, key, 2), TypeError, 'delete: a key length past its buffer');
    assert.throws(() => f.compact(h, 42), TypeError, 'compact: a number for a category');
    assert.equal(f.compact(h, null), 0, 'compact: null is every category');
    assert.equal(f.compact(h, 'nope'), 3 /* UNKNOWN_CATEGORY */);
    assert.throws(() => f.set(h, cat, key, 2, out, 1), TypeError, 'set: a key length past its buffer');
    assert.throws(() => f.set(h, cat, key, 1, out, 17), TypeError, 'set: a value length past its buffer');
    assert.throws(() => f.batchGetPacked(h, Buffer.alloc(4), 5, 1, out, 16, len), TypeError, 'batchGetPacked: a length past its buffer');
    assert.throws(() => f.batchGetPacked(h, Buffer.alloc(4), 4, 1, out, 17, len), TypeError, 'batchGetPacked: a capacity past its buffer');
    // NULL handles and options are the C functions' to refuse: a status, as from C.
    assert.equal(f.getIntoAt(0, 0, 0, 0, 0, 0, 0), 2 /* INVALID_ARGUMENT */);
    assert.equal(f.stats(0, {}), 2);
    // And the calls that are right still work after all of that.
    assert.equal(f.getInto(h, cat, key, 1, out, 16, len), 1 /* NOT_FOUND */);
    c.set('transform', 'k', 'v');
    assert.equal(c.getString('transform', 'k'), 'v');
  } finally {
    c.close();
  }
});
