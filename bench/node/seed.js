'use strict';
// The seed's workload (N transformed modules of ~1 KiB: N writes, then N reads in an
// order unrelated to key order) through nexxo-cache's Node binding, side by side with
// lmdb-js (Parcel's store) and classic-level (LevelDB) doing the same work.
// Contestants run interleaved, ROUNDS times each; medians with min-max are printed.
//
//   node bench/node/seed.js [--sizes 1000,100000] [--rounds 5] [--json out.json]

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { contestants: all, moduleText, shuffled, spread: stats } = require('./contestants');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const SIZES = arg('sizes', '1000,100000').split(',').map(Number);
const ROUNDS = Number(arg('rounds', '5'));
const JSON_OUT = arg('json', null);

function workload(n) {
  const keys = Array.from({ length: n }, (_, i) => `src/components/module${i}.tsx`);
  return { keys, values: keys.map((_, i) => moduleText(i)), order: shuffled(n) };
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'nexxo-bench-'));
const now = () => process.hrtime.bigint();
const secs = (t) => Number(now() - t) / 1e9;

/** A contestant writing one by one or in batches of 1000, then reading one by one or in batches. */
function runner(c, batched, batchedReads = batched) {
  return {
    async write(w) {
      const h = await c.open(path.join(tmp(), 'db'));
      const t = now();
      if (batched) {
        for (let i = 0; i < w.keys.length; i += 1000) {
          await c.putBatch(h, w.keys.slice(i, i + 1000).map((k, j) => [k, w.values[i + j]]));
        }
      } else {
        for (let i = 0; i < w.keys.length; i++) c.put(h, w.keys[i], w.values[i]);
        await c.flush(h);
      }
      return { h, s: secs(t) };
    },
    async read(h, w) {
      const t = now();
      if (batchedReads) {
        for (let i = 0; i < w.order.length; i += 1000) {
          for (const v of await c.getBatch(h, w.order.slice(i, i + 1000).map((j) => w.keys[j]))) if (v === undefined) throw new Error('miss');
        }
      } else {
        for (const i of w.order) if (c.get(h, w.keys[i]) === undefined) throw new Error('miss');
      }
      return secs(t);
    },
    close: (h) => c.close(h),
  };
}

// The seed's API: getCacheManager(root), then set and get one key at a time.
const manager = {
  open: async (dir) => require('../../bindings/node/lib/index.js').getCacheManager(dir, { logger: { warn: (m) => { throw new Error(m); } } }),
  put: (m, k, v) => {
    m.lastSet = m.set('transform', k, v);
  },
  flush: async (m) => m.lastSet,
  get: (m, k) => m.get('transform', k),
  close: async (m) => m.close(),
};

const contestants = {
  'nexxo CacheManager set/get': runner(manager, false),
  'nexxo put/get': runner(all['nexxo-node'], false),
  'nexxo batchSet/batchGet': runner(all['nexxo-node'], true),
  'lmdb put/getBinary': runner(all.lmdb, false),
  'lmdb put/getMany': runner(all.lmdb, false, true),
  'classic-level batch/getSync': runner(all['classic-level'], true, false),
};

async function main() {
  const results = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, rounds: ROUNDS, sizes: {} };
  for (const n of SIZES) {
    const w = workload(n);
    const runs = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, c] of Object.entries(contestants)) {
        const { h, s: ws } = await c.write(w);
        const rs = await c.read(h, w);
        await c.close(h);
        (runs[name] ||= { write: [], read: [] }).write.push(n / ws);
        runs[name].read.push(n / rs);
      }
    }
    const table = {};
    for (const [name, r] of Object.entries(runs)) table[name] = { write: stats(r.write), read: stats(r.read) };
    results.sizes[n] = table;
    const base = table['nexxo CacheManager set/get'];
    const batch = table['nexxo batchSet/batchGet'];
    console.log(`\n${n} entries of 1 KiB, ${ROUNDS} rounds interleaved: ops/s median (min-max)`);
    console.log('| contestant | writes/s | reads/s | nexxo CacheManager ÷ it (w / r) | nexxo batch ÷ it (w / r) |');
    console.log('|---|---|---|---|---|');
    const f = (s) => `${Math.round(s.median).toLocaleString('en')} (${Math.round(s.min).toLocaleString('en')}-${Math.round(s.max).toLocaleString('en')})`;
    for (const [name, t] of Object.entries(table)) {
      const ratio = (a) => `${(a.write.median / t.write.median).toFixed(2)} / ${(a.read.median / t.read.median).toFixed(2)}`;
      console.log(`| ${name} | ${f(t.write)} | ${f(t.read)} | ${ratio(base)} | ${ratio(batch)} |`);
    }
  }
  results.peakRssMiB = process.resourceUsage().maxRSS / 1024;
  console.log(`\npeak RSS of the benchmark process: ${results.peakRssMiB.toFixed(1)} MiB`);
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify(results, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
