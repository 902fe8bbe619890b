//! Zig binding of nexxo-cache, a persistent build-artifact cache. A thin wrapper over
//! the C ABI (`c` is include/nexxo_cache.h through translate-c): statuses become one
//! error set, values are slices owned by the caller's allocator.
//!
//! Every open reads the `NEXXO_CACHE_*` environment (`NEXXO_CACHE_MAX_SIZE`, `_MAX_AGE`,
//! `_READ_ONLY`, `_DISABLE`, `_REMOTE`, `_REMOTE_MODE`, `_REMOTE_NAME`,
//! `_REMOTE_HMAC_KEY[_FILE]`: the README's "Environment" table) unless
//! `.ignore_environment = true`; limits the options leave unset come from the
//! environment, then from the cache's stored ones, then the defaults. `statsJson`'s
//! `"limits"` names the limits that apply and their sources.
const std = @import("std");
pub const c = @import("c");

/// Every failure a call can report. A miss is not an error: `get` returns null.
pub const Error = error{
    InvalidArgument,
    UnknownCategory,
    TooLarge,
    BufferTooSmall,
    Locked,
    IoError,
    NoSpace,
    Corruption,
    ReadOnly,
    Incompatible,
    Panic,
    Insecure,
    TimedOut,
    OutOfMemory,
};

/// Maps a C status to the error set; `NEXXO_OK` and `NEXXO_NOT_FOUND` are not errors.
pub fn check(status: c.nexxo_status) Error!void {
    return switch (status) {
        c.NEXXO_OK, c.NEXXO_NOT_FOUND => {},
        c.NEXXO_INVALID_ARGUMENT => error.InvalidArgument,
        c.NEXXO_UNKNOWN_CATEGORY => error.UnknownCategory,
        c.NEXXO_TOO_LARGE => error.TooLarge,
        c.NEXXO_BUFFER_TOO_SMALL => error.BufferTooSmall,
        c.NEXXO_LOCKED => error.Locked,
        c.NEXXO_IO_ERROR => error.IoError,
        c.NEXXO_NO_SPACE => error.NoSpace,
        c.NEXXO_CORRUPTION => error.Corruption,
        c.NEXXO_READ_ONLY => error.ReadOnly,
        c.NEXXO_INCOMPATIBLE => error.Incompatible,
        c.NEXXO_INSECURE => error.Insecure,
        c.NEXXO_TIMED_OUT => error.TimedOut,
        else => error.Panic,
    };
}

/// The linked library's version, "MAJOR.MINOR.PATCH".
pub fn version() [:0]const u8 {
    return std.mem.span(c.nexxo_version());
}

pub const max_key_len: usize = c.NEXXO_MAX_KEY_LEN;
pub const max_value_len: usize = c.NEXXO_MAX_VALUE_LEN;

pub const Compression = enum { none, lz4 };

pub const CategoryLimit = struct { category: [:0]const u8, max_size: u64 };

/// Open options; the defaults are the library's.
pub const Options = struct {
    /// Bound on stored bytes; null: the environment's, else the cache's stored limit,
    /// else 2 GiB; 0 means unbounded.
    max_size: ?u64 = null,
    category_max_size: []const CategoryLimit = &.{},
    /// Entries unused for longer are evicted; null: the environment's, else the cache's
    /// stored limit, else never; 0 means never.
    max_age_seconds: ?u64 = null,
    /// Categories beyond parse, transform, bundle, optimize and meta.
    categories: []const [:0]const u8 = &.{},
    compression: Compression = .lz4,
    sync_writes: bool = false,
    read_only: bool = false,
    /// Open a disabled cache instead of failing for I/O, lock, corruption or format reasons.
    fallback_disabled: bool = false,
    /// null keeps the default (64 MiB).
    memory_budget: ?u64 = null,
    /// Mode of created directories and the most an existing one may grant; null = 0o700.
    dir_mode: ?u32 = null,
    /// Open a directory owned by another user or writable by others read-only instead
    /// of failing with error.Insecure.
    allow_untrusted_dir: bool = false,
    /// Cache servers behind the local store; null means none.
    remote: ?RemoteOptions = null,
    /// Leave the `NEXXO_CACHE_*` environment variables out of this open.
    ignore_environment: bool = false,
    /// Record latency histograms (`statsJson`'s "latency"); `NEXXO_CACHE_LATENCY=0` also turns it off.
    latency: bool = true,
};

