'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const { Cache, NexxoCacheError, nativeVersion, CATEGORIES } = require('../lib/index');

const { tmpDir } = require('./tmpdir');

function tmp() {
  return tmpDir('nexxo-node-');
}

function code(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof NexxoCacheError, `expected a NexxoCacheError, got ${e}`);
    return e.code;
  }
  assert.fail('expected an error');
}

test('version and categories', () => {
  assert.match(nativeVersion(), /^\d+\.\d+\.\d+$/);
  assert.deepEqual([...CATEGORIES], ['parse', 'transform', 'bundle', 'optimize', 'meta']);
});

test('set, get, getString, delete with string and byte keys', () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  c.set('transform', 'src/a.ts', 'export const a = 1;');
  assert.equal(c.getString('transform', 'src/a.ts'), 'export const a = 1;');
  assert.deepEqual(c.get('transform', 'src/a.ts'), Buffer.from('export const a = 1;'));
  assert.equal(c.get('parse', 'src/a.ts'), undefined);
  const bin = Buffer.from([0, 1, 2, 0, 255]);
  c.set('bundle', bin, new Uint8Array([9, 8, 7]));
  assert.deepEqual(c.get('bundle', bin), Buffer.from([9, 8, 7]));
  assert.deepEqual(c.get('bundle', new Uint8Array([0, 1, 2, 0, 255])), Buffer.from([9, 8, 7]));
  c.set('meta', 'ünïcödé/κλειδί', 'värde');
  assert.equal(c.getString('meta', 'ünïcödé/κλειδί'), 'värde');
  c.set('meta', 'empty', '');
  assert.deepEqual(c.get('meta', 'empty'), Buffer.alloc(0));
  c.delete('transform', 'src/a.ts');
  assert.equal(c.get('transform', 'src/a.ts'), undefined);
  c.delete('transform', 'src/a.ts'); // absent: fine
  c.close();
});

test('values larger than the scratch buffer grow it', () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  const big = Buffer.alloc(3 * 1024 * 1024, 'x');
  big.write('head', 0);
  c.set('bundle', 'big', big);
  assert.ok(c.get('bundle', 'big').equals(big));
  assert.ok(c.get('bundle', 'big').equals(big));
  const longKey = 'k'.repeat(4000) + 'é'.repeat(40); // over the string scratch estimate
  c.set('parse', longKey, 'v');
  assert.equal(c.getString('parse', longKey), 'v');
  c.close();
});

test('batchSet is atomic and batchGet reads many', () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  c.batchSet([
    ['parse', 'a', 'A'],
    { category: 'transform', key: Buffer.from('b'), value: Buffer.from('B') },
    ['meta', 'c', new Uint8Array([67])],
  ]);
  assert.deepEqual(c.batchGet([['parse', 'a'], ['parse', 'missing'], { category: 'transform', key: 'b' }, ['meta', 'c']]).map((b) => b && b.toString()), ['A', undefined, 'B', 'C']);
  assert.equal(code(() => c.batchSet([['parse', 'x', '1'], ['nope', 'y', '2']])), 'UNKNOWN_CATEGORY');
  assert.equal(c.get('parse', 'x'), undefined, 'nothing of a failed batch is written');
  assert.equal(code(() => c.batchSet([['parse', 'x', '1'], ['parse', '', '2']])), 'INVALID_ARGUMENT');
  assert.equal(c.get('parse', 'x'), undefined);
  assert.equal(code(() => c.batchGet([['nope', 'a']])), 'UNKNOWN_CATEGORY');
  c.batchSet([]);
  assert.deepEqual(c.batchGet([]), []);
  const many = Array.from({ length: 2000 }, (_, i) => ['transform', `m${i}`, `export default ${i};`.repeat(20)]);
  c.batchSet(many);
  const got = c.batchGet(many.map(([cat, k]) => [cat, k]));
  assert.ok(got.every((b, i) => b.toString() === many[i][2]));
  c.close();
});

