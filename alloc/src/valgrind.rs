//! Valgrind client requests (the `valgrind` feature): the allocators tell memcheck which of
//! their bytes are handed out, as PostgreSQL's memory contexts do with
//! `VALGRIND_MAKE_MEM_NOACCESS` and friends, so that memcheck reports a read after
//! [`crate::Arena::reset`] or after a pool free as an invalid read.
//!
//! A client request is a magic instruction sequence that does nothing on a real CPU (four
//! rotations of `rdi` by 128 bits in all, then `xchg rbx, rbx`) and that Valgrind's
//! translator recognises; `rax` points at the request and its arguments, `rdx` carries the
//! default result in and the result out. This is the x86-64 sequence of `valgrind.h`
//! (`VALGRIND_DO_CLIENT_REQUEST_EXPR`), written out so that the crate needs no C headers.
//! Outside Valgrind, and on other architectures or without the feature, every function here
//! does nothing.
//!
//! | request | memcheck state of the range | used when |
//! |---|---|---|
//! | [`make_noaccess`] | unaddressable: any access is an error | a chunk goes back, an arena resets or frees its tip, a pool block is freed |
//! | [`make_undefined`] | addressable, contents undefined | a chunk, an arena allocation or a pool block is handed out |
//! | [`make_defined`] | addressable, contents defined | the allocator reads its own data in a range it had closed (a free pool block's link) |

/// Whether the client requests are compiled in (the `valgrind` feature on x86-64).
pub const ENABLED: bool = cfg!(all(feature = "valgrind", target_arch = "x86_64"));

/// `VG_USERREQ__RUNNING_ON_VALGRIND` (valgrind.h).
#[cfg(all(feature = "valgrind", target_arch = "x86_64"))]
const RUNNING_ON_VALGRIND: usize = 0x1001;

/// The first memcheck request, `VG_USERREQ_TOOL_BASE('M', 'C')` (memcheck.h); the next two
/// are `MAKE_MEM_UNDEFINED` and `MAKE_MEM_DEFINED`.
#[cfg(all(feature = "valgrind", target_arch = "x86_64"))]
const MAKE_MEM_NOACCESS: usize = ((b'M' as usize) << 24) | ((b'C' as usize) << 16);

/// Issues a client request; returns `default` when not running under Valgrind.
#[cfg(all(feature = "valgrind", target_arch = "x86_64"))]
#[inline(always)]
fn client_request(default: usize, request: usize, arg1: usize, arg2: usize) -> usize {
    let args: [usize; 6] = [request, arg1, arg2, 0, 0, 0];
    let result: usize;
    // SAFETY: on a real CPU the sequence leaves every register as it found it (rdi is
    // rotated by 3 + 13 + 61 + 51 = 128 bits, a multiple of 64; `xchg rbx, rbx` is a no-op)
    // except the flags, which asm! assumes clobbered by default; rdx keeps `default`. Under
    // Valgrind the request only reads `args` (live across the asm, so the pointer is valid)
    // and updates Valgrind's own shadow state, then writes the result to rdx. The asm may
    // read memory (no `nomem`/`readonly`), as valgrind.h's "memory" clobber says.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") default => result,
            options(nostack),
        );
    }
    result
}

/// Whether this process runs under Valgrind (always false without the feature).
pub fn running_on_valgrind() -> bool {
    #[cfg(all(feature = "valgrind", target_arch = "x86_64"))]
    {
        client_request(0, RUNNING_ON_VALGRIND, 0, 0) != 0
    }
    #[cfg(not(all(feature = "valgrind", target_arch = "x86_64")))]
    {
        false
    }
}

/// Marks `[ptr, ptr + len)` unaddressable for memcheck (`VALGRIND_MAKE_MEM_NOACCESS`).
///
/// # Safety
/// The range must be memory the allocator owns and no live allocation uses: a later access
/// by correct code would be reported.
#[inline(always)]
#[cfg_attr(not(all(feature = "valgrind", target_arch = "x86_64")), allow(unused_variables))]
pub unsafe fn make_noaccess(ptr: *const u8, len: usize) {
    #[cfg(all(feature = "valgrind", target_arch = "x86_64"))]
    client_request(0, MAKE_MEM_NOACCESS, ptr.addr(), len);
}

/// Marks `[ptr, ptr + len)` addressable with undefined contents
/// (`VALGRIND_MAKE_MEM_UNDEFINED`): fresh memory handed out.
///
/// # Safety
/// The range must be memory the allocator owns and is handing out (or has handed out).
#[inline(always)]
#[cfg_attr(not(all(feature = "valgrind", target_arch = "x86_64")), allow(unused_variables))]
pub unsafe fn make_undefined(ptr: *const u8, len: usize) {
    #[cfg(all(feature = "valgrind", target_arch = "x86_64"))]
    client_request(0, MAKE_MEM_NOACCESS + 1, ptr.addr(), len);
}

/// Marks `[ptr, ptr + len)` addressable with defined contents (`VALGRIND_MAKE_MEM_DEFINED`):
/// bytes the allocator wrote itself before it closed the range.
///
/// # Safety
/// The range must be memory the allocator owns, and its bytes must have been written.
#[inline(always)]
#[cfg_attr(not(all(feature = "valgrind", target_arch = "x86_64")), allow(unused_variables))]
pub unsafe fn make_defined(ptr: *const u8, len: usize) {
    #[cfg(all(feature = "valgrind", target_arch = "x86_64"))]
    client_request(0, MAKE_MEM_NOACCESS + 2, ptr.addr(), len);
}
