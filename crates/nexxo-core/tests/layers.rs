//! The core's modules depend on each other one way only (docs/architecture.md). This
//! test reads the sources, collects every `crate::<module>` a file names, and fails on a
//! circle: between the crate's top-level modules, and between the files of `store/`
//! (whose children all name `store/mod.rs`, the home of the type they implement: those
//! edges are left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// Every identifier that follows `prefix` in `code`, e.g. `store` in `crate::store::Store`
/// and in `use crate::{store, config}`.
fn named_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices(prefix) {
        let rest = &code[i + prefix.len()..];
        let list = if let Some(group) = rest.strip_prefix('{') { &group[..group.find('}').unwrap_or(0)] } else { rest };
        for item in list.split(',') {
            let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
            if !rest.starts_with('{') {
                break;
            }
        }
    }
    out
}

/// A circle in `g`, if there is one, as the path that closes it.
fn circle(g: &Graph) -> Option<Vec<String>> {
    fn visit(g: &Graph, n: &str, path: &mut Vec<String>, seen: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            return Some(path[at..].iter().cloned().chain([n.to_owned()]).collect());
        }
        if !seen.insert(n.to_owned()) {
            return None;
        }
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, m, path, seen) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    // Depth first; a node seen before and not on the current path is fully explored.
    let mut seen = BTreeSet::new();
    g.keys().find_map(|n| visit(g, n, &mut Vec::new(), &mut seen))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn module_graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut g = Graph::new();
    for f in &files {
        let rel = f.strip_prefix(src()).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
        if top == "lib" {
            continue;
        }
        let deps = named_after(&code(f), "crate::");
        let entry = g.entry(top.clone()).or_default();
        entry.extend(deps.into_iter().filter(|d| *d != top));
    }
    g
}

#[test]
fn top_level_modules_have_no_circle() {
    let g = module_graph();
    assert!(g.len() >= 10, "{g:?}");
    assert!(g["store"].contains("config") && g["cache"].contains("store"), "the parser sees edges: {g:?}");
    if let Some(c) = circle(&g) {
        panic!("modules depend on each other in a circle: {}\n{g:#?}", c.join(" -> "));
    }
    // The leaves stay leaves.
    for leaf in ["clock", "fork", "json", "latency", "limits", "error"] {
        let deps: Vec<_> = g[leaf].iter().filter(|d| *d != "error").collect();
        assert!(deps.is_empty(), "{leaf} depends on {deps:?}");
    }
}

#[test]
fn store_files_have_no_circle() {
    let dir = src().join("store");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let mut g = Graph::new();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "mod" {
            continue;
        }
        let deps = named_after(&code(f), "super::");
        g.entry(name.clone()).or_default().extend(deps.into_iter().filter(|d| files.iter().any(|f| f.file_stem().unwrap() == d.as_str()) && *d != name));
    }
    assert!(g["write"].contains("layout"), "the parser sees edges: {g:?}");
    if let Some(c) = circle(&g) {
        panic!("store/ files depend on each other in a circle: {}\n{g:#?}", c.join(" -> "));
    }
}

#[test]
fn the_detector_finds_a_circle() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(circle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(circle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(named_after("use crate::{store, config::Config};\nlet x = crate::json::f();", "crate::"), ["config", "json", "store"].map(String::from).into());
}
