//! The ingress path on the same bytes, two ways:
//!
//! - **driver**: a fake UART reader -> [`Runner::run`](bc26_mqtt::Runner) ->
//!   an [`Events`](bc26_mqtt::Events) subscriber counting `Event::Message`;
//! - **atat**: the same reader -> atat 0.25's stock `Ingress` with
//!   `AtDigester` and a derived `AtatUrc` enum that parses `+QMTRECV` into a
//!   struct holding the payload -> atat's `UrcChannel` -> a subscriber
//!   counting (and, for hex, decoding the payload, as the driver does).
//!
//! The stream is back-to-back `\r\n+QMTRECV: 0,<id>,"<topic>","<payload>"\r\n`
//! frames. Reads are of up to `max_read` bytes, and never more than the
//! ingress buffer has free (2,400 bytes, the driver's default, on both
//! sides); after each read the reader returns `Pending` once, as a UART
//! with nothing more yet, so that the subscriber runs. Both run under the
//! same poll loop ([`poll_loop`]); the clock runs from the first byte of the
//! stream to the last message counted (the driver's one command before it,
//! which sets the receive format, is not timed).

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::Poll;
use std::rc::Rc;
use std::time::{Duration, Instant};

use atat::atat_derive::{AtatResp, AtatUrc};
use atat::{AtDigester, AtatIngress, Ingress, ResponseSlot, UrcChannel};
use bc26_mqtt::{ClientId, Config, DataFormat, Event, State, MESSAGE_MAX};
use embassy_futures::select::{select, Either};

use crate::exec::poll_loop;

/// The topic of every frame.
pub const TOPIC: &str = "bench/ingress/t";
/// The driver's default ingress buffer (`State`'s `INGRESS`), given to atat's
/// `Ingress` too.
pub const INGRESS: usize = 2400;
/// Most bytes of a workload's pattern.
pub const PATTERN: usize = 32 * 1024;
/// URCs atat's channel holds (the driver's default `State` keeps 24 message
/// notices: 32 events less the 8 kept for link events).
const URC_CAPACITY: usize = 24;

/// A stream of `+QMTRECV` frames: a pattern of at most [`PATTERN`] bytes,
/// sent again and again (so that a long stream stays in the cache, as a
/// UART's few bytes do, whatever its length).
#[derive(Debug, Clone)]
pub struct Workload {
    /// The pattern's bytes, as the modem sends them (shared with each run's
    /// fake UART).
    pub pattern: Rc<[u8]>,
    /// Frames in the pattern.
    pub pattern_frames: usize,
    /// Frames in the stream (a multiple of `pattern_frames`).
    pub frames: usize,
    /// Bytes of the stream.
    pub bytes: usize,
    /// Payload bytes of each message (decoded, for hex).
    pub payload: usize,
    /// Payloads in hex digits (`AT+QMTCFG="dataformat",0,0,1`).
    pub hex: bool,
}

/// Payload byte `i` of frame `f`: text payloads are letters and digits
/// (atat's string parser and the modem's text mode agree on those), hex
/// payloads any byte.
fn payload_byte(f: usize, i: usize, hex: bool) -> u8 {
    const TEXT: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if hex {
        (f.wrapping_mul(7).wrapping_add(i.wrapping_mul(31))) as u8
    } else {
        TEXT[(f * 13 + i * 7) % TEXT.len()]
    }
}

