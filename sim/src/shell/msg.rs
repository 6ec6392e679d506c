//! What the shell's threads (the receive pump, the TCP threads, the handle) send to the
//! modem thread, which alone drives the model.

use std::net::TcpStream;
use std::sync::mpsc::{Receiver, Sender};

use crate::config::{NetworkPolicy, SimFaults};
use crate::model::{ChargeReport, ClientState, ConnectError, LinkId, PowerState, PowerTransition};

/// A message to the modem thread.
pub(crate) enum Msg {
    /// Bytes from the host, complete on the wire now.
    Host(Vec<u8>),
    /// From the network threads.
    Net(NetMsg),
    /// From the handle: a fault or a control (see `SimHandle`).
    Inject(Vec<u8>),
    BreakLink(u8),
    CloseLink {
        id: u8,
        code: u8,
    },
    Reboot,
    Registration(u8),
    Silent(bool),
    State(u8, Sender<Option<ClientState>>),
    SetFaults(SimFaults),
    GetFaults(Sender<SimFaults>),
    /// The current faults out, the edited ones back (the model waits for them).
    EditFaults(Sender<SimFaults>, Receiver<SimFaults>),
    /// A falling edge on PSM_EINT.
    PsmEint,
    NetworkPolicy(NetworkPolicy),
    Charge(Sender<ChargeReport>),
    PowerState(Sender<PowerState>),
    /// Send every power transition from now on to this channel.
    PowerEvents(Sender<PowerTransition>),
    Shutdown,
}

/// What a network thread saw.
pub(crate) enum NetMsg {
    Connected(LinkId, TcpStream),
    ConnectFailed(LinkId, ConnectError),
    Data(LinkId, Vec<u8>),
    Closed(LinkId),
}
