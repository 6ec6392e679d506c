//! The quick start of the README and of the crate documentation (what docs.rs
//! shows) is the example's code, word for word: `examples/quickstart.rs` is
//! compiled by `cargo test`, so the code the documents show compiles too.

const EXAMPLE: &str = include_str!("../examples/quickstart.rs");
const README: &str = include_str!("../README.md");
const CRATE_DOC: &str = include_str!("../docs/crate.md");
const LIB_RS: &str = include_str!("../src/lib.rs");
const SUPERVISED: &str = include_str!("../examples/supervised.rs");

/// The text between `begin` and the next `end` after it.
fn section<'t>(text: &'t str, begin: &str, end: &str) -> &'t str {
    let b = text.find(begin).unwrap_or_else(|| panic!("no {begin:?}")) + begin.len();
    let e = b + text[b..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?} after {begin:?}"));
    &text[b..e]
}

/// The example's part between its quick-start markers.
fn example_quick_start() -> &'static str {
    let code = section(EXAMPLE, "// quick-start begin\n", "// quick-start end");
    assert!(code.contains("bc26_mqtt::new("));
    assert!(code.contains("events.next(&mut buf).await"));
    code
}

/// The first `rust,ignore` block after the document's "Quick start" heading.
fn document_quick_start<'t>(doc: &'t str, heading: &str) -> &'t str {
    let at = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} heading"));
    section(&doc[at..], "```rust,ignore\n", "```")
}

#[test]
fn readme_quick_start_is_the_quickstart_example() {
    assert_eq!(
        document_quick_start(README, "\n## Quick start\n"),
        example_quick_start()
    );
}

#[test]
fn crate_doc_quick_start_is_the_quickstart_example() {
    assert_eq!(
        document_quick_start(CRATE_DOC, "\n# Quick start\n"),
        example_quick_start()
    );
}

#[test]
fn crate_doc_supervisor_section_is_the_supervised_example() {
    let code = section(SUPERVISED, "// supervised begin\n", "// supervised end");
    assert!(code.contains("supervisor::new("));
    assert_eq!(
        document_quick_start(CRATE_DOC, "\n# Keeping a client online\n"),
        code
    );
}

#[test]
fn the_crate_doc_checked_here_is_the_one_lib_rs_includes() {
    assert!(
        LIB_RS
            .lines()
            .any(|l| l.trim() == r#"#![doc = include_str!("../docs/crate.md")]"#),
        "src/lib.rs no longer includes docs/crate.md as the crate documentation"
    );
}
