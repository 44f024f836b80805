//! Request bodies for the `POST /v1/events` workload (DESIGN.md), generated cheaply and
//! reproducibly.
//!
//! A batch is `{"user": "...", "events": [{"kind", "path", "ms", "tags"}]}`. At start-up
//! [`Bodies::generate`] renders a pool of event arrays (`--body-pool` of them) from the
//! workload shape. Request number `i` then picks its user and its event array with a hash of
//! `(seed, i)`, and splices them into one buffer: one copy of about a kilobyte per request
//! ([`Bodies::write_body`] writes into a buffer the caller reuses; [`Bodies::body`] adds one
//! allocation), so the generator is never the bottleneck. Because the choice
//! depends only on the seed and the request number, the same `--seed` sends the same bytes
//! in the same order on every run, whichever connection sends them.
//!
//! What it cannot do: the event-count distribution of the traffic is the pool's empirical
//! one (uniform in expectation; a larger pool follows it more closely), and strings are
//! lowercase ASCII (no JSON escaping is ever needed).
//!
//! The generator is SplitMix64, written out here so that a seed means the same bytes on
//! every version of this crate and of its dependencies.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::units::IntRange;

/// The shape of the generated traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Distinct user ids drawn uniformly (the server caches one profile per user, so this
    /// sets the cache-miss rate).
    pub users: u64,
    /// Events per batch (the body size follows it).
    pub events: IntRange,
    /// Tags per event (each one a small string the server copies into its arena).
    pub tags: IntRange,
    /// Length of each generated string (path segment, tag).
    pub string_len: IntRange,
    /// Seed of every random choice.
    pub seed: u64,
    /// How many distinct event arrays are pre-rendered.
    pub body_pool: usize,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            users: 10_000,
            events: IntRange::inclusive(1, 20),
            tags: IntRange::inclusive(0, 4),
            string_len: IntRange::inclusive(8, 24),
            seed: 1,
            body_pool: 1024,
        }
    }
}

/// Event kinds, as a web analytics batch would carry them.
const KINDS: [&str; 8] = ["view", "click", "scroll", "search", "purchase", "signup", "error", "logout"];

/// The pre-rendered event arrays and the rule that turns a request number into a body.
#[derive(Debug, Clone)]
pub struct Bodies {
    event_arrays: Vec<Bytes>,
    users: u64,
    seed: u64,
}

impl Bodies {
    /// Renders the pool. Costs O(`body_pool` × mean batch size).
    ///
    /// A `users` of zero or an empty pool is treated as one.
    pub fn generate(spec: &WorkloadSpec) -> Self {
        let mut rng = SplitMix64::new(spec.seed);
        let event_arrays: Vec<Bytes> =
            (0..spec.body_pool.max(1)).map(|_| render_event_array(spec, &mut rng)).collect();
        Self { event_arrays, users: spec.users.max(1), seed: spec.seed }
    }

    /// The body of request number `index`: `{"user":"user-N","events":[...]}`.
    pub fn body(&self, index: u64) -> Bytes {
        let (user, array) = self.choose(index);
        let mut body = BytesMut::with_capacity(array.len() + 48);
        body.put_slice(b"{\"user\":\"user-");
        // Writing into a BytesMut cannot fail: it grows as needed.
        let _ = write!(body, "{user}");
        body.put_slice(b"\",\"events\":");
        body.put_slice(array);
        body.put_u8(b'}');
        body.freeze()
    }

    /// Appends the body of request number `index` to `out`: the same bytes as
    /// [`Bodies::body`], without an allocation once `out` has grown (the lean HTTP/1.1
    /// path reuses one buffer per connection).
    pub fn write_body(&self, index: u64, out: &mut Vec<u8>) {
        let (user, array) = self.choose(index);
        out.reserve(array.len() + 48);
        out.extend_from_slice(b"{\"user\":\"user-");
        let mut digits = [0; 20];
        out.extend_from_slice(decimal(user, &mut digits));
        out.extend_from_slice(b"\",\"events\":");
        out.extend_from_slice(array);
        out.push(b'}');
    }

    /// Request number `index`'s user and event array.
    fn choose(&self, index: u64) -> (u64, &Bytes) {
        let mut rng = SplitMix64::new(self.seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let user = rng.below(self.users);
        (user, &self.event_arrays[rng.below(self.event_arrays.len() as u64) as usize])
    }

    /// The user id request number `index` carries (what [`Bodies::body`] embeds).
    pub fn user_of(&self, index: u64) -> u64 {
        SplitMix64::new(self.seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)).below(self.users)
    }
}

/// `value` in decimal, written into the end of `digits`.
pub(crate) fn decimal(mut value: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &digits[at..];
        }
    }
}

