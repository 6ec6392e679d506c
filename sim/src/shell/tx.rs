//! The modem's transmit path: the modem thread queues the model's output ([`Output`]); a
//! transmit thread ([`spawn_tx`]) writes it to the host, paced to the baud rate (see `uart.rs`: each
//! byte as soon as its stop bit is complete, on a schedule that starts when the modem queued
//! it) and/or split into random chunks (seeded). Like a UART's transmit buffer, the queue lets the
//! modem go on while its bytes are on the wire, and keeps a stream continuous.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::config::Chunking;
use crate::shell::uart::{pacer, precise_timers, Pacer, Waiter};

/// Where the modem's bytes go (the in-process pipe or the pty master).
pub(crate) trait Sink: Send {
    /// Write all of `data`; errors are ignored by the caller (a host that went away).
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()>;
}

/// A small deterministic PRNG (xorshift64*), enough for reproducible chunking.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `1..=max` (max >= 1).
    pub(crate) fn between_1_and(&mut self, max: usize) -> usize {
        1 + (self.next_u64() % max.max(1) as u64) as usize
    }
}

/// A byte waiting to go out.
#[derive(Debug, Clone, Copy)]
struct Queued {
    /// When the modem queued it (its place on the line's schedule).
    at: Instant,
    byte: u8,
    /// The last byte of a message (a response, result, URC or prompt; not an echo): the
    /// host is likely waiting for it, so the transmit thread is on time for it (see
    /// `Waiter`).
    ends: bool,
}

#[derive(Default)]
struct TxState {
    queue: VecDeque<Queued>,
    /// Bumped by each discard: a piece taken before it is not written.
    discards: u64,
    closed: bool,
}

/// The queue between the modem thread and the transmit thread.
#[derive(Default)]
struct TxQueue {
    st: Mutex<TxState>,
    cv: Condvar,
}

impl TxQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, TxState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The modem's end of the transmit path.
pub(crate) struct Output(Arc<TxQueue>);

impl Output {
    /// Queue a message for the host.
    pub(crate) fn send(&mut self, data: &[u8]) {
        self.queue(data, true);
    }

    /// Queue the echo of the host's bytes.
    pub(crate) fn send_echo(&mut self, data: &[u8]) {
        self.queue(data, false);
    }

    fn queue(&mut self, data: &[u8], message: bool) {
        let mut st = self.0.lock();
        if data.is_empty() {
            return;
        }
        let at = Instant::now();
        let last = data.len() - 1;
        st.queue
            .extend(data.iter().enumerate().map(|(i, &byte)| Queued {
                at,
                byte,
                ends: message && i == last,
            }));
        drop(st);
        self.0.cv.notify_all();
    }

    /// Forget what is waiting to go out, and a piece being written (a reboot, a silent
    /// UART): it is not written, nor in the transcript.
    pub(crate) fn discard(&mut self) {
        let mut st = self.0.lock();
        st.queue.clear();
        st.discards += 1;
    }
}

impl Drop for Output {
    /// The transmit thread stops (what is still queued is dropped).
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.cv.notify_all();
    }
}

/// What the transmit thread needs.
pub(crate) struct Tx {
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) baud: Option<u32>,
    pub(crate) chunking: Option<Chunking>,
    /// Everything written, for [`crate::SimHandle::transcript`].
    pub(crate) log: Arc<Mutex<Vec<u8>>>,
}

/// What the transmit thread does next.
enum Next {
    /// Write these bytes now.
    Write(Vec<u8>),
    /// Nothing to write before then; `true`: the byte awaited ends a message.
    Sleep(Instant, bool),
    /// The [`Output`] was dropped.
    Stop,
}

/// The bytes of the queue's front that are complete on the wire at `now`, on the line's
/// schedule `pacer`. `want`: a piece of exactly this many bytes (or all that are queued,
/// if fewer), delivered together once its last byte is complete (chunking); `None`: every
/// complete byte, so that no byte waits for the ones after it. `not_before`: the line rests
/// until then (a chunking gap). `Err`: when the next piece is complete, and whether its
/// last byte ends a message.
fn take_complete(
    queue: &mut VecDeque<Queued>,
    pacer: &mut Pacer,
    want: Option<usize>,
    not_before: Instant,
    now: Instant,
) -> Result<Vec<u8>, (Instant, bool)> {
    let mut line = pacer.clone();
    let complete = match want {
        Some(n) => {
            let n = n.min(queue.len());
            let mut last = now;
            for q in queue.iter().take(n) {
                last = line.schedule(q.at.max(not_before));
            }
            if last > now {
                return Err((last, queue.iter().take(n).any(|q| q.ends)));
            }
            n
        }
        None => {
            let mut complete = 0;
            for q in queue.iter() {
                let done = line.schedule(q.at.max(not_before));
                if done > now {
                    if complete == 0 {
                        return Err((done, q.ends));
                    }
                    break;
                }
                complete += 1;
            }
            complete
        }
    };
    for q in queue.iter().take(complete) {
        pacer.schedule(q.at.max(not_before));
    }
    Ok(queue.drain(..complete).map(|q| q.byte).collect())
}

