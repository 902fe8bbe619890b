/// <reference types="node" />

/** A key or value: strings are encoded as UTF-8. */
export type Bytes = Buffer | Uint8Array | string;

/** The built-in categories; caches may add their own (`[a-z0-9_-]{1,32}`). */
export type BuiltinCategory = 'parse' | 'transform' | 'bundle' | 'optimize' | 'meta';
export type Category = BuiltinCategory | (string & {});

/** The C status names, plus the binding's own codes. */
export type ErrorCode =
  | 'NOT_FOUND' | 'INVALID_ARGUMENT' | 'UNKNOWN_CATEGORY' | 'TOO_LARGE' | 'BUFFER_TOO_SMALL'
  | 'LOCKED' | 'IO_ERROR' | 'NO_SPACE' | 'CORRUPTION' | 'READ_ONLY' | 'INCOMPATIBLE' | 'PANIC' | 'INSECURE'
  | 'CLOSED' | 'LIBRARY_NOT_FOUND' | 'LIBRARY_MISMATCH';

export class NexxoCacheError extends Error {
  readonly name: 'NexxoCacheError';
  /** The C status's name without `NEXXO_`, or the binding's own code. */
  readonly code: ErrorCode;
  /** The numeric C status, -1 for the binding's own codes. */
  readonly status: number;
}

export interface OpenOptions {
  /** Bound on stored bytes of the whole cache; 0 = unbounded. Default 2 GiB. */
  maxSize?: number | bigint;
  /** Per-category bounds on stored bytes. */
  categoryMaxSize?: Partial<Record<Category, number | bigint>>;
  /** Entries unused for longer than this many seconds are evicted by enforcePolicy(); 0 = never. */
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
  /** Bytes for RocksDB's caches and write buffers; default 64 MiB, at least 4 MiB. */
  memoryBudget?: number | bigint;
  /** Mode of created directories, and the most an existing one may grant; default 0o700. */
  dirMode?: number;
  /** Open a cache directory that is not trusted (another owner, writable by others) read-only instead of refusing it. */
  allowUntrustedDir?: boolean;
  /** The path of libnexxo_cache; else NEXXO_CACHE_LIB, NEXXO_CACHE_LIB_DIR, the repo's build/lib, the system. */
  libraryPath?: string;
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

export type EntryInput = [Category, Bytes, Bytes] | { category: Category; key: Bytes; value: Bytes };
export type KeyInput = [Category, Bytes] | { category: Category; key: Bytes };

/** One open handle of the native cache. Methods throw NexxoCacheError. */
export class Cache implements Disposable {
  static open(dir: string, options?: OpenOptions): Cache;
  constructor(dir: string, options?: OpenOptions);
  readonly path: string;
  readonly closed: boolean;
  get(category: Category, key: Bytes): Buffer | undefined;
  getString(category: Category, key: Bytes, encoding?: BufferEncoding): string | undefined;
  set(category: Category, key: Bytes, value: Bytes): void;
  delete(category: Category, key: Bytes): void;
  /** Atomic: all entries or none. */
  batchSet(entries: EntryInput[]): void;
  batchGet(keys: KeyInput[]): Array<Buffer | undefined>;
  stats(): Stats;
  categoryStats(category: Category): Stats;
  /** The library's JSON statistics: totals and every category. */
  statsJson(): { version: string; path?: string; totals: Record<string, unknown>; categories: Record<string, Record<string, unknown>> };
  enforcePolicy(): PolicyReport;
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
  set(category: Category, key: Bytes, value: Bytes): void;
  delete(category: Category, key: Bytes): void;
  batchSet(entries: EntryInput[]): void;
  batchGet(keys: KeyInput[]): Array<Buffer | undefined>;
  getStats(): ManagerStats;
  enforcePolicy(): PolicyReport;
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
