//! `+QMTRECV` framing, in one place: where a received message's frame
//! starts, its head, where its payload ends, and what is kept of an
//! incomplete one between two reads ([`Progress`]), so that every byte of a
//! long payload is looked at once however the reads cut it. Pure functions
//! on byte slices; the digester calls [`start`] and [`frame`], the router
//! delivers what they find.

use crate::types::limits;
use crate::urc::{parse_int, Ints};

const PREFIX: &[u8] = b"+QMTRECV:";

/// Most wire bytes a `+QMTRECV` payload may have: the receive limit
/// ([`limits::RECV_PAYLOAD`], 1,024 bytes), as text or as hex digits (two
/// per byte). A longer payload is [`Framed::TooLong`].
const fn wire_max(hex: bool) -> usize {
    if hex {
        2 * limits::RECV_PAYLOAD
    } else {
        limits::RECV_PAYLOAD
    }
}

/// Whether the bytes at the head of the buffer are a `+QMTRECV` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// They start with `+QMTRECV:`.
    Frame,
    /// Too few bytes to tell (`+QMTR`): wait for more.
    Unsure,
    /// Something else.
    Other,
}

/// Whether `b` (not empty) starts a `+QMTRECV` frame.
#[inline]
pub(crate) fn start(b: &[u8]) -> Start {
    if b[0] == b'+' && b.len() < PREFIX.len() && PREFIX.starts_with(b) {
        Start::Unsure
    } else if b.starts_with(PREFIX) {
        Start::Frame
    } else {
        Start::Other
    }
}

/// What is known of a frame at the head of the buffer: its head, and how far
/// its payload was scanned (`scanned == 0`: the head is not read yet, see
/// [`Progress::NEW`]). The digester keeps it until the next call; [`frame`]
/// updates it in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    pub head: Head,
    scanned: usize,
}

impl Progress {
    /// Nothing read yet of the frame.
    pub(crate) const NEW: Progress = Progress {
        head: Head {
            client: 0,
            msg_id: 0,
            topic: (0, 0),
            payload: 0,
            length: None,
        },
        scanned: 0,
    };
}

/// What [`frame`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framed {
    /// A whole frame of `len` bytes (through its final CR LF): with `head`
    /// the progress's head, the topic is `buf[head.topic.0..head.topic.1]`,
    /// the payload `buf[head.payload..end]`.
    Complete { end: usize, len: usize },
    /// More bytes are needed: call again with the longer buffer and the
    /// progress (updated in place).
    Incomplete,
    /// Not a well-formed frame.
    Malformed,
    /// A frame whose payload runs past the receive limit (its length field
    /// says so, or no closing `"` CR LF comes within the limit).
    TooLong,
}

/// Frames the `+QMTRECV` at the start of `buf` (which [`start`] said is
/// one), going on from `progress` (what earlier calls kept of the same
/// frame, [`Progress::NEW`] at first; updated in place). `hex(client)`:
/// whether that client receives hex digits.
#[inline]
pub(crate) fn frame(buf: &[u8], progress: &mut Progress, hex: impl FnOnce(u8) -> bool) -> Framed {
    if progress.scanned == 0 {
        match parse_head(buf) {
            Ok(Some(head)) => progress.head = head,
            Ok(None) => return Framed::Incomplete,
            Err(()) => return Framed::Malformed,
        }
    }
    let hex = hex(progress.head.client);
    find_end(buf, progress, hex, wire_max(hex))
}

/// `+QMTRECV: <id>,<msgID>,"` ... up to where the payload starts: kept (in
/// [`Progress`]) while the rest of the frame arrives, so that every byte of
/// a long payload is looked at once (the frame is O(n) however it is cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub client: u8,
    pub msg_id: u32,
    /// The topic: `buf[topic.0..topic.1]`.
    pub topic: (usize, usize),
    /// Where the payload starts.
    pub payload: usize,
    /// The payload length, on firmware that sends one (`"<topic>",<len>,"..."`).
    pub length: Option<usize>,
}

/// The longest header before the topic: `+QMTRECV: 5,4294967295,"`.
const HEADER_MAX: usize = 32;

