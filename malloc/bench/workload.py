"""python3 as an allocation-heavy program: dicts, strings, JSON and threads.

scripts/bench-malloc runs it with PYTHONMALLOC=malloc, so that every object goes through
malloc (by default CPython serves objects up to 512 bytes from its own pools, and the
allocator underneath would only see the pools' 256 KiB arenas). Four threads each build
an inventory of records as dicts of strings and lists, serialise batches to JSON, parse
them back, aggregate the parsed records into per-category totals and string reports, and
drop everything before the next batch. The GIL lets one thread run Python at a time, but
objects made by one thread are freed by whichever thread drops the last reference.

Prints the shared object serving malloc (as the C workloads do), then the result line.

usage: workload.py [threads=4] [batches=6] [records=2000]
"""

import ctypes
import json
import sys
import threading
import time


class DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def malloc_provider():
    libc = ctypes.CDLL(None)
    address = ctypes.cast(libc.malloc, ctypes.c_void_p).value
    info = DlInfo()
    libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    if libc.dladdr(address, ctypes.byref(info)) == 0 or not info.dli_fname:
        return "unknown"
    return info.dli_fname.decode()


CATEGORIES = ["books", "tools", "garden", "kitchen", "toys", "music", "games", "office"]


def make_record(rng, index):
    name = "item-%d-%s" % (index, "x" * rng.randint(0, 40))
    return {
        "id": index,
        "name": name,
        "category": rng.choice(CATEGORIES),
        "price": rng.randint(1, 100000) / 100,
        "tags": [rng.choice(CATEGORIES)[: rng.randint(1, 6)] for _ in range(rng.randint(0, 6))],
        "stock": {"warehouse-%d" % w: rng.randint(0, 50) for w in range(rng.randint(1, 4))},
        "description": " ".join(rng.choice(CATEGORIES) for _ in range(rng.randint(2, 30))),
    }


def worker(seed, batches, records, totals, lock):
    import random

    rng = random.Random(seed)
    made = 0
    for batch in range(batches):
        inventory = [make_record(rng, batch * records + i) for i in range(records)]
        text = json.dumps(inventory)
        parsed = json.loads(text)
        if parsed[-1]["name"] != inventory[-1]["name"]:
            raise SystemExit("JSON round trip changed a record")
        by_category = {}
        for record in parsed:
            entry = by_category.setdefault(record["category"], {"count": 0, "value": 0.0, "names": []})
            entry["count"] += 1
            entry["value"] += record["price"] * sum(record["stock"].values())
            entry["names"].append(record["name"].upper())
        report = "\n".join(
            "%s: %d items, %.2f, first %s" % (c, e["count"], e["value"], ",".join(sorted(e["names"])[:5]))
            for c, e in sorted(by_category.items())
        )
        made += len(parsed)
        with lock:
            totals.append((len(text), len(report)))
    return made


def main():
    args = [int(a) for a in sys.argv[1:]]
    threads, batches, records = (args + [4, 6, 2000][len(args):])[:3]
    print("malloc-provider: %s" % malloc_provider(), flush=True)
    totals, lock = [], threading.Lock()
    pool = [
        threading.Thread(target=worker, args=(15 + t, batches, records, totals, lock)) for t in range(threads)
    ]
    start = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.monotonic() - start
    if len(totals) != threads * batches:
        raise SystemExit("a worker thread failed")
    print("result: seconds=%.6f ops=%d unit=records" % (seconds, threads * batches * records), flush=True)


if __name__ == "__main__":
    main()
