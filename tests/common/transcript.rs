//! Replays the byte-exact modem transcripts of `tests/transcripts` (format in
//! its README).

use super::escapes::unescape;
use super::{show, Fake};
use std::collections::HashMap;
use std::vec::Vec;

#[derive(Debug, Clone)]
pub enum Step {
    Host(Vec<u8>),
    Modem(Vec<u8>),
}

/// Parses a transcript. Pauses are dropped: the driver's result must not
/// depend on timing, only on the order of the bytes.
pub fn parse(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("> ") {
            steps.push(Step::Host(unescape(rest)));
        } else if let Some(rest) = line.strip_prefix("< ") {
            steps.push(Step::Modem(unescape(rest)));
        } else if line == "<" || line == ">" {
            panic!("empty transcript line");
        }
    }
    steps
}

/// Total modem bytes in a transcript.
pub fn modem_len(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| if let Step::Modem(b) = s { b.len() } else { 0 })
        .sum()
}

/// Where the modem's byte stream is cut into separate reads, besides the
/// places where the host speaks.
#[derive(Debug, Clone, Copy)]
pub enum Cuts {
    /// The modem bytes between two host lines arrive in one read.
    Whole,
    /// One more cut at this offset of the whole modem stream.
    At(usize),
    /// Every byte is its own read.
    Every,
}

/// The field index of the msgID in the commands that carry one.
fn msg_id_field(line: &[u8]) -> Option<usize> {
    for p in [&b"AT+QMTSUB="[..], b"AT+QMTUNS=", b"AT+QMTPUB="] {
        if line.starts_with(p) && line.get(p.len()).is_some_and(u8::is_ascii_digit) {
            return Some(1);
        }
    }
    None
}

fn split_fields(line: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let eq = line.iter().position(|&b| b == b'=' || b == b':').unwrap();
    let head = line[..=eq].to_vec();
    let fields = line[eq + 1..]
        .split(|&b| b == b',')
        .map(|f| f.to_vec())
        .collect();
    (head, fields)
}

/// Plays the modem's side of `steps`. The driver allocates its own msgIDs, so
/// a host line's msgID may differ from the transcript's: the player checks the
/// rest of the line byte for byte, learns the mapping, and uses it in the
/// modem's later `+QMTSUB/UNS/PUB` lines.
pub async fn play(fake: &mut Fake, steps: &[Step], cuts: Cuts) {
    let mut ids: HashMap<(u8, Vec<u8>), Vec<u8>> = HashMap::new();
    let mut offset = 0usize;
    let mut i = 0;
    while i < steps.len() {
        match &steps[i] {
            Step::Host(want) => {
                if let Some(k) = msg_id_field(want) {
                    // The driver's line, and the transcript's, without their CR.
                    let got = fake.line().await;
                    let line_len = want.iter().position(|&b| b == b'\r').unwrap() + 1;
                    let (wh, wf) = split_fields(&want[..line_len - 1]);
                    let (gh, gf) = split_fields(&got[..got.len() - 1]);
                    assert_eq!(show(&gh), show(&wh), "command");
                    assert_eq!(gf.len(), wf.len(), "fields of {}", show(&got));
                    for (j, (g, w)) in gf.iter().zip(wf.iter()).enumerate() {
                        if j != k {
                            assert_eq!(show(g), show(w), "field {j} of {}", show(&got));
                        }
                    }
                    let client = wf[0][0] - b'0';
                    ids.insert((client, wf[k].clone()), gf[k].clone());
                    // Anything after the line's CR in the same step.
                    if want.len() > line_len {
                        fake.expect(&want[line_len..]).await;
                    }
                } else {
                    fake.expect(want).await;
                }
                i += 1;
            }
            Step::Modem(_) => {
                // Gather the modem bytes up to the next host line.
                let mut seg = Vec::new();
                while let Some(Step::Modem(b)) = steps.get(i) {
                    seg.extend_from_slice(&rewrite(b, &ids));
                    i += 1;
                }
                let start = offset;
                offset += seg.len();
                match cuts {
                    Cuts::Whole => fake.send(&seg).await,
                    Cuts::Every => fake.send_bytewise(&seg).await,
                    Cuts::At(k) if k > start && k < offset => {
                        fake.send(&seg[..k - start]).await;
                        fake.send(&seg[k - start..]).await;
                    }
                    Cuts::At(_) => fake.send(&seg).await,
                }
            }
        }
    }
}

