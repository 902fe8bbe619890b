//! `zig build test`: every method, every error a caller can provoke, reopen
//! persistence; std.testing.allocator fails any test that leaks.
const std = @import("std");
const nx = @import("nexxo_cache");
const testing = std.testing;
const alloc = testing.allocator;

/// A fresh cache directory path under a testing tmp dir; free with alloc.
fn cachePath(tmp: *std.testing.TmpDir, name: []const u8) ![:0]u8 {
    const base = try tmp.dir.realpathAlloc(alloc, ".");
    defer alloc.free(base);
    return std.fs.path.joinZ(alloc, &.{ base, name });
}

fn artifact(buf: []u8, i: usize) []u8 {
    var n: usize = 0;
    while (n + 64 < buf.len) {
        const line = std.fmt.bufPrint(buf[n..], "export const v{d}_{d} = require('./m{d}');\n", .{ i, n, i % 7 }) catch break;
        n += line.len;
    }
    return buf[0..n];
}

test "version" {
    try testing.expect(std.mem.startsWith(u8, nx.version(), "1."));
    try testing.expect(nx.max_key_len >= 4096);
}

test "set, get, getInto, delete" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const path = try cachePath(&tmp, "c");
    defer alloc.free(path);
    var cache = try nx.Cache.open(path, .{});
    defer cache.close();

    var buf: [1200]u8 = undefined;
    const v = artifact(&buf, 1);
    try cache.set("transform", "src/a.ts", v);
    const got = (try cache.get(alloc, "transform", "src/a.ts")).?;
    defer alloc.free(got);
    try testing.expectEqualSlices(u8, v, got);
    try testing.expect((try cache.get(alloc, "parse", "src/a.ts")) == null);

    var out: [2048]u8 = undefined;
    try testing.expectEqualSlices(u8, v, (try cache.getInto("transform", "src/a.ts", &out)).?);
    var small: [8]u8 = undefined;
    try testing.expectError(error.BufferTooSmall, cache.getInto("transform", "src/a.ts", &small));
    try testing.expect((try cache.getInto("transform", "absent", &out)) == null);

    // Larger than get's stack buffer.
    const big = try alloc.alloc(u8, 100_000);
    defer alloc.free(big);
    for (big, 0..) |*b, i| b.* = @truncate(i *% 7);
    try cache.set("bundle", "big", big);
    const big_back = (try cache.get(alloc, "bundle", "big")).?;
    defer alloc.free(big_back);
    try testing.expectEqualSlices(u8, big, big_back);

    try cache.set("meta", "empty", "");
    const empty = (try cache.get(alloc, "meta", "empty")).?;
    defer alloc.free(empty);
    try testing.expectEqual(@as(usize, 0), empty.len);

    try cache.delete("transform", "src/a.ts");
    try testing.expect((try cache.get(alloc, "transform", "src/a.ts")) == null);
    try cache.delete("transform", "src/a.ts");
}

test "errors a caller can provoke" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const path = try cachePath(&tmp, "c");
    defer alloc.free(path);
    var cache = try nx.Cache.open(path, .{});
    defer cache.close();

    try testing.expectError(error.UnknownCategory, cache.set("nope", "k", "v"));
    try testing.expectError(error.UnknownCategory, cache.get(alloc, "nope", "k"));
    try testing.expectError(error.InvalidArgument, cache.set("parse", "", "v"));
    const long = [_]u8{'k'} ** (nx.max_key_len + 1);
    try testing.expectError(error.TooLarge, cache.set("parse", &long, "v"));
    try testing.expectError(error.UnknownCategory, cache.categoryStats("nope"));
    try testing.expectError(error.UnknownCategory, cache.compact("nope"));
    const bad = [_][*:0]const u8{ "parse", "nope" };
    try testing.expectError(error.UnknownCategory, cache.clear(&bad));
    try testing.expectError(error.UnknownCategory, cache.batchSet(alloc, &.{
        .{ .category = "parse", .key = "a", .value = "1" },
        .{ .category = "nope", .key = "b", .value = "2" },
    }));
    try testing.expect((try cache.get(alloc, "parse", "a")) == null);
    {
        // A second handle of the same directory shares the store.
        var second = try nx.Cache.open(path, .{});
        defer second.close();
        try cache.set("parse", "shared", "yes");
        const got = (try second.get(alloc, "parse", "shared")).?;
        defer alloc.free(got);
        try testing.expectEqualStrings("yes", got);
    }
    try testing.expectError(error.InvalidArgument, nx.Cache.open(path, .{ .memory_budget = 1024 }));
    try testing.expectError(error.InvalidArgument, nx.Cache.open(path, .{ .categories = &.{"Bad Name"} }));
    try testing.expectError(error.UnknownCategory, nx.Cache.open(path, .{ .category_max_size = &.{.{ .category = "nope", .max_size = 1 }} }));

    try tmp.dir.writeFile(.{ .sub_path = "file", .data = "x" });
    const file = try cachePath(&tmp, "file");
    defer alloc.free(file);
    try testing.expectError(error.IoError, nx.Cache.open(file, .{}));

    try tmp.dir.makeDir("newer");
    try tmp.dir.writeFile(.{ .sub_path = "newer/NEXXO_FORMAT", .data = "nexxo-cache format 5\n" });
    const newer = try cachePath(&tmp, "newer");
    defer alloc.free(newer);
    try testing.expectError(error.Incompatible, nx.Cache.open(newer, .{}));
}

