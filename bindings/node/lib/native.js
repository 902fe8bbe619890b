'use strict';
// The native layer: finds libnexxo_cache and loads it. The library is also a Node-API
// module (src/node.rs): loaded with process.dlopen, it gives the functions a build calls
// most (open, get, the batched set, stats, close) without koffi, whose load cost a new
// process 11-16 ms. Every other function is declared with koffi on its first use (and
// koffi loaded then). A library without that module (older than 1.8.0), or
// NEXXO_CACHE_FFI=koffi, is loaded with koffi alone. Nothing here allocates per call.

const fs = require('node:fs');
const path = require('node:path');

// The C statuses by value (include/nexxo_cache.h's nexxo_status; tests/bindings.rs checks
// this list against the header).
const STATUS_CODES = [
  'OK', 'NOT_FOUND', 'INVALID_ARGUMENT', 'UNKNOWN_CATEGORY', 'TOO_LARGE', 'BUFFER_TOO_SMALL',
  'LOCKED', 'IO_ERROR', 'NO_SPACE', 'CORRUPTION', 'READ_ONLY', 'INCOMPATIBLE', 'PANIC', 'INSECURE',
  'TIMED_OUT',
];

/** An error of the cache: `code` is the C status's name without `NEXXO_`. */
class NexxoCacheError extends Error {
  /** `status` defaults to the C status named `code`; -1 for the binding's own codes. */
  constructor(code, message, status = STATUS_CODES.indexOf(code)) {
    super(message);
    this.name = 'NexxoCacheError';
    this.code = code;
    this.status = status;
  }
}

const LIB_NAMES = {
  linux: ['libnexxo_cache.so.1', 'libnexxo_cache.so'],
  darwin: ['libnexxo_cache.1.dylib', 'libnexxo_cache.dylib'],
  win32: ['nexxo_cache.dll'],
}[process.platform] || ['libnexxo_cache.so.1', 'libnexxo_cache.so'];

// The prebuilt libraries a release publishes, one npm package per platform, each in this
// package's optionalDependencies (scripts/package.sh; .github/workflows/release.yml builds
// them). npm installs the one whose `os`, `cpu` and `libc` match; on Linux the first of the
// list that is installed and loads wins (a glibc library does not load on musl).
const PLATFORM_PACKAGES = {
  'linux-x64': ['@nexxo-cache/linux-x64-gnu', '@nexxo-cache/linux-x64-musl'],
  'linux-arm64': ['@nexxo-cache/linux-arm64-gnu', '@nexxo-cache/linux-arm64-musl'],
  'darwin-x64': ['@nexxo-cache/darwin-x64'],
  'darwin-arm64': ['@nexxo-cache/darwin-arm64'],
  'win32-x64': ['@nexxo-cache/win32-x64-msvc'],
};
const PLATFORM = `${process.platform}-${process.arch}`;

/** The installed platform packages' libraries: [{ pkg, file }]; none when none is installed. */
function platformLibraries() {
  const out = [];
  for (const pkg of PLATFORM_PACKAGES[PLATFORM] || []) {
    let file;
    try {
      file = require(pkg); // exports the library's absolute path
    } catch (e) {
      if (e && e.code === 'MODULE_NOT_FOUND') continue;
      throw e;
    }
    out.push({ pkg, file });
  }
  return out;
}

/**
 * The places the library is looked for, in order: the `libraryPath` option alone when
 * given; else NEXXO_CACHE_LIB, NEXXO_CACHE_LIB_DIR (the user's explicit choices, as
 * esbuild's and napi-rs's overrides), the installed platform package, this repository's
 * build output when the binding runs from a checkout, and the system's loader.
 */