impl Workload {
    /// At least `frames` messages (rounded up to whole patterns) of
    /// `payload` bytes on [`TOPIC`], client 0, msgIDs counting up from 1 in
    /// each pattern.
    pub fn new(frames: usize, payload: usize, hex: bool) -> Self {
        let frame_len = 36 + TOPIC.len() + if hex { 2 * payload } else { payload };
        let pattern_frames = (PATTERN / frame_len).clamp(1, frames.max(1));
        let repeats = frames.max(1).div_ceil(pattern_frames);
        let mut bytes = Vec::new();
        for f in 0..pattern_frames {
            let id = f % 65535 + 1;
            bytes.extend_from_slice(format!("\r\n+QMTRECV: 0,{id},\"{TOPIC}\",\"").as_bytes());
            for i in 0..payload {
                let b = payload_byte(f, i, hex);
                if hex {
                    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
                    bytes.push(DIGITS[usize::from(b >> 4)]);
                    bytes.push(DIGITS[usize::from(b & 15)]);
                } else {
                    bytes.push(b);
                }
            }
            bytes.extend_from_slice(b"\"\r\n");
        }
        Self {
            bytes: bytes.len() * repeats,
            pattern: bytes.into(),
            pattern_frames,
            frames: pattern_frames * repeats,
            payload,
            hex,
        }
    }

    /// Wire bytes of one frame.
    pub fn frame_len(&self) -> usize {
        self.pattern.len() / self.pattern_frames
    }

    /// A short name: `text 100 B`, `hex 1024 B`.
    pub fn name(&self) -> String {
        format!(
            "{} {} B",
            if self.hex { "hex" } else { "text" },
            self.payload
        )
    }
}

/// What one run delivered, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// From the first byte of the stream to the last message counted.
    pub elapsed: Duration,
    /// Messages the subscriber got, with the right length.
    pub messages: usize,
    /// Messages reported lost (the driver's `Event::Missed`; atat never drops:
    /// its ingress waits for room in the channel).
    pub missed: usize,
    /// Wire bytes of the stream.
    pub bytes: usize,
    /// Reads that returned bytes.
    pub reads: usize,
}

