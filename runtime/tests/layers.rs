//! The runtime's layering, checked on its source: every `crate::` path a
//! file names points to its own layer or one below, the API modules import
//! each other without a circle, and `unsafe` appears only in `sys/`.
//!
//! Layers, bottom to top: sys, sched, sources, hub, context, API (everything
//! else). See `runtime/src/lib.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.push((rel, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The top-level module a file belongs to: `hub/park.rs` is `hub`.
fn module_of(file: &str) -> String {
    file.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_owned()
}

fn rank(module: &str) -> usize {
    match module {
        "sys" => 0,
        "sched" => 1,
        "sources" => 2,
        "hub" => 3,
        "context" => 4,
        _ => 5,
    }
}

/// The top-level modules a source text names through `crate::` paths
/// (comments included: a doc that names a higher layer is a smell too, but
/// doc links are allowed, so only code lines count).
fn references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name.chars().next().is_some_and(|c| c.is_lowercase()) {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn no_layer_names_a_layer_above_it() {
    let mut violations = Vec::new();
    for (file, text) in sources() {
        let own = module_of(&file);
        for target in references(&text) {
            if rank(&target) > rank(&own) {
                violations.push(format!("{file} names crate::{target}"));
            }
        }
    }
    assert!(violations.is_empty(), "upward references: {violations:#?}");
}

#[test]
fn the_api_modules_import_each_other_without_a_circle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in sources() {
        let own = module_of(&file);
        if rank(&own) < 5 || own == "lib" {
            continue;
        }
        let edges = graph.entry(own.clone()).or_default();
        for target in references(&text) {
            if rank(&target) == 5 && target != own {
                edges.insert(target);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        let cycle = visit(node, &graph, &mut Vec::new(), &mut done);
        assert!(cycle.is_none(), "import circle: {:?}", cycle.unwrap());
    }
}

#[test]
fn unsafe_code_lives_only_in_sys() {
    let mut outside = Vec::new();
    for (file, text) in sources() {
        if file.starts_with("sys/") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with("//") && code.contains("unsafe") {
                outside.push(format!("{file}:{}", n + 1));
            }
        }
    }
    assert!(outside.is_empty(), "unsafe outside sys/: {outside:?}");
}
