//! The request workload: `POST /v1/events` batches parsed into request memory, aggregated
//! per (kind, path), and rendered as a JSON summary.
//!
//! Everything here is generic over an `allocator_api2` allocator, so the same code runs in
//! the request's arena (the default) and on jemalloc (`--request-alloc heap`, the control).
//! Parsing goes through serde's `DeserializeSeed`: strings are borrowed straight from the
//! body when they contain no escapes, and copied into request memory otherwise; the events
//! and their tags are request-memory vectors. Every reservation is fallible, so running out
//! of request memory (the arena's limit) is an error response, never an abort.
//!
//! One caveat, stated where it belongs: serde_json unescapes strings that contain escape
//! sequences through its own scratch buffer on the general heap, so a batch with escaped
//! strings makes one small heap allocation (counted by `allockit_request_heap_*`). Batches
//! of plain strings, like loadgen's, make none.

use core::cell::Cell;
use core::fmt;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::json_out::JsonOut;

/// Limits on a batch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most events in a batch.
    pub max_events: usize,
    /// Most tags on one event.
    pub max_tags: usize,
    /// Longest user id, kind or tag, in bytes.
    pub max_name_bytes: usize,
    /// Longest path, in bytes.
    pub max_path_bytes: usize,
}

impl Limits {
    /// The limits the server uses, with its configured event cap.
    pub fn new(max_events: usize) -> Self {
        Self { max_events, max_tags: 32, max_name_bytes: 128, max_path_bytes: 512 }
    }
}

/// Why a batch was refused (beyond JSON syntax and types, which serde_json reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More events than [`Limits::max_events`].
    TooManyEvents(usize),
    /// More tags on one event than [`Limits::max_tags`].
    TooManyTags(usize),
    /// A string longer than its limit.
    StringTooLong {
        /// The batch field (`user`, `kind`, `path` or `tags`), as the 422 message names it.
        field: &'static str,
        /// The limit in bytes (UTF-8 bytes, not characters).
        limit: usize,
    },
    /// An empty user id.
    EmptyUser,
    /// Request memory ran out (the arena's byte limit).
    OutOfMemory,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyEvents(max) => write!(f, "too many events: at most {max} per batch"),
            Refusal::TooManyTags(max) => write!(f, "too many tags: at most {max} per event"),
            Refusal::StringTooLong { field, limit } => write!(f, "`{field}` is longer than {limit} bytes"),
            Refusal::EmptyUser => write!(f, "`user` must not be empty"),
            Refusal::OutOfMemory => write!(f, "the batch needs more memory than the per-request limit"),
        }
    }
}

/// A string of the batch: borrowed from the body, or an unescaped copy in request memory.
#[derive(Debug)]
pub enum Text<'de, A: Allocator> {
    /// Borrowed from the body (no escapes in the JSON).
    Borrowed(&'de str),
    /// Unescaped copy in request memory.
    Owned(Vec<u8, A>),
}

impl<A: Allocator> Text<'_, A> {
    /// The string, wherever it lives; valid for as long as the request's arena.
    pub fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            // SAFETY: Owned texts are copies of `&str`s, so valid UTF-8.
            Text::Owned(bytes) => unsafe { core::str::from_utf8_unchecked(bytes) },
        }
    }
}

/// One event of a batch.
#[derive(Debug)]
pub struct Event<'de, A: Allocator> {
    /// What happened (`click`, `view`, ...).
    pub kind: Text<'de, A>,
    /// The page or endpoint the event happened on (`/home`); grouped with `kind`.
    pub path: Text<'de, A>,
    /// How long it took, in milliseconds.
    pub ms: u32,
    /// Free-form tags; only their number per group is reported.
    pub tags: Vec<Text<'de, A>, A>,
}

/// A parsed batch.
#[derive(Debug)]
pub struct Batch<'de, A: Allocator> {
    /// The user the batch belongs to.
    pub user: Text<'de, A>,
    /// The events in the order sent, in the request arena like everything else here.
    pub events: Vec<Event<'de, A>, A>,
}

