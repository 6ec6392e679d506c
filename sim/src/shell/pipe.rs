//! An in-process byte pipe between the host side (async, `embedded-io-async`) and the
//! simulator (blocking std threads).
//!
//! Each direction is one [`Chan`]: a bounded byte queue behind a `std::sync::Mutex`, with a
//! `Condvar` for the blocking side and stored `Waker`s for the async side, so waking works
//! across threads and with any executor (the embassy std executor included).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::shell::uart::{precise_timers, Pacer, Waiter};

struct State {
    buf: VecDeque<u8>,
    /// A paced direction (host to modem with `SimConfig::baud`): the line's schedule, and
    /// for each byte of `buf` the instant it is complete on the wire.
    pacer: Option<Pacer>,
    due: VecDeque<Instant>,
    cap: usize,
    closed: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

/// One direction of a byte pipe.
pub(crate) struct Chan {
    state: Mutex<State>,
    cv: Condvar,
}

impl Chan {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Self::paced(cap, None)
    }

    /// A direction whose bytes go on the wire on `pacer`'s schedule from the moment they are
    /// written (a UART's transmit FIFO of `cap` bytes); take them with [`Chan::take_complete`].
    pub(crate) fn paced(cap: usize, pacer: Option<Pacer>) -> Arc<Self> {
        Arc::new(Chan {
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(cap.min(1 << 16)),
                pacer,
                due: VecDeque::new(),
                cap: cap.max(1),
                closed: false,
                read_waker: None,
                write_waker: None,
            }),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the pipe closed: readers get EOF once the queue is drained, writers get an error.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        let rw = st.read_waker.take();
        let ww = st.write_waker.take();
        drop(st);
        self.cv.notify_all();
        if let Some(w) = rw {
            w.wake();
        }
        if let Some(w) = ww {
            w.wake();
        }
    }

    fn take_into(st: &mut State, out: &mut [u8]) -> usize {
        let n = out.len().min(st.buf.len());
        for (i, b) in st.buf.drain(..n).enumerate() {
            out[i] = b;
        }
        st.due.drain(..n.min(st.due.len()));
        n
    }

    /// Append `data`, each byte scheduled on the line from now when paced.
    fn put(st: &mut State, data: &[u8]) {
        st.buf.extend(data);
        if let Some(p) = &mut st.pacer {
            let now = Instant::now();
            st.due.extend(data.iter().map(|_| p.schedule(now)));
        }
    }

    fn after_take(&self, mut st: std::sync::MutexGuard<'_, State>) {
        let ww = st.write_waker.take();
        drop(st);
        self.cv.notify_all();
        if let Some(w) = ww {
            w.wake();
        }
    }

    fn after_put(&self, mut st: std::sync::MutexGuard<'_, State>) {
        let rw = st.read_waker.take();
        drop(st);
        self.cv.notify_all();
        if let Some(w) = rw {
            w.wake();
        }
    }

    pub(crate) fn poll_read(&self, waker: &Waker, out: &mut [u8]) -> Poll<usize> {
        if out.is_empty() {
            return Poll::Ready(0);
        }
        let mut st = self.lock();
        if !st.buf.is_empty() {
            let n = Self::take_into(&mut st, out);
            self.after_take(st);
            return Poll::Ready(n);
        }
        if st.closed {
            return Poll::Ready(0);
        }
        st.read_waker = Some(waker.clone());
        Poll::Pending
    }

