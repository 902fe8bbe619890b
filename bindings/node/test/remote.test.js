'use strict';
// The remote tier through the binding, against the servers the test command starts
// (scripts/servers.sh: NEXXO_TEST_HTTP_URL, NEXXO_TEST_REDIS_URL).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { Cache, CacheManager, NexxoCacheError } = require('../lib/index');

const { tmpDir } = require('./tmpdir');

function tmp() {
  return tmpDir('nexxo-node-remote-');
}

/** The server's URL; without one the test is skipped, except under CI where it fails. */
function server(t, variable) {
  const url = process.env[variable];
  if (url) return url;
  assert.ok(!process.env.CI, `${variable} is not set (scripts/servers.sh starts the servers)`);
  t.skip(`${variable} is not set`);
  return null;
}

const unique = () => `node-${process.pid}-${Math.random().toString(36).slice(2)}`;

for (const [kind, variable] of [['HTTP', 'NEXXO_TEST_HTTP_URL'], ['Redis', 'NEXXO_TEST_REDIS_URL']]) {
  test(`${kind}: what one cache uploads, another reads and backfills`, (t) => {
    const url = server(t, variable);
    if (!url) return;
    const dir = tmp();
    const remote = { url, name: unique(), hmacKey: 'a shared key for this test run' };
    const a = Cache.open(path.join(dir, 'a'), { remote });
    const n = 100;
    for (let i = 0; i < n; i++) a.set('transform', `src/m${i}.ts`, `export const v = ${i};\n`.repeat(10));
    a.batchSet([['bundle', 'app.js', 'bundled'], ['meta', 'm', 'meta value']]);
    assert.equal(a.remoteSync(30000), true);
    const up = a.remoteStats();
    assert.equal(up.remotes, 1);
    assert.equal(up.uploads, n + 2);
    assert.equal(up.uploadErrors + up.uploadDropped + up.queued, 0);
    a.close();

    const b = Cache.open(path.join(dir, 'b'), { remote: { ...remote, mode: 'read-only', localOnly: ['meta'] } });
    for (let i = 0; i < n; i++) assert.equal(b.getString('transform', `src/m${i}.ts`), `export const v = ${i};\n`.repeat(10));
    assert.deepEqual(b.batchGet([['bundle', 'app.js'], ['bundle', 'none'], ['meta', 'm']]).map((v) => v && v.toString()),
      ['bundled', undefined, undefined]);
    const r = b.remoteStats();
    assert.equal(r.hits, n + 1);
    assert.equal(r.backfills, n + 1);
    assert.equal(r.misses, 1); // meta is local-only: never asked
    assert.ok(r.bytesDown > 0 && r.getMeanMicros > 0);
    assert.equal(b.stats().entries, n + 1);
    // Read again: local now.
    b.get('transform', 'src/m1.ts');
    assert.equal(b.remoteStats().gets, r.gets);
    assert.equal(b.statsJson().remote.mode, 'read-only');
    b.close();

    // Another key: every value is rejected, never served.
    const c = Cache.open(path.join(dir, 'c'), { remote: { ...remote, hmacKey: 'somebody else\'s 16+ byte key' } });
    assert.equal(c.get('transform', 'src/m1.ts'), undefined);
    assert.equal(c.remoteStats().rejected, 1);
    c.close();
  });
}

test('remote options are checked', () => {
  const dir = tmp();
  const bad = [
    { url: 'ftp://cache.example' },
    { url: 'https://127.0.0.1:9', caFile: '/nonexistent/ca.pem' },
    { url: 'https://127.0.0.1:9', token: 'has space' },
    { url: 'https://127.0.0.1:9', headers: { Host: 'x' } },
    { url: 'https://127.0.0.1:9', proxy: 'socks5://127.0.0.1:1080' },
    { url: 'http://127.0.0.1:9', mode: 'sometimes' },
    { url: 'http://127.0.0.1:9', hmacKey: 'short' },
    { url: 'http://127.0.0.1:9', name: 'has space' },
    { url: 'http://127.0.0.1:9', timeoutMs: 0 },
    { url: 'http://127.0.0.1:9', localOnly: ['nope'] },
  ];
  for (const remote of bad) {
    assert.throws(() => Cache.open(path.join(dir, 'x'), { remote }), (e) => e instanceof NexxoCacheError &&
      ['INVALID_ARGUMENT', 'UNKNOWN_CATEGORY'].includes(e.code), JSON.stringify(remote));
  }
});