pub const RemoteMode = enum { read_write, read_only, off };

/// Remote cache servers behind the local store: a local miss asks them, a verified hit
/// is written back locally, and (read-write) every write is uploaded in the background.
/// No remote failure ever fails a call; see `Cache.remoteStats`. null keeps a default.
pub const RemoteOptions = struct {
    /// `http[s]://[user:pass@]host[:port][/base]` (Bazel HTTP layout) or
    /// `redis[s]://[[user]:pass@]host[:port][/db]`, tried in order; at most 8. `https`
    /// and `rediss` speak TLS, the server's certificate verified.
    urls: []const [:0]const u8,
    mode: RemoteMode = .read_write,
    /// Namespace on the servers (default "default").
    name: ?[:0]const u8 = null,
    /// Categories that never go to or come from a remote.
    local_only: []const [:0]const u8 = &.{},
    /// Shared HMAC-SHA256 key, at least 16 bytes: unsigned or tampered values are misses.
    hmac_key: ?[]const u8 = null,
    timeout_ms: ?u32 = null,
    retries: ?u32 = null,
    cooldown_ms: ?u32 = null,
    /// Redis: seconds a value lives; 0 = until evicted (default 7 days).
    ttl_seconds: ?u64 = null,
    /// HTTP remotes: `Authorization: Bearer <token>`, never printed (null:
    /// `NEXXO_CACHE_REMOTE_TOKEN`, if set).
    token: ?[:0]const u8 = null,
    /// HTTP remotes: extra request headers (an `Authorization` one replaces the token).
    headers: []const Header = &.{},
    /// TLS remotes: a PEM file of extra CAs, beside Mozilla's roots and the system's.
    ca_file: ?[:0]const u8 = null,
    /// HTTP remotes: an `http://` proxy; "" = none; null: the environment's
    /// (`https_proxy`/`HTTPS_PROXY`, `http_proxy`/`HTTP_PROXY`, `NO_PROXY`).
    proxy: ?[:0]const u8 = null,
    /// Ask the server before uploading and skip what it has (keys that name their content).
    check_exists: bool = false,
};

pub const Header = struct { name: [:0]const u8, value: [:0]const u8 };

pub const RemoteStats = c.nexxo_remote_stats;

fn applyRemote(opts: *c.nexxo_options, r: RemoteOptions) Error!void {
    for (r.urls) |u| try check(c.nexxo_options_add_remote(opts, u.ptr));
    try check(c.nexxo_options_set_remote_mode(opts, switch (r.mode) {
        .read_write => c.NEXXO_REMOTE_READ_WRITE,
        .read_only => c.NEXXO_REMOTE_READ_ONLY,
        .off => c.NEXXO_REMOTE_OFF,
    }));
    if (r.name) |n| try check(c.nexxo_options_set_remote_name(opts, n.ptr));
    for (r.local_only) |cat| try check(c.nexxo_options_set_remote_local_only(opts, cat.ptr, true));
    if (r.hmac_key) |k| try check(c.nexxo_options_set_remote_hmac_key(opts, ptr(k), k.len));
    if (r.timeout_ms) |ms| try check(c.nexxo_options_set_remote_timeout(opts, ms));
    if (r.retries) |n| try check(c.nexxo_options_set_remote_retries(opts, n));
    if (r.cooldown_ms) |ms| try check(c.nexxo_options_set_remote_cooldown(opts, ms));
    if (r.ttl_seconds) |s| try check(c.nexxo_options_set_remote_ttl(opts, s));
    if (r.token) |t| try check(c.nexxo_options_set_remote_token(opts, t.ptr));
    for (r.headers) |h| try check(c.nexxo_options_add_remote_header(opts, h.name.ptr, h.value.ptr));
    if (r.ca_file) |f| try check(c.nexxo_options_set_remote_ca_file(opts, f.ptr));
    if (r.proxy) |p| try check(c.nexxo_options_set_remote_proxy(opts, p.ptr));
    try check(c.nexxo_options_set_remote_check_exists(opts, r.check_exists));
}

