'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const { getCacheManager, CacheManager, humanSize } = require('../lib/index');

const { tmpDir } = require('./tmpdir');

function tmp() {
  return tmpDir('nexxo-mgr-');
}

function quietLogger() {
  const messages = [];
  return { messages, warn: (m) => messages.push(m) };
}

test('one manager per resolved root, cache in <root>/.nexxo_cache', () => {
  const root = tmp();
  const a = getCacheManager(root);
  const b = getCacheManager(path.join(root, '.', 'sub', '..'));
  assert.equal(a, b);
  assert.equal(a.cacheDir, path.join(root, '.nexxo_cache'));
  assert.ok(fs.statSync(a.cacheDir).isDirectory());
  const other = getCacheManager(tmp());
  assert.notEqual(other, a);
  a.close();
  other.close();
  const c = getCacheManager(root);
  assert.notEqual(c, a, 'a closed manager is replaced');
  c.close();
});

test("the seed's workload: 1000 artifacts, true stats with human strings", () => {
  const root = tmp();
  const m = getCacheManager(root);
  const stages = ['parse', 'transform', 'bundle', 'optimize', 'meta'];
  const entries = [];
  for (let i = 0; i < 1000; i++) {
    const v = `import { h } from './runtime.js';\nexport function C${i}(p) { return h('ul', p.items.map((x) => h('li', x))); }\n`.repeat(9);
    entries.push([stages[i % 5], `src/module${i}.tsx`, v]);
  }
  m.batchSet(entries.slice(0, 500));
  for (const [cat, k, v] of entries.slice(500)) m.set(cat, k, v);
  for (const [cat, k, v] of entries) assert.equal(m.getString(cat, k), v);
  assert.equal(m.get('transform', 'never-built'), undefined);
  const s = m.getStats();
  assert.equal(s.entries, 1000);
  assert.equal(s.hits, 1000);
  assert.equal(s.misses, 1);
  assert.equal(s.hitRate, '99.90%');
  assert.notEqual(s.size, '0.00 KB');
  assert.match(s.size, /^\d+\.\d\d (KB|MB)$/);
  assert.equal(s.size, humanSize(s.storedBytes));
  assert.ok(s.storedBytes > 0 && s.storedBytes < s.logicalBytes);
  assert.equal(s.disabled, false);
  const r = m.enforcePolicy();
  assert.equal(r.evictedEntries, 0);
  m.clear('parse', 'bundle');
  assert.equal(m.getStats().entries, 600);
  m.clear();
  assert.equal(m.getStats().entries, 0);
  m.compact();
  m.close();
});

test("a second build that only reads never opens the store for writing (RocksDB's CURRENT unchanged), stats exact", async () => {
  const root = tmp();
  let m = getCacheManager(root);
  for (let i = 0; i < 200; i++) m.set('transform', `src/m${i}.ts`, `export const v${i} = ${i};\n`.repeat(20));
  m.close();
  const current = fs.readFileSync(path.join(root, '.nexxo_cache', 'CURRENT'), 'utf8');
  m = getCacheManager(root);
  for (let i = 0; i < 200; i++) assert.equal(m.getString('transform', `src/m${i}.ts`), `export const v${i} = ${i};\n`.repeat(20));
  assert.equal(m.get('transform', 'never-built'), undefined);
  const s = m.getStats();
  assert.equal(s.entries, 200);
  assert.equal(s.hits, 200);
  assert.equal(s.misses, 1);
  m.close();
  assert.equal(fs.readFileSync(path.join(root, '.nexxo_cache', 'CURRENT'), 'utf8'), current, 'the read-only build opened the store for writing');
  // The next build writes: its first set opens the store, and what it wrote is there.
  m = getCacheManager(root);
  await m.set('transform', 'src/new.ts', 'new');
  m.close();
  assert.notEqual(fs.readFileSync(path.join(root, '.nexxo_cache', 'CURRENT'), 'utf8'), current);
  m = getCacheManager(root);
  assert.equal(m.getString('transform', 'src/new.ts'), 'new');
  assert.equal(m.getStats().entries, 201);
  m.close();
});

test('humanSize', () => {
  assert.equal(humanSize(0), '0 B');
  assert.equal(humanSize(1023), '1023 B');
  assert.equal(humanSize(1024), '1.00 KB');
  assert.equal(humanSize(1.23 * 1024 * 1024), '1.23 MB');
});

