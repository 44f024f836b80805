//! Debug guards: a build mode of the allocators, not a separate copy of them.
//!
//! With the `guard` cargo feature:
//!
//! | guard | where | how it fires |
//! |---|---|---|
//! | guard page | the last page of every chunk ([`crate::source::chunk`]), so after every arena chunk, pool slab run and size-class chunk | `SIGSEGV` on the first byte past a chunk |
//! | poisoning | reset arena memory, freed pool, free-list and size-class blocks | freed memory reads as [`POISON_FREED`] bytes; the pool, the free list and the size classes check it when they hand the memory out again ("write after free detected") |
//! | canaries | after every arena allocation, pool block and size-class block | checked on reset and drop (arena), free (pool, size classes) and realloc in place (size classes): "overwrite detected" |
//! | double free | the pool's bit per block, the free list's tags (a freed block's header is poisoned when it coalesces downwards), the size classes' state word per slot | "double free of ... block" |
//! | bad pointer | the free list's segment bounds and block walk, the size classes' state word | "not a block in use" |
//!
//! `docs/reliability.md` has the table per allocator: what each misuse is caught by, when,
//! and the test that shows it firing.
//!
//! With the `asan` feature (and a build with `-Zsanitizer=address`, see `scripts/sanitize`)
//! the allocators also tell AddressSanitizer which of their bytes are handed out: memory a
//! chunk source holds, an arena's unallocated tail and reset memory, and free pool blocks are
//! *poisoned*, so a use after reset or after free of allocator memory is reported as
//! `use-after-poison`, the way PostgreSQL describes its memory contexts to Valgrind.
//!
//! With the `valgrind` feature the same hooks become Valgrind client requests (see
//! [`crate::valgrind`]): unaddressable ranges are `MAKE_MEM_NOACCESS`, memory handed out is
//! `MAKE_MEM_UNDEFINED`, so memcheck reports a read after reset or after free as an invalid
//! read, and a branch on fresh, unwritten allocator memory as a use of uninitialised memory.
//!
//! Neither tool is told about a [`crate::FixedArena`]'s buffer: it is the caller's memory,
//! and `mem::forget` of the arena would leave the marks on it after the borrow ends.
//!
//! Without the features every function here compiles to nothing and the allocators carry
//! no per-object metadata. A guard that fires panics with a message starting with
//! `allockit guard:`: a detected corruption is a bug in the caller, and continuing would
//! spread it (glibc aborts for the same reason). Exhaustion and bad input are never
//! reported this way; they are `Err` values.

/// The byte written over memory that has been freed or reset.
pub const POISON_FREED: u8 = 0xDD;

/// The value of a canary word placed after an allocation.
pub const CANARY: u64 = 0xA110_C0DE_CA7A_1157;

/// Bytes of the canary after each guarded allocation.
pub const CANARY_LEN: usize = core::mem::size_of::<u64>();

/// Whether the guards are compiled in.
pub const ENABLED: bool = cfg!(feature = "guard");

/// Fills `[ptr, ptr + len)` with [`POISON_FREED`] when guards are on.
///
/// # Safety
/// The range must be writable memory owned by the caller and holding nothing live.
#[inline]
pub unsafe fn poison(ptr: *mut u8, len: usize) {
    if ENABLED {
        // SAFETY: guaranteed by the caller.
        unsafe { ptr.write_bytes(POISON_FREED, len) };
    }
}

/// Writes a canary at `ptr` (unaligned) when guards are on.
///
/// # Safety
/// `[ptr, ptr + CANARY_LEN)` must be writable memory owned by the caller.
#[inline]
pub unsafe fn write_canary(ptr: *mut u8) {
    if ENABLED {
        // SAFETY: guaranteed by the caller.
        unsafe { ptr.cast::<u64>().write_unaligned(CANARY) };
    }
}

/// Checks the canary at `ptr`; panics with "overwrite detected" if it was damaged.
///
/// # Safety
/// `[ptr, ptr + CANARY_LEN)` must be readable memory where a canary was written.
#[inline]
pub unsafe fn check_canary(ptr: *const u8, what: &str) {
    if ENABLED {
        // SAFETY: guaranteed by the caller.
        let found = unsafe { ptr.cast::<u64>().read_unaligned() };
        if found != CANARY {
            fired(format_args!("overwrite detected after {what} at {ptr:p} (canary {found:#018x})"));
        }
    }
}

