//! No import circle between the driver's modules: `state.rs` composes the
//! owners, the owners build on the ground floor (`sync.rs`, `stats.rs`,
//! `rx_clock.rs`), and nothing imports back up.
//!
//! The graph's nodes are the crate's top-level modules (`src/x.rs`, or the
//! directory `src/x/` as one module: `supervisor/` with its outbox counts as
//! `supervisor`); an edge is any `crate::` path in the code of one module that
//! names another: `use crate::a::B;`, `use crate::{a, b::C};`, `crate::a::f()`
//! in an expression, `$crate::` in a macro, `super::` from a file in a
//! directory, or an item the crate root re-exports (`crate::Config` is
//! `config`). Comments (doc links included) and string literals are not code.
//!
//! `cargo test -p bc26-mqtt --test module_graph` fails on a circle and prints
//! it, with the line that makes each step.

#[path = "common/source.rs"]
mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use source::{code_only, is_ident, sources};

/// One import: `from` names `to` at `file:line`.
#[derive(Debug, Clone)]
struct Edge {
    to: String,
    at: String,
}

type Graph = BTreeMap<String, Vec<Edge>>;

/// The first segment of each path that starts at `at` (just after
/// `crate::`): `a` for `a::b`, `a`, `b` for `{a, b::c, d::{e}}`.
fn first_segments(code: &str, at: usize) -> Vec<String> {
    let b = code.as_bytes();
    let mut i = at;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if b.get(i) == Some(&b'{') {
        // The top-level entries of the group.
        let mut out = Vec::new();
        let mut depth = 0;
        let mut expect = true;
        i += 1;
        while i < b.len() {
            match b[i] {
                b'{' => depth += 1,
                b'}' if depth == 0 => break,
                b'}' => depth -= 1,
                b',' if depth == 0 => expect = true,
                c if expect && depth == 0 && is_ident(c) => {
                    let s = i;
                    while i < b.len() && is_ident(b[i]) {
                        i += 1;
                    }
                    out.push(code[s..i].to_string());
                    expect = false;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        return out;
    }
    let s = i;
    while i < b.len() && is_ident(b[i]) {
        i += 1;
    }
    if i > s {
        vec![code[s..i].to_string()]
    } else {
        Vec::new()
    }
}

/// Every module (or root re-export) a file's code names, with its line.
/// `module` is the file's module path (`["supervisor", "outbox"]`).
fn references(code: &str, module: &[String]) -> Vec<(String, usize)> {
    let b = code.as_bytes();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = code[from..].find("crate::") {
        let at = from + k;
        from = at + "crate::".len();
        // `crate::` as a path start (also `$crate::`), not `my_crate::`.
        if at > 0 && is_ident(b[at - 1]) {
            continue;
        }
        for seg in first_segments(code, from) {
            out.push((seg, line_of(at)));
        }
    }
    // `super::` climbs from the file's module: a file in a directory that
    // reaches a sibling of its top-level module names that sibling.
    from = 0;
    while let Some(k) = code[from..].find("super::") {
        let at = from + k;
        from = at + "super::".len();
        if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b':') {
            continue; // counted with the `super::` that starts the chain
        }
        let mut up = 1;
        while code[from..].starts_with("super::") {
            up += 1;
            from += "super::".len();
        }
        if up >= module.len() {
            for seg in first_segments(code, from) {
                out.push((seg, line_of(at)));
            }
        }
    }
    out
}

/// The root's re-exports: `pub use config::Config;` makes `crate::Config`
/// an edge to `config`.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let code = code_only(lib);
    let mut map = BTreeMap::new();
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(path) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let path = path.trim();
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        let rest = rest.trim();
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group.trim_end_matches('}').split(',').collect(),
            None => vec![rest],
        };
        for n in names {
            let n = n.split("::").last().unwrap_or("").trim();
            let n = n.rsplit(" as ").next().unwrap_or(n).trim();
            if !n.is_empty() {
                map.insert(n.to_string(), module.trim().to_string());
            }
        }
    }
    map
}

/// The module graph of the sources `files` (path relative to `src/`, text).
fn graph(files: &[(PathBuf, String)]) -> Graph {
    let lib = files
        .iter()
        .find(|(p, _)| p == Path::new("lib.rs"))
        .map(|(_, s)| s.as_str())
        .unwrap_or("");
    let reexports = root_reexports(lib);
    let module_path = |p: &Path| -> Vec<String> {
        let mut parts: Vec<String> = p
            .with_extension("")
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        parts
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(p, _)| module_path(p))
        .filter(|m| m.first().is_some_and(|f| f != "lib"))
        .map(|m| m[0].clone())
        .collect();
    let mut g = Graph::new();
    for m in &modules {
        g.entry(m.clone()).or_default();
    }
    for (path, text) in files {
        let module = module_path(path);
        let Some(top) = module.first().filter(|t| modules.contains(*t)) else {
            continue; // the crate root: it declares every module
        };
        for (name, line) in references(&code_only(text), &module) {
            let to = if modules.contains(&name) {
                name
            } else if let Some(m) = reexports.get(&name) {
                m.clone()
            } else {
                continue; // a root item that is not a module (`crate::new`)
            };
            if &to != top {
                g.entry(top.clone()).or_default().push(Edge {
                    to,
                    at: format!("src/{}:{line}", path.display()),
                });
            }
        }
    }
    g
}