test('get and batchGet values stay intact across slabs, retries and later reads', () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  const val = (i, n) => Buffer.from(`v${i}:`.padEnd(n, String.fromCharCode(97 + (i % 26))));
  // Many gets: values are views of shared slabs, which must never be reused under them.
  const keys = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? `ключ/${i}/é` : `k${i}`));
  keys.forEach((k, i) => c.set('transform', k, val(i, 700 + (i % 5) * 300)));
  const got = keys.map((k) => c.get('transform', k));
  got.forEach((v, i) => assert.ok(v.equals(val(i, 700 + (i % 5) * 300)), `get ${keys[i]}`));
  assert.equal(code(() => c.get('transform', 'x'.repeat(6000))), 'TOO_LARGE');
  // batchGet: an answer larger than the buffer it guessed is read again into a larger one.
  // Each answer's values are views of a buffer of that answer's own, which later calls
  // never change; a small answer after a big one is copied out of its mostly unused buffer.
  const big = Array.from({ length: 300 }, (_, i) => ['bundle', `b${i}`, val(i, 8192 + i)]);
  c.batchSet(big);
  const first = c.batchGet(big.map(([cat, k]) => [cat, k]));
  const small = c.batchGet([['transform', keys[1]], ['transform', 'missing']]);
  first.forEach((v, i) => assert.ok(v.equals(big[i][2]), `batchGet ${i} after a smaller one`));
  // Values of 256 KiB: far over the guess per key.
  const huge = Array.from({ length: 40 }, (_, i) => ['optimize', `h${i}`, val(i, (256 << 10) + i)]);
  c.batchSet(huge);
  const hugeGot = c.getMany('optimize', huge.map(([, k]) => k));
  const again = c.batchGet(big.map(([cat, k]) => [cat, k]));
  first.forEach((v, i) => assert.ok(v.equals(big[i][2]), `batchGet ${i}`));
  again.forEach((v, i) => assert.ok(v.equals(big[i][2])));
  hugeGot.forEach((v, i) => assert.ok(v.equals(huge[i][2]), `getMany huge ${i}`));
  assert.ok(small[0].equals(val(1, 1000)) && small[1] === undefined);
  got.forEach((v, i) => assert.ok(v.equals(val(i, 700 + (i % 5) * 300)), `get ${keys[i]} after`));
  c.close();
});

test('getMany reads many keys of one category in order', () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  c.batchSet([['transform', 'a', 'A'], ['transform', 'ключ', 'K'], ['parse', 'a', 'P'], ['transform', Buffer.from([0, 1]), 'B']]);
  const got = c.getMany('transform', ['a', 'missing', 'ключ', Buffer.from([0, 1]), new Uint8Array([0, 1])]);
  assert.deepEqual(got.map((b) => b && b.toString()), ['A', undefined, 'K', 'B', 'B']);
  assert.deepEqual(c.getMany('parse', ['a']).map(String), ['P']);
  assert.deepEqual(c.getMany('transform', []), []);
  assert.equal(code(() => c.getMany('nope', ['a'])), 'UNKNOWN_CATEGORY');
  assert.equal(code(() => c.getMany('transform', ['a', ''])), 'INVALID_ARGUMENT');
  // Pending puts are written first, as for every other call.
  c.put('transform', 'late', 'L');
  assert.equal(c.getMany('transform', ['late'])[0].toString(), 'L');
  const many = Array.from({ length: 1500 }, (_, i) => `k${i}`);
  c.batchSet(many.map((k, i) => ['bundle', k, `v${i}`.repeat(100)]));
  assert.ok(c.getMany('bundle', many).every((b, i) => b.toString() === `v${i}`.repeat(100)));
  const s = c.categoryStats('transform');
  assert.equal(s.hits, 6);
  assert.equal(s.misses, 1);
  c.close();
  assert.equal(code(() => c.getMany('transform', ['a'])), 'CLOSED');
});

