//! Faults of the module itself, driven from `SimHandle`: reboot (and the boot that follows),
//! a silent UART, a link closed with a chosen `+QMTSTAT` code.

use std::time::Instant;

use super::client::Client;
use super::Modem;

impl Modem {
    /// The module restarts now: links dropped without DISCONNECT, every client and option
    /// back to its default, echo on (ATE1, the factory default), CMEE 0, `+CEREG` URCs off,
    /// data mode left, the half-received line and all output not yet sent discarded. For
    /// `boot_time` it ignores the host and sends nothing; then `RDY`.
    pub(super) fn reboot(&mut self) {
        for c in &mut self.clients {
            c.drop_link();
            // Keep the generation, so that late events of the old links stay ignored.
            let gen = c.gen;
            *c = Client::new(self.cfg.default_version);
            c.gen = gen;
        }
        self.echo = true;
        self.cmee = 0;
        self.line.clear();
        self.echo_buf.clear();
        self.data = None;
        self.queue.clear();
        self.out.discard();
        self.net.reset();
        self.boot_until = Some(Instant::now() + self.cfg.boot_time);
    }

    pub(super) fn booting(&self) -> bool {
        self.boot_until.is_some()
    }

    /// At the end of the boot: `RDY`.
    pub(super) fn boot_timer(&mut self) {
        if self.boot_until.is_some_and(|t| Instant::now() >= t) {
            self.boot_until = None;
            self.emit(b"\r\nRDY\r\n");
        }
    }

    /// A silent UART: nothing from the host is taken, nothing is sent (and what would have
    /// been sent is lost); MQTT goes on.
    pub(super) fn set_silent(&mut self, silent: bool) {
        self.silent = silent;
        self.out.set_silent(silent);
    }

    /// The module closes client `id`'s link (no DISCONNECT) and reports `+QMTSTAT: <id>,<code>`;
    /// nothing happens when the client has no link.
    pub(super) fn close_link(&mut self, id: usize, code: u8) {
        if let Some(c) = self.clients.get_mut(id).filter(|c| c.st.has_link()) {
            c.drop_link();
            self.urc(format!("+QMTSTAT: {id},{code}").into_bytes());
        }
    }
}