pub const Entry = struct { category: [:0]const u8, key: []const u8, value: []const u8 };
/// One write of `batchSetTagged`: an entry and what its value depends on.
pub const TaggedEntry = struct { entry: Entry, tags: []const []const u8 };
pub const Key = struct { category: [:0]const u8, key: []const u8 };
pub const Stats = c.nexxo_stats;
pub const PolicyReport = c.nexxo_policy_report;

fn ptr(bytes: []const u8) [*c]const u8 {
    return if (bytes.len == 0) null else bytes.ptr;
}

fn buildOptions(o: Options) Error!*c.nexxo_options {
    const opts = c.nexxo_options_new() orelse return error.OutOfMemory;
    errdefer c.nexxo_options_free(opts);
    if (o.max_size) |m| try check(c.nexxo_options_set_max_size(opts, m));
    for (o.categories) |name| try check(c.nexxo_options_add_category(opts, name.ptr));
    for (o.category_max_size) |l| try check(c.nexxo_options_set_category_max_size(opts, l.category.ptr, l.max_size));
    if (o.max_age_seconds) |a| try check(c.nexxo_options_set_max_age(opts, a));
    try check(c.nexxo_options_set_ignore_environment(opts, o.ignore_environment));
    try check(c.nexxo_options_set_latency(opts, o.latency));
    try check(c.nexxo_options_set_compression(opts, switch (o.compression) {
        .none => c.NEXXO_COMPRESSION_NONE,
        .lz4 => c.NEXXO_COMPRESSION_LZ4,
    }));
    try check(c.nexxo_options_set_sync_writes(opts, o.sync_writes));
    try check(c.nexxo_options_set_read_only(opts, o.read_only));
    try check(c.nexxo_options_set_fallback_disabled(opts, o.fallback_disabled));
    if (o.memory_budget) |m| try check(c.nexxo_options_set_memory_budget(opts, m));
    if (o.dir_mode) |m| try check(c.nexxo_options_set_dir_mode(opts, m));
    try check(c.nexxo_options_set_allow_untrusted_dir(opts, o.allow_untrusted_dir));
    if (o.remote) |r| try applyRemote(opts, r);
    return opts;
}