test('a missing library disables the manager with one warning', () => {
  const log = quietLogger();
  const m = new CacheManager(tmp(), { libraryPath: '/nonexistent/libnexxo_cache.so', logger: log });
  assert.equal(m.disabled, true);
  m.set('transform', 'k', 'v');
  assert.equal(m.get('transform', 'k'), undefined);
  m.batchSet([['parse', 'a', 'b']]);
  assert.deepEqual(m.batchGet([['parse', 'a']]), [undefined]);
  assert.deepEqual(m.getMany('parse', ['a', 'b']), [undefined, undefined]);
  const s = m.getStats();
  assert.match(s.disabled, /^LIBRARY_NOT_FOUND: /);
  assert.equal(s.entries, 0);
  assert.equal(log.messages.length, 1);
  m.close();
});

test('an unwritable root disables the manager', { skip: process.getuid && process.getuid() === 0 ? 'root can write anywhere' : false }, () => {
  const root = tmp();
  fs.chmodSync(root, 0o500);
  const log = quietLogger();
  const m = new CacheManager(root, { logger: log });
  assert.equal(m.disabled, true);
  assert.match(m.getStats().disabled, /^IO_ERROR/);
  fs.chmodSync(root, 0o700);
});

test('a root whose .nexxo_cache is a file disables the manager', () => {
  const root = tmp();
  fs.writeFileSync(path.join(root, '.nexxo_cache'), 'in the way');
  const log = quietLogger();
  const m = new CacheManager(root, { logger: log });
  assert.equal(m.disabled, true);
  assert.match(m.getStats().disabled, /^IO_ERROR/);
  assert.equal(log.messages.length, 1);
  assert.equal(m.enforcePolicy().evictedEntries, 0);
});

test('caller errors still throw', () => {
  const m = new CacheManager(tmp(), { logger: quietLogger() });
  assert.throws(() => m.get('nope', 'k'), { code: 'UNKNOWN_CATEGORY' });
  assert.throws(() => m.set('parse', '', 'v'), { code: 'INVALID_ARGUMENT' });
  m.close();
});

test('two processes: both managers work on one cache', async (t) => {
  const root = tmp();
  const lib = path.resolve(__dirname, '..', 'lib', 'index.js');
  // Ready once the child's set is acknowledged: a set is batched, and only acknowledged
  // writes are promised to other processes.
  const child = spawn(process.execPath, ['-e', `
    const { getCacheManager } = require(${JSON.stringify(lib)});
    const m = getCacheManager(${JSON.stringify(root)});
    m.set('transform', 'k', 'child').then(() => process.stdout.write(m.disabled ? 'disabled\\n' : 'ready\\n'));
    process.stdin.on('data', () => {
      process.stdout.write(String(m.get('transform', 'p')) + '\\n');
      m.close();
      process.exit(0);
    });
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  // A failed assertion must not leave the child waiting (the test file would never end).
  t.after(() => child.exitCode === null && child.kill());
  const line = () => new Promise((resolve) => child.stdout.once('data', (d) => resolve(d.toString().trim())));
  assert.equal(await line(), 'ready');
  const log = quietLogger();
  const m = new CacheManager(root, { logger: log });
  assert.equal(m.disabled, false);
  assert.equal(m.get('transform', 'k').toString(), 'child');
  await m.set('transform', 'p', 'parent'); // acknowledged before the child reads it
  assert.equal(log.messages.length, 0);
  const answer = line();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin.write('x');
  assert.equal(await answer, 'parent');
  assert.equal(await exited, 0);
  assert.equal(m.get('transform', 'k').toString(), 'child'); // goes on after the child closed
  m.close();
});

test('worker_threads: every getCacheManager of one root shares the cache', async () => {
  const root = tmp();
  const lib = path.resolve(__dirname, '..', 'lib', 'index.js');
  const { Worker } = require('node:worker_threads');
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { getCacheManager } = require(${JSON.stringify(lib)});
    const m = getCacheManager(workerData.root);
    for (let i = 0; i < 1000; i++) m.set('transform', 'w' + workerData.id + '/' + i, 'v' + i);
    parentPort.postMessage({ disabled: m.disabled, stats: m.getStats() });
    parentPort.once('message', () => { m.close(); parentPort.postMessage('closed'); });
  `;
  const m = getCacheManager(root, { logger: quietLogger() });
  const workers = [0, 1, 2, 3].map((id) => new Worker(code, { eval: true, workerData: { root, id } }));
  const first = await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  })));
  for (const r of first) assert.equal(r.disabled, false);
  for (let id = 0; id < 4; id++) {
    for (let i = 0; i < 1000; i += 97) assert.equal(m.get('transform', `w${id}/${i}`).toString(), `v${i}`);
  }
  await Promise.all(workers.map((w) => new Promise((resolve) => {
    w.once('message', resolve);
    w.postMessage('close');
  })));
  await Promise.all(workers.map((w) => w.terminate()));
  assert.equal(m.getStats().entries, 4000); // the main thread's handle outlived the workers'
  m.close();
});

