'use strict';
// A build's first calls, in a new process each time: the seed's API (getCacheManager, a
// loop of N `set`s of 1 KiB, the last one awaited, then N `get`s in shuffled order)
// against lmdb-js (`put`, the last one awaited, then `getBinary`), while V8 still
// interprets the code on the path. Each run is a fresh `node`; contestants alternate,
// RUNS times each; medians with min-max are printed, in milliseconds.
//
//   node bench/node/cold.js [--runs 20] [--n 1000] [--binding DIR ...]
//
// --binding adds a Node binding directory as a contestant (for example an older
// checkout's bindings/node), run on the same library (NEXXO_CACHE_LIB, or this
// repository's build/lib); the repository's own binding is always one.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { moduleText, perKeyStore, shuffled, spread: stats } = require('./contestants');

const LMDB = 'lmdb-js';

/** One run in this process: prints { loop, sets, gets } in ms. */
async function child(which, n) {
  const keys = Array.from({ length: n }, (_, i) => `src/components/module${i}.tsx`);
  const values = keys.map((_, i) => moduleText(i));
  const order = shuffled(n);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexxo-cold-'));
  const { put, get, close } = perKeyStore(which, dir);
  const t0 = performance.now();
  let last;
  for (let i = 0; i < n; i++) last = put(keys[i], values[i]);
  const t1 = performance.now();
  await last;
  const t2 = performance.now();
  for (const i of order) if (get(keys[i]) === undefined) throw new Error(`${which}: a miss`);
  const t3 = performance.now();
  await close();
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify({ loop: t1 - t0, sets: t2 - t0, gets: t3 - t2 }));
}

function main() {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
  };
  const runs = Number(opt('runs', '20'));
  const n = Number(opt('n', '1000'));
  const repo = path.resolve(__dirname, '..', '..');
  const bindings = [path.join(repo, 'bindings', 'node')];
  args.forEach((a, i) => {
    if (a === '--binding') bindings.push(path.resolve(args[i + 1]));
  });
  const env = { ...process.env };
  if (!env.NEXXO_CACHE_LIB) env.NEXXO_CACHE_LIB = path.join(repo, 'build', 'lib', 'libnexxo_cache.so.1');
  const contestants = [...bindings, LMDB];
  const got = new Map(contestants.map((c) => [c, []]));
  for (let r = 0; r < runs; r++) {
    for (const c of contestants) {
      const out = execFileSync(process.execPath, [__filename, '--child', c, String(n)], { env, cwd: __dirname, encoding: 'utf8' });
      got.get(c).push(JSON.parse(out));
    }
  }
  const name = (c) => (c === LMDB ? 'lmdb-js (put, getBinary)' : c === bindings[0] ? 'nexxo CacheManager (this checkout)' : `nexxo CacheManager (${c})`);
  const f = (s) => `${s.median.toFixed(2)} (${s.min.toFixed(2)}-${s.max.toFixed(2)})`;
  const lmdb = { sets: stats(got.get(LMDB).map((x) => x.sets)), gets: stats(got.get(LMDB).map((x) => x.gets)) };
  console.log(`\nA new process's first ${n.toLocaleString('en')} sets (awaited) and gets of 1 KiB, ${runs} runs each, interleaved: ms, median (min-max)`);
  console.log('| contestant | set loop | sets, last awaited | gets | lmdb-js ÷ it (sets / gets) |');
  console.log('|---|---|---|---|---|');
  for (const c of contestants) {
    const xs = got.get(c);
    const s = { loop: stats(xs.map((x) => x.loop)), sets: stats(xs.map((x) => x.sets)), gets: stats(xs.map((x) => x.gets)) };
    console.log(`| ${name(c)} | ${f(s.loop)} | ${f(s.sets)} | ${f(s.gets)} | ${(lmdb.sets.median / s.sets.median).toFixed(2)} / ${(lmdb.gets.median / s.gets.median).toFixed(2)} |`);
  }
}

if (process.argv[2] === '--child') {
  child(process.argv[3], Number(process.argv[4])).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main();
}