test "batches, stats, clear, compact, policy" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const path = try cachePath(&tmp, "c");
    defer alloc.free(path);
    var cache = try nx.Cache.open(path, .{ .max_size = 1 << 20, .compression = .none });
    defer cache.close();

    try cache.batchSet(alloc, &.{
        .{ .category = "parse", .key = "a", .value = "A" },
        .{ .category = "transform", .key = "b", .value = "BB" },
    });
    const vals = try cache.batchGet(alloc, &.{
        .{ .category = "parse", .key = "a" },
        .{ .category = "parse", .key = "missing" },
        .{ .category = "transform", .key = "b" },
    });
    defer nx.Cache.freeBatch(alloc, vals);
    try testing.expectEqualStrings("A", vals[0].?);
    try testing.expect(vals[1] == null);
    try testing.expectEqualStrings("BB", vals[2].?);
    try testing.expectError(error.UnknownCategory, cache.batchGet(alloc, &.{.{ .category = "nope", .key = "k" }}));

    var s = try cache.stats();
    try testing.expectEqual(@as(u64, 2), s.entries);
    try testing.expectEqual(@as(u64, 1 + 1 + 1 + 2), s.logical_bytes);
    try testing.expectEqual(@as(u64, 2), s.hits);
    try testing.expect(!s.disabled);

    const json = try cache.statsJson(alloc);
    defer alloc.free(json);
    try testing.expect(std.mem.indexOf(u8, json, "\"totals\":{") != null);

    const cats = [_][*:0]const u8{"parse"};
    try cache.clear(&cats);
    try testing.expectEqual(@as(u64, 1), (try cache.categoryStats("transform")).entries);
    try testing.expectEqual(@as(u64, 0), (try cache.categoryStats("parse")).entries);

    var x: u32 = 1;
    var noise: [4096]u8 = undefined;
    var i: usize = 0;
    while (i < 600) : (i += 1) {
        for (&noise) |*b| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b.* = @truncate(x);
        }
        var kb: [16]u8 = undefined;
        try cache.set("optimize", try std.fmt.bufPrint(&kb, "o{d}", .{i}), &noise);
    }
    const r = try cache.enforcePolicy();
    s = try cache.stats();
    try testing.expect(s.stored_bytes <= 1 << 20);
    try testing.expect(s.evictions > 0);
    try testing.expectEqual(s.stored_bytes, r.stored_bytes_after);
    try cache.compact(null);
    try cache.compact("optimize");
    try cache.flush();
    try cache.clear(&.{});
    try testing.expectEqual(@as(u64, 0), (try cache.stats()).entries);
}

test "reopen persistence, read-only, disabled fallback" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const path = try cachePath(&tmp, "c");
    defer alloc.free(path);
    {
        var cache = try nx.Cache.open(path, .{ .categories = &.{"lint"} });
        defer cache.close();
        var i: usize = 0;
        while (i < 300) : (i += 1) {
            var kb: [16]u8 = undefined;
            var vb: [600]u8 = undefined;
            try cache.set("lint", try std.fmt.bufPrint(&kb, "k{d}", .{i}), artifact(&vb, i));
        }
    }
    {
        var ro = try nx.Cache.open(path, .{ .read_only = true });
        defer ro.close();
        var i: usize = 0;
        while (i < 300) : (i += 1) {
            var kb: [16]u8 = undefined;
            var vb: [600]u8 = undefined;
            const got = (try ro.get(alloc, "lint", try std.fmt.bufPrint(&kb, "k{d}", .{i}))).?;
            defer alloc.free(got);
            try testing.expectEqualSlices(u8, artifact(&vb, i), got);
        }
        try testing.expectError(error.ReadOnly, ro.set("lint", "k", "v"));
        try testing.expectError(error.ReadOnly, ro.enforcePolicy());
        try testing.expect((try ro.stats()).read_only);
    }
    try tmp.dir.writeFile(.{ .sub_path = "file", .data = "" });
    const file = try cachePath(&tmp, "file");
    defer alloc.free(file);
    var d = try nx.Cache.open(file, .{ .fallback_disabled = true });
    defer d.close();
    try d.set("parse", "k", "v");
    try testing.expect((try d.get(alloc, "parse", "k")) == null);
    const s = try d.stats();
    try testing.expect(s.disabled);
    try testing.expectError(error.IoError, nx.check(s.disabled_reason));
}