test('set: a failing batch (full disk) is one warning and a failure count, never a crash', async (t) => {
  const mnt = tmpDir('nexxo-full-');
  if (require('node:child_process').spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]).status !== 0) {
    t.skip('cannot mount a tmpfs here (not root)');
    return;
  }
  try {
    const log = quietLogger();
    const m = new CacheManager(mnt, { logger: log });
    const v = require('node:crypto').randomBytes(64 << 10);
    let rejected = 0;
    for (let i = 0; i < 1000; i++) {
      const p = m.set('bundle', `b${i}`, v); // most are not awaited
      if (i % 50 === 49) await p.catch(() => rejected++);
    }
    await new Promise((r) => setImmediate(r));
    assert.ok(rejected > 0, 'awaited sets saw the failure');
    assert.ok(m.getStats().failures > 0);
    assert.equal(log.messages.length, 1);
    assert.match(log.messages[0], /NO_SPACE|no space/i);
    assert.equal(m.disabled, false, 'the manager goes on');
    m.close();
  } finally {
    require('node:child_process').spawnSync('umount', [mnt]);
  }
});

test('environment: NEXXO_CACHE_DIR moves the cache, a malformed variable disables it with a warning, never a throw', () => {
  const root = tmp();
  const dir = path.join(tmp(), 'shared-cache');
  const lib = path.resolve(__dirname, '..', 'lib', 'index.js');
  const run = (env) => require('node:child_process').spawnSync(process.execPath, ['-e', `
    const { getCacheManager } = require(${JSON.stringify(lib)});
    const warnings = [];
    const m = getCacheManager(${JSON.stringify(root)}, { logger: { warn: (w) => warnings.push(w) } });
    m.set('transform', 'k', 'v');
    process.stdout.write(JSON.stringify({ dir: m.cacheDir, disabled: m.disabled, value: String(m.get('transform', 'k')), warnings, limits: m.getStats().limits }));
    m.close();
  `], { env: { ...process.env, ...env }, encoding: 'utf8' });
  let r = run({ NEXXO_CACHE_DIR: dir });
  assert.equal(r.status, 0, r.stderr);
  let out = JSON.parse(r.stdout);
  assert.deepEqual([out.dir, out.disabled, out.value, out.warnings], [dir, false, 'v', []]);
  assert.ok(fs.existsSync(path.join(dir, 'NEXXO_FORMAT')));
  assert.ok(!fs.existsSync(path.join(root, '.nexxo_cache')));
  assert.deepEqual(out.limits.source, { maxSize: 'default', maxAge: 'default', categoryMaxSize: 'default' });
  // getStats() names the limits that apply and where each came from.
  r = run({ NEXXO_CACHE_DIR: dir, NEXXO_CACHE_MAX_SIZE: '3G', NEXXO_CACHE_MAX_AGE: '7d' });
  out = JSON.parse(r.stdout);
  assert.deepEqual([out.limits.maxSize, out.limits.maxAgeSecs, out.limits.source.maxSize, out.limits.source.maxAge], [3 * 2 ** 30, 7 * 86400, 'environment', 'environment']);
  r = run({ NEXXO_CACHE_MAX_SIZE: 'lots' });
  assert.equal(r.status, 0, r.stderr);
  out = JSON.parse(r.stdout);
  assert.equal(out.disabled, true);
  assert.match(out.warnings.join('\n'), /NEXXO_CACHE_\* environment variable is malformed/);
  assert.match(r.stderr, /NEXXO_CACHE_MAX_SIZE="lots"/);
  r = run({ NEXXO_CACHE_DISABLE: '1' });
  out = JSON.parse(r.stdout);
  assert.equal(out.disabled, true);
  assert.equal(out.limits, null);
  assert.match(out.warnings.join('\n'), /NEXXO_CACHE_DISABLE is set/);
});

