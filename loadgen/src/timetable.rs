//! The open-loop schedule: request `i` is due at `i / rps` seconds after the start, whatever
//! happened to the requests before it (the wrk2 model).
//!
//! Connections *claim* the next request number when they are free and sleep until its
//! intended time; the schedule is a counter, so a backlog of any length costs no memory.
//! A claim whose intended time has already passed was due while every connection was busy:
//! it is counted as *late*, and its latency is still measured from the intended time.
//!
//! With `--max-in-flight N`, a claim first checks the requests outstanding: those sent and
//! awaiting a response plus those due and not yet sent. If more than N, the oldest due
//! requests are skipped (never sent) until N remain, and counted. The check runs when a
//! connection picks its next send, so the count is exact but the moment is when a
//! connection frees up. The percentiles then cover sent requests only, which is why skips
//! are reported beside them and count as failures.
//!
//! When the window ends, requests that were due in it but still wait for a free connection
//! (the backlog of a client or server that fell behind) are *drained*: they are still
//! handed out, late, for up to the drain limit after the end (`--drain`, 1 s by default),
//! so that a short lag at the end is measured as latency rather than dropped. What is
//! left when the limit passes is never sent and is reported as unsent. An interrupted run
//! (Ctrl-C) does not drain.
//!
//! Everything here is pure arithmetic on a caller-supplied clock (O(1) per claim), so the
//! rules are unit-tested without sleeping.

use std::time::Duration;

/// Guards float rounding when converting times to request numbers (`3 rps × 1 s` must be 3
/// requests, not 3.0000000000000004).
const EPSILON: f64 = 1e-9;

/// One request number handed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Position in the schedule, from 0.
    pub index: u64,
    /// When it should be sent, from the start of the run.
    pub intended: Duration,
    /// Whether it falls in the measured window (after the warm-up).
    pub measured: bool,
    /// Whether it was already due when claimed (every connection was busy).
    pub late: bool,
}

/// What a free connection gets from the timetable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Send this request at its intended time.
    Send(Slot),
    /// The schedule is over.
    Finished,
}

/// Counts kept apart for the warm-up and the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Requests due during the warm-up (sent, but excluded from the results).
    pub warmup: u64,
    /// In the measured window.
    pub measured: u64,
}

/// The schedule of one run.
#[derive(Debug, Clone)]
pub struct Timetable {
    rps: f64,
    warmup_requests: u64,
    end: Duration,
    /// How long after `end` the backlog may still be handed out; zero once stopped early.
    drain: Duration,
    max_in_flight: Option<u64>,
    next: u64,
    late: PhaseCounts,
    skipped: PhaseCounts,
}

impl Timetable {
    /// A schedule at `rps` requests per second for `warmup + duration`; requests due during
    /// the warm-up are marked unmeasured. `max_in_flight` of `None` never skips.
    pub fn new(rps: f64, warmup: Duration, duration: Duration, max_in_flight: Option<u64>) -> Self {
        let mut timetable = Self {
            rps,
            warmup_requests: 0,
            end: warmup.saturating_add(duration),
            drain: Duration::ZERO,
            max_in_flight,
            next: 0,
            late: PhaseCounts::default(),
            skipped: PhaseCounts::default(),
        };
        timetable.warmup_requests = timetable.scheduled_before(warmup);
        timetable
    }