function candidates(explicit) {
  if (explicit) return [explicit]; // an explicit path is the only one tried
  const out = [];
  if (process.env.NEXXO_CACHE_LIB) out.push(process.env.NEXXO_CACHE_LIB);
  if (process.env.NEXXO_CACHE_LIB_DIR) for (const n of LIB_NAMES) out.push(path.join(process.env.NEXXO_CACHE_LIB_DIR, n));
  for (const { file } of platformLibraries()) out.push(file);
  // The repository's build output (CMake copies cargo's library there).
  const repo = path.resolve(__dirname, '..', '..', '..');
  if (fs.existsSync(path.join(repo, 'crates', 'nexxo-core'))) for (const n of LIB_NAMES) out.push(path.join(repo, 'build', 'lib', n));
  // Installed system-wide, found by the dynamic loader's own search.
  out.push(...LIB_NAMES);
  return out;
}

/** What to do when no library loaded: names the platform package to install. */
function installAdvice() {
  const version = require('../package.json').version;
  const pkgs = PLATFORM_PACKAGES[PLATFORM];
  if (!pkgs) {
    return `nexxo-cache ships no prebuilt library for ${PLATFORM}: build libnexxo_cache from source ` +
      '(the repository\'s README) and set NEXXO_CACHE_LIB to its path.';
  }
  if (platformLibraries().length === 0) {
    return `The prebuilt library for ${PLATFORM} is not installed: run \`npm install ${pkgs[0]}@${version}\` ` +
      '(npm installs it with nexxo-cache unless optional dependencies are omitted), ' +
      'or set NEXXO_CACHE_LIB to the path of libnexxo_cache.';
  }
  return 'The installed prebuilt library did not load (see above); set NEXXO_CACHE_LIB to a libnexxo_cache that does.';
}

/** Whether `lib` exports `name` (koffi finds it without declaring a function: ~10 µs). */
function hasSymbol(lib, name) {
  try {
    lib.symbol(name, 'uint8_t');
    return true;
  } catch (e) {
    return false;
  }
}

const loadedByPath = new Map();
let declared = null;

/** The C structs, declared once per process (koffi's type names are global). */
function types(koffi) {
  if (!declared) {
    declared = {
      Stats: koffi.struct('nexxo_stats', {
        hits: 'uint64_t', misses: 'uint64_t', writes: 'uint64_t', deletes: 'uint64_t',
        entries: 'uint64_t', logical_bytes: 'uint64_t', stored_bytes: 'uint64_t', disk_bytes: 'uint64_t',
        evictions: 'uint64_t', corrupt_dropped: 'uint64_t', hit_rate: 'double',
        read_only: 'bool', disabled: 'bool', disabled_reason: 'uint32_t', recovered: 'bool',
      }),
      Report: koffi.struct('nexxo_policy_report', {
        evicted_entries: 'uint64_t', evicted_bytes: 'uint64_t',
        stored_bytes_before: 'uint64_t', stored_bytes_after: 'uint64_t', compacted: 'bool',
      }),
      Bytes: koffi.struct('nexxo_bytes', { data: 'uint8_t *', len: 'size_t' }),
      RemoteStats: koffi.struct('nexxo_remote_stats', {
        hits: 'uint64_t', misses: 'uint64_t', errors: 'uint64_t', rejected: 'uint64_t', skipped: 'uint64_t',
        backfills: 'uint64_t', uploads: 'uint64_t', upload_errors: 'uint64_t', upload_dropped: 'uint64_t',
        queued: 'uint64_t', bytes_up: 'uint64_t', bytes_down: 'uint64_t', gets: 'uint64_t',
        get_mean_us: 'double', get_max_us: 'uint64_t', open_breakers: 'uint64_t', remotes: 'uint64_t',
      }),
    };
  }
  return declared;
}

/** Requires koffi, or fails as the binding always has when it is missing. */
function requireKoffi() {
  try {
    return require('koffi');
  } catch (e) {
    throw new NexxoCacheError('LIBRARY_NOT_FOUND', `cannot load koffi, which nexxo-cache needs: ${e.message}`, -1);
  }
}

/**
 * The library's own Node-API functions (src/node.rs), or null when `file` has none
 * (an older library) or does not load: process.dlopen of the library itself.
 */
function loadNodeApi(file) {
  const m = { exports: {} };
  try {
    process.dlopen(m, file);
  } catch {
    return null;
  }
  const n = m.exports;
  return typeof n.napiVersion === 'function' && n.napiVersion() === 1 ? n : null;
}

