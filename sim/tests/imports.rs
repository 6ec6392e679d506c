//! No import circle in `sim/src`: a module that imports another must not be imported back,
//! directly or through others, so each file can be read (and tested) on top of what it uses.
//!
//! The check reads the sources: every path that starts with `crate::`, `super::` or `self::`
//! (in `use` lines, braces expanded, and inline), and `use child::...` of a declared child
//! module, is an edge from the file it is written in to the file of the longest module that
//! path names (so `use crate::model::Time` is an edge to `model/mod.rs`, and
//! `use crate::model::time::Time` one to `model/time.rs`). Comments are skipped; inline
//! modules (`mod tests { ... }`) resolve `super` from where they are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path (`["model", "time"]`) per file, and each file's text.
type Tree = BTreeMap<Vec<String>, String>;

fn load(dir: &Path, prefix: &[String], tree: &mut Tree) {
    for e in std::fs::read_dir(dir).expect("read sim/src") {
        let p = e.expect("dir entry").path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            let mut sub = prefix.to_vec();
            sub.push(name);
            load(&p, &sub, tree);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let mut m = prefix.to_vec();
            if name != "mod" && name != "lib" {
                m.push(name);
            }
            tree.insert(m, std::fs::read_to_string(&p).expect("read source"));
        }
    }
}