test('stats are exact numbers; categoryStats, statsJson', () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  let logical = 0;
  for (let i = 0; i < 100; i++) {
    const v = `export function f${i}() { return ${i}; }\n`.repeat(30);
    c.set('transform', `f${i}`, v);
    logical += Buffer.byteLength(`f${i}`) + Buffer.byteLength(v);
  }
  c.get('transform', 'f1');
  c.get('transform', 'nope');
  const s = c.stats();
  assert.equal(s.entries, 100);
  assert.equal(s.logicalBytes, logical);
  assert.ok(s.storedBytes > 0 && s.storedBytes < logical);
  assert.ok(s.diskBytes > 0);
  assert.equal(s.hits, 1);
  assert.equal(s.misses, 1);
  assert.equal(s.hitRate, 0.5);
  assert.equal(s.writes, 100);
  assert.equal(s.disabled, false);
  assert.equal(s.disabledReason, null);
  const t = c.categoryStats('transform');
  assert.equal(t.entries, 100);
  assert.equal(c.categoryStats('parse').entries, 0);
  const j = c.statsJson();
  assert.equal(j.totals.entries, 100);
  assert.equal(j.categories.transform.entries, 100);
  assert.equal(typeof j.version, 'string');
  c.close();
});

test('clear, compact, enforcePolicy, flush', () => {
  const c = Cache.open(path.join(tmp(), 'c'), { maxSize: 1 << 20, compression: 'none' });
  for (const cat of ['parse', 'transform', 'bundle']) c.set(cat, 'k', 'v');
  c.clear(['parse', 'bundle']);
  assert.equal(c.get('parse', 'k'), undefined);
  assert.equal(c.getString('transform', 'k'), 'v');
  c.clear();
  assert.equal(c.stats().entries, 0);
  const noise = (i) => Buffer.from(Array.from({ length: 4096 }, (_, j) => (i * 7919 + j * 104729) % 251));
  for (let i = 0; i < 600; i++) c.set('optimize', `o${i}`, noise(i));
  const r = c.enforcePolicy();
  assert.ok(r.storedBytesAfter <= 1 << 20, `stored ${r.storedBytesAfter}`);
  assert.equal(typeof r.compacted, 'boolean');
  assert.ok(c.stats().evictions > 0);
  c.compact('optimize');
  c.compact();
  c.flush();
  c.close();
});

test('errors carry the C status as a code, with operation and path', () => {
  const dir = path.join(tmp(), 'c');
  const c = Cache.open(dir);
  let e;
  try {
    c.get('nope', 'k');
  } catch (err) {
    e = err;
  }
  assert.ok(e instanceof NexxoCacheError);
  assert.equal(e.code, 'UNKNOWN_CATEGORY');
  assert.equal(e.status, 3);
  assert.match(e.message, /get\(nope\)/);
  assert.ok(e.message.includes(dir));
  assert.equal(code(() => c.set('parse', '', 'v')), 'INVALID_ARGUMENT');
  assert.equal(code(() => c.set('parse', 'k'.repeat(4097), 'v')), 'TOO_LARGE');
  assert.equal(code(() => c.get('parse', Buffer.alloc(5000))), 'TOO_LARGE');
  assert.equal(code(() => c.categoryStats('nope')), 'UNKNOWN_CATEGORY');
  assert.equal(code(() => c.clear(['parse', 'nope'])), 'UNKNOWN_CATEGORY');
  assert.equal(code(() => c.compact('nope')), 'UNKNOWN_CATEGORY');
  const second = Cache.open(dir); // shares the store
  second.close();
  assert.throws(() => c.set('parse', 'k', 42), TypeError);
  c.close();
  c.close(); // idempotent
  assert.equal(c.closed, true);
  assert.equal(code(() => c.get('parse', 'k')), 'CLOSED');
  assert.equal(code(() => c.stats()), 'CLOSED');

  const file = path.join(tmp(), 'file');
  fs.writeFileSync(file, 'x');
  assert.equal(code(() => Cache.open(file)), 'IO_ERROR');
  assert.equal(code(() => Cache.open(path.join(tmp(), 'x'), { memoryBudget: 1024 })), 'INVALID_ARGUMENT');
  assert.equal(code(() => Cache.open(path.join(tmp(), 'x'), { categories: ['Bad Name'] })), 'INVALID_ARGUMENT');
  assert.equal(code(() => Cache.open(path.join(tmp(), 'x'), { categoryMaxSize: { nope: 1 } })), 'UNKNOWN_CATEGORY');
  assert.equal(code(() => Cache.open(path.join(tmp(), 'x'), { compression: 'zstd' })), 'INVALID_ARGUMENT');
  const newer = path.join(tmp(), 'newer');
  fs.mkdirSync(newer, { mode: 0o700 });
  fs.writeFileSync(path.join(newer, 'NEXXO_FORMAT'), 'nexxo-cache format 9\n');
  assert.equal(code(() => Cache.open(newer)), 'INCOMPATIBLE');
  assert.equal(code(() => Cache.open(path.join(tmp(), 'x'), { libraryPath: '/nonexistent/libnexxo_cache.so' })), 'LIBRARY_NOT_FOUND');
});