impl Run {
    /// Megabytes (10^6 bytes) of the modem's output per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    /// Messages per second.
    pub fn messages_per_s(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// Nanoseconds per wire byte.
    pub fn ns_per_byte(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.bytes as f64
    }
}

// ------------------------------------------------------------ the fake UART

const OK: &[u8] = b"\r\nOK\r\n";

/// The modem end: answers each command line `OK`, then streams the workload.
struct Uart {
    pattern: Rc<[u8]>,
    /// Bytes of the stream, and how many were read.
    total: usize,
    pos: usize,
    max_read: usize,
    streaming: bool,
    /// The next poll of a read returns `Pending` (a UART with nothing yet).
    rest: bool,
    /// Command lines not answered yet.
    answers: usize,
    reads: usize,
}

/// The reader both paths get: reads of up to `max_read` bytes, `Pending`
/// once after each.
pub struct FakeRx(Rc<RefCell<Uart>>);
/// The driver's writer: each CR ends a line the fake answers `OK`.
pub struct FakeTx(Rc<RefCell<Uart>>);

fn fake_uart(w: &Workload, max_read: usize, streaming: bool) -> Rc<RefCell<Uart>> {
    Rc::new(RefCell::new(Uart {
        pattern: w.pattern.clone(),
        total: w.bytes,
        pos: 0,
        max_read: max_read.max(1),
        streaming,
        rest: false,
        answers: 0,
        reads: 0,
    }))
}

impl embedded_io_async::ErrorType for FakeRx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::ErrorType for FakeTx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for FakeRx {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        Ok(poll_fn(|cx| {
            let mut u = self.0.borrow_mut();
            if u.answers > 0 && buf.len() >= OK.len() {
                u.answers -= 1;
                buf[..OK.len()].copy_from_slice(OK);
                return Poll::Ready(OK.len());
            }
            if !u.streaming || u.pos >= u.total || buf.is_empty() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if u.rest {
                u.rest = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            u.rest = true;
            let n = buf.len().min(u.max_read).min(u.total - u.pos);
            let mut done = 0;
            while done < n {
                let at = (u.pos + done) % u.pattern.len();
                let k = (n - done).min(u.pattern.len() - at);
                buf[done..done + k].copy_from_slice(&u.pattern[at..at + k]);
                done += k;
            }
            u.pos += n;
            u.reads += 1;
            Poll::Ready(n)
        })
        .await)
    }
}

impl embedded_io_async::Write for FakeTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let lines = buf.iter().filter(|&&b| b == b'\r').count();
        self.0.borrow_mut().answers += lines;
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

// ------------------------------------------------------------ the driver

/// The driver's path: reader -> `Runner` -> `Events` subscriber.
pub fn run_driver(w: &Workload, max_read: usize) -> Run {
    let uart = fake_uart(w, max_read, false);
    let mut state: Box<State> = Box::default();
    // Text reception as configured by the application; hex set below.
    let config = Config::new().receive_text(true);
    let (modem, runner) = bc26_mqtt::new(
        &mut state,
        FakeRx(uart.clone()),
        FakeTx(uart.clone()),
        config,
    )
    .expect("consistent Config");
    let recv = if w.hex {
        DataFormat::Hex
    } else {
        DataFormat::Text
    };
    let client = modem.client(ClientId::new(0).expect("client 0"));
    let mut events = modem.events().expect("a subscription");
    let consumer = async {
        client
            .set_data_format(DataFormat::Text, recv)
            .await
            .expect("the fake answers OK");
        uart.borrow_mut().streaming = true;
        let t0 = Instant::now();
        let mut buf = [0u8; MESSAGE_MAX];
        let (mut messages, mut missed) = (0, 0);
        while messages + missed < w.frames {
            match events.next(&mut buf).await {
                Event::Message(m) => {
                    assert_eq!(m.payload.len(), w.payload, "payload of message {messages}");
                    assert_eq!(m.topic, TOPIC);
                    messages += 1;
                }
                Event::Missed(n) => missed += n as usize,
                other => panic!("unexpected event {other:?}"),
            }
        }
        (t0.elapsed(), messages, missed)
    };
    let (elapsed, messages, missed) = match poll_loop(select(runner.run(), consumer)) {
        Either::First(never) => never,
        Either::Second(r) => r,
    };
    let reads = uart.borrow().reads;
    Run {
        elapsed,
        messages,
        missed,
        bytes: w.bytes,
        reads,
    }
}

// ------------------------------------------------------------ atat

/// `+QMTRECV: <id>,<msgID>,"<topic>","<payload>"`, text payload.
#[derive(Clone, Debug, AtatResp)]
pub struct RecvText {
    /// Client.
    pub client: u8,
    /// msgID.
    pub msg_id: u32,
    /// Topic.
    pub topic: heapless::String<255>,
    /// Payload.
    pub payload: heapless::String<1024>,
}

/// `+QMTRECV` with a hex payload (2,048 digits at most).
#[derive(Clone, Debug, AtatResp)]
pub struct RecvHex {
    /// Client.
    pub client: u8,
    /// msgID.
    pub msg_id: u32,
    /// Topic.
    pub topic: heapless::String<255>,
    /// Payload, hex digits.
    pub payload: heapless::String<2048>,
}

/// The URCs atat parses, text reception.
#[derive(Clone, Debug, AtatUrc)]
pub enum TextUrc {
    /// A message.
    #[at_urc(b"+QMTRECV")]
    Recv(RecvText),
}

/// The URCs atat parses, hex reception.
#[derive(Clone, Debug, AtatUrc)]
pub enum HexUrc {
    /// A message.
    #[at_urc(b"+QMTRECV")]
    Recv(RecvHex),
}

fn unhex(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => 0,
    }
}

/// atat's path: reader -> `Ingress` + `AtDigester` + derived URC parser ->
/// `UrcChannel` -> subscriber.
pub fn run_atat(w: &Workload, max_read: usize) -> Run {
    if w.hex {
        run_atat_with::<HexUrc>(w, max_read, |u, out| {
            let HexUrc::Recv(r) = u;
            let d = r.payload.as_bytes();
            for (o, pair) in out.iter_mut().zip(d.chunks_exact(2)) {
                *o = unhex(pair[0]) << 4 | unhex(pair[1]);
            }
            (d.len() / 2, r.topic.len())
        })
    } else {
        run_atat_with::<TextUrc>(w, max_read, |u, out| {
            let TextUrc::Recv(r) = u;
            let p = r.payload.as_bytes();
            out[..p.len()].copy_from_slice(p);
            (p.len(), r.topic.len())
        })
    }
}

