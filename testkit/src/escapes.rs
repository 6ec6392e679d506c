//! A transcript line's escapes decoded (the format: tests/transcripts/README.md):
//! `\r`, `\n`, `\"`, `\\` and `\xHH`. One home for the driver's transcript
//! player (tests/common/transcript.rs) and the fuzz harness's seed corpus
//! (fuzz/tests/corpus.rs, which includes this file by its path: the fuzz
//! crate cannot depend on the testkit, whose std time driver would clash
//! with the fuzz harness's virtual clock). Plain `std`, no dependency.

/// The bytes a transcript line stands for; panics on an escape the format
/// does not have.
pub fn unescape(s: &str) -> std::vec::Vec<u8> {
    let b = s.as_bytes();
    let mut out = std::vec::Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).expect("hex escape"));
                    i += 2;
                }
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn every_escape_of_the_format_decodes_to_its_byte() {
        assert_eq!(
            unescape(r#"+QMTRECV: 0,1,"a","\"x\"\\\r\n\x1a\x00"#),
            b"+QMTRECV: 0,1,\"a\",\"\"x\"\\\r\n\x1a\x00".to_vec()
        );
    }

    #[test]
    #[should_panic(expected = "unknown escape")]
    fn an_escape_outside_the_format_is_refused() {
        unescape(r"\t");
    }
}