test('read-only handles refuse writes; reopen keeps everything', () => {
  const dir = path.join(tmp(), 'c');
  const c = Cache.open(dir, { categories: ['lint'] });
  for (let i = 0; i < 1000; i++) c.set(i % 2 ? 'lint' : 'transform', `k${i}`, `value ${i}`);
  c.close();
  const ro = Cache.open(dir, { readOnly: true });
  assert.equal(ro.getString('lint', 'k1'), 'value 1');
  assert.equal(code(() => ro.set('lint', 'k1', 'x')), 'READ_ONLY');
  assert.equal(code(() => ro.delete('lint', 'k1')), 'READ_ONLY');
  assert.equal(code(() => ro.batchSet([['lint', 'k', 'v']])), 'READ_ONLY');
  assert.equal(code(() => ro.clear()), 'READ_ONLY');
  assert.equal(code(() => ro.enforcePolicy()), 'READ_ONLY');
  assert.equal(ro.stats().readOnly, true);
  ro.close();
  const again = Cache.open(dir);
  try {
    for (let i = 0; i < 1000; i++) assert.equal(again.getString(i % 2 ? 'lint' : 'transform', `k${i}`), `value ${i}`);
    assert.equal(again.categoryStats('lint').entries, 500);
  } finally {
    again[Symbol.dispose](); // what `using` calls
  }
  assert.equal(again.closed, true);
  const after = Cache.open(dir); // the directory is free again
  after.close();
});

test('fallbackDisabled gives a disabled cache', () => {
  const file = path.join(tmp(), 'file');
  fs.writeFileSync(file, 'x');
  const c = Cache.open(file, { fallbackDisabled: true });
  c.set('parse', 'k', 'v');
  assert.equal(c.get('parse', 'k'), undefined);
  const s = c.stats();
  assert.equal(s.disabled, true);
  assert.equal(s.disabledReason, 'IO_ERROR');
  c.close();
});

