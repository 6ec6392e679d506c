//! The modem's transmit path: the modem queues bytes ([`Output`]); a transmit thread
//! ([`spawn_tx`]) writes them to the host, paced to the baud rate (see `uart.rs`) and/or
//! split into random chunks (seeded). Like a UART's transmit buffer, the queue lets the
//! modem go on while its bytes are on the wire, and keeps a stream continuous.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::config::Chunking;
use crate::uart::Pacer;

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

#[derive(Default)]
struct TxState {
    queue: VecDeque<u8>,
    /// A dead UART: what is sent is lost.
    silent: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    st: Mutex<TxState>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, TxState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The modem's end of the transmit path.
pub(crate) struct Output(Arc<Shared>);

impl Output {
    /// Queue `data` for the host (lost while silent).
    pub(crate) fn send(&mut self, data: &[u8]) {
        let mut st = self.0.lock();
        if data.is_empty() || st.silent {
            return;
        }
        st.queue.extend(data);
        drop(st);
        self.0.cv.notify_all();
    }

    /// While silent, everything queued or sent is lost (and not in the transcript).
    pub(crate) fn set_silent(&mut self, silent: bool) {
        let mut st = self.0.lock();
        st.silent = silent;
        if silent {
            st.queue.clear();
        }
    }

    /// Forget what is waiting to go out (a reboot).
    pub(crate) fn discard(&mut self) {
        self.0.lock().queue.clear();
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

/// Start the transmit thread; it stops when the [`Output`] is dropped.
pub(crate) fn spawn_tx(mut tx: Tx) -> (Output, JoinHandle<()>) {
    let shared = Arc::new(Shared::default());
    let out = Output(shared.clone());
    let thread = std::thread::Builder::new()
        .name("bc26-sim-tx".into())
        .spawn(move || {
            let mut pacer = Pacer::new(tx.baud);
            let mut chunks = tx.chunking.map(|c| (c, Rng::new(c.seed)));
            let mut idle = true;
            loop {
                // The next piece: a random chunk, or about 1 ms of bytes when paced, or all.
                let (piece, more) = {
                    let mut st = shared.lock();
                    while st.queue.is_empty() && !st.closed {
                        idle = true;
                        st = shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    if st.closed {
                        return;
                    }
                    let n = match (&mut chunks, &pacer) {
                        (Some((c, rng)), _) => rng.between_1_and(c.max_chunk),
                        (None, Some(p)) => p.piece(),
                        (None, None) => usize::MAX,
                    };
                    let n = n.min(st.queue.len());
                    let piece: Vec<u8> = st.queue.drain(..n).collect();
                    (piece, !st.queue.is_empty())
                };
                if let Some(p) = &mut pacer {
                    if idle {
                        p.resume();
                    }
                    p.wait_for(piece.len());
                }
                idle = false;
                if shared.lock().silent {
                    continue; // silenced while on the wire
                }
                if let Ok(mut l) = tx.log.lock() {
                    l.extend_from_slice(&piece);
                }
                let _ = tx.sink.write_all(&piece);
                if let Some((c, _)) = &chunks {
                    if more && !c.gap.is_zero() {
                        std::thread::sleep(c.gap);
                        idle = true; // the line rests during the gap
                    }
                }
            }
        })
        .expect("spawn tx thread");
    (out, thread)
}