fn render_event_array(spec: &WorkloadSpec, rng: &mut SplitMix64) -> Bytes {
    let count = rng.in_range(spec.events);
    let mut out = String::with_capacity(count as usize * 96 + 2);
    out.push('[');
    for event in 0..count {
        if event > 0 {
            out.push(',');
        }
        let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        out.push_str("{\"kind\":\"");
        out.push_str(kind);
        out.push_str("\",\"path\":\"/");
        push_word(&mut out, rng, spec.string_len);
        // Writing into a String cannot fail.
        let _ = write!(out, "\",\"ms\":{},\"tags\":[", rng.below(2001));
        for tag in 0..rng.in_range(spec.tags) {
            if tag > 0 {
                out.push(',');
            }
            out.push('"');
            push_word(&mut out, rng, spec.string_len);
            out.push('"');
        }
        out.push_str("]}");
    }
    out.push(']');
    Bytes::from(out)
}

fn push_word(out: &mut String, rng: &mut SplitMix64, length: IntRange) {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    for _ in 0..rng.in_range(length) {
        out.push(char::from(ALPHABET[rng.below(ALPHABET.len() as u64) as usize]));
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, one add and two multiply-xorshift
/// rounds per output. Statistically good enough for workload shapes, and fixed forever.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (Lemire's multiply-shift; bias below 2^-32 for bounds under
    /// 2^32). A `bound` of zero yields zero.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A value in the inclusive range.
    pub fn in_range(&mut self, range: IntRange) -> u64 {
        range.min + self.below(range.max - range.min + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkloadSpec {
        WorkloadSpec { body_pool: 64, ..WorkloadSpec::default() }
    }

    #[test]
    fn every_body_is_a_well_formed_batch_within_the_shape() {
        let spec = WorkloadSpec {
            events: IntRange::inclusive(2, 5),
            tags: IntRange::inclusive(1, 3),
            string_len: IntRange::exactly(6),
            users: 50,
            ..spec()
        };
        let bodies = Bodies::generate(&spec);
        for index in 0..500 {
            let body = bodies.body(index);
            let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let user = batch["user"].as_str().unwrap();
            let user_number: u64 = user.strip_prefix("user-").unwrap().parse().unwrap();
            assert!(user_number < 50);
            assert_eq!(user_number, bodies.user_of(index));
            let events = batch["events"].as_array().unwrap();
            assert!((2..=5).contains(&events.len()), "{} events", events.len());
            for event in events {
                assert!(KINDS.contains(&event["kind"].as_str().unwrap()));
                assert_eq!(event["path"].as_str().unwrap().len(), 7);
                assert!(event["ms"].as_u64().unwrap() <= 2000);
                let tags = event["tags"].as_array().unwrap();
                assert!((1..=3).contains(&tags.len()));
                assert!(tags.iter().all(|tag| tag.as_str().unwrap().len() == 6));
            }
        }
    }

    #[test]
    fn the_same_seed_produces_the_same_bytes_and_another_seed_does_not() {
        let first = Bodies::generate(&spec());
        let again = Bodies::generate(&spec());
        let other = Bodies::generate(&WorkloadSpec { seed: 2, ..spec() });
        let sequence = |bodies: &Bodies| (0..100).map(|index| bodies.body(index)).collect::<Vec<_>>();
        assert_eq!(sequence(&first), sequence(&again));
        assert_ne!(sequence(&first), sequence(&other));
    }

    #[test]
    fn written_bodies_are_the_same_bytes_as_rendered_ones() {
        let bodies = Bodies::generate(&WorkloadSpec { users: 1_000_000, ..spec() });
        let mut out = b"head".to_vec();
        for index in 0..300 {
            out.truncate(4);
            bodies.write_body(index, &mut out);
            assert_eq!(&out[4..], &bodies.body(index)[..]);
        }
    }

    #[test]
    fn users_are_spread_over_the_whole_population() {
        let bodies = Bodies::generate(&WorkloadSpec { users: 100, ..spec() });
        let mut seen = [false; 100];
        for index in 0..5_000 {
            seen[bodies.user_of(index) as usize] = true;
        }
        assert!(seen.iter().all(|&hit| hit), "some user never drawn in 5000 requests");
    }

    #[test]
    fn event_counts_cover_the_range_in_the_pool() {
        let bodies = Bodies::generate(&WorkloadSpec { events: IntRange::inclusive(1, 4), ..spec() });
        let mut counts = [0u32; 5];
        for index in 0..2_000 {
            let batch: serde_json::Value = serde_json::from_slice(&bodies.body(index)).unwrap();
            counts[batch["events"].as_array().unwrap().len()] += 1;
        }
        assert_eq!(counts[0], 0);
        assert!(counts[1..].iter().all(|&count| count > 200), "{counts:?}");
    }

    #[test]
    fn draws_stay_inside_inclusive_ranges_including_their_ends() {
        let mut rng = SplitMix64::new(7);
        let range = IntRange::inclusive(3, 5);
        let draws: Vec<u64> = (0..1_000).map(|_| rng.in_range(range)).collect();
        assert!(draws.iter().all(|draw| (3..=5).contains(draw)));
        assert!(draws.contains(&3) && draws.contains(&5));
        assert_eq!(SplitMix64::new(1).below(0), 0);
    }
}