/// Records the specific reason a seed failed, so that the handler can answer with the
/// right status; serde only carries a message.
type RefusalSlot = Cell<Option<Refusal>>;

fn refuse<E: de::Error>(slot: &RefusalSlot, refusal: Refusal) -> E {
    slot.set(Some(refusal));
    E::custom(format_args!("{refusal}"))
}

/// Parses a batch from `body` into memory from `alloc`.
///
/// On failure returns the refusal, if a limit was the cause, and serde_json's error.
pub fn parse<'de, A: Allocator + Copy>(
    body: &'de [u8],
    alloc: A,
    limits: &Limits,
) -> Result<Batch<'de, A>, (Option<Refusal>, serde_json::Error)> {
    let refusal = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let seed = BatchSeed { alloc, limits, refusal: &refusal };
    seed.deserialize(&mut deserializer)
        .and_then(|batch| deserializer.end().map(|()| batch))
        .map_err(|error| (refusal.get(), error))
}

struct BatchSeed<'s, A> {
    alloc: A,
    limits: &'s Limits,
    refusal: &'s RefusalSlot,
}

#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum BatchField {
    User,
    Events,
    #[serde(other)]
    Other,
}

#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EventField {
    Kind,
    Path,
    Ms,
    Tags,
    #[serde(other)]
    Other,
}

impl<'de, A: Allocator + Copy> DeserializeSeed<'de> for BatchSeed<'_, A> {
    type Value = Batch<'de, A>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, A: Allocator + Copy> Visitor<'de> for BatchSeed<'_, A> {
    type Value = Batch<'de, A>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch object with `user` and `events`")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut user = None;
        let mut events = None;
        while let Some(field) = map.next_key::<BatchField>()? {
            match field {
                BatchField::User if user.is_some() => return Err(de::Error::duplicate_field("user")),
                BatchField::Events if events.is_some() => return Err(de::Error::duplicate_field("events")),
                BatchField::User => {
                    let text = map.next_value_seed(self.text("user", self.limits.max_name_bytes))?;
                    if text.as_str().is_empty() {
                        return Err(refuse(self.refusal, Refusal::EmptyUser));
                    }
                    user = Some(text);
                }
                BatchField::Events => {
                    events = Some(map.next_value_seed(EventsSeed { batch: &self })?);
                }
                BatchField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Batch {
            user: user.ok_or_else(|| de::Error::missing_field("user"))?,
            events: events.ok_or_else(|| de::Error::missing_field("events"))?,
        })
    }
}

impl<A: Allocator + Copy> BatchSeed<'_, A> {
    fn text(&self, field: &'static str, limit: usize) -> TextSeed<'_, A> {
        TextSeed { alloc: self.alloc, field, limit, refusal: self.refusal }
    }

    /// Makes room for one more element, or records that request memory ran out.
    fn reserve_one<T, E: de::Error>(&self, vec: &mut Vec<T, A>) -> Result<(), E> {
        vec.try_reserve(1).map_err(|_| refuse(self.refusal, Refusal::OutOfMemory))
    }
}

struct TextSeed<'s, A> {
    alloc: A,
    field: &'static str,
    limit: usize,
    refusal: &'s RefusalSlot,
}

impl<'de, A: Allocator + Copy> DeserializeSeed<'de> for TextSeed<'_, A> {
    type Value = Text<'de, A>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, A: Allocator + Copy> Visitor<'de> for TextSeed<'_, A> {
    type Value = Text<'de, A>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string for `{}`", self.field)
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        if text.len() > self.limit {
            return Err(refuse(
                self.refusal,
                Refusal::StringTooLong { field: self.field, limit: self.limit },
            ));
        }
        Ok(Text::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if text.len() > self.limit {
            return Err(refuse(
                self.refusal,
                Refusal::StringTooLong { field: self.field, limit: self.limit },
            ));
        }
        let mut copy = Vec::new_in(self.alloc);
        copy.try_reserve_exact(text.len()).map_err(|_| refuse(self.refusal, Refusal::OutOfMemory))?;
        copy.extend_from_slice(text.as_bytes());
        Ok(Text::Owned(copy))
    }
}