    /// Lets requests due before the end but not yet claimed be handed out for up to `drain`
    /// after it (they are late, and measured from their intended time).
    pub fn with_drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Number of requests whose intended time is strictly before `elapsed`.
    pub fn scheduled_before(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.rps - EPSILON).ceil().max(0.0) as u64
    }

    /// Number of requests due at `elapsed` (intended time at or before it).
    pub fn due_at(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.rps + EPSILON).floor() as u64 + 1
    }

    /// The intended send time of request `index`.
    pub fn intended(&self, index: u64) -> Duration {
        Duration::from_secs_f64(index as f64 / self.rps)
    }

    /// Requests scheduled in the warm-up.
    pub fn warmup_requests(&self) -> u64 {
        self.warmup_requests
    }

    /// Requests scheduled before the end (the end moves if the run is stopped early).
    pub fn total_requests(&self) -> u64 {
        self.scheduled_before(self.end)
    }

    /// When the schedule ends, from the start.
    pub fn end(&self) -> Duration {
        self.end
    }

    /// Ends the schedule at `elapsed` if that is earlier than planned (an interrupted run):
    /// nothing more is handed out, not even the backlog.
    pub fn stop_at(&mut self, elapsed: Duration) {
        if elapsed < self.end {
            self.end = elapsed;
            self.drain = Duration::ZERO;
        }
    }

    /// Hands out the next request for a free connection, given the time now and the number
    /// of requests sent and awaiting a response.
    pub fn claim(&mut self, elapsed: Duration, awaiting_response: u64) -> Claim {
        let total = self.total_requests();
        if self.next >= total || elapsed >= self.end.saturating_add(self.drain) {
            return Claim::Finished;
        }
        if let Some(limit) = self.max_in_flight {
            let due = self.due_at(elapsed).min(total);
            let waiting = due.saturating_sub(self.next);
            let room = limit.saturating_sub(awaiting_response);
            if waiting > room {
                let skip_to = self.next + (waiting - room);
                self.skipped = self.add_by_phase(self.skipped, self.next, skip_to);
                self.next = skip_to;
                if self.next >= total {
                    return Claim::Finished;
                }
            }
        }
        let index = self.next;
        self.next += 1;
        let intended = self.intended(index);
        let measured = index >= self.warmup_requests;
        let late = intended < elapsed;
        if late {
            self.late = self.add_by_phase(self.late, index, index + 1);
        }
        Claim::Send(Slot { index, intended, measured, late })
    }

    /// Requests due now and not yet claimed (the backlog).
    pub fn backlog(&self, elapsed: Duration) -> u64 {
        self.due_at(elapsed).min(self.total_requests()).saturating_sub(self.next)
    }

    /// Sends that were claimed after their intended time.
    pub fn late(&self) -> PhaseCounts {
        self.late
    }

    /// Requests skipped because `--max-in-flight` was reached.
    pub fn skipped(&self) -> PhaseCounts {
        self.skipped
    }

    /// Adds the requests `from..to` to `counts`, split at the end of the warm-up.
    fn add_by_phase(&self, counts: PhaseCounts, from: u64, to: u64) -> PhaseCounts {
        let boundary = self.warmup_requests.clamp(from, to);
        PhaseCounts { warmup: counts.warmup + (boundary - from), measured: counts.measured + (to - boundary) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn slot(claim: Claim) -> Slot {
        match claim {
            Claim::Send(slot) => slot,
            Claim::Finished => panic!("schedule finished early"),
        }
    }

    #[test]
    fn requests_are_spaced_evenly_at_the_rate_even_a_fractional_one() {
        let timetable = Timetable::new(4.0, Duration::ZERO, Duration::from_secs(1), None);
        assert_eq!(timetable.total_requests(), 4);
        assert_eq!(timetable.intended(3), ms(750));
        let slow = Timetable::new(0.5, Duration::ZERO, Duration::from_secs(10), None);
        assert_eq!(slow.total_requests(), 5);
        assert_eq!(slow.intended(1), Duration::from_secs(2));
    }

    #[test]
    fn a_rate_times_a_duration_schedules_exactly_their_product() {
        for (rps, seconds, expected) in [(3.0, 1, 3), (1000.0, 60, 60_000), (0.1, 30, 3), (7.0, 3, 21)] {
            let timetable = Timetable::new(rps, Duration::ZERO, Duration::from_secs(seconds), None);
            assert_eq!(timetable.total_requests(), expected, "{rps} rps for {seconds} s");
        }
    }

    #[test]
    fn warmup_requests_are_marked_unmeasured() {
        let mut timetable = Timetable::new(10.0, Duration::from_secs(1), Duration::from_secs(1), None);
        assert_eq!(timetable.warmup_requests(), 10);
        let claims: Vec<Slot> = (0..20).map(|_| slot(timetable.claim(Duration::ZERO, 0))).collect();
        assert!(claims[..10].iter().all(|slot| !slot.measured));
        assert!(claims[10..].iter().all(|slot| slot.measured));
        assert_eq!(timetable.claim(Duration::ZERO, 0), Claim::Finished);
    }

    #[test]
    fn a_claim_made_after_the_intended_time_is_late_and_keeps_its_intended_time() {
        let mut timetable = Timetable::new(10.0, Duration::ZERO, Duration::from_secs(1), None);
        let on_time = slot(timetable.claim(Duration::ZERO, 0));
        assert!(!on_time.late);
        let behind = slot(timetable.claim(ms(450), 1));
        assert_eq!((behind.index, behind.intended, behind.late), (1, ms(100), true));
        assert_eq!(timetable.late(), PhaseCounts { warmup: 0, measured: 1 });
    }

    #[test]
    fn without_a_limit_nothing_is_ever_skipped_however_large_the_backlog() {
        let mut timetable = Timetable::new(1000.0, Duration::ZERO, Duration::from_secs(10), None);
        let first = slot(timetable.claim(ms(9_000), 1_000_000));
        assert_eq!(first.index, 0);
        assert_eq!(timetable.backlog(ms(9_000)), 9_000);
        assert_eq!(timetable.skipped(), PhaseCounts::default());
    }

    #[test]
    fn over_the_in_flight_limit_the_oldest_due_requests_are_skipped_and_counted() {
        let mut timetable = Timetable::new(100.0, Duration::ZERO, Duration::from_secs(10), Some(8));
        // At 1 s, 101 requests are due and none sent; 3 are awaiting a response, so 5 may wait.
        let claimed = slot(timetable.claim(ms(1_000), 3));
        assert_eq!(timetable.skipped().measured, 96);
        assert_eq!(claimed.index, 96);
        assert!(claimed.late);
        assert_eq!(timetable.backlog(ms(1_000)), 4);
    }

    #[test]
    fn skips_are_split_between_warmup_and_measured_window() {
        let mut timetable = Timetable::new(10.0, Duration::from_secs(1), Duration::from_secs(5), Some(1));
        // 21 due at 2 s, limit 1 with nothing in flight: 20 skipped, 10 of them in the warm-up.
        let claimed = slot(timetable.claim(ms(2_000), 0));
        assert_eq!(claimed.index, 20);
        assert_eq!(timetable.skipped(), PhaseCounts { warmup: 10, measured: 10 });
    }

    #[test]
    fn a_full_in_flight_limit_skips_every_due_request_and_hands_out_the_next_future_one() {
        let mut timetable = Timetable::new(10.0, Duration::ZERO, Duration::from_secs(5), Some(2));
        let claimed = slot(timetable.claim(ms(1_000), 2));
        assert_eq!(timetable.skipped().measured, 11);
        assert_eq!(claimed.index, 11);
        assert!(!claimed.late);
    }

    #[test]
    fn stopping_early_finishes_the_schedule_and_shrinks_the_total() {
        let mut timetable = Timetable::new(10.0, Duration::ZERO, Duration::from_secs(10), None);
        timetable.stop_at(ms(2_000));
        assert_eq!(timetable.total_requests(), 20);
        assert_eq!(timetable.claim(ms(2_000), 0), Claim::Finished);
        timetable.stop_at(ms(5_000));
        assert_eq!(timetable.end(), ms(2_000), "a later stop never extends the schedule");
    }

    #[test]
    fn the_backlog_at_the_end_is_drained_late_within_the_limit_and_then_left_unsent() {
        let mut timetable =
            Timetable::new(10.0, Duration::ZERO, Duration::from_secs(1), None).with_drain(ms(500));
        for _ in 0..7 {
            slot(timetable.claim(ms(500), 0));
        }
        // Past the end, 3 requests of the window were never claimed: they are handed out late.
        let drained = slot(timetable.claim(ms(1_200), 0));
        assert_eq!((drained.index, drained.intended, drained.late), (7, ms(700), true));
        // Past the drain limit nothing more is sent.
        assert_eq!(timetable.claim(ms(1_500), 0), Claim::Finished);
        assert_eq!(timetable.total_requests(), 10, "the schedule itself did not grow");
        // Without a backlog, the end is the end.
        let mut idle = Timetable::new(10.0, Duration::ZERO, Duration::from_secs(1), None).with_drain(ms(500));
        for _ in 0..10 {
            slot(idle.claim(ms(900), 0));
        }
        assert_eq!(idle.claim(ms(1_000), 0), Claim::Finished);
    }

    #[test]
    fn an_interrupted_run_does_not_drain() {
        let mut timetable =
            Timetable::new(10.0, Duration::ZERO, Duration::from_secs(10), None).with_drain(ms(5_000));
        slot(timetable.claim(ms(0), 0));
        timetable.stop_at(ms(2_000));
        assert_eq!(timetable.claim(ms(2_001), 0), Claim::Finished, "19 due, none handed out after the stop");
    }
}
