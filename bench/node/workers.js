'use strict';
// Many workers, one cache: W workers (processes or worker_threads) run the seed workload
// at once on one store, each on its own N keys: N `set`s (timed per call), then the N
// `get`s of its keys in an order unrelated to key order. Side by side with lmdb-js
// (`put`/`getBinary`, its writes awaited at the end of the phase) and a directory of one
// file per entry (what ccache and Jest do: write to a temporary name, rename; read the
// file). Phases start together (every worker waits for the go of the parent), and the
// aggregate rate is all workers' operations over the phase's wall time.
//
//   node bench/node/workers.js [--workers 1,2,4,8] [--mode process|thread] [--n 1000]
//        [--rounds 3] [--contestants nexxo,lmdb,files] [--second-build] [--json out.json]
//
// --second-build: one process first writes every worker's keys and closes the store; the
// workers then only read (what the next build of a project does).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fork } = require('node:child_process');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const { moduleText, shuffled, spread } = require('./contestants');

const LIB = path.resolve(__dirname, '..', '..', 'bindings', 'node', 'lib', 'index.js');

const contestants = {
  nexxo: {
    open: (dir) => require(LIB).getCacheManager(dir, { logger: { warn: (m) => { throw new Error(m); } } }),
    // The write phase ends when the last set's batch is acknowledged (durable), as
    // lmdb-js's ends with its last put's.
    set: (m, k, v) => {
      m.lastSet = m.set('transform', k, v);
    },
    flush: async (m) => m.lastSet,
    get: (m, k) => m.get('transform', k),
    close: (m) => m.close(),
  },
  lmdb: {
    open: (dir) => require('lmdb').open({ path: path.join(dir, 'lmdb'), encoding: 'binary' }),
    set: (db, k, v) => {
      db.lastPut = db.put(k, v);
    },
    flush: async (db) => db.lastPut,
    get: (db, k) => db.getBinary(k),
    close: (db) => db.close(),
  },
  files: {
    open: (dir) => {
      const d = path.join(dir, 'files');
      fs.mkdirSync(d, { recursive: true });
      return { d, tmp: `${process.pid}.${Math.random().toString(36).slice(2)}` };
    },
    set: (h, k, v) => {
      const name = path.join(h.d, encodeURIComponent(k));
      const tmp = `${name}.${h.tmp}`;
      fs.writeFileSync(tmp, v);
      fs.renameSync(tmp, name);
    },
    flush: async () => {},
    get: (h, k) => {
      try {
        return fs.readFileSync(path.join(h.d, encodeURIComponent(k)));
      } catch {
        return undefined;
      }
    },
    close: () => {},
  },
};

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** One worker: open, then a write phase and a read phase, each on the parent's go. */
async function worker(data, send, next) {
  const { contestant, dir, id, n } = data;
  const c = contestants[contestant];
  const h = c.open(dir);
  const keys = Array.from({ length: n }, (_, i) => `w${id}/src/components/module${i}.tsx`);
  const values = keys.map((_, i) => moduleText(id * n + i));
  const order = shuffled(n);
  const lat = new Float64Array(n);
  send({ ready: true });
  await next();
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < n && !data.prefilled; i++) {
    const t = process.hrtime.bigint();
    c.set(h, keys[i], values[i]);
    lat[i] = Number(process.hrtime.bigint() - t);
  }
  await c.flush(h);
  const writeNs = Number(process.hrtime.bigint() - t0);
  const wl = Array.from(lat).sort((a, b) => a - b);
  send({ written: true });
  await next();
  t0 = process.hrtime.bigint();
  let misses = 0;
  for (let j = 0; j < n; j++) {
    const i = order[j];
    const t = process.hrtime.bigint();
    if (c.get(h, keys[i]) === undefined) misses++;
    lat[j] = Number(process.hrtime.bigint() - t);
  }
  const readNs = Number(process.hrtime.bigint() - t0);
  const rl = Array.from(lat).sort((a, b) => a - b);
  if (misses) throw new Error(`${contestant}: ${misses} of ${n} reads missed`);
  send({
    done: true,
    writeNs, readNs,
    write: { p50: percentile(wl, 0.5), p99: percentile(wl, 0.99) },
    read: { p50: percentile(rl, 0.5), p99: percentile(rl, 0.99) },
  });
  c.close(h);
}