struct EventsSeed<'b, 's, A> {
    batch: &'b BatchSeed<'s, A>,
}

impl<'de, A: Allocator + Copy> DeserializeSeed<'de> for EventsSeed<'_, '_, A> {
    type Value = Vec<Event<'de, A>, A>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, A: Allocator + Copy> Visitor<'de> for EventsSeed<'_, '_, A> {
    type Value = Vec<Event<'de, A>, A>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let batch = self.batch;
        let mut events = Vec::new_in(batch.alloc);
        while let Some(event) = seq.next_element_seed(EventSeed { batch })? {
            if events.len() == batch.limits.max_events {
                return Err(refuse(batch.refusal, Refusal::TooManyEvents(batch.limits.max_events)));
            }
            batch.reserve_one(&mut events)?;
            events.push(event);
        }
        Ok(events)
    }
}

struct EventSeed<'b, 's, A> {
    batch: &'b BatchSeed<'s, A>,
}

impl<'de, A: Allocator + Copy> DeserializeSeed<'de> for EventSeed<'_, '_, A> {
    type Value = Event<'de, A>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, A: Allocator + Copy> Visitor<'de> for EventSeed<'_, '_, A> {
    type Value = Event<'de, A>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object with `kind`, `path` and `ms`")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let batch = self.batch;
        let (mut kind, mut path, mut ms, mut tags) = (None, None, None, None);
        while let Some(field) = map.next_key::<EventField>()? {
            match field {
                EventField::Kind if kind.is_some() => return Err(de::Error::duplicate_field("kind")),
                EventField::Path if path.is_some() => return Err(de::Error::duplicate_field("path")),
                EventField::Ms if ms.is_some() => return Err(de::Error::duplicate_field("ms")),
                EventField::Tags if tags.is_some() => return Err(de::Error::duplicate_field("tags")),
                EventField::Kind => {
                    kind = Some(map.next_value_seed(batch.text("kind", batch.limits.max_name_bytes))?)
                }
                EventField::Path => {
                    path = Some(map.next_value_seed(batch.text("path", batch.limits.max_path_bytes))?)
                }
                EventField::Ms => ms = Some(map.next_value::<u32>()?),
                EventField::Tags => tags = Some(map.next_value_seed(TagsSeed { batch })?),
                EventField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Event {
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            path: path.ok_or_else(|| de::Error::missing_field("path"))?,
            ms: ms.ok_or_else(|| de::Error::missing_field("ms"))?,
            tags: tags.unwrap_or_else(|| Vec::new_in(batch.alloc)),
        })
    }
}

struct TagsSeed<'b, 's, A> {
    batch: &'b BatchSeed<'s, A>,
}

impl<'de, A: Allocator + Copy> DeserializeSeed<'de> for TagsSeed<'_, '_, A> {
    type Value = Vec<Text<'de, A>, A>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, A: Allocator + Copy> Visitor<'de> for TagsSeed<'_, '_, A> {
    type Value = Vec<Text<'de, A>, A>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of tag strings")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let batch = self.batch;
        let mut tags = Vec::new_in(batch.alloc);
        while let Some(tag) = seq.next_element_seed(batch.text("tags", batch.limits.max_name_bytes))? {
            if tags.len() == batch.limits.max_tags {
                return Err(refuse(batch.refusal, Refusal::TooManyTags(batch.limits.max_tags)));
            }
            batch.reserve_one(&mut tags)?;
            tags.push(tag);
        }
        Ok(tags)
    }
}

/// The statistics of one (kind, path) group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group<'b> {
    /// The kind and path shared by the group's events, borrowed from the batch.
    pub kind: &'b str,
    /// See `kind`; groups come most frequent first, ties by kind, then path.
    pub path: &'b str,
    /// Events in the group.
    pub count: u32,
    /// Median duration (nearest rank).
    pub p50_ms: u32,
    /// 99th percentile duration (nearest rank).
    pub p99_ms: u32,
    /// Longest duration.
    pub max_ms: u32,
    /// Mean duration, rounded down.
    pub mean_ms: u32,
    /// Tags seen on the group's events.
    pub tags: u32,
}

