'use strict';
// A first build as a build tool runs it with the seed's API: for each module, `get` (a
// miss: the cache is new) and then `set`, a turn ending after every AWAIT-th module (the
// transform's own asynchronous work), the last set awaited. So the gets run while earlier
// sets are pending or being written on another thread. Against lmdb-js (`getBinary`, then
// `put`). Each run is a fresh `node` on a new directory; contestants alternate, RUNS times
// each; medians with min-max are printed.
//
//   node bench/node/first.js [--runs 8] [--n 100000] [--await 100] [--library PATH ...] [--binding DIR[:LIB] ...]
//
// --library adds this checkout's binding on another libnexxo_cache (an older build, to
// compare); --binding DIR[:LIB] adds another binding directory, on LIB or on the default
// library (NEXXO_CACHE_LIB, or this repository's build/lib). Per get: the median and 99th percentile of its time
// (one hrtime pair per get, about 0.1 µs, in every contestant), and the sum of the gets
// that took over 20 µs (a get that waited).

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { moduleText, perKeyStore, spread: stats } = require('./contestants');

const LMDB = 'lmdb-js';

/** One run in this process: prints { total, p50, p99, slow } (ms, µs, µs, ms). */
async function child(binding, n, every) {
  const keys = Array.from({ length: n }, (_, i) => `src/components/module${i}.tsx`);
  const values = Array.from({ length: 64 }, (_, i) => moduleText(i));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexxo-first-'));
  const { put, get, close } = perKeyStore(binding, dir);
  const took = new Float64Array(n);
  let last;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    const v = get(keys[i]);
    took[i] = Number(process.hrtime.bigint() - s) / 1e3;
    if (v !== undefined) throw new Error(`${binding}: a hit in a new cache`);
    last = put(keys[i], values[i % 64]);
    if (i % every === every - 1) await null;
  }
  await last;
  const total = performance.now() - t0;
  await close();
  fs.rmSync(dir, { recursive: true, force: true });
  let slow = 0;
  for (const t of took) if (t > 20) slow += t / 1e3;
  took.sort();
  const q = (p) => took[Math.floor((n - 1) * p)];
  process.stdout.write(JSON.stringify({ total, p50: q(0.5), p99: q(0.99), slow }));
}

function main() {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
  };
  const all = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
  const runs = Number(opt('runs', '8'));
  const n = Number(opt('n', '100000'));
  const every = Number(opt('await', '100'));
  const repo = path.resolve(__dirname, '..', '..');
  const own = path.join(repo, 'bindings', 'node');
  const lib = process.env.NEXXO_CACHE_LIB || path.join(repo, 'build', 'lib', 'libnexxo_cache.so.1');
  // [label, binding, library]
  const contestants = [
    ['nexxo CacheManager (this checkout)', own, lib],
    ...all('library').map((l) => [`nexxo CacheManager (library ${l})`, own, path.resolve(l)]),
    ...all('binding').map((b) => {
      const [dir, library = lib] = b.split(':');
      return [`nexxo CacheManager (${b})`, dir, path.resolve(library)];
    }),
    ['lmdb-js (getBinary, put)', LMDB, lib],
  ];
  const got = contestants.map(() => []);
  for (let r = 0; r < runs; r++) {
    contestants.forEach(([, binding, library], c) => {
      const env = { ...process.env, NEXXO_CACHE_LIB: library };
      const out = execFileSync(process.execPath, [__filename, '--child', binding, String(n), String(every)], { env, cwd: __dirname, encoding: 'utf8' });
      got[c].push(JSON.parse(out));
    });
  }
  const f = (s, d) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}-${s.max.toFixed(d)})`;
  const lmdb = stats(got[got.length - 1].map((x) => x.total)).median;
  console.log(`\nA first build of ${n.toLocaleString('en')} modules (get, a miss, then set of 1 KiB; a turn ends every ${every}), ${runs} runs each, interleaved: median (min-max)`);
  console.log('| contestant | build, ms | get p50, µs | get p99, µs | gets over 20 µs, ms | lmdb-js ÷ it (build) |');
  console.log('|---|---|---|---|---|---|');
  contestants.forEach(([label], c) => {
    const xs = got[c];
    const total = stats(xs.map((x) => x.total));
    const row = [f(total, 0), f(stats(xs.map((x) => x.p50)), 2), f(stats(xs.map((x) => x.p99)), 1), f(stats(xs.map((x) => x.slow)), 0)];
    console.log(`| ${label} | ${row.join(' | ')} | ${(lmdb / total.median).toFixed(2)} |`);
  });
}

if (process.argv[2] === '--child') {
  child(process.argv[3], Number(process.argv[4]), Number(process.argv[5])).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main();
}