test "limits: unset options keep the cache's stored ones; statsJson names their sources" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const path = try cachePath(&tmp, "c");
    defer alloc.free(path);
    {
        var cache = try nx.Cache.open(path, .{ .max_size = 5 << 20, .max_age_seconds = 3600, .ignore_environment = true });
        cache.close();
    }
    var cache = try nx.Cache.open(path, .{ .ignore_environment = true });
    defer cache.close();
    const j = try cache.statsJson(alloc);
    defer alloc.free(j);
    try testing.expect(std.mem.indexOf(u8, j, "\"max_size\":5242880,\"max_age_secs\":3600") != null);
    try testing.expect(std.mem.indexOf(u8, j, "\"source\":{\"max_size\":\"stored\",\"max_age\":\"stored\"") != null);
}

test "statsJson has the latency of this handle; .latency = false records none" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const path = try cachePath(&tmp, "c");
    defer alloc.free(path);
    {
        var cache = try nx.Cache.open(path, .{ .ignore_environment = true });
        defer cache.close();
        try cache.set("parse", "k", "v");
        const j = try cache.statsJson(alloc);
        defer alloc.free(j);
        try testing.expect(std.mem.indexOf(u8, j, "\"set\":{\"count\":1,") != null);
    }
    var cache = try nx.Cache.open(path, .{ .ignore_environment = true, .latency = false });
    defer cache.close();
    const j = try cache.statsJson(alloc);
    defer alloc.free(j);
    try testing.expect(std.mem.indexOf(u8, j, "\"latency\":{\"enabled\":false}") != null);
    // The first handle's close kept its set.
    try testing.expect(std.mem.indexOf(u8, j, "\"handles\":1,") != null);
}

test "setTagged and invalidate" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const path = try cachePath(&tmp, "c");
    defer alloc.free(path);
    var cache = try nx.Cache.open(path, .{ .ignore_environment = true });
    defer cache.close();
    try cache.setTagged("transform", "a.ts", "A", &.{ "tsconfig#1", "babel@7" });
    try cache.setTagged("bundle", "main.js", "M", &.{"tsconfig#1"});
    try cache.set("parse", "b.ts", "B");
    const r = try cache.invalidate("tsconfig#1");
    try testing.expectEqual(@as(u64, 2), r.entries);
    try testing.expect((try cache.get(alloc, "transform", "a.ts")) == null);
    const b = (try cache.get(alloc, "parse", "b.ts")).?;
    defer alloc.free(b);
    try testing.expectEqualStrings("B", b);
    try testing.expectError(error.InvalidArgument, cache.setTagged("parse", "x", "X", &.{""}));
    try testing.expectError(error.InvalidArgument, cache.invalidate(""));
    try cache.batchSetTagged(alloc, &.{
        .{ .entry = .{ .category = "optimize", .key = "m.js", .value = "O" }, .tags = &.{"cfg#2"} },
        .{ .entry = .{ .category = "meta", .key = "k", .value = "v" }, .tags = &.{} },
    });
    try testing.expectEqual(@as(u64, 1), (try cache.invalidate("cfg#2")).entries);
    try testing.expectError(error.InvalidArgument, cache.batchSetTagged(alloc, &.{
        .{ .entry = .{ .category = "meta", .key = "x", .value = "X" }, .tags = &.{"ok"} },
        .{ .entry = .{ .category = "meta", .key = "y", .value = "Y" }, .tags = &.{""} },
    }));
    try testing.expect((try cache.get(alloc, "meta", "x")) == null);
}

test "an untrusted directory is refused unless allowed" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const path = try cachePath(&tmp, "c");
    defer alloc.free(path);
    {
        var cache = try nx.Cache.open(path, .{});
        defer cache.close();
        try cache.set("parse", "k", "v");
    }
    try std.posix.fchmodat(tmp.dir.fd, "c", 0o777, 0);
    try testing.expectError(error.Insecure, nx.Cache.open(path, .{}));
    var ro = try nx.Cache.open(path, .{ .allow_untrusted_dir = true });
    defer ro.close();
    try testing.expectError(error.ReadOnly, ro.set("parse", "k", "poison"));
    try testing.expectError(error.InvalidArgument, nx.Cache.open(path, .{ .dir_mode = 0o600 }));
}

