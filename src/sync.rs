//! The driver's ground floor: the lock every owner's state is built on, and
//! the size-erased view of the `State`'s parts whose size is a const
//! generic. It imports none of the owners, so that `state.rs` can compose
//! them without an import circle.
//!
//! Every lock of the driver (its blocking mutexes, held for a few
//! instructions and never across an await; its signals; the AT lock; the
//! notice channel) is over one embassy-sync [`RawMutex`] `M`, a type
//! parameter of the [`State`](crate::State) and of every handle, which
//! defaults to [`CriticalSectionRawMutex`] (docs/crate.md says which to pick).

use core::marker::PhantomData;
use core::ops::Deref;

use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_sync::pubsub::PubSubChannel;

pub use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, RawMutex};

/// A part of the `State` that is locked by `M` and by nothing else: it is
/// `Sync` whenever `M` is (embassy-sync's `BlockingMutex<M, X>`, its async
/// `Mutex<M, X>` and `PubSubChannel<M, X, ..>` are `Sync` when `M: Sync` and
/// `X: Send`). Crate-private, and implemented only here, for those three types.
pub(crate) trait LockedBy<M> {}

impl<M: RawMutex, X: ?Sized + Send> LockedBy<M> for BlockingMutex<M, X> {}

impl<M: RawMutex, X: ?Sized + Send> LockedBy<M> for embassy_sync::mutex::Mutex<M, X> {}

impl<M: RawMutex, X: Clone + Send, const C: usize, const S: usize, const P: usize> LockedBy<M>
    for PubSubChannel<M, X, C, S, P>
{
}

/// A reference to a part of the `State` whose size is a const generic, seen
/// through a trait object `T` that hides the size: handles are then not
/// generic over the sizes. `Copy`.
///
/// A trait object forgets whether what it points to is `Sync`; this puts it
/// back: a `Part` is `Send` and `Sync` exactly when the lock `M` is `Sync`,
/// as the part itself is. So with the default `CriticalSectionRawMutex` the
/// handles can be shared with tasks of other executors and interrupt
/// priorities, and with `NoopRawMutex` (not `Sync`) they cannot leave the
/// executor.
pub(crate) struct Part<'a, M, T: ?Sized> {
    part: &'a T,
    _lock: PhantomData<M>,
}

impl<'a, M, T: ?Sized + LockedBy<M>> Part<'a, M, T> {
    pub(crate) fn new(part: &'a T) -> Self {
        Self {
            part,
            _lock: PhantomData,
        }
    }
}

impl<'a, M, T: ?Sized> Part<'a, M, T> {
    /// The part, for as long as the `State` is borrowed.
    pub(crate) fn get(self) -> &'a T {
        self.part
    }
}

impl<M, T: ?Sized> Clone for Part<'_, M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T: ?Sized> Copy for Part<'_, M, T> {}

impl<M, T: ?Sized> Deref for Part<'_, M, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.part
    }
}

// SAFETY: a `Part` is a shared reference to a `T`, and gives access to
// nothing but `&T` (through `Deref`). Sending or sharing `&T` is sound when
// the object behind it is `Sync`. It is: `new` takes only a `T: LockedBy<M>`
// (for a trait object, a trait whose supertrait is `LockedBy<M>`, so every
// object behind it is of an implementing type), and `LockedBy<M>` is a
// crate-private trait implemented above only for `BlockingMutex<M, X>`,
// `embassy_sync::mutex::Mutex<M, X>` and `PubSubChannel<M, X, ..>` with
// `X: Send`, which embassy-sync declares `Sync` when `M: RawMutex + Sync`.
// Both impls ask for `M: Sync`.
#[allow(unsafe_code)]
unsafe impl<M: RawMutex + Sync, T: ?Sized + LockedBy<M>> Send for Part<'_, M, T> {}
// SAFETY: as for `Send` above.
#[allow(unsafe_code)]
unsafe impl<M: RawMutex + Sync, T: ?Sized + LockedBy<M>> Sync for Part<'_, M, T> {}