fn run_atat_with<U: atat::AtatUrc + atat::Parser>(
    w: &Workload,
    max_read: usize,
    take: impl Fn(U, &mut [u8]) -> (usize, usize),
) -> Run {
    let uart = fake_uart(w, max_read, true);
    let mut buf = vec![0u8; INGRESS];
    let res_slot = ResponseSlot::<1>::new();
    let urcs: Box<UrcChannel<U, URC_CAPACITY, 1>> = Box::new(UrcChannel::new());
    let mut ingress: Ingress<'_, AtDigester<U>, U, 1, URC_CAPACITY, 1> =
        Ingress::new(AtDigester::new(), &mut buf, &res_slot, &urcs);
    let mut sub = urcs.subscribe().expect("a subscription");
    let consumer = async {
        let t0 = Instant::now();
        let mut out = [0u8; 1024];
        let mut messages = 0;
        while messages < w.frames {
            let u = sub.next_message_pure().await;
            let (len, topic) = take(u, &mut out);
            assert_eq!(len, w.payload, "payload of message {messages}");
            assert_eq!(topic, TOPIC.len());
            messages += 1;
        }
        (t0.elapsed(), messages)
    };
    let (elapsed, messages) =
        match poll_loop(select(ingress.read_from(FakeRx(uart.clone())), consumer)) {
            Either::First(never) => never,
            Either::Second(r) => r,
        };
    let reads = uart.borrow().reads;
    Run {
        elapsed,
        messages,
        missed: 0,
        bytes: w.bytes,
        reads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_deliver_every_message_of_every_workload_whole() {
        for (payload, hex) in [(100, false), (1024, false), (100, true), (1024, true)] {
            for max_read in [1, 16, INGRESS] {
                // Few frames at 1-byte reads: atat rescans its buffer at each.
                let frames = if max_read == 1 { 3 } else { 12 };
                let w = Workload::new(frames, payload, hex);
                let d = run_driver(&w, max_read);
                assert_eq!((d.messages, d.missed), (frames, 0), "driver {}", w.name());
                let a = run_atat(&w, max_read);
                assert_eq!(a.messages, frames, "atat {}", w.name());
                assert_eq!(d.bytes, a.bytes);
            }
        }
    }

    #[test]
    fn reads_are_cut_at_max_read_and_at_the_free_buffer() {
        let w = Workload::new(4, 1024, false);
        // 1-byte reads: one read a byte.
        assert_eq!(run_driver(&w, 1).reads, w.bytes);
        assert_eq!(run_atat(&w, 1).reads, w.bytes);
        // Whole reads: at least one read per 2,400 bytes.
        assert!(run_driver(&w, INGRESS).reads >= w.bytes.div_ceil(INGRESS));
    }

    #[test]
    fn long_workloads_repeat_a_pattern_of_whole_frames() {
        let w = Workload::new(1000, 1024, true);
        assert!(w.pattern.len() <= PATTERN && w.frames >= 1000);
        assert_eq!(w.frames % w.pattern_frames, 0);
        assert_eq!(w.bytes, w.pattern.len() * (w.frames / w.pattern_frames));
        let d = run_driver(&w, INGRESS);
        assert_eq!((d.messages, d.missed), (w.frames, 0));
    }

    #[test]
    fn workloads_have_the_frame_shapes_the_modem_sends() {
        let w = Workload::new(2, 3, true);
        assert_eq!(
            &w.pattern[..],
            b"\r\n+QMTRECV: 0,1,\"bench/ingress/t\",\"001F3E\"\r\n\
              \r\n+QMTRECV: 0,2,\"bench/ingress/t\",\"072645\"\r\n"
        );
        let t = Workload::new(1, 4, false);
        assert_eq!(
            &t.pattern[..],
            b"\r\n+QMTRECV: 0,1,\"bench/ingress/t\",\"ahov\"\r\n"
        );
    }
}