test('a second process shares the cache: each reads what the other wrote, at once', async (t) => {
  const dir = path.join(tmp(), 'c');
  const lib = path.resolve(__dirname, '..', 'lib', 'index.js');
  // The child's set is acknowledged (its promise resolved) before it says ready: a set
  // is batched, and only an acknowledged write is promised to other processes.
  const child = spawn(process.execPath, ['-e', `
    const { Cache } = require(${JSON.stringify(lib)});
    const c = Cache.open(${JSON.stringify(dir)});
    c.set('parse', 'from-child', 'hello').then(() => process.stdout.write('ready\\n'));
    process.stdin.once('data', () => {
      process.stdout.write(String(c.getString('parse', 'from-parent')) + '\\n');
      c.close();
      process.exit(0);
    });
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  // A failed assertion must not leave the child waiting (the test file would never end).
  t.after(() => child.exitCode === null && child.kill());
  const line = () => new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(d.toString().trim()));
    child.once('exit', (c) => reject(new Error(`child exited ${c}`)));
  });
  assert.equal(await line(), 'ready');
  const c = Cache.open(dir);
  assert.equal(c.getString('parse', 'from-child'), 'hello');
  await c.set('parse', 'from-parent', 'world'); // acknowledged before the child reads it
  assert.equal(c.stats().entries, 2);
  const ro = Cache.open(dir, { readOnly: true });
  assert.equal(ro.getString('parse', 'from-child'), 'hello');
  ro.close();
  const answer = line();
  child.stdin.write('go\n');
  assert.equal(await answer, 'world');
  await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve()));
  assert.equal(child.exitCode, 0);
  // The child closed; this handle goes on without reopening.
  c.set('parse', 'after', '!');
  assert.equal(c.getString('parse', 'from-child'), 'hello');
  assert.equal(c.stats().entries, 3);
  c.close();
});

test('an untrusted directory is refused (INSECURE) unless allowed, then read-only', () => {
  const dir = path.join(tmp(), 'c');
  const c = Cache.open(dir);
  c.set('parse', 'k', 'v');
  c.close();
  fs.chmodSync(dir, 0o777);
  assert.equal(code(() => Cache.open(dir)), 'INSECURE');
  const ro = Cache.open(dir, { allowUntrustedDir: true });
  assert.equal(ro.getString('parse', 'k'), 'v');
  assert.equal(code(() => ro.set('parse', 'k', 'poison')), 'READ_ONLY');
  ro.close();
  Cache.open(dir, { dirMode: 0o777 }).close();
  assert.equal(code(() => Cache.open(path.join(tmp(), 'x'), { dirMode: 0o600 })), 'INVALID_ARGUMENT');
});

test('put: batched asynchronous writes, read-your-writes, errors per batch', async () => {
  const dir = tmp();
  const c = Cache.open(path.join(dir, 'c'));
  const promises = [];
  const reused = Buffer.alloc(100);
  for (let i = 0; i < 2500; i++) {
    reused.fill(i % 251);
    promises.push(c.put('transform', `m${i}`, reused)); // copied at once: the buffer may be reused
  }
  // The puts of one promise are one batch.
  const batchSizes = (ps) => {
    const sizes = [];
    ps.forEach((p, i) => (i > 0 && p === ps[i - 1] ? sizes[sizes.length - 1]++ : sizes.push(1)));
    return sizes;
  };
  // A batch is written when it is full: the handle's first full batch holds 125, each
  // next one twice the last, up to 1000. With the Node-API module, every 64th put of a
  // batch also hands it to the writer when that is idle (no batch in flight, or the one
  // in flight written): the first batch of a new handle holds 64, and the other sizes
  // depend on how fast the writer goes. Checks the sizes against that rule (the last
  // batch is what was left at the turn's end); returns the limit it ends at.
  const nodeApi = c._L.mode === 'node-api';
  const followsRule = (sizes, limit) => {
    sizes.slice(0, -1).forEach((n, i) => {
      if (n === limit) limit = Math.min(limit * 2, 1000);
      else assert.ok(nodeApi && n % 64 === 0 && n < limit, `batch ${i} of ${sizes}: ${n} puts, neither full (${limit}) nor a multiple of 64`);
    });
    assert.ok(sizes[sizes.length - 1] <= limit, `the last batch of ${sizes} is over ${limit}`);
    return limit;
  };
  const sizes = batchSizes(promises);
  assert.equal(sizes.reduce((a, b) => a + b), 2500);
  assert.equal(sizes[0], nodeApi ? 64 : 125, `first batch of ${sizes}`);
  let limit = followsRule(sizes, 125);
  assert.equal(new Set(promises).size, sizes.length);
  // Any other call writes pending puts first.
  assert.deepEqual(c.get('transform', 'm2499'), Buffer.alloc(100, 2499 % 251));
  await Promise.all(promises);
  // Later turns go on from the limit reached; a new handle starts again at 125.
  const next = [];
  for (let i = 0; i < 1300; i++) next.push(c.put('parse', `n${i}`, reused));
  followsRule(batchSizes(next), limit);
  const other = Cache.open(path.join(dir, 'c'));
  const first = [];
  for (let i = 0; i < 300; i++) first.push(other.put('bundle', `o${i}`, reused));
  assert.equal(batchSizes(first)[0], nodeApi ? 64 : 125);
  followsRule(batchSizes(first), 125);
  await Promise.all(first);
  other.close();
  await Promise.all(next);
  assert.equal(c.stats().entries, 4100);
  assert.deepEqual(c.get('transform', 'm7'), Buffer.alloc(100, 7));
  // Checked at once, before anything is queued.
  assert.equal(code(() => c.put('nope', 'k', 'v')), 'UNKNOWN_CATEGORY');
  assert.equal(code(() => c.put('parse', '', 'v')), 'INVALID_ARGUMENT');
  assert.equal(code(() => c.put('parse', 'x'.repeat(4097), 'v')), 'TOO_LARGE');
  // A put left pending at close() is written by close().
  const last = c.put('meta', 'last', 'written by close');
  c.close();
  await last;
  assert.equal(code(() => c.put('meta', 'k', 'v')), 'CLOSED');
  const again = Cache.open(path.join(dir, 'c'));
  assert.equal(again.getString('meta', 'last'), 'written by close');
  assert.equal(again.stats().entries, 4101);
  again.close();
  // A read-only handle refuses a write when it is made.
  const ro = Cache.open(path.join(dir, 'c'), { readOnly: true });
  assert.equal(code(() => ro.put('parse', 'k', 'v')), 'READ_ONLY');
  assert.equal(code(() => ro.set('parse', 'k', 'v')), 'READ_ONLY');
  ro.close();
});

test('string keys are their UTF-8 bytes in every path (a lone surrogate is U+FFFD)', async () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  const keys = ['a\ud800b', '\udc00', 'x\ud83d\ude00y', 'é', 'plain'];
  const asBytes = (k) => Buffer.from(k, 'utf8');
  keys.forEach((k, i) => c.set('transform', k, `v${i}`));
  keys.forEach((k, i) => {
    assert.equal(c.getString('transform', k), `v${i}`, 'pending, read as a string');
    assert.equal(c.getString('transform', asBytes(k)), `v${i}`, 'pending, read as bytes');
  });
  assert.equal(c.getString('transform', 'a\ufffdb'), 'v0', 'pending: the lone surrogate is U+FFFD');
  await c.flushed;
  keys.forEach((k, i) => {
    assert.equal(c.get('transform', k).toString(), `v${i}`, 'written, read as a string');
    assert.equal(c.get('transform', asBytes(k)).toString(), `v${i}`, 'written, read as bytes');
  });
  assert.equal(c.getString('transform', 'a\ufffdb'), 'v0', 'the lone surrogate was written as U+FFFD');
  assert.equal(c.stats().entries, keys.length);
  c.close();
});

test('pending sets: a key of bytes is found by the string of those UTF-8 bytes only', async () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  // Only ASCII string keys pending: any string key is looked up as it is.
  c.set('transform', 'plain', 'p');
  assert.equal(c.getString('transform', 'plain'), 'p');
  assert.equal(c.getString('transform', Buffer.from('plain')), 'p', 'its bytes find it');
  assert.equal(c.get('transform', 'é'), undefined);
  // The byte 0xE9 alone is not the string 'é' (UTF-8 C3 A9), though its latin1 text is.
  c.set('transform', Buffer.from([0xe9]), 'byte e9');
  assert.equal(c.get('transform', 'é'), undefined, 'pending: a string is its UTF-8 bytes');
  assert.equal(c.getString('transform', Buffer.from([0xe9])), 'byte e9');
  c.set('transform', 'é', 'string e-acute');
  assert.equal(c.getString('transform', Buffer.from([0xc3, 0xa9])), 'string e-acute');
  assert.equal(c.getString('transform', Buffer.from([0xe9])), 'byte e9');
  assert.equal(c.getString('transform', 'plain'), 'p');
  await c.flushed;
  assert.equal(c.getString('transform', 'é'), 'string e-acute', 'written');
  assert.equal(c.getString('transform', Buffer.from([0xe9])), 'byte e9', 'written');
  assert.equal(c.stats().entries, 3);
  c.close();
});

test('set: batched, read-your-writes before the batch is written, batches bounded', async () => {
  const dir = path.join(tmp(), 'c');
  const c = Cache.open(dir);
  const mine = Buffer.from('first');
  const p = c.set('transform', 'k', mine);
  assert.ok(p instanceof Promise);
  mine.write('XXXXX'); // the caller may reuse its buffer at once
  assert.equal(c.get('transform', 'k').toString(), 'first', 'a pending set is read');
  assert.equal(c.getString('transform', 'k'), 'first');
  c.set('transform', 'k', 'second');
  assert.equal(c.getString('transform', 'k'), 'second', 'the later pending set wins');
  c.set('transform', Buffer.from('é', 'utf8'), 'bytes key');
  assert.equal(c.getString('transform', 'é'), 'bytes key', 'a key given as bytes and as a string is one key');
  assert.equal(c.get('transform', 'nope'), undefined);
  assert.ok(c._pend !== null, 'still pending: reads of one key do not write the batch');
  c.delete('transform', 'k'); // any other call writes pending sets first
  assert.equal(c.get('transform', 'k'), undefined);
  await p;
  const s = c.stats();
  assert.equal(s.hits, 4);
  assert.equal(s.writes, 3);
  assert.equal(s.entries, 1);
  // 100,000 sets in one turn of 1 KiB each (100 MB): at most two batches (4 MiB each)
  // are held, the one being filled and the one in flight.
  const before = process.memoryUsage().arrayBuffers;
  let most = 0;
  const v = Buffer.alloc(1024, 'x');
  for (let i = 0; i < 100000; i++) {
    c.set('parse', `m${i}`, v);
    most = Math.max(most, (c._pend === null ? 0 : c._pend.at) + (c._flight === null ? 0 : c._flight.at));
  }
  assert.ok(most <= 2 * ((4 << 20) + 2048), `unwritten bytes reached ${most}`);
  assert.ok(process.memoryUsage().arrayBuffers - before < 32 << 20, 'memory held stays bounded');
  await c.flushed;
  assert.equal(c.categoryStats('parse').entries, 100000);
  c.close();
});

test('set: a batch in flight on the thread pool is read, in order, and waited for by other calls', async () => {
  const c = Cache.open(path.join(tmp(), 'c'));
  const nodeApi = c._L.mode === 'node-api';
  // Five rounds over the same 100 keys, 1,000 sets a round: every full batch is started
  // while the one before may still be in flight; the last round's values must win.
  const promises = [];
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 1000; i++) promises.push(c.set('parse', `k${i % 100}`, `r${round}-${i}`));
    if (nodeApi) assert.ok(c._flight !== null || c._pend !== null, 'a batch is unwritten');
    // Read while in flight: the latest set of each key.
    for (let k = 0; k < 100; k++) assert.equal(c.getString('parse', `k${k}`), `r${round}-${900 + k}`);
  }
  if (nodeApi) assert.ok(c._flight !== null, 'with the Node-API module a full batch is written on the thread pool');
  c.set('parse', 'gone', 'x');
  c.delete('parse', 'gone'); // waits for the batch in flight and writes the pending one first
  assert.equal(c._flight, null);
  assert.equal(c._pend, null);
  assert.equal(c.get('parse', 'gone'), undefined);
  await Promise.all(promises);
  for (let k = 0; k < 100; k++) assert.equal(c.getString('parse', `k${k}`), `r4-${900 + k}`);
  // A batch started at the end of a turn while another is in flight is written when that
  // one lands; `flushed` waits for both.
  for (let i = 0; i < 1500; i++) c.set('meta', `m${i}`, `v${i}`);
  await c.flushed;
  assert.equal(c._flight, null);
  assert.equal(c._pend, null);
  assert.equal(c.categoryStats('meta').entries, 1500);
  c.close();
  // A second handle sees what the first acknowledged.
  const d = Cache.open(c.path);
  assert.equal(d.getString('parse', 'k99'), 'r4-999');
  assert.equal(d.getString('meta', 'm1499'), 'v1499');
  d.close();
});

test('set: pending sets go to an idle writer while a synchronous loop of sets runs', () => {
  const dir = path.join(tmp(), 'c');
  const c = Cache.open(dir);
  if (c._L.mode !== 'node-api' || c._f.batchLanded === undefined) {
    c.close();
    return; // koffi alone writes each batch at once; a library before 1.10.5 cannot say
  }
  const other = Cache.open(dir); // shares the store, not c's pending sets
  const sleep = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  const until = (done, what) => {
    for (let i = 0; i < 1000 && !done(); i++) sleep();
    assert.ok(done(), `${what}, within 10 s`);
  };
  // No turn ends in this test: only the handing over can write these sets.
  // The 64th set finds the writer idle (nothing in flight) and hands it the 64.
  for (let i = 0; i < 63; i++) c.set('transform', `k${i}`, `v${i}`);
  assert.equal(c._pend.count, 63, 'the first 63 are pending');
  c.set('transform', 'k63', 'v63');
  assert.equal(c._pend, null, 'handed over at the 64th set');
  until(() => other.getString('transform', 'k63') === 'v63', 'written on the thread pool');
  assert.equal(other.getString('transform', 'k0'), 'v0');
  // Once that batch is written the writer is idle again: the next 64th set hands over
  // the 64 since.
  until(() => c._f.batchLanded(c._handle.ptr), 'the batch in flight lands');
  for (let i = 64; i < 128; i++) c.set('transform', `k${i}`, `v${i}`);
  assert.equal(c._pend, null, 'handed over at the 128th set');
  until(() => other.getString('transform', 'k127') === 'v127', 'the second batch written');
  assert.equal(other.stats().entries, 128);
  other.close();
  c.close();
});

test('set: process exit and close write pending sets; none is lost', async () => {
  const dir = path.join(tmp(), 'c');
  const lib = path.resolve(__dirname, '..', 'lib', 'index.js');
  for (const ending of ['process.exit(0)', 'c.close()', '']) {
    const r = require('node:child_process').spawnSync(process.execPath, ['-e', `
      const { Cache } = require(${JSON.stringify(lib)});
      const c = Cache.open(${JSON.stringify(dir)});
      for (let i = 0; i < 2500; i++) c.set('parse', 'k' + i, 'v' + i); // not awaited
      ${ending};
    `], { stdio: 'inherit' });
    assert.equal(r.status, 0);
    const c = Cache.open(dir);
    assert.equal(c.stats().entries, 2500, `after ${ending || 'the end of the script'}`);
    assert.equal(c.getString('parse', 'k2499'), 'v2499');
    c.clear();
    c.close();
  }
});

test('set: a batch that fails rejects its promise (a full disk)', async (t) => {
  const mnt = tmpDir('nexxo-full-');
  if (require('node:child_process').spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]).status !== 0) {
    t.skip('cannot mount a tmpfs here (not root)');
    return;
  }
  try {
    const c = Cache.open(path.join(mnt, 'c'));
    const v = require('node:crypto').randomBytes(64 << 10);
    let failed = null;
    for (let i = 0; i < 2000 && !failed; i++) {
      try {
        await c.set('bundle', `b${i}`, v);
      } catch (e) {
        failed = e;
      }
    }
    assert.ok(failed instanceof NexxoCacheError, 'a write failed');
    assert.equal(failed.code, 'NO_SPACE');
    c.close();
  } finally {
    require('node:child_process').spawnSync('umount', [mnt]);
  }
});

test('get: values read into the shared slab stay intact and never alias', () => {
  const dir = tmp();
  const c = Cache.open(path.join(dir, 'c'));
  const sizes = [0, 1, 7, 100, 1000, 5000, 16383, 16384, 20000, 70000, 300000];
  sizes.forEach((n, i) => c.set('parse', `k${i}`, Buffer.alloc(n, 65 + i)));
  const got = [];
  for (let round = 0; round < 50; round++) sizes.forEach((n, i) => got.push([i, c.get('parse', `k${i}`)]));
  for (const [i, v] of got) assert.deepEqual(v, Buffer.alloc(sizes[i], 65 + i), `k${i}`);
  c.close();
});

test('batchSet with tags: atomic, each entry its own tags; invalidate removes them', () => {
  const c = Cache.open(path.join(tmp(), 'c'), { ignoreEnvironment: true });
  c.batchSet([
    ['transform', 'a.ts', 'A', { tags: ['cfg#1', 'babel@7'] }],
    { category: 'bundle', key: Buffer.from('main.js'), value: 'M', tags: ['cfg#1'] },
    ['parse', 'b.ts', ''],
  ]);
  assert.equal(c.getString('transform', 'a.ts'), 'A');
  assert.equal(c.getString('parse', 'b.ts'), '');
  assert.deepEqual(c.invalidate('cfg#1').entries, 2);
  assert.equal(c.get('bundle', 'main.js'), undefined);
  assert.equal(c.invalidate('babel@7').entries, 0);
  // One bad tag fails the whole batch, nothing written.
  assert.throws(() => c.batchSet([['parse', 'x', 'X', { tags: ['ok'] }], ['parse', 'y', 'Y', { tags: [''] }]]), { code: 'INVALID_ARGUMENT' });
  assert.equal(c.get('parse', 'x'), undefined);
  assert.equal(c.stats().entries, 1);
  c.close();
});
