//! A long run must not grow the recorder: a million samples into the same histograms and
//! counters allocate nothing once every status has been seen. Measured with a counting
//! global allocator on the test's own thread.
#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use loadgen::recorder::{Failure, Outcome, Recorder, Sample, Stats};

struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the thread-local
// counter is const-initialised, so updating it never allocates or re-enters.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.with(|live| live.set(live.get() + layout.size() as i64));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.with(|live| live.set(live.get() - layout.size() as i64));
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn sample(number: u64) -> Sample {
    let outcome = match number % 7 {
        0 => Outcome::Response(503),
        1 => Outcome::Response(404),
        2 => Outcome::Failed(Failure::Timeout),
        _ => Outcome::Response(200),
    };
    let micros = 1 + (number * 7919) % 5_000_000;
    Sample {
        measured: number.is_multiple_of(2),
        outcome,
        corrected: Duration::from_micros(micros * 2),
        service: Duration::from_micros(micros),
        send_delay: Duration::from_micros(micros),
    }
}

#[test]
fn a_million_samples_do_not_grow_the_recorder() {
    let mut recorder = Recorder::new().unwrap();
    let (mut interval, mut measured) = (Stats::new().unwrap(), Stats::new().unwrap());
    for number in 0..1_000 {
        recorder.record(&sample(number));
    }
    recorder.drain_into(&mut interval, &mut measured).unwrap();
    let histogram_bytes = recorder.histogram_bytes();
    let before = LIVE_BYTES.with(Cell::get);

    for number in 0..1_000_000 {
        recorder.record(&sample(number));
        if number % 10_000 == 0 {
            interval.clear();
            recorder.drain_into(&mut interval, &mut measured).unwrap();
        }
    }
    recorder.drain_into(&mut interval, &mut measured).unwrap();

    assert_eq!(LIVE_BYTES.with(Cell::get), before, "recording allocated");
    assert_eq!(recorder.histogram_bytes(), histogram_bytes);
    assert_eq!(measured.tally.total(), 500 + 500_000, "every measured sample was counted");
}