test('limits: the ones an open sets are stored in the cache, and the next open names them as stored', () => {
  const { Cache } = require('../lib/index');
  const dir = path.join(tmp(), 'c');
  const c = Cache.open(dir, { maxSize: 5 * 2 ** 20, ignoreEnvironment: true });
  assert.deepEqual([c.limits().maxSize, c.limits().source.maxSize], [5 * 2 ** 20, 'option']);
  c.close();
  const d = Cache.open(dir, { ignoreEnvironment: true });
  assert.deepEqual([d.limits().maxSize, d.limits().source.maxSize, d.limits().source.maxAge], [5 * 2 ** 20, 'stored', 'default']);
  d.close();
});

test('environment: NEXXO_CACHE_READ_ONLY makes Cache.set throw READ_ONLY at once, not reject later', () => {
  const dir = path.join(tmp(), 'c');
  const lib = path.resolve(__dirname, '..', 'lib', 'index.js');
  const { Cache } = require('../lib/index');
  Cache.open(dir).close();
  const r = require('node:child_process').spawnSync(process.execPath, ['-e', `
    const { Cache } = require(${JSON.stringify(lib)});
    const c = Cache.open(${JSON.stringify(dir)});
    try { c.set('parse', 'k', 'v'); process.stdout.write('accepted'); } catch (e) { process.stdout.write(e.code); }
    c.close();
  `], { env: { ...process.env, NEXXO_CACHE_READ_ONLY: '1' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'READ_ONLY');
});

test('getStats() has the latency percentiles of this process; latency: false turns them off', async () => {
  const root = tmp();
  const m = new CacheManager(root, { ignoreEnvironment: true });
  for (let i = 0; i < 200; i++) m.set('transform', `k${i}`, 'x'.repeat(500));
  await m.flush();
  for (let i = 0; i < 320; i++) m.get('transform', `k${i % 250}`);
  const l = m.getStats().latency;
  assert.equal(l.getSample, 16);
  // The manager's sets reach the library as batches; gets one in 16 (320 native gets).
  assert.ok(l.batchSet.count >= 1 && l.batchSet.count <= 200, JSON.stringify(l.batchSet));
  assert.equal(l.get.count, 20);
  assert.equal(l.get.categories.transform.count, 20);
  for (const s of [l.get, l.batchSet]) assert.ok(s.p50 > 0 && s.p50 <= s.p99 && s.p99 <= s.max, JSON.stringify(s));
  assert.equal(l.upload.count, 0);
  m.close();

  const { Cache } = require('../lib/index');
  const c = Cache.open(path.join(tmp(), 'c'), { latency: false, ignoreEnvironment: true });
  c.setSync('parse', 'a', 'b');
  assert.equal(c.latency(), null);
  c.close();
});

test('set with tags, then invalidate: the tagged entries go, in every category', async () => {
  const warned = [];
  const m = new CacheManager(tmp(), { ignoreEnvironment: true, logger: { warn: (w) => warned.push(w) } });
  await m.set('transform', 'a.ts', 'A', { tags: ['tsconfig.json#1', Buffer.from([0, 255])] });
  await m.set('bundle', 'main.js', 'M', { tags: ['tsconfig.json#1'] });
  m.set('parse', 'b.ts', 'B'); // untagged, batched: written before the invalidation
  assert.deepEqual(m.invalidate('tsconfig.json#1').entries, 2);
  assert.equal(m.get('transform', 'a.ts'), undefined);
  assert.equal(m.get('bundle', 'main.js'), undefined);
  assert.equal(String(m.get('parse', 'b.ts')), 'B');
  assert.deepEqual(m.invalidate('nothing'), { entries: 0, bytes: 0 });
  assert.equal(m.getStats().entries, 1);
  // Bad tags are the caller's error, nothing written.
  assert.throws(() => m.set('parse', 'x', 'X', { tags: [''] }), { code: 'INVALID_ARGUMENT' });
  // Too large is not the caller's error for the manager: not cached, one warning, counted.
  m.set('parse', 'x', 'X', { tags: ['t'.repeat(257)] });
  assert.equal(m.getStats().failures, 1);
  assert.equal(warned.length, 1);
  assert.throws(() => m.set('parse', 'x', 'X', { tags: 'not-an-array' }), TypeError);
  assert.equal(m.get('parse', 'x'), undefined);
  m.close();
});
