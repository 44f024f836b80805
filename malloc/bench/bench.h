/* Shared helpers of the allocator workloads run by scripts/bench-malloc.
 *
 * Every workload does a fixed amount of work (its parameters and seed fix it), prints
 * which shared object serves `malloc` in its process (so the runner can refuse a run
 * whose LD_PRELOAD did not take), and ends with one result line:
 *
 *     result: seconds=1.234567 ops=1000000 unit=allocations
 *
 * `seconds` covers the measured phase only (no process start-up or exit). Blocks carry a
 * tag in their first and last bytes that is checked before each free, so an allocator
 * that hands out overlapping memory fails the run instead of being timed. */
#ifndef ALLOCKIT_BENCH_H
#define ALLOCKIT_BENCH_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* splitmix64: a small, fast, seedable generator; each thread owns one state. */
static inline uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(uint64_t *state, size_t lo, size_t hi) {
    return lo + (size_t)(rng_next(state) % (uint64_t)(hi - lo + 1));
}

/* Mostly small sizes, a tail of larger ones: 2^k bytes with k uniform in [lo_bits, hi_bits],
 * then a uniform offset within that power of two (the shape mstress and rptest use). */
static inline size_t rng_log_size(uint64_t *state, unsigned lo_bits, unsigned hi_bits) {
    unsigned bits = (unsigned)rng_range(state, lo_bits, hi_bits);
    size_t base = (size_t)1 << bits;
    return base + (size_t)(rng_next(state) % base);
}

static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noreturn)) static inline void die(const char *what) {
    fprintf(stderr, "workload error: %s\n", what);
    exit(2);
}

static inline void *checked_malloc(size_t size) {
    void *p = malloc(size);
    if (p == NULL) die("malloc returned NULL");
    return p;
}

/* Writes a tag into the first and last 8 bytes of a block of `size` >= 8 bytes. */
static inline void tag_block(void *block, size_t size, uint64_t tag) {
    memcpy(block, &tag, sizeof tag);
    memcpy((char *)block + size - sizeof tag, &tag, sizeof tag);
}

/* Checks the tag written by tag_block; a mismatch means another block overlapped this one. */
static inline void check_block(const void *block, size_t size, uint64_t tag) {
    uint64_t head, tail;
    memcpy(&head, block, sizeof head);
    memcpy(&tail, (const char *)block + size - sizeof tail, sizeof tail);
    if (head != tag || tail != tag) die("a block's contents changed while it was live (overlap?)");
}

/* Prints the shared object that provides the `malloc` this process calls. */
static inline void print_malloc_provider(void) {
    void *symbol = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (symbol != NULL && dladdr(symbol, &info) != 0 && info.dli_fname != NULL)
        printf("malloc-provider: %s\n", info.dli_fname);
    else
        printf("malloc-provider: unknown\n");
}

static inline void print_result(double seconds, unsigned long long ops, const char *unit) {
    printf("result: seconds=%.6f ops=%llu unit=%s\n", seconds, ops, unit);
    fflush(stdout);
}

/* The n-th command-line argument as a number, or `fallback` when it is absent. */
static inline long arg_or(int argc, char **argv, int n, long fallback) {
    if (argc <= n) return fallback;
    char *end;
    long value = strtol(argv[n], &end, 10);
    if (*end != '\0' || value <= 0) {
        fprintf(stderr, "argument %d: expected a positive integer, got '%s'\n", n, argv[n]);
        exit(2);
    }
    return value;
}

#endif