/// Parses the head of `+QMTRECV: <id>,<msgID>,"<topic>",["<len>,]"` at the
/// start of `buf`. `Ok(None)`: more bytes are needed. `Err(())`: malformed.
///
/// Modules do not escape the topic or the payload: the topic ends at the
/// first `"` followed by a comma (a topic holding `",` is cut there).
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let Some(rest) = buf.strip_prefix(PREFIX) else {
        return if PREFIX.starts_with(buf) {
            Ok(None)
        } else {
            Err(())
        };
    };
    let off = PREFIX.len();
    // <id>,<msgID>," : digits, commas and spaces up to the first quote.
    let window = &rest[..rest.len().min(HEADER_MAX)];
    let Some(q) = memchr::memchr(b'"', window) else {
        let clean = window
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b',' || b == b' ');
        return if clean && window.len() < HEADER_MAX {
            Ok(None)
        } else {
            Err(())
        };
    };
    // Exactly `<id>,<msgID>,`: two integers, each followed by its comma.
    let Some(header) = rest[..q].strip_suffix(b",") else {
        return Err(());
    };
    let mut ints = Ints::new(header);
    let [Some(Some(id)), Some(Some(msg_id)), None] = core::array::from_fn(|_| ints.next()) else {
        return Err(());
    };
    let (Ok(client), Ok(msg_id)) = (u8::try_from(id), u32::try_from(msg_id)) else {
        return Err(());
    };
    let topic_start = off + q + 1;
    let after = &buf[topic_start..];
    let window = &after[..after.len().min(limits::TOPIC + 2)];
    let mut t_end = None;
    for i in memchr::memchr_iter(b'"', window) {
        match window.get(i + 1) {
            Some(b',') => {
                t_end = Some(i);
                break;
            }
            Some(_) => {}
            None => return Ok(None),
        }
    }
    let Some(t_end) = t_end else {
        return if window.len() >= limits::TOPIC + 2
            || memchr::memchr2(b'\r', b'\n', window).is_some()
        {
            Err(())
        } else {
            Ok(None)
        };
    };
    if memchr::memchr2(b'\r', b'\n', &after[..t_end]).is_some() {
        return Err(());
    }
    let topic = (topic_start, topic_start + t_end);
    let after_comma = topic_start + t_end + 2;
    match buf.get(after_comma) {
        None => Ok(None),
        Some(b'"') => Ok(Some(Head {
            client,
            msg_id,
            topic,
            payload: after_comma + 1,
            length: None,
        })),
        Some(d) if d.is_ascii_digit() => {
            let digits = &buf[after_comma..];
            let window = &digits[..digits.len().min(6)];
            let Some(comma) = memchr::memchr(b',', window) else {
                return if window.len() < 6 && window.iter().all(u8::is_ascii_digit) {
                    Ok(None)
                } else {
                    Err(())
                };
            };
            let n = parse_int(&window[..comma])
                .and_then(|v| usize::try_from(v).ok())
                .ok_or(())?;
            match digits.get(comma + 1) {
                None => Ok(None),
                Some(b'"') => Ok(Some(Head {
                    client,
                    msg_id,
                    topic,
                    payload: after_comma + comma + 2,
                    length: Some(n),
                })),
                Some(_) => Err(()),
            }
        }
        Some(_) => Err(()),
    }
}

