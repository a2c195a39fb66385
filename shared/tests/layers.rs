//! The library's module graph, read from the source: every `crate::` path names the top-level
//! module it depends on. The graph must have no cycles and must point one way, down the layers
//! ARCHITECTURE.md lists, so that a newcomer can read each layer knowing only the ones beneath.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[path = "support/source.rs"]
mod source;
use source::{rust_files, src_dir};

/// The layers, bottom first. A module may use modules of its own layer or of layers beneath it;
/// within a layer, the graph must still be acyclic.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations",
        &[
            "error", "secret", "config", "budget", "clock", "aws", "store", "media", "fetch", "json", "context",
            "metrics",
        ],
    ),
    ("state", &["state"]),
    ("domain", &["images", "uploads", "links", "stats", "imports", "keepalive", "accounts", "memes"]),
    ("entry points", &["http", "workers", "fuzzing"]),
];

/// The top-level module a source file belongs to (`http/images.rs` belongs to `http`), or
/// `None` for the crate root.
fn owner(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src_dir()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib").then_some(name)
}

/// The source without comments, so that a path mentioned in prose is not a dependency.
fn code_of(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Every top-level module named after `crate::` in `code`, including each member of a
/// `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Members of the group at depth zero: the first identifier after the brace and after
            // each comma.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        found.insert(ident(&group[i..]));
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

/// Edges `module -> module it uses`, between distinct top-level modules.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = owner(&file) else { continue };
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let uses = edges.entry(from.clone()).or_default();
        for to in crate_paths(&code) {
            // Re-exports at the root (`crate::Error`, `crate::App`, `crate::Result`) name
            // modules through the root; map them to where they live.
            let to = match to.as_str() {
                "Error" | "Result" => "error".to_owned(),
                "App" => "state".to_owned(),
                "Config" => "config".to_owned(),
                _ => to,
            };
            if to != from && !to.is_empty() {
                uses.insert(to);
            }
        }
    }
    edges
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, members)| members.contains(&module))
}

#[test]
fn every_module_sits_in_one_layer() {
    // Given the modules the crate root declares,
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    // then each is placed in exactly one layer, so the rule below covers it.
    for module in &declared {
        let places = LAYERS.iter().filter(|(_, members)| members.contains(module)).count();
        assert_eq!(places, 1, "module `{module}` must be listed in exactly one layer of LAYERS");
    }
    assert!(declared.len() > 10, "read the module list: {declared:?}");
}

#[test]
fn dependencies_point_down_the_layers() {
    // Given the module graph read from the source,
    let edges = graph();
    // then no module uses a module of a layer above its own.
    let mut upward = Vec::new();
    for (from, uses) in &edges {
        let Some(lf) = layer_of(from) else { continue };
        for to in uses {
            let Some(lt) = layer_of(to) else {
                panic!("`{from}` uses `crate::{to}`, which no layer lists");
            };
            if lt > lf {
                upward.push(format!("{from} ({}) -> {to} ({})", LAYERS[lf].0, LAYERS[lt].0));
            }
        }
    }
    assert!(upward.is_empty(), "dependencies that point up the layers:\n{}", upward.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycles() {
    // Given the module graph read from the source,
    let edges = graph();
    // when it is walked depth first,
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    // then no path leads back to where it started.
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut done, &mut Vec::new()) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_reader_sees_grouped_and_nested_paths() {
    // The parser above is the rule's eyes: check it on the spellings the source uses.
    let cases: &[(&str, &[&str])] = &[
        ("use crate::images::{self, Image};", &["images"]),
        ("use crate::{config::Config, secret};", &["config", "secret"]),
        ("use crate::{\n    a::{b, c},\n    d,\n};", &["a", "d"]),
        ("let x = crate::links::release(app);", &["links"]),
        ("// crate::ignored\nuse crate::store;", &["store"]),
    ];
    for (code, want) in cases {
        let got = crate_paths(&code_of(code));
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{code}");
    }
}

#[test]
fn status_codes_are_chosen_only_by_the_http_layer() {
    // Given every module below the entry points,
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut chosen = Vec::new();
    for file in files {
        let Some(module) = owner(&file) else { continue };
        if layer_of(&module).is_none_or(|l| l == LAYERS.len() - 1) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Their tests may check what the HTTP layer makes of their errors.
        let code = code_of(text.split("#[cfg(test)]").next().unwrap_or_default());
        for line in code.lines().filter(|l| l.contains("StatusCode::")) {
            // An outside server's answer, read by the fetcher, is not a status we choose.
            if !line.contains("reqwest::StatusCode::") {
                chosen.push(format!("{}: {}", file.display(), line.trim()));
            }
        }
    }
    // then none of them picks an HTTP status: they say what kind of refusal it is.
    assert!(chosen.is_empty(), "status codes chosen below the HTTP layer:\n{}", chosen.join("\n"));
}