/// Replaces transcript msgIDs by the driver's in `+QMTSUB/UNS/PUB: <id>,<msgID>,...` lines.
fn rewrite(bytes: &[u8], ids: &HashMap<(u8, Vec<u8>), Vec<u8>>) -> Vec<u8> {
    for p in [&b"+QMTSUB: "[..], b"+QMTUNS: ", b"+QMTPUB: "] {
        if let Some(pos) = bytes.windows(p.len()).position(|w| w == p) {
            let start = pos + p.len();
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'\r')
                .map_or(bytes.len(), |e| start + e);
            let fields: Vec<&[u8]> = bytes[start..end].split(|&b| b == b',').collect();
            if fields.len() >= 2 && fields[0].len() == 1 && fields[0][0].is_ascii_digit() {
                let client = fields[0][0] - b'0';
                if let Some(new) = ids.get(&(client, fields[1].to_vec())) {
                    let mut out = bytes[..start].to_vec();
                    out.extend_from_slice(fields[0]);
                    out.push(b',');
                    out.extend_from_slice(new);
                    for f in &fields[2..] {
                        out.push(b',');
                        out.extend_from_slice(f);
                    }
                    out.extend_from_slice(&bytes[end..]);
                    return out;
                }
            }
        }
    }
    bytes.to_vec()
}

/// Plays the modem's side of `steps` with byte `drop_at` of the modem's
/// stream lost, as a UART overrun loses one, and without asserting anything
/// of the host: the driver may take another path (a timeout, the fence's
/// bare `AT`, which this player answers `OK`). It waits for each host line
/// at most `patience`.
pub async fn play_lossy(
    fake: &mut Fake,
    steps: &[Step],
    drop_at: usize,
    patience: embassy_time::Duration,
) {
    let mut ids: HashMap<(u8, Vec<u8>), Vec<u8>> = HashMap::new();
    let mut offset = 0usize;
    let mut i = 0;
    while i < steps.len() {
        match &steps[i] {
            Step::Host(want) => {
                let until = embassy_time::Instant::now() + patience;
                loop {
                    let left = until.saturating_duration_since(embassy_time::Instant::now());
                    let Ok(got) = embassy_time::with_timeout(left, fake.unit()).await else {
                        break;
                    };
                    let probe = got.ends_with(b"AT\r") && got.len() <= 5;
                    if probe || got == [0x1b] {
                        fake.send(b"\r\nOK\r\n").await;
                        continue;
                    }
                    if got == b"\r" {
                        continue;
                    }
                    if let Some(k) = msg_id_field(want) {
                        let line_len = want.iter().position(|&b| b == b'\r').unwrap() + 1;
                        let (_, wf) = split_fields(&want[..line_len - 1]);
                        if got.contains(&b'=') {
                            let (_, gf) = split_fields(&got[..got.len() - 1]);
                            if let (Some(w), Some(g)) = (wf.get(k), gf.get(k)) {
                                ids.insert((wf[0][0] - b'0', w.clone()), g.clone());
                            }
                        }
                    }
                    break;
                }
                i += 1;
            }
            Step::Modem(_) => {
                let mut seg = Vec::new();
                while let Some(Step::Modem(b)) = steps.get(i) {
                    seg.extend_from_slice(&rewrite(b, &ids));
                    i += 1;
                }
                let start = offset;
                offset += seg.len();
                if drop_at >= start && drop_at < offset {
                    seg.remove(drop_at - start);
                }
                fake.send(&seg).await;
            }
        }
    }
}
