//! The threaded simulator: a shell of threads around the model (`crate::model`) that runs it
//! in real time behind a pipe or a pseudo-terminal paced like a UART (`uart.rs`, `tx.rs`,
//! `pipe.rs`, `pty.rs`), with its links as TCP connections to a real broker (`net.rs`). One
//! thread drives the model (`runner.rs`); the others send it messages (`msg.rs`).

pub(crate) mod handle;
pub(crate) mod msg;
pub(crate) mod net;
pub(crate) mod pipe;
pub(crate) mod pty;
pub(crate) mod runner;
pub(crate) mod tx;
pub(crate) mod uart;