/** Runs W workers of one contestant on a fresh directory; returns the phase rates. */
async function runOnce(contestant, workers, mode, n, secondBuild) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexxo-workers-'));
  if (secondBuild) {
    // An earlier build wrote every worker's keys and ended: this one only reads them.
    const c = contestants[contestant];
    const h = c.open(dir);
    for (let id = 0; id < workers; id++) {
      for (let i = 0; i < n; i++) c.set(h, `w${id}/src/components/module${i}.tsx`, moduleText(id * n + i));
    }
    await c.flush(h);
    c.close(h);
  }
  const kids = [];
  for (let id = 0; id < workers; id++) {
    const data = { contestant, dir, id, n, prefilled: secondBuild };
    const k = mode === 'process'
      ? fork(__filename, ['--child', JSON.stringify(data)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : new Worker(__filename, { workerData: data });
    const messages = [];
    let wake = null;
    k.on('message', (m) => {
      messages.push(m);
      if (wake) wake();
    });
    k.on('error', (e) => { throw e; });
    const next = async () => {
      while (!messages.length) await new Promise((r) => { wake = r; });
      return messages.shift();
    };
    const exited = new Promise((r) => k.once('exit', r));
    kids.push({ k, next, exited, send: (m) => (mode === 'process' ? k.send(m) : k.postMessage(m)) });
  }
  const all = async () => Promise.all(kids.map((k) => k.next()));
  await all(); // ready
  let t = process.hrtime.bigint();
  kids.forEach((k) => k.send('go'));
  await all(); // written
  const writeWall = Number(process.hrtime.bigint() - t);
  t = process.hrtime.bigint();
  kids.forEach((k) => k.send('go'));
  const done = await all();
  const readWall = Number(process.hrtime.bigint() - t);
  const codes = await Promise.all(kids.map((k) => k.exited));
  if (codes.some((c) => c !== 0)) throw new Error(`${contestant}: a worker exited with ${codes}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const med = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return {
    writes: (workers * n) / (writeWall / 1e9),
    reads: (workers * n) / (readWall / 1e9),
    writeP50: med(done.map((d) => d.write.p50)),
    writeP99: med(done.map((d) => d.write.p99)),
    readP50: med(done.map((d) => d.read.p50)),
    readP99: med(done.map((d) => d.read.p99)),
  };
}

function childMain(data, send, onMessage) {
  const queue = [];
  let wake = null;
  onMessage((m) => {
    queue.push(m);
    if (wake) wake();
  });
  const next = async () => {
    while (!queue.length) await new Promise((r) => { wake = r; });
    return queue.shift();
  };
  worker(data, send, next).then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

async function main() {
  const arg = (name, def) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : def;
  };
  const counts = arg('workers', '1,2,4,8').split(',').map(Number);
  const mode = arg('mode', 'process');
  const n = Number(arg('n', '1000'));
  const rounds = Number(arg('rounds', '3'));
  const names = arg('contestants', 'nexxo,lmdb,files').split(',');
  const secondBuild = process.argv.includes('--second-build');
  const out = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, mode, n, rounds, rows: [] };
  const fmt = (x) => Math.round(x).toLocaleString('en');
  const span = (xs) => {
    const s = spread(xs);
    return `${fmt(s.median)} (${fmt(s.min)}-${fmt(s.max)})`;
  };
  console.log(`\n${mode === 'process' ? 'processes' : 'worker_threads'} x ${n} entries of 1 KiB each, one store, ${rounds} rounds interleaved${secondBuild ? ': a second build (reads of what an earlier build wrote; the writes column is empty)' : ''}`);
  console.log('| workers | contestant | writes/s (all) | reads/s (all) | set p50 / p99 µs | get p50 / p99 µs |');
  console.log('|---|---|---|---|---|---|');
  for (const w of counts) {
    const runs = Object.fromEntries(names.map((c) => [c, []]));
    for (let r = 0; r < rounds; r++) for (const c of names) runs[c].push(await runOnce(c, w, mode, n, secondBuild));
    for (const c of names) {
      const rs = runs[c];
      const us = (k) => (rs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(rs.length / 2)] / 1000).toFixed(1);
      console.log(`| ${w} | ${c} | ${span(rs.map((x) => x.writes))} | ${span(rs.map((x) => x.reads))} | ${us('writeP50')} / ${us('writeP99')} | ${us('readP50')} / ${us('readP99')} |`);
      out.rows.push({ workers: w, contestant: c, runs: rs });
    }
  }
  const json = arg('json', null);
  if (json) fs.writeFileSync(json, JSON.stringify(out, null, 2));
}

if (!isMainThread) {
  childMain(workerData, (m) => parentPort.postMessage(m), (f) => parentPort.on('message', f));
} else if (process.argv[2] === '--child') {
  childMain(JSON.parse(process.argv[3]), (m) => process.send(m), (f) => process.on('message', f));
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