/// The source without comments (strings kept as they are: none of ours holds `//`+path).
fn strip_comments(src: &str) -> String {
    let mut out = String::new();
    let mut in_block = 0;
    for line in src.lines() {
        let mut l = line;
        let mut kept = String::new();
        loop {
            if in_block > 0 {
                match l.find("*/") {
                    Some(i) => {
                        in_block -= 1;
                        l = &l[i + 2..];
                    }
                    None => break,
                }
            } else {
                let line_c = l.find("//");
                let block_c = l.find("/*");
                match (line_c, block_c) {
                    (Some(a), b) if b.is_none_or(|b| a < b) => {
                        kept.push_str(&l[..a]);
                        break;
                    }
                    (_, Some(b)) => {
                        kept.push_str(&l[..b]);
                        in_block += 1;
                        l = &l[b + 2..];
                    }
                    _ => {
                        kept.push_str(l);
                        break;
                    }
                }
            }
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

fn ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths a brace group stands for: `{a::X, b::{Y, Z}, W}` after `prefix`.
fn expand(prefix: &[String], group: &str, out: &mut Vec<Vec<String>>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    for item in items {
        let item = item.trim();
        let (head, rest) = match item.find("::{") {
            Some(i) => (&item[..i], Some(&item[i + 3..item.len() - 1])),
            None => (item, None),
        };
        let mut p = prefix.to_vec();
        p.extend(
            head.split("::")
                .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                .filter(|s| !s.is_empty() && s != "self" && s != "*"),
        );
        match rest {
            Some(g) => expand(&p, g, out),
            None => out.push(p),
        }
    }
}

/// Every module path a file refers to, resolved to absolute segments.
fn references(module: &[String], src: &str) -> Vec<Vec<String>> {
    let src = strip_comments(src);
    let children: BTreeSet<String> = src
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect();
    let chars: Vec<char> = src.chars().collect();
    // The module each brace depth is in (inline `mod x {` opens one).
    let mut scopes: Vec<(Vec<String>, usize)> = vec![(module.to_vec(), 0)];
    let mut depth = 0usize;
    let mut pending_mod: Option<String> = None;
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            depth += 1;
            if let Some(m) = pending_mod.take() {
                let mut p = scopes.last().unwrap().0.clone();
                p.push(m);
                scopes.push((p, depth));
            }
            i += 1;
            continue;
        }
        if c == '}' {
            if scopes.last().is_some_and(|s| s.1 == depth) && scopes.len() > 1 {
                scopes.pop();
            }
            depth = depth.saturating_sub(1);
            i += 1;
            continue;
        }
        if c == ';' {
            pending_mod = None;
        }
        if !ident(c) || (i > 0 && (ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        // A word: read a path `a::b::c` (and a brace group after it).
        let mut j = i;
        while j < chars.len() && (ident(chars[j]) || chars[j] == ':') {
            j += 1;
        }
        let word: String = chars[i..j].iter().collect();
        let here = scopes.last().unwrap().0.clone();
        if word == "mod" {
            let rest: String = chars[j..].iter().take(80).collect();
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|&c| ident(c))
                .collect();
            pending_mod = Some(name);
        }
        let segs: Vec<String> = word.split("::").map(str::to_string).collect();
        let in_use = {
            let before: String = chars[..i].iter().rev().take(12).collect::<String>();
            before
                .chars()
                .rev()
                .collect::<String>()
                .trim_end()
                .ends_with("use")
        };
        let base: Option<Vec<String>> = match segs[0].as_str() {
            "crate" => Some(Vec::new()),
            "super" => {
                let mut p = here.clone();
                let mut k = 0;
                while segs.get(k).is_some_and(|s| s == "super") {
                    p.pop();
                    k += 1;
                }
                let mut full = p;
                full.extend(segs[k..].iter().cloned());
                out_push(&mut out, &chars, j, full);
                i = j;
                continue;
            }
            "self" => Some(here.clone()),
            s if in_use && here == module && children.contains(s) && segs.len() > 1 => {
                let mut p = here.clone();
                p.push(s.to_string());
                let mut full = p;
                full.extend(segs[1..].iter().cloned());
                out_push(&mut out, &chars, j, full);
                i = j;
                continue;
            }
            _ => None,
        };
        if let Some(mut p) = base {
            if segs.len() > 1 {
                p.extend(segs[1..].iter().cloned());
                out_push(&mut out, &chars, j, p);
            }
        }
        i = j;
    }
    out
}

/// A path (its trailing `::` and a following brace group expanded) into `out`.
fn out_push(out: &mut Vec<Vec<String>>, chars: &[char], end: usize, mut p: Vec<String>) {
    p.retain(|s| !s.is_empty());
    if chars.get(end) == Some(&'{') {
        let mut depth = 0;
        let mut k = end;
        while k < chars.len() {
            match chars[k] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        let group: String = chars[end + 1..k.min(chars.len())].iter().collect();
        expand(&p, &group, out);
    } else {
        out.push(p);
    }
}

/// The import graph: file (module path) to the files it imports.
fn graph(tree: &Tree) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    tree.iter()
        .map(|(m, src)| {
            let targets = references(m, src)
                .into_iter()
                .filter_map(|p| {
                    (0..=p.len())
                        .rev()
                        .map(|n| p[..n].to_vec())
                        .find(|prefix| tree.contains_key(prefix))
                })
                .filter(|t| t != m)
                .collect();
            (m.clone(), targets)
        })
        .collect()
}

/// A circle, if there is one: the modules on it, the first repeated at the end.
fn circle(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        n: &Vec<String>,
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c: Vec<String> = stack[i..].iter().map(|m| name(m)).collect();
            c.push(name(n));
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.clone());
        for t in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(t, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.clone());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn sim_src_has_no_import_circle() {
    let mut tree = Tree::new();
    load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut tree,
    );
    assert!(tree.len() > 10, "only {} files read", tree.len());
    let g = graph(&tree);
    // The check sees the edges it must (else it could pass by seeing none).
    let edge = |from: &str, to: &str| {
        let f: Vec<String> = from.split("::").map(str::to_string).collect();
        let t: Vec<String> = to.split("::").map(str::to_string).collect();
        g.get(&f).is_some_and(|s| s.contains(&t))
    };
    assert!(edge("model::modem", "model::client"));
    assert!(edge("model::client", "model::packet"));
    assert!(edge("model::mqtt", "model::packet"));
    assert!(edge("shell::runner", "model"));
    assert!(
        !edge("model::client", "model::mqtt"),
        "the modem side imports the MQTT side"
    );
    assert!(
        !edge("model::mqtt", "model::client"),
        "the MQTT side imports the modem side"
    );
    if let Some(c) = circle(&g) {
        panic!("import circle in sim/src: {}", c.join(" -> "));
    }
    // Every file is a module some parent declares (no file left behind, unread).
    for m in tree.keys().filter(|m| !m.is_empty()) {
        let parent = &tree[&m[..m.len() - 1]];
        let name = m.last().unwrap();
        let declared = strip_comments(parent).lines().any(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            l == format!("mod {name};")
        });
        assert!(
            declared,
            "src: {} is not declared by its parent",
            name_of(m)
        );
    }
}

fn name_of(m: &[String]) -> String {
    name(m)
}

#[test]
fn the_check_finds_a_circle_through_super_braces_and_child_modules() {
    let tree = |files: &[(&str, &str)]| -> Tree {
        files
            .iter()
            .map(|(m, src)| {
                let p = if m.is_empty() {
                    vec![]
                } else {
                    m.split("::").map(str::to_string).collect()
                };
                (p, src.to_string())
            })
            .collect()
    };
    let looped = tree(&[
        ("", "mod a;\nmod b;\n"),
        ("a", "mod c;\nuse c::Thing;\n"),
        ("a::c", "use crate::{x::Y, b::{Z, W}};\n"),
        ("b", "fn f() { super::a::g() }\n"),
    ]);
    assert_eq!(
        circle(&graph(&looped)),
        Some(vec!["a".into(), "a::c".into(), "b".into(), "a".into()])
    );
    let fine = tree(&[
        ("", "mod a;\nmod b;\n"),
        ("a", "// use crate::b::X;\nmod tests { use super::*; }\n"),
        ("b", "use crate::a::Y;\n"),
    ]);
    assert_eq!(circle(&graph(&fine)), None);
}
