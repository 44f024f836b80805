//! [`Escaped`]: an arena allocation that may outlive the arena's reset.

use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::ChunkHeader;

/// A value in an arena chunk that may outlive [`super::Arena::reset`] and move between
/// threads. It holds a reference on its chunk: while any such handle lives, the chunk is
/// *pinned* (not reused), and the last handle to drop gives the chunk back to its source,
/// on whatever thread that happens.
///
/// Escaped values are read-only once created (shared access through `Deref`), so a
/// handle can be sent or shared whenever `T` is `Send + Sync`.
pub struct Escaped<T: ?Sized> {
    value: NonNull<T>,
    chunk: NonNull<ChunkHeader>,
}

// SAFETY: the handle owns its T and one atomic reference on the chunk; T is Send + Sync
// (required by the constructors), and the chunk release is thread safe.
unsafe impl<T: ?Sized + Send + Sync> Send for Escaped<T> {}
// SAFETY: only shared access to T is given out, and T is Sync.
unsafe impl<T: ?Sized + Send + Sync> Sync for Escaped<T> {}

impl<T: ?Sized> Escaped<T> {
    /// Wraps a value already written into the chunk and takes a reference on the chunk.
    ///
    /// # Safety
    /// `value` must point to an initialised T inside the live chunk `chunk`, owned by this
    /// handle from now on.
    pub(super) unsafe fn new(value: NonNull<T>, chunk: NonNull<ChunkHeader>) -> Self {
        // SAFETY: the chunk is alive (the arena holds a reference while we are created).
        unsafe { chunk.as_ref() }.refs.fetch_add(1, Ordering::Relaxed);
        Self { value, chunk }
    }

    /// The start address of the chunk this value pins.
    pub fn chunk_addr(&self) -> usize {
        self.chunk.as_ptr().addr()
    }
}

impl<T: ?Sized> Deref for Escaped<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the value is initialised and kept alive by our chunk reference.
        unsafe { self.value.as_ref() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Escaped").field(&&**self).finish()
    }
}

impl<T: ?Sized> Drop for Escaped<T> {
    fn drop(&mut self) {
        // SAFETY: we own the value; after dropping it we give up our chunk reference and
        // touch neither again.
        unsafe {
            core::ptr::drop_in_place(self.value.as_ptr());
            ChunkHeader::release(self.chunk);
        }
    }
}
