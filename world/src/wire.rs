//! The UART as the driver sees it: a reader of the bytes that have arrived from the modem,
//! and a writer with a transmit FIFO whose bytes leave on the 115200-baud schedule that the
//! world keeps (`world.rs` moves them). Read and write errors are injected here.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

/// Both directions, shared by the driver's halves and the world.
#[derive(Default)]
pub(crate) struct Wire {
    /// Modem to host: bytes arrived, not yet read.
    pub(crate) rx: VecDeque<u8>,
    rx_waker: Option<Waker>,
    /// The next read fails.
    pub(crate) read_error: bool,
    /// Host to modem: bytes written, not yet handed to the line by the world.
    pub(crate) written: Vec<u8>,
    /// Bytes in the transmit FIFO (written, not yet complete on the line).
    pub(crate) in_fifo: usize,
    /// Its size.
    pub(crate) fifo: usize,
    tx_waker: Option<Waker>,
    /// The next write fails (nothing of it is sent).
    pub(crate) write_error: bool,
    /// Reads and writes that failed.
    pub(crate) read_errors: u32,
    pub(crate) write_errors: u32,
    /// The driver pulsed the wake pin (PSM_EINT); the world takes it.
    pub(crate) eint: bool,
}

impl Wire {
    pub(crate) fn new(fifo: usize) -> Rc<RefCell<Wire>> {
        Rc::new(RefCell::new(Wire {
            fifo,
            ..Wire::default()
        }))
    }

    /// Bytes arrive at the host.
    pub(crate) fn arrive(&mut self, bytes: &[u8]) {
        self.rx.extend(bytes);
        if let Some(w) = self.rx_waker.take() {
            w.wake();
        }
    }

    /// `n` bytes of the FIFO are complete on the line.
    pub(crate) fn sent(&mut self, n: usize) {
        self.in_fifo = self.in_fifo.saturating_sub(n);
        if let Some(w) = self.tx_waker.take() {
            w.wake();
        }
    }

    /// A read error for the next read (a reader waiting now gets it at once).
    pub(crate) fn fail_read(&mut self) {
        self.read_error = true;
        if let Some(w) = self.rx_waker.take() {
            w.wake();
        }
    }
}

/// The driver's receive half.
pub(crate) struct Reader(pub(crate) Rc<RefCell<Wire>>);
/// The driver's transmit half.
pub(crate) struct Writer(pub(crate) Rc<RefCell<Wire>>);

impl ErrorType for Reader {
    type Error = ErrorKind;
}

impl ErrorType for Writer {
    type Error = ErrorKind;
}

impl Read for Reader {
    /// Cancel-safe: bytes leave the wire only in the poll that returns them.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        poll_fn(|cx| {
            let mut w = self.0.borrow_mut();
            if w.read_error {
                w.read_error = false;
                w.read_errors += 1;
                return Poll::Ready(Err(ErrorKind::Other));
            }
            if w.rx.is_empty() || buf.is_empty() {
                w.rx_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(w.rx.len());
            for (d, s) in buf.iter_mut().zip(w.rx.drain(..n)) {
                *d = s;
            }
            Poll::Ready(Ok(n))
        })
        .await
    }
}

impl Write for Writer {
    /// Takes what fits in the FIFO (waits while it is full).
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        poll_fn(|cx| {
            let mut w = self.0.borrow_mut();
            if w.write_error {
                w.write_error = false;
                w.write_errors += 1;
                return Poll::Ready(Err(ErrorKind::Other));
            }
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let free = w.fifo.saturating_sub(w.in_fifo);
            if free == 0 {
                w.tx_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = free.min(buf.len());
            w.written.extend_from_slice(&buf[..n]);
            w.in_fifo += n;
            Poll::Ready(Ok(n))
        })
        .await
    }

    /// Waits until every byte written is complete on the line.
    async fn flush(&mut self) -> Result<(), ErrorKind> {
        poll_fn(|cx| {
            let mut w = self.0.borrow_mut();
            if w.in_fifo == 0 {
                return Poll::Ready(Ok(()));
            }
            w.tx_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
