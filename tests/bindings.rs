//! The bindings name the C statuses and limits by hand where their language cannot read
//! them from the header (koffi cannot read macros; Zig and Go map statuses to their own
//! error values). This test holds each list to `include/nexxo_cache.h`, the one source:
//! it fails when the header gains a status a binding lacks, or a limit changes.

use std::collections::BTreeMap;

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `nexxo_status`'s enumerators by value, names without `NEXXO_`.
fn header_statuses() -> Vec<String> {
    let h = read("include/nexxo_cache.h");
    let start = h.find("typedef enum nexxo_status {").expect("nexxo_status in the header");
    let body = &h[start..start + h[start..].find('}').unwrap()];
    let mut by_value = BTreeMap::new();
    for line in body.lines().map(str::trim) {
        if let Some((name, value)) = line.trim_end_matches(',').split_once(" = ") {
            if let Some(name) = name.strip_prefix("NEXXO_") {
                by_value.insert(value.parse::<u32>().expect("a numeric value"), name.to_owned());
            }
        }
    }
    assert!(by_value.len() >= 15, "parsed {by_value:?}");
    assert!(by_value.keys().copied().eq(0..by_value.len() as u32), "values are 0..n: {by_value:?}");
    by_value.into_values().collect()
}

fn header_define(name: &str) -> u64 {
    let h = read("include/nexxo_cache.h");
    let line = h.lines().find(|l| l.starts_with(&format!("#define {name} "))).unwrap_or_else(|| panic!("{name} in the header"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// `NOT_FOUND` -> `NotFound` (Zig's error names).
fn camel(name: &str) -> String {
    name.split('_').map(|w| w[..1].to_owned() + &w[1..].to_lowercase()).collect()
}

#[test]
fn node_lists_every_status_in_value_order() {
    let js = read("bindings/node/lib/native.js");
    let list = &js[js.find("const STATUS_CODES = [").unwrap()..];
    let list = &list[..list.find("];").unwrap()];
    let names: Vec<&str> = list.split('\'').skip(1).step_by(2).collect();
    assert_eq!(names, header_statuses(), "bindings/node/lib/native.js STATUS_CODES");
}

#[test]
fn typescript_error_codes_cover_every_status() {
    let ts = read("bindings/node/lib/index.d.ts");
    let union = &ts[ts.find("export type ErrorCode =").unwrap()..];
    let union = &union[..union.find(';').unwrap()];
    for s in header_statuses().iter().filter(|s| *s != "OK") {
        assert!(union.contains(&format!("'{s}'")), "index.d.ts ErrorCode lacks '{s}'");
    }
}

#[test]
fn zig_maps_every_error_status() {
    let zig = read("bindings/zig/src/nexxo_cache.zig");
    for s in header_statuses() {
        match s.as_str() {
            "OK" | "NOT_FOUND" => assert!(zig.contains(&format!("c.NEXXO_{s}")), "zig: {s}"),
            // Any status the binding does not know is reported as Panic (`else`).
            "PANIC" => assert!(zig.contains("else => error.Panic")),
            _ => assert!(zig.contains(&format!("c.NEXXO_{s} => error.{}", camel(&s))), "bindings/zig maps NEXXO_{s}"),
        }
    }
}

#[test]
fn go_names_every_status() {
    let go = read("bindings/go/nexxocache.go");
    for s in header_statuses() {
        assert!(go.contains(&format!("Status = C.NEXXO_{s}\n")), "bindings/go/nexxocache.go lacks a Status for NEXXO_{s}");
    }
}

#[test]
fn node_limits_match_the_header() {
    let js = read("bindings/node/lib/cache.js");
    for (name, js_value) in [("NEXXO_MAX_KEY_LEN", "4096"), ("NEXXO_MAX_VALUE_LEN", "256 * 1024 * 1024")] {
        let decl = format!("const {} = {js_value};", name.trim_start_matches("NEXXO_"));
        assert!(js.contains(&decl), "cache.js: expected `{decl}`");
        let value: u64 = js_value.split(" * ").map(|f| f.parse::<u64>().unwrap()).product();
        assert_eq!(value, header_define(name), "{name}");
    }
}
