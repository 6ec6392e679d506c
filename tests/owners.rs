//! State changes go through the owner's methods: no file of the driver
//! writes a field that a struct of another file declares (`x.field = ...`,
//! `+=`, `|=`, ... also inside a closure the owner hands out, as
//! `update(|s| s.field = 1)` would). A file may write the fields of its own
//! structs, and build another file's struct with a literal.
//!
//! A field counts as the file's own when the file declares or names it in a
//! struct (a field declaration or a struct literal), so a name used in two
//! files is never reported: the check can miss a write, never invent one.
//! `cargo test -p bc26-mqtt --test owners` lists each write with its line.

#[path = "common/source.rs"]
mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use source::{code_only, is_ident, sources};

/// Names that stand before a `:` at the start of a line (after `pub`,
/// `pub(crate)`): struct fields, and fields of struct literals.
fn declared(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let l = line.trim_start();
        let l = l
            .strip_prefix("pub(crate) ")
            .or_else(|| l.strip_prefix("pub "))
            .unwrap_or(l);
        let n = l.bytes().take_while(|&c| is_ident(c)).count();
        if n > 0 && l[n..].trim_start().starts_with(':') && !l[n..].trim_start().starts_with("::") {
            out.insert(l[..n].to_string());
        }
    }
    out
}

/// `.field = `, `.field += ` ... in `code`: (field, line).
fn writes(code: &str) -> Vec<(String, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if c != b'.'
            || b.get(i + 1)
                .is_none_or(|&c| !is_ident(c) || c.is_ascii_digit())
        {
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < b.len() && is_ident(b[end]) {
            end += 1;
        }
        let rest = code[end..].trim_start();
        let assign = ["=", "+=", "-=", "*=", "|=", "&=", "^=", "<<=", ">>="]
            .iter()
            .any(|op| rest.starts_with(op) && !rest.starts_with("==") && !rest.starts_with("=>"));
        if assign {
            let line = code[..i].matches('\n').count() + 1;
            out.push((code[start..end].to_string(), line));
        }
    }
    out
}

/// Every write of a field that only other files declare.
fn foreign_writes(files: &[(PathBuf, String)]) -> Vec<String> {
    let code: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, s)| (p.clone(), code_only(s)))
        .collect();
    let mut owners: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    for (p, c) in &code {
        for f in declared(c) {
            owners.entry(f).or_default().insert(p.clone());
        }
    }
    let mut out = Vec::new();
    for (p, c) in &code {
        for (field, line) in writes(c) {
            if let Some(o) = owners.get(&field) {
                if !o.contains(p) {
                    let o: Vec<String> = o.iter().map(|p| p.display().to_string()).collect();
                    out.push(format!(
                        "src/{}:{line}: writes `{field}` of {}",
                        p.display(),
                        o.join(", ")
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn no_file_writes_the_fields_of_another_files_structs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.len() > 20, "the sources were not found");
    let found = foreign_writes(&files);
    assert!(
        found.is_empty(),
        "state changed outside its owner (add a method to the owner):\n{}",
        found.join("\n")
    );
}

#[test]
fn a_write_through_an_owners_closure_is_found() {
    let files = vec![
        (
            PathBuf::from("table.rs"),
            "pub(crate) struct Settings {\n    pub send_hex: bool,\n    count: u32,\n}\n\
             impl Table { fn set(&self) { self.with(|s| s.send_hex = true); self.count += 1; } }\n"
                .to_string(),
        ),
        (
            PathBuf::from("client.rs"),
            "fn f(t: &Table) {\n    t.update(|s| s.send_hex = true);\n    \
             let x = s.send_hex == true;\n    let y = Settings {\n        send_hex: false,\n    };\n}\n"
                .to_string(),
        ),
        (
            PathBuf::from("stats.rs"),
            "struct Stats {\n    pub overflows: u32,\n}\n// other.overflows = 1;\n".to_string(),
        ),
        (
            PathBuf::from("inbox.rs"),
            "fn g() { stats.count(|s| s.overflows += 1); let _ = \"s.overflows = 2\"; }\n"
                .to_string(),
        ),
    ];
    let found = foreign_writes(&files);
    assert_eq!(
        found,
        ["src/inbox.rs:1: writes `overflows` of stats.rs",],
        "client.rs names `send_hex` in a struct literal, so it counts as its own"
    );
    // Without the literal, client.rs's write is reported.
    let mut files = files;
    files[1].1 = "fn f(t: &Table) {\n    t.update(|s| s.send_hex = true);\n}\n".to_string();
    assert_eq!(
        foreign_writes(&files),
        [
            "src/client.rs:2: writes `send_hex` of table.rs",
            "src/inbox.rs:1: writes `overflows` of stats.rs",
        ]
    );
}
