//! The intrusive doubly linked list a heap keeps its pages (per size class) and its
//! segments in: the links live in the elements, so the list never allocates.
//!
//! **Complexity.** Push at either end and remove: O(1). **Debug support.** None.

use core::ptr;

/// An element that carries its own `prev` and `next` links.
///
/// # Safety
/// [`Linked::links`] returns pointers to two distinct link fields of `this` that only the
/// list of the element's owner reads or writes.
pub(crate) unsafe trait Linked: Sized {
    /// Pointers to the element's `prev` and `next` fields.
    ///
    /// # Safety
    /// `this` points to a live element.
    unsafe fn links(this: *mut Self) -> (*mut *mut Self, *mut *mut Self);
}

/// A doubly linked list of `T`s, by their own links ([`Linked`]).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct List<T> {
    /// The first element, or null.
    pub(crate) first: *mut T,
    /// The last element, or null.
    pub(crate) last: *mut T,
}

impl<T: Linked> List<T> {
    /// A list with no element.
    pub(crate) const EMPTY: List<T> = List { first: ptr::null_mut(), last: ptr::null_mut() };

    /// Appends `item`.
    ///
    /// # Safety
    /// `item` is owned by the caller and on no list; so is every element of this list.
    pub(crate) unsafe fn push_back(&mut self, item: *mut T) {
        // SAFETY: the caller owns the item and every element of this list.
        unsafe {
            let (prev, next) = T::links(item);
            *next = ptr::null_mut();
            *prev = self.last;
            if self.last.is_null() {
                self.first = item;
            } else {
                *T::links(self.last).1 = item;
            }
        }
        self.last = item;
    }

    /// Prepends `item`.
    ///
    /// # Safety
    /// As [`List::push_back`].
    pub(crate) unsafe fn push_front(&mut self, item: *mut T) {
        // SAFETY: the caller owns the item and every element of this list.
        unsafe {
            let (prev, next) = T::links(item);
            *prev = ptr::null_mut();
            *next = self.first;
            if self.first.is_null() {
                self.last = item;
            } else {
                *T::links(self.first).0 = item;
            }
        }
        self.first = item;
    }

    /// Takes `item` off the list and clears its links.
    ///
    /// # Safety
    /// `item` is on this list, whose elements the caller owns.
    pub(crate) unsafe fn remove(&mut self, item: *mut T) {
        // SAFETY: the caller guarantees the item is on this list, so its links are valid.
        unsafe {
            let (prev_link, next_link) = T::links(item);
            let (prev, next) = (*prev_link, *next_link);
            if prev.is_null() {
                self.first = next;
            } else {
                *T::links(prev).1 = next;
            }
            if next.is_null() {
                self.last = prev;
            } else {
                *T::links(next).0 = prev;
            }
            *prev_link = ptr::null_mut();
            *next_link = ptr::null_mut();
        }
    }
}
