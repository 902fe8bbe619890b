//! The Zig package of nexxo-cache (its manifest is this directory's build.zig.zon, where
//! `zig fetch` of the repository or of a release's nexxo-cache-zig-<v>.tar.gz looks):
//! module `nexxo_cache`, the generated C header translated with translate-c (no
//! hand-copied declarations) and the wrapper in bindings/zig/src, linked against
//! libnexxo_cache.
//!
//! Where the library comes from, first that applies:
//!   -Dsdk=<dir>        an unpacked C SDK (nexxo-cache-<v>-<platform>.tar.gz): its
//!                      include/ and lib/
//!   -Dlib-dir=<dir>    a directory holding libnexxo_cache.so (the header: -Dinclude-dir,
//!                      else this package's include/)
//!   neither            pkg-config's nexxo_cache (PKG_CONFIG_PATH=<sdk>/lib/pkgconfig),
//!                      else the system's library path
//! Shared libraries found through -Dsdk/-Dlib-dir are also put in the run path.
//!
//!   zig build test -Dlib-dir=<repo>/build/lib          (this repository's tests)
//!
//! A consumer's build.zig:
//!   const nx = b.dependency("nexxo_cache", .{ .target = target, .optimize = optimize, .sdk = sdk_dir });
//!   exe.root_module.addImport("nexxo_cache", nx.module("nexxo_cache"));
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const sdk = b.option([]const u8, "sdk", "an unpacked nexxo-cache C SDK (its include/ and lib/)");
    const include_opt = b.option([]const u8, "include-dir", "directory of nexxo_cache.h (default: the SDK's, else this package's include/)");
    const lib_opt = b.option([]const u8, "lib-dir", "directory of libnexxo_cache.so (default: the SDK's, else pkg-config)");

    const include_dir: ?[]const u8 = include_opt orelse if (sdk) |d| b.pathJoin(&.{ d, "include" }) else null;
    const lib_dir: ?[]const u8 = lib_opt orelse if (sdk) |d| b.pathJoin(&.{ d, "lib" }) else null;

    const header = b.addTranslateC(.{
        .root_source_file = if (include_dir) |d| .{ .cwd_relative = b.pathJoin(&.{ d, "nexxo_cache.h" }) } else b.path("include/nexxo_cache.h"),
        .target = target,
        .optimize = optimize,
    });

    const mod = b.addModule("nexxo_cache", .{
        .root_source_file = b.path("bindings/zig/src/nexxo_cache.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .imports = &.{.{ .name = "c", .module = header.createModule() }},
    });
    if (lib_dir) |d| {
        mod.addLibraryPath(.{ .cwd_relative = d });
        mod.addRPath(.{ .cwd_relative = d });
        mod.linkSystemLibrary("nexxo_cache", .{ .use_pkg_config = .no });
    } else {
        mod.linkSystemLibrary("nexxo_cache", .{});
    }

    const tests = b.addTest(.{ .root_module = b.createModule(.{
        .root_source_file = b.path("bindings/zig/src/tests.zig"),
        .target = target,
        .optimize = optimize,
        .imports = &.{.{ .name = "nexxo_cache", .module = mod }},
    }) });
    const run = b.addRunArtifact(tests);
    b.step("test", "Run the binding's tests against libnexxo_cache").dependOn(&run.step);
}
