//! Waits that any number of tasks share without spinning and without a
//! missed wake-up: the ground floor of every "wait until this changes" of
//! the driver and its supervisor, and its async lock (imports none of the
//! owners: only `sync.rs`).
//!
//! embassy-sync's `MultiWakerRegistration<N>`, when full, wakes every waker
//! it holds and keeps the new one: with more than `N` tasks waiting, each
//! poll wakes the others, which register again, for ever (found by the
//! world, `world/README.md`, "Found"). Here a [`WaitSet`] keeps
//! [`SLOTS`] wakers, and when they are all taken a new waiter *takes over*
//! one of them instead of waking it: it keeps the waker it displaced in its
//! own future ([`Waiter`]) and wakes it when it is woken itself (or ends, or
//! is dropped). The waiters form chains behind the slots; a wake-up of the
//! set wakes the slots, each woken waiter wakes the one it holds, and so on:
//! every waiter is polled once per wake-up, however many there are, and no
//! waiter is woken while nothing changed.
//!
//! A waiter that is polled with nothing changed since it registered (a
//! [`round`](WaitSet) later than its own would say so) is still registered
//! (in a slot or held by another waiter) and registers nothing again, so a
//! spurious poll displaces nobody.

use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use embassy_sync::blocking_mutex::Mutex as BlockingMutex;

use crate::sync::RawMutex;

/// Wakers a [`WaitSet`] holds itself by default; more waiters hold each
/// other's (any `N` from 1 works for any number of waiters: more slots, fewer
/// chains).
pub(crate) const SLOTS: usize = 4;

/// The waiters of one condition, `N` slots. Change the condition and call
/// [`wake`](Set::wake) under the same lock as the waiters' check and
/// registration ([`Waiter::poll`]).
pub(crate) type WaitSet<const N: usize = SLOTS> = Set<[Option<Waker>; N]>;

/// A [`WaitSet`]; its code is written for the set seen without its size
/// (`Set<[Option<Waker>]>`, which any `WaitSet<N>` is as a reference): one
/// copy of it whatever the number of slots.
pub(crate) struct Set<S: ?Sized> {
    /// Bumped at each wake-up: a waiter registered in an older round was
    /// woken since.
    round: u32,
    /// The slot the next waiter takes over when all are full.
    next: u8,
    slots: S,
}

impl<const N: usize> Set<[Option<Waker>; N]> {
    /// An empty set, as a constant: a constant is written as one block
    /// (zeros), not slot by slot in a loop as an array made at run time.
    const EMPTY: Self = Self {
        round: 0,
        next: 0,
        slots: [const { None }; N],
    };

    pub(crate) const fn new() -> Self {
        Self::EMPTY
    }

    /// The condition changed: every waiter is woken (those in the slots now;
    /// each of them wakes the one it took over).
    #[inline]
    pub(crate) fn wake(&mut self) {
        Set::wake_all(self)
    }
}

impl Set<[Option<Waker>]> {
    /// [`wake`](Set::wake) for any size. Not inlined: it is called at every
    /// change of every condition.
    #[inline(never)]
    fn wake_all(&mut self) {
        self.round = self.round.wrapping_add(1);
        for s in &mut self.slots {
            if let Some(w) = s.take() {
                w.wake();
            }
        }
    }

    /// Puts `waker` in a slot: its own if it is there, a free one, or one it
    /// takes over (the waker displaced is returned: its waiter's keeper is
    /// now the caller). The slots are taken over in turn.
    fn register(&mut self, waker: &Waker) -> Option<Waker> {
        if self.slots.iter().flatten().any(|w| w.will_wake(waker)) {
            return None;
        }
        if let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) {
            *free = Some(waker.clone());
            return None;
        }
        let i = usize::from(self.next);
        let i = if i < self.slots.len() { i } else { 0 };
        self.next = (i + 1) as u8;
        self.slots.get_mut(i)?.replace(waker.clone())
    }
}

/// One waiter's side of a [`WaitSet`], kept in its future.
#[derive(Default)]
pub(crate) struct Waiter {
    /// The set's round when it registered (`None`: not registered).
    round: Option<u32>,
    /// The waker it registered.
    mine: Option<Waker>,
    /// The waker of another waiter, displaced from a slot by this one: woken
    /// when this one is.
    held: Option<Waker>,
}