/// The aggregate of a batch: its groups, busiest first.
#[derive(Debug)]
pub struct Summary<'b, A: Allocator> {
    /// Events in the batch.
    pub events: usize,
    /// Groups ordered by count (descending), then kind and path.
    pub groups: Vec<Group<'b>, A>,
}

/// Groups the batch's events by (kind, path) and computes count, p50, p99, max and mean
/// of `ms` per group. Uses only memory from `alloc` (a hash map to number the groups, one
/// array sorted by group and duration); `sort_unstable` because the stable sort allocates
/// its buffer on the global heap.
pub fn aggregate<'b, A: Allocator + Copy>(
    batch: &'b Batch<'_, A>,
    alloc: A,
) -> Result<Summary<'b, A>, Refusal> {
    let n = batch.events.len();
    let mut index: hashbrown::HashMap<(&str, &str), u32, hashbrown::DefaultHashBuilder, A> =
        hashbrown::HashMap::with_hasher_in(hashbrown::DefaultHashBuilder::default(), alloc);
    index.try_reserve(n).map_err(|_| Refusal::OutOfMemory)?;
    let mut keyed: Vec<(u32, u32), A> = Vec::new_in(alloc);
    keyed.try_reserve_exact(n).map_err(|_| Refusal::OutOfMemory)?;
    let mut groups: Vec<Group<'b>, A> = Vec::new_in(alloc);
    for event in batch.events.iter() {
        let key = (event.kind.as_str(), event.path.as_str());
        let next = index.len() as u32;
        let group = *index.entry(key).or_insert(next);
        if group == next {
            groups.try_reserve(1).map_err(|_| Refusal::OutOfMemory)?;
            groups.push(Group {
                kind: key.0,
                path: key.1,
                count: 0,
                p50_ms: 0,
                p99_ms: 0,
                max_ms: 0,
                mean_ms: 0,
                tags: 0,
            });
        }
        groups[group as usize].tags += event.tags.len() as u32;
        keyed.push((group, event.ms));
    }
    keyed.sort_unstable();
    for run in keyed.chunk_by(|a, b| a.0 == b.0) {
        let count = run.len();
        let at_rank = |p: usize| run[(count * p).div_ceil(100).max(1) - 1].1;
        let sum: u64 = run.iter().map(|&(_, ms)| u64::from(ms)).sum();
        let group = &mut groups[run[0].0 as usize];
        group.count = count as u32;
        group.p50_ms = at_rank(50);
        group.p99_ms = at_rank(99);
        group.max_ms = run[count - 1].1;
        group.mean_ms = (sum / count as u64) as u32;
    }
    groups.sort_unstable_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(b.kind)).then(a.path.cmp(b.path)));
    Ok(Summary { events: n, groups })
}

/// Whether the batch's user was already cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileOutcome {
    /// Found in the cache.
    Cached,
    /// Created by this request.
    Created,
}

/// Bytes kept free for the closing fields of a summary.
const SUMMARY_TAIL: usize = 64;

