//! A real multi-threaded workload for the `#[global_allocator]` test binaries: collections,
//! strings, formatting, channels (blocks freed on another thread than the one that
//! allocated them), a large buffer. Every result is checked.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

const THREADS: usize = 4;
const ITEMS: usize = 3_000;

/// Runs the workload on `THREADS` threads and checks every result.
pub fn run_checked_workload() {
    let shared = Arc::new(Mutex::new(Vec::<String>::new()));
    let (sender, receiver) = mpsc::channel::<String>();
    let workers: Vec<_> = (0..THREADS)
        .map(|worker| {
            let shared = Arc::clone(&shared);
            let sender = sender.clone();
            thread::spawn(move || work(worker, &shared, &sender))
        })
        .collect();
    drop(sender);
    for (worker, handle) in workers.into_iter().enumerate() {
        let checksum = handle.join().expect("worker panicked");
        assert_eq!(checksum, expected_checksum(worker), "worker {worker}");
    }
    // Strings allocated by the workers, freed here.
    let received: Vec<String> = receiver.iter().collect();
    assert_eq!(received.len(), THREADS * ITEMS / 10);
    assert!(received.iter().all(|s| s.starts_with("message ")));
    let shared = shared.lock().unwrap();
    assert_eq!(shared.len(), THREADS * 100);
    let mut sorted = shared.clone();
    sorted.sort();
    assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
}

fn work(worker: usize, shared: &Mutex<Vec<String>>, sender: &mpsc::Sender<String>) -> u64 {
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    let mut ordered: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0..ITEMS {
        by_key.entry(format!("key-{worker}-{}", i % 300)).or_default().push(i);
        ordered.insert(i, "x".repeat(i % 97));
        if i % 10 == 0 {
            sender.send(format!("message {worker} {i}")).unwrap();
        }
        if i % 30 == 0 {
            shared.lock().unwrap().push(format!("{worker:02}-{i:06}"));
        }
    }
    assert_eq!(by_key.len(), 300);
    assert!(by_key.values().all(|v| v.len() == ITEMS / 300));
    let mut words: Vec<String> = ordered.values().filter(|s| !s.is_empty()).cloned().collect();
    words.sort_by_key(|s| std::cmp::Reverse(s.len()));
    assert_eq!(words[0].len(), 96);

    let mut text = String::new();
    for (i, value) in &ordered {
        text.push_str(&i.to_string());
        text.push_str(value);
    }
    let mut large = vec![0u8; 1 << 20];
    large.iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
    large.truncate(1000);
    large.shrink_to_fit();

    let values: u64 = by_key.values().flatten().map(|&i| i as u64).sum();
    let lengths: u64 = ordered.values().map(|s| s.len() as u64).sum();
    let bytes: u64 = large.iter().map(|&b| b as u64).sum();
    values + lengths + text.len() as u64 + bytes + worker as u64
}

/// The checksum `work` must return, computed without allocating.
fn expected_checksum(worker: usize) -> u64 {
    let items = ITEMS as u64;
    let values = items * (items - 1) / 2;
    let lengths: u64 = (0..ITEMS).map(|i| (i % 97) as u64).sum();
    let digits: u64 = (0..ITEMS).map(|i| i.to_string().len() as u64).sum();
    let bytes: u64 = (0..1000).map(|i| (i % 251) as u64).sum();
    values + lengths + (digits + lengths) + bytes + worker as u64
}