impl Waiter {
    /// One poll, under the lock of `set` and of the condition: `ready` is
    /// the condition's value now (`None`: not yet). Registers `waker` while
    /// it is not ready, passes on what it holds once it is.
    pub(crate) fn poll<T, const N: usize>(
        &mut self,
        set: &mut WaitSet<N>,
        waker: &Waker,
        ready: Option<T>,
    ) -> Poll<T> {
        self.step(set, waker, ready.is_some());
        match ready {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }

    /// [`poll`](Self::poll), without the value nor the set's size: once,
    /// not once per type and size.
    #[inline(never)]
    fn step(&mut self, set: &mut Set<[Option<Waker>]>, waker: &Waker, ready: bool) {
        if self.round != Some(set.round) {
            // Woken (or never registered): the one it holds was woken too.
            if let Some(h) = self.held.take() {
                h.wake();
            }
        }
        if ready {
            self.release(set);
        } else {
            self.register(set, waker);
        }
    }

    fn register(&mut self, set: &mut Set<[Option<Waker>]>, waker: &Waker) {
        let same = self.mine.as_ref().is_some_and(|m| m.will_wake(waker));
        if self.round == Some(set.round) && same {
            // Nothing changed since it registered: still in a slot, or held
            // by the waiter that took its slot over.
            return;
        }
        if self.held.is_some() {
            // Another waker for this waiter while it holds one (a future
            // moved to another task): the two cannot both be kept; wake
            // everyone once, then register afresh.
            set.wake_all();
            if let Some(h) = self.held.take() {
                h.wake();
            }
        }
        self.held = set.register(waker);
        self.round = Some(set.round);
        self.mine = Some(waker.clone());
    }

    /// Done waiting (ready, or dropped): the waker it holds is woken, after a
    /// new round (it may be registered in the current one, and must look
    /// again, not think itself still registered).
    fn release(&mut self, set: &mut Set<[Option<Waker>]>) {
        if let Some(h) = self.held.take() {
            if self.round == Some(set.round) {
                set.wake_all();
            }
            h.wake();
        }
        self.round = None;
        self.mine = None;
    }

    /// True when dropping it must [`release`](Self::release) under the lock.
    fn holds(&self) -> bool {
        self.held.is_some()
    }
}

/// A wait on a [`WaitSet`]: `check` locks, reads the condition and calls
/// [`Waiter::poll`]; `lock` runs its argument on the set under the same lock
/// (when the wait is dropped while it holds another waiter's waker).
pub(crate) struct Wait<const N: usize, L: FnMut(&mut dyn FnMut(&mut WaitSet<N>)), F> {
    waiter: Held<N, L>,
    check: F,
}

/// A [`Waiter`] and the lock of its set: what a dropped [`Wait`] needs
/// (apart, so that its drop is made once per lock, not per check).
struct Held<const N: usize, L: FnMut(&mut dyn FnMut(&mut WaitSet<N>))> {
    lock: L,
    waiter: Waiter,
}

/// Waits on a set: see [`Wait`].
pub(crate) fn wait<T, const N: usize, L, F>(lock: L, check: F) -> Wait<N, L, F>
where
    L: FnMut(&mut dyn FnMut(&mut WaitSet<N>)) + Unpin,
    F: FnMut(&mut Waiter, &Waker) -> Poll<T> + Unpin,
{
    Wait {
        waiter: Held {
            lock,
            waiter: Waiter::default(),
        },
        check,
    }
}

impl<T, const N: usize, L, F> Future for Wait<N, L, F>
where
    L: FnMut(&mut dyn FnMut(&mut WaitSet<N>)) + Unpin,
    F: FnMut(&mut Waiter, &Waker) -> Poll<T> + Unpin,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        (this.check)(&mut this.waiter.waiter, cx.waker())
    }
}

impl<const N: usize, L: FnMut(&mut dyn FnMut(&mut WaitSet<N>))> Drop for Held<N, L> {
    fn drop(&mut self) {
        if self.waiter.holds() {
            let waiter = &mut self.waiter;
            (self.lock)(&mut |set| waiter.release(set));
        }
    }
}

