//! Shows the AT traffic on standard error: a reader or writer that copies
//! what passes through it, one line per chunk.

use std::time::Instant;

/// Wraps a UART half; prints each chunk with its direction when `on`.
pub struct Tap<T> {
    pub inner: T,
    pub arrow: &'static str,
    pub on: bool,
    pub start: Instant,
}

fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

impl<T: embedded_io_async::ErrorType> embedded_io_async::ErrorType for Tap<T> {
    type Error = T::Error;
}

impl<T: embedded_io_async::Read> embedded_io_async::Read for Tap<T> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, T::Error> {
        let n = self.inner.read(buf).await?;
        if self.on && n > 0 {
            eprintln!(
                "{:8.3}s {} {}",
                self.start.elapsed().as_secs_f64(),
                self.arrow,
                show(&buf[..n])
            );
        }
        Ok(n)
    }
}

impl<T: embedded_io_async::Write> embedded_io_async::Write for Tap<T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, T::Error> {
        let n = self.inner.write(buf).await?;
        if self.on && n > 0 {
            eprintln!(
                "{:8.3}s {} {}",
                self.start.elapsed().as_secs_f64(),
                self.arrow,
                show(&buf[..n])
            );
        }
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), T::Error> {
        self.inner.flush().await
    }
}
