//! The operator's network between the module and the internet, as far as the module's links
//! see it: the NAT, which forgets a TCP link idle for longer than `NetworkPolicy::nat_idle`
//! (after that, packets either way are dropped: the link is dead, and neither end is told),
//! and the downlink that waits while the module cannot be reached (PSM, or eDRX outside a
//! paging time window), delivered in order when it can. Only this file changes it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::model::link::{ConnectError, LinkId, NetEvent};
use crate::model::time::Time;

/// A network event kept until the module can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Held {
    Connected(LinkId),
    ConnectFailed(LinkId, ConnectError),
    Data(LinkId, Vec<u8>),
    Closed(LinkId),
}

impl Held {
    pub(crate) fn of(ev: &NetEvent<'_>) -> Held {
        match *ev {
            NetEvent::Connected(l) => Held::Connected(l),
            NetEvent::ConnectFailed(l, e) => Held::ConnectFailed(l, e),
            NetEvent::Data(l, b) => Held::Data(l, b.to_vec()),
            NetEvent::Closed(l) => Held::Closed(l),
        }
    }

    pub(crate) fn event(&self) -> NetEvent<'_> {
        match self {
            Held::Connected(l) => NetEvent::Connected(*l),
            Held::ConnectFailed(l, e) => NetEvent::ConnectFailed(*l, *e),
            Held::Data(l, b) => NetEvent::Data(*l, b),
            Held::Closed(l) => NetEvent::Closed(*l),
        }
    }
}

/// The NAT's mapping of one link.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    last: Time,
    dead: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Carrier {
    nat: BTreeMap<LinkId, Mapping>,
    held: VecDeque<Held>,
    expired: u64,
    held_total: u64,
}

impl Carrier {
    /// A packet on `link` at `now` passes the NAT (and refreshes its mapping) unless the
    /// mapping has expired. A link the NAT does not know passes.
    fn pass(&mut self, link: LinkId, now: Time, idle: Option<Duration>) -> bool {
        let Some(m) = self.nat.get_mut(&link) else {
            return true;
        };
        if !m.dead && idle.is_some_and(|i| now.saturating_since(m.last) >= i) {
            m.dead = true;
            self.expired = self.expired.wrapping_add(1);
        }
        if !m.dead {
            m.last = m.last.max(now);
        }
        !m.dead
    }

    /// The module opens `link` (its SYN makes a new mapping).
    pub(crate) fn open(&mut self, link: LinkId, now: Time) {
        self.nat.insert(
            link,
            Mapping {
                last: now,
                dead: false,
            },
        );
    }

    /// The module sends on `link`: whether the packet gets through.
    pub(crate) fn outbound(&mut self, link: LinkId, now: Time, idle: Option<Duration>) -> bool {
        self.pass(link, now, idle)
    }

    /// A packet for the module on `link`: whether it gets through.
    pub(crate) fn inbound(&mut self, link: LinkId, now: Time, idle: Option<Duration>) -> bool {
        self.pass(link, now, idle)
    }

    /// `link` is gone (closed by either end, or its connect failed).
    pub(crate) fn forget(&mut self, link: LinkId) {
        self.nat.remove(&link);
    }

    /// Events wait for the module.
    pub(crate) fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    pub(crate) fn hold(&mut self, ev: Held) {
        self.held_total = self.held_total.wrapping_add(1);
        self.held.push_back(ev);
    }

    /// The oldest event waiting.
    pub(crate) fn pop_held(&mut self) -> Option<Held> {
        self.held.pop_front()
    }

    /// The module restarted: its links are gone, and so is what waited for them.
    pub(crate) fn reset(&mut self) {
        self.nat.clear();
        self.held.clear();
    }

    /// Links whose mapping expired, so far.
    pub(crate) fn expired(&self) -> u64 {
        self.expired
    }

    /// Events that waited for the module, so far.
    pub(crate) fn held_total(&self) -> u64 {
        self.held_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_idle_for_the_nat_timeout_is_dead_both_ways_for_good() {
        let link = LinkId::new(0, 0);
        let idle = Some(Duration::from_secs(300));
        let s = |x: u64| Time::from_millis(x * 1000);
        let mut c = Carrier::default();
        assert!(c.outbound(link, s(0), idle), "unknown links pass");
        c.open(link, s(0));
        assert!(c.inbound(link, s(299), idle));
        assert!(c.outbound(link, s(598), idle), "refreshed at 299 s");
        assert!(!c.outbound(link, s(898), idle));
        assert!(!c.inbound(link, s(899), idle), "dead stays dead");
        assert_eq!(c.expired(), 1);
        c.forget(link);
        assert!(c.inbound(link, s(900), idle));
        c.open(link, s(0));
        assert!(c.inbound(link, s(10_000), None), "no NAT timeout");
    }
}