/// An async lock any number of tasks may wait for without spinning: the AT
/// lock and the clients' operation locks. (embassy-sync's `Mutex` keeps one
/// waker: two tasks waiting for it wake each other for as long as it is
/// held.) Each release wakes the waiters once; one takes it, the others
/// wait again. One slot: the waiters chain behind it.
pub(crate) struct Lock<M: RawMutex> {
    st: BlockingMutex<M, RefCell<LockState>>,
}

struct LockState {
    held: bool,
    waiters: WaitSet<1>,
}

/// The lock, held until dropped.
pub(crate) struct LockGuard<'a, M: RawMutex> {
    lock: &'a Lock<M>,
}

impl<M: RawMutex> Lock<M> {
    pub(crate) const fn new() -> Self {
        Self {
            st: BlockingMutex::new(RefCell::new(LockState {
                held: false,
                waiters: WaitSet::new(),
            })),
        }
    }

    /// Waits until the lock is free, and takes it.
    /// (The wait itself, not an async fn around it: a state machine less.)
    pub(crate) fn lock(&self) -> impl Future<Output = LockGuard<'_, M>> + '_ {
        let take = move |w: &mut Waiter, waker: &Waker| {
            self.st
                .lock(|s| {
                    let s = &mut *s.borrow_mut();
                    let free = !s.held;
                    if free {
                        s.held = true;
                    }
                    w.poll(&mut s.waiters, waker, free.then_some(()))
                })
                .map(|()| LockGuard { lock: self })
        };
        let set = move |f: &mut dyn FnMut(&mut WaitSet<1>)| {
            self.st.lock(|s| f(&mut s.borrow_mut().waiters))
        };
        wait(set, take)
    }
}

impl<M: RawMutex> Drop for LockGuard<'_, M> {
    fn drop(&mut self) {
        self.lock.st.lock(|s| {
            let s = &mut *s.borrow_mut();
            s.held = false;
            s.waiters.wake();
        })
    }
}

/// A wake-up for one waiter at a time (the runner, from the handles and the
/// digester): embassy-sync's `Signal<M, ()>`, but a waiter polled again
/// with nothing signalled (the runner's transmit side, each time a UART
/// read wakes its task) takes no lock: it looks at a flag, and its waker is
/// still registered. The flag is level-triggered for the waiter's loop: a
/// signal after the waiter saw the flag wakes it again or is seen by its
/// next look at the state it waits for.
pub(crate) struct Nudge<M: RawMutex> {
    /// Signalled and not yet taken (loads and stores only: ARMv6-M too).
    flag: AtomicBool,
    waker: BlockingMutex<M, Cell<Option<Waker>>>,
}

impl<M: RawMutex> Nudge<M> {
    pub(crate) const fn new() -> Self {
        Self {
            flag: AtomicBool::new(false),
            waker: BlockingMutex::new(Cell::new(None)),
        }
    }