test('a dead remote costs a build nothing but a count', () => {
  const dir = tmp();
  const c = Cache.open(path.join(dir, 'c'), { remote: { url: 'http://127.0.0.1:9/cache', retries: 0, cooldownMs: 60000 } });
  assert.equal(c.get('parse', 'k'), undefined);
  c.set('parse', 'k', 'v');
  assert.equal(c.getString('parse', 'k'), 'v');
  assert.equal(c.remoteSync(5000), true);
  const r = c.remoteStats();
  assert.equal(r.errors, 1);
  assert.equal(r.openBreakers, 1);
  assert.equal(r.skipped, 1);
  c.close();
  const plain = Cache.open(path.join(dir, 'plain'));
  assert.equal(plain.remoteStats().remotes, 0);
  assert.equal(plain.remoteSync(0), true);
  plain.close();
});

test('CacheManager: remote options, getRemoteStats and syncRemote', (t) => {
  const url = server(t, 'NEXXO_TEST_HTTP_URL');
  if (!url) return;
  const root = tmp();
  const m = new CacheManager(root, { remote: { url, name: unique() } });
  m.set('parse', 'a.ts', 'ast');
  assert.equal(m.syncRemote(), true);
  assert.equal(m.getRemoteStats().uploads, 1);
  m.close();
  const plain = new CacheManager(tmp());
  assert.equal(plain.getRemoteStats(), null);
  plain.close();
});

/**
 * A server that accepts connections and never answers: a get that misses locally waits
 * on it for the remote timeout. getAsync waits on the thread pool, so a timer on the
 * event loop keeps firing on time meanwhile; the synchronous get would stall it.
 */
test('getAsync: the event loop keeps running while a remote answers slowly', async () => {
  const net = require('node:net');
  const sockets = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  const port = silent.address().port;
  const dir = tmp();
  // Read-only: no upload of the local set competes with the get for the silent server.
  const c = Cache.open(path.join(dir, 'c'), { remote: { url: `http://127.0.0.1:${port}/c`, mode: 'read-only', timeoutMs: 1500, retries: 0 } });
  try {
    c.set('parse', 'local', 'here');
    let ticks = 0;
    let worstGap = 0;
    let last = Date.now();
    const timer = setInterval(() => {
      const now = Date.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
      ticks += 1;
    }, 20);
    const started = Date.now();
    const [miss, hit] = await Promise.all([c.getAsync('parse', 'absent'), c.getAsync('parse', 'local')]);
    const waited = Date.now() - started;
    clearInterval(timer);
    assert.equal(miss, undefined);
    assert.equal(String(hit), 'here');
    assert.ok(waited >= 1000, `the miss waited on the silent remote (${waited} ms)`);
    // 20 ms ticks over >= 1 s: dozens fired, none late by a whole timeout.
    assert.ok(ticks >= 20 && worstGap < 500, `${ticks} ticks, worst gap ${worstGap} ms`);
    assert.equal(c.remoteStats().errors, 1);
    // Batch reads: the local hit, and a miss (the breaker is open now: skipped at once).
    c.set('parse', 'local2', 'here too');
    assert.deepEqual((await c.batchGetAsync([['parse', 'local'], ['parse', 'absent'], { category: 'parse', key: 'local2' }])).map((v) => v && String(v)),
      ['here', undefined, 'here too']);
    assert.deepEqual((await c.getManyAsync('parse', ['local2', 'nope'])).map((v) => v && String(v)), ['here too', undefined]);
    // A value larger than the first answer buffer: grown and retried.
    const big = Buffer.alloc(3 << 20, 7);
    c.setSync('bundle', 'big', big);
    const [gotBig] = await c.batchGetAsync([['bundle', 'big']]);
    assert.ok(gotBig.equals(big));
    // The other asynchronous forms, and a close with none running.
    assert.equal(await c.remoteSyncAsync(1000), true);
    await c.compactAsync('parse');
    await c.clearAsync(['meta']);
    assert.equal(typeof (await c.enforcePolicyAsync()).evictedEntries, 'number');
  } finally {
    await c.closeAsync();
    for (const s of sockets) s.destroy();
    silent.close();
  }
  assert.throws(() => c.get('parse', 'local'), (e) => e.code === 'CLOSED');
});

test('close() while asynchronous calls run: they finish, then the handle closes', async () => {
  const net = require('node:net');
  const sockets = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  const c = Cache.open(path.join(tmp(), 'c'), { remote: { url: `http://127.0.0.1:${silent.address().port}/c`, timeoutMs: 500, retries: 0 } });
  const pending = c.getAsync('parse', 'absent');
  c.close();
  assert.throws(() => c.get('parse', 'k'), (e) => e.code === 'CLOSED');
  assert.equal(await pending, undefined);
  // closeAsync with a call still running waits for it, then closes.
  const d = Cache.open(path.join(tmp(), 'd'), { remote: { url: `http://127.0.0.1:${silent.address().port}/c`, timeoutMs: 500, retries: 0 } });
  const pendingD = d.getAsync('parse', 'absent');
  await d.closeAsync();
  assert.equal(await pendingD, undefined);
  assert.throws(() => d.get('parse', 'k'), (e) => e.code === 'CLOSED');
  for (const s of sockets) s.destroy();
  silent.close();
});
