//! Builds the `nexxo_cache` module: the generated C header translated with translate-c
//! (no hand-copied declarations) and a Zig wrapper, linked against libnexxo_cache.
//!
//!   zig build test -Dinclude-dir=<repo>/include -Dlib-dir=<repo>/build/lib
//!
//! Both options default to this repository's layout.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const include_dir = b.option([]const u8, "include-dir", "directory of nexxo_cache.h") orelse b.pathFromRoot("../../include");
    const lib_dir = b.option([]const u8, "lib-dir", "directory of libnexxo_cache.so") orelse b.pathFromRoot("../../build/lib");

    const header = b.addTranslateC(.{
        .root_source_file = .{ .cwd_relative = b.pathJoin(&.{ include_dir, "nexxo_cache.h" }) },
        .target = target,
        .optimize = optimize,
    });

    const mod = b.addModule("nexxo_cache", .{
        .root_source_file = b.path("src/nexxo_cache.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .imports = &.{.{ .name = "c", .module = header.createModule() }},
    });
    mod.addLibraryPath(.{ .cwd_relative = lib_dir });
    mod.addRPath(.{ .cwd_relative = lib_dir });
    mod.linkSystemLibrary("nexxo_cache", .{});

    const tests = b.addTest(.{ .root_module = b.createModule(.{
        .root_source_file = b.path("src/tests.zig"),
        .target = target,
        .optimize = optimize,
        .imports = &.{.{ .name = "nexxo_cache", .module = mod }},
    }) });
    const run = b.addRunArtifact(tests);
    b.step("test", "Run the binding's tests against libnexxo_cache").dependOn(&run.step);
}
