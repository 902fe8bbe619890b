/// <reference types="node" />

/** A key or value: strings are encoded as UTF-8. */
export type Bytes = Buffer | Uint8Array | string;

/** The built-in categories; caches may add their own (`[a-z0-9_-]{1,32}`). */
export type BuiltinCategory = 'parse' | 'transform' | 'bundle' | 'optimize' | 'meta';
export type Category = BuiltinCategory | (string & {});

/** The C status names, plus the binding's own codes. */
export type ErrorCode =
  | 'NOT_FOUND' | 'INVALID_ARGUMENT' | 'UNKNOWN_CATEGORY' | 'TOO_LARGE' | 'BUFFER_TOO_SMALL'
  | 'LOCKED' | 'IO_ERROR' | 'NO_SPACE' | 'CORRUPTION' | 'READ_ONLY' | 'INCOMPATIBLE' | 'PANIC' | 'INSECURE' | 'TIMED_OUT'
  | 'CLOSED' | 'LIBRARY_NOT_FOUND' | 'LIBRARY_MISMATCH';

export class NexxoCacheError extends Error {
  readonly name: 'NexxoCacheError';
  /** The C status's name without `NEXXO_`, or the binding's own code. */
  readonly code: ErrorCode;
  /** The numeric C status, -1 for the binding's own codes. */
  readonly status: number;
}

/**
 * Remote cache servers behind the local store: a local miss asks them, a verified hit is
 * written back locally, and (read-write) every write is uploaded in the background. No
 * remote failure ever fails a call; see remoteStats().
 */
export interface RemoteOptions {
  /** One address: `http[s]://[user:pass@]host[:port][/base]` (Bazel HTTP layout) or `redis[s]://[[user]:pass@]host[:port][/db]`; https and rediss speak TLS, the certificate verified. */
  url?: string;
  /** Several addresses, tried in order (at most 8). */
  urls?: string[];
  /** Default 'read-write'. */
  mode?: 'read-write' | 'read-only' | 'off';
  /** Namespace on the servers; caches with the same name share entries. Default 'default'. */
  name?: string;
  /** Categories that never go to or come from a remote. */
  localOnly?: Category[];
  /** Shared HMAC-SHA256 key (at least 16 bytes): unsigned or tampered values are misses. */
  hmacKey?: Bytes;
  /** Most one remote request may take, retries included; default 3000. */
  timeoutMs?: number;
  /** Retries of temporary failures (refused connection, 5xx); default 2, at most 10. */
  retries?: number;
  /** How long a failing remote is skipped before it is probed again; default 30000. */
  cooldownMs?: number;
  /** Redis: seconds a value lives; 0 = until evicted. Default 7 days. */
  ttlSeconds?: number | bigint;
  /** Bound on bytes waiting for upload; default 64 MiB. */
  queueBytes?: number | bigint;
  /** How long close() waits for queued uploads; default 10000. */
  closeWaitMs?: number;
  /** HTTP remotes: `Authorization: Bearer <token>`; never printed. Default: NEXXO_CACHE_REMOTE_TOKEN. */
  token?: string;
  /** HTTP remotes: extra request headers (an `Authorization` one replaces the token). */
  headers?: Record<string, string>;
  /** https:// and rediss://: a PEM file of extra CAs to trust, beside Mozilla's and the system's. Default: NEXXO_CACHE_REMOTE_CA_FILE. */
  caFile?: string;
  /** HTTP remotes: an http:// proxy; '' or null: none. Default: https_proxy/HTTPS_PROXY, http_proxy/HTTP_PROXY, NO_PROXY. */
  proxy?: string | null;
  /** Ask the server before uploading and skip what it has (keys that name their content). Default false. */
  checkExists?: boolean;
}

export interface RemoteStats {
  /** Remotes in use; 0 when none are configured or the mode is 'off'. */
  remotes: number;
  hits: number;
  misses: number;
  /** Requests that failed after their retries. */
  errors: number;
  /** Values found but not used: damaged, unsigned or wrongly signed. */
  rejected: number;
  /** Requests not sent because a remote's circuit breaker was open. */
  skipped: number;
  /** Remote hits written into the local store. */
  backfills: number;
  uploads: number;
  uploadErrors: number;
  uploadDropped: number;
  queued: number;
  bytesUp: number;
  bytesDown: number;
  gets: number;
  getMeanMicros: number;
  getMaxMicros: number;
  openBreakers: number;
}

