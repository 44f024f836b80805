//! The `override` feature decides whether linking the rlib replaces the process's malloc
//! (see the crate docs): with it (the default, this test's usual build) the test binary's
//! own `malloc` is the library's; built with `--no-default-features` it is glibc's.

#[test]
fn the_process_malloc_is_ours_exactly_when_override_is_on() {
    assert_eq!(allockit_malloc::serves_process_malloc(), cfg!(feature = "override"));
    // Rust's System allocator calls the process's malloc: with override on, the library
    // counts those allocations too.
    let before = allockit_malloc::stats().allocations;
    let boxes: Vec<Box<[u8; 100]>> = (0..1000).map(|_| Box::new([7; 100])).collect();
    let counted = allockit_malloc::stats().allocations - before;
    assert_eq!(counted >= 1000, cfg!(feature = "override"), "{counted} allocations counted");
    drop(boxes);
}
