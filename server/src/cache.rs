//! The long-lived cache of user profiles: a bounded LRU (entries and bytes) shared by all
//! workers, living entirely on a dedicated jemalloc arena.
//!
//! The index (a hashbrown table) and the slots are allocated on the cache arena once, at
//! their full capacity, so inserting never grows them; a profile's bytes are one block on
//! the cache arena. Nothing of the cache shares pages with request memory or with the
//! general heap: that is *lifetime segregation*.
//!
//! In the broken mode a new profile's bytes are instead an [`Escaped`] allocation in the
//! request's arena: the profile keeps the whole arena chunk alive (pinned) for as long as
//! it stays cached. Evicting or clearing it releases the chunk.
//!
//! Complexity: lookup, insert and eviction are O(1) (hash + doubly linked list through the
//! slots). One mutex guards the cache; its critical sections are a few hundred
//! nanoseconds.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use allocator_api2::boxed::Box as ArenaBox;
use allocator_api2::vec::Vec as ArenaVec;
use allockit::Escaped;
use hashbrown::HashTable;

use crate::error::{Error, ErrorKind};
use crate::jemalloc::CacheArena;

/// Where a profile's bytes live.
#[derive(Debug)]
pub enum Storage {
    /// On the cache arena (segregated).
    Segregated(ArenaBox<[u8], CacheArena>),
    /// In a request arena's chunk, pinning it (broken).
    Escaped(Escaped<[u8]>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Segregated(bytes) => bytes,
            Storage::Escaped(bytes) => bytes,
        }
    }
}

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Slot {
    hash: u64,
    prev: u32,
    next: u32,
    /// The user id's length; the storage holds the id followed by the profile JSON.
    key_len: usize,
    storage: Option<Storage>,
    requests: u64,
    events: u64,
}

impl Slot {
    fn key(&self) -> &[u8] {
        self.storage.as_ref().map_or(&[], |s| &s.bytes()[..self.key_len])
    }
}

#[derive(Debug)]
struct Lru {
    table: HashTable<u32, CacheArena>,
    slots: ArenaVec<Slot, CacheArena>,
    /// Most recently used first.
    head: u32,
    tail: u32,
    /// Free slots, linked through `next`.
    free: u32,
    bytes: usize,
}

/// A cached profile, as returned by a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileView<'a> {
    /// The profile JSON created with the entry.
    pub profile: &'a [u8],
    /// Requests seen for the user.
    pub requests: u64,
    /// Events seen for the user.
    pub events: u64,
}

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Profiles held.
    pub entries: usize,
    /// Bytes of profile storage held.
    pub bytes: usize,
    /// Lookups that found the user.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Profiles evicted to respect the bounds.
    pub evictions: u64,
}