// The C functions, as koffi declares them. With the Node-API module loaded, handles and
// options are addresses (numbers): declared as uintptr_t instead of void *.
const PROTOS = {
  version: 'const char *nexxo_version(void)',
  statusStr: 'const char *nexxo_status_str(uint32_t s)',
  bytesFree: 'void nexxo_bytes_free(_Inout_ nexxo_bytes *b)',
  optionsNew: 'void *nexxo_options_new(void)',
  optionsFree: 'void nexxo_options_free(void *o)',
  setMaxSize: 'uint32_t nexxo_options_set_max_size(void *o, uint64_t bytes)',
  setCategoryMaxSize: 'uint32_t nexxo_options_set_category_max_size(void *o, const char *category, uint64_t bytes)',
  setMaxAge: 'uint32_t nexxo_options_set_max_age(void *o, uint64_t seconds)',
  addCategory: 'uint32_t nexxo_options_add_category(void *o, const char *name)',
  setCompression: 'uint32_t nexxo_options_set_compression(void *o, uint32_t c)',
  setSyncWrites: 'uint32_t nexxo_options_set_sync_writes(void *o, bool sync)',
  setReadOnly: 'uint32_t nexxo_options_set_read_only(void *o, bool ro)',
  setFallbackDisabled: 'uint32_t nexxo_options_set_fallback_disabled(void *o, bool fallback)',
  setMemoryBudget: 'uint32_t nexxo_options_set_memory_budget(void *o, uint64_t bytes)',
  setDirMode: 'uint32_t nexxo_options_set_dir_mode(void *o, uint32_t mode)',
  setAllowUntrustedDir: 'uint32_t nexxo_options_set_allow_untrusted_dir(void *o, bool allow)',
  setIgnoreEnvironment: 'uint32_t nexxo_options_set_ignore_environment(void *o, bool ignore)',
  setLatency: 'uint32_t nexxo_options_set_latency(void *o, bool record)',
  open: 'uint32_t nexxo_cache_open(const char *path, void *opts, _Out_ void **out)',
  close: 'void nexxo_cache_close(void *c)',
  // Categories and keys are passed as bytes (pre-encoded, NUL-terminated categories).
  get: 'uint32_t nexxo_cache_get(void *c, const uint8_t *category, const uint8_t *key, size_t key_len, _Out_ nexxo_bytes *out)',
  getInto: 'uint32_t nexxo_cache_get_into(void *c, const uint8_t *category, const uint8_t *key, size_t key_len, uint8_t *buf, size_t cap, _Out_ size_t *out_len)',
  // The same function with its buffers passed as addresses (see cache.js, `address`):
  // numbers cross koffi's boundary faster than Buffers, and an address can point inside one.
  getIntoAt: 'uint32_t nexxo_cache_get_into(uintptr_t c, uintptr_t category, uintptr_t key, size_t key_len, uintptr_t buf, size_t cap, uintptr_t out_len)',
  set: 'uint32_t nexxo_cache_set(void *c, const uint8_t *category, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len)',
  // The tags as an array of nexxo_tag structs laid out by the binding (cache.js, `tagArray`).
  setTagged: 'uint32_t nexxo_cache_set_tagged(void *c, const uint8_t *category, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len, const uint8_t *tags, size_t tag_count)',
  // nexxo_entry and nexxo_tags arrays laid out by the binding (cache.js, `taggedBatch`).
  batchSetTagged: 'uint32_t nexxo_cache_batch_set_tagged(void *c, const uint8_t *entries, const uint8_t *tags, size_t count)',
  invalidate: 'uint32_t nexxo_cache_invalidate(void *c, const uint8_t *tag, size_t tag_len, _Out_ uint64_t *entries, _Out_ uint64_t *bytes)',
  del: 'uint32_t nexxo_cache_delete(void *c, const uint8_t *category, const uint8_t *key, size_t key_len)',
  batchSetPacked: 'uint32_t nexxo_cache_batch_set_packed(void *c, const uint8_t *packed, size_t len, size_t count)',
  batchGetPacked: 'uint32_t nexxo_cache_batch_get_packed(void *c, const uint8_t *packed, size_t len, size_t count, uint8_t *out, size_t cap, _Out_ size_t *out_len)',
  stats: 'uint32_t nexxo_cache_stats(void *c, _Out_ nexxo_stats *out)',
  categoryStats: 'uint32_t nexxo_cache_category_stats(void *c, const char *category, _Out_ nexxo_stats *out)',
  statsJson: 'uint32_t nexxo_cache_stats_json(void *c, _Out_ nexxo_bytes *out)',
  enforcePolicy: 'uint32_t nexxo_cache_enforce_policy(void *c, _Out_ nexxo_policy_report *out)',
  compact: 'uint32_t nexxo_cache_compact(void *c, const char *category)',
  clear: 'uint32_t nexxo_cache_clear(void *c, const char **categories, size_t count)',
  flush: 'uint32_t nexxo_cache_flush(void *c)',
  addRemote: 'uint32_t nexxo_options_add_remote(void *o, const char *url)',
  setRemoteMode: 'uint32_t nexxo_options_set_remote_mode(void *o, uint32_t mode)',
  setRemoteName: 'uint32_t nexxo_options_set_remote_name(void *o, const char *name)',
  setRemoteLocalOnly: 'uint32_t nexxo_options_set_remote_local_only(void *o, const char *category, bool local_only)',
  setRemoteHmacKey: 'uint32_t nexxo_options_set_remote_hmac_key(void *o, const uint8_t *key, size_t len)',
  setRemoteTimeout: 'uint32_t nexxo_options_set_remote_timeout(void *o, uint32_t ms)',
  setRemoteRetries: 'uint32_t nexxo_options_set_remote_retries(void *o, uint32_t n)',
  setRemoteCooldown: 'uint32_t nexxo_options_set_remote_cooldown(void *o, uint32_t ms)',
  setRemoteTtl: 'uint32_t nexxo_options_set_remote_ttl(void *o, uint64_t seconds)',
  setRemoteQueue: 'uint32_t nexxo_options_set_remote_queue(void *o, uint64_t max_bytes, uint32_t close_wait_ms)',
  setRemoteToken: 'uint32_t nexxo_options_set_remote_token(void *o, const char *token)',
  addRemoteHeader: 'uint32_t nexxo_options_add_remote_header(void *o, const char *name, const char *value)',
  setRemoteCaFile: 'uint32_t nexxo_options_set_remote_ca_file(void *o, const char *path)',
  setRemoteCheckExists: 'uint32_t nexxo_options_set_remote_check_exists(void *o, bool check)',
  setRemoteProxy: 'uint32_t nexxo_options_set_remote_proxy(void *o, const char *url)',
  remoteStats: 'uint32_t nexxo_cache_remote_stats(void *c, _Out_ nexxo_remote_stats *out)',
  remoteSync: 'uint32_t nexxo_cache_remote_sync(void *c, uint32_t timeout_ms)',
};