/// A circle in `g`, as the modules along it (first = last) with the line of
/// each step; `None` if there is none.
fn find_cycle(g: &Graph) -> Option<Vec<(String, String)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        g: &Graph,
        n: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<(String, String)>,
    ) -> Option<Vec<(String, String)>> {
        marks.insert(n.to_string(), Mark::OnPath);
        for e in g.get(n).into_iter().flatten() {
            match marks.get(&e.to).copied().unwrap_or(Mark::New) {
                Mark::OnPath => {
                    let start = path.iter().position(|(m, _)| *m == e.to).unwrap_or(0);
                    let mut cycle: Vec<(String, String)> = path[start..].to_vec();
                    cycle.push((n.to_string(), e.at.clone()));
                    cycle.push((e.to.clone(), String::new()));
                    return Some(cycle);
                }
                Mark::New => {
                    path.push((n.to_string(), e.at.clone()));
                    if let Some(c) = visit(g, &e.to, marks, path) {
                        return Some(c);
                    }
                    path.pop();
                }
                Mark::Done => {}
            }
        }
        marks.insert(n.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if marks.get(n).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(g, n, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn show(cycle: &[(String, String)]) -> String {
    let names: Vec<&str> = cycle.iter().map(|(m, _)| m.as_str()).collect();
    let mut s = names.join(" -> ");
    for w in cycle.windows(2) {
        s.push_str(&format!("\n  {} -> {}: {}", w[0].0, w[1].0, w[0].1));
    }
    s
}

#[test]
fn the_driver_has_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let g = graph(&files);
    // The measurement itself: the owners and the composition are there.
    for (from, to) in [
        ("state", "channel"),
        ("channel", "sync"),
        ("supervisor", "ring"),
    ] {
        assert!(
            g[from].iter().any(|e| e.to == to),
            "expected the edge {from} -> {to}: the parser is broken"
        );
    }
    if let Some(c) = find_cycle(&g) {
        panic!("import circle in src/: {}", show(&c));
    }
}

fn synthetic(files: &[(&str, &str)]) -> Graph {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, s)| (PathBuf::from(p), s.to_string()))
        .collect();
    graph(&files)
}

#[test]
fn a_circle_is_found_and_reported_with_its_lines() {
    let g = synthetic(&[
        ("lib.rs", "mod a; mod b; mod c; pub use c::Thing;"),
        ("a.rs", "use crate::{b::X, other};\n"),
        (
            "b.rs",
            "// use crate::a; (a comment)\nfn f() { crate::Thing::new(); }\n",
        ),
        ("c/mod.rs", "mod d;\n"),
        ("c/d.rs", "\n\nuse super::super::a::Y;\n"),
    ]);
    let c = find_cycle(&g).expect("a -> b -> c -> a is a circle");
    let names: Vec<&str> = c.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names.first(), names.last(), "{names:?}");
    let set: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(set, BTreeSet::from(["a", "b", "c"]));
    let text = show(&c);
    assert!(text.contains("src/b.rs:2"), "{text}");
    assert!(text.contains("src/c/d.rs:3"), "{text}");
    assert!(text.contains("src/a.rs:1"), "{text}");
}

#[test]
fn comments_strings_and_lifetimes_are_not_imports() {
    let g = synthetic(&[
        ("lib.rs", "mod a; mod b;"),
        (
            "a.rs",
            "use crate::b;\nfn f<'x>(s: &'x str) -> char { let _ = \"crate::b\"; 'a' }\n",
        ),
        (
            "b.rs",
            "/// [`A`](crate::a::A)\n/* crate::a */ const S: &str = r#\"crate::a\"#; const C: char = '\"'; fn g() { let _ = \"crate::a\"; }",
        ),
    ]);
    assert!(find_cycle(&g).is_none(), "{g:?}");
    assert_eq!(g["a"].len(), 1);
    assert!(g["b"].is_empty(), "{:?}", g["b"]);
}

#[test]
fn nested_groups_and_macro_paths_count() {
    let g = synthetic(&[
        ("lib.rs", "mod a; mod b; mod c;"),
        ("a.rs", "use crate::{\n    b::{X, Y},\n    c,\n};"),
        ("b.rs", "macro_rules! m { () => { $crate::c::Z } }"),
        ("c.rs", "fn h() -> char { '\\'' }"),
    ]);
    let to = |m: &str| g[m].iter().map(|e| e.to.as_str()).collect::<Vec<_>>();
    assert_eq!(to("a"), ["b", "c"]);
    assert_eq!(to("b"), ["c"]);
    assert!(to("c").is_empty());
    assert!(find_cycle(&g).is_none());
}
