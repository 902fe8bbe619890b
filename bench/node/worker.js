'use strict';
// One Node benchmark run in a process of its own, for bench/run.py; prints one JSON object.
//   node worker.js <contestant> <workload> <count> <value_len> <dir>
// workloads: write-read (one by one), batch (1000 per call), cold-open (read an
// existing store in a new process), cold-open-batch (the same, reading 1000 keys a call),
// first-build (a new store: for each key a get, a miss, then a put; a turn ends every
// 100 keys, as a build's own asynchronous work ends them, and every 1000th put is
// awaited, as write-read's are).
// After write-read and batch, every contestant also reads all keys again without a timer
// per read (untimed_read_ops_per_s) and through its batch read, 1000 keys a call
// (batch_read_ops_per_s): the per-read timer costs about as much as a read here. After
// write-read, the writes are also repeated into a second new store without a timer per
// write (untimed_write_ops_per_s; the process is warmed up by then, for every contestant).

const fs = require('node:fs');
const path = require('node:path');
const { contestants, moduleText, shuffled } = require('./contestants');

const [name, workload, countArg, lenArg, dir] = process.argv.slice(2);
const n = Number(countArg);
const len = Number(lenArg);
const c = contestants[name];
if (!c) throw new Error(`unknown contestant ${name}`);

const keys = Array.from({ length: n }, (_, i) => `src/components/module${i}.tsx`);
const values = Array.from({ length: 64 }, (_, i) => moduleText(i, len));
const now = () => process.hrtime.bigint();
const pct = (xs, p) => {
  if (!xs.length) return 0;
  xs.sort((a, b) => a - b);
  return xs[Math.floor((xs.length - 1) * p)];
};
function du(d) {
  let total = 0;
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    total += e.isDirectory() ? du(p) : fs.statSync(p).blocks * 512;
  }
  return total;
}

/** Reads keys[order[i]] for all i through getBatch, 1000 a call; returns the hits. */
async function readBatched(h, order, from) {
  let hits = 0;
  for (let i = from; i < order.length; i += 1000) {
    const ks = [];
    for (let j = i; j < Math.min(i + 1000, order.length); j++) ks.push(keys[order[j]]);
    for (const v of await c.getBatch(h, ks)) if (v !== undefined) hits++;
  }
  return hits;
}

/** Puts every key one by one, awaiting every 1000th; with `wl`, times each put into it. */
async function putAll(h, wl) {
  for (let i = 0; i < n; i++) {
    if (wl) {
      const s = now();
      c.put(h, keys[i], values[i % 64]);
      wl.push(Number(now() - s) / 1e3);
    } else {
      c.put(h, keys[i], values[i % 64]);
    }
    if (i % 1000 === 999) await c.flush(h);
  }
  await c.flush(h);
}

async function main() {
  const out = { contestant: name, workload, count: n, value_len: len };
  if (c.prepare) c.prepare();
  if (workload === 'first-build') {
    const h = await c.open(dir);
    const gl = [];
    const t = now();
    for (let i = 0; i < n; i++) {
      const s = now();
      const v = c.get(h, keys[i]);
      gl.push(Number(now() - s) / 1e3);
      if (v !== undefined) throw new Error(`${name}: a hit in a new store`);
      c.put(h, keys[i], values[i % 64]);
      if (i % 1000 === 999) await c.flush(h);
      else if (i % 100 === 99) await null;
    }
    await c.flush(h);
    out.build_ops_per_s = n / (Number(now() - t) / 1e9);
    out.miss_p50_us = pct(gl, 0.5);
    out.miss_p99_us = pct(gl, 0.99);
    for (let i = 0; i < n; i += Math.max(1, Math.floor(n / 1000))) {
      const v = c.get(h, keys[i]);
      if (v === undefined || !Buffer.from(v).equals(values[i % 64])) throw new Error(`${name}: key ${i} did not read back as written`);
    }
    await c.close(h);
  } else if (workload === 'cold-open' || workload === 'cold-open-batch') {
    const order = shuffled(n);
    const t = now();
    const h = await c.open(dir);
    out.open_ms = Number(now() - t) / 1e6;
    let hits = c.get(h, keys[order[0]]) !== undefined ? 1 : 0;
    out.first_read_ms = Number(now() - t) / 1e6;
    if (workload === 'cold-open') {
      for (let i = 1; i < n; i++) if (c.get(h, keys[order[i]]) !== undefined) hits++;
    } else {
      hits += await readBatched(h, order, 1);
    }
    out.read_all_ops_per_s = n / (Number(now() - t) / 1e9 - out.open_ms / 1e3);
    out.hit_rate = hits / n;
    await c.close(h);
  } else {
    const h = await c.open(dir);
    const wl = [];
    let t = now();
    if (workload === 'batch') {
      for (let i = 0; i < n; i += 1000) {
        const items = [];
        for (let j = i; j < Math.min(i + 1000, n); j++) items.push([keys[j], values[j % 64]]);
        const s = now();
        await c.putBatch(h, items);
        wl.push(Number(now() - s) / 1e3);
      }
    } else {
      await putAll(h, wl);
    }
    out.write_ops_per_s = n / (Number(now() - t) / 1e9);
    out[workload === 'batch' ? 'batch_p50_us' : 'write_p50_us'] = pct(wl, 0.5);
    out[workload === 'batch' ? 'batch_p99_us' : 'write_p99_us'] = pct(wl, 0.99);
    const rl = [];
    let hits = 0;
    t = now();
    for (const i of shuffled(n)) {
      const s = now();
      const v = c.get(h, keys[i]);
      rl.push(Number(now() - s) / 1e3);
      if (v !== undefined) hits++;
    }
    out.read_ops_per_s = n / (Number(now() - t) / 1e9);
    out.read_p50_us = pct(rl, 0.5);
    out.read_p99_us = pct(rl, 0.99);
    out.hit_rate = hits / n;
    const order = shuffled(n);
    t = now();
    let again = 0;
    for (let i = 0; i < n; i++) if (c.get(h, keys[order[i]]) !== undefined) again++;
    out.untimed_read_ops_per_s = n / (Number(now() - t) / 1e9);
    if (c.getBatch) {
      t = now();
      again += await readBatched(h, order, 0);
      out.batch_read_ops_per_s = n / (Number(now() - t) / 1e9);
    }
    if (again !== (c.getBatch ? 2 : 1) * hits) throw new Error(`${name}: the second reads found ${again} values, the first ${hits}`);
    await c.close(h);
    out.disk_bytes = du(dir);
    out.logical_bytes = keys.reduce((sum, k, i) => sum + Buffer.byteLength(k) + values[i % 64].length, 0);
    if (workload === 'write-read') {
      // The same writes into a second, new store without a timer per write.
      const d2 = `${dir}.untimed`;
      const h2 = await c.open(d2);
      t = now();
      await putAll(h2, null);
      out.untimed_write_ops_per_s = n / (Number(now() - t) / 1e9);
      await c.close(h2);
      fs.rmSync(d2, { recursive: true, force: true });
    }
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
