//! The modem's transmit path: optional random chunking (seeded) and pacing to a baud rate.

use std::time::Duration;

use crate::config::Chunking;

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

pub(crate) struct Output {
    sink: Box<dyn Sink>,
    baud: Option<u32>,
    chunking: Option<(Chunking, Rng)>,
    /// Everything written, for [`crate::SimHandle::transcript`].
    log: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// A dead UART: everything sent is lost.
    silent: bool,
}

impl Output {
    pub(crate) fn new(
        sink: Box<dyn Sink>,
        baud: Option<u32>,
        chunking: Option<Chunking>,
        log: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    ) -> Self {
        Output {
            sink,
            baud,
            chunking: chunking.map(|c| {
                let rng = Rng::new(c.seed);
                (c, rng)
            }),
            log,
            silent: false,
        }
    }

    /// While silent, everything sent is lost (and not in the transcript).
    pub(crate) fn set_silent(&mut self, silent: bool) {
        self.silent = silent;
    }

    /// Forget what is waiting to go out (a reboot). Output goes out synchronously, so
    /// there is nothing to forget.
    pub(crate) fn discard(&mut self) {}

    /// Write `data`, paced: pieces of at most 16 bytes, each written after the time its
    /// bytes take on the wire (8N1: 10 bit times per byte).
    fn write_paced(sink: &mut dyn Sink, baud: Option<u32>, data: &[u8]) {
        match baud {
            Some(baud) if baud > 0 => {
                for piece in data.chunks(16) {
                    let nanos = (piece.len() as u64) * 10 * 1_000_000_000 / baud as u64;
                    std::thread::sleep(Duration::from_nanos(nanos));
                    let _ = sink.write_all(piece);
                }
            }
            _ => {
                let _ = sink.write_all(data);
            }
        }
    }

    pub(crate) fn send(&mut self, data: &[u8]) {
        if data.is_empty() || self.silent {
            return;
        }
        if let Ok(mut l) = self.log.lock() {
            l.extend_from_slice(data);
        }
        match &mut self.chunking {
            None => Self::write_paced(self.sink.as_mut(), self.baud, data),
            Some((c, rng)) => {
                let max = c.max_chunk.max(1);
                let gap = c.gap;
                let mut rest = data;
                while !rest.is_empty() {
                    let n = rng.between_1_and(max).min(rest.len());
                    let (head, tail) = rest.split_at(n);
                    Self::write_paced(self.sink.as_mut(), self.baud, head);
                    rest = tail;
                    if !rest.is_empty() && !gap.is_zero() {
                        std::thread::sleep(gap);
                    }
                }
            }
        }
    }
}
