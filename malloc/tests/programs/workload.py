# A Python workload for the LD_PRELOAD test: threads, dicts, strings, json and os.fork.
# stdout must be the same under glibc and under allockit-malloc; stderr says whether
# liballockit_malloc.so is mapped into this process.
import hashlib
import json
import os
import sys
import threading

with open("/proc/self/maps") as maps:
    print("allockit mapped:", "liballockit_malloc" in maps.read(), file=sys.stderr)


def work(seed):
    table = {}
    for i in range(30000):
        key = f"{seed}-{i}-" + "x" * (i % 97)
        table[key] = [i] * (i % 40) + [key.upper()]
        if i % 3 == 0:
            table.pop(f"{seed}-{i - 3}-" + "x" * ((i - 3) % 97), None)
    blob = json.dumps(table, sort_keys=True)
    big = [bytearray(n * 1024) for n in range(1, 64)]
    return hashlib.sha256(blob.encode()).hexdigest()[:16], len(table), sum(map(len, big))


results = {}
lock = threading.Lock()


def run(seed):
    digest = work(seed)
    with lock:
        results[seed] = digest


threads = [threading.Thread(target=run, args=(seed,)) for seed in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
for seed in sorted(results):
    print(seed, *results[seed])

read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read_end)
    words = " ".join(str(n * n) for n in range(200000))
    os.write(write_end, f"child {len(words)} {hashlib.sha256(words.encode()).hexdigest()[:16]}\n".encode())
    os._exit(0)
os.close(write_end)
with os.fdopen(read_end) as pipe:
    print(pipe.read().strip())
_, status = os.waitpid(pid, 0)
print("child status", status)
