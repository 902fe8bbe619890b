//! Builds `src/store/fork_env.cc`: a RocksDB environment for processes made by fork()
//! (see `src/store/fork.rs`). RocksDB's headers come from librocksdb-sys, which tells
//! its dependents where its sources are (`DEP_ROCKSDB_CARGO_MANIFEST_DIR`).

fn main() {
    println!("cargo:rerun-if-changed=src/store/fork_env.cc");
    let rocksdb = std::env::var("DEP_ROCKSDB_CARGO_MANIFEST_DIR").expect("librocksdb-sys names its sources");
    let mut b = cc::Build::new();
    b.cpp(true)
        .file("src/store/fork_env.cc")
        .include(format!("{rocksdb}/rocksdb/include"))
        .std("c++20")
        .define("NDEBUG", "1")
        .define("ROCKSDB_PLATFORM_POSIX", None)
        .warnings(true)
        .extra_warnings(true);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        b.define("OS_LINUX", None);
    }
    b.compile("nexxo_fork_env");
}
