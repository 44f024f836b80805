"""Summarises scripts/bench-malloc's measurements: medians and ranges per workload and
allocator, the subject's ratios to each peer as geometric means, and the issue's goals.

usage: summarize.py RESULTS_CSV OUT_DIR SUBJECT MULTI_THREADED_WORKLOADS(comma-separated)

RESULTS_CSV has one row per run: round,workload,allocator,seconds,wall_seconds,
max_rss_kb,ops,unit. `seconds` is the workload's own timing of its measured phase (the
same fixed work under every allocator), so a ratio of seconds is a ratio of time.
Writes OUT_DIR/summary.json and OUT_DIR/summary.md and prints the same to stdout.
"""

import csv
import json
import math
import statistics
import sys
from collections import defaultdict

TIME_GEOMEAN_GOAL = 1.0  # subject / mimalloc, geometric mean over workloads
TIME_WORST_GOAL = 1.5  # subject / mimalloc, any single workload
RSS_GEOMEAN_GOAL = 1.1  # subject / mimalloc, peak RSS, geometric mean


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main():
    results_csv, out_dir, subject, multi = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    multi_threaded = set(filter(None, multi.split(",")))
    runs = defaultdict(list)
    workloads, allocators = [], []
    with open(results_csv) as f:
        for row in csv.DictReader(f):
            key = (row["workload"], row["allocator"])
            runs[key].append(row)
            if row["workload"] not in workloads:
                workloads.append(row["workload"])
            if row["allocator"] not in allocators:
                allocators.append(row["allocator"])

    per_workload = {}
    for w in workloads:
        per_workload[w] = {}
        for a in allocators:
            rows = runs[(w, a)]
            per_workload[w][a] = {
                "seconds": spread([float(r["seconds"]) for r in rows]),
                "peak_rss_mib": spread([int(r["max_rss_kb"]) / 1024 for r in rows]),
                "ops_per_second": spread([int(r["ops"]) / float(r["seconds"]) for r in rows]),
                "unit": rows[0]["unit"],
            }

    lines = []
    out = lines.append
    rounds = max(len(v) for v in runs.values())
    out("# allocator benchmark: %d workloads × %d allocators × %d rounds" % (len(workloads), len(allocators), rounds))
    out("")
    out("Time is each workload's own timing of its fixed work (lower is better); peak RSS is the")
    out("kernel's ru_maxrss of the process. Median [min–max] over the rounds.")
    out("")
    out("| workload | allocator | time s | peak RSS MiB | throughput |")
    out("|---|---|---|---|---|")
    for w in workloads:
        for a in allocators:
            m = per_workload[w][a]
            s, r, t = m["seconds"], m["peak_rss_mib"], m["ops_per_second"]
            out(
                "| %s | %s | %.3f [%.3f–%.3f] | %.1f [%.1f–%.1f] | %.3g %s/s |"
                % (w, a, s["median"], s["min"], s["max"], r["median"], r["min"], r["max"], t["median"], m["unit"])
            )

    ratios, goals = {}, []
    if subject in allocators:
        peers = [a for a in allocators if a != subject]
        ratios = {p: {"time": {}, "peak_rss": {}} for p in peers}
        for p in peers:
            for w in workloads:
                mine, theirs = per_workload[w][subject], per_workload[w][p]
                ratios[p]["time"][w] = mine["seconds"]["median"] / theirs["seconds"]["median"]
                ratios[p]["peak_rss"][w] = mine["peak_rss_mib"]["median"] / theirs["peak_rss_mib"]["median"]
            ratios[p]["time_geomean"] = geomean(list(ratios[p]["time"].values()))
            ratios[p]["peak_rss_geomean"] = geomean(list(ratios[p]["peak_rss"].values()))
        out("")
        out("## %s ÷ each peer (ratio of medians; below 1: %s is faster or smaller)" % (subject, subject))
        out("")
        out("| workload | " + " | ".join("time ÷ %s | RSS ÷ %s" % (p, p) for p in peers) + " |")
        out("|---|" + "---|---|" * len(peers))
        for w in workloads:
            cells = ["%.2f | %.2f" % (ratios[p]["time"][w], ratios[p]["peak_rss"][w]) for p in peers]
            out("| %s | %s |" % (w, " | ".join(cells)))
        cells = ["**%.2f** | **%.2f**" % (ratios[p]["time_geomean"], ratios[p]["peak_rss_geomean"]) for p in peers]
        out("| geometric mean | %s |" % " | ".join(cells))

        def goal(name, value, limit, passed, detail):
            verdict = "PASS" if passed else "MISS"
            over = "" if passed else " (%.0f%% over)" % (100 * (value / limit - 1))
            goals.append({"goal": name, "value": value, "limit": limit, "verdict": verdict, "detail": detail})
            out("- %s: %s — %s%s" % (verdict, name, detail, over))

        out("")
        out("## goals")
        out("")
        out("Judged on the %d workloads of this run (%s), from the medians." % (len(workloads), ", ".join(workloads)))
        out("")
        if "mimalloc" in ratios:
            r = ratios["mimalloc"]
            goal(
                "time geomean ≤ %.1f × mimalloc" % TIME_GEOMEAN_GOAL,
                r["time_geomean"],
                TIME_GEOMEAN_GOAL,
                r["time_geomean"] <= TIME_GEOMEAN_GOAL,
                "%.2f ×" % r["time_geomean"],
            )
            worst = max(r["time"], key=r["time"].get)
            goal(
                "no workload over %.1f × mimalloc's time" % TIME_WORST_GOAL,
                r["time"][worst],
                TIME_WORST_GOAL,
                r["time"][worst] <= TIME_WORST_GOAL,
                "worst %s at %.2f ×" % (worst, r["time"][worst]),
            )
            goal(
                "peak-RSS geomean ≤ %.1f × mimalloc" % RSS_GEOMEAN_GOAL,
                r["peak_rss_geomean"],
                RSS_GEOMEAN_GOAL,
                r["peak_rss_geomean"] <= RSS_GEOMEAN_GOAL,
                "%.2f ×" % r["peak_rss_geomean"],
            )
        if "glibc" in ratios:
            for w in workloads:
                if w not in multi_threaded:
                    continue
                mine, theirs = per_workload[w][subject]["seconds"], per_workload[w]["glibc"]["seconds"]
                ratio = ratios["glibc"]["time"][w]
                overlap = mine["min"] <= theirs["max"] and theirs["min"] <= mine["max"]
                goal(
                    "faster than glibc on multi-threaded %s" % w,
                    ratio,
                    1.0,
                    ratio < 1.0,
                    "%.2f × glibc's time, ranges %s" % (ratio, "overlap" if overlap else "apart"),
                )

    text = "\n".join(lines) + "\n"
    print(text, end="")
    with open("%s/summary.md" % out_dir, "w") as f:
        f.write(text)
    with open("%s/summary.json" % out_dir, "w") as f:
        json.dump(
            {
                "subject": subject,
                "rounds": rounds,
                "multi_threaded": sorted(multi_threaded),
                "workloads": per_workload,
                "ratios": ratios,
                "goals": goals,
            },
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()
