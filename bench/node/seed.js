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
const { Cache } = require('../../bindings/node/lib/index.js');
const { open: lmdbOpen } = require('lmdb');
const { ClassicLevel } = require('classic-level');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const SIZES = arg('sizes', '1000,100000').split(',').map(Number);
const ROUNDS = Number(arg('rounds', '5'));
const JSON_OUT = arg('json', null);

function moduleText(i) {
  let s = '';
  while (s.length < 1024) {
    s += `import { h } from './runtime.js';\nexport function C${i}(p) { return h('ul', { className: 'l${i}' }, p.items.map((t, e) => h('li', { key: e }, t.label))); }\n`;
  }
  return Buffer.from(s.slice(0, 1024));
}

function workload(n) {
  const keys = Array.from({ length: n }, (_, i) => `src/components/module${i}.tsx`);
  const values = keys.map((_, i) => moduleText(i));
  const order = keys.map((_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = (i * 2654435761) % (i + 1); // a fixed shuffle, unrelated to key order
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { keys, values, order };
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'nexxo-bench-'));
const now = () => process.hrtime.bigint();
const secs = (t) => Number(now() - t) / 1e9;

const contestants = {
  'nexxo set/get': {
    async write(w) {
      const dir = path.join(tmp(), 'c');
      const c = Cache.open(dir);
      const t = now();
      for (let i = 0; i < w.keys.length; i++) c.set('transform', w.keys[i], w.values[i]);
      return { h: c, s: secs(t) };
    },
    async read(c, w) {
      const t = now();
      for (const i of w.order) if (c.get('transform', w.keys[i]) === undefined) throw new Error('nexxo miss');
      return secs(t);
    },
    close: (c) => c.close(),
  },
  'nexxo batchSet/batchGet': {
    async write(w) {
      const c = Cache.open(path.join(tmp(), 'c'));
      const t = now();
      for (let i = 0; i < w.keys.length; i += 1000) {
        const batch = [];
        for (let j = i; j < Math.min(i + 1000, w.keys.length); j++) batch.push(['transform', w.keys[j], w.values[j]]);
        c.batchSet(batch);
      }
      return { h: c, s: secs(t) };
    },
    async read(c, w) {
      const t = now();
      for (let i = 0; i < w.order.length; i += 1000) {
        const ks = w.order.slice(i, i + 1000).map((j) => ['transform', w.keys[j]]);
        for (const v of c.batchGet(ks)) if (v === undefined) throw new Error('nexxo miss');
      }
      return secs(t);
    },
    close: (c) => c.close(),
  },
  'lmdb put/getBinary': {
    async write(w) {
      const db = lmdbOpen({ path: path.join(tmp(), 'l'), encoding: 'binary' });
      const t = now();
      let last;
      for (let i = 0; i < w.keys.length; i++) last = db.put(w.keys[i], w.values[i]);
      await last;
      return { h: db, s: secs(t) };
    },
    async read(db, w) {
      const t = now();
      for (const i of w.order) if (db.getBinary(w.keys[i]) === undefined) throw new Error('lmdb miss');
      return secs(t);
    },
    close: (db) => db.close(),
  },
  'classic-level batch/getSync': {
    async write(w) {
      const db = new ClassicLevel(path.join(tmp(), 'v'), { valueEncoding: 'buffer' });
      await db.open();
      const t = now();
      for (let i = 0; i < w.keys.length; i += 1000) {
        const ops = [];
        for (let j = i; j < Math.min(i + 1000, w.keys.length); j++) ops.push({ type: 'put', key: w.keys[j], value: w.values[j] });
        await db.batch(ops);
      }
      return { h: db, s: secs(t) };
    },
    async read(db, w) {
      const t = now();
      for (const i of w.order) if (db.getSync(w.keys[i]) === undefined) throw new Error('classic-level miss');
      return secs(t);
    },
    close: (db) => db.close(),
  },
};

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
}

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
    const base = table['nexxo set/get'];
    const batch = table['nexxo batchSet/batchGet'];
    console.log(`\n${n} entries of 1 KiB, ${ROUNDS} rounds interleaved: ops/s median (min-max)`);
    console.log('| contestant | writes/s | reads/s | nexxo set/get ÷ it (w / r) | nexxo batch ÷ it (w / r) |');
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