/// An open cache. Safe to use from many threads at once, except `close`.
pub const Cache = struct {
    handle: *c.nexxo_cache,

    /// Opens (creating when missing) the cache in directory `path`.
    pub fn open(path: [:0]const u8, options: Options) Error!Cache {
        const opts = try buildOptions(options);
        defer c.nexxo_options_free(opts);
        var handle: ?*c.nexxo_cache = null;
        try check(c.nexxo_cache_open(path.ptr, opts, &handle));
        return .{ .handle = handle.? };
    }

    /// Closes the cache, persisting what was acknowledged. The handle is invalid after.
    pub fn close(self: *Cache) void {
        c.nexxo_cache_close(self.handle);
        self.* = undefined;
    }

    /// Reads a value into a new slice owned by `allocator`; null on a miss.
    pub fn get(self: Cache, allocator: std.mem.Allocator, category: [:0]const u8, key: []const u8) Error!?[]u8 {
        var stack: [4096]u8 = undefined;
        var len: usize = 0;
        const s = c.nexxo_cache_get_into(self.handle, category.ptr, ptr(key), key.len, &stack, stack.len, &len);
        if (s == c.NEXXO_NOT_FOUND) return null;
        if (s == c.NEXXO_OK) return try allocator.dupe(u8, stack[0..len]);
        if (s != c.NEXXO_BUFFER_TOO_SMALL) {
            try check(s);
            unreachable;
        }
        // Larger than the stack buffer: read straight into an exact allocation.
        while (true) {
            const buf = try allocator.alloc(u8, len);
            var got: usize = 0;
            const again = c.nexxo_cache_get_into(self.handle, category.ptr, ptr(key), key.len, buf.ptr, buf.len, &got);
            if (again == c.NEXXO_OK) {
                if (got == buf.len) return buf;
                defer allocator.free(buf);
                return try allocator.dupe(u8, buf[0..got]);
            }
            allocator.free(buf);
            if (again == c.NEXXO_NOT_FOUND) return null;
            if (again != c.NEXXO_BUFFER_TOO_SMALL) {
                try check(again);
                unreachable;
            }
            len = got; // the entry grew meanwhile
        }
    }

    /// Reads a value into `buf` and returns the filled part; null on a miss;
    /// `error.BufferTooSmall` when it does not fit (see `valueLen`).
    pub fn getInto(self: Cache, category: [:0]const u8, key: []const u8, buf: []u8) Error!?[]u8 {
        var len: usize = 0;
        const s = c.nexxo_cache_get_into(self.handle, category.ptr, ptr(key), key.len, if (buf.len == 0) null else buf.ptr, buf.len, &len);
        if (s == c.NEXXO_NOT_FOUND) return null;
        try check(s);
        return buf[0..len];
    }

    pub fn set(self: Cache, category: [:0]const u8, key: []const u8, value: []const u8) Error!void {
        try check(c.nexxo_cache_set(self.handle, category.ptr, ptr(key), key.len, ptr(value), value.len));
    }

    /// `set` with tags (what the value depends on): `invalidate` of any of them removes
    /// the entry; overwriting the key replaces its tags. At most `c.NEXXO_MAX_TAGS` tags
    /// of 1 to `c.NEXXO_MAX_TAG_LEN` bytes.
    pub fn setTagged(self: Cache, category: [:0]const u8, key: []const u8, value: []const u8, tags: []const []const u8) Error!void {
        var list: [c.NEXXO_MAX_TAGS]c.nexxo_tag = undefined;
        if (tags.len > list.len) return error.InvalidArgument;
        for (tags, 0..) |t, i| list[i] = .{ .data = ptr(t), .len = t.len };
        try check(c.nexxo_cache_set_tagged(self.handle, category.ptr, ptr(key), key.len, ptr(value), value.len, &list, tags.len));
    }

    /// Removes every entry carrying `tag`, in every category, in one atomic write.
    pub fn invalidate(self: Cache, tag: []const u8) Error!struct { entries: u64, bytes: u64 } {
        var n: u64 = 0;
        var b: u64 = 0;
        try check(c.nexxo_cache_invalidate(self.handle, ptr(tag), tag.len, &n, &b));
        return .{ .entries = n, .bytes = b };
    }

    /// Removes a key; removing an absent key is not an error.
    pub fn delete(self: Cache, category: [:0]const u8, key: []const u8) Error!void {
        try check(c.nexxo_cache_delete(self.handle, category.ptr, ptr(key), key.len));
    }

    /// Stores entries atomically: all or none; an invalid entry fails the batch first.
    pub fn batchSet(self: Cache, allocator: std.mem.Allocator, entries: []const Entry) Error!void {
        const arr = try allocator.alloc(c.nexxo_entry, entries.len);
        defer allocator.free(arr);
        for (entries, arr) |e, *out| out.* = .{
            .category = e.category.ptr,
            .key = ptr(e.key),
            .key_len = e.key.len,
            .value = ptr(e.value),
            .value_len = e.value.len,
        };
        try check(c.nexxo_cache_batch_set(self.handle, if (arr.len == 0) null else arr.ptr, arr.len));
    }

    /// `batchSet` with each entry's tags: atomic, validated whole.
    pub fn batchSetTagged(self: Cache, allocator: std.mem.Allocator, entries: []const TaggedEntry) Error!void {
        const arr = try allocator.alloc(c.nexxo_entry, entries.len);
        defer allocator.free(arr);
        const lists = try allocator.alloc(c.nexxo_tags, entries.len);
        defer allocator.free(lists);
        var ntags: usize = 0;
        for (entries) |e| ntags += e.tags.len;
        const tags = try allocator.alloc(c.nexxo_tag, ntags);
        defer allocator.free(tags);
        var at: usize = 0;
        for (entries, arr, lists) |te, *out, *list| {
            const e = te.entry;
            out.* = .{ .category = e.category.ptr, .key = ptr(e.key), .key_len = e.key.len, .value = ptr(e.value), .value_len = e.value.len };
            for (te.tags, 0..) |t, i| tags[at + i] = .{ .data = ptr(t), .len = t.len };
            list.* = .{ .tags = if (te.tags.len == 0) null else tags[at..].ptr, .count = te.tags.len };
            at += te.tags.len;
        }
        try check(c.nexxo_cache_batch_set_tagged(self.handle, if (arr.len == 0) null else arr.ptr, if (lists.len == 0) null else lists.ptr, arr.len));
    }

    /// Reads many keys; each result is a slice owned by `allocator` or null on a miss.
    /// Free the result with `freeBatch`. A key's own error fails the call.
    pub fn batchGet(self: Cache, allocator: std.mem.Allocator, keys: []const Key) Error![]?[]u8 {
        const ck = try allocator.alloc(c.nexxo_key, keys.len);
        defer allocator.free(ck);
        const vals = try allocator.alloc(c.nexxo_bytes, keys.len);
        defer allocator.free(vals);
        const sts = try allocator.alloc(c.nexxo_status, keys.len);
        defer allocator.free(sts);
        for (keys, ck) |k, *out| out.* = .{ .category = k.category.ptr, .key = ptr(k.key), .key_len = k.key.len };
        try check(c.nexxo_cache_batch_get(self.handle, if (keys.len == 0) null else ck.ptr, keys.len, if (keys.len == 0) null else vals.ptr, if (keys.len == 0) null else sts.ptr));
        defer for (vals) |*v| c.nexxo_bytes_free(v);
        for (sts) |s| try check(s);
        const out = try allocator.alloc(?[]u8, keys.len);
        var filled: usize = 0;
        errdefer {
            for (out[0..filled]) |v| if (v) |b| allocator.free(b);
            allocator.free(out);
        }
        for (vals, sts, out) |v, s, *o| {
            o.* = if (s == c.NEXXO_OK) try allocator.dupe(u8, if (v.len == 0) &.{} else v.data[0..v.len]) else null;
            filled += 1;
        }
        return out;
    }

    /// Frees what `batchGet` returned.
    pub fn freeBatch(allocator: std.mem.Allocator, values: []?[]u8) void {
        for (values) |v| if (v) |b| allocator.free(b);
        allocator.free(values);
    }

    pub fn stats(self: Cache) Error!Stats {
        var s: Stats = undefined;
        try check(c.nexxo_cache_stats(self.handle, &s));
        return s;
    }

    pub fn categoryStats(self: Cache, category: [:0]const u8) Error!Stats {
        var s: Stats = undefined;
        try check(c.nexxo_cache_category_stats(self.handle, category.ptr, &s));
        return s;
    }

    /// The statistics as JSON, owned by `allocator`: totals, every category, `"limits"`
    /// (each with its source: option, environment, stored or default), `"remote"`.
    pub fn statsJson(self: Cache, allocator: std.mem.Allocator) Error![]u8 {
        var b: c.nexxo_bytes = .{ .data = null, .len = 0 };
        try check(c.nexxo_cache_stats_json(self.handle, &b));
        defer c.nexxo_bytes_free(&b);
        return try allocator.dupe(u8, b.data[0..b.len]);
    }

    pub fn enforcePolicy(self: Cache) Error!PolicyReport {
        var r: PolicyReport = undefined;
        try check(c.nexxo_cache_enforce_policy(self.handle, &r));
        return r;
    }

    /// Compacts one category, or all when `category` is null.
    pub fn compact(self: Cache, category: ?[:0]const u8) Error!void {
        try check(c.nexxo_cache_compact(self.handle, if (category) |n| n.ptr else null));
    }

    /// Clears the named categories, or every one when `categories` is empty.
    pub fn clear(self: Cache, categories: []const [*:0]const u8) Error!void {
        try check(c.nexxo_cache_clear(self.handle, if (categories.len == 0) null else @ptrCast(categories.ptr), categories.len));
    }

    pub fn flush(self: Cache) Error!void {
        try check(c.nexxo_cache_flush(self.handle));
    }

    /// The remote tier's statistics, every remote added up (all zero without remotes).
    pub fn remoteStats(self: Cache) Error!RemoteStats {
        var r: RemoteStats = undefined;
        try check(c.nexxo_cache_remote_stats(self.handle, &r));
        return r;
    }

    /// Waits until queued uploads have been sent (or have failed), at most `timeout_ms`;
    /// error.TimedOut when uploads were still pending.
    pub fn remoteSync(self: Cache, timeout_ms: u32) Error!void {
        try check(c.nexxo_cache_remote_sync(self.handle, timeout_ms));
    }
};