/// Checks that `[block + from, block + to)` still holds [`POISON_FREED`] bytes (memory
/// handed out again after it was freed and poisoned); panics with "write after free
/// detected in {what} {block} at offset {n}" at the first byte that does not.
///
/// # Safety
/// The range must be readable memory the allocator owns.
#[inline]
pub unsafe fn check_poisoned(block: *const u8, from: usize, to: usize, what: &str) {
    if ENABLED && to > from {
        // SAFETY: guaranteed by the caller.
        let bytes = unsafe { core::slice::from_raw_parts(block.add(from), to - from) };
        if let Some(at) = bytes.iter().position(|&b| b != POISON_FREED) {
            fired(format_args!("write after free detected in {what} {block:p} at offset {}", from + at));
        }
    }
}

/// Reports a guard that fired.
#[cold]
#[inline(never)]
#[track_caller]
pub fn fired(what: core::fmt::Arguments<'_>) -> ! {
    panic!("allockit guard: {what}")
}

/// The message of the guard that `misuse` makes fire (it must fire): for the unit tests
/// of the guards, which assert the whole message.
#[cfg(all(test, feature = "guard"))]
pub(crate) fn message_of(misuse: impl FnOnce()) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(misuse)).expect_err("no guard fired");
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast::<&str>().map(|message| message.to_string()).unwrap(),
    }
}

#[cfg(feature = "asan")]
unsafe extern "C" {
    fn __asan_poison_memory_region(addr: *const u8, size: usize);
    fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
}

/// Whether AddressSanitizer hooks are compiled in (the `asan` feature).
pub const ASAN: bool = cfg!(feature = "asan");

/// Whether Valgrind client requests are compiled in (the `valgrind` feature, x86-64).
pub const VALGRIND: bool = crate::valgrind::ENABLED;

/// Tells the tools that `[ptr, ptr + len)` must not be touched (ASan poison, memcheck
/// no-access).
///
/// # Safety
/// The range must be memory the allocator owns and no live allocation uses.
#[inline(always)]
#[cfg_attr(not(feature = "asan"), allow(unused_variables))]
pub unsafe fn make_unaddressable(ptr: *const u8, len: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: the ASan runtime only updates its shadow memory for the range.
    unsafe {
        __asan_poison_memory_region(ptr, len)
    };
    // SAFETY: as guaranteed by the caller.
    unsafe { crate::valgrind::make_noaccess(ptr, len) };
}

/// Tells the tools that `[ptr, ptr + len)` is handed out: addressable, its contents
/// undefined until written (ASan unpoison, memcheck undefined).
///
/// # Safety
/// The range must be memory the allocator owns and hands out.
#[inline(always)]
#[cfg_attr(not(feature = "asan"), allow(unused_variables))]
pub unsafe fn make_addressable(ptr: *const u8, len: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: the ASan runtime only updates its shadow memory for the range.
    unsafe {
        __asan_unpoison_memory_region(ptr, len)
    };
    // SAFETY: as guaranteed by the caller.
    unsafe { crate::valgrind::make_undefined(ptr, len) };
}

/// Tells the tools that the allocator reads `[ptr, ptr + len)` again, with the contents it
/// wrote there before it made the range unaddressable (ASan unpoison, memcheck defined).
///
/// # Safety
/// The range must be memory the allocator owns, and the bytes the allocator reads in it must
/// be bytes it wrote (memcheck takes the whole range as defined).
#[inline(always)]
#[cfg_attr(not(feature = "asan"), allow(unused_variables))]
pub unsafe fn make_readable(ptr: *const u8, len: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: the ASan runtime only updates its shadow memory for the range.
    unsafe {
        __asan_unpoison_memory_region(ptr, len)
    };
    // SAFETY: as guaranteed by the caller.
    unsafe { crate::valgrind::make_defined(ptr, len) };
}

/// Tells memcheck that the contents of `[ptr, ptr + len)`, addressable already, are
/// undefined from now on: a recycled block handed out again (nothing for ASan, which does
/// not track definedness).
///
/// # Safety
/// The range must be memory the allocator owns and hands out.
#[inline(always)]
pub unsafe fn make_undefined(ptr: *const u8, len: usize) {
    // SAFETY: as guaranteed by the caller.
    unsafe { crate::valgrind::make_undefined(ptr, len) };
}