    /// `Err(())` when the pipe is closed.
    pub(crate) fn poll_write(&self, waker: &Waker, data: &[u8]) -> Poll<Result<usize, ()>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut st = self.lock();
        if st.closed {
            return Poll::Ready(Err(()));
        }
        let room = st.cap.saturating_sub(st.buf.len());
        if room > 0 {
            let n = room.min(data.len());
            Self::put(&mut st, &data[..n]);
            self.after_put(st);
            return Poll::Ready(Ok(n));
        }
        st.write_waker = Some(waker.clone());
        Poll::Pending
    }

    /// Wait until there are bytes or the pipe is closed (`None`: `deadline` passed).
    fn wait_bytes(&self, deadline: Option<Instant>) -> Option<std::sync::MutexGuard<'_, State>> {
        let mut st = self.lock();
        while st.buf.is_empty() && !st.closed {
            st = match deadline {
                None => self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        Some(st)
    }

    /// Blocking read; `Some(0)` on EOF (closed and drained), `None` on timeout.
    pub(crate) fn read_timeout(&self, out: &mut [u8], timeout: Option<Duration>) -> Option<usize> {
        let mut st = self.wait_bytes(timeout.map(|t| Instant::now() + t))?;
        if st.buf.is_empty() {
            return Some(0);
        }
        let n = Self::take_into(&mut st, out);
        self.after_take(st);
        Some(n)
    }

    /// The receiving end of a paced direction: waits at most `timeout` for bytes, then until
    /// the first is complete on the wire, and takes every byte complete by then (each byte as
    /// soon as it is complete: none waits for the ones after it). `Some(0)`: closed and
    /// drained; `None`: no byte within `timeout`. Unpaced: whatever is there. `waiter`
    /// waits, urgently for the last byte written (the end of the host's line, say).
    pub(crate) fn take_complete(
        &self,
        out: &mut [u8],
        timeout: Duration,
        waiter: &mut Waiter,
    ) -> Option<usize> {
        let mut st = self.wait_bytes(Some(Instant::now() + timeout))?;
        // (Nothing to wait for when unpaced, or closed and drained.)
        while let Some(&first) = st.due.front() {
            if first <= Instant::now() {
                break;
            }
            // Only this reader takes bytes out, and bytes written meanwhile come after.
            let last = st.due.len() == 1;
            drop(st);
            waiter.wait_until(first, last);
            st = self.lock();
        }
        let now = Instant::now();
        let complete = if st.pacer.is_some() {
            st.due.iter().take_while(|&&d| d <= now).count()
        } else {
            st.buf.len()
        };
        let n = complete.min(out.len());
        let n = Self::take_into(&mut st, &mut out[..n]);
        self.after_take(st);
        Some(n)
    }

    /// Blocking write of all of `data`; `Err(())` if the pipe is (or becomes) closed.
    pub(crate) fn write_all_blocking(&self, mut data: &[u8]) -> Result<(), ()> {
        let mut st = self.lock();
        while !data.is_empty() {
            if st.closed {
                return Err(());
            }
            let room = st.cap.saturating_sub(st.buf.len());
            if room == 0 {
                st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let n = room.min(data.len());
            Self::put(&mut st, &data[..n]);
            data = &data[n..];
            let rw = st.read_waker.take();
            drop(st);
            self.cv.notify_all();
            if let Some(w) = rw {
                w.wake();
            }
            st = self.lock();
        }
        Ok(())
    }
}

/// The modem's receiving end of the pipe: takes the host's bytes as they complete on the
/// wire (paced like a UART when the pipe is: they stay in the pipe, which is the FIFO the
/// host's writes block on, until their stop bit is complete) and hands each piece to
/// `deliver` as soon as it is, until `deliver` says no or `stop` is set.
pub(crate) fn pump(
    to_sim: &Chan,
    paced: bool,
    mut deliver: impl FnMut(Vec<u8>) -> bool,
    stop: &AtomicBool,
) {
    if paced {
        precise_timers();
    }
    let mut buf = vec![0u8; 1024];
    let mut waiter = Waiter::default();
    while !stop.load(Ordering::Relaxed) {
        match to_sim.take_complete(&mut buf, Duration::from_millis(50), &mut waiter) {
            Some(0) => break,
            Some(n) if !deliver(buf[..n].to_vec()) => break,
            Some(_) | None => {}
        }
    }
}

/// The host's receiving half: bytes the simulated modem sends.
///
/// Implements [`embedded_io_async::Read`]; a read returns `Ok(0)` once the simulator has
/// stopped and everything it sent has been read.
pub struct SimReader {
    pub(crate) chan: Arc<Chan>,
}

/// The host's sending half: bytes to the simulated modem.
///
/// Implements [`embedded_io_async::Write`]; writes fail with
/// [`embedded_io::ErrorKind::BrokenPipe`] once the simulator has stopped.
pub struct SimWriter {
    pub(crate) chan: Arc<Chan>,
}

impl SimReader {
    /// Blocking read for tests and tools that do not run an executor: waits at most
    /// `timeout` for at least one byte. Returns `Some(0)` on EOF, `None` on timeout.
    pub fn read_blocking(&mut self, buf: &mut [u8], timeout: Duration) -> Option<usize> {
        self.chan.read_timeout(buf, Some(timeout))
    }
}

impl SimWriter {
    /// Blocking write of all of `data` (for tests and tools without an executor).
    pub fn write_all_blocking(&mut self, data: &[u8]) -> Result<(), embedded_io::ErrorKind> {
        self.chan
            .write_all_blocking(data)
            .map_err(|_| embedded_io::ErrorKind::BrokenPipe)
    }
}

impl Drop for SimWriter {
    fn drop(&mut self) {
        self.chan.close();
    }
}

impl Drop for SimReader {
    fn drop(&mut self) {
        self.chan.close();
    }
}

impl embedded_io::ErrorType for SimReader {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::ErrorType for SimWriter {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io_async::Read for SimReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let chan = &self.chan;
        Ok(core::future::poll_fn(|cx| chan.poll_read(cx.waker(), buf)).await)
    }
}

impl embedded_io_async::Write for SimWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let chan = &self.chan;
        core::future::poll_fn(|cx| chan.poll_write(cx.waker(), buf))
            .await
            .map_err(|_| embedded_io::ErrorKind::BrokenPipe)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