export interface OpenOptions {
  /**
   * Bound on stored bytes of the whole cache; 0 = unbounded. Stored in the cache when
   * set; when not set, the bound the cache stores applies, else 2 GiB.
   */
  maxSize?: number | bigint;
  /** Per-category bounds on stored bytes (stored as one set, like maxSize). */
  categoryMaxSize?: Partial<Record<Category, number | bigint>>;
  /**
   * Entries unused for longer than this many seconds are evicted by enforcePolicy();
   * 0 = never. Stored like maxSize; default: the stored bound, else never.
   */
  maxAge?: number | bigint;
  /** Categories beyond the built-in ones. */
  categories?: string[];
  /** Default 'lz4'. */
  compression?: 'lz4' | 'none';
  /** fsync every write (survives power loss). Default false. */
  syncWrites?: boolean;
  readOnly?: boolean;
  /** Open a disabled cache instead of throwing for I/O, lock, corruption or format errors. */
  fallbackDisabled?: boolean;
  /**
   * Bytes for the warm table (5/8), RocksDB's write buffers (1/4) and its block cache (1/8);
   * default NEXXO_CACHE_MEMORY_BUDGET's, else 64 MiB; at least 4 MiB.
   */
  memoryBudget?: number | bigint;
  /** Mode of created directories, and the most an existing one may grant; default 0o700. */
  dirMode?: number;
  /** Open a cache directory that is not trusted (another owner, writable by others) read-only instead of refusing it. */
  allowUntrustedDir?: boolean;
  /**
   * Leave the NEXXO_CACHE_* environment variables out of this open (README
   * "Environment"); for the manager also NEXXO_CACHE_DIR. Default false.
   */
  ignoreEnvironment?: boolean;
  /** Record latency histograms (default true; NEXXO_CACHE_LATENCY=0 also turns them off). */
  latency?: boolean;
  /** The path of libnexxo_cache; else NEXXO_CACHE_LIB, NEXXO_CACHE_LIB_DIR, the platform package, the repo's build/lib, the system. */
  libraryPath?: string;
  /** Remote cache servers (HTTP or Redis) behind the local store. */
  remote?: RemoteOptions;
}

/** Where a limit came from: set by the opener, the environment, stored in the cache, or the default. */
export type LimitSource = 'option' | 'environment' | 'stored' | 'default';

/** The limits that apply (README "Defaults": option > environment > stored > default). */
/** What a write depends on: `invalidate(tag)` removes every entry carrying the tag. */
export interface SetOptions {
  /** 1 to 32 tags of 1 to 256 bytes; a tagged set is one synchronous write. */
  tags?: Bytes[];
}

/** What `invalidate` removed. */
export interface InvalidateReport {
  entries: number;
  /** Stored bytes. */
  bytes: number;
}

/** One operation's latency in microseconds (percentiles within 6.25%). */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** A handle's latency since its open; native gets are timed one in `getSample`. */
export interface Latency {
  getSample: number;
  get: LatencySummary & { categories: Record<string, LatencySummary> };
  set: LatencySummary & { categories: Record<string, LatencySummary> };
  batchGet: LatencySummary & { categories: Record<string, LatencySummary> };
  batchSet: LatencySummary & { categories: Record<string, LatencySummary> };
  remoteGet: LatencySummary & { categories: Record<string, LatencySummary> };
  upload: LatencySummary & { categories: Record<string, LatencySummary> };
}

export interface Limits {
  /** Bound on the cache's stored bytes; 0 = unbounded. */
  maxSize: number;
  /** Entries unused for longer are evicted; 0 = never. */
  maxAgeSecs: number;
  categoryMaxSize: Record<string, number>;
  source: { maxSize: LimitSource; maxAge: LimitSource; categoryMaxSize: LimitSource };
}

export interface Stats {
  hits: number;
  misses: number;
  writes: number;
  deletes: number;
  entries: number;
  logicalBytes: number;
  storedBytes: number;
  diskBytes: number;
  evictions: number;
  corruptDropped: number;
  /** hits / (hits + misses), 0 when both are 0. */
  hitRate: number;
  readOnly: boolean;
  disabled: boolean;
  disabledReason: ErrorCode | null;
  recovered: boolean;
}

