//! The README's quick start is the example's code, word for word.

#[test]
fn readme_quick_start_is_the_quickstart_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/quickstart.rs");
    let section = |text: &'static str, begin: &str, end: &str| -> &'static str {
        let b = text.find(begin).expect("begin marker") + begin.len();
        let e = b + text[b..].find(end).expect("end marker");
        &text[b..e]
    };
    let from_example = section(example, "// quick-start begin\n", "// quick-start end");
    let from_readme = section(readme, "```rust,ignore\n", "```");
    assert_eq!(from_readme, from_example);
    assert!(from_example.contains("bc26_mqtt::new("));
    assert!(from_example.contains("events.next().await"));
}