/// The profile cache. See the module docs.
#[derive(Debug)]
pub struct ProfileCache {
    lru: Mutex<Lru>,
    arena: CacheArena,
    hasher: hashbrown::DefaultHashBuilder,
    max_entries: usize,
    max_bytes: usize,
    entries: AtomicUsize,
    bytes: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl ProfileCache {
    /// A cache of at most `max_entries` profiles and `max_bytes` bytes of profile storage,
    /// with its index reserved up front on `arena`.
    pub fn new(arena: CacheArena, max_entries: usize, max_bytes: usize) -> Result<Self, Error> {
        let capacity =
            u32::try_from(max_entries).map_err(|_| Error::new(ErrorKind::CacheIndex(max_entries)))?;
        let mut table = HashTable::new_in(arena);
        table.try_reserve(max_entries, |_| 0).map_err(|_| Error::new(ErrorKind::CacheIndex(max_entries)))?;
        let mut slots = ArenaVec::new_in(arena);
        slots.try_reserve_exact(max_entries).map_err(|_| Error::new(ErrorKind::CacheIndex(max_entries)))?;
        for i in 0..capacity {
            slots.push(Slot {
                hash: 0,
                prev: NIL,
                next: if i + 1 < capacity { i + 1 } else { NIL },
                key_len: 0,
                storage: None,
                requests: 0,
                events: 0,
            });
        }
        Ok(Self {
            lru: Mutex::new(Lru { table, slots, head: NIL, tail: NIL, free: 0, bytes: 0 }),
            arena,
            hasher: hashbrown::DefaultHashBuilder::default(),
            max_entries,
            max_bytes,
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    /// The jemalloc arena the cache lives on.
    pub fn arena(&self) -> CacheArena {
        self.arena
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn hash(&self, user: &str) -> u64 {
        core::hash::BuildHasher::hash_one(&self.hasher, user.as_bytes())
    }

    /// Records a request for `user` with `events` events if the user is cached (a hit,
    /// which also makes it most recently used). Returns whether it was.
    pub fn touch(&self, user: &str, events: u64) -> bool {
        let hash = self.hash(user);
        let mut lru = self.lock();
        let found = lru.find(hash, user.as_bytes());
        if let Some(index) = found {
            let slot = &mut lru.slots[index as usize];
            slot.requests += 1;
            slot.events += events;
            lru.unlink(index);
            lru.push_front(index);
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        found.is_some()
    }

    /// Inserts a profile for `user` whose storage holds the user id followed by the profile
    /// (`key_len` = the id's length), evicting least-recently-used profiles to stay within
    /// the bounds. If another request inserted the user meanwhile, that entry wins and the
    /// new storage is dropped.
    pub fn insert(&self, user: &str, storage: Storage, events: u64) {
        let size = storage.bytes().len();
        let hash = self.hash(user);
        let mut evicted = Evicted::default();
        {
            let mut lru = self.lock();
            if lru.find(hash, user.as_bytes()).is_some() {
                drop(lru);
                drop(storage);
                return;
            }
            while lru.head != NIL
                && (self.entries.load(Ordering::Relaxed) >= self.max_entries
                    || lru.bytes + size > self.max_bytes)
            {
                let victim = lru.tail;
                let storage = lru.remove(victim);
                lru.bytes -= storage.bytes().len();
                evicted.push(storage);
                self.entries.fetch_sub(1, Ordering::Relaxed);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
            let index = lru.free;
            debug_assert_ne!(index, NIL, "a free slot exists once entries < max_entries");
            lru.free = lru.slots[index as usize].next;
            lru.slots[index as usize] = Slot {
                hash,
                prev: NIL,
                next: NIL,
                key_len: user.len(),
                storage: Some(storage),
                requests: 1,
                events,
            };
            let Lru { table, slots, .. } = &mut *lru;
            table.insert_unique(hash, index, |&i| slots[i as usize].hash);
            lru.push_front(index);
            lru.bytes += size;
            self.entries.fetch_add(1, Ordering::Relaxed);
            self.bytes.store(lru.bytes, Ordering::Relaxed);
        }
        // Evicted storage is dropped here, outside the lock: an escaped profile gives its
        // chunk back to the chunk source, which takes that source's lock.
        drop(evicted);
    }

    /// A cached profile, without changing recency or counters.
    pub fn get<R>(&self, user: &str, read: impl FnOnce(Option<ProfileView<'_>>) -> R) -> R {
        let hash = self.hash(user);
        let lru = self.lock();
        let view = lru.find(hash, user.as_bytes()).map(|index| {
            let slot = &lru.slots[index as usize];
            ProfileView {
                profile: &slot.storage.as_ref().map_or(&[][..], Storage::bytes)[slot.key_len..],
                requests: slot.requests,
                events: slot.events,
            }
        });
        read(view)
    }

    /// Drops every profile. Returns how many there were.
    pub fn clear(&self) -> usize {
        let mut dropped = Vec::new();
        {
            let mut lru = self.lock();
            while lru.head != NIL {
                let head = lru.head;
                dropped.push(lru.remove(head));
            }
            lru.bytes = 0;
            self.entries.store(0, Ordering::Relaxed);
            self.bytes.store(0, Ordering::Relaxed);
        }
        dropped.len()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}

/// Storage evicted under the lock, dropped after it. An insert usually evicts one victim,
/// so a small fixed array suffices (no allocation on the request path); any victim beyond
/// it is dropped at once.
#[derive(Default)]
struct Evicted {
    victims: [Option<Storage>; 4],
    count: usize,
}

impl Evicted {
    fn push(&mut self, storage: Storage) {
        if let Some(place) = self.victims.get_mut(self.count) {
            *place = Some(storage);
            self.count += 1;
        }
    }
}

impl Lru {
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        self.table.find(hash, |&i| self.slots[i as usize].key() == key).copied()
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next) = {
            let slot = &self.slots[index as usize];
            (slot.prev, slot.next)
        };
        if prev == NIL {
            self.head = next
        } else {
            self.slots[prev as usize].next = next
        }
        if next == NIL { self.tail = prev } else { self.slots[next as usize].prev = prev }
    }

    fn push_front(&mut self, index: u32) {
        let old_head = self.head;
        let slot = &mut self.slots[index as usize];
        slot.prev = NIL;
        slot.next = old_head;
        if old_head == NIL {
            self.tail = index
        } else {
            self.slots[old_head as usize].prev = index
        }
        self.head = index;
    }

    /// Unlinks a slot, removes it from the index, frees it, and returns its storage.
    fn remove(&mut self, index: u32) -> Storage {
        self.unlink(index);
        let hash = self.slots[index as usize].hash;
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == index) {
            entry.remove();
        }
        let slot = &mut self.slots[index as usize];
        let storage = slot.storage.take().expect("a linked slot holds storage");
        slot.next = self.free;
        self.free = index;
        storage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(arena: CacheArena, user: &str, profile: &str) -> Storage {
        let mut bytes = ArenaVec::new_in(arena);
        bytes.extend_from_slice(user.as_bytes());
        bytes.extend_from_slice(profile.as_bytes());
        Storage::Segregated(bytes.into_boxed_slice())
    }

    #[test]
    fn lookups_hit_after_insert_and_count() {
        let arena = CacheArena::create().unwrap();
        let cache = ProfileCache::new(arena, 10, 1 << 20).unwrap();
        assert!(!cache.touch("alice", 3));
        cache.insert("alice", storage(arena, "alice", "{\"p\":1}"), 3);
        assert!(cache.touch("alice", 2));
        cache.get("alice", |view| {
            let view = view.unwrap();
            assert_eq!(view.profile, b"{\"p\":1}");
            assert_eq!((view.requests, view.events), (2, 5));
        });
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.hits, stats.misses), (1, 1, 1));
        assert_eq!(stats.bytes, "alice{\"p\":1}".len());
    }

    #[test]
    fn the_least_recently_used_profile_is_evicted_at_the_entry_bound() {
        let arena = CacheArena::create().unwrap();
        let cache = ProfileCache::new(arena, 3, 1 << 20).unwrap();
        for user in ["a", "b", "c"] {
            cache.insert(user, storage(arena, user, "{}"), 1);
        }
        assert!(cache.touch("a", 1));
        cache.insert("d", storage(arena, "d", "{}"), 1);
        assert!(cache.get("b", |v| v.is_none()), "b was least recently used");
        for user in ["a", "c", "d"] {
            assert!(cache.get(user, |v| v.is_some()), "{user} kept");
        }
        assert_eq!(cache.stats().evictions, 1);
        assert_eq!(cache.stats().entries, 3);
    }

    #[test]
    fn the_byte_bound_evicts_as_many_as_needed() {
        let arena = CacheArena::create().unwrap();
        let cache = ProfileCache::new(arena, 100, 300).unwrap();
        for i in 0..10 {
            let user = format!("user{i}");
            cache.insert(&user, storage(arena, &user, &"x".repeat(95)), 1);
        }
        let stats = cache.stats();
        assert!(stats.bytes <= 300);
        assert_eq!(stats.entries, 3);
        assert_eq!(stats.evictions, 7);
    }

    #[test]
    fn clear_drops_everything_and_slots_are_reused() {
        let arena = CacheArena::create().unwrap();
        let cache = ProfileCache::new(arena, 4, 1 << 20).unwrap();
        for round in 0..3 {
            for i in 0..4 {
                let user = format!("r{round}u{i}");
                cache.insert(&user, storage(arena, &user, "{}"), 1);
            }
            assert_eq!(cache.clear(), 4);
            assert_eq!(cache.stats().entries, 0);
            assert_eq!(cache.stats().bytes, 0);
        }
    }

    #[test]
    fn a_duplicate_insert_keeps_the_first_entry() {
        let arena = CacheArena::create().unwrap();
        let cache = ProfileCache::new(arena, 4, 1 << 20).unwrap();
        cache.insert("u", storage(arena, "u", "first"), 1);
        cache.insert("u", storage(arena, "u", "second"), 1);
        cache.get("u", |v| assert_eq!(v.unwrap().profile, b"first"));
        assert_eq!(cache.stats().entries, 1);
    }
}
