// Gives the shared library a SONAME carrying the major version, as C users expect
// (libnexxo_cache.so.1); CMake installs the matching symlinks.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnexxo_cache.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