/// A server the test command started (scripts/servers.sh); null skips the test, except
/// under CI, where a missing server fails it.
fn serverUrl(variable: []const u8) !?[:0]u8 {
    const v = std.process.getEnvVarOwned(alloc, variable) catch |e| switch (e) {
        error.EnvironmentVariableNotFound => {
            if (std.process.hasEnvVarConstant("CI")) return error.ServerNotStarted;
            return null;
        },
        else => return e,
    };
    defer alloc.free(v);
    return try alloc.dupeZ(u8, v);
}

test "remote: what one cache uploads, another reads and backfills" {
    inline for (.{ "NEXXO_TEST_HTTP_URL", "NEXXO_TEST_REDIS_URL" }) |variable| {
        if (try serverUrl(variable)) |url| {
            defer alloc.free(url);
            var tmp = testing.tmpDir(.{});
            defer tmp.cleanup();
            var name_buf: [64]u8 = undefined;
            const name = try std.fmt.bufPrintZ(&name_buf, "zig-{d}", .{std.time.nanoTimestamp()});
            const remote: nx.RemoteOptions = .{ .urls = &.{url}, .name = name, .hmac_key = "a key for the zig test run" };

            const pa = try cachePath(&tmp, "a");
            defer alloc.free(pa);
            var a = try nx.Cache.open(pa, .{ .remote = remote });
            var buf: [1000]u8 = undefined;
            var kb: [16]u8 = undefined;
            for (0..50) |i| try a.set("bundle", try std.fmt.bufPrint(&kb, "k{d}", .{i}), artifact(&buf, i));
            try a.remoteSync(30_000);
            const up = try a.remoteStats();
            try testing.expectEqual(@as(u64, 50), up.uploads);
            try testing.expectEqual(@as(u64, 1), up.remotes);
            a.close();

            const pb = try cachePath(&tmp, "b");
            defer alloc.free(pb);
            var ro = remote;
            ro.mode = .read_only;
            var b = try nx.Cache.open(pb, .{ .remote = ro });
            defer b.close();
            for (0..50) |i| {
                const got = (try b.get(alloc, "bundle", try std.fmt.bufPrint(&kb, "k{d}", .{i}))).?;
                defer alloc.free(got);
                try testing.expectEqualSlices(u8, artifact(&buf, i), got);
            }
            const r = try b.remoteStats();
            try testing.expectEqual(@as(u64, 50), r.hits);
            try testing.expectEqual(@as(u64, 50), r.backfills);
            try testing.expectEqual(@as(u64, 0), r.rejected);
        }
    }
}

test "remote: bad options, and a dead remote is only counted" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const p = try cachePath(&tmp, "c");
    defer alloc.free(p);
    try testing.expectError(error.InvalidArgument, nx.Cache.open(p, .{ .remote = .{ .urls = &.{"ftp://cache.example"} } }));
    try testing.expectError(error.InvalidArgument, nx.Cache.open(p, .{ .remote = .{ .urls = &.{"https://127.0.0.1:9"}, .ca_file = "/nonexistent/ca.pem" } }));
    try testing.expectError(error.InvalidArgument, nx.Cache.open(p, .{ .remote = .{ .urls = &.{"https://127.0.0.1:9"}, .token = "has space" } }));
    try testing.expectError(error.InvalidArgument, nx.Cache.open(p, .{ .remote = .{ .urls = &.{"https://127.0.0.1:9"}, .proxy = "socks5://127.0.0.1:1080" } }));
    try testing.expectError(error.InvalidArgument, nx.Cache.open(p, .{ .remote = .{ .urls = &.{"https://127.0.0.1:9"}, .headers = &.{.{ .name = "Host", .value = "x" }} } }));
    try testing.expectError(error.InvalidArgument, nx.Cache.open(p, .{ .remote = .{ .urls = &.{"http://127.0.0.1:9"}, .hmac_key = "short" } }));
    try testing.expectError(error.UnknownCategory, nx.Cache.open(p, .{ .remote = .{ .urls = &.{"http://127.0.0.1:9"}, .local_only = &.{"nope"} } }));
    var cache = try nx.Cache.open(p, .{ .remote = .{ .urls = &.{"http://127.0.0.1:9/cache"}, .retries = 0, .cooldown_ms = 60_000 } });
    defer cache.close();
    try testing.expect((try cache.get(alloc, "parse", "k")) == null);
    try cache.set("parse", "k", "v");
    try cache.remoteSync(5000);
    const r = try cache.remoteStats();
    try testing.expectEqual(@as(u64, 1), r.errors);
    try testing.expectEqual(@as(u64, 1), r.open_breakers);
}
