//! Host-side glue shared by the programs that run the `bc26-mqtt` driver on
//! a PC: the `bc26` command line (`cli/`) and the `quickstart` and `demo`
//! examples.
//!
//! - [`serial`]: a serial device (a USB adapter, or a pseudo-terminal such as
//!   the simulator's) as the driver's UART halves;
//! - [`tap`]: a UART half that also shows the AT traffic on standard error.

pub mod serial;
pub mod tap;