export interface PolicyReport {
  evictedEntries: number;
  evictedBytes: number;
  storedBytesBefore: number;
  storedBytesAfter: number;
  compacted: boolean;
}

export type EntryInput =
  | [Category, Bytes, Bytes]
  | [Category, Bytes, Bytes, SetOptions]
  | { category: Category; key: Bytes; value: Bytes; tags?: Bytes[] };
export type KeyInput = [Category, Bytes] | { category: Category; key: Bytes };

/** One open handle of the native cache. Methods throw NexxoCacheError. */
export class Cache implements Disposable {
  static open(dir: string, options?: OpenOptions): Cache;
  constructor(dir: string, options?: OpenOptions);
  readonly path: string;
  readonly closed: boolean;
  get(category: Category, key: Bytes): Buffer | undefined;
  getString(category: Category, key: Bytes, encoding?: BufferEncoding): string | undefined;
  /**
   * Stores a value, batched with the other sets of this event-loop turn (up to 1000
   * entries or 4 MiB a batch, a handle's first batch 125 entries and each next one twice
   * the last; past that the batch is started at once; from 1.10.5, also at any 64th set
   * that finds the writer idle). A batch is written
   * on libuv's thread pool while JavaScript goes on (with the library's Node-API module;
   * through koffi it is written synchronously), one at a time and in order, so a
   * synchronous loop holds at most two batches: the one being filled and the one being
   * written. Resolves once the batch is in the write-ahead log (durable against kill -9),
   * rejects with the batch's NexxoCacheError. `get` and `getString` see unwritten sets
   * at once; any other call, `close()` and process exit write them first (waiting for
   * the batch being written). Await (or catch) the promise.
   */
  set(category: Category, key: Bytes, value: Bytes, options?: SetOptions): Promise<void>;
  /** One synchronous native write, not batched; throws on failure. */
  setSync(category: Category, key: Bytes, value: Bytes, options?: SetOptions): void;
  /** Removes every entry tagged `tag`, in every category, atomically. */
  invalidate(tag: Bytes): InvalidateReport;
  /**
   * The same as `set`: asynchronous, batched with the other puts of this event-loop turn
   * (as `set`): resolves once the batch holding it is written, rejects with the batch's
   * NexxoCacheError. Any other call writes pending puts first.
   */
  put(category: Category, key: Bytes, value: Bytes): Promise<void>;
  /** Resolves when the puts made so far are written. */
  readonly flushed: Promise<void>;
  delete(category: Category, key: Bytes): void;
  /** Atomic: all entries or none. */
  batchSet(entries: EntryInput[]): void;
  batchGet(keys: KeyInput[]): Array<Buffer | undefined>;
  /** Many keys of one category, in order (batchGet without a pair per key). */
  getMany(category: Category, keys: Bytes[]): Array<Buffer | undefined>;
  stats(): Stats;
  categoryStats(category: Category): Stats;
  /** The library's JSON statistics: totals and every category. */
  statsJson(): { version: string; path?: string; totals: Record<string, unknown>; categories: Record<string, Record<string, unknown>>; limits?: Record<string, unknown>; remote?: Record<string, unknown> };
  /** The limits that apply to this handle and where each came from; null for a disabled cache. */
  limits(): Limits | null;
  /** This handle's latency since its open; null when recording is off. */
  latency(): Latency | null;
  remoteStats(): RemoteStats;
  /** Waits for queued uploads, at most `timeoutMs` (default 30000): true when none are left. */
  remoteSync(timeoutMs?: number): boolean;
  enforcePolicy(): PolicyReport;
  /** `get` on libuv's thread pool: the event loop runs while a miss waits on remotes. A copy. */
  getAsync(category: Category, key: Bytes): Promise<Buffer | undefined>;
  batchGetAsync(keys: Array<[Category, Bytes] | { category: Category; key: Bytes }>): Promise<Array<Buffer | undefined>>;
  getManyAsync(category: Category, keys: Bytes[]): Promise<Array<Buffer | undefined>>;
  remoteSyncAsync(timeoutMs?: number): Promise<boolean>;
  enforcePolicyAsync(): Promise<PolicyReport>;
  compactAsync(category?: Category): Promise<void>;
  clearAsync(categories?: Category | Category[]): Promise<void>;
  /** Closes on the thread pool (closing waits for queued uploads); resolves when closed. */
  closeAsync(): Promise<void>;
  compact(category?: Category): void;
  /** Clears the given categories, or all when none are given. */
  clear(categories?: Category | Category[]): void;
  flush(): void;
  /** Idempotent; later calls throw NexxoCacheError with code 'CLOSED'. */
  close(): void;
  [Symbol.dispose](): void;
}

