// Compiled with `tsc --noEmit`: the declarations describe real use, and misuse fails.
import { Cache, CacheManager, getCacheManager, NexxoCacheError, Stats, ManagerStats, RemoteStats, humanSize } from '../lib/index';

function use(c: Cache, m: CacheManager): void {
  c.set('transform', 'src/a.ts', 'export {}');
  c.set('custom-category', Buffer.from('k'), new Uint8Array([1, 2]));
  const v: Buffer | undefined = c.get('transform', 'src/a.ts');
  const s: string | undefined = c.getString('parse', 'k');
  c.batchSet([['parse', 'a', 'b'], { category: 'meta', key: 'k', value: Buffer.alloc(1) }]);
  const many: Array<Buffer | undefined> = c.batchGet([['parse', 'a']]);
  const ofOne: Array<Buffer | undefined> = c.getMany('parse', ['a', Buffer.from('b')]);
  const st: Stats = c.stats();
  const n: number = st.storedBytes + c.enforcePolicy().evictedEntries;
  c.clear(['parse', 'bundle']);
  c.compact();
  {
    using disposable = Cache.open('/tmp/x', { maxSize: 1 << 20, categoryMaxSize: { transform: 1024 }, compression: 'none' });
    disposable.flush();
  }
  {
    using remote = Cache.open('/tmp/y', { remote: { urls: ['http://cache:8080/team'], mode: 'read-only', localOnly: ['meta'], hmacKey: Buffer.alloc(32), timeoutMs: 500 } });
    const rs: RemoteStats = remote.remoteStats();
    const drained: boolean = remote.remoteSync(1000) && rs.hits + rs.uploads >= 0;
    const maybe: RemoteStats | null = m.getRemoteStats();
    void drained, maybe, m.syncRemote();
    // @ts-expect-error: not a mode
    Cache.open('/tmp/z', { remote: { url: 'redis://r', mode: 'sometimes' } });
  }
  const written: Promise<void> = c.put('transform', 'src/b.ts', Buffer.alloc(3));
  void written, c.flushed.then(() => undefined);
  const ms: ManagerStats = m.getStats();
  const label: string = ms.size + ms.hitRate + humanSize(n);
  const why: false | string = ms.disabled;
  m.clear('parse', 'meta');
  getCacheManager('.', { logger: { warn: (msg: string) => void msg } }).set('bundle', 'k', 'v');
  void [v, s, many, ofOne, m.getMany('meta', ['k']), label, why];
  // @ts-expect-error values are bytes or strings, not numbers
  c.set('parse', 'k', 42);
  // @ts-expect-error compression is 'lz4' or 'none'
  Cache.open('/tmp/y', { compression: 'zstd' });
}

function handle(e: unknown): string {
  return e instanceof NexxoCacheError ? e.code : 'other';
}
void [use, handle];