/// Looks for the end of the payload of the frame whose head is `head`, from
/// `scanned` on (bytes before it were looked at by an earlier call).
///
/// - A payload length, when the firmware sends one, frames it exactly.
/// - Hex payloads hold only hex digits, so neither `"` nor CR: the first of
///   either must be the closing `"` CR LF, else the frame is broken (a lost
///   byte, a cut URC): malformed at the end of its line, never a wait across
///   later lines. Other non-digits are refused when the digits are decoded.
/// - Text payloads are not escaped and may hold quotes, commas and CR LF: the
///   payload ends at the first `"` CR LF (a payload holding `"` CR LF is cut
///   there, which is why the driver receives in hex unless told otherwise).
///
/// `max` bounds the payload (wire bytes).
#[inline(never)]
fn find_end(buf: &[u8], progress: &mut Progress, hex: bool, max: usize) -> Framed {
    let head = progress.head;
    let start = head.payload;
    let from = progress.scanned.max(start);
    let closing = |at: usize| -> Option<bool> {
        // Some(true): `"\r\n` at `at`; None: not enough bytes yet to tell.
        let want = b"\"\r\n";
        let have = buf.get(at..)?;
        let n = have.len().min(3);
        if have[..n] != want[..n] {
            return Some(false);
        }
        if n < 3 {
            None
        } else {
            Some(true)
        }
    };
    // More bytes are needed; bytes before `scanned` cannot end the payload.
    let mut wait = |scanned: usize| {
        progress.scanned = scanned;
        Framed::Incomplete
    };
    if let Some(n) = head.length {
        if n > max {
            return Framed::TooLong;
        }
        return match closing(start + n) {
            Some(true) => Framed::Complete {
                end: start + n,
                len: start + n + 3,
            },
            Some(false) => Framed::Malformed,
            None => wait(buf.len().max(start)),
        };
    }
    let limit = start + max;
    if hex {
        // Hex digits never hold `"` or CR: the first of either ends the
        // payload (found with `memchr2`, many bytes per step). Any other
        // non-digit is caught when the digits are decoded.
        let stop = buf.len().min(limit + 1);
        return match memchr::memchr2(b'"', b'\r', &buf[from..stop]) {
            Some(q) => match closing(from + q) {
                Some(true) => Framed::Complete {
                    end: from + q,
                    len: from + q + 3,
                },
                Some(false) => Framed::Malformed,
                None => wait(from + q),
            },
            None if stop > limit => Framed::TooLong,
            None => wait(stop),
        };
    }
    let stop = buf.len().min(limit + 3);
    let hay = &buf[from..stop];
    for q in memchr::memchr_iter(b'"', hay) {
        let at = from + q;
        if at > limit {
            return Framed::TooLong;
        }
        match closing(at) {
            Some(true) => {
                return Framed::Complete {
                    end: at,
                    len: at + 3,
                }
            }
            Some(false) => {}
            None => return wait(at),
        }
    }
    if stop >= limit + 3 {
        Framed::TooLong
    } else {
        wait(stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole frame at the start of `buf`, as the digester would find it.
    fn whole(buf: &[u8], hex: bool, max: usize) -> Option<(Head, Framed)> {
        let head = parse_head(buf).ok()??;
        Some((head, end_of(buf, head, 0, hex, max).0))
    }

    /// `find_end` from `scanned` on: what it found, and how far it scanned.
    fn end_of(buf: &[u8], head: Head, scanned: usize, hex: bool, max: usize) -> (Framed, usize) {
        let mut p = Progress { head, scanned };
        (find_end(buf, &mut p, hex, max), p.scanned)
    }

    fn payload(buf: &[u8], hex: bool) -> (&[u8], &[u8], usize) {
        match whole(buf, hex, 2048) {
            Some((head, Framed::Complete { end, len })) => (
                &buf[head.topic.0..head.topic.1],
                &buf[head.payload..end],
                len,
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recv_text_payload_with_commas_quotes_and_crlf_ends_at_quote_crlf() {
        let buf = b"+QMTRECV: 0,3,\"a/b\",\"{\"k\":\"v, w\"}\r\nline 2\"\r\nrest";
        let (topic, p, len) = payload(buf, false);
        assert_eq!(topic, b"a/b");
        assert_eq!(p, b"{\"k\":\"v, w\"}\r\nline 2");
        assert_eq!(&buf[len..], b"rest");
        let head = parse_head(buf).unwrap().unwrap();
        assert_eq!((head.client, head.msg_id, head.length), (0, 3, None));
    }

    #[test]
    fn recv_waits_for_its_closing_quote_and_crlf_at_every_cut() {
        for hex in [false, true] {
            let full: &[u8] = if hex {
                b"+QMTRECV: 1,0,\"t\",\"0A0b\"\r\n"
            } else {
                b"+QMTRECV: 1,0,\"t\",\"x\"\r\n"
            };
            for cut in 1..full.len() {
                let part = &full[..cut];
                match parse_head(part) {
                    Ok(None) => {}
                    Ok(Some(h)) => assert!(
                        matches!(end_of(part, h, 0, hex, 1024).0, Framed::Incomplete),
                        "cut {cut}"
                    ),
                    Err(()) => panic!("cut {cut} malformed"),
                }
            }
            assert!(
                matches!(whole(full, hex, 1024), Some((_, Framed::Complete { len, .. })) if len == full.len())
            );
        }
    }

    #[test]
    fn recv_resumed_scans_each_payload_byte_once_and_finds_the_same_end() {
        // Fed a byte at a time, the scan resumes where it stopped: `scanned`
        // only grows, and the frame found is the one found in one piece.
        let mut full = b"+QMTRECV: 0,9,\"t\",\"".to_vec();
        full.extend(core::iter::repeat_n(b'A', 1024));
        full.extend_from_slice(b"\"\r\n");
        for hex in [false, true] {
            let head = parse_head(&full).unwrap().unwrap();
            let mut scanned = head.payload;
            let mut steps = 0;
            for cut in head.payload..=full.len() {
                match end_of(&full[..cut], head, scanned, hex, 1024) {
                    (Framed::Incomplete, s) => {
                        assert!(s >= scanned);
                        steps += s - scanned;
                        scanned = s;
                    }
                    (Framed::Complete { end, len }, _) => {
                        assert_eq!((end, len), (full.len() - 3, full.len()));
                        assert_eq!(cut, full.len());
                    }
                    (Framed::Malformed | Framed::TooLong, _) => panic!("malformed at {cut}"),
                }
            }
            assert!(
                steps <= 1024 + 3,
                "{steps} bytes scanned for a 1024-byte payload"
            );
        }
    }

    #[test]
    fn recv_hex_payload_broken_by_a_lost_byte_is_malformed_at_once() {
        // The closing quote lost: the CR LF that follows is not a hex digit.
        let buf = b"+QMTRECV: 0,1,\"t\",\"414243\r\n\r\nOK\r\n";
        assert_eq!(whole(buf, true, 1024).map(|f| f.1), Some(Framed::Malformed));
        // A text frame in the same state waits (the quiet gap ends the wait).
        assert!(matches!(
            whole(buf, false, 1024),
            Some((_, Framed::Incomplete))
        ));
    }

    #[test]
    fn recv_with_a_payload_length_is_framed_by_it() {
        let buf = b"+QMTRECV: 0,1,\"t/x\",8,\"a\"\r\n\"b,c\"\r\nOK";
        let (topic, p, len) = payload(buf, false);
        assert_eq!(topic, b"t/x");
        assert_eq!(p, b"a\"\r\n\"b,c");
        assert_eq!(&buf[len..], b"OK");
        let full = b"+QMTRECV: 0,1,\"t\",3,\"abc\"\r\n";
        for cut in 1..full.len() {
            let part = &full[..cut];
            if let Ok(Some(h)) = parse_head(part) {
                assert!(
                    matches!(end_of(part, h, 0, false, 1024).0, Framed::Incomplete),
                    "cut {cut}"
                );
            }
        }
        assert_eq!(
            whole(b"+QMTRECV: 0,1,\"t\",2,\"abc\"\r\n", false, 1024).map(|f| f.1),
            Some(Framed::Malformed)
        );
        assert_eq!(
            whole(b"+QMTRECV: 0,1,\"t\",5000,\"abc\"\r\n", false, 1024).map(|f| f.1),
            Some(Framed::TooLong)
        );
    }

    /// [`frame`] on a frame nothing was read of yet.
    fn frame_new(buf: &[u8], hex: impl FnOnce(u8) -> bool) -> Framed {
        let mut progress = Progress::NEW;
        frame(buf, &mut progress, hex)
    }

    /// A frame with a payload of `n` wire bytes of `b`.
    fn frame_of(n: usize, b: u8, length: bool) -> std::vec::Vec<u8> {
        let mut f = if length {
            std::format!("+QMTRECV: 0,1,\"t\",{n},\"").into_bytes()
        } else {
            b"+QMTRECV: 0,1,\"t\",\"".to_vec()
        };
        f.extend(core::iter::repeat_n(b, n));
        f.extend_from_slice(b"\"\r\n");
        f
    }

    #[test]
    fn the_receive_limit_is_1024_bytes_as_text_and_as_hex_digits() {
        for length in [false, true] {
            let hex = |_| true;
            let text = |_| false;
            let at = frame_of(limits::RECV_PAYLOAD, b'a', length);
            assert!(matches!(frame_new(&at, text), Framed::Complete { .. }));
            let over = frame_of(limits::RECV_PAYLOAD + 1, b'a', length);
            assert_eq!(
                frame_new(&over, text),
                Framed::TooLong,
                "text, length {length}"
            );
            // What the old limit let through as text: 2,048 bytes.
            let old = frame_of(2 * limits::RECV_PAYLOAD, b'a', length);
            assert_eq!(frame_new(&old, text), Framed::TooLong);
            let at = frame_of(2 * limits::RECV_PAYLOAD, b'A', length);
            assert!(matches!(frame_new(&at, hex), Framed::Complete { .. }));
            let over = frame_of(2 * limits::RECV_PAYLOAD + 2, b'A', length);
            assert_eq!(
                frame_new(&over, hex),
                Framed::TooLong,
                "hex, length {length}"
            );
        }
    }

    #[test]
    fn recv_without_quotes_or_with_bad_ids_is_malformed() {
        assert_eq!(parse_head(b"+QMTRECV: 1,7\r\nOK\r\n"), Err(()));
        assert_eq!(parse_head(b"+QMTRECV: a,0,\"t\",\"x\"\r\n"), Err(()));
        assert_eq!(parse_head(b"+QMTRECV: 0,0,\"t\r\n\",\"x\"\r\n"), Err(()));
        assert_eq!(parse_head(b"+QMTRECX: 0"), Err(()));
        assert_eq!(parse_head(b"+QMTRE"), Ok(None));
    }

    #[test]
    fn recv_longer_than_the_limit_is_too_long_not_waited_for() {
        let mut v = b"+QMTRECV: 0,0,\"t\",\"".to_vec();
        v.extend_from_slice(&[b'a'; 20]);
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(&[b'b'; 20]);
        assert_eq!(whole(&v, false, 16).map(|f| f.1), Some(Framed::TooLong));
        assert_eq!(whole(&v, true, 16).map(|f| f.1), Some(Framed::TooLong));
    }

    #[test]
    fn start_tells_a_frame_from_a_cut_prefix_and_other_lines() {
        assert_eq!(start(b"+QMTRECV: 0,1"), Start::Frame);
        assert_eq!(start(b"+QMTR"), Start::Unsure);
        assert_eq!(start(b"+QMTSTAT: 0,1"), Start::Other);
        assert_eq!(start(b"OK"), Start::Other);
    }

    #[test]
    fn a_frame_fed_byte_by_byte_resumes_from_its_progress_and_ends_once() {
        for (hex, full) in [
            (false, &b"+QMTRECV: 1,7,\"t/x\",\"a\r\nb\"\r\nrest"[..]),
            (true, &b"+QMTRECV: 1,7,\"t/x\",\"6869\"\r\nrest"[..]),
        ] {
            let mut progress = Progress::NEW;
            let mut found = None;
            for cut in 1..=full.len() {
                match frame(&full[..cut], &mut progress, |c| {
                    assert_eq!(c, 1);
                    hex
                }) {
                    Framed::Incomplete => {}
                    Framed::Complete { end, len } => {
                        found = Some((cut, progress.head, end, len));
                        break;
                    }
                    Framed::Malformed | Framed::TooLong => panic!("malformed at {cut}"),
                }
            }
            let (cut, head, end, len) = found.expect("a whole frame");
            assert_eq!(&full[len..], b"rest");
            assert_eq!(cut, len, "complete as soon as its CR LF came");
            assert_eq!(&full[head.topic.0..head.topic.1], b"t/x");
            let want: &[u8] = if hex { b"6869" } else { b"a\r\nb" };
            assert_eq!(&full[head.payload..end], want);
            assert_eq!((head.client, head.msg_id), (1, 7));
        }
    }
}