export interface ManagerOptions extends OpenOptions {
  /** Where the one warning about a disabled or failing cache goes; default console. */
  logger?: { warn(message: string): void };
}

export interface ManagerStats {
  hits: number;
  misses: number;
  writes: number;
  deletes: number;
  entries: number;
  evictions: number;
  corruptDropped: number;
  logicalBytes: number;
  storedBytes: number;
  diskBytes: number;
  hitRateValue: number;
  /** '100.00%' */
  hitRate: string;
  /** Stored size, '1.23 MB' (1 KB = 1024 bytes). */
  size: string;
  logicalSize: string;
  diskSize: string;
  readOnly: boolean;
  recovered: boolean;
  /** Operations that failed and were absorbed. */
  failures: number;
  /** false, or why the cache is disabled. */
  disabled: false | string;
  cacheDir: string;
  /** The limits that apply and where each came from; null while disabled. */
  limits: Limits | null;
  /** This process's latency since the manager opened; null when off or disabled. */
  latency: Latency | null;
}

/** A build's cache: never throws for cache failures, only for caller errors. */
export class CacheManager {
  constructor(root: string, options?: ManagerOptions);
  readonly root: string;
  readonly cacheDir: string;
  readonly disabled: boolean;
  readonly closed: boolean;
  get(category: Category, key: Bytes): Buffer | undefined;
  getString(category: Category, key: Bytes): string | undefined;
  /**
   * Batched with the other sets of this event-loop turn (see Cache#set); resolves once
   * durable, rejects if its batch failed. A failure also counts in getStats().failures
   * with one warning, so an un-awaited set never ends the process.
   */
  set(category: Category, key: Bytes, value: Bytes, options?: SetOptions): Promise<void>;
  /** Removes every entry tagged `tag`; `{ entries: 0, bytes: 0 }` while disabled. */
  invalidate(tag: Bytes): InvalidateReport;
  delete(category: Category, key: Bytes): void;
  batchSet(entries: EntryInput[]): void;
  batchGet(keys: KeyInput[]): Array<Buffer | undefined>;
  getMany(category: Category, keys: Bytes[]): Array<Buffer | undefined>;
  getStats(): ManagerStats;
  /** null without remotes. */
  getRemoteStats(): RemoteStats | null;
  /** Waits for queued uploads, at most `timeoutMs`: true when none are left. */
  syncRemote(timeoutMs?: number): boolean;
  enforcePolicy(): PolicyReport;
  /** Off the event loop (use these when remotes are configured): cache failures resolve as the sync forms return. */
  getAsync(category: Category, key: Bytes): Promise<Buffer | undefined>;
  batchGetAsync(keys: Array<[Category, Bytes] | { category: Category; key: Bytes }>): Promise<Array<Buffer | undefined>>;
  getManyAsync(category: Category, keys: Bytes[]): Promise<Array<Buffer | undefined>>;
  syncRemoteAsync(timeoutMs?: number): Promise<boolean>;
  enforcePolicyAsync(): Promise<PolicyReport>;
  compactAsync(category?: Category): Promise<void>;
  clearAsync(...categories: Category[]): Promise<void>;
  closeAsync(): Promise<void>;
  compact(category?: Category): void;
  clear(...categories: Category[]): void;
  flush(): void;
  close(): void;
}

/** One CacheManager per resolved root, with its cache in `<root>/.nexxo_cache`. */
export function getCacheManager(root?: string, options?: ManagerOptions): CacheManager;
export function nativeVersion(libraryPath?: string): string;
export function humanSize(bytes: number): string;
export const CATEGORIES: readonly BuiltinCategory[];
