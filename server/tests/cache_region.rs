//! The cache arena on regions reserved up front, end to end: in the segregated mode every
//! cached profile lives inside the cache arena's regions, in the broken mode the profiles
//! escape into request arenas while the cache's index stays in the regions; both modes read
//! their profiles back, clear, and fill again, and jemalloc's own statistics of the cache
//! arena fit inside the bytes the regions committed.

mod support;

use std::net::SocketAddr;

use allockit_probe::metrics::{
    CACHE_ENTRIES, CACHE_REGION_BYTES, JEMALLOC_ARENA_ALLOCATED_BYTES, JEMALLOC_ARENA_RESIDENT_BYTES,
};
use allockit_server::ServerHandle;
use support::*;

/// Profiles each test stores.
const USERS: usize = 300;

fn region_bytes(addr: SocketAddr, state: &str) -> f64 {
    metric(addr, CACHE_REGION_BYTES, &[("state", state)])
}

fn user(i: usize) -> String {
    format!("region-user-{i}")
}

/// Events in user `i`'s first batch: differs between users, so a profile read back under
/// the wrong id shows.
fn first_batch(i: usize) -> usize {
    1 + i % 9
}

fn store_profiles(server: &ServerHandle) {
    for i in 0..USERS {
        let reply = post(server.addr, "/v1/events", &batch(&user(i), first_batch(i)));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["profile"], "created", "{}", user(i));
    }
    assert_eq!(metric(server.addr, CACHE_ENTRIES, &[]), USERS as f64);
}

fn profiles_read_back(server: &ServerHandle) {
    for i in 0..USERS {
        let reply = get(server.addr, &format!("/v1/users/{}", user(i)));
        assert_eq!(reply.status, 200, "{}", user(i));
        let profile = reply.json();
        assert_eq!(profile["user"], user(i));
        assert_eq!(profile["events"].as_u64(), Some(first_batch(i) as u64));
        assert_eq!(profile["profile"]["user"], user(i));
        assert_eq!(profile["profile"]["first_batch_events"].as_u64(), Some(first_batch(i) as u64));
    }
}

/// Whether each cached profile's bytes lie inside the cache arena's regions.
fn profiles_inside_the_regions(server: &ServerHandle) -> Vec<bool> {
    let shared = server.shared();
    (0..USERS)
        .map(|i| {
            let bytes = shared.cache.get(&user(i), |view| view.expect("cached").profile.as_ptr());
            shared.cache_regions.contains(bytes)
        })
        .collect()
}

/// Committed is above zero and within reserved; jemalloc's allocated and resident bytes of
/// the cache arena fit in what the regions committed (its metadata lives there too).
fn regions_hold_the_cache_arena(addr: SocketAddr) -> (f64, f64) {
    let text = scrape(addr);
    let value = |name: &str, labels: &[(&str, &str)]| {
        metric_in(&text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?}"))
    };
    let reserved = value(CACHE_REGION_BYTES, &[("state", "reserved")]);
    let committed = value(CACHE_REGION_BYTES, &[("state", "committed")]);
    assert!(committed > 0.0, "committed {committed}");
    assert!(committed <= reserved, "committed {committed} > reserved {reserved}");
    let allocated = value(JEMALLOC_ARENA_ALLOCATED_BYTES, &[("arena", "cache")]);
    let resident = value(JEMALLOC_ARENA_RESIDENT_BYTES, &[("arena", "cache")]);
    assert!(
        allocated > 0.0 && allocated <= committed,
        "cache arena allocated {allocated}, committed {committed}"
    );
    assert!(resident <= committed, "cache arena resident {resident}, committed {committed}");
    (reserved, committed)
}

fn clear_and_refill(server: &ServerHandle) {
    let cleared = request(server.admin_addr, "POST", "/admin/cache/clear", b"");
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.json()["cleared"], USERS);
    assert_eq!(metric(server.addr, CACHE_ENTRIES, &[]), 0.0);
    assert_eq!(get(server.addr, &format!("/v1/users/{}", user(0))).status, 404);
    store_profiles(server);
    profiles_read_back(server);
}

#[test]
fn segregated_profiles_live_inside_the_reserved_regions() {
    let server = start(&[]);
    let reserved_at_start = region_bytes(server.addr, "reserved");
    assert_eq!(reserved_at_start, (1u64 << 30) as f64, "the default first region, reserved at start");
    let committed_at_start = region_bytes(server.addr, "committed");
    assert!(committed_at_start > 0.0, "the cache's index is reserved at start, on the arena");

    store_profiles(&server);
    profiles_read_back(&server);
    assert!(profiles_inside_the_regions(&server).iter().all(|inside| *inside));
    // Committed need not have grown: jemalloc releases extents it no longer needs through
    // the decommit hook (its `dalloc` opts out) whenever its decay runs, so committed can
    // be below the start's figure. That it stays within the regions is checked above.
    let (reserved, _committed) = regions_hold_the_cache_arena(server.addr);
    assert_eq!(reserved, reserved_at_start, "the first region holds everything");

    clear_and_refill(&server);
    assert!(profiles_inside_the_regions(&server).iter().all(|inside| *inside));
    regions_hold_the_cache_arena(server.addr);
    server.shutdown();
}

#[test]
fn broken_profiles_escape_the_regions_while_the_index_stays_inside() {
    // Regions of 8 MiB: the index of 100 000 entries and jemalloc's metadata do not fit in
    // one, so the `alloc` hook reserves more as the cache is built at start.
    let server = start(&["--break-lifetimes", "--cache-region-bytes", "8388608"]);
    let at_start = server.shared().cache_regions.stats();
    assert!(at_start.regions > 1, "{at_start:?}");
    assert_eq!(region_bytes(server.addr, "reserved"), at_start.reserved as f64);
    assert!(at_start.reserved.is_multiple_of(8 << 20), "{at_start:?}");

    store_profiles(&server);
    profiles_read_back(&server);
    assert!(
        profiles_inside_the_regions(&server).iter().all(|inside| !inside),
        "broken-mode profiles live in request arenas"
    );
    regions_hold_the_cache_arena(server.addr);

    clear_and_refill(&server);
    regions_hold_the_cache_arena(server.addr);
    server.shutdown();
}
