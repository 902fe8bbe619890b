'use strict';
// The package's entries and loader order (scripts/install-test.sh installs the packed
// packages into a clean directory and runs them; this checks what it can from the tree).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const cjs = require('../lib/index');
const pkg = require('../package.json');
const { tmpDir } = require('./tmpdir');

test('the ES module entry exports what the CommonJS entry does, the same objects', async () => {
  const esm = await import(path.join(__dirname, '..', 'lib', 'index.mjs'));
  const named = Object.keys(esm).filter((k) => k !== 'default').sort();
  assert.deepEqual(named, Object.keys(cjs).sort());
  for (const k of named) assert.equal(esm[k], cjs[k], k);
  assert.equal(esm.default, cjs);
});

test('the exports map names both entries and the types', () => {
  const root = pkg.exports['.'];
  assert.equal(root.require, './' + pkg.main);
  assert.equal(root.types, './' + pkg.types);
  assert.equal(root.import, './lib/index.mjs');
});

test('NEXXO_CACHE_LIB comes before everything but libraryPath; a bad one is named and skipped', () => {
  const { candidates } = require('../lib/native');
  assert.deepEqual(candidates('/x/libnexxo_cache.so'), ['/x/libnexxo_cache.so']);
  const saved = process.env.NEXXO_CACHE_LIB;
  process.env.NEXXO_CACHE_LIB = '/nonexistent/libnexxo_cache.so.1';
  try {
    assert.equal(candidates()[0], '/nonexistent/libnexxo_cache.so.1');
  } finally {
    if (saved === undefined) delete process.env.NEXXO_CACHE_LIB;
    else process.env.NEXXO_CACHE_LIB = saved;
  }
  // A new process, so the library is loaded afresh: the bad path is tried, reported, and
  // the repository's build is used.
  const r = spawnSync(process.execPath, ['-e', `
    const { getCacheManager } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))});
    const m = getCacheManager(${JSON.stringify(tmpDir('nexxo-load-'))});
    console.log(JSON.stringify({ disabled: m.getStats().disabled }));
  `], { env: { ...process.env, NEXXO_CACHE_LIB: '/nonexistent/libnexxo_cache.so.1' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { disabled: false });
});