/// Renders the summary. Lists as many groups as fit (busiest first) and says how many
/// were shown. Returns false only if not even the header fits.
#[must_use]
pub fn render_summary<A: Allocator>(
    out: &mut JsonOut<'_>,
    user: &str,
    summary: &Summary<'_, A>,
    profile: ProfileOutcome,
    mode: &str,
) -> bool {
    let header = out.raw(b"{")
        && out.key("user")
        && out.string(user)
        && out.raw(b",")
        && out.key("events")
        && out.number(summary.events as u64)
        && out.raw(b",")
        && out.key("profile")
        && out.string(match profile {
            ProfileOutcome::Cached => "cached",
            ProfileOutcome::Created => "created",
        })
        && out.raw(b",")
        && out.key("mode")
        && out.string(mode)
        && out.raw(b",")
        && out.key("groups_total")
        && out.number(summary.groups.len() as u64)
        && out.raw(b",")
        && out.key("groups")
        && out.raw(b"[");
    if !header || out.remaining() < SUMMARY_TAIL {
        return false;
    }
    let mut shown = 0u64;
    for group in summary.groups.iter() {
        let mark = out.len();
        let fits =
            (shown == 0 || out.raw(b",")) && render_group(out, group) && out.remaining() >= SUMMARY_TAIL;
        if !fits {
            out.truncate(mark);
            break;
        }
        shown += 1;
    }
    out.raw(b"],") && out.key("groups_shown") && out.number(shown) && out.raw(b"}")
}

fn render_group(out: &mut JsonOut<'_>, group: &Group<'_>) -> bool {
    out.raw(b"{")
        && out.key("kind")
        && out.string(group.kind)
        && out.raw(b",")
        && out.key("path")
        && out.string(group.path)
        && out.raw(b",")
        && out.key("count")
        && out.number(u64::from(group.count))
        && out.raw(b",")
        && out.key("p50_ms")
        && out.number(u64::from(group.p50_ms))
        && out.raw(b",")
        && out.key("p99_ms")
        && out.number(u64::from(group.p99_ms))
        && out.raw(b",")
        && out.key("max_ms")
        && out.number(u64::from(group.max_ms))
        && out.raw(b",")
        && out.key("mean_ms")
        && out.number(u64::from(group.mean_ms))
        && out.raw(b",")
        && out.key("tags")
        && out.number(u64::from(group.tags))
        && out.raw(b"}")
}

#[cfg(test)]
mod tests {
    use core::mem::MaybeUninit;

    use allocator_api2::alloc::Global;
    use allockit::Arena;

    use super::*;

