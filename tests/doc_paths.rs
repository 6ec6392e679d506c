//! The documents name only what exists: every repository path a Markdown
//! document names (in `code` or as a link) is a file or folder of the
//! repository, and every test function the README's promise table names is
//! in the file named beside it. A rename or a deleted file that a document
//! still names fails here, with the document and the line.
//!
//! A path is resolved from the repository root, then from the document's own
//! folder (`host/tests/qemu.rs` in `examples/qemu/README.md`); a bare file
//! name (`state.rs`) must be a file somewhere in the repository. A token whose
//! first folder is neither at the root nor beside the document (an MQTT topic
//! such as `bc26/demo/cmd`, build output under `target/`) is not a path of the
//! repository and is not checked; nor are absolute paths, globs, URLs,
//! paths under a `target` folder and fenced code blocks.
//!
//! The two budgets of the front documents are checked here too: the README at
//! most 10,000 bytes, the crate documentation (`docs/crate.md`, what docs.rs
//! shows) at most 7,000.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Markdown documents checked (the CHANGELOG is history: it names files
/// as they were).
fn documents() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut docs: Vec<PathBuf> = [
        "README.md",
        "CONTRIBUTING.md",
        "bench/README.md",
        "cli/README.md",
        "sim/README.md",
        "world/README.md",
        "fuzz/README.md",
        "examples/README.md",
        "examples/qemu/README.md",
        "tests/transcripts/README.md",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    for d in &docs {
        assert!(d.is_file(), "{} is listed here but missing", d.display());
    }
    docs
}

/// Every file and folder of the repository (relative paths), without build
/// output (`target/`) and git's own folder.
fn tree() -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable folder") {
            let path = entry.expect("folder entry").path();
            let name = path.file_name().unwrap_or_default();
            if name == "target" || name == ".git" {
                continue;
            }
            out.insert(path.strip_prefix(root).expect("under root").to_owned());
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(Path::new(ROOT), Path::new(ROOT), &mut out);
    out
}

/// The inline code spans (`` `x` ``) and link targets (`](x)`) of a
/// document, outside fenced code blocks, with their line numbers.
fn mentions(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find('`') {
            let after = &rest[i + 1..];
            let Some(j) = after.find('`') else { break };
            out.push((n + 1, after[..j].to_owned()));
            rest = &after[j + 1..];
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(j) = after.find(')') else { break };
            out.push((n + 1, after[..j].to_owned()));
            rest = &after[j + 1..];
        }
    }
    out
}

const EXTENSIONS: &[&str] = &[
    "rs", "md", "toml", "sh", "py", "json", "txt", "lock", "dict", "x", "ld",
];

/// The token as a repository path, if it looks like one: path characters
/// only, and a folder separator or a known file extension. Anchors
/// (`#section`) and line numbers (`:12`) are cut off.
fn as_path(token: &str) -> Option<&str> {
    let t = token.split('#').next()?;
    let t = match t.rsplit_once(':') {
        Some((p, line)) if line.chars().all(|c| c.is_ascii_digit()) => p,
        _ => t,
    };
    let t = t.trim_end_matches('/');
    if t.is_empty()
        || t.starts_with('/')
        || t.contains("://")
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    {
        return None;
    }
    let has_ext = Path::new(t)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e));
    (t.contains('/') || has_ext).then_some(t)
}

/// `dir/rel` with `..` and `.` resolved (None when it leaves the root).
fn join(dir: &Path, rel: &str) -> Option<PathBuf> {
    let mut out = dir.to_owned();
    for c in Path::new(rel).components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    Some(out)
}

/// Why `path` (as the document in `dir` names it) is not in the tree, if it is not.
fn check(tree: &BTreeSet<PathBuf>, dir: &Path, path: &str) -> Option<String> {
    if !path.contains('/') {
        let found = tree
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == path));
        return (!found).then(|| format!("no file named {path} in the repository"));
    }
    if path.split('/').any(|c| c == "target") {
        return None; // build output: written by a build, never committed
    }
    let first = path.split('/').next().unwrap_or_default();
    let candidates: Vec<PathBuf> = [Path::new(""), dir]
        .iter()
        .filter_map(|base| join(base, path))
        .collect();
    let rooted = |base: &Path| {
        let top = join(base, first).unwrap_or_default();
        first == ".." || tree.contains(&top)
    };
    if !rooted(Path::new("")) && !rooted(dir) {
        return None; // not a repository path (a topic, build output)
    }
    if candidates.iter().any(|c| tree.contains(c)) {
        return None;
    }
    Some(format!(
        "{path}: not in the repository, nor beside the document"
    ))
}

#[test]
fn every_repository_path_the_documents_name_exists() {
    let tree = tree();
    let mut missing = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("readable document");
        let rel = doc.strip_prefix(ROOT).expect("under root").to_owned();
        let dir = rel.parent().unwrap_or(Path::new("")).to_owned();
        for (line, token) in mentions(&text) {
            if let Some(path) = as_path(&token) {
                if let Some(why) = check(&tree, &dir, path) {
                    missing.push(format!("{}:{line}: {why}", rel.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documents name paths that do not exist:\n{}",
        missing.join("\n")
    );
}

/// In the README's promise table: `` `tests/x.rs`: `name`, `other` ``: each
/// name is a function of that file.
#[test]
fn every_test_the_readme_promises_name_is_in_its_file() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let at = readme
        .find("\n## What it promises")
        .expect("the README's promise table");
    let table = &readme[at + 1..];
    let table = &table[..table[3..].find("\n## ").map_or(table.len(), |e| e + 3)];
    let mut named = 0;
    let mut missing = Vec::new();
    for line in table.lines().filter(|l| l.starts_with('|')) {
        for cell in line.split(';') {
            let Some((file, names)) = cell.split_once("`: ") else {
                continue;
            };
            let file = file.rsplit('`').next().unwrap_or_default().trim();
            let source = std::fs::read_to_string(Path::new(ROOT).join(file))
                .unwrap_or_else(|_| panic!("README names {file}, which is missing"));
            for name in names.split(", ") {
                let name = name.trim().trim_end_matches('|').trim().trim_matches('`');
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                named += 1;
                if !source.contains(&format!("fn {name}(")) {
                    missing.push(format!("{file}: fn {name}"));
                }
            }
        }
    }
    assert!(
        named >= 5,
        "the promise table names {named} tests: parsed wrong?"
    );
    assert!(
        missing.is_empty(),
        "the README names tests that are not there:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_readme_and_the_crate_doc_stay_within_their_budgets() {
    for (doc, max) in [("README.md", 10_000), ("docs/crate.md", 7_000)] {
        let len = std::fs::metadata(Path::new(ROOT).join(doc))
            .expect(doc)
            .len();
        assert!(
            len <= max,
            "{doc} is {len} bytes, over its {max}-byte budget"
        );
    }
}

#[test]
fn a_missing_path_and_a_missing_file_name_are_caught() {
    // The checker itself: a made-up path fails, a topic is not a path.
    let tree = tree();
    let root = Path::new("");
    assert!(check(&tree, root, "tests/common/auto.rs").is_some());
    assert!(check(&tree, root, "no_such_module.rs").is_some());
    assert!(check(&tree, root, "src/lib.rs").is_none());
    assert!(check(&tree, Path::new("cli"), "../docs/power-model.md").is_none());
    assert_eq!(as_path("bc26_mqtt::Modem"), None);
    assert_eq!(as_path("src/lib.rs:12"), Some("src/lib.rs"));
    assert!(check(&tree, root, "bc26/demo/cmd").is_none());
}
