//! Reading the driver's sources as code: comments and literals blanked
//! (line numbers kept), every `.rs` file under a folder. Shared by
//! `module_graph.rs` and `owners.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The source without comments and string or character literals (each
/// replaced by spaces, so that line numbers stay right).
pub fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(rest) {
            // r"..." / r#"..."# / br#"..."#
            let open = rest.iter().position(|&c| c == b'"').unwrap_or(0) + 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let mut j = i + open;
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            let end = (j + close.len()).min(b.len());
            for &c in &b[i..end] {
                blank(&mut out, c);
            }
            i = end;
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if b[i] == b'\'' && char_literal_len(rest).is_some() {
            let n = char_literal_len(rest).unwrap_or(1);
            out.extend(std::iter::repeat_n(b' ', n));
            i += n;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `r"`, `r#"`, `br"`, `br##"`... at the start of `b` (and not inside an
/// identifier): the number of `#`.
fn raw_string_start(b: &[u8]) -> Option<usize> {
    let b = b.strip_prefix(b"b").unwrap_or(b);
    let b = b.strip_prefix(b"r")?;
    let hashes = b.iter().take_while(|&&c| c == b'#').count();
    (b.get(hashes) == Some(&b'"')).then_some(hashes)
}

/// The length of a character literal at the start of `b` (`'a'`, `'\n'`,
/// `'\''`, `'\u{1F600}'`), or `None` for a lifetime (`'a`).
fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        // The escaped character is never the closing quote.
        let end = b.get(3..)?.iter().position(|&c| c == b'\'')?;
        return Some(end + 4);
    }
    let c = std::str::from_utf8(&b[1..b.len().min(5)])
        .ok()
        .or_else(|| std::str::from_utf8(&b[1..b.len().min(2)]).ok())?
        .chars()
        .next()?;
    let n = c.len_utf8();
    (b.get(1 + n) == Some(&b'\'')).then_some(n + 2)
}

pub fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every `.rs` file under `dir`, as (path relative to `base`, text), sorted.
pub fn sources(dir: &Path, base: &Path, out: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src/")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, base, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).expect("read source");
            let rel = p.strip_prefix(base).expect("under src/").to_path_buf();
            out.push((rel, text));
        }
    }
}