/// Start the transmit thread; it stops when the [`Output`] is dropped.
pub(crate) fn spawn_tx(mut tx: Tx) -> (Output, JoinHandle<()>) {
    let shared = Arc::new(TxQueue::default());
    let out = Output(shared.clone());
    let thread = std::thread::Builder::new()
        .name("bc26-sim-tx".into())
        .spawn(move || {
            let mut pacer = pacer(tx.baud);
            if pacer.is_some() {
                precise_timers();
            }
            let mut waiter = Waiter::default();
            let mut chunks = tx.chunking.map(|c| (c, Rng::new(c.seed)));
            // The size of the chunk being sent (drawn once per chunk).
            let mut want: Option<usize> = None;
            // The end of the last chunking gap: the line rests until then.
            let mut not_before = Instant::now();
            loop {
                let (next, seen) = {
                    let mut st = shared.lock();
                    while st.queue.is_empty() && !st.closed {
                        want = None;
                        st = shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    let seen = st.discards;
                    let next = if st.closed {
                        Next::Stop
                    } else {
                        if let Some((c, rng)) = &mut chunks {
                            if want.is_none() {
                                want = Some(rng.between_1_and(c.max_chunk));
                            }
                        }
                        match &mut pacer {
                            Some(p) => {
                                let now = Instant::now();
                                match take_complete(&mut st.queue, p, want, not_before, now) {
                                    Ok(piece) => Next::Write(piece),
                                    Err((at, ends)) => Next::Sleep(at, ends),
                                }
                            }
                            None => {
                                let n = want.unwrap_or(usize::MAX).min(st.queue.len());
                                Next::Write(st.queue.drain(..n).map(|q| q.byte).collect())
                            }
                        }
                    };
                    (next, seen)
                };
                let piece = match next {
                    Next::Stop => return,
                    // Only this thread takes bytes out, and bytes queued meanwhile come
                    // after: nothing is due before `at` (a discard is seen on waking).
                    Next::Sleep(at, ends) => {
                        waiter.wait_until(at, ends);
                        continue;
                    }
                    Next::Write(piece) => piece,
                };
                want = None;
                let more = {
                    let st = shared.lock();
                    if st.discards != seen {
                        continue; // discarded while on the wire
                    }
                    !st.queue.is_empty()
                };
                if let Ok(mut l) = tx.log.lock() {
                    l.extend_from_slice(&piece);
                }
                let _ = tx.sink.write_all(&piece);
                if let Some((c, _)) = &chunks {
                    if more && !c.gap.is_zero() {
                        std::thread::sleep(c.gap);
                        not_before = Instant::now(); // the line rests during the gap
                    }
                }
            }
        })
        .expect("spawn tx thread");
    (out, thread)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const BT: Duration = Duration::from_micros(100); // 100_000 baud

    /// One message queued at `at`.
    fn queue(at: Instant, bytes: &[u8]) -> VecDeque<Queued> {
        let mut out = Output(Arc::default());
        out.send(bytes);
        let q = std::mem::take(&mut out.0.lock().queue);
        q.into_iter().map(|q| Queued { at, ..q }).collect()
    }

    #[test]
    fn every_complete_byte_is_taken_and_none_waits_for_the_rest_of_its_message() {
        let mut p = pacer(Some(100_000)).unwrap();
        let t = Instant::now() + Duration::from_secs(1);
        let mut q = queue(t, b"\r\nOK\r\n");
        let early = t - Duration::from_secs(2);
        // Before the first stop bit: nothing, and the instant it is complete.
        assert_eq!(
            take_complete(&mut q, &mut p, None, early, t + BT / 2),
            Err((t + BT, false))
        );
        // One and a half byte times after the queueing: exactly the first byte.
        assert_eq!(
            take_complete(&mut q, &mut p, None, early, t + BT * 3 / 2),
            Ok(b"\r".to_vec())
        );
        // A late wake-up takes everything complete by then, at once.
        assert_eq!(
            take_complete(&mut q, &mut p, None, early, t + BT * 4),
            Ok(b"\nOK".to_vec())
        );
        assert_eq!(
            take_complete(&mut q, &mut p, None, early, t + BT * 4),
            Err((t + BT * 5, false))
        );
        assert_eq!(
            take_complete(&mut q, &mut p, None, early, t + BT * 11 / 2),
            Ok(b"\r".to_vec())
        );
        // The last byte: the end of the message.
        assert_eq!(
            take_complete(&mut q, &mut p, None, early, t + BT * 11 / 2),
            Err((t + BT * 6, true))
        );
        assert_eq!(
            take_complete(&mut q, &mut p, None, early, t + BT * 6),
            Ok(b"\n".to_vec())
        );
        assert!(q.is_empty());
    }

    #[test]
    fn an_echo_does_not_end_a_message() {
        let mut out = Output(Arc::default());
        out.send_echo(b"AT\r");
        out.send(b"\r\nOK\r\n");
        let ends: Vec<bool> = out.0.lock().queue.iter().map(|q| q.ends).collect();
        assert_eq!(
            ends,
            [false, false, false, false, false, false, false, false, true]
        );
    }

    #[test]
    fn a_chunk_goes_out_whole_once_its_last_byte_is_complete_and_a_gap_rests_the_line() {
        let mut p = pacer(Some(100_000)).unwrap();
        let t = Instant::now() + Duration::from_secs(1);
        let mut q = queue(t, b"abcdef");
        let early = t - Duration::from_secs(2);
        assert_eq!(
            take_complete(&mut q, &mut p, Some(4), early, t + BT * 3),
            Err((t + BT * 4, false))
        );
        assert_eq!(
            take_complete(&mut q, &mut p, Some(4), early, t + BT * 4),
            Ok(b"abcd".to_vec())
        );
        // A gap until t + 10 byte times: the rest starts then, not back to back.
        let rest = t + BT * 10;
        assert_eq!(
            take_complete(&mut q, &mut p, Some(9), rest, rest),
            Err((rest + BT * 2, true))
        );
        assert_eq!(
            take_complete(&mut q, &mut p, Some(9), rest, rest + BT * 2),
            Ok(b"ef".to_vec())
        );
    }
}