    const BATCH: &str = r#"{"user":"u1","events":[
        {"kind":"click","path":"/a","ms":10,"tags":["x","y"]},
        {"kind":"click","path":"/a","ms":30},
        {"kind":"view","path":"/b","ms":5,"tags":[]},
        {"kind":"click","path":"/a","ms":20,"extra":{"ignored":[1,2,3]}}
    ]}"#;

    #[test]
    fn a_batch_parses_into_the_arena_and_aggregates_per_group() {
        let arena = Arena::new();
        let batch = parse(BATCH.as_bytes(), &arena, &Limits::new(100)).map_err(|e| e.1).unwrap();
        assert_eq!(batch.user.as_str(), "u1");
        assert_eq!(batch.events.len(), 4);
        let summary = aggregate(&batch, &arena).unwrap();
        assert_eq!(summary.groups.len(), 2);
        let click = summary.groups[0];
        assert_eq!((click.kind, click.path, click.count), ("click", "/a", 3));
        assert_eq!(
            (click.p50_ms, click.p99_ms, click.max_ms, click.mean_ms, click.tags),
            (20, 30, 30, 20, 2)
        );
        assert_eq!(summary.groups[1].kind, "view");
    }

    #[test]
    fn heap_and_arena_give_the_same_summary() {
        let arena = Arena::new();
        let a = parse(BATCH.as_bytes(), &arena, &Limits::new(100)).map_err(|e| e.1).unwrap();
        let h = parse(BATCH.as_bytes(), Global, &Limits::new(100)).map_err(|e| e.1).unwrap();
        let sa = aggregate(&a, &arena).unwrap();
        let sh = aggregate(&h, Global).unwrap();
        assert_eq!(&sa.groups[..], &sh.groups[..]);
    }

    #[test]
    fn escaped_strings_are_unescaped_into_request_memory() {
        let arena = Arena::new();
        let body = br#"{"user":"u\u00e9","events":[{"kind":"a\"b","path":"/","ms":1}]}"#;
        let batch = parse(body, &arena, &Limits::new(10)).map_err(|e| e.1).unwrap();
        assert_eq!(batch.user.as_str(), "ué");
        assert_eq!(batch.events[0].kind.as_str(), "a\"b");
    }

    #[test]
    fn limits_are_reported_as_refusals() {
        let arena = Arena::new();
        let body =
            br#"{"user":"u","events":[{"kind":"a","path":"/","ms":1},{"kind":"a","path":"/","ms":1}]}"#;
        let (refusal, _) = parse(body, &arena, &Limits::new(1)).err().unwrap();
        assert_eq!(refusal, Some(Refusal::TooManyEvents(1)));
        let (refusal, _) = parse(br#"{"user":"","events":[]}"#, &arena, &Limits::new(1)).err().unwrap();
        assert_eq!(refusal, Some(Refusal::EmptyUser));
        let long = format!(r#"{{"user":"{}","events":[]}}"#, "x".repeat(200));
        let (refusal, _) = parse(long.as_bytes(), &arena, &Limits::new(1)).err().unwrap();
        assert_eq!(refusal, Some(Refusal::StringTooLong { field: "user", limit: 128 }));
    }

    #[test]
    fn running_out_of_arena_memory_is_a_refusal_not_an_abort() {
        let arena = Arena::new().with_limit(64 * 1024);
        let events: std::vec::Vec<String> =
            (0..5000).map(|i| format!(r#"{{"kind":"k{i}","path":"/p","ms":{i}}}"#)).collect();
        let body = format!(r#"{{"user":"u","events":[{}]}}"#, events.join(","));
        let (refusal, _) = parse(body.as_bytes(), &arena, &Limits::new(10_000)).err().unwrap();
        assert_eq!(refusal, Some(Refusal::OutOfMemory));
    }

    #[test]
    fn malformed_input_is_a_serde_error_without_refusal() {
        let arena = Arena::new();
        for body in [
            &br#"{"user":"u","events":[{"kind":"a","path":"/","ms":-1}]}"#[..],
            br#"{"user":"u","events":[{"kind":"a","path":"/","ms":1.5}]}"#,
            br#"{"user":"u","events":[{"kind":"a","path":"/","ms":99999999999}]}"#,
            br#"{"user":"u","events":[{"kind":"a","path":"/"}]}"#,
            br#"{"user":"u"}"#,
            br#"{"user":7,"events":[]}"#,
            br#"{"user":"u","events":[]} trailing"#,
            b"{\"user\":\"\xff\",\"events\":[]}",
            br#"{"user":"u","events":[{"kind":["nested"],"path":"/","ms":1}]}"#,
            br#"[1,2"#,
        ] {
            let (refusal, error) = parse(body, &arena, &Limits::new(10)).err().unwrap();
            assert_eq!(refusal, None, "{error}");
        }
    }

    #[test]
    fn the_summary_lists_as_many_groups_as_fit() {
        let arena = Arena::new();
        let events: std::vec::Vec<String> = (0..200)
            .map(|i| format!(r#"{{"kind":"kind-{i}","path":"/a/long/path/{i}","ms":{i}}}"#))
            .collect();
        let body = format!(r#"{{"user":"u","events":[{}]}}"#, events.join(","));
        let batch = parse(body.as_bytes(), &arena, &Limits::new(1000)).map_err(|e| e.1).unwrap();
        let summary = aggregate(&batch, &arena).unwrap();
        let mut buf = [MaybeUninit::uninit(); 2048];
        let mut out = JsonOut::new(&mut buf);
        assert!(render_summary(&mut out, "u", &summary, ProfileOutcome::Created, "segregated"));
        let value: serde_json::Value = serde_json::from_slice(out.as_bytes()).unwrap();
        let shown = value["groups_shown"].as_u64().unwrap();
        assert!(shown > 5 && shown < 200);
        assert_eq!(value["groups"].as_array().unwrap().len() as u64, shown);
        assert_eq!(value["groups_total"], 200);
    }
}