    /// Wakes the waiter (or the next one to wait).
    pub(crate) fn signal(&self) {
        let waker = self.waker.lock(|w| {
            self.flag.store(true, Ordering::Release);
            w.take()
        });
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Waits until signalled (taking the signal).
    pub(crate) fn wait(&self) -> impl Future<Output = ()> + '_ {
        // The waker this wait registered, while it is registered.
        let mut mine: Option<Waker> = None;
        core::future::poll_fn(move |cx| {
            if self.take() {
                return Poll::Ready(());
            }
            if mine.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                // Registered, and not signalled since (a signal takes the
                // waker after it sets the flag): nothing to do.
                return Poll::Pending;
            }
            self.waker.lock(|w| {
                w.set(Some(cx.waker().clone()));
                mine = Some(cx.waker().clone());
            });
            if self.take() {
                return Poll::Ready(());
            }
            Poll::Pending
        })
    }

    fn take(&self) -> bool {
        if self.flag.load(Ordering::Acquire) {
            self.flag.store(false, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::vec::Vec;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn wakers(n: usize) -> Vec<(Arc<Count>, Waker)> {
        (0..n)
            .map(|_| {
                let c = Arc::new(Count(AtomicUsize::new(0)));
                (c.clone(), Waker::from(c))
            })
            .collect()
    }

    fn woken(w: &[(Arc<Count>, Waker)]) -> Vec<usize> {
        w.iter()
            .map(|(c, _)| c.0.swap(0, Ordering::Relaxed))
            .collect()
    }

    /// The condition: a value that waiters wait to reach `target`.
    struct Cond {
        set: WaitSet<SLOTS>,
        value: u32,
    }

    #[test]
    fn sixteen_waiters_register_without_waking_each_other_and_all_are_woken_at_a_change() {
        let cell = RefCell::new(Cond {
            set: WaitSet::<SLOTS>::new(),
            value: 0,
        });
        let w = wakers(16);
        let mut ws: Vec<Waiter> = (0..16).map(|_| Waiter::default()).collect();
        let poll = |i: usize, ws: &mut Vec<Waiter>| {
            let mut c = cell.borrow_mut();
            let ready = (c.value >= 2).then_some(());
            let Cond { set, .. } = &mut *c;
            ws[i].poll(set, &w[i].1, ready)
        };
        for i in 0..16 {
            assert!(poll(i, &mut ws).is_pending());
        }
        assert_eq!(woken(&w), [0; 16], "registering woke nobody");
        // Spurious polls register nothing again and wake nobody.
        for i in 0..16 {
            assert!(poll(i, &mut ws).is_pending());
        }
        assert_eq!(woken(&w), [0; 16]);
        // A change that is not the one awaited: every waiter is woken once,
        // through the chains, as each woken one is polled.
        for round in 1..=2u32 {
            {
                let mut c = cell.borrow_mut();
                c.value = round;
                c.set.wake();
            }
            let mut total = [0usize; 16];
            let mut polls = 0;
            loop {
                let now = woken(&w);
                if now.iter().all(|&n| n == 0) {
                    break;
                }
                for (i, n) in now.iter().enumerate() {
                    total[i] += n;
                    if *n > 0 {
                        polls += 1;
                        let r = poll(i, &mut ws);
                        assert_eq!(r.is_ready(), round == 2);
                    }
                }
            }
            assert_eq!(total, [1; 16], "round {round}: each woken once");
            assert_eq!(polls, 16);
        }
    }

    #[test]
    fn a_waiter_dropped_while_it_holds_another_wakes_it_and_it_registers_again() {
        let cell = RefCell::new(WaitSet::<SLOTS>::new());
        let w = wakers(SLOTS + 1);
        let mut ws: Vec<Waiter> = (0..=SLOTS).map(|_| Waiter::default()).collect();
        for i in 0..=SLOTS {
            let p: Poll<()> = ws[i].poll(&mut cell.borrow_mut(), &w[i].1, None);
            assert!(p.is_pending());
        }
        // The last one took over slot 0: it holds waiter 0's waker.
        assert!(ws[SLOTS].holds());
        let mut last = ws.pop().unwrap();
        last.release(&mut *cell.borrow_mut());
        let n = woken(&w);
        assert_eq!(n[0], 1, "the held one is woken: {n:?}");
        // Woken by a release, it registers again (its round is old).
        let p: Poll<()> = ws[0].poll(&mut cell.borrow_mut(), &w[0].1, None);
        assert!(p.is_pending());
        assert!(cell
            .borrow()
            .slots
            .iter()
            .flatten()
            .any(|x| x.will_wake(&w[0].1)));
    }

    #[test]
    fn a_nudge_wakes_its_waiter_once_per_signal_and_a_signal_before_the_wait_is_kept() {
        use embassy_sync::blocking_mutex::raw::NoopRawMutex;
        let n = Nudge::<NoopRawMutex>::new();
        let w = wakers(1);
        let mut cx = Context::from_waker(&w[0].1);
        // Signalled before anyone waits: the next wait ends at once.
        n.signal();
        let mut f = core::pin::pin!(n.wait());
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(()));
        // Nothing signalled: pending, polled again (no lock), still pending.
        let mut f = core::pin::pin!(n.wait());
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(woken(&w), [0]);
        // A signal wakes the waiter once, and the wait ends.
        n.signal();
        assert_eq!(woken(&w), [1]);
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(()));
        // Taken: the next wait waits again.
        let mut f = core::pin::pin!(n.wait());
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        n.signal();
        n.signal();
        assert_eq!(woken(&w), [1], "the second signal finds no waker to wake");
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(()));
    }
}