/** A prototype with its handle and options pointers taken as addresses. */
function byAddress(proto) {
  return proto.replace(/\bvoid \*(c|o|opts)\b/g, 'uintptr_t $1').replace(/^void \*nexxo_options_new/, 'uintptr_t nexxo_options_new');
}

function load(explicit) {
  const cached = loadedByPath.get(explicit || '');
  if (cached) return cached;
  const koffiOnly = process.env.NEXXO_CACHE_FFI === 'koffi';
  let koffi = null;
  const tried = [];
  let lib = null;
  let napi = null;
  let found = null;
  for (const c of candidates(explicit)) {
    if (c.includes('/') && !fs.existsSync(c)) {
      tried.push(`${c} (no such file)`);
      continue;
    }
    if (!koffiOnly) {
      napi = loadNodeApi(c);
      if (napi) {
        found = c;
        break;
      }
    }
    koffi = koffi || requireKoffi();
    try {
      lib = koffi.load(c);
      found = c;
      break;
    } catch (e) {
      tried.push(`${c} (${e.message.split('\n')[0]})`);
    }
  }
  if (!lib && !napi) {
    throw new NexxoCacheError(
      'LIBRARY_NOT_FOUND',
      (explicit ? `libraryPath ${explicit} could not be loaded.` : installAdvice()) + '\nTried:\n  ' + tried.join('\n  '),
      -1,
    );
  }

  // koffi and the library as koffi sees it: at once without the Node-API module, else on
  // the first function it alone provides.
  const withKoffi = () => {
    if (!lib) {
      koffi = koffi || requireKoffi();
      lib = koffi.load(found);
    }
    types(koffi);
    return { koffi, lib };
  };
  const fn = (proto) => {
    try {
      return withKoffi().lib.func(napi ? byAddress(proto) : proto);
    } catch (e) {
      if (e instanceof NexxoCacheError) throw e;
      throw new NexxoCacheError('LIBRARY_MISMATCH',
        `${found} does not match this binding (${e.message}); it may be older than the binding: rebuild it`, -1);
    }
  };
  // Each function is declared on its first use: koffi takes about 0.2 ms to declare
  // one, and a build that opens, reads and writes uses a handful of the 50 (with the
  // Node-API module, none).
  const f = {};
  for (const [name, proto] of Object.entries(PROTOS)) {
    if (napi && typeof napi[name] === 'function') {
      f[name] = napi[name];
      continue;
    }
    Object.defineProperty(f, name, {
      configurable: true,
      enumerable: true,
      get() {
        const fun = fn(proto);
        Object.defineProperty(f, name, { value: fun, enumerable: true });
        return fun;
      },
    });
  }
  // The module's own additions (statsJsonText: the JSON statistics as a string).
  if (napi) f.statsJsonText = napi.statsJsonText;
  // The packed batch set on libuv's thread pool and its wait (libraries from 1.10): the
  // binding writes its batches of puts with them when they are there.
  if (napi && typeof napi.batchSetPackedAsync === 'function' && typeof napi.batchWait === 'function') {
    f.batchSetPackedAsync = napi.batchSetPackedAsync;
    f.batchWait = napi.batchWait;
    // Whether the batch in flight is written, without waiting (libraries from 1.10.5).
    if (typeof napi.batchLanded === 'function') f.batchLanded = napi.batchLanded;
  }
  // Missing functions are found at load, without declaring them all: an older library
  // fails here (LIBRARY_MISMATCH), not in the middle of a build.
  const has = napi ? (name) => napi.hasSymbol(name) : (name) => hasSymbol(lib, name);
  for (const proto of Object.values(PROTOS)) {
    const name = proto.match(/(\w+)\(/)[1];
    if (!has(name)) {
      throw new NexxoCacheError('LIBRARY_MISMATCH',
        `${found} does not match this binding (it lacks ${name}); it may be older than the binding: rebuild it`, -1);
    }
  }
  // Functions as koffi declares them, for their asynchronous form (`.async`, run on
  // libuv's thread pool), which the Node-API module does not give.
  const viaKoffi = {};
  const koffiFn = (name) => viaKoffi[name] || (viaKoffi[name] = napi ? fn(PROTOS[name]) : f[name]);
  const loaded = {
    path: found,
    f,
    koffiFn,
    /** 'node-api' (the library's own module) or 'koffi'. */
    mode: napi ? 'node-api' : 'koffi',
    get koffi() {
      return withKoffi().koffi;
    },
    get lib() {
      return withKoffi().lib;
    },
    /** The address of a buffer's first byte (a number). */
    address: napi ? (b) => napi.address(b) : (b) => Number(koffi.address(b)),
    /** A handle or options pointer as open returned it, as an address. */
    handleAddress: napi ? (p) => p : (p) => Number(koffi.address(p)),
  };
  loadedByPath.set(explicit || '', loaded);
  return loaded;
}

module.exports = { load, candidates, NexxoCacheError, STATUS_CODES, PLATFORM_PACKAGES };
