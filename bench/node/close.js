'use strict';
// What the close of a process that wrote costs, with the warm table's image it writes
// (README "Reads: the warm table"): opens the cache in DIR with `Cache.open`, reads 2,000
// keys of the benchmark's (`src/components/moduleN.tsx` in `transform`), waits a second
// (the table's fill), writes one entry with `setSync` (the store opens for writing) and
// closes; prints the close's milliseconds. Run it with and without
// NEXXO_CACHE_MEMORY_BUDGET on a store the C worker wrote (bench_worker_c batch N 1024 DIR).
//
//   node bench/node/close.js DIR

const { Cache } = require('../../bindings/node/lib/index.js');

const c = Cache.open(process.argv[2]);
for (let i = 0; i < 2000; i++) c.get('transform', `src/components/module${i}.tsx`);
setTimeout(() => {
  c.setSync('meta', `close-bench-${process.pid}-${Date.now()}`, Buffer.from('x'));
  const t = performance.now();
  c.close();
  console.log(`close ${(performance.now() - t).toFixed(1)} ms`);
}, 1000);
